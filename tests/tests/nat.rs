//! rvsd in NAT mode, end to end: curl and dig clients reach nginx and
//! dnsmasq real servers through rvsd on DPDK af_packet ports, configured with
//! rvsadm in ipvsadm's syntax. See `rvs_lab` for the topology.
//!
//! These tests need root; run them one at a time (`--test-threads=1`, as
//! scripts/test.sh does) since each starts a whole lab on a small machine.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use rvs_lab::{
    CLIENT, ConnRow, Family, NatLab, REAL_SERVER_MACS, REAL_SERVERS, RvsdOptions, Transfer,
    UDP_PORT, VIP, connection_rows, real_server_rows, tally,
};

/// The first worker's counters, from `rvsadm -L --workers --json`.
fn worker_counters(lab: &NatLab) -> serde_json::Value {
    lab.workers()[0].clone()
}

/// Drop reasons with a non-zero count, except `no_exception_path`: what
/// the hosts' kernels send on their own to multicast groups (IPv6 router
/// solicitations and MLD, IGMP) is for the director's host, and these labs
/// give its ports no kernel twin.
fn unexpected_drops(worker: &serde_json::Value) -> Vec<String> {
    worker["drops"]
        .as_object()
        .map(|drops| {
            drops
                .iter()
                .filter(|(name, count)| {
                    name.as_str() != "no_exception_path" && count.as_u64() != Some(0)
                })
                .map(|(name, count)| format!("{name} {count}"))
                .collect()
        })
        .unwrap_or_default()
}

fn configure(lab: &NatLab, protocol: &str, port: u16, scheduler: &str) {
    lab.rvsadm_ok(&format!("-A {protocol} {VIP}:{port} -s {scheduler}"));
    for rs in REAL_SERVERS {
        lab.rvsadm_ok(&format!("-a {protocol} {VIP}:{port} -r {rs}:{port} -m"));
    }
}

#[test]
fn round_robin_splits_http_requests_evenly_and_the_listing_counts_them() {
    let lab = NatLab::start("rr", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");
    let responses = lab.http_requests("/", 200);
    let (rs1, rs2, other) = tally(&responses);
    assert!(
        other.is_empty(),
        "failed requests: {other:?}\n{}",
        lab.log_tail()
    );
    assert_eq!((rs1, rs2), (100, 100));

    // Every connection was closed and now waits in TIME_WAIT: inactive.
    // size= counts both tables: 65536 IPv4 entries and 262144 IPv6.
    let listing = lab.rvsadm_ok("-Ln");
    let expected = format!(
        "IP Virtual Server version 1.2.1 (size=327680)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  {VIP}:80 rr\n  \
         -> {:<28} Masq    1      0          100       \n  \
         -> {:<28} Masq    1      0          100       \n",
        format!("{}:80", REAL_SERVERS[0]),
        format!("{}:80", REAL_SERVERS[1]),
    );
    assert_eq!(listing, expected, "rvsadm -Ln must print ipvsadm's layout");
}

#[test]
fn the_real_servers_port_may_differ_from_the_virtual_port() {
    let lab = NatLab::start("portmap", &RvsdOptions::default());
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr"));
    for rs in REAL_SERVERS {
        lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {rs}:8080 -m"));
    }
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 10));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (5, 5));
    let rows = real_server_rows(&lab.rvsadm_ok("-Ln"));
    assert!(
        rows.iter().all(|row| row.address.ends_with(":8080")),
        "{rows:?}"
    );
}

