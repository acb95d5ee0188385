//! Entry dispatch: the one place that maps a link to its container.
//!
//! Two kinds of link point into containers: a list [`Entry`] (tagged with an
//! [`EntryKind`]) and a node's [`TimerEntry`] (whose clock calls back through
//! the hook table of `create.rs`, so that the time side knows nothing about
//! the tree). Both are resolved here and nowhere else: the drain asks
//! [`container`] what it reached, every released list reference goes
//! through [`release`], and the timer hooks find their node with
//! [`timer_node`].
//!
//! Invariants:
//! 1. `Child` entries are the `link` field of a `CancelNode` (the core of
//!    every cancellable layout), `MergeLink` entries the `link2` field of a
//!    `MergeNode`, `Waiter` entries the first field of a `Waiter`,
//!    `Callback` entries the first field of a `Callback`, and every armed
//!    `TimerEntry` of the tree is the `timer` field of a `DeadlineNode`.
//! 2. Every entry or timer pointer that a list stores, a clock holds, or
//!    [`withdraw`] is given is derived from its container's allocation
//!    pointer ([`links`], [`timer_ptr`], a cast of
//!    a `Waiter` or `Callback` pointer), never from a `&Entry` or a
//!    `&TimerEntry`. So it carries the provenance of the whole container,
//!    and stepping back from it to the container, and freeing the
//!    container through it, are sound (docs/design.md, "Provenance").

use super::callback::Callback;
use super::layout::{link2_ptr, own_clock, DeadlineNode, MergeNode};
use super::list::{self, Entry, EntryKind, List, Withdrawn};
use super::node::{is_kind, CancelNode, NodeKind};
use super::refs::release_node_ref;
use super::waiter::Waiter;
use crate::sync::Ordering::Relaxed;
use crate::time::TimerEntry;
use crossbeam_epoch::Guard;
use std::mem::offset_of;
use std::ptr::{addr_of_mut, NonNull};

/// What a list entry is part of.
pub(super) enum Container {
    /// A cancellable child node (through its first or second link).
    Child(NonNull<CancelNode>),
    /// A `Done` future or a blocked thread.
    Waiter(NonNull<Waiter>),
    /// An `after_func` registration.
    Callback(NonNull<Callback>),
}

/// The container of a list entry, by its kind (invariant 1).
///
/// # Safety
/// `entry` is alive (the caller holds a reference on its container) and
/// follows invariant 2.
pub(super) unsafe fn container(entry: NonNull<Entry>) -> Container {
    // SAFETY: alive by the caller's reference.
    let kind = unsafe { entry.as_ref() }.kind();
    let offset = match kind {
        EntryKind::Child => offset_of!(CancelNode, link),
        EntryKind::MergeLink => offset_of!(MergeNode, link2),
        EntryKind::Waiter => return Container::Waiter(entry.cast()),
        EntryKind::Callback => return Container::Callback(entry.cast()),
    };
    // SAFETY: the entry is a field of a live `CancelNode` at `offset`
    // (invariant 1), so stepping back stays inside that allocation, which
    // the pointer's provenance covers (invariant 2).
    Container::Child(unsafe { entry.byte_sub(offset).cast() })
}

/// Releases the list's reference on whatever contains `entry`.
///
/// # Safety
/// The caller owns that reference (list invariant 3).
pub(crate) unsafe fn release(entry: NonNull<Entry>) {
    // SAFETY: the reference we own keeps the entry alive.
    match unsafe { container(entry) } {
        // SAFETY: the node's list reference is ours.
        Container::Child(node) => unsafe { release_node_ref(node) },
        // SAFETY: as above.
        Container::Waiter(w) => unsafe { Waiter::release(w) },
        // SAFETY: as above.
        Container::Callback(cb) => unsafe { Callback::release(cb) },
    }
}

/// Releases the list's reference on `entry`'s container through the epoch
/// (list invariant 4), for a sweeper or drainer that others may race.
///
/// # Safety
/// As [`release`].
pub(super) unsafe fn defer(entry: NonNull<Entry>, guard: &Guard) {
    // SAFETY: the caller owns the reference; `release` releases exactly it.
    unsafe { list::defer_release(guard, entry, release) }
}

/// Withdraws `entry` from `list` for its holder (list `withdraw`, with the
/// release above). True if this call claimed it.
///
/// # Safety
/// `entry` was pushed onto `list` (or marked unlinked) and its container
/// follows invariants 1 and 2.
pub(crate) unsafe fn withdraw(list: &List, entry: NonNull<Entry>) -> bool {
    // SAFETY: the caller's promise; `release` matches invariant 1.
    match unsafe { list.withdraw(entry, release) } {
        Withdrawn::Lost => false,
        Withdrawn::Claimed => true,
        Withdrawn::Owned => {
            // SAFETY: the reference is ours (list `withdraw`).
            unsafe { release(entry) };
            true
        }
    }
}

