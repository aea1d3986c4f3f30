//! The load-balancing core of one worker: a frame and the current time in,
//! a [`Verdict`] out.
//!
//! The director parses each frame in place, answers ARP and ICMP echo for
//! the director's addresses and VIPs, finds the frame's connection (or
//! schedules a new one), rewrites it for the connection's forwarding method
//! and fills in the Ethernet addresses of the next hop. It never calls
//! DPDK, never reads a clock and never allocates after construction; the
//! worker (`crate::worker`) moves frames between the NIC and this core.
//!
//! Side requests that need a fresh buffer (ARP probes for next hops) are
//! queued in a small fixed outbox that the caller drains with
//! [`Director::take_request`] and fulfils with [`Director::write_request`].

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::conn::{
    Conn, ConnId, ConnState, ConnTable, Direction, FlowKey, HashSeed, InsertError, Method,
    TcpSignal, tcp_transition,
};
use crate::counters::{DropReason, Event, WorkerCounters, bump, unbump};
use crate::frame::Frame;
use crate::neighbour::{NeighbourTable, Resolution};
use crate::sched::{PickInput, SchedulerState};
use crate::snapshot::Snapshot;
use crate::time::{Duration, Instant};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, Error as WireError, EtherType, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, UdpPacket,
};

const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// ICMP errors quote as much of the offending packet as fits in 576 bytes
/// (RFC 1812, 4.3.2.3).
const ICMP_ERROR_MAX: usize = 576;
const DEFAULT_TTL: u8 = 64;
/// ICMP destination-unreachable code "port unreachable".
const PORT_UNREACHABLE: u8 = 3;
/// ICMP errors a worker may send per second (as Linux's icmp_ratelimit).
const ICMP_ERRORS_PER_SECOND: u32 = 1000;
/// Connection-table work per housekeeping pass (see `ConnTable::expire`).
const EXPIRY_BUDGET: usize = 1024;
/// Interval of neighbour-table sweeps and proactive resolution.
const NEIGHBOUR_SWEEP: Duration = Duration::from_secs(1);
const OUTBOX_CAPACITY: usize = 64;

/// What to do with a frame after [`Director::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame is complete: send it on `port`.
    Transmit { port: u16 },
    /// Complete except for the next hop's MAC: hold it until `next_hop`
    /// resolves, then call [`Director::complete`].
    AwaitNeighbour { port: u16, next_hop: Ipv4Addr },
    /// For the host's own network stack (the exception path).
    ToKernel,
    /// Nothing to send (for example an ARP reply that taught a MAC).
    Consumed,
    /// Dropped; already counted under the reason.
    Drop(DropReason),
}

/// A packet the director wants generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Broadcast an ARP request for `target` on `port`.
    ArpProbe { port: u16, target: Ipv4Addr },
}

/// Sizing and identity of a worker's director.
#[derive(Debug, Clone, Copy)]
pub struct DirectorParams {
    /// Connections the table holds.
    pub connections: u32,
    /// Neighbours (next hops) the neighbour table holds.
    pub neighbours: usize,
    /// Key of the connection hash; random per daemon.
    pub hash_seed: HashSeed,
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

/// Per-worker load-balancing state (see the module docs).
#[derive(Debug)]
pub struct Director {
    snapshot: Arc<Snapshot>,
    conns: ConnTable<Ipv4Addr>,
    neighbours: NeighbourTable,
    next_hops: [NextHopMemo; NEXT_HOP_MEMOS],
    schedulers: Box<[SchedulerState]>,
    counters: Arc<WorkerCounters>,
    requests: Outbox<Request, OUTBOX_CAPACITY>,
    resolved: Outbox<Ipv4Addr, OUTBOX_CAPACITY>,
    next_sweep: Instant,
    icmp_window: Instant,
    icmp_sent: u32,
}

/// Remembered answers of the neighbour table, so the next hops a worker
/// uses all the time (a few real servers, a router) cost a compare.
const NEXT_HOP_MEMOS: usize = 16;

/// A neighbour-table answer, valid while the table's generation is the
/// same and until `fresh_until`.
#[derive(Debug, Clone, Copy)]
struct NextHopMemo {
    address: Ipv4Addr,
    mac: MacAddr,
    generation: u64,
    fresh_until: Instant,
}

const NO_MEMO: NextHopMemo = NextHopMemo {
    address: Ipv4Addr::UNSPECIFIED,
    mac: MacAddr::ZERO,
    generation: u64::MAX,
    fresh_until: Instant(0),
};

#[inline]
fn next_hop_slot(address: Ipv4Addr) -> usize {
    (address.to_bits().wrapping_mul(0x9E37_79B1) >> 28) as usize
}

/// Frames [`Director::process_burst`] handles at once.
pub const BURST: usize = 32;

/// What `classify` found a frame to be.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// TCP or UDP to be forwarded or scheduled.
    Flow(Flow),
    Arp,
    /// ICMP for one of the director's addresses or a VIP.
    Echo,
    ToKernel,
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    transport: Transport,
    hash: u64,
}

