//! ipvsadm's listings, byte for byte.
//!
//! The widths, the truncation of long IPv4 names (33 columns for a service,
//! 28 for a real server), the trailing blanks of `%-10u` columns and the
//! K/M/G/T scaling are ipvsadm 1.31's; `testdata/` holds listings printed by
//! the real ipvsadm for the tables the tests build.
//!
//! `--health` (rvs's own) adds a last column to the default view's real
//! servers, and lists the real servers that their health check removed
//! (which the dataplane no longer uses, and plain `-L` leaves out, as
//! ipvsadm does under keepalived):
//!
//! ```text
//!   -> RemoteAddress:Port           Forward Weight ActiveConn InActConn  Health Detail
//!   -> 198.18.1.11:80               Masq    1      2          5          UP
//!   -> 198.18.1.12:80               Masq    0      0          3          DOWN   inhibited: connection refused
//! ```
//!
//! The column holds `UP`, `DOWN`, or `-` for a real server whose service
//! has no health check; then, when there is something to say, why: the
//! failures so far of an up real server (`1 of 2 failures: HTTP status
//! 500`), the action and last failure of a down one (`removed: timeout
//! after 5s`), or its way back (`inhibited, 1 of 2 successes`).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::args::{ConnListOptions, ListOptions, ListView};
use super::names::Names;
use crate::model::{
    ForwardMethod, HealthState, OnFailure, Protocol, RealServerHealth, RealServerStatus,
    SCHEDULER_FLAGS, SchedulerName, ServiceSpec, ServiceStatus, Timeouts,
};
use crate::protocol::{ConnEntry, DaemonInfo};

/// The IPVS version ipvsadm prints; rvs behaves as this version of IPVS.
pub const IPVS_VERSION: &str = "1.2.1";

/// `ipvsadm -L` and its views. `info` gives the first line; ipvsadm leaves
/// it out when listing one service.
pub fn listing(
    info: Option<&DaemonInfo>,
    services: &[ServiceStatus],
    options: &ListOptions,
    names: &Names,
) -> String {
    let namer = Namer::new(names, options.numeric);
    let mut out = String::new();
    if let Some(info) = info {
        let _ = writeln!(
            out,
            "IP Virtual Server version {IPVS_VERSION} (size={})",
            info.connection_table_size
        );
    }
    out.push_str(&title(options.view, options.health));
    for service in ordered_services(services, options.sort) {
        service_lines(&mut out, service, options, &namer);
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(timeouts: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        timeouts.tcp, timeouts.tcp_fin, timeouts.udp
    )
}

/// The title of `ipvsadm -L -c`. With `--persistent-conn`, ipvsadm also
/// names its persistence engine columns; rows fill them only for a
/// connection with an engine, which rvs never has.
pub fn connections_title(options: &ConnListOptions) -> String {
    let mut title = format!(
        "IPVS connection entries\npro expire {:<11} {:<18} {:<18} ",
        "state", "source", "virtual"
    );
    if options.persistence_engine {
        let _ = write!(title, "{:<18} {:<16} pe_data", "destination", "pe name");
    } else {
        title.push_str("destination");
    }
    title.push('\n');
    title
}

/// The rows of `ipvsadm -L -c` (ipvsadm's `print_conn`): protocol, time
/// left as minutes:seconds, state, then client, virtual and destination
/// endpoints, never cut. A template's client is its network, port 0.
pub fn connections(entries: &[ConnEntry], options: &ConnListOptions, names: &Names) -> String {
    let namer = Namer::new(names, options.numeric);
    let mut out = String::new();
    for entry in entries {
        let expire = format!("{:02}:{:02}", entry.expires / 60, entry.expires % 60);
        let endpoint = |address| namer.endpoint(address, entry.protocol);
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            entry.protocol.ipvsadm_name(),
            entry.state,
            endpoint(entry.client),
            endpoint(entry.virtual_address),
            endpoint(entry.real_server),
        );
    }
    out
}

/// `rvsadm --workers` (rvs's own listing): a row per worker, then its
/// non-zero drop and event counters.
pub fn workers(workers: &[crate::protocol::WorkerStatus]) -> String {
    let mut out = format!(
        "{:<6} {:<6} {:>14} {:>14} {:>11} {:>12}\n",
        "Worker", "Lcore", "RxPackets", "TxPackets", "Connections", "Cycles/Pkt"
    );
    for worker in workers {
        let cycles = worker
            .busy_cycles
            .checked_div(worker.rx_packets)
            .map_or_else(|| "-".to_owned(), |cycles| cycles.to_string());
        out.push_str(&format!(
            "{:<6} {:<6} {:>14} {:>14} {:>11} {:>12}\n",
            worker.index,
            worker.lcore,
            worker.rx_packets,
            worker.tx_packets,
            worker.connections,
            cycles
        ));
        for (title, counters) in [("drops", &worker.drops), ("events", &worker.events)] {
            let nonzero: Vec<String> = counters
                .iter()
                .filter(|(_, value)| **value > 0)
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            if !nonzero.is_empty() {
                out.push_str(&format!("  {title}: {}\n", nonzero.join(", ")));
            }
        }
    }
    out
}

