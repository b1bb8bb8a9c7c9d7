//! The API clients against the simulators over real HTTP: request economy, paging, the
//! quirks each service has, retries, rate limits, typed errors and secret hygiene.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ado_clickup_sync::ado::{AdoClient, AdoConfig};
use ado_clickup_sync::clickup::{ClickUpClient, ClickUpConfig};
use ado_clickup_sync::core::model::{
    AdoCreate, AdoPatch, ClickUpCreate, ClickUpPatch, ClickUpStatusType, Side,
};
use ado_clickup_sync::remote::{ApiError, ApiStats, HttpPolicy};
use ado_clickup_sync::sim::ado::{self as adosim, AdoSeed, AdoSim, AdoSimOptions, SeedItem};
use ado_clickup_sync::sim::clickup::{
    self as cusim, ClickUpSeed, ClickUpSim, ClickUpSimOptions, RateLimit, SeedTask, SimTaskInput,
    ADO_LINK_FIELD_ID,
};
use ado_clickup_sync::sim::common::{FaultKind, FaultRule};
use chrono::{DateTime, Duration as CDuration, Utc};
use secrecy::SecretString;
use serde_json::{json, Map, Value};

fn fast_policy() -> HttpPolicy {
    HttpPolicy {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retries: 3,
        requests_per_minute: None,
        max_rate_limit_wait: Duration::from_secs(10),
        ..HttpPolicy::default()
    }
}

async fn ado() -> (AdoSim, AdoClient, Arc<ApiStats>) {
    let sim = adosim::start(AdoSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = AdoConfig::new(&o.org, &o.project, SecretString::from(o.pat.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = fast_policy();
    let stats = ApiStats::new();
    let client = AdoClient::new(cfg, stats.clone()).unwrap();
    (sim, client, stats)
}

async fn clickup() -> (ClickUpSim, ClickUpClient, Arc<ApiStats>) {
    let sim = cusim::start(ClickUpSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = ClickUpConfig::new(&o.team_id, SecretString::from(o.token.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = HttpPolicy {
        requests_per_minute: Some(100_000),
        ..fast_policy()
    };
    cfg.backlink_field_id = Some(ADO_LINK_FIELD_ID.to_string());
    let stats = ApiStats::new();
    let client = ClickUpClient::new(cfg, stats.clone()).unwrap();
    (sim, client, stats)
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn seed_items(n: usize, changed: DateTime<Utc>, same_date: bool) -> AdoSeed {
    seed_items_from(None, n, changed, same_date)
}

/// `n` User Stories changed at `changed` (or 1 ms apart), with ids from `first_id` if given.
fn seed_items_from(
    first_id: Option<i64>,
    n: usize,
    changed: DateTime<Utc>,
    same_date: bool,
) -> AdoSeed {
    AdoSeed {
        custom_fields: vec![],
        work_items: (0..n)
            .map(|i| {
                let t = if same_date {
                    changed
                } else {
                    changed + CDuration::milliseconds(i as i64)
                };
                SeedItem {
                    id: first_id.map(|f| f + i as i64),
                    work_item_type: "User Story".into(),
                    fields: fields(json!({
                        "System.Title": format!("item {i}"),
                        "System.ChangedDate": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    })),
                    relations: vec![],
                    comments: vec![],
                    deleted: false,
                }
            })
            .collect(),
    }
}

fn list_id(sim: &ClickUpSim) -> String {
    sim.options().lists[0].id.clone()
}

// ---------------------------------------------------------------- ADO

#[tokio::test]
async fn ado_idle_poll_is_one_request() {
    let (sim, client, stats) = ado().await;
    sim.seed(seed_items(3, Utc::now() - CDuration::hours(1), false))
        .unwrap();
    let since = sim.clock().now() + CDuration::seconds(1);
    sim.log().clear();
    let changed = client.query_changed_since("", since).await.unwrap();
    assert!(changed.ids.is_empty());
    assert_eq!(sim.log().len(), 1, "{:?}", sim.log().entries());
    assert_eq!(sim.log().count("POST", "/_apis/wit/wiql"), 1);
    assert_eq!(stats.total(Side::Ado), 1);
    assert_eq!(stats.count_status(Side::Ado, "wiql", 200), 1);
    // The cursor is the service's time, not ours.
    let drift = (changed.as_of - sim.clock().now()).num_seconds().abs();
    assert!(
        drift <= 2,
        "asOf {} vs sim now {}",
        changed.as_of,
        sim.clock().now()
    );
}

#[tokio::test]
async fn ado_450_changed_items_cost_one_wiql_and_three_batch_reads() {
    let (sim, client, _stats) = ado().await;
    let t0 = Utc::now() - CDuration::minutes(30);
    sim.seed(seed_items(450, t0, false)).unwrap();
    sim.log().clear();
    let changed = client.query_changed_since("", t0).await.unwrap();
    assert_eq!(changed.ids.len(), 450);
    let records = client.get_batch(&changed.ids).await.unwrap();
    assert_eq!(records.len(), 450);
    assert!(records.iter().all(Option::is_some));
    assert_eq!(records[0].as_ref().unwrap().title, "item 0");
    assert_eq!(records[449].as_ref().unwrap().title, "item 449");
    assert_eq!(sim.log().count("POST", "/_apis/wit/wiql"), 1);
    assert_eq!(sim.log().count("POST", "/_apis/wit/workitemsbatch"), 3);
    assert_eq!(sim.log().len(), 4);
    // The query asked for time precision and the ordered, id-tie-broken window.
    let q = &sim.log().entries()[0].query;
    assert!(q.contains("timePrecision=true"), "{q}");
}

#[tokio::test]
async fn ado_items_sharing_a_changed_date_across_a_page_boundary_are_all_returned() {
    let sim = adosim::start(AdoSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = AdoConfig::new(&o.org, &o.project, SecretString::from(o.pat.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = fast_policy();
    cfg.wiql_page_size = 2;
    let client = AdoClient::new(cfg, ApiStats::new()).unwrap();
    let t = Utc::now() - CDuration::minutes(10);
    // Ids chosen so that id order differs from insertion order around the tie.
    sim.seed(seed_items_from(
        Some(100),
        1,
        t - CDuration::seconds(5),
        false,
    ))
    .unwrap();
    sim.seed(seed_items_from(Some(10), 5, t, true)).unwrap();
    sim.seed(seed_items_from(
        Some(3),
        1,
        t + CDuration::seconds(5),
        false,
    ))
    .unwrap();
    let changed = client
        .query_changed_since("", t - CDuration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        changed.ids,
        vec![10, 11, 12, 13, 14, 3],
        "every item of the tie, in (ChangedDate, Id) order"
    );
    assert!(!changed.ids.contains(&100));
    // Pages of 2 over 6 items: 3 full or partial pages plus a final empty check at most.
    assert!(sim.log().count("POST", "/_apis/wit/wiql") >= 3);
}

#[tokio::test]
async fn ado_wiql_without_time_precision_is_rejected_so_the_client_must_send_it() {
    let (sim, client, _stats) = ado().await;
    let o = sim.options().clone();
    let since = Utc::now() - CDuration::minutes(1);
    let query = format!(
        "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= '{}'",
        since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/{}/{}/_apis/wit/wiql?api-version=7.1",
            sim.base_url(),
            o.org,
            o.project
        ))
        .basic_auth("", Some(&o.pat))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body = raw.text().await.unwrap();
    assert!(
        body.contains("You cannot supply a time with the date"),
        "{body}"
    );
    // The client's own query with a time literal succeeds.
    sim.ui_create("Task", fields(json!({"System.Title": "fresh"})))
        .unwrap();
    let changed = client.query_changed_since("", since).await.unwrap();
    assert_eq!(changed.ids.len(), 1);
}

#[tokio::test]
async fn ado_transient_500s_are_retried_for_reads_but_creates_are_not() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/wiql".into(),
        fault: FaultKind::Status { status: 500 },
        times: Some(2),
        probability: None,
    });
    let changed = client
        .query_changed_since("", Utc::now() - CDuration::hours(1))
        .await
        .unwrap();
    assert_eq!(changed.ids, vec![id]);
    assert_eq!(stats.count_status(Side::Ado, "wiql", 500), 2);
    assert_eq!(stats.count_status(Side::Ado, "wiql", 200), 1);

    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/workitems/$".into(),
        fault: FaultKind::Status { status: 503 },
        times: Some(1),
        probability: None,
    });
    let before = sim.items().len();
    let err = client
        .create(&AdoCreate {
            work_item_type: "Task".into(),
            area_path: None,
            fields: AdoPatch {
                title: Some("never twice".into()),
                ..Default::default()
            },
            backlink_url: "https://app.clickup.com/t/abc".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transient { .. }), "{err:?}");
    assert!(err.op().contains("create ADO Task"), "{err}");
    assert_eq!(
        stats.count(Side::Ado, "workitem.create"),
        1,
        "a create is sent once"
    );
    assert_eq!(sim.items().len(), before);
}

#[tokio::test]
async fn ado_429_with_retry_after_is_waited_out() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/workitemsbatch".into(),
        fault: FaultKind::Status { status: 429 },
        times: Some(1),
        probability: None,
    });
    let started = Instant::now();
    let recs = client.get_batch(&[id]).await.unwrap();
    assert_eq!(recs[0].as_ref().unwrap().title, "x");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not obeyed"
    );
    assert_eq!(stats.count_status(Side::Ado, "workitemsbatch", 429), 1);
    assert_eq!(stats.count_status(Side::Ado, "workitemsbatch", 200), 1);
}