/// The L4 facts of a TCP or UDP packet that the director acts on.
#[derive(Debug, Clone, Copy)]
struct Transport {
    key: FlowKey<Ipv4Addr>,
    signal: TcpSignal,
}

impl Director {
    pub fn new(
        params: DirectorParams,
        snapshot: Arc<Snapshot>,
        counters: Arc<WorkerCounters>,
        now: Instant,
    ) -> Director {
        let schedulers = (0..counters.service_slots())
            .map(|_| SchedulerState::default())
            .collect();
        counters
            .snapshot_generation
            .store(snapshot.generation, std::sync::atomic::Ordering::Release);
        let mut director = Director {
            conns: ConnTable::new(
                params.connections,
                params.hash_seed,
                &snapshot.timeouts,
                now,
            ),
            neighbours: NeighbourTable::new(params.neighbours),
            next_hops: [NO_MEMO; NEXT_HOP_MEMOS],
            schedulers,
            counters,
            requests: Outbox::new(),
            resolved: Outbox::new(),
            next_sweep: now,
            icmp_window: now,
            icmp_sent: 0,
            snapshot,
        };
        director.pin_static_neighbours(now);
        director
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    pub fn connections(&self) -> &ConnTable<Ipv4Addr> {
        &self.conns
    }

    pub fn neighbours(&self) -> &NeighbourTable {
        &self.neighbours
    }

    /// Switches to a new configuration and returns the old one, so that
    /// the caller can hand it back to the control thread to be freed.
    /// Existing connections are untouched; new timeouts apply as their
    /// deadlines come round.
    pub fn set_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) -> Arc<Snapshot> {
        if snapshot.timeouts != self.snapshot.timeouts {
            self.conns.set_timeouts(&snapshot.timeouts);
        }
        self.counters
            .snapshot_generation
            .store(snapshot.generation, std::sync::atomic::Ordering::Release);
        self.counters.count(Event::SnapshotAdopted);
        // Resolve the new configuration's next hops straight away.
        self.next_sweep = now;
        let old = std::mem::replace(&mut self.snapshot, snapshot);
        self.pin_static_neighbours(now);
        // Routes may have changed: forget which next hops were used.
        self.next_hops = [NO_MEMO; NEXT_HOP_MEMOS];
        old
    }

    /// Installs the snapshot's static neighbours; one that finds no room
    /// in a full neighbour table is counted and resolved by ARP instead.
    fn pin_static_neighbours(&mut self, now: Instant) {
        let neighbours = self
            .snapshot
            .static_neighbours
            .iter()
            .map(|n| (n.address, n.mac));
        if !self.neighbours.pin(now, neighbours) {
            self.counters.count_drop(DropReason::NeighbourUnresolved);
        }
    }

