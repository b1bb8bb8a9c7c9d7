//! The three-way merge decision table, and its symmetry in the two sides.
use std::collections::BTreeSet;

use ado_clickup_sync::core::mapping::{
    field_eq, ConflictPolicy, Direction, FieldOptions, FieldsConfig,
};
use ado_clickup_sync::core::merge::{merge, Decision, MergeInput, MergeOutcome};
use ado_clickup_sync::core::model::{Due, Field, Item, Side, Status, TagSet};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

fn base() -> Item {
    Item {
        title: "Fix login".into(),
        description: "Intro paragraph.\n\nSecond paragraph.\n\nThird paragraph.".into(),
        status: Status {
            raw: "Active".into(),
            canonical: "in_progress".into(),
        },
        assignees: ["alice@x.com".to_string()].into_iter().collect(),
        tags: TagSet::new(["backend", "Urgent"]),
        priority: Some(2),
        due: Some(Due::Date(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())),
        parent: None,
    }
}

fn t(s: i64) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + Duration::seconds(s))
}

fn all(policy: ConflictPolicy) -> FieldsConfig {
    let mut f = FieldsConfig::default();
    for x in Field::ALL {
        f.set(
            x,
            FieldOptions {
                direction: Direction::Both,
                conflict: policy,
            },
        );
    }
    f
}

fn run(
    b: Option<&Item>,
    a: &Item,
    c: &Item,
    fields: &FieldsConfig,
    ta: Option<DateTime<Utc>>,
    tc: Option<DateTime<Utc>>,
) -> MergeOutcome {
    merge(&MergeInput {
        base: b,
        ado: a,
        clickup: c,
        fields,
        ado_changed_at: ta,
        clickup_changed_at: tc,
    })
}

type Edit = fn(&mut Item);

struct Row {
    name: &'static str,
    field: Field,
    ado: Option<Edit>,
    clickup: Option<Edit>,
    policy: ConflictPolicy,
    /// ADO's change time minus ClickUp's, in seconds.
    ado_newer_by: i64,
    decision: Decision,
    /// The value both targets must hold (`None`: a conflict, each side keeps its own).
    expect: Option<Edit>,
}

fn title_a(i: &mut Item) {
    i.title = "Fix login (ADO)".into();
}
fn title_c(i: &mut Item) {
    i.title = "Fix login (ClickUp)".into();
}
fn prio_1(i: &mut Item) {
    i.priority = Some(1);
}
fn prio_4(i: &mut Item) {
    i.priority = Some(4);
}
fn status_done(i: &mut Item) {
    i.status = Status {
        raw: "Resolved".into(),
        canonical: "done".into(),
    };
}
fn status_done_cu(i: &mut Item) {
    i.status = Status {
        raw: "complete".into(),
        canonical: "done".into(),
    };
}
fn status_closed(i: &mut Item) {
    i.status = Status {
        raw: "closed".into(),
        canonical: "closed".into(),
    };
}
fn tag_add_x(i: &mut Item) {
    i.tags = TagSet::new(i.tags.iter().cloned().chain(["x".to_string()]));
}
fn tag_rem_backend(i: &mut Item) {
    i.tags = TagSet::new(i.tags.iter().filter(|t| *t != "backend").cloned());
}
fn tag_add_x_rem_backend(i: &mut Item) {
    tag_add_x(i);
    tag_rem_backend(i);
}
fn desc_p1(i: &mut Item) {
    i.description = i
        .description
        .replace("Intro paragraph.", "Intro paragraph, edited in ADO.");
}
fn desc_p3(i: &mut Item) {
    i.description = i
        .description
        .replace("Third paragraph.", "Third paragraph, edited in ClickUp.");
}
fn desc_p1_p3(i: &mut Item) {
    desc_p1(i);
    desc_p3(i);
}
fn desc_p1_other(i: &mut Item) {
    i.description = i
        .description
        .replace("Intro paragraph.", "Intro paragraph, edited in ClickUp.");
}
fn assign_bob(i: &mut Item) {
    i.assignees.insert("bob@x.com".into());
}
fn unassign_alice(i: &mut Item) {
    i.assignees.remove("alice@x.com");
}
fn assign_bob_unassign_alice(i: &mut Item) {
    assign_bob(i);
    unassign_alice(i);
}
fn due_clear(i: &mut Item) {
    i.due = None;
}

