//! `mailgate-loadgen`: the load side of the end-to-end benchmark (`make bench-e2e`, driven by
//! `benches/e2e/run.py`). Three jobs, each a subcommand:
//!
//! - `topics`: creates a fresh set of the service's topics (sources, dead-letter, compacted state).
//! - `produce`: publishes N gateway events — scan verdicts, bounces and application events in a
//!   fixed mix — in Avro single-object framing (what the gateway sends), at full speed or at a
//!   given rate. Every event carries its creation time in its `cluster_id`
//!   (`lg-<unix-micros>-<seq>`), which every notification template prints, so the driver can
//!   compute exact event-to-accepted latencies from the relay's dumps without trusting the
//!   service's own clock or histogram buckets.
//! - `consume`: the ingest ceiling — a bare rdkafka consumer reading the same topics and doing
//!   nothing with the records.
//!
//! A separate binary rather than a subcommand of `mailgate-notify`: it is a bench tool that an
//! operator never needs, and it builds without recompiling the service.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mailgate_notify::event::EventKind;
use mailgate_notify::produce::{self, Encoder, OutputFormat};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Load generator and bare-consumer ceiling for the end-to-end benchmark.
#[derive(Parser)]
#[command(name = "mailgate-loadgen", version)]
struct Cli {
    /// Bootstrap brokers, `host:port,…`.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic name prefix: topics are `<prefix>-app`, `-bounces`, `-verdicts`, `-dlq`, `-state`.
    #[arg(long, global = true, default_value = "bench")]
    prefix: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the five topics of one run.
    Topics {
        /// Partitions of each source topic (and of the state topic, which mirrors them).
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Publish events and wait for every acknowledgement; prints one `key=value` line.
    Produce {
        /// Number of events.
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        /// Events per second; 0 = as fast as the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Mix as `verdicts:bounces:application` weights.
        #[arg(long, default_value = "8:1:1")]
        mix: String,
        /// First sequence number (so that several `produce` runs never repeat a cluster id).
        #[arg(long, default_value_t = 0)]
        first_seq: u64,
    },
    /// Read the three source topics from the beginning with a fresh group until `count`
    /// records arrived, touching nothing; prints one `key=value` line.
    Consume {
        /// Records to read.
        #[arg(long)]
        count: u64,
        /// Give up after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Records (counted in `count`) read before measuring; `ready` is printed after them,
        /// so a driver can start a paced `produce` once the group has joined.
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        /// Extra librdkafka consumer property `key=value` (repeatable), e.g. the same
        /// `fetch.wait.max.ms` the service is given.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn topic(prefix: &str, what: &str) -> String {
    format!("{prefix}-{what}")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Topics { partitions } => create_topics(&cli.brokers, &cli.prefix, partitions).await,
        Cmd::Produce {
            count,
            rate,
            mix,
            first_seq,
        } => {
            let mix = Mix::parse(&mix)?;
            produce_events(&cli.brokers, &cli.prefix, count, rate, mix, first_seq).await
        }
        Cmd::Consume {
            count,
            timeout,
            warmup,
            set,
        } => consume(&cli.brokers, &cli.prefix, count, timeout, warmup, &set),
    }
}

async fn create_topics(brokers: &str, prefix: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("admin client")?;
    let names: Vec<(String, bool)> = ["app", "bounces", "verdicts", "dlq", "state"]
        .iter()
        .map(|w| (topic(prefix, w), *w == "state"))
        .collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|(n, compacted)| {
            let t = NewTopic::new(n, partitions, TopicReplication::Fixed(1));
            if *compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .context("create_topics")?;
    for r in results {
        if let Err((t, e)) = r {
            anyhow::bail!("create topic {t}: {e}");
        }
    }
    println!("topics={}", names.len());
    Ok(())
}

/// Integer weights of the three event kinds; event `seq` gets its kind from `seq mod total`,
/// so any prefix of the sequence has the mix within one event of each weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mix {
    verdicts: u64,
    bounces: u64,
    application: u64,
}

impl Mix {
    fn parse(s: &str) -> anyhow::Result<Mix> {
        let parts: Vec<u64> = s
            .split(':')
            .map(|p| p.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--mix {s:?}: expected three integers a:b:c"))?;
        match parts[..] {
            [v, b, a] if v + b + a > 0 => Ok(Mix {
                verdicts: v,
                bounces: b,
                application: a,
            }),
            _ => anyhow::bail!("--mix {s:?}: expected three integers a:b:c, not all zero"),
        }
    }

    fn kind_of(&self, seq: u64) -> EventKind {
        let r = seq % (self.verdicts + self.bounces + self.application);
        if r < self.verdicts {
            EventKind::ScanVerdict
        } else if r < self.verdicts + self.bounces {
            EventKind::Bounce
        } else {
            EventKind::Application
        }
    }
}

/// The contract's example events (the test fixtures), each the template of one kind.
struct Templates {
    verdict: Value,
    bounce: Value,
    application: Value,
}

impl Templates {
    fn load() -> anyhow::Result<Templates> {
        let parse = |s: &str| serde_json::from_str::<Value>(s).context("fixture JSON");
        Ok(Templates {
            verdict: parse(include_str!("../tests/fixtures/events/scan_verdict.json"))?,
            bounce: parse(include_str!("../tests/fixtures/events/bounce_event.json"))?,
            application: parse(include_str!(
                "../tests/fixtures/events/application_event.json"
            ))?,
        })
    }

