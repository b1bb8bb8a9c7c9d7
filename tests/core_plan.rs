//! The mappings and the planner: config shape, fallbacks, users, back-link matching, guards,
//! deletions, and the no-echo / idempotence / convergence properties over modelled services.
mod core_support;

use std::collections::BTreeSet;

use ado_clickup_sync::core::mapping::{
    ado_id_from_url, clickup_due_to_canonical, clickup_task_id_from_url, ConflictPolicy,
    DeletionPolicy, Direction, FieldOptions, FieldsConfig, LinkIndex, Mapper, MappingConfig,
    MappingIssue, StatusRow, UserOverride,
};
use ado_clickup_sync::core::model::{
    AdoRecord, ClickUpRecord, ClickUpStatusType, Due, Field, Item, Side, Status, TagSet,
};
use ado_clickup_sync::core::plan::{
    plan, Action, Limits, LinkRef, LinkSnapshot, Plan, PlanError, PlanInput, ScopeCounts,
};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use core_support::*;
use proptest::prelude::*;

fn all_fields() -> BTreeSet<Field> {
    Field::ALL.into_iter().collect()
}

/// A link whose two records were both created from `base` (so they agree with it).
fn linked(base: &Item, cfg: MappingConfig) -> LinkCase {
    let ctx = ctx();
    let users = users();
    let m = Mapper::new(&cfg, &ctx, &users);
    let ix = LinkIndex::default();
    let mut issues = vec![];
    let a = ado_from_create(
        1,
        &m.ado_create(base, &cu("c1"), &ix, &all_fields(), &mut issues),
    );
    let c = cu_from_create(
        "c1",
        &m.clickup_create(base, &ado(1), &ix, &all_fields(), &mut issues),
    );
    assert!(issues.is_empty(), "{issues:?}");
    LinkCase {
        snap: LinkSnapshot {
            link: 1,
            ado_id: 1,
            clickup_id: "c1".into(),
            base: base.clone(),
            ado_rev: a.rev,
            clickup_date_updated: c.date_updated,
        },
        ado: a,
        cu: c,
        cfg,
        ctx,
        users,
    }
}

fn base_item() -> Item {
    Item {
        title: "Fix login".into(),
        description: "Steps to reproduce.\n\nExpected: it works.".into(),
        status: Status {
            raw: "Active".into(),
            canonical: "in_progress".into(),
        },
        assignees: emails(&["alice@x.com"]),
        tags: TagSet::new(["backend"]),
        priority: Some(2),
        due: Some(Due::Date(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())),
        parent: None,
    }
}

fn writes(p: &Plan) -> Vec<&Action> {
    p.writes().collect()
}

fn ado_patch(p: &Plan) -> Option<&ado_clickup_sync::core::model::AdoPatch> {
    p.actions.iter().find_map(|a| match a {
        Action::UpdateAdo { patch, .. } => Some(patch),
        _ => None,
    })
}

fn cu_patch(p: &Plan) -> Option<&ado_clickup_sync::core::model::ClickUpPatch> {
    p.actions.iter().find_map(|a| match a {
        Action::UpdateClickUp { patch, .. } => Some(patch),
        _ => None,
    })
}

// ----- config -----

const PAIR_TOML: &str = r#"
deletion = "mirror"

[status]
fallback = true
[[status.map]]
canonical = "blocked"
ado = ["Blocked", "On Hold"]
clickup = ["blocked"]
[[status.map]]
canonical = "in_progress"
ado = ["Active", "Committed"]
clickup = ["in progress", "review"]
clickup_write = "in progress"

[priority]
clickup_none_to_ado = 3
ado_reads_as_none = [3]
map = [
  { ado = 1, clickup = "urgent" },
  { ado = 2, clickup = "high" },
  { ado = 3, clickup = "normal" },
  { ado = 4, clickup = "low" },
]

[users]
overrides = [{ ado = "Alice@Corp.example", clickup = "alice@x.com" }]

[fields.title]
conflict = "manual"
[fields.description]
direction = "ado_to_clickup"
conflict = "ado_wins"
[fields.tags]
direction = "none"
"#;

fn parse(toml: &str) -> Result<MappingConfig, config::ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()?
        .try_deserialize()
}

#[test]
fn mapping_config_parses_from_toml_with_defaults() {
    let cfg = parse(PAIR_TOML).unwrap();
    assert_eq!(cfg.deletion, DeletionPolicy::Mirror);
    assert_eq!(cfg.status.map.len(), 2);
    assert_eq!(cfg.status.map[0].ado, vec!["Blocked", "On Hold"]);
    assert_eq!(
        cfg.status.map[1].clickup_write.as_deref(),
        Some("in progress")
    );
    assert_eq!(cfg.priority.clickup_none_to_ado, Some(3));
    assert_eq!(cfg.priority.ado_reads_as_none, vec![3]);
    assert_eq!(cfg.users.overrides[0].ado, "Alice@Corp.example");
    assert_eq!(cfg.fields.title.conflict, ConflictPolicy::Manual);
    assert_eq!(cfg.fields.title.direction, Direction::Both);
    assert_eq!(cfg.fields.description.direction, Direction::AdoToClickup);
    assert_eq!(cfg.fields.tags.direction, Direction::None);
    assert_eq!(cfg.fields.due, FieldOptions::default());
    assert_eq!(cfg.fields.due.conflict, ConflictPolicy::NewestWins);

    let empty = parse("").unwrap();
    assert_eq!(empty, MappingConfig::default());
    assert_eq!(empty.deletion, DeletionPolicy::Unlink);
    assert_eq!(empty.priority.map.len(), 4);
    assert_eq!(empty.priority.clickup_none_to_ado, Some(2));

    let err = parse("[fields.title]\nconflcit = \"manual\"\n").unwrap_err();
    assert!(err.to_string().contains("conflcit"), "{err}");
    assert!(parse("[fields.title]\ndirection = \"sideways\"\n").is_err());
}

