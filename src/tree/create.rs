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

use super::cancel::{self, Holder};
use super::entry::{self, timer_node};
use super::list::Entry;
use super::node::{free_box, CancelNode, Header, NodeKind, NodeRef};
use super::refs::{acquire_handle, acquire_ref, release_node_ref};
use super::value::{filter_of, ValueHead, ValueNode};
use crate::clock::Clock;
use crate::error::{Cause, Error};
use crate::sync::AtomicUsize;
use crate::time::{TimerEntry, TimerHooks};
use std::ptr::NonNull;
use std::time::Instant;

/// A new node's own deadline, relative to its parents'.
pub(crate) enum OwnDeadline {
    /// None of its own: it inherits the parents' (`with_cancel`, `merge`).
    Inherited,
    /// Earlier than the parents' and still ahead: a timer is armed.
    Ahead {
        /// When the timer fires.
        at: Instant,
        /// What `cause()` reports when it does.
        cause: Option<Cause>,
    },
    /// Earlier than the parents' and already past: done at creation.
    Passed {
        /// The deadline that has passed.
        at: Instant,
        /// What `cause()` reports.
        cause: Option<Cause>,
    },
}

/// A root node for a manual clock.
pub(crate) fn root(clock: Clock) -> NodeRef {
    // SAFETY: a new node with one handle, which we hand over.
    unsafe { NodeRef::adopt(leak(Box::new(Header::new(NodeKind::Root, None, clock)))) }
}

/// A `without_cancel` node: values of `parent`, never done.
pub(crate) fn without_cancel(parent: &NodeRef) -> NodeRef {
    let mut h = Header::new(
        NodeKind::WithoutCancel,
        Some(parent.clone()),
        parent.clock(),
    );
    h.values = parent.values();
    // SAFETY: as in `root`.
    unsafe { NodeRef::adopt(leak(Box::new(h))) }
}

/// The identity of a `Key`, as a value node stores it.
pub(crate) struct KeyId {
    /// The key's address: unique, and fixes the value's type.
    pub(crate) id: usize,
    /// Its slot in the lookup filter (`value.rs`).
    pub(crate) slot: u32,
    /// Its name, for `Display`.
    pub(crate) name: &'static str,
}

/// A `with_value` node carrying `value` under `key`.
pub(crate) fn value<T: Send + Sync + 'static>(parent: &NodeRef, key: KeyId, value: T) -> NodeRef {
    let mut header = Header::new(NodeKind::Value, Some(parent.clone()), parent.clock());
    header.scope = parent.header().and_then(|h| h.scope);
    header.free = free_box::<ValueNode<T>>;
    let outer = parent.values();
    let node = Box::new(ValueNode {
        head: ValueHead {
            header,
            key: key.id,
            key_name: key.name,
            outer,
            // SAFETY: `outer` is kept alive by the parent handle we hold.
            filter: unsafe { filter_of(outer) }.with(key.slot),
        },
        value,
    });
    let ptr = leak(node);
    // SAFETY: not shared yet; it answers lookups itself.
    unsafe { (*ptr.as_ptr()).values = Some(ptr) };
    // SAFETY: as in `root`.
    unsafe { NodeRef::adopt(ptr) }
}

