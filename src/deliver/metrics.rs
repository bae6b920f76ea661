//! The delivery metrics, registered up front on the registry `start` is given, and the
//! telemetry events (one struct each, DESIGN §6) that log through `tracing` and count.

use crate::deliver::breaker::{BreakerState, Transition};
use crate::deliver::error::DeliverError;
use crate::telemetry;
use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};
use std::time::Duration;

/// Outcome label of the send-latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxOutcome {
    /// Every recipient tried in the transaction was accepted.
    Accepted,
    /// Some accepted, some not.
    Partial,
    /// Nothing accepted; at least one recipient will be retried.
    Transient,
    /// Nothing accepted; every recipient failed permanently.
    Permanent,
}

impl TxOutcome {
    const ALL: [&'static str; 4] = ["accepted", "partial", "transient", "permanent"];

    fn as_str(self) -> &'static str {
        match self {
            TxOutcome::Accepted => "accepted",
            TxOutcome::Partial => "partial",
            TxOutcome::Transient => "transient",
            TxOutcome::Permanent => "permanent",
        }
    }
}

/// Every metric of the module.
#[derive(Clone)]
pub(crate) struct DeliverMetrics {
    send_seconds: HistogramVec,
    pub(crate) outbox_depth: IntGauge,
    pub(crate) connections: IntGauge,
    breaker_state: IntGauge,
    breaker_transitions: IntCounterVec,
    sent: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    connects: IntCounterVec,
}

impl DeliverMetrics {
    /// Registers every metric on `registry`, label values pre-created at zero.
    pub(crate) fn register(registry: &Registry, capacity: usize) -> DeliverMetrics {
        let codes: Vec<[&str; 1]> = DeliverError::CODES.iter().map(|c| [*c]).collect();
        let code_labels: Vec<&[&str]> = codes.iter().map(|c| &c[..]).collect();
        let outcomes: Vec<[&str; 1]> = TxOutcome::ALL.iter().map(|o| [*o]).collect();
        let outcome_labels: Vec<&[&str]> = outcomes.iter().map(|o| &o[..]).collect();
        let capacity_gauge = telemetry::gauge(
            registry,
            "outbox_capacity",
            "Bound of the outbox (smtp.outbox_capacity): notifications queued or in progress at most.",
        );
        capacity_gauge.set(i64::try_from(capacity).unwrap_or(i64::MAX));
        DeliverMetrics {
            send_seconds: telemetry::histogram_vec(
                registry,
                "smtp_send_seconds",
                "Duration of one SMTP transaction (MAIL FROM to the final reply), by outcome.",
                &["outcome"],
                telemetry::latency_buckets(),
                &outcome_labels,
            ),
            outbox_depth: telemetry::gauge(
                registry,
                "outbox_depth",
                "Notifications in the outbox: queued, in progress or waiting for a retry.",
            ),
            connections: telemetry::gauge(
                registry,
                "smtp_connections",
                "Open connections of the SMTP pool.",
            ),
            breaker_state: telemetry::gauge(
                registry,
                "smtp_breaker_state",
                "Circuit breaker in front of the relay: 0 closed, 1 half-open, 2 open.",
            ),
            breaker_transitions: telemetry::counter_vec(
                registry,
                "smtp_breaker_transitions_total",
                "Circuit breaker state changes, by the state entered.",
                &["to"],
                &[&["closed"], &["open"], &["half_open"]],
            ),
            sent: telemetry::counter_vec(
                registry,
                "deliver_sent_recipients_total",
                "Recipients accepted by the relay (or written by the file transport).",
                &[],
                &[&[]],
            ),
            failed: telemetry::counter_vec(
                registry,
                "deliver_failed_recipients_total",
                "Recipients that failed permanently (reported for the dead-letter topic), by error.",
                &["error_code"],
                &code_labels,
            ),
            retried: telemetry::counter_vec(
                registry,
                "deliver_retried_recipients_total",
                "Recipient attempts that failed transiently and were scheduled again, by error.",
                &["error_code"],
                &code_labels,
            ),
            connects: telemetry::counter_vec(
                registry,
                "smtp_connects_total",
                "Connection attempts to the relay (TCP, TLS, EHLO, AUTH), by result.",
                &["result"],
                &[&["ok"], &["failed"]],
            ),
        }
    }

