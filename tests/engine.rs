//! The reconciliation engine end to end against both simulators over HTTP.
mod engine_support;

use ado_clickup_sync::core::mapping::{ConflictPolicy, FieldOptions, MappingConfig};
use ado_clickup_sync::core::model::Field;
use ado_clickup_sync::engine::CycleRequest;
use ado_clickup_sync::sim::clickup::{SimTaskEdit, SimTaskInput, ADO_LINK_FIELD_ID};
use ado_clickup_sync::store::{AuditAction, Resolution};
use engine_support::{member, Harness, Setup};
use serde_json::json;

#[tokio::test]
async fn new_ado_item_appears_in_clickup_with_every_field_and_back_links() {
    let h = Harness::start().await;
    let parent = h.ado_create("Parent story", json!({}));
    let id = h.ado_create(
        "Checkout fails on Safari",
        json!({
            "System.Description": "<div>Steps:</div><ul><li>open <b>cart</b></li></ul>",
            "System.State": "Active",
            "System.AssignedTo": "alice@example.com",
            "System.Tags": "web; Bug-bash",
            "Microsoft.VSTS.Common.Priority": 1,
            "Microsoft.VSTS.Scheduling.DueDate": "2026-12-24T12:00:00Z",
        }),
    );
    h.bed
        .ado
        .ui_add_relation(
            id,
            "System.LinkTypes.Hierarchy-Reverse",
            &h.bed.ado.api_url(parent),
        )
        .unwrap();
    h.converge(5).await;

    let task_id = h.counterpart_of_ado(id);
    let t = h.bed.clickup.task(&task_id).unwrap();
    assert_eq!(t.name(), "Checkout fails on Safari");
    assert_eq!(t.markdown(), "Steps:\n\n- open **cart**");
    assert_eq!(t.status(), "in progress");
    assert_eq!(t.assignee_ids(), &[member(&h.bed, "alice@example.com")]);
    let mut tags: Vec<String> = t.tags().iter().map(|s| s.to_lowercase()).collect();
    tags.sort();
    assert_eq!(tags, vec!["bug-bash", "web"]);
    assert_eq!(t.priority(), Some(1));
    // A date without a time: ClickUp keeps it at 04:00 in the Workspace's zone (UTC here).
    assert_eq!(
        t.due_ms(),
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-12-24T04:00:00Z")
                .unwrap()
                .timestamp_millis()
        )
    );
    assert!(!t.due_has_time());
    let parent_task = h.counterpart_of_ado(parent);
    assert_eq!(t.parent(), Some(parent_task.as_str()));
    // Back-links: the ADO URL in the link field, the task URL as a Hyperlink in ADO.
    assert_eq!(
        t.custom_field(ADO_LINK_FIELD_ID).and_then(|v| v.as_str()),
        Some(h.bed.ado.web_url(id).as_str())
    );
    let w = h.bed.ado.item(id).unwrap();
    assert!(
        w.relations
            .iter()
            .any(|r| r.rel == "Hyperlink" && r.url.ends_with(&format!("/t/{task_id}"))),
        "{:?}",
        w.relations
    );
}

#[tokio::test]
async fn new_clickup_task_appears_in_ado_with_every_field_and_back_links() {
    let h = Harness::start().await;
    let id = h.cu_create(SimTaskInput {
        name: "Export to CSV".into(),
        markdown: "Users want **CSV**.\n\n1. one\n2. two".into(),
        status: Some("review".into()),
        priority: Some(2),
        assignees: vec![member(&h.bed, "bob@example.com")],
        tags: vec!["export".into()],
        due_ms: Some(1_798_113_600_000), // 2026-12-24T12:00:00Z
        ..SimTaskInput::default()
    });
    h.converge(5).await;
    let ado = h.counterpart_of_clickup(&id);
    let w = h.bed.ado.item(ado).unwrap();
    assert_eq!(w.title(), "Export to CSV");
    assert_eq!(w.work_item_type(), "User Story");
    // "review" is a custom (in progress) status: ADO's in-progress state.
    assert_eq!(w.state(), "Active");
    assert_eq!(w.assigned_to().as_deref(), Some("bob@example.com"));
    assert_eq!(w.tags(), vec!["export"]);
    assert_eq!(w.fields["Microsoft.VSTS.Common.Priority"], json!(2));
    let desc = w.description().unwrap_or_default();
    assert!(desc.contains("<strong>CSV</strong>"), "{desc}");
    assert!(desc.contains("<ol>"), "{desc}");
    assert!(
        w.relations
            .iter()
            .any(|r| r.rel == "Hyperlink" && r.url.ends_with(&format!("/t/{id}"))),
        "the ADO item carries the marker: {:?}",
        w.relations
    );
    let t = h.bed.clickup.task(&id).unwrap();
    assert_eq!(
        t.custom_field(ADO_LINK_FIELD_ID).and_then(|v| v.as_str()),
        Some(h.bed.ado.web_url(ado).as_str())
    );
}

