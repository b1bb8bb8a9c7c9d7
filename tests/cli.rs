//! The command-line front end, run as the real binary in a child process: `sim`, `health`,
//! `check`, `status` and `conflicts`.
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use ado_clickup_sync::core::model::Field;
use ado_clickup_sync::sim::ado::{self as adosim, AdoSim, AdoSimOptions};
use ado_clickup_sync::sim::clickup::{self as cusim, ClickUpSim, ClickUpSimOptions};
use ado_clickup_sync::store::{ConflictValues, CycleCounts, CycleKind, Db, Resolution};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ado-clickup-sync");

/// A working directory with `config/default.toml`, as the binary expects to find it.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"),
            dir.path().join("config/default.toml"),
        )
        .unwrap();
        Sandbox { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The binary in the sandbox, with an environment of only `env`.
    fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_clear()
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(60), self.cmd(args, env).output())
            .await
            .unwrap_or_else(|_| panic!("{args:?} did not finish within 60 s"))
            .unwrap();
        let r = Run::from(out);
        if std::env::var_os("CLI_TEST_SHOW").is_some() {
            eprintln!("$ {args:?}\n{r:?}");
        }
        r
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `key=value` from a line of `sim`'s output.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

// ---------------------------------------------------------------------------------------------
// sim
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sim_serves_the_seed_on_the_given_ports_and_exits_0_on_sigterm() {
    let sb = Sandbox::new();
    let seed = sb.write(
        "seed.json",
        &json!({
            "ado": {"work_items": [{"id": 4711, "type": "User Story",
                "fields": {"System.Title": "Seeded story", "System.State": "Active"}}]},
            "clickup": {"tasks": [{"id": "86seed1", "list_id": "901100",
                "name": "Seeded task", "status": "in progress"}]}
        })
        .to_string(),
    );
    let (ado_port, cu_port) = (free_port(), free_port());
    let mut child = sb
        .cmd(
            &[
                "sim",
                "--ado-port",
                &ado_port.to_string(),
                "--clickup-port",
                &cu_port.to_string(),
                "--seed",
                seed.to_str().unwrap(),
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("sim printed its addresses within 30 s")
            .unwrap()
            .expect("sim printed two lines");
        printed.push(line);
    }
    let (ado_line, cu_line) = (&printed[0], &printed[1]);
    assert!(ado_line.starts_with("ADO simulator: "), "{ado_line}");
    assert!(cu_line.starts_with("ClickUp simulator: "), "{cu_line}");
    let ado_base = field(ado_line, "base_url");
    assert_eq!(ado_base, format!("http://127.0.0.1:{ado_port}"));
    let cu_base = field(cu_line, "base_url");
    assert_eq!(cu_base, format!("http://127.0.0.1:{cu_port}"));

    let http = reqwest::Client::new();
    let item: Value = http
        .get(format!(
            "{ado_base}/{}/{}/_apis/wit/workitems/4711?api-version=7.1",
            field(ado_line, "organization"),
            field(ado_line, "project")
        ))
        .basic_auth("", Some(field(ado_line, "pat")))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item["id"], 4711);
    assert_eq!(item["fields"]["System.Title"], "Seeded story");
    assert_eq!(item["fields"]["System.State"], "Active");

    let task: Value = http
        .get(format!("{cu_base}/api/v2/task/86seed1"))
        .header("Authorization", field(cu_line, "token"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["id"], "86seed1");
    assert_eq!(task["name"], "Seeded task");
    assert_eq!(task["status"]["status"], "in progress");
    assert_eq!(field(cu_line, "team_id"), task["team_id"].as_str().unwrap());

    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; it has not been reaped (we still hold it).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("sim exited within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The ports are free again.
    std::net::TcpListener::bind(("127.0.0.1", ado_port)).unwrap();
    std::net::TcpListener::bind(("127.0.0.1", cu_port)).unwrap();
}

async fn sim_with_seed(sb: &Sandbox, file: &str) -> Run {
    let seed = sb.path(file);
    let args = [
        "sim",
        "--ado-port",
        "0",
        "--clickup-port",
        "0",
        "--seed",
        seed.to_str().unwrap(),
    ];
    sb.run(&args, &[]).await
}

#[tokio::test]
async fn sim_refuses_a_bad_seed_file_with_exit_code_2_naming_file_and_problem() {
    let sb = Sandbox::new();
    sb.write(
        "wrong-type.json",
        r#"{"ado": {"work_items": [{"type": 5}]}}"#,
    );
    let r = sim_with_seed(&sb, "wrong-type.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("wrong-type.json"), "{r:?}");
    assert!(r.stderr.contains("ado.work_items[0].type"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    sb.write("typo.json", r#"{"clickUp": {}}"#);
    let r = sim_with_seed(&sb, "typo.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("typo.json"), "{r:?}");
    assert!(r.stderr.contains("unknown field `clickUp`"), "{r:?}");

    // A misspelt key one level down was ignored ("seeded 0 work items").
    sb.write("nested-typo.json", r#"{"ado": {"workitems": []}}"#);
    let r = sim_with_seed(&sb, "nested-typo.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unknown field `workitems`"), "{r:?}");

    sb.write(
        "unknown-wit.json",
        r#"{"ado": {"work_items": [{"type": "Spaceship"}]}}"#,
    );
    let r = sim_with_seed(&sb, "unknown-wit.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unknown-wit.json"), "{r:?}");
    assert!(
        r.stderr.contains("unknown work item type 'Spaceship'"),
        "{r:?}"
    );

    sb.write(
        "unknown-list.json",
        r#"{"clickup": {"tasks": [{"list_id": "404404", "name": "x"}]}}"#,
    );
    let r = sim_with_seed(&sb, "unknown-list.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unknown-list.json"), "{r:?}");
    assert!(r.stderr.contains("ClickUp simulator refused"), "{r:?}");

    let r = sim_with_seed(&sb, "missing.json").await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("reading seed file"), "{r:?}");
    assert!(r.stderr.contains("missing.json"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_exits_0_on_200_and_1_otherwise() {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/api/health", get(|| async { "ready" }))
        .route(
            "/api/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "store unavailable") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sb = Sandbox::new();

    let ok = sb
        .run(
            &["health", "--url", &format!("http://{addr}/api/health")],
            &[],
        )
        .await;
    assert_eq!(ok.code, Some(0), "{ok:?}");

    let down = sb
        .run(
            &["health", "--url", &format!("http://{addr}/api/down")],
            &[],
        )
        .await;
    assert_eq!(down.code, Some(1), "{down:?}");
    assert!(down.stderr.contains("503"), "{down:?}");
    assert!(down.stderr.contains("store unavailable"), "{down:?}");

    let closed = sb
        .run(
            &[
                "health",
                "--url",
                &format!("http://127.0.0.1:{}/api/health", free_port()),
            ],
            &[],
        )
        .await;
    assert_eq!(closed.code, Some(1), "{closed:?}");
    assert!(closed.stderr.contains("unhealthy"), "{closed:?}");

    let bad = sb.run(&["health", "--url", "not a url"], &[]).await;
    assert_eq!(bad.code, Some(1), "{bad:?}");
}

/// Without --url (the container's health check) it asks the configured port.
#[tokio::test]
async fn health_without_a_url_asks_the_configured_port() {
    use axum::routing::get;
    let app = axum::Router::new().route("/api/health", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sb = Sandbox::new();
    sb.write(
        "config/local.toml",
        "[ado]\norganization = \"fabrikam\"\nproject = \"Fiber\"\n[clickup]\n\
         workspace_id = \"9011\"\n[[pairs]]\nname = \"team\"\n[pairs.ado]\n\
         [pairs.clickup]\nlist_ids = [\"901100\"]\n",
    );
    let ok = sb
        .run(&["health"], &[("SYNC_SERVER__PORT", port.as_str())])
        .await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.contains(&format!("127.0.0.1:{port}")), "{ok:?}");
    let elsewhere = free_port().to_string();
    let down = sb
        .run(&["health"], &[("SYNC_SERVER__PORT", elsewhere.as_str())])
        .await;
    assert_eq!(down.code, Some(1), "{down:?}");
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

const ADO_PAT: &str = "pat-7f3c9e1d-not-for-print";
const CU_TOKEN: &str = "pk_81000001_S3CRETTOKENNOTFORPRINT";

async fn sims() -> (AdoSim, ClickUpSim) {
    let ado = adosim::start(AdoSimOptions {
        pat: ADO_PAT.into(),
        ..AdoSimOptions::default()
    })
    .await
    .unwrap();
    let cu = cusim::start(ClickUpSimOptions {
        token: CU_TOKEN.into(),
        ..ClickUpSimOptions::default()
    })
    .await
    .unwrap();
    (ado, cu)
}

/// A config for the simulators with one pair on User Stories and the default list.
fn check_config(ado: &AdoSim, cu: &ClickUpSim, link_field: &str, status: &str) -> String {
    format!(
        r#"
[ado]
base_url = "{}"
organization = "fabrikam"
project = "Fabrikam-Fiber"
[clickup]
base_url = "{}"
workspace_id = "9011"
link_field = "{link_field}"
[[pairs]]
name = "team"
[pairs.ado]
work_item_types = ["User Story"]
default_type = "User Story"
[pairs.clickup]
list_ids = ["901100"]
{status}
"#,
        ado.base_url(),
        cu.base_url()
    )
}

/// Leaves ADO "Resolved" and ClickUp "review" unmapped, with no fallback.
const PARTIAL_MAP: &str = r#"
[pairs.mapping.status]
fallback = false
[[pairs.mapping.status.map]]
canonical = "todo"
ado = ["New"]
clickup = ["to do"]
[[pairs.mapping.status.map]]
canonical = "doing"
ado = ["Active"]
clickup = ["in progress"]
[[pairs.mapping.status.map]]
canonical = "done"
ado = ["Closed", "Removed"]
clickup = ["complete"]
"#;

fn assert_no_secrets(r: &Run) {
    use base64::Engine;
    let all = r.all();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{ADO_PAT}"));
    for secret in [ADO_PAT, CU_TOKEN, basic.as_str()] {
        assert!(!all.contains(secret), "output shows a secret:\n{r:?}");
    }
}

fn secrets_env() -> Vec<(&'static str, &'static str)> {
    vec![("ADO_PAT", ADO_PAT), ("CLICKUP_API_TOKEN", CU_TOKEN)]
}

/// The line of the report that starts (after indentation) with `start`.
fn report_line<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_states_and_statuses_and_fails_on_unmapped_ones() {
    let (ado, cu) = sims().await;
    let sb = Sandbox::new();
    let cfg = sb.write(
        "partial.toml",
        &check_config(&ado, &cu, "ADO Link", PARTIAL_MAP),
    );
    // Every log line on, to show that no layer logs a secret.
    let mut env = secrets_env();
    env.push(("RUST_LOG", "trace"));
    let r = sb
        .run(&["--config", cfg.to_str().unwrap(), "check"], &env)
        .await;
    assert!(r.stderr.contains("TRACE"), "RUST_LOG did not apply: {r:?}");
    assert_eq!(r.code, Some(1), "{r:?}");
    let out = &r.stdout;
    assert!(
        out.contains("token belongs to Sync Bot <sync-bot@example.com>"),
        "{r:?}"
    );
    assert!(report_line(out, "User Story:").contains("User Story"));
    // Every state of a User Story with its category and how it reads.
    let new = report_line(out, "New ");
    assert!(
        new.contains("Proposed") && new.contains("mapped -> todo"),
        "{new}"
    );
    let closed = report_line(out, "Closed ");
    assert!(
        closed.contains("Completed") && closed.contains("mapped -> done"),
        "{closed}"
    );
    let resolved = report_line(out, "Resolved ");
    assert!(
        resolved.contains("Resolved") && resolved.contains("UNMAPPED"),
        "{resolved}"
    );
    // Every status of the list with its type.
    assert!(out.contains("ClickUp list 901100 \"Sim List\""), "{r:?}");
    let todo = report_line(out, "to do ");
    assert!(
        todo.contains("open") && todo.contains("mapped -> todo"),
        "{todo}"
    );
    let complete = report_line(out, "complete ");
    assert!(
        complete.contains("closed") && complete.contains("mapped -> done"),
        "{complete}"
    );
    let review = report_line(out, "review ");
    assert!(
        review.contains("custom") && review.contains("UNMAPPED"),
        "{review}"
    );
    assert!(
        report_line(out, "link field \"ADO Link\"").contains("found"),
        "{r:?}"
    );
    // The summary names exactly the two unmapped values.
    assert!(out.contains("check FAILED: 2 problem(s)"), "{r:?}");
    assert!(
        out.contains("ADO state \"Resolved\" of User Story is unmapped"),
        "{r:?}"
    );
    assert!(
        out.contains("ClickUp status \"review\" of list 901100 is unmapped"),
        "{r:?}"
    );
    assert_no_secrets(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_when_everything_maps_or_falls_back() {
    let (ado, cu) = sims().await;
    let sb = Sandbox::new();
    let full = format!(
        "{PARTIAL_MAP}[[pairs.mapping.status.map]]\ncanonical = \"review\"\n\
         ado = [\"Resolved\"]\nclickup = [\"review\"]\n"
    );
    let cfg = sb.write("full.toml", &check_config(&ado, &cu, "ADO Link", &full));
    let r = sb
        .run(
            &["--config", cfg.to_str().unwrap(), "check"],
            &secrets_env(),
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("check passed: no problems"), "{r:?}");
    assert!(report_line(&r.stdout, "Resolved ").contains("mapped -> review"));
    assert_no_secrets(&r);

    // No map at all, fallback on (the default): everything reads by category / type.
    let cfg = sb.write("fallback.toml", &check_config(&ado, &cu, "ADO Link", ""));
    let r = sb
        .run(
            &["--config", cfg.to_str().unwrap(), "check"],
            &secrets_env(),
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        report_line(&r.stdout, "Resolved ").contains("fallback -> done"),
        "{r:?}"
    );
    assert!(
        report_line(&r.stdout, "review ").contains("fallback -> in_progress"),
        "{r:?}"
    );
    assert_no_secrets(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_bad_credentials_missing_lists_and_link_fields_without_secrets() {
    let (ado, cu) = sims().await;
    let sb = Sandbox::new();

    // Wrong secrets: both services refuse, the report says so and exits 1.
    let cfg = sb.write("ok.toml", &check_config(&ado, &cu, "ADO Link", ""));
    let wrong = [
        ("ADO_PAT", "wrong-pat-0123456789"),
        ("CLICKUP_API_TOKEN", "pk_wrong_0123456789"),
    ];
    let r = sb
        .run(&["--config", cfg.to_str().unwrap(), "check"], &wrong)
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("check FAILED: 2 problem(s)"), "{r:?}");
    assert!(
        r.stdout
            .contains("list ADO work item types: not authorized"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("verify the ClickUp token: not authorized"),
        "{r:?}"
    );
    for s in ["wrong-pat-0123456789", "pk_wrong_0123456789"] {
        assert!(!r.all().contains(s), "{r:?}");
    }

    // No secrets at all: the report says how to set them.
    let r = sb
        .run(&["--config", cfg.to_str().unwrap(), "check"], &[])
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("set ADO_PAT"), "{r:?}");
    assert!(r.stdout.contains("set CLICKUP_API_TOKEN"), "{r:?}");

    // A list that does not exist and a link field that is not there.
    let text = check_config(&ado, &cu, "Backlink", "").replace(
        r#"list_ids = ["901100"]"#,
        r#"list_ids = ["901100", "999999"]"#,
    );
    let cfg = sb.write("missing.toml", &text);
    let r = sb
        .run(
            &["--config", cfg.to_str().unwrap(), "check"],
            &secrets_env(),
        )
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("check FAILED: 2 problem(s)"), "{r:?}");
    assert!(
        r.stdout.contains("ClickUp list 999999 was not found"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("link field \"Backlink\" (clickup.link_field) was not found in list 901100"),
        "{r:?}"
    );
    assert_no_secrets(&r);
}

#[tokio::test]
async fn check_refuses_an_invalid_config_with_exit_code_2() {
    let sb = Sandbox::new();
    let cfg = sb.write("bad.toml", "[ado]\norganization = \"o\"\nproject = \"p\"\n");
    let r = sb
        .run(&["--config", cfg.to_str().unwrap(), "check"], &[])
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("loading the configuration"), "{r:?}");
    assert!(r.stderr.contains("missing field `pairs`"), "{r:?}");

    // A log level that is not one is refused, naming the key.
    let (ado, cu) = sims().await;
    let text = format!(
        "log_level = \"verbose\"\n{}",
        check_config(&ado, &cu, "ADO Link", "")
    );
    let cfg = sb.write("level.toml", &text);
    let r = sb
        .run(
            &["--config", cfg.to_str().unwrap(), "check"],
            &secrets_env(),
        )
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr
            .contains("log_level = \"verbose\" is not a log level"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// status, conflicts
// ---------------------------------------------------------------------------------------------

/// A sandbox with a config whose database holds one link with one open title conflict and a
/// finished cycle. Returns the conflict id.
fn store_sandbox() -> (Sandbox, PathBuf, i64) {
    let sb = Sandbox::new();
    let db_path = sb.path("sync.db");
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let mut db = Db::open_url(db_path.to_str().unwrap()).unwrap();
    let link = db.insert_link("team", 4711, "86abcxyz", t0).unwrap();
    db.insert_link("team", 4712, "86other", t0).unwrap();
    let conflict = db
        .upsert_conflict(
            link,
            Field::Title,
            &ConflictValues {
                base: json!("Old title"),
                ado: json!("Title from ADO"),
                clickup: json!("Title from ClickUp"),
            },
            t0,
        )
        .unwrap();
    db.advance_cursors(
        "team",
        &[(ado_clickup_sync::core::model::Side::Ado, 1_772_355_600_000)],
        t0,
    )
    .unwrap();
    let cycle = db.start_cycle(CycleKind::Sweep, None, t0).unwrap();
    let counts = CycleCounts {
        reads: 7,
        writes: 3,
        conflicts: 1,
        errors: 0,
        api_requests: 12,
    };
    db.finish_cycle(cycle, &counts, None, t0 + chrono::Duration::seconds(2))
        .unwrap();
    drop(db);
    let cfg = format!(
        r#"
database_url = "{}"
[ado]
organization = "o"
project = "p"
[clickup]
workspace_id = "1"
[[pairs]]
name = "team"
[pairs.ado]
[pairs.clickup]
list_ids = ["1"]
"#,
        db_path.display()
    );
    let cfg_path = sb.write("store.toml", &cfg);
    (sb, cfg_path, conflict)
}

#[tokio::test]
async fn status_shows_links_conflicts_cycles_and_cursors_as_json_and_text() {
    let (sb, cfg, _) = store_sandbox();
    let cfg = cfg.to_str().unwrap();

    let r = sb.run(&["--config", cfg, "status", "--json"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let pair = &v["pairs"][0];
    assert_eq!(pair["pair"], "team");
    assert_eq!(pair["links_active"], 2);
    assert_eq!(pair["open_conflicts"], 1);
    assert_eq!(pair["pending_intents"], 0);
    assert_eq!(pair["cursors"]["ado"], 1_772_355_600_000i64);
    assert_eq!(pair["cursors"]["clickup"], Value::Null);
    assert_eq!(v["last_cycles"][0]["counts"]["writes"], 3);
    assert_eq!(v["last_successful"]["kind"], "sweep");

    let r = sb.run(&["--config", cfg, "status"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let row = report_line(&r.stdout, "team ");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // pair, links, unlinked, pending intents, retries "0 (0 due)", open conflicts, cursor…
    assert_eq!(
        &cells[..7],
        ["team", "2", "0", "0", "0", "(0", "due)"],
        "{row}"
    );
    assert_eq!(cells[7], "1", "{row}");
    assert!(row.contains("2026-03-01 09:00:00 UTC"), "{row}");
    assert!(
        r.stdout.contains("Last successful cycle: #1 (sweep)"),
        "{r:?}"
    );
    let cycle = report_line(&r.stdout, "1 ");
    assert!(cycle.contains("sweep") && cycle.contains("2.0 s") && cycle.contains("ok"));

    // A wrong database_url is an error, not a new empty database.
    let r = sb
        .run(
            &[
                "--config",
                &cfg.replace("store.toml", "nope.toml"),
                "status",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = sb
        .run(
            &["--config", cfg, "status"],
            &[("DATABASE_URL", "elsewhere.db")],
        )
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no database at elsewhere.db"), "{r:?}");
    assert!(!sb.path("elsewhere.db").exists());
}

#[tokio::test]
async fn conflicts_lists_and_resolves_once() {
    let (sb, cfg, id) = store_sandbox();
    let cfg = cfg.to_str().unwrap();
    let db_path = sb.path("sync.db");

    let r = sb.run(&["--config", cfg, "conflicts"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let row = report_line(&r.stdout, &format!("{id} "));
    for cell in [
        "team",
        "4711",
        "86abcxyz",
        "title",
        "\"Old title\"",
        "\"Title from ADO\"",
        "\"Title from ClickUp\"",
    ] {
        assert!(row.contains(cell), "{cell} missing from {row:?}");
    }

    let r = sb.run(&["--config", cfg, "conflicts", "--json"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["id"], id);
    assert_eq!(v[0]["values"]["clickup"], "Title from ClickUp");

    let id_s = id.to_string();
    let r = sb
        .run(
            &[
                "--config",
                cfg,
                "conflicts",
                "resolve",
                &id_s,
                "--take",
                "clickup",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("\"Title from ClickUp\""), "{r:?}");
    assert!(r.stdout.contains("ADO work item #4711"), "{r:?}");
    assert!(r.stdout.contains("next sync cycle"), "{r:?}");
    let db = Db::open_url(db_path.to_str().unwrap()).unwrap();
    let c = db.conflict(id).unwrap().unwrap();
    assert_eq!(c.resolution, Some(Resolution::TakeClickUp));
    assert_eq!(c.applied_at, None);
    drop(db);

    let r = sb
        .run(
            &[
                "--config",
                cfg,
                "conflicts",
                "resolve",
                &id_s,
                "--take",
                "ado",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "conflict {id} was already resolved (take_clickup)"
        )),
        "{r:?}"
    );

    let r = sb
        .run(
            &[
                "--config",
                cfg,
                "conflicts",
                "resolve",
                "999",
                "--take",
                "ado",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("conflict 999 does not exist"), "{r:?}");

    let r = sb.run(&["--config", cfg, "conflicts"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("No open conflicts."), "{r:?}");

    let r = sb.run(&["--config", cfg, "status", "--json"], &[]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pairs"][0]["open_conflicts"], 0);
    assert_eq!(v["unapplied_resolutions"], 1);

    let r = sb
        .run(
            &[
                "--config",
                cfg,
                "conflicts",
                "resolve",
                &id_s,
                "--take",
                "nobody",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
}

/// An error whose message already ends with its cause printed the cause again
/// (`…: Address already in use (os error 98): Address already in use (os error 98)`).
#[tokio::test]
async fn an_error_names_its_cause_once() {
    let sb = Sandbox::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = sb
        .run(&["sim", "--ado-port", &port, "--clickup-port", "0"], &[])
        .await;
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains(&format!("127.0.0.1:{port}")), "{r:?}");
    let cause = "Address already in use";
    assert_eq!(r.stderr.matches(cause).count(), 1, "{r:?}");
}
