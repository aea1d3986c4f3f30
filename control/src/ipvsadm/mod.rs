//! `rvsadm`: ipvsadm's command line and listings, talking to rvsd.
//!
//! LVS users' commands and scripts work with the name swapped: rvsadm
//! accepts ipvsadm 1.31's syntax ([`args`]), prints its listings and save
//! format byte for byte ([`format`], [`save`]), prints the daemon's refusals
//! as ipvsadm prints libipvs' messages, and exits with ipvsadm's statuses.
//!
//! The work is split so that everything but the socket is a pure function:
//! [`args::parse`] turns the command line into a [`Command`];
//! [`Command::requests`] maps it to control-protocol requests; the
//! formatters turn replies into text; [`run`] ties them to a [`Daemon`]
//! (the protocol's [`Client`] in `rvsadm`, a fake in tests).
//!
//! Deliberate differences from ipvsadm: names come from `/etc/services`
//! and `/etc/hosts` only (never DNS); addresses sort numerically (ipvsadm's
//! comparison wraps for addresses 2^31 apart); `-S` also saves thresholds;
//! `-R` checks every line before applying any and stops at the first
//! failure, naming its line; `-c` lists connections worker by worker, then
//! the persistence templates (ipvsadm shows the kernel's hash order), and
//! shows FULLNAT's LIP:lport only with `--json` (ipvsadm has no column for
//! it); weights go up to 65535, not 2^31 - 1; options of features rvs
//! lacks (fwmark and SCTP services, one-packet scheduling, persistence
//! engines, GUE and GRE tunnels) are refused as "not supported yet" once
//! they have passed every check of ipvsadm's, so that a command line
//! ipvsadm refuses gets ipvsadm's own complaint; the connection sync
//! daemon's options are refused at once.
//!
//! rvs's own options add to ipvsadm's without changing its output:
//! `--json`, `--socket`, `--reload`, `--workers`, `--import-keepalived`,
//! and `--health`, which adds a Health column to `-L` (see [`format`]).
//! Without `--health`, a real server that its health check inhibited is
//! listed with weight 0 and one it removed is not listed, as ipvsadm
//! lists them under keepalived.

pub mod args;
pub mod format;
pub mod names;
pub mod save;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::keepalived;
use crate::model::Timeouts;
use crate::protocol::{
    CONN_PAGE_MAX, Client, ConnCursor, ConnListRequest, DaemonInfo, ProtocolError, Reply, Request,
    ServiceFilter,
};

pub use args::{Command, ConnListOptions, Invocation, ListOptions, ListView};
pub use names::Names;

/// ipvsadm's status when a listing fails (`exit(1)`).
pub const EXIT_LISTING_FAILED: i32 = 1;
/// ipvsadm's status for a command line it refuses (`fail(2, ...)`).
pub const EXIT_BAD_ARGUMENTS: i32 = 2;
/// ipvsadm's status when it cannot reach IPVS; rvsadm's when it cannot
/// reach rvsd.
pub const EXIT_CANNOT_CONNECT: i32 = 2;
/// ipvsadm's status when the kernel refuses a change, and for popt's
/// complaints (`main` returns -1).
pub const EXIT_FAILED: i32 = 255;

/// Something rvsadm could not do: what to print and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
}

