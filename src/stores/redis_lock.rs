//! The Redis lock store (`lock_store: {type: redis}`): Rasa's ticket locks, shared by
//! every palaver process, so that the requests of one conversation are applied one at
//! a time and in arrival order whichever replica receives them.
//!
//! As Rasa's `RedisLockStore`, a conversation's lock is the key
//! `[<key_prefix>:]lock:<conversation_id>` holding
//! `{"conversation_id": ..., "tickets": [{"number": n, "expires": t}, ...]}`: a request
//! takes a ticket at the back of the queue and is served when its ticket is the first
//! one. A ticket lives `lock_lifetime` seconds, so the lock of a process that crashed
//! while holding (or waiting for) it is given up after that long.
//!
//! Where Rasa reads and rewrites the key in several round trips (two processes can
//! then take the same ticket), palaver changes it in one Lua script, atomically. And
//! a live process renews its ticket while it waits and while it holds the lock, so a
//! slow request never loses its lock to the lifetime; only a dead process's ticket
//! expires. Each ticket also names its owner, so a process whose ticket expired can
//! never release or renew another's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::redis::{connect, key_prefix};
use super::{ConversationLock, LockStore, StoreError};
use crate::config::RedisConfig;

/// Rasa's key prefix of lock keys.
pub const LOCK_KEY_PREFIX: &str = "lock:";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("the Redis lock store is unavailable: {e}"))
}

/// Shared Lua: reads the lock, keeping only live tickets (`now` = ARGV[1]).
const LOAD: &str = r#"
local now = tonumber(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local tickets = {}
local conversation_id = nil
if raw then
  local ok, lock = pcall(cjson.decode, raw)
  if ok and type(lock) == 'table' then
    conversation_id = lock['conversation_id']
    if type(lock['tickets']) == 'table' then
      for _, t in ipairs(lock['tickets']) do
        if type(t) == 'table' and tonumber(t['expires']) and tonumber(t['expires']) >= now then
          table.insert(tickets, t)
        end
      end
    end
  end
end
local function save(cid)
  if #tickets == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], cjson.encode({conversation_id = cid, tickets = tickets}))
  end
end
local function find(number, owner)
  for i, t in ipairs(tickets) do
    if tonumber(t['number']) == number and (t['owner'] == nil or t['owner'] == owner) then
      return i
    end
  end
  return nil
end
"#;

/// Takes a ticket. ARGV: now, conversation id, lifetime, owner. Returns its number.
const ISSUE: &str = r#"
local cid = ARGV[2]
local lifetime = tonumber(ARGV[3])
local last = -1
if #tickets > 0 then last = tonumber(tickets[#tickets]['number']) end
local number = last + 1
table.insert(tickets, {number = number, expires = now + lifetime, owner = ARGV[4]})
save(cid)
return number
"#;

/// Renews a ticket and tells whether it is served. ARGV: now, number, owner, lifetime,
/// conversation id. Returns 1 (served: the lock is ours), 0 (waiting) or -1 (the
/// ticket is gone).
const POLL: &str = r#"
local i = find(tonumber(ARGV[2]), ARGV[3])
if i == nil then
  save(conversation_id or ARGV[5])
  return -1
end
tickets[i]['expires'] = now + tonumber(ARGV[4])
save(conversation_id or ARGV[5])
if i == 1 then return 1 end
return 0
"#;

/// Gives a ticket back. ARGV: now, number, owner, conversation id.
const RELEASE: &str = r#"
local i = find(tonumber(ARGV[2]), ARGV[3])
if i ~= nil then table.remove(tickets, i) end
save(conversation_id or ARGV[4])
return 1
"#;

struct Scripts {
    issue: redis::Script,
    poll: redis::Script,
    release: redis::Script,
}

/// Per-conversation ticket locks in Redis.
#[derive(Clone)]
pub struct RedisLockStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    lifetime: Duration,
    scripts: Scripts,
}

fn now() -> f64 {
    crate::events::now()
}

