//! Safe bindings to the system DPDK (>= 22.11) for rvs: the only crate of
//! the workspace with `unsafe` code and FFI.
//!
//! The bindgen output stays private; the C shim (`shim/shim.c`) exports
//! the DPDK `static inline` fast-path functions (rx/tx burst, mbuf
//! alloc/free, ring enqueue/dequeue, `rte_lcore_id`, `rte_errno`) as real
//! symbols. Everything public is safe.
//!
//! # Safety model
//!
//! Each type upholds one invariant, so that safe code cannot break DPDK's
//! rules:
//!
//! - **EAL first.** [`Eal::init`] runs `rte_eal_init` once per process and
//!   returns the only [`Eal`] token. Every constructor that touches DPDK
//!   state takes `&Eal` ([`Mempool::new`], [`Port::configure`],
//!   [`MbufRing::new`], [`PortId::by_name`], [`Eal::launch_on`]), so no DPDK
//!   object exists before the EAL. [`Eal::cleanup`] consumes the token and
//!   runs only when no DPDK object and no mbuf is left.
//! - **An [`Mbuf`] is uniquely owned.** It is in no ring, NIC descriptor or
//!   other value; dropping it frees it. Its byte views (`AsRef<[u8]>`,
//!   `AsMut<[u8]>`) and the `prepend`/`adj`/`append`/`trim` operations read
//!   and write the `rte_mbuf` fields in Rust, keeping
//!   `data_off + data_len <= buf_len`. `Mbuf` is `Send`, not `Sync`.
//! - **Ownership moves with bursts.** [`Burst`] owns what rx or a ring
//!   dequeue delivered until it is drained; [`TxBuffer::flush`] forgets the
//!   mbufs the NIC accepted (the NIC owns them) and frees the rest in bulk,
//!   counting them, without waiting for the NIC; [`FreeBatch`] frees in
//!   bulk. None of these allocates, locks or makes more than one FFI call
//!   per burst.
//! - **One thread per queue.** A [`Port`] hands out each [`RxQueue`] and
//!   [`TxQueue`] at most once (a bitmap per direction); the handles are
//!   `Send` but neither `Sync` nor `Clone`. A port can only be stopped or
//!   closed while no queue handle exists, so nobody polls it meanwhile. At
//!   most one `Port` exists per port id.
//! - **One producer, one consumer.** [`MbufRing::split`] yields exactly one
//!   [`RingProducer`] and one [`RingConsumer`] of an SPSC `rte_ring`.
//! - **Pools outlive their mbufs.** A [`Mempool`] is never freed (mbufs may
//!   outlive every handle), see its docs.
//! - **No unwinding into C.** [`Eal::launch_on`] runs the closure under
//!   `catch_unwind`; a panic becomes the result -1 and a line on stderr.
//!
//! # Hot path
//!
//! [`RxQueue::burst`], [`TxBuffer::flush`], [`RingProducer::enqueue_burst`]
//! and [`RingConsumer::dequeue_burst`] make one FFI call per burst; mbuf
//! data access, `prepend`/`adj`/`append`/`trim`, `prefetch` and
//! [`FreeBatch::push`] make none until a batch is full. [`tsc`] reads the
//! time-stamp counter inline on x86_64.
//!
//! # Linking and EAL arguments
//!
//! `build.rs` asks pkg-config for `libdpdk` (>= 22.11) and links the shared
//! libraries it lists. Poll-mode drivers (`net_ring`, `net_null`,
//! `net_af_packet`, ...) and the mempool drivers are not linked: EAL loads
//! them from its plugin directory during `rte_eal_init` (add `-d DIR` for
//! another one).
//!
//! Without hugepages, run EAL with `--no-huge -m MB --no-pci --no-shconf
//! --file-prefix UNIQUE` (and `--vdev=...` for virtual ports); on the
//! project's machines `--in-memory` cannot be combined with `--no-huge`,
//! and `--no-shconf` keeps EAL from leaving its shared config files under
//! `/var/run/dpdk`.
//!
//! # Example
//!
//! ```no_run
//! use dpdk_bind::{Burst, Eal, Mempool, Port, PortConfig, PortId, QueueId, SocketId, TxBuffer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let eal = Eal::init(&["-l", "0", "--no-huge", "-m", "256", "--no-pci", "--vdev=net_ring0"])?;
//! let pool = Mempool::new(&eal, "rx", 4095, 256, Mempool::DEFAULT_DATA_ROOM, SocketId::ANY)?;
//! let id = PortId::by_name(&eal, "net_ring0")?;
//! let mut port = Port::configure(&eal, id, &PortConfig::default(), &pool, SocketId::ANY)?;
//! port.start()?;
//! let (mut rx, mut tx) = (port.rx_queue(QueueId(0))?, port.tx_queue(QueueId(0))?);
//! let (mut burst, mut out) = (Burst::<32>::new(), TxBuffer::<32>::new());
//! rx.burst(&mut burst);
//! for packet in burst.drain() {
//!     if let Err(packet) = out.push(packet) {
//!         drop(packet); // buffer full
//!     }
//! }
//! let outcome = out.flush(&mut tx);
//! println!("sent {} dropped {}", outcome.sent, outcome.dropped);
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod batch;
mod cache;
mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;
mod sys;

pub use batch::{Burst, Drain, FreeBatch, TxBuffer, TxOutcome};
pub use cache::{advise_huge_pages, prefetch};
pub use eal::{Eal, LcoreId, SocketId, WorkerLcores, current_lcore, tsc};
pub use error::{EalError, Errno, LaunchError, MempoolError, PortError, RingError};
pub use lcore::LcoreHandle;
pub use mbuf::{Mbuf, RxChecksum};
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortId, PortInfo, PortStats, QueueId, RxQueue, TxQueue};
pub use ring::{MbufRing, RingConsumer, RingProducer};
