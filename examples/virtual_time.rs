//! Testing deadline logic without waiting for it: `Clock::manual()`.
//!
//! Run it with `cargo run --release --example virtual_time`.
//!
//! A context tree rooted at `clock.background()` takes its time from that
//! clock. A manual clock stands still until `clock.advance(d)` moves it; the
//! advance fires every deadline that has come due, on the calling thread,
//! before it returns. So a test can walk a 30-minute session timeout through
//! its whole life in microseconds, and check exact virtual instants with no
//! sleeps and no flakiness.
//!
//! The scenario: a user session with a 30-minute idle timeout, a request
//! inside it with a 2-second budget, and a background job that asks for an
//! hour but can never outlive the session.

use gocontext::{Clock, Error};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

fn main() {
    let wall = Instant::now();
    let report = run();
    println!(
        "\n30 virtual minutes took {:?} of real time.\n{report:#?}",
        wall.elapsed()
    );
}

/// Why the request was cut short.
#[derive(Debug)]
pub struct BudgetExhausted;

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request budget of 2 s exhausted")
    }
}

impl std::error::Error for BudgetExhausted {}

/// What the scenario observed, in virtual time since the start.
#[derive(Debug)]
pub struct Report {
    /// The request one millisecond before its deadline.
    pub request_err_just_before: Option<Error>,
    /// The request at its deadline.
    pub request_err_at_deadline: Option<Error>,
    /// The request's cause is the custom `BudgetExhausted`.
    pub request_cause_is_budget: bool,
    /// The session outlived its request.
    pub session_err_after_request: Option<Error>,
    /// The hour-long job's deadline is the session's (the earlier wins).
    pub job_deadline_is_sessions: bool,
    /// A timeout too large for `Instant` means no deadline at all.
    pub huge_timeout_deadline: Option<Instant>,
    /// A deadline already in the past: done at once.
    pub past_deadline_err: Option<Error>,
    /// The session one millisecond before 30 minutes.
    pub session_err_just_before: Option<Error>,
    /// When (virtual time since the start) the session's `after_func` ran.
    pub session_expired_at: Option<Duration>,
    /// It ran on the thread that called `advance`.
    pub expiry_ran_on_advancing_thread: bool,
    /// The job, after the session expired.
    pub job_err: Option<Error>,
    /// Every line printed, in order.
    pub timeline: Vec<String>,
}

/// Virtual time since the start, shown as `mm:ss.mmm`.
struct Minutes(Duration);

impl fmt::Display for Minutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        write!(
            f,
            "{:02}:{:02}.{:03}",
            ms / 60_000,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// Plays the scenario on a manual clock and returns what happened.
pub fn run() -> Report {
    let clock = Clock::manual();
    let start = clock.now();
    let mut timeline = Vec::new();
    let mut log = |line: String| {
        println!("{line}");
        timeline.push(line);
    };
    let at = |clock: &Clock| Minutes(clock.now().duration_since(start));

    let server = clock.background();
    let (session, _end_session) = server.with_timeout(Duration::from_secs(30 * 60));
    let expired: Arc<Mutex<Option<(Duration, ThreadId)>>> = Arc::default();
    let record = Arc::clone(&expired);
    let session_clock = clock.clone();
    let _on_expiry = session.after_func(move || {
        let when = session_clock.now().duration_since(start);
        *record.lock().unwrap() = Some((when, thread::current().id()));
    });
    log(format!(
        "t={}: session opened, 30 min idle timeout",
        at(&clock)
    ));

    let (request, _end_request) =
        session.with_timeout_cause(Duration::from_secs(2), BudgetExhausted);
    log(format!("t={}: request started, 2 s budget", at(&clock)));

    clock.advance(Duration::from_millis(1999));
    let request_err_just_before = request.err();
    log(format!(
        "t={}: request.err() = {request_err_just_before:?} (a deadline never fires early)",
        at(&clock)
    ));
    clock.advance(Duration::from_millis(1));
    let request_err_at_deadline = request.err();
    let request_cause_is_budget = request.cause().is_some_and(|c| c.is::<BudgetExhausted>());
    let session_err_after_request = session.err();
    log(format!(
        "t={}: request.err() = {request_err_at_deadline:?}, cause: {}; session.err() = {session_err_after_request:?}",
        at(&clock),
        request.cause().map(|c| c.to_string()).unwrap_or_default()
    ));

    let (job, _end_job) = session.with_timeout(Duration::from_secs(3600));
    let job_deadline_is_sessions = job.deadline() == session.deadline();
    log(format!(
        "t={}: a job asks for 1 h; its deadline is the session's: {job_deadline_is_sessions}",
        at(&clock)
    ));

    let detached = session.without_cancel();
    let (forever, _end_forever) = detached.with_timeout(Duration::MAX);
    let huge_timeout_deadline = forever.deadline();
    let (late, _end_late) = session.with_deadline(clock.now());
    let past_deadline_err = late.err();
    log(format!(
        "t={}: with_timeout(Duration::MAX) has deadline {huge_timeout_deadline:?}; with_deadline(now) is done: {past_deadline_err:?}",
        at(&clock)
    ));

    // Up to one millisecond before the 30-minute mark...
    clock.advance(Duration::from_secs(29 * 60));
    clock.advance(Duration::from_millis(57_999));
    let session_err_just_before = session.err();
    log(format!(
        "t={}: session.err() = {session_err_just_before:?}",
        at(&clock)
    ));
    // ...and onto it: the advance itself runs the expiry callback.
    clock.advance(Duration::from_millis(1));
    let fired = *expired.lock().unwrap();
    let session_expired_at = fired.map(|(when, _)| when);
    let expiry_ran_on_advancing_thread = fired.map(|(_, id)| id) == Some(thread::current().id());
    let job_err = job.err();
    log(format!(
        "t={}: session expired (after_func saw t={session_expired_at:?}); job.err() = {job_err:?}",
        at(&clock)
    ));

    Report {
        request_err_just_before,
        request_err_at_deadline,
        request_cause_is_budget,
        session_err_after_request,
        job_deadline_is_sessions,
        huge_timeout_deadline,
        past_deadline_err,
        session_err_just_before,
        session_expired_at,
        expiry_ran_on_advancing_thread,
        job_err,
        timeline,
    }
}
