//! Shared by the decode targets: one decoder over the built-in schemas with a registry client
//! whose cache is primed with them (ids 1, 2, 3), and the round-trip check every target applies
//! to what decodes.
#![allow(dead_code)]

use mailgate_notify::event::encode;
use mailgate_notify::event::registry::RegistryClient;
use mailgate_notify::event::schema;
use mailgate_notify::event::{Decoder, Event, EventKind, SchemaStore};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The Confluent schema id of each kind's reader schema in the primed registry cache.
pub fn confluent_id(kind: EventKind) -> u32 {
    match kind {
        EventKind::Application => 1,
        EventKind::Bounce => 2,
        EventKind::ScanVerdict => 3,
    }
}

/// The kind a fuzz input's selector byte stands for.
pub fn kind_of(selector: u8) -> EventKind {
    EventKind::ALL[usize::from(selector) % EventKind::ALL.len()]
}

/// The decoder of the service, built once (building it sets apache-avro's allocation cap).
pub fn decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| {
        let store = SchemaStore::builtin();
        // The URL is never contacted: every id the targets use is primed, and the targets only
        // call `decode_cached`, which does no I/O.
        let registry = RegistryClient::new("http://127.0.0.1:9", Duration::from_millis(1))
            .unwrap_or_else(|e| panic!("registry client: {e}"));
        for kind in EventKind::ALL {
            let text = schema::reader_schema_text(kind);
            let ws =
                schema::WriterSchema::parse(text, "fuzz").unwrap_or_else(|e| panic!("schema: {e}"));
            registry.prime(confluent_id(kind), ws);
        }
        Decoder::new(Arc::new(store), Some(Arc::new(registry)))
    })
}

/// What decoded must survive our own encoders: JSON, single-object and Confluent framings of
/// the event decode back to the same event (the `produce` tool and the fixtures rely on it).
pub fn round_trips(kind: EventKind, event: &Event) {
    assert_eq!(event.kind(), kind, "decoded as another kind");
    let d = decoder();
    let json = encode::encode_json(event).unwrap_or_else(|e| panic!("encode_json: {e}"));
    let back = d
        .decode_cached(kind, &json)
        .unwrap_or_else(|e| panic!("JSON of a decoded event does not decode: {e}"));
    assert_eq!(&back, event, "JSON round trip changed the event");
    let so = encode::encode_single_object(d.store(), event)
        .unwrap_or_else(|e| panic!("encode_single_object: {e}"));
    let back = d
        .decode_cached(kind, &so)
        .unwrap_or_else(|e| panic!("single-object of a decoded event does not decode: {e}"));
    assert_eq!(&back, event, "single-object round trip changed the event");
    let cf = encode::encode_confluent(d.store(), event, confluent_id(kind))
        .unwrap_or_else(|e| panic!("encode_confluent: {e}"));
    let back = d
        .decode_cached(kind, &cf)
        .unwrap_or_else(|e| panic!("Confluent of a decoded event does not decode: {e}"));
    assert_eq!(&back, event, "Confluent round trip changed the event");
}
