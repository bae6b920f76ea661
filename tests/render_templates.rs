//! Templates from an operator's directory: every KSMG macro's value inside and outside
//! `%DATA_BEGIN%…%DATA_END%` and in the subject, per-template fallback to the built-ins, the
//! run-time fallback notification and its metric, and the switches of `[templates]`.

mod render_support;

use mail_parser::MessageParser;
use mailgate_notify::config::{Config, NotifyGroup, ProcessEnv};
use mailgate_notify::event::MessageAction;
use mailgate_notify::render::{self, Renderer, Request, RuleNotice, RuleRef};
use render_support::*;
use std::path::Path;
use std::sync::Arc;

fn config_with(dir: &Path, extra: &str) -> Config {
    let toml = format!(
        r#"
        [sender]
        address = "notify@mail.example.com"
        [[application.recipients]]
        addresses = ["admin@example.com"]
        [[bounce.recipients]]
        addresses = ["postmaster@example.com"]
        [application.clusters.ksmg-prod-msk]
        timezone = "Europe/Moscow"
        [templates]
        dir = "{}"
        product_name = "KSMG test"
        {extra}
        "#,
        dir.display()
    );
    Config::from_toml(&toml, dir, &ProcessEnv).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn rule_request(
    template: &str,
    group: NotifyGroup,
    v: mailgate_notify::event::ScanVerdict,
) -> Request {
    let v = Arc::new(v);
    Request::Rule(RuleNotice {
        rules: RuleRef::all(&v),
        affected_recipients: vec!["bob@example.com".into()],
        verdict: v,
        group,
        template: template.into(),
        recipient: "security@example.com".into(),
        language: "en".into(),
    })
}

const OUTSIDE: &str = "NODE_IP=%NODE_IP%
NODE_PORT=%NODE_PORT%
PRODUCT_NAME=%PRODUCT_NAME%
SMTP_MESSAGE_ID=%SMTP_MESSAGE_ID%
SENDER=%SENDER%
SENDER_IP=%SENDER_IP%
ALL_RECIPIENTS=%ALL_RECIPIENTS%
AFFECTED_RECIPIENTS=%AFFECTED_RECIPIENTS%
AFFECTED_RULES=%AFFECTED_RULES%
MESSAGE_ID=%MESSAGE_ID%
SUBJECT=%SUBJECT%
DATE=%DATE%
MESSAGE_ACTION=%MESSAGE_ACTION%
NOTIFICATION_ID=%NOTIFICATION_ID%
OBJECT_NAME=%OBJECT_NAME%
OBJECT_SIZE=%OBJECT_SIZE%
STATUS=%STATUS%
OBJECT_ACTION=%OBJECT_ACTION%
";

fn expected_outside(id: &str) -> String {
    format!(
        "NODE_IP=10.20.30.13
NODE_PORT=9045
PRODUCT_NAME=KSMG test
SMTP_MESSAGE_ID=<a1b2c3d4@sender.example>
SENDER=mallory@sender.example
SENDER_IP=198.51.100.23
ALL_RECIPIENTS=bob@example.com, dave@example.com
AFFECTED_RECIPIENTS=bob@example.com
AFFECTED_RULES=Default anti-virus, Block phishing
MESSAGE_ID=ksmg-7Hh2Kp9Qw3rT1
SUBJECT=Invoice #4471 – please pay hxxp://evil[.]example/pay
DATE=2026-12-01 08:15:30 MSK (UTC+03:00)
MESSAGE_ACTION=AttachmentDeleted, backed up
NOTIFICATION_ID={id}
OBJECT_NAME=Message
OBJECT_SIZE=48213
STATUS=INFECTED, MACROS, PHISHING
OBJECT_ACTION=NotBlocked
"
    )
}

#[test]
fn every_ksmg_macro_has_its_value_inside_and_outside_the_object_list_and_in_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rule/ksmg.en.subject.hbs",
        "%SENDER% %NODE_IP%:%NODE_PORT% %MESSAGE_ID% %OBJECT_NAME% %OBJECT_SIZE% [%STATUS%] %OBJECT_ACTION% \
         %MESSAGE_ACTION% %NOTIFICATION_ID% %DATA_BEGIN%<%OBJECT_NAME% %OBJECT_SIZE% %STATUS% %OBJECT_ACTION%>%DATA_END%\n",
    );
    // Outside the list, then the same macros inside it: object macros describe the object,
    // every other macro keeps its message value.
    write(
        dir.path(),
        "rule/ksmg.en.text.hbs",
        &format!("{OUTSIDE}%DATA_BEGIN%\n---\n{OUTSIDE}%DATA_END%"),
    );
    let config = config_with(dir.path(), "");
    let (renderer, _) = renderer(&config);
    let req = rule_request("rule/ksmg", NotifyGroup::General, verdict());
    let r = renderer.render(&req);
    assert!(!r.fallback_used, "{}", String::from_utf8_lossy(&r.bytes));
    let parts = renderer.render_parts(&req).unwrap();
    let id = r.notification_id.clone();

    let outside = expected_outside(&id);
    let object = |name: &str, size: &str, status: &str, action: &str| {
        outside
            .replace("OBJECT_NAME=Message", &format!("OBJECT_NAME={name}"))
            .replace("OBJECT_SIZE=48213", &format!("OBJECT_SIZE={size}"))
            .replace(
                "STATUS=INFECTED, MACROS, PHISHING",
                &format!("STATUS={status}"),
            )
            .replace(
                "OBJECT_ACTION=NotBlocked",
                &format!("OBJECT_ACTION={action}"),
            )
    };
    let expected = format!(
        "{outside}---\n{}---\n{}---\n{}",
        object("invoice_4471.html", "20480", "INFECTED", "Deleted"),
        object("terms.docm", "26112", "MACROS", "Deleted"),
        object("Message", "48213", "PHISHING", "NotBlocked"),
    );
    assert_eq!(parts.text, expected);
    assert_eq!(
        parts.subject,
        format!(
            "mallory@sender.example 10.20.30.13:9045 ksmg-7Hh2Kp9Qw3rT1 Message 48213 [INFECTED, MACROS, PHISHING] \
             NotBlocked AttachmentDeleted, backed up {id} <invoice_4471.html 20480 INFECTED Deleted>\
             <terms.docm 26112 MACROS Deleted><Message 48213 PHISHING NotBlocked>"
        )
    );
    // And the message carries exactly that.
    let msg = MessageParser::default().parse(&r.bytes).unwrap();
    assert_eq!(msg.subject(), Some(parts.subject.as_str()));
}

