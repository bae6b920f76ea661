//! Delivery against aiosmtpd: STARTTLS and implicit TLS with a self-signed certificate given as
//! `ca_file`, AUTH PLAIN and LOGIN, a wrong password, a relay without STARTTLS, an untrusted
//! certificate, and per-recipient replies within one notification.

#[path = "rig/aiosmtpd.rs"]
mod aiosmtpd;
mod rig;

use aiosmtpd::{Aiosmtpd, Setup, TestCert};
use mailgate_notify::config::{Secret, SmtpConfig, TlsMode};
use mailgate_notify::deliver::{self, BreakerState, Completion, DeliverError, Outgoing, Stage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

fn config(port: u16, tls: TlsMode) -> SmtpConfig {
    let mut c = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls,
        pool_size: 2,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        helo_name: Some("mailgate-notify.test".into()),
        pipelining: true,
        ..SmtpConfig::default()
    };
    c.retry.initial = Duration::from_millis(50);
    c.retry.max = Duration::from_millis(300);
    c.breaker.failures = 2;
    c.breaker.initial = Duration::from_millis(200);
    c.breaker.max = Duration::from_secs(1);
    c
}

fn with_auth(mut c: SmtpConfig, cert: &TestCert, user: &str, password: &str) -> SmtpConfig {
    c.ca_file = Some(cert.cert.clone());
    c.username = Some(user.into());
    c.password = Some(Secret::new(password));
    c
}

