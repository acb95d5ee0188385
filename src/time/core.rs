//! The timer engine of one clock: the lock-free inbox that any thread feeds,
//! and the wheel that one owner at a time files it into and fires from.
//!
//! # Why the wheel sits behind a `Mutex`, and why that is not a lock on arm
//! or disarm
//!
//! `arm` and `disarm` never wait on the mutex: they are a CAS on the entry
//! plus at most one push onto the inbox (entry.rs). The mutex only decides
//! which thread is the wheel's owner right now: the system clock's driver
//! thread, a thread inside a manual clock's `advance`, or a *collector* (see
//! below). It is held only while emptying the inbox and moving entries
//! between lists, bounded work with no user code, and it is always dropped
//! before any `fire` or `release` hook runs, so a hook may arm, disarm or
//! `advance` the same clock without deadlock. The collector takes it with
//! `try_lock`, which never waits: when the lock is taken it leaves the work
//! to the owner (and, on the system clock, unparks the driver).
//!
//! # Memory bound
//!
//! A cancelled entry is held by the clock (through the node reference the
//! caller gave `arm`) only until the inbox is next emptied. Every
//! successful disarm counts itself (on the system clock in a counter of its
//! thread's, on a manual clock in its shard's); each `COLLECT_EVERY`-th
//! one makes the disarming thread a collector: `try_collect` empties the
//! inbox and releases the cancelled entries right there (so nodes are freed
//! on the thread that most likely allocated them, without waking anyone).
//! If the wheel is busy, the owner empties it again once it unlocks (the
//! system clock's driver is unparked to be sure). So at any time the clock
//! holds the live entries plus about `COLLECT_EVERY` cancelled ones per
//! concurrently disarming thread, however long the driver would otherwise
//! sleep. The wheel itself is intrusive: its memory is a fixed 6 x 64 list
//! heads, whatever the number of timers.

use std::any::Any;
use std::ptr::NonNull;
use std::time::Instant;

use super::entry::{call_hook, Disarmed, Pos, TimerEntry};
use super::inbox::{Graveyard, Inbox};
use super::wheel::Wheel;
use crate::sync::{fence, seqcst_handshake, AtomicBool, Mutex, MutexGuard, Ordering, TryLockError};
use crate::unwind::{discard, first};

/// Every this many successful disarms, someone empties the inbox. Under loom
/// every disarm collects, so the models explore the collector's races too.
/// Small, because the cancelled nodes a batch holds are a cache footprint
/// for the thread that creates deadlines (docs/design.md, "Memory bound").
pub(crate) const COLLECT_EVERY: usize = if cfg!(loom) { 1 } else { 64 };

/// A caught panic from a hook.
pub(crate) type Panic = Box<dyn Any + Send>;

/// The outcome of `try_collect`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Collected {
    /// Someone else owns the wheel right now.
    Busy,
    /// Emptied; `filed` live entries went into the wheel, so a sleeping
    /// driver may need to recompute its wake-up time.
    Done {
        /// Live entries filed from the inbox.
        filed: usize,
    },
}

/// What a successful disarm asks of the clock.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterDisarm {
    /// Nothing more.
    Nothing,
    /// Enough cancelled entries wait: get the owner to empty the inbox.
    Collect,
}

/// The timer engine of one clock.
#[derive(Debug)]
pub(crate) struct TimerCore {
    origin: Instant,
    /// The hand-off to the owner, with the disarm counters (sharded).
    inbox: Inbox,
    /// Whether disarming threads sweep their shards (the system clock). A
    /// manual clock's disarms collect in full instead, so its `advance`
    /// needs no sweep marks (and its loom models keep their size).
    sweeps: bool,
    /// A collector found the wheel taken and left its push to the owner.
    wanted: AtomicBool,
    /// The wheel and the right to own it (see the module doc).
    wheel: Mutex<Wheel>,
}

impl TimerCore {
    /// An engine whose tick 0 is `origin`, with an inbox of `shards`
    /// shards (a power of two; see `inbox.rs`).
    pub(crate) fn new(origin: Instant, shards: usize, sweeps: bool) -> TimerCore {
        TimerCore {
            origin,
            inbox: Inbox::new(shards),
            sweeps,
            wanted: AtomicBool::new(false),
            wheel: Mutex::new(Wheel::new(origin)),
        }
    }

