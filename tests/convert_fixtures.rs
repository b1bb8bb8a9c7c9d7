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
                failures.push(format!(
                    "{name}: canonical Markdown is not normalized:\n{x}"
                ));
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
    assert!(
        count >= 10,
        "expected the shared corpus, found {count} fixtures"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn own_description_fixtures_reach_a_fixed_point() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/convert");
    let (failures, count) = check_corpus(&root);
    assert!(
        count >= 10,
        "expected the project's own corpus, found {count} fixtures"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-zA-Z]{1,8}",
            1 => "[!-/:-@\\[-`{-~a-z]{1,6}",
            1 => "[0-9]{1,3}",
            1 => prop::sample::select(vec![
                "snake_case_name", "a*b", "#tag", "1.", "2)", "[x]", "<b>", "&amp;", "&copy",
                "a|b", "`tick`", "back\\slash", "~tilde~", "!bang", "100%", "(paren)",
                "foo@bar.com", "@Priya", "under_", "_lead", "*", "-", "+", "=", ">", "#",
                "ünï", "日本語", "🚀", "x\u{a0}y", "1\\.", "\\*", "__init__", "a**b", "[t]", "]",
                "https://example.com/a_b?x=1&y=2", "www.example.com", "http://e.com/(x)",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(word(), 1..6).prop_map(|w| w.join(" "))
    }

    fn inline() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => text(),
            1 => "[a-z]{1,8}".prop_map(|w| format!("*{w}*")),
            1 => "[a-z]{1,8}( [a-z]{1,8})?".prop_map(|w| format!("**{w}**")),
            1 => "[a-z]{1,8}".prop_map(|w| format!("~~{w}~~")),
            1 => "[a-z_|*<>&]{1,8}".prop_map(|w| format!("`{w}`")),
            1 => ("[a-z]{1,8}", "[a-z]{1,8}").prop_map(|(t, p)| format!("[{t}](https://e.com/{p})")),
            1 => "[a-z]{1,8}".prop_map(|a| format!("![{a}](https://img.example/{a}.png)")),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        prop::collection::vec(inline(), 1..5).prop_map(|v| v.join(" "))
    }

    fn paragraph() -> impl Strategy<Value = String> {
        prop::collection::vec(line(), 1..4).prop_map(|lines| {
            let mut out = String::new();
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    out.push_str(if i % 2 == 0 { "  \n" } else { "\\\n" });
                }
                out.push_str(l);
            }
            out
        })
    }

    fn list() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["- ", "* ", "+ ", "1. ", "1) ", "- [ ] ", "- [x] "]),
            prop::collection::vec(
                (
                    line(),
                    prop::option::of(prop::collection::vec(line(), 1..3)),
                ),
                1..4,
            ),
            any::<bool>(),
        )
            .prop_map(|(marker, items, loose)| {
                let indent = " ".repeat(
                    marker
                        .trim_end_matches("[ ] ")
                        .trim_end_matches("[x] ")
                        .len(),
                );
                let sep = if loose { "\n\n" } else { "\n" };
                items
                    .iter()
                    .map(|(first, sub)| {
                        let mut item = format!("{marker}{first}");
                        if let Some(sub) = sub {
                            for s in sub {
                                item.push_str(&format!("\n{indent}- {s}"));
                            }
                        }
                        item
                    })
                    .collect::<Vec<_>>()
                    .join(sep)
            })
    }

    fn block() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => paragraph(),
            1 => (1usize..7, line()).prop_map(|(n, l)| format!("{} {l}", "#".repeat(n))),
            2 => list(),
            1 => (prop::option::of("[a-z]{1,6}"), prop::collection::vec("[ -~]{0,20}", 1..4))
                .prop_map(|(lang, lines)| {
                    format!("```{}\n{}\n```", lang.unwrap_or_default(), lines.join("\n"))
                }),
            1 => (1usize..4, prop::collection::vec(prop::collection::vec(text(), 3), 1..4))
                .prop_map(|(_, rows)| {
                    let mut t = String::new();
                    for (i, r) in rows.iter().enumerate() {
                        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
                        t.push_str(&format!("| {} |\n", cells.join(" | ")));
                        if i == 0 {
                            t.push_str("| --- | :-: | --: |\n");
                        }
                    }
                    t
                }),
            1 => paragraph().prop_map(|p| p.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")),
            1 => Just("---".to_string()),
            1 => (line(), prop::sample::select(vec![
                "```\ncode\n```", "> quoted", "## sub", "| a | b |\n| - | - |\n| 1 | 2 |", "1. one",
            ]))
                .prop_map(|(l, inner)| {
                    let inner = inner.replace('\n', "\n  ");
                    format!("- {l}\n\n  {inner}\n- after")
                }),
            1 => list().prop_map(|l| l.lines().map(|x| format!("> {x}")).collect::<Vec<_>>().join("\n")),
            1 => prop::sample::select(vec![
                "<div>\nraw *html*\n</div>", "<!-- note -->", "Setext\n---", "    indented code",
                "write to a.b@example.com now", "[ref][r]\n\n[r]: https://e.com/r \"T\"",
                "a <span>b</span> c", "line<br>next", "[t](https://e.com \"title\")",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// 256 cases by default; `PROPTEST_CASES` raises it for a deeper search.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    fn document() -> impl Strategy<Value = String> {
        prop::collection::vec(block(), 0..6).prop_map(|b| b.join("\n\n"))
    }

    fn html_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => "[a-zA-Z]{1,8}",
                1 => prop::sample::select(vec![
                    "&amp;", "&lt;b&gt;", "&nbsp;", "*", "_", "snake_case", "#1", "1.", "[x]",
                    "a|b", "`", "\\", "~", "&quot;q&quot;", "https://e.com/a_b?x=1&amp;y=2",
                    "www.example.com", "foo@bar.com", "- dash", "&gt; quote", "ü", "🚀", "  ",
                ])
                .prop_map(str::to_string),
            ],
            1..5,
        )
        .prop_map(|w| w.join(" "))
    }

    fn html_inline() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => html_text(),
            1 => Just("<br>".to_string()),
            1 => "[a-z]{1,6}".prop_map(|w| format!("<code>{w}</code>")),
            1 => "[a-z]{1,6}".prop_map(|w| format!("<a href=\"https://e.com/{w}\">{w} link</a>")),
            1 => "[A-Z][a-z]{1,6}".prop_map(|n| format!(
                "<a href=\"#\" data-vss-mention=\"version:2.0,1a2b\">@{n} Doe</a>"
            )),
            1 => "[a-z]{1,6}".prop_map(|w| format!("<img src=\"https://e.com/{w}.png\" alt=Image>")),
        ];
        let inline = leaf.prop_recursive(2, 12, 3, |inner| {
            (
                prop::sample::select(vec!["b", "i", "u", "s", "strike", "strong", "em", "span"]),
                prop::collection::vec(inner, 1..3),
            )
                .prop_map(|(tag, parts)| {
                    let attrs = if tag == "span" {
                        " style=\"color:red\""
                    } else {
                        ""
                    };
                    format!("<{tag}{attrs}>{}</{tag}>", parts.join(" "))
                })
        });
        prop::collection::vec(inline, 1..4).prop_map(|v| v.join(" "))
    }

    fn html_block() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => html_inline().prop_map(|i| format!("<div>{i}</div>")),
            1 => Just("<div><br></div>".to_string()),
            1 => html_inline().prop_map(|i| format!("<p>{i}</p>")),
            1 => (1u8..4, html_inline()).prop_map(|(n, i)| format!("<h{n}>{i}</h{n}>")),
            1 => prop::collection::vec(prop::collection::vec(html_inline(), 1..4), 1..4).prop_map(|rows| {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|r| format!("<tr>{}</tr>", r.iter().map(|c| format!("<td>{c}</td>")).collect::<String>()))
                    .collect();
                format!("<table><tbody>{}</tbody></table>", rows.concat())
            }),
            1 => prop::collection::vec("[ -;=?-~]{0,20}", 1..4)
                .prop_map(|l| format!("<pre><code>{}</code></pre>", l.join("\n"))),
            1 => html_inline().prop_map(|i| format!("<blockquote>{i}</blockquote>")),
            1 => prop::sample::select(vec![
                "<ul><li>a</li><ul><li>b</li></ul><li>c</li></ul>",
                "<table><thead><tr><th>h</th><th>i</th></tr></thead><tbody><tr><td><div>x</div><div>y</div></td><td><p>z</p></td></tr></tbody></table>",
                "<ol start=\"3\"><li><div>x</div></li><li><div>y</div><div>z</div></li></ol>",
                "<p class=MsoListParagraph style='mso-list:l0 level1 lfo1'><span style='mso-list:Ignore'>1.<span>&nbsp;&nbsp;</span></span>one<o:p></o:p></p><p class=MsoListParagraph style='mso-list:l0 level2 lfo1'><span style='mso-list:Ignore'>o<span>&nbsp;</span></span>two<o:p></o:p></p>",
                "<div><a href=\"https://e.com/x\">https://e.com/x</a> and <a href=\"https://e.com/y\"><img src=\"https://e.com/i.png\" alt=\"pic\"></a></div>",
                "<div><a href=\"mailto:a@b.com\">a@b.com</a> <a href=\"javascript:alert(1)\">js</a> <a href=\"ftp://f.example/x y\">f</a></div>",
                "<pre>line1<br>line2 &amp; `ticks` ```</pre>",
                "<div>tab\there &nbsp; <span style=\"font-weight:bold\">x</span>\r\nnext</div>",
            ])
            .prop_map(str::to_string),
        ];
        leaf.prop_recursive(2, 16, 4, |inner| {
            (
                prop::sample::select(vec!["ul", "ol"]),
                prop::collection::vec((html_inline(), prop::option::of(inner)), 1..4),
            )
                .prop_map(|(tag, items)| {
                    let items: String = items
                        .iter()
                        .map(|(i, sub)| format!("<li>{i}{}</li>", sub.clone().unwrap_or_default()))
                        .collect();
                    format!("<{tag}>{items}</{tag}>")
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn generated_ado_html_reaches_a_fixed_point(
            blocks in prop::collection::vec(html_block(), 0..5)
        ) {
            let html = blocks.concat();
            let x = html_to_markdown(&html);
            prop_assert_eq!(normalize_markdown(&x), x.clone(), "not canonical; from {}", html);
            let sent = markdown_to_html(&x);
            let back = html_to_markdown(&sent);
            prop_assert_eq!(back, x, "from {}\nsent {}", html, sent);
        }

        #[test]
        fn generated_documents_reach_a_fixed_point(doc in document()) {
            let x = normalize_markdown(&doc);
            prop_assert_eq!(normalize_markdown(&x), x.clone(), "normalize not idempotent");
            let html = markdown_to_html(&x);
            let back = html_to_markdown(&html);
            prop_assert_eq!(back, x, "html: {}", html);
        }

        #[test]
        fn arbitrary_markdown_never_panics(s in "\\PC{0,200}") {
            let x = normalize_markdown(&s);
            prop_assert_eq!(normalize_markdown(&x), x);
        }

        #[test]
        fn arbitrary_html_never_panics(s in "(<[a-z/!]{0,4}[ a-z=\"]{0,6}>|[^<]{0,12}){0,20}") {
            let _ = html_to_markdown(&s);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = html_to_markdown(&s);
            let _ = markdown_to_html(&s);
        }
    }
}