// ----- statuses -----

#[test]
fn unmapped_status_falls_back_by_category() {
    let cases: [(&str, &str); 4] = [
        ("Resolved", "complete"), // Resolved → done type
        ("Closed", "closed"),     // Completed → closed type
        ("Removed", "closed"),    // Removed → closed type (ClickUp has no "removed")
        ("New", "to do"),         // Proposed → open type
    ];
    for (state, want) in cases {
        let mut case = linked(&base_item(), MappingConfig::default());
        case.ado.state = state.into();
        case.ado.rev += 1;
        let p = case.plan();
        assert!(p.issues.is_empty(), "{state}: {:?}", p.issues);
        assert_eq!(
            cu_patch(&p).and_then(|x| x.status.as_deref()),
            Some(want),
            "{state}"
        );
        case.apply(&p);
        assert!(case.plan().is_empty(), "{state}: converged, no echo");
    }
    // ClickUp "review" is a custom status → in progress → ADO's InProgress state.
    let mut case = linked(&base_item(), MappingConfig::default());
    case.snap.base.status.canonical = "open".into();
    case.ado.state = "New".into();
    case.cu.status = "review".into();
    case.cu.status_type = ClickUpStatusType::Custom;
    let p = case.plan();
    assert_eq!(
        ado_patch(&p).and_then(|x| x.state.as_deref()),
        Some("Active")
    );
}

#[test]
fn explicit_status_rows_win_and_unmapped_without_fallback_is_reported() {
    let mut cfg = MappingConfig::default();
    cfg.status.map.push(StatusRow {
        canonical: "blocked".into(),
        ado: vec!["Blocked".into()],
        clickup: vec!["closed".into()],
        ado_write: None,
        clickup_write: None,
    });
    let mut case = linked(&base_item(), cfg.clone());
    case.ado.state = "Blocked".into();
    let p = case.plan();
    assert_eq!(
        cu_patch(&p).and_then(|x| x.status.as_deref()),
        Some("closed")
    );

    let mut case = linked(&base_item(), cfg);
    case.cfg.status.fallback = false;
    case.ado.state = "Resolved".into();
    let p = case.plan();
    assert!(p.issues.contains(&MappingIssue::UnmappedStatus {
        side: Side::Ado,
        item: "ado:1".into(),
        value: "Resolved".into(),
    }));
    assert!(p.issues.iter().any(|i| matches!(
        i,
        MappingIssue::StatusNotWritable {
            side: Side::ClickUp,
            ..
        }
    )));
    assert_eq!(cu_patch(&p).and_then(|x| x.status.clone()), None);
}

// ----- users -----

#[test]
fn unassigned_and_unknown_user_both_clear_clickup_but_only_unknown_is_reported() {
    for (assigned, reported) in [(None, false), (Some("zed@elsewhere.example"), true)] {
        let mut case = linked(&base_item(), MappingConfig::default());
        case.ado.assigned_to = assigned.map(String::from);
        let p = case.plan();
        let patch = cu_patch(&p).expect("ClickUp write");
        assert_eq!(patch.assignees_rem, vec!["alice@x.com".to_string()]);
        assert!(
            patch.assignees_add.is_empty(),
            "unknown users are never guessed"
        );
        let has = p.issues.iter().any(|i| matches!(i, MappingIssue::UnknownUser { email, side: Side::Ado, .. } if email == "zed@elsewhere.example"));
        assert_eq!(has, reported, "{assigned:?}");
        case.apply(&p);
        let p2 = case.plan();
        assert!(
            writes(&p2).is_empty(),
            "ADO keeps its unknown user, no ping-pong: {p2:?}"
        );
        assert_eq!(case.ado.assigned_to.as_deref(), assigned);
    }
}

#[test]
fn user_overrides_translate_emails_both_ways() {
    let mut cfg = MappingConfig::default();
    cfg.users.overrides.push(UserOverride {
        ado: "Alice@Corp.example".into(),
        clickup: "alice@x.com".into(),
    });
    let mut case = linked(&base_item(), cfg);
    assert_eq!(case.ado.assigned_to.as_deref(), Some("alice@corp.example"));
    assert!(case.plan().is_empty());
    case.cu.assignees = vec![cu_user("bob@x.com")];
    let p = case.plan();
    assert_eq!(
        ado_patch(&p).unwrap().assigned_to,
        Some(Some("bob@x.com".into()))
    );
}

