//! Health checks and the control state: the actions of a verdict, edits
//! and reloads around them, and checkers run by the supervisor.

use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;

use dataplane::wire::MacAddr;

use super::machine::Failure;
use super::*;
use crate::config::{Config, HealthCheckKind};
use crate::daemon::reload::{self, Desired};
use crate::daemon::state::tests::config_with;
use crate::daemon::{Estimator, LIMITS, Refusal};
use crate::model::{Protocol, RealServerSpec};
use crate::protocol::{RealServerChange, RealServerRef};

/// A service on 198.18.0.10:`port` with `check` (an inline table's
/// contents) and masq real servers 198.18.1.`last`:`port` of `weight`.
fn service(port: u16, check: Option<&str>, real_servers: &[(u8, u32)]) -> String {
    let mut text = format!(
        "\n[[services]]\nprotocol = \"tcp\"\naddress = \"198.18.0.10:{port}\"\nscheduler = \"rr\"\n"
    );
    if let Some(check) = check {
        text += &format!("health_check = {{ {check} }}\n");
    }
    for (last, weight) in real_servers {
        text += &format!(
            "\n[[services.real_servers]]\naddress = \"198.18.1.{last}:{port}\"\nforward = \"masq\"\nweight = {weight}\n"
        );
    }
    text
}

fn control_of(config: &Config) -> Control {
    Control::new(config, vec![MacAddr::ZERO; 2], LIMITS).expect("valid state")
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        address: SocketAddr::from(([198, 18, 0, 10], port)),
    }
}

fn rip(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([198, 18, 1, last], port))
}

/// A supervisor whose checkers report nowhere, to apply reports by hand.
fn detached() -> Supervisor {
    Supervisor::new(Weak::<Harness>::new())
}

fn target(control: &Control, real_server: SocketAddr) -> Target {
    control
        .health_targets()
        .into_iter()
        .find(|target| target.real_server == real_server)
        .expect("a checked real server")
}

/// Feeds `outcome` to `machine` and words the result as `target`'s
/// checker would.
fn observe(machine: &mut Machine, target: &Target, outcome: Result<(), Failure>) -> HealthReport {
    let step = machine.observe(outcome);
    HealthReport {
        service: target.service,
        real_server: target.real_server,
        epoch: target.epoch,
        record: machine.record().clone(),
        transition: step.transition,
    }
}

fn refused() -> Result<(), Failure> {
    Err(Failure::new("connection refused"))
}

/// The weight the workers use for each real server of service `index`,
/// in order; a removed real server is not there.
fn dataplane_weights(control: &mut Control, index: usize) -> Vec<(IpAddr, u32)> {
    control.snapshot().services[index]
        .real_servers
        .iter()
        .map(|rs| (rs.address, rs.weight))
        .collect()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 18, 1, last])
}

const INHIBIT: &str = r#"kind = "tcp", retry = 1, rise = 2, on_failure = "inhibit""#;
const REMOVE: &str = r#"kind = "tcp", retry = 0, rise = 1, on_failure = "remove""#;

