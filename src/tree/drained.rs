//! The drained signal: a closed node's whole subtree is done.
//!
//! Go's promise is that once *any* `cancel()` returns, every descendant is
//! done, also for a canceller that lost the race to close the node. Closing
//! is one compare-exchange (state invariant 1), so a loser learns only that
//! the node is done, not that the winner's drain has got through its
//! subtree. The state word therefore carries a second, later fact: once
//! the node is closed, its pointer bits (zero after the close) say whether
//! the subtree is *drained*, and hold the stack of threads that wait for it
//! (state.rs: `DRAINED`, `WOKEN`, or a stack of sleepers).
//!
//! Invariants:
//! 1. A node is marked drained once, by the thread that closed it (its
//!    drainer), only after every node of its subtree is closed and every
//!    node closed by someone else that its drain reached (a *dependency*)
//!    is drained; a node closed with an empty list is drained by the close
//!    itself. So a reader that sees a node drained (Acquire) sees its whole
//!    subtree done.
//! 2. Marking costs no read-modify-write when nobody waits: one load, and
//!    a Release store of `DRAINED`. If the load saw sleepers, the drainer
//!    swaps in `WOKEN` instead and wakes every sleeper it took.
//! 3. A sleeper pushed between that load and that store is erased by the
//!    store. Its thread never relies on a wake-up: it re-checks the word
//!    after every park, and parks with a bounded timeout (under loom, which
//!    has no timed park, the erasing mark unparks it: loom_park.rs). It
//!    parks only while its sleeper is on every node it waits for. It then
//!    tells the two cases apart by the mark: `DRAINED` means its sleeper
//!    was erased (nobody else will touch it), `WOKEN` that it was taken by
//!    the swap (whose thread releases the list's reference).
//! 4. Only a thread outside every drain waits (a thread-local depth counts
//!    the drains running on it): a callback, waker or `Drop` run by a drain
//!    that cancels an ancestor of that drain does not wait for a drain that
//!    may be waiting for its own. A drain nested in such a call hands the
//!    nodes it could not mark yet to the outermost drain of its thread.
//! 5. A node waits, through its drainer, only for nodes its subtree
//!    reaches, and contexts form a DAG, so no chain of node waits is a
//!    cycle. A thread waits only at its outermost drain's end, holding no
//!    node unmarked but the ones it is settling in that same loop, which it
//!    marks as soon as their dependencies are drained: it never blocks on
//!    one node while holding another that the first one's drain needs.

use super::list::Entry;
use super::node::CancelNode;
use super::refs::{acquire_ref, release_node_ref};
use super::state::{drained, is_woken, CLOSED};
use super::waiter::Waiter;
#[cfg(not(loom))]
use crate::sync::park_timeout;
use crate::sync::thread_local;
use crate::unwind::Panics;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
#[cfg(not(loom))]
use std::time::Duration;

/// The first park of a waiting thread; doubled up to `PARK_MAX`. (Under
/// loom a park has no timeout: loom_park.rs.)
#[cfg(not(loom))]
const PARK_MIN: Duration = Duration::from_micros(20);
/// The longest park between re-checks (invariant 3): the most an erased
/// sleeper can wait past the mark.
#[cfg(not(loom))]
const PARK_MAX: Duration = Duration::from_millis(1);

/// A node this thread closed whose subtree reached nodes not drained yet.
/// Holds a memory reference on the node and on each dependency.
pub(super) struct Pending {
    node: NonNull<CancelNode>,
    deps: Vec<NonNull<CancelNode>>,
}

/// This thread's drains: how many are running, and the pending nodes that
/// nested drains handed to the outermost one (invariant 4).
struct Local {
    depth: Cell<u32>,
    pending: RefCell<Vec<Pending>>,
}

#[cfg(not(loom))]
thread_local! {
    static LOCAL: Local = const {
        Local { depth: Cell::new(0), pending: RefCell::new(Vec::new()) }
    };
}
// loom's `thread_local!` has no `const` form.
#[cfg(loom)]
thread_local! {
    static LOCAL: Local = Local { depth: Cell::new(0), pending: RefCell::new(Vec::new()) };
}

/// A drain running on this thread (invariant 4); ends on drop.
pub(super) struct Draining {
    /// No other drain runs below it on this thread (or the thread's locals
    /// are gone, and it cannot tell: it then settles its own nodes).
    outer: bool,
    counted: bool,
}

