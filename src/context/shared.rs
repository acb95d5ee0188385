//! Shared contexts: `with_cancel` for a parent that many threads derive
//! children from at once (the engine's side: `tree/shared.rs`).

use super::Context;
use crate::handle::CancelHandle;
use crate::tree;

impl Context {
    /// [`with_cancel`](Context::with_cancel) for a context that many
    /// threads derive children from at once, such as a server's root.
    ///
    /// A plain context keeps its children on one list, and every child
    /// joins and leaves it and counts itself on the parent: threads that
    /// derive requests from one root at the same time all write one cache
    /// line. A shared context keeps a list per CPU slot instead (a few
    /// hundred bytes each, allocated here), and a child derived from it
    /// on a thread joins that thread's list, so creating and ending
    /// children on different threads touches nothing in common. Everything
    /// else is `with_cancel`'s: cancelling it (or its parent) cancels every
    /// child, and `Display` shows `WithCancel`. Children derived through a
    /// value node on top of it join its own list, as with any context.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// use std::time::Duration;
    /// let (server, shutdown) = Context::background().with_cancel_shared();
    /// let workers: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let server = server.clone();
    ///         std::thread::spawn(move || {
    ///             let (request, _end) = server.with_timeout(Duration::from_secs(5));
    ///             request
    ///         })
    ///     })
    ///     .collect();
    /// let requests: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    /// shutdown.cancel();
    /// assert!(requests.iter().all(|r| r.err() == Some(Error::Canceled)));
    /// ```
    pub fn with_cancel_shared(&self) -> (Context, CancelHandle) {
        if let Some(shared) = self.share_if_done() {
            return shared;
        }
        super::pair(tree::cancellable_shared(self.as_parent()))
    }
}
