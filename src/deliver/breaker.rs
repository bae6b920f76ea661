//! The circuit breaker in front of connection attempts: after `failures` consecutive failed
//! attempts it opens and no connection is tried for an interval that doubles after each failed
//! probe (from `initial` up to `max`); when the interval is over, exactly one attempt (the probe)
//! may go, and the first success closes it. So a dead relay sees one connection attempt per
//! interval instead of one per notification and worker, while the outbox fills and ingest
//! pauses. Pure: the caller passes `now` and acts on the returned decision.

use crate::config::BreakerConfig;
use std::time::{Duration, Instant};

/// The breaker's state, for `/readyz` and the `smtp_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Connections are attempted normally.
    Closed,
    /// Too many failures: no connection attempt until the interval is over.
    Open,
    /// The interval is over; one probe attempt decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Gauge value: 0 closed, 1 half-open, 2 open (higher is worse).
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// What a caller that wants to connect may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Connect.
    Go,
    /// Connect; this attempt is the probe and its outcome opens or closes the breaker.
    Probe,
    /// Do not connect before this instant.
    WaitUntil(Instant),
    /// Another caller is probing; wait for its outcome.
    WaitForProbe,
}

/// A state change and why it happened (logged and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open after this many consecutive failures.
    Opened {
        /// Consecutive failed attempts.
        failures: u32,
        /// The open interval.
        retry_in: Duration,
    },
    /// Open → half-open: the interval is over, a probe goes.
    HalfOpened,
    /// Half-open → open: the probe failed; the interval grew.
    Reopened {
        /// The new open interval.
        retry_in: Duration,
    },
    /// → closed: a connection succeeded.
    Closed,
}

impl Transition {
    /// The state after the transition.
    pub fn to(self) -> BreakerState {
        match self {
            Transition::Opened { .. } | Transition::Reopened { .. } => BreakerState::Open,
            Transition::HalfOpened => BreakerState::HalfOpen,
            Transition::Closed => BreakerState::Closed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant, interval: Duration },
    HalfOpen { interval: Duration, probing: bool },
}

/// The breaker decider.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    initial: Duration,
    max: Duration,
    inner: Inner,
}

