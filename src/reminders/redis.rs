//! Reminders in Redis, next to the Redis tracker store, shared by every replica.
//!
//! Keys, after the store's prefix (`[<key_prefix>:]palaver_reminders:`): `data` (hash:
//! id → the reminder as JSON), `names` (hash: `[sender, name]` → id), `sender:<id>`
//! (set of a conversation's reminder ids), `due` (sorted set: id → when it may next be
//! claimed: its due time, or the end of its claim's lease) and `claims` (hash: id →
//! claimer). Every operation is one Lua script, so it is atomic: two replicas never
//! claim the same reminder.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;
use serde_json::{json, Value};

use super::{CancelFilter, ReminderStore, ScheduledReminder};
use crate::stores::StoreError;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("reminders in Redis: {e}"))
}

const SCHEDULE: &str = r"
local old = redis.call('HGET', KEYS[2], ARGV[2])
if old then
  local raw = redis.call('HGET', KEYS[1], old)
  if raw then redis.call('SREM', ARGV[5] .. cjson.decode(raw).sender_id, old) end
  redis.call('HDEL', KEYS[1], old)
  redis.call('ZREM', KEYS[3], old)
  redis.call('HDEL', KEYS[4], old)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1
";

const CANCEL: &str = r"
local ids = redis.call('SMEMBERS', KEYS[5])
local n = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local r = cjson.decode(raw)
    local ok = true
    if ARGV[1] == '1' and r.name ~= ARGV[2] then ok = false end
    if ARGV[3] == '1' and r.intent ~= ARGV[4] then ok = false end
    if ARGV[5] == '1' and r.entities_key ~= ARGV[6] then ok = false end
    if ok then
      redis.call('HDEL', KEYS[1], id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('SREM', KEYS[5], id)
      redis.call('HDEL', KEYS[2], r.name_field)
      n = n + 1
    end
  else
    redis.call('SREM', KEYS[5], id)
  end
end
return n
";

const CLAIM: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    redis.call('HSET', KEYS[3], id, ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[4], id)
    table.insert(out, raw)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
";

const RENEW: &str = r"
if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 1
end
return 0
";

const COMPLETE: &str = r"
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  local r = cjson.decode(raw)
  if redis.call('HGET', KEYS[2], r.name_field) == ARGV[1] then
    redis.call('HDEL', KEYS[2], r.name_field)
  end
  redis.call('SREM', ARGV[3] .. r.sender_id, ARGV[1])
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
";

const RELEASE: &str = r"
local claims = redis.call('HGETALL', KEYS[3])
for i = 1, #claims, 2 do
  local id = claims[i]
  if claims[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[3], id)
    local raw = redis.call('HGET', KEYS[1], id)
    if raw then redis.call('ZADD', KEYS[2], cjson.decode(raw).due_at_s, id) end
  end
end
return 1
";

/// Reminders in Redis.
pub struct RedisReminderStore {
    conn: ConnectionManager,
    prefix: String,
}

fn score(t: f64) -> String {
    format!("{t:.6}")
}

impl RedisReminderStore {
    /// Reminders under `prefix` (e.g. `palaver_reminders:`) on `conn`'s server.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> RedisReminderStore {
        RedisReminderStore {
            conn,
            prefix: prefix.into(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn sender_prefix(&self) -> String {
        self.key("sender:")
    }

    fn sender_key(&self, sender_id: &str) -> String {
        format!("{}{sender_id}", self.sender_prefix())
    }

    fn name_field(sender_id: &str, name: &str) -> String {
        serde_json::to_string(&(sender_id, name)).unwrap_or_default()
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let script = Script::new(script);
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

fn to_json(r: &ScheduledReminder) -> String {
    json!({
        "id": r.id, "sender_id": r.sender_id, "name": r.name, "intent": r.intent,
        "entities": r.entities, "entities_key": r.entities_key(), "due_at": r.due_at,
        "due_at_s": score(r.due_at), "kill_on_user_msg": r.kill_on_user_msg,
        "output_channel": r.output_channel, "legacy_action": r.legacy_action,
        "name_field": RedisReminderStore::name_field(&r.sender_id, &r.name),
    })
    .to_string()
}

fn from_json(raw: &str) -> Result<ScheduledReminder, StoreError> {
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| StoreError::Corrupt(format!("a reminder in Redis: {e}")))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let corrupt = |k: &str| StoreError::Corrupt(format!("a reminder in Redis has no '{k}'"));
    Ok(ScheduledReminder {
        id: text("id").ok_or_else(|| corrupt("id"))?,
        sender_id: text("sender_id").ok_or_else(|| corrupt("sender_id"))?,
        name: text("name").ok_or_else(|| corrupt("name"))?,
        intent: text("intent"),
        entities: v.get("entities").cloned().unwrap_or(Value::Null),
        due_at: v
            .get("due_at")
            .and_then(Value::as_f64)
            .ok_or_else(|| corrupt("due_at"))?,
        kill_on_user_msg: v
            .get("kill_on_user_msg")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        output_channel: text("output_channel"),
        legacy_action: text("legacy_action"),
    })
}

#[async_trait]
impl ReminderStore for RedisReminderStore {
    async fn schedule(&self, r: &ScheduledReminder) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                SCHEDULE,
                &[
                    self.key("data"),
                    self.key("names"),
                    self.key("due"),
                    self.key("claims"),
                    self.sender_key(&r.sender_id),
                ],
                &[
                    r.id.clone(),
                    Self::name_field(&r.sender_id, &r.name),
                    to_json(r),
                    score(r.due_at),
                    self.sender_prefix(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn cancel(&self, sender_id: &str, filter: &CancelFilter) -> Result<u64, StoreError> {
        let flag = |f: &Option<String>| {
            [
                if f.is_some() { "1" } else { "0" }.to_owned(),
                f.clone().unwrap_or_default(),
            ]
        };
        let mut args = Vec::new();
        args.extend(flag(&filter.name));
        args.extend(flag(&filter.intent));
        args.extend(flag(&filter.entities));
        let n: i64 = self
            .run(
                CANCEL,
                &[
                    self.key("data"),
                    self.key("names"),
                    self.key("due"),
                    self.key("claims"),
                    self.sender_key(sender_id),
                ],
                &args,
            )
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn claim_due(
        &self,
        now: f64,
        limit: usize,
        claimer: &str,
        until: f64,
    ) -> Result<Vec<ScheduledReminder>, StoreError> {
        let raw: Vec<String> = self
            .run(
                CLAIM,
                &[self.key("data"), self.key("due"), self.key("claims")],
                &[
                    score(now),
                    limit.to_string(),
                    claimer.to_owned(),
                    score(until),
                ],
            )
            .await?;
        let mut claimed = raw
            .iter()
            .map(|r| from_json(r))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.due_at.total_cmp(&b.due_at));
        Ok(claimed)
    }

    async fn renew(&self, id: &str, claimer: &str, until: f64) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(
                RENEW,
                &[self.key("data"), self.key("due"), self.key("claims")],
                &[id.to_owned(), claimer.to_owned(), score(until)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn complete(&self, id: &str, claimer: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                COMPLETE,
                &[
                    self.key("data"),
                    self.key("names"),
                    self.key("due"),
                    self.key("claims"),
                ],
                &[id.to_owned(), claimer.to_owned(), self.sender_prefix()],
            )
            .await?;
        Ok(())
    }

    async fn release(&self, claimer: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                RELEASE,
                &[self.key("data"), self.key("due"), self.key("claims")],
                &[claimer.to_owned()],
            )
            .await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<f64>, StoreError> {
        let mut conn = self.conn.clone();
        let first: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.key("due"))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(first.first().map(|(_, s)| *s))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("HLEN")
            .arg(self.key("data"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    async fn list(&self, sender_id: &str) -> Result<Vec<ScheduledReminder>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.sender_key(sender_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key("data"))
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut all = raw
            .iter()
            .flatten()
            .map(|r| from_json(r))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| a.due_at.total_cmp(&b.due_at).then(a.name.cmp(&b.name)));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn redis_store_keeps_the_contract_and_claims_exclusively() {
        let Ok(url) = std::env::var("PALAVER_TEST_REDIS_URL") else {
            eprintln!("PALAVER_TEST_REDIS_URL is not set: skipping");
            return;
        };
        let client = redis::Client::open(url).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let prefix = format!("t{}:palaver_reminders:", uuid::Uuid::new_v4().simple());
        let store = RedisReminderStore::new(conn.clone(), prefix.clone());
        super::super::memory::tests::contract(&store).await;

        let a: std::sync::Arc<dyn ReminderStore> = std::sync::Arc::new(store);
        let b = std::sync::Arc::new(RedisReminderStore::new(conn.clone(), prefix.clone()));
        super::super::memory::tests::claims_exclusively(vec![("a", a.clone()), ("b", b), ("c", a)])
            .await;
        // Clean up the test's keys.
        let mut conn = conn;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}
