//! The RabbitMQ event broker (`event_broker: {type: pika}`), as Rasa's `PikaEventBroker`:
//! a durable fanout exchange (`exchange_name`, default `rasa-exchange`) with the
//! durable `queues` (default `rasa_core_events`) bound to it; each event is one
//! persistent message whose body is the event's broker JSON. palaver waits for the
//! broker's publisher confirms, so a message counts as delivered only once RabbitMQ
//! has taken responsibility for it. The connection is made again after a failure.

use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::sync::Mutex;

use super::{BrokerError, EventBroker, PartialDelivery};
use crate::config::PikaConfig;

/// Publishes to RabbitMQ.
pub struct PikaEventBroker {
    cfg: PikaConfig,
    link: Mutex<Option<(Connection, Channel)>>,
}

fn broken(e: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("RabbitMQ: {e}"))
}

/// The AMQP URL of the configured server: `url` as given when it is one, else built
/// from host, port, username and password (virtual host `/`).
pub fn amqp_url(cfg: &PikaConfig) -> String {
    if cfg.host.contains("://") {
        return cfg.host.clone();
    }
    let pct = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "amqp://{}:{}@{}:{}/%2f",
        pct(&cfg.username),
        pct(&cfg.password),
        cfg.host,
        cfg.port
    )
}

impl PikaEventBroker {
    /// A broker for the configured server; it connects on first use.
    pub fn new(cfg: PikaConfig) -> PikaEventBroker {
        PikaEventBroker {
            cfg,
            link: Mutex::new(None),
        }
    }

    async fn open(&self) -> Result<(Connection, Channel), BrokerError> {
        let conn = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            Connection::connect(&amqp_url(&self.cfg), ConnectionProperties::default()),
        )
        .await
        .map_err(|_| broken("no answer within 5 s"))?
        .map_err(broken)?;
        let channel = conn.create_channel().await.map_err(broken)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broken)?;
        let exchange = self.cfg.exchange_name.as_str();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broken)?;
        for queue in &self.cfg.queues {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(broken)?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(broken)?;
        }
        Ok((conn, channel))
    }
}

#[async_trait]
impl EventBroker for PikaEventBroker {
    async fn publish(&self, messages: &[String]) -> Result<(), PartialDelivery> {
        let mut link = self.link.lock().await;
        let fail = |delivered, error| PartialDelivery { delivered, error };
        if !link
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
        {
            *link = None;
            *link = Some(self.open().await.map_err(|e| fail(0, e))?);
        }
        let Some((_, channel)) = link.as_ref() else {
            return Err(fail(0, broken("not connected")));
        };
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Ok(env) = std::env::var("RASA_ENVIRONMENT") {
            properties = properties.with_app_id(env.into());
        }
        // Send them all, then wait for the confirms in order.
        let mut confirms = Vec::with_capacity(messages.len());
        let mut publish_error = None;
        for m in messages {
            match channel
                .basic_publish(
                    self.cfg.exchange_name.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    m.as_bytes(),
                    properties.clone(),
                )
                .await
            {
                Ok(c) => confirms.push(c),
                Err(e) => {
                    publish_error = Some(broken(e));
                    break;
                }
            }
        }
        // Delivered: the messages confirmed before the first one that was not.
        let mut delivered = 0;
        let mut error = None;
        for c in confirms {
            match c.await {
                Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) if error.is_none() => {
                    delivered += 1
                }
                Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) => {}
                Ok(Confirmation::Nack(_)) => {
                    error.get_or_insert_with(|| broken("the broker refused a message"));
                }
                Err(e) => {
                    error.get_or_insert_with(|| broken(e));
                }
            }
        }
        match error.or(publish_error) {
            None => Ok(()),
            Some(e) => {
                *link = None;
                Err(fail(delivered, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_rasa_settings() {
        let cfg = PikaConfig {
            host: "mq.example".into(),
            port: 5673,
            username: "u".into(),
            password: "p/w".into(),
            queues: vec!["q".into()],
            exchange_name: "rasa-exchange".into(),
        };
        assert_eq!(amqp_url(&cfg), "amqp://u:p%2Fw@mq.example:5673/%2f");
    }
}
