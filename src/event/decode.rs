//! One decoder for the three framings of DESIGN §2, recognised by the first bytes of a record:
//! Confluent wire format, Avro single-object encoding, JSON. Avro data is read with the writer's
//! schema and resolved against our reader schema, so producers may add optional fields and enum
//! symbols without breaking us.

use super::model::{Event, EventKind};
use super::registry::{RegistryClient, RegistryError};
use super::schema::{SchemaStore, WriterSchema};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Why a record could not be decoded. `error_code()` is the stable label used in metrics and in
/// the dead-letter header `x-dlq-error-code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first bytes match none of the three framings.
    #[error("unknown framing: {0}")]
    UnknownFraming(String),
    /// Fingerprint or registry id of a schema we do not have, or one of the wrong record type.
    #[error("unknown schema: {0}")]
    UnknownSchema(String),
    /// The schema registry could not be reached; the same record must be retried, not skipped.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The Avro datum does not decode with its writer schema, or does not resolve to ours.
    #[error("invalid Avro: {0}")]
    AvroInvalid(String),
    /// Not well-formed JSON.
    #[error("invalid JSON: {0}")]
    JsonInvalid(String),
    /// Well-formed, but a field is missing or has the wrong type or value.
    #[error("invalid field {path}: {detail}")]
    FieldInvalid {
        /// Path of the culprit, e.g. `triggered_rules[0].detections[1].object_size`.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl DecodeError {
    /// Stable snake_case code of the error class.
    pub fn error_code(&self) -> &'static str {
        match self {
            DecodeError::UnknownFraming(_) => "unknown_framing",
            DecodeError::UnknownSchema(_) => "unknown_schema",
            DecodeError::RegistryUnavailable(_) => "registry_unavailable",
            DecodeError::AvroInvalid(_) => "avro_invalid",
            DecodeError::JsonInvalid(_) => "json_invalid",
            DecodeError::FieldInvalid { .. } => "field_invalid",
        }
    }

    /// Whether retrying the same record later can succeed (only a registry outage).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::RegistryUnavailable(_))
    }

    /// Every error code, to pre-create metric labels.
    pub const CODES: [&'static str; 6] = [
        "unknown_framing",
        "unknown_schema",
        "registry_unavailable",
        "avro_invalid",
        "json_invalid",
        "field_invalid",
    ];
}

/// The framing of a record, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `0x00` + 4-byte big-endian schema id.
    Confluent,
    /// `0xC3 0x01` + 8-byte fingerprint.
    SingleObject,
    /// `{`.
    Json,
}

/// Largest single allocation (string, bytes, array) the Avro decoder may make for one value.
pub const MAX_AVRO_ALLOCATION: usize = 16 << 20;

/// Magic byte of the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Marker of Avro single-object encoding.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// Recognises the framing of `bytes` (leading JSON whitespace is tolerated).
pub fn detect_framing(bytes: &[u8]) -> Result<Framing, DecodeError> {
    match bytes {
        [] => Err(DecodeError::UnknownFraming("empty record".into())),
        [CONFLUENT_MAGIC, ..] => Ok(Framing::Confluent),
        [0xC3, 0x01, ..] => Ok(Framing::SingleObject),
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Ok(Framing::Json),
            _ => Err(DecodeError::UnknownFraming(format!(
                "first byte 0x{:02x} is none of 0x00 (Confluent), 0xC3 0x01 (Avro single-object), '{{' (JSON)",
                bytes[0]
            ))),
        },
    }
}

/// Decodes records of the three event kinds.
#[derive(Debug)]
pub struct Decoder {
    store: Arc<SchemaStore>,
    registry: Option<Arc<RegistryClient>>,
    /// Whether built-in writer schemas use the direct decoder (off only to measure or
    /// cross-check the apache-avro path).
    direct: bool,
}

