//! The embedded default tracker store: SQLite, in Rasa's own `events` table layout.
//!
//! Rasa's `SQLTrackerStore` keeps one row per event (`id, sender_id, type_name,
//! timestamp, intent_name, action_name, data`), so a database written by Rasa can be
//! served by palaver and the other way round.
//!
//! Writes are append-only and durable: the database runs in WAL mode with
//! `synchronous=FULL`, and an append is acknowledged only after its transaction has
//! committed. All writes go through one writer task that commits whatever requests
//! are waiting in a single transaction (group commit), so many concurrent writers
//! share one disk flush instead of paying one each.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

#[cfg(doc)]
use super::PAUSE_STATE_EVENTS;
use super::{
    decode_event, ConversationPage, ConversationQuery, ConversationSummary, EventRow, StoreError,
    TrackerStore,
};
use crate::events::Event;

/// Schema migrations, applied in order and recorded in `palaver_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "rasa events table",
        include_str!("../../migrations/sqlite/0001_events.sql"),
    ),
    (
        2,
        "index for the conversation list",
        include_str!("../../migrations/sqlite/0002_events_sender_type_index.sql"),
    ),
    (
        3,
        "scheduled reminders",
        include_str!("../../migrations/sqlite/0003_reminders.sql"),
    ),
];

/// Most requests committed together in one transaction.
const MAX_BATCH: usize = 512;

enum WriteKind {
    Append,
    Replace,
}

struct WriteJob {
    kind: WriteKind,
    sender_id: String,
    rows: Vec<EventRow>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// A SQLite database file holding Rasa's `events` table.
pub struct SqliteTrackerStore {
    readers: SqlitePool,
    writer: mpsc::Sender<WriteJob>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteTrackerStore {
    /// Opens (creating if needed) the database at `path` and migrates its schema.
    pub async fn open(path: &Path) -> Result<SqliteTrackerStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        migrate(&mut conn).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer_loop(conn, rx));
        Ok(SqliteTrackerStore {
            readers,
            writer: tx,
        })
    }

    async fn submit(
        &self,
        kind: WriteKind,
        sender_id: &str,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let rows = events
            .iter()
            .map(EventRow::from_event)
            .collect::<Result<Vec<_>, _>>()?;
        let (done, wait) = oneshot::channel();
        self.writer
            .send(WriteJob {
                kind,
                sender_id: sender_id.to_owned(),
                rows,
                done,
            })
            .await
            .map_err(|_| unavailable("the SQLite writer has stopped"))?;
        wait.await
            .map_err(|_| unavailable("the SQLite writer has stopped"))?
    }
}

/// Brings a database's schema up to date (every table palaver keeps in SQLite: the
/// events, the reminders). Safe to run on an up-to-date database.
pub async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS palaver_migrations (\
         version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at FLOAT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    for (version, description, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM palaver_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?;
        if done.is_some() {
            continue;
        }
        let mut tx = conn.begin().await.map_err(unavailable)?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO palaver_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        )
        .bind(version)
        .bind(description)
        .bind(crate::events::now())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
    }
    Ok(())
}

/// Inserts rows, each with its conversation id, in order, several per statement:
/// far fewer round trips to SQLite's worker thread than one statement per event.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(&str, &EventRow)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(64) {
        let mut sql = String::from(
            "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?)"
            });
        }
        // Only `?` placeholders are added to the text; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (sender_id, r) in chunk {
            q = q
                .bind(*sender_id)
                .bind(r.type_name)
                .bind(r.timestamp)
                .bind(r.intent_name.as_deref())
                .bind(r.action_name.as_deref())
                .bind(r.data.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Applies jobs in order: consecutive appends share their INSERT statements; a
/// replace deletes the conversation's rows first.
async fn apply_jobs(conn: &mut SqliteConnection, jobs: &[&WriteJob]) -> Result<(), sqlx::Error> {
    let mut pending: Vec<(&str, &EventRow)> = Vec::new();
    for job in jobs {
        if let WriteKind::Replace = job.kind {
            insert_rows(conn, &pending).await?;
            pending.clear();
            sqlx::query("DELETE FROM events WHERE sender_id = ?")
                .bind(&job.sender_id)
                .execute(&mut *conn)
                .await?;
        }
        pending.extend(job.rows.iter().map(|r| (job.sender_id.as_str(), r)));
    }
    insert_rows(conn, &pending).await
}

async fn commit_batch(conn: &mut SqliteConnection, batch: &[WriteJob]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    apply_jobs(&mut tx, &batch.iter().collect::<Vec<_>>()).await?;
    tx.commit().await
}

/// Serialises this process's writes to SQLite: the tracker store's writer and the
/// reminder store take it around each write transaction, in turn (the lock is fair), so
/// that neither starves the other in SQLite's busy loop, which polls a held database
/// lock only every 100 ms.
pub static WRITE_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<WriteJob>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let _gate = WRITE_GATE.lock().await;
        if commit_batch(&mut conn, &batch).await.is_ok() {
            for job in batch {
                let _ = job.done.send(Ok(()));
            }
            continue;
        }
        // The shared transaction failed: retry each request on its own, so that one
        // bad request does not fail the others, and report each outcome.
        for job in batch {
            let single = async {
                let mut tx = conn.begin().await?;
                apply_jobs(&mut tx, &[&job]).await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = &single {
                tracing::error!(error = %e, "writing events to SQLite failed");
            }
            let _ = job.done.send(single.map_err(unavailable));
        }
    }
}

