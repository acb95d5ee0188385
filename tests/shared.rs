//! `Context::with_cancel_shared`: a parent whose children join per-thread
//! shards. Every guarantee of `with_cancel` must hold through the shards:
//! cancellation reaches every child on every thread, values, deadlines and
//! causes pass through, the path prints as if there were no shard, and the
//! children outlive the shared context's own handles.

use gocontext::{Clock, Context, Error, Key};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

static USER: Key<&'static str> = Key::new("user");

/// More threads than any machine's shards, so that threads share shards
/// and shards are used by several threads.
const THREADS: usize = 8;

/// Children made on `THREADS` threads at once, each with an `after_func`
/// that counts, then returned (with their handles) to the caller.
fn children_on_threads(
    parent: &Context,
    each: usize,
) -> (Vec<(Context, gocontext::CancelHandle)>, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (parent, ran, start) = (parent.clone(), ran.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                (0..each)
                    .map(|i| {
                        let (c, h) = if i % 2 == 0 {
                            parent.with_cancel()
                        } else {
                            parent.with_timeout(Duration::from_secs(3600))
                        };
                        let ran = ran.clone();
                        drop(c.after_func(move || {
                            ran.fetch_add(1, SeqCst);
                        }));
                        (c, h)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    (all, ran)
}

#[test]
fn cancelling_it_cancels_every_child_on_every_thread() {
    let (shared, cancel) = Context::background().with_cancel_shared();
    let (children, ran) = children_on_threads(&shared, 200);
    assert!(children.iter().all(|(c, _)| c.err().is_none()));
    cancel.cancel_with_cause(std::io::Error::other("shutting down"));
    assert_eq!(ran.load(SeqCst), THREADS * 200, "a callback did not run");
    for (c, _) in &children {
        assert_eq!(c.err(), Some(Error::Canceled));
        assert_eq!(c.cause().unwrap().to_string(), "shutting down");
    }
}

#[test]
fn its_parent_s_cancel_reaches_the_children_through_the_shards() {
    let (root, stop) = Context::background().with_cancel();
    let (shared, _keep) = root.with_cancel_shared();
    let (children, ran) = children_on_threads(&shared, 50);
    stop.cancel();
    assert!(shared.is_done());
    assert!(children.iter().all(|(c, _)| c.is_done()));
    assert_eq!(ran.load(SeqCst), THREADS * 50);
}

#[test]
fn children_outlive_its_handles_and_still_hear_its_parent() {
    let (root, stop) = Context::background().with_cancel();
    let (shared, handle) = root.with_cancel_shared();
    let (children, ran) = children_on_threads(&shared, 20);
    handle.detach();
    drop(shared);
    // Nothing cancelled them: the shared context is gone from the user's
    // hands, not done.
    assert!(children.iter().all(|(c, _)| c.err().is_none()));
    assert_eq!(ran.load(SeqCst), 0);
    stop.cancel();
    assert!(children
        .iter()
        .all(|(c, _)| c.err() == Some(Error::Canceled)));
    assert_eq!(ran.load(SeqCst), THREADS * 20);
}

#[test]
fn a_child_ended_on_another_thread_than_its_own() {
    // Children made on one thread are cancelled and dropped on others: a
    // shard's children leave it from any thread.
    let (shared, cancel) = Context::background().with_cancel_shared();
    let made: Vec<_> = (0..64).map(|_| shared.with_cancel()).collect();
    let ended = thread::spawn(move || {
        for (c, h) in made {
            h.cancel();
            assert_eq!(c.err(), Some(Error::Canceled));
        }
    });
    ended.join().unwrap();
    assert_eq!(shared.err(), None, "a child's cancel reached its parent");
    cancel.cancel();
    assert_eq!(shared.err(), Some(Error::Canceled));
}

#[test]
fn values_deadlines_and_clock_pass_through_the_shards() {
    let clock = Clock::manual();
    let outer = clock.background().with_value(&USER, "gopher");
    let (timed, _t) = outer.with_timeout(Duration::from_secs(10));
    let (shared, _s) = timed.with_cancel_shared();
    let (child, _c) = shared.with_timeout(Duration::from_secs(60));
    assert_eq!(child.value(&USER), Some(&"gopher"));
    assert_eq!(child.deadline(), timed.deadline(), "the earlier one wins");
    let (soon, _c2) = shared.with_timeout(Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(soon.err(), Some(Error::DeadlineExceeded));
    assert_eq!(shared.err(), None);
    clock.advance(Duration::from_secs(9));
    assert_eq!(shared.err(), Some(Error::DeadlineExceeded));
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn the_path_prints_without_the_shards() {
    let (shared, _s) = Context::background().with_cancel_shared();
    let (child, _c) = shared.with_cancel();
    let leaf = child.with_value(&USER, "x");
    assert_eq!(shared.to_string(), "context.Background.WithCancel");
    assert_eq!(
        leaf.to_string(),
        "context.Background.WithCancel.WithCancel.WithValue(user)"
    );
}

#[test]
fn merge_with_a_shared_context_on_either_side() {
    let (shared, cancel) = Context::background().with_cancel_shared();
    let (other, _o) = Context::background().with_cancel();
    let (a, _a) = Context::merge(&shared, &other);
    let (b, _b) = Context::merge(&other, &shared);
    cancel.cancel();
    assert_eq!(a.err(), Some(Error::Canceled));
    assert_eq!(b.err(), Some(Error::Canceled));
}

#[test]
fn shared_contexts_nest_and_derive_when_done() {
    let (top, cancel) = Context::background().with_cancel_shared();
    let (inner, _i) = top.with_cancel_shared();
    let (leaf, _l) = inner.with_cancel();
    cancel.cancel();
    assert!(inner.is_done() && leaf.is_done());
    // Deriving from a done shared context gives a done child at once.
    let (late, _h) = inner.with_cancel_shared();
    let (later, _h2) = inner.with_cancel();
    assert_eq!(late.err(), Some(Error::Canceled));
    assert_eq!(later.err(), Some(Error::Canceled));
}

#[test]
fn a_child_through_a_value_node_is_cancelled_too() {
    // Derived through a value node, a child joins the shared context's own
    // list (no shard): it is cancelled all the same.
    let (shared, cancel) = Context::background().with_cancel_shared();
    let tagged = shared.with_value(&USER, "v");
    let (child, _c) = tagged.with_cancel();
    cancel.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(child.value(&USER), Some(&"v"));
}
