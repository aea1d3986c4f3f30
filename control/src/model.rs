//! The load-balancing configuration as users and tools see it: services,
//! real servers, schedulers, forwarding methods.
//!
//! These types are shared by the TOML configuration, the control protocol
//! and `rvsadm`; they carry no dataplane detail. rvsd converts them into the
//! dataplane's snapshot (`dataplane::snapshot`) after validation, so that
//! the CLI never depends on the dataplane.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a service (`-t` or `-u` in ipvsadm syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name ipvsadm prints in listings (`TCP`, `UDP`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A virtual service: what clients connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceKey {
    pub protocol: Protocol,
    /// VIP and virtual port.
    pub address: SocketAddr,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol.ipvsadm_name(), self.address)
    }
}

/// Every LVS scheduler, plus Maglev hashing; the dataplane implements
/// each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerName {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Fo,
    Ovf,
    Twos,
    Mh,
}

impl SchedulerName {
    pub const ALL: [SchedulerName; 14] = [
        SchedulerName::Rr,
        SchedulerName::Wrr,
        SchedulerName::Lc,
        SchedulerName::Wlc,
        SchedulerName::Sed,
        SchedulerName::Nq,
        SchedulerName::Lblc,
        SchedulerName::Lblcr,
        SchedulerName::Dh,
        SchedulerName::Sh,
        SchedulerName::Fo,
        SchedulerName::Ovf,
        SchedulerName::Twos,
        SchedulerName::Mh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerName::Rr => "rr",
            SchedulerName::Wrr => "wrr",
            SchedulerName::Lc => "lc",
            SchedulerName::Wlc => "wlc",
            SchedulerName::Sed => "sed",
            SchedulerName::Nq => "nq",
            SchedulerName::Lblc => "lblc",
            SchedulerName::Lblcr => "lblcr",
            SchedulerName::Dh => "dh",
            SchedulerName::Sh => "sh",
            SchedulerName::Fo => "fo",
            SchedulerName::Ovf => "ovf",
            SchedulerName::Twos => "twos",
            SchedulerName::Mh => "mh",
        }
    }
}

impl Default for SchedulerName {
    /// ipvsadm's default scheduler.
    fn default() -> Self {
        SchedulerName::Wlc
    }
}

impl fmt::Display for SchedulerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerName {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerName::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| ModelError::UnknownScheduler(s.to_owned()))
    }
}

/// How packets reach a real server (the `Forward` column of `ipvsadm -L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// NAT (`-m`): destination rewritten to RIP:rport, replies come back.
    Masq,
    /// Direct routing (`-g`), the LVS default: only the MAC changes.
    #[default]
    Route,
    /// IP-in-IP tunnel (`-i`).
    Tunnel,
    /// Source and destination rewritten (`--fullnat`).
    FullNat,
}

impl ForwardMethod {
    /// The word ipvsadm prints in the Forward column.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Route => "Route",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::FullNat => "FullNat",
        }
    }

    /// Whether the real server's port may differ from the virtual port.
    pub fn allows_port_mapping(self) -> bool {
        matches!(self, ForwardMethod::Masq | ForwardMethod::FullNat)
    }
}

impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ipvsadm_name())
    }
}

/// Client affinity (`-p [timeout] -M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// Seconds a client stays with its real server after its last connection.
    pub timeout: u32,
    /// Prefix length applied to the client address (32 or 128: the host).
    pub netmask: u8,
}

impl Persistence {
    /// ipvsadm's default persistence timeout.
    pub const DEFAULT_TIMEOUT: u32 = 300;
}

/// A whole service definition, without its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub protocol: Protocol,
    /// VIP and virtual port.
    pub address: SocketAddr,
    #[serde(default)]
    pub scheduler: SchedulerName,
    /// Scheduler flags (`-b`), for example `sh-fallback`, `sh-port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// FULLNAT's local addresses (LIPs) for this service; empty: the
    /// configuration's global ones. ipvsadm has no syntax for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_addresses: Vec<std::net::IpAddr>,
}

impl ServiceSpec {
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            address: self.address,
        }
    }
}

/// A scheduler flag as ipvsadm's `-b` knows it.
///
/// IPVS has three generic flag bits; `sh` and `mh` give the first two a
/// name of their own. A flag is kept as its name in [`ServiceSpec`], and
/// two names that set the same bit are the same flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerFlag {
    pub name: &'static str,
    /// Which of the three flag bits it sets (1, 2 or 3).
    pub bit: u8,
    /// The only scheduler that accepts it; `None`: every scheduler.
    pub scheduler: Option<SchedulerName>,
}

/// Every flag ipvsadm accepts, in the order it prints them.
pub const SCHEDULER_FLAGS: [SchedulerFlag; 7] = [
    SchedulerFlag::new("sh-fallback", 1, Some(SchedulerName::Sh)),
    SchedulerFlag::new("sh-port", 2, Some(SchedulerName::Sh)),
    SchedulerFlag::new("mh-fallback", 1, Some(SchedulerName::Mh)),
    SchedulerFlag::new("mh-port", 2, Some(SchedulerName::Mh)),
    SchedulerFlag::new("flag-1", 1, None),
    SchedulerFlag::new("flag-2", 2, None),
    SchedulerFlag::new("flag-3", 3, None),
];

