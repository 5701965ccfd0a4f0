//! Opt-in authentication of input channels, configured per channel in credentials.yml.
//!
//! Rasa leaves its channel webhooks open to anyone who can reach them (its users ask
//! for more, rasa_core#1265). palaver keeps that default and lets a public deployment
//! require, per channel, either a shared secret in a header or a JWT:
//!
//! ```yaml
//! rest:
//!   webhook_auth:
//!     secret: ${REST_WEBHOOK_SECRET}   # the request must carry it ...
//!     header: X-Webhook-Secret         # ... in this header (the default)
//! callback:
//!   url: https://example.com/bot
//!   webhook_auth:
//!     jwt_key: ${CALLBACK_JWT_KEY}     # HS* secret, or an RS*/ES*/EdDSA public key (PEM text or file)
//!     jwt_method: HS256                # the default
//! ```
//!
//! A JWT is sent as `Authorization: Bearer <jwt>`. The socket.io channel authenticates
//! its connections with Rasa's own `jwt_key`/`jwt_method` instead (see
//! [`super::socketio`]), which uses [`ChannelJwt`] too. Secrets are compared in constant
//! time and never logged.

use std::collections::HashMap;
use std::collections::HashSet;

use axum::http::{header, HeaderMap, HeaderName};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::config::ConfigError;
use crate::server::error::ApiError;

/// Header that carries a channel's shared secret when `webhook_auth` names none.
pub const DEFAULT_SECRET_HEADER: &str = "x-webhook-secret";

/// A JWT verifier for a channel (`jwt_key` + `jwt_method`), as Rasa's
/// `decode_bearer_token` checks channel tokens: signature and algorithm, and `exp`/`nbf`
/// when the token has them; no claim is required.
#[derive(Clone)]
pub struct ChannelJwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for ChannelJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "ChannelJwt({:?})", self.validation.algorithms)
    }
}

impl ChannelJwt {
    /// A verifier for `key` with algorithm `method` (`HS256` if empty). For RS*/PS*/
    /// ES*/EdDSA the key is a public key in PEM, given as its text or as a file path.
    /// `what` names the setting in error messages (e.g. `socketio.jwt_key`).
    pub fn new(key: &str, method: &str, what: &str) -> Result<ChannelJwt, ConfigError> {
        let method = if method.is_empty() { "HS256" } else { method };
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| ConfigError(format!("{what}: unsupported JWT method '{method}'")))?;
        let pem = || -> Vec<u8> {
            if key.contains("-----BEGIN") {
                key.as_bytes().to_vec()
            } else {
                std::fs::read(key).unwrap_or_else(|_| key.as_bytes().to_vec())
            }
        };
        let not_pem = |kind: &str, e: jsonwebtoken::errors::Error| {
            ConfigError(format!("{what}: not an {kind} public key in PEM: {e}"))
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                DecodingKey::from_secret(key.as_bytes())
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                DecodingKey::from_rsa_pem(&pem()).map_err(|e| not_pem("RSA", e))?
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(&pem()).map_err(|e| not_pem("EC", e))?
            }
            Algorithm::EdDSA => {
                DecodingKey::from_ed_pem(&pem()).map_err(|e| not_pem("Ed25519", e))?
            }
            other => {
                return Err(ConfigError(format!(
                    "{what}: unsupported JWT method '{other:?}'"
                )))
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(ChannelJwt { key, validation })
    }

    /// The claims of a valid token; `None` for anything else. A `Bearer ` prefix is
    /// ignored, as Rasa ignores it.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let token = token.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        match jsonwebtoken::decode::<Value>(token, &self.key, &self.validation) {
            Ok(data) => Some(data.claims),
            Err(e) => {
                tracing::debug!(error = %e, "a channel JWT was refused");
                None
            }
        }
    }
}

/// How one channel's webhook authenticates its requests.
#[derive(Clone, Debug, Default)]
pub enum WebhookAuth {
    /// Anyone may post (Rasa's behaviour, the default).
    #[default]
    Open,
    /// The request must carry `secret` in header `header`.
    SharedSecret {
        /// The header holding the secret.
        header: HeaderName,
        /// The expected value.
        secret: String,
    },
    /// The request must carry a valid JWT as `Authorization: Bearer <jwt>`.
    Jwt(Box<ChannelJwt>),
}

