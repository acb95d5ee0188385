//! The node layouts past the common core, one per kind, and the time base
//! (where a node's clock and effective deadline live).
//!
//! Each kind allocates only the fields it uses (docs/design.md, "Nodes"):
//!
//! | kind | layout |
//! |---|---|
//! | `with_cancel` | a bare [`CancelNode`] (its time slot: the base pointer) |
//! | deadline | [`DeadlineNode`]: the core and the timer entry (a cause's record waits in the core's record slot) |
//! | `merge` | [`MergeNode`]: the core, the second link and parent, the deadline |
//! | manual root, `without_cancel` | [`PlainNode`]: the header, `values`, the clock |
//! | value | [`ValueNode<T>`]: the header, the key filter, the value |
//!
//! Invariants:
//! 1. The *base* of a node is the nearest ancestor-or-self that owns a
//!    clock and a deadline: a manual root, a `without_cancel`, a deadline
//!    or a merge node; `None` stands for the system clock and no deadline.
//!    A `with_cancel` node stores its base; a value node's base is that of
//!    the nearest non-value ancestor, which is `background()` itself when
//!    the filter says `NO_BASE`. The
//!    base is an ancestor kept alive by the parent handles, and its clock
//!    and deadline never change.
//! 2. A deadline or merge node's time slot holds its clock; a `with_cancel`
//!    node's holds its base. The kind (the node's table) says which.

use super::blocks;
use super::list::{Entry, EntryKind};
use super::node::{
    free_box, is_kind, kind_of, CancelNode, Header, NodeKind, NodeRef, NodeVtable, Parent, TimeSlot,
};
use super::record::Record;
use crate::clock::Clock;
use crate::sync::Ordering::Relaxed;
use crate::sync::UnsafeCell;
use crate::time::{TimerEntry, TimerHooks};
use std::mem::ManuallyDrop;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tables of the kinds that are not values.
static CANCEL: NodeVtable = table(NodeKind::Cancel, free_box::<CancelNode>);
static DEADLINE: NodeVtable = table(NodeKind::Deadline, free_box::<DeadlineNode>);
static MERGE: NodeVtable = table(NodeKind::Merge, free_box::<MergeNode>);
static ROOT: NodeVtable = table(NodeKind::Root, free_box::<PlainNode>);
static WITHOUT_CANCEL: NodeVtable = table(NodeKind::WithoutCancel, free_box::<PlainNode>);

const fn table(kind: NodeKind, free: unsafe fn(NonNull<Header>)) -> NodeVtable {
    NodeVtable { kind, free }
}

/// `with_deadline`/`with_timeout` with a deadline of its own.
#[repr(C)]
pub(crate) struct DeadlineNode {
    pub(crate) core: CancelNode,
    /// Armed iff the deadline was ahead at creation; its `deadline` is the
    /// node's.
    pub(crate) timer: TimerEntry,
}

/// `merge(a, b)`.
#[repr(C)]
pub(crate) struct MergeNode {
    pub(crate) core: CancelNode,
    /// Our entry in the second parent scope's list.
    pub(crate) link2: Entry,
    /// The second parent, until teardown (node invariant 1).
    parent2: UnsafeCell<Option<NodeRef>>,
    /// The earlier of the parents' deadlines.
    deadline: Option<Instant>,
}

/// A manual clock's root, or a `without_cancel` node: never done.
#[repr(C)]
pub(crate) struct PlainNode {
    header: Header,
    /// The nearest ancestor that answers value lookups.
    values: Option<NonNull<Header>>,
    clock: Clock,
}

// Heap bytes per live context (docs/design.md, "Nodes"); the first two are
// the per-request budgets (with the value node's, in `value.rs`).
#[cfg(all(target_pointer_width = "64", not(loom)))]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<CancelNode>() <= 96);
    assert!(size_of::<DeadlineNode>() <= 160);
    assert!(size_of::<MergeNode>() <= 136);
    assert!(size_of::<PlainNode>() <= 48);
};

