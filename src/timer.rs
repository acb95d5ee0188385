//! One deadline: its state word, and the lock-free hand-off of armed and
//! cancelled entries to the thread that owns the clock's wheel.
//!
//! The crux: every entry has one atomic state word, and every transition out
//! of `QUEUED` or `FILED` is a CAS, so exactly one of "the owner files it",
//! "the owner fires it" and "someone disarms it" wins. The winner alone decides
//! who calls `release`. Entries travel to the owner on one intrusive Treiber
//! stack (the *inbox*), which the owner empties with a single `swap`.
//!
//! # States
//!
//! ```text
//!   IDLE --arm--> QUEUED --owner drains--> FILED --owner claims--> FIRED
//!     |             |                        |
//!     +--disarm--+--+--disarm-------------+--+
//!                v                        v
//!            CANCELLED                CANCELLED (+ one push onto the inbox)
//! ```
//!
//! # Invariants
//!
//! 1. The state word only moves forward along the arrows above; `FIRED` and
//!    `CANCELLED` are terminal. Every move out of `IDLE`, `QUEUED` and `FILED`
//!    is a CAS, so of two racing moves exactly one succeeds.
//! 2. An entry is on the inbox at most once at a time: `arm` pushes it in
//!    state `QUEUED`; a disarm pushes it again only after winning
//!    `FILED -> CANCELLED`, and `FILED` is only ever stored by the owner after
//!    it has taken the entry off the inbox and read its `queue_next`.
//! 3. `queue_next` belongs to whoever is pushing the entry until the push's
//!    CAS publishes it, then to the owner that swapped the inbox empty. The
//!    owner's Release CAS to `FILED` orders its read of `queue_next` before a
//!    disarmer's write of it (the disarmer's CAS is Acquire).
//! 4. `links` (the wheel's intrusive pointers and position) are touched only by
//!    the wheel's owner, which holds the clock's wheel lock or is the driver.
//! 5. A timer disarmed before the owner saw it (`QUEUED -> CANCELLED`) is never
//!    filed: the owner's `QUEUED -> FILED` CAS fails and it releases the entry
//!    instead (tokio #8252 cannot happen).
//! 6. `fire` runs only after the owner won `FILED -> FIRED`, so it runs at most
//!    once and never after a disarm returned true.
//! 7. `release` is called exactly once per armed entry, by exactly one party:
//!    the owner that fired it (after `fire`); the owner that drained it as
//!    `CANCELLED` (from `QUEUED`, or from `FILED` via the second push); or
//!    `arm` itself, for an entry disarmed before it was ever armed.
//!
//! Deadlock safety: nothing in this module takes a lock, and hooks are never
//! called while the owner holds the wheel lock (see `timer_core`).

use std::ptr::NonNull;
use std::time::Instant;

use crate::sync::{AtomicPtr, AtomicUsize, Ordering, UnsafeCell};

/// Constructed, not yet handed to a clock.
const IDLE: usize = 0;
/// On the inbox; the owner has not seen it yet.
const QUEUED: usize = 1;
/// Linked into the owner's wheel.
const FILED: usize = 2;
/// The owner claimed it and calls (or called) `fire`.
const FIRED: usize = 3;
/// A disarm won; it will never fire.
const CANCELLED: usize = 4;

/// The callbacks through which a clock reaches the node that embeds an entry.
///
/// Both receive the pointer that was passed to [`Clock::arm`](crate::clock::Clock::arm),
/// so a `#[repr(C)]` container whose first field is the entry may cast it back.
pub(crate) struct TimerHooks {
    /// The deadline is due: the node cancels itself with `DeadlineExceeded`.
    /// Called at most once per entry, on the wheel owner's thread, never after
    /// a `disarm` of that entry returned true, with no clock lock held.
    pub(crate) fire: unsafe fn(NonNull<TimerEntry>),
    /// The clock is finished with the entry: drop the memory reference taken
    /// for the clock before `arm`. Called exactly once per armed entry, with no
    /// clock lock held; afterwards the clock never touches the entry.
    pub(crate) release: unsafe fn(NonNull<TimerEntry>),
}

/// Where an entry sits inside the wheel; owned by the wheel's owner (inv. 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pos {
    /// Never reached the owner: the next time the owner sees it on the inbox,
    /// it is the arming push.
    Unfiled,
    /// In a slot of the wheel.
    Slot {
        /// Level index, 0 to 5.
        level: u8,
        /// Slot index, 0 to 63.
        slot: u8,
    },
    /// Beyond the wheel's range, parked until the next top-level rotation.
    Parked,
    /// Due within the current tick, in the deadline-sorted ready list.
    Ready,
    /// Taken out of the wheel. `Links::next` then holds the entry's own
    /// arm-time pointer, so the owner can hand the hooks that pointer.
    Detached,
}

