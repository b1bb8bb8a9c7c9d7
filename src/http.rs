//! The daemon's HTTP surface (axum): health probes, Prometheus metrics, and the routes that
//! nudge the scheduler (webhooks and a manual `POST /api/sync`).
//!
//! Webhook payloads are never read as data: a verified request only wakes the next cycle, which
//! asks both services what changed. So a forged or replayed payload can at most cause one extra
//! (rate-limited) cycle, and only with a valid secret.
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::daemon::{Health, Metrics, Nudger};

/// Largest accepted request body; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("binding the HTTP server to {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("running the HTTP server on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server task failed: {0}")]
    Task(String),
}

/// Secrets that authorize the nudge routes. Never logged: `Debug` shows only counts.
#[derive(Default)]
pub struct WebhookSecrets {
    /// `WEBHOOK_SECRET`: authorizes all three routes. `None` = those routes answer 404.
    shared: Option<SecretString>,
    /// Secrets of ClickUp webhooks this daemon registered; each also verifies ClickUp signatures.
    clickup_registered: RwLock<Vec<SecretString>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("shared_configured", &self.shared.is_some())
            .field("clickup_registered", &self.registered_count())
            .finish()
    }
}

impl WebhookSecrets {
    pub fn new(shared: Option<SecretString>) -> Self {
        Self {
            shared: shared.filter(|s| !s.expose_secret().is_empty()),
            clickup_registered: RwLock::new(Vec::new()),
        }
    }

    /// Replace the secrets of the ClickUp webhooks the daemon registered.
    pub fn set_clickup_registered(&self, secrets: Vec<SecretString>) {
        *self
            .clickup_registered
            .write()
            .unwrap_or_else(|p| p.into_inner()) = secrets;
    }

    /// Add the secret of a ClickUp webhook the daemon just registered.
    pub fn add_clickup_registered(&self, secret: SecretString) {
        self.clickup_registered
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(secret);
    }

    fn registered_count(&self) -> usize {
        self.clickup_registered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn has_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether `X-Signature` (hex HMAC-SHA256 of `body`) matches any known ClickUp secret.
    fn verify_clickup(&self, body: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex.trim()) else {
            return false;
        };
        if signature.len() != 32 {
            return false;
        }
        let registered = self
            .clickup_registered
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut ok = false;
        // Check every candidate (no early exit) so the time taken does not say which matched.
        for secret in self.shared.iter().chain(registered.iter()) {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            else {
                continue;
            };
            mac.update(body);
            ok |= mac.verify_slice(&signature).is_ok();
        }
        ok
    }

    /// Whether `candidate` equals the shared secret. Both sides are hashed first so the
    /// comparison is constant-time and does not reveal the secret's length either.
    fn matches_shared(&self, candidate: &[u8]) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let a = Sha256::digest(shared.expose_secret().as_bytes());
        let b = Sha256::digest(candidate);
        a.ct_eq(&b).into()
    }
}

/// Everything the handlers need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub nudger: Nudger,
    pub secrets: Arc<WebhookSecrets>,
    /// The schedule's poll interval: readiness fails when the last success is older than 3×.
    pub poll_interval: Duration,
    /// No success is required until this long after start.
    pub startup_grace: Duration,
}

impl AppState {
    /// State with the default start-up grace (3 × the poll interval).
    pub fn new(
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        nudger: Nudger,
        secrets: Arc<WebhookSecrets>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            health,
            metrics,
            nudger,
            secrets,
            poll_interval,
            startup_grace: poll_interval.saturating_mul(3),
        }
    }
}

/// All routes, with the 1 MiB body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/health/live", get(live))
        .route("/metrics", get(metrics))
        .route("/api/webhook/clickup", post(webhook_clickup))
        .route("/api/webhook/ado", post(webhook_ado))
        .route("/api/sync", post(sync_now))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A running server: its bound address and the task serving it.
#[derive(Debug)]
pub struct Serving {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), HttpError>>,
}

impl Serving {
    /// Wait until the server has stopped (after the shutdown token is cancelled and open
    /// requests are answered).
    pub async fn finished(self) -> Result<(), HttpError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(HttpError::Task(e.to_string())),
        }
    }
}

/// Bind `bind:port` (port 0 picks a free one) and serve `router(state)` until `shutdown` is
/// cancelled. Returns once listening, with the bound address.
pub async fn serve(
    bind: &str,
    port: u16,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<Serving, HttpError> {
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .map_err(|source| HttpError::Bind {
            addr: format!("{bind}:{port}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: format!("{bind}:{port}"),
        source,
    })?;
    tracing::info!(%addr, "HTTP server listening");
    let app = router(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(|source| HttpError::Serve { addr, source })
    });
    Ok(Serving { addr, task })
}

async fn health(State(state): State<AppState>) -> Response {
    let report = state
        .health
        .report(Utc::now(), state.poll_interval, state.startup_grace);
    let code = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn live() -> Response {
    (
        StatusCode::OK,
        Json(serde_json::json!({ "status": "alive" })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed").into_response(),
    }
}

fn accepted(state: &AppState, source: &'static str) -> Response {
    state.nudger.nudge();
    tracing::debug!(source, "nudge accepted");
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "accepted" })),
    )
        .into_response()
}

fn unauthorized(source: &'static str) -> Response {
    tracing::info!(source, "nudge refused: bad or missing credentials");
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "status": "unauthorized" })),
    )
        .into_response()
}

async fn webhook_clickup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.secrets.has_shared() && state.secrets.registered_count() == 0 {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(signature) = headers.get("x-signature").and_then(|v| v.to_str().ok()) else {
        return unauthorized("clickup");
    };
    if state.secrets.verify_clickup(&body, signature) {
        accepted(&state, "clickup")
    } else {
        unauthorized("clickup")
    }
}

/// The shared-secret check for the ADO webhook and `/api/sync`: an `X-Webhook-Secret` header
/// or the password of HTTP Basic auth (ADO service hooks can only send the latter).
fn shared_secret_ok(secrets: &WebhookSecrets, headers: &HeaderMap) -> bool {
    if let Some(v) = headers.get("x-webhook-secret") {
        return secrets.matches_shared(v.as_bytes());
    }
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = auth.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let password = match decoded.iter().position(|&b| b == b':') {
        Some(i) => &decoded[i + 1..],
        None => return false,
    };
    secrets.matches_shared(password)
}

async fn webhook_ado(State(state): State<AppState>, headers: HeaderMap, _body: Bytes) -> Response {
    shared_secret_route(&state, &headers, "ado")
}

async fn sync_now(State(state): State<AppState>, headers: HeaderMap, _body: Bytes) -> Response {
    shared_secret_route(&state, &headers, "sync")
}

fn shared_secret_route(state: &AppState, headers: &HeaderMap, source: &'static str) -> Response {
    if !state.secrets.has_shared() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if shared_secret_ok(&state.secrets, headers) {
        accepted(state, source)
    } else {
        unauthorized(source)
    }
}
