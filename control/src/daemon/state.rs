//! The daemon's configuration state: services and real servers as users
//! gave them, the slots they hold in the dataplane, and the snapshots built
//! from them.
//!
//! Every change goes through [`Control::apply`], whether it comes from the
//! TOML file at start-up or from `rvsadm`, so both are checked the same
//! way; a refused change leaves everything as it was.
//!
//! # Slots
//!
//! Services and real servers get small numbers (slots) that index the
//! workers' counters and scheduler states. A removed real server's
//! connections keep running, and keep counting against its slot, so its
//! slot drains (as IPVS keeps removed destinations in its trash) until
//! every worker runs a configuration without it and none of its
//! connections is left; only then may the slot be given out again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;

use dataplane::conn::{Method, StateTimeouts};
use dataplane::counters::{TrafficTotals, WorkerCounters};
use dataplane::persistence::{Template, Templates};
use dataplane::route::Route;
use dataplane::sched::{SchedulerConfig, SchedulerFlags, SchedulerKind};
use dataplane::snapshot::FamilyView;
use dataplane::snapshot::{
    Persistence, PortAddresses, RealServer, Service, Snapshot, SnapshotParts, StaticNeighbour,
};
use dataplane::time::Duration;
use dataplane::wire::{Ipv4Cidr, Ipv6Cidr, MacAddr};

use crate::config::{self, Config, FieldError, HealthCheckConfig, PortConfig, RealServerConfig};

/// The MTU of a port that gives none.
const DEFAULT_MTU: u16 = 1500;
use crate::model::{
    ForwardMethod, HealthRecord, HealthState, OnFailure, Protocol, RealServerHealth,
    RealServerSpec, RealServerStatus, SchedulerFlag, SchedulerName, ServiceKey, ServiceSpec,
    ServiceStatus, Stats, Timeouts,
};
use crate::protocol::{ConnEntry, RealServerChange, RealServerRef, Status};

use super::health::{HealthReport, Target};
use super::stats::Estimator;

/// Why a change was refused: the protocol status and ipvsadm's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
}

impl Refusal {
    fn new(status: Status, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// A change to the load-balancing configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddService(ServiceSpec),
    /// `rvsadm -E`: a spec without local addresses keeps the service's.
    EditService(ServiceSpec),
    /// A reload's edit: the file's definition, local addresses included.
    ReplaceService(ServiceSpec),
    DeleteService(ServiceKey),
    Flush,
    AddRealServer(RealServerChange),
    EditRealServer(RealServerChange),
    DeleteRealServer(RealServerRef),
    SetTimeouts(Timeouts),
    /// A reload's `[fullnat] local_addresses` (already validated).
    SetLocalAddresses(Vec<IpAddr>),
    /// The file's `[services.health_check]` of a service, or none: each
    /// of its real servers without a check of its own starts afresh, up.
    SetHealthCheck(ServiceKey, Option<HealthCheckConfig>),
    /// The file's `health_check` of one real server, or none (the
    /// service's applies then): it starts afresh, up.
    SetRealServerHealthCheck(RealServerRef, Option<HealthCheckConfig>),
    /// A health checker's report (see `super::health`).
    Health(HealthReport),
}

/// Live persistence templates by service slot and real server slot:
/// ipvsadm's PersistConn column.
pub(super) type PersistentConns = HashMap<(u32, u32), u64>;

/// Counts the live templates of `templates` at second `now`.
pub(super) fn persistent_conns(templates: &Templates, now: u32) -> PersistentConns {
    let mut counts = PersistentConns::new();
    templates.scan(0, usize::MAX, now, |template| {
        *counts
            .entry((u32::from(template.service), template.real_server))
            .or_default() += 1;
    });
    counts
}

/// What persistence templates point at, copied out of [`Control`] so that
/// a listing of templates does not hold the control state.
#[derive(Debug, Default)]
pub struct TemplateTargets {
    /// By service slot and real server slot: the service's protocol and
    /// VIP:vport, and the real server's RIP:rport.
    by_slots: HashMap<(u32, u32), (Protocol, SocketAddr, SocketAddr)>,
}

impl TemplateTargets {
    /// A live template as IPVS lists one: state `NONE`, the client network
    /// with port 0, and ports 0 for a service of every port. `None` for a
    /// template of a service or real server that is gone.
    pub fn entry(&self, template: &Template, now: u32) -> Option<ConnEntry> {
        let key = (u32::from(template.service), template.real_server);
        let &(protocol, virtual_address, real_server) = self.by_slots.get(&key)?;
        let real_server = match virtual_address.port() {
            0 => SocketAddr::new(real_server.ip(), 0),
            _ => real_server,
        };
        Some(ConnEntry {
            protocol,
            state: "NONE".to_owned(),
            expires: template.expires.saturating_sub(now),
            client: SocketAddr::new(template.client, 0),
            virtual_address,
            real_server,
            local: None,
            template: true,
        })
    }
}

/// How many services and real servers the dataplane has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub services: u32,
    pub real_servers: u32,
}

#[derive(Debug, Clone)]
struct RealServerEntry {
    /// What the file or rvsadm says, whatever its health: the weight is
    /// the one it has while up.
    spec: RealServerSpec,
    slot: u32,
    /// The file's check of this real server, which replaces the
    /// service's; `None`: the service's applies.
    own_check: Option<HealthCheckConfig>,
    /// Its health checker's record; `None` when no check applies.
    health: Option<HealthEntry>,
}

#[derive(Debug, Clone)]
struct HealthEntry {
    /// Which checker may report (see `super::health`).
    epoch: u64,
    record: HealthRecord,
}

impl RealServerEntry {
    /// The check that applies to it: its own, else its service's.
    fn check<'a>(&'a self, service: &'a ServiceEntry) -> Option<&'a HealthCheckConfig> {
        self.own_check.as_ref().or(service.health_check.as_ref())
    }

    /// What the dataplane uses: weight 0 while inhibited, `None` while
    /// removed by its health check.
    fn effective(&self, service: &ServiceEntry) -> Option<RealServerSpec> {
        let down = self
            .health
            .as_ref()
            .is_some_and(|health| health.record.state == HealthState::Down);
        match self.check(service).map(|check| check.on_failure) {
            Some(OnFailure::Remove) if down => None,
            Some(OnFailure::Inhibit) if down => Some(RealServerSpec {
                weight: 0,
                ..self.spec
            }),
            _ => Some(self.spec),
        }
    }
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    spec: ServiceSpec,
    slot: u32,
    real_servers: Vec<RealServerEntry>,
    health_check: Option<HealthCheckConfig>,
}

