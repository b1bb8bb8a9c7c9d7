//! Azure DevOps Work Item Tracking simulator (REST 7.1), faithful to `../shared/api/ado/`.
//!
//! API paths: `{base}/{org}/{project}[/{team}]/_apis/wit/...` (also org-level reads), HTTP
//! Basic auth with the PAT as password. Agile process (Epic, Feature, User Story, Task, Bug,
//! Issue). Writes made through the API are authored by `users[0]` (the PAT's owner); "web UI"
//! edits (`ui_*`, `/__sim/edit`...) by `users[1]`.
//!
//! Seed file (`AdoSeed`, JSON), e.g. for `sim --seed FILE` or `POST /__sim/seed`:
//! `{"custom_fields": ["Custom.X"], "work_items": [{"id": 7, "type": "User Story",
//! "fields": {"System.Title": "t", "System.Tags": "a; b", "System.AssignedTo": "email",
//! "System.ChangedDate": "2026-01-01T00:00:00Z", "System.Parent": 3}, "relations": [],
//! "comments": ["<p>html</p>"], "deleted": false}]}`. Seeded items are imported as rev 1
//! without rules (like a migration); omitted system fields get the service's defaults.
//!
//! Control API (JSON, no auth, not logged or faulted): `POST /__sim/seed` (AdoSeed → `{ids}`),
//! `POST /__sim/reset`, `POST /__sim/create {type, fields}` → `{id}`, `POST /__sim/edit
//! {id, fields}`, `POST /__sim/relation {id, rel, url}`, `POST /__sim/delete {id}`,
//! `POST /__sim/comment {id, text}`, `GET /__sim/state`, `GET|DELETE /__sim/log`,
//! `GET|POST|DELETE /__sim/faults` (a `FaultRule`), `POST /__sim/clock {offset_ms?,
//! freeze?: RFC 3339, unfreeze?: bool, advance_ms?}` → `{now}`.
mod control;
pub mod errors;
pub mod process;
mod routes;
pub mod state;
pub mod wiql;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sim::common::{lock, observe, Faults, Observer, RequestLog, SimClock};
pub use state::{AdoSeed, PatchOp, SeedItem, SimComment, SimRelation, SimUser, SimWorkItem};
use state::{Store, Target, Urls, WriteCtx};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the ADO simulator to 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("work item {0} does not exist (or is deleted)")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
}

/// What happens when a client goes over the rate limit (FACTS §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RateLimitMode {
    /// Answer 429 with `Retry-After`.
    Block,
    /// Hold the request this long, then answer normally with `X-RateLimit-Delay`.
    Delay { delay_ms: u64 },
}

/// Rate limiting: `limit` requests (1 TSTU each) per sliding `window_ms` for the PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoRateLimit {
    pub limit: u32,
    pub window_ms: u64,
    pub mode: RateLimitMode,
}

#[derive(Debug, Clone)]
pub struct AdoSimOptions {
    /// 0 = any free port.
    pub port: u16,
    pub org: String,
    pub project: String,
    pub pat: String,
    /// The organization's people. The first one owns the PAT (API writes are made as them);
    /// "web UI" edits are made as the second one (or the first when alone).
    pub users: Vec<SimUser>,
    /// Off by default.
    pub rate_limit: Option<AdoRateLimit>,
}

impl Default for AdoSimOptions {
    fn default() -> Self {
        AdoSimOptions {
            port: 0,
            org: "fabrikam".into(),
            project: "Fabrikam-Fiber".into(),
            pat: "ado-sim-pat".into(),
            users: vec![
                SimUser::new("Sync Bot", "sync-bot@fabrikam.example"),
                SimUser::new("Jamal Hartnett", "fabrikamfiber4@hotmail.com"),
                SimUser::new("Chuck Reinhart", "fabrikamfiber3@hotmail.com"),
                SimUser::new("Mateo Escobedo", "mateo@fabrikam.example"),
            ],
            rate_limit: None,
        }
    }
}

pub(crate) struct Inner {
    pub opts: AdoSimOptions,
    pub store: Mutex<Store>,
    pub clock: Arc<SimClock>,
    pub log: Arc<RequestLog>,
    pub faults: Arc<Faults>,
    pub urls: Urls,
    pub rate: Mutex<VecDeque<Instant>>,
    pub rate_limit: Mutex<Option<AdoRateLimit>>,
}

