//! One deadline: a timer entry, its state word, and its hooks.
//!
//! The crux: every entry has one atomic state word, and every transition out
//! of `QUEUED` or `FILED` is a CAS, so exactly one of "the owner files it",
//! "the owner fires it" and "someone disarms it" wins. The winner alone decides
//! who calls `release`. Entries travel to the owner on one intrusive Treiber
//! stack (the *inbox*, `inbox.rs`), which the owner empties with a single
//! `swap`.
//!
//! # States
//!
//! ```text
//!   IDLE --arm--> QUEUED --owner files--> FILED --owner claims--> FIRED
//!     |             |                        |
//!     +--disarm--+  +--disarm--+             +--disarm--+
//!                v             v                        v
//!            CANCELLED     WITHDRAWN          CANCELLED (+ one push onto the inbox)
//! ```
//!
//! `WITHDRAWN` is `CANCELLED` for an entry that is still on the inbox and
//! was never filed: whoever takes it off the inbox releases it without the
//! wheel, which is what lets a disarming thread release the entries of its
//! own shard with no lock (`TimerCore::sweep_mine`).
//!
//! # Invariants
//!
//! 1. The state word only moves forward along the arrows above; `FIRED` and
//!    `CANCELLED` are terminal. Every move out of `IDLE`, `QUEUED` and `FILED`
//!    is a CAS, so of two racing moves exactly one succeeds.
//! 2. An entry is on the inbox at most once at a time: `arm` pushes it in
//!    state `QUEUED` (or, for an entry built queued, `WITHDRAWN` if a disarm
//!    came first); a disarm pushes it again only after winning
//!    `FILED -> CANCELLED`, and `FILED` is only ever stored by the owner after
//!    it has taken the entry off the inbox and read its `queue_next`.
//! 3. `queue_next` belongs to whoever is pushing the entry until the push's
//!    CAS publishes it, then to the owner that swapped the inbox empty (or
//!    the sweeper that swapped its shard empty, until it pushes the entry
//!    back). The
//!    owner's Release CAS to `FILED` orders its read of `queue_next` before a
//!    disarmer's write of it (the disarmer's CAS is Acquire).
//! 4. `links` (the wheel's intrusive pointers and position) are touched only by
//!    the wheel's owner, which holds the clock's wheel lock or is the driver.
//! 5. A timer disarmed before the owner saw it (`QUEUED -> WITHDRAWN`) is never
//!    filed: the owner's `QUEUED -> FILED` CAS fails and it releases the entry
//!    instead (tokio #8252 cannot happen).
//! 6. `fire` runs only after the owner won `FILED -> FIRED`, so it runs at most
//!    once and never after a disarm returned true.
//! 7. `release` is called exactly once per armed entry, by exactly one party:
//!    the owner that fired it (after `fire`); the owner that took it off the
//!    inbox as `WITHDRAWN`, or as `CANCELLED` via the second push; the
//!    sweeper that took it off its shard as `WITHDRAWN`; or `arm` itself,
//!    for an entry disarmed before it was ever armed.
//!
//! Deadlock safety: nothing in this module takes a lock, and hooks are never
//! called while the owner holds the wheel lock (see `core.rs`).

use std::ptr::NonNull;
use std::time::Instant;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

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
/// A disarm won while the entry was on the inbox, never filed: released by
/// whoever takes it off, without the wheel.
const WITHDRAWN: usize = 5;

/// The callbacks through which a clock reaches the node that embeds an entry.
///
/// Both receive the pointer that was passed to `Clock::arm`,
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
    Unlinked,
}

/// The wheel's intrusive links: a doubly linked list per slot.
#[derive(Debug)]
pub(crate) struct Links {
    /// The previous entry in the same list.
    pub(crate) prev: Option<NonNull<TimerEntry>>,
    /// The next entry in the same list; when `Unlinked`, the entry itself.
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
    /// It was still on the inbox; the owner releases it when it empties the inbox.
    Queued,
    /// It was in the wheel; the caller must push it onto the inbox.
    Filed,
}

