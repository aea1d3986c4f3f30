//! rvsd's TOML configuration and its validation.
//!
//! The file is read in two steps. serde turns the text into [`Config`]:
//! syntax errors, unknown keys (every table denies them) and wrong types
//! stop there, with toml's own message, which names the key, line and
//! column. Then [`Config::validate`] checks every value and every rule that
//! ties values together, and reports each problem with the path of the
//! field it concerns, for example
//! `services[1].real_servers[0].weight: 70000 is above the maximum 65535`.
//! A file with any problem is refused whole: rvsd applies nothing from it.
//!
//! `rvs.example.toml` at the repository root documents every key; a test
//! below keeps it valid.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::model::{
    ForwardMethod, MAX_WEIGHT, Persistence, Protocol, RealServerSpec, SchedulerFlag, SchedulerName,
    ServiceKey, ServiceSpec, Timeouts,
};
use crate::protocol;

pub use crate::model::OnFailure;

/// The whole configuration of rvsd.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[eal]`: arguments for `rte_eal_init`.
    pub eal: EalConfig,
    /// `[dataplane]`: sizes and polling behaviour of the workers.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// `[control]`: the control socket.
    #[serde(default)]
    pub control: ControlConfig,
    /// `[timeouts]`: connection idle timeouts, as `ipvsadm --set`.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// `[[ports]]`: the NICs rvsd drives, with the director's addresses.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// `[[routes]]`: static routes through gateways on connected subnets.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[[neighbours]]`: static ARP entries, used without resolution.
    #[serde(default)]
    pub neighbours: Vec<NeighbourConfig>,
    /// `[fullnat]`: local addresses of FULLNAT services.
    #[serde(default)]
    pub fullnat: FullnatConfig,
    /// `[[services]]`: virtual services and their real servers.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// `[metrics]`: the Prometheus endpoint, off unless given.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// `[metrics]`: where rvsd serves `GET /metrics` (Prometheus text format)
/// from the director host's own network stack.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// For example `127.0.0.1:9100`.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Passed to `rte_eal_init` as they are, before the port devices.
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// Number of workers; `None`: one per EAL worker lcore.
    pub workers: Option<u32>,
    /// Mbufs in the packet pool.
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    pub mbuf_cache: u32,
    /// Receive ring size of every queue.
    pub rx_descriptors: u16,
    /// Transmit ring size of every queue.
    pub tx_descriptors: u16,
    /// Connection table entries of each worker, IPv4.
    pub connections_per_worker: u32,
    /// Connection table entries of each worker, IPv6.
    pub ipv6_connections_per_worker: u32,
    /// Persistence templates (one per client network and persistent
    /// service), shared by all workers.
    pub persistence_templates: u32,
    /// 0: poll without pause (production). Otherwise a worker sleeps this
    /// many microseconds after `idle_polls` empty polls in a row, which
    /// leaves CPU to others on small shared machines and in tests.
    pub idle_sleep_us: u32,
    /// Empty polls in a row before a worker sleeps (see `idle_sleep_us`).
    pub idle_polls: u32,
    /// Seconds an ARP/ND entry stays valid without confirmation.
    pub neighbour_timeout: u32,
    /// Bytes of an mbuf's data room, headroom (128) included: frames must
    /// fit in one mbuf, and smaller mbufs let a pool hold more frames.
    pub mbuf_data_room: u16,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: None,
            mbufs: 16383,
            mbuf_cache: 256,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            connections_per_worker: 1 << 20,
            ipv6_connections_per_worker: 1 << 18,
            persistence_templates: 1 << 18,
            idle_sleep_us: 0,
            idle_polls: 10_000,
            neighbour_timeout: 300,
            mbuf_data_room: 2176,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Path of the control socket that `rvsadm` talks to.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(protocol::DEFAULT_SOCKET),
        }
    }
}

/// A NIC, or a DPDK virtual device, that rvsd drives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used in routes and logs: `[a-zA-Z0-9_-]{1,32}`, unique.
    pub name: String,
    /// A PCI address (`0000:03:00.0`, given to EAL with `-a`) or a vdev
    /// spec (`net_af_packet0,iface=eth1`, given with `--vdev`).
    pub device: String,
    /// The director's own addresses on this port with their subnets
    /// (`198.18.1.1/24`); unique across ports.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// MTU to set; `None` leaves the device's.
    pub mtu: Option<u16>,
    /// The name of the port's kernel twin, its exception path: a TAP
    /// interface rvsd creates (net_tap) with the port's MAC address, its
    /// MTU and its `addresses`, through which the host's own traffic
    /// (ping, ssh, health checks, the metrics endpoint) goes in and out of
    /// the port. `None`: no exception path; what is for the host is
    /// dropped and counted as `no_exception_path`.
    pub kernel_interface: Option<String>,
}

impl PortConfig {
    /// The device name EAL knows: the PCI address, or the vdev name before
    /// the first `,`.
    pub fn dpdk_name(&self) -> &str {
        self.device
            .split_once(',')
            .map_or(self.device.as_str(), |(name, _)| name)
    }

    /// Whether `device` is a PCI address (`DDDD:BB:DD.F`, hexadecimal).
    pub fn is_pci(&self) -> bool {
        is_pci_address(&self.device)
    }

    /// The name EAL knows the kernel twin of port number `index` by (a
    /// net_tap vdev), when the port has one.
    pub fn kernel_twin_name(&self, index: usize) -> Option<String> {
        self.kernel_interface
            .as_ref()
            .map(|_| format!("net_tap_rvs{index}"))
    }
}

/// A static route: `destination` is reached through `gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub destination: IpNet,
    /// Must lie in a connected subnet (of `port` when given).
    pub gateway: IpAddr,
    /// The port the gateway is reached through; `None`: the port whose
    /// subnet holds the gateway.
    pub port: Option<String>,
}

/// FULLNAT's settings shared by every service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullnatConfig {
    /// Local addresses (LIPs), IPv4 and IPv6: the source towards real
    /// servers of services that give none of their own. Each must lie in
    /// a subnet of a port; rvsd answers ARP/ND for them.
    #[serde(default)]
    pub local_addresses: Vec<IpAddr>,
}

impl Config {
    /// The index of the port `route` leaves by: the named one, or the one
    /// whose subnet holds the gateway.
    pub fn route_port(&self, route: &RouteConfig) -> Option<usize> {
        self.ports.iter().position(|port| match &route.port {
            Some(name) => port.name == *name,
            None => port
                .addresses
                .iter()
                .any(|net| net.contains(&route.gateway)),
        })
    }

    /// The local addresses of `service`'s family that FULLNAT uses for it.
    pub fn local_addresses_for(&self, service: &ServiceSpec) -> Vec<IpAddr> {
        let own = &service.local_addresses;
        let chosen = if own.is_empty() {
            &self.fullnat.local_addresses
        } else {
            own
        };
        chosen
            .iter()
            .copied()
            .filter(|address| address.is_ipv4() == service.address.is_ipv4())
            .collect()
    }
}

/// A static neighbour: `address` is at `mac` on `port`, without ARP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    pub address: IpAddr,
    /// `aa:bb:cc:dd:ee:ff`, a unicast address.
    pub mac: String,
    /// The port the neighbour is on; its subnet must hold `address`.
    pub port: String,
}

impl NeighbourConfig {
    /// The MAC address's bytes, if it is well formed.
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        let mut bytes = [0u8; 6];
        let mut parts = self.mac.split(':');
        for byte in &mut bytes {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(bytes)
    }
}

/// A virtual service with its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub protocol: Protocol,
    /// VIP and virtual port.
    pub address: SocketAddr,
    #[serde(default)]
    pub scheduler: SchedulerName,
    /// ipvsadm's `-b` flags: sh-fallback, sh-port, mh-fallback, mh-port,
    /// flag-1, flag-2, flag-3.
    #[serde(default)]
    pub scheduler_flags: Vec<String>,
    /// `{ timeout = 300, netmask = 32 }`, as `-p 300 -M 255.255.255.255`.
    pub persistence: Option<Persistence>,
    /// FULLNAT local addresses for this service; default: `[fullnat]`'s.
    #[serde(default)]
    pub local_addresses: Vec<IpAddr>,
    #[serde(default)]
    pub real_servers: Vec<RealServerConfig>,
    /// `[services.health_check]`: how every real server of the service is
    /// to be checked, but for those with a check of their own. Optional.
    pub health_check: Option<HealthCheckConfig>,
}

/// A `[[services.real_servers]]` entry: the real server as `rvsadm -a`
/// would give it, and optionally a health check of its own, which
/// replaces the service's for it (keepalived gives each `real_server` its
/// own checkers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RealServerTable")]
pub struct RealServerConfig {
    pub spec: RealServerSpec,
    pub health_check: Option<HealthCheckConfig>,
}

/// The entry as written: the spec's fields beside `health_check`, every
/// other key refused. Spelled out rather than a flattened
/// `RealServerSpec`, since serde's `flatten` cannot refuse unknown keys
/// (a misspelt `wieght` would pass).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RealServerTable {
    address: SocketAddr,
    #[serde(default = "RealServerSpec::default_weight")]
    weight: u32,
    #[serde(default)]
    forward: ForwardMethod,
    #[serde(default)]
    upper_threshold: u32,
    #[serde(default)]
    lower_threshold: u32,
    health_check: Option<HealthCheckConfig>,
}

