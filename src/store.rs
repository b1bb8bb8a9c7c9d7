//! The sync state database: links, merge bases (snapshots), cursors, create intents, retries,
//! conflicts, the audit trail and the cycle log, in SQLite (`schema.sql`, embedded).
//!
//! # One connection, one owner
//! [`Db`] is the synchronous API over one `rusqlite::Connection`. [`Store`] is the async facade
//! the daemon uses: a dedicated OS thread owns the `Db`, and callers send it closures
//! (`store.call(move |db| db.links_by_ado(&pair, &ids)).await`). A dedicated thread was chosen
//! over `Mutex<Connection>` + `spawn_blocking` because:
//! - a closure, once submitted, always runs to completion: dropping (cancelling) the caller's
//!   future can never interrupt a transaction half-way, and no transaction is ever held across an
//!   `.await` (closures are synchronous);
//! - writes are serialized in submission order without a lock, and no blocking-pool threads sit
//!   parked on a mutex while the daemon runs several applies concurrently;
//! - the connection's prepared-statement cache stays warm on one thread.
//!
//! # Transactions
//! Every operation that touches more than one row is atomic. [`Db::atomic`] lets callers group
//! several operations in one transaction (it nests, through savepoints). The outermost
//! transaction is `BEGIN IMMEDIATE`, so a second process (the `status` CLI next to the daemon)
//! waits on the busy timeout instead of failing a lock upgrade.
//!
//! # Time
//! The store never reads a clock: every time is a parameter (`now`). Times are stored as
//! milliseconds since the Unix epoch; cursor watermarks and ClickUp `date_updated` values are
//! server times in ms and are passed as `i64`.
//!
//! # Failpoints (feature `failpoints`)
//! - `store::record_link::before_commit`: inside [`Db::record_link_with_snapshot`], after the
//!   link and snapshot rows are written and before the intent is closed;
//! - `store::advance_cursors::mid`: inside [`Db::advance_cursors`], after the first cursor of
//!   the pair is written.
//!
//! Configured with `return`, they make the operation fail with [`StoreError::Injected`] (and
//! roll back); `return(PAIR)` fires only for that pair; with `panic`, the panic reaches the
//! caller of [`Store::call`] after the transaction was rolled back.
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::model::{AdoId, ClickUpId, Field, Item, LinkId, Side};

/// The schema, as a list of migrations (see the header of `schema.sql`).
pub const SCHEMA_SQL: &str = include_str!("../schema.sql");

/// Where the database lives when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_PATH: &str = "./data/sync.db";

/// How long a statement waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest `last_error` / `detail` text kept (the rest is cut at a character boundary).
const MAX_ERROR_TEXT: usize = 4000;

pub type IntentId = i64;
pub type ConflictId = i64;
pub type CycleId = i64;
pub type AuditId = i64;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything that can go wrong in the store. Each variant says what was being done and with
/// which item.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid DATABASE_URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot create the database folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {location}: {source}")]
    Open {
        location: String,
        source: rusqlite::Error,
    },
    #[error(
        "the database {location} has schema version {found}, newer than this program's \
         {supported}; upgrade ado-clickup-sync or point DATABASE_URL at another file"
    )]
    SchemaTooNew {
        location: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "the database {location} was not created by ado-clickup-sync (it has tables {tables:?} \
         and no schema version); move it away or point DATABASE_URL at another file"
    )]
    ForeignDatabase {
        location: String,
        tables: Vec<String>,
    },
    #[error("cannot take the cycle lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the embedded schema.sql is malformed: {0}")]
    SchemaFile(String),
    #[error("{doing}: {source}")]
    Sqlite {
        doing: String,
        source: rusqlite::Error,
    },
    #[error("{doing}: cannot encode JSON: {source}")]
    Json {
        doing: String,
        source: serde_json::Error,
    },
    #[error(
        "refusing to link ADO #{ado_id} with ClickUp task {clickup_id} in pair {pair:?}: \
         link {existing} (ADO #{existing_ado_id} with ClickUp task {existing_clickup_id}) is \
         already active"
    )]
    DuplicateLink {
        pair: String,
        ado_id: AdoId,
        clickup_id: ClickUpId,
        existing: LinkId,
        existing_ado_id: AdoId,
        existing_clickup_id: ClickUpId,
    },
    #[error("link {0} does not exist")]
    LinkNotFound(LinkId),
    #[error("refusing to create {source_item} in pair {pair:?} again: intent {existing} for it is still pending")]
    IntentAlreadyPending {
        pair: String,
        source_item: ItemRef,
        existing: IntentId,
    },
    #[error("intent {0} does not exist")]
    IntentNotFound(IntentId),
    #[error("intent {id} is {status}, not pending: {doing}")]
    IntentNotPending {
        id: IntentId,
        status: IntentStatus,
        doing: String,
    },
    #[error("intent {id} does not match the link being recorded: {detail}")]
    IntentMismatch { id: IntentId, detail: String },
    #[error("conflict {0} does not exist")]
    ConflictNotFound(ConflictId),
    #[error("conflict {id} was already resolved ({resolution})")]
    ConflictAlreadyResolved {
        id: ConflictId,
        resolution: Resolution,
    },
    #[error("conflict {0} is still open: resolve it before marking its resolution applied")]
    ConflictStillOpen(ConflictId),
    #[error("cycle {0} does not exist")]
    CycleNotFound(CycleId),
    #[error("cycle {0} was already finished")]
    CycleAlreadyFinished(CycleId),
    #[error("failpoint {0} fired")]
    Injected(&'static str),
    #[error("cannot start the database thread: {0}")]
    Thread(std::io::Error),
    #[error("the database thread has stopped")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

trait Ctx<T> {
    fn ctx(self, doing: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, doing: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Sqlite {
            doing: doing(),
            source,
        })
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T, doing: impl FnOnce() -> String) -> Result<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Json {
        doing: doing(),
        source,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

fn truncate_text(s: &str) -> &str {
    if s.len() <= MAX_ERROR_TEXT {
        return s;
    }
    let mut end = MAX_ERROR_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

/// An item on one side: an ADO work item or a ClickUp task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "side", content = "id", rename_all = "snake_case")]
pub enum ItemRef {
    Ado(AdoId),
    #[serde(rename = "clickup")]
    ClickUp(ClickUpId),
}

impl ItemRef {
    pub fn side(&self) -> Side {
        match self {
            ItemRef::Ado(_) => Side::Ado,
            ItemRef::ClickUp(_) => Side::ClickUp,
        }
    }
    /// The id as stored in TEXT columns (the ADO id in decimal).
    pub fn id_text(&self) -> String {
        match self {
            ItemRef::Ado(id) => id.to_string(),
            ItemRef::ClickUp(id) => id.clone(),
        }
    }
    /// Rebuilds a reference from a side and its TEXT id.
    pub fn from_parts(side: Side, id: &str) -> Option<ItemRef> {
        match side {
            Side::Ado => id.parse().ok().map(ItemRef::Ado),
            Side::ClickUp => Some(ItemRef::ClickUp(id.to_string())),
        }
    }
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemRef::Ado(id) => write!(f, "ADO #{id}"),
            ItemRef::ClickUp(id) => write!(f, "ClickUp task {id}"),
        }
    }
}

/// Implements `ToSql`/`FromSql` for a text-backed enum with `as_str` and `parse`.
macro_rules! text_enum_sql {
    ($t:ty, $parse:path) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                $parse(s).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {:?}", stringify!($t), s).into())
                })
            }
        }
    };
}

fn side_from_text(s: &str) -> Option<Side> {
    [Side::Ado, Side::ClickUp]
        .into_iter()
        .find(|v| v.as_str() == s)
}
text_enum_sql!(Side, side_from_text);

fn field_from_text(s: &str) -> Option<Field> {
    Field::ALL.into_iter().find(|f| f.as_str() == s)
}
text_enum_sql!(Field, field_from_text);

/// Whether a link is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Active,
    Unlinked,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Unlinked => "unlinked",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(LinkState::Active),
            "unlinked" => Some(LinkState::Unlinked),
            _ => None,
        }
    }
}
text_enum_sql!(LinkState, LinkState::parse);

