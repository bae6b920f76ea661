//! The three fixture events published in all three framings through `produce`'s code path to a
//! real broker (the rig's Tansu), read back and decoded equal to the fixtures.

#[path = "rig/registry_stub.rs"]
mod registry_stub;
mod rig;

use mailgate_notify::event::decode::decode_json;
use mailgate_notify::event::registry::RegistryClient;
use mailgate_notify::event::{Decoder, EventKind, SchemaStore};
use mailgate_notify::produce::{produce, OutputFormat, ProduceOptions};
use std::sync::Arc;
use std::time::Duration;

fn fixture(kind: EventKind) -> String {
    let name = match kind {
        EventKind::Application => "application_event",
        EventKind::Bounce => "bounce_event",
        EventKind::ScanVerdict => "scan_verdict",
    };
    std::fs::read_to_string(rig::root().join(format!("tests/fixtures/events/{name}.json")))
        .expect("fixture")
}

/// One line of JSON, as `produce` reads it.
fn one_line(json: &str) -> String {
    serde_json::to_string(&serde_json::from_str::<serde_json::Value>(json).expect("json"))
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_published_in_every_framing_read_back_equal() {
    let broker = rig::Broker::start();
    let registry = registry_stub::RegistryStub::start().await;
    let client =
        Arc::new(RegistryClient::new(&registry.url, Duration::from_secs(5)).expect("client"));
    let decoder = Decoder::new(Arc::new(SchemaStore::builtin()), Some(client));

    for format in [
        OutputFormat::Json,
        OutputFormat::Avro,
        OutputFormat::Confluent,
    ] {
        for kind in EventKind::ALL {
            let topic = format!("{}-{:?}-{}", kind.as_str(), format, rig::unique()).to_lowercase();
            broker.create_topic(&topic, 2, false).await;
            let json = fixture(kind);
            let expected = decode_json(kind, json.as_bytes()).expect("fixture decodes");
            let opts = ProduceOptions {
                brokers: broker.brokers(),
                topic: topic.clone(),
                format,
                kind: None, // inferred from the fields, as the CLI does
                registry_url: Some(registry.url.clone()),
                librdkafka: Default::default(),
            };
            let report = produce(&opts, std::io::Cursor::new(one_line(&json)))
                .await
                .expect("produce");
            assert_eq!(report.acknowledged, 1, "{format:?} {kind:?}: {report:?}");

            let records = broker.read_to_end(&topic);
            assert_eq!(records.len(), 1, "{format:?} {kind:?}");
            let r = &records[0];
            assert_eq!(
                r.key.as_deref(),
                Some(expected.key().as_bytes()),
                "contract key"
            );
            let first = r.payload[0];
            match format {
                OutputFormat::Json => assert_eq!(first, b'{'),
                OutputFormat::Avro => assert_eq!(&r.payload[..2], &[0xC3, 0x01]),
                OutputFormat::Confluent => assert_eq!(first, 0x00),
            }
            let decoded = decoder.decode(kind, &r.payload).await.expect("decodes");
            assert_eq!(decoded, expected, "{format:?} {kind:?}");
        }
    }
    // Confluent schemas are fetched once per id, then served from the cache.
    assert_eq!(*registry.fetches.lock().unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_is_retryable_and_unknown_id_is_permanent() {
    let registry = registry_stub::RegistryStub::start().await;
    let client =
        Arc::new(RegistryClient::new(&registry.url, Duration::from_secs(5)).expect("client"));
    let decoder = Decoder::new(Arc::new(SchemaStore::builtin()), Some(client));
    let record = [0u8, 0, 0, 0, 42, 2, b'a'];
    let err = decoder
        .decode(EventKind::Bounce, &record)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "unknown_schema");
    assert!(!err.is_retryable());
    *registry.unavailable.lock().unwrap() = true;
    let err = decoder
        .decode(EventKind::Bounce, &record)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "registry_unavailable");
    assert!(err.is_retryable());
    // A registry that is not there at all is an outage too.
    let dead = format!("http://127.0.0.1:{}", rig::free_port());
    let client = Arc::new(RegistryClient::new(&dead, Duration::from_secs(2)).expect("client"));
    let decoder = Decoder::new(Arc::new(SchemaStore::builtin()), Some(client));
    let err = decoder
        .decode(EventKind::Bounce, &record)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "registry_unavailable");
}
