//! The `Context` type: a handle on one node of the cancellation tree.

use crate::after_func::AfterFunc;
use crate::clock::Clock;
use crate::error::{Cause, Error};
use crate::handle::CancelHandle;
use crate::key::Key;
use crate::tree::{self, CancelNode, KeyId, NodeRef, Parent, Root};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// A node of the cancellation tree: carries a cancellation signal, maybe a
/// deadline, and request-scoped values across API boundaries.
///
/// A request creates a context at its edge and passes it, usually as the
/// first argument, to everything it calls. Deriving (`with_cancel`,
/// `with_deadline`, `with_timeout`, `with_value`, `merge`) makes a child;
/// cancelling a context cancels every descendant at once, and a deadline
/// cancels on its own. Code that does the work observes the context: `err()`
/// and `is_done()` for a quick check in a loop, `done().await` in async
/// code, `wait()` on a thread, `after_func` for a callback.
///
/// `Context` is cheap to clone (one atomic increment) and every method is
/// safe to call from any thread. Checking it takes no lock: `err()` is one
/// atomic load.
///
/// ```
/// use gocontext::{Context, Error};
/// use std::time::Duration;
///
/// fn handle(ctx: &Context) -> Result<(), Error> {
///     for _chunk in 0..3 {
///         if let Some(err) = ctx.err() {
///             return Err(err); // stop early: nobody wants the answer
///         }
///         // ... do a bounded piece of work ...
///     }
///     Ok(())
/// }
///
/// let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(5));
/// assert_eq!(handle(&ctx), Ok(()));
/// cancel.cancel();
/// assert_eq!(handle(&ctx), Err(Error::Canceled));
/// ```
///
/// `Background` and `TODO` are no node at all, so deriving from them
/// touches no shared memory.
pub struct Context {
    node: NodeRef,
    /// The node's scope, the nearest cancellable ancestor-or-self (`None`:
    /// never done), kept here so that checks load nothing but its state
    /// word. Alive as long as `node` (docs/design.md, "Nodes").
    scope: Option<NonNull<CancelNode>>,
}

// SAFETY: `scope` is a node kept alive by `node`, shared through atomics
// only, as `NodeRef`'s node is; `&Context` only reads.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

// A panic cannot leave a context half-updated for code that catches it: the
// node's shared state changes only in single atomic steps, and the engine
// completes a cancellation or teardown before it re-raises a panic of user
// code run inside it (tree/cancel.rs, tree/refs.rs). So a `Context` may
// cross `catch_unwind`.
impl std::panic::UnwindSafe for Context {}
impl std::panic::RefUnwindSafe for Context {}

impl Context {
    fn new(node: NodeRef, scope: Option<NonNull<CancelNode>>) -> Context {
        Context { node, scope }
    }

