//! The simulated day: what a three-node gateway cluster `ksmg-demo` publishes from 08:00 one
//! morning (Control node in Europe/Moscow) — application errors raised and resolved across the
//! error groups, scan verdicts across modules and rules, bounces. Scripted incidents at fixed
//! times, plus background mail traffic from a seeded generator, so every run publishes the same
//! events (the test relies on it).

use crate::event::time::Timestamp;
use crate::event::{
    ApplicationEvent, BounceClass, BounceEvent, Detection, DetectionModule, ErrorGroup, ErrorKind,
    ErrorState, Event, EventKind, MessageAction, Node, ObjectAction, Recipient, RecipientAction,
    RuleTrigger, ScanVerdict,
};
use chrono::TimeDelta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The simulated cluster.
pub const CLUSTER: &str = "ksmg-demo";
/// Its Control node's zone: midnight and every time shown are in it.
pub const ZONE: &str = "Europe/Moscow";

/// What one scheduled record carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A well-formed event, encoded by the publisher.
    Event(Box<Event>),
    /// Bytes that are no event at all (a broken producer): they must end in the dead-letter topic.
    Garbage {
        /// Record key.
        key: String,
        /// Record value.
        bytes: Vec<u8>,
    },
}

/// One record to publish when the simulated clock reaches `at`.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Simulated time of publication (the event's `occurred_at` / `received_at`).
    pub at: Timestamp,
    /// Which input topic.
    pub kind: EventKind,
    /// What to publish.
    pub payload: Payload,
}

fn node(n: u8) -> Node {
    let comment = match n {
        1 => "Control node, Moscow DC rack 4",
        2 => "Scanner A, Moscow DC",
        _ => "Scanner B, St Petersburg DC",
    };
    Node {
        node_id: format!("node-{n}"),
        ip: format!("10.20.0.1{n}"),
        port: 9045,
        comment: Some(comment.into()),
        is_control: n == 1,
    }
}

/// Builds the schedule.
struct Day {
    start: Timestamp,
    out: Vec<Scheduled>,
    seq: u32,
}

impl Day {
    /// Simulated instant `h` hours `m` minutes after the start (08:00 local).
    fn t(&self, h: i64, m: i64) -> Timestamp {
        self.start + TimeDelta::minutes(h * 60 + m)
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("demo-{prefix}-{:04}", self.seq)
    }

