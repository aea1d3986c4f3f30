//! The director driven through the engine on in-memory ports: ARP, ICMP,
//! NAT in both directions, scheduling, connection states and malformed
//! input. Every rewritten packet's checksums are compared with a full
//! recomputation.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::ip::Ip;
use super::*;
use crate::counters::{DropReason, Event};
use crate::sched::SchedulerKind;
use crate::snapshot::{Service, Snapshot, SnapshotParts};
use crate::testing::*;
use crate::time::Duration;
use crate::wire::{
    ArpOperation, ArpPacket, EthernetFrame, Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet,
    TcpFlags, TcpPacket, UdpPacket, builder, checksum,
};

const SYN: TcpFlags = TcpFlags::SYN;
const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
const ACK: TcpFlags = TcpFlags::ACK;
const FIN_ACK: TcpFlags = TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0);

/// The fields of a forwarded IPv4 TCP/UDP frame, after checking that every
/// checksum equals a full recomputation.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
}

fn inspect(frame: &[u8]) -> Seen {
    let ethernet = EthernetFrame::new_checked(frame).expect("ethernet");
    let ip = Ipv4Packet::new_checked(ethernet.payload()).expect("ipv4");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let pseudo = checksum::pseudo_header_v4(
        ip.src_addr(),
        ip.dst_addr(),
        ip.protocol(),
        u32::from(ip.total_len()) - u32::from(ip.header_len()),
    );
    let (src_port, dst_port) = match ip.protocol() {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
            assert!(tcp.verify_checksum(pseudo), "TCP checksum");
            (tcp.src_port(), tcp.dst_port())
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
            assert!(udp.verify_checksum(pseudo), "UDP checksum");
            (udp.src_port(), udp.dst_port())
        }
        other => panic!("unexpected protocol {other}"),
    };
    Seen {
        src_mac: ethernet.src_addr(),
        dst_mac: ethernet.dst_addr(),
        src: SocketAddrV4::new(ip.src_addr(), src_port),
        dst: SocketAddrV4::new(ip.dst_addr(), dst_port),
        ttl: ip.ttl(),
    }
}

fn only(sent: Vec<(u16, Vec<u8>)>) -> (u16, Vec<u8>) {
    assert_eq!(sent.len(), 1, "expected one frame, got {sent:?}");
    sent.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn ready_lab() -> Lab {
    let mut lab = Lab::nat();
    lab.learn_neighbours();
    lab.io.transmitted.clear();
    lab
}

/// Which real server a forwarded frame went to.
fn real_server_of(frame: &[u8]) -> usize {
    let seen = inspect(frame);
    RIPS.iter()
        .position(|rip| *rip == *seen.dst.ip())
        .expect("sent to a real server")
}

#[test]
fn arp_requests_for_vips_and_own_addresses_are_answered() {
    let mut lab = Lab::nat();
    for (port, port_mac, target) in [
        (WAN, WAN_MAC, VIP),
        (WAN, WAN_MAC, WAN_ADDRESS),
        (LAN, LAN_MAC, DIP),
    ] {
        let (out_port, reply) =
            only(lab.receive(port, &builder::arp_request(CLIENT_MAC, CLIENT, target)));
        assert_eq!(out_port, port);
        let ethernet = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(ethernet.dst_addr(), CLIENT_MAC);
        assert_eq!(ethernet.src_addr(), port_mac);
        let arp = ArpPacket::new_checked(ethernet.payload()).unwrap();
        assert_eq!(arp.operation(), ArpOperation::REPLY);
        assert_eq!(arp.sender_hardware_addr(), port_mac);
        assert_eq!(arp.sender_protocol_addr(), target);
        assert_eq!(arp.target_hardware_addr(), CLIENT_MAC);
        assert_eq!(arp.target_protocol_addr(), CLIENT);
    }
    // Not ours, or a VIP asked for on the side whose subnet does not hold it.
    assert!(
        lab.receive(
            WAN,
            &builder::arp_request(CLIENT_MAC, CLIENT, Ipv4Addr::new(198, 18, 0, 99))
        )
        .is_empty()
    );
    assert!(
        lab.receive(LAN, &builder::arp_request(RS_MACS[0], RIPS[0], VIP))
            .is_empty()
    );
    assert_eq!(lab.counters.events(Event::ArpReplySent), 3);
}

#[test]
fn pings_to_the_vip_and_the_dip_are_answered() {
    let mut lab = Lab::nat();
    for (port, source_mac, source, target) in [
        (WAN, CLIENT_MAC, CLIENT, VIP),
        (LAN, RS_MACS[0], RIPS[0], DIP),
    ] {
        let port_mac = if port == WAN { WAN_MAC } else { LAN_MAC };
        let request =
            builder::icmpv4_echo_request_frame(source_mac, port_mac, source, target, 7, 1, b"ping");
        let (out_port, reply) = only(lab.receive(port, &request));
        assert_eq!(out_port, port);
        let ethernet = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(
            (ethernet.src_addr(), ethernet.dst_addr()),
            (port_mac, source_mac)
        );
        let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (target, source));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), Icmpv4Type::ECHO_REPLY);
        assert_eq!(
            (icmp.echo_ident(), icmp.echo_seq_no(), icmp.data()),
            (7, 1, &b"ping"[..])
        );
    }
}

