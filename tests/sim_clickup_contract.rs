//! Contract tests: the simulator's answers carry every key path of the official OpenAPI
//! examples (`../shared/api/clickup/clickup-api-v2-reference.json`) with the same JSON type.
//! `null` in an example means "any type"; a field the spec documents as nullable may be
//! null in the simulator's answer. The few example paths deliberately left out are listed
//! with their reasons next to each test.
mod common;

use std::collections::BTreeMap;

use ado_clickup_sync::sim::clickup::{
    self, ClickUpSim, ClickUpSimOptions, SimCustomField, SimList, SimListStatus, SimTaskInput,
};
use serde_json::{json, Value};

const TOKEN: &str = "pk_sim_token";
const TEAM: &str = "9011";
const LIST: &str = "901100";

struct Spec {
    doc: Value,
}

impl Spec {
    fn load(test: &str) -> Option<Spec> {
        let dir = common::shared_dir(test)?;
        let path = dir.join("api/clickup/clickup-api-v2-reference.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Some(Spec {
            doc: serde_json::from_str(&text).expect("the OpenAPI file is JSON"),
        })
    }

    fn response(&self, path: &str, method: &str) -> &Value {
        let responses = &self.doc["paths"][path][method]["responses"];
        let ok = ["200", "201", "204"]
            .iter()
            .map(|c| &responses[*c])
            .find(|r| !r.is_null())
            .unwrap_or_else(|| panic!("{method} {path}: no 2xx response in the spec"));
        &ok["content"]["application/json"]
    }

    /// The response example of an operation (on the media type or on its schema).
    fn example(&self, path: &str, method: &str) -> Value {
        let media = self.response(path, method);
        let ex = if media["example"].is_null() {
            &media["schema"]["example"]
        } else {
            &media["example"]
        };
        assert!(
            ex.is_object(),
            "{method} {path}: the spec has no response example"
        );
        ex.clone()
    }

    fn schema(&self, path: &str, method: &str) -> &Value {
        &self.response(path, method)["schema"]
    }

    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(r) = node.get("$ref").and_then(Value::as_str) else {
                return node;
            };
            let pointer = r
                .trim_start_matches('#')
                .replace("%7B", "{")
                .replace("%7D", "}");
            node = self.doc.pointer(&pointer).unwrap_or(&Value::Null);
        }
        node
    }

    /// Whether the schema documents the value at `path` (key-path syntax) as nullable.
    fn nullable(&self, schema: &Value, path: &str) -> bool {
        let mut node = self.resolve(schema);
        for seg in path.split('.') {
            let (name, arrays) = match seg.find("[]") {
                Some(i) => (&seg[..i], seg[i..].matches("[]").count()),
                None => (seg, 0),
            };
            if !name.is_empty() {
                node = self.resolve(&node["properties"][name]);
            }
            for _ in 0..arrays {
                node = self.resolve(&node["items"]);
            }
            if node.is_null() {
                return false;
            }
        }
        node["nullable"] == json!(true)
            || node["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "null"))
    }
}

/// Compares key paths. `skip`: example subtrees left out entirely; `type_only`: paths whose
/// presence is checked but whose type is not. Returns the number of paths checked.
fn assert_contract(
    spec: &Spec,
    what: &str,
    example: &Value,
    actual: &Value,
    schemas: &[(&str, &Value)],
    skip: &[&str],
    type_only: &[&str],
) -> usize {
    let want = common::key_paths(example);
    let got = common::key_paths(actual);
    let under = |p: &str, prefix: &str| {
        p == prefix || p.starts_with(&format!("{prefix}.")) || p.starts_with(&format!("{prefix}[]"))
    };
    // Descendants of a null or mixed-type example value are not comparable.
    let loose: Vec<&String> = want
        .iter()
        .filter(|(_, t)| **t == "null" || **t == "mixed")
        .map(|(p, _)| p)
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, ex_type) in &want {
        if skip.iter().any(|s| under(path, s)) || loose.iter().any(|l| path != *l && under(path, l))
        {
            continue;
        }
        checked += 1;
        let Some(got_type) = got.get(path) else {
            failures.push(format!("missing {path} ({ex_type})"));
            continue;
        };
        if *ex_type == "null" || *ex_type == "mixed" || got_type == ex_type {
            continue;
        }
        if type_only.contains(&path.as_str()) {
            continue;
        }
        if *got_type == "null"
            && schemas.iter().any(|(prefix, s)| {
                path.strip_prefix(prefix)
                    .is_some_and(|rest| spec.nullable(s, rest.trim_start_matches('.')))
            })
        {
            continue;
        }
        failures.push(format!("{path}: example {ex_type}, simulator {got_type}"));
    }
    eprintln!("{what}: {checked} example key paths compared");
    assert!(
        failures.is_empty(),
        "{what}: the simulator's answer differs from the official example:\n  {}\nanswer: {actual}",
        failures.join("\n  ")
    );
    checked
}

