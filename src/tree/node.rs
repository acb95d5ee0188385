//! The layouts of the tree's nodes, and the owning reference to one.
//!
//! Every derived context is one heap node. All kinds start with a
//! [`Header`]; cancellable kinds (`with_cancel`, deadlines, `merge`) are a
//! [`CancelNode`], value kinds a `ValueNode` (`value.rs`).
//! `Context::background()` and `Context::todo()` are no node at all: a
//! [`NodeRef`] to them is one of two addresses no allocation can have, so
//! deriving from them touches no shared memory.
//!
//! Invariants (the counts themselves are `refs.rs`'s):
//! 1. A node's fields other than the atomics are written only before it is
//!    shared, except the parent cells, which only teardown empties; teardown
//!    runs once `handles` is zero, when no reader of those cells is left.
//! 2. `Header::scope` is the node itself for a cancellable node, else the
//!    nearest cancellable ancestor; the parent handles keep it alive.
//! 3. The record slot is written once (state invariant 2), and owns one
//!    strong count of its `Arc<Record>` until the node is freed.

use super::list::{Entry, List};
use super::state::{err_of, CAUSE};
use crate::clock::Clock;
use crate::error::{Cause, Error};
use crate::sync::Ordering::{AcqRel, Acquire};
use crate::sync::{AtomicUsize, LeakTrack, UnsafeCell};
use crate::time::TimerEntry;
use std::mem::{offset_of, MaybeUninit};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

/// What a node is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NodeKind {
    /// `clock.background()` of a manual clock.
    Root,
    /// `with_cancel` (and deadlines later than the parent's).
    Cancel,
    /// `with_deadline`, `with_timeout` with a deadline of its own.
    Deadline,
    /// `merge(a, b)`.
    Merge,
    /// `with_value`.
    Value,
    /// `without_cancel`.
    WithoutCancel,
}

/// The two roots that are no node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Root {
    /// `Context::background()`.
    Background,
    /// `Context::todo()`.
    Todo,
}

/// `Root::Background` and `Root::Todo` as addresses no allocation can have.
const BACKGROUND: usize = 8;
const TODO: usize = 16;

/// An owning reference to a node: one `handles` count on it (refs.rs), or
/// one of the two roots. `Context` is this and nothing more; a node holds
/// its parents through it. Cloning and dropping count (`refs.rs`).
pub(crate) struct NodeRef {
    ptr: NonNull<Header>,
}

// SAFETY: a counted reference on a node whose shared state is atomic;
// values are `Send + Sync` by `with_value`'s bounds.
unsafe impl Send for NodeRef {}
// SAFETY: as above; every `&self` method only reads.
unsafe impl Sync for NodeRef {}

// Identity: two references are equal when they are on the same node (or
// the same root); `Context`'s `==` and `Hash` are these.
impl PartialEq for NodeRef {
    fn eq(&self, other: &NodeRef) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for NodeRef {}

impl std::hash::Hash for NodeRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
    }
}

impl NodeRef {
    /// A reference to a root.
    pub(crate) fn root(root: Root) -> NodeRef {
        let addr = match root {
            Root::Background => BACKGROUND,
            Root::Todo => TODO,
        };
        NodeRef {
            // SAFETY: `addr` is a non-zero constant.
            ptr: unsafe { NonNull::new_unchecked(addr as *mut Header) },
        }
    }

    /// Adopts one handle count on `h`.
    ///
    /// # Safety
    /// The caller gives up one handle count it owns on the live node `h`,
    /// or `h` is a root's address taken from another `NodeRef`.
    pub(crate) unsafe fn adopt(h: NonNull<Header>) -> NodeRef {
        NodeRef { ptr: h }
    }

    /// The address, node or root (for `Clone`, which counts it).
    pub(super) fn raw(&self) -> NonNull<Header> {
        self.ptr
    }

    /// The node's pointer (`None` for the roots), with the provenance of
    /// the whole allocation (see "Provenance" in docs/design.md): the one to
    /// release or free through, never one taken from a `&Header`.
    pub(crate) fn node_ptr(&self) -> Option<NonNull<Header>> {
        self.header().is_some().then_some(self.ptr)
    }

    /// Gives up this reference as a raw node pointer (`None` for the roots);
    /// the caller then owns its handle count.
    pub(crate) fn into_raw(self) -> Option<NonNull<Header>> {
        let node = self.node_ptr();
        std::mem::forget(self);
        node
    }