#[async_trait]
impl TrackerStore for SqliteTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        let rows = sqlx::query("SELECT data FROM events WHERE sender_id = ? ORDER BY id")
            .bind(sender_id)
            .fetch_all(&self.readers)
            .await
            .map_err(unavailable)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let data: String = row.try_get("data").map_err(unavailable)?;
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
        sqlx::query_scalar("SELECT DISTINCT sender_id FROM events")
            .fetch_all(&self.readers)
            .await
            .map_err(unavailable)
    }

    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let summary = |row: sqlx::sqlite::SqliteRow| -> Result<ConversationSummary, StoreError> {
            Ok(ConversationSummary {
                sender_id: row.try_get("sender_id").map_err(unavailable)?,
                latest_event_time: row.try_get("latest_event_time").map_err(unavailable)?,
                paused: row.try_get::<i64, _>("paused").map_err(unavailable)? != 0,
            })
        };
        let Some(paused) = query.paused else {
            // Page first, then look up the paused state of the page's conversations only.
            let total: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT sender_id) FROM events")
                .fetch_one(&self.readers)
                .await
                .map_err(unavailable)?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH page AS (
                   SELECT sender_id, COALESCE(MAX(timestamp), 0.0) AS latest_event_time
                   FROM events GROUP BY sender_id
                   ORDER BY latest_event_time DESC, sender_id LIMIT ? OFFSET ?)
                 SELECT p.sender_id, p.latest_event_time, {PAUSED_OF_P} AS paused
                 FROM page p ORDER BY p.latest_event_time DESC, p.sender_id"
            )))
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await
            .map_err(unavailable)?;
            return Ok(ConversationPage {
                conversations: rows.into_iter().map(summary).collect::<Result<_, _>>()?,
                total: usize::try_from(total).unwrap_or_default(),
            });
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH p AS (
               SELECT sender_id, COALESCE(MAX(timestamp), 0.0) AS latest_event_time
               FROM events GROUP BY sender_id)
             SELECT * FROM (
               SELECT p.sender_id, p.latest_event_time, {PAUSED_OF_P} AS paused FROM p)
             WHERE paused = ?"
        )))
        .bind(i64::from(paused))
        .fetch_all(&self.readers)
        .await
        .map_err(unavailable)?;
        let all = rows.into_iter().map(summary).collect::<Result<_, _>>()?;
        Ok(ConversationPage::from_summaries(all, query))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

