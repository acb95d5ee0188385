//! The tower layers over real sockets: a client calls a gateway, which
//! calls a backend, all hyper HTTP/1 on 127.0.0.1. The gateway's handler
//! never sees the request's context; its outgoing client finds it (the
//! ambient context) and forwards the deadline as `grpc-timeout`. The
//! server and client plumbing is `examples/deadline_chain.rs`'s, which the
//! last test runs.

use gocontext::tower::{ClientLayer, RequestEnded, ServerLayer};
use gocontext::{Context, Error};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

#[path = "../examples/deadline_chain.rs"]
mod chain;

use chain::{handler, http_client, serve, serve_service, Body};

/// A bound on waiting in these tests: only ever an upper limit.
const PATIENCE: Duration = Duration::from_secs(10);

fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(format!("http://{addr}{path}"))
}

/// What a handler saw of its request's context.
#[derive(Clone, Debug)]
struct Seen {
    ctx: Context,
    header: Option<String>,
}

/// A backend that records each request's context and answers at once,
/// or, for `/hang`, only when its context is done.
async fn backend(layer: ServerLayer) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = handler(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let ctx = Context::current();
            assert_eq!(
                req.extensions().get::<Context>(),
                Some(&ctx),
                "ambient = extension"
            );
            let header = req
                .headers()
                .get("grpc-timeout")
                .map(|v| v.to_str().unwrap().to_string());
            tx.send(Seen {
                ctx: ctx.clone(),
                header,
            })
            .unwrap();
            if req.uri().path() == "/hang" {
                let why = ctx.done().await;
                return Response::new(Full::from(format!("stopped: {why}")));
            }
            Response::new(Full::from("ok"))
        }
    });
    (serve(layer, app).await, rx)
}

/// A gateway whose handler calls `backend` through `ClientLayer`, passing
/// no context by hand; records its own context first.
async fn gateway(
    layer: ServerLayer,
    backend: SocketAddr,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    gateway_with(layer, ClientLayer::new(), backend).await
}

