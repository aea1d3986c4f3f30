//! The stateless TCP client and server: each next segment is derived from
//! the one received alone (its flags, numbers and payload length, with the
//! fixed initial sequence numbers of [`crate::packet`]), so millions of
//! connections need no per-flow state. The reply is written into the
//! received frame in place ([`reply_tcp`], [`echo_udp`], [`reply_arp`]).
//!
//! The server's exchange, as a minimal server answers:
//!
//! ```text
//! SYN                      -> SYN-ACK  seq SERVER_ISN, ack seq+1
//! data (ACK, no FIN)       -> ACK      seq ack, ack seq+len
//! FIN (with or w/o data)   -> FIN-ACK  seq ack, ack seq+len+1
//! ACK of our FIN, no data  -> nothing: the connection is complete
//! ```
//!
//! and the client's (`handshake` profile; the others only count):
//!
//! ```text
//! SYN-ACK  -> ACK+PSH+FIN with data  seq ack, ack seq+1
//! FIN-ACK  -> ACK                    seq ack, ack seq+1
//! ```

use std::net::Ipv4Addr;

use dataplane::frame::Frame;
use dataplane::wire::checksum::pseudo_header_v4;
use dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr,
    TcpFlags, TcpPacket, UdpPacket,
};

use crate::packet::{IP, L4, MIN_DATA, Profile, SERVER_ISN, STAMP_LEN, TCP_HEADERS, write_stamp};

/// The numbers of a TCP segment that the exchange looks at or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: usize,
}

/// What a received segment was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Server: a connection request.
    Syn,
    /// Client: the server accepted.
    SynAck,
    /// Server: data without FIN.
    Data,
    /// Server: the client closed (data and FIN).
    Fin,
    /// Client: the server closed too.
    FinAck,
    /// Server: the last ACK of a connection.
    Completed,
    /// An ACK without data that ends nothing.
    Ack,
    /// A reset.
    Reset,
}

/// What the server side answers to `segment`.
pub fn server_next(segment: &Segment) -> (Event, Option<Segment>) {
    let Segment {
        flags,
        seq,
        ack,
        payload_len,
    } = *segment;
    let len = payload_len as u32; // at most a frame
    if flags.contains(TcpFlags::RST) {
        return (Event::Reset, None);
    }
    if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
        let reply = Segment {
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq: SERVER_ISN,
            ack: seq.wrapping_add(1),
            payload_len: 0,
        };
        return (Event::Syn, Some(reply));
    }
    if flags.contains(TcpFlags::FIN) {
        let reply = Segment {
            flags: TcpFlags::FIN | TcpFlags::ACK,
            seq: ack,
            ack: seq.wrapping_add(len).wrapping_add(1),
            payload_len: 0,
        };
        return (Event::Fin, Some(reply));
    }
    if payload_len > 0 {
        let reply = Segment {
            flags: TcpFlags::ACK,
            seq: ack,
            ack: seq.wrapping_add(len),
            payload_len: 0,
        };
        return (Event::Data, Some(reply));
    }
    // Our FIN-ACK went out with seq SERVER_ISN + 1: its ACK acks + 2.
    if flags.contains(TcpFlags::ACK) && ack == SERVER_ISN.wrapping_add(2) {
        return (Event::Completed, None);
    }
    (Event::Ack, None)
}

/// What the client side sends on `segment` in `profile`, whose data
/// segments carry `data_len` bytes.
pub fn client_next(
    profile: Profile,
    data_len: usize,
    segment: &Segment,
) -> (Event, Option<Segment>) {
    let Segment {
        flags, seq, ack, ..
    } = *segment;
    if flags.contains(TcpFlags::RST) {
        return (Event::Reset, None);
    }
    if flags.contains(TcpFlags::SYN | TcpFlags::ACK) {
        let reply = (profile == Profile::Handshake).then_some(Segment {
            flags: TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN,
            seq: ack,
            ack: seq.wrapping_add(1),
            payload_len: data_len,
        });
        return (Event::SynAck, reply);
    }
    if flags.contains(TcpFlags::FIN | TcpFlags::ACK) {
        let reply = Segment {
            flags: TcpFlags::ACK,
            seq: ack,
            ack: seq.wrapping_add(1),
            payload_len: 0,
        };
        return (Event::FinAck, Some(reply));
    }
    (Event::Ack, None)
}

