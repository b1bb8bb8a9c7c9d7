//! The simulated Workspace: members, Lists, tasks, comments and webhooks, and every change
//! operation on them. Both the HTTP handlers and the "web UI" edits of the test handle go
//! through the operations here, so validation and `date_updated` bumps are the same for both.
use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::core::model::ClickUpStatusType;
use crate::sim::common::SimClock;

/// A Workspace member (a ClickUp user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMember {
    pub id: i64,
    pub username: String,
    pub email: String,
}

/// One status of a List. Names are case-sensitive and list-specific (FACTS §13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStatus {
    pub status: String,
    #[serde(rename = "type")]
    pub type_: ClickUpStatusType,
    pub color: String,
    pub orderindex: i64,
}

/// A Custom Field definition available on a List.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimCustomField {
    /// A uuid.
    pub id: String,
    pub name: String,
    /// ClickUp field type: "url", "short_text", "text", "number", "email", "drop_down", ...
    #[serde(rename = "type")]
    pub type_: String,
    /// Rendered as the field's `type_config` (e.g. drop-down options); `{}` by default.
    #[serde(default = "empty_object")]
    pub type_config: Value,
    #[serde(default)]
    pub required: bool,
}

fn empty_object() -> Value {
    json!({})
}

/// A List with its statuses and fields, and where it sits in the hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimList {
    pub id: String,
    pub name: String,
    pub statuses: Vec<SimStatus>,
    #[serde(default)]
    pub custom_fields: Vec<SimCustomField>,
    #[serde(default = "default_folder_id")]
    pub folder_id: String,
    #[serde(default = "default_folder_name")]
    pub folder_name: String,
    #[serde(default = "default_space_id")]
    pub space_id: String,
    /// The List's own description, colour status, priority and due date (not its tasks').
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub list_status: Option<SimListStatus>,
    #[serde(default)]
    pub list_priority: Option<u8>,
    #[serde(default)]
    pub due_ms: Option<i64>,
}

/// A List's colour status (`status` of Get List), distinct from task statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimListStatus {
    pub status: String,
    pub color: String,
    #[serde(default)]
    pub hide_label: bool,
}

fn default_folder_id() -> String {
    "90110200".into()
}
fn default_folder_name() -> String {
    "Sim Folder".into()
}
fn default_space_id() -> String {
    "90110100".into()
}

impl SimList {
    /// A List with ClickUp's default statuses ("to do", "in progress", "review", "complete")
    /// and no custom fields.
    pub fn new(id: &str, name: &str) -> Self {
        SimList {
            id: id.into(),
            name: name.into(),
            statuses: default_statuses(),
            custom_fields: Vec::new(),
            folder_id: default_folder_id(),
            folder_name: default_folder_name(),
            space_id: default_space_id(),
            content: String::new(),
            list_status: None,
            list_priority: None,
            due_ms: None,
        }
    }
    pub fn status(&self, name: &str) -> Option<&SimStatus> {
        self.statuses.iter().find(|s| s.status == name)
    }
    pub fn field(&self, id: &str) -> Option<&SimCustomField> {
        self.custom_fields.iter().find(|f| f.id == id)
    }
    /// The status a new task gets when none is given: the first by orderindex.
    fn first_status(&self) -> Option<&SimStatus> {
        self.statuses.iter().min_by_key(|s| s.orderindex)
    }
}

/// The statuses of a new ClickUp List (the GetList example shows "to do"/open and
/// "complete"/closed; "in progress" and "review" are the usual custom steps between).
pub fn default_statuses() -> Vec<SimStatus> {
    let s = |status: &str, type_, color: &str, orderindex| SimStatus {
        status: status.into(),
        type_,
        color: color.into(),
        orderindex,
    };
    vec![
        s("to do", ClickUpStatusType::Open, "#d3d3d3", 0),
        s("in progress", ClickUpStatusType::Custom, "#4194f6", 1),
        s("review", ClickUpStatusType::Custom, "#a875ff", 2),
        s("complete", ClickUpStatusType::Closed, "#6bc950", 3),
    ]
}

/// A stored task. Read it through the getters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimTask {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) markdown: String,
    pub(crate) list_id: String,
    pub(crate) status: String,
    pub(crate) status_type: ClickUpStatusType,
    pub(crate) priority: Option<u8>,
    pub(crate) due_ms: Option<i64>,
    pub(crate) due_time: bool,
    pub(crate) start_ms: Option<i64>,
    pub(crate) start_time: bool,
    pub(crate) points: Option<f64>,
    pub(crate) time_estimate_ms: Option<i64>,
    pub(crate) assignees: Vec<i64>,
    pub(crate) watchers: Vec<i64>,
    pub(crate) tags: Vec<String>,
    pub(crate) parent: Option<String>,
    pub(crate) archived: bool,
    pub(crate) creator: i64,
    pub(crate) orderindex: i64,
    pub(crate) date_created_ms: i64,
    pub(crate) date_updated_ms: i64,
    pub(crate) date_closed_ms: Option<i64>,
    pub(crate) date_done_ms: Option<i64>,
    pub(crate) custom_fields: BTreeMap<String, Value>,
    #[serde(default)]
    pub(crate) deleted: bool,
}

