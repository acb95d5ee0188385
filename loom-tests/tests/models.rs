//! Loom models of every race in gocontext's engine, run against the real
//! engine through its `sync` facade (and crossbeam-epoch in its loom mode).
//!
//! Run: `cd loom-tests && RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --release`
//! (`LOOM_MAX_PREEMPTIONS` overrides the default bound of 2; add
//! `-- --test-threads=1` for undisturbed timings). Every model prints its wall
//! time and the number of interleavings loom explored, straight to stderr.
//!
//! Only manual clocks: `Clock::manual().background()`. Bookkeeping that the
//! engine must not see (counters) uses `std` atomics, which loom does not
//! schedule on, so they add no interleavings.
#![cfg(loom)]

use gocontext::{Cause, Clock, Context, Error};
use loom::thread;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Tag(u32);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

impl std::error::Error for Tag {}

fn cause(n: u32) -> Cause {
    Cause::from(Tag(n))
}

/// Runs `f` under loom at the configured preemption bound and reports.
fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let bound = std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let start = Instant::now();
    b.check(move || {
        r.fetch_add(1, SeqCst);
        f();
    });
    let line = format!(
        "loom model {name:<40} bound {bound}: {:>9} interleavings in {:>8.2?}\n",
        runs.load(SeqCst),
        start.elapsed()
    );
    // Straight to the file descriptor: libtest's capture does not hide it.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A callback counter: `(counter, f)`.
fn counter() -> (Arc<AtomicUsize>, impl FnOnce() + Send + 'static) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (n, move || {
        m.fetch_add(1, SeqCst);
    })
}

fn root() -> Context {
    Clock::manual().background()
}

fn is(c: &Context, want: &Cause) -> bool {
    c.cause().is_some_and(|c| c.ptr_eq(want))
}

/// A child inserted while its parent cancels ends up cancelled exactly once,
/// with the parent's cause (the insert must see CLOSED, or the drain must
/// see the child).
#[test]
fn child_insert_vs_parent_cancel() {
    model("child_insert_vs_parent_cancel", || {
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
        assert_eq!(n.load(SeqCst), 1, "child cancelled {} times", n.load(SeqCst));
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
    model("two_cancels_different_causes", || {
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
    model("parent_cancel_vs_child_cancel", || {
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

/// An awaited `Done` against cancel: no lost wake-up (loom reports a
/// deadlock if the waiter is never woken).
#[test]
fn done_await_vs_cancel() {
    model("done_await_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let t = thread::spawn(move || loom::future::block_on(c.done()));
        ch.cancel();
        assert_eq!(t.join().unwrap(), Error::Canceled);
    });
}

/// A blocking `wait()` against cancel: no lost wake-up.
#[test]
fn wait_vs_cancel() {
    model("wait_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let why = cause(7);
        let w = why.clone();
        let t = thread::spawn(move || (c.wait(), c.cause()));
        ch.cancel_with_cause(w);
        let (e, got) = t.join().unwrap();
        assert_eq!(e, Error::Canceled);
        assert!(got.is_some_and(|g| g.ptr_eq(&why)));
    });
}

/// Polls a future once with the caller's waker.
struct PollOnce<'a, F>(&'a mut F);

impl<F: std::future::Future + Unpin> std::future::Future for PollOnce<'_, F> {
    type Output = Option<F::Output>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *self.0).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    }
}

/// A `Done` registered and then dropped while the context cancels: the
/// registration (and loom's waker it holds) is freed, and a second waiter
/// on the same context is still woken.
#[test]
fn dropped_done_vs_cancel() {
    model("dropped_done_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let t = thread::spawn(move || {
            let mut d = c.done();
            let first = loom::future::block_on(PollOnce(&mut d));
            drop(d);
            if let Some(e) = first {
                assert_eq!(e, Error::Canceled);
            }
            loom::future::block_on(c.done())
        });
        ch.cancel();
        assert_eq!(t.join().unwrap(), Error::Canceled);
    });
}

/// `stop()` against cancel: f runs iff stop returned false, and at most once.
#[test]
fn after_func_stop_vs_cancel() {
    model("after_func_stop_vs_cancel", || {
        let (c, ch) = root().with_cancel();
        let (n, f) = counter();
        let af = c.after_func(f);
        let t = thread::spawn(move || af.stop());
        ch.cancel();
        let stopped = t.join().unwrap();
        assert_eq!(n.load(SeqCst), usize::from(!stopped), "stop() said {stopped}");
        assert!(c.is_done());
    });
}