/// One ADO work item linked with one ClickUp task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: LinkId,
    pub pair: String,
    pub ado_id: AdoId,
    pub clickup_id: ClickUpId,
    pub state: LinkState,
    pub unlink_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A link to record together with its first merge base (see [`Db::record_link_with_snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLink {
    pub pair: String,
    pub ado_id: AdoId,
    pub clickup_id: ClickUpId,
    pub base: Item,
    pub ado_rev: i64,
    /// ClickUp `date_updated` (ms) of the task as created/read.
    pub clickup_updated: i64,
}

/// The merge base of one link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub link_id: LinkId,
    pub item: Item,
    pub ado_rev: i64,
    pub clickup_date_updated: i64,
    pub synced_at: DateTime<Utc>,
}

/// The two watermarks (server time, ms) of one pair; `None` before the first advance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors {
    pub ado: Option<i64>,
    pub clickup: Option<i64>,
}

impl Cursors {
    pub fn get(&self, side: Side) -> Option<i64> {
        match side {
            Side::Ado => self.ado,
            Side::ClickUp => self.clickup,
        }
    }
    fn set(&mut self, side: Side, value: i64) {
        match side {
            Side::Ado => self.ado = Some(value),
            Side::ClickUp => self.clickup = Some(value),
        }
    }
}

/// Where a create intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    Pending,
    Done,
    Abandoned,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::Pending => "pending",
            IntentStatus::Done => "done",
            IntentStatus::Abandoned => "abandoned",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(IntentStatus::Pending),
            "done" => Some(IntentStatus::Done),
            "abandoned" => Some(IntentStatus::Abandoned),
            _ => None,
        }
    }
}
text_enum_sql!(IntentStatus, IntentStatus::parse);

impl fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A create that was (or is about to be) sent: the item `source` gets a counterpart on
/// `target_side`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: IntentId,
    pub pair: String,
    pub source: ItemRef,
    pub target_side: Side,
    /// What the create sends (e.g. an `AdoCreate` / `ClickUpCreate`), as JSON.
    pub planned: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub status: IntentStatus,
    /// The id of the created counterpart (once done).
    pub result_id: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

impl Intent {
    /// Decodes the planned create into the type it was stored from.
    pub fn planned_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.planned).map_err(|source| StoreError::Json {
            doing: format!("decoding the planned create of intent {}", self.id),
            source,
        })
    }
}

/// The backoff schedule of failed items: `base * 2^(attempts - 1)`, capped at `max`.
/// Deterministic (no jitter): the store has no clock and no randomness; the daemon's cycle
/// interval already spreads retries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th consecutive failure (`attempts >= 1`).
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(exp).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// An item waiting to be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub pair: String,
    pub item: ItemRef,
    pub attempts: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: String,
}

/// How a conflict was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The ADO value wins; the engine writes it to ClickUp.
    TakeAdo,
    /// The ClickUp value wins; the engine writes it to ADO.
    TakeClickUp,
    /// Both sides came to hold the same value; nothing to write.
    Converged,
    /// The link was unlinked; nothing to write.
    Unlinked,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TakeAdo => "take_ado",
            Resolution::TakeClickUp => "take_clickup",
            Resolution::Converged => "converged",
            Resolution::Unlinked => "unlinked",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "take_ado" => Some(Resolution::TakeAdo),
            "take_clickup" => Some(Resolution::TakeClickUp),
            "converged" => Some(Resolution::Converged),
            "unlinked" => Some(Resolution::Unlinked),
            _ => None,
        }
    }
    /// The resolution that takes `side`'s value.
    pub fn take(side: Side) -> Self {
        match side {
            Side::Ado => Resolution::TakeAdo,
            Side::ClickUp => Resolution::TakeClickUp,
        }
    }
    /// Whether the engine still has to write something once this is recorded.
    pub fn needs_apply(self) -> bool {
        matches!(self, Resolution::TakeAdo | Resolution::TakeClickUp)
    }
}
text_enum_sql!(Resolution, Resolution::parse);

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three values of a conflicting field (canonical values as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictValues {
    pub base: serde_json::Value,
    pub ado: serde_json::Value,
    pub clickup: serde_json::Value,
}

/// A recorded conflict, with its link's ids for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: ConflictId,
    pub link_id: LinkId,
    pub pair: String,
    pub ado_id: AdoId,
    pub clickup_id: ClickUpId,
    pub field: Field,
    pub values: ConflictValues,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<Resolution>,
    pub applied_at: Option<DateTime<Utc>>,
}

/// What an audited operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Update,
    /// Writing the back-link marker on the source side after a create.
    Backlink,
    Link,
    Unlink,
    /// Setting the closed/removed state because the counterpart was deleted (`mirror` policy).
    Mirror,
    /// Writing a conflict resolution's value.
    Resolve,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Backlink => "backlink",
            AuditAction::Link => "link",
            AuditAction::Unlink => "unlink",
            AuditAction::Mirror => "mirror",
            AuditAction::Resolve => "resolve",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Backlink,
            AuditAction::Link,
            AuditAction::Unlink,
            AuditAction::Mirror,
            AuditAction::Resolve,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}
text_enum_sql!(AuditAction, AuditAction::parse);

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Ok,
    Failed,
    Skipped,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(AuditOutcome::Ok),
            "failed" => Some(AuditOutcome::Failed),
            "skipped" => Some(AuditOutcome::Skipped),
            _ => None,
        }
    }
}
text_enum_sql!(AuditOutcome, AuditOutcome::parse);

/// One audit row to append. Values must be free of secrets (they are field values, never
/// request headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub cycle_id: Option<CycleId>,
    pub pair: Option<String>,
    pub link_id: Option<LinkId>,
    /// The side written to.
    pub side: Option<Side>,
    /// The id of the item written to, on `side`.
    pub item_id: Option<String>,
    pub action: AuditAction,
    pub fields: Vec<Field>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: AuditId,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// What a cycle was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleKind {
    Incremental,
    Sweep,
}

impl CycleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleKind::Incremental => "incremental",
            CycleKind::Sweep => "sweep",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "incremental" => Some(CycleKind::Incremental),
            "sweep" => Some(CycleKind::Sweep),
            _ => None,
        }
    }
}
text_enum_sql!(CycleKind, CycleKind::parse);

/// What a cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleCounts {
    pub reads: u64,
    pub writes: u64,
    pub conflicts: u64,
    pub errors: u64,
    pub api_requests: u64,
}

/// A stored cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub id: CycleId,
    pub kind: CycleKind,
    pub pair: Option<String>,
    pub started_at: DateTime<Utc>,
    /// `None` while running; set with an "interrupted" error by the next cycle of the pair
    /// when the process died during this one.
    pub ended_at: Option<DateTime<Utc>>,
    pub counts: CycleCounts,
    pub error: Option<String>,
}

impl CycleRecord {
    pub fn succeeded(&self) -> bool {
        self.ended_at.is_some() && self.error.is_none()
    }
}

/// Per-pair figures for `ado-clickup-sync status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairStatus {
    pub pair: String,
    pub links_active: u64,
    pub links_unlinked: u64,
    pub pending_intents: u64,
    pub retries: u64,
    pub due_retries: u64,
    pub open_conflicts: u64,
    pub cursors: Cursors,
}

/// Everything `ado-clickup-sync status` shows, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSummary {
    pub schema_version: i64,
    /// One entry per pair that has any state, by name.
    pub pairs: Vec<PairStatus>,
    /// Newest first.
    pub last_cycles: Vec<CycleRecord>,
    pub last_successful: Option<CycleRecord>,
    /// Resolved conflicts whose chosen value the engine has not written yet.
    pub unapplied_resolutions: u64,
}

// ---------------------------------------------------------------------------------------------
// Location (DATABASE_URL)
// ---------------------------------------------------------------------------------------------

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// A private in-memory database (tests).
    Memory,
    File(PathBuf),
}

impl DbLocation {
    /// Parses a `DATABASE_URL`:
    /// - a plain path (`data/sync.db`, `/var/lib/sync.db`);
    /// - `sqlite://path` (relative: `sqlite://data/sync.db`, `sqlite://./data/sync.db`) and
    ///   `sqlite:///abs/path` (absolute); `sqlite:path` too;
    /// - SQLAlchemy's forms from the earlier prototype, `sqlite+aiosqlite:///./data/sync.db`
    ///   (three slashes then a relative path) and `sqlite+aiosqlite:////abs/path`;
    /// - `:memory:`, `sqlite::memory:`, `sqlite://:memory:`.
    ///
    /// Percent-escapes in URL forms are decoded. Query strings (`?mode=…`) and other schemes are
    /// refused with a clear error rather than ignored.
    pub fn parse(url: &str) -> Result<DbLocation> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact_url(url),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed == ":memory:" {
            return Ok(DbLocation::Memory);
        }
        let Some((scheme, rest)) = split_scheme(trimmed) else {
            return Ok(DbLocation::File(PathBuf::from(trimmed)));
        };
        let scheme_lc = scheme.to_ascii_lowercase();
        let path = if scheme_lc == "sqlite" {
            match rest.strip_prefix("//") {
                // `sqlite:///./x` and `sqlite:///../x` are the SQLAlchemy spelling of a relative
                // path (copied from the prototype without its driver); nobody means `/./x`.
                Some(p) if p.starts_with("/./") || p.starts_with("/../") => p[1..].to_string(),
                Some(p) => p.to_string(),
                None => rest.to_string(),
            }
        } else if scheme_lc.starts_with("sqlite+") {
            // SQLAlchemy: `dialect+driver:///relative` and `dialect+driver:////absolute`.
            match rest.strip_prefix("///") {
                Some(p) => p.to_string(),
                None if rest == "//" || rest.is_empty() => return Ok(DbLocation::Memory),
                None => {
                    return Err(bad(
                        "SQLAlchemy-style URLs need three slashes: sqlite+aiosqlite:///path",
                    ))
                }
            }
        } else {
            return Err(bad(&format!(
                "only SQLite is supported (scheme {scheme:?}); use a path or sqlite:///path"
            )));
        };
        if path.contains('?') {
            return Err(bad("query parameters are not supported"));
        }
        if path == ":memory:" {
            return Ok(DbLocation::Memory);
        }
        if path.is_empty() {
            return Err(bad("it names no file"));
        }
        let decoded = percent_encoding::percent_decode_str(&path)
            .decode_utf8()
            .map_err(|_| bad("its percent-escapes are not valid UTF-8"))?;
        Ok(DbLocation::File(PathBuf::from(decoded.into_owned())))
    }

    /// The location from a configured value, or [`DEFAULT_DATABASE_PATH`] when none (or an
    /// empty one) is given.
    pub fn from_option(url: Option<&str>) -> Result<DbLocation> {
        match url.map(str::trim) {
            Some(u) if !u.is_empty() => DbLocation::parse(u),
            _ => Ok(DbLocation::File(PathBuf::from(DEFAULT_DATABASE_PATH))),
        }
    }

    /// The location from the `DATABASE_URL` environment variable, or the default.
    pub fn from_env() -> Result<DbLocation> {
        match std::env::var("DATABASE_URL") {
            Ok(v) => DbLocation::from_option(Some(&v)),
            Err(std::env::VarError::NotPresent) => DbLocation::from_option(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::BadUrl {
                url: "<not unicode>".into(),
                reason: "DATABASE_URL is not valid Unicode".into(),
            }),
        }
    }
}

