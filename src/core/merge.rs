//! Per-field three-way merge of canonical items.
//!
//! The sides' items should already be "absorbed" against the base (see
//! [`crate::core::mapping::Mapper::absorb`]) so that a value a side cannot hold exactly is not
//! mistaken for an edit. With no base (two existing items linked for the first time) the base
//! is the empty item: a value set on one side only wins over "unset", sets are united, and
//! two different values are a both-sides change that follows the field's policy.
//!
//! Decision table, per field (after the direction filter, which ignores edits from a side the
//! field does not take and mirrors the owning side onto the other):
//! - unchanged on both → keep;
//! - changed on one → copy to the other;
//! - changed on both to equal values → converged, no write;
//! - changed on both differently → sets merge element-wise (adds and removes of both sides
//!   apply; with a shared base an element cannot be both added and removed, so no policy is
//!   needed); descriptions try a line-level three-way merge (`diffy`) and fall back to the
//!   policy when the edits overlap; everything else follows the policy. `manual` records a
//!   conflict, writes nothing for the field and keeps the base value, so the conflict stays
//!   until someone resolves it. `newest_wins` compares the sides' change times; on a tie (or
//!   when neither is known) the value with the greater JSON text wins, which keeps the merge
//!   symmetric in the sides.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::convert;
use super::mapping::{copy_field, field_eq, field_value, ConflictPolicy, Direction, FieldsConfig};
use super::model::{Field, Item, Side, TagSet};

/// The inputs of one item's merge.
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    /// The last synced item; `None` for a first link of two existing items.
    pub base: Option<&'a Item>,
    pub ado: &'a Item,
    pub clickup: &'a Item,
    pub fields: &'a FieldsConfig,
    /// ADO `ChangedDate`.
    pub ado_changed_at: Option<DateTime<Utc>>,
    /// ClickUp `date_updated`.
    pub clickup_changed_at: Option<DateTime<Utc>>,
}

/// Both sides changed a field differently and the policy is `manual`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub field: Field,
    pub base: serde_json::Value,
    pub ado: serde_json::Value,
    pub clickup: serde_json::Value,
}

/// How one field was decided (for audit and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Unchanged,
    /// Taken from this side.
    From(Side),
    Converged,
    /// Sets merged element-wise or descriptions merged line by line.
    Merged,
    /// Both changed; the policy picked this side.
    Policy(Side),
    Conflict,
    NotSynced,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The merged item; also the new base once both targets are written (for a conflicted
    /// field it holds the old base value).
    pub merged: Item,
    /// What ADO should hold (its current value for conflicted / unsynced fields).
    pub ado_target: Item,
    /// What ClickUp should hold.
    pub clickup_target: Item,
    pub conflicts: Vec<Conflict>,
    pub decisions: Vec<(Field, Decision)>,
}

impl MergeOutcome {
    pub fn decision(&self, f: Field) -> Option<Decision> {
        self.decisions
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, d)| *d)
    }
}

fn side_item<'a>(input: &MergeInput<'a>, s: Side) -> &'a Item {
    match s {
        Side::Ado => input.ado,
        Side::ClickUp => input.clickup,
    }
}

fn policy_winner(input: &MergeInput<'_>, f: Field, policy: ConflictPolicy) -> Option<Side> {
    match policy {
        ConflictPolicy::AdoWins => Some(Side::Ado),
        ConflictPolicy::ClickupWins => Some(Side::ClickUp),
        ConflictPolicy::Manual => None,
        ConflictPolicy::NewestWins => {
            let (a, c) = (input.ado_changed_at, input.clickup_changed_at);
            if a != c {
                return Some(if a > c { Side::Ado } else { Side::ClickUp });
            }
            let av = field_value(input.ado, f).to_string();
            let cv = field_value(input.clickup, f).to_string();
            Some(if av >= cv { Side::Ado } else { Side::ClickUp })
        }
    }
}

fn merge_emails(
    b: &BTreeSet<String>,
    a: &BTreeSet<String>,
    c: &BTreeSet<String>,
) -> BTreeSet<String> {
    let all: BTreeSet<&String> = b.iter().chain(a).chain(c).collect();
    all.into_iter()
        .filter(|e| {
            let (ib, ia, ic) = (b.contains(*e), a.contains(*e), c.contains(*e));
            if ia == ic {
                ia
            } else if ia == ib {
                ic
            } else {
                ia
            }
        })
        .cloned()
        .collect()
}

