//! The time source that deadlines run on.
//!
//! A `Clock` is either the process-wide real-time clock or a manual clock
//! whose time moves only when the program says so. Every context derived
//! from a root uses the root's clock, so tests can drive deadlines
//! deterministically with a manual clock, and production code pays nothing
//! for the choice: `Clock::system()` is a unit variant, free to clone and to
//! compare.

use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::sync::Arc;
use crate::time::{system_driver, AfterDisarm, Collected, ManualClock, TimerCore, TimerEntry};

/// The time source and timing wheel that deadlines run on.
///
/// `Clock::system()` is real time: deadlines fire on background timer
/// threads that the first deadline starts (a driver, and a standby that
/// takes over if a firing's callbacks or wakers block, so that one slow
/// callback never delays the other deadlines; at most 8 threads, 2 when
/// nothing blocks). `Clock::manual()` is virtual time
/// that stands still until [`advance`](Clock::advance) moves it; every
/// deadline that falls due fires on the thread that called `advance`, before
/// `advance` returns. Neither ever fires a deadline early.
///
/// ```
/// use gocontext::{Clock, Error};
/// use std::time::Duration;
/// let clock = Clock::manual();
/// let (ctx, _cancel) = clock.background().with_timeout(Duration::from_secs(5));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
/// ```
#[derive(Clone)]
pub struct Clock {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// The process-wide clock; its state lives in a static (see `time/driver.rs`).
    System,
    /// A virtual clock; clones share it.
    Manual(Arc<ManualClock>),
}

// A clock's time is one atomic, and its wheel is behind a mutex whose
// holder runs no user code (hooks run unlocked, their panics caught), so a
// panic cannot leave a clock half-updated.
impl std::panic::UnwindSafe for Clock {}
impl std::panic::RefUnwindSafe for Clock {}

/// The panic message of a system-clock deadline under loom.
#[cfg(loom)]
pub(crate) const LOOM_NEEDS_MANUAL_CLOCK: &str = "gocontext under loom: a deadline on the \
system clock (Context::background(), Clock::system()) needs a real timer thread and real \
time, which loom cannot model. Root the model's contexts in a manual clock instead: \
`let clock = Clock::manual(); let root = clock.background();`, and move its time with \
`clock.advance(d)` or `clock.advance_to_next()` (see docs/loom.md).";

impl Clock {
    /// The process-wide real-time clock, the clock of
    /// `Context::background()`. Cheap: no allocation, no reference count.
    ///
    /// ```
    /// use gocontext::{Clock, Context};
    /// let clock = Clock::system();
    /// assert!(clock.now() <= std::time::Instant::now());
    /// assert_eq!(clock.background().to_string(), Context::background().to_string());
    /// ```
    pub fn system() -> Clock {
        Clock {
            inner: Inner::System,
        }
    }

    /// A new virtual clock. Its time starts at the real `Instant::now()` of
    /// this call and moves only through [`advance`](Clock::advance). Clones
    /// share the same time and deadlines.
    ///
    /// ```
    /// let clock = gocontext::Clock::manual();
    /// let t0 = clock.now();
    /// std::thread::sleep(std::time::Duration::from_millis(2));
    /// assert_eq!(clock.now(), t0); // virtual time stands still
    /// ```
    pub fn manual() -> Clock {
        Clock {
            inner: Inner::Manual(Arc::new(ManualClock::new(Instant::now()))),
        }
    }

    /// The clock's current time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = gocontext::Clock::manual();
    /// let t0 = clock.now();
    /// clock.advance(Duration::from_millis(5));
    /// assert_eq!(clock.now() - t0, Duration::from_millis(5));
    /// ```
    pub fn now(&self) -> Instant {
        match &self.inner {
            Inner::System => Instant::now(),
            Inner::Manual(m) => m.now(),
        }
    }

