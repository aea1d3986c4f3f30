//! `rvsadm --import-keepalived FILE`: the LVS part of a keepalived.conf,
//! translated into rvsd's configuration.
//!
//! The file is read as keepalived reads it: words separated by white space,
//! blocks in `{ }`, comments from `#` or `!` to the end of the line,
//! double-quoted strings (with `\"` and `\\`). Each `virtual_server IP
//! PORT` block becomes a `[[services]]` table with its
//! `[[services.real_servers]]`; the checkers of its real servers
//! (`HTTP_GET`, `SSL_GET`, `TCP_CHECK`, `MISC_CHECK`) become the service's
//! `[services.health_check]`, which rvsd runs as keepalived would;
//! `global_defs`' `lvs_timeouts` becomes `[timeouts]`. Values keepalived
//! inherits (a virtual server's `delay_loop` for its checkers, its
//! `lb_kind` for its real servers) and keepalived's defaults are resolved
//! and written out, so the output means what the input meant.
//!
//! Nothing is dropped silently: every directive the translation cannot
//! carry over (VRRP, fwmark and group virtual servers, sorry servers, quorum
//! actions, notify scripts, checker options rvs has no equivalent for,
//! `include`) is an [`Untranslated`] entry naming its file and line, which
//! rvsadm prints on standard error, and rvsadm's exit status
//! ([`EXIT_INCOMPLETE`]) says that something was left out.
//!
//! The output is only the services part of a configuration: it has no
//! `[eal]` and no `[[ports]]`, which only the operator can write.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{HealthCheckConfig, HealthCheckKind, OnFailure};
use crate::model::{
    ForwardMethod, MAX_WEIGHT, Persistence, Protocol, RealServerSpec, SchedulerFlag, SchedulerName,
};

/// rvsadm's exit status when the translation left something out (0 when
/// everything was translated; ipvsadm's 2 when the file cannot be read or
/// is not keepalived syntax). Distinct from ipvsadm's 1, 2 and 255, so that
/// a script can tell a partial translation from a failure.
pub const EXIT_INCOMPLETE: i32 = 3;

/// The result of a translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// rvsd TOML: `[timeouts]` if the file sets them, then `[[services]]`.
    pub toml: String,
    /// What the translation left out, in file order.
    pub untranslated: Vec<Untranslated>,
}

/// A directive the translation left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    pub file: String,
    pub line: usize,
    /// The directive's words, as written (a block's without its contents).
    pub directive: String,
    pub why: String,
}

impl fmt::Display for Untranslated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "untranslated: {}:{}: {}: {}",
            self.file, self.line, self.directive, self.why
        )
    }
}

/// A file that cannot be translated at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not keepalived's syntax: unbalanced braces or an unterminated string.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
}

/// Reads and translates a keepalived.conf; messages name it as `path`.
pub fn import(path: &Path) -> Result<Translation, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    translate(&text, &path.display().to_string())
}

/// Translates the text of a keepalived.conf called `file` in messages.
pub fn translate(text: &str, file: &str) -> Result<Translation, ImportError> {
    let nodes = parse(text).map_err(|(line, message)| ImportError::Syntax {
        file: file.to_owned(),
        line,
        message,
    })?;
    let mut translator = Translator {
        file,
        untranslated: Vec::new(),
        address_groups: HashMap::new(),
        used_groups: HashSet::new(),
        timeouts: None,
        services: Vec::new(),
    };
    translator.top_level(&nodes);
    let toml = translator.render();
    let mut untranslated = translator.untranslated;
    untranslated.sort_by_key(|item| item.line);
    Ok(Translation { toml, untranslated })
}

// ---------------------------------------------------------------------------
// keepalived's syntax.

/// A directive: its words, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    line: usize,
    /// The keyword and its arguments; never empty.
    words: Vec<String>,
    block: Option<Vec<Node>>,
}

impl Node {
    fn keyword(&self) -> &str {
        // `parse` makes nodes of non-empty statements only.
        self.words.first().map_or("", String::as_str)
    }

    fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }

    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or_default()
    }

    /// The directive as the report shows it.
    fn text(&self) -> String {
        self.words
            .iter()
            .map(|word| {
                if word.is_empty() || word.contains(char::is_whitespace) {
                    format!("{word:?}")
                } else {
                    word.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
}

/// One line's tokens; the error is the message of an unterminated string.
fn tokens(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut word, &mut tokens);
                tokens.push(if c == '{' { Token::Open } else { Token::Close });
            }
            '"' => {
                // A quoted string is one word, even if empty or with blanks.
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string (a \" without its end)".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => quoted.push(escaped),
                            Some(other) => {
                                quoted.push('\\');
                                quoted.push(other);
                            }
                            None => quoted.push('\\'),
                        },
                        Some(other) => quoted.push(other),
                    }
                }
                word.push_str(&quoted);
                if word.is_empty() {
                    tokens.push(Token::Word(String::new()));
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut tokens),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

/// The file's directives; the error is a line and a message.
fn parse(text: &str) -> Result<Vec<Node>, (usize, String)> {
    let mut root: Vec<Node> = Vec::new();
    // The blocks open at this point: each header and its children so far.
    let mut open: Vec<(Node, Vec<Node>)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut statement: Vec<String> = Vec::new();
        for token in tokens(line).map_err(|message| (number, message))? {
            match token {
                Token::Word(word) => statement.push(word),
                Token::Open => {
                    let header = if statement.is_empty() {
                        // `{` on a line of its own opens the block of the
                        // directive before it.
                        match current(&mut root, &mut open).pop() {
                            Some(previous) if previous.block.is_none() => previous,
                            _ => return Err((number, "`{` without a keyword before it".into())),
                        }
                    } else {
                        Node {
                            line: number,
                            words: std::mem::take(&mut statement),
                            block: None,
                        }
                    };
                    open.push((header, Vec::new()));
                }
                Token::Close => {
                    end_statement(current(&mut root, &mut open), &mut statement, number);
                    let Some((mut header, children)) = open.pop() else {
                        return Err((number, "`}` without a `{` to close".into()));
                    };
                    header.block = Some(children);
                    current(&mut root, &mut open).push(header);
                }
            }
        }
        end_statement(current(&mut root, &mut open), &mut statement, number);
    }
    if let Some((header, _)) = open.last() {
        return Err((
            header.line,
            format!("the block of `{}` is not closed", header.text()),
        ));
    }
    Ok(root)
}

