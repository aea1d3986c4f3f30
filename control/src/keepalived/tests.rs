//! The translator on typical keepalived.conf files: the TOML it writes goes
//! through rvsd's own configuration parser and daemon state, and comes out
//! as `rvsadm -Ln` lists it.

use std::net::SocketAddr;
use std::path::Path;

use dataplane::wire::MacAddr;

use super::*;
use crate::config::{self, Config, RealServerConfig, ServiceConfig};
use crate::daemon::{Control, Estimator, Limits};
use crate::ipvsadm::format::listing;
use crate::ipvsadm::{self, Environment, ListOptions, Names, Terminal};
use crate::protocol::{Client, DaemonInfo, ProtocolError};

/// A DR director as keepalived's documentation and countless blog posts
/// describe one: VRRP for the VIP, a web service with persistence checked
/// by HTTP_GET, an HTTPS service checked by TCP_CHECK.
const DR_CONF: &str = r#"! Configuration File for keepalived

global_defs {
   notification_email {
     admin@example.com
   }
   router_id LVS_DEVEL
   lvs_timeouts tcp 7200 tcpfin 120 udp 300
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        198.18.0.10
    }
}

virtual_server 198.18.0.10 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP

    real_server 198.18.1.11 80 {
        weight 3
        inhibit_on_failure
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 198.18.1.12 80 {
        weight 1
        inhibit_on_failure
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
}

virtual_server 198.18.0.10 443 {
    delay_loop 10
    lb_algo sh
    sh-port
    lb_kind DR
    protocol TCP
    sorry_server 198.18.1.99 443

    real_server 198.18.1.11 443 {
        weight 1
        TCP_CHECK {
            connect_port 443
            connect_timeout 5
        }
    }
    real_server 198.18.1.12 443 {   # the second server
        weight 1
        notify_down "/usr/local/bin/alert down"
        TCP_CHECK {
            connect_port 443
            connect_timeout 5
        }
    }
}
"#;

/// What the operator writes around the imported services.
const HEADER: &str = r#"[eal]
args = ["-l", "0-1"]

[[ports]]
name = "wan"
device = "net_af_packet0,iface=veth-wan"
addresses = ["198.18.0.1/24"]

[[ports]]
name = "lan"
device = "net_af_packet1,iface=veth-lan"
addresses = ["198.18.1.1/24"]

[fullnat]
local_addresses = ["198.18.1.100"]
"#;

fn translated(text: &str) -> Translation {
    translate(text, "keepalived.conf").unwrap_or_else(|error| panic!("{error}"))
}

/// The translation of `text` inside a whole configuration, parsed and
/// validated by rvsd's own parser.
fn configured(text: &str) -> (Config, Vec<String>) {
    let translation = translated(text);
    let whole = format!("{HEADER}\n{}", translation.toml);
    let config =
        config::parse(&whole).unwrap_or_else(|error| panic!("{error}\nin:\n{}", translation.toml));
    let report = translation
        .untranslated
        .iter()
        .map(ToString::to_string)
        .collect();
    (config, report)
}

/// An unchecked real server, or one checked as its service says.
fn real(address: &str, weight: u32, forward: ForwardMethod) -> RealServerConfig {
    RealServerConfig {
        spec: RealServerSpec {
            address: address.parse().unwrap(),
            weight,
            forward,
            upper_threshold: 0,
            lower_threshold: 0,
        },
        health_check: None,
    }
}

#[test]
fn a_dr_director_becomes_two_services_with_their_checks() {
    let (config, report) = configured(DR_CONF);
    assert_eq!(
        config.timeouts,
        crate::model::Timeouts {
            tcp: 7200,
            tcp_fin: 120,
            udp: 300
        }
    );
    let expected = [
        ServiceConfig {
            protocol: Protocol::Tcp,
            address: "198.18.0.10:80".parse().unwrap(),
            scheduler: SchedulerName::Wrr,
            scheduler_flags: vec![],
            persistence: Some(Persistence {
                timeout: 50,
                netmask: 24,
            }),
            local_addresses: vec![],
            real_servers: vec![
                real("198.18.1.11:80", 3, ForwardMethod::Route),
                real("198.18.1.12:80", 1, ForwardMethod::Route),
            ],
            health_check: Some(HealthCheckConfig {
                kind: HealthCheckKind::Http,
                port: None,
                path: Some("/health".into()),
                status: Some(200),
                virtualhost: None,
                digest: None,
                connect_timeout: 3,
                delay_loop: 6,
                retry: 3,
                retry_delay: 3,
                rise: 1,
                on_failure: OnFailure::Inhibit,
                command: None,
            }),
        },
        ServiceConfig {
            protocol: Protocol::Tcp,
            address: "198.18.0.10:443".parse().unwrap(),
            scheduler: SchedulerName::Sh,
            scheduler_flags: vec!["sh-port".into()],
            persistence: None,
            local_addresses: vec![],
            real_servers: vec![
                real("198.18.1.11:443", 1, ForwardMethod::Route),
                real("198.18.1.12:443", 1, ForwardMethod::Route),
            ],
            // keepalived's defaults, written out: retry 1, 1 s between.
            health_check: Some(HealthCheckConfig {
                kind: HealthCheckKind::Tcp,
                port: None,
                path: None,
                status: None,
                virtualhost: None,
                digest: None,
                connect_timeout: 5,
                delay_loop: 10,
                retry: 1,
                retry_delay: 1,
                rise: 1,
                on_failure: OnFailure::Remove,
                command: None,
            }),
        },
    ];
    assert_eq!(config.services, expected);
    assert_eq!(
        report,
        [
            "untranslated: keepalived.conf:4: notification_email: keepalived's own setting; rvs has no equivalent",
            "untranslated: keepalived.conf:7: router_id LVS_DEVEL: keepalived's own setting; rvs has no equivalent",
            "untranslated: keepalived.conf:11: vrrp_instance VI_1: rvs has no VRRP; keepalived can keep running its VRRP instances beside rvsd (a keepalived.conf without virtual_server blocks)",
            "untranslated: keepalived.conf:64: sorry_server 198.18.1.99 443: rvs has no sorry server",
            "untranslated: keepalived.conf:75: notify_down \"/usr/local/bin/alert down\": rvs runs no notify scripts",
        ]
    );
}

#[test]
fn the_toml_names_its_sources_and_reads_as_written() {
    let toml = translated(DR_CONF).toml;
    let expected_start = "\
# rvsd configuration translated from keepalived.conf by rvsadm --import-keepalived.
# Only the services part: add it to a configuration with [eal] and [[ports]]
# (see rvs.example.toml), then check it with rvsd --check-config FILE.
# 5 directive(s) could not be translated: rvsadm listed them on stderr.

# keepalived.conf:8: lvs_timeouts tcp 7200 tcpfin 120 udp 300
[timeouts]
tcp = 7200
tcp_fin = 120
udp = 300

# keepalived.conf:22: virtual_server 198.18.0.10 80
[[services]]
protocol = \"tcp\"
address = \"198.18.0.10:80\"
scheduler = \"wrr\"
persistence = { timeout = 50, netmask = 24 }

[services.health_check]
kind = \"http\"
path = \"/health\"
status = 200
connect_timeout = 3
delay_loop = 6
retry = 3
retry_delay = 3
on_failure = \"inhibit\"

# keepalived.conf:30: real_server 198.18.1.11 80
[[services.real_servers]]
address = \"198.18.1.11:80\"
forward = \"route\"
weight = 3
";
    assert!(toml.starts_with(expected_start), "{toml}");
}

/// The imported configuration, loaded as rvsd loads it, lists as ipvsadm
/// would list the IPVS table keepalived builds from the same file.
#[test]
fn the_imported_configuration_lists_as_keepalived_s_table() {
    let (config, _) = configured(DR_CONF);
    let macs = vec![MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])];
    let limits = Limits {
        services: 8,
        real_servers: 8,
    };
    let control = Control::new(&config, macs, limits).expect("rvsd accepts the import");
    let services = control
        .status(None, &[], &Estimator::default(), &Default::default())
        .expect("a listing");
    let info = DaemonInfo {
        version: "0.1.0".into(),
        connection_table_size: 4096,
        workers: 1,
    };
    let options = ListOptions {
        numeric: true,
        sort: true,
        ..ListOptions::default()
    };
    let names = Names::from_tables("", "");
    assert_eq!(
        listing(Some(&info), &services, &options, &names),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.10:80 wrr persistent 50 mask 255.255.255.0
  -> 198.18.1.11:80               Route   3      0          0         
  -> 198.18.1.12:80               Route   1      0          0         
TCP  198.18.0.10:443 sh (sh-port)
  -> 198.18.1.11:443              Route   1      0          0         
  -> 198.18.1.12:443              Route   1      0          0         
"
    );
}

