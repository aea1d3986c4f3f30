//! DR, TUN, FULLNAT and IPv6 NAT through the engine on in-memory ports,
//! Neighbour Discovery, the egress MTU, and ICMP errors translated like
//! their connection. Every rewritten packet's checksums are compared with
//! a full recomputation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use super::*;
use crate::conn::Method;
use crate::testing::*;
use crate::wire::{
    EthernetFrame, Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpFlags, TcpPacket, UdpPacket, builder, checksum,
};

const SYN: TcpFlags = TcpFlags::SYN;
const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
const ACK: TcpFlags = TcpFlags::ACK;

/// A forwarded frame's facts, after checking every checksum against a full
/// recomputation.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    dst_mac: MacAddr,
    src: SocketAddr,
    dst: SocketAddr,
    hop_limit: u8,
    protocol: IpProtocol,
}

fn seen(frame: &[u8]) -> Seen {
    let ethernet = EthernetFrame::new_checked(frame).expect("ethernet");
    let (src, dst, protocol, hop_limit, segment, pseudo) = match ethernet.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(ethernet.payload()).expect("ipv4");
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            let len = u32::from(ip.total_len()) - u32::from(ip.header_len());
            let pseudo =
                checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), ip.protocol(), len);
            let header_len = usize::from(ip.header_len());
            let payload = &ethernet.payload()[header_len..usize::from(ip.total_len())];
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.protocol(),
                ip.ttl(),
                payload,
                pseudo,
            )
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(ethernet.payload()).expect("ipv6");
            let pseudo = checksum::pseudo_header_v6(
                &ip.src_addr(),
                &ip.dst_addr(),
                ip.next_header(),
                u32::from(ip.payload_len()),
            );
            let payload = &ethernet.payload()[40..40 + usize::from(ip.payload_len())];
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                ip.next_header(),
                ip.hop_limit(),
                payload,
                pseudo,
            )
        }
        other => panic!("unexpected ethertype {other:?}"),
    };
    let (src_port, dst_port) = match protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(segment).expect("tcp");
            assert!(tcp.verify_checksum(pseudo), "TCP checksum");
            (tcp.src_port(), tcp.dst_port())
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(segment).expect("udp");
            assert!(udp.verify_checksum(pseudo), "UDP checksum");
            (udp.src_port(), udp.dst_port())
        }
        _ => (0, 0),
    };
    Seen {
        dst_mac: ethernet.dst_addr(),
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        hop_limit,
        protocol,
    }
}

fn only(sent: Vec<(u16, Vec<u8>)>) -> (u16, Vec<u8>) {
    assert_eq!(sent.len(), 1, "expected one frame, got {}", sent.len());
    sent.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn rips4() -> [IpAddr; 2] {
    RIPS.map(IpAddr::V4)
}

fn rips6() -> [IpAddr; 2] {
    RIPS6.map(IpAddr::V6)
}

/// A lab whose director knows every host's MAC (IPv4 and IPv6).
/// A SYN from the client of `vip`'s family, port 40000, to `vip`:80.
fn client_syn(vip: IpAddr) -> Vec<u8> {
    if vip.is_ipv4() {
        client_syn4(40000, 80)
    } else {
        client_tcp6(40000, SYN)
    }
}

/// The ICMPv6 message of `ip`, its checksum verified.
fn checked_icmp6<'a>(ip: &'a Ipv6Packet<&'a [u8]>) -> Icmpv6Packet<&'a [u8]> {
    let pseudo = checksum::pseudo_header_v6(
        &ip.src_addr(),
        &ip.dst_addr(),
        IpProtocol::ICMPV6,
        u32::from(ip.payload_len()),
    );
    let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("icmpv6");
    assert!(icmp.verify_checksum(pseudo), "ICMPv6 checksum");
    icmp
}

/// A DNS query from the client to the VIP with DF set.
fn dont_fragment_query(payload: &[u8]) -> Vec<u8> {
    let mut query = builder::udp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(CLIENT, 5000),
        SocketAddrV4::new(VIP, 53),
        payload,
    );
    let mut ip = Ipv4Packet::new_unchecked(&mut query[14..]);
    ip.set_dont_frag(true);
    ip.fill_checksum();
    query
}

