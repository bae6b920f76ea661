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

use super::intern::{attrs_eq, Attrs, Interner, Sym};
use super::zone::{digest_after, latest_digest};
use super::AggregateError;
use crate::config::ApplicationConfig;
use crate::event::time::{self, Timestamp};
use crate::event::{ApplicationEvent, ErrorGroup, ErrorKind, ErrorState};
use chrono::{NaiveDate, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
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

/// An error as last known: what a notification lists (a copy made by [`ClusterState::active`];
/// the state itself holds errors in a compact form).
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
    /// Extra values (`bases_issue_date`, `free_bytes`…), sorted by name.
    #[serde(default, with = "attr_map", skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

/// A node's address as given: parsed when the text is the canonical form of an IP address (17
/// bytes in place instead of an allocation per error), else the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Ip(IpAddr),
    Text(Sym),
}

impl Addr {
    /// Placeholder of a resolved key without details (never shown, never stored).
    const NONE: Addr = Addr::Ip(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));

    /// `s` as an address; text equal to one already held by `siblings` is shared.
    fn new<'a>(s: &str, mut siblings: impl Iterator<Item = &'a Addr>) -> Addr {
        if let Ok(ip) = s.parse::<IpAddr>() {
            let canonical = match ip {
                // The parser takes dotted decimal without leading zeros only: the canonical form.
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => FmtBuf::of(&v6).as_str() == s,
            };
            if canonical {
                return Addr::Ip(ip);
            }
        }
        match siblings.find(|a| matches!(a, Addr::Text(t) if **t == *s)) {
            Some(shared) => shared.clone(),
            None => Addr::Text(Sym::from(s)),
        }
    }

    /// Whether this is exactly the text `s`.
    fn is(&self, s: &str) -> bool {
        match self {
            Addr::Ip(IpAddr::V4(v4)) => s.parse::<std::net::Ipv4Addr>().ok() == Some(*v4),
            Addr::Ip(IpAddr::V6(v6)) => FmtBuf::of(v6).as_str() == s,
            Addr::Text(t) => **t == *s,
        }
    }
}

impl Addr {
    /// The address as text, in one allocation of the exact size.
    fn text(&self) -> String {
        match self {
            Addr::Ip(ip) => FmtBuf::of(ip).as_str().to_string(),
            Addr::Text(t) => t.to_string(),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Ip(ip) => ip.fmt(f),
            Addr::Text(t) => f.write_str(t),
        }
    }
}

/// An address formatted on the stack (at most 45 bytes), to compare or copy without a growing
/// buffer.
struct FmtBuf {
    buf: [u8; 48],
    len: usize,
}

