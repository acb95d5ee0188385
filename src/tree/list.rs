//! The intrusive lock-free list of a cancellable node: the [`List`] type,
//! its links ([`Entry`]) and its sweep policy.
//!
//! Children, waiters and `after_func` callbacks of a node are [`Entry`]s
//! pushed onto one singly linked list whose head is the node's state word
//! (see `state.rs`). Three kinds of thread touch it:
//!
//! - an *inserter* pushes at the head with one compare-exchange, which fails
//!   once the node is closed (state invariant 3);
//! - an entry's *holder* (the `Done`, the wait, the `AfterFunc`, or the child
//!   node itself) withdraws it: it deletes it logically with one
//!   `fetch_or(MARK)` on the entry's own `next` word, and a *sweeper* unlinks
//!   marked entries later (Harris/Michael style), so removal is O(1)
//!   amortised;
//! - the *drainer* (the thread that closed the node) takes the whole chain
//!   with the close itself, then walks it, claiming each entry with the same
//!   `fetch_or(MARK)`.
//!
//! The list never looks inside an entry's container: releasing the
//! reference an entry holds is the caller's business (`entry.rs`), passed
//! in as a function where the list needs it.
//!
//! Invariants:
//! 1. `MARK` on an entry's `next` is set once and never cleared; whoever sets
//!    it (holder or drainer) *claims* the entry: the drainer acts on an entry
//!    (cancel, wake, run) only if it set the mark, the holder withdraws it
//!    (drop, stop, time-out) only if it set the mark. So each entry is
//!    either acted on or withdrawn, exactly once.
//! 2. A marked `next` is never written again. The drainer marks an entry
//!    before it follows its `next`, so from then on no sweeper can unlink the
//!    entry's successor (its compare-exchange expects an unmarked `next`):
//!    the taken chain is frozen behind the drainer.
//! 3. Every linked entry holds one reference on its container's memory.
//!    Exactly one thread releases it: the sweeper whose compare-exchange
//!    unlinked the entry, or the drainer that reached it on the taken
//!    chain (by invariant 2, never both).
//! 4. Sweepers traverse under an epoch guard, and released references are
//!    deferred through that guard, so memory a sweeper may still read is not
//!    freed before the sweeper unpins.
//!
//! 5. A holder whose marked entry is still the head may unlink it itself
//!    (`unlink_head`) and then free it without the epoch, provided no
//!    sweeper is running: the holder's head compare-exchange and its later
//!    load of the node's sweeper flag, and the sweeper's raising of that
//!    flag and its first head load, are all SeqCst. So either the holder
//!    sees the flag raised (and defers the release through the epoch), or
//!    the sweeper's first head load comes after the unlink in the single
//!    SeqCst order and never sees the entry. A sweeper that finished before
//!    the holder looked lowered the flag with Release, so its reads of the
//!    entry happen before the holder's free.
//!
//! 6. Likewise, a drainer that finds no sweeper running right after its close
//!    (SeqCst close, then SeqCst load of the flag) may free the taken
//!    chain's entries without the epoch: any later sweeper's first head load
//!    sees the node closed and stops, and an earlier one lowered the flag
//!    with Release after its last read.
//!
//! Why a sweeper and a drainer cannot both release an entry `X` with
//! predecessor `P`: the sweeper releases `X` only after its compare-exchange
//! `P.next: X -> X.next` succeeds, which requires `P.next` unmarked; the
//! drainer reaches `X` only through the value its `fetch_or` on `P.next`
//! returned. The two RMWs on `P.next` are ordered: if the sweep came first,
//! the drainer never sees `X`; if the drainer came first, the sweep fails
//! and restarts from the head, which is closed, so it stops.

use super::state::{CLOSED, DRAINED, TAGS};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use crate::sync::{AtomicBool, AtomicU32, AtomicUsize};
use crossbeam_epoch::Guard;
use std::ptr::NonNull;

mod sleepers;

/// The deletion mark in an entry's `next` word.
const MARK: usize = 1;

/// Sweep at least this many dead entries at a time.
const SWEEP_MIN: u32 = 64;

/// What contains an entry; `entry.rs` maps each kind to its container.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EntryKind {
    /// The `link` of a cancellable child node.
    Child,
    /// The second link of a `merge` node, in its second parent's list.
    MergeLink,
    /// A `Done` future or a blocked thread.
    Waiter,
    /// An `after_func` registration.
    Callback,
}

