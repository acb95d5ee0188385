//! Nodes of the context tree and their two reference counts.
//!
//! Every derived context is one heap node. All kinds start with a
//! [`Header`]; cancellable kinds (`with_cancel`, deadlines, `merge`) are a
//! [`CancelNode`], value kinds a [`ValueNode`]. `Context::background()` and
//! `Context::todo()` are no node at all (see `context.rs`), so deriving from
//! them touches no shared memory.
//!
//! Invariants:
//! 1. `handles` counts the owners that keep a node *meaningful*: each
//!    `Context`, the `CancelHandle`, each derived child (a child holds its
//!    parent). When it reaches zero the node is *torn down*: closed if still
//!    open, withdrawn from its parents' lists, and its parent handles
//!    released. Nothing can observe it after that, so closing it is
//!    invisible; pending `after_func` callbacks are dropped unrun.
//! 2. `refs` counts holders of the node's *memory*: one for all handles
//!    together (dropped at teardown), one per list that links it (list
//!    invariant 3), one while a clock holds its timer, one per `after_func`
//!    registration (after_func invariant 2). The node is freed
//!    when `refs` reaches zero. List references are released through the
//!    epoch (list invariant 4), so a node is never freed under a sweeper.
//! 3. Teardown and release walk up the tree in a loop, never by recursion:
//!    a million-deep chain drops on a small stack. A node that loses its
//!    last handle while its thread is already in that loop (a freed value
//!    or callback that held a `Context`) is handed to the loop, so drops
//!    through contexts stored inside contexts do not recurse either.
//! 4. A node's fields other than the atomics are written only before it is
//!    shared, except the parent cells, which only teardown empties; teardown
//!    runs once handles are zero, when no reader of those cells is left.

use crate::cancel;
use crate::clock::Clock;
use crate::list::{Entry, EntryKind};
use crate::sync::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::{release_last, thread_local, AtomicBool, AtomicUsize, LeakTrack, UnsafeCell};
use crate::timer::{TimerEntry, TimerHooks};
use crate::unwind::Panics;
use crate::{Cause, Context, Error};
use std::cell::RefCell;
use std::mem::{offset_of, MaybeUninit};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

/// What a node is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NodeKind {
    /// `clock.background()` of a manual clock.
    Root,
    /// `with_cancel` (and deadlines later than the parent's).
    Cancel,
    /// `with_deadline`, `with_timeout` with a deadline of its own.
    Deadline,
    /// `merge(a, b)`.
    Merge,
    /// `with_value`.
    Value,
    /// `without_cancel`.
    Detached,
}

/// The common head of every node (first field of each node type).
///
/// `refs` is the last field so that it shares a cache line with the
/// `CancelNode` fields a drain touches (see `CancelNode`).
#[repr(C)]
pub(crate) struct Header {
    handles: AtomicUsize,
    pub(crate) kind: NodeKind,
    /// The context this one was derived from (its handle), until teardown.
    parent: UnsafeCell<Option<Context>>,
    /// The nearest cancellable ancestor-or-self; `None` if never done.
    pub(crate) scope: Option<NonNull<CancelNode>>,
    /// The nearest ancestor-or-self that answers value lookups.
    pub(crate) values: Option<NonNull<Header>>,
    pub(crate) clock: Clock,
    free: unsafe fn(NonNull<Header>),
    _track: LeakTrack,
    refs: AtomicUsize,
}

/// A cause given to `cancel_with_cause` or a deadline: the reason and the
/// error, shared by every node it reaches.
pub(crate) struct Record {
    pub(crate) err: Error,
    pub(crate) cause: Cause,
}

