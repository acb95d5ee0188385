//! Rust versions of the test cases of Go's `context` package, written from
//! what each Go test checks (not from its source text). Where Go runs
//! `AfterFunc` callbacks on a new goroutine, gocontext runs them
//! synchronously on the cancelling thread, and the tests check that instead.

use gocontext::{CancelHandle, Cause, Context, Error, Key};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context as TaskCx, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Only ever an upper bound on waiting for something that must happen.
const EVENTUALLY: Duration = Duration::from_secs(20);
/// A timeout that never fires during a test.
const FOREVER: Duration = Duration::from_secs(1_000_000);

mod common;
use common::Named;
#[path = "support/miri.rs"]
mod miri;
use miri::scaled;

fn cause(name: &'static str) -> Cause {
    Cause::from(Named(name))
}

// ---------------------------------------------------------------------------
// TestCause: which err and cause a context ends up with

/// What a row of the table expects.
enum Want {
    /// `err()` and `cause()` are `None`.
    Live,
    /// Done with `err`, and `cause()` is the default one (the err itself).
    Default(Error),
    /// Done with `err`, and `cause()` is this very value.
    Custom(Error, Cause),
}

/// A row's context, the handles that must stay alive while it is checked,
/// and what it should report.
struct Case {
    ctx: Context,
    _keep: Vec<CancelHandle>,
    want: Want,
}

fn check(name: &str, case: Case) {
    let Case { ctx, _keep, want } = case;
    match want {
        Want::Live => {
            assert_eq!(ctx.err(), None, "{name}: err");
            assert!(ctx.cause().is_none(), "{name}: cause");
        }
        Want::Default(err) => {
            assert_eq!(ctx.err(), Some(err), "{name}: err");
            let got = ctx.cause().unwrap_or_else(|| panic!("{name}: no cause"));
            assert_eq!(
                got.downcast_ref::<Error>(),
                Some(&err),
                "{name}: cause {got}"
            );
        }
        Want::Custom(err, want) => {
            assert_eq!(ctx.err(), Some(err), "{name}: err");
            let got = ctx.cause().unwrap_or_else(|| panic!("{name}: no cause"));
            assert!(got.ptr_eq(&want), "{name}: cause {got}, want {want}");
        }
    }
}

