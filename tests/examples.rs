//! Runs every example and checks what it reports.
//!
//! Each example keeps its body in `pub fn run()`, which `main` calls; here the
//! example file is compiled as a module and `run()` is called directly. The
//! assertions are about behaviour (who was cancelled, with which error and
//! cause, which values were seen), never about how long anything took.

#[path = "../examples/tour.rs"]
#[allow(dead_code)]
mod tour;

#[path = "../examples/threads.rs"]
#[allow(dead_code)]
mod threads;

#[path = "../examples/async_tokio.rs"]
#[allow(dead_code)]
mod async_tokio;

#[path = "../examples/virtual_time.rs"]
#[allow(dead_code)]
mod virtual_time;

/// The README's first example, compiled from the very file the README quotes.
mod readme {
    include!("../examples/readme.rs");

    #[test]
    fn readme_example_runs() {
        main();
    }
}

use gocontext::Error;
use std::time::Duration;

#[test]
fn tour_runs_every_seed_program() {
    let r = tour::run();

    // Seed 000: the consumer read 1..=5, then the generator thread returned
    // because its context was cancelled (it was joined, so it did not leak).
    assert_eq!(r.generator.received, vec![1, 2, 3, 4, 5]);
    assert_eq!(r.generator.generator_exit, Error::Canceled);

    // Seed 001: cancelling the caller ends the stream; a derived timeout ends
    // the service call without touching the caller's context.
    assert_eq!(r.stream.received, 3);
    assert_eq!(r.stream.result, Err(Error::Canceled));
    assert_eq!(r.stream.timeout_result, Err(Error::DeadlineExceeded));
    assert!(!r.stream.caller_done_after_timeout);

    // Seed 002: a child's cancel never reaches the parent; the parent's
    // reaches the child.
    assert_eq!(r.parent_child.parent_err_after_sibling_cancel, None);
    assert_eq!(r.parent_child.child_wait, Error::Canceled);
    assert_eq!(r.parent_child.parent_err, Some(Error::Canceled));
    assert_eq!(r.parent_child.child_err, Some(Error::Canceled));

    // Seeds 002 and 003: roots and values.
    assert_eq!(r.values.background, "context.Background");
    assert_eq!(r.values.todo, "context.TODO");
    assert_eq!(
        r.values.handler_saw,
        tour::HandlerView {
            request_id: Some(7),
            to_be_deleted: true,
            user: Some("gopher".into()),
        }
    );
    assert_eq!(
        r.values.bare_handler_saw,
        tour::HandlerView {
            request_id: None,
            to_be_deleted: false,
            user: None,
        }
    );
    assert!(!r.values.other_key_found, "keys are compared by address");
    assert_eq!(r.values.deadline_in, Some(Duration::from_secs(2)));
    assert!(r.values.timeout_has_deadline);

    // Seed 004: the run is random, but each possible story is consistent.
    let d = &r.do_work;
    match d.saw {
        // Main's cancel came first: doWorkContext saw its own ctx done.
        tour::DoWorkSaw::ParentDone => assert_eq!(d.main_ctx_err, Some(Error::Canceled)),
        // The work finished, or its 150 ms budget ran out, or main's cancel
        // reached it through the timeout context.
        tour::DoWorkSaw::Returned(tour::WorkOutcome::Finished(ms)) => {
            assert!(
                (100..200).contains(&ms),
                "sleepRandom sleeps 100..200 ms, got {ms}"
            )
        }
        tour::DoWorkSaw::Returned(tour::WorkOutcome::Stopped(why)) => {
            assert!(matches!(why, Error::Canceled | Error::DeadlineExceeded))
        }
    }
    // doWorkContext's deferred cancel always runs, and so does main's.
    assert!(d.timeout_ctx_err.is_some());
    assert_eq!(d.main_ctx_err, Some(Error::Canceled));

    // after_func.
    assert!(r.after_func.ran_on_canceller);
    assert!(r.after_func.stop_before_cancel);
    assert!(!r.after_func.stopped_callback_ran);
    assert!(!r.after_func.stop_after_run);
    assert!(r.after_func.late_ran_inline);

    // Cause.
    assert_eq!(r.cause.err, Some(Error::Canceled));
    assert_eq!(
        r.cause.cause,
        Some(tour::QuotaExceeded {
            user: "gopher".into()
        })
    );
    assert!(r.cause.child_shares_cause);
    assert!(r.cause.first_cause_kept);
    assert!(r.cause.plain_cause_is_error);
    assert_eq!(r.cause.timeout_err, Error::DeadlineExceeded);
    assert!(r.cause.timeout_cause_is_custom);

    // merge.
    assert!(r.merge.deadline_is_requests);
    assert_eq!(r.merge.request_id, Some(9));
    assert_eq!(r.merge.server, Some("api-1"));
    assert_eq!(r.merge.err, Some(Error::Canceled));
    assert!(r.merge.cause_is_shutdown);
    assert_eq!(r.merge.request_err, None);

    // without_cancel.
    let w = &r.without_cancel;
    assert_eq!(w.request_err, Some(Error::Canceled));
    assert_eq!(w.detached_err, None);
    assert_eq!(w.detached_deadline, None);
    assert_eq!(w.detached_request_id, Some(11));
    assert!(!w.fresh_budget_done);
}

