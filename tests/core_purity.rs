//! Guard for issue 3's rule: the sync core (`src/core/`) does no I/O, reads no clock, never
//! panics on data (`unwrap()` / `expect(` / `panic!`) and never sees a wire DTO. Greps the
//! source (comments and `#[cfg(test)]` modules excluded), so a later edit that slips one in
//! fails here with the file and line.
use std::path::{Path, PathBuf};

/// Patterns forbidden in the core's non-test code, with why.
const FORBIDDEN: &[(&str, &str)] = &[
    (".unwrap()", "panics on data"),
    (".expect(", "panics on data"),
    (".unwrap_err()", "panics on data"),
    ("panic!(", "panics"),
    ("unreachable!(", "panics"),
    ("todo!(", "panics"),
    ("unimplemented!(", "panics"),
    ("Utc::now", "reads the clock (pass `now` in)"),
    ("Local::now", "reads the clock"),
    ("SystemTime", "reads the clock"),
    ("Instant::now", "reads the clock"),
    ("chrono::Local", "reads the local time zone"),
    ("std::fs", "file I/O"),
    ("File::", "file I/O"),
    ("std::io", "I/O"),
    ("std::net", "network I/O"),
    ("std::env", "reads the environment"),
    ("std::process", "runs processes"),
    ("std::thread", "threads / sleeping"),
    ("tokio", "async I/O"),
    ("reqwest", "HTTP"),
    ("rusqlite", "database I/O"),
    (
        "tracing::",
        "logging is I/O; report issues in the plan instead",
    ),
    ("println!", "prints"),
    ("eprintln!", "prints"),
    ("print!(", "prints"),
    ("dbg!(", "prints"),
    ("rand::", "randomness makes plans non-deterministic"),
    ("crate::ado", "wire DTOs and clients stay out of the core"),
    (
        "crate::clickup",
        "wire DTOs and clients stay out of the core",
    ),
    ("crate::remote", "HTTP stays out of the core"),
    ("crate::store", "the database stays out of the core"),
    ("crate::sim", "simulators stay out of the core"),
];

/// The code of a source file without comments, string contents kept (a forbidden call
/// inside a string literal would still be worth a look), and without the `#[cfg(test)]`
/// module at its end.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block_comment = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Test modules are last in every core file; everything after is test code.
            break;
        }
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block_comment {
                match rest.find("*/") {
                    Some(j) => {
                        rest = &rest[j + 2..];
                        in_block_comment = false;
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block = rest.find("/*");
                match (line_comment, block) {
                    (Some(a), Some(b)) if b < a => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block_comment = true;
                    }
                    (Some(a), _) => {
                        code.push_str(&rest[..a]);
                        break;
                    }
                    (None, Some(b)) => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block_comment = true;
                    }
                    (None, None) => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        out.push((i + 1, code));
    }
    out
}

fn violations(file: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        for (pat, why) in FORBIDDEN {
            if code.contains(pat) {
                found.push(format!(
                    "{}:{n}: `{pat}` ({why}): {}",
                    file.display(),
                    code.trim()
                ));
            }
        }
    }
    found
}

fn core_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn core_has_no_io_no_clock_no_panics_on_data() {
    let files = core_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "convert.rs",
        "mapping.rs",
        "merge.rs",
        "model.rs",
        "plan.rs",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "src/core/{expected} not found: {names:?}"
        );
    }
    let mut all = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        all.extend(violations(f, &text));
    }
    assert!(
        all.is_empty(),
        "the core must stay pure:\n{}",
        all.join("\n")
    );
}

/// The guard itself can fail: each forbidden pattern in code is caught; in comments and
/// test modules it is not.
#[test]
fn the_guard_catches_what_it_should_and_only_that() {
    let p = Path::new("x.rs");
    for (pat, _) in FORBIDDEN {
        let src = format!("fn f() {{ let _ = {pat}; }}\n");
        assert!(
            !violations(p, &src).is_empty(),
            "`{pat}` in code was not caught"
        );
    }
    let clean = "\
/// Calls `x.unwrap()` in a doc comment.
fn f(now: DateTime<Utc>) -> i64 { now.timestamp() } // Utc::now() in a comment
/* tokio in a block
   comment, std::fs too */ fn g() {}
fn h(x: Option<u8>) -> u8 { x.unwrap_or(0) /* .unwrap() */ }
#[cfg(test)]
mod tests {
    #[test]
    fn t() { Some(1).unwrap(); let _ = std::time::SystemTime::now(); }
}
";
    assert_eq!(violations(p, clean), Vec::<String>::new());
    let dirty = "fn f() -> i64 {\n    let x = 1; /* ok */ Utc::now().timestamp()\n}\n";
    let v = violations(p, dirty);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("x.rs:2: `Utc::now`"), "{v:?}");
}
