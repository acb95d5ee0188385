//! The public types' traits, checked at compile time: every auto trait the
//! API promises, unwind safety, and `Run` as a nameable future type.

use gocontext::{AfterFunc, CancelHandle, Cause, Clock, Context, Done, Error, Key, Run};
use std::future::Future;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, Wake, Waker};

#[allow(dead_code)]
fn assert_send_sync<T: Send + Sync>() {}
#[allow(dead_code)]
fn assert_unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
#[allow(dead_code)]
fn assert_static<T: 'static>() {}
#[allow(dead_code)]
fn assert_unpin<T: Unpin>() {}

const _: fn() = || {
    assert_send_sync::<Context>();
    assert_static::<Context>();
    assert_send_sync::<CancelHandle>();
    assert_send_sync::<AfterFunc>();
    assert_send_sync::<Error>();
    assert_send_sync::<Cause>();
    assert_send_sync::<Key<std::rc::Rc<u8>>>(); // for every `T`
    assert_send_sync::<Key<std::cell::Cell<u8>>>();
    assert_send_sync::<Done>();
    assert_unpin::<Done>();
    assert_static::<Done>();
    assert_send_sync::<Clock>();
    assert_send_sync::<Run<std::future::Ready<u8>>>();
    assert_unpin::<Run<std::future::Ready<u8>>>();
    assert_unwind_safe::<Context>();
    assert_unwind_safe::<Cause>();
    assert_unwind_safe::<CancelHandle>();
    assert_unwind_safe::<Done>();
    assert_unwind_safe::<AfterFunc>();
    assert_unwind_safe::<Error>();
    assert_unwind_safe::<Clock>();
};

#[test]
fn public_types_cross_catch_unwind() {
    let (ctx, cancel) = Context::background().with_cancel();
    let done = ctx.done();
    // No `AssertUnwindSafe` needed: the types are unwind-safe.
    let r = std::panic::catch_unwind(|| {
        cancel.cancel();
        let _ = &done;
        ctx.err()
    });
    assert_eq!(r.unwrap(), Some(Error::Canceled));
}

/// `Run` is nameable, so it can be a trait's associated future type.
trait Service {
    type Future: Future<Output = Result<u32, Error>>;
    fn call(&self, ctx: &Context) -> Self::Future;
}

struct Answer;

impl Service for Answer {
    type Future = Run<std::future::Ready<u32>>;
    fn call(&self, ctx: &Context) -> Self::Future {
        ctx.run(std::future::ready(42))
    }
}

#[test]
fn run_is_a_nameable_service_future() {
    let mut f = Answer.call(&Context::background());
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = TaskCx::from_waker(&waker);
    assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(42)));
}
