//! Delivery against Postfix's smtp-sink: volume (each message once, byte for byte), 4xx and 5xx
//! replies, disconnects, random delays, a relay absent for a minute, the per-connection cap, the
//! rate limit, shutdown, and the file transport. Also the regression guard of the 40 ms
//! delayed-ACK stall: every pooled socket has TCP_NODELAY and every message leaves in one write;
//! and of PIPELINING: used when offered (two writes per transaction), not when not.

mod rig;

use mailgate_notify::config::{SmtpConfig, TransportKind};
use mailgate_notify::deliver::{
    self, BreakerState, Completion, DeliverError, Outbox, Outgoing, Stage,
};
use mailgate_notify::telemetry;
use rig::{SinkMessage, SmtpSink};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;

const FROM: &str = "mailgate-notify@example.com";

fn config(port: u16) -> SmtpConfig {
    let mut c = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        pool_size: 4,
        outbox_capacity: 100,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(30),
        helo_name: Some("mailgate-notify.test".into()),
        pipelining: true,
        ..SmtpConfig::default()
    };
    c.retry.initial = Duration::from_millis(50);
    c.retry.max = Duration::from_millis(500);
    c.breaker.failures = 3;
    c.breaker.initial = Duration::from_millis(200);
    c.breaker.max = Duration::from_secs(1);
    c
}

/// A notification-like message of ~1.5 KB, with lines that need SMTP dot-stuffing.
fn message(ticket: u64) -> Arc<[u8]> {
    let mut m = format!(
        "From: Mail gateway <{FROM}>\r\nTo: admin@example.com\r\n\
         Message-ID: <n{ticket}@mailgate.test>\r\nX-Ticket: {ticket}\r\n\
         Subject: Notification {ticket}\r\nAuto-Submitted: auto-generated\r\n\r\n"
    );
    for i in 0..20 {
        m.push_str(&format!(
            "line {i} of notification {ticket}: some text to fill the body\r\n"
        ));
    }
    m.push_str(".starts with a dot\r\n.\r\nlast line\r\n");
    Arc::from(m.into_bytes().into_boxed_slice())
}

fn outgoing(ticket: u64, recipients: &[String]) -> Outgoing {
    Outgoing {
        ticket,
        message_id: format!("<n{ticket}@mailgate.test>"),
        envelope_from: Some(FROM.into()),
        recipients: recipients.to_vec(),
        bytes: message(ticket),
    }
}

fn rcpts(ticket: u64) -> Vec<String> {
    (0..=(ticket % 2))
        .map(|i| format!("admin{i}-{ticket}@example.com"))
        .collect()
}

/// Receives `n` completions (panics if they do not come within `within`).
async fn collect(rx: &mut Receiver<Completion>, n: usize, within: Duration) -> Vec<Completion> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(c)) => out.push(c),
            Ok(None) => panic!("completion channel closed after {}", out.len()),
            Err(_) => panic!("only {} of {n} completions in time", out.len()),
        }
    }
    out
}

/// smtp-sink dumps with LF line ends, a `Received:` header of its own first and an empty line
/// last; undo exactly that and compare with what was submitted.
fn assert_same_message(dump: &SinkMessage, sent: &[u8]) {
    let text = String::from_utf8_lossy(&dump.message);
    let mut lines = text.split_inclusive('\n').peekable();
    let first = lines.next().unwrap_or_default();
    assert!(first.starts_with("Received:"), "{first:?}");
    while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
        lines.next();
    }
    let rest: String = lines.collect();
    let expected = String::from_utf8_lossy(sent).replace("\r\n", "\n") + "\n";
    assert_eq!(rest, expected);
}

fn ticket_of(dump: &SinkMessage) -> u64 {
    dump.header("X-Ticket")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no X-Ticket in {}", dump.path.display()))
}