#[test]
fn nat_fullnat_misc_and_ssl_checks() {
    let conf = r#"
local_address_group laddr_g1 {
    198.18.1.100-101
}
virtual_server 198.18.0.20 8080 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    retry 2
    real_server 198.18.1.21 53 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check-dns 198.18.1.21"
            misc_timeout 4
        }
    }
    real_server 198.18.1.22 {
        lvs_method FNAT
        MISC_CHECK {
            misc_path "/usr/local/bin/check-dns 198.18.1.21"
            misc_timeout 4
        }
    }
}
virtual_server 198.18.0.21 443
{
    lb_kind FNAT
    laddr_group_name laddr_g1
    persistence_granularity 255.255.0.0
    inhibit_on_failure
    real_server 198.18.9.31 8443 {
        uthreshold 100
        lthreshold 50
        SSL_GET {
            url { path /ping }
            url { path /other }
            connect_port 9443
            delay_loop 2
        }
    }
}
"#;
    let (config, report) = configured(conf);
    let [nat, fullnat] = config.services.as_slice() else {
        panic!("{:?}", config.services)
    };
    assert_eq!(nat.protocol, Protocol::Udp);
    assert_eq!(nat.scheduler, SchedulerName::Rr);
    assert_eq!(
        nat.real_servers,
        [
            real("198.18.1.21:53", 1, ForwardMethod::Masq),
            real("198.18.1.22:8080", 1, ForwardMethod::FullNat),
        ]
    );
    let misc = nat.health_check.as_ref().unwrap();
    assert_eq!(
        (
            misc.kind,
            misc.command.as_deref(),
            misc.connect_timeout,
            misc.retry,
            misc.delay_loop
        ),
        (
            HealthCheckKind::Misc,
            Some("/usr/local/bin/check-dns 198.18.1.21"),
            4,
            2,
            60
        )
    );
    assert_eq!(
        fullnat.local_addresses,
        [
            "198.18.1.100".parse::<IpAddr>().unwrap(),
            "198.18.1.101".parse().unwrap()
        ]
    );
    assert_eq!(
        fullnat.persistence,
        Some(Persistence {
            timeout: 300,
            netmask: 16
        })
    );
    assert_eq!(
        fullnat.real_servers,
        [RealServerConfig {
            spec: RealServerSpec {
                upper_threshold: 100,
                lower_threshold: 50,
                ..real("198.18.9.31:8443", 1, ForwardMethod::FullNat).spec
            },
            health_check: None,
        }]
    );
    let ssl = fullnat.health_check.as_ref().unwrap();
    assert_eq!(
        (
            ssl.kind,
            ssl.port,
            ssl.path.as_deref(),
            ssl.status,
            ssl.delay_loop,
            ssl.on_failure
        ),
        (
            HealthCheckKind::Https,
            Some(9443),
            Some("/ping"),
            None,
            2,
            OnFailure::Inhibit
        )
    );
    assert_eq!(
        report,
        [
            "untranslated: keepalived.conf:35: url: rvs checks one URL per real server; the first is kept"
        ]
    );
}