#[tokio::test]
async fn each_field_edited_on_each_side_propagates() {
    let h = Harness::start().await;
    let a = h.ado_create("From ADO", json!({"System.Tags": "one"}));
    let c = h.cu_create(SimTaskInput {
        name: "From ClickUp".into(),
        ..SimTaskInput::default()
    });
    h.converge(5).await;
    let a_task = h.counterpart_of_ado(a);
    let c_item = h.counterpart_of_clickup(&c);

    // ADO → ClickUp, every field.
    h.ado_edit(
        a,
        json!({
            "System.Title": "From ADO, renamed",
            "System.Description": "<p>new <i>text</i></p>",
            "System.State": "Resolved",
            "System.AssignedTo": "carol@example.com",
            "System.Tags": "two",
            "Microsoft.VSTS.Common.Priority": 3,
            "Microsoft.VSTS.Scheduling.DueDate": "2027-01-05T12:00:00Z",
        }),
    );
    // ClickUp → ADO, every field.
    h.cu_edit(
        &c,
        SimTaskEdit {
            name: Some("From ClickUp, renamed".into()),
            markdown: Some("- [ ] todo\n- [x] done".into()),
            status: Some("complete".into()),
            priority: Some(Some(4)),
            due_ms: Some(Some(1_799_150_400_000)),
            assignees_add: vec![member(&h.bed, "alice@example.com")],
            tags_add: vec!["frontend".into()],
            ..SimTaskEdit::default()
        },
    );
    h.converge(5).await;

    let t = h.bed.clickup.task(&a_task).unwrap();
    assert_eq!(t.name(), "From ADO, renamed");
    assert_eq!(t.markdown(), "new *text*");
    assert_eq!(
        t.status(),
        "complete",
        "Resolved falls back to a closed status"
    );
    assert_eq!(t.assignee_ids(), &[member(&h.bed, "carol@example.com")]);
    assert_eq!(t.tags(), &["two".to_string()]);
    assert_eq!(t.priority(), Some(3));
    assert_eq!(t.due_ms(), Some(1_799_121_600_000)); // 2027-01-05, kept at 04:00

    let w = h.bed.ado.item(c_item).unwrap();
    assert_eq!(w.title(), "From ClickUp, renamed");
    assert!(
        w.description().unwrap_or_default().contains("checkbox"),
        "{:?}",
        w.description()
    );
    assert_eq!(w.state(), "Closed");
    assert_eq!(w.assigned_to().as_deref(), Some("alice@example.com"));
    assert_eq!(w.tags(), vec!["frontend"]);
    assert_eq!(w.fields["Microsoft.VSTS.Common.Priority"], json!(4));
    assert_eq!(
        w.fields["Microsoft.VSTS.Scheduling.DueDate"],
        json!("2027-01-05T12:00:00Z")
    );
}

