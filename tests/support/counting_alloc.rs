//! A global allocator that counts live bytes, shared by the leak and stress
//! test binaries (each declares it as its `#[global_allocator]`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments; the
// counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size() as isize, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        q
    }
}

/// Allocations made so far (`alloc` and `alloc_zeroed` calls; a `realloc`
/// is not counted), process-wide.
#[allow(dead_code)] // not every user counts calls
pub fn allocations() -> usize {
    CALLS.load(Relaxed)
}

/// Bytes allocated and not yet freed, process-wide.
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Lets crossbeam-epoch run its deferred frees (it needs the global epoch
/// to advance twice) until live bytes reach `target` or stop dropping;
/// returns the live bytes then.
pub fn settle(target: isize) -> isize {
    let mut best = live();
    let mut still = 0;
    for i in 0..2000 {
        for _ in 0..4 {
            crossbeam_epoch::pin().flush();
        }
        let now = live();
        if now <= target {
            return now;
        }
        if now < best {
            best = now;
            still = 0;
        } else {
            still += 1;
            if still > 200 {
                break;
            }
        }
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    live()
}
