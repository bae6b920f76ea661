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
//! - [`ingest`]: the Kafka consumer over the three input topics — decoding, routing by topic to
//!   the deciders ([`ingest::Downstream`]), at-least-once offset tracking, the dead-letter topic,
//!   back-pressure by pausing partitions, rebalance drains and the draining shutdown.
//! - [`state`]: the compacted changelog of the application-notification state — written per
//!   cluster to the source record's partition with its offset, restored up to a fence on
//!   assignment.
//! - [`telemetry`]: the metrics registry and the helpers each module uses to declare its
//!   metrics (bounded labels, pre-created at zero).
//! - [`rules`]: the rule-notification fan-out — a scan verdict to one notice per (template,
//!   address) over the groups general / sender / recipients / additional, with dedup, the sender
//!   policy (anti-backscatter), the per-message cap and its summary. Pure; imports `event`,
//!   `config`, `telemetry`.
//! - [`bounce`]: the bounce router — class filter, loop protection against bounces of our own
//!   notifications, and the burst limit that folds a storm into one summary. Pure, time passed in.
//! - [`deliver`]: the bounded outbox and our own SMTP connection pool (nodelay sockets under
//!   lettre, STARTTLS/implicit TLS, AUTH), retry with backoff, circuit breaker, per-recipient
//!   completions; or the `file` transport. Imports only `config` and `telemetry`.
//! - [`aggregate`]: application notifications (DESIGN §3.1) — the pure per-cluster error
//!   state, the midnight digest and throttled change decisions, one scheduler for all
//!   clusters' deadlines. Imports only `event`, `config` and `telemetry`.
//! - [`render`]: the templates (Handlebars, strict, compiled at start-up; KSMG `%MACROS%`;
//!   built-in defaults in en, ru, de, overridable per template from `[templates] dir`), the
//!   variables of each notification kind, sanitizing of event text, and the MIME message with
//!   its deterministic ids; never fails (fallback notification). Also the `render` preview.
//! - [`produce`]: the `produce` tool — JSON events in, framed records published to Kafka with
//!   the contract's key; also what the integration tests and fixture generator use.
//!
//! - [`app`]: the wiring — the whole pipeline on one screen: ingest routes records to the three
//!   deciders, their notices are rendered and dispatched to the outbox, completions settle the
//!   source records, dead letters and decider state; plus the HTTP listener and the clock.
//! - [`demo`]: `mailgate-notify demo` (what `make run` runs) — the real wiring against an
//!   in-process broker (rdkafka's MockCluster) and the `file` transport, fed a simulated day of
//!   gateway activity on a scaled clock; ends with a summary counted from metrics and files.
//!
//! `main.rs` is the CLI (clap): `run`, `demo`, `check-config`, `render`, `produce`, `encode`.
//! The pipeline modules of DESIGN §5 (`ingest`, `deliver`, `render`, `aggregate`, `bounce`,
//! `rules`, `state`, `telemetry`, `app`) land with their issues.
pub mod aggregate;
pub mod app;
pub mod bounce;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod event;
pub mod ingest;
pub mod produce;
pub mod render;
pub mod rules;
pub mod state;
pub mod telemetry;
