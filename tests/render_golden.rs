//! The default templates as a person receives them: a golden file per (template, language,
//! representative | hostile event) under `tests/golden/`, each showing the headers as sent and
//! every part decoded. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test render_golden` and review the diff.
//! Also: every message parses back to the same headers and bodies, hostile values never make a
//! header, markup or a live link, and the same input gives the same Message-ID.

mod render_support;

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use mailgate_notify::render::{Renderer, Request};
use render_support::*;
use std::collections::BTreeSet;

fn cases() -> Vec<(String, String, &'static str, Request)> {
    let mut out = Vec::new();
    for name in TEMPLATES {
        for lang in LANGS {
            for (case, hostile) in [("representative", false), ("hostile", true)] {
                out.push((
                    name.to_string(),
                    lang.to_string(),
                    case,
                    request(name, lang, hostile),
                ));
            }
        }
    }
    out
}

fn has_gateway_message_id(req: &Request) -> bool {
    matches!(
        req,
        Request::Rule(_) | Request::RuleCapSummary(_) | Request::Bounce(_)
    )
}

#[test]
fn every_default_template_matches_its_golden_file_for_representative_and_hostile_events() {
    let (renderer, _) = renderer(&config());
    let mut problems = Vec::new();
    for (name, lang, case, req) in cases() {
        let r = renderer.render(&req);
        assert!(
            !r.fallback_used,
            "{name} {lang} {case} fell back: {}",
            String::from_utf8_lossy(&r.bytes)
        );
        let path = root()
            .join("tests/golden")
            .join(format!("{name}.{lang}.{case}.txt"));
        if let Some(p) = golden(&path, &readable(&r)) {
            problems.push(p);
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo test --test render_golden, then review `git diff tests/golden`.",
        problems.join("\n")
    );
}

fn header_text<'a>(msg: &'a mail_parser::Message<'a>, name: &'a str) -> Option<&'a str> {
    match msg.header(name)? {
        HeaderValue::Text(t) => Some(t.as_ref()),
        _ => msg.header_raw(name).map(str::trim),
    }
}

#[test]
fn every_rendered_message_parses_back_to_the_same_headers_and_bodies() {
    let (renderer, _) = renderer(&config());
    for (name, lang, case, req) in cases() {
        let what = format!("{name} {lang} {case}");
        let parts = renderer.render_parts(&req).unwrap();
        let r = renderer.render(&req);
        let msg = MessageParser::default().parse(&r.bytes).unwrap();
        assert_eq!(msg.subject(), Some(parts.subject.as_str()), "{what}");
        assert_eq!(r.subject, parts.subject, "{what}");
        assert!(
            parts
                .subject
                .ends_with(&format!("[ID: {}]", r.notification_id)),
            "{what}"
        );
        let from = msg.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.address(), Some("notify@mail.example.com"), "{what}");
        assert_eq!(from.name(), Some("Mail gateway"), "{what}");
        let reply = msg.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply.address(), Some("security-desk@example.com"), "{what}");
        let to: Vec<&str> = msg
            .to()
            .unwrap()
            .iter()
            .filter_map(|a| a.address())
            .collect();
        assert_eq!(
            to,
            r.recipients.iter().map(String::as_str).collect::<Vec<_>>(),
            "{what}"
        );
        assert_eq!(
            r.envelope_from.as_deref(),
            Some("notify@mail.example.com"),
            "{what}"
        );
        assert_eq!(
            format!("<{}>", msg.message_id().unwrap()),
            r.message_id,
            "{what}"
        );
        assert_eq!(
            header_text(&msg, "Auto-Submitted"),
            Some("auto-generated"),
            "{what}"
        );
        assert_eq!(
            header_text(&msg, "X-Auto-Response-Suppress"),
            Some("All"),
            "{what}"
        );
        assert_eq!(
            header_text(&msg, "X-Mailgate-Notification-ID"),
            Some(r.notification_id.as_str()),
            "{what}"
        );
        assert_eq!(
            header_text(&msg, "X-Mailgate-Message-ID").is_some(),
            has_gateway_message_id(&req),
            "{what}"
        );
        let text = msg.text_part(0).and_then(|p| p.text_contents()).unwrap();
        assert_eq!(text.replace("\r\n", "\n"), parts.text, "{what}: text body");
        let html = msg.html_part(0).and_then(|p| p.text_contents()).unwrap();
        assert_eq!(
            Some(html.replace("\r\n", "\n")),
            parts.html,
            "{what}: HTML body"
        );
        let attached = msg
            .attachments()
            .any(|a| a.content_type().and_then(|c| c.subtype()) == Some("rfc822-headers"));
        assert_eq!(
            attached,
            matches!(req, Request::Rule(_)),
            "{what}: header attachment"
        );
    }
}

