//! Value lookup: walking outward through value and merge nodes only.
//!
//! Every node records its nearest ancestor-or-self that can answer a lookup
//! (`Header::values`): a value node or a merge. Cancellable and detached
//! nodes are skipped without being visited, so a lookup costs one hop per
//! value node, not per context. A merge forks the walk: its first parent's
//! chain is searched before its second's, on an explicit stack (no
//! recursion on depth).

use crate::node::{Header, NodeKind, ValueHead, ValueNode};
use std::ptr::NonNull;

/// The value stored under `key` (the key's address) as seen from `start`.
///
/// # Safety
/// `start` and everything reachable from it must be kept alive by a handle
/// the caller holds for the returned lifetime; `T` must be the key's type.
pub(crate) unsafe fn lookup<'a, T: 'static>(
    start: Option<NonNull<Header>>,
    key: usize,
) -> Option<&'a T> {
    let mut forks: Vec<NonNull<Header>> = Vec::new();
    let mut cur = start;
    loop {
        let Some(h) = cur.or_else(|| forks.pop()) else {
            return None;
        };
        // SAFETY: kept alive by the caller's handle (see above).
        let node = unsafe { h.as_ref() };
        let parent = node.parent().and_then(|p| p.values());
        match node.kind {
            NodeKind::Value => {
                // SAFETY: value nodes are allocated as `ValueNode<_>`, whose
                // head comes first (`repr(C)`).
                let head = unsafe { h.cast::<ValueHead>().as_ref() };
                if head.key == key {
                    // SAFETY: keys are unique statics of one type, so the
                    // node holding this key was created with a `T`.
                    return Some(unsafe { &h.cast::<ValueNode<T>>().as_ref().value });
                }
            }
            NodeKind::Merge => {
                let second = node
                    .as_cancel()
                    .and_then(|c| c.parent2())
                    .and_then(|p| p.values());
                forks.extend(second);
            }
            _ => {}
        }
        cur = parent;
    }
}