impl WebhookAuth {
    /// Reads `webhook_auth` of a channel's credentials section (`channel` names it in
    /// error messages). No `webhook_auth` means [`WebhookAuth::Open`].
    pub fn from_section(channel: &str, section: &Value) -> Result<WebhookAuth, ConfigError> {
        let Some(auth) = section.get("webhook_auth").filter(|v| !v.is_null()) else {
            return Ok(WebhookAuth::Open);
        };
        let what = format!("credentials.yml {channel}.webhook_auth");
        let Some(auth) = auth.as_object() else {
            return Err(ConfigError(format!(
                "{what} must be a mapping with `secret` (and `header`) or `jwt_key` (and `jwt_method`)"
            )));
        };
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match auth.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(ConfigError(format!(
                    "{what}.{key} must be a non-empty text"
                ))),
            }
        };
        for key in auth.keys() {
            if !["secret", "header", "jwt_key", "jwt_method"].contains(&key.as_str()) {
                return Err(ConfigError(format!(
                    "{what}: unknown key '{key}' (use `secret` and `header`, or `jwt_key` and `jwt_method`)"
                )));
            }
        }
        match (text("secret")?, text("jwt_key")?) {
            (Some(_), Some(_)) => Err(ConfigError(format!(
                "{what}: give either `secret` or `jwt_key`, not both"
            ))),
            (Some(secret), None) => {
                let name = text("header")?.unwrap_or_else(|| DEFAULT_SECRET_HEADER.to_owned());
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ConfigError(format!("{what}.header: '{name}' is not a valid header name")))?;
                Ok(WebhookAuth::SharedSecret { header, secret })
            }
            (None, Some(key)) => {
                let method = text("jwt_method")?.unwrap_or_else(|| "HS256".to_owned());
                Ok(WebhookAuth::Jwt(Box::new(ChannelJwt::new(&key, &method, &what)?)))
            }
            (None, None) => Err(ConfigError(format!(
                "{what}: give `secret` (a shared secret sent in a header) or `jwt_key` (a JWT sent as `Authorization: Bearer`)"
            ))),
        }
    }

    /// Whether a request with these headers may use the webhook; Rasa's 401 otherwise.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let ok = match self {
            WebhookAuth::Open => true,
            WebhookAuth::SharedSecret { header, secret } => headers
                .get(header)
                .is_some_and(|given| bool::from(given.as_bytes().ct_eq(secret.as_bytes()))),
            WebhookAuth::Jwt(jwt) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|token| jwt.verify(token).is_some()),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::not_authenticated())
        }
    }
}

/// The webhook auth of every input channel, by channel name.
#[derive(Clone, Debug, Default)]
pub struct ChannelAuth {
    by_channel: HashMap<String, WebhookAuth>,
}

impl ChannelAuth {
    /// Reads `webhook_auth` of every channel section of credentials.yml. The
    /// `socketio` channel refuses it: its connections use `jwt_key`.
    pub fn from_credentials(credentials: &Value) -> Result<ChannelAuth, ConfigError> {
        let mut by_channel = HashMap::new();
        if let Some(sections) = credentials.as_object() {
            for (channel, section) in sections {
                if channel == "socketio" && section.get("webhook_auth").is_some() {
                    return Err(ConfigError(
                        "credentials.yml socketio.webhook_auth: socket.io connections are \
                         authenticated with `jwt_key` and `jwt_method`, as in Rasa"
                            .into(),
                    ));
                }
                let auth = WebhookAuth::from_section(channel, section)?;
                if !matches!(auth, WebhookAuth::Open) {
                    by_channel.insert(channel.clone(), auth);
                }
            }
        }
        Ok(ChannelAuth { by_channel })
    }

