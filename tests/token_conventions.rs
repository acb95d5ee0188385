//! tokio-util's `CancellationToken` test suite, asked of gocontext: every
//! behaviour that suite checks, in gocontext's terms, plus the conventions
//! users of that token expect (identity equality and hashing, `Default`,
//! plain-message causes, boxing a cause).
//!
//! The translation: a token is a context with its cancel handle
//! (`with_cancel`), `child_token()` is `with_cancel()` on it,
//! `cancelled()` is `done()` (which resolves to the `Error` instead of
//! `()`), and `run_until_cancelled` is `run` (`Err` instead of `None`).
//! One difference is deliberate: dropping a gocontext `CancelHandle`
//! cancels (Go's `defer cancel()`), where dropping a token does not; the
//! ports that drop a token without cancelling it `detach()` the handle.

use gocontext::{Cause, Context, Done, Error};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, Wake, Waker};

/// A waker that counts its wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (Waker, Arc<Counter>) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    (Waker::from(counter.clone()), counter)
}

fn wakes(c: &Counter) -> usize {
    c.0.load(SeqCst)
}

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut TaskCx::from_waker(waker))
}

const PENDING: Poll<Error> = Poll::Pending;
const CANCELED: Poll<Error> = Poll::Ready(Error::Canceled);

/// Polls each future once and checks that it answers `want`.
fn expect(futs: &mut [&mut Done], waker: &Waker, want: Poll<Error>) {
    for fut in futs.iter_mut() {
        assert_eq!(poll(*fut, waker), want);
    }
}

fn hash_of(ctx: &Context) -> u64 {
    let mut h = DefaultHasher::new();
    ctx.hash(&mut h);
    h.finish()
}

#[test]
fn cancelling_wakes_every_waiter_once() {
    let (waker, count) = counting_waker();
    let (ctx, cancel) = Context::background().with_cancel();
    assert!(!ctx.is_done());
    let mut first = ctx.done();
    assert_eq!(poll(&mut first, &waker), Poll::Pending);
    assert_eq!(wakes(&count), 0);
    let mut never_polled = ctx.done();
    cancel.cancel();
    assert_eq!(
        wakes(&count),
        1,
        "only the polled waiter registered a waker"
    );
    assert!(ctx.is_done());
    assert_eq!(poll(&mut first, &waker), Poll::Ready(Error::Canceled));
    assert_eq!(
        poll(&mut never_polled, &waker),
        Poll::Ready(Error::Canceled)
    );
}

#[test]
fn done_future_owns_its_context() {
    let (waker, count) = counting_waker();
    let (ctx, cancel) = Context::background().with_cancel();
    let mut first = ctx.clone().done();
    let mut second = ctx.clone().done();
    drop(ctx); // the futures hold the context themselves
    assert_eq!(poll(&mut first, &waker), Poll::Pending);
    cancel.cancel();
    assert_eq!(wakes(&count), 1);
    expect(&mut [&mut first, &mut second], &waker, CANCELED);
}

#[test]
fn pending_done_future_dropped_while_registered() {
    let (waker, count) = counting_waker();
    let (ctx, cancel) = Context::background().with_cancel();
    {
        let mut fut = pin!(ctx.done());
        assert_eq!(
            fut.as_mut().poll(&mut TaskCx::from_waker(&waker)),
            Poll::Pending
        );
    }
    cancel.cancel(); // nothing left to wake
    assert_eq!(wakes(&count), 0);
    assert!(ctx.is_done());
}

#[test]
fn parent_cancel_reaches_child_waiters() {
    let (waker, count) = counting_waker();
    let (parent, cancel) = Context::background().with_cancel();
    let (child, _child_cancel) = parent.with_cancel();
    assert!(!child.is_done());
    let mut child_done = child.done();
    let mut parent_done = parent.done();
    expect(&mut [&mut child_done, &mut parent_done], &waker, PENDING);
    assert_eq!(wakes(&count), 0);
    cancel.cancel();
    assert_eq!(wakes(&count), 2);
    assert!(parent.is_done() && child.is_done());
    expect(&mut [&mut child_done, &mut parent_done], &waker, CANCELED);
}