/// `url` with the password of any `scheme://user:password@host` part masked, so that a
/// mistaken DATABASE_URL (e.g. a Postgres one) never puts a secret into an error or a log.
fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..start], &url[start + at..])
        }
        None => url.to_string(),
    }
}

/// Splits `scheme:rest` when `url` starts with a URL scheme that is not a Windows drive letter.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // `C:\db` / `C:/db`: a drive letter, not a scheme.
    if !valid || scheme.len() == 1 {
        return None;
    }
    Some((scheme, rest))
}

impl fmt::Display for DbLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbLocation::Memory => f.write_str(":memory:"),
            DbLocation::File(p) => write!(f, "{}", p.display()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------

/// The migrations in `schema.sql`, in order: `(version, sql)`.
pub fn migrations() -> Result<Vec<(i64, &'static str)>> {
    let mut out: Vec<(i64, &'static str)> = Vec::new();
    let mut current: Option<(i64, usize)> = None;
    let mut offset = 0usize;
    for line in SCHEMA_SQL.split_inclusive('\n') {
        if let Some(n) = line.trim().strip_prefix("-- migration:") {
            let version: i64 = n
                .trim()
                .parse()
                .map_err(|_| StoreError::SchemaFile(format!("bad migration marker {line:?}")))?;
            if let Some((v, start)) = current.take() {
                out.push((v, &SCHEMA_SQL[start..offset]));
            }
            let expected = out.len() as i64 + 1;
            if version != expected {
                return Err(StoreError::SchemaFile(format!(
                    "migration {version} found where {expected} was expected"
                )));
            }
            current = Some((version, offset + line.len()));
        }
        offset += line.len();
    }
    if let Some((v, start)) = current {
        out.push((v, &SCHEMA_SQL[start..]));
    }
    if out.is_empty() {
        return Err(StoreError::SchemaFile("no `-- migration: N` marker".into()));
    }
    Ok(out)
}

/// The schema version this program writes.
pub fn latest_schema_version() -> Result<i64> {
    Ok(migrations()?.last().map(|(v, _)| *v).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Row decoding helpers
// ---------------------------------------------------------------------------------------------

fn conversion_error(idx: usize, ty: Type, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, msg.into())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time_from_ms(idx: usize, v: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| conversion_error(idx, Type::Integer, format!("{v} is not a time in ms")))
}

fn time_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    time_from_ms(idx, row.get(idx)?)
}

fn opt_time_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<i64>>(idx)?
        .map(|v| time_from_ms(idx, v))
        .transpose()
}

fn json_col<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn opt_json_col<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))),
    }
}

fn item_ref_cols(row: &Row<'_>, side_idx: usize, id_idx: usize) -> rusqlite::Result<ItemRef> {
    let side: Side = row.get(side_idx)?;
    let id: String = row.get(id_idx)?;
    ItemRef::from_parts(side, &id).ok_or_else(|| {
        conversion_error(
            id_idx,
            Type::Text,
            format!("{id:?} is not a valid {side} item id"),
        )
    })
}

fn count_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| conversion_error(idx, Type::Integer, format!("negative {v}")))
}

fn sql_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

macro_rules! link_cols {
    () => {
        "id, pair, ado_id, clickup_id, state, unlink_reason, created_at, updated_at"
    };
}
const LINK_COLS: &str = link_cols!();

fn link_row(row: &Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        id: row.get(0)?,
        pair: row.get(1)?,
        ado_id: row.get(2)?,
        clickup_id: row.get(3)?,
        state: row.get(4)?,
        unlink_reason: row.get(5)?,
        created_at: time_col(row, 6)?,
        updated_at: time_col(row, 7)?,
    })
}

const SNAPSHOT_COLS: &str = "link_id, item_json, ado_rev, clickup_date_updated, synced_at";

fn snapshot_row(row: &Row<'_>) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        link_id: row.get(0)?,
        item: json_col(row, 1)?,
        ado_rev: row.get(2)?,
        clickup_date_updated: row.get(3)?,
        synced_at: time_col(row, 4)?,
    })
}

macro_rules! intent_cols {
    () => {
        "id, pair, source_side, source_id, target_side, planned_json, created_at, status, \
         result_id, closed_at, note"
    };
}
const INTENT_COLS: &str = intent_cols!();

fn intent_row(row: &Row<'_>) -> rusqlite::Result<Intent> {
    Ok(Intent {
        id: row.get(0)?,
        pair: row.get(1)?,
        source: item_ref_cols(row, 2, 3)?,
        target_side: row.get(4)?,
        planned: json_col(row, 5)?,
        created_at: time_col(row, 6)?,
        status: row.get(7)?,
        result_id: row.get(8)?,
        closed_at: opt_time_col(row, 9)?,
        note: row.get(10)?,
    })
}

macro_rules! retry_cols {
    () => {
        "pair, side, item_id, attempts, first_failed_at, last_failed_at, next_attempt_at, \
         last_error"
    };
}
const RETRY_COLS: &str = retry_cols!();

fn retry_row(row: &Row<'_>) -> rusqlite::Result<Retry> {
    let attempts: i64 = row.get(3)?;
    Ok(Retry {
        pair: row.get(0)?,
        item: item_ref_cols(row, 1, 2)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| conversion_error(3, Type::Integer, format!("{attempts} attempts")))?,
        first_failed_at: time_col(row, 4)?,
        last_failed_at: time_col(row, 5)?,
        next_attempt_at: time_col(row, 6)?,
        last_error: row.get(7)?,
    })
}

macro_rules! conflict_select {
    () => {
        "SELECT c.id, c.link_id, l.pair, l.ado_id, l.clickup_id, c.field, c.base_json, \
         c.ado_json, c.clickup_json, c.detected_at, c.updated_at, c.resolved_at, c.resolution, \
         c.applied_at FROM conflicts c JOIN links l ON l.id = c.link_id"
    };
}
const CONFLICT_SELECT: &str = conflict_select!();

fn conflict_row(row: &Row<'_>) -> rusqlite::Result<Conflict> {
    Ok(Conflict {
        id: row.get(0)?,
        link_id: row.get(1)?,
        pair: row.get(2)?,
        ado_id: row.get(3)?,
        clickup_id: row.get(4)?,
        field: row.get(5)?,
        values: ConflictValues {
            base: json_col(row, 6)?,
            ado: json_col(row, 7)?,
            clickup: json_col(row, 8)?,
        },
        detected_at: time_col(row, 9)?,
        updated_at: time_col(row, 10)?,
        resolved_at: opt_time_col(row, 11)?,
        resolution: row.get(12)?,
        applied_at: opt_time_col(row, 13)?,
    })
}

const AUDIT_COLS: &str = "id, at, cycle_id, pair, link_id, side, item_id, action, fields_json, \
                          before_json, after_json, outcome, detail";

fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.get(0)?,
        entry: AuditEntry {
            at: time_col(row, 1)?,
            cycle_id: row.get(2)?,
            pair: row.get(3)?,
            link_id: row.get(4)?,
            side: row.get(5)?,
            item_id: row.get(6)?,
            action: row.get(7)?,
            fields: json_col(row, 8)?,
            before: opt_json_col(row, 9)?,
            after: opt_json_col(row, 10)?,
            outcome: row.get(11)?,
            detail: row.get(12)?,
        },
    })
}

const CYCLE_COLS: &str = "id, kind, pair, started_at, ended_at, reads, writes, conflicts, errors, \
                          api_requests, error";

