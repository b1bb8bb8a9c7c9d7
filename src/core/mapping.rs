//! A pair's mapping between ADO's vocabulary, ClickUp's vocabulary and the canonical [`Item`].
//!
//! The config types here are embedded by the config layer (one [`MappingConfig`] per pair);
//! [`MappingContext`] and [`UserDirectory`] are built by the engine from the services' metadata.
//! [`Mapper`] does the conversions and decides what "equal" means *as seen from one side*,
//! which is what keeps the sync free of ping-pong when a side cannot hold a canonical value
//! exactly (one ADO assignee, ADO having no "no priority", HTML descriptions, ...).
//!
//! # Decisions (documented here because the spec left them open)
//! - **Status fallback** (ADO has 5 state categories, ClickUp 4 status types). Unmapped values
//!   read as a fallback key: ADO `Proposed`↔ClickUp `open` = `"open"`, `InProgress`↔`custom` =
//!   `"in_progress"`, `Resolved`↔`done` = `"done"`, `Completed`↔`closed` = `"closed"`, and ADO
//!   `Removed` = `"removed"`, which ClickUp writes as a `closed` status (ClickUp never reads
//!   back `"removed"`; the side-equality rule below keeps that from looking like a change).
//!   Writing a key picks the first state/status of the preferred category, in order:
//!   ADO `done`→Resolved, else Completed; `removed`→Removed, else Completed. ClickUp
//!   `in_progress`→custom, else open; `done`→done, else closed; `removed`→closed.
//! - **Assignees**: canonical emails are the ClickUp-side emails (lowercased); explicit
//!   overrides translate ADO emails. ADO holds one assignee: the projection of a set onto ADO
//!   keeps ADO's current assignee when it is in the set, else the smallest email; a set that
//!   contains ADO's assignee is "equal as seen from ADO". Users unknown to the other side are
//!   dropped when read (left unassigned there) and reported, never guessed.
//! - **Priority**: canonical = ClickUp id 1..=4 or none. ClickUp none is written to ADO as
//!   `clickup_none_to_ado` (default 2, ADO's own default); ADO values in `ado_reads_as_none`
//!   read back as none. Either way none and that ADO value are equal as seen from ADO.
//! - **Due dates**: date-only values are written as 12:00 UTC (ClickUp: `due_date_time=false`).
//!   ADO reads a value at exactly 00:00:00 or 12:00:00 UTC as a date. ClickUp reads a
//!   date-only value as the UTC date of the instant + 9 h: ClickUp snaps date-only due dates to
//!   about 04:00 in the Workspace time zone, and +9 h recovers the intended day for zones
//!   UTC-10..UTC+13 as well as for our own noon-UTC and others' midnight-UTC writes. When
//!   ClickUp does not say (`due_date_time` absent) a value at exactly 00:00, 04:00 or 12:00
//!   UTC is taken as date-only. ClickUp's task JSON never says (FACTS §7), so a date-only
//!   value the sync wrote comes back snapped to 04:00 in a Workspace zone this crate does not
//!   know (04:00 UTC only in a UTC Workspace): as seen from ClickUp, a date `d` therefore
//!   also equals any quarter-hour instant that is 04:00 local on
//!   the day noon UTC of `d` falls on, for some zone from UTC-12 to UTC+14 (the window
//!   (d-1 16:00, d 16:00] UTC). That keeps ClickUp's snapping from reading as an edit (which
//!   would write a time into ADO); the price is that a ClickUp user turning a date-only due
//!   date into a quarter-hour time inside that window is not seen until the date changes.
//! - **Parents**: a parent that does not resolve to a link reads as none; ADO parents are only
//!   removed when the current one is linked; ClickUp cannot un-parent (the planner turns that
//!   into a conflict).
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::convert;
use super::model::{
    AdoCreate, AdoId, AdoPatch, AdoRecord, AdoStateCategory, ClickUpCreate, ClickUpId,
    ClickUpPatch, ClickUpRecord, ClickUpStatusType, Due, Field, Item, LinkId, Side, Status, TagSet,
};

// ---------------------------------------------------------------------------------------------
// Config types
// ---------------------------------------------------------------------------------------------

/// Which way a field flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    AdoToClickup,
    ClickupToAdo,
    None,
}

impl Direction {
    /// Whether edits made on `side` are taken.
    pub fn takes_from(self, side: Side) -> bool {
        match self {
            Direction::Both => true,
            Direction::AdoToClickup => side == Side::Ado,
            Direction::ClickupToAdo => side == Side::ClickUp,
            Direction::None => false,
        }
    }
    /// The same flow with the sides swapped.
    pub fn mirrored(self) -> Direction {
        match self {
            Direction::AdoToClickup => Direction::ClickupToAdo,
            Direction::ClickupToAdo => Direction::AdoToClickup,
            d => d,
        }
    }
}

/// What decides when both sides changed a field to different values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    AdoWins,
    ClickupWins,
    /// The side whose item changed last (ADO ChangedDate vs ClickUp date_updated) wins.
    #[default]
    NewestWins,
    /// Record a conflict and write nothing for the field until someone resolves it.
    Manual,
}

impl ConflictPolicy {
    pub fn mirrored(self) -> ConflictPolicy {
        match self {
            ConflictPolicy::AdoWins => ConflictPolicy::ClickupWins,
            ConflictPolicy::ClickupWins => ConflictPolicy::AdoWins,
            p => p,
        }
    }
}

