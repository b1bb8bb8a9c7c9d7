//! The official example responses (../shared/api/) for every endpoint the clients use parse
//! through the clients' own decoders and map to the side records with their values intact.
mod common;

use std::path::{Path, PathBuf};

use ado_clickup_sync::ado::mapping as ado;
use ado_clickup_sync::clickup::mapping as cu;
use ado_clickup_sync::core::model::{AdoStateCategory, ClickUpStatusType};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::Value;

const WEB: &str = "https://dev.azure.com/fabrikam/Fabrikam-Fiber-Git";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The 200 body of an ADO example file, as bytes.
fn ado_example(shared: &Path, rel: &str) -> Vec<u8> {
    let path = shared.join("api/ado/examples").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap();
    let body = &v["responses"]["200"]["body"];
    assert!(!body.is_null(), "{rel} has no 200 body");
    serde_json::to_vec(body).unwrap()
}

fn shared(test: &str) -> Option<PathBuf> {
    common::shared_dir(test)
}

struct ClickUpSpec(Value);

impl ClickUpSpec {
    fn load(shared: &Path) -> Self {
        let text =
            std::fs::read_to_string(shared.join("api/clickup/clickup-api-v2-reference.json"))
                .unwrap();
        ClickUpSpec(serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap())
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut cur = &self.0;
                for part in r.trim_start_matches("#/").split('/') {
                    cur = &cur[part];
                }
                self.resolve(cur)
            }
            None => v,
        }
    }

    /// The example 200 answer of an operation, wherever the spec keeps it.
    fn example(&self, operation_id: &str) -> Vec<u8> {
        let paths = self.0["paths"].as_object().unwrap();
        let op = paths
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .find(|o| o.get("operationId").and_then(Value::as_str) == Some(operation_id))
            .unwrap_or_else(|| panic!("no operation {operation_id}"));
        let resp = self.resolve(&op["responses"]["200"]);
        let content = &resp["content"]["application/json"];
        let schema = self.resolve(&content["schema"]);
        let first = |v: &Value| -> Option<Value> {
            match v {
                Value::Null => None,
                Value::Array(a) => a.first().cloned(),
                Value::Object(o)
                    if o.values().all(|x| x.get("value").is_some()) && !o.is_empty() =>
                {
                    o.values().next().map(|x| x["value"].clone())
                }
                other => Some(other.clone()),
            }
        };
        let ex = [
            content.get("example").cloned(),
            content.get("examples").and_then(first),
            schema.get("example").cloned(),
            schema.get("examples").and_then(first),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("{operation_id} has no example"));
        serde_json::to_vec(&ex).unwrap()
    }
}

// ---------------------------------------------------------------- ADO

#[test]
fn ado_wiql_flat_result_gives_ids_in_order_and_as_of() {
    let Some(s) = shared("ado_wiql_flat_result_gives_ids_in_order_and_as_of") else {
        return;
    };
    let page = ado::decode_wiql(&ado_example(&s, "wiql/GET__wit_get_id_workitems.json")).unwrap();
    assert_eq!(page.ids, vec![300, 299, 298, 17, 16, 15, 14, 9, 8]);
    assert_eq!(page.as_of, Some(t("2014-12-29T20:49:34.617Z")));
}

#[test]
fn ado_wiql_tree_result_gives_each_target_once() {
    let Some(s) = shared("ado_wiql_tree_result_gives_each_target_once") else {
        return;
    };
    let page = ado::decode_wiql(&ado_example(&s, "wiql/GET__wit_wiql__queryId_.json")).unwrap();
    assert_eq!(&page.ids[..6], &[4, 5, 6, 7, 8, 9]);
    assert_eq!(page.ids.iter().filter(|i| **i == 299).count(), 1);
    assert_eq!(page.as_of, Some(t("2014-12-29T20:49:33.803Z")));
}

