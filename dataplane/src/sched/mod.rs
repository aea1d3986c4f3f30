//! Schedulers: which real server takes a new connection.
//!
//! A service's scheduler has two halves. The immutable half
//! ([`Scheduler`]: the algorithm and tables precomputed from the weights)
//! lives in the configuration snapshot, built by the control thread. The
//! mutable half ([`SchedulerState`]: round-robin positions and the like)
//! belongs to each worker, so picking never takes a lock. When a new
//! snapshot changes a service's real servers or weights, the worker's
//! state adapts the way IPVS's does when its destinations change.
//!
//! With several workers each keeps its own position, so round-robin is
//! exact per worker and fair overall.

use std::net::IpAddr;

use crate::snapshot::{RealServer, Service};
use crate::time::Instant;

/// Open connections of a real server, as IPVS counts them: ESTABLISHED TCP
/// is active, everything else (handshakes, closing, UDP) inactive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: u64,
    pub inactive: u64,
}

/// Where schedulers read the load of real servers, by slot.
pub trait Load {
    fn connections(&self, slot: u32) -> Connections;
}

/// What a scheduler may look at to place a new connection.
#[derive(Clone, Copy)]
pub struct PickInput<'a> {
    /// The client (CIP:cport).
    pub client: IpAddr,
    pub client_port: u16,
    /// The packet's destination (VIP:vport).
    pub destination: IpAddr,
    pub destination_port: u16,
    pub now: Instant,
    pub load: &'a dyn Load,
}

impl std::fmt::Debug for PickInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickInput")
            .field("client", &self.client)
            .field("client_port", &self.client_port)
            .field("destination", &self.destination)
            .field("destination_port", &self.destination_port)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The algorithm of a service and what it precomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    /// `rr`: each available real server in turn.
    RoundRobin,
    /// `wrr`: IPVS's interleaved weighted round-robin.
    WeightedRoundRobin {
        /// Largest weight, less (gcd - 1), as IPVS computes it.
        max_weight: i64,
        /// Greatest common divisor of the weights.
        gcd: i64,
    },
}

/// Scheduler kinds, for telling a scheduler change from a weight change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    RoundRobin,
    WeightedRoundRobin,
}

