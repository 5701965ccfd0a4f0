//! The `socketio` channel: web chat widgets (rasa-webchat and others) talk socket.io
//! to the server, as with Rasa's `SocketIOInput`/`SocketIOOutput`.
//!
//! credentials.yml, with Rasa's keys and defaults:
//!
//! ```yaml
//! socketio:
//!   user_message_evt: user_uttered   # event the client sends messages with
//!   bot_message_evt: bot_uttered     # event the bot's messages are sent with
//!   session_persistence: false       # true: the conversation id is the client's session_id
//!   socketio_path: /socket.io        # where socket.io is served
//!   namespace: null                  # socket.io namespace (default "/")
//!   metadata_key: metadata           # key of the message that holds its metadata
//!   jwt_key: null                    # set: connections need a valid JWT in auth.token
//!   jwt_method: HS256
//! ```
//!
//! The protocol, as Rasa speaks it:
//! - connect: with `jwt_key`, the client's `auth` must hold `{"token": "<jwt>"}`
//!   (a `Bearer ` prefix is allowed); otherwise the connection is refused.
//! - `session_request` `{"session_id": id|null}` → `session_confirm` with the session id
//!   (a new random hex id when none is given). With `session_persistence` the socket
//!   joins the room named by the session id.
//! - `user_uttered` `{"message": text, "session_id": id, <metadata_key>: {...}}` → the
//!   message is handled; the conversation id is the `session_id` with
//!   `session_persistence` (a message without one is ignored), the socket id without.
//!   A JSON string as metadata is parsed. A client that asks for an ack gets an empty
//!   one once the message is handled.
//! - the bot's messages are emitted as `bot_uttered` to the room of the conversation id
//!   (see [`socketio_messages`] for the payloads), so every socket of that conversation
//!   gets them, and so do messages pushed later (reminders, human agents); with
//!   replicas, on every replica ([`super::relay`]).
//!
//! Messages of one socket are handled one after the other, in the order they arrived.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, Weak};

use serde_json::{json, Map, Value};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessage, FromMessageParts};
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use super::auth::ChannelJwt;
use super::relay::SocketIoRelay;
use super::{BotMessage, OutputChannel};
use crate::config::ConfigError;
use crate::events::is_truthy;
use crate::processor::messages::{handle_message, UserMessage};
use crate::server::AppState;

/// The channel's name, as Rasa's `SocketIOInput.name()`.
pub const CHANNEL_NAME: &str = "socketio";

/// Events a socket may have waiting before new ones are refused.
const SOCKET_QUEUE: usize = 64;

/// An empty argument list: socketioxide sends a tuple's items as the arguments of an
/// event or ack, so an empty one sends none (python-socketio's `None`).
pub(crate) const NO_ARGS: [u8; 0] = [];

/// The `socketio:` section of credentials.yml.
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// Event name of user messages.
    pub user_message_evt: String,
    /// Event name of bot messages.
    pub bot_message_evt: String,
    /// The socket.io namespace ("/" by default).
    pub namespace: String,
    /// Whether the conversation id is the client's `session_id` (else the socket id).
    pub session_persistence: bool,
    /// Where socket.io is served.
    pub socketio_path: String,
    /// Key of a user message that holds its metadata.
    pub metadata_key: String,
    /// Verifies connection tokens when `jwt_key` is set.
    pub jwt: Option<ChannelJwt>,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            user_message_evt: "user_uttered".into(),
            bot_message_evt: "bot_uttered".into(),
            namespace: "/".into(),
            session_persistence: false,
            socketio_path: "/socket.io".into(),
            metadata_key: "metadata".into(),
            jwt: None,
        }
    }
}

