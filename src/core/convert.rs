//! Rich-text conversion between ADO's HTML and the canonical Markdown form.
//!
//! The canonical form of a description is normalized GFM Markdown: whatever either side stores is
//! parsed, brought to one canonical syntax tree, and printed one way only. Because both
//! directions end in the same normalizer, a description reaches a fixed point after one round
//! trip (`html_to_markdown(markdown_to_html(x)) == x` for every canonical `x`), so a synced
//! description never looks changed on its own.
//!
//! Canonical conventions (other modules compare descriptions through them):
//! - bullets `-`; ordered items `N.` numbered consecutively from the list's start (never below 1,
//!   delimiter always `.`); task items `- [ ] ` / `- [x] ` (`X` becomes `x`); nested content
//!   indented by the marker width (2 for `-`, 3 for `1.`); two adjacent lists of one kind merge
//!   into one loose list (that is how HTML reads them back);
//! - a list is loose when comrak finds it loose and some item has text of its own, or when an
//!   item holds a heading, code block, quote, table or rule followed by anything (or by another
//!   item), text followed by a block other than a list, or a list followed by anything; otherwise
//!   tight (that is exactly what survives the trip through HTML);
//! - emphasis `*text*`, strong `**text**`, strikethrough `~~text~~`; whitespace at the edges of
//!   these moves outside the delimiters; nested emphasis of one kind is flattened;
//! - ATX headings (`## Title`), one line; fenced code blocks with backticks (more if the code
//!   holds a run of backticks), info string = its first word; thematic break `-----`; `> `
//!   block quotes;
//! - a paragraph is one line: soft breaks become spaces, runs of spaces and tabs collapse to one
//!   space, non-breaking spaces outside code become spaces; a hard break is a backslash at the end
//!   of the line (never two trailing spaces); in headings and table cells a break is a space;
//! - tables `| a | b |` with a delimiter row `| --- |` (`:--`, `:-:`, `--:` for alignment), cells
//!   on one line, `|` in a cell escaped as `\|`; HTML tables take their first row as header;
//! - escapes only where needed: an escape stays when removing it would change the document,
//!   plus, for symmetry and for other readers, `\*` unless the star stands between spaces, `\_`
//!   unless inside a word (so `snake_case_name` and `#tag` stay bare, `\*literal\*` keeps both),
//!   and `\<` before anything that looks like a tag;
//! - bare URLs stay bare (GFM autolinks, one rule in both directions), other links
//!   `[text](url)`, images `![alt](url)` with plain-text alt; URLs are percent-encoded the way
//!   comrak writes hrefs; links whose URL comrak or ammonia would drop become their text;
//! - raw HTML is never rendered: `<br>` becomes a hard break, comments are dropped, any other tag
//!   stays as literal (escaped) text, both in `normalize_markdown` and `markdown_to_html`;
//! - no trailing spaces, no blank-line runs, no leading or trailing blank lines and no final
//!   newline; an empty description is the empty string.
//!
//! Pure: no I/O, no clock. No input makes these functions panic.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::OnceLock;

use comrak::nodes::{AstNode, ListDelimType, NodeValue};
use comrak::{Arena, Options};
use htmd::element_handler::{HandlerResult, Handlers};
use htmd::{Element, HtmlToMarkdown};
use markup5ever_rcdom::{Node as DomNode, NodeData};

/// ADO HTML (System.Description) -> canonical Markdown.
pub fn html_to_markdown(html: &str) -> String {
    let html = strip_placeholders(html);
    let converter = converter();
    let Ok(tree) = converter.html_to_tree(&html) else {
        return String::new();
    };
    if dom_depth(&tree) > MAX_DOM_DEPTH {
        // The converter recurses per element: absurd nesting is read as plain text instead.
        return normalize_impl(&flat_text_markdown(&tree), true);
    }
    prepare_dom(&tree, false);
    restore_flanking_punctuation(&tree);
    let md = resolve_breaks(&converter.tree_to_markdown(&tree));
    let md = expand_escaped_markers(&md, false);
    normalize_impl(&md, true)
}

/// Canonical Markdown -> HTML for ADO (comrak GFM with raw HTML never rendered, then ammonia).
pub fn markdown_to_html(md: &str) -> String {
    let md = strip_placeholders(md);
    let arena = Arena::new();
    let opts = comrak_options();
    let root = comrak::parse_document(&arena, &md, &opts);
    canonicalize_tree(&arena, root, false);
    let mut html = String::new();
    if comrak::format_html(root, &opts, &mut html).is_err() {
        return String::new();
    }
    sanitizer().clean(&html).to_string()
}

/// Any GFM (e.g. ClickUp's `markdown_description`) -> canonical Markdown.
pub fn normalize_markdown(md: &str) -> String {
    normalize_impl(&strip_placeholders(md), false)
}

// ---------------------------------------------------------------------------------------------
// Placeholders.
//
// htmd escapes text with its own (turndown) rules, which are neither minimal nor complete (it does
// not escape `&`, `<` only sometimes, ...). To keep one escaping policy, the DOM's text is rewritten
// before htmd runs: every ASCII punctuation character becomes one of the 32 Unicode
// noncharacters U+FDD0..U+FDEF, which no Markdown parser treats as syntax. comrak then parses
// the text as plain text, the placeholders are mapped back in the syntax tree, and the canonical
// printer escapes exactly what needs escaping. Noncharacters are not meant for interchange, so
// inputs are stripped of them first.

const PUNCT: &[u8; 32] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const PH_BASE: u32 = 0xFDD0;

/// A second family of noncharacters (U+1FFFE, U+1FFFF, U+2FFFE, ...) marks punctuation that
/// must reach the Markdown *escaped* (`\*`): it keeps its punctuation role for emphasis
/// flanking without ever being syntax.
fn escaped_marker(index: usize) -> Option<char> {
    let plane = (index / 2 + 1) as u32;
    char::from_u32(plane * 0x10000 + 0xFFFE + (index % 2) as u32)
}

fn escaped_marker_index(c: char) -> Option<usize> {
    let code = c as u32;
    let plane = code >> 16;
    let low = code & 0xFFFF;
    if (1..=16).contains(&plane) && low >= 0xFFFE {
        Some(((plane - 1) * 2 + (low - 0xFFFE)) as usize).filter(|i| *i < PUNCT.len())
    } else {
        None
    }
}

/// Turns escaped markers into `\` + the punctuation they stand for (`plain` = without `\`).
fn expand_escaped_markers(s: &str, plain: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match escaped_marker_index(c).and_then(|i| PUNCT.get(i)) {
            Some(&p) => {
                if !plain {
                    out.push('\\');
                }
                out.push(char::from(p));
            }
            None => out.push(c),
        }
    }
    out
}

fn is_placeholder(c: char) -> bool {
    (PH_BASE..PH_BASE + 32).contains(&(c as u32))
}

