//! Replays established NAT flows through one engine in a tight loop and
//! prints the cost per packet: a fixed workload for profilers, without a
//! benchmark framework's own work in the profile.
//!
//! ```sh
//! cargo run --release -p dataplane --example nat_replay -- FLOWS BURSTS
//! valgrind --tool=callgrind target/release/examples/nat_replay 1000 20000
//! perf record -e cpu-clock target/release/examples/nat_replay 1000 2000000
//! ```

use dataplane::conn::Method;
use dataplane::director::BURST;
use dataplane::testing::replay::Replay;
use dataplane::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<usize>());
    let (Some(Ok(flows)), Some(Ok(bursts))) = (args.next(), args.next()) else {
        eprintln!("usage: nat_replay FLOWS BURSTS");
        std::process::exit(2);
    };
    let mut replay = Replay::established(Method::Nat, flows.max(1), (2 * flows).max(1024) as u32);
    let start = std::time::Instant::now();
    let cycles = dpdk_bind::tsc();
    for _ in 0..bursts {
        replay.burst(Instant(3));
    }
    let cycles = dpdk_bind::tsc() - cycles;
    let packets = (bursts * BURST) as f64;
    println!(
        "{flows} flows: {:.1} ns, {:.0} TSC cycles per packet ({packets} packets)",
        start.elapsed().as_nanos() as f64 / packets,
        cycles as f64 / packets
    );
}
