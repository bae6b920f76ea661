//! The command line as an operator uses it: `--help`, `check-config` on good and bad configs.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailgate-notify"))
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = bin().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "demo", "check-config", "render", "produce"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "--help does not list {cmd}:\n{text}"
        );
    }
}

#[test]
fn annotated_example_config_is_ok() {
    let out = bin()
        .args(["check-config", "--config"])
        .arg(root().join("deploy/config/mailgate-notify.toml"))
        .env_remove("MAILGATE_SMTP_PASSWORD")
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_key_exits_2_naming_the_key() {
    let out = bin()
        .args(["check-config", "--config"])
        .arg(root().join("tests/fixtures/config/unknown_key.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("kafka.groupid: unknown field `groupid`"),
        "{text}"
    );
}

#[test]
fn invalid_time_zone_exits_2_naming_the_key() {
    let out = bin()
        .args(["check-config", "--config"])
        .arg(root().join("tests/fixtures/config/bad_timezone.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("application.default_timezone: unknown time zone \"Mars/Base\""),
        "{text}"
    );
}

#[test]
fn encode_regenerates_the_avro_fixtures_decoding_equal() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["application_event", "bounce_event", "scan_verdict"] {
        let out = dir.path().join(format!("{name}.avro"));
        let status = bin()
            .args(["encode", "--format", "avro", "--file"])
            .arg(root().join(format!("tests/fixtures/events/{name}.json")))
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run");
        assert!(status.success());
        let bytes = std::fs::read(&out).expect("written");
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let committed = std::fs::read(root().join(format!("tests/fixtures/events/{name}.avro")))
            .expect("fixture");
        // Same header (fingerprint) and same length; map order inside may differ.
        assert_eq!(bytes[..10], committed[..10]);
        assert_eq!(bytes.len(), committed.len());
    }
}

#[test]
fn librdkafka_override_of_a_guarded_setting_exits_2_naming_it() {
    let out = bin()
        .args(["check-config", "--config"])
        .arg(root().join("tests/fixtures/config/librdkafka_override.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("kafka.librdkafka.\"enable.auto.offset.store\": cannot be overridden"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        1,
        "security.protocol is allowed: {text}"
    );
}