#[test]
fn ado_single_assignee_projection_converges() {
    let mut b = base_item();
    b.assignees = emails(&["bob@x.com", "alice@x.com"]);
    let mut case = linked(&b, MappingConfig::default());
    assert_eq!(
        case.ado.assigned_to.as_deref(),
        Some("alice@x.com"),
        "smallest email"
    );
    assert!(case.plan().is_empty());
    // ClickUp adds carol: ADO's alice is still in the set, nothing to write there.
    case.cu.assignees.push(cu_user("carol@x.com"));
    let p = case.plan();
    assert!(ado_patch(&p).is_none(), "{p:?}");
    case.apply(&p);
    // ClickUp drops alice: ADO moves to the next one.
    case.cu.assignees.retain(|u| u.email != "alice@x.com");
    let p = case.plan();
    assert_eq!(
        ado_patch(&p).unwrap().assigned_to,
        Some(Some("bob@x.com".into()))
    );
    case.apply(&p);
    assert!(case.plan().is_empty());
    // ADO moving to someone already in the set is "equal as seen from ADO": no change.
    let mut same = case.ado.clone();
    same.assigned_to = Some("carol@x.com".into());
    let kept = std::mem::replace(&mut case.ado, same);
    assert!(case.plan().is_empty());
    case.ado = kept;
    // ADO reassigns to someone outside the set: ClickUp ends with that one only.
    case.ado.assigned_to = Some("alice@x.com".into());
    let p = case.plan();
    let patch = cu_patch(&p).unwrap();
    assert_eq!(patch.assignees_add, vec!["alice@x.com".to_string()]);
    assert_eq!(
        patch.assignees_rem,
        vec!["bob@x.com".to_string(), "carol@x.com".to_string()]
    );
    case.apply(&p);
    assert!(case.plan().is_empty());
}

// ----- priority and due dates -----

#[test]
fn clickup_no_priority_is_ados_default_and_does_not_echo() {
    let mut b = base_item();
    b.priority = None;
    let mut case = linked(&b, MappingConfig::default());
    assert_eq!(case.ado.priority, Some(2));
    assert_eq!(case.cu.priority, None);
    assert!(case.plan().is_empty());
    case.ado.priority = Some(1);
    let p = case.plan();
    assert_eq!(cu_patch(&p).unwrap().priority, Some(Some(1)));
}

#[test]
fn date_only_due_dates_round_trip_through_clickups_snapping() {
    let d = NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
    let case = linked(&base_item(), MappingConfig::default());
    // Written as noon UTC, date-only; the model snapped it to 04:00 UTC and, as ClickUp's
    // task JSON, does not say it is date-only.
    assert_eq!(case.cu.due_date_time, None);
    assert_eq!(
        case.cu.due_date,
        Some(
            Utc.with_ymd_and_hms(2026, 12, 24, 4, 0, 0)
                .unwrap()
                .timestamp_millis()
        )
    );
    assert!(case.plan().is_empty(), "ClickUp's snapping is not an edit");
    assert_eq!(
        clickup_due_to_canonical(case.cu.due_date.unwrap(), Some(false)),
        Some(Due::Date(d))
    );
    assert_eq!(
        case.ado.due_date,
        Some(Utc.with_ymd_and_hms(2026, 12, 24, 12, 0, 0).unwrap())
    );
    // Set in a UTC+10 workspace: 04:00 local is 18:00 UTC the day before.
    let snapped = Utc
        .with_ymd_and_hms(2026, 12, 23, 18, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        clickup_due_to_canonical(snapped, Some(false)),
        Some(Due::Date(d))
    );
    // ... and in a UTC-8 workspace: 12:00 UTC the same day.
    let snapped = Utc
        .with_ymd_and_hms(2026, 12, 24, 12, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        clickup_due_to_canonical(snapped, Some(false)),
        Some(Due::Date(d))
    );
    // A timed value stays a time.
    let timed = Utc.with_ymd_and_hms(2026, 12, 23, 18, 30, 0).unwrap();
    assert_eq!(
        clickup_due_to_canonical(timed.timestamp_millis(), Some(true)),
        Some(Due::DateTime(timed))
    );
}

// ----- parents -----

#[test]
fn removing_a_parent_that_clickup_cannot_remove_is_held_as_a_conflict() {
    let mut b = base_item();
    b.parent = Some(7);
    let mut case = linked(&b, MappingConfig::default());
    case.ado.parent = Some(70);
    case.cu.parent = Some("c70".into());
    let ix = |_: &LinkCase| LinkIndex::new([(1, 1, "c1".to_string()), (7, 70, "c70".to_string())]);
    // Parent resolution goes through the link index; rebuild the case's plan with it.
    let run = |case: &LinkCase| {
        let links = [case.snap.clone()];
        let a = [case.ado.clone()];
        let c = [case.cu.clone()];
        let index = ix(case);
        plan(&PlanInput {
            pair: "p",
            links: &links,
            ado_records: &a,
            clickup_records: &c,
            link_index: &index,
            mapping: &case.cfg,
            context: &case.ctx,
            users: &case.users,
            limits: Limits::default(),
            scope: ScopeCounts::default(),
            now: t0(),
        })
        .unwrap()
    };
    assert!(run(&case).is_empty());
    case.ado.parent = None;
    let p = run(&case);
    assert!(writes(&p).is_empty(), "{p:?}");
    assert!(
        matches!(&p.actions[..], [Action::RecordConflict { conflict, .. }] if conflict.field == Field::Parent)
    );
    // Re-parenting in ClickUp flows to ADO.
    case.snap.base.parent = None;
    case.ado.parent = None;
    case.cu.parent = Some("c70".into());
    let p = run(&case);
    assert_eq!(ado_patch(&p).unwrap().parent, Some(Some(70)));
}

