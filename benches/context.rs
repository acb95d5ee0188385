//! gocontext's benchmarks, side by side with tokio-util's `CancellationToken`
//! and (through `benches/compare.sh` and the Go twin in `benches/go/`) with
//! Go's own `context` package.
//!
//! Every workload is one criterion group whose name mirrors Go's
//! `context/benchmark_test.go` (`check_canceled/err`,
//! `cancel_tree/depth=100/root=open`, ...); inside the group each
//! implementation is one function (`gocontext`, `tokio-util`, and for the
//! blocking wake-up a bare `park/unpark` hand-off), so every report shows the
//! lines next to each other. Workloads with no tokio-util equivalent
//! (values, most deadline rows) have only the gocontext line; the scaling
//! rows (`with_timeout/concurrency=4000`, `server_request`) have a
//! tokio-util line built from a child token and a `tokio::time::Sleep`.
//!
//! Each workload is written once, as a `Runner`: given an iteration count it
//! runs that many operations and returns the time they took, leaving out any
//! setup that is not part of the operation (criterion's `iter_custom` shape).
//! Latency workloads return one duration per sample instead. Criterion drives
//! the runners normally; with `GOCONTEXT_BENCH_COMPARE=1` in the environment
//! the binary instead calibrates and runs each runner the way the Go twin
//! does and prints `impl<TAB>workload<TAB>ns` lines for `compare.sh`.
//!
//! `timer/firing_lateness` and `timer/lateness_behind_blocking_callback`
//! are not ns/op measurements (timers due within a second, lateness per
//! timer); they print their percentiles.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio_util::sync::CancellationToken;

#[path = "support/sleep.rs"]
mod sleep;
use sleep::arm;

// ---------------------------------------------------------------------------
// The workload table
// ---------------------------------------------------------------------------

/// Runs `iters` operations and returns the time they took.
type Runner = Box<dyn FnMut(u64) -> Duration>;
/// Takes `samples` latency samples.
type Sampler = Box<dyn FnMut(usize) -> Vec<Duration>>;

enum Kind {
    /// ns/op = elapsed / (iters * per): `per` is the number of units one
    /// operation covers (children in a fan-out), reported per unit.
    Throughput {
        per: u64,
        make: Box<dyn Fn() -> Runner>,
    },
    /// Reported as p50 and p99 of the samples.
    Latency { make: Box<dyn Fn() -> Sampler> },
    /// Not an ns/op measurement: run once, report p50 and p99 of the
    /// returned samples (`timer/firing_lateness`).
    Once { run: fn() -> Vec<Duration> },
}

struct Workload {
    /// The criterion group, and the workload name in compare mode.
    name: String,
    /// The criterion function: `gocontext`, `tokio-util`, or a baseline
    /// (`atomic-load`, `park-unpark`, `host`).
    imp: &'static str,
    kind: Kind,
    /// Criterion settings: measurement time and sample size.
    measure: Duration,
    samples: usize,
}

fn throughput(
    list: &mut Vec<Workload>,
    name: impl Into<String>,
    imp: &'static str,
    per: u64,
    make: impl Fn() -> Runner + 'static,
) {
    list.push(Workload {
        name: name.into(),
        imp,
        kind: Kind::Throughput {
            per,
            make: Box::new(make),
        },
        measure: Duration::from_millis(1500),
        samples: 50,
    });
}

fn latency(
    list: &mut Vec<Workload>,
    name: impl Into<String>,
    imp: &'static str,
    make: impl Fn() -> Sampler + 'static,
) {
    list.push(Workload {
        name: name.into(),
        imp,
        kind: Kind::Latency {
            make: Box::new(make),
        },
        measure: Duration::from_millis(500),
        samples: 20,
    });
}

fn once(list: &mut Vec<Workload>, name: &str, imp: &'static str, run: fn() -> Vec<Duration>) {
    list.push(Workload {
        name: name.into(),
        imp,
        kind: Kind::Once { run },
        measure: Duration::ZERO,
        samples: 0,
    });
}

/// Overrides criterion's settings for the workload added last.
fn tune(list: &mut [Workload], measure_ms: u64, samples: usize) {
    let w = list.last_mut().expect("a workload was just added");
    w.measure = Duration::from_millis(measure_ms);
    w.samples = samples;
}

