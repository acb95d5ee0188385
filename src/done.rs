//! Waiting for a context: the `Done` future, blocking waits, and `run`.

use crate::error::Error;
use crate::sync::{park, park_timeout};
use crate::tree::{self, CancelNode, NodeRef, Waiter};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

/// A future that resolves, with the context's `err()`, once the context is
/// done: `<-ctx.Done()` for async code.
///
/// It works on any executor: the waker is stored in an entry of the
/// context's own list (tree/waiter.rs), woken by whoever cancels. It allocates
/// only if it has to wait, and dropping it withdraws that entry.
///
/// ```
/// use gocontext::{Context, Error};
/// let (ctx, cancel) = Context::background().with_cancel();
/// let waiter = std::thread::spawn(move || {
///     // any executor works; here a one-line block_on
///     futures_lite_block_on(ctx.done())
/// });
/// cancel.cancel();
/// assert_eq!(waiter.join().unwrap(), Error::Canceled);
///
/// fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
///     use std::task::{Context as Cx, Poll, Wake, Waker};
///     struct Unpark(std::thread::Thread);
///     impl Wake for Unpark {
///         fn wake(self: std::sync::Arc<Self>) {
///             self.0.unpark()
///         }
///     }
///     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
///     let mut f = std::pin::pin!(f);
///     loop {
///         if let Poll::Ready(v) = f.as_mut().poll(&mut Cx::from_waker(&waker)) {
///             return v;
///         }
///         std::thread::park();
///     }
/// }
/// ```
///
/// It is `#[must_use]`: a `Done` that is made and dropped waits for nothing.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn forgot_to_await(ctx: &gocontext::Context) {
///     ctx.done();
/// }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Done {
    /// Our handle on the context's node, which keeps `scope` alive.
    _node: NodeRef,
    /// The context's scope (as `Context` keeps it).
    scope: Option<NonNull<CancelNode>>,
    waiter: Option<NonNull<Waiter>>,
}

// SAFETY: the waiter is owned by this future and shared with the list only
// through atomics (tree/waiter.rs).
unsafe impl Send for Done {}
// SAFETY: `&Done` exposes nothing.
unsafe impl Sync for Done {}

// As for `Context`; the waiter changes only through atomics (waiter.rs).
impl std::panic::UnwindSafe for Done {}
impl std::panic::RefUnwindSafe for Done {}

impl Done {
    /// Waits on `scope`, the scope of `node`.
    pub(crate) fn new(node: NodeRef, scope: Option<NonNull<CancelNode>>) -> Done {
        Done {
            _node: node,
            scope,
            waiter: None,
        }
    }

    /// The scope, alive as long as our handle on the node.
    fn scope(&self) -> Option<&CancelNode> {
        // SAFETY: kept alive by `_node` (see the fields).
        self.scope.map(|s| unsafe { &*s.as_ptr() })
    }

    /// The context's `err()`, without waiting.
    fn err(&self) -> Option<Error> {
        self.scope().and_then(|s| s.err())
    }
}

impl Future for Done {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        let this = self.get_mut();
        // SAFETY: kept alive by `this._node` (see the fields).
        let Some(scope) = this.scope.map(|s| unsafe { &*s.as_ptr() }) else {
            return Poll::Pending; // never done: nothing will wake us
        };
        if let Some(err) = scope.err() {
            return Poll::Ready(err);
        }
        match this.waiter {
            // SAFETY: we own a reference on our waiter.
            Some(w) => unsafe { w.as_ref() }.register(cx.waker()),
            None => {
                let w = Waiter::for_task(cx.waker());
                // SAFETY: a new waiter; on `Err` it is freed and forgotten.
                if let Err(err) = unsafe { Waiter::enlist(w, scope) } {
                    return Poll::Ready(err);
                }
                this.waiter = Some(w);
            }
        }
        // Waiter invariant 2: re-check after registering.
        match scope.err() {
            Some(err) => Poll::Ready(err),
            None => Poll::Pending,
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            // SAFETY: our waiter, enlisted on our node's scope.
            unsafe { withdraw(self.scope(), w) };
        }
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").field("err", &self.err()).finish()
    }
}

