//! The consumer thread. librdkafka's rebalance callbacks run inside `poll`, and a revoke must
//! wait for the revoked partitions' in-flight work before it returns; so the consumer runs on a
//! dedicated OS thread (a `BaseConsumer` polled in a loop) where blocking is harmless, while
//! deciders and delivery run on the tokio runtime and complete records through [`Ack`]s.

use super::dlq::{DlqWriter, Stage};
use super::metrics::IngestMetrics;
use super::tracker::{OffsetTracker, TopicIdx};
use super::{Ack, Decoded, Partition, Routes, Shared};
use crate::config::{Config, KafkaConfig};
use crate::event::{DecodeError, Decoder, EventKind};
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The Kafka client could not be created or subscribed.
    #[error("Kafka: {0}")]
    Kafka(String),
}

impl IngestError {
    /// Stable error code.
    pub fn error_code(&self) -> &'static str {
        "kafka"
    }
}

/// The base librdkafka config every client of ours uses: brokers, the pass-through properties,
/// and the SASL password from its secret source.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in &k.librdkafka {
        c.set(key, value);
    }
    c.set("bootstrap.servers", &k.brokers);
    if let Some(pw) = &k.sasl_password {
        c.set("sasl.password", pw.expose());
    }
    c
}

/// The consumer config: the pass-through first, then the settings at-least-once depends on,
/// which the pass-through cannot override (check-config refuses them too).
pub fn consumer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(k);
    if !k.librdkafka.contains_key("partition.assignment.strategy") {
        c.set("partition.assignment.strategy", "cooperative-sticky");
    }
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed");
    if !k.librdkafka.contains_key("statistics.interval.ms") {
        // Feeds the consumer-lag gauge.
        c.set("statistics.interval.ms", "5000");
    }
    c
}

/// Pass-through properties librdkafka applies to consumers only (its CONFIGURATION.md marks
/// them `C`). A producer handle given one logs a CONFWARN at every start, and operators learn to
/// ignore warnings; so the producers are created without them.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
];

/// The producer config for dead letters (and the changelog): acks from all replicas,
/// idempotent, so a retry never duplicates or reorders.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(k);
    for key in CONSUMER_ONLY {
        c.remove(key);
    }
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    c
}

/// Observable state of ingest, for `/readyz` and tests.
#[derive(Debug, Default)]
pub struct IngestStatus {
    /// Partitions assigned.
    pub assigned: AtomicUsize,
    /// Partitions still waiting for their `on_assigned` restore.
    pub restoring: AtomicUsize,
    /// Partitions paused for any reason.
    pub paused: AtomicUsize,
    /// Highest in-flight count seen (tests assert the bound).
    pub max_in_flight: AtomicUsize,
}

/// A running ingest: the consumer thread and its shared state.
pub struct Ingest {
    stop: Arc<AtomicBool>,
    finished: Option<tokio::sync::oneshot::Receiver<()>>,
    shared: Arc<Shared>,
    status: Arc<IngestStatus>,
}

impl Ingest {
    /// Asks the consumer to stop fetching, drain in-flight work (up to `kafka.shutdown_timeout`),
    /// commit and leave the group. Returns at once; await [`Ingest::wait`].
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Resolves when the consumer thread has committed and closed.
    pub async fn wait(&mut self) {
        if let Some(rx) = self.finished.take() {
            let _ = rx.await;
        }
    }

    /// Records in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.tracker().total_in_flight()
    }

    /// Observable counters.
    pub fn status(&self) -> &Arc<IngestStatus> {
        &self.status
    }

    /// Partitions assigned and none waiting for restore.
    pub fn ready(&self) -> bool {
        self.status.assigned.load(Ordering::SeqCst) > 0
            && self.status.restoring.load(Ordering::SeqCst) == 0
    }

    /// A clone of the dead-letter writer (the wiring dead-letters rendered messages with it).
    pub fn dlq(&self) -> DlqWriter {
        self.shared.dlq.clone()
    }
}

