//! Loom models: waiters and callbacks against cancel: no lost wake-up, stop() is exact.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::Error;
use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// An awaited `Done` against cancel: no lost wake-up (loom reports a
/// deadlock if the waiter is never woken).
#[test]
fn done_await_vs_cancel() {
    model_unbounded("done_await_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let t = thread::spawn(move || loom::future::block_on(c.done()));
        ch.cancel();
        assert_eq!(t.join().unwrap(), Error::Canceled);
    });
}

/// A blocking `wait()` against cancel: no lost wake-up.
#[test]
fn wait_vs_cancel() {
    model_unbounded("wait_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let why = cause(7);
        let w = why.clone();
        let t = thread::spawn(move || (c.wait(), c.cause()));
        ch.cancel_with_cause(w);
        let (e, got) = t.join().unwrap();
        assert_eq!(e, Error::Canceled);
        assert!(got.is_some_and(|g| g.ptr_eq(&why)));
    });
}

/// A `Done` registered and then dropped while the context cancels: the
/// registration (and loom's waker it holds) is freed, and a second waiter
/// on the same context is still woken.
#[test]
fn dropped_done_vs_cancel() {
    model_unbounded("dropped_done_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let t = thread::spawn(move || {
            let mut d = c.done();
            let first = loom::future::block_on(PollOnce(&mut d));
            drop(d);
            if let Some(e) = first {
                assert_eq!(e, Error::Canceled);
            }
            loom::future::block_on(c.done())
        });
        ch.cancel();
        assert_eq!(t.join().unwrap(), Error::Canceled);
    });
}

/// `stop()` against cancel: f runs iff stop returned false, and at most once.
#[test]
fn after_func_stop_vs_cancel() {
    model_unbounded("after_func_stop_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let (n, f) = counter();
        let af = c.after_func(f);
        let t = thread::spawn(move || af.stop());
        ch.cancel();
        let stopped = t.join().unwrap();
        assert_eq!(
            n.load(SeqCst),
            usize::from(!stopped),
            "stop() said {stopped}"
        );
        assert!(c.is_done());
    });
}
