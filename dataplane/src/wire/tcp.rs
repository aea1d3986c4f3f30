//! TCP (RFC 9293) segment headers.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use super::checksum::{self, Zero};
use super::{Result, check_claimed_len, check_min_len, clamped, clamped_mut, fields, view};

/// The flag byte of a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: Self = Self(0x01);
    pub const SYN: Self = Self(0x02);
    pub const RST: Self = Self(0x04);
    pub const PSH: Self = Self(0x08);
    pub const ACK: Self = Self(0x10);
    pub const URG: Self = Self(0x20);
    pub const ECE: Self = Self(0x40);
    pub const CWR: Self = Self(0x80);

    /// True if every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for TcpFlags {
    type Output = Self;
    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = Self;
    #[inline]
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// tcpdump's letters in tcpdump's order, `.` for ACK: `[S.]`, `[P.]`,
    /// `[none]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LETTERS: [(TcpFlags, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        if self.is_empty() {
            return f.write_str("[none]");
        }
        f.write_str("[")?;
        for (flag, letter) in LETTERS {
            if self.contains(flag) {
                fmt::Write::write_char(f, letter)?;
            }
        }
        f.write_str("]")
    }
}

mod field {
    use crate::wire::Field;

    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const SEQ_NUM: Field = 4..8;
    pub(super) const ACK_NUM: Field = 8..12;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: Field = 13..14;
    pub(super) const WIN_SIZE: Field = 14..16;
    pub(super) const CHECKSUM: Field = 16..18;
    pub(super) const URGENT: Field = 18..20;
}

/// The length of a header without options.
const HEADER_LEN: usize = field::URGENT.end;

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: usize = 4;

view! {
    /// A TCP segment: exactly the bytes of the segment, which the caller
    /// slices out of the IP payload (the checksum covers all of them).
    ///
    /// Once `check_len` has passed, no accessor or setter panics, whatever
    /// the data offset field says.
    TcpPacket
}

fields! {
    TcpPacket {
        src_port, set_src_port: u16 = field::SRC_PORT;
        dst_port, set_dst_port: u16 = field::DST_PORT;
        seq_number, set_seq_number: u32 = field::SEQ_NUM;
        ack_number, set_ack_number: u32 = field::ACK_NUM;
        flags, set_flags: TcpFlags = field::FLAGS;
        window_len, set_window_len: u16 = field::WIN_SIZE;
        checksum, set_checksum: u16 = field::CHECKSUM;
        urgent_at, set_urgent_at: u16 = field::URGENT;
    }
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The length of a header without options.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Checks the base header and that the data offset is at least 5 words
    /// (`Malformed`) and within the buffer (`Truncated`).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        check_min_len(data, HEADER_LEN)?;
        check_claimed_len(data, HEADER_LEN, self.header_len().into())
    }

    /// The header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// The option bytes, between the base header and the data offset.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, self.header_len().into())
    }

    /// The bytes after the data offset.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), self.header_len().into(), usize::MAX)
    }

    /// The maximum segment size option, if there is a well-formed one
    /// before any malformed option.
    pub fn mss(&self) -> Option<u16> {
        let mut options = self.options();
        while let [kind, rest @ ..] = options {
            match *kind {
                OPT_END => return None,
                OPT_NOP => options = rest,
                kind => {
                    let len = usize::from(*rest.first()?);
                    // A length under 2 would not advance: the list is broken.
                    let option = options.get(..len).filter(|_| len >= 2)?;
                    if let (OPT_MSS, &[_, _, hi, lo]) = (kind, option) {
                        return Some(u16::from_be_bytes([hi, lo]));
                    }
                    options = options.get(len..)?;
                }
            }
        }
        None
    }

    /// True if the checksum matches the segment; `pseudo` is the sum from
    /// [`checksum::pseudo_header_v4`] or [`checksum::pseudo_header_v6`].
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::verify(self.buffer.as_ref(), pseudo)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the header length in bytes; it is stored in 32-bit words, so
    /// `len` is rounded down to a multiple of four (at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let byte = &mut self.buffer.as_mut()[field::DATA_OFF];
        *byte = (*byte & 0x0F) | ((len / 4) << 4);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len().into();
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len().into();
        clamped_mut(self.buffer.as_mut(), start, usize::MAX)
    }

    /// Computes the checksum over the segment and `pseudo` and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        checksum::fill(
            self.buffer.as_mut(),
            field::CHECKSUM,
            Zero::Ordinary,
            pseudo,
        );
    }
}

checksum::transport_rewrites!(TcpPacket, Zero::Ordinary);

impl<T: AsRef<[u8]>> fmt::Display for TcpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match TcpRepr::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "[tcp: {err}]"),
        }
    }
}

