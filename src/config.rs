//! Command-line flags (with Rasa's names) and `endpoints.yml`.
//!
//! Every flag of `palaver run` can also be set with a `PALAVER_*` environment
//! variable, so that containers can be configured without a command line.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::yaml;

/// palaver: a Rasa-compatible dialogue server.
#[derive(Debug, Parser)]
#[command(name = "palaver", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// palaver's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a Rasa project (like `rasa run`).
    Run(RunArgs),
    /// Talk to a bot in the terminal (like `rasa shell`).
    Shell(RunArgs),
    /// Check project data (like `rasa data ...`).
    #[command(subcommand)]
    Data(DataCommand),
    /// Create a starter bot that `palaver run` serves at once (like `rasa init`).
    Init(InitArgs),
    /// Ask a running server whether it is alive (exit 0) or not (exit 1); for container
    /// health checks where no curl is installed.
    Health(HealthArgs),
}

/// Flags of `palaver init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Folder to create the bot in (created if needed).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite the starter bot's files if they exist.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `palaver health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// URL to GET [default: http://127.0.0.1:$PALAVER_PORT/health/live, port 5005 when
    /// PALAVER_PORT is unset].
    #[arg(long, env = "PALAVER_HEALTH_URL")]
    pub url: Option<String>,
}

/// `palaver data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check the domain, stories, rules and NLU data for mistakes, as `rasa data
    /// validate` does; exits non-zero when there are errors.
    Validate {
        /// The Rasa project folder.
        #[arg(default_value = ".")]
        project: PathBuf,
        /// Domain file or folder (default: domain.yml or domain/ in the project).
        #[arg(long)]
        domain: Option<PathBuf>,
        /// Data folder (default: data/ in the project).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `palaver run`, named as `rasa run` names them.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The Rasa project folder (domain.yml, config.yml, data/, endpoints.yml).
    #[arg(default_value = ".", env = "PALAVER_PROJECT")]
    pub project: PathBuf,
    /// Port to listen on.
    #[arg(short, long, default_value_t = 5005, env = "PALAVER_PORT")]
    pub port: u16,
    /// Address to bind.
    #[arg(short, long, default_value = "0.0.0.0", env = "PALAVER_INTERFACE")]
    pub interface: String,
    /// Serve the HTTP API (otherwise only `/` and the channel webhooks).
    #[arg(long, env = "PALAVER_ENABLE_API")]
    pub enable_api: bool,
    /// Token that API requests must give as `?token=`.
    #[arg(short = 't', long, env = "PALAVER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Secret (HS*) or public key in PEM (RS*/ES*/EdDSA) for JWT auth.
    #[arg(long, env = "PALAVER_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWT algorithm.
    #[arg(long, default_value = "HS256", env = "PALAVER_JWT_METHOD")]
    pub jwt_method: String,
    /// Endpoints file (tracker store, lock store, action server...).
    #[arg(long, default_value = "endpoints.yml", env = "PALAVER_ENDPOINTS")]
    pub endpoints: PathBuf,
    /// Credentials file (input channels).
    #[arg(long, default_value = "credentials.yml", env = "PALAVER_CREDENTIALS")]
    pub credentials: PathBuf,
    /// Allowed CORS origins (`*` for any).
    #[arg(long, num_args = 0.., value_delimiter = ',', env = "PALAVER_CORS")]
    pub cors: Vec<String>,
    /// Domain file or folder (default: domain.yml or domain/ in the project).
    #[arg(long, env = "PALAVER_DOMAIN")]
    pub domain: Option<PathBuf>,
    /// Config file (default: config.yml in the project).
    #[arg(long, env = "PALAVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 100_000_000, env = "PALAVER_MAX_BODY_SIZE")]
    pub max_body_size: usize,
    /// How many conversations to keep in memory.
    #[arg(long, default_value_t = 10_000, env = "PALAVER_TRACKER_CACHE_SIZE")]
    pub tracker_cache_size: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PALAVER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics at `GET /metrics` on the API port.
    #[arg(long, env = "PALAVER_METRICS")]
    pub metrics: bool,
    /// Serve Prometheus metrics at `GET /metrics` on this port instead (same interface).
    #[arg(long, env = "PALAVER_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Seconds to let requests in progress finish after SIGTERM/ctrl-c, and again for
    /// the shutdown hooks (broker flush) after that.
    #[arg(long, default_value_t = 10.0, value_parser = seconds, env = "PALAVER_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: f64,
}

/// A number of seconds: finite and not negative.
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "'{text}' is not a number of seconds (e.g. 10 or 2.5)"
        )),
    }
}

impl RunArgs {
    /// Resolves a file flag: as given if it exists, else inside the project folder.
    pub fn project_file(&self, p: &Path) -> Option<PathBuf> {
        if p.exists() {
            Some(p.to_path_buf())
        } else {
            let inside = self.project.join(p);
            inside.exists().then_some(inside)
        }
    }
}

/// An outgoing HTTP target as Rasa configures one (its `EndpointConfig`): `url`,
/// `params`, `token` (sent as the query parameter `token_name`), `headers`,
/// `basic_auth`. Used by the action endpoint and the callback channel.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Where requests go.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Query parameters, the token included.
    pub params: Vec<(String, String)>,
    /// HTTP basic auth (username, password).
    pub basic_auth: Option<(String, String)>,
}

