//! The HTTP surface: `/api/v2/...` as ClickUp answers it, and the control API `/__sim/...`.
//!
//! Error bodies are `{"err", "ECODE"}` as FACTS §2 shows. The ECODEs of 401s (OAUTH_017 /
//! OAUTH_019 / OAUTH_027), 404 ITEM_015 and 429 come from FACTS and public reports; the
//! others (validation errors) are sim-chosen: the real codes are not documented, so clients
//! must branch on the HTTP status, never on these codes.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::state::{
    member_json, ApiError, ClickUpSeed, OrderBy, Patch, SimTaskEdit, SimTaskInput, TaskQuery,
    Webhook,
};
use super::{Inner, RateLimit};
use crate::sim::common::{lock, observe, FaultRule, Observer};

type App = Arc<Inner>;
type ApiResult = Result<Response, ApiError>;

/// Marks a "task not found" answer so [`gate`] can restate it as the real API often does.
#[derive(Clone, Copy)]
struct TaskNotFound;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        if self.ecode == "ITEM_015" {
            r.extensions_mut().insert(TaskNotFound);
        }
        r
    }
}

/// The body of an injected fault status, shaped like ClickUp's answers: JSON errors from the
/// API, an HTML page from the load balancer for gateway errors.
fn fault_body(status: StatusCode) -> Response {
    match status.as_u16() {
        429 => {
            let mut r = (status, Json(rate_limited_body())).into_response();
            let reset = chrono::Utc::now().timestamp() + 60;
            let h = r.headers_mut();
            h.insert("x-ratelimit-limit", 100.into());
            h.insert("x-ratelimit-remaining", 0.into());
            h.insert("x-ratelimit-reset", reset.into());
            r
        }
        502..=504 => (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            format!(
                "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>",
                status
            ),
        )
            .into_response(),
        _ => (
            status,
            Json(json!({"err": status.canonical_reason().unwrap_or("Error"), "ECODE": "APP_001"})),
        )
            .into_response(),
    }
}

fn rate_limited_body() -> Value {
    json!({"err": "Rate limit reached", "ECODE": "APP_002"})
}

pub(crate) fn router(inner: App) -> Router {
    let api = Router::new()
        .route("/api/v2/team", get(teams))
        .route("/api/v2/user", get(user))
        .route("/api/v2/team/{team_id}/task", get(team_tasks))
        .route(
            "/api/v2/team/{team_id}/webhook",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/api/v2/webhook/{webhook_id}",
            put(update_webhook).delete(delete_webhook),
        )
        .route("/api/v2/list/{list_id}", get(get_list))
        .route("/api/v2/list/{list_id}/field", get(list_fields))
        .route(
            "/api/v2/list/{list_id}/task",
            get(list_tasks).post(create_task),
        )
        .route(
            "/api/v2/task/{task_id}",
            get(get_task).put(update_task).delete(delete_task),
        )
        .route(
            "/api/v2/task/{task_id}/tag/{tag_name}",
            post(add_tag).delete(remove_tag),
        )
        .route(
            "/api/v2/task/{task_id}/field/{field_id}",
            post(set_field).delete(clear_field),
        )
        .route(
            "/api/v2/task/{task_id}/comment",
            get(get_comments).post(post_comment),
        )
        .fallback(not_found)
        .layer(from_fn_with_state(inner.clone(), gate));
    let control = Router::new()
        .route("/__sim/seed", post(c_seed))
        .route("/__sim/reset", post(c_reset))
        .route("/__sim/create", post(c_create))
        .route("/__sim/edit", post(c_edit))
        .route("/__sim/delete", post(c_delete))
        .route("/__sim/comment", post(c_comment))
        .route("/__sim/state", get(c_state))
        .route("/__sim/log", get(c_log))
        .route("/__sim/faults", post(c_add_fault).delete(c_clear_faults))
        .route("/__sim/clock", post(c_clock))
        .route("/__sim/ratelimit", post(c_ratelimit));
    let observer = Observer {
        log: inner.log.clone(),
        faults: inner.faults.clone(),
        error_body: fault_body,
        control_prefix: "/__sim",
        clock: inner.clock.clone(),
    };
    Router::new()
        .merge(api)
        .merge(control)
        .with_state(inner)
        .layer(from_fn_with_state(observer, observe))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Route not found", "APP_001")
}