#[test]
fn grandchild_cancelled_through_a_dropped_middle() {
    let (waker, count) = counting_waker();
    let (root, cancel) = Context::background().with_cancel();
    let (middle, middle_cancel) = root.with_cancel();
    let (grandchild, _gc_cancel) = middle.with_cancel();
    middle_cancel.detach();
    drop(middle);
    assert!(!grandchild.is_done());
    let mut gc_done = grandchild.done();
    let mut root_done = root.done();
    expect(&mut [&mut gc_done, &mut root_done], &waker, PENDING);
    cancel.cancel();
    assert_eq!(wakes(&count), 2);
    assert!(grandchild.is_done());
    expect(&mut [&mut gc_done, &mut root_done], &waker, CANCELED);
}

#[test]
fn child_cancel_leaves_the_parent_alone() {
    let (waker, count) = counting_waker();
    let (parent, cancel) = Context::background().with_cancel();
    let (child1, cancel1) = parent.with_cancel();
    let mut child1_done = child1.done();
    let mut parent_done = parent.done();
    expect(&mut [&mut child1_done, &mut parent_done], &waker, PENDING);
    cancel1.cancel();
    assert_eq!(wakes(&count), 1);
    assert!(!parent.is_done() && child1.is_done());
    assert_eq!(poll(&mut child1_done, &waker), Poll::Ready(Error::Canceled));
    assert_eq!(poll(&mut parent_done, &waker), Poll::Pending);

    let (child2, _cancel2) = parent.with_cancel();
    let mut child2_done = child2.done();
    expect(&mut [&mut child2_done, &mut parent_done], &waker, PENDING);
    cancel.cancel();
    assert_eq!(wakes(&count), 3);
    assert!(child2.is_done());
    expect(&mut [&mut child2_done, &mut parent_done], &waker, CANCELED);
}

#[test]
fn child_of_a_cancelled_parent_is_done_at_once() {
    for drop_child_first in [true, false] {
        let (waker, count) = counting_waker();
        let (parent, cancel) = Context::background().with_cancel();
        cancel.cancel();
        let (child, child_cancel) = parent.with_cancel();
        assert!(child.is_done());
        assert_eq!(
            poll(&mut child.done(), &waker),
            Poll::Ready(Error::Canceled)
        );
        assert_eq!(
            poll(&mut parent.done(), &waker),
            Poll::Ready(Error::Canceled)
        );
        assert_eq!(wakes(&count), 0, "ready at once: nothing registered");
        if drop_child_first {
            drop((child, child_cancel));
            drop((parent, cancel));
        } else {
            drop((parent, cancel));
            drop((child, child_cancel));
        }
    }
}

#[test]
fn dropping_children_in_either_order_leaves_the_parent_live() {
    for first_child_first in [true, false] {
        let (parent, _cancel) = Context::background().with_cancel();
        let mut children: Vec<Option<_>> = (0..3).map(|_| Some(parent.with_cancel())).collect();
        assert!(!children[0].as_ref().unwrap().0.is_done());
        for i in 0..children.len() {
            let at = if first_child_first {
                i
            } else {
                children.len() - 1 - i
            };
            children[at] = None; // drops the context and (so cancels) its handle
            assert!(!parent.is_done());
        }
    }
}

