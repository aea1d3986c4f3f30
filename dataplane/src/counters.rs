//! Per-worker counters: every outcome has a name and a counter.
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer, so an
//! increment is a relaxed load and store (a plain `add` on x86), never a
//! locked read-modify-write. The control thread reads them with relaxed
//! loads and sums the workers on demand; a value it reads may be a few
//! packets old, never torn. Zeroing (`ipvsadm -Z`) is done by the reader
//! keeping a baseline, so the writer stays single.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Adds `n` to a counter that only the calling thread writes.
#[inline(always)]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Subtracts `n` from a counter that only the calling thread writes.
#[inline(always)]
pub fn unbump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_sub(n),
        Ordering::Relaxed,
    );
}

macro_rules! named_counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            pub const COUNT: usize = $name::ALL.len();

            /// Stable snake_case name, used by the CLI and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_counters! {
    /// Why a packet was dropped.
    DropReason {
        /// Shorter than an Ethernet header.
        EthernetTruncated => "ethernet_truncated",
        /// Unicast to a MAC address that is not the port's.
        NotOurMac => "not_our_mac",
        /// 802.1Q or QinQ tagged: rvsd handles no VLANs.
        VlanUnsupported => "vlan_unsupported",
        ArpMalformed => "arp_malformed",
        Ipv4Truncated => "ipv4_truncated",
        Ipv4Malformed => "ipv4_malformed",
        Ipv4BadChecksum => "ipv4_bad_checksum",
        /// Fragments cannot be matched to a connection (no reassembly).
        Fragment => "fragment",
        Ipv6Truncated => "ipv6_truncated",
        Ipv6Malformed => "ipv6_malformed",
        TcpMalformed => "tcp_malformed",
        UdpMalformed => "udp_malformed",
        IcmpMalformed => "icmp_malformed",
        IcmpBadChecksum => "icmp_bad_checksum",
        /// TTL would reach zero; an ICMP time exceeded was sent if possible.
        TtlExceeded => "ttl_exceeded",
        /// A TCP segment other than a SYN for a VIP without a connection.
        NoConnection => "no_connection",
        /// The service has no real server able to take a new connection.
        NoRealServer => "no_real_server",
        /// The real server's address family is not the VIP's. The
        /// control plane refuses such real servers, so only a snapshot
        /// built without its checks gets here.
        FamilyMismatch => "family_mismatch",
        /// The reply tuple of a new NAT connection is already in use.
        NatTupleInUse => "nat_tuple_in_use",
        /// No route towards the destination.
        NoRoute => "no_route",
        /// Too big for the egress link: an ICMP error told the sender the
        /// size that fits, or (IPv4 without DF) rvsd does not fragment.
        FragmentationNeeded => "fragmentation_needed",
        /// Every FULLNAT local port of the service's local addresses is in
        /// use on this worker.
        LocalPortsExhausted => "local_ports_exhausted",
        /// The next hop's MAC address did not resolve in time.
        NeighbourUnresolved => "neighbour_unresolved",
        /// Too many packets were already waiting for address resolution.
        NeighbourQueueFull => "neighbour_queue_full",
        /// The packet was for the host, and its port has no kernel twin.
        NoExceptionPath => "no_exception_path",
        /// Unicast IP to an address that is neither a service's nor the
        /// director's own: the host must not route it (with forwarding on,
        /// it would make the director an open router).
        NotForHost => "not_for_host",
        /// The packet spans several mbufs; headers must be contiguous.
        MultiSegment => "multi_segment",
        /// The transmit queue was full.
        TxQueueFull => "tx_queue_full",
        /// The ring to the worker that owns the packet's connection was
        /// full.
        HandOffRingFull => "hand_off_ring_full",
        /// The ring to the exception path was full (the host's stack is
        /// not keeping up).
        ExceptionRingFull => "exception_ring_full",
        /// No mbuf could be allocated for a packet rvsd generates.
        MbufExhausted => "mbuf_exhausted",
        /// A packet rvsd generates did not fit into an mbuf.
        FrameTooLarge => "frame_too_large",
    }
}

named_counters! {
    /// Things a worker does that are not drops.
    Event {
        ConnCreated => "conn_created",
        ConnExpired => "conn_expired",
        /// A connection was evicted because the table was full.
        ConnEvicted => "conn_evicted",
        /// A SYN reused the tuple of a closing connection (IPVS conn_reuse_mode).
        ConnReused => "conn_reused",
        ArpRequestSent => "arp_request_sent",
        ArpReplySent => "arp_reply_sent",
        IcmpEchoReplySent => "icmp_echo_reply_sent",
        IcmpErrorSent => "icmp_error_sent",
        NeighbourLearned => "neighbour_learned",
        NeighbourExpired => "neighbour_expired",
        /// Packets queued for the exception path of a port with a kernel
        /// twin (on a port without one they count as the drop
        /// `no_exception_path` instead). Like `hand_off_sent`, counted
        /// before the ring: what it has no room for is also counted as
        /// `exception_ring_full`.
        ToKernel => "to_kernel",
        /// Packets the kernel sent out of a port through its exception
        /// path.
        FromKernel => "from_kernel",
        /// A persistence template was placed for a client.
        TemplateCreated => "template_created",
        /// A live template made room for another client's.
        TemplateEvicted => "template_evicted",
        /// Templates could not be placed under contention; the connection
        /// went without one.
        TemplateUnplaced => "template_unplaced",
        SnapshotAdopted => "snapshot_adopted",
        /// A packet of a connection another worker owns was handed to it.
        HandOffSent => "hand_off_sent",
        /// A packet another worker handed over was processed here.
        HandOffReceived => "hand_off_received",
        /// A neighbour learned here did not fit into another worker's
        /// inbox; that worker resolves it itself when it needs it.
        NeighbourNewsLost => "neighbour_news_lost",
        /// A configuration had more static neighbours or FULLNAT local
        /// addresses than a worker's tables hold; the rest were left out.
        ConfigNotApplied => "config_not_applied",
    }
}

