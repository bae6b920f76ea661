//! Throughput of the application aggregator (issue 9): `record` (raise, re-occurrence, resolve,
//! stale) and `decide` (first change, throttled change, midnight digest) against two baselines
//! measured in the same run: a bare `HashMap` lookup-and-update of the event's cluster key (the
//! least any per-cluster aggregator must do) and decoding the event from JSON (what the pipeline
//! spends on every event before the aggregator sees it).
//!
//! Run: `cargo bench --bench aggregate`. Clusters carry 5 errors each, with node id, address,
//! comment, message and one attribute, as in `examples/aggregate_load.rs`.

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailgate_notify::aggregate::Aggregator;
use mailgate_notify::config::ApplicationConfig;
use mailgate_notify::event::{ApplicationEvent, ErrorState};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

// The same events as the load examples (one definition for both).
#[path = "../examples/support/load_events.rs"]
mod load_events;
use load_events::event;

/// Clusters held by the aggregator under test: enough that the state does not fit in the
/// caches, few enough to set up quickly.
const CLUSTERS: usize = 10_000;
const ERRORS: usize = 5;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_749_549_600, 0).unwrap_or_default() // 2025-06-10T10:00:00Z
}

fn cfg() -> ApplicationConfig {
    toml::from_str("").unwrap_or_else(|e| panic!("default config: {e}"))
}

/// Every (cluster, error) event of one state, in cluster order.
fn all_events(state: ErrorState) -> Vec<ApplicationEvent> {
    (0..CLUSTERS)
        .flat_map(|c| (0..ERRORS).map(move |i| event(c, i, state, t0())))
        .collect()
}

/// An aggregator holding every cluster with all errors raised at `t0` and notified.
fn loaded() -> Aggregator {
    let mut agg = Aggregator::new(cfg());
    for ev in all_events(ErrorState::Raised) {
        agg.record(&ev, t0());
    }
    settle(&mut agg, t0());
    agg
}

/// Decides and marks sent everything due at `now`.
fn settle(agg: &mut Aggregator, now: DateTime<Utc>) -> usize {
    let due = agg.due(now);
    let n = due.len();
    for (_, d) in due {
        if let Some(draft) = d.draft {
            agg.mark_sent(&draft, now);
        }
    }
    n
}

/// Times whole passes of recording `timed` (every key once) until `iters` events are covered,
/// scaled to `iters`; after each pass the `between` events (untimed) put the keys back. Each
/// pass is two seconds later than the previous one.
fn record_passes(
    agg: &mut Aggregator,
    iters: u64,
    timed: &mut [ApplicationEvent],
    mut between: Option<&mut [ApplicationEvent]>,
    pass_seconds: &mut i64,
) -> Duration {
    scaled(iters, || {
        *pass_seconds += 2;
        let now = t0() + TimeDelta::seconds(*pass_seconds);
        for ev in timed.iter_mut() {
            ev.occurred_at = now;
        }
        let start = Instant::now();
        for ev in timed.iter() {
            black_box(agg.record(ev, now));
        }
        let spent = start.elapsed();
        if let Some(back) = between.as_deref_mut() {
            let later = now + TimeDelta::seconds(1);
            for ev in back.iter_mut() {
                ev.occurred_at = later;
                agg.record(ev, later);
            }
        }
        (spent, timed.len())
    })
}

fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate/baseline");
    g.throughput(Throughput::Elements(1));
    let events = all_events(ErrorState::Raised);
    // The same cluster keys in a bare map: hash, find, update a counter.
    let mut map: HashMap<String, u64> = events.iter().map(|e| (e.cluster_id.clone(), 0)).collect();
    let mut i = 0;
    g.bench_function("hashmap_update_of_the_cluster_key", |b| {
        b.iter(|| {
            let ev = &events[i % events.len()];
            i += 1;
            if let Some(v) = map.get_mut(ev.cluster_id.as_str()) {
                *v += 1;
            }
        })
    });
    let json: Vec<Vec<u8>> = events
        .iter()
        .take(1000)
        .map(|e| serde_json::to_vec(e).unwrap_or_default())
        .collect();
    let mut j = 0;
    g.bench_function("decode_json_event", |b| {
        b.iter(|| {
            let bytes = &json[j % json.len()];
            j += 1;
            black_box(serde_json::from_slice::<ApplicationEvent>(bytes).ok())
        })
    });
    g.finish();
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate/record");
    g.throughput(Throughput::Elements(1));
    let mut agg = loaded();
    let mut secs = 0;

    // A newer occurrence of an active error: the most common event.
    let mut raises = all_events(ErrorState::Raised);
    g.bench_function("reoccurrence", |b| {
        b.iter_custom(|iters| record_passes(&mut agg, iters, &mut raises, None, &mut secs))
    });

    // A raise of a resolved key (and resolutions of active ones), alternating untimed.
    let mut resolves = all_events(ErrorState::Resolved);
    g.bench_function("raise", |b| {
        b.iter_custom(|iters| {
            // Keys start resolved: resolve everything first (untimed).
            record_passes(
                &mut agg,
                CLUSTERS as u64 * 5,
                &mut resolves,
                None,
                &mut secs,
            );
            record_passes(&mut agg, iters, &mut raises, Some(&mut resolves), &mut secs)
        })
    });
    g.bench_function("resolve", |b| {
        b.iter_custom(|iters| {
            record_passes(&mut agg, 1, &mut raises, None, &mut secs);
            record_passes(&mut agg, iters, &mut resolves, Some(&mut raises), &mut secs)
        })
    });

    // An event older than the key's last change: ignored.
    let mut stale = all_events(ErrorState::Raised);
    for ev in stale.iter_mut() {
        ev.occurred_at = t0() - TimeDelta::hours(1);
    }
    let mut k = 0;
    g.bench_function("stale", |b| {
        b.iter(|| {
            let ev = &stale[k % stale.len()];
            k += 1;
            black_box(agg.record(ev, t0()))
        })
    });
    g.finish();
}

