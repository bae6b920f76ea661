//! Delivery: a bounded outbox in front of our own pool of SMTP connections (DESIGN §4).
//!
//! The caller hands over [`Outgoing`] notifications — envelope and the complete rendered
//! message, which is never looked inside — and receives exactly one [`Completion`] per
//! notification once every recipient is either accepted by the relay or failed permanently.
//! Transient failures (4xx, I/O, timeouts) are never reported: the recipients stay in the outbox
//! and are retried with exponential backoff and jitter for as long as it takes. So "accepted",
//! "failed permanently" and "still trying" are exact, which is what moves Kafka offsets.
//!
//! - [`start`] builds the outbox and spawns `pool_size` workers on a thread and runtime of
//!   their own (so that a relay's reply is not read late behind rendering); each owns at most
//!   one connection, reused for up to `max_messages_per_connection` transactions, checked with
//!   NOOP after idling and closed after longer idling. MAIL, RCPT and DATA are pipelined when
//!   the relay offers PIPELINING.
//! - Connections are our own tokio sockets with `TCP_NODELAY`, handed to lettre's
//!   `AsyncSmtpConnection::connect_with_transport`; STARTTLS through lettre, implicit TLS through
//!   tokio-rustls; AUTH PLAIN or LOGIN. Why our own sockets: lettre's pooled transport never sets
//!   `TCP_NODELAY` and writes a message's body and its final `.` separately, so every message
//!   waited for the relay's delayed ACK (~40 ms: 23 msg/s per connection, FACTS.md). Ours set
//!   `TCP_NODELAY` and hand body and terminator to the kernel in one write; [`WireStats`] shows
//!   both, and the integration tests assert them.
//! - One transaction per notification: `MAIL FROM` (the null sender when `envelope_from` is
//!   `None`), one `RCPT TO` per recipient — each refused recipient classified on its own reply —
//!   and the bytes exactly as given.
//! - A circuit breaker ([`BreakerState`]) spaces out connection attempts to a dead relay; an
//!   optional rate limit caps messages per second over the pool.
//! - `[smtp] transport = "file"` writes each notification as an `.eml` file into `smtp.dir`
//!   (lettre's file transport) instead: the demo and dry runs.
//! - Metrics (on the registry given to `start`): `smtp_send_seconds`, `outbox_depth`,
//!   `outbox_capacity`, `smtp_connections`, `smtp_breaker_state`,
//!   `smtp_breaker_transitions_total`, `deliver_sent_recipients_total`,
//!   `deliver_failed_recipients_total`, `deliver_retried_recipients_total`, `smtp_connects_total`.
//!
//! This module does not know Kafka: permanent failures are reported in the completion, and the
//! wiring writes them to the dead-letter topic.

mod backoff;
mod breaker;
mod error;
mod metrics;
mod pool;
mod ratelimit;
mod session;
mod wire;

pub use backoff::Backoff;
pub use breaker::{Breaker, BreakerState, Permit, Transition};
pub use error::{DeliverError, Stage};
pub use pool::{Outbox, SubmitPermit};
pub use ratelimit::RateLimiter;
pub use wire::WireStats;

use crate::config::{EnvelopeSender, SenderConfig, SmtpConfig};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What to send. Deliver never looks inside `bytes`; they go on the wire exactly as given
/// (dot-stuffed by the SMTP layer, restored by the relay).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Opaque id, returned in the [`Completion`].
    pub ticket: u64,
    /// The message's Message-ID, for logs and the dead-letter topic.
    pub message_id: String,
    /// Envelope sender; `None` (or `""`/`"<>"`) is the null sender `<>`.
    pub envelope_from: Option<String>,
    /// One `RCPT TO` each (exact duplicates are sent once).
    pub recipients: Vec<String>,
    /// The complete RFC 5322 message, CRLF line ends. Sent byte for byte; one that does not end
    /// with CRLF gets one (SMTP cannot carry it otherwise).
    pub bytes: Arc<[u8]>,
}

impl Outgoing {
    /// The `envelope_from` of the configured `[sender]`: its envelope address, or `None` for the
    /// null sender `<>`.
    pub fn envelope_from(sender: &SenderConfig) -> Option<String> {
        match sender.envelope() {
            EnvelopeSender::Null => None,
            EnvelopeSender::Address(a) => Some(a.as_str().to_string()),
        }
    }
}

/// The outcome of one [`Outgoing`], reported exactly once, when every recipient is either
/// accepted by the relay or failed permanently. A notification with no recipient completes at
/// once with both lists empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The `Outgoing`'s ticket.
    pub ticket: u64,
    /// Recipients the relay accepted (final 2xx after the message).
    pub accepted: Vec<String>,
    /// Recipients that failed permanently, each with its own reason.
    pub rejected: Vec<Rejection>,
    /// Transient failures (4xx, timeouts, lost connections) retried before it settled; the
    /// wiring counts them per notification kind.
    pub transient_failures: u32,
}

/// One recipient that failed permanently.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The recipient as given.
    pub recipient: String,
    /// Why (`error_code()` for headers and metrics, `Display` for people).
    pub error: DeliverError,
}

/// Builds the outbox and spawns its workers on a thread of their own; completions arrive on
/// the returned receiver. Read the receiver from a task that never waits on `submit` (the
/// channel holds `outbox_capacity` completions; a worker with an undelivered completion keeps
/// its outbox place). Fails on unusable TLS/AUTH/file settings; registers the metrics on
/// `registry` only when it succeeds.
pub fn start(
    cfg: &SmtpConfig,
    registry: &prometheus::Registry,
) -> Result<(Outbox, mpsc::Receiver<Completion>), DeliverError> {
    pool::start(cfg, registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_sender_comes_from_the_sender_config_and_may_be_null() {
        let mut sender = SenderConfig {
            address: "notify@example.com".parse().unwrap(),
            display_name: None,
            envelope_sender: None,
            reply_to: None,
        };
        assert_eq!(
            Outgoing::envelope_from(&sender).as_deref(),
            Some("notify@example.com")
        );
        sender.envelope_sender = Some(EnvelopeSender::Null);
        assert_eq!(Outgoing::envelope_from(&sender), None);
    }
}
