//! The HTTP policy both API clients share: the typed error, timeouts, retries, rate limiting
//! and request counting.
//!
//! What is safe to retry is decided by the caller ([`Safety`]): reads, WIQL, batch reads and
//! `test /rev`-guarded ADO updates are; creates are not, because a create whose answer was lost
//! may have happened — the engine resolves those through its intent log. A 429 is retried for
//! every request, since the service refused it without acting on it.
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::model::Side;

/// Everything that can go wrong talking to a service. Every variant names the operation and
/// the item (`op`, e.g. `"update ADO work item 42"`), so a log line or a retries row says what
/// failed without more context. No variant ever carries a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the token is wrong, expired or lacks a scope.
    #[error("{op}: not authorized (HTTP {status}): {message}")]
    Auth {
        op: String,
        status: u16,
        message: String,
    },
    /// The item does not exist (or is not visible to the token).
    #[error("{op}: not found: {message}")]
    NotFound { op: String, message: String },
    /// The item changed since it was read (ADO 412 VS403351, 409 TF26071).
    #[error("{op}: conflict, the item changed since it was read: {message}")]
    Conflict { op: String, message: String },
    /// The service asked us to wait (429) longer than we were willing to, or kept refusing.
    #[error("{op}: rate limited, retry after {wait:?}")]
    RateLimited { op: String, wait: Duration },
    /// The service rejected the request's content (400 and the like).
    #[error("{op}: rejected: {message}{}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Validation {
        op: String,
        message: String,
        field: Option<String>,
    },
    /// 5xx, timeouts and connection failures: worth trying again later.
    #[error("{op}: transient failure: {message}")]
    Transient { op: String, message: String },
    /// The answer could not be understood (not JSON, wrong shape, missing fields).
    #[error("{op}: unexpected answer: {message}")]
    Protocol { op: String, message: String },
}

impl ApiError {
    pub fn op(&self) -> &str {
        match self {
            ApiError::Auth { op, .. }
            | ApiError::NotFound { op, .. }
            | ApiError::Conflict { op, .. }
            | ApiError::RateLimited { op, .. }
            | ApiError::Validation { op, .. }
            | ApiError::Transient { op, .. }
            | ApiError::Protocol { op, .. } => op,
        }
    }

    /// A short stable name of the variant, for metrics and the retries table.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Auth { .. } => "auth",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Validation { .. } => "validation",
            ApiError::Transient { .. } => "transient",
            ApiError::Protocol { .. } => "protocol",
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Transient { .. }
        )
    }

    pub(crate) fn protocol(op: &str, message: impl Into<String>) -> Self {
        ApiError::Protocol {
            op: op.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn validation(op: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::Validation {
            op: op.to_string(),
            message: message.into(),
            field: field.map(str::to_string),
        }
    }
}

/// Timeouts, retries and client-side rate limiting for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpPolicy {
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// For the whole request, answer body included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries after the first attempt (transient failures of safe requests, and 429s).
    pub max_retries: usize,
    #[serde(with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Client-side limit per token; `None` = no client-side limit (ADO's budget is in TSTUs,
    /// which a client cannot count, so it relies on the service's headers instead).
    pub requests_per_minute: Option<u32>,
    /// The window `requests_per_minute` is counted over: a minute. Only a time-scaled
    /// benchmark changes it (1 s standing for ClickUp's minute, with the simulator's window
    /// scaled the same way).
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// The longest a 429 or a rate-limit header may make one call wait; beyond it the call
    /// fails with [`ApiError::RateLimited`] and the engine tries again next cycle.
    #[serde(with = "humantime_serde")]
    pub max_rate_limit_wait: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_retries: 5,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            requests_per_minute: None,
            rate_window: Duration::from_secs(60),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl HttpPolicy {
    pub fn ado_default() -> Self {
        HttpPolicy::default()
    }
    /// ClickUp allows 100 requests per minute per token on most plans.
    pub fn clickup_default() -> Self {
        HttpPolicy {
            requests_per_minute: Some(100),
            ..HttpPolicy::default()
        }
    }
}

/// One counter key: which side, which endpoint (a stable label such as `"wiql"` or
/// `"task.get"`) and which HTTP status (0 = no answer: timeout or connection failure).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StatKey {
    pub side: Side,
    pub endpoint: String,
    pub status: u16,
}

