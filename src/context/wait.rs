//! Waiting for a `Context`: the `Done` future, blocking waits, and `run`.

use super::Context;
use crate::done::{self, Done, Run};
use crate::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

impl Context {
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
        Done::new(self.node.clone(), self.scope)
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
            if let Some(err) = done::wait_until(self.scope_node(), None) {
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
            Some(deadline) => {
                done::wait_until(self.scope_node(), Some(deadline)).or_else(|| self.err())
            }
            None => Some(self.wait()),
        }
    }

    /// Runs `fut` until it completes or the context is done, whichever is
    /// first: `Err` at once (without polling `fut`) if the context is done
    /// already, and after that `fut` is polled first on every poll, so an
    /// output that is ready wins a tie with the cancellation. See [`Run`]
    /// for its cancel safety.
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
    pub fn run<F: Future>(&self, fut: F) -> Run<F> {
        Run::new(self.done(), fut)
    }
}