/// Rate limit (per presented token, so every answer carries the headers), then auth.
async fn gate(State(inner): State<App>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string());
    let decision = inner
        .limiter
        .check(auth.as_deref().unwrap_or(""), inner.clock.now_ms());
    let mut resp = if !decision.allowed {
        (StatusCode::TOO_MANY_REQUESTS, Json(rate_limited_body())).into_response()
    } else {
        match auth {
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Authorization header required",
                "OAUTH_017",
            )
            .into_response(),
            Some(a) if !inner.token_ok(&a) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Oauth token not found",
                "OAUTH_019",
            )
            .into_response(),
            Some(_) => {
                let r = next.run(req).await;
                if inner.opts.missing_task_as_401 && r.extensions().get::<TaskNotFound>().is_some()
                {
                    ApiError::new(StatusCode::UNAUTHORIZED, "Team not authorized", "OAUTH_027")
                        .into_response()
                } else {
                    r
                }
            }
        }
    };
    decision.apply_headers(resp.headers_mut());
    resp
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn check_team(inner: &Inner, team_id: &str) -> Result<(), ApiError> {
    if team_id == inner.opts.team_id {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Team not authorized",
            "OAUTH_027",
        ))
    }
}

// ---------------------------------------------------------------- query and body parsing

fn pairs(q: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn bad_param(name: &str) -> ApiError {
    ApiError::bad(
        format!("Invalid value for query parameter {name}"),
        "INPUT_001",
    )
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad_param(name)),
    }
}

fn parse_i64(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse().map_err(|_| bad_param(name))
}

fn bool_param(p: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match p.iter().rev().find(|(k, _)| k == name) {
        Some((_, v)) => parse_bool(name, v),
        None => Ok(false),
    }
}

/// Parses the task-query parameters. `bare_arrays` accepts `statuses=` as well as
/// `statuses[]=` (Get Tasks' spec names have no brackets but its examples do, FACTS §5);
/// the team endpoint only knows the bracketed names.
fn task_query(p: &[(String, String)], bare_arrays: bool) -> Result<TaskQuery, ApiError> {
    let mut q = TaskQuery::default();
    for (k, v) in p {
        let array_key = k
            .strip_suffix("[]")
            .or(if bare_arrays { Some(k.as_str()) } else { None });
        match (k.as_str(), array_key) {
            ("page", _) => q.page = v.parse().map_err(|_| bad_param("page"))?,
            ("order_by", _) => {
                q.order_by = match v.as_str() {
                    "id" => OrderBy::Id,
                    "created" => OrderBy::Created,
                    "updated" => OrderBy::Updated,
                    "due_date" => OrderBy::DueDate,
                    _ => return Err(bad_param("order_by")),
                }
            }
            ("reverse", _) => q.reverse = parse_bool(k, v)?,
            ("subtasks", _) => q.subtasks = parse_bool(k, v)?,
            ("include_closed", _) => q.include_closed = parse_bool(k, v)?,
            ("parent", _) => q.parent = Some(v.clone()),
            ("date_updated_gt", _) => q.date_updated_gt = Some(parse_i64(k, v)?),
            ("date_updated_lt", _) => q.date_updated_lt = Some(parse_i64(k, v)?),
            ("date_created_gt", _) => q.date_created_gt = Some(parse_i64(k, v)?),
            ("date_created_lt", _) => q.date_created_lt = Some(parse_i64(k, v)?),
            ("due_date_gt", _) => q.due_date_gt = Some(parse_i64(k, v)?),
            ("due_date_lt", _) => q.due_date_lt = Some(parse_i64(k, v)?),
            ("date_done_gt", _) => q.date_done_gt = Some(parse_i64(k, v)?),
            ("date_done_lt", _) => q.date_done_lt = Some(parse_i64(k, v)?),
            (_, Some("list_ids")) if !bare_arrays => q.list_ids.push(v.clone()),
            (_, Some("space_ids")) if !bare_arrays => q.space_ids.push(v.clone()),
            (_, Some("project_ids")) if !bare_arrays => q.project_ids.push(v.clone()),
            (_, Some("statuses")) => q.statuses.push(v.clone()),
            (_, Some("tags")) => q.tags.push(v.clone()),
            (_, Some("assignees")) => q.assignees.push(parse_i64("assignees", v)?),
            _ => {}
        }
    }
    Ok(q)
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad(
            "Request body is not a JSON object",
            "INPUT_002",
        )),
    }
}

