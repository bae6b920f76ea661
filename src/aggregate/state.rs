//! The state of one cluster and its decisions (DESIGN §3.1). Pure and synchronous: every method
//! that depends on time takes `now`; nothing here reads a clock, talks to Kafka or sends mail.
//!
//! Life of a notification: [`ClusterState::record`] applies events; the shell calls
//! [`ClusterState::decide`] at [`ClusterState::next_deadline`]; a decision with a [`Draft`] is
//! rendered and sent; once the relay accepted it (or it failed permanently and went to the
//! dead-letter topic), the shell calls [`ClusterState::mark_sent`]. Only then do
//! `last_notified`, `last_sent_at` and `last_digest_date` move, so a crash between decision and
//! delivery re-decides the same notification, with the same id seed.
//!
//! Choices the design left open, decided here:
//! - **Ties.** Per key, events are ordered by `(occurred_at, state)` with RESOLVED after RAISED:
//!   an event ordered before the key's last change is stale, an equal one is a duplicate. The
//!   state of a key is therefore the maximum of its events whatever their arrival order, and a
//!   replay changes nothing.
//! - **Resolved keys keep their last change time** (a tombstone), also for a RESOLVED of an
//!   absent key (still a no-op for notifications): otherwise a RAISED older than the resolution,
//!   replayed or late, would resurrect the error. Tombstones are bounded by nodes × kinds.
//! - **"At least one error exists at midnight"** means an active error whose first occurrence is
//!   at or before the digest instant. An error first raised after midnight is announced by a
//!   change notification, not by a digest; an error raised before midnight whose event arrives
//!   late still gets the day's digest (within `catch_up`).
//! - **A digest resets the diff.** It lists every active error, marked new or still active
//!   against `last_notified`, plus the errors resolved since the last notification; after it,
//!   `last_notified` is the full active set. A change pending at the digest instant is therefore
//!   carried by the digest, and the throttle restarts from the digest.
//! - **Digest and change at the same instant:** the digest wins (it contains the change).
//! - **The zone** in force is the newest valid `control_timezone` seen in events, else
//!   `[application.clusters.<id>] timezone`, else `application.default_timezone`. An invalid
//!   name is ignored (the zone in force stays) and reported in the outcome.
//! - **A missed digest** (past `catch_up`) is settled by the decision that finds it (reason
//!   `digest_missed`, reported once) — the only state a decision changes besides marking a
//!   draft in flight; it is recomputed identically after a restart, so persisting it is
//!   optional.
//! - **In flight.** A draft handed out blocks further decisions for its cluster until
//!   `mark_sent` (or `release`); the flag is not persisted.

use super::zone::{digest_after, latest_digest};
use super::AggregateError;
use crate::config::ApplicationConfig;
use crate::event::time::{self, Timestamp};
use crate::event::{ApplicationEvent, ErrorGroup, ErrorKind, ErrorState};
use chrono::{NaiveDate, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

/// A digest sent later than this after its instant counts as caught up (reason
/// `digest_caught_up`), not on time: the scheduler is never late by a minute, a recovery is.
pub const ON_TIME_GRACE: TimeDelta = TimeDelta::minutes(1);

/// Identity of an error within a cluster: the node it occurred on and which error it is.
/// Serialized as a two-element array to keep the changelog compact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(String, ErrorKind)", into = "(String, ErrorKind)")]
pub struct ErrorKey {
    /// `node.node_id` of the event.
    pub node_id: String,
    /// Which error. Kinds unknown to this build all map to `UNKNOWN`, so they share one key
    /// per node.
    pub kind: ErrorKind,
}

impl From<(String, ErrorKind)> for ErrorKey {
    fn from((node_id, kind): (String, ErrorKind)) -> Self {
        ErrorKey { node_id, kind }
    }
}

impl From<ErrorKey> for (String, ErrorKind) {
    fn from(k: ErrorKey) -> Self {
        (k.node_id, k.kind)
    }
}

/// What a notification shows about the node (its id is in the [`ErrorKey`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Address shown in notifications.
    pub ip: String,
    /// Port of the node's management interface.
    pub port: u16,
    /// The administrator's comment on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An error as last known: what a notification lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveError {
    /// Error group (the notification groups errors by it).
    pub group: ErrorGroup,
    /// Node where it occurred.
    pub node: NodeInfo,
    /// `occurred_at` of the RAISED that made the error active.
    #[serde(with = "time::required")]
    pub first_seen: Timestamp,
    /// `occurred_at` of the newest RAISED; also the key's last change while active.
    #[serde(with = "time::required")]
    pub last_occurrence: Timestamp,
    /// Last successful synchronization (SYNCHRONIZATION and LDAP_INTEGRATION errors).
    #[serde(
        default,
        with = "time::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_successful_sync: Option<Timestamp>,
    /// Human detail from the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extra values (`bases_issue_date`, `free_bytes`…), sorted by name. A vector, not a map:
    /// a one-entry `BTreeMap` costs a 500-byte node, times every error of 100,000 clusters.
    #[serde(default, with = "attr_map", skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

/// A resolved key: its last change time (for staleness) and, while a notification may still
/// have to show the resolution, the error as it was when resolved (for the "resolved" line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tombstone {
    #[serde(rename = "at", with = "time::required")]
    resolved_at: Timestamp,
    #[serde(rename = "was", default, skip_serializing_if = "Option::is_none")]
    last: Option<Box<ActiveError>>,
}

