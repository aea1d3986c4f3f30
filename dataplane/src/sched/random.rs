//! twos: weighted random choice of two, as IPVS's `ip_vs_twos.c` (the
//! "power of two choices" of Mitzenmacher).
//!
//! Two servers are drawn at random, each with probability proportional to
//! its weight among the available ones (they may be the same); the one
//! with less overhead per unit of weight wins, the first draw on a tie.
//!
//! Deliberate difference: IPVS draws from `[0, total weight]` inclusive,
//! which gives the first server one extra chance in `total + 1`; here the
//! draws are from `[0, total)`, so the odds are exactly the weights.
//!
//! The generator is wyrand: a 64-bit state, an add and a multiply per
//! number, seeded per worker ([`SchedulerState::with_seed`]), no system
//! call.
//!
//! [`SchedulerState::with_seed`]: super::SchedulerState::with_seed

use super::least_connection::Cost;
use super::{Indexed, Servers};

/// A small, fast pseudo-random generator (wyrand).
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let product = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (product as u64) ^ ((product >> 64) as u64)
    }

    /// A number in `[0, bound)` (0 when `bound` is 0), by Lemire's
    /// multiply-shift; the bias, under `bound / 2^64`, does not matter here.
    #[inline]
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// twos: draws two servers by weight and keeps the less loaded.
pub(super) fn two_choices(servers: &Servers<'_>, rng: &mut Rng) -> Option<usize> {
    let total: u64 = servers
        .available_of(servers.all())
        .map(|(_, rs)| u64::from(rs.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let (first, second) = (rng.below(total), rng.below(total));
    choose(servers, first, second)
}

/// The servers at weight offsets `first` and `second` among the available
/// ones, the less loaded of the two.
fn choose(servers: &Servers<'_>, first: u64, second: u64) -> Option<usize> {
    let (a, b) = (at_offset(servers, first)?, at_offset(servers, second)?);
    let load = |(_, rs): Indexed<'_>| servers.weigh(rs, Cost::Overhead, true);
    Some(if load(b).lighter_than(load(a)) {
        b.0
    } else {
        a.0
    })
}

/// The available server whose cumulative weight range holds `offset`.
fn at_offset<'a>(servers: &Servers<'a>, offset: u64) -> Option<Indexed<'a>> {
    let mut end = 0u64;
    servers.available_of(servers.all()).find(|&(_, rs)| {
        end += u64::from(rs.weight);
        offset < end
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testing::*;
    use super::super::*;
    use super::{Rng, choose};

    fn view<'a>(svc: &'a Service, load: &'a dyn Load) -> Servers<'a> {
        Servers {
            list: &svc.real_servers,
            states: &[],
            load,
        }
    }

    #[test]
    fn draws_are_uniform_and_deterministic_per_seed() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut counts = [0usize; 10];
        for _ in 0..100_000 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            counts[n as usize] += 1;
        }
        assert!(within(&counts, &[10_000.0; 10], 0.05), "{counts:?}");
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the two draws, the pick is the less loaded (per unit
        /// of weight) of the two servers they land on, the first on a tie.
        #[test]
        fn prefers_the_less_loaded_of_its_two_picks(
            weights in prop::collection::vec(0u32..=5, 1..=8),
            loads in prop::collection::vec((0u64..=4, 0u64..=300), 8),
            first in any::<u64>(),
            second in any::<u64>(),
        ) {
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            prop_assume!(total > 0);
            let svc = service(SchedulerKind::TwoRandomChoices, &weights);
            let counts = Counts::new(
                loads.iter().map(|&(active, inactive)| Connections { active, inactive }).collect(),
            );
            let servers = view(&svc, &counts);
            let (first, second) = (first % total, second % total);
            // Reference: expand the weights into a list of server indices.
            let tickets: Vec<usize> = weights
                .iter()
                .enumerate()
                .flat_map(|(i, &w)| std::iter::repeat_n(i, w as usize))
                .collect();
            let (a, b) = (tickets[first as usize], tickets[second as usize]);
            let overhead = |i: usize| counts.get(i).overhead() as f64 / f64::from(weights[i]);
            let expected = if overhead(b) < overhead(a) { b } else { a };
            prop_assert_eq!(choose(&servers, first, second), Some(expected));
        }
    }

    /// 100 000 picks: a heavily loaded server among idle ones is picked
    /// only when both draws land on it ((1/4)^2 of the time), where a
    /// single random choice would pick it a quarter of the time; idle
    /// servers share by weight.
    #[test]
    fn avoids_the_loaded_server() {
        let svc = service(SchedulerKind::TwoRandomChoices, &[1, 1, 1, 1]);
        let counts = Counts::idle(4);
        counts.set(
            0,
            Connections {
                active: 50,
                inactive: 0,
            },
        );
        let mut state = SchedulerState::with_seed(42);
        let mut picks = [0usize; 4];
        for _ in 0..100_000 {
            if let Some(i) = state.pick(&svc, &input(&counts)) {
                picks[i] += 1;
            }
        }
        let loaded = 100_000.0 / 16.0;
        let idle = (100_000.0 - loaded) / 3.0;
        assert!(
            within(&picks, &[loaded, idle, idle, idle], 0.05),
            "{picks:?}"
        );

        let svc = service(SchedulerKind::TwoRandomChoices, &[1, 2, 3, 4]);
        let mut state = SchedulerState::with_seed(42);
        let counts = shares(&mut state, &svc, 100_000);
        let expected = [10_000.0, 20_000.0, 30_000.0, 40_000.0];
        assert!(within(&counts, &expected, 0.05), "{counts:?}");
    }
}