fn rows() -> Vec<Row> {
    use ConflictPolicy::*;
    use Decision::*;
    vec![
        Row {
            name: "ADO edits title",
            field: Field::Title,
            ado: Some(title_a),
            clickup: None,
            policy: Manual,
            ado_newer_by: 0,
            decision: From(Side::Ado),
            expect: Some(title_a),
        },
        Row {
            name: "ClickUp edits title",
            field: Field::Title,
            ado: None,
            clickup: Some(title_c),
            policy: Manual,
            ado_newer_by: 0,
            decision: From(Side::ClickUp),
            expect: Some(title_c),
        },
        Row {
            name: "ClickUp clears due date",
            field: Field::Due,
            ado: None,
            clickup: Some(due_clear),
            policy: AdoWins,
            ado_newer_by: 0,
            decision: From(Side::ClickUp),
            expect: Some(due_clear),
        },
        Row {
            name: "both set the same status (raw differs)",
            field: Field::Status,
            ado: Some(status_done),
            clickup: Some(status_done_cu),
            policy: Manual,
            ado_newer_by: 0,
            decision: Converged,
            expect: Some(status_done),
        },
        Row {
            name: "both edit title, ado_wins",
            field: Field::Title,
            ado: Some(title_a),
            clickup: Some(title_c),
            policy: AdoWins,
            ado_newer_by: -60,
            decision: Policy(Side::Ado),
            expect: Some(title_a),
        },
        Row {
            name: "both edit title, clickup_wins",
            field: Field::Title,
            ado: Some(title_a),
            clickup: Some(title_c),
            policy: ClickupWins,
            ado_newer_by: 60,
            decision: Policy(Side::ClickUp),
            expect: Some(title_c),
        },
        Row {
            name: "both edit priority, newest_wins, ADO newer",
            field: Field::Priority,
            ado: Some(prio_1),
            clickup: Some(prio_4),
            policy: NewestWins,
            ado_newer_by: 5,
            decision: Policy(Side::Ado),
            expect: Some(prio_1),
        },
        Row {
            name: "both edit priority, newest_wins, ClickUp newer",
            field: Field::Priority,
            ado: Some(prio_1),
            clickup: Some(prio_4),
            policy: NewestWins,
            ado_newer_by: -5,
            decision: Policy(Side::ClickUp),
            expect: Some(prio_4),
        },
        Row {
            name: "both edit status, manual",
            field: Field::Status,
            ado: Some(status_done),
            clickup: Some(status_closed),
            policy: Manual,
            ado_newer_by: 5,
            decision: Conflict,
            expect: None,
        },
        Row {
            name: "tag added on ADO, another removed on ClickUp",
            field: Field::Tags,
            ado: Some(tag_add_x),
            clickup: Some(tag_rem_backend),
            policy: Manual,
            ado_newer_by: 0,
            decision: Merged,
            expect: Some(tag_add_x_rem_backend),
        },
        Row {
            name: "assignee added on ADO, removed on ClickUp",
            field: Field::Assignees,
            ado: Some(assign_bob),
            clickup: Some(unassign_alice),
            policy: Manual,
            ado_newer_by: 0,
            decision: Merged,
            expect: Some(assign_bob_unassign_alice),
        },
        Row {
            name: "description edits in different paragraphs merge",
            field: Field::Description,
            ado: Some(desc_p1),
            clickup: Some(desc_p3),
            policy: Manual,
            ado_newer_by: 0,
            decision: Merged,
            expect: Some(desc_p1_p3),
        },
        Row {
            name: "description edits in the same line, ado_wins",
            field: Field::Description,
            ado: Some(desc_p1),
            clickup: Some(desc_p1_other),
            policy: AdoWins,
            ado_newer_by: 0,
            decision: Policy(Side::Ado),
            expect: Some(desc_p1),
        },
        Row {
            name: "description edits in the same line, newest_wins",
            field: Field::Description,
            ado: Some(desc_p1),
            clickup: Some(desc_p1_other),
            policy: NewestWins,
            ado_newer_by: -1,
            decision: Policy(Side::ClickUp),
            expect: Some(desc_p1_other),
        },
        Row {
            name: "description edits in the same line, manual",
            field: Field::Description,
            ado: Some(desc_p1),
            clickup: Some(desc_p1_other),
            policy: Manual,
            ado_newer_by: 0,
            decision: Conflict,
            expect: None,
        },
    ]
}

