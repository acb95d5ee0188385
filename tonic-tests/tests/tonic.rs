//! gocontext's layers inside tonic, over real HTTP/2 on 127.0.0.1: the
//! server layer goes into `Server::builder().layer(..)` and the client
//! layer into a channel's `ServiceBuilder`, with no glue. A client calls a
//! gateway, whose handler calls a backend without passing any context.

use gocontext::tower::{ClientLayer, RequestEnded, ServerLayer};
use gocontext::{Context, Error};
use gocontext_tonic_tests::echo::hop_client::HopClient;
use gocontext_tonic_tests::echo::hop_server::{Hop, HopServer};
use gocontext_tonic_tests::echo::{Call, Seen};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;

/// A bound on waiting: only ever an upper limit.
const PATIENCE: Duration = Duration::from_secs(10);

type Layered = gocontext::tower::Client<Channel>;

/// One hop: records its request's context, then answers, calls the next
/// hop, or waits for its context to end.
struct Node {
    seen: mpsc::UnboundedSender<Context>,
    next: Option<HopClient<Layered>>,
}

#[tonic::async_trait]
impl Hop for Node {
    async fn visit(&self, req: Request<Call>) -> Result<Response<Seen>, Status> {
        let ctx = Context::current();
        assert_eq!(
            req.extensions().get::<Context>(),
            Some(&ctx),
            "ambient = extension"
        );
        self.seen.send(ctx.clone()).unwrap();
        let seen = Seen {
            left_us: ctx.remaining().map_or(0, |d| d.as_micros() as u64),
            grpc_timeout: req
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        };
        if let Some(next) = &self.next {
            let mut next = next.clone();
            return next.visit(req.into_inner()).await; // the context travels by itself
        }
        if req.get_ref().mode == "hang" {
            return Err(ctx.done().await.into()); // gocontext::Error -> Status
        }
        Ok(Response::new(seen))
    }
}

async fn start(
    layer: ServerLayer,
    next: Option<SocketAddr>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let next = match next {
        Some(addr) => Some(client(addr, ClientLayer::new()).await),
        None => None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder()
        .layer(layer)
        .add_service(HopServer::new(Node { seen: tx, next }));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    (addr, rx)
}

async fn client(addr: SocketAddr, layer: ClientLayer) -> HopClient<Layered> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HopClient::new(ServiceBuilder::new().layer(layer).service(channel))
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Context>) -> Context {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

fn call(mode: &str, timeout: Option<Duration>) -> Request<Call> {
    let mut req = Request::new(Call { mode: mode.into() });
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    req
}

fn root() -> ServerLayer {
    ServerLayer::new(Context::background()).max_timeout(Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_shrinks_hop_by_hop() {
    let (backend, mut b_seen) = start(root(), None).await;
    let (gateway, mut g_seen) = start(root(), Some(backend)).await;
    let mut c = client(gateway, ClientLayer::new()).await;

    let sent = Instant::now();
    let seen = c
        .visit(call("work", Some(Duration::from_secs(5))))
        .await
        .unwrap()
        .into_inner();
    let g = next(&mut g_seen).await;
    let b = next(&mut b_seen).await;
    let g_deadline = g.deadline().unwrap();
    assert!(
        g_deadline >= sent + Duration::from_secs(5)
            && g_deadline <= Instant::now() + Duration::from_secs(5)
    );
    let forwarded = gocontext::wire::decode_timeout(seen.grpc_timeout.as_bytes()).unwrap();
    assert!(forwarded < Duration::from_secs(5), "{forwarded:?}");
    assert!(Duration::from_micros(seen.left_us) <= forwarded);
    // With no reserve, the backend's deadline is the gateway's plus at most
    // the request's time on the wire.
    assert!(b.deadline().unwrap() <= g_deadline + sent.elapsed());
    for ctx in [g, b] {
        assert_eq!(
            ctx.cause().unwrap().downcast_ref(),
            Some(&RequestEnded::Responded)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_cancels_the_backend() {
    let (backend, mut b_seen) = start(root(), None).await;
    let (gateway, mut g_seen) = start(root(), Some(backend)).await;
    let mut c = client(gateway, ClientLayer::new()).await;

    let (ctx, cancel) = Context::background().with_cancel();
    let fut = ctx.scope(async move { c.visit(call("hang", None)).await });
    let task = tokio::spawn(fut);
    let g = next(&mut g_seen).await;
    let b = next(&mut b_seen).await;
    assert!(!b.is_done());
    cancel.cancel(); // the client's ClientLayer abandons the call: RST_STREAM
    let gave_up = Instant::now();
    let status = task.await.unwrap().unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unknown,
        "a transport-level error: {status:?}"
    );
    let why = tokio::time::timeout(PATIENCE, b.done()).await.unwrap();
    let took = gave_up.elapsed();
    assert_eq!(why, Error::Canceled);
    assert!(
        took <= Duration::from_millis(50),
        "the backend heard after {took:?}"
    );
    assert_eq!(
        b.cause().unwrap().downcast_ref(),
        Some(&RequestEnded::ClientWentAway)
    );
    assert_eq!(
        g.cause().unwrap().downcast_ref(),
        Some(&RequestEnded::ClientWentAway)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_is_deadline_exceeded() {
    // The server's maximum (100 ms) is far below the header (10 s), so it is
    // this layer, not tonic's own grpc-timeout handling, that ends the call.
    let layer = ServerLayer::new(Context::background()).max_timeout(Duration::from_millis(100));
    let (backend, mut b_seen) = start(layer, None).await;
    let mut c = client(backend, ClientLayer::new()).await;
    let status = c
        .visit(call("hang", Some(Duration::from_secs(10))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(next(&mut b_seen).await.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_timeout_is_invalid_argument() {
    let (backend, mut b_seen) = start(root(), None).await;
    let mut c = client(backend, ClientLayer::new()).await;
    for bad in ["1s", "123456789S", "1.5S", "S"] {
        let mut req = call("work", None);
        req.metadata_mut()
            .insert("grpc-timeout", bad.parse().unwrap());
        let status = c.visit(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
    }
    assert!(b_seen.try_recv().is_err(), "the handler never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_cancels_every_call_in_flight() {
    let (root, shutdown) = Context::background().with_cancel();
    let (backend, mut b_seen) = start(ServerLayer::new(root), None).await;
    let c = client(backend, ClientLayer::new()).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { c.visit(call("hang", None)).await })
        })
        .collect();
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        in_flight.push(next(&mut b_seen).await);
    }
    shutdown.cancel_with_message("server shutting down");
    for ctx in &in_flight {
        assert_eq!(ctx.cause().unwrap().to_string(), "server shutting down");
    }
    for call in calls {
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    }
}