// ----- new items, back-links, creates -----

fn new_items_plan(
    ado_recs: &[AdoRecord],
    cu_recs: &[ClickUpRecord],
    ix: &LinkIndex,
    limits: Limits,
) -> Result<Plan, PlanError> {
    let cfg = MappingConfig::default();
    let (c, u) = (ctx(), users());
    plan(&PlanInput {
        pair: "p",
        links: &[],
        ado_records: ado_recs,
        clickup_records: cu_recs,
        link_index: ix,
        mapping: &cfg,
        context: &c,
        users: &u,
        limits,
        scope: ScopeCounts::default(),
        now: t0(),
    })
}

#[test]
fn back_link_urls_parse() {
    assert_eq!(
        clickup_task_id_from_url("https://app.clickup.com/t/86a1b2c3d"),
        Some("86a1b2c3d".into())
    );
    assert_eq!(
        clickup_task_id_from_url("https://app.clickup.com/t/9001/ABC-12?x=1"),
        Some("ABC-12".into())
    );
    assert_eq!(clickup_task_id_from_url("https://example.com/other"), None);
    assert_eq!(
        ado_id_from_url("https://dev.azure.com/org/Proj/_workitems/edit/42"),
        Some(42)
    );
    assert_eq!(
        ado_id_from_url("https://dev.azure.com/org/Proj/_workitems/edit/42/"),
        Some(42)
    );
    assert_eq!(
        ado_id_from_url("https://dev.azure.com/org/Proj/_workitems/edit/x"),
        None
    );
}

