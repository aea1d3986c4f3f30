//! IPv4 (RFC 791) headers and CIDR prefixes.

use core::fmt;
use core::net::Ipv4Addr;

use super::checksum::{self, Zero};
use super::{
    Error, IpProtocol, Result, check_claimed_len, check_min_len, clamped, clamped_mut, fields,
    read_u16, view, write_u16,
};

mod field {
    use crate::wire::Field;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: Field = 1..2;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: Field = 8..9;
    pub(super) const PROTOCOL: Field = 9..10;
    /// TTL and protocol as the one 16-bit word the checksum sees.
    pub(super) const TTL_PROTOCOL: Field = 8..10;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC_ADDR: Field = 12..16;
    pub(super) const DST_ADDR: Field = 16..20;
}

/// The length of a header without options.
pub(super) const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

view! {
    /// An IPv4 packet: header, options, payload.
    ///
    /// Once `check_len` has passed, no accessor or setter panics, whatever
    /// the header length and total length fields say.
    Ipv4Packet
}

fields! {
    Ipv4Packet {
        /// DSCP and ECN, the former type-of-service byte.
        tos, set_tos: u8 = field::DSCP_ECN;
        total_len, set_total_len: u16 = field::LENGTH;
        ident, set_ident: u16 = field::IDENT;
        ttl, set_ttl: u8 = field::TTL;
        protocol, set_protocol: IpProtocol = field::PROTOCOL;
        checksum, set_checksum: u16 = field::CHECKSUM;
        src_addr, set_src_addr: Ipv4Addr = field::SRC_ADDR;
        dst_addr, set_dst_addr: Ipv4Addr = field::DST_ADDR;
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The length of a header without options.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Checks the base header, the version, and that the header length and
    /// total length fit each other and the buffer. Bytes after the total
    /// length (Ethernet padding) are allowed. The checksum is not checked:
    /// see [`Self::verify_checksum`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let (header_len, total_len) = (self.header_len().into(), self.total_len().into());
        check_claimed_len(self.buffer.as_ref(), header_len, total_len)
    }

    /// The part of [`Self::check_len`] that concerns the header alone. It
    /// suits packets quoted in ICMP errors, whose payload is cut short:
    /// every accessor is still safe, and [`Self::payload`] returns what is
    /// there.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        check_min_len(data, HEADER_LEN)?;
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        check_claimed_len(data, HEADER_LEN, self.header_len().into())
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True for every fragment of a fragmented datagram, the first included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// The options, between the base header and the header length.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, self.header_len().into())
    }

    /// The bytes from the header length to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_range();
        clamped(self.buffer.as_ref(), start, end)
    }

    /// True if the header checksum matches the header.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.header(), 0)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// The bytes the header checksum covers; never shorter than the base
    /// header, which holds the checksum field, even after `set_header_len`
    /// wrote a nonsense length.
    #[inline]
    fn header(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, self.header_end())
    }

    #[inline]
    fn header_end(&self) -> usize {
        usize::from(self.header_len()).max(HEADER_LEN)
    }

    #[inline]
    fn payload_range(&self) -> (usize, usize) {
        (self.header_len().into(), self.total_len().into())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version; only the low four bits of `version` are used.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0x0F) | (version << 4);
    }

    /// Sets the header length in bytes; it is stored in 32-bit words, so
    /// `len` is rounded down to a multiple of four (at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0xF0) | ((len / 4) & 0x0F);
    }

    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flags_offset(!FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flags_offset(!FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes, rounded down to a multiple of 8.
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        self.set_flags_offset(!OFFSET_MASK, offset >> 3);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len().into();
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_range();
        clamped_mut(self.buffer.as_mut(), start, end)
    }

    /// Computes the header checksum and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let end = self.header_end();
        let header = clamped_mut(self.buffer.as_mut(), 0, end);
        checksum::fill(header, field::CHECKSUM, Zero::Ordinary, 0);
    }

    /// Replaces the source address and patches the header checksum;
    /// returns the old address. The transport checksum, which covers the
    /// address too, is the caller's to patch.
    #[inline]
    pub fn rewrite_src_addr(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        self.set_src_addr(addr);
        self.patch_checksum_u32(old.to_bits(), addr.to_bits());
        old
    }

    /// Replaces the destination address and patches the header checksum;
    /// returns the old address.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        self.set_dst_addr(addr);
        self.patch_checksum_u32(old.to_bits(), addr.to_bits());
        old
    }

    /// Forwards the packet to a new destination as a NAT router does:
    /// replaces the destination address and decrements the TTL (never
    /// below zero) with a single checksum patch; returns the old address.
    #[inline]
    pub fn route_to(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        self.set_dst_addr(addr);
        self.patch_ttl_and(old.to_bits(), addr.to_bits());
        old
    }

    /// [`route_to`](Self::route_to) for the source address (the reply
    /// direction of NAT).
    #[inline]
    pub fn route_from(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        self.set_src_addr(addr);
        self.patch_ttl_and(old.to_bits(), addr.to_bits());
        old
    }

    /// Decrements the TTL and patches the checksum for it and for a 32-bit
    /// field that changed from `old` to `new`, in one fold.
    #[inline]
    fn patch_ttl_and(&mut self, old: u32, new: u32) {
        let old_ttl = read_u16(self.buffer.as_ref(), field::TTL_PROTOCOL);
        self.set_ttl(self.ttl().saturating_sub(1));
        let new_ttl = read_u16(self.buffer.as_ref(), field::TTL_PROTOCOL);
        let sum = checksum::update_u32(
            checksum::update_u16(self.checksum(), old_ttl, new_ttl),
            old,
            new,
        );
        self.set_checksum(sum);
    }

    /// Decrements the TTL, never below zero, and patches the header
    /// checksum; returns the new TTL. Forwarding drops a packet that
    /// arrives with a TTL of 0 or 1.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let old = read_u16(self.buffer.as_ref(), field::TTL_PROTOCOL);
        let ttl = self.ttl().saturating_sub(1);
        self.set_ttl(ttl);
        let new = read_u16(self.buffer.as_ref(), field::TTL_PROTOCOL);
        let sum = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(sum);
        ttl
    }

    #[inline]
    fn set_flags_offset(&mut self, keep: u16, bits: u16) {
        let value = (self.flags_offset() & keep) | bits;
        write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    #[inline]
    fn patch_checksum_u32(&mut self, old: u32, new: u32) {
        let sum = checksum::update_u32(self.checksum(), old, new);
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Ipv4Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check_len() {
            return write!(f, "[ipv4: {err}]");
        }
        write!(f, "IPv4 {} > {}: ", self.src_addr(), self.dst_addr())?;
        self.fmt_details(f)
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The part of the one-line summary after the addresses, which
    /// [`super::PrettyFrame`] reuses after addresses with ports.
    pub(super) fn fmt_details(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (protocol, ttl, ident) = (self.protocol(), self.ttl(), self.ident());
        write!(
            f,
            "{protocol} ttl {ttl} id {ident} len {}",
            self.total_len()
        )?;
        if self.dont_frag() {
            f.write_str(" DF")?;
        }
        if self.is_fragment() {
            let more = if self.more_frags() { "+" } else { "" };
            write!(f, " frag {}{more}", self.frag_offset())?;
        }
        if self.header_len() > 20 {
            write!(f, " options {}", self.options().len())?;
        }
        if !self.verify_checksum() {
            f.write_str(" [bad ip checksum]")?;
        }
        Ok(())
    }
}

/// An IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Describes the base header of a checked packet whose header checksum
    /// is right (`BadChecksum` otherwise). Options are skipped, and the
    /// fragment fields are not described: look at the packet for those.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// The header length; the payload comes on top.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum; the payload is the
    /// caller's. A `payload_len` over 65515 is a caller bug and is cut to
    /// 16 bits. The buffer must hold at least [`Self::buffer_len`] bytes,
    /// or this panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_tos(self.tos);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        // Clears the reserved bit, MF and the offset too.
        packet.set_flags_offset(0, if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            src_addr,
            dst_addr,
            protocol,
            payload_len,
            ttl,
            ..
        } = self;
        write!(
            f,
            "IPv4 {src_addr} > {dst_addr}: {protocol} ttl {ttl} len {}",
            payload_len + HEADER_LEN
        )?;
        if self.dont_frag {
            f.write_str(" DF")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::golden::{TCP_SYN, UDP_DNS};
    use proptest::prelude::*;

    fn syn_ip() -> &'static [u8] {
        &TCP_SYN[14..]
    }

    #[test]
    fn parse_golden_header() {
        let packet = Ipv4Packet::new_checked(syn_ip()).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.tos(), 0);
        assert_eq!(packet.total_len(), 60);
        assert_eq!(packet.ident(), 0x1c46);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::TCP);
        assert_eq!(packet.checksum(), 0x9245);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(198, 18, 0, 10));
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &syn_ip()[20..]);
        assert!(packet.verify_checksum());
        assert_eq!(
            packet.to_string(),
            "IPv4 198.18.0.2 > 198.18.0.10: TCP ttl 64 id 7238 len 60 DF"
        );

        let dns = Ipv4Packet::new_checked(&UDP_DNS[14..]).unwrap();
        assert!(!dns.dont_frag());
        assert!(dns.verify_checksum());
    }

    #[test]
    fn repr_round_trip() {
        let packet = Ipv4Packet::new_checked(syn_ip()).unwrap();
        let repr = Ipv4Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(198, 18, 0, 2),
                dst_addr: Ipv4Addr::new(198, 18, 0, 10),
                protocol: IpProtocol::TCP,
                payload_len: 40,
                ttl: 64,
                tos: 0,
                ident: 0x1c46,
                dont_frag: true,
            }
        );
        let mut bytes = [0xa5u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, syn_ip()[..20]);
        assert_eq!(
            repr.to_string(),
            "IPv4 198.18.0.2 > 198.18.0.10: TCP ttl 64 len 60 DF"
        );
    }

    #[test]
    fn check_len_failures() {
        let ip = syn_ip();
        let with = |at: usize, value: u8| {
            let mut bytes = ip.to_vec();
            bytes[at] = value;
            Ipv4Packet::new_checked(bytes).err()
        };
        assert_eq!(
            Ipv4Packet::new_checked(&ip[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(with(0, 0x65), Some(Error::Malformed), "version 6");
        assert_eq!(with(0, 0x44), Some(Error::Malformed), "IHL 4");
        let mut long_header = ip.to_vec();
        long_header[0] = 0x4f;
        long_header[3] = 56;
        assert_eq!(
            Ipv4Packet::new_checked(long_header).err(),
            Some(Error::Malformed),
            "IHL 15 > total length"
        );
        assert_eq!(
            Ipv4Packet::new_checked(&ip[..50]).err(),
            Some(Error::Truncated),
            "IHL 15 > buffer"
        );
        assert_eq!(with(3, 19), Some(Error::Malformed), "total length < header");
        assert_eq!(with(3, 61), Some(Error::Truncated), "total length > buffer");
        let mut short_header = ip[..40].to_vec();
        short_header[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(short_header).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv4Packet::new_unchecked(&ip[..3]).to_string(),
            "[ipv4: truncated]"
        );
    }

    #[test]
    fn padding_and_quoted_packets() {
        let mut padded = syn_ip().to_vec();
        padded.extend_from_slice(&[0; 6]);
        let packet = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 40, "padding is not payload");

        let quoted = Ipv4Packet::new_unchecked(&syn_ip()[..28]);
        assert_eq!(quoted.check_len(), Err(Error::Truncated));
        assert_eq!(quoted.check_header_len(), Ok(()));
        assert_eq!(quoted.payload(), &syn_ip()[20..28]);
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = syn_ip().to_vec();
        bytes[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::BadChecksum));
        assert!(packet.to_string().ends_with("[bad ip checksum]"));
    }

    #[test]
    fn fragment_fields() {
        let mut packet = Ipv4Packet::new_checked(syn_ip().to_vec()).unwrap();
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(packet.dont_frag() && packet.more_frags() && packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_dont_frag(false);
        packet.set_more_frags(false);
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment(), "the last fragment has an offset");
        packet.set_frag_offset(0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.into_inner()[6..8], [0, 0]);
    }

    #[test]
    fn options_and_setters() {
        let mut bytes = [0u8; 28];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.set_tos(0xb8);
        packet.set_ident(7);
        packet.set_ttl(1);
        packet.set_protocol(IpProtocol::UDP);
        packet.set_src_addr(Ipv4Addr::new(198, 18, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(198, 18, 0, 2));
        packet.options_mut().copy_from_slice(&[0x94, 0x04, 0, 0]); // router alert
        packet.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        packet.fill_checksum();
        assert_eq!(packet.check_len(), Ok(()));
        assert!(packet.verify_checksum());
        assert_eq!(
            (packet.header_len(), packet.tos(), packet.ident()),
            (24, 0xb8, 7)
        );
        assert_eq!(packet.options(), &[0x94, 0x04, 0, 0]);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        assert_eq!(Ipv4Repr::parse(&packet).map(|repr| repr.payload_len), Ok(4));
        assert!(packet.to_string().contains(" options 4"));
    }

    #[test]
    fn decrement_ttl_saturates() {
        let mut packet = Ipv4Packet::new_checked(syn_ip().to_vec()).unwrap();
        packet.set_ttl(1);
        packet.fill_checksum();
        assert_eq!(packet.decrement_ttl(), 0);
        assert!(packet.verify_checksum());
        assert_eq!(packet.decrement_ttl(), 0);
        assert_eq!(packet.ttl(), 0);
        assert!(packet.verify_checksum());
    }

    /// A valid header with random fields and options, checksum filled.
    fn arb_header() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 60), 5u8..=15).prop_map(|(mut bytes, ihl)| {
            let len = usize::from(ihl) * 4;
            bytes.truncate(len);
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
            bytes
        })
    }

    proptest! {
        #[test]
        fn rewrites_match_recomputation(bytes in arb_header(), src: u32, dst: u32, ttl: u8) {
            let mut packet = Ipv4Packet::new_checked(bytes).unwrap();
            let old_src = packet.src_addr();
            prop_assert_eq!(packet.rewrite_src_addr(Ipv4Addr::from_bits(src)), old_src);
            prop_assert!(packet.verify_checksum());
            packet.rewrite_dst_addr(Ipv4Addr::from_bits(dst));
            prop_assert!(packet.verify_checksum());
            packet.set_ttl(ttl);
            packet.fill_checksum();
            prop_assert_eq!(packet.decrement_ttl(), ttl.saturating_sub(1));
            let patched = packet.checksum();
            packet.fill_checksum();
            prop_assert_eq!(patched, packet.checksum());
            prop_assert_eq!(packet.src_addr().to_bits(), src);
            prop_assert_eq!(packet.dst_addr().to_bits(), dst);
        }
    }
}
