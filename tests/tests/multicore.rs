//! rvsd with two workers, end to end: each port has two queue pairs
//! (net_af_packet `qpairs=2`), and the kernel's fanout spreads packets over
//! them by its own flow hash, which knows nothing of rvsd's owners. Every
//! packet a worker does not own must reach the owner through a hand-off
//! ring, in both directions, in NAT and in FULLNAT; and the configuration
//! must change under load without disturbing a connection.
//!
//! This machine has two CPUs: the control thread runs on CPU 0 and both
//! workers share CPU 1, with the idle back-off.
//!
//! These tests need root; run them one at a time (`--test-threads=1`, as
//! scripts/test.sh does) since each starts a whole lab on a small machine.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rvs_lab::{
    Director, Family, Lab, LabSpec, Mode, Protocol, RvsdOptions, Wrk, endpoint, tally, wait_until,
};

/// Connections each mode's test opens.
const REQUESTS: usize = 200;

fn two_worker_lab(name: &str, mode: Mode) -> Lab {
    Lab::start(
        name,
        &LabSpec {
            director: Director::Rvsd(RvsdOptions {
                workers: 2,
                ..RvsdOptions::default()
            }),
            ..LabSpec::new(mode)
        },
    )
}

/// A counter of each worker, from `rvsadm -L --workers --json` (events
/// and drops are looked up by name).
fn per_worker(lab: &Lab, name: &str) -> Vec<u64> {
    let workers = lab.workers();
    let workers = workers.as_array().expect("a list of workers");
    workers
        .iter()
        .map(|worker| {
            worker[name]
                .as_u64()
                .or_else(|| worker["events"][name].as_u64())
                .or_else(|| worker["drops"][name].as_u64())
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn with_two_workers_every_connection_is_handled_by_its_owner_alone() {
    for (name, mode) in [("mc-nat", Mode::Nat), ("mc-fullnat", Mode::FullNat)] {
        let lab = two_worker_lab(name, mode);
        let rips = lab.rips(Family::V4);
        lab.add_service(Protocol::Tcp, Family::V4, 80, &rips);

        let (rs1, rs2, failed) = tally(&lab.http_requests(Family::V4, "/", REQUESTS));
        assert!(
            failed.is_empty(),
            "{mode:?}: {failed:?}\n{}",
            lab.log_tail()
        );
        assert_eq!(rs1 + rs2, REQUESTS, "{mode:?}");
        lab.download_big_file(Family::V4)
            .unwrap_or_else(|error| panic!("{mode:?}: {error}\n{}", lab.log_tail()));

        // One connection per request and the download, each created
        // once: on its owner. A packet that reached a worker without its
        // connection and was not handed over would show as no_connection
        // (TCP without a SYN) or as a second creation.
        let created = per_worker(&lab, "conn_created");
        assert_eq!(
            created.iter().sum::<u64>(),
            REQUESTS as u64 + 1,
            "{mode:?}: created {created:?}"
        );
        assert!(
            created.iter().all(|&n| n > 0),
            "{mode:?}: both workers own connections: {created:?}"
        );
        assert_eq!(per_worker(&lab, "no_connection"), [0, 0], "{mode:?}");
        // Both workers share one CPU here: while one runs, the other's
        // ring may fill, and what does not fit is dropped and counted
        // (TCP resends it).
        let (sent, received, ring_full) = (
            per_worker(&lab, "hand_off_sent"),
            per_worker(&lab, "hand_off_received"),
            per_worker(&lab, "hand_off_ring_full"),
        );
        assert!(
            sent.iter().sum::<u64>() > 0,
            "{mode:?}: the fanout disagrees with the owners sometimes: {sent:?}"
        );
        assert_eq!(
            sent.iter().sum::<u64>(),
            received.iter().sum::<u64>() + ring_full.iter().sum::<u64>(),
            "{mode:?}: every hand-off arrived or was counted as lost"
        );
        println!(
            "{mode:?}: connections created per worker {created:?}, handed off {sent:?}, \
             received {received:?}, lost to a full ring {ring_full:?}"
        );
    }
}

#[test]
fn a_thousand_edits_under_keep_alive_load_disturb_no_connection() {
    let lab = two_worker_lab("mc-edits", Mode::Nat);
    let rips = lab.rips(Family::V4);
    lab.add_service(Protocol::Tcp, Family::V4, 80, &rips);
    let vip = lab.vip(Family::V4);
    let service = format!("-t {}", endpoint(vip, 80));
    // Warm up: ARP, the page cache.
    let (_, _, failed) = tally(&lab.http_requests(Family::V4, "/", 4));
    assert!(failed.is_empty(), "{failed:?}\n{}", lab.log_tail());

    // 20 keep-alive connections for the whole run; wrk reports errors
    // (connect, read, write, timeout, non-2xx) at the end.
    let wrk = Wrk::start(
        &lab.client,
        lab.dir().join("wrk.txt"),
        &["-t2", "-c20", "-d25s", "--timeout", "5s"],
        &format!("http://{}/", endpoint(vip, 80)),
    );
    std::thread::sleep(Duration::from_secs(1));

    // 1002 edits (334 rounds of three): real servers that carry no
    // traffic come and go (weight 0: no new connection is sent to them,
    // and they do not exist), and the weights of the two serving ones
    // change.
    let spare: Vec<IpAddr> = (0..10)
        .map(|i| format!("198.18.1.{}", 100 + i).parse().unwrap())
        .collect();
    let started = Instant::now();
    let mut edits = 0;
    'edits: for round in 0.. {
        for (i, &address) in spare.iter().enumerate() {
            let real_server = format!("-r {}", endpoint(address, 80));
            for edit in [
                format!("-a {service} {real_server} -m -w 0"),
                format!(
                    "-e {service} -r {} -m -w {}",
                    endpoint(rips[i % 2], 80),
                    1 + (round + i) % 5
                ),
                format!("-d {service} {real_server}"),
            ] {
                lab.rvsadm_ok(&edit);
                edits += 1;
            }
            if edits >= 1000 {
                break 'edits;
            }
        }
    }
    let editing = started.elapsed();
    assert!(
        editing < Duration::from_secs(20),
        "{edits} edits took {editing:?}, longer than wrk runs"
    );

    let report = wrk.finish();
    assert!(
        report.errors.is_empty(),
        "wrk saw errors while rvsadm edited:\n{}\n{}",
        report.text,
        lab.log_tail()
    );
    assert!(report.requests > 1000, "{}", report.text);
    // The configuration the last edits left, and no spare server.
    let listing = lab.rvsadm_ok("-Ln");
    assert!(
        spare
            .iter()
            .all(|address| !listing.contains(&endpoint(*address, 80))),
        "{listing}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || per_worker(
            &lab,
            "snapshot_adopted"
        )
        .iter()
        .all(|&n| n >= 1000)),
        "every worker adopted every change: {:?}",
        per_worker(&lab, "snapshot_adopted")
    );
    println!(
        "{edits} rvsadm edits in {editing:?} under wrk ({} requests, no error); \
         hand-offs {:?}",
        report.requests,
        per_worker(&lab, "hand_off_sent")
    );
}
