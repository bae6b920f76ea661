//! Soak with an auditor (issue 10; `make soak`, not part of `make test`).
//!
//! The whole pipeline on the rig — Tansu, two instances of the real binary in one consumer
//! group, Postfix `smtp-sink` as the relay — for `SOAK_DURATION` (default 10 minutes) while a
//! random fault schedule, replayable from its printed seed (`SOAK_SEED`), SIGKILLs and restarts
//! the instances, stops and restarts the relay on the same port, makes it answer 4xx or slowly for
//! a while, and poison records are produced between the real events. Afterwards an auditor that
//! knows from the produced events which notifications must exist reads every dump of every relay
//! incarnation and the dead-letter topic:
//!
//! - **Rule notifications** are determined exactly: one mail per (verdict, template, address),
//!   with a `Message-ID` we compute ourselves from (event id, group, template, address). Every
//!   required one arrived at least once, every copy carries the computed `Message-ID`, and
//!   nothing else arrived (the sender notices that anti-backscatter suppresses in particular).
//! - **Bounce notices**: which bounces get a notice of their own and which are folded into a
//!   burst summary depends on wall-clock windows and on crashes, so the audit is: no notice for a
//!   disabled class or a bounce of our own notification (neither alone nor in a summary's list),
//!   and every notice-eligible bounce has its own notice or is counted in the `total` of a
//!   delivered summary (summaries counted once per `Message-ID`).
//! - **Application notifications**: the intermediate notifications depend on the throttle and on
//!   timing; what is determined is the end state. The last change notification of each cluster
//!   shows exactly the errors active after the last event (as new or still active).
//! - **Poison records**: every one, identified by (topic, partition, offset), is in the DLQ.
//! - No `panicked` in any log; each instance's peak VmRSS is below `SOAK_RSS_LIMIT_MIB`
//!   (default 256; see RELIABILITY.md "Soak" for why).
//!
//! Duplicates (same `Message-ID` delivered more than once — retries after a crash) are allowed
//! and reported. The figures are printed at the end as a block for RELIABILITY.md.

mod rig;
#[path = "rig/service.rs"]
mod service;

use mailgate_notify::event::Event;
use mailgate_notify::produce::{Encoder, OutputFormat};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Settings

/// Our sender address; its domain names every Message-ID.
const SENDER: &str = "notify@gateway.example";
const DOMAIN: &str = "gateway.example";
const GENERAL: [&str; 2] = ["security@soak.example", "soc@soak.example"];
const AV_TEAM: &str = "av-team@soak.example";
const POSTMASTER: &str = "postmaster@soak.example";
const ADMIN: &str = "admin@soak.example";
const CLUSTERS: usize = 4;
/// One error kind per node slot, from different groups.
const KINDS: [&str; 6] = [
    "AV_BASES_OUTDATED",
    "NODE_UNAVAILABLE",
    "LDAP_CONNECTION_FAILED",
    "LICENSE_EXPIRES_SOON",
    "BACKUP_ALMOST_FULL",
    "DISK_SPACE_LOW",
];

struct Settings {
    duration: Duration,
    seed: u64,
    poison: usize,
    verdict_period: Duration,
    bounce_period: Duration,
    app_period: Duration,
    settle: Duration,
    rss_limit_mib: u64,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix('h') {
        (n, 3600)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else {
        (s, 1)
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_secs(n * mult))
}

impl Settings {
    fn from_env() -> Settings {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let duration = env("SOAK_DURATION")
            .map(|v| {
                parse_duration(&v).unwrap_or_else(|| panic!("SOAK_DURATION={v}: use 10m, 90s"))
            })
            .unwrap_or(Duration::from_secs(600));
        let seed = env("SOAK_SEED")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("SOAK_SEED={v}: a u64")))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        let poison = env("SOAK_POISON")
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("SOAK_POISON={v}: a count"))
            })
            .unwrap_or(1_000);
        let rss_limit_mib = env("SOAK_RSS_LIMIT_MIB")
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("SOAK_RSS_LIMIT_MIB={v}"))
            })
            .unwrap_or(256);
        Settings {
            duration,
            seed,
            poison,
            verdict_period: Duration::from_millis(400),
            bounce_period: Duration::from_millis(1_000),
            app_period: Duration::from_millis(2_000),
            settle: Duration::from_secs(300),
            rss_limit_mib,
        }
    }
}

/// splitmix64: small, seedable, good enough to pick faults and event shapes; a run is replayed
/// by passing the printed seed back as `SOAK_SEED` (the schedule and the events are the same,
/// the interleaving with the service's own timing is not).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo).max(1)))
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the auditor expects, built while producing

#[derive(Default)]
struct Expected {
    /// (gateway message id, recipient) → the Message-ID the notification must carry.
    rules: BTreeMap<(String, String), String>,
    /// Sender notices anti-backscatter must suppress: (gateway message id, sender).
    rules_suppressed: BTreeSet<(String, String)>,
    /// Gateway message ids of bounces that must be notified (alone or in a summary).
    bounces_required: BTreeSet<String>,
    /// Gateway message ids and queue ids of bounces that must never be notified.
    bounces_forbidden: BTreeSet<String>,
    /// Per cluster, the node ids with an active error after the last event.
    app_active: BTreeMap<String, BTreeSet<String>>,
    /// Poison records: (topic, partition, offset) → kind.
    poison: BTreeMap<(String, i32, i64), &'static str>,
    /// Events produced per kind.
    events: BTreeMap<&'static str, usize>,
}

