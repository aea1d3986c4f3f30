//! A million UDP connections leave the table when their timeout passes,
//! through the bounded expiry passes a worker runs between bursts.

use std::net::Ipv4Addr;

use dataplane::conn::{Conn, ConnTable, HashSeed, Method, StateTimeouts};
use dataplane::time::{Duration, Instant};

const CONNECTIONS: u32 = 1_000_000;
/// Entries one expiry pass may look at (the director's own budget is of
/// this order, so a pass stays in the microseconds).
const BUDGET: usize = 4096;

fn udp_conn(i: u32) -> Conn<Ipv4Addr> {
    let client = (
        Ipv4Addr::from(0x0a00_0000 + i / 50_000),
        1024 + (i % 50_000) as u16,
    );
    Conn::new(
        17,
        Method::Nat,
        client,
        (Ipv4Addr::new(198, 18, 0, 10), 53),
        (Ipv4Addr::new(198, 18, 1, 11 + (i % 2) as u8), 53),
        client,
        1,
        i % 2,
    )
}

/// Runs expiry passes at `now` until many in a row expire nothing (a pass
/// may only move entries that are not due yet); returns how many expired
/// and how many passes it took.
fn expire_all(table: &mut ConnTable<Ipv4Addr>, now: Instant) -> (usize, usize) {
    let (mut expired, mut passes, mut idle) = (0, 0, 0);
    while idle < 64 {
        passes += 1;
        let this_pass = table.expire(now, BUDGET, |conn| assert_eq!(conn.protocol, 17));
        expired += this_pass;
        idle = if this_pass == 0 { idle + 1 } else { 0 };
    }
    (expired, passes)
}

#[test]
fn a_million_udp_connections_empty_after_the_udp_timeout() {
    let timeouts = StateTimeouts::default();
    let start = Instant(1_000_000_000);
    let mut table = ConnTable::new(CONNECTIONS, HashSeed([3, 4]), &timeouts, start);
    // Arrivals spread over ten seconds, as a burst of new flows would be.
    for i in 0..CONNECTIONS {
        let at = start + Duration(u64::from(i) * 10_000);
        table
            .insert(udp_conn(i), at)
            .expect("room for every connection");
    }
    assert_eq!(table.len(), CONNECTIONS);
    // Just before the last arrival's timeout, most but not all are gone.
    let udp = Duration::from_secs(300);
    let (early, _) = expire_all(&mut table, start + udp + Duration::from_secs(5));
    assert!(
        early > 0 && (early as u32) < CONNECTIONS,
        "{early} expired early"
    );
    let (rest, passes) = expire_all(&mut table, start + udp + Duration::from_secs(11));
    assert_eq!(early + rest, CONNECTIONS as usize);
    assert!(table.is_empty(), "{} left", table.len());
    assert!(passes >= rest / BUDGET, "each pass stays within its budget");
    // The table is as good as new: it takes a million again.
    let later = start + Duration::from_secs(1000);
    for i in 0..CONNECTIONS {
        table.insert(udp_conn(i), later).expect("room again");
    }
    assert_eq!(table.len(), CONNECTIONS);
}
