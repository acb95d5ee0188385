//! Loom models: which clocks a model may use.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::{Clock, Context, Error};
use gocontext_loom_tests::*;
use std::time::Duration;

/// A deadline on the system clock has no loom model (a real driver thread,
/// real time): gocontext refuses it with a message naming the manual clock.
#[test]
#[should_panic(expected = "Root the model's contexts in a manual clock instead")]
fn system_clock_deadline_is_refused_with_advice() {
    model("system_clock_deadline_is_refused_with_advice", || {
        let _ = Context::background().with_timeout(Duration::from_secs(1));
    });
}

/// The same through `with_deadline`, and through a context derived from a
/// system-clock root: refused before anything is allocated, so the panic
/// leaks nothing that loom's leak check would report instead.
#[test]
#[should_panic(expected = "Root the model's contexts in a manual clock instead")]
fn system_clock_deadline_below_a_cancel_is_refused() {
    model("system_clock_deadline_below_a_cancel_is_refused", || {
        let (parent, _cancel) = Clock::system().background().with_cancel();
        let at = Clock::system().now() + Duration::from_secs(1);
        let _ = parent.with_deadline(at);
    });
}

/// Everything without a deadline works on the system clock's root, and
/// deadlines work on a manual clock's.
#[test]
fn system_root_without_deadlines_and_manual_deadlines_work() {
    model(
        "system_root_without_deadlines_and_manual_deadlines_work",
        || {
            let (c, cancel) = Context::background().with_cancel();
            let clock = Clock::manual();
            let (d, _d_cancel) = clock.background().with_timeout(Duration::from_millis(5));
            let t = loom::thread::spawn(move || cancel.cancel());
            clock.advance(Duration::from_millis(5));
            t.join().unwrap();
            assert_eq!(c.err(), Some(Error::Canceled));
            assert_eq!(d.err(), Some(Error::DeadlineExceeded));
        },
    );
}
