//! Config loading: layering, the prototype's env names, secrets handling, and that every
//! malformed config fails with an error naming the key.
use std::path::{Path, PathBuf};

use ado_clickup_sync::config::{load_with_env, Sources};
use secrecy::ExposeSecret;

const TOKEN: &str = "pk_12345_SUPERSECRETTOKEN";
const PAT: &str = "adopat-very-secret-value";

const MINIMAL: &str = r#"
[ado]
organization = "fabrikam"
project = "Fabrikam-Fiber"

[clickup]
workspace_id = "9011"

[[pairs]]
name = "team"
[pairs.ado]
area_path = "Fabrikam-Fiber\\Website"
[pairs.clickup]
list_ids = ["901100"]
"#;

fn default_toml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/default.toml")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn sources(local: &Path) -> Sources {
    Sources {
        default_file: default_toml(),
        local_file: Some(local.to_path_buf()),
        local_required: true,
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn secrets() -> Vec<(String, String)> {
    env(&[("ADO_PAT", PAT), ("CLICKUP_API_TOKEN", TOKEN)])
}

#[test]
fn defaults_file_plus_minimal_local_loads_with_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.toml", MINIMAL);
    let cfg = load_with_env(&sources(&local), &secrets()).unwrap();
    assert_eq!(cfg.poll_interval, std::time::Duration::from_secs(30));
    assert_eq!(cfg.overlap, std::time::Duration::from_secs(300));
    assert_eq!(cfg.server.port, 8080);
    assert_eq!(cfg.database_url, "./data/sync.db");
    assert_eq!(cfg.clickup.requests_per_minute, 100);
    assert_eq!(cfg.limits.max_creates_per_cycle, 500);
    assert_eq!(cfg.pairs[0].name, "team");
    assert_eq!(
        cfg.pairs[0].ado.wiql_clause(),
        "[System.TeamProject] = @project AND [System.AreaPath] UNDER 'Fabrikam-Fiber\\Website'"
    );
    assert_eq!(cfg.ado_pat().unwrap().expose_secret(), PAT);
    assert_eq!(cfg.clickup_token().unwrap().expose_secret(), TOKEN);
    assert!(cfg.secrets.webhook_secret.is_none());
}

#[test]
fn prototype_env_names_override_files() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.toml", MINIMAL);
    let mut e = secrets();
    e.extend(env(&[
        ("ADO_ORGANIZATION", "contoso"),
        ("ADO_PROJECT", "Contoso App"),
        ("CLICKUP_WORKSPACE_ID", "777"),
        ("PUBLIC_URL", "https://sync.example.com/"),
        ("LOG_LEVEL", "debug"),
        ("DATABASE_URL", "sqlite+aiosqlite:///./data/sync.db"),
        ("WEBHOOK_SECRET", "hook-secret"),
    ]));
    let cfg = load_with_env(&sources(&local), &e).unwrap();
    assert_eq!(cfg.ado.organization, "contoso");
    assert_eq!(cfg.ado.project, "Contoso App");
    assert_eq!(cfg.clickup.workspace_id, "777");
    assert_eq!(
        cfg.server.public_url.as_ref().map(|u| u.as_str()),
        Some("https://sync.example.com/")
    );
    assert_eq!(cfg.log_level, "debug");
    assert_eq!(cfg.database_url, "sqlite+aiosqlite:///./data/sync.db");
    assert_eq!(
        cfg.secrets.webhook_secret.as_ref().unwrap().expose_secret(),
        "hook-secret"
    );
}

