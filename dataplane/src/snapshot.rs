//! The configuration as workers see it: one immutable [`Snapshot`],
//! published whole.
//!
//! The control thread builds a complete snapshot (ports and their
//! addresses, routes, services with their real servers and precomputed
//! scheduler tables, timeouts) and publishes it through a
//! [`SnapshotCell`]. Workers check the cell's generation between bursts
//! and switch to the new snapshot in one pointer swap, so a worker sees
//! either all of a change or none of it, and never waits for the control
//! thread. A snapshot is freed when its last reader lets go; the control
//! thread keeps published snapshots until then (see [`Retired`]) so that
//! the freeing happens on its side, not on a worker.
//!
//! Services and real servers carry *slots*: small stable numbers assigned
//! by the control plane that index per-worker counters and scheduler
//! state. A slot stays with its service or real server for its whole life.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::conn::{Method, StateTimeouts};
use crate::family::{Family, contains};
use crate::route::{Route, RouteTable};
use crate::sched::{Scheduler, SchedulerConfig};
use crate::time::Duration;
use crate::wire::{Ipv4Cidr, Ipv6Cidr, MacAddr};

/// A real server as the dataplane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub slot: u32,
    pub address: IpAddr,
    pub port: u16,
    /// 0 quiesces: no new connections, existing ones carry on.
    pub weight: u32,
    pub method: Method,
    /// `-x`: with this many connections (active + inactive) the real
    /// server is overloaded and takes no new ones; 0: no limit.
    pub upper_threshold: u32,
    /// `-y`: an overloaded real server takes new connections again below
    /// this many; 0: below three quarters of the upper threshold.
    pub lower_threshold: u32,
}

/// A virtual service with its real servers, in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub slot: u16,
    pub protocol: u8,
    pub vip: IpAddr,
    pub vport: u16,
    pub scheduler: Scheduler,
    pub real_servers: Vec<RealServer>,
    /// Changes whenever anything a scheduler's state depends on changes
    /// (algorithm and flags, real servers, weights, thresholds), so
    /// workers know to adapt.
    pub schedule_fingerprint: u64,
    /// FULLNAT's local addresses (LIPs) for this service's connections,
    /// of the VIP's family; empty when no real server uses FULLNAT.
    pub local_addresses: Vec<IpAddr>,
    /// `-p`/`-M`: clients stick to their real server.
    pub persistence: Option<Persistence>,
}

/// A persistent service's settings (`ipvsadm -p timeout -M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Seconds a client's template outlives its last packet.
    pub timeout: u32,
    /// Leading bits of the client address that name a client (`-M`).
    pub prefix: u8,
}

impl Service {
    /// A service, with its scheduler's tables built for these real
    /// servers (a [`SchedulerKind`](crate::sched::SchedulerKind) alone is a
    /// scheduler without flags).
    pub fn new(
        slot: u16,
        protocol: u8,
        vip: IpAddr,
        vport: u16,
        scheduler: impl Into<SchedulerConfig>,
        real_servers: Vec<RealServer>,
    ) -> Service {
        let scheduler = scheduler.into();
        let mut hasher = std::hash::DefaultHasher::new();
        scheduler.hash(&mut hasher);
        for rs in &real_servers {
            (rs.slot, rs.weight, rs.upper_threshold, rs.lower_threshold).hash(&mut hasher);
        }
        Service {
            slot,
            protocol,
            vip,
            vport,
            scheduler: Scheduler::new(scheduler, &real_servers),
            real_servers,
            schedule_fingerprint: hasher.finish(),
            local_addresses: Vec::new(),
            persistence: None,
        }
    }
}

/// A port's identity and own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddresses {
    pub mac: MacAddr,
    pub ipv4: Vec<Ipv4Cidr>,
    pub ipv6: Vec<Ipv6Cidr>,
    /// Largest IP packet the port sends (1500 on Ethernet).
    pub mtu: u16,
    /// Whether the port has a kernel twin: then the host's own traffic
    /// (echo to the director's addresses, ARP and ND replies, what no
    /// service or connection claims) goes to the kernel, which holds the
    /// port's addresses too.
    pub exception_path: bool,
}

