//! keepalived's rules for one real server, without I/O or a clock: the
//! checker feeds each check's outcome to a [`Machine`], which says whether
//! the verdict changed and how long to wait before the next check.
//!
//! * A real server starts up, as keepalived starts them.
//! * An up real server that fails a check is checked again after
//!   `retry_delay`; it is down once `retry + 1` checks in a row failed.
//! * A down real server is up again once `rise` checks in a row succeed.
//! * Otherwise the next check comes `delay_loop` after this one ended.

use std::time::Duration;

use crate::config::HealthCheckConfig;
use crate::model::{HealthRecord, HealthState};

/// When a checker checks. The configuration gives whole seconds; tests
/// give anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub delay_loop: Duration,
    pub retry: u32,
    pub retry_delay: Duration,
    pub rise: u32,
}

impl Timing {
    pub fn of(check: &HealthCheckConfig) -> Timing {
        let seconds = |value: u32| Duration::from_secs(u64::from(value));
        Timing {
            delay_loop: seconds(check.delay_loop),
            retry: check.retry,
            retry_delay: seconds(check.retry_delay),
            rise: check.rise,
        }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// For logs and listings: "connection refused", "HTTP status 500".
    pub reason: String,
    /// The check ran out of time (counted apart from other failures).
    pub timeout: bool,
}

impl Failure {
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            timeout: false,
        }
    }

    /// "timeout after 1s": the check took longer than `limit`.
    pub fn timeout(limit: Duration) -> Failure {
        let reason = if limit.subsec_nanos() == 0 {
            format!("timeout after {}s", limit.as_secs())
        } else {
            format!("timeout after {}ms", limit.as_millis())
        };
        Failure {
            reason,
            timeout: true,
        }
    }
}

/// What one check's outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The new verdict, when this check changed it.
    pub transition: Option<HealthState>,
    /// How long to wait before the next check.
    pub next_check: Duration,
}

/// One real server's verdict and what led to it.
#[derive(Debug, Clone)]
pub struct Machine {
    timing: Timing,
    record: HealthRecord,
}

impl Machine {
    /// A real server not checked yet: up.
    pub fn new(timing: Timing) -> Machine {
        Machine {
            timing,
            record: HealthRecord::default(),
        }
    }

    pub fn record(&self) -> &HealthRecord {
        &self.record
    }

