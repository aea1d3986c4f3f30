//! In-memory microbenchmarks of the hot path: what one worker core spends
//! per packet on parse + lookup + rewrite, per new connection, per
//! scheduler pick and per connection-table operation, and how many bytes a
//! connection takes.
//!
//! ```sh
//! cargo bench -p dataplane --bench hotpath            # everything
//! cargo bench -p dataplane --bench hotpath -- established   # a group
//! ```
//!
//! Frames are `VecFrame`s refilled from templates before each burst (as a
//! NIC's DMA would fill mbufs), handed to the engine a burst of 32 at a
//! time, and collected by a sink that keeps them for reuse, so nothing is
//! allocated in the measured loop (see `dataplane::testing::replay`).
//! The figures are per packet (criterion's "thrpt" is packets per second);
//! the line printed first converts nanoseconds to TSC cycles.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane::conn::{Conn, ConnTable, HashSeed, Method, StateTimeouts};
use dataplane::counters::DropReason;
use dataplane::director::BURST;
use dataplane::sched::{Connections, Load, PickInput, SchedulerKind, SchedulerState};
use dataplane::snapshot::{RealServer, Service};
use dataplane::testing::replay::{Replay, VIP, segment};
use dataplane::time::{Duration, Instant};
use dataplane::wire::TcpFlags;

const SEED: HashSeed = HashSeed([0x0123_4567, 0x89ab_cdef]);

/// Established flows, client to real server: parse, batched lookup,
/// state tracking, the method's rewrite (NAT and FULLNAT with incremental
/// checksums, DR only the MACs, TUN an outer header), next hop. NAT with
/// 1, 1 000 and 1 000 000 flows; DR and TUN with a million; FULLNAT with
/// half a million, all the local ports of the 8 local addresses a worker
/// serves.
fn established(c: &mut Criterion) {
    let mut group = c.benchmark_group("established");
    group.throughput(Throughput::Elements(BURST as u64));
    let cases = [1usize, 1_000, 1_000_000]
        .map(|flows| (Method::Nat, flows))
        .into_iter()
        .chain([
            (Method::FullNat, 500_000),
            (Method::DirectRoute, 1_000_000),
            (Method::Tunnel, 1_000_000),
        ]);
    for (method, flows) in cases {
        let id = BenchmarkId::new(method_name(method), flows);
        group.bench_function(id, |b| {
            let mut replay = Replay::established(method, flows, 2_000_000);
            b.iter(|| replay.burst(Instant(3)));
            let counters = replay.engine.director().counters();
            let dropped: u64 = DropReason::ALL.iter().map(|r| counters.drops(*r)).sum();
            assert_eq!(dropped, 0, "every packet was forwarded");
            assert_eq!(replay.engine.director().connections().len() as usize, flows);
        });
    }
    group.finish();
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Nat => "nat",
        Method::FullNat => "fullnat",
        Method::DirectRoute => "dr",
        Method::Tunnel => "tun",
    }
}

/// New TCP connections: SYNs of fresh tuples scheduled (rr), inserted and
/// forwarded; once the table (a million entries) is full, every insert
/// also evicts.
fn new_connections(c: &mut Criterion) {
    let mut group = c.benchmark_group("new_connections");
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("syn", |b| {
        let syns = (0..4_000_000).map(|i| segment(i, TcpFlags::SYN)).collect();
        let mut replay = Replay::new(1 << 20, Method::Nat, syns);
        b.iter(|| replay.burst(Instant(2)));
    });
    group.finish();
}

/// Real servers with a few connections each, different per server, so
/// that the least-connection schedulers have something to compare; read
/// from an array, as a worker reads its counters.
struct Busy([Connections; 10]);

impl Busy {
    fn new() -> Busy {
        Busy(std::array::from_fn(|slot| Connections {
            active: (slot as u64 * 7) % 11 + 1,
            inactive: (slot as u64 * 13) % 17,
        }))
    }
}

impl Load for Busy {
    fn connections(&self, slot: u32) -> Connections {
        self.0.get(slot as usize).copied().unwrap_or_default()
    }
}

