//! Timeline tests of the application-notification aggregator (DESIGN §3.1), on a manual clock:
//! push an event at t, expect a notification within [t1, t2], none elsewhere. The harness steps
//! `now` from deadline to deadline as the aggregator reports them and never sleeps; a draft is
//! "delivered" (marked sent) at the instant it is decided.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use mailgate_notify::aggregate::{
    Aggregator, ClusterState, Draft, DraftKind, ErrorKey, ErrorStatus, Reason, RecordClass,
    RecordEffect, RecordOutcome,
};
use mailgate_notify::config::ApplicationConfig;
use mailgate_notify::event::{ApplicationEvent, ErrorGroup, ErrorKind, ErrorState, Node};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Ts = DateTime<Utc>;

fn t(s: &str) -> Ts {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn min(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn cfg(toml_text: &str) -> ApplicationConfig {
    toml::from_str(toml_text).unwrap()
}

fn group_of(kind: ErrorKind) -> ErrorGroup {
    match kind {
        ErrorKind::NodeUnavailable | ErrorKind::DataSyncFailed => ErrorGroup::Synchronization,
        ErrorKind::LdapConnectionFailed => ErrorGroup::LdapIntegration,
        ErrorKind::LicenseExpired => ErrorGroup::Licensing,
        ErrorKind::DiskSpaceLow => ErrorGroup::System,
        _ => ErrorGroup::Protection,
    }
}

/// An application event of cluster `c1` occurring at `at`.
fn event(node: &str, kind: ErrorKind, state: ErrorState, at: Ts) -> ApplicationEvent {
    ApplicationEvent {
        event_id: format!("{node}/{kind}/{state}/{}", at.timestamp_millis()),
        cluster_id: "c1".into(),
        node: Node {
            node_id: node.into(),
            ip: format!("10.0.0.{}", node.len()),
            port: 9045,
            comment: None,
            is_control: node == "n1",
        },
        control_timezone: None,
        group: group_of(kind),
        kind,
        state,
        occurred_at: at,
        last_successful_sync_at: None,
        message: None,
        attributes: BTreeMap::new(),
    }
}

fn raised(node: &str, kind: ErrorKind, at: Ts) -> ApplicationEvent {
    event(node, kind, ErrorState::Raised, at)
}

fn resolved(node: &str, kind: ErrorKind, at: Ts) -> ApplicationEvent {
    event(node, kind, ErrorState::Resolved, at)
}

/// The same event carrying the Control node's zone.
fn in_zone(mut ev: ApplicationEvent, zone: &str) -> ApplicationEvent {
    ev.control_timezone = Some(zone.into());
    ev
}

#[derive(Debug, Clone)]
struct Sent {
    at: Ts,
    reason: Reason,
    draft: Draft,
}

/// What happened, in order: events recorded and notifications sent.
#[derive(Debug, Clone)]
enum Entry {
    Event(ApplicationEvent),
    Sent(Sent),
}

struct Timeline {
    agg: Aggregator,
    now: Ts,
    log: Vec<Entry>,
    reasons: Vec<(Ts, Reason)>,
}

impl Timeline {
    fn new(cfg: ApplicationConfig, start: Ts) -> Self {
        Timeline {
            agg: Aggregator::new(cfg),
            now: start,
            log: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// Fires every deadline up to and including `until`, in order; `now` ends at `until`.
    fn run_until(&mut self, until: Ts) {
        for _ in 0..100_000 {
            match self.agg.next_deadline() {
                Some(d) if d <= until => {
                    self.now = self.now.max(d);
                    self.fire();
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("deadlines do not advance (stuck at {})", self.now);
    }

    fn fire(&mut self) {
        for (_, decision) in self.agg.due(self.now) {
            self.reasons.push((self.now, decision.reason));
            if let Some(draft) = decision.draft {
                self.agg.mark_sent(&draft, self.now);
                self.log.push(Entry::Sent(Sent {
                    at: self.now,
                    reason: decision.reason,
                    draft,
                }));
            }
        }
    }

    /// Advances to `at` and records `ev` there (processing time `at`).
    fn push(&mut self, at: Ts, ev: ApplicationEvent) -> RecordOutcome {
        self.run_until(at);
        let out = self.agg.record(&ev, self.now);
        self.log.push(Entry::Event(ev));
        self.fire();
        out
    }

    fn sent(&self) -> Vec<&Sent> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Sent(s) => Some(s),
                Entry::Event(_) => None,
            })
            .collect()
    }

    fn sent_within(&self, from: Ts, to: Ts) -> Vec<&Sent> {
        self.sent()
            .into_iter()
            .filter(|s| s.at >= from && s.at <= to)
            .collect()
    }

    fn digests(&self) -> Vec<(Ts, NaiveDate)> {
        self.sent()
            .into_iter()
            .filter_map(|s| match s.draft.kind {
                DraftKind::Digest(d) => Some((s.at, d)),
                DraftKind::Change => None,
            })
            .collect()
    }

    /// Exactly one notification within [from, to]; returns it.
    fn expect_one(&self, from: Ts, to: Ts) -> &Sent {
        let within = self.sent_within(from, to);
        assert_eq!(
            within.len(),
            1,
            "one notification within [{from}, {to}]: {within:#?}"
        );
        within[0]
    }

    fn expect_none(&self, from: Ts, to: Ts) {
        let within = self.sent_within(from, to);
        assert!(
            within.is_empty(),
            "no notification within [{from}, {to}]: {within:#?}"
        );
    }
}

fn statuses(s: &Sent) -> Vec<(String, ErrorKind, ErrorStatus)> {
    s.draft
        .errors
        .iter()
        .map(|e| (e.node_id.clone(), e.kind, e.status))
        .collect()
}

use ErrorKind::{
    AvBasesOutdated as AV, DataSyncFailed as SYNC, DiskSpaceLow as DISK, LicenseExpired as LIC,
};
use ErrorStatus::{New, Resolved, StillActive};

fn entry(node: &str, kind: ErrorKind, status: ErrorStatus) -> (String, ErrorKind, ErrorStatus) {
    (node.to_string(), kind, status)
}

/// Raises one error at `raise` in `zone`, runs to `until`, returns the digests sent.
fn digests_in_zone(zone: &str, raise: &str, until: &str) -> Vec<(Ts, NaiveDate)> {
    let mut tl = Timeline::new(cfg(""), t(raise));
    tl.push(t(raise), in_zone(raised("n1", AV, t(raise)), zone));
    tl.run_until(t(until));
    tl.digests()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

// --- digest at local midnight -------------------------------------------------------------

#[test]
fn digest_fires_at_local_midnight_in_moscow() {
    let mut tl = Timeline::new(cfg(""), t("2025-06-10T12:00:00Z"));
    tl.push(
        t("2025-06-10T12:00:00Z"),
        in_zone(raised("n1", AV, t("2025-06-10T12:00:00Z")), "Europe/Moscow"),
    );
    tl.run_until(t("2025-06-12T23:00:00Z"));
    let first = tl.expect_one(t("2025-06-10T12:00:00Z"), t("2025-06-10T20:59:59Z"));
    assert_eq!(first.reason, Reason::FirstChange);
    // 00:00 MSK (+03) is 21:00 UTC, every day while the error lasts.
    assert_eq!(
        tl.digests(),
        vec![
            (t("2025-06-10T21:00:00Z"), day("2025-06-11")),
            (t("2025-06-11T21:00:00Z"), day("2025-06-12")),
            (t("2025-06-12T21:00:00Z"), day("2025-06-13")),
        ]
    );
    let d = tl.expect_one(t("2025-06-10T21:00:00Z"), t("2025-06-10T21:00:00Z"));
    assert_eq!(d.reason, Reason::Digest);
    assert_eq!(d.draft.zone, chrono_tz::Europe::Moscow);
    assert_eq!(statuses(d), vec![entry("n1", AV, StillActive)]);
    assert_eq!(tl.sent().len(), 4);
}

#[test]
fn digest_follows_new_york_midnight_across_spring_forward() {
    // Clocks go forward at 02:00 on 2025-03-09: midnight is 05:00 UTC (EST) up to the 9th,
    // 04:00 UTC (EDT) from the 10th.
    let got = digests_in_zone(
        "America/New_York",
        "2025-03-07T15:00:00Z",
        "2025-03-11T12:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-03-08T05:00:00Z"), day("2025-03-08")),
            (t("2025-03-09T05:00:00Z"), day("2025-03-09")),
            (t("2025-03-10T04:00:00Z"), day("2025-03-10")),
            (t("2025-03-11T04:00:00Z"), day("2025-03-11")),
        ]
    );
}

#[test]
fn digest_follows_new_york_midnight_across_fall_back() {
    // Clocks go back at 02:00 on 2025-11-02: midnight is 04:00 UTC (EDT) up to the 2nd,
    // 05:00 UTC (EST) from the 3rd; the repeated 01:00 hour does not repeat the digest.
    let got = digests_in_zone(
        "America/New_York",
        "2025-10-31T15:00:00Z",
        "2025-11-04T12:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-11-01T04:00:00Z"), day("2025-11-01")),
            (t("2025-11-02T04:00:00Z"), day("2025-11-02")),
            (t("2025-11-03T05:00:00Z"), day("2025-11-03")),
            (t("2025-11-04T05:00:00Z"), day("2025-11-04")),
        ]
    );
}