/// `virtualhost` at each of its four levels, the innermost winning as in
/// keepalived, and `digest` in lowercase.
#[test]
fn virtualhost_and_digest_are_translated() {
    let conf = r#"
virtual_server 198.18.0.40 80 {
    virtualhost vs.example.com
    real_server 198.18.1.41 80 {
        HTTP_GET {
            url { path / }
        }
    }
}
virtual_server 198.18.0.41 80 {
    virtualhost vs.example.com
    real_server 198.18.1.41 80 {
        virtualhost rs.example.com
        HTTP_GET {
            url { path / }
        }
    }
}
virtual_server 198.18.0.42 80 {
    real_server 198.18.1.41 80 {
        HTTP_GET {
            virtualhost checker.example.com
            url { path / }
        }
        virtualhost rs.example.com
    }
    virtualhost vs.example.com
}
virtual_server 198.18.0.43 443 {
    virtualhost vs.example.com
    real_server 198.18.1.41 443 {
        virtualhost rs.example.com
        SSL_GET {
            virtualhost checker.example.com
            enable_sni
            url {
                path /index.html
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                virtualhost url.example.com
                status_code 200
            }
        }
    }
}
virtual_server 198.18.0.44 80 {
    real_server 198.18.1.41 80 {
        HTTP_GET {
            url {
                path /
                digest 9b3a0c85a887a256
            }
        }
    }
}
"#;
    let (config, report) = configured(conf);
    let checks: Vec<(Option<&str>, Option<&str>)> = config
        .services
        .iter()
        .map(|service| {
            let check = service.health_check.as_ref().unwrap();
            (check.virtualhost.as_deref(), check.digest.as_deref())
        })
        .collect();
    assert_eq!(
        checks,
        [
            (Some("vs.example.com"), None),
            (Some("rs.example.com"), None),
            (Some("checker.example.com"), None),
            (
                Some("url.example.com"),
                Some("9b3a0c85a887a256d6939da88aabd8cd")
            ),
            (None, None),
        ]
    );
    assert_eq!(
        report,
        [
            "untranslated: keepalived.conf:50: digest 9b3a0c85a887a256: \"9b3a0c85a887a256\" is not an MD5 digest: 32 hex digits, as genhash prints them"
        ]
    );
    let toml = translated(conf).toml;
    assert!(
        toml.contains(
            "kind = \"https\"\npath = \"/index.html\"\nstatus = 200\nvirtualhost = \"url.example.com\"\ndigest = \"9b3a0c85a887a256d6939da88aabd8cd\"\n"
        ),
        "{toml}"
    );
}

