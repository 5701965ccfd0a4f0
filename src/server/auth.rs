//! Authentication of HTTP API requests, exactly as Rasa decides it.
//!
//! In order: a `?token=` equal to the server token allows everything; otherwise a
//! valid JWT (`Authorization: Bearer <jwt>`) allows role `admin` everything and role
//! `user` only its own conversation (403 otherwise); with neither a token nor a JWT
//! secret configured everything is open; anything else is 401. Tokens are compared
//! in constant time, and nothing here logs a token or a JWT.

use std::collections::HashSet;

use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// JWT verification settings (`--jwt-secret`, `--jwt-method`).
#[derive(Clone)]
pub struct JwtConfig {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "JwtConfig({:?})", self.validation.algorithms)
    }
}

impl JwtConfig {
    /// Builds the verifier. For HS* `secret` is the shared secret; for RS*/PS*/ES*/EdDSA
    /// it is the public key in PEM, given as the PEM text or as the path of a PEM file.
    pub fn new(secret: &str, method: &str) -> Result<JwtConfig, String> {
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| format!("unsupported --jwt-method '{method}'"))?;
        let pem = || -> Vec<u8> {
            if secret.contains("-----BEGIN") {
                secret.as_bytes().to_vec()
            } else {
                std::fs::read(secret).unwrap_or_else(|_| secret.as_bytes().to_vec())
            }
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem())
                .map_err(|e| format!("--jwt-secret is not an RSA public key in PEM: {e}"))?,
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem())
                .map_err(|e| format!("--jwt-secret is not an EC public key in PEM: {e}"))?,
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem())
                .map_err(|e| format!("--jwt-secret is not an Ed25519 public key in PEM: {e}"))?,
            other => return Err(format!("unsupported --jwt-method '{other:?}'")),
        };
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.leeway = 180;
        Ok(JwtConfig { key, validation })
    }

    fn verify(&self, token: &str) -> Option<Value> {
        jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The server's authentication settings.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// `--auth-token`.
    pub token: Option<String>,
    /// `--jwt-secret` / `--jwt-method`.
    pub jwt: Option<JwtConfig>,
}

impl AuthConfig {
    /// Decides whether a request may proceed. `conversation` is the conversation id of
    /// routes that have one: only those are open to JWT role `user`.
    pub fn check(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        conversation: Option<&str>,
    ) -> Result<(), ApiError> {
        if let (Some(expected), Some(given)) = (&self.token, query_token) {
            if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                return Ok(());
            }
        }
        if let Some(jwt) = &self.jwt {
            if let Some(value) = headers.get(header::AUTHORIZATION) {
                let value = value
                    .to_str()
                    .map_err(|_| ApiError::invalid_authorization_header())?;
                let parts: Vec<&str> = value.split(' ').collect();
                let token = match parts.as_slice() {
                    ["Bearer", token] if !token.is_empty() => *token,
                    _ => return Err(ApiError::invalid_authorization_header()),
                };
                if let Some(claims) = jwt.verify(token) {
                    return if may_access(&claims, conversation) {
                        Ok(())
                    } else {
                        Err(ApiError::not_authorized())
                    };
                }
            }
        }
        if self.token.is_none() && self.jwt.is_none() {
            return Ok(());
        }
        Err(ApiError::not_authenticated())
    }
}

fn may_access(claims: &Value, conversation: Option<&str>) -> bool {
    let user = &claims["user"];
    match user["role"].as_str() {
        Some("admin") => true,
        Some("user") => match (user["username"].as_str(), conversation) {
            (Some(name), Some(id)) => name == id,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn jwt(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn status(r: Result<(), ApiError>) -> u16 {
        match r {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    #[test]
    fn decision_matrix() {
        let cfg = AuthConfig {
            token: Some("s3cret".into()),
            jwt: Some(JwtConfig::new("j3cret", "HS256").unwrap()),
        };
        let none = HeaderMap::new();
        assert_eq!(status(cfg.check(&none, Some("s3cret"), None)), 200);
        assert_eq!(status(cfg.check(&none, Some("wrong"), None)), 401);
        assert_eq!(status(cfg.check(&none, None, Some("a"))), 401);
        let admin = jwt(
            json!({"user": {"username": "x", "role": "admin"}}),
            "j3cret",
        );
        let user_a = jwt(json!({"user": {"username": "a", "role": "user"}}), "j3cret");
        let bad = jwt(json!({"user": {"username": "a", "role": "admin"}}), "other");
        let expired = jwt(
            json!({"user": {"username": "a", "role": "admin"}, "exp": 1000}),
            "j3cret",
        );
        let b = |t: &str| headers(&format!("Bearer {t}"));
        assert_eq!(status(cfg.check(&b(&admin), None, None)), 200);
        assert_eq!(status(cfg.check(&b(&user_a), None, Some("a"))), 200);
        assert_eq!(status(cfg.check(&b(&user_a), None, Some("b"))), 403);
        assert_eq!(status(cfg.check(&b(&user_a), None, None)), 403);
        assert_eq!(status(cfg.check(&b(&bad), None, None)), 401);
        assert_eq!(status(cfg.check(&b(&expired), None, None)), 401);
        assert_eq!(status(cfg.check(&headers("Bearer  x"), None, None)), 400);
        assert_eq!(status(cfg.check(&headers(&admin), None, None)), 400);
        // A correct token wins over a broken header.
        assert_eq!(
            status(cfg.check(&headers("junk"), Some("s3cret"), None)),
            200
        );
        assert_eq!(status(AuthConfig::default().check(&none, None, None)), 200);
    }

    #[test]
    fn wrong_algorithm_is_401() {
        let cfg = AuthConfig {
            token: None,
            jwt: Some(JwtConfig::new("j3cret", "HS256").unwrap()),
        };
        let t = encode(
            &Header::new(Algorithm::HS512),
            &json!({"user": {"role": "admin"}}),
            &EncodingKey::from_secret(b"j3cret"),
        )
        .unwrap();
        assert_eq!(
            status(cfg.check(&headers(&format!("Bearer {t}")), None, None)),
            401
        );
    }
}
