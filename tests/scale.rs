//! Scale: depth (semantic 11), width, and a create/cancel storm against a
//! concurrent parent cancel (semantic 12). The deep tests run on threads
//! with a 256 KiB stack, so any recursion on depth would overflow.

use gocontext::{CancelHandle, Cause, Context, Error, Key};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

const SMALL_STACK: usize = 256 * 1024;

mod common;
use common::Named;
#[path = "support/miri.rs"]
mod miri;
use miri::scaled;

/// The chain depth: a million natively.
fn depth() -> usize {
    scaled("chain depth", 1_000_000, 2_000)
}

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

static TOP: Key<DropCount> = Key::new("top");
static LAYER: Key<usize> = Key::new("layer");
static ROOT_VALUE: Key<u64> = Key::new("root-value");
static MISSING: Key<u64> = Key::new("missing");

/// Runs `f` on a thread with a 256 KiB stack and propagates its panic.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let t = thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawn");
    match t.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A chain `depth()` cancel contexts deep below a root that carries a
/// drop-counted value. The intermediate handles are detached; returns the
/// root's handle, a few samples along the chain, and the leaf.
struct Chain {
    root: Context,
    root_cancel: CancelHandle,
    samples: Vec<Context>,
    leaf: Context,
}

fn build_chain(drops: &Arc<AtomicUsize>) -> Chain {
    let top = Context::background().with_value(&TOP, DropCount(drops.clone()));
    let (root, root_cancel) = top.with_cancel();
    drop(top);
    let mut cur = root.clone();
    let mut samples = Vec::new();
    let depth = depth();
    for i in 0..depth {
        let (c, h) = cur.with_cancel();
        h.detach();
        if i % (depth / 10) == 0 {
            samples.push(c.clone());
        }
        cur = c;
    }
    Chain {
        root,
        root_cancel,
        samples,
        leaf: cur,
    }
}

#[test]
fn million_deep_chain_cancelled_from_the_root_then_dropped() {
    on_small_stack(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let chain = build_chain(&drops);
        assert_eq!(chain.leaf.err(), None);
        chain.root_cancel.cancel_with_cause(Named("root"));
        let cause = chain.root.cause().unwrap();
        for c in chain.samples.iter().chain([&chain.leaf]) {
            assert_eq!(c.err(), Some(Error::Canceled));
            assert!(c.cause().unwrap().ptr_eq(&cause));
        }
        assert!(chain.leaf.value(&TOP).is_some());
        let Chain {
            root,
            root_cancel,
            samples,
            leaf,
        } = chain;
        drop(samples);
        drop(leaf);
        drop(root_cancel);
        assert_eq!(drops.load(SeqCst), 0, "the root still holds the value");
        drop(root);
        assert_eq!(drops.load(SeqCst), 1, "the whole chain was freed");
    });
}