/// ipvsadm's `print_largenum`: right-aligned in 9 columns (a blank and
/// 8 digits); from 100 million on, scaled to K, M, G or T in 8 digits and
/// the unit, unless `exact`.
pub fn large_number(value: u64, exact: bool) -> String {
    if exact {
        let digits = value.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    const SCALES: [(u64, u64, char); 4] = [
        (1_000_000_000, 1_000, 'K'),
        (100_000_000_000, 1_000_000, 'M'),
        (100_000_000_000_000, 1_000_000_000, 'G'),
        (u64::MAX, 1_000_000_000_000, 'T'),
    ];
    if value < 100_000_000 {
        return format!("{value:9}");
    }
    let (_, divisor, unit) = SCALES
        .into_iter()
        .find(|(below, _, _)| value < *below)
        .unwrap_or(SCALES[3]);
    format!("{:8}{unit}", value / divisor)
}

/// Services in ipvsadm's order (`ipvs_cmp_services`: family, protocol,
/// address, port), or as the daemon gave them.
pub(super) fn ordered_services(services: &[ServiceStatus], sort: bool) -> Vec<&ServiceStatus> {
    let mut ordered: Vec<&ServiceStatus> = services.iter().collect();
    if sort {
        ordered.sort_by(|a, b| {
            let key = |s: &ServiceStatus| (s.spec.address.is_ipv6(), s.spec.protocol);
            key(a)
                .cmp(&key(b))
                .then_with(|| compare_endpoints(a.spec.address, b.spec.address))
        });
    }
    ordered
}

/// Real servers in ipvsadm's order (`ipvs_cmp_dests`: address, port);
/// with `removed`, also those their health check took out of the service.
pub(super) fn ordered_real_servers(
    service: &ServiceStatus,
    sort: bool,
    removed: bool,
) -> Vec<&RealServerStatus> {
    let mut ordered: Vec<&RealServerStatus> = service.real_servers.iter().collect();
    if removed {
        ordered.extend(&service.removed_real_servers);
    }
    if sort {
        ordered.sort_by(|a, b| compare_endpoints(a.spec.address, b.spec.address));
    }
    ordered
}

// ipvsadm compares addresses by subtracting them as C ints, which wraps
// for addresses more than 2^31 apart; rvsadm orders them as numbers.
fn compare_endpoints(a: SocketAddr, b: SocketAddr) -> Ordering {
    let number = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    (a.is_ipv6(), number(a.ip()), a.port()).cmp(&(b.is_ipv6(), number(b.ip()), b.port()))
}

/// Turns addresses and ports into what ipvsadm prints: names from the
/// system tables unless `-n`.
pub(super) struct Namer<'a> {
    names: Option<&'a Names>,
}

impl<'a> Namer<'a> {
    pub(super) fn new(names: &'a Names, numeric: bool) -> Self {
        Namer {
            names: (!numeric).then_some(names),
        }
    }

    /// ipvsadm's `addrport_to_anyname`: `host:port`, IPv6 in brackets, in
    /// a 60-byte buffer (so at most 59 characters).
    pub(super) fn endpoint(&self, address: SocketAddr, protocol: Protocol) -> String {
        let host = self
            .names
            .and_then(|names| names.host_name(address.ip()))
            .map_or_else(|| address.ip().to_string(), str::to_owned);
        let port = self
            .names
            .and_then(|names| names.port_name(address.port(), protocol))
            .map_or_else(|| address.port().to_string(), str::to_owned);
        let text = if address.is_ipv4() {
            format!("{host}:{port}")
        } else {
            format!("[{host}]:{port}")
        };
        truncate(text, 59)
    }
}

fn title(view: ListView, health: bool) -> String {
    // The second line names the real servers' columns where they differ
    // from the services'.
    let (services, real_servers) = match view {
        ListView::Stats => (
            "               Conns   InPkts  OutPkts  InBytes OutBytes",
            "",
        ),
        ListView::Rate => (
            "                 CPS    InPPS   OutPPS    InBPS   OutBPS",
            "",
        ),
        ListView::Thresholds => (
            "            Uthreshold Lthreshold ActiveConn InActConn ",
            "",
        ),
        ListView::PersistentConn => (
            "            Weight    PersistConn ActiveConn InActConn ",
            "",
        ),
        ListView::TunnelInfo => (
            " Scheduler Flags",
            "           Forward TunnelInfo    Weight ActiveConn InActConn",
        ),
        ListView::Connections => (
            " Scheduler Flags",
            "           Forward Weight ActiveConn InActConn",
        ),
    };
    let health = if health { "  Health Detail" } else { "" };
    format!("Prot LocalAddress:Port{services}\n  -> RemoteAddress:Port{real_servers}{health}\n")
}

