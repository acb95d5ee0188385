//! `tree_ops`: random operation sequences on one tree, run on gocontext and
//! on the reference model in lock-step; after every step every live
//! context's err, cause, deadline and values, every callback's run count and
//! every pending `Done` future must agree with the model.

use crate::common::decode;
use crate::common::{
    counting_waker, lookup, observe, pick, tag, with_value, At, CountingWaker, Step, Tagged,
    Timeout,
};
use crate::model::{CauseTag, CbId, ErrKind, Model, NodeId, NKEYS};
use arbitrary::{Arbitrary, Unstructured};
use gocontext::{AfterFunc, CancelHandle, Clock, Context, Done};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// One step. Indices pick `i % len` among the live objects of that kind.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    WithCancel {
        parent: u8,
    },
    /// `with_cancel_shared`: a hub with a child list per shard; the model
    /// sees a plain cancellable node (the two differ in nothing else).
    WithCancelShared {
        parent: u8,
    },
    WithDeadline {
        parent: u8,
        at: At,
        cause: bool,
    },
    WithTimeout {
        parent: u8,
        timeout: Timeout,
        cause: bool,
    },
    WithValue {
        parent: u8,
        key: u8,
        value: u32,
    },
    WithoutCancel {
        parent: u8,
    },
    Merge {
        a: u8,
        b: u8,
    },
    Clone {
        ctx: u8,
    },
    Cancel {
        handle: u8,
        cause: bool,
    },
    DropHandle {
        handle: u8,
    },
    Detach {
        handle: u8,
    },
    DropContext {
        ctx: u8,
    },
    AfterFunc {
        ctx: u8,
    },
    Stop {
        after: u8,
    },
    DropAfterFunc {
        after: u8,
    },
    Advance {
        by: Step,
    },
    Lookup {
        ctx: u8,
        key: u8,
    },
    PollDone {
        ctx: u8,
    },
    DropDone {
        done: u8,
    },
    WaitTimeoutZero {
        ctx: u8,
    },
}

/// The child a `WithCancel` or `WithCancelShared` op derives from `p`.
pub fn cancel_child(op: &Op, p: &Context) -> (Context, CancelHandle) {
    match op {
        Op::WithCancelShared { .. } => p.with_cancel_shared(),
        _ => p.with_cancel(),
    }
}

/// Most contexts a run keeps at once (further derivations are skipped).
const MAX_CTXS: usize = 200;
const MAX_DONES: usize = 32;

struct PendingDone {
    done: Done,
    node: NodeId,
    wakes: Arc<CountingWaker>,
    waker: Waker,
}

