//! The ClickUp HTTP client (API v2).
use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::mapping;
use super::{
    ClickUpComment, ClickUpConfig, ClickUpCustomField, ClickUpList, ClickUpWebhook, TokenKind,
};
use crate::core::model::{
    ClickUpCreate, ClickUpId, ClickUpPatch, ClickUpRecord, ClickUpUser, Side,
};
use crate::remote::{
    rate_limit_wait, snippet, ApiError, ApiStats, Call, Failure, HeaderRules, HttpPolicy, Reply,
    Transport,
};

/// The filtered team tasks endpoint answers at most 100 tasks per page.
const PAGE_SIZE: usize = 100;
/// Comments come 25 per page.
const COMMENT_PAGE: usize = 25;
/// A runaway pager stops here (10,000 pages = a million tasks).
const MAX_PAGES: usize = 10_000;

/// The result of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskPoll {
    /// Each task once (the newest version seen when pages overlapped).
    pub tasks: Vec<ClickUpRecord>,
    /// Tasks whose JSON could not be mapped: each fails alone, with the reason.
    pub failed: Vec<(ClickUpId, ApiError)>,
    /// Requests made.
    pub pages: usize,
    /// The service's clock (ms, whole seconds) when it answered the first page.
    pub server_time_ms: Option<i64>,
}

impl TaskPoll {
    /// The largest `date_updated` seen (server time).
    pub fn max_date_updated(&self) -> Option<i64> {
        self.tasks.iter().map(|t| t.date_updated).max()
    }

    /// The next cursor: the service's time of the first page, or the newest change seen when
    /// that is later. Taking the service's time lets the re-read window behind the cursor
    /// age out once nothing changes (the newest change alone would keep the last burst in
    /// it forever); a change committed before that time but not yet visible is caught by
    /// that window.
    pub fn next_cursor(&self) -> Option<i64> {
        match (self.server_time_ms, self.max_date_updated()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Why the configured back-link field could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LinkFieldError {
    #[error(
        "config key `clickup.link_field`: no custom field named or with id {field:?} in the \
         pairs' ClickUp lists ({lists}). Fix: create a URL custom field with that name, or \
         remove the key to recover creates by exact name instead"
    )]
    NotFound { field: String, lists: String },
    #[error("looking up the ClickUp link field: {0}")]
    Api(ApiError),
}

/// The ClickUp client. Cheap to share behind an `Arc`; `Debug` never shows the token.
pub struct ClickUpClient {
    base: url::Url,
    team_id: String,
    /// The back-link field's id: from the config, or found by [`Self::resolve_link_field`].
    backlink_field_id: std::sync::OnceLock<String>,
    /// The field (name or id) to look up in these lists while the id is unknown.
    link_field_search: Option<(String, Vec<String>)>,
    http: Transport,
    /// The token's own user, once verified (tells a vanished task from a bad token).
    me: tokio::sync::OnceCell<ClickUpUser>,
    members: tokio::sync::Mutex<Option<Vec<ClickUpUser>>>,
}

impl std::fmt::Debug for ClickUpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickUpClient")
            .field("base", &self.base.as_str())
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

/// Field names ClickUp's 400 messages mention, to say which field was refused.
const FIELD_WORDS: [&str; 8] = [
    "status",
    "priority",
    "assignee",
    "name",
    "parent",
    "due_date",
    "tag",
    "custom field",
];

fn classify(f: &Failure<'_>, _policy: &HttpPolicy) -> ApiError {
    let op = f.op.to_string();
    let message = match mapping::decode_error(f.body) {
        Some((m, Some(code))) => format!("{m} ({code})"),
        Some((m, None)) => m,
        None => {
            let s = snippet(f.body);
            if s.trim().is_empty() {
                format!("HTTP {} with an empty body", f.status.as_u16())
            } else {
                format!("HTTP {}: {s}", f.status.as_u16())
            }
        }
    };
    match f.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Auth {
            op,
            status: f.status.as_u16(),
            message,
        },
        StatusCode::NOT_FOUND => ApiError::NotFound { op, message },
        StatusCode::CONFLICT => ApiError::Conflict { op, message },
        StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited {
            op,
            wait: rate_limit_wait(f.headers),
        },
        StatusCode::REQUEST_TIMEOUT => ApiError::Transient { op, message },
        s if s.is_server_error() => ApiError::Transient { op, message },
        _ => {
            let lower = message.to_lowercase();
            let field = FIELD_WORDS
                .iter()
                .find(|w| lower.contains(*w))
                .map(|w| w.replace(' ', "_"));
            ApiError::Validation { op, message, field }
        }
    }
}