    /// The instant of tick 0.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Hands `entry` to the owner. Returns false if the entry had been
    /// disarmed before it was armed; it has then already been released.
    ///
    /// # Safety
    /// `entry` points to a live `TimerEntry`, idle or built queued
    /// (`TimerEntry::built`), that stays in place until
    /// its `release` hook runs; the caller took one reference for the clock.
    #[cfg_attr(not(loom), inline)]
    pub(crate) unsafe fn arm(&self, entry: NonNull<TimerEntry>) -> bool {
        // SAFETY: live (caller).
        if !unsafe { entry.as_ref() }.begin_arm() {
            // SAFETY: never armed, so nobody else will release it (entry
            // inv. 7); the caller's reference is the clock's.
            discard(unsafe { call_hook(entry, |e| e.hooks().release) });
            return false;
        }
        // SAFETY: QUEUED and not yet pushed: ours to push (entry.rs inv. 2).
        unsafe { self.inbox.push(entry) };
        true
    }

    /// Cancels `entry`. `Some` iff this call prevented `fire`.
    ///
    /// # Safety
    /// `entry` was armed on this engine (or never armed), is live, and is
    /// the pointer given to `arm`: a filed entry goes back on the inbox, and
    /// the owner hands that pointer to the hooks, which may step back from
    /// it to their container.
    #[cfg_attr(not(loom), inline)]
    pub(crate) unsafe fn disarm(&self, entry: NonNull<TimerEntry>) -> Option<AfterDisarm> {
        // SAFETY: live (caller).
        let won = unsafe { entry.as_ref() }.cancel()?;
        match won {
            Disarmed::BeforeArm => return Some(AfterDisarm::Nothing),
            Disarmed::Queued => {}
            // SAFETY: we won FILED -> CANCELLED, so the entry is off the
            // inbox and its `queue_next` is ours (entry.rs inv. 2, 3).
            Disarmed::Filed => unsafe { self.inbox.push(entry) },
        }
        let n = self.inbox.count_cancel(self.sweeps);
        Some(if collection_due(n) {
            AfterDisarm::Collect
        } else {
            AfterDisarm::Nothing
        })
    }

    /// Every `COLLECT_EVERY`-th disarm on a shard: releases the entries
    /// withdrawn on the calling thread's shard, with no lock and no other
    /// shard touched (`Inbox::sweep_mine`). True when that is all the
    /// collection needed: nothing else was on the shard and it released at
    /// least `COLLECT_EVERY` entries, as many as the disarms that asked for
    /// it. Otherwise the caller collects in full (`try_collect`): some of
    /// those disarms withdrew entries on other shards, or live entries wait
    /// for the owner (see "Memory bound").
    pub(crate) fn sweep_mine(&self) -> bool {
        if !self.sweeps {
            return false;
        }
        let mut graves = Graveyard::default();
        let swept = self.inbox.sweep_mine(&mut graves);
        discard(graves.release_all());
        !swept.kept && swept.released >= COLLECT_EVERY
    }

    /// `Inbox::sweep_mark`, on a clock whose disarms sweep.
    fn sweep_mark(&self) -> Option<usize> {
        self.sweeps.then(|| self.inbox.sweep_mark()).flatten()
    }

    /// `Inbox::sweeps_moved`, on a clock whose disarms sweep (else false).
    fn sweeps_moved(&self, before: Option<usize>) -> bool {
        self.sweeps && self.inbox.sweeps_moved(before)
    }

    /// Whether the inbox is empty (SeqCst: the driver's handshake).
    pub(crate) fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// Empties the inbox if no one owns the wheel right now; never waits.
    /// Releases what was cancelled on the calling thread, after unlocking.
    pub(crate) fn try_collect(&self) -> Collected {
        // SeqCst: the collector's half of the hand-off (`handed_over`): our
        // push (or the arming push still queued) comes before the flag,
        // the flag before the fence, so either the `try_lock` below sees
        // the wheel free, or its owner sees the flag after it unlocks.
        seqcst_handshake();
        self.wanted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut filed = 0;
        loop {
            let mut graves = Graveyard::default();
            filed += match self.wheel.try_lock() {
                Ok(mut wheel) => self.file_inbox(&mut wheel, &mut graves),
                Err(TryLockError::Poisoned(p)) => self.file_inbox(&mut p.into_inner(), &mut graves),
                // The owner empties it again once it unlocks (`handed_over`).
                Err(TryLockError::WouldBlock) if filed == 0 => return Collected::Busy,
                Err(TryLockError::WouldBlock) => break,
            };
            discard(graves.release_all());
            if !self.handed_over() {
                break;
            }
        }
        Collected::Done { filed }
    }

