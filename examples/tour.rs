//! A guided tour of gocontext for Go programmers.
//!
//! Run it with `cargo run --release --example tour`. Each section ports one of
//! the Go programs a Go programmer learns `context` from (a goroutine becomes a
//! thread, a channel becomes `std::sync::mpsc`), prints what it does while it
//! runs, and returns a small report that `tests/examples.rs` checks. Every wait
//! is short: the whole tour takes well under two seconds.

use gocontext::{Cause, Context, Error, Key};
use rand::Rng;
use std::fmt;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

fn main() {
    let report = run();
    println!("\nTour finished: {} sections ran.", report.sections());
}

/// What every section of the tour observed.
#[derive(Debug)]
pub struct Report {
    pub generator: GeneratorReport,
    pub stream: StreamReport,
    pub parent_child: ParentChildReport,
    pub values: ValuesReport,
    pub do_work: DoWorkReport,
    pub after_func: AfterFuncReport,
    pub cause: CauseReport,
    pub merge: MergeReport,
    pub without_cancel: WithoutCancelReport,
}

impl Report {
    fn sections(&self) -> usize {
        9
    }
}

/// Runs every section in order and returns what each one saw.
pub fn run() -> Report {
    Report {
        generator: generator(),
        stream: stream_section(),
        parent_child: parent_child(),
        values: values(),
        do_work: do_work(),
        after_func: after_func(),
        cause: cause(),
        merge: merge(),
        without_cancel: without_cancel(),
    }
}

fn header(title: &str) {
    println!("\n== {title} ==");
}

// ---------------------------------------------------------------------------
// A helper that several sections share.
// ---------------------------------------------------------------------------