impl From<RealServerTable> for RealServerConfig {
    fn from(table: RealServerTable) -> RealServerConfig {
        RealServerConfig {
            spec: RealServerSpec {
                address: table.address,
                weight: table.weight,
                forward: table.forward,
                upper_threshold: table.upper_threshold,
                lower_threshold: table.lower_threshold,
            },
            health_check: table.health_check,
        }
    }
}

/// A health check of a service's real servers, as keepalived's checkers
/// (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`) describe them.
///
/// rvsd runs them (see `daemon::health`): a real server that fails its
/// check `retry + 1` times in a row is down, and inhibited (weight 0) or
/// removed from the service as `on_failure` says, until `rise` checks in
/// a row succeed. Times are in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    pub kind: HealthCheckKind,
    /// tcp, http, https: the port to connect to on each real server;
    /// `None`: the real server's own port.
    pub port: Option<u16>,
    /// http, https (required there): the path of the GET request.
    pub path: Option<String>,
    /// http, https: the status code that means up; `None`: any 2xx.
    pub status: Option<u16>,
    /// http, https: the `Host` header (keepalived's `virtualhost`), and
    /// for https the TLS server name (SNI) when it is a DNS name; `None`:
    /// the checked address, and no SNI.
    pub virtualhost: Option<String>,
    /// http, https: the MD5 of the response body, 32 hex digits as
    /// keepalived's genhash prints them (lowercased here, so that a change
    /// of case is no change of check); `None`: the body is not read.
    #[serde(default, deserialize_with = "HealthCheckConfig::lowercase")]
    pub digest: Option<String>,
    /// How long a connection (tcp, http, https) or the command (misc) may
    /// take before the check counts as failed.
    #[serde(default = "HealthCheckConfig::default_connect_timeout")]
    pub connect_timeout: u32,
    /// Interval between two checks of a real server.
    #[serde(default = "HealthCheckConfig::default_delay_loop")]
    pub delay_loop: u32,
    /// Checks repeated after a failure before the real server is down:
    /// down after `retry + 1` failures in a row (keepalived's `retry`).
    #[serde(default = "HealthCheckConfig::default_retry")]
    pub retry: u32,
    /// Interval between those repeated checks (keepalived's
    /// `delay_before_retry`).
    #[serde(default = "HealthCheckConfig::default_retry_delay")]
    pub retry_delay: u32,
    /// Successful checks in a row before a down real server is up again.
    #[serde(default = "HealthCheckConfig::default_rise")]
    pub rise: u32,
    /// What happens to a real server that is down.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// misc (required there): the command line to run, the real server's
    /// health being its exit status (0 up, anything else down).
    pub command: Option<String>,
}

impl HealthCheckConfig {
    /// keepalived's defaults, so that an imported keepalived.conf keeps its
    /// meaning.
    pub const DEFAULT_CONNECT_TIMEOUT: u32 = 5;
    pub const DEFAULT_DELAY_LOOP: u32 = 60;
    pub const DEFAULT_RETRY: u32 = 1;
    pub const DEFAULT_RETRY_DELAY: u32 = 1;
    pub const DEFAULT_RISE: u32 = 1;

    fn default_connect_timeout() -> u32 {
        Self::DEFAULT_CONNECT_TIMEOUT
    }
    fn default_delay_loop() -> u32 {
        Self::DEFAULT_DELAY_LOOP
    }
    fn default_retry() -> u32 {
        Self::DEFAULT_RETRY
    }
    fn default_retry_delay() -> u32 {
        Self::DEFAULT_RETRY_DELAY
    }
    fn default_rise() -> u32 {
        Self::DEFAULT_RISE
    }

    fn lowercase<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        Ok(text.map(|text| text.to_ascii_lowercase()))
    }

    /// What is wrong with `virtualhost` as a `Host` header, if anything.
    pub fn virtualhost_problem(virtualhost: &str) -> Option<String> {
        if virtualhost.is_empty() {
            Some("must not be empty: leave virtualhost out to send the checked address".into())
        } else if !virtualhost.bytes().all(|byte| byte.is_ascii_graphic()) {
            // A line end would end the header (and start another); a
            // name beyond ASCII goes in its xn-- form.
            Some(format!(
                "{virtualhost:?} is not a host name: visible ASCII only, no white space"
            ))
        } else {
            None
        }
    }

    /// What is wrong with `digest` as an MD5 in hex, if anything.
    pub fn digest_problem(digest: &str) -> Option<String> {
        if digest.len() == 32 && digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            None
        } else {
            Some(format!(
                "\"{digest}\" is not an MD5 digest: 32 hex digits, as genhash prints them"
            ))
        }
    }
}

/// What a health check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// A TCP connection that opens (`TCP_CHECK`).
    Tcp,
    /// An HTTP GET answered with the expected status (`HTTP_GET`).
    Http,
    /// The same over TLS (`SSL_GET`).
    Https,
    /// A command that exits 0 (`MISC_CHECK`).
    Misc,
}

impl HealthCheckKind {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http => "http",
            HealthCheckKind::Https => "https",
            HealthCheckKind::Misc => "misc",
        }
    }

    fn is_http(self) -> bool {
        matches!(self, HealthCheckKind::Http | HealthCheckKind::Https)
    }
}

impl ServiceConfig {
    /// The service definition without its real servers.
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            protocol: self.protocol,
            address: self.address,
            scheduler: self.scheduler,
            scheduler_flags: self.scheduler_flags.clone(),
            persistence: self.persistence,
            local_addresses: self.local_addresses.clone(),
        }
    }

    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            address: self.address,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type: toml's own message.
    #[error("{}{message}", file_prefix(file.as_deref()))]
    Syntax {
        file: Option<PathBuf>,
        message: String,
    },
    /// Values that break the rules; one line per problem.
    #[error("{}", invalid_lines(file.as_deref(), problems))]
    Invalid {
        file: Option<PathBuf>,
        problems: Vec<FieldError>,
    },
}

impl ConfigError {
    fn in_file(self, path: &Path) -> ConfigError {
        match self {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                file: Some(path.to_owned()),
                message,
            },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                file: Some(path.to_owned()),
                problems,
            },
            read @ ConfigError::Read { .. } => read,
        }
    }
}

/// One broken rule: the field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// For example `services[1].real_servers[0].weight`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Parses and validates a configuration.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|error| ConfigError::Syntax {
        file: None,
        message: error.to_string(),
    })?;
    config.validate()?;
    Ok(config)
}

/// Reads, parses and validates a configuration file; errors name the file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|error| error.in_file(path))
}

/// Largest persistence and connection timeout: one year.
pub const MAX_TIMEOUT: u32 = 31_536_000;

/// DPDK's default `RTE_MAX_LCORE`.
const MAX_WORKERS: u64 = 128;

