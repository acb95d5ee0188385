//! Value nodes and lookup: walking outward through value and merge nodes
//! only.
//!
//! A value node is the header, a 128-bit filter and the value: 56 bytes for
//! a `u64`. Its first word is its key (a `Key<T>` starts with the node
//! table of `ValueNode<T>`), so the key costs no field of its own: a node
//! holds the key `K` exactly when its table pointer is `&K`.
//!
//! Each value node carries a 64-bit filter of the key slots that occur
//! from it outward (keys get slot numbers in first-use order, so up to 64
//! keys never collide). A lookup of a key whose bit is clear returns at
//! once: a miss through a hundred value layers is one load, not a hundred
//! hops. A merge on the path makes the filter all ones (no shortcut).
//!
//! A lookup visits value and merge nodes only: from a value node it goes
//! to its parent, which is another value node or records its nearest one
//! (`layout::values_of`), so a lookup costs one hop per value node, not
//! per context. A merge forks the walk: its first parent's chain is
//! searched before its second's, on an explicit stack (no recursion on
//! depth). Once the walk has forked it remembers the nodes it searched and
//! skips them when another path reaches them again, so a lookup is linear
//! in the number of distinct nodes, never in the number of paths through a
//! merge DAG.

use super::layout::MergeNode;
use super::node::{free_box, kind_of, Header, NodeKind, NodeRef, NodeVtable};
use std::collections::HashSet;
use std::ptr::NonNull;

/// A `with_value` node carrying a `T`; its header's table is its key's.
#[repr(C)]
pub(crate) struct ValueNode<T> {
    pub(crate) header: Header,
    /// Which key slots occur from here outward.
    pub(crate) filter: KeyFilter,
    pub(crate) value: T,
}

// A `u64` value costs 56 bytes: the 48 of issue 10's budget would need a
// 64-bit filter, which 100 keys saturate (docs/design.md, "Nodes").
#[cfg(all(target_pointer_width = "64", not(loom)))]
const _: () = assert!(std::mem::size_of::<ValueNode<u64>>() <= 56);

/// The node table of a `ValueNode<T>`, which each `Key<T>` starts with.
pub(crate) const fn value_vtable<T>() -> NodeVtable {
    NodeVtable {
        kind: NodeKind::Value,
        free: free_box::<ValueNode<T>>,
    }
}

/// The key table of a value node, for `Display` (`None`: not a value).
pub(crate) fn key_of(node: &NodeRef) -> Option<NonNull<NodeVtable>> {
    let h = node.node_ptr()?;
    // SAFETY: our handle keeps the node alive.
    (unsafe { kind_of(h) } == NodeKind::Value).then(|| unsafe { h.as_ref() }.vtable())
}

/// The value stored under `key` (its node table) as seen from `start`.
///
/// # Safety
/// `start` and everything reachable from it must be kept alive by a handle
/// the caller holds for the returned lifetime; `T` must be the key's type.
pub(crate) unsafe fn lookup<'a, T: 'static>(
    start: Option<NonNull<Header>>,
    key: NonNull<NodeVtable>,
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
        if node.vtable() == key {
            // SAFETY: a key's table is its own, and keys are unique statics
            // of one type, so this node was created as a `ValueNode<T>`.
            return Some(unsafe { &h.cast::<ValueNode<T>>().as_ref().value });
        }
        // SAFETY: as above.
        if unsafe { kind_of(h) } == NodeKind::Merge {
            // A merge: its first parent now, its second parent later.
            seen.get_or_insert_with(HashSet::new).insert(h);
            // SAFETY: as above; `h` is the allocation's pointer.
            let second = unsafe { MergeNode::parent2(h) };
            forks.extend(second.and_then(|p| p.values()));
        }
        cur = node.parent().and_then(|p| p.values());
    }
}

/// A set of key slots (bit `slot % 128`; slot numbers skip those whose
/// bit would be 127), and in bit 127 the `NO_BASE` flag. Two words, not a
/// `u128`, whose 16-byte alignment would pad a `ValueNode<u64>` to 64
/// bytes.
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyFilter([u64; 2]);

/// Bit 127 of a value node's filter: the node has no scope and its nearest
/// non-value ancestor is `background()` or `todo()`, so its clock is the
/// system clock without walking up (`layout::base_of`).
const NO_BASE: u32 = 127;

impl KeyFilter {
    const ALL: KeyFilter = KeyFilter([u64::MAX; 2]);

    /// The filter of a new value node under `parent`, for a key in `slot`.
    ///
    /// # Safety
    /// The caller holds `parent`.
    pub(crate) unsafe fn of_child(parent: &NodeRef, slot: u32) -> KeyFilter {
        // SAFETY: the parent's values are kept alive by the parent.
        let outer = unsafe { filter_of(parent.values()) }.without(NO_BASE);
        let no_base = match parent.node_ptr() {
            None => true,
            // SAFETY: kept alive by the parent.
            Some(h) => unsafe { kind_of(h) == NodeKind::Value && filter_of(Some(h)).no_base() },
        };
        let filter = outer.with(slot % 128);
        if no_base {
            filter.with(NO_BASE)
        } else {
            filter
        }
    }

    fn with(self, bit: u32) -> KeyFilter {
        let mut words = self.0;
        words[bit as usize / 64] |= 1 << (bit % 64);
        KeyFilter(words)
    }

    fn without(self, bit: u32) -> KeyFilter {
        let mut words = self.0;
        words[bit as usize / 64] &= !(1 << (bit % 64));
        KeyFilter(words)
    }

    fn has(self, bit: u32) -> bool {
        self.0[bit as usize / 64] & (1 << (bit % 64)) != 0
    }

    fn may_contain(self, slot: u32) -> bool {
        self.has(slot % 128)
    }

    /// The `NO_BASE` flag (meaningful for a value node without a scope).
    pub(crate) fn no_base(self) -> bool {
        self.has(NO_BASE)
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
    match unsafe { kind_of(h) } {
        // SAFETY: value nodes are a `ValueNode<_>`, whose filter's offset
        // does not depend on the value's type (`repr(C)`, header first).
        NodeKind::Value => unsafe { h.cast::<ValueNode<()>>().as_ref() }.filter,
        _ => KeyFilter::ALL,
    }
}
