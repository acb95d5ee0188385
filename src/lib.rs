//! Go's `context` package, rebuilt in Rust as a lock-free cancellation
//! engine.
//!
//! A [`Context`] carries a cancellation signal, maybe a deadline, and
//! request-scoped values across API boundaries. Contexts form a tree:
//! deriving one ([`Context::with_cancel`], [`Context::with_timeout`],
//! [`Context::with_value`], [`Context::merge`], ...) makes a child, and
//! cancelling a context cancels its whole subtree at once, synchronously.
//! Deadlines cancel on their own. Async tasks (`ctx.done().await`), blocked
//! threads (`ctx.wait()`) and callbacks (`ctx.after_func(f)`) all wake when
//! it happens.
//!
//! ```
//! use gocontext::{Context, Error};
//! use std::time::Duration;
//!
//! let (request, cancel) = Context::background().with_timeout(Duration::from_secs(1));
//! let (step, _step_cancel) = request.with_cancel();
//! let worker = std::thread::spawn(move || step.wait());
//! cancel.cancel(); // the client went away
//! assert_eq!(worker.join().unwrap(), Error::Canceled);
//! ```
//!
//! Every check (`err`, `is_done`, `cause`) is a lock-free atomic read,
//! deriving and cancelling take no lock, and cancellation walks the tree
//! iteratively, so a chain a million deep is fine. A context that many
//! threads derive children from at once (a server's root) should be made
//! with [`Context::with_cancel_shared`], whose children on different
//! threads share no cache line. See `docs/semantics.md`
//! for the rules every context keeps, `docs/design.md` for how the engine
//! works, and `docs/go-mapping.md` for each Go idiom's form.
#![deny(missing_docs)]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

// Loom mode switches gocontext and crossbeam-epoch together (docs/loom.md):
// gocontext's nodes are reclaimed through the epoch, and an epoch outside
// loom's model keeps garbage across a model's executions (false leaks) and
// hides the reclamation races from it.
#[cfg(all(loom, not(crossbeam_loom)))]
compile_error!(
    "gocontext's loom mode needs crossbeam-epoch's too: build with \
     RUSTFLAGS=\"--cfg gocontext_loom --cfg crossbeam_loom\" (see docs/loom.md)"
);

mod after_func;
mod ambient;
mod clock;
mod context;
mod done;
mod error;
#[cfg(feature = "arbitrary")]
pub mod fuzz;
mod handle;
mod key;
mod sync;
mod time;
#[cfg(feature = "tonic")]
mod tonic;
#[cfg(feature = "tower")]
pub mod tower;
mod tree;
mod unwind;
pub mod wire;

pub use after_func::AfterFunc;
pub use ambient::{EnterGuard, Scope};
pub use clock::Clock;
pub use context::Context;
pub use done::{Done, Run};
pub use error::{Cause, Error};
pub use handle::CancelHandle;
pub use key::Key;

/// A test's size: `full` natively, `miri` under Miri (which interprets
/// every step, thousands of times slower), announced on stderr so that a
/// Miri log says what ran smaller than in `cargo test`.
#[cfg(test)]
fn scaled(what: &str, full: usize, miri: usize) -> usize {
    if cfg!(miri) {
        eprintln!("miri: {what}: {miri} instead of {full}");
        miri
    } else {
        full
    }
}