impl PortAddresses {
    /// A port with IPv4 addresses only, the Ethernet MTU and no exception
    /// path.
    pub fn ipv4(mac: MacAddr, ipv4: Vec<Ipv4Cidr>) -> PortAddresses {
        PortAddresses {
            mac,
            ipv4,
            ipv6: Vec::new(),
            mtu: 1500,
            exception_path: false,
        }
    }
}

/// A next hop whose MAC address is configured, not resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeighbour {
    pub address: IpAddr,
    pub mac: MacAddr,
}

/// What a snapshot is built from.
#[derive(Debug, Clone)]
pub struct SnapshotParts {
    pub generation: u64,
    /// Indexed by the dataplane's port number.
    pub ports: Vec<PortAddresses>,
    /// Static routes; the ports' own subnets are added.
    pub routes4: Vec<Route<Ipv4Addr>>,
    pub routes6: Vec<Route<Ipv6Addr>>,
    pub neighbours: Vec<StaticNeighbour>,
    pub services: Vec<Service>,
    pub timeouts: StateTimeouts,
    /// How long a resolved neighbour stays valid without confirmation.
    pub neighbour_timeout: Duration,
}

impl Default for SnapshotParts {
    fn default() -> Self {
        SnapshotParts {
            generation: 0,
            ports: Vec::new(),
            routes4: Vec::new(),
            routes6: Vec::new(),
            neighbours: Vec::new(),
            services: Vec::new(),
            timeouts: StateTimeouts::default(),
            neighbour_timeout: Duration::from_secs(300),
        }
    }
}

/// Everything a worker needs to know of the configuration.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    /// Indexed by the dataplane's port number.
    pub ports: Vec<PortAddresses>,
    pub routes4: RouteTable<Ipv4Addr>,
    pub routes6: RouteTable<Ipv6Addr>,
    pub static_neighbours: Vec<StaticNeighbour>,
    pub services: Vec<Service>,
    pub timeouts: StateTimeouts,
    /// How long a resolved neighbour stays valid without confirmation.
    pub neighbour_timeout: Duration,
    by_virtual: HashMap<(u8, IpAddr, u16), usize, BuildHasherDefault<FoldHasher>>,
    /// Whether some service has port 0 (every port): only then does a
    /// miss of the exact port look again.
    every_port: bool,
    vips: Vec<IpAddr>,
    /// FULLNAT local addresses of every service, which the director owns.
    local_addresses: Vec<IpAddr>,
}

