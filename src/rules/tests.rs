use super::*;
use crate::config::Config;
use crate::event::{MessageAction, Node, ObjectAction};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use SuppressionReason as R;

/// Our From address is `notify@gw.example`, our envelope sender `bounces@gw.example` (also the
/// base of the bounce tests).
pub(crate) const BASE: &str = r#"
[sender]
address = "notify@gw.example"
envelope_sender = "bounces@gw.example"
[[application.recipients]]
addresses = ["admin@gw.example"]
language = "de"
[[bounce.recipients]]
addresses = ["postmaster@gw.example"]
"#;

/// No secrets in the environment (tests never read the process's).
struct NoEnv;
impl crate::config::Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// A valid config from TOML text (also used by the bounce tests).
pub(crate) fn load(text: &str) -> Config {
    Config::from_toml(text, Path::new("."), &NoEnv)
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"))
}

fn config(extra: &str) -> Config {
    load(&format!("{BASE}\n{extra}"))
}

fn fanout(extra: &str) -> RuleFanout {
    RuleFanout::new(&config(extra))
}

fn det(module: DetectionModule, status: &str) -> Detection {
    Detection {
        module,
        status: status.into(),
        threat_name: None,
        object_name: Some("invoice.exe".into()),
        object_size: Some(1024),
        object_action: ObjectAction::Blocked,
    }
}

fn trig(id: &str, affected: &[&str], detections: Vec<Detection>) -> RuleTrigger {
    RuleTrigger {
        rule_id: id.into(),
        rule_name: Some(format!("Rule {id}")),
        affected_recipients: affected.iter().map(|s| s.to_string()).collect(),
        detections,
    }
}

fn av(id: &str, affected: &[&str]) -> RuleTrigger {
    trig(
        id,
        affected,
        vec![det(DetectionModule::AntiVirus, "INFECTED")],
    )
}

/// The scanning node (also used by the bounce tests).
pub(crate) fn node() -> Node {
    Node {
        node_id: "n1".into(),
        ip: "10.0.0.1".into(),
        port: 9045,
        comment: None,
        is_control: true,
    }
}

fn verdict(sender: &str, authenticated: bool, rules: Vec<RuleTrigger>) -> ScanVerdict {
    ScanVerdict {
        event_id: "ev-1".into(),
        cluster_id: "c1".into(),
        node: node(),
        message_id: "msg-1".into(),
        smtp_message_id: Some("<abc@ext.example>".into()),
        sender: sender.into(),
        sender_ip: Some("192.0.2.7".into()),
        sender_authenticated: authenticated,
        all_recipients: vec!["u1@corp.example".into(), "u2@corp.example".into()],
        subject: Some("Invoice".into()),
        received_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        size: 4096,
        message_action: MessageAction::Deleted,
        backed_up: false,
        triggered_rules: rules,
        original_headers: Some("From: a@ext.example\r\nSubject: Invoice\r\n".into()),
    }
}

fn pairs(plan: &FanoutPlan) -> Vec<(String, String)> {
    plan.notices
        .iter()
        .map(|n| (n.template.clone(), n.address.as_str().to_string()))
        .collect()
}

struct Case {
    name: &'static str,
    config: &'static str,
    verdict: ScanVerdict,
    /// The exact (template, address) pairs, in planning order.
    want: &'static [(&'static str, &'static str)],
    /// Suppressions that must be present, with their total counts.
    suppressed: &'static [(SuppressionReason, usize)],
}

