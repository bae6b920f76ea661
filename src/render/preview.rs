//! `mailgate-notify render`: the operator's preview. Given an event, it builds the requests the
//! service would render for it — one per rule-notification group (with one address each, taken
//! from the config and the event), one per administrator group for bounces and application
//! events — renders them with the configured templates and prints the complete messages.
//! It does not run the deciders: it shows what the templates make of the event.

use super::model::*;
use super::{RenderError, Renderer};
use crate::config::{Config, NotifyGroup, RecipientGroup, RuleSettings};
use crate::event::{ApplicationEvent, BounceEvent, ErrorState, Event, ScanVerdict};
use chrono_tz::Tz;
use std::fmt::Write;
use std::str::FromStr;
use std::sync::Arc;

/// The command-line choices.
#[derive(Debug, Clone, Default)]
pub struct PreviewOptions {
    /// Only this rule-notification group (default: all four).
    pub group: Option<NotifyGroup>,
    /// Render in this language instead of the configured one.
    pub lang: Option<String>,
    /// For an application event: the digest instead of the change notification.
    pub digest: bool,
}

/// One request of the preview, with what the reader should know about it.
pub struct PreviewItem {
    /// E.g. `rule notification for group "sender"`.
    pub title: String,
    /// Remarks such as "placeholder address: no general list is configured".
    pub notes: Vec<String>,
    /// The request.
    pub request: Request,
}

const PLACEHOLDER_DOMAIN: &str = "example.invalid";

fn rule_settings<'a>(config: &'a Config, v: &ScanVerdict) -> &'a RuleSettings {
    v.triggered_rules
        .iter()
        .find_map(|t| {
            config
                .rules
                .rule
                .iter()
                .find(|r| r.id.as_deref() == Some(t.rule_id.as_str()))
        })
        .unwrap_or(&config.rules.default)
}

fn verdict_items(config: &Config, v: ScanVerdict, opts: &PreviewOptions) -> Vec<PreviewItem> {
    let v = Arc::new(v);
    let settings = rule_settings(config, &v);
    let language = opts
        .lang
        .clone()
        .unwrap_or_else(|| config.rules.language.clone());
    let mut affected: Vec<String> = Vec::new();
    for t in &v.triggered_rules {
        for a in &t.affected_recipients {
            if !affected.contains(a) {
                affected.push(a.clone());
            }
        }
    }
    let groups: Vec<NotifyGroup> = match opts.group {
        Some(g) => vec![g],
        None => NotifyGroup::ALL.to_vec(),
    };
    groups
        .into_iter()
        .map(|group| {
            let mut notes = Vec::new();
            let mut pick = |found: Option<String>, why: &str| {
                found.unwrap_or_else(|| {
                    notes.push(format!("placeholder address: {why}"));
                    format!("{}@{PLACEHOLDER_DOMAIN}", group.as_str())
                })
            };
            let recipient = match group {
                NotifyGroup::General => pick(
                    config.rules.general_list.first().map(|a| a.to_string()),
                    "no general list is configured (rules.general_list)",
                ),
                NotifyGroup::Sender => pick(
                    (!v.sender.is_empty()).then(|| v.sender.clone()),
                    "the null sender <> is never notified",
                ),
                NotifyGroup::Recipients => pick(
                    affected.first().cloned(),
                    "no affected recipient in the event",
                ),
                NotifyGroup::Additional => pick(
                    settings.additional.first().map(|a| a.to_string()),
                    "the rule has no additional list",
                ),
            };
            let configured = match group {
                NotifyGroup::General => &settings.templates.general,
                NotifyGroup::Sender => &settings.templates.sender,
                NotifyGroup::Recipients => &settings.templates.recipients,
                NotifyGroup::Additional => &settings.templates.additional,
            };
            if !settings.notify.contains(&group) {
                notes.push(format!(
                    "the rule's settings do not notify group {:?}; shown for preview",
                    group.as_str()
                ));
            }
            PreviewItem {
                title: format!("rule notification for group {:?}", group.as_str()),
                notes,
                request: Request::Rule(RuleNotice {
                    verdict: v.clone(),
                    group,
                    template: configured
                        .clone()
                        .unwrap_or_else(|| format!("rule/{}", group.as_str())),
                    recipient,
                    rules: RuleRef::all(&v),
                    affected_recipients: affected.clone(),
                    language: language.clone(),
                }),
            }
        })
        .collect()
}

/// The administrator groups, or one placeholder group when none is configured.
fn admin_groups(
    groups: &[RecipientGroup],
    what: &str,
    opts: &PreviewOptions,
) -> Vec<(Vec<String>, String, Vec<String>)> {
    let mut out: Vec<(Vec<String>, String, Vec<String>)> = groups
        .iter()
        .filter(|g| !g.addresses.is_empty())
        .map(|g| {
            (
                g.addresses.iter().map(|a| a.to_string()).collect(),
                opts.lang.clone().unwrap_or_else(|| g.language.clone()),
                Vec::new(),
            )
        })
        .collect();
    if out.is_empty() {
        out.push((
            vec![format!("admin@{PLACEHOLDER_DOMAIN}")],
            opts.lang.clone().unwrap_or_else(|| "en".into()),
            vec![format!(
                "placeholder address: no {what} recipients are configured"
            )],
        ));
    }
    out
}

