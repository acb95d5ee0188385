//! Why a context is done: the two sentinel errors and the shared cause value.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// Why a context is done, as Go's `ctx.Err()` reports it.
///
/// A context is done for exactly one of two reasons: somebody cancelled it
/// (or an ancestor), or its deadline passed. Both display exactly as Go's
/// sentinel errors do, so logs read the same in both languages.
///
/// ```
/// use gocontext::{Context, Error};
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(ctx.err(), None);
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// assert_eq!(Error::Canceled.to_string(), "context canceled");
/// assert!(Error::DeadlineExceeded.is_timeout());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Error {
    /// The context was cancelled: Go's `context.Canceled`.
    Canceled,
    /// The context's deadline passed: Go's `context.DeadlineExceeded`.
    DeadlineExceeded,
}

impl Error {
    /// True only for [`Error::DeadlineExceeded`], like Go's `Timeout()` method.
    ///
    /// ```
    /// assert!(!gocontext::Error::Canceled.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::DeadlineExceeded)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    /// `Canceled` becomes `Other`, `DeadlineExceeded` becomes `TimedOut`,
    /// each with the `Error` inside (`get_ref`, `downcast`).
    ///
    /// Never `Interrupted`: std's `read_exact`, `write_all` and `io::copy`
    /// retry an `Interrupted` error, so a reader that reports its cancelled
    /// context that way would be called again forever.
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::Canceled => std::io::ErrorKind::Other,
            Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, e)
    }
}

/// A shared error value explaining *why* a context was cancelled: Go's
/// `context.Cause`.
///
/// `err()` only says "cancelled" or "deadline exceeded"; a cause carries the
/// application's reason (a shutdown, a failed sibling request, a client that
/// went away). It is an `Arc` inside, so every descendant shares the one
/// value and cloning is one atomic increment. Any error type converts into
/// it.
///
/// `Cause` deliberately does not implement `std::error::Error` itself, so
/// that `impl<E: Error> From<E> for Cause` can exist; it derefs to
/// `dyn Error + Send + Sync` for `source()` chains and formatting.
///
/// ```
/// use gocontext::{Cause, Context, Error};
/// #[derive(Debug)]
/// struct Shutdown;
/// impl std::fmt::Display for Shutdown {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("server shutting down")
///     }
/// }
/// impl std::error::Error for Shutdown {}
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with_cause(Shutdown);
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// let cause: Cause = ctx.cause().unwrap();
/// assert!(cause.is::<Shutdown>());
/// assert_eq!(cause.to_string(), "server shutting down");
/// ```
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

// A cause is an immutable shared value: nothing in it is updated, so a
// panic cannot leave it half-updated (as tokio-util's token, it may cross
// `catch_unwind`).
impl std::panic::UnwindSafe for Cause {}
impl std::panic::RefUnwindSafe for Cause {}