fn cases() -> Vec<Case> {
    let u = &["u1@corp.example", "u2@corp.example"][..];
    vec![
        Case {
            name: "default settings notify the general list with the general template",
            config: "[rules]\ngeneral_list = [\"sec@corp.example\"]\n",
            verdict: verdict("a@ext.example", true, vec![av("unlisted", u)]),
            want: &[("rule/general", "sec@corp.example")],
            suppressed: &[],
        },
        Case {
            name: "two rules sharing a template and an address make one mail",
            config: r#"
                [rules]
                general_list = ["sec@corp.example"]
                [[rules.rule]]
                id = "r1"
                notify = ["general"]
                [[rules.rule]]
                id = "r2"
                notify = ["general", "additional"]
                additional = ["SEC@corp.example"]
                templates = { additional = "rule/general" }
            "#,
            verdict: verdict("a@ext.example", true, vec![av("r1", u), av("r2", u)]),
            want: &[("rule/general", "sec@corp.example")],
            suppressed: &[(R::Duplicate, 2)],
        },
        Case {
            name: "two templates to one address make two mails",
            config: r#"
                [rules]
                general_list = ["sec@corp.example"]
                [[rules.rule]]
                id = "r1"
                notify = ["general"]
                [[rules.rule]]
                id = "r2"
                notify = ["general"]
                templates = { general = "custom/av-general" }
            "#,
            verdict: verdict("a@ext.example", true, vec![av("r1", u), av("r2", u)]),
            want: &[
                ("rule/general", "sec@corp.example"),
                ("custom/av-general", "sec@corp.example"),
            ],
            suppressed: &[],
        },
        Case {
            name: "recipients group: one notice per affected recipient, case-insensitive",
            config: r#"
                [[rules.rule]]
                id = "r1"
                notify = ["recipients"]
                [[rules.rule]]
                id = "r2"
                notify = ["recipients"]
            "#,
            verdict: verdict(
                "a@ext.example",
                true,
                vec![
                    av(
                        "r1",
                        &["u1@corp.example", "U1@CORP.example", "<u2@corp.example>"],
                    ),
                    av("r2", &["u2@corp.example", "u3@corp.example"]),
                ],
            ),
            want: &[
                ("rule/recipients", "u1@corp.example"),
                ("rule/recipients", "u2@corp.example"),
                ("rule/recipients", "u3@corp.example"),
            ],
            suppressed: &[(R::Duplicate, 2)],
        },
        Case {
            name: "groups are planned general, additional, sender, recipients",
            config: r#"
                [rules]
                general_list = ["sec@corp.example"]
                sender_policy = "always"
                [[rules.rule]]
                id = "r1"
                notify = ["recipients", "sender", "additional", "general"]
                additional = ["av@corp.example"]
            "#,
            verdict: verdict("a@ext.example", false, vec![av("r1", &["u1@corp.example"])]),
            want: &[
                ("rule/general", "sec@corp.example"),
                ("rule/additional", "av@corp.example"),
                ("rule/sender", "a@ext.example"),
                ("rule/recipients", "u1@corp.example"),
            ],
            suppressed: &[],
        },
        Case {
            name: "module and status filter: ANTI_VIRUS INFECTED matches",
            config: AV_ONLY,
            verdict: verdict("a@ext.example", true, vec![av("r1", u)]),
            want: &[("rule/general", "sec@corp.example")],
            suppressed: &[],
        },
        Case {
            name: "module and status filter: SPAM does not match",
            config: AV_ONLY,
            verdict: verdict(
                "a@ext.example",
                true,
                vec![trig("r1", u, vec![det(DetectionModule::AntiSpam, "SPAM")])],
            ),
            want: &[],
            suppressed: &[(R::Filtered, 1)],
        },
        Case {
            name: "module and status filter: both must hold for the same detection",
            config: AV_ONLY,
            verdict: verdict(
                "a@ext.example",
                true,
                vec![trig(
                    "r1",
                    u,
                    vec![
                        det(DetectionModule::AntiVirus, "SCAN_ERROR"),
                        det(DetectionModule::AntiSpam, "INFECTED"),
                    ],
                )],
            ),
            want: &[],
            suppressed: &[(R::Filtered, 1)],
        },
        Case {
            name: "status filter alone, case-insensitive",
            config: r#"
                [rules]
                general_list = ["sec@corp.example"]
                [rules.default]
                notify = ["general"]
                statuses = ["phishing"]
            "#,
            verdict: verdict(
                "a@ext.example",
                true,
                vec![trig(
                    "x",
                    u,
                    vec![det(DetectionModule::AntiPhishing, "PHISHING")],
                )],
            ),
            want: &[("rule/general", "sec@corp.example")],
            suppressed: &[],
        },
        Case {
            name: "authenticated policy: authenticated sender is notified",
            config: SENDER_AUTHENTICATED,
            verdict: verdict("a@ext.example", true, vec![av("r1", u)]),
            want: &[("rule/sender", "a@ext.example")],
            suppressed: &[],
        },
        Case {
            name: "authenticated policy: unauthenticated sender is not",
            config: SENDER_AUTHENTICATED,
            verdict: verdict("a@ext.example", false, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::BackscatterUnauthenticated, 1)],
        },
        Case {
            name: "internal policy: local domain is notified, any case, even unauthenticated",
            config: SENDER_INTERNAL,
            verdict: verdict("Boss@CORP.example", false, vec![av("r1", u)]),
            want: &[("rule/sender", "Boss@CORP.example")],
            suppressed: &[],
        },
        Case {
            name: "internal policy: external domain is not, even authenticated",
            config: SENDER_INTERNAL,
            verdict: verdict("a@sub.corp.example", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::BackscatterExternal, 1)],
        },
        Case {
            name: "always policy: unauthenticated external sender is notified",
            config: SENDER_ALWAYS,
            verdict: verdict("a@ext.example", false, vec![av("r1", u)]),
            want: &[("rule/sender", "a@ext.example")],
            suppressed: &[],
        },
        Case {
            name: "the null sender is never notified, whatever the policy",
            config: SENDER_ALWAYS,
            verdict: verdict("", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::BackscatterNullSender, 1)],
        },
        Case {
            name: "the null sender written <> is never notified",
            config: SENDER_ALWAYS,
            verdict: verdict("<>", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::BackscatterNullSender, 1)],
        },
        Case {
            name: "our From address as sender gets no sender notice",
            config: SENDER_ALWAYS,
            verdict: verdict("Notify@GW.example", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::OwnAddress, 1)],
        },
        Case {
            name: "our envelope sender as sender gets no sender notice",
            config: SENDER_ALWAYS,
            verdict: verdict("bounces@gw.example", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::OwnAddress, 1)],
        },
        Case {
            name: "our own address is never notified in any group",
            config: r#"
                [rules]
                general_list = ["notify@gw.example", "sec@corp.example"]
                [rules.default]
                notify = ["general", "recipients"]
            "#,
            verdict: verdict(
                "a@ext.example",
                true,
                vec![av("x", &["bounces@gw.example", "u1@corp.example"])],
            ),
            want: &[
                ("rule/general", "sec@corp.example"),
                ("rule/recipients", "u1@corp.example"),
            ],
            suppressed: &[(R::OwnAddress, 2)],
        },
        Case {
            name: "an invalid affected recipient is suppressed, not mailed",
            config: "[rules.default]\nnotify = [\"recipients\"]\n",
            verdict: verdict(
                "a@ext.example",
                true,
                vec![av(
                    "x",
                    &[
                        "u1@corp.example",
                        "evil\r\nBcc: x@y@z",
                        "",
                        "evil\r\nBcc: x@y@z",
                    ],
                )],
            ),
            want: &[("rule/recipients", "u1@corp.example")],
            suppressed: &[(R::InvalidAddress, 3)],
        },
        Case {
            name: "additional list with its own template",
            config: r#"
                [[rules.rule]]
                id = "r1"
                notify = ["additional"]
                additional = ["av@corp.example", "soc@corp.example"]
                templates = { additional = "custom/soc" }
            "#,
            verdict: verdict("a@ext.example", true, vec![av("r1", u)]),
            want: &[
                ("custom/soc", "av@corp.example"),
                ("custom/soc", "soc@corp.example"),
            ],
            suppressed: &[],
        },
        Case {
            name: "a rule that notifies no group is disabled",
            config: "[[rules.rule]]\nid = \"r1\"\nnotify = []\n",
            verdict: verdict("a@ext.example", true, vec![av("r1", u)]),
            want: &[],
            suppressed: &[(R::Disabled, 1)],
        },
        Case {
            name: "rule notifications disabled: nothing, every rule counted",
            config: "[rules]\nenabled = false\ngeneral_list = [\"sec@corp.example\"]\n",
            verdict: verdict("a@ext.example", true, vec![av("r1", u), av("r2", u)]),
            want: &[],
            suppressed: &[(R::Disabled, 2)],
        },
        Case {
            name: "a verdict without triggered rules produces nothing",
            config: "[rules]\ngeneral_list = [\"sec@corp.example\"]\n",
            verdict: verdict("a@ext.example", true, vec![]),
            want: &[],
            suppressed: &[],
        },
    ]
}

