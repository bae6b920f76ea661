//! Application notifications (DESIGN §3.1): the pure per-cluster state of gateway errors, the
//! digest / change / throttle decisions, and the scheduler that holds every cluster's next
//! deadline. No Kafka, no SMTP, no rendering, no clock: time is always passed in.
//!
//! - [`state`]: [`ClusterState`] — `record(event, now)`, `decide(now, cfg) -> Decision`,
//!   `mark_sent(draft, sent_at)`, `next_deadline(now, cfg)`; serde for the changelog. The
//!   semantic choices the design left open are documented there.
//! - [`zone`]: local midnight with the DST rules (skipped midnight → first instant after,
//!   repeated midnight → once).
//! - `intern`: node ids, comments, messages and attribute sets shared by all clusters.
//! - [`scheduler`]: one binary heap with lazy invalidation for all clusters.
//! - [`aggregator`]: [`Aggregator`] — the states of all owned clusters plus the scheduler.
//! - [`metrics`]: [`AggregateMetrics`] — decisions by reason, events by outcome, gauges.

pub mod aggregator;
mod intern;
pub mod metrics;
pub mod scheduler;
pub mod state;
pub mod zone;

pub use aggregator::Aggregator;
pub use metrics::AggregateMetrics;
pub use scheduler::Scheduler;
pub use state::{
    ActiveError, ClusterState, Decision, Draft, DraftError, DraftKind, ErrorKey, ErrorStatus,
    MarkOutcome, NodeInfo, Reason, RecordClass, RecordEffect, RecordOutcome, ZoneNote,
};

/// Errors of this module: only the (de)serialization of a cluster's state.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The state could not be written as JSON (a bug: every field is serializable).
    #[error("cannot encode application state: {0}")]
    Encode(#[source] serde_json::Error),
    /// A changelog record is not a valid state (corrupt, or written by an incompatible build).
    #[error("cannot decode application state: {0}")]
    Decode(#[source] serde_json::Error),
}

impl AggregateError {
    /// Neither succeeds on a retry.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Stable code for logs, metrics and dead-letter headers.
    pub fn error_code(&self) -> &'static str {
        match self {
            AggregateError::Encode(_) => "state_encode",
            AggregateError::Decode(_) => "state_decode",
        }
    }
}
