//! Scan verdicts → rule fan-out → rendered notifications → outbox; the record is done when all
//! of them are.

use super::dispatch::{Countdown, Dispatcher, Meta, Source};
use super::metrics::AppMetrics;
use crate::event::Event;
use crate::ingest::{Ack, Decoded, Downstream};
use crate::render::model::{Request, RuleCapSummary, RuleNotice, RuleRef};
use crate::render::Renderer;
use crate::rules::{RuleFanout, RuleMetrics, SuppressionReason};
use std::sync::Arc;

/// The rule fan-out as a [`Downstream`].
pub struct RulesRoute {
    pub(crate) fanout: RuleFanout,
    pub(crate) metrics: RuleMetrics,
    pub(crate) app_metrics: AppMetrics,
    pub(crate) renderer: Arc<Renderer>,
    pub(crate) dispatcher: Arc<Dispatcher>,
}

/// The coarse suppression label of the pipeline metric for a fan-out reason.
fn coarse(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::BackscatterNullSender
        | SuppressionReason::BackscatterUnauthenticated
        | SuppressionReason::BackscatterExternal
        | SuppressionReason::OwnAddress => "backscatter",
        SuppressionReason::Filtered => "filtered",
        SuppressionReason::Duplicate => "duplicate",
        SuppressionReason::Cap => "cap",
        SuppressionReason::Disabled => "disabled",
        SuppressionReason::InvalidAddress => "no_valid_recipient",
    }
}

impl Downstream for RulesRoute {
    fn handle(&self, record: Decoded, ack: Ack) {
        let source = Source::of(&record);
        let Event::ScanVerdict(verdict) = record.event else {
            tracing::error!(topic = %record.topic, "non-verdict event routed to the rule fan-out; skipped");
            ack.done();
            return;
        };
        let plan = self.fanout.fanout(&verdict);
        self.metrics.observe(&plan, &verdict);
        for s in &plan.suppressed {
            self.app_metrics
                .suppressed_n("rule", coarse(s.reason), s.count);
            // Policy working as configured (a second rule to the same address, a filter, the
            // backscatter policy) happens on most verdicts of a busy gateway: a line per verdict
            // at info would be the bulk of the log and of its cost, and the suppression metric
            // already counts it. What an operator may need to act on stays at info.
            match s.reason {
                SuppressionReason::Duplicate
                | SuppressionReason::Filtered
                | SuppressionReason::Disabled
                | SuppressionReason::BackscatterNullSender
                | SuppressionReason::BackscatterUnauthenticated
                | SuppressionReason::BackscatterExternal => tracing::debug!(
                    event_id = %verdict.event_id, message_id = %verdict.message_id,
                    reason = s.reason.as_str(), group = s.group.map(|g| g.as_str()), count = s.count,
                    "rule notifications suppressed"
                ),
                SuppressionReason::OwnAddress
                | SuppressionReason::Cap
                | SuppressionReason::InvalidAddress => tracing::info!(
                    event_id = %verdict.event_id, message_id = %verdict.message_id,
                    reason = s.reason.as_str(), group = s.group.map(|g| g.as_str()), count = s.count,
                    "rule notifications suppressed"
                ),
            }
        }
        let verdict = Arc::new(verdict);
        let mut requests: Vec<(Request, &'static str)> = Vec::with_capacity(plan.notices.len() + 1);
        for n in &plan.notices {
            let rules = n
                .affected_rules(&verdict)
                .into_iter()
                .map(|r| RuleRef {
                    rule_id: r.rule_id.clone(),
                    rule_name: r.rule_name.clone(),
                })
                .collect();
            let affected = n
                .affected_recipients(&verdict)
                .into_iter()
                .map(str::to_string)
                .collect();
            requests.push((
                Request::Rule(RuleNotice {
                    verdict: verdict.clone(),
                    group: n.group,
                    template: n.template.clone(),
                    recipient: n.address.as_str().to_string(),
                    rules,
                    affected_recipients: affected,
                    language: plan.language.clone(),
                }),
                n.group.as_str(),
            ));
        }
        if let Some(summary) = &plan.summary {
            for g in &summary.recipients {
                requests.push((
                    Request::RuleCapSummary(RuleCapSummary {
                        verdict: verdict.clone(),
                        sent: summary.planned,
                        withheld: summary.withheld,
                        recipients: g.addresses.iter().map(|a| a.as_str().to_string()).collect(),
                        language: g.language.clone(),
                    }),
                    "summary",
                ));
            }
        }
        if requests.is_empty() {
            ack.done();
            return;
        }
        let items = requests
            .into_iter()
            .map(|(req, group)| {
                let meta = Meta {
                    kind: "rule",
                    group,
                    source: source.clone(),
                };
                (req, meta)
            })
            .collect::<Vec<_>>();
        let work = Countdown::for_record(ack, items.len());
        self.dispatcher.send_batch(
            self.renderer.clone(),
            items,
            Arc::new(move |_| work.one_done()),
        );
    }
}
