//! The Agile process: work item types, their states and categories, and the fields the
//! simulator knows (reference name, friendly name, kind).

/// How a field's values are typed, stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Html,
    Int,
    Double,
    Date,
    Identity,
    TreePath,
    Bool,
}

pub struct FieldDef {
    pub reference: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// Computed by the service; a client cannot write it.
    pub read_only: bool,
}

const fn f(reference: &'static str, name: &'static str, kind: Kind, read_only: bool) -> FieldDef {
    FieldDef {
        reference,
        name,
        kind,
        read_only,
    }
}

pub static FIELDS: &[FieldDef] = &[
    f("System.Id", "ID", Kind::Int, true),
    f("System.Rev", "Rev", Kind::Int, true),
    f("System.Title", "Title", Kind::String, false),
    f("System.Description", "Description", Kind::Html, false),
    f("System.State", "State", Kind::String, false),
    f("System.Reason", "Reason", Kind::String, false),
    f("System.AssignedTo", "Assigned To", Kind::Identity, false),
    f("System.Tags", "Tags", Kind::String, false),
    f("System.AreaPath", "Area Path", Kind::TreePath, false),
    f(
        "System.IterationPath",
        "Iteration Path",
        Kind::TreePath,
        false,
    ),
    f("System.TeamProject", "Team Project", Kind::String, true),
    f("System.WorkItemType", "Work Item Type", Kind::String, true),
    f("System.CreatedDate", "Created Date", Kind::Date, true),
    f("System.CreatedBy", "Created By", Kind::Identity, true),
    f("System.ChangedDate", "Changed Date", Kind::Date, true),
    f("System.ChangedBy", "Changed By", Kind::Identity, true),
    f("System.AuthorizedDate", "Authorized Date", Kind::Date, true),
    f("System.AuthorizedAs", "Authorized As", Kind::Identity, true),
    f("System.RevisedDate", "Revised Date", Kind::Date, true),
    f("System.History", "History", Kind::Html, false),
    f("System.Parent", "Parent", Kind::Int, true),
    f("System.CommentCount", "Comment Count", Kind::Int, true),
    f("System.AreaId", "Area ID", Kind::Int, true),
    f("System.IterationId", "Iteration ID", Kind::Int, true),
    f("System.NodeName", "Node Name", Kind::String, true),
    f("System.AreaLevel1", "Area Level 1", Kind::String, true),
    f("System.AreaLevel2", "Area Level 2", Kind::String, true),
    f("System.AreaLevel3", "Area Level 3", Kind::String, true),
    f(
        "System.IterationLevel1",
        "Iteration Level 1",
        Kind::String,
        true,
    ),
    f(
        "System.IterationLevel2",
        "Iteration Level 2",
        Kind::String,
        true,
    ),
    f(
        "System.IterationLevel3",
        "Iteration Level 3",
        Kind::String,
        true,
    ),
    f("System.Watermark", "Watermark", Kind::Int, true),
    f("System.PersonId", "Person ID", Kind::Int, true),
    f("System.IsDeleted", "Is Deleted", Kind::Bool, true),
    f("System.BoardColumn", "Board Column", Kind::String, true),
    f(
        "Microsoft.VSTS.Common.Priority",
        "Priority",
        Kind::Int,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.Severity",
        "Severity",
        Kind::String,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.ValueArea",
        "Value Area",
        Kind::String,
        false,
    ),
    f("Microsoft.VSTS.Common.Risk", "Risk", Kind::String, false),
    f(
        "Microsoft.VSTS.Common.BusinessValue",
        "Business Value",
        Kind::Int,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.TimeCriticality",
        "Time Criticality",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.StackRank",
        "Stack Rank",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.Activity",
        "Activity",
        Kind::String,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.AcceptanceCriteria",
        "Acceptance Criteria",
        Kind::Html,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.StateChangeDate",
        "State Change Date",
        Kind::Date,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ActivatedDate",
        "Activated Date",
        Kind::Date,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ActivatedBy",
        "Activated By",
        Kind::Identity,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ResolvedDate",
        "Resolved Date",
        Kind::Date,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ResolvedBy",
        "Resolved By",
        Kind::Identity,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ResolvedReason",
        "Resolved Reason",
        Kind::String,
        false,
    ),
    f(
        "Microsoft.VSTS.Common.ClosedDate",
        "Closed Date",
        Kind::Date,
        true,
    ),
    f(
        "Microsoft.VSTS.Common.ClosedBy",
        "Closed By",
        Kind::Identity,
        true,
    ),
    f(
        "Microsoft.VSTS.Scheduling.StoryPoints",
        "Story Points",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.Effort",
        "Effort",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.RemainingWork",
        "Remaining Work",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.OriginalEstimate",
        "Original Estimate",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.CompletedWork",
        "Completed Work",
        Kind::Double,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.StartDate",
        "Start Date",
        Kind::Date,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.TargetDate",
        "Target Date",
        Kind::Date,
        false,
    ),
    f(
        "Microsoft.VSTS.Scheduling.DueDate",
        "Due Date",
        Kind::Date,
        false,
    ),
    f(
        "Microsoft.VSTS.TCM.ReproSteps",
        "Repro Steps",
        Kind::Html,
        false,
    ),
    f(
        "Microsoft.VSTS.TCM.SystemInfo",
        "System Info",
        Kind::Html,
        false,
    ),
    f(
        "Microsoft.VSTS.Build.FoundIn",
        "Found In",
        Kind::String,
        false,
    ),
    f(
        "Microsoft.VSTS.Build.IntegrationBuild",
        "Integration Build",
        Kind::String,
        false,
    ),
];