/// The thread form of Go's
///
/// ```go
/// select {
/// case out <- v:
/// case <-ctx.Done():
///     return ctx.Err()
/// }
/// ```
///
/// It hands `v` to whoever is receiving on `out`, or gives up with the reason
/// as soon as `ctx` is done. While nobody is receiving it naps on
/// `ctx.wait_timeout`, which returns early the moment `ctx` is cancelled, so
/// the wake-up on cancellation is immediate. A receiver that hung up is treated
/// like one that never reads again: as in Go, only cancellation ends the wait.
fn send_or_done<T>(ctx: &Context, out: &SyncSender<T>, mut v: T) -> Result<(), Error> {
    loop {
        if let Some(why) = ctx.err() {
            return Err(why);
        }
        match out.try_send(v) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                v = back;
                if let Some(why) = ctx.wait_timeout(Duration::from_millis(1)) {
                    return Err(why);
                }
            }
            Err(TrySendError::Disconnected(_)) => return Err(ctx.wait()),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Seed 000: a generator that must not leak its thread.
// ---------------------------------------------------------------------------

/// What the generator section saw.
#[derive(Debug)]
pub struct GeneratorReport {
    /// The numbers the consumer took before it stopped.
    pub received: Vec<u32>,
    /// Why the generator thread returned (it was joined, so it did return).
    pub generator_exit: Error,
}

/// Go's `gen`: produces 1, 2, 3, ... on a channel from its own thread until
/// `ctx` is cancelled. The caller must cancel `ctx` once it has read enough,
/// or the thread would block on its next send forever.
fn gen(ctx: Context) -> (Receiver<u32>, JoinHandle<Error>) {
    let (dst, numbers) = mpsc::sync_channel(0); // unbuffered, like `make(chan int)`
    let handle = thread::spawn(move || {
        let mut n = 1;
        loop {
            if let Err(why) = send_or_done(&ctx, &dst, n) {
                return why; // returning, so the thread does not leak
            }
            n += 1;
        }
    });
    (numbers, handle)
}

fn generator() -> GeneratorReport {
    header("1. A generator that must not leak its thread (seed 000)");
    println!("gen(ctx) sends 1, 2, 3, ... from its own thread; we stop reading at 5.");
    let (ctx, cancel) = Context::background().with_cancel();
    let (numbers, generator) = gen(ctx);

    let mut received = Vec::new();
    for n in numbers.iter() {
        println!("  got {n}");
        received.push(n);
        if n == 5 {
            break;
        }
    }
    // Go writes `defer cancel()`. Here the handle cancels when it is dropped;
    // we drop it by hand to cancel right now, while `numbers` is still alive.
    drop(cancel);
    let generator_exit = generator.join().expect("generator thread panicked");
    println!("cancelled: the generator thread returned ({generator_exit}) and was joined");
    drop(numbers);
    GeneratorReport {
        received,
        generator_exit,
    }
}

// ---------------------------------------------------------------------------
// 2. Seed 001: `Stream` with a derived timeout for the service call.
// ---------------------------------------------------------------------------

/// What the `Stream` section saw.
#[derive(Debug)]
pub struct StreamReport {
    /// Values the consumer read before cancelling the stream.
    pub received: usize,
    /// What `stream` returned once the consumer cancelled.
    pub result: Result<(), Error>,
    /// What `stream` returned when the service call outlived its timeout.
    pub timeout_result: Result<(), Error>,
    /// Whether the caller's own context was done after that timeout.
    pub caller_done_after_timeout: bool,
}

#[derive(Clone, Debug)]
struct Value(u32);

/// A slow backend: answers after `latency`, unless `ctx` ends first.
fn service_call(ctx: &Context, latency: Duration) -> Result<Value, Error> {
    match ctx.wait_timeout(latency) {
        Some(why) => Err(why),
        None => Ok(Value(42)),
    }
}

/// Go's `Stream`: calls the service under a derived timeout, then sends the
/// result to `out` until the caller's `ctx` is done.
fn stream(
    ctx: &Context,
    out: &SyncSender<Value>,
    timeout: Duration,
    latency: Duration,
) -> Result<(), Error> {
    // The derived context is cancelled on timeout; `ctx` itself is not.
    // Bind the handle to a name: `let (dctx, _) = ...` would drop it, and so
    // cancel `dctx`, at the end of this very statement.
    let (dctx, _cancel_dctx) = ctx.with_timeout(timeout);
    let res = service_call(&dctx, latency)?; // fails if dctx times out
    loop {
        send_or_done(ctx, out, res.clone())?;
    }
}

fn stream_section() -> StreamReport {
    header("2. Stream with a derived timeout (seed 001)");
    let (ctx, cancel) = Context::background().with_cancel();
    let (out, values) = mpsc::sync_channel(0);
    let mut received = 0;
    let result = thread::scope(|s| {
        let streamer = s.spawn(|| stream(&ctx, &out, Duration::from_secs(10), Duration::ZERO));
        for v in values.iter().take(3) {
            println!("  read value {}", v.0);
            received += 1;
        }
        println!("read 3 values; cancelling the caller's context");
        cancel.cancel();
        streamer.join().expect("stream panicked")
    });
    println!("stream returned {result:?}");

    println!("now a service that never answers, under a 30 ms derived timeout:");
    let (caller, _cancel_caller) = Context::background().with_cancel();
    let (out, _values) = mpsc::sync_channel(0);
    let timeout_result = stream(
        &caller,
        &out,
        Duration::from_millis(30),
        Duration::from_secs(3600),
    );
    let caller_done_after_timeout = caller.is_done();
    println!(
        "stream returned {timeout_result:?}; the caller's context is done: {caller_done_after_timeout}"
    );
    StreamReport {
        received,
        result,
        timeout_result,
        caller_done_after_timeout,
    }
}

// ---------------------------------------------------------------------------
// 3. Seed 002: cancelling a parent cancels its children.
// ---------------------------------------------------------------------------

/// What the parent/child section saw.
#[derive(Debug)]
pub struct ParentChildReport {
    /// `ctx1.err()` after a sibling child was cancelled (expected `None`).
    pub parent_err_after_sibling_cancel: Option<Error>,
    /// What `ctx2.wait()` returned once `ctx1` was cancelled.
    pub child_wait: Error,
    /// `ctx1.err()` at the end.
    pub parent_err: Option<Error>,
    /// `ctx2.err()` at the end.
    pub child_err: Option<Error>,
}

fn parent_child() -> ParentChildReport {
    header("3. Parent and child (seed 002)");
    let (ctx1, cancel1) = Context::background().with_cancel();
    let (ctx2, _cancel2) = ctx1.with_cancel();

    let (sibling, cancel_sibling) = ctx1.with_cancel();
    cancel_sibling.cancel();
    let parent_err_after_sibling_cancel = ctx1.err();
    println!(
        "cancelled a sibling child: sibling.err() = {:?}, ctx1.err() = {:?} (never upward)",
        sibling.err(),
        parent_err_after_sibling_cancel
    );

    println!("begin");
    let child_wait = thread::scope(|s| {
        s.spawn(move || {
            thread::sleep(Duration::from_millis(40));
            println!("slept 40 ms, cancelling ctx1");
            cancel1.cancel();
        });
        // Go selects on ctx1.Done() and ctx2.Done(); the child is enough,
        // since cancelling ctx1 closes both.
        ctx2.wait()
    });
    let (parent_err, child_err) = (ctx1.err(), ctx2.err());
    println!(
        "ctx2 woke up with `{child_wait}`; ctx1.err() = {parent_err:?}, ctx2.err() = {child_err:?}"
    );
    ParentChildReport {
        parent_err_after_sibling_cancel,
        child_wait,
        parent_err,
        child_err,
    }
}

// ---------------------------------------------------------------------------
// 4. Seeds 002 and 003: values across an API boundary; the roots.
// ---------------------------------------------------------------------------

/// What the values section saw.
#[derive(Debug)]
pub struct ValuesReport {
    pub background: String,
    pub todo: String,
    /// What the handler read behind the middleware.
    pub handler_saw: HandlerView,
    /// The same handler called without the middleware in front.
    pub bare_handler_saw: HandlerView,
    /// A key of the same type but a different static finds nothing.
    pub other_key_found: bool,
    /// `deadline()` of `with_deadline(now + 2 s)`, relative to `now`.
    pub deadline_in: Option<Duration>,
    /// `deadline()` of `with_timeout(2 s)` is set.
    pub timeout_has_deadline: bool,
}

/// The values a handler read out of its context.
#[derive(Debug, PartialEq, Eq)]
pub struct HandlerView {
    pub request_id: Option<u64>,
    pub to_be_deleted: bool,
    pub user: Option<String>,
}

// Keys are typed statics; a key is identified by its address, so two keys
// never collide even with the same name or type.
static REQUEST_ID: Key<u64> = Key::new("request-id");
static OTHER_ID: Key<u64> = Key::new("request-id");
static TO_BE_DEL_IP: Key<bool> = Key::new("to-be-deleted-ip");
static USER: Key<String> = Key::new("user");

/// A middleware: tags the request and passes a derived context on, like
/// `next.ServeHTTP(w, r.WithContext(ctxReq))`.
fn middleware(ctx: &Context, next: impl Fn(&Context) -> HandlerView) -> HandlerView {
    let ctx = ctx
        .with_value(&REQUEST_ID, 7)
        .with_value(&USER, "gopher".to_string())
        .with_value(&TO_BE_DEL_IP, true);
    next(&ctx)
}

/// The handler, on the far side of the boundary. A missing value reads as
/// the type's default, as `del, _ := v.(bool)` does in Go.
fn handler(ctx: &Context) -> HandlerView {
    HandlerView {
        request_id: ctx.value(&REQUEST_ID).copied(),
        to_be_deleted: ctx.value(&TO_BE_DEL_IP).copied().unwrap_or(false),
        user: ctx.value(&USER).cloned(),
    }
}

fn values() -> ValuesReport {
    header("4. Values across an API boundary; the roots (seeds 002, 003)");
    let background = Context::background();
    let todo = Context::todo();
    println!("roots: {background} and {todo}: never done, no deadline, no values");

    let handler_saw = middleware(&background, handler);
    println!("behind the middleware the handler sees {handler_saw:?}");
    let bare_handler_saw = handler(&background);
    println!("called directly it sees {bare_handler_saw:?}");
    let tagged = background.with_value(&REQUEST_ID, 7);
    let other_key_found = tagged.value(&OTHER_ID).is_some();
    println!(
        "a second key with the same name and type finds the value: {other_key_found} (keys are addresses)"
    );

    let now = Instant::now();
    let (at, _cancel_at) = background.with_deadline(now + Duration::from_secs(2));
    let deadline_in = at.deadline().map(|d| d.duration_since(now));
    let (timed, _cancel_timed) = background.with_timeout(Duration::from_secs(2));
    let timeout_has_deadline = timed.deadline().is_some();
    println!(
        "with_deadline(now + 2 s).deadline() is now + {deadline_in:?}; with_timeout(2 s) has a deadline: {timeout_has_deadline}"
    );
    ValuesReport {
        background: background.to_string(),
        todo: todo.to_string(),
        handler_saw,
        bare_handler_saw,
        other_key_found,
        deadline_in,
        timeout_has_deadline,
    }
}

// ---------------------------------------------------------------------------
// 5. Seed 004: sleepRandom / doWorkContext, 150 ms timeout, random cancel.
// ---------------------------------------------------------------------------

/// How `sleep_random_context` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkOutcome {
    /// The slow work finished first, after this many milliseconds.
    Finished(u64),
    /// The context ended first, for this reason.
    Stopped(Error),
}