impl Config {
    /// The arguments for `rte_eal_init`: `eal.args`, then each port's
    /// device in port order (`-a PCI` or `--vdev=SPEC`).
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        for port in &self.ports {
            if port.is_pci() {
                args.push("-a".to_owned());
                args.push(port.device.clone());
            } else {
                args.push(format!("--vdev={}", port.device));
            }
        }
        for (i, port) in self.ports.iter().enumerate() {
            if let (Some(twin), Some(interface)) =
                (port.kernel_twin_name(i), &port.kernel_interface)
            {
                args.push(format!("--vdev={twin},iface={interface}"));
            }
        }
        args
    }

    /// The port that owns `address` as one of the director's addresses.
    pub fn port_owning(&self, address: IpAddr) -> Option<&PortConfig> {
        port_owning(&self.ports, address)
    }

    /// Checks every rule; the error lists every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.check_limits(&mut problems);
        self.check_eal(&mut problems);
        self.check_ports(&mut problems);
        self.check_routes(&mut problems);
        self.check_neighbours(&mut problems);
        for (i, &address) in self.fullnat.local_addresses.iter().enumerate() {
            if let Some(problem) = local_address_problem(address, &self.ports) {
                problems.add(format_args!("fullnat.local_addresses[{i}]"), problem);
            }
        }
        self.check_services(&mut problems);
        if let Some(metrics) = &self.metrics {
            if metrics.listen.port() == 0 {
                problems.add(format_args!("metrics.listen"), "give a port, not 0");
            } else if metrics.listen.ip().is_multicast() {
                problems.add(
                    format_args!("metrics.listen"),
                    "must not be a multicast address",
                );
            }
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: None,
                problems: problems.0,
            })
        }
    }

    fn check_limits(&self, problems: &mut Problems) {
        for (path, value, min, max) in LIMITS {
            if let Some(value) = value(self) {
                problems.range(path, value, min, max);
            }
        }
        for (path, value) in [
            ("dataplane.rx_descriptors", self.dataplane.rx_descriptors),
            ("dataplane.tx_descriptors", self.dataplane.tx_descriptors),
        ] {
            if !value.is_power_of_two() {
                problems.add(path, format_args!("{value} is not a power of two"));
            }
        }
    }

    fn check_eal(&self, problems: &mut Problems) {
        if self.eal.args.is_empty() {
            problems.add(
                "eal.args",
                "must not be empty: give at least the lcores, e.g. [\"-l\", \"0-1\"]",
            );
        }
        for (i, arg) in self.eal.args.iter().enumerate() {
            if DEVICE_ARGS
                .iter()
                .any(|device| arg == device || arg.starts_with(&format!("{device}=")))
            {
                problems.add(
                    format_args!("eal.args[{i}]"),
                    format_args!("\"{arg}\" is not allowed here: devices come from [[ports]], and rvsd adds -a or --vdev for each"),
                );
            }
        }
    }

    fn check_ports(&self, problems: &mut Problems) {
        if self.ports.is_empty() {
            problems.add("ports", "at least one [[ports]] entry is needed");
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut devices: HashMap<&str, &str> = HashMap::new();
        let mut addresses: HashMap<IpAddr, &str> = HashMap::new();
        let mut interfaces: HashMap<&str, &str> = HashMap::new();
        for (i, port) in self.ports.iter().enumerate() {
            let at = format!("ports[{i}]");
            if !is_port_name(&port.name) {
                problems.add(
                    format_args!("{at}.name"),
                    format_args!("\"{}\" is not 1 to 32 of a-z A-Z 0-9 _ -", port.name),
                );
            } else if let Some(first) = names.insert(&port.name, i) {
                problems.add(
                    format_args!("{at}.name"),
                    format_args!("\"{}\" is also the name of ports[{first}]", port.name),
                );
            }
            check_device(port, &format!("{at}.device"), problems);
            if let Some(other) = devices.insert(port.dpdk_name(), &port.name) {
                problems.add(
                    format_args!("{at}.device"),
                    format_args!(
                        "{} is also the device of port \"{other}\"",
                        port.dpdk_name()
                    ),
                );
            }
            for (j, net) in port.addresses.iter().enumerate() {
                let path = format!("{at}.addresses[{j}]");
                if let Some(problem) = host_address_problem(net) {
                    problems.add(&path, format_args!("{net} {problem}"));
                }
                if let Some(other) = addresses.insert(net.addr(), &port.name) {
                    problems.add(
                        &path,
                        format_args!("{net} is also an address of port \"{other}\""),
                    );
                    continue;
                }
                let overlapping = self.ports[..i].iter().find_map(|earlier| {
                    earlier
                        .addresses
                        .iter()
                        .find(|theirs| subnets_overlap(net, theirs))
                        .map(|theirs| (earlier, theirs))
                });
                if let Some((earlier, theirs)) = overlapping {
                    problems.add(
                        &path,
                        format_args!(
                            "{net} overlaps the subnet of port \"{}\" ({theirs}); each subnet belongs to one port",
                            earlier.name
                        ),
                    );
                }
            }
            if let Some(interface) = &port.kernel_interface {
                if !is_interface_name(interface) {
                    problems.add(
                        format_args!("{at}.kernel_interface"),
                        format_args!(
                            "\"{interface}\" is not 1 to 15 of a-z A-Z 0-9 _ - . (a Linux interface name)"
                        ),
                    );
                } else if let Some(other) = interfaces.insert(interface, &port.name) {
                    problems.add(
                        format_args!("{at}.kernel_interface"),
                        format_args!(
                            "\"{interface}\" is also the kernel interface of port \"{other}\""
                        ),
                    );
                }
            }
            if let Some(mtu) = port.mtu {
                problems.range(&format!("{at}.mtu"), mtu.into(), 68, 9600);
                if mtu < 1280 && port.addresses.iter().any(|net| net.addr().is_ipv6()) {
                    problems.add(
                        format_args!("{at}.mtu"),
                        format_args!("{mtu} is below 1280, the minimum for IPv6, and the port has IPv6 addresses"),
                    );
                }
            }
        }
    }

    fn check_routes(&self, problems: &mut Problems) {
        let mut destinations: HashMap<IpNet, usize> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            let destination = route.destination;
            if destination != destination.trunc() {
                problems.add(
                    format_args!("{at}.destination"),
                    format_args!(
                        "{destination} has host bits set (did you mean {}?)",
                        destination.trunc()
                    ),
                );
            } else if let Some(first) = destinations.insert(destination, i) {
                problems.add(
                    format_args!("{at}.destination"),
                    format_args!("{destination} is also the destination of routes[{first}]"),
                );
            }
            let gateway = route.gateway;
            if gateway.is_ipv4() != destination.addr().is_ipv4() {
                problems.add(
                    format_args!("{at}.gateway"),
                    format_args!(
                        "{gateway} is {} but the destination {destination} is {}",
                        family(gateway),
                        family(destination.addr())
                    ),
                );
                continue;
            }
            let candidates: Vec<&PortConfig> = match &route.port {
                Some(name) => match self.ports.iter().find(|port| &port.name == name) {
                    Some(port) => vec![port],
                    None => {
                        problems.add(
                            format_args!("{at}.port"),
                            format_args!("there is no port named \"{name}\""),
                        );
                        continue;
                    }
                },
                None => self.ports.iter().collect(),
            };
            if let Some(owner) = self.port_owning(gateway) {
                problems.add(
                    format_args!("{at}.gateway"),
                    format_args!(
                        "{gateway} is an address of this director (port \"{}\")",
                        owner.name
                    ),
                );
            } else if !candidates
                .iter()
                .any(|port| port.addresses.iter().any(|net| net.contains(&gateway)))
            {
                let which = match &route.port {
                    Some(name) => format!("port \"{name}\""),
                    None => "any port".to_owned(),
                };
                problems.add(
                    format_args!("{at}.gateway"),
                    format_args!("{gateway} is not in a connected subnet of {which}"),
                );
            }
        }
    }

    fn check_neighbours(&self, problems: &mut Problems) {
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        for (i, neighbour) in self.neighbours.iter().enumerate() {
            let at = format!("neighbours[{i}]");
            match neighbour.mac_bytes() {
                None => problems.add(
                    format_args!("{at}.mac"),
                    format_args!(
                        "\"{}\" is not a MAC address (aa:bb:cc:dd:ee:ff)",
                        neighbour.mac
                    ),
                ),
                Some(mac) if mac[0] & 1 == 1 || mac == [0; 6] => problems.add(
                    format_args!("{at}.mac"),
                    format_args!("{} is not a unicast address", neighbour.mac),
                ),
                Some(_) => {}
            }
            let address = neighbour.address;
            if let Some(first) = seen.insert(address, i) {
                problems.add(&at, format_args!("{address} is also neighbours[{first}]"));
            }
            match self.ports.iter().find(|port| port.name == neighbour.port) {
                None => problems.add(
                    format_args!("{at}.port"),
                    format_args!("there is no port named \"{}\"", neighbour.port),
                ),
                Some(port) if !port.addresses.iter().any(|net| net.contains(&address)) => {
                    problems.add(
                        format_args!("{at}.address"),
                        format_args!(
                            "{address} is not in a subnet of port \"{}\"",
                            neighbour.port
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn check_services(&self, problems: &mut Problems) {
        let mut keys: HashMap<ServiceKey, usize> = HashMap::new();
        for (i, service) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            let key = service.key();
            if let Some(first) = keys.insert(key, i) {
                problems.add(&at, format_args!("duplicate of services[{first}] ({key})"));
            }
            let spec = service.spec();
            problems.extend_under(&at, service_problems(&spec, &self.ports));
            let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
            for (j, real) in service.real_servers.iter().enumerate() {
                let at = format!("{at}.real_servers[{j}]");
                let address = real.spec.address;
                if let Some(first) = seen.insert(address, j) {
                    problems.add(
                        &at,
                        format_args!("duplicate of real_servers[{first}] ({address})"),
                    );
                }
                problems.extend_under(&at, real_server_problems(&spec, &real.spec, &self.ports));
                if let Some(check) = &real.health_check {
                    let at = format!("{at}.health_check");
                    problems.extend_under(&at, health_check_problems(check));
                    every_port_check_problem(&spec, check, &at, problems);
                }
            }
            if let Some(check) = &service.health_check {
                let at = format!("{at}.health_check");
                problems.extend_under(&at, health_check_problems(check));
                every_port_check_problem(&spec, check, &at, problems);
            }
        }
    }
}

/// A check that connects to the real server's own port cannot check the
/// real servers of a service of every port: theirs is 0.
fn every_port_check_problem(
    service: &ServiceSpec,
    check: &HealthCheckConfig,
    at: &str,
    problems: &mut Problems,
) {
    if service.address.port() == 0 && check.kind != HealthCheckKind::Misc && check.port.is_none() {
        problems.add(
            format_args!("{at}.port"),
            "the real servers of a service of every port (port 0) have no port of their own: give the port to check",
        );
    }
}

/// The rules of a health check on its own; paths are relative to it
/// (`path`, `delay_loop`).
pub fn health_check_problems(check: &HealthCheckConfig) -> Vec<FieldError> {
    let mut problems = Problems::default();
    let kind = check.kind.as_str();
    if check.port == Some(0) {
        problems.add(
            "port",
            "0 is not a port: leave port out to check the real server's own port",
        );
    }
    if check.kind == HealthCheckKind::Misc {
        if check.port.is_some() {
            problems.add(
                "port",
                "only kind = \"tcp\", \"http\" and \"https\" take it, not \"misc\"",
            );
        }
        match check.command.as_deref().map(str::trim) {
            None => problems.add("command", "kind = \"misc\" needs the command to run"),
            Some("") => problems.add("command", "must not be empty"),
            Some(_) => {}
        }
    } else if check.command.is_some() {
        problems.add(
            "command",
            format_args!("only kind = \"misc\" takes it, not \"{kind}\""),
        );
    }
    if check.kind.is_http() {
        match check.path.as_deref() {
            None => problems.add(
                "path",
                format_args!("kind = \"{kind}\" needs the path to request, e.g. \"/\""),
            ),
            Some(path) if !path.starts_with('/') => {
                problems.add("path", format_args!("\"{path}\" does not start with /"));
            }
            Some(path) if path.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                problems.add(
                    "path",
                    format_args!("{path:?} contains white space or control characters"),
                );
            }
            Some(_) => {}
        }
        if let Some(status) = check.status {
            problems.range("status", status.into(), 100, 599);
        }
        let virtualhost = check.virtualhost.as_deref();
        if let Some(problem) = virtualhost.and_then(HealthCheckConfig::virtualhost_problem) {
            problems.add("virtualhost", problem);
        }
        if let Some(problem) = check
            .digest
            .as_deref()
            .and_then(HealthCheckConfig::digest_problem)
        {
            problems.add("digest", problem);
        }
    } else {
        for (field, given) in [
            ("path", check.path.is_some()),
            ("status", check.status.is_some()),
            ("virtualhost", check.virtualhost.is_some()),
            ("digest", check.digest.is_some()),
        ] {
            if given {
                problems.add(
                    field,
                    format_args!("only kind = \"http\" and \"https\" take it, not \"{kind}\""),
                );
            }
        }
    }
    problems.range("connect_timeout", check.connect_timeout.into(), 1, 3600);
    problems.range("delay_loop", check.delay_loop.into(), 1, 86_400);
    problems.range("retry", check.retry.into(), 0, 100);
    problems.range("retry_delay", check.retry_delay.into(), 0, 86_400);
    problems.range("rise", check.rise.into(), 1, 100);
    problems.0
}

/// The rules of one service definition on its own, which rvsd also
/// applies to services that rvsadm adds or edits. Paths are relative to
/// the service: `address`, `scheduler_flags[0]`, `persistence.timeout`.
pub fn service_problems(spec: &ServiceSpec, ports: &[PortConfig]) -> Vec<FieldError> {
    let mut problems = Problems::default();
    let vip = spec.address;
    if let Some(problem) = endpoint_problem(vip) {
        problems.add("address", problem);
    } else if vip.port() == 0 && spec.persistence.is_none() {
        // As ipvsadm: without persistence, the ports of one client would
        // spread over the real servers, which is what port 0 is there to
        // prevent.
        problems.add(
            "address",
            "port 0 (every port) is only for a persistent service: set persistence (ipvsadm -p), or give the port",
        );
    } else if let Some(owner) = port_owning(ports, vip.ip()) {
        problems.add(
            "address",
            format_args!(
                "{} is an address of port \"{}\", the director's own; a VIP must be an address of its own",
                vip.ip(),
                owner.name
            ),
        );
    }
    let mut bits: HashMap<u8, &str> = HashMap::new();
    for (k, name) in spec.scheduler_flags.iter().enumerate() {
        let path = format!("scheduler_flags[{k}]");
        match SchedulerFlag::parse(name, spec.scheduler) {
            Err(error) => problems.add(&path, error),
            Ok(flag) => {
                if let Some(other) = bits.insert(flag.bit, name) {
                    problems.add(&path, format_args!("\"{name}\" repeats \"{other}\""));
                }
            }
        }
    }
    for (i, &address) in spec.local_addresses.iter().enumerate() {
        let path = format!("local_addresses[{i}]");
        if address.is_ipv4() != vip.is_ipv4() {
            problems.add(
                &path,
                format_args!(
                    "{address} is {} but the VIP is {}",
                    family(address),
                    family(vip.ip())
                ),
            );
        } else if let Some(problem) = local_address_problem(address, ports) {
            problems.add(&path, problem);
        }
    }
    if let Some(persistence) = &spec.persistence {
        let host_prefix = if vip.is_ipv4() { 32 } else { 128 };
        problems.range(
            "persistence.timeout",
            persistence.timeout.into(),
            1,
            MAX_TIMEOUT.into(),
        );
        problems.range(
            "persistence.netmask",
            persistence.netmask.into(),
            0,
            host_prefix,
        );
    }
    problems.0
}

/// The rules of one real server of `service` on its own (paths
/// `address`, `weight`, `lower_threshold`), which rvsd also applies to
/// real servers that rvsadm adds or edits.
pub fn real_server_problems(
    service: &ServiceSpec,
    real: &RealServerSpec,
    ports: &[PortConfig],
) -> Vec<FieldError> {
    let mut problems = Problems::default();
    let rip = real.address;
    if let Some(problem) = endpoint_problem(rip) {
        problems.add("address", problem);
    } else if let Some(problem) = real_port_problem(service.address.port(), rip.port()) {
        problems.add("address", problem);
    } else if rip.is_ipv4() != service.address.is_ipv4() {
        problems.add(
            "address",
            format_args!(
                "{} is {} but the service's VIP {} is {}",
                rip.ip(),
                family(rip.ip()),
                service.address.ip(),
                family(service.address.ip())
            ),
        );
    } else if let Some(owner) = port_owning(ports, rip.ip()) {
        problems.add(
            "address",
            format_args!(
                "{} is an address of this director (port \"{}\")",
                rip.ip(),
                owner.name
            ),
        );
    } else if !real.forward.allows_port_mapping() && rip.port() != service.address.port() {
        problems.add(
            "address",
            format_args!(
                "port {} differs from the service's port {}, but forward = \"{}\" cannot map ports (only masq and fullnat can)",
                rip.port(),
                service.address.port(),
                forward_key(real.forward)
            ),
        );
    } else if real.forward == ForwardMethod::Route && !is_connected(ports, rip.ip()) {
        problems.add(
            "address",
            format_args!(
                "{} is not in a connected subnet of any port, and forward = \"route\" needs the real server on the director's own segment",
                rip.ip()
            ),
        );
    }
    problems.range("weight", real.weight.into(), 0, MAX_WEIGHT.into());
    if real.upper_threshold > 0 && real.lower_threshold > real.upper_threshold {
        problems.add(
            "lower_threshold",
            format_args!(
                "{} is above upper_threshold {}",
                real.lower_threshold, real.upper_threshold
            ),
        );
    }
    problems.0
}

/// The port that has `address` as one of the director's own addresses.
fn port_owning(ports: &[PortConfig], address: IpAddr) -> Option<&PortConfig> {
    ports
        .iter()
        .find(|port| port.addresses.iter().any(|net| net.addr() == address))
}

/// Whether `address` lies in a connected subnet of some port.
fn is_connected(ports: &[PortConfig], address: IpAddr) -> bool {
    ports
        .iter()
        .flat_map(|port| &port.addresses)
        .any(|net| net.contains(&address))
}

/// What is wrong with a FULLNAT local address, if anything: it must be on
/// a port's subnet (the director answers ARP/ND for it there) and must not
/// be a port's own address (the host's connections use those).
fn local_address_problem(address: IpAddr, ports: &[PortConfig]) -> Option<String> {
    if let Some(owner) = port_owning(ports, address) {
        return Some(format!(
            "{address} is an address of port \"{}\"; give FULLNAT an address of its own on that subnet",
            owner.name
        ));
    }
    let connected = ports
        .iter()
        .flat_map(|port| &port.addresses)
        .any(|net| net.contains(&address));
    (!connected).then(|| format!("{address} is not in a subnet of any port"))
}

/// Fields with a fixed range: path, value (`None`: not set), min, max.
type Limit = (&'static str, fn(&Config) -> Option<u64>, u64, u64);

#[rustfmt::skip]
const LIMITS: [Limit; 15] = [
    ("dataplane.workers", |c| c.dataplane.workers.map(u64::from), 1, MAX_WORKERS),
    ("dataplane.mbufs", |c| Some(c.dataplane.mbufs.into()), 1023, 1 << 26),
    // RTE_MEMPOOL_CACHE_MAX_SIZE. DPDK also wants the cache at most
    // mbufs / 1.5, which the minimum of mbufs already ensures.
    ("dataplane.mbuf_cache", |c| Some(c.dataplane.mbuf_cache.into()), 0, 512),
    ("dataplane.rx_descriptors", |c| Some(c.dataplane.rx_descriptors.into()), 64, 16384),
    ("dataplane.tx_descriptors", |c| Some(c.dataplane.tx_descriptors.into()), 64, 16384),
    ("dataplane.connections_per_worker", |c| Some(c.dataplane.connections_per_worker.into()), 1024, 1 << 27),
    ("dataplane.ipv6_connections_per_worker", |c| Some(c.dataplane.ipv6_connections_per_worker.into()), 1024, 1 << 27),
    ("dataplane.persistence_templates", |c| Some(c.dataplane.persistence_templates.into()), 1024, 1 << 27),
    ("dataplane.idle_sleep_us", |c| Some(c.dataplane.idle_sleep_us.into()), 0, 100_000),
    ("dataplane.idle_polls", |c| Some(c.dataplane.idle_polls.into()), 1, 100_000_000),
    ("dataplane.neighbour_timeout", |c| Some(c.dataplane.neighbour_timeout.into()), 5, 86_400),
    ("dataplane.mbuf_data_room", |c| Some(c.dataplane.mbuf_data_room.into()), 256, 65_535),
    ("timeouts.tcp", |c| Some(c.timeouts.tcp.into()), 1, MAX_TIMEOUT as u64),
    ("timeouts.tcp_fin", |c| Some(c.timeouts.tcp_fin.into()), 1, MAX_TIMEOUT as u64),
    ("timeouts.udp", |c| Some(c.timeouts.udp.into()), 1, MAX_TIMEOUT as u64),
];

/// EAL options that name devices; `[[ports]]` is the one place for those.
const DEVICE_ARGS: [&str; 4] = ["-a", "--allow", "--vdev", "-w"];

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: impl fmt::Display, message: impl fmt::Display) {
        self.0.push(FieldError {
            path: path.to_string(),
            message: message.to_string(),
        });
    }

    /// Adds problems found in a part of the file, under that part's path.
    fn extend_under(&mut self, prefix: &str, problems: Vec<FieldError>) {
        self.0
            .extend(problems.into_iter().map(|problem| FieldError {
                path: format!("{prefix}.{}", problem.path),
                message: problem.message,
            }));
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64) {
        if value < min {
            self.add(path, format_args!("{value} is below the minimum {min}"));
        } else if value > max {
            self.add(path, format_args!("{value} is above the maximum {max}"));
        }
    }
}

fn check_device(port: &PortConfig, path: &str, problems: &mut Problems) {
    let device = &port.device;
    if device.trim().is_empty() {
        problems.add(path, "must not be empty: a PCI address such as \"0000:03:00.0\" or a vdev such as \"net_af_packet0,iface=eth1\"");
    } else if device.chars().any(char::is_whitespace) {
        problems.add(path, format_args!("\"{device}\" contains white space"));
    } else if !port.is_pci() && is_pci_address(&format!("0000:{device}")) {
        problems.add(
            path,
            format_args!(
                "\"{device}\" looks like a PCI address without its domain; write \"0000:{device}\""
            ),
        );
    } else if port.dpdk_name().is_empty() {
        problems.add(
            path,
            format_args!("\"{device}\" has no device name before its first ','"),
        );
    }
}

/// Why `net` cannot be one of the director's own addresses, if it cannot.
fn host_address_problem(net: &IpNet) -> Option<&'static str> {
    let address = net.addr();
    if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
        return Some("is not a unicast address");
    }
    if let IpNet::V4(v4) = net
        && v4.prefix_len() < 31
        && (v4.addr() == v4.network() || v4.addr() == v4.broadcast())
    {
        return Some("is the network or broadcast address of its subnet, not a host address");
    }
    None
}

