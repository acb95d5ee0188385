//! Minimal reproducers of engine bugs the proof suite found (issue 5). Each
//! test states the contract line it checks.

use gocontext::{Clock, Error};
use std::time::Duration;

#[path = "support/miri.rs"]
mod miri;
use miri::scaled;

/// Semantics 3 (docs/semantics.md): deriving from a context that is already done gives
/// a context that is done at once. (Found by `fuzz/` `tree_ops`: in debug
/// builds this tripped `debug_assert!(!entry.mark())` in
/// `CancelNode::withdraw_links`.)
#[test]
fn derive_from_cancelled_parent() {
    let root = Clock::manual().background();
    let (p, ph) = root.with_cancel();
    ph.cancel();
    let (c, _ch) = p.with_cancel();
    assert_eq!(c.err(), Some(Error::Canceled));
    let (d, _dh) = p.with_timeout(Duration::from_secs(1));
    assert_eq!(d.err(), Some(Error::Canceled));
    let (m, _mh) = gocontext::Context::merge(&root, &p);
    assert_eq!(m.err(), Some(Error::Canceled));
}

/// `Clock::advance` fires every deadline that is due on the calling
/// thread before returning, and by semantics 4 (docs/semantics.md) a
/// deadline at or before `now()` gives a child that is done at once. A
/// deadline armed while another thread advances past
/// it must therefore be done once both calls have returned. (Found by
/// `fuzz/` `threads`; about 1 round in 20,000 lost the timer until the next
/// `advance`.)
#[test]
fn deadline_armed_during_advance_is_not_lost() {
    let rounds = scaled("advance-vs-arm rounds", 20_000, 20);
    let mut lost = 0;
    for _ in 0..rounds {
        let clock = Clock::manual();
        let root = clock.background();
        let barrier = std::sync::Barrier::new(2);
        let (c, _h, d) = std::thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                clock.advance(Duration::from_secs(151));
            });
            barrier.wait();
            let d = clock.now() + Duration::from_millis(60);
            let (c, h) = root.with_deadline(d);
            t.join().unwrap();
            (c, h, d)
        });
        // `d` was read before or after the advance; only a deadline the
        // advance passed must be done (and one it did not pass must not).
        if clock.now() >= d {
            lost += usize::from(!c.is_done());
        } else {
            assert!(!c.is_done(), "fired early");
        }
    }
    assert_eq!(
        lost, 0,
        "{lost} of {rounds} deadlines passed by a concurrent advance never fired"
    );
}

/// A cause that keeps an `Arc` alive, to see whether its owner was freed.
#[derive(Debug)]
struct Holder(#[allow(dead_code)] std::sync::Arc<()>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("holder")
    }
}

impl std::error::Error for Holder {}

/// Lets crossbeam-epoch run deferred frees until `p` is the last reference.
fn strong_after_flush(p: &std::sync::Arc<()>) -> usize {
    for _ in 0..10_000 {
        if std::sync::Arc::strong_count(p) == 1 {
            break;
        }
        crossbeam_epoch::pin().flush();
    }
    std::sync::Arc::strong_count(p)
}

/// Semantics 10 (docs/semantics.md): dropping every `Context` and
/// `CancelHandle` of a subtree frees it, its timer included. A deadline on a manual clock that
/// was cancelled (or abandoned) before it fired stays filed in the wheel, and
/// is never freed once the clock itself is dropped. (Found by
/// `tests/leaks.rs` `deadlines_manual`.)
#[test]
fn manual_clock_dropped_with_filed_timers_frees_them() {
    for abandon in [false, true] {
        let p = std::sync::Arc::new(());
        let clock = Clock::manual();
        let root = clock.background();
        let (c, h) = root.with_timeout_cause(Duration::from_secs(10), Holder(p.clone()));
        if abandon {
            h.detach();
        } else {
            h.cancel();
            drop(h); // the handle keeps its node, and so the cause, alive
        }
        drop((c, root, clock));
        assert_eq!(
            strong_after_flush(&p),
            1,
            "timer (abandon: {abandon}) and its deadline cause leaked with the clock"
        );
    }
}

/// Semantics 10 (docs/semantics.md): a subtree whose every Context and CancelHandle is
/// dropped is freed. A callback registered with `after_func` on such a
/// context, never run, keeps its closure (and the node) alive forever.
/// (Found by `tests/leaks.rs` `callbacks`.)
#[test]
fn after_func_on_abandoned_context_is_freed() {
    let p = std::sync::Arc::new(());
    let root = Clock::manual().background();
    let (c, h) = root.with_cancel();
    let q = p.clone();
    drop(c.after_func(move || drop(q)));
    h.detach();
    drop((c, root));
    assert_eq!(strong_after_flush(&p), 1, "after_func closure leaked");
}
