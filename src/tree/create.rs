//! Creating nodes: allocating each kind, linking a cancellable node into its
//! parents' lists, and arming its timer.
//!
//! Invariants:
//! 1. A new cancellable node is returned with two handles (the `Context` and
//!    the `CancelHandle`) and is linked into each parent scope's list, or,
//!    if that list is closed already, done with that parent's err and
//!    record before anyone else can see it (semantics 3).
//! 2. A link that never joined a list is marked unlinked, so withdrawing it
//!    later finds nothing to do.
//! 3. A timer is armed only on a node that is not done yet; a cancel that
//!    slips in before `arm` is answered by a disarm right after it.
//! 4. The memory references the new node's lists and clock will hold are
//!    counted in one plain store before the node is published (its first
//!    push), not by an atomic increment each; a list that turns out closed,
//!    or a timer not armed, gives its count back.

use super::cancel::{self, Holder};
use super::entry::{self, timer_node};
use super::layout::{self, KeyFilter, ValueNode};
use super::list::Entry;
use super::node::{CancelNode, Header, NodeRef, NodeVtable, Parent};
use super::record::Record;
use super::refs::{acquire_handle, release_node_ref};
use super::shared;
use crate::clock::Clock;
use crate::error::{Cause, Error};
use crate::sync::shards_for_cpus;
use crate::sync::Ordering::Relaxed;
use crate::time::{TimerEntry, TimerHooks};
use std::ptr::NonNull;
use std::time::Instant;

/// A root node for a manual clock.
pub(crate) fn root(clock: Clock) -> NodeRef {
    // SAFETY: a new node with one handle, which we hand over.
    unsafe { NodeRef::adopt(layout::new_root(clock)) }
}

/// A `without_cancel` node: values of `parent`, never done.
pub(crate) fn without_cancel(parent: &NodeRef) -> NodeRef {
    // SAFETY: as in `root`.
    unsafe { NodeRef::adopt(layout::new_without_cancel(parent)) }
}

/// The identity of a `Key`, as a value node stores it.
pub(crate) struct KeyId {
    /// The key's address, which is its node table (`Key` starts with it):
    /// unique, and fixes the value's type.
    pub(crate) vtable: NonNull<NodeVtable>,
    /// Its slot in the lookup filter (`value.rs`).
    pub(crate) slot: u32,
}

/// A `with_value` node carrying `value` under `key`.
pub(crate) fn value<T: Send + Sync + 'static>(parent: &NodeRef, key: KeyId, value: T) -> NodeRef {
    // SAFETY: we hold a handle on the parent. (Computed first: a call
    // between the header's fields and their copy into the block would
    // put them through the stack, see `blocks::leak`.)
    let filter = unsafe { KeyFilter::of_child(parent, key.slot) };
    let node = super::blocks::leak(|| ValueNode {
        header: Header::new(key.vtable, Some(parent.clone())),
        filter,
        value,
    });
    // SAFETY: a new node with one handle, which we hand over.
    unsafe { NodeRef::adopt(node.cast()) }
}

/// Allocates and links a cancellable child of `parent` (and of `parent2`,
/// for a merge) that inherits its parents' deadline. Returns it with two
/// handles (invariant 1).
pub(crate) fn cancellable(parent: Parent<'_>, parent2: Option<&NodeRef>) -> NonNull<CancelNode> {
    let ptr = match parent2 {
        Some(parent2) => layout::new_merge(parent, parent2),
        None => layout::new_cancel(parent),
    };
    // SAFETY: freshly allocated and fully initialised; we hold both its
    // handles, and `ptr` is the allocation's pointer.
    unsafe { attach(ptr, false) };
    ptr
}

/// Allocates, links and arms a child of `parent` due `at` on `clock` (the
/// parent's, which the caller has read), earlier than the parent's own
/// deadline; `passed` if `at` is past already (then it is done at once).
/// `cause` is what `cause()` reports when it fires. Returns it with two
/// handles (invariant 1).
///
/// The deadline comes in as plain arguments, not as one value built by
/// the caller: a value built on the stack and copied again costs stalled
/// loads (see `blocks::leak`).
pub(crate) fn deadline(
    parent: Parent<'_>,
    clock: Clock,
    at: Instant,
    cause: Option<Cause>,
    passed: bool,
) -> NonNull<CancelNode> {
    let record = cause.map(|c| Record::new(Error::DeadlineExceeded, c));
    let ptr = layout::new_deadline(parent, clock, at, record, &TIMER_HOOKS, !passed);
    // SAFETY: as in `cancellable`; a deadline past already is never armed.
    unsafe {
        attach(ptr, !passed);
        if passed {
            let record = ptr.as_ref().claim_deadline_record();
            cancel::cancel(ptr, Error::DeadlineExceeded, record, Holder::Handle);
        } else {
            arm_timer(ptr);
        }
    }
    ptr
}

