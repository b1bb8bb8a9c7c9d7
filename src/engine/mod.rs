//! One sync cycle, end to end: recover pending creates, poll both sides from their cursors,
//! load the touched links and their bases, plan with the core, apply the plan, advance the
//! cursors.
//!
//! Where the invariants are kept (see ARCHITECTURE.md):
//! - **No duplicates**: every create is preceded by an intent row and carries a back-link
//!   marker (`create.rs`); pending intents are resolved by searching the target for the
//!   marker before anything else (`recover.rs`); an item with a pending intent is never
//!   planned again (`observe.rs`).
//! - **No lost edits**: ADO writes carry `test /rev`; a 412 re-reads and re-plans that link
//!   once; a ClickUp write re-reads the task first and re-plans when `date_updated` moved
//!   (ClickUp has no conditional write). A record that could not be read is never taken for a
//!   deletion. Cursors advance only when every item seen was applied or queued for retry.
//! - **No echo**: after each write the written values are stored as the new base with the
//!   post-write rev / `date_updated` (`apply.rs`), so the next poll finds the link quiet; a
//!   marker is stored only when the item holds nothing but the base (`UNKNOWN_MARKER`).
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
    AuditAction, AuditEntry, AuditOutcome, ConflictValues, CycleCounts, CycleId, CycleKind,
    CycleLock, Db, Intent, ItemRef, Link, LinkState, NewLink, Resolution, RetryPolicy, Store,
    StoreError,
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
    #[error("{0}")]
    LinkField(#[from] crate::clickup::LinkFieldError),
    #[error("pairs failed ({0}): {1}")]
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

mod apply;
mod create;
mod observe;
mod recover;
mod report;

pub use report::{ado_patch_fields, clickup_patch_fields, plan_table, ActionRow};

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

    /// Waits for the database's cycle lock (another process's cycle on the same file), or
    /// `None` when cancelled first. A dry run writes nothing and does not take it.
    async fn lock_cycles(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<CycleLock>, EngineError> {
        let mut told = false;
        loop {
            if let Some(lock) = self.store.try_lock_cycles()? {
                return Ok(Some(lock));
            }
            if !told {
                tracing::info!(
                    database = %self.store.location(),
                    "another process is running a sync cycle on this database; waiting for it"
                );
                told = true;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(None),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
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
        // Without the back-link field's id existing links by marker are invisible: no cycle
        // until it is known (the daemon starts without it when ClickUp is down).
        self.clickup.resolve_link_field().await?;
        let _lock = if req.dry_run {
            None
        } else {
            match self.lock_cycles(cancel).await? {
                Some(lock) => Some(lock),
                None => return Ok(CycleReport::default()),
            }
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
            let mut input = PlanInput {
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
            };
            let plan = match plan::plan(&input) {
                // A dry run is the preview the refusal asks for: show the refused plan too.
                Err(e) if req.dry_run && !input.limits.force => {
                    input.limits.force = true;
                    let p = plan::plan(&input)?;
                    rep.error = Some(format!("{e} (dry run: the plan shown would be refused)"));
                    p
                }
                other => other?,
            };
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