    fn push(&mut self, at: Timestamp, event: Event) {
        self.out.push(Scheduled {
            at,
            kind: event.kind(),
            payload: Payload::Event(Box::new(event)),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn app(
        &mut self,
        at: Timestamp,
        n: u8,
        group: ErrorGroup,
        kind: ErrorKind,
        state: ErrorState,
        message: Option<&str>,
        last_sync: Option<Timestamp>,
        attributes: &[(&str, &str)],
    ) {
        let event_id = self.next_id("app");
        self.push(
            at,
            Event::Application(ApplicationEvent {
                event_id,
                cluster_id: CLUSTER.into(),
                node: node(n),
                control_timezone: Some(ZONE.into()),
                group,
                kind,
                state,
                occurred_at: at,
                last_successful_sync_at: last_sync,
                message: message.map(str::to_string),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            }),
        );
    }

    fn raise(&mut self, at: Timestamp, n: u8, group: ErrorGroup, kind: ErrorKind, msg: &str) {
        self.app(at, n, group, kind, ErrorState::Raised, Some(msg), None, &[]);
    }

    fn resolve(&mut self, at: Timestamp, n: u8, group: ErrorGroup, kind: ErrorKind) {
        self.app(at, n, group, kind, ErrorState::Resolved, None, None, &[]);
    }

    fn verdict(&mut self, at: Timestamp, v: VerdictSpec<'_>) {
        let event_id = self.next_id("verdict");
        let message_id = format!("MSG-{}", self.seq);
        let smtp_message_id = format!("<{}.{}@{}>", self.seq, at.timestamp(), domain(v.sender));
        let size = 4_000 + u64::from(self.seq) * 731 % 900_000;
        let triggered_rules = v
            .rules
            .iter()
            .map(|r| RuleTrigger {
                rule_id: r.id.into(),
                rule_name: Some(r.name.into()),
                affected_recipients: v.to.iter().map(|s| s.to_string()).collect(),
                detections: r
                    .detections
                    .iter()
                    .map(|d| Detection {
                        module: d.module,
                        status: d.status.into(),
                        threat_name: d.threat.map(str::to_string),
                        object_name: d.object.map(str::to_string),
                        object_size: d.object.map(|_| size / 2),
                        object_action: d.action,
                    })
                    .collect(),
            })
            .collect();
        let headers = format!(
            "Received: from mx.{} ([{}])\r\nFrom: <{}>\r\nTo: {}\r\nMessage-ID: {}\r\n",
            domain(v.sender),
            v.ip,
            v.sender,
            v.to.join(", "),
            smtp_message_id
        );
        self.push(
            at,
            Event::ScanVerdict(ScanVerdict {
                event_id,
                cluster_id: CLUSTER.into(),
                node: node(2 + (self.seq % 2) as u8),
                message_id,
                smtp_message_id: Some(smtp_message_id),
                sender: v.sender.into(),
                sender_ip: Some(v.ip.into()),
                sender_authenticated: v.authenticated,
                all_recipients: v.to.iter().map(|s| s.to_string()).collect(),
                subject: v.subject.map(str::to_string),
                received_at: at,
                size,
                message_action: v.action,
                backed_up: matches!(v.action, MessageAction::Deleted | MessageAction::Rejected),
                triggered_rules,
                original_headers: Some(headers),
            }),
        );
    }

    fn bounce(&mut self, at: Timestamp, b: BounceSpec<'_>) {
        let event_id = self.next_id("bounce");
        let queue_id = format!("4Q{:06X}", 0x1000 + self.seq * 7919);
        let recipients =
            b.to.iter()
                .map(|a| Recipient {
                    address: a.to_string(),
                    original_recipient: None,
                    action: b.action,
                    status: b.status.into(),
                    diagnostic_code: b.diagnostic.map(str::to_string),
                    remote_mta: b.remote_mta.map(str::to_string),
                })
                .collect();
        self.push(
            at,
            Event::Bounce(BounceEvent {
                event_id,
                cluster_id: CLUSTER.into(),
                node: node(b.node),
                class: b.class,
                queue_id,
                message_id: Some(format!("MSG-B{}", self.seq)),
                smtp_message_id: Some(format!("<b{}@{}>", self.seq, domain(b.sender))),
                sender: b.sender.into(),
                recipients,
                reason: b.reason.map(str::to_string),
                subject: b.subject.map(str::to_string),
                arrival_date: at - TimeDelta::minutes(3),
                occurred_at: at,
                original_headers: Some(b.headers.map_or_else(
                    || {
                        format!(
                            "From: <{}>\r\nTo: {}\r\nSubject: {}\r\n",
                            b.sender,
                            b.to.join(", "),
                            b.subject.unwrap_or("")
                        )
                    },
                    str::to_string,
                )),
            }),
        );
    }
}

fn domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("localhost", |(_, d)| d)
}

struct Det<'a> {
    module: DetectionModule,
    status: &'a str,
    threat: Option<&'a str>,
    object: Option<&'a str>,
    action: ObjectAction,
}

struct Rule<'a> {
    id: &'a str,
    name: &'a str,
    detections: Vec<Det<'a>>,
}

struct VerdictSpec<'a> {
    sender: &'a str,
    ip: &'a str,
    authenticated: bool,
    to: Vec<&'a str>,
    subject: Option<&'a str>,
    action: MessageAction,
    rules: Vec<Rule<'a>>,
}

