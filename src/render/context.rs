//! The template variables of each notification kind, built from a request. Every key is always
//! present (null when the event has no value) so that strict mode fails only on a misspelled
//! name, never on an absent optional field; every event string passes the sanitizer first.
//! `templates/README.md` lists the variables; the load-time checker reads them from here.

use super::i18n::Lang;
use super::model::{
    AppError, ApplicationKind, ApplicationNotice, BounceBurstSummary, BounceNotice, ErrorStatus,
    RuleCapSummary, RuleNotice, RuleRef,
};
use super::sanitize::{header_block, Sanitizer};
use crate::event::time::Timestamp;
use crate::event::{
    Detection, ErrorGroup, MessageAction, Node, ObjectAction, RuleTrigger, ScanVerdict,
};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

/// What every context needs besides the request.
pub struct Ctx<'a> {
    /// `%PRODUCT_NAME%`.
    pub product_name: &'a str,
    /// `%NOTIFICATION_ID%`.
    pub notification_id: &'a str,
    /// Language code as requested.
    pub language: &'a str,
    /// Labels.
    pub lang: Lang,
    /// The sanitizer (cap, marker language).
    pub san: Sanitizer,
    /// Zone of every time shown.
    pub tz: Tz,
    /// Cap of a shown header block.
    pub max_header_bytes: usize,
}

/// `2026-12-01 08:15:30 MSK (UTC+03:00)`; for UTC `2026-12-01 05:15:30 UTC`.
pub fn fmt_time(t: &Timestamp, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    let abbrev = local.format("%Z").to_string();
    if abbrev == "UTC" {
        local.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    } else if abbrev.starts_with(['+', '-']) {
        local.format("%Y-%m-%d %H:%M:%S (UTC%:z)").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S %Z (UTC%:z)").to_string()
    }
}

/// KSMG's `%MESSAGE_ACTION%` word.
pub fn message_action_token(a: MessageAction) -> &'static str {
    match a {
        MessageAction::Skipped => "Skipped",
        MessageAction::Disinfected => "Disinfected",
        MessageAction::AttachmentDeleted => "AttachmentDeleted",
        MessageAction::Deleted => "Deleted",
        MessageAction::Rejected => "Rejected",
        MessageAction::Unknown => "Unknown",
    }
}

/// KSMG's `%OBJECT_ACTION%` word.
pub fn object_action_token(a: ObjectAction) -> &'static str {
    match a {
        ObjectAction::Blocked => "Blocked",
        ObjectAction::NotBlocked => "NotBlocked",
        ObjectAction::Disinfected => "Disinfected",
        ObjectAction::Deleted => "Deleted",
        ObjectAction::Skipped => "Skipped",
        ObjectAction::Unknown => "Unknown",
    }
}

/// `%OBJECT_ACTION%` outside the object list: the message action said in object words (the
/// message itself was delivered when only its attachments were removed).
fn message_as_object_action(a: MessageAction) -> ObjectAction {
    match a {
        MessageAction::Skipped => ObjectAction::Skipped,
        MessageAction::Disinfected => ObjectAction::Disinfected,
        MessageAction::AttachmentDeleted => ObjectAction::NotBlocked,
        MessageAction::Deleted => ObjectAction::Deleted,
        MessageAction::Rejected => ObjectAction::Blocked,
        MessageAction::Unknown => ObjectAction::Unknown,
    }
}

/// `%OBJECT_NAME%` outside the object list and for whole-message detections.
pub const MESSAGE_OBJECT_NAME: &str = "Message";

fn common(ctx: &Ctx<'_>, m: &mut Map<String, Value>) {
    m.insert("product_name".into(), ctx.product_name.into());
    m.insert("notification_id".into(), ctx.notification_id.into());
    m.insert("language".into(), ctx.language.into());
    m.insert("time_zone".into(), ctx.tz.name().into());
}

fn node(ctx: &Ctx<'_>, n: &Node, m: &mut Map<String, Value>) {
    m.insert("node_id".into(), ctx.san.plain(&n.node_id).into());
    m.insert("node_ip".into(), ctx.san.plain(&n.ip).into());
    m.insert("node_port".into(), n.port.into());
    m.insert(
        "node_comment".into(),
        ctx.san.opt_text(n.comment.as_deref()).into(),
    );
}

fn sender(ctx: &Ctx<'_>, s: &str) -> String {
    if s.is_empty() {
        "<>".into()
    } else {
        ctx.san.plain(s)
    }
}