fn service_lines(
    out: &mut String,
    service: &ServiceStatus,
    options: &ListOptions,
    namer: &Namer<'_>,
) {
    let spec = &service.spec;
    let ipv4 = spec.address.is_ipv4();
    let name = format!(
        "{:<4} {}",
        spec.protocol.ipvsadm_name(),
        namer.endpoint(spec.address, spec.protocol)
    );
    let name = if ipv4 { truncate(name, 33) } else { name };
    let exact = options.exact;
    match options.view {
        ListView::Stats => {
            let _ = write!(out, "{name:<33}");
            counters(out, &stats_values(&service.stats), exact);
        }
        ListView::Rate => {
            let _ = write!(out, "{name:<33}");
            counters(out, &rate_values(&service.rates), exact);
        }
        _ => {
            let _ = write!(out, "{name} {}", spec.scheduler);
            if let Some(flags) = scheduler_flags(spec) {
                let _ = write!(out, " ({flags})");
            }
            out.push_str(&persistence_suffix(spec, " persistent ", " mask "));
        }
    }
    out.push('\n');
    for real in ordered_real_servers(service, options.sort, options.health) {
        real_server_line(out, real, spec.protocol, options, namer);
    }
}

/// ` persistent 600 mask 255.255.255.0` (or ` -p 600 -M ...`): the
/// persistence of a service after the words a listing or a save line uses.
pub(super) fn persistence_suffix(spec: &ServiceSpec, persistent: &str, mask: &str) -> String {
    let Some(persistence) = &spec.persistence else {
        return String::new();
    };
    let mut text = format!("{persistent}{}", persistence.timeout);
    match spec.address.ip() {
        IpAddr::V4(_) if persistence.netmask != 32 => {
            let _ = write!(text, "{mask}{}", ipv4_mask(persistence.netmask));
        }
        IpAddr::V6(_) if persistence.netmask != 128 => {
            let _ = write!(text, "{mask}{}", persistence.netmask);
        }
        _ => {}
    }
    text
}

fn real_server_line(
    out: &mut String,
    real: &RealServerStatus,
    protocol: Protocol,
    options: &ListOptions,
    namer: &Namer<'_>,
) {
    let spec = &real.spec;
    let name = namer.endpoint(spec.address, protocol);
    let name = if spec.address.is_ipv4() {
        truncate(name, 28)
    } else {
        name
    };
    let exact = options.exact;
    let _ = match options.view {
        ListView::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            counters(out, &stats_values(&real.stats), exact);
            writeln!(out)
        }
        ListView::Rate => {
            let rates = &real.rates;
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                rates.cps, rates.in_pps, rates.out_pps
            );
            counters(out, &[rates.in_bps, rates.out_bps], exact);
            writeln!(out)
        }
        ListView::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
            spec.upper_threshold, spec.lower_threshold, real.active_conns, real.inactive_conns
        ),
        ListView::PersistentConn => writeln!(
            out,
            "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
            spec.weight, real.persistent_conns, real.active_conns, real.inactive_conns
        ),
        ListView::TunnelInfo => {
            let tunnel = if spec.forward == ForwardMethod::Tunnel {
                "ipip"
            } else {
                "n/a"
            };
            writeln!(
                out,
                "  -> {name:<28} {:<7} {tunnel:<13} {:<6} {:<10} {:<10}",
                spec.forward.ipvsadm_name(),
                spec.weight,
                real.active_conns,
                real.inactive_conns
            )
        }
        ListView::Connections => {
            let _ = write!(
                out,
                "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
                spec.forward.ipvsadm_name(),
                spec.weight,
                real.active_conns,
                real.inactive_conns
            );
            if options.health {
                let _ = write!(out, " {}", health_column(real.health.as_ref()));
            }
            writeln!(out)
        }
    };
}

/// `--health`'s column (see the module docs).
fn health_column(health: Option<&RealServerHealth>) -> String {
    let Some(health) = health else {
        return "-".to_owned();
    };
    let record = &health.record;
    let reason = record.last_failure.as_deref().unwrap_or("");
    let detail = match record.state {
        HealthState::Up if record.failures == 0 => String::new(),
        HealthState::Up => format!(
            "{} of {} failures: {reason}",
            record.failures,
            u64::from(health.retry) + 1
        ),
        HealthState::Down => {
            let action = match health.on_failure {
                OnFailure::Inhibit => "inhibited",
                OnFailure::Remove => "removed",
            };
            if record.successes > 0 {
                format!(
                    "{action}, {} of {} successes",
                    record.successes, health.rise
                )
            } else {
                format!("{action}: {reason}")
            }
        }
    };
    if detail.is_empty() {
        record.state.to_string()
    } else {
        format!("{:<6} {detail}", record.state.to_string())
    }
}

