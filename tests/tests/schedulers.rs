//! Schedulers, quiescing and persistence through a running rvsd, end to
//! end: curl and bash clients (the kernel's TCP) reach nginx real servers
//! through rvsd in NAT mode, configured with rvsadm in ipvsadm's syntax.
//! The real server that answers a request names itself in the response;
//! `/whoami` adds the client address and port it saw. See `rvs_lab` for
//! the topology: one client with two addresses (198.18.0.2 and .3) and two
//! real servers, rs1 and rs2.
//!
//! These tests need root; run them one at a time (`--test-threads=1`, as
//! scripts/test.sh does) since each starts a whole lab on a small machine.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use rvs_lab::{
    Family, NatLab, Process, REAL_SERVERS, RealServerRow, RvsdOptions, Transfer, VIP,
    real_server_rows, tally, wait_until,
};

/// sh: every connection of a client address goes to the real server that
/// IPVS's table names for that address, whatever its source port.
#[test]
fn source_hashing_keeps_each_client_address_on_the_server_ipvs_would_pick() {
    // With weights 1:1 both of the lab's client addresses hash to buckets
    // of rs1; with 1:3 they hash to different servers.
    const WEIGHTS: [u32; 2] = [1, 3];
    let lab = NatLab::start("sh", &RvsdOptions::default());
    configure(&lab, 80, "-s sh", WEIGHTS);
    let mut chosen = Vec::new();
    for cip in lab.cips(Family::V4) {
        let expected = ipvs_source_hashing(cip, &WEIGHTS);
        let (server, ports) = sole_server(&lab, cip, 80, 100);
        assert_eq!(
            server,
            expected,
            "{cip}: every connection went to rs{}, IPVS's table says rs{}",
            server + 1,
            expected + 1
        );
        assert_eq!(
            ports, 100,
            "{cip}: the connections had distinct source ports"
        );
        chosen.push(server);
    }
    assert_ne!(
        chosen[0], chosen[1],
        "the two client addresses were chosen to hash to different servers"
    );
}

/// Weight 0 quiesces a real server: it takes no new connection, and the
/// one it carries runs to its end, intact.
#[test]
fn a_quiesced_server_takes_no_new_connections_and_finishes_its_transfer() {
    let lab = NatLab::start("quiesce", &RvsdOptions::default());
    configure(&lab, 80, "-s rr", [1, 1]);
    let transfer = Transfer::start(&lab, Family::V4, "quiesced.bin");
    let (quiesced, other) = (transfer.carrier, 1 - transfer.carrier);
    lab.rvsadm_ok(&format!(
        "-e -t {VIP}:80 -r {}:80 -m -w 0",
        REAL_SERVERS[quiesced]
    ));

    let (rs1, rs2, _) = checked_tally(&lab, &lab.http_requests("/", 20));
    let counts = [rs1, rs2];
    assert_eq!(
        (counts[quiesced], counts[other]),
        (0, 20),
        "rr must skip the quiesced rs{}",
        quiesced + 1
    );
    // Still running: the quiesced server's one active connection.
    let row = row_of(&lab, quiesced);
    assert_eq!(
        (row.weight, row.active),
        (0, 1),
        "{row:?} while the transfer runs"
    );
    transfer.finish(&lab);

    // Its weight back, it takes its turn again.
    lab.rvsadm_ok(&format!(
        "-e -t {VIP}:80 -r {}:80 -m -w 1",
        REAL_SERVERS[quiesced]
    ));
    let (rs1, rs2, _) = checked_tally(&lab, &lab.http_requests("/", 10));
    assert_eq!((rs1, rs2), (5, 5));
}

