//! rvsadm is ipvsadm, end to end: the command sequences of ipvsadm(8) and
//! of the LVS tutorials run as they are written, `ipvsadm` replaced by
//! `rvsadm` and the tutorials' addresses by the lab's (see `rvs_lab`),
//! against a running rvsd, and every listing they print has ipvsadm's
//! layout; `rvsadm -S > rules; rvsadm -C; rvsadm -R < rules` gives the
//! same table back; refusals read as ipvsadm's.
//!
//! Layouts are held against the real ipvsadm: titles are those of the
//! golden files that ipvsadm 1.31 printed (control/src/ipvsadm/testdata),
//! rows are rendered with ipvsadm's printf formats (`print_service_entry`,
//! `print_conn`) and compared byte for byte, and the numbers in them are
//! those the lab's traffic makes, checked against the `--json` listing.
//! Where a sequence uses direct routing or tunnelling, its services exist
//! here only as configuration: the NAT lab lists them but sends them no
//! traffic (tests/modes.rs runs those modes).
//!
//! These tests need root; run them one at a time (`--test-threads=1`, as
//! scripts/test.sh does) since each starts a whole lab on a small machine.

use std::time::Duration;

use rvs_lab::{
    CLIENT, Family, Lab, LabSpec, Mode, NatLab, REAL_SERVERS, RvsdOptions, VIP, connection_rows,
    tally, wait_until,
};
use serde_json::Value;

/// Listings the real ipvsadm 1.31 printed (see testdata/README.md).
const GOLDEN_LIST: &str = include_str!("../../control/src/ipvsadm/testdata/list.txt");
const GOLDEN_STATS: &str = include_str!("../../control/src/ipvsadm/testdata/list-stats.txt");
const GOLDEN_RATE: &str = include_str!("../../control/src/ipvsadm/testdata/list-rate.txt");
const GOLDEN_THRESHOLDS: &str =
    include_str!("../../control/src/ipvsadm/testdata/list-thresholds.txt");
const GOLDEN_PERSISTENT_CONN: &str =
    include_str!("../../control/src/ipvsadm/testdata/list-persistent-conn.txt");
const GOLDEN_TUN_INFO: &str = include_str!("../../control/src/ipvsadm/testdata/list-tun-info.txt");
const GOLDEN_CONNECTIONS: &str =
    include_str!("../../control/src/ipvsadm/testdata/list-connections.txt");

/// rvsd's `size=`: the connection tables of the lab's one worker, 65536
/// IPv4 entries and 262144 IPv6 ones.
const TABLE_SIZE: u32 = 327_680;

/// HTTP requests of each round of traffic.
const REQUESTS: usize = 10;