#[test]
fn new_items_are_created_with_back_links() {
    let mut a = ado(5);
    a.title = "From ADO".into();
    let mut c = cu("k9");
    c.name = "From ClickUp".into();
    let p = new_items_plan(
        &[a.clone()],
        &[c.clone()],
        &LinkIndex::default(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(p.actions.len(), 2, "{p:?}");
    match &p.actions[0] {
        Action::CreateInClickUp {
            source,
            create,
            planned,
        } => {
            assert_eq!(*source, 5);
            assert_eq!(create.backlink_url, a.web_url);
            assert_eq!(create.list_id, "L1");
            assert_eq!(create.fields.name.as_deref(), Some("From ADO"));
            assert_eq!(create.fields.status.as_deref(), Some("to do"));
            assert_eq!(planned.title, "From ADO");
        }
        other => panic!("{other:?}"),
    }
    match &p.actions[1] {
        Action::CreateInAdo { source, create, .. } => {
            assert_eq!(source, "k9");
            assert_eq!(create.backlink_url, c.url);
            assert_eq!(create.work_item_type, "Task");
            assert_eq!(create.fields.state.as_deref(), Some("New"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_new_items_pointing_at_each_other_make_one_link() {
    let mut a = ado(5);
    a.hyperlinks = vec!["https://app.clickup.com/t/k9".into()];
    a.title = "Same".into();
    let mut c = cu("k9");
    c.backlink = Some(a.web_url.clone());
    c.name = "Same".into();
    c.priority = Some(2);
    for (ar, cr) in [
        (a.clone(), c.clone()),
        (a.clone(), cu("k9")),
        (ado(5), c.clone()),
    ] {
        let mut cr = cr;
        cr.name = "Same".into();
        cr.priority = Some(2);
        let mut ar = ar;
        ar.title = "Same".into();
        let p = new_items_plan(&[ar], &[cr], &LinkIndex::default(), Limits::default()).unwrap();
        assert_eq!(p.actions.len(), 1, "{p:?}");
        assert!(
            matches!(&p.actions[0], Action::Link { ado_id: 5, clickup_id, .. } if clickup_id == "k9")
        );
    }
}

#[test]
fn first_link_writes_differences_and_keeps_a_replayable_base() {
    let mut a = ado(5);
    a.hyperlinks = vec!["https://app.clickup.com/t/k9".into()];
    a.title = "ADO title".into();
    a.tags = vec!["x".into()];
    let mut c = cu("k9");
    c.name = "ADO title".into();
    c.tags = vec!["y".into()];
    c.priority = Some(2);
    let p = new_items_plan(&[a], &[c], &LinkIndex::default(), Limits::default()).unwrap();
    // Plans serialize (for audit / dry-run output) and read back unchanged.
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains(r#""action":"link""#), "{json}");
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
    let new = LinkRef::New {
        ado_id: 5,
        clickup_id: "k9".into(),
    };
    match &p.actions[..] {
        [Action::Link { base, .. }, Action::UpdateAdo {
            link: l1,
            patch: pa,
            ..
        }, Action::UpdateClickUp {
            link: l2,
            patch: pc,
            new_base,
            ..
        }] => {
            assert_eq!(l1, &new);
            assert_eq!(l2, &new);
            assert_eq!(base.title, "ADO title");
            assert!(base.tags.is_empty(), "pending fields keep the empty base");
            assert_eq!(pa.tags, Some(vec!["x".to_string(), "y".to_string()]));
            assert_eq!(pc.tags_add, vec!["x".to_string()]);
            assert_eq!(new_base.tags, TagSet::new(["x", "y"]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn back_link_to_an_already_linked_item_is_reported_not_copied() {
    let mut a = ado(5);
    a.hyperlinks = vec!["https://app.clickup.com/t/k9".into()];
    let ix = LinkIndex::new([(3, 4, "k9".to_string())]);
    let p = new_items_plan(&[a], &[], &ix, Limits::default()).unwrap();
    assert!(p.actions.is_empty(), "{p:?}");
    assert!(
        matches!(&p.issues[..], [MappingIssue::Backlink { side: Side::Ado, reason, .. }] if reason.contains("already linked"))
    );
}

// ----- guards -----

#[test]
fn guards_refuse_and_force_overrides() {
    let recs: Vec<AdoRecord> = (1..=3).map(ado).collect();
    let limits = Limits {
        max_creates: 2,
        ..Limits::default()
    };
    let err = new_items_plan(&recs, &[], &LinkIndex::default(), limits).unwrap_err();
    assert_eq!(
        err,
        PlanError::TooManyCreates {
            pair: "p".into(),
            planned: 3,
            max: 2
        }
    );
    assert!(err.to_string().contains("--force"));
    let forced = new_items_plan(
        &recs,
        &[],
        &LinkIndex::default(),
        Limits {
            force: true,
            ..limits
        },
    )
    .unwrap();
    assert_eq!(forced.actions.len(), 3);

    // Unlinks.
    let case = linked(&base_item(), MappingConfig::default());
    let snaps: Vec<LinkSnapshot> = (1..=3)
        .map(|i| LinkSnapshot {
            link: i,
            ado_id: i,
            clickup_id: format!("c{i}"),
            ..case.snap.clone()
        })
        .collect();
    let ix = LinkIndex::new(
        snaps
            .iter()
            .map(|s| (s.link, s.ado_id, s.clickup_id.clone())),
    );
    let mk = |limits: Limits, scope: ScopeCounts| {
        plan(&PlanInput {
            pair: "p",
            links: &snaps,
            ado_records: &[],
            clickup_records: &[],
            link_index: &ix,
            mapping: &case.cfg,
            context: &case.ctx,
            users: &case.users,
            limits,
            scope,
            now: t0(),
        })
    };
    let err = mk(
        Limits {
            max_unlinks: 2,
            ..Limits::default()
        },
        ScopeCounts::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::TooManyUnlinks {
            pair: "p".into(),
            planned: 3,
            max: 2
        }
    );
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        mk(Limits::default(), ScopeCounts::default())
            .unwrap()
            .actions
            .len(),
        3
    );

    // A side that suddenly sees nothing.
    let err = mk(
        Limits::default(),
        ScopeCounts {
            ado_in_scope: Some(10),
            clickup_in_scope: Some(0),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::SideEmpty {
            pair: "p".into(),
            side: Side::ClickUp,
            links: 3
        }
    );
    assert!(err.to_string().contains("--force"));
    assert!(mk(
        Limits {
            force: true,
            ..Limits::default()
        },
        ScopeCounts {
            ado_in_scope: Some(0),
            clickup_in_scope: Some(0)
        }
    )
    .is_ok());
}

// ----- deletions -----

#[test]
fn vanished_counterpart_unlinks_or_mirrors() {
    let case = linked(&base_item(), MappingConfig::default());
    let ix = case.index();
    let links = [case.snap.clone()];
    let a = [case.ado.clone()];
    let run = |cfg: &MappingConfig| {
        plan(&PlanInput {
            pair: "p",
            links: &links,
            ado_records: &a,
            clickup_records: &[],
            link_index: &ix,
            mapping: cfg,
            context: &case.ctx,
            users: &case.users,
            limits: Limits::default(),
            scope: ScopeCounts::default(),
            now: t0(),
        })
        .unwrap()
    };
    let p = run(&MappingConfig::default());
    assert!(
        matches!(&p.actions[..], [Action::Unlink { link: 1, reason }] if reason.contains("ClickUp task c1 is gone"))
    );
    let cfg = MappingConfig {
        deletion: DeletionPolicy::Mirror,
        ..MappingConfig::default()
    };
    let p = run(&cfg);
    match &p.actions[..] {
        [Action::UpdateAdo { patch, .. }, Action::Unlink { link: 1, .. }] => {
            assert_eq!(patch.state.as_deref(), Some("Removed"));
            assert_eq!(patch.title, None);
        }
        other => panic!("{other:?}"),
    }
}

// ----- properties -----

fn arb_base() -> impl Strategy<Value = Item> {
    (
        prop::sample::select(vec!["Fix login", "Add export", "Löschen"]),
        prop::sample::subsequence(vec!["First line.", "Second line.", "Third line."], 0..=3),
        prop::sample::select(vec!["open", "in_progress", "done", "closed", "removed"]),
        prop::sample::subsequence(MEMBERS.to_vec(), 0..=3),
        prop::sample::subsequence(vec!["api", "UI", "perf"], 0..=3),
        prop::option::of(1u8..=4),
        prop::option::of((
            0i64..3,
            prop::sample::select(vec![None, Some(12u32), Some(15u32)]),
        )),
    )
        .prop_map(|(title, lines, st, asg, tags, prio, due)| Item {
            title: title.into(),
            description: lines.join("\n\n"),
            status: Status {
                raw: String::new(),
                canonical: st.into(),
            },
            assignees: asg.into_iter().map(String::from).collect(),
            tags: TagSet::new(tags),
            priority: prio,
            due: due.map(|(d, h)| {
                let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + Duration::days(d);
                match h {
                    None => Due::Date(day),
                    Some(h) => {
                        Due::DateTime(Utc.from_utc_datetime(&day.and_hms_opt(h, 30, 0).unwrap()))
                    }
                }
            }),
            parent: None,
        })
}

fn arb_fields() -> impl Strategy<Value = FieldsConfig> {
    let opt = (
        prop::sample::select(vec![
            Direction::Both,
            Direction::Both,
            Direction::AdoToClickup,
            Direction::ClickupToAdo,
            Direction::None,
        ]),
        prop::sample::select(vec![
            ConflictPolicy::AdoWins,
            ConflictPolicy::ClickupWins,
            ConflictPolicy::NewestWins,
            ConflictPolicy::Manual,
        ]),
    )
        .prop_map(|(direction, conflict)| FieldOptions {
            direction,
            conflict,
        });
    prop::collection::vec(opt, 8).prop_map(|v| {
        let mut f = FieldsConfig::default();
        for (x, o) in Field::ALL.into_iter().zip(v) {
            f.set(x, o);
        }
        f
    })
}

/// A user's edit on one side: some fields of `to` written there, plus a clock offset.
#[derive(Debug, Clone)]
struct Edit {
    to: Item,
    mask: BTreeSet<Field>,
    secs: i64,
    unknown_user: bool,
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    (
        arb_base(),
        prop::sample::subsequence(Field::ALL.to_vec(), 0..=4),
        0i64..120,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(to, mask, secs, unknown_user)| Edit {
            to,
            mask: mask.into_iter().filter(|f| *f != Field::Parent).collect(),
            secs,
            unknown_user,
        })
}

fn edit_sides(case: &mut LinkCase, ea: &Edit, ec: &Edit) {
    let m = Mapper::new(&case.cfg, &case.ctx, &case.users);
    let ix = LinkIndex::default();
    let mut scratch = vec![];
    let ai = m.ado_to_item(&case.ado, None, &mut scratch);
    let pa = m.ado_patch(&ea.to, &case.ado, &ai, &ix, &ea.mask, &mut scratch);
    if !pa.is_empty() {
        case.ado = apply_ado(&case.ado, &pa);
    }
    if ea.unknown_user {
        case.ado.assigned_to = Some("zed@elsewhere.example".into());
    }
    case.ado.changed_date += Duration::seconds(ea.secs);
    let ci = m.clickup_to_item(&case.cu, None, &mut scratch);
    let pc = m.clickup_patch(&ec.to, &case.cu, &ci, &ix, &ec.mask, &mut scratch);
    if !pc.is_empty() {
        case.cu = apply_cu(&case.cu, &pc);
    }
    case.cu.date_updated += ec.secs * 1000;
}

fn conflict_fields(p: &Plan) -> BTreeSet<Field> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::RecordConflict { conflict, .. } => Some(conflict.field),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// (a) No echo: when both sides hold the base, the plan is empty.
    #[test]
    fn no_echo(b in arb_base(), fields in arb_fields()) {
        let cfg = MappingConfig { fields, ..MappingConfig::default() };
        let case = linked(&b, cfg);
        let p = case.plan();
        prop_assert!(p.is_empty(), "{:?}", p);
    }

    /// (b) Idempotence and (c) convergence: after applying a plan, planning again writes
    /// nothing, and both sides hold the same canonical item (as seen from one side), except
    /// fields in `manual` conflict and fields that are not synced.
    #[test]
    fn idempotent_and_convergent(b in arb_base(), fields in arb_fields(), ea in arb_edit(), ec in arb_edit()) {
        let cfg = MappingConfig { fields, ..MappingConfig::default() };
        let mut case = linked(&b, cfg);
        edit_sides(&mut case, &ea, &ec);
        let p1 = case.plan();
        case.apply(&p1);
        let p2 = case.plan();
        prop_assert!(writes(&p2).is_empty(), "second plan writes: {:?}\nfirst: {:?}", p2, p1);
        prop_assert_eq!(conflict_fields(&p2), conflict_fields(&p1));

        let m = Mapper::new(&case.cfg, &case.ctx, &case.users);
        let mut scratch = vec![];
        let ai = m.ado_to_item(&case.ado, None, &mut scratch);
        let ci = m.clickup_to_item(&case.cu, None, &mut scratch);
        let conflicted = conflict_fields(&p1);
        for f in Field::ALL {
            if conflicted.contains(&f) || case.cfg.fields.get(f).direction == Direction::None {
                continue;
            }
            prop_assert!(
                m.ado_same(f, &ci, &ai, "Task") || m.clickup_same(f, &ai, &ci),
                "{} differs: ado {:?} clickup {:?}", f, ai, ci
            );
        }
    }
}

#[test]
fn a_partially_applied_plan_is_finished_by_the_next_one() {
    let mut case = linked(&base_item(), MappingConfig::default());
    case.ado.title = "Renamed in ADO".into();
    case.cu.tags.push("frontend".into());
    let p = case.plan();
    assert_eq!(writes(&p).len(), 2, "{p:?}");
    // Only the ADO write lands (the ClickUp one failed or the daemon died).
    let first = Plan {
        actions: p.actions[..1].to_vec(),
        issues: vec![],
    };
    assert!(matches!(first.actions[0], Action::UpdateAdo { .. }));
    case.apply(&first);
    let p2 = case.plan();
    assert!(
        ado_patch(&p2).is_none(),
        "ADO already holds the tags: {p2:?}"
    );
    assert_eq!(
        cu_patch(&p2).and_then(|x| x.name.as_deref()),
        Some("Renamed in ADO")
    );
    case.apply(&p2);
    assert!(case.plan().is_empty());
}

#[test]
fn clickup_users_unknown_to_ado_are_not_carried_over_and_are_left_alone() {
    let mut case = linked(&base_item(), MappingConfig::default());
    case.users = ado_clickup_sync::core::mapping::UserDirectory::new(
        MEMBERS,
        Some(vec!["alice@x.com".into(), "bob@x.com".into()]),
    );
    // carol is a ClickUp member with no ADO account.
    case.cu.assignees.push(cu_user("carol@x.com"));
    let p = case.plan();
    assert!(writes(&p).is_empty(), "{p:?}");
    assert!(p.issues.iter().any(|i| matches!(i, MappingIssue::UnknownUser { side: Side::ClickUp, email, .. } if email == "carol@x.com")));
    // ADO moves to bob: ClickUp swaps alice for bob and keeps carol.
    case.ado.assigned_to = Some("bob@x.com".into());
    let p = case.plan();
    let patch = cu_patch(&p).unwrap();
    assert_eq!(patch.assignees_add, vec!["bob@x.com".to_string()]);
    assert_eq!(patch.assignees_rem, vec!["alice@x.com".to_string()]);
    case.apply(&p);
    assert!(case.cu.assignees.iter().any(|u| u.email == "carol@x.com"));
    assert!(writes(&case.plan()).is_empty());
}

// ----- order and determinism -----

fn summary(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| match a {
            Action::Link {
                ado_id, clickup_id, ..
            } => format!("link {ado_id}-{clickup_id}"),
            Action::UpdateAdo { link, ado_id, .. } => format!("update_ado {link:?} {ado_id}"),
            Action::UpdateClickUp {
                link, clickup_id, ..
            } => format!("update_clickup {link:?} {clickup_id}"),
            Action::Rebase { link, .. } => format!("rebase {link:?}"),
            Action::RecordConflict { link, conflict, .. } => {
                format!("conflict {link:?} {}", conflict.field)
            }
            Action::Unlink { link, .. } => format!("unlink {link}"),
            Action::CreateInClickUp { source, .. } => format!("create_clickup from {source}"),
            Action::CreateInAdo { source, .. } => format!("create_ado from {source}"),
        })
        .collect()
}

#[test]
fn limits_default_to_500_creates_and_20_unlinks() {
    assert_eq!(
        Limits::default(),
        Limits {
            max_creates: 500,
            max_unlinks: 20,
            force: false
        }
    );
}

/// Issue 3 point 5: the output is a sorted, deterministic list — new links first (each with
/// its writes), then existing links by id (ADO write, ClickUp write, conflicts, unlink), then
/// creates — whatever order the observations arrive in.
#[test]
fn plans_are_sorted_and_do_not_depend_on_input_order() {
    let mut cfg = MappingConfig::default();
    cfg.fields.title.conflict = ConflictPolicy::Manual;
    let case = linked(&base_item(), cfg);
    let mut snaps = Vec::new();
    let mut ados = Vec::new();
    let mut cus = Vec::new();
    for link in [3i64, 1, 4, 2] {
        let mut s = case.snap.clone();
        s.link = link;
        s.ado_id = 10 * link;
        s.clickup_id = format!("c{link}");
        let mut a = case.ado.clone();
        a.id = s.ado_id;
        let mut c = case.cu.clone();
        c.id = s.clickup_id.clone();
        match link {
            1 => a.title = "Renamed in ADO".into(),
            2 => c.tags.push("frontend".into()),
            3 => {
                a.title = "ADO's title".into();
                c.name = "ClickUp's title".into();
            }
            _ => {} // 4: both records gone
        }
        snaps.push(s);
        if link != 4 {
            ados.push(a);
            cus.push(c);
        }
    }
    let ix = LinkIndex::new(
        snaps
            .iter()
            .map(|s| (s.link, s.ado_id, s.clickup_id.clone())),
    );
    // New items: two to copy each way, and one pair that back-links to each other.
    ados.push(ado(501));
    ados.push(ado(500));
    cus.push(cu("n2"));
    cus.push(cu("n1"));
    let mut a = ado(600);
    a.hyperlinks = vec!["https://app.clickup.com/t/p1".into()];
    a.title = "Same".into();
    let mut c = cu("p1");
    c.backlink = Some(a.web_url.clone());
    c.name = "Same".into();
    c.priority = Some(2);
    ados.insert(0, a);
    cus.push(c);

    let run = |links: &[LinkSnapshot], a: &[AdoRecord], c: &[ClickUpRecord]| {
        plan(&PlanInput {
            pair: "p",
            links,
            ado_records: a,
            clickup_records: c,
            link_index: &ix,
            mapping: &case.cfg,
            context: &case.ctx,
            users: &case.users,
            limits: Limits::default(),
            scope: ScopeCounts::default(),
            now: t0(),
        })
        .unwrap()
    };
    let p = run(&snaps, &ados, &cus);
    assert_eq!(
        summary(&p),
        vec![
            "link 600-p1",
            "update_clickup Existing(1) c1",
            "update_ado Existing(2) 20",
            "conflict Existing(3) title",
            "unlink 4",
            "create_clickup from 500",
            "create_clickup from 501",
            "create_ado from n1",
            "create_ado from n2",
        ]
    );
    let (mut s2, mut a2, mut c2) = (snaps.clone(), ados.clone(), cus.clone());
    s2.reverse();
    a2.reverse();
    c2.reverse();
    assert_eq!(
        run(&s2, &a2, &c2),
        p,
        "same observations, other order: same plan"
    );
}

#[test]
fn a_tag_respelled_on_one_side_is_no_change_and_new_tags_keep_their_spelling() {
    let mut case = linked(&base_item(), MappingConfig::default());
    case.cu.tags = vec!["BACKEND".into()];
    case.cu.date_updated += 1000;
    assert!(writes(&case.plan()).is_empty(), "{:?}", case.plan());
    case.ado.tags.push("Needs-Review".into());
    case.ado.rev += 1;
    let p = case.plan();
    assert_eq!(
        cu_patch(&p).map(|x| x.tags_add.clone()),
        Some(vec!["Needs-Review".to_string()])
    );
}

/// ClickUp's task JSON carries no `due_date_time` (FACTS §7: not in the official task
/// examples, and the simulator leaves it out), and ClickUp snaps a date-only due date to
/// 04:00 in the Workspace time zone of the day the written instant falls on (FACTS gotcha 5).
/// So a date-only due date the sync wrote (noon UTC) comes back as some other instant with
/// nothing saying it is date-only. That is ClickUp holding our value, not a ClickUp edit: it
/// must not be copied to ADO (that would write a time of day there, and echo every cycle).
#[test]
fn a_date_only_due_date_read_back_snapped_and_without_due_date_time_does_not_echo() {
    let d = NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
    let noon = Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap());
    // Workspace zones west and east of UTC, a half-hour zone, and one past +12 h (where noon
    // UTC is already the next day locally).
    for offset_min in [-8 * 60, 0, 5 * 60 + 30, 10 * 60, 13 * 60] {
        let off = Duration::minutes(offset_min);
        let local_day = (noon + off).date_naive();
        let snapped = Utc.from_utc_datetime(&local_day.and_hms_opt(4, 0, 0).unwrap()) - off;
        let mut case = linked(&base_item(), MappingConfig::default());
        case.cu.due_date = Some(snapped.timestamp_millis());
        case.cu.due_date_time = None;
        case.cu.date_updated += 1000;
        let p = case.plan();
        assert!(writes(&p).is_empty(), "UTC{offset_min:+} min: {p:?}");
    }
    // A real change of day in ClickUp still flows to ADO.
    let mut case = linked(&base_item(), MappingConfig::default());
    let moved = Utc.with_ymd_and_hms(2026, 12, 28, 4, 0, 0).unwrap();
    case.cu.due_date = Some(moved.timestamp_millis());
    case.cu.due_date_time = None;
    case.cu.date_updated += 1000;
    let p = case.plan();
    let due = ado_patch(&p).and_then(|x| x.due_date).flatten();
    assert_eq!(
        due.map(|t| t.date_naive()),
        NaiveDate::from_ymd_opt(2026, 12, 28),
        "{p:?}"
    );
}

/// Issue 3 point 2: the priority map — default 1↔urgent, 2↔high, 3↔normal, 4↔low, ClickUp
/// "none" ↔ a configured ADO default — and a configured map replaces it.
#[test]
fn priority_map_defaults_both_ways_and_a_configured_map_is_honoured() {
    let (ctx, users) = (ctx(), users());
    let read = |m: &Mapper, p: Option<i64>, issues: &mut Vec<MappingIssue>| {
        let mut r = ado(9);
        r.priority = p;
        m.ado_to_item(&r, None, issues).priority
    };
    let cfg = MappingConfig::default();
    let m = Mapper::new(&cfg, &ctx, &users);
    let mut issues = vec![];
    for (ado_p, clickup_id) in [(1, 1u8), (2, 2), (3, 3), (4, 4)] {
        assert_eq!(read(&m, Some(ado_p), &mut issues), Some(clickup_id));
        assert_eq!(m.canonical_priority_to_ado(Some(clickup_id)), Some(ado_p));
    }
    assert_eq!(m.canonical_priority_to_ado(None), Some(2));
    assert!(issues.is_empty(), "{issues:?}");

    let cfg = parse(
        r#"
[priority]
clickup_none_to_ado = 4
ado_reads_as_none = [4]
map = [{ ado = 1, clickup = "high" }, { ado = 2, clickup = "urgent" }]
"#,
    )
    .unwrap();
    let m = Mapper::new(&cfg, &ctx, &users);
    assert_eq!(read(&m, Some(1), &mut issues), Some(2));
    assert_eq!(read(&m, Some(2), &mut issues), Some(1));
    assert_eq!(read(&m, Some(4), &mut issues), None, "reads as none");
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(read(&m, Some(3), &mut issues), None);
    assert_eq!(
        issues,
        vec![MappingIssue::UnmappedPriority {
            item: "ado:9".into(),
            value: 3
        }]
    );
    assert_eq!(m.canonical_priority_to_ado(Some(1)), Some(2));
    assert_eq!(m.canonical_priority_to_ado(Some(2)), Some(1));
    assert_eq!(m.canonical_priority_to_ado(None), Some(4));
}
