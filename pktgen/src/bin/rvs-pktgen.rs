//! rvs-pktgen: a DPDK packet generator, sink and minimal responder for
//! benchmarking L4 load balancers. See `rvs-pktgen --help` and the crate
//! docs of `rvs_pktgen`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use dataplane::wire::MacAddr;
use dpdk_bind::Eal;
use rvs_pktgen::flows::{ClientSpace, Steering};
use rvs_pktgen::generator::{self, Config, PortNames};
use rvs_pktgen::packet::{Endpoints, MAX_FRAME, MIN_FRAME, Profile, Template};
use rvs_pktgen::pcap;

/// A DPDK load generator for L4 load balancers: the client side sends a
/// traffic profile to a VIP; the server side (the real servers' side)
/// counts what the director forwarded and, with --respond, answers like a
/// minimal server (ARP, SYN-ACK, ACK/FIN-ACK, UDP echo), so that NAT
/// replies come back through the director. Progress lines go to stderr
/// every second, the JSON summary to stdout.
///
/// Examples (EAL arguments after --):
///
///   rvs-pktgen --client-port net_memif0 --server-port net_memif1 --flows 1000 --duration 10 --
///   -l 0 --in-memory --single-file-segments
///   --vdev=net_memif0,role=server,socket=/run/rvs-bench/wan.sock
///   --vdev=net_memif1,role=server,socket=/run/rvs-bench/lan.sock
///
///   rvs-pktgen --write-pcap flows.pcap --profile udp --flows 1000000
#[derive(Debug, Parser)]
#[command(name = "rvs-pktgen", version, verbatim_doc_comment)]
struct Args {
    /// Traffic profile.
    #[arg(long, value_enum, default_value = "udp")]
    profile: Profile,
    /// Frame size in bytes, FCS included (64..=1518); SYNs and the
    /// handshake's control segments are always 64.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(i64::from(MIN_FRAME)..=i64::from(MAX_FRAME)))]
    size: u16,
    /// Flows per round: client (address, port) tuples, each sent once per
    /// round. For syn and handshake, the number of new tuples per round
    /// (tuples march on through the client space).
    #[arg(long, default_value_t = 1)]
    flows: u64,
    /// Client addresses (CIDR); the tuples use its addresses in order.
    #[arg(long, default_value = "198.19.0.0/16")]
    clients: String,
    /// Client source ports, FIRST-LAST.
    #[arg(long, default_value = "1024-65535")]
    client_ports: String,
    /// The service the traffic goes to.
    #[arg(long, default_value = "198.18.0.10:80")]
    vip: SocketAddrV4,
    /// Packets per second the client side originates; 0: as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Skip the warm-up round (each flow once before measuring, a SYN for
    /// tcp-established, so that the director creates the connections).
    #[arg(long)]
    no_warmup: bool,
    /// Packets per second of the warm-up round; 0: as fast as possible.
    #[arg(long, default_value_t = 0)]
    warmup_rate: u64,
    /// One packet in N carries a latency stamp (rounded up to a power of two).
    #[arg(long, default_value_t = 1024)]
    sample: u32,

    /// DPDK port (device name) of the client side, e.g. net_memif0.
    #[arg(long)]
    client_port: Option<String>,
    /// DPDK port of the server (real-server) side; without it, only what
    /// comes back to the client side is counted.
    #[arg(long)]
    server_port: Option<String>,
    /// The client side's own address: the clients' gateway, answered by
    /// ARP (the client addresses are answered too).
    #[arg(long, default_value = "198.18.0.2")]
    client_address: Ipv4Addr,
    /// The director's MAC towards the clients; asked by ARP if not given.
    #[arg(long)]
    vip_mac: Option<MacAddr>,
    /// Real-server addresses the server side answers ARP for.
    #[arg(long, value_delimiter = ',', default_value = "198.18.1.11,198.18.1.12")]
    real_servers: Vec<Ipv4Addr>,
    /// Answer like a minimal server on the server side.
    #[arg(long)]
    respond: bool,
    /// Queue pairs on each port (a memif peer must configure as many);
    /// both sides poll them all.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
    /// How the client side spreads flows over the queues: `hash` (like a
    /// NIC's RSS, blind to the forwarder's workers) or `owner` (to the rvsd
    /// worker that owns each flow).
    #[arg(long, value_enum, default_value = "hash")]
    steering: Steering,
    /// Seconds to wait for links and the VIP's ARP reply.
    #[arg(long, default_value_t = 30.0)]
    setup_timeout: f64,
    /// Seconds to keep the ports up after printing the summary, or until
    /// SIGINT/SIGTERM: lets a harness stop the forwarder first (a memif
    /// peer that disappears under a polling forwarder can crash it).
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,

    /// Write one round of the profile's frames (one per flow) to this pcap
    /// file and exit, without DPDK; the destination MAC is --vip-mac
    /// (default: net_pcap's first port, 02:70:63:61:70:00).
    #[arg(long)]
    write_pcap: Option<PathBuf>,
    /// Source MAC of the frames written with --write-pcap.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    client_mac: MacAddr,