/// What `do_work_context` saw first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoWorkSaw {
    /// The caller's context (main's) was cancelled.
    ParentDone,
    /// `sleep_random_context` returned, with this outcome.
    Returned(WorkOutcome),
}

/// What the seed 004 section saw.
#[derive(Debug)]
pub struct DoWorkReport {
    pub saw: DoWorkSaw,
    /// `ctx_with_timeout.err()` after `do_work_context` returned.
    pub timeout_ctx_err: Option<Error>,
    /// `ctx_with_cancel.err()` at the very end.
    pub main_ctx_err: Option<Error>,
}

/// A slow function: sleeps 100 to 199 ms, then reports how long on `ch`
/// (as `Some(ms)`: the channel's `None` is kept for "the context is done").
fn sleep_random(from: &str, ch: Option<mpsc::Sender<Option<u64>>>) {
    let ms = rand::thread_rng().gen_range(100..200);
    println!("  {from}: starting sleep for {ms} ms");
    thread::sleep(Duration::from_millis(ms));
    println!("  {from}: waking up, slept for {ms} ms");
    if let Some(ch) = ch {
        // In Go this send can block forever once nobody listens (a leak);
        // an mpsc send to a dropped receiver just fails.
        let _ = ch.send(Some(ms));
    }
    println!("  {from}: sleepRandom complete");
}