fn strip_placeholders(s: &str) -> Cow<'_, str> {
    let ours = |c: char| {
        is_placeholder(c)
            || escaped_marker_index(c).is_some()
            || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    };
    if s.chars().any(ours) {
        Cow::Owned(s.chars().filter(|c| !ours(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn encode_placeholders(s: &str) -> String {
    s.chars()
        .map(|c| match PUNCT.iter().position(|&p| char::from(p) == c) {
            // The index is < 32, so the code point is a valid noncharacter.
            Some(i) => char::from_u32(PH_BASE + i as u32).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn decode_placeholders(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_placeholder) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if is_placeholder(c) {
                    let i = (c as u32 - PH_BASE) as usize;
                    PUNCT.get(i).map_or(c, |&b| char::from(b))
                } else {
                    c
                }
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// HTML side: DOM preparation and htmd handlers.

/// What the `<br>` handler writes before its newline: it becomes a Markdown hard break (`\`)
/// only where a line of text follows, so breaks at the end of a block leave no stray backslash.
const BR_MARK: char = '\u{FFFF}';

fn br_handler(_handlers: &dyn Handlers, _element: Element) -> Option<HandlerResult> {
    result(format!("{BR_MARK}\n"))
}

/// Turns the `<br>` marks of htmd's output into hard breaks where they are ones.
fn resolve_breaks(md: &str) -> String {
    let lines: Vec<&str> = md.split('\n').collect();
    let mut out = String::with_capacity(md.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.contains(BR_MARK) {
            // Code lines keep their trailing spaces.
            out.push_str(line);
            continue;
        }
        let text_follows = lines.get(i + 1).is_some_and(|next| {
            !next
                .trim_matches(|c: char| c.is_whitespace() || c == BR_MARK)
                .is_empty()
        });
        let body = line.trim_end_matches([BR_MARK, ' ']);
        let ends_with_break = line.trim_end_matches(' ').ends_with(BR_MARK);
        out.push_str(&body.replace(BR_MARK, ""));
        if ends_with_break && text_follows && !body.trim().is_empty() {
            out.push('\\');
        }
    }
    out
}

/// Deeper HTML than this is converted as plain text (real descriptions nest a few levels).
const MAX_DOM_DEPTH: usize = 96;

fn dom_depth(root: &Rc<DomNode>) -> usize {
    let mut max = 0;
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        max = max.max(depth);
        if depth > MAX_DOM_DEPTH {
            break;
        }
        for child in node.children.borrow().iter() {
            stack.push((child.clone(), depth + 1));
        }
    }
    max
}

/// The text of the document, one paragraph per block element or line break, as Markdown text
/// in placeholder form.
fn flat_text_markdown(root: &Rc<DomNode>) -> String {
    let mut paragraphs: Vec<String> = vec![String::new()];
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        match &node.data {
            NodeData::Text { contents } => {
                if let Some(last) = paragraphs.last_mut() {
                    last.push_str(&contents.borrow());
                }
            }
            NodeData::Element { name, .. } => {
                let tag = &*name.local;
                if DROPPED_ELEMENTS.contains(&tag) {
                    continue;
                }
                if tag == "br" || BLOCK_TAGS.contains(&tag) || tag == "li" || tag == "tr" {
                    paragraphs.push(String::new());
                }
                for child in node.children.borrow().iter().rev() {
                    stack.push(child.clone());
                }
            }
            _ => {
                for child in node.children.borrow().iter().rev() {
                    stack.push(child.clone());
                }
            }
        }
    }
    paragraphs
        .iter()
        .map(|p| {
            encode_placeholders(
                &p.replace('\u{a0}', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

const DROPPED_ELEMENTS: &[&str] = &[
    "head", "style", "script", "title", "meta", "link", "xml", "template", "o:p", "noscript",
];

/// Rewrites the parsed DOM in place: drops invisible elements and comments, turns text into
/// placeholders, and non-breaking spaces outside code into spaces.
fn prepare_dom(node: &Rc<DomNode>, in_pre: bool) {
    let in_pre = in_pre || matches!(tag_name(node), Some("pre" | "code"));
    node.children
        .borrow_mut()
        .retain(|child| match &child.data {
            NodeData::Comment { .. } | NodeData::ProcessingInstruction { .. } => false,
            NodeData::Element { name, .. } => !DROPPED_ELEMENTS.contains(&&*name.local),
            _ => true,
        });
    let children: Vec<Rc<DomNode>> = node.children.borrow().iter().cloned().collect();
    for child in &children {
        if let NodeData::Text { contents } = &child.data {
            let text = contents.borrow().to_string();
            let text = if in_pre {
                text
            } else {
                text.replace('\u{a0}', " ")
            };
            contents.replace(encode_placeholders(&text).into());
        } else {
            prepare_dom(child, in_pre);
        }
    }
}

const DELIMITED_TAGS: &[&str] = &["b", "strong", "i", "em", "s", "strike", "del"];

/// Emphasis delimiters open and close by whether their neighbours are punctuation, which
/// placeholders hide. The characters next to each `*`/`~~` an element will produce become
/// escaped markers instead: they reach the Markdown as `\X`, punctuation for flanking and never
/// syntax.
fn restore_flanking_punctuation(root: &Rc<DomNode>) {
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        for child in node.children.borrow().iter() {
            stack.push(child.clone());
        }
        if !tag_name(&node).is_some_and(|t| DELIMITED_TAGS.contains(&t)) {
            continue;
        }
        let restore = restore_edge_char;
        if let Some(t) = edge_text(&node, true) {
            restore(&t, true);
        }
        if let Some(t) = edge_text(&node, false) {
            restore(&t, false);
        }
        let Some(parent) = parent_of(&node) else {
            continue;
        };
        let siblings = parent.children.borrow();
        let Some(idx) = siblings.iter().position(|c| Rc::ptr_eq(c, &node)) else {
            continue;
        };
        if let Some(prev) = idx.checked_sub(1).and_then(|i| siblings.get(i)) {
            let text = if matches!(prev.data, NodeData::Text { .. }) {
                Some(prev.clone())
            } else {
                edge_text(prev, false)
            };
            if let Some(t) = text {
                restore(&t, false);
            }
        }
        if let Some(next) = siblings.get(idx + 1) {
            let text = if matches!(next.data, NodeData::Text { .. }) {
                Some(next.clone())
            } else {
                edge_text(next, true)
            };
            if let Some(t) = text {
                restore(&t, true);
            }
        }
    }
}

/// The first (or last) text node inside `node`, unless an element that prints its own syntax
/// (code, link, image, break) comes first.
fn edge_text(node: &Rc<DomNode>, first: bool) -> Option<Rc<DomNode>> {
    let mut current = node.clone();
    loop {
        let next = {
            let children = current.children.borrow();
            let mut iter: Box<dyn Iterator<Item = &Rc<DomNode>>> = if first {
                Box::new(children.iter())
            } else {
                Box::new(children.iter().rev())
            };
            iter.find(|c| match &c.data {
                NodeData::Text { contents } => !contents.borrow().trim().is_empty(),
                NodeData::Element { .. } => true,
                _ => false,
            })
            .cloned()
        }?;
        match &next.data {
            NodeData::Text { .. } => return Some(next),
            NodeData::Element { name, .. } => {
                if matches!(&*name.local, "code" | "a" | "img" | "br" | "input" | "pre") {
                    return None;
                }
                current = next;
            }
            _ => return None,
        }
    }
}

fn restore_edge_char(text_node: &DomNode, first: bool) {
    let NodeData::Text { contents } = &text_node.data else {
        return;
    };
    let text = contents.borrow().to_string();
    let position = if first {
        text.char_indices().find(|(_, c)| !c.is_whitespace())
    } else {
        text.char_indices().rev().find(|(_, c)| !c.is_whitespace())
    };
    let Some((i, c)) = position else {
        return;
    };
    if !is_placeholder(c) {
        return;
    }
    let index = (c as u32 - PH_BASE) as usize;
    let Some(marker) = escaped_marker(index) else {
        return;
    };
    let mut restored = String::with_capacity(text.len());
    restored.push_str(&text[..i]);
    restored.push(marker);
    restored.push_str(&text[i + c.len_utf8()..]);
    contents.replace(restored.into());
}

fn tag_name(node: &DomNode) -> Option<&str> {
    match &node.data {
        NodeData::Element { name, .. } => Some(&name.local),
        _ => None,
    }
}

fn dom_attr(node: &DomNode, name: &str) -> Option<String> {
    match &node.data {
        NodeData::Element { attrs, .. } => attrs
            .borrow()
            .iter()
            .find(|a| &*a.name.local == name)
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

fn attr(element: &Element, name: &str) -> Option<String> {
    element
        .attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.to_string())
}

/// The text of a subtree; `<br>` counts as a newline (some editors put them in `<pre>`).
fn text_content(node: &DomNode, out: &mut String) {
    match &node.data {
        NodeData::Text { contents } => {
            out.push_str(&expand_escaped_markers(&contents.borrow(), true))
        }
        NodeData::Element { name, .. } if &*name.local == "br" => out.push('\n'),
        _ => {
            for child in node.children.borrow().iter() {
                text_content(child, out);
            }
        }
    }
}

fn has_ancestor(node: &DomNode, tags: &[&str]) -> bool {
    let mut current = parent_of(node);
    while let Some(parent) = current {
        if tag_name(&parent).is_some_and(|t| tags.contains(&t)) {
            return true;
        }
        current = parent_of(&parent);
    }
    false
}

fn parent_of(node: &DomNode) -> Option<Rc<DomNode>> {
    let weak = node.parent.take();
    let parent = weak.as_ref().and_then(|w| w.upgrade());
    node.parent.set(weak);
    parent
}

fn is_word_list_marker(node: &DomNode) -> bool {
    tag_name(node) == Some("span")
        && dom_attr(node, "style").is_some_and(|s| {
            s.replace(' ', "")
                .to_ascii_lowercase()
                .contains("mso-list:ignore")
        })
}

fn find_word_list_marker(node: &DomNode) -> Option<Rc<DomNode>> {
    for child in node.children.borrow().iter() {
        if is_word_list_marker(child) {
            return Some(child.clone());
        }
        if let Some(found) = find_word_list_marker(child) {
            return Some(found);
        }
    }
    None
}

fn result(content: String) -> Option<HandlerResult> {
    Some(HandlerResult {
        content,
        markdown_translated: true,
    })
}

/// Splits inline Markdown into (leading edge, inner, trailing edge), where the edges are
/// whitespace and hard breaks (`BR_MARK`).
fn split_edges(content: &str) -> (&str, &str, &str) {
    let is_edge = |c: char| c.is_ascii_whitespace() || c == BR_MARK;
    let trimmed_start = content.trim_start_matches(is_edge);
    let start = content.len() - trimmed_start.len();
    let inner = trimmed_start.trim_end_matches(is_edge);
    if inner.is_empty() {
        return (content, "", "");
    }
    let end = start + inner.len();
    (&content[..start], inner, &content[end..])
}

/// Wraps inline content in delimiters, with edge whitespace and breaks kept outside them as
/// CommonMark's flanking rules need.
fn wrap_inline(content: &str, open: &str, close: &str) -> String {
    let (lead, inner, trail) = split_edges(content);
    if inner.is_empty() {
        return lead.to_string();
    }
    format!("{lead}{open}{inner}{close}{trail}")
}

fn emphasis_handler(
    handlers: &dyn Handlers,
    element: &Element,
    marker: &str,
    same: &[&str],
) -> Option<HandlerResult> {
    let content = handlers.walk_children(element.node).content;
    if has_ancestor(element.node, same) {
        // Nested emphasis of one kind means nothing more; Markdown would read `****` instead.
        return result(content);
    }
    result(wrap_inline(&content, marker, marker))
}

fn strong_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    emphasis_handler(handlers, &element, "**", &["b", "strong"])
}

fn em_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    emphasis_handler(handlers, &element, "*", &["i", "em"])
}

fn link_destination(url: &str) -> String {
    let url: String = url
        .trim()
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect();
    // Placeholders hold every punctuation character, so `<...>` cannot be closed early.
    format!("<{}>", encode_placeholders(&url))
}

fn link_title(title: Option<String>) -> String {
    match title {
        Some(t) if !t.trim().is_empty() => {
            let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
            format!(" \"{}\"", encode_placeholders(&t))
        }
        _ => String::new(),
    }
}

fn anchor_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let content = handlers.walk_children(element.node).content;
    // Link text is inline: block breaks inside it would end the link.
    let content = collapse_newlines(&content);
    let href = attr(&element, "href").unwrap_or_default();
    let href = href.trim();
    if attr(&element, "data-vss-mention").is_some() || href.is_empty() || href == "#" {
        // ADO mentions carry `@Name` as their text; the identity link means nothing elsewhere.
        return result(content);
    }
    let text = content.trim_matches(|c: char| c.is_ascii_whitespace());
    let link = format!(
        "[{text}]({}{})",
        link_destination(href),
        link_title(attr(&element, "title"))
    );
    let lead = if content.starts_with(|c: char| c.is_ascii_whitespace()) && !text.is_empty() {
        " "
    } else {
        ""
    };
    let trail = if content.ends_with(|c: char| c.is_ascii_whitespace()) && !text.is_empty() {
        " "
    } else {
        ""
    };
    result(format!("{lead}{link}{trail}"))
}

fn collapse_newlines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.replace(BR_MARK, "").chars() {
        if c == '\n' || c == '\r' {
            if !last_space {
                // Keep a hard break's effect as a plain space inside inline containers.
                out.push(' ');
            }
            last_space = true;
        } else {
            last_space = c == ' ';
            out.push(c);
        }
    }
    out
}

fn img_handler(_handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let alt = attr(&element, "alt")
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let src = attr(&element, "src").unwrap_or_default();
    if src.trim().is_empty() {
        return result(encode_placeholders(&alt));
    }
    result(format!(
        "![{}]({}{})",
        encode_placeholders(&alt),
        link_destination(&src),
        link_title(attr(&element, "title"))
    ))
}

fn strike_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    emphasis_handler(handlers, &element, "~~", &["s", "strike", "del"])
}

fn inline_code_handler(_handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let mut text = String::new();
    text_content(element.node, &mut text);
    let text = text.replace(['\n', '\r'], " ");
    if text.trim().is_empty() {
        // Blank code spans carry nothing but a space (and upset emphasis around them).
        return (!text.is_empty()).then(|| " ".to_string()).and_then(result);
    }
    // Placeholders hold every backtick, so a single backtick fence always suffices.
    let pad = text.starts_with(' ') && text.ends_with(' ') && !text.trim_matches(' ').is_empty();
    if pad {
        result(format!("` {text} `"))
    } else {
        result(format!("`{text}`"))
    }
}

fn language_of(node: &DomNode) -> Option<String> {
    let class = dom_attr(node, "class")?;
    class.split_whitespace().find_map(|c| {
        c.strip_prefix("language-")
            .or_else(|| c.strip_prefix("lang-"))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
    })
}

fn pre_handler(_handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let mut text = String::new();
    text_content(element.node, &mut text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut lang = language_of(element.node);
    if lang.is_none() {
        for child in element.node.children.borrow().iter() {
            if tag_name(child) == Some("code") {
                lang = language_of(child);
                break;
            }
        }
    }
    // The language is already placeholder-free punctuation-wise only if encoded.
    let lang = encode_placeholders(&lang.unwrap_or_default());
    result(format!("\n\n```{lang}\n{text}\n```\n\n"))
}

fn checkbox_handler(_handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let is_checkbox = attr(&element, "type").is_some_and(|t| t.eq_ignore_ascii_case("checkbox"));
    if !is_checkbox || !has_ancestor(element.node, &["li"]) {
        return None;
    }
    if attr(&element, "checked").is_some() {
        result("[x] ".to_string())
    } else {
        result("[ ] ".to_string())
    }
}

fn list_item_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let mut res = handlers.fallback(element)?;
    // A loose task item renders as `<li><input> <p>text</p></li>`: keep the marker and the
    // text on one line, or the task marker would stand alone.
    for marker in ["[x] ", "[ ] "] {
        if let Some(pos) = res.content.find(marker) {
            let before = &res.content[..pos];
            if before
                .trim_start_matches('\n')
                .trim_end()
                .chars()
                .all(|c| c == '*')
            {
                let after = &res.content[pos + marker.len()..];
                let rest = after.trim_start_matches(|c: char| c.is_ascii_whitespace());
                res.content = format!("{before}{marker}{rest}");
            }
            break;
        }
    }
    Some(res)
}

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "table",
    "hr",
];

/// Lists are written here rather than by htmd, because htmd decides looseness per item (a
/// `<p>` adds a blank line after its own item only), while Markdown has one looseness per list.
fn list_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let ordered = element.tag == "ol";
    let start = attr(&element, "start")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 99_999_999);
    let mut items: Vec<String> = Vec::new();
    let mut loose = false;
    for child in element.node.children.borrow().iter() {
        match tag_name(child) {
            Some("li") => {
                let content = tidy_item(&handlers.walk_children(child).content);
                if content.is_empty() {
                    // An empty item prints as a bare `-`, which would underline the line above.
                    continue;
                }
                loose |= item_forces_loose(child);
                items.push(content);
            }
            Some(_) => {
                // ADO nests `<ul>` directly in `<ul>`: it belongs to the item before it.
                let Some(res) = handlers.handle(child) else {
                    continue;
                };
                let content = res.content.trim_matches('\n').to_string();
                if content.is_empty() {
                    continue;
                }
                match items.last_mut() {
                    Some(last) => {
                        last.push('\n');
                        last.push_str(&content);
                    }
                    None => items.push(content),
                }
            }
            None => {}
        }
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let marker = if ordered {
            format!("{}.", start + i as u64)
        } else {
            "-".to_string()
        };
        let indent = " ".repeat(marker.len() + 1);
        let mut text = String::new();
        for (j, line) in item.lines().enumerate() {
            if j == 0 {
                text.push_str(&marker);
                text.push(' ');
                text.push_str(line);
            } else {
                text.push('\n');
                if !line.trim().is_empty() {
                    text.push_str(&indent);
                    text.push_str(line);
                }
            }
        }
        if item.is_empty() {
            text.push_str(&marker);
        }
        out.push(text);
    }
    if out.is_empty() {
        return None;
    }
    let body = out.join(if loose { "\n\n" } else { "\n" });
    if has_ancestor(element.node, &["li"]) {
        result(format!("\n{body}\n"))
    } else {
        result(format!("\n\n{body}\n\n"))
    }
}

/// Whether this item makes its list loose, by the rules `loosen_lists` applies to the tree:
/// `<p>` only appears in loose lists; text followed by a block other than a list, a list
/// followed by anything, or another block followed by anything (or by another item) all read
/// back with a blank line.
fn item_forces_loose(li: &Rc<DomNode>) -> bool {
    #[derive(PartialEq)]
    enum Seg {
        Text,
        Block,
        List,
    }
    let mut segs: Vec<Seg> = Vec::new();
    for c in li.children.borrow().iter() {
        let seg = match tag_name(c) {
            Some("p") => return true,
            Some("ul" | "ol") => Seg::List,
            Some(t) if BLOCK_TAGS.contains(&t) && t != "div" => Seg::Block,
            Some(_) => Seg::Text,
            None => {
                let mut t = String::new();
                text_content(c, &mut t);
                if t.trim().is_empty() {
                    continue;
                }
                Seg::Text
            }
        };
        if !(seg == Seg::Text && segs.last() == Some(&Seg::Text)) {
            segs.push(seg);
        }
    }
    let has_next_item = {
        let mut next = false;
        let mut seen = false;
        if let Some(parent) = parent_of(li) {
            for sib in parent.children.borrow().iter() {
                if Rc::ptr_eq(sib, li) {
                    seen = true;
                } else if seen && tag_name(sib) == Some("li") {
                    next = true;
                }
            }
        }
        next
    };
    segs.iter().enumerate().any(|(i, seg)| {
        let next = segs.get(i + 1);
        match seg {
            Seg::Text => next.is_some_and(|n| *n != Seg::List),
            Seg::List => next.is_some(),
            Seg::Block => next.is_some() || has_next_item,
        }
    })
}

/// Trims an item's content; a task marker and its text stay on one line (a loose task item is
/// `<li><input> <p>text</p></li>`).
fn tidy_item(content: &str) -> String {
    let content = content.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let content = content.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == BR_MARK);
    for marker in ["[x] ", "[ ] "] {
        if let Some(rest) = content.strip_prefix(marker) {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == BR_MARK);
            return format!("{marker}{rest}");
        }
    }
    content.to_string()
}