fn wrong_type(key: &str, what: &str) -> ApiError {
    ApiError::bad(format!("{key} must be {what}"), "INPUT_004")
}

/// Absent or null → None.
fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(key, "a boolean")),
    }
}

/// Absent → None; null → Some(None); an integer → Some(Some(n)).
fn opt_int(m: &Map<String, Value>, key: &str) -> Result<Option<Option<i64>>, ApiError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_i64()
            .map(|n| Some(Some(n)))
            .ok_or_else(|| wrong_type(key, "an integer")),
    }
}

fn opt_num(m: &Map<String, Value>, key: &str) -> Result<Option<Option<f64>>, ApiError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_f64()
            .map(|n| Some(Some(n)))
            .ok_or_else(|| wrong_type(key, "a number")),
    }
}

fn opt_priority(m: &Map<String, Value>) -> Result<Option<Option<u8>>, ApiError> {
    match opt_int(m, "priority")? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(p)) if (1..=4).contains(&p) => Ok(Some(Some(p as u8))),
        Some(Some(_)) => Err(ApiError::bad("Priority invalid", "INPUT_003")),
    }
}

fn int_array(v: &Value, key: &str) -> Result<Vec<i64>, ApiError> {
    v.as_array()
        .ok_or_else(|| wrong_type(key, "an array of integers"))?
        .iter()
        .map(|x| {
            x.as_i64()
                .ok_or_else(|| wrong_type(key, "an array of integers"))
        })
        .collect()
}

/// `markdown_content` wins over `description` (FACTS §8). `description` is plain text; a
/// lone space clears it (FACTS §9).
fn description(m: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    if let Some(md) = opt_str(m, "markdown_content")? {
        return Ok(Some(md));
    }
    Ok(opt_str(m, "description")?.map(|d| {
        if d.trim().is_empty() {
            String::new()
        } else {
            d
        }
    }))
}

// ---------------------------------------------------------------- hierarchy and users

async fn teams(State(inner): State<App>) -> ApiResult {
    let st = lock(&inner.state);
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| {
            let mut u = member_json(m);
            u["role"] = json!(3);
            json!({"user": u})
        })
        .collect();
    ok(json!({"teams": [{
        "id": st.team_id,
        "name": st.team_name,
        "color": "#7b68ee",
        "avatar": null,
        "members": members,
    }]}))
}

async fn user(State(inner): State<App>) -> ApiResult {
    let st = lock(&inner.state);
    let me = st.me().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Oauth token not found",
            "OAUTH_019",
        )
    })?;
    let mut u = member_json(me);
    u["week_start_day"] = json!(0);
    u["global_font_support"] = json!(false);
    u["timezone"] = json!("Etc/UTC");
    ok(json!({"user": u}))
}

async fn get_list(State(inner): State<App>, Path(list_id): Path<String>) -> ApiResult {
    let st = lock(&inner.state);
    let l = st
        .list(&list_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "List not found", "ITEM_013"))?;
    ok(st.list_json(l))
}

async fn list_fields(State(inner): State<App>, Path(list_id): Path<String>) -> ApiResult {
    let st = lock(&inner.state);
    let l = st
        .list(&list_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "List not found", "ITEM_013"))?;
    let fields: Vec<Value> = l
        .custom_fields
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "name": f.name, "type": f.type_, "type_config": f.type_config,
                "date_created": "1700000000000", "hide_from_guests": false, "required": f.required,
            })
        })
        .collect();
    ok(json!({"fields": fields}))
}

// ---------------------------------------------------------------- task reads