fn fixture(name: &str) -> Value {
    let text =
        std::fs::read_to_string(rig::root().join(format!("tests/fixtures/events/{name}.json")))
            .expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

struct Producer {
    producer: FutureProducer,
    avro: Encoder,
    json: Encoder,
    u: String,
    verdict: Value,
    bounce: Value,
    app: Value,
    /// Per (cluster, node slot): active?
    app_state: BTreeMap<(usize, usize), bool>,
    app_seq: u64,
}

impl Producer {
    fn new(brokers: &str, u: &str) -> Producer {
        Producer {
            producer: mailgate_notify::produce::producer(brokers, &Default::default())
                .expect("producer"),
            avro: Encoder::new(OutputFormat::Avro, None).expect("encoder"),
            json: Encoder::new(OutputFormat::Json, None).expect("encoder"),
            u: u.to_string(),
            verdict: fixture("scan_verdict"),
            bounce: fixture("bounce_event"),
            app: fixture("application_event"),
            app_state: BTreeMap::new(),
            app_seq: 0,
        }
    }

    fn topic(&self, t: &str) -> String {
        format!("{t}-{}", self.u)
    }

    async fn send_raw(&self, topic: &str, key: &str, payload: &[u8]) -> (i32, i64) {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }

    /// Encodes `v` (Avro single-object or JSON, at random) and produces it.
    async fn send_event(&mut self, t: &str, v: &Value, rng: &mut Rng) -> Event {
        let topic = self.topic(t);
        let event = mailgate_notify::produce::parse_event(None, &v.to_string())
            .unwrap_or_else(|e| panic!("our own event does not parse: {e}: {v}"));
        let enc = if rng.chance(70) {
            &mut self.avro
        } else {
            &mut self.json
        };
        let bytes = enc.encode(&topic, &event).await.expect("encode");
        self.send_raw(&topic, event.key(), &bytes).await;
        event
    }

    async fn verdict(&mut self, i: usize, rng: &mut Rng, exp: &mut Expected) {
        let mut v = self.verdict.clone();
        let event_id = format!("soak-sv-{i}");
        let gw = format!("soak-msg-{i}");
        v["event_id"] = event_id.clone().into();
        v["message_id"] = gw.clone().into();
        let (sender, authenticated) = match rng.below(3) {
            0 => (format!("ext{}@sender.example", rng.below(50)), true),
            1 => (format!("ext{}@sender.example", rng.below(50)), false),
            _ => (String::new(), true),
        };
        v["sender"] = sender.clone().into();
        v["sender_authenticated"] = authenticated.into();
        let mut affected: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let a = format!("u{}@corp.example", rng.below(20));
            if !affected.contains(&a) {
                affected.push(a);
            }
        }
        v["all_recipients"] = json!(affected);
        let av = rng.chance(67);
        let phish = !av || rng.chance(50);
        let mut rules = Vec::new();
        if av {
            let mut r = self.verdict["triggered_rules"][0].clone();
            r["rule_id"] = "rule-av".into();
            r["affected_recipients"] = json!(affected);
            rules.push(r);
        }
        if phish {
            let mut r = self.verdict["triggered_rules"][1].clone();
            r["rule_id"] = "rule-phish".into();
            r["affected_recipients"] = json!([affected[0]]);
            rules.push(r);
        }
        v["triggered_rules"] = json!(rules);
        self.send_event("verdicts", &v, rng).await;

        let mut want = |group: &str, template: &str, rcpt: &str| {
            let ids = mailgate_notify::render::mime::ids(
                &event_id,
                "rule",
                group,
                template,
                &[rcpt.to_string()],
                DOMAIN,
            );
            exp.rules
                .insert((gw.clone(), rcpt.to_string()), ids.message_id);
        };
        for g in GENERAL {
            want("general", "rule/general", g);
        }
        if av {
            for a in &affected {
                want("recipients", "rule/recipients", a);
            }
            want("additional", "rule/additional", AV_TEAM);
        }
        if phish && !sender.is_empty() {
            if authenticated {
                want("sender", "rule/sender", &sender);
            } else {
                exp.rules_suppressed.insert((gw.clone(), sender.clone()));
            }
        }
        *exp.events.entry("scan_verdict").or_default() += 1;
    }

    async fn bounce(&mut self, i: usize, rng: &mut Rng, exp: &mut Expected) {
        let mut v = self.bounce.clone();
        let gw = format!("soak-bq-{i}");
        let queue = format!("SQ{i:06}X");
        v["event_id"] = format!("soak-be-{i}").into();
        v["queue_id"] = queue.clone().into();
        v["message_id"] = gw.clone().into();
        let roll = rng.below(100);
        let (class, own) = match roll {
            0..=59 => ("RESOURCE", false),
            60..=79 => ("SOFTWARE", false),
            80..=89 => ("DELAY", false),
            _ => ("RESOURCE", true),
        };
        v["class"] = class.into();
        if own {
            // A bounce of one of our own notifications: loop protection.
            v["sender"] = SENDER.into();
        }
        self.send_event("bounces", &v, rng).await;
        if class == "DELAY" || own {
            exp.bounces_forbidden.insert(gw);
            exp.bounces_forbidden.insert(queue);
        } else {
            exp.bounces_required.insert(gw);
        }
        *exp.events.entry("bounce").or_default() += 1;
    }

    async fn app_event(&mut self, cluster: usize, slot: usize, raise: bool, rng: &mut Rng) {
        self.app_seq += 1;
        let mut v = self.app.clone();
        v["event_id"] = format!("soak-ae-{}", self.app_seq).into();
        v["cluster_id"] = format!("soak-c{cluster}").into();
        v["node"]["node_id"] = format!("soak-c{cluster}-n{slot}").into();
        v["kind"] = KINDS[slot].into();
        v["group"] = match slot {
            0 => "PROTECTION",
            1 => "SYNCHRONIZATION",
            2 => "LDAP_INTEGRATION",
            3 => "LICENSING",
            4 => "BACKUP",
            _ => "SYSTEM",
        }
        .into();
        v["control_timezone"] = "UTC".into();
        v["state"] = if raise { "RAISED" } else { "RESOLVED" }.into();
        // Strictly increasing occurrence times: no event is stale relative to an earlier one.
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z").expect("base time")
            + chrono::TimeDelta::seconds(self.app_seq as i64);
        v["occurred_at"] = at.to_rfc3339().into();
        self.send_event("app", &v, rng).await;
        self.app_state.insert((cluster, slot), raise);
    }

    async fn app(&mut self, rng: &mut Rng, exp: &mut Expected) {
        let cluster = rng.below(CLUSTERS as u64) as usize;
        let slot = rng.below(KINDS.len() as u64) as usize;
        let active = self
            .app_state
            .get(&(cluster, slot))
            .copied()
            .unwrap_or(false);
        // An active error is resolved or occurs again; an inactive one is raised.
        let raise = !active || rng.chance(40);
        self.app_event(cluster, slot, raise, rng).await;
        *exp.events.entry("application").or_default() += 1;
    }

    /// Leaves every cluster with at least one active error (so that its last notification has
    /// something to show) and records the final state.
    async fn app_finish(&mut self, rng: &mut Rng, exp: &mut Expected) {
        for c in 0..CLUSTERS {
            let any = (0..KINDS.len()).any(|s| self.app_state.get(&(c, s)) == Some(&true));
            if !any {
                self.app_event(c, 0, true, rng).await;
                *exp.events.entry("application").or_default() += 1;
            }
        }
        for c in 0..CLUSTERS {
            let active: BTreeSet<String> = (0..KINDS.len())
                .filter(|s| self.app_state.get(&(c, *s)) == Some(&true))
                .map(|s| format!("soak-c{c}-n{s}"))
                .collect();
            exp.app_active.insert(format!("soak-c{c}"), active);
        }
    }

    /// One poison record of a random kind, on a random input topic.
    async fn poison(&mut self, i: usize, rng: &mut Rng, exp: &mut Expected) {
        let inputs = ["app", "bounces", "verdicts"];
        let t = inputs[rng.below(3) as usize];
        let store = mailgate_notify::event::SchemaStore::builtin();
        let (kind, payload): (&'static str, Vec<u8>) = match rng.below(10) {
            0 => {
                let mut b: Vec<u8> = (0..1 + rng.below(200)).map(|_| rng.next() as u8).collect();
                // Not one of the three framings' first bytes.
                b[0] = b'\x17';
                ("random_bytes", b)
            }
            1 => ("empty", Vec::new()),
            2 => (
                "truncated_json",
                br#"{"event_id": "x", "cluster_id": "#.to_vec(),
            ),
            3 => (
                "json_wrong_schema",
                br#"{"hello": "world", "n": 1}"#.to_vec(),
            ),
            4 => {
                // A valid event of another kind (JSON) on this topic.
                let other = if t == "verdicts" {
                    &self.bounce
                } else {
                    &self.verdict
                };
                ("json_wrong_kind", other.to_string().into_bytes())
            }
            5 => {
                let mut b = vec![0xC3, 0x01];
                b.extend((0..8).map(|_| rng.next() as u8));
                b.extend_from_slice(b"datum");
                ("avro_unknown_fingerprint", b)
            }
            6 => {
                // A valid single-object Avro event of another record type on this topic.
                let other = if t == "app" { &self.bounce } else { &self.app };
                let event = mailgate_notify::produce::parse_event(None, &other.to_string())
                    .expect("fixture event");
                let b = mailgate_notify::event::encode::encode_single_object(&store, &event)
                    .expect("encode");
                ("avro_wrong_record", b)
            }
            7 => {
                // The right fingerprint, a truncated datum.
                let own = match t {
                    "app" => &self.app,
                    "bounces" => &self.bounce,
                    _ => &self.verdict,
                };
                let event = mailgate_notify::produce::parse_event(None, &own.to_string())
                    .expect("fixture event");
                let mut b = mailgate_notify::event::encode::encode_single_object(&store, &event)
                    .expect("encode");
                b.truncate(10 + (b.len() - 10) / 3);
                ("avro_truncated", b)
            }
            8 => (
                "confluent_without_registry",
                vec![0x00, 0x00, 0x00, 0x00, 0x2A, 0x02, 0x04],
            ),
            _ => {
                // Oversize: 300 KiB of not-JSON behind a `{`.
                let mut b = vec![b'{'];
                b.extend((0..300 * 1024).map(|k| b'a' + (k % 26) as u8));
                ("oversize", b)
            }
        };
        let topic = self.topic(t);
        let (p, o) = self
            .send_raw(&topic, &format!("poison-{i}"), &payload)
            .await;
        exp.poison.insert((topic, p, o), kind);
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL one instance, restart it after a pause.
    Kill,
    /// SIGKILL both instances.
    KillBoth,
    /// Stop the relay, start it again on the same port.
    RelayDown,
    /// The relay answers 4xx (or 421 and disconnects) for a while.
    Relay4xx,
    /// The relay answers slowly for a while.
    RelaySlow,
}

#[derive(Default, Debug)]
struct FaultCounts {
    sigkills: usize,
    relay_outages: usize,
    relay_4xx: usize,
    relay_slow: usize,
    relay_down_time: Duration,
    relay_4xx_time: Duration,
    relay_slow_time: Duration,
}

struct Instances {
    dir: PathBuf,
    configs: [PathBuf; 2],
    running: [Option<service::Service>; 2],
    pids: Arc<Mutex<[Option<u32>; 2]>>,
}

impl Instances {
    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("instance-{i}.log"))
    }
    fn start(&mut self, i: usize) {
        let s = service::Service::start(&self.configs[i], &self.log(i));
        self.pids.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(s.pid());
        self.running[i] = Some(s);
    }
    fn kill(&mut self, i: usize) {
        self.pids.lock().unwrap_or_else(|p| p.into_inner())[i] = None;
        if let Some(mut s) = self.running[i].take() {
            s.kill9();
        }
    }
    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }
}

