//! `Eal::cleanup` releases DPDK once every object is gone (own process: the
//! EAL cannot come back after a cleanup).

mod common;

use dpdk_bind::{Eal, EalError, MbufRing, SocketId};

#[test]
fn cleanup_after_everything_is_dropped() {
    let eal = common::init_eal("cleanup");
    let pool = common::small_pool(&eal, "c-pool");
    let ring = MbufRing::new(&eal, "c-ring", 16, SocketId::ANY).expect("ring");
    let m = pool.alloc().expect("mbuf");
    drop((m, ring, pool));
    let runtime_dir = eal.runtime_dir();
    assert!(runtime_dir.ends_with(format!("rvs-dpdk-bind-cleanup-{}", std::process::id())));
    assert!(runtime_dir.is_dir(), "{}", runtime_dir.display());
    eal.cleanup().expect("cleanup");
    assert!(!runtime_dir.exists(), "{} was left", runtime_dir.display());
    assert!(matches!(
        Eal::init(&["-l", "0"]),
        Err(EalError::AlreadyInitialised)
    ));
}
