//! The PostgreSQL tracker store against a real server: every event type round-trips,
//! migrations are versioned and safe to run from several replicas at once, a table
//! that Rasa wrote is served (and extended the way Rasa would), endpoints.yml is read
//! as Rasa reads it, and an outage gives clean 503s with nothing acknowledged lost.

mod common;
mod stores_support;

use std::time::{Duration, Instant};

use common::{send, Options, Server, TOKEN};
use palaver::config::SqlConfig;
use palaver::stores::postgres::PostgresTrackerStore;
use palaver::stores::TrackerStore;
use serde_json::{json, Value};
use stores_support::{every_event_type, parse, PgDb, PrivatePostgres};

fn url_config(url: &str) -> SqlConfig {
    SqlConfig {
        host: Some(url.to_owned()),
        port: None,
        db: "ignored".into(),
        username: None,
        password: None,
        login_db: None,
        query: Vec::new(),
    }
}

#[tokio::test]
async fn every_event_type_round_trips_in_rasa_columns() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let store = PostgresTrackerStore::connect(&url_config(&db.url()))
        .await
        .unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), None);
    let samples = every_event_type();
    let events = parse(&samples);
    let (first, rest) = events.split_at(5);
    store.append("a", first).await.unwrap();
    store.append("a", rest).await.unwrap();
    store.append("a", &[]).await.unwrap();
    store.append("b", &events[..1]).await.unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), Some(events.clone()));
    let stored: Vec<Value> = store
        .retrieve("a")
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|e| e.to_json())
        .collect();
    let given: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
    assert_eq!(stored, given);

    // Rasa's columns are filled the way Rasa fills them.
    let mut conn = db.connect().await;
    type Row = (String, String, Option<f64>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT sender_id, type_name, timestamp, intent_name, action_name FROM events \
         WHERE sender_id = 'a' ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), samples.len());
    for (row, e) in rows.iter().zip(&events) {
        let json = e.to_json();
        assert_eq!(row.1, e.type_name());
        assert_eq!(row.2, json["timestamp"].as_f64());
        let intent = json["parse_data"]["intent"]["name"].as_str();
        assert_eq!(row.3.as_deref(), intent, "{json}");
        assert_eq!(row.4.as_deref(), json["name"].as_str(), "{json}");
    }

    let mut keys = store.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a".to_string(), "b".to_string()]);
    store.replace("a", &events[2..4]).await.unwrap();
    assert_eq!(
        store.retrieve("a").await.unwrap(),
        Some(events[2..4].to_vec())
    );
    store.replace("a", &[]).await.unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), None);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn conversation_list_orders_and_filters_by_pause() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let store = PostgresTrackerStore::connect(&url_config(&db.url()))
        .await
        .unwrap();
    let at = |event: &str, t: f64| parse(&[json!({"event": event, "timestamp": t})]).remove(0);
    store
        .append("paused", &[at("restart", 1.0), at("pause", 5.0)])
        .await
        .unwrap();
    store
        .append("resumed", &[at("pause", 2.0), at("resume", 3.0)])
        .await
        .unwrap();
    store.append("late", &[at("pause", 9.0)]).await.unwrap();
    use palaver::stores::ConversationQuery;
    let q = |offset, limit, paused| ConversationQuery {
        offset,
        limit,
        paused,
    };
    let ids = |p: palaver::stores::ConversationPage| {
        (
            p.total,
            p.conversations
                .into_iter()
                .map(|c| (c.sender_id, c.paused))
                .collect::<Vec<_>>(),
        )
    };
    let s = |x: &str| x.to_string();
    assert_eq!(
        ids(store.list_conversations(&q(0, 10, None)).await.unwrap()),
        (
            3,
            vec![
                (s("late"), true),
                (s("paused"), true),
                (s("resumed"), false)
            ]
        )
    );
    assert_eq!(
        ids(store.list_conversations(&q(1, 1, None)).await.unwrap()),
        (3, vec![(s("paused"), true)])
    );
    assert_eq!(
        ids(store
            .list_conversations(&q(0, 10, Some(false)))
            .await
            .unwrap()),
        (1, vec![(s("resumed"), false)])
    );
    assert_eq!(
        ids(store
            .list_conversations(&q(1, 10, Some(true)))
            .await
            .unwrap()),
        (2, vec![(s("paused"), true)])
    );
}

#[tokio::test]
async fn migrations_are_versioned_and_replicas_may_start_together() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let cfg = url_config(&db.url());
    // Three replicas starting at once all succeed (the migration lock serialises them).
    let (a, b, c) = tokio::join!(
        PostgresTrackerStore::connect(&cfg),
        PostgresTrackerStore::connect(&cfg),
        PostgresTrackerStore::connect(&cfg)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let mut conn = db.connect().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM palaver_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2]);
    let mut indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE tablename = 'events'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        vec![
            "events_pkey",
            "ix_events_sender_id",
            "ix_events_sender_type"
        ]
    );
    // Rasa's column types.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_name = 'events' ORDER BY ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let s = |x: &str| x.to_string();
    assert_eq!(
        columns,
        vec![
            (s("id"), s("integer"), s("NO")),
            (s("sender_id"), s("character varying"), s("NO")),
            (s("type_name"), s("character varying"), s("NO")),
            (s("timestamp"), s("double precision"), s("YES")),
            (s("intent_name"), s("character varying"), s("YES")),
            (s("action_name"), s("character varying"), s("YES")),
            (s("data"), s("text"), s("YES")),
        ]
    );
    // Connecting again applies nothing twice.
    PostgresTrackerStore::connect(&cfg).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM palaver_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

