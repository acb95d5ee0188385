//! The inbox: the lock-free hand-off of armed and cancelled entries to the
//! thread that owns the clock's wheel, and the graveyard of entries the
//! owner releases once it has let go of the wheel. Invariants 2, 3 and 7 of
//! `entry.rs` govern both.

use std::ptr::NonNull;

use super::entry::{call_hook, TimerEntry};
use crate::sync::{AtomicPtr, Ordering};

/// Intrusive Treiber stack of entries on their way to the wheel's owner.
///
/// Producers (`arm`, a disarm of a filed entry) push with a CAS loop; the one
/// consumer takes everything with a `swap`. Because nothing is ever popped
/// singly, ABA cannot bite: a push only needs `next == head` at its CAS.
pub(crate) struct Inbox {
    head: AtomicPtr<TimerEntry>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("empty", &self.is_empty())
            .finish()
    }
}

impl Inbox {
    /// An empty inbox.
    pub(crate) fn new() -> Inbox {
        Inbox {
            head: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Pushes `entry`.
    ///
    /// # Safety
    /// `entry` is live until the owner releases it and is not on the inbox
    /// (invariant 2); the caller owns its `queue_next` (invariant 3).
    pub(crate) unsafe fn push(&self, entry: NonNull<TimerEntry>) {
        // Relaxed: the CAS below carries the ordering.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let next = NonNull::new(head);
            // SAFETY: live (caller); we own `queue_next` until the CAS
            // publishes it (entry inv. 3).
            unsafe { TimerEntry::set_queue_next(entry, next) };
            // SeqCst: publishes the entry (Release for the owner's Acquire
            // swap) and takes part in the driver's sleep/wake handshake: the
            // driver stores its sleep target, then checks `is_empty` (SeqCst),
            // while `arm` pushes, then loads the target; one of them sees the
            // other (no lost wake-up).
            match self.head.compare_exchange_weak(
                head,
                entry.as_ptr(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Whether nothing waits; SeqCst for the driver handshake (see `push`).
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null()
    }

    /// Owner: takes every pushed entry, in push order (so that timers with
    /// equal deadlines fire in the order they were armed).
    pub(crate) fn take_all(&self) -> Taken {
        // Acquire: pairs with the pushes' Release, so every entry's fields
        // (and `queue_next`) are visible. SeqCst like `push`.
        let mut cur = NonNull::new(self.head.swap(std::ptr::null_mut(), Ordering::SeqCst));
        // Reverse the LIFO chain in place; the owner owns every `queue_next`
        // on it until it moves the entry to `FILED` (entry inv. 3).
        let mut reversed = None;
        while let Some(entry) = cur {
            // SAFETY: live (the clock holds it) and `queue_next` is ours.
            cur = unsafe { TimerEntry::set_queue_next(entry, reversed) };
            reversed = Some(entry);
        }
        Taken { next: reversed }
    }
}

/// The entries of one `take_all`, walked through `queue_next`.
pub(crate) struct Taken {
    next: Option<NonNull<TimerEntry>>,
}

impl Iterator for Taken {
    type Item = NonNull<TimerEntry>;

    /// Reads `queue_next` before yielding, as invariant 3 requires: after the
    /// owner's CAS to `FILED`, a disarmer may rewrite it.
    fn next(&mut self) -> Option<NonNull<TimerEntry>> {
        let entry = self.next?;
        // SAFETY: the entry is live (the clock holds its reference) and the
        // owner owns `queue_next` after `take_all` (entry inv. 3).
        self.next = unsafe { TimerEntry::queue_next(entry) };
        Some(entry)
    }
}

/// Entries the owner must release once it has dropped the wheel lock. The
/// list reuses `queue_next`, which nobody else touches once an entry is
/// `CANCELLED` or `FIRED` and off the inbox.
#[derive(Default)]
pub(crate) struct Graveyard {
    head: Option<NonNull<TimerEntry>>,
}

impl Graveyard {
    /// Adds a cancelled entry taken off the inbox and out of the wheel.
    ///
    /// # Safety
    /// `entry` is the arm-time pointer of a live entry that no other party
    /// will release (invariant 7).
    pub(crate) unsafe fn bury(&mut self, entry: NonNull<TimerEntry>) {
        let next = self.head;
        // SAFETY: live (caller); terminal and off the inbox, so
        // `queue_next` is ours (entry inv. 3).
        unsafe { TimerEntry::set_queue_next(entry, next) };
        self.head = Some(entry);
    }

    /// Whether nothing is buried.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Calls `release` on every entry; must run with no clock lock held.
    /// A panicking hook is caught; the first payload is returned.
    pub(crate) fn release_all(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        let mut first_panic = None;
        while let Some(entry) = self.head {
            // SAFETY: live until its release below; `queue_next` is ours.
            self.head = unsafe { TimerEntry::queue_next(entry) };
            // SAFETY: buried entries are released by us alone, once
            // (invariant 7), with their clock reference still held.
            let panic = unsafe { call_hook(entry, |e| e.hooks().release) };
            first_panic = crate::unwind::first(first_panic, panic);
        }
        first_panic
    }
}

impl Drop for Graveyard {
    fn drop(&mut self) {
        // Never drop references silently: a graveyard always gets emptied.
        crate::unwind::discard(self.release_all());
    }
}
