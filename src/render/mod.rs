//! Rendering: the template registry (Handlebars, strict, compiled once at start-up from
//! `[templates] dir` with per-template fallback to the built-in defaults), KSMG macro
//! translation, the variables of each notification kind, and the MIME message with its
//! deterministic ids. `render` never fails: a template that fails at run time is replaced by the
//! fallback notification, which names the error and is counted.
//!
//! Imports only `event`, `config` and `telemetry` (DESIGN §5); the wiring fills the plain
//! request structs of [`model`] from the deciders' outputs.

pub mod builtin;
pub mod compiled;
pub mod context;
pub mod fallback;
pub mod i18n;
pub mod lint;
pub mod macros;
pub mod mime;
pub mod model;
pub mod preview;
pub mod samples;
pub mod sanitize;
pub mod templates;

pub use model::*;

use crate::config::{Config, EnvelopeSender, NotifyGroup, Problem};
use crate::event::ScanVerdict;
use crate::telemetry;
use chrono_tz::Tz;
use compiled::Layer;
use context::Ctx;
use handlebars::Context;
use i18n::Lang;
use prometheus::{IntCounterVec, Registry};
use samples::Schema;
use sanitize::{header_block, header_line, Sanitizer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use templates::{SampleContexts, Templates};

/// Why the renderer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Templates (or the config's references to them) have problems; each names its file and
    /// line or its config path.
    #[error("{} template problem(s):\n{}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<Problem>),
}

impl RenderError {
    /// Never: a template does not fix itself.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Stable code for logs.
    pub fn error_code(&self) -> &'static str {
        match self {
            RenderError::Templates(_) => "templates_invalid",
        }
    }
}

/// Kind labels of the metrics, one per request variant and application kind.
pub const KINDS: [&str; 6] = [
    "rule",
    "rule_cap_summary",
    "bounce",
    "bounce_burst_summary",
    "application_digest",
    "application_change",
];

#[derive(Clone)]
struct Metrics {
    rendered: IntCounterVec,
    fallbacks: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Metrics {
        let pre: Vec<[&str; 1]> = KINDS.iter().map(|k| [*k]).collect();
        let pre: Vec<&[&str]> = pre.iter().map(|a| a.as_slice()).collect();
        Metrics {
            rendered: telemetry::counter_vec(
                registry,
                "render_requests_total",
                "Notifications rendered, by kind (fallbacks included).",
                &["kind"],
                &pre,
            ),
            fallbacks: telemetry::counter_vec(
                registry,
                "render_template_failures_total",
                "Notifications sent with the fallback template because their template failed, by kind.",
                &["kind"],
                &pre,
            ),
        }
    }
}

/// Telemetry event: a template failed at run time and the fallback was sent.
pub struct RenderFellBack<'a> {
    /// Metric kind label.
    pub kind: &'static str,
    /// The template that failed.
    pub template: &'a str,
    /// The event id (or id seed).
    pub event_id: &'a str,
    /// What failed.
    pub error: &'a str,
}

impl RenderFellBack<'_> {
    fn emit(&self, m: &Metrics) {
        tracing::warn!(
            kind = self.kind,
            template = self.template,
            event_id = self.event_id,
            error = self.error,
            "template failed; fallback notification sent"
        );
        m.fallbacks.with_label_values(&[self.kind]).inc();
    }
}

/// The rendered parts of a notification, before MIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The subject as sent (one line, `[ID: …]` appended when configured).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, when the template has one and `templates.html` is on.
    pub html: Option<String>,
}

/// A notification rendered up to its MIME build (see [`Renderer::prepare_mime`]).
#[derive(Debug, Clone)]
pub struct MimeInput {
    ids: mime::Ids,
    to: Vec<lettre::Address>,
    parts: Parts,
    headers_attachment: Option<String>,
    date: crate::event::time::Timestamp,
    gateway_message_id: Option<String>,
}

/// Settings taken from the config once.
struct Settings {
    product_name: String,
    max_value_chars: usize,
    html: bool,
    unique_header: bool,
    unique_subject: bool,
    origin: mime::Origin,
    envelope_from: Option<String>,
    domain: String,
    attach_headers: bool,
    max_header_bytes: usize,
    rule_cap: usize,
    default_tz: Tz,
    cluster_tz: HashMap<String, Tz>,
}

