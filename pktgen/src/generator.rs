//! The DPDK side: one thread (the main lcore) drives both ports.
//!
//! The client side originates the profile's frames towards the VIP,
//! paced by the TSC, and handles what comes back; the server side (the
//! real servers' side) counts what arrives and, with `respond`, answers
//! like a minimal server. Both sides answer ARP for their addresses.
//!
//! A run has phases: link up, VIP resolution (ARP, unless the MAC is
//! given), the warm-up round (each flow once, so the director creates its
//! connections; not measured), the measurement, and a short drain so
//! that packets in flight are counted.
//!
//! With several queue pairs per port (`queues`), the client side spreads
//! its frames over the transmit queues by flow ([`Steering`]), as a NIC's
//! RSS would spread them over a forwarder's workers, and both sides poll
//! every receive queue; replies leave on the queue pair they arrived on.
//!
//! The per-packet path follows the project's hot-path rules: bursts of 32
//! in and out, mbufs from a mempool allocated in bulk and freed in bulk,
//! no allocation, lock or system call per packet; the clock is the TSC.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dataplane::wire::{EtherType, EthernetFrame, MacAddr, builder};
use dpdk_bind::{
    Burst, Eal, FreeBatch, Mbuf, Mempool, Port, PortConfig, PortId, QueueId, RxQueue, SocketId,
    TxBuffer, TxQueue, tsc,
};

use crate::exchange::{self, Arp, Event};
use crate::flows::{ClientSpace, FlowCursor, FlowError, Steering};
use crate::histogram::Histogram;
use crate::packet::{Endpoints, Profile, TCP_HEADERS, Template, payload_len, read_stamp};
use crate::summary::{Latency, Loss, SUMMARY_VERSION, SideCounters, Summary, TcpEvents, Warmup};

const BURST: usize = 32;
/// Mbufs in the pool: both ports' rx rings, tx rings and bursts in flight.
const POOL_MBUFS: u32 = 65535;
const POOL_CACHE: u32 = 256;
/// How long packets in flight get to arrive after the last transmission.
const DRAIN: Duration = Duration::from_millis(200);
/// How long the warm-up waits for its last frames to arrive.
const WARMUP_WAIT: Duration = Duration::from_secs(3);
/// Interval between probes of the path to the server side.
const PROBE_RETRY: Duration = Duration::from_millis(10);
/// Interval between ARP requests for the VIP.
const ARP_RETRY: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    /// Frame size with FCS (64..=1518).
    pub frame_size: u16,
    /// Flows per round.
    pub flows: u64,
    pub clients: ClientSpace,
    /// The client side's own address: the clients' gateway, which the
    /// director's replies are routed to.
    pub client_address: Ipv4Addr,
    pub vip: SocketAddrV4,
    /// The director's MAC towards the clients; resolved by ARP if `None`.
    pub vip_mac: Option<MacAddr>,
    /// Addresses the server side answers ARP for.
    pub real_servers: Vec<Ipv4Addr>,
    pub respond: bool,
    /// Queue pairs per port (at least 1); the forwarder's end of a memif
    /// port must have as many.
    pub queues: u16,
    /// How the client side spreads its frames over the queues.
    pub steering: Steering,
    /// Packets per second the client side originates; 0 for as fast as
    /// possible.
    pub rate_pps: u64,
    /// Rate of the warm-up round; 0 for as fast as possible.
    pub warmup_rate_pps: u64,
    pub warmup: bool,
    pub duration: Duration,
    /// One packet in `sample_every` carries a latency stamp.
    pub sample_every: u32,
    pub progress: bool,
    /// How long to wait for links and ARP.
    pub setup_timeout: Duration,
    /// How long the ports stay up after the summary (polled, what
    /// arrives freed) unless `stop` is set first: a forwarder can then
    /// be stopped before its peer disappears.
    pub linger: Duration,
}

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("mempool: {0}")]
    Mempool(#[from] dpdk_bind::MempoolError),
    #[error("port {name}: {error}")]
    Port {
        name: String,
        error: dpdk_bind::PortError,
    },
    #[error("flows: {0}")]
    Flows(#[from] FlowError),
    #[error("the link of {0} did not come up within {1:?} (is the forwarder connected?)")]
    LinkDown(String, Duration),
    #[error(
        "no ARP reply for the VIP {0} within {1:?} (give --vip-mac if the forwarder does not answer ARP)"
    )]
    NoArpReply(Ipv4Addr, Duration),
    #[error(
        "nothing reached the server side within {0:?}: is the forwarder forwarding (services, routes, neighbours)?"
    )]
    NoPath(Duration),
    #[error("the mempool ran dry during setup")]
    NoMbufs,
}