/// A shared context (`shared.rs`): a `with_cancel` child of `parent`,
/// with its shards linked into its list. Returned with two handles.
pub(crate) fn cancellable_shared(parent: Parent<'_>) -> NonNull<CancelNode> {
    let hub = shared::new_hub(parent);
    // SAFETY: a new node, fully initialised; we hold both its handles. A
    // hub born done (its parent was) passes that on to each shard below.
    unsafe { attach(hub, false) };
    let shards = (0..shards_for_cpus())
        .map(|_| {
            // SAFETY: as above.
            let shard = unsafe { shared::new_shard(hub) };
            // SAFETY: a new node; we hold its one handle until `install`.
            unsafe { attach(shard, false) };
            shard
        })
        .collect();
    // SAFETY: the new hub and its linked shards.
    unsafe { shared::install(hub, shards) };
    hub
}

/// A second handle on a done context's scope: `with_cancel` of a context
/// that is done already shares it instead of deriving (see design.md).
///
/// # Safety
/// `scope` is a live node's own pointer, kept alive by the caller's handle.
pub(crate) unsafe fn share(scope: NonNull<CancelNode>) -> NonNull<CancelNode> {
    // SAFETY: the caller's promise.
    acquire_handle(unsafe { &scope.as_ref().header });
    scope
}

/// Links the node into its parents' lists, or inherits a parent's
/// cancellation when a list is already closed (invariant 1). Counts the
/// lists' memory references first, and the clock's if `clock_ref` (the
/// caller then calls `arm_timer`), in one store (invariant 4).
///
/// # Safety
/// `ptr` is a new node's own pointer, whose handles the caller holds, and
/// nobody else has seen it yet.
#[inline(always)] // into `cancellable`: the per-request path
unsafe fn attach(ptr: NonNull<CancelNode>, clock_ref: bool) {
    // SAFETY: the caller's promise.
    let (node, [first, second]) = unsafe { (ptr.as_ref(), entry::links(ptr)) };
    let joins = |l: Option<entry::Link>| usize::from(l.is_some_and(|(_, scope)| scope.is_some()));
    // Relaxed: the node is not shared yet; the first push (Release)
    // publishes it. The handles' reference, and one per list and clock.
    node.refs.store(
        1 + joins(first) + joins(second) + usize::from(clock_ref),
        Relaxed,
    );
    let mut closed = first.and_then(|(link, scope)| {
        // SAFETY: the node's own links (entry invariants 1, 2), unlinked.
        let pushed = unsafe { attach_link(node, scope, link) };
        pushed.err().map(|w| (w, scope))
    });
    if let Some((link, scope)) = second {
        if closed.is_some() {
            // Never tried: mark it so nobody withdraws it later (inv. 2).
            // SAFETY: the node's own link, unlinked.
            unsafe { link.as_ref() }.mark_unlinked();
            if scope.is_some() {
                give_back_ref(node); // its list's count (invariant 4)
            }
        } else {
            // SAFETY: as above.
            closed = unsafe { attach_link(node, scope, link) }
                .err()
                .map(|w| (w, scope));
        }
    }
    if let Some((word, Some(parent_scope))) = closed {
        // SAFETY: we hold a handle on the parent that owns that scope.
        let parent_scope = unsafe { parent_scope.as_ref() };
        let (err, record) = parent_scope.published(word);
        // SAFETY: the caller's promise.
        unsafe { cancel::cancel(ptr, err, record, Holder::Handle) };
    }
}