/// Allocates, links and (if it has a deadline ahead) arms a cancellable
/// child of `parent` (and of `parent2`, for a merge). Returns it with two
/// handles (invariant 1).
pub(crate) fn cancellable(
    parent: &NodeRef,
    parent2: Option<&NodeRef>,
    own: OwnDeadline,
) -> NonNull<CancelNode> {
    let kind = match (parent2, &own) {
        (Some(_), _) => NodeKind::Merge,
        (None, OwnDeadline::Inherited) => NodeKind::Cancel,
        (None, _) => NodeKind::Deadline,
    };
    let inherited = match (parent.deadline(), parent2.and_then(NodeRef::deadline)) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    let mut header = Header::new(kind, Some(parent.clone()), parent.clock());
    header.handles = AtomicUsize::new(2);
    header.free = free_box::<CancelNode>;
    header.values = match kind {
        NodeKind::Merge => None, // set to itself below
        _ => parent.values(),
    };
    let (deadline, timer, cause, passed) = match own {
        OwnDeadline::Inherited => (inherited, None, None, false),
        OwnDeadline::Ahead { at, cause } => (
            Some(at),
            Some(TimerEntry::new(at, &TIMER_HOOKS)),
            cause,
            false,
        ),
        OwnDeadline::Passed { at, cause } => (Some(at), None, cause, true),
    };
    let node = CancelNode::new(
        header,
        parent.header().and_then(|h| h.scope),
        parent2.and_then(|p| p.header()).and_then(|h| h.scope),
        parent2.cloned(),
        deadline,
        timer,
        cause,
    );
    let ptr = NonNull::from(Box::leak(Box::new(node)));
    // SAFETY: not shared yet; we finish its self-references in place.
    unsafe {
        (*ptr.as_ptr()).header.scope = Some(ptr);
        if kind == NodeKind::Merge {
            (*ptr.as_ptr()).header.values = Some(ptr.cast());
        }
    }
    // SAFETY: freshly allocated and fully initialised; we hold both its
    // handles, and `ptr` is the allocation's pointer.
    unsafe {
        attach(ptr);
        if passed {
            let record = ptr.as_ref().deadline_record();
            cancel::cancel(ptr, Error::DeadlineExceeded, record, Holder::Handle);
        }
        arm_timer(ptr);
    }
    ptr
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
/// cancellation when a list is already closed (invariant 1).
///
/// # Safety
/// `ptr` is a new node's own pointer, whose handles the caller holds.
unsafe fn attach(ptr: NonNull<CancelNode>) {
    // SAFETY: the caller's promise.
    let (node, [link, link2]) = unsafe { (ptr.as_ref(), entry::link_ptrs(ptr)) };
    // SAFETY: the node's own links (entry invariants 1, 2), unlinked.
    let closed = match unsafe { attach_link(node, node.parent_scope, link) } {
        Err(word) => {
            // Never tried: mark it so nobody withdraws it later (inv. 2).
            node.link2.mark_unlinked();
            Some((word, node.parent_scope))
        }
        // SAFETY: as above.
        Ok(()) => unsafe { attach_link(node, node.parent_scope2, link2) }
            .err()
            .map(|word| (word, node.parent_scope2)),
    };
    if let Some((word, Some(parent_scope))) = closed {
        // SAFETY: we hold a handle on the parent that owns that scope.
        let parent_scope = unsafe { parent_scope.as_ref() };
        let (err, record) = parent_scope.published(word);
        // SAFETY: the caller's promise.
        unsafe { cancel::cancel(ptr, err, record, Holder::Handle) };
    }
}

/// Links `link` of `node` into `parent_scope`'s list (which takes a memory
/// reference on the node); marks it unlinked when there is no list.
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
    unsafe { list.push(link, &node.header.refs) }
}

/// Arms the node's own timer, unless it is done already (invariant 3).
///
/// # Safety
/// As [`attach`].
unsafe fn arm_timer(ptr: NonNull<CancelNode>) {
    // SAFETY: the caller's promise; the timer pointer carries the node's
    // provenance, for the hooks to step back (entry invariant 2).
    let Some(timer) = (unsafe { entry::timer_ptr(ptr) }) else {
        return;
    };
    // SAFETY: as above.
    let node = unsafe { ptr.as_ref() };
    if node.err().is_some() {
        return;
    }
    let clock = &node.header.clock;
    // The clock's reference; published by `arm` itself.
    acquire_ref(&node.header);
    // SAFETY: the timer is a field of the node, idle, never moved, never
    // armed before, and the reference just taken is the clock's.
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
        let record = node.deadline_record();
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
    let record = unsafe { node.as_ref() }.deadline_record();
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

/// Gives up a box, keeping its contents alive as a shared node.
fn leak<T>(b: Box<T>) -> NonNull<Header> {
    NonNull::from(Box::leak(b)).cast()
}
