//! A fixed log-linear histogram of latencies, in the manner of HdrHistogram:
//! exact below 32, then 32 buckets per power of two, so every recorded
//! value is known within 1/32 (about 3 %). Recording is an index
//! computation and an increment into a preallocated array: no allocation
//! per sample.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any u64.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of values (TSC cycles here) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Histogram {
    /// Counts one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below or at which a fraction `quantile` (0..=1) of the
    /// values lie, as the middle of its bucket (within 1/32 of the true
    /// value); `None` when empty.
    pub fn percentile(&self, quantile: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return Some(self.max);
        }
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bounds(index);
                // The top bucket's middle can exceed what was seen.
                return Some((low + width / 2).min(self.max));
            }
        }
        Some(self.max)
    }

    /// p50, p99 and p99.9 in nanoseconds for values counted in TSC cycles
    /// at `tsc_hz`.
    pub fn summary(&self, tsc_hz: u64) -> LatencySummary {
        let ns = |cycles: Option<u64>| {
            cycles.map(|cycles| (cycles as f64 * 1e9 / tsc_hz.max(1) as f64).round() as u64)
        };
        LatencySummary {
            samples: self.total,
            p50_ns: ns(self.percentile(0.50)),
            p99_ns: ns(self.percentile(0.99)),
            p999_ns: ns(self.percentile(0.999)),
            max_ns: ns((self.total > 0).then_some(self.max)),
        }
    }
}

/// Percentiles of a latency histogram, in nanoseconds (`None` without
/// samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
}

#[inline]
fn bucket(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= SUB_BITS
    let sub = (value >> (exponent - SUB_BITS)) as usize & (SUB - 1);
    (exponent - SUB_BITS + 1) as usize * SUB + sub
}

/// The lowest value of bucket `index` and the bucket's width.
fn bounds(index: usize) -> (u64, u64) {
    if index < SUB {
        return (index as u64, 1);
    }
    let exponent = (index / SUB) as u32 + SUB_BITS - 1;
    let sub = (index % SUB) as u64;
    let shift = exponent - SUB_BITS;
    ((SUB as u64 + sub) << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_their_values() {
        for value in (0..5000u64).chain([u64::MAX, u64::MAX / 3, 1 << 40]) {
            let (low, width) = bounds(bucket(value));
            assert!(
                low <= value && value - low < width,
                "{value}: {low}+{width}"
            );
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut histogram = Histogram::default();
        for value in 1..=100_000u64 {
            histogram.record(value);
        }
        for (quantile, exact) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = histogram.percentile(quantile).unwrap() as f64;
            assert!(
                (got - exact).abs() / exact < 1.0 / 32.0,
                "p{quantile}: {got} vs {exact}"
            );
        }
        assert_eq!(histogram.percentile(1.0), Some(100_000));
        assert_eq!(Histogram::default().percentile(0.5), None);
    }

    #[test]
    fn small_values_are_exact_and_summary_converts() {
        let mut histogram = Histogram::default();
        for value in [3, 3, 3, 7] {
            histogram.record(value);
        }
        assert_eq!(histogram.percentile(0.5), Some(3));
        assert_eq!(histogram.percentile(0.99), Some(7));
        // 2 GHz: 7 cycles are 3.5 ns, rounded.
        let summary = histogram.summary(2_000_000_000);
        assert_eq!(summary.samples, 4);
        assert_eq!(summary.p50_ns, Some(2));
        assert_eq!(summary.max_ns, Some(4));
    }

    proptest! {
        /// Any percentile lies within 1/32 of the exact order statistic.
        #[test]
        fn percentile_error_is_bounded(mut values in prop::collection::vec(0u64..10_000_000, 1..400), quantile in 0.0f64..=1.0) {
            let mut histogram = Histogram::default();
            for &value in &values {
                histogram.record(value);
            }
            values.sort_unstable();
            let rank = ((quantile * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = histogram.percentile(quantile).unwrap() as f64;
            prop_assert!((got - exact).abs() <= exact / 32.0 + 1.0, "{} vs {}", got, exact);
        }
    }
}
