//! The human-handoff console (`/console/`) and the conversation list it reads
//! (`GET /conversations`).
//!
//! The console is one static page (HTML, CSS and JavaScript embedded in the binary, no
//! build step). The page itself holds no data and is served to anyone; everything it
//! shows or changes goes through the HTTP API with the API's own auth: the page asks
//! for the `--auth-token` or an admin JWT, keeps it in the tab's `sessionStorage`, and
//! sends it as `?token=` or `Authorization: Bearer`. It polls for updates, and posts
//! the same events as the curl recipe: `pause`; `resume` plus a `followup` (run at once
//! with `execute_side_effects=true`); and the agent's answers as `bot` events with
//! `metadata.human_agent`, delivered through the user's channel
//! (`output_channel=latest`).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{json_bytes, ApiError, QueryParams, SharedState};
use crate::stores::ConversationQuery;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Conversations per page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest `limit` accepted.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Adds the console's routes and `GET /conversations` (both need `--enable-api`).
pub fn routes(app: Router<SharedState>) -> Router<SharedState> {
    app.route("/conversations", get(list_conversations))
        .route("/conversations/", get(list_conversations))
        .route(
            "/console",
            get(|| async { Redirect::permanent("console/") }),
        )
        .route("/console/", get(index))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(stylesheet))
}

/// A static file of the console, with headers that keep it from being framed or
/// made to load anything from elsewhere.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// A non-negative whole number query parameter.
fn count_param(q: &QueryParams, name: &str, default: usize) -> Result<usize, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => {
            let v = v.trim();
            match v.parse::<usize>() {
                Ok(n) => Ok(n),
                // A whole number too large to count up to is still a valid offset: past the end.
                Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(usize::MAX),
                Err(_) => Err(ApiError::bad_parameter(
                    format!("Invalid parameter value for '{name}'. Should be a whole number >= 0."),
                    name,
                    "query",
                )),
            }
        }
    }
}

/// `GET /conversations` (admin): conversation ids with their last activity and whether
/// the bot is paused, the most recently active first.
///
/// Query: `limit` (default 50, at most 1000), `offset` (default 0), `paused`
/// (`true`/`false`: only paused / only unpaused ones). Answer:
/// `{"conversations": [{"sender_id", "latest_event_time", "paused"}], "total",
/// "offset", "limit", "next_offset"}`, `next_offset` being `null` on the last page.
pub async fn list_conversations(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    // No conversation id: only the token and admin JWTs get through.
    state.auth.check(&headers, q.get("token"), None)?;
    let limit = count_param(&q, "limit", DEFAULT_PAGE_SIZE)?;
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ApiError::bad_parameter(
            format!(
                "Invalid parameter value for 'limit'. Should be between 1 and {MAX_PAGE_SIZE}."
            ),
            "limit",
            "query",
        ));
    }
    let offset = count_param(&q, "offset", 0)?;
    let paused = match q.get("paused") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "Invalid parameter value for 'paused'. Should be true or false.",
                "paused",
                "query",
            ))
        }
    };
    let page = state
        .conversations
        .store()
        .list_conversations(&ConversationQuery {
            offset,
            limit,
            paused,
        })
        .await?;
    let next = offset.saturating_add(page.conversations.len());
    let next_offset = (next < page.total && !page.conversations.is_empty()).then_some(next);
    let body = json!({
        "conversations": page.conversations,
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "next_offset": next_offset,
    });
    serde_json::to_vec(&body)
        .map(json_bytes)
        .map_err(ApiError::conversation_error)
}
