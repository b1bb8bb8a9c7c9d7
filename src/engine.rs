//! One sync cycle, end to end: recover pending creates, poll both sides from their cursors,
//! load the touched links and their bases, plan with the core, apply the plan, advance the
//! cursors.
//!
//! Where the invariants are kept (see ARCHITECTURE.md):
//! - **No duplicates**: every create is preceded by an intent row and carries a back-link
//!   marker ([`Engine::create_in_clickup`], [`Engine::create_in_ado`]); pending intents are
//!   resolved by searching the target for the marker before anything else
//!   ([`Engine::recover_intents`]); an item with a pending intent is never planned again.
//! - **No lost edits**: ADO writes carry `test /rev`; a 412 re-reads and re-plans that link
//!   once; a ClickUp write re-reads the task first and re-plans when `date_updated` moved
//!   (ClickUp has no conditional write). A record that could not be read is never taken for a
//!   deletion. Cursors advance only when every item seen was applied or queued for retry.
//! - **No echo**: after each write the written values are stored as the new base with the
//!   post-write rev / `date_updated`, so the next poll sees nothing to do.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ado::{AdoClient, AdoSlot};
use crate::clickup::ClickUpClient;
use crate::config::PairConfig;
use crate::core::mapping::{
    backlink_target_ado, backlink_target_clickup, field_value, set_field_value, AdoStateInfo,
    ClickUpStatusInfo, LinkIndex, Mapper, MappingContext, MappingIssue, UserDirectory,
};
use crate::core::merge::Conflict as MergeConflict;
use crate::core::model::{
    AdoCreate, AdoId, AdoPatch, AdoRecord, ClickUpCreate, ClickUpId, ClickUpPatch, ClickUpRecord,
    Field, Item, LinkId, Side,
};
use crate::core::plan::{
    self, Action, LinkRef, LinkSnapshot, Plan, PlanError, PlanInput, ScopeCounts,
};
use crate::remote::{ApiError, ApiStats};
use crate::store::{
    AuditAction, AuditEntry, AuditOutcome, ConflictValues, CycleCounts, CycleId, CycleKind, Db,
    Intent, ItemRef, Link, LinkState, NewLink, Resolution, RetryPolicy, Store, StoreError,
};

/// At most this many plan/apply passes per pair and cycle (a pass links new items, the next
/// one sets the parents that pointed at items created by the previous pass).
const MAX_PASSES: usize = 4;
/// A change marker (ADO rev, ClickUp `date_updated`) that matches nothing: stored with a base
/// when the item may hold changes the base does not (edited while a create was in flight, or
/// between our read and our write), so that the next look at it merges instead of taking it
/// for our own write.
const UNKNOWN_MARKER: i64 = -1;
/// The oldest cursor: an empty store polls everything changed since then.
const EPOCH_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z

/// Failure of a whole cycle or pair (an item's failure is not one: it goes to the retries).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("pair {pair}: {source}")]
    Api { pair: String, source: ApiError },
    #[error("pair {pair}: {source}")]
    Store { pair: String, source: StoreError },
    #[error("{0}")]
    StoreGlobal(#[from] StoreError),
    #[error("unknown pair {name:?} (configured: {known})")]
    UnknownPair { name: String, known: String },
    #[error("failpoint {0} fired")]
    Injected(&'static str),
    #[error("{0} pairs failed: {1}")]
    Pairs(usize, String),
}

/// Tunables of the engine (see `config/default.toml`).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far before its cursor each poll re-reads.
    pub overlap: Duration,
    /// Remote calls in flight at once, per side.
    pub ado_concurrency: usize,
    pub clickup_concurrency: usize,
    pub max_creates: usize,
    pub max_unlinks: usize,
    pub retry: RetryPolicy,
    /// How long the services' metadata (states, statuses, members) is reused.
    pub metadata_ttl: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            overlap: Duration::from_secs(300),
            ado_concurrency: 4,
            clickup_concurrency: 4,
            max_creates: 500,
            max_unlinks: 20,
            retry: RetryPolicy::default(),
            metadata_ttl: Duration::from_secs(600),
        }
    }
}

/// Incremental (since the cursors) or sweep (everything in scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Incremental,
    Sweep,
}

/// What one call of [`Engine::cycle`] should do.
#[derive(Debug, Clone)]
pub struct CycleRequest {
    pub mode: Mode,
    /// Plan only: write nothing anywhere (not even the store).
    pub dry_run: bool,
    /// Only this pair.
    pub pair: Option<String>,
    /// Apply a plan the guards would refuse.
    pub force: bool,
}

impl CycleRequest {
    pub fn incremental() -> Self {
        CycleRequest {
            mode: Mode::Incremental,
            dry_run: false,
            pair: None,
            force: false,
        }
    }
    pub fn sweep() -> Self {
        CycleRequest {
            mode: Mode::Sweep,
            ..Self::incremental()
        }
    }
}

/// What happened to one pair in one cycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PairReport {
    pub pair: String,
    /// The plans made (one per pass; in a dry run, the one that would be applied).
    pub plans: Vec<Plan>,
    pub tally: Tally,
    /// Items that failed this cycle (queued for retry), with why.
    pub failures: Vec<(String, String)>,
    pub issues: Vec<MappingIssue>,
    pub cursors_advanced: bool,
    /// Set when the pair failed as a whole (nothing after the failure was done).
    pub error: Option<String>,
}

/// Counts of one pair's cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Records read from the services.
    pub reads: u64,
    pub created_ado: u64,
    pub created_clickup: u64,
    pub updated_ado: u64,
    pub updated_clickup: u64,
    pub linked: u64,
    pub unlinked: u64,
    pub conflicts: u64,
    pub failed: u64,
    /// Pending creates resolved at the start of the cycle.
    pub recovered: u64,
}

impl Tally {
    pub fn written_ado(&self) -> u64 {
        self.created_ado + self.updated_ado
    }
    pub fn written_clickup(&self) -> u64 {
        self.created_clickup + self.updated_clickup
    }
    fn add(&mut self, o: &Tally) {
        self.reads += o.reads;
        self.created_ado += o.created_ado;
        self.created_clickup += o.created_clickup;
        self.updated_ado += o.updated_ado;
        self.updated_clickup += o.updated_clickup;
        self.linked += o.linked;
        self.unlinked += o.unlinked;
        self.conflicts += o.conflicts;
        self.failed += o.failed;
        self.recovered += o.recovered;
    }
}

/// What a whole cycle did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub pairs: Vec<PairReport>,
    pub api_requests: u64,
    pub pending_intents: u64,
    pub open_conflicts: u64,
}

impl CycleReport {
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for p in &self.pairs {
            t.add(&p.tally);
        }
        t
    }
    /// The pairs that failed as a whole, as one error (for the scheduler's backoff).
    pub fn error(&self) -> Option<EngineError> {
        let failed: Vec<String> = self
            .pairs
            .iter()
            .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.pair)))
            .collect();
        (!failed.is_empty()).then(|| EngineError::Pairs(failed.len(), failed.join("; ")))
    }
}

/// One row of a plan or of the applied actions, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    pub action: &'static str,
    pub ado_id: Option<AdoId>,
    pub clickup_id: Option<ClickUpId>,
    pub fields: Vec<Field>,
    pub detail: String,
}

impl ActionRow {
    pub fn of(a: &Action) -> ActionRow {
        let (ado_id, clickup_id) = match a {
            Action::Link {
                ado_id, clickup_id, ..
            } => (Some(*ado_id), Some(clickup_id.clone())),
            Action::CreateInAdo { source, .. } => (None, Some(source.clone())),
            Action::CreateInClickUp { source, .. } => (Some(*source), None),
            Action::UpdateAdo { ado_id, link, .. } => (Some(*ado_id), link_clickup(link)),
            Action::UpdateClickUp {
                clickup_id, link, ..
            } => (link_ado(link), Some(clickup_id.clone())),
            Action::Rebase { link, .. } | Action::RecordConflict { link, .. } => {
                (link_ado(link), link_clickup(link))
            }
            Action::Unlink { .. } => (None, None),
        };
        let (name, fields, detail) = match a {
            Action::Link { .. } => ("link", vec![], "matched by back-link".to_string()),
            Action::CreateInAdo { create, .. } => (
                "create_in_ado",
                ado_patch_fields(&create.fields),
                create.work_item_type.clone(),
            ),
            Action::CreateInClickUp { create, .. } => (
                "create_in_clickup",
                clickup_patch_fields(&create.fields),
                format!("list {}", create.list_id),
            ),
            Action::UpdateAdo {
                patch,
                expected_rev,
                ..
            } => (
                "update_ado",
                ado_patch_fields(patch),
                format!("at rev {expected_rev}"),
            ),
            Action::UpdateClickUp { patch, .. } => {
                ("update_clickup", clickup_patch_fields(patch), String::new())
            }
            Action::Rebase { .. } => ("rebase", vec![], "both sides agree".to_string()),
            Action::RecordConflict { conflict, .. } => (
                "conflict",
                vec![conflict.field],
                "edited differently on both sides".to_string(),
            ),
            Action::Unlink { link, reason } => ("unlink", vec![], format!("link {link}: {reason}")),
        };
        ActionRow {
            action: name,
            ado_id,
            clickup_id,
            fields,
            detail,
        }
    }
}

fn link_ado(l: &LinkRef) -> Option<AdoId> {
    match l {
        LinkRef::New { ado_id, .. } => Some(*ado_id),
        LinkRef::Existing(_) => None,
    }
}
fn link_clickup(l: &LinkRef) -> Option<ClickUpId> {
    match l {
        LinkRef::New { clickup_id, .. } => Some(clickup_id.clone()),
        LinkRef::Existing(_) => None,
    }
}

/// The fields an ADO patch writes.
pub fn ado_patch_fields(p: &AdoPatch) -> Vec<Field> {
    let mut v = Vec::new();
    let pairs = [
        (p.title.is_some(), Field::Title),
        (p.description_html.is_some(), Field::Description),
        (p.state.is_some(), Field::Status),
        (p.assigned_to.is_some(), Field::Assignees),
        (p.tags.is_some(), Field::Tags),
        (p.priority.is_some(), Field::Priority),
        (p.due_date.is_some(), Field::Due),
        (p.parent.is_some(), Field::Parent),
    ];
    for (set, f) in pairs {
        if set {
            v.push(f);
        }
    }
    v
}

/// The fields a ClickUp patch writes.
pub fn clickup_patch_fields(p: &ClickUpPatch) -> Vec<Field> {
    let mut v = Vec::new();
    let pairs = [
        (p.name.is_some(), Field::Title),
        (p.markdown.is_some(), Field::Description),
        (p.status.is_some(), Field::Status),
        (
            !p.assignees_add.is_empty() || !p.assignees_rem.is_empty(),
            Field::Assignees,
        ),
        (
            !p.tags_add.is_empty() || !p.tags_rem.is_empty(),
            Field::Tags,
        ),
        (p.priority.is_some(), Field::Priority),
        (p.due_date.is_some(), Field::Due),
        (p.parent.is_some(), Field::Parent),
    ];
    for (set, f) in pairs {
        if set {
            v.push(f);
        }
    }
    v
}