/// A real server's virtualhost is its check's: real servers with
/// different ones keep checks of their own.
#[test]
fn virtualhosts_of_real_servers_make_their_checks_differ() {
    let conf = r#"
virtual_server 198.18.0.40 80 {
    real_server 198.18.1.41 80 {
        virtualhost a.example.com
        HTTP_GET { url { path / } }
    }
    real_server 198.18.1.42 80 {
        virtualhost b.example.com
        HTTP_GET { url { path / } }
    }
    real_server 198.18.1.43 80 {
        virtualhost "bad name"
        TCP_CHECK { virtualhost c.example.com }
    }
}
"#;
    let (config, report) = configured(conf);
    let service = &config.services[0];
    assert_eq!(service.health_check, None);
    let hosts: Vec<(HealthCheckKind, Option<&str>)> = service
        .real_servers
        .iter()
        .map(|real| {
            let check = real.health_check.as_ref().expect("a check of its own");
            (check.kind, check.virtualhost.as_deref())
        })
        .collect();
    assert_eq!(
        hosts,
        [
            (HealthCheckKind::Http, Some("a.example.com")),
            (HealthCheckKind::Http, Some("b.example.com")),
            (HealthCheckKind::Tcp, None),
        ]
    );
    let f = "untranslated: keepalived.conf";
    assert_eq!(
        report,
        [
            format!(
                "{f}:12: virtualhost \"bad name\": \"bad name\" is not a host name: visible ASCII only, no white space"
            ),
            format!(
                "{f}:13: virtualhost c.example.com: not a TCP_CHECK setting the translator knows"
            ),
        ]
    );
}