/// Flips the state of each event (RAISED <-> RESOLVED) at `at` and records it: one change per
/// cluster.
fn flip(agg: &mut Aggregator, events: &mut [ApplicationEvent], at: DateTime<Utc>) {
    for ev in events.iter_mut() {
        ev.state = match ev.state {
            ErrorState::Raised => ErrorState::Resolved,
            _ => ErrorState::Raised,
        };
        ev.occurred_at = at;
        agg.record(ev, at);
    }
}

/// Times deciding everything due at `now` and marks the drafts sent (untimed); returns the
/// time and the number of decisions.
fn timed_due(agg: &mut Aggregator, now: DateTime<Utc>) -> (Duration, usize) {
    let start = Instant::now();
    let due = agg.due(now);
    let spent = start.elapsed();
    let n = due.len();
    for (_, d) in due {
        if let Some(draft) = d.draft {
            agg.mark_sent(&draft, now);
        }
    }
    (spent, n)
}

/// Runs whole passes (each deciding every cluster once) until `iters` decisions are covered;
/// returns the time scaled to `iters` decisions. Whole passes, because a pass moves time and
/// the scheduler's occasional rebuild belongs to the average.
fn scaled(iters: u64, mut pass: impl FnMut() -> (Duration, usize)) -> Duration {
    if iters == 0 {
        return Duration::ZERO;
    }
    let (mut spent, mut done) = (Duration::ZERO, 0u64);
    while done < iters {
        let (t, n) = pass();
        spent += t;
        done += n.max(1) as u64;
    }
    spent.mul_f64(iters as f64 / done as f64)
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate/decide");
    g.throughput(Throughput::Elements(1));
    let mut agg = loaded();
    // Time only moves forward; every pass is 20 minutes after the previous one, past the
    // 15-minute throttle. One pass in 72 crosses a midnight and also carries that day's digest.
    let mut now = t0();
    // Error 0 of every cluster flips each pass (it starts raised and notified).
    let mut flips: Vec<ApplicationEvent> = (0..CLUSTERS)
        .map(|c| event(c, 0, ErrorState::Raised, t0()))
        .collect();

    // A change long after the last notification: sent at once (reason first_change).
    g.bench_function("first_change", |b| {
        b.iter_custom(|iters| {
            scaled(iters, || {
                now += TimeDelta::minutes(20);
                flip(&mut agg, &mut flips, now);
                timed_due(&mut agg, now)
            })
        })
    });

    // A change 1 minute after the last notification, decided when the 15-minute throttle
    // allows (reason changed).
    g.bench_function("throttled_change", |b| {
        b.iter_custom(|iters| {
            scaled(iters, || {
                now += TimeDelta::minutes(20);
                flip(&mut agg, &mut flips, now);
                settle(&mut agg, now);
                flip(&mut agg, &mut flips, now + TimeDelta::minutes(1));
                now += TimeDelta::minutes(15);
                timed_due(&mut agg, now)
            })
        })
    });

    // The digest at midnight Moscow (21:00 UTC) of successive days, 5 errors each.
    g.bench_function("digest", |b| {
        b.iter_custom(|iters| {
            scaled(iters, || {
                // The next midnight in Moscow (UTC+3, no DST): 21:00 UTC.
                let mut midnight = now
                    .date_naive()
                    .and_hms_opt(21, 0, 0)
                    .unwrap_or_default()
                    .and_utc();
                if midnight <= now {
                    midnight += TimeDelta::days(1);
                }
                now = midnight;
                timed_due(&mut agg, now)
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = baselines, record, decide
}
criterion_main!(benches);
