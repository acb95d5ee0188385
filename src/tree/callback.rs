//! `after_func` registrations: a callback as a list entry.
//!
//! Invariants:
//! 1. Whoever marks the entry (list invariant 1) owns the callback cell:
//!    the drainer takes the callback to run or discard it, `stop` takes it
//!    to drop it.
//! 2. The registration holds a *memory* reference on its context's scope
//!    node, not a handle: it does not keep the context alive (semantics 10).
//!    If every `Context` and `CancelHandle` of the context is dropped before
//!    it is done, teardown claims the registration and drops the callback
//!    without running it: the context can no longer be done observably.
//!    The memory reference lets `stop` reach the node's list safely, and is
//!    given back when the registration is freed.
//! 3. The callback cell is touched only by whoever set the mark.
//! 4. What happened to the callback is decided separately, by one
//!    compare-exchange out of `PENDING` on `outcome`: to `STARTED` by the
//!    runner just before it calls `f`, to `DISCARDED` by teardown, to
//!    `STOPPED` by `stop` (also out of `DISCARDED`: a discarded callback
//!    never started, so the first `stop` is true). So `f` runs at most
//!    once, and `stop` returns true exactly once, iff `f` never started.
//!    A drainer that claimed the entry but finds it `STOPPED` drops `f`
//!    unrun.

use super::list::{Entry, EntryKind};
use super::node::CancelNode;
use super::refs::{acquire_ref, release_node_ref};
use crate::sync::Ordering::{AcqRel, Acquire};
use crate::sync::{release_last, AtomicUsize, LeakTrack, UnsafeCell};
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
    /// `PENDING`, then one of `STARTED`, `DISCARDED`, `STOPPED` (inv. 4).
    outcome: AtomicUsize,
    _track: LeakTrack,
}

const PENDING: usize = 0;
const STARTED: usize = 1;
const DISCARDED: usize = 2;
const STOPPED: usize = 3;

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
            acquire_ref(s);
        }
        let cb = NonNull::from(Box::leak(Box::new(Callback {
            entry: Entry::new(EntryKind::Callback),
            // The holder's, and the list's it joins (pushed just below).
            refs: AtomicUsize::new(1 + usize::from(s.is_some())),
            scope,
            f: UnsafeCell::new(Some(f)),
            outcome: AtomicUsize::new(PENDING),
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
            // Done already: the mark is ours (the failed push marked it),
            // and no `stop` can have come first: nobody else has the
            // registration yet, so the start always settles (invariant 4).
            // SAFETY: we own the mark (invariant 3).
            let f = unsafe { c.take() };
            return (cb, f.filter(|_| c.settle(PENDING, STARTED)));
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

    /// Moves `outcome` from `from` to `to`; true if this call did.
    fn settle(&self, from: usize, to: usize) -> bool {
        // AcqRel: the one decision between runner, teardown and `stop`
        // (inv. 4); each side sees what the other did before deciding.
        self.outcome
            .compare_exchange(from, to, AcqRel, Acquire)
            .is_ok()
    }

    /// `stop`'s decision (invariant 4): true if `f` never started and no
    /// earlier `stop` said so.
    pub(crate) fn settle_stop(&self) -> bool {
        self.settle(PENDING, STOPPED) || self.settle(DISCARDED, STOPPED)
    }

    /// Runs a callback the drainer claimed, unless `stop` came first. The
    /// caller catches its panic (unwind.rs).
    ///
    /// # Safety
    /// The caller claimed `cb` and holds a reference on it.
    pub(crate) unsafe fn run(cb: NonNull<Callback>) {
        // SAFETY: the caller's reference keeps it alive.
        let cb = unsafe { cb.as_ref() };
        // SAFETY: the caller claimed the entry: the mark is ours.
        let Some(f) = (unsafe { cb.take() }) else {
            return;
        };
        if cb.settle(PENDING, STARTED) {
            f();
        } // else stopped after our claim, before the start (inv. 4): dropped
    }

    /// Drops a callback that teardown claimed, unrun (invariant 2).
    ///
    /// # Safety
    /// The caller claimed `cb` and holds a reference on it.
    pub(crate) unsafe fn discard(cb: NonNull<Callback>) {
        // SAFETY: the caller's reference keeps it alive.
        let cb = unsafe { cb.as_ref() };
        // A `stop` that came first has said so already; either way `f`
        // never starts.
        cb.settle(PENDING, DISCARDED);
        // SAFETY: the caller claimed the entry: the mark is ours.
        drop(unsafe { cb.take() });
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