#[test]
fn cancel_reaches_exactly_the_subtree() {
    let (waker, count) = counting_waker();
    let (top, _top_cancel) = Context::background().with_cancel();
    let (ctx, cancel) = top.with_cancel();
    let (sibling, _s) = top.with_cancel();
    let (child1, _c1) = ctx.with_cancel();
    let (child2, _c2) = ctx.with_cancel();
    let (grandchild, _g1) = child1.with_cancel();
    let (grandchild2, _g2) = child1.with_cancel();
    let (great_grandchild, _gg) = grandchild.with_cancel();
    let inside = [
        &ctx,
        &child1,
        &child2,
        &grandchild,
        &grandchild2,
        &great_grandchild,
    ];
    let outside = [&top, &sibling];
    let mut inside_done: Vec<Done> = inside.iter().map(|c| c.done()).collect();
    let mut outside_done: Vec<Done> = outside.iter().map(|c| c.done()).collect();
    let mut all: Vec<&mut Done> = inside_done
        .iter_mut()
        .chain(outside_done.iter_mut())
        .collect();
    expect(&mut all, &waker, PENDING);
    assert!(inside.iter().chain(outside.iter()).all(|c| !c.is_done()));
    assert_eq!(wakes(&count), 0);

    cancel.cancel();
    assert_eq!(wakes(&count), 6);
    assert!(inside.iter().all(|c| c.is_done()));
    assert!(outside.iter().all(|c| !c.is_done()));
    expect(
        &mut inside_done.iter_mut().collect::<Vec<_>>(),
        &waker,
        CANCELED,
    );
    expect(
        &mut outside_done.iter_mut().collect::<Vec<_>>(),
        &waker,
        PENDING,
    );
    assert_eq!(wakes(&count), 6, "re-polling wakes nobody");
}

#[test]
fn parent_dropped_before_its_children() {
    let (parent, cancel) = Context::background().with_cancel();
    let (child1, _c1) = parent.with_cancel();
    let (child2, _c2) = parent.with_cancel();
    cancel.detach(); // a token dropped without cancelling
    drop(parent);
    assert!(!child1.is_done());
    drop(child1);
    drop(child2);
}

#[test]
fn context_and_done_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Context>();
    send_sync::<Done>();
}

/// tokio-util's `run_until_cancelled` checks, on `run`: cancelled while
/// pending, completed, and done before the first poll. With `drop_ctx`
/// the context is dropped once the future exists (its `_owned` variant).
fn run_scenarios(drop_ctx: bool) {
    let (waker, _) = counting_waker();
    let step = |fut: Pin<&mut dyn Future<Output = Result<i32, Error>>>| {
        fut.poll(&mut TaskCx::from_waker(&waker))
    };
    // The context, kept alive to the end unless `drop_ctx`.
    let release = |ctx: Context| (!drop_ctx).then_some(ctx);

    let (ctx, cancel) = Context::background().with_cancel();
    let mut fut = pin!(ctx.run(std::future::pending::<i32>()));
    let _kept1 = release(ctx);
    assert_eq!(step(fut.as_mut()), Poll::Pending);
    cancel.cancel();
    assert_eq!(step(fut.as_mut()), Poll::Ready(Err(Error::Canceled)));

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ctx, _cancel) = Context::background().with_cancel();
    let mut fut = pin!(ctx.run(async move {
        rx.await.unwrap();
        42
    }));
    let _kept2 = release(ctx);
    assert_eq!(step(fut.as_mut()), Poll::Pending);
    tx.send(()).unwrap();
    assert_eq!(step(fut.as_mut()), Poll::Ready(Ok(42)));

    let (ctx, cancel) = Context::background().with_cancel();
    let mut fut = pin!(ctx.run(async { panic!("polled after cancellation") }));
    let _kept3 = release(ctx);
    cancel.cancel();
    assert_eq!(step(fut.as_mut()), Poll::Ready(Err(Error::Canceled)));
}

#[test]
fn run_returns_the_output_or_the_error() {
    run_scenarios(false);
}

#[test]
fn run_future_outlives_the_context_it_came_from() {
    run_scenarios(true);
}

#[test]
fn clones_are_equal() {
    let (ctx, _cancel) = Context::background().with_cancel();
    assert_eq!(ctx, ctx.clone());
}