const AV_ONLY: &str = r#"
    [rules]
    general_list = ["sec@corp.example"]
    [[rules.rule]]
    id = "r1"
    notify = ["general"]
    modules = ["ANTI_VIRUS"]
    statuses = ["INFECTED", "PROBABLY_INFECTED"]
"#;

const SENDER_AUTHENTICATED: &str = r#"
    [rules]
    sender_policy = "authenticated"
    [[rules.rule]]
    id = "r1"
    notify = ["sender"]
"#;

const SENDER_INTERNAL: &str = r#"
    [rules]
    sender_policy = "internal"
    local_domains = ["Corp.Example"]
    [[rules.rule]]
    id = "r1"
    notify = ["sender"]
"#;

const SENDER_ALWAYS: &str = r#"
    [rules]
    sender_policy = "always"
    [[rules.rule]]
    id = "r1"
    notify = ["sender"]
"#;

#[test]
fn rule_settings_times_verdict_give_the_exact_template_address_pairs() {
    for case in cases() {
        let plan = fanout(case.config).fanout(&case.verdict);
        let want: Vec<(String, String)> = case
            .want
            .iter()
            .map(|(t, a)| (t.to_string(), a.to_string()))
            .collect();
        assert_eq!(pairs(&plan), want, "case: {}", case.name);
        for (reason, n) in case.suppressed {
            assert_eq!(
                plan.suppressed_count(*reason),
                *n,
                "case: {}: {reason:?} in {:?}",
                case.name,
                plan.suppressed
            );
        }
        assert_eq!(plan.withheld, 0, "case: {}", case.name);
        assert!(plan.summary.is_none(), "case: {}", case.name);
    }
}

