//! Timestamps of the event contract: Avro `timestamp-millis`; in JSON an RFC 3339 string or epoch
//! milliseconds. We always serialize epoch milliseconds, because that is what both the Avro
//! encoder (a `long`) and a JSON reader accept without ambiguity.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;
use std::fmt;

/// A point in time of the event contract, in UTC with millisecond precision.
pub type Timestamp = DateTime<Utc>;

struct TsVisitor;

impl Visitor<'_> for TsVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a timestamp: epoch milliseconds or an RFC 3339 string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Utc.timestamp_millis_opt(v)
            .single()
            .ok_or_else(|| E::custom(format!("timestamp {v} ms is out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("timestamp is out of range"))?;
        self.visit_i64(v)
    }

    fn visit_i32<E: de::Error>(self, v: i32) -> Result<Timestamp, E> {
        self.visit_i64(v.into())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        let t = DateTime::parse_from_rfc3339(v)
            .map_err(|e| E::custom(format!("invalid RFC 3339 timestamp {v:?}: {e}")))?;
        // Down to the contract's millisecond precision, and a leap second (`…:60.125Z`, which
        // chrono keeps as a 60th second) to the instant after it, so that an event decodes to
        // the same value from JSON as from its Avro `timestamp-millis` (found by fuzzing).
        self.visit_i64(t.timestamp_millis())
    }
}

/// Serde adapter for a required timestamp field.
pub mod required {
    use super::*;

    /// Serializes as epoch milliseconds.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_millis())
    }

    /// Accepts epoch milliseconds or an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_any(TsVisitor)
    }
}

/// Serde adapter for an optional timestamp field (`null`, absent, or a timestamp).
pub mod optional {
    use super::*;

    /// Serializes `None` as null, else epoch milliseconds.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Timestamp>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null or a timestamp")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(TsVisitor).map(Some)
        }
    }

    /// Accepts null or a timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}
