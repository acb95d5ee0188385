//! When any `cancel()` returns, the whole subtree is done, also for a
//! canceller that lost the race to close the node (docs/design.md, "The
//! drained signal"). Plain threads; the loom models are in
//! `loom-tests/tests/subtree_done.rs`.

use gocontext::{CancelHandle, Context};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

/// A chain of `depth` contexts under `ctx`: the leaf, and the handles.
fn chain(ctx: &Context, depth: usize) -> (Context, Vec<CancelHandle>) {
    let mut handles = Vec::with_capacity(depth);
    let mut leaf = ctx.clone();
    for _ in 0..depth {
        let (c, h) = leaf.with_cancel();
        handles.push(h);
        leaf = c;
    }
    (leaf, handles)
}

/// One round of the race: thread A cancels a parent with `siblings`
/// children before and after one child; this thread holds that child's
/// handle and a 50-deep chain under it, waits until the child is done (A's
/// drain closed it), then lets go of the handle with `lose` (a cancel that
/// loses the race). Returns whether the chain's leaf was done right after.
fn losing_round(siblings: usize, lose: impl FnOnce(CancelHandle)) -> bool {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let before: Vec<_> = (0..siblings).map(|_| parent.with_cancel()).collect();
    // The child in the middle of the list: A's drain reaches it after
    // closing some siblings and before others.
    let (child, child_handle) = parent.with_cancel();
    let after: Vec<_> = (0..siblings).map(|_| parent.with_cancel()).collect();
    let (leaf, chain_handles) = chain(&child, 50);
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    let a = thread::spawn(move || {
        go.wait();
        cancel_parent.cancel();
    });
    start.wait();
    while !child.is_done() {
        std::hint::spin_loop();
    }
    lose(child_handle);
    let done = leaf.is_done();
    a.join().unwrap();
    drop((before, after, chain_handles));
    done
}

/// Thread A cancels a parent with 200 children; thread B holds the handle of
/// one child with a 50-deep chain under it, waits until the child is done,
/// cancels it (and so loses the race), and then the leaf must be done: B's
/// `cancel()` returned only after A's drain finished the child's subtree.
/// Before the drained signal, about 10% of rounds saw the leaf still live.
#[test]
fn losing_cancel_returns_after_the_subtree_is_done() {
    let rounds = if cfg!(miri) { 5 } else { 2000 };
    for round in 0..rounds {
        let done = losing_round(100, |h| h.cancel());
        assert!(done, "round {round}: leaf live after cancel() returned");
    }
}

/// The same guarantee for `cancel_with_cause` and for dropping the handle.
#[test]
fn losing_cancel_with_cause_and_drop_wait_too() {
    let rounds = if cfg!(miri) { 4 } else { 1000 };
    for round in 0..rounds {
        let done = if round % 2 == 0 {
            losing_round(50, |h| h.cancel_with_cause(std::io::Error::other("late")))
        } else {
            losing_round(50, drop)
        };
        assert!(done, "round {round}: leaf live after the loser returned");
    }
}

/// A callback that cancels an ancestor of the cancellation it runs inside
/// does not wait for that cancellation (it would wait for itself): the
/// outer cancel completes, and every node ends done.
#[test]
fn callback_cancelling_an_ancestor_does_not_deadlock() {
    let (root, cancel_root) = Context::background().with_cancel();
    let cancel_root = Arc::new(cancel_root);
    let (mid, cancel_mid) = root.with_cancel();
    let (leaf, _leaf_handle) = mid.with_cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let (r, c) = (ran.clone(), cancel_root.clone());
    let _af = leaf.after_func(move || {
        c.cancel(); // root is open or closing: must not wait for us
        r.store(true, SeqCst);
    });
    cancel_mid.cancel();
    assert!(ran.load(SeqCst));
    assert!(root.is_done() && mid.is_done() && leaf.is_done());
}