fn merge_tags(b: &TagSet, a: &TagSet, c: &TagSet) -> TagSet {
    let (kb, ka, kc) = (b.keys(), a.keys(), c.keys());
    let keep = |t: &String| {
        let k = t.to_lowercase();
        let (ib, ia, ic) = (kb.contains(&k), ka.contains(&k), kc.contains(&k));
        if ia == ic {
            ia
        } else if ia == ib {
            ic
        } else {
            ia
        }
    };
    // Spelling: a side's own spelling first, the base's last.
    TagSet::new(
        a.iter()
            .chain(c.iter())
            .chain(b.iter())
            .filter(|t| keep(t))
            .cloned(),
    )
}

/// Line-level three-way merge of Markdown; `None` when the edits overlap.
pub fn merge_description(base: &str, ado: &str, clickup: &str) -> Option<String> {
    let nl = |s: &str| {
        let mut s = s.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    };
    let (b, a, c) = (nl(base), nl(ado), nl(clickup));
    // Accepted only when both argument orders agree, so the merge stays symmetric in the
    // sides whatever the line differ does with adjacent insertions.
    let one = diffy::merge(&b, &a, &c).ok()?;
    let two = diffy::merge(&b, &c, &a).ok()?;
    (one == two).then(|| convert::normalize_markdown(&one))
}

/// Merges one item.
pub fn merge(input: &MergeInput<'_>) -> MergeOutcome {
    let empty = Item::default();
    let base = input.base.unwrap_or(&empty);
    let mut merged = base.clone();
    let mut ado_target = input.ado.clone();
    let mut clickup_target = input.clickup.clone();
    let mut conflicts = Vec::new();
    let mut decisions = Vec::new();

    for f in Field::ALL {
        let opt = input.fields.get(f);
        if opt.direction == Direction::None {
            decisions.push((f, Decision::NotSynced));
            continue;
        }
        let a_changed = !field_eq(base, input.ado, f) && opt.direction.takes_from(Side::Ado);
        let c_changed =
            !field_eq(base, input.clickup, f) && opt.direction.takes_from(Side::ClickUp);
        let decision = match (a_changed, c_changed) {
            (false, false) => Decision::Unchanged,
            (true, false) => {
                copy_field(&mut merged, input.ado, f);
                Decision::From(Side::Ado)
            }
            (false, true) => {
                copy_field(&mut merged, input.clickup, f);
                Decision::From(Side::ClickUp)
            }
            (true, true) if field_eq(input.ado, input.clickup, f) => {
                copy_field(&mut merged, input.ado, f);
                Decision::Converged
            }
            (true, true) => match f {
                Field::Assignees => {
                    merged.assignees = merge_emails(
                        &base.assignees,
                        &input.ado.assignees,
                        &input.clickup.assignees,
                    );
                    Decision::Merged
                }
                Field::Tags => {
                    merged.tags = merge_tags(&base.tags, &input.ado.tags, &input.clickup.tags);
                    Decision::Merged
                }
                _ => {
                    let text = if f == Field::Description {
                        merge_description(
                            &base.description,
                            &input.ado.description,
                            &input.clickup.description,
                        )
                    } else {
                        None
                    };
                    match text {
                        Some(t) => {
                            merged.description = t;
                            Decision::Merged
                        }
                        None => match policy_winner(input, f, opt.conflict) {
                            Some(s) => {
                                copy_field(&mut merged, side_item(input, s), f);
                                Decision::Policy(s)
                            }
                            None => {
                                conflicts.push(Conflict {
                                    field: f,
                                    base: field_value(base, f),
                                    ado: field_value(input.ado, f),
                                    clickup: field_value(input.clickup, f),
                                });
                                Decision::Conflict
                            }
                        },
                    }
                }
            },
        };
        if decision != Decision::Conflict {
            copy_field(&mut ado_target, &merged, f);
            copy_field(&mut clickup_target, &merged, f);
        }
        decisions.push((f, decision));
    }
    MergeOutcome {
        merged,
        ado_target,
        clickup_target,
        conflicts,
        decisions,
    }
}
