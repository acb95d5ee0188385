//! The layouts of the tree's nodes, and the owning reference to one.
//!
//! Every derived context is one heap node. All kinds start with a
//! [`Header`], whose table ([`NodeVtable`]) says the kind and frees the
//! node; cancellable kinds (`with_cancel`, deadlines, `merge`) start with a
//! [`CancelNode`] (all of a `with_cancel` node; the other layouts are
//! `layout.rs`'s), value kinds are a `ValueNode` (`value.rs`).
//! `Context::background()` and `Context::todo()` are no node at all: a
//! [`NodeRef`] to them is one of two addresses no allocation can have, so
//! deriving from them touches no shared memory.
//!
//! Invariants (the counts themselves are `refs.rs`'s):
//! 1. A node's fields other than the atomics are written only before it is
//!    shared, except the parent cells, which only teardown empties; teardown
//!    runs once `handles` is zero, when no reader of those cells is left.
//! 2. A node's *scope* is the nearest cancellable ancestor-or-self (none:
//!    never done). No header stores it: a cancellable node is its own, a
//!    value node's is its parent's ([`scope_of`] walks), and a `Context`
//!    keeps its node's scope beside the pointer so that `err()` is one
//!    load. A cancellable node keeps its first parent's scope
//!    (`CancelNode::parent_scope`), whose list its link joins. The parent
//!    handles keep every scope alive.
//! 3. The record slot is claimed once (state invariant 2): a claimed
//!    record is never replaced, and owns one strong count of its
//!    `Arc<Record>` until the node is freed. Before that the slot may hold
//!    a deadline's own record as *pending* (tag `PENDING`, set at creation
//!    and read by nobody but a claim): the deadline's claim keeps it, any
//!    other claim replaces it and drops it. Readers read the slot only
//!    after seeing `CAUSE`, which only a claimed record is published with.

use super::list::{Entry, List};
use super::state::err_of;
use crate::clock::Clock;
use crate::error::Error;
use crate::sync::Ordering::Relaxed;
use crate::sync::{AtomicUsize, LeakTrack, UnsafeCell};
use std::mem::{offset_of, size_of, ManuallyDrop};
use std::ptr::NonNull;

/// What a node is. The discriminant is also the tag in the low bits of
/// `Header::vtable`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum NodeKind {
    /// `clock.background()` of a manual clock.
    Root = 0,
    /// `with_cancel` (and deadlines later than the parent's).
    Cancel = 1,
    /// `with_deadline`, `with_timeout` with a deadline of its own.
    Deadline = 2,
    /// `merge(a, b)`.
    Merge = 3,
    /// `with_value`.
    Value = 4,
    /// `without_cancel`.
    WithoutCancel = 5,
}

impl NodeKind {
    /// The kind a `Header::vtable` tag stands for.
    #[inline]
    fn of_tag(tag: usize) -> NodeKind {
        match tag {
            0 => NodeKind::Root,
            1 => NodeKind::Cancel,
            2 => NodeKind::Deadline,
            3 => NodeKind::Merge,
            4 => NodeKind::Value,
            _ => NodeKind::WithoutCancel,
        }
    }
}

/// The low bits of `Header::vtable` that hold the node's kind (tables are
/// aligned to 8).
const KIND_TAG: usize = 7;

/// The two roots that are no node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Root {
    /// `Context::background()`.
    Background,
    /// `Context::todo()`.
    Todo,
}

/// `Root::Background` and `Root::Todo` as addresses no allocation can have.
const BACKGROUND: usize = 8;
const TODO: usize = 16;

/// An owning reference to a node: one `handles` count on it (refs.rs), or
/// one of the two roots. `Context` is this and its scope; a node holds
/// its parents through it. Cloning and dropping count (`refs.rs`).
pub(crate) struct NodeRef {
    ptr: NonNull<Header>,
}

// SAFETY: a counted reference on a node whose shared state is atomic;
// values are `Send + Sync` by `with_value`'s bounds.
unsafe impl Send for NodeRef {}
// SAFETY: as above; every `&self` method only reads.
unsafe impl Sync for NodeRef {}

// Identity: two references are equal when they are on the same node (or
// the same root); `Context`'s `==` and `Hash` are these.
impl PartialEq for NodeRef {
    fn eq(&self, other: &NodeRef) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for NodeRef {}

impl std::hash::Hash for NodeRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
    }
}

