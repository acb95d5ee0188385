//! The runner of the counting-allocator scenarios (`leaks.rs`, `panics.rs`):
//! each scenario runs once to warm up (lazily built statics, the epoch's
//! thread-locals), then again between two measurements of live bytes; more
//! than `SLACK` bytes left over is a leak. The scenarios run one after
//! another inside a single `#[test]`, since libtest's own threads would
//! otherwise allocate in the middle of a measurement. Each file declares
//! `mod counting_alloc` next to this module, and sets it as the global
//! allocator.

use crate::counting_alloc::settle;
use std::any::Any;
use std::panic::catch_unwind;

/// A scenario: its name, and what it does.
pub type Scenario = (&'static str, fn());

/// crossbeam-epoch always keeps up to one sealed garbage bag queued (a
/// ~2 KiB node): the slack for that. Every scenario makes hundreds of
/// contexts, so a per-context leak is far above it; fixed-size leaks are
/// valgrind's job (`.ci/proof.sh`).
pub const SLACK: isize = 4096;

/// The message of a panic payload, if it is a string.
pub fn message(p: &(dyn Any + Send)) -> Option<String> {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
}

/// Runs `f`; a panic becomes its message. The payload is forgotten, not
/// dropped: a scenario's payload may panic when dropped.
fn run(f: fn()) -> Result<(), String> {
    catch_unwind(f).map_err(|p| {
        let why = message(&*p).unwrap_or_default();
        std::mem::forget(p);
        why
    })
}

/// Runs `scenarios` (only the one named by the environment variable
/// `only_var`, if set) and fails with every leak or panic found. Panics
/// for which `expected(message, payload)` holds are the scenarios' own, on
/// purpose: they are not printed.
pub fn check_all<E>(label: &str, only_var: &str, scenarios: &[Scenario], expected: E)
where
    E: Fn(&str, &(dyn Any + Send)) -> bool + Send + Sync + 'static,
{
    let only = std::env::var(only_var).ok();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.to_string();
        if !expected(&msg, info.payload()) {
            eprintln!("{msg}");
        }
    }));
    let mut failures = vec![];
    let chosen = scenarios
        .iter()
        .filter(|(name, _)| only.as_deref().map_or(true, |o| o == *name));
    for (name, f) in chosen {
        if let Err(why) = run(*f) {
            failures.push(format!("{name}: panicked: {why} (warm-up run)"));
            continue;
        }
        let base = settle(isize::MIN);
        if let Err(why) = run(*f) {
            failures.push(format!("{name}: panicked: {why}"));
            continue;
        }
        let after = settle(base);
        eprintln!("{label}: {name:<40} baseline {base:>9} B, after {after:>9} B");
        if after > base + SLACK {
            failures.push(format!("{name}: {} bytes leaked", after - base));
        }
    }
    drop(std::panic::take_hook());
    std::panic::set_hook(hook);
    assert!(failures.is_empty(), "failures: {failures:#?}");
}