impl Scheduler {
    /// Builds the scheduler of `kind` for these real servers.
    pub fn new(kind: SchedulerKind, real_servers: &[RealServer]) -> Scheduler {
        match kind {
            SchedulerKind::RoundRobin => Scheduler::RoundRobin,
            SchedulerKind::WeightedRoundRobin => {
                let gcd = real_servers
                    .iter()
                    .map(|rs| i64::from(rs.weight))
                    .filter(|&w| w > 0)
                    .fold(0, gcd);
                let max = real_servers
                    .iter()
                    .map(|rs| i64::from(rs.weight))
                    .max()
                    .unwrap_or(0);
                let gcd = gcd.max(1);
                Scheduler::WeightedRoundRobin {
                    max_weight: if max == 0 { 0 } else { max - (gcd - 1) },
                    gcd,
                }
            }
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::RoundRobin => SchedulerKind::RoundRobin,
            Scheduler::WeightedRoundRobin { .. } => SchedulerKind::WeightedRoundRobin,
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Whether a real server may take new connections.
#[inline]
fn available(real_server: &RealServer) -> bool {
    real_server.weight > 0
}

/// A worker's scheduling state for one service.
#[derive(Debug, Clone, Default)]
pub struct SchedulerState {
    /// The service's `schedule_fingerprint` this state was adapted to.
    fingerprint: u64,
    kind: Option<SchedulerKind>,
    /// Position of the last pick in the service's list (IPVS's `cl`);
    /// `None` stands for the list head, before the first real server.
    position: Option<usize>,
    /// Slot of the last pick, to find it again in a changed list.
    last_slot: u32,
    /// wrr's current weight (IPVS's `cw`).
    current_weight: i64,
}

impl SchedulerState {
    /// Picks a real server for a new connection: an index into
    /// `service.real_servers`, or `None` when none is available.
    pub fn pick(&mut self, service: &Service, _input: &PickInput<'_>) -> Option<usize> {
        if self.fingerprint != service.schedule_fingerprint || self.kind.is_none() {
            self.adapt(service);
        }
        let real_servers = &service.real_servers;
        let picked = match service.scheduler {
            Scheduler::RoundRobin => self.round_robin(real_servers),
            Scheduler::WeightedRoundRobin { max_weight, gcd } => {
                self.weighted_round_robin(real_servers, max_weight, gcd)
            }
        }?;
        self.position = Some(picked);
        self.last_slot = real_servers[picked].slot;
        Some(picked)
    }

    /// Follows a configuration change: a new scheduler starts afresh (IPVS
    /// `init_service`); changed real servers or weights keep what IPVS's
    /// `dest_changed` keeps.
    fn adapt(&mut self, service: &Service) {
        let kind = service.scheduler.kind();
        let fresh = self.kind != Some(kind);
        self.fingerprint = service.schedule_fingerprint;
        self.kind = Some(kind);
        match service.scheduler {
            Scheduler::RoundRobin => {
                self.position = if fresh {
                    None
                } else {
                    let last = self.last_slot;
                    service.real_servers.iter().position(|rs| rs.slot == last)
                };
            }
            Scheduler::WeightedRoundRobin { max_weight, gcd } => {
                self.position = None;
                if fresh || self.current_weight > max_weight || self.current_weight <= 0 {
                    self.current_weight = max_weight;
                } else if gcd > 1 {
                    self.current_weight = (self.current_weight / gcd) * gcd + 1;
                }
            }
        }
    }

    fn round_robin(&self, real_servers: &[RealServer]) -> Option<usize> {
        let count = real_servers.len();
        let start = self.position.map_or(0, |p| p + 1);
        (0..count)
            .map(|step| (start + step) % count)
            .find(|&i| available(&real_servers[i]))
    }

    /// IPVS's `ip_vs_wrr_schedule`: scan on from the last pick for a server
    /// whose weight reaches the current weight; at the end of the list,
    /// lower the current weight by the gcd (wrapping to the maximum), until
    /// every server has been considered at weight 1.
    fn weighted_round_robin(
        &mut self,
        real_servers: &[RealServer],
        max_weight: i64,
        gcd: i64,
    ) -> Option<usize> {
        if max_weight == 0 {
            return None;
        }
        let last = self.position.filter(|&p| p < real_servers.len());
        let mut stop = None;
        let mut from = last.map_or(0, |p| p + 1);
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            for (i, real_server) in real_servers.iter().enumerate().skip(from) {
                if available(real_server) && i64::from(real_server.weight) >= self.current_weight {
                    return Some(i);
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
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::conn::Method;

    fn real_servers(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| RealServer {
                slot: i as u32 + 100,
                address: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11 + i as u8)),
                port: 80,
                weight,
                method: Method::Nat,
            })
            .collect()
    }

    fn service(kind: SchedulerKind, weights: &[u32]) -> Service {
        Service::new(
            0,
            6,
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
            80,
            kind,
            real_servers(weights),
        )
    }

    struct NoLoad;

    impl Load for NoLoad {
        fn connections(&self, _slot: u32) -> Connections {
            Connections::default()
        }
    }

    fn input() -> PickInput<'static> {
        PickInput {
            client: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            client_port: 40000,
            destination: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
            destination_port: 80,
            now: Instant(0),
            load: &NoLoad,
        }
    }

    fn picks(state: &mut SchedulerState, service: &Service, n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| state.pick(service, &input())).collect()
    }

    fn shares(state: &mut SchedulerState, service: &Service, n: usize) -> Vec<usize> {
        let mut counts = vec![0; service.real_servers.len()];
        for pick in picks(state, service, n) {
            counts[pick.expect("a server is available")] += 1;
        }
        counts
    }

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
        assert_eq!(state.pick(&none, &input()), None);
        assert_eq!(
            state.pick(&service(SchedulerKind::RoundRobin, &[]), &input()),
            None
        );
    }

    #[test]
    fn round_robin_splits_exactly() {
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::RoundRobin, &[1, 1]);
        assert_eq!(shares(&mut state, &svc, 200), [100, 100]);
    }

    #[test]
    fn weighted_round_robin_interleaves_like_ipvs() {
        let mut state = SchedulerState::default();
        let svc = service(SchedulerKind::WeightedRoundRobin, &[3, 1]);
        assert_eq!(
            picks(&mut state, &svc, 8),
            [
                Some(0),
                Some(0),
                Some(0),
                Some(1),
                Some(0),
                Some(0),
                Some(0),
                Some(1)
            ]
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
    fn weighted_round_robin_shares_equal_weights_over_whole_rounds() {
        for weights in [&[3, 1][..], &[5, 3, 2], &[2, 4, 6], &[1, 0, 7], &[100, 1]] {
            let mut state = SchedulerState::default();
            let svc = service(SchedulerKind::WeightedRoundRobin, weights);
            let round: u32 = weights.iter().sum();
            let counts = shares(&mut state, &svc, round as usize * 50);
            let expected: Vec<usize> = weights.iter().map(|&w| w as usize * 50).collect();
            assert_eq!(counts, expected, "weights {weights:?}");
        }
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
        assert_eq!(state.pick(&svc, &input()), None);
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
}
