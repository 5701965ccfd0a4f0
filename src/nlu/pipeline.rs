//! config.yml's `pipeline:` mapped to palaver's components.
//!
//! Each Rasa component name maps to the nearest palaver component; options palaver
//! understands are read, the rest keep palaver's defaults. Components palaver has no
//! equivalent for (pretrained language models, spaCy, Duckling, ...) are skipped with
//! one warning per name and process. A missing `pipeline:` is Rasa's default pipeline;
//! an empty one (`pipeline: []`) means no NLU: only `/intent` shortcuts are understood.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fallback::FallbackConfig;
use super::features::{Analyzer, FeaturizerConfig, NgramConfig};
use super::intent::ClassifierConfig;
use super::mlp::MlpConfig;
use super::regex_entities::RegexExtractorConfig;
use super::selector::SelectorConfig;

/// The entity tagger's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggerConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Name reported as the entities' `extractor` (the Rasa component it stands for).
    pub extractor: String,
}

/// The NLU pipeline palaver runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// Sentence features.
    pub featurizer: FeaturizerConfig,
    /// The intent classifier, if any.
    pub classifier: Option<ClassifierConfig>,
    /// A feed-forward classifier averaged with the linear one (`DIETClassifier`,
    /// unless its `palaver_hidden_units` is 0).
    #[serde(default)]
    pub mlp: Option<MlpConfig>,
    /// The trained entity tagger, if any.
    pub tagger: Option<TaggerConfig>,
    /// `RegexEntityExtractor`, if listed.
    pub regex_extractor: Option<RegexExtractorConfig>,
    /// `EntitySynonymMapper`, if listed.
    pub synonyms: bool,
    /// `FallbackClassifier`, if listed.
    pub fallback: Option<FallbackConfig>,
    /// Intents ranked in `intent_ranking` (Rasa's `ranking_length`, 10).
    pub ranking_length: usize,
    /// `ResponseSelector`s, in pipeline order.
    #[serde(default)]
    pub selectors: Vec<SelectorConfig>,
}

impl PipelineConfig {
    /// Whether the pipeline does anything with free text.
    pub fn is_empty(&self) -> bool {
        self.classifier.is_none()
            && self.tagger.is_none()
            && self.regex_extractor.is_none()
            && self.selectors.is_empty()
    }
}

static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Logs a warning once per key for the life of the process.
pub fn warn_once(key: &str, message: &str) {
    let first = WARNED
        .lock()
        .map(|mut w| w.insert(key.to_owned()))
        .unwrap_or(true);
    if first {
        tracing::warn!("{message}");
    }
}

/// Rasa's default pipeline (`rasa init`'s config without a `pipeline:`).
fn default_pipeline() -> Vec<Value> {
    serde_json::from_str(
        r#"[{"name": "WhitespaceTokenizer"}, {"name": "RegexFeaturizer"},
            {"name": "LexicalSyntacticFeaturizer"}, {"name": "CountVectorsFeaturizer"},
            {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
            {"name": "DIETClassifier"}, {"name": "EntitySynonymMapper"},
            {"name": "ResponseSelector"},
            {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1}]"#,
    )
    .unwrap_or_default()
}

fn opt_usize(c: &Value, key: &str) -> Option<usize> {
    c.get(key).and_then(Value::as_u64).map(|v| v as usize)
}

fn opt_f64(c: &Value, key: &str) -> Option<f64> {
    c.get(key).and_then(Value::as_f64)
}

fn opt_bool(c: &Value, key: &str) -> Option<bool> {
    c.get(key).and_then(Value::as_bool)
}

/// `DIETClassifier`'s feed-forward part: `palaver_hidden_units` (0 turns it off),
/// `palaver_hidden_epochs`, `palaver_hidden_learning_rate`, `palaver_hidden_dropout`
/// and `palaver_hidden_weight` (its share of the averaged confidences).
fn mlp_config(c: &Value) -> Option<MlpConfig> {
    let d = MlpConfig::default();
    let hidden = opt_usize(c, "palaver_hidden_units").unwrap_or(d.hidden);
    if hidden == 0 {
        return None;
    }
    Some(MlpConfig {
        hidden,
        epochs: opt_usize(c, "palaver_hidden_epochs")
            .unwrap_or(d.epochs)
            .max(1),
        learning_rate: opt_f64(c, "palaver_hidden_learning_rate")
            .map_or(d.learning_rate, |v| v as f32),
        dropout: opt_f64(c, "palaver_hidden_dropout")
            .map_or(d.dropout, |v| v.clamp(0.0, 0.9) as f32),
        weight: opt_f64(c, "palaver_hidden_weight").map_or(d.weight, |v| v.clamp(0.0, 1.0) as f32),
        seed: d.seed,
    })
}

