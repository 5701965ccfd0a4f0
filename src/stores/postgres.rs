//! The PostgreSQL tracker store (`tracker_store: {type: SQL, dialect: postgresql}`), in
//! Rasa's own `events` table layout.
//!
//! Several palaver processes can share one database: every read goes to the database
//! (nothing is cached between requests) and the lock store keeps the writes of one
//! conversation in order. Appends and replaces go through one writer task that commits
//! whatever requests are waiting in one transaction (group commit: one disk flush for
//! many requests); an append is acknowledged only after its transaction committed; if the database is down, the call
//! fails within [`OP_TIMEOUT`] with [`StoreError::Unavailable`] (a 503) and nothing of
//! the request is kept. The pool reconnects by itself when the database is back.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{
    decode_event, ConversationPage, ConversationQuery, ConversationSummary, EventRow, StoreError,
    TrackerStore,
};
use crate::config::SqlConfig;
use crate::events::Event;

/// Schema migrations, applied in order and recorded in `palaver_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "rasa events table",
        include_str!("../../migrations/postgres/0001_events.sql"),
    ),
    (
        2,
        "index for the conversation list",
        include_str!("../../migrations/postgres/0002_events_sender_type_index.sql"),
    ),
];

/// Longest a single store call may take before it fails as unavailable (a hung
/// server must not hang requests).
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a call waits for a pooled connection (also while the server is down).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per process unless `POSTGRESQL_POOL_SIZE` says otherwise.
const DEFAULT_POOL_SIZE: u32 = 10;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: {e}"))
}

/// Runs a database call with [`OP_TIMEOUT`].
async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(unavailable(format!(
            "no answer within {} s",
            OP_TIMEOUT.as_secs()
        ))),
    }
}

fn pct(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The connection options for database `db` of `cfg`, as Rasa's `get_db_url` builds
/// the URL: `url` may be a whole database URL (used as given), or a host with an
/// optional `:port`; `query` becomes the URL's query.
pub fn connect_options(cfg: &SqlConfig, db: &str) -> Result<PgConnectOptions, StoreError> {
    let bad = |e: sqlx::Error| StoreError::Unavailable(format!("bad PostgreSQL settings: {e}"));
    let mut options = match cfg.host.as_deref() {
        Some(url) if url.contains("://") => {
            // SQLAlchemy URLs name a driver (`postgresql+psycopg2://`): drop it.
            let (scheme, rest) = url.split_once("://").unwrap_or(("postgresql", url));
            let scheme = scheme.split('+').next().unwrap_or("postgresql");
            PgConnectOptions::from_str(&format!("{scheme}://{rest}")).map_err(bad)?
        }
        host => {
            let host = host.unwrap_or("localhost");
            let (host, port_in_host) = match host.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse::<u16>().ok()),
                _ => (host, None),
            };
            let port = port_in_host.or(cfg.port).unwrap_or(5432);
            let mut url = String::from("postgres://");
            if let Some(user) = &cfg.username {
                url.push_str(&pct(user));
                if let Some(password) = &cfg.password {
                    url.push(':');
                    url.push_str(&pct(password));
                }
                url.push('@');
            }
            url.push_str(&format!("{host}:{port}/{}", pct(db)));
            if !cfg.query.is_empty() {
                let query: Vec<String> = cfg
                    .query
                    .iter()
                    .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
                    .collect();
                url.push('?');
                url.push_str(&query.join("&"));
            }
            PgConnectOptions::from_str(&url).map_err(bad)?
        }
    };
    if let Ok(schema) = std::env::var("POSTGRESQL_SCHEMA") {
        // As Rasa: the schema to use instead of `public`.
        options = options.options([("search_path", schema.as_str())]);
    }
    Ok(options.application_name("palaver"))
}

