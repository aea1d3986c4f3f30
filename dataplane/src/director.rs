//! The load-balancing core of one worker: a frame and the current time in,
//! a [`Verdict`] out.
//!
//! The director parses each frame in place, answers ARP, Neighbour
//! Discovery and ICMP echo for the director's addresses, VIPs and local
//! addresses, finds the frame's connection (or schedules a new one),
//! rewrites it for the connection's forwarding method (NAT, direct
//! routing, IP-in-IP tunnel or FULLNAT, over IPv4 or IPv6), translates ICMP
//! errors that quote a connection, and fills in the Ethernet addresses of
//! the next hop. It never calls DPDK, never reads a clock and never
//! allocates after construction; the worker (`crate::worker`) moves frames
//! between the NIC and this core.
//!
//! The logic is written once over the address family ([`ip::Ip`]); each
//! family has its own [`Plane`]: connection table, neighbour table and
//! FULLNAT local ports.
//!
//! Side requests that need a fresh buffer (ARP and NS probes for next hops)
//! are queued in a small fixed outbox that the caller drains with
//! [`Director::take_request`] and fulfils with [`Director::write_request`].

mod flow;
mod icmp;
mod ip;
mod local;
pub(crate) mod ports;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::{Conn, ConnId, ConnTable, Direction, FlowKey, HashSeed, Method, TcpSignal};
use crate::counters::{DropReason, Event, WorkerCounters, unbump};
use crate::family::Family;
use crate::frame::Frame;
use crate::listing::ConnMailbox;
use crate::neighbour::NeighbourTable;
use crate::persistence::{RecentExtensions, Templates};
use crate::sched::SchedulerState;
use crate::snapshot::{Persistence, Snapshot};
use crate::steering::{NeighbourExchange, client_owner, local_port_owner};
use crate::time::{Duration, Instant};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, MacAddr, TcpPacket, UdpPacket};

use ip::{Header, Ip};
pub use ports::LOCAL_PORTS;
use ports::LocalPorts;

const ETHERNET_HEADER: usize = 14;
/// Connection-table work per housekeeping pass (see `ConnTable::expire`).
const EXPIRY_BUDGET: usize = 1024;
/// Interval of neighbour-table sweeps and proactive resolution.
const NEIGHBOUR_SWEEP: Duration = Duration::from_secs(1);
const OUTBOX_CAPACITY: usize = 64;
/// Remembered answers of the neighbour table, so the next hops a worker
/// uses all the time (a few real servers, a router) cost a compare.
const NEXT_HOP_MEMOS: usize = 16;

/// Frames [`Director::process_burst`] handles at once.
pub const BURST: usize = 32;

/// What to do with a frame after [`Director::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame is complete: send it on `port`.
    Transmit { port: u16 },
    /// Complete except for the next hop's MAC: hold it until `next_hop`
    /// resolves, then call [`Director::complete`].
    AwaitNeighbour { port: u16, next_hop: IpAddr },
    /// For the host's own network stack, through the port's exception
    /// path; only for a port that has one (otherwise the frame is dropped
    /// as [`DropReason::NoExceptionPath`]).
    ToKernel,
    /// Nothing to send (for example an ARP reply that taught a MAC).
    Consumed,
    /// Dropped; already counted under the reason.
    Drop(DropReason),
    /// Another worker owns the packet's connection (see
    /// [`crate::steering`]): hand it over, unchanged.
    HandOff { worker: u16 },
}

/// A packet the director wants generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Broadcast an ARP request for `target` on `port`.
    ArpProbe { port: u16, target: Ipv4Addr },
    /// Multicast a Neighbour Solicitation for `target` on `port`.
    NeighbourSolicit { port: u16, target: Ipv6Addr },
}

/// Sizing and identity of a worker's director.
#[derive(Debug, Clone)]
pub struct DirectorParams {
    /// IPv4 connections the table holds.
    pub connections: u32,
    /// IPv6 connections the table holds.
    pub connections_v6: u32,
    /// Neighbours (next hops) each neighbour table holds.
    pub neighbours: usize,
    /// Key of the connection hash; random per daemon.
    pub hash_seed: HashSeed,
    /// This worker's share of FULLNAT local ports: `worker` of `workers`.
    pub worker: u16,
    pub workers: u16,
    /// Persistence templates, shared by every worker.
    pub templates: Arc<Templates>,
    /// Where the control thread asks for this worker's connections.
    pub listing: Arc<ConnMailbox>,
    /// Where workers share the neighbours they learn (one inbox per
    /// worker).
    pub neighbour_exchange: Arc<NeighbourExchange>,
}

