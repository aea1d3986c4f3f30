//! IPv6 (RFC 8200) headers, their extension-header chain, and CIDR
//! prefixes.

use core::fmt;
use core::net::Ipv6Addr;

use super::{
    Error, FieldValue, IpProtocol, Result, check_min_len, clamped, clamped_mut, fields, read_u16,
    view,
};

mod field {
    use crate::wire::Field;

    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NXT_HDR: Field = 6..7;
    pub(super) const HOP_LIMIT: Field = 7..8;
    pub(super) const SRC_ADDR: Field = 8..24;
    pub(super) const DST_ADDR: Field = 24..40;

    /// Within a fragment header.
    pub(super) const FRAG_OFFSET_FLAGS: Field = 2..4;
    pub(super) const FRAG_IDENT: Field = 4..8;
}

/// The length of the fixed header.
pub(super) const HEADER_LEN: usize = field::DST_ADDR.end;

/// How many extension headers [`Ipv6Packet::upper_layer`] walks before it
/// calls the chain malformed; real traffic carries two or three at most.
pub const MAX_EXT_HEADERS: usize = 8;

const FRAGMENT_HEADER_LEN: usize = 8;

view! {
    /// An IPv6 packet: fixed header, then the payload (extension headers
    /// included).
    ///
    /// Once `check_len` has passed, no accessor or setter panics, whatever
    /// the payload length field says.
    Ipv6Packet
}

/// Where the upper-layer header of an IPv6 packet starts, past the
/// extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The last next-header value of the chain.
    pub protocol: IpProtocol,
    /// Offset from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header, if the chain had one. For a fragment other than
    /// the first, `offset` points at fragment data, not at a header.
    pub fragment: Option<Ipv6Fragment>,
}

/// The fields of an IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Fragment {
    /// Offset of this fragment in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    pub ident: u32,
}