/// Connects to the database of `cfg` (creating it through `login_db` first, as Rasa
/// does, when that is set), retrying a few times while the server starts up.
pub async fn connect_pool(cfg: &SqlConfig) -> Result<PgPool, StoreError> {
    let pool_size = std::env::var("POSTGRESQL_POOL_SIZE")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_POOL_SIZE);
    let options = connect_options(cfg, &cfg.db)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            if let Some(login_db) = &cfg.login_db {
                create_database_if_missing(cfg, login_db).await?;
            }
            PgPoolOptions::new()
                .max_connections(pool_size)
                .min_connections(0)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(true)
                .idle_timeout(Some(Duration::from_secs(300)))
                .connect_with(options.clone())
                .await
                .map_err(unavailable)
        }
        .await;
        match result {
            Ok(pool) => return Ok(pool),
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "cannot connect to PostgreSQL yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Rasa's `_create_database_and_update_engine`: log in to `login_db` and create the
/// configured database if it does not exist.
async fn create_database_if_missing(cfg: &SqlConfig, login_db: &str) -> Result<(), StoreError> {
    let mut conn = timed(sqlx::PgConnection::connect_with(&connect_options(
        cfg, login_db,
    )?))
    .await?;
    let exists: Option<i32> = timed(
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&cfg.db)
            .fetch_optional(&mut conn),
    )
    .await?;
    if exists.is_none() {
        let name = cfg.db.replace('"', "\"\"");
        // The name is quoted as an identifier; values cannot be bound in DDL.
        let created = timed(
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn),
        )
        .await;
        // Another replica may have created it meanwhile.
        if let Err(e) = created {
            if !e.to_string().contains("already exists") {
                return Err(e);
            }
        }
        tracing::info!(db = %cfg.db, "created the PostgreSQL database");
    }
    let _ = conn.close().await;
    Ok(())
}

/// Applies `migrations` not yet recorded in `palaver_migrations`, holding an advisory
/// lock so that replicas starting together do not race.
pub async fn migrate(
    pool: &PgPool,
    migrations: &[(i64, &'static str, &'static str)],
) -> Result<(), StoreError> {
    migrate_with(pool, "palaver_migrations", migrations).await
}

/// [`migrate`], recording the applied versions in table `table` (a name palaver
/// chooses, never user input).
pub async fn migrate_with(
    pool: &PgPool,
    table: &'static str,
    migrations: &[(i64, &'static str, &'static str)],
) -> Result<(), StoreError> {
    let mut conn = timed(pool.acquire()).await?;
    // An arbitrary constant key: palaver's migration lock.
    timed(sqlx::query("SELECT pg_advisory_lock(7261019337)").execute(&mut *conn)).await?;
    let result = async {
        timed(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                 applied_at DOUBLE PRECISION NOT NULL)"
            )))
            .execute(&mut *conn),
        )
        .await?;
        for (version, description, sql) in migrations {
            let done: Option<i64> = timed(
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT version FROM {table} WHERE version = $1"
                )))
                .bind(version)
                .fetch_optional(&mut *conn),
            )
            .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = timed(conn.begin()).await?;
            timed(sqlx::raw_sql(*sql).execute(&mut *tx)).await?;
            timed(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (version, description, applied_at) VALUES ($1, $2, $3)"
                )))
                .bind(version)
                .bind(description)
                .bind(crate::events::now())
                .execute(&mut *tx),
            )
            .await?;
            timed(tx.commit()).await?;
            tracing::info!(version, description, "applied a PostgreSQL migration");
        }
        Ok(())
    }
    .await;
    let _ = timed(sqlx::query("SELECT pg_advisory_unlock(7261019337)").execute(&mut *conn)).await;
    result
}

/// Conversations in a PostgreSQL database, in Rasa's `events` table.
pub struct PostgresTrackerStore {
    pool: PgPool,
    writer: mpsc::Sender<WriteJob>,
}

impl PostgresTrackerStore {
    /// Connects (creating the database through `login_db` if set) and migrates the
    /// schema.
    pub async fn connect(cfg: &SqlConfig) -> Result<PostgresTrackerStore, StoreError> {
        let pool = connect_pool(cfg).await?;
        migrate(&pool, MIGRATIONS).await?;
        let (writer, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            tokio::spawn(writer_loop(pool.clone(), rx.clone()));
        }
        Ok(PostgresTrackerStore { pool, writer })
    }

