//! Checks the files under `deploy/` that no Docker engine or cluster runs here: that they
//! parse, that they agree with each other (group id, topics, ports, secret paths, job name,
//! alert rules in two places), that the service config they embed loads with the crate's own
//! [`Config::from_toml`], that the dashboard and the alerts name only the metrics the service
//! registers ([`METRICS`]), and that `promtool` accepts the rules, their unit tests, the
//! Prometheus config and every dashboard query.

use mailgate_notify::config::{Config, Env, ENV_KAFKA_SASL_PASSWORD, ENV_SMTP_PASSWORD};
use mailgate_notify::event::{decode::decode_json, EventKind};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Prometheus metric type, for the suffixes a query may add to a name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Type {
    Counter,
    Gauge,
    /// Queried as `<name>_bucket` (with `le`), `<name>_sum`, `<name>_count`.
    Histogram,
}

/// One metric the service registers.
struct Metric {
    /// Name without the `mailgate_notify_` prefix.
    name: &'static str,
    kind: Type,
    labels: &'static [&'static str],
}

const fn metric(name: &'static str, kind: Type, labels: &'static [&'static str]) -> Metric {
    Metric { name, kind, labels }
}

/// Every metric the service registers, with its labels: the reference the dashboard, the alert
/// rules and deploy/README.md are checked against. The code is kept to this list, so that a
/// renamed or dropped metric fails here instead of leaving a silent panel or an alert that
/// never fires.
const METRICS: &[Metric] = &[
    metric("events_consumed_total", Type::Counter, &["topic"]),
    metric(
        "events_decode_failed_total",
        Type::Counter,
        &["topic", "error_code"],
    ),
    metric("dlq_records_total", Type::Counter, &["stage", "error_code"]),
    metric("dlq_write_failures_total", Type::Counter, &[]),
    metric("rebalances_total", Type::Counter, &["kind"]),
    metric("partitions_assigned", Type::Gauge, &[]),
    metric("partitions_paused", Type::Gauge, &[]),
    metric("records_in_flight", Type::Gauge, &[]),
    metric("offset_commits_total", Type::Counter, &["result"]),
    metric("consumer_lag", Type::Gauge, &["topic", "partition"]),
    metric(
        "notifications_rendered_total",
        Type::Counter,
        &["kind", "group"],
    ),
    metric(
        "notifications_sent_total",
        Type::Counter,
        &["kind", "group"],
    ),
    metric(
        "notifications_failed_total",
        Type::Counter,
        &["kind", "group", "reason"],
    ),
    metric(
        "notifications_suppressed_total",
        Type::Counter,
        &["kind", "reason"],
    ),
    metric("render_fallbacks_total", Type::Counter, &["kind"]),
    metric("smtp_send_seconds", Type::Histogram, &["outcome"]),
    metric("outbox_depth", Type::Gauge, &[]),
    metric("outbox_capacity", Type::Gauge, &[]),
    metric("smtp_connections", Type::Gauge, &[]),
    // 0 closed, 1 half-open, 2 open.
    metric("smtp_breaker_state", Type::Gauge, &[]),
    metric("smtp_breaker_transitions_total", Type::Counter, &["to"]),
    metric("smtp_connects_total", Type::Counter, &["result"]),
    metric("application_errors_active", Type::Gauge, &[]),
    metric("application_decisions_total", Type::Counter, &["reason"]),
    metric("state_restore_seconds", Type::Histogram, &[]),
    metric("event_to_accepted_seconds", Type::Histogram, &["kind"]),
    metric("build_info", Type::Gauge, &["version"]),
];

const PREFIX: &str = "mailgate_notify_";
/// The scrape job every selector uses: compose's job_name, the Kubernetes Service name.
const JOB: &str = "mailgate-notify";
/// Labels the scrape adds to every series.
const TARGET_LABELS: &[&str] = &["job", "instance"];
/// `notifications_failed_total{reason}` values (the alerts select them by value).
const FAILED_REASONS: &[&str] = &["transient", "permanent", "render"];

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every document of a YAML file, with merge keys (`<<: *anchor`) applied as compose does.
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = read(path);
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut v: Yaml = serde::Deserialize::deserialize(de)
            .unwrap_or_else(|e| panic!("{} does not parse as YAML: {e}", path.display()));
        v.apply_merge()
            .unwrap_or_else(|e| panic!("{}: bad merge key: {e}", path.display()));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

fn yaml(path: &Path) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one document", path.display());
    docs.remove(0)
}

/// The Kubernetes object of `kind` (exactly one) among the documents of `file` in deploy/k8s.
fn k8s(file: &str, kind: &str) -> Yaml {
    let found: Vec<Yaml> = yaml_docs(&deploy(&format!("k8s/{file}")))
        .into_iter()
        .filter(|d| s(d, &["kind"]) == kind)
        .collect();
    assert_eq!(found.len(), 1, "deploy/k8s/{file} should hold one {kind}");
    found.into_iter().next().unwrap()
}