type Row = (&'static str, fn() -> Case);

fn run_table(rows: &[Row]) {
    for (name, build) in rows {
        check(name, build());
    }
}

#[test]
fn cause_table() {
    let rows: &[Row] = &[
        ("Background", || Case {
            ctx: Context::background(),
            _keep: vec![],
            want: Want::Live,
        }),
        ("TODO", || Case {
            ctx: Context::todo(),
            _keep: vec![],
            want: Want::Live,
        }),
        ("WithCancel", || {
            let (ctx, cancel) = Context::background().with_cancel();
            cancel.cancel();
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Default(Error::Canceled),
            }
        }),
        ("WithCancelCause", || {
            let c = cause("parentCause");
            let (ctx, cancel) = Context::background().with_cancel();
            cancel.cancel_with_cause(c.clone());
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::Canceled, c),
            }
        }),
        ("WithCancelCause nested, parent first", || {
            let (pc, cc) = (cause("parentCause"), cause("childCause"));
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_cancel();
            cancel_parent.cancel_with_cause(pc.clone());
            cancel.cancel_with_cause(cc);
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::Canceled, pc),
            }
        }),
        (
            "WithCancelCause nested, parent first without a cause",
            || {
                let (parent, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel) = parent.with_cancel();
                cancel_parent.cancel();
                cancel.cancel_with_cause(cause("childCause"));
                Case {
                    ctx,
                    _keep: vec![cancel_parent, cancel],
                    want: Want::Default(Error::Canceled),
                }
            },
        ),
        ("WithCancelCause nested, child without a cause", || {
            let pc = cause("parentCause");
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_cancel();
            cancel_parent.cancel_with_cause(pc.clone());
            cancel.cancel();
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::Canceled, pc),
            }
        }),
        ("WithCancelCause nested, child first", || {
            let cc = cause("childCause");
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_cancel();
            cancel.cancel_with_cause(cc.clone());
            cancel_parent.cancel_with_cause(cause("parentCause"));
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::Canceled, cc),
            }
        }),
        ("WithCancelCause through a value layer", || {
            let pc = cause("parentCause");
            static K: Key<u8> = Key::new("k");
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_value(&K, 1).with_cancel();
            cancel_parent.cancel_with_cause(pc.clone());
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::Canceled, pc),
            }
        }),
        ("WithTimeout zero", || {
            let (ctx, cancel) = Context::background().with_timeout(Duration::ZERO);
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Default(Error::DeadlineExceeded),
            }
        }),
        ("WithTimeout canceled", || {
            let (ctx, cancel) = Context::background().with_timeout(FOREVER);
            cancel.cancel();
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Default(Error::Canceled),
            }
        }),
        ("WithTimeoutCause zero", || {
            let slow = cause("tooSlow");
            let (ctx, cancel) =
                Context::background().with_timeout_cause(Duration::ZERO, slow.clone());
            // A later cancel changes nothing.
            cancel.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithTimeoutCause canceled", || {
            let (ctx, cancel) = Context::background().with_timeout_cause(FOREVER, cause("tooSlow"));
            cancel.cancel();
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Default(Error::Canceled),
            }
        }),
        ("WithTimeoutCause canceled with a cause", || {
            let early = cause("finishedEarly");
            let (ctx, cancel) = Context::background().with_timeout_cause(FOREVER, cause("tooSlow"));
            cancel.cancel_with_cause(early.clone());
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::Canceled, early),
            }
        }),
        ("WithTimeoutCause stacked", || {
            let slow = cause("tooSlow");
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_timeout_cause(Duration::ZERO, slow.clone());
            cancel_parent.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithTimeoutCause stacked, canceled", || {
            let early = cause("finishedEarly");
            let (parent, cancel_parent) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_timeout_cause(FOREVER, cause("tooSlow"));
            cancel_parent.cancel_with_cause(early.clone());
            Case {
                ctx,
                _keep: vec![cancel_parent, cancel],
                want: Want::Custom(Error::Canceled, early),
            }
        }),
        ("WithDeadlineCause in the past", || {
            let slow = cause("tooSlow");
            let past = Instant::now() - Duration::from_millis(1);
            let (ctx, cancel) = Context::background().with_deadline_cause(past, slow.clone());
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithDeadline now", || {
            let (ctx, cancel) = Context::background().with_deadline(Instant::now());
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Default(Error::DeadlineExceeded),
            }
        }),
        ("WithTimeoutCause zero under a value", || {
            static K: Key<u8> = Key::new("k");
            let slow = cause("tooSlow");
            let (ctx, cancel) =
                Context::background().with_timeout_cause(Duration::ZERO, slow.clone());
            Case {
                ctx: ctx.with_value(&K, 1),
                _keep: vec![cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("Merge with an expired parent", || {
            let slow = cause("tooSlow");
            let (a, ha) = Context::background().with_timeout_cause(Duration::ZERO, slow.clone());
            let (b, hb) = Context::background().with_cancel();
            let (ctx, cancel) = Context::merge(&b, &a);
            Case {
                ctx,
                _keep: vec![ha, hb, cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithoutCancel", || Case {
            ctx: Context::background().without_cancel(),
            _keep: vec![],
            want: Want::Live,
        }),
        ("WithoutCancel canceled", || {
            let (parent, cancel) = Context::background().with_cancel();
            cancel.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx: parent.without_cancel(),
                _keep: vec![cancel],
                want: Want::Live,
            }
        }),
        ("WithoutCancel timeout", || {
            let (parent, cancel) =
                Context::background().with_timeout_cause(Duration::ZERO, cause("tooSlow"));
            Case {
                ctx: parent.without_cancel(),
                _keep: vec![cancel],
                want: Want::Live,
            }
        }),
    ];
    run_table(rows);
}

/// Rows that derive a child from a parent that is already done.
#[test]
fn cause_table_children_of_done_parents() {
    let rows: &[Row] = &[
        ("WithCancel of an expired WithTimeoutCause", || {
            let slow = cause("tooSlow");
            let (parent, hp) =
                Context::background().with_timeout_cause(Duration::ZERO, slow.clone());
            let (ctx, cancel) = parent.with_cancel();
            cancel.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx,
                _keep: vec![hp, cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithTimeoutCause of a canceled parent", || {
            let early = cause("finishedEarly");
            let (parent, hp) = Context::background().with_cancel();
            hp.cancel_with_cause(early.clone());
            let (ctx, cancel) = parent.with_timeout_cause(FOREVER, cause("tooSlow"));
            Case {
                ctx,
                _keep: vec![hp, cancel],
                want: Want::Custom(Error::Canceled, early),
            }
        }),
    ];
    run_table(rows);
}

/// Rows whose deadline has to fire while the test waits.
#[test]
fn cause_table_deadlines_that_fire() {
    let rows: &[Row] = &[
        ("WithTimeoutCause fires", || {
            let slow = cause("tooSlow");
            let (ctx, cancel) =
                Context::background().with_timeout_cause(Duration::from_millis(5), slow.clone());
            assert_eq!(ctx.wait_timeout(EVENTUALLY), Some(Error::DeadlineExceeded));
            cancel.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithCancel under a WithTimeoutCause that fires", || {
            let slow = cause("tooSlow");
            let (parent, hp) =
                Context::background().with_timeout_cause(Duration::from_millis(5), slow.clone());
            let (ctx, cancel) = parent.with_cancel();
            assert_eq!(ctx.wait_timeout(EVENTUALLY), Some(Error::DeadlineExceeded));
            Case {
                ctx,
                _keep: vec![hp, cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithDeadlineCause fires", || {
            let slow = cause("tooSlow");
            let at = Instant::now() + Duration::from_millis(5);
            let (ctx, cancel) = Context::background().with_deadline_cause(at, slow.clone());
            assert_eq!(ctx.wait_timeout(EVENTUALLY), Some(Error::DeadlineExceeded));
            assert!(Instant::now() >= at, "a deadline never fires early");
            Case {
                ctx,
                _keep: vec![cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
        ("WithTimeoutCause under a canceled-later parent", || {
            let slow = cause("tooSlow");
            let (parent, hp) = Context::background().with_cancel();
            let (ctx, cancel) = parent.with_timeout_cause(Duration::from_millis(5), slow.clone());
            assert_eq!(ctx.wait_timeout(EVENTUALLY), Some(Error::DeadlineExceeded));
            hp.cancel_with_cause(cause("finishedEarly"));
            Case {
                ctx,
                _keep: vec![hp, cancel],
                want: Want::Custom(Error::DeadlineExceeded, slow),
            }
        }),
    ];
    run_table(rows);
}

// ---------------------------------------------------------------------------
// TestParentFinishesChild / TestChildFinishesFirst

#[test]
fn parent_finishes_child() {
    static K: Key<&'static str> = Key::new("k");
    let (parent, cancel) = Context::background().with_cancel();
    let (cancel_child, _h1) = parent.with_cancel();
    let (timer_child, _h2) = parent.with_timeout(FOREVER);
    let value_child = parent.with_value(&K, "v");
    let (value_cancel_child, _h3) = value_child.with_cancel();
    for c in [
        &parent,
        &cancel_child,
        &timer_child,
        &value_child,
        &value_cancel_child,
    ] {
        assert_eq!(c.err(), None);
    }
    cancel.cancel();
    for c in [
        &parent,
        &cancel_child,
        &timer_child,
        &value_child,
        &value_cancel_child,
    ] {
        assert_eq!(c.err(), Some(Error::Canceled), "{c}");
        assert_eq!(c.wait_timeout(Duration::ZERO), Some(Error::Canceled));
    }
    assert_eq!(value_cancel_child.value(&K), Some(&"v"));
}

#[test]
fn child_finishes_first() {
    let (cancellable, cancel_parent) = Context::background().with_cancel();
    for parent in [Context::background(), cancellable] {
        let (child, cancel_child) = parent.with_cancel();
        cancel_child.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(parent.err(), None, "{parent}");
    }
    cancel_parent.cancel();
}

// ---------------------------------------------------------------------------
// TestSimultaneousCancels: many threads cancel a tree at once

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn simultaneous_cancels() {
    let mut rng = StdRng::seed_from_u64(1);
    let (root, root_cancel) = Context::background().with_cancel();
    let mut nodes = vec![root.clone()];
    let mut handles = vec![root_cancel];
    let mut queue = std::collections::VecDeque::from([root.clone()]);
    while let Some(parent) = queue.pop_front() {
        if nodes.len() >= 400 {
            break;
        }
        for _ in 0..4 {
            let (c, h) = parent.with_cancel();
            nodes.push(c.clone());
            handles.push(h);
            queue.push_back(c);
        }
    }
    // Observers on every node: a callback, a pending Done future.
    let runs: Arc<Vec<AtomicUsize>> =
        Arc::new((0..nodes.len()).map(|_| AtomicUsize::new(0)).collect());
    let mut afters = Vec::new();
    let mut futures = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let r = runs.clone();
        afters.push(n.after_func(move || {
            r[i].fetch_add(1, SeqCst);
        }));
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut done = n.done();
        assert!(std::pin::Pin::new(&mut done)
            .poll(&mut TaskCx::from_waker(&waker))
            .is_pending());
        futures.push((count, waker, done));
    }
    // A few blocked threads too.
    let (tx, rx) = mpsc::channel();
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let n = nodes[nodes.len() - 1 - i * 37].clone();
            let tx = tx.clone();
            thread::spawn(move || tx.send(n.wait()).unwrap())
        })
        .collect();
    handles.shuffle(&mut rng);
    let handles: Arc<Vec<CancelHandle>> = Arc::new(handles);
    let threads = 8;
    let start = Arc::new(Barrier::new(threads));
    let cancellers: Vec<_> = (0..threads)
        .map(|t| {
            let handles = handles.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                // Every thread cancels every handle, each from its own offset.
                let n = handles.len();
                for k in 0..n {
                    handles[(k + t * n / threads) % n].cancel();
                }
            })
        })
        .collect();
    for c in cancellers {
        c.join().unwrap();
    }
    for n in &nodes {
        assert_eq!(n.err(), Some(Error::Canceled), "{n}");
    }
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.load(SeqCst),
            1,
            "callback {i} ran {} times",
            r.load(SeqCst)
        );
    }
    for (count, waker, done) in &mut futures {
        assert!(count.0.load(SeqCst) >= 1);
        let poll = std::pin::Pin::new(done).poll(&mut TaskCx::from_waker(waker));
        assert_eq!(poll, Poll::Ready(Error::Canceled));
    }
    for _ in 0..4 {
        assert_eq!(rx.recv_timeout(EVENTUALLY), Ok(Error::Canceled));
    }
    for w in waiters {
        w.join().unwrap();
    }
    for a in &afters {
        assert!(!a.stop());
    }
}

// ---------------------------------------------------------------------------
// TestInterlockedCancels: cancelling a child while its parent's
// cancellation is under way must not deadlock

#[test]
fn interlocked_cancels_from_a_thread() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    let p = parent.clone();
    let t = thread::spawn(move || {
        p.wait();
        cancel_child.cancel();
    });
    cancel_parent.cancel();
    assert_eq!(child.wait_timeout(EVENTUALLY), Some(Error::Canceled));
    t.join().unwrap();
}

#[test]
fn interlocked_cancels_from_a_callback() {
    // The parent's drain runs a callback that cancels a child of the same
    // parent, which the drain may not have reached yet.
    for child_first in [false, true] {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let slot: Arc<Mutex<Option<CancelHandle>>> = Arc::default();
        let s = slot.clone();
        let mut after = None;
        if !child_first {
            after = Some(parent.after_func(move || {
                s.lock()
                    .unwrap()
                    .take()
                    .unwrap()
                    .cancel_with_cause(Named("child"));
            }));
        }
        let (child, cancel_child) = parent.with_cancel();
        let (grandchild, _h) = child.with_cancel();
        *slot.lock().unwrap() = Some(cancel_child);
        if child_first {
            let s = slot.clone();
            after = Some(parent.after_func(move || {
                s.lock()
                    .unwrap()
                    .take()
                    .unwrap()
                    .cancel_with_cause(Named("child"));
            }));
        }
        cancel_parent.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(grandchild.err(), Some(Error::Canceled));
        let c = child.cause().unwrap();
        assert!(c.ptr_eq(&grandchild.cause().unwrap()));
        // Whichever got there first, the child's cause is the parent's or
        // the callback's, and stays so.
        assert!(c.is::<Error>() || c.is::<Named>());
        assert!(slot.lock().unwrap().is_none(), "callback ran");
        assert!(!after.unwrap().stop());
    }
}

#[test]
fn interlocked_cancels_across_two_trees() {
    // a's callback cancels b, b's callback cancels a: both end done, each
    // callback once, no deadlock.
    let (a, cancel_a) = Context::background().with_cancel();
    let (b, cancel_b) = Context::background().with_cancel();
    let cancel_a = Arc::new(cancel_a);
    let cancel_b = Arc::new(cancel_b);
    let runs = Arc::new(AtomicUsize::new(0));
    let (cb, r) = (cancel_b.clone(), runs.clone());
    let _fa = a.after_func(move || {
        r.fetch_add(1, SeqCst);
        cb.cancel();
    });
    let (ca, r) = (cancel_a.clone(), runs.clone());
    let _fb = b.after_func(move || {
        r.fetch_add(1, SeqCst);
        ca.cancel();
    });
    cancel_a.cancel();
    assert!(a.is_done() && b.is_done());
    assert_eq!(runs.load(SeqCst), 2);
}

// ---------------------------------------------------------------------------
// TestWithCancelSimultaneouslyCanceledParent

#[test]
fn with_cancel_simultaneously_canceled_parent() {
    for _ in 0..scaled("simultaneous-cancel rounds", 500, 20) {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let start = Arc::new(Barrier::new(2));
        let s = start.clone();
        let t = thread::spawn(move || {
            s.wait();
            cancel_parent.cancel_with_cause(Named("parent"));
        });
        start.wait();
        let (child, _h) = parent.with_cancel();
        assert_eq!(child.wait_timeout(EVENTUALLY), Some(Error::Canceled));
        t.join().unwrap();
        assert!(child.cause().unwrap().ptr_eq(&parent.cause().unwrap()));
    }
}

// ---------------------------------------------------------------------------
// TestLayersCancel / TestLayersTimeout

// 64 distinct keys: each element of the static array is its own key. The
// const is only the array's initialiser, never used as a key itself.
#[allow(clippy::declare_interior_mutable_const)]
static LAYER_KEYS: [Key<usize>; 64] = {
    const K: Key<usize> = Key::new("layer");
    [K; 64]
};

enum Layer {
    Value(usize),
    Cancel(CancelHandle),
}

/// Builds random layers of values, cancels and timeouts over background,
/// at least one of each kind; `timeout` is the timeout of timeout layers.
fn layers(rng: &mut StdRng, timeout: Duration) -> (Vec<(Context, Layer)>, usize) {
    let mut ctx = Context::background();
    let mut out = Vec::new();
    let (mut values, mut cancels, mut timers) = (0, 0, 0);
    let mut i = 0;
    while i < 12 || values == 0 || cancels == 0 || timers == 0 {
        let layer = match rng.gen_range(0..3) {
            0 => {
                ctx = ctx.with_value(&LAYER_KEYS[i], i);
                values += 1;
                Layer::Value(i)
            }
            1 => {
                let (c, h) = ctx.with_cancel();
                ctx = c;
                cancels += 1;
                Layer::Cancel(h)
            }
            _ => {
                let (c, h) = ctx.with_timeout(timeout);
                ctx = c;
                timers += 1;
                cancels += 1;
                Layer::Cancel(h)
            }
        };
        out.push((ctx.clone(), layer));
        i += 1;
    }
    (out, timers)
}

fn check_values(layers: &[(Context, Layer)], when: &str) {
    let leaf = &layers.last().unwrap().0;
    for (ctx, layer) in layers {
        if let Layer::Value(i) = layer {
            assert_eq!(
                leaf.value(&LAYER_KEYS[*i]),
                Some(i),
                "{when}: from the leaf"
            );
            assert_eq!(ctx.value(&LAYER_KEYS[*i]), Some(i), "{when}: at the layer");
        }
    }
    let unused = layers.len();
    if unused < LAYER_KEYS.len() {
        assert_eq!(leaf.value(&LAYER_KEYS[unused]), None, "{when}");
    }
}

#[test]
fn layers_cancel() {
    for seed in 0..scaled("layer seeds", 50, 5) as u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (layers, _) = layers(&mut rng, FOREVER);
        check_values(&layers, "before cancel");
        for (c, _) in &layers {
            assert_eq!(c.err(), None, "seed {seed}: {c} done too early");
        }
        let cancel_at: Vec<usize> = layers
            .iter()
            .enumerate()
            .filter(|(_, (_, l))| matches!(l, Layer::Cancel(_)))
            .map(|(i, _)| i)
            .collect();
        let at = cancel_at[rng.gen_range(0..cancel_at.len())];
        let Layer::Cancel(h) = &layers[at].1 else {
            unreachable!()
        };
        let with_cause = seed % 2 == 0;
        if with_cause {
            h.cancel_with_cause(Named("layer"));
        } else {
            h.cancel();
        }
        let leaf = &layers.last().unwrap().0;
        assert_eq!(leaf.wait_timeout(EVENTUALLY), Some(Error::Canceled));
        let cause = layers[at].0.cause().unwrap();
        assert_eq!(cause.is::<Named>(), with_cause);
        for (i, (c, _)) in layers.iter().enumerate() {
            if i < at {
                assert_eq!(c.err(), None, "seed {seed}: layer {i} above {at}");
            } else {
                assert_eq!(c.err(), Some(Error::Canceled), "seed {seed}: layer {i}");
                assert!(c.cause().unwrap().ptr_eq(&cause));
            }
        }
        check_values(&layers, "after cancel");
    }
}

#[test]
fn layers_timeout() {
    for seed in 0..scaled("timeout layer seeds", 10, 2) as u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (layers, timers) = layers(&mut rng, Duration::from_millis(10));
        assert!(timers > 0);
        check_values(&layers, "before timeout");
        let leaf = &layers.last().unwrap().0;
        assert_eq!(leaf.wait_timeout(EVENTUALLY), Some(Error::DeadlineExceeded));
        assert!(leaf.cause().unwrap().is::<Error>());
        check_values(&layers, "after timeout");
    }
}

