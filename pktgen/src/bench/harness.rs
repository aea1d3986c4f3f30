//! Running one forwarder on one case: processes, their configurations,
//! network namespaces for the kernel peer, and turning what they report
//! into a [`Run`].
//!
//! CPU placement (2 vCPUs): the generator is EAL lcore 0 on CPU 0; the
//! forwarder's main lcore (control thread, mostly asleep) shares CPU 0 and
//! its forwarding lcore is CPU 1 (rvsd `-l 0,1`, testpmd `--lcores
//! 0@0,1@1`); with N workers, the N forwarding lcores all share CPU 1
//! (`--lcores 0@0,(1-N)@1`, for rvsd and testpmd alike); the kernel
//! router's receive work is steered to CPU 1 (RPS).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Case, Forward, Forwarder, Harness, Metric, Options, Run};
use crate::flows::Steering;
use crate::packet::Profile;
use crate::summary::Summary;

/// The programs the harnesses run.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub pktgen: PathBuf,
    pub rvsd: PathBuf,
    pub rvsadm: PathBuf,
    pub testpmd: PathBuf,
}

impl Binaries {
    /// rvs's binaries from `dir` (target/release), testpmd from PATH.
    pub fn in_dir(dir: &Path) -> Binaries {
        Binaries {
            pktgen: dir.join("rvs-pktgen"),
            rvsd: dir.join("rvsd"),
            rvsadm: dir.join("rvsadm"),
            testpmd: PathBuf::from("dpdk-testpmd"),
        }
    }
}

/// Something a run needs that is missing, with how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisite(pub String);

/// Everything missing for the harnesses: root, binaries, tools,
/// hugepages.
pub fn check_prerequisites(binaries: &Binaries) -> Vec<Prerequisite> {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push(Prerequisite(
            "root (DPDK, hugepages, network namespaces)".to_owned(),
        ));
    }
    for path in [&binaries.pktgen, &binaries.rvsd, &binaries.rvsadm] {
        if !path.is_file() {
            missing.push(Prerequisite(format!(
                "{} (cargo build --release --workspace --bins)",
                path.display()
            )));
        }
    }
    for (program, package) in [
        (binaries.testpmd.to_string_lossy().into_owned(), "dpdk"),
        ("ip".to_owned(), "iproute2"),
        ("nft".to_owned(), "nftables"),
        ("ethtool".to_owned(), "ethtool"),
    ] {
        if !on_path(&program) {
            missing.push(Prerequisite(format!(
                "{program} (apt-get install {package})"
            )));
        }
    }
    let free = fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free < MIN_FREE_HUGEPAGES {
        missing.push(Prerequisite(format!(
            "{MIN_FREE_HUGEPAGES} free 2 MiB hugepages, {free} free (scripts/setup-hugepages.sh {})",
            MIN_FREE_HUGEPAGES * 2
        )));
    }
    missing
}

/// The generator (256 MiB) and a forwarder (up to 1 GiB for a million
/// replayed frames) at once.
const MIN_FREE_HUGEPAGES: u64 = 768;

