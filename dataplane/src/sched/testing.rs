//! What the scheduler tests share: services, a load they control, and
//! pick loops.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};

use super::{Connections, Load, PickInput, SchedulerConfig, SchedulerState};
use crate::conn::Method;
use crate::snapshot::{RealServer, Service};
use crate::time::Instant;

/// Slot of the first real server; the others follow.
pub(super) const BASE_SLOT: u32 = 100;

pub(super) const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));

pub(super) fn real_server(i: usize, weight: u32) -> RealServer {
    RealServer {
        slot: BASE_SLOT + i as u32,
        address: IpAddr::V4(Ipv4Addr::from(0xc612_0100 + 11 + i as u32)),
        port: 80,
        weight,
        method: Method::Nat,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

pub(super) fn real_servers(weights: &[u32]) -> Vec<RealServer> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| real_server(i, weight))
        .collect()
}

pub(super) fn service(config: impl Into<SchedulerConfig>, weights: &[u32]) -> Service {
    service_of(config, real_servers(weights))
}

pub(super) fn service_of(
    config: impl Into<SchedulerConfig>,
    real_servers: Vec<RealServer>,
) -> Service {
    Service::new(0, 6, VIP, 80, config, real_servers)
}

/// Real servers without connections.
pub(super) struct Idle;

impl Load for Idle {
    fn connections(&self, _slot: u32) -> Connections {
        Connections::default()
    }
}

/// Connection counts the test sets, by server index (slot - BASE_SLOT).
#[derive(Debug, Default)]
pub(super) struct Counts(pub(super) RefCell<Vec<Connections>>);

impl Counts {
    pub(super) fn new(counts: Vec<Connections>) -> Counts {
        Counts(RefCell::new(counts))
    }

    pub(super) fn idle(servers: usize) -> Counts {
        Counts::new(vec![Connections::default(); servers])
    }

    pub(super) fn get(&self, i: usize) -> Connections {
        self.0.borrow().get(i).copied().unwrap_or_default()
    }

    pub(super) fn set(&self, i: usize, connections: Connections) {
        if let Some(c) = self.0.borrow_mut().get_mut(i) {
            *c = connections;
        }
    }

    pub(super) fn add_active(&self, i: usize, n: u64) {
        let mut c = self.get(i);
        c.active += n;
        self.set(i, c);
    }
}

impl Load for Counts {
    fn connections(&self, slot: u32) -> Connections {
        self.get(slot.wrapping_sub(BASE_SLOT) as usize)
    }
}

/// A pick's input from one client to the VIP at time 0.
pub(super) fn input(load: &dyn Load) -> PickInput<'_> {
    PickInput {
        client: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
        client_port: 40000,
        destination: VIP,
        destination_port: 80,
        now: Instant(0),
        load,
    }
}

pub(super) fn picks(state: &mut SchedulerState, service: &Service, n: usize) -> Vec<Option<usize>> {
    (0..n).map(|_| state.pick(service, &input(&Idle))).collect()
}

/// How many of `n` idle picks each server got.
pub(super) fn shares(state: &mut SchedulerState, service: &Service, n: usize) -> Vec<usize> {
    let mut counts = vec![0; service.real_servers.len()];
    for i in picks(state, service, n).into_iter().flatten() {
        counts[i] += 1;
    }
    counts
}

/// Whether every count is within `tolerance` (a fraction) of `expected`.
pub(super) fn within(counts: &[usize], expected: &[f64], tolerance: f64) -> bool {
    counts
        .iter()
        .zip(expected)
        .all(|(&c, &e)| (c as f64 - e).abs() <= tolerance * e)
}

/// A reference for the least-connection family: the server with a weight
/// and the least `cost`, first of equals, by floating-point division
/// (correctly rounded, so it keeps the order of small rationals).
pub(super) fn least_by(weights: &[u32], cost: impl Fn(usize) -> f64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in (0..weights.len()).filter(|&i| weights[i] > 0) {
        if best.is_none_or(|b| cost(i) < cost(b)) {
            best = Some(i);
        }
    }
    best
}