#[test]
fn digest_follows_lord_howe_half_hour_dst() {
    // Australia/Lord_Howe: +11 in summer, +10:30 in winter; DST ends 2025-04-06 02:00 (back to
    // 01:30) and starts 2025-10-05 02:00 (forward to 02:30).
    let got = digests_in_zone(
        "Australia/Lord_Howe",
        "2025-04-04T00:00:00Z",
        "2025-04-07T00:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-04-04T13:00:00Z"), day("2025-04-05")),
            (t("2025-04-05T13:00:00Z"), day("2025-04-06")),
            (t("2025-04-06T13:30:00Z"), day("2025-04-07")),
        ]
    );
    let got = digests_in_zone(
        "Australia/Lord_Howe",
        "2025-10-03T00:00:00Z",
        "2025-10-06T00:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-10-03T13:30:00Z"), day("2025-10-04")),
            (t("2025-10-04T13:30:00Z"), day("2025-10-05")),
            (t("2025-10-05T13:00:00Z"), day("2025-10-06")),
        ]
    );
}

#[test]
fn digest_fires_at_kathmandu_midnight_at_quarter_past_six_utc() {
    // Asia/Kathmandu is +05:45: local midnight is 18:15 UTC the day before.
    let got = digests_in_zone(
        "Asia/Kathmandu",
        "2025-01-10T06:00:00Z",
        "2025-01-12T06:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-01-10T18:15:00Z"), day("2025-01-11")),
            (t("2025-01-11T18:15:00Z"), day("2025-01-12")),
        ]
    );
}

