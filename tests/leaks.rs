//! Leak checks with a counting global allocator: each scenario runs once to
//! warm up (lazy statics, thread-locals, the epoch collector), then again
//! between two measurements; once everything it made is dropped and
//! crossbeam-epoch's deferred frees have run, live bytes must be back at the
//! baseline.
//!
//! The runner is `support/scenarios.rs`'s. `GOCONTEXT_LEAKS_ONLY=<name>`
//! runs one scenario.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/scenarios.rs"]
mod scenarios;

#[path = "support/miri.rs"]
mod miri;

use counting_alloc::Counting;
use gocontext::{CancelHandle, Cause, Clock, Context, Error, Key};
use miri::scaled;
use scenarios::{check_all, Scenario};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Debug)]
struct Tag(#[allow(dead_code)] Vec<u8>);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tag")
    }
}

impl std::error::Error for Tag {}

/// A cause that owns a kilobyte, so that a leaked cause shows.
fn big_cause() -> Cause {
    Cause::from(Tag(vec![7; 1024]))
}

static NAME: Key<String> = Key::new("name");
static NUM: Key<u64> = Key::new("num");

struct CountWake(AtomicUsize);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn waker() -> (Arc<CountWake>, Waker) {
    let w = Arc::new(CountWake(AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

fn poll_once<F: Future + Unpin>(f: &mut F, w: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut std::task::Context::from_waker(w))
}

/// A deterministic tree of 600 nodes of every kind under one root.
fn build_tree(root: &Context) -> (Vec<Context>, Vec<CancelHandle>) {
    let mut ctxs = vec![root.clone()];
    let mut handles = vec![];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..600u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = ctxs[(x % ctxs.len() as u64) as usize].clone();
        let c = match i % 5 {
            0 | 1 => {
                let (c, h) = p.with_cancel();
                handles.push(h);
                c
            }
            2 => p.with_value(&NAME, format!("node {i}")),
            3 => p.with_value(&NUM, i).without_cancel(),
            _ => {
                let q = ctxs[(x / 7 % ctxs.len() as u64) as usize].clone();
                let (c, h) = Context::merge(&p, &q);
                handles.push(h);
                c
            }
        };
        ctxs.push(c);
    }
    (ctxs, handles)
}

fn tree_cancel_and_drop() {
    let root = Clock::manual().background();
    let (ctxs, handles) = build_tree(&root);
    for (i, h) in handles.iter().enumerate() {
        if i % 2 == 0 {
            h.cancel_with_cause(big_cause());
        }
    }
    drop(handles);
    let done = ctxs.iter().filter(|c| c.is_done()).count();
    assert!(done > 100, "only {done} contexts done after cancelling");
}

fn tree_detach_and_drop() {
    let root = Clock::manual().background();
    let (ctxs, handles) = build_tree(&root);
    for h in handles {
        h.detach();
    }
    assert!(ctxs.iter().all(|c| c.err().is_none()));
    // Contexts first, root last, then the other way round.
    drop(ctxs);
    let (ctxs, handles) = build_tree(&root);
    drop(root);
    for h in handles {
        h.detach();
    }
    drop(ctxs);
}

fn deep_chain() {
    let root = Clock::manual().background();
    let mut c = root.clone();
    let mut handles = Vec::new();
    let depth = scaled("chain depth", 100_000, 1_000);
    for _ in 0..depth {
        let (n, h) = c.with_cancel();
        handles.push(h);
        c = n;
    }
    let leaf = c.clone();
    drop(c);
    handles[0].cancel();
    assert_eq!(leaf.err(), Some(Error::Canceled));
    drop(handles);
    drop(leaf);
    // And a chain given up without cancelling, dropped from the root end.
    let mut c = root;
    for _ in 0..depth {
        let (n, h) = c.with_cancel();
        h.detach();
        c = n;
    }
}

fn deadlines_manual() {
    let clock = Clock::manual();
    let root = clock.background();
    let mut keep = vec![];
    let mut ctxs = vec![];
    for i in 0..300u64 {
        let (c, h) = root.with_timeout(Duration::from_millis(1 + i * 7));
        let (g, gh) = c.with_timeout_cause(Duration::from_millis(i * 3 + 2), big_cause());
        match i % 4 {
            0 => drop(h), // cancelled before firing
            1 => h.detach(),
            _ => keep.push(h),
        }
        if i % 3 == 0 {
            gh.detach();
        } else {
            keep.push(gh);
        }
        if i % 5 == 0 {
            ctxs.push(c);
            ctxs.push(g);
        }
    }
    clock.advance(Duration::from_millis(3000));
    assert!(ctxs
        .iter()
        .all(|c| c.err() == Some(Error::DeadlineExceeded) || c.err() == Some(Error::Canceled)));
    drop(keep);
    drop(ctxs);
    // Timers still pending when everything (clock included) goes away.
    let (c, h) = root.with_timeout(Duration::from_secs(3600));
    let (d, dh) = c.with_deadline(clock.now() + Duration::from_secs(86_400 * 365));
    dh.detach();
    drop((c, d));
    h.detach();
    drop(root);
    drop(clock);
}

fn deadlines_fired_then_dropped() {
    let clock = Clock::manual();
    let root = clock.background();
    let (c, h) = root.with_timeout(Duration::from_millis(5));
    let (g, _gh) = c.with_timeout_cause(Duration::from_millis(1), big_cause());
    clock.advance(Duration::from_millis(2));
    assert_eq!(g.err(), Some(Error::DeadlineExceeded));
    assert_eq!(c.err(), None);
    clock.advance(Duration::from_millis(10));
    assert_eq!(c.err(), Some(Error::DeadlineExceeded));
    drop(h);
}

/// Timers disarmed on a manual clock while another thread is inside
/// `advance`: a disarm whose collector found the wheel taken must still be
/// drained, with no later `advance` to do it. (It used to stay queued, and
/// the node and its clock kept each other alive: found by the `threads`
/// fuzz target under LeakSanitizer.)
fn disarms_during_advance() {
    for _ in 0..scaled("disarm-during-advance rounds", 100, 3) {
        let clock = Clock::manual();
        let root = clock.background();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let owner = {
            let (clock, stop) = (clock.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    clock.advance(Duration::ZERO);
                }
            })
        };
        let batch: Vec<_> = (0..50)
            .map(|_| root.with_timeout(Duration::from_secs(3600)))
            .collect();
        // Let the owner file them, so that each drop's disarm pushes.
        std::thread::yield_now();
        drop(batch);
        stop.store(true, SeqCst);
        owner.join().unwrap();
    }
}

