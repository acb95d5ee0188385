//! Guarantees at the edges: std I/O integration, `run`'s tie-breaking,
//! value lookup through merge DAGs, a manual clock's cap, and drop depth
//! through stored contexts. (The public types' traits: `api_traits.rs`.)

use gocontext::{AfterFunc, CancelHandle, Clock, Context, Error, Key};
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, Wake, Waker};
use std::time::Duration;

#[path = "support/miri.rs"]
mod miri;
use miri::scaled;

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn waker() -> Waker {
    Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))))
}

fn poll<F: Future + ?Sized>(f: &mut Pin<Box<F>>, w: &Waker) -> Poll<F::Output> {
    f.as_mut().poll(&mut TaskCx::from_waker(w))
}

// ---------------------------------------------------------------------------
// std::io

/// A reader that reports its context's error, as a cancellable stream would.
/// It gives up (with end of file) after a few calls, so that a caller that
/// retries forever shows as a wrong result instead of a hung test.
struct CtxReader {
    ctx: Context,
    calls: usize,
}

impl Read for CtxReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls > 3 {
            return Ok(0);
        }
        match self.ctx.err() {
            Some(err) => Err(err.into()),
            None => {
                buf[0] = 1;
                Ok(1)
            }
        }
    }
}

#[test]
fn read_exact_over_a_cancelled_reader_fails_once_with_the_error_inside() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let mut reader = CtxReader { ctx, calls: 0 };
    let mut buf = [0u8; 8];
    let err = reader.read_exact(&mut buf).unwrap_err();
    assert_eq!(
        reader.calls, 1,
        "read_exact must not retry a cancelled read"
    );
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    assert_eq!(
        err.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(&Error::Canceled)
    );
    assert_eq!(
        err.into_inner()
            .unwrap()
            .downcast::<Error>()
            .ok()
            .as_deref(),
        Some(&Error::Canceled)
    );
    let timeout: std::io::Error = Error::DeadlineExceeded.into();
    assert_eq!(timeout.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn io_copy_stops_at_a_cancelled_reader() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let mut reader = CtxReader { ctx, calls: 0 };
    let err = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
    assert_eq!(reader.calls, 1);
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
}

// ---------------------------------------------------------------------------
// run

/// Pending on its first poll, ready with `v` on its second; counts polls.
struct ReadyOnSecondPoll {
    polls: Arc<AtomicUsize>,
    v: u32,
}

impl Future for ReadyOnSecondPoll {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<u32> {
        if self.polls.fetch_add(1, SeqCst) == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.v)
    }
}

#[test]
fn run_favours_an_output_that_is_ready_when_the_cancel_is_seen() {
    let (ctx, cancel) = Context::background().with_cancel();
    let polls = Arc::new(AtomicUsize::new(0));
    let mut run = Box::pin(ctx.run(ReadyOnSecondPoll {
        polls: polls.clone(),
        v: 42,
    }));
    let w = waker();
    assert_eq!(poll(&mut run, &w), Poll::Pending);
    cancel.cancel(); // the write commits in the same poll that sees this
    assert_eq!(poll(&mut run, &w), Poll::Ready(Ok(42)));
    assert_eq!(polls.load(SeqCst), 2);
    // Resolved: never a second output, never a panic, never another poll.
    assert_eq!(poll(&mut run, &w), Poll::Pending);
    assert_eq!(polls.load(SeqCst), 2);
}

#[test]
fn run_on_a_done_context_never_polls_the_future() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let polls = Arc::new(AtomicUsize::new(0));
    let mut run = Box::pin(ctx.run(ReadyOnSecondPoll {
        polls: polls.clone(),
        v: 1,
    }));
    assert_eq!(poll(&mut run, &waker()), Poll::Ready(Err(Error::Canceled)));
    assert_eq!(polls.load(SeqCst), 0);
}

#[test]
fn run_reports_a_cancel_while_the_future_is_pending() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut run = Box::pin(ctx.run(std::future::pending::<()>()));
    let w = waker();
    assert_eq!(poll(&mut run, &w), Poll::Pending);
    cancel.cancel();
    assert_eq!(poll(&mut run, &w), Poll::Ready(Err(Error::Canceled)));
    // A `!Unpin` future works too: `Run` pins it in place.
    let (ctx, cancel) = Context::background().with_cancel();
    let mut run = Box::pin(ctx.run(async {
        std::future::pending::<()>().await;
    }));
    assert_eq!(
        run.as_mut().poll(&mut TaskCx::from_waker(&w)),
        Poll::Pending
    );
    drop(cancel);
    assert_eq!(
        run.as_mut().poll(&mut TaskCx::from_waker(&w)),
        Poll::Ready(Err(Error::Canceled))
    );
}

// ---------------------------------------------------------------------------
// values through merge DAGs

static PRESENT: Key<u32> = Key::new("present");
static ABSENT: Key<u32> = Key::new("absent");
static SECOND: Key<u32> = Key::new("second");

