//! The ambient context: the request's context, found without passing it.
//!
//! Go passes `ctx` as every function's first argument, and that stays the
//! clearest way. But a server's middleware and the clients deep inside a
//! handler are often written by different people: an outgoing HTTP or gRPC
//! client must find the request's context (to forward its deadline, to stop
//! when the caller goes away) without every function in between taking it.
//!
//! So each thread has one slot, the *current* context. [`Context::scope`]
//! wraps a future so that the slot holds the context while the future is
//! polled (and while it is dropped), and puts the previous value back
//! after each poll, the way `tracing::Instrument` enters a span: it works on
//! any executor, a task that moves between threads takes its context with
//! it, and tasks on the same thread never see each other's. Synchronous
//! code uses [`Context::enter`], whose guard restores the slot when dropped.
//! [`Context::current`] reads the slot.
//!
//! Nothing crosses `spawn` by itself: a spawned future is polled by the
//! executor, outside the scope of the task that spawned it. To carry the
//! context over, wrap the future first:
//! `tokio::spawn(Context::current().scope(fut))`, or
//! [`Context::scope_current`].
//!
//! Invariants:
//! 1. The slot is only ever changed by a guard, which restores the value it
//!    replaced when it is dropped (also on unwind), so scopes nest.
//! 2. A scope puts a clone of its context in the slot for each poll (one
//!    reference count), so nothing the future does to the slot, not even a
//!    leaked guard, can change the scope's own context.

use crate::Context;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

thread_local! {
    /// This thread's current context; `None` outside every scope.
    static CURRENT: Cell<Option<Context>> = const { Cell::new(None) };
}

/// Puts `ctx` in the slot; returns what was there.
fn swap(ctx: Option<Context>) -> Option<Context> {
    CURRENT.with(|slot| slot.replace(ctx))
}

impl Context {
    /// The current context: the one whose [`scope`](Context::scope) or
    /// [`enter`](Context::enter) this code runs in, or
    /// [`Context::background()`] outside of any.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// assert_eq!(Context::current(), Context::background());
    /// let _guard = ctx.enter();
    /// assert_eq!(Context::current(), ctx);
    /// ```
    pub fn current() -> Context {
        Context::try_current().unwrap_or_default()
    }

    /// The current context, or `None` outside of every scope (for code
    /// that should behave differently when no request is in flight).
    ///
    /// ```
    /// use gocontext::Context;
    /// assert_eq!(Context::try_current(), None);
    /// let ctx = Context::todo();
    /// let guard = ctx.enter();
    /// assert_eq!(Context::try_current(), Some(ctx));
    /// drop(guard);
    /// assert_eq!(Context::try_current(), None);
    /// ```
    pub fn try_current() -> Option<Context> {
        CURRENT.with(|slot| {
            let ctx = slot.take();
            let copy = ctx.clone();
            slot.set(ctx);
            copy
        })
    }

    /// Makes this context the current one on this thread until the guard
    /// is dropped: the synchronous form of [`scope`](Context::scope).
    ///
    /// The guard is `!Send`: the slot belongs to the thread. Guards nest;
    /// each restores the context it replaced, so drop them in reverse
    /// order (as scopes do). Do not hold one across an `.await`: another
    /// task polled on this thread meanwhile would see it. Use `scope` for
    /// futures.
    ///
    /// ```
    /// use gocontext::Context;
    /// fn deep_inside() -> bool {
    ///     Context::current().is_done()
    /// }
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let _guard = ctx.enter();
    /// assert!(!deep_inside());
    /// cancel.cancel();
    /// assert!(deep_inside());
    /// ```
    pub fn enter(&self) -> EnterGuard {
        EnterGuard {
            prev: swap(Some(self.clone())),
            _not_send: PhantomData,
        }
    }

    /// Wraps `fut` so that this context is the current one while it is
    /// polled or dropped: `Context::current()` anywhere below it returns
    /// this context. Runtime-independent; a `Scope` is `Send` when `fut` is.
    ///
    /// ```
    /// use gocontext::Context;
    /// # async fn example() {
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// let seen = ctx.clone().scope(async { Context::current() }).await;
    /// assert_eq!(seen, ctx);
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> Scope<F> {
        Scope {
            ctx: self,
            fut: ManuallyDrop::new(fut),
            finished: false,
        }
    }

    /// Wraps `fut` in the current context, to carry it across a `spawn`:
    /// `tokio::spawn(Context::scope_current(fut))`. The same as
    /// `Context::current().scope(fut)`.
    ///
    /// ```
    /// use gocontext::Context;
    /// # async fn example() {
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// let _guard = ctx.enter();
    /// let task = Context::scope_current(async { Context::current() });
    /// drop(_guard);
    /// assert_eq!(task.await, ctx); // it kept the context it was made in
    /// # }
    /// ```
    pub fn scope_current<F: Future>(fut: F) -> Scope<F> {
        Context::current().scope(fut)
    }
}

/// The guard of [`Context::enter`]: restores the previous current context
/// when dropped. Not `Send`: it belongs to the thread whose slot it set.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(gocontext::Context::background().enter());
/// ```
#[must_use = "the context is current only until the guard is dropped"]
pub struct EnterGuard {
    prev: Option<Context>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        drop(swap(self.prev.take())); // invariant 1
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

/// A future running in a context: see [`Context::scope`].
///
/// The inner future is dropped inside the context as soon as it completes
/// (saving a second trip through the thread's slot when the `Scope` itself
/// is dropped). Polled again after that, a `Scope` stays pending, like a
/// fused future: there is no output left to give.
#[must_use = "futures do nothing unless polled"]
pub struct Scope<F> {
    ctx: Context,
    fut: ManuallyDrop<F>,
    /// `fut` completed and was dropped in place.
    finished: bool,
}

impl<F> Scope<F> {
    /// The context this future runs in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` (it is dropped in place in `Drop`), and `ctx` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.finished {
            return Poll::Pending;
        }
        let _current = this.ctx.enter();
        // SAFETY: as above, `fut` stays where it is until dropped.
        let out = unsafe { Pin::new_unchecked(&mut *this.fut) }.poll(cx);
        if out.is_ready() {
            // `finished` is set first, so neither a later poll nor `Drop`
            // reaches the future again, even if its drop unwinds.
            this.finished = true;
            // SAFETY: dropped exactly once, in place (pinning allows that).
            unsafe { ManuallyDrop::drop(&mut this.fut) };
        }
        out
    }
}

impl<F> Drop for Scope<F> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let _current = self.ctx.enter();
        // SAFETY: dropped exactly once, here, in place; never used after
        // (`finished` is false, so `poll` has not dropped it).
        unsafe { ManuallyDrop::drop(&mut self.fut) };
    }
}

impl<F> fmt::Debug for Scope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