/// SQL for whether conversation `p.sender_id` is paused: its latest event of
/// [`PAUSE_STATE_EVENTS`] is a pause (the test below compares it with the trait's
/// default).
const PAUSED_OF_P: &str = "COALESCE((SELECT e.type_name = 'pause' FROM events e
    WHERE e.sender_id = p.sender_id
      AND e.type_name IN ('pause', 'resume', 'restart', 'session_started')
    ORDER BY e.id DESC LIMIT 1), 0)";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: serde_json::Value) -> Event {
        Event::from_json(&v).unwrap().unwrap()
    }

    #[tokio::test]
    async fn append_retrieve_replace_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteTrackerStore::open(&path).await.unwrap();
        assert_eq!(store.retrieve("a").await.unwrap(), None);
        let a = ev(json!({"event": "slot", "name": "x", "value": 1, "timestamp": 1.0}));
        let b = ev(json!({"event": "user", "text": "hi", "timestamp": 2.0,
            "parse_data": {"intent": {"name": "greet"}}}));
        store.append("a", std::slice::from_ref(&a)).await.unwrap();
        store.append("a", std::slice::from_ref(&b)).await.unwrap();
        assert_eq!(
            store.retrieve("a").await.unwrap(),
            Some(vec![a.clone(), b.clone()])
        );
        store.replace("a", std::slice::from_ref(&b)).await.unwrap();
        assert_eq!(store.retrieve("a").await.unwrap(), Some(vec![b.clone()]));
        drop(store);
        let store = SqliteTrackerStore::open(&path).await.unwrap();
        assert_eq!(store.retrieve("a").await.unwrap(), Some(vec![b]));
        assert_eq!(store.keys().await.unwrap(), vec!["a".to_string()]);
        // Rasa's columns are filled the way Rasa fills them.
        let row: (String, Option<String>) =
            sqlx::query_as("SELECT type_name, intent_name FROM events")
                .fetch_one(&store.readers)
                .await
                .unwrap();
        assert_eq!(row, ("user".to_string(), Some("greet".to_string())));
    }

    /// Lists through the trait's default implementation.
    struct ViaDefault<'a>(&'a SqliteTrackerStore);

    #[async_trait]
    impl TrackerStore for ViaDefault<'_> {
        async fn retrieve(&self, s: &str) -> Result<Option<Vec<Event>>, StoreError> {
            self.0.retrieve(s).await
        }
        async fn append(&self, s: &str, e: &[Event]) -> Result<(), StoreError> {
            self.0.append(s, e).await
        }
        async fn replace(&self, s: &str, e: &[Event]) -> Result<(), StoreError> {
            self.0.replace(s, e).await
        }
        async fn keys(&self) -> Result<Vec<String>, StoreError> {
            self.0.keys().await
        }
    }

    #[tokio::test]
    async fn conversation_list_matches_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteTrackerStore::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        let at = |event: &str, t: f64| ev(json!({"event": event, "timestamp": t}));
        let bot = |t: f64| ev(json!({"event": "bot", "text": "x", "timestamp": t}));
        store
            .append("paused", &[bot(1.0), at("pause", 5.0), bot(6.0)])
            .await
            .unwrap();
        store
            .append("resumed", &[at("pause", 2.0), at("resume", 3.0)])
            .await
            .unwrap();
        store
            .append("restarted", &[at("pause", 2.0), at("restart", 7.0)])
            .await
            .unwrap();
        store
            .append(
                "new session",
                &[at("pause", 1.0), at("session_started", 4.0)],
            )
            .await
            .unwrap();
        store.append("tie-b", &[bot(3.0)]).await.unwrap();
        store.append("tie-a", &[bot(3.0)]).await.unwrap();
        // Out-of-order timestamps: the newest counts, not the last stored.
        store
            .append("late", &[bot(9.0), at("pause", 8.0)])
            .await
            .unwrap();
        let queries = [
            (0, 100, None),
            (0, 2, None),
            (2, 3, None),
            (6, 5, None),
            (50, 5, None),
            (0, 100, Some(true)),
            (1, 1, Some(true)),
            (0, 100, Some(false)),
        ];
        for (offset, limit, paused) in queries {
            let q = ConversationQuery {
                offset,
                limit,
                paused,
            };
            let fast = store.list_conversations(&q).await.unwrap();
            let reference = ViaDefault(&store).list_conversations(&q).await.unwrap();
            assert_eq!(fast, reference, "{q:?}");
        }
        let all = store
            .list_conversations(&ConversationQuery {
                offset: 0,
                limit: 100,
                paused: None,
            })
            .await
            .unwrap();
        assert_eq!(all.total, 7);
        let order: Vec<(&str, bool)> = all
            .conversations
            .iter()
            .map(|c| (c.sender_id.as_str(), c.paused))
            .collect();
        assert_eq!(
            order,
            vec![
                ("late", true),
                ("restarted", false),
                ("paused", true),
                ("new session", false),
                ("resumed", false),
                ("tie-a", false),
                ("tie-b", false),
            ]
        );
    }

    #[tokio::test]
    async fn concurrent_appends_keep_per_request_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            SqliteTrackerStore::open(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let events: Vec<Event> = (0..3)
                    .map(|j| ev(json!({"event": "slot", "name": format!("r{i}"), "value": j})))
                    .collect();
                store.append("same", &events).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = store.retrieve("same").await.unwrap().unwrap();
        assert_eq!(events.len(), 150);
        for chunk in events.chunks(3) {
            let names: Vec<_> = chunk
                .iter()
                .map(|e| e.name_field().unwrap().to_owned())
                .collect();
            assert!(names.iter().all(|n| n == &names[0]), "{names:?}");
        }
    }
}
