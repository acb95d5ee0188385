//! `after_func` registrations: a callback as a list entry.
//!
//! Invariants:
//! 1. Whoever marks the entry (list invariant 1) owns the callback cell:
//!    the drainer takes the callback to run or discard it, `stop` takes it
//!    to drop it.
//! 2. The registration holds a *memory* reference on its context's node, not
//!    a handle: it does not keep the context alive (contract semantics 10).
//!    If every `Context` and `CancelHandle` of the context is dropped before
//!    it is done, teardown claims the registration and drops the callback
//!    without running it: the context can no longer be done observably.
//!    The memory reference lets `stop` reach the node's list safely, and is
//!    given back when the registration is freed.
//! 3. The callback cell is touched only by the owner of the mark.
//! 4. What happened to the callback is decided separately, by one
//!    compare-exchange out of `PENDING` on `outcome`: to `STARTED` by the
//!    runner just before it calls `f`, to `DISCARDED` by teardown, to
//!    `STOPPED` by `stop` (also out of `DISCARDED`: a discarded callback
//!    never started, so the first `stop` is true). So `f` runs at most
//!    once, and `stop` returns true exactly once, iff `f` never started.
//!    A drainer that claimed the entry but finds it `STOPPED` drops `f`
//!    unrun.

use crate::list::{Entry, EntryKind};
use crate::node::{release_ref, CancelNode};
use crate::sync::Ordering::{AcqRel, Acquire};
use crate::sync::{release_last, AtomicUsize, LeakTrack, UnsafeCell};
use std::fmt;
use std::ptr::NonNull;

type Func = Box<dyn FnOnce() + Send + 'static>;

/// A registration (first field: the entry, so the pointers convert).
#[repr(C)]
pub(crate) struct Callback {
    entry: Entry,
    refs: AtomicUsize,
    /// The node whose list holds us; we hold a memory reference (inv. 2).
    owner: Option<NonNull<CancelNode>>,
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
    /// Takes the callback; only the owner of the mark may (invariant 3).
    fn take(&self) -> Option<Func> {
        // SAFETY: invariant 3: we own the mark, so nobody else touches it.
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

    /// Runs a callback the drainer claimed, unless `stop` came first. The
    /// caller catches its panic (unwind.rs).
    ///
    /// # Safety
    /// The caller claimed `cb` and holds a reference on it.
    pub(crate) unsafe fn run(cb: NonNull<Callback>) {
        // SAFETY: the caller's reference keeps it alive.
        let cb = unsafe { cb.as_ref() };
        let Some(f) = cb.take() else { return };
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
        drop(cb.take());
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
            if let Some(owner) = cb.owner {
                // SAFETY: invariant 2: our memory reference, given back once.
                unsafe { release_ref(owner.as_ref().as_header()) };
            }
        }
    }
}

/// Registers `f` on `owner` (or on nothing, for a context that is never
/// done). Runs `f` at once if `owner` is done already.
pub(crate) fn register(owner: Option<&CancelNode>, f: Func) -> AfterFunc {
    if let Some(o) = owner {
        o.acquire_ref();
    }
    let cb = NonNull::from(Box::leak(Box::new(Callback {
        entry: Entry::new(EntryKind::Callback),
        refs: AtomicUsize::new(1),
        owner: owner.map(NonNull::from),
        f: UnsafeCell::new(Some(f)),
        outcome: AtomicUsize::new(PENDING),
        _track: LeakTrack::new(),
    })));
    // SAFETY: just allocated; we hold its only reference.
    let c = unsafe { cb.as_ref() };
    let Some(o) = owner else {
        return AfterFunc { cb };
    };
    // SAFETY: the entry is new, and lives while its references do.
    if unsafe { crate::list::push_counted(&o.state, &c.entry, &c.refs) }.is_err() {
        // Done already: the mark is ours (push_counted marked it), and no
        // `stop` can have come first: nobody else has the registration yet.
        let f = c.take();
        let after = AfterFunc { cb };
        if let Some(f) = f.filter(|_| c.settle(PENDING, STARTED)) {
            f();
        }
        return after;
    }
    AfterFunc { cb }
}

/// The registration returned by [`Context::after_func`](crate::Context::after_func).
///
/// Dropping it does *not* unregister the callback (as in Go); call
/// [`stop`](AfterFunc::stop) for that.
pub struct AfterFunc {
    cb: NonNull<Callback>,
}

// SAFETY: the callback is `Send`, and every shared field is atomic or
// guarded by the mark protocol (invariant 3).
unsafe impl Send for AfterFunc {}
// SAFETY: as above; `stop` through `&self` is the mark protocol.
unsafe impl Sync for AfterFunc {}

// The registration changes only through the mark (invariant 1), one
// atomic step; a panic cannot leave it half-claimed.
impl std::panic::UnwindSafe for AfterFunc {}
impl std::panic::RefUnwindSafe for AfterFunc {}

impl AfterFunc {
    /// Unregisters the callback: Go's `stop()`.
    ///
    /// Returns true if this call stopped the callback from running: it had
    /// not started, and no earlier `stop` returned true. A callback that was
    /// dropped unrun because every handle of its context was dropped (see
    /// [`Context::after_func`](crate::Context::after_func)) never started,
    /// so the first `stop` after that is true too. False if it has started
    /// (it is running or ran) because the context is done, or an earlier
    /// `stop` returned true.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let after = ctx.after_func(|| println!("never printed"));
    /// assert!(after.stop());
    /// assert!(!after.stop());
    /// cancel.cancel();
    /// ```
    pub fn stop(&self) -> bool {
        // SAFETY: we hold a reference on the registration.
        let cb = unsafe { self.cb.as_ref() };
        if !cb.settle(PENDING, STOPPED) && !cb.settle(DISCARDED, STOPPED) {
            return false; // started, or stopped by an earlier call
        }
        let claimed = match cb.owner {
            // SAFETY: our memory reference keeps the owner alive (inv. 2).
            Some(owner) => unsafe { owner.as_ref() }.withdraw(&cb.entry),
            None => cb.entry.mark(),
        };
        // Else the drainer claimed it; it sees STOPPED and drops `f`.
        if claimed {
            drop(cb.take());
        }
        true
    }
}

impl Drop for AfterFunc {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { Callback::release(self.cb) };
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFunc").finish_non_exhaustive()
    }
}
