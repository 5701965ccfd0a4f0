//! palaver's metrics: their names, what they mean, and small helpers that record them.
//!
//! Code records through the [`metrics`] facade, which does nothing until a recorder is
//! installed (`palaver run --metrics` or `--metrics-port` installs the Prometheus one, see
//! [`crate::server::metrics`]). So the helpers here cost next to nothing when metrics are
//! off, and the processor, the actions and the stores can call them without knowing about
//! HTTP.
//!
//! Every metric palaver exports is named by a constant below and described in
//! [`describe`]; new code adds its own the same way (a constant, a line in `describe`, a
//! line in the README's metrics table). Label values must come from a small set (route
//! templates, action names of the domain, channel names): never a conversation id or a
//! raw path, or the number of series grows with the number of users.

use std::time::{Duration, Instant};

use crate::actions::{ActionKind, ActionOutcome};
use crate::stores::StoreError;

/// HTTP requests answered, by `method`, `route` (the route template) and `status`.
pub const HTTP_REQUESTS: &str = "palaver_http_requests_total";
/// Time to answer an HTTP request (until the response head is ready), same labels.
pub const HTTP_DURATION: &str = "palaver_http_request_duration_seconds";
/// HTTP requests being handled right now.
pub const HTTP_IN_FLIGHT: &str = "palaver_http_requests_in_flight";
/// User messages handled, by input `channel` and `outcome` (`ok` or `error`).
pub const MESSAGES: &str = "palaver_messages_processed_total";
/// Time to handle one user message end to end (lock, predict, actions, store).
pub const MESSAGE_DURATION: &str = "palaver_message_processing_duration_seconds";
/// Actions run, by `action`, `kind` (`default`, `response`, `custom`, `unknown`) and
/// `outcome` (`ok`, `rejected`, `failed`).
pub const ACTIONS: &str = "palaver_actions_total";
/// Time to run an action, by `action` and `kind`.
pub const ACTION_DURATION: &str = "palaver_action_duration_seconds";
/// Calls to the custom action server, by `action` and `status` (the HTTP status, or
/// `error` when no answer came).
pub const ACTION_SERVER_DURATION: &str = "palaver_action_server_request_duration_seconds";
/// Tracker and lock store calls, by `store` (`tracker`, `lock`) and `operation`.
pub const STORE_DURATION: &str = "palaver_store_operation_duration_seconds";
/// Failed tracker and lock store calls, by `store`, `operation` and `error`
/// (`unavailable`, `corrupt`).
pub const STORE_ERRORS: &str = "palaver_store_errors_total";
/// Conversations with a request in progress (holding or waiting for their lock).
pub const OPEN_CONVERSATIONS: &str = "palaver_open_conversations";
/// Reminders scheduled and not yet fired or cancelled.
pub const PENDING_REMINDERS: &str = "palaver_pending_reminders";
/// Due reminders handled, by `outcome` (`fired`, `dropped`: outdated, the user spoke,
/// or cancelled meanwhile; `failed`: retried when the claim's lease ends).
pub const REMINDERS: &str = "palaver_reminders_total";
/// Time from a reminder's due time to its stored external event.
pub const REMINDER_LAG: &str = "palaver_reminder_lag_seconds";
/// Always 1; its labels tell the palaver `version` and the `rasa_version` it speaks.
pub const BUILD_INFO: &str = "palaver_build_info";

/// Registers the description of every metric (shown as `# HELP` by Prometheus) and sets
/// the gauges that must exist from the start.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being handled");
    describe_counter!(MESSAGES, "User messages handled, by channel and outcome");
    describe_histogram!(
        MESSAGE_DURATION,
        Unit::Seconds,
        "Time to handle one user message end to end"
    );
    describe_counter!(ACTIONS, "Actions run, by action, kind and outcome");
    describe_histogram!(ACTION_DURATION, Unit::Seconds, "Time to run an action");
    describe_histogram!(
        ACTION_SERVER_DURATION,
        Unit::Seconds,
        "Calls to the custom action server, by action and HTTP status"
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Tracker store and lock store calls"
    );
    describe_counter!(STORE_ERRORS, "Failed tracker store and lock store calls");
    describe_gauge!(
        OPEN_CONVERSATIONS,
        "Conversations with a request in progress"
    );
    describe_gauge!(
        PENDING_REMINDERS,
        "Reminders scheduled and not yet fired or cancelled"
    );
    describe_counter!(REMINDERS, "Due reminders handled, by outcome");
    describe_histogram!(
        REMINDER_LAG,
        Unit::Seconds,
        "Time from a reminder's due time to its stored external event"
    );
    describe_gauge!(BUILD_INFO, "palaver's version; always 1");
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "rasa_version" => crate::agent::RASA_VERSION
    )
    .set(1.0);
    metrics::gauge!(OPEN_CONVERSATIONS).set(0.0);
    metrics::gauge!(PENDING_REMINDERS).set(0.0);
    metrics::gauge!(HTTP_IN_FLIGHT).set(0.0);
}

