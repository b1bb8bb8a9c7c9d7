//! Fixture corpus checks for the rich-text conversion (issue 3, point 3).
//!
//! For every fixture: x = its canonical Markdown (`html_to_markdown` of an ADO `.html`,
//! `normalize_markdown` of a ClickUp `.md`); then
//! - `html_to_markdown(markdown_to_html(x)) == x` (fixed point: no echo loops),
//! - every line of the `.must` file appears verbatim in x and again after the round trip
//!   (an empty `.must` means x must be empty),
//! - every line of the `.roundtrip.must` file appears in the text content of
//!   `markdown_to_html(x)` (tags stripped, entities decoded).
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use ado_clickup_sync::core::convert::{html_to_markdown, markdown_to_html, normalize_markdown};

/// Text content of HTML: tags stripped, entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    html_escape::decode_html_entities(&out).into_owned()
}

fn must_lines(path: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading fixture folder {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("html" | "md")))
        .collect();
    files.sort();
    files
}

/// Checks one corpus folder (`ado/` + `clickup/` layout); returns the failures and the count.
fn check_corpus(root: &Path) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut count = 0;
    for side in ["ado", "clickup"] {
        let dir = root.join(side);
        if !dir.is_dir() {
            continue;
        }
        for file in fixture_files(&dir) {
            count += 1;
            let name = file.display().to_string();
            let source = fs::read_to_string(&file).unwrap();
            let x = if side == "ado" {
                html_to_markdown(&source)
            } else {
                normalize_markdown(&source)
            };
            let html = markdown_to_html(&x);
            let back = html_to_markdown(&html);
            if back != x {
                failures.push(format!(
                    "{name}: not a fixed point\n--- x:\n{x}\n--- html:\n{html}\n--- back:\n{back}\n"
                ));
            }
            if normalize_markdown(&x) != x {
                failures.push(format!("{name}: canonical Markdown is not normalized:\n{x}"));
            }
            let stem = file.with_extension("");
            let must = stem.with_extension("must");
            if let Some(lines) = must_lines(&must) {
                if lines.is_empty() && !x.is_empty() {
                    failures.push(format!("{name}: expected an empty description, got:\n{x}"));
                }
                for line in &lines {
                    if !x.contains(line.as_str()) {
                        failures.push(format!("{name}: `{line}` missing from Markdown:\n{x}"));
                    }
                    if !back.contains(line.as_str()) {
                        failures.push(format!("{name}: `{line}` lost in round trip:\n{back}"));
                    }
                }
            } else {
                failures.push(format!("{name}: no .must file"));
            }
            let rt = PathBuf::from(format!("{}.roundtrip.must", stem.display()));
            if let Some(lines) = must_lines(&rt) {
                let text = html_text(&html);
                for line in &lines {
                    if !text.contains(line.as_str()) {
                        failures.push(format!(
                            "{name}: `{line}` missing from HTML text:\n{text}\n(html: {html})"
                        ));
                    }
                }
            }
        }
    }
    (failures, count)
}

#[test]
fn shared_description_fixtures_reach_a_fixed_point() {
    let Some(shared) = common::shared_dir("convert_fixtures") else {
        return;
    };
    let (failures, count) = check_corpus(&shared.join("fixtures/descriptions"));
    assert!(count >= 10, "expected the shared corpus, found {count} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn own_description_fixtures_reach_a_fixed_point() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/convert");
    let (failures, count) = check_corpus(&root);
    assert!(count >= 10, "expected the project's own corpus, found {count} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
