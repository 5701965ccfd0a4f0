//! Reaching users outside of a request: the output channel of each input channel that
//! can deliver messages on its own, as Rasa's `InputChannel.get_output_channel()`.
//!
//! A message produced without a user's request — a human agent's answer, a followup run
//! with `execute_side_effects`, `trigger_intent`, a reminder — goes to the user through
//! the channel of their latest message. Use [`PushChannels::for_tracker`] (or
//! [`PushChannels::output_channel`] with a channel name) and send through the returned
//! [`OutputChannel`]:
//!
//! ```ignore
//! let out = state.push.for_tracker(&tracker);            // Option<Arc<dyn OutputChannel>>
//! let collecting = CollectingOutputChannel::new();
//! let out: &dyn OutputChannel = out.as_deref().unwrap_or(&collecting);
//! out.send(&sender_id, &message).await;
//! ```
//!
//! - `socketio`: emitted to every socket of the conversation that is connected to this
//!   server (its room) and, with replicas (a Redis lock store), relayed through Redis to
//!   the sockets connected to the others ([`super::relay`]); nobody connected, nothing
//!   sent.
//! - `callback`: posted to the callback URL of credentials.yml.
//! - anything else (`rest`, `cmdline`, unknown): `None`; the messages stay on the
//!   tracker, where REST clients read them.

use std::sync::Arc;

use super::callback::{CallbackEndpoint, CallbackOutputChannel};
use super::socketio::SocketIoOutputChannel;
use super::OutputChannel;
use crate::tracker::DialogueStateTracker;

/// The input channels of this server that can push messages to their users.
#[derive(Clone, Debug, Default)]
pub struct PushChannels {
    socketio: Option<SocketIoOutputChannel>,
    callback: Option<CallbackEndpoint>,
}

impl PushChannels {
    /// The push channels of a server with these input channels configured.
    pub fn new(
        socketio: Option<SocketIoOutputChannel>,
        callback: Option<CallbackEndpoint>,
    ) -> PushChannels {
        PushChannels { socketio, callback }
    }

    /// The output channel reaching users of input channel `input_channel`; `None` when
    /// that channel cannot push (or is not configured).
    pub fn output_channel(&self, input_channel: &str) -> Option<Arc<dyn OutputChannel>> {
        match input_channel {
            super::socketio::CHANNEL_NAME => self
                .socketio
                .clone()
                .map(|s| Arc::new(s) as Arc<dyn OutputChannel>),
            "callback" => self
                .callback
                .clone()
                .map(|e| Arc::new(CallbackOutputChannel::new(e)) as Arc<dyn OutputChannel>),
            _ => None,
        }
    }

    /// The output channel reaching the user of a conversation: the one of the input
    /// channel of its latest message (Rasa's `output_channel=latest`).
    pub fn for_tracker(&self, tracker: &DialogueStateTracker) -> Option<Arc<dyn OutputChannel>> {
        self.output_channel(tracker.latest_input_channel()?)
    }

    /// The socket.io push channel, when the channel is configured (e.g. to ask how many
    /// sockets a conversation has connected).
    pub fn socketio(&self) -> Option<&SocketIoOutputChannel> {
        self.socketio.as_ref()
    }
}
