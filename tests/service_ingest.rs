//! The service as its real binary against the rig: killed with SIGKILL mid-stream and
//! restarted, nothing is lost and only records after the last commit are processed again; two
//! instances in one group split the work and the one stopped with SIGTERM drains and exits 0.

mod rig;
#[path = "rig/service.rs"]
mod service;

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct World {
    broker: rig::Broker,
    sink: rig::SmtpSink,
    dir: tempfile::TempDir,
    u: String,
}

impl World {
    async fn new(sink_flags: &[&str]) -> World {
        let broker = rig::Broker::start();
        let sink = rig::SmtpSink::start(sink_flags);
        let u = rig::unique();
        for t in ["app", "bounces", "verdicts"] {
            broker.create_topic(&format!("{t}-{u}"), 4, false).await;
        }
        broker.create_topic(&format!("dlq-{u}"), 1, false).await;
        World {
            broker,
            sink,
            dir: tempfile::tempdir().unwrap(),
            u,
        }
    }

    fn verdicts(&self) -> String {
        format!("verdicts-{}", self.u)
    }

    fn group(&self) -> String {
        format!("svc-{}", self.u)
    }

    fn config(&self, name: &str) -> PathBuf {
        let rest = format!(
            r#"
            [smtp]
            host = "127.0.0.1"
            port = {port}
            pool_size = 4
            [smtp.retry]
            initial = "100ms"
            max = "2s"
            [[application.recipients]]
            addresses = ["admin@example.com"]
            [[bounce.recipients]]
            addresses = ["postmaster@example.com"]
            [rules]
            general_list = ["security@example.com"]
            [rules.default]
            notify = ["general"]
            "#,
            port = self.sink.port()
        );
        let toml = rig::service_toml(&self.broker.brokers(), &self.u, "svc", "", &rest);
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).unwrap();
        path
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    async fn produce_verdicts(&self, from: usize, n: usize) {
        let json =
            std::fs::read_to_string(rig::root().join("tests/fixtures/events/scan_verdict.json"))
                .unwrap();
        let base: serde_json::Value = serde_json::from_str(&json).unwrap();
        let lines: String = (from..from + n)
            .map(|i| {
                let mut v = base.clone();
                v["event_id"] = format!("ev-{i}").into();
                v["message_id"] = format!("msg-{i}").into();
                v.to_string() + "\n"
            })
            .collect();
        let opts = mailgate_notify::produce::ProduceOptions {
            brokers: self.broker.brokers(),
            topic: self.verdicts(),
            format: mailgate_notify::produce::OutputFormat::Avro,
            kind: None,
            registry_url: None,
            librdkafka: Default::default(),
        };
        let r = mailgate_notify::produce::produce(&opts, std::io::Cursor::new(lines))
            .await
            .unwrap();
        assert_eq!(r.acknowledged, n);
    }

    /// Delivered notifications per gateway message id.
    fn delivered(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for m in self.sink.messages() {
            if let Some(id) = m.header("X-Mailgate-Message-ID") {
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }

    /// (partition, offset) of each verdict by gateway message id.
    fn positions(&self) -> HashMap<String, (i32, i64)> {
        self.broker
            .read_to_end(&self.verdicts())
            .into_iter()
            .map(|r| {
                (
                    String::from_utf8(r.key.unwrap()).unwrap(),
                    (r.partition, r.offset),
                )
            })
            .collect()
    }

    fn committed(&self) -> HashMap<i32, i64> {
        let c: BaseConsumer = self
            .broker
            .client_config()
            .set("group.id", self.group())
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition(&self.verdicts(), p);
        }
        c.committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .map(|e| {
                (
                    e.partition(),
                    e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0),
                )
            })
            .collect()
    }
}

fn assert_clean_log(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("panicked"),
        "panic in {}:\n{text}",
        log.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_loses_nothing_and_replays_only_uncommitted() {
    // smtp-sink answers DATA after 1 s: with 4 connections the service delivers ~4/s, so a
    // kill after a few seconds lands mid-stream with records in flight.
    let w = World::new(&["-w", "1"]).await;
    let n = 40;
    w.produce_verdicts(0, n).await;
    let cfg = w.config("a");
    let mut first = service::Service::start(&cfg, &w.log("first"));
    rig::wait_until(Duration::from_secs(60), || {
        (w.delivered().len() >= 10).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no progress; log:\n{}", first.log_text()));
    first.kill9();
    let committed = w.committed();
    let delivered_before = w.delivered();
    assert!(delivered_before.len() < n, "killed mid-stream");

    let second = service::Service::start(&cfg, &w.log("second"));
    let all = rig::wait_until(Duration::from_secs(120), || {
        let d = w.delivered();
        (d.len() >= n).then_some(d)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "not all delivered after restart; log:\n{}",
            second.log_text()
        )
    });
    // Every verdict notified at least once; a second copy only for records at or after the
    // committed offset of their partition (those were not yet done when the process died).
    let pos = w.positions();
    for (id, count) in &all {
        if *count > 1 {
            let (p, off) = pos[id];
            assert!(
                off >= committed.get(&p).copied().unwrap_or(0),
                "{id} at {p}/{off} replayed though committed"
            );
        }
    }
    assert_eq!(all.len(), n);
    drop(second);
    assert_clean_log(&w.log("first"));
    assert_clean_log(&w.log("second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_group_and_the_sigtermed_one_drains_and_exits_zero() {
    let w = World::new(&["-w", "1"]).await;
    let cfg_a = w.config("a");
    let cfg_b = w.config("b");
    let mut a = service::Service::start(&cfg_a, &w.log("a"));
    let b = service::Service::start(&cfg_b, &w.log("b"));
    let n = 40;
    w.produce_verdicts(0, n).await;
    rig::wait_until(Duration::from_secs(60), || {
        (w.delivered().len() >= 8).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no progress; logs:\n{}\n---\n{}",
            a.log_text(),
            b.log_text()
        )
    });
    a.sigterm();
    let status = a
        .wait_exit(Duration::from_secs(40))
        .expect("instance a exits after draining");
    assert_eq!(status.code(), Some(0), "log:\n{}", a.log_text());
    w.produce_verdicts(n, 10).await;
    let all = rig::wait_until(Duration::from_secs(120), || {
        let d = w.delivered();
        (d.len() >= n + 10).then_some(d)
    })
    .await
    .unwrap_or_else(|| panic!("lost records; b log:\n{}", b.log_text()));
    assert_eq!(all.len(), n + 10);
    // Both instances did part of the work: the group really split the partitions.
    let a_log = a.log_text();
    assert!(a_log.contains("rebalance"), "{a_log}");
    drop(b);
    assert_clean_log(&w.log("a"));
    assert_clean_log(&w.log("b"));
}
