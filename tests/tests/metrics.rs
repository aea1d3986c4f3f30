//! The Prometheus endpoint, end to end: after some requests through rvsd,
//! curl in the director's namespace (rvsd's control side uses the
//! namespace's own network stack) reads `/metrics`, and its counters match
//! rvsadm's. See `rvs_lab` for the topology.
//!
//! These tests need root; run them one at a time (`--test-threads=1`).

use rvs_lab::{
    NatLab, REAL_SERVERS, RvsdOptions, VIP, metric_sample as sample, nat_service_toml, tally,
};

const LISTEN: &str = "127.0.0.1:9100";

#[test]
fn the_metrics_endpoint_counts_what_rvsadm_lists() {
    let mut services = nat_service_toml("tcp", 80, 2, "");
    services.push_str(&format!("\n[metrics]\nlisten = \"{LISTEN}\"\n"));
    let lab = NatLab::start(
        "metrics",
        &RvsdOptions {
            services_toml: services,
            ..RvsdOptions::default()
        },
    );
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 10));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (5, 5));

    let listing: serde_json::Value =
        serde_json::from_str(&lab.rvsadm_ok("-Ln --json")).expect("JSON listing");
    let text = lab.director.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{LISTEN}/metrics"),
    ]);
    let service = format!("service=\"TCP {VIP}:80\"");
    assert_eq!(
        sample(
            &text,
            &format!("rvs_service_connections_total{{{service}}}")
        ),
        10
    );
    for (field, metric) in [
        ("conns", "connections"),
        ("in_packets", "in_packets"),
        ("out_packets", "out_packets"),
        ("in_bytes", "in_bytes"),
        ("out_bytes", "out_bytes"),
    ] {
        let listed = listing[0]["stats"][field].as_u64().expect("a counter");
        assert!(listed > 0, "{field}");
        assert_eq!(
            sample(&text, &format!("rvs_service_{metric}_total{{{service}}}")),
            listed,
            "{field}"
        );
        for (i, rs) in REAL_SERVERS.iter().enumerate() {
            let labels = format!("{service},real_server=\"{rs}:80\"");
            assert_eq!(
                sample(
                    &text,
                    &format!("rvs_real_server_{metric}_total{{{labels}}}")
                ),
                listing[0]["real_servers"][i]["stats"][field]
                    .as_u64()
                    .expect("a counter"),
                "{field} of {rs}"
            );
        }
    }
    for rs in REAL_SERVERS {
        let labels = format!("{service},real_server=\"{rs}:80\"");
        assert_eq!(
            sample(&text, &format!("rvs_real_server_weight{{{labels}}}")),
            2
        );
        assert_eq!(
            sample(
                &text,
                &format!("rvs_real_server_inactive_connections{{{labels}}}")
            ),
            5,
            "closed connections wait in TIME_WAIT"
        );
    }
    let received = sample(&text, "rvs_worker_rx_packets_total{worker=\"0\"}");
    assert!(received >= listing[0]["stats"]["in_packets"].as_u64().unwrap_or(0));
    assert!(text.contains("rvs_worker_drops_total{worker=\"0\",reason=\"no_route\"} "));
    assert!(text.contains("rvs_worker_events_total{worker=\"0\",event=\"conn_created\"} "));

    let status = lab.director.exec(&[
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{LISTEN}/other"),
    ]);
    assert_eq!(status.trim(), "404");
}
