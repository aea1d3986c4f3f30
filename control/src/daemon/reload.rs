//! Live reload: what changes when rvsd rereads its file.
//!
//! A reload (SIGHUP or `rvsadm --reload`) brings the running state to what
//! the file says with the same [`Change`]s that `rvsadm` makes, so that
//! established connections are untouched: services are matched by their
//! key and real servers by RIP:port, never by their place in the file.
//! What the dataplane was built with (EAL, ports and their addresses,
//! table sizes, the control socket, routes, static neighbours and the
//! metrics endpoint) cannot
//! change without a restart: [`restart_problems`] names each such field,
//! and the daemon refuses the whole reload.
//!
//! The changes are ordered so that each one is valid on the state the ones
//! before it leave: removals first, then `[fullnat]` and timeouts, then
//! edits and additions in the file's order. The daemon still tries them on
//! a copy of its state before applying any (see `Daemon::reload`).
//!
//! A service whose `health_check` table changed gets it anew: each of its
//! real servers without a check of its own starts afresh, up, with a new
//! checker; so does a real server whose own `health_check` changed. Other
//! real servers keep their checkers and their health (a down real server
//! stays down), and an edit of a down real server's weight waits, as an
//! `rvsadm -e` does, until it is up (see `super::health`).

use std::net::IpAddr;

use crate::config::{
    Config, ControlConfig, DataplaneConfig, FieldError, HealthCheckConfig, PortConfig,
    RealServerConfig,
};
use crate::model::{ServiceSpec, Timeouts};
use crate::protocol::{RealServerChange, RealServerRef};

use super::state::{Change, Control, Refusal};

/// The part of a configuration that a reload may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub services: Vec<DesiredService>,
    /// `[fullnat] local_addresses`.
    pub local_addresses: Vec<IpAddr>,
    pub timeouts: Timeouts,
}

/// A service with its real servers and its health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    pub spec: ServiceSpec,
    /// Their weights are those they have while up.
    pub real_servers: Vec<RealServerConfig>,
    pub health_check: Option<HealthCheckConfig>,
}

impl Desired {
    /// What `config` asks for.
    pub fn of(config: &Config) -> Desired {
        Desired {
            services: config
                .services
                .iter()
                .map(|service| DesiredService {
                    spec: service.spec(),
                    real_servers: service.real_servers.clone(),
                    health_check: service.health_check.clone(),
                })
                .collect(),
            local_addresses: config.fullnat.local_addresses.clone(),
            timeouts: config.timeouts,
        }
    }

    fn service(&self, spec: &ServiceSpec) -> Option<&DesiredService> {
        self.services
            .iter()
            .find(|other| other.spec.key() == spec.key())
    }
}

const RESTART: &str = "cannot change without a restart";

/// The fields of `wanted` that differ from `running` and that only a
/// restart can change, each named by its path.
pub fn restart_problems(running: &Config, wanted: &Config) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let mut differs = |path: String, different: bool| {
        if different {
            problems.push(FieldError {
                path,
                message: RESTART.to_owned(),
            });
        }
    };
    differs("eal.args".into(), running.eal.args != wanted.eal.args);

    // Destructured so that a new field cannot be forgotten here.
    let DataplaneConfig {
        workers,
        mbufs,
        mbuf_cache,
        rx_descriptors,
        tx_descriptors,
        connections_per_worker,
        ipv6_connections_per_worker,
        persistence_templates,
        idle_sleep_us,
        idle_polls,
        neighbour_timeout,
        mbuf_data_room,
    } = &running.dataplane;
    let new = &wanted.dataplane;
    for (field, different) in [
        ("workers", *workers != new.workers),
        ("mbufs", *mbufs != new.mbufs),
        ("mbuf_cache", *mbuf_cache != new.mbuf_cache),
        ("rx_descriptors", *rx_descriptors != new.rx_descriptors),
        ("tx_descriptors", *tx_descriptors != new.tx_descriptors),
        (
            "connections_per_worker",
            *connections_per_worker != new.connections_per_worker,
        ),
        (
            "ipv6_connections_per_worker",
            *ipv6_connections_per_worker != new.ipv6_connections_per_worker,
        ),
        (
            "persistence_templates",
            *persistence_templates != new.persistence_templates,
        ),
        ("idle_sleep_us", *idle_sleep_us != new.idle_sleep_us),
        ("idle_polls", *idle_polls != new.idle_polls),
        (
            "neighbour_timeout",
            *neighbour_timeout != new.neighbour_timeout,
        ),
        ("mbuf_data_room", *mbuf_data_room != new.mbuf_data_room),
    ] {
        differs(format!("dataplane.{field}"), different);
    }

    let ControlConfig { socket } = &running.control;
    differs("control.socket".into(), *socket != wanted.control.socket);

    if running.ports.len() != wanted.ports.len() {
        differs("ports".into(), true);
    } else {
        for (i, (old, new)) in running.ports.iter().zip(&wanted.ports).enumerate() {
            let PortConfig {
                name,
                device,
                addresses,
                mtu,
                kernel_interface,
            } = old;
            differs(format!("ports[{i}].name"), *name != new.name);
            differs(format!("ports[{i}].device"), *device != new.device);
            differs(format!("ports[{i}].addresses"), *addresses != new.addresses);
            differs(format!("ports[{i}].mtu"), *mtu != new.mtu);
            differs(
                format!("ports[{i}].kernel_interface"),
                *kernel_interface != new.kernel_interface,
            );
        }
    }
    differs("routes".into(), running.routes != wanted.routes);
    differs("neighbours".into(), running.neighbours != wanted.neighbours);
    differs("metrics.listen".into(), running.metrics != wanted.metrics);
    problems
}

