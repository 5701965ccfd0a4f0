//! A trained NLU pipeline: what `rasa train nlu` produces, learned in-process from
//! the project's NLU data, and the parse of a text with it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::cache;
use super::fallback::NLU_FALLBACK;
use super::features::{compile_patterns, Featurizer, Pattern, SparseVec};
use super::intent::{class_weights, ranked, LinearClassifier};
use super::mlp::MlpClassifier;
use super::pipeline::{self, PipelineConfig};
use super::regex_entities::RegexEntityExtractor;
use super::selector::{self, ResponseSelector};
use super::synonyms::SynonymMapper;
use super::tagger::{EntityTagger, TaggedExample};
use super::tokenizer::{tokenize, Token};
use crate::events::JsonMap;
use crate::training_data::NluData;

/// A trained pipeline.
#[derive(Debug, Clone)]
pub struct NluModel {
    /// The pipeline it was trained with.
    pub config: PipelineConfig,
    /// Regexes and lookup tables (features and tagger inputs).
    pub patterns: Vec<Pattern>,
    /// Sentence features.
    pub featurizer: Featurizer,
    /// Intent classifier (absent when the pipeline has none or the data no intents).
    pub classifier: Option<LinearClassifier>,
    /// The feed-forward classifier averaged with `classifier` (same classes).
    pub mlp: Option<MlpClassifier>,
    /// Entity tagger (absent when the pipeline has none or the data no annotations).
    pub tagger: Option<EntityTagger>,
    /// `RegexEntityExtractor`.
    pub regex_extractor: Option<RegexEntityExtractor>,
    /// `EntitySynonymMapper`.
    pub synonyms: Option<SynonymMapper>,
    /// `ResponseSelector`s, in pipeline order.
    pub selectors: Vec<ResponseSelector>,
    /// The responses of retrieval intents the selectors report (`NluData::responses`).
    pub responses: Map<String, Value>,
    /// Things worth telling the user about the training (invalid regexes, ...).
    pub warnings: Vec<String>,
    /// Seconds spent training.
    pub training_seconds: f64,
}