/// What to do when a linked item disappears from one side (deleted or out of scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionPolicy {
    /// Drop the link; the surviving item is left as it is.
    #[default]
    Unlink,
    /// Move the surviving item to its closed/removed status, then drop the link. Never deletes.
    Mirror,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldOptions {
    pub direction: Direction,
    pub conflict: ConflictPolicy,
}

impl FieldOptions {
    pub fn mirrored(self) -> FieldOptions {
        FieldOptions {
            direction: self.direction.mirrored(),
            conflict: self.conflict.mirrored(),
        }
    }
}

/// Per-field options; every field defaults to `both` + `newest_wins`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsConfig {
    pub title: FieldOptions,
    pub description: FieldOptions,
    pub status: FieldOptions,
    pub assignees: FieldOptions,
    pub tags: FieldOptions,
    pub priority: FieldOptions,
    pub due: FieldOptions,
    pub parent: FieldOptions,
}

impl FieldsConfig {
    pub fn get(&self, f: Field) -> FieldOptions {
        match f {
            Field::Title => self.title,
            Field::Description => self.description,
            Field::Status => self.status,
            Field::Assignees => self.assignees,
            Field::Tags => self.tags,
            Field::Priority => self.priority,
            Field::Due => self.due,
            Field::Parent => self.parent,
        }
    }
    pub fn set(&mut self, f: Field, o: FieldOptions) {
        match f {
            Field::Title => self.title = o,
            Field::Description => self.description = o,
            Field::Status => self.status = o,
            Field::Assignees => self.assignees = o,
            Field::Tags => self.tags = o,
            Field::Priority => self.priority = o,
            Field::Due => self.due = o,
            Field::Parent => self.parent = o,
        }
    }
    /// Same options with ADO and ClickUp swapped (used to check symmetry).
    pub fn mirrored(&self) -> FieldsConfig {
        let mut out = *self;
        for f in Field::ALL {
            out.set(f, self.get(f).mirrored());
        }
        out
    }
}

/// One row of the status map: every ADO state and ClickUp status listed reads as `canonical`;
/// writing `canonical` uses `ado_write` / `clickup_write`, defaulting to the first listed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRow {
    pub canonical: String,
    #[serde(default)]
    pub ado: Vec<String>,
    #[serde(default)]
    pub clickup: Vec<String>,
    #[serde(default)]
    pub ado_write: Option<String>,
    #[serde(default)]
    pub clickup_write: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    pub map: Vec<StatusRow>,
    /// Fall back by ADO state category / ClickUp status type when a value is not in `map`.
    pub fallback: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            map: Vec::new(),
            fallback: true,
        }
    }
}

/// ClickUp's fixed priorities (ids 1..=4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickUpPriority {
    Urgent,
    High,
    Normal,
    Low,
}

