//! The owned packet buffer.

use std::fmt;
use std::ptr::NonNull;

use crate::port::PortId;
use crate::sys;

/// One packet buffer (`struct rte_mbuf`), uniquely owned.
///
/// Invariants, which every constructor and method upholds:
/// - the mbuf belongs to this value alone: it is in no ring, NIC descriptor
///   or other `Mbuf`, its reference count is 1 and its data is not shared
///   with another mbuf (rvs never clones or attaches mbufs);
/// - `data_off + data_len <= buf_len`, so the first segment's data lies
///   inside its buffer.
///
/// Dropping an `Mbuf` returns it (and its chained segments) to its pool.
/// On hot paths collect dropped packets in a [`FreeBatch`](crate::FreeBatch)
/// instead, which frees them in bulk.
///
/// The byte views ([`AsRef`]/[`AsMut`]) cover the data of the first segment
/// only. rvs sizes its pools so that a frame fits one segment; the
/// operations at the end of the data ([`append`](Mbuf::append),
/// [`trim`](Mbuf::trim), [`truncate`](Mbuf::truncate)) refuse chained
/// mbufs. All accessors read the `rte_mbuf` fields directly: no FFI call.
///
/// `Mbuf` is `Send` (ownership moves between lcores, for example through a
/// ring) but not `Sync`.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is uniquely owned (see the invariants), so moving it to
// another thread moves the only access to it; freeing from any thread is
// allowed by DPDK's mempools.
unsafe impl Send for Mbuf {}

/// The receive checksum verdict a NIC stored in an mbuf's offload flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxChecksum {
    /// The NIC says nothing about this checksum (`*_CKSUM_UNKNOWN`).
    Unknown,
    /// The checksum in the packet is valid (`*_CKSUM_GOOD`).
    Good,
    /// The checksum in the packet is wrong (`*_CKSUM_BAD`).
    Bad,
    /// The checksum field is not correct but the data's integrity was
    /// verified, typically because the sender left the checksum to an
    /// offload (`*_CKSUM_NONE`).
    DataValid,
}

