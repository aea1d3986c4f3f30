//! The schedulers that read connection counts: lc, wlc, sed and nq (IPVS's
//! `ip_vs_lc.c`, `ip_vs_wlc.c`, `ip_vs_sed.c`, `ip_vs_nq.c`), and fo and ovf
//! (`ip_vs_fo.c`, `ip_vs_ovf.c`), which pick by weight.
//!
//! - lc: the available server with the least overhead, `active * 256 +
//!   inactive`, whatever its weight.
//! - wlc: the least overhead per unit of weight.
//! - sed: the least expected delay, `(active + 1) / weight`.
//! - nq: the first idle server (no active connection) if there is one,
//!   else as sed.
//! - fo: the available server with the highest weight.
//! - ovf: the available server with the highest weight among those whose
//!   active connections do not exceed their weight: weights are connection
//!   limits, and traffic overflows to the next server when one is full.
//!
//! Comparisons cross-multiply, as IPVS's do; ties go to the first server
//! in the list.

use super::{Connections, Indexed, Servers, Weighted, best_of};
use crate::snapshot::RealServer;

/// What a least-connection scheduler counts for a server.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cost {
    /// IPVS's `ip_vs_dest_conn_overhead`: `active * 256 + inactive`.
    Overhead,
    /// sed's and nq's `active + 1`: the new connection's expected delay.
    ExpectedDelay,
}

impl Cost {
    #[inline]
    pub(super) fn of(self, connections: Connections) -> u64 {
        match self {
            Cost::Overhead => connections.overhead(),
            Cost::ExpectedDelay => connections.active.saturating_add(1),
        }
    }
}

impl<'a> Servers<'a> {
    /// The available one of `candidates` with the least `cost` (per unit of
    /// weight if `weighted`); the first of equals.
    pub(super) fn least(
        &self,
        candidates: impl Iterator<Item = Indexed<'a>>,
        cost: Cost,
        weighted: bool,
    ) -> Option<usize> {
        best_of(
            self.available_of(candidates)
                .map(|(i, rs)| (i, self.weigh(rs, cost, weighted))),
            Weighted::lighter_than,
        )
    }

    /// The first of the highest weight among the available servers that
    /// pass `admits`: the first such in `by_weight`, the servers by weight,
    /// heaviest first, in list order among equals.
    fn heaviest(&self, by_weight: &[u32], admits: impl Fn(&RealServer) -> bool) -> Option<usize> {
        self.available_of(self.at(by_weight.iter().map(|&i| i as usize)))
            .find(|&(_, rs)| admits(rs))
            .map(|(i, _)| i)
    }
}

/// The servers with a weight, heaviest first, in list order among equals:
/// fo and ovf take the first available one, as IPVS's scan of the whole
/// list for the highest weight would.
pub(super) fn by_weight(real_servers: &[RealServer]) -> Box<[u32]> {
    let mut order: Vec<u32> = (0..real_servers.len() as u32)
        .filter(|&i| real_servers[i as usize].weight > 0)
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(real_servers[i as usize].weight));
    order.into_boxed_slice()
}

/// nq: the first idle server if there is one, else sed's choice; in one
/// pass, as IPVS's, which stops at the first idle server.
pub(super) fn never_queue(servers: &Servers<'_>) -> Option<usize> {
    let mut idle = None;
    let busy = servers.available_of(servers.all()).map_while(|(i, rs)| {
        let connections = servers.load_of(rs);
        if connections.active == 0 {
            idle = Some(i);
            return None;
        }
        let delay = Cost::ExpectedDelay.of(connections);
        Some((i, Weighted::new(delay, rs.weight)))
    });
    let least = best_of(busy, Weighted::lighter_than);
    idle.or(least)
}

/// fo: the highest weight wins.
pub(super) fn failover(servers: &Servers<'_>, by_weight: &[u32]) -> Option<usize> {
    servers.heaviest(by_weight, |_| true)
}

