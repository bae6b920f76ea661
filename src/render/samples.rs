//! Sample requests of every notification kind: the full one (every optional value present,
//! every list non-empty) is what the load-time checker resolves names against; the bare one
//! (everything optional absent, nothing detected) is rendered too, so a template that only works
//! when a value is present fails at load rather than at 3 a.m.

use super::model::*;
use crate::config::NotifyGroup;
use crate::event::time::Timestamp;
use crate::event::*;
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The notification kinds, each with its own variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Schema {
    /// `rule/*` except the cap summary.
    Rule,
    /// `rule/cap-summary`.
    RuleCap,
    /// `bounce/*` except the burst summary.
    Bounce,
    /// `bounce/burst-summary`.
    BounceBurst,
    /// `application/*`.
    Application,
}

impl Schema {
    /// The kind of a template name, from its directory; `None` outside `rule/`, `bounce/`,
    /// `application/`.
    pub fn of(name: &str) -> Option<Schema> {
        match name {
            "rule/cap-summary" => Some(Schema::RuleCap),
            "bounce/burst-summary" => Some(Schema::BounceBurst),
            n if n.starts_with("rule/") => Some(Schema::Rule),
            n if n.starts_with("bounce/") => Some(Schema::Bounce),
            n if n.starts_with("application/") => Some(Schema::Application),
            _ => None,
        }
    }

    /// For messages: "rule", "bounce burst summary"…
    pub fn label(self) -> &'static str {
        match self {
            Schema::Rule => "rule",
            Schema::RuleCap => "rule cap summary",
            Schema::Bounce => "bounce",
            Schema::BounceBurst => "bounce burst summary",
            Schema::Application => "application",
        }
    }

    /// Every kind.
    pub const ALL: [Schema; 5] = [
        Schema::Rule,
        Schema::RuleCap,
        Schema::Bounce,
        Schema::BounceBurst,
        Schema::Application,
    ];
}

