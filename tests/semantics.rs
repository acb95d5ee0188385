//! Integration tests for the numbered semantics of `docs/semantics.md` (1-12),
//! except deadlines and clocks (semantics 4 and 5), which the timer branch
//! covers. Each test names the semantic it checks.

use gocontext::{AfterFunc, CancelHandle, Cause, Clock, Context, Done, Error, Key};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context as TaskCx, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/miri.rs"]
mod miri;
use miri::scaled;

// ---------------------------------------------------------------------------
// helpers

/// An "eventually" bound: generous, only ever an upper limit on waiting.
const EVENTUALLY: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
struct MyErr(&'static str);

impl fmt::Display for MyErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "my error: {}", self.0)
    }
}

impl std::error::Error for MyErr {}

/// A waker that unparks the thread that created it.
struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `fut` on this thread, parking between polls.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = TaskCx::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker::default());
    (c.clone(), Waker::from(c))
}

fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut TaskCx::from_waker(waker))
}

/// Asserts `ctx` is done with `Canceled` and exactly `cause` (shared).
#[track_caller]
fn assert_canceled_with(ctx: &Context, cause: &Cause) {
    assert_eq!(ctx.err(), Some(Error::Canceled), "{ctx}");
    assert!(ctx.is_done());
    let got = ctx.cause().expect("a done context has a cause");
    assert!(got.ptr_eq(cause), "{ctx}: cause {got} is not {cause}");
}

#[track_caller]
fn assert_live(ctx: &Context) {
    assert_eq!(ctx.err(), None, "{ctx}");
    assert!(!ctx.is_done());
    assert!(ctx.cause().is_none(), "{ctx}");
}

/// A value that counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

static USER: Key<String> = Key::new("user");
static REQ: Key<u64> = Key::new("req");
static OTHER_REQ: Key<u64> = Key::new("req"); // same name and type, other key
static DROPPED: Key<DropCount> = Key::new("dropped");

// ---------------------------------------------------------------------------
// semantic 1: cancellation propagates down, synchronously, never up

#[test]
fn s1_cancel_reaches_every_descendant_with_the_same_err_and_cause() {
    let (root, cancel) = Context::background().with_cancel();
    let (a, _ha) = root.with_cancel();
    let av = a.with_value(&REQ, 1);
    let (a1, _ha1) = av.with_cancel();
    let (a2, _ha2) = av.with_value(&USER, "u".into()).with_cancel();
    let (b, _hb) = root.with_cancel();
    let bv = b.with_value(&REQ, 2);
    let (merged, _hm) = Context::merge(&a1, &Context::background());
    let all = [&root, &a, &av, &a1, &a2, &b, &bv, &merged];
    for c in all {
        assert_live(c);
    }
    cancel.cancel_with_cause(MyErr("root"));
    let cause = root.cause().unwrap();
    assert!(cause.is::<MyErr>());
    assert_eq!(cause.downcast_ref::<MyErr>(), Some(&MyErr("root")));
    for c in all {
        assert_canceled_with(c, &cause);
    }
}