/// A TCP service on port 80 of `vip` to the real servers of its family.
fn web(vip: IpAddr, rport: u16, method: Method) -> crate::snapshot::Service {
    let rips = if vip.is_ipv4() { rips4() } else { rips6() };
    service(0, 6, vip, 80, rips, rport, method, 0)
}

/// A UDP service on the IPv4 VIP's port 53.
fn dns(rport: u16, method: Method) -> crate::snapshot::Service {
    service(0, 17, IpAddr::V4(VIP), 53, rips4(), rport, method, 0)
}

fn lab_with(services: Vec<crate::snapshot::Service>) -> Lab {
    let mut lab = Lab::new(snapshot_of(1, services), 4096);
    lab.learn_neighbours();
    lab.receive(
        WAN,
        &builder::neighbor_solicit_frame(CLIENT_MAC, CLIENT6, VIP6),
    );
    for (mac, rip) in RS_MACS.iter().zip(RIPS6) {
        lab.receive(LAN, &builder::neighbor_solicit_frame(*mac, rip, DIP6));
    }
    lab.io.transmitted.clear();
    lab
}

fn client_syn4(port: u16, vport: u16) -> Vec<u8> {
    builder::tcp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(CLIENT, port),
        SocketAddrV4::new(VIP, vport),
        SYN,
        1,
        0,
        b"x",
    )
}

fn client_tcp6(port: u16, flags: TcpFlags) -> Vec<u8> {
    builder::tcp_v6_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV6::new(CLIENT6, port, 0, 0),
        SocketAddrV6::new(VIP6, 80, 0, 0),
        flags,
        1,
        0,
        b"y",
    )
}

fn which_rs(address: IpAddr) -> usize {
    rips4()
        .iter()
        .chain(rips6().iter())
        .position(|rip| *rip == address)
        .map(|i| i % 2)
        .expect("a real server")
}

#[test]
fn direct_routing_changes_only_the_destination_mac() {
    let mut lab = lab_with(vec![web(IpAddr::V4(VIP), 80, Method::DirectRoute)]);
    let syn = client_syn4(40000, 80);
    let (port, out) = only(lab.receive(WAN, &syn));
    assert_eq!(port, LAN);
    assert_eq!(&out[14..], &syn[14..], "the IP packet leaves as it came");
    let rs = RS_MACS
        .iter()
        .position(|mac| EthernetFrame::new_checked(&out[..]).unwrap().dst_addr() == *mac);
    assert!(rs.is_some(), "sent to a real server's MAC");
    assert_eq!(
        EthernetFrame::new_checked(&out[..]).unwrap().src_addr(),
        LAN_MAC
    );
    // Replies bypass the director: a real server's packet to the client is
    // not a tracked direction.
    let reply = builder::tcp_v4_frame(
        RS_MACS[0],
        LAN_MAC,
        SocketAddrV4::new(VIP, 80),
        SocketAddrV4::new(CLIENT, 40000),
        SYN_ACK,
        1,
        2,
        &[],
    );
    assert!(lab.receive(LAN, &reply).is_empty());
}

#[test]
fn direct_routing_works_over_ipv6() {
    let mut lab = lab_with(vec![web(IpAddr::V6(VIP6), 80, Method::DirectRoute)]);
    let syn = client_tcp6(40000, SYN);
    let (port, out) = only(lab.receive(WAN, &syn));
    assert_eq!(port, LAN);
    assert_eq!(&out[14..], &syn[14..]);
}

#[test]
fn tunnels_wrap_the_packet_in_a_valid_outer_header() {
    for vip in [IpAddr::V4(VIP), IpAddr::V6(VIP6)] {
        let mut lab = lab_with(vec![web(vip, 80, Method::Tunnel)]);
        let syn = client_syn(vip);
        let (port, out) = only(lab.receive(WAN, &syn));
        assert_eq!(port, LAN);
        let inner = &syn[14..];
        if vip.is_ipv4() {
            let outer = Ipv4Packet::new_checked(&out[14..]).expect("outer IPv4");
            assert!(outer.verify_checksum());
            assert_eq!(outer.protocol(), IpProtocol::IPIP);
            assert_eq!(outer.src_addr(), DIP);
            assert!(RIPS.contains(&outer.dst_addr()));
            let inner_ip = Ipv4Packet::new_checked(inner).unwrap();
            assert_eq!(outer.ttl(), inner_ip.ttl(), "TTL copied");
            assert_eq!(outer.dont_frag(), inner_ip.dont_frag(), "DF copied");
            assert_eq!(outer.payload(), inner, "the inner packet is untouched");
        } else {
            let outer = Ipv6Packet::new_checked(&out[14..]).expect("outer IPv6");
            assert_eq!(outer.next_header(), IpProtocol::IPV6);
            assert_eq!(outer.src_addr(), DIP6);
            assert!(RIPS6.contains(&outer.dst_addr()));
            assert_eq!(outer.payload(), inner);
        }
    }
}