/// Withdraws and releases a waiter of `scope`.
///
/// # Safety
/// `w` was enlisted on `scope`, and the caller gives up the
/// reference it owns on it.
unsafe fn withdraw(scope: Option<&CancelNode>, w: NonNull<Waiter>) {
    if let Some(scope) = scope {
        // SAFETY: we own a reference on `w`, which was pushed onto this
        // scope's list (caller).
        unsafe { tree::withdraw(&scope.list, Waiter::entry_ptr(w)) };
    }
    // SAFETY: we own that reference.
    unsafe { Waiter::release(w) };
}

/// Blocks until `scope` is done or `deadline` (real time) passes; the
/// caller holds the context that `scope` is the scope of.
pub(crate) fn wait_until(scope: Option<&CancelNode>, deadline: Option<Instant>) -> Option<Error> {
    let Some(scope) = scope else {
        sleep_until(deadline);
        return None;
    };
    if let Some(err) = scope.err() {
        return Some(err);
    }
    let w = Waiter::for_thread();
    // SAFETY: a new waiter; on `Err` it is freed and forgotten.
    if let Err(err) = unsafe { Waiter::enlist(w, scope) } {
        return Some(err);
    }
    let result = loop {
        if let Some(err) = scope.err() {
            break Some(err);
        }
        if !park_until(deadline) {
            break None;
        }
    };
    // SAFETY: enlisted on this scope above; our reference, given up.
    unsafe { withdraw(Some(scope), w) };
    result
}

/// Parks once, at most until `deadline`; false if it has passed.
fn park_until(deadline: Option<Instant>) -> bool {
    match deadline {
        None => park(),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return false;
            }
            park_timeout(d - now);
        }
    }
    true
}

/// A context that is never done: just wait out the deadline, if any.
fn sleep_until(deadline: Option<Instant>) {
    while park_until(deadline) {}
}

/// The future returned by [`Context::run`](crate::Context::run): `fut`'s
/// output, or the context's error if the context is done first.
///
/// - On its first poll, if the context is done already, it resolves to
///   `Err` without polling `fut` at all.
/// - After that, every poll polls `fut` first and only then checks the
///   context, so an output that is ready wins a tie with the cancellation:
///   a write that committed is never reported as cancelled.
///
/// **Cancel safety.** When the context wins, `fut` is not polled again and
/// is dropped with the `Run`; whatever it had in progress is lost exactly as
/// if the caller had dropped `fut` itself. So `run` is as cancel-safe as
/// `fut` is. Once it has resolved, polling it again returns `Pending`
/// (never a second output, never a panic).
///
/// ```
/// use gocontext::{Context, Error, Run};
/// use std::future::Ready;
/// // Nameable, e.g. as a `Service::Future`:
/// fn answer(ctx: &Context) -> Run<Ready<u32>> {
///     ctx.run(std::future::ready(42))
/// }
/// # async fn example() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(answer(&ctx).await, Ok(42));
/// cancel.cancel();
/// assert_eq!(answer(&ctx).await, Err(Error::Canceled));
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Run<F> {
    done: Done,
    state: RunState,
    fut: F,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunState {
    /// Not polled yet: check the context before touching `fut`.
    New,
    /// Polled at least once.
    Running,
    /// Resolved; `fut` is never polled again.
    Finished,
}

impl<F> Run<F> {
    /// `fut` raced against `done` (the context's `Done`).
    pub(crate) fn new(done: Done, fut: F) -> Run<F> {
        Run {
            done,
            state: RunState::New,
            fut,
        }
    }
}

impl<F: Future> Future for Run<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // `fut` is structurally pinned: no method hands it out by value,
        // `Run` has no `Drop`, and the other fields are `Unpin`.
        // SAFETY: `fut` is never moved out of `self`; only a pinned
        // reference to it is made below.
        let this = unsafe { self.get_unchecked_mut() };
        let out = match (this.state, this.done.err()) {
            (RunState::Finished, _) => return Poll::Pending,
            (RunState::New, Some(err)) => Poll::Ready(Err(err)),
            (RunState::New | RunState::Running, _) => {
                this.state = RunState::Running;
                // SAFETY: see above; `this.fut` stays where it is.
                let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
                match fut.poll(cx) {
                    Poll::Ready(v) => Poll::Ready(Ok(v)),
                    Poll::Pending => Pin::new(&mut this.done).poll(cx).map(Err),
                }
            }
        };
        if out.is_ready() {
            this.state = RunState::Finished;
        }
        out
    }
}

impl<F> fmt::Debug for Run<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("done", &self.done)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
