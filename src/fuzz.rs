//! Driving a context tree from fuzz input (cargo feature `arbitrary`).
//!
//! A fuzz target of an application that uses gocontext needs the tree its
//! code runs under to be part of the input: which contexts exist, which
//! are cancelled (with which cause), which deadlines have passed. This
//! module gives it that without writing a harness: [`Op`] is one step on a
//! tree, derived from input bytes with [`arbitrary`]; [`Tree`] applies
//! steps to a real gocontext tree on a [manual clock](crate::Clock::manual)
//! (so runs are deterministic and time costs nothing), hands out its
//! contexts to the code under test, and [`Tree::check`] asserts Go's
//! guarantees over the whole tree (a panic, which the fuzzer reports).
//! [`Error`] implements [`Arbitrary`] too.
//!
//! ```
//! use arbitrary::{Arbitrary, Unstructured};
//! use gocontext::fuzz::{Op, Tree};
//!
//! let input = [3u8, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4];
//! let ops = Vec::<Op>::arbitrary_take_rest(Unstructured::new(&input)).unwrap();
//! let mut tree = Tree::new();
//! for op in ops {
//!     tree.apply(op);
//!     tree.check();
//!     // ... call the code under test with `tree.context(i)` here ...
//! }
//! tree.settle(); // step through every pending deadline
//! tree.check();
//! ```

use arbitrary::{Arbitrary, Unstructured};

use crate::{CancelHandle, Clock, Context, Error};

/// The most contexts one [`Tree`] grows to; later derives are ignored, so
/// that a long input cannot make a run slow.
pub const MAX_NODES: usize = 64;

impl<'a> Arbitrary<'a> for Error {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if bool::arbitrary(u)? {
            Error::DeadlineExceeded
        } else {
            Error::Canceled
        })
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        bool::size_hint(depth)
    }
}

/// How a new context derives from its parent.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derive {
    /// [`Context::with_cancel`].
    Cancel,
    /// [`Context::with_timeout`] of this many milliseconds.
    Timeout(u8),
    /// [`Context::with_timeout_cause`] of this many milliseconds, with the
    /// cause reported when it fires.
    TimeoutCause(u8, Error),
    /// [`Context::without_cancel`].
    WithoutCancel,
    /// [`Context::merge`] with a second parent (an index, as in [`Op`]).
    Merge(u8),
    /// [`Context::with_cancel_shared`].
    Shared,
}

/// One step on a [`Tree`]. A node index `i` picks node `i % len`; node 0 is
/// the root.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Derives a new context from `parent` (ignored at [`MAX_NODES`]).
    Derive {
        /// The parent's index.
        parent: u8,
        /// How.
        how: Derive,
    },
    /// Cancels a node through its handle, with an `Error` as the cause if
    /// one is given. Nothing for the root or a released handle.
    Cancel {
        /// The node's index.
        node: u8,
        /// The cause to cancel with, if any.
        cause: Option<Error>,
    },
    /// Gives up a node's handle: dropped (which cancels) or detached (which
    /// does not).
    Release {
        /// The node's index.
        node: u8,
        /// Detach instead of dropping.
        detach: bool,
    },
    /// Forgets a node's context (the tree's clone of it); its handle, if
    /// still held, stays. Derives from it are ignored from then on.
    Forget {
        /// The node's index.
        node: u8,
    },
    /// Moves the clock forward by this many milliseconds.
    Advance(u8),
    /// Moves the clock to its next deadline ([`Clock::advance_to_next`]).
    AdvanceToNext,
}

/// One context of a [`Tree`] and what the checks need to know about it.
#[derive(Debug)]
struct Node {
    ctx: Option<Context>,
    handle: Option<CancelHandle>,
    /// Parents whose cancellation this node inherits (none for the root
    /// and for `without_cancel`, two for a merge).
    parents: Vec<usize>,
    /// `err()` as last checked: once done, it never changes.
    seen: Option<Error>,
}

/// A context tree on a manual clock, grown and cancelled by [`Op`]s.
#[derive(Debug)]
pub struct Tree {
    clock: Clock,
    nodes: Vec<Node>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree of one node, the root of a new manual clock.
    pub fn new() -> Tree {
        let clock = Clock::manual();
        let root = Node {
            ctx: Some(clock.background()),
            handle: None,
            parents: Vec::new(),
            seen: None,
        };
        Tree {
            clock,
            nodes: vec![root],
        }
    }