/// The changes that turn `running` into `wanted`, in an order in which
/// each is valid (see the module docs). None when they agree.
pub fn changes(running: &Desired, wanted: &Desired) -> Vec<Change> {
    let mut changes = Vec::new();
    for DesiredService {
        spec, real_servers, ..
    } in &running.services
    {
        let Some(kept) = wanted.service(spec) else {
            changes.push(Change::DeleteService(spec.key()));
            continue;
        };
        for rs in real_servers {
            let address = rs.spec.address;
            if !kept
                .real_servers
                .iter()
                .any(|other| other.spec.address == address)
            {
                changes.push(Change::DeleteRealServer(RealServerRef {
                    service: spec.key(),
                    address,
                }));
            }
        }
    }
    if running.local_addresses != wanted.local_addresses {
        changes.push(Change::SetLocalAddresses(wanted.local_addresses.clone()));
    }
    if running.timeouts != wanted.timeouts {
        changes.push(Change::SetTimeouts(wanted.timeouts));
    }
    for DesiredService {
        spec,
        real_servers,
        health_check,
    } in &wanted.services
    {
        let current = running.service(spec);
        match current {
            None => changes.push(Change::AddService(spec.clone())),
            Some(old) if old.spec != *spec => changes.push(Change::ReplaceService(spec.clone())),
            Some(_) => {}
        }
        if current.map_or(&None, |old| &old.health_check) != health_check {
            changes.push(Change::SetHealthCheck(spec.key(), health_check.clone()));
        }
        let current_real_servers = current.map_or(&[][..], |old| old.real_servers.as_slice());
        for rs in real_servers {
            let change = RealServerChange {
                service: spec.key(),
                real_server: rs.spec,
            };
            let old = current_real_servers
                .iter()
                .find(|other| other.spec.address == rs.spec.address);
            match old {
                None => changes.push(Change::AddRealServer(change)),
                Some(old) if old.spec != rs.spec => changes.push(Change::EditRealServer(change)),
                Some(_) => {}
            }
            if old.map_or(&None, |old| &old.health_check) != &rs.health_check {
                changes.push(Change::SetRealServerHealthCheck(
                    RealServerRef {
                        service: spec.key(),
                        address: rs.spec.address,
                    },
                    rs.health_check.clone(),
                ));
            }
        }
    }
    changes
}

