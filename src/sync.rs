//! The one door to concurrency primitives.
//!
//! Every engine module takes its atomics, cells, threads and wakers from here
//! and never from `std` or `loom` directly. In loom mode (`cfg(loom)`, which
//! `build.rs` also sets for `--cfg gocontext_loom`; docs/loom.md) this module
//! switches to loom's instrumented versions, so the loom models in
//! `loom-tests/` exercise the very code that ships (the pattern of tokio's
//! `src/loom/`). crossbeam-epoch switches itself under `--cfg crossbeam_loom`.

// The facade exports the whole set; not every build uses every item.
#![allow(unused_imports)]

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
    pub(crate) use std::thread::{current as current_thread, park, yield_now, Thread};
    pub(crate) use std::thread_local;

    /// Parks for at most `d`; spurious wake-ups are allowed, as with `park`.
    pub(crate) fn park_timeout(d: std::time::Duration) {
        std::thread::park_timeout(d)
    }

    /// `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(t: T) -> Self {
            Self(std::cell::UnsafeCell::new(t))
        }
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// The waker slot of one async waiter (`atomic-waker`).
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w)
        }
        pub(crate) fn wake(&self) {
            self.0.wake()
        }
    }

    /// Marks an allocation for loom's leak check; nothing outside loom.
    #[derive(Debug, Default)]
    pub(crate) struct LeakTrack;

    impl LeakTrack {
        pub(crate) fn new() -> Self {
            LeakTrack
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
    pub(crate) use loom::thread::{current as current_thread, park, yield_now, Thread};
    pub(crate) use loom::thread_local;
    pub(crate) use std::sync::TryLockError;

    /// loom has no timed park; a yield is a legal spurious wake-up.
    pub(crate) fn park_timeout(_d: std::time::Duration) {
        loom::thread::yield_now()
    }

    /// loom's model of `atomic-waker`, behind the same small interface.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w.clone())
        }
        pub(crate) fn wake(&self) {
            self.0.wake()
        }
    }

    /// Every engine allocation carries one: loom reports it if it leaks.
    #[derive(Debug)]
    pub(crate) struct LeakTrack(#[allow(dead_code)] loom::alloc::Track<()>);

    impl LeakTrack {
        pub(crate) fn new() -> Self {
            LeakTrack(loom::alloc::Track::new(()))
        }
    }
}

pub(crate) use imp::*;

/// Drops one count of a reference count. True for the caller that dropped
/// the last one: it may then tear down or free what the count guarded, and
/// sees every other holder's uses of it.
#[inline]
pub(crate) fn release_last(count: &AtomicUsize) -> bool {
    release_counts(count, 1)
}

/// [`release_last`] of `n` counts the caller holds, in one decrement.
#[inline]
fn release_counts(count: &AtomicUsize, n: usize) -> bool {
    // Release: our uses happen before the last holder's teardown or free.
    if count.fetch_sub(n, Ordering::Release) != n {
        return false;
    }
    // Acquire: reads the zero our decrement wrote, which belongs to the
    // release sequence of every other holder's decrement (RMWs continue
    // it), so it synchronises with all of them: the edge of a standalone
    // `fence(Acquire)`, in the form ThreadSanitizer understands (it does
    // not model fences). Cost: docs/design.md, "ThreadSanitizer".
    count.load(Ordering::Acquire);
    true
}

/// [`release_last`] of `n` counts (at least one) that the caller most
/// likely holds last (a context's own handle, a node's memory): a load
/// that reads `n` proves the caller the only holder, and nobody can become
/// another, since taking a count needs one held already; so the decrement,
/// a locked read-modify-write, is skipped (the count stays at `n`, and
/// nobody reads it again). Otherwise one decrement of `n`.
#[inline]
pub(crate) fn release_own(count: &AtomicUsize, n: usize) -> bool {
    // Acquire: reading `n`, we read the last other holder's decrement (or
    // the initial store); every write after the initial store is an RMW,
    // so this synchronises with every other holder's Release decrement,
    // as the load in `release_last` does.
    LOAD_FIRST && count.load(Ordering::Acquire) == n || release_counts(count, n)
}

