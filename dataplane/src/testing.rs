//! In-memory ports and a ready-made NAT topology, for unit tests, property
//! tests, fuzzing and benchmarks of the sans-IO core.
//!
//! ```text
//!  client 198.18.0.2 ── port 0 "wan" 198.18.0.1/24 (VIP 198.18.0.10)
//!                         director
//!  RS1 198.18.1.11  ─┬─ port 1 "lan" 198.18.1.1/24 (DIP)
//!  RS2 198.18.1.12  ─┘
//! ```
//!
//! Services: TCP VIP:80 and UDP VIP:53, NAT to port 8080 and 5353 of both
//! real servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::sync::Arc;

use crate::conn::{HashSeed, Method};
use crate::counters::WorkerCounters;
use crate::director::{Director, DirectorParams};
use crate::engine::{Engine, PacketIo};
use crate::frame::VecFrame;
use crate::listing::ConnMailbox;
use crate::persistence::Templates;
use crate::sched::SchedulerKind;
use crate::snapshot::{PortAddresses, RealServer, Service, Snapshot, SnapshotParts};
use crate::steering::NeighbourExchange;
use crate::time::{Duration, Instant};
use crate::wire::{Ipv4Cidr, Ipv6Cidr, MacAddr, builder};

pub const WAN: u16 = 0;
pub const LAN: u16 = 1;
pub const WAN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const LAN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x0c, 0x02]);
pub const RS_MACS: [MacAddr; 2] = [
    MacAddr([0x02, 0, 0, 0, 0x01, 0x0b]),
    MacAddr([0x02, 0, 0, 0, 0x01, 0x0c]),
];
pub const WAN_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const RIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 11), Ipv4Addr::new(198, 18, 1, 12)];
pub const TCP_VPORT: u16 = 80;
pub const TCP_RPORT: u16 = 8080;
pub const UDP_VPORT: u16 = 53;
pub const UDP_RPORT: u16 = 5353;
pub const SEED: HashSeed = HashSeed([0x5eed_0001, 0x5eed_0002]);
pub const WAN_ADDRESS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const DIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
pub const RIPS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x11),
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x12),
];
/// FULLNAT's local addresses, on the LAN.
pub const LIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
pub const LIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x100);

/// Ports in memory: what the engine sends is collected for inspection.
#[derive(Debug, Default)]
pub struct MemoryIo {
    pub transmitted: Vec<(u16, Vec<u8>)>,
    pub to_kernel: Vec<(u16, Vec<u8>)>,
    pub released: usize,
    /// Frames handed to other workers: (worker, port, frame).
    pub handed_off: Vec<(u16, u16, Vec<u8>)>,
    /// Makes `alloc` fail, as an exhausted mempool does.
    pub exhausted: bool,
}

impl PacketIo for MemoryIo {
    type Frame = VecFrame;

    fn alloc(&mut self) -> Option<VecFrame> {
        (!self.exhausted).then(|| VecFrame::new(&[]))
    }

    fn transmit(&mut self, port: u16, frame: VecFrame) {
        self.transmitted.push((port, frame.to_vec()));
    }

    fn to_kernel(&mut self, port: u16, frame: VecFrame) {
        self.to_kernel.push((port, frame.to_vec()));
    }

    fn release(&mut self, _frame: VecFrame) {
        self.released += 1;
    }

    fn hand_off(&mut self, worker: u16, port: u16, frame: VecFrame) {
        self.handed_off
            .push((worker, port, frame.as_ref().to_vec()));
    }
}

/// The two ports of the topology, with IPv4 and IPv6 addresses.
pub fn ports() -> Vec<PortAddresses> {
    let v4 = |address| Ipv4Cidr::new(address, 24).unwrap_or_else(|_| unreachable!());
    let v6 = |address| Ipv6Cidr::new(address, 64).unwrap_or_else(|_| unreachable!());
    vec![
        PortAddresses {
            mac: WAN_MAC,
            ipv4: vec![v4(WAN_ADDRESS)],
            ipv6: vec![v6(WAN_ADDRESS6)],
            mtu: 1500,
            exception_path: false,
        },
        PortAddresses {
            mac: LAN_MAC,
            ipv4: vec![v4(DIP)],
            ipv6: vec![v6(DIP6)],
            mtu: 1500,
            exception_path: false,
        },
    ]
}