// ---------------------------------------------------------------------------
// TestAfterFunc*

#[test]
fn after_func_called_after_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let c = ctx.clone();
    let stop = ctx.after_func(move || tx.send(c.err()).unwrap());
    assert!(rx.try_recv().is_err(), "ran before cancel");
    cancel.cancel();
    // Synchronous: it has run by the time cancel() returns.
    assert_eq!(rx.try_recv(), Ok(Some(Error::Canceled)));
    assert!(!stop.stop(), "stop after the run reports false");
    assert!(rx.try_recv().is_err(), "ran twice");
}

#[test]
fn after_func_called_after_timeout() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(5));
    let (tx, rx) = mpsc::channel();
    let c = ctx.clone();
    let stop = ctx.after_func(move || tx.send(c.err()).unwrap());
    assert_eq!(
        rx.recv_timeout(EVENTUALLY),
        Ok(Some(Error::DeadlineExceeded))
    );
    assert!(!stop.stop());
}

#[test]
fn after_func_called_immediately() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let stop = ctx.after_func(move || r.store(true, SeqCst));
    assert!(
        ran.load(SeqCst),
        "a done context runs f before after_func returns"
    );
    assert!(!stop.stop());
}

#[test]
fn after_func_not_called_after_stop() {
    let (ctx, cancel) = Context::background().with_cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let stop = ctx.after_func(move || r.store(true, SeqCst));
    assert!(stop.stop(), "the first stop prevents the run");
    cancel.cancel();
    assert!(!ran.load(SeqCst));
    assert!(!stop.stop(), "a second stop prevents nothing");
}

