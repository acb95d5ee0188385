//! Loom models: handles and detaches racing: no leaked cycle (loom's leak check).
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// The parent's last handle (which cancels) dropped while the child lets go
/// of everything it has (its context dropped, its handle detached), so the
/// child's teardown (withdrawing its link, releasing its handle on the
/// parent) races the parent's cancel (draining that link) and the parent's
/// own teardown. The child's callback runs at most once (it runs if the
/// parent's drain claims the link first, and is dropped unrun if the
/// teardown does), and loom's leak check sees every node freed once.
#[test]
fn parent_last_drop_vs_child_detach() {
    model("parent_last_drop_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let (runs, f) = counter();
        drop(c.after_func(f));
        let t = thread::spawn(move || {
            drop(p);
            drop(ph);
        });
        ch.detach();
        drop(c);
        t.join().unwrap();
        assert!(runs.load(SeqCst) <= 1);
    });
}

/// Nobody cancels: the parent's context dropped and its handle detached
/// while the child does the same, so the two teardowns race (the child's
/// link withdrawn vs the parent's silent close draining it; the parent's
/// last handle released by either thread). No callback ever runs, and
/// loom's leak check sees every node freed once.
#[test]
fn parent_detach_vs_child_detach() {
    model("parent_detach_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let (runs, f) = counter();
        drop(c.after_func(f));
        let t = thread::spawn(move || {
            drop(p);
            ph.detach();
        });
        ch.detach();
        assert_eq!(c.err(), None);
        drop(c);
        t.join().unwrap();
        assert_eq!(runs.load(SeqCst), 0);
    });
}
