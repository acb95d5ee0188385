//! A plain, single-threaded reference model of Go's context semantics
//! (docs/semantics.md, semantics 1-12), written only to be compared against gocontext.
//!
//! Nodes are never freed and never shared; every link is an index. The model
//! knows nothing about memory, handles or threads: the harness decides what is
//! observable. Where the contract leaves a choice (two timers due at the same
//! instant, a merge of two parents that are both done already), a node is done
//! with a *set* of acceptable outcomes, and the harness narrows the set to the
//! one it observed ([`Model::resolve`]).

use std::time::{Duration, Instant};

/// Number of value keys the harness uses (the last one holds a `String`).
pub const NKEYS: usize = 4;

/// Why a context is done, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrKind {
    Canceled,
    DeadlineExceeded,
}

/// The identity of a cause: the default cause of an error, or a custom cause
/// carrying a unique tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CauseTag {
    Default(ErrKind),
    Custom(u32),
}

/// One acceptable end state of a done context.
pub type Outcome = (ErrKind, CauseTag);

pub type NodeId = usize;
pub type CbId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Root,
    Cancel,
    Value,
    WithoutCancel,
    Merge,
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    /// Parents whose cancellation reaches this node.
    pub parents: Vec<NodeId>,
    /// Nodes this node's cancellation reaches.
    pub children: Vec<NodeId>,
    pub values: [Option<u32>; NKEYS],
    pub deadline: Option<Instant>,
    /// The node's own timer: when it fires and with which cause.
    pub own_timer: Option<(Instant, CauseTag)>,
    /// `None` while not done; else the acceptable outcomes (never empty).
    pub done: Option<Vec<Outcome>>,
    pub callbacks: Vec<CbId>,
}

#[derive(Debug, Default, Clone)]
pub struct Callback {
    pub node: NodeId,
    /// How many times the model says f has run (0 or 1).
    pub runs: u32,
    /// A `stop()` returned true: f must never run.
    pub stopped: bool,
    /// The node's subtree lost every handle: f may be discarded unrun.
    pub orphaned: bool,
}

#[derive(Debug)]
pub struct Model {
    pub now: Instant,
    /// The latest time the manual clock can reach (it saturates there): a
    /// deadline past it is no deadline at all, like a too-large timeout.
    pub cap: Instant,
    pub nodes: Vec<Node>,
    pub callbacks: Vec<Callback>,
}

impl Model {
    /// A model holding one root (node 0) at time `now`, the origin of a
    /// fresh manual clock.
    pub fn new(now: Instant) -> Self {
        // The clock's cap: its origin plus u64::MAX ns, or the most that
        // `Instant` can add (halving, as the clock itself finds it).
        let mut n = u64::MAX;
        while n > 0 && now.checked_add(Duration::from_nanos(n)).is_none() {
            n /= 2;
        }
        let cap = now + Duration::from_nanos(n);
        let root = Node {
            kind: Kind::Root,
            parents: vec![],
            children: vec![],
            values: [None; NKEYS],
            deadline: None,
            own_timer: None,
            done: None,
            callbacks: vec![],
        };
        Model {
            now,
            cap,
            nodes: vec![root],
            callbacks: vec![],
        }
    }

    fn push(&mut self, mut node: Node) -> NodeId {
        let id = self.nodes.len();
        node.parents.dedup();
        for &p in &node.parents {
            self.nodes[p].children.push(id);
        }
        // Semantics 3 and 9: a node derived from done parents is done at once
        // with (one of) their outcomes.
        let mut inherited: Vec<Outcome> = Vec::new();
        for &p in &node.parents {
            if let Some(set) = &self.nodes[p].done {
                for o in set {
                    if !inherited.contains(o) {
                        inherited.push(*o);
                    }
                }
            }
        }
        if !inherited.is_empty() {
            node.done = Some(inherited);
        }
        self.nodes.push(node);
        id
    }

    /// `with_cancel`, or `with_deadline(d)` when `own` is `Some((d, cause))`.
    pub fn derive_cancel(&mut self, parent: NodeId, own: Option<(Instant, CauseTag)>) -> NodeId {
        let pd = self.nodes[parent].deadline;
        let own = own.filter(|(d, _)| *d <= self.cap);
        // Semantics 4: a later own deadline behaves as with_cancel. An equal
        // one may run its own timer or not (the tie is resolved at fire time).
        let own_timer = own.filter(|(d, _)| pd.map_or(true, |pd| *d <= pd));
        let deadline = match (pd, own_timer) {
            (_, Some((d, _))) => Some(d),
            (pd, None) => pd,
        };
        let node = Node {
            kind: Kind::Cancel,
            parents: vec![parent],
            children: vec![],
            values: self.nodes[parent].values,
            deadline,
            own_timer,
            done: None,
            callbacks: vec![],
        };
        let id = self.push(node);
        if let Some((d, cause)) = own_timer {
            if d <= self.now {
                // Already past: done at once (unless the parent already was).
                self.cancel(id, ErrKind::DeadlineExceeded, cause);
            }
        }
        id
    }

