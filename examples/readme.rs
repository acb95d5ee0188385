use gocontext::{Context, Error};
use std::{thread, time::Duration};

fn main() {
    // A request with a 50 ms budget. Dropping `_cancel` would end it early.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(50));

    let worker = thread::spawn({
        let ctx = ctx.clone();
        move || loop {
            // ... one slice of work, then a nap that ends early on cancel ...
            if let Some(why) = ctx.wait_timeout(Duration::from_millis(5)) {
                return why;
            }
        }
    });

    assert_eq!(worker.join().unwrap(), Error::DeadlineExceeded);
    println!("worker stopped: {}", ctx.err().unwrap()); // context deadline exceeded
}