impl SimTask {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description as `markdown_description` returns it.
    pub fn markdown(&self) -> &str {
        &self.markdown
    }
    pub fn list_id(&self) -> &str {
        &self.list_id
    }
    pub fn status(&self) -> &str {
        &self.status
    }
    pub fn status_type(&self) -> ClickUpStatusType {
        self.status_type
    }
    /// 1 = urgent ..= 4 = low.
    pub fn priority(&self) -> Option<u8> {
        self.priority
    }
    pub fn due_ms(&self) -> Option<i64> {
        self.due_ms
    }
    /// Whether the due date carries a time of day (`due_date_time`).
    pub fn due_has_time(&self) -> bool {
        self.due_time
    }
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    pub fn assignee_ids(&self) -> &[i64] {
        &self.assignees
    }
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }
    pub fn archived(&self) -> bool {
        self.archived
    }
    pub fn date_created_ms(&self) -> i64 {
        self.date_created_ms
    }
    pub fn date_updated_ms(&self) -> i64 {
        self.date_updated_ms
    }
    pub fn date_closed_ms(&self) -> Option<i64> {
        self.date_closed_ms
    }
    pub fn custom_field(&self, field_id: &str) -> Option<&Value> {
        self.custom_fields.get(field_id)
    }
    pub fn custom_fields(&self) -> &BTreeMap<String, Value> {
        &self.custom_fields
    }
}

/// A new task, as a person would create it in the web UI (also the body of a seeded task).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimTaskInput {
    pub name: String,
    pub markdown: String,
    /// A status name of the List; `None` = the List's first status.
    pub status: Option<String>,
    pub priority: Option<u8>,
    pub due_ms: Option<i64>,
    pub due_time: bool,
    pub start_ms: Option<i64>,
    pub start_time: bool,
    pub points: Option<f64>,
    pub time_estimate_ms: Option<i64>,
    pub assignees: Vec<i64>,
    pub tags: Vec<String>,
    pub parent: Option<String>,
    /// Field id → value.
    pub custom_fields: BTreeMap<String, Value>,
    pub archived: bool,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An edit as a person would make it in the web UI. `None` leaves a field alone;
/// `Some(None)` clears a clearable one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimTaskEdit {
    pub name: Option<String>,
    pub markdown: Option<String>,
    pub status: Option<String>,
    #[serde(deserialize_with = "double_option")]
    pub priority: Option<Option<u8>>,
    #[serde(deserialize_with = "double_option")]
    pub due_ms: Option<Option<i64>>,
    pub due_time: Option<bool>,
    pub assignees_add: Vec<i64>,
    pub assignees_rem: Vec<i64>,
    pub tags_add: Vec<String>,
    pub tags_rem: Vec<String>,
    /// `Some(None)` turns a subtask into a task (possible in the UI, not through the API).
    #[serde(deserialize_with = "double_option")]
    pub parent: Option<Option<String>>,
    /// Move the task to another List.
    pub list_id: Option<String>,
    pub archived: Option<bool>,
    /// Field id → value; `null` clears the field.
    pub custom_fields: BTreeMap<String, Value>,
}

/// A task in a seed file: `list_id`, optionally a fixed `id` and dates, plus the input fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedTask {
    #[serde(default)]
    pub id: Option<String>,
    pub list_id: String,
    #[serde(flatten)]
    pub input: SimTaskInput,
    #[serde(default)]
    pub date_created_ms: Option<i64>,
    #[serde(default)]
    pub date_updated_ms: Option<i64>,
    /// Comment texts, oldest first, by the first member.
    #[serde(default)]
    pub comments: Vec<String>,
}

/// Initial contents. Given members/lists replace the current ones (Lists by id); tasks are
/// added in order, so a subtask must come after its parent. Seeding fires no webhooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickUpSeed {
    #[serde(default)]
    pub members: Option<Vec<SimMember>>,
    #[serde(default)]
    pub lists: Option<Vec<SimList>>,
    #[serde(default)]
    pub tasks: Vec<SeedTask>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Comment {
    pub id: i64,
    pub hist_id: i64,
    pub text: String,
    pub user: i64,
    pub date_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Webhook {
    pub id: String,
    pub userid: i64,
    pub endpoint: String,
    pub events: Vec<String>,
    pub secret: String,
    pub task_id: Option<String>,
    pub list_id: Option<i64>,
    pub folder_id: Option<i64>,
    pub space_id: Option<i64>,
    pub status: String,
    pub fail_count: u32,
}

impl Webhook {
    pub fn to_json(&self, team_id: &str) -> Value {
        json!({
            "id": self.id,
            "userid": self.userid,
            "team_id": team_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(team_id)),
            "endpoint": self.endpoint,
            "client_id": "SIMCLIENT0000000000000000000000",
            "events": self.events,
            "task_id": self.task_id,
            "list_id": self.list_id,
            "folder_id": self.folder_id,
            "space_id": self.space_id,
            "health": {"status": self.status, "fail_count": self.fail_count},
            "secret": self.secret,
        })
    }
    pub fn wants(&self, event: &str, task: &SimTask, list: Option<&SimList>) -> bool {
        if self.status == "suspended" {
            return false;
        }
        if !self.events.iter().any(|e| e == "*" || e == event) {
            return false;
        }
        let list_num = task.list_id.parse::<i64>().ok();
        if let Some(t) = &self.task_id {
            return *t == task.id;
        }
        if let Some(l) = self.list_id {
            return Some(l) == list_num;
        }
        if let Some(f) = self.folder_id {
            return list.and_then(|l| l.folder_id.parse::<i64>().ok()) == Some(f);
        }
        if let Some(s) = self.space_id {
            return list.and_then(|l| l.space_id.parse::<i64>().ok()) == Some(s);
        }
        true
    }
}

/// An error answer in ClickUp's shape `{"err", "ECODE"}` (plus `message` where documented).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub err: String,
    pub ecode: &'static str,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, err: impl Into<String>, ecode: &'static str) -> Self {
        ApiError {
            status,
            err: err.into(),
            ecode,
            message: None,
        }
    }
    pub fn bad(err: impl Into<String>, ecode: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, err, ecode)
    }
    pub fn body(&self) -> Value {
        let mut v = json!({"err": self.err, "ECODE": self.ecode});
        if let Some(m) = &self.message {
            v["message"] = json!(m);
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.status.as_u16(), self.err, self.ecode)
    }
}