    /// Moves a manual clock forward by `d` and, before returning, fires on
    /// the calling thread every deadline at or before the new time, earliest
    /// first. If a deadline's callbacks panic, the remaining deadlines still
    /// fire and the first panic is then resumed. Time saturates at its cap,
    /// the latest `Instant` that the clock's origin plus `u64::MAX`
    /// nanoseconds (about 584 years) can represent, instead of overflowing.
    /// A deadline beyond the cap could never fire, so on this clock it
    /// means no deadline at all, as `with_timeout(Duration::MAX)` does.
    ///
    /// On the system clock this does nothing: real time cannot be moved.
    ///
    /// ```
    /// use gocontext::{Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock.background().with_timeout(Duration::from_millis(1500));
    /// clock.advance(Duration::from_millis(1499));
    /// assert_eq!(ctx.err(), None); // never early
    /// clock.advance(Duration::from_millis(1));
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// clock.advance(Duration::MAX); // saturates, never panics
    /// let (after_the_cap, _c) = clock.background().with_timeout(Duration::from_secs(1));
    /// assert_eq!(after_the_cap.deadline(), None); // could never fire
    /// ```
    pub fn advance(&self, d: Duration) {
        if let Inner::Manual(m) = &self.inner {
            m.advance(d);
        }
    }

    /// Whether this clock can never reach `deadline`: a manual clock's
    /// time stops at its cap (see [`advance`](Clock::advance)), so a later
    /// deadline could never fire. The system clock reaches every `Instant`.
    pub(crate) fn never_reaches(&self, deadline: Instant) -> bool {
        match &self.inner {
            Inner::System => false,
            Inner::Manual(m) => deadline > m.cap(),
        }
    }

    /// The earliest deadline armed on this clock that has neither fired nor
    /// been cancelled, exactly as given to `with_deadline` (or computed by
    /// `with_timeout`); `None` if there is none. Every deadline armed or
    /// cancelled before the call counts; one armed concurrently may or may
    /// not. On the system clock this waits briefly for the driver's wheel.
    ///
    /// ```
    /// use gocontext::Clock;
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// assert_eq!(clock.next_deadline(), None);
    /// let (_a, _ca) = clock.background().with_timeout(Duration::from_secs(5));
    /// let (_b, cb) = clock.background().with_timeout(Duration::from_millis(1500));
    /// assert_eq!(clock.next_deadline(), Some(clock.now() + Duration::from_millis(1500)));
    /// cb.cancel();
    /// assert_eq!(clock.next_deadline(), Some(clock.now() + Duration::from_secs(5)));
    /// ```
    pub fn next_deadline(&self) -> Option<Instant> {
        if cfg!(loom) && !self.is_manual() {
            // Under loom the system clock carries no deadline (they are
            // refused), and its driver's process-wide state has no model.
            return None;
        }
        let (next, filed) = self.core().next_deadline();
        if filed > 0 && !self.is_manual() {
            // We filed entries the sleeping driver has not seen (driver
            // invariant 3): it recomputes its wake-up time.
            system_driver().wake();
        }
        next
    }

    /// Moves a manual clock to its [next deadline](Clock::next_deadline),
    /// fires every deadline due then (as [`advance`](Clock::advance) does,
    /// panics included), and returns the new time. With no deadline
    /// pending, time stays where it is. Tests and fuzz targets step through
    /// a program's timeouts with it, without knowing their durations.
    ///
    /// On the system clock this does nothing and returns `now()`: real time
    /// cannot be moved, and the driver fires deadlines when they are due.
    ///
    /// ```
    /// use gocontext::{Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let t0 = clock.now();
    /// let (slow, _c1) = clock.background().with_timeout(Duration::from_secs(30));
    /// let (fast, _c2) = clock.background().with_timeout(Duration::from_millis(250));
    /// assert_eq!(clock.advance_to_next(), t0 + Duration::from_millis(250));
    /// assert_eq!((fast.err(), slow.err()), (Some(Error::DeadlineExceeded), None));
    /// assert_eq!(clock.advance_to_next(), t0 + Duration::from_secs(30));
    /// assert_eq!(slow.err(), Some(Error::DeadlineExceeded));
    /// assert_eq!(clock.advance_to_next(), t0 + Duration::from_secs(30)); // nothing left
    /// ```
    pub fn advance_to_next(&self) -> Instant {
        match &self.inner {
            Inner::System => Instant::now(),
            Inner::Manual(m) => match m.core().next_deadline().0 {
                Some(deadline) => m.advance_to(deadline),
                None => m.now(),
            },
        }
    }

