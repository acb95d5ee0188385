//! Typed keys for context values.

use std::fmt;
use std::marker::PhantomData;

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
pub struct Key<T> {
    name: &'static str,
    // Never zero-sized, so every `static Key` has an address of its own.
    _anchor: u8,
    _type: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key with a name used when the context is displayed.
    pub const fn new(name: &'static str) -> Key<T> {
        Key {
            name,
            _anchor: 0,
            _type: PhantomData,
        }
    }

    /// The name given to [`Key::new`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The key's identity: its address.
    pub(crate) fn id(&'static self) -> usize {
        self as *const Self as usize
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.name)
    }
}