fn workloads() -> Vec<Workload> {
    let mut list = Vec::new();
    go_side::register(&mut list);
    go_side::register_timers(&mut list);
    tokio_side::register(&mut list);
    baseline::register(&mut list);
    // Keep each workload's lines together, groups in Go's order, workloads
    // in the order they were first registered.
    let order = [
        "check_canceled",
        "context_cancel_done",
        "common_parent_cancel",
        "cancel_tree",
        "deep_value",
        "fanout_cancel",
        "wake_latency",
        // The deadline workloads last: their teardown leaves work for the
        // clock's driver thread, which must not share the two CPUs with the
        // workloads above.
        "with_timeout",
        "server_request",
        "timer",
    ];
    let mut first_seen = std::collections::HashMap::new();
    for (i, w) in list.iter().enumerate() {
        first_seen.entry(w.name.clone()).or_insert(i);
    }
    list.sort_by_key(|w| {
        let group = order
            .iter()
            .position(|g| w.name.starts_with(g))
            .unwrap_or(order.len());
        (group, first_seen[&w.name])
    });
    list
}

// ---------------------------------------------------------------------------
// Helpers shared by the implementations
// ---------------------------------------------------------------------------

/// Go's busy-work loop from `BenchmarkCommonParentCancel`.
fn busy_work() -> u64 {
    let mut x = black_box(1u64);
    for _ in 0..100 {
        x /= x + 1;
    }
    x
}

/// Runs `body(ops)` on `threads` threads that split `iters` operations
/// between them, and returns the wall time from the moment all are ready.
fn parallel<F>(threads: usize, iters: u64, body: F) -> Duration
where
    F: Fn(u64) + Send + Sync,
{
    let ready = AtomicUsize::new(0);
    let go = AtomicBool::new(false);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let ops = iters / threads as u64 + if t == 0 { iters % threads as u64 } else { 0 };
                let (ready, go, body) = (&ready, &go, &body);
                s.spawn(move || {
                    ready.fetch_add(1, Ordering::AcqRel);
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    body(ops);
                })
            })
            .collect();
        while ready.load(Ordering::Acquire) < threads {
            thread::yield_now();
        }
        let start = Instant::now();
        go.store(true, Ordering::Release);
        for h in handles {
            h.join().expect("benchmark thread panicked");
        }
        start.elapsed()
    })
}

/// The thread counts of the scaling rows (`with_timeout/concurrency=4000`,
/// `server_request`): 1 and 2 always, and 4, 8 and 16 only up to
/// `GOCONTEXT_BENCH_THREADS`, which defaults to the number of CPUs (more
/// threads than CPUs would measure the scheduler, not the engine).
fn thread_counts() -> Vec<usize> {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let max: usize = env_or("GOCONTEXT_BENCH_THREADS", cpus);
    [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&t| t <= 2 || t <= max)
        .collect()
}

/// Registers `name/threads=T` for every T of `thread_counts()`; `make(T)`
/// sets up the runner for T threads.
fn scaling(
    list: &mut Vec<Workload>,
    name: &str,
    imp: &'static str,
    make: impl Fn(usize) -> Runner + Clone + 'static,
) {
    for threads in thread_counts() {
        let make = make.clone();
        throughput(
            list,
            format!("{name}/threads={threads}"),
            imp,
            1,
            move || make(threads),
        );
    }
}

/// The deadline of a server request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Busy-waits for `d`: long enough for a waiter to have gone to sleep.
fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// How long the canceller waits after the waiter said it is about to block.
const SETTLE: Duration = Duration::from_micros(30);

/// A thread that runs one blocking job at a time and reports the instant
/// at which the job's wait returned, used for every blocking wake-up
/// measurement so that they share the same hand-off machinery.
struct Waiter<J: Send + 'static> {
    jobs: Option<mpsc::Sender<(J, Arc<AtomicBool>)>>,
    woke: mpsc::Receiver<Instant>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<J: Send + 'static> Waiter<J> {
    /// `wait(job)` must block until the job is released.
    fn spawn(mut wait: impl FnMut(J) + Send + 'static) -> Self {
        let (jobs, rx) = mpsc::channel::<(J, Arc<AtomicBool>)>();
        let (tx, woke) = mpsc::channel();
        let thread = thread::spawn(move || {
            for (job, ready) in rx {
                ready.store(true, Ordering::Release);
                wait(job);
                let now = Instant::now();
                if tx.send(now).is_err() {
                    break;
                }
            }
        });
        Waiter {
            jobs: Some(jobs),
            woke,
            thread: Some(thread),
        }
    }

    fn thread(&self) -> &thread::Thread {
        self.thread.as_ref().expect("waiter is running").thread()
    }

    /// Hands `job` to the waiter, lets it block, calls `release` and returns
    /// the time from just before `release` to the waiter running again.
    fn sample(&self, job: J, release: impl FnOnce()) -> Duration {
        let ready = Arc::new(AtomicBool::new(false));
        self.jobs
            .as_ref()
            .expect("waiter is running")
            .send((job, ready.clone()))
            .expect("waiter alive");
        while !ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        spin_for(SETTLE);
        let t0 = Instant::now();
        release();
        let t1 = self.woke.recv().expect("waiter alive");
        t1.saturating_duration_since(t0)
    }
}

