//! `ado-clickup-sync bench`: the figures of issue 7, measured the same way every time. Both
//! API simulators, the real engine and (for latency) the real daemon run in this process and
//! talk over loopback HTTP; each figure is the median of several runs, with min and max.
//!
//! The figures: (1) requests per idle cycle per pair, (2) requests per changed item by kind
//! against a floor, (3) initial sync throughput, (4) efficiency under a (time-scaled) rate
//! limit, (5) propagation latency through the daemon, (6) local CPU and memory, (7)
//! description conversion throughput.
//!
//! The simulators run on their own runtime (threads named [`SIM_THREAD`]) so that figure 6 can
//! tell their CPU time from the engine's. Request counts (figures 1 and 2) are deterministic
//! and asserted by `tests/bench.rs`; times are not asserted anywhere.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::ado::AdoClient;
use crate::clickup::ClickUpClient;
use crate::core::convert::{html_to_markdown, markdown_to_html, normalize_markdown};
use crate::core::mapping::MappingConfig;
use crate::core::model::Side;
use crate::daemon::ScheduleOptions;
use crate::engine::{
    ActionRow, CycleReport, CycleRequest, Engine, EngineError, EngineOptions, Observer,
};
use crate::remote::ApiStats;
use crate::service::{self, DaemonOptions, ServiceError};
use crate::sim::ado::{AdoSeed, SeedItem, SimRelation};
use crate::sim::clickup::{
    ClickUpSeed, RateLimit, SeedTask, SimTaskEdit, SimTaskInput, ADO_LINK_FIELD_ID,
};
use crate::sim::testbed::{Testbed, TestbedOptions};
use crate::store::{Store, StoreError};

/// Name of the simulators' runtime threads (figure 6 sums their CPU time separately).
pub const SIM_THREAD: &str = "bench-sim";
/// The pair every bed syncs.
const PAIR: &str = "bench";
/// Waited beyond the overlap after the last write before an idle measurement.
const SETTLE_MARGIN: Duration = Duration::from_millis(300);
/// ClickUp's page size and ADO's batch and WIQL limits, for the floors.
const CLICKUP_PAGE: u64 = 100;
const ADO_BATCH: u64 = 200;
const WIQL_PAGE: u64 = 19_999;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench: {0}")]
    Setup(String),
    #[error("bench: {0}")]
    Engine(#[from] EngineError),
    #[error("bench: {0}")]
    Store(#[from] StoreError),
    #[error("bench: starting the daemon: {0}")]
    Service(#[from] Box<ServiceError>),
    #[error("bench: timed out after {secs:.0} s waiting for {what}")]
    Timeout { what: String, secs: f64 },
    #[error("bench: {what}: {detail}")]
    Check { what: String, detail: String },
    #[error("bench: writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn setup(what: &str) -> impl Fn(String) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

fn check(what: &str, detail: impl Into<String>) -> BenchError {
    BenchError::Check {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// The sizes of every figure; [`Sizes::full`] is issue 7's, [`Sizes::quick`] a tiny run.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub quick: bool,
    /// The figures to run (1-7).
    pub figures: Vec<u8>,
    /// The engine's overlap. Small, so that an idle cycle is reached by waiting seconds
    /// instead of the default five minutes (see the notes of figure 1).
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// Figure 1: link counts.
    pub idle_links: Vec<usize>,
    /// Figure 1: idle cycles measured per link count.
    pub idle_cycles: usize,
    /// Figure 2: ADO edits and ClickUp edits (each) in the one measured cycle.
    pub edits: usize,
    /// Figure 2: every n-th ADO edit also adds a tag (the tag endpoints are requests too).
    pub tag_every: usize,
    pub change_runs: usize,
    /// Figure 2 runs on the bed with this many links (one of `idle_links`, else its own).
    pub change_links: usize,
    /// Figure 3: items per direction.
    pub initial_items: usize,
    pub initial_runs: usize,
    /// Figure 4: creates, the limit per window, the window standing for ClickUp's minute.
    pub rl_creates: usize,
    pub rl_limit: u32,
    #[serde(with = "humantime_serde")]
    pub rl_window: Duration,
    pub rl_runs: usize,
    /// Figure 4, check: one more run at a longer window (0 creates: none), to show how the
    /// loss per window depends on the window's length.
    pub rl_check_creates: usize,
    #[serde(with = "humantime_serde")]
    pub rl_check_window: Duration,
    /// Figure 5: edits per run, runs, the intervals of (a) and (b), the daemon's nudge gap.
    pub latency_edits: usize,
    pub latency_runs: usize,
    #[serde(with = "humantime_serde")]
    pub webhook_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub nudge_min_gap: Duration,
    /// Figure 6: the bed (one of `idle_links`, else its own) and the changes of its cycle.
    pub cost_links: usize,
    pub cost_changes: usize,
    pub cost_runs: usize,
    /// Figure 7: runs, each converting the corpus for at least this long.
    pub convert_runs: usize,
    #[serde(with = "humantime_serde")]
    pub convert_min_time: Duration,
}

impl Sizes {
    /// Issue 7's sizes.
    pub fn full() -> Sizes {
        Sizes {
            quick: false,
            figures: (1..=7).collect(),
            overlap: Duration::from_secs(2),
            idle_links: vec![1, 10_000, 100_000],
            idle_cycles: 5,
            edits: 1_000,
            tag_every: 5,
            change_runs: 3,
            change_links: 10_000,
            initial_items: 10_000,
            initial_runs: 3,
            rl_creates: 2_000,
            rl_limit: 100,
            rl_window: Duration::from_secs(1),
            rl_runs: 3,
            rl_check_creates: 500,
            rl_check_window: Duration::from_secs(10),
            latency_edits: 50,
            latency_runs: 3,
            webhook_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            nudge_min_gap: Duration::from_millis(250),
            cost_links: 100_000,
            cost_changes: 1_000,
            cost_runs: 3,
            convert_runs: 5,
            convert_min_time: Duration::from_millis(1_000),
        }
    }

    /// Tiny sizes: every figure, in well under a minute (also what `tests/bench.rs` runs).
    pub fn quick() -> Sizes {
        Sizes {
            quick: true,
            figures: (1..=7).collect(),
            overlap: Duration::from_millis(500),
            idle_links: vec![1, 10, 40],
            idle_cycles: 3,
            edits: 5,
            tag_every: 5,
            change_runs: 3,
            change_links: 40,
            initial_items: 30,
            initial_runs: 2,
            rl_creates: 30,
            rl_limit: 20,
            rl_window: Duration::from_secs(1),
            rl_runs: 1,
            rl_check_creates: 0,
            rl_check_window: Duration::from_secs(10),
            latency_edits: 5,
            latency_runs: 2,
            webhook_interval: Duration::from_secs(60),
            // Scaled down from 5 s so that the quick run stays short.
            poll_interval: Duration::from_millis(500),
            nudge_min_gap: Duration::from_millis(250),
            cost_links: 40,
            cost_changes: 10,
            cost_runs: 2,
            convert_runs: 3,
            convert_min_time: Duration::from_millis(100),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// What a row is held to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Every run equals this.
    Exactly(f64),
    /// Every run is at least this.
    AtLeast(f64),
    /// Every run is at most this.
    AtMost(f64),
    /// A reference value to compare with (no verdict).
    Floor(f64),
}

impl Target {
    fn met(&self, runs: &[f64]) -> Option<bool> {
        match self {
            Target::Exactly(t) => Some(runs.iter().all(|v| (v - t).abs() < 1e-9)),
            Target::AtLeast(t) => Some(runs.iter().all(|v| *v >= *t)),
            Target::AtMost(t) => Some(runs.iter().all(|v| *v <= *t)),
            Target::Floor(_) => None,
        }
    }
    /// `= 2`, `≥ 0.95`, `floor 19`.
    pub fn describe(&self) -> String {
        match self {
            Target::Exactly(t) => format!("= {}", num(*t)),
            Target::AtLeast(t) => format!("≥ {}", num(*t)),
            Target::AtMost(t) => format!("≤ {}", num(*t)),
            Target::Floor(t) => format!("floor {}", num(*t)),
        }
    }
}

/// One line of the table: a metric over several runs.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: u8,
    pub metric: String,
    pub unit: String,
    pub runs: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub target: Option<Target>,
    /// Whether every run met the target (`None`: no target or a reference only).
    pub met: Option<bool>,
}

impl Row {
    fn new(figure: u8, metric: impl Into<String>, unit: &str, runs: Vec<f64>) -> Row {
        let (median, min, max) = stats(&runs);
        Row {
            figure,
            metric: metric.into(),
            unit: unit.to_string(),
            runs,
            median,
            min,
            max,
            target: None,
            met: None,
        }
    }
    fn target(mut self, t: Target) -> Row {
        self.met = t.met(&self.runs);
        self.target = Some(t);
        self
    }
}

/// Median, min and max (0 for no runs).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0], s[n - 1])
}

/// Nearest-rank percentile of sorted-or-not values.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

/// Process-wide resource use at one instant (Linux: `getrusage`, `/proc/self`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// User + system CPU time of the whole process, seconds.
    pub cpu_s: f64,
    /// CPU time of the simulators' threads, seconds (0 where `/proc` is unavailable).
    pub sim_cpu_s: f64,
    /// Peak resident set size of the process so far (`ru_maxrss`), KiB.
    pub maxrss_kib: i64,
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: i64,
}

impl Usage {
    pub fn now() -> Usage {
        let (cpu_s, maxrss_kib) = rusage_self();
        Usage {
            cpu_s,
            sim_cpu_s: sim_threads_cpu_s(),
            maxrss_kib,
            rss_kib: current_rss_kib(),
        }
    }
}

fn rusage_self() -> (f64, i64) {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value; `getrusage` only
    // writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an owned `rusage`, and RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss)
}

/// CPU time of the simulator threads, from `/proc/self/task/*/schedstat` (ns on CPU).
fn sim_threads_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns: u64 = 0;
    for t in tasks.flatten() {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != SIM_THREAD {
            continue;
        }
        let sched = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        ns += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e9
}

fn current_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Figure 1, one link count.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    pub links: usize,
    /// Seeding both sides and linking them (by their back-link markers), seconds.
    pub setup_s: f64,
    pub runs: Vec<IdleRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleRun {
    /// Requests of the cycle, per pair (the bench syncs one pair).
    pub requests: u64,
    pub wiql: u64,
    pub pages: u64,
    /// Every request of the cycle, as `side endpoint status` → count.
    pub endpoints: BTreeMap<String, u64>,
    pub wall_ms: f64,
    pub before: Usage,
    pub after: Usage,
}

/// Figure 1, supplement: idle cycles right after an initial sync (no later edit).
#[derive(Debug, Clone, Serialize)]
pub struct IdleAfterCreates {
    pub creates: usize,
    pub requests: Vec<u64>,
    pub pages: Vec<u64>,
    /// Tasks within the bench's overlap of the newest `date_updated` (re-read every poll).
    pub tasks_in_overlap: usize,
    /// The same with the default overlap (5 min), and the pages that would cost.
    pub tasks_in_default_overlap: usize,
    pub pages_with_default_overlap: u64,
}

/// Figure 2.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeResult {
    pub links: usize,
    pub ado_edits: usize,
    pub clickup_edits: usize,
    /// ADO edits that also add a tag.
    pub tag_edits: usize,
    /// The floor by kind (see [`change_floor`]).
    pub floor: BTreeMap<String, u64>,
    pub runs: Vec<ChangeRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeRun {
    pub by_kind: BTreeMap<String, u64>,
    pub total: u64,
    pub wall_s: f64,
    pub updated_ado: u64,
    pub updated_clickup: u64,
}

/// Figure 3, one run of one direction.
#[derive(Debug, Clone, Serialize)]
pub struct InitialRun {
    pub direction: String,
    pub items: usize,
    pub wall_s: f64,
    pub requests: u64,
    pub cycles: usize,
}

/// Figure 4, one run.
#[derive(Debug, Clone, Serialize)]
pub struct RateRun {
    pub creates: usize,
    pub limit: u32,
    pub window_s: f64,
    pub wall_s: f64,
    /// ClickUp requests the simulator accepted (not 429).
    pub accepted: u64,
    pub throttled: u64,
    /// accepted / (wall / window) / limit, over the whole create cycle.
    pub fraction: f64,
    /// The same in the steady state: creates per window over the period from one window's
    /// start to the next (windows start after the client's pauses), for the complete windows
    /// between the first and the last pause. `None` when the run paused fewer than twice.
    pub steady_fraction: Option<f64>,
    /// Complete windows `steady_fraction` is measured over.
    pub steady_windows: usize,
}

/// Figure 5, one run of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub mode: String,
    /// (direction, seconds) per edit, in edit order.
    pub samples: Vec<(String, f64)>,
}

impl LatencyRun {
    fn values(&self, dir: Option<&str>) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(d, _)| dir.is_none_or(|x| x == d))
            .map(|(_, s)| *s)
            .collect()
    }
}