/// Two threads arming and disarming on a manual clock that nobody ever
/// advances: every drain is a collector's, so a collector that finds the
/// wheel taken must leave its work to the other one, which drains again.
/// (Unlike `disarms_during_advance`, this did not catch the old bug: the
/// last collector of a round runs alone and drains whatever was left.)
fn collectors_race_each_other() {
    let per_worker = scaled("timeouts per collector", 200, 20);
    for _ in 0..scaled("collector rounds", 20, 2) {
        let clock = Clock::manual();
        let root = clock.background();
        let start = Arc::new(std::sync::Barrier::new(2));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (root, start) = (root.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..per_worker {
                        drop(root.with_timeout(Duration::from_secs(3600)));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }
}

fn deadline_system_clock() {
    let (c, h) = Context::background().with_timeout(Duration::from_secs(3600));
    let (g, gh) = c.with_timeout(Duration::from_secs(7200));
    gh.detach();
    drop(g);
    drop(h);
    assert_eq!(c.err(), Some(Error::Canceled));
    let (c, h) = Context::background().with_timeout(Duration::from_secs(3600));
    h.detach();
    drop(c);
}

fn waiters() {
    let root = Clock::manual().background();
    let (c, h) = root.with_cancel();
    // Dropped while pending, before the cancel.
    for _ in 0..100 {
        let (_, w) = waker();
        let mut d = c.done();
        assert!(poll_once(&mut d, &w).is_pending());
        drop(d);
    }
    // Pending across the cancel, woken, then dropped.
    let mut kept = vec![];
    for _ in 0..100 {
        let (n, w) = waker();
        let mut d = c.done();
        assert!(poll_once(&mut d, &w).is_pending());
        kept.push((d, n, w));
    }
    // Timed-out waits leave nothing behind.
    for _ in 0..20 {
        assert_eq!(c.wait_timeout(Duration::from_micros(50)), None);
    }
    // A thread blocked in wait() is woken by the cancel.
    let c2 = c.clone();
    let t = std::thread::spawn(move || c2.wait());
    std::thread::sleep(Duration::from_millis(5));
    h.cancel();
    assert_eq!(t.join().unwrap(), Error::Canceled);
    for (mut d, n, w) in kept {
        assert!(n.0.load(SeqCst) > 0, "pending Done not woken by cancel");
        assert_eq!(poll_once(&mut d, &w), Poll::Ready(Error::Canceled));
    }
    // Futures and waits on a context that is never cancelled.
    let (c, h) = root.with_cancel();
    let (_, w) = waker();
    let mut d = c.done();
    assert!(poll_once(&mut d, &w).is_pending());
    h.detach();
    drop(c);
    drop(d);
    let mut run = Box::pin(root.run(std::future::pending::<()>()));
    assert!(run
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&w))
        .is_pending());
    drop(run);
}