#[test]
fn message_action_names_the_action_and_says_when_the_message_was_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rule/action.en.subject.hbs", "%MESSAGE_ACTION%");
    write(
        dir.path(),
        "rule/action.en.text.hbs",
        "%MESSAGE_ACTION%|%OBJECT_ACTION%",
    );
    let (renderer, _) = renderer(&config_with(dir.path(), ""));
    for (action, word, object) in [
        (MessageAction::Skipped, "Skipped", "Skipped"),
        (MessageAction::Disinfected, "Disinfected", "Disinfected"),
        (
            MessageAction::AttachmentDeleted,
            "AttachmentDeleted",
            "NotBlocked",
        ),
        (MessageAction::Deleted, "Deleted", "Deleted"),
        (MessageAction::Rejected, "Rejected", "Blocked"),
    ] {
        for backed_up in [false, true] {
            let mut v = verdict();
            v.message_action = action;
            v.backed_up = backed_up;
            let parts = renderer
                .render_parts(&rule_request("rule/action", NotifyGroup::General, v))
                .unwrap();
            let want = if backed_up {
                format!("{word}, backed up")
            } else {
                word.to_string()
            };
            assert_eq!(parts.subject, want);
            assert_eq!(parts.text, format!("{want}|{object}"));
        }
    }
}

