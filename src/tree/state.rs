//! The state word of a cancellable node.
//!
//! One `AtomicUsize` per cancellable node holds everything a reader needs:
//!
//! ```text
//!  63                                        3   2       1          0
//! +-------------------------------------------+-------+----------+--------+
//! | open: address of the first list entry      | CAUSE | DEADLINE | CLOSED |
//! | closed: 0, sleepers, DRAINED or WOKEN      |       |          |        |
//! +-------------------------------------------+-------+----------+--------+
//! ```
//!
//! - `CLOSED = 0`: the node is live; the high bits are the head of its
//!   intrusive list of entries (children, waiters, callbacks), or zero.
//! - `CLOSED = 1`: the node is done. The list was taken in the same
//!   atomic step; `DEADLINE` gives the reason (`DeadlineExceeded` if set,
//!   `Canceled` if not), and `CAUSE` says that the node's record slot holds
//!   a custom cause. The high bits say whether the subtree is drained
//!   (drained.rs): zero, or the address of a stack of sleeping threads,
//!   while the drain is under way; `DRAINED` or `WOKEN`, two values that are
//!   no address, once it is done.
//!
//! Invariants:
//! 1. The word goes from `CLOSED = 0` to `CLOSED = 1` exactly once, by a
//!    compare-exchange; after that its tag bits never change, and its high
//!    bits change only as drained.rs says: sleepers pushed, then one mark.
//! 2. `CAUSE` is only set by a canceller that saw the record slot filled,
//!    and the slot is written once; so a reader that sees `CAUSE` (with an
//!    Acquire load) sees the record, and the record's reason equals the
//!    `DEADLINE` bit.
//! 3. An entry enters the list only by a compare-exchange of this word from a
//!    value with `CLOSED = 0`; so an insert and the close are ordered by the
//!    word's modification order, and exactly one of them sees the other
//!    (no lost wake-up).

use crate::Error;

/// The node is done and its list is closed.
pub(crate) const CLOSED: usize = 0b001;
/// With `CLOSED`: the reason is `DeadlineExceeded`.
pub(crate) const DEADLINE: usize = 0b010;
/// With `CLOSED`: the record slot holds a custom cause.
pub(crate) const CAUSE: usize = 0b100;
/// All tag bits; the rest is a pointer.
pub(crate) const TAGS: usize = 0b111;
/// High bits of a closed word: the subtree is drained, and nobody waited
/// (or whoever pushed a sleeper was erased by the mark: drained.rs).
pub(crate) const DRAINED: usize = 8;
/// High bits of a closed word: the subtree is drained, and the mark took
/// and woke the sleepers.
pub(crate) const WOKEN: usize = 16;

/// Whether a closed word says the node's subtree is drained.
#[inline]
pub(crate) fn drained(word: usize) -> bool {
    matches!(word & !TAGS, DRAINED | WOKEN)
}

/// Whether a drained word was marked by taking sleepers.
#[inline]
pub(crate) fn is_woken(word: usize) -> bool {
    word & !TAGS == WOKEN
}

/// The `err()` that a state word encodes.
#[inline]
pub(crate) fn err_of(word: usize) -> Option<Error> {
    if word & CLOSED == 0 {
        None
    } else if word & DEADLINE != 0 {
        Some(Error::DeadlineExceeded)
    } else {
        Some(Error::Canceled)
    }
}

/// The closed word for a reason, without the `CAUSE` bit.
#[inline]
pub(crate) fn closed_word(reason: Error) -> usize {
    match reason {
        Error::Canceled => CLOSED,
        Error::DeadlineExceeded => CLOSED | DEADLINE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_reasons() {
        assert_eq!(err_of(0), None);
        assert_eq!(err_of(0x1000), None);
        for e in [Error::Canceled, Error::DeadlineExceeded] {
            assert_eq!(err_of(closed_word(e)), Some(e));
            assert_eq!(err_of(closed_word(e) | CAUSE), Some(e));
            let w = closed_word(e) | CAUSE;
            assert!(!drained(w) && !drained(w | 0x1000));
            assert!(drained(w | DRAINED) && !is_woken(w | DRAINED));
            assert!(drained(w | WOKEN) && is_woken(w | WOKEN));
            assert_eq!(err_of(w | DRAINED), Some(e));
        }
    }
}