impl<J: Send + 'static> Drop for Waiter<J> {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A one-worker multi-thread tokio runtime: both async wake-up measurements
/// run on the same kind of executor.
fn async_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Spawns `task(tx)` on `rt`; the task must set `ready`, await, then send
/// the instant it resumed. Returns the time from just before `release` to
/// that instant.
fn async_sample<Fut>(
    rt: &tokio::runtime::Runtime,
    task: impl FnOnce(Arc<AtomicBool>, mpsc::Sender<Instant>) -> Fut,
    release: impl FnOnce(),
) -> Duration
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let ready = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let join = rt.spawn(task(ready.clone(), tx));
    while !ready.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    spin_for(SETTLE);
    let t0 = Instant::now();
    release();
    let t1 = rx.recv().expect("task alive");
    rt.block_on(join).expect("task panicked");
    t1.saturating_duration_since(t0)
}

// ---------------------------------------------------------------------------
// gocontext
// ---------------------------------------------------------------------------

mod go_side {
    use super::*;
    use gocontext::{CancelHandle, Context, Key};

    const IMP: &str = "gocontext";
    const HOUR: Duration = Duration::from_secs(3600);

    /// 100 distinct keys for `deep_value`, and one that is never stored.
    static KEYS: [Key<u64>; 100] = [const { Key::new("deep_value") }; 100];
    static MISSING: Key<u64> = Key::new("missing");
    /// The value a server request carries.
    static REQUEST_ID: Key<u64> = Key::new("request_id");

