//! rvs-bench: runs each case against rvsd and, in the same run on the same
//! ports and cores, against a reference (`dpdk-testpmd`, or the kernel),
//! interleaved (reference, rvsd, reference, rvsd, ...), and reports the
//! medians and the per-pair ratios.
//!
//! Harnesses ([`Harness`]):
//! - **cross-process**: rvs-pktgen on CPU 0 as the memif server of two
//!   ports; the forwarder on CPU 1 as the memif client (rvsd with a
//!   two-port memif configuration, or `testpmd --forward-mode=io`);
//! - **single-core**: the forwarder alone on CPU 1, receiving an in-memory
//!   replay (net_pcap `infinite_rx` of a file rvs-pktgen wrote) and
//!   sending to a sink (net_null); `testpmd --forward-mode=5tswap` as the
//!   reference;
//! - **kernel**: rvs-pktgen on net_af_packet over veths to a router
//!   namespace that does nftables DNAT with `numgen`, against rvsd on the
//!   same veths; rates per core of forwarding work.
//!
//! A case is a row of [`CASES`]: a forwarding mode of rvsd's service
//! ([`Forward`]), a number of rvsd workers, a traffic profile and flows.
//! Adding one is adding a row.
//!
//! Several workers (cross-process only): every memif port gets a queue
//! pair per worker on both ends, rvsd's worker lcores share CPU 1
//! (`--lcores 0@0,(1-N)@1`) and yield to each other when idle (a short
//! idle back-off), and the generator spreads its flows over the queues
//! ([`Steering`]) as a NIC's RSS would. The reference is testpmd with as
//! many queues on one forwarding lcore on CPU 1: what that CPU forwards
//! from these ports. The headline is the ratio to the same case with one
//! worker, next to the hand-off rate. On two vCPUs it shows what
//! hand-offs and sharing a CPU cost, not scaling.

mod harness;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flows::Steering;
use crate::packet::Profile;
use crate::summary::Summary;

pub use harness::{Binaries, Prerequisite, check_prerequisites};
pub use report::{Report, write_outputs};

/// Where the packets go through the forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Harness {
    CrossProcess,
    SingleCore,
    Kernel,
}

/// What forwards the packets in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forwarder {
    Rvsd,
    Testpmd,
    Kernel,
}

/// rvsd's forwarding method for the benchmark service (testpmd and the
/// kernel ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forward {
    /// NAT (`forward = "masq"`): the destination becomes RIP:port.
    Nat,
    /// Direct routing (`"route"`): only the MACs change.
    Dr,
    /// IP-in-IP (`"tunnel"`): an outer IPv4 header DIP -> RIP.
    Tun,
    /// `"fullnat"`: the source becomes a local address (LIP) too.
    FullNat,
}

/// What a case's headline figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Packets forwarded per second, in millions.
    Mpps,
    /// New connections per second, in millions.
    MillionConnections,
}

/// One row of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub name: &'static str,
    pub harness: Harness,
    pub profile: Profile,
    pub flows: u64,
    /// Whether the server side answers (replies travel back through the
    /// forwarder).
    pub respond: bool,
    pub metric: Metric,
    /// Packets per second the generator originates; 0: as fast as it can.
    pub rate_pps: u64,
    pub forward: Forward,
    /// rvsd's workers (`[dataplane] workers`), and queue pairs per port.
    pub workers: u16,
    /// How the generator spreads flows over the queues (several workers).
    pub steering: Steering,
    /// Whether `--quick` runs the case (the full run and `--smoke` run
    /// every case).
    pub quick: bool,
}

impl Case {
    /// The forwarder rvsd is compared with.
    pub fn reference(&self) -> Forwarder {
        match self.harness {
            Harness::CrossProcess | Harness::SingleCore => Forwarder::Testpmd,
            Harness::Kernel => Forwarder::Kernel,
        }
    }

