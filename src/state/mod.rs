//! The changelog of the application-notification state (DESIGN §4): a compacted topic keyed by
//! cluster, each record written to the same partition number as its source record and carrying
//! the source offset, so that the instance that takes a partition over restores its clusters
//! before it consumes and skips source records already reflected.
//!
//! Restore reads a partition from its beginning up to a *fence*: a record with a fresh nonce
//! that the restoring instance writes first. This does not trust the broker's high watermark
//! (the test broker, Tansu 0.6, advances it per batch, not per record) and it cannot stop short
//! of anything acknowledged before the restore began.

use crate::config::KafkaConfig;
use crate::ingest::consumer::{client_config, producer_config};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Key of the fence records (compaction keeps one per partition).
pub const FENCE_KEY: &str = "__mailgate_notify_fence__";
/// Header carrying the source offset of the state change.
pub const SOURCE_OFFSET_HEADER: &str = "x-source-offset";

/// What can go wrong with the changelog.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state topic exists with a different partition count than the source topic.
    #[error("state topic {topic} has {actual} partitions but source topic {source_topic} has {expected}; they must match")]
    PartitionMismatch {
        /// State topic.
        topic: String,
        /// Source topic.
        source_topic: String,
        /// Source partition count.
        expected: usize,
        /// State partition count.
        actual: usize,
    },
    /// Broker error (retryable).
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Restore did not see its fence in time (retryable).
    #[error("restore of partition {0} timed out")]
    RestoreTimeout(i32),
}

impl StateError {
    /// Whether trying again can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StateError::PartitionMismatch { .. })
    }

    /// Stable code.
    pub fn error_code(&self) -> &'static str {
        match self {
            StateError::PartitionMismatch { .. } => "partition_mismatch",
            StateError::Kafka(_) => "kafka",
            StateError::RestoreTimeout(_) => "restore_timeout",
        }
    }
}

/// One restored cluster state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The serialized state as last written.
    pub value: Vec<u8>,
    /// Offset of the source record whose change it reflects.
    pub source_offset: i64,
}

/// One changelog record, as [`Changelog::restore_each`] streams them.
#[derive(Debug)]
pub enum Entry {
    /// The cluster's state as written, with the source offset it reflects.
    Put {
        /// Cluster id.
        key: String,
        /// The serialized state.
        value: Vec<u8>,
        /// Offset of the source record whose change it reflects.
        source_offset: i64,
    },
    /// A tombstone: the cluster is forgotten.
    Forget(String),
}

/// Writer and restorer of the changelog.
#[derive(Clone)]
pub struct Changelog {
    producer: FutureProducer,
    topic: String,
    kafka: KafkaConfig,
}

