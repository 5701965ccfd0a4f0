//! Rasa's conversation events: parsing what Rasa accepts and writing what Rasa writes.
//!
//! Every change to a conversation is an [`Event`]. The JSON shapes follow Rasa 3.x
//! (`rasa/shared/core/events.py`): the envelope keys `event`, `timestamp` and `metadata`,
//! then the type-specific keys. Parsing is done in two steps, as Rasa does:
//!
//! 1. [`validate_events`] checks a request body against the constraints of Rasa's
//!    JSON schema for events; a failure is a 400 `BadRequest` in Rasa's error format.
//! 2. [`Event::from_json`] builds the event. Some inputs pass the schema but cannot
//!    become an event (an `action` without a name, a `user` without `parse_data`, a
//!    `reminder` without a date); Rasa answers those with a 500 `ConversationError`,
//!    and so does palaver (see [`EventError::Unusable`]).
//!
//! The module is pure: no IO, no clock other than "now" for missing timestamps.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// The JSON object type used for metadata, parse data and similar free-form maps.
pub type JsonMap = Map<String, Value>;

/// Names of default actions that the event and tracker code needs to recognise.
pub const ACTION_LISTEN: &str = "action_listen";
/// The action that starts a conversation session.
pub const ACTION_SESSION_START: &str = "action_session_start";

/// Every event type name Rasa 3.6 accepts in its event schema, legacy names included.
pub const EVENT_TYPE_NAMES: &[&str] = &[
    "user",
    "action",
    "slot",
    "entities",
    "user_featurization",
    "cancel_reminder",
    "reminder",
    "action_execution_rejected",
    "form_validation",
    "loop_interrupted",
    "form",
    "active_loop",
    "reset_slots",
    "resume",
    "pause",
    "followup",
    "export",
    "restart",
    "undo",
    "rewind",
    "bot",
    "session_started",
    "agent",
];

/// One conversation event: the envelope shared by all types plus the type's own data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch; "now" when the input had none (or 0, as Rasa).
    pub timestamp: f64,
    /// Free-form metadata; written only when non-empty, except for `user` and `bot`.
    pub metadata: JsonMap,
    /// What happened.
    pub kind: EventKind,
}

/// The type-specific part of an [`Event`], one variant per Rasa event class.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `user`: the user said something (UserUttered).
    User(UserUttered),
    /// `user_featurization`: whether the last user message was featurized by text.
    UserFeaturization {
        /// Kept as given so that it is written back unchanged.
        use_text_for_featurization: Value,
    },
    /// `entities`: entities added to the latest user message.
    EntitiesAdded {
        /// Entity objects (`entity` and `value` required).
        entities: Vec<Value>,
    },
    /// `bot`: the bot said something.
    Bot {
        /// The text, if any.
        text: Option<String>,
        /// Rich content (`buttons`, `image`, `custom`, ...); `{}` when absent.
        data: Value,
    },
    /// `slot`: a slot was set.
    Slot {
        /// Slot name.
        name: String,
        /// New value (any JSON).
        value: Value,
    },
    /// `restart`: the conversation starts over.
    Restart,
    /// `rewind`: revert to before the latest user message.
    Rewind,
    /// `reset_slots`: every slot back to its initial value.
    ResetSlots,
    /// `undo`: revert the latest action.
    Undo,
    /// `pause`: a human took over; the bot predicts nothing.
    Pause,
    /// `resume`: the bot takes over again.
    Resume,
    /// `session_started`: a new conversation session begins.
    SessionStarted,
    /// `reminder`: an intent to trigger later.
    Reminder(Reminder),
    /// `cancel_reminder`: cancel scheduled reminders; written without its fields, as Rasa.
    CancelReminder {
        /// Reminder name to match.
        name: Option<String>,
        /// Intent to match.
        intent: Option<String>,
        /// Entities to match (any JSON, compared by their string form).
        entities: Value,
    },
    /// `export`: Rasa would write the story to `path`; palaver records it only.
    Export {
        /// The requested file path (never written back, as Rasa).
        path: Option<String>,
    },
    /// `followup`: force the next action.
    Followup {
        /// Action name; `null` clears the followup.
        name: Option<String>,
    },
    /// `action`: an action ran.
    Action(ActionExecuted),
    /// `agent`: a message from an agent (kept for compatibility, no effect).
    Agent {
        /// Text, if any.
        text: Option<String>,
        /// Any JSON.
        data: Value,
    },
    /// `active_loop` (legacy `form`): activate a loop, or deactivate with `null`.
    ActiveLoop {
        /// Loop (form) name.
        name: Option<String>,
    },
    /// `loop_interrupted` (legacy `form_validation`).
    LoopInterrupted {
        /// Whether the loop was interrupted.
        is_interrupted: bool,
    },
    /// `action_execution_rejected`: an action refused to run.
    ActionExecutionRejected {
        /// The rejected action.
        name: Option<String>,
        /// Policy that predicted it.
        policy: Option<String>,
        /// Prediction confidence.
        confidence: Option<f64>,
    },
}