fn callbacks() {
    let root = Clock::manual().background();
    let ran = Arc::new(AtomicUsize::new(0));
    let payload = Arc::new(vec![1u8; 4096]);
    let (c, h) = root.with_cancel();
    let mut stops = vec![];
    for i in 0..100 {
        let (r, p) = (ran.clone(), payload.clone());
        let af = c.after_func(move || {
            r.fetch_add(p.len() / 4096, SeqCst);
        });
        if i % 3 == 0 {
            assert!(af.stop());
        } else if i % 3 == 1 {
            stops.push(af);
        } // else: dropped, still registered
    }
    h.cancel();
    assert_eq!(ran.load(SeqCst), 66);
    for af in stops {
        assert!(!af.stop());
    }
    // Registered on a context that is never done, then everything dropped:
    // the closure (and the payload it owns) must be freed.
    let (c, h) = root.with_cancel();
    for _ in 0..50 {
        let p = payload.clone();
        drop(c.after_func(move || drop(p)));
    }
    h.detach();
    drop(c);
    let v = root.with_value(&NUM, 1);
    let p = payload.clone();
    let af = v.after_func(move || drop(p));
    drop(v);
    assert!(af.stop());
    // Already done: runs at once.
    let (c, h) = root.with_cancel();
    h.cancel();
    let r = ran.clone();
    drop(c.after_func(move || {
        r.fetch_add(1, SeqCst);
    }));
    assert_eq!(ran.load(SeqCst), 67);
    drop(root);
    // Nodes are freed through the epoch: give it its turns.
    for _ in 0..10_000 {
        if Arc::strong_count(&payload) == 1 {
            break;
        }
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(Arc::strong_count(&payload), 1, "a callback closure leaked");
}

fn merges() {
    let root = Clock::manual().background();
    for round in 0..50 {
        let (a, ah) = root.with_cancel();
        let (b, bh) = root.with_timeout(Duration::from_secs(10));
        let (m, mh) = Context::merge(&a, &b);
        let (mm, mmh) = Context::merge(&m, &a.with_value(&NUM, round));
        match round % 4 {
            0 => ah.cancel_with_cause(big_cause()),
            1 => bh.cancel(),
            2 => mh.cancel(),
            _ => {
                mmh.detach();
                drop((ah, bh, mh, m, mm));
                continue;
            }
        }
        assert!(
            m.is_done() && mm.is_done(),
            "merge not done after a parent's cancel"
        );
        drop((ah, bh, mh, mmh, a, b, m, mm));
    }
}

/// The counts a new node takes before it is published, and the link
/// references a withdrawal keeps for teardown, on every path that gives
/// them back or releases them together: deadlines (system and manual
/// clock) and merges under a parent that is done already, deadlines past
/// already, and children and merges cancelled through their handles
/// (which keep their links' references) before their last drop.
fn counts_given_back_and_kept() {
    let manual = Clock::manual();
    for root in [Context::background(), manual.background()] {
        let (open, open_h) = root.with_cancel();
        let (closed, closed_h) = root.with_cancel();
        closed_h.cancel();
        for i in 0..scaled("rounds of counts", 100, 10) {
            // Under a closed parent: the list's and the clock's counts go back.
            let (d, dh) = closed.with_timeout(Duration::from_secs(3600));
            assert_eq!(d.err(), Some(Error::Canceled));
            // Past already: never armed, nothing counted for the clock.
            let (p, ph) = open.with_timeout(Duration::ZERO);
            assert_eq!(p.err(), Some(Error::DeadlineExceeded));
            // A merge whose first parent is closed: its second link's count.
            let (m, mh) = Context::merge(&closed, &open);
            assert!(m.is_done());
            // Cancelled through the handle, then dropped: kept references.
            let (c, ch) = open.with_timeout(Duration::from_secs(3600));
            let v = c.with_value(&NUM, i as u64);
            let (o2, o2h) = open.with_cancel();
            let (mo, moh) = Context::merge(&c, &o2);
            moh.cancel(); // first, so that its own cancel withdraws both links
            ch.cancel();
            assert!(v.is_done() && mo.is_done() && !o2.is_done());
            drop((d, dh, p, ph, m, mh, c, ch, v, mo, moh, o2, o2h));
        }
        drop((open, open_h, closed, closed_h));
    }
}

fn panics_in_callbacks() {
    let root = Clock::manual().background();
    let (c, h) = root.with_cancel();
    let (g, _gh) = c.with_cancel();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        let r = ran.clone();
        let payload = vec![0u8; 512];
        drop(c.after_func(move || {
            r.fetch_add(payload.len() / 512, SeqCst);
            if i % 2 == 0 {
                panic!("callback {i} panics on purpose");
            }
        }));
    }
    let r = ran.clone();
    drop(g.after_func(move || {
        r.fetch_add(100, SeqCst);
    }));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.cancel()));
    assert!(g.is_done(), "a panicking callback stopped the cancellation");
    assert_eq!(
        ran.load(SeqCst),
        110,
        "a panicking callback stopped the others"
    );
}

