//! Between ADO's wire DTOs and the core's side records: work items → [`AdoRecord`],
//! [`AdoPatch`] / [`AdoCreate`] → JSON-Patch operations, and the smaller listings.
//!
//! The `decode_*` functions are public so that the official examples can be checked against
//! the exact path the client uses; they take raw bodies, never DTOs.
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::dto::{self, Collection, Identity, WiqlResult, WorkItem};
use super::{AdoComment, AdoState, AdoWorkItemType, WiqlPage};
use crate::core::model::{AdoCreate, AdoId, AdoPatch, AdoRecord, AdoStateCategory};
use crate::remote::{parse_timestamp, snippet, ApiError};

pub(crate) const F_ID: &str = "System.Id";
pub(crate) const F_REV: &str = "System.Rev";
pub(crate) const F_CHANGED: &str = "System.ChangedDate";
pub(crate) const F_CREATED: &str = "System.CreatedDate";
pub(crate) const F_TYPE: &str = "System.WorkItemType";
pub(crate) const F_AREA: &str = "System.AreaPath";
pub(crate) const F_STATE: &str = "System.State";
pub(crate) const F_TITLE: &str = "System.Title";
pub(crate) const F_DESCRIPTION: &str = "System.Description";
pub(crate) const F_ASSIGNED: &str = "System.AssignedTo";
pub(crate) const F_TAGS: &str = "System.Tags";
pub(crate) const F_PRIORITY: &str = "Microsoft.VSTS.Common.Priority";
pub(crate) const F_DUE: &str = "Microsoft.VSTS.Scheduling.DueDate";
pub(crate) const F_PARENT: &str = "System.Parent";

/// The fields a batch read asks for: exactly what [`AdoRecord`] holds.
pub(crate) const RECORD_FIELDS: [&str; 14] = [
    F_ID,
    F_REV,
    F_CHANGED,
    F_CREATED,
    F_TYPE,
    F_AREA,
    F_STATE,
    F_TITLE,
    F_DESCRIPTION,
    F_ASSIGNED,
    F_TAGS,
    F_PRIORITY,
    F_DUE,
    F_PARENT,
];

pub(crate) const REL_PARENT: &str = "System.LinkTypes.Hierarchy-Reverse";
pub(crate) const REL_HYPERLINK: &str = "Hyperlink";

/// Formats an instant as a WIQL / field literal: UTC, milliseconds, `Z`.
pub fn wiql_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

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

/// A WIQL answer: ids in the order given, and the server time the query ran at.
pub fn decode_wiql(body: &[u8]) -> Result<WiqlPage, ApiError> {
    let op = "read a WIQL answer";
    let r: WiqlResult = parse(body, op)?;
    let mut ids: Vec<AdoId> = r.work_items.iter().map(|w| w.id).collect();
    if ids.is_empty() {
        // Link queries list their items as relation targets.
        let mut seen = std::collections::HashSet::new();
        ids = r
            .work_item_relations
            .iter()
            .filter_map(|l| l.target.as_ref().map(|t| t.id))
            .filter(|id| seen.insert(*id))
            .collect();
    }
    let as_of = match r.as_of.as_deref() {
        Some(s) => Some(
            parse_timestamp(s)
                .ok_or_else(|| ApiError::protocol(op, format!("asOf {s:?} is not a date")))?,
        ),
        None => None,
    };
    Ok(WiqlPage { ids, as_of })
}

/// One work item (GET by id, create and update answers).
pub fn decode_work_item(body: &[u8], web_base: &str) -> Result<AdoRecord, ApiError> {
    let w: WorkItem = parse(body, "read a work item")?;
    to_record(&w, web_base)
}

/// A `{count, value}` list of work items; `null` slots (deleted or forbidden) stay `None`.
pub fn decode_work_items(body: &[u8], web_base: &str) -> Result<Vec<Option<AdoRecord>>, ApiError> {
    let c: Collection<Option<WorkItem>> = parse(body, "read a list of work items")?;
    c.value
        .iter()
        .map(|w| w.as_ref().map(|w| to_record(w, web_base)).transpose())
        .collect()
}

