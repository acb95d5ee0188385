//! The two reference counts of a node, and teardown.
//!
//! Invariants:
//! 1. `handles` counts the holders that keep a node *meaningful*: each
//!    `Context` (a [`NodeRef`]), the `CancelHandle`, each derived child (a
//!    child holds its parent). When it reaches zero the node is *torn down*:
//!    closed if still open, withdrawn from its parents' lists, and its parent
//!    handles released. Nothing can observe it after that, so closing it is
//!    invisible; pending `after_func` callbacks are dropped unrun.
//! 2. `refs` counts holders of the node's *memory*: one for all handles
//!    together (dropped at teardown), one per list that links it (list
//!    invariant 3), one while a clock holds its timer, one per `after_func`
//!    registration (callback invariant 2). The node is freed when `refs`
//!    reaches zero. List references are released through the epoch when a
//!    sweeper may still read them (list invariant 4), so a node is never
//!    freed under a sweeper.
//! 3. Teardown and release walk up the tree in a loop, never by recursion:
//!    a million-deep chain drops on a small stack.

use super::cancel;
use super::node::{as_cancel, CancelNode, Header, NodeRef};
use crate::sync::release_last;
use crate::sync::Ordering::Relaxed;
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
pub(crate) fn acquire_ref(node: &Header) {
    // Relaxed: the caller holds a handle or a reference, so the count is
    // not zero; the new holder is published by whatever hands it over.
    node.refs.fetch_add(1, Relaxed);
}

/// Releases one handle; tears down and walks up while counts hit zero.
///
/// # Safety
/// The caller owns one handle on `h`.
pub(crate) unsafe fn release_handle(h: NonNull<Header>) {
    let mut more: Vec<NonNull<Header>> = Vec::new();
    let mut next = Some(h);
    while let Some(h) = next.take().or_else(|| more.pop()) {
        // SAFETY: we own a handle on `h`, so it is alive.
        if !release_last(unsafe { &h.as_ref().handles }) {
            continue;
        }
        // SAFETY: that was the last handle.
        let (p1, p2) = unsafe { teardown(h) };
        next = p1.and_then(NodeRef::into_raw);
        more.extend(p2.and_then(NodeRef::into_raw));
        // SAFETY: the handles' memory reference (invariant 2).
        unsafe { release_ref(h) };
    }
}

/// Invariant 1: the node's last handle is gone. Returns its parents.
///
/// # Safety
/// `h`'s `handles` reached zero; `h` is the allocation's pointer.
unsafe fn teardown(h: NonNull<Header>) -> (Option<NodeRef>, Option<NodeRef>) {
    let mut p2 = None;
    // SAFETY: the handles' memory reference keeps the node alive.
    if let Some(c) = unsafe { as_cancel(h) } {
        // SAFETY: as above.
        unsafe {
            cancel::close_unobserved(c);
            cancel::withdraw_links(c);
        }
        // SAFETY: handles are zero: nobody else reads the cell.
        p2 = unsafe { c.as_ref().take_parent2() };
    }
    // SAFETY: as above.
    let p1 = unsafe { h.as_ref().take_parent() };
    (p1, p2)
}

/// Drops one memory reference; frees the node at zero (invariant 2).
///
/// # Safety
/// The caller owns one memory reference on `h`.
pub(crate) unsafe fn release_ref(h: NonNull<Header>) {
    // SAFETY: our reference keeps the node alive until this decrement.
    let node = unsafe { h.as_ref() };
    if release_last(&node.refs) {
        let free = node.free;
        // SAFETY: refs is zero: we are the last holder.
        unsafe { free(h) };
    }
}

/// `release_ref` of a cancellable node.
///
/// # Safety
/// As [`release_ref`].
pub(crate) unsafe fn release_node_ref(node: NonNull<CancelNode>) {
    // SAFETY: the caller's promise; the header is the node's first field.
    unsafe { release_ref(node.cast()) }
}
