//! The exception path end to end: rvsd gives each port a TAP twin holding
//! the port's addresses, so the director namespace's kernel owns the
//! director's own addresses over the DPDK-driven veths (whose frames the
//! kernel never sees directly: an ingress hook drops them after af_packet
//! copied them to rvsd). While wrk loads the VIP, the client pings the
//! director's addresses and reads the metrics endpoint bound on the DIP,
//! and the director's own stack talks to a real server (as a health
//! checker does), and to a network behind it by the route rvsd gave the
//! host. See `rvs_lab` for the topology.
//!
//! These tests need root; run them one at a time (`--test-threads=1`).

use rvs_lab::{
    BIG_FILE_BYTES, CLIENT, DIP, NatLab, Netns, REAL_SERVERS, RvsdOptions, VIP, WAN_ADDRESS, Wrk,
    metric_sample, nat_service_toml, tally,
};

const METRICS_PORT: u16 = 9100;
/// A network behind the first real server, which the dataplane and, by
/// the twin, the director's host reach through it.
const ROUTED_NETWORK: &str = "198.18.77.0/24";
const ROUTED_HOST: &str = "198.18.77.1";

fn event(lab: &NatLab, name: &str) -> u64 {
    lab.workers()[0]["events"][name].as_u64().unwrap_or(0)
}

#[test]
fn the_directors_own_addresses_work_through_the_kernel_while_the_vip_is_balanced() {
    let mut services = nat_service_toml("tcp", 80, 1, "");
    services.push_str(&format!("\n[metrics]\nlisten = \"{DIP}:{METRICS_PORT}\"\n"));
    for (destination, gateway) in [(ROUTED_NETWORK, REAL_SERVERS[0]), ("0.0.0.0/0", CLIENT)] {
        services.push_str(&format!(
            "\n[[routes]]\ndestination = \"{destination}\"\ngateway = \"{gateway}\"\n"
        ));
    }
    let lab = NatLab::start(
        "exception",
        &RvsdOptions {
            services_toml: services,
            exception_path: true,
            ..RvsdOptions::default()
        },
    );
    lab.real_servers[0].exec(&["ip", "address", "add", ROUTED_HOST, "dev", "lo"]);
    let (_, _, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    let echo_replies_before = event(&lab, "icmp_echo_reply_sent");

    let wrk = Wrk::start(
        &lab.client,
        lab.dir().join("wrk.txt"),
        &["-t1", "-c10", "-d6s", "--timeout", "3s"],
        &format!("http://{VIP}/"),
    );
    // The WAN address is on the port the client is on; the DIP is on the
    // other port's twin, reached through the kernel's routing. The VIP's
    // echo is the director's, for comparison.
    let mut round_trips = Vec::new();
    for address in [WAN_ADDRESS, DIP, VIP] {
        let output = lab
            .client
            .exec(&["ping", "-c", "10", "-i", "0.2", "-W", "2", address]);
        assert!(
            output.contains("10 packets transmitted, 10 received, 0% packet loss"),
            "ping {address}:\n{output}"
        );
        assert!(!output.contains("DUP"), "ping {address}:\n{output}");
        let summary = output.lines().last().unwrap_or_default().to_owned();
        round_trips.push(format!("{address}: {summary}"));
    }
    println!(
        "ping under load (kernel, kernel, director):\n{}",
        round_trips.join("\n")
    );
    // A TCP connection to the DIP: the metrics endpoint.
    let metrics = lab.client.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{DIP}:{METRICS_PORT}/metrics"),
    ]);
    for series in [
        "rvs_worker_events_total{worker=\"0\",event=\"to_kernel\"}",
        "rvs_exception_packets_total{direction=\"to_kernel\"}",
        "rvs_exception_packets_total{direction=\"from_kernel\"}",
        "rvs_worker_connection_capacity{worker=\"0\"}",
    ] {
        assert!(metric_sample(&metrics, series) > 0, "{series}:\n{metrics}");
    }
    // Both pools, whole: af_packet holds no mbufs in rings, so the main
    // pool may well have none in use between bursts.
    for pool in ["rvs_pool", "rvs_exception_pool"] {
        let mbufs = |state: &str| {
            metric_sample(
                &metrics,
                &format!("rvs_mempool_mbufs{{pool=\"{pool}\",state=\"{state}\"}}"),
            )
        };
        assert!(
            mbufs("in_use") + mbufs("available") > 0,
            "{pool}:\n{metrics}"
        );
    }
    // The director's own stack reaches a real server through the LAN
    // port's twin, and the answer comes back to its socket.
    for rs in REAL_SERVERS {
        let page = lab
            .director
            .exec(&["curl", "-sS", "--max-time", "5", &format!("http://{rs}/")]);
        assert!(page.starts_with("rs"), "from {rs}: {page}");
    }
    // rvsd put the routed network's route on the twin, and left the
    // default route to the host.
    let routes = lab.director.exec(&["ip", "-4", "route", "show"]);
    assert!(
        routes.contains(&format!("{ROUTED_NETWORK} via {}", REAL_SERVERS[0])),
        "{routes}"
    );
    assert!(!routes.contains("default"), "{routes}");
    let page = lab.director.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{ROUTED_HOST}/"),
    ]);
    assert!(page.starts_with("rs1"), "from {ROUTED_HOST}: {page}");
    let report = wrk.finish();
    assert!(
        report.errors.is_empty() && report.requests > 100,
        "wrk while the host's traffic went through the exception path:\n{}\n{}",
        report.text,
        lab.log_tail()
    );

    // The kernel answered the pings to its addresses; the director, those
    // to the VIP. Control traffic lost nothing.
    assert_eq!(
        event(&lab, "icmp_echo_reply_sent"),
        echo_replies_before + 10
    );
    let worker = &lab.workers()[0];
    for name in ["to_kernel", "from_kernel"] {
        assert!(
            worker["events"][name].as_u64() >= Some(20),
            "{name}: {worker}"
        );
    }
    for name in ["no_exception_path", "exception_ring_full"] {
        assert_eq!(
            worker["drops"][name].as_u64().unwrap_or(0),
            0,
            "{name}: {worker}"
        );
    }

    // Bulk data: the same file from the first real server to the
    // director's own stack through the twin, and to the client through
    // the VIP (the dataplane alone), one after the other. A figure, not a
    // pass mark: the exception path is for control traffic, and a burst
    // that outruns the exception thread is dropped on its full ring
    // (counted), which TCP recovers from.
    let download = |netns: &Netns, host: &str| {
        let output = netns.exec(&[
            "curl",
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{speed_download}",
            &format!("http://{host}/big.bin"),
        ]);
        let fields: Vec<f64> = output
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        assert_eq!(
            fields.first().copied(),
            Some(BIG_FILE_BYTES as f64),
            "from {host}: {output}"
        );
        fields[1] / 1e6
    };
    let twin_rate = download(&lab.director, REAL_SERVERS[0]);
    let vip_rate = download(&lab.client, VIP);
    let worker = &lab.workers()[0];
    println!(
        "50 MB over HTTP: {twin_rate:.0} MB/s through the twin, {vip_rate:.0} MB/s through the VIP ({:.2} of it); {} of {} frames for the kernel lost on a full ring",
        twin_rate / vip_rate,
        worker["drops"]["exception_ring_full"],
        worker["events"]["to_kernel"],
    );
}
