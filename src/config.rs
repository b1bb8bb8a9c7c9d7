//! Configuration: `config/default.toml`, then `config/local.toml` (or `--config PATH`), then the
//! environment (`SYNC_` prefix, `__` for nesting, plus the earlier prototype's variable names).
//!
//! Secrets (the ADO PAT, the ClickUp token, the webhook secret) are read only from the
//! environment or from a file named by a `*_FILE` variable / `*_file` key, and are held as
//! `SecretString`: a config file that contains one is refused, so they cannot leak through a
//! copied config or a printed error.
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::core::mapping::MappingConfig;

/// A configuration problem, naming the key and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}`: {problem}. Fix: {fix}")]
    Invalid {
        key: String,
        problem: String,
        fix: String,
    },
    #[error("reading config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("reading secret file {path} (from `{key}`): {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(with = "humantime_serde", default = "defaults::poll_interval")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde", default = "defaults::sweep_interval")]
    pub sweep_interval: Duration,
    /// How far back each poll re-reads before its cursor, to absorb clock skew and late commits.
    #[serde(with = "humantime_serde", default = "defaults::overlap")]
    pub overlap: Duration,
    /// Minimum gap between two cycles woken by nudges.
    #[serde(with = "humantime_serde", default = "defaults::nudge_min_gap")]
    pub nudge_min_gap: Duration,
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default = "defaults::database_url")]
    pub database_url: String,
    #[serde(default)]
    pub server: ServerConfig,
    pub ado: AdoConfig,
    pub clickup: ClickUpConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    pub pairs: Vec<PairConfig>,
    /// Secrets are filled in from the environment after parsing, never from files.
    #[serde(skip)]
    pub secrets: Secrets,
}

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub ado_pat: Option<SecretString>,
    pub clickup_token: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "defaults::port")]
    pub port: u16,
    #[serde(default = "defaults::bind")]
    pub bind: String,
    /// Where this service is reachable from the internet, for webhook registration (optional).
    #[serde(default)]
    pub public_url: Option<Url>,
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: defaults::port(),
            bind: defaults::bind(),
            public_url: None,
            webhook_secret_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoConfig {
    #[serde(default = "defaults::ado_base_url")]
    pub base_url: Url,
    pub organization: String,
    pub project: String,
    #[serde(default)]
    pub pat_file: Option<PathBuf>,
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    #[serde(with = "humantime_serde", default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickUpConfig {
    #[serde(default = "defaults::clickup_base_url")]
    pub base_url: Url,
    pub workspace_id: String,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Sized to the workspace's plan: 100 (Free, Unlimited, Business), 1000, 10000.
    #[serde(default = "defaults::requests_per_minute")]
    pub requests_per_minute: u32,
    /// Name or id of the URL custom field that holds the ADO back-link (optional).
    #[serde(default)]
    pub link_field: Option<String>,
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    #[serde(with = "humantime_serde", default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "defaults::max_creates")]
    pub max_creates_per_cycle: usize,
    #[serde(default = "defaults::max_unlinks")]
    pub max_unlinks_per_cycle: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_creates_per_cycle: defaults::max_creates(),
            max_unlinks_per_cycle: defaults::max_unlinks(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    pub name: String,
    pub ado: AdoScope,
    pub clickup: ClickUpScope,
    #[serde(default)]
    pub mapping: MappingConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoScope {
    /// Extra WIQL condition, ANDed with the rest (e.g. `[System.Tags] CONTAINS 'sync'`).
    #[serde(default)]
    pub wiql: Option<String>,
    /// Only items UNDER this area path.
    #[serde(default)]
    pub area_path: Option<String>,
    /// Only these work item types (empty: all).
    #[serde(default)]
    pub work_item_types: Vec<String>,
    /// Type of the work items created from ClickUp tasks.
    #[serde(default = "defaults::default_type")]
    pub default_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickUpScope {
    pub list_ids: Vec<String>,
    /// The list new tasks are created in (default: the first of `list_ids`).
    #[serde(default)]
    pub create_in: Option<String>,
}

impl AdoScope {
    /// The WIQL condition that selects this pair's items (without the ChangedDate cursor).
    pub fn wiql_clause(&self) -> String {
        let mut parts = vec!["[System.TeamProject] = @project".to_string()];
        if let Some(area) = &self.area_path {
            parts.push(format!("[System.AreaPath] UNDER '{}'", wiql_quote(area)));
        }
        if !self.work_item_types.is_empty() {
            let list: Vec<String> = self
                .work_item_types
                .iter()
                .map(|t| format!("'{}'", wiql_quote(t)))
                .collect();
            parts.push(format!("[System.WorkItemType] IN ({})", list.join(", ")));
        }
        if let Some(extra) = &self.wiql {
            parts.push(format!("({extra})"));
        }
        parts.join(" AND ")
    }
}

fn wiql_quote(s: &str) -> String {
    s.replace('\'', "''")
}

mod defaults {
    use std::time::Duration;
    use url::Url;

    pub fn poll_interval() -> Duration {
        Duration::from_secs(30)
    }
    pub fn sweep_interval() -> Duration {
        Duration::from_secs(6 * 3600)
    }
    pub fn overlap() -> Duration {
        Duration::from_secs(300)
    }
    pub fn nudge_min_gap() -> Duration {
        Duration::from_secs(2)
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn database_url() -> String {
        "./data/sync.db".into()
    }
    pub fn port() -> u16 {
        8080
    }
    pub fn bind() -> String {
        "0.0.0.0".into()
    }
    pub fn ado_base_url() -> Url {
        Url::parse("https://dev.azure.com").unwrap_or_else(|_| unreachable!())
    }
    pub fn clickup_base_url() -> Url {
        Url::parse("https://api.clickup.com").unwrap_or_else(|_| unreachable!())
    }
    pub fn concurrency() -> usize {
        4
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn requests_per_minute() -> u32 {
        100
    }
    pub fn max_creates() -> usize {
        500
    }
    pub fn max_unlinks() -> usize {
        20
    }
    pub fn default_type() -> String {
        "Task".into()
    }
}

/// The earlier prototype's environment names → config keys (non-secret ones).
const LEGACY_ENV: &[(&str, &str)] = &[
    ("ADO_ORGANIZATION", "ado.organization"),
    ("ADO_PROJECT", "ado.project"),
    ("CLICKUP_WORKSPACE_ID", "clickup.workspace_id"),
    ("PUBLIC_URL", "server.public_url"),
    ("LOG_LEVEL", "log_level"),
    ("DATABASE_URL", "database_url"),
];

/// Keys that would hold a secret; refused in files.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("ado.pat", "ADO_PAT (or ADO_PAT_FILE / ado.pat_file)"),
    (
        "clickup.token",
        "CLICKUP_API_TOKEN (or CLICKUP_API_TOKEN_FILE / clickup.token_file)",
    ),
    (
        "clickup.api_token",
        "CLICKUP_API_TOKEN (or CLICKUP_API_TOKEN_FILE / clickup.token_file)",
    ),
    (
        "server.webhook_secret",
        "WEBHOOK_SECRET (or WEBHOOK_SECRET_FILE / server.webhook_secret_file)",
    ),
    (
        "webhook_secret",
        "WEBHOOK_SECRET (or WEBHOOK_SECRET_FILE / server.webhook_secret_file)",
    ),
];

/// Where to read configuration from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub default_file: PathBuf,
    /// `config/local.toml` by default (optional), or the `--config` path (required).
    pub local_file: Option<PathBuf>,
    pub local_required: bool,
}

impl Sources {
    pub fn standard(config_arg: Option<&Path>) -> Sources {
        match config_arg {
            Some(p) => Sources {
                default_file: PathBuf::from("config/default.toml"),
                local_file: Some(p.to_path_buf()),
                local_required: true,
            },
            None => Sources {
                default_file: PathBuf::from("config/default.toml"),
                local_file: Some(PathBuf::from("config/local.toml")),
                local_required: false,
            },
        }
    }
}

/// Loads and validates the configuration, reading the process environment.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(sources, &env)
}

/// Loads with an explicit environment (tests pass their own).
pub fn load_with_env(sources: &Sources, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };

    let mut files = config::Config::builder();
    if sources.default_file.exists() {
        files = files.add_source(config::File::from(sources.default_file.as_path()));
    }
    if let Some(local) = &sources.local_file {
        if sources.local_required && !local.exists() {
            return Err(ConfigError::invalid(
                "--config",
                format!("file {} does not exist", local.display()),
                "pass the path of an existing TOML file",
            ));
        }
        files = files.add_source(config::File::from(local.as_path()).required(false));
    }
    let file_only = files.build_cloned().map_err(|e| file_error(sources, e))?;
    for (key, var) in SECRET_KEYS {
        if file_only.get::<config::Value>(key).is_ok() {
            return Err(ConfigError::invalid(
                *key,
                "secrets are not accepted in config files",
                format!("remove it from the file and set {var}"),
            ));
        }
    }

    let mut builder = files.add_source(
        config::Environment::with_prefix("SYNC")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("pairs")
            .source(Some(env.iter().cloned().collect())),
    );
    for (var, key) in LEGACY_ENV {
        if let Some(v) = get(var) {
            builder = builder
                .set_override(*key, v)
                .map_err(|e| ConfigError::invalid(*key, e.to_string(), format!("check {var}")))?;
        }
    }
    let merged = builder.build().map_err(|e| file_error(sources, e))?;
    let tree: serde_json::Value = merged
        .try_deserialize()
        .map_err(|e| ConfigError::invalid("(top level)", e.to_string(), "check the TOML syntax"))?;
    // Secrets given as SYNC_* variables land in the tree; they are read from the environment
    // below, so drop them here rather than reject them as unknown keys.
    let mut tree = tree;
    for (key, _) in SECRET_KEYS {
        remove_key(&mut tree, key);
    }
    let mut cfg: Config = deserialize_named(tree)?;

    cfg.secrets = Secrets {
        ado_pat: secret(
            env,
            &["ADO_PAT", "SYNC_ADO__PAT"],
            "ADO_PAT_FILE",
            cfg.ado.pat_file.as_deref(),
        )?,
        clickup_token: secret(
            env,
            &["CLICKUP_API_TOKEN", "SYNC_CLICKUP__TOKEN"],
            "CLICKUP_API_TOKEN_FILE",
            cfg.clickup.token_file.as_deref(),
        )?,
        webhook_secret: secret(
            env,
            &["WEBHOOK_SECRET", "SYNC_SERVER__WEBHOOK_SECRET"],
            "WEBHOOK_SECRET_FILE",
            cfg.server.webhook_secret_file.as_deref(),
        )?,
    };
    validate(&cfg)?;
    Ok(cfg)
}

fn remove_key(tree: &mut serde_json::Value, dotted: &str) {
    let mut node = tree;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            map.remove(part);
            return;
        }
        match map.get_mut(part) {
            Some(next) => node = next,
            None => return,
        }
    }
}

