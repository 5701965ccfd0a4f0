//! CORS as Rasa's `--cors` option applies it.
//!
//! No `--cors`: no origin is allowed. `*`: every origin is allowed and echoed back.
//! Otherwise each entry is an origin (compared case-insensitively) or, if it contains
//! `*`, `?`, `]` or `\`, a regular expression matched at the start of the origin.
//! `OPTIONS` on any path is a 200 preflight answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use regex::Regex;

const METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";

enum Rule {
    Exact(String),
    Pattern(Regex),
}

/// The allowed origins.
pub struct Cors {
    any: bool,
    rules: Vec<Rule>,
}

impl Cors {
    /// Builds the rules from `--cors` values.
    pub fn new(origins: &[String]) -> Cors {
        let mut rules = Vec::new();
        let mut any = false;
        for o in origins {
            if o == "*" {
                any = true;
            } else if o.contains(['*', '?', ']', '\\']) {
                match Regex::new(&format!("^(?:{o})")) {
                    Ok(r) => rules.push(Rule::Pattern(r)),
                    Err(e) => {
                        tracing::warn!(origin = %o, error = %e, "ignoring an invalid --cors pattern")
                    }
                }
            } else {
                rules.push(Rule::Exact(o.to_lowercase()));
            }
        }
        Cors { any, rules }
    }

    /// The `Access-Control-Allow-Origin` value for a request, if it is allowed.
    fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        match origin {
            None => self.any.then(|| "*".to_owned()),
            Some(o) => {
                let ok = self.any
                    || self.rules.iter().any(|r| match r {
                        Rule::Exact(e) => e.eq_ignore_ascii_case(o),
                        Rule::Pattern(p) => p.is_match(o),
                    });
                ok.then(|| o.to_owned())
            }
        }
    }
}

fn add_headers(headers: &mut HeaderMap, allowed: &str) {
    if let Ok(v) = HeaderValue::from_str(allowed) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("filename"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Middleware: answers preflights and adds CORS headers to every allowed response.
pub async fn apply(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = cors.allow_origin(origin.as_deref());
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::OK.into_response();
        if let Some(a) = &allowed {
            add_headers(resp.headers_mut(), a);
            let requested = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| v.to_str().ok())
                .map(|m| m.to_ascii_uppercase());
            if requested.is_some_and(|m| METHODS.split(", ").any(|x| x == m)) {
                resp.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(METHODS),
                );
                if let Some(h) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    resp.headers_mut()
                        .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
                }
            }
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(a) = &allowed {
        add_headers(resp.headers_mut(), a);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_rules() {
        let none = Cors::new(&[]);
        assert_eq!(none.allow_origin(Some("http://a")), None);
        let any = Cors::new(&["*".into()]);
        assert_eq!(
            any.allow_origin(Some("http://a")).as_deref(),
            Some("http://a")
        );
        assert_eq!(any.allow_origin(None).as_deref(), Some("*"));
        let list = Cors::new(&["http://A.example".into(), "https://.*\\.corp".into()]);
        assert!(list.allow_origin(Some("http://a.example")).is_some());
        assert!(list.allow_origin(Some("https://x.corp")).is_some());
        assert!(list.allow_origin(Some("http://b.example")).is_none());
    }
}
