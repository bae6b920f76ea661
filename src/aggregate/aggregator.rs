//! The aggregator: the states of every cluster this instance owns plus one scheduler for all of
//! their deadlines. Still pure — the async shell calls [`Aggregator::record`] for each event,
//! sleeps until [`Aggregator::next_deadline`] (or the next event), calls [`Aggregator::due`],
//! sends the drafts and calls [`Aggregator::mark_sent`] once each is delivered.

use super::intern::{Interner, Sym};
use super::metrics::AggregateMetrics;
use super::scheduler::Scheduler;
use super::state::{
    ClusterState, Decision, Draft, MarkOutcome, RecordEffect, RecordOutcome, ZoneNote,
};
use crate::config::ApplicationConfig;
use crate::event::time::Timestamp;
use crate::event::ApplicationEvent;
use chrono::TimeDelta;
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::sync::Arc;

/// Per-cluster states and their deadlines.
#[derive(Debug)]
pub struct Aggregator {
    cfg: ApplicationConfig,
    /// Keyed by the state's own id: the key and the scheduler's entries share its allocation.
    /// Fx hashing: cluster ids come from the gateway (not an attacker), and SipHash was a
    /// tenth of the cost of a record.
    clusters: HashMap<Sym, ClusterState, FxBuildHasher>,
    scheduler: Scheduler<Sym>,
    /// Node ids, comments, messages and attributes shared by all clusters.
    interner: Interner,
    active_errors: usize,
    metrics: Option<AggregateMetrics>,
}

impl Aggregator {
    /// An empty aggregator deciding with `cfg` (throttle, catch-up, zones).
    pub fn new(cfg: ApplicationConfig) -> Self {
        Aggregator {
            cfg,
            clusters: HashMap::default(),
            scheduler: Scheduler::new(),
            interner: Interner::new(),
            active_errors: 0,
            metrics: None,
        }
    }

    /// Counts records and decisions into `metrics` and keeps its gauges current.
    pub fn with_metrics(mut self, metrics: AggregateMetrics) -> Self {
        self.metrics = Some(metrics);
        self.update_gauges();
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &ApplicationConfig {
        &self.cfg
    }

    /// Applies one event to its cluster's state (created on first sight) and reschedules the
    /// cluster. The caller persists [`Aggregator::export`] of the cluster afterwards when the
    /// outcome is not a no-op.
    pub fn record(&mut self, ev: &ApplicationEvent, now: Timestamp) -> RecordOutcome {
        let state = match self.clusters.get_mut(ev.cluster_id.as_str()) {
            Some(state) => state,
            None => {
                let id = Sym::from(ev.cluster_id.as_str());
                self.clusters
                    .entry(Arc::clone(&id))
                    .or_insert_with(|| ClusterState::with_id(id))
            }
        };
        let outcome = state.record_in(ev, now, &mut self.interner);
        match outcome.effect {
            RecordEffect::Raised => self.active_errors += 1,
            RecordEffect::Resolved => self.active_errors -= 1,
            _ => {}
        }
        // A re-occurrence changes no deadline: neither the active set nor the diff moved.
        if matches!(
            outcome.effect,
            RecordEffect::Raised | RecordEffect::Resolved
        ) || matches!(outcome.zone, ZoneNote::Changed(_))
        {
            let id = Arc::clone(state.cluster_sym());
            self.reschedule_key(id, now, false);
        }
        if let Some(m) = &self.metrics {
            m.observe_record(&outcome);
        }
        self.update_gauges();
        outcome
    }

    /// Decides for every cluster whose deadline is at or before `now`. Decisions without a
    /// draft are returned too (for logs); each draft must end in [`Aggregator::mark_sent`] (or
    /// [`Aggregator::release`]) before its cluster is decided again.
    pub fn due(&mut self, now: Timestamp) -> Vec<(String, Decision)> {
        self.due_at_most(now, usize::MAX)
    }

    /// As [`Aggregator::due`], but deciding at most `limit` clusters; the rest stay due (the
    /// next deadline is still `now`). At midnight every cluster of a zone is due at once: this
    /// lets the shell take only as many drafts as its bounded outbox has room for, instead of
    /// holding 100,000 drafts (~500 MB) at once.
    pub fn due_at_most(&mut self, now: Timestamp, limit: usize) -> Vec<(String, Decision)> {
        let keys = self.scheduler.pop_due_at_most(now, limit);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(state) = self.clusters.get_mut(&*key) else {
                continue;
            };
            let decision = state.decide(now, &self.cfg);
            if let Some(m) = &self.metrics {
                m.observe_decision(&decision);
            }
            self.reschedule_key(Arc::clone(&key), now, true);
            out.push((key.to_string(), decision));
        }
        out
    }

