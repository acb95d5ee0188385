//! loom's model of the drained signal's timed park (`cfg(loom)` only).
//!
//! A thread waiting for a node's drain parks with a bounded timeout
//! (drained.rs invariant 3): the timeout is there only for a sleeper that
//! the drainer's blind mark erased, which nobody wakes. loom has no timed
//! park, and a yield in its place lets two waiting threads hand the
//! processor back and forth for free (a yield costs loom no preemption)
//! while the drainer, one step from its mark, is never scheduled: a single
//! schedule then exceeds loom's branch limit.
//!
//! So under loom a waiting thread parks for real (`loom::thread::park`,
//! which loom reports as a deadlock if nothing ever unparks it), and the
//! timeout is modelled by the one event it exists for: a mark that erased
//! sleepers unparks every thread registered on that node. Under loom the
//! mark is a swap (list/sleepers.rs `mark_drained`), whose result says whether it
//! erased any. The registry is a loom `Mutex`; nothing outside loom has it.
//!
//! Invariant: a thread registers on a node before it pushes its sleeper
//! there, and stays registered until it has seen the node drained; so a
//! mark that erases its sleeper (which comes after the push in the word's
//! modification order, and so after the registration in execution order)
//! finds it registered.

use loom::sync::Mutex;
use loom::thread::{self, Thread};

loom::lazy_static! {
    /// Threads waiting for a node's drain, by the node's list address.
    static ref SLEEPING: Mutex<Vec<(usize, Thread)>> = Mutex::new(Vec::new());
}

/// Registers this thread as waiting for the list at `list`.
pub(super) fn register(list: usize) {
    SLEEPING.lock().unwrap().push((list, thread::current()));
}

/// This thread no longer waits for the list at `list`.
pub(super) fn unregister(list: usize) {
    let me = thread::current().id();
    let mut sleeping = SLEEPING.lock().unwrap();
    if let Some(i) = sleeping
        .iter()
        .position(|(l, t)| *l == list && t.id() == me)
    {
        sleeping.swap_remove(i);
    }
}

/// The mark of the list at `list` erased sleepers: their timeouts elapse.
pub(super) fn expire(list: usize) {
    for (l, t) in SLEEPING.lock().unwrap().iter() {
        if *l == list {
            t.unpark();
        }
    }
}