fn addresses(ctx: &Ctx<'_>, list: &[String]) -> (Value, Value) {
    let clean: Vec<String> = list.iter().map(|a| ctx.san.plain(a)).collect();
    (clean.join(", ").into(), clean.into())
}

fn verdict_base(ctx: &Ctx<'_>, v: &ScanVerdict) -> Map<String, Value> {
    let mut m = Map::new();
    common(ctx, &mut m);
    node(ctx, &v.node, &mut m);
    let (all, all_list) = addresses(ctx, &v.all_recipients);
    let action = message_action_token(v.message_action);
    let delivered = matches!(
        v.message_action,
        MessageAction::Skipped | MessageAction::Disinfected | MessageAction::AttachmentDeleted
    );
    m.insert("event_id".into(), ctx.san.plain(&v.event_id).into());
    m.insert("cluster_id".into(), ctx.san.plain(&v.cluster_id).into());
    m.insert("message_id".into(), ctx.san.plain(&v.message_id).into());
    m.insert(
        "smtp_message_id".into(),
        ctx.san.opt_plain(v.smtp_message_id.as_deref()).into(),
    );
    m.insert("sender".into(), sender(ctx, &v.sender).into());
    m.insert("null_sender".into(), v.sender.is_empty().into());
    m.insert(
        "sender_ip".into(),
        ctx.san.opt_plain(v.sender_ip.as_deref()).into(),
    );
    m.insert("sender_authenticated".into(), v.sender_authenticated.into());
    m.insert("all_recipients_count".into(), v.all_recipients.len().into());
    m.insert("all_recipients".into(), all);
    m.insert("all_recipients_list".into(), all_list);
    m.insert(
        "subject".into(),
        ctx.san.opt_text(v.subject.as_deref()).into(),
    );
    m.insert("date".into(), fmt_time(&v.received_at, ctx.tz).into());
    m.insert("size".into(), v.size.into());
    m.insert(
        "message_action".into(),
        if v.backed_up {
            format!("{action}, backed up").into()
        } else {
            action.into()
        },
    );
    m.insert(
        "message_action_code".into(),
        v.message_action.as_str().into(),
    );
    m.insert(
        "message_action_text".into(),
        ctx.lang.message_action(v.message_action.as_str()).into(),
    );
    m.insert("delivered".into(), delivered.into());
    m.insert("backed_up".into(), v.backed_up.into());
    m
}

fn object(ctx: &Ctx<'_>, v: &ScanVerdict, rule: &RuleTrigger, d: &Detection) -> Value {
    let is_message = d.object_name.is_none();
    let size = match (d.object_size, is_message) {
        (Some(s), _) => Some(s),
        (None, true) => Some(v.size),
        (None, false) => None,
    };
    json!({
        "object_name": match &d.object_name {
            Some(n) => ctx.san.text(n),
            None => MESSAGE_OBJECT_NAME.to_string(),
        },
        "object_label": match &d.object_name {
            Some(n) => ctx.san.text(n),
            None => ctx.lang.message_object().to_string(),
        },
        "is_message": is_message,
        "object_size": size,
        "status": ctx.san.plain(&d.status),
        "status_text": ctx.san.plain(ctx.lang.status(&d.status)),
        "object_action": object_action_token(d.object_action),
        "object_action_code": d.object_action.as_str(),
        "object_action_text": ctx.lang.object_action(d.object_action.as_str()),
        "threat_name": ctx.san.opt_text(d.threat_name.as_deref()),
        "module": d.module.as_str(),
        "module_text": ctx.lang.module(d.module.as_str()),
        "rule_id": ctx.san.plain(&rule.rule_id),
        "rule_name": rule_name(ctx, &rule.rule_id, rule.rule_name.as_deref()),
    })
}

fn rule_name(ctx: &Ctx<'_>, id: &str, name: Option<&str>) -> String {
    ctx.san.text(name.unwrap_or(id))
}

