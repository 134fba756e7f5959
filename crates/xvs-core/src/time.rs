//! Time as the model sees it: a monotonic millisecond clock supplied by the caller.
//! The core never reads a clock itself.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the caller's monotonic clock, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_secs(s: u64) -> Time {
        Time(s * 1000)
    }
    pub fn from_millis(ms: u64) -> Time {
        Time(ms)
    }
    pub fn as_millis(self) -> u64 {
        self.0
    }
    /// Whole seconds, rounded down.
    pub fn as_secs(self) -> u64 {
        self.0 / 1000
    }
    /// Time left until `deadline`, zero if it has passed.
    pub fn until(self, deadline: Time) -> Duration {
        Duration::from_millis(deadline.0.saturating_sub(self.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0 + d.as_millis() as u64)
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