impl SocketIoConfig {
    /// Reads `socketio:` of credentials.yml; `None` when the channel is not configured.
    /// An empty section (`socketio:`) means every default, as in Rasa.
    pub fn from_credentials(credentials: &Value) -> Result<Option<SocketIoConfig>, ConfigError> {
        let Some(section) = credentials.as_object().and_then(|c| c.get(CHANNEL_NAME)) else {
            return Ok(None);
        };
        let empty = Map::new();
        let section = match section {
            Value::Null => &empty,
            Value::Object(o) => o,
            _ => {
                return Err(ConfigError(
                    "credentials.yml socketio: must be a mapping of settings (or empty)".into(),
                ))
            }
        };
        let text = |key: &str, default: &str| -> Result<String, ConfigError> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(default.to_owned()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(ConfigError(format!(
                    "credentials.yml socketio.{key} must be a text"
                ))),
            }
        };
        let mut config = SocketIoConfig::default();
        config.user_message_evt = text("user_message_evt", &config.user_message_evt)?;
        config.bot_message_evt = text("bot_message_evt", &config.bot_message_evt)?;
        config.metadata_key = text("metadata_key", &config.metadata_key)?;
        let path = text("socketio_path", &config.socketio_path)?;
        config.socketio_path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let namespace = text("namespace", "/")?;
        config.namespace = if namespace.starts_with('/') {
            namespace
        } else {
            format!("/{namespace}")
        };
        config.session_persistence = match section.get("session_persistence") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(v) => is_truthy(v),
        };
        let jwt_key = text("jwt_key", "")?;
        if !jwt_key.is_empty() {
            let method = text("jwt_method", "HS256")?;
            config.jwt = Some(ChannelJwt::new(
                &jwt_key,
                &method,
                "credentials.yml socketio.jwt_key",
            )?);
        }
        Ok(Some(config))
    }
}

/// One emission of the bot message event: its payload (none for a custom payload
/// without `data`) and, for a custom payload that names one, another room.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketIoEmit {
    /// The room to send to instead of the conversation's.
    pub room: Option<String>,
    /// The event's argument.
    pub data: Option<Value>,
}

fn emit(data: Value) -> SocketIoEmit {
    SocketIoEmit {
        room: None,
        data: Some(data),
    }
}

/// Text with buttons as Rasa's socket.io output sends it: one message per paragraph,
/// the buttons as `quick_replies` of the last one.
fn text_with_buttons(text: &str, buttons: &Value) -> Vec<SocketIoEmit> {
    let replies: Vec<Value> = buttons
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    json!({
                        "content_type": "text",
                        "title": b.get("title").cloned().unwrap_or(Value::Null),
                        "payload": b.get("payload").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let parts: Vec<&str> = text.trim().split("\n\n").collect();
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let quick_replies = if i == last {
                replies.clone()
            } else {
                Vec::new()
            };
            emit(json!({"text": part, "quick_replies": quick_replies}))
        })
        .collect()
}

/// A custom payload as Rasa sends it (`sio.emit(bot_message_evt, **custom)`): its
/// `data` is the event's argument, `room` (or `to`) another room. Rasa fails on any
/// other key; palaver logs it and sends nothing for this part.
fn custom_json(custom: &Value) -> Option<SocketIoEmit> {
    let Value::Object(o) = custom else {
        tracing::error!("a custom socket.io payload must be a mapping; it was not sent");
        return None;
    };
    const EMIT_ARGS: &[&str] = &[
        "data",
        "room",
        "to",
        "namespace",
        "skip_sid",
        "callback",
        "ignore_queue",
    ];
    if let Some(bad) = o.keys().find(|k| !EMIT_ARGS.contains(&k.as_str())) {
        tracing::error!(
            key = %bad,
            "a custom socket.io payload may only have the keys of socket.io's emit (data, room, ...); it was not sent"
        );
        return None;
    }
    let room = o
        .get("room")
        .or_else(|| o.get("to"))
        .filter(|v| !v.is_null())
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    Some(SocketIoEmit {
        room,
        data: o.get("data").filter(|v| !v.is_null()).cloned(),
    })
}

