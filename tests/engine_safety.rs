//! The engine's safety properties against the simulators: concurrent edits during a write,
//! failures and retries, cursors across page boundaries and clock skew, scope, guards and
//! deletions.
mod engine_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ado_clickup_sync::core::mapping::{DeletionPolicy, MappingConfig};
use ado_clickup_sync::core::plan::{Action, Plan};
use ado_clickup_sync::engine::{CycleRequest, EngineOptions, Observer};
use ado_clickup_sync::sim::ado::{AdoSeed, AdoSim, SeedItem};
use ado_clickup_sync::sim::clickup::{ClickUpSeed, ClickUpSim, SimList, SimTaskEdit, SimTaskInput};
use ado_clickup_sync::sim::common::{FaultKind, FaultRule};
use ado_clickup_sync::sim::testbed::TestbedOptions;
use ado_clickup_sync::store::LinkState;
use engine_support::{fields, Harness, Setup};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Edits an item once, right after the first plan that writes to it (between read and write).
struct EditAfterPlan<F: Fn(&Plan) -> bool + Send + Sync> {
    done: AtomicBool,
    edit: F,
}

impl<F: Fn(&Plan) -> bool + Send + Sync> Observer for EditAfterPlan<F> {
    fn planned(&self, _pair: &str, plan: &Plan) {
        if !self.done.load(Ordering::SeqCst) && (self.edit)(plan) {
            self.done.store(true, Ordering::SeqCst);
        }
    }
}

fn writes_ado(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::UpdateAdo { .. }))
}
fn writes_clickup(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::UpdateClickUp { .. }))
}