/// A `{count, value}` list of work items, each mapped on its own: `Ok(None)` for a `null`
/// slot, `Err` (naming the item) for one that does not map, without failing the others.
/// The id is `None` only when the item's JSON has no readable id.
#[allow(clippy::type_complexity)]
pub fn decode_work_items_each(
    body: &[u8],
    web_base: &str,
) -> Result<Vec<(Option<AdoId>, Result<Option<AdoRecord>, ApiError>)>, ApiError> {
    let c: Collection<Value> = parse(body, "read a list of work items")?;
    Ok(c.value
        .into_iter()
        .map(|v| {
            if v.is_null() {
                return (None, Ok(None));
            }
            let id = v.get("id").and_then(Value::as_i64);
            let r = serde_json::from_value::<WorkItem>(v)
                .map_err(|e| {
                    ApiError::protocol(
                        &format!(
                            "map ADO work item {}",
                            id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                        ),
                        e.to_string(),
                    )
                })
                .and_then(|w| to_record(&w, web_base))
                .map(Some);
            (id, r)
        })
        .collect())
}

/// The `relations` of one work item, as the client needs them to remove one by index.
pub(crate) fn decode_relations(
    body: &[u8],
    op: &str,
) -> Result<(i64, Vec<dto::Relation>), ApiError> {
    let w: WorkItem = parse(body, op)?;
    Ok((w.rev, w.relations.unwrap_or_default()))
}

/// A comments page and its continuation token (`None` on the last page).
pub fn decode_comments(body: &[u8]) -> Result<(Vec<AdoComment>, Option<String>), ApiError> {
    let op = "read work item comments";
    let list: dto::CommentList = parse(body, op)?;
    let comments = list
        .comments
        .iter()
        .map(|c| to_comment(c, op))
        .collect::<Result<_, _>>()?;
    Ok((comments, list.continuation_token.filter(|t| !t.is_empty())))
}

pub fn decode_comment(body: &[u8]) -> Result<AdoComment, ApiError> {
    let op = "read a work item comment";
    let c: dto::Comment = parse(body, op)?;
    to_comment(&c, op)
}

fn to_comment(c: &dto::Comment, op: &str) -> Result<AdoComment, ApiError> {
    let id =
        c.id.or(c.comment_id)
            .ok_or_else(|| ApiError::protocol(op, "a comment has no id"))?;
    Ok(AdoComment {
        id,
        work_item_id: c.work_item_id,
        text: c.text.clone().unwrap_or_default(),
        created_by: c.created_by.as_ref().and_then(identity_email),
        created_date: c.created_date.as_deref().and_then(parse_timestamp),
        modified_date: c.modified_date.as_deref().and_then(parse_timestamp),
        is_deleted: c.is_deleted,
    })
}

/// Work item types (`GET …/workitemtypes`), or one type (`GET …/workitemtypes/{type}`).
pub fn decode_work_item_types(body: &[u8]) -> Result<Vec<AdoWorkItemType>, ApiError> {
    let op = "read work item types";
    let v: Value = parse(body, op)?;
    let list: Vec<dto::WorkItemType> = if v.get("value").is_some() {
        serde_json::from_value::<Collection<dto::WorkItemType>>(v)
            .map_err(|e| ApiError::protocol(op, e.to_string()))?
            .value
    } else {
        vec![serde_json::from_value(v).map_err(|e| ApiError::protocol(op, e.to_string()))?]
    };
    Ok(list
        .into_iter()
        .map(|t| AdoWorkItemType {
            name: t.name,
            reference_name: t.reference_name,
            is_disabled: t.is_disabled,
            states: t
                .states
                .unwrap_or_default()
                .into_iter()
                .map(to_state)
                .collect(),
        })
        .collect())
}