impl Decoder {
    /// A decoder over known schemas and, for Confluent framing, an optional registry.
    pub fn new(store: Arc<SchemaStore>, registry: Option<Arc<RegistryClient>>) -> Self {
        // A hostile length prefix must not make apache-avro allocate its default 512 MiB; no
        // legitimate event comes near this (Kafka's default record limit is 1 MiB). Global and
        // set-once in apache-avro: the first decoder wins, later calls are no-ops.
        apache_avro::max_allocation_bytes(MAX_AVRO_ALLOCATION);
        Decoder {
            store,
            registry,
            direct: true,
        }
    }

    /// With `false`, every Avro record goes through apache-avro's resolution path, even when
    /// its writer schema is a built-in one (benchmarks and the equivalence tests compare both).
    pub fn with_direct_avro(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }

    /// The schema store (reader schemas, known writers).
    pub fn store(&self) -> &Arc<SchemaStore> {
        &self.store
    }

    /// Decodes a record of the given kind; may fetch a Confluent schema from the registry once.
    pub async fn decode(&self, kind: EventKind, bytes: &[u8]) -> Result<Event, DecodeError> {
        if detect_framing(bytes)? == Framing::Confluent {
            let id = confluent_id(bytes)?;
            let registry = self.registry_client(id)?;
            let writer = registry.get(id).await.map_err(registry_error)?;
            return self.decode_avro(kind, &writer, &bytes[5..]);
        }
        self.decode_cached(kind, bytes)
    }

    /// Decodes without I/O: JSON, single-object, and Confluent when the schema id is cached
    /// (otherwise `RegistryUnavailable`, so the caller retries through [`Decoder::decode`]).
    pub fn decode_cached(&self, kind: EventKind, bytes: &[u8]) -> Result<Event, DecodeError> {
        match detect_framing(bytes)? {
            Framing::Json => decode_json(kind, bytes),
            Framing::SingleObject => {
                if bytes.len() < 10 {
                    return Err(DecodeError::AvroInvalid(format!(
                        "single-object header needs 10 bytes, record has {}",
                        bytes.len()
                    )));
                }
                let mut fp = [0u8; 8];
                fp.copy_from_slice(&bytes[2..10]);
                let writer = self.store.by_fingerprint(&fp).ok_or_else(|| {
                    DecodeError::UnknownSchema(format!(
                        "no schema with fingerprint {} (add its .avsc to schemas.extra_dir)",
                        hex(&fp)
                    ))
                })?;
                self.decode_avro(kind, writer, &bytes[10..])
            }
            Framing::Confluent => {
                let id = confluent_id(bytes)?;
                let writer = self.registry_client(id)?.cached(id).ok_or_else(|| {
                    DecodeError::RegistryUnavailable(format!("schema id {id} not yet fetched"))
                })?;
                self.decode_avro(kind, &writer, &bytes[5..])
            }
        }
    }

    fn registry_client(&self, id: u32) -> Result<&Arc<RegistryClient>, DecodeError> {
        self.registry.as_ref().ok_or_else(|| {
            DecodeError::UnknownSchema(format!(
                "Confluent-framed record (schema id {id}) but no schemas.registry_url is configured"
            ))
        })
    }

    fn decode_avro(
        &self,
        kind: EventKind,
        writer: &WriterSchema,
        datum: &[u8],
    ) -> Result<Event, DecodeError> {
        let mut datum = datum;
        let reader = self.store.reader(kind);
        if writer.record_name != reader.record_name {
            return Err(DecodeError::UnknownSchema(format!(
                "{} is a {} schema, this topic carries {}",
                writer.origin, writer.record_name, reader.record_name
            )));
        }
        if self.direct && writer.builtin_kind() == Some(kind) {
            return super::avro_direct::decode(kind, datum);
        }
        let total = datum.len();
        let mut guarded = EofGuard {
            rest: &mut datum,
            hit_eof: false,
        };
        let value =
            apache_avro::from_avro_datum(&writer.schema, &mut guarded, Some(&reader.schema))
                .map_err(|e| DecodeError::AvroInvalid(e.to_string()))?;
        if guarded.hit_eof {
            // apache-avro reads a union index, string or boolean cut off by the end of the
            // buffer as null; a truncated record must not pass as one with fewer fields.
            return Err(DecodeError::AvroInvalid(format!(
                "datum truncated after {total} bytes"
            )));
        }
        if !datum.is_empty() {
            return Err(DecodeError::AvroInvalid(format!(
                "{} trailing bytes after a {}-byte datum",
                datum.len(),
                total - datum.len()
            )));
        }
        match kind {
            EventKind::Application => from_avro_value(&value).map(Event::Application),
            EventKind::Bounce => from_avro_value(&value).map(Event::Bounce),
            EventKind::ScanVerdict => from_avro_value(&value).map(Event::ScanVerdict),
        }
    }
}

