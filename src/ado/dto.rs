//! ADO wire shapes (Work Item Tracking 7.1). Private to `src/ado/`: the rest of the crate sees
//! only the side records built in `mapping.rs`.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `WorkItemQueryResult` (flat queries only carry `workItems`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WiqlResult {
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub work_items: Vec<WorkItemRef>,
    #[serde(default)]
    pub work_item_relations: Vec<WorkItemLink>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkItemRef {
    pub id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkItemLink {
    #[serde(default)]
    pub target: Option<WorkItemRef>,
}

/// `{count, value: [...]}`; batch reads with `errorPolicy=omit` put `null` in the slot of a
/// missing item.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkItem {
    pub id: i64,
    pub rev: i64,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub relations: Option<Vec<Relation>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Relation {
    pub rel: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// `IdentityRef` as REST ≥ 5.0 returns it; older payloads send `"Name <email>"` strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Identity {
    Ref {
        #[serde(default, rename = "uniqueName")]
        unique_name: Option<String>,
        #[serde(default, rename = "displayName")]
        display_name: Option<String>,
    },
    Text(String),
}

/// `CommentList`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommentList {
    #[serde(default)]
    pub comments: Vec<Comment>,
    #[serde(default)]
    pub continuation_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Comment {
    /// The spec says `id`; old examples say `commentId`; answers may carry both.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub comment_id: Option<i64>,
    #[serde(default)]
    pub work_item_id: Option<i64>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub created_by: Option<Identity>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
    #[serde(default)]
    pub is_deleted: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkItemType {
    pub name: String,
    #[serde(default)]
    pub reference_name: Option<String>,
    #[serde(default)]
    pub is_disabled: bool,
    #[serde(default)]
    pub states: Option<Vec<StateDto>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StateDto {
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
}

/// ADO's error body (`WrappedException`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub type_key: Option<String>,
    #[serde(default)]
    pub custom_properties: Option<Value>,
}