#[test]
fn million_deep_chain_dropped_without_cancelling() {
    on_small_stack(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let chain = build_chain(&drops);
        let Chain {
            root,
            root_cancel,
            samples,
            leaf,
        } = chain;
        drop(samples);
        drop(leaf); // tears down a million nodes, leaf first
        assert_eq!(
            root.err(),
            None,
            "dropping children never cancels the parent"
        );
        assert_eq!(drops.load(SeqCst), 0);
        // The root still works: a new child follows it.
        let (child, child_cancel) = root.with_cancel();
        root_cancel.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        drop(child);
        drop(child_cancel);
        drop(root);
        assert_eq!(drops.load(SeqCst), 0, "the handle still holds the root");
        drop(root_cancel);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn million_deep_dropped_from_the_root_end_first() {
    // The other order: the root's handles go first, the leaf last.
    on_small_stack(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let Chain {
            root,
            root_cancel,
            samples,
            leaf,
        } = build_chain(&drops);
        root_cancel.detach();
        drop(root);
        drop(samples);
        assert_eq!(leaf.err(), None);
        assert!(leaf.value(&TOP).is_some());
        drop(leaf);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn value_lookup_through_a_million_deep_chain() {
    on_small_stack(|| {
        let mut ctx = Context::background().with_value(&ROOT_VALUE, 42);
        let mut kept = Vec::new();
        let depth = depth();
        for i in 0..depth {
            if i % 1000 == 0 {
                let (c, h) = ctx.with_cancel();
                kept.push(h);
                ctx = c;
            } else {
                ctx = ctx.with_value(&LAYER, i);
            }
        }
        assert_eq!(ctx.value(&LAYER), Some(&(depth - 1)));
        assert_eq!(ctx.value(&ROOT_VALUE), Some(&42));
        assert_eq!(ctx.value(&MISSING), None);
        // Cancel from the top of the chain, then look again.
        kept[0].cancel();
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert_eq!(ctx.value(&ROOT_VALUE), Some(&42));
        drop(kept);
        drop(ctx);
    });
}

#[test]
fn hundred_thousand_wide_fan_out_cancelled() {
    let width = scaled("fan-out width", 100_000, 1_000);
    let (root, cancel) = Context::background().with_cancel();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..width).map(|_| AtomicUsize::new(0)).collect());
    let wrong_thread = Arc::new(AtomicUsize::new(0));
    let canceller_id = Arc::new(std::sync::OnceLock::new());
    let mut children = Vec::with_capacity(width);
    let mut afters = Vec::with_capacity(width);
    for i in 0..width {
        let (c, h) = root.with_cancel();
        let (r, w, id, c2) = (
            runs.clone(),
            wrong_thread.clone(),
            canceller_id.clone(),
            c.clone(),
        );
        afters.push(c.after_func(move || {
            assert!(c2.is_done());
            r[i].fetch_add(1, SeqCst);
            if id.get() != Some(&thread::current().id()) {
                w.fetch_add(1, SeqCst);
            }
        }));
        children.push((c, h));
    }
    assert!(children.iter().all(|(c, _)| c.err().is_none()));
    let id = canceller_id.clone();
    thread::spawn(move || {
        id.set(thread::current().id()).unwrap();
        cancel.cancel_with_cause(Named("fan-out"));
    })
    .join()
    .unwrap();
    let cause = root.cause().unwrap();
    for (i, (c, _)) in children.iter().enumerate() {
        assert_eq!(c.err(), Some(Error::Canceled), "child {i}");
        assert!(c.cause().unwrap().ptr_eq(&cause), "child {i}");
        assert_eq!(runs[i].load(SeqCst), 1, "callback {i}");
    }
    assert_eq!(
        wrong_thread.load(SeqCst),
        0,
        "callbacks ran off the canceller"
    );
    assert!(afters.iter().all(|a| !a.stop()));
    drop(children);
    drop(afters);
    assert!(runs.iter().all(|r| r.load(SeqCst) == 1));
}

/// What a storm thread did with one child.
enum Kept {
    /// Left alone: must end done with the parent's cause.
    Plain(Context, CancelHandle, Context),
    /// Cancelled with its own cause: ends with its own or the parent's.
    Own(Context, Cause),
}

#[test]
fn create_cancel_storm_against_a_parent_cancel() {
    const THREADS: usize = 4;
    // Children each thread makes once it saw the cancel.
    let after_cancel = scaled("children per thread after the cancel", 2_000, 50);
    let (parent, cancel_parent) = Context::background().with_cancel();
    let made = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let saw_done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (parent, made, start, saw_done) = (
                parent.clone(),
                made.clone(),
                start.clone(),
                saw_done.clone(),
            );
            thread::spawn(move || {
                start.wait();
                let mut kept = Vec::new();
                let mut late = Vec::new();
                let mut after = 0;
                let mut i = 0usize;
                while after < after_cancel {
                    let was_done = parent.is_done();
                    let (c, h) = parent.with_cancel();
                    made.fetch_add(1, SeqCst);
                    if was_done {
                        // Created after the parent's cancel: done at once.
                        saw_done.store(true, SeqCst);
                        assert_eq!(c.err(), Some(Error::Canceled));
                        late.push(c.cause().unwrap());
                        after += 1;
                    }
                    match (i + t) % 4 {
                        0 => {
                            let (gc, gh) = c.with_cancel();
                            gh.detach();
                            kept.push(Kept::Plain(c, h, gc));
                        }
                        1 => {
                            let own = Cause::from(Named("own"));
                            h.cancel_with_cause(own.clone());
                            kept.push(Kept::Own(c, own));
                        }
                        2 => drop((c, h)),
                        _ => {
                            let v = c.with_value(&LAYER, i);
                            drop(c);
                            let (gc, gh) = v.with_cancel();
                            drop(h);
                            assert!(gc.is_done());
                            drop(gh);
                        }
                    }
                    i += 1;
                }
                (kept, late)
            })
        })
        .collect();
    let before_cancel = 4 * THREADS * scaled("children per thread before the cancel", 100, 10);
    start.wait();
    while made.load(SeqCst) < before_cancel {
        thread::yield_now();
    }
    cancel_parent.cancel_with_cause(Named("parent"));
    let cause = parent.cause().unwrap();
    let mut total = 0;
    for t in threads {
        let (kept, late) = t.join().unwrap();
        for c in late {
            assert!(c.ptr_eq(&cause), "a late child has the parent's cause");
        }
        for k in kept {
            total += 1;
            match k {
                Kept::Plain(c, _h, gc) => {
                    assert_eq!(c.err(), Some(Error::Canceled));
                    assert!(c.cause().unwrap().ptr_eq(&cause));
                    assert!(gc.cause().unwrap().ptr_eq(&cause));
                }
                Kept::Own(c, own) => {
                    assert_eq!(c.err(), Some(Error::Canceled));
                    let got = c.cause().unwrap();
                    assert!(got.ptr_eq(&own) || got.ptr_eq(&cause));
                }
            }
        }
    }
    assert!(saw_done.load(SeqCst));
    assert!(total > 0);
}

/// A chain of shared contexts (each one a hub and its shards) dropped
/// leaf first and root first on a small stack, without and with a cancel:
/// the hubs' release and teardown run in the same loop as any node's.
#[test]
fn chain_of_shared_contexts_on_a_small_stack() {
    on_small_stack(|| {
        // Each link allocates a shard per CPU: a shorter chain.
        let depth = scaled("shared chain depth", 20_000, 200);
        for (cancel_first, leaf_first) in [(false, true), (false, false), (true, false)] {
            let drops = Arc::new(AtomicUsize::new(0));
            let top = Context::background().with_value(&TOP, DropCount(drops.clone()));
            let (root, root_cancel) = top.with_cancel_shared();
            drop(top);
            let mut cur = root.clone();
            for i in 0..depth {
                let (c, h) = if i % 2 == 0 {
                    cur.with_cancel_shared()
                } else {
                    cur.with_cancel()
                };
                h.detach();
                cur = c;
            }
            if cancel_first {
                root_cancel.cancel();
                drop(root_cancel);
                assert_eq!(cur.err(), Some(Error::Canceled));
            } else {
                root_cancel.detach();
                assert_eq!(cur.err(), None);
            }
            if leaf_first {
                drop(cur);
                assert_eq!(drops.load(SeqCst), 0, "the root still holds the value");
                drop(root);
            } else {
                drop(root);
                assert_eq!(drops.load(SeqCst), 0, "the leaf still holds the chain");
                drop(cur);
            }
            assert_eq!(drops.load(SeqCst), 1, "the whole chain was freed");
        }
    });
}