/// Real servers start up; down, `inhibit` keeps a real server with weight
/// 0 and `remove` takes it out, and both come back as they were.
#[test]
fn a_verdict_inhibits_or_removes_and_recovery_restores() {
    let config = config_with(&format!(
        "{}{}",
        service(80, Some(INHIBIT), &[(11, 3), (12, 1)]),
        service(81, Some(REMOVE), &[(13, 2), (14, 5)]),
    ));
    let mut control = control_of(&config);
    let supervisor = detached();
    assert_eq!(control.health_targets().len(), 4);
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 3), (ip(12), 1)]
    );
    assert_eq!(
        dataplane_weights(&mut control, 1),
        [(ip(13), 2), (ip(14), 5)]
    );
    let listed = control.health_of(&key(80), rip(11, 80)).unwrap();
    assert_eq!(listed.record.state, HealthState::Up, "up from the start");

    // Inhibit: down after retry + 1 = 2 failures, weight 0, listed so.
    let inhibited = target(&control, rip(11, 80));
    let mut machine = Machine::new(Timing::of(&inhibited.check));
    let first = observe(&mut machine, &inhibited, refused());
    assert!(
        !supervisor.apply(&mut control, first),
        "one failure: still up"
    );
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 3), (ip(12), 1)]
    );
    let second = observe(&mut machine, &inhibited, refused());
    assert!(supervisor.apply(&mut control, second), "down: publish");
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 0), (ip(12), 1)]
    );

    // Remove: down at the first failure, out of the snapshot.
    let removed = target(&control, rip(14, 81));
    let mut removed_machine = Machine::new(Timing::of(&removed.check));
    let report = observe(&mut removed_machine, &removed, refused());
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(dataplane_weights(&mut control, 1), [(ip(13), 2)]);

    // The listing: the inhibited one with weight 0, the removed one apart.
    let listing = control
        .status(None, &[], &Estimator::default(), &Default::default())
        .unwrap();
    let rs = &listing[0].real_servers[0];
    assert_eq!(rs.spec.weight, 0);
    let health = rs.health.as_ref().unwrap();
    assert_eq!(
        (health.record.state, health.record.failures, health.weight),
        (HealthState::Down, 2, 3)
    );
    assert_eq!(health.on_failure, OnFailure::Inhibit);
    assert_eq!(
        health.record.last_failure.as_deref(),
        Some("connection refused")
    );
    assert_eq!(listing[1].real_servers.len(), 1);
    let gone = &listing[1].removed_real_servers[0];
    assert_eq!((gone.spec.address, gone.spec.weight), (rip(14, 81), 0));
    assert_eq!(gone.health.as_ref().unwrap().weight, 5);
    // A reload sees what the file said, not the health checks' doing.
    assert_eq!(control.desired(), Desired::of(&config));
    assert_eq!(
        reload::changes(&control.desired(), &Desired::of(&config)),
        []
    );

    // Up again: rise = 2 successes for the inhibited one.
    let report = observe(&mut machine, &inhibited, Ok(()));
    assert!(!supervisor.apply(&mut control, report));
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 0), (ip(12), 1)]
    );
    let report = observe(&mut machine, &inhibited, Ok(()));
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 3), (ip(12), 1)]
    );
    let report = observe(&mut removed_machine, &removed, Ok(()));
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(
        dataplane_weights(&mut control, 1),
        [(ip(13), 2), (ip(14), 5)]
    );
    let health = control.health_of(&key(80), rip(11, 80)).unwrap();
    assert_eq!((health.record.went_down, health.record.went_up), (1, 1));
    assert_eq!(health.record.checks.failure, 2);
}

/// A removed real server keeps its slot, so that its connections and
/// counters go on and it comes back without needing a free one.
#[test]
fn a_removed_real_server_keeps_its_slot() {
    let mut control = control_of(&config_with(&service(81, Some(REMOVE), &[(13, 2)])));
    let slot = control.snapshot().services[0].real_servers[0].slot;
    let removed = target(&control, rip(13, 81));
    let mut machine = Machine::new(Timing::of(&removed.check));
    let report = observe(&mut machine, &removed, refused());
    assert!(detached().apply(&mut control, report));
    assert!(control.snapshot().services[0].real_servers.is_empty());
    assert!(control.real_server_slots().contains(&slot));
    let report = observe(&mut machine, &removed, Ok(()));
    assert!(detached().apply(&mut control, report));
    assert_eq!(control.snapshot().services[0].real_servers[0].slot, slot);
}

fn edit_weight(control: &mut Control, weight: u32) {
    let real_server = RealServerSpec {
        address: rip(11, 80),
        weight,
        forward: crate::model::ForwardMethod::Masq,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    control
        .apply(&Change::EditRealServer(RealServerChange {
            service: key(80),
            real_server,
        }))
        .unwrap();
}

/// `rvsadm -e` of an up real server's weight is the weight it gets back
/// after being down; while it is down, an edit waits for it to be up.
#[test]
fn operator_weights_are_the_ones_restored() {
    let check = r#"kind = "tcp", retry = 0, rise = 1, on_failure = "inhibit""#;
    let mut control = control_of(&config_with(&service(80, Some(check), &[(11, 3)])));
    let supervisor = detached();
    edit_weight(&mut control, 5);
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 5)]);
    let checked = target(&control, rip(11, 80));
    assert_eq!(checked.epoch, target(&control, rip(11, 80)).epoch);
    let mut machine = Machine::new(Timing::of(&checked.check));
    let report = observe(&mut machine, &checked, refused());
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 0)]);
    edit_weight(&mut control, 7);
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 0)],
        "still down"
    );
    assert_eq!(control.health_of(&key(80), rip(11, 80)).unwrap().weight, 7);
    let report = observe(&mut machine, &checked, Ok(()));
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 7)]);
    // The edit kept the checker.
    assert_eq!(target(&control, rip(11, 80)).epoch, checked.epoch);
}

