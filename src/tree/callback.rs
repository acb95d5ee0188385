//! `after_func` registrations: a callback as a list entry.
//!
//! Invariants:
//! 1. Whoever marks the entry (list invariant 1) owns the callback: the
//!    drainer runs it, `stop` drops it. So it runs at most once, and `stop`
//!    returns true exactly when it prevented the run.
//! 2. The registration holds a *memory* reference on its context's scope
//!    node, not a handle: it does not keep the context alive (semantics 10).
//!    If every `Context` and `CancelHandle` of the context is dropped before
//!    it is done, teardown claims the registration and drops the callback
//!    without running it: the context can no longer be done observably.
//!    The memory reference lets `stop` reach the node's list safely, and is
//!    given back when the registration is freed.
//! 3. The callback cell is touched only by whoever set the mark.

use super::list::{Entry, EntryKind};
use super::node::CancelNode;
use super::refs::{acquire_ref, release_node_ref};
use crate::sync::{release_last, AtomicUsize, LeakTrack, UnsafeCell};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

/// The user's callback.
pub(crate) type Func = Box<dyn FnOnce() + Send + 'static>;

/// A registration (first field: the entry, so the pointers convert).
#[repr(C)]
pub(crate) struct Callback {
    entry: Entry,
    refs: AtomicUsize,
    /// The node whose list holds us; we hold a memory reference (inv. 2).
    scope: Option<NonNull<CancelNode>>,
    f: UnsafeCell<Option<Func>>,
    _track: LeakTrack,
}

impl Callback {
    /// Registers `f` on `scope` (or on nothing, for a context that is never
    /// done). Returns the registration with one reference, the caller's,
    /// and `f` back if `scope` is done already: the caller runs it at once
    /// (after taking charge of the reference, in case `f` panics).
    ///
    /// # Safety
    /// `scope` is alive (the caller holds a handle under it) and is the
    /// node's own pointer: the registration keeps it and frees through it.
    pub(crate) unsafe fn register(
        scope: Option<NonNull<CancelNode>>,
        f: Func,
    ) -> (NonNull<Callback>, Option<Func>) {
        // SAFETY: alive (caller).
        let s = scope.map(|s| unsafe { &*s.as_ptr() });
        if let Some(s) = s {
            acquire_ref(&s.header);
        }
        let cb = NonNull::from(Box::leak(Box::new(Callback {
            entry: Entry::new(EntryKind::Callback),
            refs: AtomicUsize::new(1),
            scope,
            f: UnsafeCell::new(Some(f)),
            _track: LeakTrack::new(),
        })));
        // SAFETY: just allocated; we hold its only reference.
        let c = unsafe { cb.as_ref() };
        let Some(s) = s else {
            return (cb, None);
        };
        // SAFETY: the entry is new, is the first field of a `Callback`
        // (entry invariant 1), its pointer is the registration's own (entry
        // invariant 2), and it lives while its references do.
        if unsafe { s.list.push(Callback::entry_ptr(cb), &c.refs) }.is_err() {
            // Done already: the mark is ours (the failed push marked it).
            // SAFETY: we own the mark (invariant 3).
            return (cb, unsafe { c.take() });
        }
        (cb, None)
    }

    /// The registration's list entry.
    pub(crate) fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The list entry's pointer, with the registration's provenance (entry
    /// invariant 2): the first field, so a cast.
    pub(crate) fn entry_ptr(cb: NonNull<Callback>) -> NonNull<Entry> {
        cb.cast()
    }

    /// The scope whose list holds the entry; the registration's memory
    /// reference keeps it alive (invariant 2).
    pub(crate) fn scope(&self) -> Option<&CancelNode> {
        // SAFETY: our memory reference keeps the node alive (invariant 2).
        self.scope.map(|s| unsafe { &*s.as_ptr() })
    }

    /// Takes the callback out of its cell.
    ///
    /// # Safety
    /// The caller owns the mark (invariant 3).
    pub(crate) unsafe fn take(&self) -> Option<Func> {
        // SAFETY: we own the mark, so nobody else touches the cell.
        self.f.with_mut(|f| unsafe { (*f).take() })
    }

    /// Runs a callback the drainer claimed; returns its panic, if any.
    ///
    /// # Safety
    /// The caller claimed `cb` and holds a reference on it.
    pub(crate) unsafe fn run(cb: NonNull<Callback>) -> Option<Box<dyn Any + Send>> {
        // SAFETY: the caller's reference keeps it alive; it owns the mark.
        let f = unsafe { cb.as_ref().take() }?;
        catch_unwind(AssertUnwindSafe(f)).err()
    }

    /// Drops a callback that teardown claimed, unrun (invariant 2).
    ///
    /// # Safety
    /// The caller claimed `cb` and holds a reference on it.
    pub(crate) unsafe fn discard(cb: NonNull<Callback>) {
        // SAFETY: the caller's reference keeps it alive; it owns the mark.
        drop(unsafe { cb.as_ref().take() });
    }

    /// Drops one memory reference; frees at zero.
    ///
    /// # Safety
    /// The caller owns one reference on `cb`.
    pub(crate) unsafe fn release(cb: NonNull<Callback>) {
        // SAFETY: alive until our decrement.
        let refs = &unsafe { cb.as_ref() }.refs;
        if release_last(refs) {
            // SAFETY: last reference; allocated as a Box in `register`.
            let cb = unsafe { Box::from_raw(cb.as_ptr()) };
            if let Some(scope) = cb.scope {
                // SAFETY: invariant 2: our memory reference, given back once.
                unsafe { release_node_ref(scope) };
            }
        }
    }
}