/// Whether `release_own` loads first: always, except in a loom build
/// without `--cfg gocontext_load_first`. There the load is one more
/// scheduling point on every release, which multiplies the `loom-tests`
/// models' interleavings by up to 32; so the everyday loom run models the
/// plain decrement, and CI runs the whole suite again with the cfg (the
/// shipping path). The crate's own loom models, which include one of
/// `release_own` itself (`sync/loom_models.rs`), always load first.
const LOAD_FIRST: bool = !cfg!(loom) || cfg!(test) || cfg!(gocontext_load_first);

/// The most shards a sharded structure uses (a power of two).
const MAX_SHARDS: usize = 64;

/// The shard count for a structure that many threads write at once (a
/// clock's inbox, a shared context's children): the CPU count rounded up
/// to a power of two, at most `MAX_SHARDS`. Under loom: two, so that every
/// model explores more than one shard.
pub(crate) fn shards_for_cpus() -> usize {
    if cfg!(loom) {
        return 2;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.next_power_of_two().min(MAX_SHARDS)
}

/// The calling thread's number, from which it picks its shard of a sharded
/// structure: assigned round-robin on the thread's first use, so that the
/// first `shards` threads each get a shard of their own.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_number() -> usize {
    match MY_NUMBER.get() {
        usize::MAX => assign_number(),
        n => n,
    }
}

#[cfg(not(loom))]
std::thread_local!(static MY_NUMBER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) });

/// A thread's first use: the next number, round-robin.
#[cfg(not(loom))]
#[cold]
fn assign_number() -> usize {
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed};
    // A plain std counter, not a synchronisation: it only spreads threads.
    static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Relaxed) & (usize::MAX >> 1);
    MY_NUMBER.set(n);
    n
}

/// Under loom: the order in which the execution's threads first ask (0, 1,
/// ...), counted afresh in every execution (loom's `lazy_static` is per
/// execution) by a plain counter that loom does not model, so it adds no
/// interleavings and is the same on every replay of a schedule.
#[cfg(loom)]
pub(crate) fn thread_number() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed};
    loom::lazy_static! {
        static ref NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    }
    loom::thread_local!(static MINE: Cell<Option<usize>> = Cell::new(None));
    MINE.with(|mine| {
        let n = mine.get().unwrap_or_else(|| NEXT.fetch_add(1, Relaxed));
        mine.set(Some(n));
        n
    })
}

/// Between the two SeqCst accesses of one side of a store-buffer handshake
/// (a store or RMW of one word, then a load of another; the other side does
/// the same on the two words the other way round): nothing natively, a
/// `fence(SeqCst)` under loom.
///
/// Natively, C11 puts all SeqCst accesses in one total order consistent with
/// each thread's program order, so one side's load sees the other side's
/// store: the SeqCst accesses are the whole protocol, and on x86 the locked
/// RMW is a full barrier already. loom models SeqCst *accesses* only as
/// AcqRel (its README, "Unsupported features"), under which a correct
/// handshake looks lost; it models SeqCst *fences* fully, so under loom
/// this fence restores the guarantee that the native code gets from its
/// accesses, and the models check the rest of the protocol.
#[inline(always)]
pub(crate) fn seqcst_handshake() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// Runs the in-crate loom model `f` at `LOOM_MAX_PREEMPTIONS` (3 when
/// unset) and reports its interleavings and wall time on stderr. The body
/// runs on a spawned model thread with a 1 MiB stack: loom runs each
/// thread as a coroutine, and its main one has a small fixed stack, which
/// building a clock (the wheel's levels and the inbox's shards are moved
/// into place through the stack) overflowed depending on how the
/// optimiser laid the frames out.
#[cfg(all(test, loom))]
#[track_caller]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let at = std::panic::Location::caller();
    // `Builder::new` reads `LOOM_MAX_PREEMPTIONS`; only fill in the default.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(3));
    let f = std::sync::Arc::new(f);
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counted.fetch_add(1, Relaxed);
        let f = f.clone();
        let body = loom::thread::Builder::new().stack_size(1 << 20);
        match body.spawn(move || f()).map(|t| t.join()) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => panic!("loom could not spawn the model's thread: {e}"),
        }
    });
    let line = format!(
        "loom model at {}:{:<4} bound {:?}: {:>9} interleavings in {:>8.2?}\n",
        at.file(),
        at.line(),
        b.preemption_bound,
        runs.load(Relaxed),
        start.elapsed()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(all(test, loom))]
mod loom_models;