fn cycle_row(row: &Row<'_>) -> rusqlite::Result<CycleRecord> {
    Ok(CycleRecord {
        id: row.get(0)?,
        kind: row.get(1)?,
        pair: row.get(2)?,
        started_at: time_col(row, 3)?,
        ended_at: opt_time_col(row, 4)?,
        counts: CycleCounts {
            reads: count_col(row, 5)?,
            writes: count_col(row, 6)?,
            conflicts: count_col(row, 7)?,
            errors: count_col(row, 8)?,
            api_requests: count_col(row, 9)?,
        },
        error: row.get(10)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Db: the synchronous API
// ---------------------------------------------------------------------------------------------

/// The synchronous store over one connection. Use it directly in a blocking context (the CLI),
/// or through [`Store`] from async code.
pub struct Db {
    conn: Connection,
    location: DbLocation,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.location)
            .finish()
    }
}

impl Db {
    /// Opens (creating when missing, with its folder) and migrates the database.
    pub fn open(location: &DbLocation) -> Result<Db> {
        let loc_text = location.to_string();
        let open_err = |source| StoreError::Open {
            location: loc_text.clone(),
            source,
        };
        let conn = match location {
            DbLocation::Memory => Connection::open_in_memory().map_err(open_err)?,
            DbLocation::File(path) => {
                create_parent(path)?;
                Connection::open(path).map_err(open_err)?
            }
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers (the status CLI) never block the daemon's writer. FULL sync: a commit
        // that recorded an intent or a link is on disk before the next remote call is made.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if matches!(location, DbLocation::File(_)) && !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(database = %loc_text, journal_mode = %mode,
                "SQLite refused WAL mode; continuing in this journal mode");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(open_err)?;
        let mut db = Db {
            conn,
            location: location.clone(),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Parses `url` (see [`DbLocation::parse`]) and opens it.
    pub fn open_url(url: &str) -> Result<Db> {
        Db::open(&DbLocation::parse(url)?)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Db> {
        Db::open(&DbLocation::Memory)
    }

    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    /// The raw connection, for diagnostics (`EXPLAIN QUERY PLAN`) and tests. Writes through
    /// it bypass the store's invariants.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// `PRAGMA user_version`.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx(|| format!("reading the schema version of {}", self.location))
    }

    fn migrate(&mut self) -> Result<()> {
        let all = migrations()?;
        let latest = all.last().map(|(v, _)| *v).unwrap_or(0);
        let location = self.location.to_string();
        // The common case, an up-to-date file, takes no write lock (so `status` opening next to
        // a busy daemon does not queue behind its writes).
        if self.schema_version()? == latest {
            return Ok(());
        }
        // Another process may be migrating the same file: the immediate transaction waits for
        // it, and the version is read again inside the transaction.
        self.atomic(|db| {
            let found = db.schema_version()?;
            if found > latest {
                return Err(StoreError::SchemaTooNew {
                    location: location.clone(),
                    found,
                    supported: latest,
                });
            }
            if found == latest {
                return Ok(());
            }
            if found == 0 {
                let tables = db.user_tables()?;
                if !tables.is_empty() {
                    return Err(StoreError::ForeignDatabase {
                        location: location.clone(),
                        tables,
                    });
                }
            }
            for (version, sql) in all.iter().filter(|(v, _)| *v > found) {
                db.conn
                    .execute_batch(sql)
                    .ctx(|| format!("migrating {location} to schema version {version}"))?;
            }
            db.conn
                .pragma_update(None, "user_version", latest)
                .ctx(|| format!("setting the schema version of {location} to {latest}"))?;
            Ok(())
        })
    }

    fn user_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .ctx(|| format!("listing the tables of {}", self.location))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(|| format!("listing the tables of {}", self.location))?;
        Ok(rows)
    }

    /// Runs `f` in one transaction: all of its writes commit, or none do (when it returns an
    /// error). Nests: inside another `atomic`, it is a savepoint.
    pub fn atomic<R>(&mut self, f: impl FnOnce(&mut Db) -> Result<R>) -> Result<R> {
        let outer = self.conn.is_autocommit();
        let (begin, commit, rollback) = if outer {
            ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        } else {
            (
                "SAVEPOINT store_atomic",
                "RELEASE store_atomic",
                "ROLLBACK TO store_atomic; RELEASE store_atomic",
            )
        };
        self.conn
            .execute_batch(begin)
            .ctx(|| "starting a transaction".to_string())?;
        match f(self) {
            Ok(value) => match self.conn.execute_batch(commit) {
                Ok(()) => Ok(value),
                Err(source) => {
                    // Best effort: the commit's error is the one worth reporting.
                    let _ = self.conn.execute_batch(rollback);
                    Err(StoreError::Sqlite {
                        doing: "committing a transaction".into(),
                        source,
                    })
                }
            },
            Err(e) => {
                if let Err(source) = self.conn.execute_batch(rollback) {
                    tracing::error!(error = %source, after = %e, "rolling back a transaction failed");
                }
                Err(e)
            }
        }
    }

    /// Runs `f` in a read transaction, so that its several queries see one state.
    fn consistent_read<R>(&mut self, f: impl FnOnce(&mut Db) -> Result<R>) -> Result<R> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .ctx(|| "starting a read transaction".to_string())?;
        let out = f(self);
        let end = self
            .conn
            .execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" })
            .ctx(|| "ending a read transaction".to_string());
        let value = out?;
        end?;
        Ok(value)
    }

    /// Called after a panic unwound out of a closure: leaves no transaction open.
    fn rollback_after_panic(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back after a panic failed");
            }
        }
    }

    // ---- links ------------------------------------------------------------------------------

    /// The link with this id, in any state.
    pub fn link(&self, id: LinkId) -> Result<Option<Link>> {
        self.conn
            .prepare_cached(&format!("SELECT {LINK_COLS} FROM links WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], link_row).optional())
            .ctx(|| format!("reading link {id}"))
    }

    /// The links with these ids, in any state (missing ids are skipped), ordered by id.
    pub fn links_by_ids(&self, ids: &[LinkId]) -> Result<Vec<Link>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = to_json(ids, || "encoding link ids".into())?;
        self.query_links(queries::LINKS_BY_IDS, params![json], || {
            format!("reading {} links by id", ids.len())
        })
    }

    /// The active link of an ADO work item in `pair`.
    pub fn link_by_ado(&self, pair: &str, ado_id: AdoId) -> Result<Option<Link>> {
        Ok(self.links_by_ado(pair, &[ado_id])?.into_iter().next())
    }

    /// The active links of these ADO work items in `pair` (items without one are skipped).
    pub fn links_by_ado(&self, pair: &str, ado_ids: &[AdoId]) -> Result<Vec<Link>> {
        if ado_ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = to_json(ado_ids, || "encoding ADO ids".into())?;
        self.query_links(queries::LINKS_BY_ADO, params![pair, json], || {
            format!(
                "looking up the links of {} ADO work items in pair {pair:?}",
                ado_ids.len()
            )
        })
    }

    /// The active link of a ClickUp task in `pair`.
    pub fn link_by_clickup(&self, pair: &str, clickup_id: &str) -> Result<Option<Link>> {
        Ok(self
            .links_by_clickup(pair, &[clickup_id.to_string()])?
            .into_iter()
            .next())
    }

    /// The active links of these ClickUp tasks in `pair` (tasks without one are skipped).
    pub fn links_by_clickup(&self, pair: &str, clickup_ids: &[ClickUpId]) -> Result<Vec<Link>> {
        if clickup_ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = to_json(clickup_ids, || "encoding ClickUp ids".into())?;
        self.query_links(queries::LINKS_BY_CLICKUP, params![pair, json], || {
            format!(
                "looking up the links of {} ClickUp tasks in pair {pair:?}",
                clickup_ids.len()
            )
        })
    }

    /// Every link of `pair` (for the sweep only), optionally of one state, ordered by id.
    pub fn links_in_pair(&self, pair: &str, state: Option<LinkState>) -> Result<Vec<Link>> {
        match state {
            Some(state) => self.query_links(
                &format!(
                    "SELECT {LINK_COLS} FROM links WHERE pair = ?1 AND state = ?2 ORDER BY id"
                ),
                params![pair, state],
                || format!("listing the {} links of pair {pair:?}", state.as_str()),
            ),
            None => self.query_links(
                &format!("SELECT {LINK_COLS} FROM links WHERE pair = ?1 ORDER BY id"),
                params![pair],
                || format!("listing the links of pair {pair:?}"),
            ),
        }
    }

    /// How many links of `pair` are active.
    pub fn count_active_links(&self, pair: &str) -> Result<u64> {
        self.conn
            .prepare_cached(queries::COUNT_ACTIVE_LINKS)
            .and_then(|mut s| s.query_row([pair], |r| count_col(r, 0)))
            .ctx(|| format!("counting the active links of pair {pair:?}"))
    }

    fn query_links(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        doing: impl FnOnce() -> String,
    ) -> Result<Vec<Link>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params, link_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(doing)
    }

    /// Records a new active link. Refused with [`StoreError::DuplicateLink`] when either item
    /// already has an active link in the pair. Prefer [`Db::record_link_with_snapshot`], which
    /// also stores the base.
    pub fn insert_link(
        &mut self,
        pair: &str,
        ado_id: AdoId,
        clickup_id: &str,
        now: DateTime<Utc>,
    ) -> Result<LinkId> {
        let res = self
            .conn
            .prepare_cached(
                "INSERT INTO links (pair, ado_id, clickup_id, state, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
            )
            .and_then(|mut s| s.insert(params![pair, ado_id, clickup_id, ms(now)]));
        match res {
            Ok(id) => Ok(id),
            Err(e) if is_unique_violation(&e) => {
                let existing = match self.link_by_ado(pair, ado_id)? {
                    Some(l) => Some(l),
                    None => self.link_by_clickup(pair, clickup_id)?,
                };
                match existing {
                    Some(l) => Err(StoreError::DuplicateLink {
                        pair: pair.to_string(),
                        ado_id,
                        clickup_id: clickup_id.to_string(),
                        existing: l.id,
                        existing_ado_id: l.ado_id,
                        existing_clickup_id: l.clickup_id,
                    }),
                    None => Err(e).ctx(|| {
                        format!(
                            "linking ADO #{ado_id} with ClickUp task {clickup_id} in pair {pair:?}"
                        )
                    }),
                }
            }
            Err(e) => Err(e).ctx(|| {
                format!("linking ADO #{ado_id} with ClickUp task {clickup_id} in pair {pair:?}")
            }),
        }
    }

    /// Marks a link unlinked (kept for history) and closes its open conflicts, in one
    /// transaction. Unlinking an unlinked link changes nothing. Returns the link as stored.
    pub fn unlink(&mut self, id: LinkId, reason: &str, now: DateTime<Utc>) -> Result<Link> {
        self.atomic(|db| {
            let changed = db
                .conn
                .prepare_cached(
                    "UPDATE links SET state = 'unlinked', unlink_reason = ?2, updated_at = ?3 \
                     WHERE id = ?1 AND state = 'active'",
                )
                .and_then(|mut s| s.execute(params![id, truncate_text(reason), ms(now)]))
                .ctx(|| format!("unlinking link {id}"))?;
            if changed > 0 {
                db.conn
                    .prepare_cached(
                        "UPDATE conflicts SET resolved_at = ?2, resolution = 'unlinked', \
                         applied_at = ?2 WHERE link_id = ?1 AND resolved_at IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![id, ms(now)]))
                    .ctx(|| format!("closing the open conflicts of unlinked link {id}"))?;
            }
            db.link(id)?.ok_or(StoreError::LinkNotFound(id))
        })
    }

    // ---- snapshots --------------------------------------------------------------------------

    /// The merge base of one link.
    pub fn snapshot(&self, link: LinkId) -> Result<Option<Snapshot>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SNAPSHOT_COLS} FROM snapshots WHERE link_id = ?1"
            ))
            .and_then(|mut s| s.query_row([link], snapshot_row).optional())
            .ctx(|| format!("reading the merge base of link {link}"))
    }

    /// The merge bases of these links (links without one are absent from the map).
    pub fn snapshots(&self, links: &[LinkId]) -> Result<HashMap<LinkId, Snapshot>> {
        if links.is_empty() {
            return Ok(HashMap::new());
        }
        let json = to_json(links, || "encoding link ids".into())?;
        self.conn
            .prepare_cached(queries::SNAPSHOTS)
            .and_then(|mut s| {
                s.query_map([json], snapshot_row)?
                    .map(|r| r.map(|snap| (snap.link_id, snap)))
                    .collect::<rusqlite::Result<HashMap<_, _>>>()
            })
            .ctx(|| format!("reading the merge bases of {} links", links.len()))
    }

    /// Stores `item` as the merge base of `link` (after each successful write, so that the
    /// next poll sees no change: no echo).
    pub fn store_base(
        &mut self,
        link: LinkId,
        item: &Item,
        ado_rev: i64,
        clickup_updated: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let json = to_json(item, || format!("encoding the merge base of link {link}"))?;
        let res = self
            .conn
            .prepare_cached(
                "INSERT INTO snapshots (link_id, item_json, ado_rev, clickup_date_updated, \
                 synced_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (link_id) DO UPDATE SET item_json = excluded.item_json, \
                 ado_rev = excluded.ado_rev, clickup_date_updated = excluded.clickup_date_updated, \
                 synced_at = excluded.synced_at",
            )
            .and_then(|mut s| s.execute(params![link, json, ado_rev, clickup_updated, ms(now)]));
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::LinkNotFound(link)),
            Err(e) => Err(e).ctx(|| format!("storing the merge base of link {link}")),
        }
    }

    /// After a create: records the link and its first merge base and closes the create's
    /// intent (when given), in ONE transaction. Either all three happen or none: a crash or
    /// error leaves the intent pending, to be recovered through the back-link marker.
    ///
    /// Refused when the intent is not pending or is for another pair or item
    /// ([`StoreError::IntentNotPending`], [`StoreError::IntentMismatch`]), and when either item
    /// already has an active link ([`StoreError::DuplicateLink`]).
    pub fn record_link_with_snapshot(
        &mut self,
        intent: Option<IntentId>,
        link: &NewLink,
        now: DateTime<Utc>,
    ) -> Result<LinkId> {
        self.atomic(|db| {
            let pending = match intent {
                Some(iid) => {
                    let it = db.intent(iid)?.ok_or(StoreError::IntentNotFound(iid))?;
                    check_intent_matches(&it, link)?;
                    Some(it)
                }
                None => None,
            };
            let id = db.insert_link(&link.pair, link.ado_id, &link.clickup_id, now)?;
            db.store_base(id, &link.base, link.ado_rev, link.clickup_updated, now)?;
            failpoint("store::record_link::before_commit", &link.pair)?;
            if let Some(it) = pending {
                let result = match it.target_side {
                    Side::Ado => link.ado_id.to_string(),
                    Side::ClickUp => link.clickup_id.clone(),
                };
                db.close_intent(it.id, IntentStatus::Done, Some(&result), None, now)?;
            }
            Ok(id)
        })
    }

    // ---- cursors ----------------------------------------------------------------------------

    /// The watermarks of `pair`.
    pub fn cursors(&self, pair: &str) -> Result<Cursors> {
        let mut out = Cursors::default();
        self.conn
            .prepare_cached("SELECT side, watermark_ms FROM cursors WHERE pair = ?1")
            .and_then(|mut s| {
                let rows = s.query_map([pair], |r| Ok((r.get::<_, Side>(0)?, r.get(1)?)))?;
                for row in rows {
                    let (side, v) = row?;
                    out.set(side, v);
                }
                Ok(())
            })
            .ctx(|| format!("reading the cursors of pair {pair:?}"))?;
        Ok(out)
    }

    /// Moves the watermarks of `pair` forward, all in one transaction (a crash leaves either
    /// all old or all new values). A value below the stored one is ignored: cursors never go
    /// back. Returns the cursors as stored afterwards.
    pub fn advance_cursors(
        &mut self,
        pair: &str,
        updates: &[(Side, i64)],
        now: DateTime<Utc>,
    ) -> Result<Cursors> {
        self.atomic(|db| {
            for (i, (side, watermark)) in updates.iter().enumerate() {
                if i > 0 {
                    failpoint("store::advance_cursors::mid", pair)?;
                }
                db.conn
                    .prepare_cached(
                        "INSERT INTO cursors (pair, side, watermark_ms, updated_at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (pair, side) DO UPDATE SET \
                         watermark_ms = max(watermark_ms, excluded.watermark_ms), \
                         updated_at = excluded.updated_at",
                    )
                    .and_then(|mut s| s.execute(params![pair, side, watermark, ms(now)]))
                    .ctx(|| {
                        format!("advancing the {side} cursor of pair {pair:?} to {watermark}")
                    })?;
            }
            db.cursors(pair)
        })
    }

    /// The watermarks of every pair that has any.
    pub fn all_cursors(&self) -> Result<BTreeMap<String, Cursors>> {
        let mut out: BTreeMap<String, Cursors> = BTreeMap::new();
        self.conn
            .prepare_cached("SELECT pair, side, watermark_ms FROM cursors")
            .and_then(|mut s| {
                let rows = s.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Side>(1)?, r.get(2)?))
                })?;
                for row in rows {
                    let (pair, side, v) = row?;
                    out.entry(pair).or_default().set(side, v);
                }
                Ok(())
            })
            .ctx(|| "reading all cursors".to_string())?;
        Ok(out)
    }

    // ---- intents ----------------------------------------------------------------------------

    /// Records that `source` is about to get a counterpart on the other side, with what the
    /// create will send. Write it BEFORE sending the create. Refused with
    /// [`StoreError::IntentAlreadyPending`] while another intent for the same item is pending.
    pub fn create_intent<T: Serialize + ?Sized>(
        &mut self,
        pair: &str,
        source: &ItemRef,
        planned: &T,
        now: DateTime<Utc>,
    ) -> Result<IntentId> {
        let json = to_json(planned, || {
            format!("encoding the planned create of {source}")
        })?;
        let res = self
            .conn
            .prepare_cached(
                "INSERT INTO intents (pair, source_side, source_id, target_side, planned_json, \
                 created_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
            )
            .and_then(|mut s| {
                s.insert(params![
                    pair,
                    source.side(),
                    source.id_text(),
                    source.side().other(),
                    json,
                    ms(now)
                ])
            });
        match res {
            Ok(id) => Ok(id),
            Err(e) if is_unique_violation(&e) => {
                let existing: Option<IntentId> = self
                    .conn
                    .prepare_cached(
                        "SELECT id FROM intents WHERE pair = ?1 AND source_side = ?2 \
                         AND source_id = ?3 AND status = 'pending'",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![pair, source.side(), source.id_text()], |r| r.get(0))
                            .optional()
                    })
                    .ctx(|| format!("finding the pending intent of {source}"))?;
                match existing {
                    Some(existing) => Err(StoreError::IntentAlreadyPending {
                        pair: pair.to_string(),
                        source_item: source.clone(),
                        existing,
                    }),
                    None => Err(e).ctx(|| format!("recording the create intent of {source}")),
                }
            }
            Err(e) => Err(e).ctx(|| format!("recording the create intent of {source}")),
        }
    }

    /// One intent, in any status.
    pub fn intent(&self, id: IntentId) -> Result<Option<Intent>> {
        self.conn
            .prepare_cached(&format!("SELECT {INTENT_COLS} FROM intents WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], intent_row).optional())
            .ctx(|| format!("reading intent {id}"))
    }

    /// The pending intents (of one pair, or all), oldest first: recovered at the start of
    /// every cycle.
    pub fn pending_intents(&self, pair: Option<&str>) -> Result<Vec<Intent>> {
        self.conn
            .prepare_cached(queries::PENDING_INTENTS)
            .and_then(|mut s| {
                s.query_map([pair], intent_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| "listing the pending create intents".to_string())
    }

    /// Closes a pending intent whose counterpart exists (`result_id`), when the link is
    /// recorded by other means than [`Db::record_link_with_snapshot`].
    pub fn mark_intent_done(
        &mut self,
        id: IntentId,
        result_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.close_intent(id, IntentStatus::Done, Some(result_id), None, now)
    }

    /// Closes a pending intent without a counterpart (e.g. its source item went away).
    pub fn mark_intent_abandoned(
        &mut self,
        id: IntentId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.close_intent(id, IntentStatus::Abandoned, None, Some(reason), now)
    }

    fn close_intent(
        &mut self,
        id: IntentId,
        status: IntentStatus,
        result_id: Option<&str>,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let doing = || format!("marking intent {id} {status}");
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE intents SET status = ?2, result_id = ?3, note = ?4, closed_at = ?5 \
                 WHERE id = ?1 AND status = 'pending'",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    status,
                    result_id,
                    note.map(truncate_text),
                    ms(now)
                ])
            })
            .ctx(doing)?;
        if changed == 1 {
            return Ok(());
        }
        match self.intent(id)? {
            None => Err(StoreError::IntentNotFound(id)),
            Some(it) => Err(StoreError::IntentNotPending {
                id,
                status: it.status,
                doing: doing(),
            }),
        }
    }

    // ---- retries ----------------------------------------------------------------------------

    /// Records one more failure of `item`: the attempt count goes up and the next attempt is
    /// scheduled `policy.delay(attempts)` after `now`. Returns the row as stored.
    pub fn record_failure(
        &mut self,
        pair: &str,
        item: &ItemRef,
        error: &str,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Retry> {
        self.atomic(|db| {
            let previous = db.retry(pair, item)?;
            let attempts = previous
                .as_ref()
                .map_or(1, |r| r.attempts.saturating_add(1));
            let delay =
                chrono::Duration::from_std(policy.delay(attempts)).unwrap_or(chrono::Duration::MAX);
            let next = now
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let first = previous.as_ref().map_or(now, |r| r.first_failed_at);
            db.conn
                .prepare_cached(
                    "INSERT INTO retries (pair, side, item_id, attempts, first_failed_at, \
                     last_failed_at, next_attempt_at, last_error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (pair, side, item_id) DO UPDATE SET \
                     attempts = excluded.attempts, last_failed_at = excluded.last_failed_at, \
                     next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        pair,
                        item.side(),
                        item.id_text(),
                        i64::from(attempts),
                        ms(first),
                        ms(now),
                        ms(next),
                        truncate_text(error)
                    ])
                })
                .ctx(|| format!("recording the failure of {item} in pair {pair:?}"))?;
            db.retry(pair, item)?.ok_or_else(|| StoreError::Sqlite {
                doing: format!("re-reading the retry of {item} in pair {pair:?}"),
                source: rusqlite::Error::QueryReturnedNoRows,
            })
        })
    }

    /// The retry row of one item.
    pub fn retry(&self, pair: &str, item: &ItemRef) -> Result<Option<Retry>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RETRY_COLS} FROM retries WHERE pair = ?1 AND side = ?2 AND item_id = ?3"
            ))
            .and_then(|mut s| {
                s.query_row(params![pair, item.side(), item.id_text()], retry_row)
                    .optional()
            })
            .ctx(|| format!("reading the retry of {item} in pair {pair:?}"))
    }

    /// The items of `pair` whose next attempt is due at `now`, most overdue first.
    pub fn due_retries(&self, pair: &str, now: DateTime<Utc>) -> Result<Vec<Retry>> {
        self.conn
            .prepare_cached(queries::DUE_RETRIES)
            .and_then(|mut s| {
                s.query_map(params![pair, ms(now)], retry_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| format!("listing the due retries of pair {pair:?}"))
    }

    /// Every retry row (of one pair, or all), by next attempt.
    pub fn retries(&self, pair: Option<&str>) -> Result<Vec<Retry>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RETRY_COLS} FROM retries WHERE (?1 IS NULL OR pair = ?1) \
                 ORDER BY next_attempt_at"
            ))
            .and_then(|mut s| {
                s.query_map([pair], retry_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| "listing the retries".to_string())
    }

    /// Forgets the failures of `item` (after it succeeded). Returns whether it had any.
    pub fn clear_retry(&mut self, pair: &str, item: &ItemRef) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM retries WHERE pair = ?1 AND side = ?2 AND item_id = ?3")
            .and_then(|mut s| s.execute(params![pair, item.side(), item.id_text()]))
            .map(|n| n > 0)
            .ctx(|| format!("clearing the retry of {item} in pair {pair:?}"))
    }

    // ---- conflicts --------------------------------------------------------------------------

    /// Records a conflict on `field` of `link`. When one is already open for that link and
    /// field, its values are updated instead (same id, `detected_at` kept).
    pub fn upsert_conflict(
        &mut self,
        link: LinkId,
        field: Field,
        values: &ConflictValues,
        now: DateTime<Utc>,
    ) -> Result<ConflictId> {
        let doing = || format!("recording the {field} conflict of link {link}");
        let base = to_json(&values.base, doing)?;
        let ado = to_json(&values.ado, doing)?;
        let clickup = to_json(&values.clickup, doing)?;
        let res = self
            .conn
            .prepare_cached(
                "INSERT INTO conflicts (link_id, field, base_json, ado_json, clickup_json, \
                 detected_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 ON CONFLICT (link_id, field) WHERE resolved_at IS NULL DO UPDATE SET \
                 base_json = excluded.base_json, ado_json = excluded.ado_json, \
                 clickup_json = excluded.clickup_json, updated_at = excluded.updated_at \
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(params![link, field, base, ado, clickup, ms(now)], |r| {
                    r.get(0)
                })
            });
        match res {
            Ok(id) => Ok(id),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::LinkNotFound(link)),
            Err(e) => Err(e).ctx(doing),
        }
    }

    /// One conflict, open or not.
    pub fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>> {
        self.conn
            .prepare_cached(&format!("{CONFLICT_SELECT} WHERE c.id = ?1"))
            .and_then(|mut s| s.query_row([id], conflict_row).optional())
            .ctx(|| format!("reading conflict {id}"))
    }

    /// The open conflicts (of one pair, or all), oldest first.
    pub fn open_conflicts(&self, pair: Option<&str>) -> Result<Vec<Conflict>> {
        self.query_conflicts(
            &format!(
                "{CONFLICT_SELECT} WHERE c.resolved_at IS NULL AND (?1 IS NULL OR l.pair = ?1) \
                 ORDER BY c.id"
            ),
            params![pair],
            || "listing the open conflicts".to_string(),
        )
    }

    /// The open conflicts of these links (the planner leaves those fields alone).
    pub fn open_conflicts_for_links(&self, links: &[LinkId]) -> Result<Vec<Conflict>> {
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let json = to_json(links, || "encoding link ids".into())?;
        self.query_conflicts(queries::OPEN_CONFLICTS_FOR_LINKS, params![json], || {
            format!("reading the open conflicts of {} links", links.len())
        })
    }

    /// Resolved conflicts whose chosen value has not been written yet, oldest first.
    pub fn unapplied_resolutions(&self) -> Result<Vec<Conflict>> {
        self.query_conflicts(
            &format!(
                "{CONFLICT_SELECT} WHERE c.resolved_at IS NOT NULL AND c.applied_at IS NULL \
                 ORDER BY c.resolved_at"
            ),
            params![],
            || "listing the conflict resolutions to apply".to_string(),
        )
    }

    fn query_conflicts(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        doing: impl FnOnce() -> String,
    ) -> Result<Vec<Conflict>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params, conflict_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(doing)
    }

    /// Closes an open conflict. A resolution that needs no write ([`Resolution::needs_apply`])
    /// is marked applied at once; otherwise the engine writes the chosen value and calls
    /// [`Db::mark_conflict_applied`]. Returns the conflict as stored.
    pub fn resolve_conflict(
        &mut self,
        id: ConflictId,
        resolution: Resolution,
        now: DateTime<Utc>,
    ) -> Result<Conflict> {
        self.atomic(|db| {
            let current = db.conflict(id)?.ok_or(StoreError::ConflictNotFound(id))?;
            if let Some(previous) = current.resolution {
                return Err(StoreError::ConflictAlreadyResolved {
                    id,
                    resolution: previous,
                });
            }
            let applied = (!resolution.needs_apply()).then_some(ms(now));
            db.conn
                .prepare_cached(
                    "UPDATE conflicts SET resolved_at = ?2, resolution = ?3, applied_at = ?4 \
                     WHERE id = ?1 AND resolved_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![id, ms(now), resolution, applied]))
                .ctx(|| format!("resolving conflict {id} with {resolution}"))?;
            db.conflict(id)?.ok_or(StoreError::ConflictNotFound(id))
        })
    }

    /// Records that a resolution's value was written. Idempotent.
    pub fn mark_conflict_applied(&mut self, id: ConflictId, now: DateTime<Utc>) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE conflicts SET applied_at = coalesce(applied_at, ?2) \
                 WHERE id = ?1 AND resolved_at IS NOT NULL",
            )
            .and_then(|mut s| s.execute(params![id, ms(now)]))
            .ctx(|| format!("marking the resolution of conflict {id} applied"))?;
        if changed == 1 {
            return Ok(());
        }
        match self.conflict(id)? {
            None => Err(StoreError::ConflictNotFound(id)),
            Some(_) => Err(StoreError::ConflictStillOpen(id)),
        }
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Appends one audit row.
    pub fn append_audit(&mut self, entry: &AuditEntry) -> Result<AuditId> {
        let doing = || {
            format!(
                "auditing {} of {} on link {:?}",
                entry.action.as_str(),
                entry.item_id.as_deref().unwrap_or("-"),
                entry.link_id
            )
        };
        let fields = to_json(&entry.fields, doing)?;
        let before = entry
            .before
            .as_ref()
            .map(|v| to_json(v, doing))
            .transpose()?;
        let after = entry
            .after
            .as_ref()
            .map(|v| to_json(v, doing))
            .transpose()?;
        self.conn
            .prepare_cached(
                "INSERT INTO audit (at, cycle_id, pair, link_id, side, item_id, action, \
                 fields_json, before_json, after_json, outcome, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.insert(params![
                    ms(entry.at),
                    entry.cycle_id,
                    entry.pair,
                    entry.link_id,
                    entry.side,
                    entry.item_id,
                    entry.action,
                    fields,
                    before,
                    after,
                    entry.outcome,
                    entry.detail.as_deref().map(truncate_text)
                ])
            })
            .ctx(doing)
    }

    /// The newest `limit` audit rows, newest first.
    pub fn recent_audit(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT ?1"
            ))
            .and_then(|mut s| {
                s.query_map([limit], audit_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| format!("reading the last {limit} audit rows"))
    }

    /// The newest `limit` audit rows of one link, newest first.
    pub fn audit_for_link(&self, link: LinkId, limit: u32) -> Result<Vec<AuditRecord>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit WHERE link_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![link, limit], audit_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| format!("reading the audit of link {link}"))
    }

    /// Deletes audit rows older than `before`. Returns how many.
    pub fn prune_audit(&mut self, before: DateTime<Utc>) -> Result<u64> {
        self.conn
            .prepare_cached("DELETE FROM audit WHERE at < ?1")
            .and_then(|mut s| s.execute([ms(before)]))
            .map(|n| n as u64)
            .ctx(|| format!("pruning the audit rows older than {before}"))
    }

    // ---- cycles -----------------------------------------------------------------------------

    /// Records the start of a cycle (of one pair, or all when `None`).
    pub fn start_cycle(
        &mut self,
        kind: CycleKind,
        pair: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<CycleId> {
        // Cycles of one database take turns (the cycle lock), so a cycle of this pair still
        // open now belongs to a process that died or was stopped during it.
        self.conn
            .prepare_cached(
                "UPDATE cycles SET ended_at = ?2, error = 'interrupted: the process stopped \
                 before this cycle ended' WHERE ended_at IS NULL AND pair IS ?1",
            )
            .and_then(|mut s| s.execute(params![pair, ms(now)]))
            .ctx(|| "closing the cycles an earlier process left open".to_string())?;
        self.conn
            .prepare_cached("INSERT INTO cycles (kind, pair, started_at) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.insert(params![kind, pair, ms(now)]))
            .ctx(|| format!("recording the start of a {} cycle", kind.as_str()))
    }

    /// Records the end of a cycle with what it did, and its error when it failed.
    pub fn finish_cycle(
        &mut self,
        id: CycleId,
        counts: &CycleCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE cycles SET ended_at = ?2, reads = ?3, writes = ?4, conflicts = ?5, \
                 errors = ?6, api_requests = ?7, error = ?8 WHERE id = ?1 AND ended_at IS NULL",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    ms(now),
                    sql_count(counts.reads),
                    sql_count(counts.writes),
                    sql_count(counts.conflicts),
                    sql_count(counts.errors),
                    sql_count(counts.api_requests),
                    error.map(truncate_text)
                ])
            })
            .ctx(|| format!("recording the end of cycle {id}"))?;
        if changed == 1 {
            return Ok(());
        }
        match self.cycle(id)? {
            None => Err(StoreError::CycleNotFound(id)),
            Some(_) => Err(StoreError::CycleAlreadyFinished(id)),
        }
    }

    /// One cycle.
    pub fn cycle(&self, id: CycleId) -> Result<Option<CycleRecord>> {
        self.conn
            .prepare_cached(&format!("SELECT {CYCLE_COLS} FROM cycles WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], cycle_row).optional())
            .ctx(|| format!("reading cycle {id}"))
    }

    /// The last `n` cycles, newest first.
    pub fn last_cycles(&self, n: u32) -> Result<Vec<CycleRecord>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CYCLE_COLS} FROM cycles ORDER BY id DESC LIMIT ?1"
            ))
            .and_then(|mut s| {
                s.query_map([n], cycle_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| format!("reading the last {n} cycles"))
    }

    /// The newest cycle that ended without error (of one kind, or any).
    pub fn last_successful_cycle(&self, kind: Option<CycleKind>) -> Result<Option<CycleRecord>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CYCLE_COLS} FROM cycles WHERE ended_at IS NOT NULL AND error IS NULL \
                 AND (?1 IS NULL OR kind = ?1) ORDER BY id DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row([kind], cycle_row).optional())
            .ctx(|| "reading the last successful cycle".to_string())
    }

    // ---- status -----------------------------------------------------------------------------

    /// Everything `ado-clickup-sync status` shows, read consistently.
    pub fn status(&mut self, now: DateTime<Utc>, last_n: u32) -> Result<StatusSummary> {
        self.consistent_read(|db| {
            let mut pairs: BTreeMap<String, PairStatus> = BTreeMap::new();
            fn entry<'a>(
                m: &'a mut BTreeMap<String, PairStatus>,
                pair: &str,
            ) -> &'a mut PairStatus {
                m.entry(pair.to_string()).or_insert_with(|| PairStatus {
                    pair: pair.to_string(),
                    ..PairStatus::default()
                })
            }
            for (pair, state, n) in db.grouped::<LinkState>(
                "SELECT pair, state, count(*) FROM links GROUP BY pair, state",
                params![],
                "counting links",
            )? {
                let e = entry(&mut pairs, &pair);
                match state {
                    LinkState::Active => e.links_active = n,
                    LinkState::Unlinked => e.links_unlinked = n,
                }
            }
            for (pair, _, n) in db.grouped::<i64>(
                "SELECT pair, 0, count(*) FROM intents WHERE status = 'pending' GROUP BY pair",
                params![],
                "counting pending intents",
            )? {
                entry(&mut pairs, &pair).pending_intents = n;
            }
            for (pair, due, n) in db.grouped::<bool>(
                "SELECT pair, next_attempt_at <= ?1, count(*) FROM retries GROUP BY 1, 2",
                params![ms(now)],
                "counting retries",
            )? {
                let e = entry(&mut pairs, &pair);
                e.retries += n;
                if due {
                    e.due_retries += n;
                }
            }
            for (pair, _, n) in db.grouped::<i64>(
                "SELECT l.pair, 0, count(*) FROM conflicts c JOIN links l ON l.id = c.link_id \
                 WHERE c.resolved_at IS NULL GROUP BY l.pair",
                params![],
                "counting open conflicts",
            )? {
                entry(&mut pairs, &pair).open_conflicts = n;
            }
            for (pair, cursors) in db.all_cursors()? {
                entry(&mut pairs, &pair).cursors = cursors;
            }
            let unapplied_resolutions = db
                .conn
                .query_row(
                    "SELECT count(*) FROM conflicts \
                     WHERE resolved_at IS NOT NULL AND applied_at IS NULL",
                    [],
                    |r| count_col(r, 0),
                )
                .ctx(|| "counting the conflict resolutions to apply".to_string())?;
            Ok(StatusSummary {
                schema_version: db.schema_version()?,
                pairs: pairs.into_values().collect(),
                last_cycles: db.last_cycles(last_n)?,
                last_successful: db.last_successful_cycle(None)?,
                unapplied_resolutions,
            })
        })
    }

    fn grouped<K: FromSql>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        doing: &str,
    ) -> Result<Vec<(String, K, u64)>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, count_col(r, 2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(|| doing.to_string())
    }
}

