//! Handling a user message, as Rasa's `MessageProcessor` does, with the handoff rules
//! H1–H4 of palaver (see the README, "Differences from Rasa").
//!
//! One message: lock the conversation → start a session if needed → parse → log the
//! `user` event → fill slots → unless paused, run the pending followup or the predicted
//! actions until `action_listen` (at most `max_number_of_predictions`) → store.

use serde_json::{json, Value};

use super::{ConversationTxn, Conversations};
use crate::actions::{self, extract_slots, forms, ActionKind, ActionOutcome};
use crate::agent::Agent;
use crate::channels::{BotMessage, OutputChannel};
use crate::events::{Event, EventKind, JsonMap, UserUttered, ACTION_LISTEN, ACTION_SESSION_START};
use crate::nlu;
use crate::slots::SESSION_STARTED_METADATA;
use crate::stores::StoreError;
use std::sync::Arc;

/// A message from a user, as an input channel hands it over.
#[derive(Debug, Clone, Default)]
pub struct UserMessage {
    /// The text (may be an intent shortcut like `/greet`).
    pub text: Option<String>,
    /// The conversation id.
    pub sender_id: String,
    /// Name of the input channel.
    pub input_channel: Option<String>,
    /// Message id; a random one when absent.
    pub message_id: Option<String>,
    /// Channel metadata.
    pub metadata: Option<JsonMap>,
    /// Parse data given by the caller (skips NLU).
    pub parse_data: Option<JsonMap>,
}

/// Why a message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The stores failed; nothing of the message was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An action name that is not in the domain.
    #[error(
        "Cannot access action '{0}', as that name is not a registered action for this domain."
    )]
    UnknownAction(String),
}

/// The prediction an action is run for.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Policy that predicted it (`null` for session starts and API calls).
    pub policy: Option<String>,
    /// Its confidence.
    pub confidence: Option<f64>,
    /// Events to log before the action (e.g. `user_featurization`).
    pub events: Vec<Event>,
    /// Whether ML policies should not see the turn.
    pub hide_rule_turn: bool,
}

impl Prediction {
    /// A prediction made by no policy (API calls, session starts).
    pub fn fixed(policy: Option<&str>, confidence: Option<f64>) -> Prediction {
        Prediction {
            policy: policy.map(str::to_owned),
            confidence,
            events: Vec::new(),
            hide_rule_turn: false,
        }
    }
}

/// Parse data of a message, with the message's id and metadata, as Rasa writes it.
/// A parse (not parse data given with the message) names the full retrieval intent
/// as Rasa's processor does ([`nlu::selector::update_full_retrieval_intent`]).
pub fn parse_message(agent: &Agent, msg: &UserMessage, message_id: &str) -> JsonMap {
    let mut p = match &msg.parse_data {
        Some(p) => p.clone(),
        None => {
            let mut p = nlu::parse(msg.text.as_deref(), &agent.domain, agent.nlu.as_ref());
            nlu::selector::update_full_retrieval_intent(&mut p);
            p
        }
    };
    p.entry("text").or_insert_with(|| json!(msg.text));
    p.insert("message_id".into(), json!(message_id));
    p.insert(
        "metadata".into(),
        Value::Object(msg.metadata.clone().unwrap_or_default()),
    );
    p
}

/// [`parse_message`], or the remote NLU server's parse when endpoints.yml names one
/// (then every text goes there, shortcuts included, as in Rasa).
pub async fn parse_message_remote(agent: &Agent, msg: &UserMessage, message_id: &str) -> JsonMap {
    match (&agent.remote_nlu, &msg.parse_data) {
        (Some(remote), None) => {
            let mut p = remote.parse(msg.text.as_deref(), &msg.sender_id).await;
            nlu::selector::update_full_retrieval_intent(&mut p);
            p.entry("text").or_insert_with(|| json!(msg.text));
            p.insert("message_id".into(), json!(message_id));
            p.insert(
                "metadata".into(),
                Value::Object(msg.metadata.clone().unwrap_or_default()),
            );
            p
        }
        _ => parse_message(agent, msg, message_id),
    }
}

/// Whether the latest session has expired (Rasa: minutes since the last applied user
/// message, when `session_expiration_time` > 0).
fn session_expired(agent: &Agent, txn: &ConversationTxn<'_>) -> bool {
    let minutes = agent.domain.session_config.session_expiration_time;
    if minutes <= 0.0 {
        return false;
    }
    let t = txn.tracker();
    let last_user = t
        .applied_events()
        .into_iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::User(_)))
        .map(|e| e.timestamp);
    match last_user {
        Some(ts) => (crate::events::now() - ts) / 60.0 > minutes,
        None => false,
    }
}

/// Starts a new session when the conversation has none or it expired.
pub async fn update_session(
    txn: &mut ConversationTxn<'_>,
    metadata: Option<&JsonMap>,
    out: &dyn OutputChannel,
) {
    let agent = txn.agent().clone();
    let needs = txn.tracker().applied_events().is_empty() || session_expired(&agent, txn);
    if !needs {
        return;
    }
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        txn.log(Event::new(EventKind::Slot {
            name: SESSION_STARTED_METADATA.into(),
            value: Value::Object(m.clone()),
        }));
    }
    run_action(
        txn,
        ACTION_SESSION_START,
        Prediction::fixed(None, Some(1.0)),
        out,
    )
    .await;
}

