//! The system clock's driver: one background thread that owns the system
//! clock's wheel and sleeps until the next expiry.
//!
//! # Invariants
//!
//! 1. The thread starts on the first `arm` and never exits. With nothing
//!    armed it parks without a timeout: no periodic wake-ups.
//! 2. `sleep_until` is `AWAKE` while the thread works, else the offset (ns
//!    from the origin) it sleeps until, `u64::MAX` for "indefinitely".
//! 3. No lost wake-up: the driver stores its target, then checks the inbox;
//!    `arm` pushes, then loads the target; all four are SeqCst, so either the
//!    driver sees the new entry (and does not sleep) or `arm` sees the target
//!    (and unparks if the new deadline is earlier). An arm with a later
//!    deadline does not wake it: the driver files the entry when it next
//!    wakes, which is no later than that deadline. A disarming thread that
//!    collects (empties the inbox itself, `Clock::collect`) may file an entry
//!    the driver has not seen; it then unparks the driver unconditionally
//!    (the park token makes that safe even before the driver parks).
//! 4. Hooks run with no lock held and their panics are caught (`TimerCore::run`),
//!    so a panicking callback cannot stop the thread or the other deadlines.
//! 5. After a round that had work, an idle driver *lingers*: it sleeps with a
//!    finite target (`LINGER` from now) instead of indefinitely, so arms of
//!    deadlines later than that target need not wake it (by invariant 3 it
//!    files them when the linger ends, before their deadline). Without this,
//!    a create/cancel loop of long timeouts would pay a futex wake per arm
//!    (`docs/benchmarks.md`, "History"). A driver with nothing armed and no
//!    recent work still parks indefinitely: one extra wake-up after
//!    activity, then none.
//!
//! This module uses `std::thread` and `std::sync::OnceLock` directly: the
//! process-wide static and a real thread have no loom model, and loom models
//! drive manual clocks only. Arming a system-clock timer under `cfg(loom)`
//! is not supported.

use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Instant;

use super::core::TimerCore;
use super::entry::TimerEntry;
use crate::sync::{AtomicU64, Ordering};

/// `sleep_until` while the driver is running (invariant 2).
const AWAKE: u64 = 0;

/// How long an idle driver keeps a finite sleep target (invariant 5).
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// The system clock's state: its timer engine and driver thread.
#[derive(Debug)]
pub(crate) struct Driver {
    core: TimerCore,
    /// See invariant 2.
    sleep_until: AtomicU64,
    /// The driver thread, once started (invariant 1).
    thread: OnceLock<std::thread::Thread>,
}

/// The process-wide system clock, created on first use.
pub(crate) fn system() -> &'static Driver {
    static SYSTEM: OnceLock<Driver> = OnceLock::new();
    SYSTEM.get_or_init(|| Driver {
        core: TimerCore::new(Instant::now()),
        sleep_until: AtomicU64::new(AWAKE),
        thread: OnceLock::new(),
    })
}

impl Driver {
    /// The system clock's timer engine.
    pub(crate) fn core(&self) -> &TimerCore {
        &self.core
    }

    /// `Clock::arm` for the system clock.
    ///
    /// # Safety
    /// As `TimerCore::arm`.
    pub(crate) unsafe fn arm(&'static self, entry: NonNull<TimerEntry>) {
        // SAFETY: the caller's promise is `TimerCore::arm`'s.
        if !unsafe { self.core.arm(entry) } {
            return;
        }
        // SAFETY: still live: the clock's reference is held until release.
        let deadline = unsafe { entry.as_ref() }.deadline();
        let thread = self.thread.get_or_init(|| self.spawn());
        // SeqCst: invariant 3.
        if self.offset(deadline) < self.sleep_until.load(Ordering::SeqCst) {
            thread.unpark();
        }
    }

    /// Unparks the driver: it empties the inbox and recomputes its sleep.
    pub(crate) fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// Nanoseconds from the origin to `t`, saturating, at least 1 (so that no
    /// deadline compares below `AWAKE`'s meaning).
    fn offset(&self, t: Instant) -> u64 {
        let nanos = t.saturating_duration_since(self.core.origin()).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }

    fn spawn(&'static self) -> std::thread::Thread {
        // A process that cannot start one thread cannot keep time at all;
        // this is the only panic on the timer path (resource exhaustion).
        std::thread::Builder::new()
            .name("gocontext-timer".into())
            .spawn(move || self.run())
            .expect("gocontext: cannot start the timer driver thread")
            .thread()
            .clone()
    }

    /// The driver loop (invariants 1-5).
    fn run(&self) {
        loop {
            let had_work = !self.core.inbox_is_empty();
            let (next, panic) = self.core.run(Instant::now());
            // Dropping a payload runs user code too; keep it contained.
            crate::unwind::discard(panic);
            // Invariant 5: linger with a finite target after activity.
            let wake_at = next.or_else(|| {
                had_work
                    .then(|| Instant::now().checked_add(LINGER))
                    .flatten()
            });
            let target = wake_at.map_or(u64::MAX, |t| self.offset(t));
            // SeqCst store, then SeqCst inbox check: invariant 3.
            self.sleep_until.store(target, Ordering::SeqCst);
            if self.core.inbox_is_empty() {
                sleep(wake_at);
            }
            self.sleep_until.store(AWAKE, Ordering::SeqCst);
        }
    }
}

/// Parks until `until` (or indefinitely); spurious wake-ups are fine, the
/// loop re-checks everything.
fn sleep(until: Option<Instant>) {
    match until {
        None => std::thread::park(),
        Some(t) => {
            let now = Instant::now();
            if t > now {
                std::thread::park_timeout(t - now);
            }
        }
    }
}