impl ClickUpPriority {
    pub fn id(self) -> u8 {
        match self {
            ClickUpPriority::Urgent => 1,
            ClickUpPriority::High => 2,
            ClickUpPriority::Normal => 3,
            ClickUpPriority::Low => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRow {
    pub ado: i64,
    pub clickup: ClickUpPriority,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityConfig {
    /// First row wins in each direction.
    pub map: Vec<PriorityRow>,
    /// The ADO priority written when ClickUp has none (`None`: clear ADO's field).
    pub clickup_none_to_ado: Option<i64>,
    /// ADO priorities that read back as "no priority".
    pub ado_reads_as_none: Vec<i64>,
}

impl Default for PriorityConfig {
    fn default() -> Self {
        PriorityConfig {
            map: vec![
                PriorityRow {
                    ado: 1,
                    clickup: ClickUpPriority::Urgent,
                },
                PriorityRow {
                    ado: 2,
                    clickup: ClickUpPriority::High,
                },
                PriorityRow {
                    ado: 3,
                    clickup: ClickUpPriority::Normal,
                },
                PriorityRow {
                    ado: 4,
                    clickup: ClickUpPriority::Low,
                },
            ],
            clickup_none_to_ado: Some(2),
            ado_reads_as_none: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserOverride {
    pub ado: String,
    pub clickup: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Explicit ado_email ↔ clickup_email pairs; everyone else matches by equal email.
    pub overrides: Vec<UserOverride>,
}

/// A pair's whole mapping section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingConfig {
    pub status: StatusConfig,
    pub priority: PriorityConfig,
    pub users: UsersConfig,
    pub fields: FieldsConfig,
    pub deletion: DeletionPolicy,
}

// ---------------------------------------------------------------------------------------------
// Inputs built by the engine from metadata
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoStateInfo {
    pub name: String,
    pub category: AdoStateCategory,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickUpStatusInfo {
    pub name: String,
    pub status_type: ClickUpStatusType,
}

/// What the services say about the pair's containers (for fallbacks and creates).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MappingContext {
    /// Work item type name → its states, in the type's order.
    pub ado_states: BTreeMap<String, Vec<AdoStateInfo>>,
    /// The ClickUp list's statuses, in the list's order.
    pub clickup_statuses: Vec<ClickUpStatusInfo>,
    /// Work item type for items created in ADO.
    pub ado_work_item_type: String,
    pub ado_area_path: Option<String>,
    /// List for tasks created in ClickUp.
    pub clickup_list_id: String,
}

/// Who can be assigned on each side (emails, any case).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserDirectory {
    pub clickup_members: BTreeSet<String>,
    /// When known, ClickUp assignees whose ADO email is not in here are not carried to ADO.
    pub ado_users: Option<BTreeSet<String>>,
    /// ADO emails the service refused as unknown identities (learnt from its answers when
    /// `ado_users` is not known): ClickUp assignees that map to one are not carried to ADO.
    #[serde(default)]
    pub ado_unknown: BTreeSet<String>,
}

impl UserDirectory {
    pub fn new<I, S>(clickup_members: I, ado_users: Option<Vec<String>>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        UserDirectory {
            clickup_members: clickup_members
                .into_iter()
                .map(|s| s.as_ref().trim().to_lowercase())
                .collect(),
            ado_users: ado_users.map(|v| v.iter().map(|s| s.trim().to_lowercase()).collect()),
            ado_unknown: BTreeSet::new(),
        }
    }
}

/// All links of the pair (for parent translation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkIndex {
    by_link: BTreeMap<LinkId, (AdoId, ClickUpId)>,
    by_ado: BTreeMap<AdoId, LinkId>,
    by_clickup: BTreeMap<ClickUpId, LinkId>,
}

impl LinkIndex {
    pub fn new<I: IntoIterator<Item = (LinkId, AdoId, ClickUpId)>>(links: I) -> Self {
        let mut ix = LinkIndex::default();
        for (l, a, c) in links {
            ix.insert(l, a, c);
        }
        ix
    }
    pub fn insert(&mut self, link: LinkId, ado: AdoId, clickup: ClickUpId) {
        self.by_ado.insert(ado, link);
        self.by_clickup.insert(clickup.clone(), link);
        self.by_link.insert(link, (ado, clickup));
    }
    pub fn link_of_ado(&self, id: AdoId) -> Option<LinkId> {
        self.by_ado.get(&id).copied()
    }
    pub fn link_of_clickup(&self, id: &str) -> Option<LinkId> {
        self.by_clickup.get(id).copied()
    }
    pub fn ado_of(&self, link: LinkId) -> Option<AdoId> {
        self.by_link.get(&link).map(|(a, _)| *a)
    }
    pub fn clickup_of(&self, link: LinkId) -> Option<&ClickUpId> {
        self.by_link.get(&link).map(|(_, c)| c)
    }
    /// `(link, ado id, clickup id)` in link order.
    pub fn iter(&self) -> impl Iterator<Item = (LinkId, AdoId, &ClickUpId)> {
        self.by_link.iter().map(|(l, (a, c))| (*l, *a, c))
    }
    pub fn len(&self) -> usize {
        self.by_link.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_link.is_empty()
    }
}

/// A problem worth reporting; the sync carries on without the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MappingIssue {
    /// A side's status is neither mapped nor covered by a fallback.
    UnmappedStatus {
        side: Side,
        item: String,
        value: String,
    },
    /// No status of the target side corresponds to the canonical value; status not written.
    StatusNotWritable {
        side: Side,
        item: String,
        canonical: String,
    },
    /// A user seen on `side` has no counterpart on the other side; left unassigned there.
    UnknownUser {
        side: Side,
        item: String,
        email: String,
    },
    /// An ADO priority no row maps.
    UnmappedPriority { item: String, value: i64 },
    /// A back-link marker that could not be used.
    Backlink {
        side: Side,
        item: String,
        reason: String,
    },
}

pub fn ado_item_key(id: AdoId) -> String {
    format!("ado:{id}")
}
pub fn clickup_item_key(id: &str) -> String {
    format!("clickup:{id}")
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

fn category_key_ado(c: AdoStateCategory) -> &'static str {
    match c {
        AdoStateCategory::Proposed => "open",
        AdoStateCategory::InProgress => "in_progress",
        AdoStateCategory::Resolved => "done",
        AdoStateCategory::Completed => "closed",
        AdoStateCategory::Removed => "removed",
    }
}

fn category_key_clickup(t: ClickUpStatusType) -> &'static str {
    match t {
        ClickUpStatusType::Open => "open",
        ClickUpStatusType::Custom => "in_progress",
        ClickUpStatusType::Done => "done",
        ClickUpStatusType::Closed => "closed",
    }
}

fn ado_categories_for(key: &str) -> &'static [AdoStateCategory] {
    use AdoStateCategory::*;
    match key {
        "open" => &[Proposed],
        "in_progress" => &[InProgress],
        "done" => &[Resolved, Completed],
        "closed" => &[Completed],
        "removed" => &[Removed, Completed],
        _ => &[],
    }
}

fn clickup_types_for(key: &str) -> &'static [ClickUpStatusType] {
    use ClickUpStatusType::*;
    match key {
        "open" => &[Open],
        "in_progress" => &[Custom, Open],
        "done" => &[Done, Closed],
        "closed" | "removed" => &[Closed],
        _ => &[],
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

fn is_whole_hour(dt: &DateTime<Utc>, hours: &[u32]) -> bool {
    dt.minute() == 0 && dt.second() == 0 && dt.nanosecond() == 0 && hours.contains(&dt.hour())
}

fn noon_utc(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default()))
}

/// ADO's `DueDate` → canonical.
pub fn ado_due_to_canonical(dt: DateTime<Utc>) -> Due {
    if is_whole_hour(&dt, &[0, 12]) {
        Due::Date(dt.date_naive())
    } else {
        Due::DateTime(dt)
    }
}

/// Canonical → ADO's `DueDate`.
pub fn canonical_due_to_ado(d: Due) -> DateTime<Utc> {
    match d {
        Due::Date(d) => noon_utc(d),
        Due::DateTime(t) => t,
    }
}

