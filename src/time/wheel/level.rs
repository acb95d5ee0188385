//! One level of the timing wheel: 64 slots, each an intrusive list, and a
//! `u64` occupancy bitmap with bit `s` set iff slot `s` is non-empty.
//!
//! Level `L` slot `s` holds entries whose tick agrees with the wheel's
//! `elapsed` on every bit above `6 * (L + 1)` and has `s` in bits
//! `6L .. 6L + 6`. A slot therefore covers `64^L` ticks and the level
//! `64^(L+1)`.

use std::ptr::NonNull;

use super::list::TimerList;
use crate::time::entry::{Pos, TimerEntry};

/// Slots per level.
pub(crate) const SLOTS: usize = 64;
/// log2(SLOTS): tick bits per level.
pub(crate) const BITS: u32 = 6;

/// One level of the wheel.
#[derive(Debug)]
pub(crate) struct Level {
    /// This level's index, 0 (1 tick per slot) to 5.
    level: u32,
    /// Bit `s` set iff `slots[s]` is non-empty.
    occupied: u64,
    slots: [TimerList; SLOTS],
}

impl Level {
    /// An empty level.
    pub(crate) fn new(level: u32) -> Level {
        Level {
            level,
            occupied: 0,
            slots: std::array::from_fn(|_| TimerList::default()),
        }
    }

    /// Ticks covered by one slot of this level.
    fn slot_span(&self) -> u64 {
        1 << (BITS * self.level)
    }

    /// Ticks covered by the whole level.
    fn level_span(&self) -> u64 {
        1 << (BITS * (self.level + 1))
    }

    /// The slot that `tick` maps to on this level.
    pub(crate) fn slot_for(&self, tick: u64) -> usize {
        ((tick >> (BITS * self.level)) as usize) & (SLOTS - 1)
    }

    /// Files `e` (tick `tick`) into its slot.
    ///
    /// # Safety
    /// The list contract (`list.rs`); `e` is in no list.
    pub(crate) unsafe fn push(&mut self, e: NonNull<TimerEntry>, tick: u64) {
        let slot = self.slot_for(tick);
        let pos = Pos::Slot {
            level: self.level as u8,
            slot: slot as u8,
        };
        // SAFETY: the caller's promise.
        unsafe { self.slots[slot].push_back(e, pos) };
        self.occupied |= 1 << slot;
    }

    /// Unlinks `e` from `slot`; returns the list's (arm-time) pointer.
    ///
    /// # Safety
    /// The list contract (`list.rs`); `e` is in `slot`.
    pub(crate) unsafe fn remove(
        &mut self,
        e: NonNull<TimerEntry>,
        slot: usize,
    ) -> NonNull<TimerEntry> {
        // SAFETY: the caller's promise.
        let stored = unsafe { self.slots[slot].remove(e) };
        if self.slots[slot].is_empty() {
            self.occupied &= !(1 << slot);
        }
        stored
    }

    /// The entries of `slot`.
    pub(crate) fn slot(&self, slot: usize) -> &TimerList {
        &self.slots[slot]
    }

    /// Empties `slot` and returns its entries.
    pub(crate) fn take(&mut self, slot: usize) -> TimerList {
        self.occupied &= !(1 << slot);
        std::mem::take(&mut self.slots[slot])
    }

    /// The first occupied slot at or after `elapsed`'s slot, with the tick
    /// at which it starts. One bit scan: empty slots are never visited.
    ///
    /// Entries only ever sit in slots after `elapsed`'s own (the wheel
    /// processes a slot as soon as `elapsed` reaches its start), so masking
    /// off the earlier slots loses nothing; the debug assertion checks it.
    pub(crate) fn next_occupied(&self, elapsed: u64) -> Option<(usize, u64)> {
        let now_slot = self.slot_for(elapsed);
        debug_assert_eq!(
            self.occupied & !(u64::MAX << now_slot),
            0,
            "slot behind the wheel"
        );
        let ahead = self.occupied & (u64::MAX << now_slot);
        if ahead == 0 {
            return None;
        }
        let slot = ahead.trailing_zeros() as usize;
        let base = elapsed & !(self.level_span() - 1);
        Some((slot, base + slot as u64 * self.slot_span()))
    }
}
