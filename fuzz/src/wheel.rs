//! `wheel`: deadlines armed on a manual clock, cancelled and fired, against
//! a `BTreeMap` of pending deadlines. Every timer fires exactly once, never
//! early, earliest first; `err()` flips exactly when the model says.

use crate::common::{decode, observe, pick, At, Step, Tagged};
use crate::model::{CauseTag, ErrKind};
use arbitrary::{Arbitrary, Unstructured};
use gocontext::{AfterFunc, CancelHandle, Clock, Context};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Arbitrary, Debug, Clone)]
pub enum WheelOp {
    Arm { at: At, cause: bool },
    ArmTimeout { us: u32 },
    Cancel { timer: u8 },
    DropContext { timer: u8 },
    Detach { timer: u8 },
    Advance { by: Step },
    AdvanceTo { timer: u8, nanos_before: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Fired,
    Cancelled,
}

struct Timer {
    ctx: Option<Context>,
    handle: Option<CancelHandle>,
    _after: AfterFunc,
    deadline: Instant,
    cause: CauseTag,
    state: State,
    runs: Arc<AtomicU32>,
    /// Seen in its final state (fired or cancelled), which never changes:
    /// `check` then only counts its runs, until the final full check.
    settled: bool,
}

struct Wheel {
    clock: Clock,
    root: Context,
    now: Instant,
    timers: Vec<Timer>,
    /// The model: pending deadlines in firing order.
    pending: BTreeMap<(Instant, usize), ()>,
    /// What the callbacks saw, in the order they ran.
    log: Arc<Mutex<Vec<usize>>>,
    /// Timers whose context and handle are both gone: they may be freed
    /// without firing (semantics 10, docs/semantics.md), so only "at most once" applies.
    orphans: Vec<bool>,
}

impl Wheel {
    fn new() -> Self {
        let clock = Clock::manual();
        let root = clock.background();
        let now = clock.now();
        Wheel {
            clock,
            root,
            now,
            timers: vec![],
            pending: BTreeMap::new(),
            log: Arc::new(Mutex::new(vec![])),
            orphans: Vec::new(),
        }
    }

    fn arm(&mut self, deadline: Instant, ctx: Context, handle: CancelHandle, cause: CauseTag) {
        let i = self.timers.len();
        let runs = Arc::new(AtomicU32::new(0));
        let (r, log) = (runs.clone(), self.log.clone());
        let after = ctx.after_func(move || {
            r.fetch_add(1, Ordering::SeqCst);
            log.lock().unwrap().push(i);
        });
        let state = if deadline <= self.now {
            State::Fired
        } else {
            self.pending.insert((deadline, i), ());
            State::Pending
        };
        self.timers.push(Timer {
            ctx: Some(ctx),
            handle: Some(handle),
            _after: after,
            deadline,
            cause,
            state,
            runs,
            settled: false,
        });
        self.orphans.push(false);
        if state == State::Fired {
            // Done at once: f ran on this thread during after_func.
            assert_eq!(self.log.lock().unwrap().pop(), Some(i));
        }
    }

