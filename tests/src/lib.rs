//! Labs of network namespaces for end-to-end runs of rvsd with real
//! clients and servers, used by the end-to-end tests, the demo and the lab
//! benchmark.
//!
//! A [`Lab`] is wired for one forwarding mode ([`Mode`]); addresses follow
//! one plan in both families ([`Family::address`]: host H of subnet S is
//! 198.18.S.H and fd00:S::H), IPv6 being optional. Two-armed labs, for NAT
//! and FULLNAT (the tests of tests/nat.rs use [`NatLab`], the IPv4 NAT lab):
//!
//! ```text
//!   ns client           [ns router]               ns director (rvsd)          ns switch, bridge "lan"   ns rs1, rs2
//!   c0 198.18.0.2,.3 ── d0 port "wan" 198.18.0.1
//!                         VIP 198.18.0.10
//!                        d1 port "lan" 198.18.1.1 (DIP) ── bridge ── r0 198.18.1.11, .12
//!                        FULLNAT LIP 198.18.1.100            nginx :80 :8080, dnsmasq :53
//!
//!   with a client router: c0 198.18.2.2,.3 ── x0 198.18.2.254 (MTU LabSpec::client_mtu)
//!                                             x1 198.18.0.254 ── d0 198.18.0.1
//! ```
//!
//! NAT real servers route everything through the DIP; FULLNAT real servers
//! have no route beyond their own subnet. One-armed labs, for DR and TUN:
//!
//! ```text
//!   ns client            ns router             bridge "lan"
//!   c0 198.18.2.2,.3 ── x0 198.18.2.254
//!                        x1 198.18.1.254 ───── d0 rvsd's only port "lan" 198.18.1.1, VIP 198.18.1.10
//!                                          DR: r0 198.18.1.11, .12   VIP on lo, arp_ignore=1, arp_announce=2
//!                        x2 198.18.3.254 ──── bridge "servers"
//!                                         TUN: r0 198.18.3.11, .12   VIP on lo, tun0 + rvs-ipip decap
//! ```
//!
//! DR and TUN real servers reply to the client straight through the
//! router. The kernels here have no IP-in-IP module, so TUN real servers
//! run `rvs-ipip decap` (src/bin/rvs-ipip.rs): raw sockets read the
//! IP-in-IP packets, a TUN device hands the inner packets to the kernel.
//!
//! rvsd owns the director's veths through DPDK's net_af_packet driver; the
//! kernel of the director namespace has no address on them (nor IPv6).
//! With [`RvsdOptions::exception_path`] each port gets a TAP twin holding
//! its addresses, and an nftables ingress hook keeps the kernel from the
//! veths' frames (packet sockets see them first), as if the NICs were
//! bound to DPDK. A
//! lab can instead use that kernel as the director ([`Director::Kernel`]),
//! which checks the lab itself. Every veth has its offloads off, so the
//! kernel hands rvsd real MTU-sized frames with their checksums filled in.
//!
//! Everything the lab creates (namespaces, processes, files) is removed when
//! it is dropped, also when a test panics. Missing prerequisites (root,
//! programs) make it panic with a message that says what to install.

mod host;
mod lab;
mod load;
mod plan;
mod rvsd;
mod servers;
mod transfer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use host::{Netns, Process, Switch, run_name, veth};
pub use lab::{Director, Lab, LabSpec, Mode, NatLab, Protocol, Traffic, big_file_sha256};
pub use load::{Attempt, CurlLoop, Wrk, WrkReport, unix_millis};
pub use plan::{Family, endpoint, url};
pub use rvsd::{ConnRow, RealServerRow, RvsdOptions, connection_rows, real_server_rows};
pub use transfer::Transfer;

/// Addresses of the NAT lab over IPv4 ([`NatLab`]); [`Lab`]'s methods give
/// those of any lab in either family.
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
const PREREQUISITES: [(&str, &str); 12] = [
    ("ip", "iproute2"),
    ("bash", "bash"),
    ("ss", "iproute2"),
    ("ethtool", "ethtool"),
    ("nginx", "nginx-light (or nginx)"),
    ("curl", "curl"),
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "bind9-dnsutils"),
    ("sha256sum", "coreutils"),
    ("ping", "iputils-ping"),
    ("nft", "nftables"),
    ("wrk", "wrk"),
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
    assert!(
        Path::new("/dev/net/tun").exists(),
        "end-to-end tests need /dev/net/tun (a kernel with CONFIG_TUN) for the TUN-mode lab's decapsulator"
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
    std::env::var_os("RVS_BIN_DIR").map_or_else(own_target_dir, PathBuf::from)
}

/// target/<profile> of this executable (`target/<profile>/deps/<test>` or
/// `target/<profile>/<bin>`).
fn own_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
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

/// A binary of this crate: beside the running executable (cargo builds a
/// package's binaries for its tests, in the same profile), or else in
/// [`bin_dir`].
fn own_binary(name: &str) -> PathBuf {
    let beside = own_target_dir().join(name);
    if beside.is_file() {
        beside
    } else {
        binary(name)
    }
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

/// Counts how many of `responses` each real server gave (`rs1`, `rs2`: the
/// first word of a response), and the rest.
pub fn tally(responses: &[String]) -> (usize, usize, Vec<String>) {
    let mut counts = (0, 0, Vec::new());
    for response in responses {
        match response.split_whitespace().next() {
            Some("rs1") => counts.0 += 1,
            Some("rs2") => counts.1 += 1,
            _ => counts.2.push(response.trim().to_owned()),
        }
    }
    counts
}

/// A round-robin `[[services]]` table for the VIP on `port`, `protocol`
/// `tcp` or `udp`, with both real servers masqueraded at `weight`;
/// `service_keys` adds lines to the service's table (a `health_check`).
pub fn nat_service_toml(protocol: &str, port: u16, weight: u32, service_keys: &str) -> String {
    let mut text = format!(
        "\n[[services]]\nprotocol = \"{protocol}\"\naddress = \"{VIP}:{port}\"\nscheduler = \"rr\"\n{service_keys}"
    );
    for rs in REAL_SERVERS {
        text.push_str(&format!(
            "\n[[services.real_servers]]\naddress = \"{rs}:{port}\"\nforward = \"masq\"\nweight = {weight}\n"
        ));
    }
    text
}

/// The value of the sample `series` (a metric's name and labels) in the
/// Prometheus text `text`.
pub fn metric_sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}
