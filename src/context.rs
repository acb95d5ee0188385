//! The `Context` type: a handle on one node of the cancellation tree.

use crate::after_func::{self, AfterFunc};
use crate::cancel;
use crate::clock::Clock;
use crate::done::Done;
use crate::handle::CancelHandle;
use crate::node::{
    release_handle, CancelNode, CancelSpec, Header, NodeKind, Record, ValueHead, ValueNode,
};
use crate::{Cause, Error, Key};
use std::fmt;
use std::future::Future;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `Context::background()` and `Context::todo()` are not nodes: they are
/// these two addresses, which no allocation can have. Deriving from them
/// touches no shared memory at all.
const BACKGROUND: usize = 8;
const TODO: usize = 16;

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
pub struct Context {
    ptr: NonNull<Header>,
}

// SAFETY: a `Context` is a counted handle on a node whose shared state is
// atomic (node.rs); values are `Send + Sync` by `with_value`'s bounds.
unsafe impl Send for Context {}
// SAFETY: as above; every `&self` method is thread-safe.
unsafe impl Sync for Context {}

impl Context {
    fn sentinel(addr: usize) -> Context {
        Context {
            // SAFETY: `addr` is a non-zero constant.
            ptr: unsafe { NonNull::new_unchecked(addr as *mut Header) },
        }
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
        Context::sentinel(BACKGROUND)
    }

    /// The same as [`background`](Context::background), but says "this
    /// code has not decided which context to use yet".
    ///
    /// ```
    /// assert_eq!(gocontext::Context::todo().to_string(), "context.TODO");
    /// ```
    pub fn todo() -> Context {
        Context::sentinel(TODO)
    }

    /// Adopts one handle on `h`.
    pub(crate) fn from_node(h: NonNull<Header>) -> Context {
        Context { ptr: h }
    }

    /// Gives up this handle as a raw node pointer (`None` for the roots).
    pub(crate) fn into_node(self) -> Option<NonNull<Header>> {
        let node = self.node().map(NonNull::from);
        std::mem::forget(self);
        node
    }

    #[inline]
    pub(crate) fn node(&self) -> Option<&Header> {
        if self.ptr.as_ptr() as usize <= TODO {
            return None;
        }
        // SAFETY: a non-root `Context` owns a handle, so the node is alive.
        Some(unsafe { self.ptr.as_ref() })
    }

    /// The nearest cancellable ancestor-or-self, if any.
    #[inline]
    pub(crate) fn cancel_scope(&self) -> Option<&CancelNode> {
        // SAFETY: the scope is this node or an ancestor, kept alive by our
        // handle through the parent chain.
        self.node()?.scope.map(|s| unsafe { &*s.as_ptr() })
    }

    pub(crate) fn scope_ptr(&self) -> Option<NonNull<CancelNode>> {
        self.node()?.scope
    }

    pub(crate) fn values(&self) -> Option<NonNull<Header>> {
        self.node()?.values
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
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        if let Some(scope) = self.cancel_scope().filter(|s| s.err().is_some()) {
            // Done already: a child would be indistinguishable from this
            // context (same err, cause, deadline, values), so share it.
            scope.header.acquire();
            return (self.clone(), CancelHandle::new(NonNull::from(scope)));
        }
        self.derive(None, false, false, None)
    }

    fn derive(
        &self,
        deadline: Option<Instant>,
        deadline_node: bool,
        own_timer: bool,
        cause: Option<Cause>,
    ) -> (Context, CancelHandle) {
        let node = CancelNode::create(CancelSpec {
            parent: self,
            parent2: None,
            deadline: deadline.or(self.deadline()),
            own_timer,
            deadline_cause: cause,
            deadline_node,
        });
        pair(node)
    }