/// Options whose List carries the custom field definitions of an example task, so that
/// `custom_fields[]` (with `type_config`) can be compared.
fn options_with_fields(example_task: &Value) -> ClickUpSimOptions {
    let mut opts = ClickUpSimOptions::default();
    let mut list = SimList::new(LIST, "Sprint Backlog");
    for f in example_task["custom_fields"].as_array().unwrap() {
        list.custom_fields.push(SimCustomField {
            id: f["id"].as_str().unwrap().into(),
            name: f["name"].as_str().unwrap().into(),
            type_: f["type"].as_str().unwrap().into(),
            type_config: f["type_config"].clone(),
            required: false,
        });
    }
    opts.lists = vec![list];
    opts
}

/// Field values as a person would set them: the example's value, with member ids for
/// people fields.
fn field_values(example_task: &Value) -> BTreeMap<String, Value> {
    example_task["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("value").is_some())
        .map(|f| {
            let v = match f["type"].as_str() {
                Some("users") => json!([81000002]),
                _ => f["value"].clone(),
            };
            (f["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

async fn get(sim: &ClickUpSim, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v2{path}", sim.base_url()))
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn post(sim: &ClickUpSim, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2{path}", sim.base_url()))
        .header("Authorization", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST {path}");
    r.json().await.unwrap()
}

fn full_task(fields: BTreeMap<String, Value>) -> SimTaskInput {
    SimTaskInput {
        name: "Fix login bug".into(),
        markdown: "Users are unable to log in when **SSO** is enabled.".into(),
        status: Some("in progress".into()),
        priority: Some(3),
        due_ms: Some(1_508_369_194_377),
        due_time: true,
        start_ms: Some(1_508_000_000_000),
        start_time: true,
        points: Some(3.0),
        time_estimate_ms: Some(8_640_000),
        assignees: vec![81000002],
        tags: vec!["bug".into()],
        custom_fields: fields,
        ..Default::default()
    }
}

/// Get Task. Left out: `dependencies[]` (task dependencies are not simulated; the
/// simulator always answers `[]`) and `attachments` (only tasks with attachments carry it,
/// and the simulator has none).
#[tokio::test]
async fn get_task_matches_official_example() {
    let Some(spec) = Spec::load("get_task_matches_official_example") else {
        return;
    };
    let example = spec.example("/v2/task/{task_id}", "get");
    let sim = clickup::start(options_with_fields(&example)).await.unwrap();
    let id = sim
        .ui_create(LIST, full_task(field_values(&example)))
        .unwrap();
    let actual = get(
        &sim,
        &format!("/task/{id}?include_markdown_description=true"),
    )
    .await;
    let n = assert_contract(
        &spec,
        "GetTask",
        &example,
        &actual,
        &[("", spec.schema("/v2/task/{task_id}", "get"))],
        &["dependencies", "attachments"],
        &[],
    );
    assert!(n > 80, "only {n} paths compared");
}

/// Get Filtered Team Tasks. Left out:
/// - `tasks[].checklists[]` (checklists are not simulated; always `[]`);
/// - `tasks[].locations[]` (tasks in several Lists are not simulated; always `[]`);
/// - the TYPE of `tasks[].priority`: this example's integer is stale (FACTS §7); the
///   simulator answers the object with a string id that the newer examples show;
/// - the TYPE of `tasks[].time_estimate`: this example has a number (1.2), the Get Task /
///   Get Tasks / Create Task / Update Task examples a string ("8640000"); the simulator
///   follows the majority (clients must accept both, FACTS §7).
#[tokio::test]
async fn filtered_team_tasks_match_official_example() {
    let Some(spec) = Spec::load("filtered_team_tasks_match_official_example") else {
        return;
    };
    let path = "/v2/team/{team_Id}/task";
    let example = spec.example(path, "get");
    let sim = clickup::start(options_with_fields(&example["tasks"][0]))
        .await
        .unwrap();
    let parent = sim.ui_create(LIST, full_task(BTreeMap::new())).unwrap();
    let mut child = full_task(BTreeMap::new());
    child.parent = Some(parent);
    child.status = Some("complete".into());
    sim.ui_create(LIST, child).unwrap();
    let actual = get(
        &sim,
        &format!(
            "/team/{TEAM}/task?subtasks=true&include_closed=true&include_markdown_description=true"
        ),
    )
    .await;
    assert_eq!(actual["tasks"].as_array().unwrap().len(), 2);
    let get_task_schema = spec.schema("/v2/task/{task_id}", "get");
    let n = assert_contract(
        &spec,
        "GetFilteredTeamTasks",
        &example,
        &actual,
        // This endpoint's task schema is the stale one; the Get Task schema documents the
        // same task object with its nullable fields.
        &[("", spec.schema(path, "get")), ("tasks[]", get_task_schema)],
        &["tasks[].checklists", "tasks[].locations"],
        &["tasks[].priority", "tasks[].time_estimate"],
    );
    assert!(n > 50, "only {n} paths compared");
}

/// Create Task: nothing left out.
#[tokio::test]
async fn create_task_matches_official_example() {
    let Some(spec) = Spec::load("create_task_matches_official_example") else {
        return;
    };
    let path = "/v2/list/{list_id}/task";
    let example = spec.example(path, "post");
    let sim = clickup::start(options_with_fields(&example)).await.unwrap();
    let fields: Vec<Value> = field_values(&example)
        .into_iter()
        .map(|(id, value)| json!({"id": id, "value": value}))
        .collect();
    let actual = post(
        &sim,
        &format!("/list/{LIST}/task"),
        json!({
            "name": "New Task Name",
            "markdown_content": "New Task Content",
            "assignees": [],
            "tags": [],
            "status": "to do",
            "priority": 3,
            "due_date": 1508369194377i64,
            "due_date_time": false,
            "time_estimate": 8640000,
            "points": 3,
            "notify_all": true,
            "parent": null,
            "custom_fields": fields,
        }),
    )
    .await;
    let n = assert_contract(
        &spec,
        "CreateTask",
        &example,
        &actual,
        &[("", spec.schema(path, "post"))],
        &[],
        &[],
    );
    assert!(n > 60, "only {n} paths compared");
}

/// Get List: nothing left out (the List is given its own colour status, priority and due
/// date, which the example shows).
#[tokio::test]
async fn get_list_matches_official_example() {
    let Some(spec) = Spec::load("get_list_matches_official_example") else {
        return;
    };
    let path = "/v2/list/{list_id}";
    let example = spec.example(path, "get");
    let mut opts = ClickUpSimOptions::default();
    let list = &mut opts.lists[0];
    list.content = "Updated List Content".into();
    list.list_status = Some(SimListStatus {
        status: "red".into(),
        color: "#e50000".into(),
        hide_label: true,
    });
    list.list_priority = Some(2);
    list.due_ms = Some(1_567_780_450_202);
    let sim = clickup::start(opts).await.unwrap();
    let actual = get(&sim, &format!("/list/{LIST}")).await;
    let n = assert_contract(
        &spec,
        "GetList",
        &example,
        &actual,
        &[("", spec.schema(path, "get"))],
        &[],
        &[],
    );
    assert!(n > 25, "only {n} paths compared");
}

/// Create Task Comment: nothing left out.
#[tokio::test]
async fn create_task_comment_matches_official_example() {
    let Some(spec) = Spec::load("create_task_comment_matches_official_example") else {
        return;
    };
    let path = "/v2/task/{task_id}/comment";
    let example = spec.example(path, "post");
    let sim = clickup::start(ClickUpSimOptions::default()).await.unwrap();
    let id = sim
        .ui_create(
            LIST,
            SimTaskInput {
                name: "t".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let actual = post(
        &sim,
        &format!("/task/{id}/comment"),
        json!({"comment_text": "Task comment content", "notify_all": true}),
    )
    .await;
    let n = assert_contract(
        &spec,
        "CreateTaskComment",
        &example,
        &actual,
        &[("", spec.schema(path, "post"))],
        &[],
        &[],
    );
    assert_eq!(n, 3);
}

#[test]
fn key_paths_merges_array_elements_and_types() {
    let v = json!({"tasks": [{"a": null, "b": 1, "c": [{"d": "x"}]}, {"a": "s", "b": "t"}]});
    let p = common::key_paths(&v);
    assert_eq!(p["tasks"], "array");
    assert_eq!(p["tasks[]"], "object");
    assert_eq!(
        p["tasks[].a"], "string",
        "null gives way to a concrete type"
    );
    assert_eq!(p["tasks[].b"], "mixed");
    assert_eq!(p["tasks[].c[].d"], "string");
    assert_eq!(p.len(), 7);
}

#[test]
#[should_panic(expected = "missing priority.id")]
fn contract_check_reports_a_missing_path() {
    let spec = Spec { doc: json!({}) };
    let example = json!({"id": "1", "priority": {"id": "3"}});
    assert_contract(
        &spec,
        "t",
        &example,
        &json!({"id": "1", "priority": {}}),
        &[],
        &[],
        &[],
    );
}

#[test]
#[should_panic(expected = "id: example string, simulator number")]
fn contract_check_reports_a_type_change() {
    let spec = Spec { doc: json!({}) };
    assert_contract(
        &spec,
        "t",
        &json!({"id": "1"}),
        &json!({"id": 1}),
        &[],
        &[],
        &[],
    );
}

#[test]
fn contract_check_accepts_null_only_where_documented_nullable() {
    let spec = Spec { doc: json!({}) };
    let schema = json!({"properties": {"due": {"type": ["string", "null"]}}});
    let n = assert_contract(
        &spec,
        "t",
        &json!({"due": "1", "any": null}),
        &json!({"due": null, "any": 5}),
        &[("", &schema)],
        &[],
        &[],
    );
    assert_eq!(n, 2);
}