#[test]
fn a_directory_template_replaces_its_built_in_and_every_other_template_falls_back() {
    let config = Config::load(&root().join("tests/fixtures/config/templates_good.toml")).unwrap();
    let (renderer, _) = renderer(&config);
    assert_eq!(
        renderer.template_origin("rule/general", "en"),
        config
            .templates
            .dir
            .as_deref()
            .map(|d| d.display().to_string())
            .as_deref()
    );
    assert_eq!(
        renderer.template_origin("rule/general", "de"),
        Some("built-in")
    );
    assert_eq!(
        renderer.template_origin("rule/sender", "en"),
        Some("built-in")
    );
    let r = renderer.render(&rule_request(
        "rule/general",
        NotifyGroup::General,
        verdict(),
    ));
    let msg = MessageParser::default().parse(&r.bytes).unwrap();
    // The operator's template has no HTML part: the message is plain text.
    assert_eq!(msg.html_bodies().filter(|p| p.is_text_html()).count(), 0);
    let text = msg.body_text(0).unwrap();
    assert!(text.starts_with("Operator's own rule/general: Default anti-virus, Block phishing fired on a message from mallory@sender.example (198.51.100.23)."), "{text}");
    assert!(
        text.contains("  - invoice_4471.html: INFECTED (100% sure), Deleted"),
        "{text}"
    );
}

#[test]
fn a_template_that_fails_at_run_time_sends_the_fallback_naming_the_error_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    // Valid for every sample at load; fails for this sender only (there is no sixth rule).
    write(dir.path(), "rule/fragile.en.subject.hbs", "Fragile");
    write(
        dir.path(),
        "rule/fragile.en.text.hbs",
        "line one\n{{#if (eq sender \"mallory@sender.example\")}}{{rules.5.rule_name}}{{/if}}\n",
    );
    let (renderer, registry) = renderer(&config_with(dir.path(), ""));
    let r = renderer.render(&rule_request(
        "rule/fragile",
        NotifyGroup::General,
        verdict(),
    ));
    assert!(r.fallback_used);
    assert_eq!(r.template, "fallback");
    assert_eq!(
        r.subject,
        "[mailgate-notify] Notification could not be rendered (rule/fragile)"
    );
    let msg = MessageParser::default().parse(&r.bytes).unwrap();
    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains("Error: rule/fragile.en.text.hbs line 2:"),
        "{text}"
    );
    assert!(
        text.contains("Event id: e4f0c2d1-8a9b-4e3c-b2d1-0f9e8d7c6b5a"),
        "{text}"
    );
    assert!(
        text.contains("Gateway message id: ksmg-7Hh2Kp9Qw3rT1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Notification id: {}", r.notification_id)),
        "{text}"
    );
    assert!(text.contains("mailgate-notify check-config"), "{text}");
    assert_eq!(
        msg.message_id().map(|m| format!("<{m}>")),
        Some(r.message_id.clone())
    );
    let metrics = mailgate_notify::telemetry::encode_text(&registry);
    assert_eq!(
        mailgate_notify::telemetry::sample(
            &metrics,
            "mailgate_notify_render_template_failures_total{kind=\"rule\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        mailgate_notify::telemetry::sample(
            &metrics,
            "mailgate_notify_render_requests_total{kind=\"rule\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        mailgate_notify::telemetry::sample(
            &metrics,
            "mailgate_notify_render_template_failures_total{kind=\"bounce\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn the_fallback_to_a_sender_tells_the_facts_of_their_message_and_no_internal_detail() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rule/fragile.en.subject.hbs", "Fragile");
    write(
        dir.path(),
        "rule/fragile.en.text.hbs",
        "{{#if (eq sender \"mallory@sender.example\")}}{{rules.5.rule_name}}{{/if}}",
    );
    let (renderer, _) = renderer(&config_with(dir.path(), ""));
    let r = renderer.render(&rule_request(
        "rule/fragile",
        NotifyGroup::Sender,
        verdict(),
    ));
    assert!(r.fallback_used);
    let text = MessageParser::default()
        .parse(&r.bytes)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    assert!(
        text.contains("Subject: Invoice #4471 – please pay hxxp://evil[.]example/pay"),
        "{text}"
    );
    for internal in [
        "rules.5",
        "Error:",
        "Default anti-virus",
        "10.20.30.13",
        "e4f0c2d1",
        "check-config",
    ] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
}