/// Why a VIP or RIP is unusable, if it is.
fn endpoint_problem(address: SocketAddr) -> Option<String> {
    let ip = address.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        Some(format!("{ip} is not a unicast address"))
    } else {
        None
    }
}

/// Why a real server's port does not fit its service's: the real servers
/// of a service of every port (port 0) serve the port each client asks
/// for, so they have port 0, and only they. IPVS would take another port
/// there and ignore it; refusing says so.
fn real_port_problem(service_port: u16, port: u16) -> Option<String> {
    match (service_port, port) {
        (0, 0) => None,
        (0, port) => Some(format!(
            "port {port}: a real server of a service of every port (port 0) serves the port each client asks for; give port 0"
        )),
        (_, 0) => Some(
            "port 0 is only for the real servers of a service of every port (port 0): give the port"
                .to_owned(),
        ),
        _ => None,
    }
}

fn subnets_overlap(a: &IpNet, b: &IpNet) -> bool {
    let (a, b) = (a.trunc(), b.trunc());
    a.contains(&b) || b.contains(&a)
}

fn family(address: IpAddr) -> &'static str {
    if address.is_ipv4() { "IPv4" } else { "IPv6" }
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

fn is_port_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// What Linux accepts as an interface name (IFNAMSIZ less the NUL),
/// without the characters ip(8) would take for syntax.
fn is_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