/// Go's two-case `select { case <-ctx.Done(): case v := <-ch: }` for threads.
///
/// `after_func` turns "ctx is done" into a `None` on our own channel, so one
/// `recv` is the whole `select`. If the work wins, `stop` unregisters the
/// callback. Returns `None` when `ctx` ended first.
fn recv_or_done<T: Send + 'static>(
    ctx: &Context,
    rx: &Receiver<Option<T>>,
    tx: mpsc::Sender<Option<T>>,
) -> Option<T> {
    let on_done = ctx.after_func(move || {
        let _ = tx.send(None);
    });
    let got = rx.recv().ok().flatten();
    on_done.stop();
    got
}

/// Go's `sleepRandomContext`: starts the slow work, returns when it finishes
/// or when `ctx` is done, whichever is first.
fn sleep_random_context<'s>(s: &'s thread::Scope<'s, '_>, ctx: &Context) -> WorkOutcome {
    let (tx, rx) = mpsc::channel();
    let work = tx.clone();
    s.spawn(move || sleep_random("sleepRandomContext", Some(work)));
    let outcome = match recv_or_done(ctx, &rx, tx) {
        Some(ms) => {
            println!("  slept for {ms} ms");
            WorkOutcome::Finished(ms)
        }
        None => {
            let why = ctx.err().expect("woken by after_func, so ctx is done");
            println!("  sleepRandomContext: time to return ({why})");
            WorkOutcome::Stopped(why)
        }
    };
    println!("  sleepRandomContext complete");
    outcome
}

