//! What the director answers itself: ARP and Neighbour Discovery for its
//! addresses, VIPs and local addresses; ICMP and ICMPv6 echo; the probes
//! that resolve next hops; and the ICMP errors it sends (port unreachable,
//! time exceeded, fragmentation needed / packet too big).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ip::{Header, Ip};
use super::{Director, ETHERNET_HEADER, Request, Verdict};
use crate::counters::{DropReason, Event};
use crate::family::contains;
use crate::frame::Frame;
use crate::snapshot::FamilyView;
use crate::steering::NeighbourNews;
use crate::time::{Duration, Instant};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Type, Icmpv6Packet, Icmpv6Repr, Icmpv6Type, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, MacAddr, NeighborFlags, checksum, solicited_node_multicast,
};

const ICMP_HEADER: usize = 8;
const DEFAULT_HOP_LIMIT: u8 = 64;
/// Neighbour Discovery travels with this hop limit only (RFC 4861).
const ND_HOP_LIMIT: u8 = 255;
/// ICMP errors a worker may send per second (as Linux's icmp_ratelimit).
const ICMP_ERRORS_PER_SECOND: u32 = 1000;
const NEIGHBOR_SOLICIT_LEN: usize = 24 + 8;
const NEIGHBOR_ADVERT_LEN: usize = 24 + 8;

/// The ICMP errors the director sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IcmpError {
    /// No real server can take the connection (as IPVS).
    PortUnreachable,
    /// The hop limit ran out.
    TimeExceeded,
    /// The packet does not fit the next link: fragmentation needed (IPv4)
    /// or packet too big (IPv6), with the size that fits.
    TooBig(u32),
}

/// How each family spells its ICMP errors.
pub(super) trait Icmp: Ip {
    /// An error and its quote fit in this many bytes of IP packet.
    const ERROR_MAX: usize;
    /// Type, code and the header's second word for `error`.
    fn error_header(error: IcmpError) -> (u8, u8, u32);
    /// Whether the packet is itself an ICMP error (no error about it).
    fn is_icmp_error(header: &Header<Self>, packet: &[u8]) -> bool;
    /// Writes an IP header carrying `payload_len` bytes of ICMP.
    fn write_icmp_header(packet: &mut [u8], src: Self, dst: Self, payload_len: usize);
    /// Fills the checksum of an ICMP message sent from `src` to `dst`.
    fn fill_icmp_checksum(message: &mut [u8], src: Self, dst: Self);
}

impl Icmp for Ipv4Addr {
    // RFC 1812 4.3.2.3: as much of the offending packet as fits in 576.
    const ERROR_MAX: usize = 576;

    fn error_header(error: IcmpError) -> (u8, u8, u32) {
        match error {
            IcmpError::PortUnreachable => (Icmpv4Type::DEST_UNREACHABLE.0, 3, 0),
            IcmpError::TimeExceeded => (Icmpv4Type::TIME_EXCEEDED.0, 0, 0),
            // Code 4, the next-hop MTU in the word's low half (RFC 1191).
            IcmpError::TooBig(mtu) => (Icmpv4Type::DEST_UNREACHABLE.0, 4, mtu.min(0xFFFF)),
        }
    }

    fn is_icmp_error(header: &Header<Self>, packet: &[u8]) -> bool {
        header.protocol == IpProtocol::ICMP
            && packet
                .get(header.l4)
                .is_some_and(|&kind| Icmpv4Type(kind).is_error())
    }

    fn write_icmp_header(packet: &mut [u8], src: Self, dst: Self, payload_len: usize) {
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::ICMP,
            payload_len,
            ttl: DEFAULT_HOP_LIMIT,
            tos: 0,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(packet));
    }

    fn fill_icmp_checksum(message: &mut [u8], _src: Self, _dst: Self) {
        Icmpv4Packet::new_unchecked(message).fill_checksum();
    }
}

impl Icmp for Ipv6Addr {
    // RFC 4443 2.4(c): the error fits the minimum IPv6 MTU.
    const ERROR_MAX: usize = 1280;

    fn error_header(error: IcmpError) -> (u8, u8, u32) {
        match error {
            IcmpError::PortUnreachable => (Icmpv6Type::DEST_UNREACHABLE.0, 4, 0),
            IcmpError::TimeExceeded => (Icmpv6Type::TIME_EXCEEDED.0, 0, 0),
            IcmpError::TooBig(mtu) => (Icmpv6Type::PACKET_TOO_BIG.0, 0, mtu),
        }
    }

