//! ICMP errors about tracked connections, translated like the connection
//! (as IPVS's `ip_vs_in_icmp` / `ip_vs_out_icmp`).
//!
//! An error quotes a packet the director sent: to a real server (a router
//! on that side, or the server, answers towards the packet's source: the
//! client, or the LIP in FULLNAT), or to a client (a router on the
//! client's side answers the VIP). Reversing the quoted tuple gives the
//! tuple of a packet travelling where the error must go, which finds the
//! connection and its direction. Both the error's own addresses and the
//! quoted packet's are then rewritten the way the connection rewrites its
//! packets in that direction, every checksum is fixed, and the error
//! goes on: "fragmentation needed" and "packet too big" reach the host
//! that sent the large packet, so path MTU discovery works through NAT and
//! FULLNAT. Errors about direct-routing and tunnelled connections (only
//! the client's side passes the director) go to the real server like the
//! connection's packets.

use super::flow::{Plan, Rewrite};
use super::local::Icmp;
use super::{Director, ETHERNET_HEADER, Verdict};
use crate::conn::FlowKey;
use crate::counters::DropReason;
use crate::frame::Frame;
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, checksum};

const ICMP_HEADER: usize = 8;

/// The quoted packet's header, as far as the quote goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quoted<A> {
    pub key: FlowKey<A>,
    /// Where the quoted transport header starts, from the quote's start.
    pub l4: usize,
}

/// How a family reads and rewrites a quoted packet.
pub(super) trait Quote: Icmp {
    fn read_quote(quote: &[u8]) -> Option<Quoted<Self>>;
    /// Sets the quoted packet's source and destination addresses and
    /// fixes its header checksum (IPv4).
    fn write_quote_addresses(quote: &mut [u8], src: Self, dst: Self);
    /// Sets the error's own source and destination, takes one from its hop
    /// limit, and fixes its header checksum (IPv4).
    fn write_outer(packet: &mut [u8], src: Self, dst: Self);
}

impl Quote for std::net::Ipv4Addr {
    fn read_quote(quote: &[u8]) -> Option<Quoted<Self>> {
        let ip = Ipv4Packet::new_unchecked(quote);
        ip.check_header_len().ok()?;
        let l4 = usize::from(ip.header_len());
        transport_key(
            ip.protocol(),
            ip.src_addr(),
            ip.dst_addr(),
            quote.get(l4..)?,
        )
        .map(|key| Quoted { key, l4 })
    }

    fn write_quote_addresses(quote: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv4Packet::new_unchecked(quote);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }

    fn write_outer(packet: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv4Packet::new_unchecked(packet);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_ttl(ip.ttl().saturating_sub(1));
        ip.fill_checksum();
    }
}

