//! `threads`: a tree built by a sequential prefix (checked against the model
//! as in `tree_ops`), then two threads running their own op lists on it at
//! the same time, then a final consistency check. Nothing is compared with
//! the model mid-way; the end state must satisfy the invariants every
//! interleaving keeps:
//!
//! 1. deadlines and values are what the tree's shape says;
//! 2. a context whose cancelling parent is done is done (cancellation is
//!    synchronous, and both threads have returned);
//! 3. a context whose deadline has passed on the clock is done;
//! 4. a done context's (err, cause) is explained: its own cancel, its own
//!    timer, or a parent's (err, cause); a context that is not done had no
//!    cancel, no due timer and no done parent;
//! 5. err/cause never change once seen (re-read at the end);
//! 6. each callback ran at most once, never after a successful `stop()`,
//!    and exactly once if its context is done (unless its subtree was
//!    dropped entirely); a pending `Done` was woken iff its context is done.

use crate::common::{counting_waker, decode, observe, pick, with_value, CountingWaker, Tagged};
use crate::model::{CauseTag, ErrKind, Kind, NodeId, Outcome, NKEYS};
use crate::tree_ops::{cancel_child, Harness, Op};
use arbitrary::Unstructured;
use gocontext::{AfterFunc, CancelHandle, Clock, Context, Done};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};
use std::time::Instant;

/// The first three bytes give the lengths of the lists (mod 64), then the
/// ops follow back to back.
#[derive(Debug)]
pub struct ThreadsInput {
    pub setup: Vec<Op>,
    pub left: Vec<Op>,
    pub right: Vec<Op>,
}

/// A node as a thread knows it: made before the split, or by this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ref {
    Setup(NodeId),
    Own(usize),
}

/// The shape of a node a thread derived.
#[derive(Debug)]
enum Rec {
    Cancel {
        parent: Ref,
        own: Option<(Instant, CauseTag)>,
    },
    Value {
        parent: Ref,
        key: usize,
        value: u32,
    },
    WithoutCancel {
        parent: Ref,
    },
    Merge {
        a: Ref,
        b: Ref,
    },
}

/// A callback registration as the final check sees it.
struct Cb {
    node: Ref,
    runs: Arc<AtomicU32>,
    stop_true: bool,
    stop_false: bool,
}

#[derive(Default)]
struct Worker {
    ctxs: Vec<(Context, Ref)>,
    handles: Vec<(CancelHandle, Ref)>,
    afters: Vec<(AfterFunc, usize)>,
    cbs: Vec<Cb>,
    recs: Vec<Rec>,
    cancels: Vec<(Ref, Outcome)>,
    seen: Vec<(Context, Ref, Outcome)>,
    dones: Vec<(Done, Ref, Arc<CountingWaker>, Waker)>,
    tag: u32,
}

const MAX_CTXS: usize = 100;

impl Worker {
    fn ctx(&self, i: u8) -> Option<(Context, Ref)> {
        if self.ctxs.len() >= MAX_CTXS {
            return None;
        }
        pick(i, self.ctxs.len()).map(|i| self.ctxs[i].clone())
    }

    fn derived(&mut self, c: Context, h: Option<CancelHandle>, rec: Rec) {
        let r = Ref::Own(self.recs.len());
        self.recs.push(rec);
        if let Some(h) = h {
            self.handles.push((h, r));
        }
        self.ctxs.push((c, r));
    }

    fn fresh_tag(&mut self) -> u32 {
        self.tag += 1;
        self.tag
    }