impl NodeRef {
    /// A reference to a root.
    pub(crate) fn root(root: Root) -> NodeRef {
        let addr = match root {
            Root::Background => BACKGROUND,
            Root::Todo => TODO,
        };
        NodeRef {
            // SAFETY: `addr` is a non-zero constant.
            ptr: unsafe { NonNull::new_unchecked(addr as *mut Header) },
        }
    }

    /// Adopts one handle count on `h`.
    ///
    /// # Safety
    /// The caller gives up one handle count it owns on the live node `h`,
    /// or `h` is a root's address taken from another `NodeRef`.
    pub(crate) unsafe fn adopt(h: NonNull<Header>) -> NodeRef {
        NodeRef { ptr: h }
    }

    /// The address, node or root (for `Clone`, which counts it).
    pub(super) fn raw(&self) -> NonNull<Header> {
        self.ptr
    }

    /// The node's pointer (`None` for the roots), with the provenance of
    /// the whole allocation (see "Provenance" in docs/design.md): the one to
    /// release or free through, never one taken from a `&Header`.
    pub(crate) fn node_ptr(&self) -> Option<NonNull<Header>> {
        self.header().is_some().then_some(self.ptr)
    }

    /// Gives up this reference as a raw node pointer (`None` for the roots);
    /// the caller then owns its handle count.
    pub(crate) fn into_raw(self) -> Option<NonNull<Header>> {
        let node = self.node_ptr();
        std::mem::forget(self);
        node
    }

    /// Which root this is, if it is one.
    pub(crate) fn as_root(&self) -> Option<Root> {
        match self.ptr.as_ptr() as usize {
            BACKGROUND => Some(Root::Background),
            TODO => Some(Root::Todo),
            _ => None,
        }
    }

    /// The node (`None` for the roots).
    #[inline]
    pub(crate) fn header(&self) -> Option<&Header> {
        if self.ptr.as_ptr() as usize <= TODO {
            return None;
        }
        // SAFETY: a non-root reference owns a handle, so the node is alive.
        Some(unsafe { self.ptr.as_ref() })
    }

    /// The nearest cancellable ancestor-or-self, if any: a walk up the
    /// value nodes (invariant 2). `Context` keeps the answer.
    pub(crate) fn scope_ptr(&self) -> Option<NonNull<CancelNode>> {
        // SAFETY: our handle keeps the node alive; its own pointer.
        self.node_ptr().and_then(|h| unsafe { scope_of(h) })
    }
}

/// The scope of the live node `h` (invariant 2).
///
/// # Safety
/// `h` is a live node's own pointer; the scope is alive as long as `h` is.
pub(crate) unsafe fn scope_of(mut h: NonNull<Header>) -> Option<NonNull<CancelNode>> {
    loop {
        // SAFETY: `h` is the node or an ancestor kept alive by it, and an
        // allocation's own pointer (parents are stored so).
        unsafe {
            if let Some(scope) = as_cancel(h) {
                return Some(scope);
            }
            if !is_kind(h, NodeKind::Value) {
                return None; // a manual root or a `without_cancel`
            }
            h = h.as_ref().parent()?.node_ptr()?;
        }
    }
}

/// What a node's first word points at: its kind and how to free it. Each
/// cancellable kind has one static table; a value node's table is part of
/// its key (`Key<T>` starts with one), so one pointer says both "a value
/// node" and which key, and the key's type frees the value.
#[repr(C, align(8))]
pub(crate) struct NodeVtable {
    pub(crate) kind: NodeKind,
    /// Frees the allocation, whose type only the creator knows.
    pub(super) free: unsafe fn(NonNull<Header>),
}

/// The common head of every node (first field of each node type): 24 bytes.
///
/// `vtable` is the last field, next to the `CancelNode` fields a drain
/// touches (see `CancelNode`).
#[repr(C)]
pub(crate) struct Header {
    pub(super) handles: AtomicUsize,
    /// The node this one was derived from, until teardown (invariant 1).
    parent: UnsafeCell<Option<NodeRef>>,
    /// The table, its kind added to the address (`KIND_TAG`), so that the
    /// kind is one load of the node's own line. A raw pointer, not a
    /// reference: a value node's table is the head of its key, and
    /// `Display` reads the key's name through it.
    vtable: NonNull<NodeVtable>,
    _track: LeakTrack,
}

