//! Persistence (`-p`, `-M`) through the engine: a client's connections
//! stay on one real server, on every worker, until its template expires.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use super::*;
use crate::persistence::{Templates, seconds};
use crate::sched::SchedulerKind;
use crate::snapshot::Persistence;
use crate::steering::client_owner;
use crate::testing::*;
use crate::wire::{EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket, builder};

const TIMEOUT: u32 = 60;

/// The NAT topology's TCP service, round robin, persistent for 60 s per
/// /24 of clients, with the real servers `keep` accepts.
fn persistent_snapshot(generation: u64, keep: impl Fn(usize) -> bool) -> Arc<Snapshot> {
    let mut service = nat_service(
        0,
        6,
        TCP_VPORT,
        TCP_RPORT,
        SchedulerKind::RoundRobin,
        [1, 1],
        0,
    );
    let mut index = 0;
    service.real_servers.retain(|_| {
        index += 1;
        keep(index - 1)
    });
    service.persistence = Some(Persistence {
        timeout: TIMEOUT,
        prefix: 24,
    });
    Arc::new(snapshot_of(generation, vec![service]))
}

fn worker(index: u16, shared: &Shared) -> Lab {
    let mut lab = Lab::worker(persistent_snapshot(1, |_| true), 1024, index, shared);
    lab.learn_neighbours();
    lab
}

/// The real server a SYN from `client:port` went to.
fn connect(lab: &mut Lab, client: Ipv4Addr, port: u16) -> Ipv4Addr {
    let syn = builder::tcp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(client, port),
        SocketAddrV4::new(VIP, TCP_VPORT),
        TcpFlags::SYN,
        1,
        0,
        &[],
    );
    let sent = lab.receive(WAN, &syn);
    assert_eq!(sent.len(), 1, "the SYN was forwarded");
    let ethernet = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
    Ipv4Packet::new_checked(ethernet.payload())
        .unwrap()
        .dst_addr()
}

fn client(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 7, host)
}

#[test]
fn a_client_keeps_its_real_server_across_source_ports() {
    let mut lab = worker(0, &Shared::new(1));
    let first = connect(&mut lab, client(1), 40000);
    for port in 40001..40100 {
        assert_eq!(connect(&mut lab, client(1), port), first, "port {port}");
    }
    // Round robin still alternates between clients of other networks.
    let others: Vec<Ipv4Addr> = (0..4u8)
        .map(|net| connect(&mut lab, Ipv4Addr::new(198, 19, 10 + net, 1), 5000))
        .collect();
    assert!(
        others.contains(&RIPS[0]) && others.contains(&RIPS[1]),
        "{others:?}"
    );
    // The netmask makes the /24 one client.
    assert_eq!(connect(&mut lab, client(200), 6000), first);
    assert_eq!(lab.counters.events(Event::TemplateCreated), 5);
}

/// Two workers (each owns some of a client's source ports) send one
/// client to the same real server.
#[test]
fn persistence_holds_across_workers() {
    let shared = Shared::new(2);
    let mut workers = [worker(0, &shared), worker(1, &shared)];
    let mut owners = [0; 2];
    for host in 1..=20u8 {
        let client = Ipv4Addr::new(198, 19, host, 1);
        let mut owner = |port| {
            let owner = usize::from(client_owner(client.into(), port, 2));
            owners[owner] += 1;
            owner
        };
        let first = connect(&mut workers[owner(40000)], client, 40000);
        for port in 40001..40010 {
            assert_eq!(
                connect(&mut workers[owner(port)], client, port),
                first,
                "client {host}, port {port}"
            );
        }
    }
    assert!(
        owners.iter().all(|&n| n > 50),
        "both workers took part: {owners:?}"
    );
    let created: u64 = workers
        .iter()
        .map(|w| w.counters.events(Event::TemplateCreated))
        .sum();
    assert_eq!(created, 20, "one template per client");
}

#[test]
fn templates_expire_after_the_timeout_unless_packets_keep_them() {
    let shared = Shared::new(1);
    let templates = Arc::clone(&shared.templates);
    let mut lab = worker(0, &shared);
    let first = connect(&mut lab, client(1), 40000);
    // Packets of the open connection keep the template alive past its
    // first timeout.
    for _ in 0..3 {
        lab.advance(Duration::from_secs(u64::from(TIMEOUT) / 2));
        let ack = builder::tcp_v4_frame(
            CLIENT_MAC,
            WAN_MAC,
            SocketAddrV4::new(client(1), 40000),
            SocketAddrV4::new(VIP, TCP_VPORT),
            TcpFlags::ACK,
            2,
            1,
            b"x",
        );
        assert_eq!(lab.receive(WAN, &ack).len(), 1);
    }
    assert_eq!(connect(&mut lab, client(1), 40001), first);
    let listed = listing(&templates, lab.now);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client, Ipv4Addr::new(198, 19, 7, 0));
    // Silence for the whole timeout: the next connection is scheduled
    // afresh (round robin moves on to the other real server).
    lab.advance(Duration::from_secs(u64::from(TIMEOUT) + 1));
    assert!(listing(&templates, lab.now).is_empty());
    let next = connect(&mut lab, client(1), 40002);
    assert_ne!(next, first);
    assert_eq!(connect(&mut lab, client(1), 40003), next);
}

