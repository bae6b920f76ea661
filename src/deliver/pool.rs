//! The outbox and the workers behind it.
//!
//! Admission is a semaphore of `outbox_capacity` permits: a notification holds its permit from
//! `submit` until its completion is handed over, whether it is queued, being sent or waiting for
//! a retry, so the outbox can never hold more than its bound and a full outbox is what pauses
//! ingest. Ready work sits in one FIFO that `pool_size` workers take from; each worker owns at
//! most one connection and reuses it for up to `max_messages_per_connection` transactions.
//! Work that must wait (transient failure) goes to a scheduler task that puts it back in the FIFO
//! when its backoff is over. Connection attempts pass the circuit breaker first.

use crate::config::{SmtpConfig, TransportKind};
use crate::deliver::backoff::Backoff;
use crate::deliver::breaker::{Breaker, BreakerState, Permit, Transition};
use crate::deliver::error::{DeliverError, Stage};
use crate::deliver::metrics::{
    BreakerChanged, ConnectAttempted, DeliverMetrics, DeliveryDeferred, RecipientRejected,
    RecipientsAccepted, TxOutcome,
};
use crate::deliver::ratelimit::RateLimiter;
use crate::deliver::session::{self, Connector, Session};
use crate::deliver::wire::{WireStats, WireTotals};
use crate::deliver::{Completion, Outgoing, Rejection};
use lettre::Address;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A connection idle this long is checked with NOOP before reuse: relays drop idle clients
/// (Postfix after 300 s, 10 s under stress), and a message sent into a dead connection would
/// cost a retry delay.
const NOOP_AFTER_IDLE: Duration = Duration::from_secs(2);
/// A connection idle this long is closed with QUIT rather than kept open for nothing.
const CLOSE_AFTER_IDLE: Duration = Duration::from_secs(30);
/// While another worker probes the relay, re-check the breaker at least this often.
const PROBE_RECHECK: Duration = Duration::from_secs(1);
/// On shutdown, time given to workers to QUIT their connections after the drain.
const QUIT_GRACE: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short, non-async locks leaves consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts what is in the outbox; shared with every admitted job (not with the pool, so a job
/// never keeps the pool alive).
struct Occupancy {
    depth: AtomicUsize,
    drained: Notify,
    metrics: DeliverMetrics,
}

/// A notification's place in the outbox; released when dropped (completed or abandoned).
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    occ: Arc<Occupancy>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let left = self.occ.depth.fetch_sub(1, Ordering::AcqRel) - 1;
        self.occ.metrics.set_depth(left);
        if left == 0 {
            self.occ.drained.notify_waiters();
        }
    }
}

/// The envelope of one attempt: the sender (`None` = `<>`) and each recipient as given and parsed.
pub(crate) type Envelope = (Option<Address>, Vec<(String, Address)>);

/// One notification in the outbox and where each of its recipients stands.
pub(crate) struct Job {
    pub(crate) out: Outgoing,
    /// Recipients neither accepted nor permanently failed yet.
    pending: Vec<String>,
    accepted: Vec<String>,
    rejected: Vec<Rejection>,
    /// Transient failures so far (the backoff exponent).
    attempts: u32,
    /// The transient error of the current attempt, for the deferral log.
    deferred: Option<DeliverError>,
    /// How many of `accepted` / `rejected` have been counted and logged.
    reported: (usize, usize),
    _admission: Admission,
}

impl Job {
    fn new(out: Outgoing, admission: Admission) -> Job {
        let mut pending: Vec<String> = Vec::with_capacity(out.recipients.len());
        for r in &out.recipients {
            // One RCPT per distinct recipient: a duplicate would get the message twice.
            if !pending.contains(r) {
                pending.push(r.clone());
            }
        }
        Job {
            out,
            pending,
            accepted: Vec::new(),
            rejected: Vec::new(),
            attempts: 0,
            deferred: None,
            reported: (0, 0),
            _admission: admission,
        }
    }

