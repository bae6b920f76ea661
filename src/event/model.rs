//! The domain model of the event contract (DESIGN §2). Field names are binding: the gateway
//! produces them. Every enum has an `Unknown` variant so that a symbol added by a newer gateway
//! decodes (Avro resolves it to the reader's default `UNKNOWN`; JSON maps it with `serde(other)`).

use super::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A gateway node, as every event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id of the node within its cluster.
    pub node_id: String,
    /// Address shown in notifications (`%NODE_IP%`).
    pub ip: String,
    /// Port of the node's management interface (`%NODE_PORT%`).
    pub port: u16,
    /// Free-text comment an administrator gave the node.
    #[serde(default)]
    pub comment: Option<String>,
    /// Whether this node is the cluster's Control node (whose zone sets "midnight").
    pub is_control: bool,
}

macro_rules! contract_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $sym:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("`", $sym, "`")]
                #[serde(rename = $sym)]
                $variant,
            )+
            /// A symbol this build does not know (a newer producer); never breaks decoding.
            #[serde(other, rename = "UNKNOWN")]
            Unknown,
        }

        impl $name {
            /// Every variant, `Unknown` last; used to pre-create metric labels and in tests.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+ $name::Unknown];

            /// The contract's symbol (`"RAISED"`, `"ANTI_VIRUS"`…).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $sym,)+
                    $name::Unknown => "UNKNOWN",
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

contract_enum! {
    /// Error group shown in application notifications.
    ErrorGroup {
        Protection = "PROTECTION",
        Synchronization = "SYNCHRONIZATION",
        LdapIntegration = "LDAP_INTEGRATION",
        Licensing = "LICENSING",
        Backup = "BACKUP",
        System = "SYSTEM",
    }
}

contract_enum! {
    /// Which application error (the KSMG 2.x list, then the earlier KSMG/KLMS ones).
    ErrorKind {
        AvBasesOutdated = "AV_BASES_OUTDATED",
        AsBasesOutdated = "AS_BASES_OUTDATED",
        ApBasesOutdated = "AP_BASES_OUTDATED",
        BasesUpdateFailed = "BASES_UPDATE_FAILED",
        KsnIssues = "KSN_ISSUES",
        KsnRequestsFiltered = "KSN_REQUESTS_FILTERED",
        NodeUnavailable = "NODE_UNAVAILABLE",
        DataSyncFailed = "DATA_SYNC_FAILED",
        SettingsApplyFailed = "SETTINGS_APPLY_FAILED",
        TimeMismatch = "TIME_MISMATCH",
        ClusterConfigIssues = "CLUSTER_CONFIG_ISSUES",
        LdapConnectionFailed = "LDAP_CONNECTION_FAILED",
        LdapRulesDataSaveFailed = "LDAP_RULES_DATA_SAVE_FAILED",
        LdapAutofillDataSaveFailed = "LDAP_AUTOFILL_DATA_SAVE_FAILED",
        LicenseExpiresSoon = "LICENSE_EXPIRES_SOON",
        LicenseExpired = "LICENSE_EXPIRED",
        KeyBlocked = "KEY_BLOCKED",
        BackupAlmostFull = "BACKUP_ALMOST_FULL",
        BackupPlacementFailed = "BACKUP_PLACEMENT_FAILED",
        BackupCleanupFailed = "BACKUP_CLEANUP_FAILED",
        DiskSpaceLow = "DISK_SPACE_LOW",
    }
}

contract_enum! {
    /// Whether an application error appeared (or occurred again) or is gone.
    ErrorState {
        Raised = "RAISED",
        Resolved = "RESOLVED",
    }
}

contract_enum! {
    /// The MTA's notice class, as Postfix's `notify_classes`.
    BounceClass {
        Bounce = "BOUNCE",
        DoubleBounce = "DOUBLE_BOUNCE",
        Delay = "DELAY",
        Resource = "RESOURCE",
        Software = "SOFTWARE",
        Policy = "POLICY",
        Protocol = "PROTOCOL",
        Data = "DATA",
    }
}

contract_enum! {
    /// RFC 3464 per-recipient action.
    RecipientAction {
        Failed = "FAILED",
        Delayed = "DELAYED",
        Delivered = "DELIVERED",
        Relayed = "RELAYED",
        Expanded = "EXPANDED",
    }
}

contract_enum! {
    /// What the gateway finally did with the scanned message (`%MESSAGE_ACTION%`).
    MessageAction {
        Skipped = "SKIPPED",
        Disinfected = "DISINFECTED",
        AttachmentDeleted = "ATTACHMENT_DELETED",
        Deleted = "DELETED",
        Rejected = "REJECTED",
    }
}

contract_enum! {
    /// Scan module that produced a detection.
    DetectionModule {
        AntiVirus = "ANTI_VIRUS",
        AntiSpam = "ANTI_SPAM",
        AntiPhishing = "ANTI_PHISHING",
        ContentFiltering = "CONTENT_FILTERING",
        LinkScanning = "LINK_SCANNING",
        MailSenderAuth = "MAIL_SENDER_AUTH",
        Kata = "KATA",
    }
}

contract_enum! {
    /// What the gateway did with one detected object (`%OBJECT_ACTION%`).
    ObjectAction {
        Blocked = "BLOCKED",
        NotBlocked = "NOT_BLOCKED",
        Disinfected = "DISINFECTED",
        Deleted = "DELETED",
        Skipped = "SKIPPED",
    }
}

/// An error of the gateway itself appeared or was resolved. Key: `cluster_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationEvent {
    /// Unique id of this event (dedup, tracing).
    pub event_id: String,
    /// Gateway cluster; the unit of aggregation.
    pub cluster_id: String,
    /// Node where the error occurred.
    pub node: Node,
    /// IANA zone of the Control node; else the configured default.
    #[serde(default)]
    pub control_timezone: Option<String>,
    /// Error group shown in the notification.
    pub group: ErrorGroup,
    /// Which error.
    pub kind: ErrorKind,
    /// Appeared (or occurred again) / gone.
    pub state: ErrorState,
    /// Time of this occurrence.
    #[serde(with = "time::required")]
    pub occurred_at: Timestamp,
    /// For SYNCHRONIZATION and LDAP_INTEGRATION errors.
    #[serde(default, with = "time::optional")]
    pub last_successful_sync_at: Option<Timestamp>,
    /// Human detail from the gateway.
    #[serde(default)]
    pub message: Option<String>,
    /// Extra values, e.g. `bases_issue_date`, `outdated_days`, `free_bytes`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Per-recipient delivery status of a bounce (RFC 3464 fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Final recipient address.
    pub address: String,
    /// Original recipient before rewriting, if any.
    #[serde(default)]
    pub original_recipient: Option<String>,
    /// What happened to this recipient.
    pub action: RecipientAction,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// Remote server's diagnostic, e.g. `smtp; 550 5.1.1 user unknown`.
    #[serde(default)]
    pub diagnostic_code: Option<String>,
    /// Remote MTA that answered.
    #[serde(default)]
    pub remote_mta: Option<String>,
}