/// A cancellable node.
///
/// Field order is for the drain, which reaches each child through `link`
/// and touches the header's `refs`, `state`, `link`, `has_timer` and
/// `sweeping` and nothing else: together they span 34 bytes, so a child
/// costs one or two cache lines instead of four.
#[repr(C)]
pub(crate) struct CancelNode {
    pub(crate) header: Header,
    /// The state word and list head (`state.rs`).
    pub(crate) state: AtomicUsize,
    /// Our entry in the first parent's scope list.
    pub(crate) link: Entry,
    has_timer: bool,
    /// Elects one sweeper at a time; nobody ever waits on it.
    sweeping: AtomicBool,
    /// `Arc<Record>` as a raw pointer, or 0; written once (state inv. 2).
    record: AtomicUsize,
    /// Entries marked deleted since the last sweep (a trigger, not exact).
    dead: AtomicUsize,
    /// Sweep once `dead` reaches this.
    sweep_at: AtomicUsize,
    /// `merge` only: our entry in the second parent's scope list.
    pub(crate) link2: Entry,
    /// The scope lists `link` and `link2` went into (immutable).
    pub(crate) owner: Option<NonNull<CancelNode>>,
    pub(crate) owner2: Option<NonNull<CancelNode>>,
    /// `merge` only: the second parent's handle, until teardown.
    parent2: UnsafeCell<Option<Context>>,
    /// The effective deadline: the earlier of our own and the parents'.
    pub(crate) deadline: Option<Instant>,
    /// Our own timer, initialised iff `has_timer` (our deadline is earlier
    /// than the parents').
    timer: MaybeUninit<TimerEntry>,
    /// The cause our own deadline fires with.
    deadline_cause: Option<Cause>,
}

/// Bytes of the drain's fields before a child's `link` (from `refs`).
pub(crate) const DRAIN_BEFORE_LINK: usize = offset_of!(CancelNode, link) - offset_of!(Header, refs);
/// Bytes of the drain's fields from a child's `link` on (to `sweeping`).
pub(crate) const DRAIN_FROM_LINK: usize =
    offset_of!(CancelNode, sweeping) + 1 - offset_of!(CancelNode, link);

// The drain's fields stay within one 64-byte span (see `CancelNode`).
#[cfg(not(loom))]
const _: () = assert!(DRAIN_BEFORE_LINK + DRAIN_FROM_LINK <= 40);

/// The fixed head of a value node; the value follows it.
#[repr(C)]
pub(crate) struct ValueHead {
    pub(crate) header: Header,
    pub(crate) key: usize,
    pub(crate) key_name: &'static str,
    /// The parent's `values` (kept alive by the parent handle).
    pub(crate) outer: Option<NonNull<Header>>,
    /// Which key slots occur from here outward (value.rs).
    pub(crate) filter: crate::value::KeyFilter,
}

/// A `with_value` node carrying a `T`.
#[repr(C)]
pub(crate) struct ValueNode<T> {
    pub(crate) head: ValueHead,
    pub(crate) value: T,
}

// SAFETY: all shared mutation goes through atomics; the parent cells follow
// node invariant 4; the value is `Send + Sync` (required by `with_value`).
unsafe impl Send for Header {}
// SAFETY: as above.
unsafe impl Sync for Header {}
// SAFETY: as above; the owner pointers are kept alive by the parent handles.
unsafe impl Send for CancelNode {}
// SAFETY: as above.
unsafe impl Sync for CancelNode {}

/// Frees a node allocated as a `Box<T>` whose first field is the header.
///
/// # Safety
/// `h` must come from `Box::<T>::into_raw` and `refs` must be zero.
unsafe fn free_box<T>(h: NonNull<Header>) {
    // SAFETY: the caller guarantees the allocation's type and ownership.
    drop(unsafe { Box::from_raw(h.as_ptr().cast::<T>()) });
}

impl Header {
    fn new(kind: NodeKind, parent: Option<Context>, clock: Clock) -> Header {
        Header {
            handles: AtomicUsize::new(1),
            refs: AtomicUsize::new(1),
            kind,
            parent: UnsafeCell::new(parent),
            scope: None,
            values: None,
            clock,
            free: free_box::<Header>,
            _track: LeakTrack::new(),
        }
    }

    /// A root node for a manual clock.
    pub(crate) fn new_root(clock: Clock) -> NonNull<Header> {
        leak(Box::new(Header::new(NodeKind::Root, None, clock)))
    }

    /// The header of a `with_value` node of type `N`: the parent's scope,
    /// clock and handle.
    pub(crate) fn new_value<N>(parent: &Context) -> Header {
        let mut h = Header::new(NodeKind::Value, Some(parent.clone()), parent.clock());
        h.scope = parent.scope_ptr();
        h.free = free_box::<N>;
        h
    }

    /// A `without_cancel` node: values of `parent`, never done.
    pub(crate) fn new_detached(parent: &Context) -> NonNull<Header> {
        let mut h = Header::new(NodeKind::Detached, Some(parent.clone()), parent.clock());
        h.values = parent.values();
        leak(Box::new(h))
    }

