//! Ingest on the rig's real broker: exactly-once hand-out in a clean run with commits at the end
//! offsets, poison records dead-lettered with their headers, back-pressure at the in-flight
//! bound, and a retryable decode error that pauses the partition instead of skipping the record.

#[path = "rig/registry_stub.rs"]
mod registry_stub;
mod rig;

use mailgate_notify::config::Config;
use mailgate_notify::event::registry::RegistryClient;
use mailgate_notify::event::{Decoder, Event, SchemaStore};
use mailgate_notify::ingest::{self, Ack, Decoded, Downstream, Routes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records what it got; acknowledges at once, or holds the acks until told.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(String, i32, i64, String)>>,
    held: Mutex<Vec<Ack>>,
    hold: Mutex<bool>,
}

impl Recorder {
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
    fn release(&self) {
        *self.hold.lock().unwrap() = false;
        for ack in self.held.lock().unwrap().drain(..) {
            ack.done();
        }
    }
}

impl Downstream for Recorder {
    fn handle(&self, r: Decoded, ack: Ack) {
        self.got.lock().unwrap().push((
            r.topic.to_string(),
            r.partition,
            r.offset,
            r.event.event_id().to_string(),
        ));
        if *self.hold.lock().unwrap() {
            self.held.lock().unwrap().push(ack);
        } else {
            ack.done();
        }
    }
}

struct Setup {
    broker: rig::Broker,
    config: Config,
}

async fn setup(partitions: i32, extra_kafka: &str) -> Setup {
    let broker = rig::Broker::start();
    let u = rig::unique();
    let rest = r#"
        [application]
        enabled = false
        [bounce]
        enabled = false
        "#;
    let toml = rig::service_toml(&broker.brokers(), &u, "ingest-test", extra_kafka, rest);
    let config = Config::from_toml(&toml, Path::new("."), &mailgate_notify::config::ProcessEnv)
        .expect("config");
    let t = &config.kafka.topics;
    for topic in [&t.application, &t.bounces, &t.scan_verdicts] {
        broker.create_topic(topic, partitions, false).await;
    }
    broker.create_topic(&t.dead_letter, 1, false).await;
    Setup { broker, config }
}

fn verdict_line(i: usize) -> String {
    let json = std::fs::read_to_string(rig::root().join("tests/fixtures/events/scan_verdict.json"))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["event_id"] = format!("ev-{i}").into();
    v["message_id"] = format!("msg-{i}").into();
    v.to_string()
}

async fn produce_verdicts(s: &Setup, n: usize, format: mailgate_notify::produce::OutputFormat) {
    let lines: String = (0..n).map(|i| verdict_line(i) + "\n").collect();
    let opts = mailgate_notify::produce::ProduceOptions {
        brokers: s.broker.brokers(),
        topic: s.config.kafka.topics.scan_verdicts.clone(),
        format,
        kind: None,
        registry_url: None,
        librdkafka: Default::default(),
    };
    let report = mailgate_notify::produce::produce(&opts, std::io::Cursor::new(lines))
        .await
        .unwrap();
    assert_eq!(report.acknowledged, n);
}

fn decoder() -> Arc<Decoder> {
    Arc::new(Decoder::new(Arc::new(SchemaStore::builtin()), None))
}

fn committed(s: &Setup, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let c: BaseConsumer = s
        .broker
        .client_config()
        .set("group.id", &s.config.kafka.group_id)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .filter(|o| *o >= 0)
                .map(|o| (e.partition(), o))
        })
        .collect()
}

