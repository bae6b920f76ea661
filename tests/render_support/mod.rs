//! Shared by the render tests: the test config, representative and hostile events of every
//! kind, a request for every built-in template, and a readable view of a rendered message
//! (its headers as sent, its parts decoded by a real MIME parser).
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use mailgate_notify::config::{Config, NotifyGroup};
use mailgate_notify::event::decode::decode_json;
use mailgate_notify::event::*;
use mailgate_notify::render::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn config() -> Config {
    Config::load(&root().join("tests/fixtures/render/config.toml")).unwrap()
}

pub fn renderer(config: &Config) -> (Renderer, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    (Renderer::new(config, &registry).unwrap(), registry)
}

fn event(name: &str, kind: EventKind) -> Event {
    let bytes = std::fs::read(root().join("tests/fixtures/events").join(name)).unwrap();
    decode_json(kind, &bytes).unwrap()
}

pub fn verdict() -> ScanVerdict {
    match event("scan_verdict.json", EventKind::ScanVerdict) {
        Event::ScanVerdict(v) => v,
        _ => unreachable!(),
    }
}

pub fn bounce() -> BounceEvent {
    match event("bounce_event.json", EventKind::Bounce) {
        Event::Bounce(b) => b,
        _ => unreachable!(),
    }
}

pub fn application() -> ApplicationEvent {
    match event("application_event.json", EventKind::Application) {
        Event::Application(a) => a,
        _ => unreachable!(),
    }
}

/// Every hostile trait at once: an encoded word that would decode to something else, CR/LF
/// that would start a `Bcc:` header, emoji, right-to-left text, a live link, and 10 KB.
pub fn hostile_subject() -> String {
    format!(
        "=?utf-8?B?SGVsbG8gV29ybGQ=?= urgent\r\nBcc: victim@example.com\r\n 🎉 مرحبا שלום http://evil.example/x {}",
        "A".repeat(10 * 1024)
    )
}

pub const EVIL_FILE_NAMES: [&str; 4] = [
    "<script>alert(1)</script>.html",
    "report\r\nX-Injected: yes.pdf",
    "photo_\u{202E}gpj.exe",
    "invoice 🎉 מסמך.pdf",
];

pub fn hostile_verdict() -> ScanVerdict {
    let mut v = verdict();
    v.subject = Some(hostile_subject());
    v.smtp_message_id = Some("<x@evil.example>\r\nBcc: victim@example.com".into());
    v.triggered_rules[0].rule_name =
        Some("<b>Block</b> & \"quote\" http://evil.example/rule".into());
    v.triggered_rules[0].detections = EVIL_FILE_NAMES
        .iter()
        .map(|name| Detection {
            module: DetectionModule::ContentFiltering,
            status: "FILTERED_NAME".into(),
            threat_name: Some("Trojan <img src=x> http://evil.example/x".into()),
            object_name: Some((*name).into()),
            object_size: Some(1234),
            object_action: ObjectAction::Blocked,
        })
        .collect();
    v.message_action = MessageAction::Rejected;
    v.backed_up = false;
    v.original_headers = Some(format!(
        "Subject: {}\r\nX-Evil: http://evil.example/x\r\n\r\nBODY MUST NOT APPEAR\r\n",
        "=?utf-8?B?SGVsbG8gV29ybGQ=?="
    ));
    v
}

pub fn hostile_bounce() -> BounceEvent {
    let mut b = bounce();
    b.subject = Some(hostile_subject());
    b.reason = Some(
        "disk full\r\nBcc: victim@example.com <script>x</script> http://evil.example/x".into(),
    );
    b.recipients[0].diagnostic_code =
        Some("smtp; 550 <script>alert(1)</script>\r\nInjected: 1 see http://evil.example/x".into());
    b.recipients[1].remote_mta = Some("mx.\u{202E}evil.example".into());
    b.original_headers = Some(
        "Subject: =?utf-8?B?SGVsbG8gV29ybGQ=?=\r\nX-Evil: <script>http://evil.example/x</script>\r\n\r\nBODY MUST NOT APPEAR\r\n"
            .into(),
    );
    b
}

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn node(id: &str, ip: &str, comment: Option<&str>) -> Node {
    Node {
        node_id: id.into(),
        ip: ip.into(),
        port: 9045,
        comment: comment.map(Into::into),
        is_control: id == "node-01",
    }
}

