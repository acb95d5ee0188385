//! A manual clock's time: virtual, moved only by `advance`, which then runs
//! the clock's timer engine on the calling thread.
//!
//! Time is nanoseconds since the clock's origin (the real `Instant::now()`
//! at creation) in an `AtomicU64`, capped at the largest offset the
//! platform's `Instant` can represent, so `advance(Duration::MAX)`
//! saturates instead of panicking. That cap is also the latest deadline
//! the clock can reach (`cap`).

use std::time::{Duration, Instant};

use super::core::TimerCore;
use crate::sync::{AtomicU64, Ordering};

/// A manual clock's inbox shards: one, so that its deadlines armed with
/// equal instants fire in the order they were armed, whatever the thread
/// (a manual clock is for tests, not for throughput). Its disarms do not
/// sweep (they collect in full), so its `advance` needs no sweep marks and
/// its loom models keep their size; the sharded inbox and the sweep have
/// models of their own (`time/inbox/loom_models.rs`).
const MANUAL_SHARDS: usize = 1;

/// Shared state of one manual clock.
#[derive(Debug)]
pub(crate) struct ManualClock {
    core: TimerCore,
    /// Virtual nanoseconds since `core.origin()`.
    nanos: AtomicU64,
    /// The largest `nanos` for which `origin + nanos` is an `Instant`.
    max_nanos: u64,
}

impl ManualClock {
    /// A clock whose time starts at `origin`.
    pub(crate) fn new(origin: Instant) -> ManualClock {
        ManualClock {
            core: TimerCore::new(origin, MANUAL_SHARDS, false),
            nanos: AtomicU64::new(0),
            max_nanos: max_offset(origin),
        }
    }

    /// The timer engine of this clock.
    pub(crate) fn core(&self) -> &TimerCore {
        &self.core
    }

    /// Virtual time since the origin, for `Debug`.
    pub(crate) fn elapsed(&self) -> Duration {
        // Relaxed: a diagnostic read.
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// The clock's current time.
    pub(crate) fn now(&self) -> Instant {
        // Acquire: pairs with `advance`'s Release (time read after a fire
        // that an observer synchronised with is at least that deadline).
        let nanos = self.nanos.load(Ordering::Acquire);
        self.at(nanos)
    }

    /// The latest time this clock can reach (its cap): a deadline past it
    /// could never fire.
    pub(crate) fn cap(&self) -> Instant {
        self.at(self.max_nanos)
    }

    fn at(&self, nanos: u64) -> Instant {
        let origin = self.core.origin();
        // `max_nanos` guarantees the addition fits.
        origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(origin)
    }

    /// Moves time forward by `d` and fires what is due (see `Clock::advance`).
    pub(crate) fn advance(&self, d: Duration) {
        let step = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: only the seed of the CAS loop.
        let mut cur = self.nanos.load(Ordering::Relaxed);
        let new = loop {
            let new = cur.saturating_add(step).min(self.max_nanos);
            // AcqRel: time is monotonic across concurrent advances; Release
            // publishes it to `now` (see there).
            match self
                .nanos
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break new,
                Err(actual) => cur = actual,
            }
        };
        self.fire_until(new);
    }

    /// Moves time to `t` unless it is there already; fires what is due and
    /// returns the new time (see `Clock::advance_to_next`).
    pub(crate) fn advance_to(&self, t: Instant) -> Instant {
        let nanos = t.saturating_duration_since(self.core.origin()).as_nanos();
        let target = u64::try_from(nanos).map_or(self.max_nanos, |n| n.min(self.max_nanos));
        // AcqRel: as in `advance` (monotonic, published to `now`).
        let new = self.nanos.fetch_max(target, Ordering::AcqRel).max(target);
        self.fire_until(new);
        self.at(new)
    }

    /// Fires every deadline due at `nanos`, then resumes the first panic.
    fn fire_until(&self, nanos: u64) {
        let (_, panic) = self.core.run_settled(self.at(nanos));
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }
}

/// The largest offset (ns) that `origin` can be moved by, up to `u64::MAX`.
fn max_offset(origin: Instant) -> u64 {
    let mut n = u64::MAX;
    while n > 0 && origin.checked_add(Duration::from_nanos(n)).is_none() {
        n /= 2;
    }
    n
}
