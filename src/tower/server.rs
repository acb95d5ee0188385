//! The server layer: each request gets a context of its own.

use super::body::ResponseBody;
use super::end::EndOnDrop;
use super::response::{bad_timeout, context_ended, is_grpc};
use super::BoxError;
use super::GRPC_TIMEOUT;
use crate::wire::decode_timeout;
use crate::{CancelHandle, Context, Done, Scope};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

/// Gives each request a context: a child of `root` with the caller's
/// deadline. See the [module docs](crate::tower).
///
/// ```
/// use gocontext::tower::ServerLayer;
/// use gocontext::Context;
/// use std::time::Duration;
///
/// let (shutdown, stop) = Context::background().with_cancel();
/// let layer = ServerLayer::new(shutdown).max_timeout(Duration::from_secs(30));
/// // ServiceBuilder::new().layer(layer).service(app), or
/// // tonic::transport::Server::builder().layer(layer) ...
/// # let _ = (layer, stop);
/// ```
#[derive(Clone, Debug)]
pub struct ServerLayer {
    root: Context,
    max: Option<Duration>,
    extensions: bool,
}

impl ServerLayer {
    /// Requests become children of `root`: cancelling it (the server's
    /// shutdown) cancels every request in flight. No maximum: a request
    /// without `grpc-timeout` has no deadline.
    ///
    /// The requests hang from a shared child of `root`
    /// ([`Context::with_cancel_shared`]), so that threads serving requests
    /// at once do not all write `root`'s list and count; it is cancelled
    /// with `root` and by nothing else.
    pub fn new(root: Context) -> ServerLayer {
        let (shared, handle) = root.with_cancel_shared();
        handle.detach();
        ServerLayer {
            root: shared,
            max: None,
            extensions: true,
        }
    }

    /// Caps every request's time at `max`; a request without
    /// `grpc-timeout` gets exactly `max`.
    pub fn max_timeout(mut self, max: Duration) -> ServerLayer {
        self.max = Some(max);
        self
    }