/// The NAT topology with a kernel twin on both ports.
fn lab_with_exception_path() -> Lab {
    let mut ports = ports();
    for port in &mut ports {
        port.exception_path = true;
    }
    let service = nat_service(
        0,
        6,
        TCP_VPORT,
        TCP_RPORT,
        SchedulerKind::RoundRobin,
        [1, 1],
        0,
    );
    let snapshot = Snapshot::new(SnapshotParts {
        generation: 1,
        ports,
        services: vec![service],
        ..SnapshotParts::default()
    });
    let mut lab = Lab::new(snapshot, 4096);
    lab.learn_neighbours();
    lab.io.transmitted.clear();
    lab.io.to_kernel.clear();
    lab
}

#[test]
fn with_an_exception_path_the_host_gets_its_own_traffic() {
    let mut lab = lab_with_exception_path();
    let to_the_host = |lab: &mut Lab, port: u16, frame: Vec<u8>| {
        assert_eq!(lab.receive(port, &frame), [], "nothing sent for the host");
        assert_eq!(
            std::mem::take(&mut lab.io.to_kernel),
            [(port, frame)],
            "handed to the kernel whole"
        );
    };
    // Echo to the DIP is the kernel's to answer; to the VIP, the director's.
    let ping = builder::icmpv4_echo_request_frame(RS_MACS[0], LAN_MAC, RIPS[0], DIP, 7, 1, b"p");
    to_the_host(&mut lab, LAN, ping);
    let ping = builder::icmpv4_echo_request_frame(CLIENT_MAC, WAN_MAC, CLIENT, VIP, 7, 1, b"p");
    assert_eq!(only(lab.receive(WAN, &ping)).0, WAN);
    // A TCP connection to a port of the DIP that no service has.
    let ssh = builder::tcp_frame(
        RS_MACS[0],
        LAN_MAC,
        SocketAddrV4::new(RIPS[0], 40000),
        SocketAddrV4::new(DIP, 22),
        SYN,
        1,
        0,
        &[],
    );
    to_the_host(&mut lab, LAN, ssh);
    // ARP replies teach the director and reach the kernel; requests for an
    // address only the kernel holds go to the kernel alone.
    let reply = builder::arp_reply(RS_MACS[1], RIPS[1], LAN_MAC, DIP);
    to_the_host(&mut lab, LAN, reply);
    let management = Ipv4Addr::new(198, 18, 1, 250);
    to_the_host(
        &mut lab,
        LAN,
        builder::arp_request(RS_MACS[0], RIPS[0], management),
    );
    // Requests for the DIP and VIP are still answered at once.
    let (_, answer) = only(lab.receive(LAN, &builder::arp_request(RS_MACS[0], RIPS[0], DIP)));
    assert_eq!(
        ArpPacket::new_checked(&answer[14..]).unwrap().operation(),
        ArpOperation::REPLY
    );
    // IPv6: echo to the DIP and neighbour advertisements.
    let ping6 = builder::icmpv6_echo_request_frame(RS_MACS[0], LAN_MAC, RIPS6[0], DIP6, 7, 1, b"p");
    to_the_host(&mut lab, LAN, ping6);
    let advert = builder::neighbor_advert_frame(RS_MACS[0], RIPS6[0], LAN_MAC, DIP6);
    to_the_host(&mut lab, LAN, advert);
    // The service still works.
    assert_eq!(
        only(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[]))).0,
        LAN
    );
    assert_eq!(lab.counters.events(Event::ToKernel), 6);
}