/// ClickUp `due_date` (ms) + `due_date_time` → canonical; `None` when the ms are out of range.
///
/// Task JSON does not carry `due_date_time`, so without it the value decides: ClickUp keeps a
/// date-only due date at about 04:00 in the Workspace's zone (ClickUp FACTS §17, gotcha 5), and dates written
/// by others sit at midnight or noon UTC; those whole hours read as a date.
pub fn clickup_due_to_canonical(ms: i64, has_time: Option<bool>) -> Option<Due> {
    let dt = Utc.timestamp_millis_opt(ms).single()?;
    let date_only = match has_time {
        Some(t) => !t,
        None => is_whole_hour(&dt, &[0, 4, 12]),
    };
    Some(if date_only {
        Due::Date((dt + Duration::hours(9)).date_naive())
    } else {
        Due::DateTime(dt)
    })
}

/// Whether ClickUp may answer with the instant `t` for the date-only due date `d` the sync
/// wrote (noon UTC, `due_date_time=false`) without saying it is date-only: it snaps the value
/// to 04:00 in the Workspace time zone of the day the written instant falls on there (FACTS
/// gotcha 5), and the zone is not known here (UTC-12 to UTC+14, in quarter hours).
fn clickup_may_hold_date_as(d: NaiveDate, t: DateTime<Utc>) -> bool {
    let written = noon_utc(d);
    let four = NaiveTime::from_hms_opt(4, 0, 0).unwrap_or_default();
    (-48..=56).any(|q| {
        let off = Duration::minutes(15 * q);
        let local = t + off;
        local.time() == four && local.date_naive() == (written + off).date_naive()
    })
}

/// Canonical → ClickUp `(due_date ms, due_date_time)`.
pub fn canonical_due_to_clickup(d: Due) -> (i64, bool) {
    match d {
        Due::Date(d) => (noon_utc(d).timestamp_millis(), false),
        Due::DateTime(t) => (t.timestamp_millis(), true),
    }
}

/// Extracts the ClickUp task id from an ADO item's hyperlinks (`…/t/{id}`).
pub fn backlink_target_clickup(r: &AdoRecord) -> Option<ClickUpId> {
    r.hyperlinks
        .iter()
        .find_map(|u| clickup_task_id_from_url(u))
}

/// Extracts the ADO work item id from a ClickUp task's back-link field (`…/_workitems/edit/{id}`).
pub fn backlink_target_ado(r: &ClickUpRecord) -> Option<AdoId> {
    r.backlink.as_deref().and_then(ado_id_from_url)
}

pub fn clickup_task_id_from_url(url: &str) -> Option<ClickUpId> {
    let path = url.split(['?', '#']).next()?;
    let idx = path.find("/t/")?;
    let rest = &path[idx + 3..];
    // ClickUp also has `/t/{team}/{custom_id}` URLs; the last segment is the task.
    let id = rest.trim_end_matches('/').rsplit('/').next()?;
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some(id.to_string())
    } else {
        None
    }
}

pub fn ado_id_from_url(url: &str) -> Option<AdoId> {
    let path = url.split(['?', '#']).next()?;
    let idx = path.find("/_workitems/edit/")?;
    let rest = &path[idx + "/_workitems/edit/".len()..];
    rest.split('/').next()?.parse().ok()
}

/// The conversions for one pair.
#[derive(Debug, Clone, Copy)]
pub struct Mapper<'a> {
    pub cfg: &'a MappingConfig,
    pub ctx: &'a MappingContext,
    pub users: &'a UserDirectory,
}

impl<'a> Mapper<'a> {
    pub fn new(cfg: &'a MappingConfig, ctx: &'a MappingContext, users: &'a UserDirectory) -> Self {
        Mapper { cfg, ctx, users }
    }

    // ----- status -----

    fn ado_status(&self, r: &AdoRecord, issues: &mut Vec<MappingIssue>) -> Status {
        let raw = r.state.clone();
        if let Some(row) = self
            .cfg
            .status
            .map
            .iter()
            .find(|row| row.ado.iter().any(|s| eq_ci(s, &raw)))
        {
            return Status {
                raw,
                canonical: row.canonical.clone(),
            };
        }
        if self.cfg.status.fallback {
            if let Some(st) = self
                .ctx
                .ado_states
                .get(&r.work_item_type)
                .and_then(|v| v.iter().find(|s| eq_ci(&s.name, &raw)))
            {
                return Status {
                    raw,
                    canonical: category_key_ado(st.category).to_string(),
                };
            }
        }
        issues.push(MappingIssue::UnmappedStatus {
            side: Side::Ado,
            item: ado_item_key(r.id),
            value: raw.clone(),
        });
        let canonical = raw.to_lowercase();
        Status { raw, canonical }
    }

    fn clickup_status(&self, r: &ClickUpRecord, issues: &mut Vec<MappingIssue>) -> Status {
        let raw = r.status.clone();
        if let Some(row) = self
            .cfg
            .status
            .map
            .iter()
            .find(|row| row.clickup.iter().any(|s| eq_ci(s, &raw)))
        {
            return Status {
                raw,
                canonical: row.canonical.clone(),
            };
        }
        if self.cfg.status.fallback {
            return Status {
                raw,
                canonical: category_key_clickup(r.status_type).to_string(),
            };
        }
        issues.push(MappingIssue::UnmappedStatus {
            side: Side::ClickUp,
            item: clickup_item_key(&r.id),
            value: raw.clone(),
        });
        let canonical = raw.to_lowercase();
        Status { raw, canonical }
    }