/// The states of one work item type, with their categories.
pub fn decode_states(body: &[u8]) -> Result<Vec<AdoState>, ApiError> {
    let c: Collection<dto::StateDto> = parse(body, "read work item type states")?;
    Ok(c.value.into_iter().map(to_state).collect())
}

fn to_state(s: dto::StateDto) -> AdoState {
    let category = s.category.as_deref().and_then(state_category);
    AdoState {
        name: s.name,
        category,
        raw_category: s.category.unwrap_or_default(),
    }
}

pub fn state_category(s: &str) -> Option<AdoStateCategory> {
    match s.to_ascii_lowercase().as_str() {
        "proposed" => Some(AdoStateCategory::Proposed),
        "inprogress" | "in progress" => Some(AdoStateCategory::InProgress),
        "resolved" => Some(AdoStateCategory::Resolved),
        "completed" => Some(AdoStateCategory::Completed),
        "removed" => Some(AdoStateCategory::Removed),
        _ => None,
    }
}

/// The email of an identity field: `uniqueName` of an identity object, or the `<…>` part of
/// the `"Name <email>"` string form; lowercased.
fn identity_email(i: &Identity) -> Option<String> {
    let raw = match i {
        Identity::Ref {
            unique_name,
            display_name,
        } => unique_name.clone().or_else(|| display_name.clone())?,
        Identity::Text(s) => s.clone(),
    };
    let raw = raw.trim();
    let email = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(a), Some(b)) if a < b => raw[a + 1..b].trim(),
        _ => raw,
    };
    (!email.is_empty()).then(|| email.to_lowercase())
}

/// `"a; b;c"` → `["a", "b", "c"]`.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn join_tags(tags: &[String]) -> String {
    tags.iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<&str> {
    v.as_str()
}

/// The id at the end of a work item URL (`…/workItems/82`).
pub(crate) fn id_from_url(url: &str) -> Option<AdoId> {
    url.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

/// Builds the side record. `System.ChangedDate` is required (the cursor depends on it); other
/// fields default when absent, as ADO omits empty fields.
pub(crate) fn to_record(w: &WorkItem, web_base: &str) -> Result<AdoRecord, ApiError> {
    let op = format!("map ADO work item {}", w.id);
    let f = &w.fields;
    let date = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        match f.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => parse_timestamp(s)
                .map(Some)
                .ok_or_else(|| ApiError::protocol(&op, format!("{name} {s:?} is not a date"))),
            Some(other) => Err(ApiError::protocol(
                &op,
                format!("{name} is not a date: {other}"),
            )),
        }
    };
    let changed_date = date(F_CHANGED)?
        .ok_or_else(|| ApiError::protocol(&op, format!("{F_CHANGED} is missing")))?;
    let text = |name: &str| f.get(name).and_then(as_str).unwrap_or_default().to_string();
    let assigned_to = match f.get(F_ASSIGNED) {
        None | Some(Value::Null) => None,
        Some(v) => serde_json::from_value::<Identity>(v.clone())
            .ok()
            .as_ref()
            .and_then(identity_email),
    };
    let priority = match f.get(F_PRIORITY) {
        None | Some(Value::Null) => None,
        Some(v) => Some(as_i64(v).ok_or_else(|| {
            ApiError::protocol(&op, format!("{F_PRIORITY} is not a number: {v}"))
        })?),
    };
    let parent = match f.get(F_PARENT) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            as_i64(v)
                .ok_or_else(|| ApiError::protocol(&op, format!("{F_PARENT} is not an id: {v}")))?,
        ),
    };
    let relations = w.relations.as_deref().unwrap_or_default();
    // With `$expand=relations` the parent shows as a relation, possibly without System.Parent.
    let parent = parent.or_else(|| {
        relations
            .iter()
            .find(|r| r.rel == REL_PARENT)
            .and_then(|r| id_from_url(&r.url))
    });
    let hyperlinks = relations
        .iter()
        .filter(|r| r.rel == REL_HYPERLINK)
        .map(|r| r.url.clone())
        .collect();
    Ok(AdoRecord {
        id: w.id,
        rev: w.rev,
        changed_date,
        created_date: date(F_CREATED)?,
        work_item_type: text(F_TYPE),
        area_path: text(F_AREA),
        state: text(F_STATE),
        title: text(F_TITLE),
        description_html: text(F_DESCRIPTION),
        assigned_to,
        tags: f
            .get(F_TAGS)
            .and_then(as_str)
            .map(split_tags)
            .unwrap_or_default(),
        priority,
        due_date: date(F_DUE)?,
        parent,
        hyperlinks,
        web_url: format!(
            "{}/_workitems/edit/{}",
            web_base.trim_end_matches('/'),
            w.id
        ),
    })
}

