//! The SQL event broker (`event_broker: {type: SQL}`), as Rasa's `SQLEventBroker`: each
//! event is a row `(id, sender_id, data)` of a table named `events` in its own database
//! (SQLite file or PostgreSQL), `data` being the event's broker JSON. A batch of
//! messages is one transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{BrokerError, EventBroker, PartialDelivery};
use crate::config::SqlBrokerConfig;
use crate::stores::postgres;

/// The broker table's migrations on PostgreSQL (recorded in
/// `palaver_broker_migrations`, apart from a tracker store's).
const PG_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "rasa broker events table",
    include_str!("../../migrations/postgres/broker_0001_events.sql"),
)];

/// Rasa's broker table on SQLite.
const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS events (
    id INTEGER NOT NULL, sender_id VARCHAR(255), data TEXT, PRIMARY KEY (id))";

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Publishes events as rows of a SQL table.
pub struct SqlEventBroker {
    db: Db,
}

fn broken(e: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("SQL event broker: {e}"))
}

impl SqlEventBroker {
    /// Opens (creating if needed) the broker's database and table.
    pub async fn connect(cfg: &SqlBrokerConfig) -> Result<SqlEventBroker, BrokerError> {
        let db = match cfg {
            SqlBrokerConfig::Sqlite(path) => {
                let options = SqliteConnectOptions::from_str("sqlite://")
                    .map_err(broken)?
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(broken)?;
                sqlx::query(SQLITE_TABLE)
                    .execute(&pool)
                    .await
                    .map_err(broken)?;
                Db::Sqlite(pool)
            }
            SqlBrokerConfig::Postgres(cfg) => {
                let pool = postgres::connect_pool(cfg).await.map_err(broken)?;
                postgres::migrate_with(&pool, "palaver_broker_migrations", PG_MIGRATIONS)
                    .await
                    .map_err(broken)?;
                Db::Postgres(pool)
            }
        };
        Ok(SqlEventBroker { db })
    }
}

/// `sender_id` of a broker message (for the table's column).
fn sender_of(message: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(message)
        .ok()?
        .get("sender_id")?
        .as_str()
        .map(str::to_owned)
}

#[async_trait]
impl EventBroker for SqlEventBroker {
    async fn publish(&self, messages: &[String]) -> Result<(), PartialDelivery> {
        let fail = |e| PartialDelivery {
            delivered: 0,
            error: broken(e),
        };
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                for m in messages {
                    sqlx::query("INSERT INTO events (sender_id, data) VALUES (?, ?)")
                        .bind(sender_of(m))
                        .bind(m)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)
            }
            Db::Postgres(pool) => {
                let senders: Vec<Option<String>> = messages.iter().map(|m| sender_of(m)).collect();
                let run = sqlx::query(
                    "INSERT INTO events (sender_id, data)
                     SELECT t.sender_id, t.data
                     FROM UNNEST($1::varchar[], $2::text[]) WITH ORDINALITY AS t(sender_id, data, n)
                     ORDER BY t.n",
                )
                .bind(senders)
                .bind(messages)
                .execute(pool);
                match tokio::time::timeout(postgres::OP_TIMEOUT, run).await {
                    Ok(r) => r.map(|_| ()).map_err(fail),
                    Err(_) => Err(fail(sqlx::Error::PoolTimedOut)),
                }
            }
        }
    }
}
