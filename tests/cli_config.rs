//! Malformed configurations through the real binary: each is refused before anything runs,
//! with exit code 2 and an error that names the key; no token appears in any output.
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ado-clickup-sync");
const PAT: &str = "pat-SECRET-4f1e9c";
const TOKEN: &str = "pk_SECRET_77aa21";

const GOOD: &str = r#"
[ado]
organization = "fabrikam"
project = "Fabrikam-Fiber"
[clickup]
workspace_id = "9011"
[[pairs]]
name = "team"
[pairs.ado]
default_type = "User Story"
[pairs.clickup]
list_ids = ["901100"]
"#;

fn cases() -> Vec<(&'static str, String, &'static str)> {
    let g = GOOD;
    vec![
        (
            "unknown top-level key",
            format!("pol_interval = \"5s\"\n{g}"),
            "pol_interval",
        ),
        (
            "wrong type",
            format!("[server]\nport = \"eighty\"\n{g}"),
            "port",
        ),
        (
            "bad interval",
            format!("poll_interval = \"soon\"\n{g}"),
            "poll_interval",
        ),
        (
            "interval too short",
            format!("poll_interval = \"10ms\"\n{g}"),
            "poll_interval",
        ),
        (
            "empty organization",
            g.replace("organization = \"fabrikam\"", "organization = \"\""),
            "ado.organization",
        ),
        (
            "empty project",
            g.replace("project = \"Fabrikam-Fiber\"", "project = \"\""),
            "ado.project",
        ),
        (
            "empty workspace",
            g.replace("workspace_id = \"9011\"", "workspace_id = \"\""),
            "clickup.workspace_id",
        ),
        (
            "no pairs",
            g.split("[[pairs]]").next().unwrap_or_default().to_string(),
            "pairs",
        ),
        (
            "empty list ids",
            g.replace("list_ids = [\"901100\"]", "list_ids = []"),
            "list_ids",
        ),
        (
            "unknown policy",
            format!("{g}[pairs.mapping.fields.title]\nconflict = \"loudest_wins\"\n"),
            "conflict",
        ),
        (
            "unknown direction",
            format!("{g}[pairs.mapping.fields.tags]\ndirection = \"sideways\"\n"),
            "direction",
        ),
        (
            "unknown deletion policy",
            format!("{g}[pairs.mapping]\ndeletion = \"purge\"\n"),
            "deletion",
        ),
        (
            "bad base URL",
            g.replace("[ado]\n", "[ado]\nbase_url = \"not a url\"\n"),
            "base_url",
        ),
        (
            "token in a file",
            g.replace(
                "workspace_id = \"9011\"",
                &format!("workspace_id = \"9011\"\ntoken = \"{TOKEN}\""),
            ),
            "clickup.token",
        ),
        (
            "PAT in a file",
            g.replace(
                "project = \"Fabrikam-Fiber\"",
                &format!("project = \"Fabrikam-Fiber\"\npat = \"{PAT}\""),
            ),
            "ado.pat",
        ),
        (
            "bad log format",
            format!("log_format = \"xml\"\n{g}"),
            "log_format",
        ),
        (
            "zero concurrency",
            g.replace("[ado]\n", "[ado]\nconcurrency = 0\n"),
            "concurrency",
        ),
        (
            "create_in outside list_ids",
            g.replace(
                "list_ids = [\"901100\"]",
                "list_ids = [\"901100\"]\ncreate_in = \"5\"",
            ),
            "create_in",
        ),
    ]
}

#[test]
fn every_malformed_config_is_refused_naming_its_key_without_leaking_a_token() {
    let cases = cases();
    assert!(cases.len() >= 15);
    for (name, toml, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(&path, &toml).unwrap();
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .env_clear()
            .env("ADO_PAT", PAT)
            .env("CLICKUP_API_TOKEN", TOKEN)
            .arg("--config")
            .arg(&path)
            .args(["sync", "--once", "--dry-run"])
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains(key),
            "{name}: the error does not name {key}: {stderr}"
        );
        assert!(
            stderr.contains("Fix") || stderr.contains("fix") || stderr.contains("TOML"),
            "{name}: no fix given: {stderr}"
        );
        for secret in [PAT, TOKEN] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{name}: a secret leaked"
            );
        }
    }
}

#[test]
fn a_missing_token_names_the_variable_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.toml");
    std::fs::write(&path, GOOD).unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("ADO_PAT", PAT)
        .arg("--config")
        .arg(&path)
        .args(["sync", "--once", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CLICKUP_API_TOKEN"), "{stderr}");
    assert!(!stderr.contains(PAT));
}