/// The emissions of one bot message, in order, as Rasa's `SocketIOOutput` makes them
/// (through `OutputChannel.send_response`):
/// - quick replies or buttons: `{"text", "quick_replies": [{"content_type": "text",
///   "title", "payload"}]}` per paragraph, the replies on the last;
/// - text: `{"text"}` per paragraph (split at blank lines);
/// - custom: the payload's `data` (see above);
/// - image: `{"attachment": {"type": "image", "payload": {"src": url}}}`;
/// - attachment: `{"attachment": ...}`;
/// - elements: one `{"attachment": {"type": "template", "payload": {"template_type":
///   "generic", "elements": element}}}` per element.
pub fn socketio_messages(m: &BotMessage) -> Vec<SocketIoEmit> {
    let mut out = Vec::new();
    let get = |key: &str| m.data.get(key).filter(|v| is_truthy(v));
    let text = m.text.as_deref().unwrap_or_default();
    if let Some(buttons) = get("quick_replies").or_else(|| get("buttons")) {
        out.extend(text_with_buttons(text, buttons));
    } else if !text.is_empty() {
        out.extend(
            text.trim()
                .split("\n\n")
                .map(|part| emit(json!({"text": part}))),
        );
    }
    if let Some(custom) = get("custom") {
        out.extend(custom_json(custom));
    }
    if let Some(image) = get("image") {
        out.push(emit(
            json!({"attachment": {"type": "image", "payload": {"src": image}}}),
        ));
    }
    if let Some(attachment) = get("attachment") {
        out.push(emit(json!({"attachment": attachment})));
    }
    if let Some(Value::Array(elements)) = get("elements") {
        for element in elements {
            out.push(emit(json!({"attachment": {"type": "template",
                "payload": {"template_type": "generic", "elements": element}}})));
        }
    }
    out
}

/// Sends bot messages to the sockets of a conversation: the rooms named by
/// conversation ids. Cheap to clone; works for messages produced outside of a
/// socket.io request too (API calls with `output_channel=socketio` or `latest`,
/// reminders, human agents). With several replicas (a Redis lock store) each emission
/// is also relayed to the sockets connected to the other replicas
/// ([`super::relay`]); otherwise a conversation with no socket connected to this
/// server gets nothing (its messages are still on its tracker).
#[derive(Clone, Debug)]
pub struct SocketIoOutputChannel {
    io: SocketIo,
    namespace: String,
    bot_message_evt: String,
    relay: Option<Arc<SocketIoRelay>>,
}

impl SocketIoOutputChannel {
    /// How many sockets of conversation `sender_id` are connected to this server.
    pub fn connected_sockets(&self, sender_id: &str) -> usize {
        self.io
            .of(&self.namespace)
            .map(|ns| ns.within(sender_id.to_owned()).sockets().len())
            .unwrap_or(0)
    }

    /// Emits one payload to a room.
    async fn emit_to(&self, room: String, data: Option<&Value>) {
        let Some(ns) = self.io.of(&self.namespace) else {
            tracing::warn!(namespace = %self.namespace, "the socket.io namespace is not served; a bot message was dropped");
            return;
        };
        let sent = match data {
            Some(d) => ns.to(room.clone()).emit(&self.bot_message_evt, d).await,
            None => {
                ns.to(room.clone())
                    .emit(&self.bot_message_evt, &NO_ARGS)
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "a socket.io bot message could not be sent");
        }
        if let Some(relay) = &self.relay {
            relay.publish(&self.namespace, &room, &self.bot_message_evt, data);
        }
    }
}

#[async_trait::async_trait]
impl OutputChannel for SocketIoOutputChannel {
    fn name(&self) -> Option<&str> {
        Some(CHANNEL_NAME)
    }

    async fn send(&self, recipient_id: &str, message: &BotMessage) {
        for e in socketio_messages(message) {
            let room = e.room.unwrap_or_else(|| recipient_id.to_owned());
            self.emit_to(room, e.data.as_ref()).await;
        }
    }
}

/// The socket.io channel: the tower layer that serves socket.io under
/// `socketio_path`, and the handlers behind it.
#[derive(Clone)]
pub struct SocketIoChannel {
    inner: Arc<Inner>,
}

struct Inner {
    config: SocketIoConfig,
    io: SocketIo,
    /// Relays emissions to the sockets of other replicas, if there are replicas.
    relay: Option<Arc<SocketIoRelay>>,
    layer: SocketIoLayer,
    /// The server state, set once by [`SocketIoChannel::serve`].
    state: OnceLock<Weak<AppState>>,
}