/// One recorded field change: becomes a webhook history item.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub event: &'static str,
    pub field: String,
    pub before: Value,
    pub after: Value,
}

fn change(event: &'static str, field: &str, before: Value, after: Value) -> Change {
    Change {
        event,
        field: field.into(),
        before,
        after,
    }
}

/// Everything a task update may touch. The API handlers fill only what the real endpoint
/// accepts; the UI edits may fill the rest.
#[derive(Debug, Default)]
pub(crate) struct Patch {
    pub name: Option<String>,
    pub markdown: Option<String>,
    pub status: Option<String>,
    pub priority: Option<Option<u8>>,
    pub due: Option<Option<i64>>,
    pub due_time: Option<bool>,
    pub start: Option<Option<i64>>,
    pub start_time: Option<bool>,
    pub points: Option<Option<f64>>,
    pub time_estimate: Option<Option<i64>>,
    pub assignees_add: Vec<i64>,
    pub assignees_rem: Vec<i64>,
    pub tags_add: Vec<String>,
    pub tags_rem: Vec<String>,
    pub parent: Option<Option<String>>,
    pub list: Option<String>,
    pub archived: Option<bool>,
    pub fields: Vec<(String, Value)>,
}

impl From<SimTaskEdit> for Patch {
    fn from(e: SimTaskEdit) -> Self {
        Patch {
            name: e.name,
            markdown: e.markdown,
            status: e.status,
            priority: e.priority,
            due: e.due_ms,
            due_time: e.due_time,
            assignees_add: e.assignees_add,
            assignees_rem: e.assignees_rem,
            tags_add: e.tags_add,
            tags_rem: e.tags_rem,
            parent: e.parent,
            list: e.list_id,
            archived: e.archived,
            fields: e.custom_fields.into_iter().collect(),
            ..Patch::default()
        }
    }
}

/// Sort keys of the task queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderBy {
    Id,
    Created,
    Updated,
    DueDate,
}

/// The filters of Get Filtered Team Tasks / Get Tasks.
#[derive(Debug, Clone)]
pub(crate) struct TaskQuery {
    pub page: usize,
    pub order_by: OrderBy,
    pub reverse: bool,
    pub subtasks: bool,
    pub include_closed: bool,
    pub archived: bool,
    pub home_list: Option<String>,
    pub list_ids: Vec<String>,
    pub space_ids: Vec<String>,
    pub project_ids: Vec<String>,
    pub statuses: Vec<String>,
    pub assignees: Vec<i64>,
    pub tags: Vec<String>,
    pub parent: Option<String>,
    pub date_updated_gt: Option<i64>,
    pub date_updated_lt: Option<i64>,
    pub date_created_gt: Option<i64>,
    pub date_created_lt: Option<i64>,
    pub due_date_gt: Option<i64>,
    pub due_date_lt: Option<i64>,
    pub date_done_gt: Option<i64>,
    pub date_done_lt: Option<i64>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            page: 0,
            order_by: OrderBy::Created,
            reverse: false,
            subtasks: false,
            include_closed: false,
            archived: false,
            home_list: None,
            list_ids: vec![],
            space_ids: vec![],
            project_ids: vec![],
            statuses: vec![],
            assignees: vec![],
            tags: vec![],
            parent: None,
            date_updated_gt: None,
            date_updated_lt: None,
            date_created_gt: None,
            date_created_lt: None,
            due_date_gt: None,
            due_date_lt: None,
            date_done_gt: None,
            date_done_lt: None,
        }
    }
}

fn gt(v: Option<i64>, bound: Option<i64>) -> bool {
    match bound {
        None => true,
        Some(b) => v.is_some_and(|v| v > b),
    }
}
fn lt(v: Option<i64>, bound: Option<i64>) -> bool {
    match bound {
        None => true,
        Some(b) => v.is_some_and(|v| v < b),
    }
}

pub(crate) struct State {
    pub team_id: String,
    pub team_name: String,
    pub members: Vec<SimMember>,
    pub lists: Vec<SimList>,
    pub tasks: Vec<SimTask>,
    index: HashMap<String, usize>,
    pub comments: HashMap<String, Vec<Comment>>,
    pub webhooks: Vec<Webhook>,
    pub utc_offset_minutes: i32,
    next_task: u64,
    next_comment: i64,
    next_hist: i64,
    next_orderindex: i64,
}

