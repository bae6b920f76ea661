//! Bounce ("system") notifications (DESIGN §3.2): the pure router that decides, for each
//! [`BounceEvent`], whether the administrators get a notice.
//!
//! [`BounceRouter::route`] checks, in this order: bounce notices enabled; the class enabled
//! (`[bounce] classes`, as Postfix's `notify_classes`); loop protection; the burst limit. Each
//! refusal says why ([`BounceSuppression`]), so the wiring can log and count it.
//!
//! **Loop protection.** A bounce of one of our own notifications must not produce a notice (that
//! notice could bounce in turn). Ours is recognised by any of: our notification header
//! ([`NOTIFICATION_HEADER`]) in the original's header block; `Auto-Submitted: auto-generated`
//! together with a `From` that is one of our addresses; the original's envelope sender (or its
//! `Return-Path`) being our envelope sender or our `From` address; and, for a `DOUBLE_BOUNCE`, a
//! failed recipient that is one of our addresses (the bounce of our notification was on its way
//! back to us). Addresses compare as [`address_key`]s. Anyone can put our header into their own
//! mail and so silence notices about *its* bounces; that costs them nothing and us nothing.
//!
//! **Burst limit.** Windows are aligned to the first notice-eligible bounce: a window opens at
//! the `now` of the first bounce that passes the checks above while no window is open, and lasts
//! `burst.window`; a bounce at exactly its end opens the next one. The first `burst.max` bounces
//! of a window are notified; the rest are collected ([`BounceDecision::Collected`]) into one
//! [`BurstSummary`], which [`BounceRouter::flush`] returns once the window has closed
//! ([`BounceRouter::next_deadline`] says when to call it). Aligning to the first bounce rather
//! than to the wall clock means a storm that starts at 12:00:59 is not split into two windows of
//! `max` notices each. A clock that steps back keeps the current window open. The limit is per
//! router, i.e. per instance.
//!
//! Records of collected bounces are only "done" (DESIGN §4) once their summary is delivered; the
//! wiring keeps their offsets uncommitted until then, or accepts losing the summary on a crash.

pub mod metrics;
#[cfg(test)]
mod tests;

pub use metrics::BounceMetrics;

use crate::config::{address_key, Config, RecipientGroup};
use crate::event::time::Timestamp;
use crate::event::{BounceClass, BounceEvent};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

/// The header every notification of ours carries (with `[unique_id] header = true`).
pub const NOTIFICATION_HEADER: &str = "X-Mailgate-Notification-ID";

/// Template of the burst summary.
pub const SUMMARY_TEMPLATE: &str = "bounce/burst-summary";

/// How many collected bounces the summary lists one by one (the rest only counted).
pub const SUMMARY_SAMPLE: usize = 20;

/// The template of a bounce notice of `class`: `bounce/resource`, `bounce/software`…
pub fn template_for(class: BounceClass) -> String {
    format!("bounce/{}", class.as_str().to_ascii_lowercase())
}

/// What to do with one bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceDecision {
    /// Send a notice now.
    Notify(BounceNotice),
    /// The window's limit is reached: the bounce is counted in the summary sent when the window
    /// closes.
    Collected {
        /// When the window closes (call [`BounceRouter::flush`] then).
        window_closes_at: Timestamp,
    },
    /// No notice, ever.
    Suppressed(BounceSuppression),
}

impl BounceDecision {
    /// Label of the outcome: `notify`, `burst`, or the suppression reason.
    pub fn reason(&self) -> &'static str {
        match self {
            BounceDecision::Notify(_) => "notify",
            BounceDecision::Collected { .. } => "burst",
            BounceDecision::Suppressed(s) => s.as_str(),
        }
    }
}

/// Why a bounce gets no notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BounceSuppression {
    /// `[bounce] enabled = false`.
    Disabled,
    /// The class is not in `[bounce] classes`.
    ClassDisabled,
    /// A bounce of one of our own notifications (or a double bounce of one).
    Loop(LoopEvidence),
}

impl BounceSuppression {
    /// The label values, for pre-creating metrics.
    pub const LABELS: [&'static str; 3] = ["disabled", "class_disabled", "loop"];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceSuppression::Disabled => "disabled",
            BounceSuppression::ClassDisabled => "class_disabled",
            BounceSuppression::Loop(_) => "loop",
        }
    }
}

