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
    /// Evaluate a bot on test data (like `rasa test`).
    #[command(subcommand)]
    Test(TestCommand),
}

/// `palaver test` subcommands.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Train the NLU pipeline and evaluate it on held-out examples (like `rasa test
    /// nlu`): accuracy, per-intent precision/recall/F1, entity F1, confusions.
    Nlu(TestNluArgs),
}

/// Flags of `palaver test nlu`.
#[derive(Debug, Clone, Args)]
pub struct TestNluArgs {
    /// The Rasa project folder.
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// NLU test data: a YAML file or a folder of them.
    #[arg(long)]
    pub nlu: PathBuf,
    /// Training data file or folder (default: data/ in the project).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Config file (default: config.yml in the project).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Intent that marks out-of-scope examples: also report in-scope accuracy and
    /// out-of-scope recall (predicting it or `nlu_fallback` counts as out of scope).
    #[arg(long)]
    pub out_of_scope: Option<String>,
    /// With `--out-of-scope`: pick the FallbackClassifier threshold by K-fold
    /// cross-validation on the training data (never on the test data).
    #[arg(long)]
    pub folds: Option<usize>,
    /// With `--folds`: the threshold with the best held-out in-scope accuracy whose
    /// held-out out-of-scope recall is at least this (0-1), instead of the best sum.
    #[arg(long)]
    pub min_oos_recall: Option<f64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
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
    /// A PostgreSQL database (`type: SQL`, `dialect: postgresql`).
    Postgres(SqlConfig),
    /// Redis (`type: redis`): one serialised tracker per conversation.
    Redis(RedisTrackerConfig),
}

impl TrackerStoreConfig {
    /// Whether other processes may share the store: then no process may keep a
    /// conversation in memory between requests, since another one may change it.
    pub fn is_shared(&self) -> bool {
        matches!(
            self,
            TrackerStoreConfig::Postgres(_) | TrackerStoreConfig::Redis(_)
        )
    }
}

/// A SQL server as Rasa's `SQLTrackerStore` and `SQLEventBroker` are configured: `url`
/// (a host name, `host:port`, or a whole database URL), `port`, `db`, `username`,
/// `password`, `login_db` (connect there first and create `db` if missing) and `query`
/// (extra connection parameters, e.g. `sslmode`).
#[derive(Clone, PartialEq)]
pub struct SqlConfig {
    /// Host (or host:port); a value with `://` is a whole database URL.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Database name.
    pub db: String,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// A database to log in to first, where `db` is created if it does not exist.
    pub login_db: Option<String>,
    /// Extra connection parameters, in the URL's query.
    pub query: Vec<(String, String)>,
}

impl std::fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("SqlConfig")
            .field("host", &self.host.as_deref().map(redact_url))
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("login_db", &self.login_db)
            .finish_non_exhaustive()
    }
}

/// A URL with any password replaced by `***`, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A Redis server as Rasa's Redis stores are configured: `url` (the host), `port`,
/// `db`, `username`, `password`, `use_ssl`, `key_prefix`.
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// Host name (a value with `://` is a whole `redis://` URL).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database number.
    pub db: i64,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Connect with TLS.
    pub use_ssl: bool,
    /// Alphanumeric prefix put before Rasa's key prefix (`<prefix>:tracker:`).
    pub key_prefix: Option<String>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &redact_url(&self.host))
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("use_ssl", &self.use_ssl)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// `tracker_store: {type: redis}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisTrackerConfig {
    /// The server.
    pub redis: RedisConfig,
    /// Seconds after the last change when Redis drops a conversation (`record_exp`).
    pub record_exp: Option<f64>,
}

/// How conversations are locked (`lock_store:` in endpoints.yml).
#[derive(Debug, Clone, PartialEq)]
pub enum LockStoreConfig {
    /// Locks inside this process (one palaver process).
    InMemory,
    /// Rasa's ticket locks in Redis, shared by every replica.
    Redis {
        /// The server (database 1 by default, as Rasa).
        redis: RedisConfig,
        /// Seconds a ticket lives without being renewed: a crashed holder's lock is
        /// given up after this long (`lock_lifetime`, else `TICKET_LOCK_LIFETIME`, else
        /// Rasa's 60).
        lock_lifetime: f64,
    },
}

/// Where new events are published (`event_broker:` in endpoints.yml).
#[derive(Debug, Clone, PartialEq)]
pub enum EventBrokerConfig {
    /// RabbitMQ (`type: pika`).
    Pika(PikaConfig),
    /// A SQL table (`type: SQL`), Rasa's `SQLEventBroker`.
    Sql(SqlBrokerConfig),
}