/// The data of a `user` event.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUttered {
    /// What the user wrote.
    pub text: Option<String>,
    /// Full NLU parse data as Rasa writes it: `intent`, `entities`, `text`,
    /// `message_id`, `metadata`, overlaid with the parse data that came in.
    pub parse_data: JsonMap,
    /// Channel the message came from.
    pub input_channel: Option<String>,
    /// Unique id of the message.
    pub message_id: Option<String>,
}

impl UserUttered {
    /// Builds a user event's data the way Rasa's `UserUttered.__init__` does.
    pub fn new(
        text: Option<String>,
        parse_data: Option<&JsonMap>,
        input_channel: Option<String>,
        message_id: Option<String>,
        metadata: &JsonMap,
    ) -> UserUttered {
        let intent = parse_data
            .and_then(|p| p.get("intent"))
            .filter(|v| is_truthy(v))
            .cloned()
            .unwrap_or_else(|| Value::Object(JsonMap::new()));
        let entities = parse_data
            .and_then(|p| p.get("entities"))
            .filter(|v| is_truthy(v))
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()));
        let mut full = JsonMap::new();
        full.insert("intent".into(), intent);
        full.insert("entities".into(), entities);
        full.insert("text".into(), opt_str(&text));
        full.insert("message_id".into(), opt_str(&message_id));
        full.insert("metadata".into(), Value::Object(metadata.clone()));
        if let Some(p) = parse_data {
            for (k, v) in p {
                full.insert(k.clone(), v.clone());
            }
        }
        UserUttered {
            text,
            parse_data: full,
            input_channel,
            message_id,
        }
    }

    /// The intent name, if the message has one.
    pub fn intent_name(&self) -> Option<&str> {
        self.parse_data
            .get("intent")
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
    }

    /// The entities of the parse data.
    pub fn entities(&self) -> &[Value] {
        self.parse_data
            .get("entities")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// The data of an `action` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionExecuted {
    /// Action name (null only for end-to-end predictions with `action_text`).
    pub name: Option<String>,
    /// Policy that predicted the action.
    pub policy: Option<String>,
    /// Confidence of the prediction.
    pub confidence: Option<f64>,
    /// End-to-end bot text, when the prediction was text based.
    pub action_text: Option<String>,
    /// Whether ML policies should not see this turn.
    pub hide_rule_turn: bool,
}

/// A point in time as a reminder carries it: with or without a UTC offset, written
/// back in Python's `isoformat()` shape so that Rasa reads it the same.
#[derive(Debug, Clone, PartialEq)]
pub enum ReminderTime {
    /// A date-time with an explicit offset.
    Offset(DateTime<FixedOffset>),
    /// A naive date-time (interpreted in the server's local time zone, as Rasa).
    Naive(NaiveDateTime),
}