#[test]
fn digest_fires_at_first_instant_after_skipped_midnight_in_havana() {
    // America/Havana (tzdata 2025b): on 2025-03-09 clocks jump from 00:00 CST (-05) to 01:00
    // CDT (-04), so that day has no midnight: the digest goes at 01:00 local, 05:00 UTC.
    let got = digests_in_zone(
        "America/Havana",
        "2025-03-07T15:00:00Z",
        "2025-03-10T12:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-03-08T05:00:00Z"), day("2025-03-08")),
            (t("2025-03-09T05:00:00Z"), day("2025-03-09")),
            (t("2025-03-10T04:00:00Z"), day("2025-03-10")),
        ]
    );
}

#[test]
fn digest_fires_at_first_instant_after_skipped_midnight_in_santiago() {
    // America/Santiago: on 2025-09-07 00:00 (-04) becomes 01:00 (-03) at 04:00 UTC.
    let got = digests_in_zone(
        "America/Santiago",
        "2025-09-05T15:00:00Z",
        "2025-09-08T12:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-09-06T04:00:00Z"), day("2025-09-06")),
            (t("2025-09-07T04:00:00Z"), day("2025-09-07")),
            (t("2025-09-08T03:00:00Z"), day("2025-09-08")),
        ]
    );
}

#[test]
fn repeated_midnight_sends_the_digest_once_in_havana() {
    // America/Havana: on 2025-11-02 clocks go back from 01:00 CDT to 00:00 CST, so local
    // midnight happens at 04:00 UTC and again at 05:00 UTC. One digest, at the first.
    let got = digests_in_zone(
        "America/Havana",
        "2025-11-01T15:00:00Z",
        "2025-11-03T12:00:00Z",
    );
    assert_eq!(
        got,
        vec![
            (t("2025-11-02T04:00:00Z"), day("2025-11-02")),
            (t("2025-11-03T05:00:00Z"), day("2025-11-03")),
        ]
    );
}

