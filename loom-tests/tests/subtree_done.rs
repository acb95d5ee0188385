//! Loom models: when any `cancel()` returns, the whole subtree is done,
//! also for a canceller that lost the race (the drained signal,
//! `src/tree/drained.rs`). How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::{Clock, Context};
use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// A user's model from the issue: a child and grandchild derived while
/// the parent cancels; dropping the child's handle (a cancel that may lose
/// to the parent's drain) returns only once the grandchild is done.
#[test]
fn dropped_handle_returns_after_the_subtree_is_done() {
    model("dropped_handle_returns_after_subtree", || {
        let (parent, cancel) = Context::background().with_cancel();
        let p2 = parent.clone();
        let t = thread::spawn(move || {
            let (c, h) = p2.with_cancel();
            let (c2, _h2) = c.with_cancel();
            drop(h);
            c2.err()
        });
        cancel.cancel();
        assert!(t.join().unwrap().is_some());
    });
}

/// A chain p -> c -> g -> l. One thread cancels p (its drain walks the
/// chain); this one cancels c, winning or losing the race to close it.
/// Either way, when its `cancel()` returns the leaf is done.
#[test]
fn chain_drain_raced_by_a_loser() {
    model("chain_drain_raced_by_a_loser", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let (g, _gh) = c.with_cancel();
        let (l, _lh) = g.with_cancel();
        let t = thread::spawn(move || ph.cancel());
        ch.cancel();
        assert!(l.is_done(), "leaf live after a losing cancel returned");
        t.join().unwrap();
        drop(p);
    });
}

/// Two losers and a winner on one node with a chain under it: sleepers
/// pushed onto the closed word race the drainer's mark (taken and woken by
/// its swap, or erased by its blind store and found by their re-check).
/// Every canceller returns only once the leaf is done.
#[test]
fn losers_register_while_the_drainer_marks() {
    model("losers_register_while_the_drainer_marks", || {
        let (p, ph) = root().with_cancel();
        let (c, _ch) = p.with_cancel();
        let (l, _lh) = c.with_cancel();
        let ph = Arc::new(ph);
        let (ph2, l2) = (ph.clone(), l.clone());
        let t = thread::spawn(move || {
            ph2.cancel();
            assert!(l2.is_done(), "leaf live after the other cancel returned");
        });
        ph.cancel();
        assert!(l.is_done(), "leaf live after this cancel returned");
        t.join().unwrap();
    });
}

/// One thread cancels c directly; this one cancels c's parent p, whose
/// drain finds c closed by the other and must not call p drained until c's
/// subtree is: when `ph.cancel()` returns, the leaf under c is done.
#[test]
fn drain_waits_for_a_subtree_closed_by_another() {
    model("drain_waits_for_a_subtree_closed_by_another", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let (l, _lh) = c.with_cancel();
        let t = thread::spawn(move || ch.cancel());
        ph.cancel();
        assert!(l.is_done(), "leaf live after the parent's cancel returned");
        t.join().unwrap();
        drop((p, c));
    });
}

/// A callback that cancels an ancestor of the cancellation it runs inside,
/// while another thread cancels that ancestor: the callback's cancel must
/// not wait (the ancestor's drain may be waiting for the very drain the
/// callback runs in), and both cancels complete with every node done.
#[test]
fn callback_cancelling_an_ancestor_does_not_deadlock() {
    model("callback_cancelling_an_ancestor", || {
        let (r, rh) = root().with_cancel();
        let rh = Arc::new(rh);
        let (m, mh) = r.with_cancel();
        let (l, _lh) = m.with_cancel();
        let ran = Arc::new(AtomicBool::new(false));
        let (ran2, rh2) = (ran.clone(), rh.clone());
        let _af = l.after_func(move || {
            rh2.cancel();
            ran2.store(true, SeqCst);
        });
        let t = thread::spawn(move || rh.cancel());
        mh.cancel();
        t.join().unwrap();
        assert!(ran.load(SeqCst));
        assert!(r.is_done() && m.is_done() && l.is_done());
    });
}

/// A deadline that fires is an ordinary drain: a cancel of the deadline's
/// context that loses to the firing returns only once the subtree is done.
#[test]
fn deadline_firing_raced_by_a_loser() {
    model("deadline_firing_raced_by_a_loser", || {
        let clock = Clock::manual();
        let (d, dh) = clock.background().with_timeout(Duration::from_millis(1));
        let (l, _lh) = d.with_cancel();
        let t = thread::spawn(move || clock.advance(Duration::from_millis(1)));
        dh.cancel();
        assert!(
            l.is_done(),
            "leaf live after a cancel that lost to the deadline"
        );
        t.join().unwrap();
    });
}