/// ipvsadm(8), "EXAMPLE 1 - Simple Virtual Service" (ipvsadm 1.31): a
/// NAT service and its real servers, five there, two here. The man page
/// gives it twice, as commands and as the input of `ipvsadm -R`.
#[test]
fn the_man_page_example_and_every_listing_of_it() {
    let lab = NatLab::start("manpage", &RvsdOptions::default());
    let [rs1, rs2] = REAL_SERVERS.map(|rip| format!("{rip}:80"));
    let vip = format!("{VIP}:80");
    run_lines(
        &lab,
        &format!(
            "rvsadm -A -t {vip} -s rr\n\
             rvsadm -a -t {vip} -r {rs1} -m\n\
             rvsadm -a -t {vip} -r {rs2} -m\n"
        ),
    );
    let service = format!("TCP  {vip} rr\n");
    let fresh = format!(
        "{}{service}{}{}",
        title(GOLDEN_LIST),
        rs_row(&rs1, "Masq", 1, 0, 0),
        rs_row(&rs2, "Masq", 1, 0, 0)
    );
    assert_eq!(sh(&lab, "rvsadm -Ln"), fresh);

    let (to_rs1, to_rs2, failed) = tally(&lab.http_requests("/", REQUESTS));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((to_rs1, to_rs2), (REQUESTS / 2, REQUESTS / 2));
    // Every connection was closed and waits in TIME_WAIT: inactive.
    let half = REQUESTS as u64 / 2;
    let after_traffic = format!(
        "{}{service}{}{}",
        title(GOLDEN_LIST),
        rs_row(&rs1, "Masq", 1, 0, half),
        rs_row(&rs2, "Masq", 1, 0, half)
    );
    assert_eq!(sh(&lab, "rvsadm -Ln"), after_traffic);

    // -Lnc: a TIME_WAIT row per connection, in print_conn's columns.
    let listing = sh(&lab, "rvsadm -Lnc");
    assert!(listing.starts_with(&title(GOLDEN_CONNECTIONS)), "{listing}");
    let rows = connection_rows(&listing);
    assert_eq!(rows.len(), REQUESTS, "{listing}");
    for row in &rows {
        assert_eq!(
            (
                row.protocol.as_str(),
                row.state.as_str(),
                &row.virtual_address
            ),
            ("TCP", "TIME_WAIT", &vip),
            "{listing}"
        );
        assert!(row.source.starts_with(&format!("{CLIENT}:")), "{listing}");
        assert!(row.expires <= 120, "TIME_WAIT lasts 2 minutes: {listing}");
    }
    for rs in [&rs1, &rs2] {
        let count = rows.iter().filter(|row| &row.destination == rs).count();
        assert_eq!(count, REQUESTS / 2, "{listing}");
    }
    // --json: the same connections.
    let entries = json(&lab, "rvsadm -Lnc --json");
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut listed: Vec<(String, String)> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| (text(&entry["client"]), text(&entry["real_server"])))
        .collect();
    let mut shown: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.source.clone(), row.destination.clone()))
        .collect();
    listed.sort();
    shown.sort();
    assert_eq!(listed, shown, "{entries}");

    // --stats: the numbers of --json, in ipvsadm's layout.
    let stats = sh(&lab, "rvsadm -Ln --stats");
    let services = json(&lab, "rvsadm -Ln --stats --json");
    assert_eq!(
        stats,
        counters_listing(GOLDEN_STATS, &services, "stats", STATS_FIELDS)
    );
    assert_eq!(
        sh(&lab, "rvsadm -Ln --stats --exact"),
        stats,
        "small numbers"
    );
    let service_stats = &services[0]["stats"];
    let real_stats: Vec<&Value> = real_servers(&services[0])
        .iter()
        .map(|rs| &rs["stats"])
        .collect();
    assert_eq!(service_stats["conns"], REQUESTS, "{services}");
    for (field, _) in STATS_FIELDS {
        let sum: u64 = real_stats.iter().filter_map(|s| s[field].as_u64()).sum();
        assert_eq!(
            service_stats[field].as_u64(),
            Some(sum),
            "{field}: {services}"
        );
    }
    for stats in &real_stats {
        assert_eq!(stats["conns"], half, "{services}");
        // At least SYN, ACK, request and FIN in; SYN-ACK, response and
        // FIN out; responses are longer than requests.
        assert!(stats["in_packets"].as_u64() >= Some(4 * half), "{services}");
        assert!(
            stats["out_packets"].as_u64() >= Some(3 * half),
            "{services}"
        );
        assert!(stats["out_bytes"].as_u64() > stats["in_bytes"].as_u64());
    }

    // --rate: once the estimator has sampled the traffic (every 2 s).
    let mut rate = String::new();
    let mut rates = Value::Null;
    let sampled = wait_until(Duration::from_secs(10), || {
        rate = sh(&lab, "rvsadm -Ln --rate");
        rates = json(&lab, "rvsadm -Ln --rate --json");
        // A sample between the two listings changes the numbers.
        rates[0]["rates"]["in_pps"].as_u64() > Some(0) && rate == sh(&lab, "rvsadm -Ln --rate")
    });
    assert!(sampled, "no rate after the traffic: {rate}");
    assert_eq!(
        rate,
        counters_listing(GOLDEN_RATE, &rates, "rates", RATE_FIELDS)
    );

    // -Z zeroes counters and rates (ipvsadm(8)); the connections stay.
    run_lines(&lab, "rvsadm -Z");
    let zeros = |golden: &str| {
        format!(
            "{}{}{}{}",
            title(golden),
            counter_row(&format!("TCP  {vip}"), [0; 5]),
            counter_row(&format!("  -> {rs1}"), [0; 5]),
            counter_row(&format!("  -> {rs2}"), [0; 5])
        )
    };
    assert_eq!(sh(&lab, "rvsadm -Ln --stats"), zeros(GOLDEN_STATS));
    assert_eq!(sh(&lab, "rvsadm -Ln --rate"), zeros(GOLDEN_RATE));
    assert_eq!(sh(&lab, "rvsadm -Ln"), after_traffic);

    // --set: "A timeout value 0 means that the current timeout value of
    // the corresponding entry is preserved" (ipvsadm(8)).
    assert_eq!(
        sh(&lab, "rvsadm -L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    run_lines(&lab, "rvsadm --set 3600 0 0");
    assert_eq!(
        sh(&lab, "rvsadm -L --timeout"),
        "Timeout (tcp tcpfin udp): 3600 120 300\n"
    );
    assert_eq!(
        json(&lab, "rvsadm -L --timeout --json"),
        serde_json::json!({"tcp": 3600, "tcp_fin": 120, "udp": 300})
    );

    // -C empties the table; the man page's second form restores it.
    run_lines(&lab, "rvsadm -C");
    assert_eq!(sh(&lab, "rvsadm -Ln"), title(GOLDEN_LIST));
    let restore = format!(
        "echo \"\n\
         -A -t {vip} -s rr\n\
         -a -t {vip} -r {rs1} -m\n\
         -a -t {vip} -r {rs2} -m\n\
         \" | rvsadm -R"
    );
    assert_eq!(sh(&lab, &restore), "");
    assert_eq!(sh(&lab, "rvsadm -Ln"), fresh);
    let (to_rs1, to_rs2, failed) = tally(&lab.http_requests("/", 2));
    assert_eq!((to_rs1, to_rs2, failed.len()), (1, 1, 0));
}

/// The LVS project's own examples, as configuration, weights, scheduler
/// and forwarding changes, each followed by its listings.
#[test]
fn the_lvs_examples_edit_quiesce_and_remove_real_servers() {
    let lab = NatLab::start("howto", &RvsdOptions::default());
    let [rip1, rip2] = REAL_SERVERS;
    let vip = format!("{VIP}:80");
    // "Virtual Server via NAT" (linuxvirtualserver.org/VS-NAT.html), its
    // configuration example: 202.103.106.5 is the VIP, 172.16.0.2:80 and
    // 172.16.0.3:8000 the real servers (here port 8080, where the lab's
    // nginx listens too).
    run_lines(
        &lab,
        &format!(
            "rvsadm -A -t {vip} -s wlc\n\
             rvsadm -a -t {vip} -r {rip1}:80 -m\n\
             rvsadm -a -t {vip} -r {rip2}:8080 -m -w 2\n"
        ),
    );
    let (rs1, rs2) = (format!("{rip1}:80"), format!("{rip2}:8080"));
    let listing = |scheduler: &str, rows: &[String]| {
        format!(
            "{}TCP  {vip} {scheduler}\n{}",
            title(GOLDEN_LIST),
            rows.concat()
        )
    };
    assert_eq!(
        sh(&lab, "rvsadm -Ln"),
        listing(
            "wlc",
            &[rs_row(&rs1, "Masq", 1, 0, 0), rs_row(&rs2, "Masq", 2, 0, 0)]
        )
    );
    let (to_rs1, to_rs2, failed) = tally(&lab.http_requests("/", REQUESTS - 1));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert!(to_rs2 > to_rs1, "weight 2 takes more: {to_rs1} {to_rs2}");
    let (inactive1, inactive2) = (to_rs1 as u64, to_rs2 as u64);
    assert_eq!(
        sh(&lab, "rvsadm -Ln"),
        listing(
            "wlc",
            &[
                rs_row(&rs1, "Masq", 1, 0, inactive1),
                rs_row(&rs2, "Masq", 2, 0, inactive2)
            ]
        )
    );

    // Weight 0: "A quiescent server will receive no new jobs but still
    // serve the existing jobs" (ipvsadm(8), -w), the LVS-HOWTO's way of
    // taking a real server out of service gently.
    run_lines(&lab, &format!("rvsadm -e -t {vip} -r {rs2} -m -w 0"));
    let (to_rs1, to_rs2, failed) = tally(&lab.http_requests("/", 4));
    assert_eq!((to_rs1, to_rs2, failed.len()), (4, 0, 0));
    let quiesced = [
        rs_row(&rs1, "Masq", 1, 0, inactive1 + 4),
        rs_row(&rs2, "Masq", 0, 0, inactive2),
    ];
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing("wlc", &quiesced));
    // -E replaces the service's definition, -d and -D remove.
    run_lines(&lab, &format!("rvsadm -E -t {vip} -s rr"));
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing("rr", &quiesced));
    run_lines(&lab, &format!("rvsadm -d -t {vip} -r {rs2}"));
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing("rr", &quiesced[..1]));
    run_lines(&lab, &format!("rvsadm -D -t {vip}"));
    assert_eq!(sh(&lab, "rvsadm -Ln"), title(GOLDEN_LIST));

    // "Virtual Server via Direct Routing" (VS-DRouting.html) and "via IP
    // Tunneling" (VS-IPTunneling.html): a telnet service, 172.26.20.110:23,
    // and a real server 172.26.20.112 without a port (it takes the
    // service's); one of each kind here.
    let telnet = format!("{VIP}:23");
    run_lines(
        &lab,
        &format!(
            "rvsadm -A -t {telnet} -s wlc\n\
             rvsadm -a -t {telnet} -r {rip1} -g\n\
             rvsadm -a -t {telnet} -r {rip2} -i\n"
        ),
    );
    let (dr, tun) = (format!("{rip1}:23"), format!("{rip2}:23"));
    assert_eq!(
        sh(&lab, "rvsadm -Ln"),
        format!(
            "{}TCP  {telnet} wlc\n{}{}",
            title(GOLDEN_LIST),
            rs_row(&dr, "Route", 1, 0, 0),
            rs_row(&tun, "Tunnel", 1, 0, 0)
        )
    );
    // --tun-info: `"  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"`.
    assert_eq!(
        sh(&lab, "rvsadm -Ln --tun-info"),
        format!(
            "{}TCP  {telnet} wlc\n  -> {dr:<28} {:<7} {:<13} {:<6} {:<10} {:<10}\n  \
             -> {tun:<28} {:<7} {:<13} {:<6} {:<10} {:<10}\n",
            title(GOLDEN_TUN_INFO),
            "Route",
            "n/a",
            1,
            0,
            0,
            "Tunnel",
            "ipip",
            1,
            0,
            0
        )
    );
    // Thresholds (-x, -y) and persistence with a netmask, and the
    // listings that show them.
    run_lines(
        &lab,
        &format!(
            "rvsadm -e -t {telnet} -r {rip1} -g -x 100 -y 50\n\
             rvsadm -E -t {telnet} -s wlc -p 360 -M 255.255.255.0\n"
        ),
    );
    let persistent = format!("TCP  {telnet} wlc persistent 360 mask 255.255.255.0\n");
    // --thresholds: `"  -> %-28s %-10u %-10u %-10u %-10u\n"`.
    assert_eq!(
        sh(&lab, "rvsadm -Ln --thresholds"),
        format!(
            "{}{persistent}  -> {dr:<28} {:<10} {:<10} {:<10} {:<10}\n  \
             -> {tun:<28} {:<10} {:<10} {:<10} {:<10}\n",
            title(GOLDEN_THRESHOLDS),
            100,
            50,
            0,
            0,
            0,
            0,
            0,
            0
        )
    );
    // --persistent-conn: `"  -> %-28s %-9u %-11u %-10u %-10u\n"`.
    assert_eq!(
        sh(&lab, "rvsadm -Ln --persistent-conn"),
        format!(
            "{}{persistent}  -> {dr:<28} {:<9} {:<11} {:<10} {:<10}\n  \
             -> {tun:<28} {:<9} {:<11} {:<10} {:<10}\n",
            title(GOLDEN_PERSISTENT_CONN),
            1,
            0,
            0,
            0,
            1,
            0,
            0,
            0
        )
    );
    // --json gives the whole listing whatever the view.
    let services = json(&lab, "rvsadm -Ln --json");
    for view in [
        "--stats",
        "--rate",
        "--thresholds",
        "--persistent-conn",
        "--tun-info",
    ] {
        assert_eq!(json(&lab, &format!("rvsadm -Ln {view} --json")), services);
    }
    let real = &real_servers(&services[0])[0]["spec"];
    assert_eq!(
        (&real["upper_threshold"], &real["lower_threshold"]),
        (&Value::from(100), &Value::from(50)),
        "{services}"
    );
    assert_eq!(
        services[0]["spec"]["persistence"],
        serde_json::json!({"timeout": 360, "netmask": 24}),
        "{services}"
    );
}

