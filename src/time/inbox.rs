//! The inbox: the lock-free hand-off of armed and cancelled entries to the
//! thread that owns the clock's wheel, and the graveyard of entries the
//! owner releases once it has let go of the wheel. Invariants 2, 3 and 7 of
//! `entry.rs` govern both.
//!
//! # Shards
//!
//! The inbox is a fixed array of *shards*, each a Treiber stack head and a
//! disarm counter on a cache line of its own. A thread always uses the same
//! shard (its thread number modulo the shard count, `sync::thread_number`), so
//! threads arming and disarming at once touch different lines: with at
//! least as many shards as CPUs, a deadline armed and cancelled on one
//! thread before the owner looked touches no line another thread writes
//! (the entry stays on the shard, `CANCELLED`, until the next collection
//! releases it). The owner takes every shard; arms of one thread keep their
//! order (one shard, one stack), arms of different threads are not ordered
//! with each other, which no caller can observe (their deadlines are equal
//! only by coincidence; a manual clock has one shard, and there the order is
//! the arms' order).

use std::ptr::NonNull;

use super::entry::{call_hook, TimerEntry};
use crate::sync::{thread_number, yield_now, AtomicPtr, AtomicUsize, Ordering};

#[cfg(not(loom))]
std::thread_local!(static DISARMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });

/// One shard: a stack head and two counters, alone on their cache line(s).
#[repr(align(128))]
struct Shard {
    head: AtomicPtr<TimerEntry>,
    /// Successful disarms counted on this shard (wrapping): a manual
    /// clock's (the system clock counts per thread, `count_cancel`).
    cancelled: AtomicUsize,
    /// Sweeps of this shard (`sweep_mine`), twice each: odd while one runs.
    sweeps: AtomicUsize,
}

/// What `sweep_mine` did.
#[derive(Debug)]
pub(crate) struct Swept {
    /// Withdrawn entries buried (the caller releases them).
    pub(crate) released: usize,
    /// Whether other entries (live ones, disarm pushes of filed ones) were
    /// found; they are back on the shard, for the owner.
    pub(crate) kept: bool,
}

/// Intrusive Treiber stacks of entries on their way to the wheel's owner.
///
/// Producers (`arm`, a disarm of a filed entry) push onto their thread's
/// shard with a CAS loop; the one consumer takes each shard whole with a
/// `swap`. Because nothing is ever popped singly, ABA cannot bite: a push
/// only needs `next == head` at its CAS.
pub(crate) struct Inbox {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("shards", &self.shards.len())
            .field("empty", &self.is_empty())
            .finish()
    }
}

impl Inbox {
    /// An empty inbox of `shards` shards (a power of two, at least 1).
    pub(crate) fn new(shards: usize) -> Inbox {
        debug_assert!(shards.is_power_of_two());
        let shards = (0..shards)
            .map(|_| Shard {
                head: AtomicPtr::new(std::ptr::null_mut()),
                cancelled: AtomicUsize::new(0),
                sweeps: AtomicUsize::new(0),
            })
            .collect();
        Inbox { shards }
    }

    /// The calling thread's shard.
    #[inline]
    fn mine(&self) -> &Shard {
        &self.shards[thread_number() & (self.shards.len() - 1)]
    }