    /// Handles a burst of frames received on `port`, writing a verdict for
    /// each (at most [`BURST`] frames; the rest are left alone).
    ///
    /// Three passes overlap the memory latency of the packets' connection
    /// lookups: classify every frame and hash its tuple, prefetching the
    /// index bucket; probe the index and prefetch the connection entries;
    /// then act on each frame. A connection found in the second pass is
    /// checked again in the third, since an earlier frame of the burst may
    /// have replaced it.
    pub fn process_burst<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frames: &mut [F],
        verdicts: &mut [Verdict],
    ) {
        let count = frames.len().min(verdicts.len()).min(BURST);
        let Some(port_mac) = self.snapshot.ports.get(usize::from(port)).map(|p| p.mac) else {
            for verdict in &mut verdicts[..count] {
                *verdict = self.drop(DropReason::NotOurMac);
            }
            return;
        };
        let mut classes = [Class::ToKernel; BURST];
        for (class, frame) in classes.iter_mut().zip(&frames[..count]) {
            *class = self.classify(port_mac, frame.as_ref());
            if let Class::Flow(flow) = class {
                self.conns.prefetch(flow.hash);
            }
        }
        let mut found = [None; BURST];
        for (found, class) in found.iter_mut().zip(&classes[..count]) {
            if let Class::Flow(flow) = class {
                *found = self.conns.lookup_hashed(&flow.transport.key, flow.hash);
                if let Some((id, _)) = *found {
                    self.conns.prefetch_entry(id);
                }
            }
        }
        let lookups_made_at = self.conns.modifications();
        for i in 0..count {
            // Until an earlier frame of the burst inserts or removes a
            // connection, what the batched lookup found stands as is;
            // afterwards it is checked again.
            let found = match classes[i] {
                Class::Flow(flow) if self.conns.modifications() != lookups_made_at => found[i]
                    .filter(|&(id, direction)| {
                        self.conns.get(id).key(direction) == flow.transport.key
                    }),
                _ => found[i],
            };
            verdicts[i] = self.dispatch(now, port, port_mac, &mut frames[i], classes[i], found);
        }
    }

    /// Handles one received frame (see [`Verdict`]): a burst of one.
    pub fn process<F: Frame>(&mut self, now: Instant, port: u16, frame: &mut F) -> Verdict {
        let mut verdict = [Verdict::Consumed];
        self.process_burst(now, port, std::slice::from_mut(frame), &mut verdict);
        verdict[0]
    }

    /// Validates a frame's headers and sorts it, without side effects
    /// (drops are counted by `dispatch`).
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
            EtherType::ARP => return Class::Arp,
            EtherType::IPV4 if unicast_to_us => {}
            EtherType::IPV6 => return Class::Drop(DropReason::Ipv6Unsupported),
            EtherType::VLAN | EtherType::QINQ => return Class::Drop(DropReason::VlanUnsupported),
            _ => return Class::ToKernel,
        }
        let ip = match Ipv4Packet::new_checked(ethernet.payload()) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Class::Drop(DropReason::Ipv4Truncated),
            Err(_) => return Class::Drop(DropReason::Ipv4Malformed),
        };
        if !ip.verify_checksum() {
            return Class::Drop(DropReason::Ipv4BadChecksum);
        }
        let (source, destination, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
        // Established traffic never asks whether the destination is one
        // of the director's own addresses: that scan happens off its path.
        match protocol {
            IpProtocol::TCP | IpProtocol::UDP if ip.is_fragment() => {
                if self.snapshot.is_own_address(destination) {
                    Class::ToKernel
                } else {
                    Class::Drop(DropReason::Ipv4Fragment)
                }
            }
            IpProtocol::TCP | IpProtocol::UDP => {
                match parse_transport(protocol, source, destination, ip.payload()) {
                    Ok(transport) => Class::Flow(Flow {
                        hash: self.conns.hash(&transport.key),
                        transport,
                    }),
                    Err(reason) => Class::Drop(reason),
                }
            }
            IpProtocol::ICMP
                if self.snapshot.is_own_address(destination)
                    || self.snapshot.is_vip(IpAddr::V4(destination)) =>
            {
                Class::Echo
            }
            _ => Class::ToKernel,
        }
    }

    /// Acts on a classified frame; `found` is the connection of a flow,
    /// if the batched lookup found one that still stands.
    #[inline]
    fn dispatch<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        port_mac: MacAddr,
        frame: &mut F,
        class: Class,
        found: Option<(ConnId, Direction)>,
    ) -> Verdict {
        match class {
            Class::Flow(flow) => self.transport(now, port, frame, flow.transport, found),
            Class::Arp => self.arp(now, port, port_mac, frame.as_mut()),
            Class::Echo => self.icmp_echo(port, port_mac, frame.as_mut()),
            Class::ToKernel => Verdict::ToKernel,
            Class::Drop(reason) => self.drop(reason),
        }
    }

    /// Finishes a frame that waited (after [`Verdict::AwaitNeighbour`]) for
    /// `next_hop` to resolve on `port`.
    pub fn complete<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        next_hop: Ipv4Addr,
        frame: &mut F,
    ) -> Verdict {
        let timeout = self.snapshot.neighbour_timeout;
        match self.neighbours.get(now, next_hop, timeout) {
            Some(mac) => {
                EthernetFrame::new_unchecked(frame.as_mut()).set_dst_addr(mac);
                Verdict::Transmit { port }
            }
            None => self.drop(DropReason::NeighbourUnresolved),
        }
    }

    /// Periodic work between bursts: connection expiry (bounded),
    /// neighbour expiry and proactive resolution of real servers.
    pub fn housekeeping(&mut self, now: Instant) {
        let counters = &self.counters;
        let expired = self
            .conns
            .expire(now, EXPIRY_BUDGET, |conn| settle(counters, conn));
        if expired > 0 {
            counters.connections.store(
                u64::from(self.conns.len()),
                std::sync::atomic::Ordering::Relaxed,
            );
            for _ in 0..expired {
                counters.count(Event::ConnExpired);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + NEIGHBOUR_SWEEP;
            let timeout = self.snapshot.neighbour_timeout;
            for _ in 0..self.neighbours.expire(now, timeout) {
                self.counters.count(Event::NeighbourExpired);
            }
            self.resolve_real_servers(now);
        }
    }

    /// The next packet the director wants generated.
    pub fn take_request(&mut self) -> Option<Request> {
        self.requests.pop()
    }

    /// A next hop that became resolved: frames waiting for it can go.
    pub fn take_resolved(&mut self) -> Option<Ipv4Addr> {
        self.resolved.pop()
    }

    /// Writes the packet for `request` into an empty `frame`; returns the
    /// port to send it on, or `None` (counted) if it could not be built.
    pub fn write_request<F: Frame>(&mut self, request: Request, frame: &mut F) -> Option<u16> {
        match request {
            Request::ArpProbe { port, target } => {
                let port_info = self.snapshot.ports.get(usize::from(port))?;
                let source = self.snapshot.source_address(port, target)?;
                let len = ETHERNET_HEADER + ArpPacket::<&[u8]>::LEN;
                if !frame.append(len) {
                    self.counters.count_drop(DropReason::FrameTooLarge);
                    return None;
                }
                let bytes = frame.as_mut();
                EthernetRepr {
                    src_addr: port_info.mac,
                    dst_addr: MacAddr::BROADCAST,
                    ethertype: EtherType::ARP,
                }
                .emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
                ArpRepr {
                    operation: ArpOperation::REQUEST,
                    source_hardware_addr: port_info.mac,
                    source_protocol_addr: source,
                    target_hardware_addr: MacAddr::ZERO,
                    target_protocol_addr: target,
                }
                .emit(&mut ArpPacket::new_unchecked(&mut bytes[ETHERNET_HEADER..]));
                self.counters.count(Event::ArpRequestSent);
                Some(port)
            }
        }
    }

    // --- ARP ---

    fn arp(&mut self, now: Instant, port: u16, port_mac: MacAddr, bytes: &mut [u8]) -> Verdict {
        let Ok(mut arp) = ArpPacket::new_checked(&mut bytes[ETHERNET_HEADER..]) else {
            return self.drop(DropReason::ArpMalformed);
        };
        let operation = arp.operation();
        let sender_mac = arp.sender_hardware_addr();
        let sender = arp.sender_protocol_addr();
        let target = arp.target_protocol_addr();
        let snapshot = &self.snapshot;
        let for_us = snapshot.is_port_address(port, target) || snapshot.announces_vip(port, target);
        let on_link = snapshot.ports[usize::from(port)]
            .ipv4
            .iter()
            .any(|cidr| cidr.contains(sender));
        // Like Linux: update what we know from any ARP packet, and remember
        // an on-link host that asks for one of our addresses (we will
        // answer it, and will likely talk to it).
        let create = operation == ArpOperation::REQUEST && for_us && on_link;
        if self.neighbours.learn(now, sender, sender_mac, create) {
            self.counters.count(Event::NeighbourLearned);
            self.resolved.push(sender);
        }
        if operation != ArpOperation::REQUEST || !for_us || sender == target {
            return Verdict::Consumed;
        }
        arp.set_operation(ArpOperation::REPLY);
        arp.set_target_hardware_addr(sender_mac);
        arp.set_target_protocol_addr(sender);
        arp.set_sender_hardware_addr(port_mac);
        arp.set_sender_protocol_addr(target);
        send_back(bytes, port_mac);
        self.counters.count(Event::ArpReplySent);
        Verdict::Transmit { port }
    }

    // --- IPv4 ---

    /// A TCP or UDP packet: forward it on its connection, or start one.
    /// `found` is its connection if a batched lookup found it; otherwise
    /// the table is asked again (an earlier frame of the burst may have
    /// created it).
    fn transport<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        transport: Transport,
        found: Option<(ConnId, Direction)>,
    ) -> Verdict {
        let key = transport.key;
        if let Some((id, direction)) = found.or_else(|| self.conns.lookup(&key)) {
            let conn = self.conns.get(id);
            let reopens = direction == Direction::In
                && transport.signal.opens_connection()
                && conn.state.allows_reuse(conn.method.is_input_only());
            if !reopens {
                return self.forward(now, port, frame, id, direction, transport.signal);
            }
            // IPVS conn_reuse_mode: a SYN on the tuple of a closing
            // connection starts a new one, scheduled afresh.
            let old = self.conns.remove(id);
            settle(&self.counters, &old);
            self.counters.count(Event::ConnReused);
        }
        let is_service = self
            .snapshot
            .service(key.protocol, IpAddr::V4(key.dst), key.dst_port)
            .is_some();
        if !is_service {
            // Not load-balanced: the host's own traffic, or traffic the
            // director does not route.
            return Verdict::ToKernel;
        }
        if key.protocol == IpProtocol::TCP.0 && !transport.signal.opens_connection() {
            return self.drop(DropReason::NoConnection);
        }
        self.schedule(now, port, frame, transport)
    }

    /// Schedules a new connection to a real server and forwards its first
    /// packet.
    fn schedule<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        transport: Transport,
    ) -> Verdict {
        let key = transport.key;
        // Borrow the snapshot and the scheduler states as disjoint fields:
        // cloning the Arc here would bounce its count between cores.
        let picked = {
            let Some(service) =
                self.snapshot
                    .service(key.protocol, IpAddr::V4(key.dst), key.dst_port)
            else {
                return Verdict::ToKernel;
            };
            let input = PickInput {
                client: IpAddr::V4(key.src),
                client_port: key.src_port,
                destination: IpAddr::V4(key.dst),
                destination_port: key.dst_port,
                now,
                load: &*self.counters,
            };
            let state = self.schedulers.get_mut(usize::from(service.slot));
            state
                .and_then(|state| state.pick(service, &input))
                .map(|i| (service.slot, service.real_servers[i].clone()))
        };
        let Some((service_slot, real_server)) = picked else {
            // As IPVS: tell the client the port is unreachable.
            self.counters.count_drop(DropReason::NoRealServer);
            return self
                .icmp_error(
                    now,
                    port,
                    frame,
                    Icmpv4Type::DEST_UNREACHABLE,
                    PORT_UNREACHABLE,
                    key.dst,
                )
                .unwrap_or(Verdict::Drop(DropReason::NoRealServer));
        };
        let (IpAddr::V4(real), Method::Nat) = (real_server.address, real_server.method) else {
            return self.drop(DropReason::MethodUnsupported);
        };
        let conn = Conn::new(
            key.protocol,
            Method::Nat,
            (key.src, key.src_port),
            (key.dst, key.dst_port),
            (real, real_server.port),
            (key.src, key.src_port),
            service_slot,
            real_server.slot,
        );
        let id = match self.conns.insert(conn, now) {
            Ok((id, evicted)) => {
                if let Some(evicted) = evicted {
                    settle(&self.counters, &evicted);
                    self.counters.count(Event::ConnEvicted);
                }
                id
            }
            Err(InsertError::OutTupleInUse) => return self.drop(DropReason::NatTupleInUse),
        };
        let counters = &self.counters;
        bump(&counters.service(u32::from(service_slot)).conns, 1);
        bump(counters.service_open(u32::from(service_slot)), 1);
        let rs = counters.real_server(real_server.slot);
        bump(&rs.traffic.conns, 1);
        bump(&rs.inactive, 1);
        counters.count(Event::ConnCreated);
        counters.connections.store(
            u64::from(self.conns.len()),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.forward(now, port, frame, id, Direction::In, transport.signal)
    }

    /// Forwards a packet of a known connection that arrived on `ingress`.
    fn forward<F: Frame>(
        &mut self,
        now: Instant,
        ingress: u16,
        frame: &mut F,
        id: ConnId,
        direction: Direction,
        signal: TcpSignal,
    ) -> Verdict {
        let (ttl, ip_len) = {
            let ip = Ipv4Packet::new_unchecked(&frame.as_ref()[ETHERNET_HEADER..]);
            (ip.ttl(), u64::from(ip.total_len()))
        };
        if ttl <= 1 {
            self.counters.count_drop(DropReason::TtlExceeded);
            let client = Ipv4Packet::new_unchecked(&frame.as_ref()[ETHERNET_HEADER..]).src_addr();
            let Some(router) = self.snapshot.source_address(ingress, client) else {
                return Verdict::Drop(DropReason::TtlExceeded);
            };
            return self
                .icmp_error(now, ingress, frame, Icmpv4Type::TIME_EXCEEDED, 0, router)
                .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
        }
        let conn = *self.conns.get(id);
        self.track(now, id, &conn, direction, signal);
        let counters = &self.counters;
        let rs = &counters.real_server(conn.real_server).traffic;
        let service = counters.service(u32::from(conn.service));
        let bytes = frame.as_mut();
        let towards = match direction {
            Direction::In => {
                for traffic in [rs, service] {
                    bump(&traffic.in_packets, 1);
                    bump(&traffic.in_bytes, ip_len);
                }
                rewrite_destination(bytes, conn.real, conn.real_port);
                conn.real
            }
            Direction::Out => {
                for traffic in [rs, service] {
                    bump(&traffic.out_packets, 1);
                    bump(&traffic.out_bytes, ip_len);
                }
                rewrite_source(bytes, conn.vip, conn.vport);
                conn.client
            }
        };
        self.send_to(now, bytes, towards)
    }

    /// Updates the connection's state and its real server's
    /// active/inactive counts.
    fn track(
        &mut self,
        now: Instant,
        id: ConnId,
        conn: &Conn<Ipv4Addr>,
        direction: Direction,
        signal: TcpSignal,
    ) {
        if conn.protocol != IpProtocol::TCP.0 {
            self.conns.touch(id, now);
            return;
        }
        // Most segments are plain ACKs of established connections: no
        // transition to look up.
        let steady = conn.state == ConnState::TcpEstablished
            && signal.ack
            && !(signal.syn || signal.fin || signal.rst);
        let state = if steady {
            conn.state
        } else {
            tcp_transition(conn.state, direction, conn.method.is_input_only(), signal)
        };
        if state == conn.state {
            self.conns.touch(id, now);
            return;
        }
        self.conns.set_state(id, state, now);
        let inactive = !state.is_active();
        if inactive != conn.counted_inactive {
            let rs = self.counters.real_server(conn.real_server);
            if inactive {
                unbump(&rs.active, 1);
                bump(&rs.inactive, 1);
            } else {
                unbump(&rs.inactive, 1);
                bump(&rs.active, 1);
            }
            self.conns.set_counted_inactive(id, inactive);
        }
    }

    /// Routes a rewritten packet towards `destination` and fills in its
    /// Ethernet addresses.
    fn send_to(&mut self, now: Instant, bytes: &mut [u8], destination: Ipv4Addr) -> Verdict {
        let Some(hop) = self.snapshot.routes.lookup(destination) else {
            return self.drop(DropReason::NoRoute);
        };
        let Some(port_mac) = self
            .snapshot
            .ports
            .get(usize::from(hop.port))
            .map(|p| p.mac)
        else {
            return self.drop(DropReason::NoRoute);
        };
        let mut ethernet = EthernetFrame::new_unchecked(bytes);
        ethernet.set_src_addr(port_mac);
        let generation = self.neighbours.generation();
        let memo = &mut self.next_hops[next_hop_slot(hop.address)];
        if memo.address == hop.address && memo.generation == generation && now < memo.fresh_until {
            ethernet.set_dst_addr(memo.mac);
            return Verdict::Transmit { port: hop.port };
        }
        match self
            .neighbours
            .resolve(now, hop.address, self.snapshot.neighbour_timeout)
        {
            Resolution::Known {
                mac,
                probe,
                fresh_until,
            } => {
                if probe {
                    self.probe(hop.port, hop.address);
                }
                self.next_hops[next_hop_slot(hop.address)] = NextHopMemo {
                    address: hop.address,
                    mac,
                    generation,
                    fresh_until,
                };
                ethernet.set_dst_addr(mac);
                Verdict::Transmit { port: hop.port }
            }
            Resolution::Unknown { probe } => {
                if probe {
                    self.probe(hop.port, hop.address);
                }
                Verdict::AwaitNeighbour {
                    port: hop.port,
                    next_hop: hop.address,
                }
            }
            Resolution::TableFull => self.drop(DropReason::NeighbourUnresolved),
        }
    }

    fn probe(&mut self, port: u16, target: Ipv4Addr) {
        // A full outbox only delays the probe to the next packet or sweep.
        let _ = self.requests.push(Request::ArpProbe { port, target });
    }

    /// Asks for the MACs of every NAT real server's next hop, so that the
    /// first connections do not wait for ARP.
    fn resolve_real_servers(&mut self, now: Instant) {
        let snapshot = Arc::clone(&self.snapshot);
        for real_server in snapshot.services.iter().flat_map(|s| &s.real_servers) {
            let IpAddr::V4(address) = real_server.address else {
                continue;
            };
            let Some(hop) = snapshot.routes.lookup(address) else {
                continue;
            };
            let resolution = self
                .neighbours
                .resolve(now, hop.address, snapshot.neighbour_timeout);
            if let Resolution::Known { probe: true, .. } | Resolution::Unknown { probe: true } =
                resolution
            {
                self.probe(hop.port, hop.address);
            }
        }
    }

    // --- ICMP ---

    /// Answers an echo request to one of the director's addresses or a VIP
    /// in place, back through the port it came from.
    fn icmp_echo(&mut self, port: u16, port_mac: MacAddr, bytes: &mut [u8]) -> Verdict {
        let header_len =
            usize::from(Ipv4Packet::new_unchecked(&bytes[ETHERNET_HEADER..]).header_len());
        let total_len =
            usize::from(Ipv4Packet::new_unchecked(&bytes[ETHERNET_HEADER..]).total_len());
        let icmp_range = ETHERNET_HEADER + header_len..ETHERNET_HEADER + total_len;
        let Ok(mut icmp) = Icmpv4Packet::new_checked(&mut bytes[icmp_range]) else {
            return self.drop(DropReason::IcmpMalformed);
        };
        if icmp.msg_type() != Icmpv4Type::ECHO_REQUEST {
            return Verdict::ToKernel;
        }
        if !icmp.verify_checksum() {
            return self.drop(DropReason::IcmpBadChecksum);
        }
        icmp.set_msg_type(Icmpv4Type::ECHO_REPLY);
        icmp.set_code(0);
        icmp.fill_checksum();
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETHERNET_HEADER..]);
        let (source, destination) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(destination);
        ip.set_dst_addr(source);
        ip.set_ttl(DEFAULT_TTL);
        ip.fill_checksum();
        send_back(bytes, port_mac);
        self.counters.count(Event::IcmpEchoReplySent);
        Verdict::Transmit { port }
    }

    /// Turns the frame into an ICMP error about itself, from `from`, sent
    /// back to its source through the port it came from; `None` when no
    /// error may be sent (rate limit, or a packet that must not draw one).
    fn icmp_error<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        kind: Icmpv4Type,
        code: u8,
        from: Ipv4Addr,
    ) -> Option<Verdict> {
        if now.saturating_since(self.icmp_window) >= Duration::from_secs(1) {
            self.icmp_window = now;
            self.icmp_sent = 0;
        }
        if self.icmp_sent >= ICMP_ERRORS_PER_SECOND {
            return None;
        }
        let port_mac = self.snapshot.ports.get(usize::from(port))?.mac;
        let (client_mac, client, quoted_len) = {
            let bytes = frame.as_ref();
            let ethernet = EthernetFrame::new_unchecked(bytes);
            let ip = Ipv4Packet::new_unchecked(&bytes[ETHERNET_HEADER..]);
            let source = ip.src_addr();
            // Never about broadcasts, unspecified sources or later fragments.
            if ethernet.dst_addr().is_multicast()
                || source.is_broadcast()
                || source.is_multicast()
                || source.is_unspecified()
                || ip.frag_offset() != 0
            {
                return None;
            }
            let quoted =
                usize::from(ip.total_len()).min(ICMP_ERROR_MAX - IPV4_HEADER - ICMP_HEADER);
            (ethernet.src_addr(), source, quoted)
        };
        let excess = frame.as_ref().len() - (ETHERNET_HEADER + quoted_len);
        if !frame.trim(excess) || !frame.prepend(IPV4_HEADER + ICMP_HEADER) {
            self.counters.count_drop(DropReason::FrameTooLarge);
            return None;
        }
        let bytes = frame.as_mut();
        bytes.copy_within(
            IPV4_HEADER + ICMP_HEADER..IPV4_HEADER + ICMP_HEADER + ETHERNET_HEADER,
            0,
        );
        let mut ethernet = EthernetFrame::new_unchecked(&mut bytes[..]);
        ethernet.set_dst_addr(client_mac);
        ethernet.set_src_addr(port_mac);
        ethernet.set_ethertype(EtherType::IPV4);
        Ipv4Repr {
            src_addr: from,
            dst_addr: client,
            protocol: IpProtocol::ICMP,
            payload_len: ICMP_HEADER + quoted_len,
            ttl: DEFAULT_TTL,
            tos: 0,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(
            &mut bytes[ETHERNET_HEADER..],
        ));
        let icmp_start = ETHERNET_HEADER + IPV4_HEADER;
        // The "unused" word of destination-unreachable and time-exceeded.
        bytes[icmp_start + 4..icmp_start + ICMP_HEADER].fill(0);
        let mut icmp = Icmpv4Packet::new_unchecked(&mut bytes[icmp_start..]);
        icmp.set_msg_type(kind);
        icmp.set_code(code);
        icmp.fill_checksum();
        self.icmp_sent += 1;
        self.counters.count(Event::IcmpErrorSent);
        Some(Verdict::Transmit { port })
    }

    fn drop(&self, reason: DropReason) -> Verdict {
        self.counters.count_drop(reason);
        Verdict::Drop(reason)
    }
}

