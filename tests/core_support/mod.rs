//! Fixtures for the core tests: a pair's metadata, record builders, and a pure model of each
//! service storing what the planner writes (for the idempotence / convergence properties).
#![allow(dead_code)]
use std::collections::BTreeSet;

use ado_clickup_sync::core::convert;
use ado_clickup_sync::core::mapping::{
    AdoStateInfo, ClickUpStatusInfo, LinkIndex, MappingConfig, MappingContext, UserDirectory,
};
use ado_clickup_sync::core::model::{
    AdoCreate, AdoPatch, AdoRecord, AdoStateCategory, ClickUpCreate, ClickUpPatch, ClickUpRecord,
    ClickUpStatusType, ClickUpUser,
};
use ado_clickup_sync::core::plan::{
    plan, Action, Limits, LinkSnapshot, Plan, PlanInput, ScopeCounts,
};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};

pub const ADO_STATES: [(&str, AdoStateCategory); 5] = [
    ("New", AdoStateCategory::Proposed),
    ("Active", AdoStateCategory::InProgress),
    ("Resolved", AdoStateCategory::Resolved),
    ("Closed", AdoStateCategory::Completed),
    ("Removed", AdoStateCategory::Removed),
];

pub const CU_STATUSES: [(&str, ClickUpStatusType); 5] = [
    ("to do", ClickUpStatusType::Open),
    ("in progress", ClickUpStatusType::Custom),
    ("review", ClickUpStatusType::Custom),
    ("complete", ClickUpStatusType::Done),
    ("closed", ClickUpStatusType::Closed),
];

pub const MEMBERS: [&str; 3] = ["alice@x.com", "bob@x.com", "carol@x.com"];

pub fn ctx() -> MappingContext {
    MappingContext {
        ado_states: [(
            "Task".to_string(),
            ADO_STATES
                .iter()
                .map(|(n, c)| AdoStateInfo {
                    name: n.to_string(),
                    category: *c,
                })
                .collect(),
        )]
        .into_iter()
        .collect(),
        clickup_statuses: CU_STATUSES
            .iter()
            .map(|(n, t)| ClickUpStatusInfo {
                name: n.to_string(),
                status_type: *t,
            })
            .collect(),
        ado_work_item_type: "Task".into(),
        ado_area_path: Some("Proj\\Team".into()),
        clickup_list_id: "L1".into(),
    }
}

pub fn users() -> UserDirectory {
    UserDirectory::new(MEMBERS, None)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
}

pub fn ado(id: i64) -> AdoRecord {
    AdoRecord {
        id,
        rev: 1,
        changed_date: t0(),
        created_date: Some(t0()),
        work_item_type: "Task".into(),
        area_path: "Proj\\Team".into(),
        state: "New".into(),
        title: format!("item {id}"),
        description_html: String::new(),
        assigned_to: None,
        tags: vec![],
        priority: Some(2),
        due_date: None,
        parent: None,
        hyperlinks: vec![],
        web_url: format!("https://dev.azure.com/org/Proj/_workitems/edit/{id}"),
    }
}

pub fn cu(id: &str) -> ClickUpRecord {
    ClickUpRecord {
        id: id.to_string(),
        list_id: "L1".into(),
        date_updated: t0().timestamp_millis(),
        date_created: t0().timestamp_millis(),
        name: format!("task {id}"),
        markdown_description: String::new(),
        status: "to do".into(),
        status_type: ClickUpStatusType::Open,
        assignees: vec![],
        tags: vec![],
        priority: None,
        due_date: None,
        due_date_time: None,
        parent: None,
        archived: false,
        backlink: None,
        url: format!("https://app.clickup.com/t/{id}"),
    }
}

pub fn cu_user(email: &str) -> ClickUpUser {
    ClickUpUser {
        id: email.len() as i64,
        email: email.to_string(),
        username: email.split('@').next().unwrap_or_default().to_string(),
    }
}

/// ADO storing a patch: HTML as produced by `markdown_to_html`, one assignee, a new rev.
pub fn apply_ado(r: &AdoRecord, p: &AdoPatch) -> AdoRecord {
    let mut r = r.clone();
    if let Some(t) = &p.title {
        r.title = t.clone();
    }
    if let Some(d) = &p.description_html {
        r.description_html = d.clone();
    }
    if let Some(s) = &p.state {
        r.state = s.clone();
    }
    if let Some(a) = &p.assigned_to {
        r.assigned_to = a.clone();
    }
    if let Some(t) = &p.tags {
        r.tags = t.clone();
    }
    if let Some(pr) = p.priority {
        r.priority = pr;
    }
    if let Some(d) = p.due_date {
        r.due_date = d;
    }
    if let Some(pa) = p.parent {
        r.parent = pa;
    }
    r.rev += 1;
    r.changed_date += Duration::seconds(1);
    r
}