impl Breaker {
    /// A closed breaker with the thresholds of `[smtp.breaker]`.
    pub fn new(cfg: &BreakerConfig) -> Breaker {
        Breaker {
            threshold: cfg.failures.max(1),
            initial: cfg.initial,
            max: cfg.max.max(cfg.initial),
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// May a connection be attempted at `now`? Moves open → half-open when the interval is
    /// over and hands out the single probe.
    pub fn permit(&mut self, now: Instant) -> (Permit, Option<Transition>) {
        match self.inner {
            Inner::Closed { .. } => (Permit::Go, None),
            Inner::Open { until, interval } => {
                if now >= until {
                    self.inner = Inner::HalfOpen {
                        interval,
                        probing: true,
                    };
                    (Permit::Probe, Some(Transition::HalfOpened))
                } else {
                    (Permit::WaitUntil(until), None)
                }
            }
            Inner::HalfOpen { interval, probing } => {
                if probing {
                    (Permit::WaitForProbe, None)
                } else {
                    self.inner = Inner::HalfOpen {
                        interval,
                        probing: true,
                    };
                    (Permit::Probe, None)
                }
            }
        }
    }

    /// A connection attempt succeeded: the relay is there.
    pub fn on_success(&mut self, _now: Instant) -> Option<Transition> {
        let was_closed = matches!(self.inner, Inner::Closed { .. });
        self.inner = Inner::Closed { failures: 0 };
        (!was_closed).then_some(Transition::Closed)
    }

    /// A connection attempt failed.
    pub fn on_failure(&mut self, now: Instant) -> Option<Transition> {
        match self.inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    self.inner = Inner::Open {
                        until: now + self.initial,
                        interval: self.initial,
                    };
                    Some(Transition::Opened {
                        failures,
                        retry_in: self.initial,
                    })
                } else {
                    self.inner = Inner::Closed { failures };
                    None
                }
            }
            // A late failure of an attempt that started before the breaker opened: the
            // interval already covers it.
            Inner::Open { .. } => None,
            Inner::HalfOpen { interval, .. } => {
                let next = interval.saturating_mul(2).min(self.max);
                self.inner = Inner::Open {
                    until: now + next,
                    interval: next,
                };
                Some(Transition::Reopened { retry_in: next })
            }
        }
    }

    /// The probe was abandoned without an outcome (its worker stopped): another may go.
    pub fn probe_abandoned(&mut self) {
        if let Inner::HalfOpen { interval, .. } = self.inner {
            self.inner = Inner::HalfOpen {
                interval,
                probing: false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, initial_s: u64, max_s: u64) -> Breaker {
        Breaker::new(&BreakerConfig {
            failures,
            initial: Duration::from_secs(initial_s),
            max: Duration::from_secs(max_s),
        })
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1, 60);
        assert_eq!(b.on_failure(t0), None);
        assert_eq!(b.on_failure(t0), None);
        assert_eq!(b.on_success(t0), None, "a success resets the count");
        assert_eq!(b.on_failure(t0), None);
        assert_eq!(b.on_failure(t0), None);
        assert_eq!(
            b.on_failure(t0),
            Some(Transition::Opened {
                failures: 3,
                retry_in: Duration::from_secs(1)
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn while_open_nobody_connects_then_exactly_one_probe_goes() {
        let t0 = Instant::now();
        let mut b = breaker(1, 2, 60);
        b.on_failure(t0);
        let until = t0 + Duration::from_secs(2);
        assert_eq!(b.permit(t0), (Permit::WaitUntil(until), None));
        assert_eq!(
            b.permit(t0 + Duration::from_millis(1999)),
            (Permit::WaitUntil(until), None)
        );
        assert_eq!(
            b.permit(until),
            (Permit::Probe, Some(Transition::HalfOpened))
        );
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.permit(until), (Permit::WaitForProbe, None));
        assert_eq!(b.permit(until), (Permit::WaitForProbe, None));
    }

    #[test]
    fn a_failed_probe_doubles_the_interval_up_to_max() {
        let mut now = Instant::now();
        let mut b = breaker(1, 1, 5);
        b.on_failure(now);
        let mut intervals = Vec::new();
        for _ in 0..5 {
            let (p, _) = b.permit(now + Duration::from_secs(3600));
            assert_eq!(p, Permit::Probe);
            now += Duration::from_secs(3600);
            match b.on_failure(now) {
                Some(Transition::Reopened { retry_in }) => intervals.push(retry_in.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(intervals, [2, 4, 5, 5, 5]);
    }

    #[test]
    fn the_first_success_closes_and_everyone_may_connect_again() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1, 5);
        b.on_failure(t0);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.permit(later).0, Permit::Probe);
        assert_eq!(b.on_success(later), Some(Transition::Closed));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(later), (Permit::Go, None));
        assert_eq!(b.permit(later), (Permit::Go, None));
        // A new outage starts again from the initial interval.
        assert_eq!(
            b.on_failure(later),
            Some(Transition::Opened {
                failures: 1,
                retry_in: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn late_failures_while_open_do_not_extend_the_interval() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1, 5);
        b.on_failure(t0);
        assert_eq!(b.on_failure(t0 + Duration::from_millis(900)), None);
        assert_eq!(b.permit(t0 + Duration::from_secs(1)).0, Permit::Probe);
    }

    #[test]
    fn an_abandoned_probe_lets_another_caller_probe() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1, 5);
        b.on_failure(t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.permit(t1).0, Permit::Probe);
        b.probe_abandoned();
        assert_eq!(b.permit(t1), (Permit::Probe, None));
    }

    #[test]
    fn gauge_values_order_states_by_severity() {
        assert_eq!(BreakerState::Closed.gauge_value(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge_value(), 1);
        assert_eq!(BreakerState::Open.gauge_value(), 2);
    }
}
