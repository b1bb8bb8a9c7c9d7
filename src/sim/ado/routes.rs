//! The REST surface: auth, api-version, rate limiting, then routing by hand so paths match
//! case-insensitively and `workitems/$Type` shares a segment with `workitems/{id}`, as in
//! the real service.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::errors::{unauthorized, AdoError};
use super::process;
use super::state::{Expand, PatchOp, SimWorkItem, Target, WriteCtx};
use super::wiql;
use super::{Inner, RateLimitMode};
use crate::sim::common::lock;

type Res = Result<Response, AdoError>;

const MAX_IDS: usize = 200;
const WIQL_LIMIT: usize = 20_000;

fn ok(v: Value) -> Res {
    Ok(Json(v).into_response())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Req {
    method: Method,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    /// Query parameters are case-insensitive in the real service.
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    fn flag(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
    fn int(&self, name: &str) -> Result<Option<i64>, AdoError> {
        match self.q(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                AdoError::bad_request(
                    "VssPropertyValidationException",
                    format!("The value '{v}' is not valid for parameter {name}."),
                )
            }),
        }
    }
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, AdoError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AdoError::bad_request(
                "VssPropertyValidationException",
                format!("The request body is not a valid {what}: {e}."),
            )
        })
    }
}

/// API-version check (FACTS §0): required; preview resources need `-preview`.
fn check_version(req: &Req, preview: bool) -> Result<(), AdoError> {
    let from_accept = req
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("api-version="))
                .map(str::to_string)
        });
    let Some(v) = req.q("api-version").map(str::to_string).or(from_accept) else {
        return Err(AdoError::bad_request(
            "VssVersionNotSpecifiedException",
            format!(
                "No api-version was supplied for the \"{}\" request. The version must be supplied either as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a query parameter (e.g. '?api-version=1.0').",
                req.method
            ),
        ));
    };
    let (num, is_preview) = match v.split_once('-') {
        Some((n, rest)) if rest.to_ascii_lowercase().starts_with("preview") => {
            (n.to_string(), true)
        }
        Some(_) => ("".to_string(), false),
        None => (v.clone(), false),
    };
    let parsed: Option<(u32, u32)> = num
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(AdoError::bad_request(
            "VssInvalidApiVersionException",
            format!("The api-version '{v}' is not valid. Use a version such as '7.1'."),
        ));
    };
    if (major, minor) > (7, 1) {
        return Err(AdoError::bad_request(
            "VssVersionOutOfRangeException",
            format!("The requested REST API version of {num} is out of range for this server. The latest REST API version this server supports is 7.1."),
        ));
    }
    if preview && !is_preview {
        return Err(AdoError::bad_request(
            "VssInvalidPreviewVersionException",
            format!("The requested version \"{num}\" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: \"{num}-preview\""),
        ));
    }
    Ok(())
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = auth
        .strip_prefix("Basic ")
        .or_else(|| auth.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let raw = String::from_utf8_lossy(&raw);
    // Any user name; the PAT is the password (SPEC7.1 securityDefinitions).
    let pass = raw.split_once(':').map(|(_, p)| p).unwrap_or("");
    subtle::ConstantTimeEq::ct_eq(pass.as_bytes(), inner.opts.pat.as_bytes()).into()
}

