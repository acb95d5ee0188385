//! An intrusive doubly linked list of timer entries, threaded through each
//! entry's owner-only `Links` (entry.rs invariant 4). No allocation: a list is
//! two pointers and a length, so the wheel's memory never grows with the
//! number of timers.
//!
//! Every operation that follows an entry's links is an `unsafe fn` with one
//! contract, the *list contract*: the caller is the wheel's owner (entry.rs
//! invariant 4), and every entry passed in or reachable from the lists
//! involved is live (the clock holds its reference).

use std::ptr::NonNull;
use std::time::Instant;

use crate::time::entry::{Links, Pos, TimerEntry};

type Timer = NonNull<TimerEntry>;

/// Runs `f` on the links of `e`.
///
/// # Safety
/// The list contract (module doc) for `e`.
unsafe fn links<R>(e: Timer, f: impl FnOnce(&mut Links) -> R) -> R {
    // SAFETY: owner thread, live entry (caller).
    unsafe { TimerEntry::with_links(e, f) }
}

/// The deadline of `e`.
///
/// # Safety
/// `e` is live.
pub(super) unsafe fn deadline_of(e: Timer) -> Instant {
    // SAFETY: live (caller).
    unsafe { e.as_ref() }.deadline()
}

/// A list head. Entries are kept in insertion order (push at the back).
#[derive(Debug, Default)]
pub(crate) struct TimerList {
    head: Option<Timer>,
    tail: Option<Timer>,
    len: usize,
}

impl TimerList {
    /// The first entry.
    pub(crate) fn head(&self) -> Option<Timer> {
        self.head
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Appends `e` and records `pos` in it.
    ///
    /// # Safety
    /// The list contract; `e` is in no list.
    pub(crate) unsafe fn push_back(&mut self, e: Timer, pos: Pos) {
        let prev = self.tail;
        // SAFETY: the list contract (caller) covers `e` and our tail.
        unsafe {
            links(e, |l| {
                l.prev = prev;
                l.next = None;
                l.pos = pos;
            });
            match prev {
                Some(p) => links(p, |l| l.next = Some(e)),
                None => self.head = Some(e),
            }
        }
        self.tail = Some(e);
        self.len += 1;
    }

    /// Inserts `e` right after `after` (or at the front if `None`).
    ///
    /// # Safety
    /// The list contract; `e` is in no list, `after` is in this one.
    unsafe fn insert_after(&mut self, after: Option<Timer>, e: Timer, pos: Pos) {
        // SAFETY: the list contract (caller) covers `after`, `e` and the
        // neighbours reachable from them.
        unsafe {
            let next = match after {
                Some(a) => links(a, |l| l.next.replace(e)),
                None => self.head.replace(e),
            };
            links(e, |l| {
                l.prev = after;
                l.next = next;
                l.pos = pos;
            });
            match next {
                Some(n) => links(n, |l| l.prev = Some(e)),
                None => self.tail = Some(e),
            }
        }
        self.len += 1;
    }

    /// Unlinks `e`, which is in this list, and returns the pointer this list
    /// held for it (the arm-time pointer, which the hooks need). Leaves `e`
    /// `Unlinked`, with that pointer stored in its `next`.
    ///
    /// # Safety
    /// The list contract; `e` is in this list.
    pub(crate) unsafe fn remove(&mut self, e: Timer) -> Timer {
        // SAFETY: the list contract (caller) covers `e` and its neighbours.
        unsafe {
            let (prev, next) = links(e, |l| (l.prev, l.next));
            let stored = match prev {
                Some(p) => links(p, |l| std::mem::replace(&mut l.next, next)),
                None => std::mem::replace(&mut self.head, next),
            };
            match next {
                Some(n) => links(n, |l| l.prev = prev),
                None => self.tail = prev,
            }
            self.len -= 1;
            // The list only ever holds entries that are in it.
            let stored = stored.unwrap_or(e);
            links(e, |l| {
                l.prev = None;
                l.next = Some(stored);
                l.pos = Pos::Unlinked;
            });
            stored
        }
    }

    /// The entries from the front (the list must not change meanwhile).
    ///
    /// # Safety
    /// The list contract, for as long as the iterator is used.
    pub(crate) unsafe fn iter(&self) -> impl Iterator<Item = Timer> + '_ {
        std::iter::successors(self.head, |&e| {
            // SAFETY: `e` is in this list; the contract is the caller's.
            unsafe { links(e, |l| l.next) }
        })
    }

