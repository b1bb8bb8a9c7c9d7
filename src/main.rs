//! The command-line front end: argument parsing, logging set-up, exit codes and the
//! human-readable output of each command. The work itself lives in the library.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (check failed, service
//! unhealthy, unknown conflict...); 2 bad input (usage, config or seed file) or a command
//! that is not implemented yet.
use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, TimeZone as _, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use ado_clickup_sync::ado::{AdoClient, AdoState, AdoWorkItemType};
use ado_clickup_sync::bench;
use ado_clickup_sync::clickup::{ClickUpClient, ClickUpList};
use ado_clickup_sync::config::{self, Config, LogFormat, PairConfig};
use ado_clickup_sync::core::mapping::MappingIssue;
use ado_clickup_sync::core::mapping::{
    AdoStateInfo, ClickUpStatusInfo, Mapper, MappingContext, UserDirectory,
};
use ado_clickup_sync::core::model::{AdoStateCategory, ClickUpStatusType, Side};
use ado_clickup_sync::core::plan::Plan;
use ado_clickup_sync::daemon;
use ado_clickup_sync::demo::{self, DemoOptions};
use ado_clickup_sync::engine::{plan_table, ActionRow, CycleRequest, EngineError, Mode, Observer};
use ado_clickup_sync::remote::{ApiError, ApiStats};
use ado_clickup_sync::service::{self, DaemonOptions};
use ado_clickup_sync::sim::ado::{self as adosim, AdoSeed};
use ado_clickup_sync::sim::clickup::{self as cusim, ClickUpSeed};
use ado_clickup_sync::sim::testbed;
use ado_clickup_sync::store::{
    Conflict, ConflictId, CycleRecord, DbLocation, Resolution, StatusSummary, Store,
};

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Two-way sync between Azure DevOps work items and ClickUp tasks.
#[derive(Debug, Parser)]
#[command(name = "ado-clickup-sync", version, about, long_about = None)]
struct Cli {
    /// Config file layered over config/default.toml (default: config/local.toml when it
    /// exists). Secrets never go in it: see config/default.toml.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// What to do (default: run).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The daemon: a sweep at start, then a cycle every poll_interval (the default).
    Run,
    /// One sync cycle.
    Sync(SyncArgs),
    /// Links, pending intents, retries, open conflicts, last cycles and cursors.
    Status(StatusArgs),
    /// List open conflicts, or resolve one.
    Conflicts(ConflictsArgs),
    /// Validate the config and credentials; show ADO states and ClickUp statuses and flag the
    /// unmapped ones.
    Check,
    /// A self-contained demonstration against in-process simulators.
    Demo(DemoArgs),
    /// Run both API simulators standalone (JSON control API under /__sim/).
    Sim(SimArgs),
    /// Exit 0 when URL answers HTTP 200 (the Docker HEALTHCHECK).
    Health(HealthArgs),
    /// The benchmark harness.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct SyncArgs {
    /// Run one cycle and exit.
    #[arg(long)]
    once: bool,
    /// Print the plan and write nothing anywhere.
    #[arg(long)]
    dry_run: bool,
    /// Only this pair.
    #[arg(long, value_name = "NAME")]
    pair: Option<String>,
    /// Run even when the cycle would exceed the create/unlink limits.
    #[arg(long)]
    force: bool,
    /// A full sweep instead of an incremental cycle.
    #[arg(long)]
    sweep: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConflictsArgs {
    #[command(subcommand)]
    action: Option<ConflictsAction>,
    /// Only this pair's conflicts (when listing).
    #[arg(long, value_name = "NAME")]
    pair: Option<String>,
    /// List as JSON, with the values in full.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ConflictsAction {
    /// Resolve one open conflict; the chosen value is written in the next cycle.
    Resolve {
        /// The conflict id (see `conflicts`).
        id: ConflictId,
        /// Whose value wins.
        #[arg(long, value_enum)]
        take: TakeSide,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TakeSide {
    Ado,
    Clickup,
}

impl TakeSide {
    fn side(self) -> Side {
        match self {
            TakeSide::Ado => Side::Ado,
            TakeSide::Clickup => Side::ClickUp,
        }
    }
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Keep the simulators and the daemon running after the script.
    #[arg(long)]
    keep_running: bool,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Port of the ADO simulator on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 7001)]
    ado_port: u16,
    /// Port of the ClickUp simulator on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 7002)]
    clickup_port: u16,
    /// JSON file {"ado": <AdoSeed>, "clickup": <ClickUpSeed>} (either key optional) loaded
    /// into the simulators at start.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Requests per minute the ClickUp simulator allows per token (the real default: 100).
    #[arg(long, default_value_t = 100)]
    clickup_rate_limit: u32,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// The URL to GET [default: http://127.0.0.1:<server.port>/api/health, the port from the
    /// configuration, so that a changed port needs no change to the container's health check].
    #[arg(long)]
    url: Option<String>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// A short run.
    #[arg(long)]
    quick: bool,
    /// Where to write the results.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Entry point, exit codes, logging
// ---------------------------------------------------------------------------------------------

/// Bad input (a config or seed file, an argument): exit code 2 instead of 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InputError(String);

fn input_error(message: impl Display) -> anyhow::Error {
    anyhow::Error::new(InputError(message.to_string()))
}

const EXIT_PROBLEM: u8 = 1;
const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    // Crash-safety tests configure failpoints through the FAILPOINTS variable.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_PROBLEM);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            if e.chain().any(|c| c.is::<InputError>()) {
                ExitCode::from(EXIT_INPUT)
            } else {
                ExitCode::from(EXIT_PROBLEM)
            }
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message
/// before it already ends with (library errors print their source in their own message).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// What every command may need: the global options.
struct Ctx {
    config_path: Option<PathBuf>,
}

impl Ctx {
    /// Loads and validates the configuration, then starts logging as it says (RUST_LOG, when
    /// set, wins over `log_level`).
    fn config(&self) -> Result<Config> {
        let sources = config::Sources::standard(self.config_path.as_deref());
        let cfg = config::load(&sources)
            .map_err(|e| input_error(format!("loading the configuration: {e}")))?;
        init_logging(Some((&cfg.log_level, "log_level")), cfg.log_format)?;
        Ok(cfg)
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        config_path: cli.config,
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => cmd_run(&ctx).await,
        Command::Sync(args) => cmd_sync(&ctx, args).await,
        Command::Status(args) => cmd_status(&ctx, args).await,
        Command::Conflicts(args) => cmd_conflicts(&ctx, args).await,
        Command::Check => cmd_check(&ctx).await,
        Command::Demo(args) => cmd_demo(&ctx, args).await,
        Command::Sim(args) => {
            init_logging_without_config()?;
            cmd_sim(args).await
        }
        Command::Health(args) => {
            init_logging_without_config()?;
            cmd_health(&ctx, args).await
        }
        Command::Bench(args) => cmd_bench(&ctx, args).await,
    }
}

/// For commands that need no config: RUST_LOG, else LOG_LEVEL, else `info`; text format.
fn init_logging_without_config() -> Result<()> {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    match level {
        Some(l) => init_logging(Some((&l, "LOG_LEVEL")), LogFormat::Text),
        None => init_logging(None, LogFormat::Text),
    }
}

/// Logs go to stderr. `level` is the configured filter and where it came from (for errors).
fn init_logging(level: Option<(&str, &str)>, format: LogFormat) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match (&rust_log, level) {
        (Some(spec), _) => EnvFilter::try_new(spec.trim())
            .map_err(|e| input_error(format!("RUST_LOG={spec:?} is not a valid filter: {e}")))?,
        (None, Some((spec, key))) => level_filter(spec, key)?,
        (None, None) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (never expected) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// A level name, or a full filter directive (`info,ado_clickup_sync=debug`).
fn level_filter(spec: &str, key: &str) -> Result<tracing_subscriber::EnvFilter> {
    let s = spec.trim();
    let plain = ["off", "error", "warn", "info", "debug", "trace"];
    let directive = s.contains('=') || s.contains(',');
    if !directive && !plain.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(input_error(format!(
            "{key} = {s:?} is not a log level; use one of error, warn, info, debug, trace \
             (or a filter such as \"info,ado_clickup_sync=debug\")"
        )));
    }
    tracing_subscriber::EnvFilter::try_new(s.to_ascii_lowercase())
        .map_err(|e| input_error(format!("{key} = {s:?} is not a valid log filter: {e}")))
}

// ---------------------------------------------------------------------------------------------
// run, sync, demo, bench (to be implemented)
// ---------------------------------------------------------------------------------------------

async fn cmd_run(ctx: &Ctx) -> Result<ExitCode> {
    let cfg = ctx.config()?;
    // Signals first: one arriving during start-up must still stop us cleanly.
    let shutdown = CancellationToken::new();
    let _signals = daemon::cancel_on_signal(shutdown.clone())
        .context("installing the SIGTERM/SIGINT handlers")?;
    // A ClickUp outage at start must not stop the daemon: it retries in its cycles.
    let engine = tokio::select! {
        e = service::engine(&cfg, service::LinkFieldLookup::NowOrInCycles) => {
            Arc::new(e.map_err(service_error)?)
        }
        () = shutdown.cancelled() => {
            tracing::info!("stopped during start-up");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (running, schedule) =
        service::start_daemon(engine, DaemonOptions::from_config(&cfg), shutdown.clone())
            .await
            .context("starting the daemon")?;
    tracing::info!(
        addr = %running.addr,
        poll_interval = ?cfg.poll_interval,
        pairs = cfg.pairs.len(),
        "ado-clickup-sync running"
    );
    let report = schedule.await;
    running
        .server
        .finished()
        .await
        .context("stopping the HTTP server")?;
    tracing::info!(
        cycles = report.cycles,
        abandoned_in_flight = report.abandoned_in_flight,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// A configuration problem found while wiring the engine (a missing token, an unknown link
/// field) is bad input, exit code 2; anything else is a failure to start.
fn service_error(e: service::ServiceError) -> anyhow::Error {
    match e {
        service::ServiceError::Config(_)
        | service::ServiceError::LinkField(ado_clickup_sync::clickup::LinkFieldError::NotFound {
            ..
        }) => input_error(e),
        other => anyhow::Error::new(other).context("starting the sync engine"),
    }
}

/// Shows a progress bar on a terminal when a plan has more than 50 actions.
#[derive(Default)]
struct Progress {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Observer for Progress {
    fn planned(&self, pair: &str, plan: &Plan) {
        let n = plan.actions.len() as u64;
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        if n > 50 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let b = indicatif::ProgressBar::new(n);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} actions ({eta} left)",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(pair.to_string());
            *bar = Some(b);
        }
    }
    fn applied(&self, _pair: &str, _row: &ActionRow, _outcome: Result<(), &str>) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(1);
        }
    }
}

async fn cmd_sync(ctx: &Ctx, args: SyncArgs) -> Result<ExitCode> {
    let cfg = ctx.config()?;
    let progress = Arc::new(Progress::default());
    let engine = service::engine(&cfg, service::LinkFieldLookup::Now)
        .await
        .map_err(service_error)?
        .with_observer(progress.clone());
    let req = CycleRequest {
        mode: if args.sweep {
            Mode::Sweep
        } else {
            Mode::Incremental
        },
        dry_run: args.dry_run,
        pair: args.pair.clone(),
        force: args.force,
    };
    let shutdown = CancellationToken::new();
    let _signals = daemon::cancel_on_signal(shutdown.clone())
        .context("installing the SIGTERM/SIGINT handlers")?;
    let report = engine.cycle(&req, &shutdown).await.map_err(|e| match e {
        EngineError::UnknownPair { .. } => input_error(e),
        other => anyhow::Error::new(other).context("running the sync cycle"),
    })?;
    if let Some(b) = progress
        .bar
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        b.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        writeln!(out, "Dry run: nothing was written.")?;
        write!(out, "{}", plan_table(&report.pairs))?;
    }
    for p in &report.pairs {
        let t = &p.tally;
        if !args.dry_run {
            writeln!(
                out,
                "{}: created {} in ADO and {} in ClickUp, updated {} in ADO and {} in ClickUp, \
                 linked {}, unlinked {}, {} conflicts, {} failed (queued for retry), {} pending \
                 creates recovered",
                p.pair,
                t.created_ado,
                t.created_clickup,
                t.updated_ado,
                t.updated_clickup,
                t.linked,
                t.unlinked,
                t.conflicts,
                t.failed,
                t.recovered
            )?;
        }
        for (item, why) in &p.failures {
            writeln!(out, "  failed: {item}: {why}")?;
        }
        for issue in &p.issues {
            writeln!(out, "  note: {}", describe_issue(issue))?;
        }
        if let Some(e) = &p.error {
            writeln!(out, "  error: {e}")?;
        }
    }
    writeln!(
        out,
        "{} API requests; {} open conflicts; {} pending creates",
        report.api_requests, report.open_conflicts, report.pending_intents
    )?;
    Ok(if report.error().is_some() {
        ExitCode::from(EXIT_PROBLEM)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe_issue(i: &MappingIssue) -> String {
    match i {
        MappingIssue::UnmappedStatus { side, item, value } => {
            format!("{item}: {side} status {value:?} is not mapped (add it to the pair's status map)")
        }
        MappingIssue::StatusNotWritable {
            side,
            item,
            canonical,
        } => format!("{item}: no {side} status corresponds to {canonical:?}; status not written"),
        MappingIssue::UnknownUser { side, item, email } => format!(
            "{item}: {email} (from {side}) has no counterpart on the other side; left unassigned there"
        ),
        MappingIssue::UnmappedPriority { item, value } => {
            format!("{item}: ADO priority {value} is not in the priority map")
        }
        MappingIssue::Backlink { item, reason, .. } => format!("{item}: {reason}"),
    }
}

async fn cmd_demo(_ctx: &Ctx, args: DemoArgs) -> Result<ExitCode> {
    if std::env::var("RUST_LOG").map_or(true, |v| v.trim().is_empty()) {
        // The demo prints its own account; only problems go to the log.
        init_logging(Some(("warn", "LOG_LEVEL")), LogFormat::Text)?;
    } else {
        init_logging_without_config()?;
    }
    let opts = DemoOptions {
        keep_running: args.keep_running,
        port: if args.keep_running { 8080 } else { 0 },
        ..DemoOptions::default()
    };
    match demo::run(opts).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_PROBLEM))
        }
    }
}