    pub fn derive_value(&mut self, parent: NodeId, key: usize, value: u32) -> NodeId {
        let mut values = self.nodes[parent].values;
        values[key] = Some(value);
        let node = Node {
            kind: Kind::Value,
            parents: vec![parent],
            children: vec![],
            values,
            deadline: self.nodes[parent].deadline,
            own_timer: None,
            done: None,
            callbacks: vec![],
        };
        self.push(node)
    }

    pub fn derive_without_cancel(&mut self, parent: NodeId) -> NodeId {
        let node = Node {
            kind: Kind::WithoutCancel,
            parents: vec![],
            children: vec![],
            values: self.nodes[parent].values,
            deadline: None,
            own_timer: None,
            done: None,
            callbacks: vec![],
        };
        self.push(node)
    }

    pub fn merge(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (va, vb) = (self.nodes[a].values, self.nodes[b].values);
        let mut values = [None; NKEYS];
        for k in 0..NKEYS {
            values[k] = va[k].or(vb[k]);
        }
        let deadline = match (self.nodes[a].deadline, self.nodes[b].deadline) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let node = Node {
            kind: Kind::Merge,
            parents: vec![a, b],
            children: vec![],
            values,
            deadline,
            own_timer: None,
            done: None,
            callbacks: vec![],
        };
        self.push(node)
    }

    /// Cancels `id` and every descendant that is not done yet (Semantics 1-2).
    pub fn cancel(&mut self, id: NodeId, err: ErrKind, cause: CauseTag) {
        if self.nodes[id].done.is_some() {
            return;
        }
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            if self.nodes[n].done.is_some() {
                continue;
            }
            self.nodes[n].done = Some(vec![(err, cause)]);
            self.ran(n);
            stack.extend(self.nodes[n].children.iter().copied());
        }
    }

    /// The node just became done: every registered, unstopped f runs once.
    fn ran(&mut self, n: NodeId) {
        for i in 0..self.nodes[n].callbacks.len() {
            let cb = self.nodes[n].callbacks[i];
            let c = &mut self.callbacks[cb];
            if !c.stopped {
                c.runs += 1;
                assert_eq!(c.runs, 1, "model: callback {cb} ran twice");
            }
        }
    }

    /// `after_func`: f runs at once if the node is already done.
    pub fn after_func(&mut self, node: NodeId) -> CbId {
        let id = self.callbacks.len();
        let runs = u32::from(self.nodes[node].done.is_some());
        self.callbacks.push(Callback {
            node,
            runs,
            ..Callback::default()
        });
        self.nodes[node].callbacks.push(id);
        id
    }

    /// `stop()`: true iff it prevents f from running.
    pub fn stop(&mut self, cb: CbId) -> bool {
        let c = &mut self.callbacks[cb];
        if c.runs == 0 && !c.stopped {
            c.stopped = true;
            true
        } else {
            false
        }
    }

    /// Moves time forward and fires every due timer, earliest first. Timers
    /// due at the same instant race: every node they reach gets each of their
    /// causes as an acceptable outcome.
    pub fn advance(&mut self, to: Instant) {
        assert!(to >= self.now);
        self.now = to;
        loop {
            // The earliest due instant among live timers.
            let next = self
                .nodes
                .iter()
                .filter(|n| n.done.is_none())
                .filter_map(|n| n.own_timer.map(|t| t.0))
                .filter(|d| *d <= to)
                .min();
            let Some(t) = next else { break };
            let firing: Vec<(NodeId, CauseTag)> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.done.is_none())
                .filter_map(|(i, n)| match n.own_timer {
                    Some((d, c)) if d == t => Some((i, c)),
                    _ => None,
                })
                .collect();
            let mut reached: Vec<(NodeId, Vec<Outcome>)> = Vec::new();
            for (f, cause) in firing {
                let o = (ErrKind::DeadlineExceeded, cause);
                let mut stack = vec![f];
                let mut seen = std::collections::HashSet::new();
                while let Some(n) = stack.pop() {
                    if self.nodes[n].done.is_some() || !seen.insert(n) {
                        continue;
                    }
                    match reached.iter_mut().find(|(m, _)| *m == n) {
                        Some((_, set)) => {
                            if !set.contains(&o) {
                                set.push(o)
                            }
                        }
                        None => reached.push((n, vec![o])),
                    }
                    stack.extend(self.nodes[n].children.iter().copied());
                }
            }
            for (n, set) in reached {
                self.nodes[n].done = Some(set);
                self.ran(n);
            }
        }
    }

    /// Narrows an ambiguous outcome to the observed one; returns false if
    /// the observed outcome is not acceptable.
    pub fn resolve(&mut self, id: NodeId, seen: Outcome) -> bool {
        match &mut self.nodes[id].done {
            Some(set) if set.contains(&seen) => {
                *set = vec![seen];
                true
            }
            _ => false,
        }
    }

    /// Per node: whether it or anything in its subtree is `live`. One pass
    /// from the newest node down: a child is always newer than its parents.
    pub fn live_below(&self, live: &[bool]) -> Vec<bool> {
        let mut below = live.to_vec();
        for n in (0..self.nodes.len()).rev() {
            if !below[n] {
                below[n] = self.nodes[n].children.iter().any(|&c| below[c]);
            }
        }
        below
    }
}