/// `event_broker: {type: pika}` as Rasa reads it.
#[derive(Clone, PartialEq)]
pub struct PikaConfig {
    /// Host (or a whole `amqp://` URL).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Queues bound to the exchange (Rasa's default `rasa_core_events`).
    pub queues: Vec<String>,
    /// The fanout exchange events are published to (`rasa-exchange`).
    pub exchange_name: String,
}

impl std::fmt::Debug for PikaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PikaConfig")
            .field("host", &redact_url(&self.host))
            .field("port", &self.port)
            .field("username", &self.username)
            .field("queues", &self.queues)
            .field("exchange_name", &self.exchange_name)
            .finish_non_exhaustive()
    }
}

/// `event_broker: {type: SQL}`: a SQLite file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlBrokerConfig {
    /// `dialect: sqlite` (the default; `db` defaults to `events.db`).
    Sqlite(PathBuf),
    /// `dialect: postgresql`.
    Postgres(SqlConfig),
}

/// The parts of endpoints.yml palaver uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// Conversation storage; SQLite `palaver.db` in the working directory by default.
    pub tracker_store: TrackerStoreConfig,
    /// Conversation locks; in memory by default.
    pub lock_store: LockStoreConfig,
    /// Where new events are published; none by default.
    pub event_broker: Option<EventBrokerConfig>,
    /// The whole file, for the parts other modules read.
    pub raw: Value,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            tracker_store: TrackerStoreConfig::Sqlite(PathBuf::from("palaver.db")),
            lock_store: LockStoreConfig::InMemory,
            event_broker: None,
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
        if let Some(ls) = raw.get("lock_store").filter(|v| !v.is_null()) {
            endpoints.lock_store = lock_store(ls)?;
        }
        if let Some(eb) = raw.get("event_broker").filter(|v| !v.is_null()) {
            endpoints.event_broker = event_broker(eb)?;
        }
        endpoints.raw = raw;
        Ok(endpoints)
    }
}

/// A section's `type` (or Rasa's older `store_type`), lower-cased.
fn section_type(v: &Value) -> Option<String> {
    v.get("type")
        .or_else(|| v.get("store_type"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

/// A text setting; numbers and booleans are taken as their text (YAML reads
/// `password: 1234` as a number).
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An integer setting, given as a number or as text (e.g. from `${PORT}`).
fn integer(section: &str, v: &Value, key: &str) -> Result<Option<i64>, ConfigError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(ConfigError(format!(
            "{section}: '{key}' must be a whole number, not {other}"
        ))),
    }
}

/// A port setting.
fn port(section: &str, v: &Value) -> Result<Option<u16>, ConfigError> {
    integer(section, v, "port")?
        .map(|p| {
            u16::try_from(p)
                .map_err(|_| ConfigError(format!("{section}: 'port' {p} is not a TCP port")))
        })
        .transpose()
}

/// A number of seconds (`record_exp`, `lock_lifetime`).
fn seconds_setting(section: &str, v: &Value, key: &str) -> Result<Option<f64>, ConfigError> {
    let n = match v.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.is_finite() && n > 0.0 => Ok(Some(n)),
        _ => Err(ConfigError(format!(
            "{section}: '{key}' must be a positive number of seconds"
        ))),
    }
}

/// A boolean setting (`true`/`false`, or their text).
fn flag(v: &Value, key: &str) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

fn sql_config(section: &str, v: &Value, default_db: &str) -> Result<SqlConfig, ConfigError> {
    let query = match v.get("query") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, val)| {
                let val = match val {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), val)
            })
            .collect(),
        Some(_) => {
            return Err(ConfigError(format!(
                "{section}: 'query' must be a mapping of connection parameters, e.g. \
                 {{sslmode: require}}"
            )))
        }
    };
    Ok(SqlConfig {
        host: text(v, "url").or_else(|| text(v, "host")),
        port: port(section, v)?,
        db: text(v, "db").unwrap_or_else(|| default_db.to_owned()),
        username: text(v, "username"),
        password: text(v, "password"),
        login_db: text(v, "login_db"),
        query,
    })
}