/// The rules, the objects and the whole-message object macros of the rules in `refs`.
fn rules_and_objects(ctx: &Ctx<'_>, v: &ScanVerdict, refs: &[RuleRef], m: &mut Map<String, Value>) {
    let mut rules = Vec::with_capacity(refs.len());
    let mut objects: Vec<Value> = Vec::new();
    let mut seen: Vec<(Option<&str>, &str, Option<&str>, ObjectAction)> = Vec::new();
    let mut statuses: Vec<String> = Vec::new();
    let mut names = Vec::with_capacity(refs.len());
    for r in refs {
        names.push(rule_name(ctx, &r.rule_id, r.rule_name.as_deref()));
        let mut detections = Vec::new();
        let mut affected: Vec<String> = Vec::new();
        for t in v.triggered_rules.iter().filter(|t| t.rule_id == r.rule_id) {
            affected.extend(t.affected_recipients.iter().map(|a| ctx.san.plain(a)));
            for d in &t.detections {
                let o = object(ctx, v, t, d);
                detections.push(o.clone());
                let key = (
                    d.object_name.as_deref(),
                    d.status.as_str(),
                    d.threat_name.as_deref(),
                    d.object_action,
                );
                if !seen.contains(&key) {
                    seen.push(key);
                    objects.push(o);
                }
                let s = ctx.san.plain(&d.status);
                if !statuses.contains(&s) {
                    statuses.push(s);
                }
            }
        }
        rules.push(json!({
            "rule_id": ctx.san.plain(&r.rule_id),
            "rule_name": rule_name(ctx, &r.rule_id, r.rule_name.as_deref()),
            "affected_recipients": affected.join(", "),
            "detections": detections,
        }));
    }
    let whole = message_as_object_action(v.message_action);
    m.insert("affected_rules".into(), names.join(", ").into());
    m.insert("rules".into(), rules.into());
    m.insert("objects".into(), objects.into());
    m.insert("object_name".into(), MESSAGE_OBJECT_NAME.into());
    m.insert("object_size".into(), v.size.into());
    m.insert("status".into(), statuses.join(", ").into());
    m.insert("object_action".into(), object_action_token(whole).into());
    m.insert(
        "object_action_text".into(),
        ctx.lang.object_action(whole.as_str()).into(),
    );
}

/// `rule/*`: one rule notification, as one tree (what the load-time checks and Handlebars see).
/// The renderer builds the same variables in three layers instead: [`rule_own`],
/// [`rule_rules`] and [`rule_shared`], the last two shared by every notification of a verdict.
pub fn rule(ctx: &Ctx<'_>, n: &RuleNotice) -> Value {
    let mut m = rule_shared(ctx, &n.verdict);
    m.extend(rule_rules(ctx, &n.verdict, &n.rules));
    m.extend(rule_own(ctx, n));
    Value::Object(m)
}

/// The variables of a rule notification that depend only on the verdict (and the language and
/// zone): the same for every notification of the verdict. `notification_id` is not among them.
pub fn rule_shared(ctx: &Ctx<'_>, v: &ScanVerdict) -> Map<String, Value> {
    let mut m = verdict_base(ctx, v);
    m.remove("notification_id");
    m
}

/// The variables that depend on the verdict and the notification's rules: the rule list, the
/// objects and the whole-message object macros.
pub fn rule_rules(ctx: &Ctx<'_>, v: &ScanVerdict, rules: &[RuleRef]) -> Map<String, Value> {
    let mut m = Map::new();
    rules_and_objects(ctx, v, rules, &mut m);
    m
}

/// The variables of this one notification: its id, group, recipient and affected recipients.
pub fn rule_own(ctx: &Ctx<'_>, n: &RuleNotice) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("notification_id".into(), ctx.notification_id.into());
    m.insert("group".into(), n.group.as_str().into());
    m.insert("recipient".into(), ctx.san.plain(&n.recipient).into());
    let (aff, aff_list) = addresses(ctx, &n.affected_recipients);
    m.insert("affected_recipients".into(), aff);
    m.insert("affected_recipients_list".into(), aff_list);
    m
}

/// `rule/cap-summary`: the notifications withheld by the per-message cap.
pub fn rule_cap(ctx: &Ctx<'_>, s: &RuleCapSummary, limit: usize) -> Value {
    let v = &*s.verdict;
    let mut m = verdict_base(ctx, v);
    let mut affected: Vec<String> = Vec::new();
    for t in &v.triggered_rules {
        for a in &t.affected_recipients {
            if !affected.contains(a) {
                affected.push(a.clone());
            }
        }
    }
    let (aff, aff_list) = addresses(ctx, &affected);
    m.insert("affected_recipients".into(), aff);
    m.insert("affected_recipients_list".into(), aff_list);
    rules_and_objects(ctx, v, &RuleRef::all(v), &mut m);
    m.insert("sent".into(), s.sent.into());
    m.insert("withheld".into(), s.withheld.into());
    m.insert("total".into(), (s.sent + s.withheld).into());
    m.insert("limit".into(), limit.into());
    Value::Object(m)
}

