//! The drained signal's operations on a closed list's word (drained.rs):
//! the drainer's drained mark, and the sleepers that losing cancellers
//! push onto the closed word to wait for it. A child module of `list`, as
//! they work on its state word and its entries' links.

use super::super::state::{drained, CLOSED, DRAINED, TAGS, WOKEN};
use super::{Entry, List};
use crate::sync::AtomicUsize;
use crate::sync::Ordering::{AcqRel, Relaxed, Release};
use std::ptr::NonNull;

impl Entry {
    /// The next sleeper on a chain taken by a drained mark
    /// ([`List::mark_drained`]).
    ///
    /// # Safety
    /// The entry is a sleeper on a chain the caller took, not yet released.
    pub(crate) unsafe fn sleeper_next(&self) -> usize {
        // Relaxed: written before the push, whose Release the marking
        // swap's Acquire read.
        self.next.load(Relaxed)
    }
}

impl List {
    /// Marks the closed list's node drained (drained.rs invariants 1-3) and
    /// returns the chain of sleepers the mark took (0 if none). Only the
    /// node's drainer calls it, once.
    pub(crate) fn mark_drained(&self) -> usize {
        // Relaxed: only decides between the store and the swap; the swap
        // reads the sleepers with Acquire.
        let cur = self.state.load(Relaxed);
        debug_assert!(cur & CLOSED != 0 && !drained(cur));
        if cur & !TAGS == 0 {
            // Release: a loser that sees the mark (Acquire) sees every close
            // of the subtree. A sleeper pushed since our load is erased
            // (drained.rs invariant 3).
            #[cfg(not(loom))]
            self.state.store(cur & TAGS | DRAINED, Release);
            // The same write as a swap: loom keeps a partial modification
            // order, in which a plain store and an RMW that did not see each
            // other may stay unordered for ever (a state no C++ execution
            // reaches); an RMW it orders. Its result says whether the write
            // erased sleepers, whose timeouts loom models (loom_park.rs).
            #[cfg(loom)]
            if self.state.swap(cur & TAGS | DRAINED, Release) & !TAGS != 0 {
                super::super::loom_park::expire(self as *const List as usize);
            }
            return 0;
        }
        // AcqRel: Acquire reads the sleepers their pushes published,
        // Release as the store above.
        self.state.swap(cur & TAGS | WOKEN, AcqRel) & !TAGS
    }

    /// Pushes a sleeper onto the closed, undrained list; `refs` counts the
    /// list's reference already, as for `push`. False (the reference given
    /// back) if the node is drained already.
    ///
    /// # Safety
    /// `entry` is a new thread waiter's entry counted by `refs`, derived
    /// from the waiter's allocation pointer (entry invariant 2), and the
    /// list is closed.
    pub(crate) unsafe fn push_sleeper(&self, entry: NonNull<Entry>, refs: &AtomicUsize) -> bool {
        let addr = entry.as_ptr() as usize;
        // SAFETY: valid (caller).
        let entry = unsafe { entry.as_ref() };
        // Relaxed: the compare-exchange below decides.
        let mut cur = self.state.load(Relaxed);
        loop {
            debug_assert!(cur & CLOSED != 0);
            if drained(cur) {
                // Relaxed: the caller still holds its own reference.
                refs.fetch_sub(1, Relaxed);
                return false;
            }
            // Relaxed: published by the Release half of the exchange.
            entry.next.store(cur & !TAGS, Relaxed);
            // Release: the marker's swap reads the sleeper initialised.
            match self
                .state
                .compare_exchange_weak(cur, addr | cur & TAGS, Release, Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }
}
