//! Behaviour tests of the ClickUp simulator over real HTTP: one test (at least) per quirk of
//! issue 2's "ClickUp simulator" list, checked against ../shared/api/clickup/FACTS.md.
use std::time::Duration;

use ado_clickup_sync::core::model::ClickUpStatusType;
use ado_clickup_sync::sim::clickup::{
    self, ClickUpSeed, ClickUpSim, ClickUpSimOptions, RateLimit, SeedTask, SimList, SimTaskEdit,
    SimTaskInput, ADO_LINK_FIELD_ID,
};
use ado_clickup_sync::sim::common::{FaultKind, FaultRule};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "pk_sim_token";
const LIST: &str = "901100";
const TEAM: &str = "9011";

struct Env {
    sim: ClickUpSim,
    http: reqwest::Client,
}

impl Env {
    async fn new() -> Env {
        Env::with(ClickUpSimOptions::default()).await
    }
    async fn with(opts: ClickUpSimOptions) -> Env {
        let sim = clickup::start(opts).await.unwrap();
        Env {
            sim,
            http: reqwest::Client::new(),
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}/api/v2{}", self.sim.base_url(), path)
    }
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .header("Authorization", TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }
    fn create(&self, name: &str) -> String {
        self.sim
            .ui_create(
                LIST,
                SimTaskInput {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap()
    }
    fn create_with(&self, input: SimTaskInput) -> String {
        self.sim.ui_create(LIST, input).unwrap()
    }
    async fn team_ids(&self, query: &str) -> Vec<String> {
        let (s, v) = self.get(&format!("/team/{TEAM}/task?{query}")).await;
        assert_eq!(s, 200, "{v}");
        ids(&v)
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn updated(env: &Env, id: &str) -> i64 {
    env.sim.task(id).unwrap().date_updated_ms()
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn auth_is_a_bare_personal_token_and_bearer_is_refused() {
    let env = Env::with(ClickUpSimOptions {
        oauth_token: Some("oauth_abc".into()),
        ..Default::default()
    })
    .await;
    let send = |auth: Option<&str>| {
        let mut rb = env.http.get(env.url("/user"));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        async move {
            let r = rb.send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = send(Some(TOKEN)).await;
    assert_eq!(s, 200);
    assert_eq!(v["user"]["id"], 81000001);
    let (s, v) = send(Some("Bearer pk_sim_token")).await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"err": "Oauth token not found", "ECODE": "OAUTH_019"})
    );
    let (s, v) = send(Some("pk_wrong")).await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"err": "Oauth token not found", "ECODE": "OAUTH_019"})
    );
    let (s, v) = send(None).await;
    assert_eq!(s, 401);
    assert_eq!(v["ECODE"], "OAUTH_017");
    let (s, _) = send(Some("Bearer oauth_abc")).await;
    assert_eq!(s, 200, "a configured OAuth token is accepted with Bearer");
    let (s, _) = send(Some("oauth_abc")).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn another_workspace_is_not_authorized() {
    let env = Env::new().await;
    let (s, v) = env.get("/team/1234/task").await;
    assert_eq!(s, 401);
    assert_eq!(v["ECODE"], "OAUTH_027");
}

// ---------------------------------------------------------------- filtered team tasks

#[tokio::test]
async fn team_tasks_exclude_subtasks_closed_and_archived_by_default() {
    let env = Env::new().await;
    let top = env.create("top");
    let sub = env.create_with(SimTaskInput {
        name: "sub".into(),
        parent: Some(top.clone()),
        ..Default::default()
    });
    let closed = env.create_with(SimTaskInput {
        name: "closed".into(),
        status: Some("complete".into()),
        ..Default::default()
    });
    let archived = env.create("archived");
    env.sim
        .ui_edit(
            &archived,
            SimTaskEdit {
                archived: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.team_ids("").await, vec![top.clone()]);
    assert_eq!(
        env.team_ids("subtasks=true").await,
        vec![top.clone(), sub.clone()]
    );
    assert_eq!(
        env.team_ids("include_closed=true").await,
        vec![top.clone(), closed.clone()]
    );
    assert_eq!(
        env.team_ids("subtasks=true&include_closed=true").await,
        vec![top.clone(), sub.clone(), closed.clone()],
        "archived tasks never come back from the team endpoint"
    );
    // statuses[] cannot bring back closed tasks without include_closed.
    assert_eq!(
        env.team_ids("statuses[]=complete").await,
        Vec::<String>::new()
    );
    assert_eq!(
        env.team_ids("statuses[]=complete&include_closed=true")
            .await,
        vec![closed]
    );
    assert_eq!(env.team_ids(&format!("parent={top}")).await, vec![sub]);
}

#[tokio::test]
async fn team_tasks_page_by_100_with_last_page() {
    let env = Env::new().await;
    let seed = ClickUpSeed {
        tasks: (0..250)
            .map(|i| SeedTask {
                list_id: LIST.into(),
                input: SimTaskInput {
                    name: format!("t{i}"),
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let seeded = env.sim.seed_ids(seed).unwrap();
    let mut all = Vec::new();
    for (page, (len, last)) in [(100, false), (100, false), (50, true)]
        .into_iter()
        .enumerate()
    {
        let (s, v) = env.get(&format!("/team/{TEAM}/task?page={page}")).await;
        assert_eq!(s, 200);
        assert_eq!(v["tasks"].as_array().unwrap().len(), len);
        assert_eq!(v["last_page"], last);
        all.extend(ids(&v));
    }
    assert_eq!(
        all, seeded,
        "default order is by creation, pages do not overlap"
    );
    let (_, v) = env.get(&format!("/team/{TEAM}/task?page=3")).await;
    assert_eq!(v["tasks"], json!([]));
    assert_eq!(v["last_page"], true);
}

#[tokio::test]
async fn team_tasks_date_filters_are_strict_and_order_by_updated_reverses() {
    let env = Env::new().await;
    let a = env.create("a");
    let b = env.create("b");
    let c = env.create("c");
    // Touch a last: updated order is b, c, a.
    env.sim
        .ui_edit(
            &a,
            SimTaskEdit {
                name: Some("a2".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let ub = updated(&env, &b);
    let uc = updated(&env, &c);
    let ua = updated(&env, &a);
    assert!(ub < uc && uc < ua);
    assert_eq!(
        env.team_ids(&format!("date_updated_gt={ub}")).await,
        vec![a.clone(), c.clone()],
        "strict, and still in the default (created) order"
    );
    assert_eq!(
        env.team_ids(&format!("date_updated_gt={uc}")).await,
        vec![a.clone()]
    );
    assert_eq!(
        env.team_ids(&format!("date_updated_lt={uc}")).await,
        vec![b.clone()]
    );
    assert_eq!(
        env.team_ids("order_by=updated").await,
        vec![b.clone(), c.clone(), a.clone()]
    );
    assert_eq!(
        env.team_ids("order_by=updated&reverse=true").await,
        vec![a.clone(), c.clone(), b.clone()]
    );
    let ca = env.sim.task(&a).unwrap().date_created_ms();
    assert_eq!(
        env.team_ids(&format!("date_created_gt={ca}")).await,
        vec![b.clone(), c.clone()],
        "date_created_gt is strict"
    );
    assert_eq!(
        env.team_ids("order_by=created&reverse=true").await,
        vec![c, b, a]
    );
    let (s, v) = env
        .get(&format!("/team/{TEAM}/task?date_updated_gt=yesterday"))
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn team_tasks_filter_lists_and_statuses_and_markdown_only_when_asked() {
    let mut opts = ClickUpSimOptions::default();
    opts.lists.push(SimList::new("901200", "Other"));
    let env = Env::with(opts).await;
    let a = env.create_with(SimTaskInput {
        name: "a".into(),
        markdown: "**bold** [link](https://x.example)".into(),
        status: Some("in progress".into()),
        ..Default::default()
    });
    let b = env
        .sim
        .ui_create(
            "901200",
            SimTaskInput {
                name: "b".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.team_ids("list_ids[]=901200").await, vec![b.clone()]);
    assert_eq!(
        env.team_ids("list_ids[]=901200&list_ids[]=901100").await,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        env.team_ids("list_ids=901200").await,
        vec![a.clone(), b.clone()],
        "the team endpoint only knows the bracketed array name"
    );
    assert_eq!(
        env.team_ids("statuses[]=in%20progress").await,
        vec![a.clone()]
    );
    let (_, v) = env
        .get(&format!("/team/{TEAM}/task?list_ids[]=901100"))
        .await;
    let t = &v["tasks"][0];
    assert!(t.get("markdown_description").is_none());
    assert_eq!(t["description"], "bold link");
    let (_, v) = env
        .get(&format!(
            "/team/{TEAM}/task?list_ids[]=901100&include_markdown_description=true"
        ))
        .await;
    assert_eq!(
        v["tasks"][0]["markdown_description"],
        "**bold** [link](https://x.example)"
    );
}

// ---------------------------------------------------------------- list tasks

#[tokio::test]
async fn list_tasks_home_list_archived_sweep_and_both_status_spellings() {
    let mut opts = ClickUpSimOptions::default();
    opts.lists.push(SimList::new("901200", "Other"));
    let env = Env::with(opts).await;
    let a = env.create_with(SimTaskInput {
        name: "a".into(),
        status: Some("review".into()),
        ..Default::default()
    });
    let b = env.create("b");
    let arch = env.create("arch");
    env.sim
        .ui_edit(
            &arch,
            SimTaskEdit {
                archived: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    env.sim
        .ui_create(
            "901200",
            SimTaskInput {
                name: "elsewhere".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let (s, v) = env.get(&format!("/list/{LIST}/task")).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&v), vec![a.clone(), b.clone()]);
    assert_eq!(v["last_page"], true);
    let (_, v) = env.get(&format!("/list/{LIST}/task?archived=true")).await;
    assert_eq!(
        ids(&v),
        vec![arch],
        "archived=true gives only archived tasks"
    );
    let (_, v) = env.get(&format!("/list/{LIST}/task?statuses=review")).await;
    assert_eq!(ids(&v), vec![a.clone()]);
    let (_, v) = env
        .get(&format!("/list/{LIST}/task?statuses[]=review"))
        .await;
    assert_eq!(ids(&v), vec![a]);
    let (s, v) = env.get("/list/999/task").await;
    assert_eq!(s, 404, "{v}");
}

// ---------------------------------------------------------------- get / create / update / delete

#[tokio::test]
async fn get_task_shape_and_markdown_only_on_request() {
    let env = Env::new().await;
    let id = env.create_with(SimTaskInput {
        name: "Fix login".into(),
        markdown: "# Title\n\nSome *text*".into(),
        priority: Some(2),
        tags: vec!["bug".into()],
        assignees: vec![81000002],
        ..Default::default()
    });
    let (s, t) = env.get(&format!("/task/{id}")).await;
    assert_eq!(s, 200);
    assert!(t.get("markdown_description").is_none());
    assert_eq!(t["id"], json!(id));
    assert_eq!(t["name"], "Fix login");
    assert_eq!(t["description"], "Title\nSome text");
    assert_eq!(t["text_content"], "Title\nSome text");
    assert_eq!(
        t["priority"],
        json!({"color": "#f8ae00", "id": "2", "orderindex": "2", "priority": "high"})
    );
    assert_eq!(t["status"]["status"], "to do");
    assert_eq!(t["status"]["type"], "open");
    assert_eq!(t["status"]["orderindex"], 0);
    assert!(t["orderindex"].is_string());
    let created = t["date_created"].as_str().unwrap();
    assert_eq!(
        created.parse::<i64>().unwrap(),
        env.sim.task(&id).unwrap().date_created_ms()
    );
    assert!(t["date_updated"].is_string());
    assert_eq!(t["date_closed"], Value::Null);
    assert_eq!(t["tags"][0]["name"], "bug");
    assert!(t["tags"][0]["tag_fg"].is_string() && t["tags"][0]["creator"].is_i64());
    assert_eq!(t["assignees"][0]["id"], 81000002);
    assert_eq!(t["assignees"][0]["email"], "alice@example.com");
    assert_eq!(t["url"], format!("https://app.clickup.com/t/{id}"));
    assert_eq!(t["list"]["id"], LIST);
    assert_eq!(t["team_id"], TEAM);
    assert_eq!(t["custom_fields"][0]["name"], "ADO Link");
    assert!(
        t["custom_fields"][0].get("value").is_none(),
        "unset field has no value"
    );
    let (_, t) = env
        .get(&format!("/task/{id}?include_markdown_description=true"))
        .await;
    assert_eq!(t["markdown_description"], "# Title\n\nSome *text*");
}

#[tokio::test]
async fn create_task_validates_like_clickup() {
    let env = Env::new().await;
    let path = format!("/list/{LIST}/task");
    let (s, v) = env.post(&path, json!({"description": "no name"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["err"].is_string() && v["ECODE"].is_string());
    let (s, _) = env
        .post(&path, json!({"name": "x", "status": "doing"}))
        .await;
    assert_eq!(s, 400, "a status the List does not have");
    let (s, _) = env
        .post(&path, json!({"name": "x", "status": "In Progress"}))
        .await;
    assert_eq!(s, 400, "status names are case-sensitive");
    let (s, _) = env.post(&path, json!({"name": "x", "priority": 5})).await;
    assert_eq!(s, 400);
    let (s, v) = env
        .post(&path, json!({"name": "x", "priority": null}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["priority"], Value::Null);
    let (s, _) = env.post("/list/424242/task", json!({"name": "x"})).await;
    assert_eq!(s, 404);
    assert_eq!(env.sim.tasks().len(), 1, "refused creates stored nothing");
}

#[tokio::test]
async fn create_task_fields_markdown_wins_due_parent_tags_assignees_custom_fields() {
    let mut opts = ClickUpSimOptions::default();
    opts.lists.push(SimList::new("901200", "Other"));
    let env = Env::with(opts).await;
    let path = format!("/list/{LIST}/task");
    let due = 1_767_225_600_000i64 + 15 * 3_600_000; // 2026-01-01 15:00 UTC
    let (s, parent) = env.post(&path, json!({"name": "parent"})).await;
    assert_eq!(s, 200);
    let parent_id = parent["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            &path,
            json!({
                "name": "child",
                "description": "plain",
                "markdown_content": "**md**",
                "status": "in progress",
                "priority": 1,
                "due_date": due,
                "due_date_time": true,
                "parent": parent_id,
                "tags": ["alpha", "beta"],
                "assignees": [81000002, 81000003],
                "custom_fields": [{"id": ADO_LINK_FIELD_ID, "value": "https://dev.azure.com/o/p/_workitems/edit/7"}],
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["markdown_description"], "**md**",
        "create answers with markdown"
    );
    assert_eq!(v["description"], "md");
    assert_eq!(v["status"]["status"], "in progress");
    assert_eq!(v["status"]["type"], "custom");
    assert_eq!(v["priority"]["id"], "1");
    assert_eq!(v["priority"]["priority"], "urgent");
    assert_eq!(v["due_date"], due.to_string());
    assert_eq!(v["parent"], json!(parent_id));
    assert_eq!(v["top_level_parent"], json!(parent_id));
    let tags: Vec<&str> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["alpha", "beta"]);
    let ass: Vec<i64> = v["assignees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ass, [81000002, 81000003]);
    assert_eq!(
        v["custom_fields"][0]["value"],
        "https://dev.azure.com/o/p/_workitems/edit/7"
    );
    let stored = env.sim.task(v["id"].as_str().unwrap()).unwrap();
    assert_eq!(stored.markdown(), "**md**");
    assert_eq!(stored.due_ms(), Some(due));
    assert!(stored.due_has_time());

    // A date-only due date snaps to 04:00 in the Workspace timezone (UTC here).
    let (_, v) = env
        .post(
            &path,
            json!({"name": "dateonly", "due_date": due, "due_date_time": false}),
        )
        .await;
    assert_eq!(
        v["due_date"],
        (1_767_225_600_000i64 + 4 * 3_600_000).to_string()
    );

    // The parent must be in the same List.
    let (s, _) = env
        .post(
            "/list/901200/task",
            json!({"name": "stray", "parent": parent_id}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = env
        .post(
            &path,
            json!({"name": "bad field", "custom_fields": [{"id": "nope", "value": "x"}]}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn update_task_ignores_tags_and_custom_fields_and_uses_assignee_add_rem() {
    let env = Env::new().await;
    let id = env.create_with(SimTaskInput {
        name: "t".into(),
        tags: vec!["keep".into()],
        assignees: vec![81000002],
        ..Default::default()
    });
    let before = updated(&env, &id);
    let (s, v) = env
        .put(
            &format!("/task/{id}"),
            json!({
                "name": "renamed",
                "markdown_content": "new *body*",
                "status": "review",
                "priority": 4,
                "tags": ["ignored"],
                "custom_fields": [{"id": ADO_LINK_FIELD_ID, "value": "https://ignored.example"}],
                "assignees": {"add": [81000003], "rem": [81000002]},
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["markdown_description"], "new *body*");
    assert_eq!(v["status"]["status"], "review");
    assert_eq!(v["priority"]["priority"], "low");
    let t = env.sim.task(&id).unwrap();
    assert_eq!(
        t.tags(),
        ["keep"],
        "tags in the Update body are silently ignored"
    );
    assert_eq!(t.custom_field(ADO_LINK_FIELD_ID), None, "custom fields too");
    assert_eq!(t.assignee_ids(), [81000003]);
    assert!(t.date_updated_ms() > before);
    assert_eq!(v["date_updated"], t.date_updated_ms().to_string());

    let (s, _) = env
        .put(
            &format!("/task/{id}"),
            json!({"assignees": {"add": [81000004]}}),
        )
        .await;
    assert_eq!(s, 400, "assignees needs both add and rem");
    let (s, _) = env
        .put(&format!("/task/{id}"), json!({"assignees": [81000004]}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = env
        .put(&format!("/task/{id}"), json!({"status": "nope"}))
        .await;
    assert_eq!(s, 400);
    let (s, v) = env
        .put(&format!("/task/{id}"), json!({"priority": null}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["priority"], Value::Null);
    let (s, v) = env
        .put(&format!("/task/{id}"), json!({"status": "complete"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["status"]["type"], "closed");
    assert_eq!(v["date_closed"], v["date_updated"]);
    assert_eq!(v["date_done"], v["date_updated"]);
    let (_, v) = env
        .put(&format!("/task/{id}"), json!({"archived": true}))
        .await;
    assert_eq!(v["archived"], true);
    assert!(env.sim.task(&id).unwrap().archived());
}

#[tokio::test]
async fn update_parent_cannot_be_null_but_can_move_within_the_list() {
    let env = Env::new().await;
    let p1 = env.create("p1");
    let p2 = env.create("p2");
    let c = env.create_with(SimTaskInput {
        name: "c".into(),
        parent: Some(p1.clone()),
        ..Default::default()
    });
    let (s, _) = env
        .put(&format!("/task/{c}"), json!({"parent": null}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(env.sim.task(&c).unwrap().parent(), Some(p1.as_str()));
    let (s, v) = env.put(&format!("/task/{c}"), json!({"parent": p2})).await;
    assert_eq!(s, 200);
    assert_eq!(v["parent"], json!(p2));
    let (_, v) = env.get(&format!("/task/{p2}?include_subtasks=true")).await;
    assert_eq!(v["subtasks"][0]["id"], json!(c));
    let (_, v) = env.get(&format!("/task/{p2}")).await;
    assert!(v.get("subtasks").is_none(), "subtasks only when asked");
    let (s, _) = env.put(&format!("/task/{p2}"), json!({"parent": c})).await;
    assert_eq!(s, 400, "a cycle is refused");
    // The UI can turn a subtask into a task.
    env.sim
        .ui_edit(
            &c,
            SimTaskEdit {
                parent: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.sim.task(&c).unwrap().parent(), None);
}

#[tokio::test]
async fn delete_is_204_and_later_reads_are_404_item_015() {
    let env = Env::new().await;
    let id = env.create("doomed");
    let sub = env.create_with(SimTaskInput {
        name: "sub".into(),
        parent: Some(id.clone()),
        ..Default::default()
    });
    let (s, v) = env.delete(&format!("/task/{id}")).await;
    assert_eq!(s, 204);
    assert_eq!(v, Value::Null, "204 has no body");
    let (s, v) = env.get(&format!("/task/{id}")).await;
    assert_eq!(s, 404);
    assert_eq!(v, json!({"err": "Task not found", "ECODE": "ITEM_015"}));
    let (s, _) = env.get(&format!("/task/{sub}")).await;
    assert_eq!(s, 404, "subtasks go with their parent");
    let (s, _) = env.put(&format!("/task/{id}"), json!({"name": "x"})).await;
    assert_eq!(s, 404);
    let (s, _) = env.delete(&format!("/task/{id}")).await;
    assert_eq!(s, 404);
    assert!(env.sim.task(&id).is_none());
    assert!(env.sim.tasks().is_empty());
}

// ---------------------------------------------------------------- tags, fields, comments

#[tokio::test]
async fn tag_endpoints_answer_empty_object_and_bump_date_updated() {
    let env = Env::new().await;
    let id = env.create("t");
    let u0 = updated(&env, &id);
    let (s, v) = env
        .post(&format!("/task/{id}/tag/needs%20review"), json!(null))
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let u1 = updated(&env, &id);
    assert!(u1 > u0);
    assert_eq!(env.sim.task(&id).unwrap().tags(), ["needs review"]);
    let (s, v) = env.delete(&format!("/task/{id}/tag/needs%20review")).await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    assert!(updated(&env, &id) > u1);
    assert!(env.sim.task(&id).unwrap().tags().is_empty());
}

#[tokio::test]
async fn custom_field_endpoint_sets_value_bumps_date_and_refuses_foreign_fields() {
    let env = Env::new().await;
    let id = env.create("t");
    let u0 = updated(&env, &id);
    let link = "https://dev.azure.com/org/proj/_workitems/edit/42";
    let (s, v) = env
        .post(
            &format!("/task/{id}/field/{ADO_LINK_FIELD_ID}"),
            json!({"value": link}),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    assert!(updated(&env, &id) > u0);
    let (_, t) = env.get(&format!("/task/{id}")).await;
    assert_eq!(
        t["custom_fields"][0]["value"], link,
        "a url field's value is the string"
    );
    assert_eq!(t["custom_fields"][0]["type"], "url");
    let (s, v) = env
        .post(
            &format!("/task/{id}/field/00000000-0000-0000-0000-000000000000"),
            json!({"value": "x"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["err"].is_string() && v["ECODE"].is_string() && v["message"].is_string());
    let (s, _) = env
        .post(
            &format!("/task/{id}/field/{ADO_LINK_FIELD_ID}"),
            json!({"value": 5}),
        )
        .await;
    assert_eq!(s, 400, "a url field takes a string");
    let (s, _) = env
        .delete(&format!("/task/{id}/field/{ADO_LINK_FIELD_ID}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        env.sim.task(&id).unwrap().custom_field(ADO_LINK_FIELD_ID),
        None
    );
}

#[tokio::test]
async fn comments_newest_first_25_per_page_with_start_and_start_id() {
    let env = Env::new().await;
    let id = env.create("t");
    let u0 = updated(&env, &id);
    let (s, v) = env
        .post(
            &format!("/task/{id}/comment"),
            json!({"comment_text": "first", "notify_all": false}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(v["id"].is_string() && v["hist_id"].is_string());
    assert!(
        v["date"].is_i64(),
        "date is an integer in the create answer"
    );
    assert!(updated(&env, &id) > u0, "a comment bumps date_updated");
    for i in 1..30 {
        env.sim.ui_comment(&id, &format!("c{i}")).unwrap();
    }
    let (_, p1) = env.get(&format!("/task/{id}/comment")).await;
    let p1 = p1["comments"].as_array().unwrap().clone();
    assert_eq!(p1.len(), 25);
    assert_eq!(p1[0]["comment_text"], "c29");
    assert!(p1[0]["date"].is_string(), "date is a string in the list");
    assert_eq!(p1[0]["comment"][0]["text"], "c29");
    let last = &p1[24];
    assert_eq!(last["comment_text"], "c5");
    let (_, p2) = env
        .get(&format!(
            "/task/{id}/comment?start={}&start_id={}",
            last["date"].as_str().unwrap(),
            last["id"].as_str().unwrap()
        ))
        .await;
    let texts: Vec<&str> = p2["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["comment_text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["c4", "c3", "c2", "c1", "first"]);
    assert_eq!(env.sim.comments(&id).len(), 30);
}

// ---------------------------------------------------------------- hierarchy

#[tokio::test]
async fn list_fields_team_and_user() {
    let env = Env::new().await;
    let (s, l) = env.get(&format!("/list/{LIST}")).await;
    assert_eq!(s, 200);
    let st: Vec<(&str, &str)> = l["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["status"].as_str().unwrap(), s["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        st,
        [
            ("to do", "open"),
            ("in progress", "custom"),
            ("review", "custom"),
            ("complete", "closed")
        ]
    );
    assert!(l["statuses"][0]["orderindex"].is_i64());
    let (_, f) = env.get(&format!("/list/{LIST}/field")).await;
    assert_eq!(f["fields"][0]["name"], "ADO Link");
    assert_eq!(f["fields"][0]["type"], "url");
    let (_, t) = env.get("/team").await;
    assert_eq!(t["teams"][0]["id"], TEAM);
    let emails: Vec<&str> = t["teams"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 4);
    assert!(emails.contains(&"alice@example.com"));
    let (_, u) = env.get("/user").await;
    assert_eq!(u["user"]["email"], "sync-bot@example.com");
    assert_eq!(u["user"]["timezone"], "Etc/UTC");
    assert_eq!(
        env.sim.status_type(LIST, "complete"),
        Some(ClickUpStatusType::Closed)
    );
}

// ---------------------------------------------------------------- date_updated

#[tokio::test]
async fn every_change_bumps_date_updated_strictly_even_with_a_frozen_clock() {
    let env = Env::new().await;
    env.sim
        .clock()
        .freeze(chrono::DateTime::from_timestamp_millis(1_800_000_000_000));
    let id = env.create("t");
    let mut last = updated(&env, &id);
    assert_eq!(last, 1_800_000_000_000);
    let edits = [
        SimTaskEdit {
            name: Some("n".into()),
            ..Default::default()
        },
        SimTaskEdit {
            tags_add: vec!["x".into()],
            ..Default::default()
        },
        SimTaskEdit {
            status: Some("review".into()),
            ..Default::default()
        },
        SimTaskEdit {
            priority: Some(Some(3)),
            ..Default::default()
        },
        SimTaskEdit {
            due_ms: Some(Some(1_800_000_000_000)),
            due_time: Some(true),
            ..Default::default()
        },
        SimTaskEdit {
            assignees_add: vec![81000002],
            ..Default::default()
        },
        SimTaskEdit {
            custom_fields: [(ADO_LINK_FIELD_ID.to_string(), json!("https://a.example"))].into(),
            ..Default::default()
        },
        SimTaskEdit {
            markdown: Some("body".into()),
            ..Default::default()
        },
    ];
    for e in edits {
        env.sim.ui_edit(&id, e.clone()).unwrap();
        let now = updated(&env, &id);
        assert!(now > last, "edit {e:?} must bump date_updated");
        last = now;
    }
    env.sim.ui_comment(&id, "hello").unwrap();
    assert!(updated(&env, &id) > last);
    last = updated(&env, &id);
    // A no-op changes nothing.
    env.sim
        .ui_edit(
            &id,
            SimTaskEdit {
                name: Some("n".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated(&env, &id), last);
    let err = env
        .sim
        .ui_edit(
            &id,
            SimTaskEdit {
                status: Some("bogus".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains(&id), "{err}");
}

#[tokio::test]
async fn ui_list_move_keeps_or_resets_status() {
    let mut opts = ClickUpSimOptions::default();
    let mut other = SimList::new("901200", "Other");
    other.statuses.retain(|s| s.status != "review");
    opts.lists.push(other);
    let env = Env::with(opts).await;
    let id = env.create_with(SimTaskInput {
        name: "m".into(),
        status: Some("review".into()),
        ..Default::default()
    });
    env.sim
        .ui_edit(
            &id,
            SimTaskEdit {
                list_id: Some("901200".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let t = env.sim.task(&id).unwrap();
    assert_eq!(t.list_id(), "901200");
    assert_eq!(
        t.status(),
        "to do",
        "a status the new List lacks falls back to its first"
    );
    let (_, v) = env.get("/list/901200/task").await;
    assert_eq!(ids(&v), vec![id]);
}

// ---------------------------------------------------------------- rate limit

#[tokio::test]
async fn rate_limit_per_token_with_headers_and_429() {
    let env = Env::with(ClickUpSimOptions {
        rate_limit: RateLimit {
            limit: 3,
            window: Duration::from_millis(1500),
        },
        oauth_token: Some("oauth_x".into()),
        ..Default::default()
    })
    .await;
    let mut remaining = Vec::new();
    let mut reset = 0;
    for _ in 0..3 {
        let r = env
            .http
            .get(env.url("/user"))
            .header("Authorization", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        remaining.push(
            r.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        reset = r.headers()["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap();
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let now_s = chrono::Utc::now().timestamp();
    assert!(
        // A 1.5 s window rounded up to whole seconds ends at most 3 s after this second.
        reset >= now_s && reset <= now_s + 3,
        "reset {reset} is unix seconds, now {now_s}"
    );
    let r = env
        .http
        .get(env.url("/user"))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"err": "Rate limit reached", "ECODE": "APP_002"})
    );
    // Another token has its own budget.
    let r = env
        .http
        .get(env.url("/user"))
        .header("Authorization", "Bearer oauth_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Waiting until X-RateLimit-Reset (whole seconds) is always enough.
    let wait_ms = reset * 1000 - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait_ms.max(0) as u64 + 20)).await;
    let r = env
        .http
        .get(env.url("/user"))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "2");
    // Changing the limit at run time.
    env.sim.set_rate_limit(RateLimit {
        limit: 1,
        window: Duration::from_secs(60),
    });
    let (s, _) = env.get("/user").await;
    assert_eq!(s, 200);
    let (s, _) = env.get("/user").await;
    assert_eq!(s, 429);
}

// ---------------------------------------------------------------- webhooks

struct Hook {
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// A local receiver that records deliveries; answers with `status`.
async fn receiver(status: u16) -> (String, tokio::sync::mpsc::UnboundedReceiver<Hook>) {
    use axum::http::HeaderMap;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let mut h = reqwest::header::HeaderMap::new();
                for (k, v) in headers.iter() {
                    h.insert(k.clone(), v.clone());
                }
                let _ = tx.send(Hook {
                    headers: h,
                    body: body.to_vec(),
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

async fn next_hook(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery")
        .unwrap()
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

#[tokio::test]
async fn webhooks_deliver_signed_task_events() {
    let env = Env::new().await;
    let (endpoint, mut rx) = receiver(200).await;
    let (s, v) = env
        .post(
            &format!("/team/{TEAM}/webhook"),
            json!({"endpoint": endpoint, "events": "*"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let secret = v["webhook"]["secret"].as_str().unwrap().to_string();
    let wid = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["webhook"]["id"], json!(wid));
    assert_eq!(
        v["webhook"]["health"],
        json!({"status": "active", "fail_count": 0})
    );
    assert!(secret.len() >= 32);

    let id = env.create("hooked");
    let h = next_hook(&mut rx).await;
    let sig = h.headers["x-signature"].to_str().unwrap().to_string();
    assert_eq!(
        sig,
        hmac_hex(&secret, &h.body),
        "X-Signature is hex HMAC-SHA256 of the raw body"
    );
    assert_eq!(sig, sig.to_lowercase());
    let p: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(p["event"], "taskCreated");
    assert_eq!(p["task_id"], json!(id));
    assert_eq!(p["webhook_id"], json!(wid));
    assert!(p["history_items"].as_array().is_some_and(|h| !h.is_empty()));
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(
        p["event"], "taskStatusUpdated",
        "taskCreated also sends taskStatusUpdated"
    );

    // An API write and a UI edit both fire.
    let (s, _) = env
        .put(&format!("/task/{id}"), json!({"name": "renamed"}))
        .await;
    assert_eq!(s, 200);
    let h = next_hook(&mut rx).await;
    assert_eq!(
        h.headers["x-signature"].to_str().unwrap(),
        hmac_hex(&secret, &h.body)
    );
    let p: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(p["event"], "taskUpdated");
    assert_eq!(p["history_items"][0]["field"], "name");
    assert_eq!(p["history_items"][0]["after"], "renamed");
    env.post(&format!("/task/{id}/tag/x"), json!({})).await;
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(p["event"], "taskTagUpdated");
    env.sim.ui_comment(&id, "hi").unwrap();
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(p["event"], "taskCommentPosted");
    env.sim.ui_delete(&id).unwrap();
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(p["event"], "taskDeleted");
    assert_eq!(p["task_id"], json!(id));

    let (_, list) = env.get(&format!("/team/{TEAM}/webhook")).await;
    assert_eq!(list["webhooks"][0]["id"], json!(wid));
    let (s, v) = env.delete(&format!("/webhook/{wid}")).await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    env.create("after delete");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "a deleted webhook gets nothing"
    );
}

#[tokio::test]
async fn webhook_event_filter_and_410_suspends() {
    let env = Env::new().await;
    let (endpoint, mut rx) = receiver(200).await;
    env.post(
        &format!("/team/{TEAM}/webhook"),
        json!({"endpoint": endpoint, "events": ["taskStatusUpdated"]}),
    )
    .await;
    let id = env.create("t");
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(
        p["event"], "taskStatusUpdated",
        "taskCreated was not subscribed"
    );
    env.sim
        .ui_edit(
            &id,
            SimTaskEdit {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap();
    env.sim
        .ui_edit(
            &id,
            SimTaskEdit {
                status: Some("review".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let p: Value = serde_json::from_slice(&next_hook(&mut rx).await.body).unwrap();
    assert_eq!(p["event"], "taskStatusUpdated");
    assert_eq!(p["history_items"][0]["after"]["status"], "review");

    let (gone, mut gone_rx) = receiver(410).await;
    env.post(
        &format!("/team/{TEAM}/webhook"),
        json!({"endpoint": gone, "events": "*"}),
    )
    .await;
    env.create("u");
    next_hook(&mut gone_rx).await;
    let mut suspended = false;
    for _ in 0..50 {
        if env
            .sim
            .webhooks()
            .iter()
            .any(|(_, e, s)| *e == gone && s == "suspended")
        {
            suspended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(suspended, "a 410 answer suspends the webhook");
}

// ---------------------------------------------------------------- faults, log, clock

#[tokio::test]
async fn faults_and_request_log() {
    let env = Env::new().await;
    let id = env.create("t");
    env.sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/task/".into(),
        fault: FaultKind::Status { status: 503 },
        times: Some(1),
        probability: None,
    });
    let r = env
        .http
        .get(env.url(&format!("/task/{id}")))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let (s, _) = env.get(&format!("/task/{id}")).await;
    assert_eq!(s, 200, "the fault was used up");
    env.sim.faults().add(FaultRule {
        method: String::new(),
        path_contains: "/team".into(),
        fault: FaultKind::Status { status: 429 },
        times: Some(1),
        probability: None,
    });
    let r = env
        .http
        .get(env.url("/team"))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(r.json::<Value>().await.unwrap()["ECODE"], "APP_002");
    env.sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/user".into(),
        fault: FaultKind::Truncate,
        times: Some(1),
        probability: None,
    });
    let r = env
        .http
        .get(env.url("/user"))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    env.sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/user".into(),
        fault: FaultKind::Drop,
        times: Some(1),
        probability: None,
    });
    let r = env
        .http
        .get(env.url("/user"))
        .header("Authorization", TOKEN)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "a dropped connection is an error for the client");
    assert_eq!(env.sim.log().count("GET", &format!("/task/{id}")), 2);
    assert_eq!(env.sim.log().count("GET", "/user"), 2);
    let e = env.sim.log().entries();
    assert_eq!(e[0].status, 503);
    assert_eq!(e[1].status, 200);
}

#[tokio::test]
async fn log_keeps_the_query_string() {
    let env = Env::new().await;
    env.get(&format!(
        "/team/{TEAM}/task?date_updated_gt=5&subtasks=true"
    ))
    .await;
    let e = env.sim.log().entries();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, format!("/api/v2/team/{TEAM}/task"));
    assert_eq!(e[0].query, "date_updated_gt=5&subtasks=true");
}

#[tokio::test]
async fn clock_offset_shows_in_dates() {
    let env = Env::new().await;
    env.sim.clock().set_offset(chrono::Duration::hours(-3));
    let id = env.create("skewed");
    let real = chrono::Utc::now().timestamp_millis();
    let d = env.sim.task(&id).unwrap().date_created_ms();
    assert!(
        (real - 3 * 3_600_000 - d).abs() < 5_000,
        "created {d}, real {real}"
    );
}

// ---------------------------------------------------------------- control API

#[tokio::test]
async fn control_api_seed_edit_state_faults_clock_ratelimit_reset() {
    let env = Env::new().await;
    let base = env.sim.base_url();
    let c = &env.http;
    let seed = json!({
        "tasks": [
            {"id": "86seed001", "list_id": LIST, "name": "seeded", "markdown": "hi", "tags": ["a"], "date_updated_ms": 1_700_000_000_000i64},
            {"list_id": LIST, "name": "child", "parent": "86seed001", "comments": ["old note"]}
        ]
    });
    let r: Value = c
        .post(format!("{base}/__sim/seed"))
        .json(&seed)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ids"][0], "86seed001");
    let t = env.sim.task("86seed001").unwrap();
    assert_eq!(t.date_updated_ms(), 1_700_000_000_000);
    assert_eq!(t.tags(), ["a"]);
    let r = c
        .post(format!("{base}/__sim/edit"))
        .json(&json!({"id": "86seed001", "status": "review", "priority": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.sim.task("86seed001").unwrap().status(), "review");
    assert_eq!(env.sim.task("86seed001").unwrap().priority(), Some(2));
    let r = c
        .post(format!("{base}/__sim/edit"))
        .json(&json!({"id": "86seed001", "status": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r: Value = c
        .post(format!("{base}/__sim/create"))
        .json(&json!({"list_id": LIST, "name": "made"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made = r["id"].as_str().unwrap().to_string();
    c.post(format!("{base}/__sim/comment"))
        .json(&json!({"id": made, "text": "note"}))
        .send()
        .await
        .unwrap();
    assert_eq!(env.sim.comments(&made), ["note"]);
    c.post(format!("{base}/__sim/delete"))
        .json(&json!({"id": made}))
        .send()
        .await
        .unwrap();
    assert!(env.sim.task(&made).is_none());
    let st: Value = c
        .get(format!("{base}/__sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(st["lists"][0]["id"], LIST);

    c.post(format!("{base}/__sim/faults"))
        .json(&json!({"method": "GET", "path_contains": "/user", "fault": {"kind": "status", "status": 500}, "times": 1}))
        .send().await.unwrap();
    let (s, _) = env.get("/user").await;
    assert_eq!(s, 500);
    c.post(format!("{base}/__sim/faults"))
        .json(&json!({"path_contains": "/user", "fault": {"kind": "status", "status": 500}}))
        .send()
        .await
        .unwrap();
    c.delete(format!("{base}/__sim/faults"))
        .send()
        .await
        .unwrap();
    let (s, _) = env.get("/user").await;
    assert_eq!(s, 200);
    let log: Value = c
        .get(format!("{base}/__sim/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reqs = log["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "control calls are not logged");
    assert_eq!(reqs[0]["status"], 500);

    let r: Value = c
        .post(format!("{base}/__sim/clock"))
        .json(&json!({"freeze": 1_900_000_000_000i64}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["now_ms"], 1_900_000_000_000i64);
    let id = env.create("frozen");
    assert_eq!(
        env.sim.task(&id).unwrap().date_created_ms(),
        1_900_000_000_000
    );
    c.post(format!("{base}/__sim/clock"))
        .json(&json!({"freeze": null}))
        .send()
        .await
        .unwrap();

    c.post(format!("{base}/__sim/ratelimit"))
        .json(&json!({"limit": 1, "window_ms": 60000}))
        .send()
        .await
        .unwrap();
    assert_eq!(env.get("/user").await.0, 200);
    assert_eq!(env.get("/user").await.0, 429);

    c.post(format!("{base}/__sim/reset")).send().await.unwrap();
    assert!(env.sim.tasks().is_empty());
    assert!(env.sim.log().is_empty());
    assert_eq!(
        env.get("/user").await.0,
        200,
        "reset clears rate-limit windows"
    );
}

#[tokio::test]
async fn seed_file_shape_round_trips_through_serde() {
    let seed = ClickUpSeed {
        tasks: vec![SeedTask {
            list_id: LIST.into(),
            input: SimTaskInput {
                name: "x".into(),
                priority: Some(1),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = serde_json::to_string(&seed).unwrap();
    let back: ClickUpSeed = serde_json::from_str(&text).unwrap();
    assert_eq!(back, seed);
    let env = Env::new().await;
    env.sim.seed(back).unwrap();
    assert_eq!(env.sim.tasks()[0].priority(), Some(1));
    let bad = ClickUpSeed {
        tasks: vec![SeedTask {
            list_id: "nope".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(env.sim.seed(bad).is_err());
}

#[tokio::test]
async fn shutdown_frees_the_port() {
    let env = Env::new().await;
    let base = env.sim.base_url();
    env.sim.shutdown().await;
    assert!(env
        .http
        .get(format!("{base}/api/v2/user"))
        .send()
        .await
        .is_err());
}

/// Scale check: 100k tasks, one filtered team query. Run with
/// `cargo test --release --test sim_clickup -- --ignored --nocapture` to see the timing
/// (not asserted: benchmarks are not tests).
#[tokio::test]
#[ignore]
async fn hundred_thousand_tasks_filtered_query() {
    let env = Env::new().await;
    let t0 = std::time::Instant::now();
    let seed = ClickUpSeed {
        tasks: (0..100_000i64)
            .map(|i| SeedTask {
                list_id: LIST.into(),
                input: SimTaskInput {
                    name: format!("t{i}"),
                    ..Default::default()
                },
                date_created_ms: Some(1_600_000_000_000 + i),
                date_updated_ms: Some(1_600_000_000_000 + i),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    env.sim.seed(seed).unwrap();
    eprintln!("seeded 100k in {:?}", t0.elapsed());
    let t1 = std::time::Instant::now();
    let (s, v) = env
        .get(&format!(
            "/team/{TEAM}/task?date_updated_gt={}&subtasks=true&include_closed=true&include_markdown_description=true&order_by=updated&reverse=true",
            1_600_000_000_000i64 + 99_850
        ))
        .await;
    eprintln!("filtered team query in {:?}", t1.elapsed());
    assert_eq!(s, 200);
    assert_eq!(v["tasks"].as_array().unwrap().len(), 100);
    assert_eq!(v["last_page"], false);
    assert_eq!(v["tasks"][0]["name"], "t99999");
    let t2 = std::time::Instant::now();
    let (_, v) = env.get(&format!("/team/{TEAM}/task?page=999")).await;
    eprintln!("last page of the unfiltered query in {:?}", t2.elapsed());
    assert_eq!(v["last_page"], true);
}

#[tokio::test]
async fn missing_tasks_can_answer_team_not_authorized_like_the_real_api_often_does() {
    let env = Env::with(ClickUpSimOptions {
        missing_task_as_401: true,
        ..Default::default()
    })
    .await;
    let id = env.create("t");
    env.sim.ui_delete(&id).unwrap();
    let (s, v) = env.get(&format!("/task/{id}")).await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"err": "Team not authorized", "ECODE": "OAUTH_027"})
    );
    let (s, _) = env.get("/list/999/task").await;
    assert_eq!(s, 404, "only task lookups change");
}

#[tokio::test]
async fn every_answer_carries_the_rate_limit_headers_errors_included() {
    let env = Env::new().await;
    let cases: [(Option<&str>, String, u16, &str); 6] = [
        (Some(TOKEN), "/user".into(), 200, "99"),
        (Some(TOKEN), "/task/nope0".into(), 404, "98"),
        (Some(TOKEN), format!("/list/{LIST}/task"), 200, "97"),
        (Some(TOKEN), "/team/1234/task".into(), 401, "96"),
        (Some("pk_wrong"), "/user".into(), 401, "99"),
        (None, "/user".into(), 401, "99"),
    ];
    for (auth, path, status, remaining) in cases {
        let mut rb = env.http.get(env.url(&path));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let r = rb.send().await.unwrap();
        let what = format!("{auth:?} {path}");
        assert_eq!(r.status().as_u16(), status, "{what}");
        let h = r.headers();
        assert_eq!(h["x-ratelimit-limit"], "100", "{what}");
        assert_eq!(h["x-ratelimit-remaining"], remaining, "{what}");
        let reset: i64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(reset > now && reset <= now + 61, "{what}: reset {reset}");
    }
}