impl Settings {
    fn from_config(c: &Config) -> Settings {
        let from = lettre::message::Mailbox::new(
            c.sender.display_name.clone(),
            c.sender.address.0.clone(),
        );
        Settings {
            product_name: c.templates.product_name.clone(),
            max_value_chars: c.templates.max_value_chars,
            html: c.templates.html,
            unique_header: c.unique_id.header,
            unique_subject: c.unique_id.subject,
            origin: mime::Origin {
                from,
                reply_to: c
                    .sender
                    .reply_to
                    .as_ref()
                    .map(|r| lettre::message::Mailbox::new(None, r.0.clone())),
            },
            envelope_from: match c.sender.envelope() {
                EnvelopeSender::Null => None,
                EnvelopeSender::Address(a) => Some(a.as_str().to_string()),
            },
            domain: c.sender.address.domain().to_string(),
            attach_headers: c.rules.attach_original_headers,
            max_header_bytes: c.rules.max_header_bytes,
            rule_cap: c.rules.max_notifications_per_message,
            default_tz: c.application.default_timezone,
            cluster_tz: c
                .application
                .clusters
                .iter()
                .map(|(k, v)| (k.clone(), v.timezone))
                .collect(),
        }
    }

    fn cluster_tz(&self, cluster: &str) -> Tz {
        self.cluster_tz
            .get(cluster)
            .copied()
            .unwrap_or(self.default_tz)
    }
}

/// What `render` needs to know about a request before it renders.
struct Plan<'a> {
    kind: &'static str,
    template: &'a str,
    group: &'static str,
    event_id: &'a str,
    language: &'a str,
    recipients: Vec<&'a str>,
    date: crate::event::time::Timestamp,
    tz: Tz,
    gateway_message_id: Option<&'a str>,
    internal: bool,
    original_headers: Option<&'a str>,
}

fn plan<'a>(s: &Settings, req: &'a Request) -> Plan<'a> {
    match req {
        Request::Rule(n) => Plan {
            kind: "rule",
            template: &n.template,
            group: n.group.as_str(),
            event_id: &n.verdict.event_id,
            language: &n.language,
            recipients: vec![n.recipient.as_str()],
            date: n.verdict.received_at,
            tz: s.cluster_tz(&n.verdict.cluster_id),
            gateway_message_id: Some(&n.verdict.message_id),
            internal: !matches!(n.group, NotifyGroup::Sender | NotifyGroup::Recipients),
            original_headers: if s.attach_headers {
                n.verdict.original_headers.as_deref()
            } else {
                None
            },
        },
        Request::RuleCapSummary(c) => Plan {
            kind: "rule_cap_summary",
            template: "rule/cap-summary",
            group: "",
            event_id: &c.verdict.event_id,
            language: &c.language,
            recipients: c.recipients.iter().map(String::as_str).collect(),
            date: c.verdict.received_at,
            tz: s.cluster_tz(&c.verdict.cluster_id),
            gateway_message_id: Some(&c.verdict.message_id),
            internal: true,
            original_headers: None,
        },
        Request::Bounce(b) => Plan {
            kind: "bounce",
            template: "bounce/notice",
            group: "",
            event_id: &b.event.event_id,
            language: &b.language,
            recipients: b.recipients.iter().map(String::as_str).collect(),
            date: b.event.occurred_at,
            tz: s.cluster_tz(&b.event.cluster_id),
            gateway_message_id: b.event.message_id.as_deref(),
            internal: true,
            original_headers: None,
        },
        Request::BounceBurst(b) => Plan {
            kind: "bounce_burst_summary",
            template: "bounce/burst-summary",
            group: "",
            event_id: &b.id_seed,
            language: &b.language,
            recipients: b.recipients.iter().map(String::as_str).collect(),
            date: b.window_end,
            tz: s.default_tz,
            gateway_message_id: None,
            internal: true,
            original_headers: None,
        },
        Request::Application(a) => Plan {
            kind: match a.kind {
                ApplicationKind::Digest => "application_digest",
                ApplicationKind::Change => "application_change",
            },
            template: a.kind.template(),
            group: "",
            event_id: &a.id_seed,
            language: &a.language,
            recipients: a.recipients.iter().map(String::as_str).collect(),
            date: a.at,
            tz: a.tz,
            gateway_message_id: None,
            internal: true,
            original_headers: None,
        },
    }
}