#[tokio::test]
async fn stale_ado_rev_is_detected_and_merged_not_overwritten() {
    let slot: Arc<std::sync::OnceLock<(Arc<AdoSim>, i64)>> = Arc::default();
    let s2 = slot.clone();
    let obs = Arc::new(EditAfterPlan {
        done: AtomicBool::new(false),
        edit: move |p: &Plan| {
            if !writes_ado(p) {
                return false;
            }
            let Some((sim, id)) = s2.get() else {
                return false;
            };
            // Someone edits another field in ADO while the sync is about to write.
            sim.ui_edit(*id, fields(json!({"Microsoft.VSTS.Common.Priority": 1})))
                .unwrap();
            true
        },
    });
    let h = Harness::with(Setup {
        observer: Some(obs.clone()),
        ..Setup::default()
    })
    .await;
    let a = h.ado_create("Story", json!({"Microsoft.VSTS.Common.Priority": 3}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    let _ = slot.set((h.bed.ado.clone(), a));
    h.cu_edit(
        &t,
        SimTaskEdit {
            name: Some("Renamed in ClickUp".into()),
            ..SimTaskEdit::default()
        },
    );
    h.clear_logs();
    h.converge(5).await;
    assert!(
        obs.done.load(Ordering::SeqCst),
        "the concurrent edit happened"
    );
    // The stale write was refused (412) and the item merged again: both edits survive.
    let refused = h
        .bed
        .ado
        .log()
        .entries()
        .iter()
        .filter(|e| e.method == "PATCH" && e.status == 412)
        .count();
    assert_eq!(refused, 1);
    let w = h.bed.ado.item(a).unwrap();
    assert_eq!(w.title(), "Renamed in ClickUp");
    assert_eq!(w.fields["Microsoft.VSTS.Common.Priority"], json!(1));
    let task = h.bed.clickup.task(&t).unwrap();
    assert_eq!(task.priority(), Some(1), "the ADO edit reached ClickUp");
}

#[tokio::test]
async fn clickup_task_moved_before_the_write_is_merged_again() {
    let slot: Arc<std::sync::OnceLock<(Arc<ClickUpSim>, String)>> = Arc::default();
    let s2 = slot.clone();
    let obs = Arc::new(EditAfterPlan {
        done: AtomicBool::new(false),
        edit: move |p: &Plan| {
            if !writes_clickup(p) {
                return false;
            }
            let Some((sim, id)) = s2.get() else {
                return false;
            };
            sim.ui_edit(
                id,
                SimTaskEdit {
                    name: Some("Renamed in ClickUp meanwhile".into()),
                    ..SimTaskEdit::default()
                },
            )
            .unwrap();
            true
        },
    });
    let h = Harness::with(Setup {
        observer: Some(obs.clone()),
        ..Setup::default()
    })
    .await;
    let a = h.ado_create("Story", json!({}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    let _ = slot.set((h.bed.clickup.clone(), t.clone()));
    h.ado_edit(a, json!({"Microsoft.VSTS.Common.Priority": 1}));
    h.converge(5).await;
    assert!(obs.done.load(Ordering::SeqCst));
    let task = h.bed.clickup.task(&t).unwrap();
    assert_eq!(
        task.name(),
        "Renamed in ClickUp meanwhile",
        "not overwritten"
    );
    assert_eq!(task.priority(), Some(1));
    assert_eq!(
        h.bed.ado.item(a).unwrap().title(),
        "Renamed in ClickUp meanwhile"
    );
}

#[tokio::test]
async fn a_failing_item_is_retried_and_does_not_block_the_others_or_the_cursor() {
    let h = Harness::with(Setup {
        engine: EngineOptions {
            retry: ado_clickup_sync::store::RetryPolicy {
                base: Duration::ZERO,
                max: Duration::ZERO,
            },
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let a = h.ado_create("A", json!({}));
    let b = h.ado_create("B", json!({}));
    h.converge(5).await;
    let ta = h.counterpart_of_ado(a);
    let tb = h.counterpart_of_ado(b);
    h.ado_edit(a, json!({"System.Title": "A2"}));
    h.ado_edit(b, json!({"System.Title": "B2"}));
    // Every write to task A fails (500) for a while.
    h.bed.clickup.faults().add(FaultRule {
        method: "PUT".into(),
        path_contains: format!("/task/{ta}"),
        fault: FaultKind::Status { status: 500 },
        times: Some(20),
        probability: None,
    });
    let r = h.cycle().await;
    assert_eq!(r.pairs[0].tally.failed, 1, "{:?}", r.pairs[0].failures);
    assert!(
        r.pairs[0].cursors_advanced,
        "a queued failure does not hold the cursor"
    );
    assert_eq!(h.bed.clickup.task(&tb).unwrap().name(), "B2");
    assert_eq!(h.bed.clickup.task(&ta).unwrap().name(), "A");
    let retries = h.db().retries(None).unwrap();
    assert_eq!(retries.len(), 1);
    assert!(
        retries[0].last_error.contains(&ta),
        "{}",
        retries[0].last_error
    );
    h.bed.clickup.faults().clear();
    h.converge(5).await;
    assert_eq!(h.bed.clickup.task(&ta).unwrap().name(), "A2");
    assert!(h.db().retries(None).unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_answer_fails_that_item_only() {
    let h = Harness::start().await;
    let a = h.ado_create("A", json!({}));
    let b = h.ado_create("B", json!({}));
    h.converge(5).await;
    let ta = h.counterpart_of_ado(a);
    h.ado_edit(a, json!({"System.Title": "A2"}));
    h.ado_edit(b, json!({"System.Title": "B2"}));
    h.bed.clickup.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: format!("/task/{ta}"),
        fault: FaultKind::Malformed,
        times: Some(50),
        probability: None,
    });
    let r = h.cycle().await;
    assert_eq!(r.pairs[0].tally.failed, 1);
    let tb = h.counterpart_of_ado(b);
    assert_eq!(h.bed.clickup.task(&tb).unwrap().name(), "B2");
    // Not taken for a deletion: the link stays.
    assert_eq!(
        h.db().link_by_ado("team", a).unwrap().unwrap().state,
        LinkState::Active
    );
    h.bed.clickup.faults().clear();
}

fn seed_same_date(n: usize, at: &str) -> AdoSeed {
    AdoSeed {
        custom_fields: vec![],
        work_items: (0..n)
            .map(|i| SeedItem {
                id: None,
                work_item_type: "User Story".into(),
                fields: fields(json!({
                    "System.Title": format!("same date {i}"),
                    "System.ChangedDate": at,
                })),
                relations: vec![],
                comments: vec![],
                deleted: false,
            })
            .collect(),
    }
}

#[tokio::test]
async fn items_sharing_a_changed_date_across_a_page_boundary_are_all_synced() {
    let h = Harness::with(Setup {
        bed: TestbedOptions {
            wiql_page_size: 3,
            ..TestbedOptions::default()
        },
        ..Setup::default()
    })
    .await;
    h.bed
        .ado
        .seed(seed_same_date(7, "2026-11-30T10:00:00.123Z"))
        .unwrap();
    h.converge(5).await;
    assert_eq!(h.bed.clickup.tasks().len(), 7);
    let mut names: Vec<String> = h
        .bed
        .clickup
        .tasks()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    assert_eq!(names[0], "same date 0");
    assert_eq!(names[6], "same date 6");
}

#[tokio::test]
async fn three_minutes_of_clock_skew_loses_no_change() {
    // With a 1-minute overlap, a cursor taken from the local clock would skip edits made on a
    // service whose clock runs 3 minutes behind; server-time cursors do not.
    let h = Harness::with(Setup {
        engine: EngineOptions {
            overlap: Duration::from_secs(60),
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    h.bed.ado.clock().set_offset(chrono::Duration::minutes(-3));
    h.bed
        .clickup
        .clock()
        .set_offset(chrono::Duration::minutes(-3));
    let a = h.ado_create("A", json!({}));
    let c = h.cu_create(SimTaskInput {
        name: "C".into(),
        ..SimTaskInput::default()
    });
    h.converge(5).await;
    let ta = h.counterpart_of_ado(a);
    let ca = h.counterpart_of_clickup(&c);
    h.ado_edit(a, json!({"System.Title": "A edited"}));
    h.cu_edit(
        &c,
        SimTaskEdit {
            name: Some("C edited".into()),
            ..SimTaskEdit::default()
        },
    );
    h.converge(5).await;
    assert_eq!(h.bed.clickup.task(&ta).unwrap().name(), "A edited");
    assert_eq!(h.bed.ado.item(ca).unwrap().title(), "C edited");
    // The cursors are the services' times, 3 minutes behind ours.
    let cursors = h.db().cursors("team").unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let ado_lag = now - cursors.ado.unwrap();
    assert!(ado_lag > 170_000, "ADO cursor lags by {ado_lag} ms");
}

#[tokio::test]
async fn closed_tasks_and_subtasks_are_synced_with_their_parent() {
    let h = Harness::start().await;
    let parent = h.cu_create(SimTaskInput {
        name: "Parent".into(),
        ..SimTaskInput::default()
    });
    let child = h.cu_create(SimTaskInput {
        name: "Child".into(),
        parent: Some(parent.clone()),
        ..SimTaskInput::default()
    });
    let closed = h.cu_create(SimTaskInput {
        name: "Already done".into(),
        status: Some("complete".into()),
        ..SimTaskInput::default()
    });
    h.converge(5).await;
    let p = h.counterpart_of_clickup(&parent);
    let c = h.counterpart_of_clickup(&child);
    let d = h.counterpart_of_clickup(&closed);
    assert_eq!(h.bed.ado.item(c).unwrap().parent(), Some(p));
    assert_eq!(h.bed.ado.item(d).unwrap().state(), "Closed");
    // And the other way: a child created in ADO under a new parent.
    let ap = h.ado_create("ADO parent", json!({}));
    let ac = h.ado_create("ADO child", json!({}));
    h.bed
        .ado
        .ui_add_relation(
            ac,
            "System.LinkTypes.Hierarchy-Reverse",
            &h.bed.ado.api_url(ap),
        )
        .unwrap();
    h.converge(5).await;
    let tp = h.counterpart_of_ado(ap);
    let tc = h.counterpart_of_ado(ac);
    assert_eq!(h.bed.clickup.task(&tc).unwrap().parent(), Some(tp.as_str()));
}

#[tokio::test]
async fn a_task_moved_to_another_list_is_out_of_scope_for_the_sweep() {
    let h = Harness::start().await;
    let mut lists = h.bed.clickup.options().lists.clone();
    lists.push(SimList::new("901199", "Elsewhere"));
    h.bed
        .clickup
        .seed(ClickUpSeed {
            lists: Some(lists),
            ..ClickUpSeed::default()
        })
        .unwrap();
    let c = h.cu_create(SimTaskInput {
        name: "Will move".into(),
        ..SimTaskInput::default()
    });
    h.cu_create(SimTaskInput {
        name: "Stays".into(),
        ..SimTaskInput::default()
    });
    h.converge(5).await;
    let a = h.counterpart_of_clickup(&c);
    h.cu_edit(
        &c,
        SimTaskEdit {
            list_id: Some("901199".into()),
            ..SimTaskEdit::default()
        },
    );
    let r = h.sweep().await;
    assert_eq!(r.pairs[0].tally.unlinked, 1);
    let l = h.db().link_by_ado("team", a).unwrap();
    assert!(l.is_none(), "no active link remains");
    // Policy `unlink`: the ADO item is kept as it was.
    assert_eq!(h.bed.ado.item(a).unwrap().title(), "Will move");
}

async fn linked_items(h: &Harness, n: usize) -> Vec<i64> {
    let ids: Vec<i64> = (0..n)
        .map(|i| h.ado_create(&format!("item {i}"), json!({})))
        .collect();
    h.converge(5).await;
    ids
}

#[tokio::test]
async fn a_side_suddenly_empty_is_refused_unless_forced() {
    let h = Harness::with(Setup {
        engine: EngineOptions {
            max_unlinks: 1000,
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let ids = linked_items(&h, 100).await;
    for id in &ids {
        h.bed.ado.ui_delete(*id).unwrap();
    }
    let r = h
        .engine
        .cycle(&CycleRequest::sweep(), &CancellationToken::new())
        .await
        .unwrap();
    let err = r.pairs[0].error.clone().expect("refused");
    assert!(
        err.contains("returned no items in scope while 100 links exist"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(h.db().count_active_links("team").unwrap(), 100);
    // The cursors did not move either.
    let r = h
        .run(CycleRequest {
            force: true,
            ..CycleRequest::sweep()
        })
        .await;
    assert_eq!(r.pairs[0].tally.unlinked, 100);
    assert_eq!(h.db().count_active_links("team").unwrap(), 0);
    assert_eq!(h.bed.clickup.tasks().len(), 100, "unlink never deletes");
}

#[tokio::test]
async fn too_many_creates_are_refused_and_the_dry_run_shows_what() {
    let h = Harness::with(Setup {
        engine: EngineOptions {
            max_creates: 3,
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    for i in 0..4 {
        h.ado_create(&format!("x{i}"), json!({}));
    }
    let r = h
        .engine
        .cycle(&CycleRequest::incremental(), &CancellationToken::new())
        .await
        .unwrap();
    let err = r.pairs[0].error.clone().expect("refused");
    assert!(err.contains("4 creates exceed the limit of 3"), "{err}");
    assert!(h.bed.clickup.tasks().is_empty());
    assert!(h.db().cursors("team").unwrap().ado.is_none());
    // The refusal says "check, then --force": the dry run is that check, so it shows the
    // plan that would be refused (and says so) instead of nothing.
    let req = CycleRequest {
        dry_run: true,
        ..CycleRequest::incremental()
    };
    let r = h
        .engine
        .cycle(&req, &CancellationToken::new())
        .await
        .unwrap();
    let err = r.pairs[0].error.clone().expect("the refusal is reported");
    assert!(err.contains("4 creates exceed the limit of 3"), "{err}");
    assert!(err.contains("would be refused"), "{err}");
    let creates = r.pairs[0].plans[0]
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateInClickUp { .. }))
        .count();
    assert_eq!(creates, 4);
    assert!(h.bed.clickup.tasks().is_empty());
    assert!(h.db().cursors("team").unwrap().ado.is_none());
}

#[tokio::test]
async fn deletion_policies_unlink_or_mirror() {
    // unlink: the survivor is kept as it is.
    let h = Harness::start().await;
    let a = h.ado_create("Deleted in ADO", json!({}));
    h.ado_create("Stays", json!({}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    h.bed.ado.ui_delete(a).unwrap();
    let r = h.sweep().await;
    assert_eq!(r.pairs[0].tally.unlinked, 1);
    assert_eq!(h.bed.clickup.task(&t).unwrap().status(), "to do");

    // mirror: the survivor moves to its closed status (never deleted).
    let h = Harness::with(Setup {
        mapping: MappingConfig {
            deletion: DeletionPolicy::Mirror,
            ..MappingConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let a = h.ado_create("Deleted in ADO", json!({}));
    let c = h.cu_create(SimTaskInput {
        name: "Deleted in ClickUp".into(),
        ..SimTaskInput::default()
    });
    h.ado_create("Stays", json!({}));
    h.converge(5).await;
    let t = h.counterpart_of_ado(a);
    let ca = h.counterpart_of_clickup(&c);
    h.bed.ado.ui_delete(a).unwrap();
    h.bed.clickup.ui_delete(&c).unwrap();
    let r = h.sweep().await;
    assert_eq!(r.pairs[0].tally.unlinked, 2);
    assert_eq!(h.bed.clickup.task(&t).unwrap().status(), "complete");
    assert_eq!(h.bed.ado.item(ca).unwrap().state(), "Removed");
}

/// A second process on the same database (`sync --once` while the daemon runs, or two
/// daemons) must not create anything twice: both would see the same unlinked items. The
/// second cycle waits for the first and then finds everything linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_on_one_database_never_create_twice() {
    let h = Harness::start().await;
    for i in 0..30 {
        h.ado_create(&format!("ADO item {i}"), json!({}));
        h.cu_create(SimTaskInput {
            name: format!("ClickUp task {i}"),
            ..SimTaskInput::default()
        });
    }
    // A second store handle on the same file, as another process opens it, and through
    // another name (a symlink): the lock must follow the file, not the name.
    let alias = h.dir.path().join("alias.db");
    std::os::unix::fs::symlink(h.dir.path().join("sync.db"), &alias).unwrap();
    let other_store = ado_clickup_sync::store::Store::open_url(alias.to_str().unwrap())
        .await
        .unwrap();
    let pair = h.bed.pair("team", MappingConfig::default());
    let (other, _) = Harness::engine_for(&h.bed, other_store, vec![pair], EngineOptions::default());
    let req = CycleRequest::incremental();
    let cancel = CancellationToken::new();
    let (a, b) = tokio::join!(h.engine.cycle(&req, &cancel), other.cycle(&req, &cancel));
    let (a, b) = (a.unwrap(), b.unwrap());
    for p in a.pairs.iter().chain(&b.pairs) {
        assert!(p.error.is_none(), "pair {} failed: {:?}", p.pair, p.error);
    }
    assert_eq!(a.tally().failed + b.tally().failed, 0);
    assert_eq!(
        a.tally().created_ado + b.tally().created_ado,
        30,
        "ClickUp tasks created in ADO"
    );
    assert_eq!(
        a.tally().created_clickup + b.tally().created_clickup,
        30,
        "ADO items created in ClickUp"
    );
    let mut titles: Vec<String> = h
        .bed
        .ado
        .items()
        .iter()
        .map(|w| w.title().to_string())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 60);
    assert_eq!(h.bed.ado.items().len(), 60, "no ADO item twice");
    assert_eq!(h.bed.clickup.tasks().len(), 60, "no ClickUp task twice");
}
