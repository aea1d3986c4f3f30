//! Whole frames built from the `Repr` types, for unit tests, fuzz seeds and
//! benchmarks: checksums are right, the TTL or hop limit is [`TTL`]
//! (Neighbour Discovery: 255), IPv4 sets DF with ident 0, and TCP
//! segments carry a window of [`TCP_WINDOW`] and no options unless built
//! from a [`TcpRepr`].
//!
//! These allocate, so they have no place on the per-packet path.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::checksum::{pseudo_header_v4, pseudo_header_v6};
use super::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    MacAddr, NeighborFlags, TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr, VlanTag,
    solicited_node_multicast,
};

/// The TTL and hop limit of built packets.
pub const TTL: u8 = 64;

/// The hop limit Neighbour Discovery requires (RFC 4861).
pub const NDP_HOP_LIMIT: u8 = 255;

/// The window of built TCP segments (Linux's initial window).
pub const TCP_WINDOW: u16 = 64240;

/// What an IP packet built here carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(TcpRepr<'a>),
    Udp(UdpRepr<'a>),
    Icmpv4(Icmpv4Repr<'a>),
    Icmpv6(Icmpv6Repr<'a>),
    /// Any other protocol, bytes as given.
    Raw(IpProtocol, &'a [u8]),
}

impl Transport<'_> {
    pub const fn protocol(&self) -> IpProtocol {
        match self {
            Self::Tcp(_) => IpProtocol::TCP,
            Self::Udp(_) => IpProtocol::UDP,
            Self::Icmpv4(_) => IpProtocol::ICMP,
            Self::Icmpv6(_) => IpProtocol::ICMPV6,
            Self::Raw(protocol, _) => *protocol,
        }
    }

    pub const fn buffer_len(&self) -> usize {
        match self {
            Self::Tcp(repr) => repr.buffer_len(),
            Self::Udp(repr) => repr.buffer_len(),
            Self::Icmpv4(repr) => repr.buffer_len(),
            Self::Icmpv6(repr) => repr.buffer_len(),
            Self::Raw(_, bytes) => bytes.len(),
        }
    }

    /// Writes into `buffer` of exactly [`Self::buffer_len`] bytes, with the
    /// pseudo-header sum `pseudo` where the protocol has one.
    pub fn emit(&self, buffer: &mut [u8], pseudo: u16) {
        match self {
            Self::Tcp(repr) => repr.emit(&mut TcpPacket::new_unchecked(buffer), pseudo),
            Self::Udp(repr) => repr.emit(&mut UdpPacket::new_unchecked(buffer), pseudo),
            Self::Icmpv4(repr) => repr.emit(&mut Icmpv4Packet::new_unchecked(buffer)),
            Self::Icmpv6(repr) => repr.emit(&mut Icmpv6Packet::new_unchecked(buffer), pseudo),
            Self::Raw(_, bytes) => buffer.copy_from_slice(bytes),
        }
    }
}

/// An Ethernet frame around `payload`.
pub fn ethernet_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ethertype: EtherType,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0; EthernetFrame::<&[u8]>::HEADER_LEN + payload.len()];
    let repr = EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype,
    };
    let mut view = EthernetFrame::new_unchecked(&mut frame[..]);
    repr.emit(&mut view);
    view.payload_mut().copy_from_slice(payload);
    frame
}

/// An Ethernet frame with an IP packet carrying `transport`, IPv4 or IPv6
/// as the addresses are.
pub fn ip_frame<A: Family>(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: A,
    dst: A,
    transport: &Transport<'_>,
) -> Vec<u8> {
    ethernet_frame(
        src_mac,
        dst_mac,
        A::ETHERTYPE,
        &A::packet(src, dst, transport),
    )
}

/// An IP address family: how the generic builders wrap a transport.
pub trait Family: Copy {
    const ETHERTYPE: EtherType;

    /// An IP packet from `src` to `dst` carrying `transport`.
    fn packet(src: Self, dst: Self, transport: &Transport<'_>) -> Vec<u8>;

    /// An ICMP or ICMPv6 echo request.
    fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Transport<'_>;
}

impl Family for Ipv4Addr {
    const ETHERTYPE: EtherType = EtherType::IPV4;

    fn packet(src: Self, dst: Self, transport: &Transport<'_>) -> Vec<u8> {
        let (protocol, len) = (transport.protocol(), transport.buffer_len());
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len: len,
            ttl: TTL,
            tos: 0,
            ident: 0,
            dont_frag: true,
        };
        let pseudo = pseudo_header_v4(src, dst, protocol, len as u32);
        ip_packet(repr.buffer_len(), transport, pseudo, |header| {
            repr.emit(&mut Ipv4Packet::new_unchecked(header));
        })
    }

    fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Transport<'_> {
        Transport::Icmpv4(Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        })
    }
}

impl Family for Ipv6Addr {
    const ETHERTYPE: EtherType = EtherType::IPV6;

    fn packet(src: Self, dst: Self, transport: &Transport<'_>) -> Vec<u8> {
        let (next_header, len) = (transport.protocol(), transport.buffer_len());
        let hop_limit = match transport {
            Transport::Icmpv6(
                Icmpv6Repr::NeighborSolicit { .. } | Icmpv6Repr::NeighborAdvert { .. },
            ) => NDP_HOP_LIMIT,
            _ => TTL,
        };
        let repr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len: len,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        };
        let pseudo = pseudo_header_v6(&src, &dst, next_header, len as u32);
        ip_packet(repr.buffer_len(), transport, pseudo, |header| {
            repr.emit(&mut Ipv6Packet::new_unchecked(header));
        })
    }

    fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Transport<'_> {
        Transport::Icmpv6(Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        })
    }
}

/// A packet of a `header_len`-byte header that `emit_header` writes, then
/// `transport` with the pseudo-header sum `pseudo`.
fn ip_packet(
    header_len: usize,
    transport: &Transport<'_>,
    pseudo: u16,
    emit_header: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut packet = vec![0; header_len + transport.buffer_len()];
    let (header, payload) = packet.split_at_mut(header_len);
    emit_header(header);
    transport.emit(payload, pseudo);
    packet
}

/// A TCP segment with the builder's window and no options.
pub const fn tcp_repr(
    src_port: u16,
    dst_port: u16,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> TcpRepr<'_> {
    TcpRepr {
        src_port,
        dst_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: TCP_WINDOW,
        mss: None,
        payload,
    }
}

/// A socket address of either family.
pub trait Endpoint: Copy {
    type Addr: Family;

    fn addr(&self) -> Self::Addr;

    fn port(&self) -> u16;
}

impl Endpoint for SocketAddrV4 {
    type Addr = Ipv4Addr;

    fn addr(&self) -> Ipv4Addr {
        *self.ip()
    }

    fn port(&self) -> u16 {
        SocketAddrV4::port(self)
    }
}

impl Endpoint for SocketAddrV6 {
    type Addr = Ipv6Addr;

    fn addr(&self) -> Ipv6Addr {
        *self.ip()
    }

    fn port(&self) -> u16 {
        SocketAddrV6::port(self)
    }
}

/// Declares a family-named wrapper of a generic builder, so that callers
/// get its concrete types (and `"198.18.0.2:80".parse()` infers).
macro_rules! family_builder {
    ($(#[$attr:meta])* $name:ident = $generic:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$attr])*
        pub fn $name($($arg: $ty),*) -> Vec<u8> {
            $generic($($arg),*)
        }
    };
}

family_builder! {
    /// [`ip_frame`] for IPv4.
    ipv4_frame = ip_frame(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, transport: &Transport<'_>)
}

family_builder! {
    /// [`ip_frame`] for IPv6.
    ipv6_frame = ip_frame(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, transport: &Transport<'_>)
}

family_builder! {
    /// [`tcp_frame`] for IPv4.
    #[allow(clippy::too_many_arguments)]
    tcp_v4_frame = tcp_frame(
        src_mac: MacAddr, dst_mac: MacAddr, src: SocketAddrV4, dst: SocketAddrV4,
        flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]
    )
}

family_builder! {
    /// [`tcp_frame`] for IPv6.
    #[allow(clippy::too_many_arguments)]
    tcp_v6_frame = tcp_frame(
        src_mac: MacAddr, dst_mac: MacAddr, src: SocketAddrV6, dst: SocketAddrV6,
        flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]
    )
}

family_builder! {
    /// [`udp_frame`] for IPv4.
    udp_v4_frame = udp_frame(src_mac: MacAddr, dst_mac: MacAddr, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8])
}

family_builder! {
    /// [`udp_frame`] for IPv6.
    udp_v6_frame = udp_frame(src_mac: MacAddr, dst_mac: MacAddr, src: SocketAddrV6, dst: SocketAddrV6, payload: &[u8])
}