/// Starts ingest: creates the consumer and the DLQ producer, subscribes to the three input
/// topics and runs the consumer thread. Must be called inside a tokio runtime.
pub fn start(
    cfg: &Config,
    routes: Routes,
    decoder: Arc<Decoder>,
    registry: &prometheus::Registry,
) -> Result<Ingest, IngestError> {
    let k = &cfg.kafka;
    let metrics = IngestMetrics::new(registry);
    let producer: FutureProducer = producer_config(k)
        .create()
        .map_err(|e| IngestError::Kafka(format!("DLQ producer: {e}")))?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| IngestError::Kafka(format!("ingest needs a tokio runtime: {e}")))?;
    let shared = Arc::new(Shared {
        tracker: Mutex::new(OffsetTracker::new()),
        completed: Condvar::new(),
        dlq: DlqWriter::new(producer, &k.topics.dead_letter, metrics.clone()),
        metrics,
        runtime,
    });
    let topics: [Arc<str>; 3] = [
        k.topics.application.as_str().into(),
        k.topics.bounces.as_str().into(),
        k.topics.scan_verdicts.as_str().into(),
    ];
    let status = Arc::new(IngestStatus::default());
    let stop = Arc::new(AtomicBool::new(false));
    let inner = Arc::new(Inner {
        shared: shared.clone(),
        routes,
        topics: topics.clone(),
        local: Mutex::new(HashMap::new()),
        drain_timeout: k.shutdown_timeout,
        closing: AtomicBool::new(false),
        status: status.clone(),
    });
    let consumer: BaseConsumer<Ctx> = consumer_config(k)
        .create_with_context(Ctx {
            inner: inner.clone(),
        })
        .map_err(|e| IngestError::Kafka(format!("consumer: {e}")))?;
    let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| IngestError::Kafka(format!("subscribe {names:?}: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let loop_state = Loop {
        inner,
        decoder,
        commit_interval: k.commit_interval,
        max_per_partition: k.max_in_flight_per_partition,
        max_total: k.max_in_flight_total,
        stop: stop.clone(),
    };
    let rt = shared.runtime.clone();
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || {
            // Deciders spawn their work onto the runtime from `handle`, called on this thread.
            let _runtime = rt.enter();
            loop_state.run(consumer);
            let _ = tx.send(());
        })
        .map_err(|e| IngestError::Kafka(format!("cannot start the consumer thread: {e}")))?;
    Ok(Ingest {
        stop,
        finished: Some(rx),
        shared,
        status,
    })
}

/// Per-partition state local to the consumer (records held back, restore and retry state).
#[derive(Default)]
struct PartLocal {
    /// Records fetched but not yet handed out, in order (paused partition, retry pending).
    parked: VecDeque<OwnedMessage>,
    /// Set when the partition's `on_assigned` future resolved; `None` once seen.
    restoring: Option<Arc<AtomicBool>>,
    /// When the head record may be retried after a retryable error.
    retry_at: Option<Instant>,
    attempts: u32,
    /// Paused for back-pressure (with hysteresis).
    backpressured: bool,
    /// Whether librdkafka has it paused.
    paused: bool,
}

struct Inner {
    shared: Arc<Shared>,
    routes: Routes,
    topics: [Arc<str>; 3],
    local: Mutex<HashMap<(TopicIdx, i32), PartLocal>>,
    drain_timeout: Duration,
    /// Set during shutdown: the final revoke does not wait again.
    closing: AtomicBool,
    status: Arc<IngestStatus>,
}

const KINDS: [EventKind; 3] = [
    EventKind::Application,
    EventKind::Bounce,
    EventKind::ScanVerdict,
];