#[test]
fn value_lookup_through_a_merge_dag_is_linear() {
    // `ctx = merge(&ctx, &ctx)` 40 times: 2^40 paths to the root, 41
    // distinct nodes. An exponential walk would never finish.
    const LEVELS: usize = 40;
    let mut ctx = Context::background().with_value(&PRESENT, 7);
    let mut handles: Vec<CancelHandle> = Vec::new();
    for _ in 0..LEVELS {
        let (m, h) = Context::merge(&ctx, &ctx);
        handles.push(h);
        ctx = m;
    }
    assert_eq!(ctx.value(&ABSENT), None);
    assert_eq!(ctx.value(&PRESENT), Some(&7));
}

#[test]
fn merge_dag_lookup_keeps_first_parent_then_second_order() {
    let base = Context::background().with_value(&PRESENT, 1);
    let a = base.with_value(&PRESENT, 2);
    let b = base.with_value(&SECOND, 3).with_value(&PRESENT, 4);
    let (ab, _h1) = Context::merge(&a, &b);
    let (abab, _h2) = Context::merge(&ab, &ab);
    let (x, _h3) = Context::merge(&abab, &base);
    assert_eq!(x.value(&PRESENT), Some(&2)); // a's shadows b's and base's
    assert_eq!(x.value(&SECOND), Some(&3)); // only on b's side
    assert_eq!(x.value(&ABSENT), None);
}

// ---------------------------------------------------------------------------
// a manual clock's cap

#[test]
fn deadline_past_a_manual_clocks_cap_means_no_deadline() {
    let clock = Clock::manual();
    // About 1,000 years: a valid `Instant`, past the cap (~584 years).
    let far = Duration::from_secs(1000 * 365 * 24 * 3600);
    let (ctx, _c1) = clock.background().with_timeout(far);
    let (huge, _c2) = clock.background().with_timeout(Duration::MAX);
    assert_eq!(huge.deadline(), None);
    assert_eq!(
        ctx.deadline(),
        huge.deadline(),
        "as with_timeout(Duration::MAX)"
    );
    let (ctx2, _c3) = clock.background().with_deadline(clock.now() + far);
    assert_eq!(ctx2.deadline(), None);
    // At the cap: a deadline that was accepted before it fires at it, and
    // one that cannot be reached any more is refused.
    let (near, _c4) = clock.background().with_timeout(Duration::from_secs(1));
    clock.advance(Duration::MAX);
    assert_eq!(near.err(), Some(Error::DeadlineExceeded));
    let (after, _c5) = clock.background().with_timeout(Duration::from_nanos(1));
    assert_eq!(after.deadline(), None);
    clock.advance(Duration::MAX);
    assert_eq!(after.err(), None);
    assert_eq!(ctx.err(), None);
    // A deadline exactly at the cap is reachable: done at once.
    let (at_cap, _c6) = clock.background().with_deadline(clock.now());
    assert_eq!(at_cap.err(), Some(Error::DeadlineExceeded));
}

// ---------------------------------------------------------------------------
// drop depth through stored contexts

static NEXT: Key<Context> = Key::new("next");

#[test]
fn chain_of_contexts_stored_as_values_drops_on_a_small_stack() {
    let len = scaled("contexts stored in contexts", 200_000, 2_000);
    let t = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut ctx = Context::background();
            for _ in 0..len {
                ctx = Context::background().with_value(&NEXT, ctx);
            }
            let (leaf_parent, cancel) = ctx.with_cancel();
            drop(ctx);
            assert!(leaf_parent.value(&NEXT).is_some());
            drop(cancel);
            drop(leaf_parent); // frees 200,000 nodes, each the last owner of the next
        })
        .unwrap();
    t.join()
        .expect("dropping the chain must not overflow the stack");
}

// ---------------------------------------------------------------------------
// AfterFunc::stop after teardown discarded the callback

/// A context whose handle is detached (or not), with a callback that counts
/// its runs.
fn counted_callback(detach: bool) -> (Context, Option<CancelHandle>, AfterFunc, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let cancel = if detach {
        cancel.detach();
        None
    } else {
        Some(cancel)
    };
    let r = ran.clone();
    let after = ctx.after_func(move || {
        r.fetch_add(1, SeqCst);
    });
    (ctx, cancel, after, ran)
}

#[test]
fn stop_after_teardown_discarded_the_callback_is_true_once() {
    let (ctx, _, after, ran) = counted_callback(true);
    drop(ctx); // the last handle: teardown drops the callback unrun
    assert!(
        after.stop(),
        "the run was prevented: f never ran, never will"
    );
    assert!(!after.stop(), "an earlier stop already said so");
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn stop_racing_teardown_is_always_true_and_never_runs() {
    for _ in 0..scaled("stop-vs-teardown rounds", 2000, 20) {
        let (ctx, _, after, ran) = counted_callback(true);
        let t = std::thread::spawn(move || drop(ctx));
        let stopped = after.stop();
        t.join().unwrap();
        assert!(stopped);
        assert!(!after.stop());
        assert_eq!(ran.load(SeqCst), 0);
    }
}

#[test]
fn stop_racing_a_cancel_is_true_exactly_when_f_does_not_run() {
    for _ in 0..scaled("stop-vs-cancel rounds", 2000, 20) {
        let (ctx, cancel, after, ran) = counted_callback(false);
        let cancel = cancel.unwrap();
        let t = std::thread::spawn(move || cancel.cancel());
        let stopped = after.stop();
        t.join().unwrap();
        assert_eq!(ran.load(SeqCst), usize::from(!stopped));
        assert!(!after.stop());
        drop(ctx);
    }
}
