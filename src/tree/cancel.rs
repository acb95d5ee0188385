//! Cancellation: closing a node and then its whole subtree, iteratively.
//!
//! The canceller that closes a node (list `close`) becomes the drainer of
//! the chain it took: it claims each entry (list invariant 1) and
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
//! 3. Before a node's chain is walked, a marker for it goes on the drain's
//!    stack, so the marker comes off exactly when the node's subtree has
//!    been walked; the dependencies found in between (drained.rs) are the
//!    subtree's. A node is marked drained at its marker if none is left,
//!    else it is pending, and a dependency of the node that encloses it.

use super::drained::{self, Pending};
use super::entry::{self, Container};
use super::list::Entry;
use super::node::CancelNode;
#[cfg(target_arch = "x86_64")]
use super::node::{DRAIN_BEFORE_LINK, DRAIN_FROM_LINK};
use super::record::Record;
use super::state::{closed_word, drained, CAUSE};
use crate::error::Error;
use crate::unwind::Panics;
use crossbeam_epoch::Guard;
use std::ptr::NonNull;
use std::sync::Arc;

/// What the caller of [`cancel`] holds on the node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Holder {
    /// A handle: it keeps the parents alive, so the cancel withdraws the
    /// node's links from their lists at once.
    Handle,
    /// Only memory (a drainer, the clock's timer hook): the links are left
    /// for teardown to withdraw.
    Memory,
}

/// What the drain does with the callbacks it claims.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Callbacks {
    /// Run them: the context is observably done.
    Run,
    /// Drop them unrun: teardown, nobody can observe the node any more
    /// (callback invariant 2).
    Drop,
}

/// Cancels `node` and its subtree with `err` and, if given, a custom cause.
/// Returns false if the node was done already (then nothing changes).
///
/// # Safety
/// `node` is the node's own pointer (the provenance of its allocation), and
/// the caller holds what `holder` says on it.
#[inline]
pub(crate) unsafe fn cancel(
    node: NonNull<CancelNode>,
    err: Error,
    record: Option<Arc<Record>>,
    holder: Holder,
) -> bool {
    // SAFETY: alive by what the caller holds.
    if drained(unsafe { node.as_ref() }.list.word()) {
        return false; // as `close` would, without its frame (a handle's drop)
    }
    // SAFETY: the caller's promise.
    unsafe { close(node, err, record, holder, Callbacks::Run) }
}

/// Teardown's close: the node has no observer left (refs invariant 1), so
/// its callbacks are dropped unrun (callback invariant 2).
///
/// # Safety
/// As [`cancel`], with the node's memory reference held.
#[inline]
pub(crate) unsafe fn close_unobserved(node: NonNull<CancelNode>) {
    // SAFETY: alive by the caller's reference.
    if unsafe { node.as_ref() }.err().is_some() {
        return; // closed before: nothing for a `Memory` holder to do
    }
    // SAFETY: the caller's promise.
    unsafe { close(node, Error::Canceled, None, Holder::Memory, Callbacks::Drop) };
}

/// Drains the chain a close took: the subtree's cancellation. Out of
/// line, so that closing a node with an empty list (most closes: a
/// request's context, a leaf) does not set up the drain's state.
#[inline(never)]
fn drain_subtree(closed: Closed, callbacks: Callbacks) -> Panics {
    let draining = drained::enter();
    let mut drain = Drain {
        guard: None,
        deferred: false,
        chains: Vec::new(),
        markers: Vec::new(),
        deps: Vec::new(),
        pending: Vec::new(),
        panics: Panics::default(),
        callbacks,
    };
    drain.run(closed);
    drain.finish(&draining)
}