#[test]
fn s1_plain_cancel_gives_every_descendant_the_shared_default_cause() {
    let (root, cancel) = Context::background().with_cancel();
    let (child, _h) = root.with_value(&REQ, 1).with_cancel();
    let (grandchild, _h2) = child.with_cancel();
    cancel.cancel();
    let cause = root.cause().unwrap();
    assert_eq!(cause.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert_canceled_with(&child, &cause);
    assert_canceled_with(&grandchild, &cause);
}

#[test]
fn s1_cancel_never_touches_parent_or_siblings() {
    let (root, _hr) = Context::background().with_cancel();
    let (parent, _hp) = root.with_cancel();
    let (mid, cancel_mid) = parent.with_value(&REQ, 1).with_cancel();
    let (sibling, _hs) = parent.with_cancel();
    let (nephew, _hn) = sibling.with_cancel();
    let (child, _hc) = mid.with_cancel();
    cancel_mid.cancel_with_cause(MyErr("mid"));
    let cause = mid.cause().unwrap();
    assert_canceled_with(&child, &cause);
    for c in [&root, &parent, &sibling, &nephew] {
        assert_live(c);
    }
    // And the untouched part of the tree still works.
    let (late, _hl) = sibling.with_cancel();
    assert_live(&late);
}

#[test]
fn s1_cancel_is_synchronous_for_waiters() {
    // When cancel() returns, every pending Done future below has been woken.
    let (root, cancel) = Context::background().with_cancel();
    let (leaf, _h) = root.with_value(&REQ, 1).with_cancel();
    let (deeper, _h2) = leaf.with_cancel();
    let mut futures = Vec::new();
    for c in [&root, &leaf, &deeper] {
        for _ in 0..3 {
            let (count, waker) = counting_waker();
            let mut done = c.done();
            assert!(poll_once(&mut done, &waker).is_pending());
            futures.push((count, waker, done));
        }
    }
    for (count, _, _) in &futures {
        assert_eq!(count.0.load(SeqCst), 0);
    }
    cancel.cancel();
    for (count, waker, done) in &mut futures {
        assert!(count.0.load(SeqCst) >= 1, "waiter not woken by cancel()");
        assert_eq!(poll_once(done, waker), Poll::Ready(Error::Canceled));
    }
}

#[test]
fn s1_cancel_wakes_blocked_threads_before_returning_or_soon_after() {
    let (root, cancel) = Context::background().with_cancel();
    let (leaf, _h) = root.with_cancel();
    let (tx, rx) = mpsc::channel();
    let ready = Arc::new(Barrier::new(5));
    let mut threads = Vec::new();
    for i in 0..4 {
        let c = if i % 2 == 0 {
            root.clone()
        } else {
            leaf.clone()
        };
        let tx = tx.clone();
        let ready = ready.clone();
        threads.push(thread::spawn(move || {
            ready.wait();
            tx.send(c.wait()).unwrap();
        }));
    }
    ready.wait();
    cancel.cancel();
    for _ in 0..4 {
        assert_eq!(rx.recv_timeout(EVENTUALLY), Ok(Error::Canceled));
    }
    for t in threads {
        t.join().unwrap();
    }
}

// ---------------------------------------------------------------------------
// semantic 2: err and cause are set once

#[test]
fn s2_err_and_cause_never_change_once_set() {
    let (root, cancel_root) = Context::background().with_cancel();
    let (ctx, cancel) = root.with_cancel();
    cancel.cancel_with_cause(MyErr("first"));
    let first = ctx.cause().unwrap();
    assert_eq!(first.to_string(), "my error: first");
    cancel.cancel_with_cause(MyErr("second"));
    cancel.cancel();
    cancel_root.cancel_with_cause(MyErr("root"));
    assert_canceled_with(&ctx, &first);
    // The root got its own cause, not the child's.
    let root_cause = root.cause().unwrap();
    assert_eq!(root_cause.downcast_ref::<MyErr>(), Some(&MyErr("root")));
    assert!(!root_cause.ptr_eq(&first));
}

#[test]
fn s2_cause_without_custom_cause_is_the_err() {
    let (ctx, cancel) = Context::background().with_cancel();
    assert!(ctx.cause().is_none());
    cancel.cancel();
    let cause = ctx.cause().unwrap();
    assert!(cause.is::<Error>());
    assert_eq!(cause.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert_eq!(cause.to_string(), "context canceled");
    // A later cancel_with_cause does not replace the default cause.
    cancel.cancel_with_cause(MyErr("late"));
    assert_canceled_with(&ctx, &cause);
    assert!(!ctx.cause().unwrap().is::<MyErr>());
}

#[test]
fn s2_cancel_with_cause_on_a_child_done_through_its_parent_changes_nothing() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    cancel_parent.cancel_with_cause(MyErr("parent"));
    let cause = parent.cause().unwrap();
    cancel_child.cancel_with_cause(MyErr("child"));
    cancel_child.cancel();
    assert_canceled_with(&child, &cause);
    drop(cancel_child);
    assert_canceled_with(&child, &cause);
}

#[test]
fn s2_racing_causes_agree_across_the_subtree() {
    for round in 0..scaled("racing-cause rounds", 200, 10) {
        let (root, cancel_root) = Context::background().with_cancel();
        let (mid, cancel_mid) = root.with_cancel();
        let (leaf, _h) = mid.with_value(&REQ, round as u64).with_cancel();
        let (leaf2, _h2) = leaf.with_cancel();
        let start = Arc::new(Barrier::new(3));
        let (s1, s2) = (start.clone(), start.clone());
        let t1 = thread::spawn(move || {
            s1.wait();
            cancel_root.cancel_with_cause(MyErr("root"));
        });
        let t2 = thread::spawn(move || {
            s2.wait();
            cancel_mid.cancel_with_cause(MyErr("mid"));
        });
        start.wait();
        let seen_early = leaf2.cause();
        t1.join().unwrap();
        t2.join().unwrap();
        let cause = mid.cause().unwrap();
        let which = cause.downcast_ref::<MyErr>().unwrap().0;
        assert!(which == "root" || which == "mid");
        assert_canceled_with(&leaf, &cause);
        assert_canceled_with(&leaf2, &cause);
        if let Some(early) = seen_early {
            assert!(early.ptr_eq(&cause), "cause changed after being seen");
        }
        assert_eq!(
            root.cause().unwrap().downcast_ref::<MyErr>(),
            Some(&MyErr("root"))
        );
    }
}

#[test]
fn s2_err_seen_done_implies_cause_seen() {
    for _ in 0..scaled("err-then-cause rounds", 200, 10) {
        let (ctx, cancel) = Context::background().with_cancel();
        let (child, _h) = ctx.with_cancel();
        let reader = thread::spawn(move || loop {
            let err = child.err();
            let cause = child.cause();
            if err.is_some() {
                let cause = cause.expect("err was set before cause() was read");
                assert!(cause.is::<MyErr>());
                return;
            }
            thread::yield_now();
        });
        cancel.cancel_with_cause(MyErr("x"));
        reader.join().unwrap();
    }
}

// ---------------------------------------------------------------------------
// semantic 3: deriving from a done context

#[test]
fn s3_with_cancel_of_a_done_context_is_done_at_once() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(MyErr("gone"));
    let cause = parent.cause().unwrap();
    let (child, child_cancel) = parent.with_cancel();
    assert_canceled_with(&child, &cause);
    let (grandchild, _h) = child.with_cancel();
    assert_canceled_with(&grandchild, &cause);
    child_cancel.cancel_with_cause(MyErr("ignored"));
    assert_canceled_with(&child, &cause);
}

#[test]
fn s3_with_value_then_with_cancel_of_a_done_context_is_done_at_once() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(MyErr("gone"));
    let cause = parent.cause().unwrap();
    let v = parent.with_value(&REQ, 7);
    assert_canceled_with(&v, &cause);
    let (child, _h) = v.with_value(&USER, "x".into()).with_cancel();
    assert_canceled_with(&child, &cause);
    assert_eq!(child.value(&REQ), Some(&7));
}