#[test]
fn ado_single_work_item_maps_every_field() {
    let Some(s) = shared("ado_single_work_item_maps_every_field") else {
        return;
    };
    let r = ado::decode_work_item(
        &ado_example(&s, "workItems/GET__wit_WorkItems_id.json"),
        WEB,
    )
    .unwrap();
    assert_eq!(r.id, 12);
    assert_eq!(r.rev, 3);
    assert_eq!(r.work_item_type, "User Story");
    assert_eq!(r.area_path, "MyAgilePrj2");
    assert_eq!(r.state, "Active");
    assert_eq!(r.title, "Epic 2");
    assert_eq!(r.assigned_to.as_deref(), Some("fabrikamfiber4@hotmail.com"));
    assert_eq!(r.priority, Some(2));
    assert_eq!(r.tags, vec!["client", "sample", "teamservices"]);
    assert_eq!(r.changed_date, t("2017-10-04T23:32:02.18Z"));
    assert_eq!(r.created_date, Some(t("2017-09-04T06:11:59.05Z")));
    assert_eq!(r.description_html, "");
    assert_eq!(r.parent, None);
    assert_eq!(r.due_date, None);
    assert_eq!(r.web_url, format!("{WEB}/_workitems/edit/12"));
}

#[test]
fn ado_work_items_by_ids_map_in_order() {
    let Some(s) = shared("ado_work_items_by_ids_map_in_order") else {
        return;
    };
    let list = ado::decode_work_items(
        &ado_example(&s, "workItems/GET__wit_WorkItems_ids-_ids_.json"),
        WEB,
    )
    .unwrap();
    let ids: Vec<i64> = list.iter().map(|r| r.as_ref().unwrap().id).collect();
    assert_eq!(ids, vec![297, 299, 300]);
    let r = list[1].as_ref().unwrap();
    assert_eq!(r.rev, 7);
    assert_eq!(r.area_path, "Fabrikam-Fiber-Git\\Website");
    assert_eq!(r.state, "To Do");
    assert_eq!(r.title, "JavaScript implementation for Microsoft Account");
    assert_eq!(r.description_html, "Follow the code samples from MSDN");
    assert_eq!(r.tags, vec!["Tag1", "Tag2"]);
    assert_eq!(r.assigned_to.as_deref(), Some("fabrikamfiber4@hotmail.com"));
    assert_eq!(r.changed_date, t("2014-12-29T20:49:28.74Z"));
    let first = list[0].as_ref().unwrap();
    assert_eq!(first.assigned_to, None, "unassigned: the field is absent");
    assert!(first.tags.is_empty());
    assert_eq!(first.work_item_type, "Product Backlog Item");
}

#[test]
fn ado_expanded_work_items_carry_relations_but_no_false_parent() {
    let Some(s) = shared("ado_expanded_work_items_carry_relations_but_no_false_parent") else {
        return;
    };
    let list = ado::decode_work_items(
        &ado_example(
            &s,
            "workItems/GET__wit_WorkItems_ids-_ids___expand-all.json",
        ),
        WEB,
    )
    .unwrap();
    let r = list[0].as_ref().unwrap();
    assert_eq!(r.id, 297);
    // Its relations are children (Hierarchy-Forward) and an attachment: no parent, no link.
    assert_eq!(r.parent, None);
    assert!(r.hyperlinks.is_empty());
}

#[test]
fn ado_patch_answers_show_parent_and_hyperlink_relations() {
    let Some(s) = shared("ado_patch_answers_show_parent_and_hyperlink_relations") else {
        return;
    };
    let r = ado::decode_work_item(
        &ado_example(&s, "workItems/PATCH__wit_workitems__taskId_8.json"),
        WEB,
    )
    .unwrap();
    assert_eq!(r.id, 299);
    assert_eq!(r.rev, 6);
    assert_eq!(r.parent, Some(297), "from the Hierarchy-Reverse relation");
    assert_eq!(
        r.hyperlinks,
        vec!["http://blogs.msdn.com/b/bharry/archive/2014/05/12/a-new-api-for-visual-studio-online.aspx"]
    );
    // The "Name <email>" identity form (older payloads) maps to the email.
    let r5 = ado::decode_work_item(
        &ado_example(&s, "workItems/PATCH__wit_workitems__taskId_5.json"),
        WEB,
    )
    .unwrap();
    assert_eq!(
        r5.assigned_to.as_deref(),
        Some("fabrikamfiber2@hotmail.com")
    );
    let r9 = ado::decode_work_item(
        &ado_example(&s, "workItems/PATCH__wit_workitems__taskId_9.json"),
        WEB,
    )
    .unwrap();
    assert_eq!(r9.tags, vec!["Tag0", "Tag1", "Tag2"]);
    assert_eq!(r9.rev, 7);
    // Every PATCH example answer maps.
    let dir = s.join("api/ado/examples/workItems");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with("PATCH") {
            let rec = ado::decode_work_item(&ado_example(&s, &format!("workItems/{name}")), WEB)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(rec.rev >= 1, "{name}");
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} PATCH examples found");
}

