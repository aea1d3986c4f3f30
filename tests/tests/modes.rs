//! Every forwarding mode end to end, over IPv4 and IPv6: DR, TUN and
//! FULLNAT beside NAT, with curl and dig clients, nginx and dnsmasq real
//! servers on the kernels' own stacks, and rvsd on DPDK af_packet ports.
//! See `rvs_lab` for the labs' pictures and address plan.
//!
//! - DR: one-armed. The client's router reaches the VIP on the LAN, where
//!   rvsd answers ARP/NS for it; the real servers hold the VIP on `lo`
//!   (arp_ignore=1, arp_announce=2) and reply through the router, never
//!   through rvsd.
//! - TUN: rvsd tunnels to real servers on their own subnet behind the
//!   router. The kernel on these machines has no IP-in-IP module
//!   (CONFIG_NET_IPIP, CONFIG_IPV6_TUNNEL and CONFIG_IPV6_SIT are off), so
//!   each real server runs a small userspace decapsulator written for these
//!   tests, `rvs-ipip decap` (tests/src/bin/rvs-ipip.rs): it reads the
//!   IP-in-IP packets (IPv4 protocol 4, IPv6 next header 41) from raw
//!   sockets and writes the inner packets to a TUN device, from which the
//!   kernel delivers them to nginx and dnsmasq as if they had arrived
//!   normally; the replies go straight to the client through the router.
//! - FULLNAT: the real servers have no route to the client at all, and see
//!   the LIP as the source.
//! - NAT over IPv6, and path MTU discovery through NAT: a router with a
//!   1280-byte link towards the client answers the real server's
//!   full-size segments with ICMP "fragmentation needed" (ICMPv6 "packet
//!   too big") addressed to the VIP, which rvsd must hand back to the real
//!   server translated, or the download stalls.
//!
//! Each scenario also runs with the kernel of the director namespace as the
//! director (`the_*_lab_works_with_the_kernel_as_director`): those tests
//! check the labs themselves, so that a failure of the rvsd tests is
//! rvsd's. Each test prints `rvsadm -Ln` as the mode's test left it (see
//! it with `--nocapture`).
//!
//! These tests need root; run them one at a time (`--test-threads=1`, as
//! scripts/test.sh does) since each starts a whole lab on a small machine.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use rvs_lab::{
    BIG_FILE_BYTES, Director, Family, Lab, LabSpec, Mode, Process, Protocol, RvsdOptions, UDP_PORT,
    endpoint, real_server_rows, tally, url, wait_until,
};

/// Requests of each kind per check: round robin gives each real server half.
const REQUESTS: usize = 20;

/// The MTU of the path MTU labs' link towards the client.
const SMALL_MTU: u16 = 1280;

/// Runs `scenario` over `family` in a lab of `spec` directed by rvsd
/// (IPv4 only, or both families for an IPv6 scenario).
fn through_rvsd(name: &str, spec: LabSpec, family: Family, scenario: fn(&Lab, Family)) {
    let lab = Lab::start(
        name,
        &LabSpec {
            ipv6: family == Family::V6,
            director: Director::Rvsd(RvsdOptions::default()),
            ..spec
        },
    );
    scenario(&lab, family);
}

/// Runs `scenario` over both families in one lab of `spec` directed by
/// the kernel: a check of the lab itself.
fn through_the_kernel(name: &str, spec: LabSpec, scenario: fn(&Lab, Family)) {
    let lab = Lab::start(
        name,
        &LabSpec {
            ipv6: true,
            director: Director::Kernel,
            ..spec
        },
    );
    for family in [Family::V4, Family::V6] {
        scenario(&lab, family);
    }
}

/// A NAT lab whose client is behind a router with a `SMALL_MTU` link to it.
fn path_mtu_lab() -> LabSpec {
    LabSpec {
        client_router: true,
        client_mtu: SMALL_MTU,
        ..LabSpec::new(Mode::Nat)
    }
}

