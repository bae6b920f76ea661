//! Throughput sanity check, run by hand (it asserts nothing about speed):
//! `cargo test --release --test render_throughput -- --ignored --nocapture`
//! Renders the default `rule/general` template (text + HTML, English) for the contract's
//! sample verdict 100,000 times on one thread and prints renders per second.

use mailgate_notify::config::{Config, NotifyGroup};
use mailgate_notify::event::{decode::decode_json, Event, EventKind};
use mailgate_notify::render::{Renderer, Request, RuleNotice, RuleRef};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore = "timing, run by hand in release mode"]
fn default_rule_template_throughput() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&root.join("tests/fixtures/config/minimal.toml")).unwrap();
    let renderer = Renderer::new(&config, &prometheus::Registry::new()).unwrap();
    let text = std::fs::read(root.join("tests/fixtures/events/scan_verdict.json")).unwrap();
    let Event::ScanVerdict(v) = decode_json(EventKind::ScanVerdict, &text).unwrap() else {
        panic!("not a verdict")
    };
    let v = Arc::new(v);
    let req = |html: bool| {
        let _ = html;
        Request::Rule(RuleNotice {
            rules: RuleRef::all(&v),
            affected_recipients: v.all_recipients.clone(),
            verdict: v.clone(),
            group: NotifyGroup::General,
            template: "rule/general".into(),
            recipient: "security@example.com".into(),
            language: "en".into(),
        })
    };
    let r = req(true);
    let n = 100_000;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += renderer.render(&r).bytes.len();
    }
    let t = start.elapsed();
    println!(
        "{n} renders of rule/general (text+html) in {:.2?}: {:.0}/s, {:.1} µs each, {} bytes each",
        t,
        n as f64 / t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / n as f64,
        bytes / n
    );
}
