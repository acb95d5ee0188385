//! Stepping time by deadlines: `Clock::next_deadline`, `advance_to_next`
//! and `is_manual`, on manual clocks and (as documented no-ops) on the
//! system clock.

use gocontext::{Clock, Context, Error};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[test]
fn is_manual_tells_the_clocks_apart() {
    let manual = Clock::manual();
    assert!(manual.is_manual());
    assert!(manual.clone().is_manual());
    assert!(manual.background().clock().is_manual());
    assert!(!Clock::system().is_manual());
    assert!(!Context::background().clock().is_manual());
    assert!(!Context::todo().clock().is_manual());
}

#[test]
fn next_deadline_is_exact_at_every_level_of_the_wheel() {
    // Sub-millisecond offsets, at the wheel's first levels, far levels and
    // beyond its range (parked): the answer is the exact deadline, never
    // the start of its slot.
    for offset in [
        Duration::from_nanos(1),
        Duration::from_micros(1_700),
        Duration::from_millis(70_000) + Duration::from_nanos(123),
        Duration::from_secs(3 * 24 * 3600) + Duration::from_nanos(5),
        3 * YEAR + Duration::from_nanos(9),
    ] {
        let clock = Clock::manual();
        let root = clock.background();
        let at = clock.now() + offset;
        let (_far, _c1) = root.with_deadline(at + Duration::from_millis(1));
        let (_ctx, _c2) = root.with_deadline(at);
        let (_later, _c3) = root.with_deadline(at + offset);
        assert_eq!(clock.next_deadline(), Some(at), "offset {offset:?}");
    }
}

#[test]
fn next_deadline_skips_cancelled_and_fired_deadlines() {
    let clock = Clock::manual();
    let root = clock.background();
    let t0 = clock.now();
    assert_eq!(clock.next_deadline(), None);
    let (a, ca) = root.with_timeout(Duration::from_millis(10));
    let (_b, _cb) = root.with_timeout(Duration::from_millis(20));
    let (_c, _cc) = root.with_timeout(Duration::from_millis(30));
    assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_millis(10)));
    ca.cancel();
    assert_eq!(a.err(), Some(Error::Canceled));
    assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_millis(20)));
    clock.advance(Duration::from_millis(25));
    assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_millis(30)));
    // A deadline inherited from the parent arms nothing of its own.
    let (d, _cd) = root.with_timeout(Duration::from_secs(1));
    let (_inner, _ci) = d.with_timeout(Duration::from_secs(5));
    assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_millis(30)));
}

#[test]
fn advance_to_next_fires_in_order_and_returns_the_new_time() {
    let clock = Clock::manual();
    let root = clock.background();
    let t0 = clock.now();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut keep = Vec::new();
    for (i, ms) in [(0, 300u64), (1, 100), (2, 200), (3, 100)] {
        let (ctx, cancel) = root.with_timeout(Duration::from_millis(ms));
        let order = order.clone();
        keep.push((
            ctx.after_func(move || order.lock().unwrap().push(i)),
            ctx,
            cancel,
        ));
    }
    // Two deadlines at 100 ms: one step fires both, in arming order.
    assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(100));
    assert_eq!(*order.lock().unwrap(), [1, 3]);
    assert_eq!(clock.now(), t0 + Duration::from_millis(100));
    assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(200));
    assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(300));
    assert_eq!(*order.lock().unwrap(), [1, 3, 2, 0]);
    for (_, ctx, _) in &keep {
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    }
    // Nothing pending: time stays.
    assert_eq!(clock.next_deadline(), None);
    assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(300));
    assert_eq!(clock.now(), t0 + Duration::from_millis(300));
}

#[test]
fn advance_to_next_reaches_parked_deadlines_years_away() {
    let clock = Clock::manual();
    let t0 = clock.now();
    let (ctx, _c) = clock.background().with_timeout(3 * YEAR);
    assert_eq!(clock.advance_to_next(), t0 + 3 * YEAR);
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn stepping_a_program_through_its_timeouts_without_knowing_them() {
    // A "program" with timeouts the test does not know; the test drives
    // every one of them to firing by stepping, never naming a duration.
    let clock = Clock::manual();
    let root = clock.background();
    let fired = Arc::new(AtomicUsize::new(0));
    fn chain(ctx: &Context, left: u32, fired: Arc<AtomicUsize>) -> Vec<Box<dyn std::any::Any>> {
        if left == 0 {
            return Vec::new();
        }
        let (child, cancel) = ctx.with_timeout(Duration::from_millis(u64::from(left) * 7));
        let f = fired.clone();
        let af = child.after_func(move || {
            f.fetch_add(1, SeqCst);
        });
        let mut keep: Vec<Box<dyn std::any::Any>> =
            vec![Box::new(child.clone()), Box::new(cancel), Box::new(af)];
        keep.extend(chain(ctx, left - 1, fired));
        keep
    }
    let _keep = chain(&root, 5, fired.clone());
    let mut steps = 0;
    while clock.next_deadline().is_some() {
        clock.advance_to_next();
        steps += 1;
        assert!(steps <= 5, "stepping did not converge");
    }
    assert_eq!(fired.load(SeqCst), 5);
    assert_eq!(steps, 5);
}

#[test]
fn concurrent_advance_to_next_keeps_time_monotonic() {
    let clock = Clock::manual();
    let root = clock.background();
    let t0 = clock.now();
    let keep: Vec<_> = (1..=200u64)
        .map(|ms| root.with_timeout(Duration::from_millis(ms)))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut last = clock.now();
                for _ in 0..100 {
                    let now = clock.advance_to_next();
                    assert!(now >= last, "time went back");
                    last = now;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    while clock.next_deadline().is_some() {
        clock.advance_to_next();
    }
    assert_eq!(clock.now(), t0 + Duration::from_millis(200));
    for (ctx, _) in &keep {
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    }
}

#[test]
fn system_clock_stepping_is_a_documented_no_op() {
    let clock = Clock::system();
    let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(3600));
    let deadline = ctx.deadline().unwrap();
    // Other deadlines of this process may be earlier, never later.
    assert!(clock.next_deadline().is_some_and(|d| d <= deadline));
    let before = Instant::now();
    let now = clock.advance_to_next();
    assert!(now >= before && now < deadline);
    clock.advance(Duration::from_secs(7200));
    assert_eq!(ctx.err(), None, "advance moved real time");
}
