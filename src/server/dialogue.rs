//! The conversation routes that drive the dialogue: `messages`, `predict`, `execute`
//! and `trigger_intent` under `/conversations/<id>/`.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{json_bytes, read_json, ApiError, QueryParams, SharedState};
use crate::channels::callback::CallbackOutputChannel;
use crate::channels::{CollectingOutputChannel, OutputChannel};
use crate::events::{Event, EventKind, JsonMap, UserUttered};
use crate::processor::messages::{
    log_user_event, log_user_event_unanswered, parse_message_remote, predict_and_run, predict_next,
    run_action, update_session, Prediction, UserMessage,
};
use crate::processor::ConversationTxn;
use crate::tracker::{DialogueStateTracker, EventVerbosity};

/// The channel bot messages of an API call go to (`output_channel` query parameter).
pub enum ApiOutput {
    Collecting(CollectingOutputChannel),
    Callback(CallbackOutputChannel),
    /// A channel that pushes to the user (socket.io): the answer has no `messages`,
    /// as in Rasa, where only collecting channels report them.
    Push(std::sync::Arc<dyn OutputChannel>),
}

impl ApiOutput {
    /// Resolves `output_channel` (`latest` = the latest input channel) for a call.
    pub fn resolve(
        state: &SharedState,
        q: &QueryParams,
        tracker: &DialogueStateTracker,
    ) -> ApiOutput {
        let mut requested = q.get("output_channel").map(str::to_owned);
        if requested.as_deref() == Some("latest") {
            requested = tracker.latest_input_channel().map(str::to_owned);
        }
        if let Some(push) = requested
            .as_deref()
            .filter(|name| *name != "callback")
            .and_then(|name| state.push.output_channel(name))
        {
            return ApiOutput::Push(push);
        }
        match (requested.as_deref(), &state.callback) {
            (Some("callback"), Some(endpoint)) => {
                ApiOutput::Callback(CallbackOutputChannel::new(endpoint.clone()))
            }
            (name, _) => ApiOutput::Collecting(match name {
                Some(n) => CollectingOutputChannel::named(n),
                None => CollectingOutputChannel::new(),
            }),
        }
    }

    /// The channel to send to.
    pub fn channel(&self) -> &dyn OutputChannel {
        match self {
            ApiOutput::Collecting(c) => c,
            ApiOutput::Callback(c) => c,
            ApiOutput::Push(c) => c.as_ref(),
        }
    }

    /// The collected messages; `None` for a pushing channel.
    fn take(&self) -> Option<Vec<Value>> {
        match self {
            ApiOutput::Collecting(c) => Some(c.take()),
            ApiOutput::Callback(c) => Some(c.take()),
            ApiOutput::Push(_) => None,
        }
    }

    /// `{"tracker": ..., "messages": [...]}`, without `messages` for a pushing channel.
    fn answer(&self, tracker: Value) -> Value {
        let mut answer = json!({ "tracker": tracker });
        if let Some(messages) = self.take() {
            answer["messages"] = Value::Array(messages);
        }
        answer
    }
}

fn render(tracker: &DialogueStateTracker, verbosity: EventVerbosity) -> Result<Value, ApiError> {
    serde_json::to_value(tracker.current_state(verbosity)).map_err(ApiError::conversation_error)
}

fn body_object(body: &Value) -> Option<&Map<String, Value>> {
    body.as_object()
}

/// `POST /conversations/<id>/messages`: logs a user message (and fills slots) without
/// predicting anything.
pub async fn add_message(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let body = read_json(body, state.body_limit).await?;
    if body.is_null() {
        return Err(ApiError::with_reason(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "No message defined in request body. Add a message to the request body in order to add it to the tracker.",
        ));
    }
    let verbosity = q.include_events()?;
    let o = body_object(&body)
        .ok_or_else(|| ApiError::framework_500("The request body must be a JSON object."))?;
    let sender = o.get("sender").and_then(Value::as_str).unwrap_or_default();
    if sender != "user" {
        return Err(ApiError::bad_parameter(
            format!(
                "Currently, only user messages can be passed to this endpoint. Messages of sender '{sender}' cannot be handled."
            ),
            "sender",
            "body",
        ));
    }
    let text = match o.get("text") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(ApiError::conversation_error(
                "a message needs a 'text' to be parsed (Error running graph component for node run_RegexMessageHandler.)",
            ))
        }
    };
    if let Some(pd) = o.get("parse_data").filter(|pd| !pd.is_null()) {
        let as_event = serde_json::json!({"event": "user", "parse_data": pd});
        crate::events::validate_event(&as_event).map_err(|e| {
            ApiError::bad_parameter(format!("Invalid parse_data: {e}"), "parse_data", "body")
        })?;
    }
    let msg = UserMessage {
        text: Some(text),
        sender_id: id.to_owned(),
        parse_data: o.get("parse_data").and_then(Value::as_object).cloned(),
        ..UserMessage::default()
    };
    let out = CollectingOutputChannel::new();
    let mut txn = state.conversations.open(id, agent.clone()).await?;
    update_session(&mut txn, None, &out).await;
    let message_id = uuid::Uuid::new_v4().simple().to_string();
    let parse_data = parse_message_remote(&agent, &msg, &message_id).await;
    let user = Event::new(EventKind::User(UserUttered::new(
        msg.text.clone(),
        Some(&parse_data),
        None,
        Some(message_id),
        &JsonMap::new(),
    )));
    log_user_event_unanswered(&mut txn, user, &out).await;
    let answer = render(&txn.tracker(), verbosity)?;
    txn.commit().await?;
    json_value(answer)
}