fn file_error(sources: &Sources, e: config::ConfigError) -> ConfigError {
    let path = sources
        .local_file
        .clone()
        .unwrap_or_else(|| sources.default_file.clone());
    ConfigError::File {
        path,
        message: without_quoted_lines(&e.to_string()),
    }
}

/// A TOML syntax error quotes the offending line (`5 | pat = "…`), which may hold a secret
/// put in the file by mistake: keep the position and the reason, drop the quote.
fn without_quoted_lines(message: &str) -> String {
    message
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            !(digits > 0 && t[digits..].trim_start().starts_with('|'))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Deserializes with the full key path in every error (e.g. `pairs[0].mapping.fields.title`).
fn deserialize_named(tree: serde_json::Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = match e.path().to_string() {
            // serde_path_to_error's name for the root.
            k if k == "." => "(top level)".to_string(),
            k => k,
        };
        let inner = e.into_inner().to_string();
        let fix = if inner.contains("unknown field") {
            "remove or rename the key (see config/default.toml for every valid key)".to_string()
        } else if inner.contains("missing field") {
            "add the key (see config/default.toml)".to_string()
        } else if inner.contains("unknown variant") {
            "use one of the values listed in the message".to_string()
        } else {
            "give a value of the right type (see config/default.toml)".to_string()
        };
        ConfigError::invalid(key, inner, fix)
    })
}

