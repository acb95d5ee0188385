//! The overrun watch: the one word through which a standby thread takes the
//! system clock's driver role from a driver that is stuck in user code.
//!
//! The driver fires deadlines inline, and a deadline's `fire` hook runs user
//! code (callbacks, wakers, drops). Before each hook the driver *enters*
//! (stores when its round began), after it it *leaves* (clears that again).
//! A standby that finds the driver inside user code for longer than the
//! overrun budget *takes* the role; the old driver learns it when it
//! leaves, and stops driving.
//!
//! # The word
//!
//! `generation << 48 | since`: `since` is the round's start in microseconds
//! since the clock's origin (modulo 2^48, never 0), or 0 when the driver is
//! not in user code; `generation` counts takeovers (modulo 2^16).
//!
//! # Invariants
//!
//! 1. Only the driver of the current generation stores the word (`enter`,
//!    `leave`), and only while it believes it is the driver.
//! 2. A take is a CAS from a word with `since != 0` to the next generation
//!    with `since == 0`; a leave is a CAS from the word its enter stored.
//!    So of a take and the leave it races, exactly one succeeds: either the
//!    old driver goes on, or the standby drives and the old driver stops
//!    after its hook.
//! 3. After a take, the old driver's leave fails forever: the generation
//!    moved on and only the new driver stores words of the new generation
//!    (an ABA needs 2^16 takeovers during one hook with the same `since`).
//! 4. The standby role has at most one holder: a flag claimed by CAS.
//! 5. No lost watch: the standby stores when it looks next
//!    (`standby_until`), then re-reads when the driver works next
//!    (`sleep_until`); the driver stores `sleep_until`, then loads
//!    `standby_until` and rings the standby if its next work plus the
//!    overrun budget comes earlier. All four SeqCst: one side sees the
//!    other, so a standby never sleeps past the driver's next work plus
//!    the budget without being rung.
//!
//! The protocol is modelled in `watch/loom_models.rs`.

use crate::sync::{seqcst_handshake, AtomicBool, AtomicU64, Ordering};

const SINCE_BITS: u32 = 48;
const SINCE_MASK: u64 = (1 << SINCE_BITS) - 1;

/// `sleep_until` while the driver is running (driver invariant 3).
pub(crate) const AWAKE: u64 = 0;

/// The overrun watch of one driver (see the module doc).
#[derive(Debug)]
pub(crate) struct Watch {
    word: AtomicU64,
    standby: AtomicBool,
    /// When the driver works next: `AWAKE`, or the ns offset it sleeps
    /// until, `u64::MAX` for "indefinitely" (driver invariant 3).
    sleep_until: AtomicU64,
    /// When the standby looks at the driver next (ns offset; invariant 5).
    standby_until: AtomicU64,
    /// How long the driver may stay in user code (ns).
    overrun_ns: u64,
}

/// The driver role as one thread holds it: its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Role(u64);

/// What the driver stored on entering user code (its `leave` expects it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Busy(u64);

impl Busy {
    /// When the round began, in microseconds since the origin (mod 2^48).
    pub(crate) fn since_us(self) -> u64 {
        self.0 & SINCE_MASK
    }

    /// Microseconds from the round's start to `now_us` (wrapping like the
    /// stored value, so it stays right past 2^48 µs of uptime); 0 if
    /// `now_us` was read before the round began.
    pub(crate) fn elapsed_us(self, now_us: u64) -> u64 {
        let d = now_us.wrapping_sub(self.since_us()) & SINCE_MASK;
        if d > SINCE_MASK / 2 {
            0
        } else {
            d
        }
    }
}

impl Watch {
    /// A watch whose driver role is generation 0, awake, with no standby,
    /// that lets the driver stay `overrun_ns` in user code.
    pub(crate) fn new(overrun_ns: u64) -> Watch {
        Watch {
            word: AtomicU64::new(0),
            standby: AtomicBool::new(false),
            sleep_until: AtomicU64::new(AWAKE),
            standby_until: AtomicU64::new(u64::MAX),
            overrun_ns,
        }
    }

