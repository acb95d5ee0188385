//! Pieces shared by every target: tagged causes, time specs, value keys, a
//! counting waker, and the translation of gocontext's answers into the
//! model's vocabulary.

use crate::model::{CauseTag, ErrKind, Outcome, NKEYS};
use arbitrary::{Arbitrary, Unstructured};
use gocontext::{Cause, Context, Error, Key};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

/// A custom cause that carries a unique tag, so the harness can tell causes
/// apart without comparing pointers.
#[derive(Debug)]
pub struct Tagged(pub u32);

impl std::fmt::Display for Tagged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cause #{}", self.0)
    }
}

impl std::error::Error for Tagged {}

/// The u32-valued keys; `STR_KEY` (model key `NKEYS - 1`) holds a `String`
/// and has the same name as `KEYS[0]`, to check that identity is the address.
pub static KEYS: [Key<u32>; NKEYS - 1] = [Key::new("k0"), Key::new("k1"), Key::new("k2")];
pub static STR_KEY: Key<String> = Key::new("k0");

/// The value a context shows for model key `k`.
pub fn lookup(ctx: &Context, k: usize) -> Option<u32> {
    if k < NKEYS - 1 {
        ctx.value(&KEYS[k]).copied()
    } else {
        ctx.value(&STR_KEY)
            .map(|s| s.parse().expect("STR_KEY holds a number"))
    }
}

/// Derives a value context for model key `k`.
pub fn with_value(ctx: &Context, k: usize, v: u32) -> Context {
    if k < NKEYS - 1 {
        ctx.with_value(&KEYS[k], v)
    } else {
        ctx.with_value(&STR_KEY, v.to_string())
    }
}

pub fn kind(e: Error) -> ErrKind {
    match e {
        Error::Canceled => ErrKind::Canceled,
        Error::DeadlineExceeded => ErrKind::DeadlineExceeded,
    }
}

/// The model's name for a cause; panics on a cause the harness never made.
pub fn tag(c: &Cause) -> CauseTag {
    if let Some(t) = c.downcast_ref::<Tagged>() {
        CauseTag::Custom(t.0)
    } else if let Some(e) = c.downcast_ref::<Error>() {
        CauseTag::Default(kind(*e))
    } else {
        panic!("cause {c} is neither Tagged nor gocontext::Error")
    }
}

/// What a context shows: `None` while not done. Checks that `is_done`,
/// `err` and `cause` agree, in an order that stays valid while another
/// thread may cancel in between (each is monotone: once done, always done).
pub fn observe(ctx: &Context) -> Option<Outcome> {
    let done_before = ctx.is_done();
    let err = ctx.err();
    let cause = ctx.cause();
    let done_after = ctx.is_done();
    assert!(
        !done_before || err.is_some(),
        "is_done() true, then err() None"
    );
    assert!(
        err.is_none() || cause.is_some(),
        "err() {err:?}, then cause() None"
    );
    assert!(
        err.is_none() || done_after,
        "err() {err:?}, then is_done() false"
    );
    match (err, cause) {
        (None, None) => None,
        (Some(e), Some(c)) => Some((kind(e), tag(&c))),
        (None, Some(_)) => {
            // A concurrent cancel landed between the two reads: read again.
            let (e2, c2) = (ctx.err(), ctx.cause());
            let (e2, c2) = (e2.expect("cause() was Some"), c2.expect("cause() was Some"));
            Some((kind(e2), tag(&c2)))
        }
        (Some(_), None) => unreachable!(),
    }
}

/// An instant `ms` milliseconds and `us` microseconds away from `now`
/// (negative offsets saturate at what `Instant` can hold).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum At {
    /// Already past (or exactly now for 0).
    Past(u16),
    Ms(u16),
    Us(u16),
    Secs(u16),
    Days(u8),
}

impl At {
    pub fn resolve(self, now: Instant) -> Instant {
        match self {
            At::Past(ms) => now
                .checked_sub(Duration::from_millis(ms.into()))
                .unwrap_or(now),
            At::Ms(ms) => now + Duration::from_millis(ms.into()),
            At::Us(us) => now + Duration::from_micros(us.into()),
            At::Secs(s) => now + Duration::from_secs(s.into()),
            At::Days(d) => now + Duration::from_secs(86_400 * u64::from(d)),
        }
    }
}

/// A timeout for `with_timeout`, including ones `Instant` cannot hold.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Timeout {
    Zero,
    Ms(u16),
    Us(u16),
    Huge,
    Max,
}

impl Timeout {
    pub fn duration(self) -> Duration {
        match self {
            Timeout::Zero => Duration::ZERO,
            Timeout::Ms(ms) => Duration::from_millis(ms.into()),
            Timeout::Us(us) => Duration::from_micros(us.into()),
            Timeout::Huge => Duration::from_secs(u64::MAX / 4),
            Timeout::Max => Duration::MAX,
        }
    }
}

/// How far a manual clock moves.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    Zero,
    Us(u16),
    Ms(u16),
    Secs(u8),
    Hours(u8),
}

impl Step {
    pub fn duration(self) -> Duration {
        match self {
            Step::Zero => Duration::ZERO,
            Step::Us(us) => Duration::from_micros(us.into()),
            Step::Ms(ms) => Duration::from_millis(ms.into()),
            Step::Secs(s) => Duration::from_secs(s.into()),
            Step::Hours(h) => Duration::from_secs(3600 * u64::from(h)),
        }
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let w = Arc::new(CountingWaker::default());
    (w.clone(), Waker::from(w))
}

/// Decodes up to `max` values back to back until the input runs out.
/// (`Vec::arbitrary` spends a "go on?" byte per element, so random bytes
/// would give sequences of one or two ops; this keeps them dense.)
pub fn decode<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>, max: usize) -> Vec<T> {
    let mut out = Vec::new();
    while out.len() < max && !u.is_empty() {
        match T::arbitrary(u) {
            Ok(t) => out.push(t),
            Err(_) => break,
        }
    }
    out
}

/// Picks `i % len`, or `None` from an empty list.
pub fn pick(i: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}
