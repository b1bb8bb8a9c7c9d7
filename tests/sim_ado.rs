//! Behaviour tests of the ADO simulator over real HTTP (one per quirk of issue 2).
use ado_clickup_sync::sim::ado::{
    self, AdoRateLimit, AdoSeed, AdoSim, AdoSimOptions, RateLimitMode, SeedItem,
};
use ado_clickup_sync::sim::common::{FaultKind, FaultRule};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

struct T {
    sim: AdoSim,
    http: reqwest::Client,
    auth: String,
}

fn basic(pat: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{pat}"))
    )
}

async fn sim_with(opts: AdoSimOptions) -> T {
    let auth = basic(&opts.pat);
    let sim = ado::start(opts).await.unwrap();
    T {
        sim,
        http: reqwest::Client::new(),
        auth,
    }
}

async fn sim() -> T {
    sim_with(AdoSimOptions::default()).await
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

impl T {
    fn url(&self, rest: &str) -> String {
        format!(
            "{}/fabrikam/Fabrikam-Fiber/_apis/wit/{rest}",
            self.sim.base_url()
        )
    }
    async fn call(
        &self,
        method: Method,
        rest: &str,
        body: Option<Value>,
        ct: &str,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut rb = self
            .http
            .request(method, self.url(rest))
            .header("Authorization", &self.auth);
        if let Some(b) = body {
            rb = rb.header("Content-Type", ct).body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }
    async fn get(&self, rest: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::GET, rest, None, "").await;
        (s, v)
    }
    async fn post(&self, rest: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call(Method::POST, rest, Some(body), "application/json")
            .await;
        (s, v)
    }
    async fn patch(&self, rest: &str, ops: Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call(
                Method::PATCH,
                rest,
                Some(ops),
                "application/json-patch+json",
            )
            .await;
        (s, v)
    }
    async fn create(&self, ty: &str, title: &str) -> Value {
        let (s, v, _) = self
            .call(
                Method::POST,
                &format!("workitems/${ty}?api-version=7.1"),
                Some(json!([{"op": "add", "path": "/fields/System.Title", "value": title}])),
                "application/json-patch+json",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
    async fn create_id(&self, ty: &str, title: &str) -> i64 {
        self.create(ty, title).await["id"].as_i64().unwrap()
    }
    async fn wiql(&self, query: &str, params: &str) -> (StatusCode, Value) {
        self.post(
            &format!("wiql?api-version=7.1{params}"),
            json!({ "query": query }),
        )
        .await
    }
}

fn ids_of(v: &Value) -> Vec<i64> {
    v["workItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect()
}

fn assert_error_shape(v: &Value, type_key: &str, message_start: &str) {
    for k in [
        "$id",
        "innerException",
        "message",
        "typeName",
        "typeKey",
        "errorCode",
        "eventId",
    ] {
        assert!(v.get(k).is_some(), "error body lacks {k}: {v}");
    }
    assert_eq!(v["typeKey"], type_key, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with(message_start),
        "message {:?} should start with {message_start:?}",
        v["message"]
    );
}

#[tokio::test]
async fn pat_auth_is_basic_with_empty_user_and_401_is_not_json() {
    let t = sim().await;
    let url = t.url("workitemtypes?api-version=7.1");
    for auth in [
        None,
        Some(basic("wrong")),
        Some("Bearer ado-sim-pat".to_string()),
    ] {
        let mut rb = t.http.get(&url);
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get("www-authenticate").is_some());
        let body = r.text().await.unwrap();
        assert!(
            serde_json::from_str::<Value>(&body).is_err(),
            "401 body must not be JSON: {body}"
        );
    }
    let (s, v) = t.get("workitemtypes?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The control API needs no auth.
    let r = t
        .http
        .get(format!("{}/__sim/state", t.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_version_is_required_and_comments_need_preview() {
    let t = sim().await;
    let (s, v) = t.get("workitemtypes").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "VssVersionNotSpecifiedException",
        "No api-version was supplied",
    );
    let (s, v) = t.get("workitemtypes?api-version=7.2").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "VssVersionOutOfRangeException",
        "The requested REST API version of 7.2",
    );
    let id = t.create_id("Task", "t").await;
    let (s, v) = t
        .get(&format!("workItems/{id}/comments?api-version=7.1"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "VssInvalidPreviewVersionException",
        "The requested version \"7.1\" of the resource is under preview",
    );
    let (s, v) = t
        .get(&format!(
            "workItems/{id}/comments?api-version=7.1-preview.4"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalCount"], 0);
    // Also accepted in the Accept header, as the official examples send it.
    let r = t
        .http
        .get(t.url("workitemtypes"))
        .header("Authorization", &t.auth)
        .header("Accept", "application/json; api-version=7.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn create_returns_rev_1_with_system_fields_and_identities() {
    let t = sim().await;
    let v = t.create("User%20Story", "Sign in").await;
    assert_eq!(v["rev"], 1);
    let f = &v["fields"];
    assert_eq!(f["System.WorkItemType"], "User Story");
    assert_eq!(f["System.State"], "New");
    assert_eq!(f["System.Reason"], "New");
    assert_eq!(f["System.TeamProject"], "Fabrikam-Fiber");
    assert_eq!(f["System.AreaPath"], "Fabrikam-Fiber");
    assert_eq!(f["System.Rev"], 1);
    assert_eq!(f["System.CommentCount"], 0);
    assert_eq!(f["Microsoft.VSTS.Common.Priority"], 2);
    assert_eq!(f["System.CreatedDate"], f["System.ChangedDate"]);
    assert_eq!(f["System.RevisedDate"], "9999-01-01T00:00:00Z");
    assert_eq!(
        f["System.CreatedBy"]["uniqueName"],
        "sync-bot@fabrikam.example"
    );
    assert_eq!(f["System.ChangedBy"]["displayName"], "Sync Bot");
    assert!(f["System.ChangedBy"]["id"].as_str().unwrap().len() == 36);
    assert!(
        f.get("System.AssignedTo").is_none(),
        "unassigned: field absent"
    );
    assert!(f.get("System.Tags").is_none(), "no tags: field absent");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(
        v["url"],
        format!("{}/fabrikam/_apis/wit/workItems/{id}", t.sim.base_url())
    );
    assert!(v["_links"]["html"]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/_workitems/edit/{id}")));
    assert_eq!(
        t.sim.web_url(id),
        format!(
            "{}/fabrikam/Fabrikam-Fiber/_workitems/edit/{id}",
            t.sim.base_url()
        )
    );
    let stored = t.sim.item(id).unwrap();
    assert_eq!(stored.title(), "Sign in");
    assert_eq!(stored.rev, 1);

    // Unknown type and missing title.
    let (s, v, _) = t
        .call(
            Method::POST,
            "workitems/$Gizmo?api-version=7.1",
            Some(json!([{"op": "add", "path": "/fields/System.Title", "value": "x"}])),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = t
        .call(
            Method::POST,
            "workitems/$Task?api-version=7.1",
            Some(json!([{"op": "add", "path": "/fields/System.Description", "value": "x"}])),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "RuleValidationException",
        "TF401320: Rule Error for field Title.",
    );
}

#[tokio::test]
async fn writes_need_json_patch_content_type() {
    let t = sim().await;
    let ops = json!([{"op": "add", "path": "/fields/System.Title", "value": "x"}]);
    let (s, v, _) = t
        .call(
            Method::POST,
            "workitems/$Task?api-version=7.1",
            Some(ops.clone()),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_shape(
        &v,
        "VssRequestContentTypeNotSupportedException",
        "The request indicated a Content-Type of \"application/json\"",
    );
    let id = t.create_id("Task", "t").await;
    let (s, _, _) = t
        .call(
            Method::PATCH,
            &format!("workitems/{id}?api-version=7.1"),
            Some(ops),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(t.sim.items().iter().all(|i| i.title() == "t"));
}

#[tokio::test]
async fn each_write_bumps_rev_and_strictly_increasing_changed_date() {
    let t = sim().await;
    t.sim
        .clock()
        .freeze(chrono::DateTime::from_timestamp_millis(1_780_000_000_000));
    let id = t.create_id("Task", "a").await;
    let mut last = String::new();
    for rev in 1..4 {
        let (s, v) = t
            .patch(
                &format!("workitems/{id}?api-version=7.1"),
                json!([{"op": "test", "path": "/rev", "value": rev}, {"op": "replace", "path": "/fields/System.Title", "value": format!("t{rev}")}]),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["rev"], rev + 1);
        let changed = v["fields"]["System.ChangedDate"]
            .as_str()
            .unwrap()
            .to_string();
        let ms = chrono::DateTime::parse_from_rfc3339(&changed)
            .unwrap()
            .timestamp_millis();
        assert_eq!(ms, 1_780_000_000_000 + rev, "frozen clock: +1 ms per write");
        assert!(changed > last || last.is_empty());
        last = changed;
    }
    let item = t.sim.item(id).unwrap();
    assert_eq!(item.rev, 4);
    assert_eq!(item.title(), "t3");
}

#[tokio::test]
async fn stale_test_rev_is_412_and_nothing_is_applied() {
    let t = sim().await;
    let id = t.create_id("Task", "orig").await;
    t.patch(
        &format!("workitems/{id}?api-version=7.1"),
        json!([{"op": "add", "path": "/fields/System.Title", "value": "v2"}]),
    )
    .await;
    let (s, v) = t
        .patch(
            &format!("workitems/{id}?api-version=7.1"),
            json!([
                {"op": "replace", "path": "/fields/System.Description", "value": "<div>x</div>"},
                {"op": "test", "path": "/rev", "value": 1},
                {"op": "replace", "path": "/fields/System.Title", "value": "lost"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    assert_error_shape(
        &v,
        "TestPatchOperationFailedException",
        "VS403351: Test Operation for path /rev failed, value 2 was not equal to test value 1.",
    );
    let item = t.sim.item(id).unwrap();
    assert_eq!(item.rev, 2);
    assert_eq!(item.title(), "v2");
    assert!(item.description().is_none());
}

#[tokio::test]
async fn tags_are_stored_semicolon_separated_add_merges_replace_replaces() {
    let t = sim().await;
    let id = t.create_id("Bug", "b").await;
    let p = format!("workitems/{id}?api-version=7.1");
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/System.Tags", "value": "Tag1; Tag2"}]),
        )
        .await;
    assert_eq!(v["fields"]["System.Tags"], "Tag1; Tag2");
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/System.Tags", "value": "tag2;Tag3"}]),
        )
        .await;
    assert_eq!(v["fields"]["System.Tags"], "Tag1; Tag2; Tag3");
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "replace", "path": "/fields/System.Tags", "value": "Tag3"}]),
        )
        .await;
    assert_eq!(v["fields"]["System.Tags"], "Tag3");
    assert_eq!(t.sim.item(id).unwrap().tags(), vec!["Tag3".to_string()]);
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "replace", "path": "/fields/System.Tags", "value": ""}]),
        )
        .await;
    assert!(v["fields"].get("System.Tags").is_none());
}

#[tokio::test]
async fn identity_fields_accept_email_or_name_email_and_come_back_as_objects() {
    let t = sim().await;
    let id = t.create_id("Task", "x").await;
    let p = format!("workitems/{id}?api-version=7.1");
    let (s, v) = t.patch(&p, json!([{"op": "add", "path": "/fields/System.AssignedTo", "value": "fabrikamfiber4@hotmail.com"}])).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let a = &v["fields"]["System.AssignedTo"];
    assert_eq!(a["displayName"], "Jamal Hartnett");
    assert_eq!(a["uniqueName"], "fabrikamfiber4@hotmail.com");
    for k in ["url", "_links", "id", "imageUrl", "descriptor"] {
        assert!(a.get(k).is_some(), "identity lacks {k}");
    }
    let (_, v) = t.patch(&p, json!([{"op": "replace", "path": "/fields/System.AssignedTo", "value": "Chuck Reinhart <fabrikamfiber3@hotmail.com>"}])).await;
    assert_eq!(
        v["fields"]["System.AssignedTo"]["uniqueName"],
        "fabrikamfiber3@hotmail.com"
    );
    assert_eq!(
        t.sim.item(id).unwrap().assigned_to().as_deref(),
        Some("fabrikamfiber3@hotmail.com")
    );
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "replace", "path": "/fields/System.AssignedTo", "value": ""}]),
        )
        .await;
    assert!(v["fields"].get("System.AssignedTo").is_none());
    let (s, v) = t.patch(&p, json!([{"op": "add", "path": "/fields/System.AssignedTo", "value": "nobody@nowhere.example"}])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "RuleValidationException",
        "TF401320: Rule Error for field Assigned To.",
    );
}

#[tokio::test]
async fn unknown_field_and_disallowed_state_are_400() {
    let t = sim().await;
    let id = t.create_id("Task", "x").await;
    let p = format!("workitems/{id}?api-version=7.1");
    let (s, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/Custom.Nope", "value": "1"}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "WorkItemFieldInvalidException",
        "TF51535: Cannot find field Custom.Nope.",
    );
    // Task has no Resolved state in the Agile process.
    let (s, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/System.State", "value": "Resolved"}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "RuleValidationException",
        "TF401320: Rule Error for field State.",
    );
    assert!(v["customProperties"]["RuleValidationErrors"].is_array());
    let (s, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/System.State", "value": "Active"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["fields"]["System.Reason"], "Implementation started");
    assert!(v["fields"]["Microsoft.VSTS.Common.ActivatedDate"].is_string());
    assert_eq!(
        t.sim.item(id).unwrap().rev,
        2,
        "failed patches saved nothing"
    );
}

#[tokio::test]
async fn parent_relation_sets_system_parent_and_remove_by_index() {
    let t = sim().await;
    let parent = t.create_id("Feature", "f").await;
    let child = t.create_id("User Story", "s").await;
    let purl = format!("{}/fabrikam/_apis/wit/workItems/{parent}", t.sim.base_url());
    let p = format!("workitems/{child}?api-version=7.1&$expand=relations");
    let (s, v) = t
        .patch(&p, json!([
            {"op": "test", "path": "/rev", "value": 1},
            {"op": "add", "path": "/relations/-", "value": {"rel": "System.LinkTypes.Hierarchy-Reverse", "url": purl}},
            {"op": "add", "path": "/relations/-", "value": {"rel": "Hyperlink", "url": "https://app.clickup.com/t/abc"}}
        ]))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["System.Parent"], parent);
    assert_eq!(v["relations"].as_array().unwrap().len(), 2);
    let par = t.sim.item(parent).unwrap();
    assert_eq!(
        par.rev, 2,
        "the parent gets the reverse link in a new revision"
    );
    assert!(par
        .relations
        .iter()
        .any(|r| r.rel == "System.LinkTypes.Hierarchy-Forward"
            && r.url.ends_with(&format!("/{child}"))));
    // A second parent is refused.
    let other = t.create_id("Feature", "g").await;
    let ourl = format!("{}/fabrikam/_apis/wit/workItems/{other}", t.sim.base_url());
    let (s, _) = t.patch(&p, json!([{"op": "add", "path": "/relations/-", "value": {"rel": "System.LinkTypes.Hierarchy-Reverse", "url": ourl}}])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Fields read without $expand still tell the parent.
    let (_, v) = t
        .get(&format!(
            "workitems/{child}?api-version=7.1&fields=System.Parent"
        ))
        .await;
    assert_eq!(v["fields"]["System.Parent"], parent);
    let (s, v) = t
        .patch(&p, json!([{"op": "remove", "path": "/relations/0"}]))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["fields"].get("System.Parent").is_none());
    assert_eq!(t.sim.item(child).unwrap().parent(), None);
    assert!(t.sim.item(parent).unwrap().relations.is_empty());
    let (s, _) = t
        .patch(&p, json!([{"op": "remove", "path": "/relations/5"}]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn seeded_for_wiql(t: &T) {
    let seed: AdoSeed = serde_json::from_value(json!({"work_items": [
        {"id": 1, "type": "Task", "fields": {"System.Title": "Alpha", "System.State": "Active", "System.Tags": "red; blue", "System.AreaPath": "Fabrikam-Fiber\\Web", "System.ChangedDate": "2026-03-25T10:00:00Z", "System.CreatedDate": "2026-03-01T00:00:00Z"}},
        {"id": 2, "type": "Bug", "fields": {"System.Title": "Beta", "System.State": "New", "System.AreaPath": "Fabrikam-Fiber\\Web\\UI", "System.ChangedDate": "2026-03-25T13:11:27.500Z", "System.CreatedDate": "2026-03-02T00:00:00Z"}},
        {"id": 3, "type": "User Story", "fields": {"System.Title": "Gamma", "System.State": "Closed", "System.Tags": "blue", "System.AreaPath": "Fabrikam-Fiber\\Website", "System.ChangedDate": "2026-03-26T08:00:00Z", "System.CreatedDate": "2026-03-03T00:00:00Z"}},
        {"id": 4, "type": "Task", "fields": {"System.Title": "Delta", "System.State": "New", "System.ChangedDate": "2026-03-24T23:59:59.999Z", "System.CreatedDate": "2026-03-04T00:00:00Z"}},
        {"id": 5, "type": "Task", "fields": {"System.Title": "Gone", "System.ChangedDate": "2026-03-25T12:00:00Z"}, "deleted": true}
    ]})).unwrap();
    t.sim.seed(seed).unwrap();
}

#[tokio::test]
async fn wiql_operators_macros_and_ordering() {
    let t = sim().await;
    seeded_for_wiql(&t).await;
    let cases: &[(&str, Vec<i64>)] = &[
        ("SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project", vec![1, 2, 3, 4]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.State] <> 'Closed' AND NOT ([System.WorkItemType] = 'Bug')", vec![1, 4]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.State] = 'New' OR [System.Tags] CONTAINS 'red'", vec![1, 2, 4]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.WorkItemType] IN ('Bug', 'User Story')", vec![2, 3]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.WorkItemType] NOT IN ('Bug', 'User Story')", vec![1, 4]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.AreaPath] UNDER 'Fabrikam-Fiber\\Web'", vec![1, 2]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.Title] CONTAINS 'ta'", vec![2, 4]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.Id] > 1 AND [System.Id] <= 3", vec![2, 3]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.Id] >= 2 AND [System.Id] < 4", vec![2, 3]),
        ("SELECT [System.Id], [System.Title] FROM WorkItems ORDER BY [System.Title] DESC", vec![3, 4, 2, 1]),
        ("SELECT [System.Id] FROM WorkItems ORDER BY [System.State] ASC, [System.Id] DESC", vec![1, 3, 4, 2]),
        ("SELECT [System.Id] FROM WorkItems WHERE [System.IterationPath] UNDER @project AND [System.CreatedDate] >= '2026-03-03'", vec![3, 4]),
    ];
    for (q, want) in cases {
        let (s, v) = t.wiql(q, "").await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(&ids_of(&v), want, "{q}");
    }
    // @today - N against the service clock.
    t.sim.clock().freeze(
        chrono::DateTime::parse_from_rfc3339("2026-03-26T15:00:00Z")
            .ok()
            .map(|d| d.to_utc()),
    );
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= @today - 1",
            "",
        )
        .await;
    assert_eq!(ids_of(&v), vec![1, 2, 3]);
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] = @today",
            "",
        )
        .await;
    assert_eq!(ids_of(&v), vec![3]);
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= @StartOfDay - 1",
            "",
        )
        .await;
    assert_eq!(ids_of(&v), vec![1, 2, 3]);
    t.sim
        .ui_edit(
            4,
            obj(json!({"System.AssignedTo": "sync-bot@fabrikam.example"})),
        )
        .unwrap();
    t.sim
        .ui_edit(
            3,
            obj(json!({"System.AssignedTo": "mateo@fabrikam.example"})),
        )
        .unwrap();
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.AssignedTo] = @Me",
            "",
        )
        .await;
    assert_eq!(ids_of(&v), vec![4]);
    let (_, v) = t.wiql("SELECT [System.Id] FROM WorkItems WHERE [System.AssignedTo] = 'mateo@fabrikam.example'", "").await;
    assert_eq!(ids_of(&v), vec![3]);
    let (s, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.Bogus] = 1",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("TF51005"), "{v}");
    let (s, _) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE ([System.Id] = 1",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wiql_date_precision_quirk() {
    let t = sim().await;
    seeded_for_wiql(&t).await;
    let q = "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= '2026-03-25T13:11:27Z' ORDER BY [System.ChangedDate] ASC, [System.Id] ASC";
    let (s, v) = t.wiql(q, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "You cannot supply a time with the date when running a query using date precision. The error is caused by «[System.ChangedDate] >= '2026-03-25T13:11:27Z'».");
    assert_error_shape(
        &v,
        v["typeKey"].as_str().unwrap(),
        "You cannot supply a time",
    );
    let (s, v) = t.wiql(q, "&timePrecision=true").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids_of(&v), vec![2, 3]);
    // Day precision: everything changed on 2026-03-25, whatever the time.
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] = '2026-03-25'",
            "",
        )
        .await;
    assert_eq!(ids_of(&v), vec![1, 2]);
    let (_, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] > '2026-03-24T00:00:00Z'",
            "",
        )
        .await;
    assert_eq!(
        ids_of(&v),
        vec![1, 2, 3],
        "midnight literal is accepted at day precision"
    );
}

