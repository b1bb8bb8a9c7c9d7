//! `ado-clickup-sync demo`: the real daemon against both simulators, in one process, with a
//! realistic team backlog and a script of edits on both sides (a conflict and a signed
//! webhook nudge included), printing each sync action as it happens and a side-by-side table
//! at the end. Needs no credentials and no network.
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::ado::AdoClient;
use crate::clickup::ClickUpClient;
use crate::core::mapping::{ConflictPolicy, FieldOptions, MappingConfig};
use crate::core::model::Field;
use crate::core::plan::Plan;
use crate::daemon::ScheduleOptions;
use crate::engine::{ActionRow, Engine, EngineOptions, Observer};
use crate::remote::ApiStats;
use crate::service::{self, DaemonOptions};
use crate::sim::clickup::{SimTaskEdit, SimTaskInput};
use crate::sim::testbed::{Testbed, TestbedOptions};
use crate::store::{Db, LinkState, Resolution, Store};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
    #[error("demo: {0}")]
    Service(#[from] Box<service::ServiceError>),
    #[error("demo: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("demo: timed out waiting for: {0}")]
    Timeout(String),
    #[error("demo: the two sides differ at the end:\n{0}")]
    Differ(String),
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stay up after the script (health on `port`), until Ctrl-C.
    pub keep_running: bool,
    /// The daemon's HTTP port (0: any free one).
    pub port: u16,
    pub poll_interval: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            keep_running: false,
            port: 0,
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Prints each applied action, numbered, as it happens.
struct Printer {
    started: Instant,
    titles: Mutex<BTreeMap<String, String>>,
}

impl Printer {
    fn line(&self, s: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "  [{t:6.2}s] {s}");
    }
}

impl Observer for Printer {
    fn planned(&self, _pair: &str, _plan: &Plan) {}
    fn applied(&self, _pair: &str, row: &ActionRow, outcome: Result<(), &str>) {
        if row.action == "rebase" {
            return;
        }
        let ids = match (&row.ado_id, &row.clickup_id) {
            (Some(a), Some(c)) => format!("ADO #{a} <-> ClickUp {c}"),
            (Some(a), None) => format!("ADO #{a}"),
            (None, Some(c)) => format!("ClickUp {c}"),
            (None, None) => String::new(),
        };
        let fields: Vec<&str> = row.fields.iter().map(|f| f.as_str()).collect();
        let what = match row.action {
            "create_in_clickup" => "create in ClickUp from",
            "create_in_ado" => "create in ADO from",
            "update_ado" => "write to ADO for",
            "update_clickup" => "write to ClickUp for",
            "conflict" => "CONFLICT recorded on",
            "link" => "link",
            "unlink" => "unlink",
            other => other,
        };
        let title = row
            .ado_id
            .map(|a| format!("ado:{a}"))
            .or(row.clickup_id.as_ref().map(|c| format!("cu:{c}")))
            .and_then(|k| self.titles.lock().ok()?.get(&k).cloned())
            .map(|t| format!(" \"{t}\""))
            .unwrap_or_default();
        let status = match outcome {
            Ok(()) => String::new(),
            Err(e) => format!("  FAILED: {e}"),
        };
        self.line(&format!(
            "{what} {ids}{title} [{}] {}{status}",
            fields.join(", "),
            row.detail
        ));
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The team's backlog: what the ADO side holds at the start.
fn ado_backlog() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Sign-in page hangs after entering credentials",
            json!({
                "System.Description": "<div>Users report that the sign-in page hangs.</div><div><br></div><div><b>Steps to reproduce:</b></div><ol><li>Open the customer portal</li><li>Enter valid credentials</li><li>Click <i>Sign in</i></li></ol><div><b>Expected:</b> the dashboard loads within 2&nbsp;s.</div>",
                "System.State": "Active",
                "System.AssignedTo": "alice@example.com",
                "System.Tags": "auth; customer-reported",
                "Microsoft.VSTS.Common.Priority": 1,
            }),
        ),
        (
            "Rate-limit the public search API",
            json!({
                "System.Description": "<div>Limits per plan:</div><table><tr><td>Plan</td><td>Requests/min</td></tr><tr><td>Free</td><td>100</td></tr><tr><td>Pro | Team</td><td>1000</td></tr></table>",
                "System.AssignedTo": "bob@example.com",
                "System.Tags": "api",
                "Microsoft.VSTS.Common.Priority": 2,
                "Microsoft.VSTS.Scheduling.DueDate": "2027-01-15T12:00:00Z",
            }),
        ),
        (
            "Crash when exporting an empty report",
            json!({
                "System.Description": "<div>Stack trace:</div><pre><code>NullReferenceException at ReportExporter.Write()\n   at Export.Run()</code></pre><div>Reported by <a href=\"#\" data-vss-mention=\"version:2.0,1\">@Carol Chen</a>.</div>",
                "System.State": "Resolved",
                "System.AssignedTo": "carol@example.com",
                "System.Tags": "reports; crash",
                "Microsoft.VSTS.Common.Priority": 1,
            }),
        ),
        (
            "Dark mode for the dashboard",
            json!({
                "System.Description": "<div>Follow the OS setting; remember the user's choice.</div><ul><li>Charts</li><li>Tables<ul><li>zebra rows</li></ul></li></ul>",
                "Microsoft.VSTS.Common.Priority": 3,
                "System.Tags": "ui",
            }),
        ),
        (
            "Upgrade the database driver",
            json!({
                "System.State": "Closed",
                "System.AssignedTo": "bob@example.com",
                "Microsoft.VSTS.Common.Priority": 2,
            }),
        ),
        (
            "Onboarding checklist email",
            json!({
                "System.Description": "<div>Send on day 1, 3 and 7. Copy: <s>draft</s> final in the shared folder.</div>",
                "System.AssignedTo": "alice@example.com",
                "Microsoft.VSTS.Common.Priority": 4,
            }),
        ),
    ]
}

