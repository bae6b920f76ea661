//! Typed configuration (TOML). Every duration, time zone and address is parsed into a real type
//! at load; cross-field rules are checked by [`Config::validate`], which reports every problem
//! with the path of the culprit (`application.default_timezone: unknown time zone "Mars/Base"`).
//! Secrets are never read from the TOML: they come from environment variables or files.
//! Imports nothing else of this crate but the event enums.

pub mod types;

use crate::event::{BounceClass, DetectionModule};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use types::{address_key, bare_address, Mailbox, Secret};

/// Environment variable holding the SMTP password (else `smtp.password_file`).
pub const ENV_SMTP_PASSWORD: &str = "MAILGATE_SMTP_PASSWORD";
/// Environment variable holding the Kafka SASL password (else `kafka.sasl_password_file`).
pub const ENV_KAFKA_SASL_PASSWORD: &str = "MAILGATE_KAFKA_SASL_PASSWORD";
/// KSMG's limit on the general list.
pub const MAX_GENERAL_LIST: usize = 100_000;

/// librdkafka properties that the delivery guarantees depend on; `[kafka.librdkafka]` may not
/// set them. Each with the reason `check-config` prints.
pub const GUARDED_LIBRDKAFKA_KEYS: &[(&str, &str)] = &[
    (
        "enable.auto.offset.store",
        "offsets are stored only when every notification of a record is done (at-least-once)",
    ),
    (
        "enable.auto.commit",
        "commits are driven by the offset tracker",
    ),
    (
        "auto.offset.reset",
        "a new group must start at the earliest offset so that nothing is skipped",
    ),
    ("group.id", "set kafka.group_id instead"),
    ("bootstrap.servers", "set kafka.brokers instead"),
    ("metadata.broker.list", "set kafka.brokers instead"),
    ("enable.partition.eof", "used internally"),
    ("isolation.level", "the service reads committed data only"),
    ("acks", "dead-letter and changelog writes need acks=all"),
    (
        "enable.idempotence",
        "dead-letter and changelog writes are idempotent",
    ),
];

/// librdkafka properties that hold secrets: never in the TOML in clear.
pub const SECRET_LIBRDKAFKA_KEYS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.pem",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection, topics and consumer tuning.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Where Avro writer schemas come from.
    #[serde(default)]
    pub schemas: SchemasConfig,
    /// The relay (or the file transport).
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// "The address for messages sent by the application".
    pub sender: SenderConfig,
    /// Prometheus and health endpoints.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Application (gateway error) notifications.
    #[serde(default)]
    pub application: ApplicationConfig,
    /// Bounce ("system") notifications.
    #[serde(default)]
    pub bounce: BounceConfig,
    /// Rule-triggering notifications.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Template directory and rendering limits.
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// The unique notification id in headers and subject.
    #[serde(default)]
    pub unique_id: UniqueIdConfig,
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Consumer group; instances with the same group split the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Pass-through librdkafka properties (security, tuning), minus the guarded ones.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// File holding the SASL password (else `MAILGATE_KAFKA_SASL_PASSWORD`).
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// How long shutdown drains in-flight work before it commits and exits.
    #[serde(default = "default_shutdown_timeout", with = "types::duration")]
    pub shutdown_timeout: Duration,
    /// How often the done prefix of each partition is committed.
    #[serde(default = "default_commit_interval", with = "types::duration")]
    pub commit_interval: Duration,
    /// Records of one partition in flight at most; beyond, the partition is paused.
    #[serde(default = "default_in_flight_partition")]
    pub max_in_flight_per_partition: usize,
    /// Records in flight at most over all partitions; beyond, all partitions are paused.
    #[serde(default = "default_in_flight_total")]
    pub max_in_flight_total: usize,
    /// The SASL password, resolved from env or file at load; never from the TOML.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

/// `[kafka.topics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Application events.
    #[serde(default = "default_topic_application")]
    pub application: String,
    /// Bounce events.
    #[serde(default = "default_topic_bounces")]
    pub bounces: String,
    /// Scan verdicts.
    #[serde(default = "default_topic_verdicts")]
    pub scan_verdicts: String,
    /// Compacted changelog of the aggregator's state.
    #[serde(default = "default_topic_state")]
    pub state: String,
    /// Dead-letter topic.
    #[serde(default = "default_topic_dlq")]
    pub dead_letter: String,
}

/// `[schemas]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    /// Confluent-compatible schema registry, for records in the Confluent wire format.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// Timeout of one registry request.
    #[serde(default, with = "types::duration::option")]
    pub registry_timeout: Option<Duration>,
    /// Directory of extra `*.avsc` writer schemas for single-object records.
    #[serde(default)]
    pub extra_dir: Option<PathBuf>,
}

/// How notifications leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// To the SMTP relay.
    Smtp,
    /// `.eml` files in `smtp.dir` (demo, dry runs).
    File,
}