#[test]
fn merged_notice_names_every_rule_and_group_that_produced_it() {
    let f = fanout(
        r#"
        [rules]
        general_list = ["sec@corp.example"]
        [rules.default]
        notify = ["general", "recipients"]
        templates = { recipients = "rule/general" }
    "#,
    );
    let v = verdict(
        "a@ext.example",
        true,
        vec![
            av("r1", &["u1@corp.example"]),
            av("r2", &["SEC@corp.example", "u2@corp.example"]),
        ],
    );
    let plan = f.fanout(&v);
    assert_eq!(
        pairs(&plan),
        [
            ("rule/general".to_string(), "sec@corp.example".to_string()),
            ("rule/general".to_string(), "u1@corp.example".to_string()),
            ("rule/general".to_string(), "u2@corp.example".to_string()),
        ]
    );
    let sec = &plan.notices[0];
    assert_eq!(sec.group, NotifyGroup::General);
    assert_eq!(sec.groups, [NotifyGroup::General, NotifyGroup::Recipients]);
    assert_eq!(sec.rules, [0, 1]);
    let ids: Vec<&str> = sec
        .affected_rules(&v)
        .iter()
        .map(|r| r.rule_id.as_str())
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(
        sec.affected_recipients(&v),
        ["u1@corp.example", "SEC@corp.example", "u2@corp.example"]
    );
}

#[test]
fn a_recipient_notice_shows_only_its_addressee_among_the_affected() {
    let f = fanout("[rules]\ngeneral_list = [\"sec@corp.example\"]\n[rules.default]\nnotify = [\"general\", \"recipients\"]\n");
    let v = verdict(
        "a@ext.example",
        true,
        vec![av("r1", &["u1@corp.example", "bcc-victim@corp.example"])],
    );
    let plan = f.fanout(&v);
    let u1 = plan
        .notices
        .iter()
        .find(|n| n.address.as_str() == "u1@corp.example")
        .unwrap();
    assert_eq!(u1.affected_recipients(&v), ["u1@corp.example"]);
    let sec = &plan.notices[0];
    assert_eq!(
        sec.affected_recipients(&v),
        ["u1@corp.example", "bcc-victim@corp.example"]
    );
}

#[test]
fn notices_are_sent_whatever_the_final_action_on_the_message() {
    let f = fanout("[rules]\ngeneral_list = [\"sec@corp.example\"]\n");
    let mut v = verdict("a@ext.example", true, vec![av("r1", &["u1@corp.example"])]);
    let first = f.fanout(&v);
    assert_eq!(first.notices.len(), 1);
    for action in MessageAction::ALL {
        for backed_up in [false, true] {
            v.message_action = *action;
            v.backed_up = backed_up;
            assert_eq!(f.fanout(&v), first, "{action:?} backed_up={backed_up}");
        }
    }
}

