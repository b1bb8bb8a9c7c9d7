//! The schedule: when sync cycles run, plus the health and metrics they feed.
//!
//! The scheduler is generic over the cycle (any `FnMut(CancellationToken) -> Future`), so it
//! knows nothing about the engine. Its guarantees:
//! - never two cycles at once: the cycle future is awaited inline, nothing is spawned;
//! - cycles start on a [`tokio::time::interval`] with [`MissedTickBehavior::Skip`];
//! - a [`Nudger`] wakes the next cycle early; any number of nudges before a cycle starts are
//!   served by that one cycle, so a burst during a cycle causes exactly one more;
//! - nudged cycles start at least `nudge_min_gap` after the previous cycle started;
//! - consecutive failures back off exponentially with jitter up to `backoff_cap` (nudges do
//!   not shorten a backoff);
//! - on shutdown no new cycle starts; the in-flight one sees its token cancelled and is awaited
//!   for at most `shutdown_grace`, then abandoned (dropped).
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Nudges
// ---------------------------------------------------------------------------------------------

/// Wakes the scheduler early. Cheap to clone; every clone nudges the same scheduler.
///
/// A nudge only sets a "pending" flag: any number of nudges before the next cycle starts
/// collapse into that one cycle.
#[derive(Clone, Default)]
pub struct Nudger {
    inner: Arc<NudgeInner>,
}

#[derive(Default)]
struct NudgeInner {
    pending: AtomicBool,
    notify: Notify,
    sent: AtomicU64,
}

impl fmt::Debug for Nudger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nudger")
            .field("pending", &self.is_pending())
            .field("sent", &self.sent())
            .finish()
    }
}

impl Nudger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for a cycle as soon as the schedule allows.
    pub fn nudge(&self) {
        self.inner.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.pending.store(true, Ordering::SeqCst);
        self.inner.notify.notify_one();
    }

    /// How many nudges were ever sent through this handle or its clones.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::SeqCst)
    }

    /// Whether a nudge is waiting for a cycle to serve it.
    pub fn is_pending(&self) -> bool {
        self.inner.pending.load(Ordering::SeqCst)
    }

    /// Called as a cycle starts: the cycle serves every nudge sent before it.
    fn take(&self) {
        self.inner.pending.store(false, Ordering::SeqCst);
    }

    /// Resolves when a nudge is pending (immediately if one already is). Does not clear it.
    async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag, so a nudge between the check and the await
            // cannot be missed.
            notified.as_mut().enable();
            if self.is_pending() {
                return;
            }
            notified.await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------

/// When cycles run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// Time between scheduled cycles.
    pub poll_interval: Duration,
    /// Minimum time between the start of a cycle and the start of a nudged one after it.
    pub nudge_min_gap: Duration,
    /// Upper bound for the delay after consecutive failures.
    pub backoff_cap: Duration,
    /// How long shutdown waits for the in-flight cycle before abandoning it. Keep it well under
    /// the orchestrator's kill timeout (10 s) so the process still exits 0.
    pub shutdown_grace: Duration,
    /// Run the first cycle at once; `false` waits one interval (or a nudge) first, for callers
    /// that ran a sweep themselves just before.
    pub start_immediately: bool,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(30),
            nudge_min_gap: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(7),
            start_immediately: true,
        }
    }
}

impl ScheduleOptions {
    /// Defaults with the given poll interval.
    pub fn with_poll_interval(poll_interval: Duration) -> Self {
        Self {
            poll_interval,
            ..Self::default()
        }
    }
}

/// What a successful cycle reports back; the scheduler turns it into health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleOutcome {
    /// Items created or updated in ADO by this cycle.
    pub written_ado: u64,
    /// Items created or updated in ClickUp by this cycle.
    pub written_clickup: u64,
    /// Intents still pending after the cycle, if the cycle knows (`None` keeps the last value).
    pub pending_intents: Option<u64>,
    /// Open conflicts after the cycle, if the cycle knows (`None` keeps the last value).
    pub open_conflicts: Option<u64>,
}

