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

/// Every JSON key path of `v` with its JSON type ("string", "number", "bool", "object",
/// "array", "null"). Object keys are joined with `.`, array elements add `[]`
/// (`tasks[].status.type`); the elements of an array are merged, so a path is present if any
/// element has it. Where elements disagree, `null` gives way to the other type and two
/// different non-null types give "mixed" (callers treat it, like "null", as "any type").
pub fn key_paths(v: &serde_json::Value) -> std::collections::BTreeMap<String, &'static str> {
    let mut out = std::collections::BTreeMap::new();
    collect_paths(v, "", &mut out);
    out
}

fn json_type(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn record_path(
    out: &mut std::collections::BTreeMap<String, &'static str>,
    path: String,
    t: &'static str,
) {
    let merged = match out.get(&path) {
        None => t,
        Some(&old) if old == t || t == "null" => old,
        Some(&"null") => t,
        Some(_) => "mixed",
    };
    out.insert(path, merged);
}

fn collect_paths(
    v: &serde_json::Value,
    prefix: &str,
    out: &mut std::collections::BTreeMap<String, &'static str>,
) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                record_path(out, path.clone(), json_type(child));
                collect_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            let path = format!("{prefix}[]");
            for item in items {
                record_path(out, path.clone(), json_type(item));
                collect_paths(item, &path, out);
            }
        }
        _ => {}
    }
}