impl SchedulerFlag {
    const fn new(name: &'static str, bit: u8, scheduler: Option<SchedulerName>) -> Self {
        SchedulerFlag {
            name,
            bit,
            scheduler,
        }
    }

    /// Looks `name` up and checks that `scheduler` accepts it.
    pub fn parse(name: &str, scheduler: SchedulerName) -> Result<SchedulerFlag, ModelError> {
        let flag = SCHEDULER_FLAGS
            .into_iter()
            .find(|flag| flag.name == name)
            .ok_or_else(|| ModelError::UnknownSchedulerFlag(name.to_owned()))?;
        match flag.scheduler {
            Some(required) if required != scheduler => Err(ModelError::IncompatibleSchedulerFlag {
                flag: flag.name,
                required,
                scheduler,
            }),
            _ => Ok(flag),
        }
    }

    /// The name ipvsadm prints for `bit` under `scheduler`: `sh` and `mh`
    /// use their own names for bits 1 and 2, others `flag-N`.
    pub fn canonical(bit: u8, scheduler: SchedulerName) -> Option<SchedulerFlag> {
        SCHEDULER_FLAGS
            .into_iter()
            .find(|flag| flag.bit == bit && flag.scheduler == Some(scheduler))
            .or_else(|| {
                SCHEDULER_FLAGS
                    .into_iter()
                    .find(|flag| flag.bit == bit && flag.scheduler.is_none())
            })
    }
}

/// Maximum weight of a real server. ipvsadm accepts up to 2^31 - 1, but
/// wrr may step down through every weight below the largest for one pick,
/// so rvs keeps them to 16 bits.
pub const MAX_WEIGHT: u32 = 65535;

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerSpec {
    /// RIP and real port.
    pub address: SocketAddr,
    #[serde(default = "RealServerSpec::default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub forward: ForwardMethod,
    /// `-x`: no new connections above this many (0: no limit).
    #[serde(default)]
    pub upper_threshold: u32,
    /// `-y`: accept new connections again below this many.
    #[serde(default)]
    pub lower_threshold: u32,
}

impl RealServerSpec {
    /// ipvsadm's weight when `-w` is not given.
    pub(crate) fn default_weight() -> u32 {
        1
    }
}

/// Per-service or per-real-server traffic counters (ipvsadm `--stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Per-second rates (ipvsadm `--rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// A real server as listed: its definition and what it is doing.
///
/// `spec` is what the dataplane uses: a real server that its health check
/// inhibits is listed with weight 0, as ipvsadm shows keepalived's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerStatus {
    pub spec: RealServerSpec,
    pub active_conns: u64,
    pub inactive_conns: u64,
    pub persistent_conns: u64,
    pub stats: Stats,
    pub rates: Rates,
    /// Its health check's view; absent when its service has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<RealServerHealth>,
}

/// A service as listed, with its real servers in configuration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub spec: ServiceSpec,
    pub stats: Stats,
    pub rates: Rates,
    /// The real servers in the service: those ipvsadm would list.
    pub real_servers: Vec<RealServerStatus>,
    /// Real servers that their health check took out of the service
    /// (`on_failure = "remove"`) until they are up again, with weight 0.
    /// A separate list, so that clients that know nothing of health
    /// checks list exactly what the dataplane uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_real_servers: Vec<RealServerStatus>,
}

/// What happens to a real server whose health check finds it down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Taken out of the service until it is healthy again (keepalived's
    /// default).
    #[default]
    Remove,
    /// Kept with weight 0: no new connections, existing ones carry on
    /// (keepalived's `inhibit_on_failure`).
    Inhibit,
}

impl OnFailure {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Remove => "remove",
            OnFailure::Inhibit => "inhibit",
        }
    }
}

/// A checked real server's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Up,
    Down,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Up => "UP",
            HealthState::Down => "DOWN",
        })
    }
}

/// Health checks of a real server by result, since its checker started.
/// The three counts are disjoint: a timeout is not also a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthChecks {
    pub success: u64,
    pub failure: u64,
    pub timeout: u64,
}

/// What a real server's health checker has seen so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    pub state: HealthState,
    /// Failed checks in a row (0 after a success).
    pub failures: u32,
    /// Successful checks in a row while down (towards `rise`).
    pub successes: u32,
    /// Why the last failed check failed ("connection refused", "HTTP
    /// status 500", "timeout after 1s", "exit status 1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    pub checks: HealthChecks,
    /// Transitions from up to down, and from down to up.
    pub went_down: u64,
    pub went_up: u64,
}

impl Default for HealthRecord {
    /// A real server whose checker has just started: up, as keepalived
    /// starts them.
    fn default() -> Self {
        HealthRecord {
            state: HealthState::Up,
            failures: 0,
            successes: 0,
            last_failure: None,
            checks: HealthChecks::default(),
            went_down: 0,
            went_up: 0,
        }
    }
}

