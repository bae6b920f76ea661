//! Restore time from the changelog itself (not a test; issue 6): writes the states of N
//! clusters × 5 active errors to a compacted changelog topic on a Tansu broker (the rig's,
//! memory storage), then restores every partition the way the service does on assignment
//! (`state::Changelog::restore`, `ClusterState::from_json`, `Aggregator::import`) in a fresh
//! child process, and reports the restore time and that process's peak resident memory
//! (`VmHWM`).
//!
//! Run: `cargo run --release --example changelog_restore [clusters] [partitions]`
//! (defaults 100000 and 4; needs `make rig`, or `TANSU_BIN`). `RESTORE_LIBRDKAFKA="k=v,k=v"`
//! adds consumer properties, as `[kafka.librdkafka]` would.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use mailgate_notify::aggregate::{Aggregator, ClusterState};
use mailgate_notify::config::{Config, ProcessEnv};
use mailgate_notify::event::ErrorState;
use mailgate_notify::state::{Changelog, Entry};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The service's allocator, so that the peak measured here is the one the service would see.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "support/load_events.rs"]
mod load_events;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn config(brokers: &str) -> Res<Config> {
    // `RESTORE_LIBRDKAFKA="key=value,key=value"`: consumer properties to try, as an operator
    // would set them in `[kafka.librdkafka]`.
    let extra: String = std::env::var("RESTORE_LIBRDKAFKA")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect();
    let toml = format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        group_id = "changelog-restore"
        [kafka.topics]
        application = "app-events"
        state = "app-state"
        [sender]
        address = "notify@example.com"
        [[application.recipients]]
        addresses = ["admin@example.com"]
        [bounce]
        enabled = false
        [kafka.librdkafka]
        {extra}
        "#
    );
    Ok(Config::from_toml(&toml, Path::new("."), &ProcessEnv)?)
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_749_549_600, 0).unwrap_or_default() // 2025-06-10T10:00:00Z
}

/// The Tansu broker, killed on drop.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker() -> Res<(Broker, String)> {
    let bin = match std::env::var("TANSU_BIN") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            let recorded = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/rig/tansu-bin");
            PathBuf::from(
                std::fs::read_to_string(&recorded)
                    .map_err(|e| format!("{}: {e} (run make rig)", recorded.display()))?
                    .trim(),
            )
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("CLUSTER_ID")
        .env_remove("SCHEMA_REGISTRY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("tansu did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((broker, format!("127.0.0.1:{port}")))
}