#[test]
fn a_tunnel_too_big_for_the_link_tells_the_client_the_mtu() {
    let mut lab = lab_with(vec![dns(53, Method::Tunnel)]);
    // 1500 bytes of IP with DF: 20 more do not fit a 1500-byte link.
    let query = dont_fragment_query(&vec![7u8; 1500 - 28]);
    let (port, error) = only(lab.receive(WAN, &query));
    assert_eq!(port, WAN);
    let ip = Ipv4Packet::new_checked(&error[14..]).unwrap();
    assert_eq!(ip.dst_addr(), CLIENT);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
        (Icmpv4Type::DEST_UNREACHABLE, 4, 1480)
    );
    assert_eq!(lab.counters.drops(DropReason::FragmentationNeeded), 1);
}

#[test]
fn fullnat_rewrites_both_addresses_both_ways() {
    for (vip, client, lip) in [
        (IpAddr::V4(VIP), IpAddr::V4(CLIENT), IpAddr::V4(LIP)),
        (IpAddr::V6(VIP6), IpAddr::V6(CLIENT6), IpAddr::V6(LIP6)),
    ] {
        let mut lab = lab_with(vec![web(vip, 8080, Method::FullNat)]);
        let syn = client_syn(vip);
        let (port, out) = only(lab.receive(WAN, &syn));
        assert_eq!(port, LAN);
        let there = seen(&out);
        assert_eq!(there.src.ip(), lip, "the real server sees the LIP");
        assert_eq!(there.dst.port(), 8080);
        let rs = which_rs(there.dst.ip());
        // The real server answers the LIP; the client gets VIP:80.
        let reply = match (there.dst, there.src) {
            (SocketAddr::V4(rip), SocketAddr::V4(local)) => {
                builder::tcp_v4_frame(RS_MACS[rs], LAN_MAC, rip, local, SYN_ACK, 9, 2, &[])
            }
            (SocketAddr::V6(rip), SocketAddr::V6(local)) => {
                builder::tcp_v6_frame(RS_MACS[rs], LAN_MAC, rip, local, SYN_ACK, 9, 2, &[])
            }
            other => panic!("mixed families {other:?}"),
        };
        let (port, back) = only(lab.receive(LAN, &reply));
        assert_eq!(port, WAN);
        let back = seen(&back);
        assert_eq!(
            (back.src, back.dst),
            (SocketAddr::new(vip, 80), SocketAddr::new(client, 40000))
        );
        assert_eq!(back.dst_mac, CLIENT_MAC);
    }
}

#[test]
fn fullnat_clients_with_the_same_port_get_different_local_ports() {
    let mut lab = lab_with(vec![web(IpAddr::V4(VIP), 80, Method::FullNat)]);
    let other_client = Ipv4Addr::new(198, 18, 0, 3);
    lab.receive(
        WAN,
        &builder::arp_request(MacAddr([2, 0, 0, 0, 0x0c, 3]), other_client, VIP),
    );
    let syn_from = |client: Ipv4Addr| {
        builder::tcp_v4_frame(
            CLIENT_MAC,
            WAN_MAC,
            SocketAddrV4::new(client, 40000),
            SocketAddrV4::new(VIP, 80),
            SYN,
            1,
            0,
            &[],
        )
    };
    let (_, first) = only(lab.receive(WAN, &syn_from(CLIENT)));
    let (_, second) = only(lab.receive(WAN, &syn_from(other_client)));
    let (first, second) = (seen(&first), seen(&second));
    assert_eq!(
        (first.src.ip(), second.src.ip()),
        (IpAddr::V4(LIP), IpAddr::V4(LIP))
    );
    assert_ne!(first.src.port(), second.src.port());
}