/// Why a cycle started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Timer,
    Nudge,
}

/// How [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Cycles started (including an abandoned one).
    pub cycles: u64,
    /// Whether a cycle was still running when the shutdown grace ran out and was dropped.
    pub abandoned_in_flight: bool,
}

/// The delay before the next attempt after `failures` consecutive failed cycles (`failures >= 1`).
///
/// `poll_interval × 2^failures`, capped at `cap`, then "equal jitter": a uniformly random point
/// in its upper half (`jitter` in `[0, 1]` picks it), so concurrent daemons spread out while the
/// delay still grows. Never shorter than the poll interval (a failure must not make polling
/// faster) and never longer than `max(cap, poll_interval)`.
pub fn backoff_delay(
    failures: u32,
    poll_interval: Duration,
    cap: Duration,
    jitter: f64,
) -> Duration {
    let exp = 2f64.powi(failures.min(62) as i32);
    let grown = poll_interval.as_secs_f64() * exp;
    let capped = grown.min(cap.as_secs_f64());
    let jitter = jitter.clamp(0.0, 1.0);
    let delayed = Duration::from_secs_f64(capped * (0.5 + 0.5 * jitter));
    delayed.max(poll_interval)
}

/// Run cycles until `shutdown` is cancelled.
///
/// `cycle` receives a token that is cancelled when shutdown begins; it should check it between
/// items and return early (an `Ok` or `Err`, both are fine) so no item is left half-written.
/// Its error's `Display` is recorded as the health's last error, so it must carry no secret.
pub async fn run<F, Fut, E>(
    opts: ScheduleOptions,
    nudger: Nudger,
    shutdown: CancellationToken,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut cycle: F,
) -> RunReport
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Result<CycleOutcome, E>>,
    E: fmt::Display,
{
    let poll = opts.poll_interval.max(Duration::from_millis(1));
    let mut interval = tokio::time::interval(poll);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    if !opts.start_immediately {
        // The first tick of a tokio interval completes at once.
        interval.reset();
    }

    let mut report = RunReport {
        cycles: 0,
        abandoned_in_flight: false,
    };
    let mut failures: u32 = 0;
    let mut last_start: Option<Instant> = None;

    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Wait for the timer (or the backoff) or a nudge.
        let after_backoff = failures > 0;
        let trigger = if failures == 0 {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => Trigger::Timer,
                _ = nudger.wait() => Trigger::Nudge,
            }
        } else {
            let delay = backoff_delay(failures, poll, opts.backoff_cap, rand::random::<f64>());
            tracing::debug!(failures, delay_ms = delay.as_millis() as u64, "backing off");
            // Nudges do not cut a backoff short: webhooks keep arriving while the other side
            // is down, and retrying on each would defeat the backoff. They stay pending and
            // are served by the cycle that ends it.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => Trigger::Timer,
            }
        };

        if trigger == Trigger::Nudge {
            if let Some(prev) = last_start {
                let earliest = prev + opts.nudge_min_gap;
                if Instant::now() < earliest {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep_until(earliest) => {}
                    }
                }
            }
        }

        // Every nudge sent up to here is served by this cycle.
        nudger.take();
        let started = Instant::now();
        let started_wall = Utc::now();
        last_start = Some(started);
        report.cycles += 1;

        let token = shutdown.child_token();
        // A panicking cycle must not end the schedule (the process would keep answering
        // liveness while never syncing again): it counts as a failed cycle. The panic hook has
        // already reported it; its payload is not repeated (it might quote data).
        let fut = AssertUnwindSafe(cycle(token))
            .catch_unwind()
            .map(|r| match r {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("the sync cycle panicked (see the log)".to_string()),
            });
        tokio::pin!(fut);
        let result = tokio::select! {
            r = &mut fut => Some(r),
            _ = shutdown.cancelled() => None,
        };
        let result = match result {
            Some(r) => Some(r),
            None => {
                tracing::info!(
                    grace_ms = opts.shutdown_grace.as_millis() as u64,
                    "shutdown requested; waiting for the in-flight cycle"
                );
                tokio::time::timeout(opts.shutdown_grace, &mut fut)
                    .await
                    .ok()
            }
        };
        let elapsed = started.elapsed();

        match result {
            Some(Ok(outcome)) => {
                failures = 0;
                health.record_success(Utc::now(), &outcome);
                metrics.record_cycle(true, elapsed, Some(&outcome), Utc::now());
                metrics.set_consecutive_failures(0);
                tracing::debug!(
                    elapsed_ms = elapsed.as_millis() as u64,
                    written_ado = outcome.written_ado,
                    written_clickup = outcome.written_clickup,
                    ?trigger,
                    "cycle ok"
                );
            }
            Some(Err(message)) => {
                failures = failures.saturating_add(1);
                tracing::warn!(failures, error = %message, "cycle failed");
                health.record_failure(started_wall, message);
                metrics.record_cycle(false, elapsed, None, Utc::now());
                metrics.set_consecutive_failures(failures);
            }
            None => {
                tracing::warn!(
                    "in-flight cycle did not finish within the shutdown grace; abandoned"
                );
                report.abandoned_in_flight = true;
                break;
            }
        }

        // A cycle that overran the interval, an early (nudged) one, or one after a backoff
        // restarts the period, so the next scheduled cycle is a full interval away instead of
        // a missed tick firing immediately after it.
        if trigger == Trigger::Nudge || elapsed >= poll || after_backoff {
            interval.reset();
        }
    }
    report
}

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C); returns the signal's name.
pub async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