#[tokio::test]
async fn different_fields_edited_on_both_sides_both_survive() {
    let h = Harness::start().await;
    let a = h.ado_create("Original", json!({}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    h.ado_edit(a, json!({"System.Title": "Title from ADO"}));
    h.cu_edit(
        &t,
        SimTaskEdit {
            priority: Some(Some(2)),
            ..SimTaskEdit::default()
        },
    );
    h.converge(5).await;
    let w = h.bed.ado.item(a).unwrap();
    let task = h.bed.clickup.task(&t).unwrap();
    assert_eq!(w.title(), "Title from ADO");
    assert_eq!(task.name(), "Title from ADO");
    assert_eq!(w.fields["Microsoft.VSTS.Common.Priority"], json!(2));
    assert_eq!(task.priority(), Some(2));
}

fn policy(field: Field, conflict: ConflictPolicy) -> MappingConfig {
    let mut m = MappingConfig::default();
    m.fields.set(
        field,
        FieldOptions {
            conflict,
            ..FieldOptions::default()
        },
    );
    m
}

async fn same_field_both_sides(conflict: ConflictPolicy) -> (Harness, i64, String) {
    let h = Harness::with(Setup {
        mapping: policy(Field::Title, conflict),
        ..Setup::default()
    })
    .await;
    let a = h.ado_create("Original", json!({}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    h.ado_edit(a, json!({"System.Title": "ADO title"}));
    h.cu_edit(
        &t,
        SimTaskEdit {
            name: Some("ClickUp title".into()),
            ..SimTaskEdit::default()
        },
    );
    h.converge(5).await;
    (h, a, t)
}

#[tokio::test]
async fn same_field_edited_on_both_sides_follows_the_policy() {
    let (h, a, t) = same_field_both_sides(ConflictPolicy::AdoWins).await;
    assert_eq!(h.bed.clickup.task(&t).unwrap().name(), "ADO title");
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "ADO title");

    let (h, a, t) = same_field_both_sides(ConflictPolicy::ClickupWins).await;
    assert_eq!(h.bed.clickup.task(&t).unwrap().name(), "ClickUp title");
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "ClickUp title");

    // newest_wins: the ClickUp edit came last.
    let (h, a, t) = same_field_both_sides(ConflictPolicy::NewestWins).await;
    assert_eq!(h.bed.clickup.task(&t).unwrap().name(), "ClickUp title");
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "ClickUp title");
}

#[tokio::test]
async fn manual_conflict_leaves_both_untouched_until_resolved() {
    let (h, a, t) = same_field_both_sides(ConflictPolicy::Manual).await;
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "ADO title");
    assert_eq!(h.bed.clickup.task(&t).unwrap().name(), "ClickUp title");
    let open = h.db().open_conflicts(None).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].field, Field::Title);
    assert_eq!(open[0].values.ado, json!("ADO title"));
    assert_eq!(open[0].values.clickup, json!("ClickUp title"));
    assert_eq!(open[0].values.base, json!("Original"));

    h.db()
        .resolve_conflict(open[0].id, Resolution::TakeClickUp, chrono::Utc::now())
        .unwrap();
    h.converge(5).await;
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "ClickUp title");
    assert_eq!(h.bed.clickup.task(&t).unwrap().name(), "ClickUp title");
    assert!(h.db().open_conflicts(None).unwrap().is_empty());
    assert!(h.db().unapplied_resolutions().unwrap().is_empty());
}

#[tokio::test]
async fn no_echo_after_convergence() {
    let h = Harness::start().await;
    for i in 0..5 {
        h.ado_create(&format!("ADO {i}"), json!({"System.Tags": "x"}));
        h.cu_create(SimTaskInput {
            name: format!("ClickUp {i}"),
            markdown: "Some *text* and a [link](https://example.com).".into(),
            tags: vec!["y".into()],
            ..SimTaskInput::default()
        });
    }
    h.converge(5).await;
    h.clear_logs();
    for _ in 0..3 {
        let r = h.cycle().await;
        let t = r.tally();
        assert_eq!(t.written_ado() + t.written_clickup(), 0, "{t:?}");
    }
    assert_eq!(h.writes(), 0, "{:?}", h.bed.clickup.log().entries());
    // The audit says what was written, once each.
    let audit = h.db().recent_audit(1000).unwrap();
    let creates = audit
        .iter()
        .filter(|a| a.entry.action == AuditAction::Create)
        .count();
    assert_eq!(creates, 10);
}