    pub fn register(list: &mut Vec<Workload>) {
        throughput(list, "check_canceled/err", IMP, 1, || {
            let (ctx, handle) = Context::background().with_cancel();
            handle.cancel();
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(black_box(&ctx).err());
                }
                start.elapsed()
            })
        });
        throughput(list, "check_canceled/is_done", IMP, 1, || {
            let (ctx, handle) = Context::background().with_cancel();
            handle.cancel();
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(black_box(&ctx).is_done());
                }
                start.elapsed()
            })
        });

        throughput(list, "context_cancel_done", IMP, 1, || {
            let (ctx, handle) = Context::background().with_cancel();
            Box::new(move |iters| {
                let _live = &handle;
                parallel(2, iters, |ops| {
                    for _ in 0..ops {
                        black_box(black_box(&ctx).is_done());
                    }
                })
            })
        });

        // `/shared`: the same under a shared parent (gocontext only).
        for (name, busy, shared) in [
            ("common_parent_cancel/plain", false, false),
            ("common_parent_cancel/busy_work", true, false),
            ("common_parent_cancel/shared", false, true),
        ] {
            throughput(list, name, IMP, 1, move || {
                let (root, handle) = if shared {
                    Context::background().with_cancel_shared()
                } else {
                    Context::background().with_cancel()
                };
                Box::new(move |iters| {
                    let _live = &handle;
                    parallel(2, iters, |ops| {
                        let mut x = 0;
                        for _ in 0..ops {
                            let (child, cancel) = root.with_cancel();
                            if busy {
                                x += busy_work();
                            }
                            cancel.cancel();
                            drop(child);
                        }
                        black_box(x);
                    })
                })
            });
        }

        // The chain is kept in a Vec exactly as on the tokio-util side; the
        // handles are given up, as Go's benchmark drops its cancel funcs.
        for depth in [1usize, 10, 100, 1000] {
            for root_kind in ["background", "open", "closed"] {
                throughput(
                    list,
                    format!("cancel_tree/depth={depth}/root={root_kind}"),
                    IMP,
                    1,
                    move || {
                        let background = Context::background();
                        let mut chain: Vec<Context> = Vec::with_capacity(depth + 1);
                        Box::new(move |iters| {
                            let start = Instant::now();
                            for _ in 0..iters {
                                let (root, handle) = match root_kind {
                                    "background" => (background.clone(), None),
                                    _ => {
                                        let (ctx, handle) = background.with_cancel();
                                        (ctx, Some(handle))
                                    }
                                };
                                let mut handle = handle;
                                if root_kind == "closed" {
                                    if let Some(h) = handle.take() {
                                        h.cancel();
                                    }
                                }
                                chain.push(root);
                                for _ in 0..depth {
                                    let (child, h) =
                                        chain.last().expect("root pushed").with_cancel();
                                    h.detach();
                                    chain.push(child);
                                }
                                if let Some(h) = handle.take() {
                                    h.cancel();
                                }
                                black_box(chain.last().expect("chain").is_done());
                                chain.clear();
                            }
                            start.elapsed()
                        })
                    },
                );
                if depth == 1000 {
                    tune(list, 1000, 20);
                }
            }
        }

        for depth in [10usize, 20, 30, 50, 100] {
            throughput(
                list,
                format!("deep_value/depth={depth}"),
                IMP,
                1,
                move || {
                    let mut ctx = Context::background();
                    for (i, key) in KEYS.iter().take(depth).enumerate() {
                        ctx = ctx.with_value(key, i as u64);
                    }
                    Box::new(move |iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(black_box(&ctx).value(&MISSING));
                        }
                        start.elapsed()
                    })
                },
            );
        }

        for (label, n) in [("1k", 1_000u64), ("10k", 10_000), ("100k", 100_000)] {
            throughput(list, format!("fanout_cancel/{label}"), IMP, n, move || {
                let background = Context::background();
                Box::new(move |iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (parent, handle) = background.with_cancel();
                        let children: Vec<_> = (0..n).map(|_| parent.with_cancel()).collect();
                        let start = Instant::now();
                        handle.cancel();
                        total += start.elapsed();
                        black_box(children.last().map(|(c, _)| c.is_done()));
                        drop(children);
                    }
                    total
                })
            });
            if n >= 10_000 {
                tune(list, 500, 10);
            }
        }

        latency(list, "wake_latency/blocking", IMP, || {
            let waiter = Waiter::spawn(|ctx: Context| {
                ctx.wait();
            });
            let background = Context::background();
            Box::new(move |samples| {
                (0..samples)
                    .map(|_| {
                        let (ctx, handle) = background.with_cancel();
                        waiter.sample(ctx, move || handle.cancel())
                    })
                    .collect()
            })
        });

        latency(list, "wake_latency/async", IMP, || {
            let rt = async_runtime();
            let background = Context::background();
            Box::new(move |samples| {
                (0..samples)
                    .map(|_| {
                        let (ctx, handle) = background.with_cancel();
                        async_sample(
                            &rt,
                            move |ready, tx| async move {
                                let done = ctx.done();
                                ready.store(true, Ordering::Release);
                                black_box(done.await);
                                let _ = tx.send(Instant::now());
                            },
                            move || handle.cancel(),
                        )
                    })
                    .collect()
            })
        });
    }

    /// The deadline workloads: `with_timeout/*` and `timer/*`.
    pub fn register_timers(list: &mut Vec<Workload>) {
        for pending in [40usize, 4_000, 400_000] {
            let threads_list = if pending == 4_000 {
                thread_counts()
            } else {
                vec![1, 2]
            };
            for threads in threads_list {
                throughput(
                    list,
                    format!("with_timeout/concurrency={pending}/threads={threads}"),
                    IMP,
                    1,
                    move || {
                        let root = Context::background();
                        let others: Vec<_> =
                            (0..pending).map(|_| root.with_timeout(HOUR)).collect();
                        Box::new(move |iters| {
                            let _pending = &others;
                            parallel(threads, iters, |ops| {
                                for _ in 0..ops {
                                    let (ctx, handle) = root.with_timeout(HOUR);
                                    handle.cancel();
                                    drop(ctx);
                                }
                            })
                        })
                    },
                );
                if pending >= 400_000 {
                    tune(list, 1000, 20);
                }
            }
        }

        // A server request: a deadline under the server's open root, a
        // value, three checks, one lookup, cancel. `server_request_shared`:
        // the same under a shared root (`with_cancel_shared`, what the
        // tower layer derives from), which Go and tokio-util do not have.
        for (name, shared) in [("server_request", false), ("server_request_shared", true)] {
            scaling(list, name, IMP, move |threads| {
                let (server, handle) = if shared {
                    Context::background().with_cancel_shared()
                } else {
                    Context::background().with_cancel()
                };
                server_requests(threads, server, handle)
            });
        }

        throughput(list, "timer/arm_cancel", IMP, 1, || {
            let root = Context::background();
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (ctx, handle) = root.with_timeout(HOUR);
                    handle.cancel();
                    drop(ctx);
                }
                start.elapsed()
            })
        });

        once(list, "timer/firing_lateness", IMP, firing_lateness);
        once(
            list,
            "timer/lateness_behind_blocking_callback",
            IMP,
            lateness_behind_blocking_callback,
        );
    }

    /// 20 rounds of: a deadline 2 ms ahead whose `after_func` blocks for
    /// 100 ms, and 50 others due 5 to 54 ms ahead; returns how late each of
    /// the others fired (1,000 samples). Each round waits for the blocking
    /// callback to return, so rounds do not pile up stuck threads.
    /// The server request loop on `threads` threads under `server`.
    fn server_requests(threads: usize, server: Context, handle: CancelHandle) -> Runner {
        Box::new(move |iters| {
            let _live = &handle;
            parallel(threads, iters, |ops| {
                let mut x = 0u64;
                for i in 0..ops {
                    let (ctx, cancel) = server.with_timeout(REQUEST_TIMEOUT);
                    let ctx = ctx.with_value(&REQUEST_ID, i);
                    for _ in 0..3 {
                        x += u64::from(black_box(&ctx).err().is_some());
                    }
                    x += black_box(&ctx).value(&REQUEST_ID).copied().unwrap_or(0);
                    cancel.cancel();
                    drop(ctx);
                }
                black_box(x);
            })
        })
    }

    fn lateness_behind_blocking_callback() -> Vec<Duration> {
        const ROUNDS: usize = 20;
        const OTHERS: u64 = 50;
        let mut all = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let (slow, _h) = Context::background().with_deadline(start + Duration::from_millis(2));
            let (tx, rx) = mpsc::channel();
            let _f = slow.after_func(move || {
                thread::sleep(Duration::from_millis(100));
                let _ = tx.send(());
            });
            let (late_tx, late_rx) = mpsc::channel();
            let keep: Vec<_> = (0..OTHERS)
                .map(|i| {
                    let due = start + Duration::from_millis(5 + i);
                    let (ctx, h) = Context::background().with_deadline(due);
                    let late_tx = late_tx.clone();
                    let f = ctx.after_func(move || {
                        let _ = late_tx.send(Instant::now().saturating_duration_since(due));
                    });
                    (ctx, h, f)
                })
                .collect();
            for _ in 0..OTHERS {
                let late = late_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a deadline never fired");
                all.push(late);
            }
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the blocking callback never ran");
            drop(keep);
        }
        all
    }

    /// Arms 10,000 timeouts due at random points within the next second
    /// (the same distribution as the Go twin) and returns how late each one
    /// fired: the time from its deadline to its `after_func` running.
    fn firing_lateness() -> Vec<Duration> {
        use rand::{Rng, SeedableRng};
        const COUNT: usize = 10_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let late: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new(
            (0..COUNT)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        );
        let fired = Arc::new(AtomicUsize::new(0));
        let root = Context::background();
        let mut keep = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            let d =
                Duration::from_nanos(rng.gen_range(0..1_000_000_000)) + Duration::from_millis(1);
            let (ctx, handle) = root.with_timeout(d);
            let deadline = ctx.deadline().expect("a timeout has a deadline");
            let (late, fired) = (late.clone(), fired.clone());
            let after = ctx.after_func(move || {
                let ns = Instant::now()
                    .saturating_duration_since(deadline)
                    .as_nanos() as u64;
                late[i].store(ns, Ordering::Relaxed);
                fired.fetch_add(1, Ordering::Release);
            });
            keep.push((ctx, handle, after));
        }
        let give_up = Instant::now() + Duration::from_secs(30);
        while fired.load(Ordering::Acquire) < COUNT && Instant::now() < give_up {
            thread::sleep(Duration::from_millis(10));
        }
        let n = fired.load(Ordering::Acquire);
        assert_eq!(n, COUNT, "only {n} of {COUNT} timers fired within 30 s");
        late.iter()
            .map(|x| Duration::from_nanos(x.load(Ordering::Relaxed)))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// tokio-util's CancellationToken
