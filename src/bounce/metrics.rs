//! Metrics of the bounce router, registered up front on the registry the wiring passes in, every
//! label value pre-created at zero. [`BounceMetrics::observe`] is the telemetry event of one
//! decision (logs its reason and ids, counts), [`BounceMetrics::observe_summary`] that of a
//! burst summary.

use super::{BounceDecision, BurstSummary};
use crate::event::{BounceClass, BounceEvent};
use crate::telemetry;
use prometheus::{IntCounterVec, Registry};

/// Counters of the bounce router.
#[derive(Debug, Clone)]
pub struct BounceMetrics {
    /// `mailgate_notify_bounce_notices_total{class}`: notices decided.
    pub notices: IntCounterVec,
    /// `mailgate_notify_bounce_notifications_suppressed_total{reason}`: bounces without their
    /// own notice — `disabled`, `class_disabled`, `loop`, and `burst` (collected into a summary).
    pub suppressed: IntCounterVec,
    /// `mailgate_notify_bounce_burst_summaries_total`: burst summaries flushed.
    pub summaries: IntCounterVec,
}

impl BounceMetrics {
    /// Registers the counters; panics only on a programming error (a name registered twice).
    pub fn register(registry: &Registry) -> Self {
        let classes: Vec<[&str; 1]> = BounceClass::ALL.iter().map(|c| [c.as_str()]).collect();
        let class_refs: Vec<&[&str]> = classes.iter().map(|c| &c[..]).collect();
        let reasons: Vec<[&str; 1]> = super::BounceSuppression::LABELS
            .iter()
            .chain(&["burst"])
            .map(|r| [*r])
            .collect();
        let reason_refs: Vec<&[&str]> = reasons.iter().map(|r| &r[..]).collect();
        BounceMetrics {
            notices: telemetry::counter_vec(
                registry,
                "bounce_notices_total",
                "Bounce notices decided, by bounce class.",
                &["class"],
                &class_refs,
            ),
            suppressed: telemetry::counter_vec(
                registry,
                "bounce_notifications_suppressed_total",
                "Bounces that got no notice of their own, by reason (burst: in a summary).",
                &["reason"],
                &reason_refs,
            ),
            summaries: telemetry::counter_vec(
                registry,
                "bounce_burst_summaries_total",
                "Burst summaries of collected bounces.",
                &[],
                &[&[]],
            ),
        }
    }

    /// Logs and counts one decision.
    pub fn observe(&self, decision: &BounceDecision, event: &BounceEvent) {
        match decision {
            BounceDecision::Notify(_) => {
                self.notices
                    .with_label_values(&[event.class.as_str()])
                    .inc();
            }
            BounceDecision::Collected { window_closes_at } => {
                tracing::debug!(
                    event_id = %event.event_id,
                    queue_id = %event.queue_id,
                    class = event.class.as_str(),
                    summary_at = %window_closes_at,
                    "bounce notice collected into the burst summary"
                );
                self.suppressed.with_label_values(&["burst"]).inc();
            }
            BounceDecision::Suppressed(s) => {
                let evidence = match s {
                    super::BounceSuppression::Loop(e) => e.as_str(),
                    _ => "",
                };
                tracing::info!(
                    event_id = %event.event_id,
                    queue_id = %event.queue_id,
                    class = event.class.as_str(),
                    reason = s.as_str(),
                    evidence,
                    "bounce notice suppressed"
                );
                self.suppressed.with_label_values(&[s.as_str()]).inc();
            }
        }
    }

    /// Logs and counts one flushed summary.
    pub fn observe_summary(&self, summary: &BurstSummary) {
        tracing::warn!(
            window_start = %summary.window_start,
            window_end = %summary.window_end,
            notified = summary.notified,
            collected = summary.total,
            "bounce burst: collected notices summarised"
        );
        self.summaries.with_label_values::<&str>(&[]).inc();
    }
}
