//! The daemon's HTTP routes over real HTTP on 127.0.0.1.
use std::sync::Arc;
use std::time::Duration;

use ado_clickup_sync::daemon::{CycleOutcome, Health, Metrics, Nudger};
use ado_clickup_sync::http::{serve, AppState, Serving, WebhookSecrets, MAX_BODY_BYTES};
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "s3cret-webhook-value";
const POLL: Duration = Duration::from_secs(30);

struct Server {
    base: String,
    state: AppState,
    shutdown: CancellationToken,
    serving: Option<Serving>,
    client: reqwest::Client,
}

impl Server {
    async fn start(shared: Option<&str>, health: Health) -> Self {
        let secrets = Arc::new(WebhookSecrets::new(
            shared.map(|s| SecretString::from(s.to_string())),
        ));
        let state = AppState::new(
            Arc::new(health),
            Arc::new(Metrics::new()),
            Nudger::new(),
            secrets,
            POLL,
        );
        let shutdown = CancellationToken::new();
        let serving = serve("127.0.0.1", 0, state.clone(), shutdown.clone())
            .await
            .unwrap();
        Self {
            base: format!("http://{}", serving.addr),
            state,
            shutdown,
            serving: Some(serving),
            client: reqwest::Client::new(),
        }
    }

    async fn healthy(shared: Option<&str>) -> Self {
        Self::start(shared, Health::new(Utc::now())).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn nudges(&self) -> u64 {
        self.state.nudger.sent()
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        let serving = self.serving.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), serving.finished())
            .await
            .expect("server stops after shutdown")
            .unwrap();
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const CLICKUP_BODY: &str = r#"{"event":"taskUpdated","task_id":"abc","webhook_id":"w1"}"#;

#[tokio::test]
async fn clickup_valid_signature_is_accepted_and_nudges_once() {
    let s = Server::healthy(Some(SECRET)).await;
    let resp = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign(SECRET, CLICKUP_BODY.as_bytes()))
        .body(CLICKUP_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(s.nudges(), 1);
    assert!(s.state.nudger.is_pending());
    s.stop().await;
}

#[tokio::test]
async fn clickup_registered_webhook_secret_is_accepted() {
    let s = Server::healthy(Some(SECRET)).await;
    let registered = "registered-webhook-secret";
    let sig = sign(registered, CLICKUP_BODY.as_bytes());
    let send = || {
        s.client
            .post(s.url("/api/webhook/clickup"))
            .header("X-Signature", sig.clone())
            .body(CLICKUP_BODY)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 401);
    s.state
        .secrets
        .add_clickup_registered(SecretString::from(registered.to_string()));
    assert_eq!(send().await.unwrap().status(), 202);
    assert_eq!(s.nudges(), 1);
    // The list can be replaced (e.g. after re-registering webhooks).
    s.state.secrets.set_clickup_registered(vec![]);
    assert_eq!(send().await.unwrap().status(), 401);
    assert_eq!(s.nudges(), 1);
    s.stop().await;
}

#[tokio::test]
async fn clickup_bad_or_missing_signature_is_refused_and_wakes_nothing() {
    let s = Server::healthy(Some(SECRET)).await;
    let body = CLICKUP_BODY.as_bytes();
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("not hex at all".into()),
        Some(sign("wrong-secret", body)),
        // Signature of a different body.
        Some(sign(SECRET, b"{}")),
        // Truncated.
        Some(sign(SECRET, body)[..32].to_string()),
    ];
    for sig in cases {
        let mut req = s
            .client
            .post(s.url("/api/webhook/clickup"))
            .body(CLICKUP_BODY);
        if let Some(sig) = &sig {
            req = req.header("X-Signature", sig);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "signature {sig:?}");
    }
    assert_eq!(s.nudges(), 0);
    assert!(!s.state.nudger.is_pending());
    s.stop().await;
}

#[tokio::test]
async fn ado_webhook_and_sync_accept_basic_password_or_header() {
    let s = Server::healthy(Some(SECRET)).await;
    let mut expected = 0;
    for path in ["/api/webhook/ado", "/api/sync"] {
        let ok_basic = s
            .client
            .post(s.url(path))
            .header("Authorization", basic("ado", SECRET))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(ok_basic.status(), 202, "{path} basic");
        expected += 1;
        assert_eq!(s.nudges(), expected);

        let ok_header = s
            .client
            .post(s.url(path))
            .header("X-Webhook-Secret", SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(ok_header.status(), 202, "{path} header");
        expected += 1;
        assert_eq!(s.nudges(), expected);

        let bad = [
            ("Authorization", basic("ado", "wrong")),
            ("Authorization", basic(SECRET, "")),
            ("Authorization", format!("Bearer {SECRET}")),
            ("Authorization", "Basic !!!notbase64".to_string()),
            ("X-Webhook-Secret", format!("{SECRET}x")),
            ("X-Webhook-Secret", SECRET[..5].to_string()),
        ];
        for (name, value) in bad {
            let resp = s
                .client
                .post(s.url(path))
                .header(name, value.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "{path} {name}: {value}");
        }
        let none = s.client.post(s.url(path)).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path} without credentials");
        assert_eq!(s.nudges(), expected);
    }
    s.stop().await;
}

