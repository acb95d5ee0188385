//! Loom models: handles and detaches racing: no leaked cycle (loom's leak check).
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// A parent and a child with a callback. Another thread lets go of the
/// parent (its context dropped, its handle dropped, which cancels, or
/// detached); this one detaches the child's handle and drops its context,
/// so the child's teardown (withdrawing its link, releasing its handle on
/// the parent) races whatever the parent's side does. Returns how many
/// times the callback ran. Loom's leak check sees every node freed once.
fn let_go_of_both(parent_cancels: bool) -> usize {
    let (p, ph) = root().with_cancel();
    let (c, ch) = p.with_cancel();
    let (runs, f) = counter();
    drop(c.after_func(f));
    let t = thread::spawn(move || {
        drop(p);
        if parent_cancels {
            drop(ph);
        } else {
            ph.detach();
        }
    });
    ch.detach();
    if !parent_cancels {
        assert_eq!(c.err(), None);
    }
    drop(c);
    t.join().unwrap();
    runs.load(SeqCst)
}

/// The parent's last handle (which cancels) dropped while the child lets go
/// of everything: the child's teardown races the parent's cancel (draining
/// the child's link) and the parent's own teardown. The callback runs at
/// most once: if the parent's drain claims the link first it runs, if the
/// child's teardown does it is dropped unrun.
#[test]
fn parent_last_drop_vs_child_detach() {
    model_unbounded("parent_last_drop_vs_child_detach", || {
        assert!(let_go_of_both(true) <= 1);
    });
}

/// Nobody cancels: two teardowns race (the child's link withdrawn vs the
/// parent's silent close draining it; the parent's last handle released
/// by either thread). No callback ever runs.
#[test]
fn parent_detach_vs_child_detach() {
    model_unbounded("parent_detach_vs_child_detach", || {
        assert_eq!(let_go_of_both(false), 0);
    });
}
