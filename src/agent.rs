//! The loaded bot: what `rasa run` calls the agent's model.
//!
//! palaver has no training step: the "model" is the project folder itself, read at
//! start-up. Its id is a hash of the project files, so it changes exactly when the bot
//! does; events logged by the server carry it in their metadata, as Rasa's do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::{Domain, DomainError};
use crate::events::Event;
use crate::slots::Slot;
use crate::yaml::{self, YamlError};

/// The Rasa version palaver answers as: its API, events and action-server protocol.
pub const RASA_VERSION: &str = "3.6.21";

/// A project that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The domain is missing or invalid.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A YAML file is invalid.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Something else about the project is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// A loaded bot.
#[derive(Debug)]
pub struct Agent {
    /// The domain.
    pub domain: Arc<Domain>,
    /// The domain's slots, shared by every tracker.
    pub slots: Arc<Vec<Slot>>,
    /// `config.yml` as read.
    pub config: Value,
    /// A hex hash of the project's files.
    pub model_id: String,
    /// What `/status` reports as the model file.
    pub model_file: String,
    /// `assistant_id` from `config.yml`.
    pub assistant_id: Option<String>,
}

impl Agent {
    /// Builds an agent from an already loaded domain and config.
    pub fn new(domain: Domain, config: Value, model_id: String, model_file: String) -> Agent {
        let assistant_id = config
            .get("assistant_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Agent {
            slots: Arc::new(domain.slots.clone()),
            domain: Arc::new(domain),
            config,
            model_id,
            model_file,
            assistant_id,
        }
    }

    /// Loads the project in `dir`: `domain.yml` (or a `domain/` folder) and
    /// `config.yml`. `domain` and `config` override the default file locations.
    pub fn load(
        dir: &Path,
        domain: Option<&Path>,
        config: Option<&Path>,
    ) -> Result<Agent, ProjectError> {
        let domain_path = match domain {
            Some(p) => p.to_path_buf(),
            None => find_domain(dir).ok_or_else(|| {
                ProjectError::Invalid(format!(
                    "no domain.yml (or domain/ folder) in {}",
                    dir.display()
                ))
            })?,
        };
        let domain = Domain::load(&domain_path)?;
        let config_path = config
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("config.yml"));
        let config = if config_path.exists() {
            yaml::read_file(&config_path)?
        } else {
            Value::Null
        };
        let model_id = fingerprint(&[&domain_path, &config_path, &dir.join("data")]);
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "bot".into());
        Ok(Agent::new(
            domain,
            config,
            model_id,
            format!("{name}.tar.gz"),
        ))
    }
}

impl Agent {
    /// Adds the model's ids to an event's metadata unless present, as Rasa does for
    /// every event it logs.
    pub fn stamp(&self, event: &mut Event) {
        if !event.metadata.contains_key("model_id") {
            event
                .metadata
                .insert("model_id".into(), Value::String(self.model_id.clone()));
        }
        if let Some(assistant) = &self.assistant_id {
            if !event.metadata.contains_key("assistant_id") {
                event
                    .metadata
                    .insert("assistant_id".into(), Value::String(assistant.clone()));
            }
        }
    }
}

/// `domain.yml`, `domain.yaml` or a `domain/` folder in `dir`.
pub fn find_domain(dir: &Path) -> Option<PathBuf> {
    ["domain.yml", "domain.yaml", "domain"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

/// Hash of the contents of the given files and folders (recursively, in name order).
fn fingerprint(paths: &[&Path]) -> String {
    fn add(h: &mut Sha256, p: &Path) {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for e in entries {
                add(h, &e);
            }
        } else if let Ok(bytes) = std::fs::read(p) {
            h.update(p.to_string_lossy().as_bytes());
            h.update(&bytes);
        }
    }
    let mut h = Sha256::new();
    for p in paths {
        add(&mut h, p);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
