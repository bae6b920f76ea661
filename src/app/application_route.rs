//! Application events → the aggregator (one actor task owns it) → digests and change
//! notifications on its deadlines. A source record is done once its state change is durable in
//! the changelog; `last_sent_at` & co. are updated (and written) only after the relay accepted
//! the notification. On assignment the partition's clusters are restored from the changelog
//! before any of its records is processed, and records already reflected are skipped.

use super::clock::Clock;
use super::dispatch::{Dispatcher, Meta, Source};
use super::metrics::AppMetrics;
use crate::aggregate::{Aggregator, ClusterState, Draft, DraftKind, ErrorStatus};
use crate::config::RecipientGroup;
use crate::event::{Event, Node};
use crate::ingest::{Ack, Decoded, Downstream, Partition};
use crate::render::model::{self as rm, ApplicationKind, ApplicationNotice, Request};
use crate::render::Renderer;
use crate::state::{Changelog, Entry};
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Decisions taken per tick at most.
const DUE_BATCH: usize = 1_000;

enum Msg {
    Record(Box<Decoded>, Ack),
    /// Restored entries of a partition, in changelog order; the last message of a restore
    /// carries a channel that gets the partition's cluster count once all are in.
    Import(i32, Vec<Restore>, Option<oneshot::Sender<usize>>),
    Revoked(Vec<i32>),
    Sent(Box<Draft>, bool),
    /// The changelog write of this cluster is durable.
    Written(String),
}

/// A decoded changelog entry on its way to the actor.
enum Restore {
    /// A cluster's state and the source offset it reflects.
    Put(ClusterState, i64),
    /// A tombstone.
    Forget(String),
}

/// Decodes a restore's streamed entries and hands them to the actor in batches (so neither the
/// raw bytes nor the decoded states of a whole partition pile up); the last batch goes when it
/// is dropped, at the end of the read, before the restore returns.
struct RestoreSink {
    partition: i32,
    tx: mpsc::UnboundedSender<Msg>,
    batch: Vec<Restore>,
}

impl RestoreSink {
    const BATCH: usize = 1_000;

    fn new(partition: i32, tx: mpsc::UnboundedSender<Msg>) -> Self {
        RestoreSink {
            partition,
            tx,
            batch: Vec::with_capacity(Self::BATCH),
        }
    }

    fn push(&mut self, entry: Entry) {
        match entry {
            Entry::Put {
                key,
                value,
                source_offset,
            } => match ClusterState::from_json(&value) {
                Ok(s) => self.batch.push(Restore::Put(s, source_offset)),
                Err(e) => {
                    tracing::error!(cluster = %key, error = %e, "unreadable state in the changelog; starting that cluster empty");
                    // An older readable state of it must not survive either.
                    self.batch.push(Restore::Forget(key));
                }
            },
            Entry::Forget(key) => self.batch.push(Restore::Forget(key)),
        }
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
            let _ = self.tx.send(Msg::Import(self.partition, batch, None));
        }
    }
}

impl Drop for RestoreSink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Changelog writes per cluster: at most one in flight, later requests coalesced into one
/// write of the newest state once it is durable.
///
/// Why: `Changelog::write` retries until the broker acknowledges; two writes of one cluster in
/// flight at once could land in either order after a long outage, and the older state would
/// then win compaction. One write at a time keeps them in order, and under a burst of events
/// for one cluster it writes its state once per round trip instead of once per event.
struct WriteQueue<A> {
    /// Clusters with a write in flight → the completions waiting for the *next* write (their
    /// effect is not in the state being written), if any.
    pending: HashMap<String, Option<Vec<A>>>,
}

impl<A> WriteQueue<A> {
    fn new() -> Self {
        WriteQueue {
            pending: HashMap::new(),
        }
    }

    /// A write of `cluster`'s current state is wanted, completing `done` once durable.
    /// Returns the completions to start a write with now, or `None` when one is in flight
    /// (then they wait for the next write).
    fn request(&mut self, cluster: &str, done: Option<A>) -> Option<Vec<A>> {
        match self.pending.get_mut(cluster) {
            Some(waiting) => {
                let w = waiting.get_or_insert_with(Vec::new);
                w.extend(done);
                None
            }
            None => {
                self.pending.insert(cluster.to_string(), None);
                Some(done.into_iter().collect())
            }
        }
    }