impl Inner {
    pub fn api_user(&self) -> SimUser {
        self.opts
            .users
            .first()
            .cloned()
            .unwrap_or_else(|| SimUser::new("Sync Bot", "sync-bot@fabrikam.example"))
    }
    pub fn ui_user(&self) -> SimUser {
        self.opts
            .users
            .get(1)
            .cloned()
            .unwrap_or_else(|| self.api_user())
    }

    fn ui_patch(&self, target: Target, ops: &[PatchOp]) -> Result<SimWorkItem, SimError> {
        let user = self.ui_user();
        let ctx = WriteCtx {
            actor: &user,
            clock: &self.clock,
            project: &self.opts.project,
            validate_only: false,
            bypass_rules: false,
        };
        lock(&self.store)
            .patch(&ctx, target, ops)
            .map_err(|e| SimError::Invalid(e.message))
    }

    pub fn ui_create(
        &self,
        work_item_type: &str,
        fields: Map<String, Value>,
    ) -> Result<i64, SimError> {
        let ty = process::work_item_type(work_item_type).ok_or_else(|| {
            SimError::Invalid(format!("unknown work item type '{work_item_type}'"))
        })?;
        let ops: Vec<PatchOp> = fields
            .into_iter()
            .map(|(k, v)| PatchOp::new("add", &format!("/fields/{k}"), v))
            .collect();
        self.ui_patch(Target::Create(ty), &ops).map(|i| i.id)
    }

    pub fn ui_edit(&self, id: i64, fields: Map<String, Value>) -> Result<(), SimError> {
        if lock(&self.store).live(id).is_none() {
            return Err(SimError::NotFound(id));
        }
        let ops: Vec<PatchOp> = fields
            .into_iter()
            .map(|(k, v)| {
                let path = format!("/fields/{k}");
                if v.is_null() {
                    PatchOp {
                        op: "remove".into(),
                        path,
                        from: None,
                        value: None,
                    }
                } else {
                    PatchOp::new("replace", &path, v)
                }
            })
            .collect();
        self.ui_patch(Target::Update(id), &ops).map(|_| ())
    }

    pub fn ui_add_relation(&self, id: i64, rel: &str, url: &str) -> Result<(), SimError> {
        if lock(&self.store).live(id).is_none() {
            return Err(SimError::NotFound(id));
        }
        let op = PatchOp::new(
            "add",
            "/relations/-",
            serde_json::json!({"rel": rel, "url": url}),
        );
        self.ui_patch(Target::Update(id), &[op]).map(|_| ())
    }

    pub fn ui_delete(&self, id: i64) -> Result<(), SimError> {
        let user = self.ui_user();
        lock(&self.store)
            .delete(id, false, &user, &self.clock)
            .map(|_| ())
            .map_err(|_| SimError::NotFound(id))
    }

    pub fn ui_comment(&self, id: i64, text: &str) -> Result<(), SimError> {
        let user = self.ui_user();
        lock(&self.store)
            .add_comment(id, text, false, &user, &self.clock)
            .map(|_| ())
            .map_err(|_| SimError::NotFound(id))
    }

    pub fn seed(&self, seed: AdoSeed) -> Result<Vec<i64>, SimError> {
        lock(&self.store)
            .seed(seed, &self.urls, &self.clock)
            .map_err(SimError::Invalid)
    }

    pub fn reset(&self) {
        lock(&self.store).reset();
        lock(&self.rate).clear();
        self.log.clear();
        self.faults.clear();
    }
}

