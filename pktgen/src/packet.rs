//! The frames the client side sends: a template per profile, built once
//! with `dataplane::wire::builder`, then copied and patched per packet
//! (source address, source port, and for sampled packets the latency
//! stamp), with both checksums updated incrementally (RFC 1624) from the
//! template's.
//!
//! # Latency stamp
//!
//! A sampled packet carries its sample sequence number in the IPv4
//! identification field (0 on every other packet the generator sends) and,
//! at the start of its TCP or UDP payload, the magic [`STAMP_MAGIC`] and
//! the low 32 bits of the TSC when it was built. Six bytes, so it fits the
//! payload of a 64-byte TCP frame; 32 bits of TSC wrap after about 1.8 s
//! at 2.3 GHz, far above any latency through a director. NAT, DR,
//! FULLNAT, testpmd's io and 5tswap forwarding and the kernel keep both
//! the identification and the payload. TUN wraps the packet in an outer
//! IPv4 header (protocol 4, its own identification): [`read_stamp`] looks
//! through it at the inner packet, 20 bytes further on.

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::wire::builder;
use dataplane::wire::checksum;
use dataplane::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, TcpFlags, TcpPacket,
};
use serde::{Deserialize, Serialize};

/// Bytes of the Ethernet frame check sequence, counted in `--size` (as in
/// RFC 2544) but added by the NIC, not stored in the mbuf.
pub const FCS_LEN: usize = 4;
/// Smallest frame size, FCS included.
pub const MIN_FRAME: u16 = 64;
/// Largest frame size without jumbo frames, FCS included.
pub const MAX_FRAME: u16 = 1518;

/// Offsets in an untagged IPv4 frame without IP options (the only kind the
/// generator builds).
pub(crate) const IP: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
pub(crate) const L4: usize = IP + Ipv4Packet::<&[u8]>::HEADER_LEN;
const IP_IDENT: usize = IP + 4;
const IP_PROTOCOL: usize = IP + 9;
const IP_CHECKSUM: usize = IP + 10;
const IP_SRC: usize = IP + 12;
const L4_SRC_PORT: usize = L4;
const UDP_CHECKSUM: usize = L4 + 6;
const TCP_CHECKSUM: usize = L4 + 16;

/// Marks the payload of a stamped packet (ASCII "RV").
pub const STAMP_MAGIC: u16 = 0x5256;
/// Bytes of the stamp: magic and 32 bits of TSC.
pub const STAMP_LEN: usize = 6;

/// The client's initial sequence number; every segment's numbers derive
/// from it and from [`SERVER_ISN`], so no flow needs state.
pub const CLIENT_ISN: u32 = 0x1000_0000;
/// The responder's initial sequence number.
pub const SERVER_ISN: u32 = 0x2000_0000;

/// What the client side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// UDP datagrams on the flows, round after round.
    Udp,
    /// ACK segments with payload on the flows, after one SYN per flow so
    /// that the director creates each connection.
    TcpEstablished,
    /// SYNs only, each from a new tuple: measures new connections.
    Syn,
    /// SYN; on the SYN-ACK, ACK + data + FIN; on the FIN-ACK, the last
    /// ACK: whole short connections, each from a new tuple.
    Handshake,
}

impl Profile {
    /// Whether the profile's segments are TCP.
    pub fn is_tcp(self) -> bool {
        !matches!(self, Profile::Udp)
    }

    /// Whether every packet the generator originates opens a connection
    /// from a new tuple (as opposed to replaying a fixed set of flows).
    pub fn opens_connections(self) -> bool {
        matches!(self, Profile::Syn | Profile::Handshake)
    }

    /// The kind of frame the generator originates in the main phase.
    pub fn kind(self) -> FrameKind {
        match self {
            Profile::Udp => FrameKind::Udp,
            Profile::TcpEstablished => FrameKind::TcpData,
            Profile::Syn | Profile::Handshake => FrameKind::Syn,
        }
    }

    /// The kind of frame that opens each flow before the main phase, if
    /// the profile has such a warm-up round.
    pub fn warmup_kind(self) -> Option<FrameKind> {
        match self {
            Profile::Udp => Some(FrameKind::Udp),
            Profile::TcpEstablished => Some(FrameKind::Syn),
            Profile::Syn | Profile::Handshake => None,
        }
    }
}

/// A frame the generator originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Udp,
    /// ACK|PSH with payload, numbered as after a handshake.
    TcpData,
    /// A bare SYN in a minimum-size frame.
    Syn,
}

