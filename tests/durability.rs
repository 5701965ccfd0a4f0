//! Nothing acknowledged is lost, and requests for one conversation never interleave.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, TOKEN};
use serde_json::{json, Value};

/// The `value`s of the `slot` events named `seq` in a tracker, in order.
fn seqs(tracker: &Value) -> Vec<i64> {
    tracker["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "slot" && e["name"] == "extra")
        .filter_map(|e| e["value"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_event() {
    let mut s = Server::start().await;
    let base = s.base.clone();
    let client = reqwest::Client::new();
    let conversations = 40;
    let clients = 8;
    let acked: Arc<std::sync::Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mine: Vec<String> = (0..conversations).filter(|i| i % clients == c).map(|i| format!("conv-{i}")).collect();
            let mut seq = 0i64;
            loop {
                for id in &mine {
                    seq += 1;
                    let resp = client
                        .post(format!("{base}/conversations/{id}/tracker/events?token={TOKEN}&include_events=NONE"))
                        .json(&json!([{"event": "slot", "name": "extra", "value": seq}]))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            acked.lock().unwrap().entry(id.clone()).or_default().push(seq);
                        }
                        // The server was killed: stop this client.
                        _ => return,
                    }
                }
                if Instant::now() > stop_at + Duration::from_secs(30) {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    s.restart().await;
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total > 100,
        "the load was too small to mean anything: {total}"
    );
    for (id, want) in &acked {
        let stored = seqs(&s.tracker(id, "&include_events=ALL").await);
        // Every acknowledged event is there, in order; an event whose answer was cut
        // off by the kill may be there too (it committed), and only at the end.
        assert!(
            stored.len() >= want.len() && stored.len() <= want.len() + 1,
            "{id}: {stored:?} vs {want:?}"
        );
        assert_eq!(&stored[..want.len()], &want[..], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_on_one_conversation() {
    let s = Server::start().await;
    let mut tasks = Vec::new();
    for c in 0..50i64 {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!(
                "/conversations/busy/tracker/events?token={TOKEN}&include_events=NONE"
            )),
        );
        tasks.push(tokio::spawn(async move {
            for round in 0..4i64 {
                let body: Vec<Value> = (0..5)
                    .map(|i| json!({"event": "slot", "name": "extra", "value": c * 1000 + round * 10 + i}))
                    .collect();
                let resp = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(resp.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = seqs(&s.tracker("busy", "&include_events=ALL").await);
    assert_eq!(stored.len(), 50 * 4 * 5);
    // Each request's five events are contiguous and in order.
    for chunk in stored.chunks(5) {
        let first = chunk[0];
        assert_eq!(first % 10, 0, "{chunk:?}");
        assert_eq!(chunk, &[first, first + 1, first + 2, first + 3, first + 4]);
    }
    // Each client's requests are in its send order.
    let mut last: HashMap<i64, i64> = HashMap::new();
    for chunk in stored.chunks(5) {
        let (client, round) = (chunk[0] / 1000, (chunk[0] % 1000) / 10);
        if let Some(prev) = last.insert(client, round) {
            assert!(round > prev, "client {client}: round {round} after {prev}");
        }
    }
}