/// Every request either client sends, counted by side, endpoint and status. Shared (`Arc`)
/// between the clients, the metrics endpoint and tests.
#[derive(Debug, Default)]
pub struct ApiStats {
    counts: Mutex<BTreeMap<StatKey, u64>>,
}

impl ApiStats {
    pub fn new() -> Arc<Self> {
        Arc::new(ApiStats::default())
    }
    pub fn record(&self, side: Side, endpoint: &str, status: u16) {
        let key = StatKey {
            side,
            endpoint: endpoint.to_string(),
            status,
        };
        *lock(&self.counts).entry(key).or_insert(0) += 1;
    }
    pub fn snapshot(&self) -> Vec<(StatKey, u64)> {
        lock(&self.counts)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
    /// Requests to one endpoint, whatever their status.
    pub fn count(&self, side: Side, endpoint: &str) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|(k, _)| k.side == side && k.endpoint == endpoint)
            .map(|(_, v)| *v)
            .sum()
    }
    pub fn count_status(&self, side: Side, endpoint: &str, status: u16) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|(k, _)| k.side == side && k.endpoint == endpoint && k.status == status)
            .map(|(_, v)| *v)
            .sum()
    }
    /// All requests to one side.
    pub fn total(&self, side: Side) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|(k, _)| k.side == side)
            .map(|(_, v)| *v)
            .sum()
    }
    pub fn reset(&self) {
        lock(&self.counts).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a request may be sent again after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reading, or a write that cannot apply twice (guarded by `test /rev`).
    Safe,
    /// A write whose repetition could duplicate or clobber: never retried blindly.
    Unsafe,
}

/// A request to send, rebuilt for each attempt.
pub(crate) struct Call {
    pub method: Method,
    pub url: url::Url,
    /// Stable label for [`ApiStats`] and logs.
    pub endpoint: &'static str,
    pub op: String,
    pub body: Option<(Bytes, &'static str)>,
    pub safety: Safety,
}

impl Call {
    pub fn new(method: Method, url: url::Url, endpoint: &'static str, op: String) -> Self {
        let safety = if method == Method::GET {
            Safety::Safe
        } else {
            Safety::Unsafe
        };
        Call {
            method,
            url,
            endpoint,
            op,
            body: None,
            safety,
        }
    }
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some((Bytes::from(value.to_string()), "application/json"));
        self
    }
    pub fn json_patch(mut self, value: &serde_json::Value) -> Self {
        self.body = Some((
            Bytes::from(value.to_string()),
            "application/json-patch+json",
        ));
        self
    }
    pub fn safe(mut self) -> Self {
        self.safety = Safety::Safe;
        self
    }
}

/// An answer with a 2xx status.
pub(crate) struct Reply {
    pub body: Bytes,
    /// The service's clock when it answered (`Date`, whole seconds), if it said.
    pub date: Option<DateTime<Utc>>,
}

impl Reply {
    pub fn json<T: serde::de::DeserializeOwned>(&self, op: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::protocol(
                op,
                format!(
                    "cannot parse the answer: {e} (body starts {:?})",
                    snippet(&self.body)
                ),
            )
        })
    }
}

/// The start of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// A non-2xx answer, handed to the side's classifier.
pub(crate) struct Failure<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub op: &'a str,
}