/// A TCP segment with at most an MSS option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window_len: u16,
    pub mss: Option<u16>,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Describes a checked segment; options other than MSS are skipped.
    /// The checksum is not verified here, as that needs the pseudo-header:
    /// see [`TcpPacket::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &'a TcpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            mss: packet.mss(),
            payload: packet.payload(),
        })
    }

    /// The header length, options included.
    #[inline]
    pub const fn header_len(&self) -> usize {
        match self.mss {
            Some(_) => HEADER_LEN + OPT_MSS_LEN,
            None => HEADER_LEN,
        }
    }

    /// The whole segment's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the whole segment, payload and checksum included; `pseudo`
    /// is the pseudo-header sum for [`Self::buffer_len`] bytes. The buffer
    /// must be exactly [`Self::buffer_len`] bytes long, as the checksum
    /// covers all of it; a shorter one panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>, pseudo: u16) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DATA_OFF] = 0;
        packet.set_header_len(self.header_len() as u8);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(0);
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            packet
                .options_mut()
                .copy_from_slice(&[OPT_MSS, OPT_MSS_LEN as u8, hi, lo]);
        }
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        packet.fill_checksum(pseudo);
    }

    /// The part of the one-line summary after the ports, which
    /// [`super::PrettyFrame`] reuses after addresses with ports.
    pub(super) fn fmt_details(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seq {}", self.flags, self.seq_number)?;
        if self.flags.contains(TcpFlags::ACK) {
            write!(f, " ack {}", self.ack_number)?;
        }
        write!(f, " win {}", self.window_len)?;
        if let Some(mss) = self.mss {
            write!(f, " mss {mss}")?;
        }
        write!(f, " len {}", self.payload.len())
    }
}

