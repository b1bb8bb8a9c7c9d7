//! Wiring: configuration → clients → engine, and the engine → schedule + HTTP. Shared by the
//! `run`, `sync`, `check` and `demo` commands so that each runs the same parts.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::ado::AdoClient;
use crate::clickup::{ClickUpClient, LinkFieldError};
use crate::config::{Config, ConfigError};
use crate::daemon::{self, CycleOutcome, Health, Metrics, Nudger, RunReport, ScheduleOptions};
use crate::engine::{CycleRequest, Engine, EngineError, EngineOptions, Mode};
use crate::http::{self, AppState, HttpError, WebhookSecrets};
use crate::remote::{ApiError, ApiStats};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("setting up the API clients: {0}")]
    Client(ApiError),
    #[error("{0}")]
    LinkField(LinkFieldError),
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// The engine's tunables from the configuration.
pub fn engine_options(cfg: &Config) -> EngineOptions {
    EngineOptions {
        overlap: cfg.overlap,
        ado_concurrency: cfg.ado.concurrency,
        clickup_concurrency: cfg.clickup.concurrency,
        max_creates: cfg.limits.max_creates_per_cycle,
        max_unlinks: cfg.limits.max_unlinks_per_cycle,
        ..EngineOptions::default()
    }
}

/// How long the daemon's start waits for the link field before it starts without it.
const DAEMON_LINK_FIELD_WAIT: Duration = Duration::from_secs(5);

/// When the ClickUp link field is looked up at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFieldLookup {
    /// Now, and any failure is an error (one-shot commands: nothing to retry with).
    Now,
    /// Now, but when ClickUp is unreachable or busy the daemon starts anyway and every
    /// cycle tries again before it syncs (a field that does not exist is still an error).
    NowOrInCycles,
}

/// Both clients (sharing one request counter), with the ClickUp link field resolved from its
/// name or id.
pub async fn clients(
    cfg: &Config,
    lookup: LinkFieldLookup,
) -> Result<(Arc<AdoClient>, Arc<ClickUpClient>, Arc<ApiStats>), ServiceError> {
    let stats = ApiStats::new();
    let ado =
        AdoClient::new(cfg.ado_client_config()?, stats.clone()).map_err(ServiceError::Client)?;
    let mut clickup = ClickUpClient::new(cfg.clickup_client_config()?, stats.clone())
        .map_err(ServiceError::Client)?;
    if let Some(field) = cfg.clickup.link_field.as_deref() {
        let mut lists: Vec<String> = cfg
            .pairs
            .iter()
            .flat_map(|p| p.clickup.list_ids.iter().cloned())
            .collect();
        lists.dedup();
        clickup = clickup.with_link_field_search(field, lists);
        let found = match lookup {
            LinkFieldLookup::Now => Some(clickup.resolve_link_field().await),
            // Not the lookup's whole retry budget: the health endpoint is not up until
            // this returns.
            LinkFieldLookup::NowOrInCycles => {
                tokio::time::timeout(DAEMON_LINK_FIELD_WAIT, clickup.resolve_link_field())
                    .await
                    .ok()
            }
        };
        match found {
            Some(Ok(())) => {}
            None => tracing::warn!(
                "ClickUp did not answer in time: the link field will be looked up before the \
                 first cycle"
            ),
            Some(Err(LinkFieldError::Api(e)))
                if lookup == LinkFieldLookup::NowOrInCycles && e.is_retryable() =>
            {
                tracing::warn!(
                    error = %e,
                    "ClickUp is unavailable: the link field will be looked up before the first cycle"
                );
            }
            Some(Err(e)) => return Err(ServiceError::LinkField(e)),
        }
    }
    Ok((Arc::new(ado), Arc::new(clickup), stats))
}

/// The engine for a configuration, with its store opened (and migrated).
pub async fn engine(cfg: &Config, lookup: LinkFieldLookup) -> Result<Engine, ServiceError> {
    let (ado, clickup, stats) = clients(cfg, lookup).await?;
    let store = Store::open_url(&cfg.database_url).await?;
    Ok(Engine::new(
        cfg.pairs.clone(),
        ado,
        clickup,
        stats,
        store,
        engine_options(cfg),
    ))
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub schedule: ScheduleOptions,
    pub sweep_interval: Duration,
    /// Sweep in the first cycle (the daemon's start-up does; tests may not want to).
    pub sweep_first: bool,
    pub bind: String,
    pub port: u16,
    pub webhook_secret: Option<SecretString>,
    /// Where this service is reachable from ClickUp; when set, ClickUp webhooks are
    /// registered to `{public_url}/api/webhook/clickup`.
    pub public_url: Option<String>,
}

impl DaemonOptions {
    pub fn from_config(cfg: &Config) -> DaemonOptions {
        DaemonOptions {
            schedule: ScheduleOptions {
                poll_interval: cfg.poll_interval,
                nudge_min_gap: cfg.nudge_min_gap,
                ..ScheduleOptions::default()
            },
            sweep_interval: cfg.sweep_interval,
            sweep_first: true,
            bind: cfg.server.bind.clone(),
            port: cfg.server.port,
            webhook_secret: cfg.secrets.webhook_secret.clone(),
            public_url: cfg.server.public_url.as_ref().map(|u| u.to_string()),
        }
    }
}

/// A started daemon's handles (for `demo` and tests).
pub struct Running {
    pub addr: SocketAddr,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub nudger: Nudger,
    pub server: http::Serving,
}

