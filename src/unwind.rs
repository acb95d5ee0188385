//! User code that panics inside the engine.
//!
//! The engine calls user code in the middle of its own work: wakers, and
//! `after_func` callbacks, run by a drain; the drops of callbacks, values,
//! causes and wakers, run when a drain or a teardown frees what held them.
//! A panic there must not cut that work short (a half-cancelled subtree, a
//! teardown that leaks the rest of its chain), so:
//!
//! 1. Every such call runs inside [`Panics::call`], which catches its panic.
//! 2. The work goes on; the first panic is kept, later ones are dropped with
//!    [`drop_payload`] (a payload's own `Drop` may panic too).
//! 3. When the work is complete, [`Panics::resume`] re-raises the first
//!    panic to the caller (or drops it if the thread is unwinding already:
//!    a second panic would abort).
//! 4. Releases deferred through the epoch run inside whatever thread next
//!    collects garbage, in the middle of unrelated work and of crossbeam's
//!    own loop; there [`orphan`] catches and drops the panic, since there
//!    is no caller to give it to.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// A caught panic's payload.
pub(crate) type Panic = Box<dyn Any + Send>;

/// The first panic of one piece of engine work (invariants 1-3).
#[derive(Default)]
pub(crate) struct Panics(Option<Panic>);

impl Panics {
    /// Runs user code (or engine code that runs user code), keeping its
    /// panic; `None` if it panicked.
    #[inline(always)] // a closure per call site; out of line it costs a call and a frame
    pub(crate) fn call<R>(&mut self, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(p) => {
                self.keep(p);
                None
            }
        }
    }

    /// Keeps `p` if it is the first panic; drops it otherwise.
    pub(crate) fn keep(&mut self, p: Panic) {
        match self.0 {
            None => self.0 = Some(p),
            Some(_) => drop_payload(p),
        }
    }

    /// Re-raises the first panic, now that the work is complete.
    #[inline]
    pub(crate) fn resume(self) {
        if let Some(p) = self.0 {
            resume_kept(p);
        }
    }
}

/// `Panics::resume` with a panic kept: out of line, as it is rare.
#[cold]
#[inline(never)]
fn resume_kept(p: Panic) {
    if std::thread::panicking() {
        drop_payload(p); // unwinding already: a second panic aborts
    } else {
        resume_unwind(p);
    }
}

/// `a` if it holds a panic, else `b`; the other payload is dropped with
/// [`drop_payload`] (for code that keeps its first panic in an `Option`).
pub(crate) fn first(a: Option<Panic>, b: Option<Panic>) -> Option<Panic> {
    match (a, b) {
        (Some(a), b) => {
            discard(b);
            Some(a)
        }
        (None, b) => b,
    }
}

/// Drops a panic payload whose `Drop` may panic in turn. A payload whose
/// drop keeps panicking with payloads whose drops panic is given up on
/// (leaked) after a few rounds rather than looping forever.
pub(crate) fn drop_payload(p: Panic) {
    let mut p = p;
    for _ in 0..4 {
        match catch_unwind(AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(next) => p = next,
        }
    }
    std::mem::forget(p);
}

/// Drops a caught panic, if any, with [`drop_payload`].
pub(crate) fn discard(p: Option<Panic>) {
    if let Some(p) = p {
        drop_payload(p);
    }
}

/// Runs user code where no caller can receive its panic (invariant 4):
/// the panic is dropped.
pub(crate) fn orphan(f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        drop_payload(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_panic_and_drops_the_rest() {
        let mut panics = Panics::default();
        assert_eq!(panics.call(|| 5), Some(5));
        assert_eq!(panics.call(|| -> u8 { panic!("first") }), None);
        assert_eq!(panics.call(|| -> u8 { panic!("second") }), None);
        let p = catch_unwind(AssertUnwindSafe(|| panics.resume())).unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"first"));
        Panics::default().resume(); // nothing to re-raise
    }

    struct Bad;
    impl Drop for Bad {
        fn drop(&mut self) {
            panic!("payload drop");
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_dropped_safely() {
        drop_payload(Box::new(Bad));
        orphan(|| std::panic::panic_any(Bad));
    }
}
