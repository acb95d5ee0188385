//! The intrusive lock-free list of a cancellable node.
//!
//! Children, waiters and `after_func` callbacks of a node are [`Entry`]s
//! pushed onto one singly linked list whose head is the node's state word
//! (see `state.rs`). Three kinds of thread touch it:
//!
//! - an *inserter* pushes at the head with one compare-exchange, which fails
//!   once the node is closed (state invariant 3);
//! - an entry's *owner* deletes it logically with one `fetch_or(MARK)` on the
//!   entry's own `next` word, and a *sweeper* unlinks marked entries later
//!   (Harris/Michael style), so removal is O(1) amortised;
//! - the *drainer* (the thread that closed the node) detaches the whole chain
//!   with the close itself, then walks it, claiming each entry with the same
//!   `fetch_or(MARK)`.
//!
//! Invariants:
//! 1. `MARK` on an entry's `next` is set once and never cleared; whoever sets
//!    it (owner or drainer) *claims* the entry: the drainer acts on an entry
//!    (cancel, wake, run) only if it set the mark, the owner withdraws it
//!    (drop, stop, time-out) only if it set the mark. So each entry is
//!    either acted on or withdrawn, exactly once.
//! 2. A marked `next` is never written again. The drainer marks an entry
//!    before it follows its `next`, so from then on no sweeper can unlink the
//!    entry's successor (its compare-exchange expects an unmarked `next`):
//!    the detached chain is frozen behind the drainer.
//! 3. Every linked entry holds one reference on its container's memory.
//!    Exactly one thread releases it: the sweeper whose compare-exchange
//!    unlinked the entry, or the drainer that reached it on the detached
//!    chain (by invariant 2, never both).
//! 4. Sweepers traverse under an epoch guard, and released references are
//!    deferred through that guard, so memory a sweeper may still read is not
//!    freed before the sweeper unpins.
//!
//! 5. An owner whose marked entry is still the head may unlink it itself
//!    (`unlink_head`) and then free it without the epoch, provided no
//!    sweeper is running: the owner's head compare-exchange and its later
//!    load of the node's sweeper flag, and the sweeper's raising of that
//!    flag and its first head load, are all SeqCst. So either the owner
//!    sees the flag raised (and defers the release through the epoch), or
//!    the sweeper's first head load comes after the unlink in the single
//!    SeqCst order and never sees the entry. A sweeper that finished before
//!    the owner looked lowered the flag with Release, so its reads of the
//!    entry happen before the owner's free.
//!
//! 6. Likewise, a drainer that finds no sweeper running right after its close
//!    (SeqCst close, then SeqCst load of the flag) may free the detached
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

use crate::tree::state::{CLOSED, TAGS};
use crate::sync::AtomicUsize;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use crossbeam_epoch::Guard;
use std::ptr::NonNull;

/// The deletion mark in an entry's `next` word.
const MARK: usize = 1;

/// What contains an entry, so that the list can hand it back to its owner.
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
}