    /// Records that `draft` was delivered at `sent_at` and reschedules its cluster.
    pub fn mark_sent(&mut self, draft: &Draft, sent_at: Timestamp) -> MarkOutcome {
        let Some(state) = self.clusters.get_mut(draft.cluster_id.as_str()) else {
            return MarkOutcome::NotInFlight;
        };
        let outcome = state.mark_sent(draft, sent_at);
        if outcome == MarkOutcome::Marked {
            self.reschedule(&draft.cluster_id, sent_at);
        }
        outcome
    }

    /// Gives up a draft out for delivery without marking it; the cluster is decided again.
    pub fn release(&mut self, cluster: &str, now: Timestamp) {
        if let Some(state) = self.clusters.get_mut(cluster) {
            state.release();
            self.reschedule(cluster, now);
        }
    }

    /// The earliest deadline over all clusters: when to call [`Aggregator::due`] next.
    pub fn next_deadline(&mut self) -> Option<Timestamp> {
        self.scheduler.next_deadline()
    }

    /// A cluster's state, to write to the changelog.
    pub fn export(&self, cluster: &str) -> Option<&ClusterState> {
        self.clusters.get(cluster)
    }

    /// Installs a state read back from the changelog (replacing any held one). The cluster is
    /// decided at the next [`Aggregator::due`] call from `now` on: a digest missed while no
    /// instance owned it is caught up (or reported missed), a pending change waits for the
    /// throttle.
    pub fn import(&mut self, mut state: ClusterState, now: Timestamp) {
        state.share_texts(&mut self.interner);
        self.insert_state(state, now);
    }

    /// Decodes a state read back from the changelog ([`ClusterState::to_json`]) and installs it
    /// as [`Aggregator::import`] does, sharing its texts as it decodes.
    pub fn import_json(
        &mut self,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), super::AggregateError> {
        let state = ClusterState::from_json_in(bytes, &mut self.interner)?;
        self.insert_state(state, now);
        Ok(())
    }

    fn insert_state(&mut self, state: ClusterState, now: Timestamp) {
        let cluster = match self.clusters.get_key_value(state.cluster_id()) {
            // Keep the key already shared with the scheduler.
            Some((k, _)) => Arc::clone(k),
            None => Arc::clone(state.cluster_sym()),
        };
        self.active_errors += state.active_len();
        if let Some(old) = self.clusters.insert(cluster.clone(), state) {
            self.active_errors -= old.active_len();
        }
        self.scheduler.schedule(cluster, now);
        self.update_gauges();
    }

    /// Drops a cluster (its partition was revoked) and returns its state.
    pub fn remove(&mut self, cluster: &str) -> Option<ClusterState> {
        let state = self.clusters.remove(cluster)?;
        self.scheduler.remove(cluster);
        self.active_errors -= state.active_len();
        self.update_gauges();
        Some(state)
    }

    /// Ids of the clusters held.
    pub fn cluster_ids(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(|k| &**k)
    }

    /// Number of clusters held.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether no cluster is held.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Active errors over all clusters held (the gauge's value).
    pub fn active_errors(&self) -> usize {
        self.active_errors
    }

    fn reschedule(&mut self, cluster: &str, now: Timestamp) {
        self.reschedule_with(cluster, now, false);
    }

    /// `after_decision`: right after [`ClusterState::decide`] nothing is due at `now` any more
    /// (it was handed out, is throttled or is settled). A deadline not in the future would be a
    /// logic error that spins the shell, so it is pushed a second out.
    fn reschedule_with(&mut self, cluster: &str, now: Timestamp, after_decision: bool) {
        let Some((key, _)) = self.clusters.get_key_value(cluster) else {
            return;
        };
        let key = Arc::clone(key);
        self.reschedule_key(key, now, after_decision);
    }

    fn reschedule_key(&mut self, key: Sym, now: Timestamp, after_decision: bool) {
        let Some(state) = self.clusters.get(&key) else {
            return;
        };
        let cluster = &*key;
        match state.next_deadline(now, &self.cfg) {
            Some(at) if after_decision && at <= now => {
                debug_assert!(
                    false,
                    "deadline {at} not after the decision at {now} ({cluster})"
                );
                self.scheduler.schedule(key, now + TimeDelta::seconds(1));
            }
            Some(at) => self.scheduler.schedule(key, at),
            None => self.scheduler.remove(&*key),
        }
    }

