//! rvsadm as a whole: command lines against a fake rvsd, in memory and
//! over a real Unix socket.

use std::os::unix::net::UnixListener;

use super::format::tests::{checked_table, connections_table, golden_table, names};
use super::*;
use crate::model::{
    ForwardMethod, Protocol, RealServerSpec, SchedulerName, ServiceKey, ServiceSpec, ServiceStatus,
};
use crate::protocol::{
    self, ConnEntry, ConnPage, Header, RealServerChange, RealServerRef, Status, encode_error,
    encode_reply,
};

/// An rvsd stand-in: answers listings from a table and records requests.
#[derive(Debug, Default)]
struct FakeDaemon {
    table: Vec<ServiceStatus>,
    timeouts: Timeouts,
    log: Vec<Request>,
    /// Refuse every change with this status and message.
    refuse: Option<(Status, &'static str)>,
    /// The connection listing, served `page_size` entries a page.
    connections: Vec<ConnEntry>,
    page_size: usize,
    /// Refuse the connection listing's page at this cursor.
    refuse_page: Option<ConnCursor>,
}

impl Daemon for FakeDaemon {
    fn call(&mut self, request: &Request) -> Result<Reply, ProtocolError> {
        self.log.push(request.clone());
        if let Some((status, message)) = self.refuse
            && request.is_mutation()
        {
            return Err(ProtocolError::Refused {
                status,
                message: message.to_owned(),
            });
        }
        Ok(match request {
            Request::Info => Reply::Info(DaemonInfo {
                version: "0.1.0".into(),
                connection_table_size: 4096,
                workers: 1,
            }),
            Request::ListServices(filter) => Reply::Services(
                self.table
                    .iter()
                    .filter(|status| filter.service.is_none_or(|key| status.spec.key() == key))
                    .cloned()
                    .collect(),
            ),
            Request::GetTimeouts => Reply::Timeouts(self.timeouts),
            Request::ListConnections(page) => {
                if page.cursor.is_some() && page.cursor == self.refuse_page {
                    return Err(ProtocolError::Refused {
                        status: Status::Internal,
                        message: "worker 1 did not answer the connection listing within 1000 ms"
                            .to_owned(),
                    });
                }
                // The cursor says how many entries were listed already.
                let from = match page.cursor {
                    Some(ConnCursor::Templates { entry }) => entry as usize,
                    _ => 0,
                };
                let to = (from + self.page_size.max(1)).min(self.connections.len());
                Reply::Connections(ConnPage {
                    connections: self.connections[from..to].to_vec(),
                    next: (to < self.connections.len())
                        .then_some(ConnCursor::Templates { entry: to as u64 }),
                })
            }
            Request::SetTimeouts(timeouts) => {
                self.timeouts = *timeouts;
                Reply::Done {}
            }
            _ => Reply::Done {},
        })
    }
}

impl FakeDaemon {
    fn with_golden_table() -> FakeDaemon {
        FakeDaemon {
            table: golden_table(),
            ..FakeDaemon::default()
        }
    }
}

impl Daemon for &mut FakeDaemon {
    fn call(&mut self, request: &Request) -> Result<Reply, ProtocolError> {
        (**self).call(request)
    }
}

struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

fn environment() -> Environment {
    Environment {
        program: "rvsadm".into(),
        names: names(),
        default_socket: PathBuf::from(protocol::DEFAULT_SOCKET),
    }
}

fn rvsadm_with_input(line: &str, stdin: &str, daemon: &mut FakeDaemon) -> Outcome {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let status = run(
        &args,
        &environment(),
        &mut Terminal {
            stdin: &mut input,
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
        |_| Ok(daemon),
    );
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn rvsadm(line: &str, daemon: &mut FakeDaemon) -> Outcome {
    rvsadm_with_input(line, "", daemon)
}

fn web() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        address: "198.18.0.10:80".parse().unwrap(),
    }
}

#[test]
fn commands_map_to_requests() {
    let spec = ServiceSpec {
        protocol: Protocol::Tcp,
        address: web().address,
        scheduler: SchedulerName::Rr,
        scheduler_flags: vec![],
        persistence: None,
        local_addresses: Vec::new(),
    };
    let change = RealServerChange {
        service: web(),
        real_server: RealServerSpec {
            address: "198.18.1.11:80".parse().unwrap(),
            weight: 1,
            forward: ForwardMethod::Masq,
            upper_threshold: 0,
            lower_threshold: 0,
        },
    };
    let reference = RealServerRef {
        service: web(),
        address: change.real_server.address,
    };
    let all = ServiceFilter::default();
    let one = ServiceFilter {
        service: Some(web()),
    };
    let cases = [
        (
            Command::AddService(spec.clone()),
            vec![Request::AddService(spec.clone())],
        ),
        (
            Command::EditService(spec.clone()),
            vec![Request::EditService(spec)],
        ),
        (
            Command::DeleteService(web()),
            vec![Request::DeleteService(web())],
        ),
        (Command::Clear, vec![Request::Flush]),
        (
            Command::AddServer(change),
            vec![Request::AddRealServer(change)],
        ),
        (
            Command::EditServer(change),
            vec![Request::EditRealServer(change)],
        ),
        (
            Command::DeleteServer(reference),
            vec![Request::DeleteRealServer(reference)],
        ),
        (
            Command::List(ListOptions::default()),
            vec![Request::Info, Request::ListServices(all)],
        ),
        (
            Command::List(ListOptions {
                service: Some(web()),
                ..ListOptions::default()
            }),
            vec![Request::ListServices(one)],
        ),
        (Command::ListTimeouts, vec![Request::GetTimeouts]),
        (Command::Zero(None), vec![Request::ZeroCounters(all)]),
        (Command::Zero(Some(web())), vec![Request::ZeroCounters(one)]),
        (
            Command::Save { numeric: true },
            vec![Request::ListServices(all)],
        ),
        (
            Command::SetTimeouts(Timeouts {
                tcp: 1,
                tcp_fin: 2,
                udp: 3,
            }),
            vec![Request::SetTimeouts(Timeouts {
                tcp: 1,
                tcp_fin: 2,
                udp: 3,
            })],
        ),
        (
            Command::SetTimeouts(Timeouts {
                tcp: 1,
                tcp_fin: 0,
                udp: 3,
            }),
            vec![
                Request::GetTimeouts,
                Request::SetTimeouts(Timeouts {
                    tcp: 1,
                    tcp_fin: 0,
                    udp: 3,
                }),
            ],
        ),
        (
            Command::ListConnections(ConnListOptions::default()),
            vec![Request::ListConnections(ConnListRequest {
                cursor: None,
                limit: CONN_PAGE_MAX,
            })],
        ),
        (Command::Restore, vec![]),
        (Command::Help, vec![]),
        (Command::Version, vec![]),
    ];
    for (command, requests) in cases {
        assert_eq!(command.requests(), requests, "{command:?}");
    }
}

#[test]
fn set_with_zeros_keeps_those_timeouts() {
    assert_eq!(
        merge_timeouts(
            Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            },
            Timeouts {
                tcp: 0,
                tcp_fin: 60,
                udp: 0
            }
        ),
        Timeouts {
            tcp: 900,
            tcp_fin: 60,
            udp: 300
        }
    );
    let mut daemon = FakeDaemon::default();
    let outcome = rvsadm("--set 0 60 0", &mut daemon);
    assert_eq!(outcome.status, 0);
    assert_eq!(
        daemon.timeouts,
        Timeouts {
            tcp: 900,
            tcp_fin: 60,
            udp: 300
        }
    );
    let outcome = rvsadm("-L --timeout", &mut daemon);
    assert_eq!(outcome.stdout, "Timeout (tcp tcpfin udp): 900 60 300\n");
}

