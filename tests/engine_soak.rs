//! Longer runs of the engine: every description fixture through a real sync, and a
//! randomized soak of edits on both sides with injected faults.
mod common;
mod engine_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ado_clickup_sync::core::mapping::{ConflictPolicy, FieldOptions, MappingConfig};
use ado_clickup_sync::core::model::Field;
use ado_clickup_sync::engine::EngineOptions;
use ado_clickup_sync::sim::clickup::{SimTaskEdit, SimTaskInput};
use ado_clickup_sync::sim::common::{FaultKind, FaultRule};
use ado_clickup_sync::store::{LinkState, RetryPolicy};
use engine_support::{member, Harness, Setup};
use rand::{Rng, SeedableRng};
use serde_json::json;

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v.sort();
    v
}

fn must_lines(path: &Path) -> Vec<String> {
    let must = path.with_extension("must");
    std::fs::read_to_string(must)
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every fixture description, synced from its own side, is copied with its content and then
/// stays put: three more cycles write nothing.
async fn fixtures_stay_stable(root: &Path) {
    let h = Harness::start().await;
    let mut from_ado: Vec<(i64, PathBuf)> = Vec::new();
    for p in files(&root.join("ado"), "html") {
        let html = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let id = h.ado_create(&name, json!({ "System.Description": html }));
        from_ado.push((id, p));
    }
    let mut from_cu: Vec<(String, PathBuf)> = Vec::new();
    for p in files(&root.join("clickup"), "md") {
        let md = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let id = h.cu_create(SimTaskInput {
            name,
            markdown: md,
            ..SimTaskInput::default()
        });
        from_cu.push((id, p));
    }
    assert!(!from_ado.is_empty() && !from_cu.is_empty());
    h.converge(6).await;
    h.clear_logs();
    for i in 0..3 {
        let t = h.cycle().await.tally();
        assert_eq!(t.written_ado() + t.written_clickup(), 0, "cycle {i}: {t:?}");
    }
    assert_eq!(h.writes(), 0);
    for (id, p) in &from_ado {
        let task = h.bed.clickup.task(&h.counterpart_of_ado(*id)).unwrap();
        for line in must_lines(p) {
            assert!(
                task.markdown().contains(&line),
                "{}: {line:?} missing from\n{}",
                p.display(),
                task.markdown()
            );
        }
    }
    // The whole trip back: an edit in ClickUp sends each description to ADO as HTML; the
    // content survives and the next cycles write nothing.
    for (id, _) in &from_ado {
        let t = h.counterpart_of_ado(*id);
        let md = h.bed.clickup.task(&t).unwrap().markdown().to_string();
        h.cu_edit(
            &t,
            SimTaskEdit {
                markdown: Some(format!("{md}\n\nEdited in ClickUp.")),
                ..SimTaskEdit::default()
            },
        );
    }
    h.converge(6).await;
    h.clear_logs();
    for i in 0..3 {
        let t = h.cycle().await.tally();
        assert_eq!(
            t.written_ado() + t.written_clickup(),
            0,
            "after the trip back, cycle {i}: {t:?}"
        );
    }
    for (id, p) in &from_ado {
        let html = h
            .bed
            .ado
            .item(*id)
            .unwrap()
            .description()
            .unwrap_or_default()
            .to_string();
        let back = ado_clickup_sync::core::convert::normalize_markdown(
            &ado_clickup_sync::core::convert::html_to_markdown(&html),
        );
        assert!(
            back.contains("Edited in ClickUp."),
            "{}: {back}",
            p.display()
        );
        for line in must_lines(p) {
            assert!(
                back.contains(&line),
                "{}: {line:?} lost on the way back:\n{back}",
                p.display()
            );
        }
    }
    for (id, p) in &from_cu {
        let item = h.bed.ado.item(h.counterpart_of_clickup(id)).unwrap();
        let empty = must_lines(p).is_empty() && p.with_extension("must").exists();
        if empty {
            assert!(
                item.description().unwrap_or_default().trim().is_empty(),
                "{}: expected an empty description",
                p.display()
            );
        } else {
            assert!(
                !item.description().unwrap_or_default().is_empty(),
                "{}: description not copied",
                p.display()
            );
        }
    }
}

#[tokio::test]
async fn shared_description_fixtures_stay_stable_through_sync() {
    let Some(shared) = common::shared_dir("engine_soak::fixtures") else {
        return;
    };
    fixtures_stay_stable(&shared.join("fixtures/descriptions")).await;
}

#[tokio::test]
async fn own_description_fixtures_stay_stable_through_sync() {
    let own = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/convert");
    fixtures_stay_stable(&own).await;
}

const EMAILS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];
const TAGS: [&str; 4] = ["api", "web", "urgent", "backend"];

