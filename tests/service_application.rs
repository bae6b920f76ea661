//! Application notifications on the rig: the state survives the loss of its owner through the
//! changelog (no resend of the last change, the next one when the throttle allows), a digest due
//! while no instance owned the cluster is sent once within `catch_up`, and a full replay of the
//! input topic under a fresh group sends nothing new.

mod rig;
#[path = "rig/service.rs"]
mod service;

use mailgate_notify::app::{self, Options};
use mailgate_notify::config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct World {
    broker: rig::Broker,
    sink: rig::SmtpSink,
    dir: tempfile::TempDir,
    u: String,
}

impl World {
    async fn new() -> World {
        let broker = rig::Broker::start();
        let u = rig::unique();
        // One partition per input: the cluster has exactly one owner at a time.
        for t in ["app", "bounces", "verdicts"] {
            broker.create_topic(&format!("{t}-{u}"), 1, false).await;
        }
        broker.create_topic(&format!("dlq-{u}"), 1, false).await;
        World {
            broker,
            sink: rig::SmtpSink::start(&[]),
            dir: tempfile::tempdir().unwrap(),
            u,
        }
    }

    fn toml(&self, group: &str) -> String {
        let rest = format!(
            r#"
            [smtp]
            host = "127.0.0.1"
            port = {port}
            [application]
            throttle = "5s"
            [[application.recipients]]
            addresses = ["admin@example.com"]
            [[bounce.recipients]]
            addresses = ["postmaster@example.com"]
            "#,
            port = self.sink.port()
        );
        rig::service_toml(&self.broker.brokers(), &self.u, group, "", &rest)
    }

    fn config_file(&self, name: &str, group: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, self.toml(group)).unwrap();
        p
    }

    fn config(&self, group: &str) -> Config {
        Config::from_toml(
            &self.toml(group),
            Path::new("."),
            &mailgate_notify::config::ProcessEnv,
        )
        .unwrap()
    }

    async fn raise(&self, node: &str, kind: &str, minute: u32) {
        let text = std::fs::read_to_string(
            rig::root().join("tests/fixtures/events/application_event.json"),
        )
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["event_id"] = format!("{node}-{kind}-{minute}").into();
        v["node"]["node_id"] = node.into();
        v["kind"] = kind.into();
        v["occurred_at"] = format!("2026-12-02T10:{minute:02}:00Z").into();
        let opts = mailgate_notify::produce::ProduceOptions {
            brokers: self.broker.brokers(),
            topic: format!("app-{}", self.u),
            format: mailgate_notify::produce::OutputFormat::Json,
            kind: None,
            registry_url: None,
            librdkafka: Default::default(),
        };
        let r = mailgate_notify::produce::produce(&opts, std::io::Cursor::new(v.to_string()))
            .await
            .unwrap();
        assert_eq!(r.acknowledged, 1);
    }

    fn app_mails(&self) -> Vec<rig::SinkMessage> {
        self.sink
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_to == ["admin@example.com"])
            .collect()
    }
}

