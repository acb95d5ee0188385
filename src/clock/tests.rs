//! The clocks end to end, with test containers (`clock/probe.rs`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::probe::{Board, ProbeRef};
use crate::clock::Clock;

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[test]
fn clock_basics() {
    let a = Clock::system();
    assert!(a.ptr_eq(&Clock::system()));
    let m = Clock::manual();
    assert!(m.ptr_eq(&m.clone()));
    assert!(!m.ptr_eq(&Clock::manual()));
    assert!(!m.ptr_eq(&a));
    let t0 = m.now();
    m.advance(Duration::from_secs(3));
    assert_eq!(m.now() - t0, Duration::from_secs(3));
    assert_eq!(m.clone().now(), m.now(), "clones share time");
    a.advance(Duration::from_secs(3)); // a documented no-op
    assert_eq!(format!("{a:?}"), "Clock::system");
    assert!(format!("{m:?}").starts_with("Clock::manual"));
    fn traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    traits::<Clock>();
}

#[test]
fn manual_fires_in_deadline_order_exactly() {
    let clock = Clock::manual();
    let board = Board::new();
    let t0 = clock.now();
    let probes: Vec<_> = [1500, 1000, 3000, 500, 1000]
        .iter()
        .enumerate()
        .map(|(id, &off)| ProbeRef::new(&board, id, t0 + us(off)))
        .collect();
    for p in &probes {
        p.arm(&clock);
    }
    clock.advance(us(999));
    assert_eq!(board.fired(), vec![3]);
    clock.advance(us(1));
    assert_eq!(board.fired(), vec![3, 1, 4], "ties fire in arming order");
    clock.advance(us(499));
    assert_eq!(board.fired(), vec![3, 1, 4]);
    clock.advance(us(1));
    assert_eq!(board.fired(), vec![3, 1, 4, 0], "1.5 ms fires at 1.5 ms");
    clock.advance(us(1499));
    assert_eq!(board.fired().len(), 4, "never early");
    clock.advance(us(1));
    assert_eq!(board.fired(), vec![3, 1, 4, 0, 2]);
    for p in &probes {
        assert_eq!((p.fires(), p.releases()), (1, 1));
        assert!(!p.disarm(&clock), "disarm after fire is too late");
    }
}

#[test]
fn one_big_advance_fires_everything_in_order() {
    let clock = Clock::manual();
    let board = Board::new();
    let t0 = clock.now();
    let offs = [7u64, 1 << 36, 0, 64, 4095, (1 << 36) + 1, 4096, 63, 1];
    let probes: Vec<_> = offs
        .iter()
        .enumerate()
        .map(|(id, &ms)| ProbeRef::new(&board, id, t0 + Duration::from_millis(ms)))
        .collect();
    for p in &probes {
        p.arm(&clock);
    }
    clock.advance(Duration::from_millis((1 << 36) + 1));
    let mut want: Vec<usize> = (0..offs.len()).collect();
    want.sort_by_key(|&i| offs[i]);
    assert_eq!(board.fired(), want);
}

#[test]
fn disarm_beats_fire_and_releases() {
    let clock = Clock::manual();
    let board = Board::new();
    let t0 = clock.now();
    let queued = ProbeRef::new(&board, 0, t0 + us(10));
    let filed = ProbeRef::new(&board, 1, t0 + us(2000));
    queued.arm(&clock);
    filed.arm(&clock);
    clock.advance(us(5)); // files both
    let late = ProbeRef::new(&board, 2, t0 + us(10));
    late.arm(&clock); // still on the inbox
    assert!(late.disarm(&clock), "cancelled before the owner saw it");
    assert!(filed.disarm(&clock));
    assert!(!filed.disarm(&clock), "second disarm reports false");
    clock.advance(Duration::from_secs(1));
    assert_eq!(board.fired(), vec![0]);
    assert_eq!(
        (late.fires(), late.releases()),
        (0, 1),
        "never filed (tokio #8252)"
    );
    assert_eq!((filed.fires(), filed.releases()), (0, 1));
    assert_eq!(clock.core().filed(), 0);
}

#[test]
fn disarm_before_arm_releases_at_arm() {
    let clock = Clock::manual();
    let board = Board::new();
    let p = ProbeRef::new(&board, 0, clock.now());
    assert!(p.disarm(&clock));
    p.arm(&clock);
    assert_eq!(p.releases(), 1);
    clock.advance(us(1));
    assert_eq!(p.fires(), 0);
}

#[test]
fn panicking_hook_does_not_stop_the_rest() {
    let clock = Clock::manual();
    let board = Board::new();
    let t0 = clock.now();
    let a = ProbeRef::new(&board, 0, t0 + us(1));
    let boom = ProbeRef::with_hook(&board, 1, t0 + us(2), Some(Box::new(|| panic!("first"))));
    let boom2 = ProbeRef::with_hook(&board, 2, t0 + us(3), Some(Box::new(|| panic!("second"))));
    let c = ProbeRef::new(&board, 3, t0 + us(4));
    for p in [&a, &boom, &boom2, &c] {
        p.arm(&clock);
    }
    let err = std::panic::catch_unwind(|| clock.advance(us(10))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"first"));
    assert_eq!(board.fired(), vec![0, 1, 2, 3]);
    assert_eq!(board.released.load(Ordering::SeqCst), 4);
    // The clock still works.
    let d = ProbeRef::new(&board, 4, clock.now() + us(1));
    d.arm(&clock);
    clock.advance(us(1));
    assert_eq!(d.fires(), 1);
}

