//! Waiters: a `Done` future or a blocked thread, as a list entry.
//!
//! A waiter is an entry of its context's list (list.rs), so cancellation
//! finds it by the same walk that finds children, and a dropped `Done` or a
//! timed-out wait withdraws it like a dropped child: nothing is left behind.
//!
//! Invariants:
//! 1. A waiter holds two memory references while linked: its holder's (the
//!    future or the waiting call) and the list's (list invariant 3).
//! 2. No lost wake-up: the waiter is registered (waker stored or thread
//!    recorded) before it is pushed, the push and the close are ordered on
//!    the state word (state invariant 3), and a future re-checks `err()`
//!    after every re-registration (atomic-waker's protocol).

use super::list::{Entry, EntryKind};
use super::node::CancelNode;
use super::state::err_of;
use crate::error::Error;
use crate::sync::{current_thread, release_last, AtomicUsize, AtomicWaker, LeakTrack, Thread};
use std::ptr::NonNull;
use std::task::Waker;

enum Wake {
    Task(AtomicWaker),
    Thread(Thread),
}

/// A waiter entry (first field: the entry, so the pointers convert).
#[repr(C)]
pub(crate) struct Waiter {
    pub(crate) entry: Entry,
    refs: AtomicUsize,
    wake: Wake,
    _track: LeakTrack,
}

impl Waiter {
    fn alloc(wake: Wake) -> NonNull<Waiter> {
        NonNull::from(Box::leak(Box::new(Waiter {
            entry: Entry::new(EntryKind::Waiter),
            // The holder's, and the list's: every waiter is enlisted once,
            // right after it is made (a failed push gives that one back).
            refs: AtomicUsize::new(2),
            wake,
            _track: LeakTrack::new(),
        })))
    }

    /// A waiter for a task, with its waker already registered.
    pub(crate) fn for_task(waker: &Waker) -> NonNull<Waiter> {
        let slot = AtomicWaker::new();
        slot.register(waker);
        Self::alloc(Wake::Task(slot))
    }

    /// A waiter for the calling thread.
    pub(crate) fn for_thread() -> NonNull<Waiter> {
        Self::alloc(Wake::Thread(current_thread()))
    }

    /// Pushes a new waiter onto `scope`'s list. If `scope` is done already,
    /// frees the waiter and returns why.
    ///
    /// # Safety
    /// `w` comes from `for_task` or `for_thread`, was never enlisted, and
    /// the caller gives up the reference it holds if this returns `Err`.
    pub(crate) unsafe fn enlist(w: NonNull<Waiter>, scope: &CancelNode) -> Result<(), Error> {
        // SAFETY: a new waiter (caller), counted on its own `refs`, alive as
        // long as they are (list invariant 3); its entry pointer is the
        // waiter's own (entry invariant 2).
        let pushed = unsafe { scope.list.push(Waiter::entry_ptr(w), &w.as_ref().refs) };
        pushed.map_err(|word| {
            // SAFETY: the push failed, so ours is the only reference.
            unsafe { Waiter::release(w) };
            err_of(word).unwrap_or(Error::Canceled)
        })
    }

    /// Pushes a new thread waiter as a sleeper onto `node`'s closed word
    /// (drained.rs). False if the node is drained already; the caller keeps
    /// its reference either way.
    ///
    /// # Safety
    /// `w` comes from `for_thread` and was never enlisted, and `node` is
    /// closed.
    pub(crate) unsafe fn enlist_sleeper(w: NonNull<Waiter>, node: &CancelNode) -> bool {
        // SAFETY: as `enlist`: a new waiter, counted on its own `refs`.
        unsafe {
            node.list
                .push_sleeper(Waiter::entry_ptr(w), &w.as_ref().refs)
        }
    }

    /// The list entry's pointer, with the waiter's provenance (entry
    /// invariant 2): the first field, so a cast.
    pub(crate) fn entry_ptr(w: NonNull<Waiter>) -> NonNull<Entry> {
        w.cast()
    }

    /// Replaces the task's waker (a task may move between polls).
    pub(crate) fn register(&self, waker: &Waker) {
        if let Wake::Task(slot) = &self.wake {
            slot.register(waker);
        }
    }

    /// Wakes the waiter; called by the drainer that claimed it.
    ///
    /// # Safety
    /// `w` is alive (the caller holds a reference).
    pub(crate) unsafe fn wake(w: NonNull<Waiter>) {
        // SAFETY: the caller's reference keeps it alive.
        match &unsafe { w.as_ref() }.wake {
            Wake::Task(slot) => slot.wake(),
            Wake::Thread(t) => t.unpark(),
        }
    }

    /// Drops one memory reference (invariant 1); frees at zero.
    ///
    /// # Safety
    /// The caller owns one reference on `w`.
    pub(crate) unsafe fn release(w: NonNull<Waiter>) {
        // SAFETY: alive until our decrement.
        let refs = &unsafe { w.as_ref() }.refs;
        if release_last(refs) {
            // SAFETY: last reference; allocated by `alloc` as a Box.
            drop(unsafe { Box::from_raw(w.as_ptr()) });
        }
    }
}