impl Inner {
    fn topic_idx(&self, topic: &str) -> Option<TopicIdx> {
        self.topics
            .iter()
            .position(|t| &**t == topic)
            .map(|i| i as TopicIdx)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<(TopicIdx, i32), PartLocal>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parts_of(&self, tpl: &TopicPartitionList) -> Vec<(TopicIdx, i32)> {
        tpl.elements()
            .iter()
            .filter_map(|e| self.topic_idx(e.topic()).map(|i| (i, e.partition())))
            .collect()
    }

    fn partitions(&self, parts: &[(TopicIdx, i32)], idx: TopicIdx) -> Vec<Partition> {
        parts
            .iter()
            .filter(|(t, _)| *t == idx)
            .map(|(t, p)| Partition {
                kind: KINDS[*t as usize],
                topic: self.topics[*t as usize].clone(),
                partition: *p,
            })
            .collect()
    }

    /// Waits until the given partitions have nothing in flight, or the drain timeout passes.
    fn drain(&self, parts: &[(TopicIdx, i32)]) -> bool {
        let deadline = Instant::now() + self.drain_timeout;
        let mut t = self.shared.tracker();
        loop {
            let n = t.in_flight_of(parts);
            if n == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    in_flight = n,
                    "drain timed out; unfinished records will be processed again by the next owner"
                );
                return false;
            }
            t = match self.shared.completed.wait_timeout(t, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Commits the done prefix of the given partitions (all when `None`), synchronously.
    fn commit(&self, consumer: &BaseConsumer<Ctx>, only: Option<&[(TopicIdx, i32)]>) {
        let pending: BTreeMap<(TopicIdx, i32), i64> = {
            let t = self.shared.tracker();
            t.pending_commits()
                .into_iter()
                .filter(|(k, _)| only.is_none_or(|o| o.contains(k)))
                .collect()
        };
        if pending.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), off) in &pending {
            if tpl
                .add_partition_offset(&self.topics[*t as usize], *p, Offset::Offset(*off))
                .is_err()
            {
                continue;
            }
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.shared.tracker().mark_committed(&pending);
                self.shared.metrics.commit(true);
                tracing::debug!(?pending, "committed");
            }
            Err(e) => {
                self.shared.metrics.commit(false);
                tracing::warn!(error = %e, "offset commit failed; will retry");
            }
        }
    }

    fn update_gauges(&self) {
        let local = self.local();
        let assigned = local.len();
        let restoring = local.values().filter(|p| p.restoring.is_some()).count();
        let paused = local.values().filter(|p| p.paused).count();
        drop(local);
        self.status.assigned.store(assigned, Ordering::SeqCst);
        self.status.restoring.store(restoring, Ordering::SeqCst);
        self.status.paused.store(paused, Ordering::SeqCst);
        self.shared.metrics.assigned.set(assigned as i64);
        self.shared.metrics.paused.set(paused as i64);
    }
}

struct Ctx {
    inner: Arc<Inner>,
}