#[tokio::test]
async fn without_a_webhook_secret_the_nudge_routes_are_404() {
    let s = Server::healthy(None).await;
    let clickup = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign("", CLICKUP_BODY.as_bytes()))
        .body(CLICKUP_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(clickup.status(), 404);
    for path in ["/api/webhook/ado", "/api/sync"] {
        let resp = s
            .client
            .post(s.url(path))
            .header("X-Webhook-Secret", "")
            .header("Authorization", basic("u", ""))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert_eq!(s.nudges(), 0);
    // Health still answers.
    let live = s
        .client
        .get(s.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn bodies_over_one_mib_are_413_and_wake_nothing() {
    let s = Server::healthy(Some(SECRET)).await;
    let big = vec![b'a'; MAX_BODY_BYTES + 1];
    let resp = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign(SECRET, &big))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let resp = s
        .client
        .post(s.url("/api/sync"))
        .header("X-Webhook-Secret", SECRET)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(s.nudges(), 0);
    // Exactly 1 MiB is accepted.
    let max = vec![b'a'; MAX_BODY_BYTES];
    let resp = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign(SECRET, &max))
        .body(max)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(s.nudges(), 1);
    s.stop().await;
}

async fn health_json(s: &Server) -> (u16, serde_json::Value) {
    let resp = s.client.get(s.url("/api/health")).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}

#[tokio::test]
async fn health_is_200_after_a_recent_success() {
    let health = Health::new(Utc::now() - chrono::Duration::seconds(600));
    health.record_success(
        Utc::now() - chrono::Duration::seconds(5),
        &CycleOutcome {
            pending_intents: Some(4),
            open_conflicts: Some(2),
            ..Default::default()
        },
    );
    health.record_failure(Utc::now(), "ClickUp answered 429".into());
    let s = Server::start(Some(SECRET), health).await;
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["pending_intents"], 4);
    assert_eq!(body["open_conflicts"], 2);
    assert_eq!(body["consecutive_failures"], 1);
    assert_eq!(body["last_error"], "ClickUp answered 429");
    let age = body["last_success_age_seconds"].as_i64().unwrap();
    assert!((5..=65).contains(&age), "{age}");
    let last = body["last_success"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
    // The secret is nowhere in the answer.
    assert!(!body.to_string().contains(SECRET));
    s.stop().await;
}

#[tokio::test]
async fn health_is_503_when_the_last_success_is_older_than_three_intervals() {
    let health = Health::new(Utc::now() - chrono::Duration::seconds(3600));
    health.record_success(
        Utc::now() - chrono::Duration::seconds(3 * 30 + 30),
        &CycleOutcome::default(),
    );
    let s = Server::start(Some(SECRET), health).await;
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("3 poll intervals"));
    // Same JSON shape as the healthy answer.
    assert!(body["last_success"].is_string());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // Liveness is unaffected.
    let live = s
        .client
        .get(s.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn health_is_503_when_never_successful_after_the_grace() {
    let s = Server::start(
        Some(SECRET),
        Health::new(Utc::now() - chrono::Duration::seconds(3 * 30 + 30)),
    )
    .await;
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 503, "{body}");
    assert!(body["last_success"].is_null());
    s.stop().await;

    // Within the grace it is "starting" and ready.
    let s = Server::healthy(Some(SECRET)).await;
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "starting");
    s.stop().await;
}

