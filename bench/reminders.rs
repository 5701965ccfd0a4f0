//! `palaver-bench --reminders N`: N pending reminders in SQLite or PostgreSQL — the
//! server's memory with them, its start-up time with them, and the firing lag (due
//! time to the stored external `user` event) of a batch that falls due after a
//! restart.
//!
//! 1. Start palaver on SQLite (start-up time and memory with no reminder).
//! 2. Schedule N - `due_soon` reminders due tomorrow, 10 per conversation (one
//!    `POST .../tracker/events?execute_side_effects=true` with 10 `reminder` events),
//!    then `due_soon` reminders, one per conversation, due one after the other over
//!    `window` seconds starting 20 s from now. Memory with N pending.
//! 3. Kill the server (SIGKILL) and start it again: start-up time and memory with N
//!    pending (they stay in SQLite, not in memory).
//! 4. Wait until every due-soon conversation has its external event; each event's
//!    entity `due` carries its due time, so lag = event timestamp - due. Memory after.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::args::Store;
use crate::server::Server;
use crate::workdir::WorkDir;

const DOMAIN: &str = r#"version: "3.1"
intents:
  - greet
  - EXTERNAL_ping
entities:
  - due
responses:
  utter_greet:
    - text: "hi"
  utter_ping:
    - text: "ping"
"#;

const RULES: &str = r#"version: "3.1"
rules:
  - rule: ping
    steps:
      - intent: EXTERNAL_ping
      - action: utter_ping
"#;

/// Reminders per far-future conversation.
const PER_CONVERSATION: usize = 10;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn iso(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let nanos = ((epoch - epoch.floor()) * 1e9) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
        .unwrap_or_default()
}

fn reminder(name: &str, due: f64) -> Value {
    json!({"event": "reminder", "intent": "EXTERNAL_ping", "name": name,
        "entities": [{"entity": "due", "value": due}], "date_time": iso(due),
        "kill_on_user_msg": false})
}