    fn apply(&mut self, clock: &Clock, op: &Op) {
        let dl = CauseTag::Default(ErrKind::DeadlineExceeded);
        let cn = CauseTag::Default(ErrKind::Canceled);
        match *op {
            Op::WithCancel { parent } | Op::WithCancelShared { parent } => {
                let Some((p, parent)) = self.ctx(parent) else {
                    return;
                };
                let (c, h) = cancel_child(op, &p);
                self.derived(c, Some(h), Rec::Cancel { parent, own: None });
            }
            Op::WithDeadline { parent, at, cause } => {
                let Some((p, parent)) = self.ctx(parent) else {
                    return;
                };
                let d = at.resolve(clock.now());
                let (c, h, t) = if cause {
                    let t = self.fresh_tag();
                    let (c, h) = p.with_deadline_cause(d, Tagged(t));
                    (c, h, CauseTag::Custom(t))
                } else {
                    let (c, h) = p.with_deadline(d);
                    (c, h, dl)
                };
                let own = Some((d, t));
                self.derived(c, Some(h), Rec::Cancel { parent, own });
            }
            Op::WithTimeout {
                parent,
                timeout,
                cause,
            } => {
                let Some((p, parent)) = self.ctx(parent) else {
                    return;
                };
                let dur = timeout.duration();
                // The deadline is read back: now() moves under our feet.
                let (c, h, t) = if cause {
                    let t = self.fresh_tag();
                    let (c, h) = p.with_timeout_cause(dur, Tagged(t));
                    (c, h, CauseTag::Custom(t))
                } else {
                    let (c, h) = p.with_timeout(dur);
                    (c, h, dl)
                };
                // Recorded as an own timer unless it is the parent's (a tie
                // or a huge timeout only widens what the check accepts).
                let own = c
                    .deadline()
                    .filter(|d| p.deadline().map_or(true, |pd| *d <= pd))
                    .map(|d| (d, t));
                self.derived(c, Some(h), Rec::Cancel { parent, own });
            }
            Op::WithValue { parent, key, value } => {
                let Some((p, parent)) = self.ctx(parent) else {
                    return;
                };
                let key = usize::from(key) % NKEYS;
                let c = with_value(&p, key, value);
                self.derived(c, None, Rec::Value { parent, key, value });
            }
            Op::WithoutCancel { parent } => {
                let Some((p, parent)) = self.ctx(parent) else {
                    return;
                };
                self.derived(p.without_cancel(), None, Rec::WithoutCancel { parent });
            }
            Op::Merge { a, b } => {
                let Some((ca, a)) = self.ctx(a) else { return };
                let Some((cb, b)) = self.ctx(b) else { return };
                let (c, h) = Context::merge(&ca, &cb);
                self.derived(c, Some(h), Rec::Merge { a, b });
            }
            Op::Clone { ctx } => {
                let Some(c) = self.ctx(ctx) else { return };
                self.ctxs.push(c);
            }
            Op::Cancel { handle, cause } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                let r = self.handles[i].1;
                if cause {
                    let t = self.fresh_tag();
                    self.handles[i].0.cancel_with_cause(Tagged(t));
                    self.cancels
                        .push((r, (ErrKind::Canceled, CauseTag::Custom(t))));
                } else {
                    self.handles[i].0.cancel();
                    self.cancels.push((r, (ErrKind::Canceled, cn)));
                }
            }
            Op::DropHandle { handle } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                let (h, r) = self.handles.swap_remove(i);
                drop(h);
                self.cancels.push((r, (ErrKind::Canceled, cn)));
            }
            Op::Detach { handle } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                self.handles.swap_remove(i).0.detach();
            }
            Op::DropContext { ctx } => {
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                drop(self.ctxs.swap_remove(i));
            }
            Op::AfterFunc { ctx } => {
                let Some((c, node)) = self.ctx(ctx) else {
                    return;
                };
                let runs = Arc::new(AtomicU32::new(0));
                let n = runs.clone();
                // Only a context done before the call promises a run at once:
                // one the other thread cancels meanwhile may be done with f
                // still waiting for that thread's drain to reach it.
                let was_done = c.is_done();
                let af = c.after_func(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                });
                if was_done {
                    assert_eq!(runs.load(Ordering::SeqCst), 1, "f did not run at once");
                }
                self.afters.push((af, self.cbs.len()));
                self.cbs.push(Cb {
                    node,
                    runs,
                    stop_true: false,
                    stop_false: false,
                });
            }
            Op::Stop { after } => {
                let Some(i) = pick(after, self.afters.len()) else {
                    return;
                };
                let (af, cb) = &self.afters[i];
                let cb = &mut self.cbs[*cb];
                if af.stop() {
                    assert_eq!(cb.runs.load(Ordering::SeqCst), 0, "stop() true after f ran");
                    cb.stop_true = true;
                } else {
                    cb.stop_false = true;
                }
            }
            Op::DropAfterFunc { after } => {
                let Some(i) = pick(after, self.afters.len()) else {
                    return;
                };
                drop(self.afters.swap_remove(i));
            }
            Op::Advance { by } => clock.advance(by.duration()),
            Op::Lookup { ctx, .. } => {
                let Some((c, r)) = self.ctx(ctx) else { return };
                if let Some(o) = observe(&c) {
                    self.seen.push((c, r, o));
                }
            }
            Op::PollDone { ctx } => {
                let Some((c, r)) = self.ctx(ctx) else { return };
                let (wakes, waker) = counting_waker();
                let mut done = c.done();
                let mut cx = std::task::Context::from_waker(&waker);
                match Pin::new(&mut done).poll(&mut cx) {
                    Poll::Ready(e) => {
                        let o = observe(&c).expect("Done ready but err() is None");
                        assert_eq!(crate::common::kind(e), o.0);
                    }
                    Poll::Pending => self.dones.push((done, r, wakes, waker)),
                }
            }
            Op::DropDone { done } => {
                let Some(i) = pick(done, self.dones.len()) else {
                    return;
                };
                drop(self.dones.swap_remove(i));
            }
            Op::WaitTimeoutZero { ctx } => {
                let Some((c, _)) = self.ctx(ctx) else { return };
                if let Some(e) = c.wait_timeout(std::time::Duration::ZERO) {
                    assert!(c.is_done(), "wait_timeout gave {e:?} but not done");
                }
            }
        }
    }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(a), Ok(b), Ok(c)) = (
        u.arbitrary::<u8>(),
        u.arbitrary::<u8>(),
        u.arbitrary::<u8>(),
    ) else {
        return;
    };
    let setup = decode(&mut u, usize::from(a % 64));
    let left = decode(&mut u, usize::from(b % 64));
    let right = decode(&mut u, usize::from(c % 64).max(1));
    run_input(&ThreadsInput { setup, left, right });
}