/// Which way the templates run (see `compiled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// Compiled programs and shared variables where possible, Handlebars otherwise.
    Fast,
    /// Handlebars alone on a tree built per request: the reference.
    Handlebars,
}

/// The renderer: compiled templates and the settings of every message. Cheap to share
/// (`&self` everywhere); build it once at start-up.
pub struct Renderer {
    templates: Templates,
    settings: Settings,
    metrics: Metrics,
    shared: Mutex<Vec<Arc<SharedRuleVars>>>,
}

/// How many verdicts' shared variables are kept: the notifications of one verdict are rendered
/// one after the other, a few verdicts may interleave.
const SHARED_CACHE: usize = 8;

/// The variables of a rule notification that every notification of the same verdict, language,
/// zone and rule list shares, built once (the profile of issue 9: building them was a third of a
/// render). The key holds the verdict's `Arc`, so its address cannot be reused while cached, and
/// the verdict is immutable behind it: same address, same verdict.
struct SharedRuleVars {
    verdict: Arc<ScanVerdict>,
    language: String,
    tz: Tz,
    rules: Vec<RuleRef>,
    /// `context::rule_shared` and `context::rule_rules` in one hashed map (one lookup instead
    /// of two, and no ordered search).
    vars: HashMap<String, serde_json::Value>,
}

fn contexts(
    s: &Settings,
    req: &Request,
    notification_id: &str,
    language: &str,
    tz: Tz,
) -> serde_json::Value {
    let ctx = make_ctx(s, notification_id, language, tz);
    match req {
        Request::Rule(n) => context::rule(&ctx, n),
        Request::RuleCapSummary(c) => context::rule_cap(&ctx, c, s.rule_cap),
        Request::Bounce(b) => context::bounce(&ctx, b),
        Request::BounceBurst(b) => context::burst(&ctx, b),
        Request::Application(a) => context::application(&ctx, a),
    }
}

fn make_ctx<'a>(s: &'a Settings, notification_id: &'a str, language: &'a str, tz: Tz) -> Ctx<'a> {
    let lang = Lang::from_code(language);
    Ctx {
        product_name: &s.product_name,
        notification_id,
        language,
        lang,
        san: Sanitizer {
            max_chars: s.max_value_chars,
            lang,
        },
        tz,
        max_header_bytes: s.max_header_bytes,
    }
}

fn sample_contexts(s: &Settings) -> SampleContexts {
    Schema::ALL
        .into_iter()
        .map(|schema| {
            let values = samples::requests(schema)
                .iter()
                .map(|(label, req)| {
                    let p = plan(s, req);
                    (
                        *label,
                        contexts(s, req, "0123456789abcdef", p.language, p.tz),
                    )
                })
                .collect();
            (schema, values)
        })
        .collect()
}

/// Every template problem of a config: template files (file and line) and the config's
/// references to templates and languages (config path). Empty when all is well. This is what
/// `check-config` adds to the config's own validation.
pub fn check(config: &Config) -> Vec<Problem> {
    load(config, &Settings::from_config(config)).1
}

