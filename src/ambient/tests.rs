use super::*;
use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(Noop));
    fut.poll(&mut TaskContext::from_waker(&waker))
}

/// Pending once (recording the current context each time it is polled),
/// then ready with the context it saw last.
fn yield_once(seen: Arc<Mutex<Vec<Option<Context>>>>) -> impl Future<Output = Context> {
    let mut polled = false;
    poll_fn(move |_| {
        seen.lock().unwrap().push(Context::try_current());
        if std::mem::replace(&mut polled, true) {
            Poll::Ready(Context::current())
        } else {
            Poll::Pending
        }
    })
}

#[test]
fn outside_every_scope_current_is_background() {
    assert_eq!(Context::try_current(), None);
    assert_eq!(Context::current(), Context::background());
}

#[test]
fn guards_nest_and_restore() {
    let (a, _ca) = Context::background().with_cancel();
    let (b, _cb) = a.with_cancel();
    let ga = a.enter();
    assert_eq!(Context::current(), a);
    {
        let _gb = b.enter();
        assert_eq!(Context::current(), b);
    }
    assert_eq!(Context::current(), a);
    drop(ga);
    assert_eq!(Context::try_current(), None);
}

#[test]
fn a_scope_is_current_only_while_polled() {
    let (ctx, _c) = Context::background().with_cancel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut fut = pin!(ctx.clone().scope(yield_once(seen.clone())));
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!(Context::try_current(), None, "restored after the poll");
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(ctx.clone()));
    assert_eq!(*seen.lock().unwrap(), vec![Some(ctx.clone()), Some(ctx)]);
}

#[test]
fn interleaved_tasks_on_one_thread_see_their_own() {
    let (a, _ca) = Context::background().with_cancel();
    let (b, _cb) = Context::background().with_cancel();
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let mut fa = pin!(a.clone().scope(yield_once(seen_a.clone())));
    let mut fb = pin!(b.clone().scope(yield_once(seen_b.clone())));
    let outer = Context::todo();
    let _g = outer.enter(); // an executor's own context is put back too
    assert!(poll_once(fa.as_mut()).is_pending());
    assert!(poll_once(fb.as_mut()).is_pending());
    assert_eq!(poll_once(fa.as_mut()), Poll::Ready(a.clone()));
    assert_eq!(poll_once(fb.as_mut()), Poll::Ready(b.clone()));
    assert_eq!(Context::current(), outer);
    assert_eq!(*seen_a.lock().unwrap(), vec![Some(a.clone()), Some(a)]);
    assert_eq!(*seen_b.lock().unwrap(), vec![Some(b.clone()), Some(b)]);
}

#[test]
fn scopes_nest_inside_futures() {
    let (outer, _c1) = Context::background().with_cancel();
    let (inner, _c2) = outer.with_cancel();
    let inner2 = inner.clone();
    let mut fut = pin!(outer.clone().scope(async move {
        let before = Context::current();
        let during = inner2.scope(async { Context::current() }).await;
        (before, during, Context::current())
    }));
    let Poll::Ready((before, during, after)) = poll_once(fut.as_mut()) else {
        panic!("nothing in it waits")
    };
    assert_eq!((before, during, after), (outer.clone(), inner, outer));
}

#[test]
fn a_scope_follows_its_task_across_threads() {
    let (ctx, _c) = Context::background().with_cancel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut fut = Box::pin(ctx.clone().scope(yield_once(seen.clone())));
    assert!(poll_once(fut.as_mut()).is_pending());
    let out = std::thread::spawn(move || {
        let before = Context::try_current();
        let out = poll_once(fut.as_mut());
        (before, out, Context::try_current())
    })
    .join()
    .unwrap();
    assert_eq!(out, (None, Poll::Ready(ctx.clone()), None));
    assert_eq!(*seen.lock().unwrap(), vec![Some(ctx.clone()), Some(ctx)]);
}

#[test]
fn dropping_a_scope_drops_its_future_inside_it() {
    struct Record(Arc<Mutex<Option<Context>>>);
    impl Drop for Record {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Context::try_current();
        }
    }
    let (ctx, _c) = Context::background().with_cancel();
    let slot = Arc::new(Mutex::new(None));
    let record = Record(slot.clone());
    let fut = ctx.clone().scope(async move {
        let _keep = record;
        std::future::pending::<()>().await;
    });
    drop(fut);
    assert_eq!(*slot.lock().unwrap(), Some(ctx));
    assert_eq!(Context::try_current(), None);
}

#[test]
fn a_finished_future_is_dropped_inside_its_scope_at_once() {
    struct Record(Arc<Mutex<Option<Option<Context>>>>);
    impl Drop for Record {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(Context::try_current());
        }
    }
    let (ctx, _c) = Context::background().with_cancel();
    let slot = Arc::new(Mutex::new(None));
    let record = Record(slot.clone());
    let mut fut = Box::pin(ctx.clone().scope(async move {
        let _keep = record;
        7
    }));
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(7));
    // Dropped at completion, while the context was current.
    assert_eq!(*slot.lock().unwrap(), Some(Some(ctx)));
    *slot.lock().unwrap() = None;
    // Polled again it stays pending, like a fused future.
    assert_eq!(poll_once(fut.as_mut()), Poll::Pending);
    drop(fut);
    assert_eq!(*slot.lock().unwrap(), None, "not dropped twice");
    assert_eq!(Context::try_current(), None);
}

#[test]
fn a_panicking_poll_restores_the_slot() {
    let (ctx, _c) = Context::background().with_cancel();
    let mut fut = Box::pin(ctx.scope(async { panic!("handler bug") }));
    let r = catch_unwind(AssertUnwindSafe(|| poll_once(fut.as_mut())));
    assert!(r.is_err());
    assert_eq!(Context::try_current(), None);
}

#[test]
fn a_leaked_guard_inside_cannot_change_the_scopes_context() {
    let (ctx, _c) = Context::background().with_cancel();
    let intruder = Context::todo();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let mut polled = false;
    let mut fut = pin!(ctx.clone().scope(poll_fn(move |_| {
        seen2.lock().unwrap().push(Context::current());
        if std::mem::replace(&mut polled, true) {
            return Poll::Ready(());
        }
        std::mem::forget(intruder.enter());
        Poll::Pending
    })));
    assert!(poll_once(fut.as_mut()).is_pending());
    assert!(poll_once(fut.as_mut()).is_ready());
    assert_eq!(*seen.lock().unwrap(), vec![ctx.clone(), ctx]);
}

#[test]
fn nothing_crosses_spawn_without_rescoping() {
    let (ctx, _c) = Context::background().with_cancel();
    let guard = ctx.enter();
    // Made inside the scope, polled outside it (as a spawned task is).
    let plain = async { Context::try_current() };
    let carried = Context::scope_current(async { Context::try_current() });
    drop(guard);
    assert_eq!(poll_once(pin!(plain)), Poll::Ready(None));
    assert_eq!(poll_once(pin!(carried)), Poll::Ready(Some(ctx)));
}

#[test]
fn scope_is_send_when_its_future_is() {
    fn send<T: Send>(_: &T) {}
    let fut = Context::background().scope(async {});
    send(&fut);
    assert_eq!(fut.context(), &Context::background());
}