#[test]
fn after_func_called_synchronously_on_the_cancelling_thread() {
    // Go: TestAfterFuncCalledAsynchronously. Here f runs on the canceller.
    for via_parent in [false, true] {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let (ctx, cancel) = parent.with_cancel();
        let ran_on = Arc::new(Mutex::new(None));
        let r = ran_on.clone();
        let _stop = ctx.after_func(move || *r.lock().unwrap() = Some(thread::current().id()));
        let ro = ran_on.clone();
        let canceller = thread::spawn(move || {
            if via_parent {
                cancel_parent.cancel();
            } else {
                cancel.cancel();
            }
            // cancel() returns only after f ran.
            assert!(ro.lock().unwrap().is_some());
            thread::current().id()
        });
        let id = canceller.join().unwrap();
        assert_eq!(*ran_on.lock().unwrap(), Some(id));
        assert_ne!(id, thread::current().id());
    }
}

#[test]
fn after_func_stop_and_cancel_from_many_threads() {
    // Many registrations, stopped and cancelled concurrently: each either
    // ran once or was stopped, never both, never neither.
    let (ctx, cancel) = Context::background().with_cancel();
    let n = scaled("registrations", 2000, 200);
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let afters: Vec<_> = (0..n)
        .map(|i| {
            let r = runs.clone();
            ctx.after_func(move || {
                r[i].fetch_add(1, SeqCst);
            })
        })
        .collect();
    let afters = Arc::new(afters);
    let stopped: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let start = Arc::new(Barrier::new(3));
    let stoppers: Vec<_> = (0..2)
        .map(|t| {
            let (afters, stopped, start) = (afters.clone(), stopped.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in (t..n).step_by(2) {
                    if afters[i].stop() {
                        stopped[i].store(true, SeqCst);
                    }
                }
            })
        })
        .collect();
    start.wait();
    cancel.cancel();
    for s in stoppers {
        s.join().unwrap();
    }
    for i in 0..n {
        let ran = runs[i].load(SeqCst);
        let st = stopped[i].load(SeqCst);
        assert_eq!(
            ran,
            usize::from(!st),
            "registration {i}: ran {ran}, stopped {st}"
        );
    }
}