/// Addresses a reply built in place to the frame's sender, from the port
/// it arrived on.
fn send_back(bytes: &mut [u8], port_mac: MacAddr) {
    let mut ethernet = EthernetFrame::new_unchecked(bytes);
    let sender = ethernet.src_addr();
    ethernet.set_dst_addr(sender);
    ethernet.set_src_addr(port_mac);
}

/// Releases a connection's hold on its service's and real server's
/// connection counts.
fn settle(counters: &WorkerCounters, conn: &Conn<Ipv4Addr>) {
    unbump(counters.service_open(u32::from(conn.service)), 1);
    let rs = counters.real_server(conn.real_server);
    if conn.counted_inactive {
        unbump(&rs.inactive, 1);
    } else {
        unbump(&rs.active, 1);
    }
}

fn parse_transport(
    protocol: IpProtocol,
    source: Ipv4Addr,
    destination: Ipv4Addr,
    segment: &[u8],
) -> Result<Transport, DropReason> {
    let (src_port, dst_port, signal) = if protocol == IpProtocol::TCP {
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
            protocol: protocol.0,
            src: source,
            src_port,
            dst: destination,
            dst_port,
        },
        signal,
    })
}

/// NAT towards the real server: destination VIP:vport becomes RIP:rport
/// and the TTL drops by one, with incremental checksum updates. The frame
/// was validated by `classify`.
#[inline]
fn rewrite_destination(bytes: &mut [u8], address: Ipv4Addr, port: u16) {
    let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETHERNET_HEADER..]);
    let old = ip.route_to(address);
    let protocol = ip.protocol();
    let segment = ip.payload_mut();
    if protocol == IpProtocol::TCP {
        TcpPacket::new_unchecked(segment).nat_destination_v4(old, address, port);
    } else {
        UdpPacket::new_unchecked(segment).nat_destination_v4(old, address, port);
    }
}

/// NAT towards the client: source RIP:rport becomes VIP:vport, and the
/// TTL drops by one.
#[inline]
fn rewrite_source(bytes: &mut [u8], address: Ipv4Addr, port: u16) {
    let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETHERNET_HEADER..]);
    let old = ip.route_from(address);
    let protocol = ip.protocol();
    let segment = ip.payload_mut();
    if protocol == IpProtocol::TCP {
        TcpPacket::new_unchecked(segment).nat_source_v4(old, address, port);
    } else {
        UdpPacket::new_unchecked(segment).nat_source_v4(old, address, port);
    }
}

#[cfg(test)]
mod tests;
