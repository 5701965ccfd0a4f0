//! `palaver init [DIR]`: writes a starter bot, as `rasa init` does, that `palaver run DIR`
//! serves at once (no training step).
//!
//! The files are the ones under `templates/init/` in the source tree, compiled into the
//! binary so that `palaver init` works wherever the binary is copied.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// The starter bot: (path inside the project, contents).
pub const TEMPLATE: &[(&str, &str)] = &[
    ("config.yml", include_str!("../templates/init/config.yml")),
    ("domain.yml", include_str!("../templates/init/domain.yml")),
    (
        "data/nlu.yml",
        include_str!("../templates/init/data/nlu.yml"),
    ),
    (
        "data/stories.yml",
        include_str!("../templates/init/data/stories.yml"),
    ),
    (
        "data/rules.yml",
        include_str!("../templates/init/data/rules.yml"),
    ),
    (
        "endpoints.yml",
        include_str!("../templates/init/endpoints.yml"),
    ),
    (
        "credentials.yml",
        include_str!("../templates/init/credentials.yml"),
    ),
    (
        "actions/__init__.py",
        include_str!("../templates/init/actions/__init__.py"),
    ),
    (
        "actions/actions.py",
        include_str!("../templates/init/actions/actions.py"),
    ),
];

/// Writes the starter bot into `dir` (created if needed) and returns the files written.
/// Refuses, writing nothing, when one of them exists already, unless `force` is set.
pub fn init_project(dir: &Path, force: bool) -> Result<Vec<PathBuf>, ConfigError> {
    let targets: Vec<(PathBuf, &str)> = TEMPLATE
        .iter()
        .map(|(rel, text)| (dir.join(rel), *text))
        .collect();
    if !force {
        let existing: Vec<String> = targets
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(ConfigError(format!(
                "{} already holds a project ({}); choose another folder, or pass --force to \
                 overwrite these files",
                dir.display(),
                existing.join(", ")
            )));
        }
    }
    for (path, text) in &targets {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ConfigError(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(path, text)
            .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(targets.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_data::validate::{validate_project, IssueLevel};

    #[test]
    fn the_starter_bot_loads_and_validates_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let bot = dir.path().join("bot");
        let written = init_project(&bot, false).unwrap();
        assert_eq!(written.len(), TEMPLATE.len());
        let endpoints = crate::yaml::read_file(&bot.join("endpoints.yml")).unwrap();
        crate::agent::Agent::load_project(&bot, None, None, &endpoints).unwrap();
        let domain = crate::domain::Domain::load(&bot.join("domain.yml")).unwrap();
        let data = crate::training_data::load(&bot.join("data")).unwrap();
        let errors: Vec<_> = validate_project(&domain, &data)
            .into_iter()
            .filter(|i| matches!(i.level, IssueLevel::Error))
            .map(|i| i.message)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_existing_project_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("domain.yml"), "version: \"3.1\"\n").unwrap();
        let err = init_project(dir.path(), false).unwrap_err().0;
        assert!(
            err.contains("domain.yml") && err.contains("--force"),
            "{err}"
        );
        // Nothing was written.
        assert!(!dir.path().join("config.yml").exists());
        init_project(dir.path(), true).unwrap();
        let domain = std::fs::read_to_string(dir.path().join("domain.yml")).unwrap();
        assert!(domain.contains("utter_greet"));
    }
}
