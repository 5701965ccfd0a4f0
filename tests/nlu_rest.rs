//! Free text through the REST channel: the NLU pipeline trained at start-up from the
//! bot's nlu.yml picks the intent, the entities fill the slots, and the rule for that
//! intent answers. `/model/parse` returns Rasa's parse JSON.

mod common;

use std::path::{Path, PathBuf};

use common::{Options, Server};
use serde_json::{json, Value};

fn bot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

async fn say(s: &Server, sender: &str, text: &str) -> Vec<String> {
    s.say(sender, text)
        .await
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn free_text_reaches_the_rules_of_the_reference_bot() {
    let s = Server::with(Options {
        bot: Some(bot("reference_bot")),
        ..Options::default()
    })
    .await;
    assert_eq!(say(&s, "ada", "hello").await, ["Hey! How are you?"]);
    assert_eq!(
        say(&s, "ada", "are you a bot?").await,
        ["I am a bot, powered by Rasa."]
    );
    assert_eq!(say(&s, "ada", "bye bye").await, ["Bye"]);
    // Shortcuts still bypass the model.
    assert_eq!(say(&s, "ada", "/greet").await, ["Hey! How are you?"]);
    let t = s.tracker("ada", "").await;
    assert_eq!(
        t["latest_message"]["intent"],
        json!({"name": "greet", "confidence": 1.0})
    );

    let p = s.parse("hello").await;
    assert_eq!(p["text"], "hello");
    assert_eq!(p["intent"]["name"], "greet");
    assert_eq!(p["entities"], json!([]));
    assert_eq!(p["text_tokens"], json!([[0, 5]]));
    let ranking = p["intent_ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 10);
    assert_eq!(ranking[0], p["intent"]);
    let confs: Vec<f64> = ranking
        .iter()
        .map(|r| r["confidence"].as_f64().unwrap())
        .collect();
    assert!(confs.windows(2).all(|w| w[0] >= w[1]), "{confs:?}");

    // The trained model was cached; a restart loads it and parses the same.
    let cache = s.dir.path().join("bot/.palaver/nlu");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut s = s;
    s.restart().await;
    assert_eq!(s.parse("hello").await, p);
}

#[tokio::test]
async fn a_remote_nlu_server_parses_instead() {
    use axum::{routing::post, Json, Router};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/nlu/model/parse",
        post(move |Json(b): Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(b.clone());
                Json(
                    json!({"text": b["text"], "intent": {"name": "greet", "confidence": 0.8},
                    "entities": [], "intent_ranking": [{"name": "greet", "confidence": 0.8}]}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let s = Server::with(Options {
        endpoints: Some(format!(
            "nlu:\n  url: http://{addr}/nlu\n  token: nlu-secret\n"
        )),
        ..Options::default()
    })
    .await;
    assert_eq!(say(&s, "carla", "bonjour").await, ["Hello!"]);
    let t = s.tracker("carla", "").await;
    assert_eq!(
        t["latest_message"]["intent"],
        json!({"name": "greet", "confidence": 0.8})
    );
    assert_eq!(s.parse("salut").await["intent"]["name"], "greet");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        json!({"token": "nlu-secret", "text": "bonjour", "message_id": "carla"})
    );
    assert_eq!(seen[1]["text"], "salut");
}

#[tokio::test]
async fn entities_roles_synonyms_and_fallback_of_the_nlu_bot() {
    let s = Server::with(Options {
        bot: Some(bot("nlu_bot")),
        ..Options::default()
    })
    .await;
    assert_eq!(
        say(&s, "bo", "hey there").await,
        ["Hello! Where do you want to fly?"]
    );
    assert_eq!(
        say(&s, "bo", "fly from Dublin to Athens").await,
        ["Flying from Dublin to Athens."]
    );
    assert_eq!(
        say(&s, "bo", "my zip code is 80331").await,
        ["Your zip code is 80331."]
    );

    let p = s.parse("a ticket from nyc to Rome").await;
    assert_eq!(p["intent"]["name"], "book_flight");
    let ents = p["entities"].as_array().unwrap();
    let from = ents
        .iter()
        .find(|e| e["role"] == "from")
        .unwrap_or_else(|| panic!("no origin in {ents:?}"));
    assert_eq!(from["entity"], "city");
    assert_eq!(from["extractor"], "DIETClassifier");
    assert_eq!(
        (from["start"].as_u64(), from["end"].as_u64()),
        (Some(14), Some(17))
    );
    assert_eq!(from["value"], "New York");
    assert_eq!(from["processors"], json!(["EntitySynonymMapper"]));

    let p = s.parse("one coke please").await;
    let drink = &p["entities"][0];
    assert_eq!(
        (drink["entity"].as_str(), drink["value"].as_str()),
        (Some("drink"), Some("cola"))
    );
    let p = s.parse("one lemonade please").await;
    let drink = p["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["extractor"] == "RegexEntityExtractor")
        .cloned()
        .unwrap_or_else(|| panic!("no lookup entity in {p}"));
    assert_eq!(
        drink,
        json!({"entity": "drink", "start": 4, "end": 12, "value": "lemonade",
               "extractor": "RegexEntityExtractor"})
    );

    let p = s.parse("qwxz vbnm").await;
    assert_eq!(
        p["intent"],
        json!({"name": "nlu_fallback", "confidence": 0.3})
    );
    assert_eq!(
        say(&s, "bo", "qwxz vbnm").await,
        ["Sorry, I did not get that."]
    );
}