async fn cmd_bench(_ctx: &Ctx, args: BenchArgs) -> Result<ExitCode> {
    if std::env::var("RUST_LOG").map_or(true, |v| v.trim().is_empty()) {
        // The bench prints its own progress; only problems go to the log.
        init_logging(Some(("warn", "LOG_LEVEL")), LogFormat::Text)?;
    } else {
        init_logging_without_config()?;
    }
    let sizes = if args.quick {
        bench::Sizes::quick()
    } else {
        bench::Sizes::full()
    };
    if cfg!(debug_assertions) && !args.quick {
        eprintln!("note: a debug build; the figures are meant for `cargo run --release -- bench`");
    }
    let out = args.out.unwrap_or_else(|| PathBuf::from("target/bench"));
    let progress = |s: &str| eprintln!("[bench] {s}");
    let report = match bench::run(&sizes, &progress).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_PROBLEM));
        }
    };
    let md = report.markdown();
    println!("{md}");
    let (md_path, json_path) = report.write(&out)?;
    println!("Written: {} and {}", md_path.display(), json_path.display());
    for r in report.missed() {
        println!(
            "target missed: figure {}, {}: median {}, min {}, max {} {} (target {})",
            r.figure,
            r.metric,
            bench::num(r.median),
            bench::num(r.min),
            bench::num(r.max),
            r.unit,
            r.target.as_ref().map(|t| t.describe()).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// sim
// ---------------------------------------------------------------------------------------------

/// The `--seed` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    ado: Option<AdoSeed>,
    #[serde(default)]
    clickup: Option<ClickUpSeed>,
}

fn read_seed(path: &Path) -> Result<SeedFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| input_error(format!("reading seed file {}: {e}", path.display())))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let seed: SeedFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        let at = if at == "." {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        input_error(format!(
            "seed file {}{at}: {inner} (expected {{\"ado\": <AdoSeed>, \"clickup\": \
             <ClickUpSeed>}}, see the docs of src/sim/ado/mod.rs and src/sim/clickup/state.rs)",
            path.display()
        ))
    })?;
    de.end().map_err(|e| {
        input_error(format!(
            "seed file {}: {e} (trailing data after the JSON object)",
            path.display()
        ))
    })?;
    Ok(seed)
}