/// What one side shows, field by field, in comparable form.
#[derive(Debug, PartialEq, Eq, Clone)]
struct View {
    title: String,
    tags: BTreeSet<String>,
    priority: Option<i64>,
    /// ADO holds one assignee, ClickUp a set: ADO shows one member of ClickUp's set.
    assignees: BTreeSet<String>,
    done: bool,
}

fn ado_view(h: &Harness, id: i64) -> View {
    let w = h.bed.ado.item(id).unwrap();
    View {
        title: w.title().to_string(),
        tags: w.tags().iter().map(|t| t.to_lowercase()).collect(),
        priority: w
            .fields
            .get("Microsoft.VSTS.Common.Priority")
            .and_then(|v| v.as_i64()),
        assignees: w
            .assigned_to()
            .map(|e| e.to_lowercase())
            .into_iter()
            .collect(),
        done: w.state() == "Closed",
    }
}

fn cu_view(h: &Harness, id: &str) -> View {
    let t = h.bed.clickup.task(id).unwrap();
    let by_id: BTreeMap<i64, String> = h
        .bed
        .clickup
        .options()
        .members
        .iter()
        .map(|m| (m.id, m.email.to_lowercase()))
        .collect();
    View {
        title: t.name().to_string(),
        tags: t.tags().iter().map(|t| t.to_lowercase()).collect(),
        priority: t.priority().map(i64::from),
        assignees: t
            .assignee_ids()
            .iter()
            .filter_map(|i| by_id.get(i).cloned())
            .collect(),
        done: t.status() == "complete",
    }
}

