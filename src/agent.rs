//! The loaded bot: what `rasa run` calls the agent's model.
//!
//! palaver has no training step: the "model" is the project folder itself, read at
//! start-up. Its id is a hash of the project files, so it changes exactly when the bot
//! does; events logged by the server carry it in their metadata, as Rasa's do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actions::remote::{ActionEndpoint, RemoteActionExecutor};
use crate::domain::{Domain, DomainError};
use crate::events::Event;
use crate::nlu::{NluModel, RemoteNlu};
use crate::policies::PolicyEnsemble;
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

/// `MAX_NUMBER_OF_PREDICTIONS` as Rasa reads it: actions per message (default 10).
pub fn max_number_of_predictions() -> usize {
    std::env::var("MAX_NUMBER_OF_PREDICTIONS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10)
}

/// A loaded bot.
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
    /// The dialogue policies, trained from the project's stories and rules.
    pub policies: PolicyEnsemble,
    /// The NLU pipeline, trained from the project's NLU data (`None`: shortcuts only).
    pub nlu: Option<NluModel>,
    /// endpoints.yml `nlu:`: a remote NLU server that parses instead of `nlu`.
    pub remote_nlu: Option<RemoteNlu>,
    /// Runs custom actions on the action server.
    pub executor: RemoteActionExecutor,
    /// `GET /domain` JSON, also sent to the action server.
    pub domain_json: Value,
    /// The domain's actions in Rasa's order (default actions first).
    pub domain_action_names: Vec<String>,
    /// Most actions run for one message.
    pub max_predictions: usize,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("model_id", &self.model_id)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Loads the project in `dir`: `domain.yml` (or a `domain/` folder), `config.yml`
    /// and `data/`; trains the policies; reads the action endpoint from `endpoints`
    /// (the parsed endpoints.yml). `domain` and `config` override the file locations.
    pub fn load_project(
        dir: &Path,
        domain: Option<&Path>,
        config: Option<&Path>,
        endpoints: &Value,
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
        let mut domain = Domain::load(&domain_path)?;
        let config_path = config
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("config.yml"));
        let config = if config_path.exists() {
            yaml::read_file(&config_path)?
        } else {
            Value::Null
        };
        let data_dir = dir.join("data");
        let mut data = crate::training_data::load(&data_dir)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?;
        merge_retrieval_data(&mut domain, &mut data);
        let policies = PolicyEnsemble::train(&config, &domain, &data)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?;
        let remote_nlu = RemoteNlu::from_endpoints(endpoints);
        // With a remote NLU server, nothing is trained locally (as in Rasa).
        let nlu = match remote_nlu {
            Some(_) => None,
            None => NluModel::load_or_train(&config, &data.nlu, dir),
        };
        let endpoint = ActionEndpoint::from_endpoints(endpoints).map_err(ProjectError::Invalid)?;
        let model_id = fingerprint(&[&domain_path, &config_path, &data_dir]);
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "bot".into());
        let assistant_id = config
            .get("assistant_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Agent {
            slots: Arc::new(domain.slots.clone()),
            domain_json: domain.to_json(),
            domain_action_names: domain.action_names(),
            domain: Arc::new(domain),
            config,
            model_id,
            model_file: format!("{name}.tar.gz"),
            assistant_id,
            policies,
            nlu,
            remote_nlu,
            executor: RemoteActionExecutor::new(endpoint),
            max_predictions: max_number_of_predictions(),
        })
    }

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

/// What Rasa's `ResponsesSyncImporter` does between the domain and the NLU data: the
/// domain learns the retrieval intents, their `utter_<intent>` actions and the data
/// files' responses; the NLU data (what the response selector reports) gets the
/// domain's retrieval responses (`utter_faq/ask_name`), which win over the data's.
pub fn merge_retrieval_data(domain: &mut Domain, data: &mut crate::training_data::TrainingData) {
    let domain_retrieval_responses: Vec<(String, Value)> = domain
        .responses
        .iter()
        .filter(|(k, _)| k.contains(crate::nlu::selector::RESPONSE_IDENTIFIER_DELIMITER))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let retrieval = crate::nlu::selector::retrieval_intents(&data.nlu);
    domain.merge_retrieval_intents(&retrieval, &data.responses);
    for (k, v) in domain_retrieval_responses {
        data.nlu.responses.insert(k, v);
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