fn op(op: &str, path: String, value: Value) -> Value {
    json!({"op": op, "path": path, "value": value})
}

fn field(name: &str) -> String {
    format!("/fields/{name}")
}

/// A relation value pointing at another work item (`url` is the org-level API URL).
pub(crate) fn parent_relation(parent_api_url: &str) -> Value {
    json!({"rel": REL_PARENT, "url": parent_api_url})
}

pub(crate) fn hyperlink_relation(url: &str) -> Value {
    json!({"rel": REL_HYPERLINK, "url": url, "attributes": {"comment": "ado-clickup-sync link"}})
}

/// The field operations of a patch (no `test /rev`, no relations: the client adds those).
/// `None` leaves a field alone; a cleared value is written as ADO clears it.
pub(crate) fn field_ops(p: &AdoPatch) -> Vec<Value> {
    let mut ops = Vec::new();
    if let Some(t) = &p.title {
        ops.push(op("add", field(F_TITLE), json!(t)));
    }
    if let Some(d) = &p.description_html {
        ops.push(op("add", field(F_DESCRIPTION), json!(d)));
    }
    if let Some(s) = &p.state {
        ops.push(op("add", field(F_STATE), json!(s)));
    }
    match &p.assigned_to {
        Some(Some(email)) => ops.push(op("add", field(F_ASSIGNED), json!(email))),
        // An empty string is how ADO clears an identity field.
        Some(None) => ops.push(op("add", field(F_ASSIGNED), json!(""))),
        None => {}
    }
    match &p.tags {
        // `add` would merge with the current tags; `replace` with the full list removes too.
        Some(tags) if !join_tags(tags).is_empty() => {
            ops.push(op("replace", field(F_TAGS), json!(join_tags(tags))))
        }
        Some(_) => ops.push(json!({"op": "remove", "path": field(F_TAGS)})),
        None => {}
    }
    match &p.priority {
        Some(Some(n)) => ops.push(op("add", field(F_PRIORITY), json!(n))),
        Some(None) => ops.push(json!({"op": "remove", "path": field(F_PRIORITY)})),
        None => {}
    }
    match &p.due_date {
        Some(Some(t)) => ops.push(op("add", field(F_DUE), json!(wiql_time(*t)))),
        Some(None) => ops.push(json!({"op": "remove", "path": field(F_DUE)})),
        None => {}
    }
    ops
}

/// The operations of a create: every set field, the area path, the back-link `Hyperlink`
/// relation and the parent relation. Clears (`Some(None)`) mean nothing on a new item.
pub(crate) fn create_ops(c: &AdoCreate, parent_api_url: Option<&str>) -> Vec<Value> {
    let mut fields = c.fields.clone();
    if fields.assigned_to == Some(None) {
        fields.assigned_to = None;
    }
    if fields.priority == Some(None) {
        fields.priority = None;
    }
    if fields.due_date == Some(None) {
        fields.due_date = None;
    }
    if fields
        .tags
        .as_ref()
        .map(|t| join_tags(t).is_empty())
        .unwrap_or(false)
    {
        fields.tags = None;
    }
    let mut ops: Vec<Value> = field_ops(&fields)
        .into_iter()
        .map(|mut o| {
            // On a new item every set field is an `add`.
            o["op"] = json!("add");
            o
        })
        .collect();
    if let Some(area) = c.area_path.as_deref().filter(|a| !a.is_empty()) {
        ops.push(op("add", field(F_AREA), json!(area)));
    }
    ops.push(op(
        "add",
        "/relations/-".into(),
        hyperlink_relation(&c.backlink_url),
    ));
    if let Some(url) = parent_api_url {
        ops.push(op("add", "/relations/-".into(), parent_relation(url)));
    }
    ops
}

