//! The hierarchical timing wheel: 6 levels x 64 slots with a 1 ms tick.
//!
//! Time is counted in ticks since the clock's `origin`. A deadline's tick is
//! its offset from `origin` rounded **up** to whole milliseconds, so the
//! wheel reaches an entry's tick no earlier than the entry is due; the last
//! step before firing compares the exact `Instant` (`pop_due`), which gives
//! sub-millisecond exactness on a manual clock and makes "early" impossible.
//!
//! `elapsed` is the tick the wheel has reached. An entry with tick `t`:
//! * `t <= elapsed`: in `ready`, a list sorted by deadline (these are due
//!   within the current tick or already due);
//! * `elapsed ^ t < 2^36`: on level `L = msb(elapsed ^ t | 63) / 6`, in slot
//!   `(t >> 6L) & 63`;
//! * otherwise (beyond the wheel's 2^36 ms, about 2.2 years): `parked`, which
//!   is re-filed when `elapsed` reaches the end of its current 2^36-tick
//!   block. Parked entries are only ever re-filed, never fired from there.
//!
//! A slot is processed when `elapsed` reaches the tick where it starts: its
//! entries are re-filed relative to the new `elapsed` (level 0 and
//! whole-tick arrivals go to `ready`). The next expiry is the minimum over
//! all levels' first occupied slots (one bit scan each) and the parking
//! rotation, computed with plain `u64` arithmetic on absolute ticks, so
//! there is no wrap-around to get wrong at any uptime (tokio #8334).
//!
//! The wheel is owned by one thread at a time and has no atomics; see
//! `core.rs` for who that is.

mod level;
mod list;

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use self::level::{Level, BITS};
use self::list::{deadline_of, TimerList};
use crate::time::entry::{Pos, TimerEntry};

/// Levels in the wheel.
pub(crate) const LEVELS: usize = 6;
/// The wheel's range in ticks is `2^RANGE_BITS`.
const RANGE_BITS: u32 = BITS * LEVELS as u32;
/// Nanoseconds per tick (1 ms).
const TICK_NANOS: u128 = 1_000_000;

type Timer = NonNull<TimerEntry>;

/// The tick of `t`: whole milliseconds since `origin`, rounded up; 0 for
/// instants before `origin`; saturates (no panic) for any `Instant`.
pub(crate) fn tick_of(origin: Instant, t: Instant) -> u64 {
    let nanos = t.saturating_duration_since(origin).as_nanos();
    u64::try_from(nanos.div_ceil(TICK_NANOS)).unwrap_or(u64::MAX)
}

/// The earliest instant whose tick is `tick` (`None` if not representable).
fn tick_start(origin: Instant, tick: u64) -> Option<Instant> {
    match tick.checked_sub(1) {
        None => Some(origin),
        Some(prev) => origin
            .checked_add(Duration::from_millis(prev))?
            .checked_add(Duration::from_nanos(1)),
    }
}

/// The level for an entry due at `tick > elapsed`, or `None` if it is
/// beyond the wheel's range and must be parked.
fn level_for(elapsed: u64, tick: u64) -> Option<usize> {
    let diff = elapsed ^ tick;
    if diff >> RANGE_BITS != 0 {
        return None;
    }
    let msb = 63 - (diff | 63).leading_zeros();
    Some((msb / BITS) as usize)
}

/// Where the next expiration is.
#[derive(Clone, Copy, Debug)]
enum Source {
    Slot { level: usize, slot: usize },
    Parked,
}

/// The hierarchical timing wheel (see the module doc).
#[derive(Debug)]
pub(crate) struct Wheel {
    origin: Instant,
    /// The tick the wheel has reached (invariants in the module doc).
    elapsed: u64,
    levels: [Level; LEVELS],
    /// Entries beyond the range, re-filed at the next 2^36-tick boundary.
    parked: TimerList,
    /// Entries with tick <= `elapsed`, sorted by deadline.
    ready: TimerList,
    /// Entries in the wheel (all lists together).
    len: usize,
}