#[tokio::test]
async fn ado_stale_rev_is_a_conflict_and_changes_nothing() {
    let (sim, client, _stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "original"})))
        .unwrap();
    let read = client.get(id).await.unwrap();
    sim.ui_edit(id, fields(json!({"System.Title": "edited in the UI"})))
        .unwrap();
    let err = client
        .update(
            id,
            read.rev,
            &AdoPatch {
                title: Some("from the sync".into()),
                tags: Some(vec!["x".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("work item {id}")),
        "{err}"
    );
    let now = sim.item(id).unwrap();
    assert_eq!(now.title(), "edited in the UI");
    assert_eq!(now.rev, read.rev + 1);
    assert!(now.tags().is_empty());
}

#[tokio::test]
async fn ado_create_update_parent_tags_and_links_round_trip() {
    let (sim, client, _stats) = ado().await;
    let parent = sim
        .ui_create("User Story", fields(json!({"System.Title": "parent"})))
        .unwrap();
    let other = sim
        .ui_create("User Story", fields(json!({"System.Title": "other"})))
        .unwrap();
    let created = client
        .create(&AdoCreate {
            work_item_type: "User Story".into(),
            area_path: None,
            fields: AdoPatch {
                title: Some("from ClickUp".into()),
                description_html: Some("<p>hello</p>".into()),
                assigned_to: Some(Some("fabrikamfiber4@hotmail.com".into())),
                tags: Some(vec!["alpha".into(), "beta".into()]),
                priority: Some(Some(2)),
                parent: Some(Some(parent)),
                ..Default::default()
            },
            backlink_url: "https://app.clickup.com/t/86abc".into(),
        })
        .await
        .unwrap();
    assert_eq!(created.rev, 1);
    assert_eq!(created.title, "from ClickUp");
    assert_eq!(
        created.assigned_to.as_deref(),
        Some("fabrikamfiber4@hotmail.com")
    );
    assert_eq!(created.tags, vec!["alpha", "beta"]);
    assert_eq!(created.priority, Some(2));
    assert_eq!(created.parent, Some(parent));
    assert_eq!(created.web_url, sim.web_url(created.id));
    let with_rel = client
        .get_batch_with_relations(&[created.id])
        .await
        .unwrap();
    assert_eq!(
        with_rel[0].as_ref().unwrap().hyperlinks,
        vec!["https://app.clickup.com/t/86abc"]
    );

    // Remove a tag (replace with the full list), move the parent, clear the assignee.
    let updated = client
        .update(
            created.id,
            created.rev,
            &AdoPatch {
                tags: Some(vec!["beta".into()]),
                assigned_to: Some(None),
                parent: Some(Some(other)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.rev, created.rev + 1);
    assert_eq!(updated.tags, vec!["beta"]);
    assert_eq!(updated.assigned_to, None);
    assert_eq!(updated.parent, Some(other));
    // Remove the parent and every tag.
    let updated = client
        .update(
            created.id,
            updated.rev,
            &AdoPatch {
                tags: Some(vec![]),
                parent: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(updated.tags.is_empty());
    assert_eq!(updated.parent, None);
    let stored = sim.item(created.id).unwrap();
    assert!(stored.tags().is_empty());
    let linked = client
        .add_hyperlink(created.id, updated.rev, "https://app.clickup.com/t/zzz")
        .await
        .unwrap();
    assert_eq!(linked.rev, updated.rev + 1);
    let full = client.get(created.id).await.unwrap();
    assert_eq!(full.hyperlinks.len(), 2);
    // Deleted: a null slot in batch reads, NotFound for a single read.
    sim.ui_delete(other).unwrap();
    let slots = client.get_batch(&[parent, other]).await.unwrap();
    assert!(slots[0].is_some() && slots[1].is_none());
    let err = client.get(other).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn ado_comments_types_and_states() {
    let (sim, client, _stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "c"})))
        .unwrap();
    sim.ui_comment(id, "<p>first</p>").unwrap();
    let added = client.add_comment(id, "<p>second</p>").await.unwrap();
    let all = client.list_comments(id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].text, "<p>first</p>");
    assert_eq!(all[1].id, added.id);
    let types = client.work_item_types().await.unwrap();
    assert!(types.iter().any(|t| t.name == "User Story"));
    let states = client.states("User Story").await.unwrap();
    assert!(states.iter().any(|s| s.name == "Closed"
        && s.category == Some(ado_clickup_sync::core::model::AdoStateCategory::Completed)));
}

#[tokio::test]
async fn ado_bad_pat_is_an_auth_error_even_with_an_html_body() {
    let sim = adosim::start(AdoSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = AdoConfig::new(
        &o.org,
        &o.project,
        SecretString::from("wrong-pat-123".to_string()),
    );
    cfg.base_url = sim.base_url();
    cfg.policy = fast_policy();
    let client = AdoClient::new(cfg, ApiStats::new()).unwrap();
    let err = client.get_batch(&[1]).await.unwrap_err();
    assert!(matches!(err, ApiError::Auth { status: 401, .. }), "{err:?}");
    // A 203 (the sign-in page some routes answer a bad PAT with) is an auth failure too.
    let (sim2, good, _) = ado().await;
    sim2.faults().add(FaultRule {
        method: String::new(),
        path_contains: "/wiql".into(),
        fault: FaultKind::Status { status: 203 },
        times: Some(1),
        probability: None,
    });
    let e203 = good.query_changed_since("", Utc::now()).await.unwrap_err();
    assert!(
        matches!(e203, ApiError::Auth { status: 203, .. }),
        "{e203:?}"
    );
    assert!(!format!("{err} {err:?} {client:?}").contains("wrong-pat-123"));
}

// ---------------------------------------------------------------- ClickUp

#[tokio::test]
async fn clickup_idle_poll_is_one_request() {
    let (sim, client, stats) = clickup().await;
    sim.ui_create(
        &list_id(&sim),
        SimTaskInput {
            name: "old".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let since = sim.clock().now_ms() + 1000;
    sim.log().clear();
    let poll = client.changed_since(&[list_id(&sim)], since).await.unwrap();
    assert!(poll.tasks.is_empty());
    assert_eq!(poll.pages, 1);
    assert_eq!(sim.log().len(), 1, "{:?}", sim.log().entries());
    assert_eq!(stats.total(Side::ClickUp), 1);
    let q = &sim.log().entries()[0].query;
    for p in [
        "include_closed=true",
        "subtasks=true",
        "include_markdown_description=true",
        "date_updated_gt=",
    ] {
        assert!(q.contains(p), "{p} missing from {q}");
    }
}

#[tokio::test]
async fn clickup_250_changed_tasks_cost_three_pages() {
    let (sim, client, _stats) = clickup().await;
    let list = list_id(&sim);
    let since = sim.clock().now_ms() - 1;
    let tasks = (0..250)
        .map(|i| SeedTask {
            id: None,
            list_id: list.clone(),
            input: SimTaskInput {
                name: format!("t{i}"),
                ..Default::default()
            },
            date_created_ms: None,
            date_updated_ms: None,
            comments: vec![],
        })
        .collect();
    sim.seed(ClickUpSeed {
        members: None,
        lists: None,
        tasks,
    })
    .unwrap();
    sim.log().clear();
    let poll = client
        .changed_since(std::slice::from_ref(&list), since)
        .await
        .unwrap();
    assert_eq!(poll.tasks.len(), 250);
    assert!(poll.failed.is_empty());
    assert_eq!(poll.pages, 3);
    assert_eq!(sim.log().count("GET", "/task"), 3);
    let mut names: Vec<String> = poll.tasks.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 250);
    assert_eq!(
        poll.max_date_updated(),
        poll.tasks.iter().map(|t| t.date_updated).max()
    );
}

#[tokio::test]
async fn clickup_closed_tasks_and_subtasks_are_returned() {
    let (sim, client, _stats) = clickup().await;
    let list = list_id(&sim);
    let since = sim.clock().now_ms() - 1;
    let parent = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "parent".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let sub = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "sub".into(),
                parent: Some(parent.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let closed = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "done".into(),
                status: Some("complete".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let poll = client.changed_since(&[list], since).await.unwrap();
    let by_id: BTreeMap<&str, _> = poll.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id[sub.as_str()].parent.as_deref(), Some(parent.as_str()));
    assert_eq!(
        by_id[closed.as_str()].status_type,
        ClickUpStatusType::Closed
    );
}

#[tokio::test]
async fn clickup_create_update_and_tag_removal_through_the_tag_endpoint() {
    let (sim, client, _stats) = clickup().await;
    let list = list_id(&sim);
    let created = client
        .create_task(&ClickUpCreate {
            list_id: list.clone(),
            fields: ClickUpPatch {
                name: Some("from ADO".into()),
                markdown: Some("**bold**".into()),
                status: Some("in progress".into()),
                priority: Some(Some(2)),
                assignees_add: vec!["alice@example.com".into()],
                tags_add: vec!["red".into(), "blue".into()],
                due_date: Some(Some((1_767_268_800_000, false))),
                ..Default::default()
            },
            backlink_url: "https://dev.azure.com/o/p/_workitems/edit/5".into(),
        })
        .await
        .unwrap();
    assert_eq!(created.name, "from ADO");
    assert_eq!(created.status, "in progress");
    assert_eq!(created.priority, Some(2));
    assert_eq!(
        created
            .assignees
            .iter()
            .map(|a| a.email.as_str())
            .collect::<Vec<_>>(),
        vec!["alice@example.com"]
    );
    let mut tags = created.tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["blue", "red"]);
    assert_eq!(
        created.backlink.as_deref(),
        Some("https://dev.azure.com/o/p/_workitems/edit/5")
    );
    assert!(
        created.markdown_description.contains("**bold**"),
        "{:?}",
        created.markdown_description
    );

    sim.log().clear();
    let updated = client
        .update_task(
            &created.id,
            &ClickUpPatch {
                tags_rem: vec!["red".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.tags, vec!["blue"]);
    assert_eq!(
        sim.log()
            .count("DELETE", &format!("/task/{}/tag/red", created.id)),
        1
    );
    assert_eq!(
        sim.log().count("PUT", "/task/"),
        0,
        "no scalar field, no Update Task"
    );
    assert!(updated.date_updated >= created.date_updated);
    assert_eq!(sim.task(&created.id).unwrap().tags(), ["blue".to_string()]);

    let updated = client
        .update_task(
            &created.id,
            &ClickUpPatch {
                name: Some("renamed".into()),
                priority: Some(None),
                assignees_add: vec!["bob@example.com".into()],
                assignees_rem: vec!["alice@example.com".into()],
                tags_add: vec!["green".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.priority, None);
    assert_eq!(
        updated
            .assignees
            .iter()
            .map(|a| a.email.as_str())
            .collect::<Vec<_>>(),
        vec!["bob@example.com"]
    );
    let mut tags = updated.tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["blue", "green"]);
    // The returned record is the task re-read after the writes.
    assert_eq!(
        updated.date_updated,
        sim.task(&created.id).unwrap().date_updated_ms()
    );

    let err = client
        .update_task(
            &created.id,
            &ClickUpPatch {
                assignees_add: vec!["nobody@example.com".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Validation { ref field, .. } if field.as_deref() == Some("assignees")),
        "{err:?}"
    );
}

#[tokio::test]
async fn clickup_deleted_task_is_not_found_and_backlink_is_settable() {
    let (sim, client, _stats) = clickup().await;
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let r = client
        .set_backlink(&id, "https://dev.azure.com/o/p/_workitems/edit/9")
        .await
        .unwrap();
    assert_eq!(
        r.backlink.as_deref(),
        Some("https://dev.azure.com/o/p/_workitems/edit/9")
    );
    sim.ui_delete(&id).unwrap();
    let err = client.get_task(&id).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let err = client.get_task("nonexistent1").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn clickup_429_with_reset_is_waited_out() {
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.set_rate_limit(RateLimit {
        limit: 2,
        window: Duration::from_millis(500),
    });
    // Someone else with the same token uses up the window.
    let raw = reqwest::Client::new();
    for _ in 0..3 {
        raw.get(format!("{}/api/v2/user", sim.base_url()))
            .header("Authorization", &sim.options().token)
            .send()
            .await
            .unwrap();
    }
    let started = Instant::now();
    let task = client.get_task(&id).await.unwrap();
    assert_eq!(task.name, "x");
    assert_eq!(
        stats.count_status(Side::ClickUp, "task.get", 429),
        1,
        "{:?}",
        stats.snapshot()
    );
    assert_eq!(stats.count_status(Side::ClickUp, "task.get", 200), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn concurrent_clickup_calls_leave_headroom_for_requests_in_flight() {
    // Four calls in flight at a time (the engine's default) against 10 requests per window:
    // the client pauses as soon as what remains would not cover the calls already sent, so
    // none of them runs into a 429.
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.set_rate_limit(RateLimit {
        limit: 10,
        window: Duration::from_secs(1),
    });
    let client = &client;
    let id = &id;
    let workers = (0..4).map(|_| async move {
        for _ in 0..8 {
            client.get_task(id).await.unwrap();
        }
    });
    futures::future::join_all(workers).await;
    assert_eq!(stats.count_status(Side::ClickUp, "task.get", 200), 32);
    assert_eq!(
        stats.count_status(Side::ClickUp, "task.get", 429),
        0,
        "{:?}",
        stats.snapshot()
    );
}

#[tokio::test]
async fn clickup_500s_are_retried_for_reads() {
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/list/".into(),
        fault: FaultKind::Status { status: 502 },
        times: Some(2),
        probability: None,
    });
    let l = client.get_list(&list).await.unwrap();
    assert_eq!(l.statuses.first().map(|s| s.name.as_str()), Some("to do"));
    assert_eq!(stats.count_status(Side::ClickUp, "list.get", 502), 2);
    let fields = client.find_custom_field(&list, "ado link").await.unwrap();
    assert_eq!(fields.map(|f| f.id).as_deref(), Some(ADO_LINK_FIELD_ID));
    let members = client.members().await.unwrap();
    assert!(members.iter().any(|m| m.email == "alice@example.com"));
}

#[tokio::test]
async fn clickup_comments_and_webhooks() {
    let (sim, client, _stats) = clickup().await;
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.ui_comment(&id, "from the UI").unwrap();
    let cid = client.add_comment(&id, "from the sync").await.unwrap();
    let comments = client.list_comments(&id).await.unwrap();
    assert_eq!(comments.len(), 2);
    assert!(comments
        .iter()
        .any(|c| c.id == cid && c.text == "from the sync"));
    let hook = client
        .create_webhook("http://127.0.0.1:9/hook", &["taskUpdated"], None)
        .await
        .unwrap();
    assert!(hook.secret.is_some());
    let hooks = client.list_webhooks().await.unwrap();
    assert!(hooks.iter().any(|h| h.id == hook.id));
    client.delete_webhook(&hook.id).await.unwrap();
    assert!(client
        .list_webhooks()
        .await
        .unwrap()
        .iter()
        .all(|h| h.id != hook.id));
}

// ---------------------------------------------------------------- secrets

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_appear_in_trace_logs_errors_or_debug() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buf.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (asim, aclient, _) = ado().await;
    let (csim, cclient, _) = clickup().await;
    let pat = asim.options().pat.clone();
    let token = csim.options().token.clone();
    let basic = base64_of(&format!(":{pat}"));

    let id = asim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    asim.faults().add(FaultRule {
        method: String::new(),
        path_contains: "/wiql".into(),
        fault: FaultKind::Status { status: 500 },
        times: Some(1),
        probability: None,
    });
    let mut texts = Vec::new();
    aclient
        .query_changed_since("", Utc::now() - CDuration::hours(1))
        .await
        .unwrap();
    let r = aclient.get(id).await.unwrap();
    texts.push(format!(
        "{:?}",
        aclient.update(id, r.rev - 1, &AdoPatch::default()).await
    ));
    texts.push(format!(
        "{:?}",
        aclient
            .update(
                id,
                999,
                &AdoPatch {
                    title: Some("y".into()),
                    ..Default::default()
                }
            )
            .await
    ));
    let list = list_id(&csim);
    let tid = csim
        .ui_create(
            &list,
            SimTaskInput {
                name: "t".into(),
                ..Default::default()
            },
        )
        .unwrap();
    cclient.changed_since(&[list], 0).await.unwrap();
    texts.push(format!("{:?}", cclient.get_task(&tid).await));
    texts.push(format!("{:?}", cclient.get_task("missing0").await));
    texts.push(format!("{aclient:?} {cclient:?}"));
    drop(_guard);

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("request"),
        "the capture saw no client events:\n{log}"
    );
    assert!(
        log.contains("retrying"),
        "the 500 retry was not logged:\n{log}"
    );
    for secret in [&pat, &token, &basic] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret appeared in the trace log"
        );
        for t in &texts {
            assert!(!t.contains(secret.as_str()), "a secret appeared in {t}");
        }
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------------------------------------------------------------- more rate limits and auth

#[tokio::test]
async fn ado_blocking_rate_limit_is_obeyed_and_every_read_succeeds() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    sim.set_rate_limit(Some(adosim::AdoRateLimit {
        limit: 2,
        window_ms: 600,
        mode: adosim::RateLimitMode::Block,
    }));
    for _ in 0..4 {
        let r = client.get_batch(&[id]).await.unwrap();
        assert_eq!(r[0].as_ref().unwrap().title, "x");
    }
    assert_eq!(
        stats.count_status(Side::Ado, "workitemsbatch", 200),
        4,
        "{:?}",
        stats.snapshot()
    );
}

#[tokio::test]
async fn ado_retry_after_on_a_delayed_200_holds_the_next_request() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    sim.set_rate_limit(Some(adosim::AdoRateLimit {
        limit: 1,
        window_ms: 1_000,
        mode: adosim::RateLimitMode::Delay { delay_ms: 200 },
    }));
    let started = Instant::now();
    for _ in 0..3 {
        client.get_batch(&[id]).await.unwrap();
    }
    // The 2nd answer was delayed 200 ms and said `Retry-After: 1` (on a 200, which the docs
    // say to honour): the 3rd request waited that second. Without it the three calls take
    // about 600 ms (two delays and one X-RateLimit-Delay pause).
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_150), "{took:?}");
    assert_eq!(stats.count_status(Side::Ado, "workitemsbatch", 200), 3);
}

#[tokio::test]
async fn clickup_remaining_zero_pauses_until_reset_instead_of_hitting_429() {
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.set_rate_limit(RateLimit {
        limit: 3,
        window: Duration::from_millis(400),
    });
    for _ in 0..7 {
        assert_eq!(client.get_task(&id).await.unwrap().name, "x");
    }
    assert_eq!(
        stats.count_status(Side::ClickUp, "task.get", 429),
        0,
        "{:?}",
        stats.snapshot()
    );
    assert_eq!(stats.count_status(Side::ClickUp, "task.get", 200), 7);
}

#[tokio::test]
async fn clickup_team_not_authorized_means_gone_only_when_the_token_is_valid() {
    let sim = cusim::start(ClickUpSimOptions {
        missing_task_as_401: true,
        ..ClickUpSimOptions::default()
    })
    .await
    .unwrap();
    let o = sim.options().clone();
    let make = |token: &str| {
        let mut cfg = ClickUpConfig::new(&o.team_id, SecretString::from(token.to_string()));
        cfg.base_url = sim.base_url();
        cfg.policy = fast_policy();
        ClickUpClient::new(cfg, ApiStats::new()).unwrap()
    };
    let client = make(&o.token);
    let list = list_id(&sim);
    let id = sim
        .ui_create(
            &list,
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.ui_delete(&id).unwrap();
    for _ in 0..2 {
        let err = client.get_task(&id).await.unwrap_err();
        assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    }
    // The token was checked once and remembered.
    assert_eq!(client.stats().count(Side::ClickUp, "user"), 1);
    // With a bad token the same answer is an auth failure.
    let bad = make("pk_not_the_token");
    let err = bad.get_task(&id).await.unwrap_err();
    assert!(matches!(err, ApiError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?} {bad:?}").contains("pk_not_the_token"));
}

// ---------------------------------------------------------------- sweeps and creates

#[tokio::test]
async fn ado_full_listing_pages_by_id() {
    let sim = adosim::start(AdoSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = AdoConfig::new(&o.org, &o.project, SecretString::from(o.pat.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = fast_policy();
    cfg.wiql_page_size = 2;
    let client = AdoClient::new(cfg, ApiStats::new()).unwrap();
    sim.seed(seed_items_from(
        Some(20),
        5,
        Utc::now() - CDuration::days(400),
        false,
    ))
    .unwrap();
    let ids = client.list_all_ids("").await.unwrap();
    assert_eq!(ids, vec![20, 21, 22, 23, 24]);
    assert_eq!(sim.log().count("POST", "/_apis/wit/wiql"), 3);
}

#[tokio::test]
async fn clickup_full_listing_and_creates_are_sent_once() {
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    let tasks = (0..150)
        .map(|i| SeedTask {
            id: None,
            list_id: list.clone(),
            input: SimTaskInput {
                name: format!("t{i}"),
                status: (i % 10 == 0).then(|| "complete".to_string()),
                ..Default::default()
            },
            date_created_ms: None,
            date_updated_ms: None,
            comments: vec![],
        })
        .collect();
    sim.seed(ClickUpSeed {
        members: None,
        lists: None,
        tasks,
    })
    .unwrap();
    let all = client.list_all(std::slice::from_ref(&list)).await.unwrap();
    assert_eq!(all.tasks.len(), 150, "closed tasks included");
    assert_eq!(all.pages, 2);

    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/task".into(),
        fault: FaultKind::Status { status: 500 },
        times: Some(1),
        probability: None,
    });
    let err = client
        .create_task(&ClickUpCreate {
            list_id: list.clone(),
            fields: ClickUpPatch {
                name: Some("once".into()),
                ..Default::default()
            },
            backlink_url: "https://dev.azure.com/o/p/_workitems/edit/1".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transient { .. }), "{err:?}");
    assert_eq!(stats.count(Side::ClickUp, "task.create"), 1);
    assert_eq!(sim.tasks().len(), 150);
}

// ---------------------------------------------------------------- typed errors and retries

#[tokio::test]
async fn ado_errors_are_typed_validation_with_field_409_conflict_and_protocol() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    let r = client.get(id).await.unwrap();
    // A 400 rule error: Validation, with ADO's message and the field; never retried.
    let err = client
        .update(
            id,
            r.rev,
            &AdoPatch {
                state: Some("Bogus".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        ApiError::Validation { message, field, .. } => {
            assert!(
                message.starts_with("TF401320: Rule Error for field State."),
                "{message}"
            );
            assert_eq!(field.as_deref(), Some("System.State"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stats.count(Side::Ado, "workitem.update"), 1);
    // 409 TF26071 (a concurrent save) is a conflict, as 412 is.
    sim.faults().add(FaultRule {
        method: "PATCH".into(),
        path_contains: format!("/workitems/{id}"),
        fault: FaultKind::Status { status: 409 },
        times: Some(1),
        probability: None,
    });
    let err = client
        .update(
            id,
            r.rev,
            &AdoPatch {
                title: Some("y".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { message, .. } if message.starts_with("TF26071")),
        "{err:?}"
    );
    assert_eq!(stats.count_status(Side::Ado, "workitem.update", 409), 1);
    assert_eq!(sim.item(id).unwrap().title(), "x");
    // A 200 whose body is not JSON: Protocol, and not sent again.
    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/workitemsbatch".into(),
        fault: FaultKind::Malformed,
        times: Some(1),
        probability: None,
    });
    let err = client.get_batch(&[id]).await.unwrap_err();
    assert!(matches!(err, ApiError::Protocol { .. }), "{err:?}");
    assert!(
        err.op().contains(&format!("read ADO work items [{id}]")),
        "{err}"
    );
    assert_eq!(stats.count(Side::Ado, "workitemsbatch"), 1);
}

#[tokio::test]
async fn ado_timeouts_are_transient_reads_are_retried_and_creates_are_not() {
    let sim = adosim::start(AdoSimOptions::default()).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = AdoConfig::new(&o.org, &o.project, SecretString::from(o.pat.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = HttpPolicy {
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let stats = ApiStats::new();
    let client = AdoClient::new(cfg, stats.clone()).unwrap();
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "slow"})))
        .unwrap();
    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/workitemsbatch".into(),
        fault: FaultKind::Delay { ms: 2_000 },
        times: Some(1),
        probability: None,
    });
    let started = Instant::now();
    let recs = client.get_batch(&[id]).await.unwrap();
    assert_eq!(recs[0].as_ref().unwrap().title, "slow");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the request timeout cut the slow answer short: {:?}",
        started.elapsed()
    );
    assert_eq!(stats.count_status(Side::Ado, "workitemsbatch", 0), 1);
    assert_eq!(stats.count_status(Side::Ado, "workitemsbatch", 200), 1);

    sim.faults().add(FaultRule {
        method: "POST".into(),
        path_contains: "/workitems/$".into(),
        fault: FaultKind::Delay { ms: 2_000 },
        times: Some(1),
        probability: None,
    });
    let err = client
        .create(&AdoCreate {
            work_item_type: "Task".into(),
            area_path: None,
            fields: AdoPatch {
                title: Some("maybe made".into()),
                ..Default::default()
            },
            backlink_url: "https://app.clickup.com/t/slow1".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Transient { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(stats.count(Side::Ado, "workitem.create"), 1, "sent once");
}

#[tokio::test]
async fn ado_guarded_update_is_retried_after_a_5xx_and_applies_once() {
    let (sim, client, stats) = ado().await;
    let id = sim
        .ui_create("Task", fields(json!({"System.Title": "x"})))
        .unwrap();
    sim.faults().add(FaultRule {
        method: "PATCH".into(),
        path_contains: format!("/workitems/{id}"),
        fault: FaultKind::Status { status: 503 },
        times: Some(1),
        probability: None,
    });
    let updated = client
        .update(
            id,
            1,
            &AdoPatch {
                title: Some("retried".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((updated.rev, updated.title.as_str()), (2, "retried"));
    assert_eq!(stats.count_status(Side::Ado, "workitem.update", 503), 1);
    assert_eq!(stats.count_status(Side::Ado, "workitem.update", 200), 1);
    assert_eq!(sim.item(id).unwrap().rev, 2);
}

#[tokio::test]
async fn ado_incremental_query_applies_the_scope_clause_as_one_condition() {
    let (sim, client, _stats) = ado().await;
    let now = Utc::now();
    let item = |id: i64, ty: &str, ago_min: i64| SeedItem {
        id: Some(id),
        work_item_type: ty.into(),
        fields: fields(json!({
            "System.Title": format!("{ty} {id}"),
            "System.ChangedDate": (now - CDuration::minutes(ago_min))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })),
        relations: vec![],
        comments: vec![],
        deleted: false,
    };
    sim.seed(AdoSeed {
        custom_fields: vec![],
        work_items: vec![
            item(1, "Task", 120),
            item(2, "Bug", 3),
            item(3, "Task", 2),
            item(4, "User Story", 1),
        ],
    })
    .unwrap();
    // An OR in the scope must not escape the ChangedDate window (`A OR B AND window`).
    let changed = client
        .query_changed_since(
            "[System.WorkItemType] = 'Task' OR [System.WorkItemType] = 'Bug'",
            now - CDuration::minutes(10),
        )
        .await
        .unwrap();
    assert_eq!(changed.ids, vec![2, 3]);
    let all = client
        .list_all_ids("[System.WorkItemType] = 'User Story' OR [System.Id] = 1")
        .await
        .unwrap();
    assert_eq!(all, vec![1, 4]);
}

#[tokio::test]
async fn clickup_polls_only_the_pairs_lists() {
    let mut opts = ClickUpSimOptions::default();
    opts.lists.push(cusim::SimList::new("901200", "Other"));
    let sim = cusim::start(opts).await.unwrap();
    let o = sim.options().clone();
    let mut cfg = ClickUpConfig::new(&o.team_id, SecretString::from(o.token.clone()));
    cfg.base_url = sim.base_url();
    cfg.policy = HttpPolicy {
        requests_per_minute: Some(100_000),
        ..fast_policy()
    };
    let client = ClickUpClient::new(cfg, ApiStats::new()).unwrap();
    let since = sim.clock().now_ms() - 1;
    let mine = sim
        .ui_create(
            "901100",
            SimTaskInput {
                name: "mine".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.ui_create(
        "901200",
        SimTaskInput {
            name: "theirs".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let poll = client
        .changed_since(&["901100".to_string()], since)
        .await
        .unwrap();
    assert_eq!(
        poll.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec![mine.as_str()]
    );
    let q = &sim.log().entries()[0].query;
    assert!(q.contains("list_ids%5B%5D=901100"), "{q}");
    let both = client
        .list_all(&["901100".to_string(), "901200".to_string()])
        .await
        .unwrap();
    assert_eq!(both.tasks.len(), 2);
}

#[tokio::test]
async fn clickup_oauth_tokens_go_with_bearer_personal_tokens_bare() {
    let sim = cusim::start(ClickUpSimOptions {
        oauth_token: Some("oauth_sim_abc".into()),
        ..ClickUpSimOptions::default()
    })
    .await
    .unwrap();
    let o = sim.options().clone();
    let make = |token: &str, kind: ado_clickup_sync::clickup::TokenKind| {
        let mut cfg = ClickUpConfig::new(&o.team_id, SecretString::from(token.to_string()));
        cfg.base_url = sim.base_url();
        cfg.policy = HttpPolicy {
            requests_per_minute: Some(100_000),
            ..fast_policy()
        };
        cfg.token_kind = kind;
        ClickUpClient::new(cfg, ApiStats::new()).unwrap()
    };
    use ado_clickup_sync::clickup::TokenKind::{OAuth, Personal};
    let me = make("oauth_sim_abc", OAuth).verify_token().await.unwrap();
    assert_eq!(me.email, "sync-bot@example.com");
    make(&o.token, Personal).verify_token().await.unwrap();
    for (token, kind) in [("oauth_sim_abc", Personal), (o.token.as_str(), OAuth)] {
        let err = make(token, kind).verify_token().await.unwrap_err();
        assert!(matches!(err, ApiError::Auth { status: 401, .. }), "{err:?}");
    }
}

#[tokio::test]
async fn clickup_create_sends_parent_due_time_and_resolves_members_once() {
    let (sim, client, stats) = clickup().await;
    let list = list_id(&sim);
    let mk = |name: &str, parent: Option<String>, due: Option<(i64, bool)>| ClickUpCreate {
        list_id: list.clone(),
        fields: ClickUpPatch {
            name: Some(name.into()),
            assignees_add: vec!["alice@example.com".into()],
            parent,
            due_date: due.map(Some),
            ..Default::default()
        },
        backlink_url: format!("https://dev.azure.com/o/p/_workitems/edit/{name}"),
    };
    let parent = client.create_task(&mk("p", None, None)).await.unwrap();
    let due = 1_767_268_800_000 + 3_600_000 * 3 + 60_000 * 17; // 2026-01-01 15:17 UTC
    let child = client
        .create_task(&mk("c", Some(parent.id.clone()), Some((due, true))))
        .await
        .unwrap();
    assert_eq!(child.parent.as_deref(), Some(parent.id.as_str()));
    // Task JSON has no `due_date_time` (FACTS §7): the record cannot say.
    assert_eq!((child.due_date, child.due_date_time), (Some(due), None));
    assert!(sim.task(&child.id).unwrap().due_has_time());
    assert_eq!(
        sim.task(&child.id).unwrap().parent(),
        Some(parent.id.as_str())
    );
    client
        .update_task(
            &child.id,
            &ClickUpPatch {
                assignees_add: vec!["bob@example.com".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A date-only value (noon UTC, due_date_time=false) is snapped to 04:00 in the
    // Workspace zone (UTC here) and read back without the flag (FACTS gotcha 5, §7).
    let noon = 1_767_268_800_000; // 2026-01-01 12:00 UTC
    let dated = client
        .create_task(&mk("d", None, Some((noon, false))))
        .await
        .unwrap();
    assert_eq!(
        (dated.due_date, dated.due_date_time),
        (Some(noon - 8 * 3_600_000), None)
    );
    assert!(!sim.task(&dated.id).unwrap().due_has_time());
    assert_eq!(
        stats.count(Side::ClickUp, "team"),
        1,
        "member ids come from one cached member listing"
    );
}

#[tokio::test]
async fn ado_batch_reads_ask_for_the_record_fields_and_no_expand() {
    let (sim, client, _stats) = ado().await;
    let parent = sim
        .ui_create("Feature", fields(json!({"System.Title": "p"})))
        .unwrap();
    let id = sim
        .ui_create("User Story", fields(json!({"System.Title": "c"})))
        .unwrap();
    sim.ui_add_relation(
        id,
        "System.LinkTypes.Hierarchy-Reverse",
        &format!("{}/fabrikam/_apis/wit/workItems/{parent}", sim.base_url()),
    )
    .unwrap();
    sim.ui_add_relation(id, "Hyperlink", "https://app.clickup.com/t/x1")
        .unwrap();
    let r = client.get_batch(&[id]).await.unwrap()[0].clone().unwrap();
    assert_eq!(r.parent, Some(parent), "System.Parent is read as a field");
    assert!(
        r.hyperlinks.is_empty(),
        "a fields read has no relations, so no $expand was sent: {:?}",
        r.hyperlinks
    );
    let r = client.get_batch_with_relations(&[id]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(r.hyperlinks, vec!["https://app.clickup.com/t/x1"]);
    assert_eq!(r.parent, Some(parent));
}

/// ClickUp snaps a date-only due date to 04:00 in the Workspace's zone and its task JSON
/// never says the value is date-only (FACTS gotcha 5, §7). In a Workspace east or west of
/// UTC the value read back is neither midnight, 04:00 nor noon UTC; the mapping must still
/// see the date it wrote, or the next touch of the item copies a time of day into ADO.
#[tokio::test]
async fn clickup_date_only_due_dates_in_non_utc_workspaces_read_back_as_the_date_written() {
    use ado_clickup_sync::core::mapping::{
        canonical_due_to_clickup, Mapper, MappingConfig, MappingContext, UserDirectory,
    };
    use ado_clickup_sync::core::model::{Due, Field, Item};
    let d = chrono::NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
    for offset_min in [-7 * 60, 5 * 60 + 30, 10 * 60, 13 * 60] {
        let sim = cusim::start(ClickUpSimOptions {
            utc_offset_minutes: offset_min,
            ..ClickUpSimOptions::default()
        })
        .await
        .unwrap();
        let o = sim.options().clone();
        let mut cfg = ClickUpConfig::new(&o.team_id, SecretString::from(o.token.clone()));
        cfg.base_url = sim.base_url();
        cfg.policy = HttpPolicy {
            requests_per_minute: Some(100_000),
            ..fast_policy()
        };
        let client = ClickUpClient::new(cfg, ApiStats::new()).unwrap();
        let written = canonical_due_to_clickup(Due::Date(d));
        let task = client
            .create_task(&ClickUpCreate {
                list_id: list_id(&sim),
                fields: ClickUpPatch {
                    name: Some("dated".into()),
                    due_date: Some(Some(written)),
                    ..Default::default()
                },
                backlink_url: "https://dev.azure.com/o/p/_workitems/edit/1".into(),
            })
            .await
            .unwrap();
        let read = client.get_task(&task.id).await.unwrap();
        assert_ne!(read.due_date, Some(written.0), "UTC{offset_min:+}: snapped");
        assert_eq!(read.due_date_time, None);
        let (mc, ctx, users) = (
            MappingConfig::default(),
            MappingContext::default(),
            UserDirectory::default(),
        );
        let m = Mapper::new(&mc, &ctx, &users);
        let item = m.clickup_to_item(&read, None, &mut Vec::new());
        let base = Item {
            due: Some(Due::Date(d)),
            ..item.clone()
        };
        assert!(
            m.clickup_same(Field::Due, &base, &item),
            "UTC{offset_min:+} min: ClickUp's {:?} is the date {d} it was given",
            item.due
        );
        // ... while another day is a change.
        let other = Item {
            due: Some(Due::Date(d.succ_opt().unwrap())),
            ..item.clone()
        };
        assert!(
            !m.clickup_same(Field::Due, &other, &item),
            "UTC{offset_min:+}"
        );
    }
}

#[test]
fn http_policy_defaults_are_10s_connect_30s_request_and_clickup_100_per_minute() {
    let p = HttpPolicy::default();
    assert_eq!(p.connect_timeout, Duration::from_secs(10));
    assert_eq!(p.request_timeout, Duration::from_secs(30));
    assert_eq!(HttpPolicy::ado_default().requests_per_minute, None);
    assert_eq!(HttpPolicy::clickup_default().requests_per_minute, Some(100));
    assert_eq!(
        ClickUpConfig::new("1", SecretString::from("pk_x".to_string()))
            .policy
            .requests_per_minute,
        Some(100)
    );
}

#[tokio::test]
async fn connection_failures_are_transient_and_reads_are_retried() {
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = AdoConfig::new("o", "p", SecretString::from("pat-x".to_string()));
    cfg.base_url = format!("http://127.0.0.1:{port}");
    cfg.policy = fast_policy();
    let stats = ApiStats::new();
    let client = AdoClient::new(cfg, stats.clone()).unwrap();
    let err = client.get_batch(&[1]).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Transient { message, .. } if message.contains("connection failed")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        stats.count_status(Side::Ado, "workitemsbatch", 0),
        4,
        "one attempt and max_retries (3) retries, no status"
    );
}

#[tokio::test]
async fn a_429_asking_longer_than_the_policy_allows_is_rate_limited_at_once() {
    let (sim, client, stats) = clickup().await;
    let id = sim
        .ui_create(
            &list_id(&sim),
            SimTaskInput {
                name: "x".into(),
                ..Default::default()
            },
        )
        .unwrap();
    // The injected 429 says X-RateLimit-Reset is a minute away; the policy waits 10 s at most.
    sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/task/".into(),
        fault: FaultKind::Status { status: 429 },
        times: Some(1),
        probability: None,
    });
    let started = Instant::now();
    let err = client.get_task(&id).await.unwrap_err();
    match &err {
        ApiError::RateLimited { wait, .. } => {
            assert!(*wait > Duration::from_secs(50), "{wait:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not sleep"
    );
    assert_eq!(stats.count(Side::ClickUp, "task.get"), 1);
}
