//! Ingest (DESIGN §4): one rdkafka consumer in the configured group over the three input topics,
//! decoding each record and routing it by topic to its decider through [`Downstream`], with
//! at-least-once offsets ([`tracker`]), a dead-letter topic ([`dlq`]), back-pressure by pausing
//! partitions, cooperative rebalancing that drains revoked partitions before they go, and a
//! draining shutdown. Does not import `deliver`: completions come back through [`Ack`].

pub mod consumer;
pub mod dlq;
pub mod metrics;
pub mod tracker;

use crate::event::{Event, EventKind};
use dlq::{DeadLetter, DlqWriter, Stage};
use futures::future::BoxFuture;
use metrics::IngestMetrics;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
pub use tracker::{OffsetTracker, Ticket, TopicIdx};

pub use consumer::{start, Ingest, IngestError};

/// A decoded record handed to a decider.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Source topic name.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Record key.
    pub key: Option<Arc<[u8]>>,
    /// Original value bytes (for dead-lettering at a later stage).
    pub value: Arc<[u8]>,
    /// Broker timestamp (ms since epoch), for event-to-accepted latency.
    pub timestamp_ms: Option<i64>,
    /// The event.
    pub event: Event,
}

/// A topic partition as deciders see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// Which input.
    pub kind: EventKind,
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

/// A decider as ingest sees it. `handle` must not block: it hands the record to its own task
/// and completes the [`Ack`] when every notification derived from the record is done.
pub trait Downstream: Send + Sync + 'static {
    /// A decoded record of this decider's topic.
    fn handle(&self, record: Decoded, ack: Ack);

    /// Partitions newly assigned to this instance. Their records are held back (the partitions
    /// stay paused) until the returned future resolves: the aggregator restores state here.
    fn on_assigned(&self, _partitions: Vec<Partition>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Partitions taken away, after their in-flight work drained (or the drain timed out).
    fn on_revoked(&self, _partitions: Vec<Partition>) {}
}

/// The deciders by topic.
#[derive(Clone)]
pub struct Routes {
    /// For `application-events`.
    pub application: Arc<dyn Downstream>,
    /// For `bounces`.
    pub bounces: Arc<dyn Downstream>,
    /// For `scan-verdicts`.
    pub scan_verdicts: Arc<dyn Downstream>,
}

impl Routes {
    /// The route of a kind.
    pub fn get(&self, kind: EventKind) -> &Arc<dyn Downstream> {
        match kind {
            EventKind::Application => &self.application,
            EventKind::Bounce => &self.bounces,
            EventKind::ScanVerdict => &self.scan_verdicts,
        }
    }

    /// The same downstream for all three topics (tests, tools).
    pub fn all(d: Arc<dyn Downstream>) -> Self {
        Routes {
            application: d.clone(),
            bounces: d.clone(),
            scan_verdicts: d,
        }
    }
}

/// State shared by the consumer thread and every [`Ack`].
pub(crate) struct Shared {
    pub(crate) tracker: Mutex<OffsetTracker>,
    /// Signalled on every completion (revoke and shutdown drains wait on it).
    pub(crate) completed: Condvar,
    pub(crate) dlq: DlqWriter,
    pub(crate) metrics: IngestMetrics,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        // A panic while holding the lock cannot leave the tracker inconsistent in a way that
        // loses records (at worst a record is not marked done and is re-processed).
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn complete(&self, ticket: Ticket) {
        let mut t = self.tracker();
        let outcome = t.complete(ticket);
        self.metrics.in_flight.set(t.total_in_flight() as i64);
        drop(t);
        if outcome == tracker::CompleteOutcome::Unknown {
            tracing::error!(?ticket, "record completed twice or never started; ignored");
        }
        self.completed.notify_all();
    }
}

/// The obligation to complete one record. Call [`Ack::done`] when every notification derived
/// from the record was accepted by the relay or dead-lettered, or [`Ack::dead_letter`] to
/// dead-letter something first. An `Ack` dropped without either leaves the record unfinished:
/// its partition stops committing (at-least-once beats silent loss), and an error is logged.
pub struct Ack {
    shared: Arc<Shared>,
    ticket: Ticket,
    topic: Arc<str>,
    finished: bool,
}

impl Ack {
    pub(crate) fn new(shared: Arc<Shared>, ticket: Ticket, topic: Arc<str>) -> Self {
        Ack {
            shared,
            ticket,
            topic,
            finished: false,
        }
    }

    /// The record's ticket (topic index, partition, offset).
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The record is done: its offset may be committed once all before it are done.
    pub fn done(mut self) {
        self.finished = true;
        self.shared.complete(self.ticket);
    }

    /// Writes a dead letter for this record (retrying until the broker acknowledges), without
    /// completing the record. Use it for each permanently failed notification, then `done`.
    pub async fn write_dead_letter(
        &self,
        stage: Stage,
        error_code: &str,
        error: &str,
        key: Option<Arc<[u8]>>,
        value: Arc<[u8]>,
    ) {
        let dl = DeadLetter {
            key,
            value,
            topic: self.topic.to_string(),
            partition: self.ticket.partition,
            offset: self.ticket.offset,
            stage,
            error_code: error_code.to_string(),
            error: error.to_string(),
        };
        self.shared.dlq.write(&dl).await;
    }

    /// Dead-letters the record and then marks it done.
    pub async fn dead_letter(
        self,
        stage: Stage,
        error_code: &str,
        error: &str,
        key: Option<Arc<[u8]>>,
        value: Arc<[u8]>,
    ) {
        self.write_dead_letter(stage, error_code, error, key, value)
            .await;
        self.done();
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.finished {
            tracing::error!(
                topic = %self.topic, partition = self.ticket.partition, offset = self.ticket.offset,
                "record dropped without completion: its partition will not commit past it"
            );
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack").field("ticket", &self.ticket).finish()
    }
}