/// The SQL of the lookups an incremental cycle makes, public so that tests and diagnostics can
/// check with `EXPLAIN QUERY PLAN` that each searches an index (never scans a table). Batch
/// parameters are JSON arrays, expanded with `json_each`.
pub mod queries {
    /// [`super::Db::links_by_ids`]: `?1` link ids.
    pub const LINKS_BY_IDS: &str = concat!(
        "SELECT ",
        link_cols!(),
        " FROM links WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
    );
    /// [`super::Db::links_by_ado`]: `?1` pair, `?2` ADO ids.
    pub const LINKS_BY_ADO: &str = concat!(
        "SELECT ",
        link_cols!(),
        " FROM links WHERE pair = ?1 AND state = 'active' \
         AND ado_id IN (SELECT value FROM json_each(?2)) ORDER BY id"
    );
    /// [`super::Db::links_by_clickup`]: `?1` pair, `?2` ClickUp ids.
    pub const LINKS_BY_CLICKUP: &str = concat!(
        "SELECT ",
        link_cols!(),
        " FROM links WHERE pair = ?1 AND state = 'active' \
         AND clickup_id IN (SELECT value FROM json_each(?2)) ORDER BY id"
    );
    /// [`super::Db::count_active_links`]: `?1` pair.
    pub const COUNT_ACTIVE_LINKS: &str =
        "SELECT count(*) FROM links WHERE pair = ?1 AND state = 'active'";
    /// [`super::Db::snapshots`]: `?1` link ids.
    pub const SNAPSHOTS: &str = "SELECT link_id, item_json, ado_rev, clickup_date_updated, \
         synced_at FROM snapshots WHERE link_id IN (SELECT value FROM json_each(?1))";
    /// [`super::Db::open_conflicts_for_links`]: `?1` link ids.
    pub const OPEN_CONFLICTS_FOR_LINKS: &str = concat!(
        conflict_select!(),
        " WHERE c.link_id IN (SELECT value FROM json_each(?1)) AND c.resolved_at IS NULL \
         ORDER BY c.id"
    );
    /// [`super::Db::due_retries`]: `?1` pair, `?2` now (ms).
    pub const DUE_RETRIES: &str = concat!(
        "SELECT ",
        retry_cols!(),
        " FROM retries WHERE pair = ?1 AND next_attempt_at <= ?2 ORDER BY next_attempt_at"
    );
    /// [`super::Db::pending_intents`]: `?1` pair or NULL for all.
    pub const PENDING_INTENTS: &str = concat!(
        "SELECT ",
        intent_cols!(),
        " FROM intents WHERE status = 'pending' AND (?1 IS NULL OR pair = ?1) ORDER BY id"
    );
}