/// The node at `path` (map keys, or sequence indexes written as numbers).
fn at<'a>(v: &'a Yaml, path: &[&str]) -> &'a Yaml {
    let mut cur = v;
    for key in path {
        cur = match key.parse::<usize>() {
            Ok(i) if cur.is_sequence() => cur.get(i),
            _ => cur.get(*key),
        }
        .unwrap_or_else(|| panic!("missing {} in {cur:?}", path.join(".")));
    }
    cur
}

/// The string at `path`; numbers and booleans are rendered as YAML writes them.
fn s(v: &Yaml, path: &[&str]) -> String {
    match at(v, path) {
        Yaml::String(x) => x.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("{} is not a scalar: {other:?}", path.join(".")),
    }
}

fn seq<'a>(v: &'a Yaml, path: &[&str]) -> &'a Vec<Yaml> {
    at(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{} is not a list", path.join(".")))
}

fn u64_at(v: &Yaml, path: &[&str]) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{} is not a number", path.join(".")))
}

fn string_map(v: &Yaml) -> BTreeMap<String, String> {
    v.as_mapping()
        .unwrap_or_else(|| panic!("not a map: {v:?}"))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or_default().to_string(),
                match v {
                    Yaml::String(x) => x.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                },
            )
        })
        .collect()
}

/// Secrets as the pods receive them; the config only references them.
struct SecretsEnv;

impl Env for SecretsEnv {
    fn var(&self, name: &str) -> Option<String> {
        [ENV_SMTP_PASSWORD, ENV_KAFKA_SASL_PASSWORD]
            .contains(&name)
            .then(|| "not-a-real-secret".to_string())
    }
}

fn load_config(text: &str, base: &Path, what: &str) -> Config {
    Config::from_toml(text, base, &SecretsEnv)
        .unwrap_or_else(|e| panic!("{what} is not a valid mailgate-notify config:\n{e}"))
}

/// The compose file's config, as its instances mount it.
fn compose_config() -> Config {
    let path = deploy("compose/mailgate-notify.toml");
    load_config(
        &read(&path),
        path.parent().unwrap(),
        "deploy/compose/mailgate-notify.toml",
    )
}

/// The ConfigMap's embedded config.
fn configmap_config() -> Config {
    let cm = k8s("configmap.yaml", "ConfigMap");
    load_config(
        &s(&cm, &["data", "mailgate-notify.toml"]),
        Path::new("/etc/mailgate-notify"),
        "the ConfigMap's mailgate-notify.toml",
    )
}

