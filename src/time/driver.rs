//! The system clock's driver: the background threads that own the system
//! clock's wheel, sleep until the next expiry, and fire deadlines, such that
//! no deadline waits on another deadline's user code.
//!
//! # Roles
//!
//! The *driver* sleeps until the next expiry, runs rounds and fires due
//! deadlines inline (no hand-off on the common path). The *standby* watches
//! it: if the driver has been inside user code (a `fire` hook runs the
//! subtree's callbacks and wakers, a release may drop user values) for
//! longer than `OVERRUN` in one round, the standby takes the driver role
//! (`watch.rs`) and drives from then on. The old driver finishes its slow
//! call, sees that it lost the role, and becomes the standby if that role is
//! free, or exits. A taking standby first spawns a new standby, so a second
//! slow call is rescued too.
//!
//! # Invariants
//!
//! 1. The first `arm` starts two threads, the driver and the standby; that
//!    pair lives for the rest of the process. With nothing armed both park
//!    without a timeout: no periodic wake-ups.
//! 2. At most `MAX_THREADS` timer threads live at once: the driver, the
//!    standby, and old drivers still inside a slow call (`threads` counts
//!    them; a takeover spawns a new standby only below the bound). A
//!    returning old driver that finds the standby role held exits at once,
//!    so extra threads never idle.
//! 3. `sleep_until` is `AWAKE` while the driver works, else the offset (ns
//!    from the origin) it sleeps until, `u64::MAX` for "indefinitely". Only
//!    the driver stores it; a takeover orders the old driver's last store
//!    before the new driver's first (`watch.rs`: Release enter, Acquire take).
//! 4. No lost wake-up: the driver stores its target, then checks the inbox;
//!    `arm` pushes, then loads the target; all four are SeqCst, so either the
//!    driver sees the new entry (and does not sleep) or `arm` sees the target
//!    (and rings the driver's doorbell if the new deadline is earlier). The
//!    new driver sets the doorbell before it first stores a target, so an arm
//!    that sees that target rings the right thread. An arm with a later
//!    deadline does not wake it: the driver files the entry when it next
//!    wakes, which is no later than that deadline. A disarming thread that
//!    collects (empties the inbox itself, `Clock::collect`) may file an entry
//!    the driver has not seen; it then rings the driver unconditionally
//!    (the park token makes that safe even before the driver parks).
//! 5. No lost watch: the standby stores the time it will look again
//!    (`standby_until`) and then re-reads `sleep_until`; the driver stores
//!    `sleep_until` (a target, or `AWAKE` on waking) and then loads
//!    `standby_until`, ringing the standby if its own next work plus
//!    `OVERRUN` comes earlier. All SeqCst: one of them sees the other
//!    (`watch.rs` invariant 5, modelled in loom).
//! 6. Hooks run with no lock held and their panics are caught
//!    (`TimerCore::run_watched`), on whichever thread drives, so a panicking
//!    callback cannot stop a thread or the other deadlines.
//! 7. After a round that had work, an idle driver *lingers*: it sleeps with a
//!    finite target (`LINGER` from now) instead of indefinitely, so arms of
//!    deadlines later than that target need not wake it (by invariant 4 it
//!    files them when the linger ends, before their deadline). Without this,
//!    a create/cancel loop of long timeouts would pay a futex wake per arm
//!    (`docs/benchmarks.md`, "History"). A driver with nothing armed and no
//!    recent work still parks indefinitely: one extra wake-up after
//!    activity, then none.
//!
//! This module uses `std::thread` and `std::sync::OnceLock` directly: the
//! process-wide static and real threads have no loom model, and loom models
//! drive manual clocks only (the role hand-off and the time handshake live
//! in `watch.rs` and are modelled on their own, `watch/loom_models.rs`). Arming a system-clock timer under `cfg(loom)` is
//! not supported.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::core::{Ran, TimerCore, Watcher};
use super::doorbell::Doorbell;
use super::entry::TimerEntry;
use super::watch::{Busy, Role, Watch, AWAKE};
use crate::sync::{shards_for_cpus, AtomicUsize, Ordering};

/// How long an idle driver keeps a finite sleep target (invariant 7).
const LINGER: Duration = Duration::from_millis(50);

/// How long the driver may stay in user code within one round before the
/// standby takes over (the lateness bound's main term).
pub(crate) const OVERRUN: Duration = Duration::from_micros(500);

/// The most timer threads alive at once (invariant 2): the driver, the
/// standby, and up to six old drivers each finishing one slow call.
pub(crate) const MAX_THREADS: usize = 8;

const OVERRUN_NS: u64 = OVERRUN.as_nanos() as u64;

