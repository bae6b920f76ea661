//! Metrics of the rule fan-out, registered up front on the registry the wiring passes in, every
//! label value pre-created at zero. [`RuleMetrics::observe`] is the one telemetry event of a
//! plan: it logs each suppression (aggregated, with its count and the verdict's ids) and counts.
//!
//! Names are specific to rule notifications (`mailgate_notify_rule_…`) so that this module owns
//! them alone; a cross-kind `notifications_suppressed_total{kind,reason}` can be fed from the same
//! [`super::SuppressionReason::as_str`] labels by the wiring.

use super::{FanoutPlan, SuppressionReason};
use crate::config::NotifyGroup;
use crate::event::ScanVerdict;
use crate::telemetry;
use prometheus::{IntCounterVec, Registry};

/// Label value of the `group` label for suppressions of a whole rule (`filtered`, `disabled`).
pub const WHOLE_RULE: &str = "rule";

/// Counters of the rule fan-out.
#[derive(Debug, Clone)]
pub struct RuleMetrics {
    /// `mailgate_notify_rule_notifications_planned_total{group}`: notices handed to rendering,
    /// by the group that produced them first.
    pub planned: IntCounterVec,
    /// `mailgate_notify_rule_notifications_suppressed_total{group,reason}`: candidates that
    /// produced no mail.
    pub suppressed: IntCounterVec,
    /// `mailgate_notify_rule_notifications_withheld_total`: notices withheld by the cap.
    pub withheld: IntCounterVec,
    /// `mailgate_notify_rule_cap_summaries_total`: cap summaries planned.
    pub cap_summaries: IntCounterVec,
}

impl RuleMetrics {
    /// Registers the counters; panics only on a programming error (a name registered twice).
    pub fn register(registry: &Registry) -> Self {
        let groups: Vec<&str> = NotifyGroup::ALL.iter().map(|g| g.as_str()).collect();
        let group_labels: Vec<[&str; 1]> = groups.iter().map(|g| [*g]).collect();
        let group_refs: Vec<&[&str]> = group_labels.iter().map(|l| &l[..]).collect();
        let mut pairs = Vec::new();
        for g in groups.iter().copied().chain([WHOLE_RULE]) {
            for r in SuppressionReason::ALL {
                pairs.push([g, r.as_str()]);
            }
        }
        let pair_refs: Vec<&[&str]> = pairs.iter().map(|p| &p[..]).collect();
        RuleMetrics {
            planned: telemetry::counter_vec(
                registry,
                "rule_notifications_planned_total",
                "Rule notifications planned for rendering, by the group that produced them first.",
                &["group"],
                &group_refs,
            ),
            suppressed: telemetry::counter_vec(
                registry,
                "rule_notifications_suppressed_total",
                "Rule notification candidates that produced no mail, by group and reason.",
                &["group", "reason"],
                &pair_refs,
            ),
            withheld: telemetry::counter_vec(
                registry,
                "rule_notifications_withheld_total",
                "Rule notifications withheld by max_notifications_per_message.",
                &[],
                &[&[]],
            ),
            cap_summaries: telemetry::counter_vec(
                registry,
                "rule_cap_summaries_total",
                "Summaries of withheld rule notifications planned.",
                &[],
                &[&[]],
            ),
        }
    }

    /// Logs and counts one plan.
    pub fn observe(&self, plan: &FanoutPlan, verdict: &ScanVerdict) {
        for n in &plan.notices {
            self.planned.with_label_values(&[n.group.as_str()]).inc();
        }
        for s in &plan.suppressed {
            let group = s.group.map_or(WHOLE_RULE, NotifyGroup::as_str);
            let rule = verdict
                .triggered_rules
                .get(s.rule)
                .map_or("", |r| r.rule_id.as_str());
            tracing::debug!(
                event_id = %verdict.event_id,
                message_id = %verdict.message_id,
                rule_id = rule,
                group,
                reason = s.reason.as_str(),
                count = s.count,
                "rule notification suppressed"
            );
            self.suppressed
                .with_label_values(&[group, s.reason.as_str()])
                .inc_by(s.count as u64);
        }
        if plan.withheld > 0 {
            tracing::warn!(
                event_id = %verdict.event_id,
                message_id = %verdict.message_id,
                planned = plan.notices.len(),
                withheld = plan.withheld,
                summary = plan.summary.is_some(),
                "rule notifications withheld by max_notifications_per_message"
            );
            self.withheld
                .with_label_values::<&str>(&[])
                .inc_by(plan.withheld as u64);
        }
        if plan.summary.is_some() {
            self.cap_summaries.with_label_values::<&str>(&[]).inc();
        }
    }
}
