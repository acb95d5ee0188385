//! A `Context`'s identity (`==`, `Hash`) and its `Default`.

use super::Context;

impl PartialEq for Context {
    /// Identity: true when both handles are on the same context (clones are
    /// equal; a child never equals its parent, and two separately derived
    /// contexts never equal each other). `Context::background()` equals
    /// itself, as every call returns the same root; a `with_cancel` of a
    /// context that is done already may return that context itself.
    ///
    /// ```
    /// use gocontext::Context;
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// let (child, _c) = ctx.with_cancel();
    /// assert_eq!(ctx, ctx.clone());
    /// assert_ne!(ctx, child);
    /// ```
    fn eq(&self, other: &Context) -> bool {
        self.node == other.node
    }
}

impl Eq for Context {}

impl std::hash::Hash for Context {
    /// Hashes the identity, consistent with `==`: in-flight requests can
    /// live in a `HashSet<Context>` or key a `HashMap`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.node.hash(state);
    }
}

impl Default for Context {
    /// [`Context::background()`].
    fn default() -> Context {
        Context::background()
    }
}