/// Real servers rvsadm adds to a checked service are checked too; one
/// rvsadm deletes, or a replaced checker, can no longer be reported on.
#[test]
fn reports_of_replaced_checkers_change_nothing() {
    let mut control = control_of(&config_with(&service(80, Some(INHIBIT), &[(11, 3)])));
    let supervisor = detached();
    control
        .apply(&Change::AddRealServer(RealServerChange {
            service: key(80),
            real_server: RealServerSpec {
                address: rip(12, 80),
                weight: 1,
                forward: crate::model::ForwardMethod::Masq,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        }))
        .unwrap();
    let added = target(&control, rip(12, 80));
    let old = target(&control, rip(11, 80));
    assert_ne!(added.epoch, old.epoch);

    // A reload changes the health check: every checker starts afresh.
    let changed = config_with(&service(
        80,
        Some(r#"kind = "tcp", retry = 0, on_failure = "inhibit""#),
        &[(11, 3), (12, 1)],
    ));
    reload_a_new_check_of_service_80(&mut control, &changed);
    let fresh = target(&control, rip(11, 80));
    assert_ne!(fresh.epoch, old.epoch);
    assert_eq!(fresh.check.retry, 0);

    let mut machine = Machine::new(Timing {
        retry: 0,
        ..Timing::of(&old.check)
    });
    let stale = observe(&mut machine, &old, refused());
    assert_eq!(
        control.apply(&Change::Health(stale.clone())),
        Err(Refusal {
            status: crate::protocol::Status::NotFound,
            message: "the real server's health checker was replaced".to_owned()
        })
    );
    assert!(!supervisor.apply(&mut control, stale));
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(11), 3), (ip(12), 1)]
    );

    control
        .apply(&Change::DeleteRealServer(RealServerRef {
            service: key(80),
            address: rip(12, 80),
        }))
        .unwrap();
    let mut machine = Machine::new(Timing::of(&added.check));
    let deleted = observe(&mut machine, &added, refused());
    assert!(!supervisor.apply(&mut control, deleted));
    assert_eq!(control.health_targets().len(), 1);

    // Without its health check, a service's real servers are in service
    // whatever a checker said, and unchecked.
    let report = observe(
        &mut Machine::new(Timing::of(&fresh.check)),
        &fresh,
        refused(),
    );
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 0)]);
    control
        .apply(&Change::SetHealthCheck(key(80), None))
        .unwrap();
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 3)]);
    assert!(control.health_targets().is_empty());
    assert_eq!(control.health_of(&key(80), rip(11, 80)), None);
}

/// Reloads `file`, which differs from the running state by the health
/// check of the service on port 80 only.
fn reload_a_new_check_of_service_80(control: &mut Control, file: &Config) {
    let changes = reload::changes(&control.desired(), &Desired::of(file));
    assert_eq!(
        changes,
        [Change::SetHealthCheck(
            key(80),
            file.services[0].health_check.clone()
        )]
    );
    reload::apply_all(control, &changes).unwrap();
}

/// `service(port, check, ..)` with `own` as the health check of its
/// first real server.
fn with_own_check(port: u16, check: Option<&str>, real_servers: &[(u8, u32)], own: &str) -> String {
    let first = format!("198.18.1.{}:{port}\"\n", real_servers[0].0);
    service(port, check, real_servers).replacen(
        &first,
        &format!("{first}health_check = {{ {own} }}\n"),
        1,
    )
}

