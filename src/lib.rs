//! # palaver
//!
//! A Rasa-compatible dialogue server. palaver loads a Rasa project (`domain.yml`,
//! `config.yml`, `data/`, `endpoints.yml`, `credentials.yml`) unchanged and serves
//! Rasa's HTTP API with the same JSON, the same events and the same effect on the
//! conversation, from one small binary.
//!
//! Data flows one way: HTTP ([`server`]) → auth ([`server::auth`]) → the processor
//! ([`processor`]: lock, load the tracker, log events) → the stores ([`stores`]).
//! The core types — [`events`], [`tracker`], [`domain`], [`slots`] — are pure: they
//! know nothing of HTTP or storage.

pub mod actions;
pub mod agent;
pub mod brokers;
pub mod channels;
pub mod cli;
pub mod config;
pub mod domain;
pub mod events;
pub mod init;
pub mod nlg;
pub mod nlu;
pub mod policies;
pub mod processor;
pub mod pyjson;
pub mod reminders;
pub mod server;
pub mod shutdown;
pub mod slots;
pub mod stores;
pub mod story;
pub mod telemetry;
pub mod tracker;
pub mod training_data;
pub mod yaml;