    /// True for clocks made by [`Clock::manual`] (and their clones): the
    /// clocks whose time [`advance`](Clock::advance) and
    /// [`advance_to_next`](Clock::advance_to_next) move.
    ///
    /// ```
    /// use gocontext::{Clock, Context};
    /// assert!(Clock::manual().is_manual());
    /// assert!(!Clock::system().is_manual());
    /// assert!(!Context::background().clock().is_manual());
    /// ```
    pub fn is_manual(&self) -> bool {
        matches!(self.inner, Inner::Manual(_))
    }

    /// Under loom, refuses a deadline on the system clock: its timers run on
    /// a real driver thread and real time, which loom cannot model, so a
    /// model would hang or flake. The message names what to use instead.
    #[cfg(loom)]
    pub(crate) fn refuse_real_time_under_loom(&self) {
        assert!(self.is_manual(), "{LOOM_NEEDS_MANUAL_CLOCK}");
    }

    /// Whether both are the same clock.
    pub(crate) fn ptr_eq(&self, other: &Clock) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::System, Inner::System) => true,
            (Inner::Manual(a), Inner::Manual(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Hands an entry to this clock: one lock-free push, plus an unpark of
    /// the driver only if the deadline is earlier than its sleep target.
    /// If an idle entry was disarmed before this call, `release` runs here;
    /// an entry built queued is pushed even if withdrawn since.
    ///
    /// # Safety
    /// `entry` points to a live `TimerEntry`, idle or built queued, that is never moved until
    /// its `release` hook runs, was never armed before, and the caller took
    /// one reference for the clock.
    #[cfg_attr(not(loom), inline)]
    pub(crate) unsafe fn arm(&self, entry: NonNull<TimerEntry>) {
        match &self.inner {
            // SAFETY: the caller's promise is `Driver::arm`'s.
            Inner::System => unsafe { system_driver().arm(entry) },
            Inner::Manual(m) => {
                // SAFETY: the caller's promise is `TimerCore::arm`'s. (If it
                // was disarmed before, `arm` already released it.)
                unsafe { m.core().arm(entry) };
            }
        }
    }

    /// Cancels `entry`: true iff this call prevented `fire`. An atomic state
    /// change plus at most one lock-free push; callable from any thread, also
    /// from inside a hook, any number of times (later calls return false).
    ///
    /// # Safety
    /// `entry` is live, was armed on this clock (or not at all), and is the
    /// pointer given to `arm` (the clock may hand it back to the hooks).
    pub(crate) unsafe fn disarm(&self, entry: NonNull<TimerEntry>) -> bool {
        // SAFETY: the caller's promise is `TimerCore::disarm`'s.
        match unsafe { self.core().disarm(entry) } {
            None => false,
            Some(AfterDisarm::Nothing) if !self.is_manual() => true,
            // Most collections are of this thread's own withdrawn entries:
            // released here, with no lock (`TimerCore::sweep_mine`).
            Some(AfterDisarm::Collect) if self.core().sweep_mine() => true,
            // A manual clock collects at once: its owner runs only inside
            // `advance`, and an entry left queued would keep its node, and
            // the node this clock, alive (a cycle once the user lets go).
            Some(_) => {
                self.collect();
                true
            }
        }
    }

    /// Gets the inbox emptied without blocking: empties it on this thread if
    /// no one owns the wheel right now (else the owner will). On the system
    /// clock the driver is unparked when the wheel was busy, or when this
    /// collection filed live entries it has not seen (its sleep target may be
    /// too late now; driver invariant 4).
    pub(crate) fn collect(&self) {
        match &self.inner {
            Inner::System => {
                let driver = system_driver();
                match driver.core().try_collect() {
                    Collected::Done { filed: 0 } => {}
                    Collected::Busy | Collected::Done { .. } => driver.wake(),
                }
            }
            Inner::Manual(m) => drop(m.core().try_collect()),
        }
    }

    /// The timer engine behind this clock.
    pub(crate) fn core(&self) -> &TimerCore {
        match &self.inner {
            Inner::System => system_driver().core(),
            Inner::Manual(m) => m.core(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::System => f.write_str("Clock::system"),
            Inner::Manual(m) => f
                .debug_struct("Clock::manual")
                .field("elapsed", &m.elapsed())
                .finish(),
        }
    }
}

#[cfg(test)]
mod probe;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, not(loom)))]
mod memory_tests;

#[cfg(all(test, loom))]
mod loom_models;