/// # Safety
/// As [`cancel`].
unsafe fn close(
    node: NonNull<CancelNode>,
    err: Error,
    record: Option<Arc<Record>>,
    holder: Holder,
    callbacks: Callbacks,
) -> bool {
    // SAFETY: alive by what the caller holds.
    let n = unsafe { node.as_ref() };
    let Some(closed) = publish(n, err, record) else {
        if holder == Holder::Handle {
            // Lost the race: Go's promise holds for losers too.
            drained::wait(n);
        }
        return false;
    };
    // SAFETY: as above.
    unsafe { entry::disarm_timer(node) };
    let panics = if closed.chain != 0 {
        drain_subtree(closed, callbacks)
    } else {
        Panics::default()
    };
    // Only now, with the subtree drained, leave the parents' lists (as Go
    // removes a child from its parent after propagating): a parent's drain
    // that runs meanwhile still reaches the node and waits for it. A node
    // a nested drain left pending keeps its links for teardown.
    if holder == Holder::Handle && drained(n.list.word()) {
        // SAFETY: the caller holds a handle.
        unsafe { withdraw_links(node) };
    }
    panics.resume();
    true
}

/// A canceller that found `node` done already: waits until its subtree is
/// drained (drained.rs), as a canceller that lost the close does.
pub(crate) fn wait_drained(node: &CancelNode) {
    drained::wait(node);
}

/// Withdraws the node's links from its parents' lists (each at most once),
/// keeping for its teardown the list references this comes to own.
///
/// # Safety
/// `node` is the node's own pointer, and the caller holds a handle on it
/// (or is teardown, which holds the last one): the handle keeps the
/// parents, and so the lists, alive.
pub(crate) unsafe fn withdraw_links(node: NonNull<CancelNode>) {
    // SAFETY: alive (caller); the links' pointers carry the node's
    // provenance, as `release` needs to step back to the node.
    let [first, second] = unsafe { entry::links(node) };
    // One call each: a loop over the pair kept it on the stack.
    // SAFETY: the caller's promise, for each link.
    unsafe {
        withdraw_link(first);
        withdraw_link(second);
    }
}

/// One link of `withdraw_links`, if the node has it.
///
/// # Safety
/// As `withdraw_links`, for one of the node's links.
#[inline(always)]
unsafe fn withdraw_link(link: Option<entry::Link>) {
    let Some((link, scope)) = link else { return };
    match scope {
        // SAFETY: our handle holds the parent whose scope owns the list,
        // and the link was pushed there or marked unlinked (create.rs).
        Some(p) => unsafe { entry::withdraw_keeping(&p.as_ref().list, link) },
        // SAFETY: as above.
        None => debug_assert!(!unsafe { link.as_ref() }.mark()),
    }
}

/// How the entries of a taken chain are released.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Free {
    /// At once: no sweeper was on the list at the close (list invariant 6).
    Direct,
    /// Through the epoch: a sweeper may still read them (list invariant 4).
    Epoch,
}

/// A node just closed: its taken chain and what it was closed with.
struct Closed {
    node: NonNull<CancelNode>,
    chain: usize,
    err: Error,
    record: Option<Arc<Record>>,
    /// Whether the chain's entries may be freed without the epoch.
    free: Free,
    /// The list reference to release once the chain is drained, and how
    /// the chain it came from lets it be freed.
    entry: Option<(NonNull<Entry>, Free)>,
}

/// Closes `node` with `err`/`record` unless it is done already. Inlined
/// into its two callers: a call here measurably slows the close of a node
/// without children.
#[inline(always)]
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
    let chain = node.list.close(word)?;
    Some(Closed {
        node: NonNull::from(node),
        chain,
        err,
        record,
        free: if chain == 0 || !node.list.sweeper_active() {
            Free::Direct
        } else {
            Free::Epoch
        },
        entry: None,
    })
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

/// A node whose subtree is being walked (invariant 3), on the drain's
/// marker stack: it comes off once the chain stack is back to `chains`
/// items. It is kept apart from the chains, and small (checked below),
/// because a chain of `n` nodes holds `n` markers at once.
struct Marker {
    node: NonNull<CancelNode>,
    /// The list reference to release once the node is marked.
    entry: Option<(NonNull<Entry>, Free)>,
    /// How many dependencies `deps` held when it went on.
    deps: usize,
    /// How many chains were on the stack when it went on.
    chains: usize,
}

