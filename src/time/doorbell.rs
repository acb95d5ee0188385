//! A doorbell: the thread to unpark for a role (the system clock's driver,
//! its standby) that moves from thread to thread.
//!
//! Ringing is lock-free: an epoch pin, one load and `Thread::unpark`. The
//! handle is replaced only when the role moves (a takeover, a new standby),
//! and the old handle is freed through the epoch, so a ringer that loaded
//! it just before never reads freed memory. Ringing a thread that no longer
//! holds the role, or has exited, is a spurious unpark: harmless, since
//! every parked loop re-checks its state.
//!
//! Uses `std::thread` directly: like the driver, it has no loom model (the
//! role hand-off itself is modelled in `watch/loom_models.rs`).

use crossbeam_epoch::{self as epoch, Atomic, Owned, Shared};
use std::sync::atomic::Ordering;
use std::thread::Thread;

/// The thread that holds one role, or none yet.
#[derive(Debug, Default)]
pub(crate) struct Doorbell(Atomic<Thread>);

impl Doorbell {
    /// A doorbell with no thread behind it yet.
    pub(crate) fn new() -> Doorbell {
        Doorbell(Atomic::null())
    }

    /// `thread` holds the role from now on.
    pub(crate) fn set(&self, thread: Thread) {
        self.replace(Some(thread));
    }

    /// Nobody holds the role for now: ringing does nothing.
    pub(crate) fn clear(&self) {
        self.replace(None);
    }

    fn replace(&self, thread: Option<Thread>) {
        let guard = epoch::pin();
        let new = match thread {
            Some(t) => Owned::new(t).into_shared(&guard),
            None => Shared::null(),
        };
        // AcqRel: Release publishes the new handle to ringers; Acquire
        // orders the old handle's writes before its deferred free.
        let old = self.0.swap(new, Ordering::AcqRel, &guard);
        if !old.is_null() {
            // SAFETY: the swap unlinked `old`, so no new ringer can load
            // it, and ringers that did load it are pinned: the epoch frees
            // it after they unpin.
            unsafe { guard.defer_destroy(old) };
        }
    }

    /// Unparks the role's thread, if there is one.
    pub(crate) fn ring(&self) {
        let guard = epoch::pin();
        // Acquire: pairs with `set`'s Release (a fully written handle).
        let thread = self.0.load(Ordering::Acquire, &guard);
        // SAFETY: non-null pointers come from `Owned::new` in `set`, and we
        // stay pinned while we use it, so it is not freed under us.
        if let Some(thread) = unsafe { thread.as_ref() } {
            thread.unpark();
        }
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no ringer can hold the pointer any more.
        let guard = unsafe { epoch::unprotected() };
        // Relaxed: `&mut self` already orders us after every `set`.
        let old = self.0.swap(Shared::null(), Ordering::Relaxed, guard);
        if !old.is_null() {
            // SAFETY: unlinked and unreachable by anyone else (above).
            drop(unsafe { old.into_owned() });
        }
    }
}