    pub(crate) fn observe_send(&self, outcome: TxOutcome, took: Duration) {
        self.send_seconds
            .with_label_values(&[outcome.as_str()])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn set_depth(&self, depth: usize) {
        self.outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

/// Recipients of one notification accepted by the relay.
pub(crate) struct RecipientsAccepted<'a> {
    pub message_id: &'a str,
    pub count: usize,
}

impl RecipientsAccepted<'_> {
    pub(crate) fn emit(&self, m: &DeliverMetrics) {
        tracing::debug!(
            message_id = self.message_id,
            recipients = self.count,
            "delivered"
        );
        m.sent
            .with_label_values::<&str>(&[])
            .inc_by(self.count as u64);
    }
}

/// One recipient failed permanently.
pub(crate) struct RecipientRejected<'a> {
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub error: &'a DeliverError,
}

impl RecipientRejected<'_> {
    pub(crate) fn emit(&self, m: &DeliverMetrics) {
        tracing::warn!(
            message_id = self.message_id,
            recipient = self.recipient,
            error_code = self.error.error_code(),
            error = %self.error,
            "delivery failed permanently"
        );
        m.failed.with_label_values(&[self.error.error_code()]).inc();
    }
}

/// Recipients of one notification will be tried again.
pub(crate) struct DeliveryDeferred<'a> {
    pub message_id: &'a str,
    pub recipients: usize,
    pub attempt: u32,
    pub retry_in: Duration,
    pub error: &'a DeliverError,
}

impl DeliveryDeferred<'_> {
    pub(crate) fn emit(&self, m: &DeliverMetrics) {
        // Debug, not warn: during an outage every queued notification passes here on every
        // round; the connection failures and breaker changes are the warnings.
        tracing::debug!(
            message_id = self.message_id,
            recipients = self.recipients,
            attempt = self.attempt,
            retry_in = ?self.retry_in,
            error_code = self.error.error_code(),
            error = %self.error,
            "delivery deferred"
        );
        m.retried
            .with_label_values(&[self.error.error_code()])
            .inc_by(self.recipients as u64);
    }
}

/// A connection attempt (TCP to AUTH) ended.
pub(crate) struct ConnectAttempted<'a> {
    pub error: Option<&'a DeliverError>,
    pub probe: bool,
}

impl ConnectAttempted<'_> {
    pub(crate) fn emit(&self, m: &DeliverMetrics) {
        match self.error {
            None => {
                tracing::debug!(probe = self.probe, "connected to the relay");
                m.connects.with_label_values(&["ok"]).inc();
            }
            Some(e) => {
                tracing::warn!(
                    probe = self.probe,
                    error_code = e.error_code(),
                    error = %e,
                    "connection to the relay failed"
                );
                m.connects.with_label_values(&["failed"]).inc();
            }
        }
    }
}

/// The circuit breaker changed state.
pub(crate) struct BreakerChanged {
    pub transition: Transition,
}

impl BreakerChanged {
    pub(crate) fn emit(&self, m: &DeliverMetrics) {
        let to: BreakerState = self.transition.to();
        match self.transition {
            Transition::Opened { failures, retry_in } => tracing::warn!(
                failures,
                retry_in = ?retry_in,
                "relay unreachable: circuit breaker open, connection attempts paused"
            ),
            Transition::Reopened { retry_in } => tracing::warn!(
                retry_in = ?retry_in,
                "probe connection failed: circuit breaker open again"
            ),
            Transition::HalfOpened => {
                tracing::info!("circuit breaker half-open: probing the relay")
            }
            Transition::Closed => tracing::info!("relay reachable again: circuit breaker closed"),
        }
        m.breaker_state.set(to.gauge_value());
        m.breaker_transitions
            .with_label_values(&[to.as_str()])
            .inc();
    }
}