    /// Whether a collector left its work to us while we held the wheel:
    /// an owner that does not hand over to a driver (`try_collect`, a
    /// manual clock's `advance`) asks after unlocking and, if so, empties the inbox
    /// again. Only collectors set the flag, never arms, so a stream of
    /// arms from other threads cannot keep an owner going round.
    fn handed_over(&self) -> bool {
        // SeqCst: the owner's half of the hand-off; with the fence in
        // `try_collect` (store-buffer pattern, a fence on each side).
        fence(Ordering::SeqCst);
        self.wanted.load(Ordering::SeqCst)
    }

    /// A manual clock's `advance`: `run`, then again for as long as
    /// collectors handed work over meanwhile (nobody else would come by).
    pub(crate) fn run_settled(&self, now: Instant) -> (Option<Instant>, Option<Panic>) {
        let mut first_panic = None;
        loop {
            let mark = self.sweep_mark();
            let (next, panic) = self.run(now);
            first_panic = first(first_panic, panic);
            // Both asked, always: `sweeps_moved` waits out a running sweep.
            let swept = self.sweeps_moved(mark);
            if !self.handed_over() && !swept {
                return (next, first_panic);
            }
        }
    }

    /// Fires every entry due at `now`, earliest deadline first, one at a
    /// time, with the lock dropped around each hook. Returns the next expiry
    /// and the first panic a hook raised (the rest still ran).
    pub(crate) fn run(&self, now: Instant) -> (Option<Instant>, Option<Panic>) {
        match self.run_watched(now, &mut ()) {
            (Ran::Idle(next), panic) => (next, panic),
            (Ran::Stopped, _) => unreachable!("an unwatched round is never stopped"),
        }
    }

    /// `run`, telling `watcher` around every call that may run user code
    /// (the hooks, the releases of cancelled entries); stops after such a
    /// call if the watcher says the round is no longer ours.
    pub(crate) fn run_watched(
        &self,
        now: Instant,
        watcher: &mut impl Watcher,
    ) -> (Ran, Option<Panic>) {
        let mut first_panic = None;
        loop {
            let mut graves = Graveyard::default();
            let step = {
                let mut wheel = self.lock();
                self.file_inbox(&mut wheel, &mut graves);
                wheel.turn(now);
                self.claim_due(&mut wheel, now)
            };
            let mut ours = true;
            let next = match step {
                Step::Fire(entry) => {
                    // Fired first, before the releases below: a claimed
                    // entry is never held back behind other user code.
                    // SAFETY: we won FILED -> FIRED (entry inv. 6), so `fire`
                    // is ours to call, then `release`, once (entry inv. 7).
                    let panics = watched(&mut ours, watcher, || unsafe {
                        let fired = call_hook(entry, |e| e.hooks().fire);
                        (fired, call_hook(entry, |e| e.hooks().release))
                    });
                    first_panic = first(first(first_panic, panics.0), panics.1);
                    None
                }
                Step::Lost => None,
                Step::Idle(next) => Some(next),
            };
            if !graves.is_empty() {
                let panic = watched(&mut ours, watcher, || graves.release_all());
                first_panic = first(first_panic, panic);
            }
            if !ours {
                return (Ran::Stopped, first_panic);
            }
            if let Some(next) = next {
                return (Ran::Idle(next), first_panic);
            }
        }
    }

    /// The earliest deadline armed and not yet fired or disarmed, after
    /// draining the inbox (so every arm and disarm that returned before this
    /// call counts), and how many live entries that drain filed. Waits for
    /// the wheel lock: for `Clock::next_deadline`, not a hot path.
    pub(crate) fn next_deadline(&self) -> (Option<Instant>, usize) {
        let mut filed = 0;
        loop {
            let mark = self.sweep_mark();
            let mut graves = Graveyard::default();
            let next = {
                let mut wheel = self.lock();
                filed += self.file_inbox(&mut wheel, &mut graves);
                wheel.next_deadline()
            };
            discard(graves.release_all());
            if self.handed_over() {
                let _ = self.try_collect();
            }
            // A sweep held entries while we looked: look again.
            if !self.sweeps_moved(mark) {
                return (next, filed);
            }
        }
    }

    /// Number of entries in the wheel (tests).
    #[cfg(test)]
    pub(crate) fn filed(&self) -> usize {
        let n = self.lock().len();
        if self.handed_over() {
            let _ = self.try_collect();
        }
        n
    }