impl Drop for DeadlineNode {
    fn drop(&mut self) {
        // SAFETY: a deadline node's slot holds its clock (invariant 2).
        unsafe { ManuallyDrop::drop(&mut self.core.time.clock) };
    }
}

impl Drop for MergeNode {
    fn drop(&mut self) {
        // SAFETY: a merge node's slot holds its clock (invariant 2).
        unsafe { ManuallyDrop::drop(&mut self.core.time.clock) };
    }
}

/// Allocates a new cancellable node (every cancellable layout starts with
/// the core).
#[inline(always)]
fn leak_cancel<T>(make: impl FnOnce() -> T) -> NonNull<CancelNode> {
    blocks::leak(make).cast::<CancelNode>()
}

/// A `with_cancel` child of `parent`, not linked yet.
#[inline]
pub(super) fn new_cancel(parent: Parent<'_>) -> NonNull<CancelNode> {
    // SAFETY: our caller's handle keeps `parent` alive.
    let base = unsafe { base_of(parent.node) };
    leak_cancel(|| CancelNode::new(&CANCEL, parent, parent.node.values(), TimeSlot { base }))
}

/// A deadline child of `parent`, due `at` on `clock` (the parent's, which
/// the caller has read), not linked yet; its timer built queued if it will
/// be armed (`TimerEntry::built`).
#[inline]
pub(super) fn new_deadline(
    parent: Parent<'_>,
    clock: Clock,
    at: Instant,
    record: Option<Arc<Record>>,
    hooks: &'static TimerHooks,
    armed: bool,
) -> NonNull<CancelNode> {
    let clock = ManuallyDrop::new(clock);
    let values = parent.node.values();
    let node = leak_cancel(|| DeadlineNode {
        core: CancelNode::new(&DEADLINE, parent, values, TimeSlot { clock }),
        timer: TimerEntry::built(at, hooks, armed),
    });
    // The `_cause` variants' record waits in the core's slot (node inv. 3).
    // SAFETY: just built, and not shared yet.
    unsafe { node.as_ref() }.pend_record(record);
    node
}

/// `merge(a, b)`, not linked yet.
pub(super) fn new_merge(a: Parent<'_>, b: &NodeRef) -> NonNull<CancelNode> {
    let deadline = match (a.node.deadline(), b.deadline()) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    let clock = ManuallyDrop::new(a.node.clock());
    leak_cancel(|| MergeNode {
        // A merge answers lookups itself (`values_of`).
        core: CancelNode::new(&MERGE, a, None, TimeSlot { clock }),
        link2: Entry::new(EntryKind::MergeLink),
        parent2: UnsafeCell::new(Some(b.clone())),
        deadline,
    })
}

/// A root node for a manual clock.
pub(super) fn new_root(clock: Clock) -> NonNull<Header> {
    let node = blocks::leak(|| PlainNode {
        header: Header::new(NonNull::from(&ROOT), None),
        values: None,
        clock,
    });
    node.cast()
}

/// A `without_cancel` child of `parent`: its values, never done.
pub(super) fn new_without_cancel(parent: &NodeRef) -> NonNull<Header> {
    let node = blocks::leak(|| PlainNode {
        header: Header::new(NonNull::from(&WITHOUT_CANCEL), Some(parent.clone())),
        values: parent.values(),
        clock: parent.clock(),
    });
    node.cast()
}

/// The nearest ancestor-or-self that answers value lookups: a value or
/// merge node itself, else the one it recorded.
///
/// # Safety
/// `h` is a live node's own pointer.
#[inline]
pub(super) unsafe fn values_of(h: NonNull<Header>) -> Option<NonNull<Header>> {
    // SAFETY: alive (caller); each kind's layout starts as cast. The value
    // node, the lookups' common start, is tested first, on its tag alone.
    unsafe {
        if is_kind(h, NodeKind::Value) {
            return Some(h);
        }
        match kind_of(h) {
            NodeKind::Value | NodeKind::Merge => Some(h),
            NodeKind::Cancel | NodeKind::Deadline => h.cast::<CancelNode>().as_ref().values,
            NodeKind::Root | NodeKind::WithoutCancel => h.cast::<PlainNode>().as_ref().values,
        }
    }
}