impl FmtBuf {
    fn of(v: &impl std::fmt::Display) -> FmtBuf {
        let mut b = FmtBuf {
            buf: [0; 48],
            len: 0,
        };
        // An overflow (impossible for an address) leaves a truncated text that compares unequal.
        let _ = write!(b, "{v}");
        b
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// One key of a cluster, active or resolved, in one flat record (no per-error allocation:
/// texts are shared [`Sym`]s, addresses parsed in place).
///
/// - `notified`: the last notification showed it as active, so `last_notified` of DESIGN §3.1
///   is the set of notified slots, without a second copy of the keys.
/// - Details (`group` … `attrs`) describe the error as last raised. They are meaningful while
///   it is active, and after its resolution while `kept` (a notification may still have to show
///   the resolution); otherwise they are cleared.
#[derive(Debug, Clone)]
struct Slot {
    node_id: Sym,
    kind: ErrorKind,
    group: ErrorGroup,
    notified: bool,
    active: bool,
    kept: bool,
    port: u16,
    /// `occurred_at` of the RAISED that made the error active.
    first_seen: Timestamp,
    /// `occurred_at` of the newest RAISED; also the key's last change while active.
    last_occurrence: Timestamp,
    /// The key's last change while resolved.
    resolved_at: Timestamp,
    last_sync: Option<Timestamp>,
    addr: Addr,
    comment: Option<Sym>,
    message: Option<Sym>,
    attrs: Attrs,
}

impl PartialEq for Slot {
    fn eq(&self, o: &Self) -> bool {
        let same_details = || {
            (
                self.group,
                self.port,
                self.first_seen,
                self.last_occurrence,
                self.last_sync,
                &self.addr,
                &self.comment,
                &self.message,
                &self.attrs,
            ) == (
                o.group,
                o.port,
                o.first_seen,
                o.last_occurrence,
                o.last_sync,
                &o.addr,
                &o.comment,
                &o.message,
                &o.attrs,
            )
        };
        self.node_id == o.node_id
            && self.kind == o.kind
            && self.notified == o.notified
            && self.active == o.active
            && (self.active || (self.resolved_at == o.resolved_at && self.kept == o.kept))
            && (!(self.active || self.kept) || same_details())
    }
}

impl Eq for Slot {}

impl Slot {
    /// A resolved key without details (a RESOLVED of an absent error).
    fn tombstone(node_id: Sym, kind: ErrorKind, at: Timestamp) -> Slot {
        Slot {
            node_id,
            kind,
            group: ErrorGroup::Unknown,
            notified: false,
            active: false,
            kept: false,
            port: 0,
            first_seen: at,
            last_occurrence: at,
            resolved_at: at,
            last_sync: None,
            addr: Addr::NONE,
            comment: None,
            message: None,
            attrs: None,
        }
    }

    /// Takes the details of a RAISED (the caller keeps or sets `first_seen`). Texts equal to the
    /// held ones are kept: a re-occurrence, the most common event, allocates nothing.
    fn take_details<'a>(
        &mut self,
        ev: &ApplicationEvent,
        interner: &mut Interner,
        siblings: impl Iterator<Item = &'a Addr>,
    ) {
        self.group = ev.group;
        self.port = ev.node.port;
        self.last_occurrence = ev.occurred_at;
        self.last_sync = ev.last_successful_sync_at;
        if !self.addr.is(&ev.node.ip) {
            self.addr = Addr::new(&ev.node.ip, siblings);
        }
        if self.comment.as_deref() != ev.node.comment.as_deref() {
            self.comment = ev.node.comment.as_deref().map(|c| interner.str(c));
        }
        if self.message.as_deref() != ev.message.as_deref() {
            self.message = ev.message.as_deref().map(|m| interner.str(m));
        }
        if !attrs_eq(&self.attrs, &ev.attributes) {
            self.attrs = interner.attrs(&ev.attributes);
        }
    }

    /// Clears the details of a resolved key nobody needs to be shown any more.
    fn forget_details(&mut self) {
        self.kept = false;
        self.group = ErrorGroup::Unknown;
        self.port = 0;
        self.first_seen = self.resolved_at;
        self.last_occurrence = self.resolved_at;
        self.last_sync = None;
        self.addr = Addr::NONE;
        self.comment = None;
        self.message = None;
        self.attrs = None;
    }

    /// New or resolved relative to the last notification.
    fn in_diff(&self) -> bool {
        self.active != self.notified
    }

    /// The key's last change: events ordered before it are stale.
    fn last_change(&self) -> Timestamp {
        if self.active {
            self.last_occurrence
        } else {
            self.resolved_at
        }
    }

    fn key(&self) -> ErrorKey {
        ErrorKey {
            node_id: self.node_id.to_string(),
            kind: self.kind,
        }
    }

    fn details(&self) -> ActiveError {
        ActiveError {
            group: self.group,
            node: NodeInfo {
                ip: self.addr.text(),
                port: self.port,
                comment: self.comment.as_deref().map(str::to_string),
            },
            first_seen: self.first_seen,
            last_occurrence: self.last_occurrence,
            last_successful_sync: self.last_sync,
            message: self.message.as_deref().map(str::to_string),
            attributes: self
                .attrs
                .iter()
                .flat_map(|a| a.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Shares this slot's texts through `interner` (a state decoded from the changelog holds
    /// its own copies).
    fn share_texts(&mut self, interner: &mut Interner) {
        self.node_id = interner.share(&self.node_id);
        self.comment = self.comment.as_ref().map(|c| interner.share(c));
        self.message = self.message.as_ref().map(|m| interner.share(m));
        self.attrs = interner.share_attrs(&self.attrs);
    }
}

/// The whole per-cluster state of DESIGN §3.1; what the changelog stores (as JSON, via
/// [`ClusterState::to_json`] / [`ClusterState::from_json`]; the format is in [`wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    cluster_id: Sym,
    /// Every key seen, sorted by key: the active errors, the resolved ones (tombstones) and
    /// which of them the last notification showed. A vector: a cluster has a handful of keys,
    /// and a `BTreeMap` node would cost kilobytes per cluster.
    slots: Vec<Slot>,
    /// When the relay accepted the last notification (change or digest).
    last_sent_at: Option<Timestamp>,
    /// The latest local date whose digest is settled: sent, or given up past `catch_up`.
    last_digest_date: Option<NaiveDate>,
    /// Newest valid `control_timezone` seen in events.
    event_zone: Option<Tz>,
    /// `occurred_at` of the event that set `event_zone` (an older event does not override it).
    event_zone_as_of: Option<Timestamp>,
    /// Since when the diff against `last_notified` is non-empty (only for the reason label:
    /// sent at once vs. held back by the throttle).
    pending_since: Option<Timestamp>,
    /// Id seed of the draft handed out and not yet marked sent. Not persisted: after a restore
    /// the notification is decided again, with the same seed.
    in_flight: Option<Box<str>>,
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
    pub fn new(cluster_id: impl AsRef<str>) -> Self {
        Self::with_id(Sym::from(cluster_id.as_ref()))
    }

    /// An empty state for a cluster whose id is already shared.
    pub(crate) fn with_id(cluster_id: Sym) -> Self {
        ClusterState {
            cluster_id,
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

    /// The cluster id as held (shared with the aggregator's index).
    pub(crate) fn cluster_sym(&self) -> &Sym {
        &self.cluster_id
    }

    /// Active errors, sorted by key (copies: the state holds them in a compact form).
    pub fn active(&self) -> impl Iterator<Item = (ErrorKey, ActiveError)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.active)
            .map(|s| (s.key(), s.details()))
    }

    /// Number of active errors.
    pub fn active_len(&self) -> usize {
        self.slots.iter().filter(|s| s.active).count()
    }

    /// Keys the last notification showed as active, sorted.
    pub fn last_notified(&self) -> impl Iterator<Item = ErrorKey> + '_ {
        self.slots.iter().filter(|s| s.notified).map(Slot::key)
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
            .or_else(|| cfg.clusters.get(&*self.cluster_id).map(|c| c.timezone))
            .unwrap_or(cfg.default_timezone)
    }

    /// Applies one event (DESIGN §3.1). `now` is the processing time (it dates a pending change,
    /// for the reason label only); the event's own `occurred_at` orders it.
    pub fn record(&mut self, ev: &ApplicationEvent, now: Timestamp) -> RecordOutcome {
        self.record_in(ev, now, &mut Interner::disabled())
    }

    /// [`ClusterState::record`] sharing the event's texts through `interner`.
    pub(crate) fn record_in(
        &mut self,
        ev: &ApplicationEvent,
        now: Timestamp,
        interner: &mut Interner,
    ) -> RecordOutcome {
        let zone = self.note_zone(ev);
        let effect = self.apply(ev, interner);
        // A re-occurrence changes neither the set of active errors nor what was notified.
        if matches!(effect, RecordEffect::Raised | RecordEffect::Resolved) {
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
        // The zone in force is usually named again: no need to look the name up.
        let tz = match self.event_zone {
            Some(tz) if tz.name() == name => Ok(tz),
            _ => Tz::from_str(name),
        };
        let Ok(tz) = tz else {
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

    fn apply(&mut self, ev: &ApplicationEvent, interner: &mut Interner) -> RecordEffect {
        if ev.state == ErrorState::Unknown {
            return RecordEffect::UnknownState;
        }
        let at = ev.occurred_at;
        let raise = ev.state == ErrorState::Raised;
        let found = self
            .slots
            .binary_search_by(|s| (&*s.node_id, s.kind).cmp(&(ev.node.node_id.as_str(), ev.kind)));
        let i = match found {
            Ok(i) => i,
            Err(i) => {
                let mut slot = Slot::tombstone(interner.str(&ev.node.node_id), ev.kind, at);
                if raise {
                    slot.active = true;
                    slot.take_details(ev, interner, self.slots.iter().map(|s| &s.addr));
                }
                // Grow by one: a cluster has few keys, a doubled capacity would waste more
                // than the occasional reallocation costs.
                self.slots.reserve_exact(1);
                self.slots.insert(i, slot);
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
        let (before, rest) = self.slots.split_at_mut(i);
        let Some((slot, after)) = rest.split_first_mut() else {
            unreachable!("index found by the search")
        };
        let siblings = before.iter().chain(after.iter()).map(|s| &s.addr);
        let last = slot.last_change();
        match (slot.active, raise) {
            (true, _) if at < last => RecordEffect::Stale,
            (true, true) if at == last => RecordEffect::Duplicate,
            (true, true) => {
                slot.take_details(ev, interner, siblings);
                RecordEffect::Reoccurred
            }
            (true, false) => {
                slot.active = false;
                slot.resolved_at = at;
                slot.kept = slot.notified || keep_details;
                if !slot.kept {
                    slot.forget_details();
                }
                RecordEffect::Resolved
            }
            // Resolution wins ties: a RAISED at the same instant as the RESOLVED is stale.
            (false, true) if at <= last => RecordEffect::Stale,
            (false, true) => {
                slot.active = true;
                slot.kept = false;
                slot.first_seen = at;
                slot.take_details(ev, interner, siblings);
                RecordEffect::Raised
            }
            (false, false) if at < last => RecordEffect::Stale,
            (false, false) if at == last => RecordEffect::Duplicate,
            (false, false) => {
                slot.resolved_at = at;
                if !slot.kept {
                    slot.forget_details();
                }
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
        self.in_flight = Some(draft.id_seed.as_str().into());
        Decision {
            reason,
            draft: Some(draft),
        }
    }

    fn digest_status(&self, tz: Tz, now: Timestamp, cfg: &ApplicationConfig) -> DigestStatus {
        if self.active_len() == 0 {
            return DigestStatus::NotDue;
        }
        self.digest_status_at(latest_digest(tz, now), now, cfg)
    }

    /// [`Self::digest_status`] given the zone's latest digest at `now`.
    fn digest_status_at(
        &self,
        latest: Option<(NaiveDate, Timestamp)>,
        now: Timestamp,
        cfg: &ApplicationConfig,
    ) -> DigestStatus {
        let Some((date, instant)) = latest else {
            return DigestStatus::NotDue;
        };
        if self.last_digest_date.is_some_and(|d| d >= date)
            || !self
                .slots
                .iter()
                .any(|s| s.active && s.first_seen <= instant)
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
            let latest = latest_digest(tz, now);
            match self.digest_status_at(latest, now, cfg) {
                DigestStatus::Due { .. } => Some(now),
                DigestStatus::Missed { .. } | DigestStatus::NotDue => {
                    let latest = latest
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
        if *draft.cluster_id != *self.cluster_id
            || self.in_flight.as_deref() != Some(draft.id_seed.as_str())
        {
            return MarkOutcome::NotInFlight;
        }
        self.in_flight = None;
        for slot in self.slots.iter_mut() {
            slot.notified = draft.errors.iter().any(|e| {
                e.status != ErrorStatus::Resolved
                    && e.kind == slot.kind
                    && *e.node_id == *slot.node_id
            });
            // A resolution's details are only needed until a notification has shown it.
            if !slot.active && !slot.notified && slot.kept {
                slot.forget_details();
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
            let (status, resolved_at) = match (slot.active, slot.notified) {
                (true, false) => (ErrorStatus::New, None),
                (true, true) => (ErrorStatus::StillActive, None),
                // Invariant: a notified resolved slot keeps its details (kept on RESOLVED while
                // notified or a draft was out; dropped only by a mark that no longer shows it).
                (false, true) if slot.kept => (ErrorStatus::Resolved, Some(slot.resolved_at)),
                (false, _) => continue,
            };
            errors.push(draft_error(status, slot, resolved_at));
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
            cluster_id: self.cluster_id.to_string(),
            zone,
            at: now,
            errors,
            id_seed,
        }
    }

    /// The state as compact JSON, for the changelog.
    pub fn to_json(&self) -> Result<Vec<u8>, AggregateError> {
        // Most states of 5 errors take 1-2 KB: one allocation instead of a growing buffer.
        let mut out = Vec::with_capacity(256 + 320 * self.slots.len());
        serde_json::to_writer(&mut out, self).map_err(AggregateError::Encode)?;
        Ok(out)
    }

    /// A state read back from the changelog.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AggregateError> {
        Self::from_json_in(bytes, &mut Interner::disabled())
    }

    /// [`ClusterState::from_json`] sharing the state's texts through `interner`.
    pub(crate) fn from_json_in(
        bytes: &[u8],
        interner: &mut Interner,
    ) -> Result<Self, AggregateError> {
        let w: wire::StateIn = serde_json::from_slice(bytes).map_err(AggregateError::Decode)?;
        Ok(ClusterState::from_wire(w, interner))
    }

    /// Shares the state's texts through `interner` (a state decoded on its own holds its own
    /// copies).
    pub(crate) fn share_texts(&mut self, interner: &mut Interner) {
        for slot in &mut self.slots {
            slot.share_texts(interner);
        }
    }
}

enum DigestStatus {
    NotDue,
    Due { date: NaiveDate, instant: Timestamp },
    Missed { date: NaiveDate },
}

fn draft_error(status: ErrorStatus, s: &Slot, resolved_at: Option<Timestamp>) -> DraftError {
    DraftError {
        status,
        group: s.group,
        kind: s.kind,
        node_id: s.node_id.to_string(),
        node: NodeInfo {
            ip: s.addr.text(),
            port: s.port,
            comment: s.comment.as_deref().map(str::to_string),
        },
        first_seen: s.first_seen,
        last_occurrence: s.last_occurrence,
        last_successful_sync: s.last_sync,
        message: s.message.as_deref().map(str::to_string),
        attributes: s
            .attrs
            .iter()
            .flat_map(|a| a.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in &h.finalize()[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

fn delta(d: std::time::Duration) -> TimeDelta {
    // Config durations are validated positive; an absurd one saturates rather than panics.
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Serialize for ClusterState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::StateOut::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClusterState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = wire::StateIn::deserialize(d)?;
        Ok(ClusterState::from_wire(w, &mut Interner::disabled()))
    }
}

impl ClusterState {
    fn from_wire(w: wire::StateIn<'_>, interner: &mut Interner) -> ClusterState {
        let mut slots: Vec<Slot> = Vec::with_capacity(w.slots.len());
        for s in w.slots {
            let node_id = interner.str(&s.key.0);
            let mut slot = Slot::tombstone(node_id, s.key.1, Timestamp::default());
            slot.notified = s.notified;
            let details = match s.state {
                wire::SlotStateIn::Active(e) => {
                    slot.active = true;
                    Some(e)
                }
                wire::SlotStateIn::Resolved(t) => {
                    slot.resolved_at = t.resolved_at;
                    slot.first_seen = t.resolved_at;
                    slot.last_occurrence = t.resolved_at;
                    slot.kept = t.last.is_some();
                    t.last
                }
            };
            if let Some(e) = details {
                slot.group = e.group;
                slot.port = e.node.port;
                slot.first_seen = e.first_seen;
                slot.last_occurrence = e.last_occurrence;
                slot.last_sync = e.last_successful_sync;
                slot.addr = Addr::new(&e.node.ip, slots.iter().map(|s| &s.addr));
                slot.comment = e.node.comment.as_deref().map(|c| interner.str(c));
                slot.message = e.message.as_deref().map(|m| interner.str(m));
                slot.attrs = interner.attrs(&e.attributes);
            }
            slots.push(slot);
        }
        // Written sorted; a hand-edited or foreign record might not be.
        slots.sort_by(|a, b| (&*a.node_id, a.kind).cmp(&(&*b.node_id, b.kind)));
        slots.dedup_by(|a, b| a.node_id == b.node_id && a.kind == b.kind);
        ClusterState {
            cluster_id: Sym::from(&*w.cluster_id),
            slots,
            last_sent_at: w.last_sent_at,
            last_digest_date: w.last_digest_date,
            event_zone: w.event_zone,
            event_zone_as_of: w.event_zone_as_of,
            pending_since: w.pending_since,
            in_flight: None,
        }
    }
}

/// The changelog format of a [`ClusterState`] (unchanged since the first release, so states
/// written by any build read back): a JSON object with `cluster_id`, `slots` (each `key`
/// `[node_id, kind]`, `notified`, `state` = `{"active": error}` or `{"resolved": {"at",
/// "was"?}}`), `last_sent_at`, `last_digest_date`, `event_zone`, `event_zone_as_of`,
/// `pending_since`. Times are epoch milliseconds; absent fields are omitted.
///
/// Written from borrowed views of the compact state (no copy), read into borrowed text where
/// the JSON has no escapes, then shared through the aggregator's interner.
mod wire {
    use super::{time, tz_name, Addr, ClusterState, Slot, Sym, Timestamp};
    use crate::event::{ErrorGroup, ErrorKind};
    use chrono::NaiveDate;
    use chrono_tz::Tz;
    use serde::{Deserialize, Serialize, Serializer};
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    pub struct StateOut<'a> {
        cluster_id: &'a str,
        #[serde(skip_serializing_if = "slots_empty", serialize_with = "slots_out")]
        slots: &'a [Slot],
        #[serde(with = "time::optional", skip_serializing_if = "Option::is_none")]
        last_sent_at: Option<Timestamp>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_digest_date: Option<NaiveDate>,
        #[serde(with = "tz_name", skip_serializing_if = "Option::is_none")]
        event_zone: Option<Tz>,
        #[serde(with = "time::optional", skip_serializing_if = "Option::is_none")]
        event_zone_as_of: Option<Timestamp>,
        #[serde(with = "time::optional", skip_serializing_if = "Option::is_none")]
        pending_since: Option<Timestamp>,
    }

    impl<'a> From<&'a ClusterState> for StateOut<'a> {
        fn from(s: &'a ClusterState) -> Self {
            StateOut {
                cluster_id: &s.cluster_id,
                slots: &s.slots,
                last_sent_at: s.last_sent_at,
                last_digest_date: s.last_digest_date,
                event_zone: s.event_zone,
                event_zone_as_of: s.event_zone_as_of,
                pending_since: s.pending_since,
            }
        }
    }

    fn slots_empty(s: &&[Slot]) -> bool {
        s.is_empty()
    }

    fn slots_out<S: Serializer>(slots: &&[Slot], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(slots.iter().map(SlotOut::from))
    }

    #[derive(Serialize)]
    struct SlotOut<'a> {
        key: (&'a str, ErrorKind),
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        notified: bool,
        state: SlotStateOut<'a>,
    }

    impl<'a> From<&'a Slot> for SlotOut<'a> {
        fn from(s: &'a Slot) -> Self {
            let details = || ErrorOut {
                group: s.group,
                node: NodeOut {
                    ip: &s.addr,
                    port: s.port,
                    comment: s.comment.as_deref(),
                },
                first_seen: s.first_seen,
                last_occurrence: s.last_occurrence,
                last_successful_sync: s.last_sync,
                message: s.message.as_deref(),
                attributes: s.attrs.as_deref(),
            };
            SlotOut {
                key: (&s.node_id, s.kind),
                notified: s.notified,
                state: if s.active {
                    SlotStateOut::Active(details())
                } else {
                    SlotStateOut::Resolved(TombOut {
                        resolved_at: s.resolved_at,
                        last: s.kept.then(details),
                    })
                },
            }
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum SlotStateOut<'a> {
        Active(ErrorOut<'a>),
        Resolved(TombOut<'a>),
    }

    #[derive(Serialize)]
    struct TombOut<'a> {
        #[serde(rename = "at", with = "time::required")]
        resolved_at: Timestamp,
        #[serde(rename = "was", skip_serializing_if = "Option::is_none")]
        last: Option<ErrorOut<'a>>,
    }

    #[derive(Serialize)]
    struct ErrorOut<'a> {
        group: ErrorGroup,
        node: NodeOut<'a>,
        #[serde(with = "time::required")]
        first_seen: Timestamp,
        #[serde(with = "time::required")]
        last_occurrence: Timestamp,
        #[serde(with = "time::optional", skip_serializing_if = "Option::is_none")]
        last_successful_sync: Option<Timestamp>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none", serialize_with = "attrs_out")]
        attributes: Option<&'a [(Sym, Sym)]>,
    }

    fn attrs_out<S: Serializer>(a: &Option<&[(Sym, Sym)]>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(a.iter().flat_map(|a| a.iter()).map(|(k, v)| (&**k, &**v)))
    }

    #[derive(Serialize)]
    struct NodeOut<'a> {
        #[serde(serialize_with = "addr_out")]
        ip: &'a Addr,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
    }

    fn addr_out<S: Serializer>(a: &&Addr, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Addr::Text(t) => s.serialize_str(t),
            Addr::Ip(ip) => s.collect_str(ip),
        }
    }

    #[derive(Deserialize)]
    pub struct StateIn<'a> {
        #[serde(borrow)]
        pub cluster_id: Cow<'a, str>,
        #[serde(default, borrow)]
        pub slots: Vec<SlotIn<'a>>,
        #[serde(default, with = "time::optional")]
        pub last_sent_at: Option<Timestamp>,
        #[serde(default)]
        pub last_digest_date: Option<NaiveDate>,
        #[serde(default, with = "tz_name")]
        pub event_zone: Option<Tz>,
        #[serde(default, with = "time::optional")]
        pub event_zone_as_of: Option<Timestamp>,
        #[serde(default, with = "time::optional")]
        pub pending_since: Option<Timestamp>,
    }

    #[derive(Deserialize)]
    pub struct SlotIn<'a> {
        #[serde(borrow)]
        pub key: (Cow<'a, str>, ErrorKind),
        #[serde(default)]
        pub notified: bool,
        #[serde(borrow)]
        pub state: SlotStateIn<'a>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SlotStateIn<'a> {
        Active(#[serde(borrow)] ErrorIn<'a>),
        Resolved(#[serde(borrow)] TombIn<'a>),
    }

    #[derive(Deserialize)]
    pub struct TombIn<'a> {
        #[serde(rename = "at", with = "time::required")]
        pub resolved_at: Timestamp,
        #[serde(rename = "was", default, borrow)]
        pub last: Option<ErrorIn<'a>>,
    }

    #[derive(Deserialize)]
    pub struct ErrorIn<'a> {
        pub group: ErrorGroup,
        #[serde(borrow)]
        pub node: NodeIn<'a>,
        #[serde(with = "time::required")]
        pub first_seen: Timestamp,
        #[serde(with = "time::required")]
        pub last_occurrence: Timestamp,
        #[serde(default, with = "time::optional")]
        pub last_successful_sync: Option<Timestamp>,
        #[serde(default, borrow)]
        pub message: Option<Cow<'a, str>>,
        #[serde(default)]
        pub attributes: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    pub struct NodeIn<'a> {
        #[serde(borrow)]
        pub ip: Cow<'a, str>,
        pub port: u16,
        #[serde(default, borrow)]
        pub comment: Option<Cow<'a, str>>,
    }
}

/// Serde for attributes: a JSON object, a sorted vector in memory.
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
    fn a_state_in_the_first_release_format_reads_back_and_writes_the_same_bytes() {
        // Written by the build before the compact in-memory form: a notified resolution with
        // its details, an active error on an IPv6 node, one on a node named by host name, and
        // a bare tombstone.
        let old = concat!(
            r#"{"cluster_id":"c1","slots":["#,
            r#"{"key":["n1","AV_BASES_OUTDATED"],"notified":true,"state":{"resolved":{"at":1749549660000,"#,
            r#""was":{"group":"PROTECTION","node":{"ip":"10.0.0.1","port":9045,"comment":"dmz"},"#,
            r#""first_seen":1749549600000,"last_occurrence":1749549600000,"#,
            r#""last_successful_sync":1749549600000,"message":"m","attributes":{"outdated_days":"3"}}}}},"#,
            r#"{"key":["n2","DISK_SPACE_LOW"],"state":{"active":{"group":"SYSTEM","#,
            r#""node":{"ip":"fe80::1","port":1},"first_seen":1749549660000,"last_occurrence":1749549660000}}},"#,
            r#"{"key":["n3","DISK_SPACE_LOW"],"state":{"active":{"group":"SYSTEM","#,
            r#""node":{"ip":"gw-3.example","port":1},"first_seen":1749549660000,"last_occurrence":1749549660000}}},"#,
            r#"{"key":["n4","DISK_SPACE_LOW"],"state":{"resolved":{"at":1749549660000}}}],"#,
            r#""last_sent_at":1749549600000,"last_digest_date":"2025-06-10","event_zone":"Asia/Kathmandu","#,
            r#""event_zone_as_of":1749549600000,"pending_since":1749549660000}"#
        );
        let s = ClusterState::from_json(old.as_bytes()).unwrap();
        assert_eq!(s.active_len(), 2);
        assert_eq!(s.last_notified().collect::<Vec<_>>(), vec![key("n1", AV)]);
        let ips: Vec<String> = s.active().map(|(_, e)| e.node.ip).collect();
        assert_eq!(ips, ["fe80::1", "gw-3.example"]);
        assert_eq!(String::from_utf8(s.to_json().unwrap()).unwrap(), old);
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