async fn team_tasks(
    State(inner): State<App>,
    Path(team_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check_team(&inner, &team_id)?;
    let p = pairs(q);
    let query = task_query(&p, false)?;
    let md = bool_param(&p, "include_markdown_description")?;
    let st = lock(&inner.state);
    let (page, last) = st.query(&query, inner.opts.page_size);
    let tasks: Vec<Value> = page.iter().map(|t| st.render(t, md)).collect();
    ok(json!({"tasks": tasks, "last_page": last}))
}

async fn list_tasks(
    State(inner): State<App>,
    Path(list_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = pairs(q);
    let mut query = task_query(&p, true)?;
    query.archived = bool_param(&p, "archived")?;
    query.home_list = Some(list_id.clone());
    let md = bool_param(&p, "include_markdown_description")?;
    let st = lock(&inner.state);
    if st.list(&list_id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "List not found",
            "ITEM_013",
        ));
    }
    let (page, last) = st.query(&query, inner.opts.page_size);
    let tasks: Vec<Value> = page.iter().map(|t| st.render(t, md)).collect();
    ok(json!({"tasks": tasks, "last_page": last}))
}

fn render_task(inner: &Inner, id: &str, md: bool, subtasks: bool) -> ApiResult {
    let st = lock(&inner.state);
    let t = st.get(id).ok_or_else(super::state::task_not_found)?;
    let mut v = st.render(t, md);
    if subtasks {
        let subs: Vec<Value> = st
            .tasks
            .iter()
            .filter(|s| !s.deleted && s.parent.as_deref() == Some(id))
            .map(|s| st.render(s, false))
            .collect();
        v["subtasks"] = json!(subs);
    }
    ok(v)
}