// SAFETY: the wheel only holds pointers to `TimerEntry`s, which are
// `Send + Sync`, and only its owner (entry.rs invariant 4) follows them.
unsafe impl Send for Wheel {}

impl Wheel {
    /// An empty wheel whose tick 0 is `origin`.
    pub(crate) fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            elapsed: 0,
            levels: std::array::from_fn(|l| Level::new(l as u32)),
            parked: TimerList::default(),
            ready: TimerList::default(),
            len: 0,
        }
    }

    /// Number of entries filed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is filed.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Files `e`.
    ///
    /// # Safety
    /// The caller owns the wheel (entry.rs invariant 4), `e` is the arm-time
    /// pointer of a live entry that is in no list, and it stays live until
    /// it leaves the wheel through `remove`, `pop_due` or `pop_any`.
    pub(crate) unsafe fn insert(&mut self, e: Timer) {
        self.len += 1;
        // SAFETY: the caller's promise; it is the list contract for `e`.
        unsafe { self.file(e) };
    }

    /// Unlinks `e` if it is filed and returns the arm-time pointer of the
    /// entry (`e` itself may have been derived from a shared reference).
    ///
    /// # Safety
    /// The caller owns the wheel; `e` is live and was inserted into this
    /// wheel (it may have left it since).
    pub(crate) unsafe fn remove(&mut self, e: Timer) -> Timer {
        // SAFETY: owner thread, live entry (caller).
        let (pos, stored) = unsafe { TimerEntry::with_links(e, |l| (l.pos, l.next)) };
        let list = match pos {
            Pos::Slot { level, slot } => {
                self.len -= 1;
                // SAFETY: owner, live, and in that slot (its `pos` says so).
                return unsafe { self.levels[level as usize].remove(e, slot as usize) };
            }
            Pos::Parked => &mut self.parked,
            Pos::Ready => &mut self.ready,
            // Unlinked entries keep their arm-time pointer in `next`.
            Pos::Unlinked => return stored.unwrap_or(e),
            Pos::Unfiled => return e,
        };
        self.len -= 1;
        // SAFETY: owner, live, and in that list (its `pos` says so).
        unsafe { list.remove(e) }
    }

    /// Moves the wheel to `now`: every entry whose tick has been reached
    /// ends up in the deadline-sorted ready list. Returns the next expiry
    /// (which may already be due; see `next_expiry`). Time never goes back:
    /// an earlier `now` than last time changes nothing.
    pub(crate) fn turn(&mut self, now: Instant) -> Option<Instant> {
        let target = tick_of(self.origin, now);
        while let Some((source, at)) = self.next_slot() {
            if at > target {
                break;
            }
            self.process(source, at);
        }
        self.elapsed = self.elapsed.max(target);
        self.next_expiry()
    }

    /// Removes and returns the earliest entry whose deadline is `<= now`
    /// (call `turn(now)` first). The returned entry is `Unlinked`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let head = self.ready.head()?;
        // SAFETY: filed entries are live (`insert`'s contract), and whoever
        // holds `&mut self` is the owner.
        unsafe {
            if deadline_of(head) > now {
                return None;
            }
            self.len -= 1;
            self.ready.pop_front()
        }
    }

    /// Removes and returns any filed entry (used to empty a dropped clock).
    pub(crate) fn pop_any(&mut self) -> Option<Timer> {
        // SAFETY: as in `pop_due`: the list contract holds for every list
        // of the wheel.
        let e = unsafe {
            match self.next_slot() {
                _ if !self.ready.is_empty() => self.ready.pop_front(),
                Some((Source::Slot { level, slot }, _)) => {
                    let list = self.levels[level].take(slot);
                    self.ready.merge_sorted(list, Pos::Ready);
                    self.ready.pop_front()
                }
                Some((Source::Parked, _)) => self.parked.pop_front(),
                None => None,
            }
        }?;
        self.len -= 1;
        Some(e)
    }

    /// The earliest instant at which `turn` + `pop_due` can yield an entry:
    /// the exact deadline of the first ready entry, or the first instant of
    /// the next occupied slot's tick. Never later than any filed deadline.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        if let Some(head) = self.ready.head() {
            // SAFETY: filed entries are live (`insert`'s contract).
            return Some(unsafe { deadline_of(head) });
        }
        let (_, at) = self.next_slot()?;
        tick_start(self.origin, at)
    }

    /// The earliest filed deadline, exactly (`next_expiry` is only a lower
    /// bound), without moving the wheel. Slots hold disjoint, ordered tick
    /// ranges (a level's slots lie beyond every lower level's), so the
    /// earliest deadline is the ready list's head or else in the earliest
    /// occupied slot (or the parking list): one scan of that one list.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if let Some(head) = self.ready.head() {
            // SAFETY: every filed entry is live (`insert`'s contract).
            return Some(unsafe { deadline_of(head) });
        }
        let list = match self.next_slot()?.0 {
            Source::Slot { level, slot } => self.levels[level].slot(slot),
            Source::Parked => &self.parked,
        };
        // SAFETY: we own the wheel (`&self` of its owner) and every filed
        // entry is live (`insert`'s contract).
        unsafe { list.iter().map(|e| deadline_of(e)).min() }
    }

    /// The earliest occupied slot (or the parking rotation) and its tick.
    fn next_slot(&self) -> Option<(Source, u64)> {
        let mut best: Option<(Source, u64)> = None;
        for (level, lvl) in self.levels.iter().enumerate() {
            if let Some((slot, at)) = lvl.next_occupied(self.elapsed) {
                if best.map_or(true, |(_, b)| at < b) {
                    best = Some((Source::Slot { level, slot }, at));
                }
            }
        }
        if !self.parked.is_empty() {
            let range_mask = (1u64 << RANGE_BITS) - 1;
            let at = (self.elapsed | range_mask).saturating_add(1);
            if best.map_or(true, |(_, b)| at < b) {
                best = Some((Source::Parked, at));
            }
        }
        best
    }

    /// Processes the slot (or parking list) that starts at tick `at`.
    fn process(&mut self, source: Source, at: u64) {
        self.elapsed = self.elapsed.max(at);
        let mut list = match source {
            Source::Slot { level, slot } => self.levels[level].take(slot),
            Source::Parked => std::mem::take(&mut self.parked),
        };
        let mut due = TimerList::default();
        // SAFETY: the list contract holds for every list of the wheel
        // (filed entries are live by `insert`'s contract; `&mut self` is
        // the owner), and a popped entry is in no list.
        unsafe {
            while let Some(e) = list.pop_front() {
                if tick_of(self.origin, deadline_of(e)) <= self.elapsed {
                    due.push_back(e, Pos::Ready);
                } else {
                    self.file(e);
                }
            }
            due.sort_by_deadline();
            self.ready.merge_sorted(due, Pos::Ready);
        }
    }

    /// Links `e` where its tick belongs relative to `elapsed`.
    ///
    /// # Safety
    /// As `insert` (the count is the caller's business).
    unsafe fn file(&mut self, e: Timer) {
        // SAFETY: the caller's promise, and the wheel's own lists hold only
        // live entries.
        unsafe {
            let tick = tick_of(self.origin, deadline_of(e));
            if tick <= self.elapsed {
                let mut one = TimerList::default();
                one.push_back(e, Pos::Ready);
                self.ready.merge_sorted(one, Pos::Ready);
                return;
            }
            match level_for(self.elapsed, tick) {
                Some(level) => self.levels[level].push(e, tick),
                None => self.parked.push_back(e, Pos::Parked),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