#[test]
fn the_plan_is_deterministic() {
    let f = fanout(
        "[rules]\ngeneral_list = [\"b@corp.example\", \"a@corp.example\"]\n[rules.default]\nnotify = [\"general\", \"recipients\"]\n",
    );
    let affected: Vec<String> = (0..500).map(|i| format!("u{i}@corp.example")).collect();
    let refs: Vec<&str> = affected.iter().map(String::as_str).collect();
    let v = verdict(
        "a@ext.example",
        true,
        vec![av("r1", &refs), av("r2", &refs)],
    );
    assert_eq!(f.fanout(&v), f.fanout(&v));
    assert_eq!(f.fanout(&v), RuleFanout::new(&config("[rules]\ngeneral_list = [\"b@corp.example\", \"a@corp.example\"]\n[rules.default]\nnotify = [\"general\", \"recipients\"]\n")).fanout(&v));
}

fn big_verdict(n: usize) -> ScanVerdict {
    let affected: Vec<String> = (0..n).map(|i| format!("user{i}@corp.example")).collect();
    let refs: Vec<&str> = affected.iter().map(String::as_str).collect();
    verdict("a@ext.example", true, vec![av("r1", &refs)])
}

#[test]
fn fifty_thousand_affected_recipients_make_the_cap_one_summary_and_the_withheld_metric() {
    let f = fanout(
        "[rules]\ngeneral_list = [\"sec@corp.example\"]\n[rules.default]\nnotify = [\"recipients\"]\n",
    );
    let v = big_verdict(50_000);
    let plan = f.fanout(&v);
    assert_eq!(plan.notices.len(), 100);
    assert_eq!(plan.withheld, 49_900);
    assert_eq!(plan.suppressed_count(R::Cap), 49_900);
    assert_eq!(plan.notices[0].address.as_str(), "user0@corp.example");
    assert_eq!(plan.notices[99].address.as_str(), "user99@corp.example");

    let s = plan.summary.as_ref().expect("one summary");
    assert_eq!(s.template, CAP_SUMMARY_TEMPLATE);
    assert_eq!(s.planned, 100);
    assert_eq!(s.withheld, 49_900);
    assert_eq!(
        s.by_group,
        [WithheldCount {
            group: NotifyGroup::Recipients,
            template: "rule/recipients".into(),
            count: 49_900
        }]
    );
    assert_eq!(s.sample.len(), SUMMARY_SAMPLE);
    assert_eq!(s.sample[0].as_str(), "user100@corp.example");
    assert_eq!(s.recipients.len(), 1);
    assert_eq!(s.recipients[0].addresses[0].as_str(), "sec@corp.example");
    assert_eq!(s.recipients[0].language, "en");

    let registry = crate::telemetry::registry();
    let m = RuleMetrics::register(&registry);
    m.observe(&plan, &v);
    let text = crate::telemetry::encode_text(&registry);
    let get = |series: &str| crate::telemetry::sample(&text, series);
    assert_eq!(
        get("mailgate_notify_rule_notifications_withheld_total"),
        Some(49_900.0)
    );
    assert_eq!(get("mailgate_notify_rule_cap_summaries_total"), Some(1.0));
    assert_eq!(
        get("mailgate_notify_rule_notifications_planned_total{group=\"recipients\"}"),
        Some(100.0)
    );
    assert_eq!(
        get("mailgate_notify_rule_notifications_suppressed_total{group=\"recipients\",reason=\"cap\"}"),
        Some(49_900.0)
    );
    // Pre-created at zero.
    assert_eq!(
        get("mailgate_notify_rule_notifications_suppressed_total{group=\"sender\",reason=\"backscatter_null_sender\"}"),
        Some(0.0)
    );
}

#[test]
fn the_cap_keeps_the_general_list_before_the_recipients() {
    let f = fanout(
        r#"
        [rules]
        general_list = ["sec@corp.example"]
        max_notifications_per_message = 3
        [rules.default]
        notify = ["recipients", "general"]
    "#,
    );
    let v = big_verdict(10);
    let plan = f.fanout(&v);
    assert_eq!(
        pairs(&plan)
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        [
            "sec@corp.example",
            "user0@corp.example",
            "user1@corp.example"
        ]
    );
    assert_eq!(plan.withheld, 8);
}