    #[inline] // what a child derives from: a shard, for a shared context
    fn as_parent(&self) -> Parent<'_> {
        Parent::of(&self.node, self.scope)
    }

    /// The scope (see the field), for the modules that wait on it.
    #[inline]
    pub(crate) fn scope_node(&self) -> Option<&CancelNode> {
        // SAFETY: kept alive by our handle on the node (see the field).
        self.scope.map(|s| unsafe { &*s.as_ptr() })
    }

    /// The root of every tree: never done, no deadline, no values. Use it
    /// in `main`, in tests, and at the top of an incoming request.
    ///
    /// ```
    /// let ctx = gocontext::Context::background();
    /// assert!(!ctx.is_done());
    /// assert_eq!(ctx.to_string(), "context.Background");
    /// ```
    pub fn background() -> Context {
        Context::new(NodeRef::root(Root::Background), None)
    }

    /// The same as [`background`](Context::background), but says "this
    /// code has not decided which context to use yet".
    ///
    /// ```
    /// assert_eq!(gocontext::Context::todo().to_string(), "context.TODO");
    /// ```
    pub fn todo() -> Context {
        Context::new(NodeRef::root(Root::Todo), None)
    }

    // ----- deriving -----

    /// A child that is done when `cancel` is called on the returned handle
    /// (or the handle is dropped), or when this context is done, whichever
    /// is first: Go's `WithCancel` and `WithCancelCause` in one.
    ///
    /// Dropping the [`CancelHandle`] cancels, so the child's resources are
    /// released as soon as the work it scopes is over: Go's
    /// `defer cancel()` without the chance to forget it.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let parent = Context::background();
    /// let (child, cancel) = parent.with_cancel();
    /// drop(cancel);
    /// assert_eq!(child.err(), Some(Error::Canceled));
    /// assert_eq!(parent.err(), None);
    /// ```
    #[inline]
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        if let Some(shared) = self.share_if_done() {
            return shared;
        }
        pair(tree::cancellable(self.as_parent(), None))
    }

    /// A done context's child would be the same (err, cause, values): share.
    #[inline]
    fn share_if_done(&self) -> Option<(Context, CancelHandle)> {
        let scope = self.scope.filter(|_| self.err().is_some())?;
        // SAFETY: our handle keeps the scope alive (its pointer is the
        // node's own); `share` took the handle count we hand over.
        let handle = unsafe { CancelHandle::new(tree::share(scope)) };
        Some((self.clone(), handle))
    }

    /// A child that is also done at `deadline`, with
    /// [`Error::DeadlineExceeded`]. If this context's deadline is earlier,
    /// the child simply follows it (and `deadline()` reports it). A deadline
    /// at or before the clock's `now()` gives a child that is done at once.
    /// A deadline that the clock can never reach (past a manual clock's cap,
    /// see [`Clock::advance`]) means no deadline of its own, as a timeout
    /// too large for `Instant` does.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// use std::time::Instant;
    /// let (ctx, _cancel) = Context::background().with_deadline(Instant::now());
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelHandle) {
        let (clock, inherited) = self.node.time();
        self.deadline_child(clock, inherited, deadline, None, None)
    }

    /// [`with_deadline`](Context::with_deadline), and when the deadline
    /// fires, `cause()` reports `cause` (an explicit cancel still reports
    /// its own).
    ///
    /// ```
    /// use gocontext::{Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let deadline = clock.now() + Duration::from_secs(1);
    /// let cause = std::io::Error::other("backend too slow");
    /// let (ctx, _cancel) = clock.background().with_deadline_cause(deadline, cause);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "backend too slow");
    /// ```
    pub fn with_deadline_cause(
        &self,
        deadline: Instant,
        cause: impl Into<Cause>,
    ) -> (Context, CancelHandle) {
        let (clock, inherited) = self.node.time();
        self.deadline_child(clock, inherited, deadline, Some(cause.into()), None)
    }

    /// A child that is done after `timeout` on this context's clock:
    /// `with_deadline(clock.now() + timeout)`. A timeout too large for
    /// `Instant` means no deadline of its own.
    ///
    /// ```
    /// use gocontext::Context;
    /// use std::time::Duration;
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(30));
    /// assert!(ctx.deadline().is_some());
    /// let (forever, _c) = Context::background().with_timeout(Duration::MAX);
    /// assert_eq!(forever.deadline(), None);
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelHandle) {
        self.timeout_child(timeout, None)
    }

    /// [`with_timeout`](Context::with_timeout) with a cause reported when
    /// the timeout fires.
    ///
    /// ```
    /// use gocontext::{Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, cancel) = clock
    ///     .background()
    ///     .with_timeout_cause(Duration::from_secs(1), std::io::Error::other("slow"));
    /// cancel.cancel(); // an explicit cancel keeps its own cause
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert!(ctx.cause().unwrap().is::<Error>());
    /// ```
    pub fn with_timeout_cause(
        &self,
        timeout: Duration,
        cause: impl Into<Cause>,
    ) -> (Context, CancelHandle) {
        self.timeout_child(timeout, Some(cause.into()))
    }

    fn timeout_child(&self, timeout: Duration, cause: Option<Cause>) -> (Context, CancelHandle) {
        let (clock, inherited) = self.node.time();
        let now = clock.now();
        match now.checked_add(timeout) {
            Some(deadline) => self.deadline_child(clock, inherited, deadline, cause, Some(now)),
            None => self.with_cancel(),
        }
    }

    /// `clock` and `inherited`: this context's clock (handed on to the
    /// node) and deadline, read in one walk (`NodeRef::time`); `now`: the
    /// clock's time if the caller just read it.
    fn deadline_child(
        &self,
        clock: Clock,
        inherited: Option<Instant>,
        deadline: Instant,
        cause: Option<Cause>,
        now: Option<Instant>,
    ) -> (Context, CancelHandle) {
        #[cfg(loom)]
        clock.refuse_real_time_under_loom();
        if inherited.is_some_and(|d| d <= deadline) {
            return self.with_cancel(); // Go's shortcut: the parent fires first
        }
        if clock.never_reaches(deadline) {
            return self.with_cancel(); // as a timeout too large for `Instant`
        }
        let passed = deadline <= now.unwrap_or_else(|| clock.now());
        pair(tree::deadline(
            self.as_parent(),
            clock,
            deadline,
            cause,
            passed,
        ))
    }

    /// A child carrying `value` under `key`; lookups of `key` through the
    /// child (and its descendants) see it, shadowing outer values.
    ///
    /// Use values for request-scoped data that crosses API boundaries
    /// (request ids, credentials, trace spans), not for optional
    /// parameters.
    ///
    /// ```
    /// use gocontext::{Context, Key};
    /// static USER: Key<String> = Key::new("user");
    /// let ctx = Context::background().with_value(&USER, "gopher".to_string());
    /// assert_eq!(ctx.value(&USER).map(String::as_str), Some("gopher"));
    /// ```
    pub fn with_value<T: Send + Sync + 'static>(&self, key: &'static Key<T>, value: T) -> Context {
        let key = KeyId {
            vtable: key.vtable(),
            slot: key.slot(),
        };
        Context::new(tree::value(&self.node, key, value), self.scope)
    }

    /// A child that keeps this context's values but is never done and has
    /// no deadline: for work that must outlive the request (Go's
    /// `WithoutCancel`).
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let detached = ctx.without_cancel();
    /// cancel.cancel();
    /// assert!(ctx.is_done() && !detached.is_done());
    /// ```
    pub fn without_cancel(&self) -> Context {
        Context::new(tree::without_cancel(&self.node), None)
    }

    /// Arranges for `f` to run once this context is done.
    ///
    /// `f` runs at most once, on the thread that completes the cancellation
    /// (the canceller, or the clock's driver for a deadline), or at once on
    /// this thread if the context is done already. It must not block. A
    /// panic in `f` does not stop the rest of the cancellation; it is
    /// re-raised to the canceller afterwards. Dropping the returned
    /// [`AfterFunc`] does not unregister `f`; [`AfterFunc::stop`] does.
    ///
    /// The registration does not keep the context alive: if every
    /// `Context` and `CancelHandle` of it is dropped before it is done (a
    /// detached handle), the context is freed and `f` is dropped unrun (and
    /// the first [`AfterFunc::stop`] returns true: `f` never started).
    ///
    /// ```
    /// use gocontext::Context;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let r = ran.clone();
    /// let _after = ctx.after_func(move || r.store(true, Ordering::SeqCst));
    /// cancel.cancel();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn after_func(&self, f: impl FnOnce() + Send + 'static) -> AfterFunc {
        AfterFunc::register(self.scope, Box::new(f))
    }

    /// A context that is done as soon as either `a` or `b` is (with that
    /// parent's err and cause), or its handle cancels. Its deadline is the
    /// earlier of the two; values are looked up in `a`, then `b`.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (request, _c1) = Context::background().with_cancel();
    /// let (server, stop_server) = Context::background().with_cancel();
    /// let (both, _c) = Context::merge(&request, &server);
    /// stop_server.cancel();
    /// assert_eq!(both.err(), Some(Error::Canceled));
    /// ```
    pub fn merge(a: &Context, b: &Context) -> (Context, CancelHandle) {
        pair(tree::cancellable(a.as_parent(), Some(&b.node)))
    }

    // ----- observing -----

    /// `None` while the context is live; once it is done, why: and then it
    /// never changes. One atomic load.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// drop(cancel);
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// ```
    #[inline]
    pub fn err(&self) -> Option<Error> {
        self.scope_node()?.err()
    }

    /// True once the context is done. One atomic load.
    ///
    /// ```
    /// let (ctx, cancel) = gocontext::Context::background().with_cancel();
    /// cancel.cancel();
    /// assert!(ctx.is_done());
    /// ```
    #[inline]
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// Why the context is done, in the application's words: the cause
    /// given to `cancel_with_cause` or `with_*_cause`, or else the `err()`
    /// itself. `None` while live (Go's `context.Cause`).
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert!(ctx.cause().is_none());
    /// cancel.cancel();
    /// assert_eq!(ctx.cause().unwrap().downcast_ref::<Error>(), Some(&Error::Canceled));
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.scope_node()?.cause()
    }

    /// When the context will be done by itself, if ever: the earliest
    /// deadline on its path to the root.
    ///
    /// ```
    /// use gocontext::Context;
    /// use std::time::Duration;
    /// let (outer, _c1) = Context::background().with_timeout(Duration::from_secs(1));
    /// let (inner, _c2) = outer.with_timeout(Duration::from_secs(60));
    /// assert_eq!(inner.deadline(), outer.deadline()); // the earlier one wins
    /// assert_eq!(Context::background().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// The time left before the deadline, on this context's clock: `None`
    /// without a deadline, `Some(Duration::ZERO)` once it has passed. This
    /// is what an outgoing call should be given (`grpc-timeout`, a socket
    /// timeout), so each hop of a request gets what the previous one left.
    ///
    /// ```
    /// use gocontext::Clock;
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock.background().with_timeout(Duration::from_secs(3));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(ctx.remaining(), Some(Duration::from_secs(2)));
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    /// assert_eq!(clock.background().remaining(), None);
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.node.remaining()
    }

    /// The value stored under `key` by the nearest `with_value` on the path
    /// to the root.
    ///
    /// ```
    /// use gocontext::{Context, Key};
    /// static TRACE: Key<u64> = Key::new("trace");
    /// let outer = Context::background().with_value(&TRACE, 1);
    /// let (inner, _cancel) = outer.with_value(&TRACE, 2).with_cancel();
    /// assert_eq!(inner.value(&TRACE), Some(&2)); // the nearest one shadows
    /// assert_eq!(outer.value(&TRACE), Some(&1));
    /// ```
    pub fn value<T: 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        // SAFETY: our handle keeps the whole path alive for `&self`'s life,
        // and the key's address fixes the type.
        unsafe { tree::lookup(self.node.values(), key.vtable(), key.slot()) }
    }

    /// The clock this context's deadlines run on: its root's.
    ///
    /// ```
    /// use gocontext::Clock;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock.background().with_cancel();
    /// assert_eq!(ctx.clock().now(), clock.now());
    /// ```
    pub fn clock(&self) -> Clock {
        self.node.clock()
    }
}

/// A new node's two handles, as a context and its cancel handle.
fn pair(node: NonNull<CancelNode>) -> (Context, CancelHandle) {
    // SAFETY: `cancellable` returns the node with two handles: one each.
    unsafe {
        let h = NodeRef::adopt(CancelNode::header_ptr(node));
        (Context::new(h, Some(node)), CancelHandle::new(node))
    }
}

impl Clone for Context {
    /// One atomic increment (none for the roots).
    fn clone(&self) -> Context {
        Context::new(self.node.clone(), self.scope)
    }
}

// `Clock::background` lives here, not in clock.rs: a root is a `Context`,
// and clock.rs must not import context.rs, which imports it.
impl Clock {
    /// A root context whose deadlines run on this clock:
    /// `Clock::system().background()` is [`Context::background`].
    ///
    /// ```
    /// use gocontext::{Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock.background().with_timeout(Duration::from_secs(10));
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// ```
    pub fn background(&self) -> Context {
        if self.ptr_eq(&Clock::system()) {
            return Context::background();
        }
        Context::new(tree::root(self.clone()), None)
    }
}

mod display;
mod identity;
mod shared;
mod wait;