impl Snapshot {
    /// Assembles a snapshot; routes to the ports' own subnets are added.
    /// The control plane has validated the parts (unique services, real
    /// servers of the service's family, ports that exist).
    pub fn new(parts: SnapshotParts) -> Snapshot {
        let routes4 = RouteTable::new(connected::<Ipv4Addr>(&parts.ports), parts.routes4);
        let routes6 = RouteTable::new(connected::<Ipv6Addr>(&parts.ports), parts.routes6);
        let mut local_addresses: Vec<IpAddr> = parts
            .services
            .iter()
            .flat_map(|s| s.local_addresses.iter().copied())
            .collect();
        local_addresses.sort_unstable();
        local_addresses.dedup();
        let by_virtual = parts
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.protocol, s.vip, s.vport), i))
            .collect();
        let every_port = parts.services.iter().any(|s| s.vport == 0);
        let mut vips: Vec<IpAddr> = parts.services.iter().map(|s| s.vip).collect();
        vips.sort_unstable();
        vips.dedup();
        Snapshot {
            generation: parts.generation,
            ports: parts.ports,
            routes4,
            routes6,
            static_neighbours: parts.neighbours,
            services: parts.services,
            timeouts: parts.timeouts,
            neighbour_timeout: parts.neighbour_timeout,
            by_virtual,
            every_port,
            vips,
            local_addresses,
        }
    }

    /// An empty configuration: no ports, no services.
    pub fn empty() -> Snapshot {
        Snapshot::new(SnapshotParts::default())
    }

    /// The service for packets to `vip:vport` over `protocol`: the one of
    /// that port, else the VIP's service of every port (port 0), as IPVS
    /// looks them up. Only packets without a connection ask.
    #[inline]
    pub fn service(&self, protocol: u8, vip: IpAddr, vport: u16) -> Option<&Service> {
        self.by_virtual
            .get(&(protocol, vip, vport))
            .or_else(|| {
                self.every_port
                    .then(|| self.by_virtual.get(&(protocol, vip, 0)))
                    .flatten()
            })
            .map(|&i| &self.services[i])
    }

    /// Whether `address` is the VIP of some service.
    pub fn is_vip(&self, address: IpAddr) -> bool {
        self.vips.binary_search(&address).is_ok()
    }

    /// Whether `address` is one of the director's own addresses on `port`.
    pub fn is_port_address<A: FamilyView>(&self, port: u16, address: A) -> bool {
        self.ports
            .get(usize::from(port))
            .is_some_and(|p| A::prefixes(p).iter().any(|cidr| A::cidr(cidr).0 == address))
    }

    /// Whether `address` is one of the director's own addresses, any port.
    pub fn is_own_address<A: FamilyView>(&self, address: A) -> bool {
        self.ports
            .iter()
            .any(|p| A::prefixes(p).iter().any(|cidr| A::cidr(cidr).0 == address))
    }

    /// Whether `address` is a FULLNAT local address of some service.
    pub fn is_local_address(&self, address: IpAddr) -> bool {
        self.local_addresses.binary_search(&address).is_ok()
    }

    /// Whether the director answers ARP or Neighbour Discovery for
    /// `address` on `port`: its own addresses on that port, and VIPs and
    /// local addresses on the ports whose subnets hold them, or on every
    /// port if no subnet does (a VIP routed to the director needs no
    /// resolution, but answering does no harm).
    pub fn answers_for<A: FamilyView>(&self, port: u16, address: A) -> bool {
        if self.is_port_address(port, address) {
            return true;
        }
        let ip = address.to_ip();
        if !self.is_vip(ip) && !self.is_local_address(ip) {
            return false;
        }
        let on_port = |p: &PortAddresses| {
            A::prefixes(p)
                .iter()
                .any(|cidr| contains::<A>(cidr, address))
        };
        match self.ports.get(usize::from(port)) {
            Some(p) if on_port(p) => true,
            _ => !self.ports.iter().any(on_port),
        }
    }

    /// The address the director uses as source on `port` towards `peer`:
    /// the port address whose subnet holds `peer`, else its first address
    /// of the family.
    pub fn source_address<A: FamilyView>(&self, port: u16, peer: A) -> Option<A> {
        let prefixes = A::prefixes(self.ports.get(usize::from(port))?);
        prefixes
            .iter()
            .find(|cidr| contains::<A>(cidr, peer))
            .or_else(|| prefixes.first())
            .map(|cidr| A::cidr(cidr).0)
    }

    /// The MTU of `port` (1500 if unknown).
    pub fn mtu(&self, port: u16) -> u16 {
        self.ports.get(usize::from(port)).map_or(1500, |p| p.mtu)
    }

    /// The routes of the family `A`.
    pub fn routes<A: FamilyView>(&self) -> &RouteTable<A> {
        A::routes(self)
    }
}

/// The ports' own subnets, each with its port.
fn connected<A: FamilyView>(ports: &[PortAddresses]) -> Vec<(u16, A::Cidr)> {
    ports
        .iter()
        .enumerate()
        .flat_map(|(port, addresses)| {
            A::prefixes(addresses)
                .iter()
                .map(move |cidr| (port as u16, *cidr))
        })
        .collect()
}

/// What the snapshot keeps per address family.
pub trait FamilyView: Family {
    fn prefixes(port: &PortAddresses) -> &[Self::Cidr];
    fn routes(snapshot: &Snapshot) -> &RouteTable<Self>;
}

impl FamilyView for Ipv4Addr {
    fn prefixes(port: &PortAddresses) -> &[Ipv4Cidr] {
        &port.ipv4
    }

    fn routes(snapshot: &Snapshot) -> &RouteTable<Ipv4Addr> {
        &snapshot.routes4
    }
}

impl FamilyView for Ipv6Addr {
    fn prefixes(port: &PortAddresses) -> &[Ipv6Cidr] {
        &port.ipv6
    }

    fn routes(snapshot: &Snapshot) -> &RouteTable<Ipv6Addr> {
        &snapshot.routes6
    }
}

/// Where the control thread publishes snapshots and workers pick them up.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
}

impl SnapshotCell {
    pub fn new(initial: Arc<Snapshot>) -> SnapshotCell {
        SnapshotCell {
            generation: AtomicU64::new(initial.generation),
            current: ArcSwap::new(initial),
        }
    }

