//! Loom model of `release_own` (`RUSTFLAGS="--cfg gocontext_loom --cfg
//! crossbeam_loom" cargo test --lib --release loom_models`): the load that
//! skips the decrement must still elect exactly one last holder, and that
//! holder must see every other holder's uses, also when a holder took its
//! count from another one's while others were releasing, and when one
//! releases two counts at once.

use super::{model, release_own, Arc, AtomicUsize, Ordering, UnsafeCell};

/// A counted object: each holder writes its own slot before it releases,
/// and the last holder reads all of them (loom reports a race if the
/// release did not order them), then counts itself.
struct Counted {
    count: AtomicUsize,
    slots: [UnsafeCell<usize>; 3],
    lasts: AtomicUsize,
}

impl Counted {
    /// Holder `i`'s last use, then the release of its `n` counts.
    fn use_and_release(&self, i: usize, n: usize) {
        self.slots[i].with_mut(|s| {
            // SAFETY: slot `i` is this holder's alone until its release.
            unsafe { *s = i + 1 };
        });
        if release_own(&self.count, n) {
            let sum: usize = (0..3)
                // SAFETY: every holder has released: their writes are done
                // and ordered before this read (the property under test).
                .map(|j| self.slots[j].with(|s| unsafe { *s }))
                .sum();
            assert_eq!(sum, 1 + 2 + 3, "the last holder missed a use");
            self.lasts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// SAFETY: the slots are written by their holder alone, before it releases,
// and read only by the last holder, after every release.
unsafe impl Sync for Counted {}

/// Three holders, one of which is created by another holder while the
/// first releases its two counts: exactly one of them is the last.
#[test]
fn release_own_elects_one_last_holder_that_sees_every_use() {
    model(|| {
        let c = Arc::new(Counted {
            count: AtomicUsize::new(3),
            slots: std::array::from_fn(|_| UnsafeCell::new(0)),
            lasts: AtomicUsize::new(0),
        });
        let a = {
            let c = c.clone();
            loom::thread::spawn(move || {
                // Holder 1 takes a count for holder 2 from its own.
                c.count.fetch_add(1, Ordering::Relaxed);
                let b = {
                    let c = c.clone();
                    loom::thread::spawn(move || c.use_and_release(2, 1))
                };
                c.use_and_release(1, 1);
                b.join().unwrap();
            })
        };
        c.use_and_release(0, 2);
        a.join().unwrap();
        assert_eq!(c.lasts.load(Ordering::SeqCst), 1);
    });
}