/// Traffic counters of a service or a real server (ipvsadm `--stats`).
#[derive(Debug, Default)]
pub struct TrafficCounters {
    pub conns: AtomicU64,
    pub in_packets: AtomicU64,
    pub out_packets: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
}

/// Counters of one real server slot, as seen by one worker.
#[derive(Debug, Default)]
pub struct RealServerCounters {
    pub traffic: TrafficCounters,
    /// Connections in ESTABLISHED (ipvsadm's ActiveConn).
    pub active: AtomicU64,
    /// Other connections: handshaking, closing, and all UDP (InActConn).
    pub inactive: AtomicU64,
    /// The other workers' `active` and `inactive` at the last
    /// [`merge_loads`], written by the control thread only.
    others_active: AtomicU64,
    others_inactive: AtomicU64,
}

/// Gives every worker the other workers' connection counts of the real
/// servers `slots`, so that least-connection schedulers and thresholds
/// weigh the whole director's connections: a worker's own counts are
/// exact, the others' are as old as the last merge. The control thread
/// calls this every [`LOAD_MERGE_INTERVAL_MS`] milliseconds.
pub fn merge_loads(workers: &[&WorkerCounters], slots: impl IntoIterator<Item = u32>) {
    if workers.len() < 2 {
        return;
    }
    // Each worker's counts are read once, so totals and shares agree.
    let mut own: Vec<(u64, u64)> = Vec::with_capacity(workers.len());
    for slot in slots {
        own.clear();
        own.extend(workers.iter().map(|w| {
            let rs = w.real_server(slot);
            (
                rs.active.load(Ordering::Relaxed),
                rs.inactive.load(Ordering::Relaxed),
            )
        }));
        let active: u64 = own.iter().map(|&(a, _)| a).sum();
        let inactive: u64 = own.iter().map(|&(_, i)| i).sum();
        for (worker, &(own_active, own_inactive)) in workers.iter().zip(&own) {
            let rs = worker.real_server(slot);
            rs.others_active
                .store(active - own_active, Ordering::Relaxed);
            rs.others_inactive
                .store(inactive - own_inactive, Ordering::Relaxed);
        }
    }
}

/// How often the control thread merges the workers' connection counts:
/// the bound on how stale another worker's counts are to a scheduler.
pub const LOAD_MERGE_INTERVAL_MS: u64 = 10;