/// The ports to drive, by DPDK device name.
#[derive(Debug, Clone)]
pub struct PortNames {
    pub client: String,
    pub server: Option<String>,
}

/// Runs the generator on the calling thread until the duration is over or
/// `stop` is set, hands the summary to `report`, keeps the ports up for
/// `config.linger` (or until `stop`), and returns the summary.
///
/// # Errors
///
/// Setup failures ([`RunError`]); nothing fails once traffic runs.
pub fn run(
    eal: &Eal,
    config: &Config,
    names: &PortNames,
    stop: &Arc<AtomicBool>,
    report: impl FnOnce(&Summary),
) -> Result<Summary, RunError> {
    let pool = Mempool::new(
        eal,
        "pktgen",
        POOL_MBUFS,
        POOL_CACHE,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )?;
    let queues = config.queues.max(1);
    let client = Side::open(eal, &names.client, &pool, queues)?;
    let server = match &names.server {
        Some(name) => Some(Side::open(eal, name, &pool, queues)?),
        None => None,
    };
    let mut generator = Generator {
        h: Handler {
            config: config.clone(),
            one_way: Histogram::default(),
            round_trip: Histogram::default(),
            tcp: TcpEvents::default(),
            sampler: Sampler::new(config.sample_every),
            next_hop_mac: config.vip_mac,
            data_len: payload_len(config.frame_size, TCP_HEADERS),
            now: tsc(),
        },
        tsc_hz: eal.tsc_hz(),
        pool,
        client,
        server,
        stop: Arc::clone(stop),
    };
    let summary = generator.run(names)?;
    report(&summary);
    generator.linger();
    Ok(summary)
}

/// One port with its queues and what it counted.
struct Side {
    /// The port whose queues these are (for its link state).
    port: Port,
    mac: MacAddr,
    /// Queue pairs, by queue id.
    queues: Vec<QueuePair>,
    burst: Burst<BURST>,
    /// Replies built in place from received frames.
    replies: TxBuffer<BURST>,
    free: FreeBatch<BURST>,
    counters: SideCounters,
}

/// A receive queue and the transmit queue of the same id.
struct QueuePair {
    rx: RxQueue,
    tx: TxQueue,
}

