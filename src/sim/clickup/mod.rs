//! A stateful simulator of ClickUp API v2 (`/api/v2/...`), faithful to
//! `../shared/api/clickup/FACTS.md` and the official OpenAPI examples: auth without `Bearer`,
//! filtered team tasks with ClickUp's defaults (no subtasks, no closed tasks, 100 per page),
//! the task JSON with string ids and dates, Update Task ignoring tags and custom fields,
//! per-token rate limits with `X-RateLimit-*` headers, and signed webhook deliveries.
//!
//! Use it from tests via [`start`], or over HTTP through the control API under `/__sim/`
//! (see `routes.rs`).
pub mod ratelimit;
mod routes;
pub mod state;
pub mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use ratelimit::RateLimit;
pub use state::{
    default_statuses, ApiError, ClickUpSeed, SeedTask, SimCustomField, SimList, SimListStatus,
    SimMember, SimStatus, SimTask, SimTaskEdit, SimTaskInput,
};

use crate::core::model::ClickUpStatusType;
use crate::sim::common::{lock, Faults, RequestLog, SimClock};
use state::{Change, Patch, State};

/// Why a simulator call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not bind the ClickUp simulator to 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The simulated service refused the operation, as it would refuse the API call.
    #[error("the ClickUp simulator refused the change to {what}: {error}")]
    Rejected { what: String, error: ApiError },
}

impl std::error::Error for ApiError {}

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct ClickUpSimOptions {
    /// 0 = any free port.
    pub port: u16,
    /// The personal token ("pk_..."), sent bare in `Authorization`.
    pub token: String,
    /// An OAuth access token accepted as `Authorization: Bearer <token>`, if any.
    pub oauth_token: Option<String>,
    /// The Workspace ("team") id.
    pub team_id: String,
    /// The first member owns the token (is the authorized user and author of comments).
    pub members: Vec<SimMember>,
    pub lists: Vec<SimList>,
    pub rate_limit: RateLimit,
    /// Tasks per page of the task queries (100 in the real API).
    pub page_size: usize,
    /// The Workspace timezone as a UTC offset, for snapping date-only due dates to 04:00.
    pub utc_offset_minutes: i32,
    /// Answer reads of missing or deleted tasks with `401 {"err":"Team not authorized",
    /// "ECODE":"OAUTH_027"}` as the real API often does (FACTS §2), instead of the default
    /// `404 {"err":"Task not found","ECODE":"ITEM_015"}`.
    pub missing_task_as_401: bool,
}

/// The id of the "ADO Link" url field of the default List.
pub const ADO_LINK_FIELD_ID: &str = "5f0c7a2e-3b1d-4e8a-9c6f-2d4b8a1e7c30";

impl Default for ClickUpSimOptions {
    fn default() -> Self {
        let member = |id, username: &str, email: &str| SimMember {
            id,
            username: username.into(),
            email: email.into(),
        };
        let mut list = SimList::new("901100", "Sim List");
        list.custom_fields.push(SimCustomField {
            id: ADO_LINK_FIELD_ID.into(),
            name: "ADO Link".into(),
            type_: "url".into(),
            type_config: serde_json::json!({}),
            required: false,
        });
        ClickUpSimOptions {
            port: 0,
            token: "pk_sim_token".into(),
            oauth_token: None,
            team_id: "9011".into(),
            members: vec![
                member(81000001, "Sync Bot", "sync-bot@example.com"),
                member(81000002, "Alice Adams", "alice@example.com"),
                member(81000003, "Bob Brown", "bob@example.com"),
                member(81000004, "Carol Chen", "carol@example.com"),
            ],
            lists: vec![list],
            rate_limit: RateLimit::default(),
            page_size: 100,
            utc_offset_minutes: 0,
            missing_task_as_401: false,
        }
    }
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub opts: ClickUpSimOptions,
    pub clock: Arc<SimClock>,
    pub log: Arc<RequestLog>,
    pub faults: Arc<Faults>,
    pub limiter: ratelimit::Limiter,
    pub hooks: webhooks::Hub,
    pub client: reqwest::Client,
}

