//! The integration-test rig: a real Kafka-protocol broker (Tansu, memory storage) and a real SMTP
//! server (Postfix's `smtp-sink`, dumping every message) on free loopback ports, with helpers to
//! create topics, produce events, read a topic to its end, parse the sink's dumps and wait for a
//! condition with a deadline. Both processes are killed on drop, also when a test panics.
//! `tests/rig/install.sh` (run by `make test`) installs them.

#![allow(dead_code)] // each test binary uses a different part of the rig

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::TopicPartitionList;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// The Tansu binary: `TANSU_BIN`, else the path `install.sh` recorded.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let recorded = root().join(".cache/rig/tansu-bin");
    let p = std::fs::read_to_string(&recorded).unwrap_or_else(|_| {
        panic!(
            "{} missing: run tests/rig/install.sh (make test does)",
            recorded.display()
        )
    });
    PathBuf::from(p.trim())
}

/// The `smtp-sink` binary.
pub fn smtp_sink_bin() -> PathBuf {
    for p in ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("smtp-sink not found: run tests/rig/install.sh (make test does)");
}

/// A Tansu broker with memory storage; killed on drop.
pub struct Broker {
    child: Child,
    port: u16,
    /// Holds the broker's log file.
    pub dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = dir.path().join("tansu.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("CLUSTER_ID")
            .env_remove("SCHEMA_REGISTRY")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start tansu");
        wait_for_port(port, &mut child, "tansu", &log);
        Broker { child, port, dir }
    }

    /// `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Base client config for this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        c
    }

    /// Creates a topic (optionally compacted) and waits until its metadata shows it.
    pub async fn create_topic(&self, name: &str, partitions: i32, compacted: bool) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        if compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let res = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create_topics");
        for r in res {
            if let Err((t, e)) = r {
                panic!("create topic {t}: {e}");
            }
        }
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        wait_until_sync(Duration::from_secs(10), || {
            consumer
                .fetch_metadata(Some(name), Duration::from_secs(2))
                .ok()
                .and_then(|m| {
                    m.topics()
                        .first()
                        .map(|t| t.partitions().len() == partitions as usize)
                })
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("topic {name} not visible"));
    }

    /// Reads every record of `topic` from the beginning to its current end.
    ///
    /// Tansu 0.6 reports a high watermark that advances by one per produced *batch*, not per
    /// record (measured: 100 records in one batch → watermark 1), so the watermark is only a
    /// lower bound here: we read past it until the topic has been quiet for a moment.
    pub fn read_to_end(&self, topic: &str) -> Vec<Record> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", format!("rig-reader-{}", unique()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut tpl = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for p in &partitions {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(5))
                .expect("watermarks");
            if hi > lo {
                ends.insert(*p, hi);
            }
            tpl.add_partition_offset(topic, *p, rdkafka::Offset::Beginning)
                .expect("tpl");
        }
        let mut out = Vec::new();
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(30);
        let quiet = Duration::from_millis(400);
        let mut last_seen = Instant::now();
        loop {
            assert!(
                Instant::now() < deadline,
                "read_to_end({topic}) timed out; missing {ends:?}"
            );
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    last_seen = Instant::now();
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|hd| {
                                    (
                                        hd.key.to_string(),
                                        String::from_utf8_lossy(hd.value.unwrap_or(b""))
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| k.to_vec()),
                        payload: m.payload().map(|p| p.to_vec()).unwrap_or_default(),
                        headers,
                    });
                    if let Some(end) = ends.get(&m.partition()) {
                        if m.offset() + 1 >= *end {
                            ends.remove(&m.partition());
                        }
                    }
                }
                Some(Err(e)) => panic!("read_to_end({topic}): {e}"),
                None => {
                    if ends.is_empty() && last_seen.elapsed() >= quiet {
                        break;
                    }
                }
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }

    /// The end offset (last offset + 1) of each partition that holds records, read from the
    /// records themselves (see [`Broker::read_to_end`] on Tansu's watermarks).
    pub fn end_offsets(&self, topic: &str) -> std::collections::HashMap<i32, i64> {
        let mut ends = std::collections::HashMap::new();
        for r in self.read_to_end(topic) {
            let e = ends.entry(r.partition).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        ends
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Vec<u8>,
    /// Headers as (name, lossy UTF-8 value).
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Postfix's `smtp-sink`, dumping each message into a directory; killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    /// Dumped messages (`<dir>/<queue-id>.`…).
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts `smtp-sink -d DIR/%M.` plus `extra` flags (e.g. `["-r", "MAIL"]` for 4xx).
    pub fn start(extra: &[&str]) -> SmtpSink {
        Self::start_on(free_port(), extra)
    }

    /// As `start`, on a given port (to restart a relay where the service expects it).
    pub fn start_on(port: u16, extra: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = format!("{}/%M.", dir.path().display());
        let log = dir.path().join("sink.log");
        let out = std::fs::File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let mut child = Command::new(smtp_sink_bin())
            // -u root: we run tests as root and smtp-sink otherwise drops to user `postfix`,
            // which could not write into our temp dir.
            .args([
                "-u",
                if is_root() { "root" } else { "nobody" },
                "-d",
                &template,
            ])
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start smtp-sink");
        wait_for_port(port, &mut child, "smtp-sink", &log);
        SmtpSink { child, port, dir }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the sink (a relay outage) but keeps its dump directory, so the messages it
    /// accepted can still be read; start another with [`SmtpSink::start_on`] on the same port.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id (to sample its resources).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every message dumped so far, parsed.
    pub fn messages(&self) -> Vec<SinkMessage> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return out;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.file_name().is_some_and(|n| n == "sink.log") {
                continue;
            }
            // smtp-sink creates the dump file when the transaction starts and fills it as the
            // envelope and data arrive; a file still being written is not a message yet. One
            // quiet for a moment is complete (a transaction takes milliseconds on loopback).
            let settled = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= Duration::from_millis(300));
            if !settled {
                continue;
            }
            if let Ok(raw) = std::fs::read(&path) {
                out.push(SinkMessage::parse(path, raw));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A message as `smtp-sink -d` dumped it: its envelope (from the `X-Mail-Args:` and
/// `X-Rcpt-Args:` lines smtp-sink puts first) and the message as received.
#[derive(Debug, Clone)]
pub struct SinkMessage {
    /// Dump file.
    pub path: PathBuf,
    /// `MAIL FROM` address (empty for `<>`).
    pub mail_from: String,
    /// `RCPT TO` addresses.
    pub rcpt_to: Vec<String>,
    /// The message bytes after smtp-sink's own header lines.
    pub message: Vec<u8>,
}

impl SinkMessage {
    fn parse(path: PathBuf, raw: Vec<u8>) -> SinkMessage {
        let mut mail_from = String::new();
        let mut rcpt_to = Vec::new();
        let mut rest = &raw[..];
        // smtp-sink writes "X-Client-Addr:", "X-Client-Proto:", "X-Helo-Args:", "X-Mail-Args:",
        // "X-Rcpt-Args:" (one per recipient) before the message itself.
        loop {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..end]);
            let line = line.trim_end();
            let Some((name, value)) = line.split_once(':') else {
                break;
            };
            let value = value.trim();
            match name {
                "X-Mail-Args" => mail_from = angle(value),
                "X-Rcpt-Args" => rcpt_to.push(angle(value)),
                "X-Client-Addr" | "X-Client-Proto" | "X-Helo-Args" => {}
                _ => break,
            }
            rest = &rest[end..];
        }
        SinkMessage {
            path,
            mail_from,
            rcpt_to,
            message: rest.to_vec(),
        }
    }

    /// The value of the first header `name` (unfolded), case-insensitive.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.message);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let head = head.split("\n\n").next().unwrap_or("");
        let mut current: Option<String> = None;
        for line in head.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(c) = current.as_mut() {
                    c.push_str(line.trim_end_matches('\r'));
                }
                continue;
            }
            if let Some(c) = current.take() {
                return Some(c);
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    current = Some(v.trim().trim_end_matches('\r').to_string());
                }
            }
        }
        current
    }
}