    /// A child that is also done at `deadline`, with
    /// [`Error::DeadlineExceeded`]. If this context's deadline is earlier,
    /// the child simply follows it (and `deadline()` reports it). A deadline
    /// at or before the clock's `now()` gives a child that is done at once.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// use std::time::Instant;
    /// let (ctx, _cancel) = Context::background().with_deadline(Instant::now());
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelHandle) {
        self.deadline_child(deadline, None, None)
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
        self.deadline_child(deadline, Some(cause.into()), None)
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
        let now = self.clock().now();
        match now.checked_add(timeout) {
            Some(deadline) => self.deadline_child(deadline, cause, Some(now)),
            None => self.with_cancel(),
        }
    }

    /// `now`: the clock's time if the caller just read it.
    fn deadline_child(
        &self,
        deadline: Instant,
        cause: Option<Cause>,
        now: Option<Instant>,
    ) -> (Context, CancelHandle) {
        if self.deadline().is_some_and(|d| d <= deadline) {
            return self.with_cancel(); // Go's shortcut: the parent fires first
        }
        let expired = deadline <= now.unwrap_or_else(|| self.clock().now());
        let (ctx, handle) = self.derive(Some(deadline), true, !expired, cause);
        if expired {
            handle.expire();
        }
        (ctx, handle)
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
        let header = Header::new_value::<ValueNode<T>>(self);
        let outer = self.values();
        let node = Box::new(ValueNode {
            head: ValueHead {
                header,
                key: key.id(),
                key_name: key.name(),
                outer,
                // SAFETY: `outer` is kept alive by our handle on `self`.
                filter: unsafe { crate::value::filter_of(outer) }.with(key.slot()),
            },
            value,
        });
        let ptr = NonNull::from(Box::leak(node)).cast::<Header>();
        // SAFETY: not shared yet; it answers lookups itself.
        unsafe { (*ptr.as_ptr()).values = Some(ptr) };
        Context::from_node(ptr)
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
        Context::from_node(Header::new_detached(self))
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
    /// detached handle), the context is freed and `f` is dropped unrun.
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
        after_func::register(self.cancel_scope(), Box::new(f))
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
        let deadline = match (a.deadline(), b.deadline()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let node = CancelNode::create(CancelSpec {
            parent: a,
            parent2: Some(b),
            deadline,
            own_timer: false,
            deadline_cause: None,
            deadline_node: false,
        });
        pair(node)
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
        self.cancel_scope()?.err()
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
        self.cancel_scope()?.cause()
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
        self.cancel_scope()?.deadline
    }

    /// A future that resolves, with the `err()`, once the context is done:
    /// `<-ctx.Done()` for async code. Works on any executor; dropping it
    /// leaves nothing behind.
    ///
    /// ```
    /// # use gocontext::{Context, Error};
    /// # async fn example() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.done().await, Error::Canceled);
    /// # }
    /// ```
    pub fn done(&self) -> Done {
        Done::new(self.clone())
    }

    /// Blocks the calling thread until the context is done. Blocks forever
    /// on a context that is never done.
    ///
    /// ```
    /// use gocontext::{Context, Error};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let t = std::thread::spawn(move || ctx.wait());
    /// cancel.cancel();
    /// assert_eq!(t.join().unwrap(), Error::Canceled);
    /// ```
    pub fn wait(&self) -> Error {
        loop {
            if let Some(err) = crate::done::wait_until(self, None) {
                return err;
            }
        }
    }

    /// Blocks the calling thread until the context is done or `timeout`
    /// (real time) passes; `None` on time-out.
    ///
    /// ```
    /// use gocontext::Context;
    /// use std::time::Duration;
    /// let ctx = Context::background();
    /// assert_eq!(ctx.wait_timeout(Duration::from_millis(1)), None);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Error> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => crate::done::wait_until(self, Some(deadline)).or_else(|| self.err()),
            None => Some(self.wait()),
        }
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
        unsafe { crate::value::lookup(self.values(), key.id(), key.slot()) }
    }

    /// Runs `fut` until it completes or the context is done, whichever is
    /// first (a context that is done wins a tie).
    ///
    /// ```
    /// # use gocontext::{Context, Error};
    /// # async fn example() {
    /// let ctx = Context::background();
    /// assert_eq!(ctx.run(async { 7 }).await, Ok(7));
    /// let (ctx, cancel) = ctx.with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.run(std::future::pending::<()>()).await, Err(Error::Canceled));
    /// # }
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> impl Future<Output = Result<F::Output, Error>> {
        crate::done::run(self.done(), fut)
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
        match self.node() {
            Some(n) => n.clock.clone(),
            None => Clock::system(),
        }
    }
}