fn on_path(program: &str) -> bool {
    let path = Path::new(program);
    if path.is_absolute() {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        || Path::new("/usr/sbin").join(program).is_file()
}

/// The address plan, shared by every harness (as in the lab and the
/// example configuration).
const VIP: &str = "198.18.0.10";
const VIP_PORT: u16 = 80;
const WAN_ADDRESS: &str = "198.18.0.1";
const DIP: &str = "198.18.1.1";
const CLIENT_GATEWAY: &str = "198.18.0.2";
const CLIENTS: &str = "198.19.0.0/16";
const REAL_SERVERS: [&str; 2] = ["198.18.1.11", "198.18.1.12"];
/// FULLNAT's local address (LIP), on the real servers' side.
const LOCAL_ADDRESS: &str = "198.18.1.100";
/// MACs given to the memif ports, so that no side needs ARP.
const GEN_CLIENT_MAC: &str = "02:00:00:00:00:02";
const GEN_SERVER_MAC: &str = "02:00:00:00:01:02";
const FWD_WAN_MAC: &str = "02:00:00:00:00:01";
const FWD_LAN_MAC: &str = "02:00:00:00:01:01";
/// The single-core harness's sink: net_null, which otherwise also
/// receives (64-byte zero frames, as fast as it is polled).
const SINK: &str = "net_null0,no-rx=1";
/// net_pcap's MAC for its first port, where the replay arrives.
const PCAP_MAC: &str = "02:70:63:61:70:00";

/// Time for processes to start and settle, on top of the measurement.
const SETUP: Duration = Duration::from_secs(40);
/// Seconds a single-core forwarder runs before its rate is read.
const SINGLE_CORE_WARMUP: Duration = Duration::from_secs(2);

/// TSC ticks per second, measured against the wall clock (the same
/// counter DPDK reads, so cycles from any process compare).
pub(super) fn tsc_hz() -> u64 {
    let (start, wall) = (dpdk_bind::tsc(), Instant::now());
    std::thread::sleep(Duration::from_millis(200));
    let cycles = dpdk_bind::tsc() - start;
    (cycles as f64 / wall.elapsed().as_secs_f64()) as u64
}

/// Runs one forwarder on one case.
pub(super) fn run(
    options: &Options,
    case: &Case,
    forwarder: Forwarder,
    pair: usize,
    tsc_hz: u64,
) -> Result<Run, String> {
    let dir = Scratch::new(case, forwarder, pair, &options.out_dir)?;
    let mut run = match case.harness {
        Harness::CrossProcess => cross_process(options, case, forwarder, &dir)?,
        Harness::SingleCore => single_core(options, case, forwarder, &dir, tsc_hz)?,
        Harness::Kernel => kernel_peer(options, case, forwarder, &dir, tsc_hz)?,
    };
    run.pair = pair;
    Ok(run)
}

/// A run's scratch directory (configurations, logs), kept under the
/// output directory for post-mortems, and where its sockets go.
struct Scratch {
    path: PathBuf,
    /// A short unique id for EAL file prefixes and namespaces.
    id: String,
    /// A short directory for Unix sockets, whose paths must fit in
    /// `sun_path` (108 bytes): one per process.
    sockets: PathBuf,
    /// This run's number in the process, in its sockets' names, so that
    /// no run meets a socket of the one before.
    run: u32,
}

/// Runs started by this process.
static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Scratch {
    fn new(case: &Case, forwarder: Forwarder, pair: usize, out: &Path) -> Result<Scratch, String> {
        let slug: String = case
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = out
            .join("runs")
            .join(format!("{slug}-{forwarder:?}-{pair}").to_lowercase());
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let id = format!("rb{}", std::process::id() % 100_000);
        let sockets = std::env::temp_dir().join(format!("rvs-bench-{id}"));
        fs::create_dir_all(&sockets).map_err(|e| format!("{}: {e}", sockets.display()))?;
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Scratch {
            path,
            id,
            sockets,
            run,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.sockets.join(format!("{}-{name}", self.run))
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.file(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for name in ["wan.sock", "lan.sock", "rvsd.sock"] {
            let _ = fs::remove_file(self.socket(name));
        }
        // Only if empty.
        let _ = fs::remove_dir(&self.sockets);
    }
}

/// A child process, stopped (SIGINT, then SIGKILL) when dropped.
struct Process {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Process {
    fn spawn(
        name: &'static str,
        mut command: Command,
        stdout: Option<&Path>,
        log: PathBuf,
    ) -> Result<Process, String> {
        let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let out = match stdout {
            Some(path) => {
                Stdio::from(fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => Stdio::from(
                log_file
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", log.display()))?,
            ),
        };
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::from(log_file));
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({command:?}): {e}"))?;
        Ok(Process { child, name, log })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit; kills it after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "{} did not finish within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT (DPDK programs stop cleanly on it), then SIGKILL after 5 s.
    fn stop(&mut self) {
        if !self.running() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut tail = format!("--- {} ({}) ---\n", self.name, self.log.display());
        for line in &lines[lines.len().saturating_sub(15)..] {
            let _ = writeln!(tail, "{line}");
        }
        tail
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

fn pktgen_args(options: &Options, case: &Case, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--profile",
        profile_name(case.profile),
        "--client-port",
        "net_client",
        "--server-port",
        "net_server",
        "--vip",
        &format!("{VIP}:{VIP_PORT}"),
        "--clients",
        CLIENTS,
        "--client-address",
        CLIENT_GATEWAY,
        "--real-servers",
        &REAL_SERVERS.join(","),
        "--setup-timeout",
        "30",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend([
        "--flows".to_owned(),
        options.flows(case).to_string(),
        "--duration".to_owned(),
        format!("{:.3}", options.duration.as_secs_f64()),
    ]);
    if case.respond {
        args.push("--respond".to_owned());
    }
    if case.rate_pps > 0 {
        args.extend(["--rate".to_owned(), case.rate_pps.to_string()]);
    }
    args.extend_from_slice(extra);
    args
}

fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::Udp => "udp",
        Profile::TcpEstablished => "tcp-established",
        Profile::Syn => "syn",
        Profile::Handshake => "handshake",
    }
}

fn steering_name(steering: Steering) -> &'static str {
    match steering {
        Steering::Hash => "hash",
        Steering::Owner => "owner",
    }
}

fn protocol_name(profile: Profile) -> &'static str {
    if profile.is_tcp() { "tcp" } else { "udp" }
}

/// EAL arguments of a DPDK process of this run.
fn eal_args(dir: &Scratch, role: &str, lcores: &[&str], memory_mb: u32) -> Vec<String> {
    let mut args: Vec<String> = lcores.iter().map(|s| (*s).to_owned()).collect();
    args.extend(
        [
            "--in-memory",
            "--single-file-segments",
            "-m",
            &memory_mb.to_string(),
            "--file-prefix",
            &format!("{}-{role}", dir.id),
            "--no-pci",
            "--no-telemetry",
            "--log-level",
            "*:error",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    args
}

/// rvsd's configuration: two ports, the NAT service over both real
/// servers, static neighbours where the peer's MAC is known, the clients
/// behind the generator's client side.
struct RvsdConfig<'a> {
    eal: Vec<String>,
    wan_device: String,
    lan_device: String,
    /// The MAC of the generator's client side (the clients' gateway), and
    /// of its server side (the real servers), when known in advance.
    gateway_mac: Option<&'a str>,
    real_server_mac: Option<&'a str>,
    mbufs: u32,
    mbuf_data_room: u16,
    connections: u32,
    protocol: &'static str,
    forward: Forward,
    workers: u16,
    idle: Idle,
    socket: PathBuf,
}

/// rvsd's idle back-off: `idle_polls` empty polls, then a sleep of
/// `idle_sleep_us`.
#[derive(Debug, Clone, Copy)]
struct Idle {
    polls: u32,
    sleep_us: u32,
}

/// Pure polling, as in production: a worker never sleeps.
const POLLING: Idle = Idle {
    polls: 10_000,
    sleep_us: 0,
};

/// Workers that share one CPU: one that found nothing for 64 rounds
/// sleeps (at least the kernel's 50 µs timer slack), which hands the CPU
/// to the other at once. Polling without pause, each would hold the CPU
/// for a scheduler slice of milliseconds while the other's queues and
/// hand-off ring overflow (0.1 to 0.2 Mpps in trial runs).
const SHARED_CPU_IDLE: Idle = Idle {
    polls: 64,
    sleep_us: 1,
};

impl RvsdConfig<'_> {
    fn render(&self) -> String {
        let quoted: Vec<String> = self.eal.iter().map(|arg| format!("{arg:?}")).collect();
        let mut text = format!(
            r#"[eal]
args = [{eal}]

[dataplane]
workers = {workers}
mbufs = {mbufs}
mbuf_data_room = {data_room}
connections_per_worker = {connections}
idle_sleep_us = {idle_sleep_us}
idle_polls = {idle_polls}

[control]
socket = "{socket}"

[[ports]]
name = "wan"
device = "{wan}"
addresses = ["{WAN_ADDRESS}/24"]

[[ports]]
name = "lan"
device = "{lan}"
addresses = ["{DIP}/24"]

[[routes]]
destination = "{CLIENTS}"
gateway = "{CLIENT_GATEWAY}"
"#,
            eal = quoted.join(", "),
            workers = self.workers,
            idle_sleep_us = self.idle.sleep_us,
            idle_polls = self.idle.polls,
            mbufs = self.mbufs,
            data_room = self.mbuf_data_room,
            connections = self.connections,
            socket = self.socket.display(),
            wan = self.wan_device,
            lan = self.lan_device,
        );
        if let Some(mac) = self.gateway_mac {
            let _ = write!(
                text,
                "\n[[neighbours]]\naddress = \"{CLIENT_GATEWAY}\"\nmac = \"{mac}\"\nport = \"wan\"\n"
            );
        }
        if let Some(mac) = self.real_server_mac {
            for rs in REAL_SERVERS {
                let _ = write!(
                    text,
                    "\n[[neighbours]]\naddress = \"{rs}\"\nmac = \"{mac}\"\nport = \"lan\"\n"
                );
            }
        }
        if self.forward == Forward::FullNat {
            let _ = write!(
                text,
                "\n[fullnat]\nlocal_addresses = [\"{LOCAL_ADDRESS}\"]\n"
            );
        }
        let forward = match self.forward {
            Forward::Nat => "masq",
            Forward::Dr => "route",
            Forward::Tun => "tunnel",
            Forward::FullNat => "fullnat",
        };
        let _ = write!(
            text,
            "\n[[services]]\nprotocol = \"{}\"\naddress = \"{VIP}:{VIP_PORT}\"\nscheduler = \"rr\"\nreal_servers = [{}]\n",
            self.protocol,
            REAL_SERVERS
                .iter()
                .map(|rs| format!("{{ address = \"{rs}:{VIP_PORT}\", forward = \"{forward}\" }}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        text
    }
}

/// Connection table entries: room for the flows (twice, for the hash) or
/// for the connection profiles' stream of new tuples; full tables evict.
fn connections_for(flows: u64) -> u32 {
    (flows.saturating_mul(2)).clamp(65_536, 2_097_152) as u32
}

/// Starts rvsd and waits for its control socket.
fn start_rvsd(
    options: &Options,
    dir: &Scratch,
    config: &RvsdConfig<'_>,
    netns: Option<&str>,
) -> Result<Process, String> {
    let path = dir.write("rvsd.toml", &config.render())?;
    let mut command = in_netns(netns, &options.binaries.rvsd);
    command.arg("--config").arg(&path).env("RVS_LOG", "warn");
    let mut rvsd = Process::spawn("rvsd", command, None, dir.file("rvsd.log"))?;
    let socket = config.socket.clone();
    let ready = wait_until(SETUP, || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok() || !rvsd.running()
    });
    if !ready || !rvsd.running() {
        return Err(format!("rvsd did not start\n{}", rvsd.log_tail()));
    }
    Ok(rvsd)
}

/// A command, inside network namespace `netns` when given.
fn in_netns(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// rvsd's workers, as `rvsadm -L --workers --json` prints them.
fn rvsd_workers(options: &Options, socket: &Path) -> Result<serde_json::Value, String> {
    let mut command = Command::new(&options.binaries.rvsadm);
    command
        .args(["-L", "--workers", "--json", "--socket"])
        .arg(socket);
    let stdout = command_output(command, "rvsadm -L --workers --json")?;
    serde_json::from_slice(&stdout).map_err(|e| format!("rvsadm --workers --json: {e}"))
}

/// Runs `command` to completion and returns its stdout, or an error
/// naming `what` with its stderr.
fn command_output(mut command: Command, what: &str) -> Result<Vec<u8>, String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

/// Sums a counter over rvsd's workers: a field of each worker, or an
/// entry of its `drops` or `events`.
fn worker_sum(workers: &serde_json::Value, field: &str) -> u64 {
    let value = |worker: &serde_json::Value| {
        [
            worker.get(field),
            worker.get("drops").and_then(|d| d.get(field)),
            worker.get("events").and_then(|e| e.get(field)),
        ]
        .into_iter()
        .flatten()
        .find_map(serde_json::Value::as_u64)
    };
    workers
        .as_array()
        .map(|all| all.iter().filter_map(value).sum())
        .unwrap_or(0)
}

/// Packets handed to another worker per packet transmitted, over rvsd's
/// life, from `rvsadm -L --workers --json`.
fn hand_offs_per_packet(workers: &serde_json::Value) -> Option<f64> {
    let transmitted = worker_sum(workers, "tx_packets");
    (transmitted > 0).then(|| worker_sum(workers, "hand_off_sent") as f64 / transmitted as f64)
}

/// Busy cycles per received packet of rvsd's workers between two
/// `--workers` snapshots (the second alone when `before` is None).
fn rvsd_cycles(before: Option<&serde_json::Value>, after: &serde_json::Value) -> Option<f64> {
    let delta =
        |field| worker_sum(after, field) - before.map_or(0, |before| worker_sum(before, field));
    let (busy, packets) = (delta("busy_cycles"), delta("rx_packets"));
    (busy > 0 && packets > 0).then(|| busy as f64 / packets as f64)
}

/// The run's result from the generator's summary.
fn from_summary(
    case: &Case,
    forwarder: Forwarder,
    summary: Summary,
    workers: Option<serde_json::Value>,
) -> Run {
    let forwarded = summary.forwarded_pps();
    let figure = match case.metric {
        Metric::Mpps => Some(forwarded / 1e6),
        Metric::MillionConnections => summary.connections_per_second.map(|cps| cps / 1e6),
    };
    let rvsd_cycles = workers.as_ref().and_then(|w| rvsd_cycles(None, w));
    let (cycles, source) = match rvsd_cycles {
        Some(cycles) => (Some(cycles), "rvsd worker busy cycles / rx packets"),
        None => (
            (forwarded > 0.0).then(|| summary.tsc_hz as f64 / forwarded),
            "TSC Hz / forwarded pps (a saturated core)",
        ),
    };
    Run {
        case: case.name.to_owned(),
        forwarder,
        pair: 0,
        figure,
        raw_mpps: Some(forwarded / 1e6),
        loss_ratio: Some(summary.loss.ratio),
        p50_ns: summary.latency.one_way.p50_ns,
        p99_ns: summary.latency.one_way.p99_ns,
        cycles_per_packet: cycles,
        cycles_source: Some(source.to_owned()),
        summary: Some(summary),
        hand_offs_per_packet: workers.as_ref().and_then(hand_offs_per_packet),
        hand_off_drops: workers
            .as_ref()
            .map(|w| worker_sum(w, "hand_off_ring_full")),
        workers,
        error: None,
    }
}

/// Reads the generator's JSON summary.
fn read_summary(path: &Path, generator: &Process) -> Result<Summary, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("rvs-pktgen's summary: {e}\n{}", generator.log_tail()))
}

/// Waits for the generator to finish and checks that it succeeded.
fn finish_generator(
    generator: &mut Process,
    options: &Options,
    summary: &Path,
) -> Result<Summary, String> {
    let status = generator.wait(options.duration + SETUP + Duration::from_secs(30))?;
    if !status.success() {
        return Err(format!(
            "rvs-pktgen failed ({status})\n{}",
            generator.log_tail()
        ));
    }
    read_summary(summary, generator)
}

/// Waits for the generator's summary while its ports linger (see
/// `rvs-pktgen --linger`), so that the forwarder can be stopped before the
/// generator: memif clients can crash when their server goes away under
/// them (seen here: rvsd's worker in net_memif's receive path).
fn await_summary(
    generator: &mut Process,
    options: &Options,
    summary: &Path,
) -> Result<Summary, String> {
    let deadline = Instant::now() + options.duration + SETUP + Duration::from_secs(30);
    loop {
        let parsed = fs::read_to_string(summary)
            .ok()
            .and_then(|text| serde_json::from_str::<Summary>(&text).ok());
        if let Some(parsed) = parsed {
            return Ok(parsed);
        }
        if let Ok(Some(status)) = generator.child.try_wait() {
            if !status.success() {
                return Err(format!(
                    "rvs-pktgen failed ({status})\n{}",
                    generator.log_tail()
                ));
            }
            return read_summary(summary, generator);
        }
        if Instant::now() > deadline {
            generator.stop();
            return Err(format!(
                "rvs-pktgen gave no summary in time\n{}",
                generator.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds the generator's ports stay up after its summary at most; the
/// harness stops it sooner.
const LINGER_S: &str = "60";

fn cross_process(
    options: &Options,
    case: &Case,
    forwarder: Forwarder,
    dir: &Scratch,
) -> Result<Run, String> {
    let (wan, lan) = (dir.socket("wan.sock"), dir.socket("lan.sock"));
    let mut eal = eal_args(dir, "gen", &["-l", "0"], 256);
    eal.push(format!(
        "--vdev=net_memif0,role=server,socket={},mac={GEN_CLIENT_MAC}",
        wan.display()
    ));
    eal.push(format!(
        "--vdev=net_memif1,role=server,socket={},mac={GEN_SERVER_MAC}",
        lan.display()
    ));
    // testpmd answers no ARP: address its port directly. A queue pair
    // per worker on both ends of every memif port.
    let mut extra = vec![
        "--vip-mac".to_owned(),
        FWD_WAN_MAC.to_owned(),
        "--linger".to_owned(),
        LINGER_S.to_owned(),
    ];
    if case.workers > 1 {
        extra.extend([
            "--queues".to_owned(),
            case.workers.to_string(),
            "--steering".to_owned(),
            steering_name(case.steering).to_owned(),
        ]);
    }
    let (mut generator, summary_path) = spawn_generator(
        options,
        case,
        dir,
        None,
        ["net_memif0", "net_memif1"],
        &extra,
        &eal,
    )?;
    // memif sockets are abstract (no file): the generator says when its
    // ports are up and waiting for the forwarder.
    let log = dir.file("pktgen.log");
    let listening = wait_until(SETUP, || {
        fs::read_to_string(&log).is_ok_and(|text| text.contains("waiting for the links"))
            || !generator.running()
    });
    if !listening || !generator.running() {
        return Err(format!(
            "rvs-pktgen did not start\n{}",
            generator.log_tail()
        ));
    }
    let client = |socket: &Path, mac: &str, index: u8| {
        format!(
            "net_memif{index},role=client,socket={},zero-copy=yes,mac={mac}",
            socket.display()
        )
    };
    let (wan_device, lan_device) = (client(&wan, FWD_WAN_MAC, 0), client(&lan, FWD_LAN_MAC, 1));
    match forwarder {
        Forwarder::Testpmd => {
            // One forwarding lcore on CPU 1, polling every queue pair:
            // what one CPU forwards from these ports.
            let mut eal = eal_args(dir, "fwd", &["--lcores", "0@0,1@1"], 256);
            eal.push(format!("--vdev={wan_device}"));
            eal.push(format!("--vdev={lan_device}"));
            let queues = [
                format!("--rxq={}", case.workers),
                format!("--txq={}", case.workers),
            ];
            let extra: Vec<&str> = if case.workers > 1 {
                queues.iter().map(String::as_str).collect()
            } else {
                Vec::new()
            };
            let mut testpmd = start_testpmd(options, dir, &eal, "io", &extra)?;
            let summary = await_summary(&mut generator, options, &summary_path)?;
            testpmd.stop();
            generator.stop();
            Ok(from_summary(case, forwarder, summary, None))
        }
        Forwarder::Rvsd => {
            let socket = dir.socket("rvsd.sock");
            // The main lcore on CPU 0, every worker's lcore on CPU 1;
            // several workers there yield to each other when idle.
            let (eal, idle) = if case.workers > 1 {
                let lcores = format!("0@0,(1-{})@1", case.workers);
                (
                    eal_args(dir, "fwd", &["--lcores", &lcores], 512),
                    SHARED_CPU_IDLE,
                )
            } else {
                (eal_args(dir, "fwd", &["-l", "0,1"], 512), POLLING)
            };
            let config = RvsdConfig {
                eal,
                wan_device,
                lan_device,
                gateway_mac: Some(GEN_CLIENT_MAC),
                real_server_mac: Some(GEN_SERVER_MAC),
                mbufs: 16383,
                mbuf_data_room: 2176,
                connections: connections_for(options.flows(case)),
                protocol: protocol_name(case.profile),
                forward: case.forward,
                workers: case.workers.max(1),
                idle,
                socket: socket.clone(),
            };
            let mut rvsd = start_rvsd(options, dir, &config, None)?;
            let summary = await_summary(&mut generator, options, &summary_path)?;
            let workers = rvsd_workers(options, &socket);
            let exited = rvsd.child.try_wait().ok().flatten();
            rvsd.stop();
            generator.stop();
            if let Some(status) = exited {
                return Err(format!(
                    "rvsd stopped during the run ({status})\n{}",
                    rvsd.log_tail()
                ));
            }
            Ok(from_summary(case, forwarder, summary, workers.ok()))
        }
        Forwarder::Kernel => Err("the cross-process harness has no kernel forwarder".to_owned()),
    }
}

/// Starts rvs-pktgen for `case` on the DPDK ports `ports` (client side
/// first), in `netns` if given; its summary goes to the returned path,
/// its progress to pktgen.log.
fn spawn_generator(
    options: &Options,
    case: &Case,
    dir: &Scratch,
    netns: Option<&str>,
    ports: [&str; 2],
    extra: &[String],
    eal: &[String],
) -> Result<(Process, PathBuf), String> {
    let mut args = pktgen_args(options, case, extra);
    rename_ports(&mut args, ports[0], ports[1]);
    let mut command = in_netns(netns, &options.binaries.pktgen);
    command.args(&args).arg("--").args(eal);
    let summary = dir.file("summary.json");
    let generator = Process::spawn(
        "rvs-pktgen",
        command,
        Some(&summary),
        dir.file("pktgen.log"),
    )?;
    Ok((generator, summary))
}

/// Points the generator's `--client-port`/`--server-port` at DPDK names.
fn rename_ports(args: &mut [String], client: &str, server: &str) {
    for arg in args.iter_mut() {
        if arg == "net_client" {
            *arg = client.to_owned();
        } else if arg == "net_server" {
            *arg = server.to_owned();
        }
    }
}

/// Starts testpmd forwarding in `mode` (non-interactive: with a stats
/// period it runs until SIGINT instead of reading stdin).
fn start_testpmd(
    options: &Options,
    dir: &Scratch,
    eal: &[String],
    mode: &str,
    extra: &[&str],
) -> Result<Process, String> {
    let mut command = Command::new(&options.binaries.testpmd);
    command.args(eal).arg("--").args([
        &format!("--forward-mode={mode}"),
        "--auto-start",
        "--no-mlockall",
        "--stats-period",
        "1",
    ]);
    command.args(extra);
    let mut testpmd = Process::spawn("dpdk-testpmd", command, None, dir.file("testpmd.log"))?;
    std::thread::sleep(Duration::from_millis(300));
    if !testpmd.running() {
        return Err(format!("dpdk-testpmd stopped\n{}", testpmd.log_tail()));
    }
    Ok(testpmd)
}

fn single_core(
    options: &Options,
    case: &Case,
    forwarder: Forwarder,
    dir: &Scratch,
    tsc_hz: u64,
) -> Result<Run, String> {
    let flows = options.flows(case);
    let pcap = options
        .out_dir
        .join(format!("{}-{flows}.pcap", profile_name(case.profile)));
    if !pcap.is_file() {
        let mut command = Command::new(&options.binaries.pktgen);
        command.arg("--write-pcap").arg(&pcap).args(pktgen_args(
            options,
            case,
            &[
                "--quiet".to_owned(),
                "--vip-mac".to_owned(),
                PCAP_MAC.to_owned(),
            ],
        ));
        command_output(command, "rvs-pktgen --write-pcap")?;
    }
    let replay = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    // The replay holds every frame in the pool: room for them, the rings
    // and the bursts, in small buffers.
    let mbufs = u32::try_from((flows + 32_768).next_power_of_two() - 1).unwrap_or(u32::MAX);
    let memory = 512 + (u64::from(mbufs) * 512 / (1 << 20)) as u32;
    match forwarder {
        Forwarder::Testpmd => {
            let mut eal = eal_args(dir, "fwd", &["--lcores", "0@0,1@1"], memory);
            eal.push(format!("--vdev={replay}"));
            eal.push(format!("--vdev={SINK}"));
            let mbuf_args = [
                format!("--total-num-mbufs={mbufs}"),
                "--mbuf-size=256".to_owned(),
            ];
            let extra: Vec<&str> = mbuf_args.iter().map(String::as_str).collect();
            let mut testpmd = start_testpmd(options, dir, &eal, "5tswap", &extra)?;
            std::thread::sleep(SINGLE_CORE_WARMUP + options.duration);
            testpmd.stop();
            let log = fs::read_to_string(dir.file("testpmd.log")).unwrap_or_default();
            let pps = testpmd_tx_pps(&log, 1, options.duration)
                .ok_or_else(|| format!("no rate in testpmd's output\n{}", testpmd.log_tail()))?;
            Ok(measured(
                case,
                forwarder,
                pps,
                tsc_hz as f64 / pps,
                "TSC Hz / pps (a saturated core)",
                None,
            ))
        }
        Forwarder::Rvsd => {
            let socket = dir.socket("rvsd.sock");
            let config = RvsdConfig {
                eal: eal_args(dir, "fwd", &["-l", "0,1"], memory),
                wan_device: replay,
                lan_device: SINK.to_owned(),
                gateway_mac: Some(GEN_CLIENT_MAC),
                real_server_mac: Some(GEN_SERVER_MAC),
                mbufs,
                mbuf_data_room: 256,
                connections: connections_for(flows),
                protocol: protocol_name(case.profile),
                forward: case.forward,
                workers: 1,
                idle: POLLING,
                socket: socket.clone(),
            };
            let mut rvsd = start_rvsd(options, dir, &config, None)?;
            std::thread::sleep(SINGLE_CORE_WARMUP);
            let before = rvsd_workers(options, &socket)?;
            let start = Instant::now();
            std::thread::sleep(options.duration);
            let after = rvsd_workers(options, &socket)?;
            let seconds = start.elapsed().as_secs_f64();
            rvsd.stop();
            let sent = worker_sum(&after, "tx_packets") - worker_sum(&before, "tx_packets");
            let pps = sent as f64 / seconds;
            let cycles = rvsd_cycles(Some(&before), &after).unwrap_or(tsc_hz as f64 / pps);
            Ok(measured(
                case,
                forwarder,
                pps,
                cycles,
                "rvsd worker busy cycles / rx packets",
                Some(after),
            ))
        }
        Forwarder::Kernel => Err("the single-core harness has no kernel forwarder".to_owned()),
    }
}

/// A run measured from the forwarder's own counters (no generator).
fn measured(
    case: &Case,
    forwarder: Forwarder,
    pps: f64,
    cycles: f64,
    source: &str,
    workers: Option<serde_json::Value>,
) -> Run {
    Run {
        case: case.name.to_owned(),
        forwarder,
        pair: 0,
        figure: Some(pps / 1e6),
        raw_mpps: Some(pps / 1e6),
        loss_ratio: None,
        p50_ns: None,
        p99_ns: None,
        cycles_per_packet: Some(cycles),
        cycles_source: Some(source.to_owned()),
        summary: None,
        hand_offs_per_packet: workers.as_ref().and_then(hand_offs_per_packet),
        hand_off_drops: workers
            .as_ref()
            .map(|w| worker_sum(w, "hand_off_ring_full")),
        workers,
        error: None,
    }
}

/// The median of testpmd's per-second Tx-pps of `port` over the last
/// `duration` (testpmd prints one block per port and period).
fn testpmd_tx_pps(log: &str, port: u16, duration: Duration) -> Option<f64> {
    let header = format!("NIC statistics for port {port} ");
    let mut in_port = false;
    let mut rates = Vec::new();
    for line in log.lines() {
        if line.contains("NIC statistics for port") {
            in_port = line.contains(&header);
        } else if in_port
            && let Some(rest) = line.trim().strip_prefix("Tx-pps:")
            && let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse().ok())
        {
            rates.push(value);
        }
    }
    let keep = (duration.as_secs_f64().round() as usize).max(1);
    let mut last: Vec<f64> = rates[rates.len().saturating_sub(keep)..].to_vec();
    last.retain(|rate| *rate > 0.0);
    median(&mut last)
}

/// The median, or `None` for no values.
pub(super) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Network namespaces, deleted with their processes when dropped.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn new(names: &[String]) -> Result<Namespaces, String> {
        let mut created = Namespaces { names: Vec::new() };
        for name in names {
            // A namespace left behind by a killed run of the same id.
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
            sh(None, &format!("ip netns add {name}"))?;
            created.names.push(name.clone());
            sh(Some(name), "ip link set lo up")?;
        }
        Ok(created)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            if let Ok(output) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs a shell script, in a namespace if given.
fn sh(netns: Option<&str>, script: &str) -> Result<String, String> {
    let mut command = in_netns(netns, Path::new("sh"));
    command.args(["-c", script]);
    let stdout = command_output(command, script)?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// CPU 1's time in interrupts and softirqs in seconds, from /proc/stat
/// (USER_HZ ticks): where the kernel forwards packets (RPS steers the
/// router's receive work there). User and system time are left out, so
/// that other programs on the machine do not count as forwarding.
fn cpu1_softirq_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu1 "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    Some((fields.get(5)? + fields.get(6)?) as f64 / 100.0)
}

/// The kernel peer: a generator namespace with two veths to a router
/// namespace. The router is either the kernel itself (addresses,
/// forwarding, nftables DNAT with numgen over the real servers) or rvsd
/// on net_af_packet ports on the same veths. Both are measured per core:
/// packets forwarded over CPU 1's softirq time (kernel) or over rvsd's busy
/// cycles.
fn kernel_peer(
    options: &Options,
    case: &Case,
    forwarder: Forwarder,
    dir: &Scratch,
    tsc_hz: u64,
) -> Result<Run, String> {
    let (gen_ns, router_ns) = (format!("{}-gen", dir.id), format!("{}-router", dir.id));
    let _namespaces = Namespaces::new(&[gen_ns.clone(), router_ns.clone()])?;
    for (gen_if, router_if) in [("ga", "ra"), ("gb", "rb")] {
        sh(
            None,
            &format!(
                "ip link add {gen_if} netns {gen_ns} type veth peer name {router_if} netns {router_ns}"
            ),
        )?;
        for (ns, interface) in [(&gen_ns, gen_if), (&router_ns, router_if)] {
            sh(
                Some(ns),
                &format!(
                    "ethtool -K {interface} rx off tx off tso off gso off gro off >/dev/null; \
                     sysctl -qw net.ipv6.conf.{interface}.disable_ipv6=1; ip link set {interface} up"
                ),
            )?;
        }
    }
    // Frames a veth receives are processed on the sender's CPU unless
    // RPS moves them: the generator's side on CPU 0, and for the kernel
    // router its forwarding work on CPU 1 (where rvsd's worker runs in the
    // other run; rvsd reads ra itself, so its frames stay on CPU 0).
    sh(
        Some(&gen_ns),
        "echo 1 > /sys/class/net/gb/queues/rx-0/rps_cpus",
    )?;
    if forwarder == Forwarder::Kernel {
        sh(
            Some(&router_ns),
            "echo 2 > /sys/class/net/ra/queues/rx-0/rps_cpus",
        )?;
    }
    let protocol = protocol_name(case.profile);
    let mut rvsd = None;
    let socket = dir.socket("rvsd.sock");
    match forwarder {
        Forwarder::Kernel => {
            sh(
                Some(&router_ns),
                &format!(
                    "ip addr add {WAN_ADDRESS}/24 dev ra && ip addr add {VIP}/32 dev ra && \
                     ip addr add {DIP}/24 dev rb && sysctl -qw net.ipv4.ip_forward=1 && \
                     ip route add {CLIENTS} via {CLIENT_GATEWAY}"
                ),
            )?;
            let rules = format!(
                "table ip bench {{\n chain prerouting {{\n  type nat hook prerouting priority dstnat;\n  \
                 ip daddr {VIP} {protocol} dport {VIP_PORT} dnat to numgen inc mod 2 map {{ 0 : {}, 1 : {} }}\n }}\n}}\n",
                REAL_SERVERS[0], REAL_SERVERS[1]
            );
            let path = dir.write("nat.nft", &rules)?;
            sh(Some(&router_ns), &format!("nft -f {}", path.display()))?;
        }
        Forwarder::Rvsd => {
            let config = RvsdConfig {
                eal: {
                    let mut eal = eal_args(dir, "fwd", &["-l", "0,1"], 512);
                    // af_packet ports need no shared memory.
                    eal.retain(|arg| arg != "--single-file-segments");
                    eal
                },
                wan_device: "net_af_packet0,iface=ra".to_owned(),
                lan_device: "net_af_packet1,iface=rb".to_owned(),
                gateway_mac: None,
                real_server_mac: None,
                mbufs: 16383,
                mbuf_data_room: 2176,
                connections: connections_for(options.flows(case)),
                protocol,
                forward: case.forward,
                workers: 1,
                idle: POLLING,
                socket: socket.clone(),
            };
            rvsd = Some(start_rvsd(options, dir, &config, Some(&router_ns))?);
        }
        Forwarder::Testpmd => return Err("the kernel harness has no testpmd".to_owned()),
    }
    let mut eal = eal_args(dir, "gen", &["-l", "0"], 256);
    eal.retain(|arg| arg != "--single-file-segments");
    eal.push("--vdev=net_af_packet0,iface=ga".to_owned());
    eal.push("--vdev=net_af_packet1,iface=gb".to_owned());
    let forwarded = || {
        sh(
            Some(&router_ns),
            "cat /sys/class/net/rb/statistics/tx_packets",
        )
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    };
    let (cpu_before, packets_before) = (cpu1_softirq_seconds(), forwarded());
    let workers_before = rvsd
        .as_ref()
        .and_then(|_| rvsd_workers(options, &socket).ok());
    let (mut generator, summary_path) = spawn_generator(
        options,
        case,
        dir,
        Some(&gen_ns),
        ["net_af_packet0", "net_af_packet1"],
        &[],
        &eal,
    )?;
    let summary = finish_generator(&mut generator, options, &summary_path)?;
    let (cpu_after, packets_after) = (cpu1_softirq_seconds(), forwarded());
    let workers = rvsd
        .as_ref()
        .and_then(|_| rvsd_workers(options, &socket).ok());
    if let Some(rvsd) = &mut rvsd {
        rvsd.stop();
    }
    let mut run = from_summary(case, forwarder, summary, workers.clone());
    let raw = run.raw_mpps.unwrap_or(0.0);
    let per_core = match forwarder {
        Forwarder::Rvsd => {
            let cycles = workers
                .as_ref()
                .and_then(|after| rvsd_cycles(workers_before.as_ref(), after));
            run.cycles_per_packet = cycles;
            run.cycles_source = Some("rvsd worker busy cycles / rx packets".to_owned());
            cycles.map(|cycles| tsc_hz as f64 / cycles / 1e6)
        }
        _ => {
            let busy = cpu_after.zip(cpu_before).map(|(a, b)| a - b);
            let packets = packets_after.zip(packets_before).map(|(a, b)| a - b);
            let per_core = busy.zip(packets).and_then(|(busy, packets)| {
                (busy > 0.01 && packets > 0).then(|| packets as f64 / busy)
            });
            run.cycles_per_packet = per_core.map(|pps| tsc_hz as f64 / pps);
            run.cycles_source =
                Some("CPU 1 irq + softirq time (/proc/stat) / forwarded packets".to_owned());
            per_core.map(|pps| pps / 1e6)
        }
    };
    // Per core of forwarding work; the raw rate stays in raw_mpps.
    run.figure = per_core.or(Some(raw));
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testpmd_rates_are_read_per_port() {
        let log = "\
  ######################## NIC statistics for port 0  ########################
  Throughput (since last show)
  Rx-pps:      9000000          Rx-bps:   1
  Tx-pps:            0          Tx-bps:   0
  ######################## NIC statistics for port 1  ########################
  Rx-pps:            0          Rx-bps:   0
  Tx-pps:      8000000          Tx-bps:   1
  ######################## NIC statistics for port 1  ########################
  Tx-pps:      8200000          Tx-bps:   1
  ######################## NIC statistics for port 1  ########################
  Tx-pps:      8400000          Tx-bps:   1
";
        assert_eq!(
            testpmd_tx_pps(log, 1, Duration::from_secs(2)),
            Some(8_300_000.0)
        );
        assert_eq!(testpmd_tx_pps(log, 0, Duration::from_secs(2)), None);
    }

    #[test]
    fn rvsd_config_names_every_part() {
        let config = RvsdConfig {
            eal: vec!["-l".to_owned(), "0,1".to_owned()],
            wan_device: "net_null0".to_owned(),
            lan_device: "net_null1".to_owned(),
            gateway_mac: Some(GEN_CLIENT_MAC),
            real_server_mac: Some(GEN_SERVER_MAC),
            mbufs: 16383,
            mbuf_data_room: 256,
            connections: 65536,
            protocol: "udp",
            forward: Forward::Nat,
            workers: 1,
            idle: POLLING,
            socket: PathBuf::from("/tmp/x.sock"),
        };
        let text = config.render();
        assert!(text.contains("args = [\"-l\", \"0,1\"]"));
        assert!(text.contains("mbuf_data_room = 256"));
        assert_eq!(text.matches("[[neighbours]]").count(), 3);
        assert!(
            text.contains("real_servers = [{ address = \"198.18.1.11:80\", forward = \"masq\" }")
        );
    }

    #[test]
    fn rvsd_config_has_each_forwarding_mode_and_workers() {
        for (forward, key) in [
            (Forward::Nat, "masq"),
            (Forward::Dr, "route"),
            (Forward::Tun, "tunnel"),
            (Forward::FullNat, "fullnat"),
        ] {
            let config = RvsdConfig {
                eal: vec!["--lcores".to_owned(), "0@0,(1-2)@1".to_owned()],
                wan_device: "net_null0".to_owned(),
                lan_device: "net_null1".to_owned(),
                gateway_mac: None,
                real_server_mac: None,
                mbufs: 16383,
                mbuf_data_room: 2176,
                connections: 65536,
                protocol: "udp",
                forward,
                workers: 2,
                idle: SHARED_CPU_IDLE,
                socket: PathBuf::from("/tmp/x.sock"),
            };
            let text = config.render();
            assert!(text.contains("workers = 2\n"), "{text}");
            assert!(
                text.contains("idle_sleep_us = 1\nidle_polls = 64\n"),
                "{text}"
            );
            assert_eq!(
                text.matches(&format!("forward = \"{key}\"")).count(),
                2,
                "{text}"
            );
            assert_eq!(
                text.contains("[fullnat]\nlocal_addresses = [\"198.18.1.100\"]"),
                forward == Forward::FullNat,
                "{text}"
            );
        }
    }

    #[test]
    fn hand_offs_are_read_from_the_workers_events() {
        let workers = serde_json::json!([
            { "index": 0, "tx_packets": 600, "drops": { "hand_off_ring_full": 2 },
              "events": { "hand_off_sent": 300, "hand_off_received": 200 } },
            { "index": 1, "tx_packets": 400, "drops": { "hand_off_ring_full": 1 },
              "events": { "hand_off_sent": 200, "hand_off_received": 300 } },
        ]);
        assert_eq!(worker_sum(&workers, "tx_packets"), 1000);
        assert_eq!(worker_sum(&workers, "hand_off_ring_full"), 3);
        assert_eq!(hand_offs_per_packet(&workers), Some(0.5));
        assert_eq!(hand_offs_per_packet(&serde_json::json!([])), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