impl fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP {} > {} ", self.src_port, self.dst_port)?;
        self.fmt_details(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;
    use crate::wire::IpProtocol;
    use crate::wire::checksum::{pseudo_header_v4, pseudo_header_v6};
    use crate::wire::golden::{TCP_SYN, TCP6_SYN_ACK};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn syn() -> &'static [u8] {
        &TCP_SYN[34..]
    }

    fn pseudo_v4(len: usize) -> u16 {
        pseudo_header_v4(SRC, DST, IpProtocol::TCP, len as u32)
    }

    #[test]
    fn parse_golden_syn() {
        let packet = TcpPacket::new_checked(syn()).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (40000, 80));
        assert_eq!((packet.seq_number(), packet.ack_number()), (0x12345678, 0));
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert!(packet.syn() && !packet.ack() && !packet.fin() && !packet.rst());
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0xe4f5);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options().len(), 20);
        assert!(packet.payload().is_empty());
        assert_eq!(packet.mss(), Some(1460));
        assert!(packet.verify_checksum(pseudo_v4(40)));
        assert!(!packet.verify_checksum(pseudo_v4(41)));
        assert_eq!(
            packet.to_string(),
            "TCP 40000 > 80 [S] seq 305419896 win 64240 mss 1460 len 0"
        );
    }

    #[test]
    fn repr_round_trip_v6() {
        let segment = &TCP6_SYN_ACK[54..];
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("fd00::10".parse().unwrap(), "fd00::2".parse().unwrap());
        let pseudo = pseudo_header_v6(&src, &dst, IpProtocol::TCP, segment.len() as u32);
        let packet = TcpPacket::new_checked(segment).unwrap();
        assert!(packet.verify_checksum(pseudo));
        let repr = TcpRepr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            TcpRepr {
                src_port: 80,
                dst_port: 40000,
                seq_number: 1000,
                ack_number: 0x12345679,
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window_len: 65535,
                mss: Some(1440),
                payload: &[],
            }
        );
        assert_eq!(repr.buffer_len(), 24);
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut bytes), pseudo);
        assert_eq!(bytes, segment);
        assert_eq!(
            repr.to_string(),
            "TCP 80 > 40000 [S.] seq 1000 ack 305419897 win 65535 mss 1440 len 0"
        );
    }

    #[test]
    fn emit_with_payload() {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq_number: 3,
            ack_number: 4,
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window_len: 5,
            mss: None,
            payload: b"hello",
        };
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut bytes), pseudo_v4(25));
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 20);
        assert_eq!(bytes[12], 0x50, "reserved bits cleared");
        assert_eq!(packet.payload(), b"hello");
        assert_eq!(packet.mss(), None);
        assert!(packet.verify_checksum(pseudo_v4(25)));
        assert_eq!(TcpRepr::parse(&packet), Ok(repr));
    }

    #[test]
    fn check_len_failures() {
        assert_eq!(
            TcpPacket::new_checked(&syn()[..19]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = syn().to_vec();
        bytes[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Malformed),
            "offset 4"
        );
        bytes[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Truncated),
            "offset 15"
        );
        assert_eq!(
            TcpPacket::new_checked(&syn()[..39]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            TcpPacket::new_unchecked(&bytes[..]).to_string(),
            "[tcp: truncated]"
        );
    }

    fn mss_of(options: &[u8]) -> Option<u16> {
        let mut bytes = vec![0u8; 20];
        bytes.extend_from_slice(options);
        bytes[12] = ((bytes.len() / 4) as u8) << 4;
        TcpPacket::new_checked(bytes).unwrap().mss()
    }

    #[test]
    fn mss_option_parsing() {
        assert_eq!(mss_of(&[1, 1, 2, 4, 0x05, 0xb4, 0, 0]), Some(1460));
        assert_eq!(
            mss_of(&[4, 2, 2, 4, 0x05, 0xb4, 1, 1]),
            Some(1460),
            "after SACK-permitted"
        );
        assert_eq!(
            mss_of(&[0, 0, 2, 4, 0x05, 0xb4, 1, 1]),
            None,
            "after the end"
        );
        assert_eq!(
            mss_of(&[8, 0, 2, 4, 0x05, 0xb4, 1, 1]),
            None,
            "after a zero length"
        );
        assert_eq!(
            mss_of(&[8, 1, 2, 4, 0x05, 0xb4, 1, 1]),
            None,
            "after a length of 1"
        );
        assert_eq!(mss_of(&[1, 1, 1, 1, 1, 1, 2, 4]), None, "cut off");
        assert_eq!(
            mss_of(&[1, 1, 1, 8, 2, 4, 0x05, 0xb4]),
            None,
            "runs past the options"
        );
        assert_eq!(mss_of(&[2, 3, 5, 1]), None, "wrong length");
        assert_eq!(
            mss_of(&[1, 1, 1, 1, 1, 1, 1, 2]),
            None,
            "kind without length"
        );
    }

    #[test]
    fn flag_display() {
        assert_eq!(TcpFlags::SYN.to_string(), "[S]");
        assert_eq!((TcpFlags::SYN | TcpFlags::ACK).to_string(), "[S.]");
        assert_eq!((TcpFlags::PSH | TcpFlags::ACK).to_string(), "[P.]");
        assert_eq!((TcpFlags::FIN | TcpFlags::ACK).to_string(), "[F.]");
        assert_eq!(TcpFlags(0xff).to_string(), "[FSRP.UEW]");
        assert_eq!(TcpFlags::default().to_string(), "[none]");
        let mut flags = TcpFlags::SYN;
        flags |= TcpFlags::ECE | TcpFlags::CWR;
        assert_eq!(flags.to_string(), "[SEW]");
        assert!(flags.intersects(TcpFlags::ECE | TcpFlags::ACK));
        assert!(!flags.contains(TcpFlags::ECE | TcpFlags::ACK));
        assert_eq!(flags & TcpFlags::SYN, TcpFlags::SYN);
    }

    /// A valid segment with random fields and payload, checksum filled for
    /// random IPv4 addresses; returns it with its pseudo-header inputs.
    fn arb_segment() -> impl Strategy<Value = (Vec<u8>, [u8; 4], [u8; 4])> {
        (
            proptest::collection::vec(any::<u8>(), 20..80),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
        )
            .prop_map(|(mut bytes, src, dst)| {
                bytes[12] = 0x50;
                let pseudo =
                    pseudo_header_v4(src.into(), dst.into(), IpProtocol::TCP, bytes.len() as u32);
                TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(pseudo);
                (bytes, src, dst)
            })
    }

    proptest! {
        #[test]
        fn rewrites_match_recomputation(
            (bytes, src, dst) in arb_segment(),
            ports: (u16, u16),
            new_src: [u8; 4],
            (old_dst, new_dst) in any::<([u8; 16], [u8; 16])>(),
        ) {
            let len = bytes.len() as u32;
            let mut packet = TcpPacket::new_checked(bytes).unwrap();
            let (old_src_port, old_dst_port) = (packet.src_port(), packet.dst_port());
            prop_assert_eq!(packet.rewrite_src_port(ports.0), old_src_port);
            prop_assert_eq!(packet.rewrite_dst_port(ports.1), old_dst_port);
            packet.update_checksum_for_address(&src, &new_src);
            let pseudo = pseudo_header_v4(new_src.into(), dst.into(), IpProtocol::TCP, len);
            prop_assert!(packet.verify_checksum(pseudo));
            let patched = packet.checksum();
            packet.fill_checksum(pseudo);
            prop_assert_eq!(patched, packet.checksum());

            // The same with 16-byte addresses, as IPv6 NAT does.
            let (old6, new6) = (Ipv6Addr::from(old_dst), Ipv6Addr::from(new_dst));
            let any6 = Ipv6Addr::LOCALHOST;
            packet.fill_checksum(pseudo_header_v6(&any6, &old6, IpProtocol::TCP, len));
            packet.update_checksum_for_address(&old6.octets(), &new6.octets());
            let patched = packet.checksum();
            packet.fill_checksum(pseudo_header_v6(&any6, &new6, IpProtocol::TCP, len));
            prop_assert_eq!(patched, packet.checksum());
        }
    }
}