fn angle(value: &str) -> String {
    // "FROM:<a@b> SIZE=12" → "a@b"
    let v = value.split_once(':').map(|(_, v)| v).unwrap_or(value);
    let v = v.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => v[a + 1..b].to_string(),
        _ => v.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// A process-unique suffix for group ids and topic names (tests must not share groups).
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` until it returns `Some` or the deadline passes (then `None`). For waiting on
/// external processes only; never to wait for our own timers.
pub async fn wait_until<T>(timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Blocking variant of [`wait_until`] for boolean conditions.
pub fn wait_until_sync(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Some(());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The config every rig test of the service starts from: the broker, topics named
/// `<input>-<u>`, the group `<group>-<u>`, fast group formation and commits, the sender and a
/// metrics listener on a free port. `kafka_extra` adds keys to `[kafka]`; `rest` adds the
/// other sections (`[smtp]`, `[application]`, `[bounce]`, `[rules]`…).
pub fn service_toml(brokers: &str, u: &str, group: &str, kafka_extra: &str, rest: &str) -> String {
    format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        group_id = "{group}-{u}"
        commit_interval = "300ms"
        shutdown_timeout = "15s"
        {kafka_extra}
        [kafka.topics]
        application = "app-{u}"
        bounces = "bounces-{u}"
        scan_verdicts = "verdicts-{u}"
        dead_letter = "dlq-{u}"
        state = "state-{u}"
        [kafka.librdkafka]
        "session.timeout.ms" = "6000"
        "max.poll.interval.ms" = "8000"
        "heartbeat.interval.ms" = "500"
        [sender]
        address = "notify@gateway.example"
        [metrics]
        listen = "127.0.0.1:0"
        {rest}
        "#
    )
}