    /// The write in flight for `cluster` is durable. Returns the completions of a follow-up
    /// write to start now (with the newest state), if requests came in meanwhile.
    fn written(&mut self, cluster: &str) -> Option<Vec<A>> {
        match self.pending.remove(cluster) {
            Some(Some(waiting)) => {
                self.pending.insert(cluster.to_string(), None);
                Some(waiting)
            }
            _ => None,
        }
    }

    /// No write could be started for `cluster` (its state is gone or unserializable): forgets
    /// it and returns the completions that were waiting.
    fn abandon(&mut self, cluster: &str) -> Vec<A> {
        self.pending.remove(cluster).flatten().unwrap_or_default()
    }
}

/// The aggregator as a [`Downstream`]: a handle to its actor task.
pub struct ApplicationRoute {
    tx: mpsc::UnboundedSender<Msg>,
    changelog: Option<Changelog>,
    restore_timeout: Duration,
    metrics: AppMetrics,
    restore_seconds: prometheus::Histogram,
}

/// What the actor needs.
pub struct ApplicationDeps {
    /// The aggregator (with its metrics).
    pub aggregator: Aggregator,
    /// Admin groups.
    pub recipients: Vec<RecipientGroup>,
    /// `[application] enabled`.
    pub enabled: bool,
    /// Changelog (None: state lives in memory only — the demo's in-process broker).
    pub changelog: Option<Changelog>,
    /// Renderer.
    pub renderer: Arc<Renderer>,
    /// Dispatcher.
    pub dispatcher: Arc<Dispatcher>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Real-time interval of deadline checks.
    pub tick: Duration,
    /// Pipeline metrics.
    pub metrics: AppMetrics,
    /// Registry for the restore-duration histogram.
    pub registry: prometheus::Registry,
    /// Set at shutdown: the actor stops (it holds a sender of its own channel for the
    /// delivery callbacks, so the channel alone never closes).
    pub stop: tokio::sync::watch::Receiver<bool>,
}

impl ApplicationRoute {
    /// Spawns the actor.
    pub fn start(d: ApplicationDeps) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let restore_seconds = crate::telemetry::histogram(
            &d.registry,
            "state_restore_seconds",
            "Time to restore one partition's application state from the changelog.",
            vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        );
        let route = Arc::new(ApplicationRoute {
            tx: tx.clone(),
            changelog: d.changelog.clone(),
            restore_timeout: Duration::from_secs(60),
            metrics: d.metrics.clone(),
            restore_seconds,
        });
        let actor = Actor {
            agg: d.aggregator,
            recipients: d.recipients,
            enabled: d.enabled,
            changelog: d.changelog,
            renderer: d.renderer,
            dispatcher: d.dispatcher,
            clock: d.clock,
            metrics: d.metrics,
            tx,
            partition_of: HashMap::new(),
            offset_of: HashMap::new(),
            out: HashMap::new(),
            writes: WriteQueue::new(),
        };
        tokio::spawn(actor.run(rx, d.tick, d.stop));
        route
    }
}

impl Downstream for ApplicationRoute {
    fn handle(&self, record: Decoded, ack: Ack) {
        if let Err(mpsc::error::SendError(Msg::Record(_, ack))) =
            self.tx.send(Msg::Record(Box::new(record), ack))
        {
            // The actor is gone (shutdown): leave the record unfinished so it is re-read.
            drop(ack);
        }
    }

    fn on_assigned(&self, partitions: Vec<Partition>) -> BoxFuture<'static, ()> {
        let Some(log) = self.changelog.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let tx = self.tx.clone();
        let timeout = self.restore_timeout;
        let hist = self.restore_seconds.clone();
        Box::pin(async move {
            for p in partitions {
                let started = std::time::Instant::now();
                let mut delay = Duration::from_millis(200);
                loop {
                    // Decoded and handed to the actor in batches while the partition is read:
                    // a partition's raw states are never held whole (they were the restore's
                    // memory peak). A retry streams everything again; imports overwrite.
                    let mut sink = RestoreSink::new(p.partition, tx.clone());
                    match log
                        .restore_each(p.partition, timeout, move |e| sink.push(e))
                        .await
                    {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(partition = p.partition, error = %e, retry_in = ?delay, "state restore failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(10));
                        }
                    }
                }
                // The actor handles messages in order: once this answers, every batch is in.
                let (done_tx, done_rx) = oneshot::channel();
                let mut n = 0;
                if tx
                    .send(Msg::Import(p.partition, Vec::new(), Some(done_tx)))
                    .is_ok()
                {
                    n = done_rx.await.unwrap_or(0);
                }
                hist.observe(started.elapsed().as_secs_f64());
                tracing::info!(partition = p.partition, clusters = n, took = ?started.elapsed(), "application state restored");
            }
        })
    }

    fn on_revoked(&self, partitions: Vec<Partition>) {
        let _ = self.tx.send(Msg::Revoked(
            partitions.iter().map(|p| p.partition).collect(),
        ));
        let _ = &self.metrics;
    }
}

