//! TEMPORARY placeholder so the merge/plan work compiles; the lead replaces this file with the
//! real htmd/comrak/ammonia conversion at merge time.

/// Placeholder: strips tags and decodes the three escapes `markdown_to_html` produces.
pub fn html_to_markdown(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    normalize_markdown(
        &out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Placeholder: escapes and wraps in one paragraph.
pub fn markdown_to_html(md: &str) -> String {
    let esc = md
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<p>{esc}</p>")
}

/// Placeholder: trims trailing spaces on each line and trailing blank lines.
pub fn normalize_markdown(md: &str) -> String {
    let lines: Vec<&str> = md.lines().map(|l| l.trim_end()).collect();
    lines.join("\n").trim_end_matches('\n').to_string()
}