/// A small fixed-capacity FIFO; pushes beyond capacity are refused.
#[derive(Debug)]
struct Outbox<T: Copy, const N: usize> {
    items: [Option<T>; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Outbox<T, N> {
    fn new() -> Self {
        Outbox {
            items: [None; N],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, item: T) -> bool {
        if self.len == N {
            return false;
        }
        self.items[(self.head + self.len) % N] = Some(item);
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }
}

/// A neighbour-table answer, valid while the table's generation is the
/// same and until `fresh_until`.
#[derive(Debug, Clone, Copy)]
struct NextHopMemo<A> {
    address: A,
    mac: MacAddr,
    generation: u64,
    fresh_until: Instant,
}

/// A worker's state for one address family.
#[derive(Debug)]
pub struct Plane<A> {
    conns: ConnTable<A>,
    neighbours: NeighbourTable<A>,
    next_hops: [NextHopMemo<A>; NEXT_HOP_MEMOS],
    local_ports: LocalPorts<A>,
}

impl<A: Family> Plane<A> {
    fn new(
        connections: u32,
        params: &DirectorParams,
        snapshot: &Snapshot,
        now: Instant,
    ) -> Plane<A> {
        Plane {
            conns: ConnTable::new(connections, params.hash_seed, &snapshot.timeouts, now),
            neighbours: NeighbourTable::new(params.neighbours),
            next_hops: [Self::NO_MEMO; NEXT_HOP_MEMOS],
            local_ports: LocalPorts::new(params.worker, params.workers),
        }
    }

    const NO_MEMO: NextHopMemo<A> = NextHopMemo {
        address: A::UNSPECIFIED,
        mac: MacAddr::ZERO,
        generation: u64::MAX,
        fresh_until: Instant(0),
    };
}

impl<A> Plane<A> {
    pub fn connections(&self) -> &ConnTable<A> {
        &self.conns
    }

    pub fn neighbours(&self) -> &NeighbourTable<A> {
        &self.neighbours
    }
}

/// Both families' planes, apart from the rest of the director so that one
/// can be borrowed while the snapshot is read.
#[derive(Debug)]
struct Planes {
    v4: Plane<Ipv4Addr>,
    v6: Plane<Ipv6Addr>,
}

#[inline]
fn next_hop_slot<A: Ip>(address: A) -> usize {
    ((address.fold() as u32).wrapping_mul(0x9E37_79B1) >> 28) as usize
}

/// Per-worker load-balancing state (see the module docs).
#[derive(Debug)]
pub struct Director {
    snapshot: Arc<Snapshot>,
    planes: Planes,
    schedulers: Box<[SchedulerState]>,
    /// Each service slot's persistence, from the snapshot.
    persistence: Box<[Option<Persistence>]>,
    templates: Arc<Templates>,
    listing: Arc<ConnMailbox>,
    extended: RecentExtensions,
    counters: Arc<WorkerCounters>,
    requests: Outbox<Request, OUTBOX_CAPACITY>,
    resolved: Outbox<IpAddr, OUTBOX_CAPACITY>,
    next_sweep: Instant,
    icmp_window: Instant,
    icmp_sent: u32,
    /// IPv4 identification of the tunnel headers this worker writes.
    tunnel_ident: u16,
    /// This worker, of `workers`: who owns what (see [`crate::steering`]).
    worker: u16,
    workers: u16,
    /// Set while frames another worker handed over are processed: they
    /// are this worker's by construction and never handed on, even if a
    /// configuration change between the two workers' snapshots makes them
    /// disagree about ownership.
    owns_everything: bool,
    neighbour_exchange: Arc<NeighbourExchange>,
}

/// What `classify` found a frame to be.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// TCP or UDP to be forwarded or scheduled.
    Flow4(Flow<Ipv4Addr>),
    Flow6(Flow<Ipv6Addr>),
    Arp,
    /// ICMP for one of the director's addresses or a VIP (echo).
    Local4,
    /// ICMPv6 for the director: echo, or Neighbour Discovery.
    Local6,
    /// An ICMP error, maybe about a tracked connection.
    IcmpError4,
    IcmpError6,
    ToKernel,
    Drop(DropReason),
}

/// A TCP or UDP packet's facts.
#[derive(Debug, Clone, Copy)]
struct Flow<A> {
    header: Header<A>,
    transport: Transport<A>,
    hash: u64,
}

/// The L4 facts of a TCP or UDP packet that the director acts on.
#[derive(Debug, Clone, Copy)]
struct Transport<A> {
    key: FlowKey<A>,
    signal: TcpSignal,
}

impl Director {
    pub fn new(
        params: DirectorParams,
        snapshot: Arc<Snapshot>,
        counters: Arc<WorkerCounters>,
        now: Instant,
    ) -> Director {
        // Seeded per worker and service, so that random choices (twos)
        // differ between workers.
        let schedulers = (0..counters.service_slots())
            .map(|slot| {
                let seed = params.hash_seed.0[0] ^ u64::from(params.worker) << 32 ^ slot as u64;
                SchedulerState::with_seed(seed)
            })
            .collect();
        counters
            .snapshot_generation
            .store(snapshot.generation, std::sync::atomic::Ordering::Release);
        let mut director = Director {
            planes: Planes {
                v4: Plane::new(params.connections, &params, &snapshot, now),
                v6: Plane::new(params.connections_v6, &params, &snapshot, now),
            },
            schedulers,
            persistence: vec![None; counters.service_slots()].into_boxed_slice(),
            templates: params.templates,
            listing: params.listing,
            worker: params.worker,
            workers: params.workers.max(1),
            owns_everything: false,
            neighbour_exchange: params.neighbour_exchange,
            extended: RecentExtensions::default(),
            counters,
            requests: Outbox::new(),
            resolved: Outbox::new(),
            next_sweep: now,
            icmp_window: now,
            icmp_sent: 0,
            tunnel_ident: 0,
            snapshot,
        };
        director.adopt_static_state(now);
        director
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// The IPv4 connection table.
    pub fn connections(&self) -> &ConnTable<Ipv4Addr> {
        &self.planes.v4.conns
    }

    pub fn ipv4(&self) -> &Plane<Ipv4Addr> {
        &self.planes.v4
    }

    pub fn ipv6(&self) -> &Plane<Ipv6Addr> {
        &self.planes.v6
    }

    /// Switches to a new configuration and returns the old one, so that
    /// the caller can hand it back to the control thread to be freed.
    /// Existing connections are untouched; new timeouts apply as their
    /// deadlines come round.
    pub fn set_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) -> Arc<Snapshot> {
        if snapshot.timeouts != self.snapshot.timeouts {
            self.planes.v4.conns.set_timeouts(&snapshot.timeouts);
            self.planes.v6.conns.set_timeouts(&snapshot.timeouts);
        }
        self.counters
            .snapshot_generation
            .store(snapshot.generation, std::sync::atomic::Ordering::Release);
        self.counters.count(Event::SnapshotAdopted);
        // Resolve the new configuration's next hops straight away.
        self.next_sweep = now;
        let old = std::mem::replace(&mut self.snapshot, snapshot);
        self.adopt_static_state(now);
        old
    }

    /// Installs what a snapshot prescribes to the worker's own state:
    /// scheduler state (built here, not on a connection's first packet),
    /// static neighbours, FULLNAT local addresses; forgets remembered next
    /// hops (routes may have changed).
    fn adopt_static_state(&mut self, now: Instant) {
        self.persistence.fill(None);
        for service in &self.snapshot.services {
            let slot = usize::from(service.slot);
            if let Some(state) = self.schedulers.get_mut(slot) {
                state.prepare(service);
            }
            if let Some(persistence) = self.persistence.get_mut(slot) {
                *persistence = service.persistence;
            }
        }
        self.adopt_family::<Ipv4Addr>(now);
        self.adopt_family::<Ipv6Addr>(now);
    }

    fn adopt_family<A: Ip>(&mut self, now: Instant) {
        let snapshot = &self.snapshot;
        let plane = A::plane_mut(&mut self.planes);
        plane.next_hops = [Plane::<A>::NO_MEMO; NEXT_HOP_MEMOS];
        let neighbours = snapshot
            .static_neighbours
            .iter()
            .filter_map(|n| A::from_ip(n.address).map(|address| (address, n.mac)));
        let pinned = plane.neighbours.pin(now, neighbours);
        let locals = snapshot
            .services
            .iter()
            .flat_map(|s| &s.local_addresses)
            .filter_map(|&address| A::from_ip(address));
        let assigned = plane.local_ports.assign(locals);
        if !pinned || !assigned {
            self.counters.count(Event::ConfigNotApplied);
        }
    }

    /// Handles a burst of frames received on `port`, writing a verdict for
    /// each (at most [`BURST`] frames; the rest are left alone).
    ///
    /// Three passes overlap the memory latency of the packets' connection
    /// lookups: classify every frame and hash its tuple, prefetching the
    /// index bucket; probe the index and prefetch the connection entries;
    /// then act on each frame. A connection found in the second pass is
    /// checked again in the third only if an earlier frame of the burst
    /// inserted or removed one.
    pub fn process_burst<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frames: &mut [F],
        verdicts: &mut [Verdict],
    ) {
        let count = frames.len().min(verdicts.len()).min(BURST);
        let Some((port_mac, exception_path)) = self
            .snapshot
            .ports
            .get(usize::from(port))
            .map(|p| (p.mac, p.exception_path))
        else {
            for verdict in &mut verdicts[..count] {
                *verdict = self.drop(DropReason::NotOurMac);
            }
            return;
        };
        let mut classes = [Class::ToKernel; BURST];
        for (class, frame) in classes.iter_mut().zip(&frames[..count]) {
            *class = self.classify(port_mac, frame.as_ref());
            match class {
                Class::Flow4(flow) => self.planes.v4.conns.prefetch(flow.hash),
                Class::Flow6(flow) => self.planes.v6.conns.prefetch(flow.hash),
                _ => {}
            }
        }
        let mut found = [None; BURST];
        for (found, class) in found.iter_mut().zip(&classes[..count]) {
            *found = match class {
                Class::Flow4(flow) => lookup(&self.planes.v4.conns, flow),
                Class::Flow6(flow) => lookup(&self.planes.v6.conns, flow),
                _ => None,
            };
        }
        let changes = (
            self.planes.v4.conns.modifications(),
            self.planes.v6.conns.modifications(),
        );
        for i in 0..count {
            // Until an earlier frame of the burst inserts or removes a
            // connection, what the batched lookup found stands as is;
            // afterwards it is checked again.
            let stale = (
                self.planes.v4.conns.modifications(),
                self.planes.v6.conns.modifications(),
            ) != changes;
            let frame = &mut frames[i];
            let verdict = match classes[i] {
                Class::Flow4(flow) => {
                    let found = recheck(&self.planes.v4.conns, &flow, found[i], stale);
                    self.transport(now, port, frame, flow, found)
                }
                Class::Flow6(flow) => {
                    let found = recheck(&self.planes.v6.conns, &flow, found[i], stale);
                    self.transport(now, port, frame, flow, found)
                }
                Class::Arp => self.arp(now, port, port_mac, frame.as_mut()),
                Class::Local4 => self.icmp4_local(port, port_mac, frame.as_mut()),
                Class::Local6 => self.icmp6_local(now, port, port_mac, frame),
                Class::IcmpError4 => self.translate_error::<Ipv4Addr, F>(now, frame),
                Class::IcmpError6 => self.translate_error::<Ipv6Addr, F>(now, frame),
                Class::ToKernel => Verdict::ToKernel,
                Class::Drop(reason) => self.drop(reason),
            };
            // Decided here rather than by the I/O, so that a frame for the
            // host is counted once: handed to the kernel, or dropped.
            verdicts[i] = match verdict {
                Verdict::ToKernel if !self.for_the_host(frames[i].as_ref()) => {
                    self.drop(DropReason::NotForHost)
                }
                Verdict::ToKernel if !exception_path => self.drop(DropReason::NoExceptionPath),
                verdict => verdict,
            };
        }
    }

    /// Whether the host's stack may have a frame that no service or
    /// connection claims: one to a multicast or broadcast MAC (ARP, ND,
    /// VRRP, routing protocols), one that is not IP, or an IP packet to
    /// one of the director's own addresses, the addresses the kernel
    /// twins hold (or, for IPv6, a link-local address: each twin has one).
    /// Unicast to any other address is nobody's here; the host must not
    /// route it.
    fn for_the_host(&self, bytes: &[u8]) -> bool {
        let ethernet = EthernetFrame::new_unchecked(bytes);
        if ethernet.dst_addr().is_multicast() {
            return true;
        }
        let packet = ethernet.payload();
        match ethernet.ethertype() {
            EtherType::IPV4 => {
                Ipv4Addr::parse(packet).is_ok_and(|header| self.snapshot.is_own_address(header.dst))
            }
            EtherType::IPV6 => Ipv6Addr::parse(packet).is_ok_and(|header| {
                header.dst.is_unicast_link_local() || self.snapshot.is_own_address(header.dst)
            }),
            _ => true,
        }
    }

    /// Handles one received frame (see [`Verdict`]): a burst of one.
    pub fn process<F: Frame>(&mut self, now: Instant, port: u16, frame: &mut F) -> Verdict {
        let mut verdict = [Verdict::Consumed];
        self.process_burst(now, port, std::slice::from_mut(frame), &mut verdict);
        verdict[0]
    }

    /// Validates a frame's headers and sorts it, without side effects
    /// (drops are counted when acted on).
    #[inline]
    fn classify(&self, port_mac: MacAddr, bytes: &[u8]) -> Class {
        let Ok(ethernet) = EthernetFrame::new_checked(bytes) else {
            return Class::Drop(DropReason::EthernetTruncated);
        };
        let destination = ethernet.dst_addr();
        let unicast_to_us = destination == port_mac;
        if !unicast_to_us && !destination.is_multicast() {
            return Class::Drop(DropReason::NotOurMac);
        }
        match ethernet.ethertype() {
            EtherType::ARP => Class::Arp,
            EtherType::IPV4 if unicast_to_us => self.classify_ip::<Ipv4Addr>(ethernet.payload()),
            EtherType::IPV6 => self.classify_ip::<Ipv6Addr>(ethernet.payload()),
            EtherType::VLAN | EtherType::QINQ => Class::Drop(DropReason::VlanUnsupported),
            _ => Class::ToKernel,
        }
    }

    #[inline]
    fn classify_ip<A: Classify>(&self, packet: &[u8]) -> Class {
        let header = match A::parse(packet) {
            Ok(header) => header,
            Err(reason) => return Class::Drop(reason),
        };
        // Established traffic never asks whether the destination is one
        // of the director's own addresses: that scan happens off its path.
        match header.protocol {
            IpProtocol::TCP | IpProtocol::UDP if header.fragment => {
                if self.snapshot.is_own_address(header.dst) {
                    Class::ToKernel
                } else {
                    Class::Drop(DropReason::Fragment)
                }
            }
            IpProtocol::TCP | IpProtocol::UDP if !header.dst.is_multicast() => {
                match parse_transport(
                    &header,
                    &packet[header.l4.min(packet.len())..header.len.min(packet.len())],
                ) {
                    Ok(transport) => A::flow(Flow {
                        hash: A::plane(&self.planes).conns.hash(&transport.key),
                        header,
                        transport,
                    }),
                    Err(reason) => Class::Drop(reason),
                }
            }
            protocol if protocol == A::ICMP => {
                A::classify_icmp(self, &header, &packet[header.l4..header.len])
            }
            _ => Class::ToKernel,
        }
    }

    /// Finishes a frame that waited (after [`Verdict::AwaitNeighbour`]) for
    /// `next_hop` to resolve on `port`.
    pub fn complete<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        next_hop: IpAddr,
        frame: &mut F,
    ) -> Verdict {
        let timeout = self.snapshot.neighbour_timeout;
        let mac = match next_hop {
            IpAddr::V4(address) => self.planes.v4.neighbours.get(now, address, timeout),
            IpAddr::V6(address) => self.planes.v6.neighbours.get(now, address, timeout),
        };
        match mac {
            Some(mac) => {
                EthernetFrame::new_unchecked(frame.as_mut()).set_dst_addr(mac);
                Verdict::Transmit { port }
            }
            None => self.drop(DropReason::NeighbourUnresolved),
        }
    }

