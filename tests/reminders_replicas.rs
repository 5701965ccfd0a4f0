//! Several palaver replicas sharing one store: 1,000 reminders due within the same
//! few seconds each fire exactly once (counted in the stored events), whichever
//! replica scheduled them.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Options, Server};
use futures::StreamExt;
use serde_json::json;
use sqlx::Row;

const REMINDERS: usize = 1000;

fn reminders_bot() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reminders_bot")
}

/// Per conversation: (external user events, reminder answers) in the shared database.
async fn fired(db: &std::path::Path) -> HashMap<String, (i64, i64)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT sender_id, \
         SUM(CASE WHEN type_name = 'user' AND data LIKE '%is_external%' THEN 1 ELSE 0 END) AS ext, \
         SUM(CASE WHEN type_name = 'bot' AND data LIKE '%Remember to call%' THEN 1 ELSE 0 END) AS bots \
         FROM events GROUP BY sender_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get::<String, _>("sender_id"),
                (r.get::<i64, _>("ext"), r.get::<i64, _>("bots")),
            )
        })
        .collect()
}

async fn pending(db: &std::path::Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM palaver_reminders")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// `palaver_reminders_total{outcome="fired"}` of one replica.
async fn fired_metric(s: &Server) -> f64 {
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("palaver_reminders_total{outcome=\"fired\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_sqlite_file_fire_each_reminder_once() {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.db");
    let options = Options {
        bot: Some(reminders_bot()),
        endpoints: Some(format!(
            "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {}\n",
            db.display()
        )),
        args: vec!["--metrics".into()],
        ..Default::default()
    };
    // One after the other: the first creates the schema.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Server::with(options.clone()).await);
    }
    let due = Utc::now() + chrono::Duration::seconds(8);
    let started = Instant::now();
    let mut tasks = futures::stream::iter(0..REMINDERS)
        .map(|i| {
            let s = &replicas[i % 3];
            // Due within the same 2 seconds.
            let at = due + chrono::Duration::milliseconds((i % 20) as i64 * 100);
            let body = json!({"event": "reminder", "intent": "EXTERNAL_reminder",
                "name": "call", "entities": [{"entity": "PERSON", "value": format!("p{i}")}],
                "date_time": at.to_rfc3339(), "kill_on_user_msg": false});
            async move {
                let (status, out) = s
                    .post_events(
                        &format!("conv-{i}"),
                        &body,
                        "&execute_side_effects=true&include_events=NONE",
                    )
                    .await;
                assert_eq!(status, 200, "{out}");
            }
        })
        .buffer_unordered(24);
    while tasks.next().await.is_some() {}
    eprintln!(
        "scheduled {REMINDERS} reminders through 3 replicas in {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let counts = fired(&db).await;
        let done = counts.values().filter(|(ext, _)| *ext > 0).count();
        if done >= REMINDERS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all fired {:?} after the first was due", Utc::now() - due);
    // Leave time for a duplicate to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = fired(&db).await;
    assert_eq!(counts.len(), REMINDERS);
    for i in 0..REMINDERS {
        assert_eq!(
            counts.get(&format!("conv-{i}")),
            Some(&(1, 1)),
            "conv-{i}: (external events, answers)"
        );
    }
    assert_eq!(pending(&db).await, 0);
    let mut per_replica = Vec::new();
    for s in &replicas {
        per_replica.push(fired_metric(s).await);
    }
    eprintln!("fired per replica: {per_replica:?}");
    assert_eq!(per_replica.iter().sum::<f64>(), REMINDERS as f64);
}