impl ReminderTime {
    /// Python `datetime.isoformat()` of the value.
    pub fn isoformat(&self) -> String {
        fn fmt_naive(n: &NaiveDateTime) -> String {
            if n.and_utc().timestamp_subsec_micros() == 0 {
                n.format("%Y-%m-%dT%H:%M:%S").to_string()
            } else {
                n.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
            }
        }
        match self {
            ReminderTime::Naive(n) => fmt_naive(n),
            ReminderTime::Offset(d) => {
                let secs = d.offset().local_minus_utc();
                let sign = if secs < 0 { '-' } else { '+' };
                let a = secs.unsigned_abs();
                let mut off = format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
                if a % 60 != 0 {
                    off.push_str(&format!(":{:02}", a % 60));
                }
                format!("{}{}", fmt_naive(&d.naive_local()), off)
            }
        }
    }

    /// The instant, as seconds since the epoch (naive values are read as local time).
    pub fn epoch_seconds(&self) -> f64 {
        match self {
            ReminderTime::Offset(d) => d.timestamp_micros() as f64 / 1e6,
            ReminderTime::Naive(n) => match chrono::Local.from_local_datetime(n).earliest() {
                Some(d) => d.timestamp_micros() as f64 / 1e6,
                None => n.and_utc().timestamp_micros() as f64 / 1e6,
            },
        }
    }

    /// Parses the ISO-8601 shapes Rasa's `dateutil` parser is given in practice.
    pub fn parse(input: &str) -> Option<ReminderTime> {
        let s = input.trim();
        if let Ok(d) = DateTime::parse_from_rfc3339(s) {
            return Some(ReminderTime::Offset(d));
        }
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M:%S%.f%z",
            "%Y-%m-%d %H:%M:%S%.f%z",
            "%Y-%m-%dT%H:%M%:z",
        ] {
            if let Ok(d) = DateTime::parse_from_str(s, f) {
                return Some(ReminderTime::Offset(d));
            }
        }
        if let Some(stripped) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
            if let Some(ReminderTime::Naive(n)) = ReminderTime::parse(stripped) {
                return Some(ReminderTime::Offset(
                    FixedOffset::east_opt(0)?.from_utc_datetime(&n),
                ));
            }
        }
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
                return Some(ReminderTime::Naive(n));
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return d.and_hms_opt(0, 0, 0).map(ReminderTime::Naive);
        }
        None
    }
}

/// The data of a `reminder` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    /// Intent to trigger (null for 1.x reminders that named an action instead).
    pub intent: Option<String>,
    /// When to trigger.
    pub date_time: ReminderTime,
    /// Entities to send with the intent: a list or a `{entity: value}` object.
    pub entities: Value,
    /// Reminder name; a fresh UUID when not given.
    pub name: String,
    /// Cancel the reminder if the user speaks before it fires.
    pub kill_on_user_msg: bool,
    /// The 1.x `action` field, kept in memory only (Rasa 3 ignores it).
    pub legacy_action: Option<String>,
}

/// Why an event could not be built from JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The JSON does not satisfy Rasa's event schema: a 400 `BadRequest`.
    #[error("{0}")]
    Invalid(String),
    /// The JSON passes the schema but Rasa cannot build the event: a 500 `ConversationError`.
    #[error("{0}")]
    Unusable(String),
}

/// Current time as seconds since the epoch.
pub fn now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs_f64()
}

