//! The state word of a cancellable node.
//!
//! One `AtomicUsize` per cancellable node holds everything a reader needs:
//!
//! ```text
//!  63                                        3   2       1          0
//! +-------------------------------------------+-------+----------+--------+
//! | address of the first list entry (8-aligned)| CAUSE | DEADLINE | CLOSED |
//! +-------------------------------------------+-------+----------+--------+
//! ```
//!
//! - `CLOSED = 0`: the node is live; the high bits are the head of its
//!   intrusive list of entries (children, waiters, callbacks), or zero.
//! - `CLOSED = 1`: the node is done. The list was taken in the same
//!   atomic step, so the high bits are zero; `DEADLINE` gives the reason
//!   (`DeadlineExceeded` if set, `Canceled` if not), and `CAUSE` says that
//!   the node's record slot holds a custom cause.
//!
//! Invariants:
//! 1. The word goes from `CLOSED = 0` to `CLOSED = 1` exactly once, by a
//!    compare-exchange; after that it never changes.
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
        }
    }
}
