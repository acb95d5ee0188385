//! The record slot of a cancellable node: the custom cause it was closed
//! with, shared by its subtree, and a deadline's own cause waiting in it
//! as pending (node invariant 3).

use super::node::CancelNode;
use super::state::{err_of, CAUSE};
use crate::error::{Cause, Error};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;

/// A cause given to `cancel_with_cause` or a deadline: the reason and the
/// error, shared by every node it reaches.
pub(crate) struct Record {
    pub(crate) err: Error,
    pub(crate) cause: Cause,
}

impl Record {
    /// A shared record.
    pub(crate) fn new(err: Error, cause: Cause) -> Arc<Record> {
        Arc::new(Record { err, cause })
    }
}

/// The tag of a pending deadline record in the record slot (an `Arc`'s
/// pointer is aligned, so bit 0 is free).
const PENDING: usize = 1;

impl CancelNode {
    /// The err and record a closed state word stands for.
    pub(crate) fn published(&self, word: usize) -> (Error, Option<Arc<Record>>) {
        let err = err_of(word).unwrap_or(Error::Canceled);
        if word & CAUSE == 0 {
            return (err, None);
        }
        (err, Some(self.record_arc()))
    }

    /// `cause()` of this node.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let word = self.list.word();
        let err = err_of(word)?;
        if word & CAUSE == 0 {
            return Some(Cause::of(err));
        }
        Some(self.record_ref().cause.clone())
    }

    /// The slot's pointer as `Arc::into_raw` gave it: counting needs the
    /// whole `Arc` allocation's provenance, which `&Record` lacks.
    fn record_ptr(&self) -> *const Record {
        // Acquire: pairs with the slot's publishing compare-exchange.
        self.record.load(Acquire) as *const Record
    }

    fn record_ref(&self) -> &Record {
        // SAFETY: only called after seeing CAUSE, so the slot is filled
        // (state inv. 2) and stays so until the node is freed.
        unsafe { &*self.record_ptr() }
    }

    fn record_arc(&self) -> Arc<Record> {
        let raw = self.record_ptr();
        // SAFETY: only called after seeing CAUSE or filling the slot, so it
        // owns one strong count of this `Arc`; we add one.
        unsafe {
            Arc::increment_strong_count(raw);
            Arc::from_raw(raw)
        }
    }

    /// Fills the record slot unless it holds a claimed record; returns the
    /// record it holds now. A pending deadline record gives way.
    pub(crate) fn claim_record(&self, record: Arc<Record>) -> Arc<Record> {
        let raw = Arc::into_raw(record) as usize;
        // Acquire: reads a competitor's record if it was first.
        let mut cur = self.record.load(Acquire);
        while cur == 0 || cur & PENDING != 0 {
            // AcqRel: Release publishes the record to readers of CAUSE;
            // Acquire reads a competitor's record if it was first.
            match self.record.compare_exchange(cur, raw, AcqRel, Acquire) {
                Ok(_) => {
                    if cur != 0 {
                        // SAFETY: the pending record's count was the slot's;
                        // our exchange took it out.
                        drop(unsafe { Arc::from_raw((cur & !PENDING) as *const Record) });
                    }
                    // SAFETY: the slot keeps the count we gave it; we add ours.
                    return unsafe {
                        Arc::increment_strong_count(raw as *const Record);
                        Arc::from_raw(raw as *const Record)
                    };
                }
                Err(seen) => cur = seen,
            }
        }
        // SAFETY: ours was not stored; take it back to drop it.
        drop(unsafe { Arc::from_raw(raw as *const Record) });
        self.record_arc()
    }

    /// Parks a deadline's record in the empty slot of a new node, as
    /// pending: it costs no field of its own, and a claim replaces it.
    pub(super) fn pend_record(&self, record: Option<Arc<Record>>) {
        if let Some(r) = record {
            // Relaxed: the node is not shared yet.
            self.record
                .store(Arc::into_raw(r) as usize | PENDING, Relaxed);
        }
    }

    /// The record a deadline fires with: the pending one, now claimed (or
    /// the record someone claimed first); `None` if the deadline has no
    /// cause of its own and nobody claimed the slot.
    pub(crate) fn claim_deadline_record(&self) -> Option<Arc<Record>> {
        // Acquire: reads the record of whoever claimed the slot.
        let cur = self.record.load(Acquire);
        if cur == 0 {
            return None;
        }
        if cur & PENDING != 0 {
            // AcqRel: as in `claim_record`. A failure means a claim replaced
            // the pending record: the slot holds that one now.
            let _ = self
                .record
                .compare_exchange(cur, cur & !PENDING, AcqRel, Acquire);
        }
        // The slot holds a claimed record now, which stays until the free.
        Some(self.record_arc())
    }
}

impl Drop for CancelNode {
    fn drop(&mut self) {
        // Acquire: we are the last holder (refs reached zero).
        let raw = (self.record.load(Acquire) & !PENDING) as *const Record;
        if !raw.is_null() {
            // SAFETY: the slot owned one strong count; we are freeing.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}