    /// The parsed envelope of this attempt: the sender and the pending recipients whose address
    /// parses (the others fail permanently here). `None` when nothing is left to send.
    pub(crate) fn envelope(&mut self) -> Option<Envelope> {
        let from = match self.out.envelope_from.as_deref() {
            None => None,
            Some(s) if s.trim().is_empty() || s.trim() == "<>" => None,
            Some(s) => match session::parse_address(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.fail_all_pending(&e);
                    return None;
                }
            },
        };
        let mut rcpts = Vec::with_capacity(self.pending.len());
        for raw in self.pending.clone() {
            match session::parse_address(&raw) {
                Ok(a) => rcpts.push((raw, a)),
                Err(e) => self.fail_one(&raw, &e),
            }
        }
        (!rcpts.is_empty()).then_some((from, rcpts))
    }

    pub(crate) fn accept(&mut self, rcpts: &[String]) {
        self.pending.retain(|p| !rcpts.contains(p));
        self.accepted.extend(rcpts.iter().cloned());
    }

    /// One recipient failed: a transient error keeps it pending, a permanent one rejects it.
    pub(crate) fn fail_one(&mut self, rcpt: &str, e: &DeliverError) {
        if e.is_retryable() {
            self.deferred = Some(e.clone());
            return;
        }
        if let Some(i) = self.pending.iter().position(|p| p == rcpt) {
            let recipient = self.pending.remove(i);
            self.rejected.push(Rejection {
                recipient,
                error: e.clone(),
            });
        }
    }

    pub(crate) fn fail_these(&mut self, rcpts: &[String], e: &DeliverError) {
        for r in rcpts {
            self.fail_one(r, e);
        }
    }

    pub(crate) fn fail_all_pending(&mut self, e: &DeliverError) {
        let all = self.pending.clone();
        self.fail_these(&all, e);
    }

    fn counts(&self) -> (usize, usize, usize) {
        (self.accepted.len(), self.rejected.len(), self.pending.len())
    }
}

/// A job waiting for its retry time.
struct Delayed {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest due comes first.
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// State shared by the outbox handles, the workers and the scheduler.
pub(crate) struct Shared {
    metrics: DeliverMetrics,
    occ: Arc<Occupancy>,
    permits: Arc<Semaphore>,
    capacity: usize,
    ready_tx: mpsc::UnboundedSender<Job>,
    ready_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>,
    retry_tx: mpsc::UnboundedSender<(Instant, Job)>,
    completions: mpsc::Sender<Completion>,
    breaker: Mutex<Breaker>,
    breaker_tx: watch::Sender<BreakerState>,
    limiter: Option<Mutex<RateLimiter>>,
    stop_tx: watch::Sender<bool>,
    backoff: Backoff,
    max_per_connection: usize,
    totals: Arc<WireTotals>,
}

impl Shared {
    fn admit(&self, permit: OwnedSemaphorePermit, out: Outgoing) {
        let depth = self.occ.depth.fetch_add(1, Ordering::AcqRel) + 1;
        self.metrics.set_depth(depth);
        let job = Job::new(
            out,
            Admission {
                _permit: permit,
                occ: self.occ.clone(),
            },
        );
        // The receiver lives in `self`: sending cannot fail while we exist.
        let _ = self.ready_tx.send(job);
    }

    async fn next_job(&self) -> Option<Job> {
        self.ready_rx.lock().await.recv().await
    }

    fn breaker_changed(&self, t: Transition) {
        BreakerChanged { transition: t }.emit(&self.metrics);
        self.breaker_tx.send_replace(t.to());
    }