fn redis_config(section: &str, v: &Value, default_db: i64) -> Result<RedisConfig, ConfigError> {
    let key_prefix = text(v, "key_prefix");
    if let Some(p) = &key_prefix {
        // Rasa ignores (with a warning) a prefix that is not alphanumeric; a silent
        // difference in keys would split the data, so palaver refuses it.
        if p.is_empty() || !p.chars().all(char::is_alphanumeric) {
            return Err(ConfigError(format!(
                "{section}: 'key_prefix' must be alphanumeric (letters and digits), not '{p}'"
            )));
        }
    }
    Ok(RedisConfig {
        host: text(v, "url")
            .or_else(|| text(v, "host"))
            .unwrap_or_else(|| "localhost".to_owned()),
        port: port(section, v)?.unwrap_or(6379),
        db: integer(section, v, "db")?.unwrap_or(default_db),
        username: text(v, "username"),
        password: text(v, "password"),
        use_ssl: flag(v, "use_ssl"),
        key_prefix,
    })
}

fn tracker_store(ts: &Value) -> Result<TrackerStoreConfig, ConfigError> {
    let kind = section_type(ts).unwrap_or_else(|| "in_memory".to_owned());
    match kind.as_str() {
        "in_memory" => Ok(TrackerStoreConfig::InMemory),
        "sql" => {
            let dialect = ts
                .get("dialect")
                .and_then(Value::as_str)
                .unwrap_or("sqlite")
                .to_ascii_lowercase();
            match dialect.as_str() {
                "sqlite" => {
                    let db = ts.get("db").and_then(Value::as_str).unwrap_or("rasa.db");
                    Ok(TrackerStoreConfig::Sqlite(PathBuf::from(db)))
                }
                "postgresql" | "postgres" => Ok(TrackerStoreConfig::Postgres(sql_config(
                    "tracker_store",
                    ts,
                    "rasa.db",
                )?)),
                other => Err(ConfigError(format!(
                    "tracker_store: the SQL dialect '{other}' is not supported by this palaver \
                     version; use 'postgresql' or 'sqlite' (or type: redis / in_memory)"
                ))),
            }
        }
        "redis" => Ok(TrackerStoreConfig::Redis(RedisTrackerConfig {
            redis: redis_config("tracker_store", ts, 0)?,
            record_exp: seconds_setting("tracker_store", ts, "record_exp")?,
        })),
        other => Err(ConfigError(format!(
            "tracker_store: unknown type '{other}'; palaver supports 'SQL' (dialect postgresql \
             or sqlite), 'redis' and 'in_memory'"
        ))),
    }
}

/// Rasa's ticket lifetime when neither endpoints.yml nor `TICKET_LOCK_LIFETIME` sets one.
pub const DEFAULT_LOCK_LIFETIME: f64 = 60.0;

fn lock_store(ls: &Value) -> Result<LockStoreConfig, ConfigError> {
    let kind = section_type(ls).unwrap_or_else(|| "in_memory".to_owned());
    match kind.as_str() {
        "in_memory" => Ok(LockStoreConfig::InMemory),
        "redis" => {
            let env_lifetime = std::env::var("TICKET_LOCK_LIFETIME")
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|t| t.is_finite() && *t > 0.0);
            let lock_lifetime = seconds_setting("lock_store", ls, "lock_lifetime")?
                .or(env_lifetime)
                .unwrap_or(DEFAULT_LOCK_LIFETIME);
            Ok(LockStoreConfig::Redis {
                redis: redis_config("lock_store", ls, 1)?,
                lock_lifetime,
            })
        }
        other => Err(ConfigError(format!(
            "lock_store: unknown type '{other}'; palaver supports 'redis' and 'in_memory'"
        ))),
    }
}

