//! Placeholder for the timer entry; replaced by the timer subsystem branch.
use std::ptr::NonNull;
use std::time::Instant;

/// Hooks a timer's container provides.
pub(crate) struct TimerHooks {
    pub(crate) fire: unsafe fn(NonNull<TimerEntry>),
    pub(crate) release: unsafe fn(NonNull<TimerEntry>),
}

/// One deadline.
pub(crate) struct TimerEntry {
    deadline: Instant,
    hooks: &'static TimerHooks,
}

impl TimerEntry {
    pub(crate) fn new(deadline: Instant, hooks: &'static TimerHooks) -> TimerEntry {
        TimerEntry { deadline, hooks }
    }
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
    pub(crate) fn hooks(&self) -> &'static TimerHooks {
        self.hooks
    }
}
