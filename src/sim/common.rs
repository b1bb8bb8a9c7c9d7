//! What both simulators share: the service clock, the request log and fault injection.
//!
//! Both are applied as one axum middleware ([`observe`]) so every route of either simulator
//! is logged and can be faulted the same way.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The service's notion of "now": the real clock plus an adjustable offset (to simulate skew),
/// or a frozen instant. Stamps handed out by [`SimClock::stamp`] are strictly increasing at
/// millisecond precision, as both services' change dates are.
#[derive(Debug, Default)]
pub struct SimClock {
    offset_ms: AtomicI64,
    /// 0 = not frozen; otherwise the frozen instant in ms.
    frozen_ms: AtomicI64,
    last_stamp_ms: AtomicI64,
}

impl SimClock {
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }
    pub fn now_ms(&self) -> i64 {
        let frozen = self.frozen_ms.load(Ordering::SeqCst);
        if frozen != 0 {
            return frozen;
        }
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::SeqCst)
    }
    /// Shift the service clock relative to the real one (positive = service runs ahead).
    pub fn set_offset(&self, offset: chrono::Duration) {
        self.offset_ms
            .store(offset.num_milliseconds(), Ordering::SeqCst);
    }
    /// Freeze the clock at an instant (`None` unfreezes).
    pub fn freeze(&self, at: Option<DateTime<Utc>>) {
        self.frozen_ms.store(
            at.map(|t| t.timestamp_millis()).unwrap_or(0),
            Ordering::SeqCst,
        );
    }
    /// Advance a frozen clock, or the offset of a running one.
    pub fn advance(&self, by: chrono::Duration) {
        let ms = by.num_milliseconds();
        if self.frozen_ms.load(Ordering::SeqCst) != 0 {
            self.frozen_ms.fetch_add(ms, Ordering::SeqCst);
        } else {
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }
    /// A change timestamp in ms: the current time, but always greater than the previous stamp.
    pub fn stamp_ms(&self) -> i64 {
        let now = self.now_ms();
        let mut prev = self.last_stamp_ms.load(Ordering::SeqCst);
        loop {
            let next = now.max(prev + 1);
            match self.last_stamp_ms.compare_exchange(
                prev,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }
    pub fn stamp(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.stamp_ms()).unwrap_or_default()
    }
}

/// One answered request, as tests count them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl LoggedRequest {
    /// Whether the request asked the service to change something (ADO's WIQL query and batch
    /// read are POSTs that only read).
    pub fn is_write(&self) -> bool {
        self.method != "GET"
            && !self.path.contains("/wiql")
            && !self.path.contains("workitemsbatch")
    }
}

#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<LoggedRequest>>,
}

impl RequestLog {
    pub fn push(&self, entry: LoggedRequest) {
        lock(&self.entries).push(entry);
    }
    pub fn entries(&self) -> Vec<LoggedRequest> {
        lock(&self.entries).clone()
    }
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }
    /// Requests whose method matches and whose path contains `path_part`.
    pub fn count(&self, method: &str, path_part: &str) -> usize {
        lock(&self.entries)
            .iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method) && e.path.contains(path_part))
            .count()
    }
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status (and a body in the service's error shape, chosen by the sim).
    Status { status: u16 },
    /// Wait this long, then handle the request normally.
    Delay { ms: u64 },
    /// Close the connection without an answer.
    Drop,
    /// Handle the request, then cut the JSON body in half.
    Truncate,
    /// Handle the request, then replace the body with something that is not JSON.
    Malformed,
}

/// A scripted fault: applies to requests whose method matches (empty = any) and whose path
/// contains `path_contains`, for the next `times` matches, or with `probability` when `times`
/// is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path_contains: String,
    pub fault: FaultKind,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub probability: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        lock(&self.rules).push(rule);
    }
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }
    pub fn rules(&self) -> Vec<FaultRule> {
        lock(&self.rules).clone()
    }
    /// The fault to apply to this request, if any; consumes one use of a counted rule.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultKind> {
        let mut rules = lock(&self.rules);
        let idx = rules.iter().position(|r| {
            (r.method.is_empty() || r.method.eq_ignore_ascii_case(method))
                && path.contains(&r.path_contains)
                && match (r.times, r.probability) {
                    (Some(n), _) => n > 0,
                    (None, Some(p)) => rand::rng().random_bool(p.clamp(0.0, 1.0)),
                    (None, None) => true,
                }
        })?;
        let fault = rules[idx].fault.clone();
        if let Some(n) = rules[idx].times.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(idx);
            }
        }
        Some(fault)
    }
}

/// Builds the body of an injected error status in the simulated service's error shape.
pub type ErrorBodyFn = fn(status: StatusCode) -> Response;

/// Shared observation state handed to [`observe`].
#[derive(Clone)]
pub struct Observer {
    pub log: Arc<RequestLog>,
    pub faults: Arc<Faults>,
    pub error_body: ErrorBodyFn,
    /// Paths under this prefix (the control API) are neither logged nor faulted.
    pub control_prefix: &'static str,
    /// The service's clock: answers carry it in `Date`, as a real service's come from the
    /// same clock as its timestamps.
    pub clock: Arc<SimClock>,
}

/// Middleware: applies scripted faults and logs every answered API request.
pub async fn observe(State(obs): State<Observer>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path.starts_with(obs.control_prefix) {
        return next.run(req).await;
    }
    let fault = obs.faults.take(&method, &path);
    let response = match fault {
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (obs.error_body)(status)
        }
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        Some(FaultKind::Drop) => {
            obs.log.push(LoggedRequest {
                method,
                path,
                query,
                status: 0,
            });
            // A body stream that fails makes hyper abort the connection mid-response, which
            // the client sees as a connection error, as with a dropped TCP connection.
            let stream = futures::stream::once(async {
                Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("dropped by fault"))
            });
            return Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Some(FaultKind::Truncate) => mangle(next.run(req).await, true).await,
        Some(FaultKind::Malformed) => mangle(next.run(req).await, false).await,
        None => next.run(req).await,
    };
    obs.log.push(LoggedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
    });
    let mut response = response;
    let date = obs
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(axum::http::header::DATE, v);
    }
    response
}

async fn mangle(response: Response, truncate: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let new_body = if truncate {
        bytes.slice(0..bytes.len() / 2)
    } else {
        bytes::Bytes::from_static(b"<html><body>502 Bad Gateway</body></html>")
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    if !truncate {
        parts.headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Response::from_parts(parts, Body::from(new_body))
}

/// Locks a mutex, recovering the data if a panicking test thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_strictly_increase_even_when_frozen() {
        let c = SimClock::default();
        c.freeze(DateTime::from_timestamp_millis(1_700_000_000_000));
        let a = c.stamp_ms();
        let b = c.stamp_ms();
        assert_eq!(a, 1_700_000_000_000);
        assert_eq!(b, 1_700_000_000_001);
    }

    #[test]
    fn counted_fault_is_used_up() {
        let f = Faults::default();
        f.add(FaultRule {
            method: "GET".into(),
            path_contains: "/task".into(),
            fault: FaultKind::Status { status: 500 },
            times: Some(2),
            probability: None,
        });
        assert!(f.take("POST", "/task/1").is_none());
        assert_eq!(
            f.take("GET", "/task/1"),
            Some(FaultKind::Status { status: 500 })
        );
        assert!(f.take("GET", "/task/1").is_some());
        assert!(f.take("GET", "/task/1").is_none());
    }
}
