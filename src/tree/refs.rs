//! The two reference counts of a node, and teardown.
//!
//! Invariants:
//! 1. `handles` counts the holders that keep a node *meaningful*: each
//!    `Context` (a [`NodeRef`]), the `CancelHandle`, each derived child (a
//!    child holds its parent). When it reaches zero the node is *torn down*:
//!    closed if still open, withdrawn from its parents' lists, and its parent
//!    handles released. Nothing can observe it after that, so closing it is
//!    invisible; pending `after_func` callbacks are dropped unrun.
//! 2. `refs` (cancellable nodes only) counts holders of the node's
//!    *memory*: one for all handles together (dropped at teardown), one
//!    per list that links it (list invariant 3), one while a clock holds
//!    its timer, one per `after_func` registration (callback invariant 2).
//!    The node is freed when `refs` reaches zero. List references are
//!    released through the epoch when a sweeper may still read them (list
//!    invariant 4), so a node is never freed under a sweeper. The other
//!    kinds are never linked, armed or registered on: their memory goes
//!    with their last handle.
//! 3. Teardown and release walk up the tree in a loop, never by recursion:
//!    a million-deep chain drops on a small stack. A node that loses its
//!    last handle while its thread is already in that loop (a freed value
//!    or callback that held a `Context`) is handed to the loop, so drops
//!    through contexts stored inside contexts do not recurse either.

use super::cancel;
use super::layout::{kept_refs, MergeNode};
use super::node::{as_cancel, is_kind, CancelNode, Header, NodeKind, NodeRef};
use super::shared;
use crate::sync::Ordering::Relaxed;
use crate::sync::{release_last, release_own, thread_local};
use crate::unwind::Panics;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

impl Clone for NodeRef {
    /// One atomic increment (none for the roots).
    fn clone(&self) -> NodeRef {
        if let Some(n) = self.header() {
            acquire_handle(n);
        }
        // SAFETY: the handle count just taken (or a root, which has none).
        unsafe { NodeRef::adopt(self.raw()) }
    }
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        // The allocation's pointer, not one from `&Header`: it may free.
        if let Some(h) = self.node_ptr() {
            // SAFETY: we own this handle count.
            unsafe { release_handle(h) };
        }
    }
}

/// One more handle on a node (a `Context` clone, a child, a handle).
pub(crate) fn acquire_handle(node: &Header) {
    // Relaxed: the caller already holds a handle, so the count cannot be
    // zero; no memory is published by an increment.
    node.handles.fetch_add(1, Relaxed);
}

/// One more memory reference (invariant 2), for a holder that must reach
/// the node's list without keeping the context alive.
pub(crate) fn acquire_ref(node: &CancelNode) {
    // Relaxed: the caller holds a handle or a reference, so the count is
    // not zero; the new holder is published by whatever hands it over.
    node.refs.fetch_add(1, Relaxed);
}

/// Releases one handle; tears down and walks up while counts hit zero.
///
/// # Safety
/// The caller owns one handle on `h`.
pub(crate) unsafe fn release_handle(h: NonNull<Header>) {
    // SAFETY: we own a handle on `h`, so it is alive.
    if release_own(&unsafe { h.as_ref() }.handles, 1) {
        tear_down_from(h);
    }
}

/// Where this thread's teardown loop is (`tear_down_from`): not running,
/// running, or running with nodes deferred to it in `DEFERRED` (nodes that
/// lost their last handle meanwhile: a freed value that held a `Context`,
/// a discarded callback that captured one). A flag with no destructor, so
/// that the common case (no loop running, nothing deferred) reads one
/// thread-local byte and never touches the vector.
type LoopState = Cell<u8>;
const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const WAITING: u8 = 2;
type Deferred = RefCell<Vec<NonNull<Header>>>;

#[cfg(not(loom))]
thread_local! {
    static LOOP: LoopState = const { Cell::new(IDLE) };
    static DEFERRED: Deferred = const { RefCell::new(Vec::new()) };
}
// loom's `thread_local!` has no `const` form.
#[cfg(loom)]
thread_local! {
    static LOOP: LoopState = Cell::new(IDLE);
    static DEFERRED: Deferred = RefCell::new(Vec::new());
}

