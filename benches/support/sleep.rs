//! Arming a `tokio::time::Sleep` from synchronous benchmark code, shared by
//! the timing (`context.rs`) and memory (`memory.rs`) benchmarks.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

/// Polls `sleep` once, which registers it with tokio's timer wheel (tokio
/// registers a sleep on its first poll, not when it is made). The waker
/// does nothing: the benchmarks never let a sleep elapse.
pub fn arm(sleep: Pin<&mut tokio::time::Sleep>) {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Noop));
    }
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        let _ = std::future::Future::poll(sleep, &mut cx);
    });
}
