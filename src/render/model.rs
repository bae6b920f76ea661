//! What the renderer is asked to render, and what it hands back. Plain data: the wiring fills
//! these from the deciders' outputs (render does not import the deciders), so each notification
//! kind can be rendered — and previewed — without Kafka or SMTP.

use crate::config::NotifyGroup;
use crate::event::time::Timestamp;
use crate::event::{BounceClass, BounceEvent, ErrorGroup, ErrorKind, Node, ScanVerdict};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One notification to render.
#[derive(Debug, Clone)]
pub enum Request {
    /// A rule-triggering notification to one address of one group.
    Rule(RuleNotice),
    /// The summary sent when the per-message cap withheld rule notifications.
    RuleCapSummary(RuleCapSummary),
    /// A bounce ("system") notice.
    Bounce(BounceNotice),
    /// The summary that replaces a burst of bounce notices.
    BounceBurst(BounceBurstSummary),
    /// An application digest or change notification.
    Application(ApplicationNotice),
}

/// One rule that produced a rule notification (`%AFFECTED_RULES%`). Its detections are looked
/// up in the verdict by `rule_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's id, as in the verdict's `triggered_rules`.
    pub rule_id: String,
    /// The rule's human name, if the gateway sent one.
    pub rule_name: Option<String>,
}

impl RuleRef {
    /// Every triggered rule of a verdict, in event order (what the preview renders).
    pub fn all(verdict: &ScanVerdict) -> Vec<RuleRef> {
        verdict
            .triggered_rules
            .iter()
            .map(|r| RuleRef {
                rule_id: r.rule_id.clone(),
                rule_name: r.rule_name.clone(),
            })
            .collect()
    }
}

/// A rule-triggering notification: one (template, address) pair of one verdict.
#[derive(Debug, Clone)]
pub struct RuleNotice {
    /// The verdict (shared by every notification of the message).
    pub verdict: Arc<ScanVerdict>,
    /// The group this address belongs to (decides the default wording and what is shown).
    pub group: NotifyGroup,
    /// Template name, e.g. `rule/general` or an operator's `rule/strict-sender`.
    pub template: String,
    /// The single recipient address of this notification.
    pub recipient: String,
    /// The triggered rules that produced this notification (`%AFFECTED_RULES%`); their
    /// detections become the `%DATA_BEGIN%…%DATA_END%` objects.
    pub rules: Vec<RuleRef>,
    /// The affected recipients that produced it (`%AFFECTED_RECIPIENTS%`).
    pub affected_recipients: Vec<String>,
    /// Template language (`en`, `ru`, `de`…).
    pub language: String,
}

/// Sent instead of the notifications beyond `rules.max_notifications_per_message`.
#[derive(Debug, Clone)]
pub struct RuleCapSummary {
    /// The verdict whose notifications were capped.
    pub verdict: Arc<ScanVerdict>,
    /// Notifications sent for this message.
    pub sent: usize,
    /// Notifications withheld by the cap.
    pub withheld: usize,
    /// Who gets the summary.
    pub recipients: Vec<String>,
    /// Template language.
    pub language: String,
}

/// A bounce notice to one administrator group.
#[derive(Debug, Clone)]
pub struct BounceNotice {
    /// The bounce.
    pub event: Arc<BounceEvent>,
    /// The group's addresses.
    pub recipients: Vec<String>,
    /// The group's language.
    pub language: String,
}

/// One bounce listed in a burst summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceBrief {
    /// MTA queue id.
    pub queue_id: String,
    /// Notice class.
    pub class: BounceClass,
    /// The MTA's reason, if any.
    pub reason: Option<String>,
}

/// The one notice that replaces the bounce notices beyond the burst limit of a window.
#[derive(Debug, Clone)]
pub struct BounceBurstSummary {
    /// Start of the window.
    pub window_start: Timestamp,
    /// End of the window.
    pub window_end: Timestamp,
    /// Bounces per class in the window.
    pub counts: BTreeMap<BounceClass, u64>,
    /// The first bounces summarised, in arrival order.
    pub first: Vec<BounceBrief>,
    /// How many bounces were summarised in all.
    pub total: u64,
    /// The group's addresses.
    pub recipients: Vec<String>,
    /// The group's language.
    pub language: String,
    /// Stands in for the event id in the Message-ID, e.g. `burst:<partition>:<window start>`.
    pub id_seed: String,
}

/// Digest or change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationKind {
    /// The daily digest of every active error.
    Digest,
    /// New and resolved errors since the last notification.
    Change,
}

impl ApplicationKind {
    /// The template name (`application/digest`, `application/change`).
    pub fn template(self) -> &'static str {
        match self {
            ApplicationKind::Digest => "application/digest",
            ApplicationKind::Change => "application/change",
        }
    }
}

/// Where an error stands relative to the last notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorStatus {
    /// Not shown in the last notification.
    New,
    /// Shown before and still active.
    StillActive,
    /// Shown before and now gone.
    Resolved,
}

impl ErrorStatus {
    /// `NEW`, `STILL_ACTIVE`, `RESOLVED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::New => "NEW",
            ErrorStatus::StillActive => "STILL_ACTIVE",
            ErrorStatus::Resolved => "RESOLVED",
        }
    }
}

/// One application error as the aggregator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// New / resolved / still active.
    pub status: ErrorStatus,
    /// Error group (the notification is grouped by it).
    pub group: ErrorGroup,
    /// Which error.
    pub kind: ErrorKind,
    /// Node where it occurred.
    pub node: Node,
    /// When it was first seen.
    pub first_seen: Timestamp,
    /// Its last occurrence.
    pub last_occurrence: Timestamp,
    /// For synchronization and LDAP errors.
    pub last_successful_sync: Option<Timestamp>,
    /// The gateway's detail text.
    pub message: Option<String>,
    /// Extra values (`outdated_days`, `free_bytes`…).
    pub attributes: BTreeMap<String, String>,
}

/// An application notification for one administrator group.
#[derive(Debug, Clone)]
pub struct ApplicationNotice {
    /// Digest or change notification.
    pub kind: ApplicationKind,
    /// The cluster.
    pub cluster_id: String,
    /// The Control node's zone: every time is shown in it.
    pub tz: Tz,
    /// When the notification is made (the digest's midnight, the change's send time).
    pub at: Timestamp,
    /// The errors to show.
    pub errors: Vec<AppError>,
    /// The group's addresses.
    pub recipients: Vec<String>,
    /// The group's language.
    pub language: String,
    /// Stands in for the event id in the Message-ID, e.g. `digest:<cluster>:<date>`.
    pub id_seed: String,
}

/// A rendered notification, ready for the SMTP sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The `Message-ID` header value, with angle brackets; the same input gives the same id.
    pub message_id: String,
    /// `%NOTIFICATION_ID%` and `X-Mailgate-Notification-ID`.
    pub notification_id: String,
    /// `MAIL FROM`; `None` is the null sender `<>`.
    pub envelope_from: Option<String>,
    /// `RCPT TO` addresses (only syntactically valid ones).
    pub recipients: Vec<String>,
    /// Requested addresses that are not valid addresses and were left out of `recipients`.
    pub invalid_recipients: Vec<String>,
    /// The subject as sent (before RFC 2047 encoding).
    pub subject: String,
    /// The template used (`rule/general`…; `fallback` when the fallback was sent).
    pub template: String,
    /// The complete RFC 5322 message, CRLF line ends.
    pub bytes: Vec<u8>,
    /// Whether the template failed and the fallback was sent instead.
    pub fallback_used: bool,
}