#[test]
fn weighted_round_robin_splits_by_weight() {
    let lab = NatLab::start("wrr", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");
    lab.rvsadm_ok(&format!("-E -t {VIP}:80 -s wrr"));
    lab.rvsadm_ok(&format!("-e -t {VIP}:80 -r {}:80 -m -w 3", REAL_SERVERS[0]));
    lab.rvsadm_ok(&format!("-e -t {VIP}:80 -r {}:80 -m -w 1", REAL_SERVERS[1]));
    let responses = lab.http_requests("/", 400);
    let (rs1, rs2, other) = tally(&responses);
    assert!(
        other.is_empty(),
        "failed requests: {other:?}\n{}",
        lab.log_tail()
    );
    assert_eq!((rs1, rs2), (300, 100));
    let rows = real_server_rows(&lab.rvsadm_ok("-Ln"));
    assert_eq!(rows.iter().map(|r| r.weight).collect::<Vec<_>>(), [3, 1]);
    assert!(lab.rvsadm_ok("-Ln").contains(&format!("TCP  {VIP}:80 wrr")));
}

#[test]
fn removing_a_real_server_keeps_running_transfers_intact() {
    let lab = NatLab::start("remove", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");

    // Remove the server that is *not* carrying the transfer: new requests
    // all go to the remaining one, and the transfer completes intact.
    let transfer = Transfer::start(&lab, Family::V4, "first.bin");
    let carrier = transfer.carrier;
    let other = 1 - carrier;
    lab.rvsadm_ok(&format!("-d -t {VIP}:80 -r {}:80", REAL_SERVERS[other]));
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 20));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(if carrier == 0 { (rs1, rs2) } else { (rs2, rs1) }, (20, 0));
    transfer.finish(&lab);

    // As IPVS does, a removed server's own open connections carry on too.
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {}:80 -m", REAL_SERVERS[other]));
    let transfer = Transfer::start(&lab, Family::V4, "second.bin");
    let carrier = transfer.carrier;
    lab.rvsadm_ok(&format!("-d -t {VIP}:80 -r {}:80", REAL_SERVERS[carrier]));
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 10));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(if carrier == 0 { (rs1, rs2) } else { (rs2, rs1) }, (0, 10));
    transfer.finish(&lab);
}

#[test]
fn udp_services_balance_datagrams() {
    let lab = NatLab::start("udp", &RvsdOptions::default());
    configure(&lab, "-u", UDP_PORT, "rr");
    let (rs1, rs2, failed) = tally(&lab.udp_requests(20));
    assert!(failed.is_empty(), "failed: {failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (10, 10));
    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        listing.contains(&format!("UDP  {VIP}:{UDP_PORT} rr")),
        "{listing}"
    );
    // UDP flows count as inactive, as in IPVS, and last 300 s.
    for row in real_server_rows(&listing) {
        assert_eq!(
            (row.forward.as_str(), row.active, row.inactive),
            ("Masq", 0, 10),
            "{listing}"
        );
    }
    let worker = worker_counters(&lab);
    assert!(worker["tx_packets"].as_u64() >= Some(40), "{worker}");
    assert_eq!(unexpected_drops(&worker), Vec::<String>::new(), "{worker}");
}

#[test]
fn static_neighbours_are_used_without_arp() {
    let neighbours: String = REAL_SERVERS
        .iter()
        .zip(REAL_SERVER_MACS)
        .map(|(address, mac)| {
            format!("[[neighbours]]\naddress = \"{address}\"\nmac = \"{mac}\"\nport = \"lan\"\n")
        })
        .collect();
    let lab = NatLab::start(
        "neigh",
        &RvsdOptions {
            services_toml: neighbours,
            ..RvsdOptions::default()
        },
    );
    configure(&lab, "-t", 80, "rr");
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (2, 2));
    let worker = worker_counters(&lab);
    assert_eq!(worker["events"]["arp_request_sent"], 0, "{worker}");
    assert_eq!(unexpected_drops(&worker), Vec::<String>::new(), "{worker}");
}