    /// Which root this is, if it is one.
    pub(crate) fn as_root(&self) -> Option<Root> {
        match self.ptr.as_ptr() as usize {
            BACKGROUND => Some(Root::Background),
            TODO => Some(Root::Todo),
            _ => None,
        }
    }

    /// The node (`None` for the roots).
    #[inline]
    pub(crate) fn header(&self) -> Option<&Header> {
        if self.ptr.as_ptr() as usize <= TODO {
            return None;
        }
        // SAFETY: a non-root reference owns a handle, so the node is alive.
        Some(unsafe { self.ptr.as_ref() })
    }

    /// The nearest cancellable ancestor-or-self, if any.
    #[inline]
    pub(crate) fn scope(&self) -> Option<&CancelNode> {
        // SAFETY: the scope is this node or an ancestor, kept alive by our
        // handle through the parent chain (invariant 2).
        self.scope_ptr().map(|s| unsafe { &*s.as_ptr() })
    }

    /// The scope's pointer, for callers that keep it or link into its list.
    #[inline]
    pub(crate) fn scope_ptr(&self) -> Option<NonNull<CancelNode>> {
        self.header()?.scope
    }

    /// This node as a cancellable node, if it is one.
    pub(crate) fn as_cancel(&self) -> Option<&CancelNode> {
        let h = self.node_ptr()?;
        // SAFETY: our handle keeps the node alive, and `h` is the
        // allocation's own pointer.
        let c = unsafe { as_cancel(h) }?;
        // SAFETY: as above.
        Some(unsafe { &*c.as_ptr() })
    }

    /// The nearest ancestor-or-self that answers value lookups.
    pub(crate) fn values(&self) -> Option<NonNull<Header>> {
        self.header()?.values
    }

    /// The effective deadline (`None` for never).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.scope()?.deadline
    }

    /// The clock of the tree's root.
    pub(crate) fn clock(&self) -> Clock {
        match self.header() {
            Some(n) => n.clock.clone(),
            None => Clock::system(),
        }
    }
}

/// The common head of every node (first field of each node type).
///
/// `refs` is the last field so that it shares a cache line with the
/// `CancelNode` fields a drain touches (see `CancelNode`).
#[repr(C)]
pub(crate) struct Header {
    pub(super) handles: AtomicUsize,
    pub(crate) kind: NodeKind,
    /// The node this one was derived from, until teardown (invariant 1).
    parent: UnsafeCell<Option<NodeRef>>,
    /// The nearest cancellable ancestor-or-self; `None` if never done.
    pub(crate) scope: Option<NonNull<CancelNode>>,
    /// The nearest ancestor-or-self that answers value lookups.
    pub(crate) values: Option<NonNull<Header>>,
    pub(crate) clock: Clock,
    /// Frees the allocation (its type is erased here; value nodes are
    /// generic).
    pub(super) free: unsafe fn(NonNull<Header>),
    _track: LeakTrack,
    pub(super) refs: AtomicUsize,
}

/// A cause given to `cancel_with_cause` or a deadline: the reason and the
/// error, shared by every node it reaches.
pub(crate) struct Record {
    pub(crate) err: Error,
    pub(crate) cause: Cause,
}

impl Record {
    /// A shared record.
    pub(crate) fn new(err: Error, cause: Cause) -> Arc<Record> {
        Arc::new(Record { err, cause })
    }
}

/// A cancellable node.
///
/// Field order is for the drain, which reaches each child through `link`
/// and touches the header's `refs`, the list's `state` and `sweeping`,
/// `link` and `has_timer`, and nothing else: together they span under 64
/// bytes, so a child costs at most two cache lines (checked below).
#[repr(C)]
pub(crate) struct CancelNode {
    pub(crate) header: Header,
    /// The node's list of children, waiters and callbacks (`list.rs`).
    pub(crate) list: List,
    /// Our entry in the first parent scope's list.
    pub(crate) link: Entry,
    pub(super) has_timer: bool,
    /// `Arc<Record>` as a raw pointer, or 0; written once (invariant 3).
    record: AtomicUsize,
    /// `merge` only: our entry in the second parent scope's list.
    pub(crate) link2: Entry,
    /// The lists `link` and `link2` went into (immutable).
    pub(crate) parent_scope: Option<NonNull<CancelNode>>,
    pub(crate) parent_scope2: Option<NonNull<CancelNode>>,
    /// `merge` only: the second parent, until teardown (invariant 1).
    parent2: UnsafeCell<Option<NodeRef>>,
    /// The effective deadline: the earlier of our own and the parents'.
    pub(crate) deadline: Option<Instant>,
    /// Our own timer, initialised iff `has_timer` (our deadline is earlier
    /// than the parents').
    pub(super) timer: MaybeUninit<TimerEntry>,
    /// The cause our own deadline fires with.
    pub(super) deadline_cause: Option<Cause>,
}