/// Renders plans as a text table (`sync --once --dry-run`).
pub fn plan_table(reports: &[PairReport]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "action".into(),
        "pair".into(),
        "ado".into(),
        "clickup".into(),
        "fields".into(),
        "detail".into(),
    ]];
    for r in reports {
        for p in &r.plans {
            for a in &p.actions {
                let row = ActionRow::of(a);
                rows.push([
                    row.action.to_string(),
                    r.pair.clone(),
                    row.ado_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "-".into()),
                    row.clickup_id.unwrap_or_else(|| "-".into()),
                    if row.fields.is_empty() {
                        "-".into()
                    } else {
                        row.fields
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                    row.detail,
                ]);
            }
        }
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(nothing to do)\n");
    }
    out
}

/// Told about each applied action as it happens (the CLI's progress bar, `demo`'s log).
pub trait Observer: Send + Sync {
    fn planned(&self, _pair: &str, _plan: &Plan) {}
    fn applied(&self, _pair: &str, _row: &ActionRow, _outcome: Result<(), &str>) {}
}

/// What the pair's services say about it: states, statuses, members.
#[derive(Debug, Clone)]
struct PairMeta {
    context: MappingContext,
    users: UserDirectory,
    fetched: Instant,
}

/// The planned create as stored in its intent row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
enum PlannedCreate {
    Ado {
        create: AdoCreate,
        planned: Item,
    },
    #[serde(rename = "clickup")]
    ClickUp {
        create: ClickUpCreate,
        planned: Item,
    },
}

