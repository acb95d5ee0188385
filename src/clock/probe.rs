//! Test containers for timer entries: a boxed `#[repr(C)]` struct whose first
//! field is the `TimerEntry`, with hooks that record fires and releases and a
//! two-party reference count (the test and the clock), as a node would.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clock::Clock;
use crate::time::{TimerEntry, TimerHooks};

/// What a group of probes shares: counters and the order of fires.
#[derive(Default)]
pub(crate) struct Board {
    /// Probes allocated and not yet freed.
    pub(crate) live: AtomicUsize,
    /// Probes whose clock reference was released.
    pub(crate) released: AtomicUsize,
    /// Ids in the order they fired.
    pub(crate) fired: Mutex<Vec<usize>>,
}

impl Board {
    pub(crate) fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    #[cfg(not(loom))]
    pub(crate) fn fired(&self) -> Vec<usize> {
        self.fired.lock().unwrap().clone()
    }
}

type OnFire = Box<dyn Fn() + Send + Sync>;

#[repr(C)]
struct Probe {
    entry: TimerEntry,
    id: usize,
    board: Arc<Board>,
    fires: AtomicUsize,
    releases: AtomicUsize,
    refs: AtomicUsize,
    fired_at: Mutex<Option<Instant>>,
    on_fire: Option<OnFire>,
    /// The address of the timer engine it was armed on: armed at most
    /// once, disarmed only there. (An address, not a `Clock`: a probe that
    /// held its clock would keep it alive from inside it.)
    armed_on: std::sync::OnceLock<usize>,
}

static HOOKS: TimerHooks = TimerHooks {
    fire: fire_hook,
    release: release_hook,
};

unsafe fn fire_hook(e: NonNull<TimerEntry>) {
    // SAFETY: every entry armed with HOOKS is the first field of a Probe.
    let p = unsafe { e.cast::<Probe>().as_ref() };
    *p.fired_at.lock().unwrap() = Some(Instant::now());
    p.fires.fetch_add(1, Ordering::SeqCst);
    p.board.fired.lock().unwrap().push(p.id);
    if let Some(f) = &p.on_fire {
        f();
    }
}

unsafe fn release_hook(e: NonNull<TimerEntry>) {
    let p = e.cast::<Probe>();
    // SAFETY: as in `fire_hook`; the clock's reference keeps it alive.
    let r = unsafe { p.as_ref() };
    r.releases.fetch_add(1, Ordering::SeqCst);
    r.board.released.fetch_add(1, Ordering::SeqCst);
    // SAFETY: drops the clock's reference.
    unsafe { unref(p) };
}

/// # Safety
/// `p` is live and the caller gives up one reference.
unsafe fn unref(p: NonNull<Probe>) {
    // SAFETY: live (caller).
    if unsafe { p.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: the last reference; allocated by `ProbeRef::new`.
        let b = unsafe { Box::from_raw(p.as_ptr()) };
        b.board.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The test's reference to one probe.
pub(crate) struct ProbeRef(NonNull<Probe>);

// SAFETY: the probe is reference counted and all its shared state is atomic
// or behind a Mutex.
unsafe impl Send for ProbeRef {}
// SAFETY: as above.
unsafe impl Sync for ProbeRef {}

impl ProbeRef {
    pub(crate) fn new(board: &Arc<Board>, id: usize, deadline: Instant) -> ProbeRef {
        ProbeRef::with_hook(board, id, deadline, None)
    }

    pub(crate) fn with_hook(
        board: &Arc<Board>,
        id: usize,
        deadline: Instant,
        on_fire: Option<OnFire>,
    ) -> ProbeRef {
        board.live.fetch_add(1, Ordering::SeqCst);
        let b = Box::new(Probe {
            entry: TimerEntry::new(deadline, &HOOKS),
            id,
            board: board.clone(),
            fires: AtomicUsize::new(0),
            releases: AtomicUsize::new(0),
            refs: AtomicUsize::new(1),
            fired_at: Mutex::new(None),
            on_fire,
            armed_on: std::sync::OnceLock::new(),
        });
        ProbeRef(NonNull::from(Box::leak(b)))
    }

    fn probe(&self) -> &Probe {
        // SAFETY: we hold a reference.
        unsafe { self.0.as_ref() }
    }

    /// Takes a reference for the clock and arms the entry.
    pub(crate) fn arm(&self, clock: &Clock) {
        let first = self.probe().armed_on.set(engine(clock)).is_ok();
        assert!(first, "a probe is armed at most once");
        self.probe().refs.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the entry is boxed (never moves until freed), idle and
        // never armed before (checked above), and the reference just taken
        // is the clock's, given back by `release_hook`.
        unsafe { clock.arm(self.0.cast()) };
    }

    pub(crate) fn disarm(&self, clock: &Clock) -> bool {
        let armed_on = self.probe().armed_on.get();
        assert!(
            armed_on.map_or(true, |&e| e == engine(clock)),
            "disarm on the arming clock"
        );
        // SAFETY: our reference keeps the entry alive, it was armed on
        // `clock` or on no clock (checked above), and the pointer is the
        // one `arm` was given (the probe's own, cast to its first field).
        unsafe { clock.disarm(self.0.cast()) }
    }

    #[cfg(not(loom))]
    pub(crate) fn deadline(&self) -> Instant {
        self.probe().entry.deadline()
    }

    pub(crate) fn fires(&self) -> usize {
        self.probe().fires.load(Ordering::SeqCst)
    }

    pub(crate) fn releases(&self) -> usize {
        self.probe().releases.load(Ordering::SeqCst)
    }

    #[cfg(not(loom))]
    pub(crate) fn fired_at(&self) -> Option<Instant> {
        *self.probe().fired_at.lock().unwrap()
    }
}

impl Drop for ProbeRef {
    fn drop(&mut self) {
        // SAFETY: gives up the test's reference.
        unsafe { unref(self.0) };
    }
}

/// The identity of a clock's timer engine.
fn engine(clock: &Clock) -> usize {
    clock.core() as *const _ as usize
}