    /// Whether the request's context is also stored in the request's
    /// extensions (the default). It is always the
    /// [current](Context::current) context while the inner service runs;
    /// turn the copy in the extensions off (`false`) when the handlers and
    /// clients find it that way. It saves what `http`'s extensions cost: a
    /// request with none allocates their map, its table and the boxed
    /// value, three allocations on top of the request's node.
    ///
    /// ```
    /// use gocontext::tower::ServerLayer;
    /// use gocontext::Context;
    /// let layer = ServerLayer::new(Context::background()).store_in_extensions(false);
    /// # let _ = layer;
    /// ```
    pub fn store_in_extensions(mut self, store: bool) -> ServerLayer {
        self.extensions = store;
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = Server<S>;

    fn layer(&self, inner: S) -> Server<S> {
        Server {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`ServerLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct Server<S> {
    inner: S,
    /// The layer it was made by: the root, the maximum, the extensions flag.
    config: ServerLayer,
}

impl<S> Server<S> {
    /// The request's timeout: the caller's, capped by the maximum.
    fn timeout(&self, header: Option<Duration>) -> Option<Duration> {
        match (header, self.config.max) {
            (Some(h), Some(m)) => Some(h.min(m)),
            (h, m) => h.or(m),
        }
    }

    /// The request's context and the handle that ends it.
    fn derive(&self, timeout: Option<Duration>) -> (Context, CancelHandle) {
        match timeout {
            Some(t) => self.config.root.with_timeout(t),
            None => self.config.root.with_cancel(),
        }
    }
}

impl<S, B, R> Service<Request<B>> for Server<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: http_body::Body + Default,
{
    type Response = Response<ResponseBody<R>>;
    type Error = BoxError;
    type Future = ServerFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        let header = match req.headers().get(&GRPC_TIMEOUT) {
            None => None,
            Some(value) => match decode_timeout(value.as_bytes()) {
                Ok(t) => Some(t),
                Err(err) => return ServerFuture::answered(bad_timeout(grpc, err)),
            },
        };
        let (ctx, handle) = self.derive(self.timeout(header));
        if self.config.extensions {
            req.extensions_mut().insert(ctx.clone());
        }
        let fut = {
            let _current = ctx.enter(); // `call` itself runs in it too
            self.inner.call(req)
        };
        ServerFuture {
            end: EndOnDrop::new(handle),
            done: None,
            state: State::Running {
                fut: ctx.scope(fut),
            },
            grpc,
        }
    }
}

pin_project! {
    /// The response future of [`Server`]: the inner service's, run in the
    /// request's context, raced against the context's end.
    pub struct ServerFuture<F, R> {
        // First field: dropped first, so the inner future's own drop sees
        // its context cancelled.
        end: EndOnDrop,
        // Made only once the handler has to wait: a request answered at
        // once never registers a waiter.
        done: Option<Done>,
        #[pin]
        state: State<F, R>,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Running { #[pin] fut: Scope<F> },
        Answered { res: Option<Response<R>> },
    }
}

impl<F, R> ServerFuture<F, R> {
    /// Answered without calling the inner service (no context made).
    fn answered(res: Response<R>) -> ServerFuture<F, R> {
        ServerFuture {
            end: EndOnDrop::none(),
            done: None,
            state: State::Answered { res: Some(res) },
            grpc: false,
        }
    }
}

impl<F, R, E> Future for ServerFuture<F, R>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Into<BoxError>,
    R: http_body::Body + Default,
{
    type Output = Result<Response<ResponseBody<R>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut state = this.state;
        let StateProj::Running { mut fut } = state.as_mut().project() else {
            return Poll::Ready(answer(state).map(|res| res.map(ResponseBody::plain)));
        };
        let grpc = *this.grpc;
        let ctx = fut.as_ref().get_ref().context();
        // Once the context is done, the layer answers for the request,
        // whatever the handler says: checked before polling the handler,
        // and again after it finished (it may have seen the end first).
        let out = match ctx.err() {
            Some(why) => Answer::Layer(Ok(context_ended(grpc, why))),
            None => match fut.as_mut().poll(cx) {
                Poll::Ready(out) => match fut.as_ref().get_ref().context().err() {
                    Some(why) => Answer::Layer(Ok(context_ended(grpc, why))),
                    None => response_of(grpc, out),
                },
                Poll::Pending => {
                    let ctx = fut.as_ref().get_ref().context();
                    let done = this.done.get_or_insert_with(|| ctx.done());
                    match Pin::new(done).poll(cx) {
                        Poll::Ready(why) => Answer::Layer(Ok(context_ended(grpc, why))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            },
        };
        let ctx = fut.as_ref().get_ref().context().clone();
        state.set(State::Answered { res: None }); // drops the inner future
        Poll::Ready(match out {
            // The handler's body carries the request to its end.
            Answer::Handler(res) => {
                let end = this.end.take();
                Ok(res.map(|body| ResponseBody::new(body, ctx, end).end_if_empty()))
            }
            Answer::Layer(out) => {
                this.end.finish();
                out.map(|res| res.map(ResponseBody::plain))
            }
        })
    }
}

/// Who answers: the handler (its body ends the request), or the layer
/// (the request ends now).
enum Answer<R> {
    Handler(Response<R>),
    Layer(Result<Response<R>, BoxError>),
}

/// The inner service's result; its `Error`, if it returned the context's,
/// answered as the context's end.
fn response_of<R: Default, E: Into<BoxError>>(
    grpc: bool,
    out: Result<Response<R>, E>,
) -> Answer<R> {
    let err: BoxError = match out {
        Ok(res) => return Answer::Handler(res),
        Err(err) => err.into(),
    };
    Answer::Layer(match err.downcast_ref::<crate::Error>() {
        Some(&why) => Ok(context_ended(grpc, why)),
        None => Err(err),
    })
}

/// The response made without the inner service (once).
fn answer<F, R>(state: Pin<&mut State<F, R>>) -> Result<Response<R>, BoxError> {
    match state.project() {
        StateProj::Answered { res } => res.take().ok_or_else(polled_after),
        StateProj::Running { .. } => Err(polled_after()),
    }
}

fn polled_after() -> BoxError {
    "ServerFuture polled after it completed".into()
}

impl<F, R> fmt::Debug for ServerFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerFuture")
            .field("done", &self.done)
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}