/// The engine: owns the clients and the store handle; one [`Engine::cycle`] at a time.
pub struct Engine {
    pairs: Vec<PairConfig>,
    ado: Arc<AdoClient>,
    clickup: Arc<ClickUpClient>,
    stats: Arc<ApiStats>,
    store: Store,
    opts: EngineOptions,
    meta: tokio::sync::Mutex<HashMap<String, PairMeta>>,
    /// ADO emails the service refused as unknown identities.
    unknown_ado_users: Mutex<BTreeSet<String>>,
    ado_slots: Semaphore,
    clickup_slots: Semaphore,
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field(
                "pairs",
                &self.pairs.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Evaluates an engine failpoint (feature `failpoints`): `return` fails the cycle there,
/// `return(abort)` kills the process on the spot (as a crash would).
#[cfg(feature = "failpoints")]
fn crash_point(name: &'static str) -> Result<(), EngineError> {
    match fail::eval(name, |arg| arg) {
        Some(Some(arg)) if arg == "abort" => std::process::abort(),
        Some(_) => Err(EngineError::Injected(name)),
        None => Ok(()),
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn crash_point(_name: &'static str) -> Result<(), EngineError> {
    Ok(())
}

/// The failure of one item: which one, and why.
#[derive(Debug, Clone)]
struct ItemFailure {
    item: ItemRef,
    error: String,
}

/// Everything read for one pass of one pair.
#[derive(Debug, Default)]
struct Observation {
    links: Vec<LinkSnapshot>,
    ado: BTreeMap<AdoId, AdoRecord>,
    clickup: BTreeMap<ClickUpId, ClickUpRecord>,
    index: LinkIndex,
    failures: Vec<ItemFailure>,
    reads: u64,
    scope: ScopeCounts,
    /// Unapplied conflict resolutions of the touched links.
    resolutions: BTreeMap<LinkId, Vec<crate::store::Conflict>>,
    /// Polled tasks of links with nothing to do (left out of the plan).
    quiet_clickup: HashSet<ClickUpId>,
}

/// What one pass should look at.
#[derive(Debug, Default, Clone)]
struct Touch {
    /// ADO ids to read (changed since the cursor, or forced).
    ado_ids: BTreeSet<AdoId>,
    /// Of those, the ones that must be planned even if they look unchanged (retries,
    /// revisits).
    forced_ado: BTreeSet<AdoId>,
    /// Tasks the poll returned.
    clickup_known: Vec<ClickUpRecord>,
    /// Tasks to read and plan (retries, revisits).
    clickup_ids: BTreeSet<ClickUpId>,
    /// Links to plan (conflict resolutions).
    links: BTreeSet<LinkId>,
    /// Sweep: every id each side listed in scope (records outside are taken as absent).
    sweep: Option<(BTreeSet<AdoId>, BTreeSet<ClickUpId>)>,
}

/// The state of one link while its actions are applied.
#[derive(Debug, Clone)]
struct LinkWork {
    link: Option<LinkId>,
    ado: AdoRecord,
    clickup: ClickUpRecord,
    /// Whether the ClickUp record was re-read just before this group's ClickUp write.
    clickup_checked: bool,
    base: Option<Item>,
}

/// The outcome of one group of actions.
#[derive(Debug, Default)]
struct GroupOutcome {
    tally: Tally,
    failures: Vec<ItemFailure>,
    /// Links that exist after this group and should be looked at again in the next pass.
    revisit: Vec<(AdoId, ClickUpId)>,
    /// Items whose retry row can go (they succeeded).
    succeeded: Vec<ItemRef>,
    /// Applied conflict resolutions.
    applied_resolutions: Vec<i64>,
}

impl Engine {
    pub fn new(
        pairs: Vec<PairConfig>,
        ado: Arc<AdoClient>,
        clickup: Arc<ClickUpClient>,
        stats: Arc<ApiStats>,
        store: Store,
        opts: EngineOptions,
    ) -> Engine {
        Engine {
            ado_slots: Semaphore::new(opts.ado_concurrency.max(1)),
            clickup_slots: Semaphore::new(opts.clickup_concurrency.max(1)),
            pairs,
            ado,
            clickup,
            stats,
            store,
            opts,
            meta: tokio::sync::Mutex::new(HashMap::new()),
            unknown_ado_users: Mutex::new(BTreeSet::new()),
            observer: None,
        }
    }

    pub fn with_observer(mut self, o: Arc<dyn Observer>) -> Self {
        self.observer = Some(o);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn stats(&self) -> &Arc<ApiStats> {
        &self.stats
    }
    pub fn pairs(&self) -> &[PairConfig] {
        &self.pairs
    }
    pub fn ado(&self) -> &Arc<AdoClient> {
        &self.ado
    }
    pub fn clickup(&self) -> &Arc<ClickUpClient> {
        &self.clickup
    }

    async fn db<R, F>(&self, pair: &str, f: F) -> Result<R, EngineError>
    where
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.store
            .call(f)
            .await
            .map_err(|source| EngineError::Store {
                pair: pair.to_string(),
                source,
            })
    }

    fn api(pair: &str) -> impl Fn(ApiError) -> EngineError + '_ {
        move |source| EngineError::Api {
            pair: pair.to_string(),
            source,
        }
    }

    /// Runs one cycle over the requested pairs. A pair that fails does not stop the others;
    /// the report says which failed ([`CycleReport::error`]).
    pub async fn cycle(
        &self,
        req: &CycleRequest,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, EngineError> {
        let pairs: Vec<&PairConfig> = match &req.pair {
            Some(name) => {
                let p = self.pairs.iter().find(|p| &p.name == name).ok_or_else(|| {
                    EngineError::UnknownPair {
                        name: name.clone(),
                        known: self
                            .pairs
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?;
                vec![p]
            }
            None => self.pairs.iter().collect(),
        };
        let before = self.stats.total(Side::Ado) + self.stats.total(Side::ClickUp);
        let mut report = CycleReport::default();
        for pair in pairs {
            if cancel.is_cancelled() {
                break;
            }
            let kind = match req.mode {
                Mode::Incremental => CycleKind::Incremental,
                Mode::Sweep => CycleKind::Sweep,
            };
            let start_req = self.stats.total(Side::Ado) + self.stats.total(Side::ClickUp);
            let cycle_id = if req.dry_run {
                None
            } else {
                let name = pair.name.clone();
                Some(
                    self.db(&pair.name, move |db| {
                        db.start_cycle(kind, Some(&name), Utc::now())
                    })
                    .await?,
                )
            };
            let mut pr = PairReport {
                pair: pair.name.clone(),
                ..PairReport::default()
            };
            let result = self.run_pair(pair, req, cycle_id, cancel, &mut pr).await;
            if let Err(e) = &result {
                tracing::warn!(pair = %pair.name, error = %e, "pair cycle failed");
                pr.error = Some(e.to_string());
            }
            if let Some(id) = cycle_id {
                let used =
                    self.stats.total(Side::Ado) + self.stats.total(Side::ClickUp) - start_req;
                let counts = CycleCounts {
                    reads: pr.tally.reads,
                    writes: pr.tally.written_ado()
                        + pr.tally.written_clickup()
                        + pr.tally.linked
                        + pr.tally.unlinked,
                    conflicts: pr.tally.conflicts,
                    errors: pr.tally.failed,
                    api_requests: used,
                };
                let err = pr.error.clone();
                self.db(&pair.name, move |db| {
                    db.finish_cycle(id, &counts, err.as_deref(), Utc::now())
                })
                .await?;
            }
            report.pairs.push(pr);
        }
        report.api_requests =
            self.stats.total(Side::Ado) + self.stats.total(Side::ClickUp) - before;
        let (intents, conflicts) = self
            .store
            .call(|db| {
                Ok((
                    db.pending_intents(None)?.len(),
                    db.open_conflicts(None)?.len(),
                ))
            })
            .await?;
        report.pending_intents = intents as u64;
        report.open_conflicts = conflicts as u64;
        Ok(report)
    }

    async fn run_pair(
        &self,
        pair: &PairConfig,
        req: &CycleRequest,
        cycle_id: Option<CycleId>,
        cancel: &CancellationToken,
        rep: &mut PairReport,
    ) -> Result<(), EngineError> {
        let meta = self.metadata(pair, req.mode == Mode::Sweep).await?;
        if !req.dry_run {
            self.recover_intents(pair, &meta, cycle_id, rep).await?;
        }
        let name = pair.name.clone();
        let cursors = self.db(&pair.name, move |db| db.cursors(&name)).await?;
        let overlap = self.opts.overlap.as_millis() as i64;
        let scope = pair.ado.wiql_clause();
        let lists = pair.clickup.list_ids.clone();

        // Poll.
        let (mut touch, ado_cursor, clickup_cursor) = match req.mode {
            Mode::Incremental => {
                let ado_since = cursors.ado.map_or(EPOCH_MS, |c| c - overlap);
                let since = Utc
                    .timestamp_millis_opt(ado_since)
                    .single()
                    .unwrap_or_default();
                let changed = self
                    .ado
                    .query_changed_since(&scope, since)
                    .await
                    .map_err(Self::api(&pair.name))?;
                let cu_since = cursors.clickup.map_or(0, |c| (c - overlap).max(0));
                let poll = self
                    .clickup
                    .changed_since(&lists, cu_since)
                    .await
                    .map_err(Self::api(&pair.name))?;
                let cu_cursor = poll.next_cursor();
                let mut t = Touch {
                    ado_ids: changed.ids.into_iter().collect(),
                    ..Touch::default()
                };
                for (id, e) in poll.failed {
                    rep.failures.push((format!("clickup:{id}"), e.to_string()));
                    self.record_failure(&pair.name, ItemRef::ClickUp(id), &e.to_string())
                        .await?;
                    rep.tally.failed += 1;
                }
                t.clickup_known = poll.tasks;
                (t, Some(changed.as_of.timestamp_millis()), cu_cursor)
            }
            Mode::Sweep => {
                let ids = self
                    .ado
                    .list_all_ids(&scope)
                    .await
                    .map_err(Self::api(&pair.name))?;
                let poll = self
                    .clickup
                    .list_all(&lists)
                    .await
                    .map_err(Self::api(&pair.name))?;
                let ado_set: BTreeSet<AdoId> = ids.iter().copied().collect();
                let mut cu_set: BTreeSet<ClickUpId> =
                    poll.tasks.iter().map(|t| t.id.clone()).collect();
                for (id, e) in poll.failed {
                    // Listed but unreadable: in scope, so not taken as gone.
                    cu_set.insert(id.clone());
                    rep.failures.push((format!("clickup:{id}"), e.to_string()));
                    self.record_failure(&pair.name, ItemRef::ClickUp(id), &e.to_string())
                        .await?;
                    rep.tally.failed += 1;
                }
                let name = pair.name.clone();
                let links: Vec<Link> = self
                    .db(&pair.name, move |db| {
                        db.links_in_pair(&name, Some(LinkState::Active))
                    })
                    .await?;
                let t = Touch {
                    ado_ids: ado_set.clone(),
                    clickup_known: poll.tasks,
                    links: links.iter().map(|l| l.id).collect(),
                    sweep: Some((ado_set, cu_set)),
                    ..Touch::default()
                };
                (t, None, None)
            }
        };

        // Items due for a retry, and conflict resolutions to write.
        let name = pair.name.clone();
        let now = Utc::now();
        let (due, resolutions) = self
            .db(&pair.name, move |db| {
                let due = db.due_retries(&name, now)?;
                let res: Vec<crate::store::Conflict> = db
                    .unapplied_resolutions()?
                    .into_iter()
                    .filter(|c| c.pair == name)
                    .collect();
                Ok((due, res))
            })
            .await?;
        for r in &due {
            match &r.item {
                ItemRef::Ado(id) => {
                    touch.ado_ids.insert(*id);
                    touch.forced_ado.insert(*id);
                }
                ItemRef::ClickUp(id) => {
                    if !touch.clickup_known.iter().any(|t| &t.id == id) {
                        touch.clickup_ids.insert(id.clone());
                    }
                }
            }
        }
        for c in &resolutions {
            touch.links.insert(c.link_id);
        }
        let due_items: HashSet<ItemRef> = due.iter().map(|r| r.item.clone()).collect();

        // Plan and apply, in passes.
        for pass in 0..MAX_PASSES {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let mut obs = self.observe(pair, &touch, &resolutions).await?;
            rep.tally.reads += obs.reads;
            for f in std::mem::take(&mut obs.failures) {
                rep.failures.push((f.item.to_string(), f.error.clone()));
                rep.tally.failed += 1;
                if !req.dry_run {
                    self.record_failure(&pair.name, f.item, &f.error).await?;
                }
            }
            let users = {
                let mut u = meta.users.clone();
                u.ado_unknown = lock(&self.unknown_ado_users).clone();
                u
            };
            let ado_records: Vec<AdoRecord> = obs.ado.values().cloned().collect();
            let cu_records: Vec<ClickUpRecord> = obs.clickup.values().cloned().collect();
            let plan = plan::plan(&PlanInput {
                pair: &pair.name,
                links: &obs.links,
                ado_records: &ado_records,
                clickup_records: &cu_records,
                link_index: &obs.index,
                mapping: &pair.mapping,
                context: &meta.context,
                users: &users,
                limits: plan::Limits {
                    max_creates: self.opts.max_creates,
                    max_unlinks: self.opts.max_unlinks,
                    force: req.force,
                },
                scope: obs.scope,
                now: Utc::now(),
            })?;
            for i in &plan.issues {
                tracing::info!(pair = %pair.name, issue = ?i, "mapping issue");
            }
            rep.issues.extend(plan.issues.iter().cloned());
            if let Some(o) = &self.observer {
                o.planned(&pair.name, &plan);
            }
            if req.dry_run {
                rep.plans.push(plan);
                break;
            }
            let out = self
                .apply(pair, &meta, &obs, &plan, cycle_id, cancel, &due_items)
                .await?;
            self.refresh_markers(&pair.name, &obs, &plan).await?;
            rep.plans.push(plan);
            rep.tally.add(&out.tally);
            for f in &out.failures {
                rep.failures.push((f.item.to_string(), f.error.clone()));
            }
            if cancel.is_cancelled() {
                // Leave the cursors: the next run re-reads what this one did not finish.
                return Ok(());
            }
            if out.revisit.is_empty() || pass + 1 == MAX_PASSES {
                for (a, c) in &out.revisit {
                    // Out of passes: look at these again next cycle.
                    self.record_failure(
                        &pair.name,
                        ItemRef::Ado(*a),
                        &format!("parent of ADO #{a} / ClickUp task {c} not linked yet"),
                    )
                    .await?;
                }
                break;
            }
            touch = Touch {
                ado_ids: out.revisit.iter().map(|(a, _)| *a).collect(),
                forced_ado: out.revisit.iter().map(|(a, _)| *a).collect(),
                clickup_ids: out.revisit.iter().map(|(_, c)| c.clone()).collect(),
                ..Touch::default()
            };
        }
        if req.dry_run {
            return Ok(());
        }

        // Every item seen was applied or queued for retry (failures are recorded as they
        // happen; a failure to record one returned early above): the cursors may move.
        let mut updates = Vec::new();
        if let Some(a) = ado_cursor {
            updates.push((Side::Ado, a));
        }
        if let Some(c) = clickup_cursor {
            updates.push((Side::ClickUp, c));
        }
        if !updates.is_empty() {
            let name = pair.name.clone();
            self.db(&pair.name, move |db| {
                db.advance_cursors(&name, &updates, Utc::now())
            })
            .await?;
            rep.cursors_advanced = true;
        }
        Ok(())
    }

    /// Links that were looked at and needed nothing (an edit to a field that is not synced,
    /// say) keep their base; their change markers move on so the next poll finds them quiet.
    async fn refresh_markers(
        &self,
        pair: &str,
        obs: &Observation,
        plan: &Plan,
    ) -> Result<(), EngineError> {
        let acted: HashSet<LinkId> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::UpdateAdo {
                    link: LinkRef::Existing(l),
                    ..
                }
                | Action::UpdateClickUp {
                    link: LinkRef::Existing(l),
                    ..
                }
                | Action::Rebase {
                    link: LinkRef::Existing(l),
                    ..
                }
                | Action::RecordConflict {
                    link: LinkRef::Existing(l),
                    ..
                }
                | Action::Unlink { link: l, .. } => Some(*l),
                _ => None,
            })
            .collect();
        let updates: Vec<(LinkId, Item, i64, i64)> = obs
            .links
            .iter()
            .filter(|s| !acted.contains(&s.link) && !obs.resolutions.contains_key(&s.link))
            .filter_map(|s| {
                let a = obs.ado.get(&s.ado_id)?;
                let c = obs.clickup.get(&s.clickup_id)?;
                (a.rev != s.ado_rev || c.date_updated != s.clickup_date_updated)
                    .then(|| (s.link, s.base.clone(), a.rev, c.date_updated))
            })
            .collect();
        if updates.is_empty() {
            return Ok(());
        }
        self.db(pair, move |db| {
            let now = Utc::now();
            db.atomic(|db| {
                for (link, base, rev, du) in &updates {
                    db.store_base(*link, base, *rev, *du, now)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn record_failure(
        &self,
        pair: &str,
        item: ItemRef,
        error: &str,
    ) -> Result<(), EngineError> {
        let name = pair.to_string();
        let error = error.to_string();
        let policy = self.opts.retry;
        tracing::warn!(pair, %item, %error, "item failed; queued for retry");
        self.db(pair, move |db| {
            db.record_failure(&name, &item, &error, Utc::now(), &policy)
                .map(|_| ())
        })
        .await
    }

    /// States, statuses and members for the pair, cached for `metadata_ttl`.
    async fn metadata(&self, pair: &PairConfig, refresh: bool) -> Result<PairMeta, EngineError> {
        let mut cache = self.meta.lock().await;
        if let Some(m) = cache.get(&pair.name) {
            if !refresh && m.fetched.elapsed() < self.opts.metadata_ttl {
                return Ok(m.clone());
            }
        }
        let api = Self::api(&pair.name);
        let types = self.ado.work_item_types().await.map_err(&api)?;
        let mut ado_states: BTreeMap<String, Vec<AdoStateInfo>> = BTreeMap::new();
        for t in types.iter().filter(|t| !t.is_disabled) {
            let wanted = pair.ado.work_item_types.is_empty()
                || pair
                    .ado
                    .work_item_types
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(&t.name))
                || t.name.eq_ignore_ascii_case(&pair.ado.default_type);
            if !wanted {
                continue;
            }
            let states = if t.states.is_empty() {
                self.ado.states(&t.name).await.map_err(&api)?
            } else {
                t.states.clone()
            };
            ado_states.insert(
                t.name.clone(),
                states
                    .into_iter()
                    .filter_map(|s| {
                        s.category.map(|category| AdoStateInfo {
                            name: s.name,
                            category,
                        })
                    })
                    .collect(),
            );
        }
        let list_id = pair
            .clickup
            .create_in
            .clone()
            .or_else(|| pair.clickup.list_ids.first().cloned())
            .unwrap_or_default();
        let list = self.clickup.get_list(&list_id).await.map_err(&api)?;
        let members = self.clickup.members().await.map_err(&api)?;
        let m = PairMeta {
            context: MappingContext {
                ado_states,
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
                clickup_list_id: list_id,
            },
            users: UserDirectory::new(members.iter().map(|m| m.email.clone()), None),
            fetched: Instant::now(),
        };
        cache.insert(pair.name.clone(), m.clone());
        Ok(m)
    }

    // -----------------------------------------------------------------------------------------
    // Reading
    // -----------------------------------------------------------------------------------------

    /// Reads everything one pass needs: the touched links, their bases, both sides' current
    /// records, back-link targets and parents' links.
    async fn observe(
        &self,
        pair: &PairConfig,
        touch: &Touch,
        resolutions: &[crate::store::Conflict],
    ) -> Result<Observation, EngineError> {
        let mut obs = Observation::default();
        let name = pair.name.clone();
        let api = Self::api(&pair.name);

        // Links touched by a changed record on either side (or named by a resolution).
        let ado_ids: Vec<AdoId> = touch.ado_ids.iter().copied().collect();
        let mut cu_ids: Vec<ClickUpId> = touch.clickup_known.iter().map(|t| t.id.clone()).collect();
        cu_ids.extend(touch.clickup_ids.iter().cloned());
        let extra: Vec<LinkId> = touch.links.iter().copied().collect();
        let (links, snaps, pending) = {
            let name = name.clone();
            self.db(&pair.name, move |db| {
                let mut links: BTreeMap<LinkId, Link> = BTreeMap::new();
                for l in db.links_by_ado(&name, &ado_ids)? {
                    links.insert(l.id, l);
                }
                for l in db.links_by_clickup(&name, &cu_ids)? {
                    links.insert(l.id, l);
                }
                for l in db.links_by_ids(&extra)? {
                    if l.state == LinkState::Active && l.pair == name {
                        links.insert(l.id, l);
                    }
                }
                let ids: Vec<LinkId> = links.keys().copied().collect();
                let snaps = db.snapshots(&ids)?;
                let pending: Vec<Intent> = db.pending_intents(Some(&name))?;
                Ok((links, snaps, pending))
            })
            .await?
        };
        let pending_sources: HashSet<ItemRef> = pending.iter().map(|i| i.source.clone()).collect();

        // ADO records: linked ones with the mapped fields, new ones with relations (their
        // back-link marker lives there).
        let (sweep_ado, sweep_cu) = match &touch.sweep {
            Some((a, c)) => (Some(a), Some(c)),
            None => (None, None),
        };
        let mut links = links;
        let linked_ado: BTreeSet<AdoId> = links.values().map(|l| l.ado_id).collect();
        // A link whose both sides still carry the change markers stored with its base (our
        // own writes coming back through the overlap window, mostly) needs no planning, and
        // its ClickUp task no read. Sweeps look at everything.
        let sweeping = touch.sweep.is_some();
        let forced = |l: &Link| {
            touch.links.contains(&l.id)
                || touch.forced_ado.contains(&l.ado_id)
                || touch.clickup_ids.contains(&l.clickup_id)
        };
        let polled: HashMap<&str, i64> = touch
            .clickup_known
            .iter()
            .map(|t| (t.id.as_str(), t.date_updated))
            .collect();
        let cu_quiet = |l: &Link| match polled.get(l.clickup_id.as_str()) {
            None => true,
            Some(d) => snaps
                .get(&l.id)
                .is_some_and(|s| s.clickup_date_updated == *d),
        };
        let to_read_linked: Vec<AdoId> = links
            .values()
            .filter(|l| sweep_ado.is_none_or(|s| s.contains(&l.ado_id)))
            .filter(|l| sweeping || forced(l) || touch.ado_ids.contains(&l.ado_id) || !cu_quiet(l))
            .map(|l| l.ado_id)
            .collect();
        let read_linked: HashSet<AdoId> = to_read_linked.iter().copied().collect();
        let to_read_new: Vec<AdoId> = touch
            .ado_ids
            .iter()
            .copied()
            .filter(|id| !linked_ado.contains(id))
            // A sweep creates counterparts for items in scope only (a retry may name one
            // that has moved out).
            .filter(|id| sweep_ado.is_none_or(|s| s.contains(id)))
            .collect();
        let mut ado_failed: HashSet<AdoId> = HashSet::new();
        for (ids, relations) in [(to_read_linked, false), (to_read_new, true)] {
            if ids.is_empty() {
                continue;
            }
            let slots = {
                let _p = self.ado_slots.acquire().await;
                self.ado.read_batch(&ids, relations).await.map_err(&api)?
            };
            for (id, slot) in ids.iter().zip(slots) {
                match slot {
                    AdoSlot::Found(r) => {
                        obs.reads += 1;
                        obs.ado.insert(*id, r);
                    }
                    AdoSlot::Missing => {}
                    AdoSlot::Malformed(e) => {
                        ado_failed.insert(*id);
                        obs.failures.push(ItemFailure {
                            item: ItemRef::Ado(*id),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }

        if !sweeping {
            let quiet: Vec<LinkId> = links
                .values()
                .filter(|l| !forced(l) && cu_quiet(l))
                .filter(|l| match obs.ado.get(&l.ado_id) {
                    Some(r) => snaps.get(&l.id).is_some_and(|s| s.ado_rev == r.rev),
                    // Not read: not changed since the cursor. Read and missing: gone.
                    None => !read_linked.contains(&l.ado_id) && !ado_failed.contains(&l.ado_id),
                })
                .map(|l| l.id)
                .collect();
            for id in quiet {
                if let Some(l) = links.remove(&id) {
                    obs.ado.remove(&l.ado_id);
                    obs.quiet_clickup.insert(l.clickup_id);
                }
            }
        }

        // ClickUp records: the polled ones, plus reads of the counterparts not polled.
        for t in &touch.clickup_known {
            obs.reads += 1;
            if !obs.quiet_clickup.contains(&t.id) {
                obs.clickup.insert(t.id.clone(), t.clone());
            }
        }
        let mut to_get: BTreeSet<ClickUpId> = touch.clickup_ids.clone();
        for l in links.values() {
            if !obs.clickup.contains_key(&l.clickup_id) {
                to_get.insert(l.clickup_id.clone());
            }
        }
        let mut cu_failed: HashSet<ClickUpId> = HashSet::new();
        let got = self.get_tasks(to_get.into_iter().collect()).await;
        for (id, r) in got {
            match r {
                Ok(t) => {
                    obs.reads += 1;
                    if pair.clickup.list_ids.contains(&t.list_id) {
                        obs.clickup.insert(id, t);
                    }
                    // Else it moved to a list outside the pair: out of scope, as if gone.
                }
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    cu_failed.insert(id.clone());
                    obs.failures.push(ItemFailure {
                        item: ItemRef::ClickUp(id),
                        error: e.to_string(),
                    });
                }
            }
        }

        // Back-link targets of new items that were not read yet.
        let linked_cu: BTreeSet<ClickUpId> = links.values().map(|l| l.clickup_id.clone()).collect();
        let mut want_cu: BTreeSet<ClickUpId> = BTreeSet::new();
        for r in obs.ado.values() {
            if linked_ado.contains(&r.id) {
                continue;
            }
            if let Some(t) = backlink_target_clickup(r) {
                if !obs.clickup.contains_key(&t) && !linked_cu.contains(&t) {
                    want_cu.insert(t);
                }
            }
        }
        let mut want_ado: BTreeSet<AdoId> = BTreeSet::new();
        for r in obs.clickup.values() {
            if linked_cu.contains(&r.id) {
                continue;
            }
            if let Some(a) = backlink_target_ado(r) {
                if !obs.ado.contains_key(&a) && !linked_ado.contains(&a) {
                    want_ado.insert(a);
                }
            }
        }
        for (id, r) in self.get_tasks(want_cu.into_iter().collect()).await {
            if let Ok(t) = r {
                obs.reads += 1;
                if pair.clickup.list_ids.contains(&t.list_id) {
                    obs.clickup.insert(id, t);
                }
            }
        }
        if !want_ado.is_empty() {
            let ids: Vec<AdoId> = want_ado.into_iter().collect();
            let slots = {
                let _p = self.ado_slots.acquire().await;
                self.ado.read_batch(&ids, true).await.map_err(&api)?
            };
            for (id, slot) in ids.iter().zip(slots) {
                if let AdoSlot::Found(r) = slot {
                    obs.reads += 1;
                    if sweep_ado.is_none_or(|s| s.contains(id)) {
                        obs.ado.insert(*id, r);
                    }
                }
            }
        }

        // Items with a create still pending are not planned again, and links whose record
        // could not be read are left for their retry (an unreadable item is not a deleted one).
        obs.ado
            .retain(|id, _| !pending_sources.contains(&ItemRef::Ado(*id)));
        obs.clickup
            .retain(|id, _| !pending_sources.contains(&ItemRef::ClickUp(id.clone())));
        let mut by_link_res: BTreeMap<LinkId, Vec<crate::store::Conflict>> = BTreeMap::new();
        for c in resolutions {
            by_link_res.entry(c.link_id).or_default().push(c.clone());
        }
        for l in links.values() {
            if ado_failed.contains(&l.ado_id) || cu_failed.contains(&l.clickup_id) {
                obs.ado.remove(&l.ado_id);
                obs.clickup.remove(&l.clickup_id);
                continue;
            }
            let Some(s) = snaps.get(&l.id) else {
                tracing::warn!(link = l.id, "link without a merge base; skipped");
                continue;
            };
            let mut base = s.item.clone();
            if let Some(res) = by_link_res.get(&l.id) {
                for c in res {
                    // Rewriting the base to the losing side's value makes the merge carry
                    // the winner over, as an ordinary one-sided edit.
                    let loser = match c.resolution {
                        Some(Resolution::TakeAdo) => &c.values.clickup,
                        Some(Resolution::TakeClickUp) => &c.values.ado,
                        _ => continue,
                    };
                    if let Err(e) = set_field_value(&mut base, c.field, loser) {
                        tracing::warn!(conflict = c.id, error = %e, "resolution not applied");
                    }
                }
                obs.resolutions.insert(l.id, res.clone());
            }
            obs.links.push(LinkSnapshot {
                link: l.id,
                ado_id: l.ado_id,
                clickup_id: l.clickup_id.clone(),
                base,
                ado_rev: s.ado_rev,
                clickup_date_updated: s.clickup_date_updated,
            });
        }

        // The link index: the touched links, the links of every parent and back-link target
        // the records name (or, in a sweep, every link of the pair).
        let mut index_links: Vec<Link> = links.values().cloned().collect();
        if touch.sweep.is_none() {
            let mut parent_ado: Vec<AdoId> = obs.ado.values().filter_map(|r| r.parent).collect();
            parent_ado.extend(obs.clickup.values().filter_map(backlink_target_ado));
            let mut parent_cu: Vec<ClickUpId> = obs
                .clickup
                .values()
                .filter_map(|r| r.parent.clone())
                .collect();
            parent_cu.extend(obs.ado.values().filter_map(backlink_target_clickup));
            let base_parents: Vec<LinkId> =
                obs.links.iter().filter_map(|s| s.base.parent).collect();
            let name = name.clone();
            let more = self
                .db(&pair.name, move |db| {
                    let mut v = db.links_by_ado(&name, &parent_ado)?;
                    v.extend(db.links_by_clickup(&name, &parent_cu)?);
                    v.extend(
                        db.links_by_ids(&base_parents)?
                            .into_iter()
                            .filter(|l| l.state == LinkState::Active),
                    );
                    Ok(v)
                })
                .await?;
            index_links.extend(more);
            obs.index = LinkIndex::new(
                index_links
                    .iter()
                    .map(|l| (l.id, l.ado_id, l.clickup_id.clone())),
            );
        } else {
            obs.index = LinkIndex::new(
                index_links
                    .iter()
                    .map(|l| (l.id, l.ado_id, l.clickup_id.clone())),
            );
            if let (Some(a), Some(c)) = (sweep_ado, sweep_cu) {
                obs.scope = ScopeCounts {
                    ado_in_scope: Some(a.len()),
                    clickup_in_scope: Some(c.len()),
                };
            }
        }
        Ok(obs)
    }

    /// Reads tasks one by one (ClickUp has no batch read), a few at a time.
    async fn get_tasks(
        &self,
        ids: Vec<ClickUpId>,
    ) -> Vec<(ClickUpId, Result<ClickUpRecord, ApiError>)> {
        futures::stream::iter(ids)
            .map(|id| async move {
                let _p = self.clickup_slots.acquire().await;
                let r = self.clickup.get_task(&id).await;
                (id, r)
            })
            .buffer_unordered(self.opts.clickup_concurrency.max(1))
            .collect()
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Applying
    // -----------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        plan: &Plan,
        cycle_id: Option<CycleId>,
        cancel: &CancellationToken,
        due: &HashSet<ItemRef>,
    ) -> Result<GroupOutcome, EngineError> {
        // Group the actions by link (in plan order); each create is a group of its own.
        let mut groups: Vec<Vec<&Action>> = Vec::new();
        let mut keys: BTreeMap<LinkRef, usize> = BTreeMap::new();
        for a in &plan.actions {
            let key = match a {
                Action::Link {
                    ado_id, clickup_id, ..
                } => Some(LinkRef::New {
                    ado_id: *ado_id,
                    clickup_id: clickup_id.clone(),
                }),
                Action::UpdateAdo { link, .. }
                | Action::UpdateClickUp { link, .. }
                | Action::Rebase { link, .. }
                | Action::RecordConflict { link, .. } => Some(link.clone()),
                Action::Unlink { link, .. } => Some(LinkRef::Existing(*link)),
                Action::CreateInAdo { .. } | Action::CreateInClickUp { .. } => None,
            };
            match key {
                Some(k) => match keys.get(&k) {
                    Some(&i) => groups[i].push(a),
                    None => {
                        keys.insert(k, groups.len());
                        groups.push(vec![a]);
                    }
                },
                None => groups.push(vec![a]),
            }
        }
        let width = self
            .opts
            .ado_concurrency
            .max(self.opts.clickup_concurrency)
            .max(1);
        let results: Vec<Result<GroupOutcome, EngineError>> = futures::stream::iter(groups)
            .map(|g| async move {
                if cancel.is_cancelled() {
                    return Ok(GroupOutcome::default());
                }
                self.apply_group(pair, meta, obs, &g, cycle_id).await
            })
            .buffer_unordered(width)
            .collect()
            .await;
        let mut total = GroupOutcome::default();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(o) => {
                    total.tally.add(&o.tally);
                    total.failures.extend(o.failures);
                    total.revisit.extend(o.revisit);
                    total.succeeded.extend(o.succeeded);
                    total.applied_resolutions.extend(o.applied_resolutions);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Bookkeeping: failures to the retries table, successes out of it.
        let name = pair.name.clone();
        let failures = total.failures.clone();
        let succeeded: Vec<ItemRef> = total
            .succeeded
            .iter()
            .filter(|i| due.contains(i))
            .cloned()
            .collect();
        let resolved = total.applied_resolutions.clone();
        let policy = self.opts.retry;
        self.db(&pair.name, move |db| {
            let now = Utc::now();
            for f in &failures {
                db.record_failure(&name, &f.item, &f.error, now, &policy)?;
            }
            for s in &succeeded {
                db.clear_retry(&name, s)?;
            }
            for id in &resolved {
                db.mark_conflict_applied(*id, now)?;
            }
            Ok(())
        })
        .await?;
        total.tally.failed += total.failures.len() as u64;
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    fn notify(&self, pair: &str, a: &Action, outcome: Result<(), &str>) {
        self.notify_ids(pair, a, None, None, outcome)
    }

    /// As [`Engine::notify`], naming the link's items where the action itself does not.
    fn notify_ids(
        &self,
        pair: &str,
        a: &Action,
        ado: Option<AdoId>,
        clickup: Option<&str>,
        outcome: Result<(), &str>,
    ) {
        if let Some(o) = &self.observer {
            let mut row = ActionRow::of(a);
            row.ado_id = row.ado_id.or(ado);
            if row.clickup_id.is_none() {
                row.clickup_id = clickup.map(str::to_string);
            }
            o.applied(pair, &row, outcome);
        }
    }

    async fn audit(&self, pair: &str, entry: AuditEntry) -> Result<(), EngineError> {
        self.db(pair, move |db| db.append_audit(&entry).map(|_| ()))
            .await
    }

    fn audit_entry(
        pair: &str,
        cycle_id: Option<CycleId>,
        link: Option<LinkId>,
        side: Side,
        item_id: String,
        action: AuditAction,
        fields: Vec<Field>,
    ) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            cycle_id,
            pair: Some(pair.to_string()),
            link_id: link,
            side: Some(side),
            item_id: Some(item_id),
            action,
            fields,
            before: None,
            after: None,
            outcome: AuditOutcome::Ok,
            detail: None,
        }
    }

    /// Applies one link's actions in order, or one create. Item failures end up in `out`;
    /// only store failures (and failpoints) are errors.
    async fn apply_group(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        actions: &[&Action],
        cycle_id: Option<CycleId>,
    ) -> Result<GroupOutcome, EngineError> {
        let mut out = GroupOutcome::default();
        let Some(first) = actions.first().copied() else {
            return Ok(out);
        };
        match first {
            Action::CreateInClickUp {
                source,
                create,
                planned,
            } => {
                let Some(src) = obs.ado.get(source) else {
                    return Ok(out);
                };
                let made = self
                    .create_in_clickup(pair, src, create, planned, None, cycle_id, &mut out)
                    .await?;
                self.notify_result(&pair.name, first, &out);
                if let Some(c) = made {
                    out.succeeded.push(ItemRef::Ado(src.id));
                    // Its parent had no counterpart when this was planned; now it may.
                    if src.parent.is_some() && planned.parent.is_none() {
                        out.revisit.push((src.id, c));
                    }
                }
                return Ok(out);
            }
            Action::CreateInAdo {
                source,
                create,
                planned,
            } => {
                let Some(src) = obs.clickup.get(source) else {
                    return Ok(out);
                };
                let made = self
                    .create_in_ado(pair, meta, src, create, planned, None, cycle_id, &mut out)
                    .await?;
                self.notify_result(&pair.name, first, &out);
                if let Some(a) = made {
                    out.succeeded.push(ItemRef::ClickUp(src.id.clone()));
                    if src.parent.is_some() && planned.parent.is_none() {
                        out.revisit.push((a, src.id.clone()));
                    }
                }
                return Ok(out);
            }
            _ => {}
        }

        let (link, ado_id, cu_id, base) = match first {
            Action::Link {
                ado_id, clickup_id, ..
            } => (None, *ado_id, clickup_id.clone(), None),
            other => {
                let id = match other {
                    Action::UpdateAdo {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::UpdateClickUp {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::Rebase {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::RecordConflict {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::Unlink { link: id, .. } => *id,
                    _ => return Ok(out),
                };
                let Some(s) = obs.links.iter().find(|s| s.link == id) else {
                    return Ok(out);
                };
                (
                    Some(id),
                    s.ado_id,
                    s.clickup_id.clone(),
                    Some(s.base.clone()),
                )
            }
        };
        match (obs.ado.get(&ado_id), obs.clickup.get(&cu_id)) {
            (Some(a), Some(c)) => {
                let mut w = LinkWork {
                    link,
                    clickup_checked: false,
                    ado: a.clone(),
                    clickup: c.clone(),
                    base,
                };
                let ok = self
                    .apply_link_actions(pair, meta, obs, actions, &mut w, true, cycle_id, &mut out)
                    .await?;
                if ok {
                    out.succeeded.push(ItemRef::Ado(ado_id));
                    out.succeeded.push(ItemRef::ClickUp(cu_id));
                    if let Some(res) = w.link.and_then(|l| obs.resolutions.get(&l)) {
                        out.applied_resolutions.extend(res.iter().map(|c| c.id));
                    }
                }
            }
            (a, c) => {
                let Some(link) = link else {
                    return Ok(out);
                };
                self.apply_vanished(
                    pair, link, ado_id, &cu_id, actions, a, c, cycle_id, &mut out,
                )
                .await?;
            }
        }
        Ok(out)
    }

    fn notify_result(&self, pair: &str, a: &Action, out: &GroupOutcome) {
        match out.failures.last() {
            Some(f) => self.notify(pair, a, Err(&f.error)),
            None => self.notify(pair, a, Ok(())),
        }
    }

    fn fail(&self, pair: &str, a: &Action, out: &mut GroupOutcome, item: ItemRef, error: String) {
        tracing::warn!(pair, %item, %error, "write failed");
        self.notify(pair, a, Err(&error));
        out.failures.push(ItemFailure { item, error });
    }

    /// The actions of a link whose two records are both present. Returns whether all of them
    /// were applied.
    #[allow(clippy::too_many_arguments)]
    async fn apply_link_actions(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        actions: &[&Action],
        w: &mut LinkWork,
        allow_replan: bool,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<bool, EngineError> {
        let name = pair.name.as_str();
        let mut linked_now = false;
        for a in actions.iter().copied() {
            match a {
                Action::Link {
                    ado_id,
                    clickup_id,
                    base,
                } => {
                    let nl = NewLink {
                        pair: name.to_string(),
                        ado_id: *ado_id,
                        clickup_id: clickup_id.clone(),
                        base: base.clone(),
                        ado_rev: w.ado.rev,
                        clickup_updated: w.clickup.date_updated,
                    };
                    let r = self
                        .store
                        .call(move |db| db.record_link_with_snapshot(None, &nl, Utc::now()))
                        .await;
                    match r {
                        Ok(id) => {
                            w.link = Some(id);
                            w.base = Some(base.clone());
                            linked_now = true;
                            out.tally.linked += 1;
                            let e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(id),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Link,
                                vec![],
                            );
                            self.audit(
                                name,
                                AuditEntry {
                                    detail: Some(format!(
                                        "matched ClickUp task {clickup_id} by back-link"
                                    )),
                                    ..e
                                },
                            )
                            .await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(e @ StoreError::DuplicateLink { .. }) => {
                            self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                            return Ok(false);
                        }
                        Err(source) => {
                            return Err(EngineError::Store {
                                pair: name.to_string(),
                                source,
                            })
                        }
                    }
                }
                Action::UpdateAdo {
                    ado_id,
                    expected_rev,
                    patch,
                    new_base,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    let r = self.ado_update(*ado_id, *expected_rev, patch).await;
                    match r {
                        Ok(rec) => {
                            w.ado = rec;
                            self.store_base(
                                name,
                                link,
                                new_base,
                                w.ado.rev,
                                w.clickup.date_updated,
                            )
                            .await?;
                            out.tally.updated_ado += 1;
                            let mut e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(link),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Update,
                                ado_patch_fields(patch),
                            );
                            e.before = w.base.as_ref().map(|b| values(b, &e.fields));
                            e.after = Some(values(new_base, &e.fields));
                            w.base = Some(new_base.clone());
                            self.audit(name, e).await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(ApiError::Conflict { .. }) if allow_replan => {
                            // Someone edited the item since it was read: merge again with its
                            // new state rather than overwrite it.
                            let fresh = {
                                let _p = self.ado_slots.acquire().await;
                                self.ado.read_batch(&[*ado_id], false).await
                            };
                            match fresh.map(|mut v| v.pop()) {
                                Ok(Some(AdoSlot::Found(rec))) => {
                                    w.ado = rec;
                                    return Box::pin(
                                        self.replan(pair, meta, obs, w, cycle_id, out),
                                    )
                                    .await;
                                }
                                Ok(_) => {
                                    let msg = format!(
                                        "ADO #{ado_id} changed during the write and could not be read again"
                                    );
                                    self.fail(name, a, out, ItemRef::Ado(*ado_id), msg);
                                    return Ok(false);
                                }
                                Err(e) => {
                                    self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                                    return Ok(false);
                                }
                            }
                        }
                        Err(e) => {
                            self.audit_failed(
                                name,
                                cycle_id,
                                Some(link),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Update,
                                ado_patch_fields(patch),
                                &e.to_string(),
                            )
                            .await?;
                            self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                            return Ok(false);
                        }
                    }
                }
                Action::UpdateClickUp {
                    clickup_id,
                    expected_date_updated,
                    patch,
                    new_base,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    if !w.clickup_checked {
                        // ClickUp has no conditional write: read just before writing, and
                        // merge again if the task moved since it was planned.
                        let cur = {
                            let _p = self.clickup_slots.acquire().await;
                            self.clickup.get_task(clickup_id).await
                        };
                        match cur {
                            Ok(t) => {
                                w.clickup_checked = true;
                                let moved = t.date_updated != *expected_date_updated;
                                w.clickup = t;
                                if moved {
                                    if allow_replan {
                                        return Box::pin(
                                            self.replan(pair, meta, obs, w, cycle_id, out),
                                        )
                                        .await;
                                    }
                                    let msg = format!(
                                        "ClickUp task {clickup_id} changed again while being synced"
                                    );
                                    self.fail(
                                        name,
                                        a,
                                        out,
                                        ItemRef::ClickUp(clickup_id.clone()),
                                        msg,
                                    );
                                    return Ok(false);
                                }
                            }
                            Err(e) => {
                                self.fail(
                                    name,
                                    a,
                                    out,
                                    ItemRef::ClickUp(clickup_id.clone()),
                                    e.to_string(),
                                );
                                return Ok(false);
                            }
                        }
                    }
                    let r = {
                        let _p = self.clickup_slots.acquire().await;
                        self.clickup.update_task(clickup_id, patch).await
                    };
                    match r {
                        Ok(t) => {
                            // The answer carries our write and anything written meanwhile
                            // (ClickUp has no conditional write): its marker is ours only if
                            // the task shows exactly what we wrote.
                            let marker = if self.clickup_shows(pair, meta, &t, new_base) {
                                t.date_updated
                            } else {
                                UNKNOWN_MARKER
                            };
                            w.clickup.date_updated = t.date_updated;
                            self.store_base(name, link, new_base, w.ado.rev, marker)
                                .await?;
                            out.tally.updated_clickup += 1;
                            let mut e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(link),
                                Side::ClickUp,
                                clickup_id.clone(),
                                AuditAction::Update,
                                clickup_patch_fields(patch),
                            );
                            e.before = w.base.as_ref().map(|b| values(b, &e.fields));
                            e.after = Some(values(new_base, &e.fields));
                            w.base = Some(new_base.clone());
                            self.audit(name, e).await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(e) => {
                            self.audit_failed(
                                name,
                                cycle_id,
                                Some(link),
                                Side::ClickUp,
                                clickup_id.clone(),
                                AuditAction::Update,
                                clickup_patch_fields(patch),
                                &e.to_string(),
                            )
                            .await?;
                            self.fail(
                                name,
                                a,
                                out,
                                ItemRef::ClickUp(clickup_id.clone()),
                                e.to_string(),
                            );
                            return Ok(false);
                        }
                    }
                }
                Action::Rebase { base, .. } => {
                    let Some(link) = w.link else { return Ok(false) };
                    self.store_base(name, link, base, w.ado.rev, w.clickup.date_updated)
                        .await?;
                    w.base = Some(base.clone());
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::RecordConflict {
                    conflict,
                    detected_at,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    self.record_conflict(name, link, conflict, *detected_at)
                        .await?;
                    // The base stays (the field is held); the markers move on, so the link
                    // is quiet until someone edits it again.
                    if let Some(b) = &w.base {
                        self.store_base(name, link, b, w.ado.rev, w.clickup.date_updated)
                            .await?;
                    }
                    out.tally.conflicts += 1;
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::Unlink { link, reason } => {
                    self.unlink(name, *link, reason, cycle_id, out).await?;
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::CreateInAdo { .. } | Action::CreateInClickUp { .. } => {}
            }
        }
        if linked_now {
            self.repair_backlinks(name, w).await;
        }
        Ok(true)
    }

    /// Plans one link again with its fresh records and applies the result (once: a second
    /// concurrent edit leaves the link for the next cycle).
    async fn replan(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        w: &mut LinkWork,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<bool, EngineError> {
        let (Some(link), Some(base)) = (w.link, w.base.clone()) else {
            return Ok(false);
        };
        tracing::info!(pair = %pair.name, link, "item changed during the sync; merging again");
        let mut index = obs.index.clone();
        index.insert(link, w.ado.id, w.clickup.id.clone());
        let snap = LinkSnapshot {
            link,
            ado_id: w.ado.id,
            clickup_id: w.clickup.id.clone(),
            base,
            ado_rev: w.ado.rev,
            clickup_date_updated: w.clickup.date_updated,
        };
        let mut users = meta.users.clone();
        users.ado_unknown = lock(&self.unknown_ado_users).clone();
        let plan = plan::plan(&PlanInput {
            pair: &pair.name,
            links: std::slice::from_ref(&snap),
            ado_records: std::slice::from_ref(&w.ado),
            clickup_records: std::slice::from_ref(&w.clickup),
            link_index: &index,
            mapping: &pair.mapping,
            context: &meta.context,
            users: &users,
            limits: plan::Limits {
                force: true,
                ..plan::Limits::default()
            },
            scope: ScopeCounts::default(),
            now: Utc::now(),
        })?;
        let actions: Vec<&Action> = plan.actions.iter().collect();
        Box::pin(self.apply_link_actions(pair, meta, obs, &actions, w, false, cycle_id, out)).await
    }

    /// After two existing items were linked by one side's marker, give the other side its
    /// marker too (best effort: the link itself is already recorded).
    async fn repair_backlinks(&self, pair: &str, w: &mut LinkWork) {
        if !w.ado.hyperlinks.iter().any(|u| u == &w.clickup.url) && !w.clickup.url.is_empty() {
            let _p = self.ado_slots.acquire().await;
            match self
                .ado
                .add_hyperlink(w.ado.id, w.ado.rev, &w.clickup.url)
                .await
            {
                Ok(r) => w.ado.rev = r.rev,
                Err(e) => tracing::warn!(pair, error = %e, "could not add the back-link to ADO"),
            }
        }
        if self.clickup.backlink_field_id().is_some()
            && w.clickup.backlink.as_deref() != Some(w.ado.web_url.as_str())
        {
            let _p = self.clickup_slots.acquire().await;
            match self
                .clickup
                .set_backlink(&w.clickup.id, &w.ado.web_url)
                .await
            {
                Ok(t) => w.clickup.date_updated = t.date_updated,
                Err(e) => {
                    tracing::warn!(pair, error = %e, "could not set the back-link in ClickUp")
                }
            }
        }
    }

    /// A link with one side (or both) gone: the mirror writes, then the unlink.
    #[allow(clippy::too_many_arguments)]
    async fn apply_vanished(
        &self,
        pair: &PairConfig,
        link: LinkId,
        ado_id: AdoId,
        cu_id: &str,
        actions: &[&Action],
        ado: Option<&AdoRecord>,
        cu: Option<&ClickUpRecord>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.as_str();
        for a in actions.iter().copied() {
            match a {
                Action::UpdateAdo {
                    expected_rev,
                    patch,
                    ..
                } if ado.is_some() => {
                    if let Err(e) = self.ado_update(ado_id, *expected_rev, patch).await {
                        self.fail(name, a, out, ItemRef::Ado(ado_id), e.to_string());
                        return Ok(());
                    }
                    out.tally.updated_ado += 1;
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::Ado,
                        ado_id.to_string(),
                        AuditAction::Mirror,
                        ado_patch_fields(patch),
                    );
                    self.audit(name, e).await?;
                    self.notify(name, a, Ok(()));
                }
                Action::UpdateClickUp { patch, .. } if cu.is_some() => {
                    let r = {
                        let _p = self.clickup_slots.acquire().await;
                        self.clickup.update_task(cu_id, patch).await
                    };
                    if let Err(e) = r {
                        self.fail(
                            name,
                            a,
                            out,
                            ItemRef::ClickUp(cu_id.to_string()),
                            e.to_string(),
                        );
                        return Ok(());
                    }
                    out.tally.updated_clickup += 1;
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        cu_id.to_string(),
                        AuditAction::Mirror,
                        clickup_patch_fields(patch),
                    );
                    self.audit(name, e).await?;
                    self.notify(name, a, Ok(()));
                }
                Action::Unlink { link, reason } => {
                    self.unlink(name, *link, reason, cycle_id, out).await?;
                    self.notify(name, a, Ok(()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn unlink(
        &self,
        pair: &str,
        link: LinkId,
        reason: &str,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let why = reason.to_string();
        let l = self
            .db(pair, move |db| db.unlink(link, &why, Utc::now()))
            .await?;
        out.tally.unlinked += 1;
        let mut e = Self::audit_entry(
            pair,
            cycle_id,
            Some(link),
            Side::Ado,
            l.ado_id.to_string(),
            AuditAction::Unlink,
            vec![],
        );
        e.side = None;
        e.detail = Some(reason.to_string());
        self.audit(pair, e).await
    }

    async fn store_base(
        &self,
        pair: &str,
        link: LinkId,
        base: &Item,
        ado_rev: i64,
        clickup_updated: i64,
    ) -> Result<(), EngineError> {
        let base = base.clone();
        self.db(pair, move |db| {
            db.store_base(link, &base, ado_rev, clickup_updated, Utc::now())
        })
        .await
    }

    async fn record_conflict(
        &self,
        pair: &str,
        link: LinkId,
        c: &MergeConflict,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let values = ConflictValues {
            base: c.base.clone(),
            ado: c.ado.clone(),
            clickup: c.clickup.clone(),
        };
        let field = c.field;
        tracing::info!(pair, link, %field, "conflict recorded");
        self.db(pair, move |db| {
            db.upsert_conflict(link, field, &values, at).map(|_| ())
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit_failed(
        &self,
        pair: &str,
        cycle_id: Option<CycleId>,
        link: Option<LinkId>,
        side: Side,
        item: String,
        action: AuditAction,
        fields: Vec<Field>,
        error: &str,
    ) -> Result<(), EngineError> {
        let mut e = Self::audit_entry(pair, cycle_id, link, side, item, action, fields);
        e.outcome = AuditOutcome::Failed;
        e.detail = Some(error.to_string());
        self.audit(pair, e).await
    }

    /// Whether a task as ClickUp answered after a write shows `item` in every synced field it
    /// reliably carries (the answer to Update Task need not carry the description; parents
    /// are compared by the planner).
    fn clickup_shows(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        rec: &ClickUpRecord,
        item: &Item,
    ) -> bool {
        let mut users = meta.users.clone();
        users.ado_unknown = lock(&self.unknown_ado_users).clone();
        let m = Mapper::new(&pair.mapping, &meta.context, &users);
        let mut issues = Vec::new();
        let cur = m.clickup_to_item(rec, item.parent, &mut issues);
        [
            Field::Title,
            Field::Status,
            Field::Assignees,
            Field::Tags,
            Field::Priority,
            Field::Due,
        ]
        .into_iter()
        .all(|f| m.clickup_same(f, item, &cur))
    }

    /// An ADO update; an assignee the service does not know is dropped (and remembered, so
    /// it is not tried again) rather than failing the whole write.
    async fn ado_update(
        &self,
        id: AdoId,
        rev: i64,
        patch: &AdoPatch,
    ) -> Result<AdoRecord, ApiError> {
        let first = {
            let _p = self.ado_slots.acquire().await;
            self.ado.update(id, rev, patch).await
        };
        match first {
            Err(e) if self.learn_unknown_identity(&e, patch.assigned_to.as_ref()) => {
                let mut p = patch.clone();
                p.assigned_to = None;
                if p.is_empty() {
                    let _p = self.ado_slots.acquire().await;
                    return self.ado.get(id).await;
                }
                let _p = self.ado_slots.acquire().await;
                self.ado.update(id, rev, &p).await
            }
            other => other,
        }
    }

    /// Whether `e` refused `assigned` as an unknown identity (which is then remembered).
    fn learn_unknown_identity(&self, e: &ApiError, assigned: Option<&Option<String>>) -> bool {
        let ApiError::Validation { message, .. } = e else {
            return false;
        };
        let Some(Some(email)) = assigned else {
            return false;
        };
        if !message.to_lowercase().contains("identity") {
            return false;
        }
        tracing::warn!(%email, "ADO does not know this user; it is left unassigned in ADO");
        lock(&self.unknown_ado_users).insert(email.to_lowercase());
        true
    }

    // -----------------------------------------------------------------------------------------
    // Creates
    // -----------------------------------------------------------------------------------------

    /// Creates the ClickUp counterpart of ADO item `src`: intent first, then the create (with
    /// the ADO URL in the link custom field when there is one), then the link, then the ADO
    /// item's own back-link. Returns the new task's id.
    #[allow(clippy::too_many_arguments)]
    async fn create_in_clickup(
        &self,
        pair: &PairConfig,
        src: &AdoRecord,
        create: &ClickUpCreate,
        planned: &Item,
        intent: Option<i64>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<Option<ClickUpId>, EngineError> {
        let name = pair.name.as_str();
        let source = ItemRef::Ado(src.id);
        let resumed = intent.is_some();
        let Some(intent) = self
            .open_intent(
                name,
                intent,
                &source,
                PlannedCreate::ClickUp {
                    create: create.clone(),
                    planned: planned.clone(),
                },
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_intent")?;
        let r = {
            let _p = self.clickup_slots.acquire().await;
            self.clickup.create_task(create).await
        };
        let task = match r {
            Ok(t) => t,
            Err(e) => {
                self.create_failed(name, intent, &source, &e, cycle_id, Side::ClickUp, out)
                    .await?;
                return Ok(None);
            }
        };
        crash_point("engine::after_remote_create")?;
        // Resuming an intent: the source was read now, the planned create earlier.
        let src_marker = if resumed { UNKNOWN_MARKER } else { src.rev };
        let Some(link) = self
            .record_created(
                name,
                intent,
                src.id,
                &task.id,
                planned,
                src_marker,
                task.date_updated,
                &source,
                out,
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_link_recorded")?;
        out.tally.created_clickup += 1;
        let mut e = Self::audit_entry(
            name,
            cycle_id,
            Some(link),
            Side::ClickUp,
            task.id.clone(),
            AuditAction::Create,
            clickup_patch_fields(&create.fields),
        );
        e.after = Some(values(planned, &e.fields));
        e.detail = Some(format!("from ADO #{}", src.id));
        self.audit(name, e).await?;

        // The source's own back-link: a Hyperlink relation to the task.
        let mut marker = src_marker;
        if !src.hyperlinks.iter().any(|u| u == &task.url) {
            let after = self
                .add_ado_backlink(name, src.id, src.rev, &task.url, link, cycle_id)
                .await?;
            marker = if resumed { UNKNOWN_MARKER } else { after };
        }
        self.store_base(name, link, planned, marker, task.date_updated)
            .await?;
        crash_point("engine::after_base_stored")?;
        Ok(Some(task.id))
    }

    /// Creates the ADO counterpart of ClickUp task `src` (with a Hyperlink relation to the
    /// task: the marker), then the link, then the task's back-link field when configured.
    #[allow(clippy::too_many_arguments)]
    async fn create_in_ado(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        src: &ClickUpRecord,
        create: &AdoCreate,
        planned: &Item,
        intent: Option<i64>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<Option<AdoId>, EngineError> {
        let name = pair.name.as_str();
        let source = ItemRef::ClickUp(src.id.clone());
        let resumed = intent.is_some();
        let Some(intent) = self
            .open_intent(
                name,
                intent,
                &source,
                PlannedCreate::Ado {
                    create: create.clone(),
                    planned: planned.clone(),
                },
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_intent")?;
        let mut r = {
            let _p = self.ado_slots.acquire().await;
            self.ado.create(create).await
        };
        if let Err(e) = &r {
            // A 400 creates nothing, so trying again without the unknown assignee is safe.
            if self.learn_unknown_identity(e, create.fields.assigned_to.as_ref()) {
                let mut c = create.clone();
                c.fields.assigned_to = None;
                let _p = self.ado_slots.acquire().await;
                r = self.ado.create(&c).await;
            }
        }
        let item = match r {
            Ok(t) => t,
            Err(e) => {
                self.create_failed(name, intent, &source, &e, cycle_id, Side::Ado, out)
                    .await?;
                return Ok(None);
            }
        };
        crash_point("engine::after_remote_create")?;
        let Some(link) = self
            .record_created(
                name,
                intent,
                item.id,
                &src.id,
                planned,
                item.rev,
                // Resuming an intent: the source was read now, the planned create earlier.
                if resumed {
                    UNKNOWN_MARKER
                } else {
                    src.date_updated
                },
                &source,
                out,
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_link_recorded")?;
        out.tally.created_ado += 1;
        let mut e = Self::audit_entry(
            name,
            cycle_id,
            Some(link),
            Side::Ado,
            item.id.to_string(),
            AuditAction::Create,
            ado_patch_fields(&create.fields),
        );
        e.after = Some(values(planned, &e.fields));
        e.detail = Some(format!("from ClickUp task {}", src.id));
        self.audit(name, e).await?;

        let mut updated = if resumed {
            UNKNOWN_MARKER
        } else {
            src.date_updated
        };
        if self.clickup.backlink_field_id().is_some()
            && src.backlink.as_deref() != Some(item.web_url.as_str())
        {
            let r = {
                let _p = self.clickup_slots.acquire().await;
                self.clickup.set_backlink(&src.id, &item.web_url).await
            };
            match r {
                Ok(t) => {
                    // ClickUp has no conditional write: the task may have been edited since
                    // it was read; its marker is ours only if it still shows what was planned.
                    if !resumed && self.clickup_shows(pair, meta, &t, planned) {
                        updated = t.date_updated;
                    } else {
                        updated = UNKNOWN_MARKER;
                    }
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        src.id.clone(),
                        AuditAction::Backlink,
                        vec![],
                    );
                    self.audit(name, e).await?;
                }
                Err(e) => {
                    tracing::warn!(pair = name, task = %src.id, error = %e, "could not set the back-link field");
                    self.audit_failed(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        src.id.clone(),
                        AuditAction::Backlink,
                        vec![],
                        &e.to_string(),
                    )
                    .await?;
                }
            }
        }
        self.store_base(name, link, planned, item.rev, updated)
            .await?;
        crash_point("engine::after_base_stored")?;
        Ok(Some(item.id))
    }

    /// Records the intent of a create (unless resuming one). `None` when another create of
    /// the same item is still pending: recovery settles that one first.
    async fn open_intent(
        &self,
        pair: &str,
        resume: Option<i64>,
        source: &ItemRef,
        planned: PlannedCreate,
    ) -> Result<Option<i64>, EngineError> {
        if let Some(id) = resume {
            return Ok(Some(id));
        }
        crash_point("engine::before_create")?;
        let name = pair.to_string();
        let src = source.clone();
        let r = self
            .store
            .call(move |db| db.create_intent(&name, &src, &planned, Utc::now()))
            .await;
        match r {
            Ok(id) => Ok(Some(id)),
            Err(StoreError::IntentAlreadyPending { .. }) => Ok(None),
            Err(source) => Err(EngineError::Store {
                pair: pair.to_string(),
                source,
            }),
        }
    }

    /// A create that failed: when the service surely made nothing (it refused the request),
    /// the intent is closed; when it may have (a timeout, a 5xx, an unreadable answer), the
    /// intent stays pending and recovery looks for the marker before creating again.
    #[allow(clippy::too_many_arguments)]
    async fn create_failed(
        &self,
        pair: &str,
        intent: i64,
        source: &ItemRef,
        e: &ApiError,
        cycle_id: Option<CycleId>,
        target: Side,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let nothing_made = matches!(
            e,
            ApiError::Validation { .. }
                | ApiError::Auth { .. }
                | ApiError::NotFound { .. }
                | ApiError::RateLimited { .. }
                | ApiError::Conflict { .. }
        );
        let msg = e.to_string();
        if nothing_made {
            let m = msg.clone();
            self.db(pair, move |db| {
                db.mark_intent_abandoned(intent, &m, Utc::now())
            })
            .await?;
        }
        self.audit_failed(
            pair,
            cycle_id,
            None,
            target,
            source.id_text(),
            AuditAction::Create,
            vec![],
            &msg,
        )
        .await?;
        tracing::warn!(pair, %source, error = %msg, "create failed");
        out.failures.push(ItemFailure {
            item: source.clone(),
            error: msg,
        });
        Ok(())
    }

    /// Records the link of a create and closes its intent, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record_created(
        &self,
        pair: &str,
        intent: i64,
        ado_id: AdoId,
        clickup_id: &str,
        planned: &Item,
        ado_rev: i64,
        clickup_updated: i64,
        source: &ItemRef,
        out: &mut GroupOutcome,
    ) -> Result<Option<LinkId>, EngineError> {
        let nl = NewLink {
            pair: pair.to_string(),
            ado_id,
            clickup_id: clickup_id.to_string(),
            base: planned.clone(),
            ado_rev,
            clickup_updated,
        };
        let r = self
            .store
            .call(move |db| db.record_link_with_snapshot(Some(intent), &nl, Utc::now()))
            .await;
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e @ StoreError::DuplicateLink { .. }) => {
                // Should not happen (the source was unlinked when planned); the intent stays
                // pending and recovery sorts it out.
                tracing::error!(pair, %source, error = %e, "created item could not be linked");
                out.failures.push(ItemFailure {
                    item: source.clone(),
                    error: e.to_string(),
                });
                Ok(None)
            }
            Err(source) => Err(EngineError::Store {
                pair: pair.to_string(),
                source,
            }),
        }
    }

    /// Adds the Hyperlink back-link to ADO item `id`; on a stale rev reads it again and tries
    /// once more. Returns the item's rev afterwards (best effort: a failure is only logged).
    async fn add_ado_backlink(
        &self,
        pair: &str,
        id: AdoId,
        rev: i64,
        url: &str,
        link: LinkId,
        cycle_id: Option<CycleId>,
    ) -> Result<i64, EngineError> {
        let first = {
            let _p = self.ado_slots.acquire().await;
            self.ado.add_hyperlink(id, rev, url).await
        };
        // Only a write that passed `test /rev` at the rev the base was read at leaves an item
        // holding nothing but the base and our link.
        let clean = first.is_ok();
        let r = match first {
            Err(ApiError::Conflict { .. }) => {
                let _p = self.ado_slots.acquire().await;
                match self.ado.get(id).await {
                    Ok(cur) if cur.hyperlinks.iter().any(|u| u == url) => Ok(cur),
                    Ok(cur) => self.ado.add_hyperlink(id, cur.rev, url).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match r {
            Ok(rec) => {
                let e = Self::audit_entry(
                    pair,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    id.to_string(),
                    AuditAction::Backlink,
                    vec![],
                );
                self.audit(pair, e).await?;
                Ok(if clean { rec.rev } else { UNKNOWN_MARKER })
            }
            Err(e) => {
                tracing::warn!(pair, ado = id, error = %e, "could not add the back-link to ADO");
                self.audit_failed(
                    pair,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    id.to_string(),
                    AuditAction::Backlink,
                    vec![],
                    &e.to_string(),
                )
                .await?;
                Ok(rev)
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Recovery
    // -----------------------------------------------------------------------------------------

    /// Resolves every pending create of the pair: the target is searched for the create's
    /// marker; found → linked, not found → created now. Runs before anything is polled.
    async fn recover_intents(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        cycle_id: Option<CycleId>,
        rep: &mut PairReport,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let intents = self
            .db(&pair.name, move |db| db.pending_intents(Some(&name)))
            .await?;
        for it in intents {
            let mut out = GroupOutcome::default();
            let planned: Result<PlannedCreate, _> = it.planned_as();
            let r = match (&it.source, planned) {
                (ItemRef::Ado(src), Ok(PlannedCreate::ClickUp { create, planned })) => {
                    self.recover_to_clickup(pair, &it, *src, &create, &planned, cycle_id, &mut out)
                        .await
                }
                (ItemRef::ClickUp(src), Ok(PlannedCreate::Ado { create, planned })) => {
                    self.recover_to_ado(pair, meta, &it, src, &create, &planned, cycle_id, &mut out)
                        .await
                }
                (_, planned) => {
                    let why = match planned {
                        Err(e) => format!("its planned create does not decode: {e}"),
                        Ok(_) => "its planned create is for the wrong side".to_string(),
                    };
                    let id = it.id;
                    self.db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, &why, Utc::now())
                    })
                    .await
                }
            };
            if let Err(e) = r {
                match e {
                    EngineError::Api { source, .. } => out.failures.push(ItemFailure {
                        item: it.source.clone(),
                        error: format!("recovering the pending create {}: {source}", it.id),
                    }),
                    other => return Err(other),
                }
            }
            rep.tally.add(&out.tally);
            for f in out.failures {
                rep.failures.push((f.item.to_string(), f.error.clone()));
                rep.tally.failed += 1;
                self.record_failure(&pair.name, f.item, &f.error).await?;
            }
        }
        Ok(())
    }

    fn search_since(&self, it: &Intent) -> DateTime<Utc> {
        // The intent's time is ours, the target's creation time is the service's: allow for
        // skew.
        let margin = chrono::Duration::from_std(self.opts.overlap.max(Duration::from_secs(300)))
            .unwrap_or(chrono::Duration::minutes(5));
        it.created_at - margin
    }

    #[allow(clippy::too_many_arguments)]
    async fn recover_to_clickup(
        &self,
        pair: &PairConfig,
        it: &Intent,
        src_id: AdoId,
        create: &ClickUpCreate,
        planned: &Item,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let api = Self::api(&pair.name);
        let slot = self
            .ado
            .read_batch(&[src_id], true)
            .await
            .map_err(&api)?
            .pop();
        let src = match slot {
            Some(AdoSlot::Found(r)) => r,
            Some(AdoSlot::Malformed(e)) => return Err(api(e)),
            _ => {
                let id = it.id;
                return self
                    .db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, "the source ADO item is gone", Utc::now())
                    })
                    .await;
            }
        };
        let (n, id) = (name.clone(), it.id);
        if let Some(l) = self
            .db(&pair.name, move |db| db.link_by_ado(&n, src_id))
            .await?
        {
            let cu = l.clickup_id.clone();
            return self
                .db(&pair.name, move |db| {
                    db.mark_intent_done(id, &cu, Utc::now())
                })
                .await;
        }
        let since = self.search_since(it).timestamp_millis();
        let poll = self
            .clickup
            .created_since(std::slice::from_ref(&create.list_id), since)
            .await
            .map_err(&api)?;
        let ids: Vec<ClickUpId> = poll.tasks.iter().map(|t| t.id.clone()).collect();
        let n = name.clone();
        let linked: HashSet<ClickUpId> = self
            .db(&pair.name, move |db| db.links_by_clickup(&n, &ids))
            .await?
            .into_iter()
            .map(|l| l.clickup_id)
            .collect();
        let by_marker = self.clickup.backlink_field_id().is_some();
        let hinted = backlink_target_clickup(&src);
        let mut candidates: Vec<&ClickUpRecord> = poll
            .tasks
            .iter()
            .filter(|t| !linked.contains(&t.id))
            .filter(|t| {
                Some(&t.id) == hinted.as_ref()
                    || if by_marker {
                        backlink_target_ado(t) == Some(src_id)
                    } else {
                        Some(&t.name) == create.fields.name.as_ref()
                    }
            })
            .collect();
        candidates.sort_by_key(|t| (Some(&t.id) != hinted.as_ref(), t.date_created));
        match candidates.first() {
            Some(task) => {
                tracing::info!(pair = %pair.name, ado = src_id, task = %task.id, "pending create found by its marker; linked");
                let Some(link) = self
                    .record_created(
                        &pair.name,
                        it.id,
                        src_id,
                        &task.id,
                        planned,
                        // Either side may have changed since the create was planned.
                        UNKNOWN_MARKER,
                        UNKNOWN_MARKER,
                        &it.source,
                        out,
                    )
                    .await?
                else {
                    return Ok(());
                };
                out.tally.recovered += 1;
                let mut e = Self::audit_entry(
                    &pair.name,
                    cycle_id,
                    Some(link),
                    Side::ClickUp,
                    task.id.clone(),
                    AuditAction::Link,
                    vec![],
                );
                e.detail = Some(format!("recovered the pending create of ADO #{src_id}"));
                self.audit(&pair.name, e).await?;
                if !src.hyperlinks.iter().any(|u| u == &task.url) {
                    self.add_ado_backlink(&pair.name, src_id, src.rev, &task.url, link, cycle_id)
                        .await?;
                }
                Ok(())
            }
            None => {
                tracing::info!(pair = %pair.name, ado = src_id, "pending create not found in ClickUp; creating it");
                self.create_in_clickup(pair, &src, create, planned, Some(it.id), cycle_id, out)
                    .await
                    .map(|_| ())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn recover_to_ado(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        it: &Intent,
        src_id: &str,
        create: &AdoCreate,
        planned: &Item,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let api = Self::api(&pair.name);
        let src = match self.clickup.get_task(src_id).await {
            Ok(t) => t,
            Err(ApiError::NotFound { .. }) => {
                let id = it.id;
                return self
                    .db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, "the source ClickUp task is gone", Utc::now())
                    })
                    .await;
            }
            Err(e) => return Err(api(e)),
        };
        let (n, id, s) = (name.clone(), it.id, src_id.to_string());
        if let Some(l) = self
            .db(&pair.name, move |db| db.link_by_clickup(&n, &s))
            .await?
        {
            let a = l.ado_id.to_string();
            return self
                .db(&pair.name, move |db| {
                    db.mark_intent_done(id, &a, Utc::now())
                })
                .await;
        }
        let since = self.search_since(it);
        let mut ids = self
            .ado
            .ids_created_since(&create.work_item_type, since)
            .await
            .map_err(&api)?;
        if let Some(h) = backlink_target_ado(&src) {
            if !ids.contains(&h) {
                ids.push(h);
            }
        }
        let slots = if ids.is_empty() {
            Vec::new()
        } else {
            self.ado.read_batch(&ids, true).await.map_err(&api)?
        };
        let found: Vec<AdoRecord> = slots
            .into_iter()
            .filter_map(|s| match s {
                AdoSlot::Found(r) => Some(r),
                _ => None,
            })
            .filter(|r| backlink_target_clickup(r).as_deref() == Some(src_id))
            .collect();
        let found_ids: Vec<AdoId> = found.iter().map(|r| r.id).collect();
        let n = name.clone();
        let linked: HashSet<AdoId> = self
            .db(&pair.name, move |db| db.links_by_ado(&n, &found_ids))
            .await?
            .into_iter()
            .map(|l| l.ado_id)
            .collect();
        let mut candidates: Vec<&AdoRecord> =
            found.iter().filter(|r| !linked.contains(&r.id)).collect();
        candidates.sort_by_key(|r| r.id);
        match candidates.first() {
            Some(item) => {
                tracing::info!(pair = %pair.name, task = src_id, ado = item.id, "pending create found by its marker; linked");
                let Some(link) = self
                    .record_created(
                        &pair.name,
                        it.id,
                        item.id,
                        src_id,
                        planned,
                        // Either side may have changed since the create was planned.
                        UNKNOWN_MARKER,
                        UNKNOWN_MARKER,
                        &it.source,
                        out,
                    )
                    .await?
                else {
                    return Ok(());
                };
                out.tally.recovered += 1;
                let mut e = Self::audit_entry(
                    &pair.name,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    item.id.to_string(),
                    AuditAction::Link,
                    vec![],
                );
                e.detail = Some(format!(
                    "recovered the pending create of ClickUp task {src_id}"
                ));
                self.audit(&pair.name, e).await?;
                if self.clickup.backlink_field_id().is_some()
                    && src.backlink.as_deref() != Some(item.web_url.as_str())
                {
                    if let Err(e) = self.clickup.set_backlink(src_id, &item.web_url).await {
                        tracing::warn!(error = %e, "could not set the back-link field");
                    }
                }
                Ok(())
            }
            None => {
                tracing::info!(pair = %pair.name, task = src_id, "pending create not found in ADO; creating it");
                self.create_in_ado(
                    pair,
                    meta,
                    &src,
                    create,
                    planned,
                    Some(it.id),
                    cycle_id,
                    out,
                )
                .await
                .map(|_| ())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The values of `fields` in `item`, as a JSON object (for the audit).
fn values(item: &Item, fields: &[Field]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|f| (f.as_str().to_string(), field_value(item, *f)))
            .collect(),
    )
}