/// ATX headings are one line: breaks inside become spaces.
fn heading_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let level = element
        .tag
        .strip_prefix('h')
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 6);
    let content = handlers.walk_children(element.node).content;
    let text = collapse_newlines(&content);
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == BR_MARK);
    if text.is_empty() {
        return None;
    }
    result(format!("\n\n{} {text}\n\n", "#".repeat(level)))
}

fn span_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    if is_word_list_marker(element.node) {
        // Word's typed list number ("1.&nbsp;&nbsp;"): the paragraph handler rebuilds the list.
        return None;
    }
    handlers.fallback(element)
}

fn paragraph_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    let style = attr(&element, "style")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let class = attr(&element, "class")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is_word_list = style.contains("mso-list") || class.contains("msolistparagraph");
    let marker = if is_word_list {
        find_word_list_marker(element.node)
    } else {
        None
    };
    let Some(marker) = marker else {
        return handlers.fallback(element);
    };
    let mut marker_text = String::new();
    text_content(&marker, &mut marker_text);
    let marker_text = decode_placeholders(&marker_text).replace('\u{a0}', " ");
    let marker_text = marker_text.trim();
    let level = style
        .split("level")
        .nth(1)
        .and_then(|s| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(1)
        .clamp(1, 9);
    let digits: String = marker_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let is_ordered = marker_text
        .trim_end_matches(['.', ')'])
        .chars()
        .all(|c| c.is_alphanumeric())
        && !marker_text.is_empty()
        && marker_text.ends_with(['.', ')']);
    let list_marker = if is_ordered {
        let n = digits.parse::<u64>().unwrap_or(1).clamp(1, 99_999_999);
        format!("{n}.")
    } else {
        "-".to_string()
    };
    let content = handlers.walk_children(element.node).content;
    let content = collapse_newlines(content.trim());
    let indent = " ".repeat((level - 1) * 4);
    // Consecutive list paragraphs form one tight list: no blank line between them.
    let before = if sibling_is_word_list_item(element.node, false) {
        ""
    } else {
        "\n\n"
    };
    let after = if sibling_is_word_list_item(element.node, true) {
        "\n"
    } else {
        "\n\n"
    };
    result(format!(
        "{before}{indent}{list_marker} {}{after}",
        content.trim()
    ))
}