/// How a bounce was recognised as one of our own notifications (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopEvidence {
    /// [`NOTIFICATION_HEADER`] in the original's header block.
    NotificationHeader,
    /// `Auto-Submitted: auto-generated` with a `From` of ours.
    AutoSubmittedFromUs,
    /// The original's envelope sender or `Return-Path` is one of our addresses.
    OwnSender,
    /// A `DOUBLE_BOUNCE` whose failed recipient is one of our addresses.
    DoubleBounceToUs,
}

impl LoopEvidence {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LoopEvidence::NotificationHeader => "notification_header",
            LoopEvidence::AutoSubmittedFromUs => "auto_submitted_from_us",
            LoopEvidence::OwnSender => "own_sender",
            LoopEvidence::DoubleBounceToUs => "double_bounce_to_us",
        }
    }
}

/// A notice to send about one bounce; rendered with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceNotice {
    /// [`template_for`] the bounce's class.
    pub template: String,
    /// The `[bounce] recipients` groups, each with its language (shared, not copied per bounce).
    pub recipients: Arc<[RecipientGroup]>,
}

/// One collected bounce, as the summary lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedBounce {
    /// The bounce event's id.
    pub event_id: String,
    /// Gateway cluster.
    pub cluster_id: String,
    /// MTA queue id.
    pub queue_id: String,
    /// Notice class.
    pub class: BounceClass,
    /// The MTA's reason, if any.
    pub reason: Option<String>,
    /// When the notice was produced.
    pub occurred_at: Timestamp,
}

/// The one notice that replaces the bounces collected in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstSummary {
    /// [`SUMMARY_TEMPLATE`].
    pub template: String,
    /// The `[bounce] recipients` groups.
    pub recipients: Arc<[RecipientGroup]>,
    /// Start of the window (the first notified bounce's `now`).
    pub window_start: Timestamp,
    /// End of the window (exclusive).
    pub window_end: Timestamp,
    /// Notices sent in the window (`burst.max`).
    pub notified: u32,
    /// Bounces collected (not notified one by one).
    pub total: u64,
    /// Collected bounces per class, in class order; sums to `total`.
    pub by_class: Vec<(BounceClass, u64)>,
    /// The first [`SUMMARY_SAMPLE`] collected bounces, in arrival order.
    pub first: Vec<CollectedBounce>,
}

/// The open burst window.
#[derive(Debug, Clone)]
struct Window {
    start: Timestamp,
    end: Timestamp,
    notified: u32,
    total: u64,
    by_class: BTreeMap<BounceClass, u64>,
    first: Vec<CollectedBounce>,
}

/// The bounce router: built from the config, then fed every bounce event in order.
#[derive(Debug, Clone)]
pub struct BounceRouter {
    enabled: bool,
    classes: Vec<BounceClass>,
    recipients: Arc<[RecipientGroup]>,
    own: HashSet<String>,
    window: TimeDelta,
    max: u32,
    current: Option<Window>,
    /// Summaries of closed windows not yet flushed (more than one only if the wiring fell
    /// behind on `flush`).
    pending: VecDeque<BurstSummary>,
}

impl BounceRouter {
    /// The router for a validated config.
    pub fn new(config: &Config) -> Self {
        let b = &config.bounce;
        BounceRouter {
            enabled: b.enabled,
            classes: b.classes.clone(),
            recipients: b.recipients.iter().cloned().collect(),
            own: config.sender.own_addresses().into_iter().collect(),
            // A window too long for chrono is, in effect, forever.
            window: TimeDelta::from_std(b.burst.window).unwrap_or(TimeDelta::MAX),
            max: b.burst.max,
            current: None,
            pending: VecDeque::new(),
        }
    }