/// Waits until the sink dumped `n` messages, then checks them with `assert_each_once`.
async fn assert_delivered_once(sink: &SmtpSink, n: u64) {
    rig::wait_until(Duration::from_secs(10), || {
        (sink.messages().len() >= n as usize).then_some(())
    })
    .await
    .expect("all dumped");
    assert_each_once(sink, n);
}

/// Every ticket in `0..n` was dumped exactly once, with its envelope and its bytes.
fn assert_each_once(sink: &SmtpSink, n: u64) {
    let dumps = sink.messages();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for d in &dumps {
        let t = ticket_of(d);
        *seen.entry(t).or_default() += 1;
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_to, rcpts(t));
        assert_same_message(d, &message(t));
    }
    let dup: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(
        seen.len() as u64,
        n,
        "missing: {:?}",
        (0..n).filter(|t| !seen.contains_key(t)).collect::<Vec<_>>()
    );
}

fn assert_all_accepted(completions: &[Completion], n: u64) {
    let tickets: BTreeSet<u64> = completions.iter().map(|c| c.ticket).collect();
    assert_eq!(
        tickets.len(),
        completions.len(),
        "one completion per notification"
    );
    assert_eq!(tickets, (0..n).collect());
    for c in completions {
        assert_eq!(c.accepted, rcpts(c.ticket));
        assert!(c.rejected.is_empty(), "{c:?}");
    }
}

/// The 40 ms regression guard: no socket without TCP_NODELAY, no message split in two writes.
fn assert_no_delayed_ack_stall(outbox: &Outbox) {
    let w = outbox.wire_stats();
    assert!(w.connections > 0);
    assert_eq!(w.connections_nodelay, w.connections, "{w:?}");
    assert!(w.messages > 0);
    assert_eq!(w.messages_one_write, w.messages, "{w:?}");
}

/// smtp-sink offers PIPELINING: each transaction is two writes, MAIL + RCPTs + DATA as one
/// group and the message; each connection adds its two EHLOs and QUIT (NOOP after idling).
fn assert_pipelined(outbox: &Outbox) {
    let w = outbox.wire_stats();
    assert!(
        w.writes <= 2 * w.messages + 4 * w.connections,
        "more writes than pipelining needs: {w:?}"
    );
}

/// Without PIPELINING each command waits for its reply: MAIL, one RCPT or more, DATA, message.
fn assert_not_pipelined(outbox: &Outbox) {
    let w = outbox.wire_stats();
    assert!(w.messages > 0);
    assert!(w.writes >= 4 * w.messages, "{w:?}");
}

async fn submit_all(outbox: &Outbox, n: u64) {
    for t in 0..n {
        outbox.submit(outgoing(t, &rcpts(t))).await;
    }
}