/// Turns a non-2xx answer into the typed error, in the side's terms.
pub(crate) type Classifier = fn(&Failure<'_>, &HttpPolicy) -> ApiError;

/// How long a 429 (or a throttled answer) asks us to wait: `Retry-After` (seconds), else
/// `X-RateLimit-Reset` (Unix seconds) from now, else one second.
pub(crate) fn rate_limit_wait(headers: &HeaderMap) -> Duration {
    if let Some(secs) = header_f64(headers, "retry-after") {
        return Duration::from_secs_f64(secs.max(0.0));
    }
    if let Some(reset) = header_f64(headers, "x-ratelimit-reset") {
        let now_ms = Utc::now().timestamp_millis() as f64;
        let wait_ms = reset * 1000.0 - now_ms;
        // The reset is in whole seconds: wait into the next second, never zero. The windows
        // are a minute long, so a reset further out than that is clock skew between us and
        // the service, not a reason to stall.
        let wait_ms = wait_ms.clamp(0.0, 61_000.0);
        return Duration::from_millis(wait_ms as u64 + 250);
    }
    Duration::from_secs(1)
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Which rate-limit headers a side's answers carry and we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderRules {
    /// `Retry-After` (even on 200) and `X-RateLimit-Delay`.
    Ado,
    /// `X-RateLimit-Remaining` / `X-RateLimit-Reset`.
    ClickUp,
}

/// The shared sender: one per client.
pub(crate) struct Transport {
    client: reqwest::Client,
    side: Side,
    stats: Arc<ApiStats>,
    policy: HttpPolicy,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Set from rate-limit headers: no request leaves before this instant.
    pause_until: Mutex<Option<tokio::time::Instant>>,
    /// Requests sent and not yet answered: each will use one of the `Remaining` an answer
    /// reports.
    in_flight: std::sync::atomic::AtomicUsize,
    auth: HeaderValue,
    rules: HeaderRules,
    classify: Classifier,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("side", &self.side)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Client-side limiters, one per (side, token, rate, window), so that several clients built
/// with the same token share one budget. Keyed by a hash: the registry never holds a token.
fn limiter_for(
    side: Side,
    token: &str,
    per_window: u32,
    window: Duration,
) -> Arc<DefaultDirectRateLimiter> {
    type Registry = Mutex<HashMap<(Vec<u8>, u32, Duration), Arc<DefaultDirectRateLimiter>>>;
    static LIMITERS: OnceLock<Registry> = OnceLock::new();
    let mut h = Sha256::new();
    h.update(side.as_str().as_bytes());
    h.update([0u8]);
    h.update(token.as_bytes());
    let key = (h.finalize().to_vec(), per_window, window);
    let rate = NonZeroU32::new(per_window).unwrap_or(NonZeroU32::MIN);
    // `per_minute` is `with_period(60 s / rate)` with a burst of `rate`: a scaled window keeps
    // that shape, so a time-scaled run behaves as the real one does.
    let quota = if window == Duration::from_secs(60) {
        Quota::per_minute(rate)
    } else {
        Quota::with_period(window / rate.get())
            .map(|q| q.allow_burst(rate))
            .unwrap_or_else(|| Quota::per_minute(rate))
    };
    let map = LIMITERS.get_or_init(|| Mutex::new(HashMap::new()));
    lock(map)
        .entry(key)
        .or_insert_with(|| Arc::new(RateLimiter::direct(quota)))
        .clone()
}

impl Transport {
    /// `auth` is the full `Authorization` header value; `token` is only hashed (limiter key).
    pub fn new(
        side: Side,
        policy: HttpPolicy,
        stats: Arc<ApiStats>,
        auth: &str,
        token: &str,
        rules: HeaderRules,
        classify: Classifier,
    ) -> Result<Self, ApiError> {
        let op = format!("build the {side} HTTP client");
        let client = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.request_timeout)
            .user_agent(concat!("ado-clickup-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::protocol(&op, e.to_string()))?;
        let mut auth = HeaderValue::from_str(auth).map_err(|_| {
            ApiError::validation(
                &op,
                "the token contains characters not allowed in an HTTP header",
                Some("token"),
            )
        })?;
        // Marks the value so that hyper and `Debug` never print it.
        auth.set_sensitive(true);
        let limiter = policy
            .requests_per_minute
            .filter(|n| *n > 0)
            .map(|n| limiter_for(side, token, n, policy.rate_window));
        Ok(Transport {
            client,
            side,
            stats,
            policy,
            limiter,
            pause_until: Mutex::new(None),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            auth,
            rules,
            classify,
        })
    }

    pub fn stats(&self) -> &Arc<ApiStats> {
        &self.stats
    }

    /// Sends a call with the policy: rate limiting, retries, counting, error mapping.
    pub async fn execute(&self, call: &Call) -> Result<Reply, ApiError> {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.policy.backoff_min)
            .with_max_delay(self.policy.backoff_max)
            .with_max_times(self.policy.max_retries);
        let max_wait = self.policy.max_rate_limit_wait;
        (|| self.attempt(call))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| match e {
                ApiError::RateLimited { wait, .. } => *wait <= max_wait,
                ApiError::Transient { .. } => call.safety == Safety::Safe,
                _ => false,
            })
            .adjust(|e, next| match e {
                // Wait as told (never less than the backoff would), within the retry budget.
                ApiError::RateLimited { wait, .. } => next.map(|_| *wait),
                _ => next,
            })
            .notify(|e, d| {
                tracing::warn!(
                    side = %self.side,
                    endpoint = call.endpoint,
                    error = %e,
                    retry_in_ms = d.as_millis() as u64,
                    "retrying"
                );
            })
            .await
    }

    async fn attempt(&self, call: &Call) -> Result<Reply, ApiError> {
        self.wait_for_pause().await;
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        let mut req = self
            .client
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some((body, ctype)) = &call.body {
            req = req.header(CONTENT_TYPE, *ctype).body(body.clone());
        }
        // A pause may have been set while this call waited for the limiter.
        self.wait_for_pause().await;
        let started = std::time::Instant::now();
        let _in_flight = InFlight::enter(&self.in_flight);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.record(self.side, call.endpoint, 0);
                tracing::debug!(side = %self.side, endpoint = call.endpoint, op = %call.op, "no answer");
                return Err(ApiError::Transient {
                    op: call.op.clone(),
                    message: transport_message(&e),
                });
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.stats.record(self.side, call.endpoint, status.as_u16());
                return Err(ApiError::Transient {
                    op: call.op.clone(),
                    message: format!(
                        "HTTP {} but the body was cut off: {}",
                        status.as_u16(),
                        transport_message(&e)
                    ),
                });
            }
        };
        self.stats.record(self.side, call.endpoint, status.as_u16());
        tracing::debug!(
            side = %self.side,
            method = %call.method,
            endpoint = call.endpoint,
            op = %call.op,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        self.observe_rate_headers(status, &headers);
        // ADO answers a bad or expired PAT with 203 and an HTML sign-in page on some routes:
        // a "success" that is really an auth failure.
        let sign_in_page =
            self.rules == HeaderRules::Ado && status == StatusCode::NON_AUTHORITATIVE_INFORMATION;
        if status.is_success() && !sign_in_page {
            let date = headers
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
                .map(|d| d.with_timezone(&Utc));
            return Ok(Reply { body, date });
        }
        Err((self.classify)(
            &Failure {
                status,
                headers: &headers,
                body: &body,
                op: &call.op,
            },
            &self.policy,
        ))
    }

    async fn wait_for_pause(&self) {
        let until = *lock(&self.pause_until);
        if let Some(until) = until {
            if until > tokio::time::Instant::now() {
                tracing::debug!(side = %self.side, "waiting for the rate-limit window");
                tokio::time::sleep_until(until).await;
            }
        }
    }

    fn pause_for(&self, d: Duration) {
        let d = d.min(self.policy.max_rate_limit_wait);
        let until = tokio::time::Instant::now() + d;
        let mut p = lock(&self.pause_until);
        if p.map(|cur| cur < until).unwrap_or(true) {
            *p = Some(until);
        }
    }

    fn observe_rate_headers(&self, status: StatusCode, headers: &HeaderMap) {
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The retry waits itself; a shared pause keeps other calls from piling on.
            self.pause_for(rate_limit_wait(headers));
            return;
        }
        match self.rules {
            HeaderRules::Ado => {
                if let Some(secs) = header_f64(headers, "retry-after") {
                    self.pause_for(Duration::from_secs_f64(secs.max(0.0)));
                } else if let Some(secs) = header_f64(headers, "x-ratelimit-delay") {
                    // The service already slowed this request down: give it room.
                    self.pause_for(Duration::from_secs_f64(secs.max(0.0)));
                }
            }
            HeaderRules::ClickUp => {
                // The requests still in flight (besides this one) spend the window too: pause
                // while what remains would not cover them, rather than let them hit a 429.
                let others = self
                    .in_flight
                    .load(std::sync::atomic::Ordering::SeqCst)
                    .saturating_sub(1) as f64;
                let exhausted =
                    header_f64(headers, "x-ratelimit-remaining").is_some_and(|left| left <= others);
                if exhausted && headers.contains_key("x-ratelimit-reset") {
                    self.pause_for(rate_limit_wait(headers));
                }
            }
        }
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A transport error's description without the request URL's query (cheap insurance: no
/// secret is ever put in a URL, but the message should stay short).
fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {}", strip_url(e));
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), u.path());
    }
    s
}