/// Everything known about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SlotState {
    Active(ActiveError),
    Resolved(Tombstone),
}

/// One key of a cluster, active or resolved. `notified`: the last notification showed it as
/// active — so `last_notified` of DESIGN §3.1 is the set of notified slots, without a second
/// copy of the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    key: ErrorKey,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    notified: bool,
    state: SlotState,
}

impl Slot {
    fn active(&self) -> Option<&ActiveError> {
        match &self.state {
            SlotState::Active(e) => Some(e),
            SlotState::Resolved(_) => None,
        }
    }

    /// New or resolved relative to the last notification.
    fn in_diff(&self) -> bool {
        match self.state {
            SlotState::Active(_) => !self.notified,
            SlotState::Resolved(_) => self.notified,
        }
    }
}

/// The whole per-cluster state of DESIGN §3.1; what the changelog stores (as JSON, via
/// [`ClusterState::to_json`] / [`ClusterState::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    cluster_id: String,
    /// Every key seen, sorted by key: the active errors, the resolved ones (tombstones) and
    /// which of them the last notification showed. A vector: a cluster has a handful of keys,
    /// and a `BTreeMap` node would cost kilobytes per cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    slots: Vec<Slot>,
    /// When the relay accepted the last notification (change or digest).
    #[serde(
        default,
        with = "time::optional",
        skip_serializing_if = "Option::is_none"
    )]
    last_sent_at: Option<Timestamp>,
    /// The latest local date whose digest is settled: sent, or given up past `catch_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_digest_date: Option<NaiveDate>,
    /// Newest valid `control_timezone` seen in events.
    #[serde(default, with = "tz_name", skip_serializing_if = "Option::is_none")]
    event_zone: Option<Tz>,
    /// `occurred_at` of the event that set `event_zone` (an older event does not override it).
    #[serde(
        default,
        with = "time::optional",
        skip_serializing_if = "Option::is_none"
    )]
    event_zone_as_of: Option<Timestamp>,
    /// Since when the diff against `last_notified` is non-empty (only for the reason label:
    /// sent at once vs. held back by the throttle).
    #[serde(
        default,
        with = "time::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pending_since: Option<Timestamp>,
    /// Id seed of the draft handed out and not yet marked sent. Not persisted: after a restore
    /// the notification is decided again, with the same seed.
    #[serde(skip)]
    in_flight: Option<String>,
}

/// What [`ClusterState::record`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The effect on the error set.
    pub effect: RecordEffect,
    /// What happened to the zone in force.
    pub zone: ZoneNote,
}

impl RecordOutcome {
    /// Metric label of the effect.
    pub fn as_str(&self) -> &'static str {
        self.effect.as_str()
    }
}

/// The effect of one event on the error set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordEffect {
    /// Applied: a new active error.
    Raised,
    /// Applied: a newer occurrence of an active error (its details updated).
    Reoccurred,
    /// Applied: an active error is gone.
    Resolved,
    /// Ignored: older than the key's last change.
    Stale,
    /// No-op: same time and state as the key's last change (a replay).
    Duplicate,
    /// No-op: RESOLVED for an error that is not active (its time is kept for staleness).
    ResolvedAbsent,
    /// No-op: a state symbol this build does not know.
    UnknownState,
}

/// Coarse class of a [`RecordEffect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordClass {
    /// The error set changed.
    Applied,
    /// The event was older than what is known.
    Stale,
    /// Nothing to change.
    NoOp,
}

impl RecordEffect {
    /// Every effect, for pre-created metric labels.
    pub const ALL: [RecordEffect; 7] = [
        RecordEffect::Raised,
        RecordEffect::Reoccurred,
        RecordEffect::Resolved,
        RecordEffect::Stale,
        RecordEffect::Duplicate,
        RecordEffect::ResolvedAbsent,
        RecordEffect::UnknownState,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordEffect::Raised => "raised",
            RecordEffect::Reoccurred => "reoccurred",
            RecordEffect::Resolved => "resolved",
            RecordEffect::Stale => "stale",
            RecordEffect::Duplicate => "duplicate",
            RecordEffect::ResolvedAbsent => "resolved_absent",
            RecordEffect::UnknownState => "unknown_state",
        }
    }

    /// Applied / Stale / NoOp.
    pub fn class(self) -> RecordClass {
        match self {
            RecordEffect::Raised | RecordEffect::Reoccurred | RecordEffect::Resolved => {
                RecordClass::Applied
            }
            RecordEffect::Stale => RecordClass::Stale,
            RecordEffect::Duplicate | RecordEffect::ResolvedAbsent | RecordEffect::UnknownState => {
                RecordClass::NoOp
            }
        }
    }
}

/// What an event did to the cluster's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneNote {
    /// No `control_timezone`, the same one, or one older than the zone in force.
    Unchanged,
    /// The event's zone is now in force.
    Changed(Tz),
    /// The event named a zone the tz database does not know; the zone in force stays
    /// (worth a warning: the gateway is misconfigured).
    Invalid(String),
}

