//! Process-level test helpers: the real binary as child processes (`sim`, `run`, `sync`),
//! talking to each other over HTTP on 127.0.0.1.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_ado-clickup-sync");
pub const WEBHOOK_SECRET: &str = "process-test-webhook-secret";

/// `ado-clickup-sync sim` running as a child process.
pub struct SimProc {
    pub child: Child,
    pub ado: String,
    pub clickup: String,
    pub org: String,
    pub project: String,
    pub pat: String,
    pub team: String,
    pub token: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
}

impl SimProc {
    /// Starts the simulators (on the given ports, 0 = any) with a generous ClickUp limit.
    pub fn start(ado_port: u16, clickup_port: u16) -> SimProc {
        let mut child = Command::new(BIN)
            .args([
                "sim",
                "--ado-port",
                &ado_port.to_string(),
                "--clickup-port",
                &clickup_port.to_string(),
                "--clickup-rate-limit",
                "1000000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sim starts");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut lines = BufReader::new(stdout).lines();
        let a = lines.next().expect("ADO line").expect("readable");
        let c = lines.next().expect("ClickUp line").expect("readable");
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        SimProc {
            child,
            ado: field(&a, "base_url").unwrap().to_string(),
            org: field(&a, "organization").unwrap().to_string(),
            project: field(&a, "project").unwrap().to_string(),
            pat: field(&a, "pat").unwrap().to_string(),
            clickup: field(&c, "base_url").unwrap().to_string(),
            team: field(&c, "team_id").unwrap().to_string(),
            token: field(&c, "token").unwrap().to_string(),
        }
    }

    pub fn ports(&self) -> (u16, u16) {
        let p = |u: &str| u.rsplit(':').next().unwrap().parse().unwrap();
        (p(&self.ado), p(&self.clickup))
    }

    pub fn stop(mut self) {
        terminate(&mut self.child);
    }

    pub async fn post(&self, ado: bool, path: &str, body: Value) -> Value {
        let base = if ado { &self.ado } else { &self.clickup };
        let r = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("control API answers");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn get(&self, ado: bool, path: &str) -> Value {
        let base = if ado { &self.ado } else { &self.clickup };
        reqwest::get(format!("{base}{path}"))
            .await
            .expect("control API answers")
            .json()
            .await
            .expect("JSON")
    }

    pub async fn reset(&self) {
        self.post(true, "/__sim/reset", json!({})).await;
        self.post(false, "/__sim/reset", json!({})).await;
    }

    /// Live ADO items.
    pub async fn ado_items(&self) -> Vec<Value> {
        self.get(true, "/__sim/state").await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Live ClickUp tasks.
    pub async fn tasks(&self) -> Vec<Value> {
        self.get(false, "/__sim/state").await["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Requests in the simulators' logs (ADO, ClickUp).
    pub async fn log_len(&self) -> (usize, usize) {
        let a = self.get(true, "/__sim/log").await;
        let c = self.get(false, "/__sim/log").await;
        (
            a.as_array().map_or(0, |v| v.len()),
            c["requests"].as_array().map_or(0, |v| v.len()),
        )
    }

    pub async fn wiql_count(&self) -> usize {
        self.get(true, "/__sim/log")
            .await
            .as_array()
            .map_or(0, |v| {
                v.iter()
                    .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("/wiql")))
                    .count()
            })
    }

    pub async fn ado_create(&self, title: &str) -> i64 {
        self.post(
            true,
            "/__sim/create",
            json!({"type": "User Story", "fields": {"System.Title": title}}),
        )
        .await["id"]
            .as_i64()
            .expect("id")
    }

    pub async fn ado_edit(&self, id: i64, fields: Value) {
        self.post(true, "/__sim/edit", json!({"id": id, "fields": fields}))
            .await;
    }

    pub async fn cu_create(&self, name: &str) -> String {
        self.post(
            false,
            "/__sim/create",
            json!({"list_id": "901100", "name": name}),
        )
        .await["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub async fn cu_edit(&self, id: &str, edit: Value) {
        let mut body = edit;
        body["id"] = json!(id);
        self.post(false, "/__sim/edit", body).await;
    }
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM, then wait (up to 10 s) for the exit status.
pub fn terminate(child: &mut Child) -> Option<(ExitStatus, Duration)> {
    let t0 = Instant::now();
    // SAFETY: sending a signal to our own child process id.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(s)) = child.try_wait() {
            return Some((s, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// A daemon or sync configuration pointing at `sim`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
}

pub struct ConfigOpts {
    pub poll_interval: &'static str,
    pub port: u16,
    pub public_url: bool,
    pub max_creates: usize,
}

impl Default for ConfigOpts {
    fn default() -> Self {
        ConfigOpts {
            poll_interval: "1s",
            port: 0,
            public_url: false,
            max_creates: 500,
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Setup {
    pub fn new(sim: &SimProc, o: ConfigOpts) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/sync.db");
        let public = if o.public_url {
            format!("public_url = \"http://127.0.0.1:{}\"", o.port)
        } else {
            String::new()
        };
        let toml = format!(
            r#"
poll_interval = "{poll}"
log_level = "info"
database_url = "{db}"

[server]
port = {port}
bind = "127.0.0.1"
{public}

[ado]
base_url = "{ado}"
organization = "{org}"
project = "{project}"
concurrency = 4

[clickup]
base_url = "{cu}"
workspace_id = "{team}"
requests_per_minute = 100000
link_field = "ADO Link"

[limits]
max_creates_per_cycle = {max_creates}

[[pairs]]
name = "team"
[pairs.ado]
work_item_types = ["User Story"]
default_type = "User Story"
[pairs.clickup]
list_ids = ["901100"]
"#,
            poll = o.poll_interval,
            db = db.display(),
            port = o.port,
            ado = sim.ado,
            org = sim.org,
            project = sim.project,
            cu = sim.clickup,
            team = sim.team,
            max_creates = o.max_creates,
        );
        let config = dir.path().join("sync.toml");
        std::fs::write(&config, toml).unwrap();
        Setup { dir, config, db }
    }

    /// The binary with this configuration and the simulators' secrets, run from the temp dir
    /// (so no config/local.toml of the developer's leaks in).
    pub fn command(&self, sim: &SimProc, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ADO_PAT", &sim.pat)
            .env("CLICKUP_API_TOKEN", &sim.token)
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUST_LOG", "warn")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c
    }

    pub fn db(&self) -> ado_clickup_sync::store::Db {
        ado_clickup_sync::store::Db::open_url(self.db.to_str().unwrap()).unwrap()
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Waits for `ok` (checked every 50 ms) up to `limit`; returns how long it took.
pub async fn wait_for<F, Fut>(limit: Duration, mut ok: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ok().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The hex HMAC-SHA256 signature ClickUp puts in `X-Signature`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
