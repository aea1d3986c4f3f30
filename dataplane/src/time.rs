//! Time as the sans-IO core sees it: a monotonic count of nanoseconds that
//! the caller supplies. The core never reads a clock itself, so tests can
//! drive hours of timeouts in microseconds.

use std::fmt;
use std::ops::{Add, Sub};

/// A monotonic instant, in nanoseconds since an arbitrary origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

/// A span of time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs.saturating_mul(1_000_000_000))
    }

    pub const fn from_millis(millis: u64) -> Duration {
        Duration(millis.saturating_mul(1_000_000))
    }

    pub const fn from_micros(micros: u64) -> Duration {
        Duration(micros.saturating_mul(1_000))
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
}

impl Instant {
    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Converts a cycle counter (the TSC) into [`Instant`]s without a division
/// per call: `nanos = (cycles - origin) * multiplier >> SHIFT`.
#[derive(Debug, Clone, Copy)]
pub struct CycleClock {
    origin: u64,
    multiplier: u64,
}

impl CycleClock {
    const SHIFT: u32 = 32;

    /// A clock whose origin is `origin_cycles` and that ticks `hz` times a
    /// second.
    pub fn new(origin_cycles: u64, hz: u64) -> CycleClock {
        let hz = hz.max(1);
        CycleClock {
            origin: origin_cycles,
            multiplier: ((1_000_000_000u128 << Self::SHIFT) / hz as u128) as u64,
        }
    }

    pub fn instant(&self, cycles: u64) -> Instant {
        let elapsed = cycles.wrapping_sub(self.origin) as u128;
        Instant(((elapsed * self.multiplier as u128) >> Self::SHIFT) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_clock_converts_at_the_given_rate() {
        let clock = CycleClock::new(1_000, 2_500_000_000);
        assert_eq!(clock.instant(1_000), Instant(0));
        let one_second = clock.instant(1_000 + 2_500_000_000);
        assert!((one_second.0 as i64 - 1_000_000_000).abs() < 10);
        let an_hour = clock.instant(1_000 + 2_500_000_000 * 3600);
        assert!((an_hour.0 as i64 - 3_600_000_000_000).abs() < 1_000_000);
    }
}