#[test]
fn listings_print_ipvsadm_formats() {
    let mut daemon = FakeDaemon::with_golden_table();
    let outcome = rvsadm("-Ln", &mut daemon);
    assert_eq!((outcome.status, outcome.stderr.as_str()), (0, ""));
    assert_eq!(outcome.stdout, include_str!("testdata/list.txt"));
    assert_eq!(
        rvsadm("-Sn", &mut daemon).stdout,
        save::tests::golden_save(include_str!("testdata/save-numeric.txt"))
    );
    assert_eq!(
        rvsadm("-ln --stats", &mut daemon).stdout,
        include_str!("testdata/list-stats.txt")
    );
    let outcome = rvsadm("-Ln -t 198.18.0.10:80 --thresholds", &mut daemon);
    assert_eq!(
        outcome.stdout,
        include_str!("testdata/list-one-service.txt")
    );
    let outcome = rvsadm("-L -n -t 198.18.0.99:80", &mut daemon);
    assert_eq!(
        (outcome.status, outcome.stderr.as_str()),
        (1, "No such service\n")
    );
}

#[test]
fn json_prints_the_protocol_values() {
    let mut daemon = FakeDaemon::with_golden_table();
    let outcome = rvsadm("-L --json", &mut daemon);
    let services: Vec<ServiceStatus> = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(services, golden_table());
    let outcome = rvsadm("-L --timeout --json", &mut daemon);
    let timeouts: Timeouts = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(timeouts, Timeouts::default());
}