/// A cancellable node's core: all of a `with_cancel` node (96 bytes), and
/// the head of a deadline or merge node (`layout.rs`).
///
/// Field order is for the drain, which reaches each child through `link`
/// and touches the header's `vtable` (is there a timer to disarm?), `refs`,
/// the list's `state` and sweep flag, and `link`, and nothing else:
/// together they span under 64 bytes, so a child costs at most two cache
/// lines (checked below).
#[repr(C)]
pub(crate) struct CancelNode {
    pub(crate) header: Header,
    /// Memory references (refs.rs); only cancellable nodes have them.
    pub(super) refs: AtomicUsize,
    /// The node's list of children, waiters and callbacks (`list.rs`).
    pub(crate) list: List,
    /// Our entry in the (first) parent scope's list.
    pub(crate) link: Entry,
    /// `Arc<Record>` as a raw pointer, or 0; claimed once (invariant 3);
    /// tagged `PENDING` while it holds a deadline's unclaimed record
    /// (`record.rs`).
    pub(super) record: AtomicUsize,
    /// The nearest ancestor that answers value lookups.
    pub(super) values: Option<NonNull<Header>>,
    /// The clock and the effective deadline (`layout.rs`).
    pub(super) time: TimeSlot,
    /// The first parent's scope, whose list `link` joins (invariant 2):
    /// kept, so that linking and unlinking read nothing of the parent.
    pub(super) parent_scope: Option<NonNull<CancelNode>>,
}

/// A `with_cancel` node's time base, or a deadline or merge node's clock.
pub(crate) union TimeSlot {
    /// `Cancel` kind: the nearest ancestor with a clock and a deadline of
    /// its own (a manual root, a `without_cancel`, a deadline or a merge
    /// node; `None`: the system clock and no deadline).
    pub(super) base: Option<NonNull<Header>>,
    /// `Deadline` and `Merge` kinds: the node's clock.
    pub(super) clock: ManuallyDrop<Clock>,
}

/// Bytes of the drain's fields before a child's `link` (from `vtable`).
pub(crate) const DRAIN_BEFORE_LINK: usize =
    offset_of!(CancelNode, link) - offset_of!(Header, vtable);
/// Bytes of the drain's fields from a child's `link` on (its end).
pub(crate) const DRAIN_FROM_LINK: usize = size_of::<Entry>();

// The drain's fields stay within one 64-byte span (see `CancelNode`).
#[cfg(not(loom))]
const _: () = assert!(DRAIN_BEFORE_LINK + DRAIN_FROM_LINK <= 64);

// SAFETY: all shared mutation goes through atomics; the parent cells follow
// invariant 1; the value is `Send + Sync` (required by `with_value`).
unsafe impl Send for Header {}
// SAFETY: as above.
unsafe impl Sync for Header {}
// SAFETY: as above; the base and values nodes are ancestors, kept alive by
// the parent handles.
unsafe impl Send for CancelNode {}
// SAFETY: as above.
unsafe impl Sync for CancelNode {}

/// The kind of a live node, through its pointer.
///
/// # Safety
/// `h` is a live node.
#[inline]
pub(crate) unsafe fn kind_of(h: NonNull<Header>) -> NodeKind {
    // SAFETY: the caller's promise.
    NodeKind::of_tag(unsafe { tag_of(h) })
}

/// Whether a live node is of `kind`: one load and a compare.
///
/// # Safety
/// As [`kind_of`].
#[inline]
pub(crate) unsafe fn is_kind(h: NonNull<Header>, kind: NodeKind) -> bool {
    // SAFETY: the caller's promise.
    unsafe { tag_of(h) == kind as usize }
}

/// The kind tag of a live node.
///
/// # Safety
/// As [`kind_of`].
#[inline]
unsafe fn tag_of(h: NonNull<Header>) -> usize {
    // SAFETY: alive (caller).
    unsafe { h.as_ref() }.vtable.as_ptr() as usize & KIND_TAG
}

/// `h` as a cancellable node, if it is one. Takes the node's pointer: one
/// taken from a `&Header` may not reach the rest of the node.
///
/// # Safety
/// `h` is a live node's pointer with the provenance of its allocation.
pub(crate) unsafe fn as_cancel(h: NonNull<Header>) -> Option<NonNull<CancelNode>> {
    // Nodes of these kinds (tags 1 to 3) start with a `CancelNode`, whose
    // first field is the header (`repr(C)`).
    // SAFETY: alive (caller).
    let tag = unsafe { tag_of(h) };
    (tag.wrapping_sub(NodeKind::Cancel as usize) < NodeKind::Merge as usize).then(|| h.cast())
}