    fn is_icmp_error(header: &Header<Self>, packet: &[u8]) -> bool {
        header.protocol == IpProtocol::ICMPV6
            && packet
                .get(header.l4)
                .is_some_and(|&kind| Icmpv6Type(kind).is_error())
    }

    fn write_icmp_header(packet: &mut [u8], src: Self, dst: Self, payload_len: usize) {
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::ICMPV6,
            payload_len,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(packet));
    }

    fn fill_icmp_checksum(message: &mut [u8], src: Self, dst: Self) {
        let pseudo =
            checksum::pseudo_header_v6(&src, &dst, IpProtocol::ICMPV6, message.len() as u32);
        Icmpv6Packet::new_unchecked(message).fill_checksum(pseudo);
    }
}

impl Director {
    /// Turns the frame into an ICMP `error` about itself, from `from`, sent
    /// back to its source through the port it came from; `None` when no
    /// error may be sent (rate limit, or a packet that must not draw one).
    pub(super) fn icmp_error<A: Icmp, F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        header: &Header<A>,
        error: IcmpError,
        from: A,
    ) -> Option<Verdict> {
        if now.saturating_since(self.icmp_window) >= Duration::from_secs(1) {
            self.icmp_window = now;
            self.icmp_sent = 0;
        }
        if self.icmp_sent >= ICMP_ERRORS_PER_SECOND {
            return None;
        }
        let port_mac = self.snapshot.ports.get(usize::from(port))?.mac;
        let client_mac = {
            let bytes = frame.as_ref();
            let ethernet = EthernetFrame::new_unchecked(bytes);
            // Never about multicast, unspecified sources, fragments or
            // other ICMP errors.
            if ethernet.dst_addr().is_multicast()
                || header.src.is_multicast()
                || header.src == A::UNSPECIFIED
                || header.fragment
                || A::is_icmp_error(header, &bytes[ETHERNET_HEADER..])
            {
                return None;
            }
            ethernet.src_addr()
        };
        let quoted = header.len.min(A::ERROR_MAX - A::HEADER_LEN - ICMP_HEADER);
        let excess = frame.as_ref().len() - (ETHERNET_HEADER + quoted);
        if !frame.trim(excess) || !frame.prepend(A::HEADER_LEN + ICMP_HEADER) {
            self.counters.count_drop(DropReason::FrameTooLarge);
            return None;
        }
        let bytes = frame.as_mut();
        bytes.copy_within(
            A::HEADER_LEN + ICMP_HEADER..A::HEADER_LEN + ICMP_HEADER + ETHERNET_HEADER,
            0,
        );
        let mut ethernet = EthernetFrame::new_unchecked(&mut bytes[..]);
        ethernet.set_dst_addr(client_mac);
        ethernet.set_src_addr(port_mac);
        ethernet.set_ethertype(A::ETHERTYPE);
        let (ip, message) = bytes[ETHERNET_HEADER..].split_at_mut(A::HEADER_LEN);
        A::write_icmp_header(ip, from, header.src, ICMP_HEADER + quoted);
        let (kind, code, rest) = A::error_header(error);
        message[0] = kind;
        message[1] = code;
        message[4..8].copy_from_slice(&rest.to_be_bytes());
        A::fill_icmp_checksum(message, from, header.src);
        self.icmp_sent += 1;
        self.counters.count(Event::IcmpErrorSent);
        Some(Verdict::Transmit { port })
    }

    // --- IPv4: ARP and echo ---

    pub(super) fn arp(
        &mut self,
        now: Instant,
        port: u16,
        port_mac: MacAddr,
        bytes: &mut [u8],
    ) -> Verdict {
        let Ok(mut arp) = ArpPacket::new_checked(&mut bytes[ETHERNET_HEADER..]) else {
            return self.drop(DropReason::ArpMalformed);
        };
        let operation = arp.operation();
        let sender_mac = arp.sender_hardware_addr();
        let sender = arp.sender_protocol_addr();
        let target = arp.target_protocol_addr();
        let for_us = self.snapshot.answers_for(port, target);
        // Like Linux: update what we know from any ARP packet, and remember
        // an on-link host that asks for one of our addresses (we will
        // answer it, and will likely talk to it).
        let create = operation == ArpOperation::REQUEST && for_us && self.on_link(port, sender);
        self.learn(now, sender, sender_mac, create);
        if operation != ArpOperation::REQUEST || !for_us || sender == target {
            // The kernel resolves its own next hops and answers for the
            // addresses only it holds.
            return self.also_for_the_host(port);
        }
        arp.set_operation(ArpOperation::REPLY);
        arp.set_target_hardware_addr(sender_mac);
        arp.set_target_protocol_addr(sender);
        arp.set_sender_hardware_addr(port_mac);
        arp.set_sender_protocol_addr(target);
        send_back(bytes, port_mac);
        self.counters.count(Event::ArpReplySent);
        Verdict::Transmit { port }
    }

    /// Answers an echo request to one of the director's addresses or a VIP
    /// in place, back through the port it came from.
    pub(super) fn icmp4_local(
        &mut self,
        port: u16,
        port_mac: MacAddr,
        bytes: &mut [u8],
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(&bytes[ETHERNET_HEADER..]);
        let for_the_host = self.host_answers_echo(port, IpAddr::V4(ip.dst_addr()));
        let icmp_range = ETHERNET_HEADER + usize::from(ip.header_len())
            ..ETHERNET_HEADER + usize::from(ip.total_len());
        let Ok(mut icmp) = Icmpv4Packet::new_checked(&mut bytes[icmp_range]) else {
            return self.drop(DropReason::IcmpMalformed);
        };
        if icmp.msg_type() != Icmpv4Type::ECHO_REQUEST || for_the_host {
            return Verdict::ToKernel;
        }
        if !icmp.verify_checksum() {
            return self.drop(DropReason::IcmpBadChecksum);
        }
        icmp.set_msg_type(Icmpv4Type::ECHO_REPLY);
        icmp.set_code(0);
        icmp.fill_checksum();
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETHERNET_HEADER..]);
        let (source, destination) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(destination);
        ip.set_dst_addr(source);
        ip.set_ttl(DEFAULT_HOP_LIMIT);
        ip.fill_checksum();
        send_back(bytes, port_mac);
        self.counters.count(Event::IcmpEchoReplySent);
        Verdict::Transmit { port }
    }

    // --- IPv6: Neighbour Discovery and echo ---

    /// ICMPv6 for the director: echo requests to its addresses and VIPs,
    /// neighbour solicitations and advertisements; the rest (router and
    /// multicast listener messages) is the host's.
    pub(super) fn icmp6_local<F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        port_mac: MacAddr,
        frame: &mut F,
    ) -> Verdict {
        let bytes = frame.as_ref();
        let Ok(header) = Ipv6Addr::parse(&bytes[ETHERNET_HEADER..]) else {
            return self.drop(DropReason::Ipv6Malformed);
        };
        let message_range = ETHERNET_HEADER + header.l4..ETHERNET_HEADER + header.len;
        let Ok(icmp) = Icmpv6Packet::new_checked(&bytes[message_range.clone()]) else {
            return self.drop(DropReason::IcmpMalformed);
        };
        let pseudo = checksum::pseudo_header_v6(
            &header.src,
            &header.dst,
            IpProtocol::ICMPV6,
            message_range.len() as u32,
        );
        if !icmp.verify_checksum(pseudo) {
            return self.drop(DropReason::IcmpBadChecksum);
        }
        let kind = icmp.msg_type();
        let mac_source = EthernetFrame::new_unchecked(bytes).src_addr();
        match kind {
            Icmpv6Type::ECHO_REQUEST if self.host_answers_echo(port, IpAddr::V6(header.dst)) => {
                Verdict::ToKernel
            }
            Icmpv6Type::ECHO_REQUEST
                if self.snapshot.is_own_address(header.dst)
                    || self.snapshot.is_vip(IpAddr::V6(header.dst)) =>
            {
                self.echo6_reply(port, port_mac, frame, &header)
            }
            Icmpv6Type::NEIGHBOR_SOLICIT | Icmpv6Type::NEIGHBOR_ADVERT
                if header.hop_limit != ND_HOP_LIMIT =>
            {
                self.drop(DropReason::IcmpMalformed)
            }
            Icmpv6Type::NEIGHBOR_SOLICIT => {
                let Ok(target) = icmp.target_addr() else {
                    return self.drop(DropReason::IcmpMalformed);
                };
                let for_us = self.snapshot.answers_for(port, target);
                if header.src != Ipv6Addr::UNSPECIFIED
                    && let Some(mac) = icmp.source_link_layer_addr()
                {
                    let create = for_us && self.on_link(port, header.src);
                    self.learn(now, header.src, mac, create);
                }
                if !for_us {
                    return self.also_for_the_host(port);
                }
                self.neighbor_advert(port, port_mac, frame, &header, target, mac_source)
            }
            Icmpv6Type::NEIGHBOR_ADVERT => {
                if let Ok(target) = icmp.target_addr() {
                    let mac = icmp.target_link_layer_addr().unwrap_or(mac_source);
                    self.learn(now, target, mac, false);
                }
                self.also_for_the_host(port)
            }
            _ => Verdict::ToKernel,
        }
    }

    fn echo6_reply<F: Frame>(
        &mut self,
        port: u16,
        port_mac: MacAddr,
        frame: &mut F,
        header: &Header<Ipv6Addr>,
    ) -> Verdict {
        let bytes = frame.as_mut();
        let mut ip = Ipv6Packet::new_unchecked(&mut bytes[ETHERNET_HEADER..]);
        ip.set_src_addr(header.dst);
        ip.set_dst_addr(header.src);
        ip.set_hop_limit(DEFAULT_HOP_LIMIT);
        let message = &mut bytes[ETHERNET_HEADER + header.l4..ETHERNET_HEADER + header.len];
        message[0] = Icmpv6Type::ECHO_REPLY.0;
        Ipv6Addr::fill_icmp_checksum(message, header.dst, header.src);
        send_back(bytes, port_mac);
        self.counters.count(Event::IcmpEchoReplySent);
        Verdict::Transmit { port }
    }

    /// Answers a neighbour solicitation for `target` in place.
    fn neighbor_advert<F: Frame>(
        &mut self,
        port: u16,
        port_mac: MacAddr,
        frame: &mut F,
        header: &Header<Ipv6Addr>,
        target: Ipv6Addr,
        asker_mac: MacAddr,
    ) -> Verdict {
        // Duplicate address detection asks from the unspecified address:
        // the answer goes to all nodes, unsolicited (RFC 4861 7.2.4).
        let (destination, destination_mac, flags) = if header.src == Ipv6Addr::UNSPECIFIED {
            let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            (
                all_nodes,
                MacAddr::ipv6_multicast(&all_nodes),
                NeighborFlags::OVERRIDE,
            )
        } else {
            (
                header.src,
                asker_mac,
                NeighborFlags(NeighborFlags::SOLICITED.0 | NeighborFlags::OVERRIDE.0),
            )
        };
        let len = ETHERNET_HEADER + 40 + NEIGHBOR_ADVERT_LEN;
        if !resize(frame, len) {
            return self.drop(DropReason::FrameTooLarge);
        }
        let bytes = frame.as_mut();
        write_ipv6_icmp(
            bytes,
            port_mac,
            destination_mac,
            target,
            destination,
            ND_HOP_LIMIT,
            |message, pseudo| {
                Icmpv6Repr::NeighborAdvert {
                    flags,
                    target_addr: target,
                    target_link_layer_addr: Some(port_mac),
                }
                .emit(&mut Icmpv6Packet::new_unchecked(message), pseudo);
            },
        );
        self.counters.count(Event::ArpReplySent);
        Verdict::Transmit { port }
    }

    // --- shared ---

    /// What becomes of a neighbour message the director has learned from
    /// and does not answer: the kernel gets it too when `port` has an
    /// exception path.
    fn also_for_the_host(&self, port: u16) -> Verdict {
        if self.has_exception_path(port) {
            Verdict::ToKernel
        } else {
            Verdict::Consumed
        }
    }

    /// Whether an echo request to `destination` on `port` is the kernel's
    /// to answer: one to the director's own address, on a port with an
    /// exception path (the kernel holds the address there; echo to VIPs
    /// stays with the director).
    fn host_answers_echo(&self, port: u16, destination: IpAddr) -> bool {
        self.has_exception_path(port) && !self.snapshot.is_vip(destination)
    }

    fn has_exception_path(&self, port: u16) -> bool {
        self.snapshot
            .ports
            .get(usize::from(port))
            .is_some_and(|p| p.exception_path)
    }

    /// Whether `address` is on a subnet of `port`.
    fn on_link<A: FamilyView>(&self, port: u16, address: A) -> bool {
        self.snapshot.ports.get(usize::from(port)).is_some_and(|p| {
            A::prefixes(p)
                .iter()
                .any(|cidr| contains::<A>(cidr, address))
        })
    }

    /// Records a neighbour's MAC, here and on every other worker (a reply
    /// to one worker's request may reach another); frames waiting for it
    /// may go.
    fn learn<A: Ip>(&mut self, now: Instant, address: A, mac: MacAddr, create: bool) {
        self.adopt_neighbour(now, address, mac, create);
        if self.workers > 1 && mac.is_unicast() {
            let news = NeighbourNews {
                address: address.to_ip(),
                mac,
                create,
            };
            let lost = self.neighbour_exchange.publish(self.worker, news);
            self.counters.count_n(Event::NeighbourNewsLost, lost);
        }
    }

    /// Writes the packet for `request` into an empty `frame`; returns the
    /// port to send it on, or `None` (counted) if it could not be built.
    pub fn write_request<F: Frame>(&mut self, request: Request, frame: &mut F) -> Option<u16> {
        let (port, len) = match request {
            Request::ArpProbe { port, .. } => (port, ETHERNET_HEADER + ArpPacket::<&[u8]>::LEN),
            Request::NeighbourSolicit { port, .. } => {
                (port, ETHERNET_HEADER + 40 + NEIGHBOR_SOLICIT_LEN)
            }
        };
        let port_mac = self.snapshot.ports.get(usize::from(port))?.mac;
        if !frame.append(len) {
            self.counters.count_drop(DropReason::FrameTooLarge);
            return None;
        }
        let bytes = frame.as_mut();
        match request {
            Request::ArpProbe { target, .. } => {
                let source = self.snapshot.source_address(port, target)?;
                EthernetRepr {
                    src_addr: port_mac,
                    dst_addr: MacAddr::BROADCAST,
                    ethertype: EtherType::ARP,
                }
                .emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
                ArpRepr {
                    operation: ArpOperation::REQUEST,
                    source_hardware_addr: port_mac,
                    source_protocol_addr: source,
                    target_hardware_addr: MacAddr::ZERO,
                    target_protocol_addr: target,
                }
                .emit(&mut ArpPacket::new_unchecked(&mut bytes[ETHERNET_HEADER..]));
            }
            Request::NeighbourSolicit { target, .. } => {
                let source = self.snapshot.source_address(port, target)?;
                let group = solicited_node_multicast(&target);
                write_ipv6_icmp(
                    bytes,
                    port_mac,
                    MacAddr::ipv6_multicast(&group),
                    source,
                    group,
                    ND_HOP_LIMIT,
                    |message, pseudo| {
                        Icmpv6Repr::NeighborSolicit {
                            target_addr: target,
                            source_link_layer_addr: Some(port_mac),
                        }
                        .emit(&mut Icmpv6Packet::new_unchecked(message), pseudo);
                    },
                );
            }
        }
        self.counters.count(Event::ArpRequestSent);
        Some(port)
    }
}

/// Writes Ethernet and IPv6 headers for an ICMPv6 message filling the rest
/// of `bytes`, then the message itself through `emit` (given the message
/// buffer and its pseudo-header sum).
fn write_ipv6_icmp(
    bytes: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    emit: impl FnOnce(&mut [u8], u16),
) {
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
    let message_len = bytes.len() - ETHERNET_HEADER - 40;
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::ICMPV6,
        payload_len: message_len,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(
        &mut bytes[ETHERNET_HEADER..],
    ));
    let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::ICMPV6, message_len as u32);
    emit(&mut bytes[ETHERNET_HEADER + 40..], pseudo);
}

/// Makes `frame` exactly `len` bytes long.
fn resize<F: Frame>(frame: &mut F, len: usize) -> bool {
    let current = frame.as_ref().len();
    if current >= len {
        frame.trim(current - len)
    } else {
        frame.append(len - current)
    }
}

/// Addresses a reply built in place to the frame's sender, from the port
/// it arrived on.
fn send_back(bytes: &mut [u8], port_mac: MacAddr) {
    let mut ethernet = EthernetFrame::new_unchecked(bytes);
    let sender = ethernet.src_addr();
    ethernet.set_dst_addr(sender);
    ethernet.set_src_addr(port_mac);
}