/// A real server's own check replaces its service's, for it alone: its
/// own verdict and action, and reloads of either check restart only the
/// checkers they concern.
#[test]
fn a_real_servers_own_check_replaces_the_services() {
    let own = r#"kind = "misc", command = "true", retry = 0, on_failure = "remove""#;
    let config = config_with(&format!(
        "{}{}",
        with_own_check(80, Some(INHIBIT), &[(12, 1), (11, 3)], own),
        with_own_check(81, None, &[(13, 2), (14, 5)], own),
    ));
    let mut control = control_of(&config);
    let supervisor = detached();
    let checks: Vec<(SocketAddr, HealthCheckKind)> = control
        .health_targets()
        .iter()
        .map(|target| (target.real_server, target.check.kind))
        .collect();
    assert_eq!(
        checks,
        [
            (rip(12, 80), HealthCheckKind::Misc),
            (rip(11, 80), HealthCheckKind::Tcp),
            (rip(13, 81), HealthCheckKind::Misc),
        ],
        "198.18.1.14 has no check of its own and its service none"
    );

    // Down, .12 is removed as its own check says, not inhibited as the
    // service's would.
    let twelve = target(&control, rip(12, 80));
    let mut machine = Machine::new(Timing::of(&twelve.check));
    let report = observe(&mut machine, &twelve, refused());
    assert!(supervisor.apply(&mut control, report));
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 3)]);
    let listed = control.health_of(&key(80), rip(12, 80)).unwrap();
    assert_eq!(
        (listed.record.state, listed.on_failure),
        (HealthState::Down, OnFailure::Remove)
    );

    // A new service check restarts .11's checker only: .12 stays down.
    let eleven = target(&control, rip(11, 80));
    let changed = config_with(&format!(
        "{}{}",
        with_own_check(80, Some(REMOVE), &[(12, 1), (11, 3)], own),
        with_own_check(81, None, &[(13, 2), (14, 5)], own),
    ));
    reload_a_new_check_of_service_80(&mut control, &changed);
    assert_ne!(target(&control, rip(11, 80)).epoch, eleven.epoch);
    assert_eq!(target(&control, rip(12, 80)).epoch, twelve.epoch);
    assert_eq!(dataplane_weights(&mut control, 0), [(ip(11), 3)]);

    // Without its own check, .12 takes the service's afresh, up.
    let dropped = config_with(&format!(
        "{}{}",
        service(80, Some(REMOVE), &[(12, 1), (11, 3)]),
        with_own_check(81, None, &[(13, 2), (14, 5)], own),
    ));
    let changes = reload::changes(&control.desired(), &Desired::of(&dropped));
    let twelve_ref = RealServerRef {
        service: key(80),
        address: rip(12, 80),
    };
    assert_eq!(
        changes,
        [Change::SetRealServerHealthCheck(twelve_ref, None)]
    );
    reload::apply_all(&mut control, &changes).unwrap();
    let fresh = target(&control, rip(12, 80));
    assert_ne!(fresh.epoch, twelve.epoch);
    assert_eq!(
        Some(&fresh.check),
        dropped.services[0].health_check.as_ref()
    );
    assert_eq!(
        dataplane_weights(&mut control, 0),
        [(ip(12), 1), (ip(11), 3)]
    );
    assert_eq!(
        reload::changes(&control.desired(), &Desired::of(&dropped)),
        []
    );

    // An own check on a service without one is .13's alone; dropped,
    // .13 is unchecked.
    control
        .apply(&Change::SetRealServerHealthCheck(
            RealServerRef {
                service: key(81),
                address: rip(13, 81),
            },
            None,
        ))
        .unwrap();
    assert_eq!(control.health_of(&key(81), rip(13, 81)), None);
    assert_eq!(control.health_targets().len(), 2);
}

#[test]
fn invalid_health_checks_are_refused_by_field() {
    let mut control = control_of(&config_with(&service(80, None, &[(11, 3)])));
    let mut check = config_with(&service(80, Some(INHIBIT), &[]))
        .services
        .remove(0)
        .health_check
        .unwrap();
    check.rise = 0;
    let refusal = control
        .apply(&Change::SetHealthCheck(key(80), Some(check)))
        .unwrap_err();
    assert_eq!(refusal.status, crate::protocol::Status::Invalid);
    assert!(
        refusal.message.starts_with("health_check.rise: "),
        "{}",
        refusal.message
    );
    assert!(control.health_targets().is_empty());
}

/// What the daemon is to checkers, without DPDK: the control state, the
/// supervisor, and every report passed on to the test.
struct Harness {
    control: Mutex<Control>,
    health: Supervisor,
    reports: mpsc::Sender<HealthReport>,
    publishes: AtomicUsize,
}

impl Sink for Harness {
    fn report(&self, report: HealthReport) {
        let mut control = lock(&self.control);
        if self.health.apply(&mut control, report.clone()) {
            // As `Daemon::publish`.
            self.health.sync(control.health_targets());
            control.snapshot();
            self.publishes.fetch_add(1, Ordering::Relaxed);
        }
        drop(control);
        let _ = self.reports.send(report);
    }
}