/// What the ClickUp side holds at the start.
fn clickup_backlog() -> Vec<SimTaskInput> {
    vec![
        SimTaskInput {
            name: "Landing page copy for the spring launch".into(),
            markdown: "## Sections\n\n- [x] Hero\n- [ ] Pricing\n- [ ] FAQ\n\nSee the [brief](https://example.com/brief).".into(),
            status: Some("in progress".into()),
            priority: Some(2),
            tags: vec!["marketing".into()],
            ..SimTaskInput::default()
        },
        SimTaskInput {
            name: "Customer interview notes".into(),
            markdown: "| Customer | Ask |\n| --- | --- |\n| Contoso | SSO |\n| Fabrikam | CSV export |".into(),
            status: Some("review".into()),
            priority: Some(3),
            ..SimTaskInput::default()
        },
        SimTaskInput {
            name: "Fix typo in the invoice footer".into(),
            markdown: "`Thank you for you business` → `your`".into(),
            status: Some("complete".into()),
            priority: Some(4),
            ..SimTaskInput::default()
        },
        SimTaskInput {
            name: "Plan the Q1 roadmap review".into(),
            markdown: "1. Collect proposals\n2. Score them\n3. **Decide**".into(),
            priority: Some(1),
            tags: vec!["planning".into()],
            ..SimTaskInput::default()
        },
    ]
}

struct Script<'a> {
    bed: &'a Testbed,
    db_url: String,
    printer: Arc<Printer>,
}

impl Script<'_> {
    fn db(&self) -> Result<Db, DemoError> {
        Ok(Db::open_url(&self.db_url)?)
    }

    async fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) -> Result<Duration, DemoError> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if ok() {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(DemoError::Timeout(what.to_string()))
    }

    fn counterpart_of_ado(&self, id: i64) -> Result<Option<String>, DemoError> {
        Ok(self.db()?.link_by_ado("demo", id)?.map(|l| l.clickup_id))
    }

    fn step(&self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\n== {s}");
    }

    /// Lets the cycles that the last writes woke (their webhooks) run out, so that each step
    /// starts from a quiet daemon.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(800)).await;
    }

    /// Write requests (not reads) the simulators have answered so far.
    fn writes(&self) -> usize {
        self.bed.writes()
    }

    fn remember_titles(&self) {
        let mut t = match self.printer.titles.lock() {
            Ok(t) => t,
            Err(_) => return,
        };
        for w in self.bed.ado.items() {
            t.insert(format!("ado:{}", w.id), w.title().to_string());
        }
        for k in self.bed.clickup.tasks() {
            t.insert(format!("cu:{}", k.id()), k.name().to_string());
        }
    }
}