const _: () = assert!(std::mem::size_of::<Marker>() <= 40);

/// How many markers ahead the way back up prefetches: a chain's markers
/// come off in a run, each touching a node last seen on the way down.
const MARKER_PREFETCH: usize = 8;

struct Drain {
    /// Pinned only while releases go through the epoch, dropped before any
    /// user code (`unpin`).
    guard: Option<Guard>,
    /// Whether any release went through the epoch (`finish` flushes).
    deferred: bool,
    /// Closed nodes whose chains are still to walk.
    chains: Vec<Closed>,
    /// Nodes below the first whose subtrees are being walked.
    markers: Vec<Marker>,
    /// Nodes closed by others, or pending, that walked subtrees reached
    /// (drained.rs); each holds a memory reference.
    deps: Vec<NonNull<CancelNode>>,
    /// Our nodes that could not be marked drained at their marker.
    pending: Vec<Pending>,
    /// The first panic of user code, re-raised by `finish`.
    panics: Panics,
    /// Run the claimed callbacks, or drop them (teardown).
    callbacks: Callbacks,
}

impl Drain {
    /// Walks the subtree depth first: a chain comes off the chain stack,
    /// its node's marker goes on (invariant 3), and its children's chains
    /// go on above; the marker comes off when they are all walked. The
    /// first node's marker is implicit: it comes off last.
    fn run(&mut self, first: Closed) {
        debug_assert!(first.entry.is_none(), "the caller holds the first node");
        self.drain_chain(&first);
        loop {
            self.markers_due();
            let Some(closed) = self.chains.pop() else {
                break;
            };
            self.markers.push(Marker {
                node: closed.node,
                entry: closed.entry,
                deps: self.deps.len(),
                chains: self.chains.len(),
            });
            self.drain_chain(&closed);
        }
        // SAFETY: the caller's hold keeps the first node alive.
        self.subtree_walked(unsafe { first.node.as_ref() }, 0, false);
    }

    /// Takes off every marker whose subtree has been walked (a chain's
    /// whole run at its end), prefetching the nodes of those below.
    fn markers_due(&mut self) {
        while self
            .markers
            .last()
            .is_some_and(|m| m.chains == self.chains.len())
        {
            let Some(Marker {
                node, entry, deps, ..
            }) = self.markers.pop()
            else {
                return;
            };
            if let Some(ahead) = self.markers.len().checked_sub(MARKER_PREFETCH) {
                // SAFETY: a marker's node is alive (our list reference),
                // and the pointer has its provenance.
                prefetch_entry(
                    unsafe { entry::link_ptr(self.markers[ahead].node) }.as_ptr() as usize,
                );
            }
            // SAFETY: our list reference keeps it alive until released
            // below.
            self.subtree_walked(unsafe { node.as_ref() }, deps, true);
            if let Some((entry, free)) = entry {
                self.release(entry, free);
            }
        }
    }

    /// A node's marker came off: marks it drained, or makes it pending
    /// (invariant 3). `enclosed`: the node is not the drain's first (which
    /// nothing in the drain encloses).
    fn subtree_walked(&mut self, node: &CancelNode, deps: usize, enclosed: bool) {
        if self.deps.len() == deps {
            drained::mark(node);
        } else {
            let own = self.deps.split_off(deps);
            let enclosing = enclosed.then_some(&mut self.deps);
            drained::defer(node, own, &mut self.pending, enclosing);
        }
    }

    /// Walks one taken chain (list invariant 2), acting on what it claims.
    fn drain_chain(&mut self, closed: &Closed) {
        let mut cur = closed.chain;
        while let Some(entry) = NonNull::new(cur as *mut Entry) {
            // SAFETY: the entry is on the chain our close took, and we
            // have not released it yet.
            let e = unsafe { entry.as_ref() };
            // SAFETY: as above.
            let (claimed, next) = unsafe { e.claim_next() };
            cur = next;
            prefetch_entry(next);
            if claimed {
                // Acting may run user code (a waker, a callback, or the drop
                // of what a child's disarm collects): never pinned there.
                self.unpin();
                if self.act(entry, closed) {
                    continue; // the entry's reference now rides on the stack
                }
            }
            if !claimed {
                self.withdrawn(entry);
            }
            self.release(entry, closed.free);
        }
    }