fn metrics_addr(log: &str) -> Option<String> {
    let i = log.find("mailgate-notify started")?;
    let rest = &log[i..];
    let j = rest.find("metrics")?;
    let tail: String = rest[j..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .collect();
    let addr: String = tail
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

async fn clusters_held(addr: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return -1.0;
    };
    let text = resp.text().await.unwrap_or_default();
    mailgate_notify::telemetry::sample(&text, "mailgate_notify_application_clusters")
        .unwrap_or(-1.0)
}

fn body(m: &rig::SinkMessage) -> String {
    String::from_utf8_lossy(&m.message).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_restores_the_cluster_and_resumes_without_resending() {
    let w = World::new().await;
    let mut a = service::Service::start(&w.config_file("a", "grp"), &w.dir.path().join("a.log"));
    let mut b = service::Service::start(&w.config_file("b", "grp"), &w.dir.path().join("b.log"));
    w.raise("node-01", "AV_BASES_OUTDATED", 1).await;
    let first = rig::wait_until(Duration::from_secs(60), || {
        let m = w.app_mails();
        (m.len() == 1).then_some(m)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no first change notification; logs:\n{}\n---\n{}",
            a.log_text(),
            b.log_text()
        )
    });
    // Who owns the cluster? The instance whose aggregator holds it.
    let (addr_a, addr_b) = (
        metrics_addr(&a.log_text()).unwrap(),
        metrics_addr(&b.log_text()).unwrap(),
    );
    let a_owns = clusters_held(&addr_a).await == 1.0;
    assert!(
        a_owns || clusters_held(&addr_b).await == 1.0,
        "one instance holds the cluster"
    );
    let (owner, survivor) = if a_owns {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    owner.kill9();

    // The survivor takes the partition over and restores the state: nothing is resent.
    let survivor_addr = metrics_addr(&survivor.log_text()).unwrap();
    rig::wait_until(Duration::from_secs(60), || {
        futures::executor::block_on(clusters_held(&survivor_addr))
            .eq(&1.0)
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "survivor never restored the cluster; log:\n{}",
            survivor.log_text()
        )
    });
    assert_eq!(
        w.app_mails().len(),
        1,
        "the last change notification is not sent again"
    );

    // The next change goes out once the throttle allows, listing the old error as still active.
    w.raise("node-02", "NODE_UNAVAILABLE", 2).await;
    let mails = rig::wait_until(Duration::from_secs(60), || {
        let m = w.app_mails();
        (m.len() >= 2).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("no second change; log:\n{}", survivor.log_text()));
    assert_eq!(mails.len(), 2);
    let second = mails.iter().find(|m| m.path != first[0].path).unwrap();
    assert_ne!(second.header("Message-ID"), first[0].header("Message-ID"));
    let text = body(second);
    assert!(
        text.contains("node-02")
            || text.contains("NODE_UNAVAILABLE")
            || text.contains("unavailable"),
        "{text}"
    );
    assert!(!survivor.log_text().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_input_under_a_fresh_group_sends_nothing_new() {
    let w = World::new().await;
    let first = app::start(w.config("one"), Options::default())
        .await
        .unwrap();
    w.raise("node-01", "AV_BASES_OUTDATED", 1).await;
    rig::wait_until(Duration::from_secs(60), || {
        (w.app_mails().len() == 1).then_some(())
    })
    .await
    .expect("a change notification");
    rig::wait_until(Duration::from_secs(30), || {
        (first.in_flight() == 0).then_some(())
    })
    .await
    .expect("the record is done (state in the changelog, notification accepted)");
    first.shutdown().await;

    // A fresh group reads the whole topic again, with the same changelog.
    let second = app::start(w.config("two"), Options::default())
        .await
        .unwrap();
    let sample = |series: &str| {
        let t = mailgate_notify::telemetry::encode_text(&second.registry);
        mailgate_notify::telemetry::sample(&t, series).unwrap_or(0.0)
    };
    // The restored cluster is decided at once (nothing to report: its last notification already
    // showed the error) and the replayed record is skipped as already reflected.
    rig::wait_until(Duration::from_secs(60), || {
        (sample("mailgate_notify_events_consumed_total{topic=\"application\"}") == 1.0
            && sample("mailgate_notify_application_decisions_total{reason=\"nothing_to_report\"}")
                >= 1.0)
            .then_some(())
    })
    .await
    .expect("the replay consumed the event and decided the restored cluster");
    rig::wait_until(Duration::from_secs(30), || {
        (second.in_flight() == 0).then_some(())
    })
    .await
    .expect("the replayed record is done");
    assert_eq!(
        sample("mailgate_notify_application_events_total{outcome=\"raised\"}"),
        0.0,
        "the replayed event was not applied again"
    );
    assert_eq!(w.app_mails().len(), 1, "the replay sent nothing new");
    second.shutdown().await;
}

/// Reads one sample of the service's own metrics over HTTP (0 when absent).
async fn metric(addr: &str, series: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return -1.0;
    };
    let text = resp.text().await.unwrap_or_default();
    mailgate_notify::telemetry::sample(&text, series).unwrap_or(0.0)
}

/// Waits for the instance's metrics listener and returns its address.
async fn started(s: &service::Service) -> String {
    rig::wait_until(Duration::from_secs(30), || metrics_addr(&s.log_text()))
        .await
        .unwrap_or_else(|| panic!("instance never started; log:\n{}", s.log_text()))
}

/// The midnight digest of a cluster (Europe/Moscow: midnight of 3 December is 21:00 UTC on the
/// 2nd) falls while no instance owns it: the owner was SIGKILLed at 10:05 UTC, the next instance
/// of the group comes up at 21:30 UTC. Each instance runs on the binary's hidden test clock
/// (`--clock-start`), the gap between them standing for eleven hours without an owner. The
/// newcomer restores the cluster from the changelog and sends the day's digest at once (within
/// `catch_up`, 6 h); when it too is SIGKILLed, the third instance restores the settled digest
/// date and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_due_while_unowned_is_caught_up_once() {
    let w = World::new().await;
    let cfg = w.config_file("i", "grp");
    let log = |n: &str| w.dir.path().join(format!("{n}.log"));
    let clock = |t: &str| ["--clock-start".to_string(), t.to_string()];

    // The first owner: the change notification goes out, its state reaches the changelog.
    let args = clock("2026-12-02T10:05:00Z");
    let mut first = service::Service::start_with(&cfg, &log("first"), &[&args[0], &args[1]]);
    started(&first).await;
    w.raise("node-01", "AV_BASES_OUTDATED", 1).await;
    rig::wait_until(Duration::from_secs(60), || {
        (w.app_mails().len() == 1).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no change notification; log:\n{}", first.log_text()));
    let state_topic = format!("state-{}", w.u);
    // Two states: after the event, and after the relay accepted the change notification.
    rig::wait_until(Duration::from_secs(30), || {
        (w.broker.read_to_end(&state_topic).len() >= 2).then_some(())
    })
    .await
    .expect("the owner wrote the cluster's state after its notification");
    first.kill9();
    assert!(
        !first.log_text().contains("digest"),
        "no digest before midnight"
    );

    // Eleven hours later (simulated), past Moscow midnight: the next instance of the group.
    let args = clock("2026-12-02T21:30:00Z");
    let second_started = std::time::Instant::now();
    let mut second = service::Service::start_with(&cfg, &log("second"), &[&args[0], &args[1]]);
    let second_addr = started(&second).await;
    let digest = rig::wait_until(Duration::from_secs(60), || {
        let m = w.app_mails();
        (m.len() >= 2).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("no caught-up digest; log:\n{}", second.log_text()));
    assert_eq!(digest.len(), 2, "one change notification, one digest");
    let d = digest
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("Daily digest"))
        })
        .unwrap_or_else(|| {
            panic!(
                "the second mail is the digest: {:?}",
                digest[1].header("Subject")
            )
        });
    assert!(body(d).contains("AV_BASES_OUTDATED") || body(d).contains("outdated"));
    assert_eq!(
        metric(
            &second_addr,
            "mailgate_notify_application_decisions_total{reason=\"digest_caught_up\"}"
        )
        .await,
        1.0,
        "sent as a caught-up digest"
    );
    // The settled digest date (3 December, Moscow) reaches the changelog before the next loss.
    rig::wait_until(Duration::from_secs(30), || {
        w.broker
            .read_to_end(&state_topic)
            .iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains("2026-12-03"))
            .then_some(())
    })
    .await
    .expect("the digest's state reached the changelog");
    second.kill9();

    // The third instance, on a clock consistent with the second's, restores a settled digest.
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T21:30:00Z").unwrap()
        + chrono::TimeDelta::from_std(second_started.elapsed()).unwrap();
    let args = clock(&now.to_rfc3339());
    let third = service::Service::start_with(&cfg, &log("third"), &[&args[0], &args[1]]);
    let third_addr = started(&third).await;
    rig::wait_until(Duration::from_secs(60), || {
        let held = futures::executor::block_on(clusters_held(&third_addr));
        let decided = futures::executor::block_on(metric(
            &third_addr,
            "mailgate_notify_application_decisions_total{reason=\"nothing_to_report\"}",
        ));
        (held == 1.0 && decided >= 1.0).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "third instance never restored the cluster; log:\n{}",
            third.log_text()
        )
    });
    assert_eq!(
        metric(
            &third_addr,
            "mailgate_notify_application_decisions_total{reason=\"digest_caught_up\"}"
        )
        .await,
        0.0,
        "the restored digest date is settled"
    );
    assert_eq!(w.app_mails().len(), 2, "the digest is not sent twice");
    for s in [&first, &second, &third] {
        assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
    }
}
