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

/// Everything without a deadline works on the system clock's root (and
/// stepping it is the documented no-op), and deadlines work on a manual
/// clock's.
#[test]
fn system_root_without_deadlines_and_manual_deadlines_work() {
    model_unbounded(
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
            // Stepping the system clock stays a no-op, with no driver.
            assert_eq!(Clock::system().next_deadline(), None);
            let before = Clock::system().now();
            assert!(Clock::system().advance_to_next() >= before);
        },
    );
}

/// Stepping to the next deadline while another thread cancels the earlier
/// of two: time lands exactly on one of the two deadlines, and what fired
/// agrees with where it landed.
#[test]
fn advance_to_next_vs_cancel_of_the_next_deadline() {
    model("advance_to_next_vs_cancel_of_the_next_deadline", || {
        let clock = Clock::manual();
        let t0 = clock.now();
        let (a, cancel_a) = clock.background().with_timeout(Duration::from_millis(10));
        let (b, _cancel_b) = clock.background().with_timeout(Duration::from_millis(20));
        let t = loom::thread::spawn(move || cancel_a.cancel());
        let now = clock.advance_to_next();
        t.join().unwrap();
        assert_eq!(clock.now(), now);
        if now == t0 + Duration::from_millis(20) {
            assert_eq!(a.err(), Some(Error::Canceled), "skipped a live deadline");
            assert_eq!(b.err(), Some(Error::DeadlineExceeded));
        } else {
            assert_eq!(now, t0 + Duration::from_millis(10));
            assert!(a.is_done());
            assert_eq!(b.err(), None, "fired early");
        }
    });
}