/// Who the client side is and whom it sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The client side port's MAC.
    pub client_mac: MacAddr,
    /// The next hop's MAC: the director's port towards the clients.
    pub next_hop_mac: MacAddr,
    /// The service.
    pub vip: SocketAddrV4,
}

/// The payload length that makes a frame of `frame_size` bytes (FCS
/// included) with headers of `headers` bytes; at least the stamp.
pub fn payload_len(frame_size: u16, headers: usize) -> usize {
    (usize::from(frame_size) - FCS_LEN)
        .saturating_sub(headers)
        .max(STAMP_LEN)
}

/// Bytes of Ethernet, IPv4 and TCP headers without options.
pub const TCP_HEADERS: usize = L4 + TcpPacket::<&[u8]>::HEADER_LEN;
/// Bytes of Ethernet, IPv4 and UDP headers.
pub const UDP_HEADERS: usize = L4 + 8;
/// The shortest frame Ethernet carries, without FCS; shorter ones are
/// padded with zeros.
pub const MIN_DATA: usize = MIN_FRAME as usize - FCS_LEN;

/// A frame to copy and patch per packet.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    /// The source tuple the bytes and checksums were built with.
    base: (Ipv4Addr, u16),
    /// Offset of the transport checksum; whether 0 means "none" (UDP).
    l4_checksum: usize,
    udp: bool,
    /// Offset of the stamp in the payload, if the frame has room for one.
    stamp: Option<usize>,
}

impl Template {
    /// The template for `kind` frames of `frame_size` bytes (FCS included;
    /// SYNs are always minimum-size) from the first tuple `base`.
    pub fn new(
        kind: FrameKind,
        endpoints: &Endpoints,
        frame_size: u16,
        base: (Ipv4Addr, u16),
    ) -> Template {
        let source = SocketAddrV4::new(base.0, base.1);
        let (mac, next_hop, vip) = (endpoints.client_mac, endpoints.next_hop_mac, endpoints.vip);
        let mut bytes = match kind {
            FrameKind::Udp => {
                let payload = vec![0; payload_len(frame_size, UDP_HEADERS)];
                builder::udp_v4_frame(mac, next_hop, source, vip, &payload)
            }
            FrameKind::TcpData => {
                let payload = vec![0; payload_len(frame_size, TCP_HEADERS)];
                let flags = TcpFlags::ACK | TcpFlags::PSH;
                let (seq, ack) = (CLIENT_ISN.wrapping_add(1), SERVER_ISN.wrapping_add(1));
                builder::tcp_v4_frame(mac, next_hop, source, vip, flags, seq, ack, &payload)
            }
            FrameKind::Syn => builder::tcp_v4_frame(
                mac,
                next_hop,
                source,
                vip,
                TcpFlags::SYN,
                CLIENT_ISN,
                0,
                &[],
            ),
        };
        // The builder sets DF with ident 0, which unsampled packets keep.
        bytes.resize(bytes.len().max(MIN_DATA), 0);
        let (l4_checksum, headers) = match kind {
            FrameKind::Udp => (UDP_CHECKSUM, UDP_HEADERS),
            FrameKind::TcpData | FrameKind::Syn => (TCP_CHECKSUM, TCP_HEADERS),
        };
        Template {
            bytes,
            base,
            l4_checksum,
            udp: kind == FrameKind::Udp,
            stamp: (kind != FrameKind::Syn).then_some(headers),
        }
    }

    /// Bytes of each frame, FCS excluded.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a template holds a whole frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether frames of this template can carry a latency stamp.
    pub fn stampable(&self) -> bool {
        self.stamp.is_some()
    }

