//! The differential fuzzing harness of gocontext, shared by the cargo-fuzz
//! targets in `fuzz_targets/` and by the stable replay test
//! `tests/fuzz_replay.rs` (which `#[path]`-includes these same files).
//!
//! - [`model`]: a plain single-threaded reference model of Go's semantics;
//! - [`tree_ops`]: op sequences checked against the model after every step;
//! - [`wheel`]: deadlines on a manual clock against a `BTreeMap`;
//! - [`threads`]: ops on two threads, then a final invariant check;
//! - [`inflight`]: an application's own code under trees that
//!   `gocontext::fuzz` builds from the input (a target as users write them);
//! - [`wire`]: the `grpc-timeout` decoder against a reference parser, and
//!   encode/decode round trips.

pub mod common;
pub mod inflight;
pub mod model;
pub mod threads;
pub mod tree_ops;
pub mod wheel;
pub mod wire;