/// The MTA could not deliver (or delayed) a message. Key: `queue_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BounceEvent {
    /// Unique id of this event.
    pub event_id: String,
    /// Gateway cluster.
    pub cluster_id: String,
    /// Node whose MTA produced the notice.
    pub node: Node,
    /// Notice class; only enabled classes are notified.
    pub class: BounceClass,
    /// MTA queue id.
    pub queue_id: String,
    /// Gateway-assigned message id.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Message-ID header of the original.
    #[serde(default)]
    pub smtp_message_id: Option<String>,
    /// Envelope sender; empty string for the null sender `<>`.
    pub sender: String,
    /// Per-recipient delivery status.
    pub recipients: Vec<Recipient>,
    /// e.g. `insufficient free disk space`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Original subject (attacker-controlled).
    #[serde(default)]
    pub subject: Option<String>,
    /// When the original arrived.
    #[serde(with = "time::required")]
    pub arrival_date: Timestamp,
    /// When the notice was produced.
    #[serde(with = "time::required")]
    pub occurred_at: Timestamp,
    /// Header block of the original (never the body).
    #[serde(default)]
    pub original_headers: Option<String>,
}

/// One detected object (or the whole message when `object_name` is null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// Scan module.
    pub module: DetectionModule,
    /// Scan status (`INFECTED`, `SPAM`, `PHISHING`…); open set, hence a string (`%STATUS%`).
    pub status: String,
    /// Threat or verdict name, if any.
    #[serde(default)]
    pub threat_name: Option<String>,
    /// Object (attachment) name; null means the whole message (`%OBJECT_NAME%`).
    #[serde(default)]
    pub object_name: Option<String>,
    /// Object size in bytes (`%OBJECT_SIZE%` inside the object list).
    #[serde(default)]
    pub object_size: Option<u64>,
    /// What was done with the object (`%OBJECT_ACTION%`).
    pub object_action: ObjectAction,
}