/// A state with errors in three groups: new, still active and resolved, with sync times.
pub fn app_errors(hostile: bool) -> Vec<AppError> {
    let a = application();
    let mut errors = vec![
        AppError {
            status: ErrorStatus::New,
            group: a.group,
            kind: a.kind,
            node: a.node.clone(),
            first_seen: a.occurred_at,
            last_occurrence: a.occurred_at,
            last_successful_sync: None,
            message: a.message.clone(),
            attributes: a.attributes.clone(),
        },
        AppError {
            status: ErrorStatus::StillActive,
            group: ErrorGroup::Synchronization,
            kind: ErrorKind::DataSyncFailed,
            node: node("node-03", "10.20.30.13", Some("DMZ relay")),
            first_seen: ts("2026-11-30T18:02:00Z"),
            last_occurrence: ts("2026-11-30T21:10:00Z"),
            last_successful_sync: Some(ts("2026-11-30T17:55:00Z")),
            message: Some("connection refused by 10.20.30.11:9045".into()),
            attributes: BTreeMap::new(),
        },
        AppError {
            status: ErrorStatus::Resolved,
            group: ErrorGroup::LdapIntegration,
            kind: ErrorKind::LdapConnectionFailed,
            node: node("node-01", "10.20.30.11", None),
            first_seen: ts("2026-11-30T20:00:00Z"),
            last_occurrence: ts("2026-11-30T20:40:00Z"),
            last_successful_sync: Some(ts("2026-11-30T20:41:00Z")),
            message: None,
            attributes: BTreeMap::new(),
        },
    ];
    if hostile {
        errors[0].message = Some(
            "Disk full <script>alert(1)</script>\r\nX-Injected: yes http://evil.example/x".into(),
        );
        errors[0].node.comment = Some("RTL: שלום 🎉 \u{202E}cod.exe".into());
        errors[0]
            .attributes
            .insert("free_bytes".into(), "1".repeat(500));
    }
    errors
}

pub fn application_notice(kind: ApplicationKind, lang: &str, hostile: bool) -> ApplicationNotice {
    let mut errors = app_errors(hostile);
    if kind == ApplicationKind::Digest {
        errors.retain(|e| e.status != ErrorStatus::Resolved);
        for e in &mut errors {
            e.status = ErrorStatus::StillActive;
        }
    }
    ApplicationNotice {
        kind,
        cluster_id: if hostile {
            "ksmg-prod-msk\r\nBcc: victim@example.com".into()
        } else {
            "ksmg-prod-msk".into()
        },
        tz: chrono_tz::Europe::Moscow,
        at: match kind {
            ApplicationKind::Digest => Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap(),
            ApplicationKind::Change => ts("2026-11-30T21:15:00Z"),
        },
        errors,
        recipients: vec!["admin@example.com".into(), "oncall@example.com".into()],
        language: lang.into(),
        id_seed: format!("{kind:?}:ksmg-prod-msk:2026-12-01"),
    }
}

pub fn burst(lang: &str, hostile: bool) -> BounceBurstSummary {
    let reason = |r: &str| {
        if hostile {
            Some(format!(
                "{r}\r\nBcc: victim@example.com <script>x</script> http://evil.example/x"
            ))
        } else {
            Some(r.to_string())
        }
    };
    BounceBurstSummary {
        window_start: ts("2026-11-30T21:14:00Z"),
        window_end: ts("2026-11-30T21:15:00Z"),
        counts: BTreeMap::from([(BounceClass::Resource, 57), (BounceClass::Software, 3)]),
        first: vec![
            BounceBrief {
                queue_id: "4Q2fXk1Lm9zB7".into(),
                class: BounceClass::Resource,
                reason: reason("insufficient free disk space"),
            },
            BounceBrief {
                queue_id: "4Q2fXk1Lm9zC2".into(),
                class: BounceClass::Resource,
                reason: reason("insufficient free disk space"),
            },
            BounceBrief {
                queue_id: "4Q2fXk1LmA0D9".into(),
                class: BounceClass::Software,
                reason: None,
            },
        ],
        total: 60,
        recipients: vec!["postmaster@example.com".into()],
        language: lang.into(),
        id_seed: "burst:0:2026-11-30T21:14:00Z".into(),
    }
}

