//! The worker loop: the thin adapter between DPDK queues and the engine.
//!
//! One worker runs per lcore, pinned by EAL, with its own receive and
//! transmit queue on every port. Each round it polls every port for a burst
//! of up to 32 packets, and the rings on which other workers hand it
//! packets of connections it owns (and, on the first worker, the ring of
//! frames the host's kernel sends, see [`crate::exception`]), hands them to
//! the engine (prefetching the next
//! packet's headers while the current one is processed), buffers transmits
//! per port and flushes them at the end of the round (or as soon as a
//! buffer holds a full burst). Every 100 µs it does housekeeping: picks up
//! a new configuration snapshot if one was published, expires connections
//! and neighbours, and checks the stop flag.
//!
//! Nothing in the loop allocates, locks or makes a system call, and the
//! only FFI calls are per burst (rx, tx, free, the TSC read). The one
//! exception is opt-in: with an idle back-off configured, a worker that
//! found nothing for `idle_polls` rounds sleeps briefly, so that rvsd can
//! share a small machine; production keeps pure polling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_bind::{
    Burst, FreeBatch, Mbuf, Mempool, PortId, RingConsumer, RingProducer, RxQueue, TxBuffer,
    TxQueue, tsc,
};

use crate::counters::{DropReason, Event, WorkerCounters, bump};
use crate::engine::{Engine, PacketIo};
use crate::frame::Frame;
use crate::snapshot::SnapshotCell;
use crate::time::{CycleClock, Duration};

/// Interval between housekeeping passes.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_micros(100);

impl Frame for Mbuf {
    fn prepend(&mut self, len: usize) -> bool {
        Mbuf::prepend(self, len).is_some()
    }

    fn adj(&mut self, len: usize) -> bool {
        Mbuf::adj(self, len)
    }

    fn append(&mut self, len: usize) -> bool {
        Mbuf::append(self, len).is_some()
    }

    fn trim(&mut self, len: usize) -> bool {
        Mbuf::trim(self, len)
    }
}

/// When an idle worker may sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleBackoff {
    /// Consecutive empty rounds before sleeping.
    pub polls: u32,
    /// How long to sleep; zero means pure polling.
    pub sleep: std::time::Duration,
}

impl IdleBackoff {
    pub const POLLING: IdleBackoff = IdleBackoff {
        polls: 0,
        sleep: std::time::Duration::ZERO,
    };
}

/// The queues of one port that belong to a worker.
#[derive(Debug)]
pub struct PortQueues {
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// A worker's single-producer single-consumer rings to and from every
/// other worker, for packets of connections the other one owns (see
/// [`crate::steering`]). A handed-over mbuf carries the dataplane number
/// of the port it was received on in its `port` field.
#[derive(Debug, Default)]
pub struct HandOffRings {
    /// Indexed by worker; `None` at this worker's own index.
    pub to: Vec<Option<RingProducer>>,
    pub from: Vec<RingConsumer>,
}

/// A worker's end of the exception path (see [`crate::exception`]):
/// frames carry their dataplane port number in their `port` field both
/// ways.
#[derive(Debug)]
pub struct KernelRings {
    /// Frames for the host, to the exception thread.
    pub to_kernel: RingProducer,
    /// Frames the host sends out of the ports, from the exception thread;
    /// one worker (the first) takes them.
    pub from_kernel: Option<RingConsumer>,
}

/// Everything a worker owns; moved onto its lcore.
#[derive(Debug)]
pub struct Worker {
    /// Indexed by the dataplane's port number.
    pub ports: Vec<PortQueues>,
    pub hand_offs: HandOffRings,
    /// `None` when no port has a kernel twin.
    pub kernel: Option<KernelRings>,
    pub mempool: Mempool,
    pub engine: Engine<Mbuf>,
    pub snapshots: Arc<SnapshotCell>,
    pub stop: Arc<AtomicBool>,
    pub idle: IdleBackoff,
    /// The daemon's clock, shared by all workers and the director's
    /// construction, so that every `Instant` means the same moment.
    pub clock: CycleClock,
}

/// The worker's side of [`PacketIo`]: per-port transmit buffers and a
/// batch of mbufs to free.
struct DpdkIo<'a> {
    tx_buffers: &'a mut [TxBuffer],
    ports: &'a mut [PortQueues],
    /// Per worker, like `HandOffRings::to`.
    hand_off_buffers: &'a mut [TxBuffer],
    hand_off_rings: &'a mut [Option<RingProducer>],
    /// Frames for the host and their ring, when there is an exception path.
    kernel: Option<(&'a mut TxBuffer, &'a mut KernelRings)>,
    free: &'a mut FreeBatch,
    mempool: &'a Mempool,
    counters: &'a WorkerCounters,
}

