//! tonic glue (feature `tonic`): the context's errors as gRPC statuses.
//!
//! The [`tower`](crate::tower) layers need no glue: `ServerLayer` goes into
//! `tonic::transport::Server::builder().layer(..)` and `ClientLayer` into a
//! channel's `ServiceBuilder` as they are. What tonic handlers need is to
//! return the context's end as a `Status`: `ctx.err()` converts with `?` or
//! `.into()`, `DeadlineExceeded` to `DEADLINE_EXCEEDED` and `Canceled` to
//! `CANCELLED`, with Go's message.
//!
//! ```
//! use gocontext::{Context, Error};
//! fn step(ctx: &Context) -> Result<(), tonic::Status> {
//!     match ctx.err() {
//!         Some(err) => Err(err.into()),
//!         None => Ok(()),
//!     }
//! }
//! let (ctx, cancel) = Context::background().with_cancel();
//! assert!(step(&ctx).is_ok());
//! cancel.cancel();
//! assert_eq!(step(&ctx).unwrap_err().code(), tonic::Code::Cancelled);
//! ```

use crate::wire::TimeoutError;
use crate::Error;
use tonic::{Code, Status};

impl From<Error> for Status {
    /// `DeadlineExceeded` is `DEADLINE_EXCEEDED`, `Canceled` is
    /// `CANCELLED`; the message is the error's (`context deadline
    /// exceeded`, `context canceled`).
    fn from(err: Error) -> Status {
        let code = match err {
            Error::DeadlineExceeded => Code::DeadlineExceeded,
            Error::Canceled => Code::Cancelled,
        };
        Status::new(code, err.to_string())
    }
}

impl From<TimeoutError> for Status {
    /// A malformed `grpc-timeout` is the caller's mistake:
    /// `INVALID_ARGUMENT`.
    fn from(err: TimeoutError) -> Status {
        Status::invalid_argument(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_grpc_codes() {
        let s = Status::from(Error::DeadlineExceeded);
        assert_eq!(
            (s.code(), s.message()),
            (Code::DeadlineExceeded, "context deadline exceeded")
        );
        let s = Status::from(Error::Canceled);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Cancelled, "context canceled")
        );
        let s = Status::from(TimeoutError::TooManyDigits);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "grpc-timeout has more than 8 digits");
    }
}