    /// Acts on a claimed entry. True if its list reference was moved onto
    /// the stack with the child's own chain.
    fn act(&mut self, entry: NonNull<Entry>, parent: &Closed) -> bool {
        // SAFETY: our list reference keeps the entry's container alive.
        match unsafe { entry::container(entry) } {
            Container::Child(child) => {
                // SAFETY: as above.
                let c = unsafe { child.as_ref() };
                let Some(mut closed) = publish(c, parent.err, parent.record.clone()) else {
                    drained::depends_on(c, &mut self.deps);
                    return false;
                };
                // SAFETY: as above; `child` came from the entry's pointer,
                // which carries the node's provenance (entry invariant 2).
                unsafe { entry::disarm_timer(child) };
                if closed.chain == 0 {
                    return false;
                }
                closed.entry = Some((entry, parent.free));
                self.chains.push(closed);
                true
            }
            Container::Waiter(w) => {
                // SAFETY: claimed here, alive by our list reference.
                let wake = || unsafe { super::waiter::Waiter::wake(w) };
                self.panics.call(wake);
                false
            }
            Container::Callback(cb) => {
                let callbacks = self.callbacks;
                // SAFETY: claimed here, alive by our list reference.
                let act = || unsafe {
                    match callbacks {
                        Callbacks::Drop => super::callback::Callback::discard(cb),
                        Callbacks::Run => super::callback::Callback::run(cb),
                    }
                };
                self.panics.call(act);
                false
            }
        }
    }

    /// An entry its holder claimed first: a child that withdrew its link
    /// because it was cancelled is still part of the subtree, so its drain
    /// is a dependency (drained.rs) if it is not done yet.
    fn withdrawn(&mut self, entry: NonNull<Entry>) {
        // SAFETY: the list reference we still own keeps the container alive.
        if let Container::Child(child) = unsafe { entry::container(entry) } {
            // SAFETY: as above.
            drained::depends_on(unsafe { child.as_ref() }, &mut self.deps);
        }
    }

    fn release(&mut self, entry: NonNull<Entry>, free: Free) {
        if free == Free::Direct {
            // Freeing may drop user values: never pinned there.
            self.unpin();
            // SAFETY: we own the entry's list reference (list invariant 3),
            // and no sweeper can reach it (list invariant 6).
            let release = || unsafe { entry::release(entry) };
            // It may free what runs user `Drop` code: caught.
            self.panics.call(release);
            return;
        }
        self.deferred = true;
        let guard = self.guard.get_or_insert_with(crossbeam_epoch::pin);
        // SAFETY: we own the list reference of every entry on our chains
        // (list invariant 3) and release each exactly once.
        unsafe { entry::defer(entry, guard) };
    }

    /// Drops the guard, if pinned. The drain itself never needs it to read:
    /// it owns a list reference on every entry it touches (list invariant
    /// 3); the guard only carries `defer`. So it is held across runs of
    /// consecutive deferred releases and never across user code.
    fn unpin(&mut self) {
        self.guard = None;
    }

    /// Settles the pending nodes (drained.rs); returns the first panic of
    /// user code, to re-raise once the subtree is done.
    fn finish(mut self, draining: &drained::Draining) -> Panics {
        debug_assert!(self.chains.is_empty() && self.markers.is_empty() && self.deps.is_empty());
        // Hand over our deferred frees and collect (see list
        // `entry_deleted`); no guard stays pinned while we may wait.
        if self.deferred {
            let guard = self.guard.take().unwrap_or_else(crossbeam_epoch::pin);
            guard.flush();
        }
        let pending = std::mem::take(&mut self.pending);
        drained::settle(pending, draining, &mut self.panics);
        self.panics
    }
}
