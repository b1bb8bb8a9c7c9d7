//! The canonical model and the side records the adapters hand to the core.
//!
//! Three layers of data meet here, and none of them is a wire DTO:
//! - [`AdoRecord`] / [`ClickUpRecord`]: what one side holds for one item, in that side's own
//!   vocabulary (ADO state names and HTML; ClickUp status names and Markdown). The clients in
//!   `src/ado/` and `src/clickup/` build these from their DTOs.
//! - [`Item`]: the canonical item both sides are compared in (see `mapping.rs` for the
//!   conversions, driven by the pair's config).
//! - [`AdoPatch`] / [`ClickUpPatch`]: what the planner wants written to one side, again in that
//!   side's vocabulary, so the clients can send it without knowing the mapping.
use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Which service a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Ado,
    ClickUp,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Ado => Side::ClickUp,
            Side::ClickUp => Side::Ado,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Ado => "ado",
            Side::ClickUp => "clickup",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The local id of a link row (one ADO work item ↔ one ClickUp task). Parents are expressed
/// as link ids in the canonical item, so that both sides' parents compare equal.
pub type LinkId = i64;

/// ADO work item id.
pub type AdoId = i64;

/// ClickUp task id (an opaque string such as `"86a1b2c3d"`).
pub type ClickUpId = String;

/// ADO state category (from the work item type's states) — the fallback key when a state is
/// not in the pair's explicit map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AdoStateCategory {
    Proposed,
    InProgress,
    Resolved,
    Completed,
    Removed,
}

/// ClickUp status type, from the list's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickUpStatusType {
    Open,
    Custom,
    Done,
    Closed,
}

/// A status as one side holds it plus the canonical key it maps to. Two statuses are the same
/// canonical value when their `canonical` keys are equal; `raw` is kept for display and audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub raw: String,
    pub canonical: String,
}

/// A due date: a calendar date, or an instant in UTC when the source had a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Due {
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

/// A set of tags: compared case-insensitively, spelled as first seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagSet(pub Vec<String>);

impl TagSet {
    /// Builds a set, dropping empty names and case-insensitive repeats (first spelling kept),
    /// sorted by lowercase name so that equal sets serialize identically.
    pub fn new<I, S>(tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut seen = BTreeSet::new();
        let mut out: Vec<String> = Vec::new();
        for t in tags {
            let t: String = t.into();
            let t = t.trim().to_string();
            if t.is_empty() {
                continue;
            }
            if seen.insert(t.to_lowercase()) {
                out.push(t);
            }
        }
        out.sort_by_key(|t| t.to_lowercase());
        TagSet(out)
    }
    pub fn keys(&self) -> BTreeSet<String> {
        self.0.iter().map(|t| t.to_lowercase()).collect()
    }
    pub fn contains(&self, tag: &str) -> bool {
        let k = tag.to_lowercase();
        self.0.iter().any(|t| t.to_lowercase() == k)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

impl PartialEq for TagSet {
    fn eq(&self, other: &Self) -> bool {
        self.keys() == other.keys()
    }
}
impl Eq for TagSet {}

/// The canonical item: what both sides are compared in and merged on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub title: String,
    /// Normalized GFM Markdown (see `convert.rs`).
    pub description: String,
    pub status: Status,
    /// Lowercased emails.
    pub assignees: BTreeSet<String>,
    pub tags: TagSet,
    /// 1 (urgent / highest) ..= 4 (low), or none.
    pub priority: Option<u8>,
    pub due: Option<Due>,
    pub parent: Option<LinkId>,
}

/// The names of the synced fields, used for per-field options, conflicts and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Title,
    Description,
    Status,
    Assignees,
    Tags,
    Priority,
    Due,
    Parent,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Title,
        Field::Description,
        Field::Status,
        Field::Assignees,
        Field::Tags,
        Field::Priority,
        Field::Due,
        Field::Parent,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Description => "description",
            Field::Status => "status",
            Field::Assignees => "assignees",
            Field::Tags => "tags",
            Field::Priority => "priority",
            Field::Due => "due",
            Field::Parent => "parent",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ADO work item as the daemon needs it, in ADO's vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoRecord {
    pub id: AdoId,
    pub rev: i64,
    pub changed_date: DateTime<Utc>,
    pub created_date: Option<DateTime<Utc>>,
    pub work_item_type: String,
    pub area_path: String,
    pub state: String,
    pub title: String,
    /// `System.Description` as stored (HTML); empty when absent.
    pub description_html: String,
    /// `System.AssignedTo` as an email (the identity's `uniqueName`), lowercased; none when
    /// unassigned.
    pub assigned_to: Option<String>,
    pub tags: Vec<String>,
    /// `Microsoft.VSTS.Common.Priority`.
    pub priority: Option<i64>,
    /// `Microsoft.VSTS.Scheduling.DueDate`.
    pub due_date: Option<DateTime<Utc>>,
    /// `System.Parent`.
    pub parent: Option<AdoId>,
    /// URLs of `Hyperlink` relations (the back-link marker to the ClickUp task lives here).
    /// Empty when relations were not read.
    pub hyperlinks: Vec<String>,
    /// The work item's web URL (`…/_workitems/edit/{id}`), used as the ClickUp back-link.
    pub web_url: String,
}