/// A daemon whose real servers are health checked: `-Ln` stays
/// ipvsadm's; `--health` and `--json` show the checks.
#[test]
fn health_is_listed_with_health_or_json_only() {
    let mut daemon = FakeDaemon {
        table: checked_table(),
        ..FakeDaemon::default()
    };
    assert_eq!(
        rvsadm("-Ln", &mut daemon).stdout,
        include_str!("testdata/list.txt")
    );
    let outcome = rvsadm("-Ln --health", &mut daemon);
    assert_eq!((outcome.status, outcome.stderr.as_str()), (0, ""));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn  Health Detail"
    );
    assert!(lines.contains(
        &"  -> 198.18.200.223:65535         Tunnel  0      0          1          DOWN   removed, 1 of 2 successes"
    ));
    assert_eq!(lines.len(), 12, "{}", outcome.stdout);
    let outcome = rvsadm("-Ln --health -u 198.18.0.10:53", &mut daemon);
    assert!(
        outcome.stdout.ends_with(
            "  -> 198.18.1.11:53               Route   65535  0          0          -\n"
        ),
        "{}",
        outcome.stdout
    );

    let outcome = rvsadm("-L --json", &mut daemon);
    let services: Vec<ServiceStatus> = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(services, checked_table());
    assert!(
        outcome.stdout.contains(r#""state": "down""#),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains(r#""removed_real_servers": ["#));
    assert!(outcome.stdout.contains(r#""on_failure": "inhibit""#));
}

#[test]
fn refusals_print_the_daemon_message_with_ipvsadm_status() {
    let cases = [
        (
            "-A -t 198.18.0.10:80",
            Status::Exists,
            "Service already exists",
        ),
        ("-D -t 198.18.0.10:80", Status::NotFound, "No such service"),
        (
            "-a -t 198.18.0.10:80 -r 198.18.1.11",
            Status::NotFound,
            "Service not defined",
        ),
        (
            "-d -t 198.18.0.10:80 -r 198.18.1.11",
            Status::NotFound,
            "No such destination",
        ),
        (
            "-C",
            Status::PermissionDenied,
            "Permission denied (you must be root)",
        ),
        (
            "-A -t 198.18.0.10:80 -s twos",
            Status::Unsupported,
            "scheduler twos is not supported yet",
        ),
        ("-Z", Status::Invalid, "something is wrong"),
        (
            "--reload",
            Status::Invalid,
            "/etc/rvs.toml: ports[0].device: cannot change without a restart",
        ),
    ];
    for (line, status, message) in cases {
        let mut daemon = FakeDaemon {
            refuse: Some((status, message)),
            ..FakeDaemon::default()
        };
        let outcome = rvsadm(line, &mut daemon);
        assert_eq!(outcome.status, 255, "{line}");
        assert_eq!(outcome.stderr, format!("{message}\n"), "{line}");
        assert_eq!(outcome.stdout, "");
    }
}

#[test]
fn reload_asks_the_daemon_and_prints_nothing() {
    let mut daemon = FakeDaemon::default();
    let outcome = rvsadm("--reload", &mut daemon);
    assert_eq!((outcome.status, outcome.stdout.as_str()), (0, ""));
    assert_eq!(daemon.log, [Request::Reload]);
    let outcome = rvsadm("--reload -t 198.18.0.10:80", &mut daemon);
    assert_eq!(outcome.status, 2, "{}", outcome.stderr);
}

#[test]
fn bad_command_lines_never_reach_the_daemon() {
    let mut daemon = FakeDaemon::default();
    let outcome = rvsadm("-A -t 198.18.0.10:80 -w 3", &mut daemon);
    assert_eq!(outcome.status, 2);
    assert_eq!(
        outcome.stderr,
        "Illegal 'weight' option with the 'add-service' command\n"
    );
    let outcome = rvsadm("-Lnc --stats", &mut daemon);
    assert_eq!(outcome.status, 2);
    assert_eq!(outcome.stderr, "options conflicts in the list command\n");
    let outcome = rvsadm("-h", &mut daemon);
    assert_eq!(outcome.status, 0);
    assert!(
        outcome
            .stdout
            .contains("Usage:\n  rvsadm -A|E virtual-service")
    );
    assert!(
        outcome.stdout.contains("\n  --health "),
        "{}",
        outcome.stdout
    );
    assert!(daemon.log.is_empty());
}

/// `-L -c` follows the pages to the last and prints them as one listing.
#[test]
fn the_connection_listing_follows_every_page() {
    let mut daemon = FakeDaemon {
        connections: connections_table(),
        page_size: 3,
        ..FakeDaemon::default()
    };
    let outcome = rvsadm("-Lnc", &mut daemon);
    assert_eq!((outcome.status, outcome.stderr.as_str()), (0, ""));
    assert_eq!(
        outcome.stdout,
        include_str!("testdata/list-connections.txt")
    );
    let cursors: Vec<Option<ConnCursor>> = daemon
        .log
        .iter()
        .map(|request| match request {
            Request::ListConnections(page) => {
                assert_eq!(page.limit, CONN_PAGE_MAX);
                page.cursor
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        cursors,
        [
            None,
            Some(ConnCursor::Templates { entry: 3 }),
            Some(ConnCursor::Templates { entry: 6 })
        ]
    );
    let outcome = rvsadm("-L -c --persistent-conn -n", &mut daemon);
    assert_eq!(
        outcome.stdout,
        include_str!("testdata/list-connections-persistent-conn.txt")
    );

    // --json: the protocol's entries, FULLNAT's LIP:lport included, as
    // one array laid out as the other listings' JSON.
    let outcome = rvsadm("-L -c --json", &mut daemon);
    let entries: Vec<ConnEntry> = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(entries, connections_table());
    assert_eq!(outcome.stdout, json(&connections_table()));
    assert!(outcome.stdout.contains(r#""local": "[fd00:1::100]:5001""#));

    // Nothing to list: the title alone, or an empty array.
    let mut empty = FakeDaemon::default();
    assert_eq!(
        rvsadm("-Lnc", &mut empty).stdout,
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n"
    );
    assert_eq!(rvsadm("-Lnc --json", &mut empty).stdout, "[]\n");

    // A page that fails ends the listing with ipvsadm's listing status.
    let mut failing = FakeDaemon {
        connections: connections_table(),
        page_size: 3,
        refuse_page: Some(ConnCursor::Templates { entry: 6 }),
        ..FakeDaemon::default()
    };
    let outcome = rvsadm("-Lnc", &mut failing);
    assert_eq!(
        (outcome.status, outcome.stderr.as_str()),
        (
            1,
            "worker 1 did not answer the connection listing within 1000 ms\n"
        )
    );
    assert_eq!(outcome.stdout.lines().count(), 2 + 6, "the pages before");
}

#[test]
fn restore_applies_lines_in_order_and_names_the_failing_one() {
    let mut daemon = FakeDaemon::default();
    let input = "-A -t 198.18.0.10:80 -s rr\n-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 1\n";
    let outcome = rvsadm_with_input("-R", input, &mut daemon);
    assert_eq!((outcome.status, outcome.stderr.as_str()), (0, ""));
    assert!(matches!(
        daemon.log.as_slice(),
        [Request::AddService(_), Request::AddRealServer(_)]
    ));

    // A bad line applies nothing.
    let mut daemon = FakeDaemon::default();
    let outcome = rvsadm_with_input(
        "-R",
        "-C\n-a -t 198.18.0.10:80 -r 198.18.1.11 -w x\n",
        &mut daemon,
    );
    assert_eq!(
        (outcome.status, outcome.stderr.as_str()),
        (2, "line 2: illegal weight specified\n")
    );
    assert!(daemon.log.is_empty());

    // A refusal stops the restore at that line.
    let mut daemon = FakeDaemon {
        refuse: Some((Status::Exists, "Service already exists")),
        ..FakeDaemon::default()
    };
    let outcome = rvsadm_with_input(
        "--restore",
        "\n-A -t 198.18.0.10:80\n-A -t 198.18.0.11:80\n",
        &mut daemon,
    );
    assert_eq!(
        (outcome.status, outcome.stderr.as_str()),
        (255, "line 2: Service already exists\n")
    );
    assert_eq!(daemon.log.len(), 1);
}

#[test]
fn save_then_restore_round_trips_through_the_daemon() {
    let mut source = FakeDaemon::with_golden_table();
    let saved = rvsadm("-S", &mut source).stdout;
    let mut target = FakeDaemon::default();
    assert_eq!(rvsadm_with_input("-R", &saved, &mut target).status, 0);
    let expected: Vec<Request> = save::parse_restore(&saved, "rvsadm", &names())
        .unwrap()
        .into_iter()
        .flat_map(|line| line.invocation.command.requests())
        .collect();
    assert_eq!(target.log, expected);
    assert_eq!(target.log.len(), 8);
}

#[test]
fn connection_failures_read_like_ipvsadm_init_failures() {
    let args = vec![
        "-Ln".to_owned(),
        "--socket".to_owned(),
        "/nonexistent/rvsd.sock".to_owned(),
    ];
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = run(
        &args,
        &environment(),
        &mut Terminal {
            stdin: &mut std::io::empty(),
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
        |path| Client::connect(path, "rvsadm"),
    );
    assert_eq!(status, 2);
    assert_eq!(
        String::from_utf8_lossy(&stderr),
        "Can't connect to rvsd at /nonexistent/rvsd.sock: No such file or directory (is rvsd running?)\n"
    );
}

/// Serves one connection speaking the real protocol, answering from a
/// [`FakeDaemon`].
fn serve(listener: UnixListener, mut daemon: FakeDaemon) -> FakeDaemon {
    let Ok((mut stream, _)) = listener.accept() else {
        return daemon;
    };
    while let Ok(Some(header)) = protocol::read_header(&mut stream) {
        let Ok(payload) = protocol::read_payload(&mut stream, &header) else {
            break;
        };
        let (status, body) = match Request::decode(protocol::MessageType(header.kind), &payload) {
            Ok(Request::Hello(hello)) => (Status::Ok, encode_reply(&Reply::Hello(hello))),
            Ok(request) => match daemon.call(&request) {
                Ok(reply) => (Status::Ok, encode_reply(&reply)),
                Err(ProtocolError::Refused { status, message }) => (status, encode_error(&message)),
                Err(error) => (Status::Internal, encode_error(&error.to_string())),
            },
            Err(error) => (Status::Malformed, encode_error(&error.to_string())),
        };
        let response = Header {
            id: header.id,
            kind: status as u32,
            len: body.len() as u32,
        };
        if protocol::write_message(&mut stream, response, &body).is_err() {
            break;
        }
    }
    daemon
}

#[test]
fn end_to_end_over_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rvsd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let daemon = FakeDaemon::with_golden_table();
    let server = std::thread::spawn(move || serve(listener, daemon));
    let environment = Environment {
        default_socket: socket,
        ..environment()
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = run(
        &["-Ln".to_owned()],
        &environment,
        &mut Terminal {
            stdin: &mut std::io::empty(),
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
        |path| Client::connect(path, "rvsadm"),
    );
    assert_eq!((status, String::from_utf8_lossy(&stderr).as_ref()), (0, ""));
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        include_str!("testdata/list.txt")
    );
    let daemon = server.join().unwrap();
    assert_eq!(daemon.log.len(), 2);
}