/// [`withdraw`] for a node's own link: a list reference this call comes
/// to own is kept, marked in the link, and released with the handles'
/// reference at teardown (`layout::kept_refs`): one decrement for both.
///
/// # Safety
/// As [`withdraw`]; the caller holds a handle on the link's node (or is
/// its teardown).
pub(super) unsafe fn withdraw_keeping(list: &List, link: NonNull<Entry>) {
    // SAFETY: the caller's promise; `release` matches invariant 1.
    if unsafe { list.withdraw(link, release) } == Withdrawn::Owned {
        // Relaxed: read at the node's teardown, which every handle's
        // release happens before; nobody else reads an unlinked link.
        // SAFETY: alive: the caller's handle holds the node.
        unsafe { link.as_ref() }.kept.store(true, Relaxed);
    }
}

/// The node whose `timer` field `timer` is.
///
/// # Safety
/// `timer` points at the `timer` field of a live `DeadlineNode` (invariant 1)
/// with the node's provenance (invariant 2).
pub(super) unsafe fn timer_node(timer: NonNull<TimerEntry>) -> NonNull<CancelNode> {
    // SAFETY: the caller's promise (a `MaybeUninit` holds its payload at
    // offset 0), so stepping back stays inside the node, which the
    // pointer's provenance covers.
    unsafe { timer.byte_sub(offset_of!(DeadlineNode, timer)).cast() }
}

/// A node's own timer pointer, if it has one (a deadline node), derived
/// from the node's pointer (invariant 2): the hooks step back from it to
/// the node.
///
/// # Safety
/// `node` is alive and has the provenance of its allocation.
pub(super) unsafe fn timer_ptr(node: NonNull<CancelNode>) -> Option<NonNull<TimerEntry>> {
    // SAFETY: alive (caller); the kind never changes.
    if !unsafe { is_kind(node.cast(), NodeKind::Deadline) } {
        return None;
    }
    let raw = node.cast::<DeadlineNode>().as_ptr();
    // SAFETY: a field projection of a valid node pointer, so not null; no
    // access.
    Some(unsafe { NonNull::new_unchecked(addr_of_mut!((*raw).timer)) })
}

/// Disarms the node's own timer, if it has one (a deadline node).
///
/// # Safety
/// `node` is alive and is the node's own pointer.
pub(super) unsafe fn disarm_timer(node: NonNull<CancelNode>) {
    // SAFETY: the caller's promise.
    if let Some(timer) = unsafe { timer_ptr(node) } {
        // SAFETY: the node's own timer, armed on its clock (or never), and
        // alive: the caller reaches the node through a handle or a reference.
        unsafe { own_clock(node).disarm(timer) };
    }
}

/// A node's first link, derived from the node's pointer (invariant 2).
///
/// # Safety
/// As [`timer_ptr`].
pub(super) unsafe fn link_ptr(node: NonNull<CancelNode>) -> NonNull<Entry> {
    // SAFETY: a field projection of a live node's pointer (caller), so in
    // bounds and not null; no access.
    unsafe { NonNull::new_unchecked(addr_of_mut!((*node.as_ptr()).link)) }
}

/// A link and the scope whose list it joins (`None`: no list).
pub(super) type Link = (NonNull<Entry>, Option<NonNull<CancelNode>>);

/// A node's links, derived from the node's pointer (invariant 2), each with
/// its parent's scope: `link` for the first parent, and for a merge `link2`
/// for the second. A list stores them, the drain steps back from them.
///
/// # Safety
/// As [`timer_ptr`], and the caller holds a handle on the node (or is its
/// teardown, before the parents are taken): the parents are readable.
pub(super) unsafe fn links(node: NonNull<CancelNode>) -> [Option<Link>; 2] {
    // SAFETY: alive (caller).
    let first = unsafe { node.as_ref() }.parent_scope;
    // SAFETY: alive (caller).
    let link = unsafe { link_ptr(node) };
    // SAFETY: alive (caller).
    let Some(link2) = (unsafe { link2_ptr(node) }) else {
        return [Some((link, first)), None];
    };
    // SAFETY: as above, for the merge layout.
    let second =
        unsafe { MergeNode::parent2(node.cast()) }.and_then(super::node::NodeRef::scope_ptr);
    [Some((link, first)), Some((link2, second))]
}
