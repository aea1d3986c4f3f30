//! One tcpdump-like line for any bytes.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use super::checksum;
use super::{
    ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet,
    Ipv6Packet, MAX_EXT_HEADERS, TcpPacket, TcpRepr, UdpPacket, UdpRepr, VlanTag, transport_ports,
};

/// How many VLAN tags are described before the rest is called malformed;
/// QinQ has two.
const MAX_VLAN_TAGS: usize = 4;

/// Renders an Ethernet frame as one tcpdump-like line, descending through
/// VLAN tags, ARP, IPv4, IPv6 and its extension headers, TCP, UDP, ICMP and
/// ICMPv6, and into the packet an ICMP error quotes:
///
/// `02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4 198.18.0.2:40000 >
/// 198.18.0.10:80: TCP [S] seq 1 win 64240 len 0`
///
/// Whatever is malformed or truncated is named where it is met
/// (`[ipv4: truncated]`); formatting never fails and never panics, for any
/// bytes. It is for logs, tests and the fuzzer, not the per-packet path.
#[derive(Debug, Clone, Copy)]
pub struct PrettyFrame<'a>(pub &'a [u8]);

impl fmt::Display for PrettyFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = match EthernetFrame::new_checked(self.0) {
            Ok(frame) => frame,
            Err(err) => return write!(f, "[ethernet: {err}]"),
        };
        write!(f, "{} > {}, ", frame.src_addr(), frame.dst_addr())?;
        let mut ethertype = frame.ethertype();
        let mut payload = frame.payload();
        for _ in 0..MAX_VLAN_TAGS {
            if !ethertype.is_vlan() {
                break;
            }
            let tag = match VlanTag::new_checked(payload) {
                Ok(tag) => tag,
                Err(err) => return write!(f, "[vlan: {err}]"),
            };
            write!(f, "vlan {}, p {}, ", tag.vlan_id(), tag.pcp())?;
            ethertype = tag.ethertype();
            payload = payload
                .get(VlanTag::<&[u8]>::HEADER_LEN..)
                .unwrap_or_default();
        }
        match ethertype {
            EtherType::ARP => write!(f, "{}", ArpPacket::new_unchecked(payload)),
            EtherType::IPV4 => fmt_ipv4(f, payload, Context::Frame),
            EtherType::IPV6 => fmt_ipv6(f, payload, Context::Frame),
            other if other.is_vlan() => f.write_str("[vlan: malformed]"),
            other => write!(f, "{other}, len {}", payload.len()),
        }
    }
}

/// Whether a packet travels in the frame or is quoted by an ICMP error:
/// quoted packets are cut short, so length checks are relaxed, checksums
/// are not judged, and they are not descended into again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Frame,
    Quoted,
}

/// The network layer as the transport line needs it.
struct Network<'a> {
    family: &'static str,
    src: IpAddr,
    dst: IpAddr,
    /// IPv6 extension headers met on the way.
    ext_headers: &'a [IpProtocol],
    context: Context,
}

impl Network<'_> {
    fn pseudo_header(&self, protocol: IpProtocol, len: usize) -> u16 {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                checksum::pseudo_header_v4(src, dst, protocol, len)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                checksum::pseudo_header_v6(&src, &dst, protocol, len)
            }
            // Mixed families never come out of one header.
            _ => 0,
        }
    }

    /// `IPv4 a:p > b:q: ` or `IPv6 [a]:p > [b]:q: hop-by-hop, `.
    fn fmt_prefix(&self, f: &mut fmt::Formatter<'_>, ports: Option<(u16, u16)>) -> fmt::Result {
        let family = self.family;
        match ports {
            Some((sp, dp)) => {
                let (src, dst) = (SocketAddr::new(self.src, sp), SocketAddr::new(self.dst, dp));
                write!(f, "{family} {src} > {dst}: ")?;
            }
            None => write!(f, "{family} {} > {}: ", self.src, self.dst)?,
        }
        for header in self.ext_headers {
            write!(f, "{header}, ")?;
        }
        Ok(())
    }

    fn fmt_bad_checksum(
        &self,
        f: &mut fmt::Formatter<'_>,
        what: &str,
        verify: impl FnOnce() -> bool,
    ) -> fmt::Result {
        if self.context == Context::Frame && !verify() {
            write!(f, " [bad {what} checksum]")?;
        }
        Ok(())
    }
}