    /// Waits until the breaker lets this worker connect; `true` when it is the probe.
    async fn connect_permit(&self) -> bool {
        let mut rx = self.breaker_tx.subscribe();
        loop {
            rx.borrow_and_update();
            let (permit, transition) = lock(&self.breaker).permit(Instant::now().into_std());
            if let Some(t) = transition {
                self.breaker_changed(t);
            }
            match permit {
                Permit::Go => return false,
                Permit::Probe => return true,
                Permit::WaitUntil(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(Instant::from_std(t)) => {}
                        _ = rx.changed() => {}
                    }
                }
                Permit::WaitForProbe => {
                    tokio::select! {
                        _ = tokio::time::sleep(PROBE_RECHECK) => {}
                        _ = rx.changed() => {}
                    }
                }
            }
        }
    }

    fn connect_result(&self, result: Result<(), &DeliverError>, probe: bool) {
        let now = Instant::now().into_std();
        let transition = match result {
            Ok(()) => lock(&self.breaker).on_success(now),
            Err(_) => lock(&self.breaker).on_failure(now),
        };
        ConnectAttempted {
            error: result.err(),
            probe,
        }
        .emit(&self.metrics);
        if let Some(t) = transition {
            self.breaker_changed(t);
        }
    }

    /// Reports what changed since the last report, then completes the job or schedules its
    /// pending recipients again.
    async fn settle(&self, mut job: Job, rng: &mut StdRng) {
        let (acc, rej) = job.reported;
        if job.accepted.len() > acc {
            RecipientsAccepted {
                message_id: &job.out.message_id,
                count: job.accepted.len() - acc,
            }
            .emit(&self.metrics);
        }
        for r in &job.rejected[rej..] {
            RecipientRejected {
                message_id: &job.out.message_id,
                recipient: &r.recipient,
                error: &r.error,
            }
            .emit(&self.metrics);
        }
        job.reported = (job.accepted.len(), job.rejected.len());

        if job.pending.is_empty() {
            let Job {
                out,
                accepted,
                rejected,
                attempts,
                _admission,
                ..
            } = job;
            let completion = Completion {
                ticket: out.ticket,
                accepted,
                rejected,
                transient_failures: attempts,
            };
            if self.completions.send(completion).await.is_err() {
                tracing::warn!(
                    message_id = out.message_id,
                    "completion receiver is gone; the outcome is lost (the source record stays uncommitted)"
                );
            }
            // `_admission` drops here: the outbox place is released after the hand-over.
            return;
        }
        let error = job.deferred.take().unwrap_or(DeliverError::Protocol {
            stage: Stage::Connect,
            message: "no outcome".into(),
        });
        let delay = self.backoff.delay(job.attempts, rng);
        DeliveryDeferred {
            message_id: &job.out.message_id,
            recipients: job.pending.len(),
            attempt: job.attempts,
            retry_in: delay,
            error: &error,
        }
        .emit(&self.metrics);
        job.attempts = job.attempts.saturating_add(1);
        let _ = self.retry_tx.send((Instant::now() + delay, job));
    }