/// The base of `node` (invariant 1).
///
/// # Safety
/// The caller holds `node` for as long as it uses the result.
pub(super) unsafe fn base_of(node: &NodeRef) -> Option<NonNull<Header>> {
    let mut h = node.node_ptr()?;
    loop {
        // SAFETY: `h` is `node` or an ancestor, alive by its handle, and an
        // allocation's own pointer (stored so by `create.rs`).
        match unsafe { kind_of(h) } {
            NodeKind::Root | NodeKind::WithoutCancel | NodeKind::Deadline | NodeKind::Merge => {
                return Some(h)
            }
            // SAFETY: as above; a cancel node's slot holds its base.
            NodeKind::Cancel => return unsafe { h.cast::<CancelNode>().as_ref().time.base },
            NodeKind::Value => {
                // SAFETY: as above.
                if unsafe { filter_has(Some(h), NO_BASE) } {
                    return None;
                }
                // SAFETY: as above.
                h = unsafe { h.as_ref() }.parent()?.node_ptr()?;
            }
        }
    }
}

/// The deadline a base stands for.
///
/// # Safety
/// `base` is a live base (invariant 1).
pub(super) unsafe fn base_deadline(base: NonNull<Header>) -> Option<Instant> {
    // SAFETY: alive (caller); the layouts are as the kind says.
    unsafe {
        match kind_of(base) {
            NodeKind::Deadline => Some(base.cast::<DeadlineNode>().as_ref().timer.deadline()),
            NodeKind::Merge => base.cast::<MergeNode>().as_ref().deadline,
            _ => None,
        }
    }
}

/// The clock a base stands for.
///
/// # Safety
/// As [`base_deadline`].
pub(super) unsafe fn base_clock(base: NonNull<Header>) -> Clock {
    // SAFETY: alive (caller); the layouts are as the kind says.
    unsafe {
        match kind_of(base) {
            NodeKind::Deadline | NodeKind::Merge => {
                Clock::clone(&base.cast::<CancelNode>().as_ref().time.clock)
            }
            _ => base.cast::<PlainNode>().as_ref().clock.clone(),
        }
    }
}

/// A deadline node's clock, for arming and disarming its timer.
///
/// # Safety
/// `node` is a live deadline node.
pub(crate) unsafe fn own_clock<'a>(node: NonNull<CancelNode>) -> &'a Clock {
    // SAFETY: the caller's promise (invariant 2).
    unsafe { &(*node.as_ptr()).time.clock }
}

// The time base and values, through a reference (node.rs has the rest).
impl NodeRef {
    /// The nearest ancestor-or-self that answers value lookups.
    #[inline]
    pub(crate) fn values(&self) -> Option<NonNull<Header>> {
        // SAFETY: our handle keeps the node alive; its own pointer.
        self.node_ptr().and_then(|h| unsafe { values_of(h) })
    }

    /// The effective deadline (`None` for never).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        // SAFETY: as above; the base is an ancestor-or-self.
        unsafe { base_of(self) }.and_then(|b| unsafe { base_deadline(b) })
    }

    /// The clock and the effective deadline, from one walk to the base.
    pub(crate) fn time(&self) -> (Clock, Option<Instant>) {
        // SAFETY: as above.
        match unsafe { base_of(self) } {
            // SAFETY: as above.
            Some(b) => unsafe { (base_clock(b), base_deadline(b)) },
            None => (Clock::system(), None),
        }
    }

    /// The clock of the tree's root.
    pub(crate) fn clock(&self) -> Clock {
        self.time().0
    }

    /// What is left before the effective deadline, on the tree's clock
    /// (`None` for never): one walk for both.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let (clock, deadline) = self.time();
        Some(deadline?.saturating_duration_since(clock.now()))
    }
}

