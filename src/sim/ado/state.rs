//! The stateful store: work items with their revisions, comments and the recycle bin, and
//! the JSON-Patch write path shared by the REST API and the "web UI" edits.
use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::errors::AdoError;
use super::process::{self, Kind, TypeDef};
use super::wiql::{self, Row};
use crate::sim::common::SimClock;

pub const REVISED_OPEN: &str = "9999-01-01T00:00:00Z";
pub const PARENT_REL: &str = "System.LinkTypes.Hierarchy-Reverse";
pub const CHILD_REL: &str = "System.LinkTypes.Hierarchy-Forward";

/// A person known to the simulated organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub display_name: String,
    pub email: String,
}

impl SimUser {
    pub fn new(display_name: &str, email: &str) -> Self {
        SimUser {
            display_name: display_name.to_string(),
            email: email.to_string(),
        }
    }
    /// The stored form of an identity field value, `"Name <email>"`.
    pub fn stored(&self) -> String {
        format!("{} <{}>", self.display_name, self.email)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRelation {
    pub rel: String,
    pub url: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl SimRelation {
    /// The work item id at the end of a work item link's URL.
    pub fn target_id(&self) -> Option<i64> {
        if !self.rel.starts_with("System.LinkTypes.") {
            return None;
        }
        self.url.rsplit('/').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimComment {
    pub id: i64,
    pub version: i64,
    pub text: String,
    /// `"Name <email>"`.
    pub created_by: String,
    pub created_date: String,
    pub modified_by: String,
    pub modified_date: String,
    pub is_deleted: bool,
    /// `html` (default) or `markdown`, as the comment was written (`?format=`).
    #[serde(default = "html_format")]
    pub format: String,
}

fn html_format() -> String {
    "html".to_string()
}

/// A work item as stored: identity fields are `"Name <email>"` strings; fields the service
/// computes (System.Id, Rev, TeamProject, AreaId, AuthorizedDate, Parent, ...) are added
/// when answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimWorkItem {
    pub id: i64,
    pub rev: i64,
    pub fields: Map<String, Value>,
    pub relations: Vec<SimRelation>,
    pub comments: Vec<SimComment>,
}

impl SimWorkItem {
    fn str_field(&self, f: &str) -> Option<&str> {
        self.fields.get(f).and_then(Value::as_str)
    }
    pub fn title(&self) -> &str {
        self.str_field("System.Title").unwrap_or("")
    }
    pub fn state(&self) -> &str {
        self.str_field("System.State").unwrap_or("")
    }
    pub fn work_item_type(&self) -> &str {
        self.str_field("System.WorkItemType").unwrap_or("")
    }
    pub fn description(&self) -> Option<&str> {
        self.str_field("System.Description")
    }
    /// Tags in stored order (`"a; b"` → `["a", "b"]`).
    pub fn tags(&self) -> Vec<String> {
        split_tags(self.str_field("System.Tags").unwrap_or(""))
    }
    /// Email of the assignee.
    pub fn assigned_to(&self) -> Option<String> {
        self.str_field("System.AssignedTo").map(identity_email)
    }
    pub fn changed_date(&self) -> Option<DateTime<Utc>> {
        self.str_field("System.ChangedDate")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
    }
    pub fn parent(&self) -> Option<i64> {
        self.relations
            .iter()
            .find(|r| r.rel == PARENT_REL)
            .and_then(SimRelation::target_id)
    }
    pub fn comment_count(&self) -> i64 {
        self.comments.iter().filter(|c| !c.is_deleted).count() as i64
    }
}

impl Row for SimWorkItem {
    fn id(&self) -> i64 {
        self.id
    }
    fn field(&self, reference: &str) -> Option<&Value> {
        self.fields.get(reference)
    }
}

/// `"Name <email>"` → `email`; anything else is returned as is.
pub fn identity_email(stored: &str) -> String {
    match (stored.rfind('<'), stored.ends_with('>')) {
        (Some(i), true) => stored[i + 1..stored.len() - 1].trim().to_string(),
        _ => stored.trim().to_string(),
    }
}

fn identity_name(stored: &str) -> String {
    match stored.rfind('<') {
        Some(i) if stored.ends_with('>') => stored[..i].trim().to_string(),
        _ => stored.trim().to_string(),
    }
}

pub fn split_tags(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split(';') {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            out.push(t.to_string());
        }
    }
    out
}

/// ADO date format: UTC, milliseconds with trailing zeros dropped (`…:28.74Z`, `…:51Z`).
pub fn format_date(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let Some(body) = s.strip_suffix('Z') else {
        return s;
    };
    let body = if body.contains('.') {
        body.trim_end_matches('0').trim_end_matches('.')
    } else {
        body
    };
    format!("{body}Z")
}

/// A stable GUID-shaped id derived from a string (identities, the project).
pub fn guid(seed: &str) -> String {
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn small_hash(seed: &str) -> i64 {
    let d = Sha256::digest(seed.as_bytes());
    (i64::from(d[0]) << 16 | i64::from(d[1]) << 8 | i64::from(d[2])) + 1
}

/// Where the simulated service lives, for the URLs inside answers.
#[derive(Debug, Clone)]
pub struct Urls {
    pub base: String,
    pub org: String,
    pub project: String,
}

impl Urls {
    pub fn org_base(&self) -> String {
        format!("{}/{}", self.base, self.org)
    }
    pub fn project_id(&self) -> String {
        guid(&format!("project:{}", self.project))
    }
    pub fn work_item(&self, id: i64) -> String {
        format!("{}/_apis/wit/workItems/{id}", self.org_base())
    }
    pub fn project_scoped(&self, rest: &str) -> String {
        format!("{}/{}/_apis/wit/{rest}", self.org_base(), self.project_id())
    }
    pub fn field(&self, reference: &str) -> String {
        format!("{}/_apis/wit/fields/{reference}", self.org_base())
    }
    /// An identity object (REST ≥ 5.0 shape) from a stored `"Name <email>"`.
    pub fn identity(&self, stored: &str) -> Value {
        let email = identity_email(stored);
        let name = identity_name(stored);
        let id = guid(&format!("identity:{}", email.to_lowercase()));
        let descriptor = format!(
            "aad.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                id.as_bytes()
            )
        );
        json!({
            "displayName": name,
            "url": format!("{}/_apis/Identities/{id}", self.org_base()),
            "_links": {"avatar": {"href": format!("{}/_apis/GraphProfile/MemberAvatars/{descriptor}", self.org_base())}},
            "id": id,
            "uniqueName": email,
            "imageUrl": format!("{}/_api/_common/identityImage?id={id}", self.org_base()),
            "descriptor": descriptor
        })
    }
}

/// What to include in a rendered work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expand {
    #[default]
    None,
    Relations,
    Fields,
    Links,
    All,
}

impl Expand {
    pub fn parse(s: &str) -> Option<Expand> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => Expand::None,
            "relations" => Expand::Relations,
            "fields" => Expand::Fields,
            "links" => Expand::Links,
            "all" => Expand::All,
            _ => return None,
        })
    }
    fn relations(self) -> bool {
        matches!(self, Expand::Relations | Expand::All)
    }
    fn links(self) -> bool {
        matches!(self, Expand::Links | Expand::All)
    }
}