    /// The parent this node was derived from.
    pub(crate) fn parent(&self) -> Option<&Context> {
        // SAFETY: a caller with a `&Header` from a live `Context` holds a
        // handle, so teardown has not emptied the cell (node invariant 4).
        self.parent.with(|p| unsafe { (*p).as_ref() })
    }

    /// One more handle (a `Context` clone or a child).
    pub(crate) fn acquire(&self) {
        // Relaxed: the caller already holds a handle, so the count cannot
        // be zero; no memory is published by an increment.
        self.handles.fetch_add(1, Relaxed);
    }

    /// As a cancellable node, if it is one.
    pub(crate) fn as_cancel(&self) -> Option<&CancelNode> {
        if matches!(
            self.kind,
            NodeKind::Cancel | NodeKind::Deadline | NodeKind::Merge
        ) {
            // SAFETY: nodes of these kinds are allocated as `CancelNode`,
            // whose first field is the header (`repr(C)`).
            Some(unsafe { &*(self as *const Header).cast::<CancelNode>() })
        } else {
            None
        }
    }
}

/// Gives up a box, keeping its contents alive as a shared node.
fn leak<T>(b: Box<T>) -> NonNull<Header> {
    NonNull::from(Box::leak(b)).cast()
}

/// Releases one handle; tears down and walks up while counts hit zero.
///
/// # Safety
/// The caller owns one handle on `h`.
pub(crate) unsafe fn release_handle(h: NonNull<Header>) {
    // SAFETY: we own a handle on `h`, so it is alive.
    if release_last(&unsafe { h.as_ref() }.handles) {
        tear_down_from(h);
    }
}

/// `Some` while this thread runs `tear_down_from`: nodes that lose their
/// last handle meanwhile (a freed value that holds a `Context`, a discarded
/// callback that captured one) wait here for that loop.
type Deferred = RefCell<Option<Vec<NonNull<Header>>>>;

#[cfg(not(loom))]
thread_local! {
    static DEFERRED: Deferred = const { RefCell::new(None) };
}
// loom's `thread_local!` has no `const` form.
#[cfg(loom)]
thread_local! {
    static DEFERRED: Deferred = RefCell::new(None);
}

/// Tears down `first` (its last handle is gone) and every node that loses
/// its last handle as a result, in one loop (invariant 3). Freeing a node
/// can drop user values that hold contexts; their teardown joins the loop
/// already running on this thread instead of recursing, so a chain of
/// contexts stored inside contexts drops on a small stack too.
fn tear_down_from(first: NonNull<Header>) {
    let nested = DEFERRED.try_with(|d| {
        let mut d = d.borrow_mut();
        if let Some(waiting) = d.as_mut() {
            waiting.push(first);
            return true;
        }
        *d = Some(Vec::new());
        false
    });
    let Ok(nested) = nested else {
        // This thread's locals are gone (it is exiting): loop without them.
        return tear_down_loop(first);
    };
    if nested {
        return;
    }
    let _end = DeferredLoop;
    tear_down_loop(first);
}

/// The loop of `tear_down_from`. User code it runs (discarded callbacks,
/// freed values and causes) may panic: the loop completes regardless and
/// re-raises the first panic at the end (unwind.rs).
fn tear_down_loop(first: NonNull<Header>) {
    let mut panics = Panics::default();
    let mut more: Vec<NonNull<Header>> = Vec::new();
    let mut next = Some(first);
    while let Some(h) = next.take().or_else(|| more.pop()).or_else(take_deferred) {
        // SAFETY: its handles are zero and its memory is held by the
        // handles' reference, which we release last.
        let (p1, p2) = teardown(unsafe { h.as_ref() }, &mut panics);
        next = p1.and_then(Context::into_node).filter(|&p| last_handle(p));
        more.extend(p2.and_then(Context::into_node).filter(|&p| last_handle(p)));
        // SAFETY: the handles' memory reference (node invariant 2).
        let release = || unsafe { release_ref(h) };
        panics.call(release); // frees values and causes: user `Drop` code
    }
    panics.resume();
}

/// Releases a handle we own on `p`; true if it was the last.
fn last_handle(p: NonNull<Header>) -> bool {
    // SAFETY: we own a handle on `p`, so it is alive.
    release_last(&unsafe { p.as_ref() }.handles)
}

/// The nodes deferred to the running loop so far.
fn take_deferred() -> Option<NonNull<Header>> {
    DEFERRED
        .try_with(|d| d.borrow_mut().as_mut().and_then(Vec::pop))
        .ok()
        .flatten()
}