/// The base intent of a retrieval intent (`faq/ask_name` -> `faq`).
pub fn base_intent(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

impl NluModel {
    /// Trains the pipeline of `config` (config.yml) on `data`. `None` when the pipeline
    /// is empty or there is nothing to learn.
    pub fn train(config: &Value, data: &NluData) -> Option<NluModel> {
        let pipeline = pipeline::from_config(config)?;
        Self::train_pipeline(pipeline, data)
    }

    /// Trains the pipeline of `config` for the project in `dir`, or loads the model
    /// cached by an earlier start when neither data nor pipeline changed (see
    /// [`super::cache`]). `None` when the pipeline is empty or there is nothing to learn.
    pub fn load_or_train(config: &Value, data: &NluData, dir: &Path) -> Option<NluModel> {
        let pipeline = pipeline::from_config(config)?;
        if data.examples.is_empty() {
            return None;
        }
        let file = cache::path(dir, &cache::key(&pipeline, data));
        if let Some(learned) = cache::load(&file, &pipeline) {
            tracing::debug!(file = %file.display(), "NLU model loaded from the cache");
            return Some(Self::assemble(pipeline, data, learned));
        }
        let model = Self::train_pipeline(pipeline, data)?;
        cache::store(
            &file,
            &cache::Learned {
                featurizer: model.featurizer.clone(),
                classifier: model.classifier.clone(),
                mlp: model.mlp.clone(),
                tagger: model.tagger.clone(),
                selectors: model
                    .selectors
                    .iter()
                    .map(|s| s.classifier.clone())
                    .collect(),
                training_seconds: model.training_seconds,
            },
        );
        Some(model)
    }

    /// The model from its learned parts, rebuilding the cheap ones from `data`.
    fn assemble(config: PipelineConfig, data: &NluData, learned: cache::Learned) -> NluModel {
        let mut warnings = Vec::new();
        let patterns = Self::patterns(&config, data, &mut warnings);
        let regex_extractor = config
            .regex_extractor
            .as_ref()
            .map(|rc| RegexEntityExtractor::train(data, rc, &mut warnings));
        let synonyms = config.synonyms.then(|| SynonymMapper::new(&data.synonyms));
        for w in &warnings {
            tracing::warn!("NLU: {w}");
        }
        let selectors = config
            .selectors
            .iter()
            .zip(learned.selectors)
            .map(|(sc, c)| ResponseSelector::from_parts(sc.clone(), c, data))
            .collect();
        NluModel {
            config,
            patterns,
            featurizer: learned.featurizer,
            classifier: learned.classifier,
            mlp: learned.mlp,
            tagger: learned.tagger,
            regex_extractor,
            synonyms,
            selectors,
            responses: data.responses.clone(),
            warnings,
            training_seconds: learned.training_seconds,
        }
    }

    fn patterns(
        config: &PipelineConfig,
        data: &NluData,
        warnings: &mut Vec<String>,
    ) -> Vec<Pattern> {
        if config.featurizer.patterns || config.tagger.is_some() {
            compile_patterns(&data.regexes, &data.lookups, warnings)
        } else {
            Vec::new()
        }
    }

    /// Trains a mapped pipeline on `data`.
    pub fn train_pipeline(config: PipelineConfig, data: &NluData) -> Option<NluModel> {
        if data.examples.is_empty() {
            return None;
        }
        let started = Instant::now();
        let mut warnings = Vec::new();
        let patterns = Self::patterns(&config, data, &mut warnings);
        let large = data.examples.len() >= 2000;
        if large {
            tracing::info!(
                examples = data.examples.len(),
                "NLU: featurizing the training data"
            );
        }
        let tokens: Vec<Vec<Token>> = data.examples.iter().map(|e| tokenize(&e.text)).collect();
        let texts: Vec<(&str, Vec<Token>)> = data
            .examples
            .iter()
            .zip(&tokens)
            .map(|(e, t)| (e.text.as_str(), t.clone()))
            .collect();
        let (featurizer, xs) = Featurizer::fit(config.featurizer.clone(), &texts, &patterns);
        let (classifier, mlp) = match config.classifier.as_ref() {
            None => (None, None),
            Some(cc) => {
                let mut classes: Vec<String> = Vec::new();
                let ys: Vec<usize> = data
                    .examples
                    .iter()
                    .map(|e| {
                        let name = base_intent(&e.intent);
                        match classes.iter().position(|c| c == name) {
                            Some(i) => i,
                            None => {
                                classes.push(name.to_owned());
                                classes.len() - 1
                            }
                        }
                    })
                    .collect();
                if large {
                    tracing::info!(
                        intents = classes.len(),
                        features = featurizer.dim(),
                        epochs = cc.epochs,
                        hidden_units = config.mlp.as_ref().map_or(0, |m| m.hidden),
                        "NLU: training the intent classifier"
                    );
                }
                let dim = featurizer.dim();
                // The two models learn independently: one thread each.
                std::thread::scope(|s| {
                    let mlp = config.mlp.as_ref().filter(|_| classes.len() > 1).map(|mc| {
                        let weights = class_weights(&classes, &ys, cc);
                        let (classes, xs, ys) = (classes.clone(), &xs, &ys);
                        s.spawn(move || {
                            let progress = |epoch: usize, epochs: usize| {
                                if large {
                                    tracing::info!(epoch, epochs, "NLU: hidden layer epoch done");
                                }
                            };
                            MlpClassifier::train(classes, dim, xs, ys, &weights, mc, &progress)
                        })
                    });
                    let linear = LinearClassifier::train(classes.clone(), dim, &xs, &ys, cc);
                    let mlp = mlp.and_then(|handle| handle.join().ok());
                    (Some(linear), mlp)
                })
            }
        };
        let selectors: Vec<ResponseSelector> = config
            .selectors
            .iter()
            .map(|sc| {
                if large {
                    tracing::info!(selector = sc.key(), "NLU: training the response selector");
                }
                ResponseSelector::train(sc.clone(), data, &xs, featurizer.dim())
            })
            .collect();
        let tagger = config.tagger.as_ref().and_then(|tc| {
            if large {
                tracing::info!("NLU: training the entity tagger");
            }
            let examples: Vec<TaggedExample<'_>> = data
                .examples
                .iter()
                .zip(&tokens)
                .map(|(e, t)| TaggedExample {
                    text: &e.text,
                    tokens: t.clone(),
                    entities: &e.entities,
                })
                .collect();
            let seed = config.classifier.as_ref().map(|c| c.seed).unwrap_or(42);
            EntityTagger::train(&examples, &patterns, tc.epochs, seed, &tc.extractor)
        });
        let regex_extractor = config
            .regex_extractor
            .as_ref()
            .map(|rc| RegexEntityExtractor::train(data, rc, &mut warnings));
        let synonyms = config.synonyms.then(|| SynonymMapper::new(&data.synonyms));
        let training_seconds = started.elapsed().as_secs_f64();
        if large {
            tracing::info!(seconds = training_seconds, "NLU: trained");
        }
        for w in &warnings {
            tracing::warn!("NLU: {w}");
        }
        Some(NluModel {
            config,
            patterns,
            featurizer,
            classifier,
            mlp,
            tagger,
            regex_extractor,
            synonyms,
            selectors,
            responses: data.responses.clone(),
            warnings,
            training_seconds,
        })
    }

    /// The ranked intents of a text: `(name, confidence)`, best first, all of them.
    pub fn rank_intents(&self, text: &str, tokens: &[Token]) -> Vec<(String, f64)> {
        if self.classifier.is_none() {
            return Vec::new();
        }
        self.rank_intents_of(&self.featurizer.transform(text, tokens, &self.patterns))
    }

    /// The ranked intents of a text's features (see [`NluModel::rank_intents`]).
    fn rank_intents_of(&self, x: &SparseVec) -> Vec<(String, f64)> {
        let Some(c) = &self.classifier else {
            return Vec::new();
        };
        if c.classes.len() == 1 {
            return vec![(c.classes[0].clone(), 1.0)];
        }
        let mut p = c.predict_proba(x);
        if let (Some(m), Some(mc)) = (&self.mlp, &self.config.mlp) {
            let q = m.predict_proba(x);
            if q.len() == p.len() {
                let a = mc.weight;
                for (pc, qc) in p.iter_mut().zip(q) {
                    *pc = (1.0 - a) * *pc + a * qc;
                }
            }
        }
        ranked(p)
            .into_iter()
            .map(|(i, p)| (c.classes[i].clone(), p as f64))
            .collect()
    }

    /// The entities of a text from every extractor, synonyms applied.
    pub fn entities(&self, text: &str, tokens: &[Token]) -> Vec<Value> {
        let mut entities = Vec::new();
        if let Some(t) = &self.tagger {
            entities.extend(t.extract(text, tokens, &self.patterns));
        }
        if let Some(r) = &self.regex_extractor {
            entities.extend(r.extract(text));
        }
        if let Some(s) = &self.synonyms {
            s.process(&mut entities);
        }
        entities
    }

    /// Rasa's parse data of a text: `text`, `intent`, `entities`, `text_tokens`,
    /// `intent_ranking` (top `ranking_length`, after `nlu_fallback` when it applies),
    /// `response_selector` when the pipeline has a `ResponseSelector`.
    pub fn parse(&self, text: &str) -> JsonMap {
        let tokens = tokenize(text);
        // The sentence features, computed once for the intent classifier and the
        // trained response selectors (none when nothing needs them or no tokens).
        let needs_features =
            self.classifier.is_some() || self.selectors.iter().any(|s| s.classifier.is_some());
        let x = (!tokens.is_empty() && needs_features)
            .then(|| self.featurizer.transform(text, &tokens, &self.patterns));
        let mut ranking = x
            .as_ref()
            .map_or_else(Vec::new, |x| self.rank_intents_of(x));
        ranking.truncate(self.config.ranking_length.max(1));
        let mut intent = match ranking.first() {
            Some((name, conf)) => json!({"name": name, "confidence": conf}),
            None => json!({"name": null, "confidence": 0.0}),
        };
        let mut ranking_json: Vec<Value> = ranking
            .iter()
            .map(|(n, c)| json!({"name": n, "confidence": c}))
            .collect();
        if let Some(f) = &self.config.fallback {
            let confs: Vec<f64> = ranking.iter().map(|r| r.1).collect();
            if f.should_fallback(&confs) {
                intent = json!({"name": NLU_FALLBACK, "confidence": f.threshold});
                ranking_json.insert(0, intent.clone());
            }
        }
        let entities = if tokens.is_empty() {
            Vec::new()
        } else {
            self.entities(text, &tokens)
        };
        let mut p = JsonMap::new();
        p.insert("text".into(), json!(text));
        p.insert("intent".into(), intent);
        p.insert("entities".into(), Value::Array(entities));
        p.insert(
            "text_tokens".into(),
            Value::Array(tokens.iter().map(|t| json!([t.start, t.end])).collect()),
        );
        if self.classifier.is_some() {
            p.insert("intent_ranking".into(), Value::Array(ranking_json));
        }
        if !self.selectors.is_empty() {
            p.insert(
                "response_selector".into(),
                selector::response_selector_json(&self.selectors, x.as_ref(), &self.responses),
            );
        }
        p
    }

    /// The entity types each extractor can produce, by extractor name.
    pub fn extractor_entity_types(&self) -> Vec<(String, BTreeSet<String>)> {
        let mut out = Vec::new();
        if let Some(t) = &self.tagger {
            out.push((
                t.extractor.clone(),
                t.labels.iter().map(|l| l.entity.clone()).collect(),
            ));
        }
        if let Some(r) = &self.regex_extractor {
            out.push(("RegexEntityExtractor".to_owned(), r.entity_types()));
        }
        out
    }

    /// Approximate heap size of the trained model in bytes.
    pub fn memory(&self) -> usize {
        self.featurizer.memory()
            + self.classifier.as_ref().map_or(0, LinearClassifier::memory)
            + self.mlp.as_ref().map_or(0, MlpClassifier::memory)
            + self.tagger.as_ref().map_or(0, EntityTagger::memory)
            + self
                .selectors
                .iter()
                .filter_map(|s| s.classifier.as_ref())
                .map(LinearClassifier::memory)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_data::TrainingData;

    const DATA: &str = r#"nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey
- intent: goodbye
  examples: |
    - bye
    - goodbye
    - see you later
    - good night
- intent: fly
  examples: |
    - fly from [Berlin]{"entity": "city", "role": "from"} to [Paris]{"entity": "city", "role": "to"}
    - a flight to [Rome]{"entity": "city", "role": "to"}
    - book a flight from [NYC]{"entity": "city", "role": "from", "value": "New York"} to [Oslo]{"entity": "city", "role": "to"}
    - i want to fly to [Lisbon]{"entity": "city", "role": "to"}
- intent: faq/ask_name
  examples: |
    - what is your name
    - who are you
- lookup: city
  examples: |
    - Madrid
    - Paris
"#;

    fn model(pipeline: &str) -> NluModel {
        let d = TrainingData::from_yaml(DATA).unwrap();
        let config: Value = serde_json::from_str(pipeline).unwrap();
        NluModel::train(&config, &d.nlu).unwrap()
    }

    #[test]
    fn parses_free_text() {
        let m = model(
            r#"{"pipeline": [{"name": "WhitespaceTokenizer"}, {"name": "CountVectorsFeaturizer"},
            {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
            {"name": "DIETClassifier"}, {"name": "RegexEntityExtractor"}, {"name": "EntitySynonymMapper"}]}"#,
        );
        let p = m.parse("hello!");
        assert_eq!(p["intent"]["name"], "greet");
        assert_eq!(p["text_tokens"], json!([[0, 5]]));
        let ranking = p["intent_ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), 4);
        assert_eq!(ranking[0], p["intent"]);
        let sum: f64 = ranking
            .iter()
            .map(|r| r["confidence"].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert_eq!(m.parse("who are you")["intent"]["name"], "faq");
        let p = m.parse("fly from nyc to Madrid");
        assert_eq!(p["intent"]["name"], "fly");
        let ents = p["entities"].as_array().unwrap();
        let diet: Vec<&Value> = ents
            .iter()
            .filter(|e| e["extractor"] == "DIETClassifier")
            .collect();
        assert_eq!(diet.len(), 2, "{ents:?}");
        assert_eq!(diet[0]["value"], "New York");
        assert_eq!(diet[0]["processors"], json!(["EntitySynonymMapper"]));
        assert_eq!(diet[1]["role"], "to");
        assert!(ents
            .iter()
            .any(|e| e["extractor"] == "RegexEntityExtractor" && e["value"] == "Madrid"));
    }

    #[test]
    fn response_selectors_in_the_parse() {
        // Rasa's default pipeline (no `pipeline:`) has a default ResponseSelector.
        let mut d = TrainingData::from_yaml(DATA).unwrap();
        d.nlu
            .responses
            .insert("utter_faq/ask_name".into(), json!([{"text": "palaver"}]));
        let m = NluModel::train(&json!({}), &d.nlu).unwrap();
        let p = m.parse("who are you");
        assert_eq!(p["intent"]["name"], "faq");
        let rs = &p["response_selector"];
        assert_eq!(rs["all_retrieval_intents"], json!(["faq"]));
        assert_eq!(
            rs["default"]["response"],
            json!({"responses": [{"text": "palaver"}], "confidence": 1.0,
                   "intent_response_key": "faq/ask_name", "utter_action": "utter_faq/ask_name"})
        );
        assert_eq!(
            rs["default"]["ranking"],
            json!([{"confidence": 1.0, "intent_response_key": "faq/ask_name"}])
        );
        // No tokens: no prediction.
        assert_eq!(
            m.parse("  ")["response_selector"]["default"]["response"]["utter_action"],
            "utter_None"
        );
        // Data without retrieval intents: Rasa's untrained selector output.
        let plain = TrainingData::from_yaml(
            "nlu:\n- intent: a\n  examples: |\n    - x\n- intent: b\n  examples: |\n    - y\n",
        )
        .unwrap();
        let m = NluModel::train(&json!({}), &plain.nlu).unwrap();
        assert_eq!(
            m.parse("x")["response_selector"],
            json!({"all_retrieval_intents": [], "default": {"response": {"responses": null,
                "confidence": 0.0, "intent_response_key": null, "utter_action": "utter_None"},
                "ranking": []}})
        );
        // No ResponseSelector in the pipeline: no key.
        let m =
            NluModel::train(&json!({"pipeline": [{"name": "DIETClassifier"}]}), &d.nlu).unwrap();
        assert!(m.parse("who are you").get("response_selector").is_none());
    }

    #[test]
    fn cached_model_parses_like_the_trained_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = TrainingData::from_yaml(DATA).unwrap();
        let config = json!({"pipeline": [{"name": "DIETClassifier"}, {"name": "RegexEntityExtractor"},
            {"name": "ResponseSelector"}]});
        let trained = NluModel::load_or_train(&config, &d.nlu, dir.path()).unwrap();
        assert!(trained.selectors[0].classifier.is_some());
        let files: Vec<_> = std::fs::read_dir(dir.path().join(".palaver/nlu"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
        let loaded = NluModel::load_or_train(&config, &d.nlu, dir.path()).unwrap();
        for text in ["hello", "fly from Oslo to Madrid", "who are you"] {
            assert_eq!(trained.parse(text), loaded.parse(text));
        }
        // Other data: another cache file, not the old model, which is removed.
        let mut d2 = d.nlu.clone();
        d2.examples.truncate(8);
        let other = NluModel::load_or_train(&config, &d2, dir.path()).unwrap();
        assert_eq!(other.classifier.as_ref().unwrap().classes.len(), 2);
        let names: Vec<_> = std::fs::read_dir(dir.path().join(".palaver/nlu"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let expected = cache::path(dir.path(), &cache::key(&other.config, &d2));
        assert_eq!(names, [expected.file_name().unwrap().to_owned()]);
        // Back to the first data: trained again and cached again.
        let _ = NluModel::load_or_train(&config, &d.nlu, dir.path()).unwrap();
        // A corrupt file is ignored: garbage, or a vocabulary index out of range.
        let key = cache::key(&trained.config, &d.nlu);
        let file = cache::path(dir.path(), &key);
        let good = std::fs::read(&file).unwrap();
        let mut bad = good.clone();
        // The first vocabulary entry's index sits after magic, seconds, count, key.
        let count: [u8; 8] = bad[22..30].try_into().unwrap();
        let klen = u64::from_le_bytes(bad[30..38].try_into().unwrap()) as usize;
        bad[38 + klen..46 + klen].copy_from_slice(&count);
        assert!(cache::decode(&bad, &trained.config).is_none());
        assert!(cache::decode(&good, &trained.config).is_some());
        std::fs::write(&file, b"garbage").unwrap();
        let again = NluModel::load_or_train(&config, &d.nlu, dir.path()).unwrap();
        assert_eq!(again.parse("hello"), trained.parse("hello"));
    }

    #[test]
    fn fallback_and_determinism() {
        let cfg = r#"{"pipeline": [{"name": "DIETClassifier", "entity_recognition": false},
            {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1}]}"#;
        let m = model(cfg);
        assert_eq!(m.parse("hello")["intent"]["name"], "greet");
        // Nothing known: every intent about equally likely.
        let p = m.parse("qwxz vbnm");
        assert_eq!(
            p["intent"],
            json!({"name": "nlu_fallback", "confidence": 0.3})
        );
        assert_eq!(p["intent_ranking"][0]["name"], "nlu_fallback");
        assert_eq!(p["intent_ranking"].as_array().map(Vec::len), Some(5));
        assert_eq!(p["entities"], json!([]));
        assert_eq!(
            model(cfg).parse("see you")["intent_ranking"],
            m.parse("see you")["intent_ranking"]
        );
        let empty = m.parse("  ");
        assert_eq!(empty["intent"]["name"], Value::Null);
        assert!(NluModel::train(
            &json!({"pipeline": []}),
            &TrainingData::from_yaml(DATA).unwrap().nlu
        )
        .is_none());
    }
}
