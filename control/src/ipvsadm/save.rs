//! `ipvsadm -S` (save) and `-R` (restore).
//!
//! A save is one ipvsadm command a line: `-A` for each service, then `-a`
//! for each of its real servers, sorted as listings are. Restore reads such
//! lines (a leading `ipvsadm` or `rvsadm` word and `#` comments allowed).

use std::fmt::Write as _;

use super::Failure;
use super::args::{self, Command, Invocation};
use super::format::{self, Namer};
use super::names::Names;
use crate::model::{ForwardMethod, Protocol, ServiceStatus};

/// `ipvsadm -S [-n]`.
///
/// Unlike ipvsadm, thresholds are saved too (`-x`, `-y`, when not 0), so
/// that a restore gives back the same table; ipvsadm accepts those lines.
pub fn save(services: &[ServiceStatus], numeric: bool, names: &Names) -> String {
    let namer = Namer::new(names, numeric);
    let mut out = String::new();
    for service in format::ordered_services(services, true) {
        let spec = &service.spec;
        let name = format!(
            "{} {}",
            protocol_option(spec.protocol),
            namer.endpoint(spec.address, spec.protocol)
        );
        let _ = write!(out, "-A {name} -s {}", spec.scheduler);
        out.push_str(&format::persistence_suffix(spec, " -p ", " -M "));
        if let Some(flags) = format::scheduler_flags(spec) {
            let _ = write!(out, " -b {flags}");
        }
        out.push('\n');
        for real in format::ordered_real_servers(service, true, false) {
            let real = &real.spec;
            let _ = write!(
                out,
                "-a {name} -r {} {} -w {}",
                namer.endpoint(real.address, spec.protocol),
                forward_option(real.forward),
                real.weight
            );
            if real.forward == ForwardMethod::Tunnel {
                out.push_str(" --tun-type ipip");
            }
            if real.upper_threshold != 0 {
                let _ = write!(out, " -x {}", real.upper_threshold);
            }
            if real.lower_threshold != 0 {
                let _ = write!(out, " -y {}", real.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

/// A command of a restore, with its line number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreLine {
    pub line: usize,
    pub invocation: Invocation,
}

/// The first line of a restore that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    pub line: usize,
    pub error: Failure,
}

/// Parses every line of a restore before anything is applied, so that a
/// typo applies nothing.
pub fn parse_restore(
    text: &str,
    program: &str,
    names: &Names,
) -> Result<Vec<RestoreLine>, RestoreError> {
    let mut lines = Vec::new();
    for (index, content) in text.lines().enumerate() {
        let line = index + 1;
        let content = content.split('#').next().unwrap_or_default();
        let mut words: Vec<String> = content.split_whitespace().map(str::to_owned).collect();
        if words
            .first()
            .is_some_and(|first| first == "ipvsadm" || first == "rvsadm")
        {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        let invocation =
            args::parse(program, &words, names).map_err(|error| RestoreError { line, error })?;
        if invocation.command == Command::Restore {
            // As ipvsadm, which would otherwise loop.
            return Err(RestoreError {
                line,
                error: Failure::try_help(program),
            });
        }
        lines.push(RestoreLine { line, invocation });
    }
    Ok(lines)
}

fn protocol_option(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
    }
}

fn forward_option(forward: ForwardMethod) -> &'static str {
    match forward {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Route => "-g",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::FullNat => "--fullnat",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ipvsadm::format::tests::{golden_table, hosts_table, names};
    use crate::model::{RealServerSpec, ServiceSpec};
    use crate::protocol::RealServerChange;

    /// ipvsadm's save of the golden table, plus the thresholds it leaves
    /// out and rvsadm keeps.
    pub(in crate::ipvsadm) fn golden_save(ipvsadm: &str) -> String {
        ipvsadm
            .lines()
            .map(|line| {
                let thresholds = line.starts_with("-a")
                    && (line.contains("1.11:8080 ")
                        || line.contains("1.11:http-alt ")
                        || line.contains("1.11:53 ")
                        || line.contains("1.11:domain "));
                format!("{line}{}\n", if thresholds { " -x 100 -y 50" } else { "" })
            })
            .collect()
    }

    #[test]
    fn save_matches_ipvsadm() {
        let table = golden_table();
        assert_eq!(
            save(&table, true, &names()),
            golden_save(include_str!("testdata/save-numeric.txt"))
        );
        assert_eq!(
            save(&table, false, &names()),
            golden_save(include_str!("testdata/save-names.txt"))
        );
        // Without thresholds, byte for byte.
        let mut plain = table;
        for service in &mut plain {
            for real in &mut service.real_servers {
                real.spec.upper_threshold = 0;
                real.spec.lower_threshold = 0;
            }
        }
        assert_eq!(
            save(&plain, true, &names()),
            include_str!("testdata/save-numeric.txt")
        );
        // Long names are not cut in a save.
        let (names, table) = hosts_table();
        assert_eq!(
            save(&table, false, &names),
            include_str!("testdata/save-hosts.txt")
        );
    }

    /// Applies restored commands to a table, as rvsd would.
    fn apply(lines: &[RestoreLine]) -> Vec<ServiceStatus> {
        let mut table: Vec<ServiceStatus> = Vec::new();
        for line in lines {
            match &line.invocation.command {
                Command::AddService(spec) => table.push(ServiceStatus {
                    spec: spec.clone(),
                    stats: Default::default(),
                    rates: Default::default(),
                    real_servers: vec![],
                    removed_real_servers: vec![],
                }),
                Command::AddServer(RealServerChange {
                    service,
                    real_server,
                }) => {
                    let service = table
                        .iter_mut()
                        .find(|status| status.spec.key() == *service)
                        .unwrap();
                    service.real_servers.push(crate::model::RealServerStatus {
                        spec: *real_server,
                        active_conns: 0,
                        inactive_conns: 0,
                        persistent_conns: 0,
                        stats: Default::default(),
                        rates: Default::default(),
                        health: None,
                    });
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        table
    }

    #[test]
    fn restore_reads_back_what_save_wrote() {
        let mut table = golden_table();
        table[0].real_servers[1].spec = RealServerSpec {
            upper_threshold: 100,
            lower_threshold: 50,
            ..table[0].real_servers[1].spec
        };
        table.push(ServiceStatus {
            spec: ServiceSpec {
                protocol: Protocol::Tcp,
                address: "[fd00::10]:443".parse().unwrap(),
                scheduler: crate::model::SchedulerName::Wrr,
                scheduler_flags: vec![],
                persistence: Some(crate::model::Persistence {
                    timeout: 60,
                    netmask: 64,
                }),
                local_addresses: Vec::new(),
            },
            stats: Default::default(),
            rates: Default::default(),
            real_servers: vec![crate::model::RealServerStatus {
                spec: RealServerSpec {
                    address: "[fd00:1::11]:8443".parse().unwrap(),
                    weight: 5,
                    forward: ForwardMethod::FullNat,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Default::default(),
                rates: Default::default(),
                health: None,
            }],
            removed_real_servers: vec![],
        });
        for numeric in [true, false] {
            let saved = save(&table, numeric, &names());
            let restored = apply(&parse_restore(&saved, "rvsadm", &names()).unwrap());
            assert_eq!(save(&restored, numeric, &names()), saved);
            assert_eq!(
                save(&restored, true, &names()),
                save(&table, true, &names())
            );
        }
    }

    #[test]
    fn restore_skips_comments_blank_lines_and_the_program_name() {
        let text = "# saved by rvsadm\n\nipvsadm -A -t 198.18.0.10:80 -s rr # web\n  rvsadm -a -t 198.18.0.10:80 -r 198.18.1.11 -m\n-C\n";
        let lines = parse_restore(text, "rvsadm", &names()).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|line| line.line).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert_eq!(lines[2].invocation.command, Command::Clear);
    }

    #[test]
    fn restore_stops_at_the_first_bad_line() {
        let text = "-A -t 198.18.0.10:80 -s rr\n-a -t 198.18.0.10:80 -r 198.18.1.11 -w x\n-C\n";
        let error = parse_restore(text, "rvsadm", &names()).unwrap_err();
        assert_eq!(error.line, 2);
        assert_eq!(error.error.message, "illegal weight specified");
        let error = parse_restore("-C\n-R\n", "rvsadm", &names()).unwrap_err();
        assert_eq!(error.line, 2);
        assert_eq!(error.error.exit_code, 255);
        assert!(error.error.message.starts_with("Try `rvsadm -h'"));
    }
}