/// Ends this thread's teardown loop (also if it unwinds).
struct DeferredLoop;

impl Drop for DeferredLoop {
    fn drop(&mut self) {
        let _ = DEFERRED.try_with(|d| d.borrow_mut().take());
    }
}

/// Invariant 1: the node's last handle is gone.
fn teardown(node: &Header, panics: &mut Panics) -> (Option<Context>, Option<Context>) {
    let mut p2 = None;
    if let Some(c) = node.as_cancel() {
        // Its drain completes, then re-raises a discarded callback's panic.
        panics.call(|| cancel::close_silently(c));
        c.withdraw_links();
        // SAFETY: handles are zero: nobody else reads the cell (inv. 4).
        p2 = c.parent2.with_mut(|p| unsafe { (*p).take() });
    }
    // SAFETY: as above.
    let p1 = node.parent.with_mut(|p| unsafe { (*p).take() });
    (p1, p2)
}

/// Drops one memory reference; frees the node at zero (node invariant 2).
///
/// # Safety
/// The caller owns one memory reference on `h`.
pub(crate) unsafe fn release_ref(h: NonNull<Header>) {
    // SAFETY: our reference keeps the node alive until this decrement.
    let node = unsafe { h.as_ref() };
    if release_last(&node.refs) {
        let free = node.free;
        // SAFETY: refs is zero: we are the last holder.
        unsafe { free(h) };
    }
}

/// What a new cancellable node starts from.
pub(crate) struct CancelSpec<'a> {
    pub(crate) parent: &'a Context,
    pub(crate) parent2: Option<&'a Context>,
    pub(crate) deadline: Option<Instant>,
    /// Arm a timer for `deadline` (it is earlier than the parents').
    pub(crate) own_timer: bool,
    pub(crate) deadline_cause: Option<Cause>,
    /// A `with_deadline` node (for display), with or without a timer.
    pub(crate) deadline_node: bool,
}

static TIMER_HOOKS: TimerHooks = TimerHooks {
    fire: fire_timer,
    release: release_timer,
};

impl CancelNode {
    /// Allocates, links and (if needed) arms a new cancellable node. Returns
    /// it with two handles: one for the `Context`, one for the
    /// `CancelHandle`.
    pub(crate) fn create(spec: CancelSpec<'_>) -> NonNull<CancelNode> {
        let parent = spec.parent;
        let kind = match (spec.parent2, spec.deadline_node) {
            (Some(_), _) => NodeKind::Merge,
            (None, true) => NodeKind::Deadline,
            (None, false) => NodeKind::Cancel,
        };
        let mut header = Header::new(kind, Some(parent.clone()), parent.clock());
        header.handles = AtomicUsize::new(2);
        header.free = free_box::<CancelNode>;
        header.values = match kind {
            NodeKind::Merge => None, // set to itself below
            _ => parent.values(),
        };
        let (has_timer, timer) = match (spec.own_timer, spec.deadline) {
            (true, Some(d)) => (true, MaybeUninit::new(TimerEntry::new(d, &TIMER_HOOKS))),
            _ => (false, MaybeUninit::uninit()),
        };
        let node = CancelNode {
            header,
            state: AtomicUsize::new(0),
            record: AtomicUsize::new(0),
            dead: AtomicUsize::new(0),
            sweep_at: AtomicUsize::new(SWEEP_MIN),
            sweeping: AtomicBool::new(false),
            link: Entry::new(EntryKind::Child),
            link2: Entry::new(EntryKind::MergeLink),
            owner: parent.scope_ptr(),
            owner2: spec.parent2.and_then(Context::scope_ptr),
            parent2: UnsafeCell::new(spec.parent2.cloned()),
            deadline: spec.deadline,
            timer,
            has_timer,
            deadline_cause: spec.deadline_cause,
        };
        let ptr = NonNull::from(Box::leak(Box::new(node)));
        // SAFETY: not shared yet; we finish its self-references in place.
        unsafe {
            (*ptr.as_ptr()).header.scope = Some(ptr);
            if kind == NodeKind::Merge {
                (*ptr.as_ptr()).header.values = Some(ptr.cast());
            }
        }
        // SAFETY: freshly allocated and fully initialised.
        let node = unsafe { ptr.as_ref() };
        node.attach();
        node.arm_timer();
        ptr
    }