/// One link of a list; embedded in its container (never moved once linked).
///
/// Aligned to 8 so that the state word has three tag bits below it.
#[repr(C, align(8))]
pub(crate) struct Entry {
    /// The successor's address, with `MARK` in bit 0.
    next: AtomicUsize,
    kind: EntryKind,
    /// Set by a holder that kept the list reference `withdraw` gave it
    /// (`entry.rs`); in the padding, so the entry stays 16 bytes.
    pub(super) kept: AtomicBool,
}

impl Entry {
    pub(crate) fn new(kind: EntryKind) -> Entry {
        Entry {
            next: AtomicUsize::new(0),
            kind,
            kept: AtomicBool::new(false),
        }
    }

    pub(crate) fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Claims the entry (invariant 1). True iff this call set the mark.
    pub(crate) fn mark(&self) -> bool {
        // Acquire: a mark seen here was set by the claimer; skipping the RMW
        // is then safe because marks are never cleared (invariant 1).
        if self.next.load(Acquire) & MARK != 0 {
            return false;
        }
        // AcqRel: the mark is the single decision point between holder and
        // drainer; each side must see what the other did before deciding.
        self.next.fetch_or(MARK, AcqRel) & MARK == 0
    }

    /// Marks an entry that was never linked, so that later `mark` calls
    /// report that nobody is left to withdraw it from.
    pub(crate) fn mark_unlinked(&self) {
        // Relaxed: the entry is not shared yet.
        self.next.store(MARK, Relaxed);
    }

    /// The drainer's step on a taken chain: claims the entry and returns
    /// whether it was claimed here, and the next entry's address (0 at the
    /// end).
    ///
    /// # Safety
    /// The entry must be on a chain taken by this thread's `close`, not yet
    /// released.
    pub(crate) unsafe fn claim_next(&self) -> (bool, usize) {
        // AcqRel: freezes the link (invariant 2) and decides the claim
        // (invariant 1); Acquire also reads the successor the link points to.
        let next = self.next.fetch_or(MARK, AcqRel);
        (next & MARK == 0, next & !MARK)
    }
}

/// Releases the list reference an entry holds on its container.
pub(crate) type ReleaseFn = unsafe fn(NonNull<Entry>);

/// The list of a cancellable node: its head (the node's state word), the
/// flag that elects one sweeper, and the sweep policy's two counters; 16
/// bytes.
///
/// `state` comes first: the drain touches it and the sweeper flag of every
/// child, and nothing else here (see `CancelNode`).
#[repr(C)]
pub(crate) struct List {
    /// The state word and list head (`state.rs`).
    state: AtomicUsize,
    /// Entries marked deleted since the last sweep (a trigger, not exact).
    dead: AtomicU32,
    /// `SWEEPING`, which elects one sweeper at a time (nobody ever waits on
    /// it), and below it the sweep policy's threshold: sweep once `dead`
    /// reaches it. One word, so that the list takes 16 bytes; only the
    /// elected sweeper changes the threshold, and it lowers the flag in the
    /// same store.
    sweep: AtomicU32,
}

/// The sweeper flag in `List::sweep`.
const SWEEPING: u32 = 1 << 31;

impl List {
    /// An open, empty list.
    pub(crate) fn new() -> List {
        List {
            state: AtomicUsize::new(0),
            dead: AtomicU32::new(0),
            sweep: AtomicU32::new(SWEEP_MIN),
        }
    }

    /// The state word (`state.rs`), for readers of `err()`.
    #[inline]
    pub(crate) fn word(&self) -> usize {
        // Acquire: a reader that sees the node done may read its cause.
        self.state.load(Acquire)
    }