/// `DDDD:BB:DD.F` in hexadecimal, the form EAL prints.
fn is_pci_address(text: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(domain), Some(bus), Some(rest), None) => match rest.split_once('.') {
            Some((device, function)) => {
                hex(domain, 4) && hex(bus, 2) && hex(device, 2) && hex(function, 1)
            }
            None => false,
        },
        _ => false,
    }
}

fn file_prefix(file: Option<&Path>) -> String {
    file.map(|path| format!("{}: ", path.display()))
        .unwrap_or_default()
}

fn invalid_lines(file: Option<&Path>, problems: &[FieldError]) -> String {
    let prefix = file_prefix(file);
    problems
        .iter()
        .map(|problem| format!("{prefix}{problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../rvs.example.toml");
    const PRODUCTION_EXAMPLE: &str = include_str!("../../rvs.production.example.toml");

    /// The smallest valid configuration; tests add one mistake each.
    const MINIMAL: &str = r#"
[eal]
args = ["-l", "0-1"]

[[ports]]
name = "wan"
device = "net_af_packet0,iface=veth-wan"
addresses = ["198.18.0.1/24"]

[[ports]]
name = "lan"
device = "0000:03:00.0"
addresses = ["198.18.1.1/24", "fd00:1::1/64"]

[[services]]
protocol = "tcp"
address = "198.18.0.10:80"
scheduler = "rr"

[[services.real_servers]]
address = "198.18.1.11:80"
forward = "masq"
"#;

    fn problems_of(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    /// Asserts that `text` is refused with exactly `expected`.
    fn refused(text: &str, expected: &str) {
        assert_eq!(problems_of(text), vec![expected.to_owned()], "for:\n{text}");
    }

    fn syntax_error(text: &str) -> String {
        match parse(text) {
            Err(error @ ConfigError::Syntax { .. }) => error.to_string(),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn the_example_parses() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.ports.len(), 2);
        assert_eq!(config.ports[0].name, "wan");
        assert_eq!(config.services.len(), 2);
        let service = &config.services[0];
        assert_eq!(service.address, "198.18.0.10:80".parse().unwrap());
        assert_eq!(service.scheduler, SchedulerName::Rr);
        let rips: Vec<SocketAddr> = service
            .real_servers
            .iter()
            .map(|real| real.spec.address)
            .collect();
        assert_eq!(
            rips,
            [
                "198.18.1.11:80".parse().unwrap(),
                "198.18.1.12:80".parse().unwrap()
            ]
        );
        assert!(
            service
                .real_servers
                .iter()
                .all(|real| real.spec.forward == ForwardMethod::Masq)
        );
        let ipv6 = &config.services[1];
        assert_eq!(
            config.local_addresses_for(&ipv6.spec()),
            ["fd00:1::100".parse::<IpAddr>().unwrap()]
        );
        assert!(
            ipv6.real_servers
                .iter()
                .all(|real| real.spec.forward == ForwardMethod::FullNat)
        );
    }

    #[test]
    fn the_production_example_parses() {
        let config = parse(PRODUCTION_EXAMPLE).unwrap();
        let ports: Vec<(&str, bool)> = config
            .ports
            .iter()
            .map(|port| (port.name.as_str(), port.is_pci()))
            .collect();
        assert_eq!(ports, [("wan", true), ("lan", true)]);
        assert!(!config.eal.args.iter().any(|arg| arg == "--no-huge"));
        assert_eq!(config.routes.len(), 3);
        let [dr, fullnat] = config.services.as_slice() else {
            panic!("two services expected: {:?}", config.services);
        };
        assert_eq!(dr.address, "203.0.113.10:443".parse().unwrap());
        assert_eq!(
            dr.persistence,
            Some(Persistence {
                timeout: 1800,
                netmask: 24
            })
        );
        assert!(
            dr.real_servers
                .iter()
                .all(|real| real.spec.forward == ForwardMethod::Route)
        );
        let check = dr.health_check.as_ref().unwrap();
        assert_eq!(
            (
                check.kind,
                check.path.as_deref(),
                check.status,
                check.on_failure
            ),
            (
                HealthCheckKind::Https,
                Some("/healthz"),
                Some(200),
                OnFailure::Remove
            )
        );
        assert_eq!(fullnat.scheduler, SchedulerName::Mh);
        assert!(
            fullnat
                .real_servers
                .iter()
                .all(|real| real.spec.forward == ForwardMethod::FullNat
                    && real.spec.address.port() == 8080)
        );
        assert_eq!(
            config.local_addresses_for(&fullnat.spec()),
            ["10.1.0.102".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn health_checks_take_keepalived_defaults() {
        let config = parse(&MINIMAL.replace(
            "scheduler = \"rr\"\n",
            "scheduler = \"rr\"\nhealth_check = { kind = \"tcp\" }\n",
        ))
        .unwrap();
        assert_eq!(
            config.services[0].health_check,
            Some(HealthCheckConfig {
                kind: HealthCheckKind::Tcp,
                port: None,
                path: None,
                status: None,
                virtualhost: None,
                digest: None,
                connect_timeout: 5,
                delay_loop: 60,
                retry: 1,
                retry_delay: 1,
                rise: 1,
                on_failure: OnFailure::Remove,
                command: None,
            })
        );
        assert!(parse(MINIMAL).unwrap().services[0].health_check.is_none());
    }

    #[test]
    fn health_checks_are_checked_with_their_field_paths() {
        let check = |table: &str| {
            MINIMAL.replace(
                "scheduler = \"rr\"\n",
                &format!("scheduler = \"rr\"\n[services.health_check]\n{table}\n"),
            )
        };
        for valid in [
            "kind = \"tcp\"\nport = 8080",
            "kind = \"http\"\npath = \"/health?full=1\"\nstatus = 204",
            "kind = \"https\"\npath = \"/\"\non_failure = \"inhibit\"",
            "kind = \"misc\"\ncommand = \"/usr/local/bin/check-db --quick\"\nretry = 0",
        ] {
            parse(&check(valid)).unwrap_or_else(|error| panic!("{valid}: {error}"));
        }
        let web = parse(&check(
            "kind = \"https\"\npath = \"/\"\nvirtualhost = \"www.example.com\"\ndigest = \"9B3A0C85A887A256D6939DA88AABD8CD\"",
        ))
        .unwrap();
        let web = web.services[0].health_check.as_ref().unwrap();
        assert_eq!(
            (web.virtualhost.as_deref(), web.digest.as_deref()),
            (
                Some("www.example.com"),
                Some("9b3a0c85a887a256d6939da88aabd8cd")
            ),
            "the digest is kept in lowercase"
        );
        let at = "services[0].health_check";
        let cases = [
            (
                "kind = \"http\"",
                format!("{at}.path: kind = \"http\" needs the path to request, e.g. \"/\""),
            ),
            (
                "kind = \"https\"\npath = \"health\"",
                format!("{at}.path: \"health\" does not start with /"),
            ),
            (
                "kind = \"http\"\npath = \"/a b\"",
                format!("{at}.path: \"/a b\" contains white space or control characters"),
            ),
            (
                "kind = \"http\"\npath = \"/\"\nstatus = 99",
                format!("{at}.status: 99 is below the minimum 100"),
            ),
            (
                "kind = \"tcp\"\nstatus = 200",
                format!("{at}.status: only kind = \"http\" and \"https\" take it, not \"tcp\""),
            ),
            (
                "kind = \"tcp\"\nvirtualhost = \"www.example.com\"",
                format!(
                    "{at}.virtualhost: only kind = \"http\" and \"https\" take it, not \"tcp\""
                ),
            ),
            (
                "kind = \"misc\"\ncommand = \"true\"\ndigest = \"9b3a0c85a887a256d6939da88aabd8cd\"",
                format!("{at}.digest: only kind = \"http\" and \"https\" take it, not \"misc\""),
            ),
            (
                "kind = \"http\"\npath = \"/\"\nvirtualhost = \"\"",
                format!(
                    "{at}.virtualhost: must not be empty: leave virtualhost out to send the checked address"
                ),
            ),
            (
                "kind = \"http\"\npath = \"/\"\nvirtualhost = \"www.example.com\\r\\nX-Evil: 1\"",
                format!(
                    "{at}.virtualhost: \"www.example.com\\r\\nX-Evil: 1\" is not a host name: visible ASCII only, no white space"
                ),
            ),
            (
                "kind = \"http\"\npath = \"/\"\ndigest = \"9b3a0c85a887a256d6939da88aabd8c\"",
                format!(
                    "{at}.digest: \"9b3a0c85a887a256d6939da88aabd8c\" is not an MD5 digest: 32 hex digits, as genhash prints them"
                ),
            ),
            (
                "kind = \"https\"\npath = \"/\"\ndigest = \"9b3a0c85a887a256d6939da88aabd8cg\"",
                format!(
                    "{at}.digest: \"9b3a0c85a887a256d6939da88aabd8cg\" is not an MD5 digest: 32 hex digits, as genhash prints them"
                ),
            ),
            (
                "kind = \"tcp\"\nport = 0",
                format!(
                    "{at}.port: 0 is not a port: leave port out to check the real server's own port"
                ),
            ),
            (
                "kind = \"tcp\"\ncommand = \"true\"",
                format!("{at}.command: only kind = \"misc\" takes it, not \"tcp\""),
            ),
            (
                "kind = \"misc\"",
                format!("{at}.command: kind = \"misc\" needs the command to run"),
            ),
            (
                "kind = \"misc\"\ncommand = \" \"",
                format!("{at}.command: must not be empty"),
            ),
            (
                "kind = \"misc\"\ncommand = \"true\"\nport = 80",
                format!(
                    "{at}.port: only kind = \"tcp\", \"http\" and \"https\" take it, not \"misc\""
                ),
            ),
            (
                "kind = \"tcp\"\nconnect_timeout = 0",
                format!("{at}.connect_timeout: 0 is below the minimum 1"),
            ),
            (
                "kind = \"tcp\"\ndelay_loop = 86401",
                format!("{at}.delay_loop: 86401 is above the maximum 86400"),
            ),
            (
                "kind = \"tcp\"\nretry = 101",
                format!("{at}.retry: 101 is above the maximum 100"),
            ),
            (
                "kind = \"tcp\"\nrise = 0",
                format!("{at}.rise: 0 is below the minimum 1"),
            ),
        ];
        for (table, expected) in cases {
            refused(&check(table), &expected);
        }
        for (table, expected) in [
            ("kind = \"icmp\"", "unknown variant `icmp`"),
            (
                "kind = \"tcp\"\non_failure = \"ignore\"",
                "unknown variant `ignore`",
            ),
            ("kind = \"tcp\"\ninterval = 3", "unknown field `interval`"),
        ] {
            let message = syntax_error(&check(table));
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_real_server_may_have_a_check_of_its_own() {
        let own = |table: &str| {
            MINIMAL.replace(
                "forward = \"masq\"\n",
                &format!("forward = \"masq\"\nhealth_check = {{ {table} }}\n"),
            )
        };
        let config = parse(&own("kind = \"http\", path = \"/ready\"")).unwrap();
        let real = &config.services[0].real_servers[0];
        assert_eq!(real.spec.forward, ForwardMethod::Masq);
        let check = real.health_check.as_ref().expect("its own check");
        assert_eq!(
            (check.kind, check.path.as_deref()),
            (HealthCheckKind::Http, Some("/ready"))
        );
        assert!(config.services[0].health_check.is_none());
        refused(
            &own("kind = \"http\""),
            "services[0].real_servers[0].health_check.path: kind = \"http\" needs the path to request, e.g. \"/\"",
        );
    }

    #[test]
    fn defaults_are_filled_in() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.dataplane, DataplaneConfig::default());
        assert_eq!(config.dataplane.mbufs, 16383);
        assert_eq!(config.dataplane.connections_per_worker, 1_048_576);
        assert_eq!(config.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
        assert_eq!(
            config.timeouts,
            Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }
        );
        assert!(config.routes.is_empty());
        let real = config.services[0].real_servers[0].spec;
        assert_eq!(
            (real.weight, real.upper_threshold, real.lower_threshold),
            (1, 0, 0)
        );
        let spec = config.services[0].spec();
        assert_eq!(spec.key(), config.services[0].key());
        assert!(spec.persistence.is_none());
        let partial = with("[timeouts]\nudp = 60\n");
        assert_eq!(
            parse(&partial).unwrap().timeouts,
            Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 60
            }
        );
        let service_default = MINIMAL.replace("scheduler = \"rr\"\n", "");
        assert_eq!(
            parse(&service_default).unwrap().services[0].scheduler,
            SchedulerName::Wlc
        );
    }

    #[test]
    fn eal_args_add_the_port_devices_in_order() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(
            config.eal_args(),
            [
                "-l",
                "0-1",
                "--vdev=net_af_packet0,iface=veth-wan",
                "-a",
                "0000:03:00.0"
            ]
        );
        assert_eq!(config.ports[0].dpdk_name(), "net_af_packet0");
        assert!(!config.ports[0].is_pci());
        assert_eq!(config.ports[1].dpdk_name(), "0000:03:00.0");
        assert!(config.ports[1].is_pci());
    }

    #[test]
    fn kernel_twins_are_tap_vdevs_after_the_ports() {
        let config = parse(&MINIMAL.replace(
            "device = \"0000:03:00.0\"",
            "device = \"0000:03:00.0\"\nkernel_interface = \"rvs-lan\"",
        ))
        .unwrap();
        assert_eq!(config.ports[0].kernel_twin_name(0), None);
        assert_eq!(
            config.ports[1].kernel_twin_name(1).as_deref(),
            Some("net_tap_rvs1")
        );
        assert_eq!(
            config.eal_args().last().map(String::as_str),
            Some("--vdev=net_tap_rvs1,iface=rvs-lan")
        );
    }

    #[test]
    fn kernel_interfaces_are_linux_names_and_unique() {
        let twins = |wan: &str, lan: &str| {
            MINIMAL
                .replace(
                    "iface=veth-wan\"",
                    &format!("iface=veth-wan\"\nkernel_interface = \"{wan}\""),
                )
                .replace(
                    "device = \"0000:03:00.0\"",
                    &format!("device = \"0000:03:00.0\"\nkernel_interface = \"{lan}\""),
                )
        };
        assert!(parse(&twins("rvs-wan", "rvs-lan")).is_ok());
        assert_eq!(
            problems_of(&twins("rvs-wan", "rvs-wan")),
            ["ports[1].kernel_interface: \"rvs-wan\" is also the kernel interface of port \"wan\""]
        );
        assert_eq!(
            problems_of(&twins("a-name-far-too-long", "rvs lan")),
            [
                "ports[0].kernel_interface: \"a-name-far-too-long\" is not 1 to 15 of a-z A-Z 0-9 _ - . (a Linux interface name)",
                "ports[1].kernel_interface: \"rvs lan\" is not 1 to 15 of a-z A-Z 0-9 _ - . (a Linux interface name)",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name_and_line() {
        let message =
            syntax_error(&MINIMAL.replace("forward = \"masq\"", "forward = \"masq\"\nwieght = 3"));
        assert!(message.contains("unknown field `wieght`"), "{message}");
        assert!(message.contains("line 23"), "{message}");
        let message = syntax_error(&with("[dataplane]\nworker = 2\n"));
        assert!(message.contains("unknown field `worker`"), "{message}");
    }

    #[test]
    fn bad_addresses_are_refused_with_their_line() {
        let message = syntax_error(&MINIMAL.replace("198.18.0.10:80", "198.18.0.300:80"));
        assert!(message.contains("invalid socket address"), "{message}");
        assert!(message.contains("line 17"), "{message}");
        let message = syntax_error(&MINIMAL.replace("198.18.0.1/24", "198.18.0.1/33"));
        assert!(message.contains("line 8"), "{message}");
        let message = syntax_error(&MINIMAL.replace("\"198.18.0.10:80\"", "80"));
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rvs.toml");
        std::fs::write(
            &path,
            with("[[services]]\nprotocol = \"tcp\"\naddress = \"198.18.0.10:80\"\n"),
        )
        .unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{}: services[1]: duplicate of services[0] (TCP 198.18.0.10:80)",
                path.display()
            )
        );
        std::fs::write(&path, "[eal\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: TOML parse error at line 1", path.display())),
            "{message}"
        );
        let missing = dir.path().join("missing.toml");
        let message = load(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: ", missing.display())),
            "{message}"
        );
        assert!(load(&dir.path().join("x")).is_err());
    }

    #[test]
    fn duplicate_services_are_refused() {
        refused(
            &with("[[services]]\nprotocol = \"tcp\"\naddress = \"198.18.0.10:80\"\n"),
            "services[1]: duplicate of services[0] (TCP 198.18.0.10:80)",
        );
        // Another protocol on the same VIP and port is another service.
        parse(&with(
            "[[services]]\nprotocol = \"udp\"\naddress = \"198.18.0.10:80\"\n",
        ))
        .unwrap();
    }

    #[test]
    fn each_rule_is_refused_with_its_field_path() {
        let cases: &[(&str, &str, &str)] = &[
            // (replace this, with this, expected problem)
            (
                "args = [\"-l\", \"0-1\"]",
                "args = []",
                "eal.args: must not be empty: give at least the lcores, e.g. [\"-l\", \"0-1\"]",
            ),
            (
                "\"0-1\"]",
                "\"0-1\", \"--vdev=net_tap0\"]",
                "eal.args[2]: \"--vdev=net_tap0\" is not allowed here: devices come from [[ports]], and rvsd adds -a or --vdev for each",
            ),
            (
                "name = \"lan\"",
                "name = \"wan\"",
                "ports[1].name: \"wan\" is also the name of ports[0]",
            ),
            (
                "name = \"lan\"",
                "name = \"l a n\"",
                "ports[1].name: \"l a n\" is not 1 to 32 of a-z A-Z 0-9 _ -",
            ),
            (
                "device = \"0000:03:00.0\"",
                "device = \"\"",
                "ports[1].device: must not be empty: a PCI address such as \"0000:03:00.0\" or a vdev such as \"net_af_packet0,iface=eth1\"",
            ),
            (
                "device = \"0000:03:00.0\"",
                "device = \"03:00.0\"",
                "ports[1].device: \"03:00.0\" looks like a PCI address without its domain; write \"0000:03:00.0\"",
            ),
            (
                "device = \"0000:03:00.0\"",
                "device = \"net_af_packet0,iface=x\"",
                "ports[1].device: net_af_packet0 is also the device of port \"wan\"",
            ),
            (
                "\"198.18.1.1/24\", \"fd00:1::1/64\"",
                "\"198.18.1.1/24\", \"198.18.0.1/16\"",
                "ports[1].addresses[1]: 198.18.0.1/16 is also an address of port \"wan\"",
            ),
            (
                "\"198.18.1.1/24\", \"fd00:1::1/64\"",
                "\"198.18.1.1/24\", \"198.18.0.2/24\"",
                "ports[1].addresses[1]: 198.18.0.2/24 overlaps the subnet of port \"wan\" (198.18.0.1/24); each subnet belongs to one port",
            ),
            (
                "\"198.18.1.1/24\", \"fd00:1::1/64\"",
                "\"198.18.1.0/24\"",
                "ports[1].addresses[0]: 198.18.1.0/24 is the network or broadcast address of its subnet, not a host address",
            ),
            (
                "device = \"0000:03:00.0\"",
                "device = \"0000:03:00.0\"\nmtu = 9601",
                "ports[1].mtu: 9601 is above the maximum 9600",
            ),
            (
                "device = \"0000:03:00.0\"",
                "device = \"0000:03:00.0\"\nmtu = 1000",
                "ports[1].mtu: 1000 is below 1280, the minimum for IPv6, and the port has IPv6 addresses",
            ),
            (
                "address = \"198.18.0.10:80\"",
                "address = \"198.18.0.1:80\"",
                "services[0].address: 198.18.0.1 is an address of port \"wan\", the director's own; a VIP must be an address of its own",
            ),
            (
                "address = \"198.18.0.10:80\"",
                "address = \"224.0.0.1:80\"",
                "services[0].address: 224.0.0.1 is not a unicast address",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\nscheduler_flags = [\"sh-port\"]",
                "services[0].scheduler_flags[0]: scheduler flag \"sh-port\" needs scheduler sh, not rr",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\nscheduler_flags = [\"fast\"]",
                "services[0].scheduler_flags[0]: \"fast\" is not a scheduler flag (known: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3)",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"sh\"\nscheduler_flags = [\"sh-port\", \"flag-2\"]",
                "services[0].scheduler_flags[1]: \"flag-2\" repeats \"sh-port\"",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\npersistence = { timeout = 0, netmask = 32 }",
                "services[0].persistence.timeout: 0 is below the minimum 1",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\npersistence = { timeout = 31536001, netmask = 32 }",
                "services[0].persistence.timeout: 31536001 is above the maximum 31536000",
            ),
            (
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\npersistence = { timeout = 300, netmask = 33 }",
                "services[0].persistence.netmask: 33 is above the maximum 32",
            ),
            (
                "forward = \"masq\"",
                "forward = \"masq\"\nweight = 70000",
                "services[0].real_servers[0].weight: 70000 is above the maximum 65535",
            ),
            (
                "forward = \"masq\"",
                "forward = \"masq\"\nupper_threshold = 10\nlower_threshold = 50",
                "services[0].real_servers[0].lower_threshold: 50 is above upper_threshold 10",
            ),
            (
                "address = \"198.18.1.11:80\"",
                "address = \"[fd00:1::11]:80\"",
                "services[0].real_servers[0].address: fd00:1::11 is IPv6 but the service's VIP 198.18.0.10 is IPv4",
            ),
            (
                "address = \"198.18.1.11:80\"",
                "address = \"198.18.1.11:0\"",
                "services[0].real_servers[0].address: port 0 is only for the real servers of a service of every port (port 0): give the port",
            ),
            (
                "address = \"198.18.1.11:80\"",
                "address = \"198.18.1.1:80\"",
                "services[0].real_servers[0].address: 198.18.1.1 is an address of this director (port \"lan\")",
            ),
            (
                "forward = \"masq\"",
                "forward = \"route\"\naddress = \"198.18.1.12:8080\"",
                "services[0].real_servers[0].address: port 8080 differs from the service's port 80, but forward = \"route\" cannot map ports (only masq and fullnat can)",
            ),
            (
                "forward = \"masq\"",
                "forward = \"tunnel\"\naddress = \"198.18.9.12:8080\"",
                "services[0].real_servers[0].address: port 8080 differs from the service's port 80, but forward = \"tunnel\" cannot map ports (only masq and fullnat can)",
            ),
            (
                "forward = \"masq\"",
                "forward = \"route\"\naddress = \"198.18.9.12:80\"",
                "services[0].real_servers[0].address: 198.18.9.12 is not in a connected subnet of any port, and forward = \"route\" needs the real server on the director's own segment",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(MINIMAL.contains(from), "{from}");
            // The real server's `address` key comes after `forward` in the
            // replacement, so drop the original to keep keys unique.
            let mut text = MINIMAL.replacen(from, to, 1);
            if to.contains("\naddress = ") {
                text = text.replacen("address = \"198.18.1.11:80\"\n", "", 1);
            }
            refused(&text, expected);
        }
    }

    #[test]
    fn one_service_or_real_server_is_checked_alone_with_relative_paths() {
        let config = parse(MINIMAL).unwrap();
        let service = config.services[0].spec();
        assert!(service_problems(&service, &config.ports).is_empty());
        let own = ServiceSpec {
            address: "198.18.0.1:80".parse().unwrap(),
            ..service.clone()
        };
        assert_eq!(
            service_problems(&own, &config.ports)[0].to_string(),
            "address: 198.18.0.1 is an address of port \"wan\", the director's own; a VIP must be an address of its own"
        );
        let heavy = RealServerSpec {
            weight: 70000,
            ..config.services[0].real_servers[0].spec
        };
        assert_eq!(
            real_server_problems(&service, &heavy, &config.ports),
            [FieldError {
                path: "weight".into(),
                message: "70000 is above the maximum 65535".into()
            }]
        );
    }

    #[test]
    fn a_persistent_service_of_every_port_takes_real_servers_of_port_0() {
        let every_port = MINIMAL
            .replace("198.18.0.10:80", "198.18.0.10:0")
            .replace("198.18.1.11:80", "198.18.1.11:0")
            .replace(
                "scheduler = \"rr\"",
                "scheduler = \"rr\"\npersistence = { timeout = 300, netmask = 32 }",
            );
        let config = parse(&every_port).unwrap();
        assert_eq!(config.services[0].spec().address.port(), 0);
        refused(
            &every_port.replace("198.18.1.11:0", "198.18.1.11:80"),
            "services[0].real_servers[0].address: port 80: a real server of a service of every port (port 0) serves the port each client asks for; give port 0",
        );
        // Direct routing keeps the client's port anyway: port 0 fits it.
        let routed = every_port.replace("forward = \"masq\"", "forward = \"route\"");
        parse(&routed).unwrap();
        let checked = format!("{every_port}\n[services.health_check]\nkind = \"tcp\"\n");
        refused(
            &checked,
            "services[0].health_check.port: the real servers of a service of every port (port 0) have no port of their own: give the port to check",
        );
        parse(&checked.replace("kind = \"tcp\"", "kind = \"tcp\"\nport = 80")).unwrap();
        refused(
            &every_port.replace("\npersistence = { timeout = 300, netmask = 32 }", ""),
            "services[0].address: port 0 (every port) is only for a persistent service: set persistence (ipvsadm -p), or give the port",
        );
    }

    #[test]
    fn duplicate_real_servers_are_refused() {
        refused(
            &with("[[services.real_servers]]\naddress = \"198.18.1.11:80\"\n"),
            "services[0].real_servers[1]: duplicate of real_servers[0] (198.18.1.11:80)",
        );
    }

    #[test]
    fn ipv6_services_take_ipv6_netmasks() {
        let v6 = "[[services]]\nprotocol = \"tcp\"\naddress = \"[fd00::10]:80\"\npersistence = { timeout = 300, netmask = 64 }\n[[services.real_servers]]\naddress = \"[fd00:1::11]:80\"\n";
        parse(&with(v6)).unwrap();
        refused(
            &with(&v6.replace("netmask = 64", "netmask = 129")),
            "services[1].persistence.netmask: 129 is above the maximum 128",
        );
    }

    #[test]
    fn dataplane_limits_are_checked() {
        let cases = [
            ("workers = 0", "dataplane.workers: 0 is below the minimum 1"),
            (
                "mbufs = 1000",
                "dataplane.mbufs: 1000 is below the minimum 1023",
            ),
            (
                "mbuf_cache = 513",
                "dataplane.mbuf_cache: 513 is above the maximum 512",
            ),
            (
                "rx_descriptors = 1000",
                "dataplane.rx_descriptors: 1000 is not a power of two",
            ),
            (
                "tx_descriptors = 32",
                "dataplane.tx_descriptors: 32 is below the minimum 64",
            ),
            (
                "connections_per_worker = 100",
                "dataplane.connections_per_worker: 100 is below the minimum 1024",
            ),
            (
                "idle_sleep_us = 100001",
                "dataplane.idle_sleep_us: 100001 is above the maximum 100000",
            ),
            (
                "neighbour_timeout = 4",
                "dataplane.neighbour_timeout: 4 is below the minimum 5",
            ),
        ];
        for (line, expected) in cases {
            let problems = problems_of(&with(&format!("[dataplane]\n{line}\n")));
            assert_eq!(problems[0], expected, "for {line}");
        }
        parse(&with("[dataplane]\nmbufs = 1023\nmbuf_cache = 512\n")).unwrap();
        refused(
            &with("[timeouts]\ntcp = 0\n"),
            "timeouts.tcp: 0 is below the minimum 1",
        );
        refused(
            &with("[timeouts]\nudp = 31536001\n"),
            "timeouts.udp: 31536001 is above the maximum 31536000",
        );
    }

    #[test]
    fn the_metrics_endpoint_is_optional_and_checked() {
        assert_eq!(parse(&with("")).unwrap().metrics, None);
        let config = parse(&with("[metrics]\nlisten = \"127.0.0.1:9100\"\n")).unwrap();
        assert_eq!(
            config.metrics.map(|m| m.listen),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        refused(
            &with("[metrics]\nlisten = \"127.0.0.1:0\"\n"),
            "metrics.listen: give a port, not 0",
        );
        assert!(parse(&with("[metrics]\nlisten = \"localhost\"\n")).is_err());
    }

    #[test]
    fn static_neighbours_are_checked() {
        let neighbour = |address: &str, mac: &str, port: &str| {
            format!("[[neighbours]]\naddress = \"{address}\"\nmac = \"{mac}\"\nport = \"{port}\"\n")
        };
        let config = parse(&with(&neighbour("198.18.1.11", "02:00:00:00:01:0b", "lan"))).unwrap();
        assert_eq!(
            config.neighbours[0].mac_bytes(),
            Some([2, 0, 0, 0, 1, 0x0b])
        );
        for (text, expected) in [
            (
                neighbour("198.18.1.11", "02:00:00:00:01", "lan"),
                "neighbours[0].mac: \"02:00:00:00:01\" is not a MAC address (aa:bb:cc:dd:ee:ff)",
            ),
            (
                neighbour("198.18.1.11", "01:00:5e:00:00:01", "lan"),
                "neighbours[0].mac: 01:00:5e:00:00:01 is not a unicast address",
            ),
            (
                neighbour("198.18.1.11", "02:00:00:00:01:0b", "dmz"),
                "neighbours[0].port: there is no port named \"dmz\"",
            ),
            (
                neighbour("198.18.0.11", "02:00:00:00:01:0b", "lan"),
                "neighbours[0].address: 198.18.0.11 is not in a subnet of port \"lan\"",
            ),
            (
                neighbour("198.18.1.11", "02:00:00:00:01:0b", "lan")
                    + &neighbour("198.18.1.11", "02:00:00:00:01:0c", "lan"),
                "neighbours[1]: 198.18.1.11 is also neighbours[0]",
            ),
        ] {
            assert_eq!(problems_of(&with(&text)), [expected.to_owned()], "{text}");
        }
    }

    #[test]
    fn routes_are_checked() {
        parse(&with(
            "[[routes]]\ndestination = \"198.18.9.0/24\"\ngateway = \"198.18.1.254\"\n",
        ))
        .unwrap();
        parse(&with(
            "[[routes]]\ndestination = \"fd00:9::/64\"\ngateway = \"fd00:1::fe\"\nport = \"lan\"\n",
        ))
        .unwrap();
        let cases = [
            (
                "198.18.9.0/24",
                "198.18.9.1",
                None,
                "routes[0].gateway: 198.18.9.1 is not in a connected subnet of any port",
            ),
            (
                "198.18.9.0/24",
                "198.18.1.254",
                Some("wan"),
                "routes[0].gateway: 198.18.1.254 is not in a connected subnet of port \"wan\"",
            ),
            (
                "198.18.9.0/24",
                "198.18.1.254",
                Some("dmz"),
                "routes[0].port: there is no port named \"dmz\"",
            ),
            (
                "198.18.9.0/24",
                "fd00:1::fe",
                None,
                "routes[0].gateway: fd00:1::fe is IPv6 but the destination 198.18.9.0/24 is IPv4",
            ),
            (
                "198.18.9.1/24",
                "198.18.1.254",
                None,
                "routes[0].destination: 198.18.9.1/24 has host bits set (did you mean 198.18.9.0/24?)",
            ),
            (
                "198.18.9.0/24",
                "198.18.1.1",
                None,
                "routes[0].gateway: 198.18.1.1 is an address of this director (port \"lan\")",
            ),
        ];
        for (destination, gateway, port, expected) in cases {
            let port = port
                .map(|name| format!("port = \"{name}\"\n"))
                .unwrap_or_default();
            refused(
                &with(&format!(
                    "[[routes]]\ndestination = \"{destination}\"\ngateway = \"{gateway}\"\n{port}"
                )),
                expected,
            );
        }
        refused(
            &with(
                "[[routes]]\ndestination = \"0.0.0.0/0\"\ngateway = \"198.18.0.254\"\n[[routes]]\ndestination = \"0.0.0.0/0\"\ngateway = \"198.18.1.254\"\n",
            ),
            "routes[1].destination: 0.0.0.0/0 is also the destination of routes[0]",
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = MINIMAL
            .replace("forward = \"masq\"", "forward = \"masq\"\nweight = 70000")
            .replace("name = \"lan\"", "name = \"wan\"");
        assert_eq!(
            problems_of(&text),
            [
                "ports[1].name: \"wan\" is also the name of ports[0]",
                "services[0].real_servers[0].weight: 70000 is above the maximum 65535",
            ]
        );
    }

    #[test]
    fn missing_ports_are_refused() {
        refused(
            "[eal]\nargs = [\"-l\", \"0\"]\n",
            "ports: at least one [[ports]] entry is needed",
        );
        assert!(syntax_error("[dataplane]\n").contains("missing field `eal`"));
    }
}
