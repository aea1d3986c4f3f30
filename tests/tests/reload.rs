//! Live reload, end to end: rvsd rereads its file on SIGHUP and on
//! `rvsadm --reload` and applies only what changed, while a download
//! through a service it keeps runs on untouched; a broken file changes
//! nothing. See `rvs_lab` for the topology.
//!
//! These tests need root; run them one at a time (`--test-threads=1`).

use std::fs;
use std::time::Duration;

use rvs_lab::{
    Family, NatLab, RvsdOptions, Transfer, UDP_PORT, VIP, nat_service_toml, real_server_rows,
    tally, wait_until,
};

/// Service A: TCP port 80, round robin over both real servers, with the
/// given weight.
fn web(weight: u32) -> String {
    service("tcp", 80, weight)
}

/// Service B: the UDP (DNS) service.
fn dns() -> String {
    service("udp", UDP_PORT, 1)
}

fn service(protocol: &str, port: u16, weight: u32) -> String {
    nat_service_toml(protocol, port, weight, "")
}

/// Rewrites the lab's configuration file: the part before the services
/// (ports, EAL, ...) stays, the services become `services`.
fn write_services(lab: &NatLab, base: &str, services: &str) {
    fs::write(lab.config_path(), format!("{base}{services}"))
        .unwrap_or_else(|error| panic!("cannot write the configuration: {error}"));
}

/// Waits until rvsd's log holds `count` lines that contain `needle`.
fn wait_for_log(lab: &NatLab, needle: &str, count: usize) {
    let logged = wait_until(Duration::from_secs(10), || {
        lab.log()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
            >= count
    });
    assert!(logged, "rvsd never logged {needle:?}\n{}", lab.log_tail());
}

#[test]
fn sighup_adds_a_service_while_a_transfer_runs_and_a_broken_file_changes_nothing() {
    let lab = NatLab::start(
        "reload",
        &RvsdOptions {
            services_toml: web(1),
            ..RvsdOptions::default()
        },
    );
    let text = fs::read_to_string(lab.config_path()).expect("the lab's configuration");
    let base = text
        .strip_suffix(&web(1))
        .expect("the services come last")
        .to_owned();
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (2, 2));

    // A download through A runs while the file gains B and A's weights
    // change.
    let transfer = Transfer::start(&lab, Family::V4, "during-reload.bin");
    let carrier = transfer.carrier;
    write_services(&lab, &base, &format!("{}{}", web(2), dns()));
    lab.hang_up_rvsd();
    wait_for_log(&lab, "configuration reloaded", 1);
    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        listing.contains(&format!("UDP  {VIP}:{UDP_PORT} rr")),
        "{listing}"
    );
    let rows = real_server_rows(&listing);
    assert_eq!(
        rows.iter().map(|row| row.weight).collect::<Vec<_>>(),
        [2, 2, 1, 1],
        "{listing}"
    );
    assert_eq!(rows[carrier].active, 1, "the download's connection stays");
    let (rs1, rs2, failed) = tally(&lab.udp_requests(4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (2, 2), "B works");
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!(rs1 + rs2, 4, "A works");
    // Intact: curl would fail on a reset, and size and hash are checked.
    transfer.finish(&lab);

    // A broken file: refused whole, with the field named, and nothing
    // stops.
    let before = lab.rvsadm_ok("-Ln");
    write_services(
        &lab,
        &base,
        &format!(
            "{}{}",
            web(1),
            dns().replace("weight = 1", "weight = 70000")
        ),
    );
    lab.hang_up_rvsd();
    wait_for_log(&lab, "reload refused", 1);
    let log = lab.log();
    assert!(
        log.contains("services[1].real_servers[0].weight: 70000 is above the maximum 65535"),
        "{}",
        lab.log_tail()
    );
    assert_eq!(lab.rvsadm_ok("-Ln"), before, "nothing changed");
    let (rs1, rs2, failed) = tally(&lab.udp_requests(4));
    assert!(failed.is_empty() && rs1 + rs2 == 4, "{failed:?}");
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty() && rs1 + rs2 == 4, "{failed:?}");
}

#[test]
fn rvsadm_reload_applies_the_difference_or_says_what_is_wrong() {
    let lab = NatLab::start(
        "rvsadm-reload",
        &RvsdOptions {
            services_toml: format!("{}{}", web(1), dns()),
            ..RvsdOptions::default()
        },
    );
    let text = fs::read_to_string(lab.config_path()).expect("the lab's configuration");
    let base = text
        .strip_suffix(&format!("{}{}", web(1), dns()))
        .expect("the services come last")
        .to_owned();

    // The same file: nothing changes.
    let before = lab.rvsadm_ok("-Ln");
    assert_eq!(lab.rvsadm_ok("--reload"), "");
    assert_eq!(lab.rvsadm_ok("-Ln"), before);
    wait_for_log(&lab, "configuration reloaded: nothing changed", 1);

    // What needs a restart is refused, by name, and changes nothing.
    let moved = base.replacen("net_af_packet0,iface=", "net_af_packet0,iface=x", 1);
    write_services(&lab, &moved, &web(3));
    let output = lab.rvsadm("--reload");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("ports[0].device: cannot change without a restart"),
        "{stderr}"
    );
    assert_eq!(lab.rvsadm_ok("-Ln"), before);

    // B removed, A's weights changed.
    write_services(&lab, &base, &web(3));
    lab.rvsadm_ok("--reload");
    let listing = lab.rvsadm_ok("-Ln");
    assert!(!listing.contains("UDP"), "{listing}");
    let rows = real_server_rows(&listing);
    assert_eq!(
        rows.iter().map(|row| row.weight).collect::<Vec<_>>(),
        [3, 3]
    );
    let (rs1, rs2, failed) = tally(&lab.http_requests("/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());
    assert_eq!((rs1, rs2), (2, 2));
}
