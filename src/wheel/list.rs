//! An intrusive doubly linked list of timer entries, threaded through each
//! entry's owner-only `Links` (timer.rs invariant 4). No allocation: a list is
//! two pointers and a length, so the wheel's memory never grows with the
//! number of timers.

use std::ptr::NonNull;

use crate::timer::{Links, Pos, TimerEntry};

type Entry = NonNull<TimerEntry>;

/// Runs `f` on the links of `e`.
///
/// Every list operation below has the same contract, stated once here: the
/// caller is the wheel's owner, and every entry reachable from the list (and
/// the argument) is live and armed on this wheel's clock.
fn links<R>(e: Entry, f: impl FnOnce(&mut Links) -> R) -> R {
    // SAFETY: the module contract above: owner thread, live entry.
    unsafe { TimerEntry::with_links(e, f) }
}

/// A list head. Entries are kept in insertion order (push at the back).
#[derive(Debug, Default)]
pub(crate) struct List {
    head: Option<Entry>,
    tail: Option<Entry>,
    len: usize,
}

impl List {
    /// The first entry.
    pub(crate) fn head(&self) -> Option<Entry> {
        self.head
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Appends `e` and records `pos` in it.
    pub(crate) fn push_back(&mut self, e: Entry, pos: Pos) {
        let prev = self.tail;
        links(e, |l| {
            l.prev = prev;
            l.next = None;
            l.pos = pos;
        });
        match prev {
            Some(p) => links(p, |l| l.next = Some(e)),
            None => self.head = Some(e),
        }
        self.tail = Some(e);
        self.len += 1;
    }

    /// Inserts `e` right after `after` (or at the front if `None`).
    fn insert_after(&mut self, after: Option<Entry>, e: Entry, pos: Pos) {
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
        self.len += 1;
    }

    /// Unlinks `e`, which is in this list, and returns the pointer this list
    /// held for it (the arm-time pointer, which the hooks need). Leaves `e`
    /// `Detached`, with that pointer stored in its `next`.
    pub(crate) fn remove(&mut self, e: Entry) -> Entry {
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
            l.pos = Pos::Detached;
        });
        stored
    }

    /// The entries from the front (the list must not change meanwhile).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        std::iter::successors(self.head, |&e| links(e, |l| l.next))
    }

    /// Removes and returns the first entry (see `remove`).
    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        let head = self.head?;
        Some(self.remove(head))
    }

    /// Sorts by deadline, stably (merge sort on the links: O(n log n), no
    /// allocation, recursion depth log2(n)).
    pub(crate) fn sort_by_deadline(&mut self) {
        let pos = match self.head {
            Some(h) => links(h, |l| l.pos),
            None => return,
        };
        let len = self.len;
        let head = merge_sort(self.head, len);
        // Rebuild `prev` and `tail` from the sorted `next` chain.
        *self = List::default();
        let mut cur = head;
        while let Some(e) = cur {
            cur = links(e, |l| l.next);
            self.push_back(e, pos);
        }
    }

    /// Moves every entry of `sorted` (sorted by deadline, each not earlier
    /// than most of `self`) into `self`, keeping `self` sorted and stable.
    /// Walks back from the tail, so it costs O(len(sorted) + the entries of
    /// `self` that are later than the earliest of `sorted`).
    pub(crate) fn merge_sorted(&mut self, mut sorted: List, pos: Pos) {
        let mut cursor = self.tail;
        while let Some(e) = sorted.tail {
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

fn deadline_of(e: Entry) -> std::time::Instant {
    // SAFETY: module contract: `e` is live.
    unsafe { e.as_ref() }.deadline()
}

/// Sorts the `next`-chain of `len` entries starting at `head`.
fn merge_sort(head: Option<Entry>, len: usize) -> Option<Entry> {
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

/// Merges two sorted `next`-chains; ties go to `a` (stability).
fn merge(mut a: Option<Entry>, mut b: Option<Entry>) -> Option<Entry> {
    let mut head = None;
    let mut tail: Option<Entry> = None;
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