#[test]
fn fullnat_without_local_ports_refuses_the_connection() {
    let mut service = web(IpAddr::V4(VIP), 80, Method::FullNat);
    service.local_addresses.clear();
    let mut lab = lab_with(vec![service]);
    assert!(lab.receive(WAN, &client_syn4(40000, 80)).is_empty());
    assert_eq!(lab.counters.drops(DropReason::LocalPortsExhausted), 1);
}

#[test]
fn nat_works_over_ipv6() {
    let mut lab = lab_with(vec![web(IpAddr::V6(VIP6), 8080, Method::Nat)]);
    let (_, out) = only(lab.receive(WAN, &client_tcp6(40000, SYN)));
    let there = seen(&out);
    assert_eq!(
        (there.src.ip(), there.dst.port(), there.hop_limit),
        (IpAddr::V6(CLIENT6), 8080, 63)
    );
    let rs = which_rs(there.dst.ip());
    let reply = builder::tcp_v6_frame(
        RS_MACS[rs],
        LAN_MAC,
        SocketAddrV6::new(RIPS6[rs], 8080, 0, 0),
        SocketAddrV6::new(CLIENT6, 40000, 0, 0),
        SYN_ACK,
        5,
        2,
        &[],
    );
    let (port, back) = only(lab.receive(LAN, &reply));
    assert_eq!(port, WAN);
    assert_eq!(seen(&back).src, SocketAddr::new(IpAddr::V6(VIP6), 80));
}

#[test]
fn neighbour_solicitations_for_vips_and_own_addresses_are_answered() {
    let mut lab = Lab::new(
        snapshot_of(1, vec![web(IpAddr::V6(VIP6), 80, Method::Nat)]),
        64,
    );
    for (port, port_mac, target) in [
        (WAN, WAN_MAC, VIP6),
        (WAN, WAN_MAC, WAN_ADDRESS6),
        (LAN, LAN_MAC, DIP6),
    ] {
        let (out_port, advert) = only(lab.receive(
            port,
            &builder::neighbor_solicit_frame(CLIENT_MAC, CLIENT6, target),
        ));
        assert_eq!(out_port, port);
        let ethernet = EthernetFrame::new_checked(&advert[..]).unwrap();
        assert_eq!(
            (ethernet.src_addr(), ethernet.dst_addr()),
            (port_mac, CLIENT_MAC)
        );
        let ip = Ipv6Packet::new_checked(ethernet.payload()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
            (target, CLIENT6, 255)
        );
        let icmp = checked_icmp6(&ip);
        assert_eq!(icmp.msg_type(), Icmpv6Type::NEIGHBOR_ADVERT);
        assert_eq!(icmp.target_addr().unwrap(), target);
        assert_eq!(icmp.target_link_layer_addr(), Some(port_mac));
    }
    let unknown: Ipv6Addr = "fd00::99".parse().unwrap();
    assert!(
        lab.receive(
            WAN,
            &builder::neighbor_solicit_frame(CLIENT_MAC, CLIENT6, unknown)
        )
        .is_empty()
    );
}

#[test]
fn ipv6_next_hops_are_resolved_by_solicitation() {
    let mut lab = Lab::new(
        snapshot_of(1, vec![web(IpAddr::V6(VIP6), 80, Method::Nat)]),
        64,
    );
    lab.receive(
        WAN,
        &builder::neighbor_solicit_frame(CLIENT_MAC, CLIENT6, VIP6),
    );
    lab.io.transmitted.clear();
    let sent = lab.receive(WAN, &client_tcp6(40000, SYN));
    // Held; a solicitation for the real server went out on the LAN.
    let (port, solicit) = only(sent);
    assert_eq!(port, LAN);
    let ip = Ipv6Packet::new_checked(&solicit[14..]).unwrap();
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv6Type::NEIGHBOR_SOLICIT);
    let target = icmp.target_addr().unwrap();
    let rs = RIPS6
        .iter()
        .position(|rip| *rip == target)
        .expect("a real server");
    let advert = builder::neighbor_advert_frame(RS_MACS[rs], target, LAN_MAC, DIP6);
    let (port, syn) = only(lab.receive(LAN, &advert));
    assert_eq!(port, LAN);
    assert_eq!(seen(&syn).dst_mac, RS_MACS[rs]);
}

