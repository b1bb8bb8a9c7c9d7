//! The ClickUp client (API v2): filtered team task polling, task reads and writes (tags and
//! custom fields through their own endpoints), lists, members, comments and webhooks. Wire
//! DTOs stay in this folder (`dto.rs`); the rest of the crate sees
//! [`ClickUpRecord`](crate::core::model::ClickUpRecord) and the small types below.
mod client;
mod dto;
pub mod mapping;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::{ClickUpClient, LinkFieldError, TaskPoll};

use crate::core::model::{ClickUpStatusType, ClickUpUser};
use crate::remote::HttpPolicy;

/// The real service.
pub const DEFAULT_BASE_URL: &str = "https://api.clickup.com";

/// How the token is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A personal token (`pk_…`), sent bare: `Authorization: pk_…`.
    #[default]
    Personal,
    /// An OAuth access token: `Authorization: Bearer …`.
    OAuth,
}

/// What the ClickUp client needs to know. `Debug` never shows the token.
#[derive(Debug, Clone, Deserialize)]
pub struct ClickUpConfig {
    /// `https://api.clickup.com` unless pointed at a simulator or a proxy (`/api/v2` is added).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The workspace ("team") id.
    pub team_id: String,
    pub token: SecretString,
    #[serde(default)]
    pub token_kind: TokenKind,
    /// Rate limit default: 100 requests per minute per token (`requests_per_minute` unset
    /// also means 100; `0` turns the client-side limiter off).
    #[serde(default = "HttpPolicy::clickup_default")]
    pub policy: HttpPolicy,
    /// The custom field that holds the ADO work item URL (the back-link marker), if any.
    #[serde(default)]
    pub backlink_field_id: Option<String>,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

impl ClickUpConfig {
    pub fn new(team_id: &str, token: SecretString) -> Self {
        ClickUpConfig {
            base_url: default_base_url(),
            team_id: team_id.to_string(),
            token,
            token_kind: TokenKind::Personal,
            policy: HttpPolicy::clickup_default(),
            backlink_field_id: None,
        }
    }
}

/// A list and its statuses (status names are per list and case-sensitive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpList {
    pub id: String,
    pub name: String,
    /// In `orderindex` order.
    pub statuses: Vec<ClickUpListStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpListStatus {
    pub name: String,
    pub status_type: ClickUpStatusType,
    pub orderindex: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpCustomField {
    pub id: String,
    pub name: String,
    /// `short_text`, `url`, `number`, …
    pub field_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUpComment {
    pub id: String,
    /// Plain text (`comment_text`).
    pub text: String,
    pub user: Option<ClickUpUser>,
    /// ms since the epoch.
    pub date: Option<i64>,
}

/// A registered webhook. The secret signs deliveries (`X-Signature`); `Debug` hides it.
#[derive(Debug, Clone)]
pub struct ClickUpWebhook {
    pub id: String,
    pub team_id: Option<String>,
    pub endpoint: String,
    pub events: Vec<String>,
    pub list_id: Option<String>,
    pub task_id: Option<String>,
    /// `active`, `failing`, `suspended`.
    pub status: String,
    pub fail_count: i64,
    pub secret: Option<SecretString>,
}