async fn cmd_sim(args: SimArgs) -> Result<ExitCode> {
    let seed = match &args.seed {
        Some(p) => Some((p, read_seed(p)?)),
        None => None,
    };
    // Handlers first: a signal sent as soon as the URLs are printed must not kill the process.
    let stop = CancellationToken::new();
    let signals =
        daemon::cancel_on_signal(stop.clone()).context("installing the SIGINT/SIGTERM handlers")?;

    // The same people on both sides (emails match), as in `demo` and the tests.
    let ado = adosim::start(testbed::ado_options(args.ado_port))
        .await
        .context("starting the ADO simulator")?;
    let clickup = cusim::start(testbed::clickup_options(
        args.clickup_port,
        cusim::RateLimit {
            limit: args.clickup_rate_limit,
            window: Duration::from_secs(60),
        },
    ))
    .await
    .context("starting the ClickUp simulator")?;

    if let Some((path, seed)) = seed {
        if let Some(s) = seed.ado {
            let n = s.work_items.len();
            ado.seed(s).map_err(|e| {
                input_error(format!(
                    "seed file {}: the ADO simulator refused its \"ado\" part: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(work_items = n, "seeded the ADO simulator");
        }
        if let Some(s) = seed.clickup {
            let n = s.tasks.len();
            clickup.seed(s).map_err(|e| {
                input_error(format!(
                    "seed file {}: the ClickUp simulator refused its \"clickup\" part: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(tasks = n, "seeded the ClickUp simulator");
        }
    }

    let a = ado.options();
    let c = clickup.options();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ADO simulator: base_url={} organization={} project={} pat={}",
        ado.base_url(),
        a.org,
        a.project,
        a.pat
    )
    .and_then(|_| {
        writeln!(
            out,
            "ClickUp simulator: base_url={} team_id={} token={}",
            clickup.base_url(),
            c.team_id,
            c.token
        )
    })
    .and_then(|_| out.flush())
    .context("writing the simulator addresses to stdout")?;
    drop(out);
    tracing::info!("simulators running; stop with SIGINT or SIGTERM");

    stop.cancelled().await;
    clickup.shutdown().await;
    ado.shutdown().await;
    signals.abort();
    tracing::info!("simulators stopped");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------------------------

/// Only 0 or 1: Docker reserves exit code 2 of a HEALTHCHECK.
async fn cmd_health(ctx: &Ctx, args: HealthArgs) -> Result<ExitCode> {
    let unhealthy = |why: String| {
        eprintln!("unhealthy: {why}");
        Ok(ExitCode::from(EXIT_PROBLEM))
    };
    let text = match args.url {
        Some(u) => u,
        None => match config::load(&config::Sources::standard(ctx.config_path.as_deref())) {
            Ok(cfg) => format!("http://127.0.0.1:{}/api/health", cfg.server.port),
            Err(e) => {
                return unhealthy(format!(
                    "no --url given and the configuration does not load: {e}"
                ))
            }
        },
    };
    let url = match url::Url::parse(text.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        Ok(u) => return unhealthy(format!("{} is not an http(s) URL", u.scheme())),
        Err(e) => return unhealthy(format!("{text:?} is not a valid URL: {e}")),
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return unhealthy(format!("cannot build the HTTP client: {e}")),
    };
    match client.get(url.clone()).send().await {
        Ok(resp) if resp.status() == reqwest::StatusCode::OK => {
            println!("healthy: {url} answered HTTP 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let body = shorten(body.trim(), 300);
            let body = if body.is_empty() {
                String::new()
            } else {
                format!(": {body}")
            };
            unhealthy(format!("{url} answered HTTP {status}{body}"))
        }
        Err(e) if e.is_timeout() => unhealthy(format!("{url} did not answer within 5 s")),
        Err(e) => unhealthy(format!("GET {url} failed: {}", error_chain(&e))),
    }
}

/// An error with its sources (reqwest's Display alone hides "connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

/// What `check` found: problems fail it, warnings are shown.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Findings {
    fn problem(&mut self, p: impl Into<String>) {
        let p = p.into();
        println!("    PROBLEM: {p}");
        self.problems.push(p);
    }
    fn warning(&mut self, w: impl Into<String>) {
        let w = w.into();
        if self.warnings.contains(&w) {
            return;
        }
        println!("    warning: {w}");
        self.warnings.push(w);
    }
}

/// Fewer and shorter retries than the daemon: `check` is interactive.
fn check_policy(p: &mut ado_clickup_sync::remote::HttpPolicy) {
    p.max_retries = 1;
    p.backoff_min = Duration::from_millis(200);
    p.backoff_max = Duration::from_secs(1);
    p.max_rate_limit_wait = Duration::from_secs(10);
}

fn api_hint(e: &ApiError, side: Side) -> &'static str {
    match (e, side) {
        (ApiError::Auth { .. }, Side::Ado) => {
            " (check ADO_PAT: valid, not expired, scope Work Items Read & write)"
        }
        (ApiError::Auth { .. }, Side::ClickUp) => {
            " (check CLICKUP_API_TOKEN: a personal token pk_…, sent without \"Bearer\")"
        }
        (ApiError::Transient { .. }, Side::Ado) => " (check ado.base_url and the network)",
        (ApiError::Transient { .. }, Side::ClickUp) => " (check clickup.base_url and the network)",
        _ => "",
    }
}

async fn cmd_check(ctx: &Ctx) -> Result<ExitCode> {
    let cfg = ctx.config()?;
    let mut f = Findings::default();
    let names: Vec<&str> = cfg.pairs.iter().map(|p| p.name.as_str()).collect();
    println!(
        "Configuration: valid; {} pair(s): {}",
        names.len(),
        names.join(", ")
    );
    match DbLocation::parse(&cfg.database_url) {
        Ok(loc) => println!("  database: {loc}"),
        Err(e) => f.problem(format!("database_url: {e}")),
    }

    // ---- ADO ----
    println!();
    println!(
        "Azure DevOps: {} organization {:?}, project {:?}",
        cfg.ado.base_url, cfg.ado.organization, cfg.ado.project
    );
    let ado_types = check_ado_auth(&cfg, &mut f).await;

    // ---- ClickUp ----
    println!();
    println!(
        "ClickUp: {} workspace {:?}",
        cfg.clickup.base_url, cfg.clickup.workspace_id
    );
    let clickup = check_clickup_auth(&cfg, &mut f).await;

    // ---- pairs ----
    for pair in &cfg.pairs {
        println!();
        println!("Pair {:?}", pair.name);
        let status = &pair.mapping.status;
        println!(
            "  status map: {} row(s); fallback by ADO state category / ClickUp status type: {}",
            status.map.len(),
            if status.fallback { "on" } else { "off" }
        );
        let scope = match &ado_types {
            Some((client, types)) => Some(check_pair_ado(pair, client, types, &mut f).await),
            None => {
                println!("  ADO: skipped (see the ADO problem above)");
                None
            }
        };
        let lists = match &clickup {
            Some(client) => Some(check_pair_clickup(&cfg, pair, client, &mut f).await),
            None => {
                println!("  ClickUp: skipped (see the ClickUp problem above)");
                None
            }
        };
        if let (Some(types), Some(lists)) = (&scope, &lists) {
            println!("  status writes (what one side reads, the other must be able to write):");
            let before = (f.problems.len(), f.warnings.len());
            check_pair_writes(pair, types, lists, &mut f);
            if (f.problems.len(), f.warnings.len()) == before {
                println!("    OK");
            }
        }
    }

    println!();
    let verdict = if f.problems.is_empty() {
        "check passed: no problems".to_string()
    } else {
        format!("check FAILED: {} problem(s)", f.problems.len())
    };
    println!("{verdict}, {} warning(s)", f.warnings.len());
    for p in &f.problems {
        println!("  problem: {p}");
    }
    for w in &f.warnings {
        println!("  warning: {w}");
    }
    Ok(if f.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    })
}

/// Authenticates against ADO by listing the project's work item types.
async fn check_ado_auth(
    cfg: &Config,
    f: &mut Findings,
) -> Option<(AdoClient, Vec<AdoWorkItemType>)> {
    let mut client_cfg = match cfg.ado_client_config() {
        Ok(c) => c,
        Err(e) => {
            f.problem(format!("ADO: {e}"));
            return None;
        }
    };
    check_policy(&mut client_cfg.policy);
    let client = match AdoClient::new(client_cfg, ApiStats::new()) {
        Ok(c) => c,
        Err(e) => {
            f.problem(format!("ADO: {e}"));
            return None;
        }
    };
    match client.work_item_types().await {
        Ok(types) => {
            let names: Vec<&str> = types
                .iter()
                .filter(|t| !t.is_disabled)
                .map(|t| t.name.as_str())
                .collect();
            println!(
                "  authentication: OK; {} work item type(s): {}",
                names.len(),
                names.join(", ")
            );
            Some((client, types))
        }
        Err(e) => {
            f.problem(format!("ADO: {e}{}", api_hint(&e, Side::Ado)));
            None
        }
    }
}

/// Verifies the ClickUp token and that it sees the workspace.
async fn check_clickup_auth(cfg: &Config, f: &mut Findings) -> Option<ClickUpClient> {
    let mut client_cfg = match cfg.clickup_client_config() {
        Ok(c) => c,
        Err(e) => {
            f.problem(format!("ClickUp: {e}"));
            return None;
        }
    };
    check_policy(&mut client_cfg.policy);
    let client = match ClickUpClient::new(client_cfg, ApiStats::new()) {
        Ok(c) => c,
        Err(e) => {
            f.problem(format!("ClickUp: {e}"));
            return None;
        }
    };
    match client.verify_token().await {
        Ok(me) => println!(
            "  authentication: OK; the token belongs to {} <{}>",
            me.username, me.email
        ),
        Err(e) => {
            f.problem(format!("ClickUp: {e}{}", api_hint(&e, Side::ClickUp)));
            return None;
        }
    }
    match client.members().await {
        Ok(m) if m.is_empty() => f.problem(format!(
            "ClickUp: the token does not see workspace {:?} (set clickup.workspace_id or \
             CLICKUP_WORKSPACE_ID to a workspace the token's user belongs to)",
            cfg.clickup.workspace_id
        )),
        Ok(m) => println!("  workspace: OK; {} member(s)", m.len()),
        Err(e) => f.problem(format!("ClickUp: {e}{}", api_hint(&e, Side::ClickUp))),
    }
    Some(client)
}

fn category_name(s: &AdoState) -> String {
    match s.category {
        Some(c) => format!("{c:?}"),
        None if s.raw_category.is_empty() => "(none)".to_string(),
        None => format!("{} (unknown)", s.raw_category),
    }
}

fn status_type_name(t: ClickUpStatusType) -> &'static str {
    match t {
        ClickUpStatusType::Open => "open",
        ClickUpStatusType::Custom => "custom",
        ClickUpStatusType::Done => "done",
        ClickUpStatusType::Closed => "closed",
    }
}

/// The key an unmapped ADO state reads as under the fallback (core/mapping.rs).
fn ado_fallback_key(c: AdoStateCategory) -> &'static str {
    match c {
        AdoStateCategory::Proposed => "open",
        AdoStateCategory::InProgress => "in_progress",
        AdoStateCategory::Resolved => "done",
        AdoStateCategory::Completed => "closed",
        AdoStateCategory::Removed => "removed",
    }
}

/// The key an unmapped ClickUp status reads as under the fallback (core/mapping.rs).
fn clickup_fallback_key(t: ClickUpStatusType) -> &'static str {
    match t {
        ClickUpStatusType::Open => "open",
        ClickUpStatusType::Custom => "in_progress",
        ClickUpStatusType::Done => "done",
        ClickUpStatusType::Closed => "closed",
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// How a status value reads: as a canonical key, or not at all.
enum Reading {
    Mapped(String),
    Fallback(String),
    Unmapped(&'static str),
}

impl Reading {
    fn key(&self) -> Option<&str> {
        match self {
            Reading::Mapped(k) | Reading::Fallback(k) => Some(k),
            Reading::Unmapped(_) => None,
        }
    }
}

impl Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Mapped(k) => write!(f, "mapped -> {k}"),
            Reading::Fallback(k) => write!(f, "fallback -> {k}"),
            Reading::Unmapped(why) => write!(f, "UNMAPPED ({why})"),
        }
    }
}

fn read_ado_state(pair: &PairConfig, s: &AdoState) -> Reading {
    let status = &pair.mapping.status;
    if let Some(row) = status
        .map
        .iter()
        .find(|r| r.ado.iter().any(|v| eq_ci(v, &s.name)))
    {
        return Reading::Mapped(row.canonical.clone());
    }
    match (status.fallback, s.category) {
        (true, Some(c)) => Reading::Fallback(ado_fallback_key(c).to_string()),
        (true, None) => Reading::Unmapped("not in the status map; its category has no fallback"),
        (false, _) => Reading::Unmapped("not in the status map, fallback off"),
    }
}

fn read_clickup_status(pair: &PairConfig, name: &str, t: ClickUpStatusType) -> Reading {
    let status = &pair.mapping.status;
    if let Some(row) = status
        .map
        .iter()
        .find(|r| r.clickup.iter().any(|v| eq_ci(v, name)))
    {
        return Reading::Mapped(row.canonical.clone());
    }
    if status.fallback {
        Reading::Fallback(clickup_fallback_key(t).to_string())
    } else {
        Reading::Unmapped("not in the status map, fallback off")
    }
}

/// The pair's work item types with their states, as far as they could be read.
async fn check_pair_ado(
    pair: &PairConfig,
    client: &AdoClient,
    types: &[AdoWorkItemType],
    f: &mut Findings,
) -> Vec<AdoWorkItemType> {
    let p = &pair.name;
    let scope = &pair.ado;
    let mut in_scope: Vec<AdoWorkItemType> = Vec::new();
    if scope.work_item_types.is_empty() {
        in_scope.extend(types.iter().filter(|t| !t.is_disabled).cloned());
    } else {
        for name in &scope.work_item_types {
            match types.iter().find(|t| eq_ci(&t.name, name)) {
                Some(t) => in_scope.push(t.clone()),
                None => f.problem(format!(
                    "pair {p}: ADO work item type {name:?} (pairs.ado.work_item_types) does not \
                     exist in the project"
                )),
            }
        }
    }
    let scope_text = if scope.work_item_types.is_empty() {
        "all".to_string()
    } else {
        in_scope
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  ADO work item types in scope: {scope_text}");
    if !types.iter().any(|t| eq_ci(&t.name, &scope.default_type)) {
        f.problem(format!(
            "pair {p}: pairs.ado.default_type {:?} does not exist in the project; tasks created \
             in ClickUp could not be created in ADO",
            scope.default_type
        ));
    } else if !scope.work_item_types.is_empty()
        && !scope
            .work_item_types
            .iter()
            .any(|t| eq_ci(t, &scope.default_type))
    {
        f.problem(format!(
            "pair {p}: pairs.ado.default_type {:?} is not one of pairs.ado.work_item_types; \
             items created from ClickUp would fall outside the pair's scope",
            scope.default_type
        ));
    }

    for t in &mut in_scope {
        if t.states.is_empty() {
            match client.states(&t.name).await {
                Ok(s) => t.states = s,
                Err(e) => {
                    f.problem(format!("pair {p}: {e}{}", api_hint(&e, Side::Ado)));
                    continue;
                }
            }
        }
        println!("    {}:", t.name);
        let rows: Vec<Vec<String>> = t
            .states
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    category_name(s),
                    read_ado_state(pair, s).to_string(),
                ]
            })
            .collect();
        print_table("      ", &["state", "category", "reads as"], &rows);
        for s in &t.states {
            if let Reading::Unmapped(why) = read_ado_state(pair, s) {
                f.problem(format!(
                    "pair {p}: ADO state {:?} of {} is unmapped ({why})",
                    s.name, t.name
                ));
            }
        }
    }

    for row in &pair.mapping.status.map {
        if let Some(w) = &row.ado_write {
            if !in_scope
                .iter()
                .any(|t| t.states.iter().any(|s| eq_ci(&s.name, w)))
            {
                f.problem(format!(
                    "pair {p}: status map row {:?} writes ADO state {w:?} (ado_write), which no \
                     work item type in scope has; ADO would refuse every such write",
                    row.canonical
                ));
            }
        }
        for v in &row.ado {
            if !in_scope
                .iter()
                .any(|t| t.states.iter().any(|s| eq_ci(&s.name, v)))
            {
                f.warning(format!(
                    "pair {p}: status map row {:?} lists ADO state {v:?}, which no work item \
                     type in scope has",
                    row.canonical
                ));
            }
        }
    }
    in_scope
}

/// The pair's lists, as far as they could be read; checks statuses and the link field.
async fn check_pair_clickup(
    cfg: &Config,
    pair: &PairConfig,
    client: &ClickUpClient,
    f: &mut Findings,
) -> Vec<ClickUpList> {
    let p = &pair.name;
    let mut lists = Vec::new();
    for id in &pair.clickup.list_ids {
        let list = match client.get_list(id).await {
            Ok(l) => l,
            Err(ApiError::NotFound { .. }) => {
                f.problem(format!(
                    "pair {p}: ClickUp list {id} was not found (or the token cannot see it)"
                ));
                continue;
            }
            Err(e) => {
                f.problem(format!("pair {p}: {e}{}", api_hint(&e, Side::ClickUp)));
                continue;
            }
        };
        println!("  ClickUp list {} {:?}:", list.id, list.name);
        let rows: Vec<Vec<String>> = list
            .statuses
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    status_type_name(s.status_type).to_string(),
                    read_clickup_status(pair, &s.name, s.status_type).to_string(),
                ]
            })
            .collect();
        print_table("      ", &["status", "type", "reads as"], &rows);
        for s in &list.statuses {
            if let Reading::Unmapped(why) = read_clickup_status(pair, &s.name, s.status_type) {
                f.problem(format!(
                    "pair {p}: ClickUp status {:?} of list {} is unmapped ({why})",
                    s.name, list.id
                ));
            }
        }
        if let Some(field) = &cfg.clickup.link_field {
            check_link_field(p, field, &list, client, f).await;
        }
        lists.push(list);
    }
    if cfg.clickup.link_field.is_none() {
        println!(
            "  link field: not configured (clickup.link_field; recommended, it holds the ADO \
             link that prevents duplicates)"
        );
    }
    for row in &pair.mapping.status.map {
        if let Some(w) = &row.clickup_write {
            if !lists.is_empty()
                && !lists
                    .iter()
                    .any(|l| l.statuses.iter().any(|s| eq_ci(&s.name, w)))
            {
                f.problem(format!(
                    "pair {p}: status map row {:?} writes ClickUp status {w:?} \
                     (clickup_write), which none of the pair's lists has; ClickUp would refuse \
                     every such write",
                    row.canonical
                ));
            }
        }
        for v in &row.clickup {
            if !lists
                .iter()
                .any(|l| l.statuses.iter().any(|s| eq_ci(&s.name, v)))
            {
                f.warning(format!(
                    "pair {p}: status map row {:?} lists ClickUp status {v:?}, which none of \
                     the pair's lists has",
                    row.canonical
                ));
            }
        }
    }
    lists
}

