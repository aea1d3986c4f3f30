//! What differs between IPv4 and IPv6 for the director: parsing a header,
//! rewriting addresses and ports with their checksums, wrapping a packet
//! in a tunnel header. Everything else is written once over [`Ip`].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Plane, Planes};
use crate::counters::DropReason;
use crate::snapshot::FamilyView;
use crate::wire::{
    Error as WireError, EtherType, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    TcpPacket, UdpPacket,
};

/// The facts of an IP header the director acts on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header<A> {
    pub src: A,
    pub dst: A,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: IpProtocol,
    /// Where the upper-layer header starts, from the start of the IP header.
    pub l4: usize,
    /// The whole IP packet's length.
    pub len: usize,
    pub hop_limit: u8,
    /// A fragment other than the whole packet (no ports to match).
    pub fragment: bool,
    /// May not be fragmented: IPv4 with DF, and always IPv6.
    pub dont_fragment: bool,
}

/// An address family as the director handles it.
pub(super) trait Ip: FamilyView {
    const ETHERTYPE: EtherType;
    /// ICMP's protocol number in this family.
    const ICMP: IpProtocol;
    /// The protocol number of an IP-in-IP tunnel carrying this family.
    const TUNNEL: IpProtocol;
    /// Length of the fixed header (what a tunnel adds).
    const HEADER_LEN: usize;

    fn plane(planes: &Planes) -> &Plane<Self>;
    fn plane_mut(planes: &mut Planes) -> &mut Plane<Self>;

    /// Validates the header of `packet` (starting at the IP header).
    fn parse(packet: &[u8]) -> Result<Header<Self>, DropReason>;

    /// Rewrites the source and/or destination (address, port) of a TCP or
    /// UDP packet and takes one from the hop limit, patching every
    /// checksum incrementally.
    fn translate(
        packet: &mut [u8],
        header: &Header<Self>,
        src: Option<(Self, u16)>,
        dst: Option<(Self, u16)>,
    );

    /// Writes a tunnel header for `inner` (the packet it will precede) into
    /// `outer`, which is [`HEADER_LEN`](Self::HEADER_LEN) bytes long.
    fn write_tunnel_header(
        outer: &mut [u8],
        inner: &Header<Self>,
        inner_packet: &[u8],
        src: Self,
        dst: Self,
        ident: u16,
    );
}

impl Ip for Ipv4Addr {
    const ETHERTYPE: EtherType = EtherType::IPV4;
    const ICMP: IpProtocol = IpProtocol::ICMP;
    const TUNNEL: IpProtocol = IpProtocol::IPIP;
    const HEADER_LEN: usize = 20;

    fn plane(planes: &Planes) -> &Plane<Self> {
        &planes.v4
    }

    fn plane_mut(planes: &mut Planes) -> &mut Plane<Self> {
        &mut planes.v4
    }

    #[inline]
    fn parse(packet: &[u8]) -> Result<Header<Self>, DropReason> {
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Err(DropReason::Ipv4Truncated),
            Err(_) => return Err(DropReason::Ipv4Malformed),
        };
        if !ip.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        Ok(Header {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            protocol: ip.protocol(),
            l4: usize::from(ip.header_len()),
            len: usize::from(ip.total_len()),
            hop_limit: ip.ttl(),
            fragment: ip.is_fragment(),
            dont_fragment: ip.dont_frag(),
        })
    }

    #[inline]
    fn translate(
        packet: &mut [u8],
        header: &Header<Self>,
        src: Option<(Self, u16)>,
        dst: Option<(Self, u16)>,
    ) {
        let mut ip = Ipv4Packet::new_unchecked(&mut packet[..header.len]);
        // The TTL goes with the first rewrite, so each header takes one
        // checksum fold per changed field at most.
        let old_src = src.map(|(address, _)| ip.route_from(address));
        let old_dst = match (dst, old_src) {
            (Some((address, _)), None) => Some(ip.route_to(address)),
            (Some((address, _)), Some(_)) => Some(ip.rewrite_dst_addr(address)),
            (None, _) => None,
        };
        let segment = &mut packet[header.l4..header.len];
        let tcp = header.protocol == IpProtocol::TCP;
        if let (Some((address, port)), Some(old)) = (src, old_src) {
            if tcp {
                TcpPacket::new_unchecked(&mut *segment).nat_source_v4(old, address, port);
            } else {
                UdpPacket::new_unchecked(&mut *segment).nat_source_v4(old, address, port);
            }
        }
        if let (Some((address, port)), Some(old)) = (dst, old_dst) {
            if tcp {
                TcpPacket::new_unchecked(segment).nat_destination_v4(old, address, port);
            } else {
                UdpPacket::new_unchecked(segment).nat_destination_v4(old, address, port);
            }
        }
    }

    fn write_tunnel_header(
        outer: &mut [u8],
        inner: &Header<Self>,
        inner_packet: &[u8],
        src: Self,
        dst: Self,
        ident: u16,
    ) {
        let tos = inner_packet.get(1).copied().unwrap_or(0);
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: Self::TUNNEL,
            payload_len: inner.len,
            ttl: inner.hop_limit,
            tos,
            ident,
            dont_frag: inner.dont_fragment,
        }
        .emit(&mut Ipv4Packet::new_unchecked(outer));
    }
}