#[test]
fn without_an_exception_path_neighbour_replies_are_only_learned() {
    let mut lab = ready_lab();
    assert_eq!(
        lab.receive(LAN, &builder::arp_reply(RS_MACS[1], RIPS[1], LAN_MAC, DIP)),
        []
    );
    assert_eq!(lab.io.to_kernel, []);
    assert_eq!(lab.counters.drops(DropReason::NoExceptionPath), 0);
}

#[test]
fn the_first_packet_waits_for_arp_then_goes_out_rewritten() {
    let mut lab = Lab::nat();
    lab.receive(WAN, &builder::arp_request(CLIENT_MAC, CLIENT, VIP));
    let sent = lab.receive(WAN, &lab.client_tcp(40000, SYN, &[]));
    // The SYN is held; an ARP probe for RS1 went out on the LAN.
    let (port, probe) = only(sent);
    assert_eq!(port, LAN);
    let arp = ArpPacket::new_checked(&probe[14..]).unwrap();
    assert_eq!(arp.operation(), ArpOperation::REQUEST);
    assert_eq!(
        (arp.sender_protocol_addr(), arp.target_protocol_addr()),
        (DIP, RIPS[0])
    );
    assert_eq!(lab.engine.waiting(), 1);
    // RS1 answers; the SYN leaves, rewritten to RIP:8080.
    let (port, syn) =
        only(lab.receive(LAN, &builder::arp_reply(RS_MACS[0], RIPS[0], LAN_MAC, DIP)));
    assert_eq!(port, LAN);
    assert_eq!(
        inspect(&syn),
        Seen {
            src_mac: LAN_MAC,
            dst_mac: RS_MACS[0],
            src: SocketAddrV4::new(CLIENT, 40000),
            dst: SocketAddrV4::new(RIPS[0], TCP_RPORT),
            ttl: 63,
        }
    );
    assert_eq!(lab.engine.waiting(), 0);
}

#[test]
fn unresolved_next_hops_drop_held_frames_after_a_while() {
    let mut lab = Lab::nat();
    lab.receive(WAN, &builder::arp_request(CLIENT_MAC, CLIENT, VIP));
    lab.receive(WAN, &lab.client_tcp(40000, SYN, &[]));
    assert_eq!(lab.engine.waiting(), 1);
    lab.advance(Duration::from_secs(4));
    assert_eq!(lab.engine.waiting(), 0);
    assert_eq!(lab.counters.drops(DropReason::NeighbourUnresolved), 1);
}

#[test]
fn nat_rewrites_both_directions_and_tracks_the_state() {
    let mut lab = ready_lab();
    let (port, syn) = only(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[])));
    assert_eq!(port, LAN);
    let rs = real_server_of(&syn);
    assert_eq!(inspect(&syn).dst, SocketAddrV4::new(RIPS[rs], TCP_RPORT));

    let (port, syn_ack) = only(lab.receive(LAN, &lab.server_tcp(rs, 40000, SYN_ACK)));
    assert_eq!(port, WAN);
    assert_eq!(
        inspect(&syn_ack),
        Seen {
            src_mac: WAN_MAC,
            dst_mac: CLIENT_MAC,
            src: SocketAddrV4::new(VIP, TCP_VPORT),
            dst: SocketAddrV4::new(CLIENT, 40000),
            ttl: 63,
        }
    );
    let counters = Arc::clone(&lab.counters);
    let rs_counters = counters.real_server(rs as u32);
    assert_eq!(
        rs_counters.inactive.load(Ordering::Relaxed),
        1,
        "handshake: inactive"
    );
    lab.receive(WAN, &lab.client_tcp(40000, ACK, b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(
        rs_counters.active.load(Ordering::Relaxed),
        1,
        "established: active"
    );
    assert_eq!(rs_counters.inactive.load(Ordering::Relaxed), 0);
    lab.receive(WAN, &lab.client_tcp(40000, FIN_ACK, &[]));
    lab.receive(LAN, &lab.server_tcp(rs, 40000, FIN_ACK));
    assert_eq!(rs_counters.active.load(Ordering::Relaxed), 0);
    assert_eq!(
        rs_counters.inactive.load(Ordering::Relaxed),
        1,
        "TIME_WAIT: inactive"
    );
    let traffic = rs_counters.traffic.read();
    assert_eq!(
        (traffic.conns, traffic.in_packets, traffic.out_packets),
        (1, 3, 2)
    );
    // TIME_WAIT lasts two minutes, then the entry and its count go.
    lab.advance(Duration::from_secs(121));
    assert_eq!(rs_counters.inactive.load(Ordering::Relaxed), 0);
    assert!(lab.engine.director().connections().is_empty());
}

#[test]
fn round_robin_splits_new_connections_exactly() {
    let mut lab = ready_lab();
    let mut counts = [0; 2];
    for client_port in 10_000..10_200 {
        let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(client_port, SYN, &[])));
        counts[real_server_of(&syn)] += 1;
    }
    assert_eq!(counts, [100, 100]);
}

