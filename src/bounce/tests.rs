use super::*;
use crate::event::{Recipient, RecipientAction};
use crate::rules::tests::{load, node, BASE};
use chrono::TimeZone;

/// A second bounce group, in Russian, after the tests' base group (`postmaster@gw.example`, en).
/// The base config's From is `notify@gw.example`, its envelope sender `bounces@gw.example`.
const GROUPS: &str = r#"
[[bounce.recipients]]
name = "ops-ru"
addresses = ["ops@gw.example"]
language = "ru"
"#;

fn router(extra: &str) -> BounceRouter {
    BounceRouter::new(&load(&format!("{BASE}\n{extra}\n{GROUPS}")))
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn bounce(class: BounceClass, sender: &str, headers: Option<&str>, rcpt: &[&str]) -> BounceEvent {
    bounce_n(0, class, sender, headers, rcpt)
}

fn bounce_n(
    n: usize,
    class: BounceClass,
    sender: &str,
    headers: Option<&str>,
    rcpt: &[&str],
) -> BounceEvent {
    BounceEvent {
        event_id: format!("ev-{n}"),
        cluster_id: "c1".into(),
        node: node(),
        class,
        queue_id: format!("Q{n}"),
        message_id: Some(format!("m{n}")),
        smtp_message_id: None,
        sender: sender.into(),
        recipients: rcpt
            .iter()
            .map(|a| Recipient {
                address: a.to_string(),
                original_recipient: None,
                action: RecipientAction::Failed,
                status: "4.3.1".into(),
                diagnostic_code: Some("smtp; 452 4.3.1 insufficient system storage".into()),
                remote_mta: None,
            })
            .collect(),
        reason: Some("insufficient free disk space".into()),
        subject: Some("hello".into()),
        arrival_date: t0(),
        occurred_at: t0(),
        original_headers: headers.map(String::from),
    }
}

fn resource(n: usize) -> BounceEvent {
    bounce_n(
        n,
        BounceClass::Resource,
        "alice@corp.example",
        Some("From: alice@corp.example\r\nSubject: hello\r\n"),
        &["bob@ext.example"],
    )
}

fn is_notify(d: &BounceDecision) -> bool {
    matches!(d, BounceDecision::Notify(_))
}

#[test]
fn enabled_classes_are_notified_with_their_template_to_every_group() {
    let mut r = router("");
    match r.route(&resource(1), t0()) {
        BounceDecision::Notify(n) => {
            assert_eq!(n.template, "bounce/resource");
            let langs: Vec<&str> = n.recipients.iter().map(|g| g.language.as_str()).collect();
            assert_eq!(langs, ["en", "ru"]);
            assert_eq!(n.recipients[1].addresses[0].as_str(), "ops@gw.example");
        }
        other => panic!("expected a notice, got {other:?}"),
    }
    let sw = bounce(
        BounceClass::Software,
        "a@corp.example",
        None,
        &["b@x.example"],
    );
    assert!(matches!(
        r.route(&sw, t0()),
        BounceDecision::Notify(BounceNotice { template, .. }) if template == "bounce/software"
    ));
}

#[test]
fn classes_not_enabled_are_suppressed_as_class_disabled() {
    let mut r = router("");
    for class in BounceClass::ALL {
        let d = r.route(
            &bounce(*class, "a@corp.example", None, &["b@x.example"]),
            t0(),
        );
        let enabled = matches!(class, BounceClass::Resource | BounceClass::Software);
        assert_eq!(is_notify(&d), enabled, "{class:?}: {d:?}");
        if !enabled {
            assert_eq!(
                d,
                BounceDecision::Suppressed(BounceSuppression::ClassDisabled)
            );
            assert_eq!(d.reason(), "class_disabled");
        }
    }
    let mut r = router("[bounce]\nclasses = [\"BOUNCE\", \"DELAY\"]\n");
    let delay = bounce(BounceClass::Delay, "a@corp.example", None, &["b@x.example"]);
    assert!(is_notify(&r.route(&delay, t0())));
    assert_eq!(
        r.route(&resource(1), t0()),
        BounceDecision::Suppressed(BounceSuppression::ClassDisabled)
    );
}

#[test]
fn disabled_bounce_notices_suppress_everything() {
    let mut r = router("[bounce]\nenabled = false\n");
    let d = r.route(&resource(1), t0());
    assert_eq!(d, BounceDecision::Suppressed(BounceSuppression::Disabled));
    assert_eq!(d.reason(), "disabled");
}

fn assert_loop(r: &mut BounceRouter, e: &BounceEvent, evidence: LoopEvidence) {
    assert_eq!(
        r.route(e, t0()),
        BounceDecision::Suppressed(BounceSuppression::Loop(evidence)),
        "{e:?}"
    );
}

#[test]
fn a_bounce_of_our_notification_is_recognised_by_our_header() {
    let mut r = router("");
    for headers in [
        "From: notify@gw.example\r\nX-Mailgate-Notification-ID: 7f3a\r\n",
        // Any case, folded, with a foreign From (the relay may rewrite it).
        "From: someone@else.example\r\nx-mailgate-notification-id:\r\n 7f3a\r\n",
        "Subject: x\nX-MAILGATE-NOTIFICATION-ID: 1\n",
    ] {
        let e = bounce(
            BounceClass::Resource,
            "someone@else.example",
            Some(headers),
            &["admin@corp.example"],
        );
        assert_loop(&mut r, &e, LoopEvidence::NotificationHeader);
    }
}

#[test]
fn a_bounce_of_our_notification_is_recognised_by_auto_submitted_and_our_from() {
    let mut r = router("");
    let ours = "From: \"Mail gateway\" <Notify@GW.example>\r\nAuto-Submitted: auto-generated\r\n";
    let e = bounce(
        BounceClass::Software,
        "relay@else.example",
        Some(ours),
        &["admin@corp.example"],
    );
    assert_loop(&mut r, &e, LoopEvidence::AutoSubmittedFromUs);

    let folded =
        "Auto-Submitted:\r\n Auto-Generated; reason=x\r\nFrom: notify@gw.example (gateway)\r\n";
    let e = bounce(
        BounceClass::Software,
        "relay@else.example",
        Some(folded),
        &["a@x.example"],
    );
    assert_loop(&mut r, &e, LoopEvidence::AutoSubmittedFromUs);

    // Auto-generated mail from someone else, or our From without Auto-Submitted: not ours.
    for headers in [
        "From: robot@else.example\r\nAuto-Submitted: auto-generated\r\n",
        "From: notify@gw.example\r\nAuto-Submitted: no\r\n",
        "From: notify@gw.example\r\n",
        // A header after the end of the block is body, never read.
        "From: notify@gw.example\r\n\r\nX-Mailgate-Notification-ID: 1\r\nAuto-Submitted: auto-generated\r\n",
    ] {
        let e = bounce(BounceClass::Software, "robot@else.example", Some(headers), &["a@x.example"]);
        assert!(is_notify(&r.route(&e, t0())), "{headers:?}");
    }
}

#[test]
fn a_bounce_of_our_notification_is_recognised_by_our_envelope_sender() {
    let mut r = router("");
    for sender in [
        "bounces@gw.example",
        "<Bounces@GW.example>",
        "notify@gw.example",
    ] {
        let e = bounce(BounceClass::Resource, sender, None, &["admin@corp.example"]);
        assert_loop(&mut r, &e, LoopEvidence::OwnSender);
    }
    let e = bounce(
        BounceClass::Resource,
        "",
        Some("Return-Path: <bounces@gw.example>\r\n"),
        &["admin@corp.example"],
    );
    assert_loop(&mut r, &e, LoopEvidence::OwnSender);
}

#[test]
fn with_the_null_envelope_sender_only_our_from_address_is_ours() {
    let c = load(&format!(
        "[sender]\naddress = \"notify@gw.example\"\nenvelope_sender = \"<>\"\n[[application.recipients]]\naddresses = [\"a@gw.example\"]\n{GROUPS}"
    ));
    let mut r = BounceRouter::new(&c);
    // The null sender is not "ours" just because our envelope sender is null.
    assert!(is_notify(&r.route(
        &bounce(BounceClass::Resource, "", None, &["a@x.example"]),
        t0()
    )));
    assert_loop(
        &mut r,
        &bounce(
            BounceClass::Resource,
            "notify@gw.example",
            None,
            &["a@x.example"],
        ),
        LoopEvidence::OwnSender,
    );
}

#[test]
fn a_double_bounce_of_our_notification_produces_nothing() {
    let mut r = router("[bounce]\nclasses = [\"DOUBLE_BOUNCE\", \"RESOURCE\"]\n");
    // The bounce of our notification (null sender) failed on its way back to our envelope sender.
    let back_to_us = bounce(
        BounceClass::DoubleBounce,
        "",
        Some("From: MAILER-DAEMON@relay.example\r\nTo: bounces@gw.example\r\n"),
        &["Bounces@gw.example"],
    );
    assert_loop(&mut r, &back_to_us, LoopEvidence::DoubleBounceToUs);
    let mut via_original = back_to_us.clone();
    via_original.recipients[0].address = "rewritten@relay.example".into();
    via_original.recipients[0].original_recipient = Some("notify@gw.example".into());
    assert_loop(&mut r, &via_original, LoopEvidence::DoubleBounceToUs);
    let with_header = bounce(
        BounceClass::DoubleBounce,
        "",
        Some("X-Mailgate-Notification-ID: 1\r\n"),
        &["postmaster@relay.example"],
    );
    assert_loop(&mut r, &with_header, LoopEvidence::NotificationHeader);
    // A double bounce of someone else's mail is notified.
    let theirs = bounce(
        BounceClass::DoubleBounce,
        "",
        Some("From: MAILER-DAEMON@relay.example\r\n"),
        &["alice@corp.example"],
    );
    assert!(is_notify(&r.route(&theirs, t0())));
}

#[test]
fn ten_thousand_resource_bounces_in_a_minute_give_max_notices_and_one_summary() {
    let mut r = router("");
    let mut notices = 0;
    let mut collected = 0;
    for i in 0..10_000 {
        // One every 5 ms: the last at 49.995 s, all inside the one-minute window.
        match r.route(&resource(i), t0() + ms(5 * i as i64)) {
            BounceDecision::Notify(_) => notices += 1,
            BounceDecision::Collected { window_closes_at } => {
                assert_eq!(window_closes_at, t0() + TimeDelta::seconds(60));
                collected += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(notices, 20);
    assert_eq!(collected, 9_980);
    assert_eq!(r.next_deadline(), Some(t0() + TimeDelta::seconds(60)));
    assert_eq!(r.flush(t0() + ms(59_999)), None);

    let s = r.flush(t0() + TimeDelta::seconds(60)).expect("one summary");
    assert_eq!(s.template, SUMMARY_TEMPLATE);
    assert_eq!(s.window_start, t0());
    assert_eq!(s.window_end, t0() + TimeDelta::seconds(60));
    assert_eq!(s.notified, 20);
    assert_eq!(s.total, 9_980);
    assert_eq!(s.by_class, [(BounceClass::Resource, 9_980)]);
    assert_eq!(s.by_class.iter().map(|(_, n)| n).sum::<u64>(), s.total);
    assert_eq!(u64::from(s.notified) + s.total, 10_000);
    assert_eq!(s.first.len(), SUMMARY_SAMPLE);
    assert_eq!(s.first[0].queue_id, "Q20");
    assert_eq!(
        s.first[0].reason.as_deref(),
        Some("insufficient free disk space")
    );
    assert_eq!(s.recipients.len(), 2);

    assert_eq!(r.flush(t0() + TimeDelta::seconds(61)), None);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn the_summary_counts_each_class_and_adds_up() {
    let mut r = router("[bounce.burst]\nwindow = \"10s\"\nmax = 2\n");
    let classes = [
        BounceClass::Resource,
        BounceClass::Software,
        BounceClass::Resource,
    ];
    for i in 0..9 {
        let mut e = resource(i);
        e.class = classes[i % 3];
        r.route(&e, t0() + ms(i as i64));
    }
    let s = r.flush(t0() + TimeDelta::seconds(10)).unwrap();
    assert_eq!(s.notified, 2);
    assert_eq!(s.total, 7);
    assert_eq!(
        s.by_class,
        [(BounceClass::Resource, 5), (BounceClass::Software, 2)]
    );
}

#[test]
fn the_window_is_aligned_to_its_first_bounce_not_to_the_clock() {
    let mut r = router("[bounce.burst]\nwindow = \"1m\"\nmax = 2\n");
    let start = t0() + TimeDelta::seconds(59);
    assert!(is_notify(&r.route(&resource(1), start)));
    // 12:01:01 is a new clock minute but the same window.
    assert!(is_notify(
        &r.route(&resource(2), start + TimeDelta::seconds(2))
    ));
    assert!(matches!(
        r.route(&resource(3), start + TimeDelta::seconds(30)),
        BounceDecision::Collected { window_closes_at } if window_closes_at == start + TimeDelta::seconds(60)
    ));
    // Exactly at the end: a new window opens; the old one's summary is still owed.
    assert!(is_notify(
        &r.route(&resource(4), start + TimeDelta::seconds(60))
    ));
    assert_eq!(r.next_deadline(), Some(start + TimeDelta::seconds(60)));
    let s = r.flush(start + TimeDelta::seconds(60)).unwrap();
    assert_eq!((s.window_start, s.total), (start, 1));
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn summaries_of_several_closed_windows_come_out_oldest_first() {
    let mut r = router("[bounce.burst]\nwindow = \"10s\"\nmax = 1\n");
    for w in 0..3i64 {
        for i in 0..3 {
            r.route(
                &resource(i),
                t0() + TimeDelta::seconds(10 * w) + ms(i as i64),
            );
        }
    }
    let late = t0() + TimeDelta::seconds(100);
    let starts: Vec<_> = std::iter::from_fn(|| r.flush(late))
        .map(|s| s.window_start)
        .collect();
    assert_eq!(starts, [0, 10, 20].map(|s| t0() + TimeDelta::seconds(s)));
}

#[test]
fn suppressed_bounces_do_not_use_the_burst_budget() {
    let mut r = router("[bounce.burst]\nmax = 3\n");
    for i in 0..50 {
        let e = bounce_n(
            i,
            BounceClass::Resource,
            "bounces@gw.example",
            None,
            &["a@x.example"],
        );
        assert!(!is_notify(&r.route(&e, t0())));
        let e = bounce_n(
            i,
            BounceClass::Delay,
            "a@corp.example",
            None,
            &["a@x.example"],
        );
        assert!(!is_notify(&r.route(&e, t0())));
    }
    let notified = (0..3)
        .filter(|&i| is_notify(&r.route(&resource(i), t0())))
        .count();
    assert_eq!(notified, 3);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_clock_stepping_back_keeps_the_window_open() {
    let mut r = router("[bounce.burst]\nwindow = \"1m\"\nmax = 1\n");
    assert!(is_notify(&r.route(&resource(1), t0())));
    assert!(matches!(
        r.route(&resource(2), t0() - TimeDelta::seconds(30)),
        BounceDecision::Collected { .. }
    ));
    assert_eq!(r.flush(t0() - TimeDelta::seconds(30)), None);
    assert!(r.flush(t0() + TimeDelta::seconds(60)).is_some());
}

#[test]
fn metrics_count_each_decision_by_reason_and_each_summary() {
    let registry = crate::telemetry::registry();
    let m = BounceMetrics::register(&registry);
    let mut r = router("[bounce.burst]\nmax = 1\n");
    let events = [
        resource(1),
        resource(2),
        bounce(
            BounceClass::Bounce,
            "a@corp.example",
            None,
            &["x@y.example"],
        ),
        bounce(
            BounceClass::Resource,
            "bounces@gw.example",
            None,
            &["x@y.example"],
        ),
    ];
    for e in &events {
        let d = r.route(e, t0());
        m.observe(&d, e);
    }
    m.observe_summary(&r.flush(t0() + TimeDelta::seconds(60)).unwrap());
    let text = crate::telemetry::encode_text(&registry);
    let get = |s: &str| crate::telemetry::sample(&text, s);
    assert_eq!(
        get("mailgate_notify_bounce_notices_total{class=\"RESOURCE\"}"),
        Some(1.0)
    );
    assert_eq!(
        get("mailgate_notify_bounce_notices_total{class=\"SOFTWARE\"}"),
        Some(0.0)
    );
    for (reason, n) in [
        ("burst", 1.0),
        ("class_disabled", 1.0),
        ("loop", 1.0),
        ("disabled", 0.0),
    ] {
        assert_eq!(
            get(&format!(
                "mailgate_notify_bounce_notifications_suppressed_total{{reason=\"{reason}\"}}"
            )),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(
        get("mailgate_notify_bounce_burst_summaries_total"),
        Some(1.0)
    );
}

#[test]
fn header_fields_unfold_and_stop_at_the_body() {
    let f = header_fields("A: 1\r\nB: x\r\n\ty\r\nbroken line\r\nC:3\r\n\r\nD: body\r\n");
    let f: Vec<(&str, &str)> = f.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(f, [("A", "1"), ("B", "x y"), ("C", "3")]);
    let from: Vec<&str> = mailbox_addresses("\"a<b\" <x@y.example>, Other <z@w.example>").collect();
    assert_eq!(from, ["x@y.example", "z@w.example"]);
    let bare: Vec<&str> = mailbox_addresses("x@y.example (X), z@w.example").collect();
    assert_eq!(bare, ["x@y.example", "z@w.example"]);
}
