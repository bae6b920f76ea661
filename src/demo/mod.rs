//! `mailgate-notify demo` — what `make run` runs: the real service wiring ([`crate::app`])
//! against an in-process Kafka-protocol broker (rdkafka's `MockCluster`) or a real one, with
//! the `file` transport writing `.eml` files (or a real relay), fed by a generator that
//! publishes a simulated day of gateway activity ([`scenario`]) on a scaled clock. At the end it
//! waits until every published record is done, stops the service and returns a [`Summary`] —
//! what was sent to whom, what was suppressed and why, the dead letters — counted both from the
//! service's metrics and from the files in the outbox ([`outbox`]).
//!
//! The clock stands still until the consumer group has its partitions, then runs `speed`
//! simulated seconds per real second: the events are published when the clock reaches their
//! time, the deciders see the same clock, so throttling and the midnight digest happen at the
//! simulated times they would in a real day.

pub mod outbox;
pub mod scenario;

use crate::app::clock::{Clock, ScaledClock};
use crate::app::{self, Options};
use crate::config::{Config, ProcessEnv, TransportKind};
use crate::event::time::Timestamp;
use crate::event::EventKind;
use crate::produce::{self, Encoder, OutputFormat};
use chrono::TimeZone;
use chrono_tz::Tz;
use outbox::{OutboxCounts, OutboxMail};
use rdkafka::producer::{FutureProducer, FutureRecord};
use scenario::{Payload, Scheduled};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The embedded demo configuration.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded config (or an override from the command line) is invalid.
    #[error("demo config: {0}")]
    Config(String),
    /// The in-process broker or the real one could not be used.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The service did not start.
    #[error(transparent)]
    Start(#[from] app::AppError),
    /// The outbox directory could not be prepared or read.
    #[error("outbox {path}: {error}")]
    Outbox {
        /// The directory.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// Something did not happen in time (group formation, draining).
    #[error("timed out: {0}")]
    Timeout(String),
}

impl DemoError {
    /// Whether running again may help (a broker that was not up yet).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DemoError::Kafka(_) | DemoError::Timeout(_))
    }

    /// Stable code for logs.
    pub fn error_code(&self) -> &'static str {
        match self {
            DemoError::Config(_) => "config",
            DemoError::Kafka(_) => "kafka",
            DemoError::Start(_) => "start",
            DemoError::Outbox { .. } => "outbox",
            DemoError::Timeout(_) => "timeout",
        }
    }
}

/// How the demo runs (the CLI's flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Simulated span.
    pub duration: Duration,
    /// Directory of the `file` transport (its old `.eml` files are removed first).
    pub outbox: PathBuf,
    /// A real broker instead of the in-process one.
    pub brokers: Option<String>,
    /// A real relay (`host:port`) instead of the outbox directory.
    pub smtp: Option<String>,
    /// Simulated start.
    pub start: Timestamp,
    /// Real-time interval of the deciders' deadline checks.
    pub tick: Duration,
    /// Real-time bound on group formation and on the final drain, each.
    pub deadline: Duration,
    /// Print progress lines while it runs.
    pub progress: bool,
}

/// 2026-12-01 08:00 in the cluster's zone (Europe/Moscow).
pub fn default_start() -> Timestamp {
    let zone: Tz = scenario::ZONE.parse().unwrap_or(chrono_tz::Europe::Moscow);
    zone.with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            speed: 3600.0,
            duration: Duration::from_secs(26 * 3600),
            outbox: PathBuf::from("outbox"),
            brokers: None,
            smtp: None,
            start: default_start(),
            tick: Duration::from_millis(10),
            deadline: Duration::from_secs(30),
            progress: false,
        }
    }
}

/// A clock that stands at `start` until [`GatedClock::open`], then runs as a [`ScaledClock`]:
/// the simulated day must not begin while the consumer group is still forming.
pub struct GatedClock {
    start: Timestamp,
    speed: f64,
    running: OnceLock<Arc<ScaledClock>>,
}

impl GatedClock {
    /// Stopped at `start`; `speed` once opened.
    pub fn new(start: Timestamp, speed: f64) -> Arc<Self> {
        Arc::new(GatedClock {
            start,
            speed,
            running: OnceLock::new(),
        })
    }

    /// Starts the clock (once).
    pub fn open(&self) {
        let _ = self
            .running
            .set(ScaledClock::new(self.start, self.speed.max(1.0)));
    }
}

