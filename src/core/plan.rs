//! The planner: from one cycle's observations to a sorted, deterministic list of actions.
//!
//! Contract with the engine (which carries the plan out):
//! - Actions are sorted: first new links (each followed by its own writes), then existing
//!   links by link id (ADO write, ClickUp write, rebase, conflicts, unlink), then creates.
//! - The actions of one link must be applied in order, and when one fails the rest of that
//!   link's actions are skipped: each write carries the base to store *after it*, chosen so
//!   that a partial application is re-detected and finished by the next cycle (a field still
//!   to be written to ClickUp keeps its old base value until the ClickUp write succeeds).
//! - [`LinkRef::New`] names the link created by this plan's [`Action::Link`] for that pair.
//! - [`Action::Rebase`] stores a new base without writing anything (both sides converged on
//!   their own, or a value a side cannot hold was absorbed).
//! - A plan never deletes anything: a vanished counterpart unlinks (policy `unlink`) or moves
//!   the survivor to its closed/removed status and unlinks (policy `mirror`).
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::mapping::{
    ado_item_key, backlink_target_ado, backlink_target_clickup, clickup_item_key, copy_field,
    field_eq, DeletionPolicy, Direction, LinkIndex, Mapper, MappingConfig, MappingContext,
    MappingIssue, UserDirectory,
};
use super::merge::{merge, Conflict, Decision, MergeInput, MergeOutcome};
use super::model::{
    AdoCreate, AdoId, AdoPatch, AdoRecord, ClickUpCreate, ClickUpId, ClickUpPatch, ClickUpRecord,
    Field, Item, LinkId, Side,
};

/// A touched link with its last-synced snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    pub link: LinkId,
    pub ado_id: AdoId,
    pub clickup_id: ClickUpId,
    pub base: Item,
    pub ado_rev: i64,
    pub clickup_date_updated: i64,
}

/// Per-cycle safety limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_creates: usize,
    pub max_unlinks: usize,
    /// `--force`: apply a plan the guards would refuse.
    pub force: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_creates: 500,
            max_unlinks: 20,
            force: false,
        }
    }
}

/// How many items each side's sweep found in scope (`None`: no full sweep this cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScopeCounts {
    pub ado_in_scope: Option<usize>,
    pub clickup_in_scope: Option<usize>,
}

/// Everything the planner looks at for one pair and one cycle.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub pair: &'a str,
    /// Links touched this cycle (a changed record on either side), with their bases.
    pub links: &'a [LinkSnapshot],
    /// Current ADO records: the changed ones, the counterparts of touched links and the
    /// targets of new items' back-links. A touched link whose record is absent here is taken
    /// as deleted or out of scope.
    pub ado_records: &'a [AdoRecord],
    pub clickup_records: &'a [ClickUpRecord],
    /// All links of the pair (parents, "already linked" checks, the empty-side guard).
    pub link_index: &'a LinkIndex,
    pub mapping: &'a MappingConfig,
    pub context: &'a MappingContext,
    pub users: &'a UserDirectory,
    pub limits: Limits,
    pub scope: ScopeCounts,
    pub now: DateTime<Utc>,
}

/// Names a link in an action: an existing one, or the one this plan's `Link` creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRef {
    Existing(LinkId),
    New {
        ado_id: AdoId,
        clickup_id: ClickUpId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Two existing items matched by a back-link marker; store the link with `base`.
    Link {
        ado_id: AdoId,
        clickup_id: ClickUpId,
        base: Item,
    },
    CreateInAdo {
        source: ClickUpId,
        create: AdoCreate,
        planned: Item,
    },
    CreateInClickUp {
        source: AdoId,
        create: ClickUpCreate,
        planned: Item,
    },
    UpdateAdo {
        link: LinkRef,
        ado_id: AdoId,
        expected_rev: i64,
        patch: AdoPatch,
        new_base: Item,
    },
    UpdateClickUp {
        link: LinkRef,
        clickup_id: ClickUpId,
        expected_date_updated: i64,
        patch: ClickUpPatch,
        new_base: Item,
    },
    Rebase {
        link: LinkRef,
        base: Item,
    },
    RecordConflict {
        link: LinkRef,
        conflict: Conflict,
        detected_at: DateTime<Utc>,
    },
    Unlink {
        link: LinkId,
        reason: String,
    },
}