/// Why [`ClusterState::decide`] decided what it did; logged and used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The day's digest, at its instant.
    Digest,
    /// The day's digest, late but within `catch_up` (the cluster had no owner at midnight).
    DigestCaughtUp,
    /// The day's digest is past `catch_up`: given up, nothing sent.
    DigestMissed(NaiveDate),
    /// A change notification sent as soon as the change was seen (no notification within the
    /// last `throttle`).
    FirstChange,
    /// A change notification held back by the throttle, sent when it allowed.
    Changed,
    /// A change is pending; the throttle allows the next notification at this instant.
    ThrottledUntil(Timestamp),
    /// Nothing to send (no change, or a change that undid itself).
    NothingToReport,
    /// A draft is out for delivery and not yet marked sent.
    AwaitingDelivery,
}

impl Reason {
    /// Every label, for pre-created metric labels.
    pub const LABELS: [&'static str; 8] = [
        "digest",
        "digest_caught_up",
        "digest_missed",
        "first_change",
        "changed",
        "throttled",
        "nothing_to_report",
        "awaiting_delivery",
    ];

    /// Metric label (bounded: the instant of `ThrottledUntil` is not part of it).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Digest => "digest",
            Reason::DigestCaughtUp => "digest_caught_up",
            Reason::DigestMissed(_) => "digest_missed",
            Reason::FirstChange => "first_change",
            Reason::Changed => "changed",
            Reason::ThrottledUntil(_) => "throttled",
            Reason::NothingToReport => "nothing_to_report",
            Reason::AwaitingDelivery => "awaiting_delivery",
        }
    }
}

/// The outcome of [`ClusterState::decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Why.
    pub reason: Reason,
    /// The notification to render and send, if any.
    pub draft: Option<Draft>,
}

impl Decision {
    fn wait(reason: Reason) -> Self {
        Decision {
            reason,
            draft: None,
        }
    }
}

/// Which notification a draft is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftKind {
    /// The daily digest of this local date.
    Digest(NaiveDate),
    /// A change notification.
    Change,
}

impl DraftKind {
    /// `"digest"` or `"change"` (template selection, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            DraftKind::Digest(_) => "digest",
            DraftKind::Change => "change",
        }
    }
}

/// How an error relates to the previous notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// Active now, not shown by the last notification.
    New,
    /// Active now and shown by the last notification.
    StillActive,
    /// Shown by the last notification, gone now.
    Resolved,
}

impl ErrorStatus {
    /// `"new"`, `"still_active"`, `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::New => "new",
            ErrorStatus::StillActive => "still_active",
            ErrorStatus::Resolved => "resolved",
        }
    }
}

/// One error line of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftError {
    /// New / still active / resolved.
    pub status: ErrorStatus,
    /// Error group.
    pub group: ErrorGroup,
    /// Which error.
    pub kind: ErrorKind,
    /// Node id.
    pub node_id: String,
    /// Node address, port, comment.
    pub node: NodeInfo,
    /// First occurrence of this activation.
    pub first_seen: Timestamp,
    /// Last occurrence.
    pub last_occurrence: Timestamp,
    /// Last successful synchronization, where the gateway gives it.
    pub last_successful_sync: Option<Timestamp>,
    /// Human detail.
    pub message: Option<String>,
    /// Extra values.
    pub attributes: BTreeMap<String, String>,
    /// When it was resolved (status `Resolved` only).
    pub resolved_at: Option<Timestamp>,
}

impl DraftError {
    /// The key of this error.
    pub fn key(&self) -> ErrorKey {
        ErrorKey {
            node_id: self.node_id.clone(),
            kind: self.kind,
        }
    }
}

/// A notification to render and send. Times are UTC; show them in `zone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// Digest (with its local date) or change.
    pub kind: DraftKind,
    /// The cluster.
    pub cluster_id: String,
    /// The Control node's zone, for showing times.
    #[serde(with = "tz_required")]
    pub zone: Tz,
    /// The instant of the decision.
    pub at: Timestamp,
    /// Errors sorted by (group, kind, node id).
    pub errors: Vec<DraftError>,
    /// Deterministic seed of the Message-ID: `digest:<cluster>:<local date>`, or
    /// `change:<cluster>:<last sent millis | never>:<hash of the diff>`. A re-decision after a
    /// crash or a replay yields the same seed, so the relay sees the same Message-ID.
    pub id_seed: String,
}

/// What [`ClusterState::mark_sent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The state now reflects the notification.
    Marked,
    /// The draft is not the one out for delivery (already marked, or decided before a
    /// restore); nothing changed.
    NotInFlight,
}