/// `rvsadm -S > rules; rvsadm -C; rvsadm -R < rules` gives back the same
/// table, in both families, with every kind of option a save writes; and
/// so does `--save -n` through a pipe.
#[test]
fn save_then_restore_gives_the_same_table() {
    let lab = Lab::start(
        "save",
        &LabSpec {
            ipv6: true,
            ..LabSpec::new(Mode::Nat)
        },
    );
    let vip = lab.vip(Family::V4);
    let [rip1, rip2] = [0, 1].map(|i| lab.rips(Family::V4)[i]);
    let vip6 = lab.vip(Family::V6);
    let [rip6_1, rip6_2] = [0, 1].map(|i| lab.rips(Family::V6)[i]);
    // Given out of order: a save lists services and real servers sorted.
    run_lines(
        &lab,
        &format!(
            "rvsadm -A -t [{vip6}]:80 -s mh -b mh-port,mh-fallback\n\
             rvsadm -a -t [{vip6}]:80 -r [{rip6_2}]:8080 -m -w 5\n\
             rvsadm -a -t [{vip6}]:80 -r [{rip6_1}]:80 -m -x 10\n\
             rvsadm -A -u [{vip6}]:53 -s lc -p 120 -M 64\n\
             rvsadm -a -u [{vip6}]:53 -r {rip6_1} -g -w 0\n\
             rvsadm -A -u {vip}:53 -s sh -b sh-port,sh-fallback -p 600 -M 255.255.255.0\n\
             rvsadm -a -u {vip}:53 -r {rip2}:53 -g\n\
             rvsadm -a -u {vip}:53 -r {rip1}:53 -m -w 65535\n\
             rvsadm -A -t {vip}:8080 -s dh -b flag-3\n\
             rvsadm -A -t {vip}:443 -s wlc -p\n\
             rvsadm -a -t {vip}:443 -r {rip2} -i -w 2\n\
             rvsadm -a -t {vip}:443 -r {rip1} -g -x 100 -y 50\n\
             rvsadm -A -t {vip}:80 -s wrr\n\
             rvsadm -a -t {vip}:80 -r {rip1}:80 -m -w 3\n\
             rvsadm -a -t {vip}:80 -r {rip2}:8080 -m -w 0\n"
        ),
    );
    // ipvsadm's save, plus the thresholds it leaves out (save.rs).
    let saved = format!(
        "-A -t {vip}:80 -s wrr\n\
         -a -t {vip}:80 -r {rip1}:80 -m -w 3\n\
         -a -t {vip}:80 -r {rip2}:8080 -m -w 0\n\
         -A -t {vip}:443 -s wlc -p 300\n\
         -a -t {vip}:443 -r {rip1}:443 -g -w 1 -x 100 -y 50\n\
         -a -t {vip}:443 -r {rip2}:443 -i -w 2 --tun-type ipip\n\
         -A -t {vip}:8080 -s dh -b flag-3\n\
         -A -u {vip}:53 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n\
         -a -u {vip}:53 -r {rip1}:53 -m -w 65535\n\
         -a -u {vip}:53 -r {rip2}:53 -g -w 1\n\
         -A -t [{vip6}]:80 -s mh -b mh-fallback,mh-port\n\
         -a -t [{vip6}]:80 -r [{rip6_1}]:80 -m -w 1 -x 10\n\
         -a -t [{vip6}]:80 -r [{rip6_2}]:8080 -m -w 5\n\
         -A -u [{vip6}]:53 -s lc -p 120 -M 64\n\
         -a -u [{vip6}]:53 -r [{rip6_1}]:53 -g -w 0\n"
    );
    assert_eq!(sh(&lab, "rvsadm -Sn"), saved);
    let listing = format!(
        "{}\
         TCP  {vip}:80 wrr\n{}{}\
         TCP  {vip}:443 wlc persistent 300\n{}{}\
         TCP  {vip}:8080 dh (flag-3)\n\
         UDP  {vip}:53 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0\n{}{}\
         TCP  [{vip6}]:80 mh (mh-fallback,mh-port)\n{}{}\
         UDP  [{vip6}]:53 lc persistent 120 mask 64\n{}",
        title(GOLDEN_LIST),
        rs_row(&format!("{rip1}:80"), "Masq", 3, 0, 0),
        rs_row(&format!("{rip2}:8080"), "Masq", 0, 0, 0),
        rs_row(&format!("{rip1}:443"), "Route", 1, 0, 0),
        rs_row(&format!("{rip2}:443"), "Tunnel", 2, 0, 0),
        rs_row(&format!("{rip1}:53"), "Masq", 65535, 0, 0),
        rs_row(&format!("{rip2}:53"), "Route", 1, 0, 0),
        rs_row(&format!("[{rip6_1}]:80"), "Masq", 1, 0, 0),
        rs_row(&format!("[{rip6_2}]:8080"), "Masq", 5, 0, 0),
        rs_row(&format!("[{rip6_1}]:53"), "Route", 0, 0, 0),
    );
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing);
    let named = sh(&lab, "rvsadm -S");

    // The issue's own words.
    run_lines(&lab, "rvsadm -S > rules; rvsadm -C; rvsadm -R < rules");
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing);
    assert_eq!(sh(&lab, "rvsadm -S"), named);
    assert_eq!(sh(&lab, "rvsadm -Sn"), saved);

    // Numeric, and through a pipe into -R.
    run_lines(
        &lab,
        "rules=$(rvsadm --save -n); rvsadm -C; echo \"$rules\" | rvsadm -R",
    );
    assert_eq!(sh(&lab, "rvsadm -Ln"), listing);
    assert_eq!(sh(&lab, "rvsadm --save -n"), saved);
    // The restored services carry traffic.
    let (to_rs1, to_rs2, failed) = tally(&lab.http_requests(Family::V4, "/", 3));
    assert_eq!(
        (to_rs1, to_rs2, failed.len()),
        (3, 0, 0),
        "weight 0 gets none"
    );
}