/// Hands out slots and takes them back once drained.
#[derive(Debug, Clone)]
struct Slots {
    limit: u32,
    next: u32,
    free: Vec<u32>,
    /// Released slots and the generation that no longer has them.
    draining: Vec<(u32, u64)>,
}

impl Slots {
    fn new(limit: u32) -> Slots {
        Slots {
            limit,
            next: 0,
            free: Vec::new(),
            draining: Vec::new(),
        }
    }

    fn allocate(&mut self) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        (self.next < self.limit).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn release(&mut self, slot: u32, generation: u64) {
        self.draining.push((slot, generation));
    }

    /// Frees the draining slots that every worker has stopped scheduling
    /// to (they adopted `adopted` or later) and that nothing still uses.
    fn reclaim(&mut self, adopted: u64, in_use: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut reclaimed = Vec::new();
        self.draining.retain(|&(slot, generation)| {
            let done = adopted >= generation && !in_use(slot);
            if done {
                reclaimed.push(slot);
            }
            !done
        });
        self.free.extend(&reclaimed);
        reclaimed
    }
}

/// The daemon's configuration (see the module docs). A reload tries its
/// changes on a clone first.
#[derive(Debug, Clone)]
pub struct Control {
    ports: Vec<PortConfig>,
    port_macs: Vec<MacAddr>,
    routes4: Vec<Route<Ipv4Addr>>,
    routes6: Vec<Route<Ipv6Addr>>,
    neighbours: Vec<StaticNeighbour>,
    /// `[fullnat]`'s local addresses, for services without their own.
    fullnat_addresses: Vec<IpAddr>,
    neighbour_timeout: u32,
    timeouts: Timeouts,
    services: Vec<ServiceEntry>,
    generation: u64,
    service_slots: Slots,
    real_server_slots: Slots,
    /// Totals at the last zeroing (or allocation) of each slot.
    service_baseline: Vec<TrafficTotals>,
    real_server_baseline: Vec<TrafficTotals>,
    /// The last epoch given to a health record.
    health_epoch: u64,
}