    /// The ADO state that writing `canonical` to an item of type `wit` sets.
    pub fn ado_state_for(&self, canonical: &str, wit: &str) -> Option<String> {
        if let Some(row) = self
            .cfg
            .status
            .map
            .iter()
            .find(|r| eq_ci(&r.canonical, canonical))
        {
            if let Some(v) = row.ado_write.clone().or_else(|| row.ado.first().cloned()) {
                return Some(v);
            }
        }
        let states = self.ctx.ado_states.get(wit);
        if self.cfg.status.fallback {
            for cat in ado_categories_for(canonical) {
                if let Some(s) = states.and_then(|v| v.iter().find(|s| s.category == *cat)) {
                    return Some(s.name.clone());
                }
            }
        }
        states
            .and_then(|v| v.iter().find(|s| eq_ci(&s.name, canonical)))
            .map(|s| s.name.clone())
    }

    /// The ClickUp status that writing `canonical` sets.
    pub fn clickup_status_for(&self, canonical: &str) -> Option<String> {
        if let Some(row) = self
            .cfg
            .status
            .map
            .iter()
            .find(|r| eq_ci(&r.canonical, canonical))
        {
            if let Some(v) = row
                .clickup_write
                .clone()
                .or_else(|| row.clickup.first().cloned())
            {
                return Some(v);
            }
        }
        let statuses = &self.ctx.clickup_statuses;
        if self.cfg.status.fallback {
            for t in clickup_types_for(canonical) {
                if let Some(s) = statuses.iter().find(|s| s.status_type == *t) {
                    return Some(s.name.clone());
                }
            }
        }
        statuses
            .iter()
            .find(|s| eq_ci(&s.name, canonical))
            .map(|s| s.name.clone())
    }

    /// The closed/removed status mirroring a deletion writes (ADO: Removed, else Completed).
    pub fn ado_deleted_state(&self, wit: &str) -> Option<String> {
        let states = self.ctx.ado_states.get(wit)?;
        [AdoStateCategory::Removed, AdoStateCategory::Completed]
            .iter()
            .find_map(|c| states.iter().find(|s| s.category == *c))
            .map(|s| s.name.clone())
    }

    pub fn clickup_deleted_status(&self) -> Option<String> {
        self.ctx
            .clickup_statuses
            .iter()
            .find(|s| s.status_type == ClickUpStatusType::Closed)
            .map(|s| s.name.clone())
    }

    // ----- users -----

    /// ADO email → canonical, `None` when the user has no ClickUp counterpart.
    pub fn ado_user_to_canonical(&self, email: &str) -> Option<String> {
        let e = email.trim().to_lowercase();
        let c = self
            .cfg
            .users
            .overrides
            .iter()
            .find(|o| eq_ci(o.ado.trim(), &e))
            .map(|o| o.clickup.trim().to_lowercase())
            .unwrap_or(e);
        self.users.clickup_members.contains(&c).then_some(c)
    }

    /// ClickUp email → canonical, `None` when the user is known not to exist in ADO.
    pub fn clickup_user_to_canonical(&self, email: &str) -> Option<String> {
        let c = email.trim().to_lowercase();
        if c.is_empty() {
            return None;
        }
        let ado = self.canonical_to_ado_user(&c);
        if self.users.ado_unknown.contains(&ado) {
            return None;
        }
        match &self.users.ado_users {
            Some(known) if !known.contains(&ado) => None,
            _ => Some(c),
        }
    }

    pub fn canonical_to_ado_user(&self, c: &str) -> String {
        self.cfg
            .users
            .overrides
            .iter()
            .find(|o| eq_ci(o.clickup.trim(), c))
            .map(|o| o.ado.trim().to_lowercase())
            .unwrap_or_else(|| c.to_lowercase())
    }

    fn clickup_assignable(&self, set: &BTreeSet<String>) -> BTreeSet<String> {
        set.iter()
            .filter(|c| self.users.clickup_members.contains(*c))
            .cloned()
            .collect()
    }

    /// The one canonical assignee ADO gets for `set`, given ADO's current canonical assignee:
    /// keep the current one when it is in the set, else the smallest email.
    pub fn ado_assignee_projection(
        set: &BTreeSet<String>,
        current: Option<&String>,
    ) -> Option<String> {
        match current {
            Some(c) if set.contains(c) => Some(c.clone()),
            _ => set.iter().next().cloned(),
        }
    }

    // ----- priority -----

    fn ado_priority_to_canonical(
        &self,
        p: Option<i64>,
        item: &str,
        issues: &mut Vec<MappingIssue>,
    ) -> Option<u8> {
        let p = p?;
        if self.cfg.priority.ado_reads_as_none.contains(&p) {
            return None;
        }
        match self.cfg.priority.map.iter().find(|r| r.ado == p) {
            Some(r) => Some(r.clickup.id()),
            None => {
                issues.push(MappingIssue::UnmappedPriority {
                    item: item.to_string(),
                    value: p,
                });
                None
            }
        }
    }

    pub fn canonical_priority_to_ado(&self, p: Option<u8>) -> Option<i64> {
        match p {
            None => self.cfg.priority.clickup_none_to_ado,
            Some(id) => self
                .cfg
                .priority
                .map
                .iter()
                .find(|r| r.clickup.id() == id)
                .map(|r| r.ado),
        }
    }

    // ----- descriptions -----

    /// What a description becomes after a trip through ADO's HTML.
    pub fn ado_description_view(md: &str) -> String {
        convert::normalize_markdown(&convert::html_to_markdown(&convert::markdown_to_html(md)))
    }

