//! UDP (RFC 768) datagrams.

use core::fmt;

use super::checksum::{self, Zero};
use super::{Result, check_claimed_len, check_min_len, clamped, clamped_mut, fields, view};

mod field {
    use crate::wire::Field;

    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

const HEADER_LEN: usize = field::CHECKSUM.end;

view! {
    /// A UDP datagram. The buffer may run past the length field (as it
    /// does when the caller hands over the rest of a padded frame); the
    /// datagram ends where the length field says.
    ///
    /// Once `check_len` has passed, no accessor or setter panics, whatever
    /// the length field says.
    UdpPacket
}

fields! {
    UdpPacket {
        src_port, set_src_port: u16 = field::SRC_PORT;
        dst_port, set_dst_port: u16 = field::DST_PORT;
        /// The length field: header plus payload.
        len, set_len: u16 = field::LENGTH;
        /// Zero means the sender computed none (allowed on IPv4 only).
        checksum, set_checksum: u16 = field::CHECKSUM;
    }
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Checks the header and that the length field is at least 8
    /// (`Malformed`) and within the buffer (`Truncated`).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        check_min_len(data, HEADER_LEN)?;
        check_claimed_len(data, HEADER_LEN, self.len().into())
    }

    /// True if the length field says the datagram is empty, which a valid
    /// datagram never is (its header counts).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes from the header to the length field's end.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, self.len().into())
    }

    /// True if the checksum is zero ("none": callers enforce IPv6's
    /// mandatory checksum) or matches the datagram and `pseudo`, the sum
    /// from [`checksum::pseudo_header_v4`] or [`checksum::pseudo_header_v6`].
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        self.checksum() == 0 || checksum::verify(self.datagram(), pseudo)
    }

    /// The bytes the checksum covers: the header, even if a setter wrote a
    /// length below 8, and the payload.
    #[inline]
    fn datagram(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, self.datagram_end())
    }

    #[inline]
    fn datagram_end(&self) -> usize {
        usize::from(self.len()).max(HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len().into();
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// Computes the checksum over the datagram and `pseudo` and stores it;
    /// a computed 0 is sent as 0xFFFF, as 0 would mean "none".
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        let end = self.datagram_end();
        let datagram = clamped_mut(self.buffer.as_mut(), 0, end);
        checksum::fill(datagram, field::CHECKSUM, Zero::MeansNone, pseudo);
    }
}

checksum::transport_rewrites!(UdpPacket, Zero::MeansNone);

impl<T: AsRef<[u8]>> fmt::Display for UdpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match UdpRepr::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "[udp: {err}]"),
        }
    }
}

/// A UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Describes a checked datagram. The checksum is not verified here, as
    /// that needs the pseudo-header: see [`UdpPacket::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &'a UdpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: packet.payload(),
        })
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the whole datagram, payload and checksum included; `pseudo`
    /// is the pseudo-header sum for [`Self::buffer_len`] bytes. The buffer
    /// must hold at least [`Self::buffer_len`] bytes, or this panics. A
    /// payload over 65527 bytes is a caller bug and gets a wrong length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>, pseudo: u16) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len() as u16);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(pseudo);
    }

    /// The part of the one-line summary after the ports, which
    /// [`super::PrettyFrame`] reuses after addresses with ports.
    pub(super) fn fmt_details(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "len {}", self.payload.len())
    }
}

