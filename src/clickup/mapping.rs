//! Between ClickUp's wire DTOs and the core's side records: tasks → [`ClickUpRecord`],
//! [`ClickUpPatch`] / [`ClickUpCreate`] → request bodies, and the smaller listings.
//!
//! The `decode_*` functions are public so that the official examples can be checked against
//! the exact path the client uses; they take raw bodies, never DTOs.
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use super::dto::{self, Task};
use super::{ClickUpComment, ClickUpCustomField, ClickUpList, ClickUpListStatus, ClickUpWebhook};
use crate::core::model::{
    ClickUpCreate, ClickUpPatch, ClickUpRecord, ClickUpStatusType, ClickUpUser,
};
use crate::remote::{snippet, ApiError};

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], op: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::protocol(
            op,
            format!(
                "cannot parse the answer: {e} (body starts {:?})",
                snippet(body)
            ),
        )
    })
}

pub fn status_type(s: &str) -> ClickUpStatusType {
    match s.to_ascii_lowercase().as_str() {
        "open" => ClickUpStatusType::Open,
        "done" => ClickUpStatusType::Done,
        "closed" => ClickUpStatusType::Closed,
        _ => ClickUpStatusType::Custom,
    }
}

fn user(u: &dto::User) -> Option<ClickUpUser> {
    Some(ClickUpUser {
        id: u.id?,
        email: u.email.clone().unwrap_or_default().to_lowercase(),
        username: u.username.clone().unwrap_or_default(),
    })
}

/// One task. `backlink_field` is the id of the custom field holding the ADO URL, if any.
pub fn decode_task(body: &[u8], backlink_field: Option<&str>) -> Result<ClickUpRecord, ApiError> {
    let t: Task = parse(body, "read a ClickUp task")?;
    to_record(&t, backlink_field)
}

/// One page of a task listing: the tasks that mapped, the ids (or positions) that did not
/// with why, and `last_page` when the answer has it.
pub struct DecodedPage {
    pub tasks: Vec<ClickUpRecord>,
    pub failed: Vec<(String, ApiError)>,
    /// Tasks on the page, mapped or not (for the short-page test).
    pub len: usize,
    pub last_page: Option<bool>,
}

/// A `{tasks: [...], last_page?}` answer. A task that does not map fails alone.
pub fn decode_tasks_page(
    body: &[u8],
    backlink_field: Option<&str>,
) -> Result<DecodedPage, ApiError> {
    let op = "read a page of ClickUp tasks";
    let page: dto::TasksPage = parse(body, op)?;
    let mut tasks = Vec::new();
    let mut failed = Vec::new();
    for (i, raw) in page.tasks.iter().enumerate() {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{i} on the page"));
        match serde_json::from_value::<Task>(raw.clone()) {
            Ok(t) => match to_record(&t, backlink_field) {
                Ok(r) => tasks.push(r),
                Err(e) => failed.push((id, e)),
            },
            Err(e) => failed.push((
                id.clone(),
                ApiError::protocol(&format!("map ClickUp task {id}"), e.to_string()),
            )),
        }
    }
    Ok(DecodedPage {
        tasks,
        failed,
        len: page.tasks.len(),
        last_page: page.last_page,
    })
}