/// Go's `doWorkContext`: gives the work a 150 ms budget, and returns early if
/// its own caller cancels.
fn do_work_context<'s>(s: &'s thread::Scope<'s, '_>, ctx: &Context) -> (DoWorkSaw, Context) {
    let (ctx_with_timeout, cancel_function) = ctx.with_timeout(Duration::from_millis(150));
    let (tx, rx) = mpsc::channel();
    let worker_ctx = ctx_with_timeout.clone();
    let forward = tx.clone();
    s.spawn(move || {
        let outcome = sleep_random_context(s, &worker_ctx);
        let _ = forward.send(Some(outcome));
    });
    let saw = match recv_or_done(ctx, &rx, tx) {
        Some(outcome) => {
            println!("  sleepRandomContext returned");
            DoWorkSaw::Returned(outcome)
        }
        None => {
            println!("  doWorkContext: time to return");
            DoWorkSaw::ParentDone
        }
    };
    println!("  doWorkContext complete");
    drop(cancel_function); // Go's deferred cancelFunction()
    (saw, ctx_with_timeout)
}

fn do_work() -> DoWorkReport {
    header("5. sleepRandom and doWorkContext: 150 ms budget, random cancel (seed 004)");
    let (ctx_with_cancel, cancel_function) = Context::background().with_cancel();
    let cancel_function = Arc::new(cancel_function);
    let (saw, timeout_ctx) = thread::scope(|s| {
        let cancel = Arc::clone(&cancel_function);
        s.spawn(move || {
            sleep_random("Main", None);
            cancel.cancel();
            println!("  Main sleep complete. canceling context");
        });
        let (saw, timeout_ctx) = do_work_context(s, &ctx_with_cancel);
        (saw, timeout_ctx.err())
    });
    println!("  Main defer: canceling context");
    cancel_function.cancel();
    let report = DoWorkReport {
        saw,
        timeout_ctx_err: timeout_ctx,
        main_ctx_err: ctx_with_cancel.err(),
    };
    println!("this run: doWorkContext saw {:?}", report.saw);
    report
}

// ---------------------------------------------------------------------------
// 6. after_func: a callback when the context is done.
// ---------------------------------------------------------------------------

/// What the `after_func` section saw.
#[derive(Debug)]
pub struct AfterFuncReport {
    /// The callback ran on the thread that called `cancel()`.
    pub ran_on_canceller: bool,
    /// `stop()` on a registration that had not run yet.
    pub stop_before_cancel: bool,
    /// Whether that stopped callback ran anyway.
    pub stopped_callback_ran: bool,
    /// `stop()` on the registration after it ran.
    pub stop_after_run: bool,
    /// A registration on a done context ran at once, on the registering thread.
    pub late_ran_inline: bool,
}