/// Enters a drain.
pub(super) fn enter() -> Draining {
    let depth = LOCAL.try_with(|l| {
        let d = l.depth.get();
        l.depth.set(d + 1);
        d
    });
    match depth {
        Ok(d) => Draining {
            outer: d == 0,
            counted: true,
        },
        Err(_) => Draining {
            outer: true,
            counted: false,
        },
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        if self.counted {
            let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() - 1));
        }
    }
}

/// Whether this thread is inside a drain (then it never waits).
fn inside_drain() -> bool {
    LOCAL.try_with(|l| l.depth.get() > 0).unwrap_or(false)
}

/// Marks `node` drained and wakes its sleepers (invariants 1, 2).
///
/// The caller closed `node` and its subtree is drained.
pub(super) fn mark(node: &CancelNode) {
    let mut cur = node.list.mark_drained();
    while let Some(entry) = NonNull::new(cur as *mut Entry) {
        // SAFETY: the swap took the sleeper chain, and with it the list's
        // reference on each sleeper, released below after this read.
        cur = unsafe { entry.as_ref().sleeper_next() };
        let w = entry.cast::<Waiter>();
        // SAFETY: sleepers are thread waiters (entry invariant 1), alive by
        // the list's reference that we now own; waking a thread and freeing
        // a thread waiter run no user code.
        unsafe {
            Waiter::wake(w);
            Waiter::release(w);
        }
    }
}

/// A node the drain found closed by someone else: if its subtree is not
/// drained yet, the drain's node depends on it (takes a memory reference).
pub(super) fn depends_on(child: &CancelNode, deps: &mut Vec<NonNull<CancelNode>>) {
    let word = child.list.word();
    if word & CLOSED == 0 || drained(word) {
        return; // open (never the case for a reached child), or done
    }
    acquire_ref(child);
    deps.push(NonNull::from(child));
}

/// A node whose marker the drain reached with `deps` not drained: it is
/// pending, and the node that encloses it in the drain, if any, depends on
/// it in turn.
pub(super) fn defer(
    node: &CancelNode,
    deps: Vec<NonNull<CancelNode>>,
    pending: &mut Vec<Pending>,
    enclosing: Option<&mut Vec<NonNull<CancelNode>>>,
) {
    // A reference for the pending entry, and one for the enclosing node's
    // dependency: each is released on its own.
    acquire_ref(node);
    let at = NonNull::from(node);
    pending.push(Pending { node: at, deps });
    if let Some(enclosing) = enclosing {
        acquire_ref(node);
        enclosing.push(at);
    }
}

/// The end of a drain: marks its pending nodes once their dependencies are
/// drained, waiting if it is the outermost drain of its thread, or hands
/// them to that drain (invariants 4, 5).
pub(super) fn settle(mut pending: Vec<Pending>, draining: &Draining, panics: &mut Panics) {
    if !draining.outer {
        let handed = LOCAL.try_with(|l| l.pending.borrow_mut().append(&mut pending));
        if handed.is_ok() {
            return;
        }
    }
    let mut sleep = Sleep::new();
    loop {
        let _ = LOCAL.try_with(|l| pending.append(&mut l.pending.borrow_mut()));
        mark_ready(&mut pending, panics);
        // The releases above may have run `Drop` code whose cancels handed
        // nodes over: settle those too before leaving.
        let handed = LOCAL
            .try_with(|l| !l.pending.borrow().is_empty())
            .unwrap_or(false);
        if pending.is_empty() && !handed {
            break;
        }
        if watch_deps(&pending, &mut sleep) {
            sleep.park();
        }
    }
    sleep.finish(panics);
}

/// Watches every dependency of `pending` that is not one of its own nodes.
/// True if each is still undrained with our sleeper on it, so that parking
/// cannot miss its mark; false if one is drained by now (go round again).
fn watch_deps(pending: &[Pending], sleep: &mut Sleep) -> bool {
    let mut watched = false;
    for p in pending {
        for &dep in &p.deps {
            if pending.iter().any(|q| q.node == dep) {
                continue; // ours: marked by this loop
            }
            // SAFETY: the pending entry's reference keeps it alive.
            let node = unsafe { dep.as_ref() };
            if drained(node.list.word()) || !sleep.watch(node) {
                return false;
            }
            watched = true;
        }
    }
    // None watched: nodes handed over by a nested drain are still to take.
    watched
}