    /// One attempt of one job over this worker's connection (opened if needed).
    async fn run_smtp(
        &self,
        mut job: Job,
        connector: &Connector,
        session: &mut Option<Session>,
        rng: &mut StdRng,
    ) {
        if job.pending.is_empty() {
            return self.settle(job, rng).await;
        }
        if let Some(s) = session.as_mut() {
            if s.idle_for() > NOOP_AFTER_IDLE && !s.alive().await {
                *session = None;
            }
        }
        let s = match session {
            Some(s) => s,
            None => {
                let probe = self.connect_permit().await;
                match connector.connect(&self.metrics.connections).await {
                    Ok(s) => {
                        self.connect_result(Ok(()), probe);
                        session.insert(s)
                    }
                    Err(e) => {
                        self.connect_result(Err(&e), probe);
                        job.fail_all_pending(&e);
                        return self.settle(job, rng).await;
                    }
                }
            }
        };
        if let Some(limiter) = &self.limiter {
            let wait = lock(limiter).reserve(Instant::now().into_std());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let before = job.counts();
        let started = Instant::now();
        let broken = s.transact(&mut job).await;
        let after = job.counts();
        let outcome = match (after.0 > before.0, after.2 > 0) {
            (true, false) if after.1 == before.1 => TxOutcome::Accepted,
            (true, _) => TxOutcome::Partial,
            (false, true) => TxOutcome::Transient,
            (false, false) => TxOutcome::Permanent,
        };
        self.metrics.observe_send(outcome, started.elapsed());
        if broken {
            *session = None;
        } else if s.messages >= self.max_per_connection {
            if let Some(s) = session.take() {
                s.quit().await;
            }
        }
        self.settle(job, rng).await
    }

    /// One attempt of one job with the `file` transport.
    async fn run_file(
        &self,
        mut job: Job,
        transport: &lettre::AsyncFileTransport<lettre::Tokio1Executor>,
        rng: &mut StdRng,
    ) {
        use lettre::AsyncTransport;
        if let Some((from, rcpts)) = job.envelope() {
            let raws: Vec<String> = rcpts.iter().map(|(r, _)| r.clone()).collect();
            let addrs: Vec<Address> = rcpts.into_iter().map(|(_, a)| a).collect();
            match lettre::address::Envelope::new(from, addrs) {
                Ok(envelope) => match transport.send_raw(&envelope, &job.out.bytes).await {
                    Ok(_) => job.accept(&raws),
                    Err(e) => job.fail_these(&raws, &file_error(&e)),
                },
                Err(e) => job.fail_these(
                    &raws,
                    &DeliverError::Client {
                        stage: Stage::File,
                        message: e.to_string(),
                    },
                ),
            }
        }
        self.settle(job, rng).await
    }
}

fn file_error(e: &lettre::transport::file::Error) -> DeliverError {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return DeliverError::File {
                kind: io.kind(),
                message: io.to_string(),
            };
        }
        source = s.source();
    }
    DeliverError::File {
        kind: std::io::ErrorKind::Other,
        message: e.to_string(),
    }
}

/// Resolves when the stop signal is (or already was) raised.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn smtp_worker(shared: Arc<Shared>, connector: Arc<Connector>) {
    let mut stop = shared.stop_tx.subscribe();
    let mut rng = StdRng::from_os_rng();
    let mut session: Option<Session> = None;
    loop {
        let idle = session.is_some();
        let job = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            job = shared.next_job() => job,
            _ = tokio::time::sleep(CLOSE_AFTER_IDLE), if idle => {
                if let Some(s) = session.take() {
                    s.quit().await;
                }
                continue;
            }
        };
        let Some(job) = job else { break };
        tokio::select! {
            biased;
            // Stopping abandons the attempt: the job is never completed, so its source record
            // is not committed and comes back after a restart (at least once).
            _ = stopped(&mut stop) => break,
            _ = shared.run_smtp(job, &connector, &mut session, &mut rng) => {}
        }
    }
    if let Some(s) = session.take() {
        s.quit().await;
    }
}

async fn file_worker(
    shared: Arc<Shared>,
    transport: lettre::AsyncFileTransport<lettre::Tokio1Executor>,
) {
    let mut stop = shared.stop_tx.subscribe();
    let mut rng = StdRng::from_os_rng();
    loop {
        let job = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            job = shared.next_job() => job,
        };
        let Some(job) = job else { break };
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = shared.run_file(job, &transport, &mut rng) => {}
        }
    }
}

async fn scheduler(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<(Instant, Job)>) {
    let mut stop = shared.stop_tx.subscribe();
    let mut heap: BinaryHeap<Delayed> = BinaryHeap::new();
    let mut seq: u64 = 0;
    loop {
        let next_due = heap.peek().map(|d| d.due);
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            item = rx.recv() => match item {
                Some((due, job)) => {
                    seq += 1;
                    heap.push(Delayed { due, seq, job });
                }
                None => break,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|d| d.due <= now) {
                    if let Some(d) = heap.pop() {
                        let _ = shared.ready_tx.send(d.job);
                    }
                }
            }
        }
    }
}

/// The bounded outbox in front of the SMTP pool (or the file transport). Cheap to clone; the
/// workers stop when [`Outbox::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Outbox {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop_tx.send_replace(true);
    }
}