async fn write_states(cfg: &Config, clusters: usize, partitions: i32) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .create()?;
    let topic = NewTopic::new(
        &cfg.kafka.topics.application,
        partitions,
        TopicReplication::Fixed(1),
    );
    for r in admin.create_topics(&[topic], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| format!("create {t}: {e}"))?;
    }
    let log = Changelog::new(&cfg.kafka)?;
    // The topic's metadata may lag its creation by a moment.
    let mut tries = 0;
    while let Err(e) = log.ensure_topic().await {
        tries += 1;
        if tries > 50 {
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut agg = Aggregator::new(cfg.application.clone());
    for c in 0..clusters {
        for i in 0..5 {
            agg.record(&load_events::event(c, i, ErrorState::Raised, t0()), t0());
        }
    }
    let started = Instant::now();
    let mut bytes = 0usize;
    let records: Vec<(i32, String, Vec<u8>)> = (0..clusters)
        .filter_map(|c| {
            let id = format!("ksmg-cluster-{c:06}");
            let json = agg.export(&id)?.to_json().ok()?;
            bytes += json.len();
            Some(((c as i32) % partitions, id, json))
        })
        .collect();
    futures::stream::iter(records.iter().enumerate())
        .for_each_concurrent(4096, |(offset, (p, id, json))| {
            let log = log.clone();
            async move { log.write(*p, id, json, offset as i64).await }
        })
        .await;
    println!(
        "wrote                    {} states, {} bytes/state, in {:.2} s ({} partitions)",
        records.len(),
        bytes / records.len().max(1),
        started.elapsed().as_secs_f64(),
        partitions
    );
    Ok(())
}

/// The child: restores every partition into a fresh aggregator, as the service does.
///
/// `shared`: decode with `Aggregator::import_json` (texts shared while decoding) instead of
/// the service's current `ClusterState::from_json` + `Aggregator::import`.
async fn restore(cfg: &Config, partitions: i32, shared: bool) -> Res<()> {
    let rss_start = load_events::status_kib("VmRSS:");
    let log = Changelog::new(&cfg.kafka)?;
    let mut agg = Aggregator::new(cfg.application.clone());
    let now = t0();
    let started = Instant::now();
    let (mut read_s, mut decode_s, mut bad) = (0.0, 0.0, 0usize);
    for p in 0..partitions {
        if !shared {
            // The service's path: entries streamed from the read, decoded on the reading
            // thread, imported as they arrive; no partition is ever held whole.
            let t = Instant::now();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let read = log.restore_each(p, Duration::from_secs(300), move |e| {
                if let Entry::Put { value, .. } = e {
                    let _ = tx.send(ClusterState::from_json(&value));
                }
            });
            let import = async {
                let mut bad = 0usize;
                while let Some(r) = rx.recv().await {
                    match r {
                        Ok(state) => agg.import(state, now),
                        Err(_) => bad += 1,
                    }
                }
                bad
            };
            let (r, b) = tokio::join!(read, import);
            r?;
            bad += b;
            read_s += t.elapsed().as_secs_f64();
            continue;
        }
        let t = Instant::now();
        let restored = log.restore(p, Duration::from_secs(300)).await?;
        read_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for r in restored.into_values() {
            let ok = if shared {
                agg.import_json(&r.value, now).is_ok()
            } else {
                ClusterState::from_json(&r.value)
                    .map(|state| agg.import(state, now))
                    .is_ok()
            };
            bad += usize::from(!ok);
        }
        decode_s += t.elapsed().as_secs_f64();
    }
    let total = started.elapsed().as_secs_f64();
    let how = if shared {
        "Aggregator::import_json"
    } else {
        "restore_each streamed: ClusterState::from_json + Aggregator::import while reading (the service's path; read and decode overlap, decode time counted in the read)"
    };
    println!("decoding with            {how}");
    println!(
        "restored                 {} clusters, {} active errors, {bad} unreadable",
        agg.len(),
        agg.active_errors()
    );
    println!(
        "restore time             {total:.2} s (changelog read {read_s:.2} s, decode+import {decode_s:.2} s)"
    );
    println!(
        "restoring process        RSS {} MiB at start, {} MiB after, peak (VmHWM) {} MiB",
        rss_start / 1024,
        load_events::status_kib("VmRSS:") / 1024,
        load_events::status_kib("VmHWM:") / 1024
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--restore") {
        let usage = "--restore BROKERS PARTITIONS [shared]";
        let brokers = args.get(2).ok_or(usage)?;
        let partitions: i32 = args.get(3).ok_or(usage)?.parse()?;
        let shared = args.get(4).map(String::as_str) == Some("shared");
        return restore(&config(brokers)?, partitions, shared).await;
    }
    let clusters: usize = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let partitions: i32 = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(4);
    let (_broker, brokers) = start_broker()?;
    let cfg = config(&brokers)?;
    write_states(&cfg, clusters, partitions).await?;
    // A fresh process each, so that its peak resident memory is the restore's alone.
    for mode in ["service", "shared"] {
        let status = Command::new(std::env::current_exe()?)
            .args(["--restore", &brokers, &partitions.to_string(), mode])
            .status()?;
        if !status.success() {
            return Err(format!("restore process: {status}").into());
        }
    }
    Ok(())
}
