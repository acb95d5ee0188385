//! `CancelHandle`: the right to cancel one derived context.

use crate::error::{Cause, Error};
use crate::tree::{self, CancelNode, Holder, Record};
use std::fmt;
use std::ptr::NonNull;

/// The right to cancel one derived context: Go's `CancelFunc` and
/// `CancelCauseFunc` in one.
///
/// Dropping the handle cancels the context, so `let (ctx, _cancel) = ...`
/// gives Go's `defer cancel()` by construction; [`detach`](Self::detach)
/// gives the handle up without cancelling.
///
/// ```
/// use gocontext::{Context, Error};
/// let (ctx, cancel) = Context::background().with_cancel();
/// {
///     let _guard = cancel; // cancelled when the scope ends
/// }
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// ```
#[must_use = "dropping a CancelHandle cancels its context at once"]
pub struct CancelHandle {
    node: NonNull<CancelNode>,
}

// SAFETY: cancelling is thread-safe (tree/cancel.rs), and the handle is a
// counted reference on the node.
unsafe impl Send for CancelHandle {}
// SAFETY: as above.
unsafe impl Sync for CancelHandle {}

// As for `Context`: node state changes in single atomic steps.
impl std::panic::UnwindSafe for CancelHandle {}
impl std::panic::RefUnwindSafe for CancelHandle {}

impl CancelHandle {
    /// Adopts one handle count on `node`.
    ///
    /// # Safety
    /// The caller gives up one handle count it owns on the live `node`.
    pub(crate) unsafe fn new(node: NonNull<CancelNode>) -> CancelHandle {
        CancelHandle { node }
    }

    fn node(&self) -> &CancelNode {
        // SAFETY: the handle owns a handle count on the node.
        unsafe { self.node.as_ref() }
    }

    /// Cancels the context and its descendants with [`Error::Canceled`].
    /// Idempotent. When it returns, every descendant is done and every
    /// waiter has been woken, also if another thread was completing the
    /// same cancellation (this call then waits for it), except when called
    /// from a callback or waker that a cancellation runs (see
    /// docs/design.md, "The drained signal").
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (parent, cancel) = Context::background().with_cancel();
    /// let (child, _c) = parent.with_cancel();
    /// cancel.cancel();
    /// cancel.cancel(); // idempotent
    /// assert_eq!(child.err(), Some(Error::Canceled));
    /// ```
    pub fn cancel(&self) {
        // SAFETY: our handle count keeps the node alive, and `self.node` is
        // its own pointer.
        unsafe { tree::cancel(self.node, Error::Canceled, None, Holder::Handle) };
    }

    /// Cancels with a cause that `cause()` will report (Go's
    /// `cancel(cause)`). Changes nothing if the context is done already.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel_with_cause(std::io::Error::other("client went away"));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
    /// ```
    pub fn cancel_with_cause(&self, cause: impl Into<Cause>) {
        self.cancel_with_record(|| Record::new(Error::Canceled, cause.into()));
    }

    /// Cancels with the record `make` builds, made only if the context is
    /// still open; if it is done already, waits for the subtree, as
    /// `cancel` does.
    fn cancel_with_record(&self, make: impl FnOnce() -> std::sync::Arc<Record>) {
        if self.node().err().is_some() {
            return tree::wait_drained(self.node());
        }
        // SAFETY: as in `cancel`.
        unsafe { tree::cancel(self.node, Error::Canceled, Some(make()), Holder::Handle) };
    }

    /// Gives up the handle without cancelling: the context lives on until
    /// its parent is done or its deadline passes.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (parent, cancel_parent) = Context::background().with_cancel();
    /// let (child, cancel_child) = parent.with_cancel();
    /// cancel_child.detach();
    /// assert!(!child.is_done());
    /// cancel_parent.cancel();
    /// assert!(child.is_done());
    /// ```
    pub fn detach(self) {
        let node = self.node;
        std::mem::forget(self);
        // SAFETY: we owned one handle count, now given back; the header
        // pointer keeps the node's provenance (it may free the node).
        unsafe { tree::release_handle(CancelNode::header_ptr(node)) };
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        // Give the handle back even if a callback's panic unwinds through.
        struct Release(NonNull<CancelNode>);
        impl Drop for Release {
            fn drop(&mut self) {
                // SAFETY: the dropped `CancelHandle` owned one handle count.
                unsafe { tree::release_handle(CancelNode::header_ptr(self.0)) };
            }
        }
        let _release = Release(self.node);
        self.cancel();
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("err", &self.node().err())
            .finish()
    }
}

impl CancelHandle {
    /// Cancels with a plain message as the cause:
    /// `cancel_with_cause(Cause::message(text))`.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel_with_message("shutting down");
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "shutting down");
    /// ```
    pub fn cancel_with_message(&self, text: impl Into<std::borrow::Cow<'static, str>>) {
        if self.node().err().is_none() {
            self.cancel_with_cause(Cause::message(text));
        }
    }
}

/// A cancel cause built on first use and shared by every cancel that uses
/// it afterwards, so that cancelling with it allocates nothing: the tower
/// layers end every request with one of a few fixed causes.
#[cfg(feature = "tower")]
pub(crate) struct PreparedCause {
    make: fn() -> Cause,
    record: std::sync::OnceLock<std::sync::Arc<Record>>,
}

#[cfg(feature = "tower")]
impl PreparedCause {
    pub(crate) const fn new(make: fn() -> Cause) -> PreparedCause {
        PreparedCause {
            make,
            record: std::sync::OnceLock::new(),
        }
    }

    fn shared(&self) -> &std::sync::Arc<Record> {
        self.record
            .get_or_init(|| Record::new(Error::Canceled, (self.make)()))
    }
}

#[cfg(feature = "tower")]
impl CancelHandle {
    /// `cancel_with_cause(prepared)` without allocating a record.
    pub(crate) fn cancel_with_prepared(&self, prepared: &PreparedCause) {
        self.cancel_with_record(|| prepared.shared().clone());
    }
}