pub fn ado_from_create(id: i64, c: &AdoCreate) -> AdoRecord {
    let mut r = ado(id);
    r.title = String::new();
    r.priority = None;
    r.work_item_type = c.work_item_type.clone();
    r.hyperlinks = vec![c.backlink_url.clone()];
    apply_ado(&r, &c.fields)
}

/// ClickUp storing a patch: Markdown as given, tags by name (case-insensitive), date-only due
/// dates snapped to 04:00 UTC of their day (FACTS gotcha 5 in a UTC workspace) and read back,
/// as the real task JSON (FACTS §7), without `due_date_time`.
pub fn apply_cu(r: &ClickUpRecord, p: &ClickUpPatch) -> ClickUpRecord {
    let mut r = r.clone();
    if let Some(n) = &p.name {
        r.name = n.clone();
    }
    if let Some(m) = &p.markdown {
        r.markdown_description = m.clone();
    }
    if let Some(s) = &p.status {
        let (name, ty) = CU_STATUSES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .expect("status written must exist in the list");
        r.status = name.to_string();
        r.status_type = *ty;
    }
    r.assignees.retain(|u| {
        !p.assignees_rem
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&u.email))
    });
    for e in &p.assignees_add {
        if !r.assignees.iter().any(|u| u.email.eq_ignore_ascii_case(e)) {
            r.assignees.push(cu_user(e));
        }
    }
    r.tags
        .retain(|t| !p.tags_rem.iter().any(|x| x.eq_ignore_ascii_case(t)));
    for t in &p.tags_add {
        if !r.tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            r.tags.push(t.clone());
        }
    }
    if let Some(pr) = p.priority {
        r.priority = pr;
    }
    if let Some(d) = p.due_date {
        match d {
            None => {
                r.due_date = None;
                r.due_date_time = None;
            }
            Some((ms, true)) => {
                r.due_date = Some(ms);
                r.due_date_time = None;
            }
            Some((ms, false)) => {
                let day = Utc.timestamp_millis_opt(ms).unwrap().date_naive();
                let snapped =
                    Utc.from_utc_datetime(&day.and_time(NaiveTime::from_hms_opt(4, 0, 0).unwrap()));
                r.due_date = Some(snapped.timestamp_millis());
                r.due_date_time = None;
            }
        }
    }
    if let Some(pa) = &p.parent {
        r.parent = Some(pa.clone());
    }
    r.date_updated += 1000;
    r
}

pub fn cu_from_create(id: &str, c: &ClickUpCreate) -> ClickUpRecord {
    let mut r = cu(id);
    r.name = String::new();
    r.list_id = c.list_id.clone();
    r.backlink = Some(c.backlink_url.clone());
    apply_cu(&r, &c.fields)
}

/// One existing link (id 1, ADO 1 ↔ ClickUp "c1") and its records, planned with defaults.
pub struct LinkCase {
    pub cfg: MappingConfig,
    pub ctx: MappingContext,
    pub users: UserDirectory,
    pub snap: LinkSnapshot,
    pub ado: AdoRecord,
    pub cu: ClickUpRecord,
}

impl LinkCase {
    pub fn index(&self) -> LinkIndex {
        LinkIndex::new([(
            self.snap.link,
            self.snap.ado_id,
            self.snap.clickup_id.clone(),
        )])
    }

    pub fn plan(&self) -> Plan {
        let ix = self.index();
        let links = [self.snap.clone()];
        let ado = [self.ado.clone()];
        let cu = [self.cu.clone()];
        let input = PlanInput {
            pair: "p",
            links: &links,
            ado_records: &ado,
            clickup_records: &cu,
            link_index: &ix,
            mapping: &self.cfg,
            context: &self.ctx,
            users: &self.users,
            limits: Limits::default(),
            scope: ScopeCounts::default(),
            now: t0(),
        };
        plan(&input).expect("plan")
    }

    /// Applies a plan's writes and base updates; returns the conflicted fields' count.
    pub fn apply(&mut self, p: &Plan) {
        for a in &p.actions {
            match a {
                Action::UpdateAdo {
                    patch,
                    new_base,
                    expected_rev,
                    ..
                } => {
                    assert_eq!(*expected_rev, self.ado.rev);
                    self.ado = apply_ado(&self.ado, patch);
                    self.snap.base = new_base.clone();
                }
                Action::UpdateClickUp {
                    patch,
                    new_base,
                    expected_date_updated,
                    ..
                } => {
                    assert_eq!(*expected_date_updated, self.cu.date_updated);
                    self.cu = apply_cu(&self.cu, patch);
                    self.snap.base = new_base.clone();
                }
                Action::Rebase { base, .. } => self.snap.base = base.clone(),
                Action::RecordConflict { .. } => {}
                other => panic!("unexpected action for an existing link: {other:?}"),
            }
        }
        self.snap.ado_rev = self.ado.rev;
        self.snap.clickup_date_updated = self.cu.date_updated;
    }
}

pub fn emails(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn html(md: &str) -> String {
    convert::markdown_to_html(md)
}