#[test]
fn weighted_round_robin_follows_the_weights_and_weight_zero_quiesces() {
    let mut lab = Lab::new(snapshot(1, SchedulerKind::WeightedRoundRobin, [3, 1]), 4096);
    lab.learn_neighbours();
    lab.io.transmitted.clear();
    let mut counts = [0; 2];
    for client_port in 10_000..10_400 {
        let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(client_port, SYN, &[])));
        counts[real_server_of(&syn)] += 1;
    }
    assert_eq!(counts, [300, 100]);

    // Quiesce RS2: an open connection to it still flows, new ones go to RS1.
    let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(20_000, SYN, &[])));
    let open_rs = real_server_of(&syn);
    let quiesced = [
        if open_rs == 0 { 0 } else { 3 },
        if open_rs == 1 { 0 } else { 1 },
    ];
    lab.engine.adopt(
        Arc::new(snapshot(2, SchedulerKind::WeightedRoundRobin, quiesced)),
        lab.now,
    );
    for client_port in 30_000..30_010 {
        let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(client_port, SYN, &[])));
        assert_ne!(real_server_of(&syn), open_rs);
    }
    let (_, data) = only(lab.receive(WAN, &lab.client_tcp(20_000, ACK, b"data")));
    assert_eq!(
        real_server_of(&data),
        open_rs,
        "the open connection carries on"
    );
}

#[test]
fn removing_a_real_server_keeps_its_connections() {
    let mut lab = ready_lab();
    let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[])));
    let rs = real_server_of(&syn);
    let remaining = 1 - rs;
    let mut service = nat_service(
        0,
        6,
        TCP_VPORT,
        TCP_RPORT,
        SchedulerKind::RoundRobin,
        [1, 1],
        0,
    );
    service.real_servers.remove(rs);
    let service = Service::new(
        0,
        6,
        service.vip,
        TCP_VPORT,
        SchedulerKind::RoundRobin,
        service.real_servers,
    );
    lab.engine.adopt(
        Arc::new(Snapshot::new(SnapshotParts {
            generation: 2,
            ports: ports(),
            services: vec![service],
            ..SnapshotParts::default()
        })),
        lab.now,
    );
    for client_port in 50_000..50_010 {
        let (_, syn) = only(lab.receive(WAN, &lab.client_tcp(client_port, SYN, &[])));
        assert_eq!(real_server_of(&syn), remaining);
    }
    let (_, data) = only(lab.receive(WAN, &lab.client_tcp(40000, ACK, b"more")));
    assert_eq!(real_server_of(&data), rs);
    let (port, reply) = only(lab.receive(LAN, &lab.server_tcp(rs, 40000, ACK)));
    assert_eq!(port, WAN);
    assert_eq!(inspect(&reply).src, SocketAddrV4::new(VIP, TCP_VPORT));
}

#[test]
fn udp_flows_are_natted_and_expire() {
    let mut lab = ready_lab();
    let query = builder::udp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(CLIENT, 5000),
        SocketAddrV4::new(VIP, UDP_VPORT),
        b"query",
    );
    let (_, forwarded) = only(lab.receive(WAN, &query));
    let seen = inspect(&forwarded);
    let rs = RIPS.iter().position(|r| r == seen.dst.ip()).unwrap();
    assert_eq!(seen.dst.port(), UDP_RPORT);
    let answer = builder::udp_v4_frame(
        RS_MACS[rs],
        LAN_MAC,
        SocketAddrV4::new(RIPS[rs], UDP_RPORT),
        SocketAddrV4::new(CLIENT, 5000),
        b"answer",
    );
    let (port, back) = only(lab.receive(LAN, &answer));
    assert_eq!(port, WAN);
    assert_eq!(inspect(&back).src, SocketAddrV4::new(VIP, UDP_VPORT));
    let counters = Arc::clone(&lab.counters);
    let rs_counters = counters.real_server(2 + rs as u32);
    assert_eq!(
        rs_counters.inactive.load(Ordering::Relaxed),
        1,
        "UDP counts as inactive"
    );
    lab.advance(Duration::from_secs(301));
    assert_eq!(rs_counters.inactive.load(Ordering::Relaxed), 0);
    assert_eq!(lab.counters.events(Event::ConnExpired), 1);
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let mut lab = ready_lab();
    let mut query = builder::udp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(CLIENT, 5001),
        SocketAddrV4::new(VIP, UDP_VPORT),
        b"no checksum",
    );
    UdpPacket::new_unchecked(&mut query[34..]).set_checksum(0);
    let (_, forwarded) = only(lab.receive(WAN, &query));
    assert_eq!(
        UdpPacket::new_checked(&forwarded[34..]).unwrap().checksum(),
        0
    );
}