fn json_value(v: Value) -> Result<Response, ApiError> {
    serde_json::to_vec(&v)
        .map(json_bytes)
        .map_err(ApiError::conversation_error)
}

/// `POST /conversations/<id>/predict`: the next action's scores, without running it.
pub async fn predict(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    if !state.conversations.exists(id, &agent).await? {
        return Err(ApiError::conversation_not_found());
    }
    let out = CollectingOutputChannel::new();
    let mut txn = state.conversations.open(id, agent.clone()).await?;
    update_session(&mut txn, None, &out).await;
    let (action, prediction) = predict_next(&txn);
    let scores = if prediction.policy.as_deref() == Some("followup_action") {
        agent
            .domain_action_names
            .iter()
            .map(|a| (a.clone(), if *a == action { 1.0 } else { 0.0 }))
            .collect()
    } else {
        agent.policies.predict(&txn.tracker(), &agent.domain).scores
    };
    let mut scores: Vec<(String, f64)> = scores;
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut tracker = render(&txn.tracker(), EventVerbosity::AfterRestart)?;
    if prediction.policy.as_deref() == Some("followup_action") {
        // Rasa consumes the followup when it predicts it (the answer shows it gone).
        tracker["followup_action"] = Value::Null;
    }
    let answer = json!({
        "scores": scores.iter().map(|(a, s)| json!({"action": a, "score": s})).collect::<Vec<_>>(),
        "policy": prediction.policy,
        "confidence": prediction.confidence,
        "tracker": tracker,
    });
    txn.commit().await?;
    json_value(answer)
}

fn name_param<'a>(body: &'a Value, what: &str) -> Result<&'a str, ApiError> {
    body.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_parameter(
                format!("Name of the {what} not provided in request body."),
                "name",
                "body",
            )
        })
}

/// `POST /conversations/<id>/execute` (deprecated in Rasa): runs one action, without
/// predicting further. Answers the tracker as it was before the action, as Rasa does.
pub async fn execute(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    if !state.conversations.exists(id, &agent).await? {
        return Err(ApiError::conversation_not_found());
    }
    let body = read_json(body, state.body_limit).await?;
    if !body.is_object() {
        return Err(ApiError::framework_500(
            "The request body must be a JSON object.",
        ));
    }
    let name = name_param(&body, "action")?.to_owned();
    let verbosity = q.include_events()?;
    if !crate::actions::is_known_action(&agent, &name) {
        return Err(ApiError::conversation_error(format!(
            "Cannot access action '{name}', as that name is not a registered action for this domain. \
             Available actions are: {}",
            agent.domain_action_names.join(", ")
        )));
    }
    let prediction = Prediction::fixed(
        body.get("policy").and_then(Value::as_str),
        Some(
            body.get("confidence")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        ),
    );
    let mut txn = state.conversations.open(id, agent.clone()).await?;
    let output = ApiOutput::resolve(state, q, &txn.tracker());
    update_session(&mut txn, None, output.channel()).await;
    let snapshot = render(&txn.tracker(), verbosity)?;
    run_action(&mut txn, &name, prediction, output.channel()).await;
    txn.commit().await?;
    json_value(output.answer(snapshot))
}

/// The entities of a `trigger_intent` body or a reminder: a list, or a
/// `{entity: value}` shorthand; anything else is none.
pub fn external_entities(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| json!({"entity": k, "value": v}))
            .collect(),
        _ => Vec::new(),
    }
}

/// Logs an external `user` event for `intent` and runs the dialogue, as Rasa's
/// `trigger_external_user_uttered` (used by `trigger_intent` and reminders).
pub async fn trigger_external(
    txn: &mut ConversationTxn<'_>,
    intent: &str,
    entities: Vec<Value>,
    out: &dyn OutputChannel,
) {
    let mut metadata = JsonMap::new();
    metadata.insert("is_external".into(), json!(true));
    let mut parse = JsonMap::new();
    parse.insert("intent".into(), json!({"name": intent}));
    parse.insert("entities".into(), Value::Array(entities));
    let input_channel = txn.tracker().latest_input_channel().map(str::to_owned);
    let user = Event {
        timestamp: crate::events::now(),
        metadata: metadata.clone(),
        kind: EventKind::User(UserUttered::new(
            Some(format!("EXTERNAL: {intent}")),
            Some(&parse),
            input_channel,
            None,
            &metadata,
        )),
    };
    log_user_event(txn, user, out).await;
    predict_and_run(txn, out).await;
}

/// `POST /conversations/<id>/trigger_intent`: injects an intent and runs the dialogue.
pub async fn trigger_intent(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let body = read_json(body, state.body_limit).await?;
    if !body.is_object() {
        return Err(ApiError::framework_500(
            "The request body must be a JSON object.",
        ));
    }
    let intent = name_param(&body, "intent")?.to_owned();
    let verbosity = q.include_events()?;
    let mut txn = state.conversations.open(id, agent.clone()).await?;
    let output = ApiOutput::resolve(state, q, &txn.tracker());
    update_session(&mut txn, None, output.channel()).await;
    if !agent.domain.intent_exists(&intent) {
        // The session start above is kept, as in Rasa.
        txn.commit().await?;
        return Err(ApiError::with_reason(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The intent {intent} does not exist in the domain."),
        ));
    }
    trigger_external(
        &mut txn,
        &intent,
        external_entities(body.get("entities")),
        output.channel(),
    )
    .await;
    let tracker = render(&txn.tracker(), verbosity)?;
    txn.commit().await?;
    json_value(output.answer(tracker))
}