#[test]
fn zone_falls_back_to_cluster_config_then_default() {
    let c = cfg(r#"
        default_timezone = "Asia/Kathmandu"
        [clusters.c1]
        timezone = "Europe/Moscow"
        "#);
    let mut tl = Timeline::new(c.clone(), t("2025-06-10T12:00:00Z"));
    tl.push(
        t("2025-06-10T12:00:00Z"),
        raised("n1", AV, t("2025-06-10T12:00:00Z")),
    );
    tl.run_until(t("2025-06-11T12:00:00Z"));
    assert_eq!(
        tl.digests(),
        vec![(t("2025-06-10T21:00:00Z"), day("2025-06-11"))]
    );

    let mut other = raised("n1", AV, t("2025-06-10T12:00:00Z"));
    other.cluster_id = "c2".into();
    let mut tl = Timeline::new(c, t("2025-06-10T12:00:00Z"));
    tl.push(t("2025-06-10T12:00:00Z"), other);
    tl.run_until(t("2025-06-11T12:00:00Z"));
    assert_eq!(
        tl.digests(),
        vec![(t("2025-06-10T18:15:00Z"), day("2025-06-11"))]
    );
}

#[test]
fn no_digest_when_no_error_is_active() {
    let mut tl = Timeline::new(cfg(""), t("2025-06-10T10:00:00Z"));
    tl.push(
        t("2025-06-10T10:00:00Z"),
        raised("n1", AV, t("2025-06-10T10:00:00Z")),
    );
    tl.push(
        t("2025-06-10T11:00:00Z"),
        resolved("n1", AV, t("2025-06-10T11:00:00Z")),
    );
    tl.run_until(t("2025-06-14T00:00:00Z"));
    assert!(tl.digests().is_empty(), "{:#?}", tl.digests());
    assert_eq!(tl.sent().len(), 2); // the raise and the resolution
    assert_eq!(tl.agg.next_deadline(), None);
}

#[test]
fn error_first_raised_after_midnight_waits_for_the_next_digest() {
    let mut tl = Timeline::new(cfg(""), t("2025-06-11T00:05:00Z"));
    tl.push(
        t("2025-06-11T00:05:00Z"),
        raised("n1", AV, t("2025-06-11T00:05:00Z")),
    );
    tl.run_until(t("2025-06-12T12:00:00Z"));
    assert_eq!(tl.sent()[0].reason, Reason::FirstChange);
    assert_eq!(
        tl.digests(),
        vec![(t("2025-06-12T00:00:00Z"), day("2025-06-12"))]
    );
}

// --- change notifications and the throttle -------------------------------------------------

#[test]
fn first_change_is_sent_at_once() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    let s = tl.expect_one(t0, t0);
    assert_eq!(s.reason, Reason::FirstChange);
    assert_eq!(s.draft.kind, DraftKind::Change);
    assert_eq!(statuses(s), vec![entry("n1", AV, New)]);
}

#[test]
fn changes_at_one_and_fourteen_minutes_coalesce_into_one_at_fifteen() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(1), raised("n2", DISK, t0 + min(1)));
    // The change is not decided again before the throttle ends: its deadline is +15.
    assert_eq!(tl.agg.next_deadline(), Some(t0 + min(15)));
    tl.push(t0 + min(14), raised("n1", LIC, t0 + min(14)));
    tl.run_until(t0 + min(120));
    tl.expect_one(t0, t0);
    tl.expect_none(
        t0 + TimeDelta::seconds(1),
        t0 + min(15) - TimeDelta::seconds(1),
    );
    let s = tl.expect_one(t0 + min(15), t0 + min(15));
    assert_eq!(s.reason, Reason::Changed);
    assert_eq!(
        statuses(s),
        vec![
            entry("n1", AV, StillActive),
            entry("n1", LIC, New),
            entry("n2", DISK, New),
        ]
    );
    tl.expect_none(t0 + min(15) + TimeDelta::seconds(1), t0 + min(120));
}

