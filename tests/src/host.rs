//! The building blocks of a lab: network namespaces, veth pairs, bridges
//! and processes, each removed when dropped.

use std::cell::Cell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::plan::Family;
use crate::run;

/// `name` made this test process's own, `rvs<pid>-<name>`: what a lab
/// names its namespaces and EAL files after.
pub fn run_name(name: &str) -> String {
    format!("rvs{}-{name}", std::process::id())
}

/// The process whose [`run_name`] `name` is.
fn run_of(name: &str) -> Option<u32> {
    name.strip_prefix("rvs")?.split_once('-')?.0.parse().ok()
}

/// Deletes the namespaces, lab directories and EAL files of test processes
/// that no longer exist: a run killed by a signal (a timeout, ^C) never
/// drops what it built. Once per process; what runs now is left alone.
fn clear_dead_runs() {
    static CLEARED: Once = Once::new();
    CLEARED.call_once(|| {
        let dead = |name: &str| {
            run_of(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        };
        for name in entry_names(Path::new("/run/netns")) {
            if dead(&name) {
                drop(Netns { name });
            }
        }
        // Lab directories, and rvsd's EAL runtime files (`--file-prefix`).
        for dir in [std::env::temp_dir(), PathBuf::from("/var/run/dpdk")] {
            for name in entry_names(&dir) {
                if dead(&name) {
                    let _ = std::fs::remove_dir_all(dir.join(name));
                }
            }
        }
    });
}

fn entry_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A network namespace, deleted (with every process in it) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates namespace `name`, a [`run_name`]; the first one a process
    /// creates also clears what killed runs left behind.
    pub fn new(name: String) -> Netns {
        clear_dead_runs();
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

    /// Sets sysctls (`name=value`) in the namespace.
    pub fn sysctl(&self, settings: &[&str]) {
        let mut command = vec!["sysctl", "-qw"];
        command.extend_from_slice(settings);
        self.exec(&command);
    }

    /// Adds `address/prefix` to `interface`; IPv6 addresses skip duplicate
    /// address detection, so they can be used at once.
    pub fn add_address(&self, interface: &str, address_with_prefix: &str) {
        let mut command = vec!["ip", "addr", "add", address_with_prefix, "dev", interface];
        if address_with_prefix.contains(':') {
            command.push("nodad");
        }
        self.exec(&command);
    }

    /// Adds a route to `destination` (a network, or `default`) through
    /// `gateway`.
    pub fn add_route(&self, destination: &str, gateway: IpAddr) {
        let family = Family::of(gateway).ip_option();
        self.exec(&[
            "ip",
            family,
            "route",
            "add",
            destination,
            "via",
            &gateway.to_string(),
        ]);
    }

    /// A counter of `interface` from `/sys/class/net/*/statistics`
    /// (`rx_packets`, `tx_bytes`...), 0 if it cannot be read.
    pub fn interface_counter(&self, interface: &str, counter: &str) -> u64 {
        let output = self
            .command("cat")
            .arg(format!("/sys/class/net/{interface}/statistics/{counter}"))
            .output();
        output
            .ok()
            .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
            .unwrap_or(0)
    }

    /// The MAC address of `interface`.
    pub fn mac(&self, interface: &str) -> String {
        self.exec(&["cat", &format!("/sys/class/net/{interface}/address")])
            .trim()
            .to_owned()
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

/// A namespace holding the labs' bridges (Ethernet segments).
#[derive(Debug)]
pub struct Switch {
    pub netns: Netns,
    ports: Cell<u32>,
}

impl Switch {
    pub fn new(name: String) -> Switch {
        Switch {
            netns: Netns::new(name),
            ports: Cell::new(0),
        }
    }

    /// Creates bridge `bridge`.
    pub fn add_bridge(&self, bridge: &str) {
        self.netns
            .exec(&["ip", "link", "add", bridge, "type", "bridge"]);
        self.netns.exec(&["ip", "link", "set", bridge, "up"]);
    }

    /// Plugs `interface` of `host` into `bridge` with a veth pair.
    pub fn plug(&self, bridge: &str, host: &Netns, interface: &str) {
        let port = format!("p{}", self.ports.get());
        self.ports.set(self.ports.get() + 1);
        veth(host, interface, &self.netns, &port);
        self.netns
            .exec(&["ip", "link", "set", &port, "master", bridge]);
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

    /// Sends SIGTERM and waits up to `timeout` for the exit status; the
    /// status alone if it has exited already (its pid may be another's).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(timeout)
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `command` with its standard streams closed.
pub(crate) fn quiet(mut command: Command) -> Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_name_tells_its_process() {
        assert_eq!(
            run_of(&run_name("3-health-stop-rs1")),
            Some(std::process::id())
        );
        assert_eq!(run_of("rvs19793-1-health-stop-switch"), Some(19793));
        for foreign in ["rvs-bind-42", "rvsx-1", "rb123-lan", "blue"] {
            assert_eq!(run_of(foreign), None, "{foreign}");
        }
    }
}