/// Tears down `first` (its last handle is gone) and every node that loses
/// its last handle as a result, in one loop (invariant 3). Freeing a node
/// can drop user values that hold contexts; their teardown joins the loop
/// already running on this thread instead of recursing, so a chain of
/// contexts stored inside contexts drops on a small stack too.
#[inline(never)] // `release_handle`'s common case then saves no registers
fn tear_down_from(first: NonNull<Header>) {
    let entered = LOOP.try_with(|s| {
        let idle = s.get() == IDLE;
        if idle {
            s.set(RUNNING);
        }
        idle
    });
    match entered {
        Ok(true) => {
            let _end = LoopEnd;
            tear_down_loop(first);
        }
        Ok(false) => defer(first),
        // This thread's locals are gone (it is exiting): loop without them.
        Err(_) => tear_down_loop(first),
    }
}

/// Hands `node` to the loop running on this thread.
fn defer(node: NonNull<Header>) {
    if DEFERRED.try_with(|d| d.borrow_mut().push(node)).is_err() {
        return tear_down_loop(node); // exiting, as above
    }
    let _ = LOOP.try_with(|s| s.set(WAITING));
}

/// The loop of `tear_down_from`. User code it runs (discarded callbacks,
/// freed values and causes) may panic: the loop completes regardless and
/// re-raises the first panic at the end (unwind.rs).
fn tear_down_loop(first: NonNull<Header>) {
    let mut panics = Panics::default();
    let mut more: Vec<NonNull<Header>> = Vec::new();
    let mut h = first;
    loop {
        // SAFETY: its handles are zero (every pointer here came from a
        // `NodeRef` or a hub's release, the allocation's own).
        if !unsafe { release_hub(h, &mut more) } {
            // SAFETY: its handles are zero and its memory is held by the
            // handles' reference, which we release last.
            let (p1, p2) = unsafe { teardown(h, &mut panics) };
            if let Some(p2) = p2 {
                more.push(p2);
            }
            // SAFETY: the handles' memory reference (invariant 2).
            let release = || unsafe { release_handles_ref(h) };
            panics.call(release); // frees values and causes: user `Drop` code
            if let Some(p1) = p1 {
                h = p1; // the common walk up: no trip through `more`
                continue;
            }
        } // else its teardown waits for its shards (shared inv. 3)
        match more.pop().or_else(take_deferred) {
            Some(next) => h = next,
            None => break,
        }
    }
    panics.resume();
}

/// If `h` is a hub not released yet, releases it (shared invariant 3):
/// gives up its shard handles, queueing the shards that had no child left.
///
/// # Safety
/// `h` is a node's own pointer, and its handles are zero.
#[inline(always)]
unsafe fn release_hub(h: NonNull<Header>, more: &mut Vec<NonNull<Header>>) -> bool {
    // SAFETY: alive, as its handles' reference is not released yet; and
    // `release_shards` gets a hub whose handles are zero (caller).
    unsafe { shared::is_hub(h.as_ref()) && release_shards(h, more) }
}

/// `release_hub`'s work, out of line: the loop runs for every node.
///
/// # Safety
/// `h` is a hub's own pointer, and its handles are zero.
#[cold]
#[inline(never)]
unsafe fn release_shards(h: NonNull<Header>, more: &mut Vec<NonNull<Header>>) -> bool {
    // SAFETY: the caller's promise.
    let Some(shards) = (unsafe { shared::release(h) }) else {
        return false; // released before, and its last shard has gone
    };
    let gone = shards.into_iter().filter_map(NodeRef::into_raw);
    more.extend(gone.filter(|&s| last_handle(s)));
    true
}

/// Releases a handle we own on `p`; true if it was the last.
fn last_handle(p: NonNull<Header>) -> bool {
    // SAFETY: we own a handle on `p`, so it is alive.
    release_last(&unsafe { p.as_ref() }.handles)
}

/// The next node deferred to the running loop, if any.
fn take_deferred() -> Option<NonNull<Header>> {
    if LOOP.try_with(Cell::get).ok()? != WAITING {
        return None;
    }
    let node = DEFERRED.try_with(|d| d.borrow_mut().pop()).ok().flatten();
    if node.is_none() {
        let _ = LOOP.try_with(|s| s.set(RUNNING));
    }
    node
}