#[test]
fn sync_prefixed_env_with_double_underscore_nesting_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.toml", MINIMAL);
    let e = env(&[
        ("SYNC_POLL_INTERVAL", "10s"),
        ("SYNC_ADO__ORGANIZATION", "tailspin"),
        ("SYNC_SERVER__PORT", "9090"),
        ("SYNC_ADO__PAT", PAT),
        ("SYNC_CLICKUP__TOKEN", TOKEN),
    ]);
    let cfg = load_with_env(&sources(&local), &e).unwrap();
    assert_eq!(cfg.poll_interval, std::time::Duration::from_secs(10));
    assert_eq!(cfg.ado.organization, "tailspin");
    assert_eq!(cfg.server.port, 9090);
    assert_eq!(cfg.ado_pat().unwrap().expose_secret(), PAT);
    assert_eq!(cfg.clickup_token().unwrap().expose_secret(), TOKEN);
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let pat_file = write(dir.path(), "pat", &format!("{PAT}\n"));
    let local = write(
        dir.path(),
        "local.toml",
        &MINIMAL.replace(
            "project = \"Fabrikam-Fiber\"",
            &format!("project = \"Fabrikam-Fiber\"\npat_file = {:?}", pat_file),
        ),
    );
    let tok_file = write(dir.path(), "tok", TOKEN);
    let e = env(&[("CLICKUP_API_TOKEN_FILE", tok_file.to_str().unwrap())]);
    let cfg = load_with_env(&sources(&local), &e).unwrap();
    assert_eq!(cfg.ado_pat().unwrap().expose_secret(), PAT);
    assert_eq!(cfg.clickup_token().unwrap().expose_secret(), TOKEN);
}

#[test]
fn a_missing_token_is_reported_by_name_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.toml", MINIMAL);
    let cfg = load_with_env(&sources(&local), &[]).unwrap();
    let err = cfg.ado_pat().unwrap_err().to_string();
    assert!(err.contains("ADO_PAT"), "{err}");
    let err = cfg.clickup_token().unwrap_err().to_string();
    assert!(err.contains("CLICKUP_API_TOKEN"), "{err}");
}

/// (name, how to break the minimal config, the key the error must name)
fn malformed_cases() -> Vec<(&'static str, String, &'static str)> {
    let m = MINIMAL.to_string();
    vec![
        (
            "unknown top-level key",
            format!("pol_interval = \"5s\"\n{m}"),
            "pol_interval",
        ),
        (
            "unknown nested key",
            m.replace(
                "workspace_id = \"9011\"",
                "workspace_id = \"9011\"\nlist = \"x\"",
            ),
            "clickup",
        ),
        (
            "wrong type for port",
            format!("[server]\nport = \"eighty\"\n{m}"),
            "server.port",
        ),
        (
            "bad interval",
            format!("poll_interval = \"soon\"\n{m}"),
            "poll_interval",
        ),
        (
            "interval too short",
            format!("poll_interval = \"10ms\"\n{m}"),
            "poll_interval",
        ),
        (
            "bad base url",
            m.replace(
                "organization = \"fabrikam\"",
                "organization = \"fabrikam\"\nbase_url = \"not a url\"",
            ),
            "ado.base_url",
        ),
        (
            "missing organization",
            m.replace("organization = \"fabrikam\"\n", ""),
            "organization",
        ),
        (
            "empty project",
            m.replace("project = \"Fabrikam-Fiber\"", "project = \"\""),
            "ado.project",
        ),
        (
            "empty workspace",
            m.replace("workspace_id = \"9011\"", "workspace_id = \"\""),
            "clickup.workspace_id",
        ),
        (
            "no pairs",
            m.split("[[pairs]]").next().unwrap().to_string(),
            "pairs",
        ),
        (
            "empty list ids",
            m.replace("list_ids = [\"901100\"]", "list_ids = []"),
            "pairs[0].clickup.list_ids",
        ),
        (
            "unknown policy",
            format!("{m}[pairs.mapping.fields.title]\nconflict = \"loudest_wins\"\n"),
            "pairs[0].mapping.fields.title.conflict",
        ),
        (
            "unknown direction",
            format!("{m}[pairs.mapping.fields.tags]\ndirection = \"sideways\"\n"),
            "pairs[0].mapping.fields.tags.direction",
        ),
        (
            "unknown deletion policy",
            format!("{m}[pairs.mapping]\ndeletion = \"purge\"\n"),
            "pairs[0].mapping.deletion",
        ),
        (
            "unknown clickup priority",
            format!("{m}[[pairs.mapping.priority.map]]\nado = 1\nclickup = \"critical\"\n"),
            "pairs[0].mapping.priority.map[0].clickup",
        ),
        (
            "zero concurrency",
            m.replace(
                "workspace_id = \"9011\"",
                "workspace_id = \"9011\"\nconcurrency = 0",
            ),
            "concurrency",
        ),
        (
            "negative limit",
            format!("[limits]\nmax_creates_per_cycle = -1\n{m}"),
            "limits.max_creates_per_cycle",
        ),
        (
            "create_in not among list ids",
            m.replace(
                "list_ids = [\"901100\"]",
                "list_ids = [\"901100\"]\ncreate_in = \"42\"",
            ),
            "pairs[0].clickup.create_in",
        ),
        (
            "token in a config file",
            m.replace(
                "workspace_id = \"9011\"",
                &format!("workspace_id = \"9011\"\ntoken = \"{TOKEN}\""),
            ),
            "clickup.token",
        ),
        (
            "pat in a config file",
            m.replace(
                "project = \"Fabrikam-Fiber\"",
                &format!("project = \"Fabrikam-Fiber\"\npat = \"{PAT}\""),
            ),
            "ado.pat",
        ),
        (
            "bad log format",
            format!("log_format = \"xml\"\n{m}"),
            "log_format",
        ),
        ("not TOML at all", format!("{m}\n[[[broken"), "local.toml"),
    ]
}