/// A reserved place in the outbox ([`Outbox::reserve`]): submitting with it never waits.
pub struct SubmitPermit {
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
}

impl SubmitPermit {
    /// Puts the notification in the reserved place.
    pub fn submit(self, out: Outgoing) {
        self.shared.admit(self.permit, out);
    }
}

impl Outbox {
    /// Puts a notification in the outbox, waiting while it is full. After `shutdown` began the
    /// notification is dropped with a warning: it is never completed, so its source record is
    /// not committed and is delivered after a restart.
    pub async fn submit(&self, out: Outgoing) {
        match self.reserve().await {
            Some(p) => p.submit(out),
            None => tracing::warn!(
                message_id = out.message_id,
                "outbox is shutting down; notification not taken (it will be redone after restart)"
            ),
        }
    }

    /// Puts a notification in the outbox if there is room now; gives it back otherwise (full, or
    /// shutting down).
    pub fn try_submit(&self, out: Outgoing) -> Result<(), Outgoing> {
        match self.handle.shared.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.handle.shared.admit(permit, out);
                Ok(())
            }
            Err(_) => Err(out),
        }
    }

    /// Waits for room in the outbox and reserves it; cancel-safe (for `select!`), unlike
    /// `submit`, which owns the notification while it waits. `None` once shutdown began.
    pub async fn reserve(&self) -> Option<SubmitPermit> {
        let permit = self
            .handle
            .shared
            .permits
            .clone()
            .acquire_owned()
            .await
            .ok()?;
        Some(SubmitPermit {
            permit,
            shared: self.handle.shared.clone(),
        })
    }

    /// Notifications in the outbox: queued, being sent or waiting for a retry.
    pub fn depth(&self) -> usize {
        self.handle.shared.occ.depth.load(Ordering::Acquire)
    }

    /// The bound of the outbox (`smtp.outbox_capacity`).
    pub fn capacity(&self) -> usize {
        self.handle.shared.capacity
    }

    /// The circuit breaker's state (always `Closed` for the file transport).
    pub fn breaker(&self) -> BreakerState {
        *self.handle.shared.breaker_tx.borrow()
    }

    /// Socket-level facts of the pool so far (TCP_NODELAY, one-write messages).
    pub fn wire_stats(&self) -> WireStats {
        self.handle.shared.totals.snapshot()
    }

    /// Stops taking work, waits up to `timeout` for everything in the outbox to complete, then
    /// stops the workers (connections are closed with QUIT). Notifications still in the outbox
    /// at the deadline are abandoned without completion: their source records stay uncommitted.
    pub async fn shutdown(self, timeout: Duration) {
        let shared = &self.handle.shared;
        shared.permits.close();
        let deadline = Instant::now() + timeout;
        loop {
            let drained = shared.occ.drained.notified();
            let depth = shared.occ.depth.load(Ordering::Acquire);
            if depth == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!(
                    abandoned = shared.occ.depth.load(Ordering::Acquire),
                    "shutdown timeout: notifications still in the outbox are abandoned (redelivered after restart)"
                );
                break;
            }
        }
        shared.stop_tx.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.handle.tasks));
        for mut t in tasks {
            if tokio::time::timeout(QUIT_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
        // Jobs left in the ready queue hold outbox places; release them.
        let mut rx = shared.ready_rx.lock().await;
        rx.close();
        while rx.try_recv().is_ok() {}
    }
}