/// `bounce/notice`.
pub fn bounce(ctx: &Ctx<'_>, n: &BounceNotice) -> Value {
    let b = &*n.event;
    let mut m = Map::new();
    common(ctx, &mut m);
    node(ctx, &b.node, &mut m);
    let (title, explanation, advice) = ctx.lang.bounce_class(b.class.as_str());
    let rcpts: Vec<Value> = b
        .recipients
        .iter()
        .map(|r| {
            json!({
                "address": ctx.san.plain(&r.address),
                // DSN's `Original-Recipient: rfc822;addr`: the address type says nothing here.
                "original_recipient": ctx.san.opt_plain(r.original_recipient.as_deref().map(|o| {
                    if o.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("rfc822;")) { o[7..].trim() } else { o }
                })),
                "action": r.action.as_str(),
                "action_text": ctx.lang.recipient_action(r.action.as_str()),
                "status": ctx.san.plain(&r.status),
                "diagnostic_code": ctx.san.opt_text(r.diagnostic_code.as_deref()),
                "remote_mta": ctx.san.opt_text(r.remote_mta.as_deref()),
            })
        })
        .collect();
    let addrs: Vec<String> = b.recipients.iter().map(|r| r.address.clone()).collect();
    let (all, all_list) = addresses(ctx, &addrs);
    m.insert("event_id".into(), ctx.san.plain(&b.event_id).into());
    m.insert("cluster_id".into(), ctx.san.plain(&b.cluster_id).into());
    m.insert("queue_id".into(), ctx.san.plain(&b.queue_id).into());
    m.insert(
        "message_id".into(),
        ctx.san.opt_plain(b.message_id.as_deref()).into(),
    );
    m.insert(
        "smtp_message_id".into(),
        ctx.san.opt_plain(b.smtp_message_id.as_deref()).into(),
    );
    m.insert("sender".into(), sender(ctx, &b.sender).into());
    m.insert("null_sender".into(), b.sender.is_empty().into());
    m.insert("all_recipients".into(), all);
    m.insert("all_recipients_list".into(), all_list);
    m.insert(
        "subject".into(),
        ctx.san.opt_text(b.subject.as_deref()).into(),
    );
    m.insert("date".into(), fmt_time(&b.arrival_date, ctx.tz).into());
    m.insert(
        "occurred_at".into(),
        fmt_time(&b.occurred_at, ctx.tz).into(),
    );
    m.insert("class_code".into(), b.class.as_str().into());
    m.insert("class_text".into(), title.into());
    m.insert("class_explanation".into(), explanation.into());
    m.insert("class_advice".into(), advice.into());
    m.insert(
        "reason".into(),
        ctx.san.opt_text(b.reason.as_deref()).into(),
    );
    m.insert("recipients".into(), rcpts.into());
    m.insert(
        "original_headers".into(),
        b.original_headers
            .as_deref()
            .map(|h| header_block(h, ctx.max_header_bytes))
            .into(),
    );
    Value::Object(m)
}

/// `bounce/burst-summary`.
pub fn burst(ctx: &Ctx<'_>, s: &BounceBurstSummary) -> Value {
    let mut m = Map::new();
    common(ctx, &mut m);
    let classes: Vec<Value> = s
        .counts
        .iter()
        .map(|(c, n)| {
            json!({"class_code": c.as_str(), "class_text": ctx.lang.bounce_class(c.as_str()).0, "count": n})
        })
        .collect();
    let bounces: Vec<Value> = s
        .first
        .iter()
        .map(|b| {
            json!({
                "queue_id": ctx.san.plain(&b.queue_id),
                "class_code": b.class.as_str(),
                "class_text": ctx.lang.bounce_class(b.class.as_str()).0,
                "reason": ctx.san.opt_text(b.reason.as_deref()),
            })
        })
        .collect();
    m.insert("date".into(), fmt_time(&s.window_end, ctx.tz).into());
    m.insert(
        "window_start".into(),
        fmt_time(&s.window_start, ctx.tz).into(),
    );
    m.insert("window_end".into(), fmt_time(&s.window_end, ctx.tz).into());
    m.insert("total".into(), s.total.into());
    m.insert("shown".into(), s.first.len().into());
    m.insert(
        "not_shown".into(),
        s.total.saturating_sub(s.first.len() as u64).into(),
    );
    m.insert("classes".into(), classes.into());
    m.insert("bounces".into(), bounces.into());
    Value::Object(m)
}

