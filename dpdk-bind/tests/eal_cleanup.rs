//! `Eal::cleanup` releases DPDK once every object is gone (own process: the
//! EAL cannot come back after a cleanup).

use dpdk_bind::{Eal, EalError, MbufRing, Mempool, SocketId};

#[test]
fn cleanup_after_everything_is_dropped() {
    let prefix = format!("rvs-dpdk-bind-cleanup-{}", std::process::id());
    let eal = Eal::init(&[
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
    ])
    .unwrap_or_else(|err| panic!("EAL init failed: {err}"));
    let pool = Mempool::new(
        &eal,
        "c-pool",
        63,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("pool");
    let ring = MbufRing::new(&eal, "c-ring", 16, SocketId::ANY).expect("ring");
    let m = pool.alloc().expect("mbuf");
    drop((m, ring, pool));
    eal.cleanup().expect("cleanup");
    assert!(matches!(
        Eal::init(&["-l", "0"]),
        Err(EalError::AlreadyInitialised)
    ));
}