#[test]
fn html_can_be_switched_off_and_the_id_kept_out_of_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "html = false\n[unique_id]\nheader = false\nsubject = false",
    );
    let (renderer, _) = renderer(&config);
    let r = renderer.render(&rule_request(
        "rule/general",
        NotifyGroup::General,
        verdict(),
    ));
    let raw = String::from_utf8_lossy(&r.bytes);
    assert!(
        !raw.contains("text/html") && !raw.contains("multipart/"),
        "{raw}"
    );
    assert!(!raw.contains("X-Mailgate-"), "{raw}");
    assert!(!r.subject.contains("[ID:"), "{}", r.subject);
}

#[test]
fn invalid_recipient_addresses_are_left_out_and_reported() {
    let (renderer, _) = renderer(&config());
    let Request::Bounce(mut b) = request("bounce/notice", "en", false) else {
        unreachable!()
    };
    b.recipients = vec![
        "postmaster@example.com".into(),
        "not an address\r\nBcc: x@y".into(),
    ];
    let r = renderer.render(&Request::Bounce(b));
    assert_eq!(r.recipients, ["postmaster@example.com"]);
    assert_eq!(r.invalid_recipients, ["not an address\r\nBcc: x@y"]);
    let msg = MessageParser::default().parse(&r.bytes).unwrap();
    assert_eq!(msg.to().unwrap().iter().count(), 1);
    assert!(msg.bcc().is_none());
}

#[test]
fn a_configured_language_without_templates_and_an_unknown_rule_template_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "[rules]\nlanguage = \"fr\"\n[[rules.rule]]\nid = \"r1\"\nnotify = [\"general\"]\ntemplates = { general = \"rule/missing\", sender = \"bounce/notice\" }",
    );
    let problems = render::check(&config);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"rules.language"), "{problems:?}");
    assert!(
        paths.contains(&"rules.rule[0].templates.general"),
        "{problems:?}"
    );
    assert!(
        paths.contains(&"rules.rule[0].templates.sender"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("rule/general has no \"fr\" version")),
        "{problems:?}"
    );
    let err = Renderer::new(&config, &prometheus::Registry::new())
        .err()
        .unwrap();
    assert_eq!(err.error_code(), "templates_invalid");
    assert!(!err.is_retryable());
}

#[test]
fn a_french_operator_template_is_used_for_french_recipients() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bounce/notice.fr.subject.hbs",
        "[%PRODUCT_NAME%] {{class_text}} : {{reason}}",
    );
    write(
        dir.path(),
        "bounce/notice.fr.text.hbs",
        "Avis de %SENDER% ({{queue_id}})",
    );
    let config = config_with(dir.path(), "");
    let (renderer, _) = renderer(&config);
    let Request::Bounce(mut b) = request("bounce/notice", "fr", false) else {
        unreachable!()
    };
    b.language = "fr".into();
    let parts = renderer.render_parts(&Request::Bounce(b)).unwrap();
    // Labels of a language without a table are English; the operator's wording is French.
    assert_eq!(
        parts.subject,
        "[KSMG test] Resource problem : insufficient free disk space"
    );
    assert_eq!(parts.text, "Avis de alice@example.com (4Q2fXk1Lm9zB7)");
    assert_eq!(parts.html, None);
}