// ---------------------------------------------------------------------------
// The scenarios, for rvsd and for the kernel as director.

/// Adds a TCP service on port 80 and a UDP one on port 53 with both real
/// servers, and checks that `REQUESTS` HTTP requests and DNS queries are
/// all answered, half by each real server (round robin; the kernel's DR
/// and TUN references balance by a flow hash: both servers answer), and
/// that `rvsadm -Ln` lists the services with the mode's Forward column.
fn balances_tcp_and_udp(lab: &Lab, family: Family) {
    let rips = lab.rips(family);
    lab.add_service(Protocol::Tcp, family, 80, &rips);
    lab.add_service(Protocol::Udp, family, UDP_PORT, &rips);
    let exact = lab.has_rvsd() || matches!(lab.mode(), Mode::Nat | Mode::FullNat);
    for (what, responses) in [
        ("HTTP", lab.http_requests(family, "/", REQUESTS)),
        ("DNS", lab.udp_requests(family, REQUESTS)),
    ] {
        let (rs1, rs2, failed) = tally(&responses);
        assert!(
            failed.is_empty(),
            "{family} {what}: failed requests: {failed:?}"
        );
        if exact {
            assert_eq!(
                (rs1, rs2),
                (REQUESTS / 2, REQUESTS / 2),
                "{family} {what}: round robin"
            );
        } else {
            assert!(rs1 > 0 && rs2 > 0, "{family} {what}: ({rs1}, {rs2})");
        }
    }
    if lab.has_rvsd() {
        let listing = lab.rvsadm_ok("-Ln");
        println!("rvsadm -Ln ({:?}, {family}):\n{listing}", lab.mode());
        let vip = lab.vip(family);
        for (protocol, port) in [("TCP", 80), ("UDP", UDP_PORT)] {
            let line = format!("{protocol}  {} rr", endpoint(vip, port));
            assert!(listing.contains(&line), "{line:?} in\n{listing}");
        }
        let rows = real_server_rows(&listing);
        let expected: Vec<(String, &str)> = [80, UDP_PORT]
            .iter()
            .flat_map(|&port| {
                rips.iter()
                    .map(move |&rip| (endpoint(rip, port), lab.mode().forward_name()))
            })
            .collect();
        let found: Vec<(String, &str)> = rows
            .iter()
            .map(|row| (row.address.clone(), row.forward.as_str()))
            .collect();
        assert_eq!(found, expected, "real servers and Forward in\n{listing}");
    }
}

/// DR and TUN: the real servers' replies go to the client without passing
/// the director. A download of `/big.bin` puts more than `BIG_FILE_BYTES`
/// on the wire from the real server to the client; what passes the
/// director is the client's side only (the request and the
/// acknowledgements, a few MB at most, tunnelled or not). So the
/// director's ports, as the kernel counts them, and rvsd's workers, as it
/// counts itself, must carry far less than the file, and rvsd must count
/// no packet out of the service (IPVS's OutPkts stays 0 in DR and TUN).
fn replies_bypass_the_director(lab: &Lab, family: Family) {
    let ports_before = lab.director_port_traffic();
    let workers_before = lab.has_rvsd().then(|| lab.worker_traffic());
    let client_before = lab.client.interface_counter("c0", "rx_bytes");
    lab.download_big_file(family)
        .unwrap_or_else(|error| panic!("{family} download: {error}"));
    let received = lab.client.interface_counter("c0", "rx_bytes") - client_before;
    let ports = lab.director_port_traffic() - ports_before;
    let limit = BIG_FILE_BYTES as u64 / 4;
    assert!(
        received > BIG_FILE_BYTES as u64,
        "{family}: the client received {received} bytes"
    );
    assert!(
        ports.rx_bytes < limit && ports.tx_bytes < limit,
        "{family}: the director's ports carried {ports:?} while the client received {received} bytes: \
         the replies went through the director"
    );
    if let Some(before) = workers_before {
        let workers = lab.worker_traffic() - before;
        assert!(
            workers.rx_bytes < limit && workers.tx_bytes < limit,
            "{family}: rvsd's workers handled {workers:?} while the client received {received} bytes"
        );
        let stats = lab.rvsadm_ok("-Ln --stats --exact");
        let service = endpoint(lab.vip(family), 80);
        let line = stats
            .lines()
            .find(|line| line.starts_with("TCP") && line.contains(&service))
            .unwrap_or_else(|| panic!("no {service} in\n{stats}"));
        // TCP  VIP:80  Conns InPkts OutPkts InBytes OutBytes
        let out_packets = line.split_whitespace().nth(4);
        assert_eq!(
            out_packets,
            Some("0"),
            "{family}: rvsd saw packets from the real servers:\n{stats}"
        );
    }
}