/// Times the handling of one user message; records `error` unless [`MessageTimer::ok`]
/// is called, so an early `?` return counts as a failure.
pub struct MessageTimer {
    channel: String,
    started: Instant,
    done: bool,
}

impl MessageTimer {
    /// Starts timing a message of input channel `channel`.
    pub fn start(channel: Option<&str>) -> MessageTimer {
        MessageTimer {
            channel: channel_label(channel),
            started: Instant::now(),
            done: false,
        }
    }

    /// The message was handled and stored.
    pub fn ok(mut self) {
        self.record("ok");
    }

    fn record(&mut self, outcome: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        let channel = std::mem::take(&mut self.channel);
        metrics::counter!(MESSAGES, "channel" => channel.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(MESSAGE_DURATION, "channel" => channel)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for MessageTimer {
    fn drop(&mut self) {
        self.record("error");
    }
}

/// Channel names come from the request (`input_channel` of the REST body), so only a
/// short name of safe characters is used as a label; anything else is `other`.
fn channel_label(channel: Option<&str>) -> String {
    match channel {
        None => "none".to_owned(),
        Some(c)
            if !c.is_empty()
                && c.len() <= 32
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            c.to_owned()
        }
        Some(_) => "other".to_owned(),
    }
}

/// Records one action run: `kind` is what the name resolved to (`None`: not in the
/// domain, labelled `unknown` so that arbitrary names do not become series).
pub fn action_run(
    name: &str,
    kind: Option<&ActionKind>,
    outcome: &ActionOutcome,
    elapsed: Duration,
) {
    #[allow(unreachable_patterns)]
    let kind_label = match kind {
        None => "unknown",
        Some(ActionKind::Default(_)) => "default",
        Some(ActionKind::Response(_)) | Some(ActionKind::RetrieveResponse(_)) => "response",
        Some(ActionKind::Remote(_)) => "custom",
        Some(_) => "other",
    };
    let action = if kind.is_some() {
        name.to_owned()
    } else {
        "unknown".to_owned()
    };
    let result = match outcome {
        ActionOutcome::Events(_) => "ok",
        ActionOutcome::Rejected => "rejected",
        ActionOutcome::Failed(_) => "failed",
    };
    metrics::counter!(ACTIONS, "action" => action.clone(), "kind" => kind_label, "outcome" => result)
        .increment(1);
    metrics::histogram!(ACTION_DURATION, "action" => action, "kind" => kind_label)
        .record(elapsed.as_secs_f64());
}

/// Records one call to the action server: `status` is the HTTP status, `None` when the
/// server did not answer (refused, timed out).
pub fn action_server_call(action: &str, status: Option<u16>, elapsed: Duration) {
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    metrics::histogram!(ACTION_SERVER_DURATION, "action" => action.to_owned(), "status" => status)
        .record(elapsed.as_secs_f64());
}

/// Records one store call (`store` is `tracker` or `lock`).
pub fn store_call<T>(
    store: &'static str,
    operation: &'static str,
    result: &Result<T, StoreError>,
    elapsed: Duration,
) {
    metrics::histogram!(STORE_DURATION, "store" => store, "operation" => operation)
        .record(elapsed.as_secs_f64());
    if let Err(e) = result {
        #[allow(unreachable_patterns)]
        let error = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
            _ => "other",
        };
        metrics::counter!(STORE_ERRORS, "store" => store, "operation" => operation, "error" => error)
            .increment(1);
    }
}

/// Sets the number of pending reminders (for the reminder scheduler to call whenever
/// it schedules, fires or cancels one).
pub fn set_pending_reminders(count: usize) {
    metrics::gauge!(PENDING_REMINDERS).set(count as f64);
}

/// Records what became of a due reminder (`fired`, `dropped` or `failed`).
pub fn reminder_outcome(outcome: &'static str) {
    metrics::counter!(REMINDERS, "outcome" => outcome).increment(1);
}

/// Records how late a reminder fired, in seconds.
pub fn reminder_lag(seconds: f64) {
    metrics::histogram!(REMINDER_LAG).record(seconds.max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_labels_stay_bounded() {
        assert_eq!(channel_label(Some("rest")), "rest");
        assert_eq!(channel_label(None), "none");
        assert_eq!(channel_label(Some("a b")), "other");
        assert_eq!(channel_label(Some(&"x".repeat(40))), "other");
        assert_eq!(channel_label(Some("")), "other");
    }
}