/// The TCP segment of a frame, if it is an untagged IPv4 TCP frame
/// without IP options.
pub fn tcp_segment(frame: &[u8]) -> Option<Segment> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
    if ip.protocol() != IpProtocol::TCP || usize::from(ip.header_len()) != L4 - IP {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(Segment {
        flags: tcp.flags(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        payload_len: tcp.payload().len(),
    })
}

/// Turns a received IPv4 TCP frame (checked by [`tcp_segment`]) into
/// `next`, sent back where the frame came from by `own_mac`: addresses
/// and ports swapped, no TCP options, `next.payload_len` bytes of zero
/// payload, stamped with `stamp` (sequence, TSC) when given and the
/// payload has room (ident 0 otherwise), padded to the Ethernet minimum,
/// checksums recomputed. False, with the frame in an unspecified state,
/// when it cannot grow enough.
pub fn reply_tcp<F: Frame>(
    frame: &mut F,
    own_mac: MacAddr,
    next: &Segment,
    stamp: Option<(u16, u32)>,
) -> bool {
    let len = TCP_HEADERS + next.payload_len;
    if !resize(frame, len.max(MIN_DATA)) {
        return false;
    }
    let bytes = frame.as_mut();
    swap_ethernet(bytes, own_mac);
    let (source, destination) = {
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[IP..]);
        let (source, destination) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(destination);
        ip.set_dst_addr(source);
        ip.set_total_len((len - IP) as u16); // at most a frame
        let stamped = stamp.filter(|_| next.payload_len >= STAMP_LEN);
        ip.set_ident(stamped.map_or(0, |(sequence, _)| sequence));
        ip.fill_checksum();
        (destination, source)
    };
    let segment = &mut bytes[L4..len];
    let mut tcp = TcpPacket::new_unchecked(&mut *segment);
    let (src_port, dst_port) = (tcp.src_port(), tcp.dst_port());
    tcp.set_src_port(dst_port);
    tcp.set_dst_port(src_port);
    tcp.set_seq_number(next.seq);
    tcp.set_ack_number(next.ack);
    tcp.set_header_len(TcpPacket::<&[u8]>::HEADER_LEN as u8);
    tcp.set_flags(next.flags);
    tcp.set_window_len(dataplane::wire::builder::TCP_WINDOW);
    tcp.set_urgent_at(0);
    let payload = tcp.payload_mut();
    payload.fill(0);
    if let Some((_, tsc)) = stamp {
        write_stamp(payload, tsc);
    }
    let pseudo = pseudo_header_v4(source, destination, IpProtocol::TCP, (len - L4) as u32);
    tcp.fill_checksum(pseudo);
    bytes[len..].fill(0);
    true
}

/// Turns a received IPv4 UDP frame into its echo: addresses and ports
/// swapped, payload and identification kept (so a stamp comes back).
/// Swapping leaves both checksums valid, as each sum covers both
/// addresses and both ports. False if the frame is not IPv4 UDP.
pub fn echo_udp(frame: &mut [u8], own_mac: MacAddr) -> bool {
    let Ok(ethernet) = EthernetFrame::new_checked(&*frame) else {
        return false;
    };
    if ethernet.ethertype() != EtherType::IPV4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
        return false;
    };
    if ip.protocol() != IpProtocol::UDP || UdpPacket::new_checked(ip.payload()).is_err() {
        return false;
    }
    let header_len = usize::from(ip.header_len());
    swap_ethernet(frame, own_mac);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[IP..]);
    let (source, destination) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(destination);
    ip.set_dst_addr(source);
    let mut udp = UdpPacket::new_unchecked(&mut frame[IP + header_len..]);
    let (src_port, dst_port) = (udp.src_port(), udp.dst_port());
    udp.set_src_port(dst_port);
    udp.set_dst_port(src_port);
    true
}

/// What an ARP frame meant to a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arp {
    /// A request for an address the side owns: the frame is now the reply.
    Answered,
    /// A reply: `address` is at `mac`.
    Learned { address: Ipv4Addr, mac: MacAddr },
    /// Anything else (requests for other addresses, malformed frames).
    Ignored,
}