impl Cause {
    /// The cause's error, if it is an `E`.
    ///
    /// ```
    /// use gocontext::Cause;
    /// let cause = Cause::from(std::fmt::Error);
    /// assert!(cause.downcast_ref::<std::fmt::Error>().is_some());
    /// assert!(cause.downcast_ref::<std::io::Error>().is_none());
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// True if the cause's error is an `E`.
    ///
    /// ```
    /// assert!(gocontext::Cause::from(std::fmt::Error).is::<std::fmt::Error>());
    /// ```
    pub fn is<E: std::error::Error + 'static>(&self) -> bool {
        self.0.is::<E>()
    }

    /// True if both are the same shared value (not merely equal errors).
    ///
    /// ```
    /// use gocontext::Cause;
    /// let a = Cause::from(std::fmt::Error);
    /// assert!(a.ptr_eq(&a.clone()));
    /// assert!(!a.ptr_eq(&Cause::from(std::fmt::Error)));
    /// ```
    pub fn ptr_eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The cause a context gets when it is done without a custom cause: the
    /// `err()` itself. Shared per reason, so `cause()` never allocates.
    pub(crate) fn of(err: Error) -> Cause {
        static CANCELED: OnceLock<Cause> = OnceLock::new();
        static DEADLINE: OnceLock<Cause> = OnceLock::new();
        let cell = match err {
            Error::Canceled => &CANCELED,
            Error::DeadlineExceeded => &DEADLINE,
        };
        cell.get_or_init(|| Cause(Arc::new(err))).clone()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Cause {
    fn from(e: E) -> Self {
        Cause(Arc::new(e))
    }
}

impl Deref for Cause {
    type Target = dyn std::error::Error + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Cause {
    /// A cause that is just a message: `Cause::message("shutting down")`.
    ///
    /// Strings do not convert into a `Cause` with `From` (the blanket
    /// `impl<E: Error> From<E> for Cause` rules that out), so this is the
    /// way to give a plain reason; [`CancelHandle::cancel_with_message`]
    /// is the short form for cancelling.
    ///
    /// [`CancelHandle::cancel_with_message`]: crate::CancelHandle::cancel_with_message
    ///
    /// ```
    /// use gocontext::{Cause, Clock, Error};
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock
    ///     .background()
    ///     .with_timeout_cause(Duration::from_secs(1), Cause::message("backend too slow"));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "backend too slow");
    /// ```
    pub fn message(text: impl Into<Cow<'static, str>>) -> Cause {
        Cause(Arc::new(Message(text.into())))
    }
}

/// The error inside [`Cause::message`]: the text, and nothing else.
#[derive(Debug)]
struct Message(Cow<'static, str>);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// A `Cause` as an owned error, for `?` into `Box<dyn Error + Send + Sync>`
/// and the libraries built on it: it displays as the cause, and its
/// `source()` is the cause's own source.
struct Shared(Cause);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0 .0.source()
    }
}

impl From<Cause> for Box<dyn std::error::Error + Send + Sync + 'static> {
    /// Boxes the shared cause (one small allocation; the error itself is
    /// not copied). It displays and chains like the cause. To downcast to
    /// the original error type, keep the `Cause` and use
    /// [`Cause::downcast_ref`].
    ///
    /// ```
    /// use gocontext::Context;
    /// fn step(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///     match ctx.cause() {
    ///         Some(cause) => Err(cause.into()),
    ///         None => Ok(()),
    ///     }
    /// }
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert!(step(&ctx).is_ok());
    /// cancel.cancel_with_message("shutting down");
    /// assert_eq!(step(&ctx).unwrap_err().to_string(), "shutting down");
    /// ```
    fn from(cause: Cause) -> Self {
        Box::new(Shared(cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_go() {
        assert_eq!(Error::Canceled.to_string(), "context canceled");
        assert_eq!(
            Error::DeadlineExceeded.to_string(),
            "context deadline exceeded"
        );
    }

    #[test]
    fn io_error_kinds() {
        let c: std::io::Error = Error::Canceled.into();
        assert_eq!(c.kind(), std::io::ErrorKind::Other);
        assert_eq!(c.get_ref().unwrap().downcast_ref(), Some(&Error::Canceled));
        let d: std::io::Error = Error::DeadlineExceeded.into();
        assert_eq!(d.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn default_cause_downcasts_to_error_and_is_shared() {
        let a = Cause::of(Error::DeadlineExceeded);
        assert_eq!(a.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));
        assert!(a.ptr_eq(&Cause::of(Error::DeadlineExceeded)));
        assert!(!a.is::<std::fmt::Error>());
    }

    #[test]
    fn message_cause_displays_its_text() {
        let owned = Cause::message(format!("node {} left", 7));
        assert_eq!(owned.to_string(), "node 7 left");
        assert_eq!(format!("{owned:?}"), "Message(\"node 7 left\")");
        assert!(owned.source().is_none());
    }

    #[test]
    fn boxed_cause_keeps_display_and_source() {
        #[derive(Debug)]
        struct Wrapped(std::fmt::Error);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Cause::from(Wrapped(std::fmt::Error)).into();
        assert_eq!(boxed.to_string(), "wrapped");
        assert_eq!(format!("{boxed:?}"), "Wrapped(Error)");
        let source = boxed.source().expect("the wrapped error's source");
        assert!(source.is::<std::fmt::Error>());
    }
}
