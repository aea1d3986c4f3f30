//! A lab of network namespaces for end-to-end runs of rvsd with real
//! clients and servers, used by the end-to-end tests and by the demo.
//!
//! ```text
//!   ns client            ns director (rvsd)            ns switch         ns rs1, rs2
//!   c0 198.18.0.2/24 ── d0 port "wan" 198.18.0.1/24
//!                         VIP 198.18.0.10
//!                        d1 port "lan" 198.18.1.1/24 ── s0 ┐ bridge ┌ s1 ── r0 198.18.1.11/24 nginx, dnsmasq
//!                                                          └────────┴ s2 ── r0 198.18.1.12/24 nginx, dnsmasq
//! ```
//!
//! rvsd owns d0 and d1 through DPDK's net_af_packet driver; the kernel of
//! the director namespace has no address on them. The real servers' default
//! route is the DIP (NAT). Every veth has its offloads off, so the kernel
//! hands rvsd real MTU-sized frames with their checksums filled in.
//!
//! Everything the lab creates (namespaces, processes, files) is removed when
//! it is dropped, also when a test panics. Missing prerequisites (root,
//! programs) make it panic with a message that says what to install.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const CLIENT: &str = "198.18.0.2";
pub const WAN_ADDRESS: &str = "198.18.0.1";
pub const VIP: &str = "198.18.0.10";
pub const DIP: &str = "198.18.1.1";
pub const REAL_SERVERS: [&str; 2] = ["198.18.1.11", "198.18.1.12"];
/// The real servers' MAC addresses (fixed, so configurations can name them).
pub const REAL_SERVER_MACS: [&str; 2] = ["02:00:00:00:01:0b", "02:00:00:00:01:0c"];
/// The UDP port the real servers' DNS servers (dnsmasq) listen on.
pub const UDP_PORT: u16 = 53;
/// The name whose TXT record each real server answers with its own name.
pub const WHOAMI: &str = "whoami.rvs.test";
/// Size of the large file each real server serves at `/big.bin`.
pub const BIG_FILE_BYTES: usize = 50 * 1024 * 1024;

/// Programs the lab runs, and the Debian packages that provide them.
const PREREQUISITES: [(&str, &str); 9] = [
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("nginx", "nginx-light (or nginx)"),
    ("curl", "curl"),
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "bind9-dnsutils"),
    ("sha256sum", "coreutils"),
    ("ping", "iputils-ping"),
    ("nft", "nftables"),
];

/// Panics with a clear message unless the lab can run here.
pub fn require_prerequisites() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "end-to-end tests need root (network namespaces, DPDK); run scripts/test.sh as root"
    );
    let missing: Vec<String> = PREREQUISITES
        .iter()
        .filter(|(program, _)| !program_exists(program))
        .map(|(program, package)| format!("{program} (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "end-to-end tests need: {}",
        missing.join(", ")
    );
}

fn program_exists(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        || Path::new("/usr/sbin").join(program).is_file()
}

/// Where the rvsd and rvsadm binaries are: `$RVS_BIN_DIR`, or the cargo
/// target directory this test binary was built into.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RVS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (cargo build --release --bins) and set RVS_BIN_DIR, or run scripts/test.sh",
        path.display()
    );
    path
}

