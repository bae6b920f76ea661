//! KSMG macro translation of arbitrary template text, and rendering of rule and bounce
//! notifications whose event strings are arbitrary (an operator's macro template and the
//! built-in ones). Never a panic, and:
//! - translation never adds or removes a line (later errors keep their line numbers);
//! - a template that loaded renders every event without the fallback;
//! - the header block is well-formed: CRLF line ends only, every line a header our benign
//!   rendering also has or a folded continuation — no input can add a header (`Bcc:`…);
//! - the subject as sent is one line;
//! - our MIME writer gives the bytes lettre's builder gives for the same message.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mailgate_notify::config::{Config, Env, NotifyGroup};
use mailgate_notify::event::decode::decode_json;
use mailgate_notify::event::{BounceEvent, Event, EventKind, ScanVerdict};
use mailgate_notify::render::macros::{translate, MACROS};
use mailgate_notify::render::{BounceNotice, Rendered, Renderer, Request, RuleNotice, RuleRef};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// An operator's `rule/general` that uses every KSMG macro, in all three parts.
const MACRO_TEMPLATE: [(&str, &str); 3] = [
    (
        "general.en.subject.hbs",
        "[%PRODUCT_NAME%] %STATUS% from %SENDER% (%SENDER_IP%): %SUBJECT% %SMTP_MESSAGE_ID% %NOTIFICATION_ID%",
    ),
    (
        "general.en.text.hbs",
        "%AFFECTED_RULES% on %NODE_IP%:%NODE_PORT% at %DATE%\nTo: %ALL_RECIPIENTS% / %AFFECTED_RECIPIENTS%\n\
         %MESSAGE_ID% %MESSAGE_ACTION% %OBJECT_SIZE% %OBJECT_ACTION%\n\
         %DATA_BEGIN%  - %OBJECT_NAME% (%OBJECT_SIZE%): %STATUS%, %OBJECT_ACTION% 100%\n%DATA_END%",
    ),
    (
        "general.en.html.hbs",
        "<p>%SUBJECT% from %SENDER%</p><ul>%DATA_BEGIN%<li>%OBJECT_NAME%: %STATUS%</li>%DATA_END%</ul>",
    ),
];

struct Fixture {
    renderer: Renderer,
    verdict: ScanVerdict,
    bounce: BounceEvent,
    /// Header names of the benign rendering of each request shape (by `shape`).
    allowed: Vec<BTreeSet<String>>,
    /// A root context with every macro's variable, for `translate`.
    root: serde_json::Value,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("mailgate-fuzz-templates-{}", std::process::id()));
        let rule_dir = dir.join("rule");
        std::fs::create_dir_all(&rule_dir).unwrap_or_else(|e| panic!("template dir: {e}"));
        for (name, text) in MACRO_TEMPLATE {
            std::fs::write(rule_dir.join(name), text).unwrap_or_else(|e| panic!("template: {e}"));
        }
        let text = include_str!("../../tests/fixtures/render/config.toml").replace(
            "[templates]\n",
            &format!(
                "[templates]\nhtml = true\ndir = {:?}\n",
                dir.display().to_string()
            ),
        );
        let config = Config::from_toml(&text, Path::new("."), &NoEnv)
            .unwrap_or_else(|e| panic!("fuzz config: {e}"));
        let renderer = Renderer::new(&config, &prometheus::Registry::new())
            .unwrap_or_else(|e| panic!("renderer: {e}"));
        let event = |json: &str, kind| {
            decode_json(kind, json.as_bytes()).unwrap_or_else(|e| panic!("fixture: {e}"))
        };
        let Event::ScanVerdict(verdict) = event(
            include_str!("../../tests/fixtures/events/scan_verdict.json"),
            EventKind::ScanVerdict,
        ) else {
            panic!("not a verdict")
        };
        let Event::Bounce(bounce) = event(
            include_str!("../../tests/fixtures/events/bounce_event.json"),
            EventKind::Bounce,
        ) else {
            panic!("not a bounce")
        };
        let mut root = serde_json::Map::new();
        for (_, var) in MACROS {
            if let Some(var) = var {
                root.insert((*var).to_string(), serde_json::Value::String("x".into()));
            }
        }
        for var in [
            "objects",
            "object_name",
            "object_size",
            "status",
            "object_action",
        ] {
            root.insert(var.into(), serde_json::Value::Array(vec![]));
        }
        let mut f = Fixture {
            renderer,
            verdict,
            bounce,
            allowed: Vec::new(),
            root: serde_json::Value::Object(root),
        };
        f.allowed = (0..SHAPES)
            .map(|shape| {
                let r = f.renderer.render(&request(
                    &f,
                    shape,
                    f.verdict.clone(),
                    f.bounce.clone(),
                    "user@example.com",
                ));
                assert!(!r.fallback_used, "benign shape {shape} fell back");
                header_names(&r)
            })
            .collect();
        f
    })
}

/// Rule notices to each of the four groups (general uses the macro template), then a bounce.
const SHAPES: usize = 5;