impl fmt::Display for UdpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UDP {} > {} ", self.src_port, self.dst_port)?;
        self.fmt_details(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;
    use crate::wire::IpProtocol;
    use crate::wire::checksum::{combine, data, pseudo_header_v4};
    use crate::wire::golden::UDP_DNS;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 53);

    fn dns() -> &'static [u8] {
        &UDP_DNS[34..]
    }

    fn pseudo(len: usize) -> u16 {
        pseudo_header_v4(SRC, DST, IpProtocol::UDP, len as u32)
    }

    #[test]
    fn parse_golden_query() {
        let packet = UdpPacket::new_checked(dns()).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (53000, 53));
        assert_eq!(packet.len(), 37);
        assert!(!packet.is_empty());
        assert_eq!(packet.checksum(), 0x28cf);
        assert_eq!(packet.payload(), &dns()[8..]);
        assert!(packet.verify_checksum(pseudo(37)));
        assert_eq!(packet.to_string(), "UDP 53000 > 53 len 29");
    }

    #[test]
    fn repr_round_trip() {
        let packet = UdpPacket::new_checked(dns()).unwrap();
        let repr = UdpRepr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            UdpRepr {
                src_port: 53000,
                dst_port: 53,
                payload: &dns()[8..]
            }
        );
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut UdpPacket::new_unchecked(&mut bytes), pseudo(37));
        assert_eq!(bytes, dns());
    }

    #[test]
    fn check_len_failures() {
        assert_eq!(
            UdpPacket::new_checked(&dns()[..7]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = dns().to_vec();
        bytes[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        bytes[5] = 38;
        assert_eq!(
            UdpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            UdpPacket::new_unchecked(&bytes[..]).to_string(),
            "[udp: truncated]"
        );
        // A buffer longer than the datagram (Ethernet padding) is fine.
        bytes[5] = 9;
        let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &[0xab]);
    }

    /// A datagram whose computed checksum is 0: its last payload word is
    /// chosen to bring the sum to 0xFFFF.
    fn zero_sum_datagram() -> Vec<u8> {
        let mut bytes = dns()[..36].to_vec();
        bytes[5] = 36;
        bytes[6..8].fill(0);
        let sum = combine(&[pseudo(36), data(&bytes)]);
        let last = u16::from_be_bytes([bytes[34], bytes[35]]);
        bytes[34..36].copy_from_slice(&combine(&[last, !sum]).to_be_bytes());
        assert_eq!(combine(&[pseudo(36), data(&bytes)]), 0xffff);
        bytes
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        let mut packet = UdpPacket::new_checked(zero_sum_datagram()).unwrap();
        packet.fill_checksum(pseudo(36));
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(pseudo(36)));
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut packet = UdpPacket::new_checked(dns().to_vec()).unwrap();
        packet.set_checksum(0);
        assert!(packet.verify_checksum(pseudo(37)));
        assert!(packet.verify_checksum(0x1234), "nothing to verify");
        packet.rewrite_src_port(1);
        packet.rewrite_dst_port(2);
        packet.update_checksum_for_address(&SRC.octets(), &[10, 0, 0, 1]);
        assert_eq!(packet.checksum(), 0);
    }

    #[test]
    fn incremental_rewrite_never_yields_zero() {
        // Rewriting a port back to the zero-sum datagram's lands the patched
        // checksum on zero, which must go out as 0xFFFF.
        let mut packet = UdpPacket::new_checked(zero_sum_datagram()).unwrap();
        let port = packet.src_port();
        packet.set_src_port(port ^ 0x0101);
        packet.fill_checksum(pseudo(36));
        assert_ne!(packet.checksum(), 0xffff, "set-up: an ordinary checksum");
        packet.rewrite_src_port(port);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(pseudo(36)));
    }

    proptest! {
        #[test]
        fn rewrites_match_recomputation(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            ports: (u16, u16),
            new_src: [u8; 4],
        ) {
            let repr = UdpRepr { src_port: 1000, dst_port: 53, payload: &payload };
            let len = repr.buffer_len();
            let mut bytes = vec![0; len];
            repr.emit(&mut UdpPacket::new_unchecked(&mut bytes), pseudo(len));
            let mut packet = UdpPacket::new_checked(bytes).unwrap();
            prop_assert_eq!(packet.rewrite_src_port(ports.0), 1000);
            prop_assert_eq!(packet.rewrite_dst_port(ports.1), 53);
            packet.update_checksum_for_address(&SRC.octets(), &new_src);
            let new_pseudo = pseudo_header_v4(new_src.into(), DST, IpProtocol::UDP, len as u32);
            let patched = packet.checksum();
            prop_assert_ne!(patched, 0);
            packet.fill_checksum(new_pseudo);
            prop_assert_eq!(patched, packet.checksum());
            prop_assert!(packet.verify_checksum(new_pseudo));
        }
    }
}