#[test]
fn s3_with_deadline_of_a_done_context_keeps_the_parents_reason() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(MyErr("gone"));
    let cause = parent.cause().unwrap();
    let far = Instant::now() + Duration::from_secs(3600);
    let (d, _h) = parent.with_deadline_cause(far, MyErr("deadline"));
    assert_canceled_with(&d, &cause);
    let (t, _h2) = parent.with_timeout(Duration::from_secs(3600));
    assert_canceled_with(&t, &cause);
}

#[test]
fn s3_merge_with_a_done_parent_is_done_at_once_with_that_parents_cause() {
    let (live, _hl) = Context::background().with_cancel();
    let (dead, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(MyErr("dead"));
    let cause = dead.cause().unwrap();
    let (m1, _h1) = Context::merge(&dead, &live);
    assert_canceled_with(&m1, &cause);
    let (m2, _h2) = Context::merge(&live, &dead);
    assert_canceled_with(&m2, &cause);
    assert_live(&live);
}

#[test]
fn s3_after_func_on_a_done_context_runs_at_once_on_the_calling_thread() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let ran_on = Arc::new(std::sync::Mutex::new(None));
    let r = ran_on.clone();
    let seen_done = Arc::new(AtomicBool::new(false));
    let (c, s) = (ctx.clone(), seen_done.clone());
    let after = ctx.after_func(move || {
        *r.lock().unwrap() = Some(thread::current().id());
        s.store(c.is_done(), SeqCst);
    });
    assert_eq!(*ran_on.lock().unwrap(), Some(thread::current().id()));
    assert!(seen_done.load(SeqCst));
    assert!(!after.stop(), "stop after the run must report false");
}

#[test]
fn s3_done_and_wait_on_a_done_context_return_at_once() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (_count, waker) = counting_waker();
    let mut done = ctx.done();
    assert_eq!(poll_once(&mut done, &waker), Poll::Ready(Error::Canceled));
    assert_eq!(ctx.wait(), Error::Canceled);
    assert_eq!(
        ctx.wait_timeout(Duration::from_secs(3600)),
        Some(Error::Canceled)
    );
}

// ---------------------------------------------------------------------------
// semantic 6: without_cancel

#[test]
fn s6_without_cancel_keeps_values_is_never_done_and_has_no_deadline() {
    let (parent, cancel) = Context::background()
        .with_value(&REQ, 5)
        .with_timeout(Duration::from_secs(3600));
    assert!(parent.deadline().is_some());
    let detached = parent.without_cancel();
    assert_eq!(detached.deadline(), None);
    assert_eq!(detached.value(&REQ), Some(&5));
    cancel.cancel_with_cause(MyErr("parent"));
    assert!(parent.is_done());
    assert_live(&detached);
    assert_eq!(detached.value(&REQ), Some(&5));
    let (_count, waker) = counting_waker();
    let mut done = detached.done();
    assert!(poll_once(&mut done, &waker).is_pending());
    assert_eq!(detached.wait_timeout(Duration::from_millis(1)), None);
    let after = detached.after_func(|| panic!("a never-done context ran a callback"));
    assert!(after.stop());
}

#[test]
fn s6_children_of_without_cancel_are_cut_off_from_the_old_parent() {
    let (parent, cancel) = Context::background().with_cancel();
    let detached = parent.without_cancel();
    let (child, cancel_child) = detached.with_cancel();
    let (grandchild, _h) = child.with_value(&REQ, 1).with_cancel();
    cancel.cancel();
    assert_live(&detached);
    assert_live(&child);
    assert_live(&grandchild);
    // The child's own handle still works.
    cancel_child.cancel_with_cause(MyErr("own"));
    let cause = child.cause().unwrap();
    assert!(cause.is::<MyErr>());
    assert_canceled_with(&grandchild, &cause);
    assert_live(&detached);
}

#[test]
fn s6_without_cancel_of_a_done_context_is_not_done() {
    let (parent, cancel) = Context::background().with_value(&REQ, 9).with_cancel();
    cancel.cancel();
    let detached = parent.without_cancel();
    assert_live(&detached);
    assert_eq!(detached.value(&REQ), Some(&9));
    let (child, _h) = detached.with_cancel();
    assert_live(&child);
}

// ---------------------------------------------------------------------------
// semantic 7: values

#[test]
fn s7_values_shadow_and_lookup_walks_outward_through_every_kind_of_layer() {
    let bg = Context::background();
    let l1 = bg.with_value(&REQ, 1);
    let (l2, _h2) = l1.with_cancel();
    let l3 = l2.with_value(&USER, "alice".into());
    let l4 = l3.without_cancel();
    let l5 = l4.with_value(&REQ, 2); // shadows REQ = 1
    let (l6, _h6) = l5.with_cancel();
    let (l7, _h7) = Context::merge(&l6, &bg);
    let l8 = l7.with_value(&USER, "bob".into());

    assert_eq!(bg.value(&REQ), None);
    assert_eq!(l1.value(&REQ), Some(&1));
    assert_eq!(l2.value(&REQ), Some(&1));
    assert_eq!(l3.value(&REQ), Some(&1));
    assert_eq!(l4.value(&REQ), Some(&1));
    assert_eq!(l5.value(&REQ), Some(&2));
    assert_eq!(l6.value(&REQ), Some(&2));
    assert_eq!(l7.value(&REQ), Some(&2));
    assert_eq!(l8.value(&REQ), Some(&2));
    assert_eq!(l2.value(&USER), None);
    assert_eq!(l3.value(&USER).map(String::as_str), Some("alice"));
    assert_eq!(l7.value(&USER).map(String::as_str), Some("alice"));
    assert_eq!(l8.value(&USER).map(String::as_str), Some("bob"));
    // Same name and type, different static: a different key.
    for c in [&l1, &l5, &l8] {
        assert_eq!(c.value(&OTHER_REQ), None);
    }
    let l9 = l8.with_value(&OTHER_REQ, 99);
    assert_eq!(l9.value(&OTHER_REQ), Some(&99));
    assert_eq!(l9.value(&REQ), Some(&2));
}