    /// The case that differs from this one only by having one worker, the
    /// base of its scaling ratio (for cases with several workers).
    pub fn one_worker(&self) -> Option<&'static Case> {
        if self.workers <= 1 {
            return None;
        }
        CASES.iter().find(|other| {
            other.workers == 1
                && other.harness == self.harness
                && other.profile == self.profile
                && other.flows == self.flows
                && other.respond == self.respond
                && other.rate_pps == self.rate_pps
                && other.forward == self.forward
        })
    }
}

const fn nat(name: &'static str, harness: Harness, flows: u64) -> Case {
    Case {
        name,
        harness,
        profile: Profile::Udp,
        flows,
        respond: false,
        metric: Metric::Mpps,
        rate_pps: 0,
        forward: Forward::Nat,
        workers: 1,
        steering: Steering::Hash,
        quick: true,
    }
}

/// A cross-process case of 1 000 UDP flows with forwarding method
/// `forward`.
const fn mode(name: &'static str, forward: Forward) -> Case {
    Case {
        forward,
        ..nat(name, Harness::CrossProcess, 1_000)
    }
}

/// The 1 000-flow NAT case with `workers` rvsd workers.
const fn workers(name: &'static str, workers: u16, steering: Steering) -> Case {
    Case {
        workers,
        steering,
        ..nat(name, Harness::CrossProcess, 1_000)
    }
}

const fn cps(name: &'static str, profile: Profile) -> Case {
    Case {
        name,
        harness: Harness::CrossProcess,
        profile,
        // New tuples per round; tuples march through the client space.
        flows: 1_000_000,
        respond: true,
        metric: Metric::MillionConnections,
        rate_pps: 0,
        forward: Forward::Nat,
        workers: 1,
        steering: Steering::Hash,
        quick: true,
    }
}

/// Every case, in the order they run and print.
pub const CASES: &[Case] = &[
    nat("nat, 1 flow, cross-process", Harness::CrossProcess, 1),
    nat("nat, 1k flows, cross-process", Harness::CrossProcess, 1_000),
    // Flows spread over the queues blind to rvsd's owners, as RSS on a
    // NIC: about half of the packets are handed to the other worker.
    workers("nat, 1k flows, cross-process, 2 workers", 2, Steering::Hash),
    // Each flow delivered to its owner, as a NIC whose RSS matches
    // ownership: no hand-offs.
    Case {
        quick: false,
        ..workers(
            "nat, 1k flows, cross-process, 2 workers, owner steering",
            2,
            Steering::Owner,
        )
    },
    // --quick runs TUN (the mode that changes the frame most) of these.
    Case {
        quick: false,
        ..mode("dr, 1k flows, cross-process", Forward::Dr)
    },
    mode("tun, 1k flows, cross-process", Forward::Tun),
    Case {
        quick: false,
        ..mode("fullnat, 1k flows, cross-process", Forward::FullNat)
    },
    nat(
        "nat, 1M flows, cross-process",
        Harness::CrossProcess,
        1_000_000,
    ),
    // Below saturation, so that the latency is the forwarder's and not
    // the time packets queue in full rings.
    Case {
        rate_pps: 1_000_000,
        ..nat(
            "nat, 1k flows, cross-process, at 1 Mpps",
            Harness::CrossProcess,
            1_000,
        )
    },
    nat("nat, 1 flow, single core", Harness::SingleCore, 1),
    nat("nat, 1k flows, single core", Harness::SingleCore, 1_000),
    nat("nat, 1M flows, single core", Harness::SingleCore, 1_000_000),
    cps("new conns, syn, cross-process", Profile::Syn),
    cps("new conns, handshake, cross-process", Profile::Handshake),
    // Unpaced, like the others: the kernel batches under load, and its
    // rate per core then matches what DPDK's own tools measured here.
    nat("nat, 1k flows, kernel peer (veth)", Harness::Kernel, 1_000),
];

/// How long and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// At least 3 pairs of 10 s.
    Full,
    /// 1 pair of 2 s per case, the cases marked `quick`: under 2
    /// minutes.
    Quick,
    /// About a second per run, flows capped at 10 000: checks only that
    /// every run carried traffic and produced a well-formed summary.
    Smoke,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub pairs: usize,
    pub duration: Duration,
    /// Only the cases whose name contains this.
    pub filter: Option<String>,
    pub binaries: Binaries,
    pub out_dir: PathBuf,
}

