//! Metrics of the aggregator, registered up front on the registry it is given, every label value
//! pre-created at zero. The [`super::Aggregator`] counts into them itself when given them.

use super::state::{Decision, Reason, RecordEffect, RecordOutcome, ZoneNote};
use crate::telemetry;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

/// Counters and gauges of application-notification decisions.
#[derive(Debug, Clone)]
pub struct AggregateMetrics {
    /// `mailgate_notify_application_decisions_total{reason}`.
    pub decisions: IntCounterVec,
    /// `mailgate_notify_application_events_total{outcome}`.
    pub events: IntCounterVec,
    /// The children of `events`, in the order of [`RecordEffect::ALL`]: looked up once, not
    /// per event (a label lookup hashes and takes a lock).
    by_effect: Vec<IntCounter>,
    /// `mailgate_notify_application_invalid_zones_total`: events naming an unknown zone.
    pub invalid_zones: IntCounter,
    /// `mailgate_notify_application_errors_active`: active errors over the clusters owned here.
    pub active_errors: IntGauge,
    /// `mailgate_notify_application_clusters`: clusters whose state is held here.
    pub clusters: IntGauge,
}

impl AggregateMetrics {
    /// Registers the metrics on `registry`. Panics only on a duplicate registration (a
    /// programming error).
    pub fn register(registry: &Registry) -> Self {
        let reasons: Vec<[&str; 1]> = Reason::LABELS.iter().map(|r| [*r]).collect();
        let reasons: Vec<&[&str]> = reasons.iter().map(|r| &r[..]).collect();
        let effects: Vec<[&str; 1]> = RecordEffect::ALL.iter().map(|e| [e.as_str()]).collect();
        let effects: Vec<&[&str]> = effects.iter().map(|e| &e[..]).collect();
        // The telemetry helpers have no plain counter; registered here the same way.
        let invalid_zones = IntCounter::new(
            format!("{}application_invalid_zones_total", telemetry::PREFIX),
            "Application events whose control_timezone is not a known IANA zone (ignored).",
        )
        .unwrap_or_else(|e| panic!("metric application_invalid_zones_total: {e}"));
        registry
            .register(Box::new(invalid_zones.clone()))
            .unwrap_or_else(|e| panic!("metric application_invalid_zones_total: {e}"));
        let events = telemetry::counter_vec(
            registry,
            "application_events_total",
            "Application events recorded, by their effect on the error set.",
            &["outcome"],
            &effects,
        );
        let by_effect = RecordEffect::ALL
            .iter()
            .map(|e| events.with_label_values(&[e.as_str()]))
            .collect();
        AggregateMetrics {
            decisions: telemetry::counter_vec(
                registry,
                "application_decisions_total",
                "Decisions of the application-notification aggregator, by reason.",
                &["reason"],
                &reasons,
            ),
            events,
            by_effect,
            invalid_zones,
            active_errors: telemetry::gauge(
                registry,
                "application_errors_active",
                "Active gateway errors over the clusters owned by this instance.",
            ),
            clusters: telemetry::gauge(
                registry,
                "application_clusters",
                "Clusters whose application state this instance holds.",
            ),
        }
    }

    /// Counts one recorded event.
    pub fn observe_record(&self, outcome: &RecordOutcome) {
        match RecordEffect::ALL.iter().position(|e| *e == outcome.effect) {
            Some(i) => self.by_effect[i].inc(),
            None => self.events.with_label_values(&[outcome.as_str()]).inc(),
        }
        if matches!(outcome.zone, ZoneNote::Invalid(_)) {
            self.invalid_zones.inc();
        }
    }

    /// Counts one decision.
    pub fn observe_decision(&self, decision: &Decision) {
        self.decisions
            .with_label_values(&[decision.reason.as_str()])
            .inc();
    }
}