/// Maps config.yml (the whole file) to palaver's pipeline. Returns `None` when the
/// pipeline is empty. Unknown components are warned about once.
pub fn from_config(config: &Value) -> Option<PipelineConfig> {
    let items = match config.get("pipeline") {
        None | Some(Value::Null) => default_pipeline(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            warn_once(
                "pipeline:not-a-list",
                "config.yml: 'pipeline' is not a list; palaver uses Rasa's default pipeline",
            );
            default_pipeline()
        }
    };
    if items.is_empty() {
        return None;
    }
    let mut p = PipelineConfig {
        featurizer: FeaturizerConfig {
            ngrams: Vec::new(),
            patterns: false,
            min_df: 1,
        },
        classifier: None,
        mlp: None,
        tagger: None,
        regex_extractor: None,
        synonyms: false,
        fallback: None,
        ranking_length: 10,
        selectors: Vec::new(),
    };
    let mut seed = None;
    for c in &items {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| c.as_str())
            .unwrap_or_default();
        let short = name.rsplit('.').next().unwrap_or(name);
        match short {
            "WhitespaceTokenizer" => {}
            "SpacyTokenizer" | "MitieTokenizer" | "JiebaTokenizer" => warn_once(
                short,
                &format!("pipeline: {short} is not available in palaver; it tokenises on white space instead"),
            ),
            "CountVectorsFeaturizer" => {
                let analyzer = match c.get("analyzer").and_then(Value::as_str) {
                    Some("char") => Analyzer::Char,
                    Some("char_wb") => Analyzer::CharWb,
                    _ => Analyzer::Word,
                };
                let min = opt_usize(c, "min_ngram").unwrap_or(1).max(1);
                let max = opt_usize(c, "max_ngram").unwrap_or(1).max(min);
                p.featurizer.ngrams.push(NgramConfig {
                    analyzer,
                    min_ngram: min,
                    max_ngram: max,
                    lowercase: opt_bool(c, "lowercase").unwrap_or(true),
                    weight: opt_f64(c, "palaver_weight").unwrap_or(1.0) as f32,
                });
                if let Some(df) = opt_usize(c, "min_df") {
                    p.featurizer.min_df = p.featurizer.min_df.max(df);
                }
            }
            "RegexFeaturizer" => p.featurizer.patterns = true,
            // Its token features are part of the entity tagger.
            "LexicalSyntacticFeaturizer" => {}
            "DIETClassifier" | "CRFEntityExtractor" | "LogisticRegressionClassifier"
            | "SklearnIntentClassifier" | "MitieIntentClassifier" | "KeywordIntentClassifier" => {
                let intents = match short {
                    "CRFEntityExtractor" => false,
                    "DIETClassifier" => opt_bool(c, "intent_classification").unwrap_or(true),
                    _ => true,
                };
                let entities = match short {
                    "CRFEntityExtractor" => true,
                    "DIETClassifier" => opt_bool(c, "entity_recognition").unwrap_or(true),
                    _ => false,
                };
                if let Some(s) = c
                    .get("random_seed")
                    .or_else(|| c.get("random_state"))
                    .and_then(Value::as_u64)
                {
                    seed = Some(s);
                }
                if intents && p.classifier.is_none() {
                    let mut cc = ClassifierConfig::default();
                    if let Some(v) = opt_f64(c, "palaver_l2") {
                        cc.l2 = v as f32;
                    }
                    if let Some(v) = opt_usize(c, "palaver_epochs") {
                        cc.epochs = v;
                    }
                    if let Some(v) = opt_f64(c, "palaver_learning_rate") {
                        cc.learning_rate = v as f32;
                    }
                    if let Some(v) = opt_bool(c, "palaver_balanced") {
                        cc.balanced = v;
                    }
                    if let Some(Value::Object(m)) = c.get("palaver_class_weights") {
                        for (k, v) in m {
                            if let Some(w) = v.as_f64() {
                                cc.class_weights.insert(k.clone(), w as f32);
                            }
                        }
                    }
                    p.classifier = Some(cc);
                    if short == "DIETClassifier" {
                        p.mlp = mlp_config(c);
                    }
                }
                if let Some(n) = opt_usize(c, "ranking_length") {
                    p.ranking_length = n;
                }
                if entities && p.tagger.is_none() {
                    p.tagger = Some(TaggerConfig {
                        epochs: 10,
                        extractor: short.to_owned(),
                    });
                }
            }
            "RegexEntityExtractor" => {
                let d = RegexExtractorConfig::default();
                p.regex_extractor = Some(RegexExtractorConfig {
                    case_sensitive: opt_bool(c, "case_sensitive").unwrap_or(d.case_sensitive),
                    use_lookup_tables: opt_bool(c, "use_lookup_tables")
                        .unwrap_or(d.use_lookup_tables),
                    use_regexes: opt_bool(c, "use_regexes").unwrap_or(d.use_regexes),
                    use_word_boundaries: opt_bool(c, "use_word_boundaries")
                        .unwrap_or(d.use_word_boundaries),
                });
            }
            "EntitySynonymMapper" => p.synonyms = true,
            "FallbackClassifier" => {
                let d = FallbackConfig::default();
                p.fallback = Some(FallbackConfig {
                    threshold: opt_f64(c, "threshold").unwrap_or(d.threshold),
                    ambiguity_threshold: opt_f64(c, "ambiguity_threshold")
                        .unwrap_or(d.ambiguity_threshold),
                });
            }
            "ResponseSelector" => {
                let mut sc = SelectorConfig {
                    retrieval_intent: c
                        .get("retrieval_intent")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    ..SelectorConfig::default()
                };
                if let Some(n) = opt_usize(c, "ranking_length") {
                    sc.ranking_length = n;
                }
                if let Some(s) = c.get("random_seed").and_then(Value::as_u64) {
                    sc.classifier.seed = s;
                }
                if opt_bool(c, "use_text_as_label") == Some(true) {
                    warn_once(
                        "ResponseSelector:use_text_as_label",
                        "pipeline: ResponseSelector's use_text_as_label is not used by palaver; it learns the response keys",
                    );
                }
                p.selectors.push(sc);
            }
            "" => warn_once("pipeline:nameless", "pipeline: a component without a name is ignored"),
            other => warn_once(
                other,
                &format!("pipeline: {other} has no palaver equivalent and is skipped"),
            ),
        }
    }
    if p.featurizer.ngrams.is_empty() {
        p.featurizer.ngrams = FeaturizerConfig::default().ngrams;
    }
    if let (Some(s), Some(c)) = (seed, p.classifier.as_mut()) {
        c.seed = s;
    }
    if let (Some(s), Some(m)) = (seed, p.mlp.as_mut()) {
        m.seed = s;
    }
    if p.is_empty() {
        return None;
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_reference_pipeline() {
        let c = json!({"pipeline": [
            {"name": "WhitespaceTokenizer"}, {"name": "RegexFeaturizer"},
            {"name": "LexicalSyntacticFeaturizer"}, {"name": "CountVectorsFeaturizer"},
            {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
            {"name": "DIETClassifier", "epochs": 60, "entity_recognition": false, "random_seed": 42},
            {"name": "EntitySynonymMapper"}, {"name": "LanguageModelFeaturizer"}]});
        let p = from_config(&c).unwrap();
        assert_eq!(p.featurizer.ngrams.len(), 2);
        assert_eq!(p.featurizer.ngrams[1].analyzer, Analyzer::CharWb);
        assert_eq!(p.featurizer.ngrams[1].max_ngram, 4);
        assert!(p.featurizer.patterns && p.synonyms);
        assert_eq!(p.classifier.as_ref().map(|c| c.seed), Some(42));
        assert!(p.tagger.is_none() && p.fallback.is_none());
        assert!(p.selectors.is_empty());
        // DIETClassifier: the hidden-layer network too, seeded like the rest.
        assert_eq!(p.mlp.as_ref().map(|m| (m.hidden, m.seed)), Some((256, 42)));
    }

    #[test]
    fn hidden_layer_options() {
        let p = from_config(&json!({"pipeline": [{"name": "DIETClassifier",
            "palaver_hidden_units": 64, "palaver_hidden_epochs": 3,
            "palaver_hidden_weight": 2.0, "palaver_hidden_dropout": 0.1}]}))
        .unwrap();
        let m = p.mlp.unwrap();
        assert_eq!((m.hidden, m.epochs, m.weight), (64, 3, 1.0));
        assert!((m.dropout - 0.1).abs() < 1e-6);
        let off = from_config(
            &json!({"pipeline": [{"name": "DIETClassifier", "palaver_hidden_units": 0}]}),
        );
        assert!(off.unwrap().mlp.is_none());
        let linear = from_config(&json!({"pipeline": [{"name": "LogisticRegressionClassifier"}]}));
        assert!(linear.unwrap().mlp.is_none());
    }

    #[test]
    fn maps_response_selectors() {
        let p = from_config(&json!({"pipeline": [{"name": "DIETClassifier"},
            {"name": "ResponseSelector", "retrieval_intent": "faq", "ranking_length": 3,
             "random_seed": 7},
            {"name": "ResponseSelector"}]}))
        .unwrap();
        assert_eq!(p.selectors.len(), 2);
        assert_eq!(p.selectors[0].key(), "faq");
        assert_eq!(p.selectors[0].ranking_length, 3);
        assert_eq!(p.selectors[0].classifier.seed, 7);
        assert_eq!(p.selectors[1].key(), "default");
        assert_eq!(p.selectors[1].ranking_length, 10);
        // Rasa's default pipeline has one default selector.
        let p = from_config(&json!({})).unwrap();
        assert_eq!(p.selectors, [SelectorConfig::default()]);
    }

    #[test]
    fn default_and_empty_pipelines() {
        let p = from_config(&json!({"policies": []})).unwrap();
        assert_eq!(p.fallback, Some(FallbackConfig::default()));
        assert_eq!(
            p.tagger.as_ref().map(|t| t.extractor.as_str()),
            Some("DIETClassifier")
        );
        assert!(from_config(&json!({"pipeline": []})).is_none());
        let p = from_config(&json!({"pipeline": [{"name": "CRFEntityExtractor"},
            {"name": "FallbackClassifier", "threshold": 0.7}]}))
        .unwrap();
        assert!(p.classifier.is_none());
        assert_eq!(p.fallback.map(|f| f.threshold), Some(0.7));
        assert_eq!(
            p.tagger.map(|t| t.extractor),
            Some("CRFEntityExtractor".into())
        );
    }
}
