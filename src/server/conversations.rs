//! `/conversations/<id>/...`: a conversation's tracker, its events and its story.
//!
//! A conversation id may contain `/` (encoded or not), so the path is matched by its
//! suffix, as Rasa's `<conversation_id:path>` routes do.

use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::dialogue::ApiOutput;
use super::{dialogue, json_bytes, read_json, ApiError, QueryParams, SharedState};
use crate::actions::session_start_events;
use crate::channels::BotMessage;
use crate::channels::CollectingOutputChannel;
use crate::events::{self, begins_with_session_start, EventError};
use crate::processor::messages::{run_action, run_pending_followup, Prediction};
use crate::story::{export_stories, StoryInput};
use crate::tracker::DialogueStateTracker;

/// The conversation routes, by path suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    TrackerEvents,
    Tracker,
    Story,
    Messages,
    Predict,
    Execute,
    TriggerIntent,
}

const SUFFIXES: &[(&str, Resource)] = &[
    ("/tracker/events", Resource::TrackerEvents),
    ("/tracker", Resource::Tracker),
    ("/story", Resource::Story),
    ("/messages", Resource::Messages),
    ("/predict", Resource::Predict),
    ("/execute", Resource::Execute),
    ("/trigger_intent", Resource::TriggerIntent),
];

/// Splits `/conversations/<id><suffix>` into the decoded id and the resource.
fn route(path: &str) -> Option<(String, Resource)> {
    let rest = path.strip_prefix("/conversations/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    for (suffix, resource) in SUFFIXES {
        if let Some(raw_id) = rest.strip_suffix(suffix) {
            if raw_id.is_empty() {
                return None;
            }
            let id = percent_decode_str(raw_id).decode_utf8_lossy().into_owned();
            return Some((id, *resource));
        }
    }
    None
}

/// The route template of a conversation path, e.g.
/// `/conversations/{conversation_id}/tracker` (for metrics labels and the API document).
pub fn route_template(path: &str) -> Option<&'static str> {
    route(path).map(|(_, resource)| template(resource))
}

/// Every conversation route template (the API document must list them all).
pub fn route_templates() -> Vec<&'static str> {
    SUFFIXES.iter().map(|(_, r)| template(*r)).collect()
}

fn template(resource: Resource) -> &'static str {
    match resource {
        Resource::TrackerEvents => "/conversations/{conversation_id}/tracker/events",
        Resource::Tracker => "/conversations/{conversation_id}/tracker",
        Resource::Story => "/conversations/{conversation_id}/story",
        Resource::Messages => "/conversations/{conversation_id}/messages",
        Resource::Predict => "/conversations/{conversation_id}/predict",
        Resource::Execute => "/conversations/{conversation_id}/execute",
        Resource::TriggerIntent => "/conversations/{conversation_id}/trigger_intent",
    }
}

/// Entry point of every `/conversations/...` request.
pub async fn dispatch(
    State(state): State<SharedState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let Some((id, resource)) = route(path) else {
        return Err(ApiError::unknown_path(path));
    };
    let q = QueryParams::parse(query.as_deref());
    match (resource, &method) {
        (Resource::Tracker, &Method::GET) => get_tracker(&state, &headers, &q, &id).await,
        (Resource::TrackerEvents, &Method::POST) => {
            append_events(&state, &headers, &q, &id, body).await
        }
        (Resource::TrackerEvents, &Method::PUT) => {
            replace_events(&state, &headers, &q, &id, body).await
        }
        (Resource::Story, &Method::GET) => get_story(&state, &headers, &q, &id).await,
        (Resource::Messages, &Method::POST) => {
            dialogue::add_message(&state, &headers, &q, &id, body).await
        }
        (Resource::Predict, &Method::POST) => dialogue::predict(&state, &headers, &q, &id).await,
        (Resource::Execute, &Method::POST) => {
            dialogue::execute(&state, &headers, &q, &id, body).await
        }
        (Resource::TriggerIntent, &Method::POST) => {
            dialogue::trigger_intent(&state, &headers, &q, &id, body).await
        }
        _ => {
            let allow = match resource {
                Resource::Tracker | Resource::Story => "GET",
                Resource::TrackerEvents => "POST, PUT",
                _ => "POST",
            };
            let mut response = ApiError::method_not_allowed(method.as_str(), path).into_response();
            response.headers_mut().insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static(allow),
            );
            Ok(response)
        }
    }
}

/// `GET /conversations/<id>/tracker`: the tracker over all sessions. A conversation
/// without events is shown with a session start that is not stored, as Rasa does.
async fn get_tracker(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let verbosity = q.include_events()?;
    let until = q.float("until");
    let stored = state.conversations.read(id, &agent).await?;
    let tracker = stored.get();
    let bytes = if tracker.events().is_empty() {
        let mut fresh = DialogueStateTracker::new(id, agent.slots.clone());
        let start = events::Event::action(events::ACTION_SESSION_START, None, Some(1.0));
        let rest = session_start_events(&agent, &fresh);
        for mut e in std::iter::once(start).chain(rest) {
            agent.stamp(&mut e);
            fresh.update(e);
        }
        let fresh = match until {
            Some(t) => fresh.travel_back_in_time(t),
            None => fresh,
        };
        serde_json::to_vec(&fresh.current_state(verbosity))
    } else if let Some(t) = until {
        serde_json::to_vec(&tracker.travel_back_in_time(t).current_state(verbosity))
    } else {
        serde_json::to_vec(&tracker.current_state(verbosity))
    };
    drop(tracker);
    bytes.map(json_bytes).map_err(ApiError::conversation_error)
}