async fn get_task(
    State(inner): State<App>,
    Path(task_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = pairs(q);
    let md = bool_param(&p, "include_markdown_description")?;
    let subs = bool_param(&p, "include_subtasks")?;
    render_task(&inner, &task_id, md, subs)
}

// ---------------------------------------------------------------- task writes

async fn create_task(
    State(inner): State<App>,
    Path(list_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let m = body_object(&body)?;
    let name =
        opt_str(&m, "name")?.ok_or_else(|| ApiError::bad("Task name invalid", "INPUT_005"))?;
    let mut input = SimTaskInput {
        name,
        markdown: description(&m)?.unwrap_or_default(),
        status: opt_str(&m, "status")?,
        priority: opt_priority(&m)?.flatten(),
        due_ms: opt_int(&m, "due_date")?.flatten(),
        due_time: opt_bool(&m, "due_date_time")?.unwrap_or(false),
        start_ms: opt_int(&m, "start_date")?.flatten(),
        start_time: opt_bool(&m, "start_date_time")?.unwrap_or(false),
        points: opt_num(&m, "points")?.flatten(),
        time_estimate_ms: opt_int(&m, "time_estimate")?.flatten(),
        parent: opt_str(&m, "parent")?,
        archived: opt_bool(&m, "archived")?.unwrap_or(false),
        ..SimTaskInput::default()
    };
    if let Some(a) = m.get("assignees").filter(|v| !v.is_null()) {
        input.assignees = int_array(a, "assignees")?;
    }
    if let Some(t) = m.get("tags").filter(|v| !v.is_null()) {
        let arr = t
            .as_array()
            .ok_or_else(|| wrong_type("tags", "an array of strings"))?;
        for x in arr {
            let s = x
                .as_str()
                .ok_or_else(|| wrong_type("tags", "an array of strings"))?;
            input.tags.push(s.to_string());
        }
    }
    if let Some(cf) = m.get("custom_fields").filter(|v| !v.is_null()) {
        let arr = cf
            .as_array()
            .ok_or_else(|| wrong_type("custom_fields", "an array of {id, value}"))?;
        for f in arr {
            let id = f
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| wrong_type("custom_fields", "an array of {id, value}"))?;
            input.custom_fields.insert(
                id.to_string(),
                f.get("value").cloned().unwrap_or(Value::Null),
            );
        }
    }
    let id = inner.create(&list_id, input)?;
    render_task(&inner, &id, true, false)
}

async fn update_task(
    State(inner): State<App>,
    Path(task_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let m = body_object(&body)?;
    // `tags` and `custom_fields` are not Update Task fields: the real API ignores them
    // silently (FACTS §9), and so does this one.
    let mut patch = Patch {
        name: opt_str(&m, "name")?,
        markdown: description(&m)?,
        status: opt_str(&m, "status")?,
        priority: opt_priority(&m)?,
        due: opt_int(&m, "due_date")?,
        due_time: opt_bool(&m, "due_date_time")?,
        start: opt_int(&m, "start_date")?,
        start_time: opt_bool(&m, "start_date_time")?,
        points: opt_num(&m, "points")?,
        time_estimate: opt_int(&m, "time_estimate")?,
        archived: opt_bool(&m, "archived")?,
        ..Patch::default()
    };
    if m.contains_key("name") && patch.name.is_none() {
        return Err(ApiError::bad("Task name invalid", "INPUT_005"));
    }
    match m.get("parent") {
        None => {}
        Some(Value::String(p)) => patch.parent = Some(Some(p.clone())),
        Some(Value::Null) => {
            return Err(ApiError::bad(
                "Parent cannot be set to null; a subtask cannot be made a task through the API",
                "ITEM_137",
            ))
        }
        Some(_) => return Err(wrong_type("parent", "a task id")),
    }
    if let Some(a) = m.get("assignees").filter(|v| !v.is_null()) {
        let (Some(add), Some(rem)) = (a.get("add"), a.get("rem")) else {
            return Err(wrong_type("assignees", "an object with both add and rem"));
        };
        patch.assignees_add = int_array(add, "assignees.add")?;
        patch.assignees_rem = int_array(rem, "assignees.rem")?;
    }
    inner.apply(&task_id, patch)?;
    render_task(&inner, &task_id, true, false)
}

async fn delete_task(State(inner): State<App>, Path(task_id): Path<String>) -> ApiResult {
    inner.delete(&task_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_tag(
    State(inner): State<App>,
    Path((task_id, tag)): Path<(String, String)>,
) -> ApiResult {
    inner.apply(
        &task_id,
        Patch {
            tags_add: vec![tag],
            ..Patch::default()
        },
    )?;
    ok(json!({}))
}

async fn remove_tag(
    State(inner): State<App>,
    Path((task_id, tag)): Path<(String, String)>,
) -> ApiResult {
    inner.apply(
        &task_id,
        Patch {
            tags_rem: vec![tag],
            ..Patch::default()
        },
    )?;
    ok(json!({}))
}

async fn set_field(
    State(inner): State<App>,
    Path((task_id, field_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let m = body_object(&body)?;
    let value = m
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::bad("value is required", "FIELD_010"))?;
    inner.apply(
        &task_id,
        Patch {
            fields: vec![(field_id, value)],
            ..Patch::default()
        },
    )?;
    ok(json!({}))
}

async fn clear_field(
    State(inner): State<App>,
    Path((task_id, field_id)): Path<(String, String)>,
) -> ApiResult {
    inner.apply(
        &task_id,
        Patch {
            fields: vec![(field_id, Value::Null)],
            ..Patch::default()
        },
    )?;
    ok(json!({}))
}

// ---------------------------------------------------------------- comments

const COMMENTS_PER_PAGE: usize = 25;

async fn get_comments(
    State(inner): State<App>,
    Path(task_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = pairs(q);
    let get = |k: &str| p.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let start = get("start").map(|v| parse_i64("start", &v)).transpose()?;
    let start_id = get("start_id")
        .map(|v| parse_i64("start_id", &v))
        .transpose()?;
    let st = lock(&inner.state);
    st.get(&task_id).ok_or_else(super::state::task_not_found)?;
    let all = st.comments.get(&task_id).map(Vec::as_slice).unwrap_or(&[]);
    // Newest first; a page continues strictly after (start, start_id) in that order.
    let mut sorted: Vec<_> = all.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse((c.date_ms, c.id)));
    let page: Vec<Value> = sorted
        .into_iter()
        .filter(|c| match (start, start_id) {
            (Some(s), Some(i)) => (c.date_ms, c.id) < (s, i),
            (Some(s), None) => c.date_ms < s,
            _ => true,
        })
        .take(COMMENTS_PER_PAGE)
        .map(|c| st.comment_json(c))
        .collect();
    ok(json!({"comments": page}))
}

async fn post_comment(
    State(inner): State<App>,
    Path(task_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let m = body_object(&body)?;
    let text = opt_str(&m, "comment_text")?
        .ok_or_else(|| ApiError::bad("comment_text is required", "INPUT_006"))?;
    let c = inner.comment(&task_id, &text)?;
    ok(json!({"id": c.id.to_string(), "hist_id": c.hist_id.to_string(), "date": c.date_ms}))
}

// ---------------------------------------------------------------- webhooks

fn webhook_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Webhook not found", "WH_001")
}

fn events_from(v: &Value) -> Result<Vec<String>, ApiError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec!["*".into()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(String::from)
                    .ok_or_else(|| wrong_type("events", "an array of event names"))
            })
            .collect(),
        _ => Err(wrong_type("events", "\"*\" or an array of event names")),
    }
}

fn random_uuid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn create_webhook(
    State(inner): State<App>,
    Path(team_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    check_team(&inner, &team_id)?;
    let m = body_object(&body)?;
    let endpoint = opt_str(&m, "endpoint")?
        .filter(|e| url::Url::parse(e).is_ok())
        .ok_or_else(|| wrong_type("endpoint", "a URL"))?;
    let events = events_from(m.get("events").unwrap_or(&Value::Null))?;
    let loc = |k: &str| -> Result<Option<i64>, ApiError> { Ok(opt_int(&m, k)?.flatten()) };
    let wh = Webhook {
        id: random_uuid(),
        userid: 0,
        endpoint,
        events,
        secret: Alphanumeric
            .sample_string(&mut rand::rng(), 64)
            .to_uppercase(),
        task_id: opt_str(&m, "task_id")?,
        list_id: loc("list_id")?,
        folder_id: loc("folder_id")?,
        space_id: loc("space_id")?,
        status: "active".into(),
        fail_count: 0,
    };
    let mut st = lock(&inner.state);
    let wh = Webhook {
        userid: st.me().map(|m| m.id).unwrap_or(0),
        ..wh
    };
    inner
        .hooks
        .register(Arc::downgrade(&inner), inner.client.clone(), &wh);
    let body = json!({"id": wh.id, "webhook": wh.to_json(&st.team_id)});
    st.webhooks.push(wh);
    ok(body)
}

async fn list_webhooks(State(inner): State<App>, Path(team_id): Path<String>) -> ApiResult {
    check_team(&inner, &team_id)?;
    let st = lock(&inner.state);
    let hooks: Vec<Value> = st.webhooks.iter().map(|w| w.to_json(&st.team_id)).collect();
    ok(json!({"webhooks": hooks}))
}

async fn update_webhook(
    State(inner): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let m = body_object(&body)?;
    let endpoint = opt_str(&m, "endpoint")?;
    let events = m.get("events").map(events_from).transpose()?;
    let status = opt_str(&m, "status")?;
    let mut st = lock(&inner.state);
    let team = st.team_id.clone();
    let wh = st
        .webhooks
        .iter_mut()
        .find(|w| w.id == id)
        .ok_or_else(webhook_not_found)?;
    if let Some(e) = endpoint {
        wh.endpoint = e;
    }
    if let Some(e) = events {
        wh.events = e;
    }
    if let Some(s) = status {
        wh.status = s;
        if wh.status == "active" {
            wh.fail_count = 0;
        }
    }
    // Restart the worker so a new endpoint takes effect.
    let snapshot = wh.clone();
    inner.hooks.remove(&id);
    inner
        .hooks
        .register(Arc::downgrade(&inner), inner.client.clone(), &snapshot);
    ok(json!({"id": snapshot.id, "webhook": snapshot.to_json(&team)}))
}

async fn delete_webhook(State(inner): State<App>, Path(id): Path<String>) -> ApiResult {
    let mut st = lock(&inner.state);
    let before = st.webhooks.len();
    st.webhooks.retain(|w| w.id != id);
    if st.webhooks.len() == before {
        return Err(webhook_not_found());
    }
    inner.hooks.remove(&id);
    ok(json!({}))
}

// ---------------------------------------------------------------- control API

/// A refused control request: 400 `{"error": "..."}`.
struct ControlError(String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({"error": self.0}))).into_response()
    }
}

