//! What the core needs of a packet buffer: its bytes, and room to grow or
//! shrink at either end (for replies built in place, ICMP errors and
//! tunnel headers).
//!
//! DPDK's mbuf implements it in `worker`; [`VecFrame`] implements it over a
//! `Vec<u8>` so the whole core is tested without DPDK.

/// A frame whose bytes start at the Ethernet header.
pub trait Frame: AsRef<[u8]> + AsMut<[u8]> {
    /// Grows the frame by `len` bytes at the front (uninitialised content);
    /// false, and no change, when there is not enough headroom.
    fn prepend(&mut self, len: usize) -> bool;
    /// Removes `len` bytes from the front; false, and no change, if shorter.
    fn adj(&mut self, len: usize) -> bool;
    /// Grows the frame by `len` bytes at the end; false, and no change, when
    /// there is not enough tailroom.
    fn append(&mut self, len: usize) -> bool;
    /// Removes `len` bytes from the end; false, and no change, if shorter.
    fn trim(&mut self, len: usize) -> bool;
}

/// A frame in a `Vec<u8>` with DPDK-like headroom, for tests, fuzzing and
/// benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecFrame {
    /// Headroom DPDK reserves in an mbuf by default (RTE_PKTMBUF_HEADROOM).
    pub const HEADROOM: usize = 128;
    /// Data room of a default mbuf (RTE_MBUF_DEFAULT_DATAROOM).
    pub const DATA_ROOM: usize = 2048;

    /// A frame holding `bytes`, with the headroom and room of a default mbuf.
    pub fn new(bytes: &[u8]) -> VecFrame {
        let mut storage = vec![0; Self::HEADROOM + Self::DATA_ROOM.max(bytes.len())];
        storage[Self::HEADROOM..Self::HEADROOM + bytes.len()].copy_from_slice(bytes);
        VecFrame {
            storage,
            start: Self::HEADROOM,
            end: Self::HEADROOM + bytes.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.as_ref().to_vec()
    }

    /// Makes the frame hold `bytes` again, with the default headroom, as
    /// a fresh mbuf would; allocates only if `bytes` is larger than the
    /// room the frame has.
    pub fn reset(&mut self, bytes: &[u8]) {
        let end = Self::HEADROOM + bytes.len();
        if self.storage.len() < end {
            self.storage.resize(end, 0);
        }
        self.storage[Self::HEADROOM..end].copy_from_slice(bytes);
        self.start = Self::HEADROOM;
        self.end = end;
    }
}

impl AsRef<[u8]> for VecFrame {
    fn as_ref(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
}

impl AsMut<[u8]> for VecFrame {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
}

impl Frame for VecFrame {
    fn prepend(&mut self, len: usize) -> bool {
        if len > self.start {
            return false;
        }
        self.start -= len;
        true
    }

    fn adj(&mut self, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        self.start += len;
        true
    }

    fn append(&mut self, len: usize) -> bool {
        if len > self.storage.len() - self.end {
            return false;
        }
        self.end += len;
        true
    }

    fn trim(&mut self, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        self.end -= len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_frame_grows_and_shrinks_within_its_room() {
        let mut frame = VecFrame::new(&[1, 2, 3]);
        assert!(frame.prepend(2));
        assert_eq!(frame.len(), 5);
        assert!(frame.adj(2));
        assert_eq!(frame.as_ref(), &[1, 2, 3]);
        assert!(!frame.prepend(VecFrame::HEADROOM + 1));
        assert!(!frame.trim(4));
        assert!(frame.trim(1));
        assert_eq!(frame.as_ref(), &[1, 2]);
        assert!(frame.append(1));
        assert!(!frame.append(VecFrame::DATA_ROOM));
        assert_eq!(frame.len(), 3);
        frame.reset(&[9, 8]);
        assert_eq!(frame.as_ref(), &[9, 8]);
        assert!(frame.prepend(VecFrame::HEADROOM));
    }
}