    /// Event `seq` of `kind`, created at `micros` (Unix µs): unique ids, a unique cluster id
    /// carrying the creation time (one cluster per application event, so each one's change
    /// notification goes out at once instead of being throttled), current timestamps.
    fn event(&self, kind: EventKind, seq: u64, micros: u128) -> String {
        let mut v = match kind {
            EventKind::ScanVerdict => self.verdict.clone(),
            EventKind::Bounce => self.bounce.clone(),
            EventKind::Application => self.application.clone(),
        };
        let ms = (micros / 1000) as u64;
        let set = |v: &mut Value, k: &str, x: Value| {
            if let Some(o) = v.as_object_mut() {
                o.insert(k.to_string(), x);
            }
        };
        set(&mut v, "event_id", Value::from(format!("lg-ev-{seq}")));
        set(
            &mut v,
            "cluster_id",
            Value::from(format!("lg-{micros}-{seq}")),
        );
        match kind {
            EventKind::ScanVerdict => {
                set(&mut v, "message_id", Value::from(format!("lg-msg-{seq}")));
                set(&mut v, "received_at", Value::from(ms));
            }
            EventKind::Bounce => {
                set(&mut v, "queue_id", Value::from(format!("LG{seq}")));
                set(&mut v, "message_id", Value::from(format!("lg-msg-{seq}")));
                set(&mut v, "arrival_date", Value::from(ms));
                set(&mut v, "occurred_at", Value::from(ms));
            }
            EventKind::Application => {
                set(&mut v, "occurred_at", Value::from(ms));
            }
        }
        v.to_string()
    }
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

async fn produce_events(
    brokers: &str,
    prefix: &str,
    count: u64,
    rate: f64,
    mix: Mix,
    first_seq: u64,
) -> anyhow::Result<()> {
    let templates = Templates::load()?;
    // Paced runs measure latency: nothing may wait in the producer's linger buffer.
    let mut extra = BTreeMap::new();
    if rate > 0.0 {
        extra.insert("linger.ms".to_string(), "0".to_string());
    }
    let producer = produce::producer(brokers, &extra)?;
    let mut encoder = Encoder::new(OutputFormat::Avro, None)?;
    let topics = [
        (EventKind::ScanVerdict, topic(prefix, "verdicts")),
        (EventKind::Bounce, topic(prefix, "bounces")),
        (EventKind::Application, topic(prefix, "app")),
    ];
    let mut pending = Vec::new();
    let mut failed = 0u64;
    let start = Instant::now();
    for i in 0..count {
        if rate > 0.0 {
            // Pace against the start, not the previous send, so small delays do not add up.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                tokio::time::sleep(due - now).await;
            }
        }
        let seq = first_seq + i;
        let kind = mix.kind_of(seq);
        let json = templates.event(kind, seq, now_micros());
        let event = produce::parse_event(Some(kind), &json)
            .map_err(|e| anyhow::anyhow!("generated event {seq}: {e}"))?;
        let name = &topics
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t.as_str())
            .unwrap_or_default();
        let payload = encoder.encode(name, &event).await?;
        let key = event.key().to_string();
        loop {
            let record = FutureRecord::to(name).key(&key).payload(&payload);
            match producer.send_result(record) {
                Ok(fut) => {
                    pending.push(fut);
                    break;
                }
                // The local queue is full: let deliveries complete, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    eprintln!("event {seq}: {e}");
                    failed += 1;
                    break;
                }
            }
        }
    }
    let sent_in = start.elapsed();
    let mut acknowledged = 0u64;
    for fut in pending {
        match fut.await {
            Ok(Ok(_)) => acknowledged += 1,
            _ => failed += 1,
        }
    }
    let acked_in = start.elapsed();
    println!(
        "produced={acknowledged} failed={failed} send_s={:.3} ack_s={:.3} rate={:.0}",
        sent_in.as_secs_f64(),
        acked_in.as_secs_f64(),
        acknowledged as f64 / acked_in.as_secs_f64().max(1e-9)
    );
    if failed > 0 {
        anyhow::bail!("{failed} events not acknowledged");
    }
    Ok(())
}

