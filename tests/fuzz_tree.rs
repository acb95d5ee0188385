//! The `arbitrary` feature (on for this crate's own tests): `Arbitrary` for
//! `Error`, and `gocontext::fuzz`'s trees driven by input bytes.

use arbitrary::{Arbitrary, Unstructured};
use gocontext::fuzz::{Derive, Op, Tree, MAX_NODES};
use gocontext::Error;

#[test]
fn error_from_bytes_takes_both_values() {
    let mut seen = Vec::new();
    for b in 0..=255u8 {
        let e = Error::arbitrary(&mut Unstructured::new(&[b])).unwrap();
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    assert_eq!(seen.len(), 2);
    assert_eq!(Error::size_hint(0), bool::size_hint(0));
    // Out of data is not an error: arbitrary's convention.
    assert!(Error::arbitrary(&mut Unstructured::new(&[])).is_ok());
}

#[test]
fn ops_build_the_tree_they_say() {
    let mut tree = Tree::new();
    // Nodes 1 to 6, each derived from the parent named.
    let derives = [
        (0, Derive::Cancel),
        (1, Derive::Timeout(5)),
        (0, Derive::Shared),
        (2, Derive::Merge(3)),
        (4, Derive::WithoutCancel),
        (3, Derive::TimeoutCause(200, Error::Canceled)),
    ];
    for (parent, how) in derives {
        tree.apply(Op::Derive { parent, how });
    }
    assert_eq!(tree.len(), 7);
    tree.check();
    // Node 3's cancel reaches the merge (4) and 6, not 5 (without_cancel).
    tree.apply(Op::Cancel {
        node: 3,
        cause: Some(Error::DeadlineExceeded),
    });
    tree.check();
    let nodes: Vec<_> = (0..7).map(|i| tree.context(i).unwrap().clone()).collect();
    let ctx = |i: usize| nodes[i].clone();
    assert_eq!(ctx(4).err(), Some(Error::Canceled));
    assert_eq!(ctx(6).err(), Some(Error::Canceled));
    assert_eq!(ctx(5).err(), None);
    assert!(ctx(3).cause().unwrap().downcast_ref::<Error>() == Some(&Error::DeadlineExceeded));
    // Stepping fires node 2's 5 ms deadline.
    tree.apply(Op::AdvanceToNext);
    tree.check();
    assert_eq!(ctx(2).err(), Some(Error::DeadlineExceeded));
    assert_eq!(ctx(1).err(), None);
    // Detach: no cancel. Drop: cancel. Indices wrap around.
    tree.apply(Op::Release {
        node: 1,
        detach: true,
    });
    assert_eq!(ctx(1).err(), None);
    tree.apply(Op::Release {
        node: 7 + 1,
        detach: false,
    });
    assert_eq!(ctx(1).err(), None, "its handle was already released");
    tree.apply(Op::Forget { node: 1 });
    assert!(tree.context(1).is_none());
    tree.apply(Op::Derive {
        parent: 1,
        how: Derive::Cancel,
    });
    assert_eq!(tree.len(), 7, "derive from a forgotten node");
    tree.apply(Op::Advance(255));
    tree.check();
}

#[test]
fn trees_stop_growing_at_max_nodes() {
    let mut tree = Tree::new();
    for i in 0..200u8 {
        tree.apply(Op::Derive {
            parent: i,
            how: Derive::Cancel,
        });
    }
    assert_eq!(tree.len(), MAX_NODES);
    tree.check();
}

#[test]
fn any_input_runs_and_checks_clean() {
    // Deterministic pseudo-random inputs: every op sequence applies without
    // a panic, and the tree's checks hold after every step and after
    // settling every deadline.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let ops = Vec::<Op>::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        let mut tree = Tree::new();
        for op in ops {
            tree.apply(op);
            tree.check();
        }
        tree.settle();
        tree.check();
        assert_eq!(tree.clock().next_deadline(), None);
        for ctx in tree.contexts() {
            if ctx.deadline().is_some() {
                assert!(ctx.is_done(), "settled, but a deadline is pending");
            }
        }
    }
}
