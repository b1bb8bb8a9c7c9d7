//! ClickUp API v2 wire shapes. Private to `src/clickup/`. ClickUp sends numbers and dates as
//! strings (and sometimes not), so the numeric fields go through lenient deserializers.
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` → the type's default (serde's `default` only covers a missing key).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A number sent as a number, a string of one, or null/empty.
pub(crate) fn lenient_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

pub(crate) fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
        }
        _ => None,
    }
}

pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(lenient_i64))
}

pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(lenient_f64))
}

/// An id sent as a string or a number.
pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_id(d)?.ok_or_else(|| serde::de::Error::custom("missing id"))
}

/// Priority: `null`, an integer, a string, or `{id: "1".."4", priority: "urgent"…}`.
pub(crate) fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let from_name = |s: &str| match s.to_ascii_lowercase().as_str() {
        "urgent" => Some(1),
        "high" => Some(2),
        "normal" => Some(3),
        "low" => Some(4),
        _ => None,
    };
    let n = match &v {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => o.get("id").and_then(lenient_i64).or_else(|| {
            o.get("priority")
                .and_then(Value::as_str)
                .and_then(from_name)
        }),
        Some(Value::String(s)) => lenient_i64(&Value::String(s.clone())).or_else(|| from_name(s)),
        Some(other) => lenient_i64(other),
    };
    Ok(n.filter(|p| (1..=4).contains(p)).map(|p| p as u8))
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Task {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default)]
    pub markdown_description: Option<String>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub date_created: Option<i64>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub date_updated: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub archived: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub assignees: Vec<User>,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<Tag>,
    #[serde(default, deserialize_with = "opt_id")]
    pub parent: Option<String>,
    #[serde(default, deserialize_with = "priority")]
    pub priority: Option<u8>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub due_date: Option<i64>,
    #[serde(default)]
    pub due_date_time: Option<bool>,
    // `time_estimate` and `orderindex` (string, number or fractional) are not mapped and so
    // not read: serde skips them whatever their type.
    #[serde(default, deserialize_with = "null_default")]
    pub custom_fields: Vec<CustomFieldValue>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub list: Option<ListRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TaskStatus {
    pub status: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    #[serde(default, deserialize_with = "opt_i64")]
    pub id: Option<i64>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tag {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CustomFieldValue {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ListRef {
    #[serde(deserialize_with = "id")]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TasksPage {
    #[serde(default, deserialize_with = "null_default")]
    pub tasks: Vec<Value>,
    #[serde(default)]
    pub last_page: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct List {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub statuses: Vec<ListStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ListStatus {
    pub status: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "opt_f64")]
    pub orderindex: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Fields {
    #[serde(default, deserialize_with = "null_default")]
    pub fields: Vec<CustomFieldValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Teams {
    #[serde(default, deserialize_with = "null_default")]
    pub teams: Vec<Team>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Team {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Member {
    pub user: User,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AuthorizedUser {
    pub user: User,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Comments {
    #[serde(default, deserialize_with = "null_default")]
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Comment {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub comment_text: String,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub date: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CreatedComment {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "opt_i64")]
    pub date: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CreatedWebhook {
    pub webhook: Webhook,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Webhooks {
    #[serde(default, deserialize_with = "null_default")]
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Webhook {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "opt_id")]
    pub team_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub endpoint: String,
    /// A list of event names, or `"*"`.
    #[serde(default)]
    pub events: Option<Value>,
    #[serde(default, deserialize_with = "opt_id")]
    pub list_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub task_id: Option<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Health {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub fail_count: Option<i64>,
}

/// `{err, ECODE}`; a few endpoints say `error` instead of `err`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default, alias = "error")]
    pub err: Option<String>,
    #[serde(default, rename = "ECODE")]
    pub ecode: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}