fn load(config: &Config, settings: &Settings) -> (Templates, Vec<Problem>) {
    let (templates, mut problems) =
        templates::load(config.templates.dir.as_deref(), &sample_contexts(settings));
    let mut bad_names = Vec::new();
    let mut need = |path: String, name: &str, lang: &str| {
        if templates.get(name, lang).is_none() && !templates.is_broken(name, lang) {
            let what = if templates.has_name(name) {
                format!("template {name} has no {lang:?} version: add {name}.{lang}.subject.hbs and {name}.{lang}.text.hbs to the template directory (built-in languages: en, ru, de)")
            } else {
                format!("no template {name}: add {name}.{lang}.subject.hbs and {name}.{lang}.text.hbs to the template directory")
            };
            problems.push(Problem {
                path,
                message: what,
            });
        }
    };
    let r = &config.rules;
    if r.enabled {
        for g in NotifyGroup::ALL {
            need(
                "rules.language".into(),
                &format!("rule/{}", g.as_str()),
                &r.language,
            );
        }
        need("rules.language".into(), "rule/cap-summary", &r.language);
        for (path, rule) in std::iter::once(("rules.default".to_string(), &r.default)).chain(
            r.rule
                .iter()
                .enumerate()
                .map(|(i, rule)| (format!("rules.rule[{i}]"), rule)),
        ) {
            for (group, name) in [
                ("general", &rule.templates.general),
                ("sender", &rule.templates.sender),
                ("recipients", &rule.templates.recipients),
                ("additional", &rule.templates.additional),
            ] {
                if let Some(name) = name {
                    let p = format!("{path}.templates.{group}");
                    if Schema::of(name) != Some(Schema::Rule) {
                        bad_names.push(Problem {
                            path: p,
                            message: format!("{name:?} is not a rule template; write e.g. \"rule/{group}\" or your own \"rule/…\""),
                        });
                    } else {
                        need(p, name, &r.language);
                    }
                }
            }
        }
    }
    if config.bounce.enabled {
        for (i, g) in config.bounce.recipients.iter().enumerate() {
            for name in ["bounce/notice", "bounce/burst-summary"] {
                need(
                    format!("bounce.recipients[{i}].language"),
                    name,
                    &g.language,
                );
            }
        }
    }
    if config.application.enabled {
        for (i, g) in config.application.recipients.iter().enumerate() {
            for name in ["application/digest", "application/change"] {
                need(
                    format!("application.recipients[{i}].language"),
                    name,
                    &g.language,
                );
            }
        }
    }
    problems.extend(bad_names);
    (templates, problems)
}

impl Renderer {
    /// Compiles every template (built-in and `[templates] dir`) and checks the config's
    /// references to them; fails with every problem found, as `check-config` reports them.
    pub fn new(config: &Config, registry: &Registry) -> Result<Renderer, RenderError> {
        let settings = Settings::from_config(config);
        let (templates, problems) = load(config, &settings);
        if !problems.is_empty() {
            return Err(RenderError::Templates(problems));
        }
        Ok(Renderer {
            templates,
            settings,
            metrics: Metrics::new(registry),
            shared: Mutex::new(Vec::with_capacity(SHARED_CACHE)),
        })
    }

    /// Where the template `name` in `lang` comes from (`built-in` or the directory), if any.
    pub fn template_origin(&self, name: &str, lang: &str) -> Option<&str> {
        self.templates.get(name, lang).map(|e| e.origin.as_str())
    }

    /// Renders one notification. Never fails: a template error sends the fallback.
    pub fn render(&self, req: &Request) -> Rendered {
        let s = &self.settings;
        let p = plan(s, req);
        let to = Addressees::of(&p.recipients);
        let ids = self.ids(&p, &to.accepted);
        self.metrics.rendered.with_label_values(&[p.kind]).inc();

        let attempt = self.render_template(req, &p, &ids).and_then(
            |Parts {
                 subject,
                 text,
                 html,
             }| {
                let headers_attachment = p
                    .original_headers
                    .map(|h| header_block(h, s.max_header_bytes));
                let bytes = mime::build(
                    &s.origin,
                    mime::Mail {
                        ids: &ids,
                        to: &to.valid,
                        subject: &subject,
                        text: &text,
                        html: html.as_deref(),
                        headers_attachment: headers_attachment.as_deref(),
                        date: p.date,
                        unique_header: s.unique_header,
                        gateway_message_id: p.gateway_message_id,
                    },
                )
                .map_err(|e| format!("building the message: {e}"))?;
                Ok((subject, bytes))
            },
        );
        let (subject, bytes, template, fallback_used) = match attempt {
            Ok((subject, bytes)) => (subject, bytes, p.template.to_string(), false),
            Err(error) => {
                RenderFellBack {
                    kind: p.kind,
                    template: p.template,
                    event_id: p.event_id,
                    error: &error,
                }
                .emit(&self.metrics);
                let fb = fallback::fallback(
                    req,
                    p.template,
                    &error,
                    &ids.notification_id,
                    p.internal,
                    p.tz,
                    s.max_value_chars,
                );
                let subject = self.with_id(header_line(&fb.subject), &ids);
                let bytes = mime::build(
                    &s.origin,
                    mime::Mail {
                        ids: &ids,
                        to: &to.valid,
                        subject: &subject,
                        text: &fb.text,
                        html: None,
                        headers_attachment: None,
                        date: p.date,
                        unique_header: s.unique_header,
                        gateway_message_id: p.gateway_message_id,
                    },
                )
                .unwrap_or_else(|e| minimal_message(&ids, &subject, &e));
                (subject, bytes, "fallback".to_string(), true)
            }
        };
        Rendered {
            message_id: ids.message_id.clone(),
            notification_id: ids.notification_id.clone(),
            envelope_from: s.envelope_from.clone(),
            recipients: to.accepted,
            invalid_recipients: to.invalid,
            subject,
            template,
            bytes,
            fallback_used,
        }
    }

