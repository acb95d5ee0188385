//! Deadlines: timer entries, the timing wheel, and who runs it.
//!
//! A clock's timer engine (`core.rs`) takes entries that any thread arms or
//! disarms without a lock (`entry.rs`: one state word per entry; `inbox.rs`:
//! a lock-free stack that carries them to the wheel's owner), files them in
//! a hierarchical timing wheel (`wheel/`) that one owner at a time holds,
//! and fires what is due with no lock held. The owner is the system clock's
//! driver thread (`driver.rs`; a standby takes its role if it is stuck in
//! user code) or the caller of a manual clock's `advance` (`manual.rs`).
//!
//! | module | concept | invariants |
//! |---|---|---|
//! | `entry.rs` | one deadline: its state machine and hooks | entry 1-7 |
//! | `inbox.rs` | the hand-off to the owner, and the graveyard | entry 2, 3, 7 |
//! | `core.rs` | one clock's engine: inbox + wheel + the fire loop | module doc |
//! | `wheel/` | the hierarchical timing wheel (levels, intrusive lists) | module doc |
//! | `driver.rs` | the system clock's timer threads: driver and standby | driver 1-7 |
//! | `watch.rs` | the word through which a standby takes the driver role | watch 1-4 |
//! | `doorbell.rs` | the thread to unpark for a role that moves | — |
//! | `manual.rs` | a manual clock's virtual time | — |
//!
//! This folder depends on nothing in `crate::tree`: whatever embeds an entry
//! supplies a static [`TimerHooks`] table, and the engine calls back only
//! through it. Within the folder dependencies run one way: `entry` ←
//! `inbox` ← `core` ← `driver`, `manual`; `wheel` uses `entry` only;
//! `driver` also uses `watch` and `doorbell`, which use nothing here.
//! Its tests drive it through the public `Clock`, so they live beside
//! `clock.rs` (`clock/`), not here.

mod core;
mod doorbell;
mod driver;
mod entry;
mod inbox;
mod manual;
mod watch;
mod wheel;

#[cfg(all(test, not(loom)))]
pub(crate) use self::core::COLLECT_EVERY;
pub(crate) use self::core::{AfterDisarm, Collected, TimerCore};
pub(crate) use driver::system as system_driver;
pub(crate) use entry::{TimerEntry, TimerHooks};
pub(crate) use manual::ManualClock;