#[derive(Debug, Clone)]
struct Revision {
    rev: i64,
    fields: Map<String, Value>,
    relations: Vec<SimRelation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub date: String,
    pub by: String,
}

#[derive(Debug, Clone)]
struct Rec {
    item: SimWorkItem,
    /// Revisions 1..rev-1 (the current one is `item`).
    history: Vec<Revision>,
    deleted: Option<Deleted>,
}

impl Rec {
    fn snapshot(&self, rev: i64) -> Option<(Map<String, Value>, Vec<SimRelation>)> {
        if rev == self.item.rev {
            return Some((self.item.fields.clone(), self.item.relations.clone()));
        }
        self.history
            .iter()
            .find(|r| r.rev == rev)
            .map(|r| (r.fields.clone(), r.relations.clone()))
    }
    fn changed_date_of(&self, rev: i64) -> Option<String> {
        let f = if rev == self.item.rev {
            &self.item.fields
        } else {
            &self.history.iter().find(|r| r.rev == rev)?.fields
        };
        f.get("System.ChangedDate")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// One JSON-Patch operation as sent by clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    pub op: String,
    pub path: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

impl PatchOp {
    pub fn new(op: &str, path: &str, value: Value) -> Self {
        PatchOp {
            op: op.into(),
            path: path.into(),
            from: None,
            value: Some(value),
        }
    }
}

/// Who writes and how: the API caller or a person in the web UI.
pub struct WriteCtx<'a> {
    pub actor: &'a SimUser,
    pub clock: &'a SimClock,
    pub project: &'a str,
    pub validate_only: bool,
    pub bypass_rules: bool,
}

pub enum Target<'a> {
    Create(&'a TypeDef),
    Update(i64),
}

/// Seed data for the store (also the format of `sim --seed FILE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoSeed {
    /// Custom fields of the project (e.g. `Custom.ClickUpId`), string-typed; fields used in
    /// `work_items` that the process does not know are added too.
    #[serde(default)]
    pub custom_fields: Vec<String>,
    #[serde(default)]
    pub work_items: Vec<SeedItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedItem {
    /// Fixed id; allocated when absent.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub work_item_type: String,
    /// Field values as the API takes them; system fields (dates, CreatedBy, State...) may be set.
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub relations: Vec<SimRelation>,
    /// Comment texts (HTML), oldest first.
    #[serde(default)]
    pub comments: Vec<String>,
    /// Put the item straight into the recycle bin.
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub struct Store {
    recs: BTreeMap<i64, Rec>,
    next_id: i64,
    next_comment_id: i64,
    watermark: i64,
    /// Custom fields introduced by seeds (`Custom.X`, process-specific fields).
    extra_fields: BTreeSet<String>,
    pub users: Vec<SimUser>,
}

fn patch_error(message: String) -> AdoError {
    AdoError::bad_request("PatchOperationFailedException", message)
}

fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Store {
    pub fn new(users: Vec<SimUser>) -> Self {
        Store {
            next_id: 1,
            next_comment_id: 1,
            users,
            ..Default::default()
        }
    }

    pub fn reset(&mut self) {
        let users = std::mem::take(&mut self.users);
        *self = Store::new(users);
    }

    pub fn custom_fields(&self) -> Vec<String> {
        self.extra_fields.iter().cloned().collect()
    }

    pub fn live(&self, id: i64) -> Option<&SimWorkItem> {
        self.recs
            .get(&id)
            .filter(|r| r.deleted.is_none())
            .map(|r| &r.item)
    }
    pub fn any(&self, id: i64) -> Option<&SimWorkItem> {
        self.recs.get(&id).map(|r| &r.item)
    }
    pub fn live_items(&self) -> impl Iterator<Item = &SimWorkItem> {
        self.recs
            .values()
            .filter(|r| r.deleted.is_none())
            .map(|r| &r.item)
    }
    pub fn deleted(&self) -> impl Iterator<Item = (&SimWorkItem, &Deleted)> {
        self.recs
            .values()
            .filter_map(|r| r.deleted.as_ref().map(|d| (&r.item, d)))
    }
    pub fn deleted_info(&self, id: i64) -> Option<(&SimWorkItem, &Deleted)> {
        let r = self.recs.get(&id)?;
        r.deleted.as_ref().map(|d| (&r.item, d))
    }

    fn field_known(&self, reference: &str) -> Option<(String, Kind, bool)> {
        if let Some(f) =
            process::field(reference).filter(|f| f.reference.eq_ignore_ascii_case(reference))
        {
            return Some((f.reference.to_string(), f.kind, f.read_only));
        }
        self.extra_fields
            .iter()
            .find(|f| f.eq_ignore_ascii_case(reference))
            .map(|f| (f.clone(), Kind::String, false))
    }

    /// Validates a field name for reads (`fields=` lists): unknown → TF51535.
    pub fn check_field(&self, reference: &str) -> Result<String, AdoError> {
        self.field_known(reference)
            .map(|(r, _, _)| r)
            .ok_or_else(|| AdoError::unknown_field(reference))
    }

    /// Resolves an identity write value: email, display name, `Name <email>` or an identity
    /// object. `Ok(None)` clears the field.
    fn resolve_identity(
        &self,
        v: &Value,
        field_ref: &str,
        field_name: &str,
    ) -> Result<Option<String>, AdoError> {
        let raw = match v {
            Value::Null => return Ok(None),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().to_string(),
            Value::Object(o) => o
                .get("uniqueName")
                .or_else(|| o.get("displayName"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        let email = identity_email(&raw);
        let name = identity_name(&raw);
        self.users
            .iter()
            .find(|u| {
                u.email.eq_ignore_ascii_case(&email)
                    || (raw.find('<').is_none() && u.display_name.eq_ignore_ascii_case(&name))
            })
            .map(|u| Some(u.stored()))
            .ok_or_else(|| {
                let mut e = AdoError::rule(
                    field_ref,
                    field_name,
                    "Required, HasValues, LimitedToValues, AllowsOldValue, InvalidEmpty",
                );
                e.message = format!(
                    "{} The identity value '{raw}' is an unknown identity.",
                    e.message
                );
                e
            })
    }

    fn convert(&self, reference: &str, kind: Kind, v: &Value) -> Result<Option<Value>, AdoError> {
        if v.is_null() {
            return Ok(None);
        }
        let name = process::field(reference)
            .map(|f| f.name)
            .unwrap_or(reference);
        let bad = || {
            AdoError::bad_request(
                "WorkItemFieldInvalidValueException",
                format!("TF401326: Invalid field status 'InvalidType' for field '{reference}'. The value '{v}' is not valid for field '{name}'."),
            )
        };
        Ok(Some(match kind {
            Kind::Identity => {
                return Ok(self
                    .resolve_identity(v, reference, name)?
                    .map(Value::String))
            }
            Kind::Int => {
                let n = num_of(v).filter(|n| n.fract() == 0.0).ok_or_else(bad)?;
                json!(n as i64)
            }
            Kind::Double => {
                let n = num_of(v).ok_or_else(bad)?;
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    json!(n as i64)
                } else {
                    json!(n)
                }
            }
            Kind::Date => {
                let s = v.as_str().ok_or_else(bad)?;
                let d = DateTime::parse_from_rfc3339(s).map_err(|_| bad())?;
                Value::String(format_date(d.with_timezone(&Utc)))
            }
            Kind::Bool => match v {
                Value::Bool(b) => Value::Bool(*b),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
                _ => return Err(bad()),
            },
            _ => match v {
                Value::String(s) => {
                    if s.is_empty() {
                        return Ok(None);
                    }
                    Value::String(s.clone())
                }
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                _ => return Err(bad()),
            },
        }))
    }

    fn check_tree_path(&self, project: &str, reference: &str, v: &str) -> Result<(), AdoError> {
        let lower = v.to_lowercase();
        let p = project.to_lowercase();
        if lower == p || lower.starts_with(&format!("{p}\\")) {
            Ok(())
        } else {
            Err(AdoError::bad_request(
                "WorkItemInvalidTreeNameException",
                format!("TF401347: Invalid tree name given for work item -1, field '{reference}'."),
            ))
        }
    }

    /// Applies a JSON-Patch document: all-or-nothing. Returns the item as saved (or, with
    /// `validate_only`, as it would be saved).
    pub fn patch(
        &mut self,
        ctx: &WriteCtx,
        target: Target,
        ops: &[PatchOp],
    ) -> Result<SimWorkItem, AdoError> {
        let (ty, mut item, creating) = match target {
            Target::Create(ty) => (
                ty,
                SimWorkItem {
                    id: 0,
                    rev: 0,
                    fields: Map::new(),
                    relations: Vec::new(),
                    comments: Vec::new(),
                },
                true,
            ),
            Target::Update(id) => {
                let item = self
                    .live(id)
                    .ok_or_else(|| AdoError::not_found(id))?
                    .clone();
                let ty =
                    process::work_item_type(item.work_item_type()).unwrap_or(&process::TYPES[0]);
                (ty, item, false)
            }
        };
        let before_fields = item.fields.clone();
        let before_relations = item.relations.clone();
        // System.History belongs to the revision that set it.
        item.fields.remove("System.History");
        let old_state = item.state().to_string();
        let mut reason_given = false;

        for op in ops {
            let kind = op.op.to_ascii_lowercase();
            let path = op.path.trim();
            let value = op.value.clone().unwrap_or(Value::Null);
            match kind.as_str() {
                "test" => {
                    let (actual, ok) = if path.eq_ignore_ascii_case("/rev") {
                        (json!(item.rev), num_of(&value) == Some(item.rev as f64))
                    } else if let Some(f) = path.strip_prefix("/fields/") {
                        let actual = item.fields.get(f).cloned().unwrap_or(Value::Null);
                        let ok = actual == value;
                        (actual, ok)
                    } else if path.eq_ignore_ascii_case("/id") {
                        (json!(item.id), num_of(&value) == Some(item.id as f64))
                    } else {
                        return Err(patch_error(format!(
                            "VS403353: Test operation is not supported for path {path}."
                        )));
                    };
                    if !ok {
                        let show = |v: &Value| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        return Err(AdoError::new(
                            StatusCode::PRECONDITION_FAILED,
                            "TestPatchOperationFailedException",
                            format!(
                                "VS403351: Test Operation for path {path} failed, value {} was not equal to test value {}.",
                                show(&actual),
                                show(&value)
                            ),
                        ));
                    }
                }
                "add" | "replace" | "remove" => {
                    if let Some(fname) = path.strip_prefix("/fields/") {
                        let (reference, fkind, read_only) = self
                            .field_known(fname)
                            .ok_or_else(|| AdoError::unknown_field(fname))?;
                        if read_only && !ctx.bypass_rules {
                            return Err(AdoError::rule(
                                &reference,
                                process::field(&reference)
                                    .map(|f| f.name)
                                    .unwrap_or(&reference),
                                "ReadOnly",
                            ));
                        }
                        if kind == "remove" {
                            item.fields.remove(&reference);
                            continue;
                        }
                        if reference == "System.Reason" {
                            reason_given = true;
                        }
                        if reference == "System.Tags" {
                            let new = split_tags(value.as_str().unwrap_or(""));
                            let merged = if kind == "add" && !creating {
                                let mut cur = item.tags();
                                for t in new {
                                    if !cur.iter().any(|c| c.eq_ignore_ascii_case(&t)) {
                                        cur.push(t);
                                    }
                                }
                                cur
                            } else {
                                new
                            };
                            if merged.is_empty() {
                                item.fields.remove("System.Tags");
                            } else {
                                item.fields
                                    .insert("System.Tags".into(), Value::String(merged.join("; ")));
                            }
                            continue;
                        }
                        let converted = if reference == "System.History" {
                            match &value {
                                Value::String(s) if !s.is_empty() => Some(value.clone()),
                                Value::Object(o) => o.get("text").cloned(),
                                _ => None,
                            }
                        } else {
                            self.convert(&reference, fkind, &value)?
                        };
                        match converted {
                            None => {
                                item.fields.remove(&reference);
                            }
                            Some(v) => {
                                if fkind == Kind::TreePath {
                                    self.check_tree_path(
                                        ctx.project,
                                        &reference,
                                        v.as_str().unwrap_or(""),
                                    )?;
                                }
                                item.fields.insert(reference, v);
                            }
                        }
                    } else if path == "/relations/-" && kind == "add" {
                        let mut rel: SimRelation =
                            serde_json::from_value(value.clone()).map_err(|e| {
                                patch_error(format!(
                                    "VS403359: The relation value is invalid: {e}."
                                ))
                            })?;
                        self.check_relation(&item, &rel)?;
                        // Work item links always carry isLocked, as in every official example.
                        if rel.rel.starts_with("System.LinkTypes.") {
                            rel.attributes.entry("isLocked").or_insert(json!(false));
                        }
                        item.relations.push(rel);
                    } else if let Some(idx) = path.strip_prefix("/relations/") {
                        let i: usize = idx.parse().map_err(|_| {
                            patch_error(format!("VS403357: The path {path} is not valid."))
                        })?;
                        if i >= item.relations.len() {
                            return Err(patch_error(format!(
                                "VS403358: Relation at index {i} does not exist; the work item has {} relations.",
                                item.relations.len()
                            )));
                        }
                        if kind == "remove" {
                            item.relations.remove(i);
                        } else {
                            let rel: SimRelation =
                                serde_json::from_value(value.clone()).map_err(|e| {
                                    patch_error(format!(
                                        "VS403359: The relation value is invalid: {e}."
                                    ))
                                })?;
                            item.relations[i] = rel;
                        }
                    } else {
                        return Err(AdoError::bad_request(
                            "InvalidPatchFieldNameException",
                            format!(
                                "VS403357: The path {path} is not a valid work item patch path."
                            ),
                        ));
                    }
                }
                other => {
                    return Err(patch_error(format!(
                        "VS403356: The patch operation '{other}' is not supported by the simulator."
                    )))
                }
            }
        }

        // Rules the process enforces.
        if item.title().trim().is_empty() {
            return Err(AdoError::rule(
                "System.Title",
                "Title",
                "Required, InvalidEmpty",
            ));
        }
        if creating && !item.fields.contains_key("System.State") {
            item.fields
                .insert("System.State".into(), json!(ty.initial_state().name));
        }
        let new_state = match ty.state(item.state()) {
            Some(s) => s.name.to_string(),
            None => {
                return Err(AdoError::rule(
                    "System.State",
                    "State",
                    "Required, HasValues, LimitedToValues, AllowsOldValue, InvalidEmpty",
                ))
            }
        };
        item.fields.insert("System.State".into(), json!(new_state));

        let fields_changed = item.fields != before_fields;
        let relations_changed = item.relations != before_relations;
        if !creating && !fields_changed && !relations_changed {
            // A no-op patch (e.g. only a `test`) saves nothing.
            item.fields = before_fields;
            return Ok(item);
        }
        if ctx.validate_only {
            return Ok(item);
        }

        let stamp = format_date(ctx.clock.stamp());
        let actor = ctx.actor.stored();
        if creating {
            item.id = self.next_id;
            item.fields
                .insert("System.WorkItemType".into(), json!(ty.name));
            for (f, v) in [
                ("System.AreaPath", ctx.project),
                ("System.IterationPath", ctx.project),
            ] {
                item.fields.entry(f).or_insert_with(|| json!(v));
            }
            for (f, d) in ty.defaults() {
                item.fields.entry(*f).or_insert_with(|| match d {
                    process::DefaultValue::Int(n) => json!(n),
                    process::DefaultValue::Str(s) => json!(s),
                });
            }
            item.fields
                .insert("System.CreatedDate".into(), json!(stamp));
            item.fields.insert("System.CreatedBy".into(), json!(actor));
            item.fields.insert("System.CommentCount".into(), json!(0));
        }
        if creating || old_state != new_state {
            if !reason_given {
                let from = if creating {
                    None
                } else {
                    Some(old_state.as_str())
                };
                item.fields.insert(
                    "System.Reason".into(),
                    json!(process::reason_for(ty.name, from, &new_state)),
                );
            }
            item.fields
                .insert("Microsoft.VSTS.Common.StateChangeDate".into(), json!(stamp));
            let category = ty.state(&new_state).map(|s| s.category).unwrap_or("");
            let (date_f, by_f) = match category {
                "InProgress" => (
                    "Microsoft.VSTS.Common.ActivatedDate",
                    "Microsoft.VSTS.Common.ActivatedBy",
                ),
                "Resolved" => (
                    "Microsoft.VSTS.Common.ResolvedDate",
                    "Microsoft.VSTS.Common.ResolvedBy",
                ),
                "Completed" => (
                    "Microsoft.VSTS.Common.ClosedDate",
                    "Microsoft.VSTS.Common.ClosedBy",
                ),
                _ => ("", ""),
            };
            if !date_f.is_empty() {
                item.fields.insert(date_f.into(), json!(stamp));
                item.fields.insert(by_f.into(), json!(actor));
            }
            if category != "Completed" {
                item.fields.remove("Microsoft.VSTS.Common.ClosedDate");
                item.fields.remove("Microsoft.VSTS.Common.ClosedBy");
            }
            if matches!(category, "Proposed" | "InProgress") {
                item.fields.remove("Microsoft.VSTS.Common.ResolvedDate");
                item.fields.remove("Microsoft.VSTS.Common.ResolvedBy");
            }
        }
        if let Some(text) = item
            .fields
            .get("System.History")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let c = self.new_comment(&text, &actor, &stamp);
            item.comments.push(c);
            let n = item.comment_count();
            item.fields.insert("System.CommentCount".into(), json!(n));
        }
        let added: Vec<SimRelation> = item
            .relations
            .iter()
            .filter(|r| !before_relations.contains(r))
            .cloned()
            .collect();
        let removed: Vec<SimRelation> = before_relations
            .iter()
            .filter(|r| !item.relations.contains(r))
            .cloned()
            .collect();
        let id = item.id;
        let saved = self.commit(item, &actor, &stamp, creating);
        // Work item links are two-sided: the other end gets the reverse link in a revision of its own.
        for (rel, add) in added
            .iter()
            .map(|r| (r, true))
            .chain(removed.iter().map(|r| (r, false)))
        {
            if let (Some(other), Some(reverse)) = (rel.target_id(), reverse_rel(&rel.rel)) {
                self.reciprocal(other, reverse, id, add, ctx);
            }
        }
        Ok(saved)
    }

    fn check_relation(&self, item: &SimWorkItem, rel: &SimRelation) -> Result<(), AdoError> {
        const KNOWN: &[&str] = &[
            PARENT_REL,
            CHILD_REL,
            "System.LinkTypes.Related",
            "System.LinkTypes.Dependency-Forward",
            "System.LinkTypes.Dependency-Reverse",
            "System.LinkTypes.Duplicate-Forward",
            "System.LinkTypes.Duplicate-Reverse",
            "Hyperlink",
            "ArtifactLink",
            "AttachedFile",
        ];
        if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(&rel.rel)) {
            return Err(patch_error(format!(
                "TF201063: The link type '{}' is not valid.",
                rel.rel
            )));
        }
        if item
            .relations
            .iter()
            .any(|r| r.rel.eq_ignore_ascii_case(&rel.rel) && r.url.eq_ignore_ascii_case(&rel.url))
        {
            return Err(patch_error(format!(
                "TF201035: The relation '{}' to '{}' already exists.",
                rel.rel, rel.url
            )));
        }
        if rel.rel.starts_with("System.LinkTypes.") {
            let target = rel.target_id().ok_or_else(|| {
                patch_error(format!(
                    "TF201076: The link target URL '{}' is not a work item URL.",
                    rel.url
                ))
            })?;
            if self.live(target).is_none() {
                return Err(AdoError::not_found(target));
            }
            if target == item.id {
                return Err(patch_error(
                    "TF201039: A work item cannot be linked to itself.".into(),
                ));
            }
            if rel.rel.eq_ignore_ascii_case(PARENT_REL) && item.parent().is_some() {
                return Err(AdoError::bad_request(
                    "WorkItemLinkInvalidException",
                    format!(
                        "TF201036: You cannot add a Child link between work items {target} and {} because a work item can have only one Parent link.",
                        item.id
                    ),
                ));
            }
        }
        Ok(())
    }

    fn reciprocal(&mut self, other: i64, rel: &str, id: i64, add: bool, ctx: &WriteCtx) {
        let urls_suffix = format!("/{id}");
        let Some(rec) = self.recs.get(&other).filter(|r| r.deleted.is_none()) else {
            return;
        };
        let mut item = rec.item.clone();
        item.fields.remove("System.History");
        let pos = item
            .relations
            .iter()
            .position(|r| r.rel == rel && r.url.ends_with(&urls_suffix));
        match (add, pos) {
            (true, None) => {
                // Same URL style as the link the client sent, pointing back at `id`.
                let self_url = self
                    .recs
                    .get(&id)
                    .and_then(|r| {
                        r.item
                            .relations
                            .iter()
                            .find(|x| x.target_id() == Some(other))
                    })
                    .map(|x| {
                        x.url
                            .rsplit_once('/')
                            .map(|(b, _)| format!("{b}/{id}"))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                item.relations.push(SimRelation {
                    rel: rel.to_string(),
                    url: self_url,
                    attributes: Map::from_iter([("isLocked".to_string(), json!(false))]),
                });
            }
            (false, Some(i)) => {
                item.relations.remove(i);
            }
            _ => return,
        }
        let stamp = format_date(ctx.clock.stamp());
        self.commit(item, &ctx.actor.stored(), &stamp, false);
    }

    fn new_comment(&mut self, text: &str, actor: &str, stamp: &str) -> SimComment {
        let id = self.next_comment_id;
        self.next_comment_id += 1;
        SimComment {
            id,
            version: 1,
            text: text.to_string(),
            created_by: actor.to_string(),
            created_date: stamp.to_string(),
            modified_by: actor.to_string(),
            modified_date: stamp.to_string(),
            is_deleted: false,
            format: html_format(),
        }
    }

    /// Saves `item` as a new revision stamped `stamp` by `actor`.
    fn commit(
        &mut self,
        mut item: SimWorkItem,
        actor: &str,
        stamp: &str,
        creating: bool,
    ) -> SimWorkItem {
        self.watermark += 1;
        item.fields
            .insert("System.ChangedDate".into(), json!(stamp));
        item.fields.insert("System.ChangedBy".into(), json!(actor));
        item.fields
            .insert("System.Watermark".into(), json!(self.watermark));
        if creating {
            self.next_id = self.next_id.max(item.id + 1);
            item.rev = 1;
            self.recs.insert(
                item.id,
                Rec {
                    item: item.clone(),
                    history: Vec::new(),
                    deleted: None,
                },
            );
            return item;
        }
        let Some(rec) = self.recs.get_mut(&item.id) else {
            return item;
        };
        rec.history.push(Revision {
            rev: rec.item.rev,
            fields: std::mem::take(&mut rec.item.fields),
            relations: rec.item.relations.clone(),
        });
        item.rev = rec.item.rev + 1;
        rec.item = item.clone();
        item
    }

    /// Adds a comment via the comments API: a new revision with History and CommentCount.
    pub fn add_comment(
        &mut self,
        id: i64,
        text: &str,
        markdown: bool,
        actor: &SimUser,
        clock: &SimClock,
    ) -> Result<SimComment, AdoError> {
        let mut item = self
            .live(id)
            .ok_or_else(|| AdoError::not_found(id))?
            .clone();
        let stamp = format_date(clock.stamp());
        let mut c = self.new_comment(text, &actor.stored(), &stamp);
        if markdown {
            c.format = "markdown".into();
        }
        item.comments.push(c.clone());
        item.fields.insert("System.History".into(), json!(text));
        let n = item.comment_count();
        item.fields.insert("System.CommentCount".into(), json!(n));
        self.commit(item, &actor.stored(), &stamp, false);
        Ok(c)
    }

    pub fn update_comment(
        &mut self,
        id: i64,
        comment_id: i64,
        text: &str,
        actor: &SimUser,
        clock: &SimClock,
    ) -> Result<SimComment, AdoError> {
        let rec = self
            .recs
            .get_mut(&id)
            .filter(|r| r.deleted.is_none())
            .ok_or_else(|| AdoError::not_found(id))?;
        let c = rec
            .item
            .comments
            .iter_mut()
            .find(|c| c.id == comment_id && !c.is_deleted)
            .ok_or_else(|| comment_not_found(comment_id))?;
        c.text = text.to_string();
        c.version += 1;
        c.modified_by = actor.stored();
        c.modified_date = format_date(clock.stamp());
        Ok(c.clone())
    }

    pub fn delete_comment(
        &mut self,
        id: i64,
        comment_id: i64,
        actor: &SimUser,
        clock: &SimClock,
    ) -> Result<(), AdoError> {
        let mut item = self
            .live(id)
            .ok_or_else(|| AdoError::not_found(id))?
            .clone();
        let stamp = format_date(clock.stamp());
        let c = item
            .comments
            .iter_mut()
            .find(|c| c.id == comment_id && !c.is_deleted)
            .ok_or_else(|| comment_not_found(comment_id))?;
        c.is_deleted = true;
        c.modified_by = actor.stored();
        c.modified_date = stamp.clone();
        item.fields.remove("System.History");
        let n = item.comment_count();
        item.fields.insert("System.CommentCount".into(), json!(n));
        self.commit(item, &actor.stored(), &stamp, false);
        Ok(())
    }

    /// Moves an item to the recycle bin (or destroys it).
    pub fn delete(
        &mut self,
        id: i64,
        destroy: bool,
        actor: &SimUser,
        clock: &SimClock,
    ) -> Result<(SimWorkItem, Deleted), AdoError> {
        let rec = self
            .recs
            .get_mut(&id)
            .ok_or_else(|| AdoError::not_found(id))?;
        if rec.deleted.is_some() && !destroy {
            return Err(AdoError::not_found(id));
        }
        let info = Deleted {
            date: format_date(clock.stamp()),
            by: actor.stored(),
        };
        let item = rec.item.clone();
        if destroy {
            self.recs.remove(&id);
        } else {
            rec.deleted = Some(info.clone());
        }
        Ok((item, info))
    }

    pub fn restore(&mut self, id: i64) -> Result<SimWorkItem, AdoError> {
        let rec = self
            .recs
            .get_mut(&id)
            .filter(|r| r.deleted.is_some())
            .ok_or_else(|| AdoError::not_found(id))?;
        rec.deleted = None;
        Ok(rec.item.clone())
    }

    /// Imports seed items as they are (like a migration: no rules, one revision each).
    pub fn seed(
        &mut self,
        seed: AdoSeed,
        urls: &Urls,
        clock: &SimClock,
    ) -> Result<Vec<i64>, String> {
        for f in &seed.custom_fields {
            if self.field_known(f).is_none() {
                self.extra_fields.insert(f.clone());
            }
        }
        let mut ids = Vec::with_capacity(seed.work_items.len());
        let mut parents = Vec::new();
        for s in seed.work_items {
            let ty = process::work_item_type(&s.work_item_type)
                .ok_or_else(|| format!("unknown work item type '{}'", s.work_item_type))?;
            let id = s.id.unwrap_or(self.next_id);
            if self.recs.contains_key(&id) {
                return Err(format!("work item {id} already exists"));
            }
            let stamp = format_date(clock.stamp());
            let creator = self.users.first().map(SimUser::stored).unwrap_or_default();
            let mut fields = Map::new();
            let mut relations = s.relations;
            let mut seed_fields = s.fields;
            if let Some(p) = seed_fields.remove("System.Parent").and_then(|v| v.as_i64()) {
                if !relations.iter().any(|r| r.rel == PARENT_REL) {
                    relations.push(SimRelation {
                        rel: PARENT_REL.into(),
                        url: urls.work_item(p),
                        attributes: Map::from_iter([("isLocked".to_string(), json!(false))]),
                    });
                }
            }
            for (k, v) in seed_fields {
                let (reference, kind) = match self.field_known(&k) {
                    Some((r, kind, _)) => (r, kind),
                    None => {
                        self.extra_fields.insert(k.clone());
                        (k, Kind::String)
                    }
                };
                let v = match (kind, &v) {
                    (Kind::Identity, Value::String(raw)) => {
                        match self.resolve_identity(&v, &reference, &reference) {
                            Ok(Some(stored)) => json!(stored),
                            Ok(None) => continue,
                            // Seeds may name people the directory does not list.
                            Err(_) if raw.contains('<') => v.clone(),
                            Err(e) => return Err(e.message),
                        }
                    }
                    (Kind::Date, Value::String(d)) => {
                        let t = DateTime::parse_from_rfc3339(d)
                            .map_err(|e| format!("field {reference}: bad date '{d}': {e}"))?;
                        json!(format_date(t.with_timezone(&Utc)))
                    }
                    (_, Value::String(t)) if reference == "System.Tags" => {
                        let tags = split_tags(t);
                        if tags.is_empty() {
                            continue;
                        }
                        json!(tags.join("; "))
                    }
                    (_, Value::Null) => continue,
                    _ => v,
                };
                fields.insert(reference, v);
            }
            let state = match fields.get("System.State").and_then(Value::as_str) {
                Some(st) => {
                    ty.state(st)
                        .ok_or_else(|| format!("state '{st}' is not allowed for type {}", ty.name))?
                        .name
                }
                None => ty.initial_state().name,
            };
            fields.insert("System.State".into(), json!(state));
            fields.insert("System.WorkItemType".into(), json!(ty.name));
            let defaults: [(&str, Value); 10] = [
                (
                    "System.Reason",
                    json!(process::reason_for(ty.name, None, state)),
                ),
                ("System.AreaPath", json!(urls.project)),
                ("System.IterationPath", json!(urls.project)),
                ("System.CreatedBy", json!(creator)),
                ("System.ChangedBy", json!(creator)),
                ("System.CreatedDate", json!(stamp)),
                ("System.ChangedDate", Value::Null),
                ("Microsoft.VSTS.Common.StateChangeDate", Value::Null),
                ("System.Title", json!(format!("{} {id}", ty.name))),
                ("System.CommentCount", json!(s.comments.len())),
            ];
            for (k, v) in defaults {
                if !v.is_null() {
                    fields.entry(k).or_insert(v);
                }
            }
            let created = fields
                .get("System.CreatedDate")
                .cloned()
                .unwrap_or(json!(stamp));
            fields
                .entry("System.ChangedDate")
                .or_insert(created.clone());
            fields
                .entry("Microsoft.VSTS.Common.StateChangeDate")
                .or_insert(created);
            for (f, d) in ty.defaults() {
                fields.entry(*f).or_insert_with(|| match d {
                    process::DefaultValue::Int(n) => json!(n),
                    process::DefaultValue::Str(s) => json!(s),
                });
            }
            self.watermark += 1;
            fields.insert("System.Watermark".into(), json!(self.watermark));
            let changed = fields
                .get("System.ChangedDate")
                .and_then(Value::as_str)
                .unwrap_or(&stamp)
                .to_string();
            let by = fields
                .get("System.ChangedBy")
                .and_then(Value::as_str)
                .unwrap_or(&creator)
                .to_string();
            let mut comments = Vec::new();
            for text in &s.comments {
                comments.push(self.new_comment(text, &by, &changed));
            }
            for r in &relations {
                if r.rel == PARENT_REL {
                    if let Some(p) = r.target_id() {
                        parents.push((id, p, r.url.clone()));
                    }
                }
            }
            self.recs.insert(
                id,
                Rec {
                    item: SimWorkItem {
                        id,
                        rev: 1,
                        fields,
                        relations,
                        comments,
                    },
                    history: Vec::new(),
                    deleted: s.deleted.then(|| Deleted {
                        date: changed.clone(),
                        by: by.clone(),
                    }),
                },
            );
            self.next_id = self.next_id.max(id + 1);
            ids.push(id);
        }
        for (child, parent, url) in parents {
            let child_url = url
                .rsplit_once('/')
                .map(|(b, _)| format!("{b}/{child}"))
                .unwrap_or_default();
            if let Some(p) = self.recs.get_mut(&parent) {
                if !p
                    .item
                    .relations
                    .iter()
                    .any(|r| r.rel == CHILD_REL && r.url == child_url)
                {
                    p.item.relations.push(SimRelation {
                        rel: CHILD_REL.into(),
                        url: child_url,
                        attributes: Map::from_iter([("isLocked".to_string(), json!(false))]),
                    });
                }
            }
        }
        Ok(ids)
    }

    // ----- answers -----

    /// Fields as the API returns them: computed fields added, identities as objects.
    pub fn render_fields(
        &self,
        urls: &Urls,
        id: i64,
        rev: i64,
        fields: &Map<String, Value>,
        relations: &[SimRelation],
        revised: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("System.Id".into(), json!(id));
        out.insert("System.Rev".into(), json!(rev));
        out.insert("System.TeamProject".into(), json!(urls.project));
        let area = fields
            .get("System.AreaPath")
            .and_then(Value::as_str)
            .unwrap_or(&urls.project);
        let iteration = fields
            .get("System.IterationPath")
            .and_then(Value::as_str)
            .unwrap_or(&urls.project);
        out.insert(
            "System.AreaId".into(),
            json!(small_hash(&format!("area:{area}"))),
        );
        out.insert(
            "System.IterationId".into(),
            json!(small_hash(&format!("iteration:{iteration}"))),
        );
        out.insert(
            "System.NodeName".into(),
            json!(area.rsplit('\\').next().unwrap_or(area)),
        );
        for (i, part) in area.split('\\').enumerate().take(7) {
            out.insert(format!("System.AreaLevel{}", i + 1), json!(part));
        }
        for (i, part) in iteration.split('\\').enumerate().take(7) {
            out.insert(format!("System.IterationLevel{}", i + 1), json!(part));
        }
        out.insert("System.RevisedDate".into(), json!(revised));
        out.insert("System.IsDeleted".into(), json!(false));
        if let Some(d) = fields.get("System.ChangedDate") {
            out.insert("System.AuthorizedDate".into(), d.clone());
        }
        if let Some(Value::String(by)) = fields.get("System.ChangedBy") {
            out.insert("System.AuthorizedAs".into(), urls.identity(by));
            out.insert(
                "System.PersonId".into(),
                json!(small_hash(&format!("person:{}", identity_email(by)))),
            );
        }
        if let Some(p) = relations
            .iter()
            .find(|r| r.rel == PARENT_REL)
            .and_then(SimRelation::target_id)
        {
            out.insert("System.Parent".into(), json!(p));
        }
        for (k, v) in fields {
            let v = match (process::kind_of(k), v) {
                (Kind::Identity, Value::String(s)) => urls.identity(s),
                _ => v.clone(),
            };
            out.insert(k.clone(), v);
        }
        out
    }

    /// The item as it was at `as_of_ms` (the latest revision changed at or before it);
    /// `None` if it did not exist yet or is deleted.
    pub fn item_as_of(&self, id: i64, as_of_ms: i64) -> Option<SimWorkItem> {
        let rec = self.recs.get(&id).filter(|r| r.deleted.is_none())?;
        let at = |f: &Map<String, Value>| {
            f.get("System.ChangedDate")
                .and_then(wiql::date_ms_ref)
                .is_some_and(|ms| ms <= as_of_ms)
        };
        let (rev, fields, relations) = if at(&rec.item.fields) {
            (
                rec.item.rev,
                rec.item.fields.clone(),
                rec.item.relations.clone(),
            )
        } else {
            let r = rec.history.iter().rev().find(|r| at(&r.fields))?;
            (r.rev, r.fields.clone(), r.relations.clone())
        };
        let comments = rec
            .item
            .comments
            .iter()
            .filter(|c| {
                DateTime::parse_from_rfc3339(&c.created_date)
                    .is_ok_and(|d| d.timestamp_millis() <= as_of_ms)
            })
            .cloned()
            .collect();
        Some(SimWorkItem {
            id,
            rev,
            fields,
            relations,
            comments,
        })
    }

    /// The work item JSON for reads and writes.
    pub fn render(
        &self,
        urls: &Urls,
        item: &SimWorkItem,
        only: Option<&[String]>,
        expand: Expand,
        links: bool,
    ) -> Value {
        let mut fields = self.render_fields(
            urls,
            item.id,
            item.rev,
            &item.fields,
            &item.relations,
            REVISED_OPEN,
        );
        if let Some(only) = only {
            fields.retain(|k, _| only.iter().any(|o| o.eq_ignore_ascii_case(k)));
        }
        let mut v = json!({"id": item.id, "rev": item.rev, "fields": fields});
        if expand.relations() && !item.relations.is_empty() {
            v["relations"] = serde_json::to_value(&item.relations).unwrap_or(Value::Null);
        }
        if links || expand.links() {
            v["_links"] = self.links(urls, item);
        }
        if let Some(c) = item
            .comments
            .last()
            .filter(|_| item.fields.contains_key("System.History"))
        {
            v["commentVersionRef"] = json!({
                "commentId": c.id,
                "version": c.version,
                "url": urls.project_scoped(&format!("workItems/{}/comments/{}/versions/{}", item.id, c.id, c.version))
            });
        }
        v["url"] = json!(urls.work_item(item.id));
        v
    }

    fn links(&self, urls: &Urls, item: &SimWorkItem) -> Value {
        let wi = urls.work_item(item.id);
        let mut l = json!({
            "self": {"href": wi},
            "workItemUpdates": {"href": format!("{wi}/updates")},
            "workItemRevisions": {"href": format!("{wi}/revisions")},
            "workItemComments": {"href": format!("{wi}/comments")},
            "html": {"href": format!("{}/{}/_workitems/edit/{}", urls.org_base(), urls.project, item.id)},
            "workItemType": {"href": urls.project_scoped(&format!("workItemTypes/{}", item.work_item_type().replace(' ', "%20")))},
            "fields": {"href": format!("{}/_apis/wit/fields", urls.org_base())}
        });
        if let Some(p) = item.parent() {
            l["parent"] = json!({"href": urls.work_item(p)});
        }
        l["workItemHistory"] = json!({"href": format!("{wi}/history")});
        l
    }

    pub fn comment_json(&self, urls: &Urls, item_id: i64, c: &SimComment) -> Value {
        json!({
            "workItemId": item_id,
            "id": c.id,
            "commentId": c.id,
            "version": c.version,
            "text": c.text,
            "createdBy": urls.identity(&c.created_by),
            "createdDate": c.created_date,
            "modifiedBy": urls.identity(&c.modified_by),
            "modifiedDate": c.modified_date,
            "isDeleted": c.is_deleted,
            "format": c.format,
            "mentions": [],
            "url": urls.project_scoped(&format!("workItems/{item_id}/comments/{}", c.id))
        })
    }

    /// Revision `rev` of an item as a full work item.
    pub fn revision(&self, urls: &Urls, id: i64, rev: i64, expand: Expand) -> Option<Value> {
        let rec = self.recs.get(&id).filter(|r| r.deleted.is_none())?;
        let (fields, relations) = rec.snapshot(rev)?;
        let revised = rec
            .changed_date_of(rev + 1)
            .unwrap_or_else(|| REVISED_OPEN.to_string());
        let f = self.render_fields(urls, id, rev, &fields, &relations, &revised);
        let mut v = json!({"id": id, "rev": rev, "fields": f});
        if expand.relations() && !relations.is_empty() {
            v["relations"] = serde_json::to_value(&relations).unwrap_or(Value::Null);
        }
        v["url"] = json!(urls.project_scoped(&format!("workItems/{id}/revisions/{rev}")));
        Some(v)
    }

    pub fn rev_of(&self, id: i64) -> Option<i64> {
        self.live(id).map(|i| i.rev)
    }

    /// Update `n` (= revision n): what changed from revision n-1.
    pub fn update(&self, urls: &Urls, id: i64, n: i64) -> Option<Value> {
        let rec = self.recs.get(&id).filter(|r| r.deleted.is_none())?;
        let (fields, relations) = rec.snapshot(n)?;
        let revised = rec
            .changed_date_of(n + 1)
            .unwrap_or_else(|| REVISED_OPEN.to_string());
        let new = self.render_fields(urls, id, n, &fields, &relations, &revised);
        let (old, old_rel) = match rec.snapshot(n - 1) {
            Some((f, r)) => {
                let rv = rec
                    .changed_date_of(n)
                    .unwrap_or_else(|| REVISED_OPEN.to_string());
                (Some(self.render_fields(urls, id, n - 1, &f, &r, &rv)), r)
            }
            None => (None, Vec::new()),
        };
        let mut diff = Map::new();
        let keys: BTreeSet<&String> = new
            .keys()
            .chain(old.iter().flat_map(|o| o.keys()))
            .collect();
        for k in keys {
            let o = old.as_ref().and_then(|o| o.get(k));
            let nv = new.get(k);
            // History is per revision: it only ever appears as a newValue.
            let o = if k == "System.History" { None } else { o };
            if o == nv {
                continue;
            }
            let mut d = Map::new();
            if let Some(o) = o {
                d.insert("oldValue".into(), o.clone());
            }
            if let Some(nv) = nv {
                d.insert("newValue".into(), nv.clone());
            }
            diff.insert(k.clone(), Value::Object(d));
        }
        let by = fields
            .get("System.ChangedBy")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut revised_by = urls.identity(by);
        revised_by["name"] = json!(by);
        let mut v = json!({
            "id": n,
            "workItemId": id,
            "rev": n,
            "revisedBy": revised_by,
            "revisedDate": revised,
            "fields": diff,
        });
        let added: Vec<&SimRelation> = relations.iter().filter(|r| !old_rel.contains(r)).collect();
        let removed: Vec<&SimRelation> =
            old_rel.iter().filter(|r| !relations.contains(r)).collect();
        if !added.is_empty() || !removed.is_empty() {
            let mut r = Map::new();
            if !added.is_empty() {
                r.insert(
                    "added".into(),
                    serde_json::to_value(added).unwrap_or_default(),
                );
            }
            if !removed.is_empty() {
                r.insert(
                    "removed".into(),
                    serde_json::to_value(removed).unwrap_or_default(),
                );
            }
            v["relations"] = Value::Object(r);
        }
        v["url"] = json!(urls.project_scoped(&format!("workItems/{id}/updates/{n}")));
        Some(v)
    }

    /// Runs a prepared WIQL query: matching live ids in result order.
    pub fn query(&self, q: &wiql::Prepared) -> Vec<i64> {
        let mut rows: Vec<&dyn Row> = self
            .live_items()
            .filter(|i| q.matches(*i))
            .map(|i| i as &dyn Row)
            .collect();
        q.sort(&mut rows);
        rows.iter().map(|r| r.id()).collect()
    }
}

fn comment_not_found(comment_id: i64) -> AdoError {
    AdoError::new(
        StatusCode::NOT_FOUND,
        "WorkItemCommentNotFoundException",
        format!("TF401531: Comment {comment_id} does not exist."),
    )
}

fn reverse_rel(rel: &str) -> Option<&'static str> {
    Some(match rel {
        PARENT_REL => CHILD_REL,
        CHILD_REL => PARENT_REL,
        "System.LinkTypes.Related" => "System.LinkTypes.Related",
        "System.LinkTypes.Dependency-Forward" => "System.LinkTypes.Dependency-Reverse",
        "System.LinkTypes.Dependency-Reverse" => "System.LinkTypes.Dependency-Forward",
        "System.LinkTypes.Duplicate-Forward" => "System.LinkTypes.Duplicate-Reverse",
        "System.LinkTypes.Duplicate-Reverse" => "System.LinkTypes.Duplicate-Forward",
        _ => return None,
    })
}
