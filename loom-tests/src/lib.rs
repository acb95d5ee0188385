//! Loom model checks of gocontext's engine live in `tests/`; this library
//! only holds the shared runner. Run the suite with
//! `cd loom-tests && RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --release`.