    /// Checks a request to `channel`'s webhook (open unless configured).
    pub fn check(&self, channel: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.by_channel.get(channel) {
            Some(auth) => auth.check(headers),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn status(r: Result<(), ApiError>) -> u16 {
        match r {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    #[test]
    fn open_by_default() {
        let auth =
            ChannelAuth::from_credentials(&json!({"rest": null, "callback": {"url": "http://x"}}))
                .unwrap();
        assert_eq!(status(auth.check("rest", &HeaderMap::new())), 200);
        assert_eq!(status(auth.check("callback", &HeaderMap::new())), 200);
        let auth = ChannelAuth::from_credentials(&Value::Null).unwrap();
        assert_eq!(status(auth.check("rest", &HeaderMap::new())), 200);
    }

    #[test]
    fn shared_secret_in_a_header() {
        let auth = ChannelAuth::from_credentials(&json!({
            "rest": {"webhook_auth": {"secret": "s3"}},
            "callback": {"url": "http://x", "webhook_auth": {"secret": "cb", "header": "X-Bot-Key"}}
        }))
        .unwrap();
        assert_eq!(status(auth.check("rest", &HeaderMap::new())), 401);
        assert_eq!(
            status(auth.check("rest", &headers(&[("x-webhook-secret", "no")]))),
            401
        );
        assert_eq!(
            status(auth.check("rest", &headers(&[("X-Webhook-Secret", "s3")]))),
            200
        );
        assert_eq!(
            status(auth.check("callback", &headers(&[("x-webhook-secret", "cb")]))),
            401
        );
        assert_eq!(
            status(auth.check("callback", &headers(&[("x-bot-key", "cb")]))),
            200
        );
    }

    #[test]
    fn jwt_bearer() {
        let auth = ChannelAuth::from_credentials(&json!({
            "rest": {"webhook_auth": {"jwt_key": "k3y", "jwt_method": "HS256"}}
        }))
        .unwrap();
        let good = encode(
            &Header::default(),
            &json!({"sub": "a"}),
            &EncodingKey::from_secret(b"k3y"),
        )
        .unwrap();
        let bad = encode(
            &Header::default(),
            &json!({"sub": "a"}),
            &EncodingKey::from_secret(b"other"),
        )
        .unwrap();
        let expired = encode(
            &Header::default(),
            &json!({"exp": 1000}),
            &EncodingKey::from_secret(b"k3y"),
        )
        .unwrap();
        let bearer = |t: &str| headers(&[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(status(auth.check("rest", &bearer(&good))), 200);
        assert_eq!(status(auth.check("rest", &bearer(&bad))), 401);
        assert_eq!(status(auth.check("rest", &bearer(&expired))), 401);
        assert_eq!(
            status(auth.check("rest", &headers(&[("authorization", &good)]))),
            401
        );
        assert_eq!(status(auth.check("rest", &HeaderMap::new())), 401);
    }

    #[test]
    fn configuration_mistakes_are_explained() {
        for bad in [
            json!({"rest": {"webhook_auth": "x"}}),
            json!({"rest": {"webhook_auth": {}}}),
            json!({"rest": {"webhook_auth": {"secret": "a", "jwt_key": "b"}}}),
            json!({"rest": {"webhook_auth": {"secret": "a", "extra": 1}}}),
            json!({"rest": {"webhook_auth": {"secret": "a", "header": "bad header"}}}),
            json!({"rest": {"webhook_auth": {"jwt_key": "a", "jwt_method": "XX1"}}}),
            json!({"rest": {"webhook_auth": {"jwt_key": "not a pem", "jwt_method": "RS256"}}}),
            json!({"socketio": {"webhook_auth": {"secret": "a"}}}),
        ] {
            let err = ChannelAuth::from_credentials(&bad).unwrap_err();
            assert!(err.0.contains("webhook_auth"), "{err}");
        }
    }

    #[test]
    fn channel_jwt_accepts_a_bearer_prefix() {
        let jwt = ChannelJwt::new("k", "", "x").unwrap();
        let t = encode(
            &Header::default(),
            &json!({"a": 1}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(jwt.verify(&t), Some(json!({"a": 1})));
        assert_eq!(jwt.verify(&format!("Bearer {t}")), Some(json!({"a": 1})));
        assert_eq!(jwt.verify("garbage"), None);
    }
}