/// A plain copy of [`TrafficCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficTotals {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl TrafficCounters {
    pub fn read(&self) -> TrafficTotals {
        TrafficTotals {
            conns: self.conns.load(Ordering::Relaxed),
            in_packets: self.in_packets.load(Ordering::Relaxed),
            out_packets: self.out_packets.load(Ordering::Relaxed),
            in_bytes: self.in_bytes.load(Ordering::Relaxed),
            out_bytes: self.out_bytes.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::AddAssign for TrafficTotals {
    fn add_assign(&mut self, rhs: TrafficTotals) {
        self.conns = self.conns.wrapping_add(rhs.conns);
        self.in_packets = self.in_packets.wrapping_add(rhs.in_packets);
        self.out_packets = self.out_packets.wrapping_add(rhs.out_packets);
        self.in_bytes = self.in_bytes.wrapping_add(rhs.in_bytes);
        self.out_bytes = self.out_bytes.wrapping_add(rhs.out_bytes);
    }
}

/// Everything one worker counts. Allocated once by the control thread with
/// room for every service and real server slot, then shared with the
/// worker (the only writer).
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Connections currently in the worker's table.
    pub connections: AtomicU64,
    /// Generation of the configuration snapshot the worker runs with.
    pub snapshot_generation: AtomicU64,
    /// TSC cycles spent in polling rounds that received packets: with
    /// `rx_packets`, the cost of a packet.
    pub busy_cycles: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    events: [AtomicU64; Event::COUNT],
    services: Box<[TrafficCounters]>,
    /// Open connections per service slot (to know when a slot has drained).
    service_open: Box<[AtomicU64]>,
    real_servers: Box<[RealServerCounters]>,
}

impl WorkerCounters {
    pub fn new(service_slots: usize, real_server_slots: usize) -> WorkerCounters {
        WorkerCounters {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            snapshot_generation: AtomicU64::new(0),
            busy_cycles: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            // One extra entry each: the sink for out-of-range slots.
            services: (0..=service_slots)
                .map(|_| TrafficCounters::default())
                .collect(),
            service_open: (0..=service_slots).map(|_| AtomicU64::new(0)).collect(),
            real_servers: (0..=real_server_slots)
                .map(|_| RealServerCounters::default())
                .collect(),
        }
    }

    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    #[inline]
    pub fn count_drops(&self, reason: DropReason, n: u64) {
        bump(&self.drops[reason as usize], n);
    }

    #[inline]
    pub fn count(&self, event: Event) {
        bump(&self.events[event as usize], 1);
    }

    #[inline]
    pub fn count_n(&self, event: Event, n: u64) {
        bump(&self.events[event as usize], n);
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    pub fn events(&self, event: Event) -> u64 {
        self.events[event as usize].load(Ordering::Relaxed)
    }

    /// Counters of a service slot. The control plane never hands out slots
    /// beyond the allocation; should one appear anyway, it lands in a sink
    /// entry that nothing reports, rather than panic or corrupt another
    /// slot's figures.
    #[inline]
    pub fn service(&self, slot: u32) -> &TrafficCounters {
        let last = self.services.len() - 1;
        &self.services[(slot as usize).min(last)]
    }

    /// The count of open connections of a service slot.
    #[inline]
    pub fn service_open(&self, slot: u32) -> &AtomicU64 {
        let last = self.service_open.len() - 1;
        &self.service_open[(slot as usize).min(last)]
    }

    /// Open connections of a service slot on this worker.
    pub fn service_connections(&self, slot: u32) -> u64 {
        self.service_open(slot).load(Ordering::Relaxed)
    }

    #[inline]
    pub fn real_server(&self, slot: u32) -> &RealServerCounters {
        let last = self.real_servers.len() - 1;
        &self.real_servers[(slot as usize).min(last)]
    }

    pub fn service_slots(&self) -> usize {
        self.services.len() - 1
    }

    pub fn real_server_slots(&self) -> usize {
        self.real_servers.len() - 1
    }
}

/// The load a worker's schedulers see: its own connections now and the
/// other workers' at the last merge (with one worker, exactly IPVS's
/// counts).
impl crate::sched::Load for WorkerCounters {
    #[inline]
    fn connections(&self, slot: u32) -> crate::sched::Connections {
        let counters = self.real_server(slot);
        let total = |own: &AtomicU64, others: &AtomicU64| {
            own.load(Ordering::Relaxed) + others.load(Ordering::Relaxed)
        };
        crate::sched::Connections {
            active: total(&counters.active, &counters.others_active),
            inactive: total(&counters.inactive, &counters.others_inactive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a merge each worker sees the others' connections beside its
    /// own, and its own changes at once.
    #[test]
    fn merged_loads_add_the_other_workers_counts() {
        use crate::sched::Load;
        let workers: Vec<WorkerCounters> = (0..3).map(|_| WorkerCounters::new(4, 4)).collect();
        for (i, worker) in workers.iter().enumerate() {
            bump(&worker.real_server(1).active, 10 * (i as u64 + 1));
            bump(&worker.real_server(1).inactive, 1);
        }
        let view: Vec<&WorkerCounters> = workers.iter().collect();
        assert_eq!(
            workers[0].connections(1).active,
            10,
            "before a merge: own only"
        );
        merge_loads(&view, [1]);
        for worker in &workers {
            assert_eq!(
                (worker.connections(1).active, worker.connections(1).inactive),
                (60, 3)
            );
        }
        unbump(&workers[0].real_server(1).active, 10);
        assert_eq!(
            workers[0].connections(1).active,
            50,
            "own changes count at once"
        );
        assert_eq!(
            workers[1].connections(1).active,
            60,
            "others' wait for the merge"
        );
        merge_loads(&view, [1]);
        assert_eq!(workers[1].connections(1).active, 50);
        assert_eq!(
            workers[2].connections(2).active,
            0,
            "slots not merged stay apart"
        );
    }

    #[test]
    fn counters_are_named_and_indexed() {
        let counters = WorkerCounters::new(4, 4);
        counters.count_drop(DropReason::NoRoute);
        counters.count_drops(DropReason::NoRoute, 2);
        counters.count(Event::ConnCreated);
        assert_eq!(counters.drops(DropReason::NoRoute), 3);
        assert_eq!(counters.events(Event::ConnCreated), 1);
        assert_eq!(DropReason::NoRoute.name(), "no_route");
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names.len(),
            DropReason::COUNT,
            "drop reason names are unique"
        );
    }

    #[test]
    fn out_of_range_slots_do_not_panic() {
        let counters = WorkerCounters::new(2, 2);
        bump(&counters.real_server(1_000).active, 1);
        assert_eq!(counters.real_server(1).active.load(Ordering::Relaxed), 0);
        assert_eq!(counters.real_server_slots(), 2);
    }
}