fn is_word_list_paragraph(node: &DomNode) -> bool {
    tag_name(node) == Some("p")
        && dom_attr(node, "style").is_some_and(|s| s.to_ascii_lowercase().contains("mso-list"))
        && find_word_list_marker(node).is_some()
}

/// Whether the nearest element sibling before (or after) `node` is a Word list paragraph.
fn sibling_is_word_list_item(node: &Rc<DomNode>, after: bool) -> bool {
    let Some(parent) = parent_of(node) else {
        return false;
    };
    let children = parent.children.borrow();
    let Some(idx) = children.iter().position(|c| Rc::ptr_eq(c, node)) else {
        return false;
    };
    let mut siblings: Box<dyn Iterator<Item = &Rc<DomNode>>> = if after {
        Box::new(children.iter().skip(idx + 1))
    } else {
        Box::new(children.iter().take(idx).rev())
    };
    siblings
        .find(|c| match &c.data {
            NodeData::Text { contents } => !contents.borrow().trim().is_empty(),
            _ => true,
        })
        .is_some_and(|c| is_word_list_paragraph(c))
}

/// `<td>`-only tables (what ADO's editor stores) and regular ones alike become GFM tables whose
/// first row is the header.
fn table_handler(handlers: &dyn Handlers, element: Element) -> Option<HandlerResult> {
    if has_ancestor(element.node, &["td", "th"]) {
        // GFM has no nested tables: keep the inner table's text in the outer cell.
        let content = handlers.walk_children(element.node).content;
        return result(collapse_newlines(&content));
    }
    let mut rows: Vec<Vec<(String, Option<String>)>> = Vec::new();
    collect_rows(handlers, element.node, &mut rows);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    if columns == 0 {
        return None;
    }
    let mut md = String::from("\n\n");
    for (i, row) in rows.iter().enumerate() {
        md.push('|');
        for c in 0..columns {
            let cell = row.get(c).map(|(text, _)| text.as_str()).unwrap_or("");
            md.push(' ');
            md.push_str(cell);
            md.push_str(" |");
        }
        md.push('\n');
        if i == 0 {
            md.push('|');
            for c in 0..columns {
                let align = row.get(c).and_then(|(_, a)| a.as_deref());
                md.push_str(match align {
                    Some("left") => " :-- |",
                    Some("center") => " :-: |",
                    Some("right") => " --: |",
                    _ => " --- |",
                });
            }
            md.push('\n');
        }
    }
    md.push('\n');
    result(md)
}

fn collect_rows(
    handlers: &dyn Handlers,
    node: &Rc<DomNode>,
    rows: &mut Vec<Vec<(String, Option<String>)>>,
) {
    for child in node.children.borrow().iter() {
        match tag_name(child) {
            Some("thead" | "tbody" | "tfoot") => collect_rows(handlers, child, rows),
            Some("tr") => {
                let mut cells = Vec::new();
                for cell in child.children.borrow().iter() {
                    if matches!(tag_name(cell), Some("td" | "th")) {
                        let content = handlers.walk_children(cell).content;
                        let text = collapse_newlines(&content)
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ");
                        let align = dom_attr(cell, "align")
                            .or_else(|| {
                                dom_attr(cell, "style").and_then(|s| {
                                    let s = s.replace(' ', "").to_ascii_lowercase();
                                    s.split("text-align:")
                                        .nth(1)
                                        .map(|v| v.split(';').next().unwrap_or("").to_string())
                                })
                            })
                            .map(|a| a.to_ascii_lowercase());
                        cells.push((text, align));
                    }
                }
                if !cells.is_empty() {
                    rows.push(cells);
                }
            }
            _ => {}
        }
    }
}

fn nothing_handler(_handlers: &dyn Handlers, _element: Element) -> Option<HandlerResult> {
    None
}

fn converter() -> &'static HtmlToMarkdown {
    static CONVERTER: OnceLock<HtmlToMarkdown> = OnceLock::new();
    CONVERTER.get_or_init(|| {
        HtmlToMarkdown::builder()
            .options(htmd::options::Options {
                preformatted_code: true,
                ..Default::default()
            })
            .add_handler(vec!["a"], anchor_handler)
            .add_handler(vec!["img"], img_handler)
            .add_handler(vec!["s", "strike", "del"], strike_handler)
            .add_handler(vec!["b", "strong"], strong_handler)
            .add_handler(vec!["i", "em"], em_handler)
            .add_handler(vec!["code", "kbd", "samp", "tt"], inline_code_handler)
            .add_handler(vec!["pre"], pre_handler)
            .add_handler(vec!["input"], checkbox_handler)
            .add_handler(vec!["br"], br_handler)
            .add_handler(vec!["li"], list_item_handler)
            .add_handler(vec!["ul", "ol"], list_handler)
            .add_handler(vec!["h1", "h2", "h3", "h4", "h5", "h6"], heading_handler)
            .add_handler(vec!["span"], span_handler)
            .add_handler(vec!["p"], paragraph_handler)
            .add_handler(vec!["table"], table_handler)
            .add_handler(
                vec![
                    "o:p", "style", "script", "head", "title", "button", "select",
                ],
                nothing_handler,
            )
            .build()
    })
}

// ---------------------------------------------------------------------------------------------
// Markdown side: parse, bring the tree to canonical shape, print, drop needless escapes.

fn comrak_options() -> Options<'static> {
    let mut opts = Options::default();
    opts.extension.table = true;
    opts.extension.strikethrough = true;
    opts.extension.tasklist = true;
    opts.extension.autolink = true;
    opts.render.list_style = comrak::options::ListStyleType::Dash;
    opts.render.prefer_fenced = true;
    opts.render.width = 0;
    opts
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static SANITIZER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    SANITIZER.get_or_init(build_sanitizer)
}

fn build_sanitizer() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    // ammonia's default rel="noopener noreferrer" would be new noise on every write to ADO.
    builder
        .link_rel(None)
        .add_tags(["input"])
        .add_tag_attributes("input", ["type", "checked", "disabled"])
        .add_tag_attributes("code", ["class"]);
    builder
}

type MdNode<'a> = &'a AstNode<'a>;

fn new_node<'a>(arena: &'a Arena<'a>, value: NodeValue) -> MdNode<'a> {
    arena.alloc(AstNode::from(value))
}

fn new_text<'a>(arena: &'a Arena<'a>, text: String) -> MdNode<'a> {
    new_node(arena, NodeValue::Text(Cow::Owned(text)))
}

fn is_raw_br(html: &str) -> bool {
    let t = html.trim().to_ascii_lowercase();
    let inner = t
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    inner.trim() == "br"
}

fn is_comment(html: &str) -> bool {
    let t = html.trim();
    t.starts_with("<!--") && t.ends_with("-->")
}

fn allowed_schemes() -> &'static std::collections::HashSet<&'static str> {
    static SCHEMES: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    SCHEMES.get_or_init(|| sanitizer().clone_url_schemes())
}

/// The URL as it reads back from the HTML we send: percent-encoded the way comrak writes hrefs,
/// dropped where comrak or ammonia would drop it.
fn canonical_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || comrak::html::dangerous_url(url) {
        return None;
    }
    let mut href = String::new();
    comrak::html::escape_href(&mut href, url, false).ok()?;
    let href = href.replace("&#x27;", "'").replace("&amp;", "&");
    match url::Url::parse(&href) {
        Ok(parsed) => allowed_schemes().contains(parsed.scheme()).then_some(href),
        Err(url::ParseError::RelativeUrlWithoutBase) => Some(href),
        Err(_) => None,
    }
}

fn plain_text(node: MdNode<'_>) -> String {
    let mut out = String::new();
    for d in node.descendants() {
        match &d.data().value {
            NodeValue::Text(t) => out.push_str(t),
            NodeValue::Code(c) => out.push_str(&c.literal),
            NodeValue::SoftBreak | NodeValue::LineBreak => out.push(' '),
            _ => {}
        }
    }
    out
}

fn unwrap_node<'a>(node: MdNode<'a>) {
    let children: Vec<_> = node.children().collect();
    for child in children {
        child.detach();
        node.insert_before(child);
    }
    node.detach();
}

/// comrak links some texts as e-mail addresses that its printer's `<...>` form cannot carry
/// (`<A@.a>` is not a CommonMark autolink): those stay plain text.
fn is_broken_email_autolink(node: MdNode<'_>) -> bool {
    static EMAIL: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let NodeValue::Link(link) = &node.data().value else {
        return false;
    };
    let Some(address) = link.url.strip_prefix("mailto:") else {
        return false;
    };
    if plain_text(node) != address {
        return false;
    }
    let valid = EMAIL.get_or_init(|| {
        regex::Regex::new(
            r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$",
        )
        .ok()
    });
    !valid.as_ref().is_some_and(|re| re.is_match(address))
}