impl Failure {
    /// ipvsadm's `fail(2, ...)`.
    pub(crate) fn fail(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit_code: EXIT_BAD_ARGUMENTS,
        }
    }

    /// popt's complaint about one argument.
    pub(crate) fn popt(argument: &str, problem: &str) -> Failure {
        Failure {
            message: format!("{argument}: {problem}"),
            exit_code: EXIT_FAILED,
        }
    }

    /// ipvsadm's `tryhelp_exit`.
    pub(crate) fn try_help(program: &str) -> Failure {
        Failure {
            message: format!("Try `{program} -h' or '{program} --help' for more information."),
            exit_code: EXIT_FAILED,
        }
    }

    pub(crate) fn unsupported(what: &str) -> Failure {
        Failure::fail(format!("{what} is not supported yet"))
    }

    /// A refusal or error from rvsd: its message as it is.
    fn from_daemon(error: ProtocolError, listing: bool) -> Failure {
        let message = match error {
            ProtocolError::Refused { message, .. } => message,
            other => other.to_string(),
        };
        Failure {
            message,
            exit_code: if listing {
                EXIT_LISTING_FAILED
            } else {
                EXIT_FAILED
            },
        }
    }

    fn cannot_connect(path: &Path, error: &ProtocolError) -> Failure {
        let message = match error {
            ProtocolError::Connect { source, .. } => format!(
                "Can't connect to rvsd at {}: {} (is rvsd running?)",
                path.display(),
                strerror(source)
            ),
            other => format!("Can't connect to rvsd at {}: {other}", path.display()),
        };
        Failure {
            message,
            exit_code: EXIT_CANNOT_CONNECT,
        }
    }
}

impl Command {
    /// The requests that carry the command out, in order.
    ///
    /// `--set` with a 0 ("leave unchanged", as in IPVS) first reads the
    /// current timeouts; [`run`] fills the zeros of the following
    /// `SetTimeouts` from that reply with [`merge_timeouts`].
    pub fn requests(&self) -> Vec<Request> {
        let all = ServiceFilter::default();
        match self {
            Command::AddService(spec) => vec![Request::AddService(spec.clone())],
            Command::EditService(spec) => vec![Request::EditService(spec.clone())],
            Command::DeleteService(key) => vec![Request::DeleteService(*key)],
            Command::Clear => vec![Request::Flush],
            Command::Reload => vec![Request::Reload],
            Command::AddServer(change) => vec![Request::AddRealServer(*change)],
            Command::EditServer(change) => vec![Request::EditRealServer(*change)],
            Command::DeleteServer(real) => vec![Request::DeleteRealServer(*real)],
            Command::List(ListOptions {
                service: Some(service),
                ..
            }) => vec![Request::ListServices(ServiceFilter {
                service: Some(*service),
            })],
            Command::List(_) => vec![Request::Info, Request::ListServices(all)],
            Command::ListTimeouts => vec![Request::GetTimeouts],
            Command::ListWorkers => vec![Request::Workers],
            Command::Zero(service) => {
                vec![Request::ZeroCounters(ServiceFilter { service: *service })]
            }
            Command::SetTimeouts(wanted) => {
                let set = Request::SetTimeouts(*wanted);
                if [wanted.tcp, wanted.tcp_fin, wanted.udp].contains(&0) {
                    vec![Request::GetTimeouts, set]
                } else {
                    vec![set]
                }
            }
            Command::Save { .. } => vec![Request::ListServices(all)],
            // The first page; [`run`] asks for the following ones.
            Command::ListConnections(_) => vec![connections_page(None)],
            Command::Restore | Command::Help | Command::Version | Command::ImportKeepalived(_) => {
                vec![]
            }
        }
    }

    /// Whether the command only reads (ipvsadm exits 1 when those fail,
    /// 255 when a change fails).
    pub fn is_listing(&self) -> bool {
        matches!(
            self,
            Command::List(_)
                | Command::ListConnections(_)
                | Command::ListTimeouts
                | Command::ListWorkers
                | Command::Save { .. }
        )
    }
}

/// `--set`'s rule: a 0 keeps the current value.
pub fn merge_timeouts(current: Timeouts, wanted: Timeouts) -> Timeouts {
    let pick = |current: u32, wanted: u32| if wanted == 0 { current } else { wanted };
    Timeouts {
        tcp: pick(current.tcp, wanted.tcp),
        tcp_fin: pick(current.tcp_fin, wanted.tcp_fin),
        udp: pick(current.udp, wanted.udp),
    }
}

/// What rvsadm talks to: rvsd through a [`Client`], or a fake in tests.
pub trait Daemon {
    fn call(&mut self, request: &Request) -> Result<Reply, ProtocolError>;
}

