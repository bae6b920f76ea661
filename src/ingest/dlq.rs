//! The dead-letter producer. A dead-lettered record is done only after the broker acknowledged
//! the dead letter; when the DLQ cannot be written the write is retried with backoff for as long
//! as it takes, so the partition stops advancing rather than skipping the record.

use super::metrics::IngestMetrics;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;

/// The pipeline stage where a record failed (header `x-dlq-stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Undecodable record.
    Decode,
    /// A decider refused the event.
    Decide,
    /// Rendering failed even with the fallback template.
    Render,
    /// The relay rejected the notification permanently; the value is the rendered message.
    Deliver,
}

impl Stage {
    /// Header value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Decide => "decide",
            Stage::Render => "render",
            Stage::Deliver => "deliver",
        }
    }

    /// All stages, to pre-create metric labels.
    pub const ALL: [Stage; 4] = [Stage::Decode, Stage::Decide, Stage::Render, Stage::Deliver];
}

/// One dead letter: the original key and value (or, for `deliver`, the rendered message) and
/// where it came from.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Record key.
    pub key: Option<Arc<[u8]>>,
    /// Record value (original bytes, or the rendered message for stage `deliver`).
    pub value: Arc<[u8]>,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Failing stage.
    pub stage: Stage,
    /// Stable error code (`avro_invalid`, `smtp_permanent`…).
    pub error_code: String,
    /// Human-readable error.
    pub error: String,
}

/// Writes dead letters, retrying until the broker acknowledges.
#[derive(Clone)]
pub struct DlqWriter {
    producer: FutureProducer,
    topic: Arc<str>,
    metrics: IngestMetrics,
}

impl DlqWriter {
    /// A writer to `topic` with an existing producer.
    pub fn new(producer: FutureProducer, topic: &str, metrics: IngestMetrics) -> Self {
        DlqWriter {
            producer,
            topic: topic.into(),
            metrics,
        }
    }

    /// Writes `dl`; returns only once the broker acknowledged it. Failures are logged and
    /// retried with exponential backoff (100 ms … 30 s).
    pub async fn write(&self, dl: &DeadLetter) {
        let partition = dl.partition.to_string();
        let offset = dl.offset.to_string();
        let mut delay = Duration::from_millis(100);
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "x-dlq-topic",
                    value: Some(dl.topic.as_bytes()),
                })
                .insert(Header {
                    key: "x-dlq-partition",
                    value: Some(partition.as_bytes()),
                })
                .insert(Header {
                    key: "x-dlq-offset",
                    value: Some(offset.as_bytes()),
                })
                .insert(Header {
                    key: "x-dlq-stage",
                    value: Some(dl.stage.as_str().as_bytes()),
                })
                .insert(Header {
                    key: "x-dlq-error-code",
                    value: Some(dl.error_code.as_bytes()),
                })
                .insert(Header {
                    key: "x-dlq-error",
                    value: Some(dl.error.as_bytes()),
                });
            let mut record = FutureRecord::to(&self.topic)
                .payload(&dl.value[..])
                .headers(headers);
            if let Some(k) = &dl.key {
                record = record.key(&k[..]);
            }
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    self.metrics.dlq_written(dl);
                    return;
                }
                Err((e, _)) => {
                    tracing::warn!(
                        topic = %dl.topic, partition = dl.partition, offset = dl.offset,
                        stage = dl.stage.as_str(), error = %e, retry_in = ?delay,
                        "dead-letter write failed; the partition will not advance until it succeeds"
                    );
                    self.metrics.dlq_write_failed.inc();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
