//! Two workers behind ports that spread packets without regard to
//! ownership (as a kernel fanout or a five-tuple RSS does): every packet of
//! a connection, both ways, is processed by the connection's owner, after
//! at most one hand-off, and neighbours one worker learns serve both.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use super::*;
use crate::conn::Method;
use crate::frame::VecFrame;
use crate::sched::SchedulerKind;
use crate::steering::client_owner;
use crate::testing::*;
use crate::wire::{Ipv4Packet, TcpFlags, TcpPacket, builder};

const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);

/// Workers that hand each other frames as the DPDK worker loop does.
struct Workers {
    labs: Vec<Lab>,
}

impl Workers {
    fn new(count: u16, snapshot: Snapshot) -> Workers {
        let shared = Shared::new(count);
        let snapshot = Arc::new(snapshot);
        let mut labs: Vec<Lab> = (0..count)
            .map(|worker| Lab::worker(Arc::clone(&snapshot), 4096, worker, &shared))
            .collect();
        // Only worker 0 sees the ARP traffic; the others learn from it.
        labs[0].learn_neighbours();
        for lab in &mut labs {
            lab.advance(Duration::from_millis(1));
            lab.io.transmitted.clear();
        }
        Workers { labs }
    }

    /// Delivers `frame` to worker `first` on `port`, then whatever is
    /// handed over to its owner; returns the worker that transmitted and
    /// what it sent.
    fn deliver(&mut self, first: usize, port: u16, frame: &[u8]) -> (usize, Vec<(u16, Vec<u8>)>) {
        let mut sent = self.labs[first].receive(port, frame);
        let mut by = first;
        let handed: Vec<_> = std::mem::take(&mut self.labs[first].io.handed_off);
        for (owner, port, frame) in handed {
            assert!(sent.is_empty(), "handed over and transmitted");
            let lab = &mut self.labs[usize::from(owner)];
            lab.engine.receive_handed_over(
                lab.now,
                port,
                std::iter::once(VecFrame::new(&frame)),
                &mut lab.io,
            );
            assert!(lab.io.handed_off.is_empty(), "handed on again");
            sent = std::mem::take(&mut lab.io.transmitted);
            by = usize::from(owner);
        }
        (by, sent)
    }

    fn events(&self, event: Event) -> Vec<u64> {
        self.labs
            .iter()
            .map(|lab| lab.counters.events(event))
            .collect()
    }
}

fn endpoints(frame: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    (
        SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
        SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
    )
}

fn rs_index(address: &Ipv4Addr) -> usize {
    RIPS.iter().position(|rip| rip == address).unwrap()
}

#[test]
fn every_packet_of_a_connection_is_processed_by_its_owner() {
    let rips = RIPS.map(IpAddr::V4);
    for method in [Method::Nat, Method::FullNat] {
        let web = service(0, 6, IpAddr::V4(VIP), 80, rips, 8080, method, 0);
        let mut workers = Workers::new(2, snapshot_of(1, vec![web]));
        let ports = 40000..40200u16;
        for port in ports.clone() {
            let owner = usize::from(client_owner(IpAddr::V4(CLIENT), port, 2));
            // The "NIC" spreads each direction by its own rule.
            let client_side = usize::from(port % 2);
            let server_side = usize::from(port / 2 % 2);

            let syn = workers.labs[0].client_tcp(port, TcpFlags::SYN, &[]);
            let (by, sent) = workers.deliver(client_side, WAN, &syn);
            assert_eq!(
                (by, sent.len()),
                (owner, 1),
                "{method:?} SYN of port {port}"
            );
            let (to_server, there) = endpoints(&sent[0].1);
            if method == Method::FullNat {
                assert_eq!(*to_server.ip(), LIP);
            }

            let reply = builder::tcp_v4_frame(
                RS_MACS[rs_index(there.ip())],
                LAN_MAC,
                there,
                to_server,
                SYN_ACK,
                7,
                1001,
                &[],
            );
            let (by, sent) = workers.deliver(server_side, LAN, &reply);
            assert_eq!(
                (by, sent.len()),
                (owner, 1),
                "{method:?} reply to port {port}"
            );
            assert_eq!(
                endpoints(&sent[0].1),
                (SocketAddrV4::new(VIP, 80), SocketAddrV4::new(CLIENT, port))
            );

            let data = workers.labs[0].client_tcp(port, TcpFlags::ACK, b"GET /");
            let (by, sent) = workers.deliver(1 - client_side, WAN, &data);
            assert_eq!(
                (by, sent.len()),
                (owner, 1),
                "{method:?} data of port {port}"
            );
        }
        let created = workers.events(Event::ConnCreated);
        assert_eq!(created.iter().sum::<u64>(), 200, "{method:?}: {created:?}");
        let owned: Vec<u64> = (0..2u16)
            .map(|worker| {
                ports
                    .clone()
                    .filter(|&port| client_owner(IpAddr::V4(CLIENT), port, 2) == worker)
                    .count() as u64
            })
            .collect();
        assert_eq!(created, owned, "{method:?}: each connection on its owner");
        let (sent, received) = (
            workers.events(Event::HandOffSent),
            workers.events(Event::HandOffReceived),
        );
        assert!(sent.iter().all(|&n| n > 0), "{method:?}: {sent:?}");
        assert_eq!(sent.iter().sum::<u64>(), received.iter().sum::<u64>());
        for lab in &workers.labs {
            for &reason in DropReason::ALL {
                assert_eq!(lab.counters.drops(reason), 0, "{method:?} {reason}");
            }
        }
    }
}

#[test]
fn a_single_worker_never_hands_off() {
    let mut lab = Lab::nat();
    lab.learn_neighbours();
    for port in 40000..40100 {
        let syn = lab.client_tcp(port, TcpFlags::SYN, &[]);
        assert_eq!(lab.receive(WAN, &syn).len(), 1);
    }
    assert!(lab.io.handed_off.is_empty());
    assert_eq!(lab.counters.events(Event::HandOffSent), 0);
}

#[test]
fn a_neighbour_learned_by_one_worker_serves_the_others() {
    let mut workers = Workers::new(2, snapshot(1, SchedulerKind::RoundRobin, [1, 1]));
    // Worker 1 never saw an ARP packet, yet forwards its first SYN at
    // once: its peer's news taught it the client's and servers' MACs.
    let port = (40000..)
        .find(|&port| client_owner(IpAddr::V4(CLIENT), port, 2) == 1)
        .unwrap();
    let syn = workers.labs[1].client_tcp(port, TcpFlags::SYN, &[]);
    let sent = workers.labs[1].receive(WAN, &syn);
    assert_eq!(sent.len(), 1, "forwarded, not held for ARP");
    assert_eq!(workers.labs[1].counters.events(Event::ArpRequestSent), 0);
    assert!(workers.labs[1].counters.events(Event::NeighbourLearned) >= 3);
}
