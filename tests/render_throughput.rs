//! Throughput sanity check, run by hand (it asserts nothing about speed):
//! `cargo test --release --test render_throughput -- --ignored --nocapture`
//! Renders the default `rule/general` template for the contract's sample verdict on one thread,
//! 100,000 times per variant (`RENDER_N` overrides), and prints renders per second of CPU time
//! (from /proc/thread-self/schedstat, so a busy machine does not distort it) and of wall time.

mod render_support;

use mailgate_notify::config::NotifyGroup;
use mailgate_notify::render::i18n::Lang;
use mailgate_notify::render::sanitize::Sanitizer;
use mailgate_notify::render::{context, Renderer, Request, RuleNotice, RuleRef};
use render_support::*;
use std::sync::Arc;
use std::time::Instant;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn measure(label: &str, n: usize, mut f: impl FnMut() -> usize) {
    let (cpu, wall) = (cpu_ns(), Instant::now());
    let mut bytes = 0;
    for _ in 0..n {
        bytes += f();
    }
    let cpu = (cpu_ns() - cpu) as f64 / 1e9;
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{label:<46} {n} renders: {:>7.0}/s CPU ({:>5.1} µs each), {:>7.0}/s wall, {} bytes each",
        n as f64 / cpu,
        cpu * 1e6 / n as f64,
        n as f64 / wall,
        bytes / n
    );
}

#[test]
#[ignore = "timing, run by hand in release mode"]
fn default_rule_template_throughput() {
    let n: usize = std::env::var("RENDER_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let v = Arc::new(verdict());
    let req = Request::Rule(RuleNotice {
        rules: RuleRef::all(&v),
        affected_recipients: v.all_recipients.clone(),
        verdict: v.clone(),
        group: NotifyGroup::General,
        template: "rule/general".into(),
        recipient: "security@example.com".into(),
        language: "en".into(),
    });
    let mut config = config();
    config.rules.attach_original_headers = false;
    let registry = prometheus::Registry::new();
    let both = Renderer::new(&config, &registry).unwrap();
    config.templates.html = false;
    let text_only = Renderer::new(&config, &prometheus::Registry::new()).unwrap();
    let lang = Lang::En;
    let ctx = context::Ctx {
        product_name: "Secure Mail Gateway",
        notification_id: "0123456789abcdef",
        language: "en",
        lang,
        san: Sanitizer {
            max_chars: 1000,
            lang,
        },
        tz: chrono_tz::Europe::Moscow,
        max_header_bytes: 16 * 1024,
    };
    let Request::Rule(notice) = &req else {
        unreachable!()
    };
    measure("variables only (the JSON context)", n, || {
        context::rule(&ctx, notice)
            .as_object()
            .map_or(0, |m| m.len())
    });
    // A pure memory workload of the same size, to compare machines: on a quiet modern core it
    // takes a few µs.
    let value = context::rule(&ctx, notice);
    measure("reference: clone + drop of that context", n, || {
        value.clone().as_object().map_or(0, |m| m.len())
    });
    measure("rule/general text: context + template", n, || {
        text_only.render_parts(&req).unwrap().text.len()
    });
    measure("rule/general text: complete message", n, || {
        text_only.render(&req).bytes.len()
    });
    measure("rule/general text+HTML: context + templates", n, || {
        let p = both.render_parts(&req).unwrap();
        p.text.len() + p.html.map_or(0, |h| h.len())
    });
    measure("rule/general text+HTML: complete message", n, || {
        both.render(&req).bytes.len()
    });
}