/// Bytes of the drain's fields before a child's `link` (from `refs`).
pub(crate) const DRAIN_BEFORE_LINK: usize = offset_of!(CancelNode, link) - offset_of!(Header, refs);
/// Bytes of the drain's fields from a child's `link` on (to `has_timer`).
pub(crate) const DRAIN_FROM_LINK: usize =
    offset_of!(CancelNode, has_timer) + 1 - offset_of!(CancelNode, link);

// The drain's fields stay within one 64-byte span (see `CancelNode`).
#[cfg(not(loom))]
const _: () = assert!(DRAIN_BEFORE_LINK + DRAIN_FROM_LINK <= 64);

// SAFETY: all shared mutation goes through atomics; the parent cells follow
// invariant 1; the value is `Send + Sync` (required by `with_value`).
unsafe impl Send for Header {}
// SAFETY: as above.
unsafe impl Sync for Header {}
// SAFETY: as above; the parent scopes are kept alive by the parent handles.
unsafe impl Send for CancelNode {}
// SAFETY: as above.
unsafe impl Sync for CancelNode {}

/// `h` as a cancellable node, if it is one. Takes the node's pointer: one
/// taken from a `&Header` may not reach the rest of the node.
///
/// # Safety
/// `h` is a live node's pointer with the provenance of its allocation.
pub(crate) unsafe fn as_cancel(h: NonNull<Header>) -> Option<NonNull<CancelNode>> {
    // SAFETY: alive (caller).
    let kind = unsafe { h.as_ref() }.kind;
    // Nodes of these kinds are allocated as `CancelNode`, whose first field
    // is the header (`repr(C)`).
    matches!(
        kind,
        NodeKind::Cancel | NodeKind::Deadline | NodeKind::Merge
    )
    .then(|| h.cast())
}

/// Frees a node allocated as a `Box<T>` whose first field is the header.
///
/// # Safety
/// `h` must come from `Box::<T>::into_raw` and `refs` must be zero.
pub(super) unsafe fn free_box<T>(h: NonNull<Header>) {
    // SAFETY: the caller guarantees the allocation's type and ownership.
    drop(unsafe { Box::from_raw(h.as_ptr().cast::<T>()) });
}

impl Header {
    /// A header with one handle and one memory reference.
    pub(super) fn new(kind: NodeKind, parent: Option<NodeRef>, clock: Clock) -> Header {
        Header {
            handles: AtomicUsize::new(1),
            refs: AtomicUsize::new(1),
            kind,
            parent: UnsafeCell::new(parent),
            scope: None,
            values: None,
            clock,
            free: free_box::<Header>,
            _track: LeakTrack::new(),
        }
    }

    /// The parent this node was derived from.
    pub(crate) fn parent(&self) -> Option<&NodeRef> {
        // SAFETY: a caller with a `&Header` from a live reference holds a
        // handle, so teardown has not emptied the cell (invariant 1).
        self.parent.with(|p| unsafe { (*p).as_ref() })
    }

    /// Empties the parent cell at teardown.
    ///
    /// # Safety
    /// `handles` is zero: nobody else reads the cell (invariant 1).
    pub(super) unsafe fn take_parent(&self) -> Option<NodeRef> {
        // SAFETY: the caller's promise.
        self.parent.with_mut(|p| unsafe { (*p).take() })
    }
}

