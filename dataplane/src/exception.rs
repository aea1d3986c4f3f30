//! The exception path: what the load balancer does not own goes to the
//! host's kernel, and what the kernel sends goes out of the ports.
//!
//! Each port may have a kernel twin, a TAP interface (DPDK's net_tap) with
//! the port's MAC address, MTU and addresses. Workers never touch a twin:
//! a TAP's receive and transmit are system calls, which the hot path must
//! not make. Instead a worker puts frames for the host on its
//! single-producer ring to the exception thread, which writes them to the
//! port's twin; the thread reads what the kernel sends from every twin and
//! puts it on one ring to the first worker, which transmits it on the port
//! (on its own transmit queue, so no queue is shared). Frames carry their
//! dataplane port number in the mbuf's `port` field on both rings.
//!
//! The thread runs on the control side (the main lcore's CPU) and sleeps
//! briefly whenever a round moved nothing: the host's traffic is light
//! (ping, ssh, health checks, metrics), and a sleeping thread costs the
//! machine nothing. Its delay is at most one sleep per direction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dpdk_bind::{Burst, PortId, RingConsumer, RingProducer, RxQueue, TxBuffer, TxQueue};

use crate::counters::bump;

/// How long the thread sleeps after a round that moved nothing.
pub const IDLE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// The exception thread's counters; the workers count what they hand over
/// (`to_kernel`, `from_kernel`, `exception_ring_full`) in their own.
#[derive(Debug, Default)]
pub struct ExceptionCounters {
    /// Frames written to a twin (delivered to the kernel).
    pub to_kernel: AtomicU64,
    /// Frames a twin did not take (its queue was full).
    pub to_kernel_dropped: AtomicU64,
    /// Frames read from a twin (sent by the kernel).
    pub from_kernel: AtomicU64,
    /// Frames the ring to the worker had no room for.
    pub from_kernel_dropped: AtomicU64,
}

/// A port's kernel twin, as the exception thread drives it.
#[derive(Debug)]
pub struct Twin {
    /// The dataplane number of the port this twin stands for.
    pub port: u16,
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// Everything the exception thread owns.
#[derive(Debug)]
pub struct ExceptionPath {
    pub twins: Vec<Twin>,
    /// One ring from each worker.
    pub from_workers: Vec<RingConsumer>,
    /// The ring to the worker that transmits what the kernel sends.
    pub to_worker: RingProducer,
    pub counters: Arc<ExceptionCounters>,
    pub stop: Arc<AtomicBool>,
}

impl ExceptionPath {
    /// Moves frames both ways until the stop flag is set.
    pub fn run(self) {
        let ExceptionPath {
            mut twins,
            mut from_workers,
            mut to_worker,
            counters,
            stop,
        } = self;
        let mut burst: Burst = Burst::default();
        let mut to_twins: Vec<TxBuffer> = twins.iter().map(|_| TxBuffer::default()).collect();
        let mut for_worker: TxBuffer = TxBuffer::default();
        while !stop.load(Ordering::Relaxed) {
            let mut moved = 0;
            for ring in &mut from_workers {
                moved += ring.dequeue_burst(&mut burst);
                for mbuf in burst.drain() {
                    let port = mbuf.port().0;
                    // Workers hand over only frames of ports with a twin.
                    let Some(i) = twins.iter().position(|twin| twin.port == port) else {
                        continue;
                    };
                    if let Err(mbuf) = to_twins[i].push(mbuf) {
                        write_to_twin(&mut twins[i], &mut to_twins[i], &counters);
                        // Room again after the flush; were there none,
                        // dropping the mbuf frees it.
                        drop(to_twins[i].push(mbuf));
                    }
                }
            }
            for (twin, buffer) in twins.iter_mut().zip(&mut to_twins) {
                if !buffer.is_empty() {
                    write_to_twin(twin, buffer, &counters);
                }
                let count = twin.rx.burst(&mut burst);
                if count == 0 {
                    continue;
                }
                moved += count;
                bump(&counters.from_kernel, count as u64);
                for mut mbuf in burst.drain() {
                    mbuf.set_port(PortId(twin.port));
                    // A burst fits the buffer, which is emptied after each.
                    drop(for_worker.push(mbuf));
                }
                to_worker.enqueue_burst(&mut for_worker);
                bump(&counters.from_kernel_dropped, for_worker.clear() as u64);
            }
            if moved == 0 {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }
}

/// Writes what waits for a twin to the kernel; what the twin refuses is
/// freed and counted.
fn write_to_twin(twin: &mut Twin, buffer: &mut TxBuffer, counters: &ExceptionCounters) {
    let outcome = buffer.flush(&mut twin.tx);
    bump(&counters.to_kernel, outcome.sent as u64);
    bump(&counters.to_kernel_dropped, outcome.dropped as u64);
}
