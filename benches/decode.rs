//! Decoding throughput per event type and framing (issue 9), against same-run baselines:
//! bare apache-avro `from_avro_datum` into a `Value` for the Avro framings, and serde_json into
//! a `serde_json::Value` for JSON. Target: ≥ 500k ScanVerdicts/s per core in single-object Avro
//! (the fixture verdict: 2 rules, 3 detections). `cargo bench --bench decode`.
//!
//! The Avro framings are measured twice in the same run: `single_object`/`confluent` through the
//! default decoder (direct decoder for the built-in schemas) and `*_apache_avro` through a decoder
//! with `with_direct_avro(false)` (the apache-avro resolution path), for the ratio.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailgate_notify::event::registry::RegistryClient;
use mailgate_notify::event::schema;
use mailgate_notify::event::{Decoder, EventKind, SchemaStore};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// The fixtures: JSON and single-object Avro of each event type.
const EVENTS: [(&str, EventKind, &str, &[u8]); 3] = [
    (
        "scan_verdict",
        EventKind::ScanVerdict,
        include_str!("../tests/fixtures/events/scan_verdict.json"),
        include_bytes!("../tests/fixtures/events/scan_verdict.avro"),
    ),
    (
        "bounce",
        EventKind::Bounce,
        include_str!("../tests/fixtures/events/bounce_event.json"),
        include_bytes!("../tests/fixtures/events/bounce_event.avro"),
    ),
    (
        "application",
        EventKind::Application,
        include_str!("../tests/fixtures/events/application_event.json"),
        include_bytes!("../tests/fixtures/events/application_event.avro"),
    ),
];

/// Schema id of each kind in the primed registry cache.
fn schema_id(kind: EventKind) -> u32 {
    match kind {
        EventKind::Application => 1,
        EventKind::Bounce => 2,
        EventKind::ScanVerdict => 3,
    }
}

fn decoder(direct: bool) -> Decoder {
    let store = SchemaStore::builtin();
    // Never contacted: every id used is primed and the bench calls `decode_cached` only.
    let registry =
        RegistryClient::new("http://127.0.0.1:9", Duration::from_millis(1)).expect("client");
    for kind in EventKind::ALL {
        let text = schema::reader_schema_text(kind);
        registry.prime(
            schema_id(kind),
            schema::WriterSchema::parse(text, "bench").expect("schema"),
        );
    }
    Decoder::new(Arc::new(store), Some(Arc::new(registry))).with_direct_avro(direct)
}

fn decode(c: &mut Criterion) {
    let d = decoder(true);
    let slow = decoder(false);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, kind, json, single_object) in EVENTS {
        let datum = &single_object[10..];
        let mut confluent = vec![0u8];
        confluent.extend_from_slice(&schema_id(kind).to_be_bytes());
        confluent.extend_from_slice(datum);
        let framings: [(&str, &[u8]); 3] = [
            ("json", json.as_bytes()),
            ("single_object", single_object),
            ("confluent", &confluent),
        ];
        for (framing, bytes) in framings {
            d.decode_cached(kind, bytes).expect("fixture decodes");
            group.bench_with_input(BenchmarkId::new(name, framing), bytes, |b, bytes| {
                b.iter(|| d.decode_cached(kind, black_box(bytes)))
            });
        }
        for (framing, bytes) in [
            ("single_object_apache_avro", single_object),
            ("confluent_apache_avro", &confluent[..]),
        ] {
            assert_eq!(
                slow.decode_cached(kind, bytes).expect("fixture decodes"),
                d.decode_cached(kind, bytes).expect("fixture decodes"),
            );
            group.bench_with_input(BenchmarkId::new(name, framing), bytes, |b, bytes| {
                b.iter(|| slow.decode_cached(kind, black_box(bytes)))
            });
        }
        // Baselines: the bare libraries, no model, no checks.
        let schema = &d.store().reader(kind).schema;
        group.bench_with_input(
            BenchmarkId::new(name, "baseline_avro_value"),
            datum,
            |b, datum| {
                b.iter(|| {
                    let mut r = black_box(datum);
                    apache_avro::from_avro_datum(schema, &mut r, None)
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new(name, "baseline_json_value"),
            json.as_bytes(),
            |b, bytes| b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes))),
        );
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
