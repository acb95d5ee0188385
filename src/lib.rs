//! gocontext: Go's `context` package as a lock-free cancellation tree.
//! (Skeleton: the engine lands in the following commits.)
#![allow(dead_code)]

mod clock;
mod driver;
mod sync;
mod timer;
mod timer_core;
mod wheel;

pub use clock::Clock;
#[cfg(test)]
mod timer_probe;