#[test]
fn ipv6_echo_to_the_vip_is_answered() {
    let mut lab = lab_with(vec![web(IpAddr::V6(VIP6), 80, Method::Nat)]);
    let request =
        builder::icmpv6_echo_request_frame(CLIENT_MAC, WAN_MAC, CLIENT6, VIP6, 3, 4, b"ping6");
    let (port, reply) = only(lab.receive(WAN, &request));
    assert_eq!(port, WAN);
    let ip = Ipv6Packet::new_checked(&reply[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP6, CLIENT6));
    let icmp = checked_icmp6(&ip);
    assert_eq!(icmp.msg_type(), Icmpv6Type::ECHO_REPLY);
}

#[test]
fn too_big_for_the_egress_link_draws_an_error_with_the_mtu() {
    let mut parts_ports = ports();
    parts_ports[usize::from(LAN)].mtu = 1400;
    let snapshot = crate::snapshot::Snapshot::new(crate::snapshot::SnapshotParts {
        generation: 1,
        ports: parts_ports,
        services: vec![dns(53, Method::Nat)],
        ..crate::snapshot::SnapshotParts::default()
    });
    let mut lab = Lab::new(snapshot, 64);
    lab.learn_neighbours();
    lab.io.transmitted.clear();
    let query = dont_fragment_query(&vec![1u8; 1450]);
    let (_, error) = only(lab.receive(WAN, &query));
    let icmp = Icmpv4Packet::new_checked(&error[34..]).unwrap();
    assert_eq!((icmp.code(), icmp.next_hop_mtu()), (4, 1400));
}

/// An ICMP error about the packet the director sent to a real server
/// reaches the client translated: from the VIP, quoting the client's own
/// packet as the client sent it. Linux quotes as much as fits in 576
/// bytes, so the quoted UDP checksum can be checked; RFC 792's minimum
/// quote (the IP header and 8 bytes) must translate as well.
#[test]
fn errors_from_the_real_server_side_reach_the_client_translated() {
    for method in [Method::Nat, Method::FullNat] {
        for quote in [LINUX_ICMP_QUOTE, MINIMUM_ICMP_QUOTE] {
            let mut lab = lab_with(vec![dns(5353, method)]);
            let query = builder::udp_v4_frame(
                CLIENT_MAC,
                WAN_MAC,
                SocketAddrV4::new(CLIENT, 5000),
                SocketAddrV4::new(VIP, 53),
                b"q",
            );
            let (_, forwarded) = only(lab.receive(WAN, &query));
            let there = seen(&forwarded);
            let rs = which_rs(there.dst.ip());
            // The real server (or a router on its side) answers "port
            // unreachable", to the packet's source, quoting it.
            let IpAddr::V4(error_dst) = there.src.ip() else {
                unreachable!()
            };
            let IpAddr::V4(rip) = there.dst.ip() else {
                unreachable!()
            };
            let error = port_unreachable_frame(
                RS_MACS[rs],
                LAN_MAC,
                rip,
                error_dst,
                &forwarded[14..],
                quote,
            );
            let (port, translated) = only(lab.receive(LAN, &error));
            let case = format!("{method:?}, {quote}-byte quote");
            assert_eq!(port, WAN, "{case}");
            let ip = Ipv4Packet::new_checked(&translated[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT), "{case}");
            let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(), "{case}");
            // A minimum quote is shorter than its total length says.
            let quoted = Ipv4Packet::new_unchecked(icmp.data());
            assert!(quoted.verify_checksum());
            assert_eq!(
                (quoted.src_addr(), quoted.dst_addr()),
                (CLIENT, VIP),
                "{case}"
            );
            let udp = UdpPacket::new_unchecked(quoted.payload());
            assert_eq!((udp.src_port(), udp.dst_port()), (5000, 53), "{case}");
            if quote == LINUX_ICMP_QUOTE {
                let udp = UdpPacket::new_checked(quoted.payload()).unwrap();
                let pseudo =
                    checksum::pseudo_header_v4(CLIENT, VIP, IpProtocol::UDP, u32::from(udp.len()));
                assert!(
                    udp.verify_checksum(pseudo),
                    "the quoted checksum is fixed too ({case})"
                );
            }
        }
    }
}