    async fn submit(
        &self,
        kind: WriteKind,
        sender_id: &str,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let rows = rows_of(events)?;
        let (done, wait) = oneshot::channel();
        let stopped = || unavailable("the writer has stopped");
        self.writer
            .send(WriteJob {
                kind,
                sender_id: sender_id.to_owned(),
                rows,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// The connection pool (for tests and the SQL event broker).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Inserts rows, each with its conversation id, in order, in one statement.
async fn insert_rows<'c, E>(executor: E, rows: &[(&str, &EventRow)]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let senders: Vec<&str> = rows.iter().map(|(s, _)| *s).collect();
    let type_names: Vec<&str> = rows.iter().map(|(_, r)| r.type_name).collect();
    let timestamps: Vec<f64> = rows.iter().map(|(_, r)| r.timestamp).collect();
    let intents: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.intent_name.as_deref()).collect();
    let actions: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.action_name.as_deref()).collect();
    let data: Vec<&str> = rows.iter().map(|(_, r)| r.data.as_str()).collect();
    // WITH ORDINALITY + ORDER BY: ids are given in the events' order.
    sqlx::query(
        "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)
         SELECT t.sender_id, t.type_name, t.ts, t.intent_name, t.action_name, t.data
         FROM UNNEST($1::varchar[], $2::varchar[], $3::float8[], $4::varchar[], $5::varchar[],
                     $6::text[])
              WITH ORDINALITY AS t(sender_id, type_name, ts, intent_name, action_name, data, n)
         ORDER BY t.n",
    )
    .bind(senders)
    .bind(type_names)
    .bind(timestamps)
    .bind(intents)
    .bind(actions)
    .bind(data)
    .execute(executor)
    .await
    .map(|_| ())
}

enum WriteKind {
    Append,
    Replace,
}

/// One append or replace waiting for the writer.
struct WriteJob {
    kind: WriteKind,
    sender_id: String,
    rows: Vec<EventRow>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Most requests committed together in one transaction.
const MAX_BATCH: usize = 256;

/// Applies jobs in order inside a transaction: consecutive appends share one INSERT; a
/// replace deletes the conversation's rows first.
async fn apply_jobs(conn: &mut sqlx::PgConnection, jobs: &[&WriteJob]) -> Result<(), sqlx::Error> {
    let mut pending: Vec<(&str, &EventRow)> = Vec::new();
    for job in jobs {
        if let WriteKind::Replace = job.kind {
            if !pending.is_empty() {
                insert_rows(&mut *conn, &pending).await?;
                pending.clear();
            }
            sqlx::query("DELETE FROM events WHERE sender_id = $1")
                .bind(&job.sender_id)
                .execute(&mut *conn)
                .await?;
        }
        pending.extend(job.rows.iter().map(|r| (job.sender_id.as_str(), r)));
    }
    if pending.is_empty() {
        return Ok(());
    }
    insert_rows(&mut *conn, &pending).await
}

/// Why a transaction failed: the request's data (the server refused it: retrying it
/// with others is pointless) or the server (down, timed out: every job fails alike).
enum CommitError {
    Rejected(StoreError),
    Server(StoreError),
}

impl CommitError {
    fn into_store_error(self) -> StoreError {
        match self {
            CommitError::Rejected(e) | CommitError::Server(e) => e,
        }
    }
}

async fn commit_jobs(pool: &PgPool, jobs: &[&WriteJob]) -> Result<(), CommitError> {
    let run = async {
        if jobs.iter().all(|j| matches!(j.kind, WriteKind::Append)) {
            // Appends only: one INSERT statement is atomic by itself (one round trip
            // instead of BEGIN, INSERT, COMMIT).
            let rows: Vec<(&str, &EventRow)> = jobs
                .iter()
                .flat_map(|j| j.rows.iter().map(|r| (j.sender_id.as_str(), r)))
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            return insert_rows(pool, &rows).await;
        }
        let mut tx = pool.begin().await?;
        apply_jobs(&mut tx, jobs).await?;
        tx.commit().await
    };
    match tokio::time::timeout(OP_TIMEOUT, run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e @ sqlx::Error::Database(_))) => Err(CommitError::Rejected(unavailable(e))),
        Ok(Err(e)) => Err(CommitError::Server(unavailable(e))),
        Err(_) => Err(CommitError::Server(unavailable(format!(
            "no answer within {} s",
            OP_TIMEOUT.as_secs()
        )))),
    }
}

/// Writer tasks committing at once. Jobs of one conversation never wait in the queue
/// together (the conversation lock is held until its write returns), so writers may
/// commit side by side without reordering a conversation's events.
const WRITERS: usize = 4;