/// Python truthiness of a JSON value (null, false, 0, "", [] and {} are false).
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn opt_str(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::String(s.clone()),
        None => Value::Null,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks one event object against the constraints of Rasa's event schema.
///
/// Beyond Rasa's schema, fields that Rasa later uses as strings or booleans (a bot's
/// `text`, a followup's `name`, ...) must have that type, so that no ill-typed value
/// reaches the tracker; those failures are reported the same way.
pub fn validate_event(v: &Value) -> Result<(), String> {
    let o = match v {
        Value::Object(o) => o,
        other => return Err(format!("{other} is not of type 'object'")),
    };
    let event = match o.get("event") {
        None => return Err("'event' is a required property".into()),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("{other} is not of type 'string' ('event')")),
    };
    match o.get("timestamp") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(other) => {
            return Err(format!(
                "{other} is not of type 'number', 'null' ('timestamp')"
            ))
        }
    }
    match o.get("metadata") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(format!(
                "{other} is not of type 'object', 'null' ('metadata')"
            ))
        }
    }
    if event == "topic" {
        return Ok(());
    }
    if !EVENT_TYPE_NAMES.contains(&event) {
        return Err(format!(
            "{v} is not valid under any of the given schemas (unknown event type '{event}')"
        ));
    }
    let not_valid =
        |why: String| format!("{v} is not valid under any of the given schemas ({why})");
    let want = |key: &str, kinds: &[&str]| -> Result<(), String> {
        match o.get(key) {
            None => Ok(()),
            Some(val) if kinds.contains(&type_name(val)) => Ok(()),
            Some(val)
                if kinds.contains(&"integer") && val.is_i64()
                    || kinds.contains(&"integer") && val.is_u64() =>
            {
                Ok(())
            }
            Some(val) => Err(not_valid(format!(
                "'{key}' is {}, expected {}",
                type_name(val),
                kinds.join(" or ")
            ))),
        }
    };
    match event {
        "user" => {
            want("text", &["string", "null"])?;
            want("input_channel", &["string", "null"])?;
            want("message_id", &["string", "null"])?;
            want("parse_data", &["object", "null"]).map_err(|e| e.replace(" or null", ""))?;
            if let Some(Value::Object(pd)) = o.get("parse_data") {
                validate_parse_data(pd).map_err(not_valid)?;
            }
        }
        "action" => {
            want("policy", &["string", "null"])?;
            want("confidence", &["number", "null"])?;
            want("name", &["string", "null"])?;
            want("hide_rule_turn", &["boolean"])?;
            want("action_text", &["string", "null"])?;
        }
        "slot" => {
            if !o.contains_key("name") || !o.contains_key("value") {
                return Err(not_valid("'name' and 'value' are required".into()));
            }
            want("name", &["string"])?;
        }
        "entities" => {
            match o.get("entities") {
                None => return Err(not_valid("'entities' is required".into())),
                Some(e) => validate_entities(e).map_err(not_valid)?,
            };
        }
        "bot" | "agent" => want("text", &["string", "null"])?,
        "followup" | "active_loop" | "form" => want("name", &["string", "null"])?,
        "action_execution_rejected" => {
            want("name", &["string", "null"])?;
            want("policy", &["string", "null"])?;
            want("confidence", &["number", "null"])?;
        }
        "reminder" => {
            want("intent", &["string", "null"])?;
            want("name", &["string", "null"])?;
            want("kill_on_user_msg", &["boolean", "null"])?;
            want("date_time", &["string", "null"])?;
        }
        "cancel_reminder" => {
            want("intent", &["string", "null"])?;
            want("name", &["string", "null"])?;
        }
        "loop_interrupted" => want("is_interrupted", &["boolean", "null"])?,
        "form_validation" => want("validate", &["boolean", "null"])?,
        "export" => want("path", &["string", "null"])?,
        _ => {}
    }
    Ok(())
}

fn validate_intent(v: &Value, what: &str) -> Result<(), String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("'{what}' must be an object"))?;
    if let Some(n) = o.get("name") {
        // `null` is what NLU writes when it found no intent (an empty message); events
        // palaver stored that way must read back.
        if !(n.is_string() || n.is_null()) {
            return Err(format!("'{what}.name' must be a string"));
        }
    }
    if let Some(c) = o.get("confidence") {
        if !c.is_number() {
            return Err(format!("'{what}.confidence' must be a number"));
        }
    }
    Ok(())
}

