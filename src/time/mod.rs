//! Deadlines.

pub(crate) mod core;
pub(crate) mod driver;
pub(crate) mod entry;
pub(crate) mod wheel;

#[cfg(test)]
pub(crate) mod probe;