/// Refusals print libipvs' messages (ipvs_strerror) with ipvsadm's exit
/// statuses: 255 when a change fails, 1 when a listing does, 2 for
/// ipvsadm's own checks. tests/nat.rs checks the messages of -A, -a, -d
/// and -D refusals.
#[test]
fn refusals_read_as_ipvsadm_and_exit_with_its_status() {
    let lab = NatLab::start("refusals", &RvsdOptions::default());
    let [rip1, _] = REAL_SERVERS;
    let vip = format!("{VIP}:80");
    let missing = format!("{VIP}:81");
    run_lines(
        &lab,
        &format!("rvsadm -A -t {vip} -s rr\nrvsadm -a -t {vip} -r {rip1}:80 -m\n"),
    );
    let table = sh(&lab, "rvsadm -Ln");
    for (line, message, status) in [
        (
            format!("rvsadm -E -t {missing} -s rr"),
            "No such service",
            255,
        ),
        (format!("rvsadm -Z -t {missing}"), "No such service", 255),
        (
            format!("rvsadm -e -t {missing} -r {rip1}:80 -m"),
            "Service not defined",
            255,
        ),
        (
            format!("rvsadm -d -t {missing} -r {rip1}:80"),
            "Service not defined",
            255,
        ),
        (
            format!("rvsadm -e -t {vip} -r 198.18.1.99:80 -m"),
            "No such destination",
            255,
        ),
        (format!("rvsadm -L -n -t {missing}"), "No such service", 1),
        (
            format!("rvsadm -Ln --stats -t {missing}"),
            "No such service",
            1,
        ),
        // The kernel's refusal of an unknown scheduler, in libipvs' words.
        (
            format!("rvsadm -A -t {missing} -s nosuch"),
            "Scheduler or persistence engine not found",
            255,
        ),
        // ipvsadm's own checks.
        (
            format!("rvsadm -A -t {VIP}"),
            "Zero port specified for non-persistent service",
            2,
        ),
        (
            format!("rvsadm -a -t {vip} -r {rip1} -m -g"),
            "multiple 'forwarding-method' options specified",
            2,
        ),
        (
            "rvsadm -L -c --stats".to_owned(),
            "options conflicts in the list command",
            2,
        ),
        // -R stops at the first line refused, naming it.
        (
            format!(
                "printf -- '-A -t {missing} -s rr\\n-a -t {VIP}:82 -r {rip1} -m\\n' | rvsadm -R"
            ),
            "line 2: Service not defined",
            255,
        ),
    ] {
        let output = lab.rvsadm_script(&line);
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).as_ref(),
                output.stdout.as_slice()
            ),
            (Some(status), format!("{message}\n").as_str(), &b""[..]),
            "{line}"
        );
    }
    // Only the restore's first line changed the table.
    run_lines(&lab, &format!("rvsadm -D -t {missing}"));
    assert_eq!(sh(&lab, "rvsadm -Ln"), table);
}

