//! The `/__sim/` control API for scripts: seed, reset, edits as a person, state, log,
//! faults and the clock. No auth; neither logged nor faulted.
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{AdoSeed, Inner, SimError};
use crate::sim::common::{lock, FaultRule};

type S = State<Arc<Inner>>;

fn answer(r: Result<Value, SimError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = match e {
                SimError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct Edit {
    id: i64,
    fields: Map<String, Value>,
}
#[derive(Deserialize)]
struct Create {
    #[serde(rename = "type")]
    work_item_type: String,
    #[serde(default)]
    fields: Map<String, Value>,
}
#[derive(Deserialize)]
struct Id {
    id: i64,
}
#[derive(Deserialize)]
struct Comment {
    id: i64,
    text: String,
}
#[derive(Deserialize)]
struct Relation {
    id: i64,
    rel: String,
    url: String,
}
#[derive(Deserialize)]
struct Clock {
    #[serde(default)]
    offset_ms: Option<i64>,
    /// An RFC 3339 instant to freeze at.
    #[serde(default)]
    freeze: Option<String>,
    #[serde(default)]
    unfreeze: bool,
    #[serde(default)]
    advance_ms: Option<i64>,
}

pub(super) fn router(_inner: Arc<Inner>) -> Router<Arc<Inner>> {
    Router::new()
        .route(
            "/__sim/seed",
            post(|State(i): S, Json(seed): Json<AdoSeed>| async move {
                answer(i.seed(seed).map(|ids| json!({ "ids": ids })))
            }),
        )
        .route(
            "/__sim/reset",
            post(|State(i): S| async move {
                i.reset();
                answer(Ok(json!({})))
            }),
        )
        .route(
            "/__sim/create",
            post(|State(i): S, Json(c): Json<Create>| async move {
                answer(
                    i.ui_create(&c.work_item_type, c.fields)
                        .map(|id| json!({ "id": id })),
                )
            }),
        )
        .route(
            "/__sim/edit",
            post(|State(i): S, Json(e): Json<Edit>| async move {
                answer(i.ui_edit(e.id, e.fields).map(|_| json!({})))
            }),
        )
        .route(
            "/__sim/relation",
            post(|State(i): S, Json(r): Json<Relation>| async move {
                answer(i.ui_add_relation(r.id, &r.rel, &r.url).map(|_| json!({})))
            }),
        )
        .route(
            "/__sim/delete",
            post(|State(i): S, Json(d): Json<Id>| async move {
                answer(i.ui_delete(d.id).map(|_| json!({})))
            }),
        )
        .route(
            "/__sim/comment",
            post(|State(i): S, Json(c): Json<Comment>| async move {
                answer(i.ui_comment(c.id, &c.text).map(|_| json!({})))
            }),
        )
        .route(
            "/__sim/state",
            get(|State(i): S| async move {
                let store = lock(&i.store);
                let items: Vec<Value> = store
                    .live_items()
                    .map(|w| serde_json::to_value(w).unwrap_or(Value::Null))
                    .collect();
                let deleted: Vec<i64> = store.deleted().map(|(w, _)| w.id).collect();
                Json(json!({"items": items, "deleted": deleted}))
            }),
        )
        .route(
            "/__sim/log",
            get(|State(i): S| async move { Json(json!(i.log.entries())) }).delete(
                |State(i): S| async move {
                    i.log.clear();
                    Json(json!({}))
                },
            ),
        )
        .route(
            "/__sim/faults",
            post(|State(i): S, Json(rule): Json<FaultRule>| async move {
                i.faults.add(rule);
                Json(json!({}))
            })
            .delete(|State(i): S| async move {
                i.faults.clear();
                Json(json!({}))
            })
            .get(|State(i): S| async move { Json(json!(i.faults.rules())) }),
        )
        .route(
            "/__sim/clock",
            post(|State(i): S, Json(c): Json<Clock>| async move {
                if let Some(ms) = c.offset_ms {
                    i.clock.set_offset(chrono::Duration::milliseconds(ms));
                }
                if c.unfreeze {
                    i.clock.freeze(None);
                }
                if let Some(at) = c.freeze {
                    match chrono::DateTime::parse_from_rfc3339(&at) {
                        Ok(t) => i.clock.freeze(Some(t.with_timezone(&chrono::Utc))),
                        Err(e) => {
                            return answer(Err(SimError::Invalid(format!(
                                "freeze: '{at}' is not an RFC 3339 instant: {e}"
                            ))))
                        }
                    }
                }
                if let Some(ms) = c.advance_ms {
                    i.clock.advance(chrono::Duration::milliseconds(ms));
                }
                answer(Ok(json!({"now": super::state::format_date(i.clock.now())})))
            }),
        )
}