#[test]
fn a_child_is_not_its_parent() {
    let (ctx, _cancel) = Context::background().with_cancel();
    let (child, _c) = ctx.with_cancel();
    assert_ne!(ctx, child);
    assert_ne!(
        ctx,
        ctx.with_value(&KEY, 1),
        "a value child is a new context too"
    );
}

#[test]
fn independent_contexts_are_not_equal() {
    let (a, _ca) = Context::background().with_cancel();
    let (b, _cb) = Context::background().with_cancel();
    assert_ne!(a, b);
}

#[test]
fn clones_hash_alike() {
    let (ctx, _cancel) = Context::background().with_cancel();
    assert_eq!(hash_of(&ctx), hash_of(&ctx.clone()));
}

#[test]
fn independent_contexts_hash_differently() {
    let (a, _ca) = Context::background().with_cancel();
    let (b, _cb) = Context::background().with_cancel();
    assert_ne!(hash_of(&a), hash_of(&b));
}

#[test]
fn a_waker_may_derive_from_an_ancestor_while_woken() {
    struct DeriveOnWake {
        root: Context,
        woken: AtomicBool,
    }
    impl Wake for DeriveOnWake {
        fn wake(self: Arc<Self>) {
            let (child, _c) = self.root.with_cancel();
            assert!(child.is_done(), "the ancestor is done before waiters wake");
            self.woken.store(true, SeqCst);
        }
    }
    let (root, cancel) = Context::background().with_cancel();
    let (child, _c) = root.with_cancel();
    let state = Arc::new(DeriveOnWake {
        root: root.clone(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut fut = child.done();
    assert_eq!(poll(&mut fut, &waker), Poll::Pending);
    drop(waker);
    cancel.cancel();
    assert!(state.woken.load(SeqCst));
}

// ---------------------------------------------------------------------------
// The conventions beyond the port.

static KEY: gocontext::Key<u32> = gocontext::Key::new("n");

#[test]
fn in_flight_requests_live_in_sets_and_maps() {
    let (server, _stop) = Context::background().with_cancel();
    let requests: Vec<_> = (0..100).map(|_| server.with_cancel()).collect();
    let mut set: HashSet<Context> = requests.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(set.len(), 100);
    let mut map: HashMap<Context, usize> = HashMap::new();
    for (i, (ctx, _)) in requests.iter().enumerate() {
        map.insert(ctx.clone(), i);
    }
    assert_eq!(map[&requests[42].0], 42);
    assert!(set.remove(&requests[7].0.clone()));
    assert!(!set.contains(&requests[7].0));
    assert_eq!(set.len(), 99);
}

#[test]
fn default_is_background() {
    let ctx = Context::default();
    assert_eq!(ctx, Context::background());
    assert_ne!(ctx, Context::todo());
    assert!(!ctx.is_done() && ctx.deadline().is_none());
    assert_eq!(ctx.to_string(), "context.Background");
}

#[test]
fn cancel_with_a_plain_message() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _c) = ctx.with_cancel();
    cancel.cancel_with_message("shutting down");
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(child.cause().unwrap().to_string(), "shutting down");
    cancel.cancel_with_message(String::from("second reason"));
    assert_eq!(
        ctx.cause().unwrap().to_string(),
        "shutting down",
        "set once"
    );

    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(Cause::message(format!("node {} left", 3)));
    assert_eq!(ctx.cause().unwrap().to_string(), "node 3 left");
}

#[test]
fn a_cause_boxes_into_the_common_error_type() {
    fn step(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(cause) = ctx.cause() {
            return Err(cause.into());
        }
        Ok(())
    }
    let (ctx, cancel) = Context::background().with_cancel();
    assert!(step(&ctx).is_ok());
    cancel.cancel();
    let err = step(&ctx).unwrap_err();
    assert_eq!(err.to_string(), "context canceled");
}