    /// Decides about one bounce at `now` (the wiring's clock, not the event's time, so that a
    /// replayed backlog is still rate-limited).
    pub fn route(&mut self, event: &BounceEvent, now: Timestamp) -> BounceDecision {
        if !self.enabled {
            return BounceDecision::Suppressed(BounceSuppression::Disabled);
        }
        if !self.classes.contains(&event.class) {
            return BounceDecision::Suppressed(BounceSuppression::ClassDisabled);
        }
        if let Some(evidence) = self.loop_evidence(event) {
            return BounceDecision::Suppressed(BounceSuppression::Loop(evidence));
        }
        self.close_if_due(now);
        let span = self.window;
        let w = self.current.get_or_insert_with(|| Window {
            start: now,
            end: now
                .checked_add_signed(span)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            notified: 0,
            total: 0,
            by_class: BTreeMap::new(),
            first: Vec::new(),
        });
        if w.notified < self.max {
            w.notified += 1;
            return BounceDecision::Notify(BounceNotice {
                template: template_for(event.class),
                recipients: self.recipients.clone(),
            });
        }
        w.total += 1;
        *w.by_class.entry(event.class).or_default() += 1;
        if w.first.len() < SUMMARY_SAMPLE {
            w.first.push(CollectedBounce {
                event_id: event.event_id.clone(),
                cluster_id: event.cluster_id.clone(),
                queue_id: event.queue_id.clone(),
                class: event.class,
                reason: event.reason.clone(),
                occurred_at: event.occurred_at,
            });
        }
        BounceDecision::Collected {
            window_closes_at: w.end,
        }
    }

    /// The next summary due at `now`, oldest first; call until `None`.
    pub fn flush(&mut self, now: Timestamp) -> Option<BurstSummary> {
        self.close_if_due(now);
        self.pending.pop_front()
    }

    /// When [`Self::flush`] next has something to return: the end of a window that collected
    /// bounces (possibly already past). `None` when no summary is owed, so no timer is needed.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        match self.pending.front() {
            Some(s) => Some(s.window_end),
            None => self.current.as_ref().filter(|w| w.total > 0).map(|w| w.end),
        }
    }

    fn close_if_due(&mut self, now: Timestamp) {
        let Some(w) = self.current.take_if(|w| now >= w.end) else {
            return;
        };
        if w.total > 0 {
            self.pending.push_back(BurstSummary {
                template: SUMMARY_TEMPLATE.to_string(),
                recipients: self.recipients.clone(),
                window_start: w.start,
                window_end: w.end,
                notified: w.notified,
                total: w.total,
                by_class: w.by_class.into_iter().collect(),
                first: w.first,
            });
        }
    }

    fn is_own(&self, address: &str) -> bool {
        self.own.contains(address_key(address).as_ref())
    }

    fn loop_evidence(&self, event: &BounceEvent) -> Option<LoopEvidence> {
        if self.is_own(&event.sender) {
            return Some(LoopEvidence::OwnSender);
        }
        if let Some(block) = &event.original_headers {
            let fields = header_fields(block);
            let value_of = |name: &'static str| field_values(&fields, name);
            if value_of(NOTIFICATION_HEADER).next().is_some() {
                return Some(LoopEvidence::NotificationHeader);
            }
            if value_of("Return-Path").any(|v| self.is_own(v)) {
                return Some(LoopEvidence::OwnSender);
            }
            let auto_generated = value_of("Auto-Submitted").any(|v| {
                v.trim_start()
                    .get(..14)
                    .is_some_and(|p| p.eq_ignore_ascii_case("auto-generated"))
            });
            if auto_generated
                && value_of("From").any(|v| mailbox_addresses(v).any(|a| self.is_own(a)))
            {
                return Some(LoopEvidence::AutoSubmittedFromUs);
            }
        }
        if event.class == BounceClass::DoubleBounce
            && event.recipients.iter().any(|r| {
                self.is_own(&r.address)
                    || r.original_recipient
                        .as_deref()
                        .is_some_and(|a| self.is_own(a))
            })
        {
            return Some(LoopEvidence::DoubleBounceToUs);
        }
        None
    }
}

/// The fields of a header block as (name, unfolded value), up to the first empty line (a block
/// should hold no body, but if one follows it is not read). Lines without a colon are skipped.
fn header_fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

/// The values of the fields named `name` (ASCII case-insensitive).
fn field_values<'a>(
    fields: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The addresses of a `From` value: each `<…>`, or else the comma-separated bare addresses
/// (a comment in parentheses after a bare address is dropped).
fn mailbox_addresses(value: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    if value.contains('<') {
        Box::new(
            value
                .split('<')
                .skip(1)
                .filter_map(|part| part.split_once('>').map(|(a, _)| a)),
        )
    } else {
        Box::new(
            value
                .split(',')
                .map(|a| a.split('(').next().unwrap_or(a).trim()),
        )
    }
}