#[test]
fn segments_without_a_connection_are_dropped_and_counted() {
    let mut lab = ready_lab();
    assert!(
        lab.receive(WAN, &lab.client_tcp(40000, ACK, b"stray"))
            .is_empty()
    );
    assert_eq!(lab.counters.drops(DropReason::NoConnection), 1);
}

#[test]
fn a_service_without_available_servers_answers_port_unreachable() {
    let mut lab = Lab::new(snapshot(1, SchedulerKind::RoundRobin, [0, 0]), 64);
    lab.learn_neighbours();
    lab.io.transmitted.clear();
    let syn = lab.client_tcp(40000, SYN, &[]);
    let (port, error) = only(lab.receive(WAN, &syn));
    assert_eq!(port, WAN);
    let ethernet = EthernetFrame::new_checked(&error[..]).unwrap();
    assert_eq!(ethernet.dst_addr(), CLIENT_MAC);
    let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol()),
        (VIP, CLIENT, IpProtocol::ICMP)
    );
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        (icmp.msg_type(), icmp.code()),
        (Icmpv4Type::DEST_UNREACHABLE, 3)
    );
    assert_eq!(icmp.data(), &syn[14..], "the whole SYN is quoted");
    assert_eq!(lab.counters.drops(DropReason::NoRealServer), 1);
}

#[test]
fn an_expiring_ttl_draws_time_exceeded() {
    let mut lab = ready_lab();
    let mut syn = lab.client_tcp(40000, SYN, &[]);
    let mut ip = Ipv4Packet::new_unchecked(&mut syn[14..]);
    ip.set_ttl(1);
    ip.fill_checksum();
    let (_, error) = only(lab.receive(WAN, &syn));
    let ip = Ipv4Packet::new_checked(&error[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (WAN_ADDRESS, CLIENT));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv4Type::TIME_EXCEEDED);
    assert!(icmp.verify_checksum());
    assert_eq!(lab.counters.drops(DropReason::TtlExceeded), 1);
}

#[test]
fn a_syn_on_a_closed_tuple_starts_a_new_connection() {
    let mut lab = ready_lab();
    let (_, first) = only(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[])));
    let rs = real_server_of(&first);
    lab.receive(LAN, &lab.server_tcp(rs, 40000, SYN_ACK));
    lab.receive(WAN, &lab.client_tcp(40000, ACK, &[]));
    lab.receive(WAN, &lab.client_tcp(40000, FIN_ACK, &[]));
    lab.receive(LAN, &lab.server_tcp(rs, 40000, FIN_ACK));
    // The tuple is in TIME_WAIT; the same client port connects again.
    let (_, second) = only(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[])));
    assert_ne!(
        real_server_of(&second),
        rs,
        "scheduled afresh (round robin moves on)"
    );
    assert_eq!(lab.counters.events(Event::ConnReused), 1);
    assert_eq!(lab.engine.director().connections().len(), 1);
}

#[test]
fn a_full_table_evicts_the_oldest_and_counts() {
    let mut lab = Lab::new(snapshot(1, SchedulerKind::RoundRobin, [1, 1]), 8);
    lab.learn_neighbours();
    for client_port in 0..20 {
        lab.receive(WAN, &lab.client_tcp(1000 + client_port, SYN, &[]));
        lab.now = lab.now + Duration::from_millis(500);
    }
    assert_eq!(lab.engine.director().connections().len(), 8);
    assert_eq!(lab.counters.events(Event::ConnEvicted), 12);
    // The oldest went: the eight newest remain.
    let mut kept: Vec<u16> = lab
        .engine
        .director()
        .connections()
        .iter()
        .map(|(_, conn)| conn.client_port)
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, (1012..1020).collect::<Vec<u16>>());
    let inactive: u64 = (0..2)
        .map(|rs| {
            lab.counters
                .real_server(rs)
                .inactive
                .load(Ordering::Relaxed)
        })
        .sum();
    assert_eq!(inactive, 8, "evicted connections release their counts");
}