/// A reader over the datum that remembers whether anything tried to read past its end.
struct EofGuard<'a, 'b> {
    rest: &'a mut &'b [u8],
    hit_eof: bool,
}

impl std::io::Read for EofGuard<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.hit_eof = true;
            return Ok(0);
        }
        self.rest.read(buf)
    }
}

fn confluent_id(bytes: &[u8]) -> Result<u32, DecodeError> {
    if bytes.len() < 5 {
        return Err(DecodeError::AvroInvalid(format!(
            "Confluent header needs 5 bytes, record has {}",
            bytes.len()
        )));
    }
    Ok(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
}

fn registry_error(e: RegistryError) -> DecodeError {
    match e {
        RegistryError::Unavailable(s) => DecodeError::RegistryUnavailable(s),
        RegistryError::Unknown(s) => DecodeError::UnknownSchema(s),
    }
}

fn from_avro_value<T: DeserializeOwned>(
    value: &apache_avro::types::Value,
) -> Result<T, DecodeError> {
    apache_avro::from_value(value).map_err(|e| {
        // apache-avro's deserializer does not say where it failed. On this (rare) error path,
        // replay the value through JSON to name the field; the fast path stays untouched.
        let located = serde_json::Value::try_from(value.clone())
            .ok()
            .and_then(|json| serde_json::to_vec(&json).ok())
            .and_then(|bytes| json_as::<T>(&bytes).err());
        match located {
            Some(DecodeError::FieldInvalid { path, detail }) => {
                DecodeError::FieldInvalid { path, detail }
            }
            _ => DecodeError::FieldInvalid {
                path: ".".into(),
                detail: e.to_string(),
            },
        }
    })
}

/// Decodes a JSON record of `kind`. Syntax errors are `JsonInvalid`; a missing or mistyped field
/// is `FieldInvalid` naming its path.
pub fn decode_json(kind: EventKind, bytes: &[u8]) -> Result<Event, DecodeError> {
    match kind {
        EventKind::Application => json_as(bytes).map(Event::Application),
        EventKind::Bounce => json_as(bytes).map(Event::Bounce),
        EventKind::ScanVerdict => json_as(bytes).map(Event::ScanVerdict),
    }
}

fn json_as<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => DecodeError::FieldInvalid {
                path,
                detail: inner.to_string(),
            },
            _ => DecodeError::JsonInvalid(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| DecodeError::JsonInvalid(e.to_string()))?;
    Ok(value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::encode;
    use crate::event::model::*;
    use crate::event::schema::{reader_schema_text, WriterSchema};
    use proptest::prelude::*;

    const FIXTURES: [(EventKind, &str, &[u8]); 3] = [
        (
            EventKind::Application,
            include_str!("../../tests/fixtures/events/application_event.json"),
            include_bytes!("../../tests/fixtures/events/application_event.avro"),
        ),
        (
            EventKind::Bounce,
            include_str!("../../tests/fixtures/events/bounce_event.json"),
            include_bytes!("../../tests/fixtures/events/bounce_event.avro"),
        ),
        (
            EventKind::ScanVerdict,
            include_str!("../../tests/fixtures/events/scan_verdict.json"),
            include_bytes!("../../tests/fixtures/events/scan_verdict.avro"),
        ),
    ];

    fn decoder() -> &'static Decoder {
        static D: std::sync::OnceLock<Decoder> = std::sync::OnceLock::new();
        D.get_or_init(|| Decoder::new(Arc::new(SchemaStore::builtin()), None))
    }

    #[test]
    fn json_and_single_object_fixtures_decode_to_equal_values() {
        let d = decoder();
        for (kind, json, avro) in FIXTURES {
            let from_json = d
                .decode_cached(kind, json.as_bytes())
                .expect("json fixture");
            let from_avro = d.decode_cached(kind, avro).expect("avro fixture");
            assert_eq!(from_json, from_avro, "{kind:?}");
            assert_eq!(from_json.kind(), kind);
        }
    }

    #[test]
    fn every_framing_round_trips_through_the_encoder() {
        let d = decoder();
        for (kind, json, _) in FIXTURES {
            let event = d.decode_cached(kind, json.as_bytes()).expect("fixture");
            let j = encode::encode_json(&event).expect("json");
            assert_eq!(d.decode_cached(kind, &j).expect("json back"), event);
            let s = encode::encode_single_object(d.store(), &event).expect("avro");
            assert_eq!(d.decode_cached(kind, &s).expect("avro back"), event);
        }
    }

    #[test]
    fn json_timestamps_accept_rfc3339_and_epoch_millis_alike() {
        let (_, json, _) = FIXTURES[0];
        let d = decoder();
        let a = d
            .decode_cached(EventKind::Application, json.as_bytes())
            .expect("rfc3339");
        let millis = json.replace("\"2026-11-30T21:14:05.250Z\"", "1796073245250");
        let b = d
            .decode_cached(EventKind::Application, millis.as_bytes())
            .expect("millis");
        assert_eq!(a, b);
    }

    #[test]
    fn json_leap_second_and_sub_millisecond_times_decode_as_their_avro_millis() {
        // Found by the decode_json fuzz target: a leap second decoded to a value whose JSON and
        // Avro re-encodings decode to a different instant.
        let (_, json, _) = FIXTURES[0];
        let d = decoder();
        for (text, same_as) in [
            (
                "\"2026-11-30T21:14:60.250Z\"",
                "\"2026-11-30T21:15:00.250Z\"",
            ),
            (
                "\"2026-11-30T21:14:05.250999Z\"",
                "\"2026-11-30T21:14:05.250Z\"",
            ),
        ] {
            let a = d
                .decode_cached(
                    EventKind::Application,
                    json.replace("\"2026-11-30T21:14:05.250Z\"", text)
                        .as_bytes(),
                )
                .expect("decodes");
            let b = d
                .decode_cached(
                    EventKind::Application,
                    json.replace("\"2026-11-30T21:14:05.250Z\"", same_as)
                        .as_bytes(),
                )
                .expect("decodes");
            assert_eq!(a, b, "{text}");
            let avro = encode::encode_single_object(d.store(), &a).expect("avro");
            assert_eq!(
                d.decode_cached(EventKind::Application, &avro)
                    .expect("back"),
                a
            );
        }
    }

    #[test]
    fn unknown_json_enum_symbol_decodes_as_unknown() {
        let (_, json, _) = FIXTURES[0];
        let text = json.replace("\"AV_BASES_OUTDATED\"", "\"QUANTUM_FLUX_DETECTED\"");
        let Event::Application(e) = decoder()
            .decode_cached(EventKind::Application, text.as_bytes())
            .expect("decodes")
        else {
            panic!("wrong kind")
        };
        assert_eq!(e.kind, ErrorKind::Unknown);
    }

    /// A producer one schema version ahead: one more optional field, one more enum symbol.
    fn evolved_schema() -> WriterSchema {
        let mut v: serde_json::Value =
            serde_json::from_str(reader_schema_text(EventKind::ScanVerdict)).expect("schema json");
        let fields = v["fields"].as_array_mut().expect("fields");
        fields.push(serde_json::json!({
            "name": "tenant", "type": ["null", "string"], "default": null
        }));
        let action = fields
            .iter_mut()
            .find(|f| f["name"] == "message_action")
            .expect("message_action");
        let symbols = action["type"]["symbols"].as_array_mut().expect("symbols");
        symbols.insert(0, serde_json::json!("QUARANTINED"));
        WriterSchema::parse(&v.to_string(), "evolved").expect("evolved schema parses")
    }

    #[test]
    fn record_from_a_newer_schema_with_extra_field_and_enum_symbol_decodes() {
        use apache_avro::types::Value;
        let writer = evolved_schema();
        let mut store = SchemaStore::builtin();
        let (_, json, _) = FIXTURES[2];
        let event = decode_json(EventKind::ScanVerdict, json.as_bytes()).expect("fixture");
        let Value::Record(mut fields) =
            encode::to_avro_value(&event, &store.reader(EventKind::ScanVerdict).schema)
                .expect("value")
        else {
            panic!("not a record")
        };
        for (name, value) in fields.iter_mut() {
            if name == "message_action" {
                *value = Value::Enum(0, "QUARANTINED".into());
            }
        }
        fields.push((
            "tenant".into(),
            Value::Union(1, Box::new(Value::String("acme".into()))),
        ));
        let datum =
            apache_avro::to_avro_datum(&writer.schema, Value::Record(fields)).expect("datum");
        let mut record = vec![0xC3, 0x01];
        record.extend_from_slice(&writer.fingerprint());
        record.extend_from_slice(&datum);

        // Unknown fingerprint until the schema is known…
        let d = Decoder::new(Arc::new(SchemaStore::builtin()), None);
        assert_eq!(
            d.decode_cached(EventKind::ScanVerdict, &record)
                .unwrap_err()
                .error_code(),
            "unknown_schema"
        );
        // …then it resolves against our reader schema.
        store.add(writer);
        let d = Decoder::new(Arc::new(store), None);
        let Event::ScanVerdict(v) = d
            .decode_cached(EventKind::ScanVerdict, &record)
            .expect("decodes")
        else {
            panic!("wrong kind")
        };
        assert_eq!(v.message_action, MessageAction::Unknown);
        let Event::ScanVerdict(orig) = event else {
            unreachable!()
        };
        assert_eq!(v.triggered_rules, orig.triggered_rules);
        assert_eq!(v.subject, orig.subject);
    }

    #[test]
    fn schema_of_another_event_type_is_refused_as_unknown_schema() {
        let d = decoder();
        let (_, _, avro) = FIXTURES[0];
        let err = d.decode_cached(EventKind::Bounce, avro).unwrap_err();
        assert_eq!(err.error_code(), "unknown_schema");
    }

    #[test]
    fn errors_carry_their_codes() {
        let d = decoder();
        let k = EventKind::ScanVerdict;
        assert_eq!(
            d.decode_cached(k, b"").unwrap_err().error_code(),
            "unknown_framing"
        );
        assert_eq!(
            d.decode_cached(k, b"hello").unwrap_err().error_code(),
            "unknown_framing"
        );
        assert_eq!(
            d.decode_cached(k, b"{\"a\":").unwrap_err().error_code(),
            "json_invalid"
        );
        assert_eq!(
            d.decode_cached(k, &[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8])
                .unwrap_err()
                .error_code(),
            "unknown_schema"
        );
        let conf = d.decode_cached(k, &[0, 0, 0, 0, 7, 1, 2]).unwrap_err();
        assert_eq!(
            conf.error_code(),
            "unknown_schema",
            "no registry configured"
        );
        assert!(!conf.is_retryable());
        assert!(DecodeError::RegistryUnavailable("x".into()).is_retryable());
    }

    #[test]
    fn missing_required_field_names_its_path() {
        let (_, json, _) = FIXTURES[2];
        let mut v: serde_json::Value = serde_json::from_str(json).expect("json");
        v["triggered_rules"][1]["detections"][0]
            .as_object_mut()
            .expect("object")
            .remove("module");
        let err = decoder()
            .decode_cached(EventKind::ScanVerdict, v.to_string().as_bytes())
            .unwrap_err();
        match err {
            DecodeError::FieldInvalid { path, detail } => {
                assert_eq!(path, "triggered_rules[1].detections[0]");
                assert!(detail.contains("module"), "{detail}");
            }
            other => panic!("expected field_invalid, got {other:?}"),
        }
        v["triggered_rules"][1]["detections"][0]["module"] = "ANTI_VIRUS".into();
        v["size"] = "big".into();
        let err = decoder()
            .decode_cached(EventKind::ScanVerdict, v.to_string().as_bytes())
            .unwrap_err();
        assert!(
            matches!(&err, DecodeError::FieldInvalid { path, .. } if path == "size"),
            "{err:?}"
        );
    }

    #[test]
    fn avro_value_out_of_range_is_field_invalid_with_path() {
        use apache_avro::types::Value;
        let store = SchemaStore::builtin();
        let (_, json, _) = FIXTURES[0];
        let event = decode_json(EventKind::Application, json.as_bytes()).expect("fixture");
        let schema = &store.reader(EventKind::Application).schema;
        let Value::Record(mut fields) = encode::to_avro_value(&event, schema).expect("value")
        else {
            panic!()
        };
        if let Some((_, Value::Record(node))) = fields.iter_mut().find(|(n, _)| n == "node") {
            for (n, v) in node.iter_mut() {
                if n == "port" {
                    *v = Value::Int(70_000);
                }
            }
        }
        let datum = apache_avro::to_avro_datum(schema, Value::Record(fields)).expect("datum");
        let mut record = vec![0xC3, 0x01];
        record.extend_from_slice(&store.reader(EventKind::Application).fingerprint());
        record.extend_from_slice(&datum);
        let err = Decoder::new(Arc::new(store), None)
            .decode_cached(EventKind::Application, &record)
            .unwrap_err();
        assert!(
            matches!(&err, DecodeError::FieldInvalid { path, .. } if path == "node.port"),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_bytes_after_the_datum_are_refused() {
        let (_, _, avro) = FIXTURES[1];
        let mut bytes = avro.to_vec();
        bytes.push(0);
        assert_eq!(
            decoder()
                .decode_cached(EventKind::Bounce, &bytes)
                .unwrap_err()
                .error_code(),
            "avro_invalid"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_give_a_typed_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let d = decoder();
            for kind in EventKind::ALL {
                let _ = d.decode_cached(kind, &bytes);
            }
        }

        #[test]
        fn random_bytes_after_a_known_fingerprint_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let d = decoder();
            for kind in EventKind::ALL {
                let mut bytes = vec![0xC3, 0x01];
                bytes.extend_from_slice(&d.store().reader(kind).fingerprint());
                bytes.extend_from_slice(&tail);
                if let Err(e) = d.decode_cached(kind, &bytes) {
                    prop_assert!(DecodeError::CODES.contains(&e.error_code()));
                }
            }
        }

        #[test]
        fn every_truncation_of_a_valid_record_is_an_error(cut in 0usize..1000, which in 0usize..3) {
            let (kind, json, avro) = FIXTURES[which];
            let d = decoder();
            let a = &avro[..cut % avro.len()];
            prop_assert!(d.decode_cached(kind, a).is_err());
            let json = json.trim_end();
            let j = &json.as_bytes()[..cut % json.len()];
            prop_assert!(d.decode_cached(kind, j).is_err());
        }

        #[test]
        fn single_byte_corruptions_never_panic(pos in 0usize..1000, byte in any::<u8>(), which in 0usize..3) {
            let (kind, _, avro) = FIXTURES[which];
            let mut bytes = avro.to_vec();
            let i = 10 + pos % (bytes.len() - 10);
            bytes[i] = byte;
            let _ = decoder().decode_cached(kind, &bytes);
        }
    }
}