impl Daemon for Client {
    fn call(&mut self, request: &Request) -> Result<Reply, ProtocolError> {
        Client::call(self, request)
    }
}

/// Where rvsadm runs: its name, the system's names and the socket to use
/// without `--socket`.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `argv[0]`, which ipvsadm's messages name.
    pub program: String,
    pub names: Names,
    pub default_socket: PathBuf,
}

/// Standard input and outputs.
pub struct Terminal<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Terminal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").finish_non_exhaustive()
    }
}

/// Runs one rvsadm command line and returns the exit status. `connect`
/// opens the session with rvsd, only when the command needs one.
pub fn run<D: Daemon>(
    args: &[String],
    environment: &Environment,
    terminal: &mut Terminal<'_>,
    connect: impl FnOnce(&Path) -> Result<D, ProtocolError>,
) -> i32 {
    match run_inner(args, environment, terminal, connect) {
        Ok(status) => status,
        Err(failure) => {
            // Nothing sensible remains to be done when stderr is gone.
            let _ = writeln!(terminal.stderr, "{}", failure.message);
            failure.exit_code
        }
    }
}

fn run_inner<D: Daemon>(
    args: &[String],
    environment: &Environment,
    terminal: &mut Terminal<'_>,
    connect: impl FnOnce(&Path) -> Result<D, ProtocolError>,
) -> Result<i32, Failure> {
    let program = environment.program.as_str();
    let names = &environment.names;
    let invocation = args::parse(program, args, names)?;
    let socket = invocation
        .socket
        .clone()
        .unwrap_or_else(|| environment.default_socket.clone());
    let connect =
        |path: &Path| connect(path).map_err(|error| Failure::cannot_connect(path, &error));
    // Output is written as it comes; a closed stdout (`| head`) is no error.
    let mut print = |text: &str| {
        let _ = terminal.stdout.write_all(text.as_bytes());
    };
    match &invocation.command {
        Command::Help => print(&args::usage(program)),
        Command::Version => print(&args::version()),
        Command::ListConnections(options) => {
            let mut daemon = connect(&socket)?;
            list_connections(&mut daemon, options, invocation.json, names, &mut print)?;
        }
        Command::ImportKeepalived(path) => {
            let translation =
                keepalived::import(path).map_err(|error| Failure::fail(error.to_string()))?;
            print(&translation.toml);
            for item in &translation.untranslated {
                let _ = writeln!(terminal.stderr, "{item}");
            }
            if !translation.untranslated.is_empty() {
                return Ok(keepalived::EXIT_INCOMPLETE);
            }
        }
        Command::Restore => {
            let mut text = String::new();
            terminal
                .stdin
                .read_to_string(&mut text)
                .map_err(|error| Failure::fail(format!("cannot read standard input: {error}")))?;
            let lines = save::parse_restore(&text, program, names).map_err(|error| Failure {
                message: format!("line {}: {}", error.line, error.error.message),
                exit_code: error.error.exit_code,
            })?;
            if lines.is_empty() {
                return Ok(0);
            }
            let mut daemon = connect(&socket)?;
            for line in lines {
                let output =
                    execute(&line.invocation, &mut daemon, names).map_err(|failure| Failure {
                        message: format!("line {}: {}", line.line, failure.message),
                        exit_code: failure.exit_code,
                    })?;
                let _ = terminal.stdout.write_all(output.as_bytes());
            }
        }
        _ => {
            let mut daemon = connect(&socket)?;
            print(&execute(&invocation, &mut daemon, names)?);
        }
    }
    Ok(0)
}

/// The request for the connection listing's page at `cursor`.
fn connections_page(cursor: Option<ConnCursor>) -> Request {
    Request::ListConnections(ConnListRequest {
        cursor,
        limit: CONN_PAGE_MAX,
    })
}

