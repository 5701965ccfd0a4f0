//! The OpenAPI document (`docs/openapi.yaml`, served at `/openapi.json`) lists exactly the
//! router's routes: every (method, path) it documents is routed, and every route of the
//! router, with every method it answers, is documented.
//!
//! The router is built in-process with every optional part on (API, REST and callback
//! channels, metrics). Its paths are read from its `Debug` output (axum has no route
//! listing); methods are probed with requests.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request};
use clap::Parser;
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

/// `/a/b/` and `/a/b` are one route (Rasa's routes ignore a trailing slash).
fn normalize(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_owned(),
        _ => path.to_owned(),
    }
}

async fn full_router(dir: &std::path::Path) -> axum::Router {
    std::fs::write(
        dir.join("endpoints.yml"),
        "tracker_store:\n  type: in_memory\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("credentials.yml"),
        "rest:\ncallback:\n  url: http://127.0.0.1:9/bot\nsocketio:\n",
    )
    .unwrap();
    let cli = palaver::config::Cli::parse_from([
        "palaver".into(),
        "run".into(),
        common::fixture_bot().display().to_string(),
        "--enable-api".into(),
        "--metrics".into(),
        "--endpoints".into(),
        dir.join("endpoints.yml").display().to_string(),
        "--credentials".into(),
        dir.join("credentials.yml").display().to_string(),
    ]);
    let palaver::config::Command::Run(args) = cli.command else {
        unreachable!()
    };
    palaver::server::metrics::install().unwrap();
    let state = palaver::cli::build_state(&args).await.unwrap();
    // Every optional part on; parts added later default to off.
    #[allow(clippy::needless_update)]
    let options = palaver::server::RouterOptions {
        enable_api: true,
        cors: Vec::new(),
        rest_channel: true,
        callback_channel: true,
        metrics: true,
        ..Default::default()
    };
    palaver::server::router(state, &options)
}

/// The paths of the router, from its `Debug` output.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let re = regex::Regex::new(r#"RouteId\(\d+\): "([^"]*)""#).unwrap();
    let paths: BTreeSet<String> = re
        .captures_iter(&text)
        .map(|c| normalize(&c[1]))
        // axum's own catch-all for the fallback.
        .filter(|p| !p.contains("__private__axum_fallback"))
        .collect();
    assert!(
        paths.contains("/version"),
        "cannot read routes from: {text}"
    );
    paths
}

/// Whether a request reached a route: not the fallback's 404, not a 405.
async fn routed(router: &axum::Router, method: &Method, path: &str) -> (bool, u16) {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let unknown_path = status == 404
        && body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Requested URL"));
    (!unknown_path && status != 405, status)
}

fn sample(path: &str) -> String {
    path.replace("{conversation_id}", "openapi-probe")
}

#[tokio::test]
async fn the_document_and_the_router_have_the_same_routes() {
    let dir = tempfile::tempdir().unwrap();
    let router = full_router(dir.path()).await;
    let doc = palaver::server::openapi::document().unwrap();
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let methods = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        documented.insert(normalize(path), methods);
    }

    // The router's paths, the conversation catch-all expanded into its routes.
    let mut routes = router_paths(&router);
    assert!(routes.remove("/conversations/{*rest}"));
    for t in palaver::server::conversations::route_templates() {
        routes.insert(t.to_owned());
    }
    let doc_paths: BTreeSet<String> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = routes.difference(&doc_paths).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml (document them there): {undocumented:?}"
    );
    let unrouted: Vec<_> = doc_paths.difference(&routes).collect();
    assert!(
        unrouted.is_empty(),
        "docs/openapi.yaml documents paths the router does not have: {unrouted:?}"
    );

    // Methods: documented ones are routed, the others are not. DELETE /model goes last,
    // since it unloads the bot.
    let mut probes = Vec::new();
    for (path, methods) in &documented {
        for m in METHODS {
            probes.push((path.clone(), m.clone(), methods.contains(m.as_str())));
        }
    }
    probes.sort_by_key(|(p, m, _)| p == "/model" && *m == Method::DELETE);
    for (path, method, expected) in probes {
        let (is_routed, status) = routed(&router, &method, &sample(&path)).await;
        assert_eq!(
            is_routed, expected,
            "{method} {path}: answered {status}; documented: {expected}"
        );
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let s = common::Server::start().await;
    let (status, body) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(&body, palaver::server::openapi::document().unwrap());
    assert!(body["paths"]["/conversations/{conversation_id}/tracker"]["get"].is_object());
}