    /// The tree's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How many nodes the tree has had (forgotten ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never: the root is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The context of node `i % len`, unless it was forgotten.
    pub fn context(&self, i: u8) -> Option<&Context> {
        self.nodes[self.pick(i)].ctx.as_ref()
    }

    /// Every context the tree still holds.
    pub fn contexts(&self) -> impl Iterator<Item = &Context> + '_ {
        self.nodes.iter().filter_map(|n| n.ctx.as_ref())
    }

    /// Applies one step. Never panics, whatever the step (a panic raised
    /// by a callback the code under test registered excepted).
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Derive { parent, how } => self.derive(parent, how),
            Op::Cancel { node, cause } => {
                let i = self.pick(node);
                if let Some(h) = &self.nodes[i].handle {
                    match cause {
                        Some(e) => h.cancel_with_cause(e),
                        None => h.cancel(),
                    }
                }
            }
            Op::Release { node, detach } => {
                let i = self.pick(node);
                match self.nodes[i].handle.take() {
                    Some(h) if detach => h.detach(),
                    h => drop(h),
                }
            }
            Op::Forget { node } => {
                let i = self.pick(node);
                self.nodes[i].ctx = None;
            }
            Op::Advance(ms) => self.clock.advance(ms_to_duration(ms)),
            Op::AdvanceToNext => drop(self.clock.advance_to_next()),
        }
    }

    /// Steps the clock through every pending deadline.
    pub fn settle(&mut self) {
        while self.clock.next_deadline().is_some() {
            self.clock.advance_to_next();
        }
    }

    /// Asserts Go's guarantees over every context the tree holds: a done
    /// context stays done with the same error; `cause()` is set exactly
    /// when `err()` is; a context whose parent is done is done (either
    /// parent, for a merge); a deadline never exceeds an inherited one; a
    /// deadline at or before the clock's time has fired. Panics with the
    /// first violation.
    pub fn check(&mut self) {
        let now = self.clock.now();
        for i in 0..self.nodes.len() {
            let Some(ctx) = self.nodes[i].ctx.clone() else {
                continue;
            };
            let err = ctx.err();
            if let Some(seen) = self.nodes[i].seen {
                assert_eq!(err, Some(seen), "node {i}: err changed once done");
            }
            self.nodes[i].seen = err;
            assert_eq!(
                ctx.cause().is_some(),
                err.is_some(),
                "node {i}: cause vs err"
            );
            if ctx.deadline().is_some_and(|d| d <= now) {
                assert!(err.is_some(), "node {i}: deadline passed, not done");
            }
            for &p in &self.nodes[i].parents {
                let Some(parent) = &self.nodes[p].ctx else {
                    continue;
                };
                if parent.is_done() {
                    assert!(err.is_some(), "node {i}: parent {p} done, child not");
                }
                if let Some(pd) = parent.deadline() {
                    let own = ctx.deadline();
                    assert!(
                        own.is_some_and(|d| d <= pd),
                        "node {i}: deadline past parent {p}'s"
                    );
                }
            }
        }
    }

    fn pick(&self, i: u8) -> usize {
        usize::from(i) % self.nodes.len()
    }

    fn derive(&mut self, parent: u8, how: Derive) {
        let p = self.pick(parent);
        if self.nodes.len() >= MAX_NODES {
            return;
        }
        let Some(base) = self.nodes[p].ctx.as_ref() else {
            return;
        };
        let (ctx, handle, parents) = match how {
            Derive::Cancel => pair(base.with_cancel(), vec![p]),
            Derive::Shared => pair(base.with_cancel_shared(), vec![p]),
            Derive::Timeout(ms) => pair(base.with_timeout(ms_to_duration(ms)), vec![p]),
            Derive::TimeoutCause(ms, e) => {
                pair(base.with_timeout_cause(ms_to_duration(ms), e), vec![p])
            }
            Derive::WithoutCancel => (base.without_cancel(), None, Vec::new()),
            Derive::Merge(other) => {
                let o = self.pick(other);
                let Some(second) = self.nodes[o].ctx.as_ref() else {
                    return;
                };
                pair(Context::merge(base, second), vec![p, o])
            }
        };
        self.nodes.push(Node {
            ctx: Some(ctx),
            handle,
            parents,
            seen: None,
        });
    }
}

fn pair(
    (ctx, handle): (Context, CancelHandle),
    parents: Vec<usize>,
) -> (Context, Option<CancelHandle>, Vec<usize>) {
    (ctx, Some(handle), parents)
}

fn ms_to_duration(ms: u8) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(ms))
}
