//! Runs `rvs-bench --smoke`: every benchmark case (every forwarding mode,
//! one and two rvsd workers) for about a second against rvsd and its
//! reference, checking only that each run carried traffic and (where a
//! generator ran) produced a well-formed JSON summary, that latency stamps
//! were read through every forwarding mode (TUN's outer header included),
//! and that rvsd's workers reported their hand-offs. No timing
//! thresholds: figures belong in benchmarks.
//!
//! Needs root, hugepages (scripts/setup-hugepages.sh 1536), dpdk-testpmd,
//! nft, ip, ethtool, and the release binaries (rvs-bench, rvs-pktgen,
//! rvsd, rvsadm) in $RVS_BIN_DIR or next to this test's target directory:
//!
//!   RVS_BIN_DIR="$PWD/target/release" cargo test --release -p rvs-pktgen --test bench_smoke -- --ignored
//!
//! It is `#[ignore]`d so that `cargo test --workspace` (no root, debug
//! binaries) skips it; scripts/test.sh runs it explicitly.

use std::path::PathBuf;
use std::process::Command;

use rvs_pktgen::bench::{CASES, Forward, Forwarder, Report};
use rvs_pktgen::flows::Steering;

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RVS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<this test>
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

#[test]
#[ignore = "needs root, hugepages and the release binaries: run by scripts/test.sh with --ignored"]
fn every_case_carries_traffic() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the benchmark smoke test needs root (DPDK, hugepages, network namespaces): run scripts/test.sh as root"
    );
    let bench = bin_dir().join("rvs-bench");
    assert!(
        bench.is_file(),
        "{} not found: build the release binaries first (cargo build --release --workspace --bins) and set RVS_BIN_DIR",
        bench.display()
    );
    let out = std::env::temp_dir().join(format!("rvs-bench-smoke-{}", std::process::id()));
    let output = Command::new(&bench)
        .args(["--smoke", "--out"])
        .arg(&out)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", bench.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rvs-bench --smoke failed ({}); missing prerequisites are listed first, run logs are in {}:\n{stderr}\n{stdout}",
        output.status,
        out.join("runs").display()
    );
    let json = std::fs::read_to_string(out.join("bench.json"))
        .unwrap_or_else(|error| panic!("bench.json: {error}"));
    let report: Report = serde_json::from_str(&json)
        .unwrap_or_else(|error| panic!("bench.json is malformed: {error}"));
    assert!(!report.runs.is_empty(), "no runs in bench.json");
    for case in CASES {
        assert!(
            report.rows.iter().any(|row| row.case == case.name),
            "case {:?} did not run",
            case.name
        );
    }
    for run in &report.runs {
        assert!(
            run.ok(),
            "{} / {:?}: no traffic: {:?}",
            run.case,
            run.forwarder,
            run.error
        );
        if let Some(summary) = &run.summary {
            assert!(
                summary.has_traffic(),
                "{} / {:?}: the generator's summary shows no traffic",
                run.case,
                run.forwarder
            );
        }
        let Some(case) = CASES.iter().find(|case| case.name == run.case) else {
            panic!("{}: not a case of rvs-bench", run.case);
        };
        if case.forward != Forward::Nat {
            let one_way = run.summary.as_ref().map(|s| s.latency.one_way);
            assert!(
                one_way.is_some_and(|latency| latency.p50_ns.is_some()),
                "{} / {:?}: no latency stamp reached the server side",
                run.case,
                run.forwarder
            );
        }
        if run.forwarder == Forwarder::Rvsd && case.workers > 1 {
            let hand_offs = run.hand_offs_per_packet.unwrap_or_else(|| {
                panic!("{}: rvsd's workers reported no hand-off counters", run.case)
            });
            if case.steering == Steering::Hash {
                assert!(
                    hand_offs > 0.0,
                    "{}: flows spread blind to their owners, yet no hand-offs",
                    run.case
                );
            }
        }
    }
    let two_workers = report
        .rows
        .iter()
        .find(|row| row.workers > 1 && row.one_worker_case.is_some())
        .expect("a case with two workers and its 1-worker base");
    assert!(
        two_workers
            .one_worker_ratio
            .is_some_and(|ratio| ratio > 0.0),
        "{}: no ratio to the 1-worker figure",
        two_workers.case
    );
    assert!(
        std::fs::read_to_string(out.join("bench.svg")).is_ok_and(|svg| svg.starts_with("<svg")),
        "no chart written"
    );
    let _ = std::fs::remove_dir_all(&out);
}