impl EndpointConfig {
    /// Reads an endpoint section; `None` when it has no `url`.
    pub fn from_value(cfg: &Value) -> Option<EndpointConfig> {
        let url = cfg.get("url")?.as_str()?.to_owned();
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pairs = |key: &str| -> Vec<(String, String)> {
            cfg.get(key)
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default()
        };
        let mut params = pairs("params");
        if let Some(token) = cfg.get("token").filter(|v| !v.is_null()) {
            let name = cfg
                .get("token_name")
                .and_then(Value::as_str)
                .unwrap_or("token");
            params.push((name.to_owned(), text(token)));
        }
        let basic_auth = cfg.get("basic_auth").and_then(|b| {
            Some((
                b.get("username").map(text)?,
                b.get("password").map(text).unwrap_or_default(),
            ))
        });
        Some(EndpointConfig {
            url,
            headers: pairs("headers"),
            params,
            basic_auth,
        })
    }

    /// A POST to the endpoint with its parameters, headers and auth applied.
    pub fn post(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut req = client.post(&self.url).query(&self.params);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some((u, p)) = &self.basic_auth {
            req = req.basic_auth(u, Some(p));
        }
        req
    }
}

/// A configuration mistake, with a message that says what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where conversations are stored (`tracker_store:` in endpoints.yml).
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerStoreConfig {
    /// In memory, lost on restart.
    InMemory,
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// The parts of endpoints.yml palaver uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// Conversation storage; SQLite `palaver.db` in the working directory by default.
    pub tracker_store: TrackerStoreConfig,
    /// The whole file, for the parts other modules read.
    pub raw: Value,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            tracker_store: TrackerStoreConfig::Sqlite(PathBuf::from("palaver.db")),
            raw: Value::Null,
        }
    }
}

impl Endpoints {
    /// Reads endpoints.yml, substituting `${ENV_VAR}`s as Rasa does.
    pub fn load(path: &Path) -> Result<Endpoints, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let text = yaml::substitute_env(&text)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let raw = yaml::parse_str(&text, &path.display().to_string())
            .map_err(|e| ConfigError(e.to_string()))?;
        Endpoints::from_value(raw).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Interprets a parsed endpoints file.
    pub fn from_value(raw: Value) -> Result<Endpoints, ConfigError> {
        if !raw.is_null() && !raw.is_object() {
            return Err(ConfigError(
                "must be a mapping of endpoint names (tracker_store, action_endpoint, ...) to \
                 their settings"
                    .into(),
            ));
        }
        let mut endpoints = Endpoints::default();
        if let Some(ts) = raw.get("tracker_store").filter(|v| !v.is_null()) {
            endpoints.tracker_store = tracker_store(ts)?;
        }
        endpoints.raw = raw;
        Ok(endpoints)
    }
}

fn tracker_store(ts: &Value) -> Result<TrackerStoreConfig, ConfigError> {
    let kind = ts
        .get("type")
        .or_else(|| ts.get("store_type"))
        .and_then(Value::as_str)
        .unwrap_or("in_memory")
        .to_ascii_lowercase();
    match kind.as_str() {
        "in_memory" => Ok(TrackerStoreConfig::InMemory),
        "sql" => {
            let dialect = ts.get("dialect").and_then(Value::as_str).unwrap_or("sqlite");
            match dialect {
                "sqlite" => {
                    let db = ts.get("db").and_then(Value::as_str).unwrap_or("rasa.db");
                    Ok(TrackerStoreConfig::Sqlite(PathBuf::from(db)))
                }
                other => Err(ConfigError(format!(
                    "tracker_store: the SQL dialect '{other}' is not supported by this palaver \
                     version; use 'sqlite' (or type: in_memory)"
                ))),
            }
        }
        other => Err(ConfigError(format!(
            "tracker_store: unknown type '{other}'; palaver supports 'SQL' (dialect sqlite) and 'in_memory'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_config_as_rasa_reads_it() {
        let e = EndpointConfig::from_value(&json!({"url": "http://x", "token": "t", "token_name": "auth",
            "params": {"a": 1}, "headers": {"h": "v"}, "basic_auth": {"username": "u", "password": "p"}}))
        .unwrap();
        assert_eq!(
            e.params,
            vec![
                ("a".to_string(), "1".to_string()),
                ("auth".to_string(), "t".to_string())
            ]
        );
        assert_eq!(e.headers, vec![("h".to_string(), "v".to_string())]);
        assert_eq!(e.basic_auth, Some(("u".to_string(), "p".to_string())));
        assert!(EndpointConfig::from_value(&json!({"token": "t"})).is_none());
    }

    #[test]
    fn tracker_store_shapes() {
        assert_eq!(
            Endpoints::from_value(Value::Null).unwrap().tracker_store,
            TrackerStoreConfig::Sqlite("palaver.db".into())
        );
        let e = Endpoints::from_value(
            json!({"tracker_store": {"type": "SQL", "dialect": "sqlite", "db": "x.db"}}),
        )
        .unwrap();
        assert_eq!(e.tracker_store, TrackerStoreConfig::Sqlite("x.db".into()));
        let e =
            Endpoints::from_value(json!({"tracker_store": {"store_type": "in_memory"}})).unwrap();
        assert_eq!(e.tracker_store, TrackerStoreConfig::InMemory);
        assert!(Endpoints::from_value(json!({"tracker_store": {"type": "mongod"}})).is_err());
    }
}
