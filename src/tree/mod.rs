//! The cancellation tree: nodes, their lists, cancellation and teardown.
//!
//! A derived context is one heap node; a cancellable node carries a state
//! word that is also the head of its lock-free list of children, waiters and
//! callbacks. Cancelling closes the word and drains the list, iteratively;
//! dropping the last handle tears a node down. Nothing here takes a lock.
//!
//! | module | concept | invariants |
//! |---|---|---|
//! | `state.rs` | the state word of a cancellable node | state 1-3 |
//! | `list.rs` | the intrusive lock-free list, its links and sweep policy | list 1-6 |
//! | `node.rs` | the header, the cancellable core, `NodeRef` | node 1-3 |
//! | `record.rs` | the record slot: a custom cause, a deadline's pending one | node 3 |
//! | `layout.rs` | the per-kind layouts past the core; the time base | layout 1-2 |
//! | `refs.rs` | the two reference counts, teardown | refs 1-3 |
//! | `shared.rs` | shared contexts: a hub, its per-thread shards | shared 1-4 |
//! | `create.rs` | creating each kind of node, attach, arming its timer | create 1-3 |
//! | `cancel.rs` | closing a node and draining its subtree | cancel 1-3 |
//! | `drained.rs` | the drained signal: a subtree done, waiting for it | drained 1-5 |
//! | `loom_park.rs` | loom's model of the drained wait's timed park | loom_park 1 |
//! | `entry.rs` | entry dispatch: which container a link is part of | entry 1-2 |
//! | `waiter.rs` | `Done` futures and blocked threads as list entries | waiter 1-2 |
//! | `callback.rs` | `after_func` registrations as list entries | callback 1-4 |
//! | `value.rs` | value lookup | — |
//!
//! No two modules here import each other, and all dependencies run one way
//! except for one argued cycle: `refs` → `cancel` → `entry`/`callback` →
//! `refs`. Dropping a node's last handle closes it (refs calls cancel), a
//! drain acts on and releases the entries it reached (cancel calls entry and
//! callback), and releasing an entry's memory reference may free a child
//! node or a callback's scope (entry and callback call refs). The recursion
//! is in the problem, not in the stack: teardown and the drain both loop
//! over explicit stacks (refs invariant 3), so no call in the cycle recurses.
//! The time side (`crate::time`) knows nothing of this folder: it calls back
//! only through the hook table that `create.rs` arms timers with.

mod blocks;
mod callback;
mod cancel;
mod create;
mod drained;
mod entry;
mod layout;
mod list;
#[cfg(loom)]
mod loom_park;
mod node;
mod record;
mod refs;
mod shared;
mod state;
mod value;
mod waiter;

pub(crate) use callback::{Callback, Func};
pub(crate) use cancel::{cancel, wait_drained, Holder};
pub(crate) use create::{
    cancellable, cancellable_shared, deadline, root, share, value, without_cancel, KeyId,
};
pub(crate) use entry::withdraw;
pub(crate) use layout::value_vtable;
pub(crate) use node::{kind_of, CancelNode, NodeKind, NodeRef, NodeVtable, Parent, Root};
pub(crate) use record::Record;
pub(crate) use refs::release_handle;
pub(crate) use shared::is_shard;
pub(crate) use value::{key_of, lookup};
pub(crate) use waiter::Waiter;
