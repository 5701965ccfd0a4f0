//! Rasa 3.x training data: stories, rules and NLU examples read from `<project>/data`.
//!
//! [`load`] reads every YAML file under the data folder (recursively, in path order;
//! files named `test_*` are test stories and are skipped, as Rasa skips them for
//! training). One file may hold any of the keys `nlu:`, `stories:`, `rules:` and
//! `responses:`.
//!
//! * [`stories`] parses stories and rules into [`Story`] values: typed steps, rule
//!   conditions, `conversation_start` and `wait_for_user_input`.
//! * [`nlu`] parses NLU examples (with `[text](entity)` / `[text]{...}` annotations),
//!   synonyms, regexes and lookup tables.
//! * [`graph`] turns stories and rules into the event sequences Rasa's
//!   `TrainingDataGenerator` produces for the policies: `or` steps expanded,
//!   checkpoints stitched, an `action_listen` before every user turn and at the end,
//!   rule conditions first and the `...` snippet action where Rasa puts it.
//! * [`validate`] is `rasa data validate`: unknown intents, actions, slots, and
//!   conflicting stories.
//!
//! Problems that make a file unusable (invalid YAML, a step with no known key, a
//! malformed entity list, ...) are errors naming the file, the line of the story or
//! rule and the step; things Rasa only warns about are collected in
//! [`TrainingData::warnings`].

pub mod graph;
pub mod nlu;
pub mod stories;
pub mod validate;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use graph::TrainingTracker;
pub use nlu::{NluData, NluEntity, NluExample};
pub use stories::{Step, Story, UserStep};
pub use validate::{validate_project, IssueLevel, ValidationIssue};

/// Everything read from the data folder.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    /// Stories, in file order.
    pub stories: Vec<Story>,
    /// Rules, in file order.
    pub rules: Vec<Story>,
    /// NLU examples, synonyms, regexes, lookup tables.
    pub nlu: NluData,
    /// `responses:` found in data files (retrieval intent responses).
    pub responses: Map<String, Value>,
    /// Things Rasa warns about (skipped items), as `file: message`.
    pub warnings: Vec<String>,
    /// The files that were read.
    pub files: Vec<PathBuf>,
}

/// Training data that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrainingDataError {
    /// A file could not be read or is not valid YAML.
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    /// The YAML is valid but not valid training data.
    #[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: String,
        /// The 1-based line of the story, rule or NLU item, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl TrainingDataError {
    pub(crate) fn invalid(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        TrainingDataError::Invalid {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// Reads every training data file under `data_dir`. A missing folder is empty data.
pub fn load(data_dir: &Path) -> Result<TrainingData, TrainingDataError> {
    let mut data = TrainingData::default();
    if !data_dir.exists() {
        return Ok(data);
    }
    let mut files = Vec::new();
    if data_dir.is_dir() {
        collect_yaml_files(data_dir, &mut files);
        files.sort();
    } else {
        files.push(data_dir.to_path_buf());
    }
    for f in files {
        let is_test = f
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("test_"));
        if is_test {
            continue;
        }
        let shown = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| crate::yaml::YamlError {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        data.add_file(&shown, &text)?;
        data.files.push(f);
    }
    Ok(data)
}

impl TrainingData {
    /// Parses one YAML file's text and adds its content (`file` names it in errors).
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), TrainingDataError> {
        let doc = crate::yaml::parse_str(text, file)?;
        let doc = match doc {
            Value::Null => return Ok(()),
            Value::Object(o) => o,
            other => {
                return Err(TrainingDataError::invalid(
                    file,
                    None,
                    format!(
                        "a training data file must be a map, found {}",
                        short(&other)
                    ),
                ))
            }
        };
        let lines = LineIndex::new(text);
        if let Some(items) = doc.get("stories") {
            let parsed = stories::parse_items(items, file, false, &lines, &mut self.warnings)?;
            self.stories.extend(parsed);
        }
        if let Some(items) = doc.get("rules") {
            let parsed = stories::parse_items(items, file, true, &lines, &mut self.warnings)?;
            self.rules.extend(parsed);
        }
        if let Some(items) = doc.get("nlu") {
            nlu::parse_items(items, file, &lines, &mut self.nlu, &mut self.warnings)?;
        }
        match doc.get("responses") {
            None | Some(Value::Null) => {}
            Some(Value::Object(r)) => {
                for (k, v) in r {
                    self.responses.insert(k.clone(), v.clone());
                    self.nlu.responses.insert(k.clone(), v.clone());
                }
            }
            Some(other) => {
                return Err(TrainingDataError::invalid(
                    file,
                    None,
                    format!("'responses' must be a map, found {}", short(other)),
                ))
            }
        }
        Ok(())
    }

    /// Parses training data from YAML text (tests and tools).
    pub fn from_yaml(text: &str) -> Result<TrainingData, TrainingDataError> {
        let mut d = TrainingData::default();
        d.add_file("<string>", text)?;
        Ok(d)
    }

    /// Intent names used in stories and rules (user steps and `or` alternatives).
    pub fn story_intents(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.stories.iter().chain(&self.rules) {
            for u in s.user_steps() {
                if let Some(i) = &u.intent {
                    if !out.contains(i) {
                        out.push(i.clone());
                    }
                }
            }
        }
        out
    }

    /// Bot texts of `bot:` steps (Rasa adds them to the domain as `e2e_actions`).
    pub fn action_texts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.stories.iter().chain(&self.rules) {
            for step in s.conditions.iter().chain(&s.steps) {
                if let Step::Bot(t) = step {
                    if !out.contains(t) {
                        out.push(t.clone());
                    }
                }
            }
        }
        out
    }
}