    // ----- records → items -----

    pub fn ado_to_item(
        &self,
        r: &AdoRecord,
        parent: Option<LinkId>,
        issues: &mut Vec<MappingIssue>,
    ) -> Item {
        let key = ado_item_key(r.id);
        let mut assignees = BTreeSet::new();
        if let Some(e) = r.assigned_to.as_deref().filter(|e| !e.trim().is_empty()) {
            match self.ado_user_to_canonical(e) {
                Some(c) => {
                    assignees.insert(c);
                }
                None => issues.push(MappingIssue::UnknownUser {
                    side: Side::Ado,
                    item: key.clone(),
                    email: e.to_lowercase(),
                }),
            }
        }
        Item {
            title: r.title.clone(),
            description: convert::normalize_markdown(&convert::html_to_markdown(
                &r.description_html,
            )),
            status: self.ado_status(r, issues),
            assignees,
            tags: TagSet::new(r.tags.iter().cloned()),
            priority: self.ado_priority_to_canonical(r.priority, &key, issues),
            due: r.due_date.map(ado_due_to_canonical),
            parent,
        }
    }

    pub fn clickup_to_item(
        &self,
        r: &ClickUpRecord,
        parent: Option<LinkId>,
        issues: &mut Vec<MappingIssue>,
    ) -> Item {
        let key = clickup_item_key(&r.id);
        let mut assignees = BTreeSet::new();
        for u in &r.assignees {
            match self.clickup_user_to_canonical(&u.email) {
                Some(c) => {
                    assignees.insert(c);
                }
                None => issues.push(MappingIssue::UnknownUser {
                    side: Side::ClickUp,
                    item: key.clone(),
                    email: u.email.to_lowercase(),
                }),
            }
        }
        Item {
            title: r.name.clone(),
            description: convert::normalize_markdown(&r.markdown_description),
            status: self.clickup_status(r, issues),
            assignees,
            tags: TagSet::new(r.tags.iter().cloned()),
            priority: r.priority.filter(|p| (1..=4).contains(p)),
            due: r
                .due_date
                .and_then(|ms| clickup_due_to_canonical(ms, r.due_date_time)),
            parent,
        }
    }

    // ----- equality as seen from one side -----

    /// Whether `a` and `cur` (an item as read from ADO, of type `wit`) hold the same value
    /// for `f` once written to ADO.
    pub fn ado_same(&self, f: Field, a: &Item, cur: &Item, wit: &str) -> bool {
        match f {
            Field::Title => a.title == cur.title,
            Field::Description => {
                a.description == cur.description
                    || Self::ado_description_view(&a.description)
                        == Self::ado_description_view(&cur.description)
            }
            Field::Status => {
                a.status.canonical == cur.status.canonical || {
                    let x = self.ado_state_for(&a.status.canonical, wit);
                    let y = self.ado_state_for(&cur.status.canonical, wit);
                    matches!((x, y), (Some(x), Some(y)) if eq_ci(&x, &y))
                }
            }
            Field::Assignees => {
                let hint = cur.assignees.iter().next();
                Self::ado_assignee_projection(&a.assignees, hint)
                    == Self::ado_assignee_projection(&cur.assignees, hint)
            }
            Field::Tags => a.tags == cur.tags,
            Field::Priority => {
                a.priority == cur.priority
                    || self.canonical_priority_to_ado(a.priority)
                        == self.canonical_priority_to_ado(cur.priority)
            }
            Field::Due => a.due.map(canonical_due_to_ado) == cur.due.map(canonical_due_to_ado),
            Field::Parent => a.parent == cur.parent,
        }
    }

    /// Like [`Mapper::ado_same`] for ClickUp.
    pub fn clickup_same(&self, f: Field, a: &Item, cur: &Item) -> bool {
        match f {
            Field::Title => a.title == cur.title,
            Field::Description => {
                convert::normalize_markdown(&a.description)
                    == convert::normalize_markdown(&cur.description)
            }
            Field::Status => {
                a.status.canonical == cur.status.canonical || {
                    let x = self.clickup_status_for(&a.status.canonical);
                    let y = self.clickup_status_for(&cur.status.canonical);
                    matches!((x, y), (Some(x), Some(y)) if eq_ci(&x, &y))
                }
            }
            Field::Assignees => {
                self.clickup_assignable(&a.assignees) == self.clickup_assignable(&cur.assignees)
            }
            Field::Tags => a.tags == cur.tags,
            Field::Priority => a.priority == cur.priority,
            Field::Due => match (a.due, cur.due) {
                (Some(Due::Date(d)), Some(Due::DateTime(t)))
                | (Some(Due::DateTime(t)), Some(Due::Date(d)))
                    if clickup_may_hold_date_as(d, t) =>
                {
                    true
                }
                (x, y) => x.map(canonical_due_to_clickup) == y.map(canonical_due_to_clickup),
            },
            Field::Parent => a.parent == cur.parent,
        }
    }

    pub fn same(&self, side: Side, f: Field, a: &Item, cur: &Item, wit: &str) -> bool {
        match side {
            Side::Ado => self.ado_same(f, a, cur, wit),
            Side::ClickUp => self.clickup_same(f, a, cur),
        }
    }

    /// `cur` (as read from `side`) with every field that equals `base` as seen from that side
    /// replaced by base's value, so that lossy projections are not mistaken for edits.
    pub fn absorb(&self, side: Side, base: &Item, cur: &Item, wit: &str) -> Item {
        let mut out = cur.clone();
        for f in Field::ALL {
            if self.same(side, f, base, cur, wit) {
                copy_field(&mut out, base, f);
            }
        }
        out
    }