/// The `test /rev` guard every update starts with.
pub(crate) fn rev_test(rev: i64) -> Value {
    json!({"op": "test", "path": "/rev", "value": rev})
}

/// Index of the parent relation among a work item's relations, if any.
pub(crate) fn parent_relation_index(relations: &[dto::Relation]) -> Option<(usize, Option<AdoId>)> {
    relations
        .iter()
        .position(|r| r.rel == REL_PARENT)
        .map(|i| (i, id_from_url(&relations[i].url)))
}

/// The message and field of an ADO error body (`WrappedException`), if it is one.
pub(crate) fn decode_error(body: &[u8]) -> Option<(String, Option<String>, Option<String>)> {
    let e: dto::ErrorBody = serde_json::from_slice(body).ok()?;
    let message = e.message?;
    let field = error_field(&message, e.custom_properties.as_ref());
    Some((message, e.type_key, field))
}

/// ADO names the field in the message (`Rule Error for field Title`, `Cannot find field X.`)
/// or in `customProperties.RuleValidationErrors[].fieldReferenceName`.
fn error_field(message: &str, custom: Option<&Value>) -> Option<String> {
    if let Some(errs) = custom
        .and_then(|c| c.get("RuleValidationErrors"))
        .and_then(Value::as_array)
    {
        if let Some(f) = errs
            .iter()
            .find_map(|e| e.get("fieldReferenceName").and_then(Value::as_str))
        {
            return Some(f.to_string());
        }
    }
    for marker in ["for field ", "Cannot find field ", "field "] {
        if let Some(i) = message.find(marker) {
            let rest = message[i + marker.len()..].trim_start_matches(['\'', '"', '«']);
            // Names may hold dots (`Custom.X`) and spaces (`Assigned To`): a sentence ends at
            // ". " or the end of the message.
            let end = rest.find(". ").unwrap_or(rest.len());
            let name: String = rest[..end]
                .chars()
                .take_while(|c| !matches!(c, '\'' | '"' | '»' | ',' | ':' | '(' | ')'))
                .collect();
            let name = name.trim().trim_end_matches('.').to_string();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(fields: Value) -> WorkItem {
        serde_json::from_value(json!({"id": 5, "rev": 3, "fields": fields, "url": "x"})).unwrap()
    }

    #[test]
    fn record_from_fields_with_string_identity_and_spaced_tags() {
        let w = item(json!({
            "System.ChangedDate": "2026-05-01T10:00:00.1234567Z",
            "System.Title": "T",
            "System.AssignedTo": "Jamal Hartnett <Fabrikam@Hotmail.com>",
            "System.Tags": "a;  b ; ;c",
            "Microsoft.VSTS.Common.Priority": 2.0,
            "System.Parent": 9
        }));
        let r = to_record(&w, "https://dev.azure.com/o/p").unwrap();
        assert_eq!(r.assigned_to.as_deref(), Some("fabrikam@hotmail.com"));
        assert_eq!(r.tags, vec!["a", "b", "c"]);
        assert_eq!(r.priority, Some(2));
        assert_eq!(r.parent, Some(9));
        assert_eq!(r.changed_date.timestamp_subsec_micros(), 123456);
        assert_eq!(r.web_url, "https://dev.azure.com/o/p/_workitems/edit/5");
    }

    #[test]
    fn each_item_of_a_batch_maps_or_fails_alone() {
        let body = json!({"count": 3, "value": [
            null,
            {"id": 1, "rev": 1, "fields": {"System.ChangedDate": "2024-01-01T00:00:00Z"}},
            {"id": 2, "rev": 4, "fields": {"System.Title": "no date"}}
        ]});
        let items = decode_work_items_each(body.to_string().as_bytes(), "b").unwrap();
        assert!(matches!(items[0], (None, Ok(None))));
        assert!(matches!(&items[1], (Some(1), Ok(Some(r))) if r.rev == 1));
        match &items[2] {
            (Some(2), Err(e)) => assert!(e.to_string().contains("work item 2"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_changed_date_is_a_protocol_error_naming_the_item() {
        let e = to_record(&item(json!({"System.Title": "T"})), "b").unwrap_err();
        assert_eq!(e.kind(), "protocol");
        assert!(e.to_string().contains("work item 5"), "{e}");
        assert!(e.to_string().contains("System.ChangedDate"), "{e}");
    }

    #[test]
    fn patch_ops_replace_tags_and_clear_fields() {
        let p = AdoPatch {
            title: Some("New".into()),
            assigned_to: Some(None),
            tags: Some(vec!["x".into(), "y".into()]),
            priority: Some(None),
            due_date: Some(Some(
                DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            )),
            ..Default::default()
        };
        let ops = field_ops(&p);
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op":"add","path":"/fields/System.Title","value":"New"},
                {"op":"add","path":"/fields/System.AssignedTo","value":""},
                {"op":"replace","path":"/fields/System.Tags","value":"x; y"},
                {"op":"remove","path":"/fields/Microsoft.VSTS.Common.Priority"},
                {"op":"add","path":"/fields/Microsoft.VSTS.Scheduling.DueDate","value":"2023-11-14T22:13:20.123Z"}
            ])
        );
        let empty = AdoPatch {
            tags: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            field_ops(&empty),
            vec![json!({"op":"remove","path":"/fields/System.Tags"})]
        );
    }

    #[test]
    fn create_ops_carry_backlink_and_parent() {
        let c = AdoCreate {
            work_item_type: "User Story".into(),
            area_path: Some("P\\Team".into()),
            fields: AdoPatch {
                title: Some("T".into()),
                assigned_to: Some(None),
                tags: Some(vec!["a".into()]),
                ..Default::default()
            },
            backlink_url: "https://app.clickup.com/t/abc".into(),
        };
        let ops = create_ops(&c, Some("https://dev.azure.com/o/_apis/wit/workItems/7"));
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op":"add","path":"/fields/System.Title","value":"T"},
                {"op":"add","path":"/fields/System.Tags","value":"a"},
                {"op":"add","path":"/fields/System.AreaPath","value":"P\\Team"},
                {"op":"add","path":"/relations/-","value":{"rel":"Hyperlink","url":"https://app.clickup.com/t/abc","attributes":{"comment":"ado-clickup-sync link"}}},
                {"op":"add","path":"/relations/-","value":{"rel":"System.LinkTypes.Hierarchy-Reverse","url":"https://dev.azure.com/o/_apis/wit/workItems/7"}}
            ])
        );
    }

    #[test]
    fn error_field_is_found_in_rule_errors() {
        let body = br#"{"$id":"1","message":"TF401320: Rule Error for field Title. Error code: Required, InvalidEmpty.","typeKey":"RuleValidationException"}"#;
        let (msg, key, field) = decode_error(body).unwrap();
        assert!(msg.starts_with("TF401320"));
        assert_eq!(key.as_deref(), Some("RuleValidationException"));
        assert_eq!(field.as_deref(), Some("Title"));
        let body = br#"{"message":"TF51535: Cannot find field Custom.Nope.","typeKey":"x"}"#;
        assert_eq!(
            decode_error(body).unwrap().2.as_deref(),
            Some("Custom.Nope")
        );
        assert!(decode_error(b"<html>401</html>").is_none());
    }
}
