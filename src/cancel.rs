//! Cancellation: closing a node and then its whole subtree, iteratively.
//!
//! The canceller that closes a node (list `close`) becomes the drainer of
//! the chain it detached: it claims each entry (list invariant 1) and
//! cancels claimed children, wakes claimed waiters and runs claimed
//! callbacks. Children's chains go on an explicit stack, so depth costs heap,
//! never call stack. No lock is held anywhere, so callbacks may re-enter
//! the engine freely. Every call of user code (a waker, a callback, the drop
//! of a discarded callback or of what a release frees) runs inside
//! `catch_unwind` (unwind.rs), and the first panic is re-raised only after
//! the whole subtree is done.
//!
//! Invariants:
//! 1. Every node of the subtree gets the err and record that were actually
//!    published on the node it was reached through: a node whose record
//!    slot a concurrent canceller filled first keeps that canceller's
//!    record, and passes it on to its own children.
//! 2. A node is published done before anything in its list is acted on, so
//!    a woken waiter or a running callback always sees `err()` set.

use crate::list::{self, Entry, EntryKind};
use crate::node::{entry_node, release_entry, release_entry_deferred, CancelNode, Record};
#[cfg(target_arch = "x86_64")]
use crate::node::{DRAIN_BEFORE_LINK, DRAIN_FROM_LINK};
use crate::state::{closed_word, CAUSE};
use crate::unwind::Panics;
use crate::Error;
use crossbeam_epoch::Guard;
use std::ptr::NonNull;
use std::sync::Arc;

/// Cancels `node` and its subtree with `err` and, if given, a custom cause.
/// Returns false if the node was done already (then nothing changes).
///
/// `holds_handle`: the caller holds a handle on `node`, so it may withdraw
/// the node's links from its parents (node `withdraw_links`).
pub(crate) fn cancel(
    node: &CancelNode,
    err: Error,
    record: Option<Arc<Record>>,
    holds_handle: bool,
) -> bool {
    close(node, err, record, holds_handle, false)
}

/// Teardown's close: the node has no observer left (node invariant 1), so
/// its callbacks are dropped unrun (after_func invariant 2).
pub(crate) fn close_silently(node: &CancelNode) {
    close(node, Error::Canceled, None, false, true);
}

fn close(
    node: &CancelNode,
    err: Error,
    record: Option<Arc<Record>>,
    holds_handle: bool,
    silent: bool,
) -> bool {
    let Some(closed) = publish(node, err, record) else {
        return false;
    };
    disarm(node);
    if holds_handle {
        node.withdraw_links();
    }
    if closed.chain != 0 {
        let mut drain = Drain {
            guard: None,
            stack: Vec::new(),
            panics: Panics::default(),
            silent,
        };
        drain.run(closed);
        drain.finish();
    }
    true
}

/// A node just closed: its detached chain and what it was closed with.
struct Closed {
    chain: usize,
    err: Error,
    record: Option<Arc<Record>>,
    /// No sweeper was on the list at the close: its entries may be freed
    /// without the epoch (list invariant 6).
    direct: bool,
    /// The list reference to release once the chain is drained, and
    /// whether the chain it came from allows a direct free.
    entry: Option<(NonNull<Entry>, bool)>,
}

/// Closes `node` with `err`/`record` unless it is done already.
fn publish(node: &CancelNode, err: Error, record: Option<Arc<Record>>) -> Option<Closed> {
    let (word, err, record) = match record {
        None => (closed_word(err), err, None),
        Some(r) => {
            if node.err().is_some() {
                return None; // do not fill the slot of a done node
            }
            // State invariant 2: the record in the slot decides the reason.
            let r = node.claim_record(r);
            (closed_word(r.err) | CAUSE, r.err, Some(r))
        }
    };
    let chain = list::close(&node.state, word)?;
    Some(Closed {
        chain,
        err,
        record,
        direct: chain == 0 || !node.sweeper_active(),
        entry: None,
    })
}