#[test]
fn malformed_frames_are_counted_never_forwarded() {
    let mut lab = ready_lab();
    let good = lab.client_tcp(40000, SYN, &[]);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (good[..10].to_vec(), DropReason::EthernetTruncated),
        (good[..20].to_vec(), DropReason::Ipv4Truncated),
        (
            {
                let mut bad = good.clone();
                bad[14] = 0x46 + 0x10; // version 5
                bad
            },
            DropReason::Ipv4Malformed,
        ),
        (
            {
                let mut bad = good.clone();
                bad[24] ^= 0xff; // header checksum
                bad
            },
            DropReason::Ipv4BadChecksum,
        ),
        (
            {
                let mut bad = good[..14 + 20 + 10].to_vec();
                let mut ip = Ipv4Packet::new_unchecked(&mut bad[14..]);
                ip.set_total_len(30);
                ip.fill_checksum();
                bad
            },
            DropReason::TcpMalformed,
        ),
        (
            {
                let mut bad = good.clone();
                EthernetFrame::new_unchecked(&mut bad[..])
                    .set_dst_addr(MacAddr([2, 9, 9, 9, 9, 9]));
                bad
            },
            DropReason::NotOurMac,
        ),
        (builder::with_vlan(&good, 100), DropReason::VlanUnsupported),
    ];
    for (frame, reason) in cases {
        let before = lab.counters.drops(reason);
        assert!(
            lab.receive(WAN, &frame).is_empty(),
            "{reason} must not be forwarded"
        );
        assert_eq!(lab.counters.drops(reason), before + 1, "{reason}");
    }
}

/// What no service or connection claims goes to the kernel when it is
/// the host's (its own addresses), counted once: handed to the kernel
/// where the port has a twin, dropped where it has none. Unicast to anyone
/// else is dropped either way, so that a host with forwarding on does not
/// route for the dataplane.
#[test]
fn the_hosts_traffic_goes_to_the_kernel_and_nobodys_is_dropped() {
    // TCP to the DIP: ssh to the director.
    let ssh = builder::tcp_v4_frame(
        RS_MACS[0],
        LAN_MAC,
        SocketAddrV4::new(RIPS[0], 33000),
        SocketAddrV4::new(DIP, 22),
        SYN,
        1,
        0,
        &[],
    );
    // The VIP on a port without a service (the kernel does not hold the
    // VIP), and an address that is nobody's here.
    let strays = [
        SocketAddrV4::new(VIP, 443),
        SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 80),
    ]
    .map(|destination| {
        builder::tcp_v4_frame(
            CLIENT_MAC,
            WAN_MAC,
            SocketAddrV4::new(CLIENT, 33000),
            destination,
            SYN,
            1,
            0,
            &[],
        )
    });
    for (mut lab, twin) in [(lab_with_exception_path(), true), (ready_lab(), false)] {
        let released = lab.io.released;
        assert_eq!(lab.receive(LAN, &ssh), []);
        for stray in &strays {
            assert_eq!(lab.receive(WAN, stray), []);
        }
        let handed: u64 = if twin { 1 } else { 0 };
        assert_eq!(lab.io.to_kernel.len() as u64, handed, "twin: {twin}");
        assert_eq!(lab.counters.events(Event::ToKernel), handed, "twin: {twin}");
        assert_eq!(
            lab.counters.drops(DropReason::NoExceptionPath),
            1 - handed,
            "twin: {twin}"
        );
        assert_eq!(
            lab.counters.drops(DropReason::NotForHost),
            2,
            "twin: {twin}"
        );
        assert_eq!(
            (lab.io.released - released) as u64,
            3 - handed,
            "twin: {twin}"
        );
    }
}