/// Handles an ARP frame: a request for an address `owns` accepts is turned
/// into the reply from `own_mac`, in place.
pub fn reply_arp(frame: &mut [u8], own_mac: MacAddr, owns: impl Fn(Ipv4Addr) -> bool) -> Arp {
    let Ok(ethernet) = EthernetFrame::new_checked(&*frame) else {
        return Arp::Ignored;
    };
    if ethernet.ethertype() != EtherType::ARP {
        return Arp::Ignored;
    }
    let Ok(request) = ArpPacket::new_checked(ethernet.payload()).and_then(|p| ArpRepr::parse(&p))
    else {
        return Arp::Ignored;
    };
    match request.operation {
        ArpOperation::REPLY => Arp::Learned {
            address: request.source_protocol_addr,
            mac: request.source_hardware_addr,
        },
        ArpOperation::REQUEST if owns(request.target_protocol_addr) => {
            let reply = ArpRepr {
                operation: ArpOperation::REPLY,
                source_hardware_addr: own_mac,
                source_protocol_addr: request.target_protocol_addr,
                target_hardware_addr: request.source_hardware_addr,
                target_protocol_addr: request.source_protocol_addr,
            };
            let mut ethernet = EthernetFrame::new_unchecked(&mut *frame);
            ethernet.set_dst_addr(request.source_hardware_addr);
            ethernet.set_src_addr(own_mac);
            reply.emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
            Arp::Answered
        }
        _ => Arp::Ignored,
    }
}

/// Sends a frame back: destination = its source, source = `own_mac`.
fn swap_ethernet(frame: &mut [u8], own_mac: MacAddr) {
    let mut ethernet = EthernetFrame::new_unchecked(frame);
    let peer = ethernet.src_addr();
    ethernet.set_dst_addr(peer);
    ethernet.set_src_addr(own_mac);
}

