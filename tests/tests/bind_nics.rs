//! scripts/bind-nics.sh on what any machine has: its help, its refusals of
//! bad command lines, of interfaces without a PCI address (a veth) and of
//! an interface that carries the default route, and shellcheck's verdict.
//! Binding a real NIC needs hardware to spare and is not tested here.
//!
//! The refusals run in a network namespace of their own, with a veth
//! created there, and need root like the other end-to-end tests. Every
//! case must be refused before anything is bound, so a mistake in the
//! script cannot take a NIC away from this machine: the namespace holds
//! only the veth.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rvs_lab::{Netns, run_name};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bind-nics.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the script in `netns` with `args`, its state file in a directory
/// of its own; returns the output and whether the state file appeared.
fn run_in(netns: &Netns, args: &[&str]) -> (Output, bool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("bind-nics.state");
    let output = netns
        .command("env")
        .arg(format!("RVS_BIND_STATE={}", state.display()))
        .arg(script())
        .args(args)
        .output()
        .expect("bind-nics.sh runs");
    (output, state.exists())
}

fn assert_refused(output: &Output, status: i32, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(status),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains(message),
        "expected {message:?} in: {}",
        text(&output.stderr)
    );
}

#[test]
fn help_describes_every_mode() {
    let output = Command::new(script())
        .arg("--help")
        .output()
        .expect("bind-nics.sh runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let help = text(&output.stdout);
    for expected in [
        "Usage: bind-nics.sh [--force] [--driver DRIVER] NIC...",
        "--unbind",
        "--status",
        "--force",
        "vfio-pci",
        "apt-get install dpdk",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}

#[test]
fn bad_command_lines_are_refused_with_usage_status() {
    for (args, message) in [
        (&[][..], "name at least one NIC"),
        (&["--bogus"][..], "unknown option --bogus"),
        (&["--driver"][..], "--driver needs a driver name"),
        (&["--driver", "vfio pci", "x"][..], "is not a driver name"),
        (&["--status", "eth9"][..], "--status takes no NIC"),
    ] {
        let output = Command::new(script())
            .args(args)
            .output()
            .expect("bind-nics.sh runs");
        assert_refused(&output, 2, message);
    }
}

#[test]
fn virtual_and_default_route_interfaces_are_refused() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (a network namespace with a veth)"
    );
    let netns = Netns::new(run_name("bind"));
    netns.exec(&[
        "ip",
        "link",
        "add",
        "veth-bind0",
        "type",
        "veth",
        "peer",
        "name",
        "veth-bind1",
    ]);

    let (output, state_written) = run_in(&netns, &["veth-bind0"]);
    assert_refused(
        &output,
        1,
        "veth-bind0 has no PCI address: it is a virtual interface",
    );
    assert!(text(&output.stderr).contains("net_af_packet0,iface=veth-bind0"));
    assert!(!state_written, "nothing is remembered for a refused NIC");

    let (output, _) = run_in(&netns, &["nosuch0"]);
    assert_refused(&output, 1, "there is no network interface named 'nosuch0'");

    // The veth carries the namespace's default route: refused for that
    // first, and only --force gets past it (to the PCI refusal).
    netns.exec(&["ip", "addr", "add", "198.18.0.2/24", "dev", "veth-bind0"]);
    netns.exec(&["ip", "link", "set", "veth-bind0", "up"]);
    netns.exec(&["ip", "route", "add", "default", "via", "198.18.0.1"]);
    let (output, _) = run_in(&netns, &["veth-bind0"]);
    assert_refused(&output, 1, "veth-bind0 carries a default route");
    let (output, state_written) = run_in(&netns, &["--force", "veth-bind0"]);
    assert_refused(&output, 1, "veth-bind0 has no PCI address");
    assert!(!state_written);

    let (output, _) = run_in(&netns, &["--unbind", "veth-bind0"]);
    assert_refused(&output, 1, "veth-bind0 has no PCI address");
}

#[test]
fn shellcheck_finds_nothing() {
    let Ok(output) = Command::new("shellcheck").arg(script()).output() else {
        eprintln!("shellcheck is not installed (apt-get install shellcheck): not checked");
        return;
    };
    assert!(
        output.status.success(),
        "shellcheck:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}