/// One ClickUp assignee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickUpUser {
    pub id: i64,
    pub email: String,
    pub username: String,
}

/// One ClickUp task as the daemon needs it, in ClickUp's vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpRecord {
    pub id: ClickUpId,
    pub list_id: String,
    /// `date_updated`, ms since the epoch.
    pub date_updated: i64,
    /// `date_created`, ms since the epoch.
    pub date_created: i64,
    pub name: String,
    /// `markdown_description` (empty when absent).
    pub markdown_description: String,
    pub status: String,
    pub status_type: ClickUpStatusType,
    pub assignees: Vec<ClickUpUser>,
    pub tags: Vec<String>,
    /// Priority id 1..=4, none when unset.
    pub priority: Option<u8>,
    /// `due_date`, ms since the epoch.
    pub due_date: Option<i64>,
    /// Whether `due_date` carries a time of day (`due_date_time`); ClickUp does not always say,
    /// in which case the mapping decides from the value.
    pub due_date_time: Option<bool>,
    pub parent: Option<ClickUpId>,
    pub archived: bool,
    /// The value of the configured back-link custom field (the ADO work item URL), if any.
    pub backlink: Option<String>,
    pub url: String,
}

/// What to write to one ADO work item. `None` means "leave the field alone".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdoPatch {
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub state: Option<String>,
    /// `Some(None)` clears the assignee.
    pub assigned_to: Option<Option<String>>,
    /// The full new tag list (written with `replace`).
    pub tags: Option<Vec<String>>,
    pub priority: Option<Option<i64>>,
    pub due_date: Option<Option<DateTime<Utc>>>,
    /// `Some(None)` removes the parent relation.
    pub parent: Option<Option<AdoId>>,
}

impl AdoPatch {
    pub fn is_empty(&self) -> bool {
        *self == AdoPatch::default()
    }
}

/// What to write to one ClickUp task. `None` means "leave the field alone".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClickUpPatch {
    pub name: Option<String>,
    pub markdown: Option<String>,
    pub status: Option<String>,
    /// Emails to add / remove; the client resolves them to member ids.
    pub assignees_add: Vec<String>,
    pub assignees_rem: Vec<String>,
    /// Tag names to add / remove (through the tag endpoints: Update Task ignores tags).
    pub tags_add: Vec<String>,
    pub tags_rem: Vec<String>,
    pub priority: Option<Option<u8>>,
    /// ms since the epoch, and whether it carries a time.
    pub due_date: Option<Option<(i64, bool)>>,
    /// ClickUp cannot un-parent a subtask through the API; only `Some(id)` is sent.
    pub parent: Option<ClickUpId>,
}

impl ClickUpPatch {
    pub fn is_empty(&self) -> bool {
        *self == ClickUpPatch::default()
    }
}

/// A new ADO work item to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoCreate {
    pub work_item_type: String,
    pub area_path: Option<String>,
    pub fields: AdoPatch,
    /// The ClickUp task URL, stored as a `Hyperlink` relation (the back-link marker).
    pub backlink_url: String,
}

/// A new ClickUp task to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpCreate {
    pub list_id: String,
    pub fields: ClickUpPatch,
    /// The ADO work item URL, written to the back-link custom field when one is configured.
    pub backlink_url: String,
}
