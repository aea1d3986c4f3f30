//! rvsd in a lab: its configuration, its process and log, rvsadm, and the
//! parsing of what rvsadm prints.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::host::{Netns, Process};
use crate::{binary, wait_until};

/// How rvsd should run in the lab.
#[derive(Debug, Clone)]
pub struct RvsdOptions {
    /// `[[services]]` (and other) tables appended to the configuration.
    pub services_toml: String,
    pub connections_per_worker: u32,
    /// Back DPDK's memory with hugepages (reserved beforehand, for example
    /// by scripts/setup-hugepages.sh) instead of `--no-huge`.
    pub hugepages: bool,
    /// Worker lcores, each with its own queue pair on every port. More
    /// than one shares CPU 1 of this small machine (the idle back-off
    /// makes that work).
    pub workers: u16,
    /// Give every port a kernel twin (`kernel_interface = "k<veth>"`), as
    /// in production: the director's addresses then belong to the
    /// director namespace's kernel too (see [`kernel_interface`]).
    pub exception_path: bool,
}

impl Default for RvsdOptions {
    fn default() -> Self {
        RvsdOptions {
            services_toml: String::new(),
            connections_per_worker: 65536,
            hugepages: false,
            workers: 1,
            exception_path: false,
        }
    }
}

/// The kernel twin rvsd creates for the port on veth `interface`.
fn kernel_interface(interface: &str) -> String {
    format!("k{interface}")
}

/// One of rvsd's ports in the lab.
#[derive(Debug, Clone)]
pub(crate) struct PortPlan {
    /// The port's name in the configuration (`wan`, `lan`).
    pub name: &'static str,
    /// The veth in the director namespace that it drives.
    pub interface: &'static str,
    /// `address/prefix`, IPv4 first.
    pub addresses: Vec<String>,
}

/// What rvsd's configuration says about the lab's network.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkPlan {
    pub ports: Vec<PortPlan>,
    /// (destination network, gateway).
    pub routes: Vec<(String, IpAddr)>,
    /// FULLNAT local addresses, `[fullnat] local_addresses`.
    pub local_addresses: Vec<IpAddr>,
}

/// A running rvsd: stopped when dropped, as systemd stops it (SIGTERM,
/// SIGKILL after a while), so EAL cleans up behind it.
#[derive(Debug)]
pub(crate) struct Rvsd {
    process: Process,
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Rvsd {
    /// Writes the configuration into `dir` and starts rvsd in `director`,
    /// with its control socket at `socket` and its output in `log`;
    /// returns once the socket answers.
    pub(crate) fn start(
        director: &Netns,
        dir: &Path,
        (socket, log): (&Path, &Path),
        id: &str,
        network: &NetworkPlan,
        options: &RvsdOptions,
    ) -> Rvsd {
        let config = dir.join("rvsd.toml");
        fs::write(&config, config_text(id, socket, network, options))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        let log_file = fs::File::create(log).unwrap_or_else(|error| panic!("{error}"));
        let mut command = director.command(&binary("rvsd").to_string_lossy());
        command
            .arg("--config")
            .arg(&config)
            .env("RVS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .unwrap_or_else(|error| panic!("{error}")),
            )
            .stderr(log_file);
        let mut process = Process::spawn(command);
        let ready = wait_until(Duration::from_secs(30), || {
            socket.exists() && std::os::unix::net::UnixStream::connect(socket).is_ok()
                || !process.running()
        });
        if !ready || !process.running() {
            panic!(
                "rvsd did not start:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        Rvsd { process }
    }

    pub(crate) fn running(&mut self) -> bool {
        self.process.running()
    }

    /// Sends SIGHUP: rvsd rereads its configuration file.
    pub(crate) fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.process.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "cannot send SIGHUP to rvsd"
        );
    }

    /// Stops rvsd with SIGTERM; returns whether it exited cleanly.
    pub(crate) fn stop(&mut self) -> bool {
        self.process
            .terminate(Duration::from_secs(10))
            .is_some_and(|status| status.success())
    }
}

/// Runs rvsadm with whitespace-separated `args` against the rvsd listening
/// on `socket`.
pub(crate) fn rvsadm(socket: &Path, args: &str) -> Output {
    Command::new(binary("rvsadm"))
        .env("RVS_SOCKET", socket)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|error| panic!("cannot run rvsadm: {error}"))
}

/// Runs `sh -ec script` in `dir` with rvsadm first on the PATH and talking
/// to the rvsd listening on `socket`: a tutorial's lines as they are
/// written, pipes and redirections included.
pub(crate) fn rvsadm_script(socket: &Path, dir: &Path, script: &str) -> Output {
    let rvsadm = binary("rvsadm");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        rvsadm
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .chain(std::env::split_paths(&path)),
    )
    .unwrap_or_else(|error| panic!("cannot put rvsadm on the PATH: {error}"));
    Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .env("RVS_SOCKET", socket)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run sh: {error}"))
}

/// [`rvsadm`] that never panics (for reports while a test fails): `None`
/// if rvsadm cannot be run.
pub(crate) fn try_rvsadm(socket: &Path, args: &str) -> Option<Output> {
    Command::new(crate::bin_dir().join("rvsadm"))
        .env("RVS_SOCKET", socket)
        .args(args.split_whitespace())
        .output()
        .ok()
}