/// Parses a service timestamp: RFC 3339 with 0–9 fractional digits, or a zone-less ISO form
/// (taken as UTC), or a bare date (midnight UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_any_fraction_parse() {
        let cases = [
            ("2014-12-29T20:49:28.74Z", 740),
            ("2017-10-06T01:04:51.5Z", 500),
            ("2017-10-06T01:04:51.5700000Z", 570),
            ("2017-10-06T01:04:51.123Z", 123),
            ("2017-10-06T01:04:51Z", 0),
            ("2019-01-18T00:00:00.0000000", 0),
        ];
        for (s, ms) in cases {
            let t = parse_timestamp(s).unwrap_or_else(|| panic!("{s} did not parse"));
            assert_eq!(t.timestamp_subsec_millis(), ms, "{s}");
        }
        assert_eq!(
            parse_timestamp("2026-03-25T13:11:27+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-03-25T11:11:27+00:00"
        );
        assert!(parse_timestamp("1/31/2017 9:21:14 PM").is_none());
    }

    #[test]
    fn retry_after_wins_over_reset() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("99999999999"));
        assert_eq!(rate_limit_wait(&h), Duration::from_secs(3));
        let mut h = HeaderMap::new();
        let reset = (Utc::now().timestamp() + 2).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        let w = rate_limit_wait(&h);
        assert!(
            w > Duration::from_millis(1000) && w <= Duration::from_millis(2300),
            "{w:?}"
        );
        // A reset far in the future (a skewed service clock) is capped at one window.
        let mut h = HeaderMap::new();
        let reset = (Utc::now().timestamp() + 600).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        assert_eq!(rate_limit_wait(&h), Duration::from_millis(61_250));
    }

    #[test]
    fn stats_count_by_side_endpoint_status() {
        let s = ApiStats::new();
        s.record(Side::Ado, "wiql", 200);
        s.record(Side::Ado, "wiql", 500);
        s.record(Side::ClickUp, "task.get", 200);
        assert_eq!(s.count(Side::Ado, "wiql"), 2);
        assert_eq!(s.count_status(Side::Ado, "wiql", 500), 1);
        assert_eq!(s.total(Side::ClickUp), 1);
        assert_eq!(s.snapshot().len(), 3);
    }

    #[test]
    fn limiter_is_sized_per_minute_and_shared_per_token() {
        let minute = Duration::from_secs(60);
        let a = limiter_for(Side::ClickUp, "pk_limiter_test", 60, minute);
        for i in 0..60 {
            assert!(a.check().is_ok(), "request {i} of the first minute refused");
        }
        assert!(
            a.check().is_err(),
            "the 61st request within a minute must wait"
        );
        // Another client with the same token shares the budget; another token does not.
        assert!(limiter_for(Side::ClickUp, "pk_limiter_test", 60, minute)
            .check()
            .is_err());
        assert!(limiter_for(Side::ClickUp, "pk_other", 60, minute)
            .check()
            .is_ok());
    }

    #[test]
    fn a_scaled_window_keeps_the_burst_and_refills_within_the_window() {
        let window = Duration::from_millis(200);
        let l = limiter_for(Side::ClickUp, "pk_scaled_window_test", 10, window);
        for i in 0..10 {
            assert!(l.check().is_ok(), "request {i} of the first window refused");
        }
        assert!(
            l.check().is_err(),
            "the 11th request within the window must wait"
        );
        std::thread::sleep(window);
        for i in 0..10 {
            assert!(l.check().is_ok(), "request {i} after one window refused");
        }
        // The default window is a minute, as before.
        assert_eq!(HttpPolicy::default().rate_window, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_operation() {
        let e = ApiError::validation(
            "update ADO work item 7",
            "TF51535: Cannot find field X.",
            Some("X"),
        );
        assert_eq!(
            e.to_string(),
            "update ADO work item 7: rejected: TF51535: Cannot find field X. (field X)"
        );
        assert_eq!(e.kind(), "validation");
        assert!(!e.is_retryable());
    }
}
