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
#[derive(Default)]
pub struct TxBuffer<const N: usize = 32> {
    mbufs: OwnedMbufs<N>,
}

impl<const N: usize> TxBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        TxBuffer {
            mbufs: OwnedMbufs::new(),
        }
    }

    /// Adds an mbuf; gives it back when the buffer is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        self.mbufs.push(mbuf)
    }

    /// Buffered mbufs.
    #[inline]
    pub fn len(&self) -> usize {
        self.mbufs.len()
    }

    /// Whether no mbuf is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.mbufs.is_empty()
    }

    /// Whether the next [`push`](TxBuffer::push) would fail.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.mbufs.is_full()
    }

    /// Sends the buffered mbufs with one `rte_eth_tx_burst` call and frees
    /// the ones the NIC did not take. The buffer is empty afterwards.
    #[inline]
    pub fn flush(&mut self, queue: &mut TxQueue) -> TxOutcome {
        if self.mbufs.is_empty() {
            return TxOutcome::default();
        }
        let mbufs = self.mbufs.take_all();
        let len = mbufs.len();
        // SAFETY: `take_all` handed us ownership of these mbufs; tx_burst
        // takes ownership of the first `sent` of them and leaves the rest to
        // us. The queue is set up and used by this thread only
        // (`&mut TxQueue`).
        let sent = unsafe { queue.tx_burst(mbufs) }.min(len);
        // SAFETY: the mbufs the NIC refused are still ours and no longer
        // reachable from the buffer.
        unsafe { free_bulk(&mut mbufs[sent..]) };
        TxOutcome {
            sent,
            dropped: len - sent,
        }
    }

    /// Sends what the NIC takes with one `rte_eth_tx_burst` call and keeps
    /// the others, in order, for the next call: unlike
    /// [`flush`](TxBuffer::flush), nothing is freed, so a load generator
    /// under backpressure neither drops nor rebuilds frames. Returns how
    /// many were sent.
    #[inline]
    pub fn send_keeping_rest(&mut self, queue: &mut TxQueue) -> usize {
        let len = self.mbufs.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: mbufs[..len] are owned (OwnedMbufs invariant); tx_burst
        // takes ownership of the first `sent` of them, which are forgotten
        // right after, and leaves the rest owned by the buffer. The queue
        // is used by this thread only (`&mut TxQueue`).
        let sent = unsafe { queue.tx_burst(&mut self.mbufs.mbufs[..len]) }.min(len);
        self.mbufs.forget_front(sent);
        sent
    }

    /// Frees every buffered mbuf (in bulk) and returns how many there were.
    #[inline]
    pub fn clear(&mut self) -> usize {
        self.mbufs.free_all()
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
        let taken = consume(self.mbufs.as_slice()).min(self.mbufs.len());
        // `consume` owns the first `taken` now (caller's contract).
        self.mbufs.forget_front(taken);
        taken
    }
}

impl<const N: usize> fmt::Debug for TxBuffer<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.mbufs.debug_as("TxBuffer", f)
    }
}

/// Collects mbufs to free and frees them with one `rte_pktmbuf_free_bulk`
/// call whenever `N` are collected, on [`flush`](FreeBatch::flush) and on
/// drop, so that a worker's drop path makes no per-packet FFI call.
/// `N` is between 1 and 65535.
#[derive(Default)]
pub struct FreeBatch<const N: usize = 32> {
    /// Never full between calls: `push` frees the batch as soon as it fills.
    mbufs: OwnedMbufs<N>,
}

impl<const N: usize> FreeBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        FreeBatch {
            mbufs: OwnedMbufs::new(),
        }
    }

    /// Adds an mbuf to free; frees the whole batch when it is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) {
        let pushed = self.mbufs.push(mbuf);
        // The batch is never full here (see the field); were it, the mbuf
        // given back would still be freed, on its own, when dropped.
        debug_assert!(pushed.is_ok(), "a FreeBatch is freed as soon as it fills");
        if self.mbufs.is_full() {
            self.flush();
        }
    }

    /// Mbufs waiting to be freed.
    #[inline]
    pub fn len(&self) -> usize {
        self.mbufs.len()
    }

    /// Whether no mbuf is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.mbufs.is_empty()
    }

    /// Frees the collected mbufs now.
    #[inline]
    pub fn flush(&mut self) {
        self.mbufs.free_all();
    }
}

impl<const N: usize> fmt::Debug for FreeBatch<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.mbufs.debug_as("FreeBatch", f)
    }
}

/// Up to `N` owned mbufs in a fixed array: the storage of [`TxBuffer`] and
/// [`FreeBatch`], which add what to do with them.
///
/// Invariant: `len <= N`, and `mbufs[..len]` are valid mbufs owned by this
/// value alone (nothing else uses or frees them); `mbufs[len..]` are not
/// owned (null, or stale pointers already handed over or freed) and are
/// never read as mbufs. Whatever is still owned is freed, in bulk, on drop.
///
/// ([`Burst`] keeps its own array: it hands mbufs out from the front, so
/// what it owns is a middle range, `mbufs[head..len]`.)
struct OwnedMbufs<const N: usize> {
    mbufs: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: the owned mbufs belong to this value exclusively, like a
// collection of Mbuf, which is Send.
unsafe impl<const N: usize> Send for OwnedMbufs<N> {}

impl<const N: usize> OwnedMbufs<N> {
    const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u16::MAX as usize,
                "TxBuffer and FreeBatch sizes must be 1..=65535"
            )
        };
        OwnedMbufs {
            mbufs: [ptr::null_mut(); N],
            len: 0,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn is_full(&self) -> bool {
        self.len == N
    }

    /// Takes ownership of `mbuf`; gives it back when the array is full.
    #[inline]
    fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(mbuf);
        }
        self.mbufs[self.len] = mbuf.into_raw();
        self.len += 1;
        Ok(())
    }

    /// The owned mbufs, still owned: to read, not to free or hand over
    /// (see [`forget_front`](OwnedMbufs::forget_front)).
    #[inline]
    fn as_slice(&self) -> &[*mut sys::rte_mbuf] {
        &self.mbufs[..self.len]
    }

    /// Gives up ownership of every mbuf and returns them, leaving the array
    /// empty: the caller must free or hand over each one, or it leaks.
    #[inline]
    fn take_all(&mut self) -> &mut [*mut sys::rte_mbuf] {
        let len = self.len;
        self.len = 0;
        &mut self.mbufs[..len]
    }

    /// Gives up ownership of the first `n` mbufs (at most [`len`]), which
    /// the caller has handed over elsewhere, and moves the rest to the
    /// front.
    ///
    /// [`len`]: OwnedMbufs::len
    #[inline]
    fn forget_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.mbufs.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Frees every owned mbuf with one bulk call and returns how many there
    /// were.
    #[inline]
    fn free_all(&mut self) -> usize {
        let mbufs = self.take_all();
        // SAFETY: `take_all` handed over these owned mbufs, which the array
        // no longer reaches.
        unsafe { free_bulk(mbufs) };
        mbufs.len()
    }

    /// `Debug` for the wrapping type `name`.
    fn debug_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("capacity", &N)
            .field("len", &self.len)
            .finish()
    }
}

impl<const N: usize> Default for OwnedMbufs<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for OwnedMbufs<N> {
    fn drop(&mut self) {
        self.free_all();
    }
}
