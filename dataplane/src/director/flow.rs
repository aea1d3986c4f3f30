//! TCP and UDP flows: finding or scheduling a packet's connection,
//! rewriting it for the connection's forwarding method and sending it to
//! the next hop, for either address family.
//!
//! | method | client to real server | real server to client |
//! |---|---|---|
//! | NAT | destination VIP:vport -> RIP:rport | source RIP:rport -> VIP:vport |
//! | FULLNAT | also source CIP:cport -> LIP:lport | also destination LIP:lport -> CIP:cport |
//! | DR | only the MACs change | not seen |
//! | TUN | wrapped in an IP header DIP -> RIP | not seen |

use std::net::IpAddr;

use super::ip::{Header, Ip};
use super::local::{Icmp, IcmpError};
use super::{Director, ETHERNET_HEADER, Flow, NextHopMemo, Verdict, next_hop_slot, settle};
use crate::conn::{
    Conn, ConnId, ConnState, Direction, InsertError, Method, TcpSignal, tcp_transition,
};
use crate::counters::{DropReason, Event, bump, unbump};
use crate::frame::Frame;
use crate::neighbour::Resolution;
use crate::persistence::{Placement, TemplateKey, seconds};
use crate::route::NextHop;
use crate::sched::PickInput;
use crate::time::Instant;
use crate::wire::{EthernetFrame, IpProtocol};

/// How a packet of a connection leaves: towards whom, rewritten how.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan<A> {
    pub towards: A,
    pub rewrite: Rewrite<A>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Rewrite<A> {
    /// NAT and FULLNAT: new source and/or destination, and the hop limit.
    Translate {
        src: Option<(A, u16)>,
        dst: Option<(A, u16)>,
    },
    /// Direct routing: the IP packet leaves as it came.
    Untouched,
    /// IP-in-IP to the real server.
    Tunnel,
}

impl<A: Ip> Plan<A> {
    /// What the method does to a packet travelling in `direction`; `None`
    /// for the reply direction of DR and TUN, which never passes here.
    pub(super) fn of(conn: &Conn<A>, direction: Direction) -> Option<Plan<A>> {
        let plan = |towards, rewrite| Some(Plan { towards, rewrite });
        match (conn.method, direction) {
            (Method::Nat, Direction::In) => plan(
                conn.real,
                Rewrite::Translate {
                    src: None,
                    dst: Some((conn.real, conn.real_port)),
                },
            ),
            (Method::Nat, Direction::Out) => plan(
                conn.client,
                Rewrite::Translate {
                    src: Some((conn.vip, conn.vport)),
                    dst: None,
                },
            ),
            (Method::FullNat, Direction::In) => plan(
                conn.real,
                Rewrite::Translate {
                    src: Some((conn.local, conn.local_port)),
                    dst: Some((conn.real, conn.real_port)),
                },
            ),
            (Method::FullNat, Direction::Out) => plan(
                conn.client,
                Rewrite::Translate {
                    src: Some((conn.vip, conn.vport)),
                    dst: Some((conn.client, conn.client_port)),
                },
            ),
            (Method::DirectRoute, Direction::In) => plan(conn.real, Rewrite::Untouched),
            (Method::Tunnel, Direction::In) => plan(conn.real, Rewrite::Tunnel),
            (Method::DirectRoute | Method::Tunnel, Direction::Out) => None,
        }
    }
}