impl Entry {
    pub(crate) fn new(kind: EntryKind) -> Entry {
        Entry {
            next: AtomicUsize::new(0),
            kind,
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
        // AcqRel: the mark is the single decision point between owner and
        // drainer; each side must see what the other did before deciding.
        self.next.fetch_or(MARK, AcqRel) & MARK == 0
    }

    /// Marks an entry that was never linked, so that later `mark` calls
    /// report that nobody is left to withdraw it from.
    pub(crate) fn mark_unlinked(&self) {
        // Relaxed: the entry is not shared yet.
        self.next.store(MARK, Relaxed);
    }

    fn addr(&self) -> usize {
        self as *const Entry as usize
    }
}

/// Pushes `entry` onto the list headed by `state`.
///
/// Returns the state word seen if the node is already closed; the entry is
/// then untouched by anyone else.
///
/// # Safety
/// `entry` must be valid and unlinked, and must stay valid until the
/// reference it gives the list is released (invariant 3).
pub(crate) unsafe fn push(state: &AtomicUsize, entry: &Entry) -> Result<(), usize> {
    // Acquire: if the node is closed we go on to read its cause record.
    let mut cur = state.load(Acquire);
    loop {
        if cur & CLOSED != 0 {
            return Err(cur);
        }
        // Relaxed: published by the Release half of the compare-exchange.
        entry.next.store(cur, Relaxed);
        // Release: the drainer that detaches the chain must see the entry
        // initialised. A failed push is ordered against the close by the
        // word's modification order (state invariant 3).
        match state.compare_exchange_weak(cur, entry.addr(), AcqRel, Acquire) {
            Ok(_) => return Ok(()),
            Err(seen) => cur = seen,
        }
    }
}

/// Closes the list: sets the state word to `closed` (which has `CLOSED` set)
/// and returns the detached chain's first entry, or `None` if the node was
/// closed already (state invariant 1).
pub(crate) fn close(state: &AtomicUsize, closed: usize) -> Option<usize> {
    debug_assert!(closed & CLOSED != 0 && closed & !TAGS == 0);
    // Acquire: the chain we take was published by Release pushes.
    let mut cur = state.load(Acquire);
    loop {
        if cur & CLOSED != 0 {
            return None;
        }
        // SeqCst: Release publishes the cause record to every reader that
        // sees CLOSED, Acquire takes the chain, and SeqCst is the drainer's
        // half of the sweeper-flag handshake (invariant 6).
        match state.compare_exchange_weak(cur, closed, SeqCst, Acquire) {
            Ok(_) => return Some(cur & !TAGS),
            Err(seen) => cur = seen,
        }
    }
}

/// The drainer's step on a detached chain: claims `entry` and returns
/// whether it was claimed here, and the next entry's address (0 at the end).
///
/// # Safety
/// `entry` must be on a chain detached by this thread's `close`, not yet
/// released.
pub(crate) unsafe fn claim_next(entry: &Entry) -> (bool, usize) {
    // AcqRel: freezes the link (invariant 2) and decides the claim
    // (invariant 1); Acquire also reads the successor the link points to.
    let next = entry.next.fetch_or(MARK, AcqRel);
    (next & MARK == 0, next & !MARK)
}

/// The owner's fast path after marking its own entry: if the entry is still
/// the list's head, unlink it with one compare-exchange (invariant 5).
/// True if this call unlinked it; the caller then owns its list reference.
///
/// # Safety
/// `entry` must be marked by the caller and linked in the list of `state`.
pub(crate) unsafe fn unlink_head(state: &AtomicUsize, entry: &Entry) -> bool {
    let succ = entry.next.load(Relaxed) & !MARK;
    // SeqCst: one half of the Dekker handshake with the sweeper flag
    // (invariant 5); the Acquire load above is ordered by the mark.
    state
        .compare_exchange(entry.addr(), succ, SeqCst, Relaxed)
        .is_ok()
}

/// Outcome of a sweep.
pub(crate) struct Swept {
    /// Entries this sweep unlinked.
    pub(crate) removed: usize,
    /// Unmarked entries it walked past in its last pass.
    pub(crate) kept: usize,
}

/// Unlinks every marked entry of an open list, handing each to `unlinked`
/// (which must release the list's reference through `guard`, invariant 4).
/// Returns `None` if the list is closed: the drainer owns it then.
///
/// # Safety
/// `state` must be the head of a list whose entries satisfy invariant 3.
pub(crate) unsafe fn sweep(
    state: &AtomicUsize,
    guard: &Guard,
    mut unlinked: impl FnMut(NonNull<Entry>, &Guard),
) -> Option<Swept> {
    let mut removed = 0;
    'restart: loop {
        let mut kept = 0;
        let mut prev: &AtomicUsize = state;
        // SeqCst: the sweeper's half of the handshake of invariant 5 (the
        // flag was raised by a SeqCst swap); also Acquire for the entries.
        let mut cur = prev.load(SeqCst);
        if cur & CLOSED != 0 {
            return None;
        }
        while let Some(entry) = NonNull::new(cur as *mut Entry) {
            // SAFETY: `entry` was reachable from the list while we were
            // pinned, so its memory is not freed before we unpin (inv. 4).
            let e = unsafe { entry.as_ref() };
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
            unlinked(entry, guard);
            cur = succ;
        }
        return Some(Swept { removed, kept });
    }
}

/// Releases a drained entry through the guard (invariant 4); a helper so
/// every caller defers the same way.
///
/// # Safety
/// The caller owns one list reference on `entry`'s container, and `release`
/// must release exactly that reference.
pub(crate) unsafe fn defer_release(
    guard: &Guard,
    entry: NonNull<Entry>,
    release: unsafe fn(NonNull<Entry>),
) {
    // SAFETY: the closure only releases the reference the caller owns; it
    // runs once every thread pinned now has unpinned (invariant 4).
    unsafe { guard.defer_unchecked(move || release(entry)) };
}

/// Pushes `entry`, first taking the list's memory reference on `refs`
/// (invariant 3); on a closed list, gives it back and marks the entry so
/// that nobody later withdraws it from a list it never joined.
///
/// # Safety
/// As [`push`]; `refs` counts the memory that contains `entry`.
pub(crate) unsafe fn push_counted(
    state: &AtomicUsize,
    entry: &Entry,
    refs: &AtomicUsize,
) -> Result<(), usize> {
    // Relaxed: the reference is published by the push's Release.
    refs.fetch_add(1, Relaxed);
    // SAFETY: the caller's guarantees, and the reference just taken.
    let pushed = unsafe { push(state, entry) };
    if pushed.is_err() {
        entry.mark_unlinked();
        // Relaxed: the caller still holds its own reference.
        refs.fetch_sub(1, Relaxed);
    }
    pushed
}