impl Harness {
    fn start(config: &Config) -> (Arc<Harness>, Inbox) {
        let (reports, receiver) = mpsc::channel();
        let harness = Arc::new_cyclic(|harness: &Weak<Harness>| Harness {
            control: Mutex::new(control_of(config)),
            health: Supervisor::new(harness.clone()),
            reports,
            publishes: AtomicUsize::new(0),
        });
        harness.health.sync(lock(&harness.control).health_targets());
        let inbox = Inbox {
            receiver,
            early: Vec::new(),
        };
        (harness, inbox)
    }

    /// What a reload to `config` does.
    fn reload(&self, config: &Config) {
        let mut control = lock(&self.control);
        let changes = reload::changes(&control.desired(), &Desired::of(config));
        reload::apply_all(&mut control, &changes).unwrap();
        self.health.sync(control.health_targets());
    }

    fn epochs(&self) -> HashMap<SocketAddr, u64> {
        lock(&self.health.checkers)
            .iter()
            .map(|((_, real_server), checker)| (*real_server, checker.epoch))
            .collect()
    }

    fn state(&self, service: u16, real_server: SocketAddr) -> Option<HealthState> {
        let control = lock(&self.control);
        Some(control.health_of(&key(service), real_server)?.record.state)
    }
}

/// The reports checkers made, in order, whatever they are about.
struct Inbox {
    receiver: mpsc::Receiver<HealthReport>,
    /// Received while waiting for a report about another real server.
    early: Vec<HealthReport>,
}

impl Inbox {
    /// The next report about `real_server`, within a few seconds.
    fn next(&mut self, real_server: SocketAddr) -> HealthReport {
        if let Some(at) = self.early.iter().position(|r| r.real_server == real_server) {
            return self.early.remove(at);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = self
                .receiver
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no report about {real_server}"));
            if report.real_server == real_server {
                return report;
            }
            self.early.push(report);
        }
    }
}

/// A misc check that is up while `flag` exists, checked every second.
fn flag_check(flag: &std::path::Path) -> String {
    format!(
        r#"kind = "misc", command = "test -e {}", delay_loop = 1, retry = 0, rise = 1, on_failure = "remove""#,
        flag.display()
    )
}

/// Checkers run by the supervisor check at once, then every delay_loop;
/// a verdict reaches the dataplane; a real server comes back.
#[test]
fn checkers_check_at_once_then_every_delay_loop() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("up");
    std::fs::write(&flag, "").unwrap();
    let config = config_with(&service(80, Some(&flag_check(&flag)), &[(11, 3)]));
    let (harness, mut reports) = Harness::start(&config);
    let started = Instant::now();
    let first = reports.next(rip(11, 80));
    assert!(started.elapsed() < Duration::from_millis(900), "at once");
    assert_eq!(
        (first.record.state, first.transition),
        (HealthState::Up, None)
    );

    std::fs::remove_file(&flag).unwrap();
    let down = reports.next(rip(11, 80));
    assert_eq!(down.transition, Some(HealthState::Down));
    assert_eq!(down.record.last_failure.as_deref(), Some("exit status 1"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "after delay_loop"
    );
    assert!(
        lock(&harness.control).snapshot().services[0]
            .real_servers
            .is_empty()
    );

    std::fs::write(&flag, "").unwrap();
    let up = reports.next(rip(11, 80));
    assert_eq!(up.transition, Some(HealthState::Up));
    assert_eq!(
        dataplane_weights(&mut lock(&harness.control), 0),
        [(ip(11), 3)]
    );
    assert_eq!(harness.publishes.load(Ordering::Relaxed), 2);
    join(harness.health.stop(), STOP_GRACE);
}

/// A TCP check against a listener on 127.0.0.1, through the supervisor.
#[test]
fn a_tcp_checker_finds_a_refusing_real_server_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let closed = super::probe::tests::refusing_port();
    let services = format!(
        "\n[[services]]\nprotocol = \"tcp\"\naddress = \"198.18.0.10:80\"\nscheduler = \"rr\"\n\
         health_check = {{ kind = \"tcp\", retry = 0, on_failure = \"inhibit\" }}\n\
         real_servers = [{{ address = \"{open}\", forward = \"masq\" }}, {{ address = \"{closed}\", forward = \"masq\" }}]\n"
    );
    let (harness, mut reports) = Harness::start(&config_with(&services));
    assert_eq!(reports.next(open).record.state, HealthState::Up);
    let report = reports.next(closed);
    assert_eq!(report.transition, Some(HealthState::Down));
    assert_eq!(
        report.record.last_failure.as_deref(),
        Some("connection refused")
    );
    let weights = dataplane_weights(&mut lock(&harness.control), 0);
    assert_eq!(weights, [(open.ip(), 1), (closed.ip(), 0)]);
    join(harness.health.stop(), STOP_GRACE);
}

