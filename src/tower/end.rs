//! How a request's context ends: the causes the server layer cancels it
//! with ([`RequestEnded`]), and the guard that cancels it when the response
//! future or body is dropped ([`EndOnDrop`]). Both the server future and
//! the response body hold that guard, so it lives apart from either.

use crate::handle::PreparedCause;
use crate::{CancelHandle, Cause};
use std::fmt;

/// Why a request's context was cancelled by [`ServerLayer`](super::ServerLayer): its
/// `cause()`. Downcast to tell a caller who hung up from a request that
/// finished.
///
/// ```
/// use gocontext::tower::RequestEnded;
/// assert_eq!(
///     RequestEnded::ClientWentAway.to_string(),
///     "request cancelled: the client went away before the response"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestEnded {
    /// The response future, or its body, was dropped before the end: the
    /// caller hung up (or the connection broke), so nobody wants the answer.
    ClientWentAway,
    /// The response has been sent (its body ended): what the request
    /// started is no longer needed.
    Responded,
}

impl fmt::Display for RequestEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestEnded::ClientWentAway => {
                "request cancelled: the client went away before the response"
            }
            RequestEnded::Responded => "request finished: the response was sent",
        })
    }
}

impl std::error::Error for RequestEnded {}

static CLIENT_WENT_AWAY: PreparedCause =
    PreparedCause::new(|| Cause::from(RequestEnded::ClientWentAway));
static RESPONDED: PreparedCause = PreparedCause::new(|| Cause::from(RequestEnded::Responded));

/// Cancels the request's context when dropped: the caller went away,
/// unless `finish` said the response was sent first.
pub(super) struct EndOnDrop(Option<CancelHandle>);

impl EndOnDrop {
    /// Ends the request of `handle`'s context when dropped.
    pub(super) fn new(handle: CancelHandle) -> EndOnDrop {
        EndOnDrop(Some(handle))
    }

    /// Nothing to end.
    pub(super) fn none() -> EndOnDrop {
        EndOnDrop(None)
    }

    /// Hands the duty over (to the response body).
    pub(super) fn take(&mut self) -> EndOnDrop {
        EndOnDrop(self.0.take())
    }

    /// The response is sent: ends the request with `Responded`.
    pub(super) fn finish(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel_with_prepared(&RESPONDED);
        }
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel_with_prepared(&CLIENT_WENT_AWAY);
        }
    }
}
