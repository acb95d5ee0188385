//! Shared contexts: a `with_cancel` node that many threads derive children
//! from at once, whose children join per-thread *shards* instead of its
//! own list (docs/design.md, "Shared contexts").
//!
//! A plain parent's state word heads the list every child joins and
//! leaves, and its handle count is taken and given back by every child:
//! threads deriving requests from one server root meet on that cache line
//! four times a request. A *hub* (the shared context's node) is a
//! `with_cancel` node with one *shard* per CPU slot: a `with_cancel` node
//! of its own, alone on its cache lines, linked into the hub's list. A
//! thread's children join its shard, so threads touch no common line.
//!
//! Invariants:
//! 1. A hub holds one handle on each of its shards until its own handles
//!    reach zero, and each shard is linked into the hub's list: the hub's
//!    cancellation reaches the shards, and through them every child.
//! 2. A child derived from a hub (`with_cancel`, a deadline, `merge`'s
//!    first parent) has its thread's shard as parent: it holds a handle on
//!    the shard and links into the shard's list. Nothing else holds a
//!    shard, and no `Context` is one.
//! 3. A shard's parent cell points at its hub but owns no handle on it, so
//!    the hub's handle count is its users' alone and children never write
//!    it. When that count reaches zero the hub is *released*: it gives up
//!    its shard handles, and a shard goes (is torn down) when its last
//!    child does. No child can be derived any more (that takes a hub
//!    handle), so the shards' counts only fall. The hub itself is torn
//!    down when its last shard has gone (`live`), which keeps it, its
//!    ancestors and its list alive for every child and for each shard's
//!    own teardown, which reads the hub's list.

use super::layout::base_of;
use super::node::{free_box, CancelNode, Header, NodeKind, NodeRef, NodeVtable, Parent, TimeSlot};
use crate::sync::Ordering::{AcqRel, Relaxed};
use crate::sync::{thread_number, AtomicUsize, UnsafeCell};
use std::ptr::NonNull;

/// The tables of the two layouts: `with_cancel` nodes to every reader but
/// the derive and teardown paths, which tell them apart by table.
static HUB: NodeVtable = NodeVtable {
    kind: NodeKind::Cancel,
    free: free_box::<HubNode>,
};
static SHARD: NodeVtable = NodeVtable {
    kind: NodeKind::Cancel,
    free: free_box::<ShardNode>,
};

/// A shared context's node.
#[repr(C)]
struct HubNode {
    core: CancelNode,
    /// One handle per shard (invariant 1), a power of two of them; emptied
    /// only when the hub is released (invariant 3), when no reader is left.
    shards: UnsafeCell<Option<Box<[NodeRef]>>>,
    /// Shards not gone yet (invariant 3).
    live: AtomicUsize,
}

/// One shard: a `with_cancel` core, alone on its cache lines so that two
/// threads' shards share none.
#[repr(C, align(128))]
struct ShardNode {
    core: CancelNode,
}

/// Whether `h` is a hub.
#[inline]
pub(crate) fn is_hub(h: &Header) -> bool {
    h.has_table(&HUB)
}

/// Whether `h` is a shard.
#[inline]
pub(crate) fn is_shard(h: &Header) -> bool {
    h.has_table(&SHARD)
}