impl DpdkIo<'_> {
    fn flush(&mut self, port: usize) {
        let (Some(buffer), Some(queues)) =
            (self.tx_buffers.get_mut(port), self.ports.get_mut(port))
        else {
            return;
        };
        let outcome = buffer.flush(&mut queues.tx);
        bump(&self.counters.tx_packets, outcome.sent as u64);
        if outcome.dropped > 0 {
            self.counters
                .count_drops(DropReason::TxQueueFull, outcome.dropped as u64);
        }
    }

    /// Moves what waits for `worker` into its ring; what does not fit is
    /// dropped and counted.
    fn flush_hand_off(&mut self, worker: usize) {
        let (Some(buffer), Some(Some(ring))) = (
            self.hand_off_buffers.get_mut(worker),
            self.hand_off_rings.get_mut(worker),
        ) else {
            return;
        };
        ring.enqueue_burst(buffer);
        let dropped = buffer.clear();
        if dropped > 0 {
            self.counters
                .count_drops(DropReason::HandOffRingFull, dropped as u64);
        }
    }

    /// Moves what waits for the host into the exception ring; what does
    /// not fit is dropped and counted.
    fn flush_to_kernel(&mut self) {
        let Some((buffer, rings)) = &mut self.kernel else {
            return;
        };
        rings.to_kernel.enqueue_burst(buffer);
        let dropped = buffer.clear();
        if dropped > 0 {
            self.counters
                .count_drops(DropReason::ExceptionRingFull, dropped as u64);
        }
    }

    fn flush_all(&mut self) {
        for port in 0..self.tx_buffers.len() {
            if !self.tx_buffers[port].is_empty() {
                self.flush(port);
            }
        }
        for worker in 0..self.hand_off_buffers.len() {
            if !self.hand_off_buffers[worker].is_empty() {
                self.flush_hand_off(worker);
            }
        }
        if self
            .kernel
            .as_ref()
            .is_some_and(|(buffer, _)| !buffer.is_empty())
        {
            self.flush_to_kernel();
        }
        self.free.flush();
    }
}

impl DpdkIo<'_> {
    /// Transmits a burst of what the host sent, if this worker is the one
    /// that takes it; returns how many frames.
    fn send_from_kernel(&mut self, burst: &mut Burst) -> usize {
        let Some(ring) = self
            .kernel
            .as_mut()
            .and_then(|(_, rings)| rings.from_kernel.as_mut())
        else {
            return 0;
        };
        let count = ring.dequeue_burst(burst);
        for mbuf in burst.drain() {
            self.counters.count(Event::FromKernel);
            self.transmit(mbuf.port().0, mbuf);
        }
        count
    }
}

impl PacketIo for DpdkIo<'_> {
    type Frame = Mbuf;

    fn alloc(&mut self) -> Option<Mbuf> {
        self.mempool.alloc()
    }

    #[inline]
    fn transmit(&mut self, port: u16, mbuf: Mbuf) {
        let port = usize::from(port);
        let Some(buffer) = self.tx_buffers.get_mut(port) else {
            self.counters.count_drop(DropReason::NoRoute);
            self.free.push(mbuf);
            return;
        };
        bump(&self.counters.tx_bytes, mbuf.len() as u64);
        if let Err(mbuf) = buffer.push(mbuf) {
            self.flush(port);
            if let Err(mbuf) = self.tx_buffers[port].push(mbuf) {
                // Unreachable after a flush, which empties the buffer.
                self.free.push(mbuf);
            }
        }
    }

    fn to_kernel(&mut self, port: u16, mut mbuf: Mbuf) {
        let Some((buffer, _)) = &mut self.kernel else {
            // Unreachable: only a port with a twin has frames for the
            // kernel, and then every worker has the rings.
            self.free.push(mbuf);
            return;
        };
        mbuf.set_port(PortId(port));
        if let Err(mbuf) = buffer.push(mbuf) {
            self.flush_to_kernel();
            if let Some((buffer, _)) = &mut self.kernel
                && let Err(mbuf) = buffer.push(mbuf)
            {
                // Unreachable after a flush, which empties the buffer.
                self.free.push(mbuf);
            }
        }
    }

    #[inline]
    fn release(&mut self, mbuf: Mbuf) {
        self.free.push(mbuf);
    }

    #[inline]
    fn hand_off(&mut self, worker: u16, port: u16, mut mbuf: Mbuf) {
        let worker = usize::from(worker);
        let Some(buffer) = self.hand_off_buffers.get_mut(worker) else {
            self.counters.count_drop(DropReason::HandOffRingFull);
            self.free.push(mbuf);
            return;
        };
        mbuf.set_port(PortId(port));
        if let Err(mbuf) = buffer.push(mbuf) {
            self.flush_hand_off(worker);
            if let Err(mbuf) = self.hand_off_buffers[worker].push(mbuf) {
                // Unreachable after a flush, which empties the buffer.
                self.free.push(mbuf);
            }
        }
    }
}

