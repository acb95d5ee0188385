//! An application crate as a gocontext user writes it: a worker pool, a
//! client call with a deadline, and a server whose shutdown cancels every
//! request in flight. Its loom models (`tests/models.rs`) check this code,
//! and gocontext under it, with the command in gocontext's `docs/loom.md`:
//!
//! ```text
//! RUSTFLAGS="--cfg gocontext_loom --cfg crossbeam_loom" cargo test --release
//! ```
//!
//! The crate's own primitives come from a small facade (`sync`) that picks
//! loom's under the same cfg, the usual way to make one's own code visible
//! to loom.

use gocontext::{CancelHandle, Cause, Context, Error};
use std::time::Duration;

/// The crate's concurrency primitives: loom's in the model-checking build.
pub mod sync {
    #[cfg(gocontext_loom)]
    pub use loom::{
        sync::{Arc, Mutex},
        thread,
    };
    #[cfg(not(gocontext_loom))]
    pub use std::{
        sync::{Arc, Mutex},
        thread,
    };
}

use sync::{thread, Arc, Mutex};

/// What became of one job of [`run_pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to the end; the job's result.
    Done(u32),
    /// It started, and stopped early because the pool was cancelled.
    Stopped,
    /// The pool was cancelled before any worker took it.
    NotStarted,
}

/// A pool of worker threads over a fixed list of jobs.
///
/// Workers take jobs until there are none left or the pool's context is
/// cancelled. On cancel the pool drains: no worker takes a new job, a
/// running job sees its own context cancelled and stops at its next check,
/// and [`join`](Pool::join) reports the jobs nobody took as
/// [`Outcome::NotStarted`].
#[derive(Debug)]
pub struct Pool {
    workers: Vec<thread::JoinHandle<usize>>,
    results: Arc<Mutex<Vec<Outcome>>>,
}

impl Pool {
    /// Starts `workers` threads on `jobs` under `ctx`.
    pub fn start(ctx: &Context, jobs: Vec<u32>, workers: usize) -> Pool {
        let n = jobs.len();
        let queue: Vec<(usize, u32)> = jobs.into_iter().enumerate().rev().collect();
        let queue = Arc::new(Mutex::new(queue));
        let results = Arc::new(Mutex::new(vec![Outcome::NotStarted; n]));
        let workers = (0..workers)
            .map(|_| {
                let (ctx, queue, results) = (ctx.clone(), queue.clone(), results.clone());
                thread::spawn(move || work(&ctx, &queue, &results))
            })
            .collect();
        Pool { workers, results }
    }

    /// Waits for every worker; one outcome per job, in the jobs' order, and
    /// how many jobs the workers took.
    pub fn join(self) -> (Vec<Outcome>, usize) {
        let taken = self
            .workers
            .into_iter()
            .map(|w| w.join().expect("a worker panicked"))
            .sum();
        let outcomes = self.results.lock().unwrap().clone();
        (outcomes, taken)
    }
}

type Queue = Mutex<Vec<(usize, u32)>>;

/// One worker: takes jobs until the queue is empty or the pool cancelled.
/// Returns how many it took.
fn work(pool: &Context, queue: &Queue, results: &Mutex<Vec<Outcome>>) -> usize {
    let mut taken = 0;
    while pool.err().is_none() {
        let Some((i, job)) = queue.lock().unwrap().pop() else {
            break;
        };
        taken += 1;
        // Each job runs under a context of its own, cancelled when the job
        // ends (the handle's drop) or when the pool is.
        let (job_ctx, _end) = pool.with_cancel();
        let outcome = job_steps(&job_ctx, job);
        results.lock().unwrap()[i] = outcome;
    }
    taken
}

/// A job of two steps that checks its context between them.
fn job_steps(ctx: &Context, job: u32) -> Outcome {
    let first = job * 2;
    if ctx.err().is_some() {
        return Outcome::Stopped;
    }
    Outcome::Done(first + 1)
}

/// Why a request context ended when the server answered in time.
#[derive(Debug)]
pub struct Replied;

impl std::fmt::Display for Replied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("replied")
    }
}

impl std::error::Error for Replied {}

/// One outstanding request: a context that ends with the reply or the
/// deadline, whichever comes first, and the slot the reply goes into.
#[derive(Debug)]
pub struct Call {
    ctx: Context,
    reply: Mutex<Option<u32>>,
    replied: CancelHandle,
}

impl Call {
    /// A request under `ctx` that gives up after `timeout` on `ctx`'s clock.
    pub fn new(ctx: &Context, timeout: Duration) -> Arc<Call> {
        let (ctx, replied) = ctx.with_timeout(timeout);
        Arc::new(Call {
            ctx,
            reply: Mutex::new(None),
            replied,
        })
    }

    /// The server's side: answers `value`. True if the answer arrived in
    /// time (the caller gets it), false if the deadline won.
    pub fn reply(&self, value: u32) -> bool {
        if self.ctx.err().is_some() {
            return false;
        }
        *self.reply.lock().unwrap() = Some(value);
        self.replied.cancel_with_cause(Replied);
        self.ctx.cause().is_some_and(|c| c.is::<Replied>())
    }

    /// The caller's side: blocks until the reply or the deadline.
    pub fn wait(&self) -> Result<u32, Error> {
        let err = self.ctx.wait();
        match self.ctx.cause() {
            Some(c) if c.is::<Replied>() => Ok(self
                .reply
                .lock()
                .unwrap()
                .expect("a reply cause without a reply")),
            _ => Err(err),
        }
    }
}

/// Why a server's requests ended when the server shut down.
#[derive(Debug)]
pub struct ShuttingDown;

impl std::fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("server shutting down")
    }
}

impl std::error::Error for ShuttingDown {}

/// A server: every request runs under a child of the server's context,
/// and a request may start sub-requests (grandchildren).
#[derive(Debug)]
pub struct Server {
    ctx: Context,
    stop: CancelHandle,
}

/// One request in flight: its context and the right to end it.
#[derive(Debug)]
pub struct Request {
    /// The request's context; sub-requests derive from it.
    pub ctx: Context,
    /// Ends the request (its drop does too).
    pub end: CancelHandle,
}

impl Server {
    /// A server under `parent`.
    pub fn new(parent: &Context) -> Server {
        let (ctx, stop) = parent.with_cancel();
        Server { ctx, stop }
    }

    /// A new request. After shutdown it is born cancelled.
    pub fn accept(&self) -> Request {
        let (ctx, end) = self.ctx.with_cancel();
        Request { ctx, end }
    }

    /// Cancels every request, with the cause [`ShuttingDown`].
    pub fn shutdown(&self) {
        self.stop.cancel_with_cause(ShuttingDown);
    }

    /// Whether the server is shutting down.
    pub fn is_shut_down(&self) -> bool {
        self.ctx.is_done()
    }
}

/// True if `cause` is the server's shutdown.
pub fn is_shutdown(cause: Option<Cause>) -> bool {
    cause.is_some_and(|c| c.is::<ShuttingDown>())
}