impl Side {
    #[cold]
    fn open(eal: &Eal, name: &str, pool: &Mempool, queues: u16) -> Result<Side, RunError> {
        let named = |error| RunError::Port {
            name: name.to_owned(),
            error,
        };
        let id = PortId::by_name(eal, name).map_err(named)?;
        let settings = PortConfig {
            rx_queues: queues,
            tx_queues: queues,
            rss: false,
            ..PortConfig::default()
        };
        let mut port = Port::configure(eal, id, &settings, pool, SocketId::ANY).map_err(named)?;
        port.start().map_err(named)?;
        // Frames forwarded unchanged (testpmd io) keep the MAC the client
        // side addressed; drivers without the feature (memif) filter
        // nothing anyway, so a refusal is fine.
        let _ = port.set_promiscuous(true);
        let mac = MacAddr(port.mac_address().map_err(named)?);
        let queues = (0..queues)
            .map(|queue| {
                Ok(QueuePair {
                    rx: port.rx_queue(QueueId(queue)).map_err(named)?,
                    tx: port.tx_queue(QueueId(queue)).map_err(named)?,
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        Ok(Side {
            port,
            mac,
            queues,
            burst: Burst::new(),
            replies: TxBuffer::new(),
            free: FreeBatch::new(),
            counters: SideCounters::default(),
        })
    }

    fn link_up(&self) -> bool {
        self.port.link().is_ok_and(|link| link.up)
    }

    /// Sends a frame built outside the hot path (an ARP request).
    #[cold]
    fn send_bytes(&mut self, pool: &Mempool, bytes: &[u8]) -> Result<(), RunError> {
        let mut mbuf = pool.alloc().ok_or(RunError::NoMbufs)?;
        let data = mbuf.append(bytes.len()).ok_or(RunError::NoMbufs)?;
        data.copy_from_slice(bytes);
        let mut out = TxBuffer::<1>::new();
        let _ = out.push(mbuf);
        // Opening the port made queue 0.
        if let Some(queue) = self.queues.first_mut() {
            out.flush(&mut queue.tx);
        }
        Ok(())
    }
}

/// Sends the queued replies and counts them.
#[inline]
fn flush_replies(replies: &mut TxBuffer<BURST>, tx: &mut TxQueue, counters: &mut SideCounters) {
    let outcome = replies.flush(tx);
    counters.tx_packets += outcome.sent as u64;
    counters.tx_refused += outcome.dropped as u64;
}

/// Picks one packet in `every` for a latency stamp.
struct Sampler {
    mask: u64,
    count: u64,
    sequence: u16,
}

impl Sampler {
    fn new(every: u32) -> Sampler {
        Sampler {
            mask: u64::from(every.max(1).next_power_of_two()) - 1,
            count: 0,
            sequence: 0,
        }
    }

    /// The stamp for the next packet, if it is sampled: a non-zero
    /// sequence number and the TSC's low bits.
    #[inline]
    fn next(&mut self, now: u64) -> Option<(u16, u32)> {
        self.count += 1;
        if self.count & self.mask != 0 {
            return None;
        }
        self.sequence = self.sequence.checked_add(1).unwrap_or(1);
        Some((self.sequence, now as u32))
    }
}

/// How the client side originates frames in a phase.
struct Source {
    template: Template,
    cursor: FlowCursor,
    rate_pps: u64,
    /// When pacing started, and frames built since.
    start: u64,
    built: u64,
    /// Built frames the port has not taken yet, per transmit queue.
    pending: Vec<TxBuffer<BURST>>,
    steering: Steering,
    /// Stop after this many frames (one round for the warm-up).
    limit: Option<u64>,
    is_syn: bool,
}

impl Source {
    fn has_pending(&self) -> bool {
        self.pending.iter().any(|pending| !pending.is_empty())
    }
}

struct Generator {
    h: Handler,
    tsc_hz: u64,
    pool: Mempool,
    client: Side,
    server: Option<Side>,
    stop: Arc<AtomicBool>,
}

impl Generator {
    fn run(&mut self, names: &PortNames) -> Result<Summary, RunError> {
        self.wait_for_links(names)?;
        let next_hop = self.resolve_vip()?;
        let endpoints = Endpoints {
            client_mac: self.client.mac,
            next_hop_mac: next_hop,
            vip: self.h.config.vip,
        };
        let profile = self.h.config.profile;
        let round = self.h.config.flows;
        if self.server.is_some() {
            let kind = profile.warmup_kind().unwrap_or(profile.kind());
            let template = Template::new(
                kind,
                &endpoints,
                self.h.config.frame_size,
                self.first_tuple(),
            );
            self.probe(&template)?;
        }
        let warmup = match profile.warmup_kind().filter(|_| self.h.config.warmup) {
            Some(kind) => {
                let template = Template::new(
                    kind,
                    &endpoints,
                    self.h.config.frame_size,
                    self.first_tuple(),
                );
                Some(self.warm_up(template, round)?)
            }
            None => None,
        };

        // The connection profiles walk the whole client space, so that
        // each connection has a tuple the director has not seen lately.
        let limit = if profile.opens_connections() {
            self.h.config.clients.capacity()
        } else {
            round
        };
        let template = Template::new(
            profile.kind(),
            &endpoints,
            self.h.config.frame_size,
            self.first_tuple(),
        );
        let mut source = self.source(template, limit, self.h.config.rate_pps, None)?;
        self.reset_counters();
        let start = tsc();
        let end = start + self.cycles(self.h.config.duration);
        let second = self.tsc_hz;
        let mut next_report = start + second;
        let mut last = Snapshot::take(self);
        let mut iterations = 0u32;
        let mut interrupted = false;
        loop {
            self.h.now = tsc();
            self.originate(&mut source);
            self.poll();
            iterations = iterations.wrapping_add(1);
            // The clock and flags are looked at every 64 iterations, a few
            // microseconds apart at most.
            if iterations.is_multiple_of(64) {
                if self.h.now >= end {
                    break;
                }
                if self.stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break;
                }
                if self.h.now >= next_report {
                    let current = Snapshot::take(self);
                    if self.h.config.progress {
                        eprintln!("{}", current.progress_line(&last, start, self.tsc_hz));
                    }
                    last = current;
                    next_report += second;
                }
            }
        }
        let measured = tsc();
        self.drain(DRAIN);
        Ok(self.summary(start, measured, warmup, interrupted))
    }

    /// Polls gently (what arrives is counted and freed) for the linger
    /// time or until stopped.
    #[cold]
    fn linger(&mut self) {
        let end = tsc() + self.cycles(self.h.config.linger);
        while tsc() < end && !self.stop.load(Ordering::Relaxed) {
            self.h.now = tsc();
            self.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn first_tuple(&self) -> (Ipv4Addr, u16) {
        self.h.config.clients.tuple(0)
    }

    fn source(
        &self,
        template: Template,
        limit: u64,
        rate_pps: u64,
        frames: Option<u64>,
    ) -> Result<Source, RunError> {
        let is_syn = !template.stampable();
        Ok(Source {
            template,
            cursor: self.h.config.clients.cursor(limit)?,
            rate_pps,
            start: tsc(),
            built: 0,
            pending: (0..self.client.queues.len())
                .map(|_| TxBuffer::new())
                .collect(),
            steering: self.h.config.steering,
            limit: frames,
            is_syn,
        })
    }

    fn cycles(&self, duration: Duration) -> u64 {
        (duration.as_secs_f64() * self.tsc_hz as f64) as u64
    }

    /// Polls until both links are up.
    #[cold]
    fn wait_for_links(&mut self, names: &PortNames) -> Result<(), RunError> {
        let deadline = tsc() + self.cycles(self.h.config.setup_timeout);
        let mut reported = false;
        loop {
            let client_up = self.client.link_up();
            let server_up = self.server.as_ref().is_none_or(Side::link_up);
            if client_up && server_up {
                return Ok(());
            }
            if !reported && self.h.config.progress {
                eprintln!("rvs-pktgen: waiting for the links to come up");
                reported = true;
            }
            if tsc() > deadline {
                let name = if client_up {
                    names.server.clone().unwrap_or_default()
                } else {
                    names.client.clone()
                };
                return Err(RunError::LinkDown(name, self.h.config.setup_timeout));
            }
            self.h.now = tsc();
            self.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The director's MAC: given, or asked by ARP.
    #[cold]
    fn resolve_vip(&mut self) -> Result<MacAddr, RunError> {
        if let Some(mac) = self.h.next_hop_mac {
            return Ok(mac);
        }
        let vip = *self.h.config.vip.ip();
        let request = builder::arp_request(self.client.mac, self.h.config.client_address, vip);
        let retry = self.cycles(ARP_RETRY);
        let deadline = tsc() + self.cycles(self.h.config.setup_timeout);
        let mut next_request = 0;
        while self.h.next_hop_mac.is_none() {
            self.h.now = tsc();
            if self.h.now > deadline {
                return Err(RunError::NoArpReply(vip, self.h.config.setup_timeout));
            }
            if self.h.now >= next_request {
                self.client.send_bytes(&self.pool, &request)?;
                next_request = self.h.now + retry;
            }
            self.poll();
        }
        let mac = self.h.next_hop_mac.unwrap_or(MacAddr::BROADCAST);
        if self.h.config.progress {
            eprintln!("rvs-pktgen: VIP {vip} is at {mac}");
        }
        Ok(mac)
    }

    /// Sends the first flow's frame every few milliseconds until one
    /// reaches the server side: the forwarder may take a while after the
    /// link is up to forward (testpmd discards what its queues hold when
    /// it starts forwarding).
    #[cold]
    fn probe(&mut self, template: &Template) -> Result<(), RunError> {
        let mut frame = vec![0; template.len()];
        template.write(&mut frame, self.first_tuple(), None);
        let retry = self.cycles(PROBE_RETRY);
        let deadline = tsc() + self.cycles(self.h.config.setup_timeout);
        let mut next_probe = 0;
        while self.received() == 0 {
            self.h.now = tsc();
            if self.h.now > deadline {
                return Err(RunError::NoPath(self.h.config.setup_timeout));
            }
            if self.h.now >= next_probe {
                self.client.send_bytes(&self.pool, &frame)?;
                next_probe = self.h.now + retry;
            }
            self.poll();
        }
        self.drain(PROBE_RETRY);
        Ok(())
    }

    /// Sends each flow once, then waits until the server side has seen
    /// them (or a few seconds pass); not part of the measurement.
    #[cold]
    fn warm_up(&mut self, template: Template, round: u64) -> Result<Warmup, RunError> {
        let rate = self.h.config.warmup_rate_pps;
        let mut source = self.source(template, round, rate, Some(round))?;
        self.reset_counters();
        let start = tsc();
        while (source.built < round || source.has_pending()) && !self.stop.load(Ordering::Relaxed) {
            self.h.now = tsc();
            self.originate(&mut source);
            self.poll();
        }
        // Until every frame arrived, or nothing more arrives for a while
        // (some were lost), within WARMUP_WAIT.
        let wait_end = tsc() + self.cycles(WARMUP_WAIT);
        let quiet = self.cycles(DRAIN);
        let (mut seen, mut last_change) = (self.received(), tsc());
        while self.received() < round && tsc() < wait_end && !self.stop.load(Ordering::Relaxed) {
            self.h.now = tsc();
            self.poll();
            if self.received() != seen {
                (seen, last_change) = (self.received(), self.h.now);
            } else if self.h.now - last_change > quiet {
                break;
            }
        }
        self.drain(DRAIN);
        let warmup = Warmup {
            sent: self.client.counters.tx_packets,
            received: self.received(),
            seconds: (tsc() - start) as f64 / self.tsc_hz as f64,
        };
        if self.h.config.progress {
            eprintln!(
                "rvs-pktgen: warm-up sent {} received {} in {:.2} s",
                warmup.sent, warmup.received, warmup.seconds
            );
        }
        Ok(warmup)
    }

    /// What the far end received: the server side, or without one the
    /// client side's replies.
    fn received(&self) -> u64 {
        match &self.server {
            Some(server) => server.counters.rx_packets,
            None => self.client.counters.rx_packets,
        }
    }

    /// Polls without originating anything for `duration`.
    fn drain(&mut self, duration: Duration) {
        let end = tsc() + self.cycles(duration);
        while tsc() < end {
            self.h.now = tsc();
            self.poll();
        }
    }

    fn reset_counters(&mut self) {
        self.client.counters = SideCounters::default();
        if let Some(server) = &mut self.server {
            server.counters = SideCounters::default();
        }
        self.h.tcp = TcpEvents::default();
        self.h.one_way = Histogram::default();
        self.h.round_trip = Histogram::default();
    }

    /// Builds and sends up to a burst of the source's frames, as the rate
    /// allows. Frames the port refuses (a full ring) stay queued, in order,
    /// and go first next time: nothing is rebuilt and no flow skipped.
    /// With several queues nothing new is built until every queue took
    /// its share, so the slowest queue sets the pace (as the single queue
    /// does).
    #[inline]
    fn originate(&mut self, source: &mut Source) {
        if source.has_pending() {
            self.transmit(source);
            if source.has_pending() {
                return;
            }
        }
        let mut count = BURST as u64;
        if source.rate_pps > 0 {
            let elapsed = u128::from(self.h.now.saturating_sub(source.start));
            let due = elapsed * u128::from(source.rate_pps) / u128::from(self.tsc_hz);
            count = count.min((due as u64).saturating_sub(source.built));
        }
        if let Some(limit) = source.limit {
            count = count.min(limit - source.built);
        }
        if count == 0 {
            return;
        }
        let count = count as usize;
        let mut slots: [Option<Mbuf>; BURST] = [const { None }; BURST];
        if !self.pool.alloc_bulk(&mut slots[..count]) {
            return;
        }
        let len = source.template.len();
        let queues = source.pending.len() as u16;
        for slot in &mut slots[..count] {
            let Some(mut mbuf) = slot.take() else {
                continue;
            };
            let Some(data) = mbuf.append(len) else {
                continue;
            };
            let stamp = if source.is_syn {
                None
            } else {
                self.h.sampler.next(self.h.now)
            };
            let tuple = source.cursor.next_tuple();
            source.template.write(data, tuple, stamp);
            let queue = if queues > 1 {
                usize::from(source.steering.queue(tuple, queues))
            } else {
                0
            };
            // Every `pending` was empty and holds BURST >= count; the
            // steering's queue is below `queues`.
            if let Some(pending) = source.pending.get_mut(queue) {
                let _ = pending.push(mbuf);
            }
            source.built += 1;
        }
        self.transmit(source);
    }

    #[inline]
    fn transmit(&mut self, source: &mut Source) {
        for (pending, queue) in source.pending.iter_mut().zip(&mut self.client.queues) {
            let queued = pending.len();
            if queued == 0 {
                continue;
            }
            let sent = pending.send_keeping_rest(&mut queue.tx) as u64;
            let counters = &mut self.client.counters;
            counters.tx_packets += sent;
            counters.tx_bytes += sent * source.template.len() as u64;
            counters.tx_refused += queued as u64 - sent;
            if source.is_syn {
                self.h.tcp.syn_sent += sent;
            }
        }
    }

    /// One receive burst on each side, handled, replies sent.
    #[inline]
    fn poll(&mut self) {
        if let Some(server) = &mut self.server {
            self.h.poll(server, Role::Server);
        }
        self.h.poll(&mut self.client, Role::Client);
    }
}

/// The per-packet logic of both sides and what it measures.
struct Handler {
    config: Config,
    one_way: Histogram,
    round_trip: Histogram,
    tcp: TcpEvents,
    sampler: Sampler,
    next_hop_mac: Option<MacAddr>,
    /// Payload bytes of the handshake's data segment.
    data_len: usize,
    /// The TSC at the start of the current loop iteration.
    now: u64,
}

impl Handler {
    /// One receive burst on each of the side's queues.
    #[inline]
    fn poll(&mut self, side: &mut Side, role: Role) {
        for queue in 0..side.queues.len() {
            self.poll_queue(side, queue, role);
        }
    }

    #[inline]
    fn poll_queue(&mut self, side: &mut Side, queue: usize, role: Role) {
        let Side {
            mac,
            queues,
            burst,
            replies,
            free,
            counters,
            ..
        } = side;
        let Some(QueuePair { rx, tx }) = queues.get_mut(queue) else {
            return;
        };
        if rx.burst(burst) == 0 {
            return;
        }
        burst.prefetch(0);
        let mut packets = burst.drain();
        while let Some(mut mbuf) = packets.next() {
            packets.prefetch(0);
            if !self.handle(role, *mac, counters, &mut mbuf) {
                free.push(mbuf);
                continue;
            }
            if replies.is_full() {
                flush_replies(replies, tx, counters);
            }
            let len = mbuf.len() as u64;
            if replies.push(mbuf).is_ok() {
                counters.tx_bytes += len;
            }
        }
        drop(packets);
        free.flush();
        flush_replies(replies, tx, counters);
    }

    /// Counts a received frame and turns it into the reply in place;
    /// returns whether to send it.
    #[inline]
    fn handle(
        &mut self,
        role: Role,
        own_mac: MacAddr,
        counters: &mut SideCounters,
        mbuf: &mut Mbuf,
    ) -> bool {
        let frame = mbuf.as_ref();
        let ethertype = EthernetFrame::new_checked(frame).map(|e| e.ethertype());
        match ethertype {
            Ok(EtherType::IPV4) => {}
            Ok(EtherType::ARP) => return self.arp(role, own_mac, counters, mbuf.as_mut()),
            _ => {
                counters.rx_other += 1;
                return false;
            }
        }
        counters.rx_packets += 1;
        counters.rx_bytes += frame.len() as u64;
        if let Some(stamp) = read_stamp(frame) {
            let latency = u64::from((self.now as u32).wrapping_sub(stamp));
            match role {
                Role::Server => self.one_way.record(latency),
                Role::Client => self.round_trip.record(latency),
            }
        }
        if let Some(segment) = exchange::tcp_segment(frame) {
            let (event, next) = match role {
                Role::Server => exchange::server_next(&segment),
                Role::Client => exchange::client_next(self.config.profile, self.data_len, &segment),
            };
            self.count(event);
            let next = match (role, next) {
                (Role::Server, Some(_)) if !self.config.respond => return false,
                (_, Some(next)) => next,
                (_, None) => return false,
            };
            let stamp = if next.payload_len > 0 {
                self.sampler.next(self.now)
            } else {
                None
            };
            return exchange::reply_tcp(mbuf, own_mac, &next, stamp);
        }
        role == Role::Server && self.config.respond && exchange::echo_udp(mbuf.as_mut(), own_mac)
    }

    #[inline]
    fn count(&mut self, event: Event) {
        let counter = match event {
            Event::Syn => &mut self.tcp.syn_received,
            Event::SynAck => &mut self.tcp.syn_ack_received,
            Event::Fin => &mut self.tcp.fin_received,
            Event::FinAck => &mut self.tcp.fin_ack_received,
            Event::Completed => &mut self.tcp.completed,
            Event::Reset => &mut self.tcp.resets,
            Event::Data | Event::Ack => return,
        };
        *counter += 1;
    }

    /// Answers ARP for the side's addresses and learns the VIP's MAC.
    #[cold]
    fn arp(
        &mut self,
        role: Role,
        own_mac: MacAddr,
        counters: &mut SideCounters,
        frame: &mut [u8],
    ) -> bool {
        let config = &self.config;
        let owns = |address: Ipv4Addr| match role {
            Role::Server => config.real_servers.contains(&address),
            Role::Client => {
                address == config.client_address || config.clients.contains_address(address)
            }
        };
        match exchange::reply_arp(frame, own_mac, owns) {
            Arp::Answered => {
                counters.arp_answered += 1;
                true
            }
            Arp::Learned { address, mac } => {
                if role == Role::Client && address == *config.vip.ip() {
                    self.next_hop_mac.get_or_insert(mac);
                }
                false
            }
            Arp::Ignored => false,
        }
    }
}

impl Generator {
    fn summary(&self, start: u64, end: u64, warmup: Option<Warmup>, interrupted: bool) -> Summary {
        let seconds = ((end - start) as f64 / self.tsc_hz as f64).max(1e-9);
        let client = self.client.counters;
        let server = self.server.as_ref().map(|side| side.counters);
        let server_rx = server.map_or(0, |s| s.rx_packets);
        let loss_packets = if server.is_some() {
            client.tx_packets as i64 - server_rx as i64
        } else {
            0
        };
        let connections_per_second = match self.h.config.profile {
            Profile::Syn if server.is_some() => Some(self.h.tcp.syn_received as f64 / seconds),
            Profile::Syn => Some(self.h.tcp.syn_ack_received as f64 / seconds),
            Profile::Handshake => Some(self.h.tcp.completed as f64 / seconds),
            Profile::Udp | Profile::TcpEstablished => None,
        };
        Summary {
            version: SUMMARY_VERSION,
            profile: self.h.config.profile,
            frame_size: self.h.config.frame_size,
            flows: self.h.config.flows,
            rate_limit_pps: self.h.config.rate_pps,
            respond: self.h.config.respond,
            duration_s: seconds,
            tsc_hz: self.tsc_hz,
            client,
            server,
            client_tx_pps: client.tx_packets as f64 / seconds,
            server_rx_pps: server_rx as f64 / seconds,
            client_rx_pps: client.rx_packets as f64 / seconds,
            loss: Loss {
                packets: loss_packets,
                ratio: loss_packets as f64 / client.tx_packets.max(1) as f64,
            },
            tcp: self.h.tcp,
            connections_per_second,
            latency: Latency {
                one_way: self.h.one_way.summary(self.tsc_hz),
                round_trip: self.h.round_trip.summary(self.tsc_hz),
            },
            warmup,
            interrupted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// Counters at one instant, for the per-second progress lines.
struct Snapshot {
    at: u64,
    client_tx: u64,
    client_rx: u64,
    server_rx: u64,
    connections: u64,
}

impl Snapshot {
    fn take(generator: &Generator) -> Snapshot {
        Snapshot {
            at: tsc(),
            client_tx: generator.client.counters.tx_packets,
            client_rx: generator.client.counters.rx_packets,
            server_rx: generator.received(),
            connections: generator.h.tcp.completed + generator.h.tcp.syn_received,
        }
    }

    fn progress_line(&self, last: &Snapshot, start: u64, tsc_hz: u64) -> String {
        let seconds = (self.at - last.at) as f64 / tsc_hz as f64;
        let rate = |now: u64, then: u64| (now - then) as f64 / seconds.max(1e-9) / 1e6;
        let sent = self.client_tx - last.client_tx;
        let received = self.server_rx - last.server_rx;
        let loss = (sent as f64 - received as f64) / sent.max(1) as f64 * 100.0;
        format!(
            "[{:>4.0}s] tx {:>7.3} Mpps  rx {:>7.3} Mpps  loss {:>6.2}%  replies {:>7.3} Mpps  conn {:>7.3} M/s",
            (self.at - start) as f64 / tsc_hz as f64,
            rate(self.client_tx, last.client_tx),
            rate(self.server_rx, last.server_rx),
            loss,
            rate(self.client_rx, last.client_rx),
            rate(self.connections, last.connections),
        )
    }
}