/// One scan rule that fired on the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTrigger {
    /// Rule id; selects the rule's notification settings.
    pub rule_id: String,
    /// Human rule name (`%AFFECTED_RULES%`).
    #[serde(default)]
    pub rule_name: Option<String>,
    /// Recipients the rule applied to (`%AFFECTED_RECIPIENTS%`).
    pub affected_recipients: Vec<String>,
    /// What the rule's scans found.
    pub detections: Vec<Detection>,
}

/// Scan rules fired on a message. Key: `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanVerdict {
    /// Unique id of this event.
    pub event_id: String,
    /// Gateway cluster.
    pub cluster_id: String,
    /// Node that scanned the message (`%NODE_IP%`, `%NODE_PORT%`).
    pub node: Node,
    /// Gateway-assigned message id (`%MESSAGE_ID%`).
    pub message_id: String,
    /// Message-ID header of the original (`%SMTP_MESSAGE_ID%`).
    #[serde(default)]
    pub smtp_message_id: Option<String>,
    /// Envelope sender; empty for the null sender (`%SENDER%`).
    pub sender: String,
    /// Connecting client's address (`%SENDER_IP%`).
    #[serde(default)]
    pub sender_ip: Option<String>,
    /// SPF/DKIM/DMARC aligned pass; gates notifications to the sender (anti-backscatter).
    pub sender_authenticated: bool,
    /// Every envelope recipient (`%ALL_RECIPIENTS%`).
    pub all_recipients: Vec<String>,
    /// Original subject, attacker-controlled (`%SUBJECT%`).
    #[serde(default)]
    pub subject: Option<String>,
    /// When the gateway received the message (`%DATE%`).
    #[serde(with = "time::required")]
    pub received_at: Timestamp,
    /// Message size in bytes (`%OBJECT_SIZE%` outside the object list).
    pub size: u64,
    /// Final action on the message (`%MESSAGE_ACTION%`).
    pub message_action: MessageAction,
    /// Whether the original went to backup (adds ", backed up" to `%MESSAGE_ACTION%`).
    pub backed_up: bool,
    /// Rules that fired (`%AFFECTED_RULES%`).
    pub triggered_rules: Vec<RuleTrigger>,
    /// Header block of the original.
    #[serde(default)]
    pub original_headers: Option<String>,
}

/// Which of the three event types a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `ApplicationEvent`, topic `application-events`.
    Application,
    /// `BounceEvent`, topic `bounces`.
    Bounce,
    /// `ScanVerdict`, topic `scan-verdicts`.
    ScanVerdict,
}

impl EventKind {
    /// The three kinds, in topic order.
    pub const ALL: [EventKind; 3] = [
        EventKind::Application,
        EventKind::Bounce,
        EventKind::ScanVerdict,
    ];

    /// The Avro record name of this kind's schema.
    pub fn record_name(self) -> &'static str {
        match self {
            EventKind::Application => "ApplicationEvent",
            EventKind::Bounce => "BounceEvent",
            EventKind::ScanVerdict => "ScanVerdict",
        }
    }

    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Application => "application",
            EventKind::Bounce => "bounce",
            EventKind::ScanVerdict => "scan_verdict",
        }
    }
}

/// One decoded event of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// From the application-events topic.
    Application(ApplicationEvent),
    /// From the bounces topic.
    Bounce(BounceEvent),
    /// From the scan-verdicts topic.
    ScanVerdict(ScanVerdict),
}

impl Event {
    /// Which kind this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Application(_) => EventKind::Application,
            Event::Bounce(_) => EventKind::Bounce,
            Event::ScanVerdict(_) => EventKind::ScanVerdict,
        }
    }

    /// The record key the contract prescribes: `cluster_id`, `queue_id` or `message_id`.
    pub fn key(&self) -> &str {
        match self {
            Event::Application(e) => &e.cluster_id,
            Event::Bounce(e) => &e.queue_id,
            Event::ScanVerdict(e) => &e.message_id,
        }
    }

    /// The event's unique id.
    pub fn event_id(&self) -> &str {
        match self {
            Event::Application(e) => &e.event_id,
            Event::Bounce(e) => &e.event_id,
            Event::ScanVerdict(e) => &e.event_id,
        }
    }
}
