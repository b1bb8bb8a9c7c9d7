//! The daemon as users run it: `ado-clickup-sync run` as a child process against the
//! simulators started with `ado-clickup-sync sim` as another process.
mod proc_support;

use std::process::Stdio;
use std::time::Duration;

use proc_support::{
    free_port, sign, terminate, wait_for, ConfigOpts, Setup, SimProc, WEBHOOK_SECRET,
};
use serde_json::json;

struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    fn start(sim: &SimProc, setup: &Setup, port: u16) -> Daemon {
        let child = setup
            .command(sim, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run starts");
        Daemon { child, port }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    async fn health(&self) -> Option<(u16, serde_json::Value)> {
        let r = reqwest::get(self.url("/api/health")).await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.ok()?))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn first_sync(sim: &SimProc, d: &Daemon, n_links: usize, setup: &Setup) {
    let ok = wait_for(Duration::from_secs(20), || async {
        d.health()
            .await
            .is_some_and(|(c, b)| c == 200 && b["status"] == json!("ok"))
            && setup.db.exists()
            && setup
                .db()
                .count_active_links("team")
                .is_ok_and(|n| n as usize == n_links)
    })
    .await;
    assert!(ok.is_some(), "initial sync did not finish");
    let _ = sim;
}

fn title_of(items: &[serde_json::Value], id: i64) -> String {
    items
        .iter()
        .find(|w| w["id"] == json!(id))
        .and_then(|w| w["fields"]["System.Title"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_arrive_within_one_poll_interval_and_sigterm_exits_0() {
    let sim = SimProc::start(0, 0);
    let a = sim.ado_create("From ADO").await;
    let c = sim.cu_create("From ClickUp").await;
    let port = free_port();
    let setup = Setup::new(
        &sim,
        ConfigOpts {
            port,
            ..ConfigOpts::default()
        },
    );
    let mut d = Daemon::start(&sim, &setup, port);
    first_sync(&sim, &d, 2, &setup).await;

    let t_ado = setup
        .db()
        .link_by_ado("team", a)
        .unwrap()
        .unwrap()
        .clickup_id;
    let a_cu = setup
        .db()
        .link_by_clickup("team", &c)
        .unwrap()
        .unwrap()
        .ado_id;

    // ADO → ClickUp within poll interval (1 s) + 1 s.
    sim.ado_edit(a, json!({"System.Title": "Edited in ADO"}))
        .await;
    let took = wait_for(Duration::from_secs(2), || async {
        sim.tasks()
            .await
            .iter()
            .any(|t| t["id"] == json!(t_ado) && t["name"] == json!("Edited in ADO"))
    })
    .await;
    assert!(took.is_some(), "ADO edit did not arrive within 2 s");

    // ClickUp → ADO.
    sim.cu_edit(&c, json!({"name": "Edited in ClickUp"})).await;
    let took = wait_for(Duration::from_secs(2), || async {
        title_of(&sim.ado_items().await, a_cu) == "Edited in ClickUp"
    })
    .await;
    assert!(took.is_some(), "ClickUp edit did not arrive within 2 s");

    // SIGTERM: exit 0 within 10 s, the store consistent.
    let (status, took) = terminate(&mut d.child).expect("exits within 10 s");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10));
    let db = setup.db();
    let ok: String = db
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert!(db.pending_intents(None).unwrap().is_empty());
    assert_eq!(db.count_active_links("team").unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_wake_it_early_bad_ones_wake_nothing_and_bursts_coalesce() {
    let sim = SimProc::start(0, 0);
    let c = sim.cu_create("Task").await;
    let port = free_port();
    let setup = Setup::new(
        &sim,
        ConfigOpts {
            poll_interval: "60s",
            port,
            public_url: true,
            ..ConfigOpts::default()
        },
    );
    let d = Daemon::start(&sim, &setup, port);
    first_sync(&sim, &d, 1, &setup).await;
    let a = setup
        .db()
        .link_by_clickup("team", &c)
        .unwrap()
        .unwrap()
        .ado_id;
    // The daemon registered its webhook with the ClickUp simulator.
    let state = sim.get(false, "/__sim/state").await;
    let hooks = state["webhooks"].as_array().cloned().unwrap_or_default();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(
        hooks[0]["endpoint"],
        json!(format!("http://127.0.0.1:{port}/api/webhook/clickup"))
    );
    // Past the minimum gap (2 s) after the cycles the start-up writes woke.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A ClickUp edit: the signed webhook makes it arrive within 2 s at a 60 s interval.
    sim.cu_edit(&c, json!({"name": "Renamed"})).await;
    let took = wait_for(Duration::from_secs(2), || async {
        title_of(&sim.ado_items().await, a) == "Renamed"
    })
    .await;
    assert!(
        took.is_some(),
        "webhook nudge did not bring the edit within 2 s"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A wrong signature: 401 and nothing wakes (the simulators see no request).
    let client = reqwest::Client::new();
    let body = br#"{"event":"taskUpdated","task_id":"x","webhook_id":"y","history_items":[]}"#;
    let before = sim.log_len().await;
    let r = client
        .post(d.url("/api/webhook/clickup"))
        .header("X-Signature", sign("not the secret", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(d.url("/api/webhook/clickup"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a missing signature is refused too"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sim.log_len().await,
        before,
        "a refused webhook woke the daemon"
    );

    // 20 valid webhooks within one second: at most 2 cycles (WIQL queries).
    let wiql_before = sim.wiql_count().await;
    for _ in 0..20 {
        let r = client
            .post(d.url("/api/webhook/clickup"))
            .header("X-Signature", sign(WEBHOOK_SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        tokio::time::sleep(Duration::from_millis(45)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cycles = sim.wiql_count().await - wiql_before;
    assert!((1..=2).contains(&cycles), "{cycles} cycles for 20 webhooks");

    // Bodies over 1 MiB are refused.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = client
        .post(d.url("/api/webhook/clickup"))
        .header("X-Signature", sign(WEBHOOK_SECRET, &big))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_while_the_services_are_down_and_200_when_they_return() {
    let sim = SimProc::start(0, 0);
    let (ado_port, cu_port) = sim.ports();
    sim.ado_create("One").await;
    let port = free_port();
    let setup = Setup::new(
        &sim,
        ConfigOpts {
            port,
            ..ConfigOpts::default()
        },
    );
    let d = Daemon::start(&sim, &setup, port);
    first_sync(&sim, &d, 1, &setup).await;
    let (code, body) = d.health().await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], json!("ok"));
    assert_eq!(body["store_ok"], json!(true));

    // The services go away for more than 3 poll intervals.
    sim.stop();
    let unhealthy = wait_for(Duration::from_secs(15), || async {
        d.health().await.is_some_and(|(c, _)| c == 503)
    })
    .await;
    assert!(
        unhealthy.is_some(),
        "health stayed 200 with both services down"
    );
    // The failing cycle ends once its retries are spent; then health says why, without
    // a secret.
    let failed = wait_for(Duration::from_secs(40), || async {
        d.health()
            .await
            .is_some_and(|(_, b)| b["last_error"].is_string())
    })
    .await;
    assert!(failed.is_some(), "no cycle failure was recorded");
    let (_, body) = d.health().await.unwrap();
    let err = body["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        !err.contains("ado-sim-pat") && !err.contains("pk_"),
        "{err}"
    );

    // They come back (empty, on the same ports): the next cycles succeed.
    let sim = SimProc::start(ado_port, cu_port);
    let back = wait_for(Duration::from_secs(60), || async {
        d.health().await.is_some_and(|(c, _)| c == 200)
    })
    .await;
    assert!(back.is_some(), "health did not recover");
    let live = reqwest::get(d.url("/api/health/live")).await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let metrics = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("outcome=\"error\""), "{metrics}");
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exits_0_with_both_sides_equal() {
    let out = std::process::Command::new(proc_support::BIN)
        .arg("demo")
        .env_remove("RUST_LOG")
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("both sides equal"), "{stdout}");
    assert!(stdout.contains("CONFLICT recorded"), "{stdout}");
    assert!(stdout.contains("the webhook woke the daemon"), "{stdout}");
    assert!(!stdout.contains("| NO"), "{stdout}");
}

/// ClickUp unavailable while the daemon starts (here: its custom-field lookup answers 503):
/// the daemon stays up, says why in its health, and syncs once ClickUp answers again. It
/// used to exit after the lookup's retries, with no health endpoint in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickup_outage_at_start_delays_the_first_sync_but_does_not_stop_the_daemon() {
    let sim = SimProc::start(0, 0);
    sim.ado_create("Before the outage").await;
    sim.post(
        false,
        "/__sim/faults",
        json!({"method": "GET", "path_contains": "/field",
               "fault": {"kind": "status", "status": 503}, "probability": 1.0}),
    )
    .await;
    // SIGTERM while the start waits for ClickUp stops it at once (it used to be ignored
    // for the lookup's whole retry budget, ~25 s).
    let early_port = free_port();
    let early_setup = Setup::new(
        &sim,
        ConfigOpts {
            port: early_port,
            ..ConfigOpts::default()
        },
    );
    let mut early = Daemon::start(&sim, &early_setup, early_port);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = terminate(&mut early.child);
    assert!(
        stopped.is_some_and(|(s, _)| s.success()),
        "SIGTERM during start-up: {stopped:?}"
    );

    let port = free_port();
    let setup = Setup::new(
        &sim,
        ConfigOpts {
            port,
            ..ConfigOpts::default()
        },
    );
    let mut d = Daemon::start(&sim, &setup, port);
    let why = wait_for(Duration::from_secs(60), || async {
        d.health().await.is_some_and(|(c, b)| {
            c == 503
                && b["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("link field"))
        })
    })
    .await;
    assert!(
        why.is_some(),
        "health never said the link field lookup failed (exited: {:?})",
        d.child.try_wait()
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon exited");
    assert!(
        sim.tasks().await.is_empty(),
        "synced without the link field"
    );

    reqwest::Client::new()
        .delete(format!("{}/__sim/faults", sim.clickup))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    first_sync(&sim, &d, 1, &setup).await;
    let tasks = sim.tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["name"], json!("Before the outage"));
}