fn metric(registry: &prometheus::Registry, series: &str) -> f64 {
    telemetry::sample(&telemetry::encode_text(registry), series).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_notifications_arrive_once_each_byte_identical() {
    let sink = SmtpSink::start(&[]);
    let mut cfg = config(sink.port());
    cfg.max_messages_per_connection = 100;
    let registry = prometheus::Registry::new();
    let (outbox, mut rx) = deliver::start(&cfg, &registry).unwrap();
    let n = 1000;
    let producer = {
        let outbox = outbox.clone();
        tokio::spawn(async move { submit_all(&outbox, n).await })
    };
    let completions = collect(&mut rx, n as usize, Duration::from_secs(60)).await;
    producer.await.unwrap();
    assert_all_accepted(&completions, n);
    assert_delivered_once(&sink, n).await;
    assert_no_delayed_ack_stall(&outbox);
    assert_pipelined(&outbox);
    // The per-connection cap: 1000 messages at most 100 per connection.
    assert!(
        outbox.wire_stats().connections >= 10,
        "{:?}",
        outbox.wire_stats()
    );
    let recipients: usize = completions.iter().map(|c| c.accepted.len()).sum();
    assert_eq!(
        metric(&registry, "mailgate_notify_deliver_sent_recipients_total"),
        recipients as f64
    );
    assert_eq!(
        metric(
            &registry,
            "mailgate_notify_smtp_send_seconds_count{outcome=\"accepted\"}"
        ),
        n as f64
    );
    outbox.shutdown(Duration::from_secs(5)).await;
    assert_eq!(metric(&registry, "mailgate_notify_outbox_depth"), 0.0);
    assert_eq!(metric(&registry, "mailgate_notify_smtp_connections"), 0.0);
}

/// Runs `phase1_flags` on a port, submits `n`, waits until the first phase visibly failed some
/// attempts, then replaces the sink by a healthy one on the same port: all arrive, once each.
async fn healthy_after_a_faulty_phase(phase1_flags: &[&str], n: u64) {
    let faulty = SmtpSink::start(phase1_flags);
    let port = faulty.port();
    let registry = prometheus::Registry::new();
    let (outbox, mut rx) = deliver::start(&config(port), &registry).unwrap();
    submit_all(&outbox, n).await;
    let retried = || {
        let text = telemetry::encode_text(&registry);
        DeliverError::CODES
            .iter()
            .filter_map(|c| {
                telemetry::sample(
                    &text,
                    &format!(
                        "mailgate_notify_deliver_retried_recipients_total{{error_code=\"{c}\"}}"
                    ),
                )
            })
            .sum::<f64>()
    };
    rig::wait_until(Duration::from_secs(20), || {
        (retried() >= 2.0 * n as f64).then_some(())
    })
    .await
    .expect("the faulty relay made attempts fail");
    assert!(
        rx.try_recv().is_err(),
        "nothing is complete while the relay refuses"
    );
    // smtp-sink leaves an envelope-only dump for a transaction cut at DATA; no message got in.
    assert!(faulty.messages().iter().all(|m| m.message.is_empty()));
    drop(faulty);
    let sink = SmtpSink::start_on(port, &[]);
    let completions = collect(&mut rx, n as usize, Duration::from_secs(30)).await;
    assert_all_accepted(&completions, n);
    assert_delivered_once(&sink, n).await;
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn mail_from_4xx_is_retried_until_a_healthy_relay_takes_everything() {
    healthy_after_a_faulty_phase(&["-r", "MAIL"], 40).await;
}

#[tokio::test]
async fn a_disconnect_at_data_is_retried_and_delivered_once() {
    healthy_after_a_faulty_phase(&["-q", "DATA"], 40).await;
}

#[tokio::test]
async fn rcpt_5xx_reports_each_recipient_as_permanent_and_retries_nothing() {
    let sink = SmtpSink::start(&["-f", "RCPT"]);
    let registry = prometheus::Registry::new();
    let (outbox, mut rx) = deliver::start(&config(sink.port()), &registry).unwrap();
    let n = 20;
    submit_all(&outbox, n).await;
    let completions = collect(&mut rx, n as usize, Duration::from_secs(20)).await;
    for c in &completions {
        assert!(c.accepted.is_empty());
        let rejected: Vec<&str> = c.rejected.iter().map(|r| r.recipient.as_str()).collect();
        assert_eq!(rejected, rcpts(c.ticket));
        for r in &c.rejected {
            assert!(
                matches!(
                    r.error,
                    DeliverError::PermanentReply {
                        stage: Stage::RcptTo,
                        code: 500..=599,
                        ..
                    }
                ),
                "{:?}",
                r.error
            );
        }
    }
    assert_eq!(
        completions
            .iter()
            .map(|c| c.ticket)
            .collect::<BTreeSet<_>>()
            .len(),
        n as usize
    );
    let total: usize = completions.iter().map(|c| c.rejected.len()).sum();
    assert_eq!(
        metric(
            &registry,
            "mailgate_notify_deliver_failed_recipients_total{error_code=\"smtp_permanent_reply\"}"
        ),
        total as f64
    );
    let text = telemetry::encode_text(&registry);
    assert!(
        !text.lines().any(
            |l| l.starts_with("mailgate_notify_deliver_retried_recipients_total")
                && !l.ends_with(" 0")
        ),
        "nothing retried"
    );
    assert_eq!(outbox.depth(), 0);
    assert!(sink.messages().is_empty());
    outbox.shutdown(Duration::from_secs(5)).await;
}

/// Each command waits for its reply when the relay does not offer PIPELINING (`-p`), or when
/// it does and `smtp.pipelining` is off; everything arrives once either way.
#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    for (flags, pipelining) in [(&["-p"][..], true), (&[][..], false)] {
        let sink = SmtpSink::start(flags);
        let mut cfg = config(sink.port());
        cfg.pipelining = pipelining;
        let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
        let n = 50;
        submit_all(&outbox, n).await;
        let completions = collect(&mut rx, n as usize, Duration::from_secs(30)).await;
        assert_all_accepted(&completions, n);
        assert_delivered_once(&sink, n).await;
        assert_not_pipelined(&outbox);
        outbox.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn random_delays_lose_nothing_and_duplicate_nothing() {
    // Replies to DATA and to the final dot delayed by random multiples of one second.
    let sink = SmtpSink::start(&["-W", "DATA:1:20", "-W", ".:1:20"]);
    let (outbox, mut rx) =
        deliver::start(&config(sink.port()), &prometheus::Registry::new()).unwrap();
    let n = 30;
    submit_all(&outbox, n).await;
    let completions = collect(&mut rx, n as usize, Duration::from_secs(60)).await;
    assert_all_accepted(&completions, n);
    assert_delivered_once(&sink, n).await;
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_absent_for_a_minute_loses_nothing_bounds_the_outbox_and_opens_then_closes_the_breaker(
) {
    let port = rig::free_port();
    let mut cfg = config(port);
    cfg.outbox_capacity = 20;
    cfg.pool_size = 2;
    cfg.retry.max = Duration::from_secs(2);
    cfg.breaker.initial = Duration::from_millis(500);
    cfg.breaker.max = Duration::from_secs(4);
    let registry = prometheus::Registry::new();
    let (outbox, mut rx) = deliver::start(&cfg, &registry).unwrap();
    let n = 60;
    let producer = {
        let outbox = outbox.clone();
        tokio::spawn(async move { submit_all(&outbox, n).await })
    };
    // The outage: watch the bound and the breaker the whole minute.
    let started = Instant::now();
    let mut states = BTreeSet::new();
    let mut max_depth = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let depth = outbox.depth();
        assert!(
            depth <= cfg.outbox_capacity,
            "depth {depth} above the bound"
        );
        max_depth = max_depth.max(depth);
        states.insert(format!("{:?}", outbox.breaker()));
        assert!(
            rx.try_recv().is_err(),
            "nothing completes while the relay is absent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(max_depth, cfg.outbox_capacity, "the outbox filled up");
    assert!(
        !producer.is_finished(),
        "submit waits while the outbox is full"
    );
    assert!(
        outbox.try_submit(outgoing(999, &rcpts(999))).is_err(),
        "a full outbox gives the item back"
    );
    assert!(states.contains("Open"), "{states:?}");
    // Open (2) or probing (1) at the end of the outage.
    assert!(metric(&registry, "mailgate_notify_smtp_breaker_state") >= 1.0);
    assert!(
        metric(
            &registry,
            "mailgate_notify_smtp_breaker_transitions_total{to=\"open\"}"
        ) >= 1.0
    );
    // Connection attempts were spaced out, not one per notification and retry.
    let attempts = metric(
        &registry,
        "mailgate_notify_smtp_connects_total{result=\"failed\"}",
    );
    assert!(
        attempts < 60.0,
        "{attempts} connection attempts in a minute"
    );

    let sink = SmtpSink::start_on(port, &[]);
    let completions = collect(&mut rx, n as usize, Duration::from_secs(30)).await;
    producer.await.unwrap();
    assert_all_accepted(&completions, n);
    assert_eq!(outbox.breaker(), BreakerState::Closed);
    assert_eq!(metric(&registry, "mailgate_notify_smtp_breaker_state"), 0.0);
    assert!(
        metric(
            &registry,
            "mailgate_notify_smtp_breaker_transitions_total{to=\"closed\"}"
        ) >= 1.0
    );
    assert_delivered_once(&sink, n).await;
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_rate_limit_spaces_messages_over_the_pool() {
    let sink = SmtpSink::start(&[]);
    let mut cfg = config(sink.port());
    cfg.rate_limit_per_second = Some(40);
    let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
    let started = Instant::now();
    submit_all(&outbox, 11).await;
    collect(&mut rx, 11, Duration::from_secs(20)).await;
    // Eleven slots 25 ms apart: the last cannot start before 250 ms (a lower bound by design,
    // not a speed claim).
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_drains_the_outbox_then_closes_the_completion_channel() {
    let sink = SmtpSink::start(&["-W", ".:1:50"]);
    let (outbox, mut rx) =
        deliver::start(&config(sink.port()), &prometheus::Registry::new()).unwrap();
    submit_all(&outbox, 8).await;
    let handle = outbox.clone();
    outbox.shutdown(Duration::from_secs(30)).await;
    assert_eq!(handle.depth(), 0);
    assert!(
        handle.try_submit(outgoing(100, &rcpts(100))).is_err(),
        "no work taken after shutdown"
    );
    drop(handle);
    let completions = collect(&mut rx, 8, Duration::from_secs(1)).await;
    assert_all_accepted(&completions, 8);
    assert!(
        rx.recv().await.is_none(),
        "channel closes once the pool is gone"
    );
}

#[tokio::test]
async fn shutdown_with_the_relay_down_abandons_without_completing() {
    let (outbox, mut rx) =
        deliver::start(&config(rig::free_port()), &prometheus::Registry::new()).unwrap();
    submit_all(&outbox, 5).await;
    outbox.shutdown(Duration::from_millis(300)).await;
    assert!(
        rx.recv().await.is_none(),
        "no completion: the source records stay uncommitted"
    );
}

#[tokio::test]
async fn the_null_sender_and_no_recipients_are_handled() {
    let sink = SmtpSink::start(&[]);
    let (outbox, mut rx) =
        deliver::start(&config(sink.port()), &prometheus::Registry::new()).unwrap();
    let mut o = outgoing(1, &rcpts(1));
    o.envelope_from = None;
    outbox.submit(o).await;
    outbox.submit(outgoing(2, &[])).await;
    let mut cs = collect(&mut rx, 2, Duration::from_secs(20)).await;
    cs.sort_by_key(|c| c.ticket);
    assert_eq!(cs[0].accepted, rcpts(1));
    assert_eq!((cs[1].accepted.len(), cs[1].rejected.len()), (0, 0));
    let dumps = rig::wait_until(Duration::from_secs(10), || {
        let m = sink.messages();
        (m.len() == 1).then_some(m)
    })
    .await
    .expect("one dump");
    assert_eq!(dumps[0].mail_from, "");
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_file_transport_writes_each_notification_as_an_eml_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SmtpConfig {
        transport: TransportKind::File,
        dir: dir.path().join("outbox"),
        ..SmtpConfig::default()
    };
    let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
    submit_all(&outbox, 3).await;
    let completions = collect(&mut rx, 3, Duration::from_secs(10)).await;
    assert_all_accepted(&completions, 3);
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(&cfg.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<Vec<u8>> = (0..3).map(|t| message(t).to_vec()).collect();
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(outbox.breaker(), BreakerState::Closed);
    outbox.shutdown(Duration::from_secs(5)).await;
}