fn bounce_items(config: &Config, b: BounceEvent, opts: &PreviewOptions) -> Vec<PreviewItem> {
    let b = Arc::new(b);
    let mut notes_all = Vec::new();
    if !config.bounce.classes.contains(&b.class) {
        notes_all.push(format!(
            "class {} is not in bounce.classes: the service would not send this notice",
            b.class
        ));
    }
    admin_groups(&config.bounce.recipients, "bounce", opts)
        .into_iter()
        .map(|(recipients, language, mut notes)| {
            notes.extend(notes_all.iter().cloned());
            PreviewItem {
                title: format!("bounce notice ({language})"),
                notes,
                request: Request::Bounce(BounceNotice {
                    event: b.clone(),
                    recipients,
                    language,
                }),
            }
        })
        .collect()
}

fn application_items(
    config: &Config,
    e: ApplicationEvent,
    opts: &PreviewOptions,
) -> Vec<PreviewItem> {
    let tz = e
        .control_timezone
        .as_deref()
        .and_then(|z| Tz::from_str(z).ok())
        .or_else(|| {
            config
                .application
                .clusters
                .get(&e.cluster_id)
                .map(|c| c.timezone)
        })
        .unwrap_or(config.application.default_timezone);
    let kind = if opts.digest {
        ApplicationKind::Digest
    } else {
        ApplicationKind::Change
    };
    if opts.digest && e.state == ErrorState::Resolved {
        return Vec::new();
    }
    let status = match (kind, e.state) {
        (ApplicationKind::Digest, _) => ErrorStatus::StillActive,
        (_, ErrorState::Resolved) => ErrorStatus::Resolved,
        _ => ErrorStatus::New,
    };
    let error = AppError {
        status,
        group: e.group,
        kind: e.kind,
        node: e.node.clone(),
        first_seen: e.occurred_at,
        last_occurrence: e.occurred_at,
        last_successful_sync: e.last_successful_sync_at,
        message: e.message.clone(),
        attributes: e.attributes.clone(),
    };
    admin_groups(&config.application.recipients, "application", opts)
        .into_iter()
        .map(|(recipients, language, notes)| PreviewItem {
            title: format!(
                "application {} ({language})",
                if opts.digest {
                    "digest"
                } else {
                    "change notification"
                }
            ),
            notes,
            request: Request::Application(ApplicationNotice {
                kind,
                cluster_id: e.cluster_id.clone(),
                tz,
                at: e.occurred_at,
                errors: vec![error.clone()],
                recipients,
                language,
                id_seed: format!("preview:{}", e.event_id),
            }),
        })
        .collect()
}

/// The requests the preview renders for `event`.
pub fn items(config: &Config, event: Event, opts: &PreviewOptions) -> Vec<PreviewItem> {
    match event {
        Event::ScanVerdict(v) => verdict_items(config, v, opts),
        Event::Bounce(b) => bounce_items(config, b, opts),
        Event::Application(a) => application_items(config, a, opts),
    }
}

/// Renders the preview of `event` as text for stdout: each complete message preceded by a
/// banner saying what it is, to whom, from which template.
pub fn preview(
    config: &Config,
    event: Event,
    opts: &PreviewOptions,
) -> Result<String, RenderError> {
    let renderer = Renderer::new(config, &prometheus::Registry::new())?;
    let list = items(config, event, opts);
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("#### nothing to render: after a RESOLVED event the state holds no active error, so no digest is sent\n");
    }
    let n = list.len();
    for (i, item) in list.iter().enumerate() {
        let r = renderer.render(&item.request);
        let (template, language) = match &item.request {
            Request::Rule(x) => (x.template.as_str(), x.language.as_str()),
            Request::RuleCapSummary(x) => ("rule/cap-summary", x.language.as_str()),
            Request::Bounce(x) => ("bounce/notice", x.language.as_str()),
            Request::BounceBurst(x) => ("bounce/burst-summary", x.language.as_str()),
            Request::Application(x) => (x.kind.template(), x.language.as_str()),
        };
        let origin = renderer
            .template_origin(template, language)
            .unwrap_or("missing; English or fallback used");
        let _ = writeln!(out, "#### {}/{n}: {}", i + 1, item.title);
        let _ = writeln!(
            out,
            "#### template {template} ({language}, {origin}); envelope {} -> {}",
            r.envelope_from
                .as_deref()
                .map_or("<>".to_string(), |f| format!("<{f}>")),
            r.recipients
                .iter()
                .map(|a| format!("<{a}>"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for note in &item.notes {
            let _ = writeln!(out, "#### note: {note}");
        }
        if !r.invalid_recipients.is_empty() {
            let _ = writeln!(
                out,
                "#### note: not valid addresses, left out: {}",
                r.invalid_recipients.join(", ")
            );
        }
        if r.fallback_used {
            let _ = writeln!(
                out,
                "#### note: the template failed; this is the fallback notification"
            );
        }
        let _ = writeln!(out, "####");
        out.push_str(&String::from_utf8_lossy(&r.bytes));
        let _ = writeln!(out, "#### end of {}/{n}\n", i + 1);
    }
    Ok(out)
}