/// `-p`: a client's connections stay on one real server; another client
/// address has its own template (and rr gives it the other server); with
/// `-M 255.255.255.0` both addresses are one client.
#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let lab = NatLab::start("persist", &RvsdOptions::default());
    let [first, second] = lab.cips(Family::V4);
    configure(&lab, 80, "-s rr -p 60", [1, 1]);
    let (home, ports) = sole_server(&lab, first, 80, 30);
    assert_eq!(ports, 30, "distinct source ports");
    let (elsewhere, _) = sole_server(&lab, second, 80, 10);
    assert_ne!(
        home, elsewhere,
        "the second client address got a template of its own from rr"
    );
    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 rr persistent 60\n")),
        "{listing}"
    );
    // One template per client address, one on each server.
    let listing = lab.rvsadm_ok("-Ln --persistent-conn");
    assert_eq!(
        persistent_conns(&listing, 80),
        [1, 1],
        "PersistConn:\n{listing}"
    );

    configure(&lab, 8080, "-s rr -p 60 -M 255.255.255.0", [1, 1]);
    let (home, _) = sole_server(&lab, first, 8080, 10);
    let (same, _) = sole_server(&lab, second, 8080, 10);
    assert_eq!(home, same, "both client addresses are in one /24");
    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        listing.contains(&format!(
            "TCP  {VIP}:8080 rr persistent 60 mask 255.255.255.0\n"
        )),
        "{listing}"
    );
}

/// wlc splits open connections by weight, lc evenly: 40 idle connections,
/// opened one after the other, held by one bash.
#[test]
fn least_connection_schedulers_split_open_connections() {
    const CONNECTIONS: u64 = 40;
    let lab = NatLab::start("wlc", &RvsdOptions::default());
    configure(&lab, 80, "-s wlc", [3, 1]);
    let held = hold_connections(&lab, CONNECTIONS);
    assert_near(active_conns(&lab), [30, 10], "wlc with weights 3:1");
    drop(held);
    let closed = wait_until(Duration::from_secs(10), || active_conns(&lab) == [0, 0]);
    assert!(closed, "connections still active: {:?}", active_conns(&lab));

    // lc ignores weights. The closed connections count a little (as
    // InActConn), far less than an active one.
    lab.rvsadm_ok(&format!("-E -t {VIP}:80 -s lc"));
    let _held = hold_connections(&lab, CONNECTIONS);
    assert_near(active_conns(&lab), [20, 20], "lc");
}

/// Adds the TCP service `VIP:port` with `options` (`-s ...`, `-p ...`)
/// and both real servers on the same port, NAT, with `weights`.
fn configure(lab: &NatLab, port: u16, options: &str, weights: [u32; 2]) {
    lab.rvsadm_ok(&format!("-A -t {VIP}:{port} {options}"));
    for (rs, weight) in REAL_SERVERS.iter().zip(weights) {
        lab.rvsadm_ok(&format!("-a -t {VIP}:{port} -r {rs}:{port} -m -w {weight}"));
    }
}

/// IPVS's choice for `cip` under sh (`ip_vs_sh.c`), the reference: the
/// 256 buckets name the servers in the order they were added, each
/// `weight` buckets in a row, round and round; the address picks bucket
/// `hash_32(address, 8)` (the kernel's multiplicative hash by the golden
/// ratio, top 8 bits).
fn ipvs_source_hashing(cip: IpAddr, weights: &[u32]) -> usize {
    let IpAddr::V4(address) = cip else {
        panic!("an IPv4 client: {cip}")
    };
    let bucket = (address.to_bits().wrapping_mul(0x61C8_8647) >> 24) as usize;
    let turn: Vec<usize> = weights
        .iter()
        .enumerate()
        .flat_map(|(server, &weight)| std::iter::repeat_n(server, weight.max(1) as usize))
        .collect();
    turn[bucket % turn.len()]
}