fn ts(secs: i64) -> Timestamp {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn node(comment: bool) -> Node {
    Node {
        node_id: "node-02".into(),
        ip: "10.20.30.12".into(),
        port: 9045,
        comment: comment.then(|| "Moscow DC, rack 4".into()),
        is_control: false,
    }
}

/// A verdict with every field present and two rules with detections.
pub fn verdict_full() -> ScanVerdict {
    let det = |object: Option<&str>, status: &str| Detection {
        module: DetectionModule::AntiVirus,
        status: status.into(),
        threat_name: Some("HEUR:Trojan.Script.Generic".into()),
        object_name: object.map(Into::into),
        object_size: Some(20480),
        object_action: ObjectAction::Deleted,
    };
    ScanVerdict {
        event_id: "sample-event".into(),
        cluster_id: "sample-cluster".into(),
        node: node(true),
        message_id: "ksmg-sample".into(),
        smtp_message_id: Some("<sample@sender.example>".into()),
        sender: "sender@sender.example".into(),
        sender_ip: Some("198.51.100.23".into()),
        sender_authenticated: true,
        all_recipients: vec!["bob@example.com".into(), "dave@example.com".into()],
        subject: Some("Invoice".into()),
        received_at: ts(1_796_102_130),
        size: 48213,
        message_action: MessageAction::AttachmentDeleted,
        backed_up: true,
        triggered_rules: vec![
            RuleTrigger {
                rule_id: "r1".into(),
                rule_name: Some("Default anti-virus".into()),
                affected_recipients: vec!["bob@example.com".into()],
                detections: vec![det(Some("invoice.html"), "INFECTED"), det(None, "MACROS")],
            },
            RuleTrigger {
                rule_id: "r2".into(),
                rule_name: None,
                affected_recipients: vec!["dave@example.com".into()],
                detections: vec![det(Some("terms.docm"), "PHISHING")],
            },
        ],
        original_headers: Some("From: a@b\r\nSubject: Invoice\r\n".into()),
    }
}

/// A verdict with every optional field absent, the null sender and nothing detected (one rule
/// fired: a notification always has at least one).
pub fn verdict_bare() -> ScanVerdict {
    ScanVerdict {
        event_id: "sample-event".into(),
        cluster_id: "sample-cluster".into(),
        node: node(false),
        message_id: "ksmg-sample".into(),
        smtp_message_id: None,
        sender: String::new(),
        sender_ip: None,
        sender_authenticated: false,
        all_recipients: Vec::new(),
        subject: None,
        received_at: ts(1_796_102_130),
        size: 0,
        message_action: MessageAction::Unknown,
        backed_up: false,
        triggered_rules: vec![RuleTrigger {
            rule_id: "r1".into(),
            rule_name: None,
            affected_recipients: Vec::new(),
            detections: Vec::new(),
        }],
        original_headers: None,
    }
}

fn bounce_event(full: bool) -> BounceEvent {
    BounceEvent {
        event_id: "sample-event".into(),
        cluster_id: "sample-cluster".into(),
        node: node(full),
        class: if full {
            BounceClass::Resource
        } else {
            BounceClass::Unknown
        },
        queue_id: "4Q2fXk1Lm9zB7".into(),
        message_id: full.then(|| "ksmg-sample".into()),
        smtp_message_id: full.then(|| "<sample@sender.example>".into()),
        sender: if full {
            "alice@example.com".into()
        } else {
            String::new()
        },
        recipients: if full {
            vec![Recipient {
                address: "bob@partner.example".into(),
                original_recipient: Some("rfc822;bob@partner.example".into()),
                action: RecipientAction::Failed,
                status: "4.3.1".into(),
                diagnostic_code: Some("X-Postfix; insufficient free disk space".into()),
                remote_mta: Some("mx1.partner.example".into()),
            }]
        } else {
            Vec::new()
        },
        reason: full.then(|| "insufficient free disk space".into()),
        subject: full.then(|| "Q4 report".into()),
        arrival_date: ts(1_796_073_242),
        occurred_at: ts(1_796_073_243),
        original_headers: full.then(|| "From: a@b\r\nSubject: Q4 report\r\n".into()),
    }
}

fn app_error(full: bool) -> AppError {
    AppError {
        status: ErrorStatus::New,
        group: ErrorGroup::Synchronization,
        kind: ErrorKind::DataSyncFailed,
        node: node(full),
        first_seen: ts(1_796_073_000),
        last_occurrence: ts(1_796_073_243),
        last_successful_sync: full.then(|| ts(1_796_000_000)),
        message: full.then(|| "connection refused".into()),
        attributes: if full {
            BTreeMap::from([("outdated_days".to_string(), "3".to_string())])
        } else {
            BTreeMap::new()
        },
    }
}

/// The full and the bare sample of a kind, each with a description for messages.
pub fn requests(schema: Schema) -> [(&'static str, Request); 2] {
    let full = "the full sample (every value present)";
    let bare = "the bare sample (optional values absent, empty lists)";
    match schema {
        Schema::Rule => {
            let rule = |v: ScanVerdict| {
                let v = Arc::new(v);
                Request::Rule(RuleNotice {
                    rules: RuleRef::all(&v),
                    affected_recipients: v.all_recipients.clone(),
                    verdict: v,
                    group: NotifyGroup::General,
                    template: "rule/general".into(),
                    recipient: "security@example.com".into(),
                    language: "en".into(),
                })
            };
            [(full, rule(verdict_full())), (bare, rule(verdict_bare()))]
        }
        Schema::RuleCap => {
            let cap = |v: ScanVerdict, sent| {
                Request::RuleCapSummary(RuleCapSummary {
                    verdict: Arc::new(v),
                    sent,
                    withheld: sent * 2,
                    recipients: vec!["security@example.com".into()],
                    language: "en".into(),
                })
            };
            [
                (full, cap(verdict_full(), 100)),
                (bare, cap(verdict_bare(), 0)),
            ]
        }
        Schema::Bounce => {
            let b = |full| {
                Request::Bounce(BounceNotice {
                    event: Arc::new(bounce_event(full)),
                    recipients: vec!["postmaster@example.com".into()],
                    language: "en".into(),
                })
            };
            [(full, b(true)), (bare, b(false))]
        }
        Schema::BounceBurst => {
            let b = |full: bool| {
                Request::BounceBurst(BounceBurstSummary {
                    window_start: ts(1_796_073_000),
                    window_end: ts(1_796_073_060),
                    counts: if full {
                        BTreeMap::from([(BounceClass::Resource, 40), (BounceClass::Software, 2)])
                    } else {
                        BTreeMap::from([(BounceClass::Unknown, 1)])
                    },
                    first: vec![BounceBrief {
                        queue_id: "4Q2fXk1Lm9zB7".into(),
                        class: if full {
                            BounceClass::Resource
                        } else {
                            BounceClass::Unknown
                        },
                        reason: full.then(|| "insufficient free disk space".into()),
                    }],
                    total: if full { 42 } else { 1 },
                    recipients: vec!["postmaster@example.com".into()],
                    language: "en".into(),
                    id_seed: "sample".into(),
                })
            };
            [(full, b(true)), (bare, b(false))]
        }
        Schema::Application => {
            let a = |full: bool| {
                Request::Application(ApplicationNotice {
                    kind: ApplicationKind::Change,
                    cluster_id: "sample-cluster".into(),
                    tz: Tz::Europe__Moscow,
                    at: ts(1_796_073_300),
                    errors: vec![app_error(full)],
                    recipients: vec!["admin@example.com".into()],
                    language: "en".into(),
                    id_seed: "sample".into(),
                })
            };
            [(full, a(true)), (bare, a(false))]
        }
    }
}
