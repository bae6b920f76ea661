//! From a rendered notification to a completion: registers what waits on it, submits it to the
//! outbox, and on the relay's verdict counts it, dead-letters permanent failures (stage
//! `deliver`, with the rendered message so an operator can resend it), then runs the
//! notification's `on_done` — which completes the source record or updates decider state.

use super::metrics::AppMetrics;
use crate::deliver::{Completion, Outbox, Outgoing};
use crate::ingest::dlq::{DeadLetter, DlqWriter, Stage};
use crate::render::Rendered;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;

/// Where a notification came from, for the dead-letter headers and latency.
#[derive(Debug, Clone)]
pub struct Source {
    /// Source topic (or `mailgate-notify` for timer-driven notifications).
    pub topic: String,
    /// Source partition (-1 when none).
    pub partition: i32,
    /// Source offset (-1 when none).
    pub offset: i64,
    /// Broker timestamp of the source record (ms), for event-to-accepted latency.
    pub timestamp_ms: Option<i64>,
}

impl Source {
    /// A notification not derived from one record (digests, summaries).
    pub fn timer() -> Self {
        Source {
            topic: "mailgate-notify".into(),
            partition: -1,
            offset: -1,
            timestamp_ms: None,
        }
    }
}

/// Labels and origin of one notification.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `application`, `bounce`, `rule`.
    pub kind: &'static str,
    /// Recipient group label (`general`, `sender`, `admins`, `summary`…).
    pub group: &'static str,
    /// Origin.
    pub source: Source,
}

/// What happened to a notification, given to its `on_done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// At least one recipient accepted it.
    pub accepted: bool,
}

/// Runs when the notification is accepted or permanently failed (and dead-lettered).
pub type OnDone = Box<dyn FnOnce(Delivered) + Send>;

struct Pending {
    meta: Meta,
    message_id: String,
    bytes: Arc<[u8]>,
    on_done: OnDone,
}

/// Submits notifications and settles their completions.
pub struct Dispatcher {
    outbox: Outbox,
    pending: Mutex<HashMap<u64, Pending>>,
    next: AtomicU64,
    dlq: OnceLock<DlqWriter>,
    metrics: AppMetrics,
    envelope_from: Option<String>,
}

impl Dispatcher {
    /// A dispatcher over `outbox`; spawn [`Dispatcher::run_completions`] with its receiver.
    pub fn new(outbox: Outbox, metrics: AppMetrics, envelope_from: Option<String>) -> Arc<Self> {
        Arc::new(Dispatcher {
            outbox,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            dlq: OnceLock::new(),
            metrics,
            envelope_from,
        })
    }

    /// Gives the dispatcher its dead-letter writer (available once ingest started).
    pub fn set_dlq(&self, dlq: DlqWriter) {
        let _ = self.dlq.set(dlq);
    }