#[test]
fn a_change_after_a_quiet_throttle_period_is_sent_at_once() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(40), raised("n2", AV, t0 + min(40)));
    let s = tl.expect_one(t0 + min(40), t0 + min(40));
    assert_eq!(s.reason, Reason::FirstChange);
}

#[test]
fn error_raised_and_resolved_between_notifications_is_never_reported() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(1), raised("n2", DISK, t0 + min(1)));
    tl.push(t0 + min(5), resolved("n2", DISK, t0 + min(5)));
    tl.run_until(t0 + min(180));
    assert_eq!(tl.sent().len(), 1, "{:#?}", tl.sent());

    // Same, with a real change next to it: only the real change is reported.
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(1), raised("n2", DISK, t0 + min(1)));
    tl.push(t0 + min(2), raised("n3", SYNC, t0 + min(2)));
    tl.push(t0 + min(5), resolved("n2", DISK, t0 + min(5)));
    tl.run_until(t0 + min(180));
    let s = tl.expect_one(t0 + min(1), t0 + min(180));
    assert_eq!(s.at, t0 + min(15));
    assert_eq!(
        statuses(s),
        vec![entry("n1", AV, StillActive), entry("n3", SYNC, New)]
    );
}

#[test]
fn resolved_errors_are_listed_as_resolved_and_the_rest_as_still_active() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0, raised("n2", DISK, t0));
    tl.push(t0 + min(20), resolved("n1", AV, t0 + min(20)));
    tl.run_until(t0 + min(120));
    let sent = tl.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(statuses(sent[0]), vec![entry("n1", AV, New)]);
    assert_eq!(sent[1].at, t0 + min(15));
    assert_eq!(
        statuses(sent[1]),
        vec![entry("n1", AV, StillActive), entry("n2", DISK, New)]
    );
    assert_eq!(sent[2].at, t0 + min(30));
    let errors = &sent[2].draft.errors;
    assert_eq!(
        statuses(sent[2]),
        vec![entry("n1", AV, Resolved), entry("n2", DISK, StillActive)]
    );
    assert_eq!(errors[0].resolved_at, Some(t0 + min(20)));
    assert_eq!(errors[0].group, ErrorGroup::Protection);
    assert_eq!(errors[1].group, ErrorGroup::System);
}

#[test]
fn events_older_than_the_keys_last_change_are_ignored() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(1), resolved("n1", AV, t0 + min(1)));
    // A raise that occurred before the resolution arrives late: stale, the error stays gone.
    let out = tl.push(t0 + min(2), raised("n1", AV, t0 + TimeDelta::seconds(30)));
    assert_eq!(out.effect, RecordEffect::Stale);
    assert_eq!(out.effect.class(), RecordClass::Stale);
    tl.run_until(t0 + min(60));
    let sent = tl.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(statuses(sent[1]), vec![entry("n1", AV, Resolved)]);
    assert_eq!(sent[1].at, t0 + min(15));
    assert_eq!(tl.agg.active_errors(), 0);
}