/// The table as Rasa 3.6 (SQLAlchemy) creates it on PostgreSQL.
const RASA_DDL: &str = "CREATE TABLE events (
	id SERIAL NOT NULL, 
	sender_id VARCHAR(255) NOT NULL, 
	type_name VARCHAR(255) NOT NULL, 
	timestamp FLOAT, 
	intent_name VARCHAR(255), 
	action_name VARCHAR(255), 
	data TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_events_sender_id ON events (sender_id);";

#[tokio::test]
async fn serves_and_extends_a_table_rasa_wrote() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let mut conn = db.connect().await;
    sqlx::raw_sql(RASA_DDL).execute(&mut conn).await.unwrap();
    // Rows as Rasa's SQLTrackerStore.save writes them: json.dumps of the event dict
    // (Python's separators and ASCII escapes), intent and action names in columns.
    let rasa_rows = [
        (
            "action",
            None,
            Some("action_session_start"),
            r#"{"event": "action", "timestamp": 1700000000.123456, "metadata": {"model_id": "m1"}, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#,
        ),
        (
            "session_started",
            None,
            None,
            r#"{"event": "session_started", "timestamp": 1700000000.2, "metadata": {"model_id": "m1"}}"#,
        ),
        (
            "action",
            None,
            Some("action_listen"),
            r#"{"event": "action", "timestamp": 1700000000.3, "metadata": {"model_id": "m1"}, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}"#,
        ),
        (
            "user",
            Some("greet"),
            None,
            r#"{"event": "user", "timestamp": 1700000001.0, "metadata": {"model_id": "m1"}, "text": "Gr\u00fc\u00df dich \ud83c\udf0d", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [], "text": "Gr\u00fc\u00df dich \ud83c\udf0d", "message_id": "abc", "metadata": {}, "intent_ranking": [{"name": "greet", "confidence": 1.0}]}, "input_channel": "rest", "message_id": "abc"}"#,
        ),
        (
            "slot",
            None,
            Some("name"),
            r#"{"event": "slot", "timestamp": 1700000001.1, "name": "name", "value": "Zo\u00eb"}"#,
        ),
        (
            "action",
            None,
            Some("utter_greet"),
            r#"{"event": "action", "timestamp": 1700000001.2, "metadata": {"model_id": "m1"}, "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#,
        ),
        (
            "bot",
            None,
            None,
            r#"{"event": "bot", "timestamp": 1700000001.3, "metadata": {"utter_action": "utter_greet", "model_id": "m1"}, "text": "Hey!", "data": {"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}}"#,
        ),
        (
            "action",
            None,
            Some("action_listen"),
            r#"{"event": "action", "timestamp": 1700000001.4, "metadata": {"model_id": "m1"}, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": true}"#,
        ),
    ];
    for (type_name, intent, action, data) in rasa_rows {
        let v: Value = serde_json::from_str(data).unwrap();
        sqlx::query(
            "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind("rasa-user")
        .bind(type_name)
        .bind(v["timestamp"].as_f64())
        .bind(intent)
        .bind(action)
        .bind(data)
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let server = Server::with(Options {
        endpoints: Some(db.endpoints()),
        ..Options::default()
    })
    .await;
    let tracker = server.tracker("rasa-user", "").await;
    let events = tracker["events"].as_array().unwrap();
    assert_eq!(events.len(), rasa_rows.len());
    for (e, (_, _, _, data)) in events.iter().zip(rasa_rows) {
        let rasa: Value = serde_json::from_str(data).unwrap();
        assert_eq!(e["event"], rasa["event"]);
        assert_eq!(e["timestamp"], rasa["timestamp"]);
        for key in ["name", "text", "value", "policy", "confidence"] {
            assert_eq!(e.get(key), rasa.get(key), "{key} of {rasa}");
        }
    }
    assert_eq!(tracker["slots"]["name"], "Zoë");
    assert_eq!(tracker["latest_message"]["text"], "Grüß dich 🌍");

    // palaver continues the conversation in Rasa's rows.
    let (status, body) = send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": "rasa-user", "message": "/goodbye"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<(i32, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, type_name, intent_name, action_name FROM events \
         WHERE sender_id = 'rasa-user' ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let new: Vec<(String, Option<String>, Option<String>)> = rows[rasa_rows.len()..]
        .iter()
        .map(|r| (r.1.clone(), r.2.clone(), r.3.clone()))
        .collect();
    let s = |x: &str| Some(x.to_string());
    // Rasa's session had expired (its events are old): a new one starts, as in Rasa.
    assert_eq!(new[0], ("action".into(), None, s("action_session_start")));
    let user = new
        .iter()
        .position(|r| r.0 == "user")
        .expect("the user message is stored");
    assert_eq!(new[user], ("user".into(), s("goodbye"), None));
    let answer = new
        .iter()
        .position(|r| r.2.as_deref() == Some("utter_goodbye"))
        .expect("the answer is stored");
    assert!(answer > user);
    assert_eq!(new[answer].0, "action");
    assert_eq!(new[answer + 1].0, "bot");
    assert_eq!(
        new.last().unwrap(),
        &("action".into(), None, s("action_listen"))
    );
    // The ids carry on Rasa's sequence.
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM palaver_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2]);
}

