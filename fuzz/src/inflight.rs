//! `inflight`: a fuzz target written the way a gocontext user writes one
//! against their own code (docs/fuzzing.md). The code under test is this
//! module's [`InFlight`], an application's count of requests in flight;
//! gocontext's `fuzz` module (feature `arbitrary`) turns the input into the
//! context tree the requests run under.

use arbitrary::Arbitrary;
use gocontext::fuzz::{Op, Tree};
use gocontext::{AfterFunc, Context};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The application's code: counts requests whose context is not done yet.
/// A request counts from `track` until its context is done, through an
/// `after_func` that runs on the cancelling thread.
#[derive(Debug, Default)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    registrations: Vec<AfterFunc>,
}

impl InFlight {
    /// Starts counting the request that runs under `ctx`.
    pub fn track(&mut self, ctx: &Context) {
        // Relaxed: a counter; the test reads it on the same thread.
        self.count.fetch_add(1, Ordering::Relaxed);
        let count = self.count.clone();
        let done = ctx.after_func(move || {
            count.fetch_sub(1, Ordering::Relaxed);
        });
        self.registrations.push(done);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// One step of the input: a step on the tree, or the application's own.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// Grow, cancel or release part of the tree, or move its clock.
    Tree(Op),
    /// A request starts under the context of node `i`.
    Track(u8),
}

/// The most steps one input runs (longer inputs add nothing new).
const MAX_STEPS: usize = 256;

/// Runs `steps`, checking after each one the tree (gocontext's own
/// guarantees) and the application's invariant: the in-flight count is the
/// number of tracked requests whose context is not done.
pub fn run(steps: &[Step]) {
    let mut tree = Tree::new();
    let mut app = InFlight::default();
    let mut requests: Vec<Context> = Vec::new();
    for step in steps.iter().take(MAX_STEPS) {
        match step {
            Step::Tree(op) => tree.apply(*op),
            Step::Track(i) => {
                if let Some(ctx) = tree.context(*i) {
                    app.track(ctx);
                    requests.push(ctx.clone());
                }
            }
        }
        tree.check();
        check(&app, &requests);
    }
    tree.settle();
    tree.check();
    check(&app, &requests);
}

fn check(app: &InFlight, requests: &[Context]) {
    let live = requests.iter().filter(|c| !c.is_done()).count();
    assert_eq!(app.in_flight(), live, "in-flight count is off");
}
