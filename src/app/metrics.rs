//! Notification-level metrics of the pipeline: rendered, sent, failed and suppressed, by kind and
//! group, plus event-to-accepted latency and build info.

use super::dispatch::Meta;
use crate::telemetry;
use prometheus::{HistogramVec, IntCounterVec, Registry};

/// Kinds of notification (label `kind`).
pub const KINDS: [&str; 3] = ["application", "bounce", "rule"];
/// Groups per kind (label `group`).
pub const GROUPS: [(&str, &[&str]); 3] = [
    ("application", &["digest", "change"]),
    ("bounce", &["admins", "summary"]),
    (
        "rule",
        &["general", "sender", "recipients", "additional", "summary"],
    ),
];
/// Suppression reasons (label `reason`); deciders have finer ones in their own metrics.
pub const SUPPRESS_REASONS: [&str; 9] = [
    "throttled",
    "duplicate",
    "backscatter",
    "loop",
    "cap",
    "burst",
    "disabled",
    "filtered",
    "no_valid_recipient",
];

/// The pipeline's notification counters.
#[derive(Clone)]
pub struct AppMetrics {
    rendered: IntCounterVec,
    sent: IntCounterVec,
    failed: IntCounterVec,
    suppressed: IntCounterVec,
    fallbacks: IntCounterVec,
    latency: HistogramVec,
}

impl AppMetrics {
    /// Registers on `r` with every label combination at zero.
    pub fn new(r: &Registry) -> Self {
        let mut kg = Vec::new();
        let mut kgr = Vec::new();
        for (k, groups) in GROUPS {
            for g in groups {
                kg.push([k, *g]);
                for reason in ["transient", "permanent", "render"] {
                    kgr.push([k, *g, reason]);
                }
            }
        }
        let kg_refs: Vec<&[&str]> = kg.iter().map(|a| &a[..]).collect();
        let kgr_refs: Vec<&[&str]> = kgr.iter().map(|a| &a[..]).collect();
        let mut ks = Vec::new();
        for k in KINDS {
            for r in SUPPRESS_REASONS {
                ks.push([k, r]);
            }
        }
        let ks_refs: Vec<&[&str]> = ks.iter().map(|a| &a[..]).collect();
        let k1: Vec<[&str; 1]> = KINDS.iter().map(|k| [*k]).collect();
        let k_refs: Vec<&[&str]> = k1.iter().map(|a| &a[..]).collect();
        let build = telemetry::gauge_vec(
            r,
            "build_info",
            "Build information; the value is always 1.",
            &["version"],
            &[&[env!("CARGO_PKG_VERSION")]],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        AppMetrics {
            rendered: telemetry::counter_vec(
                r,
                "notifications_rendered_total",
                "Notifications rendered, by kind and recipient group.",
                &["kind", "group"],
                &kg_refs,
            ),
            sent: telemetry::counter_vec(
                r,
                "notifications_sent_total",
                "Notifications accepted by the relay (per recipient), by kind and group.",
                &["kind", "group"],
                &kg_refs,
            ),
            failed: telemetry::counter_vec(
                r,
                "notifications_failed_total",
                "Notification failures: transient (retried), permanent relay rejections (dead-lettered), render errors (fallback sent).",
                &["kind", "group", "reason"],
                &kgr_refs,
            ),
            suppressed: telemetry::counter_vec(
                r,
                "notifications_suppressed_total",
                "Notifications not sent on purpose, by kind and reason.",
                &["kind", "reason"],
                &ks_refs,
            ),
            fallbacks: telemetry::counter_vec(
                r,
                "render_fallbacks_total",
                "Notifications sent with the fallback template because their template failed.",
                &["kind"],
                &k_refs,
            ),
            latency: telemetry::histogram_vec(
                r,
                "event_to_accepted_seconds",
                "From the source record's broker timestamp to the relay's acceptance.",
                &["kind"],
                telemetry::latency_buckets(),
                &k_refs,
            ),
        }
    }

    /// A notification was rendered (with the fallback template if its own failed).
    pub fn rendered(&self, kind: &str, group: &str, fallback: bool) {
        self.rendered.with_label_values(&[kind, group]).inc();
        if fallback {
            self.fallbacks.with_label_values(&[kind]).inc();
            self.failed
                .with_label_values(&[kind, group, "render"])
                .inc();
        }
    }

    /// The relay accepted a notification for `recipients` recipients.
    pub fn sent(&self, meta: &Meta, recipients: usize) {
        self.sent
            .with_label_values(&[meta.kind, meta.group])
            .inc_by(recipients as u64);
        if let Some(ts) = meta.source.timestamp_ms {
            let now = chrono::Utc::now().timestamp_millis();
            let secs = (now - ts).max(0) as f64 / 1000.0;
            self.latency.with_label_values(&[meta.kind]).observe(secs);
        }
    }

    /// A notification failed for `reason` (`transient`, `permanent`, `render`) `n` times.
    pub fn failed(&self, kind: &str, group: &str, reason: &str, n: u64) {
        self.failed
            .with_label_values(&[kind, group, reason])
            .inc_by(n);
    }

    /// A notification was suppressed on purpose (logged by the caller with its ids).
    pub fn suppressed(&self, kind: &str, reason: &str) {
        self.suppressed.with_label_values(&[kind, reason]).inc();
    }

    /// Several suppressed at once.
    pub fn suppressed_n(&self, kind: &str, reason: &str, n: usize) {
        self.suppressed
            .with_label_values(&[kind, reason])
            .inc_by(n as u64);
    }
}