/// Figure 6, one cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CostRun {
    pub changes: usize,
    pub wall_s: f64,
    pub requests: u64,
    pub before: Usage,
    pub after: Usage,
}

/// Figure 7, one run.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertRun {
    pub fixtures: usize,
    pub descriptions: u64,
    pub bytes: u64,
    pub wall_s: f64,
}

/// Where and when the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub os: String,
    pub profile: String,
    pub commit: Option<String>,
}

impl Machine {
    fn probe() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        Machine {
            date: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib: mem_kib / 1024.0 / 1024.0,
            cpu,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
            commit,
        }
    }
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub sizes: Sizes,
    pub wall_s: f64,
    pub rows: Vec<Row>,
    /// Per figure: how it was measured and what it means.
    pub notes: BTreeMap<u8, Vec<String>>,
    pub idle: Vec<IdleResult>,
    pub idle_after_creates: Option<IdleAfterCreates>,
    pub changes: Option<ChangeResult>,
    pub initial: Vec<InitialRun>,
    pub rate: Vec<RateRun>,
    pub latency: Vec<LatencyRun>,
    pub cost_idle: Vec<CostRun>,
    pub cost_changes: Vec<CostRun>,
    pub convert: Vec<ConvertRun>,
}

const TITLES: [&str; 7] = [
    "Requests per idle cycle, per pair",
    "Requests per changed item, by kind, against the floor",
    "Initial sync throughput, unthrottled",
    "Efficiency under a rate limit (ClickUp, time-scaled window)",
    "Propagation latency through the daemon",
    "Local cost (CPU time, memory) of one cycle",
    "Description conversion throughput (HTML → Markdown → HTML)",
];

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A value as the table shows it: integers as such, else 2-3 significant digits.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    /// The table and the notes, as Markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Run {} ({} build{}), {} cores, {:.1} GiB, {}; {}{}; took {:.0} s.\n",
            m.date,
            m.profile,
            if self.sizes.quick {
                ", --quick sizes"
            } else {
                ""
            },
            m.cores,
            m.memory_gib,
            m.cpu,
            m.os,
            m.commit
                .as_ref()
                .map(|c| format!(", commit {c}"))
                .unwrap_or_default(),
            self.wall_s
        );
        let _ = writeln!(
            s,
            "| Fig. | Metric | Median | Min | Max | Unit | Runs | Target |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|---:|---|");
        for r in &self.rows {
            let target = match (&r.target, r.met) {
                (Some(t), Some(true)) => format!("{} ✓", t.describe()),
                (Some(t), Some(false)) => format!("{} ✗ MISSED", t.describe()),
                (Some(t), None) => t.describe(),
                (None, _) => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.figure,
                r.metric,
                num(r.median),
                num(r.min),
                num(r.max),
                r.unit,
                r.runs.len(),
                target
            );
        }
        for (fig, notes) in &self.notes {
            let title = TITLES
                .get(usize::from(*fig).saturating_sub(1))
                .copied()
                .unwrap_or("");
            let _ = writeln!(s, "\n**Figure {fig}: {title}.**");
            for n in notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// Rows whose target was missed.
    pub fn missed(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.met == Some(false)).collect()
    }

    /// Writes `bench.md` and `bench.json` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), BenchError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BenchError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let md = dir.join("bench.md");
        std::fs::write(&md, self.markdown()).map_err(err(&md))?;
        let js = dir.join("bench.json");
        let body = serde_json::to_string_pretty(self).map_err(|e| BenchError::Write {
            path: js.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&js, body).map_err(err(&js))?;
        Ok((md, js))
    }
}

// ---------------------------------------------------------------------------------------------
// Simulators on their own runtime, beds, cycles
// ---------------------------------------------------------------------------------------------

/// A runtime that runs only the simulators (threads named [`SIM_THREAD`]).
struct SimHost {
    rt: Option<tokio::runtime::Runtime>,
}