pub(crate) fn to_record(t: &Task, backlink_field: Option<&str>) -> Result<ClickUpRecord, ApiError> {
    let op = format!("map ClickUp task {}", t.id);
    let missing = |what: &str| ApiError::protocol(&op, format!("{what} is missing"));
    let status = t.status.as_ref().ok_or_else(|| missing("status"))?;
    let backlink = backlink_field.and_then(|fid| {
        t.custom_fields
            .iter()
            .find(|f| f.id == fid)
            .and_then(|f| f.value.as_ref())
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    Ok(ClickUpRecord {
        id: t.id.clone(),
        list_id: t
            .list
            .as_ref()
            .map(|l| l.id.clone())
            .ok_or_else(|| missing("list"))?,
        date_updated: t.date_updated.ok_or_else(|| missing("date_updated"))?,
        date_created: t.date_created.ok_or_else(|| missing("date_created"))?,
        name: t.name.clone(),
        markdown_description: t.markdown_description.clone().unwrap_or_default(),
        status: status.status.clone(),
        status_type: status_type(status.kind.as_deref().unwrap_or("custom")),
        assignees: t.assignees.iter().filter_map(user).collect(),
        tags: t.tags.iter().map(|g| g.name.clone()).collect(),
        priority: t.priority,
        due_date: t.due_date,
        due_date_time: t.due_date_time,
        parent: t.parent.clone(),
        archived: t.archived,
        backlink,
        url: t
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("https://app.clickup.com/t/{}", t.id)),
    })
}

/// `GET /list/{id}`: the list and its statuses in order.
pub fn decode_list(body: &[u8]) -> Result<ClickUpList, ApiError> {
    let l: dto::List = parse(body, "read a ClickUp list")?;
    let mut statuses: Vec<ClickUpListStatus> = l
        .statuses
        .iter()
        .map(|s| ClickUpListStatus {
            name: s.status.clone(),
            status_type: status_type(s.kind.as_deref().unwrap_or("custom")),
            orderindex: s.orderindex.unwrap_or(0.0),
        })
        .collect();
    statuses.sort_by(|a, b| a.orderindex.total_cmp(&b.orderindex));
    Ok(ClickUpList {
        id: l.id,
        name: l.name,
        statuses,
    })
}

/// `GET /list/{id}/field`.
pub fn decode_custom_fields(body: &[u8]) -> Result<Vec<ClickUpCustomField>, ApiError> {
    let f: dto::Fields = parse(body, "read ClickUp custom fields")?;
    Ok(f.fields
        .into_iter()
        .map(|f| ClickUpCustomField {
            id: f.id,
            name: f.name.unwrap_or_default(),
            field_type: f.kind.unwrap_or_default(),
        })
        .collect())
}

/// `GET /team`: the members of the workspace `team_id` (all teams' when `None`).
pub fn decode_members(body: &[u8], team_id: Option<&str>) -> Result<Vec<ClickUpUser>, ApiError> {
    let t: dto::Teams = parse(body, "read ClickUp workspaces")?;
    Ok(t.teams
        .iter()
        .filter(|team| team_id.map(|id| team.id == id).unwrap_or(true))
        .flat_map(|team| team.members.iter().filter_map(|m| user(&m.user)))
        .collect())
}

/// `GET /team`: the workspace ids the token can see.
pub fn decode_team_ids(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let t: dto::Teams = parse(body, "read ClickUp workspaces")?;
    Ok(t.teams.into_iter().map(|t| t.id).collect())
}

/// `GET /user`.
pub fn decode_user(body: &[u8]) -> Result<ClickUpUser, ApiError> {
    let op = "read the ClickUp token's user";
    let u: dto::AuthorizedUser = parse(body, op)?;
    user(&u.user).ok_or_else(|| ApiError::protocol(op, "the user has no id"))
}

/// `GET /task/{id}/comment` (newest first, as ClickUp sends them).
pub fn decode_comments(body: &[u8]) -> Result<Vec<ClickUpComment>, ApiError> {
    let c: dto::Comments = parse(body, "read ClickUp task comments")?;
    Ok(c.comments
        .into_iter()
        .map(|c| ClickUpComment {
            id: c.id,
            text: c.comment_text,
            user: c.user.as_ref().and_then(user),
            date: c.date,
        })
        .collect())
}

/// `POST /task/{id}/comment`: the new comment's id and date.
pub fn decode_created_comment(body: &[u8]) -> Result<(String, Option<i64>), ApiError> {
    let c: dto::CreatedComment = parse(body, "read a created ClickUp comment")?;
    Ok((c.id, c.date))
}

fn webhook(w: dto::Webhook) -> ClickUpWebhook {
    let events = match &w.events {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let health = w.health.unwrap_or(dto::Health {
        status: None,
        fail_count: None,
    });
    ClickUpWebhook {
        id: w.id,
        team_id: w.team_id,
        endpoint: w.endpoint,
        events,
        list_id: w.list_id,
        task_id: w.task_id,
        status: health.status.unwrap_or_default(),
        fail_count: health.fail_count.unwrap_or(0),
        secret: w.secret.filter(|s| !s.is_empty()).map(SecretString::from),
    }
}

/// `POST /team/{id}/webhook`.
pub fn decode_created_webhook(body: &[u8]) -> Result<ClickUpWebhook, ApiError> {
    let w: dto::CreatedWebhook = parse(body, "read a created ClickUp webhook")?;
    Ok(webhook(w.webhook))
}

/// `GET /team/{id}/webhook`.
pub fn decode_webhooks(body: &[u8]) -> Result<Vec<ClickUpWebhook>, ApiError> {
    let w: dto::Webhooks = parse(body, "read ClickUp webhooks")?;
    Ok(w.webhooks.into_iter().map(webhook).collect())
}

/// The message and code of a ClickUp error body, if it is one.
pub(crate) fn decode_error(body: &[u8]) -> Option<(String, Option<String>)> {
    let e: dto::ErrorBody = serde_json::from_slice(body).ok()?;
    let msg = e.err.or(e.message)?;
    Some((msg, e.ecode))
}

/// The `PUT /task/{id}` body for a patch's scalar fields (tags and custom fields go through
/// their own endpoints: Update Task ignores them). Empty when the patch has none.
pub(crate) fn update_body(p: &ClickUpPatch, add: &[i64], rem: &[i64]) -> Map<String, Value> {
    let mut b = Map::new();
    if let Some(n) = &p.name {
        b.insert("name".into(), json!(n));
    }
    if let Some(md) = &p.markdown {
        if md.trim().is_empty() {
            // ClickUp's documented way to clear a description is a single space.
            b.insert("description".into(), json!(" "));
        } else {
            b.insert("markdown_content".into(), json!(md));
        }
    }
    if let Some(s) = &p.status {
        b.insert("status".into(), json!(s));
    }
    match &p.priority {
        Some(Some(n)) => {
            b.insert("priority".into(), json!(n));
        }
        Some(None) => {
            b.insert("priority".into(), Value::Null);
        }
        None => {}
    }
    match &p.due_date {
        Some(Some((ms, time))) => {
            b.insert("due_date".into(), json!(ms));
            b.insert("due_date_time".into(), json!(time));
        }
        Some(None) => {
            b.insert("due_date".into(), Value::Null);
        }
        None => {}
    }
    if let Some(parent) = &p.parent {
        b.insert("parent".into(), json!(parent));
    }
    if !add.is_empty() || !rem.is_empty() {
        // ClickUp wants both keys.
        b.insert("assignees".into(), json!({"add": add, "rem": rem}));
    }
    b
}

/// The `POST /list/{id}/task` body.
pub(crate) fn create_body(
    c: &ClickUpCreate,
    assignee_ids: &[i64],
    backlink_field: Option<&str>,
) -> Result<Value, ApiError> {
    let p = &c.fields;
    let name = p.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::validation(
            &format!("create a ClickUp task for {}", c.backlink_url),
            "a task needs a name",
            Some("name"),
        ));
    }
    let mut b = update_body(
        &ClickUpPatch {
            assignees_add: Vec::new(),
            assignees_rem: Vec::new(),
            ..p.clone()
        },
        &[],
        &[],
    );
    b.insert("name".into(), json!(p.name.clone().unwrap_or_default()));
    // A clear means nothing on a new task.
    if b.get("priority") == Some(&Value::Null) {
        b.remove("priority");
    }
    if b.get("due_date") == Some(&Value::Null) {
        b.remove("due_date");
    }
    b.remove("description");
    if !assignee_ids.is_empty() {
        b.insert("assignees".into(), json!(assignee_ids));
    }
    let tags: Vec<&String> = p.tags_add.iter().filter(|t| !t.trim().is_empty()).collect();
    if !tags.is_empty() {
        b.insert("tags".into(), json!(tags));
    }
    if let Some(fid) = backlink_field {
        b.insert(
            "custom_fields".into(),
            json!([{"id": fid, "value": c.backlink_url}]),
        );
    }
    Ok(Value::Object(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(extra: Value) -> Value {
        let mut t = json!({
            "id": "abc", "name": "N", "status": {"status": "in progress", "type": "custom", "orderindex": "2.5"},
            "date_created": "1700000000000", "date_updated": 1700000000500i64,
            "list": {"id": 900}, "archived": null, "tags": null, "assignees": [
                {"id": "42", "email": "A@X.com", "username": "a"}
            ]
        });
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    }

    #[test]
    fn tolerant_numbers_and_nulls() {
        let body = task(
            json!({"priority": {"id": "2", "priority": "high"}, "time_estimate": "8640000",
            "orderindex": 1.5, "due_date": "1508369194377", "due_date_time": false}),
        );
        let r = decode_task(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(r.date_created, 1_700_000_000_000);
        assert_eq!(r.date_updated, 1_700_000_000_500);
        assert_eq!(r.list_id, "900");
        assert_eq!(r.priority, Some(2));
        assert_eq!(r.due_date, Some(1_508_369_194_377));
        assert_eq!(r.due_date_time, Some(false));
        assert_eq!(r.assignees[0].id, 42);
        assert_eq!(r.assignees[0].email, "a@x.com");
        assert!(r.tags.is_empty());
        assert!(!r.archived);
        assert_eq!(r.url, "https://app.clickup.com/t/abc");
        for (p, want) in [
            (json!(1), Some(1)),
            (json!("4"), Some(4)),
            (json!(null), None),
            (json!({"priority": "urgent"}), Some(1)),
        ] {
            let r = decode_task(task(json!({"priority": p})).to_string().as_bytes(), None).unwrap();
            assert_eq!(r.priority, want);
        }
    }

    #[test]
    fn a_bad_task_fails_alone() {
        let body =
            json!({"tasks": [task(json!({})), {"id": "bad", "name": "x"}], "last_page": true});
        let page = decode_tasks_page(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(page.tasks.len(), 1);
        assert_eq!(page.failed.len(), 1);
        assert_eq!(page.failed[0].0, "bad");
        assert!(
            page.failed[0].1.to_string().contains("task bad"),
            "{}",
            page.failed[0].1
        );
        assert_eq!(page.len, 2);
        assert_eq!(page.last_page, Some(true));
    }

    #[test]
    fn update_body_sends_scalars_only() {
        let p = ClickUpPatch {
            name: Some("N".into()),
            markdown: Some(String::new()),
            priority: Some(None),
            due_date: Some(Some((1_700_000_000_000, true))),
            tags_add: vec!["t".into()],
            ..Default::default()
        };
        let b = Value::Object(update_body(&p, &[1], &[]));
        assert_eq!(
            b,
            json!({"name": "N", "description": " ", "priority": null, "due_date": 1_700_000_000_000i64,
                   "due_date_time": true, "assignees": {"add": [1], "rem": []}})
        );
    }

    #[test]
    fn create_body_has_backlink_tags_and_assignees() {
        let c = ClickUpCreate {
            list_id: "1".into(),
            fields: ClickUpPatch {
                name: Some("T".into()),
                markdown: Some("**b**".into()),
                status: Some("to do".into()),
                priority: Some(Some(3)),
                tags_add: vec!["x".into()],
                assignees_add: vec!["a@x.com".into()],
                parent: Some("p1".into()),
                ..Default::default()
            },
            backlink_url: "https://dev.azure.com/o/p/_workitems/edit/5".into(),
        };
        let b = create_body(&c, &[42], Some("f-1")).unwrap();
        assert_eq!(
            b,
            json!({"name": "T", "markdown_content": "**b**", "status": "to do", "priority": 3,
                   "parent": "p1", "assignees": [42], "tags": ["x"],
                   "custom_fields": [{"id": "f-1", "value": "https://dev.azure.com/o/p/_workitems/edit/5"}]})
        );
        let mut nameless = c.clone();
        nameless.fields.name = None;
        assert_eq!(
            create_body(&nameless, &[], None).unwrap_err().kind(),
            "validation"
        );
    }
}