impl Action {
    fn sort_key(&self) -> (u8, i64, String, u8, u8) {
        fn lr(l: &LinkRef) -> (u8, i64, String) {
            match l {
                LinkRef::New { ado_id, clickup_id } => (0, *ado_id, clickup_id.clone()),
                LinkRef::Existing(id) => (1, *id, String::new()),
            }
        }
        match self {
            Action::Link {
                ado_id, clickup_id, ..
            } => (0, *ado_id, clickup_id.clone(), 0, 0),
            Action::UpdateAdo { link, .. } => {
                let (p, n, s) = lr(link);
                (p, n, s, 1, 0)
            }
            Action::UpdateClickUp { link, .. } => {
                let (p, n, s) = lr(link);
                (p, n, s, 2, 0)
            }
            Action::Rebase { link, .. } => {
                let (p, n, s) = lr(link);
                (p, n, s, 3, 0)
            }
            Action::RecordConflict { link, conflict, .. } => {
                let (p, n, s) = lr(link);
                let fi = Field::ALL
                    .iter()
                    .position(|f| *f == conflict.field)
                    .unwrap_or(0);
                (p, n, s, 4, fi as u8)
            }
            Action::Unlink { link, .. } => (1, *link, String::new(), 5, 0),
            Action::CreateInClickUp { source, .. } => (2, *source, String::new(), 0, 0),
            Action::CreateInAdo { source, .. } => (3, 0, source.clone(), 0, 0),
        }
    }
}

/// A planned cycle.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Sorted and deduplicated.
    pub issues: Vec<MappingIssue>,
}

impl Plan {
    /// Whether the plan writes nothing and records nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    /// Actions other than conflict records (a standing `manual` conflict is re-recorded each
    /// time its link is touched).
    pub fn writes(&self) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(|a| !matches!(a, Action::RecordConflict { .. }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "pair {pair}: plan refused: {planned} creates exceed the limit of {max} per cycle; \
         check the pair's scope and mapping, then run again with --force to apply it anyway"
    )]
    TooManyCreates {
        pair: String,
        planned: usize,
        max: usize,
    },
    #[error(
        "pair {pair}: plan refused: {planned} unlinks exceed the limit of {max} per cycle \
         (were items deleted or moved out of scope?); check, then run again with --force to \
         apply it anyway"
    )]
    TooManyUnlinks {
        pair: String,
        planned: usize,
        max: usize,
    },
    #[error(
        "pair {pair}: plan refused: {side} returned no items in scope while {links} links \
         exist (wrong query or permissions, or an outage?); if that is really so, run again \
         with --force"
    )]
    SideEmpty {
        pair: String,
        side: Side,
        links: usize,
    },
}

/// ClickUp `date_updated` (ms) as a time, for `newest_wins`.
pub fn clickup_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    m: Mapper<'a>,
    actions: Vec<Action>,
    issues: Vec<MappingIssue>,
}

fn sync_fields(input: &PlanInput<'_>, to: Side) -> BTreeSet<Field> {
    Field::ALL
        .into_iter()
        .filter(|f| {
            let d = input.mapping.fields.get(*f).direction;
            d != Direction::None && d.takes_from(to.other())
        })
        .collect()
}

impl<'a> Planner<'a> {
    fn ado_parent(&self, r: &AdoRecord) -> Option<LinkId> {
        r.parent.and_then(|p| self.input.link_index.link_of_ado(p))
    }
    fn clickup_parent(&self, r: &ClickUpRecord) -> Option<LinkId> {
        r.parent
            .as_deref()
            .and_then(|p| self.input.link_index.link_of_clickup(p))
    }

