//! The project's own encoder of the three framings: used by `produce`, by the fixture generator
//! and by tests. Avro values are built through serde and resolved against the reader schema, so
//! what we write is exactly what our schemas say.

use super::decode::{CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC};
use super::model::Event;
use super::schema::SchemaStore;
use apache_avro::types::Value;
use apache_avro::Schema;

/// Why an event could not be encoded (a bug or an out-of-range value, never bad input on the wire).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// serde → Avro value or resolution against the schema failed.
    #[error("Avro encoding: {0}")]
    Avro(String),
    /// JSON serialization failed.
    #[error("JSON encoding: {0}")]
    Json(String),
}

/// The event as an Avro value of `schema`.
pub fn to_avro_value(event: &Event, schema: &Schema) -> Result<Value, EncodeError> {
    let value = match event {
        Event::Application(e) => apache_avro::to_value(e),
        Event::Bounce(e) => apache_avro::to_value(e),
        Event::ScanVerdict(e) => apache_avro::to_value(e),
    }
    .map_err(|e| EncodeError::Avro(e.to_string()))?;
    value
        .resolve(schema)
        .map_err(|e| EncodeError::Avro(e.to_string()))
}

/// The bare Avro datum of the event, written with our reader schema of its kind.
pub fn encode_avro_datum(store: &SchemaStore, event: &Event) -> Result<Vec<u8>, EncodeError> {
    let schema = &store.reader(event.kind()).schema;
    let value = to_avro_value(event, schema)?;
    apache_avro::to_avro_datum(schema, value).map_err(|e| EncodeError::Avro(e.to_string()))
}

/// Avro single-object encoding: `C3 01`, the schema's fingerprint, the datum.
pub fn encode_single_object(store: &SchemaStore, event: &Event) -> Result<Vec<u8>, EncodeError> {
    let reader = store.reader(event.kind());
    let datum = encode_avro_datum(store, event)?;
    let mut out = Vec::with_capacity(10 + datum.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&reader.fingerprint());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// Confluent wire format: `00`, the big-endian registry id, the datum.
pub fn encode_confluent(
    store: &SchemaStore,
    event: &Event,
    schema_id: u32,
) -> Result<Vec<u8>, EncodeError> {
    let datum = encode_avro_datum(store, event)?;
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// JSON with the contract's field names (timestamps as epoch milliseconds).
pub fn encode_json(event: &Event) -> Result<Vec<u8>, EncodeError> {
    match event {
        Event::Application(e) => serde_json::to_vec(e),
        Event::Bounce(e) => serde_json::to_vec(e),
        Event::ScanVerdict(e) => serde_json::to_vec(e),
    }
    .map_err(|e| EncodeError::Json(e.to_string()))
}