#[tokio::test]
async fn dry_run_writes_nothing_anywhere() {
    let h = Harness::start().await;
    h.ado_create("Only planned", json!({}));
    h.clear_logs();
    let r = h
        .run(CycleRequest {
            dry_run: true,
            ..CycleRequest::incremental()
        })
        .await;
    assert_eq!(r.pairs[0].plans.len(), 1);
    assert_eq!(r.pairs[0].plans[0].actions.len(), 1);
    assert_eq!(h.writes(), 0);
    assert!(h.bed.clickup.tasks().is_empty());
    let db = h.db();
    assert!(db.last_cycles(10).unwrap().is_empty());
    assert!(db.all_cursors().unwrap().is_empty());
    assert!(db.pending_intents(None).unwrap().is_empty());
    let table = ado_clickup_sync::engine::plan_table(&r.pairs);
    assert!(table.contains("create_in_clickup"), "{table}");
}

#[tokio::test]
async fn an_idle_cycle_costs_one_wiql_and_one_page_and_echoes_cost_no_clickup_read() {
    use ado_clickup_sync::core::model::Side;
    let h = Harness::with(Setup {
        engine: ado_clickup_sync::engine::EngineOptions {
            overlap: std::time::Duration::ZERO,
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    for i in 0..30 {
        h.ado_create(&format!("ADO {i}"), json!({}));
        h.cu_create(SimTaskInput {
            name: format!("ClickUp {i}"),
            ..SimTaskInput::default()
        });
    }
    h.converge(5).await;
    // The cycle after our writes sees them again: ADO ids come back from WIQL (one batch read
    // to learn their revs), ClickUp tasks in the page; none needs a GET or a write.
    let before = h.stats.snapshot();
    let r = h.cycle().await;
    assert_eq!(r.tally().written_ado() + r.tally().written_clickup(), 0);
    assert_eq!(
        h.stats.count(Side::ClickUp, "task.get"),
        count(&before, "task.get")
    );
    // And then an idle cycle is exactly one WIQL query and one ClickUp page.
    for _ in 0..3 {
        let a0 = h.stats.total(Side::Ado);
        let c0 = h.stats.total(Side::ClickUp);
        h.cycle().await;
        assert_eq!(h.stats.total(Side::Ado) - a0, 1, "{:?}", h.stats.snapshot());
        assert_eq!(
            h.stats.total(Side::ClickUp) - c0,
            1,
            "{:?}",
            h.stats.snapshot()
        );
    }
}

fn count(snap: &[(ado_clickup_sync::remote::StatKey, u64)], endpoint: &str) -> u64 {
    snap.iter()
        .filter(|(k, _)| k.endpoint == endpoint)
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test]
async fn a_parent_changed_on_either_side_moves_on_the_other() {
    let h = Harness::start().await;
    let p1 = h.ado_create("Parent one", json!({}));
    let p2 = h.ado_create("Parent two", json!({}));
    let child = h.ado_create("Child", json!({}));
    h.bed
        .ado
        .ui_add_relation(
            child,
            "System.LinkTypes.Hierarchy-Reverse",
            &h.bed.ado.api_url(p1),
        )
        .unwrap();
    h.converge(5).await;
    let (t1, t2, tc) = (
        h.counterpart_of_ado(p1),
        h.counterpart_of_ado(p2),
        h.counterpart_of_ado(child),
    );
    assert_eq!(h.bed.clickup.task(&tc).unwrap().parent(), Some(t1.as_str()));

    // ClickUp: the child moves under the second parent → ADO follows.
    h.cu_edit(
        &tc,
        SimTaskEdit {
            parent: Some(Some(t2.clone())),
            ..SimTaskEdit::default()
        },
    );
    h.converge(5).await;
    assert_eq!(h.bed.ado.item(child).unwrap().parent(), Some(p2));

    // ADO: back under the first parent → ClickUp follows.
    let w = h.bed.ado.item(child).unwrap();
    let idx = w
        .relations
        .iter()
        .position(|r| r.rel == "System.LinkTypes.Hierarchy-Reverse")
        .unwrap();
    h.bed
        .ado
        .ui_patch_raw(
            child,
            vec![
                json!({"op": "remove", "path": format!("/relations/{idx}")}),
                json!({"op": "add", "path": "/relations/-", "value": {
                    "rel": "System.LinkTypes.Hierarchy-Reverse", "url": h.bed.ado.api_url(p1)}}),
            ],
        )
        .unwrap();
    h.converge(5).await;
    assert_eq!(h.bed.clickup.task(&tc).unwrap().parent(), Some(t1.as_str()));
}
