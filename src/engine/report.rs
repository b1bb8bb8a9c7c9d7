//! How plans and applied actions are shown: one row per action, and the dry-run table.
use super::*;

/// One row of a plan or of the applied actions, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    pub action: &'static str,
    pub ado_id: Option<AdoId>,
    pub clickup_id: Option<ClickUpId>,
    pub fields: Vec<Field>,
    pub detail: String,
}

impl ActionRow {
    pub fn of(a: &Action) -> ActionRow {
        let (ado_id, clickup_id) = match a {
            Action::Link {
                ado_id, clickup_id, ..
            } => (Some(*ado_id), Some(clickup_id.clone())),
            Action::CreateInAdo { source, .. } => (None, Some(source.clone())),
            Action::CreateInClickUp { source, .. } => (Some(*source), None),
            Action::UpdateAdo { ado_id, link, .. } => (Some(*ado_id), link_clickup(link)),
            Action::UpdateClickUp {
                clickup_id, link, ..
            } => (link_ado(link), Some(clickup_id.clone())),
            Action::Rebase { link, .. } | Action::RecordConflict { link, .. } => {
                (link_ado(link), link_clickup(link))
            }
            Action::Unlink { .. } => (None, None),
        };
        let (name, fields, detail) = match a {
            Action::Link { .. } => ("link", vec![], "matched by back-link".to_string()),
            Action::CreateInAdo { create, .. } => (
                "create_in_ado",
                ado_patch_fields(&create.fields),
                create.work_item_type.clone(),
            ),
            Action::CreateInClickUp { create, .. } => (
                "create_in_clickup",
                clickup_patch_fields(&create.fields),
                format!("list {}", create.list_id),
            ),
            Action::UpdateAdo {
                patch,
                expected_rev,
                ..
            } => (
                "update_ado",
                ado_patch_fields(patch),
                format!("at rev {expected_rev}"),
            ),
            Action::UpdateClickUp { patch, .. } => {
                ("update_clickup", clickup_patch_fields(patch), String::new())
            }
            Action::Rebase { .. } => ("rebase", vec![], "both sides agree".to_string()),
            Action::RecordConflict { conflict, .. } => (
                "conflict",
                vec![conflict.field],
                "edited differently on both sides".to_string(),
            ),
            Action::Unlink { link, reason } => ("unlink", vec![], format!("link {link}: {reason}")),
        };
        ActionRow {
            action: name,
            ado_id,
            clickup_id,
            fields,
            detail,
        }
    }
}

fn link_ado(l: &LinkRef) -> Option<AdoId> {
    match l {
        LinkRef::New { ado_id, .. } => Some(*ado_id),
        LinkRef::Existing(_) => None,
    }
}
fn link_clickup(l: &LinkRef) -> Option<ClickUpId> {
    match l {
        LinkRef::New { clickup_id, .. } => Some(clickup_id.clone()),
        LinkRef::Existing(_) => None,
    }
}

/// The fields an ADO patch writes.
pub fn ado_patch_fields(p: &AdoPatch) -> Vec<Field> {
    let mut v = Vec::new();
    let pairs = [
        (p.title.is_some(), Field::Title),
        (p.description_html.is_some(), Field::Description),
        (p.state.is_some(), Field::Status),
        (p.assigned_to.is_some(), Field::Assignees),
        (p.tags.is_some(), Field::Tags),
        (p.priority.is_some(), Field::Priority),
        (p.due_date.is_some(), Field::Due),
        (p.parent.is_some(), Field::Parent),
    ];
    for (set, f) in pairs {
        if set {
            v.push(f);
        }
    }
    v
}

/// The fields a ClickUp patch writes.
pub fn clickup_patch_fields(p: &ClickUpPatch) -> Vec<Field> {
    let mut v = Vec::new();
    let pairs = [
        (p.name.is_some(), Field::Title),
        (p.markdown.is_some(), Field::Description),
        (p.status.is_some(), Field::Status),
        (
            !p.assignees_add.is_empty() || !p.assignees_rem.is_empty(),
            Field::Assignees,
        ),
        (
            !p.tags_add.is_empty() || !p.tags_rem.is_empty(),
            Field::Tags,
        ),
        (p.priority.is_some(), Field::Priority),
        (p.due_date.is_some(), Field::Due),
        (p.parent.is_some(), Field::Parent),
    ];
    for (set, f) in pairs {
        if set {
            v.push(f);
        }
    }
    v
}

/// Renders plans as a text table (`sync --once --dry-run`).
pub fn plan_table(reports: &[PairReport]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "action".into(),
        "pair".into(),
        "ado".into(),
        "clickup".into(),
        "fields".into(),
        "detail".into(),
    ]];
    for r in reports {
        for p in &r.plans {
            for a in &p.actions {
                let row = ActionRow::of(a);
                rows.push([
                    row.action.to_string(),
                    r.pair.clone(),
                    row.ado_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "-".into()),
                    row.clickup_id.unwrap_or_else(|| "-".into()),
                    if row.fields.is_empty() {
                        "-".into()
                    } else {
                        row.fields
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                    row.detail,
                ]);
            }
        }
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(nothing to do)\n");
    }
    out
}
