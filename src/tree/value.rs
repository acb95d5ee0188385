//! Value lookup: walking outward through value and merge nodes only.
//!
//! A value node (`layout::ValueNode`) is the header, a 128-bit filter and
//! the value: 48 bytes for a `u64`. Its table pointer is its key (a
//! `Key<T>` starts with the node table of `ValueNode<T>`), so the key costs
//! no field of its own: a node holds the key `K` exactly when its table is
//! `&K`.
//!
//! The filter holds the key slots that occur from the node outward (keys
//! get slot numbers in first-use order, so up to 127 keys never collide;
//! bit 127 is the `NO_BASE` flag, which no slot uses). A lookup of a key
//! whose bit is clear returns at once: a miss through a hundred value
//! layers is one load, not a hundred hops. A merge on the path makes the
//! filter all ones (no shortcut).
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

use super::layout::{filter_has, MergeNode, ValueNode};
use super::node::{is_kind, Header, NodeKind, NodeRef, NodeVtable};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr::NonNull;

/// The key table of a value node, for `Display` (`None`: not a value).
pub(crate) fn key_of(node: &NodeRef) -> Option<NonNull<NodeVtable>> {
    let h = node.node_ptr()?;
    // SAFETY: our handle keeps the node alive.
    unsafe { is_kind(h, NodeKind::Value) }.then(|| unsafe { h.as_ref() }.vtable())
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
    if !unsafe { filter_has(start, slot) } {
        return None;
    }
    // Along plain parents first: no stack and no record of nodes seen
    // until the walk meets a merge (most lookups never do).
    let mut cur = start;
    while let Some(h) = cur {
        // SAFETY: kept alive by the caller's handle (see above).
        if let Some(value) = unsafe { value_at(h, key) } {
            return Some(value);
        }
        // SAFETY: as above.
        let node = unsafe { h.as_ref() };
        // SAFETY: as above.
        if unsafe { is_kind(h, NodeKind::Merge) } {
            // SAFETY: the caller's promise, for everything reachable.
            return unsafe { lookup_forking(h, key) };
        }
        cur = node.parent().and_then(|p| p.values());
    }
    None
}

/// `lookup` from `start` on, through merges.
///
/// # Safety
/// As `lookup`.
#[cold]
#[inline(never)]
unsafe fn lookup_forking<'a, T: 'static>(
    start: NonNull<Header>,
    key: NonNull<NodeVtable>,
) -> Option<&'a T> {
    let mut forks: Vec<NonNull<Header>> = Vec::new();
    // Every node searched since the walk first forked: a merge DAG reaches
    // a node along many paths (`merge(&c, &c)` n times: 2^n of them), and
    // a node seen again was searched in full already (the walk is depth
    // first, and a DAG cannot reach a node from its own ancestors), so it
    // is skipped. Made only at the first merge: plain chains never fork.
    let mut seen: Option<Seen> = None;
    let mut cur = Some(start);
    loop {
        let h = cur.or_else(|| forks.pop())?;
        if let Some(seen) = seen.as_mut() {
            if !seen.insert(h) {
                cur = None;
                continue;
            }
        }
        // SAFETY: kept alive by the caller's handle (see above).
        if let Some(value) = unsafe { value_at(h, key) } {
            return Some(value);
        }
        // SAFETY: as above.
        let node = unsafe { h.as_ref() };
        // SAFETY: as above.
        if unsafe { is_kind(h, NodeKind::Merge) } {
            // A merge: its first parent now, its second parent later.
            seen.get_or_insert_with(Seen::default).insert(h);
            // SAFETY: as above; `h` is the allocation's pointer.
            let second = unsafe { MergeNode::parent2(h) };
            forks.extend(second.and_then(|p| p.values()));
        }
        cur = node.parent().and_then(|p| p.values());
    }
}

/// `h`'s value if `h` is the value node of `key`.
///
/// # Safety
/// As `lookup`, for `h`.
#[inline(always)]
unsafe fn value_at<'a, T: 'static>(h: NonNull<Header>, key: NonNull<NodeVtable>) -> Option<&'a T> {
    // SAFETY: alive (caller).
    let is_key = unsafe { h.as_ref() }.vtable() == key;
    // SAFETY: a key's table is its own, and keys are unique statics of one
    // type, so a node with that table was created as a `ValueNode<T>`.
    is_key.then(|| unsafe { &h.cast::<ValueNode<T>>().as_ref().value })
}

/// The nodes a forked lookup has searched: a short list while there are
/// few (a merge or two on the path, the common case), a hash set beyond,
/// so that the walk stays linear in the number of distinct nodes.
enum Seen {
    Few(Vec<NonNull<Header>>),
    Many(HashSet<NonNull<Header>, BuildHasherDefault<AddressHasher>>),
}

/// Past this many nodes a list search costs more than hashing.
const FEW: usize = 16;

impl Default for Seen {
    fn default() -> Seen {
        Seen::Few(Vec::with_capacity(FEW))
    }
}

impl Seen {
    /// Adds `h`; `false` if it was there already.
    fn insert(&mut self, h: NonNull<Header>) -> bool {
        match self {
            Seen::Few(few) if few.contains(&h) => false,
            Seen::Few(few) if few.len() < FEW => {
                few.push(h);
                true
            }
            Seen::Few(few) => {
                let mut many: HashSet<_, _> = few.drain(..).collect();
                many.insert(h);
                *self = Seen::Many(many);
                true
            }
            Seen::Many(many) => many.insert(h),
        }
    }
}

/// Hashes a node's address: nodes are distinct allocations, so a
/// multiplicative hash of the address spreads them (no keyed hash needed:
/// the addresses are not chosen by an adversary).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        // The product's high half is the well-mixed one; fold it into the
        // low bits, which pick the bucket (the addresses' own low bits are
        // zero: allocations are aligned).
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, addr: usize) {
        self.0 = (addr as u64 ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_answers_once_per_node_across_the_switch_to_a_set() {
        let nodes: Vec<Box<u128>> = (0..100).map(Box::new).collect();
        let ptr = |b: &u128| NonNull::from(b).cast::<Header>();
        let mut seen = Seen::default();
        for (i, b) in nodes.iter().enumerate() {
            assert!(seen.insert(ptr(b)), "node {i} is new");
            assert!(!seen.insert(ptr(b)), "node {i} again");
            assert!(!seen.insert(ptr(&nodes[i / 2])), "an earlier node again");
        }
        assert!(matches!(seen, Seen::Many(ref m) if m.len() == 100));
    }
}