    /// Takes a check's outcome into account.
    pub fn observe(&mut self, outcome: Result<(), Failure>) -> Step {
        let timing = self.timing;
        let record = &mut self.record;
        let mut step = Step {
            transition: None,
            next_check: timing.delay_loop,
        };
        match outcome {
            Ok(()) => {
                record.checks.success += 1;
                record.failures = 0;
                if record.state == HealthState::Down {
                    record.successes = record.successes.saturating_add(1);
                    if record.successes >= timing.rise {
                        record.state = HealthState::Up;
                        record.successes = 0;
                        record.went_up += 1;
                        step.transition = Some(HealthState::Up);
                    }
                }
            }
            Err(failure) => {
                if failure.timeout {
                    record.checks.timeout += 1;
                } else {
                    record.checks.failure += 1;
                }
                record.successes = 0;
                record.failures = record.failures.saturating_add(1);
                record.last_failure = Some(failure.reason);
                if record.state == HealthState::Up {
                    if record.failures > timing.retry {
                        record.state = HealthState::Down;
                        record.went_down += 1;
                        step.transition = Some(HealthState::Down);
                    } else {
                        step.next_check = timing.retry_delay;
                    }
                }
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn timing(retry: u32, rise: u32) -> Timing {
        Timing {
            delay_loop: 3 * SECOND,
            retry,
            retry_delay: SECOND,
            rise,
        }
    }

    fn refused() -> Result<(), Failure> {
        Err(Failure::new("connection refused"))
    }

    /// Feeds `outcomes` and returns each step.
    fn run(machine: &mut Machine, outcomes: Vec<Result<(), Failure>>) -> Vec<Step> {
        outcomes
            .into_iter()
            .map(|outcome| machine.observe(outcome))
            .collect()
    }

    fn step(transition: Option<HealthState>, seconds: u64) -> Step {
        Step {
            transition,
            next_check: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn real_servers_start_up_and_stay_up_while_checks_succeed() {
        let mut machine = Machine::new(timing(1, 1));
        assert_eq!(machine.record().state, HealthState::Up);
        assert_eq!(run(&mut machine, vec![Ok(()), Ok(())]), [step(None, 3); 2]);
        assert_eq!(machine.record().checks.success, 2);
        assert_eq!(
            (machine.record().went_down, machine.record().went_up),
            (0, 0)
        );
    }

    /// Down after `retry + 1` failures in a row, each retried after
    /// `retry_delay`; a success in between starts the count again.
    #[test]
    fn retries_come_after_retry_delay_and_down_after_retry_plus_one_failures() {
        let mut machine = Machine::new(timing(2, 1));
        assert_eq!(
            run(&mut machine, vec![refused(), refused(), Ok(()), refused()]),
            [step(None, 1), step(None, 1), step(None, 3), step(None, 1)]
        );
        assert_eq!(machine.record().state, HealthState::Up);
        assert_eq!(machine.record().failures, 1);
        assert_eq!(
            run(&mut machine, vec![refused(), refused()]),
            [step(None, 1), step(Some(HealthState::Down), 3)]
        );
        let record = machine.record();
        assert_eq!(
            (record.state, record.failures, record.went_down),
            (HealthState::Down, 3, 1)
        );
        assert_eq!(record.last_failure.as_deref(), Some("connection refused"));
        // Down: every delay_loop, failures go on counting.
        assert_eq!(run(&mut machine, vec![refused()]), [step(None, 3)]);
        assert_eq!(machine.record().failures, 4);
    }

    #[test]
    fn retry_zero_is_down_at_the_first_failure() {
        let mut machine = Machine::new(timing(0, 1));
        assert_eq!(
            run(&mut machine, vec![refused()]),
            [step(Some(HealthState::Down), 3)]
        );
    }

    /// Up again after `rise` successes in a row; a failure on the way
    /// starts the count again.
    #[test]
    fn a_down_real_server_rises_after_rise_successes_in_a_row() {
        let mut machine = Machine::new(timing(0, 2));
        machine.observe(refused());
        assert_eq!(
            run(&mut machine, vec![Ok(()), refused(), Ok(())]),
            [step(None, 3); 3]
        );
        assert_eq!(
            (machine.record().state, machine.record().successes),
            (HealthState::Down, 1)
        );
        assert_eq!(
            run(&mut machine, vec![Ok(())]),
            [step(Some(HealthState::Up), 3)]
        );
        let record = machine.record();
        assert_eq!(
            (record.state, record.successes, record.failures),
            (HealthState::Up, 0, 0)
        );
        assert_eq!((record.went_down, record.went_up), (1, 1));
    }

    #[test]
    fn timeouts_are_counted_apart_from_other_failures() {
        let mut machine = Machine::new(timing(5, 1));
        machine.observe(Err(Failure::timeout(SECOND)));
        machine.observe(Err(Failure::timeout(Duration::from_millis(250))));
        machine.observe(refused());
        machine.observe(Ok(()));
        let record = machine.record();
        assert_eq!(
            (
                record.checks.timeout,
                record.checks.failure,
                record.checks.success
            ),
            (2, 1, 1)
        );
        assert_eq!(Failure::timeout(SECOND).reason, "timeout after 1s");
        assert_eq!(
            Failure::timeout(Duration::from_millis(250)).reason,
            "timeout after 250ms"
        );
    }

    #[test]
    fn timing_comes_from_the_configuration_in_seconds() {
        use crate::config::HealthCheckKind;
        let check = HealthCheckConfig {
            kind: HealthCheckKind::Tcp,
            port: None,
            path: None,
            status: None,
            virtualhost: None,
            digest: None,
            connect_timeout: 1,
            delay_loop: 7,
            retry: 2,
            retry_delay: 0,
            rise: 3,
            on_failure: crate::model::OnFailure::Inhibit,
            command: None,
        };
        assert_eq!(
            Timing::of(&check),
            Timing {
                delay_loop: 7 * SECOND,
                retry: 2,
                retry_delay: Duration::ZERO,
                rise: 3,
            }
        );
    }
}
