//! rr and wrr, as IPVS's `ip_vs_rr.c` and `ip_vs_wrr.c`.
//!
//! rr takes each available real server in turn. wrr interleaves: it scans
//! the list for servers whose weight reaches a current weight that starts
//! at the largest weight and drops by the weights' gcd at the end of each
//! pass, so that over a whole round each server is picked exactly its
//! weight (divided by the gcd) times.

use super::{Algorithm, Servers};
use crate::snapshot::RealServer;

/// A worker's position in a service's list.
#[derive(Debug, Clone, Default)]
pub(super) struct Rotation {
    /// Position of the last pick in the service's list (IPVS's `cl`);
    /// `None` stands for the list head, before the first real server.
    position: Option<usize>,
    /// Slot of the last pick, to find it again in a changed list.
    last_slot: u32,
    /// wrr's current weight (IPVS's `cw`).
    current_weight: i64,
}

impl Rotation {
    /// Follows a configuration change: a new scheduler starts afresh;
    /// rr goes on after the last pick (IPVS's `ip_vs_rr_del_dest` moves
    /// past a removed one), wrr restarts at the list head and keeps its
    /// current weight where IPVS's `ip_vs_wrr_dest_changed` does.
    pub(super) fn adapt(
        &mut self,
        algorithm: &Algorithm,
        real_servers: &[RealServer],
        fresh: bool,
    ) {
        match *algorithm {
            Algorithm::RoundRobin => {
                self.position = if fresh {
                    None
                } else {
                    let last = self.last_slot;
                    real_servers.iter().position(|rs| rs.slot == last)
                };
            }
            Algorithm::WeightedRoundRobin { max_weight, gcd } => {
                self.position = None;
                if fresh || self.current_weight > max_weight || self.current_weight <= 0 {
                    self.current_weight = max_weight;
                } else if gcd > 1 {
                    self.current_weight = (self.current_weight / gcd) * gcd + 1;
                }
            }
            _ => *self = Rotation::default(),
        }
    }

    /// IPVS's `ip_vs_rr_schedule`: the next available server after the
    /// last pick, wrapping once.
    pub(super) fn round_robin(&mut self, servers: &Servers<'_>) -> Option<usize> {
        let start = self.position.map_or(0, |p| p + 1).min(servers.len());
        let picked = (start..servers.len())
            .chain(0..start)
            .find(|&i| servers.available(i))?;
        Some(self.remember(servers, picked))
    }

    /// IPVS's `ip_vs_wrr_schedule`: scan on from the last pick for a server
    /// whose weight reaches the current weight; at the end of the list,
    /// lower the current weight by the gcd (wrapping to the maximum), until
    /// every server has been considered at weight 1.
    pub(super) fn weighted(
        &mut self,
        servers: &Servers<'_>,
        max_weight: i64,
        gcd: i64,
    ) -> Option<usize> {
        if max_weight == 0 {
            return None;
        }
        let last = self.position.filter(|&p| p < servers.len());
        let mut stop = None;
        let mut from = last.map_or(0, |p| p + 1);
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            for i in from..servers.len() {
                if servers.available(i) && i64::from(servers.weight(i)) >= self.current_weight {
                    return Some(self.remember(servers, i));
                }
                if stop == Some(i) {
                    return None;
                }
            }
            from = 0;
            self.current_weight -= gcd;
            if self.current_weight <= 0 {
                self.current_weight = max_weight;
                if last_pass || last.is_none() {
                    return None;
                }
                restarted = true;
            }
            last_pass = self.current_weight <= gcd;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    fn remember(&mut self, servers: &Servers<'_>, picked: usize) -> usize {
        self.position = Some(picked);
        self.last_slot = servers.list.get(picked).map_or(0, |rs| rs.slot);
        picked
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn round_robin_alternates_and_skips_quiesced_servers() {
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::RoundRobin, &[1, 1, 1]);
        assert_eq!(
            picks(&mut state, &svc, 4),
            [Some(0), Some(1), Some(2), Some(0)]
        );
        let quiesced = service(SchedulerKind::RoundRobin, &[1, 0, 1]);
        assert_eq!(picks(&mut state, &quiesced, 3), [Some(2), Some(0), Some(2)]);
        let none = service(SchedulerKind::RoundRobin, &[0, 0]);
        assert_eq!(state.pick(&none, &input(&Idle)), None);
        assert_eq!(
            state.pick(&service(SchedulerKind::RoundRobin, &[]), &input(&Idle)),
            None
        );
    }

    #[test]
    fn weighted_round_robin_interleaves_like_ipvs() {
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::WeightedRoundRobin, &[3, 1]);
        assert_eq!(
            picks(&mut state, &svc, 8),
            [0, 0, 0, 1, 0, 0, 0, 1].map(Some)
        );
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::WeightedRoundRobin, &[4, 3, 2]);
        // IPVS's sequence for 4,3,2: a a b a b c a b c
        assert_eq!(
            picks(&mut state, &svc, 9),
            [0, 0, 1, 0, 1, 2, 0, 1, 2].map(Some)
        );
    }

    #[test]
    fn weight_change_keeps_the_split_exact() {
        // rvsadm -E -s wrr with weights 1,1, then -e to weight 3: IPVS keeps
        // the current weight and restarts at the head of the list.
        let mut state = SchedulerState::default();
        let before = service(SchedulerKind::WeightedRoundRobin, &[1, 1]);
        assert_eq!(shares(&mut state, &before, 10), [5, 5]);
        let after = service(SchedulerKind::WeightedRoundRobin, &[3, 1]);
        assert_eq!(shares(&mut state, &after, 400), [300, 100]);
    }

    #[test]
    fn all_quiesced_means_no_pick() {
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::WeightedRoundRobin, &[0, 0]);
        assert_eq!(state.pick(&svc, &input(&Idle)), None);
    }

    #[test]
    fn round_robin_continues_after_the_last_pick_when_servers_change() {
        let mut state = SchedulerState::default();
        let three = service(SchedulerKind::RoundRobin, &[1, 1, 1]);
        assert_eq!(picks(&mut state, &three, 2), [Some(0), Some(1)]);
        // A fourth server is added: the rotation goes on after server 1.
        let four = service(SchedulerKind::RoundRobin, &[1, 1, 1, 1]);
        assert_eq!(picks(&mut state, &four, 3), [Some(2), Some(3), Some(0)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Over whole rounds (100 000 connections or more), wrr gives each
        /// server exactly its weight's share, and rr exactly an equal share
        /// of the available ones; quiesced servers get nothing.
        #[test]
        fn shares_equal_the_weights_over_whole_rounds(
            weights in prop::collection::vec(0u32..=12, 1..=10),
        ) {
            let round: u32 = weights.iter().sum();
            prop_assume!(round > 0);
            let rounds = 100_000usize.div_ceil(round as usize);
            let mut state = SchedulerState::default();
            let svc = service(SchedulerKind::WeightedRoundRobin, &weights);
            let counts = shares(&mut state, &svc, round as usize * rounds);
            let expected: Vec<usize> = weights.iter().map(|&w| w as usize * rounds).collect();
            prop_assert_eq!(counts, expected);

            let available = weights.iter().filter(|&&w| w > 0).count();
            let rounds = 100_000usize.div_ceil(available);
            let mut state = SchedulerState::default();
            let svc = service(SchedulerKind::RoundRobin, &weights);
            let counts = shares(&mut state, &svc, available * rounds);
            let expected: Vec<usize> =
                weights.iter().map(|&w| if w > 0 { rounds } else { 0 }).collect();
            prop_assert_eq!(counts, expected);
        }
    }
}