impl ClientContext for Ctx {
    /// librdkafka statistics (every `statistics.interval.ms`): the consumer lag per assigned
    /// partition, as a gauge. Partitions librdkafka does not know the lag of (-1) are skipped.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in &statistics.topics {
            let Some(idx) = self.inner.topic_idx(name) else {
                continue;
            };
            let kind = KINDS[idx as usize].as_str();
            for (id, p) in &topic.partitions {
                if p.partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.inner
                    .shared
                    .metrics
                    .lag(kind, &id.to_string(), p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let inner = &self.inner;
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = inner.parts_of(tpl);
                inner.shared.metrics.rebalance("revoke", parts.len());
                {
                    // Held-back records were never handed out: the next owner reads them from
                    // the committed offset.
                    let mut local = inner.local();
                    for p in &parts {
                        if let Some(l) = local.get_mut(p) {
                            l.parked.clear();
                        }
                    }
                }
                if !inner.closing.load(Ordering::SeqCst) {
                    inner.drain(&parts);
                }
                inner.commit(consumer, Some(&parts));
                {
                    let mut t = inner.shared.tracker();
                    for (topic, p) in &parts {
                        t.revoke(*topic, *p);
                    }
                    inner
                        .shared
                        .metrics
                        .in_flight
                        .set(t.total_in_flight() as i64);
                }
                {
                    let mut local = inner.local();
                    for p in &parts {
                        local.remove(p);
                    }
                }
                for idx in 0..3u8 {
                    let ps = inner.partitions(&parts, idx);
                    if !ps.is_empty() {
                        inner.routes.get(KINDS[idx as usize]).on_revoked(ps);
                    }
                }
                inner.update_gauges();
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let inner = &self.inner;
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let parts = inner.parts_of(tpl);
        inner.shared.metrics.rebalance("assign", parts.len());
        {
            let mut t = inner.shared.tracker();
            for (topic, p) in &parts {
                t.assign(*topic, *p);
            }
        }
        let mut to_pause = TopicPartitionList::new();
        {
            let mut local = inner.local();
            for p in &parts {
                local.insert(*p, PartLocal::default());
            }
            for idx in 0..3u8 {
                let ps = inner.partitions(&parts, idx);
                if ps.is_empty() {
                    continue;
                }
                let mut fut = inner
                    .routes
                    .get(KINDS[idx as usize])
                    .on_assigned(ps.clone());
                if (&mut fut).now_or_never().is_some() {
                    continue;
                }
                // Hold the partitions back until their state is restored.
                let ready = Arc::new(AtomicBool::new(false));
                let flag = ready.clone();
                inner.shared.runtime.spawn(async move {
                    fut.await;
                    flag.store(true, Ordering::SeqCst);
                });
                for p in &ps {
                    if let Some(l) = local.get_mut(&(idx, p.partition)) {
                        l.restoring = Some(ready.clone());
                        l.paused = true;
                    }
                    let _ = to_pause.add_partition(&p.topic, p.partition);
                }
            }
        }
        if to_pause.count() > 0 {
            if let Err(e) = consumer.pause(&to_pause) {
                tracing::error!(error = %e, "cannot pause partitions awaiting restore");
            }
        }
        inner.update_gauges();
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "commit callback reported an error");
        }
    }
}

struct Loop {
    inner: Arc<Inner>,
    decoder: Arc<Decoder>,
    commit_interval: Duration,
    max_per_partition: usize,
    max_total: usize,
    stop: Arc<AtomicBool>,
}

enum Processed {
    /// Handed out (or dead-lettered, or not ours).
    Handled,
    /// Retryable failure: keep it at the head and retry later.
    Retry(OwnedMessage),
}

