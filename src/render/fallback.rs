//! The fallback notification, sent when a template fails at run time: plain text built in code
//! (it cannot fail), naming the error and carrying the event's ids and essential facts so that
//! nothing is lost. People outside (a message's sender or recipients) get the facts about their
//! message and the notification id, never the internal error or rule details.

use super::context::{fmt_time, message_action_token};
use super::i18n::Lang;
use super::model::{ApplicationKind, Request};
use super::sanitize::Sanitizer;
use chrono_tz::Tz;
use std::fmt::Write;

/// Subject and text of the fallback.
pub struct Fallback {
    /// One line.
    pub subject: String,
    /// Plain text.
    pub text: String,
}

/// Builds the fallback for `req`. `internal` is false for a rule notification to the sender or
/// the recipients.
pub fn fallback(
    req: &Request,
    template: &str,
    error: &str,
    notification_id: &str,
    internal: bool,
    tz: Tz,
    max_chars: usize,
) -> Fallback {
    let san = Sanitizer {
        max_chars,
        lang: Lang::En,
    };
    let mut facts: Vec<(&str, String)> = Vec::new();
    let opt = |s: Option<&String>| s.map(|s| san.text(s)).unwrap_or_else(|| "-".into());
    let sender = |s: &str| {
        if s.is_empty() {
            "<>".to_string()
        } else {
            san.plain(s)
        }
    };
    match req {
        Request::Rule(n) => {
            let v = &n.verdict;
            facts.push(("Gateway message id", san.plain(&v.message_id)));
            facts.push(("Sender", sender(&v.sender)));
            facts.push(("Subject", opt(v.subject.as_ref())));
            facts.push(("Received", fmt_time(&v.received_at, tz)));
            facts.push((
                "Message action",
                message_action_token(v.message_action).into(),
            ));
            if internal {
                facts.push(("Event id", san.plain(&v.event_id)));
                facts.push(("Cluster", san.plain(&v.cluster_id)));
                facts.push((
                    "Node",
                    format!(
                        "{} {}:{}",
                        san.plain(&v.node.node_id),
                        san.plain(&v.node.ip),
                        v.node.port
                    ),
                ));
                facts.push(("Group", n.group.as_str().into()));
                facts.push((
                    "Rules",
                    n.rules
                        .iter()
                        .map(|r| san.text(r.rule_name.as_deref().unwrap_or(&r.rule_id)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
                facts.push((
                    "Affected recipients",
                    n.affected_recipients
                        .iter()
                        .map(|a| san.plain(a))
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        }
        Request::RuleCapSummary(s) => {
            let v = &s.verdict;
            facts.push(("Event id", san.plain(&v.event_id)));
            facts.push(("Gateway message id", san.plain(&v.message_id)));
            facts.push(("Sender", sender(&v.sender)));
            facts.push(("Subject", opt(v.subject.as_ref())));
            facts.push(("Notifications sent", s.sent.to_string()));
            facts.push(("Notifications withheld", s.withheld.to_string()));
        }
        Request::Bounce(n) => {
            let b = &n.event;
            facts.push(("Event id", san.plain(&b.event_id)));
            facts.push(("Cluster", san.plain(&b.cluster_id)));
            facts.push((
                "Node",
                format!(
                    "{} {}:{}",
                    san.plain(&b.node.node_id),
                    san.plain(&b.node.ip),
                    b.node.port
                ),
            ));
            facts.push(("Class", b.class.as_str().into()));
            facts.push(("Queue id", san.plain(&b.queue_id)));
            facts.push(("Reason", opt(b.reason.as_ref())));
            facts.push(("Sender", sender(&b.sender)));
            facts.push((
                "Recipients",
                b.recipients
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {}",
                            san.plain(&r.address),
                            r.action,
                            san.plain(&r.status)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        Request::BounceBurst(s) => {
            facts.push(("Summary id", san.plain(&s.id_seed)));
            facts.push((
                "Window",
                format!(
                    "{} – {}",
                    fmt_time(&s.window_start, tz),
                    fmt_time(&s.window_end, tz)
                ),
            ));
            facts.push(("Bounces", s.total.to_string()));
            facts.push((
                "By class",
                s.counts
                    .iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Request::Application(a) => {
            facts.push((
                "Notification",
                match a.kind {
                    ApplicationKind::Digest => "daily digest".into(),
                    ApplicationKind::Change => "change notification".into(),
                },
            ));
            facts.push(("Id seed", san.plain(&a.id_seed)));
            facts.push(("Cluster", san.plain(&a.cluster_id)));
            facts.push(("Time", fmt_time(&a.at, a.tz)));
            for e in &a.errors {
                facts.push((
                    "Error",
                    format!(
                        "{} {} {} on {} {}:{}, last {}",
                        e.status.as_str(),
                        e.group,
                        e.kind,
                        san.plain(&e.node.node_id),
                        san.plain(&e.node.ip),
                        e.node.port,
                        fmt_time(&e.last_occurrence, a.tz)
                    ),
                ));
            }
        }
    }
    let mut text = String::new();
    if internal {
        let _ = write!(
            text,
            "mailgate-notify could not render the notification template \"{template}\" and sent\n\
             this plain fallback instead, so that the notification is not lost.\n\n\
             Error: {}\n\n\
             What to do: fix the template, check it with `mailgate-notify check-config --config FILE`,\n\
             preview it with `mailgate-notify render`, and restart the service.\n\n",
            san.text(error)
        );
    } else {
        text.push_str(
            "This is an automatic notification from the mail gateway about a message of yours.\n\
             Its usual text could not be produced; the facts follow. If you have questions,\n\
             contact your mail administrator and quote the notification id.\n\n",
        );
    }
    for (k, v) in &facts {
        let _ = writeln!(text, "{k}: {v}");
    }
    let _ = writeln!(text, "Notification id: {notification_id}");
    let subject = if internal {
        format!("[mailgate-notify] Notification could not be rendered ({template})")
    } else {
        "Notification about your message".to_string()
    };
    Fallback { subject, text }
}
