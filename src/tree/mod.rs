//! The cancellation tree.

pub(crate) mod cancel;
pub(crate) mod list;
pub(crate) mod node;
pub(crate) mod state;
pub(crate) mod value;
pub(crate) mod waiter;