impl std::fmt::Debug for SocketIoChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoChannel")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl SocketIoChannel {
    /// Builds the socket.io server for `config` (nothing is served until
    /// [`SocketIoChannel::serve`] is called).
    pub fn new(config: SocketIoConfig) -> SocketIoChannel {
        SocketIoChannel::with_relay(config, None)
    }

    /// Like [`SocketIoChannel::new`], with a relay to the other replicas' sockets
    /// (started by [`SocketIoChannel::serve`]).
    pub fn with_relay(
        config: SocketIoConfig,
        relay: Option<Arc<SocketIoRelay>>,
    ) -> SocketIoChannel {
        let (layer, io) = SocketIo::builder()
            .req_path(config.socketio_path.clone())
            .build_layer();
        SocketIoChannel {
            inner: Arc::new(Inner {
                config,
                io,
                relay,
                layer,
                state: OnceLock::new(),
            }),
        }
    }

    /// The channel's settings.
    pub fn config(&self) -> &SocketIoConfig {
        &self.inner.config
    }

    /// The output channel that pushes to this channel's sockets.
    pub fn output(&self) -> SocketIoOutputChannel {
        self.inner.output()
    }

    /// Starts handling connections with the server's state (the first call does; later
    /// calls change nothing) and gives the layer to put on the router.
    pub fn serve(&self, state: &Arc<AppState>) -> SocketIoLayer {
        if self.inner.state.set(Arc::downgrade(state)).is_ok() {
            let admit_ctx = self.inner.clone();
            let admit = move |s: SocketRef, Data(auth): Data<Value>| {
                let ctx = admit_ctx.clone();
                async move { ctx.admit(&s, &auth) }
            };
            self.inner.io.ns(
                self.inner.config.namespace.clone(),
                (async || ()).with(admit),
            );
            if let Some(relay) = &self.inner.relay {
                relay.start(self.inner.io.clone());
            }
        }
        self.inner.layer.clone()
    }
}

/// Why a connection was refused (sent to the client as its `connect_error` message,
/// with python-socketio's wording).
#[derive(Debug, thiserror::Error)]
#[error("Connection rejected by server")]
struct Rejected;

/// An event waiting for its socket's worker.
enum Inbound {
    SessionRequest(Value),
    UserMessage(Value, AckSender),
}

/// The sending end of a socket's event queue, kept in the socket's extensions.
#[derive(Clone)]
struct SocketQueue(mpsc::Sender<Inbound>);

/// Which event a queued handler was registered for.
trait InboundKind: Send + Sync + 'static {
    fn wrap(data: Value, ack: AckSender) -> Inbound;
}

struct SessionRequestEvent;
impl InboundKind for SessionRequestEvent {
    fn wrap(data: Value, _ack: AckSender) -> Inbound {
        Inbound::SessionRequest(data)
    }
}

struct UserMessageEvent;
impl InboundKind for UserMessageEvent {
    fn wrap(data: Value, ack: AckSender) -> Inbound {
        Inbound::UserMessage(data, ack)
    }
}

/// Puts an event on its socket's queue while the packet is being read.
///
/// socketioxide runs every event handler in a task of its own, so two messages that
/// arrive together could be handled in either order. Extractors, however, run in
/// arrival order, as each packet is read: this one hands the event to the socket's
/// worker task, which handles the events of its socket one at a time.
struct Enqueued<K>(PhantomData<K>);

/// The socket's queue is gone (it disconnected) or full.
#[derive(Debug, thiserror::Error)]
#[error("the socket's event queue refused an event ({0})")]
struct NotQueued(&'static str);

impl<K: InboundKind> FromMessage<LocalAdapter> for Enqueued<K> {
    type Error = NotQueued;

    fn from_message(
        s: Arc<Socket<LocalAdapter>>,
        mut v: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) -> Result<Self, NotQueued> {
        let data = match TryData::<Value>::from_message_parts(&s, &mut v, &ack_id) {
            Ok(TryData(Ok(d))) => d,
            _ => Value::Null,
        };
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let Some(SocketQueue(queue)) = s.extensions.get::<SocketQueue>() else {
            return Err(NotQueued("disconnected"));
        };
        queue.try_send(K::wrap(data, ack)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                tracing::warn!(sid = %s.id, "a socket sent events faster than they are handled; one was dropped");
                NotQueued("full")
            }
            mpsc::error::TrySendError::Closed(_) => NotQueued("closed"),
        })?;
        Ok(Enqueued(PhantomData))
    }
}

