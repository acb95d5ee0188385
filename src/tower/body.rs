//! The response body of the server layer: the request's context lives
//! until the body has been sent, as a Go handler's does until `ServeHTTP`
//! returns.

use super::end::EndOnDrop;
use crate::Context;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

pin_project! {
    /// The body of a response from [`Server`](super::Server): the inner
    /// service's body, which keeps the request's context alive (and
    /// current, while it is polled) until it ends. A streaming body (a
    /// gRPC server stream, a long download) runs in the request's context;
    /// when the body ends, the context is cancelled with
    /// [`RequestEnded::Responded`](super::RequestEnded::Responded), and if
    /// it is dropped before its end (the client went away), with
    /// [`RequestEnded::ClientWentAway`](super::RequestEnded::ClientWentAway).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        ctx: Option<Context>,
        end: EndOnDrop,
    }
}

impl<B> ResponseBody<B> {
    /// A body that ends the request when it ends.
    pub(super) fn new(inner: B, ctx: Context, end: EndOnDrop) -> ResponseBody<B> {
        ResponseBody {
            inner,
            ctx: Some(ctx),
            end,
        }
    }

    /// A body made by the layer itself: no request to end.
    pub(super) fn plain(inner: B) -> ResponseBody<B> {
        ResponseBody {
            inner,
            ctx: None,
            end: EndOnDrop::none(),
        }
    }
}

impl<B: Body> ResponseBody<B> {
    /// Ends the request now if the body has nothing left to send (hyper
    /// stops polling a body that says so).
    pub(super) fn end_if_empty(mut self) -> ResponseBody<B> {
        if self.inner.is_end_stream() {
            self.end.finish();
        }
        self
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let _current = this.ctx.as_ref().map(Context::enter);
        let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        // The end, an error (hyper stops there), or a last frame.
        if matches!(frame, None | Some(Err(_))) || this.inner.is_end_stream() {
            this.end.finish();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> ResponseBody<B> {
        ResponseBody::plain(B::default())
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}