#[test]
fn merge_decision_table() {
    for row in rows() {
        let b = base();
        let mut a = b.clone();
        let mut c = b.clone();
        if let Some(e) = row.ado {
            e(&mut a);
        }
        if let Some(e) = row.clickup {
            e(&mut c);
        }
        let fields = all(row.policy);
        let out = run(Some(&b), &a, &c, &fields, t(row.ado_newer_by), t(0));
        assert_eq!(out.decision(row.field), Some(row.decision), "{}", row.name);
        for f in Field::ALL.into_iter().filter(|f| *f != row.field) {
            assert_eq!(
                out.decision(f),
                Some(Decision::Unchanged),
                "{}: {f}",
                row.name
            );
        }
        match row.expect {
            Some(e) => {
                let mut want = b.clone();
                e(&mut want);
                for f in Field::ALL {
                    assert!(
                        field_eq(&out.merged, &want, f),
                        "{}: merged {f}: {:?}",
                        row.name,
                        out.merged
                    );
                    assert!(
                        field_eq(&out.ado_target, &want, f),
                        "{}: ado target {f}",
                        row.name
                    );
                    assert!(
                        field_eq(&out.clickup_target, &want, f),
                        "{}: clickup target {f}",
                        row.name
                    );
                }
                assert!(out.conflicts.is_empty(), "{}", row.name);
            }
            None => {
                assert_eq!(out.conflicts.len(), 1, "{}", row.name);
                let k = &out.conflicts[0];
                assert_eq!(k.field, row.field);
                assert_eq!(
                    k.base,
                    ado_clickup_sync::core::mapping::field_value(&b, row.field)
                );
                assert_eq!(
                    k.ado,
                    ado_clickup_sync::core::mapping::field_value(&a, row.field)
                );
                assert_eq!(
                    k.clickup,
                    ado_clickup_sync::core::mapping::field_value(&c, row.field)
                );
                // Nothing written to either side, base kept.
                assert!(field_eq(&out.merged, &b, row.field), "{}", row.name);
                assert!(field_eq(&out.ado_target, &a, row.field), "{}", row.name);
                assert!(field_eq(&out.clickup_target, &c, row.field), "{}", row.name);
            }
        }
    }
}

#[test]
fn unchanged_on_both_sides_changes_nothing() {
    let b = base();
    let out = run(Some(&b), &b, &b, &all(ConflictPolicy::Manual), t(0), t(9));
    assert!(out.decisions.iter().all(|(_, d)| *d == Decision::Unchanged));
    assert_eq!(out.merged, b);
    assert_eq!(out.ado_target, b);
    assert_eq!(out.clickup_target, b);
}

#[test]
fn one_way_fields_ignore_and_overwrite_the_other_side() {
    let b = base();
    let mut fields = all(ConflictPolicy::NewestWins);
    fields.title.direction = Direction::AdoToClickup;
    fields.priority.direction = Direction::ClickupToAdo;
    fields.tags.direction = Direction::None;
    let mut a = b.clone();
    let mut c = b.clone();
    title_c(&mut c); // ignored: title flows ADO → ClickUp
    prio_1(&mut a); // ignored: priority flows ClickUp → ADO
    tag_add_x(&mut a); // tags never sync
    let out = run(Some(&b), &a, &c, &fields, t(10), t(0));
    assert_eq!(out.decision(Field::Title), Some(Decision::Unchanged));
    assert_eq!(
        out.clickup_target.title, b.title,
        "ClickUp's edit is reverted to ADO's value"
    );
    assert_eq!(
        out.ado_target.priority, b.priority,
        "ADO's edit is reverted"
    );
    assert_eq!(out.decision(Field::Tags), Some(Decision::NotSynced));
    assert_eq!(out.ado_target.tags, a.tags);
    assert_eq!(out.clickup_target.tags, c.tags);

    // The owning side's edit does flow.
    let mut a2 = b.clone();
    title_a(&mut a2);
    let out = run(Some(&b), &a2, &c, &fields, t(0), t(10));
    assert_eq!(out.decision(Field::Title), Some(Decision::From(Side::Ado)));
    assert_eq!(out.clickup_target.title, a2.title);
}

#[test]
fn first_link_without_base_unites_sets_and_keeps_set_values() {
    let mut a = Item {
        title: "Same".into(),
        tags: TagSet::new(["a", "Shared"]),
        priority: Some(3),
        ..Item::default()
    };
    a.assignees.insert("alice@x.com".into());
    let mut c = Item {
        title: "Same".into(),
        tags: TagSet::new(["b", "shared"]),
        due: Some(Due::Date(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap())),
        ..Item::default()
    };
    c.assignees.insert("bob@x.com".into());
    let out = run(None, &a, &c, &all(ConflictPolicy::Manual), t(0), t(0));
    assert_eq!(out.merged.tags, TagSet::new(["a", "b", "shared"]));
    assert_eq!(
        out.merged.assignees,
        ["alice@x.com", "bob@x.com"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(out.merged.priority, Some(3));
    assert_eq!(out.merged.due, c.due);
    assert_eq!(out.decision(Field::Title), Some(Decision::Converged));
    assert!(out.conflicts.is_empty());

    // Two different set values still follow the policy.
    c.priority = Some(1);
    let out = run(None, &a, &c, &all(ConflictPolicy::Manual), t(0), t(0));
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].field, Field::Priority);
    assert_eq!(
        out.merged.priority, None,
        "base (none) is kept while in conflict"
    );
}