/// One pick per iteration for every scheduler over 10 real servers of
/// weights 1 to 10, each pick from another client (sh and mh hash it);
/// lblc and lblcr see one destination, the VIP, as for a service that is
/// not a firewall mark. mh uses its default table (M = 65537).
fn scheduler_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler_pick");
    let real_servers: Vec<RealServer> = (1..=10u32)
        .map(|weight| RealServer {
            slot: weight - 1,
            address: IpAddr::V4(Ipv4Addr::new(198, 18, 1, weight as u8)),
            port: 80,
            weight,
            method: Method::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect();
    let busy = Busy::new();
    for kind in SchedulerKind::ALL {
        let service = Service::new(0, 6, IpAddr::V4(VIP), 80, kind, real_servers.clone());
        let mut state = SchedulerState::with_seed(1);
        state.prepare(&service);
        group.bench_function(format!("{}/10 servers", kind.name()), |b| {
            let mut input = PickInput {
                client: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                client_port: 40000,
                destination: IpAddr::V4(VIP),
                destination_port: 80,
                now: Instant(0),
                load: &busy,
            };
            let mut client = 0x0a01_0203u32;
            b.iter(|| {
                client = client.wrapping_add(0x9e37_79b9);
                input.client = IpAddr::V4(Ipv4Addr::from(client));
                black_box(state.pick(&service, &input))
            })
        });
    }
    group.finish();
}

fn udp_conn(i: u32) -> Conn<Ipv4Addr> {
    let client = (
        Ipv4Addr::from(0x0a00_0000 + i / 60_000),
        1_000 + (i % 60_000) as u16,
    );
    Conn::new(
        17,
        Method::Nat,
        client,
        (VIP, 53),
        (Ipv4Addr::new(198, 18, 1, 11), 53),
        client,
        0,
        0,
    )
}

/// The connection table alone: lookups that hit, lookups that miss
/// followed by an insert, and expiry, with 1 and 10 million entries.
fn conn_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("conn_table");
    group.sample_size(10);
    for entries in [1_000_000u32, 10_000_000] {
        let timeouts = StateTimeouts::default();
        let mut table: ConnTable<Ipv4Addr> = ConnTable::new(entries, SEED, &timeouts, Instant(0));
        for i in 0..entries {
            let _ = table.insert(udp_conn(i), Instant(0));
        }
        println!(
            "conn_table/{entries}: {:.1} bytes per connection, both directions included",
            table.memory_bytes() as f64 / f64::from(entries)
        );
        // A stride coprime to the size visits entries in a cache-hostile order.
        let stride = 7_919u32;
        let mut at = 0u32;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("lookup_hit", entries), |b| {
            b.iter(|| {
                at = (at + stride) % entries;
                black_box(table.lookup(&udp_conn(at).in_key()))
            })
        });
        group.bench_function(BenchmarkId::new("lookup_miss_insert", entries), |b| {
            b.iter_custom(|iterations| {
                let mut table: ConnTable<Ipv4Addr> =
                    ConnTable::new(iterations.max(1) as u32, SEED, &timeouts, Instant(0));
                let start = std::time::Instant::now();
                for i in 0..iterations as u32 {
                    let conn = udp_conn(i);
                    if table.lookup(&conn.in_key()).is_none() {
                        let _ = table.insert(conn, Instant(0));
                    }
                }
                start.elapsed()
            })
        });
        drop(table);
        group.bench_function(BenchmarkId::new("expire", entries), |b| {
            b.iter_custom(|iterations| {
                let count = iterations.max(1) as u32;
                let mut table: ConnTable<Ipv4Addr> =
                    ConnTable::new(count, SEED, &timeouts, Instant(0));
                for i in 0..count {
                    let _ = table.insert(udp_conn(i), Instant(0));
                }
                let later = Instant(0) + Duration::from_secs(301);
                let start = std::time::Instant::now();
                while !table.is_empty() {
                    table.expire(later, 1024, |conn| {
                        black_box(conn);
                    });
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// TSC cycles per nanosecond, measured against the system clock.
fn print_tsc_rate() {
    let start = (dpdk_bind::tsc(), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let cycles = dpdk_bind::tsc() - start.0;
    let nanos = start.1.elapsed().as_nanos() as f64;
    println!(
        "TSC: {:.3} cycles per nanosecond (cycles per packet = ns per packet x this)",
        cycles as f64 / nanos
    );
}

fn tsc_rate(_: &mut Criterion) {
    print_tsc_rate();
}

criterion_group!(
    benches,
    tsc_rate,
    established,
    new_connections,
    scheduler_pick,
    conn_table
);
criterion_main!(benches);