/// The end of a log, for failure messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = String::from("--- rvsd log (last lines) ---\n");
    for line in &lines[lines.len().saturating_sub(40)..] {
        let _ = writeln!(tail, "{line}");
    }
    tail
}

/// rvsd's configuration for a lab: af_packet ports on the director's veths,
/// a small connection table, idle back-off so that rvsd shares the machine
/// with the lab's programs.
fn config_text(id: &str, socket: &Path, network: &NetworkPlan, options: &RvsdOptions) -> String {
    // --in-memory keeps hugepage-backed runs from leaving files behind;
    // it cannot be combined with --no-huge, which needs --no-shconf.
    let memory = if options.hugepages {
        r#""--in-memory", "-m", "256""#
    } else {
        r#""--no-huge", "-m", "512", "--no-shconf""#
    };
    // The main lcore (control thread) on CPU 0, the workers on CPU 1.
    let lcores = match options.workers {
        0 | 1 => "0@0,1@1".to_owned(),
        workers => format!("0@0,(1-{workers})@1"),
    };
    let mut text = format!(
        r#"[eal]
args = ["--lcores", "{lcores}", {memory}, "--no-pci", "--no-telemetry", "--file-prefix", "{id}", "--log-level", "*:warning"]

[dataplane]
workers = {workers}
connections_per_worker = {connections}
idle_sleep_us = 100
idle_polls = 2000

[control]
socket = "{socket}"
"#,
        connections = options.connections_per_worker,
        socket = socket.display(),
        workers = options.workers.max(1),
    );
    for (index, port) in network.ports.iter().enumerate() {
        let _ = write!(
            text,
            "\n[[ports]]\nname = \"{}\"\ndevice = \"net_af_packet{index},iface={},qpairs={}\"\naddresses = {}\n",
            port.name,
            port.interface,
            options.workers.max(1),
            toml_strings(&port.addresses),
        );
        if options.exception_path {
            let _ = writeln!(
                text,
                "kernel_interface = \"{}\"",
                kernel_interface(port.interface)
            );
        }
    }
    for (destination, gateway) in &network.routes {
        let _ = write!(
            text,
            "\n[[routes]]\ndestination = \"{destination}\"\ngateway = \"{gateway}\"\n"
        );
    }
    if !network.local_addresses.is_empty() {
        let addresses: Vec<String> = network
            .local_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = write!(
            text,
            "\n[fullnat]\nlocal_addresses = {}\n",
            toml_strings(&addresses)
        );
    }
    let _ = write!(text, "\n{}", options.services_toml);
    text
}

fn toml_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|value| format!("\"{value}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One real-server row of `rvsadm -Ln`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerRow {
    /// `RIP:port`, `[RIP]:port` for IPv6.
    pub address: String,
    /// `Masq`, `Route`, `Tunnel` or `FullNat`.
    pub forward: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

/// The real-server rows of an `rvsadm -Ln` listing, in order.
pub fn real_server_rows(listing: &str) -> Vec<RealServerRow> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("  -> "))
        .filter(|rest| !rest.starts_with("RemoteAddress"))
        .map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(fields.len(), 5, "row {rest:?}");
            let number = |index: usize, what: &str| -> u64 {
                fields[index]
                    .parse()
                    .unwrap_or_else(|_| panic!("{what} in {rest:?}"))
            };
            RealServerRow {
                address: fields[0].to_owned(),
                forward: fields[1].to_owned(),
                weight: u32::try_from(number(2, "weight"))
                    .unwrap_or_else(|_| panic!("weight in {rest:?}")),
                active: number(3, "active"),
                inactive: number(4, "inactive"),
            }
        })
        .collect()
}

/// A row of `rvsadm -Lnc`, in ipvsadm's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    pub protocol: String,
    /// The expire column (minutes:seconds) in seconds.
    pub expires: u32,
    pub state: String,
    pub source: String,
    pub virtual_address: String,
    pub destination: String,
}

/// The rows of `rvsadm -Lnc` after ipvsadm's title, each checked to be
/// laid out as ipvsadm's `print_conn` lays it out.
pub fn connection_rows(listing: &str) -> Vec<ConnRow> {
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"), "{listing}");
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination"),
        "{listing}"
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [
                protocol,
                expire,
                state,
                source,
                virtual_address,
                destination,
            ] = fields[..]
            else {
                panic!("row {line:?}");
            };
            assert_eq!(
                line,
                format!(
                    "{protocol:<3} {expire:<6} {state:<11} {source:<18} {virtual_address:<18} \
                     {destination}"
                ),
                "ipvsadm's column widths"
            );
            let (minutes, seconds) = expire
                .split_once(':')
                .and_then(|(m, s)| Some((m.parse::<u32>().ok()?, s.parse::<u32>().ok()?)))
                .unwrap_or_else(|| panic!("expire in {line:?}"));
            assert!(seconds < 60, "{line:?}");
            ConnRow {
                protocol: protocol.to_owned(),
                expires: minutes * 60 + seconds,
                state: state.to_owned(),
                source: source.to_owned(),
                virtual_address: virtual_address.to_owned(),
                destination: destination.to_owned(),
            }
        })
        .collect()
}