/// A NAT rewrite followed by the rewrite back restores every byte,
/// checksums included (RFC 1624 updates are exact), but for the TTL each
/// hop takes; the TTL is put back (and the checksum recomputed in full)
/// to compare the rest.
fn nat_round_trip(frame: &[u8], to: Ipv4Addr, to_port: u16) -> Vec<u8> {
    let original = *inspect_loose(frame).1.ip();
    let original_port = inspect_loose(frame).1.port();
    let ttl = inspect(frame).ttl;
    let mut bytes = frame.to_vec();
    nat_destination(&mut bytes, to, to_port);
    let seen = inspect(&bytes);
    assert_eq!(
        (seen.dst, seen.ttl),
        (SocketAddrV4::new(to, to_port), ttl - 1)
    );
    nat_destination(&mut bytes, original, original_port);
    assert_eq!(inspect(&bytes).ttl, ttl - 2);
    let mut ip = Ipv4Packet::new_unchecked(&mut bytes[14..]);
    ip.set_ttl(ttl);
    ip.fill_checksum();
    bytes
}

fn nat_destination(frame: &mut [u8], address: Ipv4Addr, port: u16) {
    let packet = &mut frame[ETHERNET_HEADER..];
    let header = Ipv4Addr::parse(packet).expect("a valid IPv4 header");
    Ipv4Addr::translate(packet, &header, None, Some((address, port)));
}

fn inspect_loose(frame: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let seen = inspect(frame);
    (seen.src, seen.dst)
}

proptest! {
    #[test]
    fn nat_rewrites_keep_checksums_exact_and_reverse_cleanly(
        client in any::<u32>(),
        client_port in 1u16..,
        real in any::<u32>(),
        real_port in 1u16..,
        udp in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let src = SocketAddrV4::new(Ipv4Addr::from(client), client_port);
        let dst = SocketAddrV4::new(VIP, 80);
        let frame = if udp {
            builder::udp_v4_frame(CLIENT_MAC, WAN_MAC, src, dst, &payload)
        } else {
            builder::tcp_v4_frame(CLIENT_MAC, WAN_MAC, src, dst, SYN_ACK, 7, 9, &payload)
        };
        let restored = nat_round_trip(&frame, Ipv4Addr::from(real), real_port);
        prop_assert_eq!(restored, frame);
    }

    /// Any bytes on any port: never a panic, and whatever leaves is a
    /// well-formed frame of the director's.
    #[test]
    fn arbitrary_frames_never_panic(
        frame in prop::collection::vec(any::<u8>(), 0..200),
        port in 0u16..3,
    ) {
        let mut lab = ready_lab();
        for (_, sent) in lab.receive(port, &frame) {
            let ethernet = EthernetFrame::new_checked(&sent[..]);
            prop_assert!(ethernet.is_ok());
        }
    }

    /// Valid packets with one byte changed exercise the deeper parsers.
    #[test]
    fn mutated_packets_never_panic(
        which in 0usize..4,
        at in 0usize..80,
        value in any::<u8>(),
    ) {
        let mut lab = ready_lab();
        let frames = [
            lab.client_tcp(40000, SYN, b"hello"),
            lab.server_tcp(0, 40000, SYN_ACK),
            builder::udp_v4_frame(CLIENT_MAC, WAN_MAC, SocketAddrV4::new(CLIENT, 1), SocketAddrV4::new(VIP, UDP_VPORT), b"q"),
            builder::icmpv4_echo_request_frame(CLIENT_MAC, WAN_MAC, CLIENT, VIP, 1, 1, b"ping"),
        ];
        let mut frame = frames[which].clone();
        let at = at % frame.len();
        frame[at] = value;
        lab.receive(WAN, &frame);
        lab.receive(LAN, &frame);
    }
}

#[test]
fn a_real_server_of_the_other_family_is_a_counted_drop() {
    // The control plane refuses such real servers; a snapshot built
    // without its checks still gets an honest reason.
    let rips = [IpAddr::V6(RIPS6[0]), IpAddr::V6(RIPS6[1])];
    let mismatched = service(
        0,
        6,
        IpAddr::V4(VIP),
        TCP_VPORT,
        rips,
        TCP_RPORT,
        Method::Nat,
        0,
    );
    let snapshot = Snapshot::new(SnapshotParts {
        generation: 1,
        ports: ports(),
        services: vec![mismatched],
        ..SnapshotParts::default()
    });
    let mut lab = Lab::new(snapshot, 4096);
    assert_eq!(lab.receive(WAN, &lab.client_tcp(40000, SYN, &[])), []);
    assert_eq!(lab.counters.drops(DropReason::FamilyMismatch), 1);
}