/// ClickUp answers 401 "Team not authorized" (OAUTH_023…045) for a task the token cannot
/// reach, which is also what a deleted task looks like.
fn is_team_not_authorized(e: &ApiError) -> bool {
    let ApiError::Auth {
        status: 401,
        message,
        ..
    } = e
    else {
        return false;
    };
    if message.to_lowercase().contains("team not authorized") {
        return true;
    }
    let code = message
        .rsplit("(OAUTH_")
        .next()
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|n| n.parse::<u32>().ok());
    matches!(code, Some(23 | 26 | 27 | 29..=45)) && message.contains("(OAUTH_")
}

impl ClickUpClient {
    pub fn new(cfg: ClickUpConfig, stats: Arc<ApiStats>) -> Result<Self, ApiError> {
        let op = "configure the ClickUp client";
        let base = url::Url::parse(cfg.base_url.trim_end_matches('/')).map_err(|e| {
            ApiError::validation(op, format!("bad base URL: {e}"), Some("base_url"))
        })?;
        if base.cannot_be_a_base() {
            return Err(ApiError::validation(op, "bad base URL", Some("base_url")));
        }
        if cfg.team_id.trim().is_empty() {
            return Err(ApiError::validation(
                op,
                "team_id is required",
                Some("team_id"),
            ));
        }
        let token = cfg.token.expose_secret();
        let auth = match cfg.token_kind {
            TokenKind::Personal => token.to_string(),
            TokenKind::OAuth if token.starts_with("Bearer ") => token.to_string(),
            TokenKind::OAuth => format!("Bearer {token}"),
        };
        // ClickUp always limits per token: an unset limit means the plan default (100/min);
        // `Some(0)` turns the client-side limiter off.
        let mut policy = cfg.policy.clone();
        if policy.requests_per_minute.is_none() {
            policy.requests_per_minute = Some(100);
        }
        let http = Transport::new(
            Side::ClickUp,
            policy,
            stats,
            &auth,
            token,
            HeaderRules::ClickUp,
            classify,
        )?;
        Ok(ClickUpClient {
            base,
            team_id: cfg.team_id,
            backlink_field_id: cfg
                .backlink_field_id
                .filter(|f| !f.is_empty())
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
            link_field_search: None,
            http,
            me: tokio::sync::OnceCell::new(),
            members: tokio::sync::Mutex::new(None),
        })
    }

    pub fn stats(&self) -> &Arc<ApiStats> {
        self.http.stats()
    }

    /// The id of the back-link custom field, when one is configured.
    pub fn backlink_field_id(&self) -> Option<&str> {
        self.backlink_field_id.get().map(String::as_str)
    }

    /// Looks the back-link field up by name or id in `lists` (in that order) when
    /// [`Self::resolve_link_field`] is called, unless the config already gave its id.
    pub fn with_link_field_search(mut self, field: &str, lists: Vec<String>) -> Self {
        self.link_field_search = Some((field.trim().to_string(), lists));
        self
    }

