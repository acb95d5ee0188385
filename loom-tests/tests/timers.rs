//! Loom models: timers on a manual clock: arm, cancel, fire and drop racing.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::{Clock, Error};
use gocontext_loom_tests::*;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// Arming a timer, cancelling it (through its parent) and firing it, all at
/// once: it ends done exactly once, with one of the two errors, and a later
/// advance changes nothing. Loom's leak check at the end of each execution
/// catches a timer entry freed never (or twice).
#[test]
fn timer_arm_vs_cancel_vs_fire() {
    model("timer_arm_vs_cancel_vs_fire", || {
        let clock = Clock::manual();
        let (p, ph) = clock.background().with_cancel();
        let deadline = clock.now() + Duration::from_millis(10);
        let t_arm = thread::spawn(move || {
            let (c, ch) = p.with_deadline(deadline);
            let (n, f) = counter();
            let af = c.after_func(f);
            (c, ch, n, af)
        });
        let c2 = clock.clone();
        let t_fire = thread::spawn(move || c2.advance(Duration::from_millis(20)));
        ph.cancel();
        let (c, ch, n, _af) = t_arm.join().unwrap();
        t_fire.join().unwrap();
        let e = c.err().expect("neither cancel nor deadline took");
        assert_eq!(
            n.load(SeqCst),
            1,
            "timer callback ran {} times",
            n.load(SeqCst)
        );
        let got = c.cause().expect("no cause");
        assert_eq!(
            got.downcast_ref::<Error>(),
            Some(&e),
            "err and cause disagree"
        );
        clock.advance(Duration::from_millis(20));
        drop(ch);
        assert_eq!(c.err(), Some(e), "err changed");
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// Arming against firing, with an absolute deadline that the advance
/// passes: whichever comes first, the context ends DeadlineExceeded once.
#[test]
fn timer_arm_vs_fire() {
    model_unbounded("timer_arm_vs_fire", || {
        let clock = Clock::manual();
        let root = clock.background();
        let deadline = clock.now() + Duration::from_millis(10);
        let why = cause(3);
        let w = why.clone();
        let t = thread::spawn(move || {
            let (c, ch) = root.with_deadline_cause(deadline, w);
            let (n, f) = counter();
            let af = c.after_func(f);
            (c, ch, n, af)
        });
        clock.advance(Duration::from_millis(20));
        let (c, _ch, n, _af) = t.join().unwrap();
        assert_eq!(c.err(), Some(Error::DeadlineExceeded));
        assert!(is(&c, &why), "deadline cause lost");
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// An armed timer's own cancel against its firing.
#[test]
fn timer_cancel_vs_fire() {
    model_unbounded("timer_cancel_vs_fire", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let (n, f) = counter();
        let _af = c.after_func(f);
        let t = thread::spawn(move || ch.cancel());
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        let e = c.err().expect("not done");
        assert_eq!(c.cause().unwrap().downcast_ref::<Error>(), Some(&e));
        assert_eq!(n.load(SeqCst), 1);
    });
}

/// A deadline's own cause (pending in the node's record slot until the
/// deadline claims it) against `cancel_with_cause`: one claim wins, and err
/// and cause agree: the deadline's cause with DeadlineExceeded, or the
/// custom one with Canceled. Loom's leak check catches a record dropped
/// never (or twice) when the custom cause replaces the pending one.
#[test]
fn timer_cause_vs_cancel_with_cause() {
    model_unbounded("timer_cause_vs_cancel_with_cause", || {
        let clock = Clock::manual();
        let (why, mine) = (cause(3), cause(4));
        let (c, ch) = clock
            .background()
            .with_timeout_cause(Duration::from_millis(10), why.clone());
        let m = mine.clone();
        let t = thread::spawn(move || ch.cancel_with_cause(m));
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        match c.err() {
            Some(Error::DeadlineExceeded) => assert!(is(&c, &why), "deadline cause lost"),
            Some(Error::Canceled) => assert!(is(&c, &mine), "custom cause lost"),
            None => panic!("not done"),
        }
    });
}

/// A timer firing while the thread that holds its context derives one more
/// child and then lets the context go (without cancelling): the insert
/// races the fire's close of the same list, and the handle drops race the
/// drain. Both grandchildren, the one made before and the one made during
/// the race, end with DeadlineExceeded; the entry is freed exactly once.
#[test]
fn timer_fire_vs_context_drop() {
    model_unbounded("timer_fire_vs_context_drop", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let (g, _gh) = c.with_cancel();
        let t = thread::spawn(move || {
            let late = c.with_cancel();
            drop(c);
            ch.detach();
            late
        });
        clock.advance(Duration::from_millis(20));
        let (late, _lh) = t.join().unwrap();
        assert_eq!(g.err(), Some(Error::DeadlineExceeded));
        assert_eq!(late.err(), Some(Error::DeadlineExceeded));
    });
}

/// A timer firing while every handle of its context goes away: nothing to
/// observe but memory, which loom's leak check verifies.
#[test]
fn timer_fire_vs_last_drop() {
    model_unbounded("timer_fire_vs_last_drop", || {
        let clock = Clock::manual();
        let (c, ch) = clock.background().with_timeout(Duration::from_millis(10));
        let t = thread::spawn(move || {
            drop(c);
            ch.detach();
        });
        clock.advance(Duration::from_millis(20));
        t.join().unwrap();
        // The assertion is loom's own: every `LeakTrack`ed allocation of the
        // engine (node, timer entry) must be freed by the end of the run.
        drop(clock);
    });
}
