//! The Prometheus endpoint (`[metrics] listen`): a small HTTP/1.1 server
//! on the control side that answers `GET /metrics` with the text
//! exposition format (version 0.0.4) and 404 to anything else.
//!
//! It serves one connection at a time, reads at most [`MAX_REQUEST`]
//! bytes of a request within [`REQUEST_TIMEOUT`], and closes every
//! connection after its response. The figures are those of `rvsadm -Ln
//! --stats` (totals since the last `-Z`), `rvsadm -Ln --health` and
//! `rvsadm -L --workers`, built by [`render`], which does no I/O.
//!
//! Real servers that their health check removed from their service are
//! there too, with weight 0. Health metrics are there for checked real
//! servers only: `rvs_real_server_healthy` (1 up, 0 down),
//! `rvs_real_server_health_transitions_total{to="down"|"up"}` and
//! `rvs_real_server_health_checks_total{result="success"|"failure"|"timeout"}`
//! (counts since the real server's checker started; a timeout is not also
//! a failure).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::model::{HealthState, ServiceStatus};
use crate::protocol::WorkerStatus;

/// Largest request read: a GET without a body fits easily.
pub const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a scrape reports, taken afresh for every scrape.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub services: Vec<ServiceStatus>,
    pub workers: Vec<WorkerStatus>,
    pub dataplane: DataplaneFigures,
}

/// Figures of the dataplane as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneFigures {
    /// Connections each worker's tables hold at most (IPv4 and IPv6).
    pub connection_capacity: u64,
    /// Each packet pool by name: mbufs in use and available.
    pub mempools: Vec<(String, u32, u32)>,
    /// The exception thread's counters, when ports have kernel twins.
    pub exception: Option<ExceptionFigures>,
}

/// What the exception thread moved (see
/// `dataplane::exception::ExceptionCounters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExceptionFigures {
    pub to_kernel: u64,
    pub to_kernel_dropped: u64,
    pub from_kernel: u64,
    pub from_kernel_dropped: u64,
}

/// Where the figures come from.
pub type Source = Arc<dyn Fn() -> Figures + Send + Sync>;

/// Serves `listener` on a thread of its own until the process ends.
pub fn serve(listener: TcpListener, source: Source) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(error) = answer(stream, &source) {
                            tracing::debug!(%error, "metrics request");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "metrics endpoint: accept");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .map(|_| ())
}