#[tokio::test]
async fn health_is_503_when_the_store_is_unusable() {
    let health = Health::new(Utc::now());
    health.record_success(Utc::now(), &CycleOutcome::default());
    let s = Server::start(Some(SECRET), health).await;
    assert_eq!(health_json(&s).await.0, 200);
    s.state.health.set_store_ok(false);
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["reason"], "the store is unusable");
    s.state.health.set_store_ok(true);
    assert_eq!(health_json(&s).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn metrics_expose_recorded_values() {
    let s = Server::healthy(Some(SECRET)).await;
    let m = &s.state.metrics;
    m.record_cycle(
        true,
        Duration::from_millis(1500),
        Some(&CycleOutcome {
            written_ado: 3,
            written_clickup: 5,
            pending_intents: Some(1),
            open_conflicts: Some(2),
        }),
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    );
    m.record_cycle(false, Duration::from_millis(200), None, Utc::now());
    m.add_api_source(Arc::new(|| {
        // Two endpoints with the same side and status (the clients count per endpoint).
        vec![
            ("ado".to_string(), "200".to_string(), 40u64),
            ("clickup".to_string(), "429".to_string(), 3u64),
            ("ado".to_string(), "200".to_string(), 2u64),
        ]
    }));
    let resp = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let text = resp.text().await.unwrap();
    for line in [
        "ado_clickup_sync_cycles_total{outcome=\"ok\"} 1",
        "ado_clickup_sync_cycles_total{outcome=\"error\"} 1",
        "ado_clickup_sync_cycle_duration_seconds_count 2",
        "ado_clickup_sync_cycle_duration_seconds_sum 1.7",
        "ado_clickup_sync_items_written_total{side=\"ado\"} 3",
        "ado_clickup_sync_items_written_total{side=\"clickup\"} 5",
        "ado_clickup_sync_open_conflicts 2",
        "ado_clickup_sync_pending_intents 1",
        "ado_clickup_sync_last_success_timestamp_seconds 1700000000.0",
        "ado_clickup_sync_api_requests_total{side=\"ado\",status=\"200\"} 42",
        "ado_clickup_sync_api_requests_total{side=\"clickup\",status=\"429\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    let series = text
        .lines()
        .filter(|l| {
            l.starts_with("ado_clickup_sync_api_requests_total{side=\"ado\",status=\"200\"}")
        })
        .count();
    assert_eq!(series, 1, "one series per label set:\n{text}");
    assert!(text.contains("# TYPE ado_clickup_sync_cycle_duration_seconds histogram"));
    assert!(text.contains("ado_clickup_sync_cycle_duration_seconds_bucket{le=\"1.6\"} 2"));
    assert!(!text.contains(".."), "help texts end with one period");
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let s = Server::healthy(Some(SECRET)).await;
    let resp = s.client.get(s.url("/api/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = s.client.get(s.url("/api/sync")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(s.nudges(), 0);
    s.stop().await;
}

#[tokio::test]
async fn serve_reports_a_bind_error_with_the_address() {
    let s = Server::healthy(None).await;
    let port = s.base.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let err = serve("127.0.0.1", port, s.state.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    s.stop().await;
}

/// The scheduler and the server together, on the real clock: a signed webhook wakes a cycle
/// long before the (60 s) interval; a bad one does not; health reflects the cycles.
#[tokio::test]
async fn webhooks_wake_the_real_scheduler() {
    use ado_clickup_sync::daemon::{run, ScheduleOptions};
    use std::sync::atomic::{AtomicU64, Ordering};

    let s = Server::healthy(Some(SECRET)).await;
    let cycles = Arc::new(AtomicU64::new(0));
    let c = cycles.clone();
    let mut opts = ScheduleOptions::with_poll_interval(Duration::from_secs(60));
    opts.nudge_min_gap = Duration::from_millis(50);
    let sched = tokio::spawn(run(
        opts,
        s.state.nudger.clone(),
        s.shutdown.clone(),
        s.state.health.clone(),
        s.state.metrics.clone(),
        move |_t: CancellationToken| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, String>(CycleOutcome::default()) }
        },
    ));
    let wait_for = |n: u64| {
        let cycles = cycles.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while cycles.load(Ordering::SeqCst) < n {
                assert!(tokio::time::Instant::now() < deadline, "no cycle {n}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(1).await;
    let (code, body) = health_json(&s).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok");

    let bad = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign("wrong", CLICKUP_BODY.as_bytes()))
        .body(CLICKUP_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let good = s
        .client
        .post(s.url("/api/webhook/clickup"))
        .header("X-Signature", sign(SECRET, CLICKUP_BODY.as_bytes()))
        .body(CLICKUP_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 202);
    wait_for(2).await;
    // Well before the 60 s interval, only the signed webhook can have caused cycle 2.
    assert_eq!(cycles.load(Ordering::SeqCst), 2);

    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l == "ado_clickup_sync_cycles_total{outcome=\"ok\"} 2"),
        "{text}"
    );
    s.shutdown.cancel();
    let report = sched.await.unwrap();
    assert_eq!(report.cycles, 2);
    s.stop().await;
}