impl ClusterState {
    /// An empty state for a cluster.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        ClusterState {
            cluster_id: cluster_id.into(),
            slots: Vec::new(),
            last_sent_at: None,
            last_digest_date: None,
            event_zone: None,
            event_zone_as_of: None,
            pending_since: None,
            in_flight: None,
        }
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Active errors, sorted by key.
    pub fn active(&self) -> impl Iterator<Item = (&ErrorKey, &ActiveError)> {
        self.slots
            .iter()
            .filter_map(|s| s.active().map(|e| (&s.key, e)))
    }

    /// Number of active errors.
    pub fn active_len(&self) -> usize {
        self.slots.iter().filter(|s| s.active().is_some()).count()
    }

    /// Keys the last notification showed as active, sorted.
    pub fn last_notified(&self) -> impl Iterator<Item = &ErrorKey> {
        self.slots.iter().filter(|s| s.notified).map(|s| &s.key)
    }

    /// When the last notification was accepted by the relay.
    pub fn last_sent_at(&self) -> Option<Timestamp> {
        self.last_sent_at
    }

    /// The latest local date whose digest is settled.
    pub fn last_digest_date(&self) -> Option<NaiveDate> {
        self.last_digest_date
    }

    /// Whether a draft is out for delivery.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The zone in force: the events' `control_timezone`, else the cluster's configured zone,
    /// else the default.
    pub fn zone(&self, cfg: &ApplicationConfig) -> Tz {
        self.event_zone
            .or_else(|| cfg.clusters.get(&self.cluster_id).map(|c| c.timezone))
            .unwrap_or(cfg.default_timezone)
    }

    /// Applies one event (DESIGN §3.1). `now` is the processing time (it dates a pending change,
    /// for the reason label only); the event's own `occurred_at` orders it.
    pub fn record(&mut self, ev: &ApplicationEvent, now: Timestamp) -> RecordOutcome {
        let zone = self.note_zone(ev);
        let effect = self.apply(ev);
        if effect.class() == RecordClass::Applied {
            if !self.has_diff() {
                self.pending_since = None;
            } else if self.pending_since.is_none() {
                self.pending_since = Some(now);
            }
        }
        RecordOutcome { effect, zone }
    }

    fn note_zone(&mut self, ev: &ApplicationEvent) -> ZoneNote {
        let name = match ev.control_timezone.as_deref().map(str::trim) {
            None | Some("") => return ZoneNote::Unchanged,
            Some(name) => name,
        };
        let Ok(tz) = Tz::from_str(name) else {
            return ZoneNote::Invalid(name.to_string());
        };
        if self.event_zone_as_of.is_some_and(|t| ev.occurred_at < t) {
            return ZoneNote::Unchanged;
        }
        self.event_zone_as_of = Some(ev.occurred_at);
        if self.event_zone == Some(tz) {
            ZoneNote::Unchanged
        } else {
            self.event_zone = Some(tz);
            ZoneNote::Changed(tz)
        }
    }

    fn apply(&mut self, ev: &ApplicationEvent) -> RecordEffect {
        if ev.state == ErrorState::Unknown {
            return RecordEffect::UnknownState;
        }
        let at = ev.occurred_at;
        let raise = ev.state == ErrorState::Raised;
        let found = self.slots.binary_search_by(|s| {
            (s.key.node_id.as_str(), s.key.kind).cmp(&(&ev.node.node_id, ev.kind))
        });
        let i = match found {
            Ok(i) => i,
            Err(i) => {
                let state = if raise {
                    SlotState::Active(error_from(ev, at))
                } else {
                    SlotState::Resolved(Tombstone {
                        resolved_at: at,
                        last: None,
                    })
                };
                let key = ErrorKey {
                    node_id: ev.node.node_id.clone(),
                    kind: ev.kind,
                };
                // Grow by one: a cluster has few keys, a doubled capacity would waste more
                // than the occasional reallocation costs.
                self.slots.reserve_exact(1);
                self.slots.insert(
                    i,
                    Slot {
                        key,
                        notified: false,
                        state,
                    },
                );
                return if raise {
                    RecordEffect::Raised
                } else {
                    RecordEffect::ResolvedAbsent
                };
            }
        };
        // While a draft is out it may show any active error; keep a resolved error's details
        // until a notification has been marked (mark_sent drops what is no longer needed).
        let keep_details = self.in_flight.is_some();
        let slot = &mut self.slots[i];
        match (&mut slot.state, raise) {
            (SlotState::Active(e), _) if at < e.last_occurrence => RecordEffect::Stale,
            (SlotState::Active(e), true) if at == e.last_occurrence => RecordEffect::Duplicate,
            (SlotState::Active(e), true) => {
                let first_seen = e.first_seen;
                *e = error_from(ev, first_seen);
                RecordEffect::Reoccurred
            }
            (SlotState::Active(e), false) => {
                let last = (slot.notified || keep_details).then(|| Box::new(e.clone()));
                slot.state = SlotState::Resolved(Tombstone {
                    resolved_at: at,
                    last,
                });
                RecordEffect::Resolved
            }
            // Resolution wins ties: a RAISED at the same instant as the RESOLVED is stale.
            (SlotState::Resolved(t), true) if at <= t.resolved_at => RecordEffect::Stale,
            (SlotState::Resolved(_), true) => {
                slot.state = SlotState::Active(error_from(ev, at));
                RecordEffect::Raised
            }
            (SlotState::Resolved(t), false) if at < t.resolved_at => RecordEffect::Stale,
            (SlotState::Resolved(t), false) if at == t.resolved_at => RecordEffect::Duplicate,
            (SlotState::Resolved(t), false) => {
                t.resolved_at = at;
                RecordEffect::ResolvedAbsent
            }
        }
    }

    /// Whether the current set differs from what the last notification showed.
    pub fn has_diff(&self) -> bool {
        self.slots.iter().any(Slot::in_diff)
    }

    /// Decides what to send now. Called at [`ClusterState::next_deadline`] (or any time: an
    /// early call just says why not). A decision with a draft marks it in flight: until
    /// [`ClusterState::mark_sent`], further calls answer `AwaitingDelivery`.
    pub fn decide(&mut self, now: Timestamp, cfg: &ApplicationConfig) -> Decision {
        if self.in_flight.is_some() {
            return Decision::wait(Reason::AwaitingDelivery);
        }
        let tz = self.zone(cfg);
        let mut missed = None;
        match self.digest_status(tz, now, cfg) {
            DigestStatus::Due { date, instant } => {
                let reason = if now - instant <= ON_TIME_GRACE {
                    Reason::Digest
                } else {
                    Reason::DigestCaughtUp
                };
                return self.hand_out(reason, DraftKind::Digest(date), tz, now);
            }
            DigestStatus::Missed { date } => missed = Some(date),
            DigestStatus::NotDue => {}
        }
        if self.has_diff() {
            let throttle = delta(cfg.throttle);
            if let Some(until) = self.last_sent_at.map(|t| t + throttle) {
                if now < until {
                    return Decision::wait(Reason::ThrottledUntil(until));
                }
            }
            let held_back = match (self.last_sent_at, self.pending_since) {
                (Some(sent), Some(since)) => since < sent + throttle,
                _ => false,
            };
            let reason = if held_back {
                Reason::Changed
            } else {
                Reason::FirstChange
            };
            return self.hand_out(reason, DraftKind::Change, tz, now);
        }
        if let Some(date) = missed {
            // Settled so that it is reported once; recomputed identically after a restart, so
            // losing this update costs at most a second report.
            self.last_digest_date = Some(date);
            return Decision::wait(Reason::DigestMissed(date));
        }
        Decision::wait(Reason::NothingToReport)
    }

    fn hand_out(&mut self, reason: Reason, kind: DraftKind, zone: Tz, now: Timestamp) -> Decision {
        let draft = self.draft(kind, zone, now);
        self.in_flight = Some(draft.id_seed.clone());
        Decision {
            reason,
            draft: Some(draft),
        }
    }

    fn digest_status(&self, tz: Tz, now: Timestamp, cfg: &ApplicationConfig) -> DigestStatus {
        if self.active_len() == 0 {
            return DigestStatus::NotDue;
        }
        let Some((date, instant)) = latest_digest(tz, now) else {
            return DigestStatus::NotDue;
        };
        if self.last_digest_date.is_some_and(|d| d >= date)
            || !self.active().any(|(_, e)| e.first_seen <= instant)
        {
            return DigestStatus::NotDue;
        }
        if now - instant <= delta(cfg.catch_up) {
            DigestStatus::Due { date, instant }
        } else {
            DigestStatus::Missed { date }
        }
    }

    /// When [`ClusterState::decide`] must next be called: `now` if something is due, the end of
    /// the throttle if a change is pending, the next digest instant if an error is active;
    /// `None` if nothing can become due without a new event (or while a draft is in flight).
    pub fn next_deadline(&self, now: Timestamp, cfg: &ApplicationConfig) -> Option<Timestamp> {
        if self.in_flight.is_some() {
            return None;
        }
        let change = self.has_diff().then(|| match self.last_sent_at {
            Some(t) => now.max(t + delta(cfg.throttle)),
            None => now,
        });
        let digest = if self.active_len() == 0 {
            None
        } else {
            let tz = self.zone(cfg);
            match self.digest_status(tz, now, cfg) {
                DigestStatus::Due { .. } => Some(now),
                DigestStatus::Missed { .. } | DigestStatus::NotDue => {
                    let latest = latest_digest(tz, now)
                        .map(|(d, _)| d)
                        .unwrap_or_else(|| now.with_timezone(&tz).date_naive());
                    let after = self.last_digest_date.map_or(latest, |d| d.max(latest));
                    digest_after(tz, after).map(|(_, t)| t)
                }
            }
        };
        match (change, digest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records that `draft` was delivered (relay accepted it, or it failed permanently and was
    /// dead-lettered) at `sent_at`: `last_notified` becomes what it showed as active,
    /// `last_sent_at` moves, a digest settles its date.
    pub fn mark_sent(&mut self, draft: &Draft, sent_at: Timestamp) -> MarkOutcome {
        if draft.cluster_id != self.cluster_id
            || self.in_flight.as_deref() != Some(draft.id_seed.as_str())
        {
            return MarkOutcome::NotInFlight;
        }
        self.in_flight = None;
        for slot in self.slots.iter_mut() {
            slot.notified = draft.errors.iter().any(|e| {
                e.status != ErrorStatus::Resolved
                    && e.kind == slot.key.kind
                    && e.node_id == slot.key.node_id
            });
            // A resolution's details are only needed until a notification has shown it.
            if let SlotState::Resolved(t) = &mut slot.state {
                if !slot.notified {
                    t.last = None;
                }
            }
        }
        self.last_sent_at = Some(sent_at);
        if let DraftKind::Digest(date) = draft.kind {
            self.last_digest_date = Some(self.last_digest_date.map_or(date, |d| d.max(date)));
        }
        // Events recorded while the draft was out may have left a diff: it is pending since now.
        self.pending_since = self.has_diff().then_some(sent_at);
        MarkOutcome::Marked
    }

    /// Forgets the draft out for delivery without marking it (it will be decided again).
    pub fn release(&mut self) {
        self.in_flight = None;
    }

    fn draft(&self, kind: DraftKind, zone: Tz, now: Timestamp) -> Draft {
        let mut errors: Vec<DraftError> = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            match &slot.state {
                SlotState::Active(e) => {
                    let status = if slot.notified {
                        ErrorStatus::StillActive
                    } else {
                        ErrorStatus::New
                    };
                    errors.push(draft_error(status, &slot.key, e, None));
                }
                // Invariant: a notified resolved slot keeps its details (set on RESOLVED while
                // notified or a draft was out; dropped only by a mark that no longer shows it).
                SlotState::Resolved(Tombstone {
                    resolved_at,
                    last: Some(e),
                }) if slot.notified => {
                    errors.push(draft_error(
                        ErrorStatus::Resolved,
                        &slot.key,
                        e,
                        Some(*resolved_at),
                    ));
                }
                SlotState::Resolved(_) => {}
            }
        }
        errors.sort_by(|a, b| (a.group, a.kind, &a.node_id).cmp(&(b.group, b.kind, &b.node_id)));
        let id_seed = match kind {
            DraftKind::Digest(date) => format!("digest:{}:{date}", self.cluster_id),
            DraftKind::Change => {
                let since = self
                    .last_sent_at
                    .map_or_else(|| "never".to_string(), |t| t.timestamp_millis().to_string());
                format!("change:{}:{since}:{}", self.cluster_id, diff_hash(&errors))
            }
        };
        Draft {
            kind,
            cluster_id: self.cluster_id.clone(),
            zone,
            at: now,
            errors,
            id_seed,
        }
    }

    /// The state as compact JSON, for the changelog.
    pub fn to_json(&self) -> Result<Vec<u8>, AggregateError> {
        serde_json::to_vec(self).map_err(AggregateError::Encode)
    }

    /// A state read back from the changelog.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AggregateError> {
        serde_json::from_slice(bytes).map_err(AggregateError::Decode)
    }
}