impl Inner {
    /// Connection middleware: checks the JWT, then prepares the socket before the client
    /// is told it is connected (so no event can arrive before its handler exists).
    fn admit(self: &Arc<Self>, s: &SocketRef, auth: &Value) -> Result<(), Rejected> {
        if let Some(jwt) = &self.config.jwt {
            let token = auth
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if token.is_empty() || jwt.verify(token).is_none() {
                tracing::debug!(sid = %s.id, "a socket.io connection without a valid JWT was refused");
                return Err(Rejected);
            }
        }
        tracing::debug!(sid = %s.id, "a user connected to the socket.io endpoint");
        // Like python-socketio, every socket is in the room named by its own id.
        s.join(s.id);
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        s.extensions.insert(SocketQueue(tx));
        tokio::spawn(self.clone().worker(s.id, rx));
        s.on(
            "session_request",
            async |_: Enqueued<SessionRequestEvent>| {},
        );
        s.on(
            self.config.user_message_evt.clone(),
            async |_: Enqueued<UserMessageEvent>| {},
        );
        s.on_disconnect(async |s: SocketRef, reason: DisconnectReason| {
            tracing::debug!(sid = %s.id, ?reason, "a user disconnected from the socket.io endpoint");
            // Ends the worker once it has handled what is queued.
            s.extensions.remove::<SocketQueue>();
        });
        Ok(())
    }

    /// Handles one socket's events in order until it disconnects. Holds only the socket
    /// id, so that a disconnected socket is freed.
    async fn worker(self: Arc<Self>, sid: Sid, mut rx: mpsc::Receiver<Inbound>) {
        while let Some(event) = rx.recv().await {
            match event {
                Inbound::SessionRequest(data) => self.session_request(sid, data),
                Inbound::UserMessage(data, ack) => {
                    self.user_message(sid, data).await;
                    // python-socketio acknowledges with the handler's result: nothing.
                    let _ = ack.send(&NO_ARGS);
                }
            }
        }
    }

    fn output(&self) -> SocketIoOutputChannel {
        SocketIoOutputChannel {
            io: self.io.clone(),
            namespace: self.config.namespace.clone(),
            bot_message_evt: self.config.bot_message_evt.clone(),
            relay: self.relay.clone(),
        }
    }

    fn socket(&self, sid: Sid) -> Option<SocketRef> {
        self.io.of(&self.config.namespace)?.get_socket(sid)
    }

    /// `session_request`: confirms the session id (a new one when none is given).
    fn session_request(&self, sid: Sid, data: Value) {
        let Some(socket) = self.socket(sid) else {
            return;
        };
        let session_id = match data.get("session_id") {
            None | Some(Value::Null) => Value::String(uuid::Uuid::new_v4().simple().to_string()),
            Some(id) => id.clone(),
        };
        if self.config.session_persistence {
            socket.join(room_name(&session_id));
        }
        if let Err(e) = socket.emit("session_confirm", &session_id) {
            tracing::debug!(sid = %sid, error = %e, "session_confirm could not be sent");
        }
    }

    /// A user message: handled like any channel's, answered through the room of its
    /// conversation.
    async fn user_message(&self, sid: Sid, data: Value) {
        let Value::Object(data) = data else {
            tracing::warn!(sid = %sid, "a socket.io message that is not an object was ignored");
            return;
        };
        let sender_id = if self.config.session_persistence {
            match data.get("session_id").filter(|v| is_truthy(v)) {
                Some(id) => room_name(id),
                None => {
                    tracing::warn!(
                        "A message without a valid session_id was received. This message will be \
                         ignored. Make sure to set a proper session id using the \
                         `session_request` socketIO event."
                    );
                    return;
                }
            }
        } else {
            sid.to_string()
        };
        let metadata = match data.get(&self.config.metadata_key) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => {
                    tracing::warn!(key = %self.config.metadata_key, "the metadata of a socket.io message is not a JSON object; ignored");
                    Map::new()
                }
            },
            Some(_) => {
                tracing::warn!(key = %self.config.metadata_key, "the metadata of a socket.io message is not an object; ignored");
                Map::new()
            }
        };
        let text = match data.get("message") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => other.to_string(),
        };
        let Some(state) = self.state.get().and_then(Weak::upgrade) else {
            return;
        };
        let Ok(agent) = state.agent() else {
            tracing::warn!("no bot is loaded; a socket.io message was not answered");
            return;
        };
        let msg = UserMessage {
            text: Some(text),
            sender_id,
            input_channel: Some(CHANNEL_NAME.to_owned()),
            metadata: Some(metadata),
            ..UserMessage::default()
        };
        let output = self.output();
        if let Err(e) = handle_message(&state.conversations, agent, msg, &output).await {
            tracing::error!(error = %e, "handling a socket.io message failed");
        }
    }
}