impl Clock for GatedClock {
    fn now(&self) -> Timestamp {
        self.running.get().map_or(self.start, |c| c.now())
    }
}

/// What the demo did, from the metrics and (with the file transport) from the outbox files.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Simulated start and end.
    pub simulated: (Timestamp, Timestamp),
    /// The zone the times are shown in.
    pub zone: Tz,
    /// Real time the whole run took.
    pub real: Duration,
    /// Real time until the consumer group had its partitions.
    pub group_formed_in: Duration,
    /// In-process broker or the given one.
    pub broker: String,
    /// Records published, by event kind (`application`, `bounce`, `scan_verdict`).
    pub published: BTreeMap<String, u64>,
    /// Records consumed, by event kind.
    pub consumed: BTreeMap<String, u64>,
    /// `notifications_sent_total{kind,group}` (one per accepted recipient), non-zero only.
    pub sent: BTreeMap<(String, String), u64>,
    /// `notifications_failed_total{kind,group,reason}`, non-zero only.
    pub failed: BTreeMap<(String, String, String), u64>,
    /// `notifications_suppressed_total{kind,reason}`, non-zero only.
    pub suppressed: BTreeMap<(String, String), u64>,
    /// `rule_notifications_suppressed_total{group,reason}`, non-zero only.
    pub rule_suppressed: BTreeMap<(String, String), u64>,
    /// `bounce_notifications_suppressed_total{reason}`, non-zero only.
    pub bounce_suppressed: BTreeMap<String, u64>,
    /// `application_decisions_total{reason}`, non-zero only.
    pub application_decisions: BTreeMap<String, u64>,
    /// `application_events_total{outcome}`, non-zero only.
    pub application_events: BTreeMap<String, u64>,
    /// `dlq_records_total{stage,error_code}`, non-zero only.
    pub dlq: BTreeMap<(String, String), u64>,
    /// The outbox directory (file transport) — or `None` when mail went to a relay.
    pub outbox: Option<PathBuf>,
    /// The relay, when one was used.
    pub smtp: Option<String>,
    /// Counts from the outbox files.
    pub files: Option<OutboxCounts>,
    /// The notifications found in the outbox.
    pub mails: Vec<OutboxMail>,
    /// Set when the run stopped before everything was done (a relay that never answered):
    /// what was left.
    pub unfinished: Option<String>,
}

impl Summary {
    /// Whether the files say what the metrics say: for every (kind, group), the addressed
    /// copies in the outbox equal `notifications_sent_total`, and no file is unrecognised.
    pub fn files_match_metrics(&self) -> bool {
        match &self.files {
            Some(f) => {
                let nonzero: BTreeMap<_, _> = f
                    .deliveries
                    .iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                nonzero == self.sent
            }
            None => true,
        }
    }

    /// Dead-lettered records in all.
    pub fn dlq_total(&self) -> u64 {
        self.dlq.values().sum()
    }
}

/// Reads the embedded config with the command line's overrides applied.
pub fn demo_config(opts: &DemoOptions, run_id: &str) -> Result<Config, DemoError> {
    let mut config = Config::from_toml(DEMO_CONFIG, std::path::Path::new("."), &ProcessEnv)
        .map_err(|e| DemoError::Config(e.to_string()))?;
    if opts.brokers.is_some() {
        // A real broker keeps what earlier runs published: fresh topics and group per run.
        let t = &mut config.kafka.topics;
        for name in [
            &mut t.application,
            &mut t.bounces,
            &mut t.scan_verdicts,
            &mut t.state,
            &mut t.dead_letter,
        ] {
            *name = format!("demo-{run_id}.{name}");
        }
        config.kafka.group_id = format!("mailgate-notify-demo-{run_id}");
    }
    match &opts.smtp {
        Some(relay) => {
            let (host, port) = relay
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
                .ok_or_else(|| {
                    DemoError::Config(format!("--smtp {relay:?}: expected HOST:PORT"))
                })?;
            config.smtp.transport = TransportKind::Smtp;
            config.smtp.host = host;
            config.smtp.port = port;
        }
        None => {
            config.smtp.transport = TransportKind::File;
            config.smtp.dir = opts.outbox.clone();
        }
    }
    Ok(config)
}