    /// Removes and returns the first entry (see `remove`).
    ///
    /// # Safety
    /// The list contract.
    pub(crate) unsafe fn pop_front(&mut self) -> Option<Timer> {
        let head = self.head?;
        // SAFETY: the head is in this list; the contract is the caller's.
        Some(unsafe { self.remove(head) })
    }

    /// Sorts by deadline, stably (merge sort on the links: O(n log n), no
    /// allocation, recursion depth log2(n)).
    ///
    /// # Safety
    /// The list contract.
    pub(crate) unsafe fn sort_by_deadline(&mut self) {
        // SAFETY: the list contract (caller) covers every entry here.
        unsafe {
            let pos = match self.head {
                Some(h) => links(h, |l| l.pos),
                None => return,
            };
            let len = self.len;
            let head = merge_sort(self.head, len);
            // Rebuild `prev` and `tail` from the sorted `next` chain.
            *self = TimerList::default();
            let mut cur = head;
            while let Some(e) = cur {
                cur = links(e, |l| l.next);
                self.push_back(e, pos);
            }
        }
    }

    /// Moves every entry of `sorted` (sorted by deadline, each not earlier
    /// than most of `self`) into `self`, keeping `self` sorted and stable.
    /// Walks back from the tail, so it costs O(len(sorted) + the entries of
    /// `self` that are later than the earliest of `sorted`).
    ///
    /// # Safety
    /// The list contract, for both lists.
    pub(crate) unsafe fn merge_sorted(&mut self, mut sorted: TimerList, pos: Pos) {
        let mut cursor = self.tail;
        while let Some(e) = sorted.tail {
            // SAFETY: the list contract (caller) covers both lists.
            unsafe {
                sorted.remove(e);
                let deadline = deadline_of(e);
                while let Some(c) = cursor {
                    if deadline_of(c) <= deadline {
                        break;
                    }
                    cursor = links(c, |l| l.prev);
                }
                self.insert_after(cursor, e, pos);
            }
        }
    }
}

/// Sorts the `next`-chain of `len` entries starting at `head`.
///
/// # Safety
/// The list contract for the chain.
unsafe fn merge_sort(head: Option<Timer>, len: usize) -> Option<Timer> {
    // SAFETY: the list contract (caller) covers the chain.
    unsafe {
        if len <= 1 {
            if let Some(h) = head {
                links(h, |l| l.next = None);
            }
            return head;
        }
        let half = len / 2;
        let mut mid = head?;
        for _ in 1..half {
            mid = links(mid, |l| l.next)?;
        }
        let right = links(mid, |l| l.next.take());
        merge(merge_sort(head, half), merge_sort(right, len - half))
    }
}

/// Merges two sorted `next`-chains; ties go to `a` (stability).
///
/// # Safety
/// The list contract for both chains.
unsafe fn merge(mut a: Option<Timer>, mut b: Option<Timer>) -> Option<Timer> {
    let mut head = None;
    let mut tail: Option<Timer> = None;
    // SAFETY: the list contract (caller) covers both chains.
    unsafe {
        loop {
            let take = match (a, b) {
                (Some(x), Some(y)) if deadline_of(y) < deadline_of(x) => {
                    b = links(y, |l| l.next);
                    y
                }
                (Some(x), _) => {
                    a = links(x, |l| l.next);
                    x
                }
                (None, Some(y)) => {
                    b = links(y, |l| l.next);
                    y
                }
                (None, None) => return head,
            };
            links(take, |l| l.next = None);
            match tail {
                Some(t) => links(t, |l| l.next = Some(take)),
                None => head = Some(take),
            }
            tail = Some(take);
        }
    }
}