#[test]
fn s7_values_survive_cancellation() {
    let (ctx, cancel) = Context::background()
        .with_value(&USER, "carol".into())
        .with_cancel();
    let v = ctx.with_value(&REQ, 3);
    cancel.cancel();
    assert!(v.is_done());
    assert_eq!(v.value(&REQ), Some(&3));
    assert_eq!(v.value(&USER).map(String::as_str), Some("carol"));
}

#[test]
fn s7_value_is_dropped_when_the_last_context_holding_it_is_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (parent, _hp) = Context::background().with_cancel();
    let v = parent.with_value(&DROPPED, DropCount(drops.clone()));
    let (child, cancel_child) = v.with_cancel();
    let grandchild = child.with_value(&REQ, 1);
    drop(v);
    assert!(grandchild.value(&DROPPED).is_some());
    cancel_child.cancel();
    drop(cancel_child);
    drop(child);
    assert_eq!(drops.load(SeqCst), 0, "still reachable from grandchild");
    drop(grandchild);
    assert_eq!(drops.load(SeqCst), 1);
    assert_live(&parent);
}

// ---------------------------------------------------------------------------
// semantic 8: after_func

#[test]
fn s8_after_func_runs_exactly_once_on_the_cancelling_thread() {
    let (root, cancel_root) = Context::background().with_cancel();
    let (ctx, cancel) = root.with_value(&REQ, 1).with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let ran_on = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, on, c) = (runs.clone(), ran_on.clone(), ctx.clone());
    let after = ctx.after_func(move || {
        assert!(c.is_done(), "after_func ran before the context was done");
        r.fetch_add(1, SeqCst);
        on.lock().unwrap().push(thread::current().id());
    });
    assert_eq!(runs.load(SeqCst), 0);
    let canceller = thread::spawn(move || {
        cancel.cancel();
        cancel.cancel();
        thread::current().id()
    })
    .join()
    .unwrap();
    cancel_root.cancel();
    assert_eq!(runs.load(SeqCst), 1);
    assert_eq!(*ran_on.lock().unwrap(), vec![canceller]);
    assert!(!after.stop());
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn s8_after_func_runs_when_an_ancestor_is_cancelled() {
    let (root, cancel_root) = Context::background().with_cancel();
    let (mid, _hm) = root.with_cancel();
    let leaf = mid.with_value(&REQ, 1);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let _after = leaf.after_func(move || {
        r.fetch_add(1, SeqCst);
    });
    cancel_root.cancel();
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn s8_stop_is_true_iff_it_prevented_the_run() {
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let after = ctx.after_func(move || {
        r.fetch_add(1, SeqCst);
    });
    assert!(after.stop());
    assert!(!after.stop(), "second stop prevented nothing");
    cancel.cancel();
    assert_eq!(runs.load(SeqCst), 0);
    assert!(!after.stop());
}

#[test]
fn s8_stop_drops_the_callback() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (ctx, _cancel) = Context::background().with_cancel();
    let held = DropCount(drops.clone());
    let after = ctx.after_func(move || drop(held));
    assert_eq!(drops.load(SeqCst), 0);
    assert!(after.stop());
    assert_eq!(drops.load(SeqCst), 1, "a stopped callback is released");
    drop(after);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn s8_stop_racing_cancel_either_stops_or_runs_never_both() {
    for _ in 0..scaled("stop-vs-cancel rounds", 500, 20) {
        let (ctx, cancel) = Context::background().with_cancel();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let after = ctx.after_func(move || {
            r.fetch_add(1, SeqCst);
        });
        let start = Arc::new(Barrier::new(2));
        let s = start.clone();
        let t = thread::spawn(move || {
            s.wait();
            cancel.cancel();
        });
        start.wait();
        let stopped = after.stop();
        t.join().unwrap();
        assert_eq!(runs.load(SeqCst), usize::from(!stopped));
        assert!(!after.stop());
    }
}

#[test]
fn s8_dropping_after_func_does_not_unregister() {
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    drop(ctx.after_func(move || {
        r.fetch_add(1, SeqCst);
    }));
    // Even with the context itself dropped, the registration keeps it in
    // the tree.
    drop(ctx);
    assert_eq!(runs.load(SeqCst), 0);
    cancel.cancel();
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn s8_s10_registration_does_not_keep_an_abandoned_context_alive() {
    // Semantics 10: dropping every Context and CancelHandle frees the
    // subtree; a pending callback is then dropped unrun, never leaked.
    let (root, cancel_root) = Context::background().with_cancel();
    let (child, child_handle) = root.with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    drop(child.after_func(move || {
        r.fetch_add(1, SeqCst);
    }));
    child_handle.detach();
    assert_eq!(
        Arc::strong_count(&runs),
        2,
        "pending while the context lives"
    );
    drop(child);
    assert_eq!(Arc::strong_count(&runs), 1, "dropped with the context");
    cancel_root.cancel();
    assert_eq!(runs.load(SeqCst), 0);
}

#[test]
fn s8_a_panicking_callback_does_not_stop_the_cancellation_and_is_re_raised() {
    let (root, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut nodes = Vec::new();
    let mut handles = Vec::new();
    let mut afters = Vec::new();
    for i in 0..20 {
        let (c, h) = root.with_cancel();
        let (gc, gh) = c.with_cancel();
        for target in [&root, &c, &gc] {
            let r = runs.clone();
            afters.push(target.after_func(move || {
                r.fetch_add(1, SeqCst);
            }));
        }
        if i == 7 || i == 13 {
            afters.push(gc.after_func(move || panic!("boom {i}")));
        }
        nodes.push(c);
        nodes.push(gc);
        handles.push(h);
        handles.push(gh);
    }
    let result = catch_unwind(AssertUnwindSafe(|| cancel.cancel()));
    let payload = result.expect_err("the callback's panic reaches the canceller");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .expect("panic payload is the callback's message");
    assert!(
        msg == "boom 7" || msg == "boom 13",
        "unexpected payload {msg}"
    );
    assert_eq!(runs.load(SeqCst), 60, "every other callback ran");
    let cause = root.cause().unwrap();
    for n in &nodes {
        assert_canceled_with(n, &cause);
    }
    // The tree stays usable, and a second cancel re-raises nothing.
    cancel.cancel();
    drop(handles);
    assert_eq!(root.value(&REQ), None);
    assert_eq!(root.wait(), Error::Canceled);
}

#[test]
fn s8_a_panicking_callback_reaches_the_dropper_of_the_handle() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    let _after = child.after_func(|| panic!("from drop"));
    let payload = catch_unwind(AssertUnwindSafe(move || drop(cancel))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from drop"));
    assert!(ctx.is_done() && child.is_done());
}

#[test]
fn s8_callbacks_may_re_enter_the_engine() {
    let (root, cancel_root) = Context::background().with_cancel();
    let (other, cancel_other) = Context::background().with_cancel();
    let cancel_other = Arc::new(std::sync::Mutex::new(Some(cancel_other)));
    let (child, _h) = root.with_cancel();
    let inner_ran = Arc::new(AtomicBool::new(false));
    let (c, co, ir) = (child.clone(), cancel_other.clone(), inner_ran.clone());
    let _after = child.after_func(move || {
        // From inside the drain: read the context being cancelled, register
        // another callback on it (runs at once), wait on it (returns at
        // once), and cancel an unrelated tree.
        assert_eq!(c.err(), Some(Error::Canceled));
        assert_eq!(c.wait(), Error::Canceled);
        let _inner = c.after_func(move || ir.store(true, SeqCst));
        co.lock().unwrap().take().unwrap().cancel();
    });
    cancel_root.cancel();
    assert!(inner_ran.load(SeqCst));
    assert_eq!(other.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::Canceled));
}

#[test]
fn s8_callbacks_may_derive_from_the_context_being_cancelled() {
    let (root, cancel_root) = Context::background().with_cancel();
    let (child, _h) = root.with_cancel();
    let derived = Arc::new(std::sync::Mutex::new(None));
    let (c, d) = (child.clone(), derived.clone());
    let _after = child.after_func(move || {
        *d.lock().unwrap() = Some(c.with_cancel());
    });
    cancel_root.cancel();
    let cause = root.cause().unwrap();
    let (grand, _gh) = derived.lock().unwrap().take().unwrap();
    assert_canceled_with(&grand, &cause);
}

#[test]
fn s8_after_func_on_a_never_done_context_never_runs() {
    let bg = Context::background();
    let after = bg.after_func(|| panic!("must not run"));
    drop(after);
    let after = Context::todo()
        .with_value(&REQ, 1)
        .after_func(|| panic!("must not run"));
    assert!(after.stop());
}

// ---------------------------------------------------------------------------
// semantic 9: merge

#[test]
fn s9_merge_is_done_when_its_first_parent_is() {
    let (a, cancel_a) = Context::background().with_cancel();
    let (b, _hb) = Context::background().with_cancel();
    let (m, _hm) = Context::merge(&a, &b);
    let (below, _h) = m.with_value(&REQ, 1).with_cancel();
    assert_live(&m);
    cancel_a.cancel_with_cause(MyErr("a"));
    let cause = a.cause().unwrap();
    assert_canceled_with(&m, &cause);
    assert_canceled_with(&below, &cause);
    assert_live(&b);
}

#[test]
fn s9_merge_is_done_when_its_second_parent_is() {
    let (a, _ha) = Context::background().with_cancel();
    let (b, cancel_b) = Context::background().with_cancel();
    let (m, _hm) = Context::merge(&a, &b);
    let (below, _h) = m.with_cancel();
    cancel_b.cancel_with_cause(MyErr("b"));
    let cause = b.cause().unwrap();
    assert_canceled_with(&m, &cause);
    assert_canceled_with(&below, &cause);
    assert_live(&a);
    // The first parent's later cancel changes nothing.
    drop(_ha);
    assert_canceled_with(&m, &cause);
}

#[test]
fn s9_merge_handle_cancels_only_the_merge() {
    let (a, _ha) = Context::background().with_cancel();
    let (b, _hb) = Context::background().with_cancel();
    let (m, cancel_m) = Context::merge(&a, &b);
    cancel_m.cancel_with_cause(MyErr("m"));
    assert!(m.cause().unwrap().is::<MyErr>());
    assert_live(&a);
    assert_live(&b);
    // Both parents still accept and cancel new children.
    let (ca, _h1) = a.with_cancel();
    let (cb, _h2) = b.with_cancel();
    assert_live(&ca);
    assert_live(&cb);
}

#[test]
fn s9_merge_looks_values_up_in_a_then_b() {
    static ONLY_B: Key<&'static str> = Key::new("only-b");
    let a = Context::background().with_value(&REQ, 1);
    let (a, _ha) = a.with_cancel();
    let b = Context::background()
        .with_value(&REQ, 2)
        .with_value(&ONLY_B, "b");
    let (m, _hm) = Context::merge(&a, &b);
    assert_eq!(m.value(&REQ), Some(&1));
    assert_eq!(m.value(&ONLY_B), Some(&"b"));
    assert_eq!(m.value(&USER), None);
    let (m2, _hm2) = Context::merge(&b, &a);
    assert_eq!(m2.value(&REQ), Some(&2));
    // Nested merges keep the order: (m, c) looks in m's a, m's b, then c.
    let c = Context::background().with_value(&USER, "c".into());
    let (mm, _h) = Context::merge(&m, &c);
    assert_eq!(mm.value(&REQ), Some(&1));
    assert_eq!(mm.value(&ONLY_B), Some(&"b"));
    assert_eq!(mm.value(&USER).map(String::as_str), Some("c"));
}

#[test]
fn s9_merge_deadline_is_the_earlier() {
    let now = Instant::now();
    let (a, _ha) = Context::background().with_deadline(now + Duration::from_secs(3600));
    let (b, _hb) = Context::background().with_deadline(now + Duration::from_secs(7200));
    let (m, _hm) = Context::merge(&a, &b);
    assert_eq!(m.deadline(), a.deadline());
    let (m2, _hm2) = Context::merge(&b, &a);
    assert_eq!(m2.deadline(), a.deadline());
    let (m3, _hm3) = Context::merge(&Context::background(), &b);
    assert_eq!(m3.deadline(), b.deadline());
    let (m4, _hm4) = Context::merge(&Context::background(), &Context::todo());
    assert_eq!(m4.deadline(), None);
}

#[test]
fn s9_merge_of_a_context_with_itself() {
    let (a, cancel_a) = Context::background().with_cancel();
    let (m, _hm) = Context::merge(&a, &a);
    let (m_dropped, h_dropped) = Context::merge(&a, &a);
    drop(m_dropped);
    drop(h_dropped);
    cancel_a.cancel();
    assert_eq!(m.err(), Some(Error::Canceled));
}

#[test]
fn s9_merge_of_two_roots_is_done_only_by_its_handle() {
    let (m, cancel) = Context::merge(&Context::background(), &Context::todo());
    assert_live(&m);
    cancel.cancel();
    assert_eq!(m.err(), Some(Error::Canceled));
}

#[test]
fn s9_dropped_merges_leave_both_parents_working() {
    let (a, cancel_a) = Context::background().with_cancel();
    let (b, cancel_b) = Context::background().with_cancel();
    // Above the sweep threshold (64 dead entries) either way.
    for i in 0..scaled("dropped merges", 1000, 200) {
        let (m, h) = Context::merge(&a, &b);
        if i % 2 == 0 {
            h.detach();
        }
        drop(m);
    }
    let (m, _h) = Context::merge(&a, &b);
    cancel_b.cancel();
    assert_eq!(m.err(), Some(Error::Canceled));
    assert_live(&a);
    cancel_a.cancel();
    assert!(a.is_done());
}

// ---------------------------------------------------------------------------
// CancelHandle

#[test]
fn handle_drop_cancels_and_detach_does_not() {
    let (ctx, handle) = Context::background().with_cancel();
    drop(handle);
    assert_eq!(ctx.err(), Some(Error::Canceled));

    let (parent, cancel_parent) = Context::background().with_cancel();
    let (ctx, handle) = parent.with_cancel();
    handle.detach();
    assert_live(&ctx);
    // A detached child still follows its parent.
    cancel_parent.cancel_with_cause(MyErr("p"));
    assert_canceled_with(&ctx, &parent.cause().unwrap());
}

#[test]
fn handle_outliving_its_context_still_cancels_children() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    drop(ctx);
    assert_live(&child);
    handle.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
    assert!(format!("{handle:?}").contains("CancelHandle"));
}

// ---------------------------------------------------------------------------
// Display and Error

#[test]
fn display_follows_go() {
    assert_eq!(Context::background().to_string(), "context.Background");
    assert_eq!(Context::todo().to_string(), "context.TODO");
    let (c, _h) = Context::background().with_cancel();
    assert_eq!(c.to_string(), "context.Background.WithCancel");
    let v = c.with_value(&USER, "x".into());
    assert_eq!(
        v.to_string(),
        "context.Background.WithCancel.WithValue(user)"
    );
    let w = v.without_cancel();
    assert_eq!(
        w.to_string(),
        "context.Background.WithCancel.WithValue(user).WithoutCancel"
    );
    let (t, _h2) = Context::todo().with_value(&REQ, 1).with_cancel();
    assert_eq!(t.to_string(), "context.TODO.WithValue(req).WithCancel");
    // Display does not change with cancellation.
    drop(_h);
    assert_eq!(
        w.to_string(),
        "context.Background.WithCancel.WithValue(user).WithoutCancel"
    );
    let dbg = format!("{c:?}");
    assert!(dbg.contains("context.Background.WithCancel"), "{dbg}");
}

#[test]
fn error_displays_and_maps_like_go() {
    assert_eq!(Error::Canceled.to_string(), "context canceled");
    assert_eq!(
        Error::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
    assert!(!Error::Canceled.is_timeout());
    assert!(Error::DeadlineExceeded.is_timeout());
    let io: std::io::Error = Error::Canceled.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
    assert_eq!(io.to_string(), "context canceled");
    let io: std::io::Error = Error::DeadlineExceeded.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(
        io.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(&Error::DeadlineExceeded)
    );
    let set: HashSet<Error> = [Error::Canceled, Error::Canceled, Error::DeadlineExceeded]
        .into_iter()
        .collect();
    assert_eq!(set.len(), 2);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::Canceled);
    assert_eq!(boxed.to_string(), "context canceled");
}

#[test]
fn cause_converts_downcasts_and_derefs() {
    #[derive(Debug)]
    struct Wrapper(MyErr);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let c: Cause = Wrapper(MyErr("inner")).into();
    assert!(c.is::<Wrapper>());
    assert!(!c.is::<MyErr>());
    assert!(c.downcast_ref::<MyErr>().is_none());
    assert_eq!(c.to_string(), "wrapper");
    assert_eq!(c.source().unwrap().to_string(), "my error: inner");
    let d = c.clone();
    assert!(c.ptr_eq(&d));
    let e: Cause = Wrapper(MyErr("inner")).into();
    assert!(!c.ptr_eq(&e));
    assert!(format!("{c:?}").contains("Wrapper"));
    let from_err = Cause::from(Error::Canceled);
    assert_eq!(from_err.downcast_ref::<Error>(), Some(&Error::Canceled));
    let io = Cause::from(std::io::Error::other("io"));
    assert!(io.is::<std::io::Error>());
}

// ---------------------------------------------------------------------------
// Done, wait, run (semantic 10's "leaves nothing behind" as observable
// behaviour: the context stays fully usable)

#[test]
fn done_resolves_on_a_hand_rolled_executor() {
    let (ctx, cancel) = Context::background().with_value(&REQ, 1).with_cancel();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        cancel.cancel();
    });
    assert_eq!(block_on(ctx.done()), Error::Canceled);
    t.join().unwrap();
}