/// `count` requests for `/whoami` from `cip` to `VIP:port`, which must all
/// be answered by one real server, seeing `cip`; returns that server's
/// index and how many distinct client ports it saw.
fn sole_server(lab: &NatLab, cip: IpAddr, port: u16, count: usize) -> (usize, usize) {
    let responses = lab.http_requests_from(cip, port, "/whoami", count);
    let (rs1, rs2, _) = checked_tally(lab, &responses);
    assert!(
        rs1 == count || rs2 == count,
        "{cip} to port {port}: rs1 {rs1}, rs2 {rs2}: not all on one server"
    );
    let mut ports = BTreeSet::new();
    for response in &responses {
        // `NAME CLIENT-ADDRESS CLIENT-PORT`
        let fields: Vec<&str> = response.split_whitespace().collect();
        assert_eq!(
            fields.get(1).copied(),
            Some(cip.to_string().as_str()),
            "the real server saw {response:?}"
        );
        ports.insert(fields.get(2).copied().unwrap_or_default().to_owned());
    }
    (if rs1 == count { 0 } else { 1 }, ports.len())
}

/// [`tally`], asserting that every request was answered.
fn checked_tally(lab: &NatLab, responses: &[String]) -> (usize, usize, Vec<String>) {
    let counts = tally(responses);
    assert!(
        counts.2.is_empty(),
        "failed requests: {:?}\n{}",
        counts.2,
        lab.log_tail()
    );
    counts
}

/// The `rvsadm -Ln` row of real server `index` (port 80).
fn row_of(lab: &NatLab, index: usize) -> RealServerRow {
    let address = format!("{}:80", REAL_SERVERS[index]);
    real_server_rows(&lab.rvsadm_ok("-Ln"))
        .into_iter()
        .find(|row| row.address == address)
        .unwrap_or_else(|| panic!("no row for {address}"))
}

/// ActiveConn of rs1 and rs2 on port 80.
fn active_conns(lab: &NatLab) -> [u64; 2] {
    [row_of(lab, 0).active, row_of(lab, 1).active]
}

/// PersistConn of rs1 and rs2 on `port`, from `-Ln --persistent-conn`
/// (`-> ADDRESS WEIGHT PERSISTCONN ACTIVECONN INACTCONN`).
fn persistent_conns(listing: &str, port: u16) -> [u64; 2] {
    REAL_SERVERS.map(|rs| {
        let address = format!("{rs}:{port}");
        listing
            .lines()
            .filter_map(|line| line.strip_prefix("  -> "))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&address.as_str()))
            .and_then(|fields| fields.get(2)?.parse().ok())
            .unwrap_or_else(|| panic!("no PersistConn for {address} in\n{listing}"))
    })
}

/// Opens `count` TCP connections from the client to `VIP:80`, one after
/// the other (each fully open before the next), and holds them idle
/// (nginx waits 60 s for a request) until the returned process is
/// dropped; returns once rvsd counts them all as active.
fn hold_connections(lab: &NatLab, count: u64) -> Process {
    let log = lab.dir().join("hold-connections.log");
    // The fds are inherited by sleep, which takes bash's place (and pid).
    let script = format!(
        "for fd in $(seq 3 {}); do eval \"exec $fd<>/dev/tcp/{VIP}/80\" || exit 1; done; \
         exec sleep 120",
        count + 2
    );
    let mut bash = lab.client.command("bash");
    bash.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut held = Process::spawn(bash);
    let open = wait_until(Duration::from_secs(15), || {
        active_conns(lab).iter().sum::<u64>() == count || !held.running()
    });
    assert!(
        open && held.running(),
        "{count} connections not all active: {:?}; bash: {}\n{}",
        active_conns(lab),
        std::fs::read_to_string(&log).unwrap_or_default(),
        lab.log_tail()
    );
    held
}

/// Asserts that each count is within 3 of the expected one.
fn assert_near(counts: [u64; 2], expected: [u64; 2], what: &str) {
    assert!(
        counts
            .iter()
            .zip(expected)
            .all(|(&count, expected)| count.abs_diff(expected) <= 3),
        "{what}: ActiveConn {counts:?}, expected about {expected:?}"
    );
}
