//! Loom models of the entry state machine against a manual clock's owner
//! (`RUSTFLAGS="--cfg gocontext_loom --cfg crossbeam_loom" cargo test --lib
//! --release loom_models`). Two threads each, so they run at any preemption
//! bound quickly. `LOOM_MAX_PREEMPTIONS` sets the bound (default 3), as it
//! does for `loom-tests/`.

use std::time::Duration;

use super::probe::{Board, ProbeRef};
use crate::clock::Clock;

use crate::sync::model;

/// Disarm races the owner's filing + fire of a due entry: exactly one of
/// "fired" and "disarm returned true", and exactly one release.
#[test]
fn disarm_races_fire() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let p = ProbeRef::new(&board, 0, clock.now());
        p.arm(&clock);
        let owner = {
            let clock = clock.clone();
            loom::thread::spawn(move || clock.advance(Duration::from_millis(1)))
        };
        let won = p.disarm(&clock);
        owner.join().unwrap();
        clock.advance(Duration::ZERO); // take a late cancel push
        assert_eq!(p.fires() + usize::from(won), 1);
        assert_eq!(p.releases(), 1);
    });
}

/// Disarm races the owner's first sight of the entry (QUEUED vs FILED): a
/// cancelled entry is never fired, released once, and nothing stays filed.
#[test]
fn disarm_races_filing() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let p = ProbeRef::new(&board, 0, clock.now() + Duration::from_millis(5));
        p.arm(&clock);
        let owner = {
            let clock = clock.clone();
            loom::thread::spawn(move || clock.advance(Duration::ZERO))
        };
        assert!(p.disarm(&clock));
        owner.join().unwrap();
        clock.advance(Duration::from_millis(10));
        assert_eq!((p.fires(), p.releases()), (0, 1));
        assert_eq!(clock.core().filed(), 0);
    });
}

/// Arm races an advance that makes it due: it fires exactly once, by the
/// end of the second advance at the latest.
#[test]
fn arm_races_advance() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let p = ProbeRef::new(&board, 0, clock.now());
        let owner = {
            let clock = clock.clone();
            loom::thread::spawn(move || clock.advance(Duration::ZERO))
        };
        p.arm(&clock);
        owner.join().unwrap();
        clock.advance(Duration::ZERO);
        assert_eq!((p.fires(), p.releases()), (1, 1));
    });
}

/// Two disarms (each a collector under loom) race an advance that fires
/// one of the entries: every entry is released exactly once, fires at most
/// once, and never after a disarm that returned true.
#[test]
fn collectors_race_the_owner() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let a = ProbeRef::new(&board, 0, clock.now());
        let b = ProbeRef::new(&board, 1, clock.now() + Duration::from_millis(5));
        a.arm(&clock);
        b.arm(&clock);
        let other = {
            let clock = clock.clone();
            loom::thread::spawn(move || {
                let won = b.disarm(&clock);
                (b, won)
            })
        };
        clock.advance(Duration::from_millis(1));
        let won_a = a.disarm(&clock);
        let (b, won_b) = other.join().unwrap();
        clock.advance(Duration::from_millis(10));
        assert!(won_b);
        assert_eq!((b.fires(), b.releases()), (0, 1));
        assert_eq!(a.fires() + usize::from(won_a), 1);
        assert_eq!(a.releases(), 1);
    });
}

/// A disarm of a filed entry races an advance that owns the wheel, and no
/// advance comes after: the entry is still released (a collector that
/// finds the wheel taken leaves its push to the owner, which empties the inbox again
/// after unlocking). Without that hand-off the push stayed queued and the
/// node and its clock kept each other alive (fuzz `threads`, LSan).
#[test]
fn disarm_during_advance_is_collected_without_another_advance() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let p = ProbeRef::new(&board, 0, clock.now() + Duration::from_millis(5));
        p.arm(&clock);
        clock.advance(Duration::ZERO); // files it
                                       // A second arm gives the owner an atomic step (filing it) between
                                       // taking the inbox and unlocking: the window a real owner has.
        let q = ProbeRef::new(&board, 1, clock.now() + Duration::from_millis(5));
        q.arm(&clock);
        let owner = {
            let clock = clock.clone();
            loom::thread::spawn(move || clock.advance(Duration::ZERO))
        };
        eprintln!("START");
        assert!(p.disarm(&clock));
        owner.join().unwrap();
        eprintln!("END {}", p.releases());
        assert_eq!((p.fires(), p.releases()), (0, 1));
        assert!(q.disarm(&clock));
        assert_eq!((q.fires(), q.releases()), (0, 1));
    });
}

/// Two collectors race each other with no advance at all: both entries
/// are released by the time both disarms have returned.
#[test]
fn collectors_race_each_other() {
    model(|| {
        let clock = Clock::manual();
        let board = Board::new();
        let later = clock.now() + Duration::from_millis(5);
        let a = ProbeRef::new(&board, 0, later);
        let b = ProbeRef::new(&board, 1, later);
        a.arm(&clock);
        b.arm(&clock);
        clock.advance(Duration::ZERO); // files both
                                       // Queued, so that a collector holding the wheel has an atomic step
                                       // (filing it) between taking the inbox and unlocking.
        let c = ProbeRef::new(&board, 2, later);
        c.arm(&clock);
        let other = {
            let clock = clock.clone();
            loom::thread::spawn(move || {
                assert!(b.disarm(&clock));
                b
            })
        };
        assert!(a.disarm(&clock));
        let b = other.join().unwrap();
        assert_eq!((a.releases(), b.releases()), (1, 1));
        assert_eq!(c.releases(), 0);
    });
}