    /// Renders `req` up to the MIME build: the parts and everything the message around them
    /// needs. With [`Renderer::build_mime`] this is [`Renderer::render`] without the fallback;
    /// the benches use it to time the MIME build alone.
    pub fn prepare_mime(&self, req: &Request) -> Result<MimeInput, String> {
        let s = &self.settings;
        let p = plan(s, req);
        let to = Addressees::of(&p.recipients);
        let ids = self.ids(&p, &to.accepted);
        let parts = self.render_template(req, &p, &ids)?;
        Ok(MimeInput {
            headers_attachment: p
                .original_headers
                .map(|h| header_block(h, s.max_header_bytes)),
            date: p.date,
            gateway_message_id: p.gateway_message_id.map(str::to_string),
            to: to.valid,
            ids,
            parts,
        })
    }

    /// The message bytes of a prepared notification.
    pub fn build_mime(&self, m: &MimeInput) -> Result<Vec<u8>, String> {
        self.build_mime_by(m, mime::build)
    }

    /// The same bytes built by lettre's `Message` builder, which [`Renderer::build_mime`]
    /// replaced: the benches' same-run baseline.
    pub fn build_mime_with_lettre(&self, m: &MimeInput) -> Result<Vec<u8>, String> {
        self.build_mime_by(m, mime::build_with_lettre)
    }

    fn build_mime_by(
        &self,
        m: &MimeInput,
        build: fn(&mime::Origin, mime::Mail<'_>) -> Result<Vec<u8>, String>,
    ) -> Result<Vec<u8>, String> {
        build(
            &self.settings.origin,
            mime::Mail {
                ids: &m.ids,
                to: &m.to,
                subject: &m.parts.subject,
                text: &m.parts.text,
                html: m.parts.html.as_deref(),
                headers_attachment: m.headers_attachment.as_deref(),
                date: m.date,
                unique_header: self.settings.unique_header,
                gateway_message_id: m.gateway_message_id.as_deref(),
            },
        )
    }

    /// The shared variables of `n`'s verdict, from the cache or built (and cached) now.
    fn shared_rule_vars(&self, n: &RuleNotice, language: &str, tz: Tz) -> Arc<SharedRuleVars> {
        let hit = |c: &Arc<SharedRuleVars>| {
            Arc::ptr_eq(&c.verdict, &n.verdict)
                && c.language == language
                && c.tz == tz
                && c.rules == n.rules
        };
        // A poisoned lock only means another render panicked mid-insert; the cache is still a
        // valid Vec of complete entries.
        if let Some(c) = self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| hit(c))
        {
            return c.clone();
        }
        let ctx = make_ctx(&self.settings, "", language, tz);
        let built = Arc::new(SharedRuleVars {
            verdict: n.verdict.clone(),
            language: language.to_string(),
            tz,
            rules: n.rules.clone(),
            vars: context::rule_shared(&ctx, &n.verdict)
                .into_iter()
                .chain(context::rule_rules(&ctx, &n.verdict, &n.rules))
                .collect(),
        });
        let mut cache = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= SHARED_CACHE {
            cache.remove(0);
        }
        cache.push(built.clone());
        built
    }

