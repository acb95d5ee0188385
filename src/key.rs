//! Typed keys for context values.

use crate::tree::{self, NodeVtable};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
// Not the loom facade: a key's slot is a cache filled once per key, read
// only to skip lookups, and keys are `static`s (loom atomics are not const).
use std::sync::atomic::{AtomicU32, Ordering};

/// A typed key for values carried by a context: Go's `WithValue` key, made
/// type-safe.
///
/// Declare each key once as a `static`; its identity is the static's
/// address, so two keys never collide even with the same name or type, and
/// a lookup needs no hashing or downcasting. The name is only for display.
///
/// ```
/// use gocontext::{Context, Key};
/// static REQUEST_ID: Key<u64> = Key::new("request-id");
///
/// let ctx = Context::background().with_value(&REQUEST_ID, 42);
/// assert_eq!(ctx.value(&REQUEST_ID), Some(&42));
/// assert_eq!(REQUEST_ID.name(), "request-id");
/// ```
#[repr(C)]
pub struct Key<T> {
    /// The node table of a value under this key: first, so that the key's
    /// address is the table's, which is how a value node names its key
    /// (tree/value.rs).
    vtable: NodeVtable,
    name: &'static str,
    /// A small number given to the key on first use (0 = not yet); also
    /// makes the key non-zero-sized, so every `static Key` has its own
    /// address.
    slot: AtomicU32,
    _type: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key with a name used when the context is displayed.
    ///
    /// ```
    /// static USER_ID: gocontext::Key<u32> = gocontext::Key::new("user-id");
    /// ```
    pub const fn new(name: &'static str) -> Key<T> {
        Key {
            vtable: tree::value_vtable::<T>(),
            name,
            slot: AtomicU32::new(0),
            _type: PhantomData,
        }
    }

    /// The name given to [`Key::new`].
    ///
    /// ```
    /// static K: gocontext::Key<u8> = gocontext::Key::new("k");
    /// assert_eq!(K.name(), "k");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The key's identity: its address, which is its node table's.
    pub(crate) fn vtable(&'static self) -> NonNull<NodeVtable> {
        NonNull::from(self).cast()
    }

    /// The key's slot number, 1-based, handed out in first-use order so the
    /// first 127 keys of a program never share a filter bit;
    /// never a number whose bit is the filter's flag (tree/value.rs).
    pub(crate) fn slot(&'static self) -> u32 {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // Relaxed: the slot is a hint; any number this loop hands out is
        // correct, a shared one just slower.
        match self.slot.load(Ordering::Relaxed) {
            0 => {
                // Never 0 (not yet), nor a number whose filter bit is the
                // value node's `NO_BASE` flag (tree/value.rs).
                let mut mine = 0;
                // Relaxed (both): a counter and a first-wins slot that
                // publish nothing; any winner's number is a valid slot.
                while mine == 0 || mine % 128 == 127 {
                    mine = NEXT.fetch_add(1, Ordering::Relaxed);
                }
                match self
                    .slot
                    .compare_exchange(0, mine, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => mine,
                    Err(theirs) => theirs,
                }
            }
            s => s,
        }
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.name)
    }
}

/// The name of the key whose node table is `vtable`.
///
/// # Safety
/// `vtable` is a key's table, taken from the key with [`Key::vtable`].
pub(crate) unsafe fn name_of(vtable: NonNull<NodeVtable>) -> &'static str {
    // SAFETY: the table is the first field of a `'static` key, whose layout
    // does not depend on its type (`repr(C)`, the type only a marker).
    unsafe { vtable.cast::<Key<()>>().as_ref() }.name
}
