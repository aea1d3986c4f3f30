//! Rate estimation for `ipvsadm --rate`, as IPVS's estimator does it:
//! every two seconds the totals of each service and real server are
//! sampled, and each rate moves a quarter of the way towards the rate of
//! the last interval (an exponentially weighted average with a time
//! constant of about eight seconds).

use std::collections::HashMap;

use dataplane::counters::TrafficTotals;

use crate::model::Rates;

/// Interval between samples, as in IPVS.
pub(super) const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// A slot's rates, and its counters at the last sample: zero at first,
/// since the counters a slot is sampled with start at zero when it is
/// given out, and again at `ipvsadm -Z`.
#[derive(Debug, Clone, Copy, Default)]
struct Estimate {
    last: TrafficTotals,
    /// conns, in packets, out packets, in bytes, out bytes per second.
    rates: [f64; 5],
}

impl Estimate {
    fn sample(&mut self, now: TrafficTotals, seconds: f64) {
        let last = self.last;
        let went_back = [
            (now.conns, last.conns),
            (now.in_packets, last.in_packets),
            (now.out_packets, last.out_packets),
            (now.in_bytes, last.in_bytes),
            (now.out_bytes, last.out_bytes),
        ]
        .iter()
        .any(|(now, last)| now < last);
        if went_back {
            // The counters restarted from zero (the slot was zeroed, or
            // given out again, since the last sample): so do the rates.
            *self = Estimate::default();
        }
        let deltas = [
            now.conns.wrapping_sub(self.last.conns),
            now.in_packets.wrapping_sub(self.last.in_packets),
            now.out_packets.wrapping_sub(self.last.out_packets),
            now.in_bytes.wrapping_sub(self.last.in_bytes),
            now.out_bytes.wrapping_sub(self.last.out_bytes),
        ];
        for (rate, delta) in self.rates.iter_mut().zip(deltas) {
            let current = delta as f64 / seconds;
            *rate += (current - *rate) / 4.0;
        }
        self.last = now;
    }

    fn rates(&self) -> Rates {
        let [cps, in_pps, out_pps, in_bps, out_bps] = self.rates.map(|r| r.round() as u64);
        Rates {
            cps,
            in_pps,
            out_pps,
            // IPVS reports bytes per second.
            in_bps,
            out_bps,
        }
    }
}

/// Rates of every service and real server slot.
#[derive(Debug, Default)]
pub struct Estimator {
    services: HashMap<u32, Estimate>,
    real_servers: HashMap<u32, Estimate>,
}

impl Estimator {
    /// Takes a sample of the slots in use; slots not listed are forgotten
    /// (a slot given out again starts from zero).
    pub fn sample(
        &mut self,
        services: &[(u32, TrafficTotals)],
        real_servers: &[(u32, TrafficTotals)],
        seconds: f64,
    ) {
        update(&mut self.services, services, seconds);
        update(&mut self.real_servers, real_servers, seconds);
    }

    /// Zeroes the rates of these slots, whose counters were zeroed too,
    /// as IPVS's `ip_vs_zero_estimator` does for `ipvsadm -Z`.
    pub fn zero(&mut self, services: &[u32], real_servers: &[u32]) {
        for (estimates, slots) in [
            (&mut self.services, services),
            (&mut self.real_servers, real_servers),
        ] {
            for &slot in slots {
                estimates.insert(slot, Estimate::default());
            }
        }
    }

    pub fn service(&self, slot: u32) -> Rates {
        self.services
            .get(&slot)
            .map(Estimate::rates)
            .unwrap_or_default()
    }

    pub fn real_server(&self, slot: u32) -> Rates {
        self.real_servers
            .get(&slot)
            .map(Estimate::rates)
            .unwrap_or_default()
    }
}

fn update(estimates: &mut HashMap<u32, Estimate>, samples: &[(u32, TrafficTotals)], seconds: f64) {
    estimates.retain(|slot, _| samples.iter().any(|(s, _)| s == slot));
    for &(slot, totals) in samples {
        estimates.entry(slot).or_default().sample(totals, seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_converge_to_a_steady_load() {
        let mut estimator = Estimator::default();
        let mut totals = TrafficTotals::default();
        for _ in 0..40 {
            estimator.sample(&[(1, totals)], &[], 2.0);
            totals.conns += 200;
            totals.in_packets += 2000;
            totals.in_bytes += 2_000_000;
        }
        let rates = estimator.service(1);
        assert!((99..=100).contains(&rates.cps), "{rates:?}");
        assert!((990..=1000).contains(&rates.in_pps));
        assert!((990_000..=1_000_000).contains(&rates.in_bps));
        assert_eq!(rates.out_pps, 0);
    }

    #[test]
    fn traffic_before_the_first_sample_counts() {
        // A service added and busy within one sampling interval.
        let mut estimator = Estimator::default();
        let busy = TrafficTotals {
            conns: 40,
            ..TrafficTotals::default()
        };
        estimator.sample(&[(1, busy)], &[], 2.0);
        assert_eq!(estimator.service(1).cps, 5, "a quarter of 20/s");
    }

    #[test]
    fn zeroing_restarts_the_rates_with_the_counters() {
        let mut estimator = Estimator::default();
        let mut totals = TrafficTotals::default();
        for _ in 0..10 {
            estimator.sample(&[(1, totals)], &[(2, totals)], 2.0);
            totals.conns += 20;
            totals.out_bytes += 4000;
        }
        assert!(estimator.service(1).cps > 0 && estimator.real_server(2).out_bps > 0);
        // -Z: slot 1's counters start again from zero, and so do its rates.
        estimator.zero(&[1], &[]);
        assert_eq!(estimator.service(1), Rates::default(), "zeroed");
        assert!(
            estimator.real_server(2).cps > 0,
            "another slot keeps its rates"
        );
        let zeroed = TrafficTotals::default();
        estimator.sample(&[(1, zeroed)], &[(2, totals)], 2.0);
        assert_eq!(estimator.service(1), Rates::default(), "nothing since");
        let since = TrafficTotals { conns: 8, ..zeroed };
        estimator.sample(&[(1, since)], &[(2, totals)], 2.0);
        assert_eq!(estimator.service(1).cps, 1, "a quarter of 4/s");
    }

    #[test]
    fn counters_that_start_again_start_the_rates_again() {
        // The slot was given out again between two samples: its new
        // owner's counters are below the old owner's.
        let mut estimator = Estimator::default();
        let old = TrafficTotals {
            conns: 4000,
            in_packets: 40_000,
            ..TrafficTotals::default()
        };
        estimator.sample(&[], &[(3, old)], 2.0);
        let new = TrafficTotals {
            conns: 8,
            in_packets: 80,
            ..TrafficTotals::default()
        };
        estimator.sample(&[], &[(3, new)], 2.0);
        let rates = estimator.real_server(3);
        assert_eq!((rates.cps, rates.in_pps), (1, 10), "from zero: {rates:?}");
    }

    #[test]
    fn slots_no_longer_in_use_are_forgotten() {
        let mut estimator = Estimator::default();
        let busy = TrafficTotals {
            conns: 10,
            ..TrafficTotals::default()
        };
        estimator.sample(&[], &[(3, TrafficTotals::default())], 2.0);
        estimator.sample(&[], &[(3, busy)], 2.0);
        assert!(estimator.real_server(3).cps > 0);
        estimator.sample(&[], &[], 2.0);
        assert_eq!(estimator.real_server(3), Rates::default());
    }
}