impl TimerEntry {
    /// An idle entry that will be due at `deadline` (the tests' entries).
    #[cfg(test)]
    pub(crate) fn new(deadline: Instant, hooks: &'static TimerHooks) -> TimerEntry {
        TimerEntry::built(deadline, hooks, false)
    }

    /// An entry due at `deadline`, idle or, if `queued`, built armed: its
    /// container is not shared yet and will be armed, so the construction's
    /// plain store does what `begin_arm`'s compare-exchange would. A disarm
    /// from then on withdraws it (`QUEUED -> WITHDRAWN`); `arm` pushes it
    /// all the same, and whoever takes it off the inbox releases it. Its
    /// owner must arm it, unless it knows that no disarm can involve the
    /// clock (the container was done before `arm`: then it gives back the
    /// clock's reference itself, and the entry never reaches the clock).
    #[inline]
    pub(crate) fn built(deadline: Instant, hooks: &'static TimerHooks, queued: bool) -> TimerEntry {
        TimerEntry {
            // Relaxed (by construction): published with its container.
            state: AtomicUsize::new(if queued { QUEUED } else { IDLE }),
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
    /// releases, invariant 7). An entry built queued is pushed as it is.
    pub(crate) fn begin_arm(&self) -> bool {
        // Relaxed: the entry is not shared with the owner yet; the inbox push
        // (Release) publishes this store together with the rest of the entry.
        match self.state.load(Ordering::Relaxed) {
            // Only `built(.., true)` reaches these before `arm`: an idle
            // entry leaves IDLE here or to CANCELLED.
            QUEUED | WITHDRAWN => true,
            // Relaxed: as above.
            IDLE => self
                .state
                .compare_exchange(IDLE, QUEUED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok(),
            _ => false,
        }
    }

    /// Tries every forward move into `CANCELLED` (invariant 1).
    pub(crate) fn cancel(&self) -> Option<Disarmed> {
        // Relaxed: only a hint for the first CAS attempt.
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (won, to) = match cur {
                IDLE => (Disarmed::BeforeArm, CANCELLED),
                QUEUED => (Disarmed::Queued, WITHDRAWN),
                FILED => (Disarmed::Filed, CANCELLED),
                _ => return None, // FIRED, CANCELLED or WITHDRAWN: too late (inv. 6).
            };
            // Acquire: after winning FILED -> CANCELLED we write `queue_next`,
            // which the owner read before its Release CAS to FILED (inv. 3).
            // Release: the owner that releases the entry sees our prior writes.
            match self
                .state
                .compare_exchange_weak(cur, to, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(won),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Whether a disarm withdrew the entry from the inbox (terminal): then
    /// whoever took it off the inbox releases it.
    pub(crate) fn is_withdrawn(&self) -> bool {
        // Acquire: we are about to release the entry; see the disarmer's
        // writes (its CAS was AcqRel) first.
        self.state.load(Ordering::Acquire) == WITHDRAWN
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
    pub(super) unsafe fn queue_next(entry: NonNull<TimerEntry>) -> Option<NonNull<TimerEntry>> {
        // SAFETY: live (caller).
        let e = unsafe { entry.as_ref() };
        // SAFETY: the caller owns `queue_next` (inv. 3): no access races.
        e.queue_next.with(|p| unsafe { *p })
    }

    /// Writes the inbox link, returning the old value.
    ///
    /// # Safety
    /// As for `queue_next`.
    pub(super) unsafe fn set_queue_next(
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

/// Calls one hook of `entry`, catching a panic so that the caller's loop goes
/// on (a node's `fire` runs user callbacks; `release` may drop user values).
///
/// # Safety
/// `entry` is the arm-time pointer of a live entry whose clock reference the
/// caller still holds, and the call is one the hooks' contract allows
/// (`fire` after winning `FILED -> FIRED`; `release` exactly once).
pub(crate) unsafe fn call_hook(
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