fn same_kind_ancestor(node: MdNode<'_>) -> bool {
    let kind = std::mem::discriminant(&node.data().value);
    let mut current = node.parent();
    while let Some(p) = current {
        let value = &p.data().value;
        if value.block() {
            return false;
        }
        if std::mem::discriminant(value) == kind {
            return true;
        }
        current = p.parent();
    }
    false
}

fn canonicalize_tree<'a>(arena: &'a Arena<'a>, root: MdNode<'a>, decode: bool) {
    let dec = |s: &str| -> String {
        if decode {
            decode_placeholders(s).into_owned()
        } else {
            s.to_string()
        }
    };
    let nodes: Vec<_> = root.descendants().collect();
    for node in nodes {
        let value = node.data().value.clone();
        match value {
            NodeValue::Text(t) => {
                let t = dec(&t).replace(['\u{a0}', '\t', '\n', '\r'], " ");
                node.data_mut().value = NodeValue::Text(Cow::Owned(t));
            }
            NodeValue::SoftBreak => {
                node.data_mut().value = NodeValue::Text(Cow::Borrowed(" "));
            }
            NodeValue::Code(mut c) => {
                c.literal = dec(&c.literal);
                node.data_mut().value = if c.literal.trim().is_empty() {
                    NodeValue::Text(Cow::Borrowed(" "))
                } else {
                    NodeValue::Code(c)
                };
            }
            NodeValue::CodeBlock(mut cb) => {
                cb.literal = dec(&cb.literal);
                let info = dec(&cb.info);
                cb.info = info.split_whitespace().next().unwrap_or("").to_string();
                cb.fenced = true;
                node.data_mut().value = NodeValue::CodeBlock(cb);
            }
            NodeValue::HtmlInline(html) => {
                if is_raw_br(&html) {
                    node.data_mut().value = NodeValue::LineBreak;
                } else if is_comment(&html) {
                    node.detach();
                } else {
                    node.data_mut().value =
                        NodeValue::Text(Cow::Owned(html.replace(['\n', '\r', '\t'], " ")));
                }
            }
            NodeValue::HtmlBlock(block) => {
                if is_comment(&block.literal) {
                    node.detach();
                    continue;
                }
                // Raw HTML is shown, never rendered: keep it as literal text, line by line.
                let para = new_node(arena, NodeValue::Paragraph);
                for (i, line) in block.literal.lines().enumerate() {
                    if i > 0 {
                        para.append(new_node(arena, NodeValue::LineBreak));
                    }
                    para.append(new_text(arena, line.replace('\t', " ")));
                }
                node.insert_before(para);
                node.detach();
            }
            NodeValue::Link(_) if is_broken_email_autolink(node) => unwrap_node(node),
            NodeValue::Link(mut link) => match canonical_url(&dec(&link.url)) {
                Some(url) => {
                    link.url = url;
                    link.title = dec(&link.title)
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    node.data_mut().value = NodeValue::Link(link);
                }
                None => unwrap_node(node),
            },
            NodeValue::Image(mut link) => {
                let alt = dec(&plain_text(node))
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                let children: Vec<_> = node.children().collect();
                for child in children {
                    child.detach();
                }
                match canonical_url(&dec(&link.url)) {
                    Some(url) => {
                        link.url = url;
                        link.title = dec(&link.title)
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        node.data_mut().value = NodeValue::Image(link);
                        if !alt.is_empty() {
                            node.append(new_text(arena, alt));
                        }
                    }
                    None => {
                        node.data_mut().value = NodeValue::Text(Cow::Owned(alt));
                    }
                }
            }
            NodeValue::Emph | NodeValue::Strong | NodeValue::Strikethrough
                if same_kind_ancestor(node) =>
            {
                unwrap_node(node);
            }
            NodeValue::TaskItem(mut ti) => {
                ti.symbol = ti.symbol.filter(|c| !c.is_whitespace()).map(|_| 'x');
                node.data_mut().value = NodeValue::TaskItem(ti);
            }
            NodeValue::List(mut list) => {
                list.delimiter = ListDelimType::Period;
                list.bullet_char = b'-';
                list.start = list.start.max(1);
                node.data_mut().value = NodeValue::List(list);
            }
            _ => {}
        }
    }
    // Headings and table cells are one line: a break there is a space.
    let breaks: Vec<_> = root
        .descendants()
        .filter(|n| matches!(n.data().value, NodeValue::LineBreak))
        .collect();
    for br in breaks {
        let mut block = br.parent();
        while let Some(b) = block.filter(|b| !b.data().value.block()) {
            block = b.parent();
        }
        if block
            .is_some_and(|b| matches!(b.data().value, NodeValue::Heading(_) | NodeValue::TableCell))
        {
            br.data_mut().value = NodeValue::Text(Cow::Borrowed(" "));
        }
    }
    let blocks: Vec<_> = root
        .descendants()
        .filter(|n| {
            matches!(
                n.data().value,
                NodeValue::Paragraph | NodeValue::Heading(_) | NodeValue::TableCell
            )
        })
        .collect();
    for block in blocks {
        for _ in 0..3 {
            if !clean_inlines(arena, block, true) {
                break;
            }
        }
    }
    // Bare URLs are linked by one rule in both directions: comrak skips some (after an unmatched
    // `[`, inside raw HTML turned into text) that text read back from HTML would link.
    let texts: Vec<_> = root.descendants().filter(|n| is_text(n)).collect();
    for t in texts {
        autolink_text_node(arena, t);
    }
    remove_empty_blocks(root);
    merge_adjacent_lists(root);
    loosen_lists(root);
}

/// HTML keeps a blank line after a heading, code block, quote, table or rule inside a list item
/// (they are never inline), so such a list reads back loose: make it loose here already.
fn loosen_lists(root: MdNode<'_>) {
    let lists: Vec<_> = root
        .descendants()
        .filter(|n| matches!(n.data().value, NodeValue::List(_)))
        .collect();
    for list in lists {
        let loose = list.children().any(|item| {
            item.children().any(|c| {
                let next = c.next_sibling();
                match c.data().value {
                    // A tight item's text is bare in HTML and only a nested list follows it
                    // without a blank line.
                    NodeValue::Paragraph => {
                        next.is_some_and(|n| !matches!(n.data().value, NodeValue::List(_)))
                    }
                    NodeValue::List(_) => next.is_some(),
                    _ => next.is_some() || item.next_sibling().is_some(),
                }
            })
        });
        // Looseness shows in HTML only as `<p>` around item text: a loose list without any
        // item text reads back tight.
        let has_text = list.children().any(|item| {
            item.children()
                .any(|c| matches!(c.data().value, NodeValue::Paragraph))
        });
        let was_loose = matches!(&list.data().value, NodeValue::List(l) if !l.tight);
        let tight = !(loose || (was_loose && has_text));
        if let NodeValue::List(l) = &mut list.data_mut().value {
            l.tight = tight;
        }
        for item in list.children() {
            if let NodeValue::Item(l) = &mut item.data_mut().value {
                l.tight = tight;
            }
        }
    }
}

fn is_text(node: MdNode<'_>) -> bool {
    matches!(node.data().value, NodeValue::Text(_))
}

fn text_of(node: MdNode<'_>) -> String {
    match &node.data().value {
        NodeValue::Text(t) => t.to_string(),
        _ => String::new(),
    }
}

fn set_text(node: MdNode<'_>, text: String) {
    node.data_mut().value = NodeValue::Text(Cow::Owned(text));
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// Normalizes the inline children of `container`; returns whether anything changed.
fn clean_inlines<'a>(arena: &'a Arena<'a>, container: MdNode<'a>, is_block: bool) -> bool {
    clean_inlines_at(arena, container, is_block, 0)
}