    // ----- items → patches -----

    /// What to write to ADO so that `current` shows `target`; only fields that differ as seen
    /// from ADO, and only fields in `fields`.
    pub fn ado_patch(
        &self,
        target: &Item,
        current: &AdoRecord,
        current_item: &Item,
        links: &LinkIndex,
        fields: &BTreeSet<Field>,
        issues: &mut Vec<MappingIssue>,
    ) -> AdoPatch {
        let mut p = AdoPatch::default();
        let wit = current.work_item_type.as_str();
        for &f in fields {
            if self.ado_same(f, target, current_item, wit) {
                continue;
            }
            match f {
                Field::Title => p.title = Some(target.title.clone()),
                Field::Description => {
                    p.description_html = Some(convert::markdown_to_html(&target.description))
                }
                Field::Status => match self.ado_state_for(&target.status.canonical, wit) {
                    Some(s) if !eq_ci(&s, &current.state) => p.state = Some(s),
                    Some(_) => {}
                    None => issues.push(MappingIssue::StatusNotWritable {
                        side: Side::Ado,
                        item: ado_item_key(current.id),
                        canonical: target.status.canonical.clone(),
                    }),
                },
                Field::Assignees => {
                    let proj = Self::ado_assignee_projection(
                        &target.assignees,
                        current_item.assignees.iter().next(),
                    );
                    p.assigned_to = Some(proj.map(|c| self.canonical_to_ado_user(&c)));
                }
                Field::Tags => p.tags = Some(target.tags.0.clone()),
                Field::Priority => {
                    p.priority = Some(self.canonical_priority_to_ado(target.priority))
                }
                Field::Due => p.due_date = Some(target.due.map(canonical_due_to_ado)),
                Field::Parent => match target.parent {
                    None => p.parent = Some(None),
                    Some(l) => {
                        if let Some(a) = links.ado_of(l) {
                            p.parent = Some(Some(a));
                        }
                    }
                },
            }
        }
        p
    }

    /// What to write to ClickUp so that `current` shows `target`.
    pub fn clickup_patch(
        &self,
        target: &Item,
        current: &ClickUpRecord,
        current_item: &Item,
        links: &LinkIndex,
        fields: &BTreeSet<Field>,
        issues: &mut Vec<MappingIssue>,
    ) -> ClickUpPatch {
        let mut p = ClickUpPatch::default();
        for &f in fields {
            if self.clickup_same(f, target, current_item) {
                continue;
            }
            match f {
                Field::Title => p.name = Some(target.title.clone()),
                Field::Description => p.markdown = Some(target.description.clone()),
                Field::Status => match self.clickup_status_for(&target.status.canonical) {
                    Some(s) if !eq_ci(&s, &current.status) => p.status = Some(s),
                    Some(_) => {}
                    None => issues.push(MappingIssue::StatusNotWritable {
                        side: Side::ClickUp,
                        item: clickup_item_key(&current.id),
                        canonical: target.status.canonical.clone(),
                    }),
                },
                Field::Assignees => {
                    let want = self.clickup_assignable(&target.assignees);
                    p.assignees_add = want.difference(&current_item.assignees).cloned().collect();
                    p.assignees_rem = current_item.assignees.difference(&want).cloned().collect();
                }
                Field::Tags => {
                    let have = current_item.tags.keys();
                    let want = target.tags.keys();
                    p.tags_add = target
                        .tags
                        .iter()
                        .filter(|t| !have.contains(&t.to_lowercase()))
                        .cloned()
                        .collect();
                    // Remove with ClickUp's own spelling.
                    p.tags_rem = current
                        .tags
                        .iter()
                        .filter(|t| !want.contains(&t.to_lowercase()))
                        .cloned()
                        .collect();
                }
                Field::Priority => p.priority = Some(target.priority),
                Field::Due => p.due_date = Some(target.due.map(canonical_due_to_clickup)),
                Field::Parent => {
                    if let Some(c) = target.parent.and_then(|l| links.clickup_of(l)) {
                        p.parent = Some(c.clone());
                    }
                }
            }
        }
        p
    }

    // ----- creates -----

    /// A new ADO work item for `item` (from ClickUp task `source`); `fields` are the fields to
    /// write (those that may flow to ADO). Title is always written (ADO requires it).
    pub fn ado_create(
        &self,
        item: &Item,
        source: &ClickUpRecord,
        links: &LinkIndex,
        fields: &BTreeSet<Field>,
        issues: &mut Vec<MappingIssue>,
    ) -> AdoCreate {
        let wit = self.ctx.ado_work_item_type.as_str();
        let mut f = AdoPatch {
            title: Some(item.title.clone()),
            ..AdoPatch::default()
        };
        for &fld in fields {
            match fld {
                Field::Title => {}
                Field::Description => {
                    if !item.description.is_empty() {
                        f.description_html = Some(convert::markdown_to_html(&item.description))
                    }
                }
                Field::Status => match self.ado_state_for(&item.status.canonical, wit) {
                    Some(s) => f.state = Some(s),
                    None => issues.push(MappingIssue::StatusNotWritable {
                        side: Side::Ado,
                        item: clickup_item_key(&source.id),
                        canonical: item.status.canonical.clone(),
                    }),
                },
                Field::Assignees => {
                    if let Some(c) = Self::ado_assignee_projection(&item.assignees, None) {
                        f.assigned_to = Some(Some(self.canonical_to_ado_user(&c)));
                    }
                }
                Field::Tags => {
                    if !item.tags.is_empty() {
                        f.tags = Some(item.tags.0.clone())
                    }
                }
                Field::Priority => {
                    if let Some(p) = self.canonical_priority_to_ado(item.priority) {
                        f.priority = Some(Some(p));
                    }
                }
                Field::Due => {
                    if let Some(d) = item.due {
                        f.due_date = Some(Some(canonical_due_to_ado(d)));
                    }
                }
                Field::Parent => {
                    if let Some(a) = item.parent.and_then(|l| links.ado_of(l)) {
                        f.parent = Some(Some(a));
                    }
                }
            }
        }
        AdoCreate {
            work_item_type: self.ctx.ado_work_item_type.clone(),
            area_path: self.ctx.ado_area_path.clone(),
            fields: f,
            backlink_url: source.url.clone(),
        }
    }