fn fresh_state(o: &ClickUpSimOptions) -> State {
    State::new(
        o.team_id.clone(),
        o.members.clone(),
        o.lists.clone(),
        o.utc_offset_minutes,
    )
}

impl Inner {
    pub fn token_ok(&self, auth: &str) -> bool {
        use subtle::ConstantTimeEq;
        if bool::from(auth.as_bytes().ct_eq(self.opts.token.as_bytes())) {
            return true;
        }
        match (&self.opts.oauth_token, auth.strip_prefix("Bearer ")) {
            (Some(t), Some(given)) => bool::from(given.as_bytes().ct_eq(t.as_bytes())),
            _ => false,
        }
    }

    fn emit(&self, st: &mut State, id: &str, changes: &[Change]) {
        if let Some(t) = st.get(id).cloned() {
            self.hooks.emit(st, &t, changes);
        }
    }

    pub fn create(&self, list_id: &str, input: SimTaskInput) -> Result<String, ApiError> {
        let mut st = lock(&self.state);
        let (id, ch) = st.create(&self.clock, list_id, input, None)?;
        self.emit(&mut st, &id, &ch);
        Ok(id)
    }

    pub fn apply(&self, id: &str, patch: Patch) -> Result<(), ApiError> {
        let mut st = lock(&self.state);
        let ch = st.apply(&self.clock, id, patch)?;
        self.emit(&mut st, id, &ch);
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        let mut st = lock(&self.state);
        let gone = st.delete(id)?;
        for g in gone {
            if let Some(t) = st.tasks.iter().find(|t| t.id == g).cloned() {
                self.hooks.emit_deleted(&st, &t);
            }
        }
        Ok(())
    }

    pub fn comment(&self, id: &str, text: &str) -> Result<state::Comment, ApiError> {
        let mut st = lock(&self.state);
        let user = st.me().map(|m| m.id).unwrap_or(0);
        let (c, ch) = st.comment(&self.clock, id, text, user, None)?;
        self.emit(&mut st, id, &[ch]);
        Ok(c)
    }

