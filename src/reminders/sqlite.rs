//! Reminders in the SQLite database of the tracker store (table `palaver_reminders`,
//! migration 0003), so that they survive a restart. Several processes may share the
//! file: SQLite runs each write statement under the database's write lock, so a claim
//! (`UPDATE ... WHERE unclaimed ... RETURNING`) is exclusive across them. Within one
//! process, writes take [`WRITE_GATE`] in turn with the tracker store's writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::Connection;

use super::{CancelFilter, ReminderOp, ReminderStore, ScheduledReminder};
use crate::stores::sqlite::WRITE_GATE;
use crate::stores::StoreError;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("reminders: {e}"))
}

const COLUMNS: &str = "id, sender_id, name, intent, entities, due_at, kill_on_user_msg, \
                       output_channel, legacy_action";

/// The `palaver_reminders` table of a SQLite database.
pub struct SqliteReminderStore {
    pool: SqlitePool,
}

impl SqliteReminderStore {
    /// Opens (creating and migrating if needed) the database at `path`; normally the
    /// tracker store's file.
    pub async fn open(path: &Path) -> Result<SqliteReminderStore, StoreError> {
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
        crate::stores::sqlite::migrate(&mut conn).await?;
        let _ = conn.close().await;
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(SqliteReminderStore { pool })
    }
}

fn from_row(row: &SqliteRow) -> Result<ScheduledReminder, StoreError> {
    super::from_sql_row(row, unavailable)
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn schedule_query(r: &ScheduledReminder) -> SqliteQuery<'_> {
    sqlx::query(
        "INSERT INTO palaver_reminders (id, sender_id, name, intent, entities, due_at, \
         kill_on_user_msg, output_channel, legacy_action, scheduled_at, claimed_by, claimed_until) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) \
         ON CONFLICT (sender_id, name) DO UPDATE SET id = excluded.id, intent = excluded.intent, \
         entities = excluded.entities, due_at = excluded.due_at, \
         kill_on_user_msg = excluded.kill_on_user_msg, output_channel = excluded.output_channel, \
         legacy_action = excluded.legacy_action, scheduled_at = excluded.scheduled_at, \
         claimed_by = NULL, claimed_until = NULL",
    )
    .bind(&r.id)
    .bind(&r.sender_id)
    .bind(&r.name)
    .bind(&r.intent)
    .bind(r.entities_key())
    .bind(r.due_at)
    .bind(r.kill_on_user_msg)
    .bind(&r.output_channel)
    .bind(&r.legacy_action)
    .bind(crate::events::now())
}

fn cancel_query<'q>(sender_id: &'q str, filter: &'q CancelFilter) -> SqliteQuery<'q> {
    sqlx::query(
        "DELETE FROM palaver_reminders WHERE sender_id = ? \
         AND (? IS NULL OR name = ?) AND (? IS NULL OR intent = ?) \
         AND (? IS NULL OR entities = ?)",
    )
    .bind(sender_id)
    .bind(&filter.name)
    .bind(&filter.name)
    .bind(&filter.intent)
    .bind(&filter.intent)
    .bind(&filter.entities)
    .bind(&filter.entities)
}

#[async_trait]
impl ReminderStore for SqliteReminderStore {
    async fn schedule(&self, r: &ScheduledReminder) -> Result<(), StoreError> {
        let _gate = WRITE_GATE.lock().await;
        schedule_query(r)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn cancel(&self, sender_id: &str, filter: &CancelFilter) -> Result<u64, StoreError> {
        let _gate = WRITE_GATE.lock().await;
        let done = cancel_query(sender_id, filter)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn apply(&self, ops: &[ReminderOp]) -> Result<(), StoreError> {
        let _gate = WRITE_GATE.lock().await;
        // One transaction: one disk flush for all of a request's reminders.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for op in ops {
            match op {
                ReminderOp::Schedule(r) => schedule_query(r).execute(&mut *tx).await,
                ReminderOp::Cancel { sender_id, filter } => {
                    cancel_query(sender_id, filter).execute(&mut *tx).await
                }
            }
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn claim_due(
        &self,
        now: f64,
        limit: usize,
        claimer: &str,
        until: f64,
    ) -> Result<Vec<ScheduledReminder>, StoreError> {
        let _gate = WRITE_GATE.lock().await;
        // One statement: SQLite takes the write lock before reading, so two processes
        // never claim the same row.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE palaver_reminders SET claimed_by = ?, claimed_until = ? WHERE id IN (\
             SELECT id FROM palaver_reminders WHERE due_at <= ? \
             AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at LIMIT ?) \
             RETURNING {COLUMNS}"
        )))
        .bind(claimer)
        .bind(until)
        .bind(now)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.due_at.total_cmp(&b.due_at));
        Ok(claimed)
    }

    async fn renew(&self, id: &str, claimer: &str, until: f64) -> Result<bool, StoreError> {
        let _gate = WRITE_GATE.lock().await;
        let done = sqlx::query(
            "UPDATE palaver_reminders SET claimed_until = ? WHERE id = ? AND claimed_by = ?",
        )
        .bind(until)
        .bind(id)
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, id: &str, claimer: &str) -> Result<(), StoreError> {
        let _gate = WRITE_GATE.lock().await;
        sqlx::query("DELETE FROM palaver_reminders WHERE id = ? AND claimed_by = ?")
            .bind(id)
            .bind(claimer)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, claimer: &str) -> Result<(), StoreError> {
        let _gate = WRITE_GATE.lock().await;
        sqlx::query(
            "UPDATE palaver_reminders SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = ?",
        )
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<f64>, StoreError> {
        // The earliest unclaimed reminder (index on due_at), or the earliest lease end.
        let unclaimed: Option<f64> = sqlx::query_scalar(
            "SELECT due_at FROM palaver_reminders WHERE claimed_until IS NULL \
             ORDER BY due_at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let leased: Option<f64> = sqlx::query_scalar(
            "SELECT MIN(MAX(claimed_until, due_at)) FROM palaver_reminders \
             WHERE claimed_until IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(match (unclaimed, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM palaver_reminders")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(n.max(0) as u64)
    }

    async fn list(&self, sender_id: &str) -> Result<Vec<ScheduledReminder>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM palaver_reminders WHERE sender_id = ? ORDER BY due_at, name"
        )))
        .bind(sender_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = SqliteReminderStore::open(&path).await.unwrap();
        super::super::memory::tests::contract(&store).await;
        drop(store);
        let store = SqliteReminderStore::open(&path).await.unwrap();
        assert_eq!(store.list("d").await.unwrap().len(), 1);
        // The tracker store opens the same file (same migrations).
        crate::stores::sqlite::SqliteTrackerStore::open(&path)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn two_handles_on_one_file_never_claim_the_same_reminder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let a = std::sync::Arc::new(SqliteReminderStore::open(&path).await.unwrap());
        let b = std::sync::Arc::new(SqliteReminderStore::open(&path).await.unwrap());
        super::super::memory::tests::claims_exclusively(vec![("a", a), ("b", b)]).await;
    }
}