    fn apply(&mut self, op: &WheelOp) {
        match *op {
            WheelOp::Arm { at, cause } => {
                let d = at.resolve(self.clock.now());
                let i = self.timers.len() as u32;
                let (c, h, t) = if cause {
                    let (c, h) = self.root.with_deadline_cause(d, Tagged(i));
                    (c, h, CauseTag::Custom(i))
                } else {
                    let (c, h) = self.root.with_deadline(d);
                    (c, h, CauseTag::Default(ErrKind::DeadlineExceeded))
                };
                self.arm(d, c, h, t);
            }
            WheelOp::ArmTimeout { us } => {
                let dur = Duration::from_micros(u64::from(us % 50_000_000));
                let (c, h) = self.root.with_timeout(dur);
                let d = self.now + dur;
                self.arm(d, c, h, CauseTag::Default(ErrKind::DeadlineExceeded));
            }
            WheelOp::Cancel { timer } => {
                let Some(i) = pick(timer, self.timers.len()) else {
                    return;
                };
                let t = &mut self.timers[i];
                let Some(h) = &t.handle else { return };
                h.cancel();
                if t.state == State::Pending {
                    t.state = State::Cancelled;
                    self.pending.remove(&(t.deadline, i));
                    assert_eq!(self.log.lock().unwrap().pop(), Some(i), "cancel ran f");
                }
            }
            WheelOp::DropContext { timer } => {
                let Some(i) = pick(timer, self.timers.len()) else {
                    return;
                };
                self.timers[i].ctx = None;
                self.orphan_check(i);
            }
            WheelOp::Detach { timer } => {
                let Some(i) = pick(timer, self.timers.len()) else {
                    return;
                };
                if let Some(h) = self.timers[i].handle.take() {
                    h.detach();
                }
                self.orphan_check(i);
            }
            WheelOp::Advance { by } => self.advance_to(self.now + by.duration()),
            WheelOp::AdvanceTo {
                timer,
                nanos_before,
            } => {
                // Land exactly on (or just before) a pending deadline.
                let Some(i) = pick(timer, self.pending.len()) else {
                    return;
                };
                let (d, _) = *self.pending.keys().nth(i).unwrap();
                let to = d - Duration::from_nanos(u64::from(nanos_before % 4));
                if to >= self.now {
                    self.advance_to(to);
                }
            }
        }
    }

    fn orphan_check(&mut self, i: usize) {
        let t = &self.timers[i];
        if t.ctx.is_none() && t.handle.is_none() {
            self.orphans[i] = true;
        }
    }

    fn advance_to(&mut self, to: Instant) {
        self.clock.advance(to - self.now);
        self.now = to;
        assert_eq!(self.clock.now(), to, "clock.now() after advance");
        let mut due = vec![];
        while let Some(((d, i), ())) = self.pending.pop_first() {
            if d > to {
                self.pending.insert((d, i), ());
                break;
            }
            self.timers[i].state = State::Fired;
            due.push(i);
        }
        let log: Vec<usize> = std::mem::take(&mut *self.log.lock().unwrap());
        let kept: Vec<usize> = log.iter().copied().filter(|i| !self.orphans[*i]).collect();
        let want: Vec<usize> = due.iter().copied().filter(|i| !self.orphans[*i]).collect();
        // Earliest first; timers due at the same instant in any order.
        let mut sorted_kept = kept.clone();
        sorted_kept.sort_by_key(|i| (self.timers[*i].deadline, *i));
        assert_eq!(sorted_kept, want, "timers fired by advance (log {log:?})");
        for w in kept.windows(2) {
            assert!(
                self.timers[w[0]].deadline <= self.timers[w[1]].deadline,
                "timer {} fired before the earlier timer {}",
                w[0],
                w[1]
            );
        }
        for i in &log {
            assert!(due.contains(i), "timer {i} fired but was not due");
        }
    }

    fn check(&mut self) {
        self.check_with(false);
    }

    fn check_with(&mut self, all: bool) {
        for (i, t) in self.timers.iter_mut().enumerate() {
            let runs = t.runs.load(Ordering::SeqCst);
            if self.orphans[i] {
                assert!(runs <= u32::from(t.state != State::Pending), "timer {i}");
            } else {
                assert_eq!(runs, u32::from(t.state != State::Pending), "timer {i} runs");
            }
            let Some(c) = &t.ctx else { continue };
            if t.settled && !all {
                continue;
            }
            t.settled = t.state != State::Pending;
            let want = match t.state {
                State::Pending => None,
                State::Fired => Some((ErrKind::DeadlineExceeded, t.cause)),
                State::Cancelled => Some((ErrKind::Canceled, CauseTag::Default(ErrKind::Canceled))),
            };
            assert_eq!(observe(c), want, "timer {i} at {:?}", t.deadline);
            assert_eq!(c.deadline(), Some(t.deadline), "timer {i} deadline");
        }
    }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let ops: Vec<WheelOp> = decode(&mut Unstructured::new(data), 512);
    let mut w = Wheel::new();
    for op in &ops {
        w.apply(op);
        w.check();
    }
    // Everything still pending fires once the clock has passed it.
    if let Some((&(last, _), ())) = w.pending.last_key_value() {
        w.advance_to(last);
        assert!(w.pending.is_empty());
    }
    w.check_with(true);
}