/// Marks every pending node whose dependencies are all drained, until no
/// more can be; releases their references.
fn mark_ready(pending: &mut Vec<Pending>, panics: &mut Panics) {
    loop {
        let ready = pending
            .iter()
            .position(|p| p.deps.iter().all(|&d| is_drained(d)));
        let Some(i) = ready else { return };
        let p = pending.swap_remove(i);
        // SAFETY: the entry's reference keeps it alive; we closed it, and
        // its subtree is drained.
        mark(unsafe { p.node.as_ref() });
        for n in p.deps.into_iter().chain([p.node]) {
            // SAFETY: the reference this entry held; freeing a node may
            // drop a cause (user `Drop` code), caught.
            panics.call(|| unsafe { release_node_ref(n) });
        }
    }
}

/// Whether a node a pending entry depends on is drained.
fn is_drained(dep: NonNull<CancelNode>) -> bool {
    // SAFETY: the pending entry holds a memory reference on each of its
    // dependencies.
    drained(unsafe { dep.as_ref() }.list.word())
}

/// A canceller that lost the race to close `node` waits until its subtree
/// is drained, unless it runs inside a drain (invariant 4).
///
/// The caller holds a handle on `node`.
pub(super) fn wait(node: &CancelNode) {
    if drained(node.list.word()) || inside_drain() {
        return;
    }
    let mut sleep = Sleep::new();
    while !drained(node.list.word()) {
        if sleep.watch(node) {
            sleep.park();
        }
    }
    // Our handle keeps the node: `finish` frees nothing that runs user code.
    sleep.finish(&mut Panics::default());
}

/// The key of `node` in loom's registry of waiting threads.
#[cfg(loom)]
fn list_addr(node: &CancelNode) -> usize {
    &node.list as *const _ as usize
}

/// One waiting thread's sleepers, one per node it waits for.
struct Sleep {
    sleepers: Vec<(NonNull<CancelNode>, NonNull<Waiter>)>,
    /// The next park's timeout.
    #[cfg(not(loom))]
    park: Duration,
}

impl Sleep {
    fn new() -> Sleep {
        Sleep {
            sleepers: Vec::new(),
            #[cfg(not(loom))]
            park: PARK_MIN,
        }
    }

    /// Pushes a sleeper for this thread onto `node`'s closed word, unless
    /// one is there already. False if the node is drained (no sleeper
    /// pushed). Holds a memory reference on the node until `finish` reads
    /// its mark.
    fn watch(&mut self, node: &CancelNode) -> bool {
        let at = NonNull::from(node);
        if self.sleepers.iter().any(|&(n, _)| n == at) {
            return true;
        }
        #[cfg(loom)]
        super::loom_park::register(list_addr(node));
        let w = Waiter::for_thread();
        // SAFETY: a new thread waiter; the list's reference, if the push
        // takes it, is released by the marking swap or by `finish`.
        if unsafe { Waiter::enlist_sleeper(w, node) } {
            acquire_ref(node);
            self.sleepers.push((at, w));
            return true;
        }
        // SAFETY: drained already: ours is the only reference.
        unsafe { Waiter::release(w) };
        #[cfg(loom)]
        super::loom_park::unregister(list_addr(node));
        false
    }

    /// Parks until woken or the bounded timeout (invariant 3).
    #[cfg(not(loom))]
    fn park(&mut self) {
        park_timeout(self.park);
        self.park = (self.park * 2).min(PARK_MAX);
    }

    /// Parks until woken; a mark that erased our sleeper wakes us in place
    /// of the timeout (loom_park.rs).
    #[cfg(loom)]
    fn park(&mut self) {
        crate::sync::park();
    }

    /// Every watched node is drained: gives back our sleepers, and the
    /// list's reference of those the mark erased (invariant 3), and the
    /// references on the nodes.
    fn finish(self, panics: &mut Panics) {
        for (node, w) in self.sleepers {
            // SAFETY: alive by the reference `watch` took.
            let n = unsafe { node.as_ref() };
            let word = n.list.word();
            #[cfg(loom)]
            super::loom_park::unregister(list_addr(n));
            debug_assert!(drained(word));
            if !is_woken(word) {
                // SAFETY: erased by the blind store: the list's reference
                // is ours to give back, nobody else ever saw the sleeper.
                unsafe { Waiter::release(w) };
            }
            // SAFETY: our own reference.
            unsafe { Waiter::release(w) };
            // SAFETY: the reference `watch` took; freeing a node may drop a
            // cause (user `Drop` code), caught.
            panics.call(|| unsafe { release_node_ref(node) });
        }
    }
}