fields! {
    Ipv6Packet {
        payload_len, set_payload_len: u16 = field::LENGTH;
        next_header, set_next_header: IpProtocol = field::NXT_HDR;
        hop_limit, set_hop_limit: u8 = field::HOP_LIMIT;
        src_addr, set_src_addr: Ipv6Addr = field::SRC_ADDR;
        dst_addr, set_dst_addr: Ipv6Addr = field::DST_ADDR;
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The length of the fixed header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Checks the fixed header, the version, and that the payload length
    /// fits the buffer; bytes after it (Ethernet padding) are allowed.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        check_min_len(self.buffer.as_ref(), self.payload_end())
    }

    /// The part of [`Self::check_len`] that concerns the fixed header
    /// alone, for packets quoted in ICMPv6 errors, whose payload is cut
    /// short: every accessor is still safe, and [`Self::payload`] returns
    /// what is there.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref(), HEADER_LEN)?;
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000F_FFFF
    }

    /// The payload length's worth of bytes after the fixed header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, self.payload_end())
    }

    /// Walks the extension headers (hop-by-hop, routing, destination
    /// options, fragment, AH; at most [`MAX_EXT_HEADERS`]) to the
    /// upper-layer header. `Truncated` if a header runs past the payload;
    /// `Malformed` for a hop-by-hop header that is not first, a second
    /// fragment header, or too long a chain.
    #[inline]
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        self.walk_ext_headers(|_| {})
    }

    /// The bytes of the upper layer that `upper` (from
    /// [`Self::upper_layer`]) locates, to the end of the payload.
    #[inline]
    pub fn upper_layer_payload(&self, upper: &UpperLayer) -> &[u8] {
        clamped(self.buffer.as_ref(), upper.offset, self.payload_end())
    }

    /// [`Self::upper_layer`], calling `visit` with each extension header's
    /// protocol on the way.
    pub(super) fn walk_ext_headers(&self, mut visit: impl FnMut(IpProtocol)) -> Result<UpperLayer> {
        let data = clamped(self.buffer.as_ref(), 0, self.payload_end());
        let mut upper = UpperLayer {
            protocol: self.next_header(),
            offset: HEADER_LEN,
            fragment: None,
        };
        for _ in 0..MAX_EXT_HEADERS {
            let Some(len) = ext_header_len(data, &upper)? else {
                return Ok(upper);
            };
            let header = data
                .get(upper.offset..upper.offset + len)
                .ok_or(Error::Truncated)?;
            let &[next_header, ..] = header else {
                return Err(Error::Truncated);
            };
            visit(upper.protocol);
            if upper.protocol == IpProtocol::IPV6_FRAGMENT {
                upper.fragment = Some(fragment_fields(header));
            }
            upper.protocol = IpProtocol(next_header);
            upper.offset += len;
            if upper.fragment.is_some_and(|fragment| fragment.offset != 0) {
                // Later fragments carry data, not the rest of the chain.
                return Ok(upper);
            }
        }
        match ext_header_len(data, &upper)? {
            None => Ok(upper),
            Some(_) => Err(Error::Malformed),
        }
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        FieldValue::read(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    #[inline]
    fn payload_end(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }
}

/// The length of the extension header that `upper` points at, or `None`
/// if it points at an upper-layer protocol.
#[inline]
fn ext_header_len(data: &[u8], upper: &UpperLayer) -> Result<Option<usize>> {
    let length_byte = || {
        data.get(upper.offset + 1)
            .copied()
            .map(usize::from)
            .ok_or(Error::Truncated)
    };
    let len = match upper.protocol {
        IpProtocol::HOP_BY_HOP if upper.offset != HEADER_LEN => return Err(Error::Malformed),
        IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTING | IpProtocol::IPV6_DEST_OPTS => {
            (length_byte()? + 1) * 8
        }
        IpProtocol::AH => (length_byte()? + 2) * 4,
        IpProtocol::IPV6_FRAGMENT if upper.fragment.is_some() => return Err(Error::Malformed),
        IpProtocol::IPV6_FRAGMENT => FRAGMENT_HEADER_LEN,
        _ => return Ok(None),
    };
    Ok(Some(len))
}

/// The fields of an 8-byte fragment header.
#[inline]
fn fragment_fields(header: &[u8]) -> Ipv6Fragment {
    let offset_flags = read_u16(header, field::FRAG_OFFSET_FLAGS);
    Ipv6Fragment {
        offset: offset_flags & 0xFFF8,
        more: offset_flags & 1 != 0,
        ident: FieldValue::read(header, field::FRAG_IDENT),
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the version; only the low four bits of `version` are used.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        self.set_ver_tc_flow(0x0FFF_FFFF, u32::from(version & 0x0F) << 28);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        self.set_ver_tc_flow(0xF00F_FFFF, u32::from(traffic_class) << 20);
    }

    /// Sets the flow label; only the low 20 bits of `label` are used.
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        self.set_ver_tc_flow(0xFFF0_0000, label & 0x000F_FFFF);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// The mutable twin of [`Self::upper_layer_payload`].
    #[inline]
    pub fn upper_layer_payload_mut(&mut self, upper: &UpperLayer) -> &mut [u8] {
        let end = self.payload_end();
        clamped_mut(self.buffer.as_mut(), upper.offset, end)
    }

    /// Decrements the hop limit, never below zero; returns the new value.
    /// IPv6 has no header checksum to patch.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let hop_limit = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(hop_limit);
        hop_limit
    }

    #[inline]
    fn set_ver_tc_flow(&mut self, keep: u32, bits: u32) {
        let value = (self.ver_tc_flow() & keep) | bits;
        value.write(self.buffer.as_mut(), field::VER_TC_FLOW);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Ipv6Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check_len() {
            return write!(f, "[ipv6: {err}]");
        }
        write!(f, "IPv6 {} > {}: ", self.src_addr(), self.dst_addr())?;
        self.fmt_details(f)
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The part of the one-line summary after the addresses, which
    /// [`super::PrettyFrame`] reuses after addresses with ports.
    pub(super) fn fmt_details(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (next_header, hop_limit) = (self.next_header(), self.hop_limit());
        write!(
            f,
            "{next_header} hlim {hop_limit} len {}",
            self.payload_len()
        )?;
        match self.flow_label() {
            0 => Ok(()),
            label => write!(f, " flow 0x{label:05x}"),
        }
    }
}

/// An IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Describes the fixed header of a checked packet; extension headers
    /// are part of the payload (see [`Ipv6Packet::upper_layer`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len().into(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The header length; the payload comes on top.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; the payload is the caller's. A
    /// `payload_len` over 65535 is a caller bug and is cut to 16 bits. The
    /// buffer must hold at least [`Self::buffer_len`] bytes, or this
    /// panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_ver_tc_flow(0, 6 << 28);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

impl fmt::Display for Ipv6Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            src_addr,
            dst_addr,
            next_header,
            payload_len,
            hop_limit,
            ..
        } = self;
        write!(
            f,
            "IPv6 {src_addr} > {dst_addr}: {next_header} hlim {hop_limit} len {payload_len}"
        )
    }
}