#[derive(Clone)]
struct BounceSpec<'a> {
    node: u8,
    class: BounceClass,
    sender: &'a str,
    to: Vec<&'a str>,
    action: RecipientAction,
    status: &'a str,
    diagnostic: Option<&'a str>,
    remote_mta: Option<&'a str>,
    reason: Option<&'a str>,
    subject: Option<&'a str>,
    headers: Option<&'a str>,
}

fn virus(object: &'static str, threat: &'static str) -> Rule<'static> {
    Rule {
        id: "av-block",
        name: "Anti-virus: block infected attachments",
        detections: vec![Det {
            module: DetectionModule::AntiVirus,
            status: "INFECTED",
            threat: Some(threat),
            object: Some(object),
            action: ObjectAction::Deleted,
        }],
    }
}

fn phishing() -> Rule<'static> {
    Rule {
        id: "phishing-quarantine",
        name: "Anti-phishing: quarantine",
        detections: vec![Det {
            module: DetectionModule::AntiPhishing,
            status: "PHISHING",
            threat: Some("HEUR:Phishing.URL.generic"),
            object: None,
            action: ObjectAction::Blocked,
        }],
    }
}

fn spam(status: &'static str) -> Rule<'static> {
    Rule {
        id: "spam-tag",
        name: "Anti-spam: tag and deliver",
        detections: vec![Det {
            module: DetectionModule::AntiSpam,
            status,
            threat: None,
            object: None,
            action: ObjectAction::NotBlocked,
        }],
    }
}

fn exec_attachment(object: &'static str) -> Rule<'static> {
    Rule {
        id: "exec-attachments",
        name: "Content filtering: executable attachments",
        detections: vec![Det {
            module: DetectionModule::ContentFiltering,
            status: "FILTERED_TYPE",
            threat: None,
            object: Some(object),
            action: ObjectAction::Deleted,
        }],
    }
}

fn dlp(object: &'static str) -> Rule<'static> {
    Rule {
        id: "dlp-outbound",
        name: "DLP: confidential documents leaving the company",
        detections: vec![Det {
            module: DetectionModule::ContentFiltering,
            status: "FILTERED_NAME",
            threat: None,
            object: Some(object),
            action: ObjectAction::Blocked,
        }],
    }
}

fn link_scan() -> Rule<'static> {
    Rule {
        id: "link-scanning",
        name: "Link scanning",
        detections: vec![Det {
            module: DetectionModule::LinkScanning,
            status: "MALICIOUS_LINK",
            threat: Some("URL:malware-hosting"),
            object: None,
            action: ObjectAction::NotBlocked,
        }],
    }
}

const STAFF: [&str; 8] = [
    "a.ivanova@corp.example",
    "b.petrov@corp.example",
    "c.smirnova@corp.example",
    "d.kuznetsov@corp.example",
    "e.popova@corp.example",
    "f.sokolov@corp.example",
    "g.lebedeva@corp.example",
    "h.novikov@corp.example",
];

/// The application errors of the day: every error group, a flap that must never be reported,
/// repeated occurrences, and errors still active at midnight so the digest has content.
fn incidents(d: &mut Day) {
    use ErrorGroup as G;
    use ErrorKind as K;
    // 08:05 anti-virus bases outdated on scanner A, notified at once; 08:09 anti-spam bases on
    // scanner B: inside the 15-minute throttle, so it goes out at 08:20.
    let at = d.t(0, 5);
    d.app(
        at,
        2,
        G::Protection,
        K::AvBasesOutdated,
        ErrorState::Raised,
        Some("Anti-virus databases are outdated"),
        None,
        &[("bases_issue_date", "2026-11-28"), ("outdated_days", "3")],
    );
    let at = d.t(0, 9);
    d.raise(
        at,
        3,
        G::Protection,
        K::AsBasesOutdated,
        "Anti-spam databases are outdated",
    );
    // 08:12–08:15: KSN unreachable for three minutes — raised and resolved inside the throttle
    // window, so no notification ever mentions it. (The scripted instants that must not merge
    // are five simulated minutes apart: at 6000× that is 50 ms of real time, well above the
    // pipeline's few milliseconds from publish to decision.)
    let at = d.t(0, 12);
    d.raise(
        at,
        1,
        G::Protection,
        K::KsnIssues,
        "KSN servers unreachable (flap)",
    );
    let at = d.t(0, 15);
    d.resolve(at, 1, G::Protection, K::KsnIssues);
    // 09:30 the update succeeded on both scanners.
    let at = d.t(1, 30);
    d.resolve(at, 2, G::Protection, K::AvBasesOutdated);
    let at = d.t(1, 32);
    d.resolve(at, 3, G::Protection, K::AsBasesOutdated);
    // 10:00–10:15 the LDAP server refuses connections, reported four times; fixed at 11:20.
    let last_sync = d.t(1, 40);
    for m in [0, 5, 10, 15] {
        let at = d.t(2, m);
        d.app(
            at,
            1,
            G::LdapIntegration,
            K::LdapConnectionFailed,
            ErrorState::Raised,
            Some("ldaps://dc1.corp.example:636: connection refused"),
            Some(last_sync),
            &[],
        );
    }
    let at = d.t(3, 20);
    d.resolve(at, 1, G::LdapIntegration, K::LdapConnectionFailed);
    // 13:00–14:00 scanner B unreachable from the Control node; its settings fail to apply.
    let last_sync = d.t(4, 58);
    let at = d.t(5, 0);
    d.app(
        at,
        3,
        G::Synchronization,
        K::NodeUnavailable,
        ErrorState::Raised,
        Some("Node does not answer the Control node"),
        Some(last_sync),
        &[],
    );
    let at = d.t(5, 4);
    d.app(
        at,
        3,
        G::Synchronization,
        K::SettingsApplyFailed,
        ErrorState::Raised,
        Some("Settings revision 412 could not be applied"),
        Some(last_sync),
        &[],
    );
    let at = d.t(6, 0);
    d.resolve(at, 3, G::Synchronization, K::NodeUnavailable);
    let at = d.t(6, 2);
    d.resolve(at, 3, G::Synchronization, K::SettingsApplyFailed);
    // 15:30 the license expires in 14 days: active all night, so the midnight digest lists it.
    let at = d.t(7, 30);
    d.app(
        at,
        1,
        G::Licensing,
        K::LicenseExpiresSoon,
        ErrorState::Raised,
        Some("The license expires in 14 days"),
        None,
        &[("expires_at", "2026-12-15"), ("days_left", "14")],
    );
    // 17:00 the backup storage fills up; still active at midnight, resolved next morning.
    let at = d.t(9, 0);
    d.app(
        at,
        1,
        G::Backup,
        K::BackupAlmostFull,
        ErrorState::Raised,
        Some("Backup storage is 93% full"),
        None,
        &[("used_percent", "93")],
    );
    // 17:05–17:09 a second flap, right after the 17:00 notification: inside the throttle
    // window, so at 17:15 there is nothing left to report.
    let at = d.t(9, 5);
    d.raise(
        at,
        3,
        G::Synchronization,
        K::TimeMismatch,
        "Clock differs from the Control node by 4 s (flap)",
    );
    let at = d.t(9, 9);
    d.resolve(at, 3, G::Synchronization, K::TimeMismatch);
    // 19:40–20:30 scanner A runs out of disk: the MTA defers and bounces (see `bounces`).
    let at = d.t(11, 40);
    d.app(
        at,
        2,
        G::System,
        K::DiskSpaceLow,
        ErrorState::Raised,
        Some("/var/spool: 1.2 GB free"),
        None,
        &[("free_bytes", "1288490188")],
    );
    let at = d.t(12, 30);
    d.resolve(at, 2, G::System, K::DiskSpaceLow);
    // Next day 02:00 the license is renewed; 08:30 the backups are rotated.
    let at = d.t(18, 0);
    d.resolve(at, 1, G::Licensing, K::LicenseExpiresSoon);
    let at = d.t(24, 30);
    d.resolve(at, 1, G::Backup, K::BackupAlmostFull);
}

/// Scripted verdicts: every module, every notification group, and the hostile inputs.
fn scripted_verdicts(d: &mut Day) {
    // An authenticated partner sends an infected attachment: general, sender, recipients and
    // the AV team are all told.
    let at = d.t(0, 25);
    d.verdict(
        at,
        VerdictSpec {
            sender: "j.doe@partner.example",
            ip: "198.51.100.7",
            authenticated: true,
            to: vec![STAFF[0], STAFF[1]],
            subject: Some("Q4 contract draft"),
            action: MessageAction::AttachmentDeleted,
            rules: vec![virus("contract_Q4.docm", "HEUR:Trojan.MSOffice.SAgent.gen")],
        },
    );
    // The same from a spoofed, unauthenticated sender: no notice to the sender (backscatter).
    let at = d.t(0, 40);
    d.verdict(
        at,
        VerdictSpec {
            sender: "billing@paypa1-secure.example",
            ip: "203.0.113.66",
            authenticated: false,
            to: vec![STAFF[2]],
            subject: Some("Invoice\r\nBcc: everyone@corp.example"),
            action: MessageAction::Deleted,
            rules: vec![virus("invoice.pdf.exe", "Trojan-Banker.Win32.Emotet.gen")],
        },
    );
    // The null sender (a bounce carrying a worm): never notified.
    let at = d.t(1, 10);
    d.verdict(
        at,
        VerdictSpec {
            sender: "",
            ip: "192.0.2.14",
            authenticated: false,
            to: vec![STAFF[3]],
            subject: Some("Undelivered Mail Returned to Sender"),
            action: MessageAction::Deleted,
            rules: vec![virus("message.zip", "Email-Worm.Win32.Mydoom.m")],
        },
    );
    // Hostile subject and file names: HTML, links, emoji, right-to-left override.
    let at = d.t(2, 45);
    d.verdict(
        at,
        VerdictSpec {
            sender: "hr-team@corp-payroll.example",
            ip: "203.0.113.9",
            authenticated: false,
            to: vec![STAFF[4]],
            subject: Some("<script>alert('pwned')</script> Salary review"),
            action: MessageAction::AttachmentDeleted,
            rules: vec![exec_attachment("salary\u{202E}xslx.exe")],
        },
    );
    let at = d.t(3, 5);
    d.verdict(
        at,
        VerdictSpec {
            sender: "security@bank-alerts.example",
            ip: "198.51.100.200",
            authenticated: false,
            to: vec![STAFF[5], STAFF[6]],
            subject: Some("Verify your account at http://evil.example/x 🔒🎁"),
            action: MessageAction::Rejected,
            rules: vec![phishing(), link_scan()],
        },
    );
    let at = d.t(4, 15);
    d.verdict(
        at,
        VerdictSpec {
            sender: "news@press.example",
            ip: "198.51.100.31",
            authenticated: true,
            to: vec![STAFF[7]],
            subject: Some("עדכון חשבון — تحديث الحساب"),
            action: MessageAction::Skipped,
            rules: vec![spam("PROBABLE_SPAM")],
        },
    );
    // Outbound: an employee mails a confidential spreadsheet out. The sender (internal,
    // authenticated) and the DLP officer are told.
    let at = d.t(5, 30);
    d.verdict(
        at,
        VerdictSpec {
            sender: STAFF[1],
            ip: "10.20.5.23",
            authenticated: true,
            to: vec!["partner@competitor.example"],
            subject: Some("figures you asked for"),
            action: MessageAction::Rejected,
            rules: vec![dlp("Budget_2027_CONFIDENTIAL.xlsx")],
        },
    );
    // Two rules notify the general list for the same message: sent once (duplicate).
    let at = d.t(6, 40);
    d.verdict(
        at,
        VerdictSpec {
            sender: "noreply@files-share.example",
            ip: "203.0.113.120",
            authenticated: false,
            to: vec![STAFF[0]],
            subject: Some("Shared document"),
            action: MessageAction::AttachmentDeleted,
            rules: vec![
                virus("document.js", "HEUR:Trojan-Downloader.Script.Generic"),
                exec_attachment("document.js"),
            ],
        },
    );
    // 11:00 an all-staff phishing wave: 40 recipients would mean 42 notifications; the cap (25)
    // withholds the rest and the general list gets one summary.
    let all_staff: Vec<String> = (1..=40)
        .map(|i| format!("staff{i:02}@corp.example"))
        .collect();
    let at = d.t(3, 0);
    d.verdict(
        at,
        VerdictSpec {
            sender: "it-support@c0rp.example",
            ip: "203.0.113.77",
            authenticated: false,
            to: all_staff.iter().map(String::as_str).collect(),
            subject: Some("Password expires today – act now"),
            action: MessageAction::Rejected,
            rules: vec![phishing()],
        },
    );
    // A record that is not an event at all: it goes to the dead-letter topic.
    let at = d.t(8, 8);
    d.out.push(Scheduled {
        at,
        kind: EventKind::ScanVerdict,
        payload: Payload::Garbage {
            key: "MSG-broken".into(),
            bytes: b"\xC3\x01\x00\x00\x00\x00\x00\x00\x00\x00truncated by a broken producer"
                .to_vec(),
        },
    });
}

/// Background mail: a verdict every 4–20 simulated minutes, drawn from a fixed seed.
fn traffic(d: &mut Day, span: TimeDelta, rng: &mut StdRng) {
    const EXTERNAL: [(&str, &str, bool); 5] = [
        ("offers@shop-deals.example", "203.0.113.40", false),
        ("newsletter@travel.example", "198.51.100.52", true),
        ("m.garcia@supplier.example", "198.51.100.18", true),
        ("lottery@winner-now.example", "203.0.113.201", false),
        ("support@cloud-invoices.example", "203.0.113.90", false),
    ];
    const SUBJECTS: [&str; 6] = [
        "Your weekly deals",
        "Meeting notes",
        "Invoice #20331",
        "🎉 You have won!",
        "Re: delivery schedule",
        "Action required: mailbox full",
    ];
    let mut at = d.start + TimeDelta::minutes(rng.random_range(4..=20));
    while at < d.start + span {
        let (sender, ip, authenticated) = EXTERNAL[rng.random_range(0..EXTERNAL.len())];
        let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())];
        let to = vec![STAFF[rng.random_range(0..STAFF.len())]];
        let pick = rng.random_range(0..100);
        let (rules, action) = match pick {
            0..=54 => (
                vec![spam(if pick < 30 { "SPAM" } else { "MASS_MAIL" })],
                MessageAction::Skipped,
            ),
            55..=74 => (vec![phishing()], MessageAction::Rejected),
            75..=89 => (
                vec![virus("scan_0042.pdf.exe", "Trojan.Win32.Agent.xyz")],
                MessageAction::AttachmentDeleted,
            ),
            _ => (
                vec![exec_attachment("setup.msi")],
                MessageAction::AttachmentDeleted,
            ),
        };
        d.verdict(
            at,
            VerdictSpec {
                sender,
                ip,
                authenticated,
                to,
                subject: Some(subject),
                action,
                rules,
            },
        );
        at += TimeDelta::minutes(rng.random_range(4..=20));
    }
}