    /// Writes the frame from `tuple` into `out` (exactly [`Self::len`]
    /// bytes), stamped with `stamp` = (sequence, TSC) when given and the
    /// frame has room.
    #[inline]
    pub fn write(&self, out: &mut [u8], tuple: (Ipv4Addr, u16), stamp: Option<(u16, u32)>) {
        out.copy_from_slice(&self.bytes);
        let (address, port) = tuple;
        let (old_address, old_port) = (self.base.0.to_bits(), self.base.1);
        let new_address = address.to_bits();
        out[IP_SRC..IP_SRC + 4].copy_from_slice(&new_address.to_be_bytes());
        out[L4_SRC_PORT..L4_SRC_PORT + 2].copy_from_slice(&port.to_be_bytes());
        let mut ip_sum = checksum::update_u32(read16(out, IP_CHECKSUM), old_address, new_address);
        let mut l4_sum = read16(out, self.l4_checksum);
        l4_sum = checksum::update_u32(l4_sum, old_address, new_address);
        l4_sum = checksum::update_u16(l4_sum, old_port, port);
        if let (Some((sequence, tsc)), Some(at)) = (stamp, self.stamp) {
            out[IP_IDENT..IP_IDENT + 2].copy_from_slice(&sequence.to_be_bytes());
            ip_sum = checksum::update_u16(ip_sum, 0, sequence);
            write_stamp(&mut out[at..], tsc);
            l4_sum = checksum::update_u16(l4_sum, 0, STAMP_MAGIC);
            l4_sum = checksum::update_u32(l4_sum, 0, tsc);
        }
        // UDP sends a computed 0 as 0xFFFF: 0 would mean "no checksum".
        if self.udp && l4_sum == 0 {
            l4_sum = 0xFFFF;
        }
        out[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&ip_sum.to_be_bytes());
        out[self.l4_checksum..self.l4_checksum + 2].copy_from_slice(&l4_sum.to_be_bytes());
    }
}

#[inline]
fn read16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Writes the stamp's magic and `tsc` at the start of `payload`; does
/// nothing if the payload is shorter than [`STAMP_LEN`]. The IPv4
/// identification (the sample's sequence) is the caller's to set.
#[inline]
pub fn write_stamp(payload: &mut [u8], tsc: u32) {
    if let Some(stamp) = payload.get_mut(..STAMP_LEN) {
        stamp[..2].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
        stamp[2..].copy_from_slice(&tsc.to_be_bytes());
    }
}

