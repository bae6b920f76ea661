//! Ingest metrics and telemetry events.

use super::dlq::{DeadLetter, Stage};
use crate::event::{DecodeError, EventKind};
use crate::telemetry;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

/// Ingest's counters and gauges (cheap to clone: prometheus handles are `Arc`s).
#[derive(Clone)]
pub struct IngestMetrics {
    consumed: IntCounterVec,
    decode_failures: IntCounterVec,
    dlq: IntCounterVec,
    /// DLQ writes that failed and are being retried.
    pub dlq_write_failed: IntCounter,
    rebalances: IntCounterVec,
    /// Partitions currently assigned.
    pub assigned: IntGauge,
    /// Partitions currently paused (back-pressure, restore or retry).
    pub paused: IntGauge,
    /// Records handed out and not yet done.
    pub in_flight: IntGauge,
    commits: IntCounterVec,
    /// Retries of a record after a retryable error (schema registry unavailable).
    pub retries: IntCounter,
    lag: prometheus::IntGaugeVec,
}

impl IngestMetrics {
    /// Registers ingest metrics on `r`, label values pre-created.
    pub fn new(r: &Registry) -> Self {
        let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        let kind_labels: Vec<[&str; 1]> = kinds.iter().map(|k| [*k]).collect();
        let kind_refs: Vec<&[&str]> = kind_labels.iter().map(|a| &a[..]).collect();
        let mut fail_labels = Vec::new();
        for k in &kinds {
            for c in DecodeError::CODES {
                fail_labels.push([*k, c]);
            }
        }
        let fail_refs: Vec<&[&str]> = fail_labels.iter().map(|a| &a[..]).collect();
        let dlq_labels: Vec<[&str; 2]> = DecodeError::CODES
            .iter()
            .map(|c| [Stage::Decode.as_str(), c])
            .collect();
        let dlq_refs: Vec<&[&str]> = dlq_labels.iter().map(|a| &a[..]).collect();
        IngestMetrics {
            consumed: telemetry::counter_vec(
                r,
                "events_consumed_total",
                "Records consumed from the input topics, by event kind.",
                &["topic"],
                &kind_refs,
            ),
            decode_failures: telemetry::counter_vec(
                r,
                "events_decode_failed_total",
                "Records that could not be decoded, by event kind and error code.",
                &["topic", "error_code"],
                &fail_refs,
            ),
            dlq: telemetry::counter_vec(
                r,
                "dlq_records_total",
                "Records written to the dead-letter topic, by stage and error code.",
                &["stage", "error_code"],
                &dlq_refs,
            ),
            dlq_write_failed: telemetry::counter_vec(
                r,
                "dlq_write_failures_total",
                "Dead-letter writes that failed and were retried.",
                &[],
                &[&[]],
            )
            .with_label_values(&[] as &[&str]),
            rebalances: telemetry::counter_vec(
                r,
                "rebalances_total",
                "Partition assignments and revocations.",
                &["kind"],
                &[&["assign"], &["revoke"]],
            ),
            assigned: telemetry::gauge(
                r,
                "partitions_assigned",
                "Input partitions assigned to this instance.",
            ),
            paused: telemetry::gauge(
                r,
                "partitions_paused",
                "Input partitions paused (back-pressure, restore, retry).",
            ),
            in_flight: telemetry::gauge(
                r,
                "records_in_flight",
                "Records consumed whose notifications are not all done.",
            ),
            commits: telemetry::counter_vec(
                r,
                "offset_commits_total",
                "Offset commits, by result.",
                &["result"],
                &[&["ok"], &["error"]],
            ),
            retries: telemetry::counter_vec(
                r,
                "record_retries_total",
                "Records retried after a retryable error (e.g. schema registry unavailable).",
                &[],
                &[&[]],
            )
            .with_label_values(&[] as &[&str]),
            lag: telemetry::gauge_vec(
                r,
                "consumer_lag",
                "Records behind the end of each assigned input partition (librdkafka statistics).",
                &["topic", "partition"],
                &[],
            ),
        }
    }

    /// Consumer lag of one partition.
    pub fn lag(&self, kind: &str, partition: &str, lag: i64) {
        self.lag.with_label_values(&[kind, partition]).set(lag);
    }

    /// A record was consumed.
    pub fn consumed(&self, kind: EventKind) {
        self.consumed.with_label_values(&[kind.as_str()]).inc();
    }

    /// A record could not be decoded (logs and counts).
    pub fn decode_failed(&self, kind: EventKind, partition: i32, offset: i64, e: &DecodeError) {
        tracing::warn!(
            topic = kind.as_str(), partition, offset, error_code = e.error_code(), error = %e,
            "record could not be decoded"
        );
        self.decode_failures
            .with_label_values(&[kind.as_str(), e.error_code()])
            .inc();
    }

    /// A dead letter was acknowledged (logs and counts).
    pub fn dlq_written(&self, dl: &DeadLetter) {
        tracing::warn!(
            topic = %dl.topic, partition = dl.partition, offset = dl.offset, stage = dl.stage.as_str(),
            error_code = %dl.error_code, error = %dl.error, "dead-lettered"
        );
        self.dlq
            .with_label_values(&[dl.stage.as_str(), &dl.error_code])
            .inc();
    }

    /// A rebalance event.
    pub fn rebalance(&self, kind: &'static str, partitions: usize) {
        tracing::info!(kind, partitions, "rebalance");
        self.rebalances.with_label_values(&[kind]).inc();
    }

    /// An offset commit.
    pub fn commit(&self, ok: bool) {
        self.commits
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }
}
