//! Telemetry: metrics on an explicit Prometheus registry and the helpers every module uses to
//! declare them. Convention (DESIGN §6): each module owns a metrics struct registered up front on
//! the registry it is given, names are `mailgate_notify_<noun>_<unit>_total`, label sets are
//! bounded and every label value is pre-created at zero; each telemetry *event* is one struct
//! with one `emit()` that logs through `tracing` and counts.

pub mod http;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Prefix of every metric name.
pub const PREFIX: &str = "mailgate_notify_";

/// A fresh registry for one service instance (tests create one each, so they never share).
pub fn registry() -> Registry {
    Registry::new()
}

fn full(name: &str) -> String {
    if name.starts_with(PREFIX) {
        name.to_string()
    } else {
        format!("{PREFIX}{name}")
    }
}

/// Registers a counter vector and pre-creates each given label combination at zero.
/// Registration only fails on a programming error (duplicate name, bad label), so it panics.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    precreate: &[&[&str]],
) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(full(name), help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    for values in precreate {
        c.with_label_values(values);
    }
    c
}

/// Registers a gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(full(name), help))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

/// Registers a gauge vector with pre-created label values.
pub fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    precreate: &[&[&str]],
) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(full(name), help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    for values in precreate {
        g.with_label_values(values);
    }
    g
}

/// Registers a histogram with the given buckets (seconds).
pub fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(full(name), help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

/// Registers a histogram vector with pre-created label values.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
    precreate: &[&[&str]],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(full(name), help).buckets(buckets),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    for values in precreate {
        h.with_label_values(values);
    }
    h
}

/// Latency buckets from 1 ms to ~1 min, for SMTP sends and event-to-accepted latency.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
}

/// The Prometheus text exposition of a registry.
pub fn encode_text(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Value of one sample in a text exposition (`name{a="x",b="y"}`), for tests and the demo.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}