/// TLS towards the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Clear text (a relay on the same host or a trusted network).
    None,
    /// STARTTLS required: refuse to send in clear when the relay does not offer it.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[smtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp` (default) or `file`.
    #[serde(default = "default_transport")]
    pub transport: TransportKind,
    /// Relay host.
    #[serde(default = "default_smtp_host")]
    pub host: String,
    /// Relay port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Verify the relay's certificate.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Extra CA certificate (PEM) for the relay.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// AUTH user; the password comes from `MAILGATE_SMTP_PASSWORD` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connections to the relay.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// A connection is closed and replaced after this many messages.
    #[serde(default = "default_max_per_conn")]
    pub max_messages_per_connection: usize,
    /// TCP connect + greeting timeout.
    #[serde(default = "default_connect_timeout", with = "types::duration")]
    pub connect_timeout: Duration,
    /// Timeout of one SMTP command.
    #[serde(default = "default_command_timeout", with = "types::duration")]
    pub command_timeout: Duration,
    /// Optional cap on messages per second over the pool.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// EHLO name; default the host name.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// Send MAIL, RCPT and DATA as one group (RFC 2920) when the relay offers PIPELINING.
    #[serde(default = "default_true")]
    pub pipelining: bool,
    /// Notifications waiting for a connection at most; beyond, ingest pauses.
    #[serde(default = "default_outbox_capacity")]
    pub outbox_capacity: usize,
    /// Directory of the `file` transport.
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
    /// Backoff of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Circuit breaker in front of connection attempts.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// The SMTP password, resolved at load; never from the TOML.
    #[serde(skip)]
    pub password: Option<Secret>,
}

/// `[smtp.retry]`: exponential backoff with jitter, without a limit in time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First delay.
    #[serde(default = "default_retry_initial", with = "types::duration")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(default = "default_retry_max", with = "types::duration")]
    pub max: Duration,
    /// Growth per attempt.
    #[serde(default = "default_retry_multiplier")]
    pub multiplier: f64,
    /// Random spread, 0..=1, as a fraction of the delay.
    #[serde(default = "default_retry_jitter")]
    pub jitter: f64,
}

/// `[smtp.breaker]`: after `failures` consecutive failed connection attempts no connection is
/// tried for `initial`, doubling after each failed probe up to `max`; the first success closes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed connection attempts that open the breaker.
    #[serde(default = "default_breaker_failures")]
    pub failures: u32,
    /// First open interval.
    #[serde(default = "default_breaker_initial", with = "types::duration")]
    pub initial: Duration,
    /// Longest open interval.
    #[serde(default = "default_breaker_max", with = "types::duration")]
    pub max: Duration,
}

/// The envelope sender: an address or the null sender `<>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeSender {
    /// `MAIL FROM:<>`: bounces of our notifications go nowhere.
    Null,
    /// `MAIL FROM:<address>`.
    Address(Mailbox),
}

impl<'de> Deserialize<'de> for EnvelopeSender {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t.is_empty() || t == "<>" {
            return Ok(EnvelopeSender::Null);
        }
        t.trim_start_matches('<')
            .trim_end_matches('>')
            .parse()
            .map(EnvelopeSender::Address)
            .map_err(serde::de::Error::custom)
    }
}

/// `[sender]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    /// `From` address of every notification.
    pub address: Mailbox,
    /// Display name in `From`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Envelope sender (`MAIL FROM`); default `address`; `"<>"` for the null sender.
    #[serde(default)]
    pub envelope_sender: Option<EnvelopeSender>,
    /// Optional `Reply-To`.
    #[serde(default)]
    pub reply_to: Option<Mailbox>,
}

impl SenderConfig {
    /// The effective envelope sender.
    pub fn envelope(&self) -> EnvelopeSender {
        self.envelope_sender
            .clone()
            .unwrap_or_else(|| EnvelopeSender::Address(self.address.clone()))
    }

    /// Our own addresses, as [`address_key`]s: the `From` address and the envelope sender (when it is
    /// not the null sender). The rule fan-out never notifies them and the bounce router treats
    /// mail from them as one of our notifications (loop protection).
    pub fn own_addresses(&self) -> Vec<String> {
        let mut own = vec![address_key(self.address.as_str()).into_owned()];
        if let EnvelopeSender::Address(a) = self.envelope() {
            let a = address_key(a.as_str()).into_owned();
            if !own.contains(&a) {
                own.push(a);
            }
        }
        own
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

/// A group of administrators who read notifications in one language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientGroup {
    /// Optional name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Their addresses.
    pub addresses: Vec<Mailbox>,
    /// Template language (`en`, `ru`, `de`).
    #[serde(default = "default_language")]
    pub language: String,
}

/// `[application.clusters.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Zone of the cluster's Control node when events do not carry `control_timezone`.
    #[serde(with = "types::timezone")]
    pub timezone: Tz,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// Send application notifications at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Zone used when neither the event nor `clusters.<id>` names one.
    #[serde(default = "default_timezone", with = "types::timezone")]
    pub default_timezone: Tz,
    /// Minimum spacing of change notifications.
    #[serde(default = "default_throttle", with = "types::duration")]
    pub throttle: Duration,
    /// A digest missed while no instance owned the cluster is still sent within this delay.
    #[serde(default = "default_catch_up", with = "types::duration")]
    pub catch_up: Duration,
    /// Administrator groups.
    #[serde(default)]
    pub recipients: Vec<RecipientGroup>,
    /// Per-cluster overrides.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// `[bounce.burst]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstConfig {
    /// Window length.
    #[serde(default = "default_burst_window", with = "types::duration")]
    pub window: Duration,
    /// Notices per window before the rest is summarised.
    #[serde(default = "default_burst_max")]
    pub max: u32,
}