    /// Periodic work between bursts: connection expiry (bounded), a step
    /// of a connection listing if one is asked for (bounded), neighbour
    /// expiry and proactive resolution of real servers.
    pub fn housekeeping(&mut self, now: Instant) {
        while let Some(news) = self.neighbour_exchange.receive(self.worker) {
            match news.address {
                IpAddr::V4(address) => self.adopt_neighbour(now, address, news.mac, news.create),
                IpAddr::V6(address) => self.adopt_neighbour(now, address, news.mac, news.create),
            }
        }
        self.expire::<Ipv4Addr>(now);
        self.expire::<Ipv6Addr>(now);
        self.listing
            .serve(now, &self.planes.v4.conns, &self.planes.v6.conns);
        self.counters.connections.store(
            u64::from(self.planes.v4.conns.len() + self.planes.v6.conns.len()),
            std::sync::atomic::Ordering::Relaxed,
        );
        if now >= self.next_sweep {
            self.next_sweep = now + NEIGHBOUR_SWEEP;
            let timeout = self.snapshot.neighbour_timeout;
            let expired = self.planes.v4.neighbours.expire(now, timeout)
                + self.planes.v6.neighbours.expire(now, timeout);
            for _ in 0..expired {
                self.counters.count(Event::NeighbourExpired);
            }
            self.resolve_real_servers(now);
        }
    }

