//! A tokio server that fans each request out to several backend replicas
//! under one request deadline.
//!
//! Run it with `cargo run --release --example async_tokio`.
//!
//! Each request gets a context derived from the server's, with a deadline and
//! the request id as a value. The handler spawns one task per replica; each
//! task wraps its backend call in `ctx.run(..)`, which resolves to
//! `Err(reason)` as soon as the context is done. The handler collects answers
//! in a `tokio::select!` against `ctx.done()` and cancels the rest once it has
//! a quorum. Three requests show the three ways a request ends: quorum
//! reached, deadline exceeded, and server shutdown.

use gocontext::{Context, Error, Key};
use std::fmt;
use std::time::Duration;
use tokio::task::JoinSet;

fn main() {
    let reports = run();
    println!("\nserved {} requests", reports.len());
}

static REQUEST_ID: Key<u64> = Key::new("request-id");

/// How one backend replica behaves.
#[derive(Clone, Copy, Debug)]
pub enum Replica {
    /// Answers straight away.
    Fast,
    /// Never answers: only the context can end the call.
    Hung,
}

/// Why the server stopped.
#[derive(Debug)]
pub struct ShuttingDown;

impl fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server shutting down")
    }
}

impl std::error::Error for ShuttingDown {}

/// How one request went.
#[derive(Debug)]
pub struct RequestReport {
    pub id: u64,
    /// `Ok(answers)` once the quorum was reached, else why the request ended.
    pub outcome: Result<Vec<String>, Error>,
    /// What each replica's task returned, by replica index.
    pub replicas: Vec<Result<String, Error>>,
    /// The request context's cause, rendered, once it is done.
    pub cause: Option<String>,
}

/// One backend call. It reads the request id from the context it was given,
/// as code on the far side of an API boundary would.
async fn backend(ctx: Context, replica: usize, kind: Replica) -> String {
    let id = ctx.value(&REQUEST_ID).copied().unwrap_or_default();
    match kind {
        Replica::Fast => {
            tokio::task::yield_now().await;
            format!("request {id}: answer from replica {replica}")
        }
        Replica::Hung => std::future::pending().await,
    }
}

/// The request handler: fan out, gather a quorum, cancel the stragglers.
async fn handle_request(
    server: &Context,
    id: u64,
    replicas: &[Replica],
    quorum: usize,
    budget: Duration,
) -> RequestReport {
    let (ctx, cancel) = server.with_timeout(budget);
    let ctx = ctx.with_value(&REQUEST_ID, id);
    println!(
        "request {id}: {} replicas, quorum {quorum}, budget {budget:?}",
        replicas.len()
    );

    let mut tasks = JoinSet::new();
    for (i, &kind) in replicas.iter().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            // `run` races the call against the context: Err(why) if the
            // context ends first, and the call's future is dropped.
            let res = ctx.run(backend(ctx.clone(), i, kind)).await;
            (i, res)
        });
    }

    let mut results: Vec<Option<Result<String, Error>>> = vec![None; replicas.len()];
    let mut answers = Vec::new();
    let outcome = loop {
        tokio::select! {
            why = ctx.done() => break Err(why),
            Some(joined) = tasks.join_next() => {
                let (i, res) = joined.expect("replica task panicked");
                if let Ok(answer) = &res {
                    answers.push(answer.clone());
                }
                results[i] = Some(res);
                if answers.len() == quorum {
                    break Ok(answers);
                }
            }
        }
    };
    // Quorum or not, the request is over: cancel the stragglers. (Dropping
    // `cancel` at the end of the function would do the same.)
    cancel.cancel();
    while let Some(joined) = tasks.join_next().await {
        let (i, res) = joined.expect("replica task panicked");
        results[i] = Some(res);
    }
    let replicas: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every task reported"))
        .collect();
    for (i, r) in replicas.iter().enumerate() {
        println!("  replica {i}: {r:?}");
    }
    let report = RequestReport {
        id,
        outcome,
        replicas,
        cause: ctx.cause().map(|c| c.to_string()),
    };
    match &report.outcome {
        Ok(a) => println!("request {id}: quorum of {} answers", a.len()),
        Err(why) => println!(
            "request {id}: failed with `{why}` (cause: {})",
            report.cause.as_deref().unwrap_or("-")
        ),
    }
    report
}

async fn serve() -> Vec<RequestReport> {
    let (server, shutdown) = Context::background().with_cancel();
    use Replica::{Fast, Hung};
    let mut reports = Vec::new();

    // 1. Three of five replicas answer: quorum; the two hung calls are cancelled.
    reports.push(
        handle_request(
            &server,
            1,
            &[Fast, Hung, Fast, Hung, Fast],
            3,
            Duration::from_secs(5),
        )
        .await,
    );
    // 2. Only one of three answers, quorum two: the 50 ms deadline ends it.
    reports.push(
        handle_request(
            &server,
            2,
            &[Fast, Hung, Hung],
            2,
            Duration::from_millis(50),
        )
        .await,
    );
    // 3. The server shuts down while a request is in flight.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        println!("server: shutting down");
        shutdown.cancel_with_cause(ShuttingDown);
    });
    reports.push(handle_request(&server, 3, &[Hung, Hung], 1, Duration::from_secs(10)).await);
    stopper.await.expect("stopper panicked");
    reports
}

/// Runs the three requests on a multi-threaded runtime and returns their reports.
pub fn run() -> Vec<RequestReport> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(serve())
}
