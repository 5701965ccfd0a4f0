//! Reminders in the PostgreSQL database of the tracker store (table
//! `palaver_reminders`), shared by every replica. A claim is one
//! `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`: replicas
//! claiming at the same moment skip each other's rows instead of waiting, and a row
//! claimed meanwhile no longer matches when PostgreSQL re-checks it.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};

use super::{CancelFilter, ReminderOp, ReminderStore, ScheduledReminder};
use crate::stores::StoreError;

/// Longest a reminder store call may take (a hung server must not hang the scheduler
/// or a request).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, applied once per database under an advisory lock.
const SCHEMA: &str = include_str!("../../migrations/postgres/reminders_0001.sql");

/// palaver's advisory lock key for creating the reminders table.
const SCHEMA_LOCK: i64 = 7_261_019_338;

const COLUMNS: &str = "id, sender_id, name, intent, entities, due_at, kill_on_user_msg, \
                       output_channel, legacy_action";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("reminders in PostgreSQL: {e}"))
}

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

/// The `palaver_reminders` table of a PostgreSQL database.
pub struct PostgresReminderStore {
    pool: PgPool,
}

impl PostgresReminderStore {
    /// Uses `pool` (normally the tracker store's) and creates the table if needed.
    pub async fn new(pool: PgPool) -> Result<PostgresReminderStore, StoreError> {
        let mut conn = timed(pool.acquire()).await?;
        timed(
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *conn),
        )
        .await?;
        let created = timed(sqlx::raw_sql(SCHEMA).execute(&mut *conn)).await;
        let _ = timed(
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *conn),
        )
        .await;
        created?;
        Ok(PostgresReminderStore { pool })
    }
}