/// Starts the daemon: the HTTP server (health, metrics, webhooks) at once, and returns the
/// schedule as a future for the caller to drive (in its own task: nothing is spawned): a
/// sweep first (pending creates are recovered at the start of every cycle), then incremental
/// cycles every poll interval or when nudged, a sweep again every `sweep_interval`. The
/// future ends when `shutdown` is cancelled; then await `Running::server.finished()`.
pub async fn start_daemon(
    engine: Arc<Engine>,
    opts: DaemonOptions,
    shutdown: CancellationToken,
) -> Result<(Running, impl std::future::Future<Output = RunReport>), ServiceError> {
    let health = Arc::new(Health::new(chrono::Utc::now()));
    let metrics = Arc::new(Metrics::new());
    let stats = engine.stats().clone();
    metrics.add_api_source(Arc::new(move || {
        stats
            .snapshot()
            .into_iter()
            .map(|(k, n)| (k.side.as_str().to_string(), k.status.to_string(), n))
            .collect::<Vec<_>>()
    }));
    let nudger = Nudger::new();
    let secrets = Arc::new(WebhookSecrets::new(opts.webhook_secret.clone()));
    let state = AppState::new(
        health.clone(),
        metrics.clone(),
        nudger.clone(),
        secrets.clone(),
        opts.schedule.poll_interval,
    );
    let server = http::serve(&opts.bind, opts.port, state, shutdown.clone()).await?;
    let addr = server.addr;
    if let Some(url) = &opts.public_url {
        register_webhooks(&engine, url, &secrets).await;
    }

    let last_sweep: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sweep_first = opts.sweep_first;
    let sweep_every = opts.sweep_interval;
    let h2 = health.clone();
    let cycle = move |cancel: CancellationToken| {
        let engine = engine.clone();
        let last_sweep = last_sweep.clone();
        let health = h2.clone();
        async move {
            let due = {
                let last = *last_sweep.lock().unwrap_or_else(|e| e.into_inner());
                match last {
                    None => sweep_first,
                    Some(t) => t.elapsed() >= sweep_every,
                }
            };
            let req = CycleRequest {
                mode: if due { Mode::Sweep } else { Mode::Incremental },
                ..CycleRequest::incremental()
            };
            let report = match engine.cycle(&req, &cancel).await {
                Ok(r) => r,
                Err(e) => {
                    health.set_store_ok(!matches!(
                        e,
                        EngineError::Store { .. } | EngineError::StoreGlobal(_)
                    ));
                    return Err(e);
                }
            };
            health.set_store_ok(true);
            if due {
                *last_sweep.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            }
            let t = report.tally();
            for p in &report.pairs {
                let pt = &p.tally;
                if pt.written_ado() + pt.written_clickup() + pt.linked + pt.unlinked + pt.failed > 0
                {
                    tracing::info!(
                        pair = %p.pair,
                        created_ado = p.tally.created_ado,
                        created_clickup = p.tally.created_clickup,
                        updated_ado = p.tally.updated_ado,
                        updated_clickup = p.tally.updated_clickup,
                        conflicts = p.tally.conflicts,
                        failed = p.tally.failed,
                        "cycle"
                    );
                }
            }
            if let Some(e) = report.error() {
                return Err(e);
            }
            Ok(CycleOutcome {
                written_ado: t.written_ado(),
                written_clickup: t.written_clickup(),
                pending_intents: Some(report.pending_intents),
                open_conflicts: Some(report.open_conflicts),
            })
        }
    };
    let schedule = daemon::run(
        opts.schedule.clone(),
        nudger.clone(),
        shutdown,
        health.clone(),
        metrics.clone(),
        cycle,
    );
    Ok((
        Running {
            addr,
            health,
            metrics,
            nudger,
            server,
        },
        schedule,
    ))
}

/// The task events that can change a synced field.
const CLICKUP_EVENTS: [&str; 9] = [
    "taskCreated",
    "taskUpdated",
    "taskDeleted",
    "taskMoved",
    "taskStatusUpdated",
    "taskPriorityUpdated",
    "taskAssigneeUpdated",
    "taskDueDateUpdated",
    "taskTagUpdated",
];

/// Registers (or finds) this service's ClickUp webhook on each list the pairs sync (one
/// location per webhook), so that its deliveries can be verified. Best effort: polling works
/// without them.
async fn register_webhooks(engine: &Engine, public_url: &str, secrets: &WebhookSecrets) {
    let endpoint = format!("{}/api/webhook/clickup", public_url.trim_end_matches('/'));
    let clickup = engine.clickup();
    let existing = match clickup.list_webhooks().await {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::warn!(error = %e, "listing ClickUp webhooks failed; polling only");
            return;
        }
    };
    let mut lists: Vec<&String> = engine
        .pairs()
        .iter()
        .flat_map(|p| &p.clickup.list_ids)
        .collect();
    lists.sort();
    lists.dedup();
    let mut known: Vec<SecretString> = Vec::new();
    for list in lists {
        let found = existing
            .iter()
            .find(|h| h.endpoint == endpoint && h.list_id.as_deref() == Some(list.as_str()));
        if let Some(h) = found {
            tracing::info!(%endpoint, list = %list, id = %h.id, "ClickUp webhook already registered");
            known.extend(h.secret.clone());
            continue;
        }
        match clickup
            .create_webhook(&endpoint, &CLICKUP_EVENTS, Some(list))
            .await
        {
            Ok(h) => {
                tracing::info!(%endpoint, list = %list, id = %h.id, "ClickUp webhook registered");
                known.extend(h.secret);
            }
            Err(e) => {
                tracing::warn!(list = %list, error = %e, "registering a ClickUp webhook failed; polling only")
            }
        }
    }
    secrets.set_clickup_registered(known);
}