/// gocontext and the model side by side.
pub struct Harness {
    pub clock: Clock,
    pub model: Model,
    pub ctxs: Vec<(Context, NodeId)>,
    pub handles: Vec<(CancelHandle, NodeId)>,
    pub afters: Vec<(AfterFunc, CbId)>,
    /// Per callback id: how many times gocontext ran f.
    pub counters: Vec<Arc<AtomicU32>>,
    dones: Vec<PendingDone>,
    pub next_tag: u32,
    /// Something that keeps nodes alive was let go of since the last
    /// `update_orphans`: only then can a callback become orphaned.
    let_go: bool,
    /// Per node: seen done with the model's one outcome. Done never
    /// changes, so `check` skips it until the final full check.
    settled: Vec<bool>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        let clock = Clock::manual();
        let root = clock.background();
        let model = Model::new(clock.now());
        Harness {
            clock,
            model,
            ctxs: vec![(root, 0)],
            handles: vec![],
            afters: vec![],
            counters: vec![],
            dones: vec![],
            next_tag: 0,
            let_go: false,
            settled: Vec::new(),
        }
    }

    pub fn fresh_tag(&mut self) -> u32 {
        self.next_tag += 1;
        self.next_tag
    }

    fn ctx(&self, i: u8) -> Option<(Context, NodeId)> {
        if self.ctxs.len() >= MAX_CTXS {
            return None;
        }
        pick(i, self.ctxs.len()).map(|i| self.ctxs[i].clone())
    }

    /// Records a new context. Values never change once a context exists,
    /// so they are compared with the model here, at `Lookup` ops and at the
    /// end, not after every step (that was most of a run's time).
    fn derived(&mut self, c: Context, h: Option<CancelHandle>, id: NodeId) {
        self.check_values(&c, id);
        if let Some(h) = h {
            self.handles.push((h, id));
        }
        self.ctxs.push((c, id));
    }

    /// Applies one op to both sides (without checking).
    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::WithCancel { parent } | Op::WithCancelShared { parent } => {
                let Some((p, pid)) = self.ctx(parent) else {
                    return;
                };
                let (c, h) = cancel_child(op, &p);
                let id = self.model.derive_cancel(pid, None);
                self.derived(c, Some(h), id);
            }
            Op::WithDeadline { parent, at, cause } => {
                let Some((p, pid)) = self.ctx(parent) else {
                    return;
                };
                let d = at.resolve(self.clock.now());
                let (c, h, t) = if cause {
                    let t = self.fresh_tag();
                    let (c, h) = p.with_deadline_cause(d, Tagged(t));
                    (c, h, CauseTag::Custom(t))
                } else {
                    let (c, h) = p.with_deadline(d);
                    (c, h, CauseTag::Default(ErrKind::DeadlineExceeded))
                };
                let id = self.model.derive_cancel(pid, Some((d, t)));
                self.derived(c, Some(h), id);
            }
            Op::WithTimeout {
                parent,
                timeout,
                cause,
            } => {
                let Some((p, pid)) = self.ctx(parent) else {
                    return;
                };
                let dur = timeout.duration();
                let d = self.clock.now().checked_add(dur);
                let (c, h, t) = if cause {
                    let t = self.fresh_tag();
                    let (c, h) = p.with_timeout_cause(dur, Tagged(t));
                    (c, h, CauseTag::Custom(t))
                } else {
                    let (c, h) = p.with_timeout(dur);
                    (c, h, CauseTag::Default(ErrKind::DeadlineExceeded))
                };
                let id = self.model.derive_cancel(pid, d.map(|d| (d, t)));
                self.derived(c, Some(h), id);
            }
            Op::WithValue { parent, key, value } => {
                let Some((p, pid)) = self.ctx(parent) else {
                    return;
                };
                let k = usize::from(key) % NKEYS;
                let c = with_value(&p, k, value);
                let id = self.model.derive_value(pid, k, value);
                self.derived(c, None, id);
            }
            Op::WithoutCancel { parent } => {
                let Some((p, pid)) = self.ctx(parent) else {
                    return;
                };
                let c = p.without_cancel();
                let id = self.model.derive_without_cancel(pid);
                self.derived(c, None, id);
            }
            Op::Merge { a, b } => {
                let Some((a, aid)) = self.ctx(a) else { return };
                let Some((b, bid)) = self.ctx(b) else { return };
                let (c, h) = Context::merge(&a, &b);
                let id = self.model.merge(aid, bid);
                self.derived(c, Some(h), id);
            }
            Op::Clone { ctx } => {
                let Some((c, id)) = self.ctx(ctx) else { return };
                self.ctxs.push((c.clone(), id));
            }
            Op::Cancel { handle, cause } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                let id = self.handles[i].1;
                if cause {
                    let t = self.fresh_tag();
                    self.handles[i].0.cancel_with_cause(Tagged(t));
                    self.model
                        .cancel(id, ErrKind::Canceled, CauseTag::Custom(t));
                } else {
                    self.handles[i].0.cancel();
                    self.model
                        .cancel(id, ErrKind::Canceled, CauseTag::Default(ErrKind::Canceled));
                }
            }
            Op::DropHandle { handle } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                let (h, id) = self.handles.swap_remove(i);
                self.let_go = true;
                drop(h);
                self.model
                    .cancel(id, ErrKind::Canceled, CauseTag::Default(ErrKind::Canceled));
            }
            Op::Detach { handle } => {
                let Some(i) = pick(handle, self.handles.len()) else {
                    return;
                };
                let (h, _) = self.handles.swap_remove(i);
                self.let_go = true;
                h.detach();
            }
            Op::DropContext { ctx } => {
                // Slot 0 is the root; it stays so that the run can go on.
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                if i != 0 {
                    self.let_go = true;
                    drop(self.ctxs.swap_remove(i));
                }
            }
            Op::AfterFunc { ctx } => {
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                let (c, id) = self.ctxs[i].clone();
                let counter = Arc::new(AtomicU32::new(0));
                let n = counter.clone();
                let af = c.after_func(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                });
                let cb = self.model.after_func(id);
                debug_assert_eq!(cb, self.counters.len());
                self.counters.push(counter);
                self.afters.push((af, cb));
            }
            Op::Stop { after } => {
                let Some(i) = pick(after, self.afters.len()) else {
                    return;
                };
                let cb = self.afters[i].1;
                let stopped = self.afters[i].0.stop();
                self.update_orphans();
                let ran = self.counters[cb].load(Ordering::SeqCst);
                let c = self.model.callbacks[cb].clone();
                if c.orphaned {
                    if stopped {
                        assert_eq!(ran, 0, "stop() returned true after f ran");
                    }
                    // Unless f already ran, it must never run now: stop()
                    // prevented it, or f was discarded with its subtree.
                    if stopped || ran == 0 {
                        self.model.callbacks[cb].stopped = true;
                    }
                } else {
                    let want = self.model.stop(cb);
                    assert_eq!(stopped, want, "stop() on callback {cb} ({c:?})");
                }
            }
            Op::DropAfterFunc { after } => {
                let Some(i) = pick(after, self.afters.len()) else {
                    return;
                };
                drop(self.afters.swap_remove(i));
            }
            Op::Advance { by } => {
                let d = by.duration();
                self.clock.advance(d);
                let to = self.model.now + d;
                self.model.advance(to);
                assert_eq!(
                    self.clock.now(),
                    self.model.now,
                    "clock.now() after advance"
                );
            }
            Op::Lookup { ctx, key } => {
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                let (c, id) = &self.ctxs[i];
                let k = usize::from(key) % NKEYS;
                assert_eq!(lookup(c, k), self.model.nodes[*id].values[k]);
            }
            Op::PollDone { ctx } => {
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                if self.dones.len() >= MAX_DONES {
                    return;
                }
                let (c, id) = &self.ctxs[i];
                let (wakes, waker) = counting_waker();
                let mut done = c.done();
                let want = self.model.nodes[*id].done.clone();
                match Pin::new(&mut done).poll(&mut std::task::Context::from_waker(&waker)) {
                    Poll::Ready(e) => {
                        let set = want.expect("Done ready on a context that is not done");
                        assert!(set.iter().any(|o| o.0 == crate::common::kind(e)));
                    }
                    Poll::Pending => {
                        assert!(want.is_none(), "Done pending on a done context");
                        self.dones.push(PendingDone {
                            done,
                            node: *id,
                            wakes,
                            waker,
                        });
                    }
                }
            }
            Op::DropDone { done } => {
                let Some(i) = pick(done, self.dones.len()) else {
                    return;
                };
                self.let_go = true;
                drop(self.dones.swap_remove(i));
            }
            Op::WaitTimeoutZero { ctx } => {
                let Some(i) = pick(ctx, self.ctxs.len()) else {
                    return;
                };
                let (c, id) = &self.ctxs[i];
                let got = c.wait_timeout(Duration::ZERO);
                let want = self.model.nodes[*id].done.clone();
                match (got, want) {
                    (None, None) => {}
                    (Some(e), Some(set)) => {
                        assert!(set.iter().any(|o| o.0 == crate::common::kind(e)))
                    }
                    (g, w) => panic!("wait_timeout(0) gave {g:?}, model {w:?}"),
                }
            }
        }
    }

    /// Live references per node: contexts, handles and pending `Done`s.
    fn live(&self) -> Vec<bool> {
        let mut live = vec![false; self.model.nodes.len()];
        for (_, id) in &self.ctxs {
            live[*id] = true;
        }
        for (_, id) in &self.handles {
            live[*id] = true;
        }
        for d in &self.dones {
            live[d.node] = true;
        }
        live
    }

    /// A callback whose node's subtree has lost every context, handle and
    /// `Done` may be discarded unrun (semantics 10 frees such a subtree);
    /// the harness then only requires "at most once, never early".
    pub fn update_orphans(&mut self) {
        self.let_go = false;
        let live = self.model.live_below(&self.live());
        for cb in 0..self.model.callbacks.len() {
            let c = &self.model.callbacks[cb];
            if c.orphaned || c.runs > 0 || c.stopped {
                continue;
            }
            if !live[c.node] {
                self.model.callbacks[cb].orphaned = true;
            }
        }
    }

    /// Compares a context's values with the model's.
    fn check_values(&self, c: &Context, id: NodeId) {
        for k in 0..NKEYS {
            assert_eq!(
                lookup(c, k),
                self.model.nodes[id].values[k],
                "node {id} key {k}"
            );
        }
    }

    /// Compares everything observable with the model, values excepted
    /// (see `derived`; `finish` compares them too), and contexts already
    /// seen done (see `settled`).
    pub fn check(&mut self) {
        self.check_with(false)
    }

    fn check_with(&mut self, all: bool) {
        self.settled.resize(self.model.nodes.len(), false);
        for i in 0..self.ctxs.len() {
            let (c, id) = (&self.ctxs[i].0, self.ctxs[i].1);
            if self.settled[id] && !all {
                continue;
            }
            let seen = observe(c);
            match (seen, &self.model.nodes[id].done) {
                (None, None) => {}
                (Some(o), Some(_)) => assert!(
                    self.model.resolve(id, o),
                    "node {id}: gocontext says {o:?}, model {:?}",
                    self.model.nodes[id].done
                ),
                (s, m) => panic!("node {id}: gocontext says {s:?}, model {m:?}"),
            }
            let n = &self.model.nodes[id];
            assert_eq!(c.deadline(), n.deadline, "node {id} deadline");
            self.settled[id] = n.done.as_ref().is_some_and(|set| set.len() == 1);
        }
        if self.let_go {
            self.update_orphans();
        }
        for (cb, counter) in self.counters.iter().enumerate() {
            let ran = counter.load(Ordering::SeqCst);
            let c = &self.model.callbacks[cb];
            if c.orphaned {
                assert!(ran <= c.runs, "orphaned callback {cb} ran early: {c:?}");
            } else {
                assert_eq!(ran, c.runs, "callback {cb} run count ({c:?})");
            }
        }
        let mut i = 0;
        while i < self.dones.len() {
            let d = &mut self.dones[i];
            let want = self.model.nodes[d.node].done.clone();
            if want.is_some() {
                assert!(
                    d.wakes.0.load(Ordering::SeqCst) > 0,
                    "node {} done but its Done waiter was not woken",
                    d.node
                );
            }
            let mut cx = std::task::Context::from_waker(&d.waker);
            match (Pin::new(&mut d.done).poll(&mut cx), want) {
                (Poll::Pending, None) => i += 1,
                (Poll::Ready(e), Some(set)) => {
                    assert!(set.iter().any(|o| o.0 == crate::common::kind(e)));
                    self.let_go = true;
                    drop(self.dones.swap_remove(i));
                }
                (p, w) => panic!("Done of node {} polled {p:?}, model {w:?}", d.node),
            }
        }
    }

    /// Drops every handle (each cancels), checking after each (a drop can
    /// orphan another subtree's callbacks), then drops the rest.
    pub fn finish(mut self) {
        while let Some((h, id)) = self.handles.pop() {
            drop(h);
            // The drop may have let the engine free a subtree (semantics 10)
            // before the model cancels anything: mark its callbacks now.
            self.update_orphans();
            self.model
                .cancel(id, ErrKind::Canceled, CauseTag::Default(ErrKind::Canceled));
            self.check();
        }
        self.check_with(true);
        for (c, id) in &self.ctxs {
            self.check_values(c, *id);
        }
        for (c, _) in &self.ctxs {
            if let Some(cause) = c.cause() {
                let _ = tag(&cause);
            }
        }
    }
}

/// The fuzz entry point: decode ops, run them, check after each.
pub fn run(data: &[u8]) {
    let ops: Vec<Op> = decode(&mut Unstructured::new(data), 1024);
    let mut h = Harness::new();
    h.check();
    for op in &ops {
        h.apply(op);
        h.check();
    }
    h.finish();
}