    fn expire<A: Ip>(&mut self, now: Instant) {
        let counters = &self.counters;
        let plane = A::plane_mut(&mut self.planes);
        let (conns, ports) = (&mut plane.conns, &mut plane.local_ports);
        let expired = conns.expire(now, EXPIRY_BUDGET, |conn| settle(counters, ports, conn));
        for _ in 0..expired {
            counters.count(Event::ConnExpired);
        }
    }

    /// The next packet the director wants generated.
    pub fn take_request(&mut self) -> Option<Request> {
        self.requests.pop()
    }

    /// A next hop that became resolved: frames waiting for it can go.
    pub fn take_resolved(&mut self) -> Option<IpAddr> {
        self.resolved.pop()
    }

    /// Processes frames another worker handed over (see
    /// [`Verdict::HandOff`]) as this worker's own.
    pub fn process_handed_over<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frames: &mut [F],
        verdicts: &mut [Verdict],
    ) {
        self.owns_everything = true;
        self.process_burst(now, port, frames, verdicts);
        self.owns_everything = false;
    }

    /// The worker that owns the connection of a packet with `key`, which
    /// this worker's table does not hold; `None` when it is this worker
    /// (see [`crate::steering`]).
    fn other_owner<A: Ip>(&self, key: &FlowKey<A>) -> Option<u16> {
        if self.workers == 1 || self.owns_everything {
            return None;
        }
        let owner = if self
            .snapshot
            .service(key.protocol, key.dst.to_ip(), key.dst_port)
            .is_some()
        {
            client_owner(key.src.to_ip(), key.src_port, self.workers)
        } else if A::plane(&self.planes).local_ports.serves(key.dst) {
            local_port_owner(key.dst_port, self.workers)
        } else {
            client_owner(key.dst.to_ip(), key.dst_port, self.workers)
        };
        (owner != self.worker).then_some(owner)
    }

    /// A packet that belongs to `worker`: counted, to be handed over.
    fn hand_off(&self, worker: u16) -> Verdict {
        self.counters.count(Event::HandOffSent);
        Verdict::HandOff { worker }
    }

    /// Records a neighbour another worker learned, without publishing it
    /// again.
    fn adopt_neighbour<A: Ip>(&mut self, now: Instant, address: A, mac: MacAddr, create: bool) {
        if A::plane_mut(&mut self.planes)
            .neighbours
            .learn(now, address, mac, create)
        {
            self.counters.count(Event::NeighbourLearned);
            self.resolved.push(address.to_ip());
        }
    }

    fn drop(&self, reason: DropReason) -> Verdict {
        self.counters.count_drop(reason);
        Verdict::Drop(reason)
    }
}

