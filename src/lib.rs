//! # mailgate-notify
//!
//! The notification service of a secure mail gateway: it consumes the gateway's events from
//! Kafka, decides who must be told what and when, renders the mail from templates and hands it
//! to an SMTP relay. See `DESIGN.md` in the shared folder for the architecture and the contract.
//!
//! ## Layout
//! - [`event`]: the event contract — domain types of the three events (application errors,
//!   bounces, scan verdicts) and one decoder for the three framings (Confluent wire format,
//!   Avro single-object, JSON), plus our own encoder. Imports nothing else of ours.
//! - [`config`]: the typed TOML configuration, its defaults and its validation, with errors
//!   that name the culprit's path; secrets from the environment or files. Imports only `event`.
//! - [`telemetry`]: the metrics registry and the helpers each module uses to declare its
//!   metrics (bounded labels, pre-created at zero).
//! - [`render`]: the templates (Handlebars, strict, compiled at start-up; KSMG `%MACROS%`;
//!   built-in defaults in en, ru, de, overridable per template from `[templates] dir`), the
//!   variables of each notification kind, sanitizing of event text, and the MIME message with
//!   its deterministic ids; never fails (fallback notification). Also the `render` preview.
//! - [`produce`]: the `produce` tool — JSON events in, framed records published to Kafka with
//!   the contract's key; also what the integration tests and fixture generator use.
//!
//! `main.rs` is the CLI (clap): `run`, `demo`, `check-config`, `render`, `produce`, `encode`.
//! The pipeline modules of DESIGN §5 (`ingest`, `deliver`, `render`, `aggregate`, `bounce`,
//! `rules`, `state`, `telemetry`, `app`) land with their issues.

pub mod config;
pub mod event;
pub mod produce;
pub mod render;
pub mod telemetry;