impl MergeNode {
    /// The second parent of a merge node.
    ///
    /// # Safety
    /// `node` is a live merge node's own pointer, and the caller holds a
    /// handle on it (or is its teardown, before `take_parent2`).
    pub(crate) unsafe fn parent2<'a>(node: NonNull<Header>) -> Option<&'a NodeRef> {
        // SAFETY: the caller's promise; as `Header::parent`.
        let cell = unsafe { &node.cast::<MergeNode>().as_ref().parent2 };
        // SAFETY: as above.
        cell.with(|p| unsafe { (*p).as_ref() })
    }

    /// Empties the second parent cell at teardown.
    ///
    /// # Safety
    /// `node` is a merge node's own pointer and its `handles` are zero.
    pub(super) unsafe fn take_parent2(node: NonNull<Header>) -> Option<NodeRef> {
        // SAFETY: the caller's promise.
        let cell = unsafe { &node.cast::<MergeNode>().as_ref().parent2 };
        // SAFETY: nobody else reads the cell (node invariant 1).
        cell.with_mut(|p| unsafe { (*p).take() })
    }
}

/// A merge node's second link, derived from the node's pointer (entry.rs
/// invariant 2); `None` for the other kinds.
///
/// # Safety
/// `node` is a live cancellable node's own pointer.
pub(super) unsafe fn link2_ptr(node: NonNull<CancelNode>) -> Option<NonNull<Entry>> {
    // SAFETY: alive (caller); the kind never changes.
    if !unsafe { is_kind(node.cast(), NodeKind::Merge) } {
        return None;
    }
    let merge = node.cast::<MergeNode>().as_ptr();
    // SAFETY: a field projection of a live merge node's pointer, so in
    // bounds and not null; no access.
    Some(unsafe { NonNull::new_unchecked(addr_of_mut!((*merge).link2)) })
}

/// The list references a cancellable node's links keep for its teardown
/// (`entry::withdraw_keeping`), 0 to 2.
///
/// # Safety
/// `node` is a live cancellable node's own pointer.
pub(super) unsafe fn kept_refs(node: NonNull<CancelNode>) -> usize {
    // Relaxed: the store was made under a handle, and every handle's
    // release happens before the teardown that asks.
    // SAFETY: the node's links live as long as the node (caller).
    let kept = |e: NonNull<Entry>| usize::from(unsafe { e.as_ref() }.kept.load(Relaxed));
    // SAFETY: alive (caller).
    let first = kept(NonNull::from(&unsafe { node.as_ref() }.link));
    // SAFETY: as above.
    first + unsafe { link2_ptr(node) }.map_or(0, kept)
}

/// A `with_value` node carrying a `T`; its header's table is its key's.
#[repr(C)]
pub(crate) struct ValueNode<T> {
    pub(crate) header: Header,
    /// Which key slots occur from here outward.
    pub(crate) filter: KeyFilter,
    pub(crate) value: T,
}

// A `u64` value costs 48 bytes: the header (24), the filter, the value.
#[cfg(all(target_pointer_width = "64", not(loom)))]
const _: () = assert!(std::mem::size_of::<ValueNode<u64>>() <= 48);

/// The node table of a `ValueNode<T>`, which each `Key<T>` starts with.
pub(crate) const fn value_vtable<T>() -> NodeVtable {
    NodeVtable {
        kind: NodeKind::Value,
        free: free_box::<ValueNode<T>>,
    }
}

/// A set of key slots (bit `slot % 128`; slot numbers skip those whose
/// bit would be 127), and in bit 127 the `NO_BASE` flag. Two words, not a
/// `u128`, whose 16-byte alignment would pad a `ValueNode<u64>` to 64
/// bytes.
#[derive(Clone, Copy)]
pub(crate) struct KeyFilter([u64; 2]);