/// A checked real server's health as listed (`rvsadm -Ln --health`,
/// `--json`): the checker's record and the rules it follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerHealth {
    #[serde(flatten)]
    pub record: HealthRecord,
    /// What a down real server undergoes.
    pub on_failure: OnFailure,
    /// Down after `retry + 1` failed checks in a row.
    pub retry: u32,
    /// Up again after `rise` successful checks in a row.
    pub rise: u32,
    /// The weight it has while up: its configured one, or the last one
    /// `rvsadm -e` gave it (which waits, while it is down, for it to be up).
    pub weight: u32,
}

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`).
///
/// A field left out when deserialising takes its default, so that a
/// configuration file can set one timeout alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults: 15 minutes established, 2 minutes FIN_WAIT, 5 minutes UDP.
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "scheduler '{0}' is unknown (known: rr wrr lc wlc sed nq lblc lblcr dh sh fo ovf twos mh)"
    )]
    UnknownScheduler(String),
    #[error("invalid address '{0}': expected IP:port, [IPv6]:port")]
    BadSocketAddress(String),
    #[error("invalid address '{0}'")]
    BadAddress(String),
    #[error(
        "\"{0}\" is not a scheduler flag (known: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3)"
    )]
    UnknownSchedulerFlag(String),
    #[error("scheduler flag \"{flag}\" needs scheduler {required}, not {scheduler}")]
    IncompatibleSchedulerFlag {
        flag: &'static str,
        required: SchedulerName,
        scheduler: SchedulerName,
    },
}

/// Parses `IP:port` or `[IPv6]:port` as ipvsadm's `-t`/`-r` take them; with
/// `default_port`, a bare address is accepted too (ipvsadm's `-r RIP`).
pub fn parse_socket_addr(text: &str, default_port: Option<u16>) -> Result<SocketAddr, ModelError> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    match (text.parse::<IpAddr>(), default_port) {
        (Ok(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
        _ => {
            let unbracketed = text.trim_start_matches('[').trim_end_matches(']');
            match (unbracketed.parse::<IpAddr>(), default_port) {
                (Ok(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
                _ => Err(ModelError::BadSocketAddress(text.to_owned())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_names_round_trip() {
        for name in SchedulerName::ALL {
            assert_eq!(name.as_str().parse::<SchedulerName>().unwrap(), name);
        }
        assert!("bogus".parse::<SchedulerName>().is_err());
    }

    #[test]
    fn socket_addresses_parse_like_ipvsadm() {
        assert_eq!(
            parse_socket_addr("198.18.0.10:80", None).unwrap(),
            "198.18.0.10:80".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("[fd00::10]:443", None).unwrap(),
            "[fd00::10]:443".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("198.18.1.11", Some(80)).unwrap(),
            "198.18.1.11:80".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("[fd00::11]", Some(80)).unwrap(),
            "[fd00::11]:80".parse().unwrap()
        );
        assert!(parse_socket_addr("198.18.1.11", None).is_err());
        assert!(parse_socket_addr("198.18.1.300:80", None).is_err());
    }

    #[test]
    fn scheduler_flags_follow_ipvsadm() {
        assert_eq!(
            SchedulerFlag::parse("sh-port", SchedulerName::Sh)
                .unwrap()
                .bit,
            2
        );
        assert_eq!(
            SchedulerFlag::parse("flag-3", SchedulerName::Rr)
                .unwrap()
                .bit,
            3
        );
        assert!(matches!(
            SchedulerFlag::parse("mh-port", SchedulerName::Sh),
            Err(ModelError::IncompatibleSchedulerFlag { .. })
        ));
        assert!(matches!(
            SchedulerFlag::parse("fast", SchedulerName::Sh),
            Err(ModelError::UnknownSchedulerFlag(_))
        ));
        assert_eq!(
            SchedulerFlag::canonical(1, SchedulerName::Mh).unwrap().name,
            "mh-fallback"
        );
        assert_eq!(
            SchedulerFlag::canonical(1, SchedulerName::Wlc)
                .unwrap()
                .name,
            "flag-1"
        );
        assert_eq!(
            SchedulerFlag::canonical(3, SchedulerName::Sh).unwrap().name,
            "flag-3"
        );
    }

    #[test]
    fn timeouts_take_defaults_field_by_field() {
        let timeouts: Timeouts = serde_json::from_str(r#"{"tcp":60}"#).unwrap();
        assert_eq!(
            timeouts,
            Timeouts {
                tcp: 60,
                ..Timeouts::default()
            }
        );
    }

    #[test]
    fn real_server_defaults_follow_ipvsadm() {
        let spec: RealServerSpec = serde_json::from_str(r#"{"address":"198.18.1.11:80"}"#).unwrap();
        assert_eq!(spec.weight, 1);
        assert_eq!(spec.forward, ForwardMethod::Route);
    }
}