/// The wheel's intrusive links: a doubly linked list per slot.
#[derive(Debug)]
pub(crate) struct Links {
    /// The previous entry in the same list.
    pub(crate) prev: Option<NonNull<TimerEntry>>,
    /// The next entry in the same list; when `Detached`, the entry itself.
    pub(crate) next: Option<NonNull<TimerEntry>>,
    /// Which list, so that removal needs no search.
    pub(crate) pos: Pos,
}

/// The clock-side state of one deadline, embedded by value in a heap node.
///
/// Representation (64 bytes on 64-bit targets): the state word, the inbox
/// link, the wheel links, the deadline and the hooks. Once armed it must not
/// move until `release` is called.
pub(crate) struct TimerEntry {
    /// IDLE, QUEUED, FILED, FIRED or CANCELLED (invariant 1).
    state: AtomicUsize,
    /// The next entry on the inbox (invariant 3).
    queue_next: UnsafeCell<Option<NonNull<TimerEntry>>>,
    /// Owner-only wheel links (invariant 4).
    links: UnsafeCell<Links>,
    deadline: Instant,
    hooks: &'static TimerHooks,
}

// The node budget: 64 bytes of timer state per context (a cache line).
#[cfg(all(target_pointer_width = "64", not(loom)))]
const _: () = assert!(std::mem::size_of::<TimerEntry>() <= 64);

// SAFETY: the non-atomic fields are either immutable (`deadline`, `hooks`) or
// handed between threads only through the synchronisation of invariants 3-4.
unsafe impl Send for TimerEntry {}
// SAFETY: as above; shared access goes through the atomic state word.
unsafe impl Sync for TimerEntry {}

impl std::fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerEntry")
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// What a successful `disarm` left for the owner to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disarmed {
    /// It was never armed; `arm` will release it.
    BeforeArm,
    /// It was still on the inbox; the owner releases it when it drains.
    Queued,
    /// It was in the wheel; the caller must push it onto the inbox.
    Filed,
}

impl TimerEntry {
    /// An idle entry that will be due at `deadline`.
    pub(crate) fn new(deadline: Instant, hooks: &'static TimerHooks) -> TimerEntry {
        TimerEntry {
            state: AtomicUsize::new(IDLE),
            queue_next: UnsafeCell::new(None),
            links: UnsafeCell::new(Links {
                prev: None,
                next: None,
                pos: Pos::Unfiled,
            }),
            deadline,
            hooks,
        }
    }