/// Arming a timer, cancelling it (through its parent) and firing it, all at
/// once: it ends done exactly once, with one of the two errors, and a later
/// advance changes nothing. Loom's leak check at the end of each execution
/// catches a timer entry freed never (or twice).
#[test]
fn timer_arm_vs_cancel_vs_fire() {
    model("timer_arm_vs_cancel_vs_fire", || {
        let clock = Clock::manual();
        let (p, ph) = clock.background().with_cancel();
        let deadline = clock.now() + Duration::from_millis(10);
        let t_arm = thread::spawn(move || {
            let (c, ch) = p.with_deadline(deadline);
            let (n, f) = counter();
            let af = c.after_func(f);
            (c, ch, n, af)
        });
        let c2 = clock.clone();
        let t_fire = thread::spawn(move || c2.advance(Duration::from_millis(20)));
        ph.cancel();
        let (c, ch, n, _af) = t_arm.join().unwrap();
        t_fire.join().unwrap();
        let e = c.err().expect("neither cancel nor deadline took");
        assert_eq!(n.load(SeqCst), 1, "timer callback ran {} times", n.load(SeqCst));
        let got = c.cause().expect("no cause");
        assert_eq!(got.downcast_ref::<Error>(), Some(&e), "err and cause disagree");
        clock.advance(Duration::from_millis(20));
        drop(ch);
        assert_eq!(c.err(), Some(e), "err changed");
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// Arming against firing, with an absolute deadline that the advance
/// passes: whichever comes first, the context ends DeadlineExceeded once.
#[test]
fn timer_arm_vs_fire() {
    model("timer_arm_vs_fire", || {
        let clock = Clock::manual();
        let root = clock.background();
        let deadline = clock.now() + Duration::from_millis(10);
        let why = cause(3);
        let w = why.clone();
        let t = thread::spawn(move || {
            let (c, ch) = root.with_deadline_cause(deadline, w);
            let (n, f) = counter();
            let af = c.after_func(f);
            (c, ch, n, af)
        });
        clock.advance(Duration::from_millis(20));
        let (c, _ch, n, _af) = t.join().unwrap();
        assert_eq!(c.err(), Some(Error::DeadlineExceeded));
        assert!(is(&c, &why), "deadline cause lost");
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// An armed timer's own cancel against its firing.
#[test]
fn timer_cancel_vs_fire() {
    model("timer_cancel_vs_fire", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let (n, f) = counter();
        let _af = c.after_func(f);
        let t = thread::spawn(move || ch.cancel());
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        let e = c.err().expect("not done");
        assert_eq!(c.cause().unwrap().downcast_ref::<Error>(), Some(&e));
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// A timer firing while the last handles of its context go away (without
/// cancelling): the grandchild that stays still gets DeadlineExceeded, and
/// the entry is freed exactly once.
#[test]
fn timer_fire_vs_context_drop() {
    model("timer_fire_vs_context_drop", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let (g, _gh) = c.with_cancel();
        let t = thread::spawn(move || {
            drop(c);
            ch.detach();
        });
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        assert_eq!(g.err(), Some(Error::DeadlineExceeded));
    });
}

/// A timer firing while every handle of its context goes away: nothing to
/// observe but memory, which loom's leak check verifies.
#[test]
fn timer_fire_vs_last_drop() {
    model("timer_fire_vs_last_drop", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let t = thread::spawn(move || {
            drop(c);
            ch.detach();
        });
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        // The assertion is loom's own: every `LeakTrack`ed allocation of the
        // engine (node, timer entry) must be freed by the end of the run.
        drop(clock);
    });
}

/// The parent's last handle (which cancels) dropped while the child detaches
/// its handle: the child is cancelled, and no cycle keeps either alive.
#[test]
fn parent_last_drop_vs_child_detach() {
    model("parent_last_drop_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let t = thread::spawn(move || {
            drop(p);
            drop(ph);
        });
        ch.detach();
        t.join().unwrap();
        assert_eq!(c.err(), Some(Error::Canceled));
    });
}

/// The parent's handle detached and its context dropped while the child
/// detaches: nothing is cancelled, and everything is freed once the child
/// goes (loom's leak check).
#[test]
fn parent_detach_vs_child_detach() {
    model("parent_detach_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let t = thread::spawn(move || {
            drop(p);
            ph.detach();
        });
        ch.detach();
        t.join().unwrap();
        assert_eq!(c.err(), None);
    });
}

/// A grandchild inserting into a child while the parent cancels that
/// child: the grandchild ends with the parent's cause.
#[test]
fn grandchild_insert_vs_parent_cancels_child() {
    model("grandchild_insert_vs_parent_cancels_child", || {
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
    model("merge_both_parents_cancel", || {
        let r = root();
        let (a, ah) = r.with_cancel();
        let (b, bh) = r.with_cancel();
        let (m, _mh) = Context::merge(&a, &b);
        let (n, f) = counter();
        let _af = m.after_func(f);
        let (ca, cb) = (cause(1), cause(2));
        let cb2 = cb.clone();
        let t = thread::spawn(move || bh.cancel_with_cause(cb2));
        ah.cancel_with_cause(ca.clone());
        t.join().unwrap();
        assert!(is(&m, &ca) || is(&m, &cb), "merge has a third cause");
        assert_eq!(n.load(SeqCst), 1);
    });
}