#[test]
fn duplicates_of_withheld_notices_are_not_counted_twice() {
    let f = fanout(
        "[rules]\nmax_notifications_per_message = 2\n[rules.default]\nnotify = [\"recipients\"]\n",
    );
    let affected = [
        "a@corp.example",
        "b@corp.example",
        "c@corp.example",
        "d@corp.example",
    ];
    let v = verdict(
        "x@ext.example",
        true,
        vec![av("r1", &affected), av("r2", &affected)],
    );
    let plan = f.fanout(&v);
    assert_eq!(plan.notices.len(), 2);
    assert_eq!(plan.withheld, 2);
    assert_eq!(plan.suppressed_count(R::Duplicate), 4);
    assert_eq!(plan.notices[0].rules, [0, 1]);
}

#[test]
fn the_cap_summary_goes_to_the_admins_when_the_general_list_is_empty() {
    let f = fanout("[rules]\ngeneral_list = [\"notify@gw.example\"]\nmax_notifications_per_message = 5\n[rules.default]\nnotify = [\"recipients\"]\n");
    let plan = f.fanout(&big_verdict(6));
    let s = plan.summary.expect("summary");
    assert_eq!(s.withheld, 1);
    assert_eq!(s.recipients.len(), 1);
    assert_eq!(s.recipients[0].addresses[0].as_str(), "admin@gw.example");
    assert_eq!(s.recipients[0].language, "de");
}

#[test]
fn nothing_withheld_means_no_summary() {
    let f = fanout("[rules.default]\nnotify = [\"recipients\"]\n");
    let plan = f.fanout(&big_verdict(100));
    assert_eq!(plan.notices.len(), 100);
    assert_eq!(plan.withheld, 0);
    assert!(plan.summary.is_none());
}

#[test]
fn original_headers_are_attached_only_when_configured_and_cut_at_a_field() {
    let v = verdict("a@ext.example", true, vec![av("r1", &[])]);
    let off = fanout("[rules]\ngeneral_list = [\"sec@corp.example\"]\n").fanout(&v);
    assert_eq!(off.original_headers, None);
    let on = fanout(
        "[rules]\ngeneral_list = [\"sec@corp.example\"]\nattach_original_headers = true\nmax_header_bytes = 30\n",
    )
    .fanout(&v);
    assert_eq!(
        on.original_headers.as_deref(),
        Some("From: a@ext.example\r\n")
    );
    let none = fanout("[rules]\nattach_original_headers = true\n").fanout(&v);
    assert_eq!(none.notices.len(), 0);
    assert_eq!(none.original_headers, None);
}

#[test]
fn header_block_is_cut_before_a_field_never_inside_a_fold_or_a_character() {
    let h = "A: 1\r\nB: long\r\n folded\r\nC: 3\r\n";
    assert_eq!(cut_header_block(h, 1000), h);
    assert_eq!(cut_header_block(h, h.len()), h);
    // Inside B's fold: cut before B, not before " folded".
    assert_eq!(cut_header_block(h, 20), "A: 1\r\n");
    assert_eq!(cut_header_block(h, 27), "A: 1\r\nB: long\r\n folded\r\n");
    // One huge first field: cut at a character boundary.
    assert_eq!(cut_header_block("Subject: ééé", 11), "Subject: é");
}

#[test]
fn address_identity_lower_cases_the_whole_address() {
    assert_eq!(address_key(" <Bob@Example.COM> "), "bob@example.com");
    assert!(matches!(address_key("bob@example.com"), Cow::Borrowed(_)));
    assert_eq!(address_key("ǅ@x"), "ǆ@x");
    assert_eq!(address_key("<>"), "");
}

// ---- property: dedup and the sender policy over random settings and verdicts ----