/// Evaluates failpoint `name` (feature `failpoints`). Configured `return`, it fails the
/// operation; `return(P)` fails it only for pair `P` (so tests can aim at one pair);
/// `return(abort)` kills the process there; other actions (`panic`, `sleep`, `pause`, …)
/// behave as the `fail` crate says.
#[cfg(feature = "failpoints")]
fn failpoint(name: &'static str, pair: &str) -> Result<()> {
    match fail::eval(name, |arg| arg) {
        Some(None) => Err(StoreError::Injected(name)),
        // A crash on the spot, in the middle of the transaction (the crash tests).
        Some(Some(arg)) if arg == "abort" => std::process::abort(),
        Some(Some(only)) if only == pair => Err(StoreError::Injected(name)),
        _ => Ok(()),
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn failpoint(_name: &'static str, _pair: &str) -> Result<()> {
    Ok(())
}

fn check_intent_matches(it: &Intent, link: &NewLink) -> Result<()> {
    if it.status != IntentStatus::Pending {
        return Err(StoreError::IntentNotPending {
            id: it.id,
            status: it.status,
            doing: format!(
                "recording the link of ADO #{} with ClickUp task {}",
                link.ado_id, link.clickup_id
            ),
        });
    }
    let mismatch = |detail: String| StoreError::IntentMismatch { id: it.id, detail };
    if it.pair != link.pair {
        return Err(mismatch(format!(
            "the intent is for pair {:?}, the link for pair {:?}",
            it.pair, link.pair
        )));
    }
    let source_matches = match &it.source {
        ItemRef::Ado(id) => *id == link.ado_id,
        ItemRef::ClickUp(id) => *id == link.clickup_id,
    };
    if !source_matches {
        return Err(mismatch(format!(
            "the intent creates a counterpart of {}, the link is ADO #{} with ClickUp task {}",
            it.source, link.ado_id, link.clickup_id
        )));
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            }),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Store: the async facade
// ---------------------------------------------------------------------------------------------

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// Held for the length of a cycle that may write (see [`Store::try_lock_cycles`]); dropping
/// it releases the lock.
#[derive(Debug)]
pub struct CycleLock {
    _file: Option<std::fs::File>,
}

/// The async handle to the store: a dedicated thread owns the [`Db`] and runs the closures
/// sent to it one at a time, in order. Cheap to clone; the thread ends when the last clone is
/// dropped (after running the closures already sent).
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    location: Arc<DbLocation>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish()
    }
}