fn clean_inlines_at<'a>(
    arena: &'a Arena<'a>,
    container: MdNode<'a>,
    is_block: bool,
    depth: usize,
) -> bool {
    let mut changed = false;
    // Children first, so whitespace moved out of them is handled at this level.
    let children: Vec<_> = container.children().collect();
    for child in &children {
        let wraps = matches!(
            child.data().value,
            NodeValue::Emph | NodeValue::Strong | NodeValue::Strikethrough | NodeValue::Link(_)
        );
        if !wraps {
            continue;
        }
        if depth < 32 {
            changed |= clean_inlines_at(arena, child, false, depth + 1);
        }
        // Breaks at the edges go outside too: HTML puts them there on the way back.
        if let Some(first) = child
            .first_child()
            .filter(|n| matches!(n.data().value, NodeValue::LineBreak))
        {
            first.detach();
            child.insert_before(first);
            changed = true;
        }
        if let Some(last) = child
            .last_child()
            .filter(|n| matches!(n.data().value, NodeValue::LineBreak))
        {
            last.detach();
            child.insert_after(last);
            changed = true;
        }
        if let Some(first) = child.first_child().filter(|n| is_text(n)) {
            let t = text_of(first);
            if t.starts_with(' ') {
                set_text(first, t.trim_start_matches(' ').to_string());
                child.insert_before(new_text(arena, " ".to_string()));
                changed = true;
            }
        }
        if let Some(last) = child.last_child().filter(|n| is_text(n)) {
            let t = text_of(last);
            if t.ends_with(' ') {
                set_text(last, t.trim_end_matches(' ').to_string());
                child.insert_after(new_text(arena, " ".to_string()));
                changed = true;
            }
        }
    }
    // Merge adjacent texts, collapse spaces, drop empties.
    let mut current = container.first_child();
    while let Some(node) = current {
        let next = node.next_sibling();
        if is_text(node) {
            if let Some(n) = next.filter(|n| is_text(n)) {
                let merged = text_of(node) + &text_of(n);
                set_text(node, merged);
                n.detach();
                changed = true;
                continue;
            }
            let t = text_of(node);
            let c = collapse_spaces(&t);
            if c != t {
                set_text(node, c);
                changed = true;
            }
            if text_of(node).is_empty() {
                node.detach();
                changed = true;
            }
        } else if matches!(
            node.data().value,
            NodeValue::Emph | NodeValue::Strong | NodeValue::Strikethrough
        ) && node.first_child().is_none()
        {
            node.detach();
            changed = true;
        }
        current = next;
    }
    // Spaces next to hard breaks and block edges, and break runs.
    let mut current = container.first_child();
    while let Some(node) = current {
        let next = node.next_sibling();
        if matches!(node.data().value, NodeValue::LineBreak) {
            let prev = node.previous_sibling();
            let at_edge = is_block && (prev.is_none() || next.is_none());
            let doubled = next.is_some_and(|n| matches!(n.data().value, NodeValue::LineBreak));
            if at_edge || doubled {
                node.detach();
                changed = true;
                current = next;
                continue;
            }
            if let Some(p) = prev.filter(|p| is_text(p)) {
                let t = text_of(p);
                if t.ends_with(' ') {
                    set_text(p, t.trim_end_matches(' ').to_string());
                    changed = true;
                }
            }
            if let Some(n) = next.filter(|n| is_text(n)) {
                let t = text_of(n);
                if t.starts_with(' ') {
                    set_text(n, t.trim_start_matches(' ').to_string());
                    changed = true;
                }
            }
        }
        current = next;
    }
    if is_block {
        if let Some(first) = container.first_child().filter(|n| is_text(n)) {
            let t = text_of(first);
            if t.starts_with(' ') {
                set_text(first, t.trim_start_matches(' ').to_string());
                changed = true;
            }
        }
        if let Some(last) = container.last_child().filter(|n| is_text(n)) {
            let t = text_of(last);
            if t.ends_with(' ') {
                set_text(last, t.trim_end_matches(' ').to_string());
                changed = true;
            }
        }
    }
    changed
}

fn remove_empty_blocks(root: MdNode<'_>) {
    // Reverse pre-order visits every node after all of its descendants, without recursion.
    let nodes: Vec<_> = root.descendants().collect();
    for node in nodes.into_iter().rev() {
        // An empty item prints as a bare `-`, which can turn the line above into a heading.
        let removable = matches!(
            node.data().value,
            NodeValue::Paragraph
                | NodeValue::Heading(_)
                | NodeValue::BlockQuote
                | NodeValue::List(_)
                | NodeValue::Item(_)
        );
        let only_blank = node
            .children()
            .all(|c| is_text(c) && text_of(c).trim().is_empty());
        if removable && only_blank && node.parent().is_some() {
            node.detach();
        }
    }
}

fn merge_adjacent_lists(root: MdNode<'_>) {
    let nodes: Vec<_> = root.descendants().collect();
    for node in nodes.into_iter().rev() {
        merge_lists_under(node);
    }
}

fn merge_lists_under(node: MdNode<'_>) {
    let mut current = node.first_child();
    while let Some(list) = current {
        let next = list.next_sibling();
        let list_type = match &list.data().value {
            NodeValue::List(l) => Some(l.list_type),
            _ => None,
        };
        let (Some(kind), Some(n)) = (list_type, next) else {
            current = next;
            continue;
        };
        let same = matches!(&n.data().value, NodeValue::List(l) if l.list_type == kind);
        if same {
            // Two lists of one kind in a row read back from HTML as one loose list.
            let items: Vec<_> = n.children().collect();
            for item in items {
                item.detach();
                list.append(item);
            }
            n.detach();
            if let NodeValue::List(l) = &mut list.data_mut().value {
                l.tight = false;
            }
            for item in list.children() {
                if let NodeValue::Item(l) = &mut item.data_mut().value {
                    l.tight = false;
                }
            }
            // Look at the same list again: a third one may follow.
            continue;
        }
        current = next;
    }
}

/// Parse, canonicalize and print; the printed text is the canonical form up to needless escapes.
fn format_canonical(md: &str, decode: bool) -> String {
    render_canonical(md, decode).0
}

/// As `format_canonical`, plus whether the source held raw HTML (which canonicalization turns
/// into text, so the printed form alone cannot tell).
fn render_canonical(md: &str, decode: bool) -> (String, bool) {
    let arena = Arena::new();
    let opts = comrak_options();
    let root = comrak::parse_document(&arena, md, &opts);
    let has_raw_html = root.descendants().any(|n| {
        matches!(
            n.data().value,
            NodeValue::HtmlInline(_) | NodeValue::HtmlBlock(_)
        )
    });
    canonicalize_tree(&arena, root, decode);
    defuse_autolinks(&arena, root);
    let mut out = String::new();
    if comrak::format_commonmark(root, &opts, &mut out).is_err() {
        return (String::new(), has_raw_html);
    }
    (tidy_printed(&out), has_raw_html)
}

/// An edit of the canonical text is harmless when it reads back as the same document without
/// raw HTML: `\<b>` must stay escaped even though `<b>` would also end up as text here, because
/// other Markdown readers (ClickUp) would take it for a tag.
fn same_document(candidate: &str, canonical: &str) -> bool {
    let (printed, raw) = render_canonical(candidate, false);
    !raw && printed == canonical
}

