//! Setup shared by the test binaries that each consume the process's one
//! EAL (they cannot share a process, so each declares `mod common;`).

#![allow(dead_code, reason = "each test binary uses only some of these helpers")]

use dpdk_bind::{Eal, Mempool, SocketId};

/// EAL arguments for lcore 0, 128 MB without hugepages, no PCI, nothing
/// shared with other processes and no telemetry, with the file prefix
/// `rvs-dpdk-bind-<name>-<pid>`, unique to this test process.
pub(crate) fn eal_args(name: &str) -> Vec<String> {
    let prefix = format!("rvs-dpdk-bind-{name}-{}", std::process::id());
    [
        "-l",
        "0",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        &prefix,
    ]
    .map(str::to_owned)
    .into()
}

/// Initialises the process's EAL with [`eal_args`]; panics if it fails.
pub(crate) fn init_eal(name: &str) -> Eal {
    Eal::init(&eal_args(name)).unwrap_or_else(|err| panic!("EAL init failed: {err}"))
}

/// A mempool of 63 mbufs without a per-lcore cache; panics if it cannot be
/// created.
pub(crate) fn small_pool(eal: &Eal, name: &str) -> Mempool {
    Mempool::new(eal, name, 63, 0, Mempool::DEFAULT_DATA_ROOM, SocketId::ANY).expect("pool")
}
