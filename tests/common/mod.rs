//! Helpers shared by the integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

/// The project's reference data folder `../shared/`, if present.
///
/// A user's fresh clone has no `../shared/`: then the caller skips with a printed notice.
/// Under `CI=true` its absence is a failure, so CI can never pass by skipping.
pub fn shared_dir(test: &str) -> Option<PathBuf> {
    // A git worktree may sit elsewhere than the project root: SHARED_DIR can point at it.
    let dir = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("api").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{test}: CI=true but ../shared/ is missing; it must be present in CI");
    }
    eprintln!("NOTICE: {test} skipped: ../shared/ not found (reference data absent in this clone)");
    None
}

/// Every JSON key path of `v` with its JSON type (`object`, `array`, `string`, `number`,
/// `bool`, `null`), for contract tests against the official examples.
///
/// Object keys are joined with `.`; array elements add `[]` and are merged (the union of all
/// elements' paths). When elements disagree, a non-null type wins over `null`.
pub fn key_paths(v: &serde_json::Value) -> std::collections::BTreeMap<String, &'static str> {
    fn type_of(v: &serde_json::Value) -> &'static str {
        match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
    fn walk(
        v: &serde_json::Value,
        path: &str,
        out: &mut std::collections::BTreeMap<String, &'static str>,
    ) {
        if !path.is_empty() {
            let t = type_of(v);
            let slot = out.entry(path.to_string()).or_insert(t);
            if *slot == "null" {
                *slot = t;
            }
        }
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, &p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(x, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(v, "", &mut out);
    out
}
