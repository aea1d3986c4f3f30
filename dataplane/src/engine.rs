//! What a worker does around the director, over an abstract packet I/O:
//! hand each received frame to the director and act on its verdict, hold
//! frames whose next hop is still being resolved, generate the packets the
//! director asks for, and run housekeeping.
//!
//! [`PacketIo`] is implemented by the DPDK worker (`crate::worker`) over
//! mbufs and queues, and by in-memory ports in tests, so the whole
//! per-worker logic is exercised without DPDK.

use std::net::IpAddr;
use std::sync::Arc;

use crate::counters::{DropReason, Event, bump};
use crate::director::{BURST, Director, Verdict};
use crate::frame::Frame;
use crate::snapshot::Snapshot;
use crate::time::{Duration, Instant};

/// How long a frame may wait for its next hop's MAC.
pub const NEIGHBOUR_WAIT: Duration = Duration::from_secs(3);
/// Frames a worker holds for unresolved next hops, all together.
pub const WAITING_CAPACITY: usize = 256;

/// A worker's packet I/O, as the engine needs it.
pub trait PacketIo {
    type Frame: Frame;
    /// An empty frame for a packet the director generates; `None` when the
    /// pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Frame>;
    /// Queues a frame for transmission on `port`; the I/O batches.
    fn transmit(&mut self, port: u16, frame: Self::Frame);
    /// Hands a frame to the host's stack through `port`'s exception path,
    /// which the port has ([`Verdict::ToKernel`]); the I/O batches, and
    /// drops and counts what does not fit.
    fn to_kernel(&mut self, port: u16, frame: Self::Frame);
    /// Frees a frame; the I/O may batch.
    fn release(&mut self, frame: Self::Frame);
    /// Hands a frame received on `port` to `worker`, which owns its
    /// connection; the I/O batches, and drops and counts what does not
    /// fit.
    fn hand_off(&mut self, worker: u16, port: u16, frame: Self::Frame);
}

/// Where received frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A port's receive queue.
    Port,
    /// Another worker, which handed them over.
    Worker,
}

/// A frame held until its next hop resolves.
#[derive(Debug)]
struct Held<F> {
    port: u16,
    next_hop: IpAddr,
    since: Instant,
    frame: F,
}

/// One worker's load-balancing logic (see the module docs).
#[derive(Debug)]
pub struct Engine<F> {
    director: Director,
    /// Frames of the burst being handled; capacity [`BURST`], kept.
    batch: Vec<F>,
    waiting: Box<[Option<Held<F>>]>,
    waiting_len: usize,
}

impl<F: Frame> Engine<F> {
    pub fn new(director: Director) -> Engine<F> {
        Engine {
            director,
            batch: Vec::with_capacity(BURST),
            waiting: (0..WAITING_CAPACITY).map(|_| None).collect(),
            waiting_len: 0,
        }
    }

    pub fn director(&self) -> &Director {
        &self.director
    }

    /// Switches configuration; returns the old snapshot for the control
    /// thread to free.
    pub fn adopt(&mut self, snapshot: Arc<Snapshot>, now: Instant) -> Arc<Snapshot> {
        self.director.set_snapshot(snapshot, now)
    }