/// Text-level fixes to comrak's printer: list separators we made unneeded (same-kind lists are
/// merged and code blocks are fenced), whitespace-only lines, blank-line runs, outer blank lines.
fn tidy_printed(printed: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in printed.lines() {
        if line.trim() == "<!-- end list -->" {
            continue;
        }
        let line = if line.chars().all(|c| c == ' ' || c == '>') {
            line.trim_end()
        } else {
            line
        };
        if line.is_empty() && lines.last().is_some_and(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    let text = lines.join("\n");
    text.trim_matches('\n').to_string()
}

fn normalize_impl(md: &str, decode: bool) -> String {
    let mut printed = format_canonical(md, decode);
    for _ in 0..3 {
        let again = format_canonical(&printed, false);
        if again == printed {
            break;
        }
        printed = again;
    }
    minimize(&printed)
}

/// Escapes kept even where comrak would not need them, so that literal text reads the same to
/// every Markdown reader and pairs stay symmetric (`\*not emphasis\*`, not `*not emphasis\*`):
/// `*` keeps its escape unless it stands between spaces, `_` unless it is inside a word (or
/// between spaces).
fn sticky_escape(text: &str, k: usize) -> bool {
    let bytes = text.as_bytes();
    let Some(&c) = bytes.get(k + 1) else {
        return false;
    };
    let before = text[..k].chars().next_back();
    let after = text[k + 2..].chars().next();
    let space = |c: Option<char>| c.is_none_or(char::is_whitespace);
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    match c {
        b'*' => !(space(before) && space(after)),
        b'_' => !((word(before) && word(after)) || (space(before) && space(after))),
        _ => false,
    }
}

/// Drops every escape (and autolink bracket pair) whose removal leaves the canonical document
/// unchanged. Depends only on its input, so normalizing twice gives the same text.
///
/// Each try re-reads the text, so tries are made per top-level block (a paragraph, a list, a
/// table): that keeps the work near-linear in the document's size. The whole result is checked
/// once at the end; should a block-local edit ever change the whole, the document-wide search
/// is used instead.
fn minimize(canonical: &str) -> String {
    let arena = Arena::new();
    let opts = comrak_options();
    let root = comrak::parse_document(&arena, canonical, &opts);
    let lines: Vec<&str> = canonical.split('\n').collect();
    let mut out: Vec<String> = Vec::new();
    let mut next_line = 1;
    for block in root.children() {
        let (start, end, is_code) = {
            let data = block.data();
            (
                data.sourcepos.start.line,
                data.sourcepos.end.line,
                matches!(data.value, NodeValue::CodeBlock(_)),
            )
        };
        if start < next_line || end < start || end > lines.len() {
            return minimize_text(canonical);
        }
        out.extend(
            lines[next_line - 1..start - 1]
                .iter()
                .map(|l| l.to_string()),
        );
        let chunk = lines[start - 1..end].join("\n");
        if !is_code && chunk.contains(['\\', '<']) && format_canonical(&chunk, false) == chunk {
            out.push(minimize_text(&chunk));
        } else {
            out.push(chunk);
        }
        next_line = end + 1;
    }
    if next_line <= lines.len() {
        out.extend(lines[next_line - 1..].iter().map(|l| l.to_string()));
    }
    let result = out.join("\n");
    if result == canonical || same_document(&result, canonical) {
        result
    } else {
        minimize_text(canonical)
    }
}

/// The search behind `minimize`: candidate edits (an escaping backslash, or the brackets of an
/// autolink) are tried in batches, halving a batch that changes the document, so a text whose
/// escapes are mostly needless (or mostly needed) costs few re-reads. Every accepted state is
/// checked to read back as `canonical`.
fn minimize_text(canonical: &str) -> String {
    let candidates = edit_candidates(canonical);
    let mut removed = vec![false; candidates.len()];
    // Each try re-parses the text: bound the work on very large inputs.
    let mut budget = (4_000_000 / canonical.len().max(1)).clamp(20, 600);
    try_batch(
        canonical,
        &candidates,
        0,
        candidates.len(),
        &mut removed,
        &mut budget,
    );
    apply_edits(canonical, &candidates, &removed)
}

fn try_batch(
    canonical: &str,
    candidates: &[Vec<usize>],
    from: usize,
    to: usize,
    removed: &mut Vec<bool>,
    budget: &mut usize,
) {
    if from >= to || *budget == 0 {
        return;
    }
    let mut trial = removed.clone();
    for flag in &mut trial[from..to] {
        *flag = true;
    }
    *budget -= 1;
    if same_document(&apply_edits(canonical, candidates, &trial), canonical) {
        *removed = trial;
        return;
    }
    if to - from == 1 {
        return;
    }
    let mid = from + (to - from) / 2;
    try_batch(canonical, candidates, from, mid, removed, budget);
    try_batch(canonical, candidates, mid, to, removed, budget);
}

fn apply_edits(text: &str, candidates: &[Vec<usize>], removed: &[bool]) -> String {
    let mut drop: Vec<usize> = candidates
        .iter()
        .zip(removed)
        .filter(|(_, r)| **r)
        .flat_map(|(c, _)| c.iter().copied())
        .collect();
    drop.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut next = drop.iter().peekable();
    for (i, c) in text.char_indices() {
        if next.peek().is_some_and(|&&d| d == i) {
            next.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Byte positions of the edits worth trying: a backslash before ASCII punctuation (unless the
/// escape is kept by policy), or the `<` and `>` of an autolink.
fn edit_candidates(text: &str) -> Vec<Vec<usize>> {
    let bytes = text.as_bytes();
    let mut candidates = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let Some(offset) = text[pos..].find(['\\', '<']) else {
            break;
        };
        let k = pos + offset;
        if bytes[k] == b'\\' {
            let escapes_punct = bytes.get(k + 1).is_some_and(|b| b.is_ascii_punctuation());
            if !escapes_punct {
                pos = k + 1;
                continue;
            }
            let tag_like = bytes[k + 1] == b'<'
                && bytes
                    .get(k + 2)
                    .is_some_and(|b| b.is_ascii_alphabetic() || b"/!?".contains(b));
            if !tag_like && !sticky_escape(text, k) {
                candidates.push(vec![k]);
            }
            pos = k + 2;
        } else {
            let rest = &text[k + 1..];
            let end = rest.find(|c: char| c == '>' || c == '<' || c.is_whitespace());
            match end {
                Some(e) if rest.as_bytes()[e] == b'>' && e > 0 => {
                    let inner = &rest[..e];
                    if inner.contains(':') || inner.contains('@') {
                        candidates.push(vec![k, k + 1 + e]);
                        pos = k + 2 + e;
                    } else {
                        pos = k + 1;
                    }
                }
                _ => pos = k + 1,
            }
        }
    }
    candidates
}

// ---------------------------------------------------------------------------------------------
// GFM extended autolinks for text that came from HTML.
//
// comrak finds bare URLs in the Markdown *source*, so a URL printed with escapes (`a\_b`) would
// read back as a link whose address contains the backslash. Text from HTML is therefore linked
// here, with GFM's rules (comrak's `url_match`/`www_match`), before it is ever printed.

fn is_host_char(c: char) -> bool {
    !(c.is_whitespace() || c.is_ascii_punctuation() || is_symbol_like(c))
}

fn is_symbol_like(c: char) -> bool {
    // Rust has no `char::is_symbol`; non-ASCII symbols in host names are rare enough that the
    // general punctuation and symbol blocks stand for them.
    matches!(c as u32, 0x2000..=0x2BFF | 0x3000..=0x303F)
}

/// Length of the domain at the start of `data`, or `None` when GFM would not link it.
fn domain_len(data: &str, allow_short: bool) -> Option<usize> {
    let mut end = 0;
    let mut dots = 0;
    let mut uscores = 0;
    let mut prev_uscores = 0;
    for (i, c) in data.char_indices() {
        match c {
            '_' => uscores += 1,
            '.' => {
                prev_uscores = uscores;
                uscores = 0;
                dots += 1;
            }
            c if is_host_char(c) || c == '-' => {}
            _ => {
                end = i;
                break;
            }
        }
        end = i + c.len_utf8();
    }
    if dots > 10 {
        return Some(end);
    }
    if uscores > 0 || prev_uscores > 0 {
        return None;
    }
    (allow_short || dots > 0).then_some(end)
}

/// GFM's trailing-punctuation rules for the end of an autolink.
fn trim_link_end(data: &str, mut end: usize) -> usize {
    let bytes = data.as_bytes();
    if let Some(lt) = bytes[..end].iter().position(|&b| b == b'<') {
        end = lt;
    }
    let open = bytes[..end].iter().filter(|&&b| b == b'(').count();
    let mut close = bytes[..end].iter().filter(|&&b| b == b')').count();
    while end > 0 {
        let c = bytes[end - 1];
        if b"?!.,:*_~'\"".contains(&c) {
            end -= 1;
        } else if c == b';' {
            let mut start = end - 1;
            while start > 0 && bytes[start - 1].is_ascii_alphabetic() {
                start -= 1;
            }
            if start > 0 && start < end - 1 && bytes[start - 1] == b'&' {
                end = start - 1;
            } else {
                end -= 1;
            }
        } else if c == b')' && close > open {
            close -= 1;
            end -= 1;
        } else {
            break;
        }
    }
    end
}

/// Finds the next bare URL in `text` at or after `from`: (start, end, url).
fn next_autolink(text: &str, from: usize) -> Option<(usize, usize, String)> {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b':' && text[i..].starts_with("://") {
            let mut start = i;
            while start > 0 && bytes[start - 1].is_ascii_alphabetic() {
                start -= 1;
            }
            let scheme = &text[start..i];
            let known = ["http", "https", "ftp"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme));
            let host_ok = text[i + 3..].chars().next().is_some_and(is_host_char);
            if known && host_ok && start >= from {
                if let Some(d) = domain_len(&text[i + 3..], true) {
                    let mut end = i + 3 + d;
                    while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
                        end += 1;
                    }
                    let end = start + trim_link_end(&text[start..end], end - start);
                    if end > i + 3 {
                        return Some((start, end, text[start..end].to_string()));
                    }
                }
            }
        } else if b == b'w'
            && text[i..].starts_with("www.")
            && (i == 0 || bytes[i - 1].is_ascii_whitespace() || b"*_~([".contains(&bytes[i - 1]))
        {
            if let Some(d) = domain_len(&text[i + 4..], false) {
                let mut end = i + 4 + d;
                while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
                    end += 1;
                }
                let end = i + trim_link_end(&text[i..end], end - i);
                if end > i + 4 {
                    return Some((i, end, format!("http://{}", &text[i..end])));
                }
            }
        }
        i += 1;
        while i < bytes.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
    None
}

fn inside_link(node: MdNode<'_>) -> bool {
    let mut current = node.parent();
    while let Some(p) = current {
        if matches!(p.data().value, NodeValue::Link(_) | NodeValue::Image(_)) {
            return true;
        }
        current = p.parent();
    }
    false
}

/// Splits a text node at bare URLs into text and link nodes.
fn autolink_text_node<'a>(arena: &'a Arena<'a>, node: MdNode<'a>) {
    let text = text_of(node);
    if !(text.contains("://") || text.contains("www.")) || inside_link(node) {
        return;
    }
    let mut pieces: Vec<MdNode<'a>> = Vec::new();
    let mut last = 0;
    let mut from = 0;
    while let Some((start, end, url)) = next_autolink(&text, from) {
        from = end;
        let Some(url) = canonical_url(&url) else {
            continue;
        };
        if start > last {
            pieces.push(new_text(arena, text[last..start].to_string()));
        }
        let link = new_node(
            arena,
            NodeValue::Link(Box::new(comrak::nodes::NodeLink {
                url,
                title: String::new(),
            })),
        );
        link.append(new_text(arena, text[start..end].to_string()));
        pieces.push(link);
        last = end;
    }
    if pieces.is_empty() {
        return;
    }
    if last < text.len() {
        pieces.push(new_text(arena, text[last..].to_string()));
    }
    for piece in pieces {
        node.insert_before(piece);
    }
    node.detach();
}

/// A link comrak prints as `<url>`: its text is its address.
fn is_autolink_node(node: MdNode<'_>) -> bool {
    let NodeValue::Link(link) = &node.data().value else {
        return false;
    };
    let text = plain_text(node);
    link.title.is_empty() && (link.url == text || link.url.strip_prefix("mailto:") == Some(&text))
}

/// comrak finds bare URLs in the Markdown source, inside link text too, and takes escapes along.
/// Text that is not a link in the tree must not turn into one when printed and read again, so the
/// `:` of `://` and the `.` of `www.` are printed escaped (raw inline nodes print verbatim);
/// `minimize` drops the escapes that turn out to be needless.
fn defuse_autolinks<'a>(arena: &'a Arena<'a>, root: MdNode<'a>) {
    let texts: Vec<_> = root
        .descendants()
        .filter(|n| is_text(n))
        .filter(|n| {
            let t = text_of(n);
            (t.contains("://") || t.contains("www.")) && !n.parent().is_some_and(is_autolink_node)
        })
        .collect();
    for node in texts {
        let text = text_of(node);
        let mut pieces: Vec<(String, bool)> = Vec::new();
        let mut current = String::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("://") {
                pieces.push((std::mem::take(&mut current), false));
                pieces.push(("\\:".to_string(), true));
                current.push_str("//");
                rest = after;
            } else if let Some(after) = rest.strip_prefix("www.") {
                current.push_str("www");
                pieces.push((std::mem::take(&mut current), false));
                pieces.push(("\\.".to_string(), true));
                rest = after;
            } else {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    current.push(c);
                }
                rest = chars.as_str();
            }
        }
        pieces.push((current, false));
        for (piece, raw) in pieces {
            if piece.is_empty() {
                continue;
            }
            let value = if raw {
                NodeValue::HtmlInline(piece)
            } else {
                NodeValue::Text(Cow::Owned(piece))
            };
            node.insert_before(new_node(arena, value));
        }
        node.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_is_stable(md: &str) {
        assert_eq!(normalize_markdown(md), md, "not canonical");
        assert_eq!(
            html_to_markdown(&markdown_to_html(md)),
            md,
            "not a fixed point"
        );
    }

    #[test]
    fn ado_mention_becomes_plain_at_name() {
        let html = r##"<div><a href="#" data-vss-mention="version:2.0,6b7c">@Priya Natarajan</a>&nbsp;please check</div>"##;
        let md = html_to_markdown(html);
        assert_eq!(md, "@Priya Natarajan please check");
        round_trip_is_stable(&md);
    }

    #[test]
    fn td_only_table_gets_first_row_as_header_and_escaped_pipes() {
        let html = "<table><tbody><tr><td>Env</td><td>Result</td></tr>\
                    <tr><td>Firefox | ESR</td><td>Passes</td></tr></tbody></table>";
        let md = html_to_markdown(html);
        assert_eq!(
            md,
            "| Env | Result |\n| --- | --- |\n| Firefox \\| ESR | Passes |"
        );
        assert!(markdown_to_html(&md).contains("<td>Firefox | ESR</td>"));
        round_trip_is_stable(&md);
    }

    #[test]
    fn ragged_table_rows_are_padded() {
        let html = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>";
        let md = html_to_markdown(html);
        assert_eq!(md, "| a | b |\n| --- | --- |\n| c |  |");
        round_trip_is_stable(&md);
    }

    #[test]
    fn strike_variants_become_tildes() {
        for tag in ["s", "strike", "del"] {
            let md = html_to_markdown(&format!("<div>was <{tag}>old</{tag}> new</div>"));
            assert_eq!(md, "was ~~old~~ new", "<{tag}>");
        }
        round_trip_is_stable("was ~~old~~ new");
    }

    #[test]
    fn attachment_image_keeps_its_address() {
        let url = "https://dev.azure.com/c/p/_apis/wit/attachments/0f4e?fileName=shot.png";
        let md = html_to_markdown(&format!(r#"<div><img src="{url}" alt=Image><br></div>"#));
        assert_eq!(md, format!("![Image]({url})"));
        round_trip_is_stable(&md);
    }

    #[test]
    fn div_and_br_paragraphs() {
        let md = html_to_markdown("<div>one</div><div><br></div><div>two<br>three<br></div>");
        assert_eq!(md, "one\n\ntwo\\\nthree");
        round_trip_is_stable(&md);
    }

    #[test]
    fn nbsp_is_a_space_outside_code() {
        assert_eq!(html_to_markdown("<div>a&nbsp;&nbsp;b</div>"), "a b");
        assert_eq!(html_to_markdown("<div>&nbsp;</div>"), "");
        assert_eq!(
            html_to_markdown("<pre><code>a&nbsp;b</code></pre>"),
            "```\na\u{a0}b\n```"
        );
    }

    #[test]
    fn word_paste_noise_is_dropped() {
        let html = "<p class=MsoNormal><span style='font-family:\"Calibri\";mso-fareast-language:EN-US'>\
                    Hello<o:p></o:p></span></p><!--[if gte mso 9]><xml><o:OfficeDocumentSettings/></xml><![endif]-->\
                    <p class=MsoNormal><span style='color:red'>World</span><o:p>&nbsp;</o:p></p>";
        assert_eq!(html_to_markdown(html), "Hello\n\nWorld");
    }

    #[test]
    fn word_list_paragraphs_become_a_list() {
        let item = |n: &str, text: &str| {
            format!(
                "<p class=MsoListParagraphCxSpMiddle style='mso-list:l0 level1 lfo1'>\
                 <span style='mso-list:Ignore'>{n}<span style='font:7.0pt'>&nbsp;&nbsp; </span></span>\
                 {text}<o:p></o:p></p>"
            )
        };
        let html = format!("{}{}", item("1.", "Freeze"), item("2.", "Tag"));
        let md = html_to_markdown(&html);
        assert_eq!(md, "1. Freeze\n2. Tag");
        let bullets = format!("{}{}", item("·", "a"), item("o", "b"));
        assert_eq!(html_to_markdown(&bullets), "- a\n- b");
    }

    #[test]
    fn code_block_keeps_text_and_language() {
        let html =
            "<pre><code class=\"language-sql\">SELECT *\n  FROM t WHERE a &lt; 1;\n</code></pre>";
        let md = html_to_markdown(html);
        assert_eq!(md, "```sql\nSELECT *\n  FROM t WHERE a < 1;\n```");
        assert!(markdown_to_html(&md).contains("<code class=\"language-sql\">"));
        round_trip_is_stable(&md);
    }

    #[test]
    fn inline_code_with_backticks() {
        let md = html_to_markdown("<div>run <code>a`b</code> now</div>");
        assert_eq!(md, "run ``a`b`` now");
        round_trip_is_stable(&md);
    }

    #[test]
    fn checkboxes_become_task_items() {
        let html = "<ul><li><input type=\"checkbox\" checked disabled> done</li>\
                    <li><input type=\"checkbox\" disabled> todo</li></ul>";
        let md = html_to_markdown(html);
        assert_eq!(md, "- [x] done\n- [ ] todo");
        let sent = markdown_to_html(&md);
        assert!(sent.contains("<input type=\"checkbox\" checked=\"\" disabled=\"\">"));
        round_trip_is_stable(&md);
    }

    #[test]
    fn text_urls_become_bare_autolinks() {
        let md = html_to_markdown("<div>see https://e.com/a_b?x=1&amp;y=2.</div>");
        assert_eq!(md, "see https://e.com/a_b?x=1&y=2.");
        assert!(markdown_to_html(&md).contains("<a href=\"https://e.com/a_b?x=1&amp;y=2\">"));
        round_trip_is_stable(&md);
    }

    #[test]
    fn markdown_syntax_in_html_text_is_escaped() {
        let md = html_to_markdown(
            "<div>*not emphasis* and [x](y)</div><div>1. not a list</div><div># no</div>",
        );
        assert_eq!(
            md,
            "\\*not emphasis\\* and [x\\](y)\n\n1\\. not a list\n\n\\# no"
        );
        round_trip_is_stable(&md);
    }

    #[test]
    fn html_for_ado_has_no_rel_noise_and_no_raw_html() {
        let html = markdown_to_html("[a](https://e.com) <b>bold?</b> [x](javascript:alert(1))");
        assert_eq!(
            html,
            "<p><a href=\"https://e.com\">a</a> &lt;b&gt;bold?&lt;/b&gt; x</p>\n"
        );
    }

    #[test]
    fn raw_html_in_markdown_is_kept_as_text() {
        assert_eq!(
            normalize_markdown("a<br>b <!-- c --> <b>d</b>"),
            "a\\\nb \\<b>d\\</b>"
        );
        round_trip_is_stable("a\\\nb \\<b>d\\</b>");
    }

    #[test]
    fn normalize_unifies_markers() {
        let md = "Title\n=====\n\n* a\n* b\n\n1) x\n2) y\n\n_em_ and __strong__ and ~single~\n\n~~~py\ncode\n~~~";
        assert_eq!(
            normalize_markdown(md),
            "# Title\n\n- a\n- b\n\n1. x\n2. y\n\n*em* and **strong** and ~~single~~\n\n```py\ncode\n```"
        );
    }

    #[test]
    fn normalize_whitespace_and_escapes() {
        // Two or more trailing spaces are a hard break; the canonical break is a backslash.
        let md = "a  b \nc\n\n\n\nd\\_e snake\\_case \\#tag\t x  \ny";
        assert_eq!(
            normalize_markdown(md),
            "a b c\n\nd_e snake_case #tag x\\\ny"
        );
    }

    #[test]
    fn normalize_tables() {
        let md = "a|b\n:-|-:\n1|2 \\| 3";
        assert_eq!(
            normalize_markdown(md),
            "| a | b |\n| :-- | --: |\n| 1 | 2 \\| 3 |"
        );
        round_trip_is_stable(&normalize_markdown(md));
    }

    #[test]
    fn raw_breaks_in_cells_and_headings_become_spaces() {
        assert_eq!(
            normalize_markdown("# a<br>b\n\n| h |\n| - |\n| x<br>y |"),
            "# a b\n\n| h |\n| --- |\n| x y |"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let html = format!("{}x{}", "<div><b>".repeat(3000), "</b></div>".repeat(3000));
        assert_eq!(html_to_markdown(&html), "x");
        let md = format!("{}x", "> ".repeat(3000));
        let _ = markdown_to_html(&normalize_markdown(&md));
    }

    #[test]
    fn empty_and_blank_descriptions() {
        assert_eq!(html_to_markdown(""), "");
        assert_eq!(html_to_markdown("<div><br></div>"), "");
        assert_eq!(normalize_markdown("  \n\n "), "");
        assert_eq!(markdown_to_html(""), "");
    }

    #[test]
    fn adjacent_lists_of_one_kind_merge() {
        let md = normalize_markdown("- a\n\n<!-- x -->\n\n- b");
        assert_eq!(md, "- a\n\n- b");
        round_trip_is_stable(&md);
    }

    #[test]
    fn placeholder_characters_in_input_are_dropped() {
        assert_eq!(normalize_markdown("a\u{FDD0}b"), "ab");
        assert_eq!(html_to_markdown("<div>a\u{FDD5}b</div>"), "ab");
    }
}