impl Ip for Ipv6Addr {
    const ETHERTYPE: EtherType = EtherType::IPV6;
    const ICMP: IpProtocol = IpProtocol::ICMPV6;
    const TUNNEL: IpProtocol = IpProtocol::IPV6;
    const HEADER_LEN: usize = 40;

    fn plane(planes: &Planes) -> &Plane<Self> {
        &planes.v6
    }

    fn plane_mut(planes: &mut Planes) -> &mut Plane<Self> {
        &mut planes.v6
    }

    #[inline]
    fn parse(packet: &[u8]) -> Result<Header<Self>, DropReason> {
        let ip = match Ipv6Packet::new_checked(packet) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Err(DropReason::Ipv6Truncated),
            Err(_) => return Err(DropReason::Ipv6Malformed),
        };
        let upper = ip.upper_layer().map_err(|_| DropReason::Ipv6Malformed)?;
        Ok(Header {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            protocol: upper.protocol,
            l4: upper.offset,
            len: 40 + usize::from(ip.payload_len()),
            hop_limit: ip.hop_limit(),
            fragment: upper.fragment.is_some(),
            dont_fragment: true,
        })
    }

    fn translate(
        packet: &mut [u8],
        header: &Header<Self>,
        src: Option<(Self, u16)>,
        dst: Option<(Self, u16)>,
    ) {
        let mut ip = Ipv6Packet::new_unchecked(&mut packet[..header.len]);
        ip.set_hop_limit(ip.hop_limit().saturating_sub(1));
        let old_src = src.map(|(address, _)| {
            let old = ip.src_addr();
            ip.set_src_addr(address);
            old
        });
        let old_dst = dst.map(|(address, _)| {
            let old = ip.dst_addr();
            ip.set_dst_addr(address);
            old
        });
        let segment = &mut packet[header.l4..header.len];
        macro_rules! rewrite {
            ($view:ident) => {{
                let mut l4 = $view::new_unchecked(segment);
                if let (Some((address, port)), Some(old)) = (src, old_src) {
                    l4.update_checksum_for_address(&old.octets(), &address.octets());
                    l4.rewrite_src_port(port);
                }
                if let (Some((address, port)), Some(old)) = (dst, old_dst) {
                    l4.update_checksum_for_address(&old.octets(), &address.octets());
                    l4.rewrite_dst_port(port);
                }
            }};
        }
        if header.protocol == IpProtocol::TCP {
            rewrite!(TcpPacket);
        } else {
            rewrite!(UdpPacket);
        }
    }

    fn write_tunnel_header(
        outer: &mut [u8],
        inner: &Header<Self>,
        inner_packet: &[u8],
        src: Self,
        dst: Self,
        _ident: u16,
    ) {
        let (traffic_class, flow_label) = Ipv6Packet::new_checked(inner_packet)
            .map(|ip| (ip.traffic_class(), ip.flow_label()))
            .unwrap_or((0, 0));
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: Self::TUNNEL,
            payload_len: inner.len,
            hop_limit: inner.hop_limit,
            traffic_class,
            flow_label,
        }
        .emit(&mut Ipv6Packet::new_unchecked(outer));
    }
}
