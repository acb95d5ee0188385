//! Loom models: the child list: inserts, unlinks and cancels racing.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::Error;
use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// A child inserted while its parent cancels ends up cancelled exactly once,
/// with the parent's cause (the insert must see CLOSED, or the drain must
/// see the child).
#[test]
fn child_insert_vs_parent_cancel() {
    model_unbounded("child_insert_vs_parent_cancel", || {
        let (p, ph) = root().with_cancel();
        let why = cause(1);
        let t = thread::spawn(move || {
            let (c, ch) = p.with_cancel();
            let (n, f) = counter();
            let _af = c.after_func(f);
            (c, ch, n)
        });
        ph.cancel_with_cause(why.clone());
        let (c, ch, n) = t.join().unwrap();
        assert_eq!(c.err(), Some(Error::Canceled));
        assert!(is(&c, &why), "child cause is not the parent's");
        assert_eq!(
            n.load(SeqCst),
            1,
            "child cancelled {} times",
            n.load(SeqCst)
        );
        drop(ch);
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// A child unlinking itself by drop while the parent cancels and a sibling
/// inserts: the sibling and the child that stays get the parent's cause,
/// and nothing leaks or is freed twice.
#[test]
fn child_drop_unlink_vs_parent_cancel_vs_sibling_insert() {
    model("child_drop_vs_cancel_vs_insert", || {
        let (p, ph) = root().with_cancel();
        let (c0, _c0h) = p.with_cancel();
        let (c1, c1h) = p.with_cancel();
        let why = cause(1);
        let t1 = thread::spawn(move || {
            drop(c1);
            drop(c1h);
        });
        let t2 = thread::spawn(move || p.with_cancel());
        ph.cancel_with_cause(why.clone());
        t1.join().unwrap();
        let (c2, _c2h) = t2.join().unwrap();
        assert!(is(&c0, &why), "linked sibling missed the cancel");
        assert!(is(&c2, &why), "inserted sibling missed the cancel");
    });
}

/// The same race, the child unlinking itself by its own cancel: it ends
/// with its own cause or the parent's, its neighbours with the parent's.
#[test]
fn child_cancel_unlink_vs_parent_cancel_vs_sibling_insert() {
    model("child_cancel_vs_cancel_vs_insert", || {
        let (p, ph) = root().with_cancel();
        let (c0, _c0h) = p.with_cancel();
        let (c1, c1h) = p.with_cancel();
        let (own, why) = (cause(2), cause(1));
        let own2 = own.clone();
        let t1 = thread::spawn(move || c1h.cancel_with_cause(own2));
        let t2 = thread::spawn(move || p.with_cancel());
        ph.cancel_with_cause(why.clone());
        t1.join().unwrap();
        let (c2, _c2h) = t2.join().unwrap();
        assert!(is(&c1, &own) || is(&c1, &why), "child has a third cause");
        assert!(is(&c0, &why), "linked sibling missed the cancel");
        assert!(is(&c2, &why), "inserted sibling missed the cancel");
    });
}

/// Two cancels of one context with different causes: one wins, and the
/// context, its child and its callback all agree on it.
#[test]
fn two_cancels_different_causes() {
    model_unbounded("two_cancels_different_causes", || {
        let (p, ph) = root().with_cancel();
        let (c, _ch) = p.with_cancel();
        let (n, f) = counter();
        let _af = p.after_func(f);
        let ph = Arc::new(ph);
        let (a, b) = (cause(1), cause(2));
        let (ph2, b2) = (ph.clone(), b.clone());
        let t = thread::spawn(move || ph2.cancel_with_cause(b2));
        ph.cancel_with_cause(a.clone());
        t.join().unwrap();
        let won = p.cause().expect("parent not done");
        assert!(won.ptr_eq(&a) || won.ptr_eq(&b), "a third cause won");
        assert!(is(&c, &won), "child disagrees with parent");
        assert_eq!(p.err(), Some(Error::Canceled));
        assert_eq!(c.err(), Some(Error::Canceled));
        assert_eq!(n.load(SeqCst), 1, "callback ran {} times", n.load(SeqCst));
    });
}

/// A parent's cancel against its child's own cancel: the parent keeps its
/// cause, the child has one of the two.
#[test]
fn parent_cancel_vs_child_cancel() {
    model_unbounded("parent_cancel_vs_child_cancel", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let (a, b) = (cause(1), cause(2));
        let b2 = b.clone();
        let t = thread::spawn(move || ch.cancel_with_cause(b2));
        ph.cancel_with_cause(a.clone());
        t.join().unwrap();
        assert!(is(&p, &a));
        assert!(is(&c, &a) || is(&c, &b), "child has a third cause");
    });
}

/// A grandchild inserting into a child while the parent cancels that
/// child: the grandchild ends with the parent's cause.
#[test]
fn grandchild_insert_vs_parent_cancels_child() {
    model_unbounded("grandchild_insert_vs_parent_cancels_child", || {
        let (p, ph) = root().with_cancel();
        let (c, _ch) = p.with_cancel();
        let why = cause(1);
        let t = thread::spawn(move || c.with_cancel());
        ph.cancel_with_cause(why.clone());
        let (g, _gh) = t.join().unwrap();
        assert!(is(&g, &why), "grandchild missed the cancel");
        assert!(is(&p, &why));
    });
}

/// Both parents of a merge cancelled at once: the merge takes one of the
/// two causes, and its callback runs once.
#[test]
fn merge_both_parents_cancel() {
    model_unbounded("merge_both_parents_cancel", || merge_parents_cancel(false));
}