impl Options {
    /// The defaults of a mode.
    pub fn for_mode(mode: Mode, binaries: Binaries, out_dir: PathBuf) -> Options {
        let (pairs, duration) = match mode {
            Mode::Full => (3, Duration::from_secs(10)),
            Mode::Quick => (1, Duration::from_secs(2)),
            Mode::Smoke => (1, Duration::from_millis(500)),
        };
        Options {
            mode,
            pairs,
            duration,
            filter: None,
            binaries,
            out_dir,
        }
    }

    /// The flows a case runs with in this mode.
    pub fn flows(&self, case: &Case) -> u64 {
        match self.mode {
            Mode::Smoke => case.flows.min(10_000),
            Mode::Full | Mode::Quick => case.flows,
        }
    }
}

/// One run of one forwarder on one case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub case: String,
    pub forwarder: Forwarder,
    pub pair: usize,
    /// The case's metric (Mpps or million connections per second); for
    /// the kernel harness, per core of forwarding work.
    pub figure: Option<f64>,
    /// What arrived per second without normalisation, in millions.
    pub raw_mpps: Option<f64>,
    pub loss_ratio: Option<f64>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    /// TSC cycles per forwarded packet of the forwarding core.
    pub cycles_per_packet: Option<f64>,
    /// How the cycles were counted.
    pub cycles_source: Option<String>,
    /// The generator's JSON summary, when the harness has a generator.
    pub summary: Option<Summary>,
    /// rvsd's `rvsadm -L --workers --json`, when rvsd ran.
    pub workers: Option<serde_json::Value>,
    /// rvsd's packets handed from one worker to another (`hand_off_sent`)
    /// per packet it transmitted, over the whole run (warm-up included),
    /// from `workers`.
    pub hand_offs_per_packet: Option<f64>,
    /// Packets dropped because a hand-off ring was full.
    pub hand_off_drops: Option<u64>,
    pub error: Option<String>,
}

impl Run {
    fn failed(case: &Case, forwarder: Forwarder, pair: usize, error: String) -> Run {
        Run {
            case: case.name.to_owned(),
            forwarder,
            pair,
            figure: None,
            raw_mpps: None,
            loss_ratio: None,
            p50_ns: None,
            p99_ns: None,
            cycles_per_packet: None,
            cycles_source: None,
            summary: None,
            workers: None,
            hand_offs_per_packet: None,
            hand_off_drops: None,
            error: Some(error),
        }
    }

    /// Whether the run carried traffic and (where there is a generator)
    /// produced a summary.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.figure.is_some_and(|figure| figure > 0.0)
    }
}

/// Runs the selected cases, reference first in each pair; `progress`
/// hears about each run as it ends.
pub fn run_all(options: &Options, mut progress: impl FnMut(&Run)) -> Report {
    let tsc_hz = harness::tsc_hz();
    let cases: Vec<Case> = CASES
        .iter()
        .filter(|case| case.quick || options.mode != Mode::Quick || options.filter.is_some())
        .filter(|case| {
            options
                .filter
                .as_ref()
                .is_none_or(|filter| case.name.contains(filter.as_str()))
        })
        .copied()
        .collect();
    let mut runs = Vec::new();
    for case in &cases {
        for pair in 0..options.pairs {
            for forwarder in [case.reference(), Forwarder::Rvsd] {
                // One retry: a memif connection now and then fails to come
                // up on this machine; a second failure is reported.
                let run = harness::run(options, case, forwarder, pair, tsc_hz)
                    .or_else(|_| harness::run(options, case, forwarder, pair, tsc_hz))
                    .unwrap_or_else(|error| Run::failed(case, forwarder, pair, error));
                progress(&run);
                runs.push(run);
            }
        }
    }
    Report::new(options, tsc_hz, cases, runs)
}
