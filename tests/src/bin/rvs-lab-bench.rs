//! Rough figures of rvsd in the end-to-end lab (NAT, one worker, DPDK
//! af_packet ports on veths): a bulk transfer, keep-alive requests and new
//! connections per second, with the packet rate the director received.
//! The same lab with the kernel as director (nftables DNAT) is measured in
//! the same run as the reference, since these machines are shared and
//! noisy. The veth + af_packet path, the clients and the servers on the
//! same two cores bound these figures, not rvsd's per-packet cost; they show
//! the end-to-end setup works at speed, not what rvsd does on real NICs.

use std::time::{Duration, Instant};

use rvs_lab::{NatLab, REAL_SERVERS, RvsdOptions, VIP};

/// Runs `measure`, returning its result, its seconds and the packets per
/// second the director received meanwhile.
fn with_packet_rate<T>(lab: &NatLab, measure: impl FnOnce() -> T) -> (T, f64, f64) {
    let before = lab.director_rx_packets();
    let start = Instant::now();
    let result = measure();
    let seconds = start.elapsed().as_secs_f64();
    let packets = lab.director_rx_packets() - before;
    (result, seconds, packets as f64 / seconds)
}

/// Requests per second that wrk reports.
fn wrk(lab: &NatLab, extra: &[&str], seconds: u64) -> f64 {
    let duration = format!("{seconds}s");
    let url = format!("http://{VIP}/");
    let mut args = vec!["-t1", "-c16", "-d", &duration];
    args.extend_from_slice(extra);
    args.push(&url);
    let mut command = lab.client.command("wrk");
    command.args(&args);
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run wrk: {error}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Socket errors") && !text.contains("Non-2xx"),
        "wrk saw errors:\n{text}\n{}",
        lab.log_tail()
    );
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

/// (figure, packets/s) for each case.
struct Figures {
    bulk: (f64, f64),
    keepalive: (f64, f64),
    close: (f64, f64),
}

fn measure(lab: &NatLab) -> Figures {
    // Warm up: ARP, page cache.
    let warm = lab.http_requests("/", 4);
    assert!(
        warm.iter().all(|r| r.starts_with("rs")),
        "lab not working: {warm:?}\n{}",
        lab.log_tail()
    );
    let (_, seconds, bulk_pps) = with_packet_rate(lab, || {
        let output = lab
            .client
            .sh(&format!("curl -sS -o /dev/null http://{VIP}/big.bin"));
        assert!(
            output.status.success(),
            "bulk transfer failed\n{}",
            lab.log_tail()
        );
    });
    let bulk_mbps = rvs_lab::BIG_FILE_BYTES as f64 * 8.0 / seconds / 1e6;
    let (keepalive, _, keepalive_pps) = with_packet_rate(lab, || wrk(lab, &[], 10));
    let (close, _, close_pps) =
        with_packet_rate(lab, || wrk(lab, &["-H", "Connection: close"], 10));
    Figures {
        bulk: (bulk_mbps, bulk_pps),
        keepalive: (keepalive, keepalive_pps),
        close: (close, close_pps),
    }
}

fn main() {
    let rvsd = {
        let lab = NatLab::start("bench", &RvsdOptions::default());
        lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr"));
        for rs in REAL_SERVERS {
            lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {rs}:80 -m"));
        }
        measure(&lab)
    };
    let kernel = {
        let lab = NatLab::start_kernel("bench-kernel", 80);
        measure(&lab)
    };

    println!("NAT director in the end-to-end lab: rvsd (1 worker, DPDK net_af_packet on veths)");
    println!(
        "against the Linux kernel of the same namespace (nftables DNAT, round robin), same run"
    );
    println!(
        "{:<40} {:>12} {:>12} {:>7} {:>12} {:>12}",
        "case", "rvsd", "kernel", "ratio", "rvsd pkt/s", "kernel pkt/s"
    );
    for (case, unit, ours, theirs) in [
        (
            "bulk HTTP transfer, 50 MiB, 1 conn",
            "Mb/s",
            rvsd.bulk,
            kernel.bulk,
        ),
        (
            "wrk keep-alive, 16 connections",
            "req/s",
            rvsd.keepalive,
            kernel.keepalive,
        ),
        (
            "wrk new connection per request, 16",
            "conn/s",
            rvsd.close,
            kernel.close,
        ),
    ] {
        println!(
            "{:<40} {:>12} {:>12} {:>7.2} {:>12.0} {:>12.0}",
            case,
            format!("{:.0} {unit}", ours.0),
            format!("{:.0} {unit}", theirs.0),
            ours.0 / theirs.0,
            ours.1,
            theirs.1
        );
    }
    // Let closing connections finish before the labs' processes end.
    std::thread::sleep(Duration::from_millis(200));
}