/// `[bounce]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceConfig {
    /// Send bounce notices at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Classes that are notified (as Postfix's `notify_classes`).
    #[serde(default = "default_bounce_classes")]
    pub classes: Vec<BounceClass>,
    /// Administrator groups.
    #[serde(default)]
    pub recipients: Vec<RecipientGroup>,
    /// Burst limit.
    #[serde(default)]
    pub burst: BurstConfig,
}

/// Who may receive a rule notification about their own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderPolicy {
    /// Only when the sender passed SPF/DKIM/DMARC alignment (default; no backscatter).
    Authenticated,
    /// Only senders in `local_domains`.
    Internal,
    /// Always (except the null sender).
    Always,
}

/// A recipient group of rule notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyGroup {
    /// The general list shared by all rules.
    General,
    /// The message's sender.
    Sender,
    /// The rule's affected recipients.
    Recipients,
    /// The rule's own additional list.
    Additional,
}

impl NotifyGroup {
    /// All four groups.
    pub const ALL: [NotifyGroup; 4] = [
        NotifyGroup::General,
        NotifyGroup::Sender,
        NotifyGroup::Recipients,
        NotifyGroup::Additional,
    ];

    /// The config and label name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyGroup::General => "general",
            NotifyGroup::Sender => "sender",
            NotifyGroup::Recipients => "recipients",
            NotifyGroup::Additional => "additional",
        }
    }
}

/// Per-group template names of a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupTemplates {
    /// Template for the general list.
    #[serde(default)]
    pub general: Option<String>,
    /// Template for the sender.
    #[serde(default)]
    pub sender: Option<String>,
    /// Template for the affected recipients.
    #[serde(default)]
    pub recipients: Option<String>,
    /// Template for the additional list.
    #[serde(default)]
    pub additional: Option<String>,
}

/// Notification settings of a rule (`[rules.default]` or one `[[rules.rule]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Rule id (only in `[[rules.rule]]`).
    #[serde(default)]
    pub id: Option<String>,
    /// Groups to notify.
    #[serde(default)]
    pub notify: Vec<NotifyGroup>,
    /// The rule's additional list.
    #[serde(default)]
    pub additional: Vec<Mailbox>,
    /// Templates per group (default: the group's default template).
    #[serde(default)]
    pub templates: GroupTemplates,
    /// Only notify for detections of these modules (empty: any).
    #[serde(default)]
    pub modules: Vec<DetectionModule>,
    /// Only notify for detections with these statuses (empty: any).
    #[serde(default)]
    pub statuses: Vec<String>,
}

/// `[rules]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Send rule notifications at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The general list (at most 100,000 addresses with `general_list_file`).
    #[serde(default)]
    pub general_list: Vec<Mailbox>,
    /// File with more general-list addresses, one per line (`#` comments allowed).
    #[serde(default)]
    pub general_list_file: Option<PathBuf>,
    /// Anti-backscatter policy for the `sender` group.
    #[serde(default = "default_sender_policy")]
    pub sender_policy: SenderPolicy,
    /// Our own domains (for `sender_policy = "internal"`).
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// Notifications per message at most; the rest is summarised.
    #[serde(default = "default_max_per_message")]
    pub max_notifications_per_message: usize,
    /// Attach the original's header block as `text/rfc822-headers`.
    #[serde(default)]
    pub attach_original_headers: bool,
    /// Cap on the attached header block.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Language of rule notifications.
    #[serde(default = "default_language")]
    pub language: String,
    /// Settings for rules not listed in `rule`.
    #[serde(default = "default_rule_settings")]
    pub default: RuleSettings,
    /// Per-rule settings.
    #[serde(default)]
    pub rule: Vec<RuleSettings>,
}

/// `[templates]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Operator templates; any template not found there falls back to the built-in one.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Attacker-controlled values longer than this many characters are cut with a marker.
    #[serde(default = "default_max_value_chars")]
    pub max_value_chars: usize,
    /// `%PRODUCT_NAME%`: how notifications name the gateway.
    #[serde(default = "default_product_name")]
    pub product_name: String,
    /// Send the HTML part of templates that have one (multipart/alternative); `false`: plain
    /// text only.
    #[serde(default = "default_true")]
    pub html: bool,
}

