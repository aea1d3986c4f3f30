//! Health checks end to end: rvsd checks nginx on the lab's real servers
//! through the LAN port's kernel twin (the exception path), as keepalived
//! would, while a curl loop in the client requests the VIP on a new
//! connection each time. A real server whose nginx stops, or whose
//! `/health` answers 500, leaves the rotation within the detection window
//! (removed, or inhibited with weight 0) and comes back after `rise`
//! successes. The first test writes its check for the service, the
//! second for each real server. See `rvs_lab` for the topology.
//!
//! These tests need root; run them one at a time (`--test-threads=1`).

use std::time::Duration;

use rvs_lab::{
    Attempt, CurlLoop, NatLab, REAL_SERVERS, RealServerRow, RvsdOptions, VIP, nat_service_toml,
    real_server_rows, unix_millis, wait_until,
};

/// Every check here: once a second, a second to answer.
const TIMING: &str = "delay_loop = 1, connect_timeout = 1, retry_delay = 1";
/// Longer than any detection or recovery window of these tests.
const PATIENCE: Duration = Duration::from_secs(15);

/// Where a lab's file writes its health check.
enum Placement {
    /// `[services.health_check]`, for every real server.
    Service,
    /// A `health_check` of its own in each `[[services.real_servers]]`.
    EachRealServer,
}

fn health_lab(name: &str, check: &str, placement: Placement) -> NatLab {
    let table = format!("health_check = {{ {check}, {TIMING} }}\n");
    let services = match placement {
        Placement::Service => nat_service_toml("tcp", 80, 1, &table),
        Placement::EachRealServer => nat_service_toml("tcp", 80, 1, "")
            .replace("weight = 1\n", &format!("weight = 1\n{table}")),
    };
    NatLab::start(
        name,
        &RvsdOptions {
            services_toml: services,
            exception_path: true,
            ..RvsdOptions::default()
        },
    )
}

fn rows(lab: &NatLab) -> Vec<RealServerRow> {
    real_server_rows(&lab.rvsadm_ok("-Ln"))
}

/// When a change was seen, in Unix milliseconds: it happened after
/// `before` (the last listing without it was asked for then) and by
/// `after`.
#[derive(Debug, Clone, Copy)]
struct Seen {
    before: u64,
    after: u64,
}

/// Waits until `-Ln` satisfies `condition`.
fn when_listed(lab: &NatLab, what: &str, condition: impl Fn(&[RealServerRow]) -> bool) -> Seen {
    let mut before = unix_millis();
    let happened = wait_until(PATIENCE, || {
        let asked = unix_millis();
        let holds = condition(&rows(lab));
        if !holds {
            before = asked;
        }
        holds
    });
    assert!(
        happened,
        "never {what}:\n{}\n{}",
        lab.rvsadm_ok("-Ln"),
        lab.log_tail()
    );
    Seen {
        before,
        after: unix_millis(),
    }
}

fn row<'a>(rows: &'a [RealServerRow], rs: &str) -> Option<&'a RealServerRow> {
    rows.iter().find(|row| row.address == format!("{rs}:80"))
}

/// What the requests made wholly within `[from, to)` got, by answer: a
/// request stamped before `to` may still have been sent after it.
fn answers_between(attempts: &[Attempt], from: u64, to: u64) -> Vec<&str> {
    attempts
        .iter()
        .filter(|attempt| from <= attempt.at && attempt.ended < to)
        .map(|attempt| attempt.result.split_whitespace().next().unwrap_or(""))
        .collect()
}

/// Checks what the curl loop saw: during the outage (from detection to
/// the return) every request answered, by rs1 only; after the return
/// every request answered, by both.
fn check_attempts(lab: &NatLab, attempts: &[Attempt], detected: Seen, back: Seen) {
    let outage = answers_between(attempts, detected.after, back.before);
    let after = answers_between(attempts, back.after, u64::MAX);
    let report = || {
        format!(
            "detected {detected:?}, back {back:?}\n{attempts:?}\n{}",
            lab.log_tail()
        )
    };
    assert!(
        outage.len() >= 10,
        "too few requests in the outage: {}",
        report()
    );
    assert!(
        outage.iter().all(|&answer| answer == "rs1"),
        "a request failed or reached rs2 after detection: {outage:?}\n{}",
        report()
    );
    assert!(
        after.len() >= 10,
        "too few requests after the return: {}",
        report()
    );
    assert!(
        after
            .iter()
            .all(|&answer| answer == "rs1" || answer == "rs2"),
        "a request failed after the return: {after:?}\n{}",
        report()
    );
    assert!(after.contains(&"rs2"), "rs2 got no traffic back: {after:?}");
}