impl Director {
    /// A TCP or UDP packet: forward it on its connection, or start one.
    /// `found` is its connection if a batched lookup found it; otherwise
    /// the table is asked again (an earlier frame of the burst may have
    /// created it).
    pub(super) fn transport<A: Icmp, F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        flow: Flow<A>,
        found: Option<(ConnId, Direction)>,
    ) -> Verdict {
        let key = flow.transport.key;
        let plane = A::plane_mut(&mut self.planes);
        if let Some((id, direction)) = found.or_else(|| plane.conns.lookup(&key)) {
            let conn = plane.conns.get(id);
            let reopens = direction == Direction::In
                && flow.transport.signal.opens_connection()
                && conn.state.allows_reuse(conn.method.is_input_only());
            if !reopens {
                return self.forward(now, port, frame, &flow, id, direction);
            }
            // IPVS conn_reuse_mode: a SYN on the tuple of a closing
            // connection starts a new one, scheduled afresh.
            let old = plane.conns.remove(id);
            settle(&self.counters, &mut plane.local_ports, &old);
            self.counters.count(Event::ConnReused);
        } else if let Some(owner) = self.other_owner(&key) {
            return self.hand_off(owner);
        }
        let is_service = self
            .snapshot
            .service(key.protocol, key.dst.to_ip(), key.dst_port)
            .is_some();
        if !is_service {
            // Not load-balanced: the host's own traffic, or traffic the
            // director does not route.
            return Verdict::ToKernel;
        }
        if key.protocol == IpProtocol::TCP.0 && !flow.transport.signal.opens_connection() {
            return self.drop(DropReason::NoConnection);
        }
        self.schedule(now, port, frame, &flow)
    }

    /// Schedules a new connection to a real server and forwards its first
    /// packet.
    fn schedule<A: Icmp, F: Frame>(
        &mut self,
        now: Instant,
        port: u16,
        frame: &mut F,
        flow: &Flow<A>,
    ) -> Verdict {
        let key = flow.transport.key;
        let plane = A::plane_mut(&mut self.planes);
        // The snapshot, the scheduler states and the plane are disjoint
        // fields: cloning the snapshot's Arc here would bounce its count
        // between cores.
        let Some(service) = self
            .snapshot
            .service(key.protocol, key.dst.to_ip(), key.dst_port)
        else {
            return Verdict::ToKernel;
        };
        let input = PickInput {
            client: key.src.to_ip(),
            client_port: key.src_port,
            destination: key.dst.to_ip(),
            destination_port: key.dst_port,
            now,
            load: &*self.counters,
        };
        let second = seconds(now);
        let template = service.persistence.map(|persistence| {
            (
                persistence,
                TemplateKey::new(&self.templates, service.slot, key.src, persistence.prefix),
            )
        });
        // A persistent client goes where its template says, while that
        // real server is in the service (quiesced or not, as IPVS).
        let remembered =
            template.and_then(|(_, template)| self.templates.lookup(&template, second));
        let position = |slot: u32| service.real_servers.iter().position(|rs| rs.slot == slot);
        let mut picked = remembered.and_then(position);
        if picked.is_none() {
            picked = self
                .schedulers
                .get_mut(usize::from(service.slot))
                .and_then(|state| state.pick(service, &input));
            if let (Some(index), Some((persistence, template))) = (picked, template) {
                let placement = self.templates.place(
                    &template,
                    service.real_servers[index].slot,
                    second.saturating_add(persistence.timeout),
                    second,
                    remembered,
                );
                match placement {
                    Placement::Placed { evicted } => {
                        self.counters.count(Event::TemplateCreated);
                        if evicted {
                            self.counters.count(Event::TemplateEvicted);
                        }
                    }
                    // Another worker placed this client's template first.
                    Placement::Adopted(slot) => picked = position(slot).or(picked),
                    Placement::Unplaced => self.counters.count(Event::TemplateUnplaced),
                }
            }
        }
        let Some(real_server) = picked.map(|i| &service.real_servers[i]) else {
            // As IPVS: tell the client the port is unreachable.
            self.counters.count_drop(DropReason::NoRealServer);
            let vip = key.dst;
            return self
                .icmp_error(
                    now,
                    port,
                    frame,
                    &flow.header,
                    IcmpError::PortUnreachable,
                    vip,
                )
                .unwrap_or(Verdict::Drop(DropReason::NoRealServer));
        };
        let Some(real) = A::from_ip(real_server.address) else {
            return self.drop(DropReason::FamilyMismatch);
        };
        let method = real_server.method;
        let local = if method == Method::FullNat {
            match plane.local_ports.allocate(&service.local_addresses) {
                Some(local) => local,
                None => {
                    self.counters.count_drop(DropReason::LocalPortsExhausted);
                    return Verdict::Drop(DropReason::LocalPortsExhausted);
                }
            }
        } else {
            (key.src, key.src_port)
        };
        // DR and TUN cannot map ports (the control plane refuses it), and
        // the real servers of a service of every port (port 0) serve the
        // port the client asked for, as in IPVS.
        let real_port = if method.is_input_only() || real_server.port == 0 {
            key.dst_port
        } else {
            real_server.port
        };
        let (service_slot, real_server_slot) = (service.slot, real_server.slot);
        let conn = Conn::new(
            key.protocol,
            method,
            (key.src, key.src_port),
            (key.dst, key.dst_port),
            (real, real_port),
            local,
            service_slot,
            real_server_slot,
        );
        let id = match plane.conns.insert(conn, now) {
            Ok((id, evicted)) => {
                if let Some(evicted) = evicted {
                    settle(&self.counters, &mut plane.local_ports, &evicted);
                    self.counters.count(Event::ConnEvicted);
                }
                id
            }
            Err(InsertError::OutTupleInUse) => {
                if method == Method::FullNat {
                    plane.local_ports.release(local.0, local.1);
                }
                return self.drop(DropReason::NatTupleInUse);
            }
        };
        let counters = &self.counters;
        bump(&counters.service(u32::from(service_slot)).conns, 1);
        bump(counters.service_open(u32::from(service_slot)), 1);
        let rs = counters.real_server(real_server_slot);
        bump(&rs.traffic.conns, 1);
        bump(&rs.inactive, 1);
        counters.count(Event::ConnCreated);
        self.forward(now, port, frame, flow, id, Direction::In)
    }

    /// Forwards a packet of a known connection that arrived on `ingress`.
    fn forward<A: Icmp, F: Frame>(
        &mut self,
        now: Instant,
        ingress: u16,
        frame: &mut F,
        flow: &Flow<A>,
        id: ConnId,
        direction: Direction,
    ) -> Verdict {
        let header = flow.header;
        let conn = *A::plane(&self.planes).conns.get(id);
        let Some(plan) = Plan::of(&conn, direction) else {
            return self.drop(DropReason::NoConnection);
        };
        let routed = matches!(plan.rewrite, Rewrite::Translate { .. });
        if routed && header.hop_limit <= 1 {
            self.counters.count_drop(DropReason::TtlExceeded);
            let Some(router) = self.snapshot.source_address(ingress, header.src) else {
                return Verdict::Drop(DropReason::TtlExceeded);
            };
            return self
                .icmp_error(
                    now,
                    ingress,
                    frame,
                    &header,
                    IcmpError::TimeExceeded,
                    router,
                )
                .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
        }
        let Some(hop) = self.snapshot.routes::<A>().lookup(plan.towards) else {
            return self.drop(DropReason::NoRoute);
        };
        // What leaves must fit the egress port; a packet that may not be
        // fragmented draws an ICMP error carrying the size that fits, so
        // that path MTU discovery works through the director.
        let overhead = if matches!(plan.rewrite, Rewrite::Tunnel) {
            A::HEADER_LEN
        } else {
            0
        };
        let mtu = usize::from(self.snapshot.mtu(hop.port));
        if header.len + overhead > mtu {
            if !header.dont_fragment {
                return self.drop(DropReason::FragmentationNeeded);
            }
            self.counters.count_drop(DropReason::FragmentationNeeded);
            let Some(router) = self.snapshot.source_address(ingress, header.src) else {
                return Verdict::Drop(DropReason::FragmentationNeeded);
            };
            let fits = (mtu - overhead) as u32;
            return self
                .icmp_error(
                    now,
                    ingress,
                    frame,
                    &header,
                    IcmpError::TooBig(fits),
                    router,
                )
                .unwrap_or(Verdict::Drop(DropReason::FragmentationNeeded));
        }
        self.track(now, id, &conn, direction, flow.transport.signal);
        self.count_traffic(&conn, direction, header.len as u64);
        if direction == Direction::In {
            self.keep_template(now, &conn);
        }
        match plan.rewrite {
            Rewrite::Translate { src, dst } => {
                A::translate(&mut frame.as_mut()[ETHERNET_HEADER..], &header, src, dst);
            }
            Rewrite::Untouched => {}
            Rewrite::Tunnel => {
                let Some(source) = self.snapshot.source_address(hop.port, conn.real) else {
                    return self.drop(DropReason::NoRoute);
                };
                if !self.encapsulate(frame, &header, source, conn.real) {
                    return self.drop(DropReason::FrameTooLarge);
                }
            }
        }
        self.emit(now, frame.as_mut(), hop)
    }

    /// A persistent connection's packets keep its client's template alive:
    /// it expires its timeout after the last packet of any connection of
    /// that client, on any worker.
    #[inline]
    fn keep_template<A: Ip>(&mut self, now: Instant, conn: &Conn<A>) {
        let Some(Some(persistence)) = self.persistence.get(usize::from(conn.service)) else {
            return;
        };
        let template = TemplateKey::new(
            &self.templates,
            conn.service,
            conn.client,
            persistence.prefix,
        );
        let second = seconds(now);
        if self.extended.first_this_second(&template, second) {
            self.templates
                .extend(&template, second.saturating_add(persistence.timeout));
        }
    }

    fn count_traffic<A: Ip>(&self, conn: &Conn<A>, direction: Direction, bytes: u64) {
        let counters = &self.counters;
        let rs = &counters.real_server(conn.real_server).traffic;
        let service = counters.service(u32::from(conn.service));
        for traffic in [rs, service] {
            match direction {
                Direction::In => {
                    bump(&traffic.in_packets, 1);
                    bump(&traffic.in_bytes, bytes);
                }
                Direction::Out => {
                    bump(&traffic.out_packets, 1);
                    bump(&traffic.out_bytes, bytes);
                }
            }
        }
    }

    /// Wraps the IP packet of `frame` in a tunnel header from `source` to
    /// `real`; false if the frame has no headroom for it.
    fn encapsulate<A: Ip, F: Frame>(
        &mut self,
        frame: &mut F,
        header: &Header<A>,
        source: A,
        real: A,
    ) -> bool {
        // Drop Ethernet padding, so the outer length is the inner packet's.
        let excess = frame
            .as_ref()
            .len()
            .saturating_sub(ETHERNET_HEADER + header.len);
        if !frame.trim(excess) || !frame.prepend(A::HEADER_LEN) {
            return false;
        }
        let bytes = frame.as_mut();
        bytes.copy_within(A::HEADER_LEN..A::HEADER_LEN + ETHERNET_HEADER, 0);
        EthernetFrame::new_unchecked(&mut bytes[..]).set_ethertype(A::ETHERTYPE);
        self.tunnel_ident = self.tunnel_ident.wrapping_add(1);
        let (outer, inner) = bytes[ETHERNET_HEADER..].split_at_mut(A::HEADER_LEN);
        A::write_tunnel_header(outer, header, inner, source, real, self.tunnel_ident);
        true
    }

    /// Updates the connection's state and its real server's
    /// active/inactive counts.
    fn track<A: Ip>(
        &mut self,
        now: Instant,
        id: ConnId,
        conn: &Conn<A>,
        direction: Direction,
        signal: TcpSignal,
    ) {
        let conns = &mut A::plane_mut(&mut self.planes).conns;
        if conn.protocol != IpProtocol::TCP.0 {
            conns.touch(id, now);
            return;
        }
        // Most segments are plain ACKs of established connections: no
        // transition to look up.
        let steady = conn.state == ConnState::TcpEstablished
            && signal.ack
            && !(signal.syn || signal.fin || signal.rst);
        let state = if steady {
            conn.state
        } else {
            tcp_transition(conn.state, direction, conn.method.is_input_only(), signal)
        };
        if state == conn.state {
            conns.touch(id, now);
            return;
        }
        conns.set_state(id, state, now);
        let inactive = !state.is_active();
        if inactive != conn.counted_inactive {
            let rs = self.counters.real_server(conn.real_server);
            if inactive {
                unbump(&rs.active, 1);
                bump(&rs.inactive, 1);
            } else {
                unbump(&rs.inactive, 1);
                bump(&rs.active, 1);
            }
            conns.set_counted_inactive(id, inactive);
        }
    }

    /// Fills in the Ethernet addresses of a packet leaving through `hop`.
    pub(super) fn emit<A: Ip>(
        &mut self,
        now: Instant,
        bytes: &mut [u8],
        hop: NextHop<A>,
    ) -> Verdict {
        let Some(port_mac) = self
            .snapshot
            .ports
            .get(usize::from(hop.port))
            .map(|p| p.mac)
        else {
            return self.drop(DropReason::NoRoute);
        };
        let mut ethernet = EthernetFrame::new_unchecked(bytes);
        ethernet.set_src_addr(port_mac);
        let plane = A::plane_mut(&mut self.planes);
        let generation = plane.neighbours.generation();
        let memo = &plane.next_hops[next_hop_slot(hop.address)];
        if memo.address == hop.address && memo.generation == generation && now < memo.fresh_until {
            ethernet.set_dst_addr(memo.mac);
            return Verdict::Transmit { port: hop.port };
        }
        match plane
            .neighbours
            .resolve(now, hop.address, self.snapshot.neighbour_timeout)
        {
            Resolution::Known {
                mac,
                probe,
                fresh_until,
            } => {
                plane.next_hops[next_hop_slot(hop.address)] = NextHopMemo {
                    address: hop.address,
                    mac,
                    generation,
                    fresh_until,
                };
                if probe {
                    self.probe(hop.port, hop.address.to_ip());
                }
                ethernet.set_dst_addr(mac);
                Verdict::Transmit { port: hop.port }
            }
            Resolution::Unknown { probe } => {
                if probe {
                    self.probe(hop.port, hop.address.to_ip());
                }
                Verdict::AwaitNeighbour {
                    port: hop.port,
                    next_hop: hop.address.to_ip(),
                }
            }
            Resolution::TableFull => self.drop(DropReason::NeighbourUnresolved),
        }
    }

    /// Routes `destination` and fills in the Ethernet addresses.
    pub(super) fn send_to<A: Ip>(
        &mut self,
        now: Instant,
        bytes: &mut [u8],
        destination: A,
    ) -> Verdict {
        match self.snapshot.routes::<A>().lookup(destination) {
            Some(hop) => self.emit(now, bytes, hop),
            None => self.drop(DropReason::NoRoute),
        }
    }

    pub(super) fn probe(&mut self, port: u16, target: IpAddr) {
        let request = match target {
            IpAddr::V4(target) => super::Request::ArpProbe { port, target },
            IpAddr::V6(target) => super::Request::NeighbourSolicit { port, target },
        };
        // A full outbox only delays the probe to the next packet or sweep.
        let _ = self.requests.push(request);
    }

    /// Asks for the MACs of every real server's next hop, so that the
    /// first connections do not wait for resolution.
    pub(super) fn resolve_real_servers(&mut self, now: Instant) {
        let snapshot = std::sync::Arc::clone(&self.snapshot);
        for real_server in snapshot.services.iter().flat_map(|s| &s.real_servers) {
            match real_server.address {
                IpAddr::V4(address) => self.resolve_ahead(now, address),
                IpAddr::V6(address) => self.resolve_ahead(now, address),
            }
        }
    }

    fn resolve_ahead<A: Ip>(&mut self, now: Instant, address: A) {
        let Some(hop) = self.snapshot.routes::<A>().lookup(address) else {
            return;
        };
        let timeout = self.snapshot.neighbour_timeout;
        let resolution =
            A::plane_mut(&mut self.planes)
                .neighbours
                .resolve(now, hop.address, timeout);
        if let Resolution::Known { probe: true, .. } | Resolution::Unknown { probe: true } =
            resolution
        {
            self.probe(hop.port, hop.address.to_ip());
        }
    }
}