fn disarm(node: &CancelNode) {
    if let Some(timer) = node.timer() {
        node.header.clock.disarm(timer);
    }
}

/// Starts loading the next entry's cache lines while this one is acted on:
/// the walk is pointer chasing, so without this every child costs a full
/// memory round trip before the next can start. The two addresses are the
/// first and last byte a drain touches around a child's link (node.rs).
#[inline(always)]
fn prefetch_entry(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = addr as *const i8;
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a
        // hint that never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_sub(DRAIN_BEFORE_LINK));
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(DRAIN_FROM_LINK - 1));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

struct Drain {
    /// Pinned only once some release must go through the epoch.
    guard: Option<Guard>,
    stack: Vec<Closed>,
    /// The first panic of user code, re-raised by `finish`.
    panics: Panics,
    /// Teardown: drop callbacks instead of running them.
    silent: bool,
}

impl Drain {
    fn run(&mut self, first: Closed) {
        let mut next = Some(first);
        while let Some(closed) = next.take().or_else(|| self.stack.pop()) {
            self.drain_chain(&closed);
            if let Some((entry, direct)) = closed.entry {
                self.release(entry, direct);
            }
        }
    }

    /// Walks one detached chain (list invariant 2), acting on what it claims.
    fn drain_chain(&mut self, closed: &Closed) {
        let mut cur = closed.chain;
        while let Some(entry) = NonNull::new(cur as *mut Entry) {
            // SAFETY: the entry is on the chain our close detached, and we
            // have not released it yet.
            let e = unsafe { entry.as_ref() };
            // SAFETY: as above.
            let (claimed, next) = unsafe { list::claim_next(e) };
            cur = next;
            prefetch_entry(next);
            if claimed && self.act(entry, e.kind(), closed) {
                continue; // the entry's reference now rides on the stack
            }
            self.release(entry, closed.direct);
        }
    }

    /// Acts on a claimed entry. True if its list reference was moved onto
    /// the stack with the child's own chain.
    fn act(&mut self, entry: NonNull<Entry>, kind: EntryKind, parent: &Closed) -> bool {
        match kind {
            EntryKind::Child | EntryKind::MergeLink => {
                // SAFETY: our list reference keeps the child alive.
                let child = unsafe { entry_node(entry).as_ref() };
                let Some(mut closed) = publish(child, parent.err, parent.record.clone()) else {
                    return false;
                };
                disarm(child);
                if closed.chain == 0 {
                    return false;
                }
                closed.entry = Some((entry, parent.direct));
                self.stack.push(closed);
                true
            }
            EntryKind::Waiter => {
                let w = entry.cast();
                // SAFETY: claimed here, alive by our list reference.
                let wake = || unsafe { crate::waiter::Waiter::wake(w) };
                self.panics.call(wake);
                false
            }
            EntryKind::Callback => {
                let cb = entry.cast();
                let silent = self.silent;
                // SAFETY: claimed here, alive by our list reference.
                let act = || unsafe {
                    if silent {
                        crate::after_func::Callback::discard(cb)
                    } else {
                        crate::after_func::Callback::run(cb)
                    }
                };
                self.panics.call(act);
                false
            }
        }
    }

    fn release(&mut self, entry: NonNull<Entry>, direct: bool) {
        if direct {
            // SAFETY: we own the entry's list reference (list invariant 3),
            // and no sweeper can reach it (list invariant 6).
            let release = || unsafe { release_entry(entry) };
            // It may free what runs user `Drop` code: caught.
            self.panics.call(release);
            return;
        }
        let guard = self.guard.get_or_insert_with(crossbeam_epoch::pin);
        // SAFETY: we own the list reference of every entry on our chains
        // (list invariant 3) and release each exactly once.
        unsafe { list::defer_release(guard, entry, release_entry_deferred) };
    }

    /// Re-raises the first panic of user code, now that the subtree is
    /// done.
    fn finish(self) {
        // Hand over our deferred frees and collect (see entry_deleted).
        if let Some(guard) = self.guard {
            guard.flush();
        }
        self.panics.resume();
    }
}