async fn gateway_with(
    layer: ServerLayer,
    client: ClientLayer,
    backend: SocketAddr,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = client.layer(http_client());
    let app = handler(move |req: Request<Incoming>| {
        let tx = tx.clone();
        let mut client = client.clone();
        async move {
            tx.send(Seen {
                ctx: Context::current(),
                header: None,
            })
            .unwrap();
            let out = get(backend, req.uri().path())
                .body(Body::default())
                .unwrap();
            match client.call(out).await {
                Ok(res) => {
                    let status = res.status();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    let mut mine = Response::new(Full::from(body));
                    *mine.status_mut() = status;
                    mine
                }
                Err(err) => {
                    let mut res = Response::new(Full::from(err.to_string()));
                    *res.status_mut() = StatusCode::BAD_GATEWAY;
                    res
                }
            }
        }
    });
    (serve(layer, app).await, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("the handler ran")
        .expect("the server is up")
}

async fn body_text(res: Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_deadline_is_no_later_than_the_gateways() {
    let max = Duration::from_secs(60);
    let (b_addr, mut b_seen) =
        backend(ServerLayer::new(Context::background()).max_timeout(max)).await;
    // The gateway keeps 250 ms for itself: more than the request's time on
    // the wire, so the backend's deadline comes first.
    let reserve = Duration::from_millis(250);
    let layer = ServerLayer::new(Context::background()).max_timeout(max);
    let (g_addr, mut g_seen) =
        gateway_with(layer, ClientLayer::new().reserve(reserve), b_addr).await;

    let sent = Instant::now();
    let req = get(g_addr, "/")
        .header("grpc-timeout", "5S")
        .body(Body::default())
        .unwrap();
    let res = http_client().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "ok");

    let g = next(&mut g_seen).await;
    let b = next(&mut b_seen).await;
    let g_deadline = g
        .ctx
        .deadline()
        .expect("the gateway got the caller's deadline");
    let b_deadline = b
        .ctx
        .deadline()
        .expect("the backend got the gateway's deadline");
    assert!(
        b_deadline <= g_deadline,
        "{b_deadline:?} later than {g_deadline:?}"
    );
    assert!(
        b_deadline + reserve >= g_deadline,
        "the backend lost more than the reserve"
    );
    assert!(g_deadline >= sent + Duration::from_secs(5));
    assert!(g_deadline <= Instant::now() + Duration::from_secs(5));
    let forwarded = b.header.expect("the gateway's client sent grpc-timeout");
    let forwarded = gocontext::wire::decode_timeout(forwarded.as_bytes()).unwrap();
    assert!(
        forwarded <= Duration::from_secs(5) - reserve,
        "{forwarded:?}"
    );
    // Both requests are over: their contexts ended with "responded".
    for ctx in [&g.ctx, &b.ctx] {
        assert_eq!(ctx.err(), Some(Error::Canceled));
        let cause = ctx.cause().unwrap();
        assert_eq!(cause.downcast_ref(), Some(&RequestEnded::Responded));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_cancels_the_backend_within_50ms() {
    let (b_addr, mut b_seen) = backend(ServerLayer::new(Context::background())).await;
    let (g_addr, mut g_seen) = gateway(ServerLayer::new(Context::background()), b_addr).await;

    // A raw connection, so that the test can hang up by closing it.
    let stream = tokio::net::TcpStream::connect(g_addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let call = tokio::spawn(async move {
        let req = get(g_addr, "/hang").body(Body::default()).unwrap();
        send.send_request(req).await
    });
    let g = next(&mut g_seen).await;
    let b = next(&mut b_seen).await; // the backend is working on it now
    assert!(!b.ctx.is_done());

    call.abort();
    conn.abort(); // drops the connection: the client went away
    let hung_up = Instant::now();
    let why = tokio::time::timeout(PATIENCE, b.ctx.done()).await.unwrap();
    let took = hung_up.elapsed();
    assert_eq!(why, Error::Canceled);
    assert!(
        took <= Duration::from_millis(50),
        "the backend heard after {took:?}"
    );
    let cause = b.ctx.cause().unwrap();
    assert_eq!(cause.downcast_ref(), Some(&RequestEnded::ClientWentAway));
    assert_eq!(
        cause.to_string(),
        "request cancelled: the client went away before the response"
    );
    let g_cause = g.ctx.cause().unwrap();
    assert_eq!(g_cause.downcast_ref(), Some(&RequestEnded::ClientWentAway));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_timeout_is_rejected_not_a_panic() {
    let (addr, mut seen) = backend(ServerLayer::new(Context::background())).await;
    let client = http_client();
    for bad in ["", "1", "1s", "1 S", "123456789S", "-1S", "1.5S", "\u{7f}S"] {
        let Ok(value) = http::HeaderValue::from_bytes(bad.as_bytes()) else {
            continue; // http refuses to send it at all
        };
        let req = get(addr, "/")
            .header("grpc-timeout", value.clone())
            .body(Body::default());
        let res = client.request(req.unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");

        let req = get(addr, "/")
            .header("grpc-timeout", value)
            .header("content-type", "application/grpc")
            .body(Body::default());
        let res = client.request(req.unwrap()).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{bad:?}: gRPC answers in headers"
        );
        assert_eq!(
            res.headers()["grpc-status"],
            "3",
            "{bad:?}: INVALID_ARGUMENT"
        );
        assert!(res.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("grpc-timeout"));
    }
    assert!(seen.try_recv().is_err(), "the handler never ran");
    // And the server is still up.
    let res = client
        .request(get(addr, "/").body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_header_the_configured_maximum_applies() {
    let max = Duration::from_secs(30);
    let (addr, mut seen) = backend(ServerLayer::new(Context::background()).max_timeout(max)).await;
    let client = http_client();

    let before = Instant::now();
    let res = client
        .request(get(addr, "/").body(Body::default()).unwrap())
        .await
        .unwrap();
    let after = Instant::now();
    assert_eq!(res.status(), StatusCode::OK);
    let deadline = next(&mut seen).await.ctx.deadline().expect("the maximum");
    assert!(
        deadline >= before + max && deadline <= after + max,
        "{deadline:?}"
    );

    // A longer header is capped at the maximum; a shorter one wins.
    let req = get(addr, "/")
        .header("grpc-timeout", "1H")
        .body(Body::default());
    let before = Instant::now();
    client.request(req.unwrap()).await.unwrap();
    let deadline = next(&mut seen).await.ctx.deadline().unwrap();
    assert!(deadline <= Instant::now() + max && deadline >= before + max);
    let req = get(addr, "/")
        .header("grpc-timeout", "2S")
        .body(Body::default());
    let before = Instant::now();
    client.request(req.unwrap()).await.unwrap();
    let deadline = next(&mut seen).await.ctx.deadline().unwrap();
    assert!(deadline >= before + Duration::from_secs(2));
    assert!(deadline <= Instant::now() + Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_answers_504_and_deadline_exceeded() {
    let (addr, mut seen) = backend(ServerLayer::new(Context::background())).await;
    let client = http_client();
    let req = get(addr, "/hang")
        .header("grpc-timeout", "50m")
        .body(Body::default());
    let res = client.request(req.unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let ctx = next(&mut seen).await.ctx;
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));

    let req = get(addr, "/hang")
        .header("grpc-timeout", "50m")
        .header("content-type", "application/grpc")
        .body(Body::default());
    let res = client.request(req.unwrap()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_root_cancels_every_request_in_flight() {
    let (root, shutdown) = Context::background().with_cancel();
    let (addr, mut seen) = backend(ServerLayer::new(root)).await;
    let client = http_client();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let res = client
                    .request(get(addr, "/hang").body(Body::default()).unwrap())
                    .await
                    .unwrap();
                (res.status(), body_text(res).await)
            })
        })
        .collect();
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        in_flight.push(next(&mut seen).await.ctx);
    }
    assert!(in_flight.iter().all(|c| !c.is_done()));

    shutdown.cancel_with_message("server shutting down");
    for ctx in &in_flight {
        assert_eq!(ctx.err(), Some(Error::Canceled), "synchronously, at once");
        assert_eq!(ctx.cause().unwrap().to_string(), "server shutting down");
    }
    for call in calls {
        let (status, body) = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_layer_fails_fast_and_gives_up_when_its_context_ends() {
    let (addr, mut seen) = backend(ServerLayer::new(Context::background())).await;
    let mut client = ClientLayer::new().layer(http_client());

    // Done already: no request is sent.
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let mut req = get(addr, "/").body(Body::default()).unwrap();
    req.extensions_mut().insert(ctx);
    let err = client.call(req).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert!(seen.try_recv().is_err());

    // Cancelled while the backend works: the call returns the context's
    // error, and the backend hears of it.
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(60));
    let call = tokio::spawn(ctx.clone().scope({
        let mut client = client.clone();
        async move {
            client
                .call(get(addr, "/hang").body(Body::default()).unwrap())
                .await
        }
    }));
    let b = next(&mut seen).await;
    let sent = gocontext::wire::decode_timeout(b.header.unwrap().as_bytes()).unwrap();
    assert!(sent <= Duration::from_secs(60) && sent > Duration::from_secs(50));
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
    let why = tokio::time::timeout(PATIENCE, b.ctx.done()).await.unwrap();
    assert_eq!(why, Error::Canceled);

    // A shorter grpc-timeout already on the request is kept.
    let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(60));
    let mut req = get(addr, "/")
        .header("grpc-timeout", "3S")
        .body(Body::default())
        .unwrap();
    req.extensions_mut().insert(ctx);
    client.call(req).await.unwrap();
    assert_eq!(next(&mut seen).await.header.as_deref(), Some("3S"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_returning_the_context_error_maps_to_a_status() {
    #[derive(Clone)]
    struct Fails;
    impl Service<Request<Incoming>> for Fails {
        type Response = Response<Body>;
        type Error = Error;
        type Future = std::future::Ready<Result<Response<Body>, Error>>;
        fn poll_ready(&mut self, _: &mut TaskCx<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Incoming>) -> Self::Future {
            std::future::ready(Err(Error::DeadlineExceeded))
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServerLayer::new(Context::background()).layer(Fails);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = TowerToHyperService::new(service);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let res = http_client()
        .request(get(addr, "/").body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[test]
fn the_deadline_chain_example_shrinks_and_stops() {
    let report = chain::run();
    let [client, gateway, backend] = report.left;
    assert!(client > gateway && gateway > backend, "{:?}", report.left);
    assert!(
        backend + Duration::from_millis(10) <= gateway,
        "the gateway's reserve"
    );
    assert_eq!(report.backend_err, Error::Canceled);
    assert_eq!(
        report.backend_cause,
        RequestEnded::ClientWentAway.to_string()
    );
    assert!(
        report.stop_latency <= Duration::from_millis(50),
        "{:?}",
        report.stop_latency
    );
    assert!(
        report.steps < 7,
        "300 ms of 50 ms steps, then it stopped: {}",
        report.steps
    );
}

/// A body of three frames, 20 ms apart, that reports the context current
/// when each frame is made (and whether it was done).
struct Ticks {
    left: u32,
    sleep: Pin<Box<tokio::time::Sleep>>,
    seen: mpsc::UnboundedSender<(Context, bool)>,
}

impl http_body::Body for Ticks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.left -= 1;
        let next = tokio::time::Instant::now() + Duration::from_millis(20);
        self.sleep.as_mut().reset(next);
        let ctx = Context::current();
        let _ = self.seen.send((ctx.clone(), ctx.is_done()));
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"tick",
        )))))
    }
}

impl Default for Ticks {
    fn default() -> Ticks {
        let (seen, _) = mpsc::unbounded_channel();
        Ticks {
            left: 0,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            seen,
        }
    }
}

/// A service whose response body streams `Ticks`.
#[derive(Clone)]
struct Streams(mpsc::UnboundedSender<(Context, bool)>);

impl Service<Request<Incoming>> for Streams {
    type Response = Response<Ticks>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Ticks>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut TaskCx<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(Response::new(Ticks {
            left: 3,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            seen: self.0.clone(),
        })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_runs_in_the_request_until_it_ends() {
    let (tx, mut frames) = mpsc::unbounded_channel();
    let service = ServerLayer::new(Context::background()).layer(Streams(tx));
    let addr = serve_service(service).await;

    // Read to the end: every frame is made in the live request context,
    // which ends with "responded" once the body has ended.
    let res = http_client().request(get(addr, "/").body(Body::default()).unwrap());
    let res = res.await.unwrap();
    assert_eq!(body_text(res).await, "tickticktick");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(
            tokio::time::timeout(PATIENCE, frames.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let ctx = seen[0].0.clone();
    assert!(
        seen.iter().all(|(c, done)| *c == ctx && !done),
        "live while streaming"
    );
    assert_ne!(ctx, Context::background(), "the request's own context");
    let why = tokio::time::timeout(PATIENCE, ctx.done()).await.unwrap();
    assert_eq!(why, Error::Canceled);
    assert_eq!(
        ctx.cause().unwrap().downcast_ref(),
        Some(&RequestEnded::Responded)
    );

    // Hang up after the first frame: the context ends with "went away".
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let res = send.send_request(get(addr, "/").body(Body::default()).unwrap());
    let mut body = res.await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "tick");
    let (ctx, done) = tokio::time::timeout(PATIENCE, frames.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!done);
    drop(body);
    conn.abort();
    let why = tokio::time::timeout(PATIENCE, ctx.done()).await.unwrap();
    assert_eq!(why, Error::Canceled);
    assert_eq!(
        ctx.cause().unwrap().downcast_ref(),
        Some(&RequestEnded::ClientWentAway)
    );
}

#[test]
fn without_the_extensions_copy_the_context_is_still_current() {
    /// Answers with whether the request carried a context, and which
    /// context was current.
    #[derive(Clone)]
    struct Looks;
    impl Service<Request<()>> for Looks {
        type Response = Response<Full<Bytes>>;
        type Error = Error;
        type Future = std::future::Ready<Result<Response<Full<Bytes>>, Error>>;
        fn poll_ready(&mut self, _: &mut TaskCx<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<()>) -> Self::Future {
            let stored = req.extensions().get::<Context>().is_some();
            let current = Context::current();
            assert_ne!(current, Context::background(), "a request context");
            let deadline = current.deadline().is_some();
            std::future::ready(Ok(Response::new(Full::from(format!(
                "{stored} {deadline}"
            )))))
        }
    }
    for (store, want) in [(true, "true true"), (false, "false true")] {
        let layer = ServerLayer::new(Context::background())
            .max_timeout(Duration::from_secs(5))
            .store_in_extensions(store);
        let mut svc = layer.layer(Looks);
        let waker = noop_waker();
        let mut cx = TaskCx::from_waker(&waker);
        let mut fut = std::pin::pin!(svc.call(Request::new(())));
        let Poll::Ready(res) = fut.as_mut().poll(&mut cx) else {
            panic!("answered at once")
        };
        let body = res.unwrap().into_body();
        let text = ready_text(body);
        assert_eq!(text, want);
    }
}

/// The bytes of a body that is ready at once, as text.
fn ready_text<B: hyper::body::Body + Unpin>(body: B) -> String
where
    B::Error: std::fmt::Debug,
{
    let waker = noop_waker();
    let mut cx = TaskCx::from_waker(&waker);
    let mut collect = std::pin::pin!(body.collect());
    match collect.as_mut().poll(&mut cx) {
        Poll::Ready(all) => String::from_utf8(all.unwrap().to_bytes().to_vec()).unwrap(),
        Poll::Pending => panic!("the body is ready at once"),
    }
}

/// A waker for futures that are ready at once.
fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}