    /// Makes `snapshot` current. Its generation must grow.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let generation = snapshot.generation;
        self.current.store(snapshot);
        // Published after the pointer: a reader that sees the new number
        // loads this snapshot or a newer one.
        self.generation.store(generation, Ordering::Release);
    }

    /// The generation last published: one atomic load, for a worker to
    /// check between bursts.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

/// Published snapshots the control thread still holds so that the last
/// reference, and so the freeing, stays on its side.
#[derive(Debug, Default)]
pub struct Retired {
    snapshots: Vec<Arc<Snapshot>>,
}

impl Retired {
    pub fn keep(&mut self, snapshot: Arc<Snapshot>) {
        self.snapshots.push(snapshot);
    }

    /// Frees the snapshots that no worker holds any more; returns how many
    /// are still in use.
    pub fn collect(&mut self) -> usize {
        self.snapshots.retain(|s| Arc::strong_count(s) > 1);
        self.snapshots.len()
    }
}

/// A fast hasher for small keys on the control side's lookup maps, which
/// workers query on every new connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let product = u128::from(self.0 ^ value) * 0x9E37_79B9_7F4A_7C15u128;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::sched::SchedulerKind;

    fn snapshot(generation: u64, services: usize) -> Snapshot {
        let services = (0..services)
            .map(|i| {
                Service::new(
                    i as u16,
                    6,
                    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
                    1000 + i as u16,
                    SchedulerKind::RoundRobin,
                    vec![RealServer {
                        slot: i as u32,
                        address: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)),
                        port: 80,
                        weight: generation as u32,
                        method: Method::Nat,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    }],
                )
            })
            .collect();
        Snapshot::new(SnapshotParts {
            generation,
            services,
            ..SnapshotParts::default()
        })
    }

    #[test]
    fn services_are_found_by_protocol_vip_and_port() {
        let snap = snapshot(1, 3);
        let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(snap.service(6, vip, 1001).map(|s| s.slot), Some(1));
        assert!(snap.service(17, vip, 1001).is_none());
        assert!(snap.service(6, vip, 999).is_none());
        assert!(snap.is_vip(vip));
        assert!(!snap.is_vip(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11))));
    }

    #[test]
    fn a_service_of_every_port_takes_the_ports_no_other_service_has() {
        let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));
        let mut services = snapshot(1, 2).services;
        services[0].vport = 0;
        let snap = Snapshot::new(SnapshotParts {
            generation: 1,
            services,
            ..SnapshotParts::default()
        });
        assert_eq!(snap.service(6, vip, 1001).map(|s| s.slot), Some(1));
        assert_eq!(snap.service(6, vip, 443).map(|s| s.slot), Some(0));
        assert_eq!(snap.service(6, vip, 0).map(|s| s.slot), Some(0));
        assert!(snap.service(17, vip, 443).is_none(), "TCP's only");
        let other = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11));
        assert!(snap.service(6, other, 443).is_none(), "that VIP's only");
    }

    /// Readers that switch snapshots between "bursts", as workers do,
    /// always see a whole configuration: every service of a snapshot
    /// carries that snapshot's generation, and the service count equals it.
    #[test]
    fn workers_never_observe_a_half_applied_configuration() {
        let cell = Arc::new(SnapshotCell::new(Arc::new(snapshot(1, 1))));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let cell = Arc::clone(&cell);
                let done = Arc::clone(&done);
                std::thread::spawn(move || {
                    let mut current = cell.load();
                    let mut seen = 0u64;
                    while !done.load(Ordering::Acquire) {
                        if cell.generation() != current.generation {
                            current = cell.load();
                        }
                        let generation = current.generation;
                        assert!(generation >= seen, "generations never go back");
                        seen = generation;
                        assert_eq!(current.services.len() as u64, generation);
                        for service in &current.services {
                            assert_eq!(u64::from(service.real_servers[0].weight), generation);
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut retired = Retired::default();
        for generation in 2..=200 {
            let next = Arc::new(snapshot(generation, generation as usize));
            retired.keep(Arc::clone(&next));
            cell.publish(next);
            retired.collect();
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            assert!(reader.join().unwrap() <= 200);
        }
        drop(cell);
        assert_eq!(retired.collect(), 0, "every snapshot is freed once unused");
    }
}
