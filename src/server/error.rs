//! The one error type of the HTTP API, rendered exactly as Rasa renders its errors.
//!
//! Rasa answers with two kinds of error bodies: its own envelope (`version`,
//! `status`, `message`, `reason`, `details`, `help`, `code`) for errors its handlers
//! raise, and the web framework's `{"description", "status", "message"}` for errors
//! raised before a handler runs (bad JSON, unknown path, wrong method). Clients and
//! scripts look at both, so [`ApiError`] reproduces both.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::agent::RASA_VERSION;
use crate::stores::StoreError;

const DOCS: &str = "https://rasa.com/docs/rasa";

/// An error answer of the HTTP API (boxed: handlers return it on every path).
#[derive(Debug)]
pub struct ApiError(Box<ErrorBody>);

/// The kinds of error body.
#[derive(Debug)]
pub enum ErrorBody {
    /// Rasa's error envelope.
    Rasa {
        /// HTTP status.
        status: StatusCode,
        /// Short category, e.g. `BadRequest`.
        reason: &'static str,
        /// Human readable explanation.
        message: String,
        /// `{"parameter": ..., "in": ...}` for parameter errors, else `{}`.
        details: Value,
        /// A documentation link, or none.
        help: Option<String>,
    },
    /// The web framework's error body.
    Framework {
        /// HTTP status.
        status: StatusCode,
        /// Human readable explanation.
        message: String,
    },
    /// A malformed `Authorization` header while JWT auth is on (the JWT library's body).
    InvalidAuthorizationHeader,
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> ApiError {
        ApiError(Box::new(body))
    }
}

impl ApiError {
    fn rasa(status: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ErrorBody::Rasa {
            status,
            reason,
            message: message.into(),
            details: json!({}),
            help: None,
        }
        .into()
    }

    /// 400 `BadRequest` about a parameter (`location` is `query` or `body`).
    pub fn bad_parameter(message: impl Into<String>, parameter: &str, location: &str) -> ApiError {
        ErrorBody::Rasa {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
            details: json!({"parameter": parameter, "in": location}),
            help: None,
        }
        .into()
    }

    /// 400 for events that fail Rasa's event schema.
    pub fn invalid_events(detail: &str) -> ApiError {
        ErrorBody::Rasa {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: format!(
                "Failed to validate the events format. For more information about the format \
                 visit the docs. Error: {detail}"
            ),
            details: json!({}),
            help: Some(format!("{DOCS}/pages/http-api")),
        }
        .into()
    }

    /// 400 for a bad `include_events` value.
    pub fn bad_include_events() -> ApiError {
        ApiError::bad_parameter(
            "Invalid parameter value for 'include_events'. Should be one of NONE, APPLIED, AFTER_RESTART, ALL",
            "include_events",
            "query",
        )
    }

    /// 401 `NotAuthenticated`.
    pub fn not_authenticated() -> ApiError {
        ErrorBody::Rasa {
            status: StatusCode::UNAUTHORIZED,
            reason: "NotAuthenticated",
            message: "User is not authenticated.".into(),
            details: json!({}),
            help: Some(format!(
                "{DOCS}/user-guide/configuring-http-api/#security-considerations"
            )),
        }
        .into()
    }

    /// 403 `NotAuthorized`.
    pub fn not_authorized() -> ApiError {
        ErrorBody::Rasa {
            status: StatusCode::FORBIDDEN,
            reason: "NotAuthorized",
            message: "User has insufficient permissions.".into(),
            details: json!({}),
            help: Some(format!(
                "{DOCS}/user-guide/configuring-http-api/#security-considerations"
            )),
        }
        .into()
    }

    /// 404 for a conversation that must exist but does not.
    pub fn conversation_not_found() -> ApiError {
        ApiError::rasa(
            StatusCode::NOT_FOUND,
            "Not found",
            "Conversation ID not found.",
        )
    }

    /// 409 when no bot is loaded.
    pub fn no_agent() -> ApiError {
        ErrorBody::Rasa {
            status: StatusCode::CONFLICT,
            reason: "Conflict",
            message: "No agent loaded. To continue processing, a model of a trained agent needs to be loaded."
                .into(),
            details: json!({}),
            help: Some(format!("{DOCS}/user-guide/configuring-http-api/")),
        }.into()
    }

    /// 500 `ConversationError`, Rasa's catch-all of the conversation routes.
    pub fn conversation_error(detail: impl std::fmt::Display) -> ApiError {
        ApiError::rasa(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ConversationError",
            format!("An unexpected error occurred. Error: {detail}"),
        )
    }

    /// The framework's 400 for a body that is not JSON.
    pub fn malformed_json() -> ApiError {
        ErrorBody::Framework {
            status: StatusCode::BAD_REQUEST,
            message: "Failed when parsing body as json".into(),
        }
        .into()
    }

    /// The framework's 500 for a body of the wrong JSON type.
    pub fn framework_500(message: impl Into<String>) -> ApiError {
        ErrorBody::Framework {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
        .into()
    }

    /// A Rasa envelope error with any status and reason.
    pub fn with_reason(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::rasa(status, reason, message)
    }

    /// The framework's 404 for an unknown path.
    pub fn unknown_path(path: &str) -> ApiError {
        ErrorBody::Framework {
            status: StatusCode::NOT_FOUND,
            message: format!("Requested URL {path} not found"),
        }
        .into()
    }

    /// The framework's 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ErrorBody::Framework {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("Method {method} not allowed for URL {path}"),
        }
        .into()
    }

    /// The framework's 413 for a body over the size limit.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ErrorBody::Framework {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body exceeds the size limit of {limit} bytes"),
        }
        .into()
    }

    /// A malformed `Authorization` header while JWT auth is on.
    pub fn invalid_authorization_header() -> ApiError {
        ErrorBody::InvalidAuthorizationHeader.into()
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match &*self.0 {
            ErrorBody::Rasa { status, .. } | ErrorBody::Framework { status, .. } => *status,
            ErrorBody::InvalidAuthorizationHeader => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "tracker store error");
        match e {
            StoreError::Unavailable(_) => ApiError::rasa(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("{e}. Nothing was changed; retry later."),
            ),
            StoreError::Corrupt(_) => ApiError::conversation_error(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match *self.0 {
            ErrorBody::Rasa {
                status,
                reason,
                message,
                details,
                help,
            } => json!({
                "version": RASA_VERSION,
                "status": "failure",
                "message": message,
                "reason": reason,
                "details": details,
                "help": help,
                "code": status.as_u16(),
            }),
            ErrorBody::Framework { status, message } => json!({
                "description": status.canonical_reason().unwrap_or("Error"),
                "status": status.as_u16(),
                "message": message,
            }),
            ErrorBody::InvalidAuthorizationHeader => json!({
                "reasons": ["Authorization header is invalid."],
                "exception": "InvalidAuthorizationHeader",
            }),
        };
        (status, axum::Json(body)).into_response()
    }
}
