//! Forms and custom actions against a real `rasa_sdk` action server: the form happy
//! path with validation rejecting values, an interrupted form, a stopped form, custom
//! slot mappings with `action_validate_slot_mappings`, and an action that rejects
//! itself or fails.

mod common;

use std::path::{Path, PathBuf};

use common::rasa_sdk::ActionServer;
use common::{Options, Server, TOKEN};
use serde_json::{json, Value};

fn forms_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms_bot")
}

/// The forms bot with its rasa_sdk action server; `None` when rasa_sdk is not set up.
async fn start() -> Option<(Server, ActionServer)> {
    let actions = ActionServer::start(&forms_bot()).await?;
    let server = Server::with(Options {
        bot: Some(forms_bot()),
        endpoints: Some(actions.endpoints_yml()),
        ..Options::default()
    })
    .await;
    Some((server, actions))
}

/// Sends a message through the REST channel and returns the texts of the answers.
async fn say(server: &Server, sender: &str, message: &str) -> Vec<String> {
    say_with(server, sender, message, json!({})).await
}

async fn say_with(server: &Server, sender: &str, message: &str, metadata: Value) -> Vec<String> {
    let (status, body) = common::send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": sender, "message": message, "metadata": metadata})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("the REST channel answers a list")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn events(server: &Server, sender: &str) -> Vec<Value> {
    let t = server.tracker(sender, "&include_events=ALL").await;
    t["events"].as_array().cloned().unwrap_or_default()
}