fn stats_values(stats: &crate::model::Stats) -> [u64; 5] {
    [
        stats.conns,
        stats.in_packets,
        stats.out_packets,
        stats.in_bytes,
        stats.out_bytes,
    ]
}

fn rate_values(rates: &crate::model::Rates) -> [u64; 5] {
    [
        rates.cps,
        rates.in_pps,
        rates.out_pps,
        rates.in_bps,
        rates.out_bps,
    ]
}

fn counters(out: &mut String, values: &[u64], exact: bool) {
    for value in values {
        out.push_str(&large_number(*value, exact));
    }
}

/// The flag bits a service's flags set (names that are not flags are the
/// daemon's business and ignored here).
fn flag_bits(spec: &ServiceSpec) -> Vec<u8> {
    let mut bits: Vec<u8> = spec
        .scheduler_flags
        .iter()
        .filter_map(|name| SCHEDULER_FLAGS.iter().find(|flag| flag.name == *name))
        .map(|flag| flag.bit)
        .collect();
    bits.sort_unstable();
    bits.dedup();
    bits
}

/// ipvsadm's `print_sched_flags`: `sh` and `mh` show their own two flags,
/// other schedulers flag-1..3; comma-separated. `None` without flags.
pub(super) fn scheduler_flags(spec: &ServiceSpec) -> Option<String> {
    let bits = flag_bits(spec);
    if bits.is_empty() {
        return None;
    }
    let own_names = matches!(spec.scheduler, SchedulerName::Sh | SchedulerName::Mh);
    SCHEDULER_FLAGS
        .iter()
        .filter(|flag| {
            let named_here = if own_names {
                flag.scheduler == Some(spec.scheduler)
            } else {
                flag.scheduler.is_none()
            };
            named_here && bits.contains(&flag.bit)
        })
        .map(|flag| flag.name)
        .collect::<Vec<_>>()
        .join(",")
        .into()
}

