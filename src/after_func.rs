//! The `AfterFunc` registration handle (the registration itself is
//! `tree/callback.rs`).

use crate::tree::{self, Callback};
use std::fmt;
use std::ptr::NonNull;

/// The registration returned by [`Context::after_func`](crate::Context::after_func).
///
/// Dropping it does *not* unregister the callback (as in Go); call
/// [`stop`](AfterFunc::stop) for that.
pub struct AfterFunc {
    cb: NonNull<Callback>,
}

impl AfterFunc {
    /// Registers `f` on `scope`: see `Context::after_func`.
    pub(crate) fn register(scope: Option<NonNull<tree::CancelNode>>, f: tree::Func) -> AfterFunc {
        // SAFETY: the scope of the caller's context: alive by its handle,
        // and the node's own pointer.
        let (cb, run_now) = unsafe { Callback::register(scope, f) };
        let after = AfterFunc { cb }; // released even if `f` panics
        if let Some(f) = run_now {
            f();
        }
        after
    }
}

// SAFETY: the callback is `Send`, and every shared field is atomic or
// guarded by the mark protocol (callback invariant 3).
unsafe impl Send for AfterFunc {}
// SAFETY: as above; `stop` through `&self` is the mark protocol.
unsafe impl Sync for AfterFunc {}

// The registration changes only through the mark (callback invariant 1), one
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
        if !cb.settle_stop() {
            return false; // started, or stopped by an earlier call
        }
        let claimed = match cb.scope() {
            // SAFETY: the entry was pushed onto that scope's list (or marked
            // unlinked) when it was registered, and its pointer is derived
            // from the registration's own.
            Some(scope) => unsafe { tree::withdraw(&scope.list, Callback::entry_ptr(self.cb)) },
            None => cb.entry().mark(),
        };
        // Else the drainer claimed it; it sees STOPPED and drops `f`.
        if claimed {
            // SAFETY: the mark is ours (callback invariant 3).
            drop(unsafe { cb.take() });
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