#[test]
fn done_resolves_on_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ctx, cancel) = Context::background().with_cancel();
        let c = ctx.clone();
        let waiter = tokio::spawn(async move { c.done().await });
        tokio::task::yield_now().await;
        cancel.cancel_with_cause(MyErr("tokio"));
        let got = tokio::time::timeout(EVENTUALLY, waiter).await;
        assert_eq!(got.unwrap().unwrap(), Error::Canceled);
        // A never-done context's future stays pending.
        let bg = Context::background();
        assert!(tokio::time::timeout(Duration::from_millis(10), bg.done())
            .await
            .is_err());
    });
}

#[test]
fn done_follows_the_latest_waker() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut done = ctx.done();
    let (first, w1) = counting_waker();
    let (second, w2) = counting_waker();
    assert!(poll_once(&mut done, &w1).is_pending());
    assert!(poll_once(&mut done, &w2).is_pending());
    cancel.cancel();
    assert_eq!(second.0.load(SeqCst), 1, "the latest waker is woken");
    assert!(first.0.load(SeqCst) <= 1);
    assert_eq!(poll_once(&mut done, &w2), Poll::Ready(Error::Canceled));
}

#[test]
fn dropped_done_futures_leave_the_context_usable() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    let (_count, waker) = counting_waker();
    for _ in 0..scaled("dropped Done futures", 10_000, 300) {
        let mut d = ctx.done();
        assert!(poll_once(&mut d, &waker).is_pending());
        drop(d);
        // And one never polled.
        drop(child.done());
    }
    let (kept_count, kept_waker) = counting_waker();
    let mut kept = ctx.done();
    assert!(poll_once(&mut kept, &kept_waker).is_pending());
    assert_live(&ctx);
    cancel.cancel();
    assert_eq!(kept_count.0.load(SeqCst), 1);
    assert_eq!(
        poll_once(&mut kept, &kept_waker),
        Poll::Ready(Error::Canceled)
    );
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(block_on(ctx.done()), Error::Canceled);
}