    /// Merges a pair of current records and emits their writes (and, for a new pair, the
    /// link itself first).
    fn reconcile(&mut self, link: LinkRef, base: Option<&Item>, a: &AdoRecord, c: &ClickUpRecord) {
        let input = self.input;
        let wit = a.work_item_type.as_str();
        let ado_item = self.m.ado_to_item(a, self.ado_parent(a), &mut self.issues);
        let cu_item = self
            .m
            .clickup_to_item(c, self.clickup_parent(c), &mut self.issues);
        let empty = Item::default();
        let b0 = base.unwrap_or(&empty);
        let ado_abs = self.m.absorb(Side::Ado, b0, &ado_item, wit);
        let cu_abs = self.m.absorb(Side::ClickUp, b0, &cu_item, wit);
        let mut out = merge(&MergeInput {
            base,
            ado: &ado_abs,
            clickup: &cu_abs,
            fields: &input.mapping.fields,
            ado_changed_at: Some(a.changed_date),
            clickup_changed_at: clickup_time(c.date_updated),
        });
        // ClickUp cannot un-parent a subtask: rather than let ClickUp's parent come back and
        // undo ADO's removal every cycle, hold it as a conflict.
        if out.clickup_target.parent.is_none()
            && cu_item.parent.is_some()
            && out.decision(Field::Parent) != Some(Decision::Conflict)
            && input.mapping.fields.parent.direction.takes_from(Side::Ado)
        {
            hold_conflict(&mut out, b0, &ado_abs, &cu_abs, Field::Parent);
        }

        let ado_fields = sync_fields(input, Side::Ado);
        let cu_fields = sync_fields(input, Side::ClickUp);
        // One-way fields mirror the owner onto the other side, so both sides' writes are
        // computed over all synced fields; `sync_fields` only drops fields that never flow.
        let ado_patch = self.m.ado_patch(
            &out.ado_target,
            a,
            &ado_item,
            input.link_index,
            &ado_fields.union(&cu_fields).copied().collect(),
            &mut self.issues,
        );
        let cu_patch = self.m.clickup_patch(
            &out.clickup_target,
            c,
            &cu_item,
            input.link_index,
            &ado_fields.union(&cu_fields).copied().collect(),
            &mut self.issues,
        );
        let pending = |side: Side| -> BTreeSet<Field> {
            Field::ALL
                .into_iter()
                .filter(|f| match side {
                    Side::Ado => !self.m.ado_same(*f, &out.ado_target, &ado_item, wit),
                    Side::ClickUp => !self.m.clickup_same(*f, &out.clickup_target, &cu_item),
                })
                .collect()
        };
        let ado_pending = if ado_patch.is_empty() {
            BTreeSet::new()
        } else {
            pending(Side::Ado)
        };
        let cu_pending = if cu_patch.is_empty() {
            BTreeSet::new()
        } else {
            pending(Side::ClickUp)
        };
        let with_old = |fields: &BTreeSet<Field>| {
            let mut b = out.merged.clone();
            for f in fields {
                copy_field(&mut b, b0, *f);
            }
            b
        };

        if let LinkRef::New { ado_id, clickup_id } = &link {
            self.actions.push(Action::Link {
                ado_id: *ado_id,
                clickup_id: clickup_id.clone(),
                base: with_old(&ado_pending.union(&cu_pending).copied().collect()),
            });
        }
        let changed_base = Field::ALL
            .iter()
            .any(|f| base.is_none_or(|b| !field_eq(b, &out.merged, *f)));
        if !ado_patch.is_empty() {
            self.actions.push(Action::UpdateAdo {
                link: link.clone(),
                ado_id: a.id,
                expected_rev: a.rev,
                patch: ado_patch,
                new_base: with_old(&cu_pending),
            });
        }
        if !cu_patch.is_empty() {
            self.actions.push(Action::UpdateClickUp {
                link: link.clone(),
                clickup_id: c.id.clone(),
                expected_date_updated: c.date_updated,
                patch: cu_patch,
                new_base: out.merged.clone(),
            });
        }
        let wrote = !ado_pending.is_empty() || !cu_pending.is_empty();
        if !wrote && changed_base && matches!(link, LinkRef::Existing(_)) {
            self.actions.push(Action::Rebase {
                link: link.clone(),
                base: out.merged.clone(),
            });
        }
        for conflict in out.conflicts {
            self.actions.push(Action::RecordConflict {
                link: link.clone(),
                conflict,
                detected_at: input.now,
            });
        }
    }

    fn vanished(&mut self, snap: &LinkSnapshot, a: Option<&AdoRecord>, c: Option<&ClickUpRecord>) {
        let policy = self.input.mapping.deletion;
        let reason = match (a, c) {
            (Some(_), None) => format!(
                "ClickUp task {} is gone (deleted or out of scope); ADO work item {} kept",
                snap.clickup_id, snap.ado_id
            ),
            (None, Some(_)) => format!(
                "ADO work item {} is gone (deleted or out of scope); ClickUp task {} kept",
                snap.ado_id, snap.clickup_id
            ),
            _ => format!(
                "both ADO work item {} and ClickUp task {} are gone",
                snap.ado_id, snap.clickup_id
            ),
        };
        let link = LinkRef::Existing(snap.link);
        if policy == DeletionPolicy::Mirror {
            if let Some(a) = a {
                if let Some(s) = self.m.ado_deleted_state(&a.work_item_type) {
                    if !s.eq_ignore_ascii_case(&a.state) {
                        self.actions.push(Action::UpdateAdo {
                            link: link.clone(),
                            ado_id: a.id,
                            expected_rev: a.rev,
                            patch: AdoPatch {
                                state: Some(s),
                                ..AdoPatch::default()
                            },
                            new_base: snap.base.clone(),
                        });
                    }
                }
            }
            if let Some(c) = c {
                if let Some(s) = self.m.clickup_deleted_status() {
                    if !s.eq_ignore_ascii_case(&c.status) {
                        self.actions.push(Action::UpdateClickUp {
                            link: link.clone(),
                            clickup_id: c.id.clone(),
                            expected_date_updated: c.date_updated,
                            patch: ClickUpPatch {
                                status: Some(s),
                                ..ClickUpPatch::default()
                            },
                            new_base: snap.base.clone(),
                        });
                    }
                }
            }
        }
        self.actions.push(Action::Unlink {
            link: snap.link,
            reason,
        });
    }
}

