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

/// The `user` events and the bot messages with `text` of one conversation.
async fn count_events(db: &std::path::Path, sender: &str, text: &str) -> (i64, i64) {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT \
         COALESCE(SUM(CASE WHEN type_name = 'user' AND data LIKE '%is_external%' THEN 1 ELSE 0 END), 0) AS ext, \
         COALESCE(SUM(CASE WHEN type_name = 'bot' AND data LIKE '%' || ? || '%' THEN 1 ELSE 0 END), 0) AS bots \
         FROM events WHERE sender_id = ?",
    )
    .bind(text)
    .bind(sender)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (row.get("ext"), row.get("bots"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_firing_hands_the_reminder_over_when_its_lease_ends() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // The action server: the first call hangs (its replica is killed meanwhile), later
    // ones answer at once.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                axum::Json(json!({"events": [], "responses": [{"text": "slow done"}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.db");
    let options = Options {
        bot: Some(reminders_bot()),
        endpoints: Some(format!(
            "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {}\n\
             action_endpoint:\n  url: http://127.0.0.1:{port}/webhook\n",
            db.display()
        )),
        env: vec![("PALAVER_REMINDER_LEASE".into(), "2".into())],
        ..Default::default()
    };
    let mut first = Server::with(options.clone()).await;
    let due = (Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let (status, out) = first
        .post_events(
            "slow",
            &json!({"event": "reminder", "intent": "EXTERNAL_slow", "name": "s",
                "date_time": due, "kill_on_user_msg": false}),
            "&execute_side_effects=true",
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the first replica never fired"
    );
    first.kill9();
    assert_eq!(count_events(&db, "slow", "slow done").await, (0, 0));
    assert_eq!(pending(&db).await, 1);

    let second = Server::with(options).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_events(&db, "slow", "slow done").await.0 == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_events(&db, "slow", "slow done").await, (1, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(pending(&db).await, 0);
    drop(second);
}
