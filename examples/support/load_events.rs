//! The application events of the load examples: N clusters × 5 errors, each with node id,
//! address, comment, message and one attribute (shared by `aggregate_load` and
//! `changelog_restore`, and shaped like the events of `benches/aggregate.rs`).

#![allow(dead_code)] // each example uses a different part

use chrono::{DateTime, TimeDelta, Utc};
use mailgate_notify::event::{ApplicationEvent, ErrorGroup, ErrorKind, ErrorState, Node};
use std::collections::BTreeMap;

/// The five errors of every cluster (one per group, each on its own node).
pub const KINDS: [(ErrorKind, ErrorGroup); 5] = [
    (ErrorKind::AvBasesOutdated, ErrorGroup::Protection),
    (ErrorKind::DataSyncFailed, ErrorGroup::Synchronization),
    (ErrorKind::LdapConnectionFailed, ErrorGroup::LdapIntegration),
    (ErrorKind::LicenseExpiresSoon, ErrorGroup::Licensing),
    (ErrorKind::DiskSpaceLow, ErrorGroup::System),
];

/// Error `i` of cluster `cluster` in `state` at `at`.
pub fn event(cluster: usize, i: usize, state: ErrorState, at: DateTime<Utc>) -> ApplicationEvent {
    let (kind, group) = KINDS[i];
    let mut attributes = BTreeMap::new();
    attributes.insert("outdated_days".to_string(), "3".to_string());
    ApplicationEvent {
        event_id: format!("ev-{cluster}-{i}-{}", at.timestamp_millis()),
        cluster_id: format!("ksmg-cluster-{cluster:06}"),
        node: Node {
            node_id: format!("node-{i}"),
            ip: format!("10.{}.{}.{}", cluster % 250, cluster / 250 % 250, i + 10),
            port: 9045,
            comment: Some(format!("rack {i}, dmz")),
            is_control: i == 0,
        },
        control_timezone: Some("Europe/Moscow".into()),
        group,
        kind,
        state,
        occurred_at: at,
        last_successful_sync_at: Some(at - TimeDelta::hours(2)),
        message: Some("Anti-virus databases are outdated on this node".into()),
        attributes,
    }
}

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`), 0 where there is none.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