fn app_error(ctx: &Ctx<'_>, e: &AppError) -> Value {
    let (kind_text, advice) = ctx.lang.error_kind(e.kind.as_str());
    let attributes: Vec<Value> = e
        .attributes
        .iter()
        .map(|(k, v)| {
            json!({"name": ctx.san.plain(k), "label": ctx.san.plain(ctx.lang.attribute(k)), "value": ctx.san.text(v)})
        })
        .collect();
    json!({
        "status_code": e.status.as_str(),
        "status_text": ctx.lang.error_status(e.status.as_str()),
        "is_new": e.status == ErrorStatus::New,
        "is_still_active": e.status == ErrorStatus::StillActive,
        "is_resolved": e.status == ErrorStatus::Resolved,
        "kind_code": e.kind.as_str(),
        "kind_text": kind_text,
        "advice": advice,
        "group_code": e.group.as_str(),
        "group_text": ctx.lang.error_group(e.group.as_str()),
        "node_id": ctx.san.plain(&e.node.node_id),
        "node_ip": ctx.san.plain(&e.node.ip),
        "node_port": e.node.port,
        "node_comment": ctx.san.opt_text(e.node.comment.as_deref()),
        "node_is_control": e.node.is_control,
        "first_seen": fmt_time(&e.first_seen, ctx.tz),
        "last_occurrence": fmt_time(&e.last_occurrence, ctx.tz),
        "last_successful_sync": e.last_successful_sync.as_ref().map(|t| fmt_time(t, ctx.tz)),
        "shows_sync": matches!(e.group, ErrorGroup::Synchronization | ErrorGroup::LdapIntegration),
        "message": ctx.san.opt_text(e.message.as_deref()),
        "attributes": attributes,
    })
}

/// `application/digest` and `application/change`.
pub fn application(ctx: &Ctx<'_>, a: &ApplicationNotice) -> Value {
    let mut m = Map::new();
    common(ctx, &mut m);
    let mut errors: Vec<&AppError> = a.errors.iter().collect();
    // Grouped by error group in contract order; within a group new first, then still active,
    // then resolved, then by kind and node, so the same state always reads the same.
    errors.sort_by(|x, y| {
        (x.group, x.status, x.kind, &x.node.node_id).cmp(&(
            y.group,
            y.status,
            y.kind,
            &y.node.node_id,
        ))
    });
    let mut groups: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < errors.len() {
        let g = errors[i].group;
        let members: Vec<Value> = errors[i..]
            .iter()
            .take_while(|e| e.group == g)
            .map(|e| app_error(ctx, e))
            .collect();
        i += members.len();
        groups.push(json!({
            "group_code": g.as_str(),
            "group_text": ctx.lang.error_group(g.as_str()),
            "errors": members,
        }));
    }
    let count = |s: ErrorStatus| a.errors.iter().filter(|e| e.status == s).count();
    m.insert("cluster_id".into(), ctx.san.plain(&a.cluster_id).into());
    m.insert("date".into(), fmt_time(&a.at, ctx.tz).into());
    m.insert(
        "kind_code".into(),
        match a.kind {
            ApplicationKind::Digest => "DIGEST",
            ApplicationKind::Change => "CHANGE",
        }
        .into(),
    );
    m.insert(
        "is_digest".into(),
        (a.kind == ApplicationKind::Digest).into(),
    );
    m.insert("new_count".into(), count(ErrorStatus::New).into());
    m.insert(
        "still_active_count".into(),
        count(ErrorStatus::StillActive).into(),
    );
    m.insert("resolved_count".into(), count(ErrorStatus::Resolved).into());
    m.insert(
        "active_count".into(),
        (count(ErrorStatus::New) + count(ErrorStatus::StillActive)).into(),
    );
    m.insert("error_count".into(), a.errors.len().into());
    m.insert(
        "errors".into(),
        errors
            .iter()
            .map(|e| app_error(ctx, e))
            .collect::<Vec<_>>()
            .into(),
    );
    m.insert("groups".into(), groups.into());
    Value::Object(m)
}