impl Loop {
    fn run(self, consumer: BaseConsumer<Ctx>) {
        let mut last_commit = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            self.tick(&consumer);
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let m = m.detach();
                    self.incoming(&consumer, m);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            if last_commit.elapsed() >= self.commit_interval {
                self.inner.commit(&consumer, None);
                last_commit = Instant::now();
            }
        }
        self.close(consumer);
    }

    /// Stop fetching, drain, commit, leave the group.
    fn close(&self, consumer: BaseConsumer<Ctx>) {
        let inner = &self.inner;
        let all = inner.shared.tracker().assigned();
        if let Ok(assignment) = consumer.assignment() {
            let _ = consumer.pause(&assignment);
        }
        {
            let mut local = inner.local();
            for l in local.values_mut() {
                l.parked.clear();
            }
        }
        let in_flight = inner.shared.tracker().total_in_flight();
        tracing::info!(in_flight, "shutting down: draining in-flight records");
        inner.drain(&all);
        inner.commit(&consumer, None);
        inner.closing.store(true, Ordering::SeqCst);
        consumer.unsubscribe();
        // Let librdkafka run the final revoke callback and leave the group cleanly.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !inner.local().is_empty() {
            let _ = consumer.poll(Duration::from_millis(50));
        }
        drop(consumer);
        tracing::info!("consumer closed");
    }

    fn incoming(&self, consumer: &BaseConsumer<Ctx>, m: OwnedMessage) {
        let Some(idx) = self.inner.topic_idx(m.topic()) else {
            return;
        };
        let key = (idx, m.partition());
        let eligible = {
            let local = self.inner.local();
            match local.get(&key) {
                // Not (or no longer) ours: the owner will read it from the committed offset.
                None => return,
                Some(l) => {
                    l.parked.is_empty()
                        && !l.paused
                        && l.retry_at.is_none()
                        && l.restoring.is_none()
                }
            }
        };
        if !eligible {
            if let Some(l) = self.inner.local().get_mut(&key) {
                l.parked.push_back(m);
            }
            return;
        }
        if let Processed::Retry(m) = self.process(idx, m) {
            if let Some(l) = self.inner.local().get_mut(&key) {
                l.parked.push_front(m);
            }
        }
        self.apply_pauses(consumer);
    }

    /// Decodes and hands out one record. Called only for an eligible partition, in order.
    fn process(&self, idx: TopicIdx, m: OwnedMessage) -> Processed {
        let inner = &self.inner;
        let kind = KINDS[idx as usize];
        let key = (idx, m.partition());
        let payload = m.payload().unwrap_or(&[]);
        let first_attempt = inner.local().get(&key).is_none_or(|l| l.attempts == 0);
        if first_attempt {
            inner.shared.metrics.consumed(kind);
        }
        let decoded = match self.decoder.decode_cached(kind, payload) {
            Err(DecodeError::RegistryUnavailable(_)) => inner
                .shared
                .runtime
                .block_on(self.decoder.decode(kind, payload)),
            other => other,
        };
        if let Err(e) = &decoded {
            if e.is_retryable() {
                let mut local = inner.local();
                if let Some(l) = local.get_mut(&key) {
                    l.attempts += 1;
                    let delay = Duration::from_millis(100)
                        .saturating_mul(1u32 << l.attempts.min(9))
                        .min(Duration::from_secs(30));
                    l.retry_at = Some(Instant::now() + delay);
                    tracing::warn!(
                        topic = kind.as_str(), partition = m.partition(), offset = m.offset(),
                        error = %e, retry_in = ?delay, "retryable error; partition paused, record will be retried"
                    );
                }
                inner.shared.metrics.retries.inc();
                return Processed::Retry(m);
            }
        }
        if let Some(l) = inner.local().get_mut(&key) {
            l.attempts = 0;
            l.retry_at = None;
        }
        let ticket = {
            let mut t = inner.shared.tracker();
            let ticket = t.start(idx, m.partition(), m.offset());
            let n = t.total_in_flight();
            inner.shared.metrics.in_flight.set(n as i64);
            inner.status.max_in_flight.fetch_max(n, Ordering::SeqCst);
            ticket
        };
        let Some(ticket) = ticket else {
            return Processed::Handled;
        };
        let topic = inner.topics[idx as usize].clone();
        let ack = Ack::new(inner.shared.clone(), ticket, topic.clone());
        let key_bytes: Option<Arc<[u8]>> = m.key().map(Arc::from);
        let value: Arc<[u8]> = Arc::from(payload);
        match decoded {
            Ok(event) => {
                let record = Decoded {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: key_bytes,
                    value,
                    timestamp_ms: m.timestamp().to_millis(),
                    event,
                };
                inner.routes.get(kind).handle(record, ack);
            }
            Err(e) => {
                inner
                    .shared
                    .metrics
                    .decode_failed(kind, m.partition(), m.offset(), &e);
                let code = e.error_code();
                let text = e.to_string();
                inner.shared.runtime.spawn(async move {
                    ack.dead_letter(Stage::Decode, code, &text, key_bytes, value)
                        .await;
                });
            }
        }
        Processed::Handled
    }

    /// Releases restore and retry holds, feeds parked records of eligible partitions, and
    /// pauses/resumes partitions to match.
    fn tick(&self, consumer: &BaseConsumer<Ctx>) {
        let now = Instant::now();
        let keys: Vec<(TopicIdx, i32)> = self.inner.local().keys().copied().collect();
        for key in keys {
            loop {
                let next = {
                    let mut local = self.inner.local();
                    let Some(l) = local.get_mut(&key) else { break };
                    if l.restoring
                        .as_ref()
                        .is_some_and(|f| f.load(Ordering::SeqCst))
                    {
                        l.restoring = None;
                    }
                    if l.restoring.is_some() || l.retry_at.is_some_and(|t| t > now) {
                        break;
                    }
                    if l.parked.is_empty() {
                        // Nothing held back: a pending retry time has passed with no record.
                        l.retry_at = None;
                        break;
                    }
                    if self.over_bound(key, l.backpressured) {
                        break;
                    }
                    l.retry_at = None;
                    l.parked.pop_front()
                };
                let Some(m) = next else { break };
                if let Processed::Retry(m) = self.process(key.0, m) {
                    if let Some(l) = self.inner.local().get_mut(&key) {
                        l.parked.push_front(m);
                    }
                    break;
                }
            }
        }
        self.apply_pauses(consumer);
    }

    /// Whether the partition must hold back: its own bound or the total bound reached (with
    /// hysteresis once paused: resume at half, so pause/resume do not flap).
    fn over_bound(&self, key: (TopicIdx, i32), already: bool) -> bool {
        let t = self.inner.shared.tracker();
        let (pp, tot) = (t.in_flight(key.0, key.1), t.total_in_flight());
        if already {
            pp > self.max_per_partition / 2 || tot > self.max_total / 2
        } else {
            pp >= self.max_per_partition || tot >= self.max_total
        }
    }

    fn apply_pauses(&self, consumer: &BaseConsumer<Ctx>) {
        let now = Instant::now();
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        {
            let keys: Vec<(TopicIdx, i32)> = self.inner.local().keys().copied().collect();
            for key in keys {
                let already = self
                    .inner
                    .local()
                    .get(&key)
                    .is_some_and(|l| l.backpressured);
                let bp = self.over_bound(key, already);
                let mut local = self.inner.local();
                let Some(l) = local.get_mut(&key) else {
                    continue;
                };
                l.backpressured = bp;
                let hold = bp
                    || l.restoring.is_some()
                    || l.retry_at.is_some_and(|t| t > now)
                    || !l.parked.is_empty();
                let topic = &self.inner.topics[key.0 as usize];
                if hold && !l.paused {
                    l.paused = true;
                    let _ = pause.add_partition(topic, key.1);
                } else if !hold && l.paused {
                    l.paused = false;
                    let _ = resume.add_partition(topic, key.1);
                }
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                tracing::error!(error = %e, "pause failed");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::error!(error = %e, "resume failed");
            }
        }
        if pause.count() > 0 || resume.count() > 0 {
            self.inner.update_gauges();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ProcessEnv};
    use std::path::Path;

    fn kafka(librdkafka: &str) -> KafkaConfig {
        let text = format!(
            r#"
            [sender]
            address = "notify@example.com"
            [[application.recipients]]
            addresses = ["admin@example.com"]
            [[bounce.recipients]]
            addresses = ["postmaster@example.com"]
            [kafka.librdkafka]
            {librdkafka}
            "#
        );
        match Config::from_toml(&text, Path::new("."), &ProcessEnv) {
            Ok(c) => c.kafka,
            Err(e) => panic!("{:?}", e.problems),
        }
    }

    #[test]
    fn producers_get_no_consumer_only_pass_through_properties() {
        let k = kafka(
            r#""session.timeout.ms" = "6000"
            "max.poll.interval.ms" = "8000"
            "fetch.wait.max.ms" = "10"
            "socket.keepalive.enable" = "true""#,
        );
        let p = producer_config(&k);
        for key in [
            "session.timeout.ms",
            "max.poll.interval.ms",
            "fetch.wait.max.ms",
        ] {
            assert_eq!(p.get(key), None, "{key} reached the producer");
        }
        assert_eq!(p.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(p.get("acks"), Some("all"));
        let c = consumer_config(&k);
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("group.id"), Some(k.group_id.as_str()));
    }
}