/// First generated task id number: base 36 "a000000", so ids look like ClickUp's "86a1b2c3d".
const FIRST_TASK_NUMBER: u64 = 10 * 36u64.pow(6);

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl State {
    pub fn new(
        team_id: String,
        members: Vec<SimMember>,
        lists: Vec<SimList>,
        utc_offset_minutes: i32,
    ) -> Self {
        State {
            team_id,
            team_name: "Sim Workspace".into(),
            members,
            lists,
            tasks: Vec::new(),
            index: HashMap::new(),
            comments: HashMap::new(),
            webhooks: Vec::new(),
            utc_offset_minutes,
            next_task: FIRST_TASK_NUMBER,
            next_comment: 90_000_000_001,
            next_hist: 1,
            next_orderindex: 1,
        }
    }

    pub fn list(&self, id: &str) -> Option<&SimList> {
        self.lists.iter().find(|l| l.id == id)
    }

    fn list_or_err(&self, id: &str) -> Result<&SimList, ApiError> {
        self.list(id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "List not found", "ITEM_013"))
    }

    pub fn member(&self, id: i64) -> Option<&SimMember> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The token's owner: the first member.
    pub fn me(&self) -> Option<&SimMember> {
        self.members.first()
    }

    pub fn get(&self, id: &str) -> Option<&SimTask> {
        self.index
            .get(id)
            .map(|&i| &self.tasks[i])
            .filter(|t| !t.deleted)
    }

    fn live_index(&self, id: &str) -> Result<usize, ApiError> {
        match self.index.get(id) {
            Some(&i) if !self.tasks[i].deleted => Ok(i),
            _ => Err(task_not_found()),
        }
    }

    pub fn next_hist_id(&mut self) -> i64 {
        self.next_hist += 1;
        self.next_hist
    }

    /// A date-only due date is snapped to 04:00 Workspace time of the day the instant falls
    /// on (FACTS gotcha 5).
    fn snap_due(&self, ms: i64, has_time: bool) -> i64 {
        if has_time {
            return ms;
        }
        const DAY: i64 = 86_400_000;
        let off = i64::from(self.utc_offset_minutes) * 60_000;
        let local = ms + off;
        local.div_euclid(DAY) * DAY + 4 * 3_600_000 - off
    }

    fn check_priority(p: Option<u8>) -> Result<(), ApiError> {
        match p {
            Some(p) if !(1..=4).contains(&p) => Err(ApiError::bad("Priority invalid", "INPUT_003")),
            _ => Ok(()),
        }
    }

    fn check_assignees(&self, ids: &[i64]) -> Result<(), ApiError> {
        match ids.iter().find(|id| self.member(**id).is_none()) {
            Some(id) => Err(ApiError::bad(
                format!("Assignee {id} is not a member of the Workspace"),
                "ASSIGN_023",
            )),
            None => Ok(()),
        }
    }

    /// A parent must be a live task in the same List, and must not make a cycle.
    fn check_parent(
        &self,
        task_id: Option<&str>,
        parent: &str,
        list_id: &str,
    ) -> Result<(), ApiError> {
        let Some(p) = self.get(parent) else {
            return Err(ApiError::bad("Parent task not found", "ITEM_137"));
        };
        if p.list_id != list_id {
            return Err(ApiError::bad(
                "Parent task must be in the same List",
                "ITEM_137",
            ));
        }
        let mut cur = Some(p);
        while let Some(t) = cur {
            if Some(t.id.as_str()) == task_id {
                return Err(ApiError::bad("Parent would create a cycle", "ITEM_137"));
            }
            cur = t.parent.as_deref().and_then(|id| self.get(id));
        }
        Ok(())
    }

    /// Validates a value for a field and returns what is stored.
    fn check_field(list: &SimList, field_id: &str, value: &Value) -> Result<Value, ApiError> {
        let Some(field) = list.field(field_id) else {
            let mut e = ApiError::bad("Custom field not found", "FIELD_033");
            e.message = Some(format!(
                "Custom field {field_id} is not available on the task's List"
            ));
            return Err(e);
        };
        let ok = match field.type_.as_str() {
            "url" | "short_text" | "text" | "email" | "phone" | "drop_down" => {
                value.is_string() || value.is_number() && field.type_ == "drop_down"
            }
            "number" | "currency" | "emoji" => {
                value.is_number() || value.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
            }
            "checkbox" => value.is_boolean(),
            "date" => value.is_i64(),
            _ => true,
        };
        if !ok {
            let mut e = ApiError::bad("Value is not valid for this field", "FIELD_010");
            e.message = Some(format!(
                "Value for {} field {} is invalid",
                field.type_, field.id
            ));
            return Err(e);
        }
        Ok(match field.type_.as_str() {
            // Number values come back as strings in the examples ("value": "8").
            "number" | "currency" => match value {
                Value::Number(n) => json!(n.to_string()),
                v => v.clone(),
            },
            _ => value.clone(),
        })
    }

    fn new_task_id(&mut self) -> String {
        loop {
            let id = format!("86{}", base36(self.next_task));
            self.next_task += 1;
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    /// Creates a task; returns its id and the history items of its creation.
    pub fn create(
        &mut self,
        clock: &SimClock,
        list_id: &str,
        input: SimTaskInput,
        fixed: Option<(Option<String>, Option<i64>, Option<i64>)>,
    ) -> Result<(String, Vec<Change>), ApiError> {
        let list = self.list_or_err(list_id)?.clone();
        if input.name.trim().is_empty() {
            return Err(ApiError::bad("Task name invalid", "INPUT_005"));
        }
        let status = match &input.status {
            Some(s) => list.status(s).cloned().ok_or_else(status_not_found)?,
            None => list.first_status().cloned().ok_or_else(status_not_found)?,
        };
        Self::check_priority(input.priority)?;
        self.check_assignees(&input.assignees)?;
        if let Some(p) = &input.parent {
            self.check_parent(None, p, list_id)?;
        }
        let mut fields = BTreeMap::new();
        for (fid, v) in &input.custom_fields {
            if !v.is_null() {
                fields.insert(fid.clone(), Self::check_field(&list, fid, v)?);
            }
        }
        let (fixed_id, created, updated) = fixed.unwrap_or((None, None, None));
        let id = match fixed_id {
            Some(id) if self.index.contains_key(&id) => {
                return Err(ApiError::bad(
                    format!("Task id {id} already exists"),
                    "ITEM_001",
                ))
            }
            Some(id) => id,
            None => self.new_task_id(),
        };
        let stamp = match (created, updated) {
            (_, Some(u)) => u,
            (Some(c), None) => c,
            _ => clock.stamp_ms(),
        };
        let created = created.unwrap_or(stamp);
        let closed = matches!(status.type_, ClickUpStatusType::Closed).then_some(stamp);
        let done = matches!(
            status.type_,
            ClickUpStatusType::Closed | ClickUpStatusType::Done
        )
        .then_some(stamp);
        let creator = self.me().map(|m| m.id).unwrap_or(0);
        let mut tags: Vec<String> = Vec::new();
        for t in input.tags {
            if !t.trim().is_empty() && !tags.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
                tags.push(t);
            }
        }
        let mut assignees = Vec::new();
        for a in input.assignees {
            if !assignees.contains(&a) {
                assignees.push(a);
            }
        }
        let task = SimTask {
            id: id.clone(),
            name: input.name,
            markdown: input.markdown,
            list_id: list_id.into(),
            status: status.status.clone(),
            status_type: status.type_,
            priority: input.priority,
            due_ms: input.due_ms.map(|d| self.snap_due(d, input.due_time)),
            due_time: input.due_ms.is_some() && input.due_time,
            start_ms: input.start_ms,
            start_time: input.start_ms.is_some() && input.start_time,
            points: input.points,
            time_estimate_ms: input.time_estimate_ms,
            watchers: vec![creator],
            assignees,
            tags,
            parent: input.parent,
            archived: input.archived,
            creator,
            orderindex: self.next_orderindex,
            date_created_ms: created,
            date_updated_ms: stamp,
            date_closed_ms: closed,
            date_done_ms: done,
            custom_fields: fields,
            deleted: false,
        };
        self.next_orderindex += 1;
        self.index.insert(id.clone(), self.tasks.len());
        self.tasks.push(task);
        let changes = vec![
            change("taskCreated", "task_creation", Value::Null, Value::Null),
            change(
                "taskStatusUpdated",
                "status",
                Value::Null,
                json!({"status": status.status, "color": status.color, "type": status.type_, "orderindex": status.orderindex}),
            ),
        ];
        Ok((id, changes))
    }

    /// Applies an update; all checks come first, so a rejected update changes nothing.
    /// `date_updated` is bumped only when something really changed.
    pub fn apply(&mut self, clock: &SimClock, id: &str, p: Patch) -> Result<Vec<Change>, ApiError> {
        let idx = self.live_index(id)?;
        let mut t = self.tasks[idx].clone();
        let mut ch = Vec::new();
        let mut status_changed = false;
        if let Some(l) = p.list {
            let list = self.list_or_err(&l)?;
            if l != t.list_id {
                if list.status(&t.status).is_none() {
                    let first = list.first_status().cloned().ok_or_else(status_not_found)?;
                    t.status = first.status;
                    t.status_type = first.type_;
                    status_changed = true;
                }
                if t.parent
                    .as_deref()
                    .and_then(|p| self.get(p))
                    .is_some_and(|p| p.list_id != l)
                {
                    t.parent = None;
                }
                ch.push(change(
                    "taskMoved",
                    "section_moved",
                    json!(t.list_id),
                    json!(l),
                ));
                t.list_id = l;
            }
        }
        let list = self.list_or_err(&t.list_id)?.clone();
        if let Some(name) = p.name {
            if name.trim().is_empty() {
                return Err(ApiError::bad("Task name invalid", "INPUT_005"));
            }
            if name != t.name {
                ch.push(change("taskUpdated", "name", json!(t.name), json!(name)));
                t.name = name;
            }
        }
        if let Some(md) = p.markdown {
            if md != t.markdown {
                ch.push(change(
                    "taskUpdated",
                    "content",
                    json!(t.markdown),
                    json!(md),
                ));
                t.markdown = md;
            }
        }
        if let Some(s) = p.status {
            let st = list.status(&s).cloned().ok_or_else(status_not_found)?;
            if st.status != t.status {
                ch.push(change(
                    "taskStatusUpdated",
                    "status",
                    json!({"status": t.status, "type": t.status_type}),
                    json!({"status": st.status, "type": st.type_, "color": st.color, "orderindex": st.orderindex}),
                ));
                t.status = st.status;
                t.status_type = st.type_;
                status_changed = true;
            }
        }
        if let Some(pr) = p.priority {
            Self::check_priority(pr)?;
            if pr != t.priority {
                ch.push(change(
                    "taskPriorityUpdated",
                    "priority",
                    json!(t.priority.map(|x| x.to_string())),
                    json!(pr.map(|x| x.to_string())),
                ));
                t.priority = pr;
            }
        }
        if p.due.is_some() || p.due_time.is_some() {
            let has_time = p.due_time.unwrap_or(t.due_time);
            let raw = match p.due {
                Some(d) => d,
                None => t.due_ms,
            };
            let due = raw.map(|d| self.snap_due(d, has_time));
            let has_time = due.is_some() && has_time;
            if due != t.due_ms || has_time != t.due_time {
                ch.push(change(
                    "taskDueDateUpdated",
                    "due_date",
                    json!(t.due_ms.map(|d| d.to_string())),
                    json!(due.map(|d| d.to_string())),
                ));
                t.due_ms = due;
                t.due_time = has_time;
            }
        }
        if p.start.is_some() || p.start_time.is_some() {
            let start = p.start.unwrap_or(t.start_ms);
            let st = start.is_some() && p.start_time.unwrap_or(t.start_time);
            if start != t.start_ms || st != t.start_time {
                ch.push(change(
                    "taskUpdated",
                    "start_date",
                    json!(t.start_ms.map(|d| d.to_string())),
                    json!(start.map(|d| d.to_string())),
                ));
                t.start_ms = start;
                t.start_time = st;
            }
        }
        if let Some(pts) = p.points {
            if pts != t.points {
                ch.push(change("taskUpdated", "points", json!(t.points), json!(pts)));
                t.points = pts;
            }
        }
        if let Some(te) = p.time_estimate {
            if te != t.time_estimate_ms {
                ch.push(change(
                    "taskTimeEstimateUpdated",
                    "time_estimate",
                    json!(t.time_estimate_ms),
                    json!(te),
                ));
                t.time_estimate_ms = te;
            }
        }
        self.check_assignees(&p.assignees_add)?;
        for a in p.assignees_add {
            if !t.assignees.contains(&a) {
                t.assignees.push(a);
                ch.push(change(
                    "taskAssigneeUpdated",
                    "assignee_add",
                    Value::Null,
                    self.user_json(a),
                ));
            }
        }
        for a in p.assignees_rem {
            if let Some(pos) = t.assignees.iter().position(|x| *x == a) {
                t.assignees.remove(pos);
                ch.push(change(
                    "taskAssigneeUpdated",
                    "assignee_rem",
                    self.user_json(a),
                    Value::Null,
                ));
            }
        }
        for tag in p.tags_add {
            if !tag.trim().is_empty() && !t.tags.iter().any(|x| x.eq_ignore_ascii_case(&tag)) {
                ch.push(change(
                    "taskTagUpdated",
                    "tag",
                    Value::Null,
                    json!([{"name": tag}]),
                ));
                t.tags.push(tag);
            }
        }
        for tag in p.tags_rem {
            if let Some(pos) = t.tags.iter().position(|x| x.eq_ignore_ascii_case(&tag)) {
                let old = t.tags.remove(pos);
                ch.push(change(
                    "taskTagUpdated",
                    "tag_removed",
                    Value::Null,
                    json!([{"name": old}]),
                ));
            }
        }
        if let Some(parent) = p.parent {
            if let Some(pid) = &parent {
                self.check_parent(Some(&t.id), pid, &t.list_id)?;
            }
            if parent != t.parent {
                ch.push(change(
                    "taskUpdated",
                    "parent",
                    json!(t.parent),
                    json!(parent),
                ));
                t.parent = parent;
            }
        }
        if let Some(a) = p.archived {
            if a != t.archived {
                ch.push(change(
                    "taskUpdated",
                    "archived",
                    json!(t.archived),
                    json!(a),
                ));
                t.archived = a;
            }
        }
        for (fid, v) in p.fields {
            let stored = if v.is_null() {
                if list.field(&fid).is_none() {
                    Self::check_field(&list, &fid, &v)?;
                }
                None
            } else {
                Some(Self::check_field(&list, &fid, &v)?)
            };
            let before = t.custom_fields.get(&fid).cloned();
            if before != stored {
                ch.push(change(
                    "taskUpdated",
                    "custom_field",
                    before.unwrap_or(Value::Null),
                    stored.clone().unwrap_or(Value::Null),
                ));
                match stored {
                    Some(s) => t.custom_fields.insert(fid, s),
                    None => t.custom_fields.remove(&fid),
                };
            }
        }
        if ch.is_empty() {
            return Ok(ch);
        }
        let stamp = clock.stamp_ms();
        t.date_updated_ms = stamp;
        if status_changed {
            t.date_closed_ms = matches!(t.status_type, ClickUpStatusType::Closed).then_some(stamp);
            t.date_done_ms = matches!(
                t.status_type,
                ClickUpStatusType::Closed | ClickUpStatusType::Done
            )
            .then_some(stamp);
        }
        self.tasks[idx] = t;
        Ok(ch)
    }

    /// Deletes a task and its subtasks; returns the deleted ids (the task first).
    pub fn delete(&mut self, id: &str) -> Result<Vec<String>, ApiError> {
        self.live_index(id)?;
        let mut doomed = vec![id.to_string()];
        let mut seen: HashSet<String> = doomed.iter().cloned().collect();
        let mut i = 0;
        while i < doomed.len() {
            let cur = doomed[i].clone();
            for t in self.tasks.iter().filter(|t| !t.deleted) {
                if t.parent.as_deref() == Some(cur.as_str()) && seen.insert(t.id.clone()) {
                    doomed.push(t.id.clone());
                }
            }
            i += 1;
        }
        for d in &doomed {
            if let Some(&i) = self.index.get(d) {
                self.tasks[i].deleted = true;
            }
        }
        Ok(doomed)
    }

    /// Adds a comment; bumps the task's `date_updated`.
    pub fn comment(
        &mut self,
        clock: &SimClock,
        id: &str,
        text: &str,
        user: i64,
        date_ms: Option<i64>,
    ) -> Result<(Comment, Change), ApiError> {
        let idx = self.live_index(id)?;
        let stamp = date_ms.unwrap_or_else(|| clock.stamp_ms());
        self.next_comment += 1;
        let hist = self.next_hist_id();
        let c = Comment {
            id: self.next_comment,
            hist_id: hist,
            text: text.into(),
            user,
            date_ms: stamp,
        };
        self.comments.entry(id.into()).or_default().push(c.clone());
        if date_ms.is_none() {
            self.tasks[idx].date_updated_ms = stamp;
        }
        let ch = change(
            "taskCommentPosted",
            "comment",
            Value::Null,
            json!({"id": c.id.to_string(), "comment_text": text, "date": stamp.to_string()}),
        );
        Ok((c, ch))
    }

    /// Task indices matching a query, sorted, plus the page and whether it is the last one.
    pub fn query(&self, q: &TaskQuery, page_size: usize) -> (Vec<&SimTask>, bool) {
        let statuses: Vec<String> = q.statuses.iter().map(|s| s.to_lowercase()).collect();
        let mut hits: Vec<&SimTask> = self
            .tasks
            .iter()
            .filter(|t| {
                if t.deleted || t.archived != q.archived {
                    return false;
                }
                if let Some(home) = &q.home_list {
                    if t.list_id != *home {
                        return false;
                    }
                }
                match &q.parent {
                    Some(p) => {
                        if t.parent.as_deref() != Some(p.as_str()) {
                            return false;
                        }
                    }
                    None => {
                        if !q.subtasks && t.parent.is_some() {
                            return false;
                        }
                    }
                }
                if !q.include_closed && t.status_type == ClickUpStatusType::Closed {
                    return false;
                }
                gt(Some(t.date_updated_ms), q.date_updated_gt)
                    && lt(Some(t.date_updated_ms), q.date_updated_lt)
                    && gt(Some(t.date_created_ms), q.date_created_gt)
                    && lt(Some(t.date_created_ms), q.date_created_lt)
                    && gt(t.due_ms, q.due_date_gt)
                    && lt(t.due_ms, q.due_date_lt)
                    && gt(t.date_done_ms, q.date_done_gt)
                    && lt(t.date_done_ms, q.date_done_lt)
                    && (q.list_ids.is_empty() || q.list_ids.contains(&t.list_id))
                    && (statuses.is_empty() || statuses.contains(&t.status.to_lowercase()))
                    && (q.assignees.is_empty()
                        || t.assignees.iter().any(|a| q.assignees.contains(a)))
                    && (q.tags.is_empty()
                        || t.tags
                            .iter()
                            .any(|x| q.tags.iter().any(|w| w.eq_ignore_ascii_case(x))))
                    && ((q.space_ids.is_empty() && q.project_ids.is_empty())
                        || self.list(&t.list_id).is_some_and(|l| {
                            (q.space_ids.is_empty() || q.space_ids.contains(&l.space_id))
                                && (q.project_ids.is_empty()
                                    || q.project_ids.contains(&l.folder_id))
                        }))
            })
            .collect();
        match q.order_by {
            OrderBy::Created => {
                hits.sort_by_key(|t| (t.date_created_ms, t.orderindex));
            }
            OrderBy::Updated => hits.sort_by_key(|t| (t.date_updated_ms, t.orderindex)),
            OrderBy::Id => hits.sort_by(|a, b| a.id.cmp(&b.id)),
            OrderBy::DueDate => hits.sort_by_key(|t| (t.due_ms.is_none(), t.due_ms, t.orderindex)),
        }
        if q.reverse {
            hits.reverse();
        }
        let start = q.page.saturating_mul(page_size).min(hits.len());
        let end = start.saturating_add(page_size).min(hits.len());
        let last = end >= hits.len();
        (hits[start..end].to_vec(), last)
    }

    pub fn user_json(&self, id: i64) -> Value {
        match self.member(id) {
            Some(m) => member_json(m),
            None => {
                json!({"id": id, "username": "Unknown", "color": "#000000", "initials": "?", "email": "", "profilePicture": null})
            }
        }
    }

    /// The task in the shape of the GetTask / GetTasks / CreateTask examples.
    pub fn render(&self, t: &SimTask, with_markdown: bool) -> Value {
        let list = self.list(&t.list_id);
        let status = list.and_then(|l| l.status(&t.status));
        let plain = plain_text(&t.markdown);
        let mut v = json!({
            "id": t.id,
            "custom_id": null,
            "custom_item_id": 0,
            "name": t.name,
            "text_content": plain,
            "description": plain,
            "status": {
                "id": format!("sc{}_{}", t.list_id, status.map(|s| s.orderindex).unwrap_or(0)),
                "status": t.status,
                "color": status.map(|s| s.color.as_str()).unwrap_or("#d3d3d3"),
                "orderindex": status.map(|s| s.orderindex).unwrap_or(0),
                "type": t.status_type,
            },
            "orderindex": format!("{}.00000000000000000000000000000000", t.orderindex),
            "date_created": t.date_created_ms.to_string(),
            "date_updated": t.date_updated_ms.to_string(),
            "date_closed": t.date_closed_ms.map(|d| d.to_string()),
            "date_done": t.date_done_ms.map(|d| d.to_string()),
            "archived": t.archived,
            "creator": self.creator_json(t.creator),
            "assignees": t.assignees.iter().map(|a| self.user_json(*a)).collect::<Vec<_>>(),
            "group_assignees": [],
            "watchers": t.watchers.iter().map(|a| self.user_json(*a)).collect::<Vec<_>>(),
            "checklists": [],
            "tags": t.tags.iter().map(|n| tag_json(n, t.creator)).collect::<Vec<_>>(),
            "parent": t.parent,
            "top_level_parent": self.top_level_parent(t),
            "priority": t.priority.map(priority_json),
            "due_date": t.due_ms.map(|d| d.to_string()),
            "start_date": t.start_ms.map(|d| d.to_string()),
            "points": t.points,
            "time_estimate": t.time_estimate_ms.map(|d| d.to_string()),
            "time_spent": 0,
        });
        let rest = json!({
            "custom_fields": list.map(|l| l.custom_fields.iter().map(|f| field_json(f, t.custom_fields.get(&f.id), self)).collect::<Vec<_>>()).unwrap_or_default(),
            "dependencies": [],
            "linked_tasks": [],
            "locations": [],
            "team_id": self.team_id,
            "url": format!("https://app.clickup.com/t/{}", t.id),
            "sharing": {
                "public": false,
                "public_share_expires_on": null,
                "public_fields": ["assignees", "priority", "due_date", "content", "comments", "attachments", "customFields", "subtasks", "tags", "checklists", "coverimage"],
                "token": null,
                "seo_optimized": false
            },
            "permission_level": "create",
            "list": {"id": t.list_id, "name": list.map(|l| l.name.as_str()).unwrap_or(""), "access": true},
            "project": {"id": list.map(|l| l.folder_id.as_str()).unwrap_or(""), "name": list.map(|l| l.folder_name.as_str()).unwrap_or(""), "hidden": false, "access": true},
            "folder": {"id": list.map(|l| l.folder_id.as_str()).unwrap_or(""), "name": list.map(|l| l.folder_name.as_str()).unwrap_or(""), "hidden": false, "access": true},
            "space": {"id": list.map(|l| l.space_id.as_str()).unwrap_or("")},
        });
        if let (Some(a), Value::Object(b)) = (v.as_object_mut(), rest) {
            a.extend(b);
        }
        if with_markdown {
            v["markdown_description"] = json!(t.markdown);
        }
        v
    }

    fn creator_json(&self, id: i64) -> Value {
        let mut u = self.user_json(id);
        if let Some(o) = u.as_object_mut() {
            o.remove("initials");
        }
        u
    }

    fn top_level_parent(&self, t: &SimTask) -> Option<String> {
        let mut cur = t.parent.as_deref()?;
        // Bounded walk: parents never form cycles, but a bound keeps a bad seed from hanging.
        for _ in 0..64 {
            match self.get(cur).and_then(|p| p.parent.as_deref()) {
                Some(up) => cur = up,
                None => break,
            }
        }
        Some(cur.to_string())
    }

    pub fn list_json(&self, l: &SimList) -> Value {
        let count = self
            .tasks
            .iter()
            .filter(|t| !t.deleted && t.list_id == l.id)
            .count();
        json!({
            "id": l.id,
            "name": l.name,
            "orderindex": 0,
            "content": l.content,
            "status": l.list_status,
            "priority": l.list_priority.map(|p| {
                let full = priority_json(p);
                json!({"priority": full["priority"], "color": full["color"]})
            }),
            "assignee": null,
            "task_count": count,
            "due_date": l.due_ms.map(|d| d.to_string()),
            "due_date_time": false,
            "start_date": null,
            "start_date_time": null,
            "folder": {"id": l.folder_id, "name": l.folder_name, "hidden": false, "access": true},
            "space": {"id": l.space_id, "name": "Sim Space", "access": true},
            "inbound_address": format!("a.t.{}.sim@tasks.clickup.com", l.id),
            "archived": false,
            "override_statuses": true,
            "statuses": l.statuses.iter().map(|s| json!({
                "id": format!("sc{}_{}", l.id, s.orderindex),
                "status": s.status,
                "orderindex": s.orderindex,
                "color": s.color,
                "type": s.type_,
            })).collect::<Vec<_>>(),
            "permission_level": "create",
        })
    }

    pub fn comment_json(&self, c: &Comment) -> Value {
        let user = self.user_json(c.user);
        json!({
            "id": c.id.to_string(),
            "comment": [{"text": c.text}],
            "comment_text": c.text,
            "user": user,
            "resolved": false,
            "assignee": null,
            "assigned_by": null,
            "reactions": [],
            "date": c.date_ms.to_string(),
            "reply_count": "0",
        })
    }
}