    pub fn seed(&self, seed: ClickUpSeed) -> Result<Vec<String>, ApiError> {
        let mut st = lock(&self.state);
        if let Some(m) = seed.members {
            st.members = m;
        }
        if let Some(lists) = seed.lists {
            for l in lists {
                match st.lists.iter_mut().find(|x| x.id == l.id) {
                    Some(x) => *x = l,
                    None => st.lists.push(l),
                }
            }
        }
        let mut ids = Vec::with_capacity(seed.tasks.len());
        for t in seed.tasks {
            let fixed = Some((t.id.clone(), t.date_created_ms, t.date_updated_ms));
            let (id, _) = st.create(&self.clock, &t.list_id, t.input, fixed)?;
            let user = st.me().map(|m| m.id).unwrap_or(0);
            for (i, c) in t.comments.iter().enumerate() {
                let date = st.get(&id).map(|x| x.date_created_ms).unwrap_or(0) + i as i64;
                st.comment(&self.clock, &id, c, user, Some(date))?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn reset(&self) {
        *lock(&self.state) = fresh_state(&self.opts);
        self.hooks.clear();
        self.log.clear();
        self.faults.clear();
        self.limiter.reset();
        self.clock.freeze(None);
        self.clock.set_offset(chrono::Duration::zero());
    }
}

/// A running ClickUp simulator.
pub struct ClickUpSim {
    inner: Arc<Inner>,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Starts a simulator on 127.0.0.1 (`opts.port`, 0 = any free port).
pub async fn start(opts: ClickUpSimOptions) -> Result<ClickUpSim, SimError> {
    let bind_err = |source| SimError::Bind {
        port: opts.port,
        source,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(bind_err)?;
    let port = listener.local_addr().map_err(bind_err)?.port();
    let inner = Arc::new(Inner {
        state: Mutex::new(fresh_state(&opts)),
        limiter: ratelimit::Limiter::new(opts.rate_limit),
        opts,
        clock: Arc::new(SimClock::default()),
        log: Arc::new(RequestLog::default()),
        faults: Arc::new(Faults::default()),
        hooks: webhooks::Hub::default(),
        client: reqwest::Client::new(),
    });
    let app = routes::router(inner.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "ClickUp simulator server stopped with an error");
        }
    });
    Ok(ClickUpSim {
        inner,
        port,
        stop: Some(tx),
        server: Some(server),
    })
}

fn rejected(what: &str, error: ApiError) -> SimError {
    SimError::Rejected {
        what: what.to_string(),
        error,
    }
}

impl ClickUpSim {
    /// "http://127.0.0.1:PORT"; API paths are `{base}/api/v2/...`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn options(&self) -> &ClickUpSimOptions {
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
    pub fn task(&self, id: &str) -> Option<SimTask> {
        lock(&self.inner.state).get(id).cloned()
    }
    /// All tasks that are not deleted (archived ones included), in creation order.
    pub fn tasks(&self) -> Vec<SimTask> {
        lock(&self.inner.state)
            .tasks
            .iter()
            .filter(|t| !t.deleted)
            .cloned()
            .collect()
    }
    /// The status type a status name has in a List.
    pub fn status_type(&self, list_id: &str, status: &str) -> Option<ClickUpStatusType> {
        lock(&self.inner.state)
            .list(list_id)
            .and_then(|l| l.status(status))
            .map(|s| s.type_)
    }
    /// Ids and endpoints of the registered webhooks, with their health status.
    pub fn webhooks(&self) -> Vec<(String, String, String)> {
        lock(&self.inner.state)
            .webhooks
            .iter()
            .map(|w| (w.id.clone(), w.endpoint.clone(), w.status.clone()))
            .collect()
    }
    /// Creates a task as a person in the web UI would; fires webhooks.
    pub fn ui_create(&self, list_id: &str, new: SimTaskInput) -> Result<String, SimError> {
        self.inner
            .create(list_id, new)
            .map_err(|e| rejected(&format!("list {list_id}"), e))
    }
    /// Edits a task as a person in the web UI would (tags, custom fields, list moves and
    /// un-parenting included); bumps `date_updated` when something changed; fires webhooks.
    pub fn ui_edit(&self, id: &str, edit: SimTaskEdit) -> Result<(), SimError> {
        self.inner
            .apply(id, edit.into())
            .map_err(|e| rejected(&format!("task {id}"), e))
    }
    pub fn ui_delete(&self, id: &str) -> Result<(), SimError> {
        self.inner
            .delete(id)
            .map_err(|e| rejected(&format!("task {id}"), e))
    }
    /// Posts a comment as the first member; bumps the task's `date_updated`.
    pub fn ui_comment(&self, id: &str, text: &str) -> Result<(), SimError> {
        self.inner
            .comment(id, text)
            .map(|_| ())
            .map_err(|e| rejected(&format!("task {id}"), e))
    }
    /// Comment texts of a task, oldest first.
    pub fn comments(&self, id: &str) -> Vec<String> {
        lock(&self.inner.state)
            .comments
            .get(id)
            .map(|cs| cs.iter().map(|c| c.text.clone()).collect())
            .unwrap_or_default()
    }
    /// Loads a seed (no webhooks fire). Returns nothing; see [`ClickUpSim::seed_ids`].
    pub fn seed(&self, seed: ClickUpSeed) -> Result<(), SimError> {
        self.seed_ids(seed).map(|_| ())
    }
    /// Loads a seed and returns the ids of its tasks, in seed order.
    pub fn seed_ids(&self, seed: ClickUpSeed) -> Result<Vec<String>, SimError> {
        self.inner.seed(seed).map_err(|e| rejected("seed", e))
    }
    /// Back to the options' initial state: no tasks, comments or webhooks; log, faults,
    /// rate-limit windows and clock reset.
    pub fn reset(&self) {
        self.inner.reset();
    }
    pub fn set_rate_limit(&self, rl: RateLimit) {
        self.inner.limiter.set(rl);
    }
    pub async fn shutdown(mut self) {
        self.inner.hooks.clear();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Idle keep-alive connections can hold a graceful shutdown open; don't wait forever.
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for ClickUpSim {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
