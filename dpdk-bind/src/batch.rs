//! Fixed-size arrays of mbufs for the hot path: receive bursts, transmit
//! buffers and bulk frees. None of them allocates; each makes at most one
//! FFI call per burst.

use std::fmt;
use std::ptr::{self, NonNull};

use crate::mbuf::{Mbuf, prefetch_data};
use crate::port::TxQueue;
use crate::sys;

/// Frees `mbufs` with one `rte_pktmbuf_free_bulk` call.
///
/// # Safety
///
/// Every pointer must be an owned mbuf that is not used afterwards.
#[inline]
unsafe fn free_bulk(mbufs: &mut [*mut sys::rte_mbuf]) {
    if mbufs.is_empty() {
        return;
    }
    // SAFETY: the caller hands over ownership of every mbuf; the length
    // fits an unsigned int because the arrays hold at most u16::MAX.
    unsafe { sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), mbufs.len() as u32) };
}

/// A reusable array of up to `N` received mbufs, filled by
/// [`RxQueue::burst`](crate::RxQueue::burst) or
/// [`RingConsumer::dequeue_burst`](crate::RingConsumer::dequeue_burst).
///
/// Take the packets out with [`drain`](Burst::drain); whatever is not taken
/// is freed, in bulk, when the drain ends, at the next fill or when the
/// burst is dropped. `N` is between 1 and 65535.
///
/// ```no_run
/// # fn demo(rx: &mut dpdk_bind::RxQueue, burst: &mut dpdk_bind::Burst) {
/// rx.burst(burst);
/// burst.prefetch(0);
/// let mut packets = burst.drain();
/// while let Some(packet) = packets.next() {
///     packets.prefetch(0); // the next packet, while this one is processed
///     # drop(packet);
/// }
/// # }
/// ```
pub struct Burst<const N: usize = 32> {
    mbufs: [*mut sys::rte_mbuf; N],
    /// Index of the next mbuf to hand out; `mbufs[head..len]` are owned.
    head: usize,
    len: usize,
}

// SAFETY: a Burst owns its mbufs exclusively, like a collection of Mbuf.
unsafe impl<const N: usize> Send for Burst<N> {}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u16::MAX as usize,
                "Burst size must be 1..=65535"
            )
        };
        Burst {
            mbufs: [ptr::null_mut(); N],
            head: 0,
            len: 0,
        }
    }

    /// Mbufs not yet taken out.
    #[inline]
    pub fn len(&self) -> usize {
        self.len - self.head
    }

    /// Whether no mbuf is left.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.len
    }

    /// Prefetches the packet data of the `i`-th mbuf not yet taken out (0 is
    /// the next one [`drain`](Burst::drain) yields); does nothing past the
    /// end.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        if let Some(&raw) = self.mbufs[self.head..self.len].get(i)
            && let Some(raw) = NonNull::new(raw)
        {
            prefetch_data(raw);
        }
    }

    /// Hands out the mbufs in order; those left when the iterator is
    /// dropped are freed.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, N> {
        Drain { burst: self }
    }

    /// Frees the mbufs not taken out, with one bulk call.
    #[inline]
    pub fn clear(&mut self) {
        let (head, len) = (self.head, self.len);
        self.head = 0;
        self.len = 0;
        // SAFETY: mbufs[head..len] are owned and, with head/len reset, no
        // longer reachable from the burst.
        unsafe { free_bulk(&mut self.mbufs[head..len]) };
    }

    /// Frees what is left, then lets `fill` store up to `N` mbufs at the
    /// start of the array and return how many it stored.
    ///
    /// # Safety
    ///
    /// `fill` must write exactly as many owned, valid mbufs as it returns
    /// (at most `N`) to the front of the array it is given.
    #[inline]
    pub(crate) unsafe fn refill(
        &mut self,
        fill: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> usize {
        self.clear();
        let n = usize::from(fill(self.mbufs.as_mut_ptr(), N as u16)).min(N);
        self.len = n;
        n
    }
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst")
            .field("capacity", &N)
            .field("len", &self.len())
            .finish()
    }
}

/// Iterator over the mbufs of a [`Burst`], from [`Burst::drain`].
pub struct Drain<'a, const N: usize = 32> {
    burst: &'a mut Burst<N>,
}

impl<const N: usize> Drain<'_, N> {
    /// Prefetches the packet data of the `i`-th mbuf not yet yielded (0 is
    /// the one the next `next()` returns).
    #[inline]
    pub fn prefetch(&self, i: usize) {
        self.burst.prefetch(i);
    }
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        let burst = &mut *self.burst;
        if burst.head == burst.len {
            return None;
        }
        let raw = burst.mbufs[burst.head];
        burst.head += 1;
        // SAFETY: mbufs[head] was owned by the burst and, with head moved
        // past it, is owned by the returned Mbuf alone. Fillers never store
        // NULL in the owned range.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.burst.len();
        (len, Some(len))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        self.burst.clear();
    }
}

impl<const N: usize> fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.burst.len())
            .finish()
    }
}

/// What a [`TxBuffer::flush`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Mbufs the NIC accepted (it owns them now).
    pub sent: usize,
    /// Mbufs the NIC refused, which were freed.
    pub dropped: usize,
}

