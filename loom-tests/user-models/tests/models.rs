//! Loom models of this crate's own code, written the way a gocontext user
//! writes them. Run (from this folder):
//!
//! ```text
//! RUSTFLAGS="--cfg gocontext_loom --cfg crossbeam_loom" cargo test --release
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` sets loom's preemption bound (3 when unset).
//! Every model roots its contexts in `Clock::manual()`: deadlines on the
//! system clock have no loom model, and gocontext refuses them under loom.
#![cfg(gocontext_loom)]

use gocontext::{Clock, Error};
use gocontext_user_models::{is_shutdown, Call, Outcome, Pool, Server};
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Checks `f` under loom, at `LOOM_MAX_PREEMPTIONS` or bound 3, and says
/// how many interleavings that took.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(3));
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counted.fetch_add(1, Relaxed);
        f();
    });
    eprintln!(
        "{name}: {} interleavings in {:.2?}",
        runs.load(Relaxed),
        start.elapsed()
    );
}

/// A pool of two workers on two jobs, cancelled while it runs: every job
/// has exactly one outcome, every job a worker took is reported done or
/// stopped (none lost), a done job has its right result, and a job stops
/// only with its context cancelled by the pool.
#[test]
fn worker_pool_drains_on_cancel() {
    model("worker_pool_drains_on_cancel", || {
        let clock = Clock::manual();
        let (ctx, cancel) = clock.background().with_cancel();
        let pool = Pool::start(&ctx, vec![10, 20], 2);
        cancel.cancel();
        let (outcomes, taken) = pool.join();
        assert_eq!(outcomes.len(), 2);
        let mut ran = 0;
        for (job, outcome) in [10, 20].into_iter().zip(&outcomes) {
            match outcome {
                Outcome::Done(v) => assert_eq!(*v, job * 2 + 1, "job {job}"),
                Outcome::Stopped => assert!(ctx.is_done()),
                Outcome::NotStarted => continue,
            }
            ran += 1;
        }
        assert_eq!(ran, taken, "a job was taken but its outcome lost");
    });
}

/// A request with a 100 ms deadline whose reply races the deadline: the
/// caller gets the reply exactly when the server was told it arrived in
/// time, and `DeadlineExceeded` otherwise, never both and never neither.
#[test]
fn request_deadline_races_reply() {
    model("request_deadline_races_reply", || {
        let clock = Clock::manual();
        let call = Call::new(&clock.background(), Duration::from_millis(100));
        let server = {
            let call = call.clone();
            thread::spawn(move || call.reply(7))
        };
        let timer = {
            let clock = clock.clone();
            thread::spawn(move || {
                clock.advance(Duration::from_millis(100));
            })
        };
        let got = call.wait();
        let in_time = server.join().unwrap();
        timer.join().unwrap();
        if in_time {
            assert_eq!(got, Ok(7));
        } else {
            assert_eq!(got, Err(Error::DeadlineExceeded));
        }
    });
}

/// A server shuts down while a request is accepted, starts a sub-request
/// and ends, and another request stays open. Once every thread has
/// settled, every context is done: the open request with the shutdown as
/// its cause, the others with the shutdown or their own end.
#[test]
fn shutdown_cancels_tree_while_children_come_and_go() {
    model("shutdown_cancels_tree_while_children_come_and_go", || {
        let clock = Clock::manual();
        let server = Arc::new(Server::new(&clock.background()));
        let open = server.accept();
        let worker = {
            let server = server.clone();
            thread::spawn(move || {
                let req = server.accept();
                let (sub, sub_end) = req.ctx.with_cancel();
                let kept = (req.ctx.clone(), sub.clone());
                drop(sub_end);
                drop(req);
                kept
            })
        };
        server.shutdown();
        let (req, sub) = worker.join().unwrap();
        assert!(server.is_shut_down());
        assert!(
            is_shutdown(open.ctx.cause()),
            "open request missed the shutdown"
        );
        for ctx in [&req, &sub] {
            assert_eq!(ctx.err(), Some(Error::Canceled));
        }
        // Born after the shutdown: cancelled at once, with its cause.
        let late = server.accept();
        assert!(is_shutdown(late.ctx.cause()));
    });
}

/// A caller without a server: the deadline alone ends the call, and moving
/// the clock to its next deadline is enough to get there.
#[test]
fn request_without_reply_times_out() {
    model("request_without_reply_times_out", || {
        let clock = Clock::manual();
        let call = Call::new(&clock.background(), Duration::from_millis(100));
        let waiter = {
            let call = call.clone();
            thread::spawn(move || call.wait())
        };
        let t0 = clock.now();
        assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(100));
        assert_eq!(waiter.join().unwrap(), Err(Error::DeadlineExceeded));
        assert!(!call.reply(1), "a reply after the deadline was taken");
    });
}
