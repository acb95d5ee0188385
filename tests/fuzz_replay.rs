//! The fuzz targets as ordinary stable tests: each replays its checked-in
//! seed corpus (`fuzz/corpus/<target>/seed-*`) and a few thousand
//! deterministic pseudo-random inputs through the very harness the cargo-fuzz
//! targets run (the files under `fuzz/src/` are included by path).
//!
//! `GOCONTEXT_FUZZ_REPLAY_ITERS` scales the random inputs (default 1).
//! `GOCONTEXT_FUZZ_REPLAY_SEEDS=hand` replays only the hand-made seeds, not
//! the minimised corpora of the campaigns (`seed-min-*`, thousands of
//! inputs): `.ci/proof.sh` sets it under valgrind.

#[path = "../fuzz/src/common.rs"]
mod common;
#[path = "../fuzz/src/model.rs"]
mod model;
#[path = "../fuzz/src/threads.rs"]
mod threads;
#[path = "../fuzz/src/tree_ops.rs"]
mod tree_ops;
#[path = "../fuzz/src/wheel.rs"]
mod wheel;
#[path = "../fuzz/src/wire.rs"]
mod wire;

#[path = "support/miri.rs"]
mod miri;
use miri::scaled;
use rand::{Rng, RngCore, SeedableRng};
use std::path::PathBuf;

/// Whether only the hand-made seeds are replayed (see the module docs).
fn hand_made_only() -> bool {
    let only = std::env::var("GOCONTEXT_FUZZ_REPLAY_SEEDS").is_ok_and(|v| v == "hand");
    if only {
        eprintln!("GOCONTEXT_FUZZ_REPLAY_SEEDS=hand: the seed-min-* corpora are not replayed");
    }
    only
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let hand = hand_made_only();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Miri's isolation forbids reading files; the random inputs still run.
        Err(e) if cfg!(miri) => {
            eprintln!(
                "miri: {target}: seed corpus not replayed ({e}); \
                 MIRIFLAGS=-Zmiri-disable-isolation replays it"
            );
            return Vec::new();
        }
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-") && !(hand && n.starts_with("seed-min-")))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "{}: expected a seed corpus of at least 10 files",
        dir.display()
    );
    out
}

fn scale() -> usize {
    std::env::var("GOCONTEXT_FUZZ_REPLAY_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Replays the seeds, then `n` random inputs of up to `max_len` bytes.
fn replay(target: &str, run: fn(&[u8]), n: usize, max_len: usize) {
    for (path, bytes) in seeds(target) {
        let r = std::panic::catch_unwind(|| run(&bytes));
        assert!(r.is_ok(), "{target}: seed {} fails", path.display());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x60c0_47e7 ^ target.len() as u64);
    let n = scaled(&format!("{target}: random inputs"), n * scale(), 5);
    for i in 0..n {
        let len = rng.gen_range(0..=max_len);
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let r = std::panic::catch_unwind(|| run(&bytes));
        if r.is_err() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-replay-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}-{i}"));
            std::fs::write(&file, &bytes).unwrap();
            panic!(
                "{target}: random input #{i} fails; saved to {0}; reproduce with \
                 `cd fuzz && cargo fuzz run {target} {0}`",
                file.display()
            );
        }
    }
}

#[test]
fn tree_ops_replay() {
    replay("tree_ops", tree_ops::run, 3000, 600);
}

#[test]
fn wheel_replay() {
    replay("wheel", wheel::run, 3000, 600);
}

#[test]
fn threads_replay() {
    replay("threads", threads::run, 1000, 600);
}

#[test]
fn wire_replay() {
    replay("wire", wire::run, 20_000, 16);
}
