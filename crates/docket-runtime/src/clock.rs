//! The wall clock docket seals by (docs/store-format.md, "Time"). Entry timestamps never go
//! back within a log, so one reading that jumps ahead would be adopted by every later entry
//! and make retention expire early. The component therefore reads this clock: the system clock,
//! held to the monotonic clock. A reading that strays more than [`MAX_STEP`] from where the
//! monotonic clock says the wall clock should be is a jump: it is logged and not used (the
//! monotonic estimate is), until the system clock has kept its new reading for [`ADOPT_AFTER`]
//! of monotonic time, when it is taken as a deliberate correction and adopted, with a warning.
//! Small differences (NTP slewing, stepping by less than [`MAX_STEP`]) are adopted at once.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime_wasi::HostWallClock;

/// The largest difference between the system clock and its monotonic estimate adopted at once.
pub const MAX_STEP: Duration = Duration::from_secs(5);
/// How long a larger difference must persist before it is adopted.
pub const ADOPT_AFTER: Duration = Duration::from_secs(60);

struct Anchor {
    /// A wall-clock reading trusted at `at`.
    wall: Duration,
    at: Instant,
    /// When the system clock first disagreed by more than MAX_STEP, if it does now.
    disagreeing_since: Option<Instant>,
}

static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);

/// The system wall clock as it reads, unchecked: for comparing with a time another process
/// read from the same clock (a sender's deadline), not for sealing.
pub fn system_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The process's steady wall clock (all instances share one anchor).
pub struct SteadyClock;

impl SteadyClock {
    /// The time the component would seal by now (since the Unix epoch).
    pub fn now() -> Duration {
        let mut anchor = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
        SteadyClock::read(&mut anchor, system_now(), Instant::now())
    }

    /// The next reading, given the system clock's `system` at monotonic instant `now`.
    fn read(anchor: &mut Option<Anchor>, system: Duration, now: Instant) -> Duration {
        let Some(a) = anchor else {
            *anchor = Some(Anchor {
                wall: system,
                at: now,
                disagreeing_since: None,
            });
            return system;
        };
        let expected = a.wall + now.saturating_duration_since(a.at);
        let step = system.abs_diff(expected);
        if step <= MAX_STEP {
            *a = Anchor {
                wall: system,
                at: now,
                disagreeing_since: None,
            };
            return system;
        }
        let since = *a.disagreeing_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= ADOPT_AFTER {
            tracing::warn!(
                step_s = step.as_secs_f64(),
                "the system clock kept a new reading for {} s; adopting it",
                ADOPT_AFTER.as_secs()
            );
            *a = Anchor {
                wall: system,
                at: now,
                disagreeing_since: None,
            };
            return system;
        }
        if since == now {
            tracing::warn!(
                step_s = step.as_secs_f64(),
                ahead = system > expected,
                "the system clock jumped; sealing by the monotonic clock until it settles"
            );
        }
        expected
    }
}

impl HostWallClock for SteadyClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        SteadyClock::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_jump_is_not_adopted_and_a_lasting_change_is() {
        let mut anchor = None;
        let t0 = Instant::now();
        let wall = Duration::from_secs(1_800_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(SteadyClock::read(&mut anchor, wall, at(0)), wall);
        // Ten years ahead for one reading: the estimate is used instead.
        let jump = wall + Duration::from_secs(10 * 365 * 86_400);
        assert_eq!(
            SteadyClock::read(&mut anchor, jump, at(1)),
            wall + Duration::from_secs(1)
        );
        // Right again: adopted, including a small step.
        let right = wall + Duration::from_secs(2) + Duration::from_millis(300);
        assert_eq!(SteadyClock::read(&mut anchor, right, at(2)), right);
        // A correction that lasts is adopted after ADOPT_AFTER.
        let fixed = right + Duration::from_secs(3600);
        assert_eq!(
            SteadyClock::read(&mut anchor, fixed, at(3)),
            right + Duration::from_secs(1)
        );
        let later = at(3 + ADOPT_AFTER.as_secs());
        let reading = fixed + ADOPT_AFTER;
        assert_eq!(SteadyClock::read(&mut anchor, reading, later), reading);
    }
}