/// Bit 127 of a value node's filter: its nearest non-value ancestor is
/// `background()` or `todo()`, so its clock is the system clock without
/// walking up (`layout::base_of`).
const NO_BASE: u32 = 127;

impl KeyFilter {
    const NONE: KeyFilter = KeyFilter([0; 2]);
    const ALL: KeyFilter = KeyFilter([u64::MAX; 2]);

    /// The filter of a new value node under `parent`, for a key in `slot`.
    ///
    /// # Safety
    /// The caller holds `parent`.
    pub(crate) unsafe fn of_child(parent: &NodeRef, slot: u32) -> KeyFilter {
        // SAFETY: the parent's values are kept alive by the parent.
        let outer = unsafe { filter_of(parent.values()) }.without(NO_BASE);
        let no_base = match parent.node_ptr() {
            None => true,
            // SAFETY: kept alive by the parent.
            Some(h) => unsafe { is_kind(h, NodeKind::Value) && filter_has(Some(h), NO_BASE) },
        };
        let filter = outer.with(slot);
        if no_base {
            filter.with(NO_BASE)
        } else {
            filter
        }
    }

    /// Bit `bit % 128`'s word and mask (no bounds check on the lookup path).
    #[inline]
    fn at(bit: u32) -> (usize, u64) {
        ((bit as usize >> 6) & 1, 1 << (bit & 63))
    }

    /// Bit `bit % 128` as a mask per word. `with` and `without` change
    /// both words through it: writing one word of the pair by index would
    /// put the pair through the stack and stall its reload (see
    /// `blocks::leak`).
    #[inline]
    fn masks(bit: u32) -> [u64; 2] {
        match KeyFilter::at(bit) {
            (0, mask) => [mask, 0],
            (_, mask) => [0, mask],
        }
    }

    fn with(self, bit: u32) -> KeyFilter {
        let [lo, hi] = KeyFilter::masks(bit);
        KeyFilter([self.0[0] | lo, self.0[1] | hi])
    }

    fn without(self, bit: u32) -> KeyFilter {
        let [lo, hi] = KeyFilter::masks(bit);
        KeyFilter([self.0[0] & !lo, self.0[1] & !hi])
    }
}

/// The filter of the lookups that start at `values`, where it is kept: in
/// a value node, or a constant (none for no values, all for a merge).
///
/// # Safety
/// `values` must be alive, and the result is used while it is.
#[inline]
unsafe fn filter_ref<'a>(values: Option<NonNull<Header>>) -> &'a KeyFilter {
    let Some(h) = values else {
        return &KeyFilter::NONE;
    };
    // SAFETY: alive by the caller's guarantee.
    if !unsafe { is_kind(h, NodeKind::Value) } {
        return &KeyFilter::ALL;
    }
    // SAFETY: value nodes are a `ValueNode<_>`, whose filter's offset does
    // not depend on the value's type (`repr(C)`, header first).
    unsafe { &h.cast::<ValueNode<()>>().as_ref().filter }
}

/// Whether the filter of the lookups that start at `values` has `bit` (a
/// key's slot, or `NO_BASE`). Reads the one word that holds the bit: a
/// node's filter is written as two words when it is built, often just
/// before a lookup through it, and a read of both as one 16-byte load then
/// cannot be served from those two pending stores and waits for them
/// (about 8 ns per lookup measured right after `with_value`).
///
/// # Safety
/// `values` must be alive.
#[inline]
pub(crate) unsafe fn filter_has(values: Option<NonNull<Header>>, bit: u32) -> bool {
    let (word, mask) = KeyFilter::at(bit);
    // SAFETY: the caller's promise.
    unsafe { filter_ref(values) }.0[word] & mask != 0
}

/// The filter of the lookups that start at `values`.
///
/// # Safety
/// `values` must be alive.
#[inline]
pub(crate) unsafe fn filter_of(values: Option<NonNull<Header>>) -> KeyFilter {
    // SAFETY: the caller's promise.
    *unsafe { filter_ref(values) }
}