    fn lock(&self) -> MutexGuard<'_, Wheel> {
        // Poisoning can only come from a bug in the wheel's own code: hooks
        // never run under the lock, so no user state is behind it.
        self.wheel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Owner: takes the inbox and files, unlinks or buries each entry.
    /// Returns how many live entries it filed.
    fn file_inbox(&self, wheel: &mut Wheel, graves: &mut Graveyard) -> usize {
        let mut filed = 0;
        // SeqCst: cleared before the inbox is taken, so a collector whose
        // flag this clears pushed before the take (both are SeqCst), and
        // one that sets it later is seen by `handed_over`.
        self.wanted.store(false, Ordering::SeqCst);
        // Between the store and the take's loads (loom: `seqcst_handshake`).
        seqcst_handshake();
        for entry in self.inbox.take_all() {
            // SAFETY: we own the wheel; the clock holds the entry (entry inv. 7).
            let pos = unsafe { TimerEntry::with_links(entry, |l| l.pos) };
            if pos == Pos::Unfiled {
                // The arming push. SAFETY: live (the clock's reference).
                if unsafe { entry.as_ref() }.try_file() {
                    // SAFETY: arm-time pointer, in no list (entry inv. 2, 4).
                    unsafe { wheel.insert(entry) };
                    filed += 1;
                } else {
                    // Disarmed while queued: never filed (entry inv. 5).
                    // SAFETY: arm-time pointer; we alone release it (entry inv. 7).
                    unsafe { graves.bury(entry) };
                }
            } else {
                // The disarm push of a filed entry: unlink, then release.
                // SAFETY: we own the wheel and the entry was inserted here.
                let original = unsafe { wheel.remove(entry) };
                // SAFETY: CANCELLED and off the inbox; we alone release it.
                unsafe { graves.bury(original) };
            }
        }
        filed
    }

    /// Owner: pops the earliest due entry and claims it for firing. The
    /// claim happens under the lock, so a concurrent disarmer's push cannot
    /// be taken (and released) by another owner while we still look at it.
    fn claim_due(&self, wheel: &mut Wheel, now: Instant) -> Step {
        let Some(entry) = wheel.pop_due(now) else {
            return Step::Idle(wheel.next_expiry());
        };
        // SAFETY: live: the clock's reference is not released yet.
        if unsafe { entry.as_ref() }.try_claim() {
            Step::Fire(entry)
        } else {
            // A disarm won; its push (maybe still to come) makes a later
            // `file_inbox` release the now-`Unlinked` entry (entry inv. 7).
            Step::Lost
        }
    }
}

/// Whether the `n`-th successful disarm should collect.
#[allow(clippy::modulo_one)] // COLLECT_EVERY is 1 under loom, on purpose.
fn collection_due(n: usize) -> bool {
    n % COLLECT_EVERY == 0
}

/// Told by the fire loop when it calls what may run user code, so that a
/// system clock's standby can see a driver stuck there (`watch.rs`).
pub(crate) trait Watcher {
    /// A call that may run user code begins.
    fn enter(&mut self);
    /// It returned. False: another thread took the round over; stop.
    fn leave(&mut self) -> bool;
}

/// Runs `f` between `enter` and `leave` while the round is still `ours`;
/// once it is not, `f` runs unwatched (the word belongs to the new driver).
fn watched<R>(ours: &mut bool, watcher: &mut impl Watcher, f: impl FnOnce() -> R) -> R {
    if !*ours {
        return f();
    }
    watcher.enter();
    let r = f();
    *ours = watcher.leave();
    r
}

/// A manual clock's `advance` is watched by nobody: it fires on its caller.
impl Watcher for () {
    fn enter(&mut self) {}
    fn leave(&mut self) -> bool {
        true
    }
}

/// How a watched round ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// Nothing more is due; the next expiry, if any.
    Idle(Option<Instant>),
    /// Another thread took the round over while we ran user code.
    Stopped,
}

/// One step of `run`.
enum Step {
    Fire(NonNull<TimerEntry>),
    Lost,
    Idle(Option<Instant>),
}

impl Drop for TimerCore {
    /// A clock that goes away releases what it still holds. (A node keeps
    /// its clock alive while its entry is armed, so in practice this only
    /// finds entries whose nodes were already given up.)
    fn drop(&mut self) {
        let mut graves = Graveyard::default();
        {
            let mut wheel = self.lock();
            self.file_inbox(&mut wheel, &mut graves);
            while let Some(entry) = wheel.pop_any() {
                // SAFETY: arm-time pointer of an entry only we still hold.
                unsafe { graves.bury(entry) };
            }
        }
        discard(graves.release_all());
    }
}