#[test]
fn a_template_naming_a_removed_real_server_is_replaced() {
    let shared = Shared::new(1);
    let templates = Arc::clone(&shared.templates);
    let mut lab = worker(0, &shared);
    let first = connect(&mut lab, client(1), 40000);
    let index = RIPS.iter().position(|&rip| rip == first).unwrap();
    // Remove that real server: keep only the other one.
    lab.engine
        .adopt(persistent_snapshot(2, |i| i != index), lab.now);
    let next = connect(&mut lab, client(1), 40001);
    assert_eq!(next, RIPS[1 - index]);
    let listed = listing(&templates, lab.now);
    assert_eq!(listed.len(), 1, "replaced, not added");
    assert_eq!(listed[0].real_server, (1 - index) as u32);
}

/// Where a segment left for: the real server's address and port.
fn destination(sent: &[(u16, Vec<u8>)]) -> (Ipv4Addr, u16) {
    assert_eq!(sent.len(), 1, "one segment forwarded");
    let ethernet = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
    let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    (ip.dst_addr(), tcp.dst_port())
}

/// A SYN from `client:cport` to the VIP's `vport`.
fn syn_to(client: Ipv4Addr, cport: u16, vport: u16) -> Vec<u8> {
    builder::tcp_v4_frame(
        CLIENT_MAC,
        WAN_MAC,
        SocketAddrV4::new(client, cport),
        SocketAddrV4::new(VIP, vport),
        TcpFlags::SYN,
        1,
        0,
        &[],
    )
}

/// `ipvsadm -A -t VIP:0 -p 60` with NAT real servers at port 0, and
/// `-A -t VIP:443` beside it with its real servers at 4443: every port of
/// a client but 443 goes to one real server, on the port the client asked
/// for, and replies come back from that port.
#[test]
fn a_service_of_every_port_keeps_a_client_on_one_real_server_and_its_port() {
    let mut every_port = nat_service(0, 6, 0, 0, SchedulerKind::RoundRobin, [1, 1], 0);
    every_port.persistence = Some(Persistence {
        timeout: TIMEOUT,
        prefix: 32,
    });
    let exact = nat_service(1, 6, 443, 4443, SchedulerKind::RoundRobin, [1, 1], 2);
    let snapshot = Arc::new(snapshot_of(1, vec![every_port, exact]));
    let mut lab = Lab::worker(snapshot, 1024, 0, &Shared::new(1));
    lab.learn_neighbours();
    let (first, port) = destination(&lab.receive(WAN, &syn_to(CLIENT, 40000, 80)));
    assert_eq!(port, 80, "the client's port, not the real server's 0");
    for (cport, vport) in [(40001, 8080), (40002, 80), (40003, 22), (40004, 8080)] {
        assert_eq!(
            destination(&lab.receive(WAN, &syn_to(CLIENT, cport, vport))),
            (first, vport),
            "client port {cport} to VIP:{vport}"
        );
    }
    // Other clients get the other real server too: round robin runs.
    let others: Vec<Ipv4Addr> = (1..=4u8)
        .map(|host| destination(&lab.receive(WAN, &syn_to(client(host), 5000, 8080))).0)
        .collect();
    assert!(
        others.contains(&RIPS[0]) && others.contains(&RIPS[1]),
        "{others:?}"
    );
    // The exact port's service wins over the service of every port.
    assert_eq!(
        destination(&lab.receive(WAN, &syn_to(CLIENT, 40005, 443))).1,
        4443
    );
    // The reply of the connection to 8080 leaves from VIP:8080.
    let rs = RIPS.iter().position(|&rip| rip == first).unwrap();
    let reply = builder::tcp_v4_frame(
        RS_MACS[rs],
        LAN_MAC,
        SocketAddrV4::new(first, 8080),
        SocketAddrV4::new(CLIENT, 40001),
        TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
        5000,
        2,
        &[],
    );
    let sent = lab.receive(LAN, &reply);
    assert_eq!(sent.len(), 1, "the reply was forwarded");
    let ethernet = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
    let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((ip.src_addr(), tcp.src_port()), (VIP, 8080));
    assert_eq!(lab.counters.events(Event::TemplateCreated), 5);
}

fn listing(templates: &Templates, now: Instant) -> Vec<crate::persistence::Template> {
    let mut found = Vec::new();
    assert_eq!(
        templates.scan(0, usize::MAX, seconds(now), |t| found.push(t)),
        None
    );
    found
}