#[test]
fn what_rvs_cannot_express_is_reported_with_its_line() {
    let conf = r#"include /etc/keepalived/conf.d/*.conf
virtual_server fwmark 1 {
    real_server 198.18.1.11 80
}
virtual_server group web {
}
virtual_server_group web {
    198.18.0.10 80
}
virtual_server 198.18.0.30 80 {
    protocol SCTP
}
virtual_server 198.18.0.31 80 {
    lb_algo fancy
    lb_kind DR
    ops
    quorum 2
    mh-port
    real_server 198.18.1.11 8080 {
        weight 70000
        TCP_CHECK {
            connect_ip 198.18.1.99
        }
        HTTP_GET {
            url { path / }
        }
    }
    real_server 198.18.1.12 80 {
        TCP_CHECK {
            connect_timeout 9
        }
    }
    real_server 198.18.1.13 80
    real_server fd00::14 80
    real_server 198.18.1.13
}
vrrp_script chk_haproxy {
    script "killall -0 haproxy"
}
"#;
    let translation = translated(conf);
    let report: Vec<String> = translation
        .untranslated
        .iter()
        .map(ToString::to_string)
        .collect();
    let f = "untranslated: keepalived.conf";
    assert_eq!(
        report,
        [
            format!(
                "{f}:1: include /etc/keepalived/conf.d/*.conf: included files are not read: import each of them on its own"
            ),
            format!(
                "{f}:2: virtual_server fwmark 1: rvs has no firewall-mark services yet (rvsadm refuses -f too)"
            ),
            format!(
                "{f}:5: virtual_server group web: rvs has no virtual server groups: write one virtual_server per address"
            ),
            format!(
                "{f}:7: virtual_server_group web: rvs has no virtual server groups: write one virtual_server per address"
            ),
            format!(
                "{f}:10: virtual_server 198.18.0.30 80: protocol SCTP: rvs has TCP and UDP services only"
            ),
            format!(
                "{f}:14: lb_algo fancy: scheduler 'fancy' is unknown (known: rr wrr lc wlc sed nq lblc lblcr dh sh fo ovf twos mh)"
            ),
            format!("{f}:16: ops: one-packet scheduling is not supported (rvsadm refuses -o too)"),
            format!("{f}:17: quorum 2: rvs has no quorum actions"),
            format!("{f}:18: mh-port: scheduler flag \"mh-port\" needs scheduler mh, not wlc"),
            format!("{f}:20: weight 70000: 70000 is not a whole number from 0 to 65535"),
            format!(
                "{f}:22: connect_ip 198.18.1.99: rvs checks the real server's own address, from an address of its choice"
            ),
            format!(
                "{f}:24: HTTP_GET: rvs runs one health check per real server; the first one is kept"
            ),
            format!(
                "{f}:34: real_server fd00::14 80: its address family differs from the virtual server's, which rvs does not support"
            ),
            format!("{f}:35: real_server 198.18.1.13: duplicate of the real server at line 33"),
            format!(
                "{f}:37: vrrp_script chk_haproxy: rvs has no VRRP; keepalived can keep running its VRRP instances beside rvsd (a keepalived.conf without virtual_server blocks)"
            ),
        ]
    );
    // The DR real server's port is the virtual server's, as keepalived
    // makes it, and the TOML says why.
    assert!(
        translation.toml.contains(
            "# port 8080 reset to the virtual server's 80, as keepalived and IPVS do: Route cannot map ports\n[[services.real_servers]]\naddress = \"198.18.1.11:80\"\n"
        ),
        "{}",
        translation.toml
    );
    let (config, _) = configured(conf);
    assert_eq!(config.services.len(), 1);
    let service = &config.services[0];
    assert_eq!(service.scheduler, SchedulerName::Wlc);
    // Their checks differ, and one has none: each keeps its own, and the
    // one without stays unchecked, as in keepalived.
    assert_eq!(service.health_check, None);
    let timeouts: Vec<Option<u32>> = service
        .real_servers
        .iter()
        .map(|real| {
            real.health_check
                .as_ref()
                .map(|check| check.connect_timeout)
        })
        .collect();
    assert_eq!(timeouts, [Some(5), Some(9), None]);
}