// ---------------------------------------------------------------------------

mod tokio_side {
    use super::*;

    const IMP: &str = "tokio-util";

    pub fn register(list: &mut Vec<Workload>) {
        // tokio-util has one check, `is_cancelled()`; it stands for both
        // err() and is_done().
        for name in ["check_canceled/err", "check_canceled/is_done"] {
            throughput(list, name, IMP, 1, || {
                let token = CancellationToken::new();
                token.cancel();
                Box::new(move |iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(black_box(&token).is_cancelled());
                    }
                    start.elapsed()
                })
            });
        }

        throughput(list, "context_cancel_done", IMP, 1, || {
            let token = CancellationToken::new();
            Box::new(move |iters| {
                parallel(2, iters, |ops| {
                    for _ in 0..ops {
                        black_box(black_box(&token).is_cancelled());
                    }
                })
            })
        });

        for (name, busy) in [
            ("common_parent_cancel/plain", false),
            ("common_parent_cancel/busy_work", true),
        ] {
            throughput(list, name, IMP, 1, move || {
                let root = CancellationToken::new();
                Box::new(move |iters| {
                    parallel(2, iters, |ops| {
                        let mut x = 0;
                        for _ in 0..ops {
                            let child = root.child_token();
                            if busy {
                                x += busy_work();
                            }
                            child.cancel();
                        }
                        black_box(x);
                    })
                })
            });
        }

        // A chain: every token is kept until the end, because tokio-util
        // re-parents the children of a dropped token, which would flatten
        // the chain. "background" is a long-lived token that is never
        // cancelled, standing in for Go's Background().
        for depth in [1usize, 10, 100, 1000] {
            for root_kind in ["background", "open", "closed"] {
                throughput(
                    list,
                    format!("cancel_tree/depth={depth}/root={root_kind}"),
                    IMP,
                    1,
                    move || {
                        let background = CancellationToken::new();
                        let mut chain: Vec<CancellationToken> = Vec::with_capacity(depth + 1);
                        Box::new(move |iters| {
                            let start = Instant::now();
                            for _ in 0..iters {
                                let root = match root_kind {
                                    "background" => background.clone(),
                                    _ => CancellationToken::new(),
                                };
                                if root_kind == "closed" {
                                    root.cancel();
                                }
                                chain.push(root);
                                for _ in 0..depth {
                                    let child = chain.last().expect("root pushed").child_token();
                                    chain.push(child);
                                }
                                if root_kind == "open" {
                                    chain[0].cancel();
                                }
                                black_box(chain.last().expect("chain").is_cancelled());
                                chain.clear();
                            }
                            start.elapsed()
                        })
                    },
                );
                if depth == 1000 {
                    tune(list, 1000, 20);
                }
            }
        }

        for (label, n) in [("1k", 1_000u64), ("10k", 10_000), ("100k", 100_000)] {
            throughput(list, format!("fanout_cancel/{label}"), IMP, n, move || {
                Box::new(move |iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let parent = CancellationToken::new();
                        let children: Vec<_> = (0..n).map(|_| parent.child_token()).collect();
                        let start = Instant::now();
                        parent.cancel();
                        total += start.elapsed();
                        black_box(children.last().map(|c| c.is_cancelled()));
                        drop(children);
                    }
                    total
                })
            });
            if n >= 10_000 {
                tune(list, 500, 10);
            }
        }

        register_timers(list);

        // A thread blocked on `cancelled()` under a current-thread runtime's
        // block_on: tokio-util's way of waiting from synchronous code.
        latency(list, "wake_latency/blocking", IMP, || {
            let waiter = Waiter::spawn(|token: CancellationToken| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(token.cancelled());
            });
            Box::new(move |samples| {
                (0..samples)
                    .map(|_| {
                        let token = CancellationToken::new();
                        waiter.sample(token.clone(), || token.cancel())
                    })
                    .collect()
            })
        });

        latency(list, "wake_latency/async", IMP, || {
            let rt = async_runtime();
            Box::new(move |samples| {
                (0..samples)
                    .map(|_| {
                        let token = CancellationToken::new();
                        let waiting = token.clone();
                        async_sample(
                            &rt,
                            move |ready, tx| async move {
                                let cancelled = waiting.cancelled();
                                ready.store(true, Ordering::Release);
                                cancelled.await;
                                let _ = tx.send(Instant::now());
                            },
                            || token.cancel(),
                        )
                    })
                    .collect()
            })
        });
    }

    /// tokio-util has no deadline of its own: a deadline context is a child
    /// token next to a `tokio::time::Sleep`, armed by polling it once (tokio
    /// registers a sleep with its timer wheel on first poll) and disarmed by
    /// dropping it. The wheel is sharded, one lock per runtime worker; the
    /// runtime gets one worker per benchmark thread, and the benchmark
    /// threads, which are not its workers, enter it and pick a shard at
    /// random. Nothing cancels the token when the sleep elapses: a check is
    /// `is_cancelled() || is_elapsed()`.
    fn register_timers(list: &mut Vec<Workload>) {
        scaling(list, "with_timeout/concurrency=4000", IMP, |threads| {
            let rt = timer_runtime(threads);
            let root = CancellationToken::new();
            let pending: Vec<_> = {
                let _in = rt.enter();
                (0..4_000)
                    .map(|_| {
                        let mut sleep = Box::pin(tokio::time::sleep(HOUR));
                        arm(sleep.as_mut());
                        (root.child_token(), sleep)
                    })
                    .collect()
            };
            Box::new(move |iters| {
                let _pending = &pending;
                parallel(threads, iters, |ops| {
                    let _in = rt.enter();
                    for _ in 0..ops {
                        let token = root.child_token();
                        let mut sleep = std::pin::pin!(tokio::time::sleep(HOUR));
                        arm(sleep.as_mut());
                        token.cancel();
                    }
                })
            })
        });

        // The server request: tokio-util has no context values, so the
        // value is a local next to the token and its lookup a field read.
        scaling(list, "server_request", IMP, |threads| {
            let rt = timer_runtime(threads);
            let server = CancellationToken::new();
            Box::new(move |iters| {
                parallel(threads, iters, |ops| {
                    let _in = rt.enter();
                    let mut x = 0u64;
                    for i in 0..ops {
                        let token = server.child_token();
                        let mut sleep = std::pin::pin!(tokio::time::sleep(REQUEST_TIMEOUT));
                        arm(sleep.as_mut());
                        let request_id = black_box(i);
                        for _ in 0..3 {
                            let done = black_box(&token).is_cancelled() || sleep.is_elapsed();
                            x += u64::from(done);
                        }
                        x += black_box(&request_id);
                        token.cancel();
                    }
                    black_box(x);
                })
            })
        });
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// A runtime whose timer wheel has one shard per benchmark thread.
    fn timer_runtime(threads: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
            .expect("tokio runtime")
    }
}