fn end_offsets(s: &Setup, topic: &str, _partitions: i32) -> HashMap<i32, i64> {
    s.broker.end_offsets(topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_over_four_partitions_are_handed_out_exactly_once() {
    let s = setup(4, "").await;
    produce_verdicts(&s, 10_000, mailgate_notify::produce::OutputFormat::Avro).await;
    let rec = Arc::new(Recorder::default());
    let registry = prometheus::Registry::new();
    let mut ing = ingest::start(&s.config, Routes::all(rec.clone()), decoder(), &registry).unwrap();
    rig::wait_until(Duration::from_secs(120), || {
        (rec.count() >= 10_000).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("only {} of 10000 handed out", rec.count()));
    ing.shutdown();
    ing.wait().await;

    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 10_000, "no duplicates in a clean run");
    let mut ids: Vec<_> = got.iter().map(|g| g.3.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000);
    let topic = &s.config.kafka.topics.scan_verdicts;
    let parts: std::collections::BTreeSet<i32> = got.iter().map(|g| g.1).collect();
    assert_eq!(parts.len(), 4, "spread over the four partitions");
    assert_eq!(
        committed(&s, topic, 4),
        end_offsets(&s, topic, 4),
        "committed == end offsets"
    );
    let text = mailgate_notify::telemetry::encode_text(&registry);
    assert_eq!(
        mailgate_notify::telemetry::sample(
            &text,
            "mailgate_notify_events_consumed_total{topic=\"scan_verdict\"}"
        ),
        Some(10_000.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_with_headers_and_good_ones_processed() {
    let s = setup(2, "").await;
    let topic = s.config.kafka.topics.scan_verdicts.clone();
    let store = SchemaStore::builtin();
    let good_json = verdict_line(1);
    let good = mailgate_notify::produce::parse_event(None, &good_json).unwrap();
    let avro = mailgate_notify::event::encode::encode_single_object(&store, &good).unwrap();
    let mut missing: serde_json::Value = serde_json::from_str(&good_json).unwrap();
    missing.as_object_mut().unwrap().remove("sender");
    let mut unknown_fp = avro.clone();
    unknown_fp[2] ^= 0xFF;
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("unknown_framing", vec![0x17, 0x42, 0x99, 0x00, 0x13]),
        ("avro_invalid", avro[..avro.len() / 2].to_vec()),
        ("field_invalid", missing.to_string().into_bytes()),
        ("unknown_schema", unknown_fp),
    ];
    let producer =
        mailgate_notify::produce::producer(&s.broker.brokers(), &Default::default()).unwrap();
    let mut expected_good = 0;
    for (i, (_, bytes)) in poison.iter().enumerate() {
        for j in 0..3 {
            let line = verdict_line(100 + i * 10 + j);
            producer
                .send(
                    FutureRecord::to(&topic).key("k").payload(line.as_bytes()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            expected_good += 1;
        }
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&bytes[..]),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let rec = Arc::new(Recorder::default());
    let registry = prometheus::Registry::new();
    let mut ing = ingest::start(&s.config, Routes::all(rec.clone()), decoder(), &registry).unwrap();
    let dlq_topic = s.config.kafka.topics.dead_letter.clone();
    let dead = rig::wait_until(Duration::from_secs(60), || {
        let d = s.broker.read_to_end(&dlq_topic);
        (d.len() >= poison.len() && rec.count() >= expected_good).then_some(d)
    })
    .await
    .expect("all poison dead-lettered and all good records processed");
    ing.shutdown();
    ing.wait().await;
    assert_eq!(rec.count(), expected_good);
    assert_eq!(dead.len(), poison.len());
    let records = s.broker.read_to_end(&topic);
    for (code, bytes) in &poison {
        let d = dead
            .iter()
            .find(|d| d.header("x-dlq-error-code") == Some(code))
            .unwrap_or_else(|| panic!("no dead letter with code {code}"));
        assert_eq!(&d.payload, bytes, "original value kept");
        assert_eq!(d.key.as_deref(), Some(&b"k"[..]), "original key kept");
        assert_eq!(d.header("x-dlq-topic"), Some(topic.as_str()));
        assert_eq!(d.header("x-dlq-stage"), Some("decode"));
        assert!(!d.header("x-dlq-error").unwrap_or("").is_empty());
        let src = records.iter().find(|r| &r.payload == bytes).unwrap();
        assert_eq!(
            d.header("x-dlq-partition"),
            Some(src.partition.to_string().as_str())
        );
        assert_eq!(
            d.header("x-dlq-offset"),
            Some(src.offset.to_string().as_str())
        );
    }
    // Every record, good or poison, is committed.
    assert_eq!(committed(&s, &topic, 2), end_offsets(&s, &topic, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_downstream_holds_in_flight_at_the_bound_and_drains_after() {
    let s = setup(
        4,
        "max_in_flight_per_partition = 40\n        max_in_flight_total = 100",
    )
    .await;
    produce_verdicts(&s, 2_000, mailgate_notify::produce::OutputFormat::Json).await;
    let rec = Arc::new(Recorder::default());
    *rec.hold.lock().unwrap() = true;
    let registry = prometheus::Registry::new();
    let mut ing = ingest::start(&s.config, Routes::all(rec.clone()), decoder(), &registry).unwrap();
    rig::wait_until(Duration::from_secs(60), || {
        (rec.held.lock().unwrap().len() >= 100).then_some(())
    })
    .await
    .expect("in-flight reaches the total bound");
    // Let the consumer keep polling for a while: nothing more may be handed out.
    for _ in 0..20 {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ing.in_flight(), 100);
    }
    assert_eq!(rec.count(), 100, "nothing beyond the bound was handed out");
    let st = ing.status();
    assert_eq!(
        st.max_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        100
    );
    let assigned = st.assigned.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(assigned, 12, "three topics of four partitions");
    assert_eq!(
        st.paused.load(std::sync::atomic::Ordering::SeqCst),
        assigned,
        "all partitions paused"
    );
    rec.release();
    rig::wait_until(Duration::from_secs(60), || {
        (rec.count() >= 2_000).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("drained only {}", rec.count()));
    ing.shutdown();
    ing.wait().await;
    assert_eq!(rec.count(), 2_000);
    let topic = &s.config.kafka.topics.scan_verdicts;
    assert_eq!(committed(&s, topic, 4), end_offsets(&s, topic, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_pauses_the_partition_and_retries_the_same_record() {
    let s = setup(1, "").await;
    let registry_stub = registry_stub::RegistryStub::start().await;
    let topic = s.config.kafka.topics.scan_verdicts.clone();
    // Publish one Confluent-framed record (registering its schema), then a JSON one behind it.
    let opts = mailgate_notify::produce::ProduceOptions {
        brokers: s.broker.brokers(),
        topic: topic.clone(),
        format: mailgate_notify::produce::OutputFormat::Confluent,
        kind: None,
        registry_url: Some(registry_stub.url.clone()),
        librdkafka: Default::default(),
    };
    *registry_stub.unavailable.lock().unwrap() = true;
    let r = mailgate_notify::produce::produce(&opts, std::io::Cursor::new(verdict_line(1)))
        .await
        .unwrap();
    assert_eq!(r.acknowledged, 1);
    produce_verdicts(&s, 1, mailgate_notify::produce::OutputFormat::Json).await;

    let client = Arc::new(RegistryClient::new(&registry_stub.url, Duration::from_secs(2)).unwrap());
    let dec = Arc::new(Decoder::new(Arc::new(SchemaStore::builtin()), Some(client)));
    let rec = Arc::new(Recorder::default());
    let registry = prometheus::Registry::new();
    let mut ing = ingest::start(&s.config, Routes::all(rec.clone()), dec, &registry).unwrap();
    // Retried at least twice while the registry is down; nothing handed out, nothing skipped.
    rig::wait_until(Duration::from_secs(60), || {
        (*registry_stub.fetches.lock().unwrap() >= 3).then_some(())
    })
    .await
    .expect("retries");
    assert_eq!(
        rec.count(),
        0,
        "the record behind the failing one waits its turn"
    );
    assert!(
        s.broker
            .read_to_end(&s.config.kafka.topics.dead_letter)
            .is_empty(),
        "never dead-lettered"
    );
    *registry_stub.unavailable.lock().unwrap() = false;
    rig::wait_until(Duration::from_secs(60), || (rec.count() >= 2).then_some(()))
        .await
        .expect("both processed once the registry is back");
    ing.shutdown();
    ing.wait().await;
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|g| g.2).collect::<Vec<_>>(),
        vec![0, 1],
        "in order, once each"
    );
    let _ = Event::kind; // keep the import meaningful for readers: records carry decoded events
}