impl RedisLockStore {
    /// A lock store on the configured server (connected on first use); tickets live
    /// `lifetime` without being renewed.
    pub fn new(cfg: &RedisConfig, lifetime: Duration) -> Result<RedisLockStore, StoreError> {
        let script = |body: &str| redis::Script::new(&format!("{LOAD}\n{body}"));
        Ok(RedisLockStore {
            inner: Arc::new(Inner {
                conn: connect(cfg)?,
                prefix: key_prefix(cfg, LOCK_KEY_PREFIX),
                lifetime: lifetime.max(Duration::from_millis(100)),
                scripts: Scripts {
                    issue: script(ISSUE),
                    poll: script(POLL),
                    release: script(RELEASE),
                },
            }),
        })
    }
}

impl Inner {
    fn key(&self, conversation_id: &str) -> String {
        format!("{}{conversation_id}", self.prefix)
    }

    async fn issue(&self, conversation_id: &str, owner: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        self.scripts
            .issue
            .key(self.key(conversation_id))
            .arg(now())
            .arg(conversation_id)
            .arg(self.lifetime.as_secs_f64())
            .arg(owner)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn poll(
        &self,
        conversation_id: &str,
        ticket: i64,
        owner: &str,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        self.scripts
            .poll
            .key(self.key(conversation_id))
            .arg(now())
            .arg(ticket)
            .arg(owner)
            .arg(self.lifetime.as_secs_f64())
            .arg(conversation_id)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn release(
        &self,
        conversation_id: &str,
        ticket: i64,
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.scripts
            .release
            .key(self.key(conversation_id))
            .arg(now())
            .arg(ticket)
            .arg(owner)
            .arg(conversation_id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

/// A taken ticket: given back when dropped (whether the lock was reached or the
/// request gave up waiting), and renewed in the background while the lock is held.
struct Ticket {
    inner: Arc<Inner>,
    conversation_id: String,
    number: i64,
    owner: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Ticket {
    /// Renews the ticket every third of its lifetime until dropped, so that a long
    /// request keeps its lock; a dead process stops renewing and its lock expires.
    fn keep_alive(&mut self) {
        let inner = self.inner.clone();
        let conversation_id = self.conversation_id.clone();
        let (number, owner) = (self.number, self.owner.clone());
        let period = inner.lifetime / 3;
        self.renewal = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match inner.poll(&conversation_id, number, &owner).await {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::error!(
                            conversation_id,
                            "the conversation's lock expired while it was held (its ticket \
                             was given to the next request)"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, conversation_id, "cannot renew the lock"),
                }
            }
        }));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        let inner = self.inner.clone();
        let conversation_id = std::mem::take(&mut self.conversation_id);
        let (number, owner) = (self.number, std::mem::take(&mut self.owner));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = inner.release(&conversation_id, number, &owner).await {
                    // The ticket expires by itself after its lifetime.
                    tracing::warn!(error = %e, conversation_id, "cannot release the lock");
                }
            });
        }
    }
}

#[async_trait]
impl LockStore for RedisLockStore {
    async fn lock(&self, conversation_id: &str) -> Result<ConversationLock, StoreError> {
        let inner = &self.inner;
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let number = inner.issue(conversation_id, &owner).await?;
        let mut ticket = Ticket {
            inner: inner.clone(),
            conversation_id: conversation_id.to_owned(),
            number,
            owner,
            renewal: None,
        };
        let mut wait = Duration::from_millis(2);
        loop {
            match inner
                .poll(conversation_id, ticket.number, &ticket.owner)
                .await?
            {
                1 => break,
                0 => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(25));
                }
                _ => {
                    // Our ticket is gone (Redis lost its data, or we were too slow to
                    // renew it): queue again.
                    tracing::warn!(conversation_id, "lost the lock ticket; taking a new one");
                    ticket.number = inner.issue(conversation_id, &ticket.owner).await?;
                }
            }
        }
        ticket.keep_alive();
        Ok(ConversationLock::new(ticket))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        super::redis::ping(&self.inner.conn)
            .await
            .map_err(unavailable)
    }
}
