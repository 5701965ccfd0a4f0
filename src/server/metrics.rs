//! Prometheus metrics over HTTP: the recorder, `GET /metrics`, and the layer that counts
//! and times every HTTP request.
//!
//! Metrics are off unless `palaver run --metrics` (serves `/metrics` on the API port) or
//! `--metrics-port PORT` (serves it on a port of its own, so it need not be exposed with
//! the API) is given. The metric names are listed in [`crate::telemetry`].
//!
//! HTTP requests are labelled by the route *template* that matched (`/conversations/
//! {conversation_id}/tracker`, never `/conversations/alice/tracker`), so a series is
//! created per route, not per user; requests that match no route share `unmatched`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::telemetry::{HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets for every `*_seconds` metric: 1 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Why the metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(String);

/// Installs the Prometheus recorder for the whole process (once; later calls return the
/// same handle) and starts its upkeep task. Must run inside the tokio runtime.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|e| MetricsError(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    crate::telemetry::describe();
    // Without upkeep, histogram samples pile up between scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Whether a recorder is installed (the HTTP layer does nothing otherwise).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// `GET /metrics`: every metric in Prometheus' text format.
pub async fn scrape() -> Response {
    match HANDLE.get() {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => super::ApiError::unknown_path("/metrics").into_response(),
    }
}

/// The router of the separate metrics port (`--metrics-port`): `/metrics` only.
pub fn router() -> Router {
    Router::new().route("/metrics", get(scrape))
}

/// The label for a request's route: the matched template, with the conversation routes
/// (one catch-all in the router) told apart by their suffix.
fn route_label(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>() {
        Some(m) if m.as_str() == "/conversations/{*rest}" => {
            super::conversations::route_template(req.uri().path())
                .unwrap_or("unmatched")
                .to_owned()
        }
        Some(m) => m.as_str().to_owned(),
        None => "unmatched".to_owned(),
    }
}

/// The method as a label; methods outside HTTP's standard set are `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// Decrements the in-flight gauge even when the request is dropped half way.
struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    }
}

/// Middleware: counts and times each request by method, route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(req).await;
    }
    let method = method_label(req.method());
    let route = route_label(&req);
    metrics::gauge!(HTTP_IN_FLIGHT).increment(1.0);
    let _in_flight = InFlight;
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status)
        .record(elapsed);
    response
}