#[test]
fn hooks_may_reenter_the_clock() {
    let clock = Clock::manual();
    let board = Board::new();
    let t0 = clock.now();
    let victim = Arc::new(ProbeRef::new(&board, 2, t0 + us(30)));
    let spawned: Arc<Mutex<Vec<ProbeRef>>> = Arc::default();
    let hook = {
        let (clock, board, victim, spawned) = (
            clock.clone(),
            board.clone(),
            victim.clone(),
            spawned.clone(),
        );
        move || {
            // Arm a new, already due timer; disarm another; advance again.
            let p = ProbeRef::new(&board, 1, clock.now());
            p.arm(&clock);
            spawned.lock().unwrap().push(p);
            assert!(victim.disarm(&clock));
            clock.advance(Duration::ZERO);
        }
    };
    let first = ProbeRef::with_hook(&board, 0, t0 + us(10), Some(Box::new(hook)));
    first.arm(&clock);
    victim.arm(&clock);
    clock.advance(us(100));
    assert_eq!(board.fired(), vec![0, 1]);
    assert_eq!(victim.releases(), 1);
    drop(spawned.lock().unwrap().drain(..));
}

#[test]
fn no_panic_on_extreme_inputs() {
    let clock = Clock::manual();
    let board = Board::new();
    let now = clock.now();
    let far = now
        .checked_add(Duration::from_secs(u64::MAX / 2))
        .or_else(|| now.checked_add(Duration::from_secs(1 << 40)))
        .unwrap_or(now);
    let past = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
    let p_far = ProbeRef::new(&board, 0, far);
    let p_past = ProbeRef::new(&board, 1, past);
    p_far.arm(&clock);
    p_past.arm(&clock);
    clock.advance(Duration::ZERO);
    assert_eq!(
        board.fired(),
        vec![1],
        "a past deadline fires at the next advance"
    );
    clock.advance(Duration::MAX);
    clock.advance(Duration::MAX);
    let _ = clock.now();
    assert!(p_far.fires() <= 1);
    if p_far.fires() == 1 {
        assert!(clock.now() >= far, "never early");
    }
    assert!(p_far.disarm(&clock) || p_far.fires() == 1);
    Clock::system().advance(Duration::MAX);
}

#[test]
fn concurrent_arm_disarm_and_advance() {
    let per_thread = crate::scaled("arm/disarm pairs per thread", 5000, 100);
    let clock = Clock::manual();
    let board = Board::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let advancer = {
        let (clock, stop) = (clock.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                clock.advance(us(50));
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (clock, board) = (clock.clone(), board.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..per_thread {
                    let p = ProbeRef::new(&board, t * 10_000 + i, clock.now() + us(i as u64 % 200));
                    p.arm(&clock);
                    if i % 3 != 0 {
                        let won = p.disarm(&clock);
                        outcomes.push((p, won));
                    } else {
                        outcomes.push((p, false));
                    }
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    advancer.join().unwrap();
    clock.advance(Duration::from_secs(1));
    for (p, won) in &outcomes {
        assert_eq!(p.releases(), 1, "released exactly once");
        assert_eq!(p.fires(), usize::from(!won), "fired iff disarm lost");
    }
    drop(outcomes);
    assert_eq!(board.live.load(Ordering::SeqCst), 0);
}

// ---- system clock: only "not early" and "eventually" ----

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn system_fires_not_early_and_eventually() {
    let clock = Clock::system();
    let board = Board::new();
    let now = clock.now();
    let probes: Vec<_> = [0u64, 3, 20, 50, 1]
        .iter()
        .enumerate()
        .map(|(id, &ms)| ProbeRef::new(&board, id, now + Duration::from_millis(ms)))
        .collect();
    for p in &probes {
        p.arm(&clock);
    }
    eventually("all fired", || probes.iter().all(|p| p.releases() == 1));
    for p in &probes {
        assert_eq!(p.fires(), 1);
        assert!(p.fired_at().unwrap() >= p.deadline(), "fired early");
    }
}

#[test]
fn system_disarm_prevents_fire_and_driver_survives_panics() {
    let clock = Clock::system();
    let board = Board::new();
    let now = clock.now();
    let boom = ProbeRef::with_hook(&board, 0, now, Some(Box::new(|| panic!("hook panic"))));
    let cancelled = ProbeRef::new(&board, 1, now + Duration::from_millis(30));
    boom.arm(&clock);
    cancelled.arm(&clock);
    assert!(cancelled.disarm(&clock));
    eventually("the panicking hook ran", || boom.releases() == 1);
    let after = ProbeRef::new(&board, 2, clock.now() + Duration::from_millis(5));
    after.arm(&clock);
    eventually("a later timer fired", || after.fires() == 1);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(cancelled.fires(), 0);
}
