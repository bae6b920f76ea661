//! Rendering benches (issue 9): every default template, text only and text + HTML, the complete
//! MIME message, the MIME build alone, and a same-run baseline to read them against.
//!
//! `cargo bench --bench render` (all), `cargo bench --bench render -- rule/general` (one).
//! The baseline `baseline/write_rule_general_text` writes the text of `rule/general` (en) for
//! the same verdict with plain `write!` calls: the floor any template engine is measured
//! against. Ratios in BENCHMARKS.md are (bench time) / (baseline time) of the same run.

#[path = "../tests/render_support/mod.rs"]
mod render_support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailgate_notify::event::ScanVerdict;
use mailgate_notify::render::{Renderer, Request};
use render_support::*;
use std::fmt::Write;
use std::hint::black_box;

/// Every built-in template name (the kinds under `templates/`).
const NAMES: [&str; 9] = [
    "rule/general",
    "rule/sender",
    "rule/recipients",
    "rule/additional",
    "rule/cap-summary",
    "bounce/notice",
    "bounce/burst-summary",
    "application/digest",
    "application/change",
];

fn renderers() -> (Renderer, Renderer) {
    let mut c = config();
    // The header attachment is a per-rule option; the throughput target is for the default.
    c.rules.attach_original_headers = false;
    c.templates.html = false;
    let text = Renderer::new(&c, &prometheus::Registry::new()).expect("templates load");
    c.templates.html = true;
    let html = Renderer::new(&c, &prometheus::Registry::new()).expect("templates load");
    (text, html)
}

