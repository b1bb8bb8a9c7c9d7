//! ClickUp's per-token rate limit: a fixed window of `limit` requests (100 per minute on
//! most plans, FACTS §3). Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`
//! and `X-RateLimit-Reset` (Unix seconds); over the limit the answer is a 429.
//!
//! Tests shrink the window (e.g. to 300 ms). `X-RateLimit-Reset` stays in whole seconds as
//! the real header is, rounded UP, so a client that waits until Reset never comes back
//! early (it may wait up to a second longer than a time-scaled window needs). The
//! non-standard `X-RateLimit-Reset-Ms` carries the exact instant in ms for the curious;
//! clients must work from the standard headers alone.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::sim::common::lock;

/// Requests allowed per window, per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub limit: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            limit: 100,
            window: Duration::from_secs(60),
        }
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the window ends, in the service clock's Unix ms.
    pub reset_ms: i64,
}

impl Decision {
    pub fn apply_headers(&self, h: &mut HeaderMap) {
        let reset_s = self.reset_ms.div_euclid(1000) + i64::from(self.reset_ms % 1000 != 0);
        let put = |h: &mut HeaderMap, k: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        };
        put(h, "x-ratelimit-limit", self.limit.to_string());
        put(h, "x-ratelimit-remaining", self.remaining.to_string());
        put(h, "x-ratelimit-reset", reset_s.to_string());
        put(h, "x-ratelimit-reset-ms", self.reset_ms.to_string());
    }
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    cfg: Mutex<RateLimit>,
    /// token → (window start, requests counted in it)
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(cfg: RateLimit) -> Self {
        Limiter {
            cfg: Mutex::new(cfg),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn set(&self, cfg: RateLimit) {
        *lock(&self.cfg) = cfg;
        lock(&self.windows).clear();
    }

    pub fn reset(&self) {
        lock(&self.windows).clear();
    }

    /// Counts one request for `token`. Windows run on the real monotonic clock (a client
    /// really has to wait); Reset is expressed on the service clock `now_ms`.
    pub fn check(&self, token: &str, now_ms: i64) -> Decision {
        let cfg = *lock(&self.cfg);
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        let entry = windows.entry(token.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= cfg.window {
            *entry = (now, 0);
        }
        let left = cfg.window.saturating_sub(now.duration_since(entry.0));
        let reset_ms = now_ms + i64::try_from(left.as_millis()).unwrap_or(i64::MAX / 2);
        if entry.1 >= cfg.limit {
            return Decision {
                allowed: false,
                limit: cfg.limit,
                remaining: 0,
                reset_ms,
            };
        }
        entry.1 += 1;
        Decision {
            allowed: true,
            limit: cfg.limit,
            remaining: cfg.limit - entry.1,
            reset_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_refuses_then_resets() {
        let l = Limiter::new(RateLimit {
            limit: 2,
            window: Duration::from_millis(50),
        });
        let a = l.check("t", 1_000_000);
        assert!(a.allowed);
        assert_eq!(a.remaining, 1);
        assert!(l.check("t", 1_000_000).allowed);
        let c = l.check("t", 1_000_000);
        assert!(!c.allowed);
        assert_eq!(c.remaining, 0);
        assert!(l.check("other", 1_000_000).allowed, "limits are per token");
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.check("t", 1_000_000).allowed);
    }

    #[test]
    fn reset_header_rounds_up_to_whole_seconds() {
        let d = Decision {
            allowed: true,
            limit: 100,
            remaining: 5,
            reset_ms: 1_700_000_000_001,
        };
        let mut h = HeaderMap::new();
        d.apply_headers(&mut h);
        assert_eq!(h["x-ratelimit-reset"], "1700000001");
        assert_eq!(h["x-ratelimit-reset-ms"], "1700000000001");
        assert_eq!(h["x-ratelimit-remaining"], "5");
    }
}