/// `-L -c`: asks for page after page until the last, printing each as it
/// comes, so that a table of millions never sits in rvsadm's memory.
/// `--json` prints one array of the protocol's entries.
fn list_connections(
    daemon: &mut impl Daemon,
    options: &ConnListOptions,
    json: bool,
    names: &Names,
    print: &mut impl FnMut(&str),
) -> Result<(), Failure> {
    if !json {
        print(&format::connections_title(options));
    }
    let mut cursor = None;
    let mut listed = 0usize;
    loop {
        let page = match daemon.call(&connections_page(cursor)) {
            Ok(Reply::Connections(page)) => page,
            Ok(_) => return Err(unexpected_reply()),
            Err(error) => return Err(Failure::from_daemon(error, true)),
        };
        if json {
            // The layout of `json(&all_entries)`, an entry at a time.
            for entry in &page.connections {
                let text = serde_json::to_string_pretty(entry).unwrap_or_default();
                print(if listed == 0 { "[\n" } else { ",\n" });
                print(&indent(&text));
                listed += 1;
            }
        } else {
            print(&format::connections(&page.connections, options, names));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if json {
        print(if listed == 0 { "[]\n" } else { "\n]\n" });
    }
    Ok(())
}

/// Each line of `text` indented by two blanks, as `to_string_pretty`
/// indents an array's elements.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn unexpected_reply() -> Failure {
    Failure {
        message: "rvsd sent an unexpected reply".to_owned(),
        exit_code: EXIT_LISTING_FAILED,
    }
}

/// Sends a command's requests and renders the replies.
fn execute(
    invocation: &Invocation,
    daemon: &mut impl Daemon,
    names: &Names,
) -> Result<String, Failure> {
    let command = &invocation.command;
    let mut replies: Vec<Reply> = Vec::new();
    for request in command.requests() {
        let request = match (request, replies.last()) {
            (Request::SetTimeouts(wanted), Some(Reply::Timeouts(current))) => {
                Request::SetTimeouts(merge_timeouts(*current, wanted))
            }
            (request, _) => request,
        };
        let reply = daemon
            .call(&request)
            .map_err(|error| Failure::from_daemon(error, command.is_listing()))?;
        replies.push(reply);
    }
    render(invocation, &replies, names)
}

fn render(invocation: &Invocation, replies: &[Reply], names: &Names) -> Result<String, Failure> {
    let unexpected = unexpected_reply;
    let services = || {
        replies
            .iter()
            .find_map(|reply| match reply {
                Reply::Services(services) => Some(services),
                _ => None,
            })
            .ok_or_else(unexpected)
    };
    match &invocation.command {
        Command::List(options) => {
            let services = services()?;
            if options.service.is_some() && services.is_empty() {
                return Err(Failure {
                    message: "No such service".to_owned(),
                    exit_code: EXIT_LISTING_FAILED,
                });
            }
            if invocation.json {
                return Ok(json(services));
            }
            let info: Option<&DaemonInfo> = replies.iter().find_map(|reply| match reply {
                Reply::Info(info) => Some(info),
                _ => None,
            });
            Ok(format::listing(info, services, options, names))
        }
        Command::ListWorkers => match replies.first() {
            Some(Reply::Workers(workers)) if invocation.json => Ok(json(workers)),
            Some(Reply::Workers(workers)) => Ok(format::workers(workers)),
            _ => Err(unexpected()),
        },
        Command::ListTimeouts => match replies.first() {
            Some(Reply::Timeouts(timeouts)) if invocation.json => Ok(json(timeouts)),
            Some(Reply::Timeouts(timeouts)) => Ok(format::timeouts(timeouts)),
            _ => Err(unexpected()),
        },
        Command::Save { numeric } => Ok(save::save(services()?, *numeric, names)),
        _ => Ok(String::new()),
    }
}

/// `--json`'s output: the protocol's JSON, indented.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serialising plain model values into memory cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// The C library's text for an OS error, without Rust's "(os error N)".
fn strerror(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests;