// ---------------------------------------------------------------------------
// Baselines: a bare atomic load, the bare park/unpark hand-off that
// blocking wake-ups are compared with, and the host's clock read and locked
// read-modify-write
// ---------------------------------------------------------------------------

mod baseline {
    use super::*;

    pub fn register(list: &mut Vec<Workload>) {
        // The floor of the check workloads in this harness: one Acquire load
        // of an atomic word behind one pointer, and nothing else.
        throughput(list, "check_canceled/is_done", "atomic-load", 1, || {
            let word = Box::new(AtomicUsize::new(1));
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(black_box(&word).load(Ordering::Acquire) != 0);
                }
                start.elapsed()
            })
        });

        // What this host charges for the two costs a request with a
        // deadline cannot avoid: reading the monotonic clock, and one
        // locked read-modify-write on a line no other thread touches.
        // Hosts differ most in these (a VM's clock read, the lock prefix's
        // drain), so a run quotes them next to the rows built from them.
        throughput(list, "host/clock_read", "host", 1, || {
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(Instant::now());
                }
                start.elapsed()
            })
        });
        throughput(list, "host/locked_add", "host", 1, || {
            let word = Box::new(AtomicUsize::new(0));
            Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(black_box(&word).fetch_add(1, Ordering::AcqRel));
                }
                start.elapsed()
            })
        });

        latency(list, "wake_latency/blocking", "park-unpark", || {
            let waiter = Waiter::spawn(|flag: Arc<AtomicBool>| {
                while !flag.load(Ordering::Acquire) {
                    thread::park();
                }
            });
            Box::new(move |samples| {
                (0..samples)
                    .map(|_| {
                        let flag = Arc::new(AtomicBool::new(false));
                        let thread = waiter.thread().clone();
                        waiter.sample(flag.clone(), move || {
                            flag.store(true, Ordering::Release);
                            thread.unpark();
                        })
                    })
                    .collect()
            })
        });
    }
}

