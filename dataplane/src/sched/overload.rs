//! Connection thresholds (`-x upper`, `-y lower`), as IPVS's
//! `ip_vs_bind_dest`/`ip_vs_unbind_dest` and `__ip_vs_update_dest`.
//!
//! A real server whose connections (active + inactive) reach its upper
//! threshold becomes *overloaded*: no scheduler gives it new connections.
//! It stays so (hysteresis) until its connections fall below the lower
//! threshold, or, when the lower threshold is 0, below three quarters of
//! the upper one. An upper threshold of 0 means no limit. Editing a real
//! server clears the flag when its upper threshold is removed or raised.
//!
//! IPVS updates the flag as each connection is bound to or released from
//! its server. Here a worker keeps the flag and updates it from the
//! current counts whenever it schedules for the service; since new
//! connections only arrive through picks, this sees every rise, and
//! differs only in that a dip below the lower threshold between two
//! picks that is over again by the next one goes unnoticed.

use super::Load;
use crate::snapshot::RealServer;

/// A worker's view of one real server's overload.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServerState {
    slot: u32,
    /// The upper threshold configured, to tell a raised one.
    upper: u32,
    pub(super) overloaded: bool,
}

/// Overload flags of a service's real servers, in list order.
#[derive(Debug, Clone, Default)]
pub(super) struct Overload {
    servers: Vec<ServerState>,
    /// The previous list while adapting, kept to reuse its memory.
    spare: Vec<ServerState>,
}

impl Overload {
    pub(super) fn states(&self) -> &[ServerState] {
        &self.servers
    }

    /// Follows a configuration change: each flag stays with its real
    /// server (found by slot), and is dropped when the upper threshold is
    /// removed or raised, as IPVS's `__ip_vs_update_dest` does.
    pub(super) fn adapt(&mut self, real_servers: &[RealServer]) {
        std::mem::swap(&mut self.servers, &mut self.spare);
        self.servers.clear();
        let mut cursor = 0;
        for rs in real_servers {
            let kept = previous(&self.spare, rs.slot, &mut cursor).is_some_and(|before| {
                before.overloaded && rs.upper_threshold != 0 && rs.upper_threshold <= before.upper
            });
            self.servers.push(ServerState {
                slot: rs.slot,
                upper: rs.upper_threshold,
                overloaded: kept,
            });
        }
    }

    /// Updates every flag from the servers' current connections.
    pub(super) fn refresh(&mut self, real_servers: &[RealServer], load: &dyn Load) {
        for (state, rs) in self.servers.iter_mut().zip(real_servers) {
            let total = load.connections(rs.slot).total();
            state.overloaded = overloaded(state.overloaded, rs, total);
        }
    }
}

/// The slot's entry in the previous list; lists usually keep their order,
/// so the entry after the last one found is tried first.
fn previous(list: &[ServerState], slot: u32, cursor: &mut usize) -> Option<ServerState> {
    let at = if list.get(*cursor).is_some_and(|s| s.slot == slot) {
        *cursor
    } else {
        list.iter().position(|s| s.slot == slot)?
    };
    *cursor = at + 1;
    list.get(at).copied()
}