/// ovf: the highest weight among servers not over their weight in active
/// connections (IPVS skips a server when `active > weight`).
pub(super) fn overflow(servers: &Servers<'_>, by_weight: &[u32]) -> Option<usize> {
    servers.heaviest(by_weight, |rs| {
        servers.load_of(rs).active <= u64::from(rs.weight)
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::random::Rng;
    use super::super::testing::*;
    use super::super::*;

    /// The reference: each formula written out, over floating point.
    fn reference(weights: &[u32], counts: &Counts, kind: SchedulerKind) -> Option<usize> {
        let idle = (0..weights.len()).find(|&i| weights[i] > 0 && counts.get(i).active == 0);
        if kind == SchedulerKind::NeverQueue && idle.is_some() {
            return idle;
        }
        let cost = |i: usize| {
            let c = counts.get(i);
            match kind {
                SchedulerKind::LeastConnection => (c.active * 256 + c.inactive) as f64,
                SchedulerKind::WeightedLeastConnection => {
                    (c.active * 256 + c.inactive) as f64 / f64::from(weights[i])
                }
                _ => (c.active + 1) as f64 / f64::from(weights[i]),
            }
        };
        least_by(weights, cost)
    }

    #[test]
    fn formulas_on_hand_picked_counts() {
        let c = |active, inactive| Connections { active, inactive };
        // lc ignores weights; wlc divides the overhead by them.
        let counts = Counts::new(vec![c(1, 0), c(0, 200), c(2, 0)]);
        let pick = |kind, weights: &[u32]| {
            SchedulerState::default().pick(&service(kind, weights), &input(&counts))
        };
        assert_eq!(pick(SchedulerKind::LeastConnection, &[1, 1, 10]), Some(1));
        assert_eq!(
            pick(SchedulerKind::WeightedLeastConnection, &[1, 1, 10]),
            Some(2)
        );
        // sed counts active connections plus the new one: (1+1)/1, (0+1)/1, (2+1)/10.
        assert_eq!(
            pick(SchedulerKind::ShortestExpectedDelay, &[1, 1, 10]),
            Some(2)
        );
        // nq sends to the idle server first, whatever the weights.
        assert_eq!(pick(SchedulerKind::NeverQueue, &[1, 1, 10]), Some(1));
        // fo: highest weight, first of equals; quiesced servers never.
        assert_eq!(pick(SchedulerKind::WeightedFailover, &[3, 7, 7]), Some(1));
        assert_eq!(pick(SchedulerKind::WeightedFailover, &[0, 0, 0]), None);
        // ovf: server 2 (weight 2) holds 2 active: not over, still first.
        assert_eq!(pick(SchedulerKind::WeightedOverflow, &[1, 1, 2]), Some(2));
        // Over its weight: the next weight down takes it, first of equals
        // (server 0, whose 1 active does not exceed its weight 1).
        counts.set(2, c(3, 0));
        assert_eq!(pick(SchedulerKind::WeightedOverflow, &[1, 1, 2]), Some(0));
        counts.set(0, c(2, 0));
        assert_eq!(pick(SchedulerKind::WeightedOverflow, &[1, 1, 2]), Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10))]

        /// 10 000 simulated connections per case (100 000 per kind over
        /// the cases), opened on the picked server and closed at random:
        /// every pick is what the scheduler's formula says.
        #[test]
        fn least_connection_family_follows_its_formula(
            weights in prop::collection::vec(0u32..=8, 1..=10),
            seed in any::<u64>(),
        ) {
            for kind in [
                SchedulerKind::LeastConnection,
                SchedulerKind::WeightedLeastConnection,
                SchedulerKind::ShortestExpectedDelay,
                SchedulerKind::NeverQueue,
            ] {
                let svc = service(kind, &weights);
                let counts = Counts::idle(weights.len());
                let mut state = SchedulerState::default();
                let mut rng = Rng::new(seed);
                for _ in 0..10_000 {
                    let picked = state.pick(&svc, &input(&counts));
                    prop_assert_eq!(picked, reference(&weights, &counts, kind), "{}", kind.name());
                    let Some(i) = picked else { break };
                    // New connections start inactive (a SYN) and may become
                    // active; some connections close.
                    let mut c = counts.get(i);
                    if rng.below(3) == 0 { c.inactive += 1 } else { c.active += 1 }
                    counts.set(i, c);
                    let j = rng.below(weights.len() as u64) as usize;
                    let mut c = counts.get(j);
                    match rng.below(4) {
                        0 => c.active = c.active.saturating_sub(1),
                        1 => c.inactive = c.inactive.saturating_sub(1),
                        _ => {}
                    }
                    counts.set(j, c);
                }
            }
        }

        /// fo always picks the highest-weight available server; ovf fills
        /// servers in weight order, each up to its weight, and refuses only
        /// when all are full.
        #[test]
        fn failover_and_overflow_respect_weights(
            weights in prop::collection::vec(0u32..=6, 1..=8),
        ) {
            let fo = service(SchedulerKind::WeightedFailover, &weights);
            let top = weights.iter().copied().max().unwrap_or(0);
            let expected = weights.iter().position(|&w| w == top && w > 0);
            prop_assert_eq!(SchedulerState::default().pick(&fo, &input(&Idle)), expected);

            // Connections never close: each pick adds an active one.
            let ovf = service(SchedulerKind::WeightedOverflow, &weights);
            let counts = Counts::idle(weights.len());
            let mut state = SchedulerState::default();
            let mut accepted = 0u64;
            while let Some(i) = state.pick(&ovf, &input(&counts)) {
                let active = counts.get(i).active;
                prop_assert!(active <= u64::from(weights[i]));
                // No heavier server had room.
                prop_assert!((0..weights.len()).all(|j| weights[j] <= weights[i]
                    || counts.get(j).active > u64::from(weights[j])));
                counts.add_active(i, 1);
                accepted += 1;
            }
            // Full: each server with weight w took w + 1 (it is skipped
            // only once its active connections exceed w).
            let capacity: u64 = weights.iter().filter(|&&w| w > 0).map(|&w| u64::from(w) + 1).sum();
            prop_assert_eq!(accepted, capacity);
        }
    }
}
