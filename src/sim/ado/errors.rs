//! Error answers in the shape the real service uses (FACTS §8): a `WrappedException` JSON body.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One API failure: HTTP status plus the fields of the wrapped exception.
#[derive(Debug, Clone, PartialEq)]
pub struct AdoError {
    pub status: StatusCode,
    pub type_key: &'static str,
    pub message: String,
    pub custom: Option<Value>,
}

/// .NET namespace of each exception type, so `typeName` reads like the real one.
fn namespace(type_key: &str) -> &'static str {
    match type_key {
        "VssVersionNotSpecifiedException"
        | "VssInvalidPreviewVersionException"
        | "VssVersionOutOfRangeException"
        | "VssRequestContentTypeNotSupportedException"
        | "VssPropertyValidationException" => "Microsoft.VisualStudio.Services.WebApi",
        "TestPatchOperationFailedException"
        | "PatchOperationFailedException"
        | "InvalidPatchFieldNameException" => "Microsoft.VisualStudio.Services.WebApi.Patch",
        "RequestBlockedException" => "Microsoft.TeamFoundation.Framework.Server",
        _ => "Microsoft.TeamFoundation.WorkItemTracking.Server",
    }
}

impl AdoError {
    pub fn new(status: StatusCode, type_key: &'static str, message: impl Into<String>) -> Self {
        AdoError {
            status,
            type_key,
            message: message.into(),
            custom: None,
        }
    }
    pub fn bad_request(type_key: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, type_key, message)
    }
    pub fn not_found(id: i64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "WorkItemUnauthorizedAccessException",
            format!(
                "TF401232: Work item {id} does not exist, or you do not have permissions to read it."
            ),
        )
    }
    pub fn unknown_field(name: &str) -> Self {
        Self::bad_request(
            "WorkItemFieldInvalidException",
            format!("TF51535: Cannot find field {name}."),
        )
    }
    /// A work item rule violation (state not allowed, required field empty, ...).
    pub fn rule(field_ref: &str, field_name: &str, codes: &str) -> Self {
        let message = format!("TF401320: Rule Error for field {field_name}. Error code: {codes}.");
        let mut e = Self::bad_request("RuleValidationException", message.clone());
        e.custom = Some(json!({
            "RuleValidationErrors": [{
                "fieldReferenceName": field_ref,
                "fieldStatusFlags": codes.to_lowercase(),
                "errorMessage": message,
                "fieldStatusCode": 0,
                "ruleValidationErrors": null
            }]
        }));
        e
    }
    pub fn body(&self) -> Value {
        let ns = namespace(self.type_key);
        let mut v = json!({
            "$id": "1",
            "innerException": null,
            "message": self.message,
            "typeName": format!("{ns}.{}, {ns}", self.type_key),
            "typeKey": self.type_key,
            "errorCode": 0,
            "eventId": 3000
        });
        if let (Some(custom), Some(obj)) = (&self.custom, v.as_object_mut()) {
            obj.insert("customProperties".into(), custom.clone());
        }
        v
    }
}

impl IntoResponse for AdoError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        r
    }
}

/// Body for a status injected by the fault machinery: the service's error shape.
pub fn fault_body(status: StatusCode) -> Response {
    let (key, msg) = match status.as_u16() {
        429 => (
            "RequestBlockedException",
            "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'WorkItemTracking' in namespace 'User'.",
        ),
        // The concurrent-save race (FACTS §3): what a client sees as a 409.
        409 => ("WorkItemRevisionMismatchException", "TF26071: This work item has been changed by someone else since you opened it. You will need to refresh it and discard your changes."),
        503 => ("ServiceUnavailableException", "TF400898: The service is temporarily unavailable."),
        502 => ("BadGatewayException", "Bad gateway."),
        _ => ("InternalServerErrorException", "TF246020: An internal error occurred."),
    };
    let mut r = AdoError::new(status, key, msg).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// 401 for a missing or wrong PAT: not JSON, as the real service (FACTS §8).
pub fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "<html><head><title>Access Denied</title></head><body>TF400813: The user is not authorized to access this resource.</body></html>",
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"https://dev.azure.com/\""),
    );
    r
}