/// Maps item names to the lines they start on, to point errors at the source.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    lines: Vec<String>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    /// The 1-based line of the `n`-th (0-based) occurrence of `- key: ...` as a list
    /// item (e.g. `- story: name`).
    pub(crate) fn nth_item(&self, key: &str, n: usize) -> Option<usize> {
        let mut seen = 0;
        for (i, line) in self.lines.iter().enumerate() {
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix('-') else {
                continue;
            };
            let rest = rest.trim_start();
            if rest
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
            {
                if seen == n {
                    return Some(i + 1);
                }
                seen += 1;
            }
        }
        None
    }
}

/// A short display of a JSON value for error messages.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_yaml_files(&p, out);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_reference_bot() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_bot/data");
        let d = load(&dir).unwrap();
        assert_eq!(d.stories.len(), 3);
        assert_eq!(d.rules.len(), 15);
        assert_eq!(d.files.len(), 3);
        assert!(d.nlu.examples.len() > 50);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn missing_folder_is_empty_data() {
        let d = load(Path::new("/nonexistent/palaver/data")).unwrap();
        assert!(d.stories.is_empty() && d.rules.is_empty() && d.nlu.examples.is_empty());
    }

    #[test]
    fn one_file_may_hold_every_key_and_test_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("all.yml"),
            "nlu:\n- intent: greet\n  examples: |\n    - hi\nstories:\n- story: s\n  steps:\n  - intent: greet\n  - action: utter_greet\nrules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: utter_greet\nresponses:\n  utter_faq/a:\n  - text: A\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("test_stories.yml"),
            "stories:\n- story: t\n  steps:\n  - intent: nope\n",
        )
        .unwrap();
        let d = load(dir.path()).unwrap();
        assert_eq!(
            (d.stories.len(), d.rules.len(), d.nlu.examples.len()),
            (1, 1, 1)
        );
        assert!(d.responses.contains_key("utter_faq/a"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = TrainingData::from_yaml(
            "stories:\n- story: ok\n  steps:\n  - intent: a\n- story: bad\n  steps:\n  - intent: a\n  - actoin: x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("<string>:5:"), "{e}");
        assert!(
            e.contains("story 'bad'") && e.contains("step 2") && e.contains("actoin"),
            "{e}"
        );
    }
}