impl SimHost {
    fn new() -> Result<SimHost, BenchError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(SIM_THREAD)
            .enable_all()
            .build()
            .map_err(|e| BenchError::Setup(format!("starting the simulators' runtime: {e}")))?;
        Ok(SimHost { rt: Some(rt) })
    }

    async fn testbed(&self, opts: TestbedOptions) -> Result<Testbed, BenchError> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| BenchError::Setup("the simulators' runtime is gone".into()))?;
        rt.spawn(Testbed::start(opts))
            .await
            .map_err(|e| BenchError::Setup(format!("starting the simulators: {e}")))?
            .map_err(setup("starting the simulators"))
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside the bench's own runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A scratch folder for one bed's database, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, BenchError> {
        let p = std::env::temp_dir().join(format!(
            "ado-clickup-sync-bench-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p)
            .map_err(|e| BenchError::Setup(format!("creating {}: {e}", p.display())))?;
        Ok(ScratchDir(p))
    }
    fn db_url(&self) -> String {
        self.0.join("sync.db").display().to_string()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Default)]
struct BedSpec {
    /// Pairs seeded on both sides with each other's back-link marker (linked by the first
    /// cycle, as a team adopting the sync with existing counterparts would).
    linked: usize,
    /// The ClickUp simulator's limit and the client's, per (scaled) window.
    rate_limit: Option<(u32, Duration)>,
    max_creates: usize,
    overlap: Duration,
    observer: Option<Arc<dyn Observer>>,
}

/// When each create in ClickUp was applied (figure 4's windows).
#[derive(Default)]
struct CreateTimes(std::sync::Mutex<Vec<Instant>>);

impl Observer for CreateTimes {
    fn applied(&self, _pair: &str, row: &ActionRow, outcome: Result<(), &str>) {
        if row.action == "create_in_clickup" && outcome.is_ok() {
            if let Ok(mut t) = self.0.lock() {
                t.push(Instant::now());
            }
        }
    }
}

/// Two simulators, an engine with a file store, and the seeded links.
struct Bed {
    tb: Testbed,
    engine: Arc<Engine>,
    stats: Arc<ApiStats>,
    /// (ADO id, ClickUp id) of the seeded links; the last one is the sentinel.
    links: Vec<(i64, String)>,
    sentinel_edits: u32,
    /// The overlap plus a margin: waited after the last write before an idle measurement.
    settle: Duration,
    _dir: ScratchDir,
}

fn engine_options(max_creates: usize, overlap: Duration) -> EngineOptions {
    EngineOptions {
        overlap,
        max_creates: max_creates.max(EngineOptions::default().max_creates),
        // Metadata (types, states, statuses, members) is re-read every 10 min by default:
        // 3-4 requests per pair that would land in whichever cycle came next.
        metadata_ttl: Duration::from_secs(24 * 3600),
        ..EngineOptions::default()
    }
}

impl Bed {
    /// A person renames ClickUp task `id` in the web UI.
    fn rename_task(&self, id: &str, name: String, what: &str) -> Result<(), BenchError> {
        self.tb
            .clickup
            .ui_edit(
                id,
                SimTaskEdit {
                    name: Some(name),
                    ..SimTaskEdit::default()
                },
            )
            .map_err(|e| setup(what)(e.to_string()))
    }

    /// A person retitles ADO work item `id` in the web UI.
    fn retitle_item(&self, id: i64, title: String) -> Result<(), BenchError> {
        self.tb
            .ado
            .ui_edit(id, fields(json!({"System.Title": title})))
            .map_err(|e| setup("an ADO edit")(e.to_string()))
    }

    async fn start(host: &SimHost, spec: BedSpec) -> Result<Bed, BenchError> {
        let tb = host
            .testbed(TestbedOptions {
                clickup_rate_limit: spec
                    .rate_limit
                    .map(|(limit, window)| RateLimit { limit, window }),
                ..TestbedOptions::default()
            })
            .await?;
        let dir = ScratchDir::new()?;
        let stats = ApiStats::new();
        let ado = AdoClient::new(tb.ado_config(), stats.clone())
            .map_err(|e| setup("the ADO client")(e.to_string()))?;
        let mut cu_cfg = tb.clickup_config();
        if let Some((limit, window)) = spec.rate_limit {
            cu_cfg.policy.requests_per_minute = Some(limit);
            cu_cfg.policy.rate_window = window;
            // The real default: a 429 is waited out, not failed.
            cu_cfg.policy.max_rate_limit_wait = Duration::from_secs(120);
        }
        let clickup = ClickUpClient::new(cu_cfg, stats.clone())
            .map_err(|e| setup("the ClickUp client")(e.to_string()))?;
        let links = if spec.linked > 0 {
            seed_linked(&tb, &ado, spec.linked)?
        } else {
            Vec::new()
        };
        let store = Store::open_url(&dir.db_url()).await?;
        let mut engine = Engine::new(
            vec![tb.pair(PAIR, MappingConfig::default())],
            Arc::new(ado),
            Arc::new(clickup),
            stats.clone(),
            store,
            engine_options(spec.max_creates, spec.overlap),
        );
        if let Some(o) = spec.observer.clone() {
            engine = engine.with_observer(o);
        }
        Ok(Bed {
            tb,
            engine: Arc::new(engine),
            stats,
            links,
            sentinel_edits: 0,
            settle: spec.overlap + SETTLE_MARGIN,
            _dir: dir,
        })
    }

    async fn cycle(&self) -> Result<CycleReport, BenchError> {
        let r = self
            .engine
            .cycle(&CycleRequest::incremental(), &CancellationToken::new())
            .await?;
        if let Some(e) = r.error() {
            return Err(e.into());
        }
        Ok(r)
    }

    /// Cycles until one does nothing; returns how many ran.
    async fn converge(&self) -> Result<usize, BenchError> {
        let mut last = String::new();
        for i in 1..=10 {
            let r = self.cycle().await?;
            let t = r.tally();
            if t.written_ado() + t.written_clickup() + t.linked + t.unlinked + t.failed == 0
                && t.conflicts == 0
            {
                return Ok(i);
            }
            last = format!("{t:?}; failures {:?}", r.pairs.first().map(|p| &p.failures));
        }
        Err(check(
            "convergence",
            format!("still acting after 10 cycles: {last}"),
        ))
    }

    /// Brings the bed to a state where the next cycle is idle: converged, nothing written
    /// within the overlap, and the ClickUp cursor's overlap window holding one task only.
    ///
    /// The ClickUp cursor is the newest `date_updated` seen, and every poll re-reads
    /// `(cursor - overlap, now]`: after a burst of our own writes that window holds the burst's
    /// tail. A sentinel edit made after waiting out the overlap moves the cursor past it.
    async fn quiesce(&mut self) -> Result<(), BenchError> {
        self.converge().await?;
        self.catch_up_clocks();
        tokio::time::sleep(self.settle).await;
        let (_, sentinel) = self
            .links
            .last()
            .cloned()
            .ok_or_else(|| check("quiesce", "the bed has no links"))?;
        self.sentinel_edits += 1;
        self.rename_task(
            &sentinel,
            format!("Sentinel {}", self.sentinel_edits),
            "the sentinel edit",
        )?;
        self.converge().await?;
        self.catch_up_clocks();
        tokio::time::sleep(self.settle).await;
        // Reads what the sentinel's cycles wrote to ADO one last time; from here on the ADO
        // cursor is past every write.
        self.cycle().await?;
        Ok(())
    }

    /// The simulators hand out strictly increasing millisecond change stamps, so a burst of
    /// more than one change per millisecond (seeding 100,000 items, 1,000 edits) runs their
    /// stamps ahead of their clocks, up to 100 s. In ADO a change dated after the WIQL `asOf`
    /// is then re-read by every poll until the clock passes it; in ClickUp the next edit (the
    /// sentinel) is stamped right after our own burst of writes, which then falls into its
    /// overlap window. Moving each simulator's clock to its last stamp makes it a service
    /// whose clock runs ahead of ours, which the engine's server-time cursors absorb.
    fn catch_up_clocks(&self) {
        for clock in [self.tb.ado.clock(), self.tb.clickup.clock()] {
            let ahead = clock.stamp_ms() - clock.now_ms();
            if ahead > 0 {
                clock.advance(chrono::Duration::milliseconds(ahead + 1));
            }
        }
    }

    async fn link_count(&self) -> Result<u64, BenchError> {
        Ok(self
            .engine
            .store()
            .call(|db| db.count_active_links(PAIR))
            .await?)
    }

    /// Cycles until `n` links exist (at most `max` cycles); returns the cycles run.
    async fn sync_until_linked(&self, n: usize, max: usize) -> Result<usize, BenchError> {
        for i in 1..=max {
            self.cycle().await?;
            if self.link_count().await? >= n as u64 {
                return Ok(i);
            }
        }
        Err(check(
            "initial sync",
            format!(
                "{} of {n} items linked after {max} cycles",
                self.link_count().await?
            ),
        ))
    }
}

/// Requests counted by (side, endpoint, status).
type Snapshot = BTreeMap<(Side, String, u16), u64>;

fn snapshot(stats: &ApiStats) -> Snapshot {
    stats
        .snapshot()
        .into_iter()
        .map(|(k, n)| ((k.side, k.endpoint, k.status), n))
        .collect()
}

/// Requests made between two snapshots, by (side, endpoint, status).
fn delta(before: &Snapshot, after: &Snapshot) -> Snapshot {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn total(d: &Snapshot) -> u64 {
    d.values().sum()
}

fn endpoint_count(d: &Snapshot, side: Side, endpoint: &str) -> u64 {
    d.iter()
        .filter(|((s, e, _), _)| *s == side && e == endpoint)
        .map(|(_, n)| *n)
        .sum()
}

/// The kinds figure 2 reports, in table order.
pub const KINDS: [&str; 9] = [
    "WIQL",
    "ADO batch read",
    "ClickUp page",
    "ClickUp GET task",
    "ADO write (PATCH/POST)",
    "ClickUp write (PUT)",
    "ClickUp tag",
    "ClickUp create/field",
    "other",
];

/// The kind of a request, from its client label.
pub fn kind_of(side: Side, endpoint: &str) -> &'static str {
    match (side, endpoint) {
        (Side::Ado, "wiql") => "WIQL",
        (Side::Ado, "workitemsbatch") => "ADO batch read",
        (Side::Ado, "workitem.update" | "workitem.create") => "ADO write (PATCH/POST)",
        (Side::ClickUp, "team.tasks") => "ClickUp page",
        (Side::ClickUp, "task.get") => "ClickUp GET task",
        (Side::ClickUp, "task.update") => "ClickUp write (PUT)",
        (Side::ClickUp, e) if e.starts_with("task.tag") => "ClickUp tag",
        (Side::ClickUp, "task.create" | "task.field.set") => "ClickUp create/field",
        _ => "other",
    }
}

fn by_kind(d: &Snapshot) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for ((side, ep, _), n) in d {
        *out.entry(kind_of(*side, ep).to_string()).or_insert(0) += n;
    }
    out
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// The fewest requests one cycle can propagate `ado` ADO edits (`tags` of which add a tag) and
/// `clickup` ClickUp edits with, on distinct links, given the two APIs:
/// - one WIQL per 19,999 changed ADO items (at least one: it is how changes are found);
/// - one ClickUp page per 100 changed tasks (at least one);
/// - one ADO batch read per 200 of the ADO items to merge: the edited ones and the
///   counterparts of the edited tasks (the WIQL answer carries ids only);
/// - one GET per counterpart task of an ADO edit: ClickUp has no batch read by id;
/// - one write per item to change (ADO PATCH, ClickUp PUT), plus one tag call per added tag
///   (ClickUp's Update Task ignores tags).
pub fn change_floor(ado: usize, tags: usize, clickup: usize) -> BTreeMap<String, u64> {
    let (a, t, c) = (ado as u64, tags as u64, clickup as u64);
    let mut f = BTreeMap::new();
    f.insert("WIQL".to_string(), ceil_div(a, WIQL_PAGE).max(1));
    f.insert("ClickUp page".to_string(), ceil_div(c, CLICKUP_PAGE).max(1));
    f.insert("ADO batch read".to_string(), ceil_div(a + c, ADO_BATCH));
    f.insert("ClickUp GET task".to_string(), a);
    f.insert("ADO write (PATCH/POST)".to_string(), c);
    f.insert("ClickUp write (PUT)".to_string(), a);
    f.insert("ClickUp tag".to_string(), t);
    f
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seeds `n` pairs that already point at each other (ADO `Hyperlink` to the task, the task's
/// link field to the work item), with the same content on both sides and old change dates
/// ten seconds apart, so that the first cycle links them without writing anything.
fn seed_linked(tb: &Testbed, ado: &AdoClient, n: usize) -> Result<Vec<(i64, String)>, BenchError> {
    let base = Utc::now().timestamp_millis() - 30 * 24 * 3600 * 1000;
    let list = tb.list_id();
    let mut items = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    let mut links = Vec::with_capacity(n);
    for i in 0..n {
        let id = i as i64 + 1;
        let cu = format!("bn{id}");
        let when = base + i as i64 * 10_000;
        let title = format!("Story {id}");
        items.push(SeedItem {
            id: Some(id),
            work_item_type: "User Story".into(),
            fields: fields(json!({
                "System.Title": title,
                "System.CreatedDate": rfc3339_ms(when),
                "System.ChangedDate": rfc3339_ms(when),
            })),
            relations: vec![SimRelation {
                rel: "Hyperlink".into(),
                url: format!("https://app.clickup.com/t/{cu}"),
                attributes: Map::new(),
            }],
            comments: Vec::new(),
            deleted: false,
        });
        tasks.push(SeedTask {
            id: Some(cu.clone()),
            list_id: list.clone(),
            input: SimTaskInput {
                name: title,
                custom_fields: BTreeMap::from([(
                    ADO_LINK_FIELD_ID.to_string(),
                    json!(ado.web_url(id)),
                )]),
                ..SimTaskInput::default()
            },
            date_created_ms: Some(when),
            date_updated_ms: Some(when),
            comments: Vec::new(),
        });
        links.push((id, cu));
    }
    tb.ado
        .seed(AdoSeed {
            custom_fields: Vec::new(),
            work_items: items,
        })
        .map_err(|e| setup("seeding ADO")(e.to_string()))?;
    tb.clickup
        .seed(ClickUpSeed {
            members: None,
            lists: None,
            tasks,
        })
        .map_err(|e| setup("seeding ClickUp")(e.to_string()))?;
    Ok(links)
}

/// Which way an initial sync goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    AdoToClickUp,
    ClickUpToAdo,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::AdoToClickUp => "ADO → ClickUp",
            Direction::ClickUpToAdo => "ClickUp → ADO",
        }
    }
}