pub fn run_input(input: &ThreadsInput) {
    let mut h = Harness::new();
    h.check();
    for op in input.setup.iter().take(64) {
        h.apply(op);
        h.check();
    }
    let clock = h.clock.clone();

    // Split: both threads see every context; handles and registrations go
    // to one thread each.
    let mut workers = [Worker::default(), Worker::default()];
    let setup_cbs = h.counters.len();
    for (w, worker) in workers.iter_mut().enumerate() {
        worker.tag = 1_000_000 * (w as u32 + 1);
        worker.ctxs = h
            .ctxs
            .iter()
            .map(|(c, id)| (c.clone(), Ref::Setup(*id)))
            .collect();
        for (cb, counter) in h.counters.iter().enumerate() {
            // Worker 0 owns the setup callbacks' final bookkeeping.
            let c = &h.model.callbacks[cb];
            worker.cbs.push(Cb {
                node: Ref::Setup(c.node),
                runs: counter.clone(),
                stop_true: c.stopped && w == 0,
                stop_false: false,
            });
        }
    }
    for (i, (hd, id)) in h.handles.drain(..).enumerate() {
        workers[i % 2].handles.push((hd, Ref::Setup(id)));
    }
    for (i, (af, cb)) in h.afters.drain(..).enumerate() {
        workers[i % 2].afters.push((af, cb));
    }
    let setup_ctxs = std::mem::take(&mut h.ctxs);

    let barrier = Arc::new(Barrier::new(2));
    let [mut w0, mut w1] = workers;
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    let right: Vec<Op> = input.right.iter().take(128).cloned().collect();
    let (b, c) = (barrier.clone(), clock.clone());
    second_thread(Box::new(move || {
        b.wait();
        for op in &right {
            w1.apply(&c, op);
        }
        let _ = done.send(w1);
    }));
    barrier.wait();
    for op in input.left.iter().take(128) {
        w0.apply(&clock, op);
    }
    let w1 = finished.recv().expect("right thread panicked");

    final_check(&mut h, setup_ctxs, setup_cbs, [w0, w1]);
}