/// DR: the router found the VIP at the director's MAC address: the
/// director answered ARP/NS for it and the real servers did not.
fn the_vip_resolves_to_the_director(lab: &Lab, family: Family) {
    let router = lab.router.as_ref().expect("DR labs have a router");
    let vip = lab.vip(family).to_string();
    let neighbour = router.exec(&["ip", family.ip_option(), "neigh", "show", &vip]);
    let director_mac = lab.director.mac("d0");
    assert!(
        neighbour.contains(&director_mac),
        "{family}: the router's neighbour entry for the VIP is {neighbour:?}, not the director's {director_mac}"
    );
}

/// TUN: every real server got its requests through its decapsulator: the
/// kernel counts what `rvs-ipip` wrote to tun0 as received there.
fn real_servers_received_ip_in_ip(lab: &Lab) {
    for rs in &lab.real_servers {
        let packets = rs.interface_counter("tun0", "rx_packets");
        assert!(
            packets > 0,
            "{}: nothing came out of the tunnel (tun0 rx_packets 0)",
            rs.name
        );
    }
}

/// FULLNAT: the real servers have no route to the client.
fn real_servers_cannot_reach_the_client(lab: &Lab, family: Family) {
    let cip = lab.cip(family).to_string();
    for rs in &lab.real_servers {
        let output = rs
            .command("ip")
            .args([family.ip_option(), "route", "get", &cip])
            .output()
            .expect("ip route get");
        assert!(
            !output.status.success(),
            "{}: a route to the client exists: {}",
            rs.name,
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// FULLNAT: the real servers see the LIP as the client's address.
fn real_servers_see_the_lip(lab: &Lab, family: Family) {
    let lip = lab.lip(family).to_string();
    // `NAME ADDRESS PORT` from nginx's /whoami.
    for response in lab.http_requests(family, "/whoami", 4) {
        assert_eq!(
            response.split_whitespace().nth(1),
            Some(lip.as_str()),
            "{family}: the real server saw {response:?}"
        );
    }
}

/// FULLNAT: two clients (two client addresses) with the same source port
/// download from the same real server at the same time (a service on port
/// 8080 with one real server): the real server sees two connections from
/// the LIP with different ports, and both transfers arrive intact.
fn same_client_ports_do_not_collide(lab: &Lab, family: Family) {
    const PORT: u16 = 8080;
    const CLIENT_PORT: &str = "40000";
    const BYTES: usize = 1024 * 1024;
    let rs = &lab.real_servers[0];
    lab.add_service(Protocol::Tcp, family, PORT, &lab.rips(family)[..1]);
    let outputs: Vec<_> = (0..2)
        .map(|i| lab.dir().join(format!("same-port-{family}-{i}.bin")))
        .collect();
    // The server sends at 512 KiB/s: the transfers last 2 s, together.
    let mut transfers: Vec<Process> = lab
        .cips(family)
        .iter()
        .zip(&outputs)
        .map(|(cip, output)| {
            let mut curl = lab.client.command("curl");
            curl.args(["-sS", "--max-time", "20"])
                .args(["--interface", &cip.to_string(), "--local-port", CLIENT_PORT])
                .args(["-r", &format!("0-{}", BYTES - 1), "-o"])
                .arg(output)
                .arg(url(lab.vip(family), PORT, "/slow/big.bin"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(output.with_extension("log")).expect("log"));
            Process::spawn(curl)
        })
        .collect();

    let lip = lab.lip(family);
    let mut peers: Vec<(IpAddr, u16)> = Vec::new();
    let both_open = wait_until(Duration::from_secs(10), || {
        peers = established_peers(rs, PORT);
        peers.len() >= 2
    });
    let curl_errors = || -> String {
        outputs
            .iter()
            .map(|output| std::fs::read_to_string(output.with_extension("log")).unwrap_or_default())
            .collect()
    };
    assert!(
        both_open,
        "{family}: {} never had both connections at once: {peers:?}; curl: {}",
        rs.name,
        curl_errors()
    );
    assert!(
        peers.iter().all(|(address, _)| *address == lip) && peers[0].1 != peers[1].1,
        "{family}: {} sees {peers:?}, not two different ports of the LIP {lip}",
        rs.name
    );
    let expected = &std::fs::read(lab.dir().join("big.bin")).expect("big.bin")[..BYTES];
    for (transfer, output) in transfers.iter_mut().zip(&outputs) {
        let status = transfer.wait(Duration::from_secs(30));
        assert!(
            status.is_some_and(|status| status.success()),
            "{family}: a transfer failed: {status:?}; curl: {}",
            curl_errors()
        );
        let received = std::fs::read(output).unwrap_or_default();
        assert!(
            received == expected,
            "{family}: a transfer is corrupt ({} bytes)",
            received.len()
        );
    }
}

/// The peers of `rs`'s established TCP connections on local port `port`.
fn established_peers(rs: &rvs_lab::Netns, port: u16) -> Vec<(IpAddr, u16)> {
    let filter = format!("( sport = :{port} )");
    let output = rs
        .command("ss")
        .args(["-Htn", "state", "established", &filter])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter_map(|peer| peer.parse::<std::net::SocketAddr>().ok())
        .map(|peer| (peer.ip(), peer.port()))
        .collect()
}

/// The router's count of ICMP "fragmentation needed" (IPv4: all
/// destination unreachable messages sent) or ICMPv6 "packet too big" sent.
fn router_too_big_messages(lab: &Lab, family: Family) -> u64 {
    let router = lab.router.as_ref().expect("a lab with a client router");
    match family {
        Family::V4 => {
            let snmp = router.exec(&["cat", "/proc/net/snmp"]);
            let icmp: Vec<Vec<&str>> = snmp
                .lines()
                .filter(|line| line.starts_with("Icmp:"))
                .map(|line| line.split_whitespace().collect())
                .collect();
            icmp.first()
                .and_then(|names| names.iter().position(|name| *name == "OutDestUnreachs"))
                .and_then(|index| icmp.get(1)?.get(index)?.parse().ok())
                .unwrap_or(0)
        }
        Family::V6 => router
            .exec(&["cat", "/proc/net/snmp6"])
            .lines()
            .find_map(|line| line.strip_prefix("Icmp6OutPktTooBigs"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// Path MTU discovery through the director: a download whose full-size
/// segments do not fit the router's link towards the client completes
/// intact, because the router's ICMP error, sent to the VIP, reached the
/// real server translated, and the real server now holds the smaller path
/// MTU towards the client.
fn path_mtu_discovery_works_through_the_director(lab: &Lab, family: Family) {
    lab.add_service(Protocol::Tcp, family, 80, &lab.rips(family));
    let before = router_too_big_messages(lab, family);
    lab.download_big_file(family)
        .unwrap_or_else(|error| panic!("{family} download: {error}"));
    assert!(
        router_too_big_messages(lab, family) > before,
        "{family}: the router sent no ICMP error: the test proved nothing"
    );
    let cip = lab.cip(family).to_string();
    let learnt = lab.real_servers.iter().any(|rs| {
        rs.exec(&["ip", family.ip_option(), "route", "get", &cip])
            .contains(&format!("mtu {SMALL_MTU}"))
    });
    assert!(
        learnt,
        "{family}: no real server holds a path MTU of {SMALL_MTU} towards the client"
    );
    if lab.has_rvsd() {
        println!("rvsadm -Ln (NAT, {family}):\n{}", lab.rvsadm_ok("-Ln"));
    }
}

fn direct_routing(lab: &Lab, family: Family) {
    balances_tcp_and_udp(lab, family);
    the_vip_resolves_to_the_director(lab, family);
    replies_bypass_the_director(lab, family);
}

fn tunnelling(lab: &Lab, family: Family) {
    balances_tcp_and_udp(lab, family);
    real_servers_received_ip_in_ip(lab);
    replies_bypass_the_director(lab, family);
}

fn full_nat(lab: &Lab, family: Family) {
    real_servers_cannot_reach_the_client(lab, family);
    balances_tcp_and_udp(lab, family);
    real_servers_see_the_lip(lab, family);
    same_client_ports_do_not_collide(lab, family);
}

// ---------------------------------------------------------------------------
// rvsd.

#[test]
fn direct_routing_over_ipv4() {
    let spec = LabSpec::new(Mode::DirectRouting);
    through_rvsd("dr4", spec, Family::V4, direct_routing);
}

#[test]
fn direct_routing_over_ipv6() {
    let spec = LabSpec::new(Mode::DirectRouting);
    through_rvsd("dr6", spec, Family::V6, direct_routing);
}

#[test]
fn tunnelling_over_ipv4() {
    through_rvsd("tun4", LabSpec::new(Mode::Tunnel), Family::V4, tunnelling);
}

#[test]
fn tunnelling_over_ipv6() {
    through_rvsd("tun6", LabSpec::new(Mode::Tunnel), Family::V6, tunnelling);
}

#[test]
fn full_nat_over_ipv4() {
    through_rvsd("fnat4", LabSpec::new(Mode::FullNat), Family::V4, full_nat);
}

#[test]
fn full_nat_over_ipv6() {
    through_rvsd("fnat6", LabSpec::new(Mode::FullNat), Family::V6, full_nat);
}

#[test]
fn nat_over_ipv6_balances_tcp_and_udp() {
    let spec = LabSpec::new(Mode::Nat);
    through_rvsd("nat6", spec, Family::V6, balances_tcp_and_udp);
}

#[test]
fn path_mtu_discovery_works_through_nat_over_ipv4() {
    let scenario = path_mtu_discovery_works_through_the_director;
    through_rvsd("pmtu4", path_mtu_lab(), Family::V4, scenario);
}

#[test]
fn path_mtu_discovery_works_through_nat_over_ipv6() {
    let scenario = path_mtu_discovery_works_through_the_director;
    through_rvsd("pmtu6", path_mtu_lab(), Family::V6, scenario);
}

// ---------------------------------------------------------------------------
// The same labs with the kernel as director: checks of the labs themselves.

#[test]
fn the_dr_lab_works_with_the_kernel_as_director() {
    let spec = LabSpec::new(Mode::DirectRouting);
    through_the_kernel("dr-kernel", spec, direct_routing);
}

#[test]
fn the_tun_lab_works_with_the_kernel_as_director() {
    through_the_kernel("tun-kernel", LabSpec::new(Mode::Tunnel), tunnelling);
}

#[test]
fn the_fullnat_lab_works_with_the_kernel_as_director() {
    through_the_kernel("fnat-kernel", LabSpec::new(Mode::FullNat), full_nat);
}

#[test]
fn the_nat_lab_works_with_the_kernel_as_director() {
    let spec = LabSpec::new(Mode::Nat);
    through_the_kernel("nat-kernel", spec, balances_tcp_and_udp);
}

#[test]
fn the_path_mtu_lab_works_with_the_kernel_as_director() {
    let scenario = path_mtu_discovery_works_through_the_director;
    through_the_kernel("pmtu-kernel", path_mtu_lab(), scenario);
}