/// Seeds `n` items on one side only, each with a short formatted description.
fn seed_unlinked(tb: &Testbed, n: usize, dir: Direction) -> Result<(), BenchError> {
    match dir {
        Direction::AdoToClickUp => {
            let items = (0..n)
                .map(|i| SeedItem {
                    id: None,
                    work_item_type: "User Story".into(),
                    fields: fields(json!({
                        "System.Title": format!("ADO story {i}"),
                        "System.Description": format!(
                            "<div>Story {i}: the <b>export</b> fails for <i>empty</i> reports.</div><ul><li>step one</li><li>step two</li></ul>"
                        ),
                        "Microsoft.VSTS.Common.Priority": 1 + (i % 4),
                    })),
                    relations: Vec::new(),
                    comments: Vec::new(),
                    deleted: false,
                })
                .collect();
            tb.ado
                .seed(AdoSeed {
                    custom_fields: Vec::new(),
                    work_items: items,
                })
                .map_err(|e| setup("seeding ADO")(e.to_string()))
        }
        Direction::ClickUpToAdo => {
            let list = tb.list_id();
            let tasks = (0..n)
                .map(|i| SeedTask {
                    id: None,
                    list_id: list.clone(),
                    input: SimTaskInput {
                        name: format!("ClickUp task {i}"),
                        markdown: format!(
                            "Task {i}: the **export** fails for *empty* reports.\n\n- step one\n- step two"
                        ),
                        priority: Some(1 + (i % 4) as u8),
                        ..SimTaskInput::default()
                    },
                    date_created_ms: None,
                    date_updated_ms: None,
                    comments: Vec::new(),
                })
                .collect();
            tb.clickup
                .seed(ClickUpSeed {
                    members: None,
                    lists: None,
                    tasks,
                })
                .map_err(|e| setup("seeding ClickUp")(e.to_string()))
        }
    }
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut() -> bool,
) -> Result<(), BenchError> {
    let t0 = Instant::now();
    loop {
        if ok() {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(BenchError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The figures
// ---------------------------------------------------------------------------------------------

/// Runs every figure at `sizes`, reporting progress through `progress`.
pub async fn run(sizes: &Sizes, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let started = Instant::now();
    let host = SimHost::new()?;
    let mut rep = Report {
        machine: Machine::probe(),
        sizes: sizes.clone(),
        wall_s: 0.0,
        rows: Vec::new(),
        notes: BTreeMap::new(),
        idle: Vec::new(),
        idle_after_creates: None,
        changes: None,
        initial: Vec::new(),
        rate: Vec::new(),
        latency: Vec::new(),
        cost_idle: Vec::new(),
        cost_changes: Vec::new(),
        convert: Vec::new(),
    };

    let want = |f: u8| sizes.figures.contains(&f);
    let (fig1, fig2, fig6) = (want(1), want(2), want(6));
    // Figures 1, 2 and 6 share beds: one per link count.
    let mut bed_sizes: Vec<usize> = Vec::new();
    if fig1 {
        bed_sizes.extend(&sizes.idle_links);
    }
    if fig2 {
        bed_sizes.push(sizes.change_links);
    }
    if fig6 {
        bed_sizes.push(sizes.cost_links);
    }
    bed_sizes.sort_unstable();
    bed_sizes.dedup();
    for n in bed_sizes {
        progress(&format!("linking {n} existing pairs"));
        let t0 = Instant::now();
        let mut bed = Bed::start(
            &host,
            BedSpec {
                linked: n,
                max_creates: n,
                overlap: sizes.overlap,
                ..BedSpec::default()
            },
        )
        .await?;
        let linked = bed.sync_until_linked(n, 3).await?;
        bed.quiesce().await?;
        let setup_s = t0.elapsed().as_secs_f64();
        progress(&format!(
            "  {n} links in {setup_s:.1} s ({linked} cycle(s) to link, then settled)"
        ));
        let idle_here = fig1 && sizes.idle_links.contains(&n);
        let cost_here = fig6 && n == sizes.cost_links;
        if idle_here || cost_here {
            let runs = idle_runs(&bed, sizes.idle_cycles).await?;
            if idle_here {
                rep.idle.push(IdleResult {
                    links: n,
                    setup_s,
                    runs: runs.clone(),
                });
            }
            if cost_here {
                rep.cost_idle = runs
                    .iter()
                    .map(|r| CostRun {
                        changes: 0,
                        wall_s: r.wall_ms / 1000.0,
                        requests: r.requests,
                        before: r.before,
                        after: r.after,
                    })
                    .collect();
            }
        }
        if fig2 && n == sizes.change_links {
            progress(&format!(
                "figure 2: {} + {} edits in one cycle, {n} links",
                sizes.edits, sizes.edits
            ));
            rep.changes = Some(change_runs(&mut bed, sizes).await?);
        }
        if cost_here {
            progress(&format!(
                "figure 6: a cycle with {} changes at {n} links",
                sizes.cost_changes
            ));
            rep.cost_changes = cost_runs(&mut bed, sizes).await?;
        }
    }

    if want(3) {
        progress(&format!(
            "figure 3: initial sync, {} items each way",
            sizes.initial_items
        ));
    }
    for run in 0..if want(3) { sizes.initial_runs } else { 0 } {
        for dir in [Direction::AdoToClickUp, Direction::ClickUpToAdo] {
            let (r, after) = initial_run(&host, sizes, dir, run == 0 && fig1).await?;
            progress(&format!(
                "  {}: {} items in {:.1} s",
                r.direction, r.items, r.wall_s
            ));
            rep.initial.push(r);
            if after.is_some() {
                rep.idle_after_creates = after;
            }
        }
    }

    if want(4) {
        progress(&format!(
            "figure 4: {} creates at {} requests per {:?} window",
            sizes.rl_creates, sizes.rl_limit, sizes.rl_window
        ));
    }
    let mut rate_plan = vec![(sizes.rl_creates, sizes.rl_window); sizes.rl_runs];
    if sizes.rl_check_creates > 0 {
        rate_plan.push((sizes.rl_check_creates, sizes.rl_check_window));
    }
    for (creates, window) in if want(4) { rate_plan } else { Vec::new() } {
        let r = rate_run(&host, sizes, creates, window).await?;
        progress(&format!(
            "  {} creates, {} s window: {:.3} of the limit ({:?} steady), {} 429s, {:.1} s",
            r.creates,
            num(r.window_s),
            r.fraction,
            r.steady_fraction,
            r.throttled,
            r.wall_s
        ));
        rep.rate.push(r);
    }

    if want(5) {
        progress("figure 5: latency through the daemon");
        rep.latency = latency_runs(&host, sizes, progress).await?;
    }
    if want(7) {
        progress("figure 7: conversion throughput");
        rep.convert = convert_runs(sizes);
    }

    drop(host);
    rep.wall_s = started.elapsed().as_secs_f64();
    build_rows(&mut rep);
    Ok(rep)
}

/// Figure 1: idle cycles (the bed is quiesced).
async fn idle_runs(bed: &Bed, cycles: usize) -> Result<Vec<IdleRun>, BenchError> {
    let mut runs = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let s0 = snapshot(&bed.stats);
        let before = Usage::now();
        let t0 = Instant::now();
        let r = bed.cycle().await?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let after = Usage::now();
        let d = delta(&s0, &snapshot(&bed.stats));
        let t = r.tally();
        if t.written_ado() + t.written_clickup() + t.linked > 0 {
            return Err(check("idle cycle", format!("it wrote: {t:?}")));
        }
        runs.push(IdleRun {
            requests: total(&d) / r.pairs.len().max(1) as u64,
            wiql: endpoint_count(&d, Side::Ado, "wiql"),
            pages: endpoint_count(&d, Side::ClickUp, "team.tasks"),
            endpoints: d
                .iter()
                .map(|((side, ep, st), n)| (format!("{side} {ep} {st}"), *n))
                .collect(),
            wall_ms,
            before,
            after,
        });
    }
    Ok(runs)
}

/// Figure 2: `edits` ADO edits (title; every `tag_every`-th adds a tag) and `edits` ClickUp
/// edits (name), on distinct links, then one measured cycle.
async fn change_runs(bed: &mut Bed, sizes: &Sizes) -> Result<ChangeResult, BenchError> {
    let e = sizes.edits;
    let tags = if sizes.tag_every == 0 {
        0
    } else {
        e.div_ceil(sizes.tag_every)
    };
    let needed = sizes.change_runs * 2 * e + 1;
    if bed.links.len() < needed {
        return Err(check(
            "figure 2",
            format!("needs {needed} links, the bed has {}", bed.links.len()),
        ));
    }
    let mut runs = Vec::new();
    for run in 0..sizes.change_runs {
        let chunk = &bed.links[run * 2 * e..(run + 1) * 2 * e];
        for (i, (ado_id, _)) in chunk[..e].iter().enumerate() {
            let mut f =
                fields(json!({"System.Title": format!("Story {ado_id} edited in ADO, run {run}")}));
            if sizes.tag_every > 0 && i % sizes.tag_every == 0 {
                f.insert("System.Tags".into(), json!(format!("bench-{run}")));
            }
            bed.tb
                .ado
                .ui_edit(*ado_id, f)
                .map_err(|e| setup("an ADO edit")(e.to_string()))?;
        }
        for (ado_id, cu) in &chunk[e..] {
            bed.rename_task(
                cu,
                format!("Story {ado_id} edited in ClickUp, run {run}"),
                "a ClickUp edit",
            )?;
        }
        let s0 = snapshot(&bed.stats);
        let t0 = Instant::now();
        let r = bed.cycle().await?;
        let wall_s = t0.elapsed().as_secs_f64();
        let d = delta(&s0, &snapshot(&bed.stats));
        let t = r.tally();
        if t.updated_clickup != e as u64 || t.updated_ado != e as u64 {
            return Err(check(
                "figure 2",
                format!("expected {e} updates each way in one cycle, got {t:?}"),
            ));
        }
        runs.push(ChangeRun {
            by_kind: by_kind(&d),
            total: total(&d),
            wall_s,
            updated_ado: t.updated_ado,
            updated_clickup: t.updated_clickup,
        });
        bed.quiesce().await?;
    }
    Ok(ChangeResult {
        links: bed.links.len(),
        ado_edits: e,
        clickup_edits: e,
        tag_edits: tags,
        floor: change_floor(e, tags, e),
        runs,
    })
}

/// Figure 6: cycles with `cost_changes` changes (half each side) around the process's rusage.
async fn cost_runs(bed: &mut Bed, sizes: &Sizes) -> Result<Vec<CostRun>, BenchError> {
    let c = sizes.cost_changes;
    let (ca, cc) = (c / 2, c - c / 2);
    let needed = sizes.cost_runs * c + 1;
    if bed.links.len() < needed {
        return Err(check(
            "figure 6",
            format!("needs {needed} links, the bed has {}", bed.links.len()),
        ));
    }
    // After figure 2's edits (when it shares the bed), start from the far end.
    let offset = bed.links.len() - needed;
    let mut runs = Vec::new();
    for run in 0..sizes.cost_runs {
        let chunk: Vec<(i64, String)> =
            bed.links[offset + run * c..offset + (run + 1) * c].to_vec();
        for (ado_id, _) in &chunk[..ca] {
            bed.retitle_item(*ado_id, format!("Story {ado_id}, cost run {run}"))?;
        }
        for (ado_id, cu) in &chunk[ca..] {
            bed.rename_task(
                cu,
                format!("Story {ado_id}, ClickUp cost run {run}"),
                "a ClickUp edit",
            )?;
        }
        let s0 = snapshot(&bed.stats);
        let before = Usage::now();
        let t0 = Instant::now();
        let r = bed.cycle().await?;
        let wall_s = t0.elapsed().as_secs_f64();
        let after = Usage::now();
        let t = r.tally();
        if t.updated_clickup != ca as u64 || t.updated_ado != cc as u64 {
            return Err(check(
                "figure 6",
                format!("expected {ca} + {cc} updates in one cycle, got {t:?}"),
            ));
        }
        runs.push(CostRun {
            changes: c,
            wall_s,
            requests: total(&delta(&s0, &snapshot(&bed.stats))),
            before,
            after,
        });
        bed.quiesce().await?;
    }
    Ok(runs)
}

/// Figure 3: `n` items on one side, an empty other side, cycles until all are linked. The
/// first ADO → ClickUp run also measures idle cycles right after (figure 1, supplement).
async fn initial_run(
    host: &SimHost,
    sizes: &Sizes,
    dir: Direction,
    idle_after: bool,
) -> Result<(InitialRun, Option<IdleAfterCreates>), BenchError> {
    let n = sizes.initial_items;
    let bed = Bed::start(
        host,
        BedSpec {
            max_creates: n + 10,
            overlap: sizes.overlap,
            ..BedSpec::default()
        },
    )
    .await?;
    seed_unlinked(&bed.tb, n, dir)?;
    let s0 = snapshot(&bed.stats);
    let t0 = Instant::now();
    let cycles = bed.sync_until_linked(n, 5).await?;
    let wall_s = t0.elapsed().as_secs_f64();
    let requests = total(&delta(&s0, &snapshot(&bed.stats)));
    let run = InitialRun {
        direction: dir.label().to_string(),
        items: n,
        wall_s,
        requests,
        cycles,
    };
    if !(idle_after && dir == Direction::AdoToClickUp) {
        return Ok((run, None));
    }
    // Idle cycles after the creates, with no edit since: what a team sees after switching
    // the sync on.
    bed.converge().await?;
    bed.catch_up_clocks();
    tokio::time::sleep(bed.settle).await;
    bed.cycle().await?;
    let mut requests = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..3 {
        let s0 = snapshot(&bed.stats);
        bed.cycle().await?;
        let d = delta(&s0, &snapshot(&bed.stats));
        requests.push(total(&d));
        pages.push(endpoint_count(&d, Side::ClickUp, "team.tasks"));
    }
    let updated: Vec<i64> = bed
        .tb
        .clickup
        .tasks()
        .iter()
        .map(|t| t.date_updated_ms())
        .collect();
    let newest = updated.iter().copied().max().unwrap_or(0);
    let within = |overlap: Duration| {
        let from = newest - overlap.as_millis() as i64;
        updated.iter().filter(|d| **d > from).count()
    };
    let in_default = within(EngineOptions::default().overlap);
    Ok((
        run,
        Some(IdleAfterCreates {
            creates: n,
            requests,
            pages,
            tasks_in_overlap: within(sizes.overlap),
            tasks_in_default_overlap: in_default,
            pages_with_default_overlap: ceil_div(in_default as u64, CLICKUP_PAGE).max(1),
        }),
    ))
}

/// Figure 4: ADO → ClickUp creates against a ClickUp limited to `rl_limit` per `rl_window`,
/// the client's limiter scaled to the same window.
async fn rate_run(
    host: &SimHost,
    sizes: &Sizes,
    n: usize,
    window: Duration,
) -> Result<RateRun, BenchError> {
    let times = Arc::new(CreateTimes::default());
    let bed = Bed::start(
        host,
        BedSpec {
            rate_limit: Some((sizes.rl_limit, window)),
            max_creates: n + 10,
            overlap: sizes.overlap,
            observer: Some(times.clone()),
            ..BedSpec::default()
        },
    )
    .await?;
    seed_unlinked(&bed.tb, n, Direction::AdoToClickUp)?;
    let s0 = snapshot(&bed.stats);
    let t0 = Instant::now();
    bed.sync_until_linked(n, 5).await?;
    let wall_s = t0.elapsed().as_secs_f64();
    let d = delta(&s0, &snapshot(&bed.stats));
    let clickup: Vec<(u16, u64)> = d
        .iter()
        .filter(|((s, _, _), _)| *s == Side::ClickUp)
        .map(|((_, _, st), n)| (*st, *n))
        .collect();
    let throttled: u64 = clickup
        .iter()
        .filter(|(st, _)| *st == 429)
        .map(|(_, n)| n)
        .sum();
    let accepted: u64 = clickup
        .iter()
        .filter(|(st, _)| *st != 429 && *st != 0)
        .map(|(_, n)| n)
        .sum();
    let window_s = window.as_secs_f64();
    let windows = (wall_s / window_s).max(1e-9);
    let mut t: Vec<Instant> = times.0.lock().map(|t| t.clone()).unwrap_or_default();
    t.sort();
    let steady = steady_fraction(&t, window, sizes.rl_limit);
    Ok(RateRun {
        creates: n,
        limit: sizes.rl_limit,
        window_s,
        wall_s,
        accepted,
        throttled,
        fraction: accepted as f64 / windows / f64::from(sizes.rl_limit),
        steady_fraction: steady.map(|s| s.0),
        steady_windows: steady.map(|s| s.1).unwrap_or(0),
    })
}

/// Creates per window / limit, scaled by window / period, over the complete windows between
/// the first and the last pause (a gap of more than a quarter window between two creates).
fn steady_fraction(times: &[Instant], window: Duration, limit: u32) -> Option<(f64, usize)> {
    let gap = window / 4;
    let starts: Vec<usize> = (1..times.len())
        .filter(|i| times[*i].duration_since(times[i - 1]) > gap)
        .collect();
    let (&a, &b) = (starts.first()?, starts.last()?);
    let periods = starts.len() - 1;
    if periods == 0 {
        return None;
    }
    let span = times[b].duration_since(times[a]).as_secs_f64();
    let per_window = (b - a) as f64 / periods as f64;
    let period = span / periods as f64;
    Some((
        per_window / f64::from(limit.max(1)) * window.as_secs_f64() / period.max(1e-9),
        periods,
    ))
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::Setup(format!("finding a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::Setup(format!("finding a free port: {e}")))
}

/// Figure 5: (a) the daemon at `webhook_interval` with ClickUp's signed webhooks registered,
/// one ClickUp edit at a time; (b) polling only at `poll_interval`, edits on both sides
/// staggered at random.
async fn latency_runs(
    host: &SimHost,
    sizes: &Sizes,
    progress: &dyn Fn(&str),
) -> Result<Vec<LatencyRun>, BenchError> {
    let mut out = Vec::new();
    for webhook in [true, false] {
        let mut bed = Bed::start(
            host,
            BedSpec {
                linked: sizes.latency_edits + 1,
                max_creates: 10,
                overlap: sizes.overlap,
                ..BedSpec::default()
            },
        )
        .await?;
        bed.sync_until_linked(sizes.latency_edits + 1, 3).await?;
        bed.quiesce().await?;
        let port = if webhook { free_port()? } else { 0 };
        let secret = format!("bench-{:016x}", rand::random::<u64>());
        let shutdown = CancellationToken::new();
        let (running, schedule) = service::start_daemon(
            bed.engine.clone(),
            DaemonOptions {
                schedule: ScheduleOptions {
                    poll_interval: if webhook {
                        sizes.webhook_interval
                    } else {
                        sizes.poll_interval
                    },
                    nudge_min_gap: sizes.nudge_min_gap,
                    ..ScheduleOptions::default()
                },
                sweep_interval: Duration::from_secs(24 * 3600),
                sweep_first: false,
                bind: "127.0.0.1".into(),
                port,
                webhook_secret: webhook.then(|| SecretString::from(secret)),
                public_url: webhook.then(|| format!("http://127.0.0.1:{port}")),
            },
            shutdown.clone(),
        )
        .await
        .map_err(Box::new)?;
        if webhook && bed.tb.clickup.webhooks().is_empty() {
            shutdown.cancel();
            return Err(check(
                "figure 5",
                "the daemon registered no ClickUp webhook",
            ));
        }
        let play = async {
            let mut runs = Vec::new();
            for run in 0..sizes.latency_runs {
                let r = if webhook {
                    latency_webhook(&bed, sizes, run).await?
                } else {
                    latency_poll(&bed, sizes, run).await?
                };
                let v = r.values(None);
                progress(&format!(
                    "  {}: p50 {:.3} s, p95 {:.3} s",
                    r.mode,
                    percentile(&v, 50.0),
                    percentile(&v, 95.0)
                ));
                runs.push(r);
                // Let the echo of the last writes pass before the next run.
                tokio::time::sleep(bed.settle).await;
            }
            Ok::<_, BenchError>(runs)
        };
        tokio::pin!(schedule);
        let played = tokio::select! {
            r = play => r,
            _ = &mut schedule => Err(check("figure 5", "the daemon's schedule stopped early")),
        };
        shutdown.cancel();
        let runs = played?;
        schedule.await;
        let _ = running.server.finished().await;
        out.extend(runs);
    }
    Ok(out)
}

async fn latency_webhook(bed: &Bed, sizes: &Sizes, run: usize) -> Result<LatencyRun, BenchError> {
    let mut samples = Vec::new();
    for (i, (ado_id, cu)) in bed.links[..sizes.latency_edits].iter().enumerate() {
        let title = format!("Story {ado_id}, webhook run {run} edit {i}");
        let t0 = Instant::now();
        bed.rename_task(cu, title.clone(), "a ClickUp edit")?;
        wait_until(
            "a ClickUp edit to reach ADO",
            Duration::from_secs(30),
            || bed.tb.ado.item(*ado_id).is_some_and(|w| w.title() == title),
        )
        .await?;
        samples.push(("ClickUp → ADO".to_string(), t0.elapsed().as_secs_f64()));
        // Edits arrive at random moments, never closer than the nudge gap (an edit within
        // the gap of the previous cycle's start waits for the rest of it).
        let jitter = sizes.nudge_min_gap.mul_f64(rand::random::<f64>());
        tokio::time::sleep(sizes.nudge_min_gap + jitter).await;
    }
    Ok(LatencyRun {
        mode: format!(
            "(a) webhook nudge, {} s poll interval",
            sizes.webhook_interval.as_secs()
        ),
        samples,
    })
}

async fn latency_poll(bed: &Bed, sizes: &Sizes, run: usize) -> Result<LatencyRun, BenchError> {
    struct Pending {
        i: usize,
        to_clickup: bool,
        title: String,
        at: Instant,
    }
    let n = sizes.latency_edits;
    let mut pending: Vec<Pending> = Vec::new();
    let mut samples: Vec<Option<(String, f64)>> = vec![None; n];
    let mut next = 0usize;
    // Edits spread over about three poll intervals, at random moments.
    let spacing = sizes.poll_interval.mul_f64(3.0 / n.max(1) as f64);
    let mut next_at = Instant::now();
    let limit = sizes.poll_interval * 4 + spacing * (2 * n as u32) + Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    loop {
        let now = Instant::now();
        if next < n && now >= next_at {
            let (ado_id, cu) = &bed.links[next];
            let to_clickup = next.is_multiple_of(2);
            let title = format!("Story {ado_id}, poll run {run} edit {next}");
            if to_clickup {
                bed.retitle_item(*ado_id, title.clone())?;
            } else {
                bed.rename_task(cu, title.clone(), "a ClickUp edit")?;
            }
            pending.push(Pending {
                i: next,
                to_clickup,
                title,
                at: Instant::now(),
            });
            next += 1;
            next_at = now + spacing.mul_f64(2.0 * rand::random::<f64>());
        }
        pending.retain(|p| {
            let (ado_id, cu) = &bed.links[p.i];
            let seen = if p.to_clickup {
                bed.tb.clickup.task(cu).is_some_and(|t| t.name() == p.title)
            } else {
                bed.tb
                    .ado
                    .item(*ado_id)
                    .is_some_and(|w| w.title() == p.title)
            };
            if seen {
                let dir = if p.to_clickup {
                    "ADO → ClickUp"
                } else {
                    "ClickUp → ADO"
                };
                samples[p.i] = Some((dir.to_string(), p.at.elapsed().as_secs_f64()));
            }
            !seen
        });
        if next == n && pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!("{} polled edits to propagate", pending.len()),
                secs: limit.as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(LatencyRun {
        mode: format!(
            "(b) polling only, {} s interval",
            num(sizes.poll_interval.as_secs_f64())
        ),
        samples: samples.into_iter().flatten().collect(),
    })
}

/// The description corpus: the project's fixtures and, when present, `../shared/`'s. ADO
/// fixtures are HTML already; ClickUp ones are converted to HTML once, outside the timing.
pub fn corpus() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/fixtures/convert"),
        root.join("../shared/fixtures/descriptions"),
    ] {
        for side in ["ado", "clickup"] {
            let Ok(entries) = std::fs::read_dir(dir.join(side)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
                let Ok(text) = std::fs::read_to_string(&f) else {
                    continue;
                };
                let html = match ext {
                    "html" => text,
                    "md" => markdown_to_html(&normalize_markdown(&text)),
                    _ => continue,
                };
                out.push((f.display().to_string(), html));
            }
        }
    }
    out
}

/// Figure 7.
fn convert_runs(sizes: &Sizes) -> Vec<ConvertRun> {
    let corpus = corpus();
    if corpus.is_empty() {
        return Vec::new();
    }
    let bytes_per_pass: u64 = corpus.iter().map(|(_, h)| h.len() as u64).sum();
    let mut runs = Vec::new();
    for _ in 0..sizes.convert_runs {
        let t0 = Instant::now();
        let mut descriptions = 0u64;
        let mut bytes = 0u64;
        while t0.elapsed() < sizes.convert_min_time {
            for (_, html) in &corpus {
                let md = html_to_markdown(html);
                let back = markdown_to_html(&md);
                std::hint::black_box(back);
                descriptions += 1;
            }
            bytes += bytes_per_pass;
        }
        runs.push(ConvertRun {
            fixtures: corpus.len(),
            descriptions,
            bytes,
            wall_s: t0.elapsed().as_secs_f64(),
        });
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

fn add(notes: &mut BTreeMap<u8, Vec<String>>, figure: u8, note: impl Into<String>) {
    notes.entry(figure).or_default().push(note.into());
}

fn build_rows(rep: &mut Report) {
    let s = rep.sizes.clone();
    let mut rows = Vec::new();
    let mut notes: BTreeMap<u8, Vec<String>> = BTreeMap::new();

    // Figure 1.
    for r in &rep.idle {
        rows.push(
            Row::new(
                1,
                format!("idle cycle, {}", plural(r.links, "link")),
                "requests",
                r.runs.iter().map(|x| x.requests as f64).collect(),
            )
            .target(Target::Exactly(2.0)),
        );
    }
    if let Some(a) = &rep.idle_after_creates {
        rows.push(Row::new(
            1,
            format!(
                "idle cycle right after an initial sync of {} creates",
                a.creates
            ),
            "requests",
            a.requests.iter().map(|v| *v as f64).collect(),
        ));
    }
    if !rep.idle.is_empty() {
        add(
            &mut notes,
            1,
            format!(
                "Overlap set to {} s (default 300 s) so that an idle cycle is reached by \
                 waiting: an idle cycle is exactly 1 WIQL + 1 ClickUp page only when nothing \
                 changed within the overlap. Metadata (types, states, statuses, members) is \
                 fetched by the first cycle and cached (default: 10 min, then 3-4 requests once); \
                 the bench keeps it for the run. Beds: both sides seeded with each other's \
                 back-link and the same content, linked by the first cycle; then a sentinel \
                 ClickUp edit after the overlap so that the ClickUp cursor's overlap window holds \
                 one task; the simulators' clocks are moved up to their last change stamps (their \
                 stamps are strictly increasing in ms, so bulk seeding runs them ahead).",
                num(s.overlap.as_secs_f64())
            ),
        );
    }
    for r in &rep.idle {
        for x in r.runs.iter().filter(|x| x.requests != 2) {
            add(
                &mut notes,
                1,
                format!(
                    "{}: a cycle of {} requests: {:?}.",
                    plural(r.links, "link"),
                    x.requests,
                    x.endpoints
                ),
            );
        }
        let wiql: Vec<u64> = r.runs.iter().map(|x| x.wiql).collect();
        let pages: Vec<u64> = r.runs.iter().map(|x| x.pages).collect();
        add(
            &mut notes,
            1,
            format!(
                "{}: WIQL {:?}, ClickUp pages {:?} per cycle; setup (seed both sides with \
             each other's back-link, link by marker, settle) {:.1} s.",
                plural(r.links, "link"),
                wiql,
                pages,
                r.setup_s
            ),
        );
    }
    if let Some(a) = &rep.idle_after_creates {
        add(
            &mut notes,
            1,
            format!(
            "Right after an initial sync of {} creates with no edit since, an idle cycle costs \
             {:?} requests ({:?} ClickUp pages): the ClickUp cursor is the newest `date_updated` \
             seen and every poll re-reads the tasks updated within the overlap before it ({} \
             tasks here at {} s). With the default 300 s overlap that is {} tasks, i.e. {} pages \
             per idle cycle, until a later edit moves the cursor.",
            a.creates,
            a.requests,
            a.pages,
            a.tasks_in_overlap,
            num(s.overlap.as_secs_f64()),
            a.tasks_in_default_overlap,
            a.pages_with_default_overlap
        ),
        );
    }

    // Figure 2.
    if let Some(c) = &rep.changes {
        let changed = (c.ado_edits + c.clickup_edits) as f64;
        let mut kinds: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
        for r in &c.runs {
            for k in r.by_kind.keys() {
                if !kinds.contains(k) {
                    kinds.push(k.clone());
                }
            }
        }
        for k in &kinds {
            let runs: Vec<f64> = c
                .runs
                .iter()
                .map(|r| r.by_kind.get(k).copied().unwrap_or(0) as f64)
                .collect();
            let floor = c.floor.get(k).copied();
            if runs.iter().all(|v| *v == 0.0) && floor.unwrap_or(0) == 0 {
                continue;
            }
            let mut row = Row::new(2, k.clone(), "requests", runs);
            if let Some(f) = floor {
                row = row.target(Target::Floor(f as f64));
            }
            rows.push(row);
        }
        let floor_total: u64 = c.floor.values().sum();
        rows.push(
            Row::new(
                2,
                format!(
                    "total, {} ADO + {} ClickUp edits",
                    c.ado_edits, c.clickup_edits
                ),
                "requests",
                c.runs.iter().map(|r| r.total as f64).collect(),
            )
            .target(Target::Floor(floor_total as f64)),
        );
        rows.push(
            Row::new(
                2,
                "per changed item",
                "requests",
                c.runs.iter().map(|r| r.total as f64 / changed).collect(),
            )
            .target(Target::Floor(floor_total as f64 / changed)),
        );
        rows.push(Row::new(
            2,
            "cycle wall time",
            "s",
            c.runs.iter().map(|r| r.wall_s).collect(),
        ));
        add(
            &mut notes,
            2,
            format!(
                "One cycle after {} ADO title edits ({} of which also add a tag) and {} ClickUp \
                 name edits on distinct links of a {}-link bed.",
                c.ado_edits, c.tag_edits, c.clickup_edits, c.links
            ),
        );
        add(
            &mut notes,
            2,
            "Floor: 1 WIQL per 19,999 changed ADO items; 1 ClickUp page per 100 changed tasks; \
             1 ADO batch read per 200 ADO items to merge (the edited ones and the counterparts \
             of edited tasks: WIQL returns ids only); 1 GET per counterpart task of an ADO edit \
             (ClickUp has no batch read by id); 1 write per item to change (ADO PATCH, ClickUp \
             PUT) and 1 tag call per added tag (Update Task ignores tags).",
        );
        add(
            &mut notes,
            2,
            "Above the floor, by design: a second GET of each ClickUp task just before it is \
             written (ClickUp has no conditional write, so the engine re-reads to narrow the \
             lost-update window), and a GET after tag calls (for the task's post-write \
             `date_updated`). A page above the floor comes from the overlap: the poll also \
             re-reads the task(s) updated within it before the cursor (quiet, not re-planned).",
        );
    }

    // Figure 3.
    for dir in [Direction::AdoToClickUp, Direction::ClickUpToAdo] {
        let runs: Vec<&InitialRun> = rep
            .initial
            .iter()
            .filter(|r| r.direction == dir.label())
            .collect();
        if runs.is_empty() {
            continue;
        }
        rows.push(Row::new(
            3,
            format!("{}, {} items", dir.label(), s.initial_items),
            "items/s",
            runs.iter().map(|r| r.items as f64 / r.wall_s).collect(),
        ));
        rows.push(Row::new(
            3,
            format!("{}, requests per item", dir.label()),
            "requests",
            runs.iter()
                .map(|r| r.requests as f64 / r.items as f64)
                .collect(),
        ));
    }
    if !rep.initial.is_empty() {
        add(
            &mut notes,
            3,
            "Wall time from the first cycle until every item is linked (the engine's default \
             concurrency: 4 requests in flight per side; the store is a SQLite file in the temp \
             folder, WAL, synchronous=FULL). Each create commits 5 store transactions (intent, \
             link, create audit, back-link audit, base), all on the one store thread; ClickUp → \
             ADO also sets the task's link field and re-reads the task.",
        );
    }

    // Figure 4.
    let main: Vec<&RateRun> = rep
        .rate
        .iter()
        .filter(|r| r.window_s == s.rl_window.as_secs_f64() && r.creates == s.rl_creates)
        .collect();
    let checks: Vec<&RateRun> = rep
        .rate
        .iter()
        .filter(|r| !(r.window_s == s.rl_window.as_secs_f64() && r.creates == s.rl_creates))
        .collect();
    if !main.is_empty() {
        let w = num(s.rl_window.as_secs_f64());
        rows.push(
            Row::new(
                4,
                format!(
                    "achieved requests per window / limit ({} creates, {} per {w} s)",
                    s.rl_creates, s.rl_limit
                ),
                "fraction",
                main.iter().map(|r| r.fraction).collect(),
            )
            .target(Target::AtLeast(0.95)),
        );
        let steady: Vec<f64> = main.iter().filter_map(|r| r.steady_fraction).collect();
        if !steady.is_empty() {
            rows.push(Row::new(
                4,
                format!("the same, steady state (complete {w} s windows)"),
                "fraction",
                steady,
            ));
        }
        rows.push(
            Row::new(
                4,
                "429 answers received",
                "count",
                main.iter().map(|r| r.throttled as f64).collect(),
            )
            .target(Target::AtMost(0.0)),
        );
        rows.push(Row::new(
            4,
            format!("time for {} creates", s.rl_creates),
            "s",
            main.iter().map(|r| r.wall_s).collect(),
        ));
    }
    for c in &checks {
        let w = num(c.window_s);
        rows.push(Row::new(
            4,
            format!(
                "check: steady state at a {w} s window ({} creates, {} per {w} s, {} windows)",
                c.creates, c.limit, c.steady_windows
            ),
            "fraction",
            vec![c.steady_fraction.unwrap_or(c.fraction)],
        ));
        rows.push(Row::new(
            4,
            format!("check: 429 answers at a {w} s window"),
            "count",
            vec![c.throttled as f64],
        ));
    }
    if !rep.rate.is_empty() {
        add(
            &mut notes,
            4,
            format!(
                "The ClickUp simulator allows {} requests per {} s window (a fixed window starting \
                 at the first request, as ClickUp's per-minute one; the {} s window stands for 60 \
                 s); the client's limiter is scaled to the same window (`HttpPolicy.rate_window`). \
                 Fraction = accepted ClickUp requests / (wall time / window) / limit, over the \
                 whole create cycle (its last window is partly used, so this reads slightly low \
                 or high by up to one window in the run). Steady state: creates per complete \
                 window over the time from one window's start to the next, a window starting \
                 where the client resumes after a pause.",
                s.rl_limit,
                num(s.rl_window.as_secs_f64()),
                num(s.rl_window.as_secs_f64())
            ),
        );
    }

    // Figure 5.
    let modes: Vec<String> = {
        let mut m: Vec<String> = rep.latency.iter().map(|r| r.mode.clone()).collect();
        m.dedup();
        m
    };
    for mode in &modes {
        let runs: Vec<&LatencyRun> = rep.latency.iter().filter(|r| &r.mode == mode).collect();
        let mut dirs: Vec<Option<&str>> = vec![None];
        if runs
            .iter()
            .flat_map(|r| r.samples.iter())
            .any(|(d, _)| d == "ADO → ClickUp")
        {
            dirs.extend([Some("ADO → ClickUp"), Some("ClickUp → ADO")]);
        }
        for dir in dirs {
            for p in [50.0, 95.0] {
                let v: Vec<f64> = runs.iter().map(|r| percentile(&r.values(dir), p)).collect();
                let n: usize = runs.iter().map(|r| r.values(dir).len()).max().unwrap_or(0);
                rows.push(Row::new(
                    5,
                    format!(
                        "{mode}{}: p{} over {n} edits",
                        dir.map(|d| format!(", {d}")).unwrap_or_default(),
                        p as u32
                    ),
                    "s",
                    v,
                ));
            }
        }
    }
    if !rep.latency.is_empty() {
        add(
            &mut notes,
            5,
            format!(
                "Edit made through the simulator's UI hook → value visible in the other \
                 simulator, polled every 2 ms, through the real daemon (`service::start_daemon`: \
                 scheduler, HTTP server, webhook verification). (a): ClickUp sends a signed \
                 webhook per edit to the daemon's `/api/webhook/clickup`, which nudges a cycle; \
                 one edit at a time, each at least the nudge gap ({} ms here, default 2 s) plus a \
                 random part after the previous one; ADO has no webhook here, so ADO edits would \
                 wait for the poll. (b): no webhook; edits alternate between ADO and ClickUp at \
                 random moments, several in flight.{}",
                s.nudge_min_gap.as_millis(),
                if s.quick {
                    " --quick: the polling interval is scaled down to 0.5 s."
                } else {
                    ""
                }
            ),
        );
    }

    // Figure 6.
    let cpu = |r: &CostRun| r.after.cpu_s - r.before.cpu_s;
    let sim = |r: &CostRun| r.after.sim_cpu_s - r.before.sim_cpu_s;
    for (label, runs) in [
        (
            format!("idle cycle, {} links", s.cost_links),
            &rep.cost_idle,
        ),
        (
            format!(
                "cycle with {} changes, {} links",
                s.cost_changes, s.cost_links
            ),
            &rep.cost_changes,
        ),
    ] {
        if runs.is_empty() {
            continue;
        }
        rows.push(Row::new(
            6,
            format!("{label}: CPU time, whole process"),
            "ms",
            runs.iter().map(|r| cpu(r) * 1000.0).collect(),
        ));
        rows.push(Row::new(
            6,
            format!("{label}: CPU time, engine + store (process minus simulator threads)"),
            "ms",
            runs.iter().map(|r| (cpu(r) - sim(r)) * 1000.0).collect(),
        ));
        rows.push(Row::new(
            6,
            format!("{label}: wall time"),
            "ms",
            runs.iter().map(|r| r.wall_s * 1000.0).collect(),
        ));
        rows.push(Row::new(
            6,
            format!("{label}: peak RSS of the process after the cycle"),
            "MiB",
            runs.iter()
                .map(|r| r.after.maxrss_kib as f64 / 1024.0)
                .collect(),
        ));
        rows.push(Row::new(
            6,
            format!("{label}: growth of the process's RSS during the cycle"),
            "MiB",
            runs.iter()
                .map(|r| (r.after.rss_kib - r.before.rss_kib) as f64 / 1024.0)
                .collect(),
        ));
    }
    if !rep.cost_idle.is_empty() {
        add(
            &mut notes,
            6,
            "CPU = user + system time from getrusage(RUSAGE_SELF) around the cycle: the whole \
             process, i.e. the engine, its SQLite store thread AND both simulators (which scan \
             every item on each query). The engine + store row subtracts the simulators' \
             threads (named bench-sim, from /proc/self/task/*/schedstat). Peak RSS (ru_maxrss) \
             is process-wide and a high-water mark: it includes both simulators holding every \
             item and the earlier setup, so it bounds the engine's memory from above; the RSS \
             growth row is VmRSS after minus before the cycle.",
        );
    }

    // Figure 7.
    if let Some(first) = rep.convert.first() {
        rows.push(Row::new(
            7,
            format!(
                "descriptions per second, {} fixtures (HTML → Markdown → HTML)",
                first.fixtures
            ),
            "descr./s",
            rep.convert
                .iter()
                .map(|r| r.descriptions as f64 / r.wall_s)
                .collect(),
        ));
        rows.push(Row::new(
            7,
            "HTML converted per second",
            "MiB/s",
            rep.convert
                .iter()
                .map(|r| r.bytes as f64 / r.wall_s / 1024.0 / 1024.0)
                .collect(),
        ));
        add(
            &mut notes,
            7,
            "One thread. The corpus: tests/fixtures/convert and ../shared/fixtures/descriptions \
             (when present); ClickUp Markdown fixtures are turned into HTML once, outside the \
             timing; each description then goes html_to_markdown → markdown_to_html.",
        );
    } else if s.figures.contains(&7) {
        add(&mut notes, 7, "No fixture corpus found: figure 7 skipped.");
    }

    rep.rows = rows;
    rep.notes = notes;
}