fn validate_entities(v: &Value) -> Result<(), String> {
    let list = v.as_array().ok_or("'entities' must be an array")?;
    for e in list {
        let o = e.as_object().ok_or("an entity must be an object")?;
        if !o.contains_key("entity") || !o.contains_key("value") {
            return Err("an entity needs 'entity' and 'value'".into());
        }
        let typed = [
            ("start", "integer"),
            ("end", "integer"),
            ("entity", "string"),
            ("confidence", "number"),
            ("extractor", "string?"),
            ("role", "string?"),
            ("group", "string?"),
        ];
        for (key, kind) in typed {
            if let Some(val) = o.get(key) {
                let ok = match kind {
                    // JSON integers too large for 64 bits are still integers.
                    "integer" => {
                        val.is_i64()
                            || val.is_u64()
                            || val.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    "string" => val.is_string(),
                    "number" => val.is_number(),
                    _ => val.is_string() || val.is_null(),
                };
                if !ok {
                    return Err(format!("entity '{key}' has the wrong type"));
                }
            }
        }
    }
    Ok(())
}

fn validate_parse_data(pd: &JsonMap) -> Result<(), String> {
    if let Some(t) = pd.get("text") {
        if !(t.is_string() || t.is_null()) {
            return Err("'parse_data.text' must be a string or null".into());
        }
    }
    if let Some(i) = pd.get("intent") {
        validate_intent(i, "parse_data.intent")?;
    }
    if let Some(r) = pd.get("intent_ranking") {
        let list = r
            .as_array()
            .ok_or("'parse_data.intent_ranking' must be an array")?;
        for i in list {
            validate_intent(i, "parse_data.intent_ranking[]")?;
        }
    }
    if let Some(e) = pd.get("entities") {
        validate_entities(e)?;
    }
    if let Some(rs) = pd.get("response_selector") {
        if !rs.is_object() {
            return Err("'parse_data.response_selector' must be an object".into());
        }
    }
    Ok(())
}

/// Validates a request body that holds one event or a list of events and returns
/// the list. A single object is wrapped into a one-element list, as Rasa does.
///
/// The error text is what follows "Error: " in Rasa's 400 message.
pub fn validate_events(body: &Value) -> Result<Vec<&Value>, String> {
    let items: Vec<&Value> = match body {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    };
    for (i, item) in items.iter().enumerate() {
        validate_event(item).map_err(|e| {
            if items.len() > 1 {
                format!("{e} (event {i})")
            } else {
                e
            }
        })?;
    }
    Ok(items)
}

fn get_str(o: &JsonMap, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn get_bool(o: &JsonMap, key: &str, default: bool) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(default)
}

impl Event {
    /// Creates an event stamped now with empty metadata.
    pub fn new(kind: EventKind) -> Event {
        Event {
            timestamp: now(),
            metadata: JsonMap::new(),
            kind,
        }
    }

    /// Builds an event from its JSON; `Ok(None)` for the ignored legacy `topic` type.
    ///
    /// Call [`validate_event`] first for input from outside; this function still
    /// refuses what it cannot represent instead of panicking.
    pub fn from_json(v: &Value) -> Result<Option<Event>, EventError> {
        validate_event(v).map_err(EventError::Invalid)?;
        let o = v
            .as_object()
            .ok_or_else(|| EventError::Invalid("not an object".into()))?;
        let event = o.get("event").and_then(Value::as_str).unwrap_or_default();
        let timestamp = match o.get("timestamp").and_then(Value::as_f64) {
            Some(t) if t != 0.0 && t.is_finite() => t,
            _ => now(),
        };
        let metadata = match o.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => JsonMap::new(),
        };
        let kind = match event {
            "topic" => return Ok(None),
            "user" => {
                let parse_data = match o.get("parse_data") {
                    Some(Value::Object(p)) => p,
                    _ => {
                        return Err(EventError::Unusable(
                            "'NoneType' object has no attribute 'get' (a user event needs 'parse_data')"
                                .into(),
                        ))
                    }
                };
                EventKind::User(UserUttered::new(
                    get_str(o, "text"),
                    Some(parse_data),
                    get_str(o, "input_channel"),
                    get_str(o, "message_id"),
                    &metadata,
                ))
            }
            "user_featurization" => EventKind::UserFeaturization {
                use_text_for_featurization: o
                    .get("use_text_for_featurization")
                    .cloned()
                    .unwrap_or(Value::Null),
            },
            "entities" => EventKind::EntitiesAdded {
                entities: o
                    .get("entities")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            },
            "bot" => EventKind::Bot {
                text: get_str(o, "text"),
                data: match o.get("data") {
                    Some(d) if is_truthy(d) => d.clone(),
                    _ => Value::Object(JsonMap::new()),
                },
            },
            "slot" => EventKind::Slot {
                name: get_str(o, "name").unwrap_or_default(),
                value: o.get("value").cloned().unwrap_or(Value::Null),
            },
            "restart" => EventKind::Restart,
            "rewind" => EventKind::Rewind,
            "reset_slots" => EventKind::ResetSlots,
            "undo" => EventKind::Undo,
            "pause" => EventKind::Pause,
            "resume" => EventKind::Resume,
            "session_started" => EventKind::SessionStarted,
            "reminder" => {
                let raw = o.get("date_time").and_then(Value::as_str);
                let date_time = match raw {
                    None => {
                        return Err(EventError::Unusable(
                            "Parser must be a string or character stream, not NoneType".into(),
                        ))
                    }
                    Some(s) => ReminderTime::parse(s).ok_or_else(|| {
                        EventError::Unusable(format!("Unknown string format: {s}"))
                    })?,
                };
                EventKind::Reminder(Reminder {
                    intent: get_str(o, "intent"),
                    date_time,
                    entities: o.get("entities").cloned().unwrap_or(Value::Null),
                    name: get_str(o, "name").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    kill_on_user_msg: get_bool(o, "kill_on_user_msg", true),
                    legacy_action: get_str(o, "action"),
                })
            }
            "cancel_reminder" => EventKind::CancelReminder {
                name: get_str(o, "name"),
                intent: get_str(o, "intent"),
                entities: o.get("entities").cloned().unwrap_or(Value::Null),
            },
            "export" => EventKind::Export {
                path: get_str(o, "path"),
            },
            "followup" => EventKind::Followup {
                name: get_str(o, "name"),
            },
            "action" => {
                let name = get_str(o, "name");
                let action_text = get_str(o, "action_text");
                if name.is_none() && action_text.is_none() {
                    return Err(EventError::Unusable(
                        "Both the name of the action and the end-to-end predicted text are missing. \
                         The `ActionExecuted` event cannot be initialised."
                            .into(),
                    ));
                }
                EventKind::Action(ActionExecuted {
                    name,
                    policy: get_str(o, "policy"),
                    confidence: o.get("confidence").and_then(Value::as_f64),
                    action_text,
                    hide_rule_turn: get_bool(o, "hide_rule_turn", false),
                })
            }
            "agent" => EventKind::Agent {
                text: get_str(o, "text"),
                data: o.get("data").cloned().unwrap_or(Value::Null),
            },
            "active_loop" | "form" => EventKind::ActiveLoop {
                name: get_str(o, "name"),
            },
            "loop_interrupted" => EventKind::LoopInterrupted {
                is_interrupted: get_bool(o, "is_interrupted", false),
            },
            "form_validation" => EventKind::LoopInterrupted {
                is_interrupted: !get_bool(o, "validate", true),
            },
            "action_execution_rejected" => EventKind::ActionExecutionRejected {
                name: get_str(o, "name"),
                policy: get_str(o, "policy"),
                confidence: o.get("confidence").and_then(Value::as_f64),
            },
            other => return Err(EventError::Invalid(format!("unknown event type '{other}'"))),
        };
        Ok(Some(Event {
            timestamp,
            metadata,
            kind,
        }))
    }

    /// The event's type name as Rasa writes it (legacy names come out modern).
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            EventKind::User(_) => "user",
            EventKind::UserFeaturization { .. } => "user_featurization",
            EventKind::EntitiesAdded { .. } => "entities",
            EventKind::Bot { .. } => "bot",
            EventKind::Slot { .. } => "slot",
            EventKind::Restart => "restart",
            EventKind::Rewind => "rewind",
            EventKind::ResetSlots => "reset_slots",
            EventKind::Undo => "undo",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::SessionStarted => "session_started",
            EventKind::Reminder(_) => "reminder",
            EventKind::CancelReminder { .. } => "cancel_reminder",
            EventKind::Export { .. } => "export",
            EventKind::Followup { .. } => "followup",
            EventKind::Action(_) => "action",
            EventKind::Agent { .. } => "agent",
            EventKind::ActiveLoop { .. } => "active_loop",
            EventKind::LoopInterrupted { .. } => "loop_interrupted",
            EventKind::ActionExecutionRejected { .. } => "action_execution_rejected",
        }
    }

    /// The action name, when this is an `action` event with a name.
    pub fn action_name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Action(a) => a.name.as_deref(),
            _ => None,
        }
    }

    /// The event JSON's `name` key, which Rasa's SQL store keeps in `action_name`.
    pub fn name_field(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Action(a) => a.name.as_deref(),
            EventKind::Slot { name, .. } => Some(name),
            EventKind::Reminder(r) => Some(&r.name),
            EventKind::Followup { name }
            | EventKind::ActiveLoop { name }
            | EventKind::ActionExecutionRejected { name, .. } => name.as_deref(),
            _ => None,
        }
    }

    /// The intent name of a `user` event.
    pub fn intent_name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::User(u) => u.intent_name(),
            _ => None,
        }
    }

    /// Convenience constructor for an `action` event.
    pub fn action(name: &str, policy: Option<&str>, confidence: Option<f64>) -> Event {
        Event::new(EventKind::Action(ActionExecuted {
            name: Some(name.to_owned()),
            policy: policy.map(str::to_owned),
            confidence,
            action_text: None,
            hide_rule_turn: false,
        }))
    }

    /// The JSON Rasa writes for this event.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event", self.type_name())?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        let always_metadata = matches!(self.kind, EventKind::User(_) | EventKind::Bot { .. });
        if always_metadata || !self.metadata.is_empty() {
            m.serialize_entry("metadata", &self.metadata)?;
        }
        match &self.kind {
            EventKind::User(u) => {
                m.serialize_entry("text", &u.text)?;
                m.serialize_entry("parse_data", &u.parse_data)?;
                m.serialize_entry("input_channel", &u.input_channel)?;
                m.serialize_entry("message_id", &u.message_id)?;
            }
            EventKind::UserFeaturization {
                use_text_for_featurization,
            } => m.serialize_entry("use_text_for_featurization", use_text_for_featurization)?,
            EventKind::EntitiesAdded { entities } => m.serialize_entry("entities", entities)?,
            EventKind::Bot { text, data } => {
                m.serialize_entry("text", text)?;
                m.serialize_entry("data", data)?;
            }
            EventKind::Slot { name, value } => {
                m.serialize_entry("name", name)?;
                m.serialize_entry("value", value)?;
            }
            EventKind::Reminder(r) => {
                m.serialize_entry("intent", &r.intent)?;
                m.serialize_entry("date_time", &r.date_time.isoformat())?;
                m.serialize_entry("entities", &r.entities)?;
                m.serialize_entry("name", &r.name)?;
                m.serialize_entry("kill_on_user_msg", &r.kill_on_user_msg)?;
            }
            EventKind::Followup { name } | EventKind::ActiveLoop { name } => {
                m.serialize_entry("name", name)?
            }
            EventKind::Action(a) => {
                m.serialize_entry("name", &a.name)?;
                m.serialize_entry("policy", &a.policy)?;
                m.serialize_entry("confidence", &a.confidence)?;
                m.serialize_entry("action_text", &a.action_text)?;
                m.serialize_entry("hide_rule_turn", &a.hide_rule_turn)?;
            }
            EventKind::Agent { text, data } => {
                m.serialize_entry("text", text)?;
                m.serialize_entry("data", data)?;
            }
            EventKind::LoopInterrupted { is_interrupted } => {
                m.serialize_entry("is_interrupted", is_interrupted)?
            }
            EventKind::ActionExecutionRejected {
                name,
                policy,
                confidence,
            } => {
                m.serialize_entry("name", name)?;
                m.serialize_entry("policy", policy)?;
                m.serialize_entry("confidence", confidence)?;
            }
            EventKind::Restart
            | EventKind::Rewind
            | EventKind::ResetSlots
            | EventKind::Undo
            | EventKind::Pause
            | EventKind::Resume
            | EventKind::SessionStarted
            | EventKind::CancelReminder { .. }
            | EventKind::Export { .. } => {}
        }
        m.end()
    }
}

