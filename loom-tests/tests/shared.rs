//! Loom models: a shared context (`with_cancel_shared`) whose last handle
//! goes while children still hold its shards, and its cancellation
//! racing a derive. Loom's leak check sees every node (the hub, each
//! shard, each child) freed exactly once.
//! How to run them: see the crate doc in `src/lib.rs`.
#![cfg(loom)]

use gocontext::Error;
use gocontext_loom_tests::*;
use loom::thread;

/// Another thread derives a child from the shared context and lets go of
/// its clone of it; this thread lets go of the shared context (its handle
/// detached, so nobody cancels) while the child lives, then the other
/// thread drops the child. The hub's release (its shard handles given up)
/// races the child's teardown (its shard's last handle), so either thread
/// may tear the shard and then the hub down. The child is never done.
#[test]
fn shared_release_vs_last_child() {
    model_unbounded("shared_release_vs_last_child", || {
        let (hub, handle) = root().with_cancel_shared();
        let theirs = hub.clone();
        let t = thread::spawn(move || {
            let (child, end) = theirs.with_cancel();
            drop(theirs);
            end.detach();
            assert_eq!(child.err(), None);
            drop(child);
        });
        handle.detach();
        drop(hub);
        t.join().unwrap();
    });
}

/// The shared context is cancelled while another thread derives a child
/// from it: the child is done when the derive returns after the cancel
/// (born done from its closed shard, or reached through the shard by the
/// drain), with the shared context's cause, and everything is freed.
#[test]
fn shared_cancel_vs_derive() {
    model("shared_cancel_vs_derive", || {
        let (hub, handle) = root().with_cancel_shared();
        let theirs = hub.clone();
        // The child's handle comes back too: dropping it would cancel.
        let t = thread::spawn(move || theirs.with_cancel());
        let why = cause(1);
        handle.cancel_with_cause(why.clone());
        let (child, _end) = t.join().unwrap();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert!(is(&child, &why));
        drop((hub, child));
    });
}

/// Two threads, one shard each, derive a child and let go of everything
/// while this thread lets go of the shared context: the hub's release,
/// both shards' teardowns and the hub's teardown (started by whichever
/// shard goes last) race. Nobody cancels, so no child is ever done.
#[test]
fn shared_release_vs_two_shards() {
    model("shared_release_vs_two_shards", || {
        let (hub, handle) = root().with_cancel_shared();
        let spawn = |theirs: gocontext::Context| {
            thread::spawn(move || {
                let (child, end) = theirs.with_cancel();
                drop(theirs);
                end.detach();
                assert_eq!(child.err(), None);
            })
        };
        let (a, b) = (spawn(hub.clone()), spawn(hub.clone()));
        handle.detach();
        drop(hub);
        a.join().unwrap();
        b.join().unwrap();
    });
}
