//! End to end on the rig, in process: scan verdicts and bounces produced to the broker with
//! `produce` become exactly the expected mails in smtp-sink (envelope, subject, X-Mailgate-*
//! headers) and nothing else; `/metrics` moved exactly as the events dictate; `/readyz` follows
//! assignment and the relay's breaker.

mod rig;

use mailgate_notify::app::{self, Options};
use mailgate_notify::config::Config;
use mailgate_notify::telemetry::sample;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

struct World {
    broker: rig::Broker,
    u: String,
}

impl World {
    async fn new() -> World {
        let broker = rig::Broker::start();
        let u = rig::unique();
        for t in ["app", "bounces", "verdicts"] {
            broker.create_topic(&format!("{t}-{u}"), 2, false).await;
        }
        broker.create_topic(&format!("dlq-{u}"), 1, false).await;
        World { broker, u }
    }

    fn config(&self, smtp_port: u16) -> Config {
        let rest = format!(
            r#"
            [smtp]
            host = "127.0.0.1"
            port = {smtp_port}
            pool_size = 2
            [smtp.retry]
            initial = "100ms"
            max = "1s"
            [smtp.breaker]
            failures = 3
            [[application.recipients]]
            addresses = ["admin@example.com"]
            [[bounce.recipients]]
            addresses = ["postmaster@example.com"]
            [rules]
            general_list = ["security@example.com"]
            [rules.default]
            notify = ["general", "sender"]
            [[rules.rule]]
            id = "rule-av-default"
            notify = ["general", "recipients", "additional"]
            additional = ["av-team@example.com"]
            "#
        );
        let toml = rig::service_toml(&self.broker.brokers(), &self.u, "e2e", "", &rest);
        Config::from_toml(&toml, Path::new("."), &mailgate_notify::config::ProcessEnv).unwrap()
    }

    async fn produce(&self, topic: &str, lines: &[serde_json::Value]) {
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        let opts = mailgate_notify::produce::ProduceOptions {
            brokers: self.broker.brokers(),
            topic: format!("{topic}-{}", self.u),
            format: mailgate_notify::produce::OutputFormat::Avro,
            kind: None,
            registry_url: None,
            librdkafka: Default::default(),
        };
        let r = mailgate_notify::produce::produce(&opts, std::io::Cursor::new(text))
            .await
            .unwrap();
        assert_eq!(r.acknowledged, lines.len());
    }
}