#[test]
fn ado_create_answer_maps() {
    let Some(s) = shared("ado_create_answer_maps") else {
        return;
    };
    let r = ado::decode_work_item(
        &ado_example(&s, "workItems/POST__wit_workitems_create.json"),
        WEB,
    )
    .unwrap();
    assert_eq!((r.id, r.rev), (131489, 1));
    assert_eq!(r.state, "New");
    assert_eq!(r.title, "Sample task");
    assert_eq!(r.priority, Some(2));
    assert_eq!(r.changed_date, t("2017-10-06T01:04:51.57Z"));
}

#[test]
fn ado_batch_example_parses_and_names_what_the_client_must_request() {
    let Some(s) = shared("ado_batch_example_parses_and_names_what_the_client_must_request") else {
        return;
    };
    // The official batch example asked only for Id, Title, WorkItemType, RemainingWork: it
    // parses, but without System.ChangedDate (which our batch reads always request) the
    // record cannot be built, and the error says so and names the item.
    let body = ado_example(
        &s,
        "workItemsBatch/POST__wit_WorkItemsBatch_ids-_ids__fields-_columns_.json",
    );
    let err = ado::decode_work_items(&body, WEB).unwrap_err();
    assert_eq!(err.kind(), "protocol");
    let msg = err.to_string();
    assert!(
        msg.contains("work item 297") && msg.contains("System.ChangedDate"),
        "{msg}"
    );
    // With the field the client requests added, every value maps.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    for w in v["value"].as_array_mut().unwrap() {
        w["fields"]["System.ChangedDate"] = Value::from("2024-01-02T03:04:05.678Z");
    }
    let list = ado::decode_work_items(&serde_json::to_vec(&v).unwrap(), WEB).unwrap();
    let r = list[1].as_ref().unwrap();
    assert_eq!((r.id, r.rev), (299, 7));
    assert_eq!(r.work_item_type, "Task");
    assert_eq!(r.title, "JavaScript implementation for Microsoft Account");
    assert_eq!(
        list[2].as_ref().unwrap().title,
        "Unit Testing for MSA login"
    );
}

#[test]
fn ado_null_slots_stay_empty() {
    let body = br#"{"count":2,"value":[null,{"id":5,"rev":2,"fields":{"System.ChangedDate":"2024-01-01T00:00:00Z"}}]}"#;
    let list = ado::decode_work_items(body, WEB).unwrap();
    assert!(list[0].is_none());
    assert_eq!(list[1].as_ref().unwrap().id, 5);
}

#[test]
fn ado_comments_pages_map() {
    let Some(s) = shared("ado_comments_pages_map") else {
        return;
    };
    let (c, token) = ado::decode_comments(&ado_example(
        &s,
        "comments/GET__wit_workitems__issueId__comments_1.json",
    ))
    .unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].id, 45);
    assert_eq!(c[0].work_item_id, Some(299));
    assert_eq!(c[0].text, "Johnnie is going to take this work over.");
    assert_eq!(
        c[0].created_by.as_deref(),
        Some("fabrikamfiber4@hotmail.com")
    );
    assert_eq!(c[0].created_date, Some(t("2019-01-21T20:12:14.683Z")));
    assert!(!c[0].is_deleted);
    assert_eq!(c[1].id, 44);
    assert_eq!(token.as_deref(), Some("DFkODYtNTYxYS03ZDdiLWJj"));
    for f in [
        "comments/GET__wit_workitems__issueId__comments_2.json",
        "comments/GET__wit_workitems__issueId__comments_3.json",
    ] {
        let (c, _) =
            ado::decode_comments(&ado_example(&s, f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!c.is_empty(), "{f}");
    }
    let one = ado::decode_comment(&ado_example(
        &s,
        "comments/GET__wit_workitems__issueId__comments__commentId_1.json",
    ))
    .unwrap();
    assert!(one.id > 0 && !one.text.is_empty());
}