/// Applies `changes` in order, all or none: they are tried on a copy of
/// `control` first, so a refusal half way leaves it as it was. The error
/// names the refused change.
pub fn apply_all(control: &mut Control, changes: &[Change]) -> Result<(), Refusal> {
    let mut trial = control.clone();
    for change in changes {
        trial.apply(change).map_err(|refusal| Refusal {
            status: refusal.status,
            message: format!("{change:?}: {}", refusal.message),
        })?;
    }
    *control = trial;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::model::{ForwardMethod, Protocol, RealServerSpec, SchedulerName, ServiceKey};
    use std::net::SocketAddr;

    use crate::daemon::state::tests::TWO_PORTS as BASE;

    const WEB: &str = r#"
[[services]]
protocol = "tcp"
address = "198.18.0.10:80"
scheduler = "rr"

[[services.real_servers]]
address = "198.18.1.11:80"
forward = "masq"

[[services.real_servers]]
address = "198.18.1.12:80"
forward = "masq"
"#;

    const DNS: &str = r#"
[[services]]
protocol = "udp"
address = "198.18.0.10:53"
scheduler = "sh"

[[services.real_servers]]
address = "198.18.1.21:53"
forward = "masq"
"#;

    fn file(parts: &[&str]) -> Config {
        config::parse(&format!("{BASE}{}", parts.concat())).expect("valid file")
    }

    fn diff(a: &Config, b: &Config) -> Vec<Change> {
        assert!(restart_problems(a, b).is_empty());
        changes(&Desired::of(a), &Desired::of(b))
    }

    fn web() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            address: "198.18.0.10:80".parse().unwrap(),
        }
    }

    fn real(address: &str, weight: u32) -> RealServerSpec {
        RealServerSpec {
            address: address.parse().unwrap(),
            weight,
            forward: ForwardMethod::Masq,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    #[test]
    fn identical_files_and_reordered_services_give_no_change() {
        let a = file(&[WEB, DNS]);
        assert_eq!(diff(&a, &a), []);
        assert_eq!(diff(&a, &file(&[DNS, WEB])), []);
    }

    #[test]
    fn a_new_service_is_added_with_its_real_servers() {
        let dns = file(&[DNS]).services[0].clone();
        assert_eq!(
            diff(&file(&[WEB]), &file(&[WEB, DNS])),
            [
                Change::AddService(dns.spec()),
                Change::AddRealServer(RealServerChange {
                    service: dns.key(),
                    real_server: dns.real_servers[0].spec,
                }),
            ]
        );
        assert_eq!(
            diff(&file(&[DNS, WEB]), &file(&[WEB])),
            [Change::DeleteService(dns.key())]
        );
    }

    /// A new service's health check comes before its real servers; a
    /// changed or dropped one is set anew.
    #[test]
    fn health_checks_are_set_with_their_service() {
        let checked = DNS.replace(
            "scheduler = \"sh\"\n",
            "scheduler = \"sh\"\nhealth_check = { kind = \"misc\", command = \"true\" }\n",
        );
        let dns = file(&[&checked]).services[0].clone();
        let check = dns.health_check.clone();
        assert!(check.is_some());
        assert_eq!(
            diff(&file(&[WEB]), &file(&[WEB, &checked])),
            [
                Change::AddService(dns.spec()),
                Change::SetHealthCheck(dns.key(), check),
                Change::AddRealServer(RealServerChange {
                    service: dns.key(),
                    real_server: dns.real_servers[0].spec,
                }),
            ]
        );
        let other = checked.replace("\"true\"", "\"exit 0\"");
        let other_check = file(&[&other]).services[0].health_check.clone();
        assert_eq!(
            diff(&file(&[&checked]), &file(&[&other])),
            [Change::SetHealthCheck(dns.key(), other_check)]
        );
        assert_eq!(
            diff(&file(&[&checked]), &file(&[DNS])),
            [Change::SetHealthCheck(dns.key(), None)]
        );
    }

    #[test]
    fn real_servers_scheduler_and_timeouts_change_in_place() {
        let edited = WEB
            .replace("scheduler = \"rr\"", "scheduler = \"wlc\"")
            .replace(
                "address = \"198.18.1.12:80\"\nforward = \"masq\"",
                "address = \"198.18.1.13:80\"\nforward = \"masq\"",
            )
            .replace(
                "address = \"198.18.1.11:80\"\nforward = \"masq\"",
                "address = \"198.18.1.11:80\"\nforward = \"masq\"\nweight = 5",
            );
        let b = file(&[&edited, "\n[timeouts]\ntcp = 60\n"]);
        let mut wlc = file(&[WEB]).services[0].spec();
        wlc.scheduler = SchedulerName::Wlc;
        let change = |rs| {
            Change::EditRealServer(RealServerChange {
                service: web(),
                real_server: rs,
            })
        };
        let add = |rs| {
            Change::AddRealServer(RealServerChange {
                service: web(),
                real_server: rs,
            })
        };
        assert_eq!(
            diff(&file(&[WEB]), &b),
            [
                Change::DeleteRealServer(RealServerRef {
                    service: web(),
                    address: SocketAddr::from(([198, 18, 1, 12], 80)),
                }),
                Change::SetTimeouts(Timeouts {
                    tcp: 60,
                    ..Timeouts::default()
                }),
                Change::ReplaceService(wlc),
                change(real("198.18.1.11:80", 5)),
                add(real("198.18.1.13:80", 1)),
            ]
        );
    }

    #[test]
    fn local_addresses_change_with_the_file() {
        let a = file(&["[fullnat]\nlocal_addresses = [\"198.18.1.100\"]\n"]);
        let b = file(&["[fullnat]\nlocal_addresses = [\"198.18.1.100\", \"198.18.1.101\"]\n"]);
        assert_eq!(
            diff(&a, &b),
            [Change::SetLocalAddresses(vec![
                "198.18.1.100".parse().unwrap(),
                "198.18.1.101".parse().unwrap()
            ])]
        );
    }

    /// Applied to the running state, the changes make it the file's, and
    /// the real servers that stay keep their slots (their connections).
    #[test]
    fn the_changes_bring_the_running_state_to_the_file() {
        use super::super::{Control, LIMITS};
        use dataplane::wire::MacAddr;
        let control_of = |config: &Config| {
            Control::new(config, vec![MacAddr::ZERO; 2], LIMITS).expect("valid state")
        };
        let a = file(&[WEB]);
        let b = file(&[
            DNS,
            &WEB.replace("198.18.1.12:80", "198.18.1.13:80"),
            "[fullnat]\nlocal_addresses = [\"198.18.1.100\"]\n",
        ]);
        let mut control = control_of(&a);
        let slot_of_11 = |control: &mut Control| {
            control.snapshot().services[0]
                .real_servers
                .iter()
                .find(|rs| rs.address == IpAddr::from([198, 18, 1, 11]))
                .map(|rs| rs.slot)
        };
        let before = slot_of_11(&mut control);
        for change in changes(&control.desired(), &Desired::of(&b)) {
            control.apply(&change).expect("valid change");
        }
        let mut wanted = Desired::of(&b);
        let mut got = control.desired();
        for desired in [&mut wanted, &mut got] {
            desired
                .services
                .sort_by_key(|service| service.spec.key().address.port());
            for service in &mut desired.services {
                service.real_servers.sort_by_key(|rs| rs.spec.address);
            }
        }
        assert_eq!(got, wanted);
        assert_eq!(changes(&control.desired(), &Desired::of(&b)), []);
        assert_eq!(slot_of_11(&mut control), before);
    }

    /// A change refused half way (here: no slot left for a real server)
    /// leaves the running state as it was.
    #[test]
    fn a_reload_refused_half_way_changes_nothing() {
        use super::super::Limits;
        use dataplane::wire::MacAddr;
        let limits = Limits {
            services: 4,
            real_servers: 2,
        };
        let mut control =
            Control::new(&file(&[WEB]), vec![MacAddr::ZERO; 2], limits).expect("valid state");
        let before = control.desired();
        let changes = changes(&before, &Desired::of(&file(&[WEB, DNS])));
        assert_eq!(changes.len(), 2, "{changes:?}");
        let refusal = apply_all(&mut control, &changes).unwrap_err();
        assert!(
            refusal.message.contains("Too many real servers"),
            "{}",
            refusal.message
        );
        assert_eq!(control.desired(), before);
    }

    #[test]
    fn what_needs_a_restart_is_named() {
        let a = file(&[WEB]);
        let text = format!("{BASE}{WEB}")
            .replace("iface=d0", "iface=d9")
            .replace("args = [\"-l\", \"0,1\"]", "args = [\"-l\", \"0-2\"]")
            + "\n[dataplane]\nmbufs = 20000\n\n[control]\nsocket = \"/tmp/other.sock\"\n";
        let b = config::parse(&text).expect("valid file");
        let named: Vec<String> = restart_problems(&a, &b)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            named,
            [
                "eal.args: cannot change without a restart",
                "dataplane.mbufs: cannot change without a restart",
                "control.socket: cannot change without a restart",
                "ports[0].device: cannot change without a restart",
            ]
        );
        let one_port = config::parse(
            "[eal]\nargs = [\"-l\", \"0,1\"]\n[[ports]]\nname = \"wan\"\ndevice = \"net_af_packet0,iface=d0\"\naddresses = [\"198.18.0.1/24\"]\n",
        )
        .expect("valid file");
        assert_eq!(restart_problems(&a, &one_port)[0].path, "ports");
    }
}
