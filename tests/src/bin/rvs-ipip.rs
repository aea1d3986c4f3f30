//! IP-in-IP in userspace, for the TUN-mode lab: the kernels of the lab's
//! machines have no `ipip`, `sit` or `ip6_tunnel` module, so nothing in
//! them would decapsulate what rvsd's tunnel sends.
//!
//! ```text
//! rvs-ipip decap TUN                 a real server's decapsulator
//! rvs-ipip encap TUN RIP [RIP...]    a reference tunnelling director
//! ```
//!
//! `decap` reads IP-in-IP packets addressed to this host from raw sockets,
//! one per outer family and inner protocol (IPv4 protocol 4 and 41, IPv6
//! next header 4 and 41), strips the outer header and writes the inner
//! packet to the TUN device `TUN`. The kernel then receives the inner packet
//! on `TUN` as if it had arrived there, delivers it to the VIP that the real
//! server holds (on `lo`), and the reply leaves by the ordinary routes,
//! straight to the client. A raw socket gets a copy of every packet of its
//! protocol; since no kernel module claims protocols 4 and 41 here, the
//! copy is the only one, and the kernel sends no "protocol unreachable"
//! for a packet a raw socket took.
//!
//! `encap` is the other end, for checking the lab without rvsd: it reads
//! the packets the kernel routes into `TUN` (those for the VIP), picks a
//! real server of the inner packet's family by a hash of the inner flow,
//! so that a connection stays on one server, and sends the packet to it
//! inside an outer header that the kernel builds (a raw socket of protocol
//! 4 or 41 without `IP_HDRINCL`).
//!
//! The TUN device must exist (`ip tuntap add dev TUN mode tun`, without
//! packet information). Both run until killed; a socket or device error
//! ends the program with a message and a failure status.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tun_tap::{Iface, Mode};

/// IPv4 in IP (`IPPROTO_IPIP`).
const PROTOCOL_IPV4: i32 = 4;
/// IPv6 in IP (`IPPROTO_IPV6`).
const PROTOCOL_IPV6: i32 = 41;

const USAGE: &str = "usage: rvs-ipip decap TUN | rvs-ipip encap TUN RIP [RIP...]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["decap", tun] => decap(tun),
        ["encap", tun, ref real_servers @ ..] if !real_servers.is_empty() => real_servers
            .iter()
            .map(|rip| {
                rip.parse::<IpAddr>()
                    .map_err(|error| format!("{rip}: {error}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|rips| encap(tun, &rips)),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rvs-ipip: {error}");
            ExitCode::FAILURE
        }
    }
}

fn open_tun(name: &str) -> Result<Arc<Iface>, String> {
    Iface::without_packet_info(name, Mode::Tun)
        .map(Arc::new)
        .map_err(|error| format!("cannot attach to TUN device {name}: {error}"))
}

fn raw_socket(domain: Domain, protocol: i32) -> Result<Socket, String> {
    Socket::new(domain, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(|error| format!("cannot open a raw socket for protocol {protocol}: {error}"))
}

/// Decapsulates from four raw sockets into `tun`, one thread each.
fn decap(tun: &str) -> Result<(), String> {
    let tun = open_tun(tun)?;
    let mut threads = Vec::new();
    for domain in [Domain::IPV4, Domain::IPV6] {
        for protocol in [PROTOCOL_IPV4, PROTOCOL_IPV6] {
            let socket = raw_socket(domain, protocol)?;
            let tun = Arc::clone(&tun);
            threads.push(std::thread::spawn(move || {
                decap_loop(&socket, domain == Domain::IPV4, protocol, &tun)
            }));
        }
    }
    // The first thread to fail ends the program.
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a decapsulating thread panicked".to_owned())??;
    }
    Ok(())
}

fn decap_loop(socket: &Socket, outer_ipv4: bool, protocol: i32, tun: &Iface) -> Result<(), String> {
    let inner_version = if protocol == PROTOCOL_IPV4 { 4 } else { 6 };
    let mut buffer = vec![0u8; 65536];
    loop {
        let length = (&*socket)
            .read(&mut buffer)
            .map_err(|error| format!("raw socket (protocol {protocol}): {error}"))?;
        let packet = &buffer[..length];
        // An IPv4 raw socket hands over the outer header too; an IPv6 one
        // only what follows it.
        let inner = if outer_ipv4 {
            packet
                .first()
                .map(|byte| usize::from(byte & 0x0f) * 4)
                .and_then(|header| packet.get(header..))
        } else {
            Some(packet)
        };
        match inner {
            Some(inner) if inner.first().map(|byte| byte >> 4) == Some(inner_version) => {
                tun.send(inner)
                    .map_err(|error| format!("cannot write to {}: {error}", tun.name()))?;
            }
            _ => eprintln!("rvs-ipip: dropped a malformed IP-in-IP packet of {length} bytes"),
        }
    }
}

/// Encapsulates what the kernel routes into `tun` towards `real_servers`.
fn encap(tun: &str, real_servers: &[IpAddr]) -> Result<(), String> {
    let tun = open_tun(tun)?;
    let ipv4 = raw_socket(Domain::IPV4, PROTOCOL_IPV4)?;
    let ipv6 = raw_socket(Domain::IPV6, PROTOCOL_IPV6)?;
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) =
        real_servers.iter().partition(|address| address.is_ipv4());
    let mut buffer = vec![0u8; 65536];
    loop {
        let length = tun
            .recv(&mut buffer)
            .map_err(|error| format!("cannot read {}: {error}", tun.name()))?;
        let packet = &buffer[..length];
        let Some((version, hash)) = flow_hash(packet) else {
            continue;
        };
        let (socket, servers) = if version == 4 {
            (&ipv4, &v4)
        } else {
            (&ipv6, &v6)
        };
        if servers.is_empty() {
            continue;
        }
        // The high bits (the index stays below the length, as the hash
        // stays below 2^32): FNV-1a's lowest bit is the parity of the
        // bytes, and Linux gives connect() even ports.
        let index = (u64::from(hash) * servers.len() as u64) >> 32;
        let server = servers[index as usize];
        let destination = SockAddr::from(SocketAddr::new(server, 0));
        if let Err(error) = socket.send_to(packet, &destination) {
            eprintln!("rvs-ipip: cannot send {length} bytes to {server}: {error}");
        }
    }
}

/// The IP version of `packet` and a hash of its source address and
/// transport ports (FNV-1a), or `None` if it is not IPv4 or IPv6. Packets
/// too short for ports hash their addresses only.
fn flow_hash(packet: &[u8]) -> Option<(u8, u32)> {
    let version = packet.first()? >> 4;
    let (source, ports) = match version {
        4 => {
            let header = usize::from(packet[0] & 0x0f) * 4;
            (packet.get(12..16)?, packet.get(header..header + 4))
        }
        6 => (packet.get(8..24)?, packet.get(40..44)),
        _ => return None,
    };
    let hash = source
        .iter()
        .chain(ports.unwrap_or_default())
        .fold(0x811c_9dc5u32, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
        });
    Some((version, hash))
}