struct Relay {
    port: u16,
    current: Option<rig::SmtpSink>,
    retired: Vec<rig::SmtpSink>,
}

impl Relay {
    fn restart(&mut self, flags: &[&str]) {
        self.stop();
        self.current = Some(rig::SmtpSink::start_on(self.port, flags));
    }
    fn stop(&mut self) {
        if let Some(mut s) = self.current.take() {
            s.stop();
            self.retired.push(s);
        }
    }
    fn messages(&self) -> Vec<rig::SinkMessage> {
        self.retired
            .iter()
            .chain(self.current.iter())
            .flat_map(|s| s.messages())
            .collect()
    }
}

/// One life of one instance (between its start and its SIGKILL or exit), as sampled.
struct Incarnation {
    instance: usize,
    pid: u32,
    born: Instant,
    lifetime: Duration,
    at_30s_kib: Option<u64>,
    last_kib: u64,
    max_kib: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The audit

/// The text/plain part of a dumped message, quoted-printable decoded.
fn text_part(m: &rig::SinkMessage) -> String {
    let raw = String::from_utf8_lossy(&m.message).replace("\r\n", "\n");
    let start = raw
        .find("Content-Type: text/plain")
        .map(|i| &raw[i..])
        .unwrap_or(&raw);
    let body_start = start.find("\n\n").map(|i| i + 2).unwrap_or(0);
    let body = &start[body_start..];
    let body = body.split("\n--=_mailgate_").next().unwrap_or(body);
    qp_decode(body)
}

fn qp_decode(s: &str) -> String {
    let s = s.replace("=\n", "");
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether smtp-sink wrote the whole message (a relay killed mid-DATA leaves a partial dump of a
/// message it never accepted; the service retries those). Every notification is
/// multipart/alternative, so a complete one ends with its closing boundary.
fn complete(m: &rig::SinkMessage) -> bool {
    String::from_utf8_lossy(&m.message)
        .trim_end()
        .ends_with("--")
}

#[derive(Default, Debug)]
struct Audit {
    dumps: usize,
    /// Dumps with no message (a transaction the relay refused before DATA).
    refused: usize,
    /// Dumps of a message cut off (the relay killed mid-DATA; never accepted).
    incomplete: usize,
    distinct_message_ids: usize,
    duplicates: usize,
    rule_required: usize,
    rule_delivered: usize,
    rule_lost: Vec<(String, String)>,
    rule_unexpected: Vec<(String, String)>,
    rule_suppressed_arrived: usize,
    rule_wrong_id: Vec<String>,
    bounce_required: usize,
    bounce_alone: usize,
    bounce_summaries: usize,
    bounce_summarised: u64,
    bounce_unaccounted: usize,
    bounce_forbidden_arrived: Vec<String>,
    app_mails: usize,
    app_wrong: Vec<String>,
    other_mails: Vec<String>,
    poison: usize,
    poison_missing: usize,
    dlq_records: usize,
    dlq_decode: usize,
    dlq_deliver: usize,
    dlq_by_code: BTreeMap<String, usize>,
}

impl Audit {
    fn passed(&self) -> bool {
        self.rule_lost.is_empty()
            && self.rule_unexpected.is_empty()
            && self.rule_suppressed_arrived == 0
            && self.rule_wrong_id.is_empty()
            && self.bounce_unaccounted == 0
            && self.bounce_forbidden_arrived.is_empty()
            && self.app_wrong.is_empty()
            && self.other_mails.is_empty()
            && self.poison_missing == 0
    }
}

fn audit(exp: &Expected, msgs: &[rig::SinkMessage], dlq: &[rig::Record]) -> Audit {
    let mut a = Audit {
        dumps: msgs.len(),
        rule_required: exp.rules.len(),
        bounce_required: exp.bounces_required.len(),
        poison: exp.poison.len(),
        ..Audit::default()
    };
    let mut by_mid: HashMap<String, usize> = HashMap::new();
    let mut rules: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut alone: BTreeSet<String> = BTreeSet::new();
    let mut summaries: BTreeMap<String, u64> = BTreeMap::new();
    // Latest change notification per cluster: (mtime, text).
    let mut app_last: BTreeMap<String, (std::time::SystemTime, String)> = BTreeMap::new();
    for m in msgs {
        let Some(mid) = m.header("Message-ID") else {
            // A transaction the relay refused or cut before the data: no message.
            a.refused += 1;
            continue;
        };
        if !complete(m) {
            a.incomplete += 1;
            continue;
        }
        *by_mid.entry(mid.clone()).or_default() += 1;
        let rcpt = m.rcpt_to.join(",");
        let gw = m.header("X-Mailgate-Message-ID");
        if rcpt == POSTMASTER {
            let text = text_part(m);
            match gw {
                Some(id) => {
                    if exp.bounces_required.contains(&id) {
                        alone.insert(id);
                    } else {
                        a.bounce_forbidden_arrived.push(id);
                    }
                }
                None => {
                    // A burst summary: its total, and no forbidden bounce in its list.
                    let total = text
                        .split("reported")
                        .nth(1)
                        .and_then(|t| t.split_whitespace().next())
                        .and_then(|n| n.parse::<u64>().ok());
                    match total {
                        Some(t) => {
                            summaries.insert(mid.clone(), t);
                        }
                        None => a
                            .other_mails
                            .push(format!("bounce mail without total: {mid}")),
                    }
                    for f in &exp.bounces_forbidden {
                        if f.starts_with("SQ") && text.contains(f.as_str()) {
                            a.bounce_forbidden_arrived.push(f.clone());
                        }
                    }
                }
            }
        } else if rcpt == ADMIN {
            a.app_mails += 1;
            let text = text_part(m);
            let Some(rest) = text.split("gateway cluster ").nth(1) else {
                continue; // a digest (a run across midnight UTC): not audited
            };
            let cluster = rest.split_whitespace().next().unwrap_or("").to_string();
            if !rest.contains("has changed") {
                continue;
            }
            let mtime = std::fs::metadata(&m.path)
                .and_then(|md| md.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let e = app_last
                .entry(cluster)
                .or_insert((std::time::UNIX_EPOCH, String::new()));
            if mtime >= e.0 {
                *e = (mtime, text);
            }
        } else if let Some(gw) = gw {
            if exp.rules_suppressed.contains(&(gw.clone(), rcpt.clone())) {
                a.rule_suppressed_arrived += 1;
            }
            rules.entry((gw, rcpt)).or_default().insert(mid);
        } else {
            a.other_mails.push(format!("{rcpt}: {mid}"));
        }
    }
    a.distinct_message_ids = by_mid.len();
    a.duplicates = by_mid.values().map(|n| n - 1).sum();
    for (key, want) in &exp.rules {
        match rules.get(key) {
            None => a.rule_lost.push(key.clone()),
            Some(ids) => {
                a.rule_delivered += 1;
                if ids.len() != 1 || !ids.contains(want) {
                    a.rule_wrong_id
                        .push(format!("{key:?}: want {want}, got {ids:?}"));
                }
            }
        }
    }
    for key in rules.keys() {
        if !exp.rules.contains_key(key) {
            a.rule_unexpected.push(key.clone());
        }
    }
    a.bounce_alone = alone.len();
    a.bounce_summaries = summaries.len();
    a.bounce_summarised = summaries.values().sum();
    let not_alone = exp.bounces_required.len() - alone.len();
    a.bounce_unaccounted = (not_alone as u64).saturating_sub(a.bounce_summarised) as usize;
    for (cluster, active) in &exp.app_active {
        let Some((_, text)) = app_last.get(cluster) else {
            a.app_wrong
                .push(format!("{cluster}: no change notification"));
            continue;
        };
        // "[status] kind text" then "  Node: <node_id>, ip:port".
        let mut shown = BTreeSet::new();
        let mut status = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                status = rest.split(']').next().unwrap_or("").to_string();
            } else if let Some(rest) = line.trim_start().strip_prefix("Node:") {
                let node = rest.trim().split(',').next().unwrap_or("").to_string();
                if status != "resolved" {
                    shown.insert(node);
                }
            }
        }
        if &shown != active {
            a.app_wrong.push(format!(
                "{cluster}: last notification shows {shown:?}, active {active:?}"
            ));
        }
    }
    let mut found = BTreeSet::new();
    for r in dlq {
        a.dlq_records += 1;
        match r.header("x-dlq-stage") {
            Some("decode") => a.dlq_decode += 1,
            Some("deliver") => a.dlq_deliver += 1,
            _ => {}
        }
        *a.dlq_by_code
            .entry(r.header("x-dlq-error-code").unwrap_or("?").to_string())
            .or_default() += 1;
        let pos = (
            r.header("x-dlq-topic").unwrap_or("").to_string(),
            r.header("x-dlq-partition")
                .and_then(|p| p.parse().ok())
                .unwrap_or(-1),
            r.header("x-dlq-offset")
                .and_then(|p| p.parse().ok())
                .unwrap_or(-1),
        );
        if exp.poison.contains_key(&pos) {
            found.insert(pos);
        }
    }
    a.poison_missing = exp.poison.len() - found.len();
    a
}

// ---------------------------------------------------------------------------------------------

fn config(broker: &str, u: &str, port: u16) -> String {
    let rest = format!(
        r#"
        [smtp]
        host = "127.0.0.1"
        port = {port}
        pool_size = 4
        connect_timeout = "2s"
        command_timeout = "10s"
        [smtp.retry]
        initial = "200ms"
        max = "3s"
        [application]
        throttle = "3s"
        [[application.recipients]]
        addresses = ["{ADMIN}"]
        [bounce.burst]
        window = "20s"
        max = 8
        [[bounce.recipients]]
        addresses = ["{POSTMASTER}"]
        [rules]
        general_list = ["{g0}", "{g1}"]
        [rules.default]
        notify = ["general", "sender"]
        [[rules.rule]]
        id = "rule-av"
        notify = ["general", "recipients", "additional"]
        additional = ["{AV_TEAM}"]
        "#,
        g0 = GENERAL[0],
        g1 = GENERAL[1],
    );
    rig::service_toml(broker, u, "soak", "", &rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes long; run with `make soak` (SOAK_DURATION, SOAK_SEED, SOAK_POISON)"]
async fn soak_under_random_faults_loses_no_notification_and_dead_letters_every_poison_record() {
    let s = Settings::from_env();
    println!(
        "soak: duration {:?}, seed {} (replay: SOAK_SEED={}), poison {}, load: {}",
        s.duration,
        s.seed,
        s.seed,
        s.poison,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut rng = Rng(s.seed);
    let broker = rig::Broker::start();
    let u = rig::unique();
    for t in ["app", "bounces", "verdicts"] {
        broker.create_topic(&format!("{t}-{u}"), 4, false).await;
    }
    broker.create_topic(&format!("dlq-{u}"), 1, false).await;
    let port = rig::free_port();
    let mut relay = Relay {
        port,
        current: None,
        retired: Vec::new(),
    };
    relay.restart(&[]);
    // Configs and logs stay in target/soak-<seed>/ for a look after the run.
    let dir = rig::root().join(format!("target/soak-{}", s.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("soak dir");
    println!("soak: configs and logs in {}", dir.display());
    let toml = config(&broker.brokers(), &u, port);
    let configs = [0, 1].map(|i| {
        let p = dir.join(format!("instance-{i}.toml"));
        std::fs::write(&p, &toml).expect("config");
        p
    });
    let pids = Arc::new(Mutex::new([None, None]));
    let mut inst = Instances {
        dir: dir.clone(),
        configs,
        running: [None, None],
        pids: pids.clone(),
    };
    inst.start(0);
    inst.start(1);

    // Memory sampler: VmRSS of each live instance every 500 ms, per incarnation (a SIGKILL
    // starts a new one), so that growth over a long life shows next to the peak.
    let mem: Arc<Mutex<Vec<Incarnation>>> = Arc::new(Mutex::new(Vec::new()));
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pids, mem, stop) = (pids.clone(), mem.clone(), stop_sampling.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let now = *pids.lock().unwrap_or_else(|p| p.into_inner());
                for (i, pid) in now.iter().enumerate() {
                    let Some(pid) = *pid else { continue };
                    let Some(kib) = rss_kib(pid) else { continue };
                    let mut m = mem.lock().unwrap_or_else(|p| p.into_inner());
                    let pos = m.iter().position(|x| x.pid == pid);
                    let inc = match pos {
                        Some(p) => &mut m[p],
                        None => {
                            m.push(Incarnation {
                                instance: i,
                                pid,
                                born: Instant::now(),
                                lifetime: Duration::ZERO,
                                at_30s_kib: None,
                                last_kib: 0,
                                max_kib: 0,
                            });
                            let last = m.len() - 1;
                            &mut m[last]
                        }
                    };
                    inc.lifetime = inc.born.elapsed();
                    if inc.at_30s_kib.is_none() && inc.lifetime >= Duration::from_secs(30) {
                        inc.at_30s_kib = Some(kib);
                    }
                    inc.last_kib = kib;
                    inc.max_kib = inc.max_kib.max(kib);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // The producer: events at fixed rates, poison spread evenly over the run.
    let start = Instant::now();
    let producer_task = {
        let (brokers, u, duration) = (broker.brokers(), u.clone(), s.duration);
        let (vp, bp, ap, poison_n) = (s.verdict_period, s.bounce_period, s.app_period, s.poison);
        let mut rng = Rng(s.seed ^ 0x5EED_0FEE_7E57);
        tokio::spawn(async move {
            let mut exp = Expected::default();
            let mut p = Producer::new(&brokers, &u);
            let (mut nv, mut nb, mut na, mut np) = (0usize, 0usize, 0usize, 0usize);
            // Production stops a little before the faults do, so the last events meet faults too.
            let until = duration.saturating_sub(Duration::from_secs(15));
            loop {
                let e = start.elapsed();
                if e >= until {
                    break;
                }
                let frac = e.as_secs_f64() / until.as_secs_f64();
                while nv < (e.as_millis() / vp.as_millis()) as usize {
                    p.verdict(nv, &mut rng, &mut exp).await;
                    nv += 1;
                }
                while nb < (e.as_millis() / bp.as_millis()) as usize {
                    p.bounce(nb, &mut rng, &mut exp).await;
                    nb += 1;
                }
                while na < (e.as_millis() / ap.as_millis()) as usize {
                    p.app(&mut rng, &mut exp).await;
                    na += 1;
                }
                while np < ((poison_n as f64) * frac) as usize {
                    p.poison(np, &mut rng, &mut exp).await;
                    np += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            while np < poison_n {
                p.poison(np, &mut rng, &mut exp).await;
                np += 1;
            }
            p.app_finish(&mut rng, &mut exp).await;
            exp
        })
    };

    // The fault schedule: at least 10 SIGKILLs, 5 relay outages, 3 4xx periods, 2 slow periods,
    // more for longer runs, shuffled and spread over the run.
    let secs = s.duration.as_secs();
    let mut faults = Vec::new();
    faults.extend(std::iter::repeat_n(
        Fault::Kill,
        (secs / 50).max(9) as usize,
    ));
    faults.push(Fault::KillBoth);
    faults.extend(std::iter::repeat_n(
        Fault::RelayDown,
        (secs / 100).max(5) as usize,
    ));
    faults.extend(std::iter::repeat_n(
        Fault::Relay4xx,
        (secs / 150).max(3) as usize,
    ));
    faults.extend(std::iter::repeat_n(
        Fault::RelaySlow,
        (secs / 200).max(2) as usize,
    ));
    rng.shuffle(&mut faults);
    let phase_start = Duration::from_secs(10).min(s.duration / 10);
    let phase = s
        .duration
        .saturating_sub(phase_start + Duration::from_secs(5));
    let slot = phase / faults.len() as u32;
    let mut counts = FaultCounts::default();
    for (i, f) in faults.iter().enumerate() {
        let at = phase_start + slot * i as u32 + rng.millis(0, (slot.as_millis() as u64) / 4);
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let hold = rng
            .millis(3_000, 12_000)
            .min(slot.mul_f64(0.6))
            .max(Duration::from_millis(500));
        let t0 = Instant::now();
        match f {
            Fault::Kill => {
                // Mostly instance 0: instance 1 then lives for minutes, which gives the memory
                // bound a long life to watch.
                let which = usize::from(rng.chance(10));
                inst.kill(which);
                counts.sigkills += 1;
                tokio::time::sleep(rng.millis(500, 4_000).min(hold)).await;
                inst.start(which);
                println!(
                    "soak {:>5.1}s: SIGKILL instance {which}, restarted",
                    at.as_secs_f64()
                );
            }
            Fault::KillBoth => {
                inst.kill(0);
                inst.kill(1);
                counts.sigkills += 2;
                tokio::time::sleep(rng.millis(500, 3_000).min(hold)).await;
                inst.start(0);
                inst.start(1);
                println!(
                    "soak {:>5.1}s: SIGKILL both instances, restarted",
                    at.as_secs_f64()
                );
            }
            Fault::RelayDown => {
                relay.stop();
                tokio::time::sleep(hold).await;
                relay.restart(&[]);
                counts.relay_outages += 1;
                counts.relay_down_time += t0.elapsed();
                println!("soak {:>5.1}s: relay down for {hold:?}", at.as_secs_f64());
            }
            Fault::Relay4xx => {
                let flags: &[&str] = match rng.below(3) {
                    0 => &["-r", "RCPT"],
                    1 => &["-r", "MAIL"],
                    _ => &["-Q", "DATA"],
                };
                relay.restart(flags);
                tokio::time::sleep(hold).await;
                relay.restart(&[]);
                counts.relay_4xx += 1;
                counts.relay_4xx_time += t0.elapsed();
                println!(
                    "soak {:>5.1}s: relay {flags:?} for {hold:?}",
                    at.as_secs_f64()
                );
            }
            Fault::RelaySlow => {
                relay.restart(&["-W", "DATA:1", "-W", "RCPT:1:30"]);
                tokio::time::sleep(hold).await;
                relay.restart(&[]);
                counts.relay_slow += 1;
                counts.relay_slow_time += t0.elapsed();
                println!("soak {:>5.1}s: relay slow for {hold:?}", at.as_secs_f64());
            }
        }
    }
    let exp = producer_task.await.expect("producer task");
    let produced_at = start.elapsed();
    println!(
        "soak: production and faults done at {:.0}s; settling (up to {:?})",
        produced_at.as_secs_f64(),
        s.settle
    );

    // Settle: everything required arrives; then a quiet moment and the final audit.
    let dlq_topic = format!("dlq-{u}");
    let settle_deadline = Instant::now() + s.settle;
    loop {
        let a = audit(&exp, &relay.messages(), &broker.read_to_end(&dlq_topic));
        if a.passed() || Instant::now() >= settle_deadline {
            break;
        }
        println!(
            "soak settling: rule lost {}, bounces unaccounted {}, application wrong {}, poison missing {}",
            a.rule_lost.len(),
            a.bounce_unaccounted,
            a.app_wrong.len(),
            a.poison_missing
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let settled_after = start.elapsed() - produced_at;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let final_audit = audit(&exp, &relay.messages(), &broker.read_to_end(&dlq_topic));

    // Orderly stop: both drain and exit 0.
    let mut exits = Vec::new();
    for i in 0..2 {
        if let Some(s) = inst.running[i].as_ref() {
            s.sigterm();
        }
    }
    for i in 0..2 {
        if let Some(mut s) = inst.running[i].take() {
            exits.push(s.wait_exit(Duration::from_secs(40)).and_then(|e| e.code()));
        }
    }
    stop_sampling.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = sampler.await;
    let incarnations = std::mem::take(&mut *mem.lock().unwrap_or_else(|p| p.into_inner()));
    let mut rss = [0u64; 2];
    let mut longest: [Option<&Incarnation>; 2] = [None, None];
    for inc in &incarnations {
        rss[inc.instance] = rss[inc.instance].max(inc.max_kib);
        if longest[inc.instance].is_none_or(|l| l.lifetime < inc.lifetime) {
            longest[inc.instance] = Some(inc);
        }
    }
    let panics: usize = (0..2)
        .map(|i| inst.log_text(i).matches("panicked").count())
        .sum();
    let log_levels: Vec<(usize, usize)> = (0..2)
        .map(|i| {
            let t = inst.log_text(i);
            (t.matches(" ERROR ").count(), t.matches(" WARN ").count())
        })
        .collect();

    let a = &final_audit;
    println!("==== soak figures (seed {}) ====", s.seed);
    println!(
        "run: {:?} producing + faults, settled {:.0}s later; load at end: {}",
        produced_at,
        settled_after.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "faults: {} SIGKILLs, {} relay outages ({:.0}s), {} relay 4xx periods ({:.0}s), {} slow-relay periods ({:.0}s)",
        counts.sigkills,
        counts.relay_outages,
        counts.relay_down_time.as_secs_f64(),
        counts.relay_4xx,
        counts.relay_4xx_time.as_secs_f64(),
        counts.relay_slow,
        counts.relay_slow_time.as_secs_f64()
    );
    println!(
        "events: {:?}; poison records: {}",
        exp.events,
        exp.poison.len()
    );
    let mut poison_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for k in exp.poison.values() {
        *poison_kinds.entry(k).or_default() += 1;
    }
    println!("poison by kind: {poison_kinds:?}");
    println!(
        "rule notifications: required {}, delivered {}, lost {}, unexpected {}, suppressed-but-arrived {} (suppressed sender notices: {}), wrong Message-ID {}",
        a.rule_required,
        a.rule_delivered,
        a.rule_lost.len(),
        a.rule_unexpected.len(),
        a.rule_suppressed_arrived,
        exp.rules_suppressed.len(),
        a.rule_wrong_id.len()
    );
    println!(
        "bounces: notice-eligible {}, notified alone {}, in {} summaries counting {}, unaccounted {}, forbidden (disabled/loop: {}) notified {}",
        a.bounce_required,
        a.bounce_alone,
        a.bounce_summaries,
        a.bounce_summarised,
        a.bounce_unaccounted,
        exp.bounces_forbidden.len() / 2,
        a.bounce_forbidden_arrived.len()
    );
    println!(
        "application: {} change/digest mails, clusters with a wrong final notification: {}",
        a.app_mails,
        a.app_wrong.len()
    );
    println!(
        "mail: {} dumps ({} refused before DATA, {} cut off), {} distinct Message-IDs, {} duplicates",
        a.dumps, a.refused, a.incomplete, a.distinct_message_ids, a.duplicates
    );
    println!(
        "dlq: {} records ({} decode, {} deliver) by code {:?}; poison records {}, missing from the DLQ {}",
        a.dlq_records, a.dlq_decode, a.dlq_deliver, a.dlq_by_code, a.poison, a.poison_missing
    );
    println!(
        "memory: peak VmRSS instance 0 {} MiB, instance 1 {} MiB (limit {} MiB), {} incarnations sampled",
        rss[0] / 1024,
        rss[1] / 1024,
        s.rss_limit_mib,
        incarnations.len()
    );
    for l in longest.iter().flatten() {
        println!(
            "memory: longest life of instance {}: {:.0}s, VmRSS at 30s {} MiB, at the end {} MiB, peak {} MiB",
            l.instance,
            l.lifetime.as_secs_f64(),
            l.at_30s_kib.unwrap_or(0) / 1024,
            l.last_kib / 1024,
            l.max_kib / 1024
        );
    }
    println!("panics: {panics}; (ERROR, WARN) log lines per instance: {log_levels:?}; exit codes after SIGTERM: {exits:?}");
    println!("==== end ====");

    let show = |v: &[(String, String)]| format!("{:?}", &v[..v.len().min(10)]);
    assert!(
        a.rule_lost.is_empty(),
        "lost rule notifications: {} e.g. {}",
        a.rule_lost.len(),
        show(&a.rule_lost)
    );
    assert!(
        a.rule_unexpected.is_empty(),
        "unexpected rule notifications: {}",
        show(&a.rule_unexpected)
    );
    assert_eq!(
        a.rule_suppressed_arrived, 0,
        "suppressed sender notices arrived"
    );
    assert!(
        a.rule_wrong_id.is_empty(),
        "Message-ID not deterministic: {:?}",
        &a.rule_wrong_id[..a.rule_wrong_id.len().min(5)]
    );
    assert_eq!(
        a.bounce_unaccounted, 0,
        "bounces neither notified nor summarised"
    );
    assert!(
        a.bounce_forbidden_arrived.is_empty(),
        "suppressed bounces notified: {:?}",
        a.bounce_forbidden_arrived
    );
    assert!(
        a.app_wrong.is_empty(),
        "application end state: {:?}",
        a.app_wrong
    );
    assert!(
        a.other_mails.is_empty(),
        "mails nobody expects: {:?}",
        a.other_mails
    );
    assert_eq!(a.poison_missing, 0, "poison records missing from the DLQ");
    assert_eq!(panics, 0, "panic in a log (see {})", dir.display());
    for (i, kib) in rss.iter().enumerate() {
        assert!(*kib > 0, "instance {i} never sampled");
        assert!(
            kib / 1024 <= s.rss_limit_mib,
            "instance {i} peak RSS {} MiB",
            kib / 1024
        );
    }
    assert_eq!(
        exits,
        vec![Some(0), Some(0)],
        "both drain and exit 0 on SIGTERM"
    );
    assert!(counts.sigkills >= 10 && counts.relay_outages >= 5);
    drop(relay);
}

/// A dump as smtp-sink would leave it, for the auditor's own test.
fn dumped(rcpt: &str, headers: &[(&str, &str)], text: &str) -> rig::SinkMessage {
    let mut m = String::new();
    for (k, v) in headers {
        m.push_str(&format!("{k}: {v}\r\n"));
    }
    m.push_str("Content-Type: multipart/alternative; boundary=\"=_mailgate_t\"\r\n\r\n");
    m.push_str("--=_mailgate_t\r\nContent-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    m.push_str(&text.replace('\n', "\r\n"));
    m.push_str("\r\n--=_mailgate_t--\r\n");
    rig::SinkMessage {
        path: PathBuf::from("/nonexistent/dump"),
        mail_from: SENDER.into(),
        rcpt_to: vec![rcpt.into()],
        message: m.into_bytes(),
    }
}

#[test]
fn the_auditor_fails_on_loss_suppression_breach_unstable_ids_and_missing_dead_letters() {
    let mut exp = Expected::default();
    let key = |g: &str, r: &str| (g.to_string(), r.to_string());
    exp.rules.insert(key("m1", "a@x.example"), "<id1@x>".into());
    exp.rules.insert(key("m1", "b@x.example"), "<id2@x>".into());
    exp.rules_suppressed.insert(key("m1", "s@x.example"));
    exp.bounces_required
        .extend(["bq1".to_string(), "bq2".to_string()]);
    exp.bounces_forbidden
        .extend(["bq3".to_string(), "SQ3X".to_string()]);
    exp.app_active
        .insert("c1".into(), ["n1".to_string()].into());
    exp.poison.insert(("t".into(), 0, 5), "empty");
    let rule = |r: &str, id: &str| {
        dumped(
            r,
            &[("Message-ID", id), ("X-Mailgate-Message-ID", "m1")],
            "x",
        )
    };
    let app = dumped(
        ADMIN,
        &[("Message-ID", "<app@x>")],
        "The error state of gateway cluster c1 has changed.\n\n[new] A\n  Node:   n1, 10.0.0.1:1\n\n[resolved] B\n  Node:   n2, 10.0.0.2:1\n",
    );
    let summary = dumped(
        POSTMASTER,
        &[("Message-ID", "<sum@x>")],
        "Between 1 and 2 the mail system reported 1\nproblems",
    );
    let alone = dumped(
        POSTMASTER,
        &[("Message-ID", "<b1@x>"), ("X-Mailgate-Message-ID", "bq1")],
        "x",
    );
    let dlq = vec![rig::Record {
        partition: 0,
        offset: 0,
        key: None,
        payload: Vec::new(),
        headers: [
            ("x-dlq-topic", "t"),
            ("x-dlq-partition", "0"),
            ("x-dlq-offset", "5"),
            ("x-dlq-stage", "decode"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec(),
    }];
    let good = vec![
        rule("a@x.example", "<id1@x>"),
        rule("a@x.example", "<id1@x>"),
        rule("b@x.example", "<id2@x>"),
        app.clone(),
        summary,
        alone.clone(),
    ];
    let a = audit(&exp, &good, &dlq);
    assert!(a.passed(), "{a:?}");
    assert_eq!(a.duplicates, 1);

    let forbidden = dumped(
        POSTMASTER,
        &[("Message-ID", "<b3@x>"), ("X-Mailgate-Message-ID", "bq3")],
        "x",
    );
    let stale_app = dumped(
        ADMIN,
        &[("Message-ID", "<app2@x>")],
        "The error state of gateway cluster c1 has changed.\n\n[resolved] A\n  Node:   n1, 10.0.0.1:1\n",
    );
    let bad = vec![
        rule("a@x.example", "<other@x>"),
        rule("s@x.example", "<s@x>"),
        alone,
        forbidden,
        stale_app,
    ];
    let a = audit(&exp, &bad, &[]);
    assert!(!a.passed());
    assert_eq!(a.rule_lost, vec![key("m1", "b@x.example")]);
    assert_eq!(a.rule_suppressed_arrived, 1);
    assert_eq!(a.rule_wrong_id.len(), 1);
    assert_eq!(a.bounce_unaccounted, 1);
    assert_eq!(a.bounce_forbidden_arrived, vec!["bq3".to_string()]);
    assert_eq!(a.app_wrong.len(), 1, "{:?}", a.app_wrong);
    assert_eq!(a.poison_missing, 1);
}