/// The children of the innermost open block, or the file's directives.
fn current<'a>(root: &'a mut Vec<Node>, open: &'a mut [(Node, Vec<Node>)]) -> &'a mut Vec<Node> {
    match open.last_mut() {
        Some((_, children)) => children,
        None => root,
    }
}

/// Adds the words read so far, if any, as a directive without a block.
fn end_statement(children: &mut Vec<Node>, statement: &mut Vec<String>, line: usize) {
    if !statement.is_empty() {
        children.push(Node {
            line,
            words: std::mem::take(statement),
            block: None,
        });
    }
}

// ---------------------------------------------------------------------------
// Translation.

/// The translation's state while it walks the file.
struct Translator<'a> {
    file: &'a str,
    untranslated: Vec<Untranslated>,
    /// `local_address_group` blocks (FULLNAT keepalived forks): their
    /// addresses and line.
    address_groups: HashMap<String, (Vec<IpAddr>, usize)>,
    used_groups: HashSet<String>,
    /// `lvs_timeouts`: (tcp, tcpfin, udp) as given, and the directive.
    timeouts: Option<([Option<u32>; 3], Node)>,
    services: Vec<ServiceOut>,
}

/// A translated virtual server.
#[derive(Debug)]
struct ServiceOut {
    header: Node,
    protocol: Protocol,
    address: SocketAddr,
    scheduler: SchedulerName,
    scheduler_flags: Vec<String>,
    persistence: Option<Persistence>,
    local_addresses: Vec<IpAddr>,
    health_check: Option<HealthCheckConfig>,
    real_servers: Vec<RealOut>,
}

/// A translated real server.
#[derive(Debug)]
struct RealOut {
    header: Node,
    spec: RealServerSpec,
    /// A remark for the TOML, e.g. a port keepalived resets.
    note: Option<String>,
    /// Its first translatable checker; taken by the service when every
    /// real server of it has the same.
    check: Option<HealthCheckConfig>,
}

/// A checker's `url` block, translated.
#[derive(Debug)]
struct Url<'n> {
    path: String,
    status: Option<u16>,
    /// Lowercase.
    digest: Option<String>,
    virtualhost: Option<&'n str>,
}

/// Checker settings as a virtual server, a real server or the checker
/// itself gives them, the innermost winning.
#[derive(Debug, Clone, Copy, Default)]
struct CheckDefaults<'n> {
    connect_timeout: Option<u32>,
    delay_loop: Option<u32>,
    retry: Option<u32>,
    retry_delay: Option<u32>,
    inhibit: Option<bool>,
    /// HTTP_GET's and SSL_GET's `Host`, which a `url` can still override.
    virtualhost: Option<&'n str>,
}

impl<'n> CheckDefaults<'n> {
    /// `self` where it says something, `outer` elsewhere.
    fn over(self, outer: CheckDefaults<'n>) -> CheckDefaults<'n> {
        CheckDefaults {
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            delay_loop: self.delay_loop.or(outer.delay_loop),
            retry: self.retry.or(outer.retry),
            retry_delay: self.retry_delay.or(outer.retry_delay),
            inhibit: self.inhibit.or(outer.inhibit),
            virtualhost: self.virtualhost.or(outer.virtualhost),
        }
    }

    /// Reads one of the shared settings; false if `node` is another one.
    fn read(&mut self, node: &Node, translator: &mut Translator<'_>) -> bool {
        let slot = match node.keyword() {
            "connect_timeout" => &mut self.connect_timeout,
            "delay_loop" => &mut self.delay_loop,
            "retry" | "nb_get_retry" => &mut self.retry,
            "delay_before_retry" => &mut self.retry_delay,
            _ => return false,
        };
        let value = if matches!(node.keyword(), "retry" | "nb_get_retry") {
            translator.number(node, 0, 100)
        } else {
            translator.seconds(node)
        };
        if value.is_some() {
            *slot = value;
        }
        true
    }
}

const VRRP: &str = "rvs has no VRRP; keepalived can keep running its VRRP instances beside rvsd (a keepalived.conf without virtual_server blocks)";
const NO_START_STATE: &str =
    "the health_check table has no such setting: real servers start in service";

impl Translator<'_> {
    /// Records `node` as left out.
    fn skip(&mut self, node: &Node, why: impl Into<String>) {
        self.untranslated.push(Untranslated {
            file: self.file.to_owned(),
            line: node.line,
            directive: node.text(),
            why: why.into(),
        });
    }