enum Rate {
    Pass(Vec<(&'static str, String)>),
    Block(Vec<(&'static str, String)>),
    Delay(Duration, Vec<(&'static str, String)>),
}

fn rate_check(inner: &Inner) -> Rate {
    let Some(cfg) = *lock(&inner.rate_limit) else {
        return Rate::Pass(Vec::new());
    };
    let window = Duration::from_millis(cfg.window_ms.max(1));
    let now = Instant::now();
    let mut q = lock(&inner.rate);
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    let used = q.len() as u32;
    let reset_in = q
        .front()
        .map(|t| window.saturating_sub(now.duration_since(*t)))
        .unwrap_or(window);
    let reset_epoch =
        (Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default()).timestamp();
    let retry_after = reset_in.as_secs_f64().ceil().max(1.0) as u64;
    let mut headers = vec![
        ("X-RateLimit-Resource", "WorkItemTracking".to_string()),
        ("X-RateLimit-Limit", cfg.limit.to_string()),
        (
            "X-RateLimit-Remaining",
            cfg.limit.saturating_sub(used + 1).to_string(),
        ),
        ("X-RateLimit-Reset", reset_epoch.to_string()),
    ];
    if used >= cfg.limit {
        headers[2].1 = "0".into();
        headers.push(("Retry-After", retry_after.to_string()));
        return match cfg.mode {
            RateLimitMode::Block => Rate::Block(headers),
            RateLimitMode::Delay { delay_ms } => {
                q.push_back(now);
                Rate::Delay(Duration::from_millis(delay_ms), headers)
            }
        };
    }
    q.push_back(now);
    // The headers appear once usage nears the limit (before any delay), as documented.
    if (used + 1) * 2 >= cfg.limit {
        Rate::Pass(headers)
    } else {
        Rate::Pass(Vec::new())
    }
}

fn add_headers(r: &mut Response, headers: &[(&'static str, String)]) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
}

pub(super) async fn dispatch(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let rate = rate_check(&inner);
    let (extra, delayed) = match rate {
        Rate::Pass(h) => (h, None),
        Rate::Block(h) => {
            let mut r = AdoError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RequestBlockedException",
                "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'WorkItemTracking' in namespace 'User'.",
            )
            .into_response();
            add_headers(&mut r, &h);
            return r;
        }
        Rate::Delay(d, h) => {
            tokio::time::sleep(d).await;
            (h, Some(d))
        }
    };
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
    let req = Req {
        method,
        query,
        headers,
        body,
    };
    let mut r = match route(&inner, uri.path(), &req) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    add_headers(&mut r, &extra);
    if let Some(d) = delayed {
        add_headers(
            &mut r,
            &[("X-RateLimit-Delay", format!("{:.3}", d.as_secs_f64()))],
        );
    }
    r
}

fn not_found_route(path: &str) -> AdoError {
    AdoError::new(
        StatusCode::NOT_FOUND,
        "RouteNotFoundException",
        format!(
            "The controller for path '{path}' was not found or does not implement IController."
        ),
    )
}

fn route(inner: &Inner, path: &str, req: &Req) -> Res {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let Some(apis) = segs.iter().position(|s| s.eq_ignore_ascii_case("_apis")) else {
        return Err(not_found_route(path));
    };
    let scope = &segs[..apis];
    let Some(org) = scope.first() else {
        return Err(not_found_route(path));
    };
    if !org.eq_ignore_ascii_case(&inner.opts.org) || scope.len() > 3 {
        return Err(not_found_route(path));
    }
    let project_scoped = scope.len() >= 2;
    if let Some(p) = scope.get(1) {
        if !p.eq_ignore_ascii_case(&inner.opts.project)
            && !p.eq_ignore_ascii_case(&inner.urls.project_id())
        {
            return Err(AdoError::new(
                StatusCode::NOT_FOUND,
                "ProjectDoesNotExistWithNameException",
                format!("TF200016: The following project does not exist: {p}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server."),
            ));
        }
    }
    let rest: Vec<&str> = segs[apis + 1..].iter().map(String::as_str).collect();
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = &req.method;
    let id_of = |s: &str| -> Result<i64, AdoError> { s.parse().map_err(|_| not_found_route(path)) };
    match (m.as_str(), l.as_slice()) {
        ("GET", ["connectiondata"]) if !project_scoped => {
            check_version(req, true)?;
            connection_data(inner)
        }
        ("POST", ["wit", "wiql"]) => {
            check_version(req, false)?;
            if scope.len() == 3 || project_scoped {
                wiql_query(inner, req, project_scoped)
            } else {
                wiql_query(inner, req, false)
            }
        }
        ("POST", ["wit", "workitemsbatch"]) => {
            check_version(req, false)?;
            batch(inner, req)
        }
        ("GET", ["wit", "workitems"]) => {
            check_version(req, false)?;
            list(inner, req)
        }
        ("POST", ["wit", "workitems", ty]) if ty.starts_with('$') => {
            check_version(req, false)?;
            if !project_scoped {
                return Err(not_found_route(path));
            }
            let ty_name = &rest[2][1..];
            create(inner, req, ty_name)
        }
        ("GET", ["wit", "workitems", id]) => {
            check_version(req, false)?;
            get_one(inner, req, id_of(id)?)
        }
        ("PATCH", ["wit", "workitems", id]) => {
            check_version(req, false)?;
            update(inner, req, id_of(id)?)
        }
        ("DELETE", ["wit", "workitems", id]) => {
            check_version(req, false)?;
            delete(inner, req, id_of(id)?)
        }
        ("GET", ["wit", "workitems", id, "updates"]) => {
            check_version(req, false)?;
            updates(inner, req, id_of(id)?, None)
        }
        ("GET", ["wit", "workitems", id, "updates", n]) => {
            check_version(req, false)?;
            updates(inner, req, id_of(id)?, Some(id_of(n)?))
        }
        ("GET", ["wit", "workitems", id, "revisions"]) => {
            check_version(req, false)?;
            revisions(inner, req, id_of(id)?, None)
        }
        ("GET", ["wit", "workitems", id, "revisions", n]) => {
            check_version(req, false)?;
            revisions(inner, req, id_of(id)?, Some(id_of(n)?))
        }
        (_, ["wit", "workitems", id, "comments", more @ ..]) if project_scoped => {
            check_version(req, true)?;
            let id = id_of(id)?;
            let cid = match more {
                [] => None,
                [c] => Some(id_of(c)?),
                _ => return Err(not_found_route(path)),
            };
            comments(inner, req, id, cid)
        }
        (_, ["wit", "recyclebin", more @ ..]) => {
            check_version(req, false)?;
            let id = match more {
                [] => None,
                [i] => Some(id_of(i)?),
                _ => return Err(not_found_route(path)),
            };
            recycle_bin(inner, req, id)
        }
        ("GET", ["wit", "workitemtypes", more @ ..]) if project_scoped => {
            check_version(req, false)?;
            work_item_types(
                inner,
                more.first().map(|_| rest[2]),
                more.get(1).copied(),
                more.len(),
            )
        }
        _ => Err(not_found_route(path)),
    }
}

/// Who the PAT belongs to (`GET {org}/_apis/connectionData`, preview): the same identity id
/// as in `System.ChangedBy` of the writes made with it, so a client can recognise its own edits.
fn connection_data(inner: &Inner) -> Res {
    let me = inner.api_user();
    let ident = inner.urls.identity(&me.stored());
    let user = json!({
        "id": ident["id"],
        "descriptor": format!("Microsoft.IdentityModel.Claims.ClaimsIdentity;{}", me.email),
        "subjectDescriptor": ident["descriptor"],
        "providerDisplayName": me.display_name,
        "isActive": true,
        "properties": {"Account": {"$type": "System.String", "$value": me.email}},
        "resourceVersion": 2,
        "metaTypeId": 0
    });
    ok(json!({
        "authenticatedUser": user,
        "authorizedUser": user,
        "instanceId": super::state::guid(&format!("instance:{}", inner.opts.org)),
        "deploymentId": super::state::guid(&format!("deployment:{}", inner.opts.org)),
        "deploymentType": "hosted",
        "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7", "defaultAccessMappingMoniker": "PublicAccessMapping", "lastChangeId": 1, "lastChangeId64": 1}
    }))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn wiql_query(inner: &Inner, req: &Req, project_scoped: bool) -> Res {
    #[derive(serde::Deserialize)]
    struct Body {
        query: Option<String>,
    }
    let body: Body = req.json("Wiql object")?;
    let Some(text) = body.query.filter(|q| !q.trim().is_empty()) else {
        return Err(AdoError::bad_request(
            "ArgumentNullException",
            "Value cannot be null.\r\nParameter name: wiql.Query",
        ));
    };
    if text.chars().count() > 32_000 {
        return Err(AdoError::bad_request(
            "WorkItemTrackingQueryTooLongException",
            "VS402336: The query exceeds the maximum length of 32000 characters.",
        ));
    }
    if !project_scoped && text.to_ascii_lowercase().contains("@project") {
        return Err(AdoError::bad_request(
            "WorkItemTrackingQueryInvalidMacroException",
            "TF51011: The @project macro can only be used in the context of a project.",
        ));
    }
    let time_precision = req.flag("timePrecision");
    let top = req.int("$top")?;
    let custom = lock(&inner.store).custom_fields();
    let q = wiql::parse_with(&text, &custom)
        .map_err(|e| AdoError::bad_request(e.type_key, e.message))?;
    let as_of = inner.clock.now();
    let me = inner.api_user().stored();
    let ctx = wiql::Ctx {
        project: &inner.opts.project,
        me: &me,
        now_ms: as_of.timestamp_millis(),
        time_precision,
    };
    let prepared = q
        .prepare(&ctx)
        .map_err(|e| AdoError::bad_request(e.type_key, e.message))?;
    let mut ids = lock(&inner.store).query(&prepared);
    match top {
        Some(t) if t > 0 && (t as usize) < WIQL_LIMIT => ids.truncate(t as usize),
        _ if ids.len() > WIQL_LIMIT => {
            return Err(AdoError::bad_request(
                "WorkItemTrackingQueryResultSizeLimitExceededException",
                format!("VS402337: The number of work items returned exceeds the size limit of {WIQL_LIMIT}. Change the query to return fewer items."),
            ))
        }
        _ => {}
    }
    let urls = &inner.urls;
    let col = |f: &wiql::FieldRef| json!({"referenceName": f.reference, "name": f.name, "url": urls.field(&f.reference)});
    let mut v = json!({
        "queryType": "flat",
        "queryResultType": "workItem",
        "asOf": as_of.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "columns": q.columns.iter().map(col).collect::<Vec<_>>(),
    });
    if !q.order.is_empty() {
        v["sortColumns"] = json!(q
            .order
            .iter()
            .map(|(f, desc)| json!({"field": col(f), "descending": desc}))
            .collect::<Vec<_>>());
    }
    v["workItems"] = json!(ids
        .iter()
        .map(|id| json!({"id": id, "url": urls.work_item(*id)}))
        .collect::<Vec<_>>());
    ok(v)
}

struct ReadOpts {
    as_of: Option<i64>,
    fields: Option<Vec<String>>,
    expand: Expand,
    omit: bool,
}

fn read_opts(
    inner: &Inner,
    fields: Option<Vec<String>>,
    expand: Option<&str>,
    policy: Option<&str>,
    as_of: Option<&str>,
) -> Result<ReadOpts, AdoError> {
    let expand_v = match expand {
        None => None,
        Some(e) => Some(Expand::parse(e).ok_or_else(|| {
            AdoError::bad_request(
                "VssPropertyValidationException",
                format!("The value '{e}' is not valid for parameter $expand. Valid values: None, Relations, Fields, Links, All."),
            )
        })?),
    };
    let fields = fields.filter(|f| !f.is_empty());
    if fields.is_some() && expand_v.is_some_and(|e| e != Expand::None) {
        return Err(AdoError::bad_request(
            "ConflictingParametersException",
            "The expand parameter can not be used with the fields parameter.",
        ));
    }
    let as_of = match as_of {
        None => None,
        Some(a) => Some(
            DateTime::parse_from_rfc3339(a)
                .map(|d| d.timestamp_millis())
                .map_err(|_| {
                    AdoError::bad_request(
                        "VssPropertyValidationException",
                        format!("The value '{a}' is not a valid date for asOf."),
                    )
                })?,
        ),
    };
    let fields = match fields {
        None => None,
        Some(list) => {
            let store = lock(&inner.store);
            Some(
                list.iter()
                    .map(|f| store.check_field(f))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
    };
    let omit = match policy.map(str::to_ascii_lowercase).as_deref() {
        None | Some("fail") => false,
        Some("omit") => true,
        Some(other) => {
            return Err(AdoError::bad_request(
                "VssPropertyValidationException",
                format!(
                    "The value '{other}' is not valid for errorPolicy. Valid values: Fail, Omit."
                ),
            ))
        }
    };
    Ok(ReadOpts {
        as_of,
        fields,
        expand: expand_v.unwrap_or_default(),
        omit,
    })
}

fn read_many(inner: &Inner, ids: &[i64], o: &ReadOpts) -> Res {
    if ids.len() > MAX_IDS {
        return Err(AdoError::bad_request(
            "VssPropertyValidationException",
            format!(
                "VS403474: You requested {} work items which exceeds the limit of {MAX_IDS}",
                ids.len()
            ),
        ));
    }
    if ids.is_empty() {
        return Err(AdoError::bad_request(
            "ArgumentNullException",
            "Value cannot be null.\r\nParameter name: ids",
        ));
    }
    let store = lock(&inner.store);
    let mut value = Vec::with_capacity(ids.len());
    for id in ids {
        let found = match o.as_of {
            Some(ms) => store.item_as_of(*id, ms),
            None => store.live(*id).cloned(),
        };
        match found {
            Some(item) => {
                value.push(store.render(&inner.urls, &item, o.fields.as_deref(), o.expand, false))
            }
            None if o.omit => value.push(Value::Null),
            None => return Err(AdoError::not_found(*id)),
        }
    }
    ok(json!({"count": value.len(), "value": value}))
}

fn batch(inner: &Inner, req: &Req) -> Res {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        ids: Vec<i64>,
        #[serde(default)]
        fields: Option<Vec<String>>,
        #[serde(default, rename = "$expand")]
        expand: Option<String>,
        #[serde(default, rename = "errorPolicy")]
        error_policy: Option<String>,
        #[serde(default, rename = "asOf")]
        as_of: Option<String>,
    }
    let b: Body = req.json("WorkItemBatchGetRequest")?;
    let o = read_opts(
        inner,
        b.fields,
        b.expand.as_deref(),
        b.error_policy.as_deref(),
        b.as_of.as_deref(),
    )?;
    read_many(inner, &b.ids, &o)
}

fn parse_ids(s: Option<&str>) -> Result<Vec<i64>, AdoError> {
    split_list(s.unwrap_or(""))
        .iter()
        .map(|x| {
            x.parse().map_err(|_| {
                AdoError::bad_request(
                    "VssPropertyValidationException",
                    format!("The id '{x}' is not a valid work item id."),
                )
            })
        })
        .collect()
}

fn list(inner: &Inner, req: &Req) -> Res {
    let ids = parse_ids(req.q("ids"))?;
    let o = read_opts(
        inner,
        req.q("fields").map(split_list),
        req.q("$expand"),
        req.q("errorPolicy"),
        req.q("asOf"),
    )?;
    read_many(inner, &ids, &o)
}

fn get_one(inner: &Inner, req: &Req, id: i64) -> Res {
    let o = read_opts(
        inner,
        req.q("fields").map(split_list),
        req.q("$expand"),
        None,
        req.q("asOf"),
    )?;
    let store = lock(&inner.store);
    let item = match o.as_of {
        Some(ms) => store.item_as_of(id, ms),
        None => store.live(id).cloned(),
    }
    .ok_or_else(|| AdoError::not_found(id))?;
    ok(store.render(&inner.urls, &item, o.fields.as_deref(), o.expand, true))
}

fn patch_body(req: &Req) -> Result<Vec<PatchOp>, AdoError> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json-patch+json"))
    {
        return Err(AdoError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "VssRequestContentTypeNotSupportedException",
            format!(
                "The request indicated a Content-Type of \"{ct}\" for method type \"{}\" which is not supported. Valid content types for this method are: application/json-patch+json.",
                req.method
            ),
        ));
    }
    let ops: Vec<PatchOp> = serde_json::from_slice(&req.body).map_err(|_| {
        AdoError::bad_request(
            "VssPropertyValidationException",
            "You must pass a valid patch document in the body of the request.",
        )
    })?;
    if ops.is_empty() {
        return Err(AdoError::bad_request(
            "VssPropertyValidationException",
            "You must pass a valid patch document in the body of the request.",
        ));
    }
    Ok(ops)
}

fn write(inner: &Inner, req: &Req, target: Target) -> Res {
    let ops = patch_body(req)?;
    let expand = match req.q("$expand") {
        Some(e) => Expand::parse(e).unwrap_or_default(),
        None => Expand::None,
    };
    let user = inner.api_user();
    let ctx = WriteCtx {
        actor: &user,
        clock: &inner.clock,
        project: &inner.opts.project,
        validate_only: req.flag("validateOnly"),
        bypass_rules: req.flag("bypassRules"),
    };
    let mut store = lock(&inner.store);
    let item: SimWorkItem = store.patch(&ctx, target, &ops)?;
    ok(store.render(&inner.urls, &item, None, expand, true))
}

fn create(inner: &Inner, req: &Req, ty: &str) -> Res {
    let t = process::work_item_type(ty).ok_or_else(|| {
        AdoError::new(
            StatusCode::NOT_FOUND,
            "WorkItemTypeNotFoundException",
            format!(
                "VS402323: Work item type {ty} does not exist in project {}.",
                inner.opts.project
            ),
        )
    })?;
    write(inner, req, Target::Create(t))
}

fn update(inner: &Inner, req: &Req, id: i64) -> Res {
    if lock(&inner.store).live(id).is_none() {
        // Content type is checked first by the real service too, but a missing item is
        // reported even for an otherwise valid patch.
        patch_body(req)?;
        return Err(AdoError::not_found(id));
    }
    write(inner, req, Target::Update(id))
}

/// Dates in recycle-bin answers use the service's culture format (example
/// `recycleBin/GET__wit_recyclebin__ids_.json`): `1/31/2017 9:21:14 PM`.
fn culture_date(iso: &str) -> String {
    DateTime::parse_from_rfc3339(iso)
        .map(|d| {
            d.with_timezone(&Utc)
                .format("%-m/%-d/%Y %-I:%M:%S %p")
                .to_string()
        })
        .unwrap_or_else(|_| iso.to_string())
}

fn delete_ref(inner: &Inner, item: &SimWorkItem, date: &str, by: &str) -> Value {
    json!({
        "id": item.id,
        "code": 200,
        "type": item.work_item_type(),
        "name": item.title(),
        "project": inner.opts.project,
        "deletedDate": culture_date(date),
        "deletedBy": by,
        "url": inner.urls.project_scoped(&format!("recyclebin/{}", item.id)),
    })
}

fn delete(inner: &Inner, req: &Req, id: i64) -> Res {
    let destroy = req.flag("destroy");
    let user = inner.api_user();
    let mut store = lock(&inner.store);
    let (item, info) = store.delete(id, destroy, &user, &inner.clock)?;
    let mut v = delete_ref(inner, &item, &info.date, &info.by);
    v["resource"] = store.render(&inner.urls, &item, None, Expand::None, true);
    ok(v)
}

fn page<T: Clone>(all: Vec<T>, req: &Req) -> Result<Vec<T>, AdoError> {
    let skip = req.int("$skip")?.unwrap_or(0).max(0) as usize;
    let top = req.int("$top")?.map(|t| t.max(0) as usize);
    let it = all.into_iter().skip(skip);
    Ok(match top {
        Some(t) => it.take(t).collect(),
        None => it.collect(),
    })
}

fn updates(inner: &Inner, req: &Req, id: i64, n: Option<i64>) -> Res {
    let store = lock(&inner.store);
    let rev = store.rev_of(id).ok_or_else(|| AdoError::not_found(id))?;
    match n {
        Some(n) => store
            .update(&inner.urls, id, n)
            .map(Json)
            .map(IntoResponse::into_response)
            .ok_or_else(|| {
                AdoError::new(
                    StatusCode::NOT_FOUND,
                    "WorkItemUpdateNotFoundException",
                    format!("VS402329: Update {n} of work item {id} does not exist."),
                )
            }),
        None => {
            let all: Vec<i64> = (1..=rev).collect();
            let value: Vec<Value> = page(all, req)?
                .into_iter()
                .filter_map(|n| store.update(&inner.urls, id, n))
                .collect();
            ok(json!({"count": value.len(), "value": value}))
        }
    }
}

fn revisions(inner: &Inner, req: &Req, id: i64, n: Option<i64>) -> Res {
    let expand = req.q("$expand").and_then(Expand::parse).unwrap_or_default();
    let store = lock(&inner.store);
    let rev = store.rev_of(id).ok_or_else(|| AdoError::not_found(id))?;
    match n {
        Some(n) => store
            .revision(&inner.urls, id, n, expand)
            .map(Json)
            .map(IntoResponse::into_response)
            .ok_or_else(|| {
                AdoError::new(
                    StatusCode::NOT_FOUND,
                    "WorkItemRevisionNotFoundException",
                    format!("VS402330: Revision {n} of work item {id} does not exist."),
                )
            }),
        None => {
            let all: Vec<i64> = (1..=rev).collect();
            let value: Vec<Value> = page(all, req)?
                .into_iter()
                .filter_map(|n| store.revision(&inner.urls, id, n, expand))
                .collect();
            ok(json!({"count": value.len(), "value": value}))
        }
    }
}

fn comment_text(req: &Req) -> Result<String, AdoError> {
    #[derive(serde::Deserialize)]
    struct Body {
        text: Option<String>,
    }
    let b: Body = req.json("CommentCreate")?;
    b.text.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        AdoError::bad_request(
            "ArgumentNullException",
            "Value cannot be null.\r\nParameter name: request.Text",
        )
    })
}

/// `$expand=renderedText|renderedTextOnly|all` adds the comment as HTML.
fn rendered(req: &Req, mut c: Value) -> Value {
    let Some(e) = req.q("$expand").map(str::to_ascii_lowercase) else {
        return c;
    };
    if !matches!(e.as_str(), "renderedtext" | "renderedtextonly" | "all") {
        return c;
    }
    let text = c["text"].as_str().unwrap_or("").to_string();
    let html = if c["format"] == "markdown" {
        comrak::markdown_to_html(&text, &comrak::Options::default())
    } else {
        text
    };
    c["renderedText"] = json!(html);
    if e == "renderedtextonly" {
        if let Some(o) = c.as_object_mut() {
            o.remove("text");
        }
    }
    c
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-comments:{offset}"))
}
fn decode_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("sim-comments:")?
        .parse()
        .ok()
}

fn comments(inner: &Inner, req: &Req, id: i64, cid: Option<i64>) -> Res {
    let user = inner.api_user();
    let urls = &inner.urls;
    let mut store = lock(&inner.store);
    let item = store
        .live(id)
        .ok_or_else(|| AdoError::not_found(id))?
        .clone();
    match (req.method.as_str(), cid) {
        ("GET", None) => {
            let include_deleted = req.flag("includeDeleted");
            let asc = req
                .q("order")
                .is_some_and(|o| o.eq_ignore_ascii_case("asc"));
            let mut list: Vec<_> = item
                .comments
                .iter()
                .filter(|c| include_deleted || !c.is_deleted)
                .collect();
            if let Some(ids) = req.q("ids") {
                let wanted = parse_ids(Some(ids))?;
                list.retain(|c| wanted.contains(&c.id));
            }
            if !asc {
                list.reverse();
            }
            let total = list.len();
            let offset = match req.q("continuationToken") {
                None => 0,
                Some(t) => decode_token(t).ok_or_else(|| {
                    AdoError::bad_request(
                        "VssPropertyValidationException",
                        format!("The continuation token '{t}' is not valid."),
                    )
                })?,
            };
            let top = req
                .int("$top")?
                .map(|t| t.clamp(1, 200) as usize)
                .unwrap_or(200);
            let page: Vec<Value> = list
                .iter()
                .skip(offset)
                .take(top)
                .map(|c| rendered(req, store.comment_json(urls, id, c)))
                .collect();
            let mut v = json!({"totalCount": total, "count": page.len(), "comments": page});
            let next = offset + top;
            if next < total {
                let token = encode_token(next);
                let mut next_page = format!(
                    "{}?continuationToken={token}&api-version=7.1-preview.4",
                    urls.project_scoped(&format!("workItems/{id}/comments"))
                );
                if let Some(t) = req.q("$top") {
                    next_page.push_str(&format!("&$top={t}"));
                }
                if asc {
                    next_page.push_str("&order=asc");
                }
                v["nextPage"] = json!(next_page);
                v["continuationToken"] = json!(token);
            }
            ok(v)
        }
        ("POST", None) => {
            let text = comment_text(req)?;
            let c = store.add_comment(
                id,
                &text,
                req.q("format")
                    .is_some_and(|f| f.eq_ignore_ascii_case("markdown")),
                &user,
                &inner.clock,
            )?;
            ok(store.comment_json(urls, id, &c))
        }
        ("GET", Some(c)) => {
            let found = item
                .comments
                .iter()
                .find(|x| x.id == c && (!x.is_deleted || req.flag("includeDeleted")))
                .ok_or_else(|| {
                    AdoError::new(
                        StatusCode::NOT_FOUND,
                        "WorkItemCommentNotFoundException",
                        format!("TF401531: Comment {c} does not exist."),
                    )
                })?;
            ok(rendered(req, store.comment_json(urls, id, found)))
        }
        ("PATCH", Some(c)) => {
            let text = comment_text(req)?;
            let updated = store.update_comment(id, c, &text, &user, &inner.clock)?;
            ok(store.comment_json(urls, id, &updated))
        }
        ("DELETE", Some(c)) => {
            store.delete_comment(id, c, &user, &inner.clock)?;
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(not_found_route("comments")),
    }
}

fn recycle_bin(inner: &Inner, req: &Req, id: Option<i64>) -> Res {
    let mut store = lock(&inner.store);
    match (req.method.as_str(), id) {
        ("GET", None) => {
            if let Some(ids) = req.q("ids") {
                let wanted = parse_ids(Some(ids))?;
                let value: Vec<Value> = wanted
                    .iter()
                    .filter_map(|i| store.deleted_info(*i))
                    .map(|(item, d)| delete_ref(inner, item, &d.date, &d.by))
                    .collect();
                return ok(json!({"count": value.len(), "value": value}));
            }
            let value: Vec<Value> = store
                .deleted()
                .map(|(item, _)| json!({"id": item.id, "url": inner.urls.project_scoped(&format!("recyclebin/{}", item.id))}))
                .collect();
            ok(json!({"count": value.len(), "value": value}))
        }
        ("GET", Some(i)) => {
            let (item, d) = store
                .deleted_info(i)
                .ok_or_else(|| AdoError::not_found(i))?;
            let mut v = delete_ref(inner, item, &d.date, &d.by);
            v["resource"] = store.render(&inner.urls, item, None, Expand::None, true);
            ok(v)
        }
        ("PATCH", Some(i)) => {
            #[derive(serde::Deserialize)]
            struct Body {
                #[serde(rename = "isDeleted")]
                is_deleted: Option<bool>,
            }
            let b: Body = req.json("WorkItemDeleteUpdate")?;
            if b.is_deleted != Some(false) {
                return Err(AdoError::bad_request(
                    "VssPropertyValidationException",
                    "Only {\"isDeleted\": false} (restore) is supported.",
                ));
            }
            let (item, d) = store
                .deleted_info(i)
                .map(|(w, d)| (w.clone(), d.clone()))
                .ok_or_else(|| AdoError::not_found(i))?;
            store.restore(i)?;
            let mut v = delete_ref(inner, &item, &d.date, &d.by);
            v["resource"] = store.render(&inner.urls, &item, None, Expand::None, true);
            ok(v)
        }
        ("DELETE", Some(i)) => {
            if store.deleted_info(i).is_none() {
                return Err(AdoError::not_found(i));
            }
            let user = inner.api_user();
            store.delete(i, true, &user, &inner.clock)?;
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(not_found_route("recyclebin")),
    }
}

fn type_json(inner: &Inner, t: &process::TypeDef) -> Value {
    json!({
        "name": t.name,
        "referenceName": t.reference,
        "description": t.description,
        "color": t.color,
        "icon": {"id": t.icon, "url": format!("{}/_apis/wit/workItemIcons/{}?color={}&v=2", inner.urls.org_base(), t.icon, t.color)},
        "isDisabled": false,
        "states": t.states.iter().map(|s| json!({"name": s.name, "color": s.color, "category": s.category})).collect::<Vec<_>>(),
        "url": inner.urls.project_scoped(&format!("workItemTypes/{}", t.name.replace(' ', "%20"))),
    })
}

fn work_item_types(inner: &Inner, ty: Option<&str>, sub: Option<&str>, depth: usize) -> Res {
    let find = |name: &str| {
        process::work_item_type(name).ok_or_else(|| {
            AdoError::new(
                StatusCode::NOT_FOUND,
                "WorkItemTypeNotFoundException",
                format!(
                    "VS402323: Work item type {name} does not exist in project {}.",
                    inner.opts.project
                ),
            )
        })
    };
    match (ty, sub, depth) {
        (None, _, 0) => {
            let value: Vec<Value> = process::TYPES.iter().map(|t| type_json(inner, t)).collect();
            ok(json!({"count": value.len(), "value": value}))
        }
        (Some(t), None, 1) => ok(type_json(inner, find(t)?)),
        (Some(t), Some(s), 2) if s.eq_ignore_ascii_case("states") => {
            let t = find(t)?;
            let value: Vec<Value> = t
                .states
                .iter()
                .map(|s| json!({"name": s.name, "color": s.color, "category": s.category}))
                .collect();
            ok(json!({"count": value.len(), "value": value}))
        }
        _ => Err(not_found_route("workitemtypes")),
    }
}