/// A message with what SMTP transparency and 8BITMIME must carry intact: a line that is a single
/// dot, lines starting with dots, non-ASCII UTF-8, a long line, and CRLF throughout.
fn tricky_message(ticket: u64) -> Arc<[u8]> {
    let mut m = format!(
        "From: mailgate-notify@example.com\r\nTo: admin@example.com\r\n\
         Message-ID: <t{ticket}@mailgate.test>\r\nSubject: =?UTF-8?Q?Pr=C3=BCfung?=\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    );
    m.push_str(".\r\n..two dots\r\n.leading dot\r\nGrüße, Привет — ticket ");
    m.push_str(&ticket.to_string());
    m.push_str("\r\n");
    m.push_str(&"x".repeat(900));
    m.push_str("\r\n\r\n.\r\nend\r\n");
    Arc::from(m.into_bytes().into_boxed_slice())
}

fn outgoing(ticket: u64, recipients: &[&str]) -> Outgoing {
    Outgoing {
        ticket,
        message_id: format!("<t{ticket}@mailgate.test>"),
        envelope_from: Some("mailgate-notify@example.com".into()),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        bytes: tricky_message(ticket),
    }
}

async fn next(rx: &mut Receiver<Completion>, within: Duration) -> Completion {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("completion in time")
        .expect("channel open")
}

/// One notification sent through a relay in `mode` that requires AUTH (user `notify`, password
/// `s3cret`) with `mechanisms`, by an outbox that trusts the relay's self-signed certificate
/// through `ca_file` and logs in with `password`.
struct Sent {
    relay: Aiosmtpd,
    outbox: deliver::Outbox,
    completion: Completion,
    bytes: Arc<[u8]>,
    _cert: TestCert,
}

async fn send_one_authenticated(
    mode: &str,
    tls: TlsMode,
    mechanisms: &str,
    password: &str,
) -> Sent {
    let cert = TestCert::generate();
    let relay = Aiosmtpd::start(&Setup {
        mode,
        cert: Some(&cert),
        auth: Some(("notify", "s3cret")),
        mechanisms,
        pipelining: false,
    });
    let cfg = with_auth(config(relay.port(), tls), &cert, "notify", password);
    let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
    let out = outgoing(1, &["admin@example.com", "oncall@example.com"]);
    let bytes = out.bytes.clone();
    outbox.submit(out).await;
    let completion = next(&mut rx, Duration::from_secs(20)).await;
    assert!(rx.try_recv().is_err(), "exactly one completion");
    Sent {
        relay,
        outbox,
        completion,
        bytes,
        _cert: cert,
    }
}

/// Delivered to both recipients over TLS after AUTH, byte for byte, in one write per message.
async fn assert_delivered(sent: Sent) {
    let c = &sent.completion;
    assert_eq!(c.ticket, 1);
    assert_eq!(
        c.accepted,
        ["admin@example.com", "oncall@example.com"],
        "{c:?}"
    );
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    let stored = sent.relay.messages();
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert!(s.tls && s.authenticated);
    assert_eq!(s.mail_from, "mailgate-notify@example.com");
    assert_eq!(s.rcpt_tos, ["admin@example.com", "oncall@example.com"]);
    assert_eq!(
        String::from_utf8_lossy(&s.bytes),
        String::from_utf8_lossy(&sent.bytes)
    );
    assert_eq!(s.bytes, &sent.bytes[..], "byte-identical");
    let w = sent.outbox.wire_stats();
    assert_eq!(w.connections, w.connections_nodelay);
    assert_eq!(
        w.messages_one_write, w.messages,
        "body and terminator in one write under TLS"
    );
    sent.outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn starttls_with_auth_plain_and_the_ca_file_delivers_byte_identical() {
    assert_delivered(
        send_one_authenticated("starttls", TlsMode::Starttls, "PLAIN", "s3cret").await,
    )
    .await;
}

#[tokio::test]
async fn starttls_with_auth_login_and_the_ca_file_delivers_byte_identical() {
    assert_delivered(
        send_one_authenticated("starttls", TlsMode::Starttls, "LOGIN", "s3cret").await,
    )
    .await;
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers_byte_identical() {
    assert_delivered(send_one_authenticated("tls", TlsMode::Tls, "PLAIN,LOGIN", "s3cret").await)
        .await;
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_error_naming_the_cause() {
    let sent = send_one_authenticated("starttls", TlsMode::Starttls, "PLAIN,LOGIN", "wrong").await;
    let c = &sent.completion;
    assert!(c.accepted.is_empty());
    assert_eq!(c.rejected.len(), 2, "each recipient reported");
    let e = &c.rejected[0].error;
    assert!(!e.is_retryable());
    assert_eq!(e.reply_code(), Some(535));
    assert!(
        matches!(
            e,
            DeliverError::PermanentReply {
                stage: Stage::Auth,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("AUTH") && text.contains("535"), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(sent.relay.messages().is_empty());
    sent.outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn starttls_required_but_not_offered_refuses_to_send_in_clear_text() {
    let relay = Aiosmtpd::start(&Setup {
        mode: "plain",
        cert: None,
        auth: None,
        mechanisms: "PLAIN",
        pipelining: false,
    });
    let cfg = config(relay.port(), TlsMode::Starttls);
    let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
    outbox.submit(outgoing(4, &["admin@example.com"])).await;
    let c = next(&mut rx, Duration::from_secs(20)).await;
    assert!(c.accepted.is_empty());
    let e = &c.rejected[0].error;
    assert_eq!(e, &DeliverError::StarttlsUnavailable);
    assert!(e.to_string().contains("forbids sending in clear text"));
    assert!(
        relay.messages().is_empty(),
        "nothing may go out in clear text"
    );
    outbox.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_untrusted_certificate_sends_nothing_and_keeps_the_notification_for_retry() {
    let cert = TestCert::generate();
    let relay = Aiosmtpd::start(&Setup {
        mode: "starttls",
        cert: Some(&cert),
        auth: None,
        mechanisms: "PLAIN",
        pipelining: false,
    });
    // No ca_file: the self-signed certificate is not trusted.
    let cfg = config(relay.port(), TlsMode::Starttls);
    let (outbox, mut rx) = deliver::start(&cfg, &prometheus::Registry::new()).unwrap();
    outbox.submit(outgoing(5, &["admin@example.com"])).await;
    let opened = rig::wait_until(Duration::from_secs(10), || {
        (outbox.breaker() != BreakerState::Closed).then_some(())
    })
    .await;
    assert!(opened.is_some(), "repeated TLS failures open the breaker");
    assert!(rx.try_recv().is_err(), "a TLS failure is not a completion");
    assert_eq!(outbox.depth(), 1);
    assert!(relay.messages().is_empty());
    outbox.shutdown(Duration::from_millis(100)).await;
    assert!(rx.recv().await.is_none(), "abandoned, never completed");
}

#[tokio::test]
async fn each_recipient_is_classified_on_its_own_reply() {
    classify_each_recipient(false).await;
}

/// The same with PIPELINING: the replies to one group (MAIL, three RCPTs, DATA) are matched to
/// their commands in order, and the group left as one write.
#[tokio::test]
async fn each_recipient_is_classified_on_its_own_reply_when_pipelined() {
    classify_each_recipient(true).await;
}

async fn classify_each_recipient(pipelining: bool) {
    let relay = Aiosmtpd::start(&Setup {
        mode: "plain",
        cert: None,
        auth: None,
        mechanisms: "PLAIN",
        pipelining,
    });
    let cfg = config(relay.port(), TlsMode::None);
    let registry = prometheus::Registry::new();
    let (outbox, mut rx) = deliver::start(&cfg, &registry).unwrap();
    outbox
        .submit(outgoing(
            9,
            &["ok@example.com", "perm-x@example.com", "temp-y@example.com"],
        ))
        .await;
    let c = next(&mut rx, Duration::from_secs(20)).await;
    assert_eq!(c.accepted, ["ok@example.com", "temp-y@example.com"]);
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].recipient, "perm-x@example.com");
    assert_eq!(c.rejected[0].error.reply_code(), Some(550));
    assert!(matches!(
        c.rejected[0].error,
        DeliverError::PermanentReply {
            stage: Stage::RcptTo,
            ..
        }
    ));
    // The accepted recipient got the message once; the transient one alone, later, once.
    let stored = relay.messages();
    let rcpts: Vec<Vec<String>> = stored.iter().map(|s| s.rcpt_tos.clone()).collect();
    assert_eq!(rcpts, [vec!["ok@example.com"], vec!["temp-y@example.com"]]);
    assert!(rx.try_recv().is_err(), "exactly one completion");
    let text = mailgate_notify::telemetry::encode_text(&registry);
    let sample = |s: &str| mailgate_notify::telemetry::sample(&text, s).unwrap_or(-1.0);
    assert_eq!(sample("mailgate_notify_deliver_sent_recipients_total"), 2.0);
    assert_eq!(
        sample(
            "mailgate_notify_deliver_failed_recipients_total{error_code=\"smtp_permanent_reply\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            "mailgate_notify_deliver_retried_recipients_total{error_code=\"smtp_transient_reply\"}"
        ),
        2.0
    );
    // Three transactions: the first (a message), the transient recipient's retry refused
    // again (no message: its group, then RSET), the second retry (a message). Pipelined, two
    // writes each, plus two EHLOs and QUIT per connection; in turn, at least four per message.
    let w = outbox.wire_stats();
    assert_eq!(w.messages, 2, "{w:?}");
    if pipelining {
        assert!(w.writes <= 2 * 3 + 4 * w.connections, "{w:?}");
    } else {
        assert!(w.writes >= 4 * w.messages, "{w:?}");
    }
    outbox.shutdown(Duration::from_secs(5)).await;
}
