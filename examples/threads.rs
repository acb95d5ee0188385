//! Blocking workers under one context, with no async runtime.
//!
//! Run it with `cargo run --release --example threads`.
//!
//! Three patterns that plain threads need:
//!
//! 1. A pool of workers draining a job queue. When the queue is empty a worker
//!    naps with `ctx.wait_timeout(..)`, which is a sleep that ends early the
//!    moment the context is cancelled. Dropping the pool's `CancelHandle`
//!    stops every worker.
//! 2. Retry with back-off under a deadline: the back-off sleep is again
//!    `wait_timeout`, so the retry loop stops as soon as the budget is spent,
//!    not after the next full back-off.
//! 3. A watcher thread that blocks in `ctx.wait()` until the context is done,
//!    then cleans up.

use gocontext::{Context, Error};
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn main() {
    let report = run();
    println!("\n{report:#?}");
}

/// What the three parts of this example observed.
#[derive(Debug)]
pub struct Report {
    /// How many jobs the pool finished (all of them).
    pub jobs_done: usize,
    /// The sum of the results, to check that each job ran exactly once.
    pub results_sum: u64,
    /// Why each worker stopped, one entry per worker.
    pub worker_exits: Vec<Error>,
    /// How the retry loop ended.
    pub retry_result: Result<u32, Error>,
    /// How many attempts it made before giving up.
    pub retry_attempts: u32,
    /// The same loop against a service that heals on the third attempt.
    pub healed_result: Result<u32, Error>,
    /// What the watcher thread's `wait()` returned.
    pub watcher_saw: Error,
    /// Whether the watcher's cleanup ran before we joined it.
    pub watcher_cleaned_up: bool,
}

/// Runs all three parts and returns what they saw.
pub fn run() -> Report {
    let (jobs_done, results_sum, worker_exits) = worker_pool(4, 40);
    let (retry_result, retry_attempts, healed_result) = retry_until_deadline();
    let (watcher_saw, watcher_cleaned_up) = watcher();
    Report {
        jobs_done,
        results_sum,
        worker_exits,
        retry_result,
        retry_attempts,
        healed_result,
        watcher_saw,
        watcher_cleaned_up,
    }
}

// ---------------------------------------------------------------------------
// 1. A worker pool that stops when its context is cancelled.
// ---------------------------------------------------------------------------

/// A job queue shared by the workers.
type Queue = Arc<Mutex<VecDeque<u64>>>;

/// One worker: takes jobs until the context is done. An empty queue is not a
/// reason to stop (more jobs may come), only cancellation is.
fn worker(ctx: Context, queue: Queue, results: mpsc::Sender<u64>) -> Error {
    loop {
        if let Some(why) = ctx.err() {
            return why;
        }
        let job = queue.lock().unwrap().pop_front();
        match job {
            Some(n) => {
                let _ = results.send(n * n); // the "work"
            }
            // Nothing to do: nap for up to 2 ms, but wake at once on cancel.
            None => {
                if let Some(why) = ctx.wait_timeout(Duration::from_millis(2)) {
                    return why;
                }
            }
        }
    }
}

fn worker_pool(workers: usize, jobs: u64) -> (usize, u64, Vec<Error>) {
    println!("== a pool of {workers} workers drains {jobs} jobs, then is cancelled ==");
    let (ctx, cancel) = Context::background().with_cancel();
    let queue: Queue = Arc::default();
    let (results_tx, results) = mpsc::channel();

    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let (ctx, queue, results_tx) = (ctx.clone(), queue.clone(), results_tx.clone());
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker(ctx, queue, results_tx))
                .expect("spawn worker")
        })
        .collect();
    drop(results_tx);

    // Jobs arrive while the workers are already waiting for them.
    for n in 1..=jobs {
        queue.lock().unwrap().push_back(n);
    }
    let mut done = 0;
    let mut sum = 0;
    for r in results.iter().take(jobs as usize) {
        done += 1;
        sum += r;
    }
    println!("all {done} results are in; dropping the pool's CancelHandle");
    drop(cancel); // the drop cancels: every worker's wait_timeout returns now

    let exits: Vec<Error> = handles
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();
    println!("workers stopped with: {exits:?}");
    (done, sum, exits)
}

// ---------------------------------------------------------------------------
// 2. Retry with back-off until the deadline.
// ---------------------------------------------------------------------------

/// A service that refuses connections until attempt number `heals_at`
/// (never, if `None`), then answers with the attempt number.
fn flaky_call(attempt: u32, heals_at: Option<u32>) -> Result<u32, &'static str> {
    match heals_at {
        Some(n) if attempt >= n => Ok(attempt),
        _ => Err("connection refused"),
    }
}

/// Calls `flaky_call` until it succeeds or `ctx` is done. Between attempts it
/// backs off (1, 2, 4, ... ms), and the back-off itself ends early if the
/// deadline arrives during it.
fn call_with_retries(
    ctx: &Context,
    heals_at: Option<u32>,
    attempts: &mut u32,
) -> Result<u32, Error> {
    let mut backoff = Duration::from_millis(1);
    loop {
        if let Some(why) = ctx.err() {
            return Err(why);
        }
        *attempts += 1;
        match flaky_call(*attempts, heals_at) {
            Ok(v) => return Ok(v),
            Err(e) => println!("  attempt {attempts}: {e}; backing off {backoff:?}"),
        }
        if let Some(why) = ctx.wait_timeout(backoff) {
            return Err(why);
        }
        backoff = (backoff * 2).min(Duration::from_millis(16));
    }
}

fn retry_until_deadline() -> (Result<u32, Error>, u32, Result<u32, Error>) {
    println!("\n== retry with back-off under a 40 ms deadline, the service stays down ==");
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(40));
    let mut attempts = 0;
    let result = call_with_retries(&ctx, None, &mut attempts);
    match &result {
        Ok(v) => println!("succeeded on attempt {v}"),
        Err(why) => println!("gave up after {attempts} attempts: {why}"),
    }

    println!("\n== the same loop with a 10 s budget, the service heals at attempt 3 ==");
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    let healed = call_with_retries(&ctx, Some(3), &mut 0);
    println!("result: {healed:?}");
    (result, attempts, healed)
}

// ---------------------------------------------------------------------------
// 3. A watcher thread blocked in wait().
// ---------------------------------------------------------------------------

fn watcher() -> (Error, bool) {
    println!("\n== a watcher thread blocks in wait() until the context is done ==");
    let (ctx, cancel) = Context::background().with_cancel();
    let cleaned_up = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&cleaned_up);
    let watcher = thread::spawn(move || {
        let why = ctx.wait(); // blocks this thread, no polling
        println!("  watcher: woke up with `{why}`, closing connections");
        *flag.lock().unwrap() = true;
        why
    });
    thread::sleep(Duration::from_millis(10));
    println!("  main: cancelling");
    cancel.cancel();
    let saw = watcher.join().expect("watcher panicked");
    let cleaned = *cleaned_up.lock().unwrap();
    (saw, cleaned)
}