/// Parses events that passed [`validate_events`]; `topic` events are dropped.
pub fn parse_events(items: &[&Value]) -> Result<Vec<Event>, EventError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(e) = Event::from_json(item)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Whether a list of events begins with `action_session_start` + `session_started`.
pub fn begins_with_session_start(events: &[Event]) -> bool {
    matches!(
        events,
        [first, second, ..]
            if first.action_name() == Some(ACTION_SESSION_START)
                && matches!(second.kind, EventKind::SessionStarted)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: Value) -> Value {
        Event::from_json(&v).unwrap().unwrap().to_json()
    }

    #[test]
    fn user_event_fills_parse_data_like_rasa() {
        let out = roundtrip(json!({"event": "user", "timestamp": 5.0, "text": "/greet",
            "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}}));
        assert_eq!(
            out,
            json!({"event": "user", "timestamp": 5.0, "metadata": {}, "text": "/greet",
                "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [],
                    "text": "/greet", "message_id": null, "metadata": {}},
                "input_channel": null, "message_id": null})
        );
    }

    #[test]
    fn legacy_types_come_out_modern() {
        assert_eq!(
            roundtrip(json!({"event": "form", "timestamp": 1.0, "name": "f"})),
            json!({"event": "active_loop", "timestamp": 1.0, "name": "f"})
        );
        assert_eq!(
            roundtrip(json!({"event": "form_validation", "timestamp": 1.0, "validate": false})),
            json!({"event": "loop_interrupted", "timestamp": 1.0, "is_interrupted": true})
        );
    }

    #[test]
    fn cancel_reminder_is_written_without_its_fields() {
        assert_eq!(
            roundtrip(json!({"event": "cancel_reminder", "timestamp": 1.0, "name": "x"})),
            json!({"event": "cancel_reminder", "timestamp": 1.0})
        );
    }

    #[test]
    fn reminder_keeps_its_date_shape() {
        let out = roundtrip(json!({"event": "reminder", "timestamp": 1.0, "intent": "i",
            "date_time": "2031-05-01T10:00:00", "name": "r"}));
        assert_eq!(out["date_time"], "2031-05-01T10:00:00");
        assert_eq!(out["kill_on_user_msg"], true);
        assert_eq!(out["entities"], Value::Null);
        let out = roundtrip(json!({"event": "reminder", "date_time": "2031-05-01T10:00:00.5Z"}));
        assert_eq!(out["date_time"], "2031-05-01T10:00:00.500000+00:00");
        assert!(out["name"].as_str().unwrap().len() > 10);
    }

    #[test]
    fn schema_failures_and_unusable_events_are_told_apart() {
        assert!(matches!(
            Event::from_json(&json!({"event": "slot", "value": 1})),
            Err(EventError::Invalid(_))
        ));
        assert!(matches!(
            Event::from_json(&json!({"event": "nope"})),
            Err(EventError::Invalid(_))
        ));
        assert!(matches!(
            Event::from_json(&json!({"event": "action"})),
            Err(EventError::Unusable(_))
        ));
        assert!(matches!(
            Event::from_json(&json!({"event": "user"})),
            Err(EventError::Unusable(_))
        ));
        assert!(matches!(
            Event::from_json(&json!({"event": "reminder", "intent": "x"})),
            Err(EventError::Unusable(_))
        ));
        assert_eq!(Event::from_json(&json!({"event": "topic"})), Ok(None));
    }

    #[test]
    fn missing_timestamp_is_now_and_bot_data_defaults_to_object() {
        let out = roundtrip(json!({"event": "bot", "text": "hi"}));
        assert!(out["timestamp"].as_f64().unwrap() > 1.7e9);
        assert_eq!(out["data"], json!({}));
        assert_eq!(out["metadata"], json!({}));
    }
}