impl Changelog {
    /// A changelog on `kafka.topics.state`.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, StateError> {
        let producer: FutureProducer = producer_config(kafka)
            .create()
            .map_err(|e| StateError::Kafka(format!("changelog producer: {e}")))?;
        Ok(Changelog {
            producer,
            topic: kafka.topics.state.clone(),
            kafka: kafka.clone(),
        })
    }

    /// Creates the compacted state topic with the source topic's partition count if it is
    /// missing; refuses to run when it exists with a different count.
    pub async fn ensure_topic(&self) -> Result<(), StateError> {
        let source = &self.kafka.topics.application;
        let consumer: BaseConsumer = client_config(&self.kafka)
            .create()
            .map_err(|e| StateError::Kafka(e.to_string()))?;
        let count = |topic: &str| -> Result<usize, StateError> {
            let md = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| StateError::Kafka(format!("metadata of {topic}: {e}")))?;
            Ok(md
                .topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len())
                .unwrap_or(0))
        };
        let expected = count(source)?;
        if expected == 0 {
            return Err(StateError::Kafka(format!(
                "source topic {source} does not exist"
            )));
        }
        let actual = count(&self.topic)?;
        if actual == expected {
            return Ok(());
        }
        if actual != 0 {
            return Err(StateError::PartitionMismatch {
                topic: self.topic.clone(),
                source_topic: source.clone(),
                expected,
                actual,
            });
        }
        let admin: AdminClient<DefaultClientContext> = client_config(&self.kafka)
            .create()
            .map_err(|e| StateError::Kafka(e.to_string()))?;
        let topic = NewTopic::new(&self.topic, expected as i32, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let res = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| StateError::Kafka(format!("create {}: {e}", self.topic)))?;
        for r in res {
            if let Err((t, e)) = r {
                // Another instance may have created it meanwhile.
                if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(StateError::Kafka(format!("create {t}: {e}")));
                }
            }
        }
        tracing::info!(topic = %self.topic, partitions = expected, "created the compacted state topic");
        Ok(())
    }

    /// Writes one cluster's state to `partition`; returns once the broker acknowledged it,
    /// retrying with backoff meanwhile (the source record stays undone until then).
    pub async fn write(&self, partition: i32, key: &str, value: &[u8], source_offset: i64) {
        let offset = source_offset.to_string();
        let mut delay = Duration::from_millis(100);
        loop {
            let headers = OwnedHeaders::new().insert(Header {
                key: SOURCE_OFFSET_HEADER,
                value: Some(offset.as_bytes()),
            });
            let record = FutureRecord::to(&self.topic)
                .partition(partition)
                .key(key)
                .payload(value)
                .headers(headers);
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => return,
                Err((e, _)) => {
                    tracing::warn!(topic = %self.topic, partition, key, error = %e, retry_in = ?delay, "changelog write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Reads the latest state of every cluster in `partition`.
    pub async fn restore(
        &self,
        partition: i32,
        timeout: Duration,
    ) -> Result<HashMap<String, Restored>, StateError> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        let sink = out.clone();
        self.restore_each(partition, timeout, move |entry| {
            let mut map = match sink.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            match entry {
                Entry::Put {
                    key,
                    value,
                    source_offset,
                } => {
                    map.insert(
                        key,
                        Restored {
                            value,
                            source_offset,
                        },
                    );
                }
                Entry::Forget(key) => {
                    map.remove(&key);
                }
            }
        })
        .await?;
        let map = match out.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        Ok(map)
    }

    /// Streams the partition's records up to a fence written now, in offset order, to `sink`
    /// (called on a blocking thread): the caller keeps only what it decoded, never the whole
    /// partition's bytes, which bounds the memory of a restore. A failed restore may have
    /// delivered a prefix; a retry delivers everything again from the start (apply in order,
    /// later entries win).
    pub async fn restore_each(
        &self,
        partition: i32,
        timeout: Duration,
        sink: impl FnMut(Entry) + Send + 'static,
    ) -> Result<(), StateError> {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .partition(partition)
                    .key(FENCE_KEY)
                    .payload(&nonce),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| StateError::Kafka(format!("fence write: {e}")))?;
        let kafka = self.kafka.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            read_until_fence(&kafka, &topic, partition, &nonce, timeout, sink)
        })
        .await
        .map_err(|e| StateError::Kafka(format!("restore task: {e}")))?
    }
}

fn read_until_fence(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    nonce: &str,
    timeout: Duration,
    mut sink: impl FnMut(Entry),
) -> Result<(), StateError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", format!("{}-restore", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| StateError::Kafka(e.to_string()))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .map_err(|e| StateError::Kafka(e.to_string()))?;
    consumer
        .assign(&tpl)
        .map_err(|e| StateError::Kafka(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = msg.map_err(|e| StateError::Kafka(e.to_string()))?;
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        if key == FENCE_KEY {
            if m.payload() == Some(nonce.as_bytes()) {
                return Ok(());
            }
            continue;
        }
        match m.payload() {
            // A tombstone forgets the cluster.
            None => sink(Entry::Forget(key.to_string())),
            Some(v) => {
                let source_offset = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == SOURCE_OFFSET_HEADER))
                    .and_then(|h| h.value)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1);
                sink(Entry::Put {
                    key: key.to_string(),
                    value: v.to_vec(),
                    source_offset,
                });
            }
        }
    }
    Err(StateError::RestoreTimeout(partition))
}
