//! `mailgate-notify demo` end to end, in-process: the in-process broker, the real wiring, the
//! `file` transport into a temporary outbox, a whole simulated day at high speed. Checks what
//! issue 8 promises a newcomer finds in `./outbox/` after `make run`, and that the printed
//! summary says what the files say.

use chrono::{TimeDelta, Timelike};
use chrono_tz::Europe::Moscow;
use mail_parser::MessageParser;
use mailgate_notify::demo::{self, outbox, DemoOptions};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_leaves_digest_throttled_changes_all_rule_groups_and_bounces_in_the_outbox()
{
    let dir = tempfile::tempdir().unwrap();
    // A leftover of an earlier run is removed; other files are left alone.
    std::fs::write(dir.path().join("stale.eml"), "Subject: old\r\n\r\nold\r\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
    let opts = DemoOptions {
        speed: 6_000.0,
        outbox: dir.path().to_path_buf(),
        deadline: Duration::from_secs(40),
        ..DemoOptions::default()
    };
    let summary = demo::run(opts).await.unwrap();
    println!("{summary}");
    assert!(dir.path().join("notes.txt").exists());

    let mails = outbox::read(dir.path()).unwrap();
    assert!(mails.iter().all(|m| !m.path.ends_with("stale.eml")));
    let unknown: Vec<_> = mails.iter().filter(|m| m.kind == "unknown").collect();
    assert!(unknown.is_empty(), "unrecognised files: {unknown:?}");

    // Every published record was consumed; the broken one is in the dead-letter topic.
    assert_eq!(summary.published, summary.consumed);
    assert_eq!(summary.dlq_total(), 1, "{:?}", summary.dlq);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);

    // The summary equals the files: file count and addressed copies per (kind, group), counted
    // here again from the raw files.
    let files = summary.files.clone().unwrap();
    assert_eq!(files, outbox::OutboxCounts::of(&mails));
    let eml = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count() as u64;
    assert_eq!(files.total(), eml);
    let mut copies: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut to_total = 0u64;
    for m in &mails {
        let raw = std::fs::read(&m.path).unwrap();
        let parsed = MessageParser::default().parse(&raw).unwrap();
        let n = parsed.to().map_or(0, |a| a.iter().count()) as u64;
        to_total += n;
        *copies
            .entry((m.kind.to_string(), m.group.to_string()))
            .or_default() += n;
    }
    assert_eq!(copies, summary.sent, "files vs notifications_sent_total");
    assert_eq!(to_total, summary.sent.values().sum::<u64>());
    assert!(summary.files_match_metrics());

    // At least one midnight digest, dated at local midnight in Moscow (within the few simulated
    // minutes one real tick spans at this speed).
    let app: Vec<_> = {
        let mut v: Vec<_> = mails.iter().filter(|m| m.kind == "application").collect();
        v.sort_by_key(|m| m.date);
        v
    };
    let digests: Vec<_> = app.iter().filter(|m| m.group == "digest").collect();
    assert!(!digests.is_empty(), "no digest");
    for d in &digests {
        let local = d.date.unwrap().with_timezone(&Moscow);
        assert!(
            local.hour() == 0 && local.minute() < 15,
            "digest dated {local}, not at midnight"
        );
        assert!(d.subject.contains("Daily digest"), "{}", d.subject);
    }
    // The license error stays active over midnight, so the digest lists it.
    let digest_text = body(&digests[0].path);
    assert!(
        digest_text.contains("license expires in 14 days"),
        "{digest_text}"
    );

    // Change notifications: several, each at least 15 simulated minutes after the previous
    // application notification to the same addresses (a digest counts, as DESIGN §3.1 says).
    // Date has whole seconds, so one second of rounding is allowed.
    let changes = app.iter().filter(|m| m.group == "change").count();
    assert!(changes >= 5, "only {changes} change notifications");
    let mut last_by_to: BTreeMap<Vec<String>, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
    for m in &app {
        let at = m.date.unwrap();
        if m.group == "change" {
            if let Some(prev) = last_by_to.get(&m.to) {
                assert!(
                    at - *prev >= TimeDelta::minutes(15) - TimeDelta::seconds(1),
                    "change at {at} only {} after the previous notification at {prev}",
                    at - *prev
                );
            }
        }
        last_by_to.insert(m.to.clone(), at);
    }
    // Some of them were held back by the throttle and sent later.
    assert!(
        summary
            .application_decisions
            .get("changed")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{:?}",
        summary.application_decisions
    );

    // The flaps (raised and resolved inside a throttle window) are never reported, while the
    // errors around them are.
    let app_text: String = app.iter().map(|m| body(&m.path)).collect();
    assert!(app_text.contains("Anti-spam databases are outdated"));
    assert!(!app_text.contains("(flap)"), "a flap was reported");

    // Rule notifications reached each of the four groups.
    for group in ["general", "sender", "recipients", "additional"] {
        assert!(
            mails.iter().any(|m| m.kind == "rule" && m.group == group),
            "no rule notification to the {group} group"
        );
    }
    // Anti-backscatter: the sender group never got one for an unauthenticated or null sender.
    let sender_to: Vec<&str> = mails
        .iter()
        .filter(|m| m.kind == "rule" && m.group == "sender")
        .flat_map(|m| m.to.iter().map(String::as_str))
        .collect();
    assert!(!sender_to.contains(&"billing@paypa1-secure.example"));
    assert!(!sender_to.iter().any(|a| a.is_empty()));
    assert!(summary
        .suppressed
        .contains_key(&("rule".into(), "backscatter".into())));
    assert!(summary
        .suppressed
        .contains_key(&("rule".into(), "cap".into())));

    // Bounce notices, among them the disk-space RESOURCE bounces, and the burst summary.
    let bounces: Vec<_> = mails
        .iter()
        .filter(|m| m.kind == "bounce" && m.group == "admins")
        .collect();
    assert!(!bounces.is_empty(), "no bounce notice");
    assert!(bounces
        .iter()
        .any(|m| m.subject.contains("insufficient free disk space")));
    assert!(mails
        .iter()
        .any(|m| m.kind == "bounce" && m.group == "summary"));
    for reason in ["disabled", "loop", "burst"] {
        assert!(
            summary
                .suppressed
                .contains_key(&("bounce".into(), reason.into())),
            "no bounce suppressed as {reason}: {:?}",
            summary.suppressed
        );
    }
}

fn body(path: &std::path::Path) -> String {
    let raw = std::fs::read(path).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}