// ---------------------------------------------------------------------------
// Drivers: criterion, and the compare mode used by benches/compare.sh
// ---------------------------------------------------------------------------

/// The benchmark filter criterion was given, when it is a plain substring:
/// workloads it cannot match are then not even set up (some set-ups, such
/// as 400,000 pending timeouts, are not free).
fn plain_filter() -> Option<String> {
    const TAKES_VALUE: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--color",
        "--format",
        "--logfile",
        "-s",
        "-b",
        "-c",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if TAKES_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            let plain = a.chars().all(|c| c.is_alphanumeric() || "/_=-".contains(c));
            return plain.then_some(a);
        }
    }
    None
}

fn run_criterion(list: &[Workload]) {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .configure_from_args();
    let filter = plain_filter();
    let mut i = 0;
    while i < list.len() {
        let name = &list[i].name;
        let mut group = c.benchmark_group(name.as_str());
        while i < list.len() && &list[i].name == name {
            let w = &list[i];
            if filter
                .as_ref()
                .is_some_and(|f| !format!("{}/{}", w.name, w.imp).contains(f.as_str()))
            {
                i += 1;
                continue;
            }
            if let Kind::Once { run } = &w.kind {
                let mut xs: Vec<f64> = run().iter().map(|d| d.as_nanos() as f64).collect();
                xs.sort_by(|a, b| a.total_cmp(b));
                let p = |q: f64| xs[(q * (xs.len() - 1) as f64) as usize] / 1e3;
                println!(
                    "{}/{}: p50 {:.1} us, p99 {:.1} us over {} samples\n",
                    w.name,
                    w.imp,
                    p(0.50),
                    p(0.99),
                    xs.len()
                );
                i += 1;
                continue;
            }
            group.measurement_time(w.measure).sample_size(w.samples);
            match &w.kind {
                Kind::Throughput { per, make } => {
                    group.throughput(Throughput::Elements(*per));
                    let mut run = make();
                    group.bench_function(w.imp, |b| b.iter_custom(&mut run));
                }
                Kind::Latency { make } => {
                    group.throughput(Throughput::Elements(1));
                    let mut sample = make();
                    group.bench_function(w.imp, |b| {
                        b.iter_custom(|iters| sample(iters as usize).into_iter().sum())
                    });
                }
                Kind::Once { .. } => unreachable!("handled above"),
            }
            settle_after(&w.name);
            i += 1;
        }
        group.finish();
    }
    c.final_summary();
}