/// Runs a command and returns its stdout; panics with its stderr if it
/// fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace, deleted (with every process in it) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        // A namespace left behind by a killed run of the same name.
        if Path::new("/run/netns").join(&name).exists() {
            drop(Netns { name: name.clone() });
        }
        run("ip", &["netns", "add", &name]);
        let netns = Netns { name };
        netns.exec(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    /// Runs a command in the namespace; panics if it fails.
    pub fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    /// A command that will run in the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `sh -c script` in the namespace and returns its output.
    pub fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .unwrap_or_else(|error| panic!("cannot run sh in {}: {error}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(output) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects `a_if` in `a` to `b_if` in `b` with a veth pair whose
/// offloads are off on both ends.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    );
    for (ns, interface) in [(a, a_if), (b, b_if)] {
        ns.exec(&[
            "ethtool", "-K", interface, "rx", "off", "tx", "off", "tso", "off", "gso", "off",
            "gro", "off",
        ]);
        ns.exec(&["ip", "link", "set", interface, "up"]);
    }
}

/// A process that is killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    pub fn spawn(mut command: Command) -> Process {
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        Process { child }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How rvsd should run in the lab.
#[derive(Debug, Clone)]
pub struct RvsdOptions {
    /// `[[services]]` (and other) tables appended to the configuration.
    pub services_toml: String,
    pub connections_per_worker: u32,
    /// Back DPDK's memory with hugepages (reserved beforehand, for example
    /// by scripts/setup-hugepages.sh) instead of `--no-huge`.
    pub hugepages: bool,
}

impl Default for RvsdOptions {
    fn default() -> Self {
        RvsdOptions {
            services_toml: String::new(),
            connections_per_worker: 65536,
            hugepages: false,
        }
    }
}

/// The NAT lab of the module docs, with rvsd running (or, as a reference
/// for benchmarks, the director namespace's own kernel doing the NAT).
#[derive(Debug)]
pub struct NatLab {
    /// Declared first so that processes die before their namespaces go.
    rvsd: Option<Process>,
    _servers: Vec<Process>,
    pub client: Netns,
    pub director: Netns,
    pub switch: Netns,
    pub real_servers: Vec<Netns>,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    log: PathBuf,
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl NatLab {
    /// Builds the lab and starts rvsd; `name` keeps namespaces of
    /// concurrent labs apart.
    pub fn start(name: &str, options: &RvsdOptions) -> NatLab {
        let mut lab = NatLab::build(name);
        let id = lab.director.name.trim_end_matches("-director").to_owned();
        let config = lab.dir.path().join("rvsd.toml");
        fs::write(&config, rvsd_config(&id, &lab.socket, options))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        lab.rvsd = Some(start_rvsd(&lab.director, &config, &lab.log, &lab.socket));
        lab
    }

    /// Builds the same lab with the Linux kernel of the director namespace
    /// as the director: addresses on d0 and d1, forwarding, and nftables
    /// DNAT of `VIP:port` to the real servers in round robin (the kernel
    /// here has no IPVS). A reference for benchmarks.
    pub fn start_kernel(name: &str, tcp_port: u16) -> NatLab {
        let lab = NatLab::build(name);
        let director = &lab.director;
        director.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{WAN_ADDRESS}/24"),
            "dev",
            "d0",
        ]);
        director.exec(&["ip", "addr", "add", &format!("{VIP}/24"), "dev", "d0"]);
        director.exec(&["ip", "addr", "add", &format!("{DIP}/24"), "dev", "d1"]);
        director.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let rules = format!(
            "table ip lab {{\n chain prerouting {{\n  type nat hook prerouting priority dstnat;\n  \
             ip daddr {VIP} tcp dport {tcp_port} dnat to numgen inc mod 2 map {{ 0 : {}, 1 : {} }}\n }}\n}}\n",
            REAL_SERVERS[0], REAL_SERVERS[1]
        );
        let mut nft = director.command("nft");
        nft.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = nft
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run nft: {error}"));
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin
                .write_all(rules.as_bytes())
                .unwrap_or_else(|error| panic!("nft: {error}"));
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|error| panic!("nft: {error}"));
        assert!(
            output.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        lab
    }

    /// The namespaces, links and servers, without a director.
    fn build(name: &str) -> NatLab {
        require_prerequisites();
        let id = format!(
            "rvs{}-{}-{name}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix("rvs-lab-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a lab directory: {error}"));
        let client = Netns::new(format!("{id}-client"));
        let director = Netns::new(format!("{id}-director"));
        let switch = Netns::new(format!("{id}-switch"));
        let real_servers: Vec<Netns> = (1..=REAL_SERVERS.len())
            .map(|i| Netns::new(format!("{id}-rs{i}")))
            .collect();

        veth(&client, "c0", &director, "d0");
        veth(&director, "d1", &switch, "s0");
        for interface in ["d0", "d1"] {
            director.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{interface}.disable_ipv6=1"),
            ]);
        }
        client.exec(&["ip", "addr", "add", &format!("{CLIENT}/24"), "dev", "c0"]);
        client.exec(&["ip", "route", "add", "default", "via", WAN_ADDRESS]);
        switch.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        switch.exec(&["ip", "link", "set", "br0", "up"]);
        switch.exec(&["ip", "link", "set", "s0", "master", "br0"]);

        let mut servers = Vec::new();
        for (i, (rs, address)) in real_servers.iter().zip(REAL_SERVERS).enumerate() {
            let port = format!("s{}", i + 1);
            veth(rs, "r0", &switch, &port);
            switch.exec(&["ip", "link", "set", &port, "master", "br0"]);
            rs.exec(&["ip", "link", "set", "r0", "address", REAL_SERVER_MACS[i]]);
            rs.exec(&["ip", "addr", "add", &format!("{address}/24"), "dev", "r0"]);
            rs.exec(&["ip", "route", "add", "default", "via", DIP]);
            servers.push(start_nginx(
                rs,
                &dir.path().join(format!("rs{}", i + 1)),
                &format!("rs{}", i + 1),
            ));
            servers.push(start_dnsmasq(
                rs,
                address,
                &dir.path().join(format!("rs{}", i + 1)),
                &format!("rs{}", i + 1),
            ));
        }

        let socket = dir.path().join("rvsd.sock");
        let log = dir.path().join("rvsd.log");
        NatLab {
            rvsd: None,
            _servers: servers,
            client,
            director,
            switch,
            real_servers,
            dir,
            socket,
            log,
        }
    }

    /// Runs rvsadm with whitespace-separated `args` against this lab's rvsd.
    pub fn rvsadm(&self, args: &str) -> Output {
        Command::new(binary("rvsadm"))
            .env("RVS_SOCKET", &self.socket)
            .args(args.split_whitespace())
            .output()
            .unwrap_or_else(|error| panic!("cannot run rvsadm: {error}"))
    }

    /// Runs rvsadm and returns its stdout; panics on failure.
    pub fn rvsadm_ok(&self, args: &str) -> String {
        let output = self.rvsadm(args);
        assert!(
            output.status.success(),
            "rvsadm {args} failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `count` sequential HTTP requests from the client, each on a new
    /// connection; returns each response body (the server's name) or the
    /// curl error.
    pub fn http_requests(&self, path: &str, count: usize) -> Vec<String> {
        let script = format!(
            "for i in $(seq {count}); do curl -sS --max-time 5 -H 'Connection: close' http://{VIP}{path} || echo FAILED; done"
        );
        let output = self.client.sh(&script);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `count` DNS queries (UDP) from the client with dig, each from a new
    /// source port; returns each answer (the server's name) or dig's error.
    pub fn udp_requests(&self, count: usize) -> Vec<String> {
        let script = format!(
            "for i in $(seq {count}); do \
             dig +short +tries=1 +time=3 @{VIP} -p {UDP_PORT} TXT {WHOAMI} || echo FAILED; done"
        );
        let output = self.client.sh(&script);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.trim_matches('"').to_owned())
            .collect()
    }

    /// The lab's scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether rvsd is still running.
    pub fn rvsd_running(&mut self) -> bool {
        self.rvsd.as_mut().is_some_and(Process::running)
    }

    /// Packets the director's two ports have received so far, as the
    /// kernel counts them on the veths (the same for rvsd and the kernel).
    pub fn director_rx_packets(&self) -> u64 {
        ["d0", "d1"]
            .iter()
            .map(|port| {
                let text = self.director.exec(&[
                    "cat",
                    &format!("/sys/class/net/{port}/statistics/rx_packets"),
                ]);
                text.trim().parse::<u64>().unwrap_or(0)
            })
            .sum()
    }

    /// The end of rvsd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut tail = String::from("--- rvsd log (last lines) ---\n");
        for line in &lines[lines.len().saturating_sub(40)..] {
            let _ = writeln!(tail, "{line}");
        }
        tail
    }

    /// Stops rvsd with SIGTERM; returns whether it exited cleanly.
    pub fn stop_rvsd(&mut self) -> bool {
        self.rvsd
            .as_mut()
            .and_then(|rvsd| rvsd.terminate(Duration::from_secs(10)))
            .is_some_and(|status| status.success())
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A clean stop makes rvsd log its drop counters and port
            // counters, which usually tell what went wrong.
            self.stop_rvsd();
            eprintln!("{}", self.log_tail());
        }
    }
}