/// Cancel `token` when SIGTERM or SIGINT arrives (spawned; the handlers are installed before
/// this returns, so a signal right after it is not missed).
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
                _ = token.cancelled() => return,
            }
            token.cancel();
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_ok() { tracing::info!("Ctrl-C received; shutting down"); }
                }
                _ = token.cancelled() => return,
            }
            token.cancel();
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// Shared health state: written by the scheduler and the caller, read by `/api/health`.
#[derive(Debug)]
pub struct Health {
    started_at: DateTime<Utc>,
    inner: Mutex<HealthInner>,
}

#[derive(Debug, Clone)]
struct HealthInner {
    last_success: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    pending_intents: u64,
    open_conflicts: u64,
    store_ok: bool,
}

/// The readiness answer, serialized as the `/api/health` body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthReport {
    /// `"ok"`, `"starting"` (no success yet, still within the start-up grace) or `"unhealthy"`.
    pub status: &'static str,
    /// Why it is unhealthy (absent when healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: &'static str,
    pub started_at: String,
    /// RFC 3339.
    pub last_success: Option<String>,
    pub last_success_age_seconds: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub pending_intents: u64,
    pub open_conflicts: u64,
    pub consecutive_failures: u32,
    pub store_ok: bool,
}

impl HealthReport {
    /// Whether readiness should answer 200.
    pub fn is_ready(&self) -> bool {
        self.status != "unhealthy"
    }
}