#[test]
fn digest_carries_a_pending_change_and_restarts_the_throttle() {
    let t0 = t("2025-06-10T23:50:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(5), raised("n2", DISK, t0 + min(5))); // throttled until 00:05
    tl.push(t0 + min(11), raised("n3", SYNC, t0 + min(11))); // 00:01, after the digest
    tl.run_until(t0 + min(120));
    let sent = tl.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(sent[1].at, t("2025-06-11T00:00:00Z"));
    assert_eq!(sent[1].reason, Reason::Digest);
    assert_eq!(
        statuses(sent[1]),
        vec![entry("n1", AV, StillActive), entry("n2", DISK, New)]
    );
    // The change at 00:01 waits for the throttle counted from the digest.
    assert_eq!(sent[2].at, t("2025-06-11T00:15:00Z"));
    assert_eq!(sent[2].reason, Reason::Changed);
    assert_eq!(statuses(sent[2]).iter().filter(|e| e.2 == New).count(), 1);
}

// --- restore, replay, catch-up --------------------------------------------------------------

fn export_all(agg: &Aggregator) -> Vec<Vec<u8>> {
    let mut ids: Vec<&str> = agg.cluster_ids().collect();
    ids.sort();
    ids.iter()
        .map(|id| agg.export(id).unwrap().to_json().unwrap())
        .collect()
}

#[test]
fn replaying_the_same_events_into_a_restored_state_sends_nothing_new() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    let events = vec![
        (t0, raised("n1", AV, t0)),
        (t0 + min(1), raised("n2", DISK, t0 + min(1))),
        (t0 + min(2), raised("n1", AV, t0 + min(2))),
        (t0 + min(20), resolved("n2", DISK, t0 + min(20))),
        (t0 + min(21), raised("n3", SYNC, t0 + min(21))),
        (t0 + min(22), resolved("n3", SYNC, t0 + min(22))),
        (t0 + min(23), resolved("n9", LIC, t0 + min(23))),
    ];
    for (at, ev) in &events {
        tl.push(*at, ev.clone());
    }
    tl.run_until(t0 + min(60));
    let before = tl.sent().len();
    assert_eq!(before, 3);

    // Restart: a fresh aggregator restored from the changelog, the whole input replayed.
    let restart = t0 + min(90);
    let mut agg = Aggregator::new(cfg(""));
    for bytes in export_all(&tl.agg) {
        agg.import(ClusterState::from_json(&bytes).unwrap(), restart);
    }
    let mut replay = Timeline {
        agg,
        now: restart,
        log: Vec::new(),
        reasons: Vec::new(),
    };
    for (i, (_, ev)) in events.iter().enumerate() {
        let out = replay.push(restart + TimeDelta::milliseconds(i as i64), ev.clone());
        assert_ne!(
            out.effect.class(),
            RecordClass::Applied,
            "{ev:?} -> {out:?}"
        );
    }
    replay.run_until(restart + min(180));
    assert!(replay.sent().is_empty(), "{:#?}", replay.sent());
}

#[test]
fn digest_missed_while_unowned_is_sent_on_recovery_within_catch_up() {
    let t0 = t("2025-06-10T20:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    let saved = export_all(&tl.agg);

    // Nobody owned the cluster at midnight; an instance takes it over at 02:30.
    let recovery = t("2025-06-11T02:30:00Z");
    let mut agg = Aggregator::new(cfg(""));
    agg.import(ClusterState::from_json(&saved[0]).unwrap(), recovery);
    let mut tl = Timeline {
        agg,
        now: recovery,
        log: Vec::new(),
        reasons: Vec::new(),
    };
    tl.run_until(t("2025-06-12T12:00:00Z"));
    assert_eq!(
        tl.digests(),
        vec![
            (recovery, day("2025-06-11")),
            (t("2025-06-12T00:00:00Z"), day("2025-06-12")),
        ]
    );
    assert_eq!(tl.sent()[0].reason, Reason::DigestCaughtUp);

    // Taken over only at 06:30, past the 6 h catch-up: that day's digest is given up.
    let late = t("2025-06-11T06:30:00Z");
    let mut agg = Aggregator::new(cfg(""));
    agg.import(ClusterState::from_json(&saved[0]).unwrap(), late);
    let mut tl = Timeline {
        agg,
        now: late,
        log: Vec::new(),
        reasons: Vec::new(),
    };
    tl.run_until(t("2025-06-12T12:00:00Z"));
    assert_eq!(
        tl.digests(),
        vec![(t("2025-06-12T00:00:00Z"), day("2025-06-12"))]
    );
    // The restored cluster is decided once at take-over, which reports the missed digest.
    assert_eq!(
        tl.reasons.first(),
        Some(&(late, Reason::DigestMissed(day("2025-06-11"))))
    );
}

#[test]
fn an_owner_restored_mid_throttle_waits_for_the_throttle() {
    let t0 = t("2025-06-10T10:00:00Z");
    let mut tl = Timeline::new(cfg(""), t0);
    tl.push(t0, raised("n1", AV, t0));
    tl.push(t0 + min(3), raised("n2", AV, t0 + min(3)));
    let saved = export_all(&tl.agg);
    let takeover = t0 + min(5);
    let mut agg = Aggregator::new(cfg(""));
    agg.import(ClusterState::from_json(&saved[0]).unwrap(), takeover);
    let mut tl = Timeline {
        agg,
        now: takeover,
        log: Vec::new(),
        reasons: Vec::new(),
    };
    tl.run_until(t0 + min(60));
    let s = tl.expect_one(takeover, t0 + min(60));
    assert_eq!(s.at, t0 + min(15));
    assert_eq!(
        statuses(s),
        vec![entry("n1", AV, StillActive), entry("n2", AV, New)]
    );
}

// --- property: throttle spacing and exact diffs -----------------------------------------------

#[derive(Debug, Clone)]
struct Step {
    /// Minutes since the previous step.
    gap: i64,
    node: u8,
    kind: u8,
    raise: bool,
    /// The event occurred this many minutes before it is pushed (out of order, stale).
    late: i64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![4 => 0i64..20, 1 => 20i64..600],
        0u8..3,
        0u8..3,
        any::<bool>(),
        prop_oneof![4 => Just(0i64), 1 => 0i64..30],
    )
        .prop_map(|(gap, node, kind, raise, late)| Step {
            gap,
            node,
            kind,
            raise,
            late,
        })
}