/// rvsd's configuration for the lab: af_packet ports on d0 and d1, a small
/// connection table, idle back-off so that rvsd shares the machine with
/// the lab's programs.
fn rvsd_config(id: &str, socket: &Path, options: &RvsdOptions) -> String {
    // --in-memory keeps hugepage-backed runs from leaving files behind;
    // it cannot be combined with --no-huge, which needs --no-shconf.
    let memory = if options.hugepages {
        r#""--in-memory", "-m", "256""#
    } else {
        r#""--no-huge", "-m", "512", "--no-shconf""#
    };
    format!(
        r#"[eal]
args = ["-l", "0,1", {memory}, "--no-pci", "--no-telemetry", "--file-prefix", "{id}", "--log-level", "*:warning"]

[dataplane]
connections_per_worker = {connections}
idle_sleep_us = 100
idle_polls = 2000

[control]
socket = "{socket}"

[[ports]]
name = "wan"
device = "net_af_packet0,iface=d0"
addresses = ["{WAN_ADDRESS}/24"]

[[ports]]
name = "lan"
device = "net_af_packet1,iface=d1"
addresses = ["{DIP}/24"]

{services}"#,
        connections = options.connections_per_worker,
        socket = socket.display(),
        services = options.services_toml,
    )
}

fn quiet(mut command: Command) -> Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Starts nginx in `rs` on ports 80 and 8080, serving `/` (a page naming
/// the server) and `/big.bin` from `root`.
fn start_nginx(rs: &Netns, root: &Path, name: &str) -> Process {
    fs::create_dir_all(root.join("html")).unwrap_or_else(|error| panic!("{error}"));
    fs::write(root.join("html/index.html"), format!("{name}\n"))
        .unwrap_or_else(|error| panic!("{error}"));
    write_big_file(&root.join("html/big.bin"));
    let config = format!(
        r#"daemon off;
master_process off;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    keepalive_requests 1000000;
    server {{
        listen 80;
        listen 8080;
        root {root}/html;
    }}
}}
"#,
        root = root.display()
    );
    let config_path = root.join("nginx.conf");
    fs::write(&config_path, config).unwrap_or_else(|error| panic!("{error}"));
    let mut command = rs.command("nginx");
    command.args([
        "-c",
        &config_path.to_string_lossy(),
        "-p",
        &root.to_string_lossy(),
    ]);
    let mut nginx = Process::spawn(quiet(command));
    let started = wait_until(Duration::from_secs(10), || {
        rs.sh("curl -s -o /dev/null http://127.0.0.1/")
            .status
            .success()
    });
    if !started {
        let errors = fs::read_to_string(root.join("error.log")).unwrap_or_default();
        panic!(
            "nginx did not start in {} (running: {}): {errors}",
            rs.name,
            nginx.running()
        );
    }
    nginx
}