async fn check_link_field(
    pair: &str,
    field: &str,
    list: &ClickUpList,
    client: &ClickUpClient,
    f: &mut Findings,
) {
    match client.custom_fields(&list.id).await {
        Ok(fields) => {
            let want = field.trim();
            match fields
                .iter()
                .find(|x| x.id == want || x.name.trim().eq_ignore_ascii_case(want))
            {
                Some(x) => {
                    println!(
                        "    link field {want:?}: found (id {}, type {})",
                        x.id, x.field_type
                    );
                    if x.field_type != "url" {
                        f.warning(format!(
                            "pair {pair}: link field {want:?} of list {} has type {:?}, not \
                             url",
                            list.id, x.field_type
                        ));
                    }
                }
                None => f.problem(format!(
                    "pair {pair}: link field {want:?} (clickup.link_field) was not found in \
                     list {}; create a URL custom field with that name or fix the setting",
                    list.id
                )),
            }
        }
        Err(e) => f.problem(format!("pair {pair}: {e}{}", api_hint(&e, Side::ClickUp))),
    }
}

/// Every canonical value one side can read must be writable on the other, or status changes
/// of those items are dropped (the engine reports them item by item).
fn check_pair_writes(
    pair: &PairConfig,
    types: &[AdoWorkItemType],
    lists: &[ClickUpList],
    f: &mut Findings,
) {
    let p = &pair.name;
    let users = UserDirectory::default();
    let ado_states: BTreeMap<String, Vec<AdoStateInfo>> = types
        .iter()
        .map(|t| {
            let states = t
                .states
                .iter()
                .filter_map(|s| {
                    s.category.map(|category| AdoStateInfo {
                        name: s.name.clone(),
                        category,
                    })
                })
                .collect();
            (t.name.clone(), states)
        })
        .collect();
    for list in lists {
        let ctx = MappingContext {
            ado_states: ado_states.clone(),
            clickup_statuses: list
                .statuses
                .iter()
                .map(|s| ClickUpStatusInfo {
                    name: s.name.clone(),
                    status_type: s.status_type,
                })
                .collect(),
            ado_work_item_type: pair.ado.default_type.clone(),
            ado_area_path: pair.ado.area_path.clone(),
            clickup_list_id: list.id.clone(),
        };
        let mapper = Mapper::new(&pair.mapping, &ctx, &users);
        // ADO → ClickUp.
        for t in types {
            for s in &t.states {
                let Some(key) = read_ado_state(pair, s).key().map(str::to_string) else {
                    continue;
                };
                match mapper.clickup_status_for(&key) {
                    Some(w) if list.statuses.iter().any(|x| eq_ci(&x.name, &w)) => {}
                    Some(w) => f.warning(format!(
                        "pair {p}: ADO state {:?} ({}) reads as {key:?}, which writes ClickUp \
                         status {w:?}, but list {} has no such status (ClickUp would refuse it)",
                        s.name, t.name, list.id
                    )),
                    None => f.warning(format!(
                        "pair {p}: ADO state {:?} ({}) reads as {key:?}, which no status of \
                         ClickUp list {} maps to; that change would not reach ClickUp",
                        s.name, t.name, list.id
                    )),
                }
            }
        }
        // ClickUp → ADO.
        for s in &list.statuses {
            let Some(key) = read_clickup_status(pair, &s.name, s.status_type)
                .key()
                .map(str::to_string)
            else {
                continue;
            };
            for t in types {
                match mapper.ado_state_for(&key, &t.name) {
                    Some(w) if t.states.iter().any(|x| eq_ci(&x.name, &w)) => {}
                    Some(w) => f.warning(format!(
                        "pair {p}: ClickUp status {:?} (list {}) reads as {key:?}, which writes \
                         ADO state {w:?}, but {} has no such state (ADO would refuse it)",
                        s.name, list.id, t.name
                    )),
                    None => f.warning(format!(
                        "pair {p}: ClickUp status {:?} (list {}) reads as {key:?}, which no \
                         state of ADO {} maps to; that change would not reach ADO",
                        s.name, list.id, t.name
                    )),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// status, conflicts
// ---------------------------------------------------------------------------------------------

/// Opens the configured database. A missing file is an error rather than a new empty
/// database: a wrong `database_url` must not look like "nothing synced yet".
async fn open_store(cfg: &Config) -> Result<Store> {
    let location = DbLocation::parse(&cfg.database_url)
        .map_err(|e| input_error(format!("database_url: {e}")))?;
    if let DbLocation::File(path) = &location {
        if !path.exists() {
            anyhow::bail!(
                "no database at {} (database_url / DATABASE_URL); the daemon creates it on its \
                 first run",
                path.display()
            );
        }
    }
    let shown = location.to_string();
    Store::open(location)
        .await
        .with_context(|| format!("opening the database {shown}"))
}

async fn cmd_status(ctx: &Ctx, args: StatusArgs) -> Result<ExitCode> {
    let cfg = ctx.config()?;
    let store = open_store(&cfg).await?;
    let now = Utc::now();
    let summary = store
        .call(move |db| db.status(now, 10))
        .await
        .context("reading the sync status")?;
    if args.json {
        let text = serde_json::to_string_pretty(&summary).context("encoding the status as JSON")?;
        println!("{text}");
    } else {
        print_status(store.location(), &summary);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(location: &DbLocation, s: &StatusSummary) {
    println!("Database: {location} (schema version {})", s.schema_version);
    println!();
    if s.pairs.is_empty() {
        println!("Pairs: none has any state yet");
    } else {
        println!("Pairs:");
        let rows: Vec<Vec<String>> = s
            .pairs
            .iter()
            .map(|p| {
                vec![
                    p.pair.clone(),
                    p.links_active.to_string(),
                    p.links_unlinked.to_string(),
                    p.pending_intents.to_string(),
                    format!("{} ({} due)", p.retries, p.due_retries),
                    p.open_conflicts.to_string(),
                    cursor_text(p.cursors.ado),
                    cursor_text(p.cursors.clickup),
                ]
            })
            .collect();
        print_table(
            "  ",
            &[
                "pair",
                "links",
                "unlinked",
                "pending intents",
                "retries",
                "open conflicts",
                "ADO cursor",
                "ClickUp cursor",
            ],
            &rows,
        );
    }
    println!();
    println!(
        "Conflict resolutions waiting to be written: {}",
        s.unapplied_resolutions
    );
    match &s.last_successful {
        Some(c) => println!(
            "Last successful cycle: #{} ({}) ended {}",
            c.id,
            c.kind.as_str(),
            c.ended_at.map(time_text).unwrap_or_else(|| "-".into())
        ),
        None => println!("Last successful cycle: none"),
    }
    println!();
    if s.last_cycles.is_empty() {
        println!("Last cycles: none yet");
        return;
    }
    println!("Last cycles (newest first):");
    let rows: Vec<Vec<String>> = s.last_cycles.iter().map(cycle_row).collect();
    print_table(
        "  ",
        &[
            "id",
            "kind",
            "pair",
            "started",
            "took",
            "reads",
            "writes",
            "conflicts",
            "errors",
            "requests",
            "result",
        ],
        &rows,
    );
}

fn cycle_row(c: &CycleRecord) -> Vec<String> {
    let took = c
        .ended_at
        .map(|e| {
            let ms = (e - c.started_at).num_milliseconds().max(0);
            format!("{:.1} s", ms as f64 / 1000.0)
        })
        .unwrap_or_else(|| "-".into());
    let result = match (&c.ended_at, &c.error) {
        (None, _) => "running or interrupted".to_string(),
        (Some(_), None) => "ok".to_string(),
        (Some(_), Some(e)) => format!("failed: {}", shorten(e, 80)),
    };
    vec![
        c.id.to_string(),
        c.kind.as_str().to_string(),
        c.pair.clone().unwrap_or_else(|| "(all)".into()),
        time_text(c.started_at),
        took,
        c.counts.reads.to_string(),
        c.counts.writes.to_string(),
        c.counts.conflicts.to_string(),
        c.counts.errors.to_string(),
        c.counts.api_requests.to_string(),
        result,
    ]
}

async fn cmd_conflicts(ctx: &Ctx, args: ConflictsArgs) -> Result<ExitCode> {
    let cfg = ctx.config()?;
    let store = open_store(&cfg).await?;
    match args.action {
        None => {
            let pair = args.pair.clone();
            let open = store
                .call(move |db| db.open_conflicts(pair.as_deref()))
                .await
                .context("listing the open conflicts")?;
            if args.json {
                let text = serde_json::to_string_pretty(&open)
                    .context("encoding the conflicts as JSON")?;
                println!("{text}");
            } else {
                print_conflicts(&open);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(ConflictsAction::Resolve { id, take }) => {
            let now = Utc::now();
            let resolution = Resolution::take(take.side());
            let c = store
                .call(move |db| db.resolve_conflict(id, resolution, now))
                .await
                .with_context(|| {
                    let side = match take {
                        TakeSide::Ado => "ADO",
                        TakeSide::Clickup => "ClickUp",
                    };
                    format!("resolving conflict {id} by taking the {side} value")
                })?;
            let (winner, value, target) = match take {
                TakeSide::Ado => ("ADO", &c.values.ado, "ClickUp task"),
                TakeSide::Clickup => ("ClickUp", &c.values.clickup, "ADO work item"),
            };
            let target_id = match take {
                TakeSide::Ado => c.clickup_id.clone(),
                TakeSide::Clickup => format!("#{}", c.ado_id),
            };
            println!(
                "Conflict {} resolved: the {winner} {} {} will be written to {target} {target_id} \
                 (pair {:?}) in the next sync cycle.",
                c.id,
                c.field.as_str(),
                shorten(&value_text(value), 200),
                c.pair
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_conflicts(open: &[Conflict]) {
    if open.is_empty() {
        println!("No open conflicts.");
        return;
    }
    println!("Open conflicts ({}):", open.len());
    let rows: Vec<Vec<String>> = open
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.pair.clone(),
                c.ado_id.to_string(),
                c.clickup_id.clone(),
                c.field.as_str().to_string(),
                shorten(&value_text(&c.values.base), 40),
                shorten(&value_text(&c.values.ado), 40),
                shorten(&value_text(&c.values.clickup), 40),
                time_text(c.detected_at),
            ]
        })
        .collect();
    print_table(
        "  ",
        &[
            "id",
            "pair",
            "ADO id",
            "ClickUp id",
            "field",
            "base",
            "ADO",
            "ClickUp",
            "detected",
        ],
        &rows,
    );
    println!();
    println!(
        "Resolve one with: ado-clickup-sync conflicts resolve ID --take ado|clickup \
         (--json shows the values in full)"
    );
}

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

/// A canonical value as compact JSON (`null` for none).
fn value_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A cursor (server time in ms) as a time.
fn cursor_text(ms: Option<i64>) -> String {
    match ms {
        None => "-".to_string(),
        Some(v) => match Utc.timestamp_millis_opt(v).single() {
            Some(t) => time_text(t),
            None => v.to_string(),
        },
    }
}

/// At most `max` characters, with an ellipsis when cut; newlines shown as spaces.
fn shorten(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn print_table(indent: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
