//! The Redis tracker store (`tracker_store: {type: redis}`), and the Redis connection
//! shared with the Redis lock store.
//!
//! As Rasa's `RedisTrackerStore`, each conversation is one string key,
//! `[<key_prefix>:]tracker:<sender_id>`, holding the serialised tracker
//! `{"events": [...], "name": "<sender_id>"}` written as Python's `json.dumps` writes
//! it, so that Rasa and palaver can read each other's conversations. `record_exp` sets
//! the key's expiry at every save.
//!
//! An append reads the key, adds the events and writes it back: it relies on the
//! conversation lock (the processor always holds it while it changes a conversation),
//! as Rasa does. Connections are kept by a `ConnectionManager` that reconnects after
//! an outage; calls fail fast with [`StoreError::Unavailable`] while Redis is down.

use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;

use super::{decode_event_value, StoreError, TrackerStore};
use crate::config::{RedisConfig, RedisTrackerConfig};
use crate::events::Event;

/// Rasa's key prefix of tracker keys.
pub const TRACKER_KEY_PREFIX: &str = "tracker:";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

/// The `redis://` URL of a configured server.
pub fn redis_url(cfg: &RedisConfig) -> String {
    if cfg.host.contains("://") {
        return cfg.host.clone();
    }
    let pct = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let scheme = if cfg.use_ssl { "rediss" } else { "redis" };
    let auth = match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => format!("{}:{}@", pct(u), pct(p)),
        (Some(u), None) => format!("{}@", pct(u)),
        (None, Some(p)) => format!(":{}@", pct(p)),
        (None, None) => String::new(),
    };
    format!("{scheme}://{auth}{}:{}/{}", cfg.host, cfg.port, cfg.db)
}

/// The prefix of this store's keys: Rasa's `kind` prefix (`tracker:`, `lock:`), after
/// the configured `key_prefix` and a colon.
pub fn key_prefix(cfg: &RedisConfig, kind: &str) -> String {
    match &cfg.key_prefix {
        Some(p) => format!("{p}:{kind}"),
        None => kind.to_owned(),
    }
}

/// A reconnecting connection to the configured server. It is made lazily: palaver
/// starts while Redis is down and serves once it is up.
pub fn connect(cfg: &RedisConfig) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(redis_url(cfg))
        .map_err(|e| StoreError::Unavailable(format!("bad Redis settings: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)
}

/// Conversations in Redis, one serialised tracker per key.
pub struct RedisTrackerStore {
    conn: ConnectionManager,
    prefix: String,
    record_exp: Option<Duration>,
}

impl RedisTrackerStore {
    /// A store on the configured server (connected on first use).
    pub fn new(cfg: &RedisTrackerConfig) -> Result<RedisTrackerStore, StoreError> {
        Ok(RedisTrackerStore {
            conn: connect(&cfg.redis)?,
            prefix: key_prefix(&cfg.redis, TRACKER_KEY_PREFIX),
            record_exp: cfg.record_exp.map(Duration::from_secs_f64),
        })
    }

    fn key(&self, sender_id: &str) -> String {
        format!("{}{sender_id}", self.prefix)
    }

    async fn get_events(&self, sender_id: &str) -> Result<Option<Vec<Value>>, StoreError> {
        let mut conn = self.conn.clone();
        let stored: Option<String> = redis::cmd("GET")
            .arg(self.key(sender_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let corrupt = |e: String| StoreError::Corrupt(format!("tracker of '{sender_id}': {e}"));
        let mut dialogue: Value =
            serde_json::from_str(&stored).map_err(|e| corrupt(e.to_string()))?;
        match dialogue.get_mut("events").map(Value::take) {
            Some(Value::Array(events)) => Ok(Some(events)),
            Some(Value::Null) | None => Ok(Some(Vec::new())),
            Some(_) => Err(corrupt("'events' is not a list".into())),
        }
    }

    async fn set_events(&self, sender_id: &str, events: Vec<Value>) -> Result<(), StoreError> {
        let mut dialogue = serde_json::Map::new();
        dialogue.insert("events".into(), Value::Array(events));
        dialogue.insert("name".into(), Value::String(sender_id.to_owned()));
        let text = crate::pyjson::dumps(&Value::Object(dialogue));
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(sender_id)).arg(text);
        if let Some(exp) = self.record_exp {
            cmd.arg("PX").arg(exp.as_millis().max(1) as u64);
        }
        let mut conn = self.conn.clone();
        cmd.query_async::<()>(&mut conn).await.map_err(unavailable)
    }
}

#[async_trait]
impl TrackerStore for RedisTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        let Some(values) = self.get_events(sender_id).await? else {
            return Ok(None);
        };
        let mut events = Vec::with_capacity(values.len());
        for v in &values {
            events.extend(decode_event_value(sender_id, v)?);
        }
        Ok((!events.is_empty()).then_some(events))
    }

    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut all = self.get_events(sender_id).await?.unwrap_or_default();
        all.extend(events.iter().map(Event::to_json));
        self.set_events(sender_id, all).await
    }

    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            let mut conn = self.conn.clone();
            return redis::cmd("DEL")
                .arg(self.key(sender_id))
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable);
        }
        self.set_events(sender_id, events.iter().map(Event::to_json).collect())
            .await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        // SCAN rather than KEYS: it does not block Redis on a large key space.
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            keys.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        ping(&self.conn).await
    }
}

/// `PING`s the server.
pub async fn ping(conn: &ConnectionManager) -> Result<(), StoreError> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RedisConfig {
        RedisConfig {
            host: "r.example".into(),
            port: 6380,
            db: 2,
            username: None,
            password: Some("p@ss".into()),
            use_ssl: false,
            key_prefix: None,
        }
    }

    #[test]
    fn urls_and_prefixes_as_rasa_configures_them() {
        assert_eq!(redis_url(&cfg()), "redis://:p%40ss@r.example:6380/2");
        let mut c = cfg();
        c.use_ssl = true;
        c.username = Some("u".into());
        assert_eq!(redis_url(&c), "rediss://u:p%40ss@r.example:6380/2");
        assert_eq!(key_prefix(&c, TRACKER_KEY_PREFIX), "tracker:");
        c.key_prefix = Some("bot1".into());
        assert_eq!(key_prefix(&c, TRACKER_KEY_PREFIX), "bot1:tracker:");
        c.host = "redis://x:1/3".into();
        assert_eq!(redis_url(&c), "redis://x:1/3");
    }
}