async fn message(server: &Server, sender: &str, text: &str) -> (u16, Value) {
    send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .timeout(Duration::from_secs(30))
            .json(&json!({"sender": sender, "message": text})),
    )
    .await
}

fn user_texts(tracker: &Value) -> Vec<String> {
    tracker["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn endpoints_as_rasa_reads_them_and_two_processes_share_conversations() {
    let Some(server_url) = stores_support::service_url("PALAVER_TEST_POSTGRES_URL") else {
        return;
    };
    let parsed = reqwest::Url::parse(&server_url).unwrap();
    let login_db = parsed.path().trim_start_matches('/').to_owned();
    let db_name = stores_support::unique("palaver_t_");
    // ${VAR} substitution, and the database created through login_db, as in Rasa.
    std::env::set_var("PALAVER_T_PG_HOST", parsed.host_str().unwrap());
    std::env::set_var(
        "PALAVER_T_PG_PORT",
        parsed.port().unwrap_or(5432).to_string(),
    );
    let password = parsed
        .password()
        .map(|p| format!("  password: {p}\n"))
        .unwrap_or_default();
    let endpoints = format!(
        "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: ${{PALAVER_T_PG_HOST}}\n  \
         port: ${{PALAVER_T_PG_PORT}}\n  db: {db_name}\n  username: {}\n{password}  \
         login_db: {login_db}\n  query:\n    sslmode: disable\n",
        parsed.username()
    );
    let a = Server::with(Options {
        endpoints: Some(endpoints.clone()),
        ..Options::default()
    })
    .await;
    let b = Server::with(Options {
        endpoints: Some(endpoints),
        ..Options::default()
    })
    .await;
    // Alternate between the two processes: each sees what the other stored.
    for (i, server) in [&a, &b, &a, &b, &b, &a].iter().enumerate() {
        let (status, body) =
            message(server, "shared", &format!("/greet{{\"name\": \"n{i}\"}}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body[0]["text"], "Hello!", "{body}");
    }
    let expected: Vec<String> = (0..6)
        .map(|i| format!("/greet{{\"name\": \"n{i}\"}}"))
        .collect();
    for server in [&a, &b] {
        let t = server.tracker("shared", "").await;
        assert_eq!(user_texts(&t), expected);
        assert_eq!(t["slots"]["name"], "n5");
    }
    drop((a, b));
    let db = PgDb {
        server_url: server_url.clone(),
        name: db_name,
    };
    let mut conn = db.connect().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE type_name = 'user'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 6);
}

#[tokio::test]
async fn postgres_outage_gives_503_and_loses_nothing_acknowledged() {
    if stores_support::service_url("PALAVER_TEST_POSTGRES_URL").is_none() {
        return;
    }
    let pg = PrivatePostgres::start();
    let server = Server::with(Options {
        endpoints: Some(format!(
            "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: 127.0.0.1\n  port: {}\n  \
             username: postgres\n  db: outage\n  login_db: postgres\n",
            pg.port
        )),
        ..Options::default()
    })
    .await;
    let mut acknowledged = Vec::new();
    let mut n = 0;
    let send_one = |n: &mut usize| {
        *n += 1;
        format!("/greet{{\"name\": \"m{n}\"}}")
    };
    for _ in 0..5 {
        let text = send_one(&mut n);
        let (status, body) = message(&server, "c1", &text).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.push(text);
    }
    pg.stop();
    let mut failures = 0;
    for _ in 0..3 {
        let text = send_one(&mut n);
        let started = Instant::now();
        let (status, body) = message(&server, "c1", &text).await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no quick answer"
        );
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "failure");
        assert_eq!(body["reason"], "ServiceUnavailable");
        assert_eq!(body["code"], 503);
        assert!(
            body["message"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
        failures += 1;
    }
    // The tracker API answers 503 too.
    let (status, body) = send(
        server
            .client
            .get(server.url(&format!("/conversations/c1/tracker?token={TOKEN}"))),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = server.get("/health/ready").await;
    assert_eq!(status, 503);

    pg.start_again();
    // The pool reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = send_one(&mut n);
        let (status, _) = message(&server, "c1", &text).await;
        if status == 200 {
            acknowledged.push(text);
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        let text = send_one(&mut n);
        let (status, body) = message(&server, "c1", &text).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.push(text);
    }
    assert_eq!(failures, 3);
    // Exactly the acknowledged messages are stored, in order.
    let t = server.tracker("c1", "").await;
    assert_eq!(user_texts(&t), acknowledged);
}