fn ctl(e: impl std::fmt::Display) -> ControlError {
    ControlError(e.to_string())
}

type ControlResult = Result<Json<Value>, ControlError>;

fn parse_control<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| ctl(format!("bad control request: {e}")))
}

async fn c_seed(State(inner): State<App>, body: Bytes) -> ControlResult {
    let seed: ClickUpSeed = parse_control(&body)?;
    let ids = inner.seed(seed).map_err(ctl)?;
    Ok(Json(json!({"ids": ids})))
}

async fn c_reset(State(inner): State<App>) -> ControlResult {
    inner.reset();
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct CreateReq {
    list_id: String,
    #[serde(flatten)]
    input: SimTaskInput,
}

async fn c_create(State(inner): State<App>, body: Bytes) -> ControlResult {
    let req: CreateReq = parse_control(&body)?;
    let id = inner.create(&req.list_id, req.input).map_err(ctl)?;
    Ok(Json(json!({"id": id})))
}

#[derive(Deserialize)]
struct EditReq {
    id: String,
    #[serde(flatten)]
    edit: SimTaskEdit,
}

async fn c_edit(State(inner): State<App>, body: Bytes) -> ControlResult {
    let req: EditReq = parse_control(&body)?;
    inner.apply(&req.id, req.edit.into()).map_err(ctl)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct IdReq {
    id: String,
    #[serde(default)]
    text: String,
}

async fn c_delete(State(inner): State<App>, body: Bytes) -> ControlResult {
    let req: IdReq = parse_control(&body)?;
    inner.delete(&req.id).map_err(ctl)?;
    Ok(Json(json!({})))
}

async fn c_comment(State(inner): State<App>, body: Bytes) -> ControlResult {
    let req: IdReq = parse_control(&body)?;
    let c = inner.comment(&req.id, &req.text).map_err(ctl)?;
    Ok(Json(json!({"id": c.id.to_string()})))
}

async fn c_state(State(inner): State<App>) -> ControlResult {
    let st = lock(&inner.state);
    let tasks: Vec<_> = st.tasks.iter().filter(|t| !t.deleted).collect();
    Ok(Json(json!({
        "team_id": st.team_id,
        "members": st.members,
        "lists": st.lists,
        "tasks": tasks,
        "comments": st.comments,
        "webhooks": st.webhooks,
        "now_ms": inner.clock.now_ms(),
    })))
}

async fn c_log(State(inner): State<App>) -> ControlResult {
    Ok(Json(json!({"requests": inner.log.entries()})))
}

async fn c_add_fault(State(inner): State<App>, body: Bytes) -> ControlResult {
    let rule: FaultRule = parse_control(&body)?;
    inner.faults.add(rule);
    Ok(Json(json!({})))
}

async fn c_clear_faults(State(inner): State<App>) -> ControlResult {
    inner.faults.clear();
    Ok(Json(json!({})))
}

/// `{"offset_ms": n}` shifts the clock; `{"freeze": ms | true | false | null}` freezes it at
/// an instant (or now), or unfreezes it; `{"advance_ms": n}` moves it forward.
async fn c_clock(State(inner): State<App>, body: Bytes) -> ControlResult {
    let m: Map<String, Value> = parse_control(&body)?;
    if let Some(off) = m.get("offset_ms") {
        let o = off
            .as_i64()
            .ok_or_else(|| ctl("offset_ms must be an integer"))?;
        inner.clock.set_offset(chrono::Duration::milliseconds(o));
    }
    if let Some(f) = m.get("freeze") {
        let at = match f {
            Value::Null | Value::Bool(false) => None,
            Value::Bool(true) => Some(inner.clock.now()),
            v => Some(
                v.as_i64()
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .ok_or_else(|| ctl("freeze must be ms, true, false or null"))?,
            ),
        };
        inner.clock.freeze(at);
    }
    if let Some(a) = m.get("advance_ms") {
        let ms = a
            .as_i64()
            .ok_or_else(|| ctl("advance_ms must be an integer"))?;
        inner.clock.advance(chrono::Duration::milliseconds(ms));
    }
    Ok(Json(json!({"now_ms": inner.clock.now_ms()})))
}

#[derive(Deserialize)]
struct RateReq {
    limit: u32,
    window_ms: u64,
}

async fn c_ratelimit(State(inner): State<App>, body: Bytes) -> ControlResult {
    let r: RateReq = parse_control(&body)?;
    inner.limiter.set(RateLimit {
        limit: r.limit,
        window: std::time::Duration::from_millis(r.window_ms),
    });
    Ok(Json(json!({})))
}