    /// Links the node into its parents' lists, or inherits a parent's
    /// cancellation when a list is already closed (contract semantics 3).
    fn attach(&self) {
        let closed = match attach_entry(self, self.owner, &self.link) {
            Err(word) => {
                // Never tried: mark it so nobody withdraws it later.
                self.link2.mark_unlinked();
                Some((word, self.owner))
            }
            Ok(()) => attach_entry(self, self.owner2, &self.link2)
                .err()
                .map(|word| (word, self.owner2)),
        };
        if let Some((word, Some(owner))) = closed {
            // SAFETY: we hold a handle on the parent that owns that list.
            let owner = unsafe { owner.as_ref() };
            let (err, record) = owner.published(word);
            cancel::cancel(self, err, record, true);
        }
    }

    /// Arms our own timer, unless we are done already.
    fn arm_timer(&self) {
        let Some(timer) = self.timer() else { return };
        if self.err().is_some() {
            return;
        }
        let clock = &self.header.clock;
        // Relaxed: the clock's reference is published by `arm` itself.
        self.header.refs.fetch_add(1, Relaxed);
        clock.arm(NonNull::from(timer));
        // A cancel that ran before `arm` could not disarm; disarm now.
        if self.err().is_some() {
            clock.disarm(timer);
            return;
        }
        // A manual clock's `advance` may have passed our deadline while we
        // armed, and fires nothing until the next `advance`: fire it here
        // (if the disarm wins, nobody else will).
        if clock.is_manual() && timer.deadline() <= clock.now() && clock.disarm(timer) {
            cancel::cancel(self, Error::DeadlineExceeded, self.deadline_record(), true);
        }
    }

    /// Our own timer, if we have one.
    pub(crate) fn timer(&self) -> Option<&TimerEntry> {
        // SAFETY: `timer` is initialised iff `has_timer` (set at creation).
        self.has_timer
            .then(|| unsafe { self.timer.assume_init_ref() })
    }