#[tokio::test]
async fn randomized_soak_with_faults_converges_without_duplicates() {
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261204);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut mapping = MappingConfig::default();
    // Title conflicts are left for a person; everything else resolves by policy.
    mapping.fields.set(
        Field::Title,
        FieldOptions {
            conflict: ConflictPolicy::Manual,
            ..FieldOptions::default()
        },
    );
    let h = Harness::with(Setup {
        mapping,
        engine: EngineOptions {
            retry: RetryPolicy {
                base: Duration::ZERO,
                max: Duration::ZERO,
            },
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let mut ado_ids: Vec<i64> = (0..10)
        .map(|i| {
            h.ado_create(
                &format!("ado {i}"),
                json!({"Microsoft.VSTS.Common.Priority": 2}),
            )
        })
        .collect();
    let mut cu_ids: Vec<String> = (0..10)
        .map(|i| {
            h.cu_create(SimTaskInput {
                name: format!("clickup {i}"),
                ..SimTaskInput::default()
            })
        })
        .collect();
    h.converge(6).await;
    // From here on the two sides' ids refer to linked items.
    let links: Vec<(i64, String)> = h
        .db()
        .links_in_pair("team", Some(LinkState::Active))
        .unwrap()
        .into_iter()
        .map(|l| (l.ado_id, l.clickup_id))
        .collect();
    assert_eq!(links.len(), 20);

    let faults = [
        FaultKind::Status { status: 500 },
        FaultKind::Status { status: 503 },
        FaultKind::Status { status: 429 },
        FaultKind::Delay { ms: 30 },
        FaultKind::Drop,
        FaultKind::Truncate,
        FaultKind::Malformed,
    ];
    let mut edits = 0;
    while edits < 500 {
        // A burst of edits on both sides, then a cycle under faults.
        for _ in 0..rng.random_range(5..25) {
            edits += 1;
            let (a, c) = &links[rng.random_range(0..links.len())];
            let on_ado = rng.random_bool(0.5);
            match rng.random_range(0..5) {
                0 => {
                    let title = format!("t{}", rng.random_range(0..1000));
                    if on_ado {
                        h.ado_edit(*a, json!({ "System.Title": title }));
                    } else {
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                name: Some(title),
                                ..SimTaskEdit::default()
                            },
                        );
                    }
                }
                1 => {
                    let tag = TAGS[rng.random_range(0..TAGS.len())];
                    if on_ado {
                        let mut tags: BTreeSet<String> = ado_view(&h, *a).tags;
                        if !tags.remove(tag) {
                            tags.insert(tag.to_string());
                        }
                        let joined: Vec<String> = tags.into_iter().collect();
                        h.ado_edit(*a, json!({ "System.Tags": joined.join("; ") }));
                    } else if cu_view(&h, c).tags.contains(tag) {
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                tags_rem: vec![tag.into()],
                                ..SimTaskEdit::default()
                            },
                        );
                    } else {
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                tags_add: vec![tag.into()],
                                ..SimTaskEdit::default()
                            },
                        );
                    }
                }
                2 => {
                    let p = rng.random_range(1..=4u8);
                    if on_ado {
                        h.ado_edit(*a, json!({ "Microsoft.VSTS.Common.Priority": p }));
                    } else {
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                priority: Some(Some(p)),
                                ..SimTaskEdit::default()
                            },
                        );
                    }
                }
                3 => {
                    let email = EMAILS[rng.random_range(0..EMAILS.len())];
                    if on_ado {
                        h.ado_edit(*a, json!({ "System.AssignedTo": email }));
                    } else {
                        let cur: Vec<i64> = h.bed.clickup.task(c).unwrap().assignee_ids().to_vec();
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                assignees_add: vec![member(&h.bed, email)],
                                assignees_rem: cur,
                                ..SimTaskEdit::default()
                            },
                        );
                    }
                }
                _ => {
                    let done = rng.random_bool(0.5);
                    if on_ado {
                        h.ado_edit(
                            *a,
                            json!({ "System.State": if done { "Closed" } else { "Active" } }),
                        );
                    } else {
                        let s = if done { "complete" } else { "in progress" };
                        h.cu_edit(
                            c,
                            SimTaskEdit {
                                status: Some(s.into()),
                                ..SimTaskEdit::default()
                            },
                        );
                    }
                }
            }
        }
        // New items now and then, on both sides.
        if rng.random_bool(0.2) {
            ado_ids.push(h.ado_create(&format!("late ado {edits}"), json!({})));
            cu_ids.push(h.cu_create(SimTaskInput {
                name: format!("late clickup {edits}"),
                ..SimTaskInput::default()
            }));
        }
        for (sim_faults, path) in [
            (h.bed.clickup.faults(), "/api/v2/"),
            (h.bed.ado.faults(), "/_apis/"),
        ] {
            sim_faults.clear();
            sim_faults.add(FaultRule {
                method: String::new(),
                path_contains: path.into(),
                fault: faults[rng.random_range(0..faults.len())].clone(),
                times: None,
                probability: Some(0.08),
            });
        }
        // A cycle may fail as a whole under faults (a poll that keeps failing); that is fine.
        let _ = h
            .engine
            .cycle(
                &ado_clickup_sync::engine::CycleRequest::incremental(),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await;
    }
    h.bed.clickup.faults().clear();
    h.bed.ado.faults().clear();
    h.converge(10).await;
    h.sweep().await;
    h.converge(5).await;

    // One-to-one links, no duplicates, both sides equal except fields in conflict.
    let db = h.db();
    let active = db.links_in_pair("team", Some(LinkState::Active)).unwrap();
    let ado_items = h.bed.ado.items();
    let tasks = h.bed.clickup.tasks();
    assert_eq!(
        ado_items.len(),
        tasks.len(),
        "same number of items on both sides"
    );
    assert_eq!(active.len(), ado_items.len(), "every item is linked once");
    let a_set: BTreeSet<i64> = active.iter().map(|l| l.ado_id).collect();
    let c_set: BTreeSet<String> = active.iter().map(|l| l.clickup_id.clone()).collect();
    assert_eq!(a_set.len(), active.len());
    assert_eq!(c_set.len(), active.len());
    assert!(db.pending_intents(None).unwrap().is_empty());
    let conflicted: BTreeSet<(i64, Field)> = db
        .open_conflicts(None)
        .unwrap()
        .into_iter()
        .map(|c| (c.link_id, c.field))
        .collect();
    let mut compared = 0;
    for l in &active {
        let a = ado_view(&h, l.ado_id);
        let c = cu_view(&h, &l.clickup_id);
        if !conflicted.contains(&(l.id, Field::Title)) {
            assert_eq!(a.title, c.title, "link {}", l.id);
        }
        assert_eq!(a.tags, c.tags, "link {}", l.id);
        assert_eq!(
            a.priority.filter(|_| c.priority.is_some()),
            c.priority,
            "link {}",
            l.id
        );
        assert_eq!(
            a.assignees.is_empty(),
            c.assignees.is_empty(),
            "link {}",
            l.id
        );
        assert!(
            a.assignees.is_subset(&c.assignees),
            "link {}: {a:?} {c:?}",
            l.id
        );
        assert_eq!(a.done, c.done, "link {}", l.id);
        compared += 1;
    }
    assert!(compared >= 20);
}