/// The events after the latest user message, as compact `type:name=value` strings.
fn summary(events: &[Value]) -> Vec<String> {
    let start = events
        .iter()
        .rposition(|e| e["event"] == "user")
        .map(|i| i + 1)
        .unwrap_or(0);
    events[start..]
        .iter()
        .map(|e| match e["event"].as_str().unwrap_or_default() {
            "action" => format!("action:{}", e["name"].as_str().unwrap_or_default()),
            "slot" => format!(
                "slot:{}={}",
                e["name"].as_str().unwrap_or_default(),
                e["value"]
            ),
            "active_loop" => format!("active_loop:{}", e["name"]),
            "bot" => format!("bot:{}", e["text"].as_str().unwrap_or_default()),
            "action_execution_rejected" => {
                format!("rejected:{}", e["name"].as_str().unwrap_or_default())
            }
            other => other.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn form_happy_path_with_validation_interruption_and_submit() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "booker";
    assert_eq!(
        say(&server, s, "/request_booking").await,
        ["Where do you leave from?"]
    );
    let evs = events(&server, s).await;
    assert_eq!(
        summary(&evs),
        [
            "user_featurization",
            "action:booking_form",
            "active_loop:\"booking_form\"",
            "slot:requested_slot=\"departure\"",
            "bot:Where do you leave from?",
            "action:action_listen"
        ]
    );

    // validate_booking_form rejects the value: the slot is emptied and asked again.
    assert_eq!(
        say(&server, s, r#"/inform{"city": "atlantis"}"#).await,
        ["We do not fly from Atlantis.", "Where do you leave from?"]
    );
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert!(sum.contains(&"slot:departure=null".to_owned()), "{sum:?}");

    // A city without a role fills the requested slot only (its mapping is shared by
    // two slots), and the custom ask action names the validated departure.
    assert_eq!(
        say(&server, s, r#"/inform{"city": "paris"}"#).await,
        ["Where to, leaving Paris?"]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["slots"]["departure"], "Paris");
    assert_eq!(t["slots"]["destination"], Value::Null);
    assert_eq!(t["slots"]["requested_slot"], "destination");

    // An interruption: the rule answers, then the form asks again.
    assert_eq!(
        say(&server, s, "/bot_challenge").await,
        ["I am a bot.", "Where to, leaving Paris?"]
    );
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert!(sum.contains(&"rejected:booking_form".to_owned()), "{sum:?}");
    assert!(sum.contains(&"action:utter_iamabot".to_owned()), "{sum:?}");

    assert_eq!(
        say(&server, s, r#"/inform{"city": "rome"}"#).await,
        ["How many guests?"]
    );
    assert_eq!(
        say(&server, s, r#"/inform{"guests": 20}"#).await,
        ["We can seat 1 to 10 guests.", "How many guests?"]
    );
    assert_eq!(
        say(&server, s, r#"/inform{"guests": 2}"#).await,
        ["Your email address?"]
    );
    assert_eq!(
        say(&server, s, "ada at example").await,
        ["That is not an email address.", "Your email address?"]
    );
    assert_eq!(
        say(&server, s, "ada@example.com").await,
        ["Booked 2.0 seats from Paris to rome for ada@example.com."]
    );
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert_eq!(
        sum,
        [
            "slot:email=\"ada@example.com\"",
            "user_featurization",
            "action:booking_form",
            "slot:email=\"ada@example.com\"",
            "slot:requested_slot=null",
            "active_loop:null",
            "action:utter_booked",
            "bot:Booked 2.0 seats from Paris to rome for ada@example.com.",
            "action:action_listen"
        ]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["active_loop"], json!({}));
}

#[tokio::test]
async fn prefilled_slots_are_validated_at_activation_and_not_asked() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "prefilled";
    // Slots from entities are filled before the form starts (by their unique mappings
    // outside the form: here a city without role fills departure and destination).
    let (status, _) = server
        .post_events(
            s,
            &json!([{"event": "slot", "name": "departure", "value": "oslo"},
                    {"event": "slot", "name": "guests", "value": 3}]),
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        say(&server, s, "/request_booking").await,
        ["Where to, leaving Oslo?"]
    );
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert_eq!(
        &sum[..3],
        [
            "user_featurization",
            "action:booking_form",
            "active_loop:\"booking_form\"",
        ],
        "{sum:?}"
    );
    assert!(
        sum.contains(&"slot:departure=\"Oslo\"".to_owned()),
        "{sum:?}"
    );
    assert!(sum.contains(&"slot:guests=3.0".to_owned()), "{sum:?}");
    assert!(
        sum.contains(&"slot:requested_slot=\"destination\"".to_owned()),
        "{sum:?}"
    );
}

#[tokio::test]
async fn a_stop_rule_deactivates_the_form() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "stopper";
    say(&server, s, "/request_booking").await;
    assert_eq!(say(&server, s, "/stop").await, ["Booking stopped."]);
    let t = server.tracker(s, "").await;
    assert_eq!(t["active_loop"], json!({}));
    assert_eq!(t["slots"]["requested_slot"], Value::Null);
    // The bot is back to its rules.
    assert_eq!(say(&server, s, "/greet").await, ["Hello!"]);
}

#[tokio::test]
async fn custom_slot_mapping_and_validate_slot_mappings() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "referred";
    assert_eq!(
        say_with(&server, s, "/greet", json!({"ref": "spring-sale"})).await,
        ["Hello!"]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["slots"]["referral"], "SPRING-SALE");
    // Without metadata the custom action fills nothing and the slot keeps its value.
    say(&server, s, "/greet").await;
    let t = server.tracker(s, "").await;
    assert_eq!(t["slots"]["referral"], "SPRING-SALE");
}

#[tokio::test]
async fn an_action_that_rejects_itself_is_logged_and_policies_choose_again() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "refused";
    say(&server, s, "/refuse").await;
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert!(
        sum.contains(&"rejected:action_refuse".to_owned()),
        "{sum:?}"
    );
    assert!(!sum.contains(&"action:action_refuse".to_owned()), "{sum:?}");
    assert_eq!(
        sum.last().map(String::as_str),
        Some("action:action_listen"),
        "{sum:?}"
    );
}

#[tokio::test]
async fn an_action_that_raises_is_logged_without_its_events() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "crashed";
    assert!(say(&server, s, "/crash").await.is_empty());
    let evs = events(&server, s).await;
    let sum = summary(&evs);
    assert_eq!(
        sum,
        [
            "user_featurization",
            "action:action_crash",
            "action:action_listen"
        ]
    );
    // The conversation goes on.
    assert_eq!(say(&server, s, "/greet").await, ["Hello!"]);
    let _ = TOKEN;
}
