//! Bounces → bounce router → notices (or a burst summary when the window closes). A collected
//! bounce's record is done only once the summary that counts it was accepted, so a crash never
//! loses it.

use super::clock::Clock;
use super::dispatch::{Countdown, Dispatcher, Meta, Source};
use super::metrics::AppMetrics;
use crate::bounce::{BounceDecision, BounceMetrics, BounceRouter, BurstSummary};
use crate::event::time::Timestamp;
use crate::event::Event;
use crate::ingest::{Ack, Decoded, Downstream};
use crate::render::model::{BounceBrief, BounceBurstSummary, BounceNotice, Request};
use crate::render::Renderer;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The bounce router as a [`Downstream`], plus its summary timer.
pub struct BounceRoute {
    router: Mutex<BounceRouter>,
    /// Acks of collected bounces, by the end of their window.
    held: Mutex<BTreeMap<Timestamp, Vec<Ack>>>,
    metrics: BounceMetrics,
    app_metrics: AppMetrics,
    renderer: Arc<Renderer>,
    dispatcher: Arc<Dispatcher>,
    clock: Arc<dyn Clock>,
}

impl BounceRoute {
    /// Wires the router.
    pub fn new(
        router: BounceRouter,
        metrics: BounceMetrics,
        app_metrics: AppMetrics,
        renderer: Arc<Renderer>,
        dispatcher: Arc<Dispatcher>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(BounceRoute {
            router: Mutex::new(router),
            held: Mutex::new(BTreeMap::new()),
            metrics,
            app_metrics,
            renderer,
            dispatcher,
            clock,
        })
    }

    /// Sends every summary whose window has closed; called by the shell's timer.
    pub fn flush_due(&self) {
        self.flush_at(self.clock.now());
    }

    /// Closes the open window now and sends its summary (at shutdown, so that held records do
    /// not wait out the drain timeout).
    pub fn flush_all(&self) {
        self.flush_at(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    }

    fn flush_at(&self, now: Timestamp) {
        loop {
            let summary = self
                .router
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .flush(now);
            let Some(summary) = summary else { break };
            self.metrics.observe_summary(&summary);
            let acks: Vec<Ack> = {
                let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                let keep =
                    held.split_off(&(summary.window_end + chrono::TimeDelta::milliseconds(1)));
                let due = std::mem::replace(&mut *held, keep);
                due.into_values().flatten().collect()
            };
            self.send_summary(summary, acks);
        }
    }

    fn send_summary(&self, s: BurstSummary, acks: Vec<Ack>) {
        let counts = s.by_class.iter().copied().collect();
        let first: Vec<BounceBrief> = s
            .first
            .iter()
            .map(|b| BounceBrief {
                queue_id: b.queue_id.clone(),
                class: b.class,
                reason: b.reason.clone(),
            })
            .collect();
        let requests: Vec<Request> = s
            .recipients
            .iter()
            .filter(|g| !g.addresses.is_empty())
            .map(|g| {
                Request::BounceBurst(BounceBurstSummary {
                    window_start: s.window_start,
                    window_end: s.window_end,
                    counts: BTreeMap::clone(&counts),
                    first: first.clone(),
                    total: s.total,
                    recipients: g.addresses.iter().map(|a| a.as_str().to_string()).collect(),
                    language: g.language.clone(),
                    id_seed: format!("burst:{}", s.window_start.timestamp_millis()),
                })
            })
            .collect();
        let done_all = move || {
            for a in acks {
                a.done();
            }
        };
        if requests.is_empty() {
            done_all();
            return;
        }
        let meta = Meta {
            kind: "bounce",
            group: "summary",
            source: Source::timer(),
        };
        let items: Vec<_> = requests.into_iter().map(|r| (r, meta.clone())).collect();
        let work = Countdown::new(items.len(), done_all);
        self.dispatcher.send_batch(
            self.renderer.clone(),
            items,
            Arc::new(move |_| work.one_done()),
        );
    }
}

impl Downstream for BounceRoute {
    fn handle(&self, record: Decoded, ack: Ack) {
        let source = Source::of(&record);
        let Event::Bounce(event) = record.event else {
            tracing::error!(topic = %record.topic, "non-bounce event routed to the bounce router; skipped");
            ack.done();
            return;
        };
        let now = self.clock.now();
        let decision = self
            .router
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .route(&event, now);
        self.metrics.observe(&decision, &event);
        match decision {
            BounceDecision::Suppressed(s) => {
                let coarse = match s.as_str() {
                    "loop" => "loop",
                    _ => "disabled",
                };
                self.app_metrics.suppressed("bounce", coarse);
                ack.done();
            }
            BounceDecision::Collected { window_closes_at } => {
                self.app_metrics.suppressed("bounce", "burst");
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(window_closes_at)
                    .or_default()
                    .push(ack);
            }
            BounceDecision::Notify(notice) => {
                let event = Arc::new(event);
                let requests: Vec<Request> = notice
                    .recipients
                    .iter()
                    .filter(|g| !g.addresses.is_empty())
                    .map(|g| {
                        Request::Bounce(BounceNotice {
                            event: event.clone(),
                            recipients: g
                                .addresses
                                .iter()
                                .map(|a| a.as_str().to_string())
                                .collect(),
                            language: g.language.clone(),
                        })
                    })
                    .collect();
                if requests.is_empty() {
                    ack.done();
                    return;
                }
                let meta = Meta {
                    kind: "bounce",
                    group: "admins",
                    source,
                };
                let items: Vec<_> = requests.into_iter().map(|r| (r, meta.clone())).collect();
                let work = Countdown::for_record(ack, items.len());
                self.dispatcher.send_batch(
                    self.renderer.clone(),
                    items,
                    Arc::new(move |_| work.one_done()),
                );
            }
        }
    }
}