/// `[unique_id]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueIdConfig {
    /// Add `X-Mailgate-Notification-ID` (and `X-Mailgate-Message-ID` where there is one).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Append `[ID: …]` to the subject.
    #[serde(default)]
    pub subject: bool,
}

fn default_brokers() -> String {
    "localhost:9092".into()
}
fn default_group_id() -> String {
    "mailgate-notify".into()
}
fn default_topic_application() -> String {
    "application-events".into()
}
fn default_topic_bounces() -> String {
    "bounces".into()
}
fn default_topic_verdicts() -> String {
    "scan-verdicts".into()
}
fn default_topic_state() -> String {
    "mailgate-notify.state".into()
}
fn default_topic_dlq() -> String {
    "mailgate-notify.dlq".into()
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_in_flight_partition() -> usize {
    2_000
}
fn default_in_flight_total() -> usize {
    10_000
}
fn default_transport() -> TransportKind {
    TransportKind::Smtp
}
fn default_smtp_host() -> String {
    "localhost".into()
}
fn default_smtp_port() -> u16 {
    25
}
fn default_tls() -> TlsMode {
    TlsMode::None
}
fn default_true() -> bool {
    true
}
fn default_pool_size() -> usize {
    4
}
fn default_max_per_conn() -> usize {
    1_000
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_command_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_outbox_capacity() -> usize {
    10_000
}
fn default_outbox_dir() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_retry_multiplier() -> f64 {
    2.0
}
fn default_retry_jitter() -> f64 {
    0.2
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_breaker_max() -> Duration {
    Duration::from_secs(60)
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9898))
}
fn default_language() -> String {
    "en".into()
}
fn default_timezone() -> Tz {
    Tz::UTC
}
fn default_throttle() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_catch_up() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_burst_window() -> Duration {
    Duration::from_secs(60)
}
fn default_burst_max() -> u32 {
    20
}
fn default_bounce_classes() -> Vec<BounceClass> {
    vec![BounceClass::Resource, BounceClass::Software]
}
fn default_sender_policy() -> SenderPolicy {
    SenderPolicy::Authenticated
}
fn default_max_per_message() -> usize {
    100
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_rule_settings() -> RuleSettings {
    RuleSettings {
        notify: vec![NotifyGroup::General],
        ..RuleSettings::default()
    }
}
fn default_max_value_chars() -> usize {
    1_000
}
fn default_product_name() -> String {
    "Secure Mail Gateway".into()
}

macro_rules! default_from_serde {
    ($($t:ty),+) => {$(
        impl Default for $t {
            /// Every field at its documented default.
            fn default() -> Self {
                toml::from_str("").unwrap_or_else(|e| panic!("defaults of {} must parse: {e}", stringify!($t)))
            }
        }
    )+};
}
default_from_serde!(
    KafkaConfig,
    TopicsConfig,
    SmtpConfig,
    RetryConfig,
    BreakerConfig,
    MetricsConfig,
    ApplicationConfig,
    BounceConfig,
    BurstConfig,
    RulesConfig,
    TemplatesConfig,
    UniqueIdConfig
);

/// One thing wrong with a config, with the path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path, e.g. `application.recipients[0].addresses[1]`.
    pub path: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A config that could not be loaded: every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// Each problem, in file order where known.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

/// Source of secrets, injected so that tests need not touch the process environment.
pub trait Env {
    /// The value of an environment variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Reads, parses and validates a config file; secrets from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one("", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, &ProcessEnv)
    }

    /// Parses and validates TOML text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // toml's message starts with a location banner; keep its last line (the reason)
            // and the line number.
            let msg = inner.message().to_string();
            let line = inner
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = match line {
                Some(l) => format!("{msg} (line {l})"),
                None => msg,
            };
            ConfigError::one(if path == "." { String::new() } else { path }, msg)
        })?;
        config.resolve_paths(base);
        let mut problems = Vec::new();
        config.resolve_secrets(env, &mut problems);
        config.load_general_list_file(&mut problems);
        config.validate(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in [
            self.kafka.sasl_password_file.as_mut(),
            self.schemas.extra_dir.as_mut(),
            self.smtp.ca_file.as_mut(),
            self.smtp.password_file.as_mut(),
            self.rules.general_list_file.as_mut(),
            self.templates.dir.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    fn resolve_secrets(&mut self, env: &dyn Env, problems: &mut Vec<Problem>) {
        self.smtp.password = read_secret(
            env,
            ENV_SMTP_PASSWORD,
            self.smtp.password_file.as_deref(),
            "smtp.password_file",
            problems,
        );
        self.kafka.sasl_password = read_secret(
            env,
            ENV_KAFKA_SASL_PASSWORD,
            self.kafka.sasl_password_file.as_deref(),
            "kafka.sasl_password_file",
            problems,
        );
    }

    fn load_general_list_file(&mut self, problems: &mut Vec<Problem>) {
        let Some(path) = self.rules.general_list_file.clone() else {
            return;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(
                    "rules.general_list_file",
                    format!("cannot read {}: {e}", path.display()),
                ));
                return;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.parse::<Mailbox>() {
                Ok(a) => self.rules.general_list.push(a),
                Err(e) => problems.push(problem(
                    "rules.general_list_file",
                    format!("{} line {}: {e}", path.display(), i + 1),
                )),
            }
        }
    }

    /// Cross-field checks; pushes every problem found.
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        self.validate_kafka(problems);
        self.validate_smtp(problems);
        self.validate_notifications(problems);
        if let Some(url) = &self.schemas.registry_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(problem(
                    "schemas.registry_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
        }
        for (path, dir) in [
            ("schemas.extra_dir", &self.schemas.extra_dir),
            ("templates.dir", &self.templates.dir),
        ] {
            if let Some(d) = dir {
                if !d.is_dir() {
                    problems.push(problem(path, format!("{} is not a directory", d.display())));
                }
            }
        }
        if self.templates.max_value_chars < 16 {
            problems.push(problem("templates.max_value_chars", "must be at least 16"));
        }
        if self.templates.product_name.trim().is_empty()
            || self.templates.product_name.chars().any(char::is_control)
        {
            problems.push(problem(
                "templates.product_name",
                "must be a non-empty name on one line",
            ));
        }
    }

    fn validate_kafka(&self, problems: &mut Vec<Problem>) {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            problems.push(problem("kafka.brokers", "must name at least one host:port"));
        }
        if k.group_id.trim().is_empty() {
            problems.push(problem("kafka.group_id", "must not be empty"));
        }
        let t = &k.topics;
        let mut seen = BTreeMap::new();
        for (name, topic) in [
            ("application", &t.application),
            ("bounces", &t.bounces),
            ("scan_verdicts", &t.scan_verdicts),
            ("state", &t.state),
            ("dead_letter", &t.dead_letter),
        ] {
            if topic.trim().is_empty() {
                problems.push(problem(format!("kafka.topics.{name}"), "must not be empty"));
            } else if let Some(other) = seen.insert(topic.clone(), name) {
                problems.push(problem(
                    format!("kafka.topics.{name}"),
                    format!("topic {topic:?} is also kafka.topics.{other}"),
                ));
            }
        }
        for key in k.librdkafka.keys() {
            if let Some((_, why)) = GUARDED_LIBRDKAFKA_KEYS.iter().find(|(g, _)| g == key) {
                problems.push(problem(
                    format!("kafka.librdkafka.\"{key}\""),
                    format!("cannot be overridden: {why}"),
                ));
            }
            if SECRET_LIBRDKAFKA_KEYS.contains(&key.as_str()) {
                problems.push(problem(
                    format!("kafka.librdkafka.\"{key}\""),
                    format!(
                        "secrets are not read from the config file; use {ENV_KAFKA_SASL_PASSWORD} or kafka.sasl_password_file"
                    ),
                ));
            }
        }
        if k.max_in_flight_per_partition == 0 {
            problems.push(problem(
                "kafka.max_in_flight_per_partition",
                "must be at least 1",
            ));
        }
        if k.max_in_flight_total < k.max_in_flight_per_partition {
            problems.push(problem(
                "kafka.max_in_flight_total",
                "must be at least kafka.max_in_flight_per_partition",
            ));
        }
        if k.shutdown_timeout.is_zero() {
            problems.push(problem("kafka.shutdown_timeout", "must be positive"));
        }
        if k.commit_interval.is_zero() {
            problems.push(problem("kafka.commit_interval", "must be positive"));
        }
    }

    fn validate_smtp(&self, problems: &mut Vec<Problem>) {
        let s = &self.smtp;
        if s.transport == TransportKind::Smtp {
            if s.host.trim().is_empty() {
                problems.push(problem("smtp.host", "must not be empty"));
            }
            if s.port == 0 {
                problems.push(problem("smtp.port", "must not be 0"));
            }
        }
        if s.pool_size == 0 {
            problems.push(problem("smtp.pool_size", "must be at least 1"));
        }
        if s.max_messages_per_connection == 0 {
            problems.push(problem(
                "smtp.max_messages_per_connection",
                "must be at least 1",
            ));
        }
        if s.outbox_capacity == 0 {
            problems.push(problem("smtp.outbox_capacity", "must be at least 1"));
        }
        if s.rate_limit_per_second == Some(0) {
            problems.push(problem(
                "smtp.rate_limit_per_second",
                "must be at least 1 (or absent)",
            ));
        }
        if s.username.is_some() && s.password.is_none() {
            problems.push(problem(
                "smtp.username",
                format!("is set but no password: set {ENV_SMTP_PASSWORD} or smtp.password_file"),
            ));
        }
        if s.username.is_some() && s.tls == TlsMode::None {
            problems.push(problem(
                "smtp.tls",
                "AUTH needs tls = \"starttls\" or \"tls\": a password is never sent in clear text",
            ));
        }
        if let Some(ca) = &s.ca_file {
            if !ca.is_file() {
                problems.push(problem(
                    "smtp.ca_file",
                    format!("{} is not a file", ca.display()),
                ));
            }
        }
        let r = &s.retry;
        validate_interval(problems, "smtp.retry", r.initial, r.max);
        if !(r.multiplier >= 1.0 && r.multiplier.is_finite()) {
            problems.push(problem("smtp.retry.multiplier", "must be a number ≥ 1"));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            problems.push(problem("smtp.retry.jitter", "must be between 0 and 1"));
        }
        let b = &s.breaker;
        if b.failures == 0 {
            problems.push(problem("smtp.breaker.failures", "must be at least 1"));
        }
        validate_interval(problems, "smtp.breaker", b.initial, b.max);
    }

    fn validate_notifications(&self, problems: &mut Vec<Problem>) {
        let a = &self.application;
        if a.enabled && a.recipients.iter().all(|g| g.addresses.is_empty()) {
            problems.push(problem(
                "application.recipients",
                "application notifications are enabled but no recipient address is configured",
            ));
        }
        if a.throttle.is_zero() {
            problems.push(problem("application.throttle", "must be positive"));
        }
        validate_groups("application.recipients", &a.recipients, problems);

        let b = &self.bounce;
        if b.enabled && b.recipients.iter().all(|g| g.addresses.is_empty()) {
            problems.push(problem(
                "bounce.recipients",
                "bounce notifications are enabled but no recipient address is configured",
            ));
        }
        validate_groups("bounce.recipients", &b.recipients, problems);
        for (i, c) in b.classes.iter().enumerate() {
            if *c == BounceClass::Unknown {
                problems.push(problem(
                    format!("bounce.classes[{i}]"),
                    format!(
                        "unknown class; expected one of {}",
                        BounceClass::ALL[..BounceClass::ALL.len() - 1]
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        if b.burst.max == 0 {
            problems.push(problem("bounce.burst.max", "must be at least 1"));
        }
        if b.burst.window.is_zero() {
            problems.push(problem("bounce.burst.window", "must be positive"));
        }

        let r = &self.rules;
        if r.general_list.len() > MAX_GENERAL_LIST {
            problems.push(problem(
                "rules.general_list",
                format!(
                    "{} addresses; at most {MAX_GENERAL_LIST}",
                    r.general_list.len()
                ),
            ));
        }
        if r.sender_policy == SenderPolicy::Internal && r.local_domains.is_empty() {
            problems.push(problem(
                "rules.local_domains",
                "sender_policy = \"internal\" needs at least one local domain",
            ));
        }
        for (i, d) in r.local_domains.iter().enumerate() {
            if d.trim().is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
                problems.push(problem(
                    format!("rules.local_domains[{i}]"),
                    format!("{d:?} is not a domain"),
                ));
            }
        }
        if r.max_notifications_per_message == 0 {
            problems.push(problem(
                "rules.max_notifications_per_message",
                "must be at least 1",
            ));
        }
        check_language("rules.language", &r.language, problems);
        validate_rule("rules.default", &r.default, problems);
        if r.default.id.is_some() {
            problems.push(problem(
                "rules.default.id",
                "the default settings take no id",
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, rule) in r.rule.iter().enumerate() {
            let path = format!("rules.rule[{i}]");
            match &rule.id {
                None => problems.push(problem(format!("{path}.id"), "missing rule id")),
                Some(id) if !ids.insert(id.clone()) => problems.push(problem(
                    format!("{path}.id"),
                    format!("rule {id:?} is listed twice"),
                )),
                Some(_) => {}
            }
            validate_rule(&path, rule, problems);
        }
    }
}

fn validate_rule(path: &str, rule: &RuleSettings, problems: &mut Vec<Problem>) {
    if rule.notify.contains(&NotifyGroup::Additional) && rule.additional.is_empty() {
        problems.push(problem(
            format!("{path}.additional"),
            "notify includes \"additional\" but the additional list is empty",
        ));
    }
    for (i, m) in rule.modules.iter().enumerate() {
        if *m == DetectionModule::Unknown {
            problems.push(problem(
                format!("{path}.modules[{i}]"),
                "unknown detection module",
            ));
        }
    }
    for (group, name) in [
        ("general", &rule.templates.general),
        ("sender", &rule.templates.sender),
        ("recipients", &rule.templates.recipients),
        ("additional", &rule.templates.additional),
    ] {
        if let Some(n) = name {
            if n.trim().is_empty() || n.contains("..") || n.starts_with('/') {
                problems.push(problem(
                    format!("{path}.templates.{group}"),
                    format!("{n:?} is not a template name"),
                ));
            }
        }
    }
}

fn validate_groups(path: &str, groups: &[RecipientGroup], problems: &mut Vec<Problem>) {
    for (i, g) in groups.iter().enumerate() {
        check_language(&format!("{path}[{i}].language"), &g.language, problems);
    }
}

fn check_language(path: &str, lang: &str, problems: &mut Vec<Problem>) {
    let ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    if !ok {
        problems.push(problem(
            path,
            format!("{lang:?} is not a language code; write e.g. \"en\", \"ru\", \"de\""),
        ));
    }
}

fn read_secret(
    env: &dyn Env,
    var: &str,
    file: Option<&Path>,
    file_key: &str,
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    if let Some(v) = env.var(var).filter(|v| !v.is_empty()) {
        return Some(Secret::new(v));
    }
    let file = file?;
    match std::fs::read_to_string(file) {
        // A trailing newline from `echo secret > file` is not part of the password.
        Ok(s) => Some(Secret::new(s.trim_end_matches(['\n', '\r']))),
        Err(e) => {
            problems.push(problem(
                file_key,
                format!("cannot read {}: {e}", file.display()),
            ));
            None
        }
    }
}

/// `<section>.initial` must be positive and `<section>.max` at least as long.
fn validate_interval(problems: &mut Vec<Problem>, section: &str, initial: Duration, max: Duration) {
    if initial.is_zero() {
        problems.push(problem(format!("{section}.initial"), "must be positive"));
    }
    if max < initial {
        problems.push(problem(
            format!("{section}.max"),
            format!("must be at least {section}.initial"),
        ));
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }
    fn no_env() -> FakeEnv {
        FakeEnv(HashMap::new())
    }

    const MINIMAL: &str = r#"
        [sender]
        address = "notify@example.com"
        [[application.recipients]]
        addresses = ["admin@example.com"]
        [[bounce.recipients]]
        addresses = ["postmaster@example.com"]
    "#;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!("{MINIMAL}\n{extra}"), Path::new("."), &no_env())
    }

    fn paths(e: ConfigError) -> Vec<String> {
        e.problems.into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = load("").expect("valid");
        assert_eq!(c.kafka.topics.application, "application-events");
        assert_eq!(c.kafka.topics.dead_letter, "mailgate-notify.dlq");
        assert_eq!(c.application.throttle, Duration::from_secs(900));
        assert_eq!(c.application.catch_up, Duration::from_secs(6 * 3600));
        assert_eq!(
            c.bounce.classes,
            vec![BounceClass::Resource, BounceClass::Software]
        );
        assert_eq!(c.rules.sender_policy, SenderPolicy::Authenticated);
        assert_eq!(c.rules.max_notifications_per_message, 100);
        assert_eq!(c.smtp.tls, TlsMode::None);
        assert_eq!(c.metrics.listen, "127.0.0.1:9898".parse().unwrap());
        assert_eq!(
            c.sender.envelope(),
            EnvelopeSender::Address("notify@example.com".parse().unwrap())
        );
    }

    #[test]
    fn durations_time_zones_and_addresses_are_parsed_at_load() {
        let c = Config::from_toml(
            r#"
            [sender]
            address = "notify@example.com"
            envelope_sender = "<>"
            [application]
            throttle = "1m 30s"
            default_timezone = "Asia/Kathmandu"
            [[application.recipients]]
            addresses = ["admin@example.com"]
            language = "ru"
            [application.clusters.c1]
            timezone = "America/Havana"
            [bounce]
            enabled = false
            "#,
            Path::new("."),
            &no_env(),
        )
        .expect("valid");
        assert_eq!(c.application.throttle, Duration::from_secs(90));
        assert_eq!(c.application.default_timezone, chrono_tz::Asia::Kathmandu);
        assert_eq!(
            c.application.clusters["c1"].timezone,
            chrono_tz::America::Havana
        );
        assert_eq!(c.sender.envelope(), EnvelopeSender::Null);
        assert_eq!(c.application.recipients[0].language, "ru");
    }

    #[test]
    fn bad_values_name_their_path() {
        let e = Config::from_toml(
            "[sender]\naddress = \"not an address\"\n",
            Path::new("."),
            &no_env(),
        )
        .unwrap_err();
        assert_eq!(paths(e.clone()), vec!["sender.address"]);
        assert!(e.to_string().contains("invalid address"), "{e}");

        let e = load("[smtp]\nconnect_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(paths(e.clone()), vec!["smtp.connect_timeout"]);
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn breaker_thresholds_default_and_are_validated() {
        let c = load("").unwrap();
        assert_eq!(c.smtp.breaker.failures, 5);
        assert_eq!(c.smtp.breaker.initial, Duration::from_secs(1));
        assert_eq!(c.smtp.breaker.max, Duration::from_secs(60));
        let e =
            load("[smtp.breaker]\nfailures = 0\ninitial = \"10s\"\nmax = \"5s\"\n").unwrap_err();
        assert_eq!(paths(e), vec!["smtp.breaker.failures", "smtp.breaker.max"]);
    }

    #[test]
    fn every_cross_field_problem_is_reported_at_once() {
        let e = load(
            r#"
            [kafka]
            group_id = ""
            [kafka.topics]
            bounces = "application-events"
            [smtp]
            pool_size = 0
            [smtp.retry]
            jitter = 2.0
            [rules]
            sender_policy = "internal"
            "#,
        )
        .unwrap_err();
        let p = paths(e);
        for want in [
            "kafka.group_id",
            "kafka.topics.bounces",
            "smtp.pool_size",
            "smtp.retry.jitter",
            "rules.local_domains",
        ] {
            assert!(p.contains(&want.to_string()), "{want} missing from {p:?}");
        }
    }

    #[test]
    fn guarded_librdkafka_settings_cannot_be_overridden() {
        let e = load(
            r#"
            [kafka.librdkafka]
            "enable.auto.offset.store" = "true"
            "security.protocol" = "SASL_SSL"
            "#,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(
            e.problems[0].path,
            "kafka.librdkafka.\"enable.auto.offset.store\""
        );
        assert!(e.problems[0].message.contains("cannot be overridden"));
    }

    #[test]
    fn secrets_in_the_toml_are_refused() {
        let e = load("[kafka.librdkafka]\n\"sasl.password\" = \"hunter2\"\n").unwrap_err();
        assert_eq!(paths(e.clone()), vec!["kafka.librdkafka.\"sasl.password\""]);
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn smtp_password_comes_from_env_or_file_and_never_prints() {
        let toml = r#"
            [smtp]
            tls = "starttls"
            username = "svc"
        "#;
        let e = load(toml).unwrap_err();
        assert_eq!(paths(e), vec!["smtp.username"]);

        let env = FakeEnv(HashMap::from([(ENV_SMTP_PASSWORD, "s3cret")]));
        let c =
            Config::from_toml(&format!("{MINIMAL}\n{toml}"), Path::new("."), &env).expect("valid");
        assert_eq!(c.smtp.password.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let c = Config::from_toml(
            &format!("{MINIMAL}\n{toml}\npassword_file = \"pw\"\n"),
            dir.path(),
            &no_env(),
        )
        .expect("valid");
        assert_eq!(
            c.smtp.password.as_ref().map(|s| s.expose()),
            Some("from-file")
        );
    }

    #[test]
    fn auth_over_clear_text_is_refused() {
        let env = FakeEnv(HashMap::from([(ENV_SMTP_PASSWORD, "x")]));
        let e = Config::from_toml(
            &format!("{MINIMAL}\n[smtp]\nusername = \"svc\"\n"),
            Path::new("."),
            &env,
        )
        .unwrap_err();
        assert_eq!(paths(e), vec!["smtp.tls"]);
    }

    #[test]
    fn general_list_file_is_loaded_and_validated_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("list.txt"),
            "# security team\na@example.com\n\nb@example.com # lead\nnot-an-address\n",
        )
        .unwrap();
        let toml = format!("{MINIMAL}\n[rules]\ngeneral_list = [\"x@example.com\"]\ngeneral_list_file = \"list.txt\"\n");
        let e = Config::from_toml(&toml, dir.path(), &no_env()).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(
            e.problems[0].message.contains("line 5"),
            "{}",
            e.problems[0]
        );
        std::fs::write(
            dir.path().join("list.txt"),
            "a@example.com\nb@example.com\n",
        )
        .unwrap();
        let c = Config::from_toml(&toml, dir.path(), &no_env()).expect("valid");
        let list: Vec<_> = c.rules.general_list.iter().map(|a| a.as_str()).collect();
        assert_eq!(list, ["x@example.com", "a@example.com", "b@example.com"]);
    }

    #[test]
    fn rule_entries_are_cross_checked() {
        let e = load(
            r#"
            [[rules.rule]]
            id = "r1"
            notify = ["additional"]
            [[rules.rule]]
            id = "r1"
            notify = ["general"]
            modules = ["TELEPATHY"]
            "#,
        )
        .unwrap_err();
        let p = paths(e);
        assert!(p.contains(&"rules.rule[0].additional".to_string()), "{p:?}");
        assert!(p.contains(&"rules.rule[1].id".to_string()), "{p:?}");
        assert!(p.contains(&"rules.rule[1].modules[0]".to_string()), "{p:?}");
    }

    #[test]
    fn enabled_notifications_without_recipients_are_a_problem() {
        let e = Config::from_toml(
            "[sender]\naddress = \"n@example.com\"\n",
            Path::new("."),
            &no_env(),
        )
        .unwrap_err();
        assert_eq!(
            paths(e),
            vec!["application.recipients", "bounce.recipients"]
        );
    }
}