/// The system clock's state: its timer engine and timer threads.
#[derive(Debug)]
pub(crate) struct Driver {
    core: TimerCore,
    /// The driver role's generation and user-code word, the standby flag,
    /// and the two times of invariants 3-5 (`sleep_until`, `standby_until`).
    watch: Watch,
    /// The thread holding the driver role: arms and collectors ring it.
    driver: Doorbell,
    /// The thread holding the standby role: the driver rings it.
    standby: Doorbell,
    /// Live timer threads (invariant 2).
    threads: AtomicUsize,
    /// Set once the first two threads are started (invariant 1).
    started: OnceLock<()>,
}

/// The process-wide system clock, created on first use.
pub(crate) fn system() -> &'static Driver {
    static SYSTEM: OnceLock<Driver> = OnceLock::new();
    SYSTEM.get_or_init(|| Driver {
        core: TimerCore::new(Instant::now(), shards_for_cpus(), true),
        watch: Watch::new(OVERRUN_NS),
        driver: Doorbell::new(),
        standby: Doorbell::new(),
        threads: AtomicUsize::new(0),
        started: OnceLock::new(),
    })
}

thread_local! {
    /// The last sleep target this thread's `arm` saw, and it as an
    /// instant (`None`: past the latest one). The target `AWAKE` is never
    /// looked up, so the initial entry never matches.
    static TARGET: Cell<(u64, Option<Instant>)> = const { Cell::new((AWAKE, None)) };
}

/// What a new timer thread starts as.
enum Start {
    Driver(Role),
    /// The standby role is already claimed for it.
    Standby,
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
    #[inline]
    pub(crate) unsafe fn arm(&'static self, entry: NonNull<TimerEntry>) {
        // SAFETY: the caller's promise is `TimerCore::arm`'s.
        if !unsafe { self.core.arm(entry) } {
            return;
        }
        // SAFETY: still live: the clock's reference is held until release.
        let deadline = unsafe { entry.as_ref() }.deadline();
        self.started.get_or_init(|| self.start());
        // Invariant 4: after the push, load the target.
        if self.before(deadline, self.watch.sleep_target()) {
            self.driver.ring();
        }
    }

    /// Whether `deadline` comes before the sleep target `target`:
    /// `offset(deadline) < target`, without converting the deadline. The
    /// target changes once per driver round, the deadline every request:
    /// each thread converts the target instead, when it changes
    /// (`TARGET`), and compares instants, a few instructions against the
    /// conversion's fifty.
    #[inline]
    fn before(&self, deadline: Instant, target: u64) -> bool {
        if target <= 1 {
            return false; // `AWAKE`, and no offset is below 1
        }
        let at = TARGET.try_with(|cached| match cached.get() {
            (t, at) if t == target => at,
            _ => {
                let at = self.core.origin().checked_add(Duration::from_nanos(target));
                cached.set((target, at));
                at
            }
        });
        match at {
            // Past the latest instant: every deadline comes before it.
            Ok(at) => at.map_or(true, |at| deadline < at),
            Err(_) => self.offset(deadline) < target, // thread exiting
        }
    }

    /// Rings the driver: it empties the inbox and recomputes its sleep.
    pub(crate) fn wake(&self) {
        self.driver.ring();
    }

    /// Nanoseconds from the origin to `t`, saturating, at least 1 (so that no
    /// deadline compares below `AWAKE`'s meaning).
    fn offset(&self, t: Instant) -> u64 {
        let nanos = t.saturating_duration_since(self.core.origin()).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }

    /// Invariant 1: the driver and the standby.
    fn start(&'static self) {
        // Relaxed: counted before either thread exists.
        self.threads.fetch_add(1, Ordering::Relaxed);
        // A process that cannot start one thread cannot keep time at all;
        // this is the only panic on the timer path (resource exhaustion).
        let driver = self
            .spawn(Start::Driver(self.watch.first_role()))
            .expect("gocontext: cannot start the timer driver thread");
        self.driver.set(driver);
        let claimed = self.watch.claim_standby();
        debug_assert!(claimed, "nobody else starts the standby");
        self.spawn_standby();
    }

    /// Starts a thread for the claimed standby role, if the bound allows;
    /// otherwise gives the role up (a returning old driver may claim it).
    fn spawn_standby(&'static self) {
        // Relaxed: a counter; the bound is all it enforces.
        let live = self.threads.fetch_add(1, Ordering::Relaxed);
        if live >= MAX_THREADS || self.spawn(Start::Standby).is_err() {
            self.threads.fetch_sub(1, Ordering::Relaxed);
            self.watch.vacate_standby();
        }
    }

    fn spawn(&'static self, start: Start) -> std::io::Result<std::thread::Thread> {
        let handle = std::thread::Builder::new()
            .name("gocontext-timer".into())
            .spawn(move || self.main(start))?;
        Ok(handle.thread().clone())
    }

