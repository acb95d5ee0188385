//! Loom models of the overrun watch: a driver in user code against a
//! standby that takes its role (`RUSTFLAGS="--cfg gocontext_loom --cfg
//! crossbeam_loom" cargo test --lib --release loom_models`).
//! `LOOM_MAX_PREEMPTIONS` sets the bound (default 3), as for every harness.

use super::{Busy, Role, Watch, AWAKE};
use crate::sync::{model, Arc};

/// The standby's side: watch for user code, take the role if seen.
fn stand_by(watch: &Watch) -> Option<Role> {
    watch.busy().and_then(|busy| watch.take(busy))
}

/// The driver inside user code, and a standby thread running `standby`
/// on the same watch; returns the driver's leave and the standby's result.
fn race<T: Send + 'static>(standby: fn(&Watch) -> T) -> (Arc<Watch>, Role, Busy, bool, T) {
    let watch = Arc::new(Watch::new(10));
    let role = watch.first_role();
    let busy = watch.enter(role, 7);
    let other = {
        let watch = watch.clone();
        loom::thread::spawn(move || standby(&watch))
    };
    let still_driver = watch.leave(role, busy);
    let result = other.join().unwrap();
    (watch, role, busy, still_driver, result)
}

/// A take races the leave of the hook it saw: exactly one of them wins,
/// so exactly one thread goes on driving (invariant 2).
#[test]
fn take_races_leave() {
    model(|| {
        let (_, _, _, still_driver, taken) = race(stand_by);
        assert_ne!(still_driver, taken.is_some());
    });
}

/// After a take, the new driver enters and leaves user code of its own
/// while the old one is still in its hook: the new driver's leaves always
/// succeed and the old driver's fails (invariant 3), whatever the order.
#[test]
fn new_driver_is_not_confused_by_the_old() {
    model(|| {
        let (watch, role, busy, still_driver, took) = race(|watch| {
            let Some(mine) = stand_by(watch) else {
                return false;
            };
            for since in [2, 3] {
                let b = watch.enter(mine, since);
                assert!(watch.leave(mine, b), "the new driver lost its role");
            }
            true
        });
        assert_ne!(still_driver, took);
        if took {
            // The old driver's word is gone for good.
            assert!(!watch.leave(role, busy));
        }
    });
}

/// The standby role has one holder: a new driver hands it to a fresh
/// thread while the old driver, back from its hook, tries to claim it too
/// (invariant 4).
#[test]
fn standby_role_has_one_holder() {
    model(|| {
        let watch = Arc::new(Watch::new(10));
        assert!(watch.claim_standby());
        watch.vacate_standby(); // the standby took over the driver role
        let old_driver = {
            let watch = watch.clone();
            loom::thread::spawn(move || watch.claim_standby())
        };
        let for_new_thread = watch.claim_standby();
        let old = old_driver.join().unwrap();
        assert_ne!(old, for_new_thread);
        assert!(!watch.claim_standby());
    });
}

/// The driver, parked indefinitely, is woken (by an arm) at time 50 while
/// the standby, just woken, decides how long to sleep: the standby never parks past
/// 50 + the budget without being rung (invariant 5). A lost ring leaves it
/// parked forever, which loom reports.
#[test]
fn standby_never_sleeps_through_the_drivers_work() {
    model(|| {
        let watch = Arc::new(Watch::new(10));
        // The standby was to look at 20 and has just woken (late, at 50)
        // to recompute; the driver parked indefinitely: nothing to ring.
        let _ = watch.standby_publishes(20, 0);
        assert!(!watch.driver_publishes(u64::MAX, u64::MAX));
        let standby = {
            let watch = watch.clone();
            loom::thread::spawn(move || loop {
                let now = 50;
                let look_at = watch.driver_next_work(now).saturating_add(10);
                if !watch.standby_publishes(look_at, now) {
                    continue;
                }
                if look_at != u64::MAX {
                    return look_at; // a timed sleep: it looks in time
                }
                loom::thread::park();
            })
        };
        if watch.driver_publishes(AWAKE, 50) {
            standby.thread().unpark();
        }
        assert_eq!(standby.join().unwrap(), 60);
    });
}