#[test]
fn timed_out_wait_leaves_the_context_usable() {
    let (ctx, cancel) = Context::background().with_cancel();
    for _ in 0..scaled("timed-out waits", 100, 10) {
        assert_eq!(ctx.wait_timeout(Duration::from_micros(10)), None);
    }
    assert_eq!(ctx.wait_timeout(Duration::ZERO), None);
    assert_live(&ctx);
    let (tx, rx) = mpsc::channel();
    let c = ctx.clone();
    let t = thread::spawn(move || tx.send(c.wait()).unwrap());
    cancel.cancel();
    assert_eq!(rx.recv_timeout(EVENTUALLY), Ok(Error::Canceled));
    t.join().unwrap();
    assert_eq!(ctx.wait_timeout(Duration::ZERO), Some(Error::Canceled));
}

#[test]
fn wait_timeout_with_a_huge_timeout_returns_when_cancelled() {
    let (ctx, cancel) = Context::background().with_cancel();
    let c = ctx.clone();
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || tx.send(c.wait_timeout(Duration::MAX)).unwrap());
    cancel.cancel();
    assert_eq!(rx.recv_timeout(EVENTUALLY), Ok(Some(Error::Canceled)));
    t.join().unwrap();
}

#[test]
fn wait_is_woken_from_another_thread() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _h) = ctx.with_value(&REQ, 1).with_cancel();
    let (tx, rx) = mpsc::channel::<CancelHandle>();
    let canceller = thread::spawn(move || {
        let handle = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(5));
        handle.cancel_with_cause(MyErr("remote"));
    });
    tx.send(cancel).unwrap();
    assert_eq!(child.wait(), Error::Canceled);
    assert!(child.cause().unwrap().is::<MyErr>());
    canceller.join().unwrap();
}