/// What an address family adds to classification: its [`Class`] for a
/// flow, and how it sorts its ICMP.
trait Classify: Ip {
    fn flow(flow: Flow<Self>) -> Class;
    fn classify_icmp(director: &Director, header: &Header<Self>, message: &[u8]) -> Class;
}

impl Classify for Ipv4Addr {
    fn flow(flow: Flow<Self>) -> Class {
        Class::Flow4(flow)
    }

    fn classify_icmp(director: &Director, header: &Header<Self>, message: &[u8]) -> Class {
        let is_error = message
            .first()
            .is_some_and(|&kind| matches!(kind, 3 | 4 | 5 | 11 | 12));
        let snapshot = &director.snapshot;
        if is_error && !snapshot.is_own_address(header.dst) {
            Class::IcmpError4
        } else if snapshot.is_own_address(header.dst) || snapshot.is_vip(IpAddr::V4(header.dst)) {
            if is_error {
                Class::IcmpError4
            } else {
                Class::Local4
            }
        } else {
            Class::ToKernel
        }
    }
}

impl Classify for Ipv6Addr {
    fn flow(flow: Flow<Self>) -> Class {
        Class::Flow6(flow)
    }

    fn classify_icmp(_director: &Director, _header: &Header<Self>, message: &[u8]) -> Class {
        match message.first() {
            // Destination unreachable, packet too big, time exceeded,
            // parameter problem.
            Some(1..=4) => Class::IcmpError6,
            Some(_) => Class::Local6,
            None => Class::Drop(DropReason::IcmpMalformed),
        }
    }
}