/// The in-process broker, on a thread of its own (the mock cluster handle is not `Send`);
/// dropped, it stops.
struct MockBroker {
    bootstrap: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockBroker {
    fn start(topics: Vec<String>) -> Result<MockBroker, DemoError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match rdkafka::mocking::MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("MockCluster: {e}")));
                        return;
                    }
                };
                // Topics through the mock API: an AdminClient CreateTopics hangs against it.
                // One partition each: the mock serves one fetch per partition at a time, and
                // the demo's volume needs no more.
                for t in &topics {
                    if let Err(e) = cluster.create_topic(t, 1, 1) {
                        let _ = ready_tx.send(Err(format!("create topic {t}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| DemoError::Kafka(format!("cannot start the mock broker thread: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| DemoError::Kafka("the mock broker thread died".into()))?
            .map_err(DemoError::Kafka)?;
        Ok(MockBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates the demo's topics on a real broker (one partition each; the changelog is created
/// by the service itself), and the producer's warm-up topic.
async fn create_topics(config: &Config, warmup: &str) -> Result<(), DemoError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        crate::ingest::consumer::client_config(&config.kafka)
            .create()
            .map_err(|e| DemoError::Kafka(e.to_string()))?;
    let t = &config.kafka.topics;
    let topics: Vec<NewTopic<'_>> = [
        t.application.as_str(),
        t.bounces.as_str(),
        t.scan_verdicts.as_str(),
        t.dead_letter.as_str(),
        warmup,
    ]
    .into_iter()
    .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(-1)))
    .collect();
    let res = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| DemoError::Kafka(format!("create topics: {e}")))?;
    for r in res {
        if let Err((topic, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(DemoError::Kafka(format!("create {topic}: {e}")));
            }
        }
    }
    Ok(())
}

/// Every sample of metric `name` (without the `mailgate_notify_` prefix) in a text
/// exposition, with its labels.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let full = format!("{}{name}", crate::telemetry::PREFIX);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&full) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let labels = labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        out.push((labels, value));
    }
    out
}

fn total(text: &str, name: &str) -> u64 {
    series(text, name).iter().map(|(_, v)| *v as u64).sum()
}

/// Non-zero samples of `name`, keyed by the values of `keys`.
fn by<const N: usize>(text: &str, name: &str, keys: [&str; N]) -> BTreeMap<[String; N], u64> {
    let mut out = BTreeMap::new();
    for (labels, v) in series(text, name) {
        if v > 0.0 {
            let k = keys.map(|k| labels.get(k).cloned().unwrap_or_default());
            *out.entry(k).or_default() += v as u64;
        }
    }
    out
}

fn pairs(m: BTreeMap<[String; 2], u64>) -> BTreeMap<(String, String), u64> {
    m.into_iter().map(|([a, b], v)| ((a, b), v)).collect()
}

/// What the generator published.
#[derive(Debug, Default)]
struct Published {
    by_kind: BTreeMap<String, u64>,
    failed: u64,
}

struct Topics {
    application: String,
    bounces: String,
    scan_verdicts: String,
}

impl Topics {
    fn of(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Application => &self.application,
            EventKind::Bounce => &self.bounces,
            EventKind::ScanVerdict => &self.scan_verdicts,
        }
    }
}

/// Publishes each record when the clock reaches its time: application events as JSON (as some
/// gateways send them), verdicts and bounces in Avro single-object encoding.
async fn publish(
    schedule: Vec<Scheduled>,
    clock: Arc<GatedClock>,
    speed: f64,
    producer: FutureProducer,
    topics: Topics,
    count: Arc<AtomicU64>,
) -> Published {
    let mut json = Encoder::new(OutputFormat::Json, None).ok();
    let mut avro = Encoder::new(OutputFormat::Avro, None).ok();
    let mut pending = Vec::with_capacity(schedule.len());
    let mut out = Published::default();
    for s in schedule {
        loop {
            let ahead = (s.at - clock.now()).num_milliseconds();
            if ahead <= 0 {
                break;
            }
            let real_ms = (ahead as f64 / speed).clamp(1.0, 50.0);
            tokio::time::sleep(Duration::from_millis(real_ms as u64)).await;
        }
        let topic = topics.of(s.kind);
        let (key, bytes) = match &s.payload {
            Payload::Event(event) => {
                let encoder = if s.kind == EventKind::Application {
                    json.as_mut()
                } else {
                    avro.as_mut()
                };
                let Some(encoder) = encoder else {
                    out.failed += 1;
                    continue;
                };
                match encoder.encode(topic, event).await {
                    Ok(b) => (event.key().to_string(), b),
                    Err(e) => {
                        tracing::error!(error = %e, "demo: cannot encode an event");
                        out.failed += 1;
                        continue;
                    }
                }
            }
            Payload::Garbage { key, bytes } => (key.clone(), bytes.clone()),
        };
        match producer.send_result(FutureRecord::to(topic).key(&key).payload(&bytes)) {
            Ok(fut) => {
                count.fetch_add(1, Ordering::Relaxed);
                pending.push((s.kind, fut));
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "demo: cannot publish");
                out.failed += 1;
            }
        }
    }
    for (kind, fut) in pending {
        match fut.await {
            Ok(Ok(_)) => *out.by_kind.entry(kind.as_str().to_string()).or_default() += 1,
            _ => out.failed += 1,
        }
    }
    out
}