fn after_func() -> AfterFuncReport {
    header("6. after_func: run a callback when the context is done");
    let (ctx, cancel) = Context::background().with_cancel();
    let ran_on: Arc<Mutex<Option<ThreadId>>> = Arc::default();

    let record = Arc::clone(&ran_on);
    let first = ctx.after_func(move || {
        println!(
            "  callback: context is done, running on {:?}",
            thread::current().name()
        );
        *record.lock().unwrap() = Some(thread::current().id());
    });
    let stopped_ran = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&stopped_ran);
    let second = ctx.after_func(move || *flag.lock().unwrap() = true);
    let stop_before_cancel = second.stop();
    println!("stopped the second callback before cancelling: stop() = {stop_before_cancel}");

    let canceller = thread::Builder::new()
        .name("canceller".into())
        .spawn(move || {
            cancel.cancel();
            thread::current().id()
        })
        .expect("spawn");
    let canceller_id = canceller.join().expect("canceller panicked");
    let ran_on_canceller = *ran_on.lock().unwrap() == Some(canceller_id);
    let stop_after_run = first.stop();
    println!("after it ran, stop() = {stop_after_run}");

    let late_on: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    let record = Arc::clone(&late_on);
    let _late = ctx.after_func(move || *record.lock().unwrap() = Some(thread::current().id()));
    let late_ran_inline = *late_on.lock().unwrap() == Some(thread::current().id());
    println!("registered on a done context, it ran at once on this thread: {late_ran_inline}");
    println!("(callbacks run inline on the cancelling thread, so they must not block)");
    let stopped_callback_ran = *stopped_ran.lock().unwrap();
    AfterFuncReport {
        ran_on_canceller,
        stop_before_cancel,
        stopped_callback_ran,
        stop_after_run,
        late_ran_inline,
    }
}

// ---------------------------------------------------------------------------
// 7. Cause: why, not just that.
// ---------------------------------------------------------------------------

/// A cause of our own.
#[derive(Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub user: String,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quota exceeded for {}", self.user)
    }
}

impl std::error::Error for QuotaExceeded {}

/// Another cause, for a deadline.
#[derive(Debug)]
pub struct SlowUpstream;

impl fmt::Display for SlowUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upstream took too long")
    }
}

impl std::error::Error for SlowUpstream {}

/// What the cause section saw.
#[derive(Debug)]
pub struct CauseReport {
    pub err: Option<Error>,
    /// The custom cause, read back by downcasting.
    pub cause: Option<QuotaExceeded>,
    /// A child shares the very same cause value.
    pub child_shares_cause: bool,
    /// A second `cancel_with_cause` left the first cause in place.
    pub first_cause_kept: bool,
    /// A plain `cancel()`: the cause is the `Error` itself.
    pub plain_cause_is_error: bool,
    /// `with_timeout_cause` once the deadline fired.
    pub timeout_err: Error,
    pub timeout_cause_is_custom: bool,
}

fn cause() -> CauseReport {
    header("7. Cause: why a context was cancelled");
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _cancel_child) = ctx.with_cancel();
    cancel.cancel_with_cause(QuotaExceeded {
        user: "gopher".into(),
    });
    cancel.cancel_with_cause(SlowUpstream); // too late: changes nothing
    let err = ctx.err();
    let the_cause: Option<Cause> = ctx.cause();
    println!("err() = {err:?}, cause() = {}", the_cause.as_ref().unwrap());
    let child_shares_cause = match (&the_cause, child.cause()) {
        (Some(a), Some(b)) => a.ptr_eq(&b),
        _ => false,
    };
    let first_cause_kept = the_cause.as_ref().is_some_and(|c| c.is::<QuotaExceeded>());
    let cause = the_cause.and_then(|c| {
        c.downcast_ref::<QuotaExceeded>().map(|q| QuotaExceeded {
            user: q.user.clone(),
        })
    });

    let (plain, plain_cancel) = Context::background().with_cancel();
    plain_cancel.cancel();
    let plain_cause_is_error = plain
        .cause()
        .and_then(|c| c.downcast_ref::<Error>().copied())
        == Some(Error::Canceled);
    println!("a plain cancel(): cause() = {}", plain.cause().unwrap());

    let (timed, _cancel_timed) =
        Context::background().with_timeout_cause(Duration::from_millis(20), SlowUpstream);
    let timeout_err = timed.wait();
    let timeout_cause_is_custom = timed.cause().is_some_and(|c| c.is::<SlowUpstream>());
    println!(
        "with_timeout_cause(20 ms, SlowUpstream) fired: err = `{timeout_err}`, cause = `{}`",
        timed.cause().unwrap()
    );
    CauseReport {
        err,
        cause,
        child_shares_cause,
        first_cause_kept,
        plain_cause_is_error,
        timeout_err,
        timeout_cause_is_custom,
    }
}

