//! The wiring: the whole pipeline on one screen (DESIGN §1, §5).
//!
//! ```text
//! Kafka ─► ingest (decode, route by topic) ─┬─► RulesRoute   (rules::RuleFanout)  ─┐
//!                                           ├─► BounceRoute  (bounce::BounceRouter)├─► render ─► Dispatcher ─► deliver::Outbox ─► relay
//!                                           └─► ApplicationRoute (aggregate, actor) ┘        completions ─► DLQ / Ack::done / mark_sent
//! ```
//! A record's `Ack` is completed when every notification derived from it is settled (or, for
//! application events, when its state change is durable in the changelog).

pub mod application_route;
pub mod bounce_route;
pub mod clock;
pub mod dispatch;
pub mod metrics;
pub mod rules_route;

use crate::aggregate::{AggregateMetrics, Aggregator};
use crate::bounce::{BounceMetrics, BounceRouter};
use crate::config::{Config, EnvelopeSender};
use crate::event::registry::RegistryClient;
use crate::event::{Decoder, SchemaStore};
use crate::ingest::{self, Ingest, Routes};
use crate::render::Renderer;
use crate::rules::{RuleFanout, RuleMetrics};
use crate::state::Changelog;
use application_route::{ApplicationDeps, ApplicationRoute};
use bounce_route::BounceRoute;
use clock::{Clock, SystemClock};
use dispatch::Dispatcher;
use metrics::AppMetrics;
use rules_route::RulesRoute;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A component refused its configuration or could not reach its peer.
    #[error("{component}: {detail}")]
    Start {
        /// `schemas`, `templates`, `smtp`, `kafka`, `state`, `metrics`.
        component: &'static str,
        /// What went wrong.
        detail: String,
    },
}

fn start_err(component: &'static str, e: impl std::fmt::Display) -> AppError {
    AppError::Start {
        component,
        detail: e.to_string(),
    }
}

/// How the shell runs (the demo and tests change these).
pub struct Options {
    /// The clock handed to the deciders.
    pub clock: Arc<dyn Clock>,
    /// Real-time interval of the aggregator's and the bounce router's deadline checks.
    pub tick: Duration,
    /// Keep application state in the changelog topic (off for brokers without one).
    pub changelog: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            tick: Duration::from_millis(250),
            changelog: true,
        }
    }
}

/// A running service instance.
pub struct Running {
    /// Its metrics registry.
    pub registry: prometheus::Registry,
    /// Where `/metrics`, `/healthz`, `/readyz` listen.
    pub metrics_addr: SocketAddr,
    ingest: Ingest,
    dispatcher: Arc<Dispatcher>,
    bounce: Arc<BounceRoute>,
    stop_tasks: tokio::sync::watch::Sender<bool>,
    shutdown_timeout: Duration,
}

impl Running {
    /// Stops fetching, drains in-flight work (bounded by `kafka.shutdown_timeout`), commits,
    /// closes the SMTP pool.
    pub async fn shutdown(mut self) {
        // Collected bounces wait for their window's summary: send it now rather than let the
        // drain time out.
        self.bounce.flush_all();
        self.ingest.shutdown();
        self.ingest.wait().await;
        let _ = self.stop_tasks.send(true);
        let outbox = self.dispatcher.outbox().clone();
        outbox.shutdown(self.shutdown_timeout).await;
        tracing::info!("stopped");
    }

    /// Whether ingest is assigned and restored and the relay's breaker is not open.
    pub fn ready(&self) -> Result<(), String> {
        readiness(self.ingest.status(), &self.dispatcher)
    }

    /// Records in flight.
    pub fn in_flight(&self) -> usize {
        self.ingest.in_flight()
    }
}

/// `/readyz`: partitions assigned and restored, and the relay's breaker not open.
fn readiness(
    st: &crate::ingest::consumer::IngestStatus,
    dispatcher: &Dispatcher,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    if st.assigned.load(Ordering::SeqCst) == 0 {
        return Err("no partition assigned yet".into());
    }
    let restoring = st.restoring.load(Ordering::SeqCst);
    if restoring > 0 {
        return Err(format!("{restoring} partitions restoring state"));
    }
    if dispatcher.outbox().breaker() == crate::deliver::BreakerState::Open {
        return Err("SMTP relay unreachable (circuit breaker open)".into());
    }
    Ok(())
}

