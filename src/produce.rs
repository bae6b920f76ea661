//! The `produce` tool: reads JSON events, one per line, encodes each in the chosen framing and
//! publishes it with the contract's key (`cluster_id`, `queue_id`, `message_id`). Used by
//! operators to replay or inject events, by the integration tests and by the demo.

use crate::event::encode::{self, EncodeError};
use crate::event::registry::{RegistryClient, RegistryError};
use crate::event::schema::reader_schema_text;
use crate::event::{decode::decode_json, Event, EventKind, SchemaStore};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// Output framing of `produce` and `encode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// JSON with the contract's field names.
    Json,
    /// Avro single-object encoding (`C3 01` + fingerprint).
    Avro,
    /// Confluent wire format (`00` + schema id); needs a schema registry.
    Confluent,
}

/// Why `produce` or `encode` failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Kafka client creation failed.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Registry error when registering the schema.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `--format confluent` without `--registry`.
    #[error("--format confluent needs --registry URL")]
    NoRegistry,
    /// Input could not be read.
    #[error("input: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes events in one framing, registering schemas with the registry when needed.
pub struct Encoder {
    store: Arc<SchemaStore>,
    format: OutputFormat,
    registry: Option<RegistryClient>,
    /// Registry ids by subject, registered once per run.
    ids: HashMap<String, u32>,
}

impl Encoder {
    /// An encoder for `format`; `registry_url` is needed for Confluent framing.
    pub fn new(format: OutputFormat, registry_url: Option<&str>) -> Result<Self, ProduceError> {
        let registry = match (format, registry_url) {
            (OutputFormat::Confluent, None) => return Err(ProduceError::NoRegistry),
            (_, Some(url)) => Some(RegistryClient::new(url, Duration::from_secs(10))?),
            (_, None) => None,
        };
        Ok(Encoder {
            store: Arc::new(SchemaStore::builtin()),
            format,
            registry,
            ids: HashMap::new(),
        })
    }

    /// Encodes one event for `topic` (the Confluent subject is `<topic>-value`).
    pub async fn encode(&mut self, topic: &str, event: &Event) -> Result<Vec<u8>, ProduceError> {
        Ok(match self.format {
            OutputFormat::Json => encode::encode_json(event)?,
            OutputFormat::Avro => encode::encode_single_object(&self.store, event)?,
            OutputFormat::Confluent => {
                let subject = format!("{topic}-value");
                let id = match self.ids.get(&subject) {
                    Some(id) => *id,
                    None => {
                        let registry = self.registry.as_ref().ok_or(ProduceError::NoRegistry)?;
                        let id = registry
                            .register(&subject, reader_schema_text(event.kind()))
                            .await?;
                        self.ids.insert(subject, id);
                        id
                    }
                };
                encode::encode_confluent(&self.store, event, id)?
            }
        })
    }
}

/// Parses one JSON event; the kind is given or inferred from the fields present.
pub fn parse_event(kind: Option<EventKind>, line: &str) -> Result<Event, String> {
    let kind = match kind {
        Some(k) => k,
        None => infer_kind(line)?,
    };
    decode_json(kind, line.as_bytes()).map_err(|e| e.to_string())
}

/// Guesses the event kind of a JSON object from its distinctive fields.
pub fn infer_kind(line: &str) -> Result<EventKind, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let has = |k: &str| v.get(k).is_some();
    if has("triggered_rules") {
        Ok(EventKind::ScanVerdict)
    } else if has("queue_id") && has("recipients") {
        Ok(EventKind::Bounce)
    } else if has("kind") && has("state") {
        Ok(EventKind::Application)
    } else {
        Err(
            "cannot tell the event kind (no triggered_rules, queue_id or kind/state); pass --kind"
                .into(),
        )
    }
}

/// What a `produce` run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    /// Records the broker acknowledged.
    pub acknowledged: usize,
    /// Records the broker refused (with the reason).
    pub failed: Vec<(usize, String)>,
    /// Input lines that were not valid events (1-based line number, reason).
    pub invalid: Vec<(usize, String)>,
}

/// Options of a `produce` run.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// `host:port,…`.
    pub brokers: String,
    /// Destination topic.
    pub topic: String,
    /// Framing.
    pub format: OutputFormat,
    /// Event kind of every line, or inferred per line.
    pub kind: Option<EventKind>,
    /// Schema registry for Confluent framing.
    pub registry_url: Option<String>,
    /// Extra librdkafka producer properties (security).
    pub librdkafka: BTreeMap<String, String>,
}

/// A producer with the settings every tool of ours uses (acks=all, idempotence).
pub fn producer(
    brokers: &str,
    extra: &BTreeMap<String, String>,
) -> Result<FutureProducer, ProduceError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        cfg.set(k, v);
    }
    cfg.create().map_err(|e| ProduceError::Kafka(e.to_string()))
}

/// Reads JSON events from `input`, publishes them and waits for every acknowledgement.
pub async fn produce<R: BufRead>(
    opts: &ProduceOptions,
    input: R,
) -> Result<ProduceReport, ProduceError> {
    let producer = producer(&opts.brokers, &opts.librdkafka)?;
    let mut encoder = Encoder::new(opts.format, opts.registry_url.as_deref())?;
    let mut report = ProduceReport::default();
    let mut pending = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let event = match parse_event(opts.kind, trimmed) {
            Ok(e) => e,
            Err(e) => {
                report.invalid.push((i + 1, e));
                continue;
            }
        };
        let payload = encoder.encode(&opts.topic, &event).await?;
        let key = event.key().to_string();
        let record = FutureRecord::to(&opts.topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            Ok(fut) => pending.push((i + 1, fut)),
            Err((e, _)) => report.failed.push((i + 1, e.to_string())),
        }
        // Bound the number of un-acknowledged sends so a huge file does not fill memory.
        if pending.len() >= 10_000 {
            drain(&mut pending, &mut report).await;
        }
    }
    drain(&mut pending, &mut report).await;
    // Flush failures are already reported per record by their delivery futures.
    let _ = producer.flush(Duration::from_secs(30));
    Ok(report)
}

type Pending = Vec<(usize, rdkafka::producer::DeliveryFuture)>;

async fn drain(pending: &mut Pending, report: &mut ProduceReport) {
    for (line, fut) in pending.drain(..) {
        match fut.await {
            Ok(Ok(_)) => report.acknowledged += 1,
            Ok(Err((e, _))) => report.failed.push((line, e.to_string())),
            Err(_) => report.failed.push((line, "delivery cancelled".into())),
        }
    }
}