fn request(
    f: &Fixture,
    shape: usize,
    verdict: ScanVerdict,
    bounce: BounceEvent,
    to: &str,
) -> Request {
    match NotifyGroup::ALL.get(shape) {
        Some(&group) => Request::Rule(RuleNotice {
            rules: RuleRef::all(&verdict),
            affected_recipients: verdict
                .triggered_rules
                .iter()
                .flat_map(|r| r.affected_recipients.clone())
                .collect(),
            verdict: Arc::new(verdict),
            group,
            template: format!("rule/{}", group.as_str()),
            recipient: to.to_string(),
            language: "en".into(),
        }),
        None => {
            let _ = f;
            Request::Bounce(BounceNotice {
                event: Arc::new(bounce),
                recipients: vec![to.to_string(), "postmaster@example.com".into()],
                language: "en".into(),
            })
        }
    }
}

/// The header block's lines; panics if a line end is not CRLF.
fn header_lines(r: &Rendered) -> Vec<&str> {
    let text = std::str::from_utf8(&r.bytes).unwrap_or_else(|e| panic!("message not UTF-8: {e}"));
    let end = text
        .find("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers"));
    let block = &text[..end];
    for (i, c) in block.char_indices() {
        match c {
            '\n' => assert!(
                i > 0 && &block[i - 1..i] == "\r",
                "bare LF in headers: {block:?}"
            ),
            '\r' => assert!(
                block[i + 1..].starts_with('\n'),
                "bare CR in headers: {block:?}"
            ),
            _ => {}
        }
    }
    block.split("\r\n").collect()
}

fn header_names(r: &Rendered) -> BTreeSet<String> {
    header_lines(r)
        .into_iter()
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| {
            let (name, _) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("header line without a colon: {l:?}"));
            name.to_ascii_lowercase()
        })
        .collect()
}

/// The event strings, all from the fuzzer.
fn mutate(u: &mut Unstructured<'_>, f: &Fixture) -> Result<(ScanVerdict, BounceEvent, String)> {
    let mut v = f.verdict.clone();
    v.subject = u.arbitrary()?;
    v.sender = u.arbitrary()?;
    v.sender_ip = u.arbitrary()?;
    v.smtp_message_id = u.arbitrary()?;
    v.message_id = u.arbitrary()?;
    v.event_id = u.arbitrary()?;
    v.cluster_id = u.arbitrary()?;
    v.node.comment = u.arbitrary()?;
    v.node.ip = u.arbitrary()?;
    v.original_headers = u.arbitrary()?;
    v.all_recipients = u.arbitrary()?;
    for rule in &mut v.triggered_rules {
        rule.rule_id = u.arbitrary()?;
        rule.rule_name = u.arbitrary()?;
        rule.affected_recipients = u.arbitrary()?;
        for d in &mut rule.detections {
            d.status = u.arbitrary()?;
            d.object_name = u.arbitrary()?;
            d.threat_name = u.arbitrary()?;
        }
    }
    let mut b = f.bounce.clone();
    b.reason = u.arbitrary()?;
    b.subject = u.arbitrary()?;
    b.sender = u.arbitrary()?;
    b.queue_id = u.arbitrary()?;
    b.message_id = u.arbitrary()?;
    b.smtp_message_id = u.arbitrary()?;
    b.original_headers = u.arbitrary()?;
    for r in &mut b.recipients {
        r.address = u.arbitrary()?;
        r.status = u.arbitrary()?;
        r.diagnostic_code = u.arbitrary()?;
        r.remote_mta = u.arbitrary()?;
    }
    let to = u.arbitrary()?;
    Ok((v, b, to))
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut u = Unstructured::new(data);
    let Ok(template) = u.arbitrary::<String>() else {
        return;
    };
    if let Ok(out) = translate(&template, &f.root, "rule") {
        assert_eq!(
            out.matches('\n').count(),
            template.matches('\n').count(),
            "translation changed the line count of {template:?}"
        );
    }
    let Ok(shape) = u.choose_index(SHAPES) else {
        return;
    };
    let Ok((verdict, bounce, to)) = mutate(&mut u, f) else {
        return;
    };
    let req = request(f, shape, verdict, bounce, &to);
    // Our MIME writer replaced lettre's builder: the bytes must stay lettre's for any event.
    if let Ok(prepared) = f.renderer.prepare_mime(&req) {
        assert_eq!(
            f.renderer.build_mime(&prepared),
            f.renderer.build_mime_with_lettre(&prepared),
            "our MIME writer and lettre's builder differ"
        );
    }
    let r = f.renderer.render(&req);
    assert!(
        !r.fallback_used,
        "template fell back on event strings: {:?}",
        r.template
    );
    assert!(
        !r.subject.contains(['\r', '\n']),
        "subject has a line break: {:?}",
        r.subject
    );
    let names = header_names(&r);
    assert!(
        names.is_subset(&f.allowed[shape]),
        "headers {names:?} not all in the benign set {:?}",
        f.allowed[shape]
    );
});
