//! Value nodes and lookup: walking outward through value and merge nodes
//! only.
//!
//! Each value node also carries a 128-bit filter of the key slots that occur
//! from it outward (keys get slot numbers in first-use order, so up to 128
//! keys never collide). A lookup of a key whose bit is clear returns at
//! once: a miss through a hundred value layers is one load, not a hundred
//! hops. A merge on the path makes the filter all ones (no shortcut).
//!
//! Every node records its nearest ancestor-or-self that can answer a lookup
//! (`Header::values`): a value node or a merge. Cancellable and `without_cancel`
//! nodes are skipped without being visited, so a lookup costs one hop per
//! value node, not per context. A merge forks the walk: its first parent's
//! chain is searched before its second's, on an explicit stack (no
//! recursion on depth). Once the walk has forked it remembers the nodes it
//! searched and skips them when another path reaches them again, so a
//! lookup is linear in the number of distinct nodes, never in the number
//! of paths through a merge DAG.

use super::node::{as_cancel, Header, NodeKind, NodeRef};
use std::collections::HashSet;
use std::ptr::NonNull;

/// The fixed head of a value node; the value follows it.
#[repr(C)]
pub(crate) struct ValueHead {
    pub(crate) header: Header,
    /// The key's address (`Key::id`).
    pub(crate) key: usize,
    pub(crate) key_name: &'static str,
    /// The parent's `values` (kept alive by the parent handle).
    pub(crate) outer: Option<NonNull<Header>>,
    /// Which key slots occur from here outward.
    pub(crate) filter: KeyFilter,
}

/// A `with_value` node carrying a `T`.
#[repr(C)]
pub(crate) struct ValueNode<T> {
    pub(crate) head: ValueHead,
    pub(crate) value: T,
}

/// The key name of a value node, for `Display`.
pub(crate) fn key_name(node: &NodeRef) -> Option<&'static str> {
    let h = node.node_ptr()?;
    // SAFETY: our handle keeps the node alive.
    if unsafe { h.as_ref() }.kind != NodeKind::Value {
        return None;
    }
    // SAFETY: value nodes start with a `ValueHead` (`repr(C)`), and `h`
    // is the allocation's pointer, not one from a `&Header`.
    Some(unsafe { h.cast::<ValueHead>().as_ref() }.key_name)
}

/// The value stored under `key` (the key's address) as seen from `start`.
///
/// # Safety
/// `start` and everything reachable from it must be kept alive by a handle
/// the caller holds for the returned lifetime; `T` must be the key's type.
pub(crate) unsafe fn lookup<'a, T: 'static>(
    start: Option<NonNull<Header>>,
    key: usize,
    slot: u32,
) -> Option<&'a T> {
    // SAFETY: the caller keeps `start` alive.
    if !unsafe { filter_of(start) }.may_contain(slot) {
        return None;
    }
    let mut forks: Vec<NonNull<Header>> = Vec::new();
    // Every node searched since the walk first forked: a merge DAG reaches
    // a node along many paths (`merge(&c, &c)` n times: 2^n of them), and
    // a node seen again was searched in full already (the walk is depth
    // first, and a DAG cannot reach a node from its own ancestors), so it
    // is skipped. Made only at the first merge: plain chains never fork.
    let mut seen: Option<HashSet<NonNull<Header>>> = None;
    let mut cur = start;
    loop {
        let h = cur.or_else(|| forks.pop())?;
        if let Some(seen) = seen.as_mut() {
            if !seen.insert(h) {
                cur = None;
                continue;
            }
        }
        // SAFETY: kept alive by the caller's handle (see above).
        let node = unsafe { h.as_ref() };
        if node.kind == NodeKind::Value {
            // SAFETY: value nodes are allocated as `ValueNode<_>`, whose
            // head comes first (`repr(C)`).
            let head = unsafe { h.cast::<ValueHead>().as_ref() };
            if head.key == key {
                // SAFETY: keys are unique statics of one type, so the node
                // holding this key was created with a `T`.
                return Some(unsafe { &h.cast::<ValueNode<T>>().as_ref().value });
            }
            cur = head.outer;
        } else {
            // A merge: its first parent now, its second parent later.
            seen.get_or_insert_with(HashSet::new).insert(h);
            // SAFETY: as above; `h` is the allocation's pointer.
            let merge = unsafe { as_cancel(h) };
            // SAFETY: as above.
            let second = merge.and_then(|c| unsafe { c.as_ref() }.parent2());
            forks.extend(second.and_then(|p| p.values()));
            cur = node.parent().and_then(|p| p.values());
        }
    }
}

/// A set of key slots (bit `slot % 128`).
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyFilter(u128);

impl KeyFilter {
    const ALL: KeyFilter = KeyFilter(u128::MAX);

    pub(crate) fn with(self, slot: u32) -> KeyFilter {
        KeyFilter(self.0 | 1 << (slot % 128))
    }

    fn may_contain(self, slot: u32) -> bool {
        self.0 & (1 << (slot % 128)) != 0
    }
}

/// The filter of the lookups that start at `values`.
///
/// # Safety
/// `values` must be alive.
pub(crate) unsafe fn filter_of(values: Option<NonNull<Header>>) -> KeyFilter {
    let Some(h) = values else {
        return KeyFilter::default();
    };
    // SAFETY: alive by the caller's guarantee.
    match unsafe { h.as_ref() }.kind {
        // SAFETY: value nodes start with a `ValueHead`.
        NodeKind::Value => unsafe { h.cast::<ValueHead>().as_ref() }.filter,
        _ => KeyFilter::ALL,
    }
}
