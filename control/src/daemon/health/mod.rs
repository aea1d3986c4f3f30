//! Health checks of real servers, as keepalived's checkers run them.
//!
//! A service's `[services.health_check]` applies to each of its real
//! servers, those of the file and those `rvsadm -a` adds, but for a real
//! server of the file with a `health_check` of its own. Each checked
//! real server has a checker: a thread of its own that runs the check
//! ([`probe`]) with blocking kernel sockets or a child process, feeds the
//! outcome to keepalived's rules ([`machine`]) and reports to the daemon.
//! The daemon applies each report to its control state as a
//! [`Change::Health`], through [`Control::apply`] like any `rvsadm` edit,
//! and publishes a new snapshot to the workers when the verdict changed:
//!
//! * down, `on_failure = "inhibit"`: the real server keeps its place with
//!   weight 0 (no new connections, established ones carry on);
//! * down, `on_failure = "remove"`: it leaves the service (its connections
//!   carry on, and it keeps its slot, so its counters go on too);
//! * up again: the weight it has while up, or its place in the service,
//!   comes back.
//!
//! The control state keeps what the file and `rvsadm` say a real server
//! is (its weight, for one) apart from what its health makes of it, so
//! an `rvsadm -e` of a down real server's weight is the weight it gets
//! back once up, and a reload sees the file's weights, not the health
//! checks' zeros.
//!
//! # Checkers come and go with the configuration
//!
//! Each checked real server's record in the control state has an epoch,
//! new whenever its checker must start afresh: the real server is added,
//! or the check that applies to it is set or changed (a reload). After
//! every change the daemon hands the supervisor the checked real servers
//! and their epochs ([`Supervisor::sync`]): a checker whose epoch is still
//! there runs on untouched; others are stopped and new ones started. A
//! report carries its checker's epoch and the control state refuses a
//! report of another epoch, so a checker that was replaced can change
//! nothing, even with a check in flight.
//!
//! # Cost and bounds
//!
//! A checker is a thread sleeping on a condition variable between checks
//! (no polling, except a running `misc` command, looked at every 50 ms at
//! most), started from the control thread and so running on its core,
//! never on a worker's. Nothing here touches the workers' hot path: they
//! see the outcome only in a snapshot. A thread per checked real server
//! is fine for hundreds to a few thousand real servers; the checks are
//! staggered by nothing, so a restart checks every real server at once,
//! which makes a dead one leave the service as soon as possible.
//!
//! Stopping rvsd stops every checker: a checker never reports once the
//! supervisor is stopped, and a running `misc` command is killed. A
//! checker waiting for a connection is left to end on its own, at its
//! `connect_timeout`.
//!
//! # Network
//!
//! The checks use ordinary kernel sockets: in production their packets
//! leave through the host's stack, over the director's exception path
//! (the kernel's twin of each DPDK port) or a NIC the kernel keeps.

pub mod machine;
pub mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::HealthCheckConfig;
use crate::model::{HealthRecord, HealthState, OnFailure, ServiceKey};

use super::lock;
use super::state::{Change, Control};
use machine::{Machine, Timing};
use probe::Probe;

/// How long stopping the daemon waits for checkers to end.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// A checked real server, as the control state describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceKey,
    /// RIP:rport.
    pub real_server: SocketAddr,
    /// The epoch of its record (see the module docs).
    pub epoch: u64,
    pub check: HealthCheckConfig,
}

/// A checker's word after a check: its record, and the new verdict when
/// the check changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub service: ServiceKey,
    pub real_server: SocketAddr,
    pub epoch: u64,
    pub record: HealthRecord,
    pub transition: Option<HealthState>,
}

/// Where checkers report: the daemon, in production.
pub trait Sink: Send + Sync {
    fn report(&self, report: HealthReport);
}

/// Runs a checker for every checked real server.
#[derive(Debug)]
pub struct Supervisor {
    sink: Weak<dyn Sink>,
    checkers: Mutex<HashMap<(ServiceKey, SocketAddr), Checker>>,
    /// Set once, when the daemon stops.
    stopped: AtomicBool,
}

#[derive(Debug)]
struct Checker {
    epoch: u64,
    stop: Arc<Stop>,
    thread: JoinHandle<()>,
}

impl Supervisor {
    /// Checkers will report to `sink`, as long as it lives.
    pub fn new(sink: Weak<dyn Sink>) -> Supervisor {
        Supervisor {
            sink,
            checkers: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
        }
    }

