//! Loom models: `AfterFunc::stop` against teardown discarding the callback,
//! and two `stop`s against a cancel (callback invariant 4, tree/callback.rs).
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// The context's handle is detached and its last `Context` dropped on
/// another thread (teardown discards the callback) while this thread
/// stops it: f never runs, so `stop()` is true whichever comes first, and
/// a second `stop()` is false.
#[test]
fn stop_vs_teardown_discard() {
    model("stop_vs_teardown_discard", || {
        let (c, ch) = root().with_cancel();
        ch.detach();
        let (n, f) = counter();
        let af = c.after_func(f);
        let t = thread::spawn(move || drop(c));
        assert!(af.stop(), "f never started: the first stop is true");
        t.join().unwrap();
        assert!(!af.stop());
        assert_eq!(n.load(SeqCst), 0);
    });
}

/// Two threads stop while a third cancels: at most one `stop()` is true,
/// f runs iff none is, and never twice.
#[test]
fn two_stops_vs_cancel() {
    model("two_stops_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let (n, f) = counter();
        let af = std::sync::Arc::new(c.after_func(f));
        let af2 = af.clone();
        let t = thread::spawn(move || af2.stop());
        let c2 = thread::spawn(move || ch.cancel());
        let mine = af.stop();
        let theirs = t.join().unwrap();
        c2.join().unwrap();
        assert!(!(mine && theirs), "two stops both said true");
        assert_eq!(n.load(SeqCst), usize::from(!(mine || theirs)));
    });
}