/// Runs a tutorial's line in a shell against the lab's rvsd and returns
/// what it printed, checking that it succeeded without a word on stderr.
fn sh(lab: &Lab, line: &str) -> String {
    let output = lab.rvsadm_script(line);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{line}: {} {stderr}\n{}",
        output.status,
        lab.log_tail()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs each of `lines` that changes the table: they print nothing.
fn run_lines(lab: &Lab, lines: &str) {
    for line in lines.lines().filter(|line| !line.trim().is_empty()) {
        assert_eq!(sh(lab, line), "", "{line}");
    }
}

/// What `line` printed, as JSON.
fn json(lab: &Lab, line: &str) -> Value {
    let text = sh(lab, line);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{line}: {error}: {text}"))
}

/// The title of a listing as the real ipvsadm printed it: the lines of a
/// golden file before its first service or connection, with rvsd's table
/// size on the version line.
fn title(golden: &str) -> String {
    golden
        .lines()
        .take_while(|line| !line.starts_with("TCP ") && !line.starts_with("UDP "))
        .map(|line| line.replace("(size=4096)", &format!("(size={TABLE_SIZE})")) + "\n")
        .collect()
}

/// A real server's row of `-Ln`: ipvsadm's
/// `"  -> %-28s %-7s %-6d %-10u %-10u\n"`.
fn rs_row(address: &str, forward: &str, weight: u32, active: u64, inactive: u64) -> String {
    format!("  -> {address:<28} {forward:<7} {weight:<6} {active:<10} {inactive:<10}\n")
}

/// The JSON fields of `--stats` and `--rate`, in their columns' order.
const STATS_FIELDS: [(&str, &str); 5] = [
    ("conns", "Conns"),
    ("in_packets", "InPkts"),
    ("out_packets", "OutPkts"),
    ("in_bytes", "InBytes"),
    ("out_bytes", "OutBytes"),
];
const RATE_FIELDS: [(&str, &str); 5] = [
    ("cps", "CPS"),
    ("in_pps", "InPPS"),
    ("out_pps", "OutPPS"),
    ("in_bps", "InBPS"),
    ("out_bps", "OutBPS"),
];

/// A row of `--stats` or `--rate`: the name (`TCP  VIP:port`, or `  ->
/// RIP:port`) in 33 columns, then each number as `print_largenum` prints
/// one below 10^8, right-aligned in 9.
fn counter_row(name: &str, values: [u64; 5]) -> String {
    let mut row = format!("{name:<33}");
    for value in values {
        assert!(value < 100_000_000, "{value} would be scaled");
        row += &format!("{value:>9}");
    }
    row + "\n"
}

/// The `--stats` (`field` "stats") or `--rate` ("rates") listing of the
/// services of a `--json` listing, as ipvsadm lays it out.
fn counters_listing(
    golden: &str,
    services: &Value,
    field: &str,
    columns: [(&str, &str); 5],
) -> String {
    let values =
        |counters: &Value| columns.map(|(name, _)| counters[name].as_u64().unwrap_or(u64::MAX));
    let mut text = title(golden);
    for (column, (_, heading)) in columns.iter().enumerate() {
        assert!(
            text.contains(heading),
            "column {column} is {heading}: {text}"
        );
    }
    for service in services.as_array().into_iter().flatten() {
        let spec = &service["spec"];
        let protocol = spec["protocol"].as_str().unwrap_or_default().to_uppercase();
        let address = spec["address"].as_str().unwrap_or_default();
        text += &counter_row(&format!("{protocol:<4} {address}"), values(&service[field]));
        for rs in real_servers(service) {
            let address = rs["spec"]["address"].as_str().unwrap_or_default();
            text += &counter_row(&format!("  -> {address}"), values(&rs[field]));
        }
    }
    text
}

/// The real servers of a service of a `--json` listing.
fn real_servers(service: &Value) -> &[Value] {
    service["real_servers"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}