/// Ends this thread's teardown loop (also if it unwinds).
struct LoopEnd;

impl Drop for LoopEnd {
    fn drop(&mut self) {
        if LOOP.try_with(|s| s.replace(IDLE)).ok() == Some(WAITING) {
            // Only if the loop unwound: what it had left is leaked.
            let _ = DEFERRED.try_with(|d| d.borrow_mut().clear());
        }
    }
}

/// Invariant 1: the node's last handle is gone. Gives up its handles on
/// its parents, and returns those whose last handle that was (or, for a
/// shard, its hub if the shard was its last: shared invariant 3).
///
/// # Safety
/// `h`'s `handles` reached zero; `h` is the allocation's pointer.
unsafe fn teardown(
    h: NonNull<Header>,
    panics: &mut Panics,
) -> (Option<NonNull<Header>>, Option<NonNull<Header>>) {
    let mut p2 = None;
    // SAFETY: the handles' memory reference keeps the node alive.
    if let Some(c) = unsafe { as_cancel(h) } {
        // Its drain completes, then re-raises a discarded callback's panic.
        // SAFETY: as above.
        panics.call(|| unsafe { cancel::close_unobserved(c) });
        // SAFETY: as above.
        unsafe { cancel::withdraw_links(c) };
        // SAFETY: as above.
        if unsafe { is_kind(h, NodeKind::Merge) } {
            // SAFETY: handles are zero: nobody else reads the cell.
            p2 = unsafe { MergeNode::take_parent2(h) };
        }
    }
    // SAFETY: as above.
    let p1 = unsafe { h.as_ref().take_parent() }.and_then(NodeRef::into_raw);
    // SAFETY: as above.
    if shared::is_shard(unsafe { h.as_ref() }) {
        // Its cell owned no handle on the hub; its links are withdrawn.
        // SAFETY: the hub of a shard that has gone, released by now.
        return (p1.filter(|&hub| unsafe { shared::shard_gone(hub) }), None);
    }
    let p2 = p2.and_then(NodeRef::into_raw);
    (
        p1.filter(|&p| last_handle(p)),
        p2.filter(|&p| last_handle(p)),
    )
}

/// Drops the memory reference all handles together held (invariant 2),
/// with the list references its links kept (`entry::withdraw_keeping`):
/// frees a node without `refs` (a value, a root, a `without_cancel`) at
/// once, a cancellable one when its count reaches zero.
///
/// # Safety
/// The node's handles are zero and its teardown is done; `h` is the
/// allocation's pointer.
unsafe fn release_handles_ref(h: NonNull<Header>) {
    // SAFETY: the handles' reference keeps the node alive until here.
    match unsafe { as_cancel(h) } {
        // SAFETY: as above; the kept references are ours too.
        Some(c) => unsafe { release_node_refs(c, 1 + kept_refs(c)) },
        // SAFETY: no kind but the cancellable ones is referenced by memory
        // alone (invariant 2), so nobody else holds it.
        None => unsafe { free(h) },
    }
}

/// Drops one memory reference of a cancellable node; frees it at zero
/// (invariant 2).
///
/// # Safety
/// The caller owns one memory reference on `node`, its own pointer.
pub(crate) unsafe fn release_node_ref(node: NonNull<CancelNode>) {
    // SAFETY: the caller's promise.
    unsafe { release_node_refs(node, 1) }
}

/// [`release_node_ref`] of `n` references the caller owns, in one step.
///
/// # Safety
/// The caller owns `n` memory references on `node`, its own pointer.
unsafe fn release_node_refs(node: NonNull<CancelNode>, n: usize) {
    // SAFETY: our references keep the node alive until this decrement.
    if release_own(&unsafe { node.as_ref() }.refs, n) {
        // SAFETY: refs is zero: we are the last holder.
        unsafe { free(node.cast()) };
    }
}

/// Frees a node through its table (its type is erased here).
///
/// # Safety
/// Nobody holds the node any more; `h` is the allocation's pointer.
unsafe fn free(h: NonNull<Header>) {
    // SAFETY: alive until the call below; tables are `'static`.
    let free = unsafe { h.as_ref().vtable().as_ref() }.free;
    // SAFETY: the caller's promise.
    unsafe { free(h) };
}
