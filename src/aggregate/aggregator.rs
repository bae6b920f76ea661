//! The aggregator: the states of every cluster this instance owns plus one scheduler for all of
//! their deadlines. Still pure — the async shell calls [`Aggregator::record`] for each event,
//! sleeps until [`Aggregator::next_deadline`] (or the next event), calls [`Aggregator::due`],
//! sends the drafts and calls [`Aggregator::mark_sent`] once each is delivered.

use super::metrics::AggregateMetrics;
use super::scheduler::Scheduler;
use super::state::{
    ClusterState, Decision, Draft, MarkOutcome, RecordClass, RecordOutcome, ZoneNote,
};
use crate::config::ApplicationConfig;
use crate::event::time::Timestamp;
use crate::event::ApplicationEvent;
use chrono::TimeDelta;
use std::collections::HashMap;

/// Per-cluster states and their deadlines.
#[derive(Debug)]
pub struct Aggregator {
    cfg: ApplicationConfig,
    clusters: HashMap<String, ClusterState>,
    scheduler: Scheduler<String>,
    active_errors: usize,
    metrics: Option<AggregateMetrics>,
}

impl Aggregator {
    /// An empty aggregator deciding with `cfg` (throttle, catch-up, zones).
    pub fn new(cfg: ApplicationConfig) -> Self {
        Aggregator {
            cfg,
            clusters: HashMap::new(),
            scheduler: Scheduler::new(),
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
        if !self.clusters.contains_key(&ev.cluster_id) {
            let state = ClusterState::new(ev.cluster_id.clone());
            self.clusters.insert(ev.cluster_id.clone(), state);
        }
        let Some(state) = self.clusters.get_mut(&ev.cluster_id) else {
            unreachable!("inserted above")
        };
        let before = state.active_len();
        let outcome = state.record(ev, now);
        self.active_errors = self.active_errors + state.active_len() - before;
        if outcome.effect.class() == RecordClass::Applied
            || matches!(outcome.zone, ZoneNote::Changed(_))
        {
            self.reschedule(&ev.cluster_id, now);
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
        let keys = self.scheduler.pop_due(now);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(state) = self.clusters.get_mut(&key) else {
                continue;
            };
            let decision = state.decide(now, &self.cfg);
            if let Some(m) = &self.metrics {
                m.observe_decision(&decision);
            }
            self.reschedule_with(&key, now, true);
            out.push((key, decision));
        }
        out
    }

    /// Records that `draft` was delivered at `sent_at` and reschedules its cluster.
    pub fn mark_sent(&mut self, draft: &Draft, sent_at: Timestamp) -> MarkOutcome {
        let Some(state) = self.clusters.get_mut(&draft.cluster_id) else {
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
    pub fn import(&mut self, state: ClusterState, now: Timestamp) {
        let cluster = state.cluster_id().to_string();
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
        self.scheduler.remove(&state.cluster_id().to_string());
        self.active_errors -= state.active_len();
        self.update_gauges();
        Some(state)
    }

    /// Ids of the clusters held.
    pub fn cluster_ids(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
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
        let Some(state) = self.clusters.get(cluster) else {
            return;
        };
        let key = cluster.to_string();
        match state.next_deadline(now, &self.cfg) {
            Some(at) if after_decision && at <= now => {
                debug_assert!(
                    false,
                    "deadline {at} not after the decision at {now} ({cluster})"
                );
                self.scheduler.schedule(key, now + TimeDelta::seconds(1));
            }
            Some(at) => self.scheduler.schedule(key, at),
            None => self.scheduler.remove(&key),
        }
    }

    fn update_gauges(&self) {
        if let Some(m) = &self.metrics {
            m.active_errors.set(self.active_errors as i64);
            m.clusters.set(self.clusters.len() as i64);
        }
    }
}