#[test]
fn run_returns_the_output_or_the_err() {
    // Completes first.
    let (ctx, _h) = Context::background().with_cancel();
    assert_eq!(block_on(ctx.run(async { 7 })), Ok(7));
    assert_eq!(
        block_on(Context::background().run(async { "bg" })),
        Ok("bg")
    );
    // Done first: the pending future loses.
    let (ctx, cancel) = Context::background().with_cancel();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        cancel.cancel();
    });
    let r = block_on(ctx.run(std::future::pending::<u8>()));
    assert_eq!(r, Err(Error::Canceled));
    t.join().unwrap();
    // Both ready: a done context wins the tie.
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(block_on(ctx.run(async { 1 })), Err(Error::Canceled));
    // The future is dropped when the context wins.
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(drops.clone());
    let fut = async move {
        let _held = held;
        std::future::pending::<()>().await
    };
    assert_eq!(block_on(ctx.run(fut)), Err(Error::Canceled));
    assert_eq!(drops.load(SeqCst), 1);
}

// ---------------------------------------------------------------------------
// semantic 12: everything is Send + Sync; the trait table

#[test]
fn types_have_the_traits_of_the_contract() {
    fn context_traits<T: Clone + Send + Sync + fmt::Debug + fmt::Display + 'static>() {}
    fn send_sync_debug<T: Send + Sync + fmt::Debug>() {}
    fn error_traits<
        T: Copy
            + Eq
            + std::hash::Hash
            + fmt::Debug
            + fmt::Display
            + std::error::Error
            + Send
            + Sync
            + 'static,
    >() {
    }
    fn cause_traits<T: Clone + fmt::Debug + fmt::Display + Send + Sync + 'static>() {}
    fn cause_from<E: std::error::Error + Send + Sync + 'static>()
    where
        Cause: From<E>,
    {
    }
    fn done_traits<T: Future<Output = Error> + Send + Unpin + 'static>() {}
    fn send_sync<T: Send + Sync>() {}
    fn clock_traits<T: Clone + Send + Sync + fmt::Debug>() {}

    context_traits::<Context>();
    send_sync_debug::<CancelHandle>();
    send_sync_debug::<AfterFunc>();
    error_traits::<Error>();
    cause_traits::<Cause>();
    cause_from::<MyErr>();
    cause_from::<std::io::Error>();
    done_traits::<Done>();
    clock_traits::<Clock>();
    // Key<T> is Send + Sync even for a T that is neither.
    send_sync::<Key<std::rc::Rc<std::cell::Cell<u8>>>>();
    send_sync::<Key<*mut u8>>();
    assert_eq!(USER.name(), "user");
    assert_ne!(
        std::mem::size_of::<Key<()>>(),
        0,
        "keys are never zero-sized"
    );

    // CancelHandle is not Clone: `some_item` is ambiguous exactly when the
    // second impl applies, so this line compiles only if it does not.
    trait AmbiguousIfClone<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    impl<T: Clone> AmbiguousIfClone<u8> for T {}
    <CancelHandle as AmbiguousIfClone<_>>::some_item();
}