impl CancelNode {
    /// `err()` of this node.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        err_of(self.list.word())
    }

    /// The err and record a closed state word stands for.
    pub(crate) fn published(&self, word: usize) -> (Error, Option<Arc<Record>>) {
        let err = err_of(word).unwrap_or(Error::Canceled);
        if word & CAUSE == 0 {
            return (err, None);
        }
        (err, Some(self.record_arc()))
    }

    /// `cause()` of this node.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let word = self.list.word();
        let err = err_of(word)?;
        if word & CAUSE == 0 {
            return Some(Cause::of(err));
        }
        Some(self.record_ref().cause.clone())
    }

    /// The slot's pointer as `Arc::into_raw` gave it: counting needs the
    /// whole `Arc` allocation's provenance, which `&Record` lacks.
    fn record_ptr(&self) -> *const Record {
        // Acquire: pairs with the slot's publishing compare-exchange.
        self.record.load(Acquire) as *const Record
    }

    fn record_ref(&self) -> &Record {
        // SAFETY: only called after seeing CAUSE, so the slot is filled
        // (state inv. 2) and stays so until the node is freed.
        unsafe { &*self.record_ptr() }
    }

    fn record_arc(&self) -> Arc<Record> {
        let raw = self.record_ptr();
        // SAFETY: only called after seeing CAUSE or filling the slot, so it
        // owns one strong count of this `Arc`; we add one.
        unsafe {
            Arc::increment_strong_count(raw);
            Arc::from_raw(raw)
        }
    }

    /// Fills the record slot if empty; returns the record it holds now.
    pub(crate) fn claim_record(&self, record: Arc<Record>) -> Arc<Record> {
        let raw = Arc::into_raw(record);
        // AcqRel: Release publishes the record to readers of CAUSE;
        // Acquire reads a competitor's record if it was first.
        match self
            .record
            .compare_exchange(0, raw as usize, AcqRel, Acquire)
        {
            // SAFETY: the slot keeps the count we gave it; we add ours.
            Ok(_) => unsafe {
                Arc::increment_strong_count(raw);
                Arc::from_raw(raw)
            },
            Err(_) => {
                // SAFETY: ours was not stored; take it back to drop it.
                drop(unsafe { Arc::from_raw(raw) });
                self.record_arc()
            }
        }
    }

    /// The cause our own deadline fires with.
    pub(crate) fn deadline_record(&self) -> Option<Arc<Record>> {
        let cause = self.deadline_cause.clone()?;
        Some(Record::new(Error::DeadlineExceeded, cause))
    }

    /// `merge` only: the second parent.
    pub(crate) fn parent2(&self) -> Option<&NodeRef> {
        // SAFETY: as `Header::parent`.
        self.parent2.with(|p| unsafe { (*p).as_ref() })
    }

    /// Empties the second parent cell at teardown.
    ///
    /// # Safety
    /// As [`Header::take_parent`].
    pub(super) unsafe fn take_parent2(&self) -> Option<NodeRef> {
        // SAFETY: the caller's promise.
        self.parent2.with_mut(|p| unsafe { (*p).take() })
    }

    /// The header's pointer (the first field), with the node's provenance.
    pub(crate) fn header_ptr(node: NonNull<CancelNode>) -> NonNull<Header> {
        node.cast()
    }

    /// A new node's fields after the header, for `create.rs`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        header: Header,
        parent_scope: Option<NonNull<CancelNode>>,
        parent_scope2: Option<NonNull<CancelNode>>,
        parent2: Option<NodeRef>,
        deadline: Option<Instant>,
        timer: Option<TimerEntry>,
        deadline_cause: Option<Cause>,
    ) -> CancelNode {
        CancelNode {
            header,
            list: List::new(),
            link: Entry::new(super::list::EntryKind::Child),
            has_timer: timer.is_some(),
            record: AtomicUsize::new(0),
            link2: Entry::new(super::list::EntryKind::MergeLink),
            parent_scope,
            parent_scope2,
            parent2: UnsafeCell::new(parent2),
            deadline,
            timer: match timer {
                Some(t) => MaybeUninit::new(t),
                None => MaybeUninit::uninit(),
            },
            deadline_cause,
        }
    }
}

impl Drop for CancelNode {
    fn drop(&mut self) {
        if self.has_timer {
            // SAFETY: initialised at creation; dropped only here.
            unsafe { self.timer.assume_init_drop() };
        }
        // Acquire: we are the last holder (refs reached zero).
        let raw = self.record.load(Acquire) as *const Record;
        if !raw.is_null() {
            // SAFETY: the slot owned one strong count; we are freeing.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}