/// The TSC stamp of a frame the generator stamped (see the module docs),
/// or `None`; an IP-in-IP frame (TUN) is read at its inner packet. Reads
/// only what it needs, so that unsampled frames cost a few comparisons.
#[inline]
pub fn read_stamp(frame: &[u8]) -> Option<u32> {
    // The inner packet of IP-in-IP follows an outer header without
    // options (as rvsd and the kernel build it).
    let ip_at = if frame.get(IP_PROTOCOL) == Some(&IpProtocol::IPIP.0) {
        L4
    } else {
        IP
    };
    let ident_at = ip_at + (IP_IDENT - IP);
    if frame.len() < ip_at + (L4 - IP) + STAMP_LEN || read16(frame, ident_at) == 0 {
        return None;
    }
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EtherType::IPV4 {
        return None;
    }
    let mut bytes = ethernet.payload();
    let outer = Ipv4Packet::new_checked(bytes).ok()?;
    if outer.protocol() == IpProtocol::IPIP {
        bytes = bytes.get(ip_at - IP..)?;
    }
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    let payload = match ip.protocol() {
        IpProtocol::UDP => ip.payload().get(8..)?,
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
            ip.payload().get(usize::from(tcp.header_len())..)?
        }
        _ => return None,
    };
    match *payload {
        [m0, m1, t0, t1, t2, t3, ..] if u16::from_be_bytes([m0, m1]) == STAMP_MAGIC => {
            Some(u32::from_be_bytes([t0, t1, t2, t3]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::checksum::pseudo_header_v4;
    use dataplane::wire::{TcpRepr, UdpPacket};
    use proptest::prelude::*;

    pub(crate) fn endpoints() -> Endpoints {
        Endpoints {
            client_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            vip: "198.18.0.10:80".parse().unwrap(),
        }
    }

    /// Parses `frame` back with dataplane::wire and checks that both
    /// checksums are what a full recomputation gives, bit for bit.
    fn check_frame(frame: &[u8], tuple: (Ipv4Addr, u16), kind: FrameKind) {
        let ethernet = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(ethernet.ethertype(), EtherType::IPV4);
        assert_eq!(ethernet.src_addr(), endpoints().client_mac);
        let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (tuple.0, *endpoints().vip.ip())
        );
        let mut recomputed = ip.as_ref()[..usize::from(ip.total_len())].to_vec();
        let mut copy = Ipv4Packet::new_unchecked(&mut recomputed[..]);
        copy.fill_checksum();
        assert_eq!(copy.checksum(), ip.checksum(), "IPv4 checksum");
        let length = ip.payload().len() as u32;
        let protocol = ip.protocol();
        let pseudo = pseudo_header_v4(ip.src_addr(), ip.dst_addr(), protocol, length);
        let mut segment = ip.payload().to_vec();
        match kind {
            FrameKind::Udp => {
                let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                assert!(udp.verify_checksum(pseudo));
                assert_eq!(udp.src_port(), tuple.1);
                let mut copy = UdpPacket::new_unchecked(&mut segment[..]);
                copy.fill_checksum(pseudo);
                assert_eq!(copy.checksum(), udp.checksum(), "UDP checksum");
            }
            FrameKind::TcpData | FrameKind::Syn => {
                let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(tcp.verify_checksum(pseudo));
                let repr = TcpRepr::parse(&tcp).unwrap();
                assert_eq!(repr.src_port, tuple.1);
                assert_eq!(repr.flags.contains(TcpFlags::SYN), kind == FrameKind::Syn);
                let mut copy = TcpPacket::new_unchecked(&mut segment[..]);
                copy.fill_checksum(pseudo);
                assert_eq!(copy.checksum(), tcp.checksum(), "TCP checksum");
            }
        }
    }

    fn kinds() -> impl Strategy<Value = FrameKind> {
        prop_oneof![
            Just(FrameKind::Udp),
            Just(FrameKind::TcpData),
            Just(FrameKind::Syn)
        ]
    }

    proptest! {
        #[test]
        fn patched_frames_are_valid(
            kind in kinds(),
            size in MIN_FRAME..=MAX_FRAME,
            address: u32,
            port: u16,
            stamp in proptest::option::of((1u16.., any::<u32>())),
        ) {
            let base = (Ipv4Addr::new(198, 19, 0, 0), 1024);
            let template = Template::new(kind, &endpoints(), size, base);
            let expected = match kind {
                FrameKind::Syn => MIN_DATA,
                _ => usize::from(size) - FCS_LEN,
            };
            prop_assert_eq!(template.len(), expected);
            let tuple = (Ipv4Addr::from_bits(address), port);
            let mut frame = vec![0; template.len()];
            template.write(&mut frame, tuple, stamp);
            check_frame(&frame, tuple, kind);
            let expected_stamp = stamp.filter(|_| template.stampable()).map(|(_, tsc)| tsc);
            prop_assert_eq!(read_stamp(&frame), expected_stamp);
        }
    }

    #[test]
    fn a_64_byte_tcp_frame_holds_a_stamp() {
        let base = (Ipv4Addr::new(198, 19, 0, 0), 1024);
        let template = Template::new(FrameKind::TcpData, &endpoints(), MIN_FRAME, base);
        assert_eq!(template.len(), 60);
        let mut frame = vec![0; 60];
        template.write(&mut frame, base, Some((7, 0xdead_beef)));
        assert_eq!(read_stamp(&frame), Some(0xdead_beef));
        assert_eq!(read16(&frame, IP_IDENT), 7);
    }

    /// What TUN forwarding makes of `frame`: an outer IPv4 header (DIP to
    /// RIP, protocol 4, identification `ident`) before its IP packet.
    fn tunnelled(frame: &[u8], ident: u16) -> Vec<u8> {
        let inner = &frame[IP..];
        let mut outer = vec![0u8; IP + 20];
        outer[..IP].copy_from_slice(&frame[..IP]);
        let mut header = [0u8; 20];
        header[0] = 0x45;
        header[2..4].copy_from_slice(&(20 + inner.len() as u16).to_be_bytes());
        header[4..6].copy_from_slice(&ident.to_be_bytes());
        header[8] = 64;
        header[9] = IpProtocol::IPIP.0;
        header[12..16].copy_from_slice(&[198, 18, 1, 1]);
        header[16..20].copy_from_slice(&[198, 18, 1, 11]);
        outer[IP..].copy_from_slice(&header);
        outer.extend_from_slice(inner);
        Ipv4Packet::new_unchecked(&mut outer[IP..]).fill_checksum();
        outer
    }

    #[test]
    fn stamps_are_found_inside_a_tunnel() {
        let base = (Ipv4Addr::new(198, 19, 0, 0), 1024);
        for kind in [FrameKind::Udp, FrameKind::TcpData] {
            let template = Template::new(kind, &endpoints(), MIN_FRAME, base);
            let mut frame = vec![0; template.len()];
            template.write(&mut frame, base, Some((9, 0x0123_4567)));
            for outer_ident in [0, 1, 0xffff] {
                let tunnelled = tunnelled(&frame, outer_ident);
                assert_eq!(read_stamp(&tunnelled), Some(0x0123_4567), "{kind:?}");
            }
            template.write(&mut frame, base, None);
            assert_eq!(
                read_stamp(&tunnelled(&frame, 5)),
                None,
                "{kind:?} unsampled"
            );
        }
    }
}