    /// The driver's sleep target (`arm`'s half of the driver's handshake).
    pub(crate) fn sleep_target(&self) -> u64 {
        // SeqCst: driver invariant 4 (after the arming push).
        seqcst_handshake();
        self.sleep_until.load(Ordering::SeqCst)
    }

    /// Driver: publishes its sleep target (a time, or `AWAKE`) and says
    /// whether to ring the standby, given when it works next (the target,
    /// or now when awake; invariant 5).
    pub(crate) fn driver_publishes(&self, target: u64, work_at: u64) -> bool {
        // SeqCst store, then SeqCst load: invariant 5 and driver invariant 4.
        self.sleep_until.store(target, Ordering::SeqCst);
        seqcst_handshake();
        work_at.saturating_add(self.overrun_ns) < self.standby_until.load(Ordering::SeqCst)
    }

    /// When the driver works next, as the standby at `now` sees it.
    pub(crate) fn driver_next_work(&self, now: u64) -> u64 {
        match self.sleep_target() {
            AWAKE => now,
            target => target,
        }
    }

    /// Standby: publishes that it looks next at `look_at`; false if the
    /// driver's next work moved earlier meanwhile (recompute, do not sleep).
    pub(crate) fn standby_publishes(&self, look_at: u64, now: u64) -> bool {
        // SeqCst store, then SeqCst load in `driver_next_work`: invariant 5.
        self.standby_until.store(look_at, Ordering::SeqCst);
        self.driver_next_work(now).saturating_add(self.overrun_ns) >= look_at
    }

    /// A standby that just took the driver role: nobody watches until the
    /// new standby publishes, so the driver rings its doorbell meanwhile.
    pub(crate) fn unwatched(&self) {
        // SeqCst: as in `standby_publishes`.
        self.standby_until.store(u64::MAX, Ordering::SeqCst);
    }

    /// The role of the first driver.
    pub(crate) fn first_role(&self) -> Role {
        Role(0)
    }

    /// Driver: user code is about to run in a round begun at `since_us`.
    pub(crate) fn enter(&self, role: Role, since_us: u64) -> Busy {
        let since = (since_us & SINCE_MASK).max(1);
        let word = role.0 << SINCE_BITS | since;
        // Release: whatever the driver did before (its `sleep_until`
        // stores) happens before the work of a standby that takes over
        // from this word (its CAS is Acquire).
        self.word.store(word, Ordering::Release);
        Busy(word)
    }

    /// Driver: back from user code. False if a standby took the role
    /// meanwhile (invariant 2): the caller stops driving at once.
    pub(crate) fn leave(&self, role: Role, busy: Busy) -> bool {
        // Relaxed: the CAS only decides who drives; a driver that goes on
        // needs nothing from the standby, which did nothing.
        self.word
            .compare_exchange(
                busy.0,
                role.0 << SINCE_BITS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Standby: the driver's user code in progress, if any.
    pub(crate) fn busy(&self) -> Option<Busy> {
        // Relaxed: only a hint; `take`'s CAS decides.
        let word = self.word.load(Ordering::Relaxed);
        (word & SINCE_MASK != 0).then_some(Busy(word))
    }

    /// Standby: takes the driver role from the user code it saw. `None` if
    /// the driver left it (or another standby took it) first.
    pub(crate) fn take(&self, seen: Busy) -> Option<Role> {
        debug_assert_ne!(seen.since_us(), 0);
        let next = ((seen.0 >> SINCE_BITS) + 1) & ((1 << (64 - SINCE_BITS)) - 1);
        // Acquire: pairs with `enter`'s Release (see there).
        self.word
            .compare_exchange(
                seen.0,
                next << SINCE_BITS,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| Role(next))
    }

    /// Claims the standby role (invariant 4); false if someone holds it.
    pub(crate) fn claim_standby(&self) -> bool {
        // Relaxed: the flag carries no data; the standby reads everything
        // else through its own SeqCst handshake with the driver.
        self.standby
            .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives the standby role up (its holder became the driver).
    pub(crate) fn vacate_standby(&self) {
        // Relaxed: as in `claim_standby`.
        self.standby.store(false, Ordering::Relaxed);
    }
}

#[cfg(all(test, loom))]
mod loom_models;