/// Links `link` of `node` into `parent_scope`'s list, which gets the memory
/// reference counted for it (invariant 4) or, if closed, gives it back;
/// marks the link unlinked when there is no list.
///
/// # Safety
/// `link` is one of `node`'s links, unlinked, with the node's provenance
/// (`entry::link_ptrs`).
unsafe fn attach_link(
    node: &CancelNode,
    parent_scope: Option<NonNull<CancelNode>>,
    link: NonNull<Entry>,
) -> Result<(), usize> {
    let Some(parent_scope) = parent_scope else {
        // SAFETY: the node's own link (caller).
        unsafe { link.as_ref() }.mark_unlinked();
        return Ok(());
    };
    // SAFETY: `node` holds a handle on the parent that owns this scope.
    let list = unsafe { &parent_scope.as_ref().list };
    // SAFETY: the link is unlinked, is a `Child`/`MergeLink` field of the
    // node (entry invariants 1, 2), and lives as long as the node's memory,
    // which `refs` counts.
    unsafe { list.push(link, &node.refs) }
}

/// Gives back a memory reference counted for a list or clock that never
/// took it (invariant 4); never the last, as the caller holds the handles'.
fn give_back_ref(node: &CancelNode) {
    // Relaxed: as any decrement that cannot be the last.
    node.refs.fetch_sub(1, Relaxed);
}

/// Arms the node's own timer, unless it is done already (invariant 3).
///
/// # Safety
/// `ptr` is a deadline node's own pointer, whose handles the caller holds,
/// attached with the clock's reference counted (invariant 4).
unsafe fn arm_timer(ptr: NonNull<CancelNode>) {
    // SAFETY: the caller's promise; the timer pointer carries the node's
    // provenance, for the hooks to step back (entry invariant 2).
    let Some(timer) = (unsafe { entry::timer_ptr(ptr) }) else {
        return;
    };
    // SAFETY: as above.
    let node = unsafe { ptr.as_ref() };
    if node.err().is_some() {
        // Done first: its close's disarm withdrew the timer, or will, and
        // neither involves the clock (`TimerEntry::built`).
        give_back_ref(node); // the clock's count, never taken
        return;
    }
    // SAFETY: a node with a timer is a deadline node.
    let clock = unsafe { layout::own_clock(ptr) };
    // SAFETY: the timer is a field of the node, built queued, never moved,
    // never armed before, and the reference counted in `attach` is the clock's.
    unsafe { clock.arm(timer) };
    // SAFETY (for the disarms below): the timer was armed on this clock
    // and the node is alive (we hold a handle).
    // A cancel that ran before `arm` could not disarm; disarm now.
    if node.err().is_some() {
        // SAFETY: see above.
        unsafe { clock.disarm(timer) };
        return;
    }
    // A manual clock's `advance` may have passed our deadline while we
    // armed, and fires nothing until the next `advance`: fire it here
    // (if the disarm wins, nobody else will).
    // (Asked of a manual clock only: the system clock's `now()` is a
    // clock read that its driver does not need.)
    // SAFETY: see above.
    let due = || unsafe { timer.as_ref() }.deadline() <= clock.now();
    // SAFETY: see above.
    if clock.is_manual() && due() && unsafe { clock.disarm(timer) } {
        let record = node.claim_deadline_record();
        // SAFETY: the caller's promise.
        unsafe { cancel::cancel(ptr, Error::DeadlineExceeded, record, Holder::Handle) };
    }
}

/// The hooks every node's timer is armed with.
static TIMER_HOOKS: TimerHooks = TimerHooks {
    fire: fire_timer,
    release: release_timer,
};

/// Timer hook: the node's deadline is due; cancel it.
///
/// # Safety
/// `timer` is the pointer given to `arm` by `arm_timer`, and the clock still
/// holds the memory reference taken for it (refs invariant 2).
unsafe fn fire_timer(timer: NonNull<TimerEntry>) {
    // SAFETY: a node's timer field (entry invariants 1, 2), kept alive by
    // the clock's reference (caller).
    let node = unsafe { timer_node(timer) };
    // SAFETY: as above.
    let record = unsafe { node.as_ref() }.claim_deadline_record();
    // SAFETY: as above; the clock holds a memory reference.
    unsafe { cancel::cancel(node, Error::DeadlineExceeded, record, Holder::Memory) };
}

/// Timer hook: the clock is done with the node's timer.
///
/// # Safety
/// As `fire_timer`; the clock gives its reference up here, exactly once.
unsafe fn release_timer(timer: NonNull<TimerEntry>) {
    // SAFETY: the clock owned this memory reference (refs invariant 2).
    unsafe { release_node_ref(timer_node(timer)) }
}
