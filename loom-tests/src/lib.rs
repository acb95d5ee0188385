//! The shared runner and helpers of the loom models (`tests/*.rs`, one
//! binary per group, so that a model that fails and aborts hides no other
//! group) of every race in gocontext's engine, run against the real
//! engine through its `sync` facade (and crossbeam-epoch in its loom mode).
//!
//! Run: `cd loom-tests && RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --release`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's default: no bound for
//! `model_unbounded`, 3 for `model`; add
//! `-- --test-threads=1` for undisturbed timings). Every model prints its wall
//! time and the number of interleavings loom explored, straight to stderr.
//!
//! Plain `--cfg loom` models a release its caller most likely makes last as
//! a plain decrement; add `--cfg gocontext_load_first` (with its own
//! `CARGO_TARGET_DIR`) to model the shipping path, a load first, at up to
//! 32 times the interleavings. CI runs both (`.ci/proof.sh`).
//!
//! Only manual clocks: `Clock::manual().background()`. Bookkeeping that the
//! engine must not see (counters) uses `std` atomics, which loom does not
//! schedule on, so they add no interleavings.
#![cfg(loom)]

use gocontext::{Cause, Clock, Context};
use loom::thread;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Tag(pub u32);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

impl std::error::Error for Tag {}

pub fn cause(n: u32) -> Cause {
    Cause::from(Tag(n))
}

/// loom's preemption bound when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_BOUND: usize = 3;

/// Runs `f` under loom at `LOOM_MAX_PREEMPTIONS`, else at `DEFAULT_BOUND`,
/// and reports.
pub fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_with_default(name, Some(DEFAULT_BOUND), f)
}

/// Runs `f` under loom at `LOOM_MAX_PREEMPTIONS`, else without a bound:
/// for models whose whole state space explores in about a second.
pub fn model_unbounded<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_with_default(name, None, f)
}

fn model_with_default<F>(name: &str, default: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    // `Builder::new` reads `LOOM_MAX_PREEMPTIONS` (the one knob for every
    // harness in the repository); only fill in the default.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(default);
    let bound = b
        .preemption_bound
        .map_or("none".to_string(), |n| n.to_string());
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let start = Instant::now();
    // On failure, say which interleaving failed (loom panics out of check).
    struct Report<'a>(&'a str, Arc<AtomicUsize>);
    impl Drop for Report<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let line = format!(
                    "loom model {} panicked in interleaving #{}\n",
                    self.0,
                    self.1.load(SeqCst)
                );
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
    let _report = Report(name, runs.clone());
    let f = Arc::new(f);
    b.check(move || {
        r.fetch_add(1, SeqCst);
        // The body runs on a model thread with a 1 MiB stack: loom runs
        // each thread as a coroutine, and its main one has a small fixed
        // stack, which the engine's frames overflowed depending on how the
        // optimiser laid them out (the crate's own models do the same).
        let f = f.clone();
        let body = thread::Builder::new().stack_size(1 << 20);
        match body.spawn(move || f()).map(|t| t.join()) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => panic!("loom could not spawn the model's thread: {e}"),
        }
    });
    let line = format!(
        "loom model {name:<40} bound {bound:>4}: {:>9} interleavings in {:>8.2?}\n",
        runs.load(SeqCst),
        start.elapsed()
    );
    // Straight to the file descriptor: libtest's capture does not hide it.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A callback counter: `(counter, f)`.
pub fn counter() -> (Arc<AtomicUsize>, impl FnOnce() + Send + 'static) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (n, move || {
        m.fetch_add(1, SeqCst);
    })
}

pub fn root() -> Context {
    Clock::manual().background()
}

pub fn is(c: &Context, want: &Cause) -> bool {
    c.cause().is_some_and(|c| c.ptr_eq(want))
}

/// Polls a future once with the caller's waker.
pub struct PollOnce<'a, F>(pub &'a mut F);

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

/// Both parents of a merge cancel, one on another thread; with `add_child`
/// a third thread meanwhile adds a child to the merge. The merge takes one
/// of the two causes, its callback runs once, and the child (if any) ends
/// with the merge's cause.
pub fn merge_parents_cancel(add_child: bool) {
    let r = root();
    let (a, ah) = r.with_cancel();
    let (b, bh) = r.with_cancel();
    let (m, _mh) = Context::merge(&a, &b);
    let (n, f) = counter();
    let _af = m.after_func(f);
    let (ca, cb) = (cause(1), cause(2));
    let cb2 = cb.clone();
    let t = thread::spawn(move || bh.cancel_with_cause(cb2));
    let adder = add_child.then(|| {
        let m = m.clone();
        thread::spawn(move || m.with_cancel())
    });
    ah.cancel_with_cause(ca.clone());
    t.join().unwrap();
    let won = m.cause().expect("merge not done");
    assert!(
        won.ptr_eq(&ca) || won.ptr_eq(&cb),
        "merge has a third cause"
    );
    if let Some(adder) = adder {
        let (child, _child_h) = adder.join().unwrap();
        assert!(is(&child, &won), "child disagrees with the merge");
    }
    assert_eq!(n.load(SeqCst), 1, "callback ran {} times", n.load(SeqCst));
}