fn from_row(row: &PgRow) -> Result<ScheduledReminder, StoreError> {
    super::from_sql_row(row, unavailable)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn schedule_query(r: &ScheduledReminder) -> PgQuery<'_> {
    sqlx::query(
        "INSERT INTO palaver_reminders (id, sender_id, name, intent, entities, due_at, \
         kill_on_user_msg, output_channel, legacy_action, scheduled_at, claimed_by, claimed_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL) \
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

fn cancel_query<'q>(sender_id: &'q str, filter: &'q CancelFilter) -> PgQuery<'q> {
    sqlx::query(
        "DELETE FROM palaver_reminders WHERE sender_id = $1 \
         AND ($2::TEXT IS NULL OR name = $2) AND ($3::TEXT IS NULL OR intent = $3) \
         AND ($4::TEXT IS NULL OR entities = $4)",
    )
    .bind(sender_id)
    .bind(&filter.name)
    .bind(&filter.intent)
    .bind(&filter.entities)
}

#[async_trait]
impl ReminderStore for PostgresReminderStore {
    async fn schedule(&self, r: &ScheduledReminder) -> Result<(), StoreError> {
        timed(schedule_query(r).execute(&self.pool)).await?;
        Ok(())
    }

    async fn cancel(&self, sender_id: &str, filter: &CancelFilter) -> Result<u64, StoreError> {
        let done = timed(cancel_query(sender_id, filter).execute(&self.pool)).await?;
        Ok(done.rows_affected())
    }

    async fn apply(&self, ops: &[ReminderOp]) -> Result<(), StoreError> {
        let mut tx = timed(self.pool.begin()).await?;
        for op in ops {
            match op {
                ReminderOp::Schedule(r) => {
                    timed(schedule_query(r).execute(&mut *tx)).await?;
                }
                ReminderOp::Cancel { sender_id, filter } => {
                    timed(cancel_query(sender_id, filter).execute(&mut *tx)).await?;
                }
            }
        }
        timed(tx.commit()).await
    }

    async fn claim_due(
        &self,
        now: f64,
        limit: usize,
        claimer: &str,
        until: f64,
    ) -> Result<Vec<ScheduledReminder>, StoreError> {
        let rows = timed(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE palaver_reminders SET claimed_by = $1, claimed_until = $2 WHERE id IN (\
                 SELECT id FROM palaver_reminders WHERE due_at <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY due_at LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
                 AND due_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3) \
                 RETURNING {COLUMNS}"
            )))
            .bind(claimer)
            .bind(until)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(&self.pool),
        )
        .await?;
        let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.due_at.total_cmp(&b.due_at));
        Ok(claimed)
    }

    async fn renew(&self, id: &str, claimer: &str, until: f64) -> Result<bool, StoreError> {
        let done = timed(
            sqlx::query(
                "UPDATE palaver_reminders SET claimed_until = $1 WHERE id = $2 AND claimed_by = $3",
            )
            .bind(until)
            .bind(id)
            .bind(claimer)
            .execute(&self.pool),
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, id: &str, claimer: &str) -> Result<(), StoreError> {
        timed(
            sqlx::query("DELETE FROM palaver_reminders WHERE id = $1 AND claimed_by = $2")
                .bind(id)
                .bind(claimer)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn release(&self, claimer: &str) -> Result<(), StoreError> {
        timed(
            sqlx::query(
                "UPDATE palaver_reminders SET claimed_by = NULL, claimed_until = NULL \
                 WHERE claimed_by = $1",
            )
            .bind(claimer)
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<f64>, StoreError> {
        let unclaimed: Option<f64> = timed(
            sqlx::query_scalar(
                "SELECT due_at FROM palaver_reminders WHERE claimed_until IS NULL \
                 ORDER BY due_at LIMIT 1",
            )
            .fetch_optional(&self.pool),
        )
        .await?;
        let leased: Option<f64> = timed(
            sqlx::query_scalar(
                "SELECT MIN(GREATEST(claimed_until, due_at)) FROM palaver_reminders \
                 WHERE claimed_until IS NOT NULL",
            )
            .fetch_one(&self.pool),
        )
        .await?;
        Ok(match (unclaimed, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = timed(
            sqlx::query_scalar("SELECT COUNT(*) FROM palaver_reminders").fetch_one(&self.pool),
        )
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn list(&self, sender_id: &str) -> Result<Vec<ScheduledReminder>, StoreError> {
        let rows = timed(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM palaver_reminders WHERE sender_id = $1 ORDER BY due_at, name"
            )))
            .bind(sender_id)
            .fetch_all(&self.pool),
        )
        .await?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// A fresh database on the server of `PALAVER_TEST_POSTGRES_URL`, dropped at the end.
    struct TempDb {
        admin: String,
        name: String,
        pub pool: PgPool,
    }

    impl TempDb {
        async fn create() -> Option<TempDb> {
            let Ok(url) = std::env::var("PALAVER_TEST_POSTGRES_URL") else {
                eprintln!("PALAVER_TEST_POSTGRES_URL is not set: skipping");
                return None;
            };
            let name = format!("palaver_rem_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
            let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .database(&name);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .unwrap();
            Some(TempDb {
                admin: url,
                name,
                pool,
            })
        }

        async fn drop_db(self) {
            self.pool.close().await;
            let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }

    #[tokio::test]
    async fn postgres_store_keeps_the_contract_and_claims_exclusively() {
        let Some(db) = TempDb::create().await else {
            return;
        };
        let store = PostgresReminderStore::new(db.pool.clone()).await.unwrap();
        // Twice: creating the table again is harmless.
        PostgresReminderStore::new(db.pool.clone()).await.unwrap();
        super::super::memory::tests::contract(&store).await;

        let a: std::sync::Arc<dyn ReminderStore> = std::sync::Arc::new(store);
        let b = std::sync::Arc::new(PostgresReminderStore::new(db.pool.clone()).await.unwrap());
        super::super::memory::tests::claims_exclusively(vec![
            ("a", a.clone()),
            ("b", b.clone()),
            ("c", a.clone()),
        ])
        .await;
        drop((a, b));
        db.drop_db().await;
    }
}