/// Makes the frame exactly `len` bytes long.
fn resize<F: Frame>(frame: &mut F, len: usize) -> bool {
    let current = frame.as_ref().len();
    if len >= current {
        frame.append(len - current)
    } else {
        frame.trim(current - len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{CLIENT_ISN, Endpoints, FrameKind, Template, read_stamp};
    use dataplane::frame::VecFrame;
    use dataplane::wire::builder;

    const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const DIRECTOR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);

    fn segment(flags: TcpFlags, seq: u32, ack: u32, payload_len: usize) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            payload_len,
        }
    }

    /// A whole connection, played between the two stateless sides with
    /// each frame rewritten in place, as the director would pass them (NAT
    /// changes addresses, not numbers).
    #[test]
    fn a_handshake_connection_runs_to_completion() {
        let endpoints = Endpoints {
            client_mac: CLIENT_MAC,
            next_hop_mac: DIRECTOR_MAC,
            vip: "198.18.0.10:80".parse().unwrap(),
        };
        let client = (Ipv4Addr::new(198, 19, 0, 1), 4000);
        let template = Template::new(FrameKind::Syn, &endpoints, 64, client);
        let mut bytes = vec![0; template.len()];
        template.write(&mut bytes, client, None);
        let mut frame = VecFrame::new(&bytes);
        let data_len = 100;
        let mut trace = Vec::new();
        for step in 0..6 {
            let received = tcp_segment(frame.as_ref()).expect("a TCP frame");
            // Even steps arrive at the server, odd ones at the client.
            let (event, next) = if step % 2 == 0 {
                server_next(&received)
            } else {
                client_next(Profile::Handshake, data_len, &received)
            };
            trace.push((event, received.flags));
            let Some(next) = next else { break };
            let own = if step % 2 == 0 {
                SERVER_MAC
            } else {
                CLIENT_MAC
            };
            assert!(reply_tcp(&mut frame, own, &next, None));
            assert_valid_tcp(frame.as_ref(), own, next.payload_len);
        }
        use Event::*;
        let events: Vec<Event> = trace.iter().map(|(event, _)| *event).collect();
        assert_eq!(events, [Syn, SynAck, Fin, FinAck, Completed]);
        assert_eq!(trace[2].1, TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN);
    }

    fn assert_valid_tcp(frame: &[u8], own: MacAddr, payload_len: usize) {
        assert!(frame.len() >= MIN_DATA);
        let ethernet = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(ethernet.src_addr(), own);
        let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.ident(), 0);
        let pseudo = pseudo_header_v4(
            ip.src_addr(),
            ip.dst_addr(),
            IpProtocol::TCP,
            ip.payload().len() as u32,
        );
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(pseudo));
        assert_eq!(tcp.payload().len(), payload_len);
    }

    #[test]
    fn server_transitions() {
        let syn = segment(TcpFlags::SYN, CLIENT_ISN, 0, 0);
        assert_eq!(
            server_next(&syn),
            (
                Event::Syn,
                Some(segment(
                    TcpFlags::SYN | TcpFlags::ACK,
                    SERVER_ISN,
                    CLIENT_ISN + 1,
                    0
                ))
            )
        );
        let data = segment(TcpFlags::ACK | TcpFlags::PSH, 500, SERVER_ISN + 1, 10);
        assert_eq!(
            server_next(&data),
            (
                Event::Data,
                Some(segment(TcpFlags::ACK, SERVER_ISN + 1, 510, 0))
            )
        );
        let fin = segment(TcpFlags::ACK | TcpFlags::FIN, 500, SERVER_ISN + 1, 10);
        assert_eq!(
            server_next(&fin),
            (
                Event::Fin,
                Some(segment(
                    TcpFlags::FIN | TcpFlags::ACK,
                    SERVER_ISN + 1,
                    511,
                    0
                ))
            )
        );
        let last = segment(TcpFlags::ACK, 511, SERVER_ISN + 2, 0);
        assert_eq!(server_next(&last), (Event::Completed, None));
        let other = segment(TcpFlags::ACK, 511, 7, 0);
        assert_eq!(server_next(&other), (Event::Ack, None));
        let reset = segment(TcpFlags::RST | TcpFlags::SYN, 1, 0, 0);
        assert_eq!(server_next(&reset), (Event::Reset, None));
    }

    #[test]
    fn client_transitions_depend_on_the_profile() {
        let syn_ack = segment(TcpFlags::SYN | TcpFlags::ACK, SERVER_ISN, CLIENT_ISN + 1, 0);
        assert_eq!(
            client_next(Profile::Syn, 6, &syn_ack),
            (Event::SynAck, None)
        );
        assert_eq!(
            client_next(Profile::TcpEstablished, 6, &syn_ack),
            (Event::SynAck, None)
        );
        let (event, reply) = client_next(Profile::Handshake, 6, &syn_ack);
        assert_eq!(event, Event::SynAck);
        assert_eq!(
            reply,
            Some(segment(
                TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN,
                CLIENT_ISN + 1,
                SERVER_ISN + 1,
                6
            ))
        );
        let fin_ack = segment(TcpFlags::FIN | TcpFlags::ACK, SERVER_ISN + 1, 9, 0);
        assert_eq!(
            client_next(Profile::Handshake, 6, &fin_ack),
            (
                Event::FinAck,
                Some(segment(TcpFlags::ACK, 9, SERVER_ISN + 2, 0))
            )
        );
    }

    #[test]
    fn udp_echo_keeps_checksums_and_stamp() {
        let endpoints = Endpoints {
            client_mac: CLIENT_MAC,
            next_hop_mac: DIRECTOR_MAC,
            vip: "198.18.1.11:80".parse().unwrap(),
        };
        let client = (Ipv4Addr::new(198, 19, 3, 4), 5555);
        let template = Template::new(FrameKind::Udp, &endpoints, 128, client);
        let mut frame = vec![0; template.len()];
        template.write(&mut frame, client, Some((9, 1234)));
        assert!(echo_udp(&mut frame, SERVER_MAC));
        let ethernet = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(
            (ethernet.src_addr(), ethernet.dst_addr()),
            (SERVER_MAC, CLIENT_MAC)
        );
        let ip = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), client.0);
        let pseudo = pseudo_header_v4(
            ip.src_addr(),
            ip.dst_addr(),
            IpProtocol::UDP,
            ip.payload().len() as u32,
        );
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(pseudo));
        assert_eq!((udp.src_port(), udp.dst_port()), (80, 5555));
        assert_eq!(read_stamp(&frame), Some(1234));
    }

    #[test]
    fn arp_requests_for_owned_addresses_are_answered() {
        let rip = Ipv4Addr::new(198, 18, 1, 11);
        let dip = Ipv4Addr::new(198, 18, 1, 1);
        let mut frame = builder::arp_request(DIRECTOR_MAC, dip, rip);
        assert_eq!(
            reply_arp(&mut frame, SERVER_MAC, |a| a == rip),
            Arp::Answered
        );
        assert_eq!(
            frame,
            builder::arp_reply(SERVER_MAC, rip, DIRECTOR_MAC, dip)
        );
        let mut other = builder::arp_request(DIRECTOR_MAC, dip, Ipv4Addr::new(198, 18, 1, 99));
        assert_eq!(
            reply_arp(&mut other, SERVER_MAC, |a| a == rip),
            Arp::Ignored
        );
        assert_eq!(
            reply_arp(&mut frame, CLIENT_MAC, |_| true),
            Arp::Learned {
                address: rip,
                mac: SERVER_MAC
            }
        );
    }
}