struct Actor {
    agg: Aggregator,
    recipients: Vec<RecipientGroup>,
    enabled: bool,
    changelog: Option<Changelog>,
    renderer: Arc<Renderer>,
    dispatcher: Arc<Dispatcher>,
    clock: Arc<dyn Clock>,
    metrics: AppMetrics,
    tx: mpsc::UnboundedSender<Msg>,
    /// Source partition of each cluster (its changelog partition).
    partition_of: HashMap<String, i32>,
    /// Highest source offset reflected in each cluster's state.
    offset_of: HashMap<String, i64>,
    /// Drafts out for delivery: how many group mails are still pending, and whether any was
    /// accepted.
    out: HashMap<String, (usize, bool)>,
    /// Changelog writes in flight, one per cluster.
    writes: WriteQueue<Ack>,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        tick: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => self.on_msg(m),
                    None => return,
                },
                _ = ticker.tick() => self.on_tick(),
                _ = stop.changed() => return,
            }
        }
    }

    fn on_msg(&mut self, m: Msg) {
        match m {
            Msg::Record(r, ack) => self.on_record(*r, ack),
            Msg::Import(partition, entries, done) => {
                let now = self.clock.now();
                for e in entries {
                    match e {
                        Restore::Put(s, offset) => {
                            let id = s.cluster_id().to_string();
                            self.partition_of.insert(id.clone(), partition);
                            self.offset_of.insert(id, offset);
                            self.agg.import(s, now);
                        }
                        Restore::Forget(id) => {
                            self.agg.remove(&id);
                            self.partition_of.remove(&id);
                            self.offset_of.remove(&id);
                        }
                    }
                }
                if let Some(done) = done {
                    let n = self
                        .partition_of
                        .values()
                        .filter(|p| **p == partition)
                        .count();
                    let _ = done.send(n);
                }
            }
            Msg::Revoked(parts) => {
                let parts: HashSet<i32> = parts.into_iter().collect();
                let gone: Vec<String> = self
                    .partition_of
                    .iter()
                    .filter(|(_, p)| parts.contains(p))
                    .map(|(c, _)| c.clone())
                    .collect();
                for c in gone {
                    self.agg.remove(&c);
                    self.partition_of.remove(&c);
                    self.offset_of.remove(&c);
                }
            }
            Msg::Sent(draft, accepted) => self.on_sent(*draft, accepted),
            Msg::Written(cluster) => {
                if let Some(acks) = self.writes.written(&cluster) {
                    self.write(&cluster, acks);
                }
            }
        }
    }

    fn on_record(&mut self, r: Decoded, ack: Ack) {
        let Event::Application(ev) = &r.event else {
            tracing::error!(topic = %r.topic, "non-application event routed to the aggregator; skipped");
            ack.done();
            return;
        };
        if !self.enabled {
            self.metrics.suppressed("application", "disabled");
            ack.done();
            return;
        }
        if self
            .offset_of
            .get(&ev.cluster_id)
            .is_some_and(|o| r.offset <= *o)
        {
            // Already reflected in the restored state: a replay.
            tracing::debug!(cluster = %ev.cluster_id, offset = r.offset, "record already reflected in the state; skipped");
            ack.done();
            return;
        }
        let now = self.clock.now();
        let outcome = self.agg.record(ev, now);
        self.partition_of.insert(ev.cluster_id.clone(), r.partition);
        if outcome.effect.class() != crate::aggregate::RecordClass::Applied {
            tracing::debug!(cluster = %ev.cluster_id, event_id = %ev.event_id, outcome = outcome.as_str(), "no state change");
            ack.done();
            return;
        }
        self.offset_of.insert(ev.cluster_id.clone(), r.offset);
        self.persist(&ev.cluster_id, Some(ack));
        // A first change is due now: decided at once rather than at the next tick (the tick
        // alone put 100-250 ms on every change notification in the load benchmark). Nothing due
        // costs one look at the earliest deadline.
        self.on_tick();
    }

    /// Writes the cluster's current state to the changelog; completes `ack` once a state that
    /// includes its effect is durable.
    fn persist(&mut self, cluster: &str, ack: Option<Ack>) {
        if self.changelog.is_none() {
            if let Some(a) = ack {
                a.done();
            }
            return;
        }
        if let Some(acks) = self.writes.request(cluster, ack) {
            self.write(cluster, acks);
        }
    }

    /// Starts the one write in flight for `cluster`, of its state as it is now.
    fn write(&mut self, cluster: &str, acks: Vec<Ack>) {
        let done = |acks: Vec<Ack>| acks.into_iter().for_each(Ack::done);
        let (Some(log), Some(state)) = (self.changelog.clone(), self.agg.export(cluster)) else {
            // Revoked meanwhile: its records belong to the partition's next owner.
            done(acks);
            done(self.writes.abandon(cluster));
            return;
        };
        let bytes = match state.to_json() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(cluster, error = %e, "cannot serialize state; not persisted");
                done(acks);
                done(self.writes.abandon(cluster));
                return;
            }
        };
        let partition = self.partition_of.get(cluster).copied().unwrap_or(0);
        let offset = self.offset_of.get(cluster).copied().unwrap_or(-1);
        let key = cluster.to_string();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            log.write(partition, &key, &bytes, offset).await;
            done(acks);
            let _ = tx.send(Msg::Written(key));
        });
    }

    /// Decides and sends what is due now (called on every tick and after every applied record).
    fn on_tick(&mut self) {
        let now = self.clock.now();
        // In batches: at midnight every cluster of a zone is due at once, and 100,000 drafts at
        // once would be a memory spike; the rest stays due for the next tick.
        for (cluster, decision) in self.agg.due_at_most(now, DUE_BATCH) {
            let Some(draft) = decision.draft else {
                if decision.reason.as_str() == "throttled" {
                    tracing::debug!(
                        cluster,
                        reason = decision.reason.as_str(),
                        "change notification throttled"
                    );
                }
                continue;
            };
            tracing::info!(
                cluster,
                reason = decision.reason.as_str(),
                kind = draft.kind.as_str(),
                errors = draft.errors.len(),
                "application notification"
            );
            self.send(draft);
        }
    }

    fn send(&mut self, draft: Draft) {
        let groups: Vec<&RecipientGroup> = self
            .recipients
            .iter()
            .filter(|g| !g.addresses.is_empty())
            .collect();
        if groups.is_empty() {
            let now = self.clock.now();
            self.agg.mark_sent(&draft, now);
            return;
        }
        self.out
            .insert(draft.id_seed.clone(), (groups.len(), false));
        let kind = match draft.kind {
            DraftKind::Digest(_) => ApplicationKind::Digest,
            DraftKind::Change => ApplicationKind::Change,
        };
        let errors: Vec<rm::AppError> = draft
            .errors
            .iter()
            .map(|e| rm::AppError {
                status: match e.status {
                    ErrorStatus::New => rm::ErrorStatus::New,
                    ErrorStatus::StillActive => rm::ErrorStatus::StillActive,
                    ErrorStatus::Resolved => rm::ErrorStatus::Resolved,
                },
                group: e.group,
                kind: e.kind,
                node: Node {
                    node_id: e.node_id.clone(),
                    ip: e.node.ip.clone(),
                    port: e.node.port,
                    comment: e.node.comment.clone(),
                    is_control: false,
                },
                first_seen: e.first_seen,
                last_occurrence: e.last_occurrence,
                last_successful_sync: e.last_successful_sync,
                message: e.message.clone(),
                attributes: e.attributes.clone(),
            })
            .collect();
        let group_label = draft.kind.as_str();
        let group_label: &'static str = if group_label == "digest" {
            "digest"
        } else {
            "change"
        };
        let requests: Vec<Request> = groups
            .iter()
            .map(|g| {
                Request::Application(ApplicationNotice {
                    kind,
                    cluster_id: draft.cluster_id.clone(),
                    tz: draft.zone,
                    at: draft.at,
                    errors: errors.clone(),
                    recipients: g.addresses.iter().map(|a| a.as_str().to_string()).collect(),
                    language: g.language.clone(),
                    id_seed: draft.id_seed.clone(),
                })
            })
            .collect();
        let meta = Meta {
            kind: "application",
            group: group_label,
            source: Source::timer(),
        };
        let items: Vec<_> = requests.into_iter().map(|r| (r, meta.clone())).collect();
        let tx = self.tx.clone();
        self.dispatcher.send_batch(
            self.renderer.clone(),
            items,
            Arc::new(move |r| {
                let _ = tx.send(Msg::Sent(Box::new(draft.clone()), r.accepted));
            }),
        );
    }

    fn on_sent(&mut self, draft: Draft, accepted: bool) {
        let Some(entry) = self.out.get_mut(&draft.id_seed) else {
            return;
        };
        entry.0 -= 1;
        entry.1 |= accepted;
        if entry.0 > 0 {
            return;
        }
        self.out.remove(&draft.id_seed);
        // Marked sent also when every recipient rejected it permanently (dead-lettered): the
        // relay will not change its mind, and retrying forever would block the next one.
        let now = self.clock.now();
        self.agg.mark_sent(&draft, now);
        self.persist(&draft.cluster_id, None);
    }
}