impl Store {
    /// Opens and migrates the database without blocking the async runtime.
    pub async fn open(location: DbLocation) -> Result<Store> {
        let db = tokio::task::spawn_blocking(move || Db::open(&location))
            .await
            .map_err(|_| StoreError::Closed)??;
        Store::from_db(db)
    }

    /// Parses `url` (see [`DbLocation::parse`]) and opens it.
    pub async fn open_url(url: &str) -> Result<Store> {
        Store::open(DbLocation::parse(url)?).await
    }

    /// Hands an open [`Db`] to a new owner thread.
    pub fn from_db(db: Db) -> Result<Store> {
        let location = Arc::new(db.location().clone());
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sync-store".into())
            .spawn(move || {
                let mut db = db;
                while let Ok(job) = rx.recv() {
                    job(&mut db);
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Store { jobs, location })
    }

    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    /// Takes the database's cycle lock if no other holder has it: `Ok(None)` when another
    /// process (or another handle in this one) is running a cycle on the same file. Two
    /// cycles at once would both see the same unlinked items and create them twice (an
    /// intent only guards against a crash, not against a second writer); SQLite's own locks
    /// are per transaction and a cycle spans many. An advisory lock on `<db>.lock` beside the
    /// database's real path, released by the kernel when the process dies, so a kill -9
    /// never leaves it stuck. (Not a lock on the database file itself: closing any other
    /// descriptor of that file would drop SQLite's own POSIX locks.)
    pub fn try_lock_cycles(&self) -> Result<Option<CycleLock>> {
        let path = match &*self.location {
            DbLocation::Memory => return Ok(Some(CycleLock { _file: None })),
            DbLocation::File(p) => {
                // The file's real name, so that every name of one database (a symlink, a
                // relative path) shares one lock.
                let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                let mut name = real.into_os_string();
                name.push(".lock");
                PathBuf::from(name)
            }
        };
        let lock_err = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(CycleLock { _file: Some(file) })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
        }
    }

    /// Runs `f` on the store's thread and returns its result. `f` runs to completion even if
    /// this future is dropped. A panic in `f` rolls back any open transaction and is resumed
    /// in the caller.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Db) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        match rx.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// [`Store::call`] for synchronous callers. Must not be called from an async task (it
    /// blocks the thread until the closure has run).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Db) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        match rx.blocking_recv() {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn submit<R, F>(
        &self,
        f: F,
        reply: tokio::sync::oneshot::Sender<std::thread::Result<Result<R>>>,
    ) -> Result<()>
    where
        F: FnOnce(&mut Db) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let job: Job = Box::new(move |db: &mut Db| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(db)));
            if out.is_err() {
                db.rollback_after_panic();
            }
            // The caller may have gone away; the work is done either way.
            let _ = reply.send(out);
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_has_sequential_migrations() {
        let m = migrations().unwrap();
        assert_eq!(m[0].0, 1);
        assert!(m[0].1.contains("CREATE TABLE links"));
        assert!(!m[0].1.contains("-- migration:"));
        for (i, (v, _)) in m.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1);
        }
    }

    /// Every cycle start runs this; the cycles table gains a row per cycle, so it must not scan.
    #[test]
    fn closing_open_cycles_uses_an_index() {
        let db = Db::open_in_memory().unwrap();
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN UPDATE cycles SET ended_at = 1 \
                 WHERE ended_at IS NULL AND pair IS 'p'",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|d| d.contains("USING INDEX cycles_open")),
            "{plan:?}"
        );
    }

    #[test]
    fn retry_delay_doubles_and_caps() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
        };
        assert_eq!(p.delay(1), Duration::from_secs(10));
        assert_eq!(p.delay(2), Duration::from_secs(20));
        assert_eq!(p.delay(4), Duration::from_secs(80));
        assert_eq!(p.delay(5), Duration::from_secs(100));
        assert_eq!(p.delay(1000), Duration::from_secs(100));
        assert_eq!(p.delay(0), Duration::from_secs(10));
    }

    #[test]
    fn item_ref_round_trips_through_text() {
        for r in [ItemRef::Ado(42), ItemRef::ClickUp("86abc".into())] {
            assert_eq!(ItemRef::from_parts(r.side(), &r.id_text()), Some(r));
        }
        assert_eq!(ItemRef::from_parts(Side::Ado, "x1"), None);
    }
}
