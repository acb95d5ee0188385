//! Loom models shaped like the failures users hit: three threads on one
//! list, every kind of list entry at once, a timer with a child below, a
//! merge. Each asserts what holds once every thread has finished; the
//! timer model also what is done at the moment a `cancel()` returns.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::{Clock, Error};
use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// Two cancellers at two levels (the grandparent and the parent) while a
/// third thread inserts a child under the parent and drops another: the
/// parent ends with one of the two causes, the inserted child with the
/// parent's, and every node is freed once (loom's leak check).
#[test]
fn two_cancellers_vs_inserter_and_dropper() {
    model("two_cancellers_vs_inserter_and_dropper", || {
        let (r, rh) = root().with_cancel();
        let (p, ph) = r.with_cancel();
        let (old, old_h) = p.with_cancel();
        let (a, b) = (cause(1), cause(2));
        let (a2, b2) = (a.clone(), b.clone());
        let t1 = thread::spawn(move || rh.cancel_with_cause(a2));
        let t2 = thread::spawn(move || ph.cancel_with_cause(b2));
        let (new, _new_h) = p.with_cancel();
        drop(old);
        drop(old_h);
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(is(&r, &a));
        let won = p.cause().expect("parent not done");
        assert!(won.ptr_eq(&a) || won.ptr_eq(&b), "parent has a third cause");
        assert!(is(&new, &won), "inserted child disagrees with its parent");
        assert_eq!(new.err(), Some(Error::Canceled));
    });
}

/// A blocked waiter, a callback and a child, all joining one list while
/// the context cancels: the waiter wakes with the error, the callback runs
/// exactly once, the child ends with the context's cause.
#[test]
fn waiter_callback_and_child_on_one_list_during_cancel() {
    model(
        "waiter_callback_and_child_on_one_list_during_cancel",
        || {
            let (c, ch) = root().with_cancel();
            let why = cause(5);
            let waiter = {
                let c = c.clone();
                thread::spawn(move || c.wait())
            };
            let joiner = {
                let c = c.clone();
                thread::spawn(move || {
                    let (n, f) = counter();
                    let af = c.after_func(f);
                    let (child, child_h) = c.with_cancel();
                    (n, af, child, child_h)
                })
            };
            ch.cancel_with_cause(why.clone());
            assert_eq!(waiter.join().unwrap(), Error::Canceled);
            let (n, _af, child, _child_h) = joiner.join().unwrap();
            assert_eq!(n.load(SeqCst), 1, "callback ran {} times", n.load(SeqCst));
            assert!(is(&child, &why), "child missed the cancel");
        },
    );
}

/// A deadline firing, its parent cancelling, and the last handle and
/// context of the timed node going away, all at once, with a child (and a
/// callback on it) below: the child is done when the parent's cancel and
/// the handle's drop return (whoever drains it: the firing, the cancel or
/// the drop), ends with one of the two errors, its callback runs once, and
/// the timer entry and every node are freed once.
#[test]
fn timer_fire_vs_cancel_vs_last_drop_with_child_below() {
    model("timer_fire_vs_cancel_vs_last_drop_with_child_below", || {
        let clock = Clock::manual();
        let (p, ph) = clock.background().with_cancel();
        let (t, th) = p.with_timeout(Duration::from_millis(10));
        let (g, _gh) = t.with_cancel();
        let (n, f) = counter();
        let _af = g.after_func(f);
        let firer = {
            let clock = clock.clone();
            thread::spawn(move || clock.advance(Duration::from_millis(20)))
        };
        let canceller = {
            let g = g.clone();
            thread::spawn(move || {
                ph.cancel();
                assert!(
                    g.err().is_some(),
                    "cancel returned before the child was done"
                );
            })
        };
        drop(t);
        drop(th);
        assert!(
            g.err().is_some(),
            "handle drop returned before the child was done"
        );
        firer.join().unwrap();
        canceller.join().unwrap();
        assert!(matches!(
            g.err(),
            Some(Error::Canceled) | Some(Error::DeadlineExceeded)
        ));
        assert_eq!(n.load(SeqCst), 1, "callback ran {} times", n.load(SeqCst));
        assert_eq!(p.err(), Some(Error::Canceled));
    });
}

/// Both parents of a merge cancelling on two threads while a third adds a
/// child to the merge: the merge takes one of the two causes, its
/// callback runs once, and the child ends with the merge's cause.
#[test]
fn merge_parents_cancel_while_child_added() {
    model("merge_parents_cancel_while_child_added", || {
        merge_parents_cancel(true)
    });
}
