//! ipvsadm's command line, parsed into a [`Command`].
//!
//! The parser follows ipvsadm 1.31, which uses popt: the first option must
//! be a command (`-A`, `-L`, `--set`, ...); short options cluster (`-Ln`,
//! `-At 198.18.0.10:80`); an option's value is the rest of its cluster, the
//! part after `=` of a long option, or the next argument, even one that
//! starts with `-`; `-p` takes a value only when one follows that does not
//! start with `-`. Which options each command allows is ipvsadm's table,
//! rows and columns in its order, so that the first complaint about a
//! command line is the one ipvsadm makes, in its words and with its exit
//! status: 2 for ipvsadm's own checks, 255 for popt's and for a first
//! argument that is not a command.
//!
//! clap cannot express this (commands that are options, options legal per
//! command, popt's optional values), hence a small parser of our own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::names::Names;
use super::{EXIT_FAILED, Failure};
use crate::model::{
    ForwardMethod, MAX_WEIGHT, Persistence, Protocol, RealServerSpec, SCHEDULER_FLAGS,
    SchedulerFlag, SchedulerName, ServiceKey, ServiceSpec, Timeouts,
};
use crate::protocol::{RealServerChange, RealServerRef};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// `--socket PATH`: where rvsd listens, instead of the default.
    pub socket: Option<PathBuf>,
    /// `--json`: print listings as the control protocol's JSON.
    pub json: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`
    AddService(ServiceSpec),
    /// `-E`: the whole definition is replaced, as with ipvsadm, so that a
    /// missing `-s` means `wlc`.
    EditService(ServiceSpec),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-C`
    Clear,
    /// `-a`
    AddServer(RealServerChange),
    /// `-e`: as `-E`, options not given take their defaults.
    EditServer(RealServerChange),
    /// `-d`
    DeleteServer(RealServerRef),
    /// `-L`, `-l`, or no argument at all.
    List(ListOptions),
    /// `-L --timeout`
    ListTimeouts,
    /// `-L -c`: the connections and persistence templates.
    ListConnections(ConnListOptions),
    /// `-L --workers` (rvs): each worker's packet counts, drops and cost.
    ListWorkers,
    /// `-Z [service]`
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`; 0 leaves that timeout unchanged.
    SetTimeouts(Timeouts),
    /// `-S [-n]`
    Save { numeric: bool },
    /// `-R`: ipvsadm commands from standard input, one a line.
    Restore,
    /// `--reload` (rvs): rvsd rereads its configuration file.
    Reload,
    /// `-h`
    Help,
    /// `-v`
    Version,
    /// `--import-keepalived FILE` (rvs): print the LVS part of a
    /// keepalived.conf as rvsd configuration ([`crate::keepalived`]).
    ImportKeepalived(PathBuf),
}

/// How `-L` lists services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// `-t`/`-u`: this service only.
    pub service: Option<ServiceKey>,
    pub view: ListView,
    /// `-n`: addresses and ports as numbers.
    pub numeric: bool,
    /// `--exact`: numbers without K/M/G/T scaling.
    pub exact: bool,
    /// Sorted by address as ipvsadm does, unless `--nosort`.
    pub sort: bool,
    /// `--health` (rvs): a Health column, and the real servers that their
    /// health check removed. Only with the default view.
    pub health: bool,
}

/// How `-L -c` lists connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnListOptions {
    /// `-n`: addresses and ports as numbers.
    pub numeric: bool,
    /// `--persistent-conn`: the title also names ipvsadm's persistence
    /// engine columns (`pe name`, `pe_data`), which stay empty: rvs has no
    /// persistence engines.
    pub persistence_engine: bool,
}

/// The columns of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListView {
    /// Forward, Weight, ActiveConn, InActConn.
    #[default]
    Connections,
    /// `--stats`: Conns, InPkts, OutPkts, InBytes, OutBytes.
    Stats,
    /// `--rate`: CPS, InPPS, OutPPS, InBPS, OutBPS.
    Rate,
    /// `--thresholds`: Uthreshold, Lthreshold, ActiveConn, InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight, PersistConn, ActiveConn, InActConn.
    PersistentConn,
    /// `--tun-info`: the default view with a TunnelInfo column.
    TunnelInfo,
}

/// ipvsadm's largest timeout (`MAX_TIMEOUT`): 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;

/// Parses `args` (without the program name). `program` appears in
/// messages; `names` resolves host and service names.
pub fn parse(program: &str, args: &[String], names: &Names) -> Result<Invocation, Failure> {
    let mut parser = Parser {
        program,
        names,
        words: args,
        next_word: 0,
        cluster: None,
        only_positionals: false,
    };
    if args.is_empty() {
        return Ok(Invocation {
            command: Command::List(ListOptions {
                sort: true,
                ..ListOptions::default()
            }),
            socket: None,
            json: false,
        });
    }
    let mut state = State::default();
    let command = parser.first_command(&mut state)?;
    if let Some(command) = state.command_override.take() {
        // The import reads its file and nothing else.
        if matches!(command, Command::ImportKeepalived(_))
            && let Some(event) = parser.next_event()?
        {
            let extra = match event {
                Event::Positional(word) => word,
                Event::Option { spelling, .. } => spelling,
            };
            return Err(Failure::fail(format!(
                "unexpected argument {extra}: --import-keepalived takes one file and no other option"
            )));
        }
        // ipvsadm prints help or version at once, whatever follows.
        return Ok(Invocation {
            command,
            socket: state.socket,
            json: false,
        });
    }
    while let Some(event) = parser.next_event()? {
        match event {
            Event::Positional(word) => state.positionals.push(word),
            Event::Option {
                spec,
                spelling,
                value,
            } => {
                state.apply(&parser, spec, &spelling, value)?;
            }
        }
    }
    state.finish(command)
}

/// The usage text of `-h`, in ipvsadm's layout.
pub fn usage(program: &str) -> String {
    let p = program;
    format!(
        "{version}\
Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} --reload
  {p} --import-keepalived FILE
  {p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --reload                    make rvsd reread its configuration file
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]

Options:
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|sed|nq|lblc|lblcr|dh|sh|fo|ovf|twos|mh,
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT: source and destination rewritten
  --tun-type      type                ipip, the only tunnel type supported
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)

rvs options:
  --json                              print listings as rvsd's protocol JSON
  --health                            with -L: add a Health column to the real servers
                                      (UP, DOWN, or - when not checked, and why), and
                                      list those their health check removed
  --socket PATH                       rvsd's control socket (default: $RVS_SOCKET,
                                      else /run/rvs/rvsd.sock)
  --import-keepalived FILE            print the virtual servers of keepalived.conf FILE
                                      as rvsd TOML ([[services]]); list what could not
                                      be translated on stderr, one line each, and then
                                      exit 3 (0 when everything was translated)
",
        version = version()
    )
}

/// The `-v` line.
pub fn version() -> String {
    format!(
        "rvsadm v{} (ipvsadm v1.31 compatible, IPVS v1.2.1)\n",
        env!("CARGO_PKG_VERSION")
    )
}

// ---------------------------------------------------------------------------
// Commands and options, as ipvsadm's tables.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Delete,
    Flush,
    List,
    AddServer,
    DeleteServer,
    EditServer,
    Timeout,
    Restore,
    Save,
    Zero,
    Reload,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Delete => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DeleteServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Reload => "reload",
        }
    }

    /// The command's row of [`Opt`] columns: `+` required, `x` illegal,
    /// `1` at most one of the `1`s, `.` optional. Blanks only group.
    fn rules(self) -> &'static str {
        //      n c svc  s p M  r fwd w x y  tot st rt thr pc srt ex  ops pe b  tinf ttyp tprt tnoc tcsm trcs  json wrk hlth
        match self {
            Cmd::Add | Cmd::Edit => {
                "x x +  . . .  x x x x x  x x x x x x x  . . .  x x x x x x  x x x"
            }
            Cmd::Delete => "x x +  x x x  x x x x x  x x x x x x x  x x x  x x x x x x  x x x",
            Cmd::List => ". 1 1  x x x  x x x x x  1 . . . . . .  x x x  . x x x x x  . 1 .",
            Cmd::AddServer | Cmd::EditServer => {
                "x x +  x x x  + . . . .  x x x x x x x  x x x  x . . . . .  x x x"
            }
            Cmd::DeleteServer => {
                "x x +  x x x  + x x x x  x x x x x x x  x x x  x x x x x x  x x x"
            }
            Cmd::Save => ". x x  x x x  x x x x x  x x x x x x x  x x x  x x x x x x  x x x",
            Cmd::Zero => "x x .  x x x  x x x x x  x x x x x x x  x x x  x x x x x x  x x x",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore | Cmd::Reload => {
                "x x x  x x x  x x x x x  x x x x x x x  x x x  x x x x x x  x x x"
            }
        }
    }

    fn rule(self, opt: Opt) -> char {
        rule_at(self.rules(), opt as usize)
    }
}

/// Column `index` of a row of rules (blanks only group the columns); `x`
/// past its end.
fn rule_at(row: &str, index: usize) -> char {
    row.chars()
        .filter(|c| !c.is_whitespace())
        .nth(index)
        .unwrap_or('x')
}

/// `--tun-type`: ipvsadm's tunnel types. rvs encapsulates in IP-in-IP
/// only; the others are checked as ipvsadm checks them, then refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelType {
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    /// The columns of ipvsadm's `tunnel_types_v_options`.
    const OPTIONS: [Opt; 4] = [
        Opt::TunPort,
        Opt::TunNoChecksum,
        Opt::TunChecksum,
        Opt::TunRemoteChecksum,
    ];

    fn parse(text: &str) -> Option<TunnelType> {
        [TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre]
            .into_iter()
            .find(|tunnel| tunnel.name() == text)
    }

    /// ipvsadm's `tunnames`.
    fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }

    /// The type's row of [`TunnelType::OPTIONS`] rules, as [`Cmd::rules`].
    fn rule(self, opt: Opt) -> char {
        let row = match self {
            TunnelType::Ipip => "x x x x",
            TunnelType::Gue => "+ 1 1 1",
            TunnelType::Gre => "x 1 1 x",
        };
        TunnelType::OPTIONS
            .iter()
            .position(|column| *column == opt)
            .map_or('x', |index| rule_at(row, index))
    }

    /// What rvs lacks to tunnel this way, if anything.
    fn unsupported(self) -> Option<&'static str> {
        match self {
            TunnelType::Ipip => None,
            TunnelType::Gue => Some("a GUE tunnel"),
            TunnelType::Gre => Some("a GRE tunnel"),
        }
    }
}

/// Options that `set_option` tracks, in the order of ipvsadm's columns
/// (ipvsadm's sync-daemon columns and `-6`'s, which no check reads, left
/// out; `json` and `workers` are rvs's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    TunInfo,
    TunType,
    TunPort,
    TunNoChecksum,
    TunChecksum,
    TunRemoteChecksum,
    Json,
    Workers,
    Health,
}

impl Opt {
    const ALL: [Opt; 30] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::RealServer,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::Timeout,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::Ops,
        Opt::Pe,
        Opt::SchedFlags,
        Opt::TunInfo,
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNoChecksum,
        Opt::TunChecksum,
        Opt::TunRemoteChecksum,
        Opt::Json,
        Opt::Workers,
        Opt::Health,
    ];

    /// ipvsadm's `optnames`.
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::RealServer => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::Ops => "ops",
            Opt::Pe => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::TunInfo => "tun-info",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNoChecksum => "tun-nocsum",
            Opt::TunChecksum => "tun-csum",
            Opt::TunRemoteChecksum => "tun-remcsum",
            Opt::Json => "json",
            Opt::Workers => "workers",
            Opt::Health => "health",
        }
    }
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    /// popt's `POPT_ARGFLAG_OPTIONAL`.
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Command(Cmd),
    Help,
    Version,
    /// An option that only sets its column (and perhaps a format flag).
    Flag(Opt),
    Service(Protocol),
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward(ForwardMethod),
    Weight,
    UThreshold,
    LThreshold,
    SchedFlags,
    TunType,
    TunPort,
    /// `-f`: checked as ipvsadm checks it, then refused (see
    /// [`State::defer`]).
    Fwmark,
    /// `--sctp-service`: likewise.
    SctpService,
    /// `-o`: likewise.
    Ops,
    /// `--pe`: likewise.
    Pe,
    /// `--sort`: sorting is the default; accepted for compatibility.
    Sort,
    /// `-6`: only meaningful with fwmark services.
    Ipv6,
    /// rvs's `--socket PATH`.
    Socket,
    /// rvs's `--import-keepalived FILE`, a command of its own.
    ImportKeepalived,
    /// An option of ipvsadm's connection sync daemon, which rvs does not
    /// have: refused at once, naming it.
    Unsupported(&'static str),
}

#[derive(Debug)]
struct Spec {
    long: &'static str,
    short: Option<char>,
    arg: Arg,
    action: Action,
}

const fn spec(long: &'static str, short: Option<char>, arg: Arg, action: Action) -> Spec {
    Spec {
        long,
        short,
        arg,
        action,
    }
}

/// ipvsadm's option table (`options_table`), plus `--fullnat`, `--json`,
/// `--workers`, `--health`, `--socket`, `--reload` and
/// `--import-keepalived`.
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    spec("add-service", Some('A'), Arg::None, Action::Command(Cmd::Add)),
    spec("edit-service", Some('E'), Arg::None, Action::Command(Cmd::Edit)),
    spec("delete-service", Some('D'), Arg::None, Action::Command(Cmd::Delete)),
    spec("clear", Some('C'), Arg::None, Action::Command(Cmd::Flush)),
    spec("list", Some('L'), Arg::None, Action::Command(Cmd::List)),
    spec("list", Some('l'), Arg::None, Action::Command(Cmd::List)),
    spec("zero", Some('Z'), Arg::None, Action::Command(Cmd::Zero)),
    spec("add-server", Some('a'), Arg::None, Action::Command(Cmd::AddServer)),
    spec("edit-server", Some('e'), Arg::None, Action::Command(Cmd::EditServer)),
    spec("delete-server", Some('d'), Arg::None, Action::Command(Cmd::DeleteServer)),
    spec("set", None, Arg::None, Action::Command(Cmd::Timeout)),
    spec("help", Some('h'), Arg::None, Action::Help),
    spec("version", Some('v'), Arg::None, Action::Version),
    spec("restore", Some('R'), Arg::None, Action::Command(Cmd::Restore)),
    spec("save", Some('S'), Arg::None, Action::Command(Cmd::Save)),
    spec("reload", None, Arg::None, Action::Command(Cmd::Reload)),
    spec("start-daemon", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("stop-daemon", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("tcp-service", Some('t'), Arg::Required, Action::Service(Protocol::Tcp)),
    spec("udp-service", Some('u'), Arg::Required, Action::Service(Protocol::Udp)),
    spec("sctp-service", None, Arg::Required, Action::SctpService),
    spec("fwmark-service", Some('f'), Arg::Required, Action::Fwmark),
    spec("scheduler", Some('s'), Arg::Required, Action::Scheduler),
    spec("persistent", Some('p'), Arg::Optional, Action::Persistent),
    spec("netmask", Some('M'), Arg::Required, Action::Netmask),
    spec("real-server", Some('r'), Arg::Required, Action::RealServer),
    spec("masquerading", Some('m'), Arg::None, Action::Forward(ForwardMethod::Masq)),
    spec("ipip", Some('i'), Arg::None, Action::Forward(ForwardMethod::Tunnel)),
    spec("gatewaying", Some('g'), Arg::None, Action::Forward(ForwardMethod::Route)),
    spec("fullnat", None, Arg::None, Action::Forward(ForwardMethod::FullNat)),
    spec("weight", Some('w'), Arg::Required, Action::Weight),
    spec("u-threshold", Some('x'), Arg::Required, Action::UThreshold),
    spec("l-threshold", Some('y'), Arg::Required, Action::LThreshold),
    spec("numeric", Some('n'), Arg::None, Action::Flag(Opt::Numeric)),
    spec("connection", Some('c'), Arg::None, Action::Flag(Opt::Connection)),
    spec("mcast-interface", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("syncid", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("timeout", None, Arg::None, Action::Flag(Opt::Timeout)),
    spec("daemon", None, Arg::None, Action::Unsupported(SYNC_DAEMON)),
    spec("stats", None, Arg::None, Action::Flag(Opt::Stats)),
    spec("rate", None, Arg::None, Action::Flag(Opt::Rate)),
    spec("thresholds", None, Arg::None, Action::Flag(Opt::Thresholds)),
    spec("persistent-conn", None, Arg::None, Action::Flag(Opt::PersistentConn)),
    spec("nosort", None, Arg::None, Action::Flag(Opt::NoSort)),
    spec("sort", None, Arg::None, Action::Sort),
    spec("exact", Some('X'), Arg::None, Action::Flag(Opt::Exact)),
    spec("ipv6", Some('6'), Arg::None, Action::Ipv6),
    spec("ops", Some('o'), Arg::None, Action::Ops),
    spec("pe", None, Arg::Required, Action::Pe),
    spec("sched-flags", Some('b'), Arg::Required, Action::SchedFlags),
    spec("mcast-group", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("mcast-port", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("mcast-ttl", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("sync-maxlen", None, Arg::Required, Action::Unsupported(SYNC_DAEMON)),
    spec("tun-info", None, Arg::None, Action::Flag(Opt::TunInfo)),
    spec("tun-type", None, Arg::Required, Action::TunType),
    spec("tun-port", None, Arg::Required, Action::TunPort),
    spec("tun-nocsum", None, Arg::None, Action::Flag(Opt::TunNoChecksum)),
    spec("tun-csum", None, Arg::None, Action::Flag(Opt::TunChecksum)),
    spec("tun-remcsum", None, Arg::None, Action::Flag(Opt::TunRemoteChecksum)),
    spec("json", None, Arg::None, Action::Flag(Opt::Json)),
    spec("workers", None, Arg::None, Action::Flag(Opt::Workers)),
    spec("health", None, Arg::None, Action::Flag(Opt::Health)),
    spec("socket", None, Arg::Required, Action::Socket),
    spec("import-keepalived", None, Arg::Required, Action::ImportKeepalived),
];

const SYNC_DAEMON: &str = "the connection sync daemon";

// ---------------------------------------------------------------------------
// Splitting the words into options, popt's way.

enum Event {
    Option {
        spec: &'static Spec,
        /// The argument as written, for messages (popt names the whole
        /// word, cluster included).
        spelling: String,
        value: Option<String>,
    },
    Positional(String),
}

struct Parser<'a> {
    program: &'a str,
    names: &'a Names,
    words: &'a [String],
    next_word: usize,
    /// The rest of a short-option cluster being read, and its word.
    cluster: Option<(String, String)>,
    /// After `--`, every word is positional.
    only_positionals: bool,
}

impl Parser<'_> {
    /// Reads the first option, which must be a command.
    fn first_command(&mut self, state: &mut State) -> Result<Cmd, Failure> {
        loop {
            let event = match self.next_event() {
                Ok(Some(event)) => event,
                Ok(None) | Err(_) => return Err(Failure::try_help(self.program)),
            };
            match event {
                Event::Positional(word) => state.positionals.push(word),
                Event::Option {
                    spec,
                    spelling,
                    value,
                } => match spec.action {
                    Action::Command(cmd) => {
                        state.command = Some(cmd);
                        return Ok(cmd);
                    }
                    Action::Help => {
                        state.command_override = Some(Command::Help);
                        return Ok(Cmd::List);
                    }
                    Action::Version => {
                        state.command_override = Some(Command::Version);
                        return Ok(Cmd::List);
                    }
                    Action::ImportKeepalived => {
                        // Arg::Required: the parser has read the value.
                        let file = PathBuf::from(value.unwrap_or_default());
                        state.command_override = Some(Command::ImportKeepalived(file));
                        return Ok(Cmd::List);
                    }
                    // rvs's own options may come anywhere.
                    Action::Socket | Action::Flag(Opt::Json) => {
                        state.apply(self, spec, &spelling, value)?;
                    }
                    Action::Unsupported(what) => {
                        return Err(Failure::unsupported(&format!("{spelling} ({what})")));
                    }
                    _ => return Err(Failure::try_help(self.program)),
                },
            }
        }
    }

    fn next_event(&mut self) -> Result<Option<Event>, Failure> {
        if let Some((rest, word)) = self.cluster.take() {
            return self.short_option(rest, word).map(Some);
        }
        let Some(word) = self.words.get(self.next_word).cloned() else {
            return Ok(None);
        };
        self.next_word += 1;
        if self.only_positionals || word == "-" || !word.starts_with('-') {
            return Ok(Some(Event::Positional(word)));
        }
        if word == "--" {
            self.only_positionals = true;
            return self.next_event();
        }
        if let Some(long) = word.strip_prefix("--") {
            return self.long_option(long, &word).map(Some);
        }
        self.short_option(word[1..].to_owned(), word).map(Some)
    }

    fn long_option(&mut self, long: &str, word: &str) -> Result<Event, Failure> {
        let (name, attached) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (long, None),
        };
        let spec = SPECS
            .iter()
            .find(|spec| spec.long == name)
            .ok_or_else(|| Failure::popt(word, "unknown option"))?;
        let value = match (spec.arg, attached) {
            (Arg::None, Some(_)) => {
                return Err(Failure::popt(word, "option does not take an argument"));
            }
            (Arg::None, None) => None,
            (_, Some(value)) => Some(value),
            (Arg::Required, None) => Some(self.take_value(word)?),
            (Arg::Optional, None) => self.take_optional_value(),
        };
        Ok(Event::Option {
            spec,
            spelling: word.to_owned(),
            value,
        })
    }

    /// One option of a cluster such as `-Lnc`; `rest` starts with it.
    fn short_option(&mut self, rest: String, word: String) -> Result<Event, Failure> {
        let mut chars = rest.chars();
        let letter = chars
            .next()
            .ok_or_else(|| Failure::popt(&word, "unknown option"))?;
        let remainder: String = chars.collect();
        let spec = SPECS
            .iter()
            .find(|spec| spec.short == Some(letter))
            .ok_or_else(|| Failure::popt(&word, "unknown option"))?;
        let value = match spec.arg {
            Arg::None => {
                if !remainder.is_empty() {
                    self.cluster = Some((remainder, word.clone()));
                }
                None
            }
            _ if !remainder.is_empty() => Some(remainder),
            Arg::Required => Some(self.take_value(&word)?),
            Arg::Optional => self.take_optional_value(),
        };
        Ok(Event::Option {
            spec,
            spelling: word,
            value,
        })
    }

    fn take_value(&mut self, word: &str) -> Result<String, Failure> {
        let value = self
            .words
            .get(self.next_word)
            .cloned()
            .ok_or_else(|| Failure::popt(word, "missing argument"))?;
        self.next_word += 1;
        Ok(value)
    }

    fn take_optional_value(&mut self) -> Option<String> {
        let value = self
            .words
            .get(self.next_word)
            .filter(|next| !next.starts_with('-'))
            .cloned()?;
        self.next_word += 1;
        Some(value)
    }
}

// ---------------------------------------------------------------------------
// What the options say, checked as ipvsadm checks them.

/// An address as given to `-t`/`-u`/`-r`: the port may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Endpoint {
    ip: IpAddr,
    port: Option<u16>,
}

#[derive(Default)]
struct State {
    command: Option<Cmd>,
    /// `-h`/`-v`, which end parsing at once.
    command_override: Option<Command>,
    options: Vec<Opt>,
    positionals: Vec<String>,
    protocol: Option<Protocol>,
    service: Option<Endpoint>,
    scheduler: Option<String>,
    persistent_timeout: Option<u32>,
    netmask: Option<u8>,
    real_server: Option<Endpoint>,
    forward: Option<ForwardMethod>,
    weight: Option<u32>,
    upper_threshold: Option<u32>,
    lower_threshold: Option<u32>,
    sched_flags: Option<String>,
    tunnel_type: Option<TunnelType>,
    /// `-f` named the service.
    fwmark: bool,
    /// `-6` after `-f`: the fwmark service is IPv6 (`-M` a prefix length).
    ipv6_fwmark: bool,
    /// The first refusal of something ipvsadm accepts but rvs cannot do
    /// (see [`State::defer`]).
    deferred: Option<Failure>,
    socket: Option<PathBuf>,
}

impl State {
    fn has(&self, opt: Opt) -> bool {
        self.options.contains(&opt)
    }

    /// Keeps `failure` (the first one) for after ipvsadm's own checks: a
    /// command line that ipvsadm refuses gets ipvsadm's complaint, one
    /// that it accepts gets rvs's reason for refusing it.
    fn defer(&mut self, failure: Failure) {
        self.deferred.get_or_insert(failure);
    }

    fn deferred(&self) -> Result<(), Failure> {
        self.deferred.clone().map_or(Ok(()), Err)
    }

    /// ipvsadm's `set_option`: each option at most once.
    fn set(&mut self, opt: Opt) -> Result<(), Failure> {
        if self.has(opt) {
            return Err(Failure::fail(format!(
                "multiple '{}' options specified",
                opt.name()
            )));
        }
        self.options.push(opt);
        Ok(())
    }

    fn apply(
        &mut self,
        parser: &Parser<'_>,
        spec: &Spec,
        spelling: &str,
        value: Option<String>,
    ) -> Result<(), Failure> {
        // Only options that take a value reach the arms that read it.
        let text = value.unwrap_or_default();
        match spec.action {
            Action::Command(_) | Action::Help | Action::Version | Action::ImportKeepalived => {
                return Err(Failure::fail(format!("invalid option `{spelling}'")));
            }
            Action::Unsupported(what) => {
                return Err(Failure::unsupported(&format!("{spelling} ({what})")));
            }
            Action::Sort => {}
            Action::Ipv6 if self.fwmark => self.ipv6_fwmark = true,
            Action::Ipv6 => return Err(Failure::fail("-6 used before -f\n")),
            Action::Fwmark => {
                self.set(Opt::Service)?;
                number(
                    &text,
                    1,
                    u32::MAX,
                    &format!("invalid fwmark value `{text}' specified"),
                )?;
                self.fwmark = true;
                // Marks are set by netfilter, which rvsd's packets never
                // pass through.
                self.defer(Failure::unsupported(&format!(
                    "{spelling} (fwmark service)"
                )));
            }
            Action::SctpService => {
                self.set(Opt::Service)?;
                self.service =
                    Some(parse_endpoint(&text, None, parser.names).ok_or_else(|| {
                        Failure::fail("illegal virtual server address[:port] specified")
                    })?);
                self.defer(Failure::unsupported(&format!("{spelling} (SCTP service)")));
            }
            Action::Ops => {
                self.set(Opt::Ops)?;
                self.defer(Failure::unsupported(&format!(
                    "{spelling} (one-packet scheduling)"
                )));
            }
            Action::Pe => {
                self.set(Opt::Pe)?;
                self.defer(Failure::unsupported(&format!(
                    "{spelling} (a persistence engine)"
                )));
            }
            Action::Socket => self.socket = Some(PathBuf::from(text)),
            Action::Flag(opt) => self.set(opt)?,
            Action::Service(protocol) => {
                self.set(Opt::Service)?;
                self.protocol = Some(protocol);
                let endpoint =
                    parse_endpoint(&text, Some(protocol), parser.names).ok_or_else(|| {
                        Failure::fail("illegal virtual server address[:port] specified")
                    })?;
                self.service = Some(endpoint);
            }
            Action::Scheduler => {
                self.set(Opt::Scheduler)?;
                self.scheduler = Some(text);
            }
            Action::Persistent => {
                self.set(Opt::Persistent)?;
                let timeout = match spec_value(&text) {
                    None => Persistence::DEFAULT_TIMEOUT,
                    Some(given) => parse_timeout(given, 1, MAX_TIMEOUT)?,
                };
                self.persistent_timeout = Some(timeout);
            }
            Action::Netmask => {
                self.set(Opt::Netmask)?;
                self.netmask = Some(self.parse_netmask(&text, parser.names)?);
            }
            Action::RealServer => {
                self.set(Opt::RealServer)?;
                let endpoint = parse_endpoint(&text, self.protocol, parser.names)
                    .ok_or_else(|| Failure::fail("illegal real server address[:port] specified"))?;
                self.real_server = Some(endpoint);
            }
            Action::Forward(method) => {
                self.set(Opt::Forward)?;
                self.forward = Some(method);
            }
            Action::Weight => {
                self.set(Opt::Weight)?;
                let weight = number(&text, 0, i32::MAX as u32, "illegal weight specified")?;
                // wrr steps through every weight down from the largest, so
                // rvs keeps them small.
                if weight > MAX_WEIGHT {
                    self.defer(Failure::fail(format!(
                        "weight {weight} is above rvs's maximum of {MAX_WEIGHT}"
                    )));
                }
                self.weight = Some(weight);
            }
            Action::UThreshold => {
                self.set(Opt::UThreshold)?;
                self.upper_threshold = Some(number(
                    &text,
                    0,
                    i32::MAX as u32,
                    "illegal u_threshold specified",
                )?);
            }
            Action::LThreshold => {
                self.set(Opt::LThreshold)?;
                self.lower_threshold = Some(number(
                    &text,
                    0,
                    i32::MAX as u32,
                    "illegal l_threshold specified",
                )?);
            }
            Action::SchedFlags => {
                self.set(Opt::SchedFlags)?;
                self.sched_flags = Some(text);
            }
            Action::TunType => {
                self.set(Opt::TunType)?;
                self.tunnel_type = Some(
                    TunnelType::parse(&text)
                        .ok_or_else(|| Failure::fail("illegal tunnel type specified"))?,
                );
            }
            Action::TunPort => {
                self.set(Opt::TunPort)?;
                number(&text, 1, u16::MAX.into(), "illegal tunnel port specified")?;
            }
        }
        Ok(())
    }

    /// `-M`: a dotted mask for IPv4 services, a prefix length for IPv6
    /// ones; the family is the service's as known so far, as in ipvsadm.
    fn parse_netmask(&self, text: &str, names: &Names) -> Result<u8, Failure> {
        let ipv6 = self.ipv6_fwmark
            || matches!(
                self.service,
                Some(Endpoint {
                    ip: IpAddr::V6(_),
                    ..
                })
            );
        if ipv6 {
            return match leading_number(text) {
                Some(prefix @ 1..=128) => Ok(prefix as u8),
                _ => Err(Failure::fail("illegal ipv6 netmask specified")),
            };
        }
        // rvs keeps a prefix length, so a mask with holes is refused too.
        text.parse::<Ipv4Addr>()
            .ok()
            .or_else(|| names.host_address(text))
            .and_then(|mask| {
                let bits = u32::from(mask);
                let prefix = bits.leading_ones();
                (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
            })
            .ok_or_else(|| Failure::fail("illegal virtual server persistent mask specified"))
    }

    /// Everything after the options: ipvsadm's remaining checks in its
    /// order, then the command.
    fn finish(mut self, cmd: Cmd) -> Result<Invocation, Failure> {
        let mut positionals = std::mem::take(&mut self.positionals).into_iter();
        let mut timeouts = Timeouts::default();
        if cmd == Cmd::Timeout {
            let values: Vec<String> = positionals.by_ref().take(3).collect();
            let [tcp, tcp_fin, udp] = values.as_slice() else {
                return Err(Failure::fail("--set option requires 3 timeout values"));
            };
            timeouts = Timeouts {
                tcp: parse_timeout(tcp, 0, MAX_TIMEOUT)?,
                tcp_fin: parse_timeout(tcp_fin, 0, MAX_TIMEOUT)?,
                udp: parse_timeout(udp, 0, MAX_TIMEOUT)?,
            };
        }
        if let Some(extra) = positionals.next() {
            return Err(Failure::fail(format!("unexpected argument {extra}")));
        }
        let scheduler_name = self
            .scheduler
            .clone()
            .unwrap_or_else(|| SchedulerName::default().to_string());
        let flag_bits = match &self.sched_flags {
            Some(text) => parse_sched_flags(&scheduler_name, text)?,
            None => Vec::new(),
        };
        self.check_options(cmd)?;
        let command = self.command(cmd, &scheduler_name, &flag_bits, timeouts)?;
        let json = self.has(Opt::Json);
        Ok(Invocation {
            command,
            socket: self.socket,
            json,
        })
    }

    /// ipvsadm's `generic_opt_check`.
    fn check_options(&self, cmd: Cmd) -> Result<(), Failure> {
        self.check_rules(
            &Opt::ALL,
            |opt| cmd.rule(opt),
            &format!("'{}' command", cmd.name()),
        )
    }

    /// Whether each of `columns` is given as its `rule` wants it (`+`
    /// required, `x` illegal, `1` at most one of the `1`s), complaining in
    /// ipvsadm's words about the first that is not; `context` names the
    /// command or tunnel type whose rules they are.
    fn check_rules(
        &self,
        columns: &[Opt],
        rule: impl Fn(Opt) -> char,
        context: &str,
    ) -> Result<(), Failure> {
        let mut exclusive: Option<Opt> = None;
        for &opt in columns {
            let rule = rule(opt);
            if !self.has(opt) {
                if rule == '+' {
                    return Err(Failure::fail(format!(
                        "You need to supply the '{}' option for the {context}",
                        opt.name()
                    )));
                }
                continue;
            }
            match (rule, exclusive) {
                ('x', _) => {
                    return Err(Failure::fail(format!(
                        "Illegal '{}' option with the {context}",
                        opt.name()
                    )));
                }
                ('1', Some(first)) => {
                    return Err(Failure::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the {context}",
                        opt.name(),
                        first.name()
                    )));
                }
                ('1', None) => exclusive = Some(opt),
                _ => {}
            }
        }
        Ok(())
    }

    /// ipvsadm's checks of a service to add or edit, after the table's.
    fn check_service(&self) -> Result<(), Failure> {
        let port = self.service.and_then(|service| service.port).unwrap_or(0);
        if !self.fwmark && port == 0 && self.persistent_timeout.is_none() {
            return Err(Failure::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if self.has(Opt::Ops) && !self.fwmark && self.protocol != Some(Protocol::Udp) {
            return Err(Failure::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        Ok(())
    }

    fn command(
        &self,
        cmd: Cmd,
        scheduler_name: &str,
        flag_bits: &[u8],
        timeouts: Timeouts,
    ) -> Result<Command, Failure> {
        if matches!(cmd, Cmd::Add | Cmd::Edit) {
            self.check_service()?;
        }
        // A fwmark or SCTP service has no protocol of rvs's: nothing more
        // can be built for it, so its deferred refusal comes now.
        if self.has(Opt::Service) && self.protocol.is_none() {
            self.deferred()?;
        }
        let command = match cmd {
            Cmd::Add => Command::AddService(self.service_spec(scheduler_name, flag_bits)?),
            Cmd::Edit => Command::EditService(self.service_spec(scheduler_name, flag_bits)?),
            Cmd::Delete => Command::DeleteService(self.service_key()?),
            Cmd::Flush => Command::Clear,
            Cmd::List => self.list_command()?,
            Cmd::AddServer => Command::AddServer(self.real_server_change()?),
            Cmd::EditServer => Command::EditServer(self.real_server_change()?),
            Cmd::DeleteServer => {
                let service = self.service_key()?;
                let real = self.real_server.ok_or_else(missing_option)?;
                Command::DeleteServer(RealServerRef {
                    service,
                    address: SocketAddr::new(real.ip, real.port.unwrap_or(service.address.port())),
                })
            }
            Cmd::Timeout => Command::SetTimeouts(timeouts),
            Cmd::Restore => Command::Restore,
            Cmd::Reload => Command::Reload,
            Cmd::Save => Command::Save {
                numeric: self.has(Opt::Numeric),
            },
            Cmd::Zero => Command::Zero(match self.service {
                Some(_) => Some(self.service_key()?),
                None => None,
            }),
        };
        self.deferred()?;
        Ok(command)
    }

    fn list_command(&self) -> Result<Command, Failure> {
        let listing_counters =
            self.has(Opt::Stats) || self.has(Opt::Rate) || self.has(Opt::Thresholds);
        let other_listing = self.has(Opt::Connection) || self.has(Opt::Timeout);
        if (other_listing && listing_counters)
            || (self.has(Opt::Timeout) && self.has(Opt::PersistentConn))
        {
            return Err(Failure::fail("options conflicts in the list command"));
        }
        if self.has(Opt::Workers) && (listing_counters || self.has(Opt::PersistentConn)) {
            return Err(Failure::fail("options conflicts in the list command"));
        }
        // The Health column goes with the default view's columns only.
        let other_view =
            listing_counters || self.has(Opt::PersistentConn) || self.has(Opt::TunInfo);
        if self.has(Opt::Health) && (other_listing || other_view || self.has(Opt::Workers)) {
            return Err(Failure::fail("options conflicts in the list command"));
        }
        if self.has(Opt::Workers) {
            return Ok(Command::ListWorkers);
        }
        if self.has(Opt::Connection) {
            return Ok(Command::ListConnections(ConnListOptions {
                numeric: self.has(Opt::Numeric),
                persistence_engine: self.has(Opt::PersistentConn),
            }));
        }
        if self.has(Opt::Timeout) {
            return Ok(Command::ListTimeouts);
        }
        // ipvsadm's print_title picks the first of these that is set.
        let view = [
            (Opt::Stats, ListView::Stats),
            (Opt::Rate, ListView::Rate),
            (Opt::Thresholds, ListView::Thresholds),
            (Opt::PersistentConn, ListView::PersistentConn),
            (Opt::TunInfo, ListView::TunnelInfo),
        ]
        .into_iter()
        .find(|(opt, _)| self.has(*opt))
        .map_or(ListView::Connections, |(_, view)| view);
        Ok(Command::List(ListOptions {
            service: match self.service {
                Some(_) => Some(self.service_key()?),
                None => None,
            },
            view,
            numeric: self.has(Opt::Numeric),
            exact: self.has(Opt::Exact),
            sort: !self.has(Opt::NoSort),
            health: self.has(Opt::Health),
        }))
    }

    fn service_key(&self) -> Result<ServiceKey, Failure> {
        let (Some(protocol), Some(service)) = (self.protocol, self.service) else {
            return Err(missing_option());
        };
        Ok(ServiceKey {
            protocol,
            address: SocketAddr::new(service.ip, service.port.unwrap_or(0)),
        })
    }

    fn service_spec(&self, scheduler_name: &str, flag_bits: &[u8]) -> Result<ServiceSpec, Failure> {
        let key = self.service_key()?;
        // The kernel's refusal of an unknown scheduler, as libipvs words it.
        let scheduler: SchedulerName = scheduler_name.parse().map_err(|_| Failure {
            message: "Scheduler or persistence engine not found".to_owned(),
            exit_code: EXIT_FAILED,
        })?;
        let host_prefix = if key.address.is_ipv4() { 32 } else { 128 };
        Ok(ServiceSpec {
            protocol: key.protocol,
            address: key.address,
            scheduler,
            scheduler_flags: flag_bits
                .iter()
                .filter_map(|bit| SchedulerFlag::canonical(*bit, scheduler))
                .map(|flag| flag.name.to_owned())
                .collect(),
            persistence: self.persistent_timeout.map(|timeout| Persistence {
                timeout,
                netmask: self.netmask.unwrap_or(host_prefix),
            }),
            local_addresses: Vec::new(),
        })
    }

    fn real_server_change(&self) -> Result<RealServerChange, Failure> {
        let service = self.service_key()?;
        let real = self.real_server.ok_or_else(missing_option)?;
        let forward = self.forward.unwrap_or_default();
        // ipvsadm silently gives direct routing and tunnel servers the
        // service's port: they cannot map ports.
        let port = if forward.allows_port_mapping() {
            real.port.unwrap_or(service.address.port())
        } else {
            service.address.port()
        };
        if real.ip.is_ipv4() != service.address.is_ipv4() && forward != ForwardMethod::Tunnel {
            return Err(Failure::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        if TunnelType::OPTIONS
            .iter()
            .chain([&Opt::TunType])
            .any(|opt| self.has(*opt))
            && forward != ForwardMethod::Tunnel
        {
            return Err(Failure::fail("Tunnel options conflict with forward method"));
        }
        if forward == ForwardMethod::Tunnel {
            // ipvsadm's `tunnel_opt_check`.
            let tunnel = self.tunnel_type.unwrap_or(TunnelType::Ipip);
            self.check_rules(
                &TunnelType::OPTIONS,
                |opt| tunnel.rule(opt),
                &format!("'{}' tunnel type", tunnel.name()),
            )?;
            if let Some(encapsulation) = tunnel.unsupported() {
                return Err(Failure::unsupported(&format!(
                    "--tun-type {} ({encapsulation})",
                    tunnel.name()
                )));
            }
        }
        Ok(RealServerChange {
            service,
            real_server: RealServerSpec {
                address: SocketAddr::new(real.ip, port),
                weight: self.weight.unwrap_or(1),
                forward,
                upper_threshold: self.upper_threshold.unwrap_or(0),
                lower_threshold: self.lower_threshold.unwrap_or(0),
            },
        })
    }
}

/// Unreachable after `check_options`, which demands the options a command
/// needs; kept as an error rather than a panic.
fn missing_option() -> Failure {
    Failure::fail("a required option is missing")
}

/// popt hands an optional value over as an empty string when none was
/// given.
fn spec_value(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// ipvsadm's `string_to_number`: `strtol` in base 10 (leading blanks and a
/// sign allowed), the whole text used, within `min..=max`.
fn string_to_number(text: &str, min: u32, max: u32) -> Option<u32> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let value: i64 = trimmed.parse().ok()?;
    u32::try_from(value)
        .ok()
        .filter(|value| (min..=max).contains(value))
}

fn number(text: &str, min: u32, max: u32, complaint: &str) -> Result<u32, Failure> {
    string_to_number(text, min, max).ok_or_else(|| Failure::fail(complaint))
}

fn parse_timeout(text: &str, min: u32, max: u32) -> Result<u32, Failure> {
    number(
        text,
        min,
        max,
        &format!("invalid timeout value `{text}' specified"),
    )
}

/// C's `atoi`: the leading digits, 0 when there are none.
fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// ipvsadm's `parse_service`: `IPv4[:port]`, `host[:port]` (from the hosts
/// file), `IPv6` or `[IPv6]:port`; the port a number or a service name.
fn parse_endpoint(text: &str, protocol: Option<Protocol>, names: &Names) -> Option<Endpoint> {
    // An all-digit word would be a fwmark, not an address.
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if let Some(bracketed) = text.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']')?;
        let port = after.strip_prefix(':')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        return Some(Endpoint {
            ip: ip.into(),
            port: Some(parse_port(port, protocol, names)?),
        });
    }
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Some(Endpoint {
            ip: ip.into(),
            port: None,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let ip = host
        .parse::<Ipv4Addr>()
        .ok()
        .or_else(|| names.host_address(host))?;
    let port = match port {
        Some(port) => Some(parse_port(port, protocol, names)?),
        None => None,
    };
    Some(Endpoint {
        ip: ip.into(),
        port,
    })
}

fn parse_port(text: &str, protocol: Option<Protocol>, names: &Names) -> Option<u16> {
    string_to_number(text, 0, u16::MAX.into())
        .and_then(|port| u16::try_from(port).ok())
        .or_else(|| names.port_of(text, protocol?))
}

/// ipvsadm's `parse_sched_flags`: comma-separated names, each known and
/// accepted by the scheduler; returns the flag bits in ascending order.
fn parse_sched_flags(scheduler: &str, text: &str) -> Result<Vec<u8>, Failure> {
    let mut bits = Vec::new();
    let mut any = false;
    for name in text.split(',').filter(|name| !name.is_empty()) {
        any = true;
        let flag = SCHEDULER_FLAGS
            .into_iter()
            .find(|flag| flag.name == name)
            .ok_or_else(|| Failure::fail(format!("invalid scheduler flag `{name}'")))?;
        if flag
            .scheduler
            .is_some_and(|required| required.as_str() != scheduler)
        {
            return Err(Failure::fail(format!(
                "incompatible scheduler flag `{name}'"
            )));
        }
        bits.push(flag.bit);
    }
    if !any {
        return Err(Failure::fail(format!("invalid scheduler flag `{text}'")));
    }
    bits.sort_unstable();
    bits.dedup();
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::from_tables(
            "http 80/tcp www\nhttp-alt 8080/tcp webcache\ndomain 53/udp\n",
            "127.0.0.1 localhost\n198.18.1.11 rs1\n",
        )
    }

    fn run(line: &str) -> Result<Invocation, Failure> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse("rvsadm", &args, &names())
    }

    fn command(line: &str) -> Command {
        match run(line) {
            Ok(invocation) => invocation.command,
            Err(error) => panic!("{line}: {error:?}"),
        }
    }

    /// Asserts ipvsadm's message and exit status for a refused line.
    fn refused(line: &str, message: &str, exit_code: i32) {
        assert_eq!(
            run(line),
            Err(Failure {
                message: message.to_owned(),
                exit_code
            }),
            "for `{line}`"
        );
    }

    fn key(protocol: Protocol, address: &str) -> ServiceKey {
        ServiceKey {
            protocol,
            address: address.parse().unwrap(),
        }
    }

    fn tcp(address: &str) -> ServiceKey {
        key(Protocol::Tcp, address)
    }

    fn spec(address: &str, scheduler: SchedulerName) -> ServiceSpec {
        ServiceSpec {
            protocol: Protocol::Tcp,
            address: address.parse().unwrap(),
            scheduler,
            scheduler_flags: vec![],
            persistence: None,
            local_addresses: Vec::new(),
        }
    }

    fn real(address: &str, weight: u32, forward: ForwardMethod) -> RealServerSpec {
        RealServerSpec {
            address: address.parse().unwrap(),
            weight,
            forward,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    fn list(options: ListOptions) -> Command {
        Command::List(options)
    }

    const SORTED: ListOptions = ListOptions {
        service: None,
        view: ListView::Connections,
        numeric: false,
        exact: false,
        sort: true,
        health: false,
    };

    #[test]
    fn every_row_of_the_rules_table_has_a_column_per_option() {
        for cmd in [
            Cmd::Add,
            Cmd::Edit,
            Cmd::Delete,
            Cmd::Flush,
            Cmd::List,
            Cmd::AddServer,
            Cmd::DeleteServer,
            Cmd::EditServer,
            Cmd::Timeout,
            Cmd::Restore,
            Cmd::Save,
            Cmd::Zero,
            Cmd::Reload,
        ] {
            let columns = cmd.rules().chars().filter(|c| !c.is_whitespace()).count();
            assert_eq!(columns, Opt::ALL.len(), "{cmd:?}");
        }
        for (i, opt) in Opt::ALL.iter().enumerate() {
            assert_eq!(*opt as usize, i);
        }
    }

    #[test]
    fn service_commands() {
        use SchedulerName::*;
        let add = |address, scheduler| Command::AddService(spec(address, scheduler));
        let edit = |address, scheduler| Command::EditService(spec(address, scheduler));
        let cases = [
            ("-A -t 198.18.0.10:80 -s rr", add("198.18.0.10:80", Rr)),
            (
                "--add-service --tcp-service 198.18.0.10:80 --scheduler wrr",
                add("198.18.0.10:80", Wrr),
            ),
            ("-At 198.18.0.10:80", add("198.18.0.10:80", Wlc)),
            // Defaults as ipvsadm: wlc, also when editing.
            ("-E -t 198.18.0.10:80", edit("198.18.0.10:80", Wlc)),
            (
                "--edit-service --tcp-service=198.18.0.10:http",
                edit("198.18.0.10:80", Wlc),
            ),
            (
                "-D -t 198.18.0.10:80",
                Command::DeleteService(tcp("198.18.0.10:80")),
            ),
            (
                "--delete-service --udp-service 198.18.0.10:domain",
                Command::DeleteService(key(Protocol::Udp, "198.18.0.10:53")),
            ),
            ("-C", Command::Clear),
            ("--clear", Command::Clear),
            (
                "-A -t [fd00::10]:443 -s mh -b mh-port,mh-fallback",
                Command::AddService(ServiceSpec {
                    scheduler_flags: vec!["mh-fallback".into(), "mh-port".into()],
                    ..spec("[fd00::10]:443", Mh)
                }),
            ),
            (
                "-A -t localhost:http -s sh --sched-flags flag-1,sh-port",
                Command::AddService(ServiceSpec {
                    scheduler_flags: vec!["sh-fallback".into(), "sh-port".into()],
                    ..spec("127.0.0.1:80", Sh)
                }),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(command(line), expected, "{line}");
        }
    }

    #[test]
    fn persistence_with_and_without_a_timeout() {
        let persistent = |timeout, netmask| {
            Command::AddService(ServiceSpec {
                persistence: Some(Persistence { timeout, netmask }),
                ..spec("198.18.0.10:80", SchedulerName::Rr)
            })
        };
        assert_eq!(
            command("-A -t 198.18.0.10:80 -p -s rr"),
            persistent(300, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -p"),
            persistent(300, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -p 600"),
            persistent(600, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -p600"),
            persistent(600, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr --persistent=20"),
            persistent(20, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr --persistent 20"),
            persistent(20, 32)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -p 60 -M 255.255.255.0"),
            persistent(60, 24)
        );
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -p 60 --netmask 255.255.0.0"),
            persistent(60, 16)
        );
        // Port 0 is fine for a persistent service (all ports of the VIP).
        assert!(matches!(
            command("-A -t 198.18.0.10 -p"),
            Command::AddService(_)
        ));
        assert_eq!(
            command("-A -t [fd00::10]:80 -s rr -p 60 -M 64"),
            Command::AddService(ServiceSpec {
                persistence: Some(Persistence {
                    timeout: 60,
                    netmask: 64
                }),
                ..spec("[fd00::10]:80", SchedulerName::Rr)
            })
        );
        // Without -p, -M changes nothing (as in IPVS).
        assert_eq!(
            command("-A -t 198.18.0.10:80 -s rr -M 255.255.255.0"),
            Command::AddService(spec("198.18.0.10:80", SchedulerName::Rr))
        );
    }

    #[test]
    fn real_server_commands_with_ipvsadm_defaults() {
        let change = |real_server| RealServerChange {
            service: tcp("198.18.0.10:80"),
            real_server,
        };
        // -r without a port takes the service's; -g and weight 1 by default.
        assert_eq!(
            command("-a -t 198.18.0.10:80 -r 198.18.1.11"),
            Command::AddServer(change(real("198.18.1.11:80", 1, ForwardMethod::Route)))
        );
        assert_eq!(
            command("-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3"),
            Command::AddServer(change(real("198.18.1.11:8080", 3, ForwardMethod::Masq)))
        );
        assert_eq!(
            command(
                "--add-server --tcp-service 198.18.0.10:80 --real-server rs1:http-alt --masquerading --weight 0"
            ),
            Command::AddServer(change(real("198.18.1.11:8080", 0, ForwardMethod::Masq)))
        );
        // Direct routing and tunnels cannot map ports: ipvsadm takes the
        // service's port without a word.
        assert_eq!(
            command("-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -g"),
            Command::AddServer(change(real("198.18.1.11:80", 1, ForwardMethod::Route)))
        );
        assert_eq!(
            command("-e -t 198.18.0.10:80 -r 198.18.1.11 --ipip -x 100 -y 50 --tun-type ipip"),
            Command::EditServer(change(RealServerSpec {
                upper_threshold: 100,
                lower_threshold: 50,
                ..real("198.18.1.11:80", 1, ForwardMethod::Tunnel)
            }))
        );
        assert_eq!(
            command(
                "--edit-server -t 198.18.0.10:80 -r 198.18.1.11:81 --gatewaying --u-threshold 7 --l-threshold 5"
            ),
            Command::EditServer(change(RealServerSpec {
                upper_threshold: 7,
                lower_threshold: 5,
                ..real("198.18.1.11:80", 1, ForwardMethod::Route)
            }))
        );
        assert_eq!(
            command("-a -t 198.18.0.10:80 -r 198.18.1.11:81 --fullnat"),
            Command::AddServer(change(real("198.18.1.11:81", 1, ForwardMethod::FullNat)))
        );
        assert_eq!(
            command("-d -t 198.18.0.10:80 -r 198.18.1.11"),
            Command::DeleteServer(RealServerRef {
                service: tcp("198.18.0.10:80"),
                address: "198.18.1.11:80".parse().unwrap(),
            })
        );
        assert_eq!(
            command("--delete-server -t [fd00::10]:80 -r [fd00:1::11]:8080"),
            Command::DeleteServer(RealServerRef {
                service: tcp("[fd00::10]:80"),
                address: "[fd00:1::11]:8080".parse().unwrap(),
            })
        );
        assert_eq!(
            command("-a -t [fd00::10]:80 -r fd00:1::11 -m"),
            Command::AddServer(RealServerChange {
                service: tcp("[fd00::10]:80"),
                real_server: real("[fd00:1::11]:80", 1, ForwardMethod::Masq),
            })
        );
    }

    #[test]
    fn listings_and_combined_flags() {
        assert_eq!(command("-L"), list(SORTED));
        assert_eq!(command("-l"), list(SORTED));
        assert_eq!(command("--list"), list(SORTED));
        assert_eq!(run("").unwrap().command, list(SORTED));
        let numeric = ListOptions {
            numeric: true,
            ..SORTED
        };
        assert_eq!(command("-Ln"), list(numeric));
        assert_eq!(command("-L -n"), list(numeric));
        assert_eq!(command("--list --numeric"), list(numeric));
        assert_eq!(
            command("-ln --stats"),
            list(ListOptions {
                view: ListView::Stats,
                ..numeric
            })
        );
        assert_eq!(
            command("-L --rate --exact"),
            list(ListOptions {
                view: ListView::Rate,
                exact: true,
                ..SORTED
            })
        );
        assert_eq!(
            command("-LnX --stats --rate"),
            list(ListOptions {
                view: ListView::Stats,
                exact: true,
                ..numeric
            })
        );
        assert_eq!(
            command("-L --thresholds --nosort"),
            list(ListOptions {
                view: ListView::Thresholds,
                sort: false,
                ..SORTED
            })
        );
        assert_eq!(
            command("-L --persistent-conn --sort"),
            list(ListOptions {
                view: ListView::PersistentConn,
                ..SORTED
            })
        );
        assert_eq!(
            command("-L --tun-info"),
            list(ListOptions {
                view: ListView::TunnelInfo,
                ..SORTED
            })
        );
        assert_eq!(
            command("-Ln -t 198.18.0.10:80"),
            list(ListOptions {
                service: Some(tcp("198.18.0.10:80")),
                ..numeric
            })
        );
        assert_eq!(command("-L --timeout"), Command::ListTimeouts);
        let connections = |numeric, persistence_engine| {
            Command::ListConnections(ConnListOptions {
                numeric,
                persistence_engine,
            })
        };
        assert_eq!(command("-Lnc"), connections(true, false));
        assert_eq!(command("-L --workers"), Command::ListWorkers);
        assert_eq!(command("-L --connection"), connections(false, false));
        assert_eq!(
            command("-L -c --persistent-conn --exact --nosort"),
            connections(false, true)
        );
        assert_eq!(command("-Z"), Command::Zero(None));
        assert_eq!(
            command("--zero -t 198.18.0.10:80"),
            Command::Zero(Some(tcp("198.18.0.10:80")))
        );
        assert_eq!(command("-S"), Command::Save { numeric: false });
        assert_eq!(command("--save -n"), Command::Save { numeric: true });
        assert_eq!(command("-Sn"), Command::Save { numeric: true });
        assert_eq!(command("-R"), Command::Restore);
        assert_eq!(command("--restore"), Command::Restore);
        assert_eq!(command("-h"), Command::Help);
        assert_eq!(command("-h -L --bogus"), Command::Help);
        assert_eq!(command("--help"), Command::Help);
        assert_eq!(command("-v"), Command::Version);
        assert_eq!(command("--version"), Command::Version);
    }

    #[test]
    fn set_takes_three_timeouts() {
        assert_eq!(
            command("--set 900 0 300"),
            Command::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 0,
                udp: 300
            })
        );
        refused("--set 1 2", "--set option requires 3 timeout values", 2);
        refused("--set 1 2 3 4", "unexpected argument 4", 2);
        refused("--set 1 2 x", "invalid timeout value `x' specified", 2);
        refused(
            "--set 1 2 2678401",
            "invalid timeout value `2678401' specified",
            2,
        );
    }

    #[test]
    fn rvs_options() {
        let invocation = run("-Ln --json --socket /tmp/rvs.sock").unwrap();
        assert!(invocation.json);
        assert_eq!(invocation.socket, Some(PathBuf::from("/tmp/rvs.sock")));
        let invocation = run("--socket=/tmp/x.sock --json -L").unwrap();
        assert_eq!(invocation.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert!(invocation.json);
        assert_eq!(
            run("-C --socket /s").unwrap().socket,
            Some(PathBuf::from("/s"))
        );
        refused(
            "-A -t 198.18.0.10:80 --json",
            "Illegal 'json' option with the 'add-service' command",
            2,
        );
        refused("-L --socket", "--socket: missing argument", 255);
    }

    #[test]
    fn health_goes_with_the_default_listing_only() {
        assert_eq!(
            command("-Ln --health"),
            list(ListOptions {
                numeric: true,
                health: true,
                ..SORTED
            })
        );
        assert_eq!(
            command("-L --health -t 198.18.0.10:80 --nosort"),
            list(ListOptions {
                service: Some(tcp("198.18.0.10:80")),
                sort: false,
                health: true,
                ..SORTED
            })
        );
        assert!(run("-L --health --json").unwrap().json);
        for line in [
            "-L --health --stats",
            "-L --health --rate",
            "-L --health --thresholds",
            "-L --health --persistent-conn",
            "-L --health --tun-info",
            "-L --health -c",
            "-L --health --timeout",
            "-L --health --workers",
        ] {
            refused(line, "options conflicts in the list command", 2);
        }
        refused(
            "-a -t 198.18.0.10:80 -r 198.18.1.11 --health",
            "Illegal 'health' option with the 'add-server' command",
            2,
        );
    }

    #[test]
    fn ipvsadm_messages_for_bad_command_lines() {
        let cases: &[(&str, &str, i32)] = &[
            // popt's complaints, exit 255.
            ("-A -t", "-t: missing argument", 255),
            ("-A -t 198.18.0.10:80 -s", "-s: missing argument", 255),
            ("-L --bogus", "--bogus: unknown option", 255),
            ("-Lq", "-Lq: unknown option", 255),
            ("-L -n3", "-n3: unknown option", 255),
            ("-L --num", "--num: unknown option", 255),
            (
                "-L --numeric=x",
                "--numeric=x: option does not take an argument",
                255,
            ),
            // Not starting with a command: ipvsadm's try-help, exit 255.
            (
                "--bogus",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            (
                "-nL",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            (
                "-n -L",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            (
                "-t 198.18.0.10:80",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            (
                "--list=foo",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            (
                "-",
                "Try `rvsadm -h' or 'rvsadm --help' for more information.",
                255,
            ),
            // ipvsadm's own checks, exit 2.
            ("-L -L", "invalid option `-L'", 2),
            ("-L -h", "invalid option `-h'", 2),
            ("-A -t 198.18.0.10:80 --set", "invalid option `--set'", 2),
            ("-L -", "unexpected argument -", 2),
            ("-L -- -n", "unexpected argument -n", 2),
            ("-A -t 198.18.0.10:80 foo", "unexpected argument foo", 2),
            (
                "-A -t 198.18.0.10:80 -w 3",
                "Illegal 'weight' option with the 'add-service' command",
                2,
            ),
            (
                "-D -t 198.18.0.10:80 -s rr",
                "Illegal 'scheduler' option with the 'delete-service' command",
                2,
            ),
            (
                "-Z -t 198.18.0.10:80 -n",
                "Illegal 'numeric' option with the 'zero' command",
                2,
            ),
            (
                "-C -n",
                "Illegal 'numeric' option with the 'flush' command",
                2,
            ),
            (
                "-R -n",
                "Illegal 'numeric' option with the 'restore' command",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 --tun-type ipip",
                "Illegal 'tun-type' option with the 'add-service' command",
                2,
            ),
            (
                "-E",
                "You need to supply the 'service-address' option for the 'edit-service' command",
                2,
            ),
            (
                "-a -t 198.18.0.10:80",
                "You need to supply the 'real-server' option for the 'add-server' command",
                2,
            ),
            (
                "-L -c -t 198.18.0.10:80",
                "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
                2,
            ),
            (
                "-L -n -c --stats",
                "options conflicts in the list command",
                2,
            ),
            (
                "-L --timeout --stats",
                "options conflicts in the list command",
                2,
            ),
            (
                "-L --timeout --persistent-conn",
                "options conflicts in the list command",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -t 198.18.0.10:81",
                "multiple 'service-address' options specified",
                2,
            ),
            (
                "-Ln -u 198.18.0.10:53 -t 198.18.0.10:80",
                "multiple 'service-address' options specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -p 60 -p 70",
                "multiple 'persistent' options specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -m -g",
                "multiple 'forwarding-method' options specified",
                2,
            ),
            ("-S -n -n", "multiple 'numeric' options specified", 2),
            (
                "-A -t 198.18.0.10",
                "Zero port specified for non-persistent service",
                2,
            ),
            (
                "-A -t 198.18.0.10:foo",
                "illegal virtual server address[:port] specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:99999",
                "illegal virtual server address[:port] specified",
                2,
            ),
            (
                "-A -t 5",
                "illegal virtual server address[:port] specified",
                2,
            ),
            (
                "-A -t [fd00::1]",
                "illegal virtual server address[:port] specified",
                2,
            ),
            (
                "-A -t nosuchhost:80",
                "illegal virtual server address[:port] specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 5",
                "illegal real server address[:port] specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r [::1]:80",
                "Different address family is allowed only for tunneling servers",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 --tun-type ipip",
                "Tunnel options conflict with forward method",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type foo",
                "illegal tunnel type specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -w -1",
                "illegal weight specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -w 3x",
                "illegal weight specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -w 2147483648",
                "illegal weight specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -x -5",
                "illegal u_threshold specified",
                2,
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -y x",
                "illegal l_threshold specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -p 0",
                "invalid timeout value `0' specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -ps rr",
                "invalid timeout value `s' specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -p 2678401",
                "invalid timeout value `2678401' specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -p -M foo",
                "illegal virtual server persistent mask specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -p -M 255.0.255.0",
                "illegal virtual server persistent mask specified",
                2,
            ),
            (
                "-A -t [fd00::1]:80 -p -M 200",
                "illegal ipv6 netmask specified",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -b sh-port",
                "incompatible scheduler flag `sh-port'",
                2,
            ),
            (
                "-A -t 198.18.0.10:80 -s sh -b sh-port,foo",
                "invalid scheduler flag `foo'",
                2,
            ),
            ("-A -t 198.18.0.10:80 -b ,", "invalid scheduler flag `,'", 2),
            ("-L -6", "-6 used before -f\n", 2),
            // The kernel's refusal of an unknown scheduler, as libipvs says it.
            (
                "-A -t 198.18.0.10:80 -s bogus",
                "Scheduler or persistence engine not found",
                255,
            ),
            // The connection sync daemon's options, refused at once.
            (
                "--start-daemon master",
                "--start-daemon (the connection sync daemon) is not supported yet",
                2,
            ),
            (
                "-L --daemon",
                "--daemon (the connection sync daemon) is not supported yet",
                2,
            ),
        ];
        for (line, message, exit_code) in cases {
            refused(line, message, *exit_code);
        }
    }

    /// Options of what rvs lacks (fwmark and SCTP services, one-packet
    /// scheduling, persistence engines, GUE and GRE tunnels, weights above
    /// 65535) go through all of ipvsadm's checks, so that a line ipvsadm
    /// refuses gets its words (printed by the real ipvsadm 1.31); only a
    /// line it accepts gets rvs's refusal.
    #[test]
    fn what_rvs_lacks_is_refused_after_ipvsadm_checks() {
        let cases: &[(&str, &str)] = &[
            // ipvsadm refuses these.
            ("-A -f 0 -s rr", "invalid fwmark value `0' specified"),
            ("-A -f x", "invalid fwmark value `x' specified"),
            (
                "-A -f 4294967296",
                "invalid fwmark value `4294967296' specified",
            ),
            (
                "-A -f 1 -t 198.18.0.10:80",
                "multiple 'service-address' options specified",
            ),
            (
                "-A -t 198.18.0.10:80 -f 1",
                "multiple 'service-address' options specified",
            ),
            (
                "-A -f 1 -6 -p -M 255.255.255.0",
                "illegal ipv6 netmask specified",
            ),
            ("-A -t 198.18.0.10:80 -6", "-6 used before -f\n"),
            (
                "-A --sctp-service 198.18.0.10:foo",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A --sctp-service 198.18.0.10:80 -o",
                "One-Packet Scheduling is only for UDP virtual services",
            ),
            (
                "-E -t 198.18.0.10:80 -o",
                "One-Packet Scheduling is only for UDP virtual services",
            ),
            ("-A -f 1 -o -o", "multiple 'ops' options specified"),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -o",
                "Illegal 'ops' option with the 'add-server' command",
            ),
            (
                "-A -t 198.18.0.10:80 --pe sip --pe sip",
                "multiple 'pe' options specified",
            ),
            ("-L --pe sip", "Illegal 'pe' option with the 'list' command"),
            (
                "-A -t 198.18.0.10:80 --tun-port 5",
                "Illegal 'tun-port' option with the 'add-service' command",
            ),
            (
                "-L --tun-csum",
                "Illegal 'tun-csum' option with the 'list' command",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -m --tun-port 6080",
                "Tunnel options conflict with forward method",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 --tun-csum",
                "Tunnel options conflict with forward method",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-port 6080",
                "Illegal 'tun-port' option with the 'ipip' tunnel type",
            ),
            (
                "-e -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type ipip --tun-nocsum",
                "Illegal 'tun-nocsum' option with the 'ipip' tunnel type",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gue",
                "You need to supply the 'tun-port' option for the 'gue' tunnel type",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gue --tun-port 0",
                "illegal tunnel port specified",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-port 65536 --tun-type foo",
                "illegal tunnel port specified",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gue --tun-port 6080 --tun-csum --tun-nocsum",
                "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gre --tun-remcsum",
                "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-csum --tun-csum",
                "multiple 'tun-csum' options specified",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -w 70000 -m -g",
                "multiple 'forwarding-method' options specified",
            ),
            // ipvsadm accepts these; rvs does not.
            ("-A -f 1 -s rr", "-f (fwmark service) is not supported yet"),
            (
                "-A -f 1 -6 -p -M 64",
                "-f (fwmark service) is not supported yet",
            ),
            (
                "-D --fwmark-service 7",
                "--fwmark-service (fwmark service) is not supported yet",
            ),
            ("-L -n -f 1", "-f (fwmark service) is not supported yet"),
            (
                "-a -f 1 -r 198.18.1.11 -m",
                "-f (fwmark service) is not supported yet",
            ),
            ("-A -f 1 -o", "-f (fwmark service) is not supported yet"),
            (
                "-A --sctp-service 198.18.0.10:80",
                "--sctp-service (SCTP service) is not supported yet",
            ),
            (
                "-A -u 198.18.0.10:53 -o -s rr",
                "-o (one-packet scheduling) is not supported yet",
            ),
            (
                "-A -t 198.18.0.10:80 --pe sip",
                "--pe (a persistence engine) is not supported yet",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gue --tun-port 6080 --tun-csum",
                "--tun-type gue (a GUE tunnel) is not supported yet",
            ),
            (
                "-e -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type gre --tun-csum",
                "--tun-type gre (a GRE tunnel) is not supported yet",
            ),
            (
                "-a -t 198.18.0.10:80 -r 198.18.1.11 -w 65536",
                "weight 65536 is above rvs's maximum of 65535",
            ),
            (
                "-e -t 198.18.0.10:80 -r 198.18.1.11 -m -w 2147483647",
                "weight 2147483647 is above rvs's maximum of 65535",
            ),
        ];
        for (line, message) in cases {
            refused(line, message, 2);
        }
        // What ipvsadm accepts of the same options, rvs does too.
        assert!(matches!(
            command("-a -t 198.18.0.10:80 -r 198.18.1.11 -i --tun-type ipip -w 65535"),
            Command::AddServer(change) if change.real_server.weight == 65535
        ));
    }

    #[test]
    fn values_may_start_with_a_dash_and_blanks_like_strtol() {
        assert!(
            matches!(command("-a -t 198.18.0.10:80 -r 198.18.1.11 -w +3"), Command::AddServer(c) if c.real_server.weight == 3)
        );
        let args = [
            "-a",
            "-t",
            "198.18.0.10:80",
            "-r",
            "198.18.1.11",
            "-w",
            " 3",
        ]
        .map(String::from);
        assert!(
            matches!(parse("rvsadm", &args, &names()).unwrap().command, Command::AddServer(c) if c.real_server.weight == 3)
        );
        let args = ["-A", "-t", ""].map(String::from);
        assert_eq!(
            parse("rvsadm", &args, &names()).unwrap_err().message,
            "illegal virtual server address[:port] specified"
        );
    }

    #[test]
    fn usage_and_version_name_the_program() {
        assert!(usage("/usr/sbin/rvsadm").contains("  /usr/sbin/rvsadm -A|E virtual-service"));
        assert!(version().starts_with("rvsadm v"));
    }
}
