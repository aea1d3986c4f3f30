//! Single-producer single-consumer rings of mbufs, for handing packets from
//! one lcore to another.

use std::cell::Cell;
use std::ffi::CString;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::batch::{Burst, TxBuffer};
use crate::eal::{self, Eal, SocketId};
use crate::error::{Errno, RingError};
use crate::sys;

/// An `rte_ring` of mbufs with exactly one producer and one consumer
/// (`RING_F_SP_ENQ | RING_F_SC_DEQ`).
///
/// Create it, then [`split`](MbufRing::split) it into its two halves and
/// move each to its thread. The ring is freed, with the mbufs still in it,
/// when both halves are dropped.
pub struct MbufRing {
    inner: Arc<RingInner>,
}

struct RingInner {
    raw: NonNull<sys::rte_ring>,
    name: String,
}

// SAFETY: the ring is only reached through the two halves; the producer
// half only enqueues and the consumer half only dequeues, which an SPSC
// rte_ring allows concurrently; counting is safe from any thread.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl MbufRing {
    /// Creates a ring named `name` (unique among rings, at most 29 bytes)
    /// that holds up to `capacity` mbufs (`RING_F_EXACT_SZ`), in memory of
    /// `socket`.
    ///
    /// # Errors
    ///
    /// [`RingError::Create`] with DPDK's errno.
    #[cold]
    pub fn new(
        _eal: &Eal,
        name: &str,
        capacity: u32,
        socket: SocketId,
    ) -> Result<MbufRing, RingError> {
        let c_name = CString::new(name).map_err(|_| RingError::NulInName(name.to_owned()))?;
        let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ;
        // SAFETY: the EAL is initialised and c_name is a valid C string,
        // which DPDK copies.
        let raw = unsafe { sys::rte_ring_create(c_name.as_ptr(), capacity, socket.0, flags) };
        let Some(raw) = NonNull::new(raw) else {
            return Err(RingError::Create {
                name: name.to_owned(),
                errno: Errno::last(),
            });
        };
        eal::live_acquire();
        Ok(MbufRing {
            inner: Arc::new(RingInner {
                raw,
                name: name.to_owned(),
            }),
        })
    }

    /// The two ends of the ring.
    pub fn split(self) -> (RingProducer, RingConsumer) {
        (
            RingProducer {
                inner: Arc::clone(&self.inner),
                _not_sync: PhantomData,
            },
            RingConsumer {
                inner: self.inner,
                _not_sync: PhantomData,
            },
        )
    }
}

impl RingInner {
    #[inline]
    fn count(&self) -> usize {
        // SAFETY: the ring is valid while RingInner lives; counting reads
        // the head/tail indexes only.
        unsafe { sys::rvs_ring_count(self.raw.as_ptr()) as usize }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        let mut leftovers: Burst<64> = Burst::new();
        loop {
            // SAFETY: the last reference is being dropped, so this is the
            // only user of the ring; dequeue writes at most `max` owned
            // mbufs and returns their count.
            let n = unsafe {
                leftovers.refill(|mbufs, max| {
                    sys::rvs_ring_sc_dequeue_burst(self.raw.as_ptr(), mbufs, u32::from(max)) as u16
                })
            };
            if n == 0 {
                break;
            }
        }
        // SAFETY: the ring is empty and nothing references it any more.
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) };
        eal::live_release();
    }
}

impl fmt::Debug for MbufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufRing")
            .field("name", &self.inner.name)
            .field("count", &self.inner.count())
            .finish()
    }
}

/// The enqueuing half of an [`MbufRing`]: `Send`, neither `Sync` nor
/// `Clone`, so there is one producer.
pub struct RingProducer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RingProducer {
    /// Moves as many mbufs of `buffer` as fit into the ring, from the front,
    /// with one enqueue call, and returns how many moved. Those that did not
    /// fit stay in `buffer` for the caller to retry or drop
    /// ([`TxBuffer::clear`] frees and counts them). Never blocks.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, buffer: &mut TxBuffer<N>) -> usize {
        let ring = self.inner.raw.as_ptr();
        // SAFETY: this handle is the only producer; enqueue takes ownership
        // of the first `n` mbufs it reports and leaves the rest, as
        // `consume_front` requires.
        unsafe {
            buffer.consume_front(|mbufs| {
                sys::rvs_ring_sp_enqueue_burst(ring, mbufs.as_ptr(), mbufs.len() as u32) as usize
            })
        }
    }

    /// Mbufs currently in the ring.
    #[inline]
    pub fn count(&self) -> usize {
        self.inner.count()
    }
}

impl fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RingProducer({:?})", self.inner.name)
    }
}

/// The dequeuing half of an [`MbufRing`]: `Send`, neither `Sync` nor
/// `Clone`, so there is one consumer.
pub struct RingConsumer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RingConsumer {
    /// Frees what `burst` still holds, then moves up to `N` mbufs from the
    /// ring into it with one dequeue call and returns how many. Never
    /// blocks.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let ring = self.inner.raw.as_ptr();
        // SAFETY: this handle is the only consumer; dequeue writes at most
        // `max` owned mbufs and returns their count, as `refill` requires.
        unsafe {
            burst.refill(|mbufs, max| {
                sys::rvs_ring_sc_dequeue_burst(ring, mbufs, u32::from(max)) as u16
            })
        }
    }

    /// Mbufs currently in the ring.
    #[inline]
    pub fn count(&self) -> usize {
        self.inner.count()
    }
}

impl fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RingConsumer({:?})", self.inner.name)
    }
}