/// Runs the demo. Returns the final table.
pub async fn run(opts: DemoOptions) -> Result<String, DemoError> {
    let bed = Testbed::start(TestbedOptions::default())
        .await
        .map_err(DemoError::Setup)?;
    let dir = tempfile_dir()?;
    let db_url = dir.join("demo.db").display().to_string();
    let printer = Arc::new(Printer {
        started: Instant::now(),
        titles: Mutex::new(BTreeMap::new()),
    });
    println!("ado-clickup-sync demo: the real daemon against simulated Azure DevOps and ClickUp");
    println!("  ADO simulator:     {}", bed.ado.base_url());
    println!("  ClickUp simulator: {}", bed.clickup.base_url());

    // The backlog, as a team would have it before the sync is switched on.
    let mut ado_ids = Vec::new();
    for (title, f) in ado_backlog() {
        let mut f = fields(f);
        f.insert("System.Title".into(), json!(title));
        ado_ids.push(
            bed.ado
                .ui_create("User Story", f)
                .map_err(|e| DemoError::Setup(e.to_string()))?,
        );
    }
    // A subtask in ADO: the export crash belongs under the rate-limit story.
    bed.ado
        .ui_add_relation(
            ado_ids[2],
            "System.LinkTypes.Hierarchy-Reverse",
            &bed.ado.api_url(ado_ids[1]),
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let member_id = |email: &str| {
        bed.clickup
            .options()
            .members
            .iter()
            .find(|m| m.email == email)
            .map(|m| m.id)
    };
    let mut cu_ids = Vec::new();
    for (i, mut t) in clickup_backlog().into_iter().enumerate() {
        let who = [
            "alice@example.com",
            "carol@example.com",
            "bob@example.com",
            "alice@example.com",
        ];
        t.assignees = member_id(who[i % who.len()]).into_iter().collect();
        cu_ids.push(
            bed.clickup
                .ui_create(&bed.list_id(), t)
                .map_err(|e| DemoError::Setup(e.to_string()))?,
        );
    }
    // A ClickUp subtask of the roadmap review.
    cu_ids.push(
        bed.clickup
            .ui_create(
                &bed.list_id(),
                SimTaskInput {
                    name: "Book a room for the roadmap review".into(),
                    parent: Some(cu_ids[3].clone()),
                    ..SimTaskInput::default()
                },
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?,
    );
    println!(
        "  seeded {} ADO work items and {} ClickUp tasks (4 people, closed items, subtasks)",
        ado_ids.len(),
        cu_ids.len()
    );

    // The engine and the daemon, configured as a user would: titles are left for a person
    // when both sides change them.
    let mut mapping = MappingConfig::default();
    mapping.fields.set(
        Field::Title,
        FieldOptions {
            conflict: ConflictPolicy::Manual,
            ..FieldOptions::default()
        },
    );
    let pair = bed.pair("demo", mapping);
    let stats = ApiStats::new();
    let ado = Arc::new(
        AdoClient::new(bed.ado_config(), stats.clone())
            .map_err(|e| DemoError::Setup(e.to_string()))?,
    );
    let clickup = Arc::new(
        ClickUpClient::new(bed.clickup_config(), stats.clone())
            .map_err(|e| DemoError::Setup(e.to_string()))?,
    );
    let store = Store::open_url(&db_url).await?;
    let engine = Arc::new(
        Engine::new(
            vec![pair],
            ado,
            clickup,
            stats.clone(),
            store,
            EngineOptions::default(),
        )
        .with_observer(printer.clone()),
    );
    let port = if opts.port == 0 {
        free_port()?
    } else {
        opts.port
    };
    let secret = format!("demo-{}", rand::random::<u64>());
    let shutdown = CancellationToken::new();
    let (running, schedule) = service::start_daemon(
        engine.clone(),
        DaemonOptions {
            schedule: ScheduleOptions {
                poll_interval: opts.poll_interval,
                nudge_min_gap: Duration::from_millis(200),
                ..ScheduleOptions::default()
            },
            sweep_interval: Duration::from_secs(3600),
            sweep_first: true,
            bind: "127.0.0.1".into(),
            port,
            webhook_secret: Some(SecretString::from(secret)),
            public_url: Some(format!("http://127.0.0.1:{port}")),
        },
        shutdown.clone(),
    )
    .await
    .map_err(Box::new)?;
    println!(
        "  daemon: poll every {:?}, health on http://{}/api/health, ClickUp webhook registered",
        opts.poll_interval, running.addr
    );
    let script = Script {
        bed: &bed,
        db_url: db_url.clone(),
        printer: printer.clone(),
    };
    script.remember_titles();

    let play = async {
        script.step("Initial sync: both backlogs meet");
        let total = ado_ids.len() + cu_ids.len();
        script
            .wait("the initial sync", || {
                script
                    .db()
                    .and_then(|d| Ok(d.count_active_links("demo")?))
                    .map(|n| n as usize == total)
                    .unwrap_or(false)
            })
            .await?;
        script.remember_titles();
        script.settle().await;

        script.step("Alice renames an ADO story; the next poll carries it to ClickUp");
        let a0 = ado_ids[3];
        let t0 = script
            .counterpart_of_ado(a0)?
            .ok_or_else(|| DemoError::Timeout("a link for the dark-mode story".into()))?;
        bed.ado
            .ui_edit(
                a0,
                fields(json!({"System.Title": "Dark mode for dashboard and reports"})),
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        let took = script
            .wait("the rename to reach ClickUp", || {
                bed.clickup
                    .task(&t0)
                    .is_some_and(|t| t.name() == "Dark mode for dashboard and reports")
            })
            .await?;
        println!(
            "  -> visible in ClickUp after {:.2}s (ADO sends no webhook here: the next poll found it)",
            took.as_secs_f64()
        );
        script.settle().await;

        script.step("Bob closes a task in ClickUp; ClickUp's signed webhook wakes the daemon");
        let c0 = cu_ids[1].clone();
        let item = script
            .db()?
            .link_by_clickup("demo", &c0)?
            .map(|l| l.ado_id)
            .ok_or_else(|| DemoError::Timeout("a link for the interview notes".into()))?;
        bed.clickup
            .ui_edit(
                &c0,
                SimTaskEdit {
                    status: Some("complete".into()),
                    ..SimTaskEdit::default()
                },
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        let took = script
            .wait("the status to reach ADO", || {
                bed.ado.item(item).is_some_and(|w| w.state() == "Closed")
            })
            .await?;
        println!(
            "  -> ADO #{item} is Closed after {:.2}s: the webhook woke the daemon before its poll",
            took.as_secs_f64(),
        );
        script.settle().await;

        script.step(
            "Both sides edit the same story: different fields merge, the same field conflicts",
        );
        let a1 = ado_ids[0];
        let t1 = script
            .counterpart_of_ado(a1)?
            .ok_or_else(|| DemoError::Timeout("a link for the sign-in story".into()))?;
        bed.ado
            .ui_edit(
                a1,
                fields(json!({
                    "System.Title": "Sign-in hangs on Safari after entering credentials",
                    "Microsoft.VSTS.Common.Priority": 2,
                })),
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        bed.clickup
            .ui_edit(
                &t1,
                SimTaskEdit {
                    name: Some("Sign-in page hangs (SSO users only)".into()),
                    tags_add: vec!["sso".into()],
                    ..SimTaskEdit::default()
                },
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        script
            .wait("the conflict to be recorded", || {
                script
                    .db()
                    .and_then(|d| Ok(d.open_conflicts(Some("demo"))?))
                    .map(|c| !c.is_empty())
                    .unwrap_or(false)
            })
            .await?;
        let conflicts = script.db()?.open_conflicts(Some("demo"))?;
        for c in &conflicts {
            println!(
                "  -> conflict #{} on {}: ADO {} vs ClickUp {} (base {})",
                c.id, c.field, c.values.ado, c.values.clickup, c.values.base
            );
        }
        script
            .wait("the merged fields", || {
                bed.clickup
                    .task(&t1)
                    .is_some_and(|t| t.priority() == Some(2))
                    && bed
                        .ado
                        .item(a1)
                        .is_some_and(|w| w.tags().iter().any(|t| t == "sso"))
            })
            .await?;
        println!(
            "  -> priority (from ADO) and the tag (from ClickUp) were merged; titles untouched"
        );
        script.settle().await;
        script.step("A person resolves the conflict: `conflicts resolve ID --take clickup`");
        for c in &conflicts {
            script
                .db()?
                .resolve_conflict(c.id, Resolution::TakeClickUp, chrono::Utc::now())?;
        }
        running.nudger.nudge();
        script
            .wait("the resolution to reach ADO", || {
                bed.ado
                    .item(a1)
                    .is_some_and(|w| w.title() == "Sign-in page hangs (SSO users only)")
            })
            .await?;
        println!("  -> ADO took the ClickUp title");
        script.settle().await;

        script.step("A new task in ClickUp gets its ADO counterpart");
        let fresh = bed
            .clickup
            .ui_create(
                &bed.list_id(),
                SimTaskInput {
                    name: "Accessibility audit of the checkout".into(),
                    markdown: "Use **axe**; file one bug per finding.".into(),
                    ..SimTaskInput::default()
                },
            )
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        script
            .wait("the new task's counterpart", || {
                script
                    .db()
                    .and_then(|d| Ok(d.link_by_clickup("demo", &fresh)?))
                    .map(|l| l.is_some())
                    .unwrap_or(false)
            })
            .await?;
        // Two more polls: the last writes come back through the overlap window and are
        // recognised as our own.
        script.settle().await;
        let side_total = || {
            stats.total(crate::core::model::Side::Ado)
                + stats.total(crate::core::model::Side::ClickUp)
        };
        let (reqs, writes) = (side_total(), script.writes());
        tokio::time::sleep(opts.poll_interval * 2 + Duration::from_millis(200)).await;
        println!(
            "  -> then idle: {} read requests and {} writes over the next two polls (no echo)",
            side_total() - reqs,
            script.writes() - writes
        );
        Ok::<(), DemoError>(())
    };

    tokio::pin!(schedule);
    let played = tokio::select! {
        r = play => r,
        _ = &mut schedule => Err(DemoError::Setup("the schedule stopped early".into())),
    };
    let table = final_table(&bed, &script.db()?)?;
    println!("\n== Both sides at the end\n{}", table.0);
    if let Err(e) = played {
        shutdown.cancel();
        return Err(e);
    }
    if opts.keep_running {
        println!(
            "\nStill running: health on http://{}/api/health, metrics on /metrics. Ctrl-C to stop.",
            running.addr
        );
        let stop = shutdown.clone();
        let _signal = crate::daemon::cancel_on_signal(stop)
            .map_err(|e| DemoError::Setup(format!("installing the signal handler: {e}")))?;
        schedule.await;
    } else {
        shutdown.cancel();
        schedule.await;
    }
    let _ = running.server.finished().await;
    let _ = std::fs::remove_dir_all(&dir);
    if !table.1 {
        return Err(DemoError::Differ(table.0));
    }
    Ok(table.0)
}

/// The side-by-side table, and whether every linked pair shows the same values.
fn final_table(bed: &Testbed, db: &Db) -> Result<(String, bool), DemoError> {
    let links = db.links_in_pair("demo", Some(LinkState::Active))?;
    let members: BTreeMap<i64, String> = bed
        .clickup
        .options()
        .members
        .iter()
        .map(|m| (m.id, m.email.clone()))
        .collect();
    let mut rows = vec![[
        "ADO".to_string(),
        "title".into(),
        "state".into(),
        "assignee".into(),
        "ClickUp".into(),
        "status".into(),
        "assignees".into(),
        "same".into(),
    ]];
    let mut all_same = true;
    for l in &links {
        let (Some(w), Some(t)) = (bed.ado.item(l.ado_id), bed.clickup.task(&l.clickup_id)) else {
            continue;
        };
        let cu_people: Vec<String> = t
            .assignee_ids()
            .iter()
            .filter_map(|i| members.get(i).cloned())
            .collect();
        let ado_person = w.assigned_to().unwrap_or_default();
        let same_people = if ado_person.is_empty() {
            cu_people.is_empty()
        } else {
            cu_people
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&ado_person))
        };
        let same = w.title() == t.name() && same_people;
        all_same &= same;
        let short = |s: &str| {
            if s.chars().count() > 44 {
                format!("{}…", s.chars().take(43).collect::<String>())
            } else {
                s.to_string()
            }
        };
        rows.push([
            format!("#{}", w.id),
            short(w.title()),
            w.state().to_string(),
            ado_person,
            t.id().to_string(),
            t.status().to_string(),
            cu_people.join(" "),
            if same { "yes".into() } else { "NO".into() },
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-|-"));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "{} linked pairs; {}\n",
        links.len(),
        if all_same {
            "both sides equal"
        } else {
            "SOME DIFFER"
        }
    ));
    Ok((out, all_same))
}

fn tempfile_dir() -> Result<std::path::PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!(
        "ado-clickup-sync-demo-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| DemoError::Setup(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

fn free_port() -> Result<u16, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DemoError::Setup(format!("finding a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DemoError::Setup(format!("finding a free port: {e}")))
}
