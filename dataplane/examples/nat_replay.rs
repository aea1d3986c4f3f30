//! Replays established flows (NAT unless another forwarding method is
//! named) through one engine in a tight loop and prints the cost per
//! packet: a fixed workload for profilers, without a benchmark framework's
//! own work in the profile.
//!
//! ```sh
//! cargo run --release -p dataplane --example nat_replay -- FLOWS BURSTS [nat|dr|tun|fullnat]
//! valgrind --tool=callgrind target/release/examples/nat_replay 1000 20000
//! perf record -e cpu-clock target/release/examples/nat_replay 1000 2000000
//! ```

use dataplane::conn::Method;
use dataplane::director::BURST;
use dataplane::testing::replay::Replay;
use dataplane::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|arg| arg.parse::<usize>().ok());
    let method = match args.get(2).map(String::as_str) {
        None | Some("nat") => Some(Method::Nat),
        Some("dr") => Some(Method::DirectRoute),
        Some("tun") => Some(Method::Tunnel),
        Some("fullnat") => Some(Method::FullNat),
        Some(_) => None,
    };
    let (Some(flows), Some(bursts), Some(method)) = (number(0), number(1), method) else {
        eprintln!("usage: nat_replay FLOWS BURSTS [nat|dr|tun|fullnat]");
        std::process::exit(2);
    };
    let mut replay = Replay::established(method, flows.max(1), (2 * flows).max(1024) as u32);
    let start = std::time::Instant::now();
    let cycles = dpdk_bind::tsc();
    for _ in 0..bursts {
        replay.burst(Instant(3));
    }
    let cycles = dpdk_bind::tsc() - cycles;
    let packets = (bursts * BURST) as f64;
    println!(
        "{method:?}, {flows} flows: {:.1} ns, {:.0} TSC cycles per packet ({packets} packets)",
        start.elapsed().as_nanos() as f64 / packets,
        cycles as f64 / packets
    );
}