// ----- symmetry -----

fn arb_item() -> impl Strategy<Value = Item> {
    let lines = prop::sample::subsequence(vec!["one", "two", "three", "four", "five"], 0..=5);
    (
        prop::sample::select(vec!["t1", "t2", "t3"]),
        lines,
        prop::sample::select(vec!["open", "in_progress", "done"]),
        prop::sample::subsequence(vec!["alice@x.com", "bob@x.com", "carol@x.com"], 0..=3),
        prop::sample::subsequence(vec!["a", "B", "c"], 0..=3),
        prop::option::of(1u8..=4),
        prop::option::of(0i64..3),
    )
        .prop_map(|(title, lines, st, asg, tags, prio, due)| Item {
            title: title.into(),
            description: lines.join("\n\n"),
            status: Status {
                raw: st.to_uppercase(),
                canonical: st.into(),
            },
            assignees: asg.into_iter().map(String::from).collect(),
            tags: TagSet::new(tags),
            priority: prio,
            due: due.map(|d| {
                Due::Date(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(d))
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

fn mirror(d: Decision) -> Decision {
    match d {
        Decision::From(s) => Decision::From(s.other()),
        Decision::Policy(s) => Decision::Policy(s.other()),
        d => d,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// (d) Swapping the sides and mirroring the options mirrors the result.
    #[test]
    fn merge_is_symmetric(
        b in arb_item(), a in arb_item(), c in arb_item(), fields in arb_fields(),
        with_base in any::<bool>(), ta in prop::option::of(0i64..3), tc in prop::option::of(0i64..3),
    ) {
        let base = with_base.then_some(&b);
        let ta = ta.and_then(t);
        let tc = tc.and_then(t);
        let one = run(base, &a, &c, &fields, ta, tc);
        let two = run(base, &c, &a, &fields.mirrored(), tc, ta);
        for f in Field::ALL {
            prop_assert!(field_eq(&one.merged, &two.merged, f), "merged {f}");
            prop_assert!(field_eq(&one.ado_target, &two.clickup_target, f), "targets {f}");
            prop_assert!(field_eq(&one.clickup_target, &two.ado_target, f), "targets {f}");
            prop_assert_eq!(one.decision(f).map(mirror), two.decision(f), "decision {}", f);
        }
        prop_assert_eq!(one.conflicts.len(), two.conflicts.len());
        for (x, y) in one.conflicts.iter().zip(&two.conflicts) {
            prop_assert_eq!(x.field, y.field);
            prop_assert_eq!(&x.ado, &y.clickup);
            prop_assert_eq!(&x.clickup, &y.ado);
        }
    }

    /// (a) at the merge level: equal sides and base merge to nothing.
    #[test]
    fn merge_no_echo(b in arb_item(), fields in arb_fields()) {
        let out = run(Some(&b), &b, &b, &fields, t(1), t(2));
        prop_assert!(out.conflicts.is_empty());
        for f in Field::ALL {
            prop_assert!(matches!(out.decision(f), Some(Decision::Unchanged | Decision::NotSynced)));
        }
    }
}

/// Issue 3 point 1: tags are a set compared case-insensitively that keeps the spelling.
#[test]
fn tags_compare_case_insensitively_and_keep_their_spelling() {
    let set = TagSet::new(["Backend", "backend", " UI ", "", "api"]);
    assert_eq!(
        set.0,
        vec!["api", "Backend", "UI"],
        "first spelling, trimmed, sorted"
    );
    assert_eq!(set, TagSet::new(["BACKEND", "ui", "API"]));
    assert!(set.contains("BACKEND") && !set.contains("back"));

    // Re-spelling a tag on one side is not an edit.
    let b = base();
    let mut c = b.clone();
    c.tags = TagSet::new(["BACKEND", "urgent"]);
    let out = run(Some(&b), &b, &c, &all(ConflictPolicy::Manual), t(0), t(5));
    assert_eq!(out.decision(Field::Tags), Some(Decision::Unchanged));
    // An added tag reaches the other side spelled as it was typed.
    let mut a = b.clone();
    a.tags = TagSet::new(["backend", "Urgent", "NeedsReview"]);
    let out = run(Some(&b), &a, &b, &all(ConflictPolicy::Manual), t(5), t(0));
    assert_eq!(out.decision(Field::Tags), Some(Decision::From(Side::Ado)));
    assert_eq!(
        out.clickup_target.tags.0,
        vec!["backend", "NeedsReview", "Urgent"]
    );
}