/// A service on `vip:vport` to the two real servers (`rips`) at `rport`,
/// forwarded by `method`; real server slots `base_slot` and the next.
#[allow(clippy::too_many_arguments)]
pub fn service(
    slot: u16,
    protocol: u8,
    vip: IpAddr,
    vport: u16,
    rips: [IpAddr; 2],
    rport: u16,
    method: Method,
    base_slot: u32,
) -> Service {
    let real_servers = rips
        .iter()
        .enumerate()
        .map(|(i, &address)| RealServer {
            slot: base_slot + i as u32,
            address,
            port: rport,
            weight: 1,
            method,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect();
    let mut service = Service::new(
        slot,
        protocol,
        vip,
        vport,
        SchedulerKind::RoundRobin,
        real_servers,
    );
    service.local_addresses = vec![IpAddr::V4(LIP), IpAddr::V6(LIP6)]
        .into_iter()
        .filter(|lip| lip.is_ipv4() == vip.is_ipv4())
        .collect();
    service
}

/// A snapshot of the topology with these services.
pub fn snapshot_of(generation: u64, services: Vec<Service>) -> Snapshot {
    Snapshot::new(SnapshotParts {
        generation,
        ports: ports(),
        services,
        ..SnapshotParts::default()
    })
}

/// A NAT service on the VIP with both real servers at these weights; real
/// server slots are `base_slot` and `base_slot + 1`.
pub fn nat_service(
    slot: u16,
    protocol: u8,
    vport: u16,
    rport: u16,
    kind: SchedulerKind,
    weights: [u32; 2],
    base_slot: u32,
) -> Service {
    let real_servers = RIPS
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (rip, weight))| RealServer {
            slot: base_slot + i as u32,
            address: IpAddr::V4(*rip),
            port: rport,
            weight,
            method: Method::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect();
    Service::new(slot, protocol, IpAddr::V4(VIP), vport, kind, real_servers)
}

/// The topology's snapshot: TCP VIP:80 (slot 0, real server slots 0 and
/// 1) and UDP VIP:53 (slot 1, real server slots 2 and 3).
pub fn snapshot(generation: u64, kind: SchedulerKind, weights: [u32; 2]) -> Snapshot {
    Snapshot::new(SnapshotParts {
        generation,
        ports: ports(),
        services: vec![
            nat_service(0, 6, TCP_VPORT, TCP_RPORT, kind, weights, 0),
            nat_service(1, 17, UDP_VPORT, UDP_RPORT, kind, weights, 2),
        ],
        ..SnapshotParts::default()
    })
}

/// What the workers of one daemon share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub workers: u16,
    pub templates: Arc<Templates>,
    pub neighbour_exchange: Arc<NeighbourExchange>,
}

impl Shared {
    pub fn new(workers: u16) -> Shared {
        Shared {
            workers,
            templates: Arc::new(Templates::new(1024, 7)),
            neighbour_exchange: Arc::new(NeighbourExchange::new(workers)),
        }
    }
}

/// One worker's engine on in-memory ports, with a clock the test drives.
#[derive(Debug)]
pub struct Lab {
    pub engine: Engine<VecFrame>,
    pub io: MemoryIo,
    pub now: Instant,
    pub counters: Arc<WorkerCounters>,
    /// The worker's end of the connection listing.
    pub listing: Arc<ConnMailbox>,
}

impl Lab {
    pub fn new(snapshot: Snapshot, connections: u32) -> Lab {
        Lab::worker(Arc::new(snapshot), connections, 0, &Shared::new(1))
    }

    /// Worker `worker` of `shared`'s workers.
    pub fn worker(snapshot: Arc<Snapshot>, connections: u32, worker: u16, shared: &Shared) -> Lab {
        let counters = Arc::new(WorkerCounters::new(16, 16));
        let listing = Arc::new(ConnMailbox::default());
        let now = Instant(1_000_000_000);
        let director = Director::new(
            DirectorParams {
                connections,
                connections_v6: 1024,
                neighbours: 64,
                hash_seed: SEED,
                worker,
                workers: shared.workers,
                templates: Arc::clone(&shared.templates),
                listing: Arc::clone(&listing),
                neighbour_exchange: Arc::clone(&shared.neighbour_exchange),
            },
            snapshot,
            Arc::clone(&counters),
            now,
        );
        Lab {
            engine: Engine::new(director),
            io: MemoryIo::default(),
            now,
            counters,
            listing,
        }
    }

    /// The NAT topology with round-robin over equal weights.
    pub fn nat() -> Lab {
        Lab::new(snapshot(1, SchedulerKind::RoundRobin, [1, 1]), 4096)
    }

    /// Feeds a frame into `port`; returns what the engine transmitted.
    pub fn receive(&mut self, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
        self.engine
            .receive(self.now, port, VecFrame::new(frame), &mut self.io);
        std::mem::take(&mut self.io.transmitted)
    }

    /// Lets time pass and runs housekeeping; returns what was transmitted.
    pub fn advance(&mut self, by: Duration) -> Vec<(u16, Vec<u8>)> {
        self.now = self.now + by;
        self.engine.housekeeping(self.now, &mut self.io);
        std::mem::take(&mut self.io.transmitted)
    }

    /// Lets the director learn every host's MAC, as ARP traffic would: the
    /// client asks for the VIP and each real server asks for the DIP.
    pub fn learn_neighbours(&mut self) {
        self.receive(WAN, &builder::arp_request(CLIENT_MAC, CLIENT, VIP));
        for (mac, rip) in RS_MACS.iter().zip(RIPS) {
            self.receive(LAN, &builder::arp_request(*mac, rip, DIP));
        }
    }

    /// A TCP segment from the client to the VIP.
    pub fn client_tcp(
        &self,
        client_port: u16,
        flags: crate::wire::TcpFlags,
        payload: &[u8],
    ) -> Vec<u8> {
        builder::tcp_v4_frame(
            CLIENT_MAC,
            WAN_MAC,
            SocketAddrV4::new(CLIENT, client_port),
            SocketAddrV4::new(VIP, TCP_VPORT),
            flags,
            1000,
            0,
            payload,
        )
    }

    /// A TCP segment from real server `rs` back to the client.
    pub fn server_tcp(&self, rs: usize, client_port: u16, flags: crate::wire::TcpFlags) -> Vec<u8> {
        builder::tcp_v4_frame(
            RS_MACS[rs],
            LAN_MAC,
            SocketAddrV4::new(RIPS[rs], TCP_RPORT),
            SocketAddrV4::new(CLIENT, client_port),
            flags,
            5000,
            1001,
            &[],
        )
    }
}

/// Replays established flows through an engine as fast as it takes them,
/// in any forwarding method: the setup shared by the hot-path benchmarks
/// and the profiling example. Clients live in 10.0.0.0/8 behind a router
/// on the WAN side, two real servers sit on the LAN, and every next hop
/// is a static neighbour, so no ARP is involved. Frames are refilled from templates
/// before each burst (as a NIC's DMA fills mbufs) and collected by a sink
/// that keeps them for reuse: nothing is allocated per burst.
pub mod replay {
    use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
    use std::sync::Arc;

    use crate::conn::{HashSeed, Method};
    use crate::counters::WorkerCounters;
    use crate::director::{BURST, Director, DirectorParams};
    use crate::engine::{Engine, PacketIo};
    use crate::frame::VecFrame;
    use crate::listing::ConnMailbox;
    use crate::persistence::Templates;
    use crate::route::Route;
    use crate::sched::SchedulerKind;
    use crate::snapshot::{
        PortAddresses, RealServer, Service, Snapshot, SnapshotParts, StaticNeighbour,
    };
    use crate::steering::NeighbourExchange;
    use crate::time::Instant;
    use crate::wire::{Ipv4Cidr, MacAddr, TcpFlags, builder};

    pub const WAN: u16 = 0;
    const WAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const LAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0xfe, 0xfe]);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const SEED: HashSeed = HashSeed([0x0123_4567, 0x89ab_cdef]);

    /// Collects what the engine sends, for reuse as the next burst's frames.
    #[derive(Debug)]
    pub struct Sink {
        frames: Vec<VecFrame>,
    }

    impl PacketIo for Sink {
        type Frame = VecFrame;

        fn alloc(&mut self) -> Option<VecFrame> {
            Some(self.frames.pop().unwrap_or_else(|| VecFrame::new(&[])))
        }

        fn transmit(&mut self, _port: u16, frame: VecFrame) {
            self.frames.push(frame);
        }

        fn to_kernel(&mut self, _port: u16, frame: VecFrame) {
            self.frames.push(frame);
        }

        fn release(&mut self, frame: VecFrame) {
            self.frames.push(frame);
        }

        fn hand_off(&mut self, _worker: u16, _port: u16, frame: VecFrame) {
            self.frames.push(frame);
        }
    }

    fn cidr(address: [u8; 4], prefix_len: u8) -> Ipv4Cidr {
        Ipv4Cidr::new(Ipv4Addr::from(address), prefix_len).unwrap_or_else(|_| unreachable!())
    }

    /// FULLNAT local addresses on the LAN: as many as a worker serves, for
    /// 8 x 64 512 connections.
    const LIPS: std::ops::Range<u32> = 0xc612_0164..0xc612_016c;

    /// A service on VIP:80 to `real_servers` servers forwarded by
    /// `method`, on port 8080 where the method maps ports.
    pub fn snapshot(real_servers: usize, method: Method) -> Snapshot {
        let port = if method.is_input_only() { 80 } else { 8080 };
        let rips: Vec<Ipv4Addr> = (0..real_servers)
            .map(|i| Ipv4Addr::new(198, 18, 1, 11 + i as u8))
            .collect();
        let mut neighbours = vec![StaticNeighbour {
            address: IpAddr::V4(ROUTER),
            mac: ROUTER_MAC,
        }];
        neighbours.extend(
            rips.iter()
                .enumerate()
                .map(|(i, &address)| StaticNeighbour {
                    address: IpAddr::V4(address),
                    mac: MacAddr([2, 0, 0, 0, 1, i as u8]),
                }),
        );
        let real_servers = rips
            .iter()
            .enumerate()
            .map(|(i, &rip)| RealServer {
                slot: i as u32,
                address: IpAddr::V4(rip),
                port,
                weight: 1,
                method,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect();
        let mut service = Service::new(
            0,
            6,
            IpAddr::V4(VIP),
            80,
            SchedulerKind::RoundRobin,
            real_servers,
        );
        service.local_addresses = LIPS.map(|lip| IpAddr::V4(Ipv4Addr::from(lip))).collect();
        Snapshot::new(SnapshotParts {
            generation: 1,
            ports: vec![
                PortAddresses::ipv4(WAN_MAC, vec![cidr([198, 18, 0, 1], 24)]),
                PortAddresses::ipv4(LAN_MAC, vec![cidr([198, 18, 1, 1], 24)]),
            ],
            routes4: vec![Route {
                destination: cidr([0, 0, 0, 0], 0),
                gateway: Some(ROUTER),
                port: WAN,
            }],
            neighbours,
            services: vec![service],
            ..SnapshotParts::default()
        })
    }

    /// Flow `i`'s client: 10.a.b.c:port, 50 000 ports per address.
    pub fn client(i: usize) -> SocketAddrV4 {
        let address = 0x0a00_0000 + (i / 50_000) as u32;
        SocketAddrV4::new(Ipv4Addr::from(address), 10_000 + (i % 50_000) as u16)
    }

    /// A segment of flow `i` from its client to the VIP.
    pub fn segment(i: usize, flags: TcpFlags) -> Vec<u8> {
        builder::tcp_v4_frame(
            ROUTER_MAC,
            WAN_MAC,
            client(i),
            SocketAddrV4::new(VIP, 80),
            flags,
            1,
            1,
            &[0; 6],
        )
    }

    /// An engine and the frames it is fed.
    #[derive(Debug)]
    pub struct Replay {
        pub engine: Engine<VecFrame>,
        sink: Sink,
        templates: Vec<Vec<u8>>,
        next: usize,
    }

    impl Replay {
        /// An engine whose table holds `capacity` connections, replaying
        /// `templates` in order to a service of `method`.
        pub fn new(capacity: u32, method: Method, templates: Vec<Vec<u8>>) -> Replay {
            let counters = Arc::new(WorkerCounters::new(16, 64));
            let director = Director::new(
                DirectorParams {
                    connections: capacity,
                    connections_v6: 1024,
                    neighbours: 1024,
                    hash_seed: SEED,
                    worker: 0,
                    workers: 1,
                    templates: Arc::new(Templates::new(1024, 7)),
                    listing: Arc::new(ConnMailbox::default()),
                    neighbour_exchange: Arc::new(NeighbourExchange::new(1)),
                },
                Arc::new(snapshot(2, method)),
                counters,
                Instant(1),
            );
            Replay {
                engine: Engine::new(director),
                sink: Sink {
                    frames: (0..4 * BURST).map(|_| VecFrame::new(&[0; 64])).collect(),
                },
                templates,
                next: 0,
            }
        }

        /// `flows` established connections of `method` (a SYN each,
        /// replayed first), then their ACK segments.
        pub fn established(method: Method, flows: usize, capacity: u32) -> Replay {
            let mut replay = Replay::new(
                capacity,
                method,
                (0..flows).map(|i| segment(i, TcpFlags::SYN)).collect(),
            );
            for _ in 0..flows.div_ceil(BURST) {
                replay.burst(Instant(2));
            }
            replay.templates = (0..flows).map(|i| segment(i, TcpFlags::ACK)).collect();
            replay.next = 0;
            replay
        }

        /// Feeds the next [`BURST`] templates (wrapping) as one burst.
        #[inline]
        pub fn burst(&mut self, now: Instant) {
            let mut frames: [Option<VecFrame>; BURST] = std::array::from_fn(|_| None);
            for slot in &mut frames {
                let mut frame = self.sink.frames.pop().unwrap_or_else(|| VecFrame::new(&[]));
                frame.reset(&self.templates[self.next]);
                self.next = (self.next + 1) % self.templates.len();
                *slot = Some(frame);
            }
            self.engine
                .receive_burst(now, WAN, frames.into_iter().flatten(), &mut self.sink);
        }
    }
}
