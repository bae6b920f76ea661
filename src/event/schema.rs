//! The Avro schemas we know: the three reader schemas embedded from `schemas/*.avsc`, plus any
//! writer schemas from the configured extra directory, indexed by their CRC-64-AVRO fingerprint
//! for single-object decoding. Everything is parsed once, at start-up.

use super::model::EventKind;
use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The embedded reader schema text of each event kind.
pub fn reader_schema_text(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Application => include_str!("../../schemas/application_event.avsc"),
        EventKind::Bounce => include_str!("../../schemas/bounce_event.avsc"),
        EventKind::ScanVerdict => include_str!("../../schemas/scan_verdict.avsc"),
    }
}

/// A parsed writer schema with the record name used to check it against the topic's kind.
#[derive(Debug)]
pub struct WriterSchema {
    /// The parsed schema.
    pub schema: Schema,
    /// Unqualified record name (`ScanVerdict`), compared with [`EventKind::record_name`].
    pub record_name: String,
    /// Where it came from, for error messages (`builtin`, a file path, `registry id 7`).
    pub origin: String,
    /// CRC-64-AVRO fingerprint, computed once at parse time.
    fp: [u8; 8],
    /// The kind whose built-in schema this one is exactly, logical types and defaults included
    /// (the fingerprint alone ignores logical types: a `timestamp-micros` writer would match).
    builtin: Option<EventKind>,
}

impl WriterSchema {
    /// Parses a schema text; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self, SchemaLoadError> {
        let origin = origin.into();
        let schema = Schema::parse_str(text).map_err(|e| SchemaLoadError {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        let record_name = match &schema {
            Schema::Record(r) => r.name.name.clone(),
            _ => {
                return Err(SchemaLoadError {
                    origin,
                    detail: "top-level schema is not a record".into(),
                })
            }
        };
        Ok(WriterSchema {
            fp: fingerprint(&schema),
            builtin: exact_builtin(&schema),
            schema,
            record_name,
            origin,
        })
    }

    /// The 8-byte CRC-64-AVRO fingerprint used by single-object encoding.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fp
    }

    /// The event kind whose built-in schema (`schemas/*.avsc`) this schema is exactly, if any:
    /// such data may be read by the direct decoder.
    pub fn builtin_kind(&self) -> Option<EventKind> {
        self.builtin
    }
}

/// The kind whose embedded schema serializes identically to `schema` (attributes such as
/// `logicalType` and `default` included), compared once per parsed schema.
fn exact_builtin(schema: &Schema) -> Option<EventKind> {
    static BUILTIN: std::sync::OnceLock<Vec<(EventKind, serde_json::Value)>> =
        std::sync::OnceLock::new();
    let builtin = BUILTIN.get_or_init(|| {
        EventKind::ALL
            .iter()
            .filter_map(|&k| {
                let s = Schema::parse_str(reader_schema_text(k)).ok()?;
                Some((k, serde_json::to_value(&s).ok()?))
            })
            .collect()
    });
    let json = serde_json::to_value(schema).ok()?;
    builtin.iter().find(|(_, b)| *b == json).map(|(k, _)| *k)
}

/// CRC-64-AVRO (Rabin) fingerprint of a schema's canonical form, as single-object encoding
/// writes it after `C3 01`.
pub fn fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

/// A schema file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("schema {origin}: {detail}")]
pub struct SchemaLoadError {
    /// File path or `builtin:<kind>`.
    pub origin: String,
    /// Parser message.
    pub detail: String,
}

/// Reader schemas by kind and known writer schemas by fingerprint.
#[derive(Debug)]
pub struct SchemaStore {
    readers: HashMap<EventKind, Arc<WriterSchema>>,
    by_fingerprint: HashMap<[u8; 8], Arc<WriterSchema>>,
}

impl SchemaStore {
    /// The embedded schemas only.
    pub fn builtin() -> Self {
        let mut readers = HashMap::new();
        let mut by_fingerprint = HashMap::new();
        for kind in EventKind::ALL {
            // The embedded schemas are part of the build and covered by tests; failing here is
            // a programming error, not bad input.
            let ws = WriterSchema::parse(
                reader_schema_text(kind),
                format!("builtin:{}", kind.as_str()),
            )
            .unwrap_or_else(|e| panic!("embedded schema is invalid: {e}"));
            let ws = Arc::new(ws);
            by_fingerprint.insert(ws.fingerprint(), ws.clone());
            readers.insert(kind, ws);
        }
        SchemaStore {
            readers,
            by_fingerprint,
        }
    }

    /// The embedded schemas plus every `*.avsc` in `dir` (writer schemas of other producer
    /// versions), each indexed by fingerprint.
    pub fn with_extra_dir(dir: &Path) -> Result<Self, SchemaLoadError> {
        let mut store = Self::builtin();
        let entries = std::fs::read_dir(dir).map_err(|e| SchemaLoadError {
            origin: dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| SchemaLoadError {
                origin: path.display().to_string(),
                detail: e.to_string(),
            })?;
            store.add(WriterSchema::parse(&text, path.display().to_string())?);
        }
        Ok(store)
    }

    /// Adds a writer schema (indexed by fingerprint).
    pub fn add(&mut self, ws: WriterSchema) {
        let ws = Arc::new(ws);
        self.by_fingerprint.insert(ws.fingerprint(), ws);
    }

    /// The reader schema of a kind.
    pub fn reader(&self, kind: EventKind) -> &Arc<WriterSchema> {
        // Every kind is inserted by `builtin`, the only constructor.
        &self.readers[&kind]
    }

    /// A known writer schema by single-object fingerprint.
    pub fn by_fingerprint(&self, fp: &[u8; 8]) -> Option<&Arc<WriterSchema>> {
        self.by_fingerprint.get(fp)
    }
}