/// The solicited-node multicast group of `addr` (RFC 4291, 2.7.1):
/// `ff02::1:ff00:0/104` plus the address's low 24 bits.
#[inline]
pub const fn solicited_node_multicast(addr: &Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from_bits(0xff02_0000_0000_0000_0000_0001_ff00_0000 | (addr.to_bits() & 0x00FF_FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::golden::{MLD_HOP_BY_HOP, TCP6_SYN_ACK};

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_golden_hop_by_hop() {
        let packet = Ipv6Packet::new_checked(&MLD_HOP_BY_HOP[14..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!((packet.traffic_class(), packet.flow_label()), (0, 0));
        assert_eq!(packet.payload_len(), 36);
        assert_eq!(packet.next_header(), IpProtocol::HOP_BY_HOP);
        assert_eq!(packet.hop_limit(), 1);
        assert_eq!(packet.src_addr(), addr("fe80::1"));
        assert_eq!(packet.dst_addr(), addr("ff02::16"));
        assert_eq!(packet.payload().len(), 36);
        let upper = packet.upper_layer().unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: IpProtocol::ICMPV6,
                offset: 48,
                fragment: None
            }
        );
        assert_eq!(packet.upper_layer_payload(&upper)[0], 143, "MLDv2 report");
        assert_eq!(
            packet.to_string(),
            "IPv6 fe80::1 > ff02::16: hop-by-hop hlim 1 len 36"
        );
    }

    #[test]
    fn repr_round_trip() {
        let packet = Ipv6Packet::new_checked(&TCP6_SYN_ACK[14..]).unwrap();
        let repr = Ipv6Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Ipv6Repr {
                src_addr: addr("fd00::10"),
                dst_addr: addr("fd00::2"),
                next_header: IpProtocol::TCP,
                payload_len: 24,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
        );
        let upper = packet.upper_layer().unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::TCP, 40));
        let mut bytes = [0xa5u8; 40];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, TCP6_SYN_ACK[14..54]);
        assert_eq!(
            repr.to_string(),
            "IPv6 fd00::10 > fd00::2: TCP hlim 64 len 24"
        );
    }

    #[test]
    fn check_len_failures() {
        let ip = &TCP6_SYN_ACK[14..];
        assert_eq!(
            Ipv6Packet::new_checked(&ip[..39]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = ip.to_vec();
        bytes[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&ip[..63]).err(),
            Some(Error::Truncated)
        );
        let quoted = Ipv6Packet::new_unchecked(&ip[..48]);
        assert_eq!(quoted.check_header_len(), Ok(()));
        assert_eq!(quoted.payload().len(), 8);
        let mut padded = ip.to_vec();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(
            Ipv6Packet::new_checked(&padded[..]).map(|p| p.payload().len()),
            Ok(24)
        );
    }

    #[test]
    fn header_fields_are_independent() {
        let mut bytes = [0u8; 40];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_flow_label(0xFFFF_FFFF);
        packet.set_traffic_class(0xb8);
        assert_eq!(
            (
                packet.version(),
                packet.traffic_class(),
                packet.flow_label()
            ),
            (6, 0xb8, 0xF_FFFF)
        );
        packet.set_flow_label(0x12345);
        packet.set_traffic_class(0);
        assert_eq!(
            (
                packet.version(),
                packet.traffic_class(),
                packet.flow_label()
            ),
            (6, 0, 0x12345)
        );
        packet.set_hop_limit(1);
        assert_eq!(
            (packet.decrement_hop_limit(), packet.decrement_hop_limit()),
            (0, 0)
        );
        assert_eq!(
            packet.to_string(),
            "IPv6 :: > ::: hop-by-hop hlim 0 len 0 flow 0x12345"
        );
    }

    /// An IPv6 packet whose payload is the given extension headers (each
    /// a next-header byte then its body) followed by 8 bytes of UDP.
    fn with_chain(first: IpProtocol, headers: &[&[u8]]) -> Vec<u8> {
        let mut payload: Vec<u8> = headers.concat();
        payload.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
        let repr = Ipv6Repr {
            src_addr: addr("fd00::1"),
            dst_addr: addr("fd00::2"),
            next_header: first,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut bytes = vec![0; 40];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]));
        bytes.extend_from_slice(&payload);
        bytes
    }

    const DEST_OPTS_TO_UDP: &[u8] = &[17, 0, 1, 4, 0, 0, 0, 0];
    const ROUTING_TO_DEST_OPTS: &[u8] = &[60, 0, 0, 0, 0, 0, 0, 0];

    fn upper(bytes: &[u8]) -> Result<UpperLayer> {
        Ipv6Packet::new_checked(bytes)?.upper_layer()
    }

    #[test]
    fn extension_chains() {
        let chain = with_chain(
            IpProtocol::IPV6_ROUTING,
            &[ROUTING_TO_DEST_OPTS, DEST_OPTS_TO_UDP],
        );
        assert_eq!(
            upper(&chain),
            Ok(UpperLayer {
                protocol: IpProtocol::UDP,
                offset: 56,
                fragment: None
            })
        );

        // AH counts its length in 4-byte units, less 2: here 16 bytes.
        let ah: &[u8] = &[17, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let chain = with_chain(IpProtocol::AH, &[ah]);
        assert_eq!(upper(&chain).map(|u| u.offset), Ok(56));

        let first_fragment: &[u8] = &[17, 0, 0x00, 0x01, 0, 0, 0x12, 0x34];
        let chain = with_chain(IpProtocol::IPV6_FRAGMENT, &[first_fragment]);
        let fragment = Ipv6Fragment {
            offset: 0,
            more: true,
            ident: 0x1234,
        };
        assert_eq!(
            upper(&chain),
            Ok(UpperLayer {
                protocol: IpProtocol::UDP,
                offset: 48,
                fragment: Some(fragment)
            })
        );

        // A later fragment stops the walk: what follows is data.
        let later_fragment: &[u8] = &[60, 0, 0x05, 0xa8, 0, 0, 0x12, 0x34];
        let chain = with_chain(IpProtocol::IPV6_FRAGMENT, &[later_fragment, &[0xff; 8]]);
        let fragment = Ipv6Fragment {
            offset: 1448,
            more: false,
            ident: 0x1234,
        };
        assert_eq!(
            upper(&chain),
            Ok(UpperLayer {
                protocol: IpProtocol::IPV6_DEST_OPTS,
                offset: 48,
                fragment: Some(fragment)
            })
        );

        let chain = with_chain(IpProtocol::IPV6_NONE, &[]);
        assert_eq!(upper(&chain).map(|u| u.protocol), Ok(IpProtocol::IPV6_NONE));
    }

    #[test]
    fn broken_extension_chains() {
        // A destination-options header claiming 16 bytes where 8 (+8 of
        // UDP) are followed by nothing: runs past the payload.
        let chain = with_chain(IpProtocol::IPV6_DEST_OPTS, &[&[17, 2, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(upper(&chain), Err(Error::Truncated));
        // The header runs past the payload length, though not the buffer.
        let mut chain = with_chain(IpProtocol::IPV6_DEST_OPTS, &[DEST_OPTS_TO_UDP]);
        chain[5] = 4;
        assert_eq!(upper(&chain), Err(Error::Truncated));
        let mut chain = with_chain(IpProtocol::IPV6_DEST_OPTS, &[DEST_OPTS_TO_UDP]);
        chain[5] = 1;
        assert_eq!(
            upper(&chain),
            Err(Error::Truncated),
            "not even the length byte"
        );

        let hop_by_hop_second: &[u8] = &[17, 0, 0, 0, 0, 0, 0, 0];
        let chain = with_chain(
            IpProtocol::IPV6_ROUTING,
            &[&[0, 0, 0, 0, 0, 0, 0, 0], hop_by_hop_second],
        );
        assert_eq!(
            upper(&chain),
            Err(Error::Malformed),
            "hop-by-hop must come first"
        );

        let fragment: &[u8] = &[44, 0, 0, 1, 0, 0, 0, 1];
        let chain = with_chain(IpProtocol::IPV6_FRAGMENT, &[fragment, fragment]);
        assert_eq!(upper(&chain), Err(Error::Malformed), "two fragment headers");

        let dest_opts: &[u8] = &[60, 0, 1, 4, 0, 0, 0, 0];
        let eight = [dest_opts; 8];
        let mut chain = with_chain(IpProtocol::IPV6_DEST_OPTS, &eight);
        assert_eq!(upper(&chain), Err(Error::Malformed), "nine headers");
        chain[40 + 7 * 8] = 17;
        assert_eq!(
            upper(&chain).map(|u| u.offset),
            Ok(40 + 8 * 8),
            "eight headers"
        );
    }

    #[test]
    fn solicited_node_group() {
        assert_eq!(
            solicited_node_multicast(&addr("fd00::1:2345:6789")),
            addr("ff02::1:ff45:6789")
        );
        assert_eq!(
            solicited_node_multicast(&addr("fe80::10")),
            addr("ff02::1:ff00:10")
        );
    }
}
