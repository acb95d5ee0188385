//! Loom models of the sharded inbox (`RUSTFLAGS="--cfg gocontext_loom
//! --cfg crossbeam_loom" cargo test --lib --release loom_models`): the
//! driver's sleep/wake handshake across shards, and a disarming thread's
//! sweep of its own shard against an owner that must see every entry armed
//! before it began. Under loom a thread's shard is the order of its first
//! arm or disarm in the execution (0, 1, ...). `LOOM_MAX_PREEMPTIONS` sets
//! the bound (default 3), as for every harness.

use std::ptr::NonNull;
use std::time::Instant;

use super::super::entry::{TimerEntry, TimerHooks};
use super::super::watch::Watch;
use super::{Graveyard, Inbox};
use crate::sync::{model, Arc, AtomicBool, Ordering};

/// Hooks that do nothing: the model owns the entries' memory.
static HOOKS: TimerHooks = TimerHooks {
    fire: noop,
    release: noop,
};

/// SAFETY (of the contract): touches nothing.
unsafe fn noop(_: NonNull<TimerEntry>) {}

/// An entry the model frees itself, at the end.
struct Owned(NonNull<TimerEntry>);

// SAFETY: the entry is `Send + Sync`; the pointer is only a handle to it.
unsafe impl Send for Owned {}
// SAFETY: as above.
unsafe impl Sync for Owned {}

impl Owned {
    /// A new entry, `QUEUED` (armed but not yet pushed).
    fn armed() -> Owned {
        let e = Box::new(TimerEntry::new(Instant::now(), &HOOKS));
        assert!(e.begin_arm());
        Owned(NonNull::from(Box::leak(e)))
    }

    /// Pushes it onto the calling thread's shard.
    fn push(&self, inbox: &Inbox) {
        // SAFETY: live until `drop`, QUEUED and on no inbox, `queue_next` ours.
        unsafe { inbox.push(self.0) };
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: from `Box::leak` in `armed`; every model joins its threads
        // and empties the inbox first, so nothing else refers to it.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Driver invariant 4 across shards: the driver stores its sleep target
/// ("indefinitely") and then checks every shard; an arm on another shard
/// pushes and then loads the target. Never both "the driver sleeps" and
/// "the arm saw it awake" (then the arm would not ring, and the entry
/// would wait for a wake-up that never comes).
#[test]
fn arm_on_another_shard_vs_driver_sleep() {
    model(|| {
        let inbox = Arc::new(Inbox::new(2));
        // The driver's thread takes shard 0, so the arm pushes onto shard 1.
        let _ = inbox.count_cancel(false);
        let watch = Arc::new(Watch::new(10));
        let entry = Arc::new(Owned::armed());
        let arm = {
            let (inbox, watch, entry) = (inbox.clone(), watch.clone(), entry.clone());
            loom::thread::spawn(move || {
                entry.push(&inbox);
                // The arm rings iff its deadline (offset 5) is earlier.
                5 < watch.sleep_target()
            })
        };
        let _ = watch.driver_publishes(u64::MAX, u64::MAX);
        let sleeps = inbox.is_empty();
        let rings = arm.join().unwrap();
        assert!(!sleeps || rings, "lost wake-up: the driver sleeps, unrung");
        assert_eq!(inbox.take_all().count(), 1);
    });
}

/// A sweep races an owner that must see every entry armed before it began
/// (a manual clock's `advance`, `next_deadline`): the sweeping thread arms
/// `live`, says so, then withdraws `dead` and sweeps its shard (releasing
/// `dead`, putting `live` back). An owner that saw the signal finds `live`
/// with its mark-take-recheck loop, and `dead` is released exactly once.
#[test]
fn sweep_vs_owner_that_must_see_every_arm() {
    model(|| {
        let inbox = Arc::new(Inbox::new(2));
        let armed = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Owned::armed());
        let dead = Arc::new(Owned::armed());
        let sweeper = {
            let (inbox, armed) = (inbox.clone(), armed.clone());
            let (live, dead) = (live.clone(), dead.clone());
            loom::thread::spawn(move || {
                live.push(&inbox);
                dead.push(&inbox);
                armed.store(true, Ordering::Release);
                // SAFETY: live until the model ends.
                assert!(unsafe { dead.0.as_ref() }.cancel().is_some());
                let mut graves = Graveyard::default();
                let swept = inbox.sweep_mine(&mut graves);
                drop(graves);
                swept.released
            })
        };
        // The owner.
        let saw_arm = armed.load(Ordering::Acquire);
        let mut found_live = false;
        let mut taken_dead = 0;
        loop {
            let mark = inbox.sweep_mark();
            for e in inbox.take_all() {
                found_live |= e == live.0;
                taken_dead += usize::from(e == dead.0);
            }
            if !inbox.sweeps_moved(mark) {
                break;
            }
        }
        assert!(
            found_live || !saw_arm,
            "an entry armed before the owner began was missed"
        );
        let released = sweeper.join().unwrap();
        // Whatever is left (the sweeper's push back, after the owner ended).
        for e in inbox.take_all() {
            found_live |= e == live.0;
            taken_dead += usize::from(e == dead.0);
        }
        assert!(found_live);
        assert_eq!(
            released + taken_dead,
            1,
            "the withdrawn entry, exactly once"
        );
    });
}