    /// One timer thread: drive while it holds the role, stand by while it
    /// holds that one, exit when it holds neither (invariant 2).
    fn main(&'static self, start: Start) {
        let mut role = match start {
            Start::Driver(role) => role,
            Start::Standby => self.stand_by(),
        };
        loop {
            self.drive(role);
            // The role was taken while we ran user code.
            if !self.watch.claim_standby() {
                // Relaxed: see `spawn_standby`.
                self.threads.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            role = self.stand_by();
        }
    }

    /// The driver loop (invariants 3-7); returns once the role is taken.
    fn drive(&self, role: Role) {
        loop {
            let had_work = !self.core.inbox_is_empty();
            let now = Instant::now();
            let mut watcher = DriverWatch {
                watch: &self.watch,
                role,
                since_us: self.offset(now) / 1000,
                busy: None,
            };
            let (ran, panic) = self.core.run_watched(now, &mut watcher);
            // Dropping a payload runs user code too; keep it contained.
            crate::unwind::discard(panic);
            let Ran::Idle(next) = ran else { return };
            // Invariant 7: linger with a finite target after activity.
            let wake_at = next.or_else(|| {
                had_work
                    .then(|| Instant::now().checked_add(LINGER))
                    .flatten()
            });
            let target = wake_at.map_or(u64::MAX, |t| self.offset(t));
            // Publish the target, then check the inbox: invariant 4.
            self.publish(target, target);
            if self.core.inbox_is_empty() {
                sleep(wake_at);
            }
            self.publish(AWAKE, self.offset(Instant::now()));
        }
    }

    /// Driver: publishes `sleep_until` and rings the standby if it would
    /// look later than `OVERRUN` after the driver's next work, `work_at`
    /// (invariant 5).
    fn publish(&self, target: u64, work_at: u64) {
        if self.watch.driver_publishes(target, work_at) {
            self.standby.ring();
        }
    }

    /// The standby loop; returns the driver role once it took it.
    fn stand_by(&'static self) -> Role {
        self.standby.set(std::thread::current());
        loop {
            let now = self.offset(Instant::now());
            let look_at = match self.watch.busy() {
                Some(busy) if overran(busy, now) => match self.watch.take(busy) {
                    Some(role) => return self.took_over(role),
                    None => continue, // it left user code just now
                },
                Some(busy) => now + (OVERRUN_NS - busy.elapsed_us(now / 1000) * 1000),
                None => self.watch.driver_next_work(now).saturating_add(OVERRUN_NS),
            };
            // Publish, then re-read the driver's next work: invariant 5.
            if self.watch.standby_publishes(look_at, now) {
                sleep(self.instant(look_at));
            }
        }
    }

    /// The standby just took the driver role: ring-able as the driver from
    /// now on, and a new standby behind it.
    fn took_over(&'static self, role: Role) -> Role {
        self.driver.set(std::thread::current());
        // Until a new standby sets it, ringing the standby reaches nobody
        // (not ourselves: a self-unpark on every sleep would spin).
        self.standby.clear();
        self.watch.unwatched();
        self.watch.vacate_standby();
        if self.watch.claim_standby() {
            self.spawn_standby();
        }
        role
    }

    /// The instant `offset` ns after the origin; `None` for "never".
    fn instant(&self, offset: u64) -> Option<Instant> {
        (offset != u64::MAX)
            .then(|| self.core.origin().checked_add(Duration::from_nanos(offset)))
            .flatten()
    }
}

/// Whether the driver's user code seen in `busy` has run for `OVERRUN`.
fn overran(busy: Busy, now: u64) -> bool {
    busy.elapsed_us(now / 1000) * 1000 >= OVERRUN_NS
}

/// The driver's side of the overrun watch for one round.
struct DriverWatch<'a> {
    watch: &'a Watch,
    role: Role,
    /// When the round began (µs offset): the standby measures from there.
    since_us: u64,
    busy: Option<Busy>,
}

impl Watcher for DriverWatch<'_> {
    fn enter(&mut self) {
        self.busy = Some(self.watch.enter(self.role, self.since_us));
    }

    fn leave(&mut self) -> bool {
        match self.busy.take() {
            Some(busy) => self.watch.leave(self.role, busy),
            None => true,
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

#[cfg(test)]
mod tests {
    use super::{system, AWAKE};
    use std::time::Duration;

    /// `before` answers as the offset comparison it replaces, at and around
    /// each target, and again after the target changes (the cache).
    #[test]
    fn before_agrees_with_offsets() {
        let driver = system();
        let origin = driver.core.origin();
        let targets = [
            AWAKE,
            1,
            2,
            1_000,
            5_000_000_000,
            1_000,
            u64::MAX - 1,
            u64::MAX,
        ];
        for target in targets {
            let near = Duration::from_nanos(target);
            let mut deadlines = vec![origin, origin + Duration::from_nanos(1)];
            if let Some(at) = origin.checked_add(near) {
                deadlines.extend([at, at + Duration::from_nanos(1)]);
                deadlines.extend(at.checked_sub(Duration::from_nanos(1)));
            }
            for d in deadlines {
                let expected = driver.offset(d) < target;
                assert_eq!(driver.before(d, target), expected, "target {target}, {d:?}");
            }
        }
    }
}