    /// Finds the configured back-link field's id (a no-op once known). Until it is known no
    /// cycle may run: without it the back-links of existing tasks are invisible and their
    /// items would be created again.
    pub async fn resolve_link_field(&self) -> Result<(), LinkFieldError> {
        let Some((field, lists)) = &self.link_field_search else {
            return Ok(());
        };
        if self.backlink_field_id.get().is_some() {
            return Ok(());
        }
        for l in lists {
            let fields = self.custom_fields(l).await.map_err(LinkFieldError::Api)?;
            if let Some(f) = fields
                .into_iter()
                .find(|f| f.id == *field || f.name.trim().eq_ignore_ascii_case(field))
            {
                // A concurrent resolver found the same field; either value is the one.
                let _ = self.backlink_field_id.set(f.id);
                return Ok(());
            }
        }
        Err(LinkFieldError::NotFound {
            field: field.clone(),
            lists: lists.join(", "),
        })
    }

    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    fn url(&self, tail: &[&str], query: &[(&str, &str)]) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty().extend(["api", "v2"]).extend(tail);
        }
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u
    }

    async fn send(&self, call: Call) -> Result<Reply, ApiError> {
        self.http.execute(&call).await
    }

    /// Checks the token (`GET /user`) once and remembers its user.
    pub async fn verify_token(&self) -> Result<ClickUpUser, ApiError> {
        self.me
            .get_or_try_init(|| async {
                let op = "verify the ClickUp token".to_string();
                let reply = self
                    .send(Call::new(
                        Method::GET,
                        self.url(&["user"], &[]),
                        "user",
                        op.clone(),
                    ))
                    .await?;
                mapping::decode_user(&reply.body).map_err(|e| with_op(e, &op))
            })
            .await
            .cloned()
    }

    /// Tasks in the given lists updated after `since_ms` (strictly), closed tasks and
    /// subtasks included, with Markdown descriptions. An idle poll is one request.
    pub async fn changed_since(
        &self,
        list_ids: &[String],
        since_ms: i64,
    ) -> Result<TaskPoll, ApiError> {
        let since = since_ms.to_string();
        let op = format!("list ClickUp tasks updated after {since_ms}");
        // Newest first: a task updated while we page moves to a page already read (and its
        // new date is above every date seen, so the next poll gets it) instead of shifting
        // unread tasks onto pages already read.
        let params = [
            ("order_by", "updated"),
            ("reverse", "true"),
            ("date_updated_gt", since.as_str()),
        ];
        self.team_tasks(list_ids, &params, op).await
    }

    /// Tasks in the given lists created after `since_ms` (strictly), oldest first: where a
    /// create interrupted by a crash is searched for.
    pub async fn created_since(
        &self,
        list_ids: &[String],
        since_ms: i64,
    ) -> Result<TaskPoll, ApiError> {
        let since = since_ms.to_string();
        let op = format!("list ClickUp tasks created after {since_ms}");
        let params = [("order_by", "created"), ("date_created_gt", since.as_str())];
        self.team_tasks(list_ids, &params, op).await
    }

    /// Every task in the given lists (for sweeps), closed tasks and subtasks included.
    pub async fn list_all(&self, list_ids: &[String]) -> Result<TaskPoll, ApiError> {
        let op = format!("list all ClickUp tasks in lists {list_ids:?}");
        // Oldest first: new tasks land on the last page instead of shifting earlier ones.
        self.team_tasks(list_ids, &[("order_by", "created")], op)
            .await
    }

    async fn team_tasks(
        &self,
        list_ids: &[String],
        params: &[(&str, &str)],
        op: String,
    ) -> Result<TaskPoll, ApiError> {
        let mut out = TaskPoll::default();
        let mut index: HashMap<ClickUpId, usize> = HashMap::new();
        for page in 0..MAX_PAGES {
            let page_s = page.to_string();
            let mut q: Vec<(&str, &str)> = vec![
                ("page", page_s.as_str()),
                ("include_closed", "true"),
                ("subtasks", "true"),
                ("include_markdown_description", "true"),
            ];
            q.extend_from_slice(params);
            for l in list_ids {
                q.push(("list_ids[]", l.as_str()));
            }
            let url = self.url(&["team", &self.team_id, "task"], &q);
            let page_op = format!("{op}, page {page}");
            let reply = self
                .send(Call::new(Method::GET, url, "team.tasks", page_op.clone()))
                .await?;
            out.pages += 1;
            if out.server_time_ms.is_none() {
                out.server_time_ms = reply.date.map(|d| d.timestamp_millis());
            }
            let decoded = mapping::decode_tasks_page(&reply.body, self.backlink_field_id())
                .map_err(|e| with_op(e, &page_op))?;
            for t in decoded.tasks {
                match index.get(&t.id) {
                    Some(&i) => {
                        if t.date_updated > out.tasks[i].date_updated {
                            out.tasks[i] = t;
                        }
                    }
                    None => {
                        index.insert(t.id.clone(), out.tasks.len());
                        out.tasks.push(t);
                    }
                }
            }
            for (id, e) in decoded.failed {
                if !out.failed.iter().any(|(f, _)| *f == id) {
                    out.failed.push((id, e));
                }
            }
            let done = match decoded.last_page {
                Some(last) => last || decoded.len == 0,
                None => decoded.len < PAGE_SIZE,
            };
            if done {
                return Ok(out);
            }
        }
        Err(ApiError::protocol(
            &op,
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    /// One task. Gone (404, or 401 "Team not authorized" while the token itself is valid):
    /// [`ApiError::NotFound`].
    pub async fn get_task(&self, id: &str) -> Result<ClickUpRecord, ApiError> {
        let op = format!("read ClickUp task {id}");
        let url = self.url(&["task", id], &[("include_markdown_description", "true")]);
        match self
            .send(Call::new(Method::GET, url, "task.get", op.clone()))
            .await
        {
            Ok(reply) => mapping::decode_task(&reply.body, self.backlink_field_id())
                .map_err(|e| with_op(e, &op)),
            Err(e) if is_team_not_authorized(&e) => {
                // Only a valid token makes this mean "the task is gone".
                self.verify_token().await?;
                Err(ApiError::NotFound {
                    op,
                    message: format!("the token is valid, so the task is gone: {e}"),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Workspace members (cached after the first call).
    pub async fn members(&self) -> Result<Vec<ClickUpUser>, ApiError> {
        let mut cache = self.members.lock().await;
        if let Some(m) = cache.as_ref() {
            return Ok(m.clone());
        }
        let m = self.fetch_members().await?;
        *cache = Some(m.clone());
        Ok(m)
    }

    async fn fetch_members(&self) -> Result<Vec<ClickUpUser>, ApiError> {
        let op = format!("list members of ClickUp workspace {}", self.team_id);
        let reply = self
            .send(Call::new(
                Method::GET,
                self.url(&["team"], &[]),
                "team",
                op.clone(),
            ))
            .await?;
        mapping::decode_members(&reply.body, Some(&self.team_id)).map_err(|e| with_op(e, &op))
    }

    /// Member ids for emails. An unknown email refreshes the cache once (a new member);
    /// still unknown: a [`ApiError::Validation`] on `assignees` when `required`, else skipped.
    async fn member_ids(
        &self,
        emails: &[String],
        required: bool,
        op: &str,
    ) -> Result<Vec<i64>, ApiError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let find = |members: &[ClickUpUser], e: &str| {
            members
                .iter()
                .find(|m| m.email.eq_ignore_ascii_case(e.trim()))
                .map(|m| m.id)
        };
        let mut members = self.members().await?;
        if emails.iter().any(|e| find(&members, e).is_none()) {
            let fresh = self.fetch_members().await?;
            *self.members.lock().await = Some(fresh.clone());
            members = fresh;
        }
        let mut ids = Vec::new();
        for e in emails {
            match find(&members, e) {
                Some(id) => ids.push(id),
                None if required => {
                    return Err(ApiError::validation(
                        op,
                        format!("{e} is not a member of workspace {}", self.team_id),
                        Some("assignees"),
                    ))
                }
                None => {}
            }
        }
        Ok(ids)
    }

    /// Creates a task (with the back-link custom field when configured). Never retried on a
    /// transient failure: the engine's intent log decides.
    pub async fn create_task(&self, c: &ClickUpCreate) -> Result<ClickUpRecord, ApiError> {
        let op = format!(
            "create a ClickUp task in list {} for {}",
            c.list_id, c.backlink_url
        );
        let assignees = self.member_ids(&c.fields.assignees_add, true, &op).await?;
        let body = mapping::create_body(c, &assignees, self.backlink_field_id())?;
        let url = self.url(&["list", &c.list_id, "task"], &[]);
        let reply = self
            .send(Call::new(Method::POST, url, "task.create", op.clone()).json(&body))
            .await?;
        mapping::decode_task(&reply.body, self.backlink_field_id()).map_err(|e| with_op(e, &op))
    }

    /// Applies a patch: scalar fields with `PUT`, tags through the tag endpoints (Update Task
    /// ignores tags). Answers with the task as it stands after the writes, so the caller
    /// stores the post-write `date_updated`: the `PUT` answer (the full task) when no tag
    /// changed, else the task re-read after the tag calls. (The `PUT` answer is not promised
    /// to carry `markdown_description`; use the answer for its change marker, not its text.)
    pub async fn update_task(&self, id: &str, p: &ClickUpPatch) -> Result<ClickUpRecord, ApiError> {
        let op = format!("update ClickUp task {id}");
        let add = self.member_ids(&p.assignees_add, true, &op).await?;
        let rem = self.member_ids(&p.assignees_rem, false, &op).await?;
        let body = mapping::update_body(p, &add, &rem);
        let no_tags = p
            .tags_add
            .iter()
            .chain(&p.tags_rem)
            .all(|t| t.trim().is_empty());
        if !body.is_empty() {
            let url = self.url(&["task", id], &[]);
            let reply = self
                .send(
                    Call::new(Method::PUT, url, "task.update", op.clone())
                        .json(&Value::Object(body)),
                )
                .await?;
            if no_tags {
                return mapping::decode_task(&reply.body, self.backlink_field_id())
                    .map_err(|e| with_op(e, &op));
            }
        }
        for tag in p.tags_add.iter().filter(|t| !t.trim().is_empty()) {
            let url = self.url(&["task", id, "tag", tag], &[]);
            let top = format!("add tag {tag:?} to ClickUp task {id}");
            self.send(Call::new(Method::POST, url, "task.tag.add", top))
                .await?;
        }
        for tag in p.tags_rem.iter().filter(|t| !t.trim().is_empty()) {
            let url = self.url(&["task", id, "tag", tag], &[]);
            let top = format!("remove tag {tag:?} from ClickUp task {id}");
            self.send(Call::new(Method::DELETE, url, "task.tag.remove", top))
                .await?;
        }
        self.get_task(id).await
    }

    /// Writes the ADO URL into the configured back-link custom field, then re-reads the task.
    pub async fn set_backlink(&self, id: &str, url: &str) -> Result<ClickUpRecord, ApiError> {
        let op = format!("set the back-link of ClickUp task {id} to {url}");
        let Some(fid) = self.backlink_field_id().map(str::to_string) else {
            return Err(ApiError::validation(
                &op,
                "no back-link custom field is configured",
                Some("backlink_field_id"),
            ));
        };
        let u = self.url(&["task", id, "field", &fid], &[]);
        // Setting a value twice is harmless: safe to retry.
        self.send(
            Call::new(Method::POST, u, "task.field.set", op.clone())
                .json(&json!({ "value": url }))
                .safe(),
        )
        .await?;
        self.get_task(id).await
    }

    /// A list and its statuses.
    pub async fn get_list(&self, list_id: &str) -> Result<ClickUpList, ApiError> {
        let op = format!("read ClickUp list {list_id}");
        let reply = self
            .send(Call::new(
                Method::GET,
                self.url(&["list", list_id], &[]),
                "list.get",
                op.clone(),
            ))
            .await?;
        mapping::decode_list(&reply.body).map_err(|e| with_op(e, &op))
    }

    /// The custom fields usable on a list's tasks.
    pub async fn custom_fields(&self, list_id: &str) -> Result<Vec<ClickUpCustomField>, ApiError> {
        let op = format!("list custom fields of ClickUp list {list_id}");
        let url = self.url(&["list", list_id, "field"], &[]);
        let reply = self
            .send(Call::new(Method::GET, url, "list.fields", op.clone()))
            .await?;
        mapping::decode_custom_fields(&reply.body).map_err(|e| with_op(e, &op))
    }

    /// Finds a custom field by name (case-insensitive), e.g. the back-link field.
    pub async fn find_custom_field(
        &self,
        list_id: &str,
        name: &str,
    ) -> Result<Option<ClickUpCustomField>, ApiError> {
        Ok(self
            .custom_fields(list_id)
            .await?
            .into_iter()
            .find(|f| f.name.trim().eq_ignore_ascii_case(name.trim())))
    }

    /// Every comment of a task, newest first (25 per page; pages by date and id).
    pub async fn list_comments(&self, task_id: &str) -> Result<Vec<ClickUpComment>, ApiError> {
        let op = format!("list comments of ClickUp task {task_id}");
        let mut out: Vec<ClickUpComment> = Vec::new();
        let mut cursor: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, &str)> = Vec::new();
            if let Some((start, start_id)) = &cursor {
                q.push(("start", start));
                q.push(("start_id", start_id));
            }
            let url = self.url(&["task", task_id, "comment"], &q);
            let reply = self
                .send(Call::new(Method::GET, url, "task.comments", op.clone()))
                .await?;
            let page = mapping::decode_comments(&reply.body).map_err(|e| with_op(e, &op))?;
            let n = page.len();
            let next = page
                .last()
                .and_then(|c| c.date.map(|d| (d.to_string(), c.id.clone())));
            for c in page {
                if !out.iter().any(|o| o.id == c.id) {
                    out.push(c);
                }
            }
            match next {
                Some(n2) if n >= COMMENT_PAGE && Some(&n2) != cursor.as_ref() => cursor = Some(n2),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Posts a comment; answers its id. Not retried on transient failures.
    pub async fn add_comment(&self, task_id: &str, text: &str) -> Result<String, ApiError> {
        let op = format!("add a comment to ClickUp task {task_id}");
        let url = self.url(&["task", task_id, "comment"], &[]);
        let reply = self
            .send(
                Call::new(Method::POST, url, "task.comment.add", op.clone())
                    .json(&json!({"comment_text": text, "notify_all": false})),
            )
            .await?;
        mapping::decode_created_comment(&reply.body)
            .map(|(id, _)| id)
            .map_err(|e| with_op(e, &op))
    }

    /// Registers a webhook for the workspace (optionally only for one list).
    pub async fn create_webhook(
        &self,
        endpoint: &str,
        events: &[&str],
        list_id: Option<&str>,
    ) -> Result<ClickUpWebhook, ApiError> {
        let op = format!("create a ClickUp webhook to {endpoint}");
        let mut body = json!({"endpoint": endpoint, "events": events});
        if let Some(l) = list_id {
            body["list_id"] = l
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(l));
        }
        let url = self.url(&["team", &self.team_id, "webhook"], &[]);
        let reply = self
            .send(Call::new(Method::POST, url, "webhook.create", op.clone()).json(&body))
            .await?;
        mapping::decode_created_webhook(&reply.body).map_err(|e| with_op(e, &op))
    }

    /// Webhooks this token's user created in the workspace.
    pub async fn list_webhooks(&self) -> Result<Vec<ClickUpWebhook>, ApiError> {
        let op = format!("list ClickUp webhooks of workspace {}", self.team_id);
        let url = self.url(&["team", &self.team_id, "webhook"], &[]);
        let reply = self
            .send(Call::new(Method::GET, url, "webhook.list", op.clone()))
            .await?;
        mapping::decode_webhooks(&reply.body).map_err(|e| with_op(e, &op))
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ApiError> {
        let op = format!("delete ClickUp webhook {id}");
        let url = self.url(&["webhook", id], &[]);
        // Deleting twice ends the same way (the second is a 404 the caller may ignore).
        self.send(Call::new(Method::DELETE, url, "webhook.delete", op).safe())
            .await
            .map(|_| ())
    }
}

fn with_op(e: ApiError, op: &str) -> ApiError {
    match e {
        ApiError::Protocol { op: inner, message } => ApiError::Protocol {
            op: op.to_string(),
            message: format!("{inner}: {message}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_not_authorized_is_recognised() {
        let auth = |m: &str| ApiError::Auth {
            op: "x".into(),
            status: 401,
            message: m.into(),
        };
        assert!(is_team_not_authorized(&auth(
            "Team not authorized (OAUTH_027)"
        )));
        assert!(is_team_not_authorized(&auth("whatever (OAUTH_041)")));
        assert!(!is_team_not_authorized(&auth(
            "Oauth token not found (OAUTH_019)"
        )));
        assert!(!is_team_not_authorized(&ApiError::NotFound {
            op: "x".into(),
            message: "Team not authorized".into()
        }));
    }
}