/// The text of `rule/general` (en) written by hand: what the template says, with the values
/// the renderer would compute (sanitized, labelled) taken as given where cheap to compute.
fn baseline_rule_general(v: &ScanVerdict, notification_id: &str, out: &mut String) {
    out.clear();
    let _ = write!(
        out,
        "A scan rule was triggered on a message that passed through Secure Mail Gateway.\n\nThe message was delivered without the deleted attachments.{}\n\nMessage\n  From:         {}{}{}\n  To:           {}\n  Subject:      {}\n  Received:     {}\n  Size:         {} bytes\n  Message-ID:   {}\n  Gateway ID:   {}\n  Action:       AttachmentDeleted{}\n  Concerns:     {}\n\nRules and detections\n",
        if v.backed_up { " A copy was kept in backup." } else { "" },
        v.sender,
        v.sender_ip.as_deref().map(|ip| format!(" (IP {ip})")).unwrap_or_default(),
        if v.sender_authenticated { "" } else { ", not authenticated by SPF/DKIM/DMARC" },
        v.all_recipients.join(", "),
        v.subject.as_deref().unwrap_or("(no subject)"),
        v.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
        v.size,
        v.smtp_message_id.as_deref().unwrap_or("(none)"),
        v.message_id,
        if v.backed_up { ", backed up" } else { "" },
        v.all_recipients.join(", "),
    );
    for r in &v.triggered_rules {
        let _ = writeln!(
            out,
            "  * {} (rule id {}), for {}",
            r.rule_name.as_deref().unwrap_or(&r.rule_id),
            r.rule_id,
            r.affected_recipients.join(", ")
        );
        for d in &r.detections {
            let _ = writeln!(
                out,
                "      - {}, {} bytes: {}{}\n        found by {}; object {}",
                d.object_name.as_deref().unwrap_or("the message itself"),
                d.object_size.unwrap_or(v.size),
                d.status,
                d.threat_name
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default(),
                d.module.as_str(),
                d.object_action.as_str(),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nNode: {}, {}:{}{}; cluster {}\n\nWhat to do\n  If the message is legitimate (a false positive), {} and report the false positive.\n  If it is malicious, check whether other recipients got similar messages from the same sender or IP address.\n\nNotification ID: {}",
        v.node.node_id,
        v.node.ip,
        v.node.port,
        v.node.comment.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        v.cluster_id,
        if v.backed_up { "restore it from backup" } else { "ask the sender to send it again (no copy was kept)" },
        notification_id,
    );
}

fn benches(c: &mut Criterion) {
    let (text, html) = renderers();
    let requests: Vec<(&str, Request)> = NAMES
        .iter()
        .map(|n| (*n, request(n, "en", false)))
        .collect();

    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Elements(1));
    let v = verdict();
    let mut buf = String::with_capacity(4096);
    g.bench_function("write_rule_general_text", |b| {
        b.iter(|| {
            baseline_rule_general(black_box(&v), "0123456789abcdef", &mut buf);
            buf.len()
        })
    });
    g.finish();

    // Subject + text body: what the target "rule notifications/s, default text template" counts.
    let mut g = c.benchmark_group("text");
    g.throughput(Throughput::Elements(1));
    for (name, req) in &requests {
        g.bench_function(*name, |b| {
            b.iter(|| text.render_parts(black_box(req)).map(|p| p.text.len()))
        });
    }
    g.finish();

    // The same with the path before issue 9 (the whole variable tree per request, Handlebars
    // for every part): the same-run reference of the ratios.
    let mut g = c.benchmark_group("text_handlebars");
    g.throughput(Throughput::Elements(1));
    for (name, req) in &requests {
        g.bench_function(*name, |b| {
            b.iter(|| {
                text.render_parts_handlebars(black_box(req))
                    .map(|p| p.text.len())
            })
        });
    }
    g.finish();

    // Subject + text + HTML bodies.
    let mut g = c.benchmark_group("html");
    g.throughput(Throughput::Elements(1));
    for (name, req) in &requests {
        g.bench_function(*name, |b| {
            b.iter(|| html.render_parts(black_box(req)).map(|p| p.text.len()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("html_handlebars");
    g.throughput(Throughput::Elements(1));
    for (name, req) in &requests {
        g.bench_function(*name, |b| {
            b.iter(|| {
                html.render_parts_handlebars(black_box(req))
                    .map(|p| p.text.len())
            })
        });
    }
    g.finish();

    // A verdict seen for the first time: nothing of it is cached yet (a fresh `Arc` per
    // iteration; making it is part of the setup, not of the time).
    let mut g = c.benchmark_group("text_first_of_verdict");
    g.throughput(Throughput::Elements(1));
    let Request::Rule(general) = &requests[0].1 else {
        unreachable!()
    };
    g.bench_function("rule/general", |b| {
        b.iter_batched(
            || {
                let mut n = general.clone();
                n.verdict = std::sync::Arc::new((*general.verdict).clone());
                Request::Rule(n)
            },
            |req| text.render_parts(&req).map(|p| p.text.len()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    // The complete message as sent (ids, variables, templates, MIME), text only and with HTML.
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    for (name, req) in &requests {
        g.bench_function(format!("{name}/text"), |b| {
            b.iter(|| text.render(black_box(req)).bytes.len())
        });
        g.bench_function(format!("{name}/html"), |b| {
            b.iter(|| html.render(black_box(req)).bytes.len())
        });
    }
    g.finish();

    // The MIME build alone, from parts rendered beforehand: our writer (`mime/…`) and, as the
    // same-run baseline, lettre's builder it replaced (`mime_lettre/…`, the same bytes).
    let mut g = c.benchmark_group("mime");
    g.throughput(Throughput::Elements(1));
    let mut with_headers = config();
    with_headers.rules.attach_original_headers = true;
    with_headers.templates.html = false;
    let with_headers =
        Renderer::new(&with_headers, &prometheus::Registry::new()).expect("templates load");
    let cases: Vec<_> = [
        ("rule/general/text", &text, &requests[0].1),
        ("rule/general/html", &html, &requests[0].1),
        ("rule/general/text+headers", &with_headers, &requests[0].1),
        ("application/digest/html", &html, &requests[7].1),
    ]
    .into_iter()
    .map(|(label, r, req)| {
        let prepared = r.prepare_mime(req).expect("renders");
        assert_eq!(
            r.build_mime(&prepared),
            r.build_mime_with_lettre(&prepared),
            "{label}: our writer and lettre differ"
        );
        (label, r, prepared)
    })
    .collect();
    for (label, r, prepared) in &cases {
        g.bench_function(*label, |b| {
            b.iter(|| r.build_mime(black_box(prepared)).map(|m| m.len()))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("mime_lettre");
    g.throughput(Throughput::Elements(1));
    for (label, r, prepared) in &cases {
        g.bench_function(*label, |b| {
            b.iter(|| {
                r.build_mime_with_lettre(black_box(prepared))
                    .map(|m| m.len())
            })
        });
    }
    g.finish();
}

criterion_group!(render, benches);
criterion_main!(render);