/// Handles one user message end to end and stores the result.
pub async fn handle_message(
    conversations: &Conversations,
    agent: Arc<Agent>,
    msg: UserMessage,
    out: &dyn OutputChannel,
) -> Result<(), ProcessError> {
    let timer = crate::telemetry::MessageTimer::start(msg.input_channel.as_deref());
    let mut txn = conversations.open(&msg.sender_id, agent.clone()).await?;
    update_session(&mut txn, msg.metadata.as_ref(), out).await;
    let message_id = msg
        .message_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let parse_data = parse_message_remote(&agent, &msg, &message_id).await;
    let user = Event {
        timestamp: crate::events::now(),
        metadata: msg.metadata.clone().unwrap_or_default(),
        kind: EventKind::User(UserUttered::new(
            msg.text.clone(),
            Some(&parse_data),
            msg.input_channel.clone(),
            Some(message_id),
            &msg.metadata.clone().unwrap_or_default(),
        )),
    };
    log_user_event(&mut txn, user, out).await;
    predict_and_run(&mut txn, out).await;
    txn.commit().await?;
    timer.ok();
    Ok(())
}

/// The followup action set through the API that is waiting to run (not the
/// `action_listen` a new tracker starts with), if the conversation is not paused.
pub fn pending_followup(txn: &ConversationTxn<'_>) -> Option<String> {
    let t = txn.tracker();
    if t.is_paused() || t.events().is_empty() {
        return None;
    }
    t.followup_action()
        .filter(|f| *f != ACTION_LISTEN && *f != ACTION_SESSION_START)
        .filter(|f| actions::is_known_action(txn.agent(), f))
        .map(str::to_owned)
}

/// Runs a pending followup now and goes back to listening (H3 and H4).
pub async fn run_pending_followup(txn: &mut ConversationTxn<'_>, out: &dyn OutputChannel) {
    if let Some(followup) = pending_followup(txn) {
        let prediction = Prediction::fixed(Some("followup_action"), Some(1.0));
        let more = run_action(txn, &followup, prediction, out).await;
        if more && txn.tracker().latest_action_name() != Some(ACTION_LISTEN) {
            txn.log(Event::action(ACTION_LISTEN, None, None));
        }
    }
}

/// Logs a user event that will be answered, with the handoff rules (H3: a pending
/// followup runs first; H1: the message follows `action_listen`), then fills slots.
pub async fn log_user_event(txn: &mut ConversationTxn<'_>, user: Event, out: &dyn OutputChannel) {
    run_pending_followup(txn, out).await;
    log_user_event_unanswered(txn, user, out).await;
}

/// Logs a user event (H1: after `action_listen`) and fills slots, leaving a pending
/// followup to be cleared by the message, as Rasa does (`POST .../messages`).
pub async fn log_user_event_unanswered(
    txn: &mut ConversationTxn<'_>,
    user: Event,
    out: &dyn OutputChannel,
) {
    // H1: a handled message always follows action_listen.
    if txn.tracker().latest_action_name() != Some(ACTION_LISTEN) {
        txn.log(Event::action(ACTION_LISTEN, None, None));
    }
    txn.log(user);
    run_extract_slots(txn, out).await;
}

/// Runs `action_extract_slots` and logs its events (no `action` event, as Rasa).
pub async fn run_extract_slots(txn: &mut ConversationTxn<'_>, out: &dyn OutputChannel) {
    let agent = txn.agent().clone();
    let steps = extract_slots::plan(&agent, &txn.tracker());
    let events = if extract_slots::needs_action_server(&agent, &steps) {
        let tracker = txn.tracker().clone();
        extract_slots::execute(&agent, &tracker, steps, out.name()).await
    } else {
        extract_slots::plain_events(steps)
    };
    let messages: Vec<BotMessage> = events.iter().filter_map(BotMessage::from_event).collect();
    for e in events {
        txn.log(restamp(e));
    }
    let sender = txn.sender_id().to_owned();
    for m in &messages {
        out.send(&sender, m).await;
    }
}

/// Whether the action limit is reached: Rasa counts the `action` events since the last
/// `action_listen`/`action_session_start`.
fn limit_reached(txn: &ConversationTxn<'_>) -> bool {
    let max = txn.agent().max_predictions;
    let t = txn.tracker();
    if matches!(
        t.latest_action_name(),
        Some(ACTION_LISTEN) | Some(ACTION_SESSION_START)
    ) {
        return false;
    }
    let mut count = 0;
    for e in t.events().iter().rev() {
        if let EventKind::Action(a) = &e.kind {
            if matches!(
                a.name.as_deref(),
                Some(ACTION_LISTEN) | Some(ACTION_SESSION_START)
            ) {
                break;
            }
            count += 1;
        }
    }
    count >= max
}