#[cfg(test)]
mod tests {
    use super::{ClusterState, Entry, Msg, Restore, RestoreSink, WriteQueue};
    use tokio::sync::mpsc;

    fn put(cluster: &str, offset: i64) -> Entry {
        Entry::Put {
            key: cluster.to_string(),
            value: ClusterState::new(cluster).to_json().unwrap(),
            source_offset: offset,
        }
    }

    #[test]
    fn a_restore_reaches_the_actor_in_bounded_batches_in_order_with_the_rest_at_the_end() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sink = RestoreSink::new(3, tx);
        for i in 0..2_500 {
            sink.push(put(&format!("c{i}"), i));
        }
        sink.push(Entry::Put {
            key: "broken".into(),
            value: b"{not json".to_vec(),
            source_offset: 9_999,
        });
        sink.push(Entry::Forget("c7".into()));
        let mut sizes = Vec::new();
        while let Ok(Msg::Import(3, batch, None)) = rx.try_recv() {
            sizes.push(batch.len());
        }
        assert_eq!(sizes, [1_000, 1_000], "full batches go while reading");
        drop(sink);
        let Ok(Msg::Import(3, last, None)) = rx.try_recv() else {
            panic!("the rest is flushed when the read ends");
        };
        assert_eq!(last.len(), 502);
        assert!(matches!(&last[0], Restore::Put(s, 2_000) if s.cluster_id() == "c2000"));
        assert!(
            matches!(&last[500], Restore::Forget(k) if k == "broken"),
            "an unreadable state forgets the cluster rather than keep an older one"
        );
        assert!(matches!(&last[501], Restore::Forget(k) if k == "c7"));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_second_write_of_a_cluster_waits_for_the_first_and_carries_every_later_completion() {
        let mut q = WriteQueue::new();
        assert_eq!(
            q.request("c1", Some(1)),
            Some(vec![1]),
            "first write starts at once"
        );
        assert_eq!(
            q.request("c1", Some(2)),
            None,
            "one write per cluster in flight"
        );
        assert_eq!(q.request("c1", None), None);
        assert_eq!(q.request("c1", Some(3)), None);
        assert_eq!(
            q.request("c2", Some(10)),
            Some(vec![10]),
            "other clusters are independent"
        );
        assert_eq!(
            q.written("c1"),
            Some(vec![2, 3]),
            "one follow-up write of the newest state completes every waiting record"
        );
        assert_eq!(q.written("c1"), None, "nothing waited for the follow-up");
        assert_eq!(q.request("c1", Some(4)), Some(vec![4]), "idle again");
        assert_eq!(q.written("c2"), None);
    }

    #[test]
    fn an_abandoned_cluster_returns_its_waiting_completions_and_is_idle() {
        let mut q = WriteQueue::new();
        assert_eq!(q.request("c", Some(1)), Some(vec![1]));
        assert_eq!(q.request("c", Some(2)), None);
        assert_eq!(q.abandon("c"), vec![2]);
        assert_eq!(
            q.written("c"),
            None,
            "a late ack of the abandoned write starts nothing"
        );
        assert_eq!(q.request("c", Some(3)), Some(vec![3]));
    }
}