fn values_and_causes() {
    let root = Clock::manual().background();
    let mut c = root.clone();
    for i in 0..1000 {
        c = c.with_value(&NAME, "x".repeat(i % 64));
    }
    let (d, h) = c.with_cancel();
    h.cancel_with_cause(big_cause());
    let cause = d.cause().unwrap();
    assert!(cause.is::<Tag>());
    drop((c, d, cause));
}

/// Shared contexts: children on two threads, ended in every order against
/// the shared context's cancel, detach and drop.
fn shared_contexts() {
    let root = Clock::manual().background();
    for round in 0..40u64 {
        let (shared, handle) = root.with_cancel_shared();
        let makers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let (c, h) = shared.with_timeout(Duration::from_secs(60));
                    (c.with_value(&NUM, round), h)
                })
            })
            .collect();
        let kids: Vec<_> = makers.into_iter().map(|t| t.join().unwrap()).collect();
        match round % 4 {
            0 => {
                handle.cancel_with_cause(big_cause());
                drop((shared, kids));
            }
            1 => {
                handle.detach();
                drop(shared);
                drop(kids);
            }
            2 => {
                drop(kids);
                handle.cancel();
                drop(shared);
            }
            _ => {
                handle.detach();
                drop(shared);
                std::thread::spawn(move || drop(kids)).join().unwrap();
            }
        }
    }
}

const SCENARIOS: &[Scenario] = &[
    ("tree_cancel_and_drop", tree_cancel_and_drop),
    ("tree_detach_and_drop", tree_detach_and_drop),
    ("deep_chain", deep_chain),
    ("deadlines_manual", deadlines_manual),
    ("deadlines_fired_then_dropped", deadlines_fired_then_dropped),
    ("disarms_during_advance", disarms_during_advance),
    ("collectors_race_each_other", collectors_race_each_other),
    ("deadline_system_clock", deadline_system_clock),
    ("waiters", waiters),
    ("callbacks", callbacks),
    ("merges", merges),
    ("counts_given_back_and_kept", counts_given_back_and_kept),
    ("panics_in_callbacks", panics_in_callbacks),
    ("values_and_causes", values_and_causes),
    ("shared_contexts", shared_contexts),
];

#[test]
fn leak_scenarios() {
    // The panics of `panics_in_callbacks` are on purpose.
    check_all("leaks", "GOCONTEXT_LEAKS_ONLY", SCENARIOS, |msg, _| {
        msg.contains("on purpose")
    });
}