impl<'a> Parent<'a> {
    /// The parent that a child of `node` (whose scope is `scope`) derives
    /// from: `node` itself, or a hub's shard for this thread (invariant 2).
    #[inline]
    pub(crate) fn of(node: &'a NodeRef, scope: Option<NonNull<CancelNode>>) -> Parent<'a> {
        match node.node_ptr() {
            // SAFETY: alive by the caller's handle; the node's own pointer.
            Some(h) if is_hub(unsafe { h.as_ref() }) => {
                shard_parent(h).unwrap_or(Parent { node, scope })
            }
            _ => Parent { node, scope },
        }
    }
}

/// The calling thread's shard of the hub `h`, as a parent (invariant 2);
/// `None` only for a released hub, which nobody can derive from.
fn shard_parent<'a>(h: NonNull<Header>) -> Option<Parent<'a>> {
    // SAFETY: a hub (our caller's test), alive by the caller's handle for
    // as long as the returned parent is used.
    let cell = &unsafe { h.cast::<HubNode>().as_ref() }.shards;
    // SAFETY: emptied only at the hub's release, when no handle is left.
    let shards: &'a [NodeRef] = cell.with(|s| unsafe { (*s).as_deref() })?;
    let shard = &shards[thread_number() & (shards.len() - 1)];
    Some(Parent {
        node: shard,
        scope: shard.node_ptr().map(NonNull::cast),
    })
}

/// A hub under `parent`, with no shards yet (`create.rs` links it, then
/// adds them).
pub(super) fn new_hub(parent: Parent<'_>) -> NonNull<CancelNode> {
    // SAFETY: our caller's handle keeps `parent` alive.
    let base = unsafe { base_of(parent.node) };
    let values = parent.node.values();
    let hub = super::blocks::leak(|| HubNode {
        core: CancelNode::new(&HUB, parent, values, TimeSlot { base }),
        shards: UnsafeCell::new(None),
        live: AtomicUsize::new(0),
    });
    hub.cast()
}

/// A shard of `hub`, with one handle (the hub's), not linked yet.
///
/// # Safety
/// `hub` is a new hub's own pointer, whose handles the caller holds.
pub(super) unsafe fn new_shard(hub: NonNull<CancelNode>) -> NonNull<CancelNode> {
    // SAFETY: alive (caller).
    let h = unsafe { hub.as_ref() };
    // SAFETY: a hub is a `with_cancel` node, whose time slot is its base.
    let base = unsafe { h.time.base };
    let time = TimeSlot { base };
    // The cell points at the hub without owning a handle (invariant 3).
    // SAFETY: the hub outlives its shards (invariant 3).
    let parent = unsafe { NodeRef::adopt(CancelNode::header_ptr(hub)) };
    // Not shared yet: the one handle is the hub's (invariant 1).
    let shard = super::blocks::leak(|| ShardNode {
        core: CancelNode::with_parent(&SHARD, parent, Some(hub), h.values, time, 1),
    });
    shard.cast()
}

/// Gives `hub` its shards, whose handles it then holds (invariant 1).
///
/// # Safety
/// `hub` is a new hub's own pointer, whose handles the caller holds; each
/// shard is one of its own, linked, with its one handle, which we take.
pub(super) unsafe fn install(hub: NonNull<CancelNode>, shards: Vec<NonNull<CancelNode>>) {
    let shards: Box<[NodeRef]> = shards
        .into_iter()
        // SAFETY: the shard's handle (caller).
        .map(|s| unsafe { NodeRef::adopt(CancelNode::header_ptr(s)) })
        .collect();
    debug_assert!(shards.len().is_power_of_two());
    // SAFETY: a hub (caller), not yet returned: nobody else reads it.
    let node = unsafe { hub.cast::<HubNode>().as_ref() };
    // Relaxed: published with the hub itself.
    node.live.store(shards.len(), Relaxed);
    // SAFETY: as above.
    node.shards.with_mut(|p| unsafe { *p = Some(shards) });
}

/// Releases a hub whose handles reached zero (invariant 3): returns its
/// handles on its shards, or `None` if it was released already (then its
/// last shard has gone, and it is due for teardown).
///
/// # Safety
/// `hub` is a hub's own pointer and its `handles` are zero.
pub(super) unsafe fn release(hub: NonNull<Header>) -> Option<Vec<NodeRef>> {
    // SAFETY: the caller's promise.
    let cell = unsafe { &hub.cast::<HubNode>().as_ref().shards };
    // SAFETY: no handle is left, so nobody derives (reads the cell).
    let shards = cell.with_mut(|p| unsafe { (*p).take() });
    shards.map(Vec::from)
}

/// One of `hub`'s shards has gone; true if it was the last (invariant 3).
///
/// # Safety
/// `hub` is a released hub's own pointer, and the caller has torn down
/// one of its shards (each shard calls this once).
pub(super) unsafe fn shard_gone(hub: NonNull<Header>) -> bool {
    // SAFETY: a hub lives until its last shard has gone (invariant 3).
    let live = unsafe { &hub.cast::<HubNode>().as_ref().live };
    // AcqRel: each shard's teardown (it read the hub's list) happens
    // before the hub's, which the last decrement starts.
    live.fetch_sub(1, AcqRel) == 1
}

// Small enough for Miri, which runs the unit tests (`.ci/proof.sh`): the
// hub's release with a child left, and its cancel, through the public API.
#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Context, Error};

    #[test]
    fn a_child_outlives_the_hub_s_release_then_frees_it() {
        let (root, stop) = Context::background().with_cancel();
        let (hub, handle) = root.with_cancel_shared();
        let theirs = hub.clone();
        let child = std::thread::spawn(move || theirs.with_cancel())
            .join()
            .unwrap();
        handle.detach();
        drop(hub); // released: the child's shard stays
        assert_eq!(child.0.err(), None);
        stop.cancel(); // reaches the child through the released hub
        assert_eq!(child.0.err(), Some(Error::Canceled));
        drop(child); // the last shard goes, then the hub
    }

    #[test]
    fn the_hub_s_cancel_reaches_children_of_both_shards() {
        let (hub, handle) = Context::background().with_cancel_shared();
        let kids: Vec<_> = (0..2)
            .map(|_| {
                let hub = hub.clone();
                std::thread::spawn(move || hub.with_cancel())
            })
            .map(|t| t.join().unwrap())
            .collect();
        handle.cancel();
        assert!(kids.iter().all(|(c, _)| c.err() == Some(Error::Canceled)));
    }
}