pub(crate) fn task_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Task not found", "ITEM_015")
}

fn status_not_found() -> ApiError {
    ApiError::bad("Status does not exist", "CRTSK_001")
}

pub(crate) fn member_json(m: &SimMember) -> Value {
    json!({
        "id": m.id,
        "username": m.username,
        "color": color_for(&m.username),
        "initials": initials(&m.username),
        "email": m.email,
        "profilePicture": null,
    })
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(|c| c.to_uppercase())
        .collect()
}

/// A stable colour per name, as ClickUp assigns one per user and tag.
fn color_for(name: &str) -> String {
    const COLORS: [&str; 8] = [
        "#7b68ee", "#ffa12f", "#ff5722", "#f42c2c", "#f8306d", "#ff00fc", "#4169e1", "#5f81ff",
    ];
    let h = name
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
    COLORS[h % COLORS.len()].into()
}

fn tag_json(name: &str, creator: i64) -> Value {
    let c = color_for(name);
    json!({"name": name, "tag_fg": c, "tag_bg": c, "creator": creator})
}

pub(crate) fn priority_json(p: u8) -> Value {
    let (name, color) = match p {
        1 => ("urgent", "#f50000"),
        2 => ("high", "#f8ae00"),
        3 => ("normal", "#6fddff"),
        _ => ("low", "#d8d8d8"),
    };
    json!({"color": color, "id": p.to_string(), "orderindex": p.to_string(), "priority": name})
}