/// The ingest ceiling: what the same client library reads from the same broker when nothing is
/// done with the records. Same fetch settings as the service would get by default.
fn consume(
    brokers: &str,
    prefix: &str,
    count: u64,
    timeout: Duration,
    warmup: u64,
    set: &[String],
) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", format!("loadgen-bare-{}", now_micros()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", "8000")
        .set("heartbeat.interval.ms", "500")
        // As the service's consumer (src/ingest/consumer.rs), so the ceiling reads the same way.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().context("consumer")?;
    let names: Vec<String> = ["verdicts", "bounces", "app"]
        .iter()
        .map(|w| topic(prefix, w))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).context("subscribe")?;
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut n = 0u64;
    let mut bytes = 0u64;
    let mut latencies_us: Vec<u64> = Vec::with_capacity(count as usize);
    let mut warm = 0u64;
    while warm < warmup {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {warm} of {warmup} warm-up records");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => warm += 1,
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => {}
        }
    }
    if warmup > 0 {
        use std::io::Write;
        println!("ready");
        std::io::stdout().flush().context("stdout")?;
    }
    let count = count.saturating_sub(warmup);
    while n < count {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {n} of {count} records");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                let payload = m.payload().unwrap_or_default();
                bytes += payload.len() as u64;
                if let Some(created) = created_micros(payload) {
                    latencies_us.push(now_micros().saturating_sub(created) as u64);
                }
            }
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => {}
        }
    }
    let end = Instant::now();
    let span = first.map(|f| end - f).unwrap_or_default().as_secs_f64();
    latencies_us.sort_unstable();
    let q = |p: f64| quantile_ms(&latencies_us, p);
    println!(
        "consumed={n} bytes={bytes} first_after_s={:.3} span_s={span:.3} rate={:.0} lat_p50_ms={:.2} lat_p99_ms={:.2} lat_max_ms={:.2}",
        first.map(|f| f - start).unwrap_or_default().as_secs_f64(),
        // n-1 intervals between the first and the last record.
        (n.saturating_sub(1)) as f64 / span.max(1e-9),
        q(0.50),
        q(0.99),
        q(1.0),
    );
    Ok(())
}

/// The creation time `produce` put into the record's cluster id (`lg-<micros>-<seq>`); Avro
/// and JSON both carry the string as plain UTF-8, so a byte search finds it in either framing.
fn created_micros(payload: &[u8]) -> Option<u128> {
    // The first `lg-` followed by a digit: `event_id` (`lg-ev-…`) may come first.
    let mut rest = payload;
    while let Some(at) = rest.windows(3).position(|w| w == b"lg-") {
        let digits = &rest[at + 3..];
        let end = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        if end > 0 {
            return std::str::from_utf8(&digits[..end]).ok()?.parse().ok();
        }
        rest = digits;
    }
    None
}

/// Nearest-rank quantile of sorted microsecond values, in milliseconds (NaN when empty).
fn quantile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_assigns_kinds_in_proportion_over_one_cycle() {
        let mix = Mix::parse("8:1:1").unwrap();
        let kinds: Vec<EventKind> = (0..10).map(|s| mix.kind_of(s)).collect();
        let count = |k| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count(EventKind::ScanVerdict), 8);
        assert_eq!(count(EventKind::Bounce), 1);
        assert_eq!(count(EventKind::Application), 1);
    }

    #[test]
    fn creation_time_is_found_in_an_avro_record_and_absent_elsewhere() {
        let t = Templates::load().unwrap();
        let json = t.event(EventKind::Bounce, 7, 1_700_000_000_123_456);
        let event = produce::parse_event(Some(EventKind::Bounce), &json).unwrap();
        let store = mailgate_notify::event::SchemaStore::builtin();
        let avro = mailgate_notify::event::encode::encode_single_object(&store, &event).unwrap();
        assert_eq!(created_micros(&avro), Some(1_700_000_000_123_456));
        assert_eq!(created_micros(b"no marker here"), None);
    }

    #[test]
    fn nearest_rank_quantiles_pick_existing_values() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 50.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn mix_rejects_all_zero_and_wrong_arity() {
        assert!(Mix::parse("0:0:0").is_err());
        assert!(Mix::parse("1:2").is_err());
        assert!(Mix::parse("a:b:c").is_err());
    }

    #[test]
    fn generated_events_decode_and_carry_their_creation_time_in_the_cluster_id() {
        let t = Templates::load().unwrap();
        for kind in [
            EventKind::ScanVerdict,
            EventKind::Bounce,
            EventKind::Application,
        ] {
            let json = t.event(kind, 42, 1_700_000_000_123_456);
            let event = produce::parse_event(Some(kind), &json).unwrap();
            assert_eq!(event.kind(), kind);
            let v: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["cluster_id"], "lg-1700000000123456-42");
            assert_eq!(v["event_id"], "lg-ev-42");
        }
    }
}