#[test]
fn ado_type_states_map_to_categories() {
    let Some(s) = shared("ado_type_states_map_to_categories") else {
        return;
    };
    let states = ado::decode_states(&ado_example(
        &s,
        "workItemTypeStates/GET__workitem_type_states.json",
    ))
    .unwrap();
    let got: Vec<(&str, Option<AdoStateCategory>)> = states
        .iter()
        .map(|s| (s.name.as_str(), s.category))
        .collect();
    assert_eq!(
        got,
        vec![
            ("New", Some(AdoStateCategory::Proposed)),
            ("Active", Some(AdoStateCategory::InProgress)),
            ("CustomState", Some(AdoStateCategory::InProgress)),
            ("Resolved", Some(AdoStateCategory::Resolved)),
            ("Closed", Some(AdoStateCategory::Completed)),
        ]
    );
    let types =
        ado::decode_work_item_types(&ado_example(&s, "GET__wit_workItemTypes_Bug.json")).unwrap();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].name, "Bug");
    assert_eq!(
        types[0].reference_name.as_deref(),
        Some("Microsoft.VSTS.WorkItemTypes.Bug")
    );
    assert!(!types[0].is_disabled);
}

// ---------------------------------------------------------------- ClickUp

#[test]
fn clickup_get_task_maps_every_field() {
    let Some(s) = shared("clickup_get_task_maps_every_field") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    // The example's "Sprint Goal" text field stands in for the back-link field.
    let r = cu::decode_task(
        &spec.example("GetTask"),
        Some("d2ab17e0-41d3-4d28-bdbb-f3f0f2c62f8b"),
    )
    .unwrap();
    assert_eq!(r.id, "9hx");
    assert_eq!(r.list_id, "15505202");
    assert_eq!(r.name, "Fix login bug");
    assert_eq!(r.date_created, 1_567_780_450_202);
    assert_eq!(r.date_updated, 1_567_780_450_202);
    assert_eq!(r.status, "in progress");
    assert_eq!(r.status_type, ClickUpStatusType::Custom);
    assert_eq!(r.assignees.len(), 1);
    assert_eq!(r.assignees[0].id, 2_772_463);
    assert_eq!(r.assignees[0].email, "user@company.com");
    assert_eq!(r.assignees[0].username, "Alex Johnson");
    assert_eq!(r.tags, vec!["bug"]);
    assert_eq!(r.priority, Some(3), "priority object with a string id");
    assert_eq!(r.due_date, Some(1_508_369_194_377));
    assert_eq!(r.parent, None);
    assert!(!r.archived);
    assert_eq!(r.backlink.as_deref(), Some("Fix critical auth issues"));
    assert_eq!(r.url, "https://app.clickup.com/t/9hx");
    // Not requested in this example: no Markdown description.
    assert_eq!(r.markdown_description, "");
    // Without a configured field there is no back-link.
    let r = cu::decode_task(&spec.example("GetTask"), None).unwrap();
    assert_eq!(r.backlink, None);
}

#[test]
fn clickup_filtered_team_tasks_page_maps() {
    let Some(s) = shared("clickup_filtered_team_tasks_page_maps") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let page = cu::decode_tasks_page(&spec.example("GetFilteredTeamTasks"), None).unwrap();
    assert!(page.failed.is_empty(), "{:?}", page.failed);
    assert_eq!(page.len, 1);
    assert_eq!(
        page.last_page, None,
        "the team endpoint's example has no last_page"
    );
    let r = &page.tasks[0];
    assert_eq!(r.id, "av1");
    assert_eq!(r.list_id, "1");
    assert_eq!(r.name, "My First Task");
    assert_eq!(r.markdown_description, "Task description");
    assert_eq!(r.status, "Open");
    assert_eq!(r.status_type, ClickUpStatusType::Open);
    assert_eq!(r.date_updated, 1_508_369_194_377);
    assert_eq!(r.parent.as_deref(), Some("av2"));
    assert_eq!(
        r.priority,
        Some(1),
        "an integer priority, as this older example has"
    );
    assert_eq!(r.tags, vec!["tagged"]);
    assert_eq!(r.assignees[0].id, 123);
    assert_eq!(r.assignees[0].email, "johndoe@website.com");
    assert_eq!(r.due_date, Some(1_508_369_194_377));
}