fn secret(
    env: &[(String, String)],
    names: &[&str],
    file_var: &str,
    file_key: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let from_env_file = env
        .iter()
        .find(|(k, v)| k == file_var && !v.is_empty())
        .map(|(_, v)| (file_var.to_string(), PathBuf::from(v)));
    let from_key = file_key.map(|p| ("*_file".to_string(), p.to_path_buf()));
    for n in names {
        if let Some((_, v)) = env.iter().find(|(k, v)| k == n && !v.is_empty()) {
            // Two sources of one secret: which one is meant is a guess, so ask.
            if let Some((file, _)) = from_env_file.as_ref().or(from_key.as_ref()) {
                return Err(ConfigError::invalid(
                    *n,
                    format!("is set, and so is {file}"),
                    format!("set either {n} or {file}, not both"),
                ));
            }
            return Ok(Some(SecretString::from(v.trim().to_string())));
        }
    }
    if let Some((key, path)) = from_env_file.or(from_key) {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
            key,
            path: path.clone(),
            source,
        })?;
        return Ok(Some(SecretString::from(text.trim().to_string())));
    }
    Ok(None)
}

fn validate(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.poll_interval < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "poll_interval",
            "must be at least 1s",
            "use e.g. \"30s\"",
        ));
    }
    for (key, d) in [
        ("ado.connect_timeout", cfg.ado.connect_timeout),
        ("ado.request_timeout", cfg.ado.request_timeout),
        ("clickup.connect_timeout", cfg.clickup.connect_timeout),
        ("clickup.request_timeout", cfg.clickup.request_timeout),
    ] {
        if d.is_zero() {
            return Err(ConfigError::invalid(
                key,
                "is 0 (every request would time out)",
                "use e.g. \"30s\"",
            ));
        }
    }
    if cfg.ado.organization.trim().is_empty() {
        return Err(ConfigError::invalid(
            "ado.organization",
            "is empty",
            "set ado.organization or ADO_ORGANIZATION",
        ));
    }
    if cfg.ado.project.trim().is_empty() {
        return Err(ConfigError::invalid(
            "ado.project",
            "is empty",
            "set ado.project or ADO_PROJECT",
        ));
    }
    if cfg.clickup.workspace_id.trim().is_empty() {
        return Err(ConfigError::invalid(
            "clickup.workspace_id",
            "is empty",
            "set clickup.workspace_id or CLICKUP_WORKSPACE_ID",
        ));
    }
    if cfg.ado.concurrency == 0 || cfg.clickup.concurrency == 0 {
        return Err(ConfigError::invalid(
            "ado.concurrency / clickup.concurrency",
            "must be at least 1",
            "use e.g. 4",
        ));
    }
    if cfg.clickup.requests_per_minute == 0 {
        return Err(ConfigError::invalid(
            "clickup.requests_per_minute",
            "must be at least 1",
            "use your plan's limit, e.g. 100",
        ));
    }
    if cfg.pairs.is_empty() {
        return Err(ConfigError::invalid(
            "pairs",
            "no sync pair is configured",
            "add a [[pairs]] table with ado and clickup scopes",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in cfg.pairs.iter().enumerate() {
        if p.name.trim().is_empty() || !names.insert(p.name.clone()) {
            return Err(ConfigError::invalid(
                format!("pairs[{i}].name"),
                "is empty or repeated",
                "give every pair a unique name",
            ));
        }
        if p.clickup.list_ids.is_empty() {
            return Err(ConfigError::invalid(
                format!("pairs[{i}].clickup.list_ids"),
                "is empty",
                "list the ClickUp list ids this pair syncs",
            ));
        }
        if let Some(c) = &p.clickup.create_in {
            if !p.clickup.list_ids.contains(c) {
                return Err(ConfigError::invalid(
                    format!("pairs[{i}].clickup.create_in"),
                    "is not one of list_ids",
                    "use one of the pair's list_ids",
                ));
            }
        }
    }
    Ok(())
}

impl Config {
    /// The ADO PAT, or an error that says how to provide it.
    pub fn ado_pat(&self) -> Result<SecretString, ConfigError> {
        self.secrets.ado_pat.clone().ok_or_else(|| {
            ConfigError::invalid(
                "ADO_PAT",
                "no Azure DevOps personal access token is set",
                "set ADO_PAT (or ADO_PAT_FILE / ado.pat_file)",
            )
        })
    }
    pub fn clickup_token(&self) -> Result<SecretString, ConfigError> {
        self.secrets.clickup_token.clone().ok_or_else(|| {
            ConfigError::invalid(
                "CLICKUP_API_TOKEN",
                "no ClickUp API token is set",
                "set CLICKUP_API_TOKEN (or CLICKUP_API_TOKEN_FILE / clickup.token_file)",
            )
        })
    }

    /// What [`crate::ado::AdoClient::new`] needs: the service root, organization, project, the
    /// PAT (an error saying how to set it when there is none) and the timeouts.
    pub fn ado_client_config(&self) -> Result<crate::ado::AdoConfig, ConfigError> {
        let mut c = crate::ado::AdoConfig::new(
            self.ado.organization.trim(),
            self.ado.project.trim(),
            self.ado_pat()?,
        );
        c.base_url = self.ado.base_url.to_string();
        c.policy.connect_timeout = self.ado.connect_timeout;
        c.policy.request_timeout = self.ado.request_timeout;
        Ok(c)
    }

    /// What [`crate::clickup::ClickUpClient::new`] needs: the service root, the workspace id,
    /// the token (an error saying how to set it when there is none), the plan's rate limit and
    /// the timeouts.
    ///
    /// `backlink_field_id` is left unset: `clickup.link_field` may be a field *name*, which
    /// only the service can turn into an id (`ClickUpClient::custom_fields` of the pair's
    /// lists); the caller resolves it and sets the id.
    pub fn clickup_client_config(&self) -> Result<crate::clickup::ClickUpConfig, ConfigError> {
        let mut c = crate::clickup::ClickUpConfig::new(
            self.clickup.workspace_id.trim(),
            self.clickup_token()?,
        );
        c.base_url = self.clickup.base_url.to_string();
        c.policy.connect_timeout = self.clickup.connect_timeout;
        c.policy.request_timeout = self.clickup.request_timeout;
        c.policy.requests_per_minute = Some(self.clickup.requests_per_minute);
        Ok(c)
    }
}