impl Health {
    /// A fresh state; the start-up grace counts from `started_at`.
    pub fn new(started_at: DateTime<Utc>) -> Self {
        Self {
            started_at,
            inner: Mutex::new(HealthInner {
                last_success: None,
                last_error: None,
                last_error_at: None,
                consecutive_failures: 0,
                pending_intents: 0,
                open_conflicts: 0,
                store_ok: true,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HealthInner> {
        // A panic while holding this lock cannot leave the plain fields inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// A cycle succeeded at `at`.
    pub fn record_success(&self, at: DateTime<Utc>, outcome: &CycleOutcome) {
        let mut h = self.lock();
        h.last_success = Some(at);
        h.consecutive_failures = 0;
        if let Some(n) = outcome.pending_intents {
            h.pending_intents = n;
        }
        if let Some(n) = outcome.open_conflicts {
            h.open_conflicts = n;
        }
    }

    /// A cycle failed. `message` must not contain secrets.
    pub fn record_failure(&self, at: DateTime<Utc>, message: String) {
        let mut h = self.lock();
        h.last_error = Some(message);
        h.last_error_at = Some(at);
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
    }

    pub fn set_pending_intents(&self, n: u64) {
        self.lock().pending_intents = n;
    }

    pub fn set_open_conflicts(&self, n: u64) {
        self.lock().open_conflicts = n;
    }

    /// Whether the store is usable; `false` makes readiness fail regardless of cycles.
    pub fn set_store_ok(&self, ok: bool) {
        self.lock().store_ok = ok;
    }

    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.lock().last_success
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    /// The readiness report at `now`.
    ///
    /// Unhealthy when the store is unusable, or when the last success is older than
    /// 3 × `poll_interval`. Before any success the daemon is "starting" until
    /// `startup_grace` has passed since start, then unhealthy.
    pub fn report(
        &self,
        now: DateTime<Utc>,
        poll_interval: Duration,
        startup_grace: Duration,
    ) -> HealthReport {
        let h = self.lock().clone();
        let stale_after = chrono::Duration::from_std(poll_interval.saturating_mul(3))
            .unwrap_or(chrono::Duration::MAX);
        let grace = chrono::Duration::from_std(startup_grace).unwrap_or(chrono::Duration::MAX);
        let age = h.last_success.map(|t| now.signed_duration_since(t));

        let (status, reason) = if !h.store_ok {
            ("unhealthy", Some("the store is unusable".to_string()))
        } else {
            match age {
                Some(age) if age > stale_after => (
                    "unhealthy",
                    Some(format!(
                        "last successful cycle was {}s ago (more than 3 poll intervals)",
                        age.num_seconds()
                    )),
                ),
                Some(_) => ("ok", None),
                None if now.signed_duration_since(self.started_at) > grace => (
                    "unhealthy",
                    Some("no successful cycle since start".to_string()),
                ),
                None => ("starting", None),
            }
        };
        HealthReport {
            status,
            reason,
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at.to_rfc3339(),
            last_success: h.last_success.map(|t| t.to_rfc3339()),
            last_success_age_seconds: age.map(|a| a.num_seconds().max(0)),
            last_error: h.last_error,
            last_error_at: h.last_error_at.map(|t| t.to_rfc3339()),
            pending_intents: h.pending_intents,
            open_conflicts: h.open_conflicts,
            consecutive_failures: h.consecutive_failures,
            store_ok: h.store_ok,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Request counts kept by an API client: `(side, status, count)` triples, e.g.
/// `("ado", "200", 42)`. Counts are cumulative since start (they are exported as counters).
pub trait ApiCounts: Send + Sync + 'static {
    fn api_counts(&self) -> Vec<(String, String, u64)>;
}

impl<F> ApiCounts for F
where
    F: Fn() -> Vec<(String, String, u64)> + Send + Sync + 'static,
{
    fn api_counts(&self) -> Vec<(String, String, u64)> {
        self()
    }
}

type Labels1 = [(&'static str, &'static str); 1];

/// Prometheus metrics (the `prometheus-client` crate), rendered by `/metrics`.
pub struct Metrics {
    registry: Registry,
    cycles: Family<Labels1, Counter>,
    cycle_duration: Histogram,
    items_written: Family<Labels1, Counter>,
    open_conflicts: Gauge,
    pending_intents: Gauge,
    consecutive_failures: Gauge,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    api: Arc<ApiCollector>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct ApiCollector {
    sources: Mutex<Vec<Arc<dyn ApiCounts>>>,
}

impl fmt::Debug for ApiCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCollector").finish_non_exhaustive()
    }
}

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources: Vec<Arc<dyn ApiCounts>> = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A source may count finer than side and status (per endpoint, per client): one
        // series per label set, or Prometheus rejects the scrape.
        let mut rows: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for (side, status, n) in sources.iter().flat_map(|s| s.api_counts()) {
            *rows.entry((side, status)).or_default() += n;
        }
        let mut metric = encoder.encode_descriptor(
            "api_requests",
            "API requests sent, by side and HTTP status.",
            None,
            MetricType::Counter,
        )?;
        for ((side, status), count) in &rows {
            let labels = [("side", side.as_str()), ("status", status.as_str())];
            let family = metric.encode_family(&labels)?;
            ConstCounter::new(*count).encode(family)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Help texts have no final period: the registry adds one.
        let mut registry = Registry::with_prefix("ado_clickup_sync");
        let cycles = Family::<Labels1, Counter>::default();
        // 50 ms .. ~14 min.
        let cycle_duration = Histogram::new(exponential_buckets(0.05, 2.0, 15));
        let items_written = Family::<Labels1, Counter>::default();
        let open_conflicts = Gauge::default();
        let pending_intents = Gauge::default();
        let consecutive_failures = Gauge::default();
        let last_success = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let api = Arc::new(ApiCollector::default());

        registry.register("cycles", "Sync cycles run, by outcome", cycles.clone());
        registry.register_with_unit(
            "cycle_duration",
            "How long sync cycles take",
            Unit::Seconds,
            cycle_duration.clone(),
        );
        registry.register(
            "items_written",
            "Items created or updated, by the side written to",
            items_written.clone(),
        );
        registry.register(
            "open_conflicts",
            "Conflicts waiting for a person",
            open_conflicts.clone(),
        );
        registry.register(
            "pending_intents",
            "Create intents not yet resolved",
            pending_intents.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Failed cycles since the last successful one",
            consecutive_failures.clone(),
        );
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time of the last successful cycle (0 = none yet)",
            Unit::Seconds,
            last_success.clone(),
        );
        registry.register_collector(Box::new(api.clone()));

        // Both outcomes appear from the start, so rate() works from the first scrape.
        for outcome in ["ok", "error"] {
            let _ = cycles.get_or_create(&[("outcome", outcome)]);
        }
        for side in ["ado", "clickup"] {
            let _ = items_written.get_or_create(&[("side", side)]);
        }
        Self {
            registry,
            cycles,
            cycle_duration,
            items_written,
            open_conflicts,
            pending_intents,
            consecutive_failures,
            last_success,
            api,
        }
    }

    /// Add a source of API request counts (e.g. one per client); read on every scrape.
    pub fn add_api_source(&self, source: Arc<dyn ApiCounts>) {
        self.api
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Record a finished cycle (the scheduler calls this).
    pub fn record_cycle(
        &self,
        ok: bool,
        duration: Duration,
        outcome: Option<&CycleOutcome>,
        now: DateTime<Utc>,
    ) {
        let label = if ok { "ok" } else { "error" };
        self.cycles.get_or_create(&[("outcome", label)]).inc();
        self.cycle_duration.observe(duration.as_secs_f64());
        if ok {
            self.last_success
                .set(now.timestamp_millis() as f64 / 1000.0);
        }
        if let Some(o) = outcome {
            self.add_items_written("ado", o.written_ado);
            self.add_items_written("clickup", o.written_clickup);
            if let Some(n) = o.open_conflicts {
                self.set_open_conflicts(n);
            }
            if let Some(n) = o.pending_intents {
                self.set_pending_intents(n);
            }
        }
    }

    /// `side` is `"ado"` or `"clickup"`; other values are folded into `"other"`.
    pub fn add_items_written(&self, side: &str, n: u64) {
        let side: &'static str = match side {
            "ado" => "ado",
            "clickup" => "clickup",
            _ => "other",
        };
        self.items_written
            .get_or_create(&[("side", side)])
            .inc_by(n);
    }

    pub fn set_open_conflicts(&self, n: u64) {
        self.open_conflicts
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_pending_intents(&self, n: u64) {
        self.pending_intents
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_consecutive_failures(&self, n: u32) {
        self.consecutive_failures.set(i64::from(n));
    }

    /// The Prometheus text exposition (format 0.0.4), see [`Metrics::CONTENT_TYPE`].
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
}