/// Frees a node allocated as a `T` (`blocks::leak`) whose first field is
/// the header.
///
/// # Safety
/// `h` must come from `blocks::leak::<T>`, and its memory be unreferenced
/// (`refs` zero, or `handles` zero for a kind without `refs`).
pub(crate) unsafe fn free_box<T>(h: NonNull<Header>) {
    // SAFETY: the caller guarantees the allocation's type and ownership.
    unsafe { super::blocks::free(h.cast::<T>()) };
}

impl Header {
    /// A header with one handle, for a node of the table's kind.
    pub(super) fn new(vtable: NonNull<NodeVtable>, parent: Option<NodeRef>) -> Header {
        // SAFETY: tables are statics or keys, which are `'static`.
        let kind = unsafe { vtable.as_ref() }.kind as usize;
        // The tag stays inside the table (aligned to 8, so at least 8
        // bytes long), and `wrapping_add` keeps the table's provenance.
        let tagged = vtable.as_ptr().cast::<u8>().wrapping_add(kind);
        Header {
            handles: AtomicUsize::new(1),
            parent: UnsafeCell::new(parent),
            // SAFETY: a non-null address plus a small offset.
            vtable: unsafe { NonNull::new_unchecked(tagged.cast()) },
            _track: LeakTrack::new(),
        }
    }

    /// The node's table (its kind, its free function; a value node's key).
    pub(crate) fn vtable(&self) -> NonNull<NodeVtable> {
        let tagged = self.vtable.as_ptr().cast::<u8>();
        let untagged = tagged.wrapping_sub(tagged as usize & KIND_TAG);
        // SAFETY: the table's own address, which is not null.
        unsafe { NonNull::new_unchecked(untagged.cast()) }
    }

    /// Whether the node's table is `table` (a kind's variant: `shared.rs`).
    #[inline]
    pub(super) fn has_table(&self, table: &'static NodeVtable) -> bool {
        // The tagged word against the table's tagged address: no untagging.
        let tagged = (table as *const NodeVtable as usize) + table.kind as usize;
        self.vtable.as_ptr() as usize == tagged
    }

    /// The parent this node was derived from.
    pub(crate) fn parent(&self) -> Option<&NodeRef> {
        // SAFETY: a caller with a `&Header` from a live reference holds a
        // handle, so teardown has not emptied the cell (invariant 1).
        self.parent.with(|p| unsafe { (*p).as_ref() })
    }

    /// Empties the parent cell at teardown.
    ///
    /// # Safety
    /// `handles` is zero: nobody else reads the cell (invariant 1).
    pub(super) unsafe fn take_parent(&self) -> Option<NodeRef> {
        // SAFETY: the caller's promise.
        self.parent.with_mut(|p| unsafe { (*p).take() })
    }
}

impl CancelNode {
    /// `err()` of this node.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        err_of(self.list.word())
    }

    /// The header's pointer (the first field), with the node's provenance.
    pub(crate) fn header_ptr(node: NonNull<CancelNode>) -> NonNull<Header> {
        node.cast()
    }

    /// A new core with two handles and one memory reference, not linked
    /// yet (`create.rs` links it); `parent` comes with its scope.
    #[inline]
    pub(super) fn new(
        vtable: &'static NodeVtable,
        parent: Parent<'_>,
        values: Option<NonNull<Header>>,
        time: TimeSlot,
    ) -> CancelNode {
        CancelNode::with_parent(vtable, parent.node.clone(), parent.scope, values, time, 2)
    }

    /// [`CancelNode::new`] with the parent cell's reference given, the
    /// parent's scope, and `handles` handles (a shard has one, the hub's).
    #[inline]
    pub(super) fn with_parent(
        vtable: &'static NodeVtable,
        parent: NodeRef,
        parent_scope: Option<NonNull<CancelNode>>,
        values: Option<NonNull<Header>>,
        time: TimeSlot,
        handles: usize,
    ) -> CancelNode {
        let header = Header::new(NonNull::from(vtable), Some(parent));
        // Relaxed: the node is not shared yet; publishing it orders this.
        header.handles.store(handles, Relaxed);
        CancelNode {
            header,
            refs: AtomicUsize::new(1),
            list: List::new(),
            link: Entry::new(super::list::EntryKind::Child),
            record: AtomicUsize::new(0),
            values,
            time,
            parent_scope,
        }
    }
}

/// A parent to derive from: its reference and its scope (which the
/// caller's `Context` keeps, invariant 2). `Parent::of` builds it
/// (`shared.rs`: a shared context's children derive from a shard).
#[derive(Clone, Copy)]
pub(crate) struct Parent<'a> {
    pub(super) node: &'a NodeRef,
    pub(super) scope: Option<NonNull<CancelNode>>,
}