/// The request that exercises the built-in template `name` in `lang`.
pub fn request(name: &str, lang: &str, hostile: bool) -> Request {
    let v = Arc::new(if hostile {
        hostile_verdict()
    } else {
        verdict()
    });
    let rule = |group: NotifyGroup, recipient: &str| {
        Request::Rule(RuleNotice {
            rules: RuleRef::all(&v),
            affected_recipients: v.triggered_rules[0].affected_recipients.clone(),
            verdict: v.clone(),
            group,
            template: name.into(),
            recipient: recipient.into(),
            language: lang.into(),
        })
    };
    match name {
        "rule/general" => rule(NotifyGroup::General, "security@example.com"),
        "rule/sender" => rule(NotifyGroup::Sender, &v.sender),
        "rule/recipients" => rule(NotifyGroup::Recipients, "bob@example.com"),
        "rule/additional" => rule(NotifyGroup::Additional, "av-team@example.com"),
        "rule/cap-summary" => Request::RuleCapSummary(RuleCapSummary {
            verdict: v.clone(),
            sent: 100,
            withheld: 49_900,
            recipients: vec!["security@example.com".into()],
            language: lang.into(),
        }),
        "bounce/notice" => Request::Bounce(BounceNotice {
            event: Arc::new(if hostile { hostile_bounce() } else { bounce() }),
            recipients: vec!["postmaster@example.com".into()],
            language: lang.into(),
        }),
        "bounce/burst-summary" => Request::BounceBurst(burst(lang, hostile)),
        "application/digest" => {
            Request::Application(application_notice(ApplicationKind::Digest, lang, hostile))
        }
        "application/change" => {
            Request::Application(application_notice(ApplicationKind::Change, lang, hostile))
        }
        other => panic!("no request for {other}"),
    }
}

/// What a person reviews: the envelope, the headers exactly as sent, then every part decoded.
pub fn readable(r: &Rendered) -> String {
    let text = String::from_utf8_lossy(&r.bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let msg = MessageParser::default().parse(&r.bytes).expect("parses");
    let mut out = format!(
        "#### envelope: MAIL FROM:<{}> RCPT TO:{}\n#### headers as sent\n{}\n#### subject, decoded\n{}\n",
        r.envelope_from.as_deref().unwrap_or(""),
        r.recipients.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join(","),
        head.replace("\r\n", "\n"),
        msg.subject().unwrap_or_default()
    );
    if let Some(p) = msg.text_part(0) {
        out.push_str("#### text/plain, decoded\n");
        out.push_str(&p.text_contents().unwrap_or_default().replace("\r\n", "\n"));
    }
    if let Some(p) = msg.html_part(0) {
        out.push_str("#### text/html, decoded\n");
        out.push_str(&p.text_contents().unwrap_or_default().replace("\r\n", "\n"));
    }
    for a in msg.attachments() {
        out.push_str(&format!(
            "#### attachment {} ({}/{}), decoded\n",
            a.attachment_name().unwrap_or("?"),
            a.content_type().map(|c| c.ctype()).unwrap_or("?"),
            a.content_type().and_then(|c| c.subtype()).unwrap_or("?"),
        ));
        out.push_str(&String::from_utf8_lossy(a.contents()).replace("\r\n", "\n"));
    }
    out
}

/// Compares `actual` with the golden file, or writes it with `UPDATE_GOLDEN=1`. Returns a
/// description of the mismatch, if any.
pub fn golden(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(path) {
        Err(_) => Some(format!("{} is missing", path.display())),
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(actual.lines().count()));
            Some(format!(
                "{} differs from line {}:\n  golden: {:?}\n  actual: {:?}",
                path.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>")
            ))
        }
    }
}

/// Every built-in template name.
pub const TEMPLATES: [&str; 9] = [
    "rule/general",
    "rule/sender",
    "rule/recipients",
    "rule/additional",
    "rule/cap-summary",
    "bounce/notice",
    "bounce/burst-summary",
    "application/digest",
    "application/change",
];
pub const LANGS: [&str; 3] = ["en", "ru", "de"];
