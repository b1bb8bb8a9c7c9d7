//! The Azure DevOps client: WIQL polling, batch reads, JSON-Patch writes with the `test /rev`
//! guard, comments and work item types. Wire DTOs stay in this folder (`dto.rs`); the rest of
//! the crate sees [`AdoRecord`](crate::core::model::AdoRecord) and the small types below.
mod client;
mod dto;
pub mod mapping;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::AdoClient;

use crate::core::model::{AdoId, AdoRecord, AdoStateCategory};
use crate::remote::{ApiError, HttpPolicy};

/// The real service.
pub const DEFAULT_BASE_URL: &str = "https://dev.azure.com";

/// What the ADO client needs to know. `Debug` never shows the PAT.
#[derive(Debug, Clone, Deserialize)]
pub struct AdoConfig {
    /// `https://dev.azure.com` unless pointed at a simulator or a proxy.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub organization: String,
    pub project: String,
    /// Personal access token (sent as HTTP Basic with an empty user name).
    pub pat: SecretString,
    #[serde(default = "HttpPolicy::ado_default")]
    pub policy: HttpPolicy,
    /// `$top` of each WIQL query; the service caps results at 20,000, so 19,999 is the most
    /// that never errors. Smaller values only make paging happen sooner (tests use that).
    #[serde(default = "default_wiql_page_size")]
    pub wiql_page_size: u32,
    /// Ids per batch read (the service allows at most 200).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
fn default_wiql_page_size() -> u32 {
    19_999
}
fn default_batch_size() -> usize {
    200
}

impl AdoConfig {
    pub fn new(organization: &str, project: &str, pat: SecretString) -> Self {
        AdoConfig {
            base_url: default_base_url(),
            organization: organization.to_string(),
            project: project.to_string(),
            pat,
            policy: HttpPolicy::ado_default(),
            wiql_page_size: default_wiql_page_size(),
            batch_size: default_batch_size(),
        }
    }
}

/// One decoded WIQL answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WiqlPage {
    pub ids: Vec<AdoId>,
    /// When the query ran, in server time.
    pub as_of: Option<DateTime<Utc>>,
}

/// The result of an incremental query: every id changed since the given instant, ordered by
/// (ChangedDate, Id), and the server time of the (first) query — the next cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedIds {
    pub ids: Vec<AdoId>,
    pub as_of: DateTime<Utc>,
}

/// One slot of a batch read. (Most slots are `Found`, so boxing the record would only add
/// an allocation per item.)
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum AdoSlot {
    Found(AdoRecord),
    /// Deleted, or not visible to the PAT (a `null` slot with `errorPolicy=omit`).
    Missing,
    /// The item came back but does not map (e.g. no `System.ChangedDate`): fails alone.
    Malformed(ApiError),
}

/// A work item comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoComment {
    pub id: i64,
    pub work_item_id: Option<AdoId>,
    /// HTML (ADO's default comment format).
    pub text: String,
    /// Lowercased email of the author.
    pub created_by: Option<String>,
    pub created_date: Option<DateTime<Utc>>,
    pub modified_date: Option<DateTime<Utc>>,
    pub is_deleted: bool,
}

/// A work item type and (when read with them) its states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoWorkItemType {
    pub name: String,
    pub reference_name: Option<String>,
    pub is_disabled: bool,
    pub states: Vec<AdoState>,
}

/// A state of a work item type with its category (the fallback key for status mapping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoState {
    pub name: String,
    /// `None` when the category is not one of the five known ones.
    pub category: Option<AdoStateCategory>,
    pub raw_category: String,
}