/// A "packet too big" about a reply (sent from the VIP to the client)
/// reaches the real server translated, so it lowers its path MTU.
#[test]
fn errors_from_the_client_side_reach_the_real_server_translated() {
    let mut lab = lab_with(vec![web(IpAddr::V6(VIP6), 8080, Method::Nat)]);
    let (_, syn) = only(lab.receive(WAN, &client_tcp6(40000, SYN)));
    let rs = which_rs(seen(&syn).dst.ip());
    let reply = builder::tcp_v6_frame(
        RS_MACS[rs],
        LAN_MAC,
        SocketAddrV6::new(RIPS6[rs], 8080, 0, 0),
        SocketAddrV6::new(CLIENT6, 40000, 0, 0),
        ACK,
        5,
        2,
        &[0; 100],
    );
    let (_, out) = only(lab.receive(LAN, &reply));
    // A router on the client's side: too big, quoting VIP:80 -> client.
    let router: Ipv6Addr = "fd00::fe".parse().unwrap();
    lab.receive(
        WAN,
        &builder::neighbor_solicit_frame(MacAddr([2, 0, 0, 0, 0xfe, 1]), router, WAN_ADDRESS6),
    );
    let error = icmp6_too_big_frame(
        MacAddr([2, 0, 0, 0, 0xfe, 1]),
        WAN_MAC,
        router,
        VIP6,
        1280,
        &out[14..],
    );
    let (port, translated) = only(lab.receive(WAN, &error));
    assert_eq!(port, LAN);
    let ip = Ipv6Packet::new_checked(&translated[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (router, RIPS6[rs]));
    let icmp = checked_icmp6(&ip);
    assert_eq!(
        (icmp.msg_type(), icmp.mtu()),
        (Icmpv6Type::PACKET_TOO_BIG, 1280)
    );
    let quoted = Ipv6Packet::new_checked(icmp.data()).unwrap();
    assert_eq!((quoted.src_addr(), quoted.dst_addr()), (RIPS6[rs], CLIENT6));
    let tcp = TcpPacket::new_unchecked(quoted.payload());
    assert_eq!((tcp.src_port(), tcp.dst_port()), (8080, 40000));
}

/// An ICMPv4 error frame quoting `quoted` (an IP packet).
/// The most of the offending packet Linux quotes in an ICMPv4 error: what
/// fits in 576 bytes after the IP and ICMP headers.
const LINUX_ICMP_QUOTE: usize = 576 - 20 - 8;
/// RFC 792's minimum: the IP header and the first 8 bytes of its payload.
const MINIMUM_ICMP_QUOTE: usize = 28;

/// An ICMPv4 "port unreachable" frame quoting up to `quote` bytes of
/// `quoted`.
fn port_unreachable_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    quoted: &[u8],
    quote: usize,
) -> Vec<u8> {
    let quoted = &quoted[..quoted.len().min(quote)];
    let mut message = vec![3, 3, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(quoted);
    let sum = !checksum::data(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    builder::ipv4_frame(
        src_mac,
        dst_mac,
        src,
        dst,
        &builder::Transport::Raw(IpProtocol::ICMP, &message),
    )
}

/// An ICMPv6 packet-too-big frame quoting `quoted`.
fn icmp6_too_big_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mtu: u32,
    quoted: &[u8],
) -> Vec<u8> {
    let mut message = vec![2, 0, 0, 0];
    message.extend_from_slice(&mtu.to_be_bytes());
    message.extend_from_slice(quoted);
    let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::ICMPV6, message.len() as u32);
    let sum = !checksum::combine(&[pseudo, checksum::data(&message)]);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    builder::ipv6_frame(
        src_mac,
        dst_mac,
        src,
        dst,
        &builder::Transport::Raw(IpProtocol::ICMPV6, &message),
    )
}

#[test]
fn snapshots_keep_fullnat_ports_of_running_connections() {
    let mut lab = lab_with(vec![web(IpAddr::V4(VIP), 80, Method::FullNat)]);
    only(lab.receive(WAN, &client_syn4(40000, 80)));
    let before = lab.engine.director().ipv4().local_ports.available(LIP);
    lab.engine.adopt(
        Arc::new(snapshot_of(
            2,
            vec![web(IpAddr::V4(VIP), 80, Method::FullNat)],
        )),
        lab.now,
    );
    assert_eq!(
        lab.engine.director().ipv4().local_ports.available(LIP),
        before
    );
}