    /// Pushes `entry` onto the calling thread's shard.
    ///
    /// # Safety
    /// `entry` is live until the owner releases it and is not on the inbox
    /// (invariant 2); the caller owns its `queue_next` (invariant 3).
    #[inline]
    pub(crate) unsafe fn push(&self, entry: NonNull<TimerEntry>) {
        let head = &self.mine().head;
        // Relaxed: the CAS below carries the ordering.
        let mut cur = head.load(Ordering::Relaxed);
        loop {
            let next = NonNull::new(cur);
            // SAFETY: live (caller); we own `queue_next` until the CAS
            // publishes it (entry inv. 3).
            unsafe { TimerEntry::set_queue_next(entry, next) };
            // SeqCst: publishes the entry (Release for the owner's Acquire
            // swap) and takes part in the driver's sleep/wake handshake: the
            // driver stores its sleep target, then checks every shard
            // (`is_empty`, SeqCst), while `arm` pushes, then loads the
            // target; one of them sees the other (no lost wake-up).
            match head.compare_exchange_weak(
                cur,
                entry.as_ptr(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Counts one successful disarm and returns the new count (wrapping):
    /// the calling thread's own, a plain thread-local counter, if
    /// `per_thread` (the system clock: the only clock of its kind, so a
    /// thread's count is its disarms there, and every `COLLECT_EVERY`-th
    /// collects with no atomic step to count it); else its shard's (a
    /// manual clock: a thread's disarms may alternate between several, and
    /// each must see its own count reach the mark).
    #[inline]
    pub(crate) fn count_cancel(&self, per_thread: bool) -> usize {
        #[cfg(not(loom))]
        if per_thread {
            let count = |d: &std::cell::Cell<usize>| {
                d.set(d.get().wrapping_add(1));
                d.get()
            };
            // Gone only while the thread exits: its shard counts instead.
            if let Ok(n) = DISARMS.try_with(count) {
                return n;
            }
        }
        // Under loom every disarm collects: the shard's count will do.
        #[cfg(loom)]
        let _ = per_thread;
        // Relaxed: only a counter; the collection it triggers synchronises
        // through the stack heads.
        self.mine()
            .cancelled
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// Whether nothing waits on any shard; SeqCst for the driver handshake
    /// (see `push`): the push that the driver must not miss went onto one
    /// shard, and this load of that shard follows the target's store.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.head.load(Ordering::SeqCst).is_null())
    }

    /// Owner: takes every pushed entry, shard by shard, each shard in push
    /// order (so that timers with equal deadlines armed by one thread fire
    /// in the order they were armed).
    pub(crate) fn take_all(&self) -> Taken {
        let mut first = None;
        let mut last: Option<NonNull<TimerEntry>> = None;
        for shard in self.shards.iter() {
            // Acquire: pairs with the pushes' Release, so every entry's
            // fields (and `queue_next`) are visible. SeqCst like `push`.
            // Always the swap, never a load first to skip an empty shard:
            // an RMW reads the latest push (or is read by it), which is what
            // a manual clock's `advance` racing an arm relies on (either the
            // advance takes the entry, or the arm's push synchronises with
            // the take and then sees the new time; loom model
            // `timer_arm_vs_fire`). A plain load could read an older head.
            let top = NonNull::new(shard.head.swap(std::ptr::null_mut(), Ordering::SeqCst));
            let Some((oldest, newest)) = reverse(top) else {
                continue;
            };
            match last {
                // SAFETY: live, and its `queue_next` is ours (entry inv. 3).
                Some(tail) => unsafe {
                    TimerEntry::set_queue_next(tail, Some(oldest));
                },
                None => first = Some(oldest),
            }
            last = Some(newest);
        }
        Taken { next: first }
    }
}

impl Inbox {
    /// A disarming thread: takes its own shard, buries the withdrawn
    /// entries (entry.rs: never filed, so no wheel is needed to release
    /// them) and pushes the others back, in their order. Touches no line
    /// but its shard's and the entries'.
    ///
    /// While the shard's entries are off it, an owner could miss a live one;
    /// `sweeps` is odd for that window, and an owner that must see every
    /// entry armed before it began (a manual clock's `advance`,
    /// `next_deadline`) checks `sweep_mark` around its take. The system
    /// clock's driver need not: a sweep that kept entries is followed by a
    /// collection that rings it (driver invariant 4).
    pub(crate) fn sweep_mine(&self, graves: &mut Graveyard) -> Swept {
        let shard = self.mine();
        // SeqCst: odd before the swap, even after the push back, in the
        // single order an owner's `sweep_mark` loads and take are in.
        shard.sweeps.fetch_add(1, Ordering::SeqCst);
        // SeqCst (Acquire): as `take_all`; every entry's fields are visible.
        let mut cur = NonNull::new(shard.head.swap(std::ptr::null_mut(), Ordering::SeqCst));
        let mut swept = Swept {
            released: 0,
            kept: false,
        };
        let (mut top, mut bottom) = (None, None);
        while let Some(entry) = cur {
            // SAFETY: live (the clock holds it); we swapped it off the
            // shard, so its `queue_next` is ours (entry inv. 3).
            cur = unsafe { TimerEntry::queue_next(entry) };
            // SAFETY: live (the clock holds it).
            if unsafe { entry.as_ref() }.is_withdrawn() {
                // SAFETY: terminal and off the inbox: we alone release it
                // (entry inv. 7).
                unsafe { graves.bury(entry) };
                swept.released += 1;
                continue;
            }
            // Kept, newest first as on the stack. SAFETY: ours, as above.
            unsafe { TimerEntry::set_queue_next(entry, None) };
            match bottom {
                // SAFETY: the previous kept entry; its link is ours too.
                Some(b) => unsafe {
                    TimerEntry::set_queue_next(b, Some(entry));
                },
                None => top = Some(entry),
            }
            bottom = Some(entry);
        }
        if let (Some(top), Some(bottom)) = (top, bottom) {
            swept.kept = true;
            // SAFETY: a chain of live entries whose links are ours.
            unsafe { push_chain(&shard.head, top, bottom) };
        }
        // SeqCst: see the first increment.
        shard.sweeps.fetch_add(1, Ordering::SeqCst);
        swept
    }

    /// The sum of every shard's sweep count, or `None` while a sweep runs.
    /// An owner that reads the same `Some` before and after its take missed
    /// no entry to a sweep: a sweep that swapped an entry away before the
    /// take made its count odd before that (SeqCst), so the first mark is
    /// `None` or the second one differs.
    pub(crate) fn sweep_mark(&self) -> Option<usize> {
        let mut sum = 0usize;
        for shard in self.shards.iter() {
            // SeqCst: see above.
            let n = shard.sweeps.load(Ordering::SeqCst);
            if n % 2 == 1 {
                return None;
            }
            sum = sum.wrapping_add(n);
        }
        Some(sum)
    }

    /// Waits until no sweep runs (a sweep is a bounded walk with no user
    /// code and no lock), then tells whether the mark moved from `before`.
    pub(crate) fn sweeps_moved(&self, before: Option<usize>) -> bool {
        loop {
            match self.sweep_mark() {
                None => yield_now(),
                after => return after != before || before.is_none(),
            }
        }
    }
}

/// Pushes the chain `top` .. `bottom` (linked through `queue_next`) onto
/// `head` in one CAS; SeqCst as `Inbox::push`.
///
/// # Safety
/// The entries are live and on no inbox, and their links are the caller's.
unsafe fn push_chain(
    head: &AtomicPtr<TimerEntry>,
    top: NonNull<TimerEntry>,
    bottom: NonNull<TimerEntry>,
) {
    // Relaxed: the CAS carries the ordering.
    let mut cur = head.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller's; ours until the CAS publishes it.
        unsafe { TimerEntry::set_queue_next(bottom, NonNull::new(cur)) };
        // SeqCst: as `Inbox::push` (publication and the driver handshake).
        match head.compare_exchange_weak(cur, top.as_ptr(), Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Reverses a LIFO chain taken off a shard in place; returns its oldest
/// and newest entries (`None` for an empty chain). The owner owns every
/// `queue_next` on it until it moves the entry to `FILED` (entry inv. 3).
fn reverse(
    mut cur: Option<NonNull<TimerEntry>>,
) -> Option<(NonNull<TimerEntry>, NonNull<TimerEntry>)> {
    let newest = cur?;
    let mut reversed = None;
    while let Some(entry) = cur {
        // SAFETY: live (the clock holds it) and `queue_next` is ours.
        cur = unsafe { TimerEntry::set_queue_next(entry, reversed) };
        reversed = Some(entry);
    }
    reversed.map(|oldest| (oldest, newest))
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

#[cfg(all(test, loom))]
mod loom_models;
