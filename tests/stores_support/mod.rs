//! Shared helpers of the production-store tests (tests/stores_*.rs): fresh PostgreSQL
//! databases and Redis key spaces per test, private server instances that a test may
//! stop and restart, and one sample event of every type.
//!
//! The services' URLs come from `PALAVER_TEST_POSTGRES_URL`, `PALAVER_TEST_REDIS_URL`
//! and `PALAVER_TEST_AMQP_URL`. `.ci/run` always sets them; a local run without them
//! skips (with a message) the tests that need them.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

/// The URL of a service from its env var, or `None` (the caller skips) when unset
/// outside CI. In CI (`CI` set) a missing URL fails the test.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok() => panic!("{var} must be set in CI"),
        _ => {
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// A random free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A unique lowercase name for databases and key prefixes.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, empty database on the test PostgreSQL server; dropped with the value.
pub struct PgDb {
    /// The server's URL (as given in the env var).
    pub server_url: String,
    /// The new database's name.
    pub name: String,
}

impl PgDb {
    /// Creates a database; `None` when no server is configured (the test skips).
    pub async fn create() -> Option<PgDb> {
        let server_url = service_url("PALAVER_TEST_POSTGRES_URL")?;
        let name = unique("palaver_t_");
        let mut conn = sqlx::PgConnection::connect(&server_url)
            .await
            .expect("cannot reach PALAVER_TEST_POSTGRES_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        Some(PgDb { server_url, name })
    }

    /// The URL of the new database.
    pub fn url(&self) -> String {
        with_database(&self.server_url, &self.name)
    }

    /// A connection to the new database.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url()).await.unwrap()
    }

    /// endpoints.yml for a palaver using this database as its tracker store.
    pub fn endpoints(&self) -> String {
        format!(
            "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: {}\n",
            self.url()
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Best effort, in a thread of its own (Drop may run inside a runtime).
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `url` with its path (database) replaced by `/db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A PostgreSQL server of the test's own, in a temporary folder on a random port, that
/// the test may stop and start (the shared server is never touched).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port.
    pub port: u16,
}

fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries not found under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no pg_ctl under /usr/lib/postgresql/*/bin")
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses
/// to run as root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl PrivatePostgres {
    /// Initialises and starts a server (trust auth, user `postgres`).
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        let bin = postgres_bin();
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status();
        let status = pg_command(&bin, "initdb")
            .args(["-D"])
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
        };
        pg.start_again();
        pg
    }

    /// The server's URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the (stopped) server on the same port and waits until it answers.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let status = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stops the server at once (`immediate`: like a crash; connections are cut).
    pub fn stop(&self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis server of the test's own on a random port, that the test may kill and
/// start again (it keeps nothing on disk).
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            port: free_port(),
            child: None,
        };
        r.start_again();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the (stopped) server on the same port.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One event of every type Rasa 3.6 knows, as Rasa writes them.
pub fn every_event_type() -> Vec<Value> {
    let events = vec![
        json!({"event": "action", "timestamp": 1700000000.1, "name": "action_session_start",
               "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}),
        json!({"event": "session_started", "timestamp": 1700000000.2}),
        json!({"event": "user", "timestamp": 1700000001.5, "metadata": {"channel": "x", "ü": [1, 2]},
               "text": "Hällo \"du\" 🌍", "input_channel": "rest", "message_id": "m1",
               "parse_data": {"intent": {"name": "greet", "confidence": 0.93},
                              "entities": [{"entity": "name", "value": "Ada", "start": 0, "end": 3}],
                              "text": "Hällo \"du\" 🌍", "message_id": "m1", "metadata": {},
                              "intent_ranking": [{"name": "greet", "confidence": 0.93}]}}),
        json!({"event": "user_featurization", "timestamp": 1700000001.6,
               "use_text_for_featurization": false}),
        json!({"event": "entities", "timestamp": 1700000001.7,
               "entities": [{"entity": "city", "value": "Berlin"}]}),
        json!({"event": "slot", "timestamp": 1700000001.8, "name": "items", "value": ["a", 1, null, 2.5]}),
        json!({"event": "action", "timestamp": 1700000002.0, "name": "utter_greet",
               "policy": "RulePolicy", "confidence": 0.875, "action_text": null, "hide_rule_turn": true}),
        json!({"event": "bot", "timestamp": 1700000002.1, "metadata": {"utter_action": "utter_greet"},
               "text": "Hi!", "data": {"elements": null, "quick_replies": null,
               "buttons": [{"title": "ok", "payload": "/ok"}], "attachment": null, "image": null,
               "custom": null}}),
        json!({"event": "reminder", "timestamp": 1700000002.2, "intent": "remind",
               "date_time": "2031-05-01T10:00:00", "entities": null, "name": "r1",
               "kill_on_user_msg": true}),
        json!({"event": "cancel_reminder", "timestamp": 1700000002.3, "name": "r1",
               "intent": "remind", "entities": [{"entity": "a", "value": "b"}]}),
        json!({"event": "action_execution_rejected", "timestamp": 1700000002.4,
               "name": "form_x", "policy": null, "confidence": null}),
        json!({"event": "form_validation", "timestamp": 1700000002.5, "validate": false}),
        json!({"event": "loop_interrupted", "timestamp": 1700000002.6, "is_interrupted": true}),
        json!({"event": "form", "timestamp": 1700000002.7, "name": "form_x"}),
        json!({"event": "active_loop", "timestamp": 1700000002.8, "name": null}),
        json!({"event": "reset_slots", "timestamp": 1700000002.9}),
        json!({"event": "pause", "timestamp": 1700000003.0}),
        json!({"event": "resume", "timestamp": 1700000003.1}),
        json!({"event": "followup", "timestamp": 1700000003.2, "name": "utter_greet"}),
        json!({"event": "export", "timestamp": 1700000003.3, "path": "stories.yml"}),
        json!({"event": "undo", "timestamp": 1700000003.4}),
        json!({"event": "rewind", "timestamp": 1700000003.5}),
        json!({"event": "agent", "timestamp": 1700000003.6, "text": "agent says", "data": {"k": 1}}),
        json!({"event": "restart", "timestamp": 1700000003.7}),
    ];
    for t in palaver::events::EVENT_TYPE_NAMES {
        assert!(
            events.iter().any(|e| e["event"] == *t),
            "no sample of event type {t}"
        );
    }
    events
}

/// Parses sample events, in the form palaver writes them (what any store must give
/// back).
pub fn parse(events: &[Value]) -> Vec<palaver::events::Event> {
    use palaver::events::Event;
    events
        .iter()
        .map(|e| Event::from_json(e).unwrap().unwrap())
        .map(|e| Event::from_json(&e.to_json()).unwrap().unwrap())
        .collect()
}