#[inline]
fn lookup<A: Ip>(conns: &ConnTable<A>, flow: &Flow<A>) -> Option<(ConnId, Direction)> {
    let found = conns.lookup_hashed(&flow.transport.key, flow.hash);
    if let Some((id, _)) = found {
        conns.prefetch_entry(id);
    }
    found
}

#[inline]
fn recheck<A: Ip>(
    conns: &ConnTable<A>,
    flow: &Flow<A>,
    found: Option<(ConnId, Direction)>,
    stale: bool,
) -> Option<(ConnId, Direction)> {
    if !stale {
        return found;
    }
    found.filter(|&(id, direction)| conns.get(id).key(direction) == flow.transport.key)
}

/// Releases a connection's hold on its service's and real server's
/// connection counts, and on its FULLNAT local port.
fn settle<A: Ip>(counters: &WorkerCounters, ports: &mut LocalPorts<A>, conn: &Conn<A>) {
    unbump(counters.service_open(u32::from(conn.service)), 1);
    let rs = counters.real_server(conn.real_server);
    if conn.counted_inactive {
        unbump(&rs.inactive, 1);
    } else {
        unbump(&rs.active, 1);
    }
    if conn.method == Method::FullNat {
        ports.release(conn.local, conn.local_port);
    }
}

fn parse_transport<A: Ip>(header: &Header<A>, segment: &[u8]) -> Result<Transport<A>, DropReason> {
    let (src_port, dst_port, signal) = if header.protocol == IpProtocol::TCP {
        let tcp = TcpPacket::new_checked(segment).map_err(|_| DropReason::TcpMalformed)?;
        let signal = TcpSignal {
            syn: tcp.syn(),
            fin: tcp.fin(),
            ack: tcp.ack(),
            rst: tcp.rst(),
        };
        (tcp.src_port(), tcp.dst_port(), signal)
    } else {
        let udp = UdpPacket::new_checked(segment).map_err(|_| DropReason::UdpMalformed)?;
        (udp.src_port(), udp.dst_port(), TcpSignal::default())
    };
    Ok(Transport {
        key: FlowKey {
            protocol: header.protocol.0,
            src: header.src,
            src_port,
            dst: header.dst,
            dst_port,
        },
        signal,
    })
}

#[cfg(test)]
mod mode_tests;
#[cfg(test)]
mod persistence_tests;
#[cfg(test)]
mod steering_tests;
#[cfg(test)]
mod tests;