/// Parses events that passed validation; Rasa's 500 for the ones it cannot build.
fn parse_posted_events(items: &[&Value]) -> Result<Vec<events::Event>, ApiError> {
    events::parse_events(items).map_err(|e| match e {
        EventError::Invalid(m) => ApiError::invalid_events(&m),
        EventError::Unusable(m) => ApiError::conversation_error(m),
    })
}

/// `POST /conversations/<id>/tracker/events`: appends one event or a list. Either
/// every event is applied and stored, or none is.
async fn append_events(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let body = read_json(body, state.body_limit).await?;
    let items = events::validate_events(&body).map_err(|e| ApiError::invalid_events(&e))?;
    let verbosity = q.include_events()?;
    let events = parse_posted_events(&items)?;
    if events.is_empty() {
        return Err(ApiError::conversation_error(
            "Couldn't extract a proper event from the request body.",
        ));
    }
    let mut txn = state.conversations.open(id, agent).await?;
    if txn.tracker().events().is_empty() && !begins_with_session_start(&events) {
        // Rasa runs the session start without an output channel: its messages are dropped.
        let nowhere = CollectingOutputChannel::new();
        run_action(
            &mut txn,
            events::ACTION_SESSION_START,
            Prediction::fixed(None, Some(1.0)),
            &nowhere,
        )
        .await;
    }
    let posted_bots: Vec<BotMessage> = events.iter().filter_map(BotMessage::from_event).collect();
    let side_effects = q.bool("execute_side_effects", false);
    let posted = if side_effects {
        events.clone()
    } else {
        Vec::new()
    };
    for e in events {
        txn.log(e);
    }
    if side_effects {
        let output = ApiOutput::resolve(state, q, &txn.tracker());
        txn.schedule_side_effects(&posted, output.channel().name());
        for m in &posted_bots {
            output.channel().send(id, m).await;
        }
        // H4: a followup posted with side effects runs at once.
        run_pending_followup(&mut txn, output.channel()).await;
    }
    let bytes = serde_json::to_vec(&txn.tracker().current_state(verbosity))
        .map_err(ApiError::conversation_error)?;
    txn.commit().await?;
    Ok(json_bytes(bytes))
}

/// `PUT /conversations/<id>/tracker/events`: replaces the whole history.
async fn replace_events(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let body = read_json(body, state.body_limit).await?;
    let items = events::validate_events(&body).map_err(|e| ApiError::invalid_events(&e))?;
    let verbosity = q.include_events()?;
    if !body.is_array() {
        return Err(ApiError::conversation_error(
            "the body must be a list of events to replace the conversation with",
        ));
    }
    let events = parse_posted_events(&items)?;
    let txn = state.conversations.open(id, agent).await?;
    let tracker = txn.replace(events).await?;
    serde_json::to_vec(&tracker.current_state(verbosity))
        .map(json_bytes)
        .map_err(ApiError::conversation_error)
}

/// `GET /conversations/<id>/story`: the conversation as a YAML test story; the latest
/// session only unless `all_sessions=true`.
async fn get_story(
    state: &SharedState,
    headers: &HeaderMap,
    q: &QueryParams,
    id: &str,
) -> Result<Response, ApiError> {
    state.auth.check(headers, q.get("token"), Some(id))?;
    let agent = state.agent()?;
    let stored = state.conversations.read(id, &agent).await?;
    let tracker = stored.get();
    if tracker.events().is_empty() {
        return Err(ApiError::conversation_not_found());
    }
    let all_sessions = q.bool("all_sessions", false);
    let until = q.float("until");
    let mut sessions: Vec<DialogueStateTracker> = split_sessions(&tracker)
        .into_iter()
        .map(|evs| DialogueStateTracker::from_events(id, agent.slots.clone(), evs))
        .collect();
    drop(tracker);
    if !all_sessions {
        sessions = sessions.pop().into_iter().collect();
    }
    if let Some(t) = until {
        sessions = sessions
            .iter()
            .map(|s| s.travel_back_in_time(t))
            .filter(|s| !s.events().is_empty())
            .collect();
    }
    let several = sessions.len() > 1;
    let inputs: Vec<StoryInput<'_>> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| StoryInput {
            name: if several {
                format!("{id}, story {}", i + 1)
            } else {
                id.to_owned()
            },
            // Rasa's `as_story` writes every event of the session, reverted ones too.
            events: s.events().iter().collect(),
        })
        .collect();
    let text = export_stories(&inputs);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The events of each session: a new session begins at every `action_session_start`.
fn split_sessions(tracker: &DialogueStateTracker) -> Vec<Vec<events::Event>> {
    let mut sessions: Vec<Vec<events::Event>> = Vec::new();
    for e in tracker.events() {
        if e.action_name() == Some(events::ACTION_SESSION_START) || sessions.is_empty() {
            sessions.push(Vec::new());
        }
        if let Some(s) = sessions.last_mut() {
            s.push(e.clone());
        }
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_may_contain_slashes_and_encodings() {
        assert_eq!(
            route("/conversations/a/b/tracker/events"),
            Some(("a/b".into(), Resource::TrackerEvents))
        );
        assert_eq!(
            route("/conversations/a%2Fb%20c/tracker/"),
            Some(("a/b c".into(), Resource::Tracker))
        );
        assert_eq!(
            route("/conversations/%C3%A9t%C3%A9/story"),
            Some(("été".into(), Resource::Story))
        );
        assert_eq!(route("/conversations//tracker"), None);
        assert_eq!(route("/conversations/x/other"), None);
    }
}
