//! `Eal::cleanup` refuses while an mbuf is out of its pool, even when every
//! pool handle is gone (own process: cleanup consumes the EAL token).

use dpdk_bind::{Eal, EalError, Mempool, SocketId};

#[test]
fn cleanup_refused_while_an_mbuf_lives() {
    let prefix = format!("rvs-dpdk-bind-refused-{}", std::process::id());
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
        "r-pool",
        63,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("pool");
    let mut m = pool.alloc().expect("mbuf");
    drop(pool);
    assert!(matches!(eal.cleanup(), Err(EalError::InUse(1))));
    // The EAL is still usable: the mbuf is intact and goes back on drop.
    m.append(4).expect("room").copy_from_slice(b"rvs!");
    assert_eq!(m.as_ref(), b"rvs!");
}