#[test]
fn the_director_answers_ping_on_the_vip_and_its_own_addresses() {
    let lab = NatLab::start("ping", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");
    lab.client.exec(&["ping", "-c", "2", "-W", "2", VIP]);
    lab.client
        .exec(&["ping", "-c", "2", "-W", "2", rvs_lab::WAN_ADDRESS]);
    lab.real_servers[0].exec(&["ping", "-c", "2", "-W", "2", rvs_lab::DIP]);
}

#[test]
fn changes_refused_by_rvsd_print_ipvsadm_messages() {
    let lab = NatLab::start("refuse", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");
    for (args, message) in [
        (format!("-A -t {VIP}:80 -s rr"), "Service already exists"),
        (
            format!("-a -t {VIP}:81 -r {}:80 -m", REAL_SERVERS[0]),
            "Service not defined",
        ),
        (
            format!("-d -t {VIP}:80 -r 198.18.1.99:80"),
            "No such destination",
        ),
        (format!("-D -t {VIP}:81"), "No such service"),
        (
            format!("-a -t {VIP}:80 -r {}:80 -m", REAL_SERVERS[0]),
            "Destination already exists",
        ),
    ] {
        let output = lab.rvsadm(&args);
        assert!(!output.status.success(), "rvsadm {args} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "rvsadm {args}: {stderr}");
    }
    // Nothing changed.
    assert_eq!(real_server_rows(&lab.rvsadm_ok("-Ln")).len(), 2);
}

#[test]
fn malformed_control_requests_are_answered_and_rvsd_keeps_serving() {
    let mut lab = NatLab::start("malformed", &RvsdOptions::default());
    configure(&lab, "-t", 80, "rr");
    let exchange = |bytes: &[u8]| -> Vec<u8> {
        let mut stream = UnixStream::connect(&lab.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(bytes).expect("write");
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
            if response.len() >= 12
                && response.len()
                    >= 12
                        + u32::from_le_bytes([response[8], response[9], response[10], response[11]])
                            as usize
            {
                break;
            }
        }
        response
    };
    let status =
        |response: &[u8]| u32::from_le_bytes([response[4], response[5], response[6], response[7]]);
    // Garbage JSON after a hello-less start, an unknown message type, and
    // a header announcing 4 GiB.
    let mut garbage = Vec::new();
    garbage.extend_from_slice(&1u32.to_le_bytes());
    garbage.extend_from_slice(&0x0001_0001u32.to_le_bytes());
    garbage.extend_from_slice(&5u32.to_le_bytes());
    garbage.extend_from_slice(b"{{{{{");
    assert_ne!(status(&exchange(&garbage)), 0);
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&2u32.to_le_bytes());
    unknown.extend_from_slice(&0x7777_0001u32.to_le_bytes());
    unknown.extend_from_slice(&2u32.to_le_bytes());
    unknown.extend_from_slice(b"{}");
    assert_ne!(status(&exchange(&unknown)), 0);
    let mut huge = Vec::new();
    huge.extend_from_slice(&3u32.to_le_bytes());
    huge.extend_from_slice(&1u32.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(status(&exchange(&huge)), 2, "TooLarge");
    // A client that connects and says nothing does not block others.
    let _silent = UnixStream::connect(&lab.socket).expect("connect");

    assert!(lab.rvsd_running(), "rvsd survived\n{}", lab.log_tail());
    assert_eq!(real_server_rows(&lab.rvsadm_ok("-Ln")).len(), 2);
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty());
    assert_eq!(rs1 + rs2, 4);
}

#[test]
fn rvsd_stops_cleanly_on_sigterm() {
    // With the metrics endpoint, whose thread outlives the daemon's stop.
    let mut lab = NatLab::start(
        "stop",
        &RvsdOptions {
            services_toml: "[metrics]\nlisten = \"127.0.0.1:9100\"\n".to_owned(),
            ..RvsdOptions::default()
        },
    );
    configure(&lab, "-t", 80, "rr");
    assert_eq!(tally(&lab.http_requests("/", 2)).2.len(), 0);
    assert!(
        lab.stop_rvsd(),
        "rvsd exits with success on SIGTERM\n{}",
        lab.log_tail()
    );
    assert!(!lab.socket.exists(), "the control socket is removed");
    // Every DPDK object and mbuf was given back before EAL's cleanup.
    assert!(!lab.log().contains("EAL cleanup"), "{}", lab.log_tail());
}

#[test]
fn services_from_the_configuration_file_work_at_start() {
    let services = format!(
        r#"[[services]]
protocol = "tcp"
address = "{VIP}:80"
scheduler = "rr"
real_servers = [
    {{ address = "{}:80", forward = "masq" }},
    {{ address = "{}:80", forward = "masq" }},
]
"#,
        REAL_SERVERS[0], REAL_SERVERS[1]
    );
    let lab = NatLab::start(
        "file",
        &RvsdOptions {
            services_toml: services,
            ..RvsdOptions::default()
        },
    );
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 10));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (5, 5));
}

/// Bad configurations are refused before anything starts, with a message
/// naming the problem. Needs no lab: rvsd checks the file first.
#[test]
fn bad_configurations_are_refused_with_the_problem_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rvsd = rvs_lab::bin_dir().join("rvsd");
    let base = r#"[eal]
args = ["-l", "0,1", "--no-huge"]