fn local(t: Timestamp, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

/// Runs the demo and returns its summary (print it with `Display`).
pub async fn run(opts: DemoOptions) -> Result<Summary, DemoError> {
    let real_start = Instant::now();
    let zone: Tz = scenario::ZONE.parse().unwrap_or(chrono_tz::Europe::Moscow);
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut config = demo_config(&opts, &run_id)?;
    let say = |s: String| {
        if opts.progress {
            println!("{s}");
        }
    };
    if opts.smtp.is_none() {
        let removed = outbox::clear(&opts.outbox).map_err(|error| DemoError::Outbox {
            path: opts.outbox.clone(),
            error,
        })?;
        say(format!(
            "Mail goes to {}/ as .eml files{}.",
            opts.outbox.display(),
            if removed > 0 {
                format!(" (cleared first: {removed} .eml files of an earlier run removed)")
            } else {
                String::new()
            }
        ));
    }
    // A topic only the demo's own producer writes to, once, before the day starts: the first
    // record a fresh producer sends takes ~100 ms to be acknowledged (measured against the
    // in-process broker), which at high speed would delay the first event by many simulated
    // minutes.
    let warmup = format!("{}-warmup", config.kafka.group_id);
    let t = &config.kafka.topics;
    let mock = match &opts.brokers {
        Some(b) => {
            config.kafka.brokers = b.clone();
            None
        }
        None => {
            let m = MockBroker::start(vec![
                t.application.clone(),
                t.bounces.clone(),
                t.scan_verdicts.clone(),
                t.dead_letter.clone(),
                warmup.clone(),
            ])?;
            config.kafka.brokers = m.bootstrap.clone();
            Some(m)
        }
    };
    let broker = match &mock {
        Some(m) => format!("in-process MockCluster at {}", m.bootstrap),
        None => config.kafka.brokers.clone(),
    };
    if mock.is_none() {
        create_topics(&config, &warmup).await?;
    }
    say(format!("Broker: {broker}"));
    let topics = Topics {
        application: config.kafka.topics.application.clone(),
        bounces: config.kafka.topics.bounces.clone(),
        scan_verdicts: config.kafka.topics.scan_verdicts.clone(),
    };
    // Each event goes out when its time comes, not batched with the next one.
    let mut extra = config.kafka.librdkafka.clone();
    extra.insert("linger.ms".into(), "0".into());
    let producer = produce::producer(&config.kafka.brokers, &extra)
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    producer
        .send(
            FutureRecord::<str, [u8]>::to(&warmup).payload(b"warm-up".as_slice()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| DemoError::Kafka(format!("warm-up record to {warmup}: {e}")))?;
    let clock = GatedClock::new(opts.start, opts.speed);
    let running = app::start(
        config,
        Options {
            clock: clock.clone(),
            tick: opts.tick,
            changelog: mock.is_none(),
        },
    )
    .await?;
    let registry = running.registry.clone();
    say(format!(
        "Service started in {:.1} s; metrics at http://{}/metrics. Waiting for the consumer group…",
        real_start.elapsed().as_secs_f64(),
        running.metrics_addr
    ));

    // The day starts once the three input partitions are assigned.
    let formed = loop {
        let text = crate::telemetry::encode_text(&registry);
        if total(&text, "partitions_assigned") >= 3 {
            break Ok(real_start.elapsed());
        }
        if real_start.elapsed() > opts.deadline {
            break Err(DemoError::Timeout(format!(
                "the consumer group did not get its partitions within {:?}",
                opts.deadline
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let group_formed_in = match formed {
        Ok(d) => d,
        Err(e) => {
            running.shutdown().await;
            return Err(e);
        }
    };
    let span = chrono::TimeDelta::from_std(opts.duration)
        .map_err(|e| DemoError::Config(format!("--duration: {e}")))?;
    let end = opts.start + span;
    let schedule = scenario::day(opts.start, span);
    say(format!(
        "Group formed in {:.1} s. Playing {} → {} ({}) at {}× : {} records to publish.",
        group_formed_in.as_secs_f64(),
        local(opts.start, zone),
        local(end, zone),
        zone,
        opts.speed,
        schedule.len()
    ));
    clock.open();
    let count = Arc::new(AtomicU64::new(0));
    let mut publisher = tokio::spawn(publish(
        schedule,
        clock.clone(),
        opts.speed.max(1.0),
        producer,
        topics,
        count.clone(),
    ));

    // Progress every simulated two hours while the day plays.
    let mut next_report = opts.start + chrono::TimeDelta::hours(2);
    let published = loop {
        tokio::select! {
            p = &mut publisher => break p.unwrap_or_default(),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        let now = clock.now();
        if now >= next_report && now < end {
            let text = crate::telemetry::encode_text(&registry);
            say(format!(
                "  {}  published {:>4}  notifications sent {:>4}",
                local(now, zone),
                count.load(Ordering::Relaxed),
                total(&text, "notifications_sent_total"),
            ));
            next_report += chrono::TimeDelta::hours(2);
        }
    };
    // Let the clock reach the end of the span (the last record may come well before it).
    while clock.now() < end {
        let left =
            ((end - clock.now()).num_milliseconds() as f64 / opts.speed.max(1.0)).clamp(1.0, 50.0);
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
    let published_total: u64 = published.by_kind.values().sum::<u64>();

    // Drain: every published record consumed and done, the outbox empty — three times in a row.
    let drain_start = Instant::now();
    let mut calm = 0;
    let mut unfinished = None;
    while calm < 3 {
        let text = crate::telemetry::encode_text(&registry);
        let consumed = total(&text, "events_consumed_total");
        let depth = total(&text, "outbox_depth");
        if consumed >= published_total && running.in_flight() == 0 && depth == 0 {
            calm += 1;
        } else {
            calm = 0;
        }
        if drain_start.elapsed() > opts.deadline {
            unfinished = Some(format!(
                "after {:?}: {} of {published_total} records consumed, {} records unfinished, {depth} notifications still in the outbox{}",
                opts.deadline,
                consumed,
                running.in_flight(),
                match &opts.smtp {
                    Some(relay) => format!(" (is the relay at {relay} up?)"),
                    None => String::new(),
                }
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    drop(mock);

    let text = crate::telemetry::encode_text(&registry);
    let (outbox_dir, files, mails) = match &opts.smtp {
        Some(_) => (None, None, Vec::new()),
        None => {
            let mails = outbox::read(&opts.outbox).map_err(|error| DemoError::Outbox {
                path: opts.outbox.clone(),
                error,
            })?;
            let dir = std::fs::canonicalize(&opts.outbox).unwrap_or(opts.outbox.clone());
            (Some(dir), Some(OutboxCounts::of(&mails)), mails)
        }
    };
    if published.failed > 0 {
        tracing::warn!(
            failed = published.failed,
            "demo: some records were not published"
        );
    }
    Ok(Summary {
        simulated: (opts.start, end),
        zone,
        real: real_start.elapsed(),
        group_formed_in,
        broker,
        published: published.by_kind,
        consumed: by(&text, "events_consumed_total", ["topic"])
            .into_iter()
            .map(|([k], v)| (k, v))
            .collect(),
        sent: pairs(by(&text, "notifications_sent_total", ["kind", "group"])),
        failed: by(
            &text,
            "notifications_failed_total",
            ["kind", "group", "reason"],
        )
        .into_iter()
        .map(|([a, b, c], v)| ((a, b, c), v))
        .collect(),
        suppressed: pairs(by(
            &text,
            "notifications_suppressed_total",
            ["kind", "reason"],
        )),
        rule_suppressed: pairs(by(
            &text,
            "rule_notifications_suppressed_total",
            ["group", "reason"],
        )),
        bounce_suppressed: by(&text, "bounce_notifications_suppressed_total", ["reason"])
            .into_iter()
            .map(|([k], v)| (k, v))
            .collect(),
        application_decisions: by(&text, "application_decisions_total", ["reason"])
            .into_iter()
            .map(|([k], v)| (k, v))
            .collect(),
        application_events: by(&text, "application_events_total", ["outcome"])
            .into_iter()
            .map(|([k], v)| (k, v))
            .collect(),
        dlq: pairs(by(&text, "dlq_records_total", ["stage", "error_code"])),
        outbox: outbox_dir,
        smtp: opts.smtp.clone(),
        files,
        mails,
        unfinished,
    })
}

/// Why a suppression reason happened, in words, for the summary.
fn explain(kind: &str, reason: &str) -> &'static str {
    match (kind, reason) {
        (_, "backscatter") => "the sender was not authenticated, or was the null sender <>",
        (_, "duplicate") => "same template to the same address for one message: sent once",
        (_, "cap") => "beyond rules.max_notifications_per_message; one summary sent instead",
        ("bounce", "burst") => "beyond bounce.burst.max per window; folded into a summary",
        ("bounce", "disabled") => "class not in bounce.classes (only RESOURCE and SOFTWARE)",
        ("bounce", "loop") => "a bounce of one of our own notifications",
        (_, "filtered") => "the rule's module/status filter did not match",
        (_, "throttled") => "held back by the 15-minute throttle",
        _ => "",
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let z = self.zone;
        writeln!(f)?;
        writeln!(f, "=== mailgate-notify demo: summary ===")?;
        writeln!(
            f,
            "Simulated {} → {} ({z}) in {:.1} s real time (consumer group formed in {:.1} s).",
            local(self.simulated.0, z),
            local(self.simulated.1, z),
            self.real.as_secs_f64(),
            self.group_formed_in.as_secs_f64()
        )?;
        writeln!(f, "Broker: {}", self.broker)?;
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "Published {} records ({}); consumed {} ({}).",
            self.published.values().sum::<u64>(),
            list(&self.published),
            self.consumed.values().sum::<u64>(),
            list(&self.consumed)
        )?;
        writeln!(f)?;
        writeln!(f, "Sent (kind / group: messages, addressed copies):")?;
        let mut keys: Vec<&(String, String)> = self.sent.keys().collect();
        if let Some(files) = &self.files {
            keys.extend(files.messages.keys());
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            let copies = self.sent.get(k).copied().unwrap_or(0);
            let (messages, in_files) = match &self.files {
                Some(files) => (
                    files.messages.get(k).copied().unwrap_or(0).to_string(),
                    files.deliveries.get(k).copied().unwrap_or(0),
                ),
                None => ("-".into(), copies),
            };
            let mark = if in_files == copies {
                String::new()
            } else {
                format!("   <-- the files hold {in_files} copies")
            };
            writeln!(
                f,
                "  {:<12} {:<11} {:>5} {:>6}{mark}",
                k.0, k.1, messages, copies
            )?;
        }
        if let Some(files) = &self.files {
            writeln!(f)?;
            writeln!(f, "To whom (messages per address, from the outbox files):")?;
            let mut rows: Vec<(&String, &u64)> = files.per_address.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown = 16;
            for (addr, n) in rows.iter().take(shown) {
                writeln!(f, "  {n:>5}  {addr}")?;
            }
            if rows.len() > shown {
                let rest: u64 = rows.iter().skip(shown).map(|(_, n)| **n).sum();
                writeln!(f, "  {rest:>5}  … to {} more addresses", rows.len() - shown)?;
            }
        }
        writeln!(f)?;
        writeln!(f, "Suppressed on purpose (kind / reason: count):")?;
        if self.suppressed.is_empty() {
            writeln!(f, "  nothing")?;
        }
        for ((kind, reason), n) in &self.suppressed {
            writeln!(
                f,
                "  {kind:<12} {reason:<19} {n:>5}  {}",
                explain(kind, reason)
            )?;
        }
        if !self.rule_suppressed.is_empty() {
            let detail: Vec<String> = self
                .rule_suppressed
                .iter()
                .map(|((g, r), n)| format!("{g}/{r} {n}"))
                .collect();
            writeln!(f, "  rule detail: {}", detail.join(", "))?;
        }
        if !self.bounce_suppressed.is_empty() {
            writeln!(f, "  bounce detail: {}", list(&self.bounce_suppressed))?;
        }
        writeln!(
            f,
            "  application events: {}",
            list(&self.application_events)
        )?;
        writeln!(
            f,
            "  application decisions: {}",
            list(&self.application_decisions)
        )?;
        writeln!(
            f,
            "    (first_change: sent at once; changed: held by the 15-minute throttle, sent when it allowed."
        )?;
        writeln!(
            f,
            "     The two flaps of the day — KSN at 08:12–08:15, TIME_MISMATCH at 17:05–17:09 — came and"
        )?;
        writeln!(
            f,
            "     went inside a throttle window: no notification mentions them.)"
        )?;
        if !self.failed.is_empty() {
            writeln!(f)?;
            writeln!(f, "Failed:")?;
            for ((k, g, r), n) in &self.failed {
                writeln!(f, "  {k:<12} {g:<11} {r:<10} {n:>5}")?;
            }
        }
        writeln!(f)?;
        if let Some(left) = &self.unfinished {
            writeln!(f, "NOT FINISHED — stopped {left}.")?;
        }
        let dlq: Vec<String> = self
            .dlq
            .iter()
            .map(|((s, c), n)| format!("{n} at stage {s} ({c})"))
            .collect();
        writeln!(
            f,
            "Dead-letter topic: {} record(s){}",
            self.dlq_total(),
            if dlq.is_empty() {
                String::new()
            } else {
                format!(": {}", dlq.join(", "))
            }
        )?;
        match (&self.outbox, &self.files) {
            (Some(dir), Some(files)) => {
                writeln!(
                    f,
                    "Outbox: {} — {} .eml files; {}",
                    dir.display(),
                    files.total(),
                    if self.files_match_metrics() {
                        "the files match the service's metrics"
                    } else {
                        "THE FILES DO NOT MATCH the service's metrics"
                    }
                )?;
                writeln!(f, "Open one of each:")?;
                let mut seen = std::collections::BTreeSet::new();
                let mut by_time: Vec<&OutboxMail> = self.mails.iter().collect();
                by_time.sort_by_key(|m| m.date);
                for m in by_time {
                    if seen.insert((m.kind, m.group)) {
                        writeln!(f, "  {:<12} {:<11} {}", m.kind, m.group, m.path.display())?;
                    }
                }
            }
            _ => {
                if let Some(relay) = &self.smtp {
                    writeln!(f, "Mail went to the relay at {relay}.")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid_and_its_templates_compile() {
        let config = demo_config(&DemoOptions::default(), "t").unwrap();
        assert!(crate::render::check(&config).is_empty());
        assert_eq!(config.smtp.transport, TransportKind::File);
    }

    #[test]
    fn a_real_broker_gets_fresh_topics_and_group_per_run() {
        let opts = DemoOptions {
            brokers: Some("kafka:9092".into()),
            smtp: Some("mailpit:1025".into()),
            ..DemoOptions::default()
        };
        let config = demo_config(&opts, "42").unwrap();
        assert_eq!(
            config.kafka.topics.application,
            "demo-42.application-events"
        );
        assert_eq!(config.kafka.group_id, "mailgate-notify-demo-42");
        assert_eq!(config.smtp.transport, TransportKind::Smtp);
        assert_eq!(
            (config.smtp.host.as_str(), config.smtp.port),
            ("mailpit", 1025)
        );
    }

    #[test]
    fn gated_clock_stands_still_until_opened() {
        let start = default_start();
        let c = GatedClock::new(start, 1e6);
        assert_eq!(c.now(), start);
        c.open();
        // Only that it moves forward from start, never back (no wall-clock speed assumed).
        assert!(c.now() >= start);
    }

    #[test]
    fn series_reads_labels_and_values_of_one_metric() {
        let text = "mailgate_notify_x_total{kind=\"rule\",group=\"general\"} 3\nmailgate_notify_x_total{kind=\"bounce\",group=\"admins\"} 0\nmailgate_notify_xy 9\n";
        let m = pairs(by(text, "x_total", ["kind", "group"]));
        assert_eq!(m.len(), 1);
        assert_eq!(m[&("rule".into(), "general".into())], 3);
    }

    #[test]
    fn the_day_starts_at_eight_in_moscow_and_is_deterministic() {
        let start = default_start();
        assert_eq!(start.to_rfc3339(), "2026-12-01T05:00:00+00:00");
        let a = scenario::day(start, chrono::TimeDelta::hours(26));
        let b = scenario::day(start, chrono::TimeDelta::hours(26));
        assert_eq!(a.len(), b.len());
        assert!(a.len() > 100 && a.len() < 600, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