    /// `err()` of this node.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        // Acquire: a reader that sees the node done may read its cause.
        crate::state::err_of(self.state.load(Acquire))
    }

    /// The err and record a closed state word stands for.
    pub(crate) fn published(&self, word: usize) -> (Error, Option<Arc<Record>>) {
        let err = crate::state::err_of(word).unwrap_or(Error::Canceled);
        if word & crate::state::CAUSE == 0 {
            return (err, None);
        }
        (err, Some(self.record_arc()))
    }

    /// `cause()` of this node.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let word = self.state.load(Acquire);
        let err = crate::state::err_of(word)?;
        if word & crate::state::CAUSE == 0 {
            return Some(Cause::of(err));
        }
        Some(self.record_ref().cause.clone())
    }

    fn record_ref(&self) -> &Record {
        // Acquire: pairs with the slot's publishing compare-exchange.
        let raw = self.record.load(Acquire) as *const Record;
        // SAFETY: only called after seeing CAUSE, so the slot is filled
        // (state inv. 2) and stays so until the node is freed.
        unsafe { &*raw }
    }

    fn record_arc(&self) -> Arc<Record> {
        let raw = self.record_ref() as *const Record;
        // SAFETY: the slot owns one strong count of this `Arc`; we add one.
        unsafe {
            Arc::increment_strong_count(raw);
            Arc::from_raw(raw)
        }
    }

    /// Fills the record slot if empty; returns the record it holds now.
    pub(crate) fn claim_record(&self, record: Arc<Record>) -> Arc<Record> {
        let raw = Arc::into_raw(record);
        // AcqRel: Release publishes the record to readers of CAUSE;
        // Acquire reads a competitor's record if it was first.
        match self
            .record
            .compare_exchange(0, raw as usize, crate::sync::Ordering::AcqRel, Acquire)
        {
            // SAFETY: the slot keeps the count we gave it; we add ours.
            Ok(_) => unsafe {
                Arc::increment_strong_count(raw);
                Arc::from_raw(raw)
            },
            Err(_) => {
                // SAFETY: ours was not stored; take it back to drop it.
                drop(unsafe { Arc::from_raw(raw) });
                self.record_arc()
            }
        }
    }

    /// The cause our own deadline fires with.
    pub(crate) fn deadline_record(&self) -> Option<Arc<Record>> {
        let cause = self.deadline_cause.clone()?;
        Some(Arc::new(Record {
            err: Error::DeadlineExceeded,
            cause,
        }))
    }

    /// Withdraws our links from the parents' lists (each at most once).
    ///
    /// Only a thread holding a handle on this node may call it: the handle
    /// keeps the parents, and so the lists' owners, alive.
    pub(crate) fn withdraw_links(&self) {
        for (entry, owner) in [(&self.link, self.owner), (&self.link2, self.owner2)] {
            match owner {
                // SAFETY: our handle holds the parent that owns the list.
                Some(owner) => {
                    unsafe { owner.as_ref() }.withdraw(entry);
                }
                None => debug_assert!(!entry.mark()),
            }
        }
    }

    /// An entry of our list was marked by its owner: sweep once enough are.
    pub(crate) fn entry_deleted(&self) {
        // Relaxed: `dead` only triggers sweeps; correctness never reads it.
        let dead = self.dead.fetch_add(1, Relaxed).wrapping_add(1) as isize;
        if dead < self.sweep_at.load(Relaxed) as isize {
            return;
        }
        // SeqCst: raises the flag of list invariant 5 before the sweep's
        // first head load; also orders us after the previous sweeper.
        if self.sweeping.swap(true, SeqCst) {
            return; // somebody is sweeping; they or the next delete will do
        }
        let guard = crossbeam_epoch::pin();
        // SAFETY: our list's entries follow list invariant 3.
        let swept = unsafe { crate::list::sweep(&self.state, &guard, defer_entry_release) };
        if let Some(s) = swept {
            self.dead.fetch_sub(s.removed, Relaxed);
            self.sweep_at.store(s.kept.max(SWEEP_MIN), Relaxed);
        }
        // We pin rarely, so help the epoch along: hand our deferred frees
        // over and collect, or garbage would outpace collection.
        guard.flush();
        // Release: pairs with the next sweeper's Acquire.
        self.sweeping.store(false, Release);
    }

    /// One more memory reference (node invariant 2), for a holder that
    /// must reach the node's list without keeping the context alive.
    pub(crate) fn acquire_ref(&self) {
        // Relaxed: the caller holds a handle, so the count is not zero.
        self.header.refs.fetch_add(1, Relaxed);
    }

    /// Whether a sweeper is walking our list now (list invariants 5, 6).
    pub(crate) fn sweeper_active(&self) -> bool {
        // SeqCst: the reader's half of the handshake of list invariant 6.
        self.sweeping.load(SeqCst)
    }

    /// `merge` only: the second parent.
    pub(crate) fn parent2(&self) -> Option<&Context> {
        // SAFETY: as `Header::parent`.
        self.parent2.with(|p| unsafe { (*p).as_ref() })
    }

    /// Withdraws one of our list entries: marks it, and counts it dead in
    /// this list if the mark was ours (list invariant 1).
    /// True if this call claimed it (else the drainer had).
    pub(crate) fn withdraw(&self, entry: &Entry) -> bool {
        if !entry.mark() {
            return false; // the drainer claimed it, and owns its list reference
        }
        // SAFETY: we marked our own linked entry.
        if !unsafe { crate::list::unlink_head(&self.state, entry) } {
            self.entry_deleted(); // a sweep will unlink it
            return true;
        }
        // The list reference is ours now (list invariant 5).
        let ptr = NonNull::from(entry);
        // SeqCst: the owner's second half of list invariant 5.
        if self.sweeping.load(SeqCst) {
            let guard = crossbeam_epoch::pin();
            defer_entry_release(ptr, &guard);
        } else {
            // SAFETY: no sweeper can reach the entry (list invariant 5), and
            // the drainer never will: it left the list before any close.
            unsafe { release_entry(ptr) };
        }
        true
    }

    pub(crate) fn as_header(&self) -> NonNull<Header> {
        NonNull::from(&self.header)
    }
}