#[tokio::test]
async fn wiql_answer_shape_and_as_of_is_server_time() {
    let t = sim().await;
    seeded_for_wiql(&t).await;
    t.sim
        .clock()
        .freeze(chrono::DateTime::from_timestamp_millis(1_780_000_000_123));
    let (s, v) = t.wiql("Select [System.Id], [System.Title] From WorkItems Where [State] <> 'Closed' order by [System.CreatedDate] desc", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["queryType"], "flat");
    assert_eq!(v["queryResultType"], "workItem");
    assert_eq!(v["asOf"], "2026-05-28T20:26:40.123Z");
    assert_eq!(v["columns"][1]["referenceName"], "System.Title");
    assert_eq!(v["columns"][1]["name"], "Title");
    assert!(v["columns"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/_apis/wit/fields/System.Id"));
    assert_eq!(
        v["sortColumns"][0]["field"]["referenceName"],
        "System.CreatedDate"
    );
    assert_eq!(v["sortColumns"][0]["descending"], true);
    assert_eq!(ids_of(&v), vec![4, 2, 1], "deleted item 5 never comes back");
    // Only ids come back, whatever the SELECT list names (FACTS §1).
    for w in v["workItems"].as_array().unwrap() {
        let keys: std::collections::BTreeSet<&str> =
            w.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "url"].into_iter().collect(), "{w}");
    }
    assert!(v["workItems"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/_apis/wit/workItems/4"));
    // Without ORDER BY there are no sortColumns; the team segment is accepted.
    let r = t
        .http
        .post(format!(
            "{}/fabrikam/Fabrikam-Fiber/Fabrikam-Fiber%20Team/_apis/wit/wiql?api-version=7.1",
            t.sim.base_url()
        ))
        .header("Authorization", &t.auth)
        .json(&json!({"query": "SELECT [System.Id] FROM WorkItems"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v.get("sortColumns").is_none());
    assert_eq!(ids_of(&v), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn wiql_result_cap_and_top() {
    let t = sim().await;
    let items: Vec<SeedItem> = (0..20_001)
        .map(|i| SeedItem {
            id: None,
            work_item_type: "Task".into(),
            fields: obj(json!({"System.Title": format!("t{i}")})),
            relations: vec![],
            comments: vec![],
            deleted: false,
        })
        .collect();
    t.sim
        .seed(AdoSeed {
            work_items: items,
            ..Default::default()
        })
        .unwrap();
    let q = "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project ORDER BY [System.ChangedDate] ASC, [System.Id] ASC";
    for params in ["", "&$top=20000", "&$top=0"] {
        let (s, v) = t.wiql(q, params).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{params}");
        assert_error_shape(
            &v,
            "WorkItemTrackingQueryResultSizeLimitExceededException",
            "VS402337: The number of work items returned exceeds the size limit of 20000.",
        );
    }
    let (s, v) = t.wiql(q, "&$top=19999").await;
    assert_eq!(s, StatusCode::OK);
    let ids = ids_of(&v);
    assert_eq!(ids.len(), 19_999);
    assert_eq!(ids[0], 1);
    let (_, v) = t.wiql(q, "&$top=5").await;
    assert_eq!(ids_of(&v), vec![1, 2, 3, 4, 5]);
    // "More than 20,000" is the error: exactly 20,000 results come back whole.
    t.sim.ui_delete(1).unwrap();
    let (s, v) = t.wiql(q, "").await;
    assert_eq!(s, StatusCode::OK, "{}", v["message"]);
    let ids = ids_of(&v);
    assert_eq!((ids.len(), ids[0]), (20_000, 2));
}

#[tokio::test]
async fn batch_reads_caps_fields_expand_and_error_policy() {
    let t = sim().await;
    seeded_for_wiql(&t).await;
    let ids: Vec<i64> = (1..=201).collect();
    let (s, v) = t
        .post("workitemsbatch?api-version=7.1", json!({"ids": ids}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        v["typeKey"].as_str().unwrap(),
        "VS403474: You requested 201 work items which exceeds the limit of 200",
    );
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let (s, v) = t
        .get(&format!("workitems?ids={}&api-version=7.1", list.join(",")))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("VS403474"));

    let (s, v) = t
        .post(
            "workitemsbatch?api-version=7.1",
            json!({"ids": [1, 2], "fields": ["System.Title"], "$expand": "relations"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "The expand parameter can not be used with the fields parameter."
    );
    let (s, _) = t
        .get("workitems?ids=1&fields=System.Title&$expand=all&api-version=7.1")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = t.post("workitemsbatch?api-version=7.1", json!({"ids": [1, 5, 99, 2], "fields": ["System.Id", "System.Title", "System.ChangedDate"], "errorPolicy": "omit"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 4);
    let val = v["value"].as_array().unwrap();
    assert!(
        val[1].is_null() && val[2].is_null(),
        "deleted and missing ids are null slots"
    );
    assert_eq!(val[0]["fields"].as_object().unwrap().len(), 3);
    assert_eq!(val[3]["fields"]["System.Title"], "Beta");
    assert_eq!(val[0]["rev"], 1);

    let (s, v) = t
        .post("workitemsbatch?api-version=7.1", json!({"ids": [1, 5]}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(
        &v,
        v["typeKey"].as_str().unwrap(),
        "TF401232: Work item 5 does not exist",
    );
    let (s, v) = t
        .get("workitems?ids=2,1&$expand=relations&errorPolicy=omit&api-version=7.1")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["value"][0]["id"], 2);
    let (s, v) = t
        .post(
            "workitemsbatch?api-version=7.1",
            json!({"ids": [1], "fields": ["No.Such"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("TF51535"));
}

#[tokio::test]
async fn single_get_of_missing_or_deleted_is_404_tf401232() {
    let t = sim().await;
    seeded_for_wiql(&t).await;
    for id in [5, 77] {
        let (s, v) = t.get(&format!("workitems/{id}?api-version=7.1")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error_shape(&v, v["typeKey"].as_str().unwrap(), &format!("TF401232: Work item {id} does not exist, or you do not have permissions to read it."));
    }
    let (s, v) = t.get("workitems/1?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["fields"]["System.Tags"], "red; blue");
}

#[tokio::test]
async fn updates_and_revisions_tell_the_history() {
    let t = sim().await;
    let id = t.create_id("Bug", "first").await;
    let p = format!("workitems/{id}?api-version=7.1");
    t.patch(&p, json!([{"op": "replace", "path": "/fields/System.Title", "value": "second"}, {"op": "add", "path": "/fields/System.Tags", "value": "x"}])).await;
    t.patch(
        &p,
        json!([{"op": "add", "path": "/fields/System.History", "value": "<div>note</div>"}]),
    )
    .await;
    let (s, v) = t
        .get(&format!("workItems/{id}/updates?api-version=7.1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 3);
    let u = &v["value"];
    assert_eq!(u[0]["fields"]["System.Title"]["newValue"], "first");
    assert!(u[0]["fields"]["System.Title"].get("oldValue").is_none());
    assert_eq!(u[1]["fields"]["System.Title"]["oldValue"], "first");
    assert_eq!(u[1]["fields"]["System.Title"]["newValue"], "second");
    assert_eq!(u[1]["fields"]["System.Tags"]["newValue"], "x");
    assert_eq!(u[1]["fields"]["System.Rev"]["oldValue"], 1);
    assert_eq!(
        u[2]["fields"]["System.History"]["newValue"],
        "<div>note</div>"
    );
    assert_eq!(u[2]["fields"]["System.CommentCount"]["newValue"], 1);
    assert_eq!(u[2]["revisedDate"], "9999-01-01T00:00:00Z");
    assert_eq!(
        u[0]["revisedDate"],
        u[1]["fields"]["System.ChangedDate"]["newValue"]
    );
    assert_eq!(u[1]["revisedBy"]["uniqueName"], "sync-bot@fabrikam.example");
    let (_, v) = t
        .get(&format!(
            "workItems/{id}/updates?$top=1&$skip=1&api-version=7.1"
        ))
        .await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["value"][0]["rev"], 2);
    let (s, v) = t
        .get(&format!("workItems/{id}/revisions?api-version=7.1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 3);
    assert_eq!(v["value"][0]["fields"]["System.Title"], "first");
    assert_eq!(v["value"][2]["fields"]["System.Title"], "second");
    let (_, v) = t
        .get(&format!("workItems/{id}/revisions/2?api-version=7.1"))
        .await;
    assert_eq!(v["rev"], 2);
    // History is per revision: the current item no longer carries it after the next write.
    t.patch(
        &p,
        json!([{"op": "replace", "path": "/fields/System.Title", "value": "third"}]),
    )
    .await;
    assert!(t
        .sim
        .item(id)
        .unwrap()
        .fields
        .get("System.History")
        .is_none());
}

#[tokio::test]
async fn comments_api_pages_and_adding_bumps_rev_and_comment_count() {
    let t = sim().await;
    let id = t.create_id("Task", "c").await;
    let before = t.sim.item(id).unwrap().changed_date().unwrap();
    let base = format!("workItems/{id}/comments");
    for i in 0..5 {
        let (s, v) = t
            .post(
                &format!("{base}?api-version=7.1-preview.4"),
                json!({"text": format!("<p>c{i}</p>")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["text"], format!("<p>c{i}</p>"));
        assert_eq!(v["version"], 1);
    }
    let item = t.sim.item(id).unwrap();
    assert_eq!(item.rev, 6);
    assert_eq!(item.fields["System.CommentCount"], 5);
    assert!(item.changed_date().unwrap() > before);
    // Newest first, 2 per page, continuationToken until the last page.
    let mut seen = Vec::new();
    let mut url = format!("{base}?$top=2&api-version=7.1-preview.4");
    loop {
        let (s, v) = t.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["totalCount"], 5);
        for c in v["comments"].as_array().unwrap() {
            seen.push(c["text"].as_str().unwrap().to_string());
        }
        match v.get("continuationToken").and_then(Value::as_str) {
            Some(tok) => {
                url = format!("{base}?$top=2&continuationToken={tok}&api-version=7.1-preview.4")
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            "<p>c4</p>",
            "<p>c3</p>",
            "<p>c2</p>",
            "<p>c1</p>",
            "<p>c0</p>"
        ]
    );
    let (_, v) = t
        .post(
            &format!("{base}?format=markdown&api-version=7.1-preview.4"),
            json!({"text": "**md**"}),
        )
        .await;
    assert_eq!(v["format"], "markdown");
    let md_id = v["id"].as_i64().unwrap();
    let (_, v) = t
        .get(&format!(
            "{base}/{md_id}?$expand=renderedText&api-version=7.1-preview.4"
        ))
        .await;
    assert_eq!(v["text"], "**md**");
    assert_eq!(
        v["renderedText"].as_str().unwrap().trim(),
        "<p><strong>md</strong></p>"
    );
    let (_, v) = t
        .get(&format!(
            "{base}?$top=1&order=asc&api-version=7.1-preview.4"
        ))
        .await;
    assert_eq!(v["comments"][0]["text"], "<p>c0</p>");
    assert_eq!(v["comments"][0]["format"], "html");
    let cid = item.comments[0].id;
    let (s, v, _) = t
        .call(
            Method::PATCH,
            &format!("{base}/{cid}?api-version=7.1-preview.4"),
            Some(json!({"text": "edited"})),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    let (s, _, _) = t
        .call(
            Method::DELETE,
            &format!("{base}/{cid}?api-version=7.1-preview.4"),
            None,
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = t.get(&format!("{base}?api-version=7.1-preview.4")).await;
    assert_eq!(v["totalCount"], 5);
    assert_eq!(t.sim.item(id).unwrap().fields["System.CommentCount"], 5);
}

#[tokio::test]
async fn delete_goes_to_recycle_bin_and_can_be_restored() {
    let t = sim().await;
    let id = t.create_id("Task", "doomed").await;
    let keep = t.create_id("Task", "kept").await;
    let (s, v, _) = t
        .call(
            Method::DELETE,
            &format!("workitems/{id}?api-version=7.1"),
            None,
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["code"], 200);
    assert_eq!(v["resource"]["fields"]["System.Title"], "doomed");
    assert_eq!(t.sim.deleted_ids(), vec![id]);
    assert_eq!(
        t.sim.items().iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![keep]
    );
    let (s, _) = t.get(&format!("workitems/{id}?api-version=7.1")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = t.wiql("SELECT [System.Id] FROM WorkItems", "").await;
    assert_eq!(ids_of(&v), vec![keep]);
    let (s, v) = t.get("recyclebin?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 1);
    assert_eq!(v["value"][0]["id"], id);
    let (_, v) = t.get(&format!("recyclebin?ids={id}&api-version=7.1")).await;
    assert_eq!(v["value"][0]["name"], "doomed");
    assert_eq!(
        v["value"][0]["deletedBy"],
        "Sync Bot <sync-bot@fabrikam.example>"
    );
    let (s, _) = t
        .patch(
            &format!("recyclebin/{id}?api-version=7.1"),
            json!({"isDeleted": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = t.get(&format!("workitems/{id}?api-version=7.1")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn work_item_types_and_states_are_the_agile_process() {
    let t = sim().await;
    let (s, v) = t.get("workitemtypes?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Epic", "Feature", "User Story", "Task", "Bug", "Issue"]
    );
    let (s, v) = t
        .get("workitemtypes/User%20Story/states?api-version=7.1")
        .await;
    assert_eq!(s, StatusCode::OK);
    let states: Vec<(String, String)> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().into(),
                x["category"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("New".to_string(), "Proposed".to_string()),
            ("Active".into(), "InProgress".into()),
            ("Resolved".into(), "Resolved".into()),
            ("Closed".into(), "Completed".into()),
            ("Removed".into(), "Removed".into()),
        ]
    );
    let (_, v) = t.get("workitemtypes/Task/states?api-version=7.1").await;
    assert_eq!(v["count"], 4);
    let (s, _) = t.get("workitemtypes/Nope/states?api-version=7.1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limit_blocks_with_429_and_headers() {
    let t = sim_with(AdoSimOptions {
        rate_limit: Some(AdoRateLimit {
            limit: 4,
            window_ms: 60_000,
            mode: RateLimitMode::Block,
        }),
        ..Default::default()
    })
    .await;
    let mut statuses = Vec::new();
    let mut last_headers = None;
    for _ in 0..5 {
        let (s, v, h) = t
            .call(Method::GET, "workitemtypes?api-version=7.1", None, "")
            .await;
        statuses.push(s.as_u16());
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_error_shape(&v, "RequestBlockedException", "TF400733");
        }
        last_headers = Some(h);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 429]);
    let h = last_headers.unwrap();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(h["x-ratelimit-limit"], "4");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert!(h.get("x-ratelimit-reset").is_some());
    assert!(h.get("x-ratelimit-resource").is_some());
    assert_eq!(t.sim.log().count("GET", "/workitemtypes"), 5);
    // Off by default.
    let t2 = sim().await;
    for _ in 0..10 {
        let (s, _, h) = t2
            .call(Method::GET, "workitemtypes?api-version=7.1", None, "")
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(h.get("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn rate_limit_delay_mode_sets_x_ratelimit_delay() {
    let t = sim_with(AdoSimOptions {
        rate_limit: Some(AdoRateLimit {
            limit: 2,
            window_ms: 60_000,
            mode: RateLimitMode::Delay { delay_ms: 150 },
        }),
        ..Default::default()
    })
    .await;
    let (_, _, h1) = t
        .call(Method::GET, "workitemtypes?api-version=7.1", None, "")
        .await;
    assert!(h1.get("x-ratelimit-delay").is_none());
    t.call(Method::GET, "workitemtypes?api-version=7.1", None, "")
        .await;
    let (s, _, h) = t
        .call(Method::GET, "workitemtypes?api-version=7.1", None, "")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-ratelimit-delay"], "0.150");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert!(h.get("retry-after").is_some());
}

#[tokio::test]
async fn faults_and_request_log() {
    let t = sim().await;
    t.sim.faults().add(FaultRule {
        method: "GET".into(),
        path_contains: "/workitemtypes".into(),
        fault: FaultKind::Status { status: 503 },
        times: Some(1),
        probability: None,
    });
    let (s, v) = t.get("workitemtypes?api-version=7.1").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(&v, v["typeKey"].as_str().unwrap(), "TF400898");
    let (s, _) = t.get("workitemtypes?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK);
    t.sim.faults().add(FaultRule {
        method: String::new(),
        path_contains: "/workitemtypes".into(),
        fault: FaultKind::Truncate,
        times: Some(1),
        probability: None,
    });
    let r = t
        .http
        .get(t.url("workitemtypes?api-version=7.1"))
        .header("Authorization", &t.auth)
        .send()
        .await
        .unwrap();
    assert!(
        r.json::<Value>().await.is_err(),
        "truncated body is not valid JSON"
    );
    t.sim.faults().add(FaultRule {
        method: String::new(),
        path_contains: "/workitemtypes".into(),
        fault: FaultKind::Drop,
        times: Some(1),
        probability: None,
    });
    let r = t
        .http
        .get(t.url("workitemtypes?api-version=7.1"))
        .header("Authorization", &t.auth)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "dropped connection is an error for the client");
    let log = t.sim.log().entries();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].status, 503);
    assert_eq!(log[0].query, "api-version=7.1");
    // Control routes are not logged.
    t.http
        .get(format!("{}/__sim/state", t.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(t.sim.log().len(), 4);
}

#[tokio::test]
async fn ui_edits_bump_rev_and_date_as_another_person() {
    let t = sim().await;
    let id = t
        .sim
        .ui_create(
            "Task",
            obj(json!({"System.Title": "from ui", "System.Tags": "a; b"})),
        )
        .unwrap();
    let it = t.sim.item(id).unwrap();
    assert_eq!(it.rev, 1);
    assert_eq!(it.tags(), vec!["a", "b"]);
    let d1 = it.changed_date().unwrap();
    t.sim.ui_edit(id, obj(json!({"System.Title": "edited", "System.Tags": "b", "System.AssignedTo": "mateo@fabrikam.example"}))).unwrap();
    let it = t.sim.item(id).unwrap();
    assert_eq!((it.rev, it.title()), (2, "edited"));
    assert_eq!(it.tags(), vec!["b"]);
    assert!(it.changed_date().unwrap() > d1);
    assert_eq!(
        it.fields["System.ChangedBy"],
        "Jamal Hartnett <fabrikamfiber4@hotmail.com>"
    );
    t.sim
        .ui_edit(id, obj(json!({"System.AssignedTo": null})))
        .unwrap();
    assert_eq!(t.sim.item(id).unwrap().assigned_to(), None);
    t.sim.ui_comment(id, "hello").unwrap();
    assert_eq!(t.sim.item(id).unwrap().rev, 4);
    let p = t
        .sim
        .ui_create("Feature", obj(json!({"System.Title": "parent"})))
        .unwrap();
    t.sim
        .ui_add_relation(
            id,
            "System.LinkTypes.Hierarchy-Reverse",
            &format!("{}/fabrikam/_apis/wit/workItems/{p}", t.sim.base_url()),
        )
        .unwrap();
    assert_eq!(t.sim.item(id).unwrap().parent(), Some(p));
    assert!(t
        .sim
        .ui_edit(id, obj(json!({"System.State": "Bogus"})))
        .is_err());
    t.sim.ui_delete(id).unwrap();
    assert_eq!(t.sim.deleted_ids(), vec![id]);
    assert!(t
        .sim
        .ui_edit(id, obj(json!({"System.Title": "x"})))
        .is_err());
    t.sim.reset();
    assert!(t.sim.items().is_empty() && t.sim.deleted_ids().is_empty());
}

#[tokio::test]
async fn control_api_seed_edit_state_clock() {
    let t = sim().await;
    let base = t.sim.base_url();
    let r = t.http.post(format!("{base}/__sim/seed")).json(&json!({"work_items": [{"type": "Bug", "fields": {"System.Title": "seeded", "System.AssignedTo": "fabrikamfiber4@hotmail.com"}}]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let id = v["ids"][0].as_i64().unwrap();
    let r = t
        .http
        .post(format!("{base}/__sim/edit"))
        .json(&json!({"id": id, "fields": {"System.State": "Active"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .http
        .post(format!("{base}/__sim/edit"))
        .json(&json!({"id": 999, "fields": {"System.State": "Active"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let state: Value = t
        .http
        .get(format!("{base}/__sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["items"][0]["fields"]["System.State"], "Active");
    assert_eq!(state["items"][0]["rev"], 2);
    let r = t
        .http
        .post(format!("{base}/__sim/clock"))
        .json(&json!({"freeze": "2030-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, v) = t.wiql("SELECT [System.Id] FROM WorkItems", "").await;
    assert_eq!(v["asOf"], "2030-01-01T00:00:00.000Z");
    let (_, v) = t.get(&format!("workitems/{id}?api-version=7.1")).await;
    assert_eq!(
        v["fields"]["System.AssignedTo"]["uniqueName"],
        "fabrikamfiber4@hotmail.com"
    );
    t.http.post(format!("{base}/__sim/faults")).json(&json!({"path_contains": "/wiql", "fault": {"kind": "status", "status": 500}, "times": 1})).send().await.unwrap();
    let (s, _) = t.wiql("SELECT [System.Id] FROM WorkItems", "").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    let log: Value = t
        .http
        .get(format!("{base}/__sim/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().last().unwrap()["status"], 500);
    t.http
        .post(format!("{base}/__sim/reset"))
        .send()
        .await
        .unwrap();
    assert!(t.sim.items().is_empty());
}

#[tokio::test]
async fn standalone_start_on_a_given_port() {
    // Find a free port, release it, then ask the simulator for exactly that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = sim_with(AdoSimOptions {
        port,
        ..Default::default()
    })
    .await;
    assert_eq!(t.sim.base_url(), format!("http://127.0.0.1:{port}"));
    let (s, _) = t.get("workitemtypes?api-version=7.1").await;
    assert_eq!(s, StatusCode::OK);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn hundred_thousand_items_query_and_batch() {
    let t = sim().await;
    let items: Vec<SeedItem> = (0..100_000)
        .map(|i| SeedItem {
            id: None,
            work_item_type: if i % 2 == 0 { "Task" } else { "Bug" }.into(),
            fields: obj(json!({"System.Title": format!("item {i}"), "System.State": if i % 10 == 0 { "Active" } else { "New" }})),
            relations: vec![],
            comments: vec![],
            deleted: false,
        })
        .collect();
    t.sim
        .seed(AdoSeed {
            work_items: items,
            ..Default::default()
        })
        .unwrap();
    let (s, v) = t.wiql("SELECT [System.Id] FROM WorkItems WHERE [System.State] = 'Active' AND [System.WorkItemType] = 'Task' ORDER BY [System.Id] DESC", "").await;
    assert_eq!(s, StatusCode::OK);
    let ids = ids_of(&v);
    assert_eq!(ids.len(), 10_000);
    assert_eq!(ids[0], 99_991);
    let (s, v) = t
        .post(
            "workitemsbatch?api-version=7.1",
            json!({"ids": (1..=200).collect::<Vec<i64>>(), "fields": ["System.Title"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["value"][199]["fields"]["System.Title"], "item 199");
}

#[tokio::test]
async fn validate_only_saves_nothing_and_long_descriptions_fit() {
    let t = sim().await;
    let id = t.create_id("Task", "v").await;
    let (s, v) = t
        .patch(
            &format!("workitems/{id}?validateOnly=true&api-version=7.1"),
            json!([{"op": "replace", "path": "/fields/System.Title", "value": "not saved"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["System.Title"], "not saved");
    assert_eq!(v["rev"], 1);
    assert_eq!(t.sim.item(id).unwrap().title(), "v");
    let long = format!("<div>{}</div>", "é".repeat(1_000_000));
    let (s, v) = t
        .patch(
            &format!("workitems/{id}?api-version=7.1"),
            json!([{"op": "add", "path": "/fields/System.Description", "value": long}]),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{}",
        v.to_string().chars().take(300).collect::<String>()
    );
    assert_eq!(
        t.sim.item(id).unwrap().description().map(str::len),
        Some(long.len())
    );
}

#[tokio::test]
async fn seeded_custom_fields_are_writable_and_queryable_and_parent_seeds_a_link() {
    let t = sim().await;
    let seed: AdoSeed = serde_json::from_value(json!({
        "custom_fields": ["Custom.ClickUpId"],
        "work_items": [
            {"id": 10, "type": "Epic", "fields": {"System.Title": "epic"}},
            {"id": 11, "type": "Feature", "fields": {"System.Title": "feature", "System.Parent": 10}}
        ]
    }))
    .unwrap();
    t.sim.seed(seed).unwrap();
    assert_eq!(t.sim.item(11).unwrap().parent(), Some(10));
    assert!(t
        .sim
        .item(10)
        .unwrap()
        .relations
        .iter()
        .any(|r| r.rel == "System.LinkTypes.Hierarchy-Forward"));
    let (s, v) = t
        .patch(
            "workitems/11?api-version=7.1",
            json!([{"op": "add", "path": "/fields/Custom.ClickUpId", "value": "86abc"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t
        .wiql(
            "SELECT [System.Id] FROM WorkItems WHERE [Custom.ClickUpId] = '86abc'",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids_of(&v), vec![11]);
    let (_, v) = t
        .get("workitems/11?fields=System.Parent,Custom.ClickUpId&api-version=7.1")
        .await;
    assert_eq!(
        v["fields"],
        json!({"System.Parent": 10, "Custom.ClickUpId": "86abc"})
    );
}

#[tokio::test]
async fn as_of_reads_return_the_revision_current_at_that_time() {
    let t = sim().await;
    t.sim
        .clock()
        .freeze(chrono::DateTime::from_timestamp_millis(1_780_000_000_000));
    let id = t.create_id("Task", "one").await;
    t.sim.clock().advance(chrono::Duration::seconds(10));
    t.patch(
        &format!("workitems/{id}?api-version=7.1"),
        json!([{"op": "replace", "path": "/fields/System.Title", "value": "two"}]),
    )
    .await;
    let at = "2026-05-28T20:26:45Z"; // between the two revisions
    let (s, v) = t
        .get(&format!("workitems/{id}?asOf={at}&api-version=7.1"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["rev"].as_i64(), v["fields"]["System.Title"].as_str()),
        (Some(1), Some("one"))
    );
    let (_, v) = t
        .post(
            "workitemsbatch?api-version=7.1",
            json!({"ids": [id], "asOf": at, "fields": ["System.Title"]}),
        )
        .await;
    assert_eq!(v["value"][0]["fields"]["System.Title"], "one");
    let (s, _) = t
        .get(&format!(
            "workitems/{id}?asOf=2020-01-01T00:00:00Z&api-version=7.1"
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "did not exist yet");
    let (_, v) = t.get(&format!("workitems/{id}?api-version=7.1")).await;
    assert_eq!(v["fields"]["System.Title"], "two");
}

#[tokio::test]
async fn connection_data_names_the_pat_owner_as_in_changed_by() {
    let t = sim().await;
    let url = format!("{}/fabrikam/_apis/connectionData", t.sim.base_url());
    let r = t
        .http
        .get(format!("{url}?api-version=7.1"))
        .header("Authorization", &t.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "connectionData is a preview resource"
    );
    let v: Value = t
        .http
        .get(format!("{url}?api-version=7.1-preview.1"))
        .header("Authorization", &t.auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created = t.create("Task", "mine").await;
    assert_eq!(
        v["authenticatedUser"]["id"],
        created["fields"]["System.ChangedBy"]["id"]
    );
    assert_eq!(
        v["authenticatedUser"]["properties"]["Account"]["$value"],
        "sync-bot@fabrikam.example"
    );
}

#[tokio::test]
async fn every_route_requires_an_api_version() {
    let t = sim().await;
    let id = t.create_id("Task", "kept").await;
    let patch = "application/json-patch+json";
    let js = "application/json";
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "wiql".into(),
            Some(json!({"query": "SELECT [System.Id] FROM WorkItems"})),
            js,
        ),
        (
            Method::POST,
            "workitemsbatch".into(),
            Some(json!({"ids": [id]})),
            js,
        ),
        (Method::GET, format!("workitems?ids={id}"), None, ""),
        (Method::GET, format!("workitems/{id}"), None, ""),
        (
            Method::PATCH,
            format!("workitems/{id}"),
            Some(json!([{"op": "add", "path": "/fields/System.Title", "value": "changed"}])),
            patch,
        ),
        (
            Method::POST,
            "workitems/$Task".into(),
            Some(json!([{"op": "add", "path": "/fields/System.Title", "value": "new"}])),
            patch,
        ),
        (Method::DELETE, format!("workitems/{id}"), None, ""),
        (Method::GET, format!("workitems/{id}/updates"), None, ""),
        (Method::GET, format!("workitems/{id}/revisions"), None, ""),
        (Method::GET, format!("workItems/{id}/comments"), None, ""),
        (Method::GET, "recyclebin".into(), None, ""),
        (Method::GET, "workitemtypes/Task/states".into(), None, ""),
    ];
    for (method, rest, body, ct) in cases {
        let what = format!("{method} {rest}");
        let (s, v, _) = t.call(method, &rest, body, ct).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_error_shape(
            &v,
            "VssVersionNotSpecifiedException",
            "No api-version was supplied",
        );
    }
    let items = t.sim.items();
    assert_eq!(items.len(), 1, "nothing was created or deleted");
    assert_eq!((items[0].title(), items[0].rev), ("kept", 1));
}

#[tokio::test]
async fn remove_op_clears_a_field_and_required_fields_stay() {
    let t = sim().await;
    let id = t.create_id("Task", "r").await;
    let p = format!("workitems/{id}?api-version=7.1");
    let (_, v) = t
        .patch(
            &p,
            json!([{"op": "add", "path": "/fields/System.Tags", "value": "a; b"}]),
        )
        .await;
    assert_eq!(v["fields"]["Microsoft.VSTS.Common.Priority"], 2);
    let (s, v) = t
        .patch(
            &p,
            json!([
                {"op": "test", "path": "/rev", "value": 2},
                {"op": "remove", "path": "/fields/System.Tags"},
                {"op": "remove", "path": "/fields/Microsoft.VSTS.Common.Priority"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rev"], 3);
    assert!(v["fields"].get("System.Tags").is_none(), "{v}");
    assert!(v["fields"].get("Microsoft.VSTS.Common.Priority").is_none());
    let (s, v) = t
        .patch(
            &p,
            json!([{"op": "remove", "path": "/fields/System.Title"}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(
        &v,
        "RuleValidationException",
        "TF401320: Rule Error for field Title.",
    );
    let item = t.sim.item(id).unwrap();
    assert_eq!((item.rev, item.title()), (3, "r"));
    assert!(item.tags().is_empty());
}

#[tokio::test]
async fn faults_delay_malformed_probability_and_their_bodies() {
    let t = sim().await;
    let rule = |fault: FaultKind, times: Option<u32>, probability: Option<f64>| FaultRule {
        method: "GET".into(),
        path_contains: "/workitemtypes".into(),
        fault,
        times,
        probability,
    };
    let types = "workitemtypes?api-version=7.1";
    // Delay: answered normally, late.
    t.sim
        .faults()
        .add(rule(FaultKind::Delay { ms: 400 }, Some(1), None));
    let started = std::time::Instant::now();
    let (s, v) = t.get(types).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 6);
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    // Malformed: the status stays, the body claims JSON but is not.
    t.sim
        .faults()
        .add(rule(FaultKind::Malformed, Some(1), None));
    let r = t
        .http
        .get(t.url(types))
        .header("Authorization", &t.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    // A probability without a count: 1.0 hits every request, 0.0 none.
    t.sim
        .faults()
        .add(rule(FaultKind::Status { status: 502 }, None, Some(1.0)));
    for _ in 0..3 {
        let (s, v) = t.get(types).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY);
        assert_error_shape(&v, "BadGatewayException", "Bad gateway.");
    }
    t.sim.faults().clear();
    t.sim
        .faults()
        .add(rule(FaultKind::Status { status: 500 }, None, Some(0.0)));
    for _ in 0..3 {
        assert_eq!(t.get(types).await.0, StatusCode::OK);
    }
    t.sim.faults().clear();
    // An injected 429 looks like the real block: Retry-After and TF400733.
    t.sim
        .faults()
        .add(rule(FaultKind::Status { status: 429 }, Some(1), None));
    let (s, v, h) = t.call(Method::GET, types, None, "").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["retry-after"], "1");
    assert_error_shape(&v, "RequestBlockedException", "TF400733");
    // An injected 409 is the concurrent-save race (FACTS §3).
    t.sim
        .faults()
        .add(rule(FaultKind::Status { status: 409 }, Some(1), None));
    let (s, v) = t.get(types).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error_shape(
        &v,
        "WorkItemRevisionMismatchException",
        "TF26071: This work item has been changed by someone else since you opened it.",
    );
    let statuses: Vec<u16> = t.sim.log().entries().iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        vec![200, 200, 502, 502, 502, 200, 200, 200, 429, 409]
    );
}