    /// The single argument of `node`, or `None` (recorded) if there is not
    /// exactly one.
    fn single<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        match node.args() {
            [value] => Some(value),
            [] => {
                self.skip(node, "a value is missing");
                None
            }
            _ => {
                self.skip(node, "expected one value");
                None
            }
        }
    }

    /// A `virtualhost` directive's name, or `None` (recorded).
    fn virtualhost<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        let host = self.single(node)?;
        match HealthCheckConfig::virtualhost_problem(host) {
            None => Some(host),
            Some(problem) => {
                self.skip(node, problem);
                None
            }
        }
    }

    /// A number in `min..=max`, or `None` (recorded).
    fn number(&mut self, node: &Node, min: u32, max: u32) -> Option<u32> {
        let text = self.single(node)?;
        match text.parse::<u32>() {
            Ok(value) if (min..=max).contains(&value) => Some(value),
            _ => {
                self.skip(
                    node,
                    format!("{text} is not a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    /// Whole seconds (keepalived also takes fractions, rvs does not).
    fn seconds(&mut self, node: &Node) -> Option<u32> {
        let text = self.single(node)?;
        match text.parse::<u32>() {
            Ok(value) => Some(value),
            Err(_) => {
                self.skip(node, format!("{text} is not a whole number of seconds"));
                None
            }
        }
    }

    fn top_level(&mut self, nodes: &[Node]) {
        // FULLNAT local address groups may come after their users.
        for node in nodes {
            if node.keyword() == "local_address_group" {
                self.address_group(node);
            }
        }
        for node in nodes {
            match node.keyword() {
                "virtual_server" => self.virtual_server(node),
                "global_defs" => self.global_defs(node),
                "local_address_group" => {}
                "vrrp_instance" | "vrrp_sync_group" | "vrrp_script" | "vrrp_track_file"
                | "vrrp_track_process" | "garp_group" => self.skip(node, VRRP),
                "virtual_server_group" => self.skip(
                    node,
                    "rvs has no virtual server groups: write one virtual_server per address",
                ),
                "include" => self.skip(
                    node,
                    "included files are not read: import each of them on its own",
                ),
                "static_ipaddress" | "static_routes" | "static_rules" => self.skip(
                    node,
                    "the director's own addresses and routes are [[ports]] addresses and [[routes]] in rvs.toml",
                ),
                "SSL" => self.skip(
                    node,
                    "the https health check presents no client certificate",
                ),
                "bfd_instance" => self.skip(node, "rvs has no BFD"),
                _ => self.skip(node, "not an LVS setting the translator knows"),
            }
        }
        let unused: Vec<Node> = nodes
            .iter()
            .filter(|node| {
                node.keyword() == "local_address_group"
                    && node
                        .args()
                        .first()
                        .is_none_or(|name| !self.used_groups.contains(name))
            })
            .cloned()
            .collect();
        for node in unused {
            self.skip(&node, "no translated FULLNAT virtual_server uses it");
        }
    }

    fn global_defs(&mut self, node: &Node) {
        for child in node.children() {
            match child.keyword() {
                "lvs_timeouts" => self.lvs_timeouts(child),
                // rvsd always starts from its configuration alone.
                "lvs_flush" | "lvs_flush_onstop" => {}
                "lvs_sync_daemon" => self.skip(child, "rvs has no connection sync daemon"),
                _ => self.skip(child, "keepalived's own setting; rvs has no equivalent"),
            }
        }
    }

    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`.
    fn lvs_timeouts(&mut self, node: &Node) {
        let mut values = [None; 3];
        let mut args = node.args().iter();
        while let Some(name) = args.next() {
            let slot = match name.as_str() {
                "tcp" => 0,
                "tcpfin" => 1,
                "udp" => 2,
                _ => {
                    return self.skip(node, format!("\"{name}\" is not tcp, tcpfin or udp"));
                }
            };
            match args.next().map(|value| value.parse::<u32>()) {
                Some(Ok(value)) if (1..=crate::config::MAX_TIMEOUT).contains(&value) => {
                    values[slot] = Some(value);
                }
                _ => {
                    return self.skip(
                        node,
                        format!(
                            "{name} needs a number of seconds from 1 to {}",
                            crate::config::MAX_TIMEOUT
                        ),
                    );
                }
            }
        }
        self.timeouts = Some((values, node.clone()));
    }

    /// `local_address_group NAME { IP; IP-last; ... }` (keepalived forks
    /// with FULLNAT).
    fn address_group(&mut self, node: &Node) {
        let Some(name) = node.args().first().cloned() else {
            return;
        };
        let mut addresses = Vec::new();
        for child in node.children() {
            let entry = child.keyword();
            match entry.parse::<IpAddr>() {
                Ok(address) if child.args().is_empty() => addresses.push(address),
                _ => match ipv4_range(entry) {
                    Some(range) if child.args().is_empty() => addresses.extend(range),
                    _ => self.skip(child, "not an address or an IPv4 range such as 10.0.0.1-10"),
                },
            }
        }
        self.address_groups.insert(name, (addresses, node.line));
    }

    fn virtual_server(&mut self, node: &Node) {
        let address = match node.args() {
            [kind, _] if kind == "fwmark" => {
                return self.skip(
                    node,
                    "rvs has no firewall-mark services yet (rvsadm refuses -f too)",
                );
            }
            [kind, _] if kind == "group" => {
                return self.skip(
                    node,
                    "rvs has no virtual server groups: write one virtual_server per address",
                );
            }
            [ip, port] => match (ip.parse::<IpAddr>(), port.parse::<u16>()) {
                (Ok(ip), Ok(port)) => SocketAddr::new(ip, port),
                (Err(_), _) => return self.skip(node, format!("{ip} is not an IP address")),
                (_, Err(_)) => return self.skip(node, format!("{port} is not a port")),
            },
            _ => return self.skip(node, "expected virtual_server IP PORT"),
        };
        let mut service = ServiceOut {
            header: node.clone(),
            protocol: Protocol::Tcp,
            address,
            scheduler: SchedulerName::default(),
            scheduler_flags: Vec::new(),
            persistence: None,
            local_addresses: Vec::new(),
            health_check: None,
            real_servers: Vec::new(),
        };
        let mut defaults = CheckDefaults::default();
        let mut forward: Option<ForwardMethod> = None;
        let mut weight: u32 = 1;
        let mut flags: Vec<&Node> = Vec::new();
        let mut persistence_timeout: Option<u32> = None;
        let mut granularity: Option<u8> = None;
        for child in node.children() {
            if defaults.read(child, self) {
                continue;
            }
            match child.keyword() {
                "real_server" => {}
                "lb_algo" | "lvs_sched" => {
                    if let Some(name) = self.single(child) {
                        match name.parse::<SchedulerName>() {
                            Ok(scheduler) => service.scheduler = scheduler,
                            Err(error) => self.skip(child, error.to_string()),
                        }
                    }
                }
                "lb_kind" | "lvs_method" => {
                    if let Some(method) = self.forward_method(child) {
                        forward = Some(method);
                    }
                }
                "protocol" => match self.single(child).map(str::to_ascii_uppercase).as_deref() {
                    Some("TCP") => service.protocol = Protocol::Tcp,
                    Some("UDP") => service.protocol = Protocol::Udp,
                    Some("SCTP") => {
                        // The whole service, since it cannot exist in rvs.
                        return self.skip(node, "protocol SCTP: rvs has TCP and UDP services only");
                    }
                    Some(other) => self.skip(child, format!("unknown protocol {other}")),
                    None => {}
                },
                "persistence_timeout" => {
                    if child.args().is_empty() {
                        persistence_timeout = Some(Persistence::DEFAULT_TIMEOUT);
                    } else if let Some(timeout) = self.number(child, 1, crate::config::MAX_TIMEOUT)
                    {
                        persistence_timeout = Some(timeout);
                    }
                }
                "persistence_granularity" => {
                    if let Some(text) = self.single(child) {
                        match prefix_length(text, address.is_ipv4()) {
                            Some(prefix) => granularity = Some(prefix),
                            None if address.is_ipv4() => self
                                .skip(child, "not a contiguous IPv4 netmask such as 255.255.255.0"),
                            None => self.skip(child, "not an IPv6 prefix length from 1 to 128"),
                        }
                    }
                }
                "inhibit_on_failure" => defaults.inhibit = Some(true),
                "weight" => {
                    if let Some(value) = self.number(child, 0, MAX_WEIGHT) {
                        weight = value;
                    }
                }
                "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
                | "flag-3" => flags.push(child),
                // IPVS sets this flag itself; asking for it changes nothing.
                "hashed" => {}
                "ip_family" => match (self.single(child), address.is_ipv4()) {
                    (Some("inet"), true) | (Some("inet6"), false) | (None, _) => {}
                    (Some(_), _) => {
                        self.skip(child, "does not match the virtual server's address family");
                    }
                },
                "laddr_group_name" => {
                    if let Some(name) = self.single(child) {
                        match self.address_groups.get(name) {
                            Some((addresses, _)) => {
                                service.local_addresses = addresses
                                    .iter()
                                    .copied()
                                    .filter(|local| local.is_ipv4() == address.is_ipv4())
                                    .collect();
                                self.used_groups.insert(name.to_owned());
                            }
                            None => self.skip(child, "no local_address_group has this name"),
                        }
                    }
                }
                "ops" => self.skip(
                    child,
                    "one-packet scheduling is not supported (rvsadm refuses -o too)",
                ),
                "persistence_engine" => self.skip(child, "rvs has no persistence engines"),
                "sorry_server" | "sorry_server_inhibit" | "sorry_server_lvs_method" => {
                    self.skip(child, "rvs has no sorry server")
                }
                "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => {
                    self.skip(child, "rvs has no quorum actions")
                }
                "alpha" | "omega" | "warmup" => self.skip(child, NO_START_STATE),
                "ha_suspend" => self.skip(child, "it follows VRRP states, and rvs has no VRRP"),
                "smtp_alert" => self.skip(child, "rvs sends no e-mail"),
                "virtualhost" => {
                    if let Some(host) = self.virtualhost(child) {
                        defaults.virtualhost = Some(host);
                    }
                }
                _ => self.skip(child, "not a virtual_server setting the translator knows"),
            }
        }
        if let Some(prefix) = granularity {
            // keepalived gives a granularity without a timeout IPVS's 300 s.
            persistence_timeout.get_or_insert(Persistence::DEFAULT_TIMEOUT);
            service.persistence = persistence_timeout.map(|timeout| Persistence {
                timeout,
                netmask: prefix,
            });
        } else {
            service.persistence = persistence_timeout.map(|timeout| Persistence {
                timeout,
                netmask: if address.is_ipv4() { 32 } else { 128 },
            });
        }
        if address.port() == 0 && service.persistence.is_none() {
            return self.skip(
                node,
                "port 0 (every port) is only for a persistent service, in IPVS as in rvs: it has no persistence_timeout",
            );
        }
        let mut bits: HashMap<u8, String> = HashMap::new();
        for flag in flags {
            match SchedulerFlag::parse(flag.keyword(), service.scheduler) {
                Ok(parsed) => match bits.get(&parsed.bit) {
                    Some(other) => {
                        let why = format!("sets the same flag as {other}");
                        self.skip(flag, why);
                    }
                    None => {
                        bits.insert(parsed.bit, parsed.name.to_owned());
                        service.scheduler_flags.push(parsed.name.to_owned());
                    }
                },
                Err(error) => self.skip(flag, error.to_string()),
            }
        }
        // keepalived's default forwarding method is NAT.
        let forward = forward.unwrap_or(ForwardMethod::Masq);
        for child in node.children() {
            if child.keyword() == "real_server"
                && let Some(real) = self.real_server(child, &service, forward, weight, defaults)
            {
                let address = real.spec.address;
                match service
                    .real_servers
                    .iter()
                    .find(|other| other.spec.address == address)
                {
                    // keepalived keeps the first too.
                    Some(first) => {
                        let why =
                            format!("duplicate of the real server at line {}", first.header.line);
                        self.skip(child, why);
                    }
                    None => service.real_servers.push(real),
                }
            }
        }
        service.health_check = service_check(&mut service.real_servers);
        self.services.push(service);
    }

    /// `lb_kind`/`lvs_method`: NAT, DR, TUN, and FNAT (keepalived forks).
    fn forward_method(&mut self, node: &Node) -> Option<ForwardMethod> {
        let method = match self.single(node)?.to_ascii_uppercase().as_str() {
            "NAT" => ForwardMethod::Masq,
            "DR" => ForwardMethod::Route,
            "TUN" => ForwardMethod::Tunnel,
            "FNAT" | "FULLNAT" => ForwardMethod::FullNat,
            other => {
                self.skip(
                    node,
                    format!("unknown forwarding method {other} (known: NAT, DR, TUN, FNAT)"),
                );
                return None;
            }
        };
        Some(method)
    }

    /// One real server, with its health check (its first translatable
    /// checker).
    fn real_server<'n>(
        &mut self,
        node: &'n Node,
        service: &ServiceOut,
        forward: ForwardMethod,
        weight: u32,
        defaults: CheckDefaults<'n>,
    ) -> Option<RealOut> {
        let vip = service.address;
        let (ip, port) = match node.args() {
            [ip] => (ip, None),
            [ip, port] => (ip, Some(port)),
            _ => {
                self.skip(node, "expected real_server IP [PORT]");
                return None;
            }
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            self.skip(node, format!("{ip} is not an IP address"));
            return None;
        };
        if ip.is_ipv4() != vip.is_ipv4() {
            self.skip(
                node,
                "its address family differs from the virtual server's, which rvs does not support",
            );
            return None;
        }
        let port = match port.map(|text| (text, text.parse::<u16>())) {
            None | Some((_, Ok(0))) => vip.port(),
            Some((_, Ok(port))) => port,
            Some((text, Err(_))) => {
                self.skip(node, format!("{text} is not a port"));
                return None;
            }
        };
        let mut spec = RealServerSpec {
            address: SocketAddr::new(ip, port),
            weight,
            forward,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        let mut own = CheckDefaults::default();
        let mut checkers: Vec<&Node> = Vec::new();
        for child in node.children() {
            if own.read(child, self) {
                continue;
            }
            match child.keyword() {
                "weight" => {
                    if let Some(value) = self.number(child, 0, MAX_WEIGHT) {
                        spec.weight = value;
                    }
                }
                "lvs_method" | "lb_kind" => {
                    if let Some(method) = self.forward_method(child) {
                        spec.forward = method;
                    }
                }
                "uthreshold" => {
                    if let Some(value) = self.number(child, 0, i32::MAX as u32) {
                        spec.upper_threshold = value;
                    }
                }
                "lthreshold" => {
                    if let Some(value) = self.number(child, 0, i32::MAX as u32) {
                        spec.lower_threshold = value;
                    }
                }
                "inhibit_on_failure" => match child.args().first().map(String::as_str) {
                    None | Some("true" | "yes" | "on") => own.inhibit = Some(true),
                    Some("false" | "no" | "off") => own.inhibit = Some(false),
                    Some(other) => self.skip(child, format!("{other} is not true or false")),
                },
                "HTTP_GET" | "SSL_GET" | "TCP_CHECK" | "MISC_CHECK" => checkers.push(child),
                keyword if keyword.ends_with("_CHECK") => self.skip(
                    child,
                    "rvs's health checks are tcp, http, https and misc only",
                ),
                "notify_up" | "notify_down" => self.skip(child, "rvs runs no notify scripts"),
                "alpha" | "warmup" => self.skip(child, NO_START_STATE),
                "smtp_alert" => self.skip(child, "rvs sends no e-mail"),
                "virtualhost" => {
                    if let Some(host) = self.virtualhost(child) {
                        own.virtualhost = Some(host);
                    }
                }
                _ => self.skip(child, "not a real_server setting the translator knows"),
            }
        }
        let mut note = None;
        if vip.port() == 0 && spec.address.port() != 0 {
            // IPVS ignores it: the client's port is served.
            note = Some(format!(
                "port {} reset to 0: the real servers of a service of every port serve the port the client asked for",
                spec.address.port()
            ));
            spec.address.set_port(0);
        } else if !spec.forward.allows_port_mapping() && spec.address.port() != vip.port() {
            // keepalived itself resets it, with a warning.
            note = Some(format!(
                "port {} reset to the virtual server's {}, as keepalived and IPVS do: {} cannot map ports",
                spec.address.port(),
                vip.port(),
                spec.forward.ipvsadm_name()
            ));
            spec.address.set_port(vip.port());
        }
        let defaults = own.over(defaults);
        let mut check = None;
        for checker in checkers {
            if check.is_some() {
                self.skip(
                    checker,
                    "rvs runs one health check per real server; the first one is kept",
                );
            } else {
                check = self.checker(checker, &spec, defaults);
            }
        }
        Some(RealOut {
            header: node.clone(),
            spec,
            note,
            check,
        })
    }

    /// A checker block as a health check, with `defaults` from its real
    /// and virtual server; `None` (recorded) if it cannot be translated.
    fn checker<'n>(
        &mut self,
        node: &'n Node,
        real: &RealServerSpec,
        defaults: CheckDefaults<'n>,
    ) -> Option<HealthCheckConfig> {
        let kind = match node.keyword() {
            "TCP_CHECK" => HealthCheckKind::Tcp,
            "HTTP_GET" => HealthCheckKind::Http,
            "SSL_GET" => HealthCheckKind::Https,
            _ => HealthCheckKind::Misc,
        };
        let mut own = CheckDefaults::default();
        let mut port: Option<u16> = None;
        let mut url: Option<Url<'n>> = None;
        let mut command: Option<String> = None;
        let mut misc_timeout: Option<u32> = None;
        let mut untranslatable = false;
        for child in node.children() {
            if own.read(child, self) {
                continue;
            }
            match (kind, child.keyword()) {
                (HealthCheckKind::Misc, "misc_path") => {
                    if child.args().is_empty() {
                        self.skip(child, "the command is missing");
                    } else {
                        command = Some(child.args().join(" "));
                    }
                }
                (HealthCheckKind::Misc, "misc_timeout") => misc_timeout = self.seconds(child),
                (HealthCheckKind::Misc, "misc_dynamic") => {
                    self.skip(child, "rvs sets no weight from the command's exit status")
                }
                (HealthCheckKind::Misc, "user") => {
                    self.skip(child, "rvsd would run the command as its own user")
                }
                (HealthCheckKind::Misc, _) => {
                    self.skip(child, "not a MISC_CHECK setting the translator knows")
                }
                (_, "connect_port") => {
                    if let Some(value) = self.number(child, 1, u16::MAX.into()) {
                        port = u16::try_from(value).ok();
                    }
                }
                (HealthCheckKind::Http | HealthCheckKind::Https, "url") => {
                    if url.is_some() {
                        self.skip(
                            child,
                            "rvs checks one URL per real server; the first is kept",
                        );
                    } else {
                        url = self.url(child);
                        untranslatable |= url.is_none();
                    }
                }
                (_, "connect_ip" | "bindto" | "bind_port" | "bind_if" | "fwmark") => self.skip(
                    child,
                    "rvs checks the real server's own address, from an address of its choice",
                ),
                (_, "warmup" | "alpha") => self.skip(child, NO_START_STATE),
                (_, "log_all_failures") => self.skip(child, "rvs has no such logging option"),
                (HealthCheckKind::Http | HealthCheckKind::Https, "virtualhost") => {
                    if let Some(host) = self.virtualhost(child) {
                        own.virtualhost = Some(host);
                    }
                }
                // What rvs does anyway: the virtualhost, when there is one,
                // is the SNI name.
                (HealthCheckKind::Https, "enable_sni") => {}
                (HealthCheckKind::Https, "sni_name") => self.skip(
                    child,
                    "the https health check sends its virtualhost as the SNI name, not another",
                ),
                (_, "http_protocol" | "enable_sni" | "tls_compliant") => self.skip(
                    child,
                    "the http health check has no such setting (it sends a plain HTTP/1.1 GET)",
                ),
                (_, _) => self.skip(
                    child,
                    format!("not a {} setting the translator knows", node.keyword()),
                ),
            }
        }
        let resolved = own.over(defaults);
        let delay_loop = resolved
            .delay_loop
            .unwrap_or(HealthCheckConfig::DEFAULT_DELAY_LOOP);
        let url = match (kind, url) {
            (HealthCheckKind::Http | HealthCheckKind::Https, Some(url)) => Some(url),
            (HealthCheckKind::Http | HealthCheckKind::Https, None) => {
                if !untranslatable {
                    self.skip(node, "it has no url { path ... } to request");
                }
                return None;
            }
            _ => None,
        };
        let connect_timeout = if kind == HealthCheckKind::Misc {
            if command.is_none() {
                self.skip(node, "it has no misc_path");
                return None;
            }
            // keepalived lets a script run for delay_loop by default.
            misc_timeout.unwrap_or(delay_loop)
        } else {
            resolved
                .connect_timeout
                .unwrap_or(HealthCheckConfig::DEFAULT_CONNECT_TIMEOUT)
        };
        if kind != HealthCheckKind::Misc && port.is_none() && real.address.port() == 0 {
            self.skip(
                node,
                "it has no connect_port, and a real server of a service of every port has no port of its own to check",
            );
            return None;
        }
        // keepalived's MISC_CHECK fails at the first failure by default.
        let default_retry = if kind == HealthCheckKind::Misc {
            0
        } else {
            HealthCheckConfig::DEFAULT_RETRY
        };
        Some(HealthCheckConfig {
            kind,
            // The real server's own port is the default; leaving it out
            // lets real servers with different ports share a check.
            port: port.filter(|&port| port != real.address.port()),
            status: url.as_ref().and_then(|url| url.status),
            // keepalived's order: the url's, the checker's, the real
            // server's, the virtual server's.
            virtualhost: url
                .as_ref()
                .and_then(|url| url.virtualhost.or(resolved.virtualhost).map(str::to_owned)),
            digest: url.as_ref().and_then(|url| url.digest.clone()),
            path: url.map(|url| url.path),
            connect_timeout,
            delay_loop,
            retry: resolved.retry.unwrap_or(default_retry),
            retry_delay: resolved
                .retry_delay
                .unwrap_or(HealthCheckConfig::DEFAULT_RETRY_DELAY),
            rise: HealthCheckConfig::DEFAULT_RISE,
            on_failure: if resolved.inhibit == Some(true) {
                OnFailure::Inhibit
            } else {
                OnFailure::Remove
            },
            command,
        })
    }

    /// `url { path P status_code N digest D virtualhost H }`, or `None`
    /// (recorded) without a path.
    fn url<'n>(&mut self, node: &'n Node) -> Option<Url<'n>> {
        let mut path = None;
        let mut status = None;
        let mut digest = None;
        let mut virtualhost = None;
        for child in node.children() {
            match child.keyword() {
                "path" => path = self.single(child).map(str::to_owned),
                "status_code" => match self.single(child) {
                    // keepalived's default, written out.
                    Some("200-299") => {}
                    Some(text) => match text.parse::<u16>() {
                        Ok(code @ 100..=599) => status = Some(code),
                        _ => self.skip(
                            child,
                            "rvs takes one status code from 100 to 599 (or none: any 2xx)",
                        ),
                    },
                    None => {}
                },
                "digest" => {
                    if let Some(text) = self.single(child) {
                        match HealthCheckConfig::digest_problem(text) {
                            None => digest = Some(text.to_ascii_lowercase()),
                            Some(problem) => self.skip(child, problem),
                        }
                    }
                }
                "regex" | "regex_no_match" | "regex_options" | "regex_stack"
                | "regex_min_offset" | "regex_max_offset" => self.skip(
                    child,
                    "rvs checks the status code and the digest, not the page's text",
                ),
                "virtualhost" => {
                    if let Some(host) = self.virtualhost(child) {
                        virtualhost = Some(host);
                    }
                }
                _ => self.skip(child, "not a url setting the translator knows"),
            }
        }
        match path {
            Some(path) => Some(Url {
                path,
                status,
                digest,
                virtualhost,
            }),
            None => {
                self.skip(node, "it has no path");
                None
            }
        }
    }

    /// The translation as rvsd TOML.
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# rvsd configuration translated from {} by rvsadm --import-keepalived.",
            self.file
        );
        out.push_str(
            "# Only the services part: add it to a configuration with [eal] and [[ports]]\n\
             # (see rvs.example.toml), then check it with rvsd --check-config FILE.\n",
        );
        if !self.untranslated.is_empty() {
            let _ = writeln!(
                out,
                "# {} directive(s) could not be translated: rvsadm listed them on stderr.",
                self.untranslated.len()
            );
        }
        if let Some((values, node)) = &self.timeouts {
            let _ = writeln!(out, "\n# {}:{}: {}", self.file, node.line, node.text());
            out.push_str("[timeouts]\n");
            for (name, value) in ["tcp", "tcp_fin", "udp"].iter().zip(values) {
                if let Some(value) = value {
                    let _ = writeln!(out, "{name} = {value}");
                }
            }
        }
        for service in &self.services {
            let header = &service.header;
            let _ = writeln!(out, "\n# {}:{}: {}", self.file, header.line, header.text());
            out.push_str("[[services]]\n");
            let _ = writeln!(out, "protocol = \"{}\"", service.protocol);
            let _ = writeln!(out, "address = \"{}\"", service.address);
            let _ = writeln!(out, "scheduler = \"{}\"", service.scheduler);
            if !service.scheduler_flags.is_empty() {
                let _ = writeln!(
                    out,
                    "scheduler_flags = [{}]",
                    quoted_list(&service.scheduler_flags)
                );
            }
            if let Some(persistence) = service.persistence {
                let _ = writeln!(
                    out,
                    "persistence = {{ timeout = {}, netmask = {} }}",
                    persistence.timeout, persistence.netmask
                );
            }
            if !service.local_addresses.is_empty() {
                let _ = writeln!(
                    out,
                    "local_addresses = [{}]",
                    quoted_list(&service.local_addresses)
                );
            }
            if let Some(check) = &service.health_check {
                render_check(&mut out, "services.health_check", check);
            }
            for real in &service.real_servers {
                let header = &real.header;
                let _ = writeln!(out, "\n# {}:{}: {}", self.file, header.line, header.text());
                if let Some(note) = &real.note {
                    let _ = writeln!(out, "# {note}");
                }
                let spec = &real.spec;
                out.push_str("[[services.real_servers]]\n");
                let _ = writeln!(out, "address = \"{}\"", spec.address);
                let _ = writeln!(out, "forward = \"{}\"", forward_key(spec.forward));
                let _ = writeln!(out, "weight = {}", spec.weight);
                if spec.upper_threshold > 0 {
                    let _ = writeln!(out, "upper_threshold = {}", spec.upper_threshold);
                }
                if spec.lower_threshold > 0 {
                    let _ = writeln!(out, "lower_threshold = {}", spec.lower_threshold);
                }
                if let Some(check) = &real.check {
                    render_check(&mut out, "services.real_servers.health_check", check);
                }
            }
        }
        out
    }
}

/// The check that every real server of a service has, which the service
/// then takes from them. Otherwise each keeps its own, and one without a
/// checker stays unchecked, as in keepalived.
fn service_check(real_servers: &mut [RealOut]) -> Option<HealthCheckConfig> {
    let first = real_servers.first()?.check.clone()?;
    if real_servers
        .iter()
        .any(|real| real.check.as_ref() != Some(&first))
    {
        return None;
    }
    for real in real_servers {
        real.check = None;
    }
    Some(first)
}

/// `check` as the TOML table `table`.
fn render_check(out: &mut String, table: &str, check: &HealthCheckConfig) {
    let _ = writeln!(out, "\n[{table}]");
    let _ = writeln!(out, "kind = \"{}\"", check.kind.as_str());
    if let Some(port) = check.port {
        let _ = writeln!(out, "port = {port}");
    }
    if let Some(path) = &check.path {
        let _ = writeln!(out, "path = {}", toml_string(path));
    }
    if let Some(status) = check.status {
        let _ = writeln!(out, "status = {status}");
    }
    if let Some(virtualhost) = &check.virtualhost {
        let _ = writeln!(out, "virtualhost = {}", toml_string(virtualhost));
    }
    if let Some(digest) = &check.digest {
        let _ = writeln!(out, "digest = {}", toml_string(digest));
    }
    if let Some(command) = &check.command {
        let _ = writeln!(out, "command = {}", toml_string(command));
    }
    let _ = writeln!(out, "connect_timeout = {}", check.connect_timeout);
    let _ = writeln!(out, "delay_loop = {}", check.delay_loop);
    let _ = writeln!(out, "retry = {}", check.retry);
    let _ = writeln!(out, "retry_delay = {}", check.retry_delay);
    let _ = writeln!(out, "on_failure = \"{}\"", check.on_failure.as_str());
}

/// The TOML spelling of a forwarding method.
fn forward_key(forward: ForwardMethod) -> &'static str {
    match forward {
        ForwardMethod::Masq => "masq",
        ForwardMethod::Route => "route",
        ForwardMethod::Tunnel => "tunnel",
        ForwardMethod::FullNat => "fullnat",
    }
}

fn quoted_list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|item| toml_string(&item.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// keepalived's `persistence_granularity`: a contiguous dotted netmask for
/// IPv4, a prefix length for IPv6.
fn prefix_length(text: &str, ipv4: bool) -> Option<u8> {
    if ipv4 {
        let bits = u32::from(text.parse::<Ipv4Addr>().ok()?);
        let prefix = bits.leading_ones();
        (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
    } else {
        text.parse::<u8>()
            .ok()
            .filter(|prefix| (1..=128).contains(prefix))
    }
}

/// `10.0.0.1-10`: 10.0.0.1 to 10.0.0.10.
fn ipv4_range(text: &str) -> Option<Vec<IpAddr>> {
    let (first, last) = text.split_once('-')?;
    let first: Ipv4Addr = first.parse().ok()?;
    let last: u8 = last.parse().ok()?;
    let [a, b, c, start] = first.octets();
    (start <= last).then(|| {
        (start..=last)
            .map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            .collect()
    })
}

#[cfg(test)]
mod tests;