    /// The instant at or after which the entry fires.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The hooks of the node that embeds this entry.
    pub(crate) fn hooks(&self) -> &'static TimerHooks {
        self.hooks
    }

    /// `IDLE -> QUEUED`; false if a disarm got there first (then the caller
    /// releases, invariant 7).
    pub(crate) fn begin_arm(&self) -> bool {
        // Relaxed: the entry is not shared with the owner yet; the inbox push
        // (Release) publishes this store together with the rest of the entry.
        self.state
            .compare_exchange(IDLE, QUEUED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Tries every forward move into `CANCELLED` (invariant 1).
    pub(crate) fn cancel(&self) -> Option<Disarmed> {
        // Relaxed: only a hint for the first CAS attempt.
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let won = match cur {
                IDLE => Disarmed::BeforeArm,
                QUEUED => Disarmed::Queued,
                FILED => Disarmed::Filed,
                _ => return None, // FIRED or CANCELLED: too late (inv. 6).
            };
            // Acquire: after winning FILED -> CANCELLED we write `queue_next`,
            // which the owner read before its Release CAS to FILED (inv. 3).
            // Release: the owner that releases the entry sees our prior writes.
            match self.state.compare_exchange_weak(
                cur,
                CANCELLED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(won),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Owner: `QUEUED -> FILED`. False means a disarm won (invariant 5).
    pub(crate) fn try_file(&self) -> bool {
        // Release: our read of `queue_next` happens before a disarmer's
        // rewrite of it (inv. 3). Acquire on failure: we are about to release
        // an entry a disarmer cancelled; see its writes first.
        self.state
            .compare_exchange(QUEUED, FILED, Ordering::Release, Ordering::Acquire)
            .is_ok()
    }

    /// Owner: `FILED -> FIRED`. False means a disarm won (invariant 6).
    pub(crate) fn try_claim(&self) -> bool {
        // Acquire: `fire` observes everything done before the entry was armed
        // (already ordered by the inbox) and is ordered after a lost disarm.
        self.state
            .compare_exchange(FILED, FIRED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Reads the inbox link.
    ///
    /// # Safety
    /// `entry` is live and the caller owns `queue_next` (invariant 3).
    unsafe fn queue_next(entry: NonNull<TimerEntry>) -> Option<NonNull<TimerEntry>> {
        // SAFETY: live (caller).
        let e = unsafe { entry.as_ref() };
        // SAFETY: the caller owns `queue_next` (inv. 3): no access races.
        e.queue_next.with(|p| unsafe { *p })
    }

    /// Writes the inbox link, returning the old value.
    ///
    /// # Safety
    /// As for `queue_next`.
    unsafe fn set_queue_next(
        entry: NonNull<TimerEntry>,
        next: Option<NonNull<TimerEntry>>,
    ) -> Option<NonNull<TimerEntry>> {
        // SAFETY: live (caller).
        let e = unsafe { entry.as_ref() };
        // SAFETY: the caller owns `queue_next` (inv. 3): no access races.
        e.queue_next
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, next) })
    }

    /// Runs `f` on the wheel links.
    ///
    /// # Safety
    /// The caller is the wheel's owner (invariant 4) and `entry` is live.
    pub(crate) unsafe fn with_links<R>(
        entry: NonNull<TimerEntry>,
        f: impl FnOnce(&mut Links) -> R,
    ) -> R {
        // SAFETY: `entry` is live (caller), and only the owner reaches `links`
        // (inv. 4), so this is the only reference to them.
        unsafe { entry.as_ref() }
            .links
            // SAFETY: exclusive by invariant 4, see above.
            .with_mut(|links| f(unsafe { &mut *links }))
    }
}

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
            // publishes it (inv. 3).
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
    pub(crate) fn take_all(&self) -> Drained {
        // Acquire: pairs with the pushes' Release, so every entry's fields
        // (and `queue_next`) are visible. SeqCst like `push`.
        let mut cur = NonNull::new(self.head.swap(std::ptr::null_mut(), Ordering::SeqCst));
        // Reverse the LIFO chain in place; the owner owns every `queue_next`
        // on it until it moves the entry to `FILED` (inv. 3).
        let mut reversed = None;
        while let Some(entry) = cur {
            // SAFETY: live (the clock holds it) and `queue_next` is ours.
            cur = unsafe { TimerEntry::set_queue_next(entry, reversed) };
            reversed = Some(entry);
        }
        Drained { next: reversed }
    }
}

/// The entries of one `take_all`, walked through `queue_next`.
pub(crate) struct Drained {
    next: Option<NonNull<TimerEntry>>,
}

impl Iterator for Drained {
    type Item = NonNull<TimerEntry>;

    /// Reads `queue_next` before yielding, as invariant 3 requires: after the
    /// owner's CAS to `FILED`, a disarmer may rewrite it.
    fn next(&mut self) -> Option<NonNull<TimerEntry>> {
        let entry = self.next?;
        // SAFETY: the entry is live (the clock holds its reference) and the
        // owner owns `queue_next` after `take_all` (inv. 3).
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
    len: usize,
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
        // `queue_next` is ours (inv. 3).
        unsafe { TimerEntry::set_queue_next(entry, next) };
        self.head = Some(entry);
        self.len += 1;
    }

    /// How many entries wait to be released.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Calls `release` on every entry; must run with no clock lock held.
    /// A panicking hook is caught; the first payload is returned.
    pub(crate) fn release_all(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        let mut first_panic = None;
        while let Some(entry) = self.head {
            // SAFETY: live until its release below; `queue_next` is ours.
            self.head = unsafe { TimerEntry::queue_next(entry) };
            self.len -= 1;
            let panic = call_hook(entry, |e| e.hooks.release);
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

/// Calls one hook of `entry`, catching a panic so that the caller's loop goes
/// on (a node's `fire` runs user callbacks; `release` may drop user values).
pub(crate) fn call_hook(
    entry: NonNull<TimerEntry>,
    pick: impl FnOnce(&TimerEntry) -> unsafe fn(NonNull<TimerEntry>),
) -> Option<Box<dyn std::any::Any + Send>> {
    // SAFETY: the caller holds the clock's reference to `entry`.
    let hook = pick(unsafe { entry.as_ref() });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `entry` is the arm-time pointer and the clock's reference
        // is still held; the hooks' contract is the node's.
        unsafe { hook(entry) }
    }))
    .err()
}
