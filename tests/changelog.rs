//! The state changelog on the rig's broker: created compacted with the source's partition count,
//! refused when the counts differ, written and restored per partition up to the fence.

mod rig;

use mailgate_notify::config::Config;
use mailgate_notify::state::Changelog;
use std::path::Path;
use std::time::Duration;

fn config(broker: &rig::Broker, u: &str) -> Config {
    let toml = format!(
        r#"
        [kafka]
        brokers = "{}"
        group_id = "changelog-{u}"
        [kafka.topics]
        application = "app-{u}"
        state = "state-{u}"
        [sender]
        address = "notify@example.com"
        [application]
        enabled = false
        [bounce]
        enabled = false
        "#,
        broker.brokers()
    );
    Config::from_toml(&toml, Path::new("."), &mailgate_notify::config::ProcessEnv).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_restored_per_partition_latest_value_per_cluster() {
    let broker = rig::Broker::start();
    let u = rig::unique();
    let cfg = config(&broker, &u);
    broker
        .create_topic(&cfg.kafka.topics.application, 3, false)
        .await;
    let log = Changelog::new(&cfg.kafka).unwrap();
    log.ensure_topic().await.unwrap();
    log.ensure_topic().await.unwrap(); // idempotent
                                       // Several versions of two clusters on partition 1, one on partition 2, written concurrently
                                       // so that the producer batches them.
    let writes = (0..50).map(|i| {
        let log = log.clone();
        async move {
            let key = if i % 2 == 0 { "c-even" } else { "c-odd" };
            log.write(1, key, format!("v{i}").as_bytes(), 100 + i).await;
        }
    });
    futures::future::join_all(writes).await;
    log.write(2, "c-two", b"only", 7).await;

    let p1 = log.restore(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(p1.len(), 2);
    assert_eq!(p1["c-even"].value, b"v48");
    assert_eq!(p1["c-even"].source_offset, 148);
    assert_eq!(p1["c-odd"].value, b"v49");
    let p2 = log.restore(2, Duration::from_secs(20)).await.unwrap();
    assert_eq!(p2.len(), 1);
    assert_eq!(p2["c-two"].source_offset, 7);
    assert!(log
        .restore(0, Duration::from_secs(20))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_topic_with_another_partition_count_is_a_clear_error() {
    let broker = rig::Broker::start();
    let u = rig::unique();
    let cfg = config(&broker, &u);
    broker
        .create_topic(&cfg.kafka.topics.application, 3, false)
        .await;
    broker.create_topic(&cfg.kafka.topics.state, 2, true).await;
    let err = Changelog::new(&cfg.kafka)
        .unwrap()
        .ensure_topic()
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "partition_mismatch");
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("has 2 partitions but source topic"),
        "{err}"
    );
}
