//! The wheel against a `BTreeMap` model, plus its tick arithmetic.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{level_for, tick_of, tick_start, Wheel};
use crate::time::entry::{TimerEntry, TimerHooks};

unsafe fn noop(_: NonNull<TimerEntry>) {}
static NOOP: TimerHooks = TimerHooks {
    fire: noop,
    release: noop,
};

/// Owns the entries of one test; frees them at the end.
#[derive(Default)]
struct Arena(Vec<NonNull<TimerEntry>>);

impl Arena {
    fn alloc(&mut self, deadline: Instant) -> NonNull<TimerEntry> {
        let e = NonNull::from(Box::leak(Box::new(TimerEntry::new(deadline, &NOOP))));
        self.0.push(e);
        e
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for e in self.0.drain(..) {
            // SAFETY: allocated by `alloc`; the wheel that used it is gone.
            drop(unsafe { Box::from_raw(e.as_ptr()) });
        }
    }
}

thread_local! {
    /// Entries fired in this thread's runs, and those past 2^36 ms.
    static FIRED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static FIRED_FAR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Model steps per run (Miri runs a smaller sample of the same test).
fn steps() -> usize {
    crate::scaled("wheel model steps per run", 1500, 40)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn ticks_round_up_and_never_panic() {
    let o = Instant::now();
    assert_eq!(tick_of(o, o), 0);
    assert_eq!(tick_of(o, o + Duration::from_nanos(1)), 1);
    assert_eq!(tick_of(o, o + ms(1)), 1);
    assert_eq!(tick_of(o, o + Duration::from_micros(1500)), 2);
    assert_eq!(
        tick_of(o + ms(5), o),
        0,
        "instants before the origin are tick 0"
    );
    let far = o.checked_add(Duration::from_secs(u64::MAX / 4));
    if let Some(far) = far {
        assert!(tick_of(o, far) > 1 << 40);
    }
    assert_eq!(tick_start(o, 0), Some(o));
    assert_eq!(tick_start(o, 2), Some(o + ms(1) + Duration::from_nanos(1)));
    for t in [1u64, 2, 63, 64, 4095, 4096, 1 << 36] {
        let s = tick_start(o, t).unwrap();
        assert_eq!(tick_of(o, s), t);
        assert_eq!(tick_of(o, s - Duration::from_nanos(1)), t - 1);
    }
}

#[test]
fn levels_and_parking() {
    assert_eq!(level_for(0, 1), Some(0));
    assert_eq!(level_for(0, 63), Some(0));
    assert_eq!(level_for(0, 64), Some(1));
    assert_eq!(level_for(0, 4095), Some(1));
    assert_eq!(level_for(0, 4096), Some(2));
    assert_eq!(level_for(0, (1 << 36) - 1), Some(5));
    assert_eq!(level_for(0, 1 << 36), None);
    assert_eq!(level_for(0, (1 << 36) + 1), None);
    // Close in time but across a 2^36 block boundary: parked, re-filed at
    // the boundary, never mistaken for an earlier slot.
    assert_eq!(level_for((1 << 36) - 1, (1 << 36) + 1), None);
    let up = (1u64 << 30) + 12_345;
    assert_eq!(level_for(up, up + 1), Some(0));
}

/// One random run of the wheel against the model. `start` is the virtual
/// uptime the wheel has already reached when the run begins.
fn model_run(seed: u64, start: Duration, steps: usize) {
    const SPECIAL_MS: [u64; 10] = [
        0,
        1,
        63,
        64,
        4095,
        4096,
        (1 << 30) + 7,
        (1 << 36) - 1,
        1 << 36,
        (1 << 36) + 1,
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut arena = Arena::default();
    let origin = Instant::now();
    let mut wheel = Wheel::new(origin);
    let mut now = origin + start;
    wheel.turn(now);
    let mut model: BTreeMap<(Instant, usize), NonNull<TimerEntry>> = BTreeMap::new();
    let mut seq = 0;
    for _ in 0..steps {
        match rng.gen_range(0..20) {
            0..=8 => {
                let offset = match rng.gen_range(0..4) {
                    0 => ms(SPECIAL_MS[rng.gen_range(0..SPECIAL_MS.len())]),
                    1 => Duration::from_nanos(rng.gen_range(0..5_000_000)),
                    2 => ms(rng.gen_range(0..1 << 22)),
                    _ => {
                        ms(SPECIAL_MS[rng.gen_range(0..SPECIAL_MS.len())])
                            + Duration::from_nanos(rng.gen_range(0..1_000_000))
                    }
                };
                let deadline = if rng.gen_bool(0.05) {
                    now.checked_sub(offset).unwrap_or(origin)
                } else {
                    now + offset
                };
                let e = arena.alloc(deadline);
                // SAFETY: fresh entry, lives in the arena past the wheel.
                unsafe { wheel.insert(e) };
                model.insert((deadline, seq), e);
                seq += 1;
            }
            9..=12 if !model.is_empty() => {
                let k = *model.keys().nth(rng.gen_range(0..model.len())).unwrap();
                let e = model.remove(&k).unwrap();
                // SAFETY: filed in this wheel, live in the arena.
                let original = unsafe { wheel.remove(e) };
                assert_eq!(original, e);
            }
            13..=17 => {
                now += Duration::from_nanos(rng.gen_range(0..3_000_000));
                check_turn(&mut wheel, &mut model, now);
            }
            _ => {
                // Jump to (just past) the earliest deadline, however far.
                if let Some(&(first, _)) = model.keys().next() {
                    now = now.max(first) + Duration::from_nanos(rng.gen_range(0..2_000_000));
                }
                check_turn(&mut wheel, &mut model, now);
            }
        }
        assert_eq!(wheel.len(), model.len());
    }
    while let Some(&(first, _)) = model.keys().next() {
        now = now.max(first);
        check_turn(&mut wheel, &mut model, now);
    }
    assert!(wheel.is_empty());
    assert_eq!(wheel.turn(now), None);
}

/// Turns the wheel to `now` and checks it yields exactly the model's due
/// entries, in deadline order, and that its next expiry is not late.
fn check_turn(
    wheel: &mut Wheel,
    model: &mut BTreeMap<(Instant, usize), NonNull<TimerEntry>>,
    now: Instant,
) {
    wheel.turn(now);
    let mut last = None;
    while let Some(e) = wheel.pop_due(now) {
        // SAFETY: live in the arena.
        let d = unsafe { e.as_ref() }.deadline();
        assert!(d <= now, "fired early");
        assert!(last <= Some(d), "out of deadline order");
        last = Some(d);
        let key = model
            .iter()
            .find(|(_, &v)| v == e)
            .map(|(k, _)| *k)
            .expect("fired twice, or never armed");
        model.remove(&key);
        FIRED.with(|f| f.set(f.get() + 1));
        if d.saturating_duration_since(wheel.origin) >= ms(1 << 36) {
            FIRED_FAR.with(|f| f.set(f.get() + 1));
        }
    }
    if let Some(&(first, _)) = model.keys().next() {
        assert!(first > now, "a due entry was not fired");
        let next = wheel.next_expiry().expect("an armed entry has an expiry");
        assert!(next <= first, "next expiry later than a deadline");
    } else {
        assert_eq!(wheel.next_expiry(), None);
    }
}

#[test]
fn wheel_matches_model_from_zero() {
    let steps = steps();
    for seed in 0..12 {
        model_run(seed, Duration::ZERO, steps);
    }
    if !cfg!(miri) {
        assert!(FIRED.with(|f| f.get()) > 3000, "the runs fire entries");
        assert!(FIRED_FAR.with(|f| f.get()) > 10, "some fire past 2^36 ms");
    }
}

#[test]
fn wheel_matches_model_past_2_pow_30_ms() {
    let steps = steps();
    for seed in 100..108 {
        model_run(seed, ms((1 << 30) + 12_345), steps);
    }
}

#[test]
fn wheel_matches_model_across_2_pow_36_ms() {
    let steps = steps();
    for seed in 200..206 {
        model_run(seed, ms((1 << 36) - 3), steps);
    }
    if !cfg!(miri) {
        let far = FIRED_FAR.with(|f| f.get());
        assert!(far > 1000, "the runs reach past 2^36 ms");
    }
}

#[test]
fn many_entries_in_one_tick_fire_in_exact_order() {
    let n_entries = crate::scaled("entries in one tick", 10_000, 200);
    let mut arena = Arena::default();
    let origin = Instant::now();
    let mut wheel = Wheel::new(origin);
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..n_entries {
        let d = origin + ms(4096) + Duration::from_nanos(rng.gen_range(0..1_000_000));
        let e = arena.alloc(d);
        // SAFETY: fresh entry, outlives the wheel.
        unsafe { wheel.insert(e) };
    }
    let now = origin + ms(4097);
    wheel.turn(now);
    let mut last = None;
    let mut n = 0;
    while let Some(e) = wheel.pop_due(now) {
        // SAFETY: live in the arena.
        let d = Some(unsafe { e.as_ref() }.deadline());
        assert!(last <= d);
        last = d;
        n += 1;
    }
    assert_eq!(n, n_entries);
}
