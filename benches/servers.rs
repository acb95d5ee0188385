//! Per-request overhead of `gocontext::tower::ServerLayer`: the same trivial
//! service called in-process with and without the layer (criterion), then
//! the allocations each request adds, counted by a counting allocator.
//!
//! ```sh
//! cargo bench --features tower --bench servers
//! ```
//!
//! Each iteration is what a server does per request: build the request,
//! `poll_ready`, `call`, poll the response future (the service answers at
//! once, with an empty body), drop it. Two shapes: no `grpc-timeout` and no maximum (the
//! request's context is a `with_cancel` child of the root), and a
//! `grpc-timeout: 1S` header (a deadline child, which arms a timer).

use criterion::Criterion;
use gocontext::tower::{Server, ServerLayer};
use gocontext::Context;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use hyper::body::Bytes;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, Wake, Waker};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

#[path = "../tests/support/counting_alloc.rs"]
#[allow(dead_code)]
mod counting_alloc;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// The application: answers every request at once.
#[derive(Clone, Copy)]
struct App;

impl Service<Request<()>> for App {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskCx<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(Empty::new())))
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// One request through `svc`, as a server would run it.
fn serve_one<S, B>(svc: &mut S, waker: &Waker, header: Option<&HeaderValue>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::new(());
    if let Some(h) = header {
        req.headers_mut().insert("grpc-timeout", h.clone());
    }
    let mut cx = TaskCx::from_waker(waker);
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => drop(black_box(res.unwrap())),
        Poll::Pending => unreachable!("the app answers at once"),
    }
}

/// The header shapes measured: name, and the `grpc-timeout` sent.
fn shapes() -> [(&'static str, Option<HeaderValue>); 2] {
    [
        ("no_header", None),
        ("grpc_timeout=1S", Some(HeaderValue::from_static("1S"))),
    ]
}

/// The layered variants measured: name, and whether the layer also stores
/// the context in the request's extensions.
const LAYERED: [(&str, bool); 2] = [("with", true), ("with_no_extensions", false)];

/// The layer over `App`, storing the context in extensions or not.
fn layered(root: &Context, extensions: bool) -> Server<App> {
    ServerLayer::new(root.clone())
        .store_in_extensions(extensions)
        .layer(App)
}

fn bench(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(Noop));
    let (root, _stop) = Context::background().with_cancel();
    for (name, header) in shapes() {
        let mut group = c.benchmark_group(format!("server_layer/{name}"));
        let mut bare = App;
        group.bench_function("without", |b| {
            b.iter(|| serve_one(&mut bare, &waker, header.as_ref()))
        });
        for (variant, extensions) in LAYERED {
            let mut svc = layered(&root, extensions);
            group.bench_function(variant, |b| {
                b.iter(|| serve_one(&mut svc, &waker, header.as_ref()))
            });
        }
        group.finish();
    }
}

/// Allocations per request, with and without the layer.
fn count_allocations() {
    const N: usize = 10_000;
    let waker = Waker::from(Arc::new(Noop));
    let (root, _stop) = Context::background().with_cancel();
    for (name, header) in shapes() {
        let per_request = |svc: &mut dyn FnMut()| {
            svc(); // warm up (lazily built statics, the timer wheel's slots)
            let before = counting_alloc::allocations();
            for _ in 0..N {
                svc();
            }
            (counting_alloc::allocations() - before) as f64 / N as f64
        };
        let mut bare = App;
        let without = per_request(&mut || serve_one(&mut bare, &waker, header.as_ref()));
        for (variant, extensions) in LAYERED {
            let mut svc = layered(&root, extensions);
            let with = per_request(&mut || serve_one(&mut svc, &waker, header.as_ref()));
            println!(
                "server_layer/{name}: allocations per request: without {without:.2}, \
                 {variant} {with:.2}, added {:.2}",
                with - without
            );
        }
    }
}

/// `GOCONTEXT_SERVERS_RUN=SHAPE/VARIANT GOCONTEXT_SERVERS_ITERS=N` (VARIANT `without`, `with`
/// or `with_no_extensions`):
/// only run N requests of one line, for an instruction count under
/// callgrind (the difference of two N cancels the setup out).
fn run_only(line: &str, n: u64) {
    let waker = Waker::from(Arc::new(Noop));
    let (root, _stop) = Context::background().with_cancel();
    let known = shapes();
    let found = line.rsplit_once('/').and_then(|(shape, variant)| {
        let header = known.iter().find(|(name, _)| *name == shape)?.1.clone();
        let layer = LAYERED.iter().find(|(name, _)| *name == variant);
        (variant == "without" || layer.is_some()).then(|| (header, layer.map(|l| l.1)))
    });
    let Some((header, layer)) = found else {
        let names: Vec<_> = known.iter().map(|(name, _)| *name).collect();
        eprintln!(
            "GOCONTEXT_SERVERS_RUN: expected SHAPE/VARIANT, SHAPE one of {names:?}, \
             VARIANT without, with or with_no_extensions"
        );
        std::process::exit(2);
    };
    match layer {
        Some(extensions) => {
            let mut svc = layered(&root, extensions);
            (0..n).for_each(|_| serve_one(&mut svc, &waker, header.as_ref()));
        }
        None => (0..n).for_each(|_| serve_one(&mut App, &waker, header.as_ref())),
    }
}

fn main() {
    if let Ok(line) = std::env::var("GOCONTEXT_SERVERS_RUN") {
        let n = std::env::var("GOCONTEXT_SERVERS_ITERS").map_or(Some(10_000), |v| v.parse().ok());
        let Some(n) = n else {
            eprintln!("GOCONTEXT_SERVERS_ITERS: expected a number of requests");
            std::process::exit(2);
        };
        return run_only(&line, n);
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    bench(&mut c);
    c.final_summary();
    count_allocations();
}