impl Quote for std::net::Ipv6Addr {
    fn read_quote(quote: &[u8]) -> Option<Quoted<Self>> {
        if quote.len() < 40 {
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(quote);
        // Extension headers in quotes are rare; only a transport header
        // right after the fixed one is matched.
        transport_key(ip.next_header(), ip.src_addr(), ip.dst_addr(), &quote[40..])
            .map(|key| Quoted { key, l4: 40 })
    }

    fn write_quote_addresses(quote: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv6Packet::new_unchecked(quote);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
    }

    fn write_outer(packet: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv6Packet::new_unchecked(packet);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_hop_limit(ip.hop_limit().saturating_sub(1));
    }
}

/// The ports of a quoted TCP or UDP header: its first four bytes, which
/// every ICMP error quotes.
fn transport_key<A>(protocol: IpProtocol, src: A, dst: A, transport: &[u8]) -> Option<FlowKey<A>> {
    if protocol != IpProtocol::TCP && protocol != IpProtocol::UDP {
        return None;
    }
    let ports = transport.get(..4)?;
    Some(FlowKey {
        protocol: protocol.0,
        src,
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst,
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

impl Director {
    /// An ICMP error (classified by `classify`): translated and forwarded
    /// if it quotes a tracked connection, the host's otherwise.
    pub(super) fn translate_error<A: Quote, F: Frame>(
        &mut self,
        now: Instant,
        frame: &mut F,
    ) -> Verdict {
        let bytes = frame.as_ref();
        let Ok(header) = A::parse(&bytes[ETHERNET_HEADER..]) else {
            return self.drop(DropReason::IcmpMalformed);
        };
        let message = ETHERNET_HEADER + header.l4;
        let end = ETHERNET_HEADER + header.len;
        if end < message + ICMP_HEADER {
            return self.drop(DropReason::IcmpMalformed);
        }
        let Some(quoted) = A::read_quote(&bytes[message + ICMP_HEADER..end]) else {
            return Verdict::ToKernel;
        };
        // The tuple of a packet going where this error goes.
        let reversed = FlowKey {
            protocol: quoted.key.protocol,
            src: quoted.key.dst,
            src_port: quoted.key.dst_port,
            dst: quoted.key.src,
            dst_port: quoted.key.src_port,
        };
        let Some((id, direction)) = A::plane(&self.planes).conns.lookup(&reversed) else {
            return match self.other_owner(&reversed) {
                Some(owner) => self.hand_off(owner),
                None => Verdict::ToKernel,
            };
        };
        if header.hop_limit <= 1 {
            return self.drop(DropReason::TtlExceeded);
        }
        let conn = *A::plane(&self.planes).conns.get(id);
        let Some(plan) = Plan::of(&conn, direction) else {
            return self.drop(DropReason::NoConnection);
        };
        match plan.rewrite {
            Rewrite::Translate { src, dst } => {
                // The error goes like the connection's packets in this
                // direction; the quote shows the packet as its sender sent
                // it, so its source and destination are the reverse.
                let outer_src = src.map_or(header.src, |(address, _)| address);
                let outer_dst = dst.map_or(header.dst, |(address, _)| address);
                let quote_src = dst.unwrap_or((quoted.key.src, quoted.key.src_port));
                let quote_dst = src.unwrap_or((quoted.key.dst, quoted.key.dst_port));
                let bytes = frame.as_mut();
                let packet = &mut bytes[ETHERNET_HEADER..end];
                A::write_outer(packet, outer_src, outer_dst);
                let quote = &mut packet[header.l4 + ICMP_HEADER..];
                A::write_quote_addresses(quote, quote_src.0, quote_dst.0);
                rewrite_quoted_ports(&mut quote[quoted.l4..], &quoted.key, quote_src, quote_dst);
                A::fill_icmp_checksum(&mut packet[header.l4..], outer_src, outer_dst);
                self.send_to(now, frame.as_mut(), plan.towards)
            }
            Rewrite::Untouched => self.send_to(now, frame.as_mut(), plan.towards),
            // A tunnel would carry the error to the real server, which
            // cannot use it for a connection it sees from the VIP: drop.
            Rewrite::Tunnel => self.drop(DropReason::NoConnection),
        }
    }
}

/// Writes the quoted ports and patches the quoted transport checksum when
/// the quote holds it (UDP's always does; TCP's only in longer quotes).
/// The quoted addresses' share of that checksum is patched too, since the
/// pseudo-header changed with them.
fn rewrite_quoted_ports<A: Quote>(
    transport: &mut [u8],
    old: &FlowKey<A>,
    src: (A, u16),
    dst: (A, u16),
) {
    let checksum_at = if old.protocol == IpProtocol::TCP.0 {
        16
    } else {
        6
    };
    if transport.len() < 4 {
        return;
    }
    transport[0..2].copy_from_slice(&src.1.to_be_bytes());
    transport[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let Some(field) = transport.get_mut(checksum_at..checksum_at + 2) else {
        return;
    };
    let stored = u16::from_be_bytes([field[0], field[1]]);
    if stored == 0 && old.protocol == IpProtocol::UDP.0 {
        return;
    }
    let address = |a: A| a.to_bits().to_be_bytes();
    let width = (A::BITS / 8) as usize;
    let mut sum = checksum::update_u16(stored, old.src_port, src.1);
    sum = checksum::update_u16(sum, old.dst_port, dst.1);
    sum = checksum::update_bytes(
        sum,
        &address(old.src)[16 - width..],
        &address(src.0)[16 - width..],
    );
    sum = checksum::update_bytes(
        sum,
        &address(old.dst)[16 - width..],
        &address(dst.0)[16 - width..],
    );
    field.copy_from_slice(&sum.to_be_bytes());
}