#[test]
fn clickup_list_tasks_page_maps_with_last_page() {
    let Some(s) = shared("clickup_list_tasks_page_maps_with_last_page") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let page = cu::decode_tasks_page(&spec.example("GetTasks"), None).unwrap();
    assert!(page.failed.is_empty(), "{:?}", page.failed);
    assert_eq!(page.last_page, Some(false));
    let ids: Vec<&str> = page.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["9hx", "9hz"]);
    assert_eq!(page.tasks[1].priority, None);
    assert_eq!(page.tasks[1].due_date, None);
    assert_eq!(page.tasks[1].status, "to do");
    assert_eq!(page.tasks[1].status_type, ClickUpStatusType::Open);
}

#[test]
fn clickup_create_and_update_answers_map() {
    let Some(s) = shared("clickup_create_and_update_answers_map") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let c = cu::decode_task(&spec.example("CreateTask"), None).unwrap();
    assert_eq!(c.name, "New Task Name");
    assert_eq!(c.markdown_description, "New Task Content");
    assert_eq!(c.status, "to do");
    assert_eq!(c.priority, Some(3));
    let u = cu::decode_task(&spec.example("UpdateTask"), None).unwrap();
    assert_eq!(u.name, "Updated Task Name");
    assert_eq!(u.markdown_description, "Updated Task Content");
    assert_eq!(u.parent.as_deref(), Some("abc1234"));
    assert_eq!(u.status_type, ClickUpStatusType::Custom);
}

#[test]
fn clickup_list_statuses_map() {
    let Some(s) = shared("clickup_list_statuses_map") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let l = cu::decode_list(&spec.example("GetList")).unwrap();
    assert_eq!(l.id, "124");
    assert_eq!(l.name, "Updated List Name");
    let got: Vec<(&str, ClickUpStatusType)> = l
        .statuses
        .iter()
        .map(|s| (s.name.as_str(), s.status_type))
        .collect();
    assert_eq!(
        got,
        vec![
            ("to do", ClickUpStatusType::Open),
            ("complete", ClickUpStatusType::Closed)
        ]
    );
}

#[test]
fn clickup_teams_user_comments_map() {
    let Some(s) = shared("clickup_teams_user_comments_map") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let teams = spec.example("GetAuthorizedTeams");
    assert_eq!(cu::decode_team_ids(&teams).unwrap(), vec!["1234"]);
    let members = cu::decode_members(&teams, Some("1234")).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, 123);
    assert_eq!(members[0].username, "John Doe");
    assert!(cu::decode_members(&teams, Some("999")).unwrap().is_empty());
    let me = cu::decode_user(&spec.example("GetAuthorizedUser")).unwrap();
    assert_eq!((me.id, me.email.as_str()), (123, "user@company.com"));
    let comments = cu::decode_comments(&spec.example("GetTaskComments")).unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].id, "458");
    assert_eq!(comments[0].text, "Task comment content");
    assert_eq!(comments[0].date, Some(1_568_036_964_079));
    assert_eq!(
        comments[0].user.as_ref().unwrap().email,
        "johndoe@gmail.com"
    );
    let (id, date) = cu::decode_created_comment(&spec.example("CreateTaskComment")).unwrap();
    assert_eq!((id.as_str(), date), ("458", Some(1_568_036_964_079)));
}

#[test]
fn clickup_webhooks_map_and_keep_the_secret_out_of_debug() {
    let Some(s) = shared("clickup_webhooks_map_and_keep_the_secret_out_of_debug") else {
        return;
    };
    let spec = ClickUpSpec::load(&s);
    let w = cu::decode_created_webhook(&spec.example("CreateWebhook")).unwrap();
    assert_eq!(w.id, "4b67ac88-e506-4a29-9d42-26e504e3435e");
    assert_eq!(w.team_id.as_deref(), Some("108"));
    assert_eq!(w.endpoint, "https://yourdomain.com/webhook");
    assert_eq!(w.events.len(), 28);
    assert_eq!(w.events[0], "taskCreated");
    assert_eq!(w.status, "active");
    assert_eq!(w.fail_count, 0);
    let secret = "O94IM25S7PXBPYTMNXLLET230SRP0S89COR7B1YOJ2ZIE8WQNK5UUKEF26W0Z5GA";
    assert_eq!(w.secret.as_ref().unwrap().expose_secret(), secret);
    assert!(!format!("{w:?}").contains(secret));
    let list = cu::decode_webhooks(&spec.example("GetWebhooks")).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].status.as_str(), list[0].fail_count),
        ("failing", 5)
    );
}