/// A prefix length as a dotted IPv4 mask (`24` -> `255.255.255.0`).
pub(super) fn ipv4_mask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Persistence, Rates, RealServerSpec, Stats};

    /// The names the golden listings were printed with.
    pub(in crate::ipvsadm) fn names() -> Names {
        Names::from_tables(
            "domain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\nhttps 443/tcp\nhttps 443/udp\nhttp-alt 8080/tcp webcache\n",
            "127.0.0.1 localhost\n",
        )
    }

    fn stats(values: [u64; 10]) -> (Stats, Rates) {
        let [
            conns,
            in_packets,
            out_packets,
            in_bytes,
            out_bytes,
            cps,
            in_pps,
            out_pps,
            in_bps,
            out_bps,
        ] = values;
        (
            Stats {
                conns,
                in_packets,
                out_packets,
                in_bytes,
                out_bytes,
            },
            Rates {
                cps,
                in_pps,
                out_pps,
                in_bps,
                out_bps,
            },
        )
    }

    fn real(
        address: &str,
        forward: ForwardMethod,
        weight: u32,
        thresholds: (u32, u32),
        conns: (u64, u64, u64),
        values: [u64; 10],
    ) -> RealServerStatus {
        let (stats, rates) = stats(values);
        RealServerStatus {
            spec: RealServerSpec {
                address: address.parse().unwrap(),
                weight,
                forward,
                upper_threshold: thresholds.0,
                lower_threshold: thresholds.1,
            },
            active_conns: conns.0,
            inactive_conns: conns.1,
            persistent_conns: conns.2,
            stats,
            rates,
            health: None,
        }
    }

    fn service(
        protocol: Protocol,
        address: &str,
        scheduler: SchedulerName,
        flags: &[&str],
        persistence: Option<(u32, u8)>,
        values: [u64; 10],
        real_servers: Vec<RealServerStatus>,
    ) -> ServiceStatus {
        let (stats, rates) = stats(values);
        ServiceStatus {
            spec: ServiceSpec {
                protocol,
                address: address.parse().unwrap(),
                scheduler,
                scheduler_flags: flags.iter().map(|flag| (*flag).to_owned()).collect(),
                persistence: persistence.map(|(timeout, netmask)| Persistence { timeout, netmask }),
                local_addresses: Vec::new(),
            },
            stats,
            rates,
            real_servers,
            removed_real_servers: Vec::new(),
        }
    }

    /// The table of `testdata/`, in the daemon's (configuration) order,
    /// which differs from ipvsadm's sorted one.
    pub(in crate::ipvsadm) fn golden_table() -> Vec<ServiceStatus> {
        use ForwardMethod::*;
        use SchedulerName::*;
        vec![
            service(
                Protocol::Tcp,
                "198.18.0.10:80",
                Rr,
                &[],
                None,
                [12, 345, 300, 45678, 123456789, 1, 20, 18, 2500, 300000],
                vec![
                    real(
                        "198.18.1.12:80",
                        Masq,
                        1,
                        (0, 0),
                        (3, 7, 0),
                        [6, 200, 180, 30000, 99999999, 0, 10, 9, 1000, 150000],
                    ),
                    real(
                        "198.18.1.11:8080",
                        Masq,
                        1,
                        (100, 50),
                        (2, 5, 1),
                        [6, 145, 120, 15678, 23456790, 1, 10, 9, 1500, 150000],
                    ),
                ],
            ),
            service(
                Protocol::Udp,
                "198.18.0.10:53",
                Sh,
                &["sh-port", "sh-fallback"],
                Some((600, 24)),
                [
                    99999999,
                    100000000,
                    999999999,
                    1000000000,
                    99999999999,
                    100000000,
                    100000000,
                    100000000,
                    100000000,
                    4294967295,
                ],
                vec![real(
                    "198.18.1.11:53",
                    Route,
                    65535,
                    (100, 50),
                    (0, 0, 4),
                    [
                        4294967295,
                        1000000000,
                        99999999,
                        1000000000000,
                        100000000000000,
                        100000000,
                        100000000,
                        100000000,
                        100000000,
                        100000000,
                    ],
                )],
            ),
            service(
                Protocol::Tcp,
                "198.18.100.200:65535",
                Mh,
                &["mh-fallback"],
                None,
                [0; 10],
                vec![real(
                    "198.18.200.222:65535",
                    Tunnel,
                    0,
                    (0, 0),
                    (0, 0, 0),
                    [0; 10],
                )],
            ),
            service(
                Protocol::Tcp,
                "198.18.0.11:443",
                Wlc,
                &["flag-1", "flag-2", "flag-3"],
                None,
                [0; 10],
                vec![],
            ),
        ]
    }

    fn info() -> DaemonInfo {
        DaemonInfo {
            version: "0.1.0".into(),
            connection_table_size: 4096,
            workers: 1,
        }
    }

    fn numeric(view: ListView) -> ListOptions {
        ListOptions {
            service: None,
            view,
            numeric: true,
            exact: false,
            sort: true,
            health: false,
        }
    }

    fn assert_golden(actual: &str, expected: &str) {
        assert!(
            actual == expected,
            "listing differs from ipvsadm's\n--- rvsadm\n{actual}--- ipvsadm\n{expected}"
        );
    }

    #[test]
    fn every_view_matches_ipvsadm() {
        let table = golden_table();
        let cases = [
            (
                numeric(ListView::Connections),
                include_str!("testdata/list.txt"),
            ),
            (
                numeric(ListView::Stats),
                include_str!("testdata/list-stats.txt"),
            ),
            (
                numeric(ListView::Rate),
                include_str!("testdata/list-rate.txt"),
            ),
            (
                numeric(ListView::Thresholds),
                include_str!("testdata/list-thresholds.txt"),
            ),
            (
                numeric(ListView::PersistentConn),
                include_str!("testdata/list-persistent-conn.txt"),
            ),
            (
                numeric(ListView::TunnelInfo),
                include_str!("testdata/list-tun-info.txt"),
            ),
            (
                ListOptions {
                    exact: true,
                    ..numeric(ListView::Stats)
                },
                include_str!("testdata/list-stats-exact.txt"),
            ),
            (
                ListOptions {
                    exact: true,
                    ..numeric(ListView::Rate)
                },
                include_str!("testdata/list-rate-exact.txt"),
            ),
            (
                ListOptions {
                    numeric: false,
                    ..numeric(ListView::Connections)
                },
                include_str!("testdata/list-names.txt"),
            ),
        ];
        for (options, expected) in cases {
            assert_golden(
                &listing(Some(&info()), &table, &options, &names()),
                expected,
            );
        }
    }

    fn health(
        state: HealthState,
        on_failure: OnFailure,
        (failures, successes): (u32, u32),
        last_failure: Option<&str>,
    ) -> Option<RealServerHealth> {
        Some(RealServerHealth {
            record: crate::model::HealthRecord {
                state,
                failures,
                successes,
                last_failure: last_failure.map(str::to_owned),
                ..Default::default()
            },
            on_failure,
            retry: 1,
            rise: 2,
            weight: 1,
        })
    }

    /// The golden table with health checks on its TCP services: an up
    /// real server that failed once, an inhibited one, an up one, and one
    /// on its way back that its check removed. The UDP service has none.
    pub(in crate::ipvsadm) fn checked_table() -> Vec<ServiceStatus> {
        use HealthState::{Down, Up};
        let mut table = golden_table();
        let web = &mut table[0].real_servers;
        web[0].health = health(Up, OnFailure::Inhibit, (1, 0), Some("HTTP status 500"));
        web[1].health = health(Down, OnFailure::Inhibit, (2, 0), Some("connection refused"));
        let hashed = &mut table[2];
        hashed.real_servers[0].health = health(Up, OnFailure::Remove, (0, 0), None);
        let mut removed = real(
            "198.18.200.223:65535",
            ForwardMethod::Tunnel,
            0,
            (0, 0),
            (0, 1, 0),
            [0; 10],
        );
        removed.health = health(Down, OnFailure::Remove, (0, 1), Some("timeout after 5s"));
        hashed.removed_real_servers.push(removed);
        table
    }

    /// Health checks change nothing in ipvsadm's listings; `--health`
    /// adds its column and the removed real servers.
    #[test]
    fn health_shows_only_when_asked_for() {
        let table = checked_table();
        for view in [ListView::Connections, ListView::Stats, ListView::TunnelInfo] {
            assert_eq!(
                listing(Some(&info()), &table, &numeric(view), &names()),
                listing(Some(&info()), &golden_table(), &numeric(view), &names()),
            );
        }
        assert_golden(
            &listing(
                Some(&info()),
                &table,
                &numeric(ListView::Connections),
                &names(),
            ),
            include_str!("testdata/list.txt"),
        );
        let options = ListOptions {
            health: true,
            ..numeric(ListView::Connections)
        };
        assert_eq!(
            listing(Some(&info()), &table, &options, &names()),
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn  Health Detail\n\
             TCP  198.18.0.10:80 rr\n  \
             -> 198.18.1.11:8080             Masq    1      2          5          DOWN   inhibited: connection refused\n  \
             -> 198.18.1.12:80               Masq    1      3          7          UP     1 of 2 failures: HTTP status 500\n\
             TCP  198.18.0.11:443 wlc (flag-1,flag-2,flag-3)\n\
             TCP  198.18.100.200:65535 mh (mh-fallback)\n  \
             -> 198.18.200.222:65535         Tunnel  0      0          0          UP\n  \
             -> 198.18.200.223:65535         Tunnel  0      0          1          DOWN   removed, 1 of 2 successes\n\
             UDP  198.18.0.10:53 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0\n  \
             -> 198.18.1.11:53               Route   65535  0          0          -\n"
        );
    }

    #[test]
    fn one_service_has_no_version_line() {
        let table = golden_table();
        let options = ListOptions {
            service: Some(table[0].spec.key()),
            ..numeric(ListView::Thresholds)
        };
        assert_golden(
            &listing(None, &table[..1], &options, &names()),
            include_str!("testdata/list-one-service.txt"),
        );
    }

    /// Names long enough to be cut, and the table of `testdata/*-hosts.txt`.
    pub(in crate::ipvsadm) fn hosts_table() -> (Names, Vec<ServiceStatus>) {
        let names = Names::from_tables(
            "http 80/tcp\nhttps 443/tcp\nhttp-alt 8080/tcp\n",
            "127.0.0.1 localhost\n198.18.0.10 vip.example\n198.18.1.11 a-really-long-real-server-name.example.org rs1\n198.18.0.12 an-even-longer-virtual-service-name.example.org\n",
        );
        let table = vec![
            service(
                Protocol::Tcp,
                "198.18.0.10:80",
                SchedulerName::Rr,
                &[],
                None,
                [0; 10],
                vec![
                    real(
                        "198.18.1.11:8080",
                        ForwardMethod::Masq,
                        1,
                        (0, 0),
                        (0, 0, 0),
                        [0; 10],
                    ),
                    real(
                        "127.0.0.1:80",
                        ForwardMethod::Masq,
                        1,
                        (0, 0),
                        (0, 0, 0),
                        [0; 10],
                    ),
                ],
            ),
            service(
                Protocol::Tcp,
                "198.18.0.12:443",
                SchedulerName::Rr,
                &[],
                Some((300, 32)),
                [0; 10],
                vec![real(
                    "198.18.1.11:443",
                    ForwardMethod::Route,
                    1,
                    (0, 0),
                    (0, 0, 0),
                    [0; 10],
                )],
            ),
        ];
        (names, table)
    }

    #[test]
    fn long_names_are_cut_as_ipvsadm_cuts_them() {
        let (names, table) = hosts_table();
        let options = ListOptions {
            numeric: false,
            ..numeric(ListView::Connections)
        };
        assert_golden(
            &listing(Some(&info()), &table, &options, &names),
            include_str!("testdata/list-hosts.txt"),
        );
        let options = ListOptions {
            view: ListView::Stats,
            ..options
        };
        assert_golden(
            &listing(Some(&info()), &table, &options, &names),
            include_str!("testdata/list-hosts-stats.txt"),
        );
    }

    /// A service of every port lists, saves and restores with port 0, as
    /// ipvsadm; it sorts before the VIP's other ports.
    #[test]
    fn a_service_of_every_port_has_port_0() {
        use ForwardMethod::*;
        let rs = |address, forward| real(address, forward, 1, (0, 0), (0, 0, 0), [0; 10]);
        let table = vec![
            service(
                Protocol::Tcp,
                "198.18.0.10:443",
                SchedulerName::Rr,
                &[],
                None,
                [0; 10],
                vec![rs("198.18.1.11:443", Masq)],
            ),
            service(
                Protocol::Tcp,
                "198.18.0.10:0",
                SchedulerName::Rr,
                &[],
                Some((300, 32)),
                [0; 10],
                vec![rs("198.18.1.11:0", Masq), rs("198.18.1.12:0", Route)],
            ),
        ];
        assert_golden(
            &listing(
                Some(&info()),
                &table,
                &numeric(ListView::Connections),
                &names(),
            ),
            "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.10:0 rr persistent 300
  -> 198.18.1.11:0                Masq    1      0          0         
  -> 198.18.1.12:0                Route   1      0          0         
TCP  198.18.0.10:443 rr
  -> 198.18.1.11:443              Masq    1      0          0         
",
        );
        let saved = crate::ipvsadm::save::save(&table, true, &names());
        assert_eq!(
            saved,
            "-A -t 198.18.0.10:0 -s rr -p 300
-a -t 198.18.0.10:0 -r 198.18.1.11:0 -m -w 1
-a -t 198.18.0.10:0 -r 198.18.1.12:0 -g -w 1
-A -t 198.18.0.10:443 -s rr
-a -t 198.18.0.10:443 -r 198.18.1.11:443 -m -w 1
"
        );
        let restored = crate::ipvsadm::save::parse_restore(&saved, "rvsadm", &names()).unwrap();
        let crate::ipvsadm::Command::AddService(every_port) = &restored[0].invocation.command
        else {
            panic!("{:?}", restored[0].invocation.command);
        };
        assert_eq!(every_port, &table[1].spec);
    }

    #[test]
    fn nosort_keeps_the_daemon_order() {
        let table = golden_table();
        let options = ListOptions {
            sort: false,
            ..numeric(ListView::Connections)
        };
        let text = listing(Some(&info()), &table, &options, &names());
        let services: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with(' '))
            .skip(2)
            .collect();
        assert_eq!(
            services,
            [
                "TCP  198.18.0.10:80 rr",
                "UDP  198.18.0.10:53 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0",
                "TCP  198.18.100.200:65535 mh (mh-fallback)",
                "TCP  198.18.0.11:443 wlc (flag-1,flag-2,flag-3)",
            ]
        );
        assert!(text.contains("  -> 198.18.1.12:80               Masq    1      3          7         \n  -> 198.18.1.11:8080"));
    }

    #[test]
    fn ipv6_services_and_fullnat() {
        let table = vec![
            service(
                Protocol::Tcp,
                "[fd00::10]:80",
                SchedulerName::Wlc,
                &[],
                Some((300, 64)),
                [0; 10],
                vec![
                    real(
                        "[fd00:1::12]:8080",
                        ForwardMethod::FullNat,
                        2,
                        (0, 0),
                        (1, 2, 0),
                        [0; 10],
                    ),
                    real(
                        "[fd00:1::11]:80",
                        ForwardMethod::Masq,
                        1,
                        (0, 0),
                        (0, 0, 0),
                        [0; 10],
                    ),
                ],
            ),
            service(
                Protocol::Tcp,
                "198.18.0.10:80",
                SchedulerName::Rr,
                &[],
                None,
                [0; 10],
                vec![],
            ),
        ];
        let text = listing(
            Some(&info()),
            &table,
            &numeric(ListView::Connections),
            &names(),
        );
        assert_eq!(
            text,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  198.18.0.10:80 rr\n\
             TCP  [fd00::10]:80 wlc persistent 300 mask 64\n  \
             -> [fd00:1::11]:80              Masq    1      0          0         \n  \
             -> [fd00:1::12]:8080            FullNat 2      1          2         \n"
        );
        // IPv6 names are not cut.
        let long = "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535";
        let table = vec![service(
            Protocol::Udp,
            "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535",
            SchedulerName::Rr,
            &[],
            None,
            [0; 10],
            vec![real(
                long,
                ForwardMethod::Masq,
                1,
                (0, 0),
                (0, 0, 0),
                [0; 10],
            )],
        )];
        let text = listing(None, &table, &numeric(ListView::Stats), &names());
        assert!(text.contains(&format!("UDP  {long}        0")), "{text}");
        assert!(text.contains(&format!("  -> {long}        0")), "{text}");
    }

    /// The connections of `testdata/list-connections*.txt`, in the order
    /// of the kernel's listing that ipvsadm printed them from. The IPv6
    /// FULLNAT connection's LIP:lport is not in ipvsadm's columns.
    pub(in crate::ipvsadm) fn connections_table() -> Vec<ConnEntry> {
        let entry = |protocol,
                     state: &str,
                     expires,
                     client: &str,
                     virtual_address: &str,
                     real_server: &str| {
            ConnEntry {
                protocol,
                state: state.to_owned(),
                expires,
                client: client.parse().unwrap(),
                virtual_address: virtual_address.parse().unwrap(),
                real_server: real_server.parse().unwrap(),
                local: None,
                template: false,
            }
        };
        let (tcp, udp) = (Protocol::Tcp, Protocol::Udp);
        let vip = "198.18.0.10:80";
        let vip6 = "[fd00::10]:80";
        vec![
            entry(
                tcp,
                "ESTABLISHED",
                899,
                "198.18.0.2:40000",
                vip,
                "198.18.1.12:80",
            ),
            entry(
                tcp,
                "TIME_WAIT",
                59,
                "198.18.0.3:40001",
                vip,
                "198.18.1.11:8080",
            ),
            entry(
                tcp,
                "SYN_RECV",
                60,
                "198.18.0.4:41000",
                vip,
                "198.18.1.11:8080",
            ),
            entry(
                udp,
                "UDP",
                299,
                "198.18.0.2:40002",
                "198.18.0.10:53",
                "198.18.1.11:53",
            ),
            // Minutes past 99 widen the column.
            entry(
                tcp,
                "ESTABLISHED",
                7199,
                "198.18.0.3:40003",
                vip,
                "198.18.1.12:80",
            ),
            entry(
                tcp,
                "FIN_WAIT",
                119,
                "[fd00::2]:41001",
                vip6,
                "[fd00:1::11]:80",
            ),
            ConnEntry {
                local: Some("[fd00:1::100]:5001".parse().unwrap()),
                ..entry(
                    tcp,
                    "ESTABLISHED",
                    900,
                    "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:41002",
                    vip6,
                    "[fd00:1::12]:8080",
                )
            },
            ConnEntry {
                template: true,
                ..entry(
                    udp,
                    "NONE",
                    600,
                    "198.18.0.0:0",
                    "198.18.0.10:53",
                    "198.18.1.11:53",
                )
            },
        ]
    }

    #[test]
    fn connections_match_ipvsadm() {
        let table = connections_table();
        let numeric = ConnListOptions {
            numeric: true,
            persistence_engine: false,
        };
        let listing = |options: &ConnListOptions, names: &Names| {
            connections_title(options) + &connections(&table, options, names)
        };
        assert_golden(
            &listing(&numeric, &names()),
            include_str!("testdata/list-connections.txt"),
        );
        let engines = ConnListOptions {
            persistence_engine: true,
            ..numeric
        };
        assert_golden(
            &listing(&engines, &names()),
            include_str!("testdata/list-connections-persistent-conn.txt"),
        );
        // Names are not cut, however long (the names of `hosts_table()`,
        // and the system's service names ipvsadm printed with).
        let hosts = Names::from_tables(
            "domain 53/udp\nhttp 80/tcp\nhttp-alt 8080/tcp\n",
            "198.18.0.10 vip.example\n198.18.1.11 a-really-long-real-server-name.example.org rs1\n",
        );
        let named = ConnListOptions {
            numeric: false,
            ..numeric
        };
        assert_golden(
            &listing(&named, &hosts),
            include_str!("testdata/list-connections-hosts.txt"),
        );
        // Pages print their rows one after the other.
        let (first, second) = table.split_at(3);
        assert_eq!(
            connections(first, &numeric, &names()) + &connections(second, &numeric, &names()),
            connections(&table, &numeric, &names())
        );
    }

    #[test]
    fn numbers_scale_as_ipvsadm() {
        let cases = [
            (0, "        0", "0"),
            (99_999_999, " 99999999", "99999999"),
            (100_000_000, "  100000K", "100000000"),
            (999_999_999, "  999999K", "999999999"),
            (1_000_000_000, "    1000M", "1000000000"),
            (99_999_999_999, "   99999M", "99999999999"),
            (100_000_000_000, "     100G", "100000000000"),
            (99_999_999_999_999, "   99999G", "99999999999999"),
            (100_000_000_000_000, "     100T", "100000000000000"),
            (u64::MAX, "18446744T", "18446744073709551615"),
        ];
        for (value, scaled, exact) in cases {
            assert_eq!(large_number(value, false), scaled, "{value}");
            assert_eq!(large_number(value, true).trim_start(), exact, "{value}");
            assert_eq!(
                large_number(value, true).len(),
                exact.len().max(8) + 1,
                "{value}"
            );
        }
    }

    #[test]
    fn timeouts_line() {
        assert_eq!(
            timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(ipv4_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(ipv4_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(ipv4_mask(32), Ipv4Addr::new(255, 255, 255, 255));
    }
}