    /// EAL arguments (lcores, memory, --vdev ...).
    #[arg(last = true)]
    eal: Vec<String>,
}

/// net_pcap's MAC for its first port, where a pcap replay arrives.
const PCAP_PORT_MAC: MacAddr = MacAddr([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rvs-pktgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let clients = client_space(&args.clients, &args.client_ports)?;
    if args.flows == 0 {
        return Err("--flows must be at least 1".to_owned());
    }
    if args.flows > clients.capacity() {
        return Err(format!(
            "--flows {} exceeds the client space {clients} ({} tuples): widen --clients or --client-ports",
            args.flows,
            clients.capacity()
        ));
    }
    if let Some(path) = &args.write_pcap {
        return write_pcap(args, clients, path);
    }
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value).map_err(|_| format!("--{name} {value}: not a duration"))
    };
    let config = Config {
        profile: args.profile,
        frame_size: args.size,
        flows: args.flows,
        clients,
        client_address: args.client_address,
        vip: args.vip,
        vip_mac: args.vip_mac,
        real_servers: args.real_servers.clone(),
        respond: args.respond,
        queues: args.queues,
        steering: args.steering,
        rate_pps: args.rate,
        warmup_rate_pps: args.warmup_rate,
        warmup: !args.no_warmup,
        duration: seconds(args.duration, "duration")?,
        sample_every: args.sample,
        progress: !args.quiet,
        setup_timeout: seconds(args.setup_timeout, "setup-timeout")?,
        linger: seconds(args.linger, "linger")?,
    };
    let names = PortNames {
        client: args
            .client_port
            .clone()
            .ok_or("--client-port is required (or --write-pcap)")?,
        server: args.server_port.clone(),
    };
    if args.eal.is_empty() {
        return Err(
            "give EAL arguments after --, e.g. -- -l 0 --in-memory --vdev=net_memif0,role=server,socket=/tmp/a.sock"
                .to_owned(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|error| format!("cannot handle signal {signal}: {error}"))?;
    }
    let eal = Eal::init(&args.eal).map_err(|error| format!("EAL: {error}"))?;
    let mut printed = Ok(());
    generator::run(&eal, &config, &names, &stop, |summary| {
        printed = print_summary(summary);
    })
    .map_err(|error| error.to_string())?;
    printed
}

/// Prints the summary as JSON on stdout, flushed: a harness reads it
/// while the ports linger.
fn print_summary(summary: &rvs_pktgen::summary::Summary) -> Result<(), String> {
    let json = serde_json::to_string_pretty(summary).map_err(|error| error.to_string())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{json}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("stdout: {error}"))
}

/// The client space of a CIDR and a FIRST-LAST port range.
fn client_space(cidr: &str, ports: &str) -> Result<ClientSpace, String> {
    let bad_cidr = || format!("--clients {cidr}: expected ADDRESS/PREFIX, prefix 1..=32");
    let (address, prefix) = cidr.split_once('/').ok_or_else(bad_cidr)?;
    let address: Ipv4Addr = address.parse().map_err(|_| bad_cidr())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad_cidr())?;
    if !(1..=32).contains(&prefix) {
        return Err(bad_cidr());
    }
    let addresses = 1u32 << (32 - prefix);
    let network = Ipv4Addr::from_bits(address.to_bits() & !(addresses - 1));
    let bad_ports = || format!("--client-ports {ports}: expected FIRST-LAST, 1..=65535");
    let (first, last) = ports.split_once('-').ok_or_else(bad_ports)?;
    let first: u16 = first.parse().map_err(|_| bad_ports())?;
    let last: u16 = last.parse().map_err(|_| bad_ports())?;
    if first == 0 || last < first {
        return Err(bad_ports());
    }
    ClientSpace::new(network, addresses, first, last - first + 1).map_err(|error| error.to_string())
}

fn write_pcap(args: &Args, clients: ClientSpace, path: &PathBuf) -> Result<(), String> {
    let endpoints = Endpoints {
        client_mac: args.client_mac,
        next_hop_mac: args.vip_mac.unwrap_or(PCAP_PORT_MAC),
        vip: args.vip,
    };
    let template = Template::new(args.profile.kind(), &endpoints, args.size, clients.tuple(0));
    let mut cursor = clients
        .cursor(args.flows)
        .map_err(|error| error.to_string())?;
    let file = File::create(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut out = BufWriter::new(file);
    let frames = pcap::write_round(&mut out, &template, &mut cursor)
        .and_then(|frames| out.flush().map(|()| frames))
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if !args.quiet {
        eprintln!(
            "rvs-pktgen: wrote {frames} {:?} frames of {} bytes to {}",
            args.profile,
            template.len(),
            path.display()
        );
    }
    Ok(())
}