impl Drop for CancelNode {
    fn drop(&mut self) {
        if self.has_timer {
            // SAFETY: initialised at creation; dropped only here.
            unsafe { self.timer.assume_init_drop() };
        }
        // Acquire: we are the last holder (refs reached zero).
        let raw = self.record.load(Acquire) as *const Record;
        if !raw.is_null() {
            // SAFETY: the slot owned one strong count; we are freeing.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}

/// Sweep at least this many dead entries at a time.
const SWEEP_MIN: usize = 64;

/// Links `entry` of `node` into `owner`'s list, taking the list's memory
/// reference; marks it unlinked when there is no list or it is closed.
fn attach_entry(
    node: &CancelNode,
    owner: Option<NonNull<CancelNode>>,
    entry: &Entry,
) -> Result<(), usize> {
    let Some(owner) = owner else {
        entry.mark_unlinked();
        return Ok(());
    };
    // Relaxed: the list's reference is published by the push's Release.
    node.header.refs.fetch_add(1, Relaxed);
    // SAFETY: `node` holds a handle on the parent that owns `owner`.
    let owner = unsafe { owner.as_ref() };
    // SAFETY: the entry is unlinked and lives as long as the node's memory,
    // which the reference just taken keeps (list invariant 3).
    match unsafe { crate::list::push(&owner.state, entry) } {
        Ok(()) => Ok(()),
        Err(word) => {
            entry.mark_unlinked();
            // Relaxed: we still hold the handles' reference.
            node.header.refs.fetch_sub(1, Relaxed);
            Err(word)
        }
    }
}

/// The container of an entry, by its kind.
pub(crate) fn entry_node(entry: NonNull<Entry>) -> NonNull<CancelNode> {
    // SAFETY: only called for Child / MergeLink entries, which live at
    // these offsets inside a `CancelNode`.
    let offset = match unsafe { entry.as_ref() }.kind() {
        EntryKind::Child => offset_of!(CancelNode, link),
        EntryKind::MergeLink => offset_of!(CancelNode, link2),
        _ => unreachable!("not a node entry"),
    };
    // SAFETY: the entry is a field of a live `CancelNode` at `offset`.
    unsafe { NonNull::new_unchecked(entry.as_ptr().cast::<u8>().sub(offset).cast()) }
}

/// Releases the list's reference on whatever contains `entry`.
///
/// # Safety
/// The caller owns that reference (list invariant 3).
pub(crate) unsafe fn release_entry(entry: NonNull<Entry>) {
    // SAFETY: the reference we own keeps the entry alive.
    match unsafe { entry.as_ref() }.kind() {
        EntryKind::Child | EntryKind::MergeLink => {
            // SAFETY: as above; the node's memory reference is ours.
            unsafe { release_ref(entry_node(entry).cast()) }
        }
        EntryKind::Waiter => {
            // SAFETY: as above.
            unsafe { crate::waiter::Waiter::release(entry.cast()) }
        }
        EntryKind::Callback => {
            // SAFETY: as above.
            unsafe { crate::after_func::Callback::release(entry.cast()) }
        }
    }
}

/// `release_entry` for a release deferred through the epoch: it runs on
/// whichever thread collects, so a panic of user `Drop` code is dropped
/// there (unwind invariant 4).
///
/// # Safety
/// As `release_entry`.
pub(crate) unsafe fn release_entry_deferred(entry: NonNull<Entry>) {
    // SAFETY: the caller's guarantee.
    crate::unwind::orphan(|| unsafe { release_entry(entry) });
}

/// Sweeper's hand-off: release through the epoch (list invariant 4).
fn defer_entry_release(entry: NonNull<Entry>, guard: &crossbeam_epoch::Guard) {
    // SAFETY: the sweeper that unlinked `entry` owns its list reference.
    unsafe { crate::list::defer_release(guard, entry, release_entry_deferred) }
}

/// Timer hook: our deadline is due.
unsafe fn fire_timer(timer: NonNull<TimerEntry>) {
    // SAFETY: the clock holds a memory reference for the timer until it
    // calls `release_timer`, so the node is alive.
    let node = unsafe { timer_node(timer).as_ref() };
    let record = node.deadline_record();
    cancel::cancel(node, Error::DeadlineExceeded, record, false);
}

/// Timer hook: the clock is done with our timer.
unsafe fn release_timer(timer: NonNull<TimerEntry>) {
    // SAFETY: the clock owned this memory reference (node invariant 2).
    unsafe { release_ref(timer_node(timer).cast()) }
}

fn timer_node(timer: NonNull<TimerEntry>) -> NonNull<CancelNode> {
    // SAFETY: every armed `TimerEntry` is the `timer` field of a live
    // `CancelNode` (a `MaybeUninit` holds its payload at offset 0).
    unsafe {
        NonNull::new_unchecked(
            timer
                .as_ptr()
                .cast::<u8>()
                .sub(offset_of!(CancelNode, timer))
                .cast(),
        )
    }
}