#[test]
fn every_malformed_config_names_its_key_and_leaks_no_secret() {
    let cases = malformed_cases();
    assert!(cases.len() >= 15);
    for (name, text, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let local = write(dir.path(), "local.toml", &text);
        let err = match load_with_env(&sources(&local), &secrets()) {
            Ok(_) => panic!("{name}: config was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(key),
            "{name}: error does not name `{key}`: {err}"
        );
        assert!(
            !err.contains(TOKEN) && !err.contains(PAT),
            "{name}: error leaks a secret: {err}"
        );
    }
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let err = load_with_env(&sources(Path::new("/nonexistent/sync.toml")), &secrets())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--config"), "{err}");
}

/// A TOML syntax error quotes the broken line; when that line holds a secret (put in the
/// file by mistake, unterminated), the error must still not show it.
#[test]
fn a_syntax_error_on_a_secret_line_does_not_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.toml", "[ado]\npat = \"SEKRET-PAT-123\n");
    let err = load_with_env(&sources(&local), &secrets())
        .unwrap_err()
        .to_string();
    assert!(!err.contains("SEKRET"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("local.toml"), "{err}");
}

#[test]
fn a_zero_timeout_two_sources_of_a_secret_and_no_pairs_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let zero = write(
        dir.path(),
        "zero.toml",
        &MINIMAL.replace("[clickup]", "[clickup]\nrequest_timeout = \"0s\""),
    );
    let err = load_with_env(&sources(&zero), &secrets())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`clickup.request_timeout`"), "{err}");

    let local = write(dir.path(), "local.toml", MINIMAL);
    let pat_file = write(dir.path(), "pat", "from-the-file");
    let mut both = secrets();
    both.push(("ADO_PAT_FILE".into(), pat_file.display().to_string()));
    let err = load_with_env(&sources(&local), &both)
        .unwrap_err()
        .to_string();
    assert!(err.contains("set either ADO_PAT or ADO_PAT_FILE"), "{err}");
    assert!(
        !err.contains(PAT) && !err.contains("from-the-file"),
        "{err}"
    );

    let no_pairs = write(
        dir.path(),
        "nopairs.toml",
        &MINIMAL[..MINIMAL.find("[[pairs]]").unwrap()],
    );
    let err = load_with_env(&sources(&no_pairs), &secrets())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`(top level)`: missing field `pairs`"),
        "{err}"
    );
}
