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

#[derive(Debug, Clone, Copy, Default)]
struct Estimate {
    last: TrafficTotals,
    /// conns, in packets, out packets, in bytes, out bytes per second.
    rates: [f64; 5],
}

impl Estimate {
    /// No rate yet; the next interval starts at `totals`.
    fn starting_at(totals: TrafficTotals) -> Estimate {
        Estimate {
            last: totals,
            rates: [0.0; 5],
        }
    }

    fn sample(&mut self, now: TrafficTotals, seconds: f64) {
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

    /// Zeroes the rates of these slots and takes their totals as the
    /// start of the next interval, as IPVS's `ip_vs_zero_estimator` does
    /// for `ipvsadm -Z`.
    pub fn zero(
        &mut self,
        services: &[(u32, TrafficTotals)],
        real_servers: &[(u32, TrafficTotals)],
    ) {
        for (estimates, slots) in [
            (&mut self.services, services),
            (&mut self.real_servers, real_servers),
        ] {
            for &(slot, totals) in slots {
                estimates.insert(slot, Estimate::starting_at(totals));
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
        estimates
            .entry(slot)
            .or_insert_with(|| Estimate::starting_at(totals))
            .sample(totals, seconds);
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
    fn zeroing_restarts_the_rates_from_the_current_totals() {
        let mut estimator = Estimator::default();
        let mut totals = TrafficTotals::default();
        for _ in 0..10 {
            estimator.sample(&[(1, totals)], &[(2, totals)], 2.0);
            totals.conns += 20;
            totals.out_bytes += 4000;
        }
        assert!(estimator.service(1).cps > 0 && estimator.real_server(2).out_bps > 0);
        estimator.zero(&[(1, totals)], &[]);
        assert_eq!(estimator.service(1), Rates::default(), "zeroed");
        assert!(
            estimator.real_server(2).cps > 0,
            "another slot keeps its rates"
        );
        // No traffic since: the next sample measures nothing.
        estimator.sample(&[(1, totals)], &[(2, totals)], 2.0);
        assert_eq!(estimator.service(1), Rates::default());
        // Traffic since the zeroing counts from there.
        totals.conns += 8;
        estimator.sample(&[(1, totals)], &[(2, totals)], 2.0);
        assert_eq!(estimator.service(1).cps, 1, "a quarter of 4/s");
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