/// Bounces: the evening's disk-space storm (RESOURCE, more than the burst limit), a SOFTWARE
/// failure, classes that are not enabled, and a bounce of one of our own notifications.
fn bounces(d: &mut Day, span: TimeDelta, rng: &mut StdRng) {
    let disk = BounceSpec {
        node: 2,
        class: BounceClass::Resource,
        sender: "",
        to: vec![],
        action: RecipientAction::Delayed,
        status: "4.3.1",
        diagnostic: Some("x-postfix; insufficient free disk space"),
        remote_mta: None,
        reason: Some("insufficient free disk space"),
        subject: None,
        headers: None,
    };
    // 19:45–20:05, one every 2–3 minutes: three notices, then the burst summary.
    for (i, m) in [45, 47, 50, 52, 55, 57, 60, 62, 65].into_iter().enumerate() {
        let sender = STAFF[i % STAFF.len()];
        let at = d.t(11, m);
        d.bounce(
            at,
            BounceSpec {
                sender,
                to: vec!["orders@supplier.example"],
                subject: Some("Order confirmation"),
                ..disk.clone()
            },
        );
    }
    // 12:10 the content filter crashed on one message.
    let at = d.t(4, 10);
    d.bounce(
        at,
        BounceSpec {
            node: 3,
            class: BounceClass::Software,
            sender: STAFF[6],
            to: vec!["team@partner.example"],
            action: RecipientAction::Failed,
            status: "5.3.0",
            diagnostic: Some("x-postfix; content filter exited with status 70"),
            remote_mta: None,
            reason: Some("internal software error in the content filter"),
            subject: Some("Drawings <rev. 7>"),
            headers: None,
        },
    );
    // A RESOURCE bounce of one of our own notifications (loop protection: not notified).
    let at = d.t(12, 40);
    d.bounce(
        at,
        BounceSpec {
            node: 2,
            class: BounceClass::Resource,
            sender: "mailgate-notify@corp.example",
            to: vec!["security@corp.example"],
            action: RecipientAction::Delayed,
            status: "4.3.1",
            diagnostic: Some("x-postfix; insufficient free disk space"),
            remote_mta: None,
            reason: Some("insufficient free disk space"),
            subject: Some("[Secure Mail Gateway (demo)] SPAM: message from offers@shop-deals.example"),
            headers: Some("From: Mail gateway notifications <mailgate-notify@corp.example>\r\nAuto-Submitted: auto-generated\r\nX-Mailgate-Notification-ID: 0123456789abcdef\r\n"),
        },
    );
    // Background: ordinary bounces and delays (classes not enabled: counted, not notified).
    let mut at = d.start + TimeDelta::minutes(rng.random_range(30..=120));
    while at < d.start + span {
        let delay = rng.random_bool(0.5);
        d.bounce(
            at,
            BounceSpec {
                node: 2 + rng.random_range(0..2),
                class: if delay {
                    BounceClass::Delay
                } else {
                    BounceClass::Bounce
                },
                sender: STAFF[rng.random_range(0..STAFF.len())],
                to: vec!["someone@unknown-host.example"],
                action: if delay {
                    RecipientAction::Delayed
                } else {
                    RecipientAction::Failed
                },
                status: if delay { "4.4.1" } else { "5.1.1" },
                diagnostic: Some(if delay {
                    "x-postfix; connect to mx.unknown-host.example: Connection timed out"
                } else {
                    "smtp; 550 5.1.1 user unknown"
                }),
                remote_mta: (!delay).then_some("dns; mx.unknown-host.example"),
                reason: None,
                subject: Some("Re: follow-up"),
                headers: None,
            },
        );
        at += TimeDelta::minutes(rng.random_range(45..=150));
    }
}

/// The records of the simulated span from `start`, in publication order.
pub fn day(start: Timestamp, span: TimeDelta) -> Vec<Scheduled> {
    let mut d = Day {
        start,
        out: Vec::new(),
        seq: 0,
    };
    let mut rng = StdRng::seed_from_u64(0x6d61_696c_6761_7465);
    incidents(&mut d);
    scripted_verdicts(&mut d);
    bounces(&mut d, span, &mut rng);
    traffic(&mut d, span, &mut rng);
    let end = start + span;
    d.out.retain(|s| s.at < end);
    // Stable: records of the same instant keep their script order (raise before resolve).
    d.out.sort_by_key(|s| s.at);
    d.out
}
