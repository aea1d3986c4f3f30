//! The demo behind scripts/demo.sh: a client, rvsd and two nginx real
//! servers in network namespaces; a NAT service configured with rvsadm;
//! curl requests alternating between the real servers; the listing. The
//! lab is torn down at the end, on Ctrl-C and on failure.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rvs_lab::{NatLab, REAL_SERVERS, RvsdOptions, VIP};

fn main() -> ExitCode {
    let hugepages = std::env::args().skip(1).any(|arg| arg == "--hugepages");
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&interrupted)) {
            eprintln!("rvs-demo: cannot handle signals: {error}");
            return ExitCode::FAILURE;
        }
    }
    let step = |text: &str| {
        if interrupted.load(Ordering::Relaxed) {
            println!("\ninterrupted: tearing the lab down");
            return false;
        }
        println!("\n== {text}");
        true
    };
    // Panics (a failed step) unwind through `lab`, whose drop removes
    // every namespace and process.
    let outcome = std::panic::catch_unwind(|| demo(&step, hugepages));
    match outcome {
        Ok(true) => {
            println!("\n== done: the lab is torn down");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::from(130),
        Err(_) => {
            eprintln!("rvs-demo: failed; the lab is torn down");
            ExitCode::FAILURE
        }
    }
}

fn demo(step: &dyn Fn(&str) -> bool, hugepages: bool) -> bool {
    if !step("building the lab: client, rvsd (DPDK af_packet ports) and two nginx real servers") {
        return false;
    }
    let options = RvsdOptions {
        hugepages,
        ..RvsdOptions::default()
    };
    let lab = NatLab::start("demo", &options);
    println!(
        "client {}  ->  VIP {VIP}:80 on rvsd  ->  real servers {} and {} (NAT)",
        rvs_lab::CLIENT,
        REAL_SERVERS[0],
        REAL_SERVERS[1]
    );

    if !step("configuring a NAT service with rvsadm (ipvsadm syntax)") {
        return false;
    }
    let mut commands = vec![format!("-A -t {VIP}:80 -s rr")];
    commands.extend(
        REAL_SERVERS
            .iter()
            .map(|rs| format!("-a -t {VIP}:80 -r {rs}:80 -m")),
    );
    for args in &commands {
        println!("$ rvsadm {args}");
        lab.rvsadm_ok(args);
    }

    if !step(&format!("10 requests: curl http://{VIP}/ from the client")) {
        return false;
    }
    let responses = lab.http_requests("/", 10);
    for (i, response) in responses.iter().enumerate() {
        println!("request {:>2}: answered by {response}", i + 1);
    }
    let alternating = responses.iter().enumerate().all(|(i, response)| {
        response
            == if i % 2 == 0 {
                &responses[0]
            } else {
                &responses[1]
            }
    }) && responses.len() == 10
        && responses[0] != responses[1];
    assert!(
        alternating,
        "the real servers did not alternate: {responses:?}"
    );
    println!("the requests alternate between the real servers (round robin)");

    if !step("rvsadm -Ln") {
        return false;
    }
    print!("{}", lab.rvsadm_ok("-Ln"));
    if !step("rvsadm -Ln --stats") {
        return false;
    }
    print!("{}", lab.rvsadm_ok("-Ln --stats"));
    true
}