[[ports]]
name = "wan"
device = "net_af_packet0,iface=d0"
addresses = ["198.18.0.1/24"]
"#;
    let service = |address: &str| {
        format!("[[services]]\nprotocol = \"tcp\"\naddress = \"{address}\"\nscheduler = \"rr\"\n")
    };
    for (name, text, expected) in [
        (
            "unknown-key",
            format!("{base}colour = \"blue\"\n"),
            "colour",
        ),
        (
            "bad-address",
            format!("{base}{}", service("198.18.0.300:80")),
            "198.18.0.300",
        ),
        (
            "duplicate-service",
            format!(
                "{base}{}{}",
                service("198.18.0.10:80"),
                service("198.18.0.10:80")
            ),
            "duplicate",
        ),
    ] {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write");
        for mode in ["--check-config", "--config"] {
            let output = Command::new(&rvsd)
                .arg(mode)
                .arg(&path)
                .output()
                .expect("run rvsd");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{name} {mode} must fail");
            assert!(stderr.contains(expected), "{name} {mode}: {stderr}");
            assert!(
                stderr.contains(&*path.to_string_lossy()),
                "names the file: {stderr}"
            );
        }
    }
}

/// `rvsadm -Lnc` lists a running download as ipvsadm would, and the
/// template of its client for a persistent service; `-Ln
/// --persistent-conn` counts that template. Listing leaves the download
/// intact.
#[test]
fn the_connection_listing_shows_connections_and_persistence_templates() {
    let lab = NatLab::start("conns", &RvsdOptions::default());
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr -p 60"));
    for rs in REAL_SERVERS {
        lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {rs}:80 -m"));
    }
    let transfer = Transfer::start(&lab, Family::V4, "listed.bin");
    let carrier = transfer.carrier;
    let rip = format!("{}:80", REAL_SERVERS[carrier]);
    let vip = format!("{VIP}:80");
    // The client's end of the download, as its own kernel sees it.
    let sockets = lab.client.exec(&["ss", "-Htn", "state", "established"]);
    let ends: Vec<&str> = sockets
        .lines()
        .filter(|line| line.split_whitespace().any(|field| field == vip))
        .filter_map(|line| {
            line.split_whitespace()
                .find(|field| field.starts_with(&format!("{CLIENT}:")))
        })
        .collect();
    let [client] = ends[..] else {
        panic!("one connection to the VIP expected: {sockets}");
    };

    let listing = lab.rvsadm_ok("-Lnc");
    println!("rvsadm -Lnc:\n{listing}");
    let rows = connection_rows(&listing);
    let connection = rows
        .iter()
        .find(|row| row.source == client)
        .unwrap_or_else(|| panic!("no row for {client}:\n{listing}"));
    assert_eq!(
        (
            connection.protocol.as_str(),
            connection.state.as_str(),
            connection.virtual_address.as_str(),
            connection.destination.as_str()
        ),
        ("TCP", "ESTABLISHED", vip.as_str(), rip.as_str()),
        "{listing}"
    );
    // 900 s once established, renewed by every packet.
    assert!((880..=900).contains(&connection.expires), "{connection:?}");
    let templates: Vec<&ConnRow> = rows.iter().filter(|row| row.state == "NONE").collect();
    let [template] = templates[..] else {
        panic!("one template expected:\n{listing}");
    };
    assert_eq!(
        (
            template.protocol.as_str(),
            template.source.clone(),
            template.virtual_address.as_str(),
            template.destination.as_str()
        ),
        ("TCP", format!("{CLIENT}:0"), vip.as_str(), rip.as_str()),
        "{listing}"
    );
    assert!((1..=60).contains(&template.expires), "{template:?}");

    // --json: the same entries; a connection of NAT has no LIP:lport,
    // and only templates say they are.
    let json: serde_json::Value =
        serde_json::from_str(&lab.rvsadm_ok("-Lnc --json")).expect("JSON");
    let entries = json.as_array().cloned().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|entry| entry["client"] == client)
        .unwrap_or_else(|| panic!("no entry for {client}: {json}"));
    assert_eq!(
        (&entry["state"], &entry["real_server"]),
        (&serde_json::json!("ESTABLISHED"), &serde_json::json!(rip)),
        "{entry}"
    );
    assert!(
        entry.get("local").is_none() && entry.get("template").is_none(),
        "{entry}"
    );
    let template = entries
        .iter()
        .find(|entry| entry["state"] == "NONE")
        .unwrap_or_else(|| panic!("no template: {json}"));
    assert_eq!(template["template"], true, "{template}");

    // PersistConn counts the carrier's template, ActiveConn the download.
    let listing = lab.rvsadm_ok("-Ln --persistent-conn");
    for (index, rs) in REAL_SERVERS.iter().enumerate() {
        let row = listing
            .lines()
            .find(|line| line.starts_with(&format!("  -> {rs}:80 ")))
            .unwrap_or_else(|| panic!("no row for {rs}:\n{listing}"));
        let fields: Vec<&str> = row.split_whitespace().collect();
        let expected = if index == carrier { "1" } else { "0" };
        assert_eq!(
            (fields[3], fields[4]),
            (expected, expected),
            "PersistConn and ActiveConn of {rs}:\n{listing}"
        );
    }
    transfer.finish(&lab);
}