#[test]
fn hostile_values_never_create_headers_markup_or_live_links() {
    let (renderer, _) = renderer(&config());
    let allowed: BTreeSet<&str> = [
        "from",
        "reply-to",
        "to",
        "date",
        "message-id",
        "subject",
        "auto-submitted",
        "x-auto-response-suppress",
        "x-mailgate-notification-id",
        "x-mailgate-message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
    .into();
    for (name, lang, case, req) in cases().into_iter().filter(|c| c.2 == "hostile") {
        let what = format!("{name} {lang} {case}");
        let r = renderer.render(&req);
        let msg = MessageParser::default().parse(&r.bytes).unwrap();
        for h in msg.headers() {
            assert!(
                allowed.contains(h.name().to_ascii_lowercase().as_str()),
                "{what}: unexpected header {}",
                h.name()
            );
        }
        let subject = msg.subject().unwrap();
        assert!(!subject.contains(['\r', '\n']), "{what}: {subject:?}");
        let text = msg
            .text_part(0)
            .and_then(|p| p.text_contents())
            .unwrap()
            .to_string();
        let html = msg
            .html_part(0)
            .and_then(|p| p.text_contents())
            .unwrap()
            .to_string();
        let attachments: String = msg
            .attachments()
            .map(|a| String::from_utf8_lossy(a.contents()).into_owned())
            .collect();
        for (part, body) in [
            ("subject", subject),
            ("text", &text),
            ("html", &html),
            ("attachment", &attachments),
        ] {
            assert!(
                !body.contains("http://evil"),
                "{what}: live link in the {part}"
            );
            assert!(
                !body.contains('\u{202E}'),
                "{what}: bidi override in the {part}"
            );
            assert!(
                !body.contains("BODY MUST NOT APPEAR"),
                "{what}: original body in the {part}"
            );
            assert!(
                !body.contains("\nBcc:") && !body.contains("\nX-Injected"),
                "{what}: injected line in the {part}"
            );
        }
        for markup in ["<script", "<img", "<b>"] {
            assert!(!html.contains(markup), "{what}: {markup} in the HTML body");
        }
        if name.starts_with("rule/") && name != "rule/cap-summary" {
            // The original subject: its encoded word stays literal text, its link inert, its
            // emoji and right-to-left words intact, its 10 KB cut with a marker.
            assert!(text.contains("=?utf-8?B?SGVsbG8gV29ybGQ=?= urgent Bcc: victim@example.com 🎉 مرحبا שלום hxxp://evil[.]example/x"), "{what}");
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.html"),
                "{what}"
            );
            let marker = match lang.as_str() {
                "ru" => "… [обрезано: ещё ",
                "de" => "… [gekürzt: ",
                _ => "… [cut: ",
            };
            assert!(text.contains(marker), "{what}: no cut marker");
            assert!(
                text.len() < 8 * 1024,
                "{what}: {} bytes of text",
                text.len()
            );
        }
    }
}

#[test]
fn a_subject_that_is_an_encoded_word_reads_literally_instead_of_decoding() {
    let (renderer, _) = renderer(&config());
    let r = renderer.render(&request("rule/sender", "en", true));
    let msg = MessageParser::default().parse(&r.bytes).unwrap();
    let subject = msg.subject().unwrap();
    assert!(
        subject.starts_with("Your message \"=?utf-8?B?SGVsbG8gV29ybGQ=?= urgent Bcc:"),
        "{subject}"
    );
    assert!(!subject.contains("Hello World"), "{subject}");
}

#[test]
fn the_same_input_renders_the_same_message_id_and_bytes_twice() {
    let (renderer, _) = renderer(&config());
    let (again, _) = render_support::renderer(&config());
    for name in TEMPLATES {
        let a = renderer.render(&request(name, "en", false));
        let b = again.render(&request(name, "en", false));
        assert_eq!(a.message_id, b.message_id, "{name}");
        assert_eq!(a.bytes, b.bytes, "{name}");
    }
    let mut req = request("rule/general", "en", false);
    let first = renderer.render(&req).message_id;
    if let Request::Rule(n) = &mut req {
        n.recipient = "other@example.com".into();
    }
    assert_ne!(
        renderer.render(&req).message_id,
        first,
        "another recipient is another notification"
    );
    if let Request::Rule(n) = &mut req {
        n.recipient = "security@example.com".into();
        n.template = "rule/additional".into();
    }
    assert_ne!(
        renderer.render(&req).message_id,
        first,
        "another template is another notification"
    );

    let mut app = request("application/change", "en", false);
    let id = renderer.render(&app).message_id;
    if let Request::Application(a) = &mut app {
        a.recipients.reverse();
    }
    assert_eq!(
        renderer.render(&app).message_id,
        id,
        "the order of recipients does not matter"
    );
}

#[allow(dead_code)]
fn _renderer_is_shareable(r: &Renderer) -> &(dyn Sync + Send) {
    r
}

#[test]
fn the_fast_path_renders_every_default_template_exactly_as_handlebars_does() {
    for html in [false, true] {
        let mut c = config();
        c.templates.html = html;
        let (renderer, _) = renderer(&c);
        // Twice: the second round reads the rule variables from the verdict cache.
        for round in 0..2 {
            for (name, lang, case, req) in cases() {
                assert_eq!(
                    renderer.render_parts(&req),
                    renderer.render_parts_handlebars(&req),
                    "{name} {lang} {case} (html {html}, round {round})"
                );
            }
        }
    }
}

#[test]
fn notifications_of_different_verdicts_rule_lists_and_languages_never_share_variables() {
    let (renderer, _) = renderer(&config());
    let mut reqs = Vec::new();
    for hostile in [false, true] {
        for lang in LANGS {
            let req = request("rule/general", lang, hostile);
            let Request::Rule(n) = &req else {
                unreachable!()
            };
            // The same verdict (same Arc) for a notification about its first rule only.
            let mut first_only = n.clone();
            first_only.rules.truncate(1);
            first_only.affected_recipients.truncate(1);
            reqs.push(Request::Rule(first_only));
            reqs.push(req);
        }
    }
    // Interleaved, more than the cache holds, then in reverse: every render is its own.
    for req in reqs.iter().chain(reqs.iter().rev()).chain(reqs.iter()) {
        assert_eq!(
            renderer.render_parts(req),
            renderer.render_parts_handlebars(req)
        );
    }
}