async fn post_all(
    client: &reqwest::Client,
    base: &str,
    bodies: Vec<(String, Value)>,
    concurrency: usize,
) -> Result<()> {
    let mut results = futures::stream::iter(bodies.into_iter().map(|(id, body)| {
        let url = format!(
            "{base}/conversations/{id}/tracker/events?execute_side_effects=true&include_events=NONE"
        );
        let client = client.clone();
        async move {
            let resp = client.post(url).json(&body).send().await?;
            if !resp.status().is_success() {
                bail!("scheduling answered {}", resp.status());
            }
            Ok(())
        }
    }))
    .buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The lags (s) of the due-soon conversations that fired, and how many external
/// events they hold in all.
async fn lags(client: &reqwest::Client, base: &str, ids: &[String]) -> Result<(Vec<f64>, usize)> {
    let mut lags = Vec::new();
    let mut events = 0;
    let mut results = futures::stream::iter(ids.iter().map(|id| {
        let url = format!("{base}/conversations/{id}/tracker?include_events=ALL");
        let client = client.clone();
        async move {
            let t: Value = client.get(url).send().await?.json().await?;
            anyhow::Ok(t)
        }
    }))
    .buffer_unordered(16);
    while let Some(t) = results.next().await {
        let t = t?;
        for e in t["events"].as_array().into_iter().flatten() {
            if e["event"] == "user" && e["metadata"]["is_external"] == true {
                events += 1;
                let due = e["parse_data"]["entities"][0]["value"].as_f64();
                if let (Some(due), Some(ts)) = (due, e["timestamp"].as_f64()) {
                    lags.push(ts - due);
                }
            }
        }
    }
    Ok((lags, events))
}

/// Runs the reminders benchmark on every durable store of `--store` (SQLite,
/// PostgreSQL) and prints its figures.
pub async fn run_all(
    bin: &std::path::Path,
    args: &crate::args::Args,
    pending: usize,
) -> Result<()> {
    for &store in &args.store {
        if !matches!(store, Store::Sqlite | Store::Postgres) {
            println!(
                "reminders: skipping --store {}: its reminders are kept in memory",
                store.name()
            );
            continue;
        }
        let shared = crate::shared::SharedStores::create(store, args).await?;
        let result = run(
            bin,
            store,
            &shared.endpoints,
            pending,
            args.reminders_due,
            args.reminders_window,
        )
        .await;
        shared.remove().await;
        result?;
    }
    Ok(())
}

/// The benchmark on one store.
async fn run(
    bin: &std::path::Path,
    store: Store,
    endpoints: &str,
    pending: usize,
    due_soon: usize,
    window: f64,
) -> Result<()> {
    let due_soon = due_soon.min(pending);
    let dir = WorkDir::with_endpoints(store, "http://127.0.0.1:9/webhook", endpoints)?;
    std::fs::write(dir.project().join("domain.yml"), DOMAIN)?;
    std::fs::write(dir.project().join("data/rules.yml"), RULES)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let t = Instant::now();
    let server = Server::start(bin, &dir, store, &client).await?;
    let empty_start = t.elapsed();
    let rss_empty = server.rss_mib();

    let far = pending - due_soon;
    let tomorrow = now() + 86_400.0;
    let bodies: Vec<(String, Value)> = (0..far.div_ceil(PER_CONVERSATION))
        .map(|c| {
            let n = PER_CONVERSATION.min(far - c * PER_CONVERSATION);
            let events: Vec<Value> = (0..n)
                .map(|k| {
                    reminder(
                        &format!("r{k}"),
                        tomorrow + (c * PER_CONVERSATION + k) as f64,
                    )
                })
                .collect();
            (format!("far-{c}"), Value::Array(events))
        })
        .collect();
    let t = Instant::now();
    post_all(&client, &server.base, bodies, 32).await?;
    let far_secs = t.elapsed().as_secs_f64();
    let first_due = now() + 20.0;
    let soon_ids: Vec<String> = (0..due_soon).map(|i| format!("soon-{i}")).collect();
    let step = if due_soon > 1 {
        window / (due_soon - 1) as f64
    } else {
        0.0
    };
    let bodies: Vec<(String, Value)> = soon_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), reminder("soon", first_due + i as f64 * step)))
        .collect();
    post_all(&client, &server.base, bodies, 32).await?;
    let rss_pending = server.rss_mib();
    drop(server);

    let t = Instant::now();
    let server = Server::start(bin, &dir, store, &client).await?;
    let pending_start = t.elapsed();
    let rss_restarted = server.rss_mib();
    if now() > first_due {
        eprintln!("warning: the first due-soon reminder fell due before the restart finished");
    }
    let deadline = first_due + window + 120.0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if now() < first_due + window {
            continue;
        }
        let (l, _) = lags(&client, &server.base, &soon_ids).await?;
        if l.len() >= due_soon || now() > deadline {
            break;
        }
    }
    let (mut lag, events) = lags(&client, &server.base, &soon_ids)
        .await
        .context("reading lags")?;
    let rss_after = server.rss_mib();
    lag.sort_by(f64::total_cmp);
    let mib = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MiB"));
    println!(
        "reminders on {}: {pending} pending ({far} due tomorrow, {due_soon} due over {window} s)",
        store.name()
    );
    println!(
        "  scheduling: {far} far reminders in {far_secs:.1} s ({:.0}/s, {PER_CONVERSATION} per request)",
        far as f64 / far_secs
    );
    println!(
        "  start-up (spawn to GET / = 200): empty {:.0} ms, with {pending} pending {:.0} ms",
        empty_start.as_secs_f64() * 1000.0,
        pending_start.as_secs_f64() * 1000.0
    );
    println!(
        "  memory (RSS): empty {}, after scheduling {}, restarted with {pending} pending {}, after firing {}",
        mib(rss_empty),
        mib(rss_pending),
        mib(rss_restarted),
        mib(rss_after)
    );
    println!(
        "  firing: {} of {due_soon} fired ({events} external events); lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lag.len(),
        percentile(&lag, 0.5) * 1000.0,
        percentile(&lag, 0.99) * 1000.0,
        lag.last().copied().unwrap_or(f64::NAN) * 1000.0
    );
    if !server.log_text().trim().is_empty() {
        println!("  server log (warn and above):\n{}", server.log_text());
    }
    Ok(())
}