#[test]
fn a_stopped_web_server_is_removed_and_comes_back_after_rise() {
    let mut lab = health_lab(
        "health-stop",
        "kind = \"tcp\", retry = 0, rise = 2, on_failure = \"remove\"",
        Placement::Service,
    );
    when_listed(&lab, "both real servers up", |rows| rows.len() == 2);
    let curl = CurlLoop::start(&lab.client, lab.dir(), &format!("http://{VIP}/"));
    std::thread::sleep(Duration::from_secs(1));

    let stopped = unix_millis();
    lab.stop_web_server(1);
    let detected = when_listed(&lab, "rs2 removed", |rows| {
        rows.len() == 1 && row(rows, REAL_SERVERS[0]).is_some()
    });
    // One failed check (retry = 0) within a check interval and its timeout.
    assert!(
        detected.after - stopped < 3_000,
        "detection took {} ms",
        detected.after - stopped
    );
    std::thread::sleep(Duration::from_secs(2));

    let restarted = unix_millis();
    lab.start_web_server(1);
    let back = when_listed(&lab, "rs2 back", |rows| {
        row(rows, REAL_SERVERS[1]).is_some_and(|rs| rs.weight == 1)
    });
    // Two successes in a row, a check interval apart.
    assert!(
        back.after - restarted >= 900,
        "back after {} ms",
        back.after - restarted
    );
    std::thread::sleep(Duration::from_secs(2));
    let attempts = curl.finish();
    check_attempts(&lab, &attempts, detected, back);
    println!(
        "stopped -> removed {} ms, restarted -> back {} ms; {} requests, {} failed before detection",
        detected.after - stopped,
        back.after - restarted,
        attempts.len(),
        attempts
            .iter()
            .filter(|attempt| attempt.result.starts_with("FAILED"))
            .count()
    );
}

#[test]
fn a_server_answering_500_is_inhibited_until_it_is_healthy() {
    let lab = health_lab(
        "health-500",
        "kind = \"http\", path = \"/health\", status = 200, retry = 1, rise = 2, on_failure = \"inhibit\"",
        Placement::EachRealServer,
    );
    when_listed(&lab, "both real servers up", |rows| rows.len() == 2);
    let curl = CurlLoop::start(&lab.client, lab.dir(), &format!("http://{VIP}/"));
    std::thread::sleep(Duration::from_secs(1));

    let failing = unix_millis();
    lab.set_healthy(1, false);
    let detected = when_listed(&lab, "rs2 inhibited", |rows| {
        rows.len() == 2 && row(rows, REAL_SERVERS[1]).is_some_and(|rs| rs.weight == 0)
    });
    // Two failed checks (retry = 1), retry_delay apart.
    assert!(
        detected.after - failing < 5_000,
        "detection took {} ms",
        detected.after - failing
    );
    // The health column (only with --health), and the logged transition.
    let listing = lab.rvsadm_ok("-Ln --health");
    let rs2 = listing
        .lines()
        .find(|line| line.contains(&format!("{}:80", REAL_SERVERS[1])))
        .unwrap_or_default();
    assert!(
        rs2.contains("DOWN") && rs2.contains("HTTP status 500"),
        "{listing}"
    );
    assert!(!lab.rvsadm_ok("-Ln").contains("DOWN"));
    assert!(lab.log().contains("UP -> DOWN"), "{}", lab.log_tail());
    println!("{listing}");
    std::thread::sleep(Duration::from_secs(2));

    let healed = unix_millis();
    lab.set_healthy(1, true);
    let back = when_listed(&lab, "rs2 weighted again", |rows| {
        row(rows, REAL_SERVERS[1]).is_some_and(|rs| rs.weight == 1)
    });
    assert!(
        back.after - healed >= 900,
        "back after {} ms",
        back.after - healed
    );
    std::thread::sleep(Duration::from_secs(2));
    let attempts = curl.finish();
    check_attempts(&lab, &attempts, detected, back);
    // Inhibited, not removed: nothing failed at any time.
    assert!(
        attempts
            .iter()
            .all(|attempt| !attempt.result.starts_with("FAILED")),
        "{attempts:?}"
    );
}