fn fmt_ipv4(f: &mut fmt::Formatter<'_>, bytes: &[u8], context: Context) -> fmt::Result {
    let ip = Ipv4Packet::new_unchecked(bytes);
    let checked = match context {
        Context::Frame => ip.check_len(),
        Context::Quoted => ip.check_header_len(),
    };
    if let Err(err) = checked {
        return write!(f, "[ipv4: {err}]");
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.is_fragment() {
        // Only the first fragment has the transport header; describe all
        // of them alike, at the IP layer.
        return write!(f, "IPv4 {src} > {dst}: ").and_then(|()| ip.fmt_details(f));
    }
    let network = Network {
        family: "IPv4",
        src: src.into(),
        dst: dst.into(),
        ext_headers: &[],
        context,
    };
    fmt_transport(f, &network, ip.protocol(), ip.payload())?;
    if context == Context::Frame && !ip.verify_checksum() {
        f.write_str(" [bad ip checksum]")?;
    }
    Ok(())
}

fn fmt_ipv6(f: &mut fmt::Formatter<'_>, bytes: &[u8], context: Context) -> fmt::Result {
    let ip = Ipv6Packet::new_unchecked(bytes);
    let checked = match context {
        Context::Frame => ip.check_len(),
        Context::Quoted => ip.check_header_len(),
    };
    if let Err(err) = checked {
        return write!(f, "[ipv6: {err}]");
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut ext_headers = [IpProtocol(0); MAX_EXT_HEADERS];
    let mut count = 0;
    let upper = ip.walk_ext_headers(|protocol| {
        if let Some(slot) = ext_headers.get_mut(count) {
            *slot = protocol;
            count += 1;
        }
    });
    let ext_headers = ext_headers.get(..count).unwrap_or_default();
    let network = Network {
        family: "IPv6",
        src: src.into(),
        dst: dst.into(),
        ext_headers,
        context,
    };
    let upper = match upper {
        Ok(upper) => upper,
        Err(err) => {
            network.fmt_prefix(f, None)?;
            return write!(f, "[ipv6 extension header: {err}]");
        }
    };
    if let Some(fragment) = upper.fragment {
        network.fmt_prefix(f, None)?;
        let more = if fragment.more { "+" } else { "" };
        let (offset, ident) = (fragment.offset, fragment.ident);
        return write!(
            f,
            "frag {offset}{more} id {ident}, {} len {}",
            upper.protocol,
            ip.payload_len()
        );
    }
    fmt_transport(f, &network, upper.protocol, ip.upper_layer_payload(&upper))
}

fn fmt_transport(
    f: &mut fmt::Formatter<'_>,
    network: &Network<'_>,
    protocol: IpProtocol,
    bytes: &[u8],
) -> fmt::Result {
    match protocol {
        IpProtocol::TCP => fmt_tcp(f, network, bytes),
        IpProtocol::UDP => fmt_udp(f, network, bytes),
        IpProtocol::ICMP if network.src.is_ipv4() => fmt_icmpv4(f, network, bytes),
        IpProtocol::ICMPV6 if network.src.is_ipv6() => fmt_icmpv6(f, network, bytes),
        other => {
            network.fmt_prefix(f, None)?;
            write!(f, "{other} len {}", bytes.len())
        }
    }
}

fn fmt_tcp(f: &mut fmt::Formatter<'_>, network: &Network<'_>, bytes: &[u8]) -> fmt::Result {
    network.fmt_prefix(f, transport_ports(bytes))?;
    let packet = TcpPacket::new_unchecked(bytes);
    let repr = match TcpRepr::parse(&packet) {
        Ok(repr) => repr,
        Err(err) => return fmt_short_transport(f, network, ["TCP", "tcp"], bytes, err),
    };
    f.write_str("TCP ")?;
    repr.fmt_details(f)?;
    let pseudo = network.pseudo_header(IpProtocol::TCP, bytes.len());
    network.fmt_bad_checksum(f, "tcp", || packet.verify_checksum(pseudo))
}

fn fmt_udp(f: &mut fmt::Formatter<'_>, network: &Network<'_>, bytes: &[u8]) -> fmt::Result {
    network.fmt_prefix(f, transport_ports(bytes))?;
    let packet = UdpPacket::new_unchecked(bytes);
    let repr = match UdpRepr::parse(&packet) {
        Ok(repr) => repr,
        Err(err) => return fmt_short_transport(f, network, ["UDP", "udp"], bytes, err),
    };
    f.write_str("UDP ")?;
    repr.fmt_details(f)?;
    let pseudo = network.pseudo_header(IpProtocol::UDP, packet.len().into());
    network.fmt_bad_checksum(f, "udp", || packet.verify_checksum(pseudo))
}

/// A transport header that failed its check: in a quoted packet that is
/// expected (errors quote as little as 8 bytes), elsewhere it is an error.
fn fmt_short_transport(
    f: &mut fmt::Formatter<'_>,
    network: &Network<'_>,
    [name, lower_name]: [&str; 2],
    bytes: &[u8],
    err: super::Error,
) -> fmt::Result {
    match network.context {
        Context::Quoted => write!(f, "{name} [{} bytes quoted]", bytes.len()),
        Context::Frame => write!(f, "[{lower_name}: {err}]"),
    }
}

fn fmt_icmpv4(f: &mut fmt::Formatter<'_>, network: &Network<'_>, bytes: &[u8]) -> fmt::Result {
    network.fmt_prefix(f, None)?;
    let packet = match Icmpv4Packet::new_checked(bytes) {
        Ok(packet) => packet,
        Err(err) => return write!(f, "[icmp: {err}]"),
    };
    write!(f, "{packet}")?;
    fmt_quoted(f, network, packet.is_error(), packet.data(), fmt_ipv4)
}

fn fmt_icmpv6(f: &mut fmt::Formatter<'_>, network: &Network<'_>, bytes: &[u8]) -> fmt::Result {
    network.fmt_prefix(f, None)?;
    let packet = match Icmpv6Packet::new_checked(bytes) {
        Ok(packet) => packet,
        Err(err) => return write!(f, "[icmpv6: {err}]"),
    };
    write!(f, "{packet}")?;
    let pseudo = network.pseudo_header(IpProtocol::ICMPV6, bytes.len());
    network.fmt_bad_checksum(f, "icmpv6", || packet.verify_checksum(pseudo))?;
    fmt_quoted(f, network, packet.is_error(), packet.data(), fmt_ipv6)
}

/// Describes the packet an ICMP error quotes, once: a quoted error's own
/// quote is not followed.
fn fmt_quoted(
    f: &mut fmt::Formatter<'_>,
    network: &Network<'_>,
    is_error: bool,
    quoted: &[u8],
    fmt_ip: fn(&mut fmt::Formatter<'_>, &[u8], Context) -> fmt::Result,
) -> fmt::Result {
    if !is_error || network.context == Context::Quoted {
        return Ok(());
    }
    f.write_str(", quoting [")?;
    fmt_ip(f, quoted, Context::Quoted)?;
    f.write_str("]")
}