/// Runs `job` on the target's second thread: one thread for the whole
/// campaign, parked between inputs. Spawning a thread per input was most of
/// an execution's time (its stack's page faults, clone and munmap).
fn second_thread(job: Box<dyn FnOnce() + Send>) {
    type Jobs = std::sync::Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>;
    static JOBS: std::sync::OnceLock<Jobs> = std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("threads-right".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("cannot start the second thread");
        std::sync::Mutex::new(tx)
    });
    jobs.lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .expect("the second thread is gone");
}

fn final_check(
    h: &mut Harness,
    setup_ctxs: Vec<(Context, NodeId)>,
    setup_cbs: usize,
    workers: [Worker; 2],
) {
    let model = &mut h.model;
    let setup_nodes = model.nodes.len();
    let now = h.clock.now();

    // Rebuild the shape of every node in one model (ids stay topological:
    // setup nodes, then worker 0's, then worker 1's).
    let mut ids: [Vec<NodeId>; 2] = [vec![], vec![]];
    for (w, worker) in workers.iter().enumerate() {
        for rec in &worker.recs {
            let id_of = |r: &Ref| match r {
                Ref::Setup(n) => *n,
                Ref::Own(k) => ids[w][*k],
            };
            let id = match rec {
                Rec::Cancel { parent, own } => model.derive_cancel(id_of(parent), *own),
                Rec::Value { parent, key, value } => {
                    model.derive_value(id_of(parent), *key, *value)
                }
                Rec::WithoutCancel { parent } => model.derive_without_cancel(id_of(parent)),
                Rec::Merge { a, b } => model.merge(id_of(a), id_of(b)),
            };
            ids[w].push(id);
        }
    }
    let id = |w: usize, r: Ref| match r {
        Ref::Setup(n) => n,
        Ref::Own(k) => ids[w][k],
    };

    // What can be seen at the end.
    let mut obs: HashMap<NodeId, Option<Outcome>> = HashMap::new();
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut ctxs: Vec<(Context, NodeId)> = setup_ctxs;
    for (w, worker) in workers.iter().enumerate() {
        ctxs.extend(worker.ctxs.iter().map(|(c, r)| (c.clone(), id(w, *r))));
        live.extend(worker.handles.iter().map(|(_, r)| id(w, *r)));
        live.extend(worker.dones.iter().map(|d| id(w, d.1)));
    }
    for (c, n) in &ctxs {
        live.insert(*n);
        let o = observe(c);
        if let Some(prev) = obs.insert(*n, o) {
            assert_eq!(prev, o, "two contexts of node {n} disagree");
        }
        // (1) shape.
        let node = &model.nodes[*n];
        assert_eq!(c.deadline(), node.deadline, "node {n} deadline");
        for k in 0..NKEYS {
            assert_eq!(
                crate::common::lookup(c, k),
                node.values[k],
                "node {n} key {k}"
            );
        }
    }

    // Direct cancels by either thread.
    let mut direct: HashMap<NodeId, Vec<Outcome>> = HashMap::new();
    for (w, worker) in workers.iter().enumerate() {
        for (r, o) in &worker.cancels {
            direct.entry(id(w, *r)).or_default().push(*o);
        }
    }

    // (2)-(4): what each node may be, in topological order.
    let mut possible: Vec<Option<HashSet<Outcome>>> = vec![None; model.nodes.len()];
    for n in 0..model.nodes.len() {
        let node = &model.nodes[n];
        let mut set: HashSet<Outcome> = HashSet::new();
        let mut must_be_done = false;
        if n < setup_nodes {
            if let Some(s) = &node.done {
                set.extend(s.iter().copied());
                must_be_done = true;
            }
        }
        if let Some(d) = direct.get(&n) {
            set.extend(d.iter().copied());
            must_be_done = true;
        }
        if let Some((d, cause)) = node.own_timer {
            if d <= now {
                set.insert((ErrKind::DeadlineExceeded, cause));
                must_be_done = true;
            }
        }
        for p in &node.parents {
            if let Some(ps) = &possible[*p] {
                set.extend(ps.iter().copied());
                if obs.get(p).is_some_and(|o| o.is_some()) {
                    must_be_done = true;
                }
            }
        }
        match obs.get(&n) {
            Some(Some(o)) => {
                assert!(
                    set.contains(o),
                    "node {n} ({:?}) is {o:?}, but only {set:?} can explain it",
                    node.kind
                );
                possible[n] = Some(HashSet::from([*o]));
            }
            Some(None) => {
                assert!(
                    !must_be_done,
                    "node {n} ({:?}) should be done: {set:?}",
                    node.kind
                );
                assert!(
                    node.deadline.map_or(true, |d| d > now) || node.kind == Kind::WithoutCancel,
                    "node {n}: deadline passed but not done"
                );
                possible[n] = None;
            }
            None => possible[n] = (!set.is_empty()).then_some(set),
        }
    }

    // (5) nothing seen done ever changed.
    for worker in &workers {
        for (c, _, o) in &worker.seen {
            assert_eq!(observe(c), Some(*o), "err/cause changed after it was seen");
        }
    }

    // (6) callbacks and waiters.
    let mut live_nodes = vec![false; model.nodes.len()];
    for &n in &live {
        live_nodes[n] = true;
    }
    let live_below = model.live_below(&live_nodes);
    let reachable_live = |n: NodeId| live_below[n];
    let mut stop_true: HashSet<*const AtomicU32> = HashSet::new();
    let mut stop_false: HashSet<*const AtomicU32> = HashSet::new();
    for worker in &workers {
        for cb in &worker.cbs {
            if cb.stop_true {
                stop_true.insert(Arc::as_ptr(&cb.runs));
            }
            if cb.stop_false {
                stop_false.insert(Arc::as_ptr(&cb.runs));
            }
        }
    }
    for (w, worker) in workers.iter().enumerate() {
        for (i, cb) in worker.cbs.iter().enumerate() {
            if w == 1 && i < setup_cbs {
                continue; // worker 0's copy covers it
            }
            let n = id(w, cb.node);
            let runs = cb.runs.load(Ordering::SeqCst);
            assert!(runs <= 1, "callback on node {n} ran {runs} times");
            if stop_true.contains(&Arc::as_ptr(&cb.runs)) {
                assert_eq!(
                    runs, 0,
                    "callback on node {n} ran after stop() returned true"
                );
                continue;
            }
            match obs.get(&n) {
                Some(Some(_)) => assert_eq!(runs, 1, "node {n} done but its f did not run"),
                Some(None) => {
                    assert_eq!(runs, 0, "node {n} not done but its f ran");
                    assert!(
                        !stop_false.contains(&Arc::as_ptr(&cb.runs)),
                        "stop() false on node {n} that is not done"
                    );
                }
                None if reachable_live(n) && possible[n].is_none() => {
                    assert_eq!(runs, 0, "f ran on node {n} that cannot be done")
                }
                None => {}
            }
        }
    }
    for (w, worker) in workers.into_iter().enumerate() {
        for (mut done, r, wakes, waker) in worker.dones {
            let n = id(w, r);
            let Some(o) = obs.get(&n).copied().flatten() else {
                continue;
            };
            assert!(
                wakes.0.load(Ordering::SeqCst) > 0,
                "Done of node {n} never woken"
            );
            let mut cx = std::task::Context::from_waker(&waker);
            match Pin::new(&mut done).poll(&mut cx) {
                Poll::Ready(e) => assert_eq!(crate::common::kind(e), o.0),
                Poll::Pending => panic!("Done of done node {n} still pending"),
            }
        }
    }
}