/// Whether a server that `was` overloaded is so with `total` connections.
fn overloaded(was: bool, rs: &RealServer, total: u64) -> bool {
    let upper = u64::from(rs.upper_threshold);
    let lower = u64::from(rs.lower_threshold);
    if upper != 0 && total >= upper {
        // Set as a connection is bound (ip_vs_bind_dest).
        return true;
    }
    // Cleared as a connection is released (ip_vs_unbind_dest).
    was && if lower != 0 {
        total >= lower
    } else {
        upper != 0 && total * 4 >= upper * 3
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testing::*;
    use super::super::*;

    fn with_thresholds(weights: &[u32], upper: u32, lower: u32) -> Vec<RealServer> {
        let mut list = real_servers(weights);
        for rs in &mut list {
            rs.upper_threshold = upper;
            rs.lower_threshold = lower;
        }
        list
    }

    fn total(n: u64) -> Connections {
        Connections {
            active: n / 2,
            inactive: n - n / 2,
        }
    }

    /// Server 0 fills up to its upper threshold, then drains: it gets no
    /// new connections until it is below the lower threshold (or three
    /// quarters of the upper one when the lower is 0).
    #[test]
    fn thresholds_have_hysteresis() {
        for (upper, lower, release) in [(10u32, 5, 5u32), (10, 0, 8), (8, 0, 6), (4, 3, 3)] {
            let svc = service_of(
                SchedulerKind::WeightedFailover,
                with_thresholds(&[5, 1], upper, lower),
            );
            let counts = Counts::idle(2);
            let mut state = SchedulerState::default();
            let mut pick = |n: u64| {
                counts.set(0, total(n));
                state.pick(&svc, &input(&counts))
            };
            for n in 0..u64::from(upper) {
                assert_eq!(pick(n), Some(0), "{n} connections under {upper}");
            }
            assert_eq!(pick(u64::from(upper)), Some(1), "reached {upper}");
            for n in (u64::from(release)..u64::from(upper)).rev() {
                assert_eq!(pick(n), Some(1), "{n} connections, lower {lower}");
            }
            assert_eq!(pick(u64::from(release) - 1), Some(0), "below {release}");
            assert_eq!(
                pick(u64::from(release)),
                Some(0),
                "not overloaded again yet"
            );
        }
    }

    /// As IPVS: raising or removing the upper threshold clears the flag,
    /// lowering it or changing only the weight keeps it.
    #[test]
    fn editing_thresholds_clears_or_keeps_the_flag() {
        let counts = Counts::idle(2);
        counts.set(0, total(8));
        let overloaded_at = |upper: u32, lower: u32, weight: u32| {
            let mut list = with_thresholds(&[5, 1], 8, 2);
            list[0].weight = weight;
            list[0].upper_threshold = upper;
            list[0].lower_threshold = lower;
            service_of(SchedulerKind::WeightedFailover, list)
        };
        for (upper, lower, weight, expected) in [
            (8, 2, 6, Some(1)),  // weight only: still overloaded
            (7, 2, 5, Some(1)),  // lowered: still overloaded
            (20, 2, 5, Some(0)), // raised: cleared
            (0, 0, 5, Some(0)),  // removed: cleared
        ] {
            let mut state = SchedulerState::default();
            let before = overloaded_at(8, 2, 5);
            assert_eq!(state.pick(&before, &input(&counts)), Some(1));
            counts.set(0, total(5)); // between the thresholds
            let after = overloaded_at(upper, lower, weight);
            assert_eq!(
                state.pick(&after, &input(&counts)),
                expected,
                "-x {upper} -y {lower} -w {weight}"
            );
            counts.set(0, total(8));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No scheduler gives a new connection to an overloaded server or
        /// to a quiesced one, and each finds one of the others if it can.
        #[test]
        fn every_scheduler_honours_overload_and_weight_zero(
            weights in prop::collection::vec(0u32..=4, 1..=6),
            loads in prop::collection::vec(0u64..=12, 6),
            upper in 1u32..=10,
            port in any::<u16>(),
        ) {
            let list = with_thresholds(&weights, upper, 0);
            let counts = Counts::new(loads.iter().map(|&n| total(n)).collect());
            let blocked = |i: usize| weights[i] == 0 || loads[i] >= u64::from(upper);
            for kind in SchedulerKind::ALL {
                let config = SchedulerConfig::new(kind)
                    .with_flags(SchedulerFlags::FALLBACK)
                    .with_maglev_table_size(251);
                let svc = service_of(config, list.clone());
                let mut state = SchedulerState::default();
                for client in 0..8u32 {
                    let input = PickInput {
                        client: IpAddr::V4(client.into()),
                        client_port: port,
                        ..input(&counts)
                    };
                    if let Some(i) = state.pick(&svc, &input) {
                        prop_assert!(!blocked(i), "{} picked {} of {:?}", kind.name(), i, weights);
                    }
                }
            }
        }
    }
}