    /// A new ClickUp task for `item` (from ADO work item `source`).
    pub fn clickup_create(
        &self,
        item: &Item,
        source: &AdoRecord,
        links: &LinkIndex,
        fields: &BTreeSet<Field>,
        issues: &mut Vec<MappingIssue>,
    ) -> ClickUpCreate {
        let mut f = ClickUpPatch {
            name: Some(item.title.clone()),
            ..ClickUpPatch::default()
        };
        for &fld in fields {
            match fld {
                Field::Title => {}
                Field::Description => {
                    if !item.description.is_empty() {
                        f.markdown = Some(item.description.clone())
                    }
                }
                Field::Status => match self.clickup_status_for(&item.status.canonical) {
                    Some(s) => f.status = Some(s),
                    None => issues.push(MappingIssue::StatusNotWritable {
                        side: Side::ClickUp,
                        item: ado_item_key(source.id),
                        canonical: item.status.canonical.clone(),
                    }),
                },
                Field::Assignees => {
                    f.assignees_add = self
                        .clickup_assignable(&item.assignees)
                        .into_iter()
                        .collect()
                }
                Field::Tags => f.tags_add = item.tags.0.clone(),
                Field::Priority => {
                    if item.priority.is_some() {
                        f.priority = Some(item.priority)
                    }
                }
                Field::Due => {
                    if let Some(d) = item.due {
                        f.due_date = Some(Some(canonical_due_to_clickup(d)));
                    }
                }
                Field::Parent => {
                    if let Some(c) = item.parent.and_then(|l| links.clickup_of(l)) {
                        f.parent = Some(c.clone());
                    }
                }
            }
        }
        ClickUpCreate {
            list_id: self.ctx.clickup_list_id.clone(),
            fields: f,
            backlink_url: source.web_url.clone(),
        }
    }
}

/// Copies one field from `from` into `to`.
pub fn copy_field(to: &mut Item, from: &Item, f: Field) {
    match f {
        Field::Title => to.title = from.title.clone(),
        Field::Description => to.description = from.description.clone(),
        Field::Status => to.status = from.status.clone(),
        Field::Assignees => to.assignees = from.assignees.clone(),
        Field::Tags => to.tags = from.tags.clone(),
        Field::Priority => to.priority = from.priority,
        Field::Due => to.due = from.due,
        Field::Parent => to.parent = from.parent,
    }
}

/// One field's value as JSON (for conflicts and audit).
pub fn field_value(item: &Item, f: Field) -> serde_json::Value {
    let v = match f {
        Field::Title => serde_json::to_value(&item.title),
        Field::Description => serde_json::to_value(&item.description),
        Field::Status => serde_json::to_value(&item.status),
        Field::Assignees => serde_json::to_value(&item.assignees),
        Field::Tags => serde_json::to_value(&item.tags),
        Field::Priority => serde_json::to_value(item.priority),
        Field::Due => serde_json::to_value(item.due),
        Field::Parent => serde_json::to_value(item.parent),
    };
    v.unwrap_or(serde_json::Value::Null)
}

/// Sets one field from its JSON value (the inverse of [`field_value`]); used to apply a
/// conflict resolution by rewriting the base. Fails with the reason when `v` does not decode.
pub fn set_field_value(item: &mut Item, f: Field, v: &serde_json::Value) -> Result<(), String> {
    fn de<T: serde::de::DeserializeOwned>(v: &serde_json::Value, f: Field) -> Result<T, String> {
        T::deserialize(v).map_err(|e| format!("the stored {f} value does not decode: {e}"))
    }
    match f {
        Field::Title => item.title = de(v, f)?,
        Field::Description => item.description = de(v, f)?,
        Field::Status => item.status = de(v, f)?,
        Field::Assignees => item.assignees = de(v, f)?,
        Field::Tags => item.tags = de(v, f)?,
        Field::Priority => item.priority = de(v, f)?,
        Field::Due => item.due = de(v, f)?,
        Field::Parent => item.parent = de(v, f)?,
    }
    Ok(())
}

/// Field equality in the canonical model.
pub fn field_eq(a: &Item, b: &Item, f: Field) -> bool {
    match f {
        Field::Title => a.title == b.title,
        Field::Description => a.description == b.description,
        Field::Status => a.status.canonical == b.status.canonical,
        Field::Assignees => a.assignees == b.assignees,
        Field::Tags => a.tags == b.tags,
        Field::Priority => a.priority == b.priority,
        Field::Due => a.due == b.due,
        Field::Parent => a.parent == b.parent,
    }
}