fn event_broker(eb: &Value) -> Result<Option<EventBrokerConfig>, ConfigError> {
    let Some(kind) = section_type(eb) else {
        return Err(ConfigError(
            "event_broker: needs a 'type' ('pika' or 'SQL')".into(),
        ));
    };
    match kind.as_str() {
        "pika" => {
            let queues = match eb.get("queues").or_else(|| eb.get("queue")) {
                None | Some(Value::Null) => vec!["rasa_core_events".to_owned()],
                Some(Value::String(q)) => vec![q.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|q| {
                        q.as_str().map(str::to_owned).ok_or_else(|| {
                            ConfigError("event_broker: 'queues' must be queue names".into())
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(ConfigError(
                        "event_broker: 'queues' must be a queue name or a list of them".into(),
                    ))
                }
            };
            Ok(Some(EventBrokerConfig::Pika(PikaConfig {
                host: text(eb, "url")
                    .or_else(|| text(eb, "host"))
                    .unwrap_or_else(|| "localhost".to_owned()),
                port: port("event_broker", eb)?.unwrap_or(5672),
                username: text(eb, "username").unwrap_or_else(|| "guest".to_owned()),
                password: text(eb, "password").unwrap_or_else(|| "guest".to_owned()),
                queues,
                exchange_name: text(eb, "exchange_name")
                    .unwrap_or_else(|| "rasa-exchange".to_owned()),
            })))
        }
        "sql" => {
            let dialect = eb
                .get("dialect")
                .and_then(Value::as_str)
                .unwrap_or("sqlite")
                .to_ascii_lowercase();
            match dialect.as_str() {
                "sqlite" => Ok(Some(EventBrokerConfig::Sql(SqlBrokerConfig::Sqlite(
                    PathBuf::from(text(eb, "db").unwrap_or_else(|| "events.db".to_owned())),
                )))),
                "postgresql" | "postgres" => Ok(Some(EventBrokerConfig::Sql(
                    SqlBrokerConfig::Postgres(sql_config("event_broker", eb, "events.db")?),
                ))),
                other => Err(ConfigError(format!(
                    "event_broker: the SQL dialect '{other}' is not supported; use 'postgresql' \
                     or 'sqlite'"
                ))),
            }
        }
        other => Err(ConfigError(format!(
            "event_broker: unknown type '{other}'; palaver supports 'pika' (RabbitMQ) and 'SQL'"
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

    #[test]
    fn production_stores_as_rasa_reads_them() {
        let e = Endpoints::from_value(json!({
            "tracker_store": {"type": "SQL", "dialect": "postgresql", "url": "db.example",
                "port": "5433", "db": "rasa", "username": "u", "password": 1234,
                "login_db": "postgres", "query": {"sslmode": "require"}},
            "lock_store": {"type": "redis", "url": "r.example", "port": 6380, "password": "p",
                "key_prefix": "bot1", "use_ssl": true, "lock_lifetime": 5},
            "event_broker": {"type": "pika", "url": "mq.example", "username": "u",
                "password": "p", "queues": ["a", "b"]},
        }))
        .unwrap();
        let TrackerStoreConfig::Postgres(pg) = &e.tracker_store else {
            panic!("{:?}", e.tracker_store)
        };
        assert_eq!(pg.host.as_deref(), Some("db.example"));
        assert_eq!(pg.port, Some(5433));
        assert_eq!(pg.password.as_deref(), Some("1234"));
        assert_eq!(pg.login_db.as_deref(), Some("postgres"));
        assert_eq!(
            pg.query,
            vec![("sslmode".to_string(), "require".to_string())]
        );
        assert!(!format!("{pg:?}").contains("1234"), "no password in logs");
        let LockStoreConfig::Redis {
            redis,
            lock_lifetime,
        } = &e.lock_store
        else {
            panic!("{:?}", e.lock_store)
        };
        assert_eq!((redis.port, redis.db, redis.use_ssl), (6380, 1, true));
        assert_eq!(redis.key_prefix.as_deref(), Some("bot1"));
        assert_eq!(*lock_lifetime, 5.0);
        let Some(EventBrokerConfig::Pika(pika)) = &e.event_broker else {
            panic!("{:?}", e.event_broker)
        };
        assert_eq!(pika.queues, vec!["a", "b"]);
        assert_eq!(pika.exchange_name, "rasa-exchange");

        let e = Endpoints::from_value(json!({
            "tracker_store": {"type": "redis", "record_exp": 30.5},
            "event_broker": {"type": "SQL"},
        }))
        .unwrap();
        let TrackerStoreConfig::Redis(r) = &e.tracker_store else {
            panic!("{:?}", e.tracker_store)
        };
        assert_eq!(
            (r.redis.host.as_str(), r.redis.port, r.redis.db),
            ("localhost", 6379, 0)
        );
        assert_eq!(r.record_exp, Some(30.5));
        assert!(e.tracker_store.is_shared());
        assert_eq!(
            e.event_broker,
            Some(EventBrokerConfig::Sql(SqlBrokerConfig::Sqlite(
                "events.db".into()
            )))
        );
        let e = Endpoints::from_value(json!({"event_broker": {"type": "pika"}})).unwrap();
        let Some(EventBrokerConfig::Pika(pika)) = &e.event_broker else {
            panic!()
        };
        assert_eq!(pika.queues, vec!["rasa_core_events"]);
        for bad in [
            json!({"lock_store": {"type": "redis", "key_prefix": "a:b"}}),
            json!({"lock_store": {"type": "mongo"}}),
            json!({"tracker_store": {"type": "SQL", "dialect": "postgresql", "port": "x"}}),
            json!({"tracker_store": {"type": "redis", "record_exp": -1}}),
            json!({"event_broker": {"type": "kafka"}}),
            json!({"event_broker": {"url": "x"}}),
        ] {
            assert!(Endpoints::from_value(bad.clone()).is_err(), "{bad}");
        }
    }
}
