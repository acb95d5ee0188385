//! Placeholder clock; replaced by the timer subsystem branch.
use crate::timer::TimerEntry;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The time source deadlines run on.
#[derive(Clone, Debug)]
pub struct Clock(Option<Arc<Instant>>);

impl Clock {
    /// The real-time clock.
    pub fn system() -> Clock {
        Clock(None)
    }
    /// Virtual time.
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(Instant::now())))
    }
    /// Now.
    pub fn now(&self) -> Instant {
        Instant::now()
    }
    /// Moves virtual time.
    pub fn advance(&self, _d: Duration) {}
    pub(crate) fn ptr_eq(&self, other: &Clock) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
    pub(crate) fn arm(&self, entry: NonNull<TimerEntry>) {
        // SAFETY: placeholder: hands the clock's reference straight back.
        unsafe { (entry.as_ref().hooks().release)(entry) }
    }
    pub(crate) fn disarm(&self, _entry: &TimerEntry) -> bool {
        false
    }
}