enum DigestStatus {
    NotDue,
    Due { date: NaiveDate, instant: Timestamp },
    Missed { date: NaiveDate },
}

fn error_from(ev: &ApplicationEvent, first_seen: Timestamp) -> ActiveError {
    ActiveError {
        group: ev.group,
        node: NodeInfo {
            ip: ev.node.ip.clone(),
            port: ev.node.port,
            comment: ev.node.comment.clone(),
        },
        first_seen,
        last_occurrence: ev.occurred_at,
        last_successful_sync: ev.last_successful_sync_at,
        message: ev.message.clone(),
        attributes: ev
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn draft_error(
    status: ErrorStatus,
    key: &ErrorKey,
    e: &ActiveError,
    resolved_at: Option<Timestamp>,
) -> DraftError {
    DraftError {
        status,
        group: e.group,
        kind: key.kind,
        node_id: key.node_id.clone(),
        node: e.node.clone(),
        first_seen: e.first_seen,
        last_occurrence: e.last_occurrence,
        last_successful_sync: e.last_successful_sync,
        message: e.message.clone(),
        attributes: e.attributes.iter().cloned().collect(),
        resolved_at,
    }
}

/// First 16 hex digits of SHA-256 over the new and resolved keys (still-active ones do not make
/// a change notification different).
fn diff_hash(errors: &[DraftError]) -> String {
    let mut h = Sha256::new();
    for e in errors
        .iter()
        .filter(|e| e.status != ErrorStatus::StillActive)
    {
        h.update(e.status.as_str());
        h.update([0]);
        h.update(&e.node_id);
        h.update([0]);
        h.update(e.kind.as_str());
        h.update([b'\n']);
    }
    let mut out = String::with_capacity(16);
    for b in &h.finalize()[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn delta(d: std::time::Duration) -> TimeDelta {
    // Config durations are validated positive; an absurd one saturates rather than panics.
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Serde for attributes: a JSON object in the changelog, a sorted vector in memory.
mod attr_map {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(|m| m.into_iter().collect())
    }
}

/// Serde for an optional zone, by IANA name.
mod tz_name {
    use chrono_tz::Tz;
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::str::FromStr;

    pub fn serialize<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match tz {
            Some(tz) => s.serialize_some(tz.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|n| Tz::from_str(&n).map_err(|_| de::Error::custom(format!("unknown zone {n:?}"))))
            .transpose()
    }
}

/// Serde for a zone, by IANA name.
mod tz_required {
    use chrono_tz::Tz;
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::str::FromStr;

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let n = String::deserialize(d)?;
        Tz::from_str(&n).map_err(|_| de::Error::custom(format!("unknown zone {n:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Node;
    use chrono::{DateTime, Utc};

    fn t(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cfg(extra: &str) -> ApplicationConfig {
        toml::from_str(extra).unwrap()
    }

    fn ev(node: &str, kind: ErrorKind, state: ErrorState, at: &str) -> ApplicationEvent {
        ApplicationEvent {
            event_id: format!("{node}-{kind}-{state}-{at}"),
            cluster_id: "c1".into(),
            node: Node {
                node_id: node.into(),
                ip: "10.0.0.1".into(),
                port: 9045,
                comment: Some("dmz".into()),
                is_control: false,
            },
            control_timezone: None,
            group: ErrorGroup::Protection,
            kind,
            state,
            occurred_at: t(at),
            last_successful_sync_at: None,
            message: Some(format!("at {at}")),
            attributes: Default::default(),
        }
    }

    use ErrorKind::{AvBasesOutdated as AV, DiskSpaceLow as DISK};
    use ErrorState::{Raised as R, Resolved as X};

    const T0: &str = "2025-06-10T12:00:00Z";
    const T1: &str = "2025-06-10T12:01:00Z";
    const T2: &str = "2025-06-10T12:02:00Z";

    fn key(node: &str, kind: ErrorKind) -> ErrorKey {
        ErrorKey {
            node_id: node.into(),
            kind,
        }
    }

    #[test]
    fn newer_raise_updates_details_and_keeps_first_seen() {
        let mut s = ClusterState::new("c1");
        assert_eq!(
            s.record(&ev("n1", AV, R, T0), t(T0)).effect,
            RecordEffect::Raised
        );
        assert_eq!(
            s.record(&ev("n1", AV, R, T1), t(T1)).effect,
            RecordEffect::Reoccurred
        );
        let (_, e) = s.active().next().unwrap();
        assert_eq!(e.first_seen, t(T0));
        assert_eq!(e.last_occurrence, t(T1));
        assert_eq!(e.message.as_deref(), Some("at 2025-06-10T12:01:00Z"));
    }

    #[test]
    fn raise_older_than_the_last_occurrence_is_stale_and_changes_nothing() {
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T1), t(T1));
        let before = s.clone();
        assert_eq!(
            s.record(&ev("n1", AV, R, T0), t(T2)).effect,
            RecordEffect::Stale
        );
        assert_eq!(s, before);
    }

    #[test]
    fn resolve_older_than_the_last_occurrence_is_stale() {
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T1), t(T1));
        assert_eq!(
            s.record(&ev("n1", AV, X, T0), t(T2)).effect,
            RecordEffect::Stale
        );
        assert_eq!(s.active_len(), 1);
    }

    #[test]
    fn resolve_of_an_absent_key_is_a_noop_that_makes_an_older_raise_stale() {
        let mut s = ClusterState::new("c1");
        let out = s.record(&ev("n1", AV, X, T1), t(T1));
        assert_eq!(out.effect, RecordEffect::ResolvedAbsent);
        assert_eq!(out.effect.class(), RecordClass::NoOp);
        assert!(!s.has_diff());
        assert_eq!(
            s.record(&ev("n1", AV, R, T0), t(T2)).effect,
            RecordEffect::Stale
        );
        assert_eq!(s.active_len(), 0);
        assert_eq!(
            s.record(&ev("n1", AV, R, T2), t(T2)).effect,
            RecordEffect::Raised
        );
    }

    #[test]
    fn resolution_wins_a_tie_whatever_the_arrival_order() {
        let mut a = ClusterState::new("c1");
        a.record(&ev("n1", AV, R, T0), t(T0));
        assert_eq!(
            a.record(&ev("n1", AV, X, T0), t(T0)).effect,
            RecordEffect::Resolved
        );
        let mut b = ClusterState::new("c1");
        b.record(&ev("n1", AV, X, T0), t(T0));
        assert_eq!(
            b.record(&ev("n1", AV, R, T0), t(T0)).effect,
            RecordEffect::Stale
        );
        assert_eq!(a.active_len(), 0);
        assert_eq!(b.active_len(), 0);
    }

    #[test]
    fn the_same_event_twice_is_a_duplicate() {
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T0), t(T0));
        assert_eq!(
            s.record(&ev("n1", AV, R, T0), t(T1)).effect,
            RecordEffect::Duplicate
        );
        s.record(&ev("n1", AV, X, T1), t(T1));
        assert_eq!(
            s.record(&ev("n1", AV, X, T1), t(T2)).effect,
            RecordEffect::Duplicate
        );
    }

    #[test]
    fn unknown_state_symbol_is_a_noop() {
        let mut s = ClusterState::new("c1");
        let out = s.record(&ev("n1", AV, ErrorState::Unknown, T0), t(T0));
        assert_eq!(out.effect, RecordEffect::UnknownState);
        assert_eq!(s.active_len(), 0);
    }

    #[test]
    fn zone_comes_from_events_then_cluster_config_then_default() {
        let c = cfg(r#"
            default_timezone = "Asia/Kathmandu"
            [clusters.c1]
            timezone = "Europe/Moscow"
        "#);
        let mut other = ClusterState::new("c2");
        assert_eq!(other.zone(&c), chrono_tz::Asia::Kathmandu);
        let mut s = ClusterState::new("c1");
        assert_eq!(s.zone(&c), chrono_tz::Europe::Moscow);
        let mut e = ev("n1", AV, R, T0);
        e.control_timezone = Some("America/Havana".into());
        assert_eq!(
            s.record(&e, t(T0)).zone,
            ZoneNote::Changed(chrono_tz::America::Havana)
        );
        assert_eq!(s.zone(&c), chrono_tz::America::Havana);
        other.record(&ev("n1", AV, R, T0), t(T0));
        assert_eq!(other.zone(&c), chrono_tz::Asia::Kathmandu);
    }

    #[test]
    fn invalid_zone_name_is_reported_and_the_zone_in_force_stays() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        let mut e = ev("n1", AV, R, T0);
        e.control_timezone = Some("Europe/Moscow".into());
        s.record(&e, t(T0));
        let mut bad = ev("n1", DISK, R, T1);
        bad.control_timezone = Some("Mars/Olympus_Mons".into());
        let out = s.record(&bad, t(T1));
        assert_eq!(out.zone, ZoneNote::Invalid("Mars/Olympus_Mons".into()));
        assert_eq!(out.effect, RecordEffect::Raised);
        assert_eq!(s.zone(&c), chrono_tz::Europe::Moscow);
    }

    #[test]
    fn an_older_event_does_not_override_a_newer_zone() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        let mut new = ev("n1", AV, R, T1);
        new.control_timezone = Some("Europe/Moscow".into());
        s.record(&new, t(T1));
        let mut old = ev("n2", AV, R, T0);
        old.control_timezone = Some("Asia/Kathmandu".into());
        assert_eq!(s.record(&old, t(T2)).zone, ZoneNote::Unchanged);
        assert_eq!(s.zone(&c), chrono_tz::Europe::Moscow);
    }

    #[test]
    fn state_round_trips_through_json_without_the_in_flight_draft() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        let mut e = ev("n1", AV, R, T0);
        e.control_timezone = Some("Asia/Kathmandu".into());
        e.last_successful_sync_at = Some(t(T0));
        e.attributes.insert("outdated_days".into(), "3".into());
        s.record(&e, t(T0));
        let d = s.decide(t(T0), &c).draft.unwrap();
        s.mark_sent(&d, t(T0));
        s.record(&ev("n1", AV, X, T1), t(T1));
        s.record(&ev("n2", DISK, R, T1), t(T1));
        assert!(s.decide(t(T2), &c).draft.is_none()); // throttled
        let json = s.to_json().unwrap();
        let back = ClusterState::from_json(&json).unwrap();
        assert_eq!(back, s);
        let mut flying = s.clone();
        let later = t("2025-06-10T12:20:00Z");
        assert!(flying.decide(later, &c).draft.is_some());
        let back = ClusterState::from_json(&flying.to_json().unwrap()).unwrap();
        assert!(!back.in_flight());
        assert!(ClusterState::from_json(b"{\"cluster_id\":1}").is_err());
    }

    #[test]
    fn decide_while_a_draft_is_out_awaits_delivery_and_a_stale_mark_is_refused() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T0), t(T0));
        let d = s.decide(t(T0), &c);
        assert_eq!(d.reason, Reason::FirstChange);
        let draft = d.draft.unwrap();
        assert_eq!(s.decide(t(T1), &c).reason, Reason::AwaitingDelivery);
        assert_eq!(s.next_deadline(t(T1), &c), None);
        assert_eq!(s.mark_sent(&draft, t(T1)), MarkOutcome::Marked);
        assert_eq!(s.mark_sent(&draft, t(T2)), MarkOutcome::NotInFlight);
        assert_eq!(s.last_sent_at(), Some(t(T1)));
    }

    #[test]
    fn a_released_draft_is_decided_again_with_the_same_id_seed() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T0), t(T0));
        let first = s.decide(t(T0), &c).draft.unwrap();
        s.release();
        let again = s.decide(t(T1), &c).draft.unwrap();
        assert_eq!(first.id_seed, again.id_seed);
        assert!(
            first.id_seed.starts_with("change:c1:never:"),
            "{}",
            first.id_seed
        );
    }

    #[test]
    fn error_resolved_while_its_first_notice_was_in_flight_is_reported_resolved_next() {
        let c = cfg("");
        let mut s = ClusterState::new("c1");
        s.record(&ev("n1", AV, R, T0), t(T0));
        let draft = s.decide(t(T0), &c).draft.unwrap();
        s.record(&ev("n1", AV, X, T1), t(T1));
        s.mark_sent(&draft, t(T1));
        assert!(s.has_diff());
        let later = t("2025-06-10T12:16:00Z");
        let d = s.decide(later, &c);
        assert_eq!(d.reason, Reason::Changed);
        let errors = d.draft.unwrap().errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].status, ErrorStatus::Resolved);
        assert_eq!(errors[0].key(), key("n1", AV));
        assert_eq!(errors[0].resolved_at, Some(t(T1)));
        assert_eq!(errors[0].node.comment.as_deref(), Some("dmz"));
    }

    #[test]
    fn change_seed_differs_with_the_diff_and_digest_seed_names_the_local_date() {
        let c = cfg(r#"default_timezone = "Asia/Kathmandu""#);
        let mut a = ClusterState::new("c1");
        a.record(&ev("n1", AV, R, T0), t(T0));
        let mut b = ClusterState::new("c1");
        b.record(&ev("n1", DISK, R, T0), t(T0));
        let (da, db) = (
            a.decide(t(T0), &c).draft.unwrap(),
            b.decide(t(T0), &c).draft.unwrap(),
        );
        assert_ne!(da.id_seed, db.id_seed);
        a.mark_sent(&da, t(T0));
        // 00:00 in Kathmandu on 2025-06-11 is 18:15 UTC on the 10th.
        let d = a.decide(t("2025-06-10T18:15:00Z"), &c);
        assert_eq!(d.reason, Reason::Digest);
        assert_eq!(d.draft.unwrap().id_seed, "digest:c1:2025-06-11");
    }
}