#[test]
fn keepalived_syntax_comments_quotes_and_braces() {
    let nodes =
        parse("a 1 # comment\nb \"two words\" ! more\nc{d \"{\"}\ne\n{\n  f \"\"\n}\n").unwrap();
    let words = |node: &Node| node.words.join("|");
    assert_eq!(
        nodes.iter().map(words).collect::<Vec<_>>(),
        ["a|1", "b|two words", "c", "e"]
    );
    assert_eq!(words(&nodes[2].children()[0]), "d|{");
    assert_eq!(nodes[3].children()[0].words, ["f", ""]);
    assert_eq!(nodes[3].children()[0].line, 6);
    assert_eq!(nodes[1].text(), "b \"two words\"");
    assert_eq!(
        tokens(r#"misc_path "/bin/check \"x\" \\ y""#).unwrap(),
        [
            Token::Word("misc_path".into()),
            Token::Word(r#"/bin/check "x" \ y"#.into())
        ]
    );
    for (text, line, message) in [
        ("a {\n b\n", 1, "the block of `a` is not closed"),
        ("a\n}\n", 2, "`}` without a `{` to close"),
        ("{\n}\n", 1, "`{` without a keyword before it"),
        ("a \"b\n", 1, "unterminated string (a \" without its end)"),
    ] {
        match translate(text, "k.conf") {
            Err(ImportError::Syntax {
                file,
                line: at,
                message: said,
            }) => assert_eq!(
                (file.as_str(), at, said.as_str()),
                ("k.conf", line, message)
            ),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert_eq!(translated("").untranslated, []);
}

/// `rvsadm --import-keepalived`: TOML on stdout, the report on stderr,
/// status 0, 3 (something left out) or 2 (no translation at all).
#[test]
fn rvsadm_prints_the_translation_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let environment = Environment {
            program: "rvsadm".into(),
            names: Names::from_tables("", ""),
            default_socket: dir.path().join("rvsd.sock"),
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = ipvsadm::run(
            &args,
            &environment,
            &mut Terminal {
                stdin: &mut std::io::empty(),
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
            |_: &Path| -> Result<Client, ProtocolError> { panic!("the import needs no daemon") },
        );
        (
            status,
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    };
    let complete = dir.path().join("complete.conf");
    std::fs::write(
        &complete,
        "virtual_server 198.18.0.10 80 {\n  lb_kind NAT\n  real_server 198.18.1.11 8080\n}\n",
    )
    .unwrap();
    let (status, stdout, stderr) = run(&["--import-keepalived", complete.to_str().unwrap()]);
    assert_eq!((status, stderr.as_str()), (0, ""));
    assert!(
        stdout.contains("[[services.real_servers]]\naddress = \"198.18.1.11:8080\"\nforward = \"masq\"\nweight = 1\n"),
        "{stdout}"
    );

    let partial = dir.path().join("keepalived.conf");
    std::fs::write(&partial, DR_CONF).unwrap();
    let argument = format!("--import-keepalived={}", partial.display());
    let (status, stdout, stderr) = run(&[&argument]);
    assert_eq!(status, EXIT_INCOMPLETE);
    assert_eq!(
        stdout,
        translate(DR_CONF, &partial.display().to_string())
            .unwrap()
            .toml
    );
    assert_eq!(stderr.lines().count(), 5, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "untranslated: {}:4: notification_email: ",
            partial.display()
        )),
        "{stderr}"
    );

    let missing = dir.path().join("missing.conf");
    let (status, stdout, stderr) = run(&["--import-keepalived", missing.to_str().unwrap()]);
    assert_eq!((status, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        format!(
            "{}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );

    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, "virtual_server 198.18.0.10 80 {\n").unwrap();
    let (status, _, stderr) = run(&["--import-keepalived", broken.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert_eq!(
        stderr,
        format!(
            "{}:1: the block of `virtual_server 198.18.0.10 80` is not closed\n",
            broken.display()
        )
    );

    let (status, _, stderr) = run(&["--import-keepalived", "a.conf", "-n"]);
    assert_eq!(
        (status, stderr.as_str()),
        (
            2,
            "unexpected argument -n: --import-keepalived takes one file and no other option\n"
        )
    );
    let (status, _, stderr) = run(&["--import-keepalived"]);
    assert_eq!(
        (status, stderr.as_str()),
        (
            255,
            "Try `rvsadm -h' or 'rvsadm --help' for more information.\n"
        )
    );
    let (status, _, stderr) = run(&["-L", "--import-keepalived", "a.conf"]);
    assert_eq!(
        (status, stderr.as_str()),
        (2, "invalid option `--import-keepalived'\n")
    );
    let (_, usage, _) = run(&["-h"]);
    assert!(
        usage.contains("  rvsadm --import-keepalived FILE\n"),
        "{usage}"
    );
}

#[test]
fn listed_ipv6_services_keep_their_brackets() {
    let (config, report) = configured(
        "virtual_server fd00::10 80 {\n persistence_timeout\n persistence_granularity 64\n lb_kind TUN\n real_server fd00:9::11 80\n}\n",
    );
    assert_eq!(report, Vec::<String>::new());
    let service = &config.services[0];
    assert_eq!(
        service.address,
        "[fd00::10]:80".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        service.persistence,
        Some(Persistence {
            timeout: 300,
            netmask: 64
        })
    );
    assert_eq!(
        service.real_servers,
        [real("[fd00:9::11]:80", 1, ForwardMethod::Tunnel)]
    );
}

/// A virtual server of port 0 (every port) becomes a persistent service
/// of port 0 whose real servers have port 0; their checks need a port.
#[test]
fn a_virtual_server_of_every_port_keeps_port_0() {
    let conf = r#"
virtual_server 198.18.0.50 0 {
    lb_kind DR
    persistence_timeout 600
    real_server 198.18.1.11 80 {
        TCP_CHECK { connect_port 443 }
    }
    real_server 198.18.1.12 {
        TCP_CHECK { }
    }
}
virtual_server 198.18.0.51 0 {
    real_server 198.18.1.11 80
}
"#;
    let (config, report) = configured(conf);
    let f = "untranslated: keepalived.conf";
    assert_eq!(
        report,
        [
            format!(
                "{f}:9: TCP_CHECK: it has no connect_port, and a real server of a service of every port has no port of its own to check"
            ),
            format!(
                "{f}:12: virtual_server 198.18.0.51 0: port 0 (every port) is only for a persistent service, in IPVS as in rvs: it has no persistence_timeout"
            ),
        ]
    );
    let [service] = config.services.as_slice() else {
        panic!("{:?}", config.services)
    };
    assert_eq!(service.address, "198.18.0.50:0".parse().unwrap());
    assert_eq!(service.persistence.map(|p| p.timeout), Some(600));
    let ports: Vec<(SocketAddr, Option<u16>)> = service
        .real_servers
        .iter()
        .map(|real| {
            (
                real.spec.address,
                real.health_check.as_ref().and_then(|check| check.port),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("198.18.1.11:0".parse().unwrap(), Some(443)),
            ("198.18.1.12:0".parse().unwrap(), None),
        ]
    );
    assert!(
        translated(conf).toml.contains(
            "# port 80 reset to 0: the real servers of a service of every port serve the port the client asked for\n"
        )
    );
}
