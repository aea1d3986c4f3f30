//! `Eal::cleanup` refuses while an mbuf is out of its pool, even when every
//! pool handle is gone (own process: cleanup consumes the EAL token).

mod common;

use dpdk_bind::EalError;

#[test]
fn cleanup_refused_while_an_mbuf_lives() {
    let eal = common::init_eal("refused");
    let pool = common::small_pool(&eal, "r-pool");
    let mut m = pool.alloc().expect("mbuf");
    drop(pool);
    assert!(matches!(eal.cleanup(), Err(EalError::InUse(1))));
    // The EAL is still usable: the mbuf is intact and goes back on drop.
    m.append(4).expect("room").copy_from_slice(b"rvs!");
    assert_eq!(m.as_ref(), b"rvs!");
}