    /// Pushes `entry`, whose container's `refs` already counts the list's
    /// memory reference (invariant 3: a container not yet shared counts it
    /// with a plain store, no atomic increment). On a closed list, gives
    /// the reference back, marks the entry so that nobody later withdraws
    /// it from a list it never joined, and returns the state word seen.
    ///
    /// The list keeps `entry`'s address (exposing its provenance); the drain
    /// and sweepers turn it back into a pointer, so `entry` must be derived
    /// from its container's allocation pointer (entry invariant 2).
    ///
    /// # Safety
    /// `entry` must be valid and unlinked, `refs` must count the memory that
    /// contains it (the list's reference included), and it must stay valid
    /// until that reference is released (invariant 3).
    pub(crate) unsafe fn push(
        &self,
        entry: NonNull<Entry>,
        refs: &AtomicUsize,
    ) -> Result<(), usize> {
        let addr = entry.as_ptr() as usize;
        // SAFETY: valid (caller).
        let entry = unsafe { entry.as_ref() };
        // Acquire: if the node is closed we go on to read its cause record.
        let mut cur = self.state.load(Acquire);
        loop {
            if cur & CLOSED != 0 {
                entry.mark_unlinked();
                // Relaxed: the caller still holds its own reference.
                refs.fetch_sub(1, Relaxed);
                return Err(cur);
            }
            // Relaxed: published by the Release half of the compare-exchange.
            entry.next.store(cur, Relaxed);
            // Release: the drainer that takes the chain must see the entry
            // initialised. A failed push is ordered against the close by the
            // word's modification order (state invariant 3).
            match self.state.compare_exchange_weak(cur, addr, AcqRel, Acquire) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Closes the list: sets the state word to `closed` (which has `CLOSED`
    /// set) and returns the taken chain's first entry, or `None` if the node
    /// was closed already (state invariant 1). An empty list is closed
    /// drained: it has no subtree (drained.rs invariant 1).
    pub(crate) fn close(&self, closed: usize) -> Option<usize> {
        debug_assert!(closed & CLOSED != 0 && closed & !TAGS == 0);
        // Acquire: the chain we take was published by Release pushes.
        let mut cur = self.state.load(Acquire);
        loop {
            if cur & CLOSED != 0 {
                return None;
            }
            // SeqCst: Release publishes the cause record to every reader that
            // sees CLOSED, Acquire takes the chain, and SeqCst is the drainer's
            // half of the sweeper-flag handshake (invariant 6).
            let new = if cur & !TAGS == 0 {
                closed | DRAINED
            } else {
                closed
            };
            match self.state.compare_exchange_weak(cur, new, SeqCst, Acquire) {
                Ok(_) => return Some(cur & !TAGS),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Whether a sweeper is walking the list now (invariants 5, 6).
    pub(crate) fn sweeper_active(&self) -> bool {
        // SeqCst: the reader's half of the handshake of invariant 6.
        self.sweep.load(SeqCst) & SWEEPING != 0
    }

    /// Withdraws one of our entries for its holder: marks it, and if the
    /// mark was ours unlinks it now (invariant 5) or counts it for a sweep.
    /// Whoever unlinks it releases its list reference through `release`,
    /// except this call's fast path, which hands it to the caller.
    ///
    /// # Safety
    /// `entry` must have been pushed onto this list (or marked unlinked), and
    /// `release` must release exactly the reference a linked entry holds.
    pub(crate) unsafe fn withdraw(&self, ptr: NonNull<Entry>, release: ReleaseFn) -> Withdrawn {
        // SAFETY: the caller's entry, alive while it withdraws it.
        let entry = unsafe { ptr.as_ref() };
        if !entry.mark() {
            return Withdrawn::Lost; // the drainer claimed it, and its reference
        }
        // SAFETY: we marked our own linked entry.
        if !unsafe { self.unlink_head(ptr) } {
            // SAFETY: the caller's promise about `release`.
            unsafe { self.entry_deleted(release) }; // a sweep will unlink it
            return Withdrawn::Claimed;
        }
        // The list reference is ours now (invariant 5).
        // SeqCst: the holder's second half of invariant 5.
        if self.sweep.load(SeqCst) & SWEEPING != 0 {
            let guard = crossbeam_epoch::pin();
            // SAFETY: we own the list reference; the sweeper may still read
            // the entry, so the release waits for the epoch (invariant 4).
            unsafe { defer_release(&guard, ptr, release) };
            return Withdrawn::Claimed;
        }
        // No sweeper can reach the entry (invariant 5), and the drainer
        // never will: it left the list before any close.
        Withdrawn::Owned
    }

    /// The holder's fast path after marking its own entry: if the entry is
    /// still the list's head, unlink it with one compare-exchange
    /// (invariant 5). True if this call unlinked it; the caller then owns
    /// its list reference.
    ///
    /// # Safety
    /// `entry` must be marked by the caller and linked in this list.
    unsafe fn unlink_head(&self, entry: NonNull<Entry>) -> bool {
        // SAFETY: linked, so alive (caller).
        let succ = unsafe { entry.as_ref() }.next.load(Relaxed) & !MARK;
        // SeqCst: one half of the Dekker handshake with the sweeper flag
        // (invariant 5); the Acquire load above is ordered by the mark.
        self.state
            .compare_exchange(entry.as_ptr() as usize, succ, SeqCst, Relaxed)
            .is_ok()
    }

    /// An entry was marked by its holder: sweep once enough are.
    ///
    /// # Safety
    /// As [`withdraw`](List::withdraw).
    unsafe fn entry_deleted(&self, release: ReleaseFn) {
        // Relaxed: `dead` only triggers sweeps; correctness never reads it.
        let dead = self.dead.fetch_add(1, Relaxed).wrapping_add(1) as i32;
        if dead < (self.sweep.load(Relaxed) & !SWEEPING) as i32 {
            return;
        }
        // SeqCst: raises the flag of invariant 5 before the sweep's first
        // head load; also orders us after the previous sweeper.
        let at = self.sweep.fetch_or(SWEEPING, SeqCst);
        if at & SWEEPING != 0 {
            return; // somebody is sweeping; they or the next delete will do
        }
        let mut at = at;
        let guard = crossbeam_epoch::pin();
        // SAFETY: our entries follow invariant 3; the caller vouches for
        // `release`.
        if let Some(s) = unsafe { self.sweep(&guard, release) } {
            // Relaxed: as the increment; `dead` only paces sweeps.
            self.dead.fetch_sub(s.removed, Relaxed);
            at = s.kept.clamp(SWEEP_MIN, SWEEPING - 1);
        }
        // We pin rarely, so help the epoch along: hand our deferred frees
        // over and collect, or garbage would outpace collection.
        guard.flush();
        // Release: pairs with the next sweeper's Acquire. Only the flag's
        // holder writes the word (a rival's `fetch_or` of a raised flag
        // changes nothing), so a store loses no update.
        self.sweep.store(at, Release);
    }

    /// Unlinks every marked entry of an open list, releasing each one's
    /// list reference through `guard` (invariant 4). Returns `None` if the
    /// list is closed: the drainer owns it then.
    ///
    /// # Safety
    /// The entries satisfy invariant 3 and `release` releases exactly the
    /// reference a linked entry holds.
    unsafe fn sweep(&self, guard: &Guard, release: ReleaseFn) -> Option<Swept> {
        let mut removed = 0;
        'restart: loop {
            let mut kept = 0;
            let mut prev: &AtomicUsize = &self.state;
            // SeqCst: the sweeper's half of the handshake of invariant 5 (the
            // flag was raised by a SeqCst `fetch_or`); also Acquire for the
            // entries.
            let mut cur = prev.load(SeqCst);
            if cur & CLOSED != 0 {
                return None;
            }
            while let Some(entry) = NonNull::new(cur as *mut Entry) {
                // SAFETY: `entry` was reachable from the list while we were
                // pinned, so its memory is not freed before we unpin (inv. 4).
                let e = unsafe { entry.as_ref() };
                // Acquire: pairs with the Release of a sweeper that rewrote this
                // link, so the entry it names is seen initialised.
                let next = e.next.load(Acquire);
                if next & MARK == 0 {
                    kept += 1;
                    prev = &e.next;
                    cur = next;
                    continue;
                }
                let succ = next & !MARK;
                // AcqRel: Release hands the successor to later readers;
                // failure means `prev` was marked or changed: start over.
                if prev.compare_exchange(cur, succ, AcqRel, Acquire).is_err() {
                    continue 'restart;
                }
                removed += 1;
                // SAFETY: our CAS unlinked it, so its list reference is ours.
                unsafe { defer_release(guard, entry, release) };
                cur = succ;
            }
            return Some(Swept { removed, kept });
        }
    }
}

/// What became of a withdrawn entry's list reference.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Withdrawn {
    /// The drainer had claimed the entry: the reference is its.
    Lost,
    /// Claimed: released through the epoch, or left to a sweep.
    Claimed,
    /// Claimed and unlinked with nobody else about: the caller owns it.
    Owned,
}

/// Outcome of a sweep.
struct Swept {
    /// Entries this sweep unlinked.
    removed: u32,
    /// Unmarked entries it walked past in its last pass.
    kept: u32,
}

/// Releases an entry's list reference through the guard (invariant 4); a
/// helper so every caller defers the same way. The release runs on
/// whichever thread next collects, inside crossbeam's loop, so a panic of
/// user `Drop` code it runs is caught and dropped there (unwind.rs,
/// invariant 4).
///
/// # Safety
/// The caller owns one list reference on `entry`'s container, and `release`
/// must release exactly that reference.
pub(crate) unsafe fn defer_release(guard: &Guard, entry: NonNull<Entry>, release: ReleaseFn) {
    // SAFETY: the closure only releases the reference the caller owns; it
    // runs once every thread pinned now has unpinned (invariant 4).
    unsafe { guard.defer_unchecked(move || crate::unwind::orphan(|| release(entry))) };
}