/// After a deadline workload, give the clock's driver thread time to finish
/// whatever the teardown left it (cancelled timers to release) before the
/// next workload is timed.
fn settle_after(name: &str) {
    if ["with_timeout", "server_request", "timer"]
        .iter()
        .any(|g| name.starts_with(g))
    {
        thread::sleep(Duration::from_millis(500));
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_percentiles(imp: &str, name: &str, xs: &mut [f64]) {
    xs.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| xs[(q * (xs.len() - 1) as f64) as usize];
    println!("{imp}\t{name}/p50\t{:.3}", p(0.50));
    println!("{imp}\t{name}/p99\t{:.3}", p(0.99));
}

/// Runs every workload the way the Go twin does: calibrate the iteration
/// count to about `target` per repetition, run `reps` repetitions, print the
/// median ns/op; latency workloads print p50/p99 over `samples` samples.
/// `GOCONTEXT_BENCH_ITERS=n` skips the calibration and runs each throughput
/// workload exactly once for n operations: the mode to run under
/// `valgrind --tool=callgrind` (see `benches/profile.sh`).
/// `GOCONTEXT_BENCH_FILTER` and `GOCONTEXT_BENCH_IMPL` select workloads by
/// substrings of their name (alternatives separated by `|`) and
/// implementation. `GOCONTEXT_BENCH_THREADS` caps the scaling rows (see
/// `thread_counts`). `GOCONTEXT_BENCH_DEBUG` prints each calibration run
/// and repetition to stderr.
fn run_compare(list: &[Workload]) {
    let reps: usize = env_or("GOCONTEXT_BENCH_REPS", 5);
    let debug = std::env::var_os("GOCONTEXT_BENCH_DEBUG").is_some();
    let target = Duration::from_millis(env_or("GOCONTEXT_BENCH_TARGET_MS", 50));
    let samples: usize = env_or("GOCONTEXT_BENCH_SAMPLES", 2000);
    let filter = std::env::var("GOCONTEXT_BENCH_FILTER").unwrap_or_default();
    let fixed_iters: Option<u64> = std::env::var("GOCONTEXT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok());
    println!("# rust\t{}", env!("CARGO_PKG_NAME"));
    let imp = std::env::var("GOCONTEXT_BENCH_IMPL").unwrap_or_default();
    for w in list
        .iter()
        .filter(|w| filter.split('|').any(|f| w.name.contains(f)) && w.imp.contains(&imp))
    {
        match &w.kind {
            Kind::Throughput { per, make } => {
                let mut run = make();
                if let Some(n) = fixed_iters {
                    // Profiling (callgrind): exactly n operations, once.
                    let d = run(n);
                    println!(
                        "{}\t{}\t{:.3}",
                        w.imp,
                        w.name,
                        d.as_nanos() as f64 / (n * per) as f64
                    );
                    continue;
                }
                // Two sizes in a row must reach a tenth of the target: one
                // slow run alone (a thread spawn the scheduler delays by
                // milliseconds, at n = 1) would otherwise fix n at a size
                // where the per-run overhead swamps the operations.
                let mut n = 1u64;
                let mut long_before = false;
                loop {
                    let d = run(n);
                    if debug {
                        eprintln!("{}\t{}\tcalibrate n={n} d={d:?}", w.imp, w.name);
                    }
                    let long = d >= target / 10;
                    if (long && long_before) || n >= 1 << 30 {
                        n = ((n as f64) * target.as_secs_f64() / d.as_secs_f64().max(1e-9)).max(1.0)
                            as u64;
                        break;
                    }
                    long_before = long;
                    n *= 4;
                }
                let mut xs: Vec<f64> = (0..reps)
                    .map(|_| run(n).as_nanos() as f64 / (n * per) as f64)
                    .collect();
                if debug {
                    eprintln!("{}\t{}\tn={n}\treps={xs:?}", w.imp, w.name);
                }
                println!("{}\t{}\t{:.3}", w.imp, w.name, median(&mut xs));
                drop(run);
                settle_after(&w.name);
            }
            Kind::Latency { make } => {
                let mut sample = make();
                let mut xs: Vec<f64> = sample(samples)
                    .iter()
                    .map(|d| d.as_nanos() as f64)
                    .collect();
                print_percentiles(w.imp, &w.name, &mut xs);
            }
            Kind::Once { run } => {
                let mut xs: Vec<f64> = run().iter().map(|d| d.as_nanos() as f64).collect();
                print_percentiles(w.imp, &w.name, &mut xs);
            }
        }
    }
}

fn main() {
    let list = workloads();
    if std::env::var_os("GOCONTEXT_BENCH_COMPARE").is_some() {
        run_compare(&list);
        return;
    }
    run_criterion(&list);
}