/// Turns a field's decision into a held conflict: nothing written, base kept.
fn hold_conflict(out: &mut MergeOutcome, base: &Item, ado: &Item, cu: &Item, f: Field) {
    out.conflicts.push(Conflict {
        field: f,
        base: super::mapping::field_value(base, f),
        ado: super::mapping::field_value(ado, f),
        clickup: super::mapping::field_value(cu, f),
    });
    copy_field(&mut out.merged, base, f);
    copy_field(&mut out.ado_target, ado, f);
    copy_field(&mut out.clickup_target, cu, f);
    for d in out.decisions.iter_mut().filter(|(x, _)| *x == f) {
        d.1 = Decision::Conflict;
    }
}

/// Plans one cycle of one pair.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let links_total = input.link_index.len();
    if !input.limits.force && links_total > 0 {
        for (side, n) in [
            (Side::Ado, input.scope.ado_in_scope),
            (Side::ClickUp, input.scope.clickup_in_scope),
        ] {
            if n == Some(0) {
                return Err(PlanError::SideEmpty {
                    pair: input.pair.to_string(),
                    side,
                    links: links_total,
                });
            }
        }
    }

    let mut p = Planner {
        input,
        m: Mapper::new(input.mapping, input.context, input.users),
        actions: Vec::new(),
        issues: Vec::new(),
    };
    let ado_by_id: BTreeMap<AdoId, &AdoRecord> =
        input.ado_records.iter().map(|r| (r.id, r)).collect();
    let cu_by_id: BTreeMap<&str, &ClickUpRecord> = input
        .clickup_records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();

    // Existing links.
    let mut touched_ado = BTreeSet::new();
    let mut touched_cu = BTreeSet::new();
    let mut snaps: Vec<&LinkSnapshot> = input.links.iter().collect();
    snaps.sort_by_key(|s| s.link);
    snaps.dedup_by_key(|s| s.link);
    for snap in snaps {
        touched_ado.insert(snap.ado_id);
        touched_cu.insert(snap.clickup_id.clone());
        let a = ado_by_id.get(&snap.ado_id).copied();
        let c = cu_by_id.get(snap.clickup_id.as_str()).copied();
        match (a, c) {
            (Some(a), Some(c)) => p.reconcile(LinkRef::Existing(snap.link), Some(&snap.base), a, c),
            _ => p.vanished(snap, a, c),
        }
    }

    // New items: unlinked records on either side.
    let is_new_ado =
        |id: AdoId| !touched_ado.contains(&id) && input.link_index.link_of_ado(id).is_none();
    let is_new_cu =
        |id: &str| !touched_cu.contains(id) && input.link_index.link_of_clickup(id).is_none();
    let new_ado: BTreeMap<AdoId, &AdoRecord> = ado_by_id
        .iter()
        .filter(|(id, _)| is_new_ado(**id))
        .map(|(k, v)| (*k, *v))
        .collect();
    let new_cu: BTreeMap<&str, &ClickUpRecord> = cu_by_id
        .iter()
        .filter(|(id, _)| is_new_cu(id))
        .map(|(k, v)| (*k, *v))
        .collect();

    // Back-link claims, in both directions; a pair is kept only when nothing contradicts it.
    let mut claims: BTreeSet<(AdoId, ClickUpId)> = BTreeSet::new();
    let mut blocked_ado: BTreeSet<AdoId> = BTreeSet::new();
    let mut blocked_cu: BTreeSet<ClickUpId> = BTreeSet::new();
    for (id, r) in &new_ado {
        if let Some(target) = backlink_target_clickup(r) {
            if new_cu.contains_key(target.as_str()) {
                claims.insert((*id, target));
            } else {
                let why = if input.link_index.link_of_clickup(&target).is_some()
                    || touched_cu.contains(&target)
                {
                    format!(
                        "its back-link points at ClickUp task {target}, which is already linked"
                    )
                } else {
                    format!("its back-link points at ClickUp task {target}, which was not found")
                };
                p.issues.push(MappingIssue::Backlink {
                    side: Side::Ado,
                    item: ado_item_key(*id),
                    reason: format!("{why}; not linked and not copied"),
                });
                blocked_ado.insert(*id);
            }
        }
    }
    for (id, r) in &new_cu {
        if let Some(target) = backlink_target_ado(r) {
            if new_ado.contains_key(&target) {
                claims.insert((target, id.to_string()));
            } else {
                let why = if input.link_index.link_of_ado(target).is_some()
                    || touched_ado.contains(&target)
                {
                    format!(
                        "its back-link points at ADO work item {target}, which is already linked"
                    )
                } else {
                    format!("its back-link points at ADO work item {target}, which was not found")
                };
                p.issues.push(MappingIssue::Backlink {
                    side: Side::ClickUp,
                    item: clickup_item_key(id),
                    reason: format!("{why}; not linked and not copied"),
                });
                blocked_cu.insert(id.to_string());
            }
        }
    }
    let mut ado_claims: BTreeMap<AdoId, usize> = BTreeMap::new();
    let mut cu_claims: BTreeMap<ClickUpId, usize> = BTreeMap::new();
    for (a, c) in &claims {
        *ado_claims.entry(*a).or_default() += 1;
        *cu_claims.entry(c.clone()).or_default() += 1;
    }
    let mut pairs = Vec::new();
    for (a, c) in &claims {
        if ado_claims.get(a) == Some(&1) && cu_claims.get(c) == Some(&1) {
            pairs.push((*a, c.clone()));
        } else {
            p.issues.push(MappingIssue::Backlink {
                side: Side::Ado,
                item: ado_item_key(*a),
                reason: format!(
                    "back-links between ADO work item {a} and ClickUp task {c} are ambiguous \
                     (another item claims one of them); not linked and not copied"
                ),
            });
            blocked_ado.insert(*a);
            blocked_cu.insert(c.clone());
        }
    }
    for (a, c) in &pairs {
        blocked_ado.insert(*a);
        blocked_cu.insert(c.clone());
        if let (Some(ar), Some(cr)) = (new_ado.get(a), new_cu.get(c.as_str())) {
            p.reconcile(
                LinkRef::New {
                    ado_id: *a,
                    clickup_id: c.clone(),
                },
                None,
                ar,
                cr,
            );
        }
    }

    // Creates for the rest.
    let to_cu = sync_fields(input, Side::ClickUp);
    let to_ado = sync_fields(input, Side::Ado);
    let mut creates = 0usize;
    for (id, r) in &new_ado {
        if blocked_ado.contains(id) {
            continue;
        }
        let parent = p.ado_parent(r);
        let item = p.m.ado_to_item(r, parent, &mut p.issues);
        let create =
            p.m.clickup_create(&item, r, input.link_index, &to_cu, &mut p.issues);
        p.actions.push(Action::CreateInClickUp {
            source: *id,
            create,
            planned: item,
        });
        creates += 1;
    }
    for (id, r) in &new_cu {
        if blocked_cu.contains(*id) || r.archived {
            continue;
        }
        let parent = p.clickup_parent(r);
        let item = p.m.clickup_to_item(r, parent, &mut p.issues);
        let create =
            p.m.ado_create(&item, r, input.link_index, &to_ado, &mut p.issues);
        p.actions.push(Action::CreateInAdo {
            source: id.to_string(),
            create,
            planned: item,
        });
        creates += 1;
    }

    let unlinks = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Unlink { .. }))
        .count();
    if !input.limits.force {
        if creates > input.limits.max_creates {
            return Err(PlanError::TooManyCreates {
                pair: input.pair.to_string(),
                planned: creates,
                max: input.limits.max_creates,
            });
        }
        if unlinks > input.limits.max_unlinks {
            return Err(PlanError::TooManyUnlinks {
                pair: input.pair.to_string(),
                planned: unlinks,
                max: input.limits.max_unlinks,
            });
        }
    }

    let mut actions = p.actions;
    actions.sort_by_key(|a| a.sort_key());
    let mut issues = p.issues;
    issues.sort();
    issues.dedup();
    Ok(Plan { actions, issues })
}
