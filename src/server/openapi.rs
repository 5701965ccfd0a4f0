//! `GET /openapi.json`: the OpenAPI document of palaver's whole HTTP API.
//!
//! The document is written by hand in `docs/openapi.yaml` (reusing the shapes of Rasa's
//! own `rasa.yml` where they are right) and compiled into the binary. Two checks keep it
//! true: `tests/ops_openapi.rs` compares its paths and methods with the router's, and
//! `.ci/schemathesis.sh` fuzzes a live server against it. A new route must be added to
//! the YAML file, or that test fails and names it.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The YAML source of the document.
pub const SOURCE: &str = include_str!("../../docs/openapi.yaml");

static DOCUMENT: OnceLock<Result<Value, String>> = OnceLock::new();

/// The document as JSON (parsed once).
pub fn document() -> Result<&'static Value, &'static str> {
    DOCUMENT
        .get_or_init(|| {
            crate::yaml::parse_str(SOURCE, "docs/openapi.yaml").map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(String::as_str)
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    match document() {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(e) => {
            tracing::error!(error = e, "the built-in OpenAPI document does not parse");
            super::ApiError::conversation_error(e).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_parses_and_every_reference_resolves() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(found.len() > 50);
        for r in found {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                assert!(op["operationId"].is_string(), "{method} {path}");
            }
        }
    }
}
