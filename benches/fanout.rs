//! Rule fan-out (src/rules) for a verdict whose rule notifies its affected recipients, the
//! general list and the authenticated sender, for 1, 10 and 1,000 affected recipients (issue 9).
//! Baseline in the same run: the bare minimum the fan-out must do per candidate — lower-case
//! the address and insert the (template, address) pair into a hash set.
//! `cargo bench --bench fanout`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailgate_notify::config::{Config, Env};
use mailgate_notify::event::decode::decode_json;
use mailgate_notify::event::{Event, EventKind, ScanVerdict};
use mailgate_notify::rules::RuleFanout;
use std::collections::HashSet;
use std::hint::black_box;
use std::path::Path;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

const CONFIG: &str = r#"
[sender]
address = "notify@gw.example"
[[application.recipients]]
addresses = ["admin@gw.example"]
[[bounce.recipients]]
addresses = ["postmaster@gw.example"]
[rules]
general_list = ["security@corp.example", "soc@corp.example"]
max_notifications_per_message = 5000
sender_policy = "always"
[rules.default]
notify = ["general", "sender", "recipients"]
"#;

/// The fixture verdict with its first rule affecting `n` recipients (mixed case, so identity
/// keys are computed, not borrowed) and the second rule affecting the first ten of them again
/// (duplicates to drop).
fn verdict(n: usize) -> ScanVerdict {
    let json = include_str!("../tests/fixtures/events/scan_verdict.json");
    let Ok(Event::ScanVerdict(mut v)) = decode_json(EventKind::ScanVerdict, json.as_bytes()) else {
        panic!("fixture verdict")
    };
    let addresses: Vec<String> = (0..n).map(|i| format!("User{i}@Corp.Example")).collect();
    v.triggered_rules[0].affected_recipients = addresses.clone();
    v.triggered_rules[1].affected_recipients = addresses.into_iter().take(10).collect();
    v.all_recipients = v.triggered_rules[0].affected_recipients.clone();
    v
}

fn fanout(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG, Path::new("."), &NoEnv).expect("bench config");
    let f = RuleFanout::new(&config);
    let mut group = c.benchmark_group("fanout");
    for n in [1usize, 10, 1000] {
        let v = verdict(n);
        let plan = f.fanout(&v);
        // general (2) + sender (1) + recipients (n); the second rule only repeats pairs.
        assert_eq!(plan.notices.len(), n + 3, "{n} recipients");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("plan", n), &v, |b, v| {
            b.iter(|| f.fanout(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new("baseline_dedup_set", n), &v, |b, v| {
            b.iter(|| {
                let mut seen: HashSet<(&str, String)> = HashSet::new();
                for rule in &black_box(v).triggered_rules {
                    for a in config.rules.general_list.iter().map(|m| m.as_str()) {
                        seen.insert(("rule/general", a.to_lowercase()));
                    }
                    seen.insert(("rule/sender", v.sender.to_lowercase()));
                    for a in &rule.affected_recipients {
                        seen.insert(("rule/recipients", a.to_lowercase()));
                    }
                }
                seen
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
