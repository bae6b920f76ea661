//! Reads the demo's outbox back: every `.eml` file the `file` transport wrote, with its kind and
//! recipient group, addresses, `Date` and subject — so that the summary is counted from the
//! files themselves, not only from the service's own metrics.
//!
//! A message names neither its kind nor its group in a header; what tells them apart is the
//! opening of the plain-text body, which the built-in English templates write as fixed text
//! before any event value (so an attacker's subject cannot imitate it). The demo's config uses
//! exactly those templates; a message that matches none is counted as `unknown/unknown`, which
//! the demo's test asserts never happens.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::MessageParser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One notification found in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    /// The file.
    pub path: PathBuf,
    /// `application`, `bounce`, `rule` (the metric's `kind` label), or `unknown`.
    pub kind: &'static str,
    /// The metric's `group` label: `digest`, `change`, `admins`, `summary`, `general`,
    /// `sender`, `recipients`, `additional`, or `unknown`.
    pub group: &'static str,
    /// `To` addresses, lower-cased.
    pub to: Vec<String>,
    /// The `Date` header (the simulated instant the notification is about).
    pub date: Option<DateTime<Utc>>,
    /// The decoded subject.
    pub subject: String,
    /// `X-Mailgate-Notification-ID`.
    pub notification_id: Option<String>,
}

/// The text openings of the built-in English templates, in the order they are tried.
const OPENINGS: [(&str, &str, &str); 8] = [
    ("Daily digest of the active errors", "application", "digest"),
    (
        "The error state of gateway cluster",
        "application",
        "change",
    ),
    ("Between ", "bounce", "summary"),
    ("Rule notification from ", "rule", "additional"),
    (
        "The rules triggered on one message would have sent",
        "rule",
        "summary",
    ),
    ("A scan rule was triggered on a message", "rule", "general"),
    ("Hello,\n\na message addressed to you", "rule", "recipients"),
    (
        "Hello,\n\nthis is an automatic notice from the mail gateway",
        "rule",
        "sender",
    ),
];

/// Kind and group of a notification from the opening of its plain-text body.
pub fn classify(text: &str) -> (&'static str, &'static str) {
    let text = text.replace("\r\n", "\n");
    let text = text.trim_start();
    for (opening, kind, group) in OPENINGS {
        if text.starts_with(opening) {
            return (kind, group);
        }
    }
    // A bounce notice opens with the class and its code, e.g. "Resource problem (RESOURCE)".
    let first = text.lines().next().unwrap_or("");
    if crate::event::BounceClass::ALL
        .iter()
        .any(|c| first.ends_with(&format!("({})", c.as_str())))
    {
        return ("bounce", "admins");
    }
    ("unknown", "unknown")
}

/// Parses one message; `None` when it is not a message at all.
pub fn parse(path: &Path, bytes: &[u8]) -> Option<OutboxMail> {
    let msg = MessageParser::default().parse(bytes)?;
    let to = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let date = msg
        .date()
        .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single());
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let (kind, group) = classify(&text);
    Some(OutboxMail {
        path: path.to_path_buf(),
        kind,
        group,
        to,
        date,
        subject: msg.subject().unwrap_or("").to_string(),
        notification_id: msg
            .header_raw("X-Mailgate-Notification-ID")
            .map(|v| v.trim().to_string()),
    })
}

/// Every `.eml` file of `dir`, parsed, in file-name order. Files that do not parse are
/// reported as kind `unknown`.
pub fn read(dir: &Path) -> std::io::Result<Vec<OutboxMail>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let bytes = std::fs::read(&p)?;
        out.push(parse(&p, &bytes).unwrap_or_else(|| OutboxMail {
            path: p.clone(),
            kind: "unknown",
            group: "unknown",
            to: Vec::new(),
            date: None,
            subject: String::new(),
            notification_id: None,
        }));
    }
    Ok(out)
}

/// Counts of an outbox: messages and deliveries (one per `To` address) by (kind, group), and
/// messages per address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Files by (kind, group).
    pub messages: BTreeMap<(String, String), u64>,
    /// Addressed copies by (kind, group): what `notifications_sent_total` counts.
    pub deliveries: BTreeMap<(String, String), u64>,
    /// Messages per recipient address.
    pub per_address: BTreeMap<String, u64>,
}

impl OutboxCounts {
    /// Counts `mails`.
    pub fn of(mails: &[OutboxMail]) -> Self {
        let mut c = OutboxCounts::default();
        for m in mails {
            let key = (m.kind.to_string(), m.group.to_string());
            *c.messages.entry(key.clone()).or_default() += 1;
            *c.deliveries.entry(key).or_default() += m.to.len() as u64;
            for a in &m.to {
                *c.per_address.entry(a.clone()).or_default() += 1;
            }
        }
        c
    }

    /// Files in all.
    pub fn total(&self) -> u64 {
        self.messages.values().sum()
    }
}

/// Removes the `.eml` files of a previous run from `dir`; nothing else is touched. Returns how
/// many were removed.
pub fn clear(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "eml") && p.is_file() {
            std::fs::remove_file(&p)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_notice_is_recognised_by_its_class_line() {
        assert_eq!(
            classify("Resource problem (RESOURCE)\r\n\r\nThe mail system..."),
            ("bounce", "admins")
        );
    }

    #[test]
    fn attacker_text_after_the_opening_does_not_change_the_class() {
        assert_eq!(
            classify("A scan rule was triggered on a message that passed. Daily digest of the active errors"),
            ("rule", "general")
        );
        assert_eq!(classify("Subject: Daily digest"), ("unknown", "unknown"));
    }
}
