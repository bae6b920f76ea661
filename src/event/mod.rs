//! The event contract (DESIGN §2): the domain model of the three events and their decoding from
//! the three framings (Confluent wire format, Avro single-object, JSON), plus our own encoder.
//! Imports nothing else of this crate.

pub mod avro_direct;
pub mod decode;
pub mod encode;
pub mod model;
pub mod registry;
pub mod schema;
pub mod time;

pub use decode::{DecodeError, Decoder, Framing};
pub use model::*;
pub use schema::SchemaStore;