// ---------------------------------------------------------------------------
// 8. merge: done when either parent is.
// ---------------------------------------------------------------------------

/// Why the server stopped.
#[derive(Debug)]
pub struct ShuttingDown;

impl fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server shutting down")
    }
}

impl std::error::Error for ShuttingDown {}

static SERVER: Key<&'static str> = Key::new("server");

/// What the merge section saw.
#[derive(Debug)]
pub struct MergeReport {
    /// The merged deadline equals the request's (the earlier one).
    pub deadline_is_requests: bool,
    /// Values from both parents.
    pub request_id: Option<u64>,
    pub server: Option<&'static str>,
    pub err: Option<Error>,
    pub cause_is_shutdown: bool,
    /// The request parent itself was not cancelled by the shutdown.
    pub request_err: Option<Error>,
}

fn merge() -> MergeReport {
    header("8. merge: a request that also ends when the server shuts down");
    let (server_root, shutdown) = Context::background().with_cancel();
    let server = server_root.with_value(&SERVER, "api-1");
    let (request, _end_request) = Context::background().with_timeout(Duration::from_secs(10));
    let request = request.with_value(&REQUEST_ID, 9);

    let (work, _cancel_work) = Context::merge(&request, &server);
    let deadline_is_requests = work.deadline() == request.deadline();
    let request_id = work.value(&REQUEST_ID).copied();
    let server_name = work.value(&SERVER).copied();
    println!(
        "merged: deadline from the request, values from both: {request_id:?}, {server_name:?}"
    );

    shutdown.cancel_with_cause(ShuttingDown);
    let err = work.err();
    let cause_is_shutdown = work.cause().is_some_and(|c| c.is::<ShuttingDown>());
    println!(
        "server shut down: merged err = {err:?}, cause = `{}`; request.err() = {:?}",
        work.cause().unwrap(),
        request.err()
    );
    MergeReport {
        deadline_is_requests,
        request_id,
        server: server_name,
        err,
        cause_is_shutdown,
        request_err: request.err(),
    }
}

// ---------------------------------------------------------------------------
// 9. without_cancel: work that must outlive the request.
// ---------------------------------------------------------------------------

/// What the `without_cancel` section saw.
#[derive(Debug)]
pub struct WithoutCancelReport {
    pub request_err: Option<Error>,
    pub detached_err: Option<Error>,
    pub detached_deadline: Option<Instant>,
    pub detached_request_id: Option<u64>,
    /// A fresh timeout derived from the detached context is not done.
    pub fresh_budget_done: bool,
}

fn without_cancel() -> WithoutCancelReport {
    header("9. without_cancel: an audit write that outlives its request");
    let (request, cancel_request) = Context::background().with_timeout(Duration::from_secs(5));
    let request = request.with_value(&REQUEST_ID, 11);
    let audit = request.without_cancel();
    cancel_request.cancel();
    println!(
        "request cancelled: request.err() = {:?}; audit.err() = {:?}, audit.deadline() = {:?}, request id still {:?}",
        request.err(),
        audit.err(),
        audit.deadline(),
        audit.value(&REQUEST_ID)
    );
    let (budget, _cancel_budget) = audit.with_timeout(Duration::from_secs(1));
    println!("the audit write gets a fresh 1 s budget of its own");
    WithoutCancelReport {
        request_err: request.err(),
        detached_err: audit.err(),
        detached_deadline: audit.deadline(),
        detached_request_id: audit.value(&REQUEST_ID).copied(),
        fresh_budget_done: budget.is_done(),
    }
}