/// Starts every component and returns once ingest is subscribed.
pub async fn start(config: Config, opts: Options) -> Result<Running, AppError> {
    let registry = crate::telemetry::registry();
    let store = match &config.schemas.extra_dir {
        Some(dir) => SchemaStore::with_extra_dir(dir).map_err(|e| start_err("schemas", e))?,
        None => SchemaStore::builtin(),
    };
    let registry_client = match &config.schemas.registry_url {
        Some(url) => Some(Arc::new(
            RegistryClient::new(
                url,
                config
                    .schemas
                    .registry_timeout
                    .unwrap_or(Duration::from_secs(5)),
            )
            .map_err(|e| start_err("schemas", e))?,
        )),
        None => None,
    };
    let decoder = Arc::new(Decoder::new(Arc::new(store), registry_client));
    let renderer =
        Arc::new(Renderer::new(&config, &registry).map_err(|e| start_err("templates", e))?);
    let (outbox, completions) =
        crate::deliver::start(&config.smtp, &registry).map_err(|e| start_err("smtp", e))?;
    let app_metrics = AppMetrics::new(&registry);
    let envelope = match config.sender.envelope() {
        EnvelopeSender::Null => None,
        EnvelopeSender::Address(a) => Some(a.as_str().to_string()),
    };
    let dispatcher = Dispatcher::new(outbox, app_metrics.clone(), envelope);
    tokio::spawn(dispatcher.clone().run_completions(completions));

    let changelog = if opts.changelog && config.application.enabled {
        let log = Changelog::new(&config.kafka).map_err(|e| start_err("state", e))?;
        log.ensure_topic()
            .await
            .map_err(|e| start_err("state", e))?;
        Some(log)
    } else {
        None
    };
    let rules = Arc::new(RulesRoute {
        fanout: RuleFanout::new(&config),
        metrics: RuleMetrics::register(&registry),
        app_metrics: app_metrics.clone(),
        renderer: renderer.clone(),
        dispatcher: dispatcher.clone(),
    });
    let bounce = BounceRoute::new(
        BounceRouter::new(&config),
        BounceMetrics::register(&registry),
        app_metrics.clone(),
        renderer.clone(),
        dispatcher.clone(),
        opts.clock.clone(),
    );
    let (stop_tasks, stop_rx) = tokio::sync::watch::channel(false);
    let application = ApplicationRoute::start(ApplicationDeps {
        aggregator: Aggregator::new(config.application.clone())
            .with_metrics(AggregateMetrics::register(&registry)),
        recipients: config.application.recipients.clone(),
        enabled: config.application.enabled,
        changelog,
        renderer: renderer.clone(),
        dispatcher: dispatcher.clone(),
        clock: opts.clock.clone(),
        tick: opts.tick,
        metrics: app_metrics.clone(),
        registry: registry.clone(),
        stop: stop_rx.clone(),
    });
    let routes = Routes {
        application,
        bounces: bounce.clone(),
        scan_verdicts: rules,
    };
    let ingest =
        ingest::start(&config, routes, decoder, &registry).map_err(|e| start_err("kafka", e))?;
    dispatcher.set_dlq(ingest.dlq());

    // The burst-summary timer.
    {
        let bounce = bounce.clone();
        let mut stop = stop_rx.clone();
        let tick = opts.tick;
        tokio::spawn(async move {
            let mut t = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = t.tick() => bounce.flush_due(),
                    _ = stop.changed() => return,
                }
            }
        });
    }
    // The HTTP listener.
    let listener = tokio::net::TcpListener::bind(config.metrics.listen)
        .await
        .map_err(|e| start_err("metrics", format!("bind {}: {e}", config.metrics.listen)))?;
    let metrics_addr = listener.local_addr().map_err(|e| start_err("metrics", e))?;
    let ready_state = (ingest.status().clone(), dispatcher.clone());
    let ready: crate::telemetry::http::ReadinessCheck =
        Arc::new(move || readiness(&ready_state.0, &ready_state.1));
    {
        let mut stop = stop_rx.clone();
        let registry = registry.clone();
        tokio::spawn(crate::telemetry::http::serve(
            listener,
            registry,
            ready,
            async move {
                let _ = stop.changed().await;
            },
        ));
    }
    tracing::info!(metrics = %metrics_addr, group = %config.kafka.group_id, "mailgate-notify started");
    Ok(Running {
        registry,
        metrics_addr,
        ingest,
        dispatcher,
        bounce,
        stop_tasks,
        shutdown_timeout: config.kafka.shutdown_timeout,
    })
}

/// Runs until `shutdown` resolves, then drains and stops.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AppError> {
    run_with(config, Options::default(), shutdown).await
}

/// [`run`] with non-default [`Options`] (the binary's hidden clock override for rig tests).
pub async fn run_with(
    config: Config,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AppError> {
    let running = start(config, opts).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