const POOL: &[&str] = &[
    "sec@corp.example",
    "SEC@corp.example",
    "u1@corp.example",
    "U1@Corp.Example",
    "x@ext.example",
    "notify@gw.example",
    "Bounces@gw.example",
    "not an address",
    "",
];
const SENDERS: &[&str] = &[
    "",
    "<>",
    "u1@corp.example",
    "Boss@CORP.example",
    "x@ext.example",
    "NOTIFY@gw.example",
    "bounces@gw.example",
    "bad sender",
];
const TEMPLATES: &[&str] = &["t/a", "t/b", "rule/general"];
const STATUSES: &[&str] = &["INFECTED", "SPAM", "PHISHING"];

fn arb_settings(id: Option<String>) -> impl Strategy<Value = RuleSettings> {
    let group = prop::sample::select(NotifyGroup::ALL.to_vec());
    let tpl = prop::option::of(prop::sample::select(TEMPLATES).prop_map(String::from));
    (
        prop::collection::vec(group, 0..4),
        prop::collection::vec(prop::sample::select(&POOL[..7]), 0..3),
        [tpl.clone(), tpl.clone(), tpl.clone(), tpl],
        prop::collection::vec(
            prop::sample::select(DetectionModule::ALL[..3].to_vec()),
            0..2,
        ),
        prop::collection::vec(prop::sample::select(STATUSES), 0..2),
    )
        .prop_map(
            move |(notify, additional, [g, s, r, a], modules, statuses)| RuleSettings {
                id: id.clone(),
                notify,
                additional: additional.iter().map(|a| a.parse().unwrap()).collect(),
                templates: crate::config::GroupTemplates {
                    general: g,
                    sender: s,
                    recipients: r,
                    additional: a,
                },
                modules,
                statuses: statuses.into_iter().map(String::from).collect(),
            },
        )
}

fn arb_trigger() -> impl Strategy<Value = RuleTrigger> {
    (
        prop::sample::select(&["r0", "r1", "r2", "unlisted"][..]),
        prop::collection::vec(prop::sample::select(POOL), 0..6),
        prop::collection::vec(
            (
                prop::sample::select(DetectionModule::ALL[..3].to_vec()),
                prop::sample::select(STATUSES),
            ),
            0..3,
        ),
    )
        .prop_map(|(id, affected, dets)| {
            trig(
                id,
                &affected,
                dets.into_iter().map(|(m, s)| det(m, s)).collect(),
            )
        })
}

fn arb_case() -> impl Strategy<Value = (Config, ScanVerdict)> {
    (
        prop::sample::select(vec![
            SenderPolicy::Authenticated,
            SenderPolicy::Internal,
            SenderPolicy::Always,
        ]),
        prop::collection::vec(prop::sample::select(&POOL[..7]), 0..4),
        1usize..8,
        arb_settings(None),
        arb_settings(Some("r0".into())),
        arb_settings(Some("r1".into())),
        prop::sample::select(SENDERS),
        any::<bool>(),
        prop::collection::vec(arb_trigger(), 0..4),
    )
        .prop_map(
            |(policy, general, cap, default, r0, r1, sender, auth, triggers)| {
                // Parsing the TOML is the expensive part of a case: parse it once.
                static BASE_CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
                let mut c = BASE_CONFIG.get_or_init(|| config("")).clone();
                c.rules.sender_policy = policy;
                c.rules.local_domains = vec!["corp.example".into()];
                c.rules.general_list = general.iter().map(|a| a.parse().unwrap()).collect();
                c.rules.max_notifications_per_message = cap;
                c.rules.default = default;
                c.rules.rule = vec![r0, r1];
                (c, verdict(sender, auth, triggers))
            },
        )
}

/// What the policy alone says about this sender (the reference the fan-out must agree with).
fn sender_allowed(c: &Config, v: &ScanVerdict) -> bool {
    let s = v
        .sender
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase();
    if s.is_empty() || s == "notify@gw.example" || s == "bounces@gw.example" {
        return false;
    }
    match c.rules.sender_policy {
        SenderPolicy::Always => true,
        SenderPolicy::Authenticated => v.sender_authenticated,
        SenderPolicy::Internal => s.ends_with("@corp.example"),
    }
}

