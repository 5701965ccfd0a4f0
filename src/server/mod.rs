//! Rasa's HTTP API.
//!
//! One module per resource: [`status`] (`/`, `/version`, `/status`) and
//! [`conversations`] (`/conversations/<id>/...`). [`error::ApiError`] renders every
//! error the way Rasa does; [`auth`] decides who may call what; [`cors`] applies the
//! `--cors` setting. Routes read JSON bodies with [`read_json`] so that a bad body
//! gets Rasa's answer instead of the web framework's default.

pub mod auth;
pub mod console;
pub mod conversations;
pub mod cors;
pub mod dialogue;
pub mod emulation;
pub mod error;
pub mod health;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod status;
pub mod webhooks;

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::Value;

use crate::agent::Agent;
use crate::processor::Conversations;
use auth::AuthConfig;
use error::ApiError;

/// Everything the request handlers share.
pub struct AppState {
    /// The loaded bot; `None` until one is loaded (routes then answer 409).
    pub agent: RwLock<Option<Arc<Agent>>>,
    /// Conversation storage.
    pub conversations: Conversations,
    /// Who may call the API.
    pub auth: AuthConfig,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// The `callback` channel's target, when credentials.yml configures it.
    pub callback: Option<crate::channels::callback::CallbackEndpoint>,
    /// Where the project came from, to load it again on `PUT /model`.
    pub project: ProjectSource,
    /// Draining state and shutdown hooks.
    pub lifecycle: Arc<crate::shutdown::Lifecycle>,
    /// The socket.io channel, when credentials.yml configures it.
    pub socketio: Option<crate::channels::socketio::SocketIoChannel>,
    /// Output channels that reach users outside of a request (socket.io, callback).
    pub push: crate::channels::push::PushChannels,
    /// Opt-in authentication of the channel webhooks (credentials.yml `webhook_auth`).
    pub channel_auth: crate::channels::auth::ChannelAuth,
}

/// The project folder and endpoints a server was started with.
#[derive(Debug, Clone)]
pub struct ProjectSource {
    /// The project folder.
    pub dir: std::path::PathBuf,
    /// The parsed endpoints.yml (`null` when there is none).
    pub endpoints: Value,
}

impl AppState {
    /// The loaded bot, or Rasa's 409 when none is loaded.
    pub fn agent(&self) -> Result<Arc<Agent>, ApiError> {
        self.agent
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(ApiError::no_agent)
    }
}

/// Shared state as the handlers receive it.
pub type SharedState = Arc<AppState>;

/// What the router needs to know besides the shared state.
#[derive(Clone, Debug, Default)]
pub struct RouterOptions {
    /// Mount the HTTP API (`--enable-api`); without it only `GET /` exists.
    pub enable_api: bool,
    /// Allowed CORS origins (`--cors`).
    pub cors: Vec<String>,
    /// Mount `/webhooks/rest/...`.
    pub rest_channel: bool,
    /// Mount `/webhooks/callback/...`.
    pub callback_channel: bool,
    /// Mount `GET /metrics` (`--metrics`).
    pub metrics: bool,
}

/// Builds the HTTP application.
pub fn router(state: SharedState, options: &RouterOptions) -> Router {
    let mut app = Router::new().route("/", get(status::hello));
    app = app
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(openapi::serve));
    if options.metrics {
        app = app.route("/metrics", get(metrics::scrape));
    }
    if options.rest_channel {
        app = app
            .route("/webhooks/rest", get(webhooks::health))
            .route("/webhooks/rest/", get(webhooks::health))
            .route("/webhooks/rest/webhook", post(webhooks::rest))
            .route("/webhooks/rest/webhook/", post(webhooks::rest));
    }
    if options.callback_channel {
        app = app
            .route("/webhooks/callback", get(webhooks::health))
            .route("/webhooks/callback/", get(webhooks::health))
            .route("/webhooks/callback/webhook", post(webhooks::callback))
            .route("/webhooks/callback/webhook/", post(webhooks::callback));
    }
    if state.socketio.is_some() {
        app = app
            .route("/webhooks/socketio", get(webhooks::health))
            .route("/webhooks/socketio/", get(webhooks::health));
    }
    if options.enable_api {
        app = console::routes(app);
    }
    if options.enable_api {
        app = app
            .route("/version", get(status::version))
            .route("/status", get(status::status))
            .route("/domain", get(model::domain))
            .route("/model", put(model::replace).delete(model::unload))
            .route("/model/parse", post(model::parse))
            .route("/model/predict", post(model::predict))
            .route(
                "/conversations/{*rest}",
                axum::routing::any(conversations::dispatch),
            );
    }
    let cors = Arc::new(cors::Cors::new(&options.cors));
    let mut app = app.fallback(fallback);
    if let Some(socketio) = &state.socketio {
        // After the fallback, so that socket.io requests (which match no route) reach it.
        app = app.layer(socketio.serve(&state));
    }
    app.with_state(state)
        .layer(axum::middleware::from_fn_with_state(cors, cors::apply))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: the query may hold the auth token.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
            }),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
}

async fn fallback(req: Request) -> Response {
    if req.method() == Method::OPTIONS {
        return axum::http::StatusCode::OK.into_response();
    }
    ApiError::unknown_path(req.uri().path()).into_response()
}

/// Reads a request body as JSON the way Rasa does: an empty body is `null`, anything
/// that is not JSON is the framework's 400, a body over the limit is a 413.
pub async fn read_json(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|_| ApiError::malformed_json())
}

/// Query-string parameters, decoded.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> QueryParams {
        QueryParams(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: only `true` (any case) is true, as in Rasa.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            None => default,
            Some(v) => v.eq_ignore_ascii_case("true"),
        }
    }

    /// A float parameter; an unparsable value counts as absent.
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| !f.is_nan())
    }

    /// `include_events`, default `AFTER_RESTART`; an unknown value is a 400.
    pub fn include_events(&self) -> Result<crate::tracker::EventVerbosity, ApiError> {
        match self.get("include_events") {
            None => Ok(crate::tracker::EventVerbosity::AfterRestart),
            Some(v) => {
                crate::tracker::EventVerbosity::parse(v).ok_or_else(ApiError::bad_include_events)
            }
        }
    }
}

/// A JSON response from already serialised bytes.
pub fn json_bytes(bytes: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}