/// Starts dnsmasq in `rs` as a UDP server: it answers the TXT record
/// `WHOAMI` with `name`, and nothing else.
fn start_dnsmasq(rs: &Netns, address: &str, root: &Path, name: &str) -> Process {
    let mut command = rs.command("dnsmasq");
    command.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        &format!("--port={UDP_PORT}"),
        &format!("--listen-address={address}"),
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--user=root",
        &format!("--txt-record={WHOAMI},{name}"),
        &format!("--pid-file={}", root.join("dnsmasq.pid").display()),
    ]);
    let dnsmasq = Process::spawn(quiet(command));
    let query = format!("dig +short +tries=1 +time=1 @{address} -p {UDP_PORT} TXT {WHOAMI}");
    let started = wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&rs.sh(&query).stdout).contains(name)
    });
    assert!(started, "dnsmasq did not start in {}", rs.name);
    dnsmasq
}

/// The same pseudo-random 50 MiB on every server, so a transfer's checksum
/// does not depend on which server sent it.
fn write_big_file(path: &Path) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(BIG_FILE_BYTES);
    while data.len() < BIG_FILE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    fs::write(path, data)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// The SHA-256 of the file every server serves at `/big.bin`.
pub fn big_file_sha256(lab: &NatLab) -> String {
    let output = run(
        "sha256sum",
        &[&lab.dir().join("rs1/html/big.bin").to_string_lossy()],
    );
    output
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn start_rvsd(director: &Netns, config: &Path, log: &Path, socket: &Path) -> Process {
    let log_file = fs::File::create(log).unwrap_or_else(|error| panic!("{error}"));
    let mut command = director.command(&binary("rvsd").to_string_lossy());
    command
        .arg("--config")
        .arg(config)
        .env("RVS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .unwrap_or_else(|error| panic!("{error}")),
        )
        .stderr(log_file);
    let mut rvsd = Process::spawn(command);
    let ready = wait_until(Duration::from_secs(30), || {
        socket.exists() && std::os::unix::net::UnixStream::connect(socket).is_ok()
            || !rvsd.running()
    });
    if !ready || !rvsd.running() {
        let mut text = String::new();
        let _ = fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
        panic!("rvsd did not start:\n{text}");
    }
    rvsd
}

/// Polls `condition` every 20 ms until it holds (true) or `timeout`
/// passes (false).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts how many of `responses` each real server gave (`rs1`, `rs2`),
/// and the rest.
pub fn tally(responses: &[String]) -> (usize, usize, Vec<String>) {
    let mut counts = (0, 0, Vec::new());
    for response in responses {
        match response.trim() {
            "rs1" => counts.0 += 1,
            "rs2" => counts.1 += 1,
            other => counts.2.push(other.to_owned()),
        }
    }
    counts
}