/// A running ADO simulator.
pub struct AdoSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts the simulator on 127.0.0.1 (`opts.port`, 0 = any free port).
pub async fn start(opts: AdoSimOptions) -> Result<AdoSim, SimError> {
    let port = opts.port;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SimError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { port, source })?;
    let urls = Urls {
        base: format!("http://{addr}"),
        org: opts.org.clone(),
        project: opts.project.clone(),
    };
    let inner = Arc::new(Inner {
        store: Mutex::new(Store::new(opts.users.clone())),
        clock: Arc::new(SimClock::default()),
        log: Arc::new(RequestLog::default()),
        faults: Arc::new(Faults::default()),
        urls,
        rate: Mutex::new(VecDeque::new()),
        rate_limit: Mutex::new(opts.rate_limit),
        opts,
    });
    let observer = Observer {
        log: inner.log.clone(),
        faults: inner.faults.clone(),
        error_body: errors::fault_body,
        control_prefix: "/__sim",
        clock: inner.clock.clone(),
    };
    let app = control::router(inner.clone())
        .fallback(routes::dispatch)
        .with_state(inner.clone())
        // Long text fields may hold up to 1M characters (FACTS §2c).
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(observer, observe));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "ADO simulator server stopped with an error");
        }
    });
    Ok(AdoSim {
        inner,
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl AdoSim {
    /// `http://127.0.0.1:PORT`; API paths are `{base}/{org}/{project}/_apis/wit/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The item's page in the web UI, as the real service links it.
    pub fn web_url(&self, id: i64) -> String {
        format!(
            "{}/{}/{}/_workitems/edit/{id}",
            self.base_url(),
            self.inner.opts.org,
            self.inner.opts.project
        )
    }
    /// The item's REST URL, as relations name it.
    pub fn api_url(&self, id: i64) -> String {
        self.inner.urls.work_item(id)
    }
    pub fn options(&self) -> &AdoSimOptions {
        &self.inner.opts
    }
    pub fn clock(&self) -> &SimClock {
        &self.inner.clock
    }
    pub fn log(&self) -> &RequestLog {
        &self.inner.log
    }
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }
    /// Turns rate limiting on or off while running.
    pub fn set_rate_limit(&self, limit: Option<AdoRateLimit>) {
        *lock(&self.inner.rate_limit) = limit;
        lock(&self.inner.rate).clear();
    }
    /// The item as stored (also when it is in the recycle bin).
    pub fn item(&self, id: i64) -> Option<SimWorkItem> {
        lock(&self.inner.store).any(id).cloned()
    }
    /// Items not deleted, by id.
    pub fn items(&self) -> Vec<SimWorkItem> {
        lock(&self.inner.store).live_items().cloned().collect()
    }
    pub fn deleted_ids(&self) -> Vec<i64> {
        lock(&self.inner.store)
            .deleted()
            .map(|(i, _)| i.id)
            .collect()
    }
    /// Creates an item as a person in the web UI would (rev 1, dates now).
    pub fn ui_create(
        &self,
        work_item_type: &str,
        fields: Map<String, Value>,
    ) -> Result<i64, SimError> {
        self.inner.ui_create(work_item_type, fields)
    }
    /// Edits fields as a person would: one new revision. `System.Tags` is the full list
    /// (`"a; b"`), identities take an email, `null` removes the field.
    pub fn ui_edit(&self, id: i64, fields: Map<String, Value>) -> Result<(), SimError> {
        self.inner.ui_edit(id, fields)
    }
    pub fn ui_add_relation(&self, id: i64, rel: &str, url: &str) -> Result<(), SimError> {
        self.inner.ui_add_relation(id, rel, url)
    }
    /// Any JSON-Patch edit (relations removed by index, several ops at once) as a person in
    /// the web UI would make it: one revision.
    pub fn ui_patch_raw(&self, id: i64, ops: Vec<Value>) -> Result<(), SimError> {
        let ops: Vec<PatchOp> = ops
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|e| SimError::Invalid(format!("not a JSON-Patch operation: {e}")))?;
        if lock(&self.inner.store).live(id).is_none() {
            return Err(SimError::NotFound(id));
        }
        self.inner.ui_patch(Target::Update(id), &ops).map(|_| ())
    }
    pub fn ui_delete(&self, id: i64) -> Result<(), SimError> {
        self.inner.ui_delete(id)
    }
    pub fn ui_comment(&self, id: i64, text: &str) -> Result<(), SimError> {
        self.inner.ui_comment(id, text)
    }
    pub fn seed(&self, seed: AdoSeed) -> Result<(), SimError> {
        self.inner.seed(seed).map(|_| ())
    }
    /// Empties the store, the log, the faults and the rate-limit window.
    pub fn reset(&self) {
        self.inner.reset();
    }
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for AdoSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