/// A reload restarts the checkers of a service whose health check
/// changed, and leaves the others running, with their verdicts.
#[test]
fn a_reload_restarts_only_the_checkers_whose_check_changed() {
    let up = r#"kind = "misc", command = "true", on_failure = "inhibit""#;
    let down = r#"kind = "misc", command = "false", retry = 0, on_failure = "inhibit""#;
    let before = config_with(&format!(
        "{}{}",
        service(80, Some(up), &[(11, 3)]),
        service(81, Some(down), &[(12, 2)])
    ));
    let (harness, mut reports) = Harness::start(&before);
    reports.next(rip(11, 80));
    assert_eq!(
        reports.next(rip(12, 81)).transition,
        Some(HealthState::Down)
    );
    let epochs = harness.epochs();
    assert_eq!(epochs.len(), 2);

    // Service 80's check changes (its command), service 81's does not.
    let after = config_with(&format!(
        "{}{}",
        service(
            80,
            Some(r#"kind = "misc", command = "exit 1", retry = 0, on_failure = "inhibit""#),
            &[(11, 3)]
        ),
        service(81, Some(down), &[(12, 4)])
    ));
    harness.reload(&after);
    let restarted = harness.epochs();
    assert_ne!(restarted[&rip(11, 80)], epochs[&rip(11, 80)]);
    assert_eq!(restarted[&rip(12, 81)], epochs[&rip(12, 81)]);
    // The new checker checks at once, with the new command.
    let report = reports.next(rip(11, 80));
    assert_eq!(report.epoch, restarted[&rip(11, 80)]);
    assert_eq!(report.record.last_failure.as_deref(), Some("exit status 1"));
    // Service 81's real server stayed down; its new weight waits.
    assert_eq!(harness.state(81, rip(12, 81)), Some(HealthState::Down));
    let weights = dataplane_weights(&mut lock(&harness.control), 1);
    assert_eq!(weights, [(ip(12), 0)]);
    assert_eq!(
        lock(&harness.control)
            .health_of(&key(81), rip(12, 81))
            .unwrap()
            .weight,
        4
    );

    // A reload without service 81's health check stops its checker.
    harness.reload(&config_with(&format!(
        "{}{}",
        service(80, Some(up), &[(11, 3)]),
        service(81, None, &[(12, 4)])
    )));
    let epochs = harness.epochs();
    assert!(!epochs.contains_key(&rip(12, 81)), "{epochs:?}");
    assert_eq!(harness.state(81, rip(12, 81)), None);
    assert_eq!(
        dataplane_weights(&mut lock(&harness.control), 1),
        [(ip(12), 4)]
    );
    join(harness.health.stop(), STOP_GRACE);
}

/// Stopping ends every checker at once, killing a running command, and
/// no report counts afterwards.
#[test]
fn stopping_ends_checkers_promptly() {
    let slow =
        r#"kind = "misc", command = "sleep 30", connect_timeout = 60, on_failure = "inhibit""#;
    let idle = r#"kind = "misc", command = "true", delay_loop = 3600, on_failure = "inhibit""#;
    let config = config_with(&format!(
        "{}{}",
        service(80, Some(slow), &[(11, 3)]),
        service(81, Some(idle), &[(12, 2)])
    ));
    let (harness, mut reports) = Harness::start(&config);
    reports.next(rip(12, 81));
    let threads = {
        let _control = lock(&harness.control);
        harness.health.stop()
    };
    assert_eq!(threads.len(), 2);
    let started = Instant::now();
    join(threads, Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(harness.epochs().is_empty());

    // After the stop, a report (a check in flight, say) changes nothing,
    // and a sync starts nothing.
    let mut control = lock(&harness.control);
    let checked = target(&control, rip(12, 81));
    let report = observe(
        &mut Machine::new(Timing {
            retry: 0,
            ..Timing::of(&checked.check)
        }),
        &checked,
        refused(),
    );
    assert!(!harness.health.apply(&mut control, report));
    harness.health.sync(control.health_targets());
    drop(control);
    assert!(harness.epochs().is_empty());
}