impl Worker {
    /// Runs until the stop flag is set; returns 0 (the lcore's exit code).
    pub fn run(mut self) -> i32 {
        let clock = self.clock;
        let counters = Arc::clone(self.engine.director().counters());
        let mut tx_buffers: Vec<TxBuffer> =
            self.ports.iter().map(|_| TxBuffer::default()).collect();
        let mut hand_off_buffers: Vec<TxBuffer> = self
            .hand_offs
            .to
            .iter()
            .map(|_| TxBuffer::default())
            .collect();
        let mut kernel_buffer = TxBuffer::default();
        let mut free = FreeBatch::default();
        let mut burst: Burst = Burst::default();
        let mut next_housekeeping = clock.instant(tsc());
        let mut empty_rounds = 0u32;
        loop {
            let round_start = tsc();
            let now = clock.instant(round_start);
            let mut io = DpdkIo {
                tx_buffers: &mut tx_buffers,
                ports: &mut self.ports,
                hand_off_buffers: &mut hand_off_buffers,
                hand_off_rings: &mut self.hand_offs.to,
                kernel: self
                    .kernel
                    .as_mut()
                    .map(|rings| (&mut kernel_buffer, rings)),
                free: &mut free,
                mempool: &self.mempool,
                counters: &counters,
            };
            let mut received = 0;
            for port in 0..io.ports.len() {
                let count = io.ports[port].rx.burst(&mut burst);
                if count == 0 {
                    continue;
                }
                received += count;
                for i in 0..count {
                    burst.prefetch(i);
                }
                let packets = burst.drain().filter_map(|mbuf| {
                    if mbuf.segments() > 1 {
                        counters.count_drop(DropReason::MultiSegment);
                        // Dropping an mbuf frees it: rare, so one FFI call
                        // here is fine.
                        None
                    } else {
                        Some(mbuf)
                    }
                });
                self.engine
                    .receive_burst(now, port as u16, packets, &mut io);
            }
            for ring in &mut self.hand_offs.from {
                let count = ring.dequeue_burst(&mut burst);
                if count == 0 {
                    continue;
                }
                received += count;
                let mut frames = burst.drain().peekable();
                // Frames from several ports share the ring: a run of one
                // port's frames at a time.
                while let Some(first) = frames.peek() {
                    let port = first.port().0;
                    let run = std::iter::from_fn(|| frames.next_if(|mbuf| mbuf.port().0 == port));
                    self.engine.receive_handed_over(now, port, run, &mut io);
                }
            }
            received += io.send_from_kernel(&mut burst);
            io.flush_all();
            if received > 0 {
                bump(&counters.busy_cycles, tsc().wrapping_sub(round_start));
            }

            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_INTERVAL;
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                if self.snapshots.generation() != self.engine.director().snapshot().generation {
                    // The control thread keeps every published snapshot
                    // until workers let go, so dropping the old one here
                    // never frees memory on the worker.
                    drop(self.engine.adopt(self.snapshots.load(), now));
                }
                self.engine.housekeeping(now, &mut io);
                io.flush_all();
            }

            if received == 0 {
                empty_rounds = empty_rounds.saturating_add(1);
                if !self.idle.sleep.is_zero() && empty_rounds >= self.idle.polls {
                    std::thread::sleep(self.idle.sleep);
                }
            } else {
                empty_rounds = 0;
            }
        }
        0
    }
}