    /// Handles frames received on `port`, a burst at a time (see
    /// [`Director::process_burst`]).
    #[inline]
    pub fn receive_burst<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        frames: impl Iterator<Item = F>,
        io: &mut Io,
    ) {
        self.handle(now, port, frames, Origin::Port, io);
    }

    /// Handles frames that another worker received on `port` and handed
    /// over (see [`Verdict::HandOff`]).
    #[inline]
    pub fn receive_handed_over<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        frames: impl Iterator<Item = F>,
        io: &mut Io,
    ) {
        self.handle(now, port, frames, Origin::Worker, io);
    }

    #[inline]
    fn handle<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        mut frames: impl Iterator<Item = F>,
        origin: Origin,
        io: &mut Io,
    ) {
        // The batch keeps its capacity across bursts (taking it leaves an
        // empty Vec, which allocates nothing), so this never allocates.
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            batch.clear();
            let counters = self.director.counters();
            for frame in frames.by_ref().take(BURST) {
                match origin {
                    Origin::Port => {
                        bump(&counters.rx_packets, 1);
                        bump(&counters.rx_bytes, frame.as_ref().len() as u64);
                    }
                    Origin::Worker => counters.count(Event::HandOffReceived),
                }
                batch.push(frame);
            }
            if batch.is_empty() {
                break;
            }
            let mut verdicts = [Verdict::Consumed; BURST];
            match origin {
                Origin::Port => self
                    .director
                    .process_burst(now, port, &mut batch, &mut verdicts),
                Origin::Worker => {
                    self.director
                        .process_handed_over(now, port, &mut batch, &mut verdicts)
                }
            }
            for (frame, verdict) in batch.drain(..).zip(verdicts) {
                self.act(now, port, frame, verdict, io);
            }
        }
        self.batch = batch;
        self.side_effects(now, io);
    }

    /// Handles one received frame.
    pub fn receive<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        frame: F,
        io: &mut Io,
    ) {
        self.receive_burst(now, port, std::iter::once(frame), io);
    }

    #[inline]
    fn act<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        frame: F,
        verdict: Verdict,
        io: &mut Io,
    ) {
        match verdict {
            Verdict::Transmit { port } => io.transmit(port, frame),
            Verdict::AwaitNeighbour { port, next_hop } => self.hold(now, port, next_hop, frame, io),
            Verdict::ToKernel => {
                self.director.counters().count(Event::ToKernel);
                io.to_kernel(port, frame);
            }
            Verdict::HandOff { worker } => io.hand_off(worker, port, frame),
            Verdict::Consumed | Verdict::Drop(_) => io.release(frame),
        }
    }

    /// Periodic work between bursts.
    pub fn housekeeping<Io: PacketIo<Frame = F>>(&mut self, now: Instant, io: &mut Io) {
        self.director.housekeeping(now);
        if self.waiting_len > 0 {
            for slot in self.waiting.iter_mut() {
                if let Some(held) =
                    slot.take_if(|held| now.saturating_since(held.since) >= NEIGHBOUR_WAIT)
                {
                    self.waiting_len -= 1;
                    self.director
                        .counters()
                        .count_drop(DropReason::NeighbourUnresolved);
                    io.release(held.frame);
                }
            }
        }
        self.side_effects(now, io);
    }

    /// Frames held for next hops right now.
    pub fn waiting(&self) -> usize {
        self.waiting_len
    }

    fn hold<Io: PacketIo<Frame = F>>(
        &mut self,
        now: Instant,
        port: u16,
        next_hop: IpAddr,
        frame: F,
        io: &mut Io,
    ) {
        let held = Held {
            port,
            next_hop,
            since: now,
            frame,
        };
        match self.waiting.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(held);
                self.waiting_len += 1;
            }
            None => {
                self.director
                    .counters()
                    .count_drop(DropReason::NeighbourQueueFull);
                io.release(held.frame);
            }
        }
    }

    /// Sends frames whose next hop resolved, and packets the director
    /// asked for.
    #[inline]
    fn side_effects<Io: PacketIo<Frame = F>>(&mut self, now: Instant, io: &mut Io) {
        while let Some(resolved) = self.director.take_resolved() {
            if self.waiting_len == 0 {
                continue;
            }
            for slot in self.waiting.iter_mut() {
                if let Some(mut held) = slot.take_if(|held| held.next_hop == resolved) {
                    self.waiting_len -= 1;
                    match self
                        .director
                        .complete(now, held.port, held.next_hop, &mut held.frame)
                    {
                        Verdict::Transmit { port } => io.transmit(port, held.frame),
                        _ => io.release(held.frame),
                    }
                }
            }
        }
        while let Some(request) = self.director.take_request() {
            let Some(mut frame) = io.alloc() else {
                self.director
                    .counters()
                    .count_drop(DropReason::MbufExhausted);
                continue;
            };
            match self.director.write_request(request, &mut frame) {
                Some(port) => io.transmit(port, frame),
                None => io.release(frame),
            }
        }
    }
}
