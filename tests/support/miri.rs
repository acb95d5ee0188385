//! Test sizes under Miri, shared by the integration test binaries that
//! scale (each includes this file by path).
//!
//! Miri interprets every step and checks every access against the borrow
//! model, thousands of times slower than native code. A test that walks a
//! million nodes or repeats a race thousands of times runs the same code
//! paths with a smaller count there; each reduction is printed, so a Miri
//! log says exactly what ran smaller than in `cargo test`.

/// `full` natively; under Miri `miri`, announced on stderr.
pub fn scaled(what: &str, full: usize, miri: usize) -> usize {
    if cfg!(miri) {
        eprintln!("miri: {what}: {miri} instead of {full}");
        miri
    } else {
        full
    }
}
