//! The ADO HTTP client (Work Item Tracking REST 7.1).
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::mapping::{self, RECORD_FIELDS};
use super::{AdoComment, AdoConfig, AdoSlot, AdoState, AdoWorkItemType, ChangedIds};
use crate::core::model::{AdoCreate, AdoId, AdoPatch, AdoRecord, Side};
use crate::remote::{
    rate_limit_wait, snippet, ApiError, ApiStats, Call, Failure, HeaderRules, HttpPolicy, Transport,
};

const API_VERSION: &str = "7.1";
const COMMENTS_API_VERSION: &str = "7.1-preview.4";
/// The service refuses more than 200 ids per batch read (VS403474).
const MAX_BATCH: usize = 200;

/// The ADO client. Cheap to share behind an `Arc`; `Debug` never shows the PAT.
pub struct AdoClient {
    base: url::Url,
    org: String,
    project: String,
    wiql_page_size: u32,
    batch_size: usize,
    http: Transport,
}

impl std::fmt::Debug for AdoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdoClient")
            .field("base", &self.base.as_str())
            .field("org", &self.org)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

fn classify(f: &Failure<'_>, _policy: &HttpPolicy) -> ApiError {
    let op = f.op.to_string();
    let decoded = mapping::decode_error(f.body);
    // A 401 often has an HTML or empty body: never assume JSON.
    let message = decoded
        .as_ref()
        .map(|(m, _, _)| m.clone())
        .unwrap_or_else(|| {
            let s = snippet(f.body);
            if s.trim().is_empty() {
                format!("HTTP {} with an empty body", f.status.as_u16())
            } else {
                format!("HTTP {}: {s}", f.status.as_u16())
            }
        });
    match f.status {
        StatusCode::NON_AUTHORITATIVE_INFORMATION => ApiError::Auth {
            op,
            status: 203,
            message: "HTTP 203 with a sign-in page: the PAT is wrong or expired".into(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Auth {
            op,
            status: f.status.as_u16(),
            message,
        },
        StatusCode::NOT_FOUND => ApiError::NotFound { op, message },
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => {
            ApiError::Conflict { op, message }
        }
        StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited {
            op,
            wait: rate_limit_wait(f.headers),
        },
        StatusCode::REQUEST_TIMEOUT => ApiError::Transient { op, message },
        s if s.is_server_error() => ApiError::Transient { op, message },
        _ => ApiError::Validation {
            op,
            message,
            field: decoded.and_then(|(_, _, field)| field),
        },
    }
}

impl AdoClient {
    pub fn new(cfg: AdoConfig, stats: Arc<ApiStats>) -> Result<Self, ApiError> {
        let op = "configure the ADO client";
        let base = url::Url::parse(cfg.base_url.trim_end_matches('/')).map_err(|e| {
            ApiError::validation(op, format!("bad base URL: {e}"), Some("base_url"))
        })?;
        if base.cannot_be_a_base() {
            return Err(ApiError::validation(op, "bad base URL", Some("base_url")));
        }
        if cfg.organization.trim().is_empty() || cfg.project.trim().is_empty() {
            return Err(ApiError::validation(
                op,
                "organization and project are required",
                Some("organization"),
            ));
        }
        let pat = cfg.pat.expose_secret();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(":{pat}"))
        );
        let http = Transport::new(
            Side::Ado,
            cfg.policy.clone(),
            stats,
            &auth,
            pat,
            HeaderRules::Ado,
            classify,
        )?;
        Ok(AdoClient {
            base,
            org: cfg.organization,
            project: cfg.project,
            wiql_page_size: cfg.wiql_page_size.clamp(1, 19_999),
            batch_size: cfg.batch_size.clamp(1, MAX_BATCH),
            http,
        })
    }

    pub fn stats(&self) -> &Arc<ApiStats> {
        self.http.stats()
    }

    /// `{base}/{org}/{project}`: what web URLs hang off.
    fn web_base(&self) -> String {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty().push(&self.org).push(&self.project);
        }
        u.to_string()
    }

    /// The work item's web URL (`…/_workitems/edit/{id}`): the ClickUp back-link.
    pub fn web_url(&self, id: AdoId) -> String {
        format!("{}/_workitems/edit/{id}", self.web_base())
    }

    /// The org-level API URL of a work item, as relations point at it.
    pub fn api_url(&self, id: AdoId) -> String {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty()
                .push(&self.org)
                .extend(["_apis", "wit", "workItems"])
                .push(&id.to_string());
        }
        u.to_string()
    }

    fn url(&self, tail: &[&str], query: &[(&str, &str)], api_version: &str) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty()
                .push(&self.org)
                .push(&self.project)
                .extend(["_apis", "wit"])
                .extend(tail);
        }
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("api-version", api_version);
        }
        u
    }

    /// Runs one WIQL query with time precision (a time in a date literal is otherwise a 400).
    async fn wiql(&self, query: &str, top: u32, op: String) -> Result<super::WiqlPage, ApiError> {
        let top = top.to_string();
        let url = self.url(
            &["wiql"],
            &[("timePrecision", "true"), ("$top", &top)],
            API_VERSION,
        );
        let call = Call::new(Method::POST, url, "wiql", op.clone())
            .json(&json!({ "query": query }))
            .safe();
        let reply = self.http.execute(&call).await?;
        mapping::decode_wiql(&reply.body).map_err(|e| with_op(e, &op))
    }

    fn scope(scope_clause: &str) -> String {
        let s = scope_clause.trim();
        if s.is_empty() {
            "[System.TeamProject] = @project".to_string()
        } else {
            format!("({s})")
        }
    }

    /// Every work item in scope changed at or after `since`, ordered by (ChangedDate, Id), and
    /// the server time of the query (use it as the next cursor, never the local clock).
    ///
    /// Past one page (`wiql_page_size`), the next query starts after the last (ChangedDate, Id)
    /// seen, so items that share a ChangedDate across the boundary are never lost.
    pub async fn query_changed_since(
        &self,
        scope_clause: &str,
        since: DateTime<Utc>,
    ) -> Result<ChangedIds, ApiError> {
        let scope = Self::scope(scope_clause);
        let op = format!(
            "query ADO items changed since {}",
            mapping::wiql_time(since)
        );
        let mut window = format!("[System.ChangedDate] >= '{}'", mapping::wiql_time(since));
        let mut ids: Vec<AdoId> = Vec::new();
        let mut seen: HashSet<AdoId> = HashSet::new();
        let mut first_as_of: Option<DateTime<Utc>> = None;
        loop {
            let q = format!(
                "SELECT [System.Id] FROM WorkItems WHERE {scope} AND {window} \
                 ORDER BY [System.ChangedDate] ASC, [System.Id] ASC"
            );
            let page = self.wiql(&q, self.wiql_page_size, op.clone()).await?;
            let as_of = page
                .as_of
                .ok_or_else(|| ApiError::protocol(&op, "the WIQL answer has no asOf"))?;
            first_as_of.get_or_insert(as_of);
            let full = page.ids.len() >= self.wiql_page_size as usize;
            let mut new = 0;
            for id in &page.ids {
                if seen.insert(*id) {
                    ids.push(*id);
                    new += 1;
                }
            }
            if !full {
                break;
            }
            if new == 0 {
                return Err(ApiError::protocol(
                    &op,
                    "WIQL paging made no progress (the same page came back twice)",
                ));
            }
            let (t, n) = self.boundary(&page.ids, as_of, &op).await?;
            let t = mapping::wiql_time(t);
            window = format!(
                "([System.ChangedDate] > '{t}' OR ([System.ChangedDate] = '{t}' AND [System.Id] > {n}))"
            );
        }
        Ok(ChangedIds {
            ids,
            as_of: first_as_of.unwrap_or_else(Utc::now),
        })
    }

    /// The (ChangedDate, Id) of the last readable item of a full page, read as of the query's
    /// time so that an edit made since cannot move the boundary past unseen items.
    async fn boundary(
        &self,
        page: &[AdoId],
        as_of: DateTime<Utc>,
        op: &str,
    ) -> Result<(DateTime<Utc>, AdoId), ApiError> {
        // A few candidates from the end: the very last may have been deleted meanwhile.
        let tail: Vec<AdoId> = page.iter().rev().take(20).copied().collect();
        let url = self.url(&["workitemsbatch"], &[], API_VERSION);
        let body = json!({
            "ids": tail,
            "fields": [mapping::F_ID, mapping::F_CHANGED],
            "asOf": mapping::wiql_time(as_of),
            "errorPolicy": "omit",
        });
        let bop = format!("{op}: read the page boundary item {:?}", tail.first());
        let call = Call::new(Method::POST, url, "workitemsbatch", bop.clone())
            .json(&body)
            .safe();
        let reply = self.http.execute(&call).await?;
        let v: Value = reply.json(&bop)?;
        let mut dates: HashMap<AdoId, DateTime<Utc>> = HashMap::new();
        for w in v
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = w.get("id").and_then(Value::as_i64);
            let changed = w
                .get("fields")
                .and_then(|f| f.get(mapping::F_CHANGED))
                .and_then(Value::as_str)
                .and_then(crate::remote::parse_timestamp);
            if let (Some(id), Some(changed)) = (id, changed) {
                dates.insert(id, changed);
            }
        }
        tail.iter()
            .find_map(|id| dates.get(id).map(|t| (*t, *id)))
            .ok_or_else(|| ApiError::protocol(&bop, "none of the page's last items could be read"))
    }

    /// Ids of the work items of type `work_item_type` created at or after `since`, in the whole
    /// project (not only a pair's scope: a create interrupted by a crash is searched for where
    /// it was made). Used to find a create's result by its back-link marker.
    pub async fn ids_created_since(
        &self,
        work_item_type: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<AdoId>, ApiError> {
        let op = format!(
            "list ADO {work_item_type} items created since {}",
            mapping::wiql_time(since)
        );
        let q = format!(
            "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project \
             AND [System.WorkItemType] = '{}' AND [System.CreatedDate] >= '{}' \
             ORDER BY [System.Id] ASC",
            work_item_type.replace('\'', "''"),
            mapping::wiql_time(since)
        );
        Ok(self.wiql(&q, self.wiql_page_size, op).await?.ids)
    }

    /// Every id in scope (for sweeps), paged by id.
    pub async fn list_all_ids(&self, scope_clause: &str) -> Result<Vec<AdoId>, ApiError> {
        let scope = Self::scope(scope_clause);
        let op = "list all ADO work items in scope".to_string();
        let mut ids = Vec::new();
        let mut after: AdoId = 0;
        loop {
            let q = format!(
                "SELECT [System.Id] FROM WorkItems WHERE {scope} AND [System.Id] > {after} \
                 ORDER BY [System.Id] ASC"
            );
            let page = self.wiql(&q, self.wiql_page_size, op.clone()).await?;
            let full = page.ids.len() >= self.wiql_page_size as usize;
            let last = page.ids.iter().copied().max();
            ids.extend(page.ids);
            match last {
                Some(l) if full && l > after => after = l,
                _ => break,
            }
        }
        Ok(ids)
    }

    /// Reads work items in batches of at most 200, only the fields the mapping needs. The
    /// answer has one slot per requested id, in order; `None` = deleted or not visible.
    pub async fn get_batch(&self, ids: &[AdoId]) -> Result<Vec<Option<AdoRecord>>, ApiError> {
        self.batch(ids, false).await
    }

    /// As [`get_batch`](Self::get_batch) but with relations (all fields, `$expand=relations`),
    /// to see `Hyperlink` back-link markers.
    pub async fn get_batch_with_relations(
        &self,
        ids: &[AdoId],
    ) -> Result<Vec<Option<AdoRecord>>, ApiError> {
        self.batch(ids, true).await
    }

    async fn batch(
        &self,
        ids: &[AdoId],
        relations: bool,
    ) -> Result<Vec<Option<AdoRecord>>, ApiError> {
        self.batch_slots(ids, relations)
            .await?
            .into_iter()
            .map(|s| match s {
                AdoSlot::Found(r) => Ok(Some(r)),
                AdoSlot::Missing => Ok(None),
                AdoSlot::Malformed(e) => Err(e),
            })
            .collect()
    }

    /// As [`get_batch`](Self::get_batch), but an item whose JSON does not map fails alone
    /// ([`AdoSlot::Malformed`]) instead of failing its whole batch.
    pub async fn read_batch(
        &self,
        ids: &[AdoId],
        relations: bool,
    ) -> Result<Vec<AdoSlot>, ApiError> {
        self.batch_slots(ids, relations).await
    }

    async fn batch_slots(&self, ids: &[AdoId], relations: bool) -> Result<Vec<AdoSlot>, ApiError> {
        let web_base = self.web_base();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.batch_size) {
            let op = format!("read ADO work items {}", id_list(chunk));
            let body = if relations {
                json!({"ids": chunk, "$expand": "relations", "errorPolicy": "omit"})
            } else {
                json!({"ids": chunk, "fields": RECORD_FIELDS, "errorPolicy": "omit"})
            };
            let url = self.url(&["workitemsbatch"], &[], API_VERSION);
            let call = Call::new(Method::POST, url, "workitemsbatch", op.clone())
                .json(&body)
                .safe();
            let reply = self.http.execute(&call).await?;
            let items = mapping::decode_work_items_each(&reply.body, &web_base)
                .map_err(|e| with_op(e, &op))?;
            // Place by id: a null slot carries no id, so positions alone are not trusted.
            let mut by_id: HashMap<AdoId, AdoSlot> = HashMap::new();
            for (id, r) in items {
                match (id, r) {
                    (Some(id), Ok(Some(rec))) => {
                        by_id.insert(id, AdoSlot::Found(rec));
                    }
                    (Some(id), Err(e)) => {
                        by_id.insert(id, AdoSlot::Malformed(e));
                    }
                    (None, Err(e)) => {
                        return Err(with_op(e, &op));
                    }
                    _ => {}
                }
            }
            out.extend(
                chunk
                    .iter()
                    .map(|id| by_id.remove(id).unwrap_or(AdoSlot::Missing)),
            );
        }
        Ok(out)
    }

    /// One work item with its relations. Deleted or not visible: [`ApiError::NotFound`].
    pub async fn get(&self, id: AdoId) -> Result<AdoRecord, ApiError> {
        let op = format!("read ADO work item {id}");
        let reply = self.get_raw(id, &op).await?;
        mapping::decode_work_item(&reply.body, &self.web_base()).map_err(|e| with_op(e, &op))
    }

    async fn get_raw(&self, id: AdoId, op: &str) -> Result<crate::remote::Reply, ApiError> {
        let url = self.url(
            &["workitems", &id.to_string()],
            &[("$expand", "relations")],
            API_VERSION,
        );
        let call = Call::new(Method::GET, url, "workitem.get", op.to_string());
        self.http.execute(&call).await
    }

    /// Creates a work item with a `Hyperlink` relation to `c.backlink_url` (the marker that
    /// lets a crashed create be found instead of repeated). Never retried on a transient
    /// failure: the engine's intent log decides.
    pub async fn create(&self, c: &AdoCreate) -> Result<AdoRecord, ApiError> {
        let op = format!("create ADO {} for {}", c.work_item_type, c.backlink_url);
        let parent_url = match &c.fields.parent {
            Some(Some(p)) => Some(self.api_url(*p)),
            _ => None,
        };
        let ops = mapping::create_ops(c, parent_url.as_deref());
        let ty = format!("${}", c.work_item_type);
        let url = self.url(&["workitems", &ty], &[], API_VERSION);
        let call = Call::new(Method::POST, url, "workitem.create", op.clone())
            .json_patch(&Value::Array(ops));
        let reply = self.http.execute(&call).await?;
        mapping::decode_work_item(&reply.body, &self.web_base()).map_err(|e| with_op(e, &op))
    }

    /// Applies a patch guarded by `test /rev` = `rev`: if the item changed since, nothing is
    /// written and the answer is [`ApiError::Conflict`]. A parent change first reads the
    /// item's relations (to remove the old one by index) and checks the rev there too.
    pub async fn update(
        &self,
        id: AdoId,
        rev: i64,
        patch: &AdoPatch,
    ) -> Result<AdoRecord, ApiError> {
        let op = format!("update ADO work item {id} at rev {rev}");
        let mut ops = vec![mapping::rev_test(rev)];
        ops.extend(mapping::field_ops(patch));
        if let Some(new_parent) = &patch.parent {
            let read_op = format!("{op}: read relations");
            let reply = self.get_raw(id, &read_op).await?;
            let (cur_rev, relations) = mapping::decode_relations(&reply.body, &read_op)?;
            if cur_rev != rev {
                return Err(ApiError::Conflict {
                    op,
                    message: format!("the item is at rev {cur_rev}"),
                });
            }
            let current = mapping::parent_relation_index(&relations);
            let unchanged = matches!((current, new_parent), (Some((_, Some(a))), Some(b)) if a == *b)
                || (current.is_none() && new_parent.is_none());
            if !unchanged {
                if let Some((idx, _)) = current {
                    ops.push(json!({"op": "remove", "path": format!("/relations/{idx}")}));
                }
                if let Some(p) = new_parent {
                    ops.push(json!({
                        "op": "add",
                        "path": "/relations/-",
                        "value": mapping::parent_relation(&self.api_url(*p)),
                    }));
                }
            }
        }
        if ops.len() == 1 {
            // Nothing to write: answer with the current state.
            return self.get(id).await;
        }
        self.patch(id, ops, op).await
    }

    /// Adds a `Hyperlink` relation (the source side's back-link after a create), guarded by rev.
    pub async fn add_hyperlink(
        &self,
        id: AdoId,
        rev: i64,
        url: &str,
    ) -> Result<AdoRecord, ApiError> {
        let op = format!("add a link to {url} on ADO work item {id}");
        let ops = vec![
            mapping::rev_test(rev),
            json!({"op": "add", "path": "/relations/-", "value": mapping::hyperlink_relation(url)}),
        ];
        self.patch(id, ops, op).await
    }

    async fn patch(&self, id: AdoId, ops: Vec<Value>, op: String) -> Result<AdoRecord, ApiError> {
        let url = self.url(&["workitems", &id.to_string()], &[], API_VERSION);
        // Safe to retry: the rev test makes a second application impossible.
        let call = Call::new(Method::PATCH, url, "workitem.update", op.clone())
            .json_patch(&Value::Array(ops))
            .safe();
        let reply = self.http.execute(&call).await?;
        mapping::decode_work_item(&reply.body, &self.web_base()).map_err(|e| with_op(e, &op))
    }

    /// Every comment of a work item, oldest first (follows continuation tokens).
    pub async fn list_comments(&self, id: AdoId) -> Result<Vec<AdoComment>, ApiError> {
        let op = format!("list comments of ADO work item {id}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("order", "asc")];
            if let Some(t) = &token {
                q.push(("continuationToken", t));
            }
            let url = self.url(
                &["workItems", &id.to_string(), "comments"],
                &q,
                COMMENTS_API_VERSION,
            );
            let call = Call::new(Method::GET, url, "comments.list", op.clone());
            let reply = self.http.execute(&call).await?;
            let (page, next) =
                mapping::decode_comments(&reply.body).map_err(|e| with_op(e, &op))?;
            let empty = page.is_empty();
            out.extend(page);
            match next {
                Some(t) if !empty && Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Adds an HTML comment. Not retried on transient failures (it would post twice).
    pub async fn add_comment(&self, id: AdoId, html: &str) -> Result<AdoComment, ApiError> {
        let op = format!("add a comment to ADO work item {id}");
        let url = self.url(
            &["workItems", &id.to_string(), "comments"],
            &[("format", "html")],
            COMMENTS_API_VERSION,
        );
        let call =
            Call::new(Method::POST, url, "comments.add", op.clone()).json(&json!({ "text": html }));
        let reply = self.http.execute(&call).await?;
        mapping::decode_comment(&reply.body).map_err(|e| with_op(e, &op))
    }

    /// The project's work item types.
    pub async fn work_item_types(&self) -> Result<Vec<AdoWorkItemType>, ApiError> {
        let op = "list ADO work item types".to_string();
        let url = self.url(&["workitemtypes"], &[], API_VERSION);
        let call = Call::new(Method::GET, url, "workitemtypes", op.clone());
        let reply = self.http.execute(&call).await?;
        mapping::decode_work_item_types(&reply.body).map_err(|e| with_op(e, &op))
    }

    /// The states of one work item type, with their categories.
    pub async fn states(&self, work_item_type: &str) -> Result<Vec<AdoState>, ApiError> {
        let op = format!("list the states of ADO type {work_item_type}");
        let url = self.url(
            &["workitemtypes", work_item_type, "states"],
            &[],
            API_VERSION,
        );
        let call = Call::new(Method::GET, url, "workitemtypes.states", op.clone());
        let reply = self.http.execute(&call).await?;
        mapping::decode_states(&reply.body).map_err(|e| with_op(e, &op))
    }
}

/// Names the client's operation on a decoding error (the decoders only know the shape).
fn with_op(e: ApiError, op: &str) -> ApiError {
    match e {
        ApiError::Protocol { op: inner, message } => ApiError::Protocol {
            op: op.to_string(),
            message: format!("{inner}: {message}"),
        },
        other => other,
    }
}

/// `[1, 2, 3]`, shortened for long batches.
fn id_list(ids: &[AdoId]) -> String {
    if ids.len() <= 5 {
        format!("{ids:?}")
    } else {
        format!(
            "[{}, {}, … {} ({} ids)]",
            ids[0],
            ids[1],
            ids[ids.len() - 1],
            ids.len()
        )
    }
}