family_builder! {
    /// [`icmp_echo_request_frame`] for IPv4.
    icmpv4_echo_request_frame = icmp_echo_request_frame(
        src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq_no: u16, data: &[u8]
    )
}

family_builder! {
    /// [`icmp_echo_request_frame`] for IPv6.
    icmpv6_echo_request_frame = icmp_echo_request_frame(
        src_mac: MacAddr, dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, ident: u16, seq_no: u16, data: &[u8]
    )
}

/// A TCP segment (see [`tcp_repr`]) in a frame of the endpoints' family.
/// Every field is positional so that a table of test cases reads like the
/// packets it describes.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame<E: Endpoint>(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: E,
    dst: E,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = tcp_repr(src.port(), dst.port(), flags, seq, ack, payload);
    ip_frame(
        src_mac,
        dst_mac,
        src.addr(),
        dst.addr(),
        &Transport::Tcp(tcp),
    )
}

/// A UDP datagram in a frame of the endpoints' family.
pub fn udp_frame<E: Endpoint>(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: E,
    dst: E,
    payload: &[u8],
) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        payload,
    };
    ip_frame(
        src_mac,
        dst_mac,
        src.addr(),
        dst.addr(),
        &Transport::Udp(udp),
    )
}

/// An echo request, ICMP or ICMPv6 as the addresses are.
pub fn icmp_echo_request_frame<A: Family>(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: A,
    dst: A,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Vec<u8> {
    ip_frame(
        src_mac,
        dst_mac,
        src,
        dst,
        &A::echo_request(ident, seq_no, data),
    )
}

/// A broadcast ARP request: who has `target_ip`? Tell `src_ip`.
pub fn arp_request(src_mac: MacAddr, src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        MacAddr::BROADCAST,
        &ArpRepr {
            operation: ArpOperation::REQUEST,
            source_hardware_addr: src_mac,
            source_protocol_addr: src_ip,
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: target_ip,
        },
    )
}

/// A unicast ARP reply: `src_ip` is at `src_mac`, sent to `dst_mac`/`dst_ip`.
pub fn arp_reply(
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_mac: MacAddr,
    dst_ip: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(
        dst_mac,
        &ArpRepr {
            operation: ArpOperation::REPLY,
            source_hardware_addr: src_mac,
            source_protocol_addr: src_ip,
            target_hardware_addr: dst_mac,
            target_protocol_addr: dst_ip,
        },
    )
}

fn arp_frame(dst_mac: MacAddr, repr: &ArpRepr) -> Vec<u8> {
    let mut packet = vec![0; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut packet[..]));
    ethernet_frame(repr.source_hardware_addr, dst_mac, EtherType::ARP, &packet)
}

/// A neighbor solicitation for `target` from `src_ip`, sent to the
/// target's solicited-node group with a source link-layer address option,
/// as address resolution does.
pub fn neighbor_solicit_frame(src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node_multicast(&target);
    let icmp = Icmpv6Repr::NeighborSolicit {
        target_addr: target,
        source_link_layer_addr: Some(src_mac),
    };
    ipv6_frame(
        src_mac,
        MacAddr::ipv6_multicast(&group),
        src_ip,
        group,
        &Transport::Icmpv6(icmp),
    )
}

/// A solicited neighbor advertisement: `src_ip` is at `src_mac`, with the
/// override flag and a target link-layer address option.
pub fn neighbor_advert_frame(
    src_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_mac: MacAddr,
    dst_ip: Ipv6Addr,
) -> Vec<u8> {
    let icmp = Icmpv6Repr::NeighborAdvert {
        flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
        target_addr: src_ip,
        target_link_layer_addr: Some(src_mac),
    };
    ipv6_frame(src_mac, dst_mac, src_ip, dst_ip, &Transport::Icmpv6(icmp))
}

/// `frame` with an 802.1Q tag (priority 0) for `vlan_id` inserted after
/// the addresses. A frame shorter than its addresses is returned as is.
pub fn with_vlan(frame: &[u8], vlan_id: u16) -> Vec<u8> {
    let Some((addresses, rest)) = frame.split_at_checked(12) else {
        return frame.to_vec();
    };
    let mut tagged = Vec::with_capacity(frame.len() + VlanTag::<&[u8]>::HEADER_LEN);
    tagged.extend_from_slice(addresses);
    tagged.extend_from_slice(&EtherType::VLAN.0.to_be_bytes());
    tagged.extend_from_slice(&(vlan_id & 0x0FFF).to_be_bytes());
    tagged.extend_from_slice(rest);
    tagged
}