fn answer(mut stream: TcpStream, source: &Source) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if request.len() >= MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", "");
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let first_line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = first_line.split(|&b| b == b' ');
    let (method, target) = (words.next(), words.next());
    match (method, target) {
        (Some(b"GET"), Some(b"/metrics")) => respond(
            &mut stream,
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(&source()),
        ),
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// One metric family: its help, type and samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, u64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text of the services, their real servers, the workers
/// and the dataplane's pools and exception path.
pub fn render(figures: &Figures) -> String {
    let Figures {
        services,
        workers,
        dataplane,
    } = figures;
    const COUNTER: &str = "counter";
    const GAUGE: &str = "gauge";
    let mut families = [
        Family::new(
            "rvs_service_connections_total",
            COUNTER,
            "Connections scheduled by the service.",
        ),
        Family::new(
            "rvs_service_in_packets_total",
            COUNTER,
            "Packets from clients to the service.",
        ),
        Family::new(
            "rvs_service_out_packets_total",
            COUNTER,
            "Packets from the service to clients.",
        ),
        Family::new(
            "rvs_service_in_bytes_total",
            COUNTER,
            "Bytes from clients to the service.",
        ),
        Family::new(
            "rvs_service_out_bytes_total",
            COUNTER,
            "Bytes from the service to clients.",
        ),
        Family::new(
            "rvs_real_server_connections_total",
            COUNTER,
            "Connections scheduled to the real server.",
        ),
        Family::new(
            "rvs_real_server_in_packets_total",
            COUNTER,
            "Packets from clients to the real server.",
        ),
        Family::new(
            "rvs_real_server_out_packets_total",
            COUNTER,
            "Packets from the real server to clients.",
        ),
        Family::new(
            "rvs_real_server_in_bytes_total",
            COUNTER,
            "Bytes from clients to the real server.",
        ),
        Family::new(
            "rvs_real_server_out_bytes_total",
            COUNTER,
            "Bytes from the real server to clients.",
        ),
        Family::new(
            "rvs_real_server_active_connections",
            GAUGE,
            "Established connections of the real server (ActiveConn).",
        ),
        Family::new(
            "rvs_real_server_inactive_connections",
            GAUGE,
            "Other connections of the real server (InActConn).",
        ),
        Family::new(
            "rvs_real_server_weight",
            GAUGE,
            "Weight of the real server.",
        ),
        Family::new(
            "rvs_real_server_healthy",
            GAUGE,
            "Whether the real server passes its health check (1) or not (0); absent when unchecked.",
        ),
        Family::new(
            "rvs_real_server_health_transitions_total",
            COUNTER,
            "Changes of the real server's health verdict, by the new verdict.",
        ),
        Family::new(
            "rvs_real_server_health_checks_total",
            COUNTER,
            "Health checks of the real server, by result.",
        ),
        Family::new(
            "rvs_worker_rx_packets_total",
            COUNTER,
            "Packets the worker received.",
        ),
        Family::new(
            "rvs_worker_rx_bytes_total",
            COUNTER,
            "Bytes the worker received.",
        ),
        Family::new(
            "rvs_worker_tx_packets_total",
            COUNTER,
            "Packets the worker sent.",
        ),
        Family::new(
            "rvs_worker_tx_bytes_total",
            COUNTER,
            "Bytes the worker sent.",
        ),
        Family::new(
            "rvs_worker_drops_total",
            COUNTER,
            "Packets the worker dropped, by reason.",
        ),
        Family::new(
            "rvs_worker_events_total",
            COUNTER,
            "Other events of the worker (hand-offs, ARP, ...), by name.",
        ),
        Family::new(
            "rvs_worker_connections",
            GAUGE,
            "Connections in the worker's table.",
        ),
        Family::new(
            "rvs_worker_connection_capacity",
            GAUGE,
            "Connections the worker's tables hold at most (IPv4 and IPv6); beyond, the oldest are evicted.",
        ),
        Family::new(
            "rvs_mempool_mbufs",
            GAUGE,
            "Mbufs of a packet pool, in use or available.",
        ),
        Family::new(
            "rvs_exception_packets_total",
            COUNTER,
            "Frames the exception path moved between the ports and the kernel twins, by direction.",
        ),
        Family::new(
            "rvs_exception_drops_total",
            COUNTER,
            "Frames the exception path dropped (a full twin queue or ring), by direction.",
        ),
    ];
    for service in services {
        let name = format!(
            "{} {}",
            service.spec.protocol.to_string().to_uppercase(),
            service.spec.address
        );
        let labels = format!("service=\"{}\"", escape(&name));
        let stats = &service.stats;
        for (family, value) in families[0..5].iter_mut().zip([
            stats.conns,
            stats.in_packets,
            stats.out_packets,
            stats.in_bytes,
            stats.out_bytes,
        ]) {
            family.samples.push((labels.clone(), value));
        }
        for rs in service
            .real_servers
            .iter()
            .chain(&service.removed_real_servers)
        {
            let labels = format!(
                "{labels},real_server=\"{}\"",
                escape(&rs.spec.address.to_string())
            );
            let stats = &rs.stats;
            for (family, value) in families[5..13].iter_mut().zip([
                stats.conns,
                stats.in_packets,
                stats.out_packets,
                stats.in_bytes,
                stats.out_bytes,
                rs.active_conns,
                rs.inactive_conns,
                u64::from(rs.spec.weight),
            ]) {
                family.samples.push((labels.clone(), value));
            }
            let Some(health) = &rs.health else { continue };
            let record = &health.record;
            let up = u64::from(record.state == HealthState::Up);
            families[13].samples.push((labels.clone(), up));
            for (to, count) in [("down", record.went_down), ("up", record.went_up)] {
                families[14]
                    .samples
                    .push((format!("{labels},to=\"{to}\""), count));
            }
            let checks = &record.checks;
            for (result, count) in [
                ("success", checks.success),
                ("failure", checks.failure),
                ("timeout", checks.timeout),
            ] {
                families[15]
                    .samples
                    .push((format!("{labels},result=\"{result}\""), count));
            }
        }
    }
    for worker in workers {
        let labels = format!("worker=\"{}\"", worker.index);
        for (family, value) in families[16..20].iter_mut().zip([
            worker.rx_packets,
            worker.rx_bytes,
            worker.tx_packets,
            worker.tx_bytes,
        ]) {
            family.samples.push((labels.clone(), value));
        }
        for (reason, &count) in &worker.drops {
            families[20]
                .samples
                .push((format!("{labels},reason=\"{}\"", escape(reason)), count));
        }
        for (event, &count) in &worker.events {
            families[21]
                .samples
                .push((format!("{labels},event=\"{}\"", escape(event)), count));
        }
        families[22]
            .samples
            .push((labels.clone(), worker.connections));
        families[23]
            .samples
            .push((labels, dataplane.connection_capacity));
    }
    for (pool, in_use, available) in &dataplane.mempools {
        let labels = format!("pool=\"{}\"", escape(pool));
        for (state, count) in [("in_use", in_use), ("available", available)] {
            families[24]
                .samples
                .push((format!("{labels},state=\"{state}\""), u64::from(*count)));
        }
    }
    if let Some(exception) = &dataplane.exception {
        for (direction, moved, dropped) in [
            (
                "to_kernel",
                exception.to_kernel,
                exception.to_kernel_dropped,
            ),
            (
                "from_kernel",
                exception.from_kernel,
                exception.from_kernel_dropped,
            ),
        ] {
            let labels = format!("direction=\"{direction}\"");
            families[25].samples.push((labels.clone(), moved));
            families[26].samples.push((labels, dropped));
        }
    }
    let mut out = String::new();
    for family in &families {
        family.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ForwardMethod, Protocol, Rates, RealServerSpec, RealServerStatus, SchedulerName,
        ServiceSpec, Stats,
    };

    fn service() -> ServiceStatus {
        let stats = |conns| Stats {
            conns,
            in_packets: 10 * conns,
            out_packets: 9 * conns,
            in_bytes: 1000 * conns,
            out_bytes: 2000 * conns,
        };
        ServiceStatus {
            spec: ServiceSpec {
                protocol: Protocol::Tcp,
                address: "198.18.0.10:80".parse().unwrap(),
                scheduler: SchedulerName::Rr,
                scheduler_flags: Vec::new(),
                persistence: None,
                local_addresses: Vec::new(),
            },
            stats: stats(3),
            rates: Rates::default(),
            real_servers: vec![RealServerStatus {
                spec: RealServerSpec {
                    address: "198.18.1.11:80".parse().unwrap(),
                    weight: 2,
                    forward: ForwardMethod::Masq,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
                active_conns: 1,
                inactive_conns: 2,
                persistent_conns: 0,
                stats: stats(3),
                rates: Rates::default(),
                health: None,
            }],
            removed_real_servers: Vec::new(),
        }
    }

    fn worker() -> WorkerStatus {
        WorkerStatus {
            index: 0,
            lcore: 1,
            rx_packets: 100,
            rx_bytes: 6400,
            tx_packets: 99,
            tx_bytes: 6336,
            connections: 3,
            busy_cycles: 0,
            tsc_hz: 1,
            snapshot_generation: 1,
            drops: [("no_route".to_owned(), 1)].into(),
            events: [("hand_off".to_owned(), 4)].into(),
        }
    }

    #[test]
    fn the_text_format_has_one_family_per_metric_and_labelled_samples() {
        let text = render(&Figures {
            services: vec![service()],
            workers: vec![worker()],
            dataplane: DataplaneFigures {
                connection_capacity: 65536,
                mempools: vec![("rvs_pool".to_owned(), 1000, 7191)],
                exception: Some(ExceptionFigures {
                    to_kernel: 5,
                    to_kernel_dropped: 0,
                    from_kernel: 6,
                    from_kernel_dropped: 1,
                }),
            },
        });
        for line in [
            "# HELP rvs_service_connections_total Connections scheduled by the service.",
            "# TYPE rvs_service_connections_total counter",
            "rvs_service_connections_total{service=\"TCP 198.18.0.10:80\"} 3",
            "rvs_service_out_bytes_total{service=\"TCP 198.18.0.10:80\"} 6000",
            "rvs_real_server_in_packets_total{service=\"TCP 198.18.0.10:80\",real_server=\"198.18.1.11:80\"} 30",
            "rvs_real_server_active_connections{service=\"TCP 198.18.0.10:80\",real_server=\"198.18.1.11:80\"} 1",
            "rvs_real_server_inactive_connections{service=\"TCP 198.18.0.10:80\",real_server=\"198.18.1.11:80\"} 2",
            "rvs_real_server_weight{service=\"TCP 198.18.0.10:80\",real_server=\"198.18.1.11:80\"} 2",
            "# TYPE rvs_worker_connections gauge",
            "rvs_worker_rx_packets_total{worker=\"0\"} 100",
            "rvs_worker_tx_bytes_total{worker=\"0\"} 6336",
            "rvs_worker_drops_total{worker=\"0\",reason=\"no_route\"} 1",
            "rvs_worker_events_total{worker=\"0\",event=\"hand_off\"} 4",
            "rvs_worker_connections{worker=\"0\"} 3",
            "rvs_worker_connection_capacity{worker=\"0\"} 65536",
            "rvs_mempool_mbufs{pool=\"rvs_pool\",state=\"in_use\"} 1000",
            "rvs_mempool_mbufs{pool=\"rvs_pool\",state=\"available\"} 7191",
            "rvs_exception_packets_total{direction=\"to_kernel\"} 5",
            "rvs_exception_packets_total{direction=\"from_kernel\"} 6",
            "rvs_exception_drops_total{direction=\"from_kernel\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 27);
        assert!(
            !text.contains("rvs_real_server_healthy{"),
            "unchecked: no sample"
        );
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            assert!(series.ends_with('}'), "{line}");
            value.parse::<u64>().expect("an integer");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// Checked real servers have health samples, those their check
    /// removed included.
    #[test]
    fn health_checks_have_a_gauge_and_counters() {
        use crate::model::{HealthChecks, HealthRecord, OnFailure, RealServerHealth};
        let mut checked = service();
        let health = |state, went_down, went_up| {
            Some(RealServerHealth {
                record: HealthRecord {
                    state,
                    went_down,
                    went_up,
                    checks: HealthChecks {
                        success: 40,
                        failure: 3,
                        timeout: 2,
                    },
                    ..HealthRecord::default()
                },
                on_failure: OnFailure::Remove,
                retry: 1,
                rise: 1,
                weight: 2,
            })
        };
        checked.real_servers[0].health = health(HealthState::Up, 2, 2);
        let mut removed = checked.real_servers[0].clone();
        removed.spec.address = "198.18.1.12:80".parse().unwrap();
        removed.spec.weight = 0;
        removed.health = health(HealthState::Down, 1, 0);
        checked.removed_real_servers.push(removed);
        let text = render(&Figures {
            services: vec![checked],
            ..Figures::default()
        });
        let labels =
            |last: u8| format!("service=\"TCP 198.18.0.10:80\",real_server=\"198.18.1.{last}:80\"");
        for line in [
            "# TYPE rvs_real_server_healthy gauge".to_owned(),
            "# TYPE rvs_real_server_health_transitions_total counter".to_owned(),
            format!("rvs_real_server_healthy{{{}}} 1", labels(11)),
            format!("rvs_real_server_healthy{{{}}} 0", labels(12)),
            format!("rvs_real_server_weight{{{}}} 0", labels(12)),
            format!(
                "rvs_real_server_health_transitions_total{{{},to=\"down\"}} 2",
                labels(11)
            ),
            format!(
                "rvs_real_server_health_transitions_total{{{},to=\"up\"}} 0",
                labels(12)
            ),
            format!(
                "rvs_real_server_health_checks_total{{{},result=\"success\"}} 40",
                labels(11)
            ),
            format!(
                "rvs_real_server_health_checks_total{{{},result=\"failure\"}} 3",
                labels(12)
            ),
            format!(
                "rvs_real_server_health_checks_total{{{},result=\"timeout\"}} 2",
                labels(12)
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }

    #[test]
    fn the_endpoint_answers_get_metrics_and_404_otherwise() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        serve(
            listener,
            Arc::new(|| Figures {
                services: vec![service()],
                workers: vec![worker()],
                ..Figures::default()
            }),
        )
        .unwrap();
        let fetch = |request: &str| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        };
        let ok = fetch("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("rvs_worker_connections{worker=\"0\"} 3\n"),
            "{ok}"
        );
        let missing = fetch("GET / HTTP/1.1\r\n\r\n");
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        // Exactly the limit, without an end: refused once it is read.
        let huge = fetch(&format!("GET /{}", "x".repeat(MAX_REQUEST - 5)));
        assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");
    }
}
