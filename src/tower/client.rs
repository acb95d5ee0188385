//! The client layer: an outgoing call under the caller's context.

use super::BoxError;
use super::GRPC_TIMEOUT;
use crate::wire::decode_timeout;
use crate::{Context, Done, Error};
use http::{HeaderValue, Request};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

/// Runs each outgoing request under its context: the one in the request's
/// extensions, else [`Context::current`]. See the
/// [module docs](crate::tower).
///
/// ```
/// use gocontext::tower::ClientLayer;
/// // ServiceBuilder::new().layer(ClientLayer::new()).service(channel)
/// let layer = ClientLayer::new();
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientLayer {
    reserve: Duration,
}

impl ClientLayer {
    /// Forwards the context's whole remaining time, as grpc-go does.
    pub fn new() -> ClientLayer {
        ClientLayer::default()
    }

    /// Keeps `reserve` back: the next hop is told `remaining - reserve`,
    /// so that it gives up early enough for this hop to still relay its
    /// answer, and so that its deadline is no later than this hop's even
    /// counting the time the request spends on the wire (which a plain
    /// `remaining` does not: the next hop starts its clock when the request
    /// arrives). Default: zero.
    ///
    /// ```
    /// use gocontext::tower::ClientLayer;
    /// use std::time::Duration;
    /// let layer = ClientLayer::new().reserve(Duration::from_millis(20));
    /// # let _ = layer;
    /// ```
    pub fn reserve(mut self, reserve: Duration) -> ClientLayer {
        self.reserve = reserve;
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Client<S> {
        Client {
            inner,
            reserve: self.reserve,
        }
    }
}

/// The service [`ClientLayer`] wraps around an inner client.
#[derive(Clone, Debug)]
pub struct Client<S> {
    inner: S,
    reserve: Duration,
}

impl<S, B> Service<Request<B>> for Client<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ctx = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_else(Context::current);
        if let Some(err) = ctx.err() {
            return ClientFuture {
                state: ClientState::Failed { err: Some(err) },
            };
        }
        if let Some(left) = ctx.remaining() {
            forward_deadline(req.headers_mut(), left.saturating_sub(self.reserve));
        }
        ClientFuture {
            state: ClientState::Calling {
                fut: self.inner.call(req),
                done: ctx.done(),
            },
        }
    }
}

/// Sets `grpc-timeout` to `left`, unless the request already carries a
/// valid one that is no longer.
fn forward_deadline(headers: &mut http::HeaderMap, left: Duration) {
    let shorter_set = headers
        .get(&GRPC_TIMEOUT)
        .and_then(|v| decode_timeout(v.as_bytes()).ok())
        .is_some_and(|set| set <= left);
    if shorter_set {
        return;
    }
    let encoded = crate::wire::encode_timeout(left);
    // Digits and a unit letter: always a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(encoded.as_bytes()) {
        headers.insert(GRPC_TIMEOUT, value);
    }
}

pin_project! {
    /// The response future of [`Client`]: the call, abandoned with the
    /// context's error if the context is done first.
    pub struct ClientFuture<F> {
        #[pin]
        state: ClientState<F>,
    }
}

pin_project! {
    #[project = ClientStateProj]
    enum ClientState<F> {
        Failed { err: Option<Error> },
        Calling { #[pin] fut: F, done: Done },
    }
}

impl<F, T, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ClientStateProj::Failed { err } => {
                let err = err.take().unwrap_or(Error::Canceled);
                Poll::Ready(Err(Box::new(err)))
            }
            ClientStateProj::Calling { fut, done } => {
                // The call first: a response that is ready wins a tie.
                if let Poll::Ready(out) = fut.poll(cx) {
                    return Poll::Ready(out.map_err(Into::into));
                }
                match Pin::new(done).poll(cx) {
                    Poll::Ready(err) => Poll::Ready(Err(Box::new(err))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<F> fmt::Debug for ClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFuture").finish_non_exhaustive()
    }
}