    fn ids(&self, p: &Plan<'_>, accepted: &[String]) -> mime::Ids {
        mime::ids(
            p.event_id,
            p.kind,
            p.group,
            p.template,
            accepted,
            &self.settings.domain,
        )
    }

    fn with_id(&self, subject: String, ids: &mime::Ids) -> String {
        if self.settings.unique_subject {
            format!("{subject} [ID: {}]", ids.notification_id)
        } else {
            subject
        }
    }

    /// What the templates make of `req` before it becomes MIME — the subject as sent, the text
    /// and the HTML body — or the error that would send the fallback. For tests and tools.
    pub fn render_parts(&self, req: &Request) -> Result<Parts, String> {
        let p = plan(&self.settings, req);
        let ids = self.ids(&p, &Addressees::of(&p.recipients).accepted);
        self.render_template(req, &p, &ids)
    }

    /// [`Renderer::render_parts`] the way it was before issue 9: the whole variable tree built
    /// for this request alone and every part rendered by Handlebars. The tests hold the fast
    /// path to it byte for byte; the benches measure against it.
    pub fn render_parts_handlebars(&self, req: &Request) -> Result<Parts, String> {
        let p = plan(&self.settings, req);
        let ids = self.ids(&p, &Addressees::of(&p.recipients).accepted);
        self.render_with(req, &p, &ids, Engine::Handlebars)
    }

    /// Subject, text and optional HTML from the templates, or the error that stops them.
    fn render_template(
        &self,
        req: &Request,
        p: &Plan<'_>,
        ids: &mime::Ids,
    ) -> Result<Parts, String> {
        self.render_with(req, p, ids, Engine::Fast)
    }

    fn render_with(
        &self,
        req: &Request,
        p: &Plan<'_>,
        ids: &mime::Ids,
        engine: Engine,
    ) -> Result<Parts, String> {
        let (entry, language) = match self.templates.get(p.template, p.language) {
            Some(e) => (e, p.language),
            None => match self.templates.get(p.template, "en") {
                Some(e) => (e, "en"),
                None => {
                    return Err(format!(
                        "no template {} in language {:?} or \"en\"",
                        p.template, p.language
                    ))
                }
            },
        };
        let id = ids.notification_id.as_str();
        // Rule notifications: the verdict's variables are shared across its notifications and
        // only this notification's own are built here; the other kinds build theirs whole.
        let (own, shared, whole);
        let layers: Vec<Layer<'_>> = match req {
            Request::Rule(n) if engine == Engine::Fast => {
                let ctx = make_ctx(&self.settings, id, language, p.tz);
                own = context::rule_own(&ctx, n);
                shared = self.shared_rule_vars(n, language, p.tz);
                vec![Layer::Json(&own), Layer::Hashed(&shared.vars)]
            }
            _ => {
                whole = contexts(&self.settings, req, id, language, p.tz);
                match &whole {
                    serde_json::Value::Object(m) => vec![Layer::Json(m)],
                    _ => return Err("template variables are not an object".into()),
                }
            }
        };
        // Handlebars needs one tree: built only when a part is left to it (see `compiled`).
        let tree = std::cell::OnceCell::new();
        let value = || {
            tree.get_or_init(|| {
                let mut m = serde_json::Map::new();
                for l in layers.iter().rev() {
                    m.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Context::from(serde_json::Value::Object(m))
            })
        };
        let fail = |e: handlebars::RenderError| {
            format!(
                "{}.hbs line {}: {}",
                e.template_name.as_deref().unwrap_or(p.template),
                e.line_no.map_or_else(|| "?".to_string(), |l| l.to_string()),
                e.reason()
            )
        };
        let part = |key: &str, html: bool| -> Result<String, String> {
            if let Some(program) = self
                .templates
                .programs
                .get(key)
                .filter(|_| engine == Engine::Fast)
            {
                let mut out = String::with_capacity(4096);
                if program.render(&layers, html, &mut out).is_ok() {
                    return Ok(out);
                }
            }
            let reg = if html {
                &self.templates.html
            } else {
                &self.templates.text
            };
            reg.render_with_context(key, value()).map_err(fail)
        };
        let subject = part(&entry.subject, false)?;
        let text = part(&entry.text, false)?;
        let html = match (&entry.html, self.settings.html) {
            (Some(key), true) => Some(part(key, true)?),
            _ => None,
        };
        Ok(Parts {
            subject: self.with_id(header_line(&subject), ids),
            text,
            html,
        })
    }
}