#[test]
fn threads_workers_stop_on_cancel_and_deadline() {
    let r = threads::run();
    assert_eq!(r.jobs_done, 40);
    assert_eq!(r.results_sum, (1..=40u64).map(|n| n * n).sum::<u64>());
    assert_eq!(r.worker_exits, vec![Error::Canceled; 4]);
    assert_eq!(r.retry_result, Err(Error::DeadlineExceeded));
    assert!(r.retry_attempts >= 1);
    assert_eq!(r.healed_result, Ok(3));
    assert_eq!(r.watcher_saw, Error::Canceled);
    assert!(r.watcher_cleaned_up);
}

#[test]
fn async_tokio_requests_end_by_quorum_deadline_and_shutdown() {
    let reports = async_tokio::run();
    assert_eq!(reports.len(), 3);

    // 1. Quorum: the three fast replicas answered, the hung ones were cancelled.
    let q = &reports[0];
    let mut answers = q.outcome.clone().expect("quorum reached");
    answers.sort();
    assert_eq!(
        answers,
        vec![
            "request 1: answer from replica 0",
            "request 1: answer from replica 2",
            "request 1: answer from replica 4",
        ]
    );
    assert_eq!(q.replicas[1], Err(Error::Canceled));
    assert_eq!(q.replicas[3], Err(Error::Canceled));

    // 2. Deadline: the hung replicas, and the request, end with DeadlineExceeded.
    let d = &reports[1];
    assert_eq!(d.outcome, Err(Error::DeadlineExceeded));
    assert_eq!(d.replicas[1], Err(Error::DeadlineExceeded));
    assert_eq!(d.replicas[2], Err(Error::DeadlineExceeded));
    assert_eq!(d.cause.as_deref(), Some("context deadline exceeded"));

    // 3. Shutdown: the server's cancel, and its cause, reach the request.
    let s = &reports[2];
    assert_eq!(s.outcome, Err(Error::Canceled));
    assert_eq!(s.replicas, vec![Err(Error::Canceled), Err(Error::Canceled)]);
    assert_eq!(s.cause.as_deref(), Some("server shutting down"));
}

#[test]
fn virtual_time_walks_a_session_through_its_deadlines() {
    let r = virtual_time::run();
    assert_eq!(r.request_err_just_before, None);
    assert_eq!(r.request_err_at_deadline, Some(Error::DeadlineExceeded));
    assert!(r.request_cause_is_budget);
    assert_eq!(r.session_err_after_request, None);
    assert!(r.job_deadline_is_sessions);
    assert_eq!(r.huge_timeout_deadline, None);
    assert_eq!(r.past_deadline_err, Some(Error::DeadlineExceeded));
    assert_eq!(r.session_err_just_before, None);
    // Virtual instants are exact: the manual clock moved only by advance().
    assert_eq!(r.session_expired_at, Some(Duration::from_secs(30 * 60)));
    assert!(r.expiry_ran_on_advancing_thread);
    assert_eq!(r.job_err, Some(Error::DeadlineExceeded));
    assert_eq!(r.timeline.len(), 8);
}

#[test]
fn readme_quotes_examples_readme_rs_verbatim() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/readme.rs");
    assert!(
        readme.contains(&format!("```rust\n{example}```")),
        "README.md's first example must be examples/readme.rs, verbatim"
    );
}