impl Control {
    /// The state of a freshly started daemon: the file's ports, routes and
    /// timeouts, and its services applied one by one. `port_macs` are the
    /// ports' MAC addresses, in configuration order.
    pub fn new(
        config: &Config,
        port_macs: Vec<MacAddr>,
        limits: Limits,
    ) -> Result<Control, Vec<FieldError>> {
        let mut problems = Vec::new();
        let routes4 = config
            .routes
            .iter()
            .filter_map(|route| dataplane_route(config, route))
            .collect();
        let routes6 = config
            .routes
            .iter()
            .filter_map(|route| dataplane_route(config, route))
            .collect();
        let neighbours = config
            .neighbours
            .iter()
            .filter_map(|n| {
                n.mac_bytes().map(|mac| StaticNeighbour {
                    address: n.address,
                    mac: MacAddr(mac),
                })
            })
            .collect();
        let mut control = Control {
            ports: config.ports.clone(),
            port_macs,
            routes4,
            routes6,
            neighbours,
            fullnat_addresses: config.fullnat.local_addresses.clone(),
            neighbour_timeout: config.dataplane.neighbour_timeout,
            timeouts: config.timeouts,
            services: Vec::new(),
            generation: 0,
            service_slots: Slots::new(limits.services),
            real_server_slots: Slots::new(limits.real_servers),
            service_baseline: vec![TrafficTotals::default(); limits.services as usize],
            real_server_baseline: vec![TrafficTotals::default(); limits.real_servers as usize],
            health_epoch: 0,
        };
        for (i, service) in config.services.iter().enumerate() {
            if let Err(refusal) = control.apply(&Change::AddService(service.spec())) {
                problems.push(FieldError {
                    path: format!("services[{i}]"),
                    message: refusal.message,
                });
                continue;
            }
            if let Some(check) = &service.health_check {
                let change = Change::SetHealthCheck(service.key(), Some(check.clone()));
                if let Err(refusal) = control.apply(&change) {
                    problems.push(FieldError {
                        path: format!("services[{i}].health_check"),
                        message: refusal.message,
                    });
                }
            }
            for (j, real_server) in service.real_servers.iter().enumerate() {
                let mut changes = vec![Change::AddRealServer(RealServerChange {
                    service: service.key(),
                    real_server: real_server.spec,
                })];
                if let Some(check) = &real_server.health_check {
                    changes.push(Change::SetRealServerHealthCheck(
                        RealServerRef {
                            service: service.key(),
                            address: real_server.spec.address,
                        },
                        Some(check.clone()),
                    ));
                }
                if let Some(refusal) = changes.iter().find_map(|c| control.apply(c).err()) {
                    problems.push(FieldError {
                        path: format!("services[{i}].real_servers[{j}]"),
                        message: refusal.message,
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(control)
        } else {
            Err(problems)
        }
    }

    /// Applies a change, or refuses it and changes nothing.
    pub fn apply(&mut self, change: &Change) -> Result<(), Refusal> {
        match change {
            Change::AddService(spec) => {
                if self.find_service(&spec.key()).is_some() {
                    return Err(Refusal::new(Status::Exists, "Service already exists"));
                }
                self.check_service(spec)?;
                let slot = self.service_slots.allocate().ok_or_else(|| {
                    Refusal::new(
                        Status::Invalid,
                        "Too many services for the dataplane's slots",
                    )
                })?;
                self.services.push(ServiceEntry {
                    spec: spec.clone(),
                    slot,
                    real_servers: Vec::new(),
                    health_check: None,
                });
            }
            Change::EditService(spec) => {
                let index = self.service_index(&spec.key(), "No such service")?;
                self.check_service(spec)?;
                // ipvsadm -E cannot name local addresses: keep the file's.
                let mut spec = spec.clone();
                if spec.local_addresses.is_empty() {
                    spec.local_addresses = self.services[index].spec.local_addresses.clone();
                }
                self.services[index].spec = spec;
            }
            Change::ReplaceService(spec) => {
                let index = self.service_index(&spec.key(), "No such service")?;
                self.check_service(spec)?;
                self.services[index].spec = spec.clone();
            }
            Change::DeleteService(key) => {
                let index = self.service_index(key, "No such service")?;
                let removed = self.services.remove(index);
                self.release_service(removed);
            }
            Change::Flush => {
                for removed in std::mem::take(&mut self.services) {
                    self.release_service(removed);
                }
            }
            Change::AddRealServer(change) => {
                let index = self.service_index(&change.service, "Service not defined")?;
                let service = &self.services[index];
                if service
                    .real_servers
                    .iter()
                    .any(|rs| rs.spec.address == change.real_server.address)
                {
                    return Err(Refusal::new(Status::Exists, "Destination already exists"));
                }
                self.check_real_server(&service.spec, &change.real_server)?;
                let slot = self.real_server_slots.allocate().ok_or_else(|| {
                    Refusal::new(
                        Status::Invalid,
                        "Too many real servers for the dataplane's slots",
                    )
                })?;
                let health = self.services[index]
                    .health_check
                    .is_some()
                    .then(|| self.new_health());
                self.services[index].real_servers.push(RealServerEntry {
                    spec: change.real_server,
                    slot,
                    own_check: None,
                    health,
                });
            }
            Change::EditRealServer(change) => {
                let index = self.service_index(&change.service, "Service not defined")?;
                let position = self.real_server_position(index, change.real_server.address)?;
                self.check_real_server(&self.services[index].spec, &change.real_server)?;
                self.services[index].real_servers[position].spec = change.real_server;
            }
            Change::DeleteRealServer(reference) => {
                let index = self.service_index(&reference.service, "Service not defined")?;
                let position = self.real_server_position(index, reference.address)?;
                let removed = self.services[index].real_servers.remove(position);
                self.real_server_slots
                    .release(removed.slot, self.generation + 1);
            }
            Change::SetTimeouts(timeouts) => {
                // ipvsadm --set: 0 leaves a value unchanged.
                for (value, current) in [
                    (timeouts.tcp, &mut self.timeouts.tcp),
                    (timeouts.tcp_fin, &mut self.timeouts.tcp_fin),
                    (timeouts.udp, &mut self.timeouts.udp),
                ] {
                    if value > config::MAX_TIMEOUT {
                        return Err(Refusal::new(
                            Status::Invalid,
                            format!(
                                "timeout {value} is above the maximum {}",
                                config::MAX_TIMEOUT
                            ),
                        ));
                    }
                    if value != 0 {
                        *current = value;
                    }
                }
            }
            Change::SetHealthCheck(key, check) => {
                let index = self.service_index(key, "No such service")?;
                check_problems(check.as_ref())?;
                for position in 0..self.services[index].real_servers.len() {
                    if self.services[index].real_servers[position]
                        .own_check
                        .is_none()
                    {
                        let health = check.is_some().then(|| self.new_health());
                        self.services[index].real_servers[position].health = health;
                    }
                }
                self.services[index].health_check = check.clone();
            }
            Change::SetRealServerHealthCheck(reference, check) => {
                let index = self.service_index(&reference.service, "Service not defined")?;
                let position = self.real_server_position(index, reference.address)?;
                check_problems(check.as_ref())?;
                let applies = check.is_some() || self.services[index].health_check.is_some();
                let health = applies.then(|| self.new_health());
                let rs = &mut self.services[index].real_servers[position];
                rs.own_check = check.clone();
                rs.health = health;
            }
            Change::Health(report) => {
                let index = self.service_index(&report.service, "Service not defined")?;
                let position = self.real_server_position(index, report.real_server)?;
                match &mut self.services[index].real_servers[position].health {
                    Some(health) if health.epoch == report.epoch => {
                        health.record = report.record.clone();
                    }
                    _ => {
                        return Err(Refusal::new(
                            Status::NotFound,
                            "the real server's health checker was replaced",
                        ));
                    }
                }
            }
            Change::SetLocalAddresses(addresses) => {
                self.fullnat_addresses = addresses.clone();
            }
        }
        Ok(())
    }

    /// Builds the next snapshot, with a new generation.
    pub fn snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        let ports = self
            .ports
            .iter()
            .zip(&self.port_macs)
            .map(|(port, mac)| PortAddresses {
                mac: *mac,
                ipv4: port
                    .addresses
                    .iter()
                    .filter_map(|net| match net {
                        ipnet::IpNet::V4(net) => Ipv4Cidr::new(net.addr(), net.prefix_len()).ok(),
                        ipnet::IpNet::V6(_) => None,
                    })
                    .collect(),
                ipv6: port
                    .addresses
                    .iter()
                    .filter_map(|net| match net {
                        ipnet::IpNet::V6(net) => Ipv6Cidr::new(net.addr(), net.prefix_len()).ok(),
                        ipnet::IpNet::V4(_) => None,
                    })
                    .collect(),
                mtu: port.mtu.unwrap_or(DEFAULT_MTU),
                exception_path: port.kernel_interface.is_some(),
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|entry| {
                let real_servers = entry
                    .real_servers
                    .iter()
                    .filter_map(|rs| {
                        let spec = rs.effective(entry)?;
                        Some(RealServer {
                            slot: rs.slot,
                            address: spec.address.ip(),
                            port: spec.address.port(),
                            weight: spec.weight,
                            method: method(spec.forward),
                            upper_threshold: spec.upper_threshold,
                            lower_threshold: spec.lower_threshold,
                        })
                    })
                    .collect();
                let mut service = Service::new(
                    entry.slot as u16,
                    protocol_number(entry.spec.protocol),
                    entry.spec.address.ip(),
                    entry.spec.address.port(),
                    scheduler_config(&entry.spec),
                    real_servers,
                );
                service.local_addresses = self.local_addresses(&entry.spec);
                service.persistence = entry.spec.persistence.map(|p| Persistence {
                    timeout: p.timeout,
                    prefix: p.netmask,
                });
                service
            })
            .collect();
        Snapshot::new(SnapshotParts {
            generation: self.generation,
            ports,
            routes4: self.routes4.clone(),
            routes6: self.routes6.clone(),
            neighbours: self.neighbours.clone(),
            services,
            timeouts: StateTimeouts::new(
                self.timeouts.tcp,
                self.timeouts.tcp_fin,
                self.timeouts.udp,
            ),
            neighbour_timeout: Duration::from_secs(u64::from(self.neighbour_timeout)),
        })
    }

    /// What a configuration file would have to say to describe the
    /// running state: the base of a reload's difference.
    pub fn desired(&self) -> super::reload::Desired {
        super::reload::Desired {
            services: self
                .services
                .iter()
                .map(|entry| super::reload::DesiredService {
                    spec: entry.spec.clone(),
                    real_servers: entry
                        .real_servers
                        .iter()
                        .map(|rs| RealServerConfig {
                            spec: rs.spec,
                            health_check: rs.own_check.clone(),
                        })
                        .collect(),
                    health_check: entry.health_check.clone(),
                })
                .collect(),
            local_addresses: self.fullnat_addresses.clone(),
            timeouts: self.timeouts,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Gives drained slots back (see the module docs); `adopted` is the
    /// oldest generation any worker still runs. A slot given back keeps
    /// the workers' totals of its last owner: they become its baseline,
    /// so that its next owner counts from zero.
    pub fn reclaim_slots(&mut self, adopted: u64, workers: &[&WorkerCounters]) {
        let rs_in_use = |slot: u32| {
            workers.iter().any(|w| {
                let rs = w.real_server(slot);
                rs.active.load(Ordering::Relaxed) != 0 || rs.inactive.load(Ordering::Relaxed) != 0
            })
        };
        for slot in self.real_server_slots.reclaim(adopted, rs_in_use) {
            self.real_server_baseline[slot as usize] = real_server_totals(workers, slot);
        }
        let service_in_use = |slot: u32| workers.iter().any(|w| w.service_connections(slot) != 0);
        for slot in self.service_slots.reclaim(adopted, service_in_use) {
            self.service_baseline[slot as usize] = service_totals(workers, slot);
        }
    }

    /// Sets the baseline of the service's counters (or of every service)
    /// and of its real servers to their current totals, and zeroes their
    /// rates (ipvsadm -Z).
    pub fn zero(
        &mut self,
        service: Option<&ServiceKey>,
        workers: &[&WorkerCounters],
        rates: &mut Estimator,
    ) -> Result<(), Refusal> {
        let indices: Vec<usize> = match service {
            Some(key) => vec![self.service_index(key, "No such service")?],
            None => (0..self.services.len()).collect(),
        };
        let mut services = Vec::new();
        let mut real_servers = Vec::new();
        for index in indices {
            let entry = &self.services[index];
            self.service_baseline[entry.slot as usize] = service_totals(workers, entry.slot);
            services.push(entry.slot);
            for rs in &entry.real_servers {
                self.real_server_baseline[rs.slot as usize] = real_server_totals(workers, rs.slot);
                real_servers.push(rs.slot);
            }
        }
        rates.zero(&services, &real_servers);
        Ok(())
    }

    /// The listing of `rvsadm -L`: services in the order they were added,
    /// with counts and counters summed over the workers.
    pub fn status(
        &self,
        only: Option<&ServiceKey>,
        workers: &[&WorkerCounters],
        rates: &Estimator,
        persistent: &PersistentConns,
    ) -> Result<Vec<ServiceStatus>, Refusal> {
        if let Some(key) = only {
            self.service_index(key, "No such service")?;
        }
        Ok(self
            .services
            .iter()
            .filter(|entry| only.is_none_or(|key| *key == entry.spec.key()))
            .map(|entry| {
                let mut real_servers = Vec::new();
                let mut removed_real_servers = Vec::new();
                for rs in &entry.real_servers {
                    let (spec, list) = match rs.effective(entry) {
                        Some(spec) => (spec, &mut real_servers),
                        None => (
                            RealServerSpec {
                                weight: 0,
                                ..rs.spec
                            },
                            &mut removed_real_servers,
                        ),
                    };
                    let (active, inactive) = workers.iter().fold((0u64, 0u64), |(a, i), w| {
                        let counters = w.real_server(rs.slot);
                        (
                            a.wrapping_add(counters.active.load(Ordering::Relaxed)),
                            i.wrapping_add(counters.inactive.load(Ordering::Relaxed)),
                        )
                    });
                    list.push(RealServerStatus {
                        spec,
                        active_conns: active,
                        inactive_conns: inactive,
                        persistent_conns: persistent
                            .get(&(entry.slot, rs.slot))
                            .copied()
                            .unwrap_or(0),
                        stats: stats(
                            real_server_totals(workers, rs.slot),
                            self.real_server_baseline[rs.slot as usize],
                        ),
                        rates: rates.real_server(rs.slot),
                        health: rs
                            .check(entry)
                            .zip(rs.health.as_ref())
                            .map(|(check, health)| {
                                real_server_health(check, &health.record, rs.spec.weight)
                            }),
                    });
                }
                ServiceStatus {
                    spec: entry.spec.clone(),
                    stats: stats(
                        service_totals(workers, entry.slot),
                        self.service_baseline[entry.slot as usize],
                    ),
                    rates: rates.service(entry.slot),
                    real_servers,
                    removed_real_servers,
                }
            })
            .collect())
    }

    /// Every checked real server, for the health supervisor.
    pub fn health_targets(&self) -> Vec<Target> {
        self.services
            .iter()
            .flat_map(|service| {
                service.real_servers.iter().filter_map(move |rs| {
                    Some(Target {
                        service: service.spec.key(),
                        real_server: rs.spec.address,
                        epoch: rs.health.as_ref()?.epoch,
                        check: rs.check(service)?.clone(),
                    })
                })
            })
            .collect()
    }

    /// A checked real server's health, as listed.
    pub fn health_of(&self, service: &ServiceKey, address: SocketAddr) -> Option<RealServerHealth> {
        let entry = &self.services[self.find_service(service)?];
        let rs = entry
            .real_servers
            .iter()
            .find(|rs| rs.spec.address == address)?;
        Some(real_server_health(
            rs.check(entry)?,
            &rs.health.as_ref()?.record,
            rs.spec.weight,
        ))
    }

    /// What the slots of persistence templates stand for now.
    pub fn template_targets(&self) -> TemplateTargets {
        let by_slots = self
            .services
            .iter()
            .flat_map(|service| {
                service.real_servers.iter().map(|rs| {
                    (
                        (service.slot, rs.slot),
                        (service.spec.protocol, service.spec.address, rs.spec.address),
                    )
                })
            })
            .collect();
        TemplateTargets { by_slots }
    }

    /// What every service and real server in use counted since its
    /// baseline (the counters of `rvsadm -L --stats`), for the rate
    /// estimator.
    #[allow(clippy::type_complexity)]
    pub fn totals_by_slot(
        &self,
        workers: &[&WorkerCounters],
    ) -> (Vec<(u32, TrafficTotals)>, Vec<(u32, TrafficTotals)>) {
        let services = self
            .services
            .iter()
            .map(|s| {
                let totals = service_totals(workers, s.slot);
                (
                    s.slot,
                    since(totals, self.service_baseline[s.slot as usize]),
                )
            })
            .collect();
        let real_servers = self
            .services
            .iter()
            .flat_map(|s| &s.real_servers)
            .map(|rs| {
                let totals = real_server_totals(workers, rs.slot);
                (
                    rs.slot,
                    since(totals, self.real_server_baseline[rs.slot as usize]),
                )
            })
            .collect();
        (services, real_servers)
    }

    /// The slots of every configured real server.
    pub fn real_server_slots(&self) -> Vec<u32> {
        self.services
            .iter()
            .flat_map(|s| &s.real_servers)
            .map(|rs| rs.slot)
            .collect()
    }

    /// The FULLNAT local addresses `spec`'s connections use: its own, or
    /// the configuration's, of its family.
    fn local_addresses(&self, spec: &ServiceSpec) -> Vec<IpAddr> {
        let chosen = if spec.local_addresses.is_empty() {
            &self.fullnat_addresses
        } else {
            &spec.local_addresses
        };
        chosen
            .iter()
            .copied()
            .filter(|address| address.is_ipv4() == spec.address.is_ipv4())
            .collect()
    }

    /// A fresh health record, up, with an epoch of its own.
    fn new_health(&mut self) -> HealthEntry {
        self.health_epoch += 1;
        HealthEntry {
            epoch: self.health_epoch,
            record: HealthRecord::default(),
        }
    }

    fn release_service(&mut self, removed: ServiceEntry) {
        let generation = self.generation + 1;
        for rs in removed.real_servers {
            self.real_server_slots.release(rs.slot, generation);
        }
        self.service_slots.release(removed.slot, generation);
    }

    fn find_service(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.spec.key() == *key)
    }

    fn service_index(&self, key: &ServiceKey, missing: &str) -> Result<usize, Refusal> {
        self.find_service(key)
            .ok_or_else(|| Refusal::new(Status::NotFound, missing))
    }

    fn real_server_position(
        &self,
        service: usize,
        address: std::net::SocketAddr,
    ) -> Result<usize, Refusal> {
        self.services[service]
            .real_servers
            .iter()
            .position(|rs| rs.spec.address == address)
            .ok_or_else(|| Refusal::new(Status::NotFound, "No such destination"))
    }

    fn check_service(&self, spec: &ServiceSpec) -> Result<(), Refusal> {
        if let Some(problem) = config::service_problems(spec, &self.ports)
            .into_iter()
            .next()
        {
            return Err(Refusal::new(Status::Invalid, problem.to_string()));
        }
        Ok(())
    }

    fn check_real_server(
        &self,
        service: &ServiceSpec,
        spec: &RealServerSpec,
    ) -> Result<(), Refusal> {
        if let Some(problem) = config::real_server_problems(service, spec, &self.ports)
            .into_iter()
            .next()
        {
            return Err(Refusal::new(Status::Invalid, problem.to_string()));
        }
        if spec.forward == ForwardMethod::FullNat && self.local_addresses(service).is_empty() {
            let family = if service.address.is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            };
            return Err(Refusal::new(
                Status::Invalid,
                format!(
                    "FULLNAT needs an {family} local address: set [fullnat] local_addresses, or the service's local_addresses, in the configuration"
                ),
            ));
        }
        Ok(())
    }
}

/// A validated TOML route of family `A` as the dataplane's; its port is
/// the named one or the one whose subnet holds the gateway.
fn dataplane_route<A: FamilyView>(config: &Config, route: &config::RouteConfig) -> Option<Route<A>>
where
    A::Cidr: CidrFrom,
{
    let gateway = A::from_ip(route.gateway)?;
    let destination = A::Cidr::from_net(route.destination)?;
    let port = config.route_port(route)?;
    Some(Route {
        destination,
        gateway: (gateway != A::UNSPECIFIED).then_some(gateway),
        port: port as u16,
    })
}

/// A prefix of the dataplane's from the configuration's.
trait CidrFrom: Sized {
    fn from_net(net: ipnet::IpNet) -> Option<Self>;
}

impl CidrFrom for Ipv4Cidr {
    fn from_net(net: ipnet::IpNet) -> Option<Self> {
        match net {
            ipnet::IpNet::V4(net) => Ipv4Cidr::new(net.addr(), net.prefix_len()).ok(),
            ipnet::IpNet::V6(_) => None,
        }
    }
}

impl CidrFrom for Ipv6Cidr {
    fn from_net(net: ipnet::IpNet) -> Option<Self> {
        match net {
            ipnet::IpNet::V6(net) => Ipv6Cidr::new(net.addr(), net.prefix_len()).ok(),
            ipnet::IpNet::V4(_) => None,
        }
    }
}

fn method(forward: ForwardMethod) -> Method {
    match forward {
        ForwardMethod::Masq => Method::Nat,
        ForwardMethod::Route => Method::DirectRoute,
        ForwardMethod::Tunnel => Method::Tunnel,
        ForwardMethod::FullNat => Method::FullNat,
    }
}

fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// The dataplane's scheduler for a supported name (see `unsupported_service`).
/// The dataplane's scheduler for a service: ipvsadm's `-s` and `-b`.
fn scheduler_config(spec: &ServiceSpec) -> SchedulerConfig {
    let kind = match spec.scheduler {
        SchedulerName::Rr => SchedulerKind::RoundRobin,
        SchedulerName::Wrr => SchedulerKind::WeightedRoundRobin,
        SchedulerName::Lc => SchedulerKind::LeastConnection,
        SchedulerName::Wlc => SchedulerKind::WeightedLeastConnection,
        SchedulerName::Sed => SchedulerKind::ShortestExpectedDelay,
        SchedulerName::Nq => SchedulerKind::NeverQueue,
        SchedulerName::Lblc => SchedulerKind::LocalityLeastConnection,
        SchedulerName::Lblcr => SchedulerKind::LocalityLeastConnectionReplicated,
        SchedulerName::Dh => SchedulerKind::DestinationHashing,
        SchedulerName::Sh => SchedulerKind::SourceHashing,
        SchedulerName::Fo => SchedulerKind::WeightedFailover,
        SchedulerName::Ovf => SchedulerKind::WeightedOverflow,
        SchedulerName::Twos => SchedulerKind::TwoRandomChoices,
        SchedulerName::Mh => SchedulerKind::MaglevHashing,
    };
    // The names were checked when the service was defined.
    let flags = spec
        .scheduler_flags
        .iter()
        .filter_map(|name| SchedulerFlag::parse(name, spec.scheduler).ok())
        .filter_map(|flag| SchedulerFlags::bit(flag.bit))
        .fold(SchedulerFlags::NONE, |all, flag| all | flag);
    SchedulerConfig::new(kind).with_flags(flags)
}

fn service_totals(workers: &[&WorkerCounters], slot: u32) -> TrafficTotals {
    workers.iter().fold(TrafficTotals::default(), |mut sum, w| {
        sum += w.service(slot).read();
        sum
    })
}

fn real_server_totals(workers: &[&WorkerCounters], slot: u32) -> TrafficTotals {
    workers.iter().fold(TrafficTotals::default(), |mut sum, w| {
        sum += w.real_server(slot).traffic.read();
        sum
    })
}

/// Refuses a check that breaks its rules, naming the field.
fn check_problems(check: Option<&HealthCheckConfig>) -> Result<(), Refusal> {
    match check
        .into_iter()
        .flat_map(config::health_check_problems)
        .next()
    {
        Some(problem) => Err(Refusal::new(
            Status::Invalid,
            format!("health_check.{problem}"),
        )),
        None => Ok(()),
    }
}

/// A checked real server's health as listed; `weight` is the one it has
/// while up.
fn real_server_health(
    check: &HealthCheckConfig,
    record: &HealthRecord,
    weight: u32,
) -> RealServerHealth {
    RealServerHealth {
        record: record.clone(),
        on_failure: check.on_failure,
        retry: check.retry,
        rise: check.rise,
        weight,
    }
}

/// What was counted since the baseline.
fn since(now: TrafficTotals, baseline: TrafficTotals) -> TrafficTotals {
    TrafficTotals {
        conns: now.conns.wrapping_sub(baseline.conns),
        in_packets: now.in_packets.wrapping_sub(baseline.in_packets),
        out_packets: now.out_packets.wrapping_sub(baseline.out_packets),
        in_bytes: now.in_bytes.wrapping_sub(baseline.in_bytes),
        out_bytes: now.out_bytes.wrapping_sub(baseline.out_bytes),
    }
}

/// Totals since the baseline, as the model's [`Stats`].
fn stats(now: TrafficTotals, baseline: TrafficTotals) -> Stats {
    let TrafficTotals {
        conns,
        in_packets,
        out_packets,
        in_bytes,
        out_bytes,
    } = since(now, baseline);
    Stats {
        conns,
        in_packets,
        out_packets,
        in_bytes,
        out_bytes,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;

    use dataplane::counters::bump;

    use super::*;
    use crate::config;
    use crate::model::Persistence;

    const LIMITS: Limits = Limits {
        services: 4,
        real_servers: 4,
    };

    /// A director with a WAN and a LAN port, without services.
    pub(in crate::daemon) const TWO_PORTS: &str = r#"[eal]
args = ["-l", "0,1"]

[[ports]]
name = "wan"
device = "net_af_packet0,iface=d0"
addresses = ["198.18.0.1/24"]

[[ports]]
name = "lan"
device = "net_af_packet1,iface=d1"
addresses = ["198.18.1.1/24"]
"#;

    pub(in crate::daemon) fn config_with(services: &str) -> Config {
        config::parse(&format!("{TWO_PORTS}\n{services}")).expect("valid configuration")
    }

    pub(in crate::daemon) fn control() -> Control {
        Control::new(
            &config_with(""),
            vec![MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])],
            LIMITS,
        )
        .expect("control")
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            address: SocketAddr::from(([198, 18, 0, 10], port)),
        }
    }

    pub(in crate::daemon) fn service(port: u16, scheduler: SchedulerName) -> ServiceSpec {
        ServiceSpec {
            protocol: Protocol::Tcp,
            address: key(port).address,
            scheduler,
            scheduler_flags: Vec::new(),
            persistence: None,
            local_addresses: Vec::new(),
        }
    }

    fn real(last: u8, weight: u32) -> RealServerSpec {
        RealServerSpec {
            address: SocketAddr::from(([198, 18, 1, last], 80)),
            weight,
            forward: ForwardMethod::Masq,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    pub(in crate::daemon) fn add_real(
        control: &mut Control,
        port: u16,
        last: u8,
    ) -> Result<(), Refusal> {
        control.apply(&Change::AddRealServer(RealServerChange {
            service: key(port),
            real_server: real(last, 1),
        }))
    }

    #[test]
    fn changes_follow_ipvsadm_semantics() {
        let mut control = control();
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        let refusal = control
            .apply(&Change::AddService(service(80, SchedulerName::Wrr)))
            .unwrap_err();
        assert_eq!(
            (refusal.status, refusal.message.as_str()),
            (Status::Exists, "Service already exists")
        );
        add_real(&mut control, 80, 11).unwrap();
        assert_eq!(
            add_real(&mut control, 80, 11).unwrap_err().message,
            "Destination already exists"
        );
        assert_eq!(
            add_real(&mut control, 81, 11).unwrap_err().message,
            "Service not defined"
        );
        let missing = Change::DeleteRealServer(RealServerRef {
            service: key(80),
            address: SocketAddr::from(([198, 18, 1, 99], 80)),
        });
        assert_eq!(
            control.apply(&missing).unwrap_err().message,
            "No such destination"
        );
        assert_eq!(
            control
                .apply(&Change::DeleteService(key(81)))
                .unwrap_err()
                .message,
            "No such service"
        );
        control
            .apply(&Change::EditService(service(80, SchedulerName::Wrr)))
            .unwrap();
        let snapshot = control.snapshot();
        assert_eq!(snapshot.services.len(), 1);
        assert_eq!(
            snapshot.services[0].scheduler.kind(),
            SchedulerKind::WeightedRoundRobin
        );
        assert_eq!(snapshot.services[0].real_servers[0].method, Method::Nat);
        assert_eq!(snapshot.ports.len(), 2);
        assert_eq!(snapshot.generation, 1);
        assert_eq!(control.snapshot().generation, 2);
    }

    #[test]
    fn invalid_changes_are_refused_and_change_nothing() {
        let mut control = control();
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        let mut fullnat = real(11, 1);
        fullnat.forward = ForwardMethod::FullNat;
        let refusal = control
            .apply(&Change::AddRealServer(RealServerChange {
                service: key(80),
                real_server: fullnat,
            }))
            .unwrap_err();
        assert_eq!(refusal.status, Status::Invalid);
        assert!(
            refusal
                .message
                .contains("FULLNAT needs an IPv4 local address"),
            "{}",
            refusal.message
        );
        let mut heavy = real(11, 1);
        heavy.weight = 70_000;
        let refusal = control
            .apply(&Change::AddRealServer(RealServerChange {
                service: key(80),
                real_server: heavy,
            }))
            .unwrap_err();
        assert_eq!(refusal.status, Status::Invalid);
        assert!(refusal.message.contains("weight"), "{}", refusal.message);
        assert!(control.snapshot().services[0].real_servers.is_empty());
    }

    #[test]
    fn refused_parts_of_the_file_are_named_by_path() {
        let config = config_with(
            r#"[[services]]
protocol = "tcp"
address = "198.18.0.10:80"
scheduler = "sh"

[[services.real_servers]]
address = "198.18.1.11:80"
forward = "fullnat"
"#,
        );
        let problems = Control::new(&config, vec![MacAddr::ZERO; 2], LIMITS).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "services[0].real_servers[0]");
        assert!(
            problems[0]
                .message
                .contains("FULLNAT needs an IPv4 local address")
        );
    }

    #[test]
    fn persistence_reaches_the_snapshot() {
        let mut control = control();
        let persistent = ServiceSpec {
            persistence: Some(Persistence {
                timeout: 60,
                netmask: 24,
            }),
            ..service(80, SchedulerName::Lc)
        };
        control.apply(&Change::AddService(persistent)).unwrap();
        control
            .apply(&Change::AddService(service(81, SchedulerName::Rr)))
            .unwrap();
        let snapshot = control.snapshot();
        assert_eq!(
            snapshot.services[0].persistence,
            Some(dataplane::snapshot::Persistence {
                timeout: 60,
                prefix: 24
            })
        );
        assert_eq!(snapshot.services[1].persistence, None);
    }

    /// `-A -t VIP:0 -p` beside `-A -t VIP:80`: a service of every port
    /// must stay persistent and takes real servers of port 0 only.
    #[test]
    fn a_service_of_every_port_is_persistent_with_real_servers_of_port_0() {
        let mut control = control();
        let plain = service(0, SchedulerName::Rr);
        let refusal = control
            .apply(&Change::AddService(plain.clone()))
            .unwrap_err();
        assert_eq!(
            (refusal.status, refusal.message.as_str()),
            (
                Status::Invalid,
                "address: port 0 (every port) is only for a persistent service: set persistence (ipvsadm -p), or give the port"
            )
        );
        let persistent = ServiceSpec {
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 32,
            }),
            ..plain.clone()
        };
        control
            .apply(&Change::AddService(persistent.clone()))
            .unwrap();
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        // rvsadm -E cannot take the persistence away.
        assert_eq!(
            control
                .apply(&Change::EditService(plain))
                .unwrap_err()
                .status,
            Status::Invalid
        );
        let at = |port| RealServerSpec {
            address: SocketAddr::from(([198, 18, 1, 11], port)),
            ..real(11, 1)
        };
        let add = |control: &mut Control, service, real_server| {
            control.apply(&Change::AddRealServer(RealServerChange {
                service: key(service),
                real_server,
            }))
        };
        assert!(
            add(&mut control, 0, at(80))
                .unwrap_err()
                .message
                .contains("give port 0")
        );
        assert!(
            add(&mut control, 80, at(0))
                .unwrap_err()
                .message
                .contains("port 0 is only for the real servers of a service of every port")
        );
        add(&mut control, 0, at(0)).unwrap();
        let snapshot = control.snapshot();
        let every_port = snapshot.service(6, key(0).address.ip(), 8443).unwrap();
        assert_eq!((every_port.vport, every_port.real_servers[0].port), (0, 0));
        assert_eq!(
            snapshot.service(6, key(0).address.ip(), 80).unwrap().vport,
            80
        );
        assert_eq!(control.services[0].spec, persistent);
    }

    /// Every ipvsadm scheduler reaches the dataplane, with its `-b` flags
    /// and the real servers' thresholds.
    #[test]
    fn schedulers_flags_and_thresholds_reach_the_snapshot() {
        let mut control = control();
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        for name in SchedulerName::ALL {
            control
                .apply(&Change::EditService(service(80, name)))
                .unwrap();
            let snapshot = control.snapshot();
            assert_eq!(
                snapshot.services[0].scheduler.kind().name(),
                name.to_string()
            );
        }
        let mut mh = service(80, SchedulerName::Mh);
        mh.scheduler_flags = vec!["mh-fallback".into(), "mh-port".into()];
        control.apply(&Change::EditService(mh)).unwrap();
        let mut limited = real(11, 1);
        limited.upper_threshold = 100;
        limited.lower_threshold = 50;
        control
            .apply(&Change::AddRealServer(RealServerChange {
                service: key(80),
                real_server: limited,
            }))
            .unwrap();
        let snapshot = control.snapshot();
        let service = &snapshot.services[0];
        assert_eq!(
            service.scheduler.config().flags,
            SchedulerFlags::FALLBACK | SchedulerFlags::PORT
        );
        let rs = &service.real_servers[0];
        assert_eq!((rs.upper_threshold, rs.lower_threshold), (100, 50));
    }

    #[test]
    fn set_timeouts_keeps_values_given_as_zero() {
        let mut control = control();
        control
            .apply(&Change::SetTimeouts(Timeouts {
                tcp: 0,
                tcp_fin: 30,
                udp: 0,
            }))
            .unwrap();
        assert_eq!(
            control.timeouts(),
            Timeouts {
                tcp: 900,
                tcp_fin: 30,
                udp: 300
            }
        );
        let snapshot = control.snapshot();
        assert_eq!(
            snapshot
                .timeouts
                .of(dataplane::conn::ConnState::TcpFinWait)
                .as_secs(),
            30
        );
    }

    /// A removed real server's slot is given out again only once every
    /// worker runs without it and none of its connections is left.
    #[test]
    fn slots_drain_before_they_are_reused() {
        let mut control = control();
        let worker = WorkerCounters::new(LIMITS.services as usize, LIMITS.real_servers as usize);
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        for last in 11..=14 {
            add_real(&mut control, 80, last).unwrap();
        }
        assert!(
            add_real(&mut control, 80, 15).is_err(),
            "all four slots taken"
        );
        let slot_of = |control: &mut Control, last: u8| {
            let snapshot = control.snapshot();
            snapshot.services[0]
                .real_servers
                .iter()
                .find(|rs| rs.address == IpAddr::from([198, 18, 1, last]))
                .map(|rs| rs.slot)
        };
        let removed = slot_of(&mut control, 11).unwrap();
        bump(&worker.real_server(removed).active, 1);
        let generation = delete_real_11(&mut control);
        control.reclaim_slots(generation - 1, &[&worker]);
        assert!(
            add_real(&mut control, 80, 15).is_err(),
            "workers still run the old snapshot"
        );
        control.reclaim_slots(generation, &[&worker]);
        assert!(
            add_real(&mut control, 80, 15).is_err(),
            "a connection still counts on the slot"
        );
        worker
            .real_server(removed)
            .active
            .store(0, Ordering::Relaxed);
        control.reclaim_slots(generation, &[&worker]);
        add_real(&mut control, 80, 15).unwrap();
        assert_eq!(slot_of(&mut control, 15), Some(removed));
    }

    /// Templates are listed as IPVS lists them and counted in their real
    /// server's PersistConn; those of a real server that is gone are not.
    #[test]
    fn templates_are_listed_and_counted_by_their_slots() {
        use dataplane::persistence::TemplateKey;
        let mut control = control();
        for port in [80, 81] {
            let mut spec = service(port, SchedulerName::Rr);
            spec.persistence = Some(Persistence {
                timeout: 60,
                netmask: 24,
            });
            control.apply(&Change::AddService(spec)).unwrap();
        }
        add_real(&mut control, 80, 11).unwrap();
        add_real(&mut control, 81, 12).unwrap();
        let snapshot = control.snapshot();
        let slots = |i: usize| {
            let service = &snapshot.services[i];
            (service.slot, service.real_servers[0].slot)
        };
        let (now, expires) = (1000, 1060);
        let templates = Templates::new(64, 1);
        let place = |service: u16, client: [u8; 4], real_server: u32| {
            let key = TemplateKey::new(&templates, service, Ipv4Addr::from(client), 24);
            templates.place(&key, real_server, expires, now, None);
        };
        place(slots(0).0, [198, 19, 0, 7], slots(0).1);
        place(slots(1).0, [198, 19, 1, 8], slots(1).1);
        place(slots(0).0, [198, 19, 2, 9], 3);

        let targets = control.template_targets();
        let mut listed = Vec::new();
        templates.scan(0, usize::MAX, now + 1, |template| {
            listed.extend(targets.entry(&template, now + 1));
        });
        listed.sort_by_key(|entry| entry.virtual_address.port());
        let template = |client: &str, virtual_address: &str, real_server: &str| ConnEntry {
            protocol: Protocol::Tcp,
            state: "NONE".to_owned(),
            expires: 59,
            client: client.parse().unwrap(),
            virtual_address: virtual_address.parse().unwrap(),
            real_server: real_server.parse().unwrap(),
            local: None,
            template: true,
        };
        assert_eq!(
            listed,
            [
                template("198.19.0.0:0", "198.18.0.10:80", "198.18.1.11:80"),
                template("198.19.1.0:0", "198.18.0.10:81", "198.18.1.12:80"),
            ]
        );

        let counts = persistent_conns(&templates, now);
        let listing = control
            .status(None, &[], &Estimator::default(), &counts)
            .unwrap();
        let persist_conns: Vec<u64> = listing
            .iter()
            .map(|service| service.real_servers[0].persistent_conns)
            .collect();
        assert_eq!(persist_conns, [1, 1]);
        assert!(persistent_conns(&templates, expires).is_empty(), "expired");
    }

    /// Deletes the real server .11 of the service on port 80; returns the
    /// generation of the first snapshot without it.
    fn delete_real_11(control: &mut Control) -> u64 {
        control
            .apply(&Change::DeleteRealServer(RealServerRef {
                service: key(80),
                address: real(11, 1).address,
            }))
            .unwrap();
        control.snapshot().generation
    }

    /// A round-robin service on port 80 with the real server .11, the
    /// counters of `workers` workers, and the real server's slot.
    fn one_real_server(workers: usize) -> (Control, Vec<WorkerCounters>, u32) {
        let mut control = control();
        control
            .apply(&Change::AddService(service(80, SchedulerName::Rr)))
            .unwrap();
        add_real(&mut control, 80, 11).unwrap();
        let counters = (0..workers)
            .map(|_| WorkerCounters::new(LIMITS.services as usize, LIMITS.real_servers as usize))
            .collect();
        let slot = control.snapshot().services[0].real_servers[0].slot;
        (control, counters, slot)
    }

    #[test]
    fn a_slot_given_out_again_counts_from_zero() {
        let (mut control, workers, slot) = one_real_server(1);
        let view: Vec<&WorkerCounters> = workers.iter().collect();
        bump(&workers[0].real_server(slot).traffic.conns, 7);
        let generation = delete_real_11(&mut control);
        control.reclaim_slots(generation, &view);
        add_real(&mut control, 80, 12).unwrap();
        assert_eq!(
            control.snapshot().services[0].real_servers[0].slot,
            slot,
            "the drained slot is given out again"
        );
        let listing = control
            .status(None, &view, &Estimator::default(), &PersistentConns::new())
            .unwrap();
        assert_eq!(listing[0].real_servers[0].stats.conns, 0, "not the old 7");
        let (_, real_servers) = control.totals_by_slot(&view);
        assert_eq!(real_servers, [(slot, TrafficTotals::default())]);
    }

    #[test]
    fn listings_sum_workers_and_zeroing_sets_a_baseline() {
        let (mut control, workers, slot) = one_real_server(2);
        for worker in &workers {
            bump(&worker.real_server(slot).active, 2);
            bump(&worker.real_server(slot).inactive, 1);
            bump(&worker.real_server(slot).traffic.conns, 3);
        }
        let view: Vec<&WorkerCounters> = workers.iter().collect();
        let listing = control
            .status(None, &view, &Estimator::default(), &PersistentConns::new())
            .unwrap();
        let rs = &listing[0].real_servers[0];
        assert_eq!(
            (rs.active_conns, rs.inactive_conns, rs.stats.conns),
            (4, 2, 6)
        );
        // A rate measured from nothing to these totals.
        let mut rates = Estimator::default();
        let (services, real_servers) = control.totals_by_slot(&[]);
        rates.sample(&services, &real_servers, 2.0);
        let (services, real_servers) = control.totals_by_slot(&view);
        rates.sample(&services, &real_servers, 2.0);
        let rs_rates = |control: &Control, rates: &Estimator| {
            control
                .status(None, &view, rates, &PersistentConns::new())
                .unwrap()[0]
                .real_servers[0]
                .rates
        };
        assert_eq!(rs_rates(&control, &rates).cps, 1, "a quarter of 6/2 s");
        control.zero(None, &view, &mut rates).unwrap();
        let rs = &control
            .status(Some(&key(80)), &view, &rates, &PersistentConns::new())
            .unwrap()[0]
            .real_servers[0];
        assert_eq!(
            (rs.active_conns, rs.stats.conns),
            (4, 0),
            "counts stay, counters restart"
        );
        assert_eq!(rs.rates, Default::default(), "rates restart too");
        assert_eq!(
            control
                .status(
                    Some(&key(81)),
                    &view,
                    &Estimator::default(),
                    &PersistentConns::new()
                )
                .unwrap_err()
                .status,
            Status::NotFound
        );
    }
}