#[test]
fn s12_contexts_are_shared_across_threads() {
    let (root, cancel) = Context::background().with_value(&REQ, 1).with_cancel();
    let root = Arc::new(root);
    let start = Arc::new(Barrier::new(5));
    let mut threads = Vec::new();
    let per_thread = scaled("children per thread", 2000, 100) as u64;
    for i in 0..4u64 {
        let root = root.clone();
        let start = start.clone();
        threads.push(thread::spawn(move || {
            start.wait();
            let mut kept = Vec::new();
            for j in 0..per_thread {
                let v = root.with_value(&USER, format!("{i}-{j}"));
                let (c, h) = v.with_cancel();
                assert_eq!(c.value(&REQ), Some(&1));
                let cl = c.clone();
                if j % 10 == 0 {
                    kept.push((cl, h));
                } else {
                    drop(h);
                    assert!(cl.is_done());
                }
            }
            kept
        }));
    }
    start.wait();
    cancel.cancel();
    for t in threads {
        for (c, _h) in t.join().unwrap() {
            assert_eq!(c.err(), Some(Error::Canceled));
        }
    }
}

/// Every kind of layer finds its clock and effective deadline: a manual
/// clock and the earliest deadline above reach values, `with_cancel`,
/// `without_cancel` (which drops the deadline, not the clock) and merges,
/// however the layers alternate (each kind stores them differently).
#[test]
fn clock_and_deadline_reach_every_kind_of_layer() {
    static A: Key<u32> = Key::new("a");
    let clock = Clock::manual();
    let far = clock.now() + Duration::from_secs(100);
    let near = clock.now() + Duration::from_secs(10);
    let is_ours = |c: &Context| c.clock().is_manual() && c.clock().now() == clock.now();
    let root = clock.background();
    let v1 = root.with_value(&A, 1).with_value(&A, 2);
    let (c1, _h1) = v1.with_cancel();
    let (d1, _hd1) = c1.with_value(&A, 3).with_deadline(far);
    let (c2, _h2) = d1.with_value(&A, 4).with_cancel();
    let w = c2.with_value(&A, 5).without_cancel().with_value(&A, 6);
    let (d2, _hd2) = w.with_deadline(near);
    let (m, _hm) = Context::merge(&c2, &d2);
    let (mc, _hmc) = m.with_value(&A, 7).with_cancel();
    for (ctx, deadline, value) in [
        (&root, None, None),
        (&v1, None, Some(2)),
        (&c1, None, Some(2)),
        (&d1, Some(far), Some(3)),
        (&c2, Some(far), Some(4)),
        (&w, None, Some(6)),
        (&d2, Some(near), Some(6)),
        (&m, Some(near), Some(4)),
        (&mc, Some(near), Some(7)),
    ] {
        assert!(is_ours(ctx), "{ctx}: lost the manual clock");
        assert_eq!(ctx.deadline(), deadline, "{ctx}");
        assert_eq!(ctx.value(&A).copied(), value, "{ctx}");
    }
    // Under `background()`, a value chain is on the system clock.
    let deep = (0..1000).fold(Context::background(), |c, i| c.with_value(&A, i));
    assert!(!deep.clock().is_manual());
    assert_eq!(deep.deadline(), None);
    assert_eq!(deep.value(&A), Some(&999));
}