impl RxChecksum {
    #[inline]
    fn from_flags(flags: u64, mask: u64, good: u64, bad: u64) -> RxChecksum {
        match flags & mask {
            0 => RxChecksum::Unknown,
            bits if bits == good => RxChecksum::Good,
            bits if bits == bad => RxChecksum::Bad,
            _ => RxChecksum::DataValid,
        }
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `raw` must be a valid packet mbuf that nothing else owns or uses
    /// afterwards (the invariants of [`Mbuf`]).
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership: the caller becomes responsible for the mbuf.
    #[inline]
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn header(&self) -> &sys::rte_mbuf {
        // SAFETY: the pointer is valid and uniquely owned (type invariant),
        // and nothing mutates the header while `self` is borrowed.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn header_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: the pointer is valid and uniquely owned (type invariant);
        // `&mut self` makes this the only reference.
        unsafe { self.raw.as_mut() }
    }

    /// Pointer to the first byte of packet data.
    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.header();
        // data_off <= buf_len (type invariant), so this stays in the buffer.
        m.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(m.data_off))
    }

    /// Bytes of data in the first segment (`data_len`); the length of
    /// [`AsRef::as_ref`].
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.header().data_len)
    }

    /// Whether the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.header().data_len == 0
    }

    /// Bytes of data in the whole packet, all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.header().pkt_len as usize
    }

    /// Number of segments (`nb_segs`); 1 for a contiguous packet.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.header().nb_segs
    }

    /// Free bytes in front of the data (`rte_pktmbuf_headroom`).
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.header().data_off)
    }

    /// Free bytes after the data of the first segment
    /// (`rte_pktmbuf_tailroom`).
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.header();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// Grows the data by `n` bytes at the front, into the headroom, and
    /// returns the new bytes (their content is unspecified). `None`, with
    /// the mbuf unchanged, when the headroom is smaller than `n`
    /// (`rte_pktmbuf_prepend`).
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.headroom() {
            return None;
        }
        let grow = n as u16; // n <= data_off, a u16
        let m = self.header_mut();
        m.data_off -= grow;
        m.data_len += grow; // data_len + data_off <= buf_len, a u16
        m.pkt_len += u32::from(grow);
        // SAFETY: the n bytes now starting the data lie inside the buffer
        // (type invariant) and are borrowed through `&mut self`.
        Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), n) })
    }

    /// Removes `n` bytes from the front of the data; `false`, with the mbuf
    /// unchanged, when the first segment holds fewer than `n` bytes
    /// (`rte_pktmbuf_adj`).
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        let shrink = n as u16; // n <= data_len, a u16
        let m = self.header_mut();
        m.data_len -= shrink;
        m.data_off += shrink;
        m.pkt_len -= u32::from(shrink);
        true
    }

    /// Grows the data by `n` bytes at the end, into the tailroom, and
    /// returns the new bytes (their content is unspecified). `None`, with
    /// the mbuf unchanged, when the tailroom is smaller than `n` or the
    /// mbuf is chained (`rte_pktmbuf_append` on a single segment).
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.segments() != 1 || n > self.tailroom() {
            return None;
        }
        let old_len = self.len();
        let grow = n as u16; // n <= tailroom, a u16
        let m = self.header_mut();
        m.data_len += grow;
        m.pkt_len += u32::from(grow);
        // SAFETY: the n bytes after the old data were tailroom, inside the
        // buffer, and are borrowed through `&mut self`.
        Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr().add(old_len), n) })
    }

    /// Removes `n` bytes from the end of the data; `false`, with the mbuf
    /// unchanged, when it holds fewer than `n` bytes or is chained
    /// (`rte_pktmbuf_trim` on a single segment).
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        if self.segments() != 1 || n > self.len() {
            return false;
        }
        let shrink = n as u16; // n <= data_len, a u16
        let m = self.header_mut();
        m.data_len -= shrink;
        m.pkt_len -= u32::from(shrink);
        true
    }

    /// Shortens the data to `len` bytes; does nothing when it is not longer
    /// or when the mbuf is chained.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if let Some(excess) = self.len().checked_sub(len) {
            self.trim(excess);
        }
    }

    /// The port the packet arrived on (or was set with
    /// [`set_port`](Mbuf::set_port)).
    #[inline]
    pub fn port(&self) -> PortId {
        PortId(self.header().port)
    }

    /// Records a port in the mbuf (DPDK uses the field as the input port).
    #[inline]
    pub fn set_port(&mut self, port: PortId) {
        self.header_mut().port = port.0;
    }

    /// The raw offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.header().ol_flags
    }

    /// The RSS hash the NIC computed, when it delivered one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.header();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: every variant of the hash union is plain integers, and
        // with RTE_MBUF_F_RX_RSS_HASH set `rss` is the one the NIC wrote.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// The NIC's verdict on the IPv4 header checksum.
    #[inline]
    pub fn ip_checksum(&self) -> RxChecksum {
        RxChecksum::from_flags(
            self.ol_flags(),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD),
        )
    }

    /// The NIC's verdict on the TCP/UDP checksum.
    #[inline]
    pub fn l4_checksum(&self) -> RxChecksum {
        RxChecksum::from_flags(
            self.ol_flags(),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD),
        )
    }

    /// Asks the CPU to load the first cache line of packet data, ahead of
    /// parsing it.
    #[inline]
    pub fn prefetch(&self) {
        prefetch_data(self.raw);
    }
}

/// Prefetches the first cache line of an mbuf's packet data.
#[inline]
pub(crate) fn prefetch_data(raw: NonNull<sys::rte_mbuf>) {
    // SAFETY: callers pass an mbuf they own; reading its header is valid.
    let m = unsafe { raw.as_ref() };
    let data = m
        .buf_addr
        .cast::<u8>()
        .wrapping_add(usize::from(m.data_off));
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch is a hint: it never faults nor changes memory,
        // whatever the address; SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(data.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

impl AsRef<[u8]> for Mbuf {
    /// The data of the first segment.
    #[inline]
    fn as_ref(&self) -> &[u8] {
        // SAFETY: data_off + data_len <= buf_len (type invariant), so the
        // range lies in the buffer, which the Mbuf owns; `&self` keeps it
        // from being mutated.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len()) }
    }
}

impl AsMut<[u8]> for Mbuf {
    /// The data of the first segment.
    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; the buffer is not shared with any other
        // mbuf (type invariant) and `&mut self` makes this borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.len()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the mbuf is valid and owned by self alone; it is not used
        // again after this.
        unsafe { sys::rvs_pktmbuf_free(self.raw.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("segments", &self.segments())
            .field("headroom", &self.headroom())
            .field("port", &self.port())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_flags_decode() {
        let (mask, good, bad) = (
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD),
        );
        let decode = |flags| RxChecksum::from_flags(flags, mask, good, bad);
        assert_eq!(decode(0), RxChecksum::Unknown);
        assert_eq!(decode(good), RxChecksum::Good);
        assert_eq!(decode(bad | 1), RxChecksum::Bad);
        assert_eq!(
            decode(u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_NONE)),
            RxChecksum::DataValid
        );
    }
}