    /// The outbox (depth and breaker state for `/readyz`).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notifications submitted and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.pending().len()
    }

    /// Submits one rendered notification; waits while the outbox is full. `on_done` runs once
    /// the relay accepted it or it failed permanently and was dead-lettered.
    pub async fn send(&self, rendered: Rendered, meta: Meta, on_done: OnDone) {
        self.metrics
            .rendered(meta.kind, meta.group, rendered.fallback_used);
        if rendered.recipients.is_empty() {
            // Nothing valid to send to (every address was invalid): nothing to wait for.
            self.metrics.suppressed(meta.kind, "no_valid_recipient");
            tracing::warn!(
                kind = meta.kind, group = meta.group, message_id = %rendered.message_id,
                invalid = ?rendered.invalid_recipients, "notification has no valid recipient; not sent"
            );
            on_done(Delivered { accepted: false });
            return;
        }
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let bytes: Arc<[u8]> = Arc::from(rendered.bytes);
        self.pending().insert(
            ticket,
            Pending {
                meta,
                message_id: rendered.message_id.clone(),
                bytes: bytes.clone(),
                on_done,
            },
        );
        self.outbox
            .submit(Outgoing {
                ticket,
                message_id: rendered.message_id,
                envelope_from: rendered
                    .envelope_from
                    .or_else(|| self.envelope_from.clone()),
                recipients: rendered.recipients,
                bytes,
            })
            .await;
    }

    /// Settles completions until the outbox closes its channel.
    pub async fn run_completions(self: Arc<Self>, mut rx: mpsc::Receiver<Completion>) {
        while let Some(c) = rx.recv().await {
            let Some(p) = self.pending().remove(&c.ticket) else {
                tracing::error!(ticket = c.ticket, "completion for an unknown notification");
                continue;
            };
            let accepted = !c.accepted.is_empty();
            if c.transient_failures > 0 {
                self.metrics.failed(
                    p.meta.kind,
                    p.meta.group,
                    "transient",
                    u64::from(c.transient_failures),
                );
            }
            if accepted {
                self.metrics.sent(&p.meta, c.accepted.len());
            }
            if c.rejected.is_empty() {
                (p.on_done)(Delivered { accepted });
                continue;
            }
            for r in &c.rejected {
                self.metrics
                    .failed(p.meta.kind, p.meta.group, "permanent", 1);
                tracing::warn!(
                    kind = p.meta.kind, group = p.meta.group, message_id = %p.message_id,
                    recipient = %r.recipient, error_code = r.error.error_code(), error = %r.error,
                    "notification rejected permanently; dead-lettering the rendered message"
                );
            }
            let dlq = self.dlq.get().cloned();
            let first = &c.rejected[0];
            let dl = DeadLetter {
                key: Some(Arc::from(p.message_id.as_bytes())),
                value: p.bytes.clone(),
                topic: p.meta.source.topic.clone(),
                partition: p.meta.source.partition,
                offset: p.meta.source.offset,
                stage: Stage::Deliver,
                error_code: first.error.error_code().to_string(),
                error: c
                    .rejected
                    .iter()
                    .map(|r| format!("{}: {}", r.recipient, r.error))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            tokio::spawn(async move {
                match dlq {
                    Some(w) => w.write(&dl).await,
                    None => {
                        tracing::error!(message_id = %p.message_id, "no dead-letter writer; rejection only logged")
                    }
                }
                (p.on_done)(Delivered { accepted });
            });
        }
    }
}

/// Runs an action once `n` notifications are done: completes a source record (its `Ack`), or
/// the records a burst summary stands for.
pub struct Countdown {
    remaining: AtomicUsize,
    on_zero: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Countdown {
    /// Runs `on_zero` after `n` calls of [`Countdown::one_done`] (n ≥ 1).
    pub fn new(n: usize, on_zero: impl FnOnce() + Send + 'static) -> Arc<Self> {
        Arc::new(Countdown {
            remaining: AtomicUsize::new(n),
            on_zero: Mutex::new(Some(Box::new(on_zero))),
        })
    }

    /// Completes the record behind `ack` after `n` notifications.
    pub fn for_record(ack: crate::ingest::Ack, n: usize) -> Arc<Self> {
        Self::new(n, move || ack.done())
    }

    /// One notification is done; the last one runs the action.
    pub fn one_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let f = self
                .on_zero
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(f) = f {
                f();
            }
        }
    }
}

impl Source {
    /// The origin of notifications derived from a consumed record.
    pub fn of(record: &crate::ingest::Decoded) -> Self {
        Source {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
        }
    }
}

/// Called once per notification of a batch when it is settled.
pub type OnEach = Arc<dyn Fn(Delivered) + Send + Sync>;

impl Dispatcher {
    /// Renders and submits `items` in order on a task of their own (submission waits while
    /// the outbox is full; the caller must not). `on_each` runs as each one settles.
    pub fn send_batch(
        self: &Arc<Self>,
        renderer: Arc<crate::render::Renderer>,
        items: Vec<(crate::render::model::Request, Meta)>,
        on_each: OnEach,
    ) {
        let dispatcher = self.clone();
        tokio::spawn(async move {
            for (req, meta) in items {
                let rendered = renderer.render(&req);
                let f = on_each.clone();
                dispatcher
                    .send(rendered, meta, Box::new(move |d| f(d)))
                    .await;
            }
        });
    }
}