/// A room name for a session id: the text itself, or the JSON of another value.
fn room_name(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot(text: Option<&str>, data: Value) -> BotMessage {
        BotMessage {
            text: text.map(str::to_owned),
            data: data.as_object().cloned().unwrap_or_default(),
        }
    }

    fn payloads(m: &BotMessage) -> Vec<Value> {
        socketio_messages(m)
            .into_iter()
            .map(|e| e.data.unwrap_or(Value::Null))
            .collect()
    }

    #[test]
    fn credentials_as_rasa_reads_them() {
        assert!(SocketIoConfig::from_credentials(&json!({"rest": null}))
            .unwrap()
            .is_none());
        let c = SocketIoConfig::from_credentials(&json!({"socketio": null}))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                c.user_message_evt.as_str(),
                c.bot_message_evt.as_str(),
                c.namespace.as_str(),
                c.socketio_path.as_str(),
                c.metadata_key.as_str(),
                c.session_persistence,
                c.jwt.is_none()
            ),
            (
                "user_uttered",
                "bot_uttered",
                "/",
                "/socket.io",
                "metadata",
                false,
                true
            )
        );
        let c = SocketIoConfig::from_credentials(&json!({"socketio": {
            "namespace": "chat", "socketio_path": "ws", "session_persistence": "True",
            "jwt_key": "k", "jwt_method": "HS512"}}))
        .unwrap()
        .unwrap();
        assert_eq!(c.namespace, "/chat");
        assert_eq!(c.socketio_path, "/ws");
        assert!(c.session_persistence);
        assert!(c.jwt.is_some());
        for bad in [
            json!({"socketio": "yes"}),
            json!({"socketio": {"bot_message_evt": 3}}),
            json!({"socketio": {"jwt_key": "k", "jwt_method": "nope"}}),
        ] {
            assert!(SocketIoConfig::from_credentials(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buttons_without_text_and_empty_messages() {
        let m = bot(None, json!({"buttons": [{"title": "A"}]}));
        assert_eq!(
            payloads(&m),
            vec![json!({"text": "", "quick_replies": [
                {"content_type": "text", "title": "A", "payload": null}]})]
        );
        assert!(socketio_messages(&bot(None, json!({}))).is_empty());
        assert!(socketio_messages(&bot(Some(""), json!({"custom": null}))).is_empty());
        // An image mirrored into `attachment` is sent once (BotMessage clears the copy).
        let e = crate::events::Event::from_json(&json!({"event": "bot", "text": null,
            "data": {"image": "i", "attachment": "i"}}))
        .unwrap()
        .unwrap();
        let m = BotMessage::from_event(&e).unwrap();
        assert_eq!(
            payloads(&m),
            vec![json!({"attachment": {"type": "image", "payload": {"src": "i"}}})]
        );
    }

    #[test]
    fn custom_payloads_follow_socketio_emit_arguments() {
        let one = |custom: Value| socketio_messages(&bot(None, json!({ "custom": custom })));
        assert_eq!(
            one(json!({"data": [1, 2]})),
            vec![SocketIoEmit {
                room: None,
                data: Some(json!([1, 2]))
            }]
        );
        assert_eq!(
            one(json!({"data": "x", "to": 5})),
            vec![SocketIoEmit {
                room: Some("5".into()),
                data: Some(json!("x"))
            }]
        );
        assert!(one(json!({"data": 1, "other": 2})).is_empty());
        assert!(one(json!("text")).is_empty());
    }
}