/// Group commit: whatever appends and replaces wait are committed in one transaction,
/// so that concurrent requests share one commit (and disk flush) instead of paying one
/// each. A job is acknowledged only after its transaction committed.
async fn writer_loop(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<WriteJob>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let all: Vec<&WriteJob> = batch.iter().collect();
        match commit_jobs(&pool, &all).await {
            Ok(()) => {
                for job in batch {
                    let _ = job.done.send(Ok(()));
                }
            }
            // The server is down or stuck: every job fails alike (a 503 each).
            Err(CommitError::Server(e)) => {
                tracing::error!(error = %e, "writing events to PostgreSQL failed");
                for job in batch {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
            // One request's data was refused: retry each on its own, so that it does
            // not fail the others.
            Err(CommitError::Rejected(e)) => {
                tracing::warn!(error = %e, jobs = batch.len(), "a batch was refused; retrying one by one");
                for job in batch {
                    let single = commit_jobs(&pool, &[&job])
                        .await
                        .map_err(CommitError::into_store_error);
                    if let Err(e) = &single {
                        tracing::error!(error = %e, "writing events to PostgreSQL failed");
                    }
                    let _ = job.done.send(single);
                }
            }
        }
    }
}

fn rows_of(events: &[Event]) -> Result<Vec<EventRow>, StoreError> {
    events.iter().map(EventRow::from_event).collect()
}

#[async_trait]
impl TrackerStore for PostgresTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        let rows: Vec<Option<String>> = timed(
            sqlx::query_scalar("SELECT data FROM events WHERE sender_id = $1 ORDER BY id")
                .bind(sender_id)
                .fetch_all(&self.pool),
        )
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(rows.len());
        for data in rows {
            let Some(data) = data else {
                return Err(StoreError::Corrupt(format!(
                    "an event of '{sender_id}' has no data"
                )));
            };
            events.extend(decode_event(sender_id, &data)?);
        }
        Ok(Some(events))
    }

    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.submit(WriteKind::Append, sender_id, events).await
    }

    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        self.submit(WriteKind::Replace, sender_id, events).await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        timed(sqlx::query_scalar("SELECT DISTINCT sender_id FROM events").fetch_all(&self.pool))
            .await
    }

    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let summary = |row: PgRow| -> Result<ConversationSummary, StoreError> {
            Ok(ConversationSummary {
                sender_id: row.try_get("sender_id").map_err(unavailable)?,
                latest_event_time: row.try_get("latest_event_time").map_err(unavailable)?,
                paused: row.try_get("paused").map_err(unavailable)?,
            })
        };
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let Some(paused) = query.paused else {
            // Page first, then look up the paused state of the page's conversations only.
            let total: i64 = timed(
                sqlx::query_scalar("SELECT COUNT(DISTINCT sender_id) FROM events")
                    .fetch_one(&self.pool),
            )
            .await?;
            let rows = timed(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "WITH page AS (
                       SELECT sender_id, COALESCE(MAX(timestamp), 0.0) AS latest_event_time
                       FROM events GROUP BY sender_id
                       ORDER BY latest_event_time DESC, sender_id LIMIT $1 OFFSET $2)
                     SELECT p.sender_id, p.latest_event_time, {PAUSED_OF_P} AS paused
                     FROM page p ORDER BY p.latest_event_time DESC, p.sender_id"
                )))
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool),
            )
            .await?;
            return Ok(ConversationPage {
                conversations: rows.into_iter().map(summary).collect::<Result<_, _>>()?,
                total: usize::try_from(total).unwrap_or_default(),
            });
        };
        let rows = timed(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH p AS (
                   SELECT sender_id, COALESCE(MAX(timestamp), 0.0) AS latest_event_time
                   FROM events GROUP BY sender_id)
                 SELECT * FROM (
                   SELECT p.sender_id, p.latest_event_time, {PAUSED_OF_P} AS paused FROM p) s
                 WHERE paused = $1"
            )))
            .bind(paused)
            .fetch_all(&self.pool),
        )
        .await?;
        let all = rows.into_iter().map(summary).collect::<Result<_, _>>()?;
        Ok(ConversationPage::from_summaries(all, query))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|_| ())
    }
}

/// SQL for whether conversation `p.sender_id` is paused: its latest event of
/// [`super::PAUSE_STATE_EVENTS`] is a pause.
const PAUSED_OF_P: &str = "COALESCE((SELECT e.type_name = 'pause' FROM events e
    WHERE e.sender_id = p.sender_id
      AND e.type_name IN ('pause', 'resume', 'restart', 'session_started')
    ORDER BY e.id DESC LIMIT 1), false)";

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(host: Option<&str>) -> SqlConfig {
        SqlConfig {
            host: host.map(str::to_owned),
            port: Some(5433),
            db: "rasa".into(),
            username: Some("me".into()),
            password: Some("p@ss:w/rd".into()),
            login_db: None,
            query: vec![("sslmode".into(), "disable".into())],
        }
    }

    #[test]
    fn options_as_rasa_builds_the_url() {
        let o = connect_options(&cfg(Some("db.example")), "rasa").unwrap();
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_username(), "me");
        assert_eq!(o.get_database(), Some("rasa"));
        // A port in the host wins, as in Rasa.
        let o = connect_options(&cfg(Some("db.example:6000")), "other").unwrap();
        assert_eq!(o.get_port(), 6000);
        assert_eq!(o.get_database(), Some("other"));
        // A whole URL is used as given, its SQLAlchemy driver name dropped.
        let o = connect_options(
            &cfg(Some("postgresql+psycopg2://u@h.example:7000/d")),
            "ignored",
        )
        .unwrap();
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_database()),
            ("h.example", 7000, Some("d"))
        );
        assert!(connect_options(&cfg(None), "x").is_ok());
    }
}