/// `-A -t VIP:0 -p`: one persistent service for every port of the VIP.
/// Both ports nginx listens on (80 and 8080) reach it, each connection
/// keeps its port, and all of a client's connections go to one real
/// server; a service of a port of its own takes that port over.
#[test]
fn a_persistent_service_of_every_port_keeps_a_client_on_one_real_server() {
    let lab = NatLab::start("port0", &RvsdOptions::default());
    lab.rvsadm_ok(&format!("-A -t {VIP}:0 -s rr -p 60"));
    for rs in REAL_SERVERS {
        lab.rvsadm_ok(&format!("-a -t {VIP}:0 -r {rs}:0 -m"));
    }
    let [first, second] = lab.cips(Family::V4);
    let mut answers = Vec::new();
    for port in [80, 8080, 80, 8080] {
        answers.extend(lab.http_requests_from(first, port, "/", 3));
    }
    let (rs1, rs2, failed) = tally(&answers);
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert!(
        (rs1, rs2) == (12, 0) || (rs1, rs2) == (0, 12),
        "one real server for every port: {answers:?}"
    );
    let carrier = if rs1 == 12 { 0 } else { 1 };
    // Round robin sends the other client address to the other real
    // server, on every port too.
    let mut answers = lab.http_requests_from(second, 8080, "/", 3);
    answers.extend(lab.http_requests_from(second, 80, "/", 3));
    let (rs1, rs2, failed) = tally(&answers);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(if carrier == 0 { (rs1, rs2) } else { (rs2, rs1) }, (0, 6));

    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        listing.contains(&format!("TCP  {VIP}:0 rr persistent 60\n")),
        "{listing}"
    );
    let rows = real_server_rows(&listing);
    assert_eq!(
        rows.iter()
            .map(|row| row.address.as_str())
            .collect::<Vec<_>>(),
        REAL_SERVERS.map(|rs| format!("{rs}:0")),
        "{listing}"
    );
    assert!(
        lab.rvsadm_ok("-Sn")
            .starts_with(&format!("-A -t {VIP}:0 -s rr -p 60\n")),
        "rvsadm -Sn saves port 0"
    );
    // Connections list the ports they used; templates port 0.
    let listing = lab.rvsadm_ok("-Lnc");
    let rows = connection_rows(&listing);
    for port in [80, 8080] {
        let virtual_address = format!("{VIP}:{port}");
        let used: Vec<&ConnRow> = rows
            .iter()
            .filter(|row| row.virtual_address == virtual_address)
            .collect();
        assert_eq!(used.len(), 9, "{listing}");
        assert!(
            used.iter()
                .all(|row| row.destination.ends_with(&format!(":{port}"))),
            "{listing}"
        );
    }
    let templates: Vec<&ConnRow> = rows.iter().filter(|row| row.state == "NONE").collect();
    assert_eq!(templates.len(), 2, "one per client address:\n{listing}");
    assert!(
        templates.iter().all(|row| row.virtual_address == format!("{VIP}:0")
            && row.destination.ends_with(":0")),
        "{listing}"
    );

    // A service of port 8080 wins over the service of every port there.
    let other = REAL_SERVERS[1 - carrier];
    lab.rvsadm_ok(&format!("-A -t {VIP}:8080 -s rr"));
    lab.rvsadm_ok(&format!("-a -t {VIP}:8080 -r {other}:8080 -m"));
    let (rs1, rs2, failed) = tally(&lab.http_requests_from(first, 8080, "/", 3));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(if carrier == 0 { (rs1, rs2) } else { (rs2, rs1) }, (0, 3));
    let (rs1, rs2, failed) = tally(&lab.http_requests_from(first, 80, "/", 3));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(if carrier == 0 { (rs1, rs2) } else { (rs2, rs1) }, (3, 0));
}
