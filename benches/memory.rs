//! Heap bytes (and allocations) per live context: 100,000 contexts of one
//! kind kept alive under an open parent, counted by a counting global
//! allocator, for gocontext and tokio-util. The Go twin prints the same
//! lines (`benches/go`, `-memory`), and `benches/compare.sh` puts the three
//! side by side. Not a timed measurement, and not a test: it prints
//! `impl<TAB>memory/<kind>/<bytes|allocs><TAB>value` lines.
//!
//!   cargo bench --bench memory
//!
//! tokio-util has no deadline of its own: its `with_timeout` line is a child
//! token next to a boxed `tokio::time::Sleep` armed with the timer wheel (a
//! server's request future would hold the `Sleep` inline; the box is where
//! it lives here). It has no context values: no `with_value` line.

use std::time::Duration;

use gocontext::{Context, Key};
use tokio_util::sync::CancellationToken;

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/sleep.rs"]
mod sleep;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// Contexts kept alive per measurement.
const N: usize = 100_000;
const HOUR: Duration = Duration::from_secs(3600);

static REQUEST_ID: Key<u64> = Key::new("request_id");

/// Makes one context per call, keeps `N` of them alive, and prints the heap
/// bytes and allocations each one costs. The `Vec` that keeps them is
/// allocated before counting starts; `warm` is made and dropped first, so
/// that one-time set-up (the clock's driver thread, tokio's wheel) is not
/// counted.
fn measure<T>(imp: &str, kind: &str, mut make: impl FnMut(u64) -> T) {
    drop(make(0));
    let mut keep: Vec<T> = Vec::with_capacity(N);
    // Let the clock's driver and crossbeam-epoch finish what earlier
    // measurements left them, so that no free lands inside this one.
    std::thread::sleep(Duration::from_millis(100));
    let before = counting_alloc::settle(0);
    let calls = counting_alloc::allocations();
    for i in 0..N as u64 {
        keep.push(make(i));
    }
    // Timers reach the wheel through the driver thread: let it file them.
    std::thread::sleep(Duration::from_millis(100));
    let calls = counting_alloc::allocations() - calls;
    let after = counting_alloc::settle(before);
    let bytes = (after - before) as f64 / N as f64;
    println!("{imp}\tmemory/{kind}/bytes\t{bytes:.3}");
    println!(
        "{imp}\tmemory/{kind}/allocs\t{:.3}",
        calls as f64 / N as f64
    );
    drop(keep);
}

fn gocontext_side() {
    let (root, _handle) = Context::background().with_cancel();
    measure("gocontext", "with_value", |i| {
        root.with_value(&REQUEST_ID, i + (1 << 32))
    });
    measure("gocontext", "with_cancel", |_| root.with_cancel());
    measure("gocontext", "with_timeout", |_| root.with_timeout(HOUR));
}

fn tokio_side() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("tokio runtime");
    let _in = rt.enter();
    let root = CancellationToken::new();
    measure("tokio-util", "with_cancel", |_| root.child_token());
    measure("tokio-util", "with_timeout", |_| {
        let mut timer = Box::pin(tokio::time::sleep(HOUR));
        sleep::arm(timer.as_mut());
        (root.child_token(), timer)
    });
}

fn main() {
    println!("# rust\tmemory per live context, {N} kept alive");
    gocontext_side();
    tokio_side();
}