const KINDS: [ErrorKind; 3] = [AV, DISK, SYNC];

/// Reference model: per key, the greatest `(occurred_at, resolved?)` seen decides.
#[derive(Default)]
struct Model {
    last: BTreeMap<ErrorKey, (Ts, bool)>,
}

impl Model {
    fn apply(&mut self, ev: &ApplicationEvent) {
        let key = ErrorKey {
            node_id: ev.node.node_id.clone(),
            kind: ev.kind,
        };
        let v = (ev.occurred_at, ev.state == ErrorState::Resolved);
        let e = self.last.entry(key).or_insert(v);
        if v > *e {
            *e = v;
        }
    }

    fn active(&self) -> BTreeSet<ErrorKey> {
        self.last
            .iter()
            .filter(|(_, (_, resolved))| !resolved)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn notifications_respect_the_throttle_and_show_the_diff_at_their_instant(
        steps in proptest::collection::vec(step(), 1..60),
        zone in prop_oneof![Just("UTC"), Just("America/Havana"), Just("Asia/Kathmandu")],
    ) {
        let c = cfg("");
        let throttle = TimeDelta::from_std(c.throttle).unwrap();
        let start = t("2025-03-08T20:00:00Z");
        let mut tl = Timeline::new(c, start);
        let mut now = start;
        for s in &steps {
            now += min(s.gap);
            let node = format!("n{}", s.node);
            let kind = KINDS[s.kind as usize];
            let at = now - min(s.late);
            let ev = if s.raise { raised(&node, kind, at) } else { resolved(&node, kind, at) };
            tl.push(now, in_zone(ev, zone));
        }
        let end = now + throttle + min(1);
        tl.run_until(end);

        let mut model = Model::default();
        let mut shown: BTreeSet<ErrorKey> = BTreeSet::new();
        let mut prev: Option<Ts> = None;
        for e in &tl.log {
            match e {
                Entry::Event(ev) => model.apply(ev),
                Entry::Sent(s) => {
                    let active = model.active();
                    let by = |st: ErrorStatus| -> BTreeSet<ErrorKey> {
                        s.draft.errors.iter().filter(|e| e.status == st).map(|e| e.key()).collect()
                    };
                    prop_assert_eq!(by(New), active.difference(&shown).cloned().collect::<BTreeSet<_>>());
                    prop_assert_eq!(by(StillActive), active.intersection(&shown).cloned().collect::<BTreeSet<_>>());
                    prop_assert_eq!(by(Resolved), shown.difference(&active).cloned().collect::<BTreeSet<_>>());
                    match s.draft.kind {
                        DraftKind::Change => {
                            prop_assert!(active != shown, "empty change notification at {}", s.at);
                            if let Some(p) = prev {
                                prop_assert!(s.at - p >= throttle, "change at {} only {} after {}", s.at, s.at - p, p);
                            }
                        }
                        DraftKind::Digest(date) => {
                            prop_assert!(!active.is_empty());
                            let tz: chrono_tz::Tz = zone.parse().unwrap();
                            let local = s.at.with_timezone(&tz);
                            prop_assert_eq!(local.date_naive(), date);
                            // At midnight, at the end of a gap over it, or when an event of before midnight
                            // arrives late (at most 30 min here).
                            prop_assert!(local.time() <= chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap());
                        }
                    }
                    shown = active;
                    prev = Some(s.at);
                }
            }
        }
        // Nothing is left unreported once the throttle has passed.
        prop_assert_eq!(shown, model.active());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The other half of the throttle: a visible change never waits longer than it must. From
    /// the instant the diff against the last notification becomes non-empty, a notification
    /// goes out at once if nothing was sent in the last throttle, else at the last send plus the
    /// throttle — unless the diff is empty again by then. Two clusters in different zones run
    /// side by side, so one cluster's timers cannot stand in for the other's.
    #[test]
    fn a_visible_change_is_sent_no_later_than_the_throttle_allows(
        steps in proptest::collection::vec((step(), any::<bool>()), 1..60),
    ) {
        let c = cfg("");
        let throttle = TimeDelta::from_std(c.throttle).unwrap();
        let start = t("2025-03-08T20:00:00Z");
        let mut tl = Timeline::new(c, start);
        let mut now = start;
        // Processing time of each pushed event, in log order.
        let mut pushed_at = Vec::new();
        for (s, second) in &steps {
            now += min(s.gap);
            let node = format!("n{}", s.node);
            let kind = KINDS[s.kind as usize];
            let at = now - min(s.late);
            let mut ev = if s.raise { raised(&node, kind, at) } else { resolved(&node, kind, at) };
            if *second {
                ev.cluster_id = "other-cluster".into();
                ev = in_zone(ev, "Asia/Kathmandu");
            }
            tl.push(now, ev);
            pushed_at.push(now);
        }
        tl.run_until(now + throttle + min(1));

        #[derive(Default)]
        struct Cluster {
            model: Model,
            shown: BTreeSet<ErrorKey>,
            last_sent: Option<Ts>,
            /// Since when the diff has been non-empty.
            pending_since: Option<Ts>,
        }
        impl Cluster {
            fn deadline(&self, throttle: TimeDelta) -> Option<Ts> {
                let since = self.pending_since?;
                Some(match self.last_sent {
                    Some(l) => since.max(l + throttle),
                    None => since,
                })
            }
        }
        let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
        let mut events = pushed_at.iter();
        for e in &tl.log {
            let (cluster, at) = match e {
                Entry::Event(ev) => (ev.cluster_id.clone(), *events.next().unwrap()),
                Entry::Sent(s) => (s.draft.cluster_id.clone(), s.at),
            };
            for (id, cl) in &clusters {
                if let Some(d) = cl.deadline(throttle) {
                    prop_assert!(at <= d, "cluster {} had a change pending since {:?}, due {}, still unsent at {}", id, cl.pending_since, d, at);
                }
            }
            let cl = clusters.entry(cluster).or_default();
            match e {
                Entry::Event(ev) => cl.model.apply(ev),
                Entry::Sent(s) => {
                    cl.shown = cl.model.active();
                    cl.last_sent = Some(s.at);
                }
            }
            if cl.model.active() == cl.shown {
                cl.pending_since = None;
            } else if cl.pending_since.is_none() {
                cl.pending_since = Some(at);
            }
        }
        for (id, cl) in &clusters {
            prop_assert!(cl.pending_since.is_none(), "cluster {} ends with an unsent change", id);
        }
    }
}