proptest! {
    // Cheap cases (well under a second for 2,000); enough that the rarer combinations (a
    // matching rule notifying the sender under each policy, with room left under the cap) occur.
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn fanout_never_duplicates_a_template_address_pair_nor_breaks_the_sender_policy(
        (c, v) in arb_case()
    ) {
        let plan = RuleFanout::new(&c).fanout(&v);
        let mut seen = BTreeSet::new();
        for n in &plan.notices {
            let key = (n.template.clone(), n.address.as_str().to_lowercase());
            prop_assert!(seen.insert(key), "duplicate notice {:?}", n);
            let lower = n.address.as_str().to_lowercase();
            prop_assert!(lower != "notify@gw.example" && lower != "bounces@gw.example");
            prop_assert!(!n.groups.is_empty() && !n.rules.is_empty());
            if n.groups.contains(&NotifyGroup::Sender) {
                prop_assert!(sender_allowed(&c, &v), "forbidden sender notice {:?}", n);
            }
        }
        prop_assert!(plan.notices.len() <= c.rules.max_notifications_per_message);
        prop_assert_eq!(plan.suppressed_count(R::Cap), plan.withheld);
        prop_assert_eq!(plan.summary.is_some(), plan.withheld > 0);
    }
}

/// Reference model of DESIGN §3.3 for one verdict: every distinct (template, address identity)
/// pair the config asks for, written from the rules of the design and not from the fan-out's
/// code — matching rules (filters), their groups, the sender policy, our own addresses and
/// addresses that do not parse left out.
fn expected_pairs(c: &Config, v: &ScanVerdict) -> BTreeSet<(String, String)> {
    use crate::config::{address_key, bare_address};
    let own = ["notify@gw.example", "bounces@gw.example"];
    let valid = |a: &str| bare_address(a).parse::<crate::config::Mailbox>().is_ok();
    let mut out = BTreeSet::new();
    for t in &v.triggered_rules {
        let s = c
            .rules
            .rule
            .iter()
            .find(|r| r.id.as_deref() == Some(t.rule_id.as_str()))
            .unwrap_or(&c.rules.default);
        let matches = (s.modules.is_empty() && s.statuses.is_empty())
            || t.detections.iter().any(|d| {
                (s.modules.is_empty() || s.modules.contains(&d.module))
                    && (s.statuses.is_empty()
                        || s.statuses
                            .iter()
                            .any(|x| x.trim().eq_ignore_ascii_case(d.status.trim())))
            });
        if !matches {
            continue;
        }
        for g in &s.notify {
            let tpl = match g {
                NotifyGroup::General => &s.templates.general,
                NotifyGroup::Sender => &s.templates.sender,
                NotifyGroup::Recipients => &s.templates.recipients,
                NotifyGroup::Additional => &s.templates.additional,
            }
            .clone()
            .unwrap_or_else(|| default_template(*g).to_string());
            let addresses: Vec<String> = match g {
                NotifyGroup::General => c
                    .rules
                    .general_list
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect(),
                NotifyGroup::Additional => s
                    .additional
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect(),
                NotifyGroup::Sender if sender_allowed(c, v) => vec![v.sender.clone()],
                NotifyGroup::Sender => vec![],
                NotifyGroup::Recipients => t.affected_recipients.clone(),
            };
            for a in addresses {
                let key = address_key(&a).into_owned();
                if valid(&a) && !own.contains(&key.as_str()) {
                    out.insert((tpl.clone(), key));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// "One mail per template and address", both ways: every pair the config asks for is either
    /// planned exactly once or withheld by the cap (and counted), nothing else is planned, and
    /// the cap takes only what exceeds it.
    #[test]
    fn fanout_plans_each_expected_template_address_pair_exactly_once_up_to_the_cap(
        (c, v) in arb_case()
    ) {
        use crate::config::address_key;
        let plan = RuleFanout::new(&c).fanout(&v);
        let expected = expected_pairs(&c, &v);
        let planned: Vec<(String, String)> = plan
            .notices
            .iter()
            .map(|n| (n.template.clone(), address_key(n.address.as_str()).into_owned()))
            .collect();
        let planned_set: BTreeSet<_> = planned.iter().cloned().collect();
        prop_assert_eq!(planned_set.len(), planned.len(), "a pair planned twice");
        prop_assert!(planned_set.is_subset(&expected), "unexpected {:?}", planned_set.difference(&expected).collect::<Vec<_>>());
        prop_assert_eq!(planned.len(), expected.len().min(c.rules.max_notifications_per_message));
        prop_assert_eq!(planned.len() + plan.withheld, expected.len());
    }
}