/// promtool, or a failure that says how to get it: a missing tool must not pass silently.
fn promtool(args: &[&str], dir: &Path) -> String {
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{bin}` ({e}): promtool checks the alert rules. Install it with \
                 `bash tests/rig/install.sh` (Debian package prometheus), or set PROMTOOL"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

fn files_under(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, exts, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
        {
            out.push(path);
        }
    }
    out.sort();
}

// ------------------------------------------------------------------------------------------
// PromQL references
// ------------------------------------------------------------------------------------------

fn lookup(name: &str) -> Option<(&'static Metric, &'static str)> {
    METRICS.iter().find_map(|m| {
        if m.name == name {
            return (m.kind != Type::Histogram).then_some((m, ""));
        }
        if m.kind == Type::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                if name.strip_prefix(m.name) == Some(suffix) {
                    return Some((m, suffix));
                }
            }
        }
        None
    })
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Label names of a `by (...)` / `without (...)` clause starting at `rest`.
fn grouping_labels(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    let Some(inner) = rest.strip_prefix('(') else {
        return Vec::new();
    };
    let end = inner.find(')').unwrap_or(inner.len());
    inner[..end]
        .split(',')
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every `mailgate_notify_…` name in `text` must be a registered metric (or a histogram's
/// series; in prose also the histogram's own name), every label matcher on it one of its
/// labels, every `by`/`without` label one of the labels of the metrics in the text. Returns
/// the metrics found.
fn check_promql(
    text: &str,
    origin: &str,
    prose: bool,
    problems: &mut Vec<String>,
) -> BTreeSet<&'static str> {
    let mut used = BTreeSet::new();
    let mut labels_here: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
    let mut from = 0;
    while let Some(p) = text[from..].find(PREFIX) {
        let start = from + p;
        // PREFIX and identifier characters are ASCII, so these are char boundaries.
        let end = text[start..]
            .find(|c: char| !is_ident(c))
            .map_or(text.len(), |e| start + e);
        from = end;
        let boundary = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c));
        let full = &text[start..end];
        let name = &full[PREFIX.len()..];
        if !boundary || name.is_empty() {
            continue;
        }
        let bare_histogram = METRICS
            .iter()
            .find(|m| m.kind == Type::Histogram && m.name == name);
        let Some((m, suffix)) = lookup(name).or(bare_histogram.filter(|_| prose).map(|m| (m, "")))
        else {
            problems.push(format!(
                "{origin}: {full} is not a metric the service registers"
            ));
            continue;
        };
        used.insert(m.name);
        labels_here.extend(m.labels.iter().copied());
        if suffix == "_bucket" {
            labels_here.insert("le");
        }
        // Label matchers right after the name.
        let rest = &text[end..];
        if let Some(body) = rest.strip_prefix('{') {
            let close = body.find('}').unwrap_or(body.len());
            for matcher in split_matchers(&body[..close]) {
                let op_at = matcher.find(['=', '!']).unwrap_or(matcher.len());
                let label = matcher[..op_at].trim();
                let value = matcher[op_at..]
                    .trim_start_matches(['=', '!', '~'])
                    .trim()
                    .trim_matches('"');
                let known = m.labels.contains(&label)
                    || TARGET_LABELS.contains(&label)
                    || (suffix == "_bucket" && label == "le");
                if !known {
                    problems.push(format!(
                        "{origin}: {full} has no label {label:?} (it has {:?})",
                        m.labels
                    ));
                }
                if label == "job" && !value.starts_with('$') && value != JOB {
                    problems.push(format!(
                        "{origin}: {full} selects job {value:?}, not {JOB:?}"
                    ));
                }
                if m.name == "notifications_failed_total"
                    && label == "reason"
                    && matcher[op_at..].starts_with("=\"")
                    && !FAILED_REASONS.contains(&value)
                {
                    problems.push(format!(
                        "{origin}: reason {value:?} is not one of {FAILED_REASONS:?}"
                    ));
                }
            }
        }
    }
    for kw in [" by ", " by(", " without ", " without("] {
        let mut from = 0;
        while let Some(p) = text[from..].find(kw) {
            let after = from + p + kw.len() - usize::from(kw.ends_with('('));
            for l in grouping_labels(&text[after..]) {
                if !used.is_empty() && !labels_here.contains(l.as_str()) {
                    problems.push(format!(
                        "{origin}: grouping by {l:?}, which none of its metrics has"
                    ));
                }
            }
            from = after;
        }
    }
    used
}

/// Matchers of a selector body, split at commas outside quotes.
fn split_matchers(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut prev = '\0';
    for c in body.chars() {
        if c == '"' && prev != '\\' {
            quoted = !quoted;
        }
        if c == ',' && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
        prev = c;
    }
    out.push(cur);
    out.into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Every string in a JSON document, with its JSON path.
fn json_strings(v: &Json, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Json::String(s) => out.push((path.to_string(), s.clone())),
        Json::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                json_strings(x, &format!("{path}[{i}]"), out);
            }
        }
        Json::Object(o) => {
            for (k, x) in o {
                json_strings(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn dashboard() -> Json {
    let path = deploy("grafana/dashboards/mailgate-notify.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' nested panels included.
fn panels(d: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("dashboard has panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

/// The alert rules of alerts.yaml: (group, rule).
fn alert_rules() -> Vec<Yaml> {
    let doc = yaml(&deploy("prometheus/alerts.yaml"));
    seq(&doc, &["groups"])
        .iter()
        .flat_map(|g| seq(g, &["rules"]).clone())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn metric_reference_list_follows_the_naming_rules() {
    let mut seen = BTreeSet::new();
    for m in METRICS {
        assert!(seen.insert(m.name), "{} listed twice", m.name);
        match m.kind {
            Type::Counter => assert!(m.name.ends_with("_total"), "counter {}", m.name),
            Type::Histogram => assert!(m.name.ends_with("_seconds"), "histogram {}", m.name),
            Type::Gauge => assert!(!m.name.ends_with("_total"), "gauge {}", m.name),
        }
        for l in m.labels {
            assert!(
                !TARGET_LABELS.contains(l) && *l != "le",
                "{}: label {l}",
                m.name
            );
        }
    }
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    files_under(&root().join("deploy"), &["yaml", "yml"], &mut files);
    assert!(
        files.len() >= 15,
        "expected the deploy/ YAML files, found {files:?}"
    );
    for f in &files {
        let docs = yaml_docs(f);
        assert!(!docs.is_empty(), "{} is empty", f.display());
        if f.starts_with(deploy("k8s")) && !f.ends_with("kustomization.yaml") {
            for d in &docs {
                for key in ["apiVersion", "kind"] {
                    assert!(!s(d, &[key]).is_empty(), "{}: {key}", f.display());
                }
                assert!(!s(d, &["metadata", "name"]).is_empty(), "{}", f.display());
            }
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let k = yaml(&deploy("k8s/kustomization.yaml"));
    let listed: BTreeSet<String> = seq(&k, &["resources"])
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut files = Vec::new();
    files_under(&deploy("k8s"), &["yaml"], &mut files);
    let present: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn dashboard_uses_every_registered_metric_and_nothing_else() {
    let d = dashboard();
    assert_eq!(
        d["uid"], "mailgate-notify",
        "a stable uid keeps links working"
    );
    let mut strings = Vec::new();
    json_strings(&d, "$", &mut strings);
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (path, text) in &strings {
        used.extend(check_promql(
            text,
            &format!("dashboard {path}"),
            false,
            &mut problems,
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let missing: Vec<_> = METRICS
        .iter()
        .map(|m| m.name)
        .filter(|n| !used.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows no panel for {missing:?}"
    );
}

#[test]
fn dashboard_panels_are_well_formed() {
    let d = dashboard();
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "panel {id} is wider than the grid");
        if p["type"] == "row" {
            continue;
        }
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} must use the datasource variable",
            p["title"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                expr.contains(r#"job="$job""#),
                "panel {}: {expr} must select job=\"$job\"",
                p["title"]
            );
        }
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses expressions in rule files: make each query a recording rule, with the
    // Grafana variables replaced by what they expand to.
    let d = dashboard();
    let mut exprs = Vec::new();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(e) = a["expr"].as_str() {
            exprs.push(e.to_string());
        }
    }
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$job", JOB)
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yaml"), rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.yaml"], dir.path());
    assert!(
        out.contains(&format!("{} rules found", exprs.len())),
        "{out}"
    );
}

#[test]
fn grafana_provisioning_matches_the_compose_mounts() {
    let ds = yaml(&deploy("grafana/provisioning/datasources/prometheus.yaml"));
    let source = &seq(&ds, &["datasources"])[0];
    assert_eq!(s(source, &["type"]), "prometheus");
    assert_eq!(s(source, &["url"]), "http://prometheus:9090");
    let d = dashboard();
    let var = &d["templating"]["list"][0];
    assert_eq!(var["current"]["value"], s(source, &["uid"]).as_str());

    let prov = yaml(&deploy(
        "grafana/provisioning/dashboards/mailgate-notify.yaml",
    ));
    let path = s(&seq(&prov, &["providers"])[0], &["options", "path"]);
    let compose = yaml(&deploy("compose.yaml"));
    let volumes: Vec<String> = seq(&compose, &["services", "grafana", "volumes"])
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        volumes.contains(&format!("./grafana/dashboards:{path}:ro")),
        "compose must mount the dashboards at the provider's path {path}: {volumes:?}"
    );
    assert!(volumes.contains(&"./grafana/provisioning:/etc/grafana/provisioning:ro".to_string()));
}

#[test]
fn alerts_name_registered_metrics_and_have_severity_summary_and_runbook() {
    let readme = read(&deploy("README.md"));
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for rule in alert_rules() {
        let name = s(&rule, &["alert"]);
        assert!(names.insert(name.clone()), "alert {name} defined twice");
        let expr = s(&rule, &["expr"]);
        check_promql(&expr, &format!("alert {name}"), false, &mut problems);
        if !expr.contains(&format!(r#"job="{JOB}""#)) {
            problems.push(format!("alert {name}: must select job=\"{JOB}\""));
        }
        let severity = s(&rule, &["labels", "severity"]);
        if !["critical", "warning", "info"].contains(&severity.as_str()) {
            problems.push(format!("alert {name}: severity {severity:?}"));
        }
        for a in ["summary", "description"] {
            if s(&rule, &["annotations", a]).trim().is_empty() {
                problems.push(format!("alert {name}: no {a}"));
            }
        }
        if !readme.contains(&format!("`{name}`")) {
            problems.push(format!(
                "alert {name}: no runbook entry in deploy/README.md"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What issue 8 asks for, by name.
    for required in [
        "MailgateNotifySmtpRelayDown",
        "MailgateNotifySmtpBreakerOpen",
        "MailgateNotifyDeadLettersGrowing",
        "MailgateNotifyConsumerLagGrowing",
        "MailgateNotifyRenderFailures",
        "MailgateNotifyAbsent",
    ] {
        assert!(names.contains(required), "missing alert {required}");
    }
}

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    let dir = deploy("prometheus");
    let out = promtool(&["check", "rules", "alerts.yaml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(&["test", "rules", "alerts_test.yaml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
    // The compose Prometheus config, with the rule file it loads.
    let out = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn prometheus_rule_carries_the_groups_of_alerts_yaml() {
    let rule = k8s("prometheusrule.yaml", "PrometheusRule");
    let alerts = yaml(&deploy("prometheus/alerts.yaml"));
    assert_eq!(
        at(&rule, &["spec", "groups"]),
        at(&alerts, &["groups"]),
        "deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/alerts.yaml: paste the \
         groups of alerts.yaml under spec:"
    );
}

#[test]
fn readme_names_only_registered_metrics() {
    let mut problems = Vec::new();
    check_promql(
        &read(&deploy("README.md")),
        "deploy/README.md",
        true,
        &mut problems,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn configmap_holds_a_valid_config_that_only_references_secrets() {
    let config = configmap_config();
    assert_eq!(
        config.metrics.listen,
        "0.0.0.0:9898".parse().unwrap(),
        "in a pod the listener must bind all interfaces on 9898"
    );
    let cm = k8s("configmap.yaml", "ConfigMap");
    let text = s(&cm, &["data", "mailgate-notify.toml"]);
    for word in ["password =", "password=", "sasl.password"] {
        assert!(
            !text.contains(word),
            "the ConfigMap must not hold a secret ({word})"
        );
    }
    // The referenced secret files are the items of the Deployment's Secret volume.
    let dep = k8s("deployment.yaml", "Deployment");
    let pod = at(&dep, &["spec", "template", "spec"]);
    let container = &seq(pod, &["containers"])[0];
    let mount = seq(container, &["volumeMounts"])
        .iter()
        .find(|m| s(m, &["name"]) == "secrets")
        .map(|m| PathBuf::from(s(m, &["mountPath"])))
        .expect("a secrets volume mount");
    let volume = seq(pod, &["volumes"])
        .iter()
        .find(|v| s(v, &["name"]) == "secrets")
        .expect("a secrets volume");
    let items: BTreeSet<PathBuf> = seq(volume, &["secret", "items"])
        .iter()
        .map(|i| mount.join(s(i, &["path"])))
        .collect();
    for (key, file) in [
        ("smtp.password_file", config.smtp.password_file.as_ref()),
        (
            "kafka.sasl_password_file",
            config.kafka.sasl_password_file.as_ref(),
        ),
    ] {
        let file = file.unwrap_or_else(|| panic!("{key} is not set"));
        assert!(
            items.contains(file),
            "{key} = {} is not mounted: {items:?}",
            file.display()
        );
    }
}

#[test]
fn deployment_is_hardened_and_probes_the_configured_port() {
    let config = configmap_config();
    let dep = k8s("deployment.yaml", "Deployment");
    let pod = at(&dep, &["spec", "template", "spec"]);
    assert_eq!(s(pod, &["securityContext", "runAsNonRoot"]), "true");
    assert_eq!(u64_at(pod, &["securityContext", "runAsUser"]), 10001);
    assert_eq!(s(pod, &["automountServiceAccountToken"]), "false");
    let grace = Duration::from_secs(u64_at(pod, &["terminationGracePeriodSeconds"]));
    assert!(
        grace >= config.kafka.shutdown_timeout + Duration::from_secs(15),
        "terminationGracePeriodSeconds {grace:?} must exceed kafka.shutdown_timeout {:?} with a margin",
        config.kafka.shutdown_timeout
    );

    let c = &seq(pod, &["containers"])[0];
    assert_eq!(s(c, &["securityContext", "readOnlyRootFilesystem"]), "true");
    assert_eq!(
        s(c, &["securityContext", "allowPrivilegeEscalation"]),
        "false"
    );
    assert_eq!(
        s(c, &["securityContext", "capabilities", "drop", "0"]),
        "ALL"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(!s(c, &["resources", kind, res]).is_empty(), "{kind}.{res}");
        }
    }

    let port = seq(c, &["ports"])
        .iter()
        .find(|p| s(p, &["name"]) == "metrics")
        .expect("a port named metrics");
    assert_eq!(
        u64_at(port, &["containerPort"]),
        u64::from(config.metrics.listen.port())
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(s(c, &[probe, "httpGet", "path"]), path, "{probe}");
        assert_eq!(s(c, &[probe, "httpGet", "port"]), "metrics", "{probe}");
    }

    // The args run the service on the mounted ConfigMap.
    let args: Vec<String> = seq(c, &["args"])
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let config_path = PathBuf::from(&args[args.iter().position(|a| a == "--config").unwrap() + 1]);
    assert_eq!(args.iter().filter(|a| *a == "run").count(), 1, "{args:?}");
    let mount = seq(c, &["volumeMounts"])
        .iter()
        .find(|m| s(m, &["name"]) == "config")
        .expect("config mount");
    assert_eq!(
        config_path.parent().unwrap(),
        Path::new(&s(mount, &["mountPath"]))
    );
    let volume = seq(pod, &["volumes"])
        .iter()
        .find(|v| s(v, &["name"]) == "config")
        .unwrap();
    let cm = k8s("configmap.yaml", "ConfigMap");
    assert_eq!(
        s(volume, &["configMap", "name"]),
        s(&cm, &["metadata", "name"])
    );
    let file = config_path.file_name().unwrap().to_str().unwrap();
    assert!(
        at(&cm, &["data"]).get(file).is_some(),
        "ConfigMap key {file}"
    );
    // KEDA owns the count: an apply must not reset it.
    assert!(at(&dep, &["spec"]).get("replicas").is_none());
}

#[test]
fn service_pdb_and_autoscaler_select_the_deployment_and_its_group() {
    let config = configmap_config();
    let dep = k8s("deployment.yaml", "Deployment");
    let name = s(&dep, &["metadata", "name"]);
    let pod_labels = string_map(at(&dep, &["spec", "template", "metadata", "labels"]));
    let selects_pods = |sel: &Yaml, what: &str| {
        let sel = string_map(sel);
        assert!(!sel.is_empty(), "{what}: empty selector");
        for (k, v) in &sel {
            assert_eq!(pod_labels.get(k), Some(v), "{what} selects {k}={v}");
        }
    };
    selects_pods(at(&dep, &["spec", "selector", "matchLabels"]), "Deployment");
    let svc = k8s("service.yaml", "Service");
    selects_pods(at(&svc, &["spec", "selector"]), "Service");
    assert_eq!(
        s(&svc, &["metadata", "name"]),
        JOB,
        "the job label comes from it"
    );
    assert_eq!(s(&svc, &["spec", "ports", "0", "name"]), "metrics");
    let pdb = k8s("pdb.yaml", "PodDisruptionBudget");
    selects_pods(at(&pdb, &["spec", "selector", "matchLabels"]), "PDB");
    let sm = k8s("servicemonitor.yaml", "ServiceMonitor");
    let svc_labels = string_map(at(&svc, &["metadata", "labels"]));
    for (k, v) in string_map(at(&sm, &["spec", "selector", "matchLabels"])) {
        assert_eq!(
            svc_labels.get(&k),
            Some(&v),
            "ServiceMonitor selects {k}={v}"
        );
    }
    assert_eq!(s(&sm, &["spec", "endpoints", "0", "port"]), "metrics");

    let so = k8s("scaledobject.yaml", "ScaledObject");
    assert_eq!(s(&so, &["spec", "scaleTargetRef", "name"]), name);
    assert_eq!(s(&so, &["spec", "scaleTargetRef", "kind"]), "Deployment");
    let min = u64_at(&so, &["spec", "minReplicaCount"]);
    assert!(
        min >= 1,
        "never scale to zero: the digest timers live in the members"
    );
    assert!(u64_at(&so, &["spec", "maxReplicaCount"]) >= min);
    let mut topics = BTreeSet::new();
    let auth = k8s("scaledobject.yaml", "TriggerAuthentication");
    for t in seq(&so, &["spec", "triggers"]) {
        assert_eq!(s(t, &["type"]), "kafka");
        assert_eq!(s(t, &["metadata", "consumerGroup"]), config.kafka.group_id);
        assert_eq!(
            s(t, &["metadata", "bootstrapServers"]),
            config.kafka.brokers
        );
        assert_eq!(s(t, &["metadata", "offsetResetPolicy"]), "earliest");
        assert_eq!(
            s(t, &["authenticationRef", "name"]),
            s(&auth, &["metadata", "name"])
        );
        topics.insert(s(t, &["metadata", "topic"]));
    }
    let t = &config.kafka.topics;
    let inputs: BTreeSet<String> = [&t.application, &t.bounces, &t.scan_verdicts]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(topics, inputs, "one lag trigger per input topic");

    // Every secret key the pods and KEDA read is one the ExternalSecret provides.
    let ext = k8s("secret-reference.yaml", "ExternalSecret");
    let secret_name = s(&ext, &["spec", "target", "name"]);
    let provided: BTreeSet<String> = seq(&ext, &["spec", "data"])
        .iter()
        .map(|d| s(d, &["secretKey"]))
        .collect();
    for r in seq(&auth, &["spec", "secretTargetRef"]) {
        assert_eq!(s(r, &["name"]), secret_name);
        assert!(provided.contains(&s(r, &["key"])), "{r:?}");
    }
    let vol = seq(at(&dep, &["spec", "template", "spec"]), &["volumes"])
        .iter()
        .find(|v| s(v, &["name"]) == "secrets")
        .unwrap();
    assert_eq!(s(vol, &["secret", "secretName"]), secret_name);
    for i in seq(vol, &["secret", "items"]) {
        assert!(provided.contains(&s(i, &["key"])), "{i:?}");
    }
}

#[test]
fn compose_runs_two_instances_in_one_group_with_the_config_mounted() {
    let compose = yaml(&deploy("compose.yaml"));
    let services = at(&compose, &["services"]).as_mapping().unwrap();
    let instances: Vec<(String, &Yaml)> = services
        .iter()
        .filter(|(_, svc)| {
            svc.get("image")
                .and_then(|i| i.as_str())
                .is_some_and(|i| i.starts_with("mailgate-notify:"))
                && svc
                    .get("command")
                    .and_then(|c| c.as_sequence())
                    .is_some_and(|c| c.iter().any(|a| a.as_str() == Some("run")))
        })
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(instances.len(), 2, "two mailgate-notify instances");

    let mut groups = BTreeSet::new();
    for (name, svc) in &instances {
        let command: Vec<String> = seq(svc, &["command"])
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let at_config = command.iter().position(|a| a == "--config").unwrap();
        let in_container = &command[at_config + 1];
        let host_file = seq(svc, &["volumes"])
            .iter()
            .filter_map(|v| v.as_str())
            .find_map(|v| {
                let parts: Vec<&str> = v.split(':').collect();
                (parts.get(1) == Some(&in_container.as_str())).then(|| parts[0].to_string())
            })
            .unwrap_or_else(|| panic!("{name} does not mount {in_container}"));
        let path = deploy(&host_file);
        let config = load_config(&read(&path), path.parent().unwrap(), &host_file);
        assert_eq!(config.metrics.listen.ip().to_string(), "0.0.0.0", "{name}");
        groups.insert(config.kafka.group_id.clone());

        let grace = humantime::parse_duration(&s(svc, &["stop_grace_period"])).unwrap();
        assert!(
            grace > config.kafka.shutdown_timeout,
            "{name}: stop_grace_period {grace:?} must exceed kafka.shutdown_timeout"
        );
        assert_eq!(s(svc, &["read_only"]), "true", "{name}");
        assert_eq!(
            s(svc, &["depends_on", "kafka-init", "condition"]),
            "service_completed_successfully"
        );
    }
    assert_eq!(
        groups.len(),
        1,
        "both instances in one consumer group: {groups:?}"
    );

    // Prometheus scrapes both, at the configured port.
    let config = compose_config();
    let prom = yaml(&deploy("prometheus/prometheus.yml"));
    let job = seq(&prom, &["scrape_configs"])
        .iter()
        .find(|j| s(j, &["job_name"]) == JOB)
        .expect("a scrape job named mailgate-notify");
    let targets: BTreeSet<String> = seq(job, &["static_configs", "0", "targets"])
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = instances
        .iter()
        .map(|(name, _)| format!("{name}:{}", config.metrics.listen.port()))
        .collect();
    assert_eq!(targets, expected);
}

#[test]
fn compose_stack_has_kraft_kafka_with_the_topics_mailpit_prometheus_and_grafana() {
    let compose = yaml(&deploy("compose.yaml"));
    let svc = |name: &str| at(&compose, &["services", name]).clone();

    let kafka = svc("kafka");
    assert!(s(&kafka, &["image"]).starts_with("apache/kafka:"));
    let env = string_map(at(&kafka, &["environment"]));
    let roles: BTreeSet<&str> = env["KAFKA_PROCESS_ROLES"].split(',').collect();
    assert_eq!(
        roles,
        BTreeSet::from(["broker", "controller"]),
        "KRaft combined mode"
    );
    assert!(env.contains_key("KAFKA_CONTROLLER_QUORUM_VOTERS"));
    assert!(
        !env.keys().any(|k| k.contains("ZOOKEEPER")),
        "no ZooKeeper in KRaft mode"
    );

    // kafka-init creates every topic of the config, the changelog compacted.
    let config = compose_config();
    let init = seq(&svc("kafka-init"), &["command"])[0]
        .as_str()
        .unwrap()
        .to_string();
    let t = &config.kafka.topics;
    for topic in [
        &t.application,
        &t.bounces,
        &t.scan_verdicts,
        &t.state,
        &t.dead_letter,
    ] {
        let line = init
            .lines()
            .find(|l| l.contains(&format!("--topic {topic} ")))
            .unwrap_or_else(|| panic!("kafka-init does not create {topic}"));
        if topic == &t.state {
            assert!(line.contains("cleanup.policy=compact"), "{line}");
        }
    }
    let partitions = |topic: &str| {
        let line = init
            .lines()
            .find(|l| l.contains(&format!("--topic {topic} ")))
            .unwrap();
        line.split("--partitions ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        partitions(&t.state),
        partitions(&t.application),
        "the changelog needs the partitions of its source"
    );
    assert!(
        config.kafka.brokers.starts_with("kafka:"),
        "the instances use the in-network listener"
    );
    assert!(env["KAFKA_ADVERTISED_LISTENERS"].contains(&config.kafka.brokers));

    let mailpit = svc("mailpit");
    assert!(s(&mailpit, &["image"]).starts_with("axllent/mailpit:"));
    let ports: Vec<String> = seq(&mailpit, &["ports"])
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(ports.iter().any(|p| p == "8025:8025"), "the web UI on 8025");
    assert_eq!(config.smtp.host, "mailpit");
    assert_eq!(config.smtp.port, 1025);

    let prom = svc("prometheus");
    let vols: Vec<String> = seq(&prom, &["volumes"])
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for f in ["prometheus.yml", "alerts.yaml"] {
        assert!(
            vols.contains(&format!("./prometheus/{f}:/etc/prometheus/{f}:ro")),
            "{vols:?}"
        );
    }
    assert!(s(&svc("grafana"), &["image"]).starts_with("grafana/grafana"));
}

#[test]
fn dockerfile_builds_in_stages_and_runs_unprivileged_on_a_slim_image() {
    let text = read(&deploy("Dockerfile"));
    // Instructions with their continuation lines joined, comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        pending.push_str(t.trim_end_matches('\\'));
        pending.push(' ');
        if !t.ends_with('\\') {
            instructions.push(pending.trim().to_string());
            pending.clear();
        }
    }
    let args: BTreeMap<String, String> = instructions
        .iter()
        .filter_map(|i| i.strip_prefix("ARG "))
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let expand = |s: &str| {
        let mut s = s.to_string();
        for (k, v) in &args {
            s = s.replace(&format!("${{{k}}}"), v);
        }
        s
    };
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.starts_with("FROM "))
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 3, "a multi-stage build");
    let builder = expand(&instructions[stages[0]]);
    assert!(builder.contains("rust:"), "{builder}");
    // The toolchain is at least the crate's rust-version.
    let manifest: toml::Value = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    assert!(parse(&args["RUST_VERSION"]) >= parse(msrv));
    assert!(
        instructions.iter().any(|i| i.contains("cargo chef cook")),
        "dependencies are built in their own cached layer"
    );

    let runtime = &instructions[*stages.last().unwrap()..];
    let from = expand(&runtime[0]);
    assert!(
        from.contains("-slim") || from.contains("distroless"),
        "slim runtime: {from}"
    );
    assert!(!from.contains("rust:"), "no toolchain at run time: {from}");
    let run = runtime
        .iter()
        .filter(|i| i.starts_with("RUN "))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        run.contains("libssl3") && run.contains("ca-certificates"),
        "{run}"
    );
    let users: Vec<&String> = runtime.iter().filter(|i| i.starts_with("USER ")).collect();
    let user = users.last().expect("a USER in the runtime stage");
    let uid: u32 = user["USER ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid, so runAsNonRoot can check it");
    assert_eq!(uid, 10001);
    let dep = k8s("deployment.yaml", "Deployment");
    assert_eq!(
        u64_at(
            &dep,
            &["spec", "template", "spec", "securityContext", "runAsUser"]
        ),
        u64::from(uid)
    );
    let config = configmap_config();
    assert!(runtime.contains(&format!("EXPOSE {}", config.metrics.listen.port())));
    let entry = runtime
        .iter()
        .find(|i| i.starts_with("ENTRYPOINT "))
        .unwrap();
    assert!(entry.contains("mailgate-notify"));

    // The healthcheck (exec form, JSON) probes /healthz on the metrics port.
    let hc = runtime
        .iter()
        .find(|i| i.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    let cmd: Vec<String> = serde_json::from_str(&hc[hc.find('[').unwrap()..]).unwrap();
    assert_eq!(cmd[..2], ["bash", "-c"]);
    assert!(cmd[2].contains(&format!(
        "/dev/tcp/127.0.0.1/{}",
        config.metrics.listen.port()
    )));
    assert!(cmd[2].contains("GET /healthz HTTP/1.0\\r\\n"));

    let ignore = read(&deploy("Dockerfile.dockerignore"));
    for kept_out in ["target", ".git", ".cache"] {
        assert!(ignore.lines().any(|l| l.trim() == kept_out), "{kept_out}");
    }
}

#[test]
fn compose_seed_events_decode_per_the_contract() {
    let config = compose_config();
    let t = &config.kafka.topics;
    let mut count = 0;
    for (topic, kind) in [
        (&t.application, EventKind::Application),
        (&t.bounces, EventKind::Bounce),
        (&t.scan_verdicts, EventKind::ScanVerdict),
    ] {
        let path = deploy(&format!("compose/seed/{topic}.jsonl"));
        for (n, line) in read(&path).lines().enumerate() {
            decode_json(kind, line.as_bytes())
                .unwrap_or_else(|e| panic!("{} line {}: {e}", path.display(), n + 1));
            count += 1;
        }
    }
    assert!(count >= 6, "a few events of each kind");
}