/// A new node's two handles, as a context and its cancel handle.
fn pair(node: NonNull<CancelNode>) -> (Context, CancelHandle) {
    // SAFETY: `create` returns the node with two handles: one each.
    let h = unsafe { node.as_ref() }.as_header();
    (Context::from_node(h), CancelHandle::new(node))
}

impl CancelHandle {
    /// A deadline that had passed at creation: done at once.
    fn expire(&self) {
        let node = self.node();
        let record = node.deadline_record();
        cancel::cancel(node, Error::DeadlineExceeded, record, true);
    }
}

/// Builds the record for a custom cancel cause.
pub(crate) fn record(err: Error, cause: Cause) -> Arc<Record> {
    Arc::new(Record { err, cause })
}

/// A cancel record that can be built once and shared (see
/// `handle::PreparedCause`).
pub(crate) type SharedRecord = Arc<Record>;

impl Clone for Context {
    /// One atomic increment (none for the roots).
    fn clone(&self) -> Context {
        if let Some(n) = self.node() {
            n.acquire();
        }
        Context { ptr: self.ptr }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(n) = self.node() {
            // SAFETY: we own this handle.
            unsafe { release_handle(NonNull::from(n)) };
        }
    }
}

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
        Context::from_node(Header::new_root(self.clone()))
    }
}

impl fmt::Display for Context {
    /// Go's style: the path from the root, e.g.
    /// `context.Background.WithValue(user).WithCancel`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let mut cur = self;
        while let Some(n) = cur.node() {
            path.push(n);
            match n.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        let root = match cur.ptr.as_ptr() as usize {
            TODO => "context.TODO",
            _ => "context.Background",
        };
        f.write_str(root)?;
        for n in path.iter().rev() {
            segment(n, f)?;
        }
        Ok(())
    }
}

fn segment(n: &Header, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match n.kind {
        NodeKind::Root => Ok(()),
        NodeKind::Cancel => f.write_str(".WithCancel"),
        NodeKind::Merge => f.write_str(".Merge"),
        NodeKind::Detached => f.write_str(".WithoutCancel"),
        NodeKind::Value => {
            // SAFETY: value nodes start with a `ValueHead`.
            let head = unsafe { &*(n as *const Header).cast::<ValueHead>() };
            write!(f, ".WithValue({})", head.key_name)
        }
        NodeKind::Deadline => {
            let deadline = n.as_cancel().and_then(|c| c.deadline);
            let left = deadline.map(|d| d.saturating_duration_since(n.clock.now()));
            write!(f, ".WithDeadline({:?})", left.unwrap_or_default())
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("path", &format_args!("{self}"))
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl PartialEq for Context {
    /// Identity: true when both handles are on the same context (clones are
    /// equal; a child never equals its parent, and two separately derived
    /// contexts never equal each other). `Context::background()` equals
    /// itself, as every call returns the same root; a `with_cancel` of a
    /// context that is done already may return that context itself.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// let (child, _c) = ctx.with_cancel();
    /// assert_eq!(ctx, ctx.clone());
    /// assert_ne!(ctx, child);
    /// ```
    fn eq(&self, other: &Context) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for Context {}

impl std::hash::Hash for Context {
    /// Hashes the identity, consistent with `==`: in-flight requests can
    /// live in a `HashSet<Context>` or key a `HashMap`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
    }
}

impl Default for Context {
    /// [`Context::background()`].
    fn default() -> Context {
        Context::background()
    }
}

impl Context {
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
        let deadline = self.deadline()?;
        Some(deadline.saturating_duration_since(self.clock().now()))
    }
}