/// Up to `N` owned mbufs waiting to be sent on one tx queue (or enqueued on
/// a ring with [`RingProducer::enqueue_burst`](crate::RingProducer::enqueue_burst)).
///
/// [`flush`](TxBuffer::flush) makes one `rte_eth_tx_burst` call: the mbufs
/// the NIC accepted now belong to it and are forgotten, the others are freed
/// in bulk and counted in [`TxOutcome::dropped`]. It never waits for the
/// NIC. Mbufs still buffered when the `TxBuffer` is dropped are freed.
/// `N` is between 1 and 65535.
pub struct TxBuffer<const N: usize = 32> {
    mbufs: [*mut sys::rte_mbuf; N],
    /// `mbufs[..len]` are owned.
    len: usize,
}

// SAFETY: a TxBuffer owns its mbufs exclusively, like a collection of Mbuf.
unsafe impl<const N: usize> Send for TxBuffer<N> {}

impl<const N: usize> TxBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u16::MAX as usize,
                "TxBuffer size must be 1..=65535"
            )
        };
        TxBuffer {
            mbufs: [ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Adds an mbuf; gives it back when the buffer is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(mbuf);
        }
        self.mbufs[self.len] = mbuf.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Buffered mbufs.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no mbuf is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the next [`push`](TxBuffer::push) would fail.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Sends the buffered mbufs with one `rte_eth_tx_burst` call and frees
    /// the ones the NIC did not take. The buffer is empty afterwards.
    #[inline]
    pub fn flush(&mut self, queue: &mut TxQueue) -> TxOutcome {
        if self.len == 0 {
            return TxOutcome::default();
        }
        let len = self.len;
        self.len = 0;
        // SAFETY: mbufs[..len] are owned mbufs; tx_burst takes ownership of
        // the first `sent` of them and leaves the rest to us. The queue is
        // set up and used by this thread only (`&mut TxQueue`).
        let sent = unsafe { queue.tx_burst(&mut self.mbufs[..len]) }.min(len);
        // SAFETY: the mbufs the NIC refused are still ours and, with len
        // reset, unreachable from the buffer.
        unsafe { free_bulk(&mut self.mbufs[sent..len]) };
        TxOutcome {
            sent,
            dropped: len - sent,
        }
    }

    /// Frees every buffered mbuf (in bulk) and returns how many there were.
    #[inline]
    pub fn clear(&mut self) -> usize {
        let len = self.len;
        self.len = 0;
        // SAFETY: mbufs[..len] are owned and no longer reachable.
        unsafe { free_bulk(&mut self.mbufs[..len]) };
        len
    }

    /// Lets `consume` take ownership of a prefix of the buffered mbufs and
    /// keeps the rest, moved to the front. Returns the prefix length.
    ///
    /// # Safety
    ///
    /// `consume` gets the owned mbufs; it must take ownership of exactly
    /// the first `n` it returns (at most the slice length) and leave the
    /// others untouched.
    #[inline]
    pub(crate) unsafe fn consume_front(
        &mut self,
        consume: impl FnOnce(&[*mut sys::rte_mbuf]) -> usize,
    ) -> usize {
        let len = self.len;
        let taken = consume(&self.mbufs[..len]).min(len);
        self.mbufs.copy_within(taken..len, 0);
        self.len = len - taken;
        taken
    }
}

impl<const N: usize> Default for TxBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for TxBuffer<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for TxBuffer<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxBuffer")
            .field("capacity", &N)
            .field("len", &self.len)
            .finish()
    }
}

/// Collects mbufs to free and frees them with one `rte_pktmbuf_free_bulk`
/// call whenever `N` are collected, on [`flush`](FreeBatch::flush) and on
/// drop, so that a worker's drop path makes no per-packet FFI call.
/// `N` is between 1 and 65535.
pub struct FreeBatch<const N: usize = 32> {
    mbufs: [*mut sys::rte_mbuf; N],
    /// `mbufs[..len]` are owned.
    len: usize,
}

// SAFETY: a FreeBatch owns its mbufs exclusively, like a collection of Mbuf.
unsafe impl<const N: usize> Send for FreeBatch<N> {}

impl<const N: usize> FreeBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u16::MAX as usize,
                "FreeBatch size must be 1..=65535"
            )
        };
        FreeBatch {
            mbufs: [ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Adds an mbuf to free; frees the whole batch when it is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) {
        self.mbufs[self.len] = mbuf.into_raw();
        self.len += 1;
        if self.len == N {
            self.flush();
        }
    }

    /// Mbufs waiting to be freed.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no mbuf is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frees the collected mbufs now.
    #[inline]
    pub fn flush(&mut self) {
        let len = self.len;
        self.len = 0;
        // SAFETY: mbufs[..len] are owned and no longer reachable.
        unsafe { free_bulk(&mut self.mbufs[..len]) };
    }
}

impl<const N: usize> Default for FreeBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for FreeBatch<N> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<const N: usize> fmt::Debug for FreeBatch<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreeBatch")
            .field("capacity", &N)
            .field("len", &self.len)
            .finish()
    }
}
