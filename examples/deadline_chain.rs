//! A request's deadline and cancellation across three hops over real TCP:
//! a client calls a gateway, which calls a backend (hyper, HTTP/1, on
//! 127.0.0.1). Run it with
//!
//! ```sh
//! cargo run --example deadline_chain --features tower
//! ```
//!
//! The client gives the call 2 s (`grpc-timeout: 2S`). The gateway's
//! `ServerLayer` turns that into its request's context; its handler calls
//! the backend through `ClientLayer`, which finds that context on its own
//! (no argument carries it) and forwards what is left, minus a small
//! reserve. The backend works in 50 ms steps until its context ends. After
//! 300 ms the client hangs up: the gateway's context is cancelled ("the
//! client went away"), its outgoing call is dropped, the backend's
//! connection closes, and the backend stops within milliseconds.

use gocontext::tower::{ClientLayer, ServerLayer};
use gocontext::{Context, Error};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_layer::Layer;
use tower_service::Service;

/// The body type on every hop.
pub type Body = Full<Bytes>;
/// tower's boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// hyper's pooled client.
pub type HttpClient = hyper_util::client::legacy::Client<HttpConnector, Body>;

/// A handler as a tower service (what `tower::service_fn` would give).
#[derive(Clone)]
pub struct Handler(Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync>);

impl Service<Request<Incoming>> for Handler {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut TaskCx<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let fut = (self.0)(req);
        Box::pin(async move { Ok(fut.await) })
    }
}

/// Makes a [`Handler`] of an async function.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Handler(Arc::new(move |req| Box::pin(f(req))))
}

/// Serves `layer(app)` on a fresh 127.0.0.1 port, one task per connection.
pub async fn serve(layer: ServerLayer, app: Handler) -> SocketAddr {
    serve_service(layer.layer(app)).await
}

/// Serves any HTTP service (a layered one: `ServerLayer::layer(..)`) on a
/// fresh 127.0.0.1 port, one task per connection.
pub async fn serve_service<S, B>(service: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await; // a client that hangs up is not an error here
            });
        }
    });
    addr
}

/// hyper's pooled HTTP/1 client.
pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// What the example observed.
#[derive(Debug)]
pub struct Report {
    /// Time left as each hop saw it: client, gateway, backend.
    pub left: [Duration; 3],
    /// The backend context's err and cause when it stopped.
    pub backend_err: Error,
    /// The backend context's cause, as text.
    pub backend_cause: String,
    /// From the client hanging up to the backend stopping.
    pub stop_latency: Duration,
    /// Steps of work the backend finished.
    pub steps: u32,
}

/// What the backend reports when its context ends.
struct Stopped {
    left: Duration,
    err: Error,
    cause: String,
    at: Instant,
    steps: u32,
}

const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const HANG_UP_AFTER: Duration = Duration::from_millis(300);
const STEP: Duration = Duration::from_millis(50);

/// The backend's work: 50 ms steps until the request's context ends.
async fn work(stopped: tokio::sync::mpsc::UnboundedSender<Stopped>) -> u32 {
    let ctx = Context::current();
    let left = ctx.remaining().unwrap_or(Duration::MAX);
    println!("backend:  {left:>9.1?} left");
    let mut steps = 0;
    while ctx.run(tokio::time::sleep(STEP)).await.is_ok() {
        steps += 1; // ... one step of real work ...
    }
    let report = Stopped {
        left,
        err: ctx.err().unwrap_or(Error::Canceled),
        cause: ctx.cause().map(|c| c.to_string()).unwrap_or_default(),
        at: Instant::now(),
        steps,
    };
    println!("backend:  stopped after {steps} steps: {}", report.cause);
    let _ = stopped.send(report);
    steps
}

async fn start_backend(stopped: tokio::sync::mpsc::UnboundedSender<Stopped>) -> SocketAddr {
    let app = handler(move |_req| {
        let stopped = stopped.clone();
        // The work runs in a task of its own, so it outlives this handler's
        // future (which hyper drops when the caller hangs up) and can say
        // when it stopped. A spawned task does not inherit the current
        // context: `scope_current` hands it over.
        let work = tokio::spawn(Context::scope_current(work(stopped.clone())));
        async move {
            let steps = work.await.unwrap_or_default();
            Response::new(Full::from(format!("{steps} steps")))
        }
    });
    let layer = ServerLayer::new(Context::background()).max_timeout(Duration::from_secs(30));
    serve(layer, app).await
}

async fn start_gateway(backend: SocketAddr, left: oneshot::Sender<Duration>) -> SocketAddr {
    let left = Arc::new(std::sync::Mutex::new(Some(left)));
    let client = ClientLayer::new()
        .reserve(Duration::from_millis(10))
        .layer(http_client());
    let app = handler(move |_req| {
        let mut client = client.clone();
        let left = left.clone();
        async move {
            let mine = Context::current().remaining().unwrap_or(Duration::MAX);
            println!("gateway:  {mine:>9.1?} left, calling the backend");
            if let Some(tx) = left.lock().unwrap().take() {
                let _ = tx.send(mine);
            }
            let call = Request::get(format!("http://{backend}/work")).body(Body::default());
            match client.call(call.unwrap()).await {
                Ok(res) => Response::new(Full::from(
                    res.into_body().collect().await.unwrap().to_bytes(),
                )),
                Err(err) => Response::new(Full::from(err.to_string())),
            }
        }
    });
    let layer = ServerLayer::new(Context::background()).max_timeout(Duration::from_secs(30));
    serve(layer, app).await
}

/// Runs the three hops and returns what happened.
pub fn run() -> Report {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let (stopped_tx, mut stopped) = tokio::sync::mpsc::unbounded_channel();
        let (left_tx, gateway_left) = oneshot::channel();
        let backend = start_backend(stopped_tx).await;
        let gateway = start_gateway(backend, left_tx).await;

        // The client: one connection of its own, so it can hang up.
        println!("client:   {CLIENT_TIMEOUT:>9.1?} left, calling the gateway");
        let stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let req = Request::get(format!("http://{gateway}/"))
            .header(
                "grpc-timeout",
                gocontext::wire::encode_timeout(CLIENT_TIMEOUT).as_str(),
            )
            .body(Body::default())
            .unwrap();
        let call = tokio::spawn(async move { send.send_request(req).await });
        tokio::time::sleep(HANG_UP_AFTER).await;
        println!("client:   hanging up");
        call.abort();
        conn.abort();
        let hung_up = Instant::now();

        let report = tokio::time::timeout(Duration::from_secs(10), stopped.recv());
        let s = report
            .await
            .ok()
            .flatten()
            .expect("the backend stopped and reported");
        let stop_latency = s.at.saturating_duration_since(hung_up);
        println!("backend:  stopped {stop_latency:.1?} after the client hung up");
        Report {
            left: [CLIENT_TIMEOUT, gateway_left.await.unwrap(), s.left],
            backend_err: s.err,
            backend_cause: s.cause,
            stop_latency,
            steps: s.steps,
        }
    })
}

#[allow(dead_code)]
fn main() {
    let report = run();
    println!("time left, hop by hop: {:?}", report.left);
}