/// The next action: the pending followup, else the policies' choice.
pub fn predict_next(txn: &ConversationTxn<'_>) -> (String, Prediction) {
    let agent = txn.agent().clone();
    let t = txn.tracker();
    if let Some(f) = t.followup_action() {
        if actions::is_known_action(&agent, f) {
            return (
                f.to_owned(),
                Prediction::fixed(Some("followup_action"), Some(1.0)),
            );
        }
        tracing::error!(
            action = f,
            "the followup action is not in the domain; ignored"
        );
    }
    let p = agent.policies.predict(&t, &agent.domain);
    let mut events = p.events;
    if t.latest_action_name() == Some(ACTION_LISTEN) {
        events.push(Event::new(EventKind::UserFeaturization {
            use_text_for_featurization: json!(p.use_text_for_featurization),
        }));
    }
    (
        p.action,
        Prediction {
            policy: p.policy,
            confidence: Some(p.confidence),
            events,
            hide_rule_turn: p.hide_rule_turn,
        },
    )
}

/// Predicts and runs actions until `action_listen`, unless the conversation is paused
/// (H2: a `restart` intent still runs).
pub async fn predict_and_run(txn: &mut ConversationTxn<'_>, out: &dyn OutputChannel) {
    loop {
        {
            let t = txn.tracker();
            if t.is_paused() && t.latest_message().intent_name() != Some("restart") {
                return;
            }
        }
        if limit_reached(txn) {
            tracing::warn!(
                sender = txn.sender_id(),
                "the action limit was reached; predicting stops"
            );
            return;
        }
        let (action, prediction) = predict_next(txn);
        if !run_action(txn, &action, prediction, out).await {
            return;
        }
    }
}

/// Runs one action and logs it as Rasa does; returns whether to predict again.
pub async fn run_action(
    txn: &mut ConversationTxn<'_>,
    name: &str,
    prediction: Prediction,
    out: &dyn OutputChannel,
) -> bool {
    let agent = txn.agent().clone();
    let channel = out.name();
    let kind = actions::resolve(&agent, name);
    let started = std::time::Instant::now();
    let outcome = match &kind {
        None => ActionOutcome::Failed(format!("'{name}' is not an action of the domain")),
        Some(ActionKind::Default(n)) => actions::run_default(&agent, &txn.tracker(), n, channel),
        Some(ActionKind::Response(n)) => {
            match actions::utter(&agent, &txn.tracker(), n, channel, &JsonMap::new()) {
                Some(bot) => ActionOutcome::Events(vec![bot]),
                None => ActionOutcome::Events(Vec::new()),
            }
        }
        Some(ActionKind::RetrieveResponse(n)) => {
            actions::retrieve_response(&agent, &txn.tracker(), n, channel)
        }
        Some(ActionKind::Remote(n)) => {
            // The action server sees the prediction's events, not yet this action.
            let view = tracker_with(txn, &prediction.events);
            agent
                .executor
                .run(&agent, &view, n, agent.domain_json.clone(), channel)
                .await
        }
        Some(ActionKind::Form(n)) => {
            let view = tracker_with(txn, &prediction.events);
            forms::run(&agent, &view, n, channel).await
        }
    };
    crate::telemetry::action_run(name, kind.as_ref(), &outcome, started.elapsed());
    let events = match outcome {
        ActionOutcome::Rejected => {
            txn.log(Event::new(EventKind::ActionExecutionRejected {
                name: Some(name.to_owned()),
                policy: prediction.policy.clone(),
                confidence: prediction.confidence,
            }));
            return true;
        }
        ActionOutcome::Failed(why) => {
            tracing::error!(action = name, sender = txn.sender_id(), "{why}");
            Vec::new()
        }
        ActionOutcome::Events(events) => events,
    };
    let manual_rejection = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::ActionExecutionRejected { .. }));
    if !manual_rejection {
        for e in prediction.events {
            txn.log(restamp(e));
        }
        let mut action = Event::action(name, prediction.policy.as_deref(), prediction.confidence);
        if let EventKind::Action(a) = &mut action.kind {
            a.hide_rule_turn = prediction.hide_rule_turn;
        }
        txn.log(action);
    }
    txn.schedule_side_effects(&events, channel);
    let has_user = events.iter().any(|e| matches!(e.kind, EventKind::User(_)));
    let messages: Vec<BotMessage> = events.iter().filter_map(BotMessage::from_event).collect();
    for e in events {
        txn.log(restamp(e));
    }
    if has_user {
        run_extract_slots(txn, out).await;
    }
    let sender = txn.sender_id().to_owned();
    for m in &messages {
        out.send(&sender, m).await;
    }
    !matches!(name, ACTION_LISTEN | ACTION_SESSION_START)
}

/// The conversation as an action sees it: with the prediction's events applied.
fn tracker_with(
    txn: &ConversationTxn<'_>,
    events: &[Event],
) -> crate::tracker::DialogueStateTracker {
    let mut view = txn.tracker().clone();
    for e in events {
        view.update(e.clone());
    }
    view
}

fn restamp(mut e: Event) -> Event {
    e.timestamp = crate::events::now();
    e
}
