//! Load measurement of the aggregator (not a test): resident memory for N clusters × 5 active
//! errors, record and decide throughput, and the CPU part of a changelog restore (JSON encode /
//! decode of every state). Run: `cargo run --release --example aggregate_load [clusters]`.

use chrono::{DateTime, TimeDelta, Utc};
use mailgate_notify::aggregate::{Aggregator, ClusterState};
use mailgate_notify::config::ApplicationConfig;
use mailgate_notify::event::{ApplicationEvent, ErrorState};
use std::time::Instant;

#[path = "support/load_events.rs"]
mod load_events;
use load_events::event;

fn rss_kib() -> u64 {
    load_events::status_kib("VmRSS:")
}

/// Seconds to record `events` at `now`.
fn time_records(agg: &mut Aggregator, events: Vec<ApplicationEvent>, now: DateTime<Utc>) -> f64 {
    let start = Instant::now();
    for ev in &events {
        agg.record(ev, now);
    }
    start.elapsed().as_secs_f64()
}

/// Seconds to decide every due cluster at once (marking the drafts sent is not timed), and the
/// number of drafts.
fn time_decide_all(agg: &mut Aggregator, now: DateTime<Utc>) -> (f64, usize) {
    let start = Instant::now();
    let due = agg.due(now);
    let secs = start.elapsed().as_secs_f64();
    let drafts: Vec<_> = due.into_iter().filter_map(|(_, d)| d.draft).collect();
    for draft in &drafts {
        agg.mark_sent(draft, now);
    }
    (secs, drafts.len())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cfg: ApplicationConfig = toml::from_str("").unwrap_or_else(|e| panic!("config: {e}"));
    let t0: DateTime<Utc> = "2025-06-10T10:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    // Memory: the aggregator is built from events made on the fly (each dropped at once), so
    // the growth of the resident size is the aggregator's own (plus allocator slack).
    let rss_before = rss_kib();
    let mut agg = Aggregator::new(cfg.clone());
    for c in 0..n {
        for i in 0..5 {
            agg.record(&event(c, i, ErrorState::Raised, t0), t0);
        }
    }
    let rss_state = rss_kib();
    // Decided in batches of 1,000, as a shell with a bounded outbox would.
    let (mut decide_s, mut mark_s, mut drafts) = (0.0, 0.0, 0);
    loop {
        let start = Instant::now();
        let due = agg.due_at_most(t0, 1000);
        decide_s += start.elapsed().as_secs_f64();
        if due.is_empty() {
            break;
        }
        drafts += due.len();
        let start = Instant::now();
        for (_, d) in due {
            if let Some(draft) = d.draft {
                agg.mark_sent(&draft, t0);
            }
        }
        mark_s += start.elapsed().as_secs_f64();
    }
    let rss_steady = rss_kib();

    // New raises into a second, fresh aggregator, events built up front so that only the
    // aggregator is timed.
    let raises: Vec<ApplicationEvent> = (0..n)
        .flat_map(|c| (0..5).map(move |i| event(c, i, ErrorState::Raised, t0)))
        .collect();
    let mut fresh = Aggregator::new(cfg.clone());
    let record_s = time_records(&mut fresh, raises, t0);
    drop(fresh);

    // Re-occurrences (the common event): update details, no notification.
    let t1 = t0 + TimeDelta::minutes(5);
    let again: Vec<ApplicationEvent> = (0..n)
        .map(|c| event(c, c % 5, ErrorState::Raised, t1))
        .collect();
    let reoccur_s = time_records(&mut agg, again, t1);

    // A resolution per cluster, then the throttled change decided for all at once.
    let t2 = t0 + TimeDelta::minutes(6);
    let resolves: Vec<ApplicationEvent> = (0..n)
        .map(|c| event(c, 4, ErrorState::Resolved, t2))
        .collect();
    let resolve_s = time_records(&mut agg, resolves, t2);
    let (decide2_s, changes) = time_decide_all(&mut agg, t0 + TimeDelta::minutes(15));

    // The digest at midnight Moscow (21:00 UTC) for every cluster.
    let midnight: DateTime<Utc> = "2025-06-10T21:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let next = agg.next_deadline();
    let (digest_s, digests) = time_decide_all(&mut agg, midnight);

    // Changelog restore, CPU part: encode every state, decode and import into a fresh aggregator.
    let ids: Vec<String> = agg.cluster_ids().map(str::to_string).collect();
    let start = Instant::now();
    let blobs: Vec<Vec<u8>> = ids
        .iter()
        .filter_map(|id| agg.export(id).and_then(|s| s.to_json().ok()))
        .collect();
    let encode_s = start.elapsed().as_secs_f64();
    let bytes: usize = blobs.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut restored = Aggregator::new(cfg);
    for b in &blobs {
        if let Ok(state) = ClusterState::from_json(b) {
            restored.import(state, midnight);
        }
    }
    let restore_s = start.elapsed().as_secs_f64();

    let per_s = |count: usize, s: f64| count as f64 / s;
    println!("clusters                 {n}");
    println!("active errors            {}", agg.active_errors());
    println!(
        "RSS growth for the state {} MiB ({} bytes/cluster; RSS {} MiB)",
        (rss_state - rss_before) / 1024,
        (rss_state - rss_before) * 1024 / n.max(1) as u64,
        rss_state / 1024
    );
    println!(
        "RSS after the first change of all {} MiB (drafts in batches of 1,000)",
        rss_steady / 1024
    );
    println!(
        "record (new raise)       {:>10.0} events/s ({:.2} s for {})",
        per_s(n * 5, record_s),
        record_s,
        n * 5
    );
    println!(
        "record (re-occurrence)   {:>10.0} events/s",
        per_s(n, reoccur_s)
    );
    println!(
        "record (resolve)         {:>10.0} events/s",
        per_s(n, resolve_s)
    );
    println!(
        "decide (first change)    {:>10.0} clusters/s ({drafts} drafts, mark_sent {:.2} s)",
        per_s(drafts, decide_s),
        mark_s
    );
    println!(
        "decide (throttled change){:>10.0} clusters/s ({changes} drafts)",
        per_s(n, decide2_s)
    );
    println!(
        "decide (midnight digest) {:>10.0} clusters/s ({digests} digests, next deadline {next:?})",
        per_s(n, digest_s)
    );
    println!(
        "state JSON               {} bytes/cluster, encode {:.2} s, decode+import {:.2} s",
        bytes / n.max(1),
        encode_s,
        restore_s
    );
    println!("RSS at end               {} MiB", rss_kib() / 1024);
}