// ---------------------------------------------------------------------------
// TestWithoutCancel, TestDeadlineExceededSupportsTimeout

#[test]
fn without_cancel() {
    static K: Key<&'static str> = Key::new("key");
    let (parent, cancel) = Context::background().with_value(&K, "value").with_cancel();
    let ctx = parent.without_cancel();
    assert_eq!(ctx.value(&K), Some(&"value"));
    cancel.cancel();
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.value(&K), Some(&"value"));
    assert_eq!(ctx.deadline(), None);
}

#[test]
fn deadline_exceeded_supports_timeout() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::ZERO);
    let err = ctx.err().unwrap();
    assert!(err.is_timeout());
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn random_trees_cancel_consistently() {
    // A randomized mix of TestCause-style trees: cancel random nodes in a
    // random order; every node ends with the cause of the first of its
    // ancestors-or-self that was cancelled.
    for seed in 0..scaled("random tree seeds", 30, 5) as u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let mut nodes: Vec<(Context, Option<usize>)> = Vec::new();
        let mut handles: Vec<Option<CancelHandle>> = Vec::new();
        let (root, h) = Context::background().with_cancel();
        nodes.push((root, None));
        handles.push(Some(h));
        for _ in 0..60 {
            let p = rng.gen_range(0..nodes.len());
            let (c, h) = nodes[p].0.with_cancel();
            nodes.push((c, Some(p)));
            handles.push(Some(h));
        }
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.shuffle(&mut rng);
        let mut first_cancel: Vec<Option<usize>> = vec![None; nodes.len()];
        for (step, &i) in order.iter().enumerate().take(20) {
            handles[i]
                .take()
                .unwrap()
                .cancel_with_cause(Named(["a", "b"][step % 2]));
            first_cancel[i].get_or_insert(step);
        }
        // The expected source of each node's cause: its ancestor-or-self
        // with the earliest cancel step.
        for i in 0..nodes.len() {
            let mut best: Option<(usize, usize)> = None;
            let mut cur = Some(i);
            while let Some(j) = cur {
                if let Some(step) = first_cancel[j] {
                    if best.map_or(true, |(s, _)| step < s) {
                        best = Some((step, j));
                    }
                }
                cur = nodes[j].1;
            }
            let ctx = &nodes[i].0;
            match best {
                None => assert_eq!(ctx.err(), None),
                Some((_, j)) => {
                    assert_eq!(ctx.err(), Some(Error::Canceled));
                    let want = nodes[j].0.cause().unwrap();
                    assert!(ctx.cause().unwrap().ptr_eq(&want), "seed {seed} node {i}");
                }
            }
        }
    }
}
