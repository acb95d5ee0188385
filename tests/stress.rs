//! Stress: memory stays flat under churn of short-lived children, and a
//! create/cancel storm on four threads agrees with a concurrent parent
//! cancel. (`GOCONTEXT_STRESS_CHILDREN` overrides the 2,000,000 children.)

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{settle, Counting};
#[path = "support/miri.rs"]
mod miri;
use gocontext::{Cause, Clock, Error};
use miri::scaled;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests share one allocator counter: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug)]
struct Tag(u64);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

impl std::error::Error for Tag {}

/// 2M short-lived children of one long-lived parent, in batches of 100k,
/// with a sliding window of 1000 live ones: live bytes at the end of every
/// batch stay under the first batch's plus a fixed slack (they do not grow
/// with the number of children ever made).
#[test]
fn two_million_children_flat_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let total: usize = std::env::var("GOCONTEXT_STRESS_CHILDREN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| scaled("children", 2_000_000, 4_000));
    let batch = scaled("batch", 100_000, 1_000);
    // The window fills within the first batch, so later batches add nothing.
    let window_len = batch / 100;
    let root = Clock::manual().background();
    let (parent, parent_h) = root.with_cancel();
    let mut window = std::collections::VecDeque::new();
    let mut ends = vec![];
    for b in 0..total.div_ceil(batch) {
        for i in 0..batch {
            let (c, h) = parent.with_cancel();
            match i % 4 {
                0 => drop((c, h)), // cancels, then unlinks
                1 => {
                    h.detach(); // unlinks without cancelling
                    drop(c);
                }
                2 => {
                    drop(c); // handle last
                    h.cancel();
                }
                _ => window.push_back((c, h)),
            }
            if window.len() > window_len {
                window.pop_front();
            }
        }
        let now = settle(isize::MIN);
        eprintln!("stress: batch {b:>2}: {now} live bytes");
        ends.push(now);
    }
    let first = ends[0];
    // A live child costs well under 1 KiB; 1000 are live; the slack covers
    // the epoch's queued garbage, not per-child growth.
    const SLACK: isize = 256 * 1024;
    for (b, &e) in ends.iter().enumerate() {
        assert!(
            e <= first + SLACK,
            "batch {b}: {e} live bytes, first batch {first}: memory grows with dead children"
        );
    }
    assert!(parent.err().is_none());
    parent_h.cancel();
    assert!(window.iter().all(|(c, _)| c.err() == Some(Error::Canceled)));
}

/// Four threads create children of one parent (cancelling some themselves
/// with their own causes) while the main thread cancels the parent: every
/// child ends done, with the parent's cause or its own, and its callback ran
/// exactly once. Repeated over many parents to hit the window.
#[test]
fn create_cancel_storm_vs_parent_cancel() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Clock::manual().background();
    // The most children one storm thread creates per round.
    let storm_max = scaled("storm children per thread", 2_000, 200) as u64;
    for round in 0..scaled("storm rounds", 200, 4) as u64 {
        let (parent, ph) = root.with_cancel();
        let why = Cause::from(Tag(round));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(5));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (parent, stop, start) = (parent.clone(), stop.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut kids = vec![];
                    let mut i = 0u64;
                    // At least 50 children, and a bounded storm: under a
                    // serialising scheduler (valgrind) the canceller may not
                    // run for a long time.
                    while i < 50 || (!stop.load(SeqCst) && i < storm_max) {
                        let (c, h) = parent.with_cancel();
                        let ran = Arc::new(AtomicUsize::new(0));
                        let r = ran.clone();
                        drop(c.after_func(move || {
                            r.fetch_add(1, SeqCst);
                        }));
                        let own = (i % 3 == 0).then(|| {
                            let own = Cause::from(Tag(1_000_000 + t * 100_000 + i));
                            h.cancel_with_cause(own.clone());
                            own
                        });
                        if i % 5 == 0 {
                            drop(h); // cancels with the default cause if not done
                            kids.push((c, None, own, ran));
                        } else {
                            kids.push((c, Some(h), own, ran));
                        }
                        i += 1;
                    }
                    kids
                })
            })
            .collect();
        start.wait();
        std::thread::yield_now();
        ph.cancel_with_cause(why.clone());
        stop.store(true, SeqCst);
        for t in threads {
            for (c, h, own, ran) in t.join().unwrap() {
                assert_eq!(c.err(), Some(Error::Canceled), "child not done after storm");
                let got = c.cause().unwrap();
                let ok = got.ptr_eq(&why)
                    || own.as_ref().is_some_and(|o| got.ptr_eq(o))
                    || (h.is_none() && got.downcast_ref::<Error>() == Some(&Error::Canceled));
                assert!(ok, "child cause {got} is neither the parent's nor its own");
                assert_eq!(
                    ran.load(SeqCst),
                    1,
                    "callback ran {} times",
                    ran.load(SeqCst)
                );
                drop(h);
            }
        }
        assert!(parent.cause().unwrap().ptr_eq(&why));
    }
}