/// A request's addresses, split into the valid ones (sent to, and part of the Message-ID) and
/// the rest (reported, never sent to: an event's address could be anything).
struct Addressees {
    valid: Vec<lettre::Address>,
    accepted: Vec<String>,
    invalid: Vec<String>,
}

impl Addressees {
    fn of(list: &[&str]) -> Addressees {
        let mut a = Addressees {
            valid: Vec::with_capacity(list.len()),
            accepted: Vec::with_capacity(list.len()),
            invalid: Vec::new(),
        };
        for r in list {
            match r.trim().parse::<lettre::Address>() {
                Ok(addr) => {
                    a.accepted.push(addr.to_string());
                    a.valid.push(addr);
                }
                Err(_) => a.invalid.push((*r).to_string()),
            }
        }
        a
    }
}

/// The last resort if even the fallback cannot be built (it can't, short of a lettre bug): a
/// hand-written ASCII message that still names the problem.
fn minimal_message(ids: &mime::Ids, subject: &str, error: &str) -> Vec<u8> {
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    format!(
        "Message-ID: {}\r\nSubject: {}\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nmailgate-notify could not build this notification: {}\r\nNotification id: {}\r\n",
        ids.message_id,
        ascii(subject),
        ascii(error),
        ids.notification_id
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct NoEnv;
    impl crate::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn config(extra: &str) -> Config {
        let toml = format!(
            "[sender]\naddress = \"n@example.com\"\n[[application.recipients]]\naddresses = [\"a@example.com\"]\nlanguage = \"ru\"\n[[bounce.recipients]]\naddresses = [\"p@example.com\"]\nlanguage = \"de\"\n{extra}"
        );
        Config::from_toml(&toml, Path::new("."), &NoEnv).unwrap()
    }

    #[test]
    fn every_built_in_template_passes_the_load_time_checks_in_every_language() {
        assert_eq!(check(&config("")), vec![]);
        let (t, problems) = load(&config(""), &Settings::from_config(&config("")));
        assert!(problems.is_empty());
        for name in builtin::NAMES {
            for lang in i18n::BUILTIN_LANGUAGES {
                let e = t.get(name, lang).unwrap();
                assert!(e.html.is_some(), "{name} {lang} has an HTML part");
                assert_eq!(e.origin, "built-in");
                for key in [&e.subject, &e.text, e.html.as_ref().unwrap()] {
                    assert!(t.programs.contains_key(key), "{key} runs on the fast path");
                }
            }
        }
    }

    #[test]
    fn every_sample_request_renders_without_the_fallback() {
        let c = config("");
        let r = Renderer::new(&c, &Registry::new()).unwrap();
        for schema in Schema::ALL {
            for (label, req) in samples::requests(schema) {
                let out = r.render(&req);
                assert!(
                    !out.fallback_used,
                    "{schema:?} {label}: {}",
                    String::from_utf8_lossy(&out.bytes)
                );
            }
        }
    }

    #[test]
    fn the_null_envelope_sender_is_none_and_the_domain_names_the_message_id() {
        let c = config("");
        let mut c2 = c.clone();
        c2.sender.envelope_sender = Some(EnvelopeSender::Null);
        let r = Renderer::new(&c2, &Registry::new()).unwrap();
        let [(_, req), _] = samples::requests(Schema::Bounce);
        let out = r.render(&req);
        assert_eq!(out.envelope_from, None);
        assert!(
            out.message_id.ends_with(".mailgate-notify@example.com>"),
            "{}",
            out.message_id
        );
        assert_eq!(
            out.message_id.len(),
            "<.mailgate-notify@example.com>".len() + 32
        );
    }
}