/// A field by reference name or friendly name, case-insensitively (as WIQL and the API do).
pub fn field(name: &str) -> Option<&'static FieldDef> {
    FIELDS
        .iter()
        .find(|f| f.reference.eq_ignore_ascii_case(name) || f.name.eq_ignore_ascii_case(name))
}

pub fn kind_of(reference: &str) -> Kind {
    field(reference).map(|f| f.kind).unwrap_or(Kind::String)
}

pub struct StateDef {
    pub name: &'static str,
    pub color: &'static str,
    pub category: &'static str,
}

pub struct TypeDef {
    pub name: &'static str,
    pub reference: &'static str,
    pub color: &'static str,
    pub icon: &'static str,
    pub description: &'static str,
    pub states: &'static [StateDef],
}

const fn s(name: &'static str, color: &'static str, category: &'static str) -> StateDef {
    StateDef {
        name,
        color,
        category,
    }
}

const NEW: StateDef = s("New", "b2b2b2", "Proposed");
const ACTIVE: StateDef = s("Active", "007acc", "InProgress");
const RESOLVED: StateDef = s("Resolved", "ff9d00", "Resolved");
const CLOSED: StateDef = s("Closed", "339933", "Completed");
const REMOVED: StateDef = s("Removed", "ffffff", "Removed");

pub static TYPES: &[TypeDef] = &[
    TypeDef {
        name: "Epic",
        reference: "Microsoft.VSTS.WorkItemTypes.Epic",
        color: "FF7B00",
        icon: "icon_crown",
        description: "Epics help teams effectively manage and groom their product backlog",
        states: &[NEW, ACTIVE, RESOLVED, CLOSED, REMOVED],
    },
    TypeDef {
        name: "Feature",
        reference: "Microsoft.VSTS.WorkItemTypes.Feature",
        color: "773B93",
        icon: "icon_trophy",
        description: "Tracks a feature that will be released with the product",
        states: &[NEW, ACTIVE, RESOLVED, CLOSED, REMOVED],
    },
    TypeDef {
        name: "User Story",
        reference: "Microsoft.VSTS.WorkItemTypes.UserStory",
        color: "009CCC",
        icon: "icon_book",
        description: "Tracks an activity the user will be able to perform with the product",
        states: &[NEW, ACTIVE, RESOLVED, CLOSED, REMOVED],
    },
    TypeDef {
        name: "Task",
        reference: "Microsoft.VSTS.WorkItemTypes.Task",
        color: "F2CB1D",
        icon: "icon_clipboard",
        description: "Tracks work that needs to be done.",
        states: &[NEW, ACTIVE, CLOSED, REMOVED],
    },
    TypeDef {
        name: "Bug",
        reference: "Microsoft.VSTS.WorkItemTypes.Bug",
        color: "CC293D",
        icon: "icon_insect",
        description: "Describes a divergence between required and actual behavior, and tracks the work done to correct the defect and verify the correction.",
        states: &[NEW, ACTIVE, RESOLVED, CLOSED],
    },
    TypeDef {
        name: "Issue",
        reference: "Microsoft.VSTS.WorkItemTypes.Issue",
        color: "B4009E",
        icon: "icon_traffic_cone",
        description: "Tracks an obstacle to progress.",
        states: &[ACTIVE, CLOSED],
    },
];

pub fn work_item_type(name: &str) -> Option<&'static TypeDef> {
    TYPES.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

impl TypeDef {
    pub fn state(&self, name: &str) -> Option<&'static StateDef> {
        self.states
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
    pub fn initial_state(&self) -> &'static StateDef {
        &self.states[0]
    }
    /// Fields the type defaults on create (Agile process templates).
    pub fn defaults(&self) -> &'static [(&'static str, DefaultValue)] {
        match self.name {
            "Epic" | "Feature" | "User Story" => &[
                ("Microsoft.VSTS.Common.Priority", DefaultValue::Int(2)),
                (
                    "Microsoft.VSTS.Common.ValueArea",
                    DefaultValue::Str("Business"),
                ),
            ],
            "Bug" => &[
                ("Microsoft.VSTS.Common.Priority", DefaultValue::Int(2)),
                (
                    "Microsoft.VSTS.Common.Severity",
                    DefaultValue::Str("3 - Medium"),
                ),
                (
                    "Microsoft.VSTS.Common.ValueArea",
                    DefaultValue::Str("Business"),
                ),
            ],
            _ => &[("Microsoft.VSTS.Common.Priority", DefaultValue::Int(2))],
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    Int(i64),
    Str(&'static str),
}

/// The reason the service records for entering a state.
pub fn reason_for(type_name: &str, from: Option<&str>, to: &str) -> &'static str {
    match (from, to) {
        (None, _) => "New",
        (_, "Active") if type_name == "Bug" => "Approved",
        (_, "Active") => "Implementation started",
        (_, "New") => "Moved to the backlog",
        (_, "Resolved") => "Code complete and unit tests pass",
        (_, "Closed") => "Acceptance tests pass",
        (_, "Removed") => "Removed from the backlog",
        _ => "",
    }
}
