//! The memory bound: cancelled timers are returned promptly.
//!
//! Memory is measured with counters, not a counting global allocator (a
//! `#[global_allocator]` would apply to this whole unit-test binary): every
//! test container counts itself in `Board::live` until freed, and the clock
//! frees a container only through `release`. The wheel and the inbox are
//! intrusive (the only per-timer memory is the container itself), so
//! "containers alive" is the clock's whole per-timer footprint; `filed()`
//! and `inbox_is_empty()` check that nothing is left linked.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::probe::{Board, ProbeRef};
use crate::clock::Clock;
use crate::time::COLLECT_EVERY;

const HOUR: Duration = Duration::from_secs(3600);
/// A million natively; Miri checks the same paths on a smaller count.
fn million() -> usize {
    crate::scaled("timers", 1_000_000, 2 * COLLECT_EVERY)
}

#[test]
fn million_armed_then_all_disarmed_returns_to_baseline() {
    let clock = Clock::manual();
    let board = Board::new();
    let deadline = clock.now() + HOUR;
    let million = million();
    let probes: Vec<_> = (0..million)
        .map(|i| {
            let p = ProbeRef::new(&board, i, deadline);
            p.arm(&clock);
            p
        })
        .collect();
    for (i, p) in probes.into_iter().enumerate() {
        assert!(p.disarm(&clock));
        drop(p);
        // Only the clock's reference keeps a cancelled container alive,
        // and the clock gives those back every COLLECT_EVERY disarms.
        let cancelled_held = board.live.load(Ordering::Relaxed) - (million - 1 - i);
        assert!(
            cancelled_held <= COLLECT_EVERY,
            "{cancelled_held} cancelled timers held"
        );
    }
    assert!(board.live.load(Ordering::SeqCst) <= COLLECT_EVERY);
    clock.advance(Duration::ZERO);
    assert_eq!(board.live.load(Ordering::SeqCst), 0);
    assert_eq!(clock.core().filed(), 0);
    assert!(clock.core().inbox_is_empty());
    assert!(board.fired().is_empty());
}

#[test]
fn million_arm_disarm_pairs_stay_bounded_without_advance() {
    let clock = Clock::manual();
    let board = Board::new();
    let keep = ProbeRef::new(&board, 0, clock.now() + HOUR);
    keep.arm(&clock);
    let deadline = clock.now() + HOUR;
    for i in 0..million() {
        let p = ProbeRef::new(&board, i, deadline);
        p.arm(&clock);
        assert!(p.disarm(&clock));
        drop(p);
        let live = board.live.load(Ordering::Relaxed);
        assert!(live <= COLLECT_EVERY + 1, "{live} containers alive");
    }
    clock.advance(Duration::ZERO);
    assert_eq!(board.live.load(Ordering::SeqCst), 1, "only the live timer");
    assert_eq!(clock.core().filed(), 1);
    assert!(keep.disarm(&clock));
}

#[test]
fn system_clock_returns_cancelled_memory_while_sleeping_long() {
    let clock = Clock::system();
    let board = Board::new();
    let deadline = clock.now() + HOUR;
    let mut peak = 0;
    // Arm/disarm pairs on the (shared, real-time) system clock.
    let pairs = crate::scaled("system clock pairs", 200_000, 2 * COLLECT_EVERY);
    for i in 0..pairs {
        let p = ProbeRef::new(&board, i, deadline);
        p.arm(&clock);
        assert!(p.disarm(&clock));
        drop(p);
        peak = peak.max(board.live.load(Ordering::Relaxed));
    }
    // The driver sleeps for an hour, but is woken to collect every
    // COLLECT_EVERY disarms; only the last partial batch may wait.
    let give_up = Instant::now() + Duration::from_secs(10);
    while board.live.load(Ordering::SeqCst) > COLLECT_EVERY {
        assert!(Instant::now() < give_up, "cancelled timers not collected");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        cfg!(miri) || peak < pairs / 2,
        "peak {peak}: collection never ran during the loop"
    );
}