    fn update_gauges(&self) {
        if let Some(m) = &self.metrics {
            m.active_errors.set(self.active_errors as i64);
            m.clusters.set(self.clusters.len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::state::Reason;
    use crate::event::{ErrorGroup, ErrorKind, ErrorState, Node};
    use chrono::{DateTime, Utc};

    fn t(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ev(cluster: &str, node: &str, state: ErrorState, at: &str) -> ApplicationEvent {
        ApplicationEvent {
            event_id: format!("{cluster}/{node}/{at}"),
            cluster_id: cluster.into(),
            node: Node {
                node_id: node.into(),
                ip: "10.0.0.1".into(),
                port: 9045,
                comment: None,
                is_control: true,
            },
            control_timezone: None,
            group: ErrorGroup::System,
            kind: ErrorKind::DiskSpaceLow,
            state,
            occurred_at: t(at),
            last_successful_sync_at: None,
            message: None,
            attributes: Default::default(),
        }
    }

    fn agg() -> Aggregator {
        Aggregator::new(toml::from_str("").unwrap())
    }

    const T0: &str = "2025-06-10T10:00:00Z";

    #[test]
    fn counts_active_errors_across_record_import_and_remove() {
        let mut a = agg();
        a.record(&ev("c1", "n1", ErrorState::Raised, T0), t(T0));
        a.record(&ev("c1", "n2", ErrorState::Raised, T0), t(T0));
        a.record(&ev("c2", "n1", ErrorState::Raised, T0), t(T0));
        assert_eq!(a.active_errors(), 3);
        a.record(&ev("c1", "n2", ErrorState::Resolved, T0), t(T0));
        assert_eq!(a.active_errors(), 2);
        let c1 = a.export("c1").unwrap().clone();
        a.import(c1, t(T0)); // replacing the same state changes nothing
        assert_eq!(a.active_errors(), 2);
        let c2 = a.remove("c2").unwrap();
        assert_eq!(a.active_errors(), 1);
        assert_eq!(a.len(), 1);
        a.import(c2, t(T0));
        assert_eq!(a.active_errors(), 2);
    }

    #[test]
    fn due_hands_out_each_cluster_once_until_marked_sent() {
        let mut a = agg();
        a.record(&ev("c1", "n1", ErrorState::Raised, T0), t(T0));
        let due = a.due(t(T0));
        assert_eq!(due.len(), 1);
        let draft = due[0].1.draft.clone().unwrap();
        // A new event while the draft is out does not schedule a second one.
        a.record(&ev("c1", "n2", ErrorState::Raised, T0), t(T0));
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.mark_sent(&draft, t(T0)), MarkOutcome::Marked);
        // The second error waits for the throttle.
        assert_eq!(a.next_deadline(), Some(t("2025-06-10T10:15:00Z")));
        let due = a.due(t("2025-06-10T10:15:00Z"));
        assert_eq!(due[0].1.reason, Reason::Changed);
    }

    #[test]
    fn due_at_most_decides_in_batches() {
        let mut a = agg();
        for c in ["c1", "c2", "c3"] {
            a.record(&ev(c, "n1", ErrorState::Raised, T0), t(T0));
        }
        assert_eq!(a.due_at_most(t(T0), 2).len(), 2);
        assert_eq!(a.next_deadline(), Some(t(T0)));
        assert_eq!(a.due_at_most(t(T0), 2).len(), 1);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn a_released_cluster_is_decided_again() {
        let mut a = agg();
        a.record(&ev("c1", "n1", ErrorState::Raised, T0), t(T0));
        let first = a.due(t(T0)).remove(0).1.draft.unwrap();
        a.release("c1", t(T0));
        let again = a.due(t(T0)).remove(0).1.draft.unwrap();
        assert_eq!(first.id_seed, again.id_seed);
    }

    #[test]
    fn metrics_count_outcomes_decisions_and_gauges() {
        let registry = crate::telemetry::registry();
        let mut a = agg().with_metrics(AggregateMetrics::register(&registry));
        a.record(&ev("c1", "n1", ErrorState::Raised, T0), t(T0));
        a.record(&ev("c1", "n1", ErrorState::Raised, T0), t(T0));
        let mut bad = ev("c1", "n2", ErrorState::Raised, T0);
        bad.control_timezone = Some("Nowhere/Else".into());
        a.record(&bad, t(T0));
        a.due(t(T0));
        let text = crate::telemetry::encode_text(&registry);
        let get = |s: &str| crate::telemetry::sample(&text, s);
        let p = crate::telemetry::PREFIX;
        assert_eq!(
            get(&format!(
                "{p}application_events_total{{outcome=\"raised\"}}"
            )),
            Some(2.0)
        );
        assert_eq!(
            get(&format!(
                "{p}application_events_total{{outcome=\"duplicate\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            get(&format!("{p}application_events_total{{outcome=\"stale\"}}")),
            Some(0.0)
        );
        assert_eq!(
            get(&format!("{p}application_invalid_zones_total")),
            Some(1.0)
        );
        assert_eq!(
            get(&format!(
                "{p}application_decisions_total{{reason=\"first_change\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            get(&format!(
                "{p}application_decisions_total{{reason=\"throttled\"}}"
            )),
            Some(0.0)
        );
        assert_eq!(get(&format!("{p}application_errors_active")), Some(2.0));
        assert_eq!(get(&format!("{p}application_clusters")), Some(1.0));
    }
}