    /// Brings the checkers in line with `targets` (see the module docs).
    /// Never waits for a checker: it may be called with the control
    /// state locked, which a checker needs to report.
    pub fn sync(&self, targets: Vec<Target>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut checkers = lock(&self.checkers);
        let mut wanted: HashMap<(ServiceKey, SocketAddr), Target> = targets
            .into_iter()
            .map(|target| ((target.service, target.real_server), target))
            .collect();
        let before = checkers.len();
        checkers.retain(|key, checker| {
            let keep = wanted.get(key).is_some_and(|t| t.epoch == checker.epoch);
            if keep {
                wanted.remove(key);
            } else {
                tracing::debug!(service = %key.0, real_server = %key.1, "health checker stopped");
                // It ends after its check in flight, if any; its report
                // of an old epoch is refused.
                checker.stop.stop();
            }
            keep
        });
        let stopped = before - checkers.len();
        let mut started = 0;
        for (key, target) in wanted {
            match self.start(target) {
                Ok(checker) => {
                    checkers.insert(key, checker);
                    started += 1;
                }
                Err(error) => tracing::error!(
                    service = %key.0,
                    real_server = %key.1,
                    %error,
                    "cannot start a health checker: the real server is not checked"
                ),
            }
        }
        if started + stopped > 0 {
            tracing::info!(
                started,
                stopped,
                running = checkers.len(),
                "health checkers"
            );
        }
    }

    fn start(&self, target: Target) -> std::io::Result<Checker> {
        let stop = Arc::new(Stop::default());
        let epoch = target.epoch;
        let sink = Weak::clone(&self.sink);
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || check_loop(&target, &thread_stop, &sink))?;
        Ok(Checker {
            epoch,
            stop,
            thread,
        })
    }

    /// Stops every checker for good and returns their threads, for
    /// [`join`]. The caller holds the control state, so that no report is
    /// being applied meanwhile: none is after this.
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        self.stopped.store(true, Ordering::Release);
        lock(&self.checkers)
            .drain()
            .map(|(_, checker)| {
                checker.stop.stop();
                checker.thread
            })
            .collect()
    }

    /// Applies a checker's report to `control` and logs a change of
    /// verdict; whether the workers need a new snapshot. A report of a
    /// replaced checker, or one after [`Supervisor::stop`], changes
    /// nothing.
    pub fn apply(&self, control: &mut Control, report: HealthReport) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let (service, real_server) = (report.service, report.real_server);
        let transition = report.transition;
        let failures = report.record.failures;
        let reason = report.record.last_failure.clone().unwrap_or_default();
        if let Err(refusal) = control.apply(&Change::Health(report)) {
            tracing::debug!(%service, %real_server, "health report dropped: {}", refusal.message);
            return false;
        }
        let (Some(state), Some(health)) = (transition, control.health_of(&service, real_server))
        else {
            return false;
        };
        match state {
            HealthState::Down => {
                let action = match health.on_failure {
                    OnFailure::Inhibit => "inhibited (weight 0)",
                    OnFailure::Remove => "removed from the service",
                };
                tracing::warn!(
                    %service,
                    %real_server,
                    from = "UP",
                    to = "DOWN",
                    %reason,
                    failures,
                    "real server {real_server} of {service}: UP -> DOWN ({reason}; {failures} failed check(s) in a row): {action}"
                );
            }
            HealthState::Up => {
                let action = match health.on_failure {
                    OnFailure::Inhibit => format!("weight {} restored", health.weight),
                    OnFailure::Remove => "back in the service".to_owned(),
                };
                let rise = health.rise;
                tracing::info!(
                    %service,
                    %real_server,
                    from = "DOWN",
                    to = "UP",
                    rise,
                    "real server {real_server} of {service}: DOWN -> UP ({rise} successful check(s) in a row): {action}"
                );
            }
        }
        true
    }
}

/// Waits, up to `grace` in all, for stopped checkers to end; those still
/// waiting for a connection are left to end on their own.
pub fn join(threads: Vec<JoinHandle<()>>, grace: Duration) {
    let deadline = Instant::now() + grace;
    let mut running = threads;
    while !running.is_empty() && Instant::now() < deadline {
        let (done, rest): (Vec<_>, Vec<_>) = running.into_iter().partition(JoinHandle::is_finished);
        for thread in done {
            let _ = thread.join();
        }
        running = rest;
        if !running.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if !running.is_empty() {
        tracing::debug!(
            checkers = running.len(),
            "health checkers still waiting for a connection are left to end"
        );
    }
}

/// A checker's life: check, report, wait, until stopped or the sink is
/// gone.
fn check_loop(target: &Target, stop: &Stop, sink: &Weak<dyn Sink>) {
    let probe = Probe::new(&target.check, target.real_server);
    let mut machine = Machine::new(Timing::of(&target.check));
    while !stop.is_stopped() {
        let outcome = probe.run(stop);
        if stop.is_stopped() {
            break;
        }
        let step = machine.observe(outcome);
        let Some(sink) = sink.upgrade() else { break };
        sink.report(HealthReport {
            service: target.service,
            real_server: target.real_server,
            epoch: target.epoch,
            record: machine.record().clone(),
            transition: step.transition,
        });
        drop(sink);
        if stop.wait(step.next_check) {
            break;
        }
    }
}

/// A checker's stop signal, which also wakes it from its sleep.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    pub fn stop(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    /// Sleeps `timeout`, or less if stopped meanwhile; whether stopped.
    pub fn wait(&self, timeout: Duration) -> bool {
        let stopped = lock(&self.stopped);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }
}

#[cfg(test)]
mod tests;