fn fixture(name: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(rig::root().join(format!("tests/fixtures/events/{name}.json")))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_and_bounces_become_exactly_the_expected_mails_and_metrics() {
    let w = World::new().await;
    let sink = rig::SmtpSink::start(&[]);
    let running = app::start(w.config(sink.port()), Options::default())
        .await
        .unwrap();

    // Verdict 1 (the fixture): rule-av-default → general, its affected recipients, its
    // additional list; rule-phishing (default: general + sender) → the general notice again
    // (same template, same address: one mail) and the authenticated sender.
    let v1 = fixture("scan_verdict");
    // Verdict 2: unauthenticated sender, only the phishing rule → general; the sender notice
    // is suppressed (anti-backscatter).
    let mut v2 = fixture("scan_verdict");
    v2["event_id"] = "ev-2".into();
    v2["message_id"] = "msg-2".into();
    v2["sender_authenticated"] = false.into();
    v2["triggered_rules"] = serde_json::json!([v1["triggered_rules"][1].clone()]);
    // Verdict 3: the null sender; the sender notice is suppressed.
    let mut v3 = v2.clone();
    v3["event_id"] = "ev-3".into();
    v3["message_id"] = "msg-3".into();
    v3["sender"] = "".into();
    v3["sender_authenticated"] = true.into();
    w.produce("verdicts", &[v1.clone(), v2, v3]).await;

    // Bounce 1: RESOURCE → one notice. Bounce 2: DELAY, a class not enabled. Bounce 3: a bounce
    // of one of our own notifications → loop protection.
    let b1 = fixture("bounce_event");
    let mut b2 = b1.clone();
    b2["event_id"] = "b-2".into();
    b2["queue_id"] = "Q2".into();
    b2["class"] = "DELAY".into();
    let mut b3 = b1.clone();
    b3["event_id"] = "b-3".into();
    b3["queue_id"] = "Q3".into();
    b3["original_headers"] =
        "From: notify@gateway.example\r\nX-Mailgate-Notification-ID: 0123456789abcdef\r\n".into();
    w.produce("bounces", &[b1, b2, b3]).await;

    // A poison record.
    let producer =
        mailgate_notify::produce::producer(&w.broker.brokers(), &Default::default()).unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&format!("verdicts-{}", w.u))
                .key("x")
                .payload(&b"\x17garbage"[..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let expected: BTreeSet<(String, String)> = [
        ("security@example.com", "ksmg-7Hh2Kp9Qw3rT1"),
        ("bob@example.com", "ksmg-7Hh2Kp9Qw3rT1"),
        ("dave@example.com", "ksmg-7Hh2Kp9Qw3rT1"),
        ("av-team@example.com", "ksmg-7Hh2Kp9Qw3rT1"),
        ("mallory@sender.example", "ksmg-7Hh2Kp9Qw3rT1"),
        ("security@example.com", "msg-2"),
        ("security@example.com", "msg-3"),
        ("postmaster@example.com", "ksmg-4Q2fXk1Lm9zB7"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let msgs = rig::wait_until(Duration::from_secs(60), || {
        let m = sink.messages();
        (m.len() >= expected.len()).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("got only {} mails", sink.messages().len()));
    // The DLQ write and the rest settle; then nothing more may arrive.
    let dlq = rig::wait_until(Duration::from_secs(30), || {
        let d = w.broker.read_to_end(&format!("dlq-{}", w.u));
        (!d.is_empty()).then_some(d)
    })
    .await
    .expect("poison dead-lettered");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].header("x-dlq-error-code"), Some("unknown_framing"));
    let msgs_after = sink.messages();
    assert_eq!(msgs_after.len(), msgs.len(), "nothing else arrives");

    let got: BTreeSet<(String, String)> = msgs
        .iter()
        .map(|m| {
            assert_eq!(
                m.rcpt_to.len(),
                1,
                "one recipient per notification: {:?}",
                m.rcpt_to
            );
            assert_eq!(m.mail_from, "notify@gateway.example");
            assert_eq!(
                m.header("Auto-Submitted").as_deref(),
                Some("auto-generated")
            );
            assert!(m
                .header("X-Mailgate-Notification-ID")
                .is_some_and(|v| v.len() == 16));
            assert!(m.header("Message-ID").is_some());
            (
                m.rcpt_to[0].clone(),
                m.header("X-Mailgate-Message-ID").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let subject_of = |rcpt: &str| {
        msgs.iter()
            .find(|m| m.rcpt_to[0] == rcpt)
            .and_then(|m| m.header("Subject"))
            .unwrap_or_default()
    };
    assert!(
        subject_of("postmaster@example.com").contains("Resource problem"),
        "{}",
        subject_of("postmaster@example.com")
    );
    assert!(
        subject_of("bob@example.com").starts_with("A message to you from"),
        "{}",
        subject_of("bob@example.com")
    );
    assert!(subject_of("av-team@example.com").starts_with("[Secure Mail Gateway]"));

    // The metrics moved exactly as the events dictate.
    let (code, text) = get(running.metrics_addr, "/metrics").await;
    assert_eq!(code, 200);
    let s = |series: &str| sample(&text, &format!("mailgate_notify_{series}")).unwrap_or(-1.0);
    assert_eq!(
        s("notifications_sent_total{group=\"general\",kind=\"rule\"}"),
        3.0
    );
    assert_eq!(
        s("notifications_sent_total{group=\"recipients\",kind=\"rule\"}"),
        2.0
    );
    assert_eq!(
        s("notifications_sent_total{group=\"additional\",kind=\"rule\"}"),
        1.0
    );
    assert_eq!(
        s("notifications_sent_total{group=\"sender\",kind=\"rule\"}"),
        1.0
    );
    assert_eq!(
        s("notifications_sent_total{group=\"admins\",kind=\"bounce\"}"),
        1.0
    );
    assert_eq!(
        s("notifications_suppressed_total{kind=\"rule\",reason=\"backscatter\"}"),
        2.0
    );
    assert_eq!(
        s("notifications_suppressed_total{kind=\"rule\",reason=\"duplicate\"}"),
        1.0
    );
    assert_eq!(
        s("notifications_suppressed_total{kind=\"bounce\",reason=\"loop\"}"),
        1.0
    );
    assert_eq!(
        s("notifications_suppressed_total{kind=\"bounce\",reason=\"disabled\"}"),
        1.0
    );
    assert_eq!(
        s("dlq_records_total{error_code=\"unknown_framing\",stage=\"decode\"}"),
        1.0
    );
    assert_eq!(s("events_consumed_total{topic=\"scan_verdict\"}"), 4.0);
    assert_eq!(s("events_consumed_total{topic=\"bounce\"}"), 3.0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_assignment_and_the_relay_breaker() {
    let w = World::new().await;
    // No relay listening on this port.
    let port = rig::free_port();
    let running = app::start(w.config(port), Options::default())
        .await
        .unwrap();
    let (code, body) = get(running.metrics_addr, "/readyz").await;
    assert_eq!(code, 503, "not ready before assignment: {body}");
    assert_eq!(get(running.metrics_addr, "/healthz").await.0, 200);
    rig::wait_until(Duration::from_secs(30), || running.ready().ok())
        .await
        .expect("ready once partitions are assigned");
    let (code, _) = get(running.metrics_addr, "/readyz").await;
    assert_eq!(code, 200);
    // A notification to a dead relay: the breaker opens and readiness drops.
    w.produce("bounces", &[fixture("bounce_event")]).await;
    rig::wait_until(Duration::from_secs(60), || running.ready().err())
        .await
        .expect("not ready while the breaker is open");
    let (code, body) = get(running.metrics_addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("breaker"), "{body}");
    // The relay comes back on that port: delivered, breaker closes, ready again.
    let sink = rig::SmtpSink::start_on(port, &[]);
    rig::wait_until(Duration::from_secs(60), || {
        (sink.messages().len() == 1).then_some(())
    })
    .await
    .expect("delivered after the relay returned");
    rig::wait_until(Duration::from_secs(30), || running.ready().ok())
        .await
        .expect("ready again");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rejection_dead_letters_the_rendered_message_and_completes_the_record() {
    let w = World::new().await;
    // The relay answers 5xx to every RCPT TO.
    let sink = rig::SmtpSink::start(&["-f", "RCPT"]);
    let running = app::start(w.config(sink.port()), Options::default())
        .await
        .unwrap();
    w.produce("bounces", &[fixture("bounce_event")]).await;
    let dlq = rig::wait_until(Duration::from_secs(60), || {
        let d = w.broker.read_to_end(&format!("dlq-{}", w.u));
        (!d.is_empty()).then_some(d)
    })
    .await
    .expect("the rejected notification is dead-lettered");
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(d.header("x-dlq-stage"), Some("deliver"));
    assert_eq!(
        d.header("x-dlq-topic"),
        Some(format!("bounces-{}", w.u).as_str())
    );
    assert!(d
        .header("x-dlq-error")
        .unwrap_or("")
        .contains("postmaster@example.com"));
    let text = String::from_utf8_lossy(&d.payload);
    assert!(
        text.contains("X-Mailgate-Message-ID: ksmg-4Q2fXk1Lm9zB7"),
        "the rendered message: {text}"
    );
    // The source record is done (committed), not retried forever.
    rig::wait_until(Duration::from_secs(30), || {
        (running.in_flight() == 0).then_some(())
    })
    .await
    .expect("record completed");
    assert!(sink.messages().is_empty());
    running.shutdown().await;
}