/// The runtime the pool's tasks run on: one thread of their own, a current-thread runtime
/// that lives until the last task holding the returned sender has ended.
///
/// Why not the service's runtime: there the workers render notifications (CPU work in long
/// polls) and check for socket readiness only between tasks, so a relay's reply waited in line
/// behind rendering; with the backlog waiting in a full outbox, the pool delivered ~5k msg/s on
/// 4 connections where `smtp-source` did 7k (bench-e2e, BENCHMARKS.md). On its own thread a
/// reply is read as soon as the kernel has it. Falls back to `fallback` (the caller's runtime)
/// if the thread cannot be started.
fn pool_runtime(
    fallback: &tokio::runtime::Handle,
) -> Result<(tokio::runtime::Handle, mpsc::Sender<()>), DeliverError> {
    let (running, mut done) = mpsc::channel::<()>(1);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("smtp-pool")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime of its own for the SMTP pool; sharing the service's");
            return Ok((fallback.clone(), running));
        }
    };
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("smtp-pool".into())
        // Returns once every task has dropped its sender (`recv` gives `None`).
        .spawn(move || rt.block_on(async move { done.recv().await }))
        .map_err(|e| DeliverError::Config(format!("cannot start the SMTP pool thread: {e}")))?;
    Ok((handle, running))
}

/// Builds the outbox and spawns its workers on a runtime of their own ([`pool_runtime`]).
pub(crate) fn start(
    cfg: &SmtpConfig,
    registry: &prometheus::Registry,
) -> Result<(Outbox, mpsc::Receiver<Completion>), DeliverError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| DeliverError::Config("deliver::start needs a tokio runtime".into()))?;
    let capacity = cfg.outbox_capacity.max(1);
    let workers = cfg.pool_size.max(1);
    let totals = Arc::new(WireTotals::default());
    // Everything that can fail comes before the metrics are registered, so a failed start leaves
    // the registry untouched.
    enum Kind {
        Smtp(Arc<Connector>),
        File(lettre::AsyncFileTransport<lettre::Tokio1Executor>),
    }
    let kind = match cfg.transport {
        TransportKind::Smtp => Kind::Smtp(Arc::new(Connector::new(cfg, totals.clone())?)),
        TransportKind::File => {
            std::fs::create_dir_all(&cfg.dir).map_err(|e| {
                DeliverError::Config(format!("smtp.dir {}: {e}", cfg.dir.display()))
            })?;
            Kind::File(lettre::AsyncFileTransport::new(&cfg.dir))
        }
    };
    let metrics = DeliverMetrics::register(registry, capacity);
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let (retry_tx, retry_rx) = mpsc::unbounded_channel();
    let (completions, completions_rx) = mpsc::channel(capacity);
    let shared = Arc::new(Shared {
        occ: Arc::new(Occupancy {
            depth: AtomicUsize::new(0),
            drained: Notify::new(),
            metrics: metrics.clone(),
        }),
        metrics,
        permits: Arc::new(Semaphore::new(capacity)),
        capacity,
        ready_tx,
        ready_rx: tokio::sync::Mutex::new(ready_rx),
        retry_tx,
        completions,
        breaker: Mutex::new(Breaker::new(&cfg.breaker)),
        breaker_tx: watch::channel(BreakerState::Closed).0,
        limiter: cfg
            .rate_limit_per_second
            .map(|r| Mutex::new(RateLimiter::new(r))),
        stop_tx: watch::channel(false).0,
        backoff: Backoff::new(&cfg.retry),
        max_per_connection: cfg.max_messages_per_connection.max(1),
        totals,
    });
    let (pool, running) = pool_runtime(&runtime)?;
    let spawn = |task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        let running = running.clone();
        pool.spawn(async move {
            task.await;
            drop(running);
        })
    };
    let mut tasks = Vec::with_capacity(workers + 1);
    tasks.push(spawn(Box::pin(scheduler(shared.clone(), retry_rx))));
    for _ in 0..workers {
        tasks.push(match &kind {
            Kind::Smtp(c) => spawn(Box::pin(smtp_worker(shared.clone(), c.clone()))),
            Kind::File(t) => spawn(Box::pin(file_worker(shared.clone(), t.clone()))),
        });
    }
    drop(running);
    Ok((
        Outbox {
            handle: Arc::new(Handle {
                shared,
                tasks: Mutex::new(tasks),
            }),
        },
        completions_rx,
    ))
}