fn field_json(f: &SimCustomField, value: Option<&Value>, st: &State) -> Value {
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "type": f.type_,
        "type_config": f.type_config,
        "date_created": "1700000000000",
        "hide_from_guests": false,
        "required": f.required,
    });
    if let Some(val) = value {
        v["value"] = match (f.type_.as_str(), val) {
            ("users", Value::Array(ids)) => Value::Array(
                ids.iter()
                    .filter_map(Value::as_i64)
                    .map(|id| st.user_json(id))
                    .collect(),
            ),
            _ => val.clone(),
        };
        v["value_richtext"] = json!("");
    }
    v
}

/// The plain-text `description` / `text_content`: Markdown with the markup (and link URLs
/// and images) dropped, one line per block (FACTS gotcha 7).
pub fn plain_text(markdown: &str) -> String {
    use comrak::nodes::NodeValue;
    if markdown.trim().is_empty() {
        return String::new();
    }
    let arena = comrak::Arena::new();
    let mut opts = comrak::Options::default();
    opts.extension.table = true;
    opts.extension.strikethrough = true;
    opts.extension.tasklist = true;
    let root = comrak::parse_document(&arena, markdown, &opts);
    let mut lines: Vec<String> = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let leaf = match node.data().value {
            NodeValue::Paragraph | NodeValue::Heading(_) | NodeValue::TableRow(_) => {
                Some(node.collect_text())
            }
            NodeValue::CodeBlock(ref c) => Some(c.literal.trim_end().to_string()),
            _ => None,
        };
        match leaf {
            Some(text) => lines.push(text),
            None => stack.extend(node.reverse_children()),
        }
    }
    lines.join("\n")
}
