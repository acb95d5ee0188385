//! Loom models: handles and detaches racing: no leaked cycle (loom's leak check).
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::Error;
use gocontext_loom_tests::*;
use loom::thread;

/// The parent's last handle (which cancels) dropped while the child detaches
/// its handle: the child is cancelled, and no cycle keeps either alive.
#[test]
fn parent_last_drop_vs_child_detach() {
    model("parent_last_drop_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let t = thread::spawn(move || {
            drop(p);
            drop(ph);
        });
        ch.detach();
        t.join().unwrap();
        assert_eq!(c.err(), Some(Error::Canceled));
    });
}

/// The parent's handle detached and its context dropped while the child
/// detaches: nothing is cancelled, and everything is freed once the child
/// goes (loom's leak check).
#[test]
fn parent_detach_vs_child_detach() {
    model("parent_detach_vs_child_detach", || {
        let (p, ph) = root().with_cancel();
        let (c, ch) = p.with_cancel();
        let t = thread::spawn(move || {
            drop(p);
            ph.detach();
        });
        ch.detach();
        t.join().unwrap();
        assert_eq!(c.err(), None);
    });
}
