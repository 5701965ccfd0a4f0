//! `palaver test nlu`: how well a trained pipeline understands held-out examples, as
//! `rasa test nlu` reports it: intent accuracy, per-intent precision/recall/F1, the
//! most frequent confusions, and exact-match entity F1 per extractor. With an
//! out-of-scope intent named, also in-scope accuracy and out-of-scope recall (the
//! CLINC150 measures: a prediction of the out-of-scope intent or of `nlu_fallback`
//! counts as out of scope). With a `ResponseSelector` and test examples of retrieval
//! intents (`faq/ask_name`), also the response selection accuracy and per-key scores
//! (Rasa's response selection report). It also times each parse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::fallback::NLU_FALLBACK;
use super::model::{base_intent, NluModel};
use super::pipeline::PipelineConfig;
use super::selector::{split_intent_response_key, DEFAULT_SELECTOR};
use crate::training_data::NluData;

/// Precision, recall and F1 of one intent or extractor.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scores {
    /// Correct predictions / predictions.
    pub precision: f64,
    /// Correct predictions / gold.
    pub recall: f64,
    /// Harmonic mean.
    pub f1: f64,
    /// Gold items.
    pub support: usize,
}

impl Scores {
    fn from_counts(tp: usize, predicted: usize, gold: usize) -> Scores {
        let precision = if predicted == 0 {
            0.0
        } else {
            tp as f64 / predicted as f64
        };
        let recall = if gold == 0 {
            0.0
        } else {
            tp as f64 / gold as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Scores {
            precision,
            recall,
            f1,
            support: gold,
        }
    }
}

/// One kind of mistake: `count` examples of `gold` predicted as `predicted`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Confusion {
    /// The annotated intent.
    pub gold: String,
    /// The predicted intent.
    pub predicted: String,
    /// How often.
    pub count: usize,
    /// One example text.
    pub example: String,
}

/// Out-of-scope measures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutOfScope {
    /// The out-of-scope intent.
    pub intent: String,
    /// Accuracy on the examples of the other intents.
    pub in_scope_accuracy: f64,
    /// Share of out-of-scope examples predicted as out of scope (or `nlu_fallback`).
    pub recall: f64,
    /// In-scope examples.
    pub in_scope: usize,
    /// Out-of-scope examples.
    pub out_of_scope: usize,
    /// What a `FallbackClassifier` threshold would give on these examples: in-scope
    /// accuracy and out-of-scope recall for thresholds 0, 0.05, ..., 0.95 applied to the
    /// top intent's confidence (read from `intent_ranking`, before any fallback).
    pub thresholds: Vec<ThresholdPoint>,
}

/// One point of the threshold curve (see [`OutOfScope::thresholds`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdPoint {
    /// The threshold.
    pub threshold: f64,
    /// In-scope accuracy with it.
    pub in_scope_accuracy: f64,
    /// Out-of-scope recall with it.
    pub recall: f64,
}

/// How well the response selectors pick the response keys of retrieval intents
/// (`rasa test nlu`'s response selection report): each test example of `faq/ask_name`
/// is scored by the selector of `faq`, else the `default` one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResponseSelection {
    /// Test examples with a response key.
    pub examples: usize,
    /// Share whose predicted `intent_response_key` is the annotated one.
    pub accuracy: f64,
    /// Per response key.
    pub keys: BTreeMap<String, Scores>,
}

/// The response key the parse's selectors predict for retrieval intent `base`.
fn predicted_response_key(parsed: &crate::events::JsonMap, base: &str) -> Option<String> {
    let rs = parsed.get("response_selector")?;
    rs.get(base)
        .or_else(|| rs.get(DEFAULT_SELECTOR))?
        .get("response")?
        .get("intent_response_key")?
        .as_str()
        .map(str::to_owned)
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Test examples.
    pub examples: usize,
    /// Intent accuracy.
    pub accuracy: f64,
    /// Per intent.
    pub intents: BTreeMap<String, Scores>,
    /// Macro-averaged F1 over intents.
    pub macro_f1: f64,
    /// Confusions, most frequent first (at most 50).
    pub confusions: Vec<Confusion>,
    /// Exact-match entity scores per extractor (entity, role, group, span and value
    /// must all match).
    pub entities: BTreeMap<String, Scores>,
    /// Out-of-scope measures, when an out-of-scope intent was named.
    pub out_of_scope: Option<OutOfScope>,
    /// Response selection, when the pipeline has a `ResponseSelector` and the test
    /// data retrieval intents.
    pub response_selection: Option<ResponseSelection>,
    /// Parse latency percentiles in milliseconds (p50, p99), one parse at a time.
    pub parse_ms_p50: f64,
    /// See `parse_ms_p50`.
    pub parse_ms_p99: f64,
    /// Training time in seconds.
    pub training_seconds: f64,
    /// Approximate size of the trained model in bytes.
    pub model_bytes: usize,
}

fn entity_key(e: &Value) -> String {
    let s = |k: &str| match e.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    format!(
        "{}|{}|{}|{}|{}|{}",
        s("start"),
        s("end"),
        s("entity"),
        s("role"),
        s("group"),
        s("value")
    )
}

/// Evaluates `model` on `test`. `out_of_scope` names the out-of-scope intent, if any.
pub fn evaluate(model: &NluModel, test: &NluData, out_of_scope: Option<&str>) -> Report {
    let mut correct = 0usize;
    let mut per_gold: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_pred: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_tp: BTreeMap<String, usize> = BTreeMap::new();
    let mut confusions: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(test.examples.len());
    let mut ent: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let extractor_types = model.extractor_entity_types();
    let (mut ins, mut ins_ok, mut oos, mut oos_ok) = (0usize, 0usize, 0usize, 0usize);
    // Response selection: gold key -> count, predicted key -> count, key -> correct.
    let mut rs_gold: BTreeMap<String, usize> = BTreeMap::new();
    let mut rs_pred: BTreeMap<String, usize> = BTreeMap::new();
    let mut rs_tp: BTreeMap<String, usize> = BTreeMap::new();
    // (top intent is the gold one, top intent is out of scope, gold is out of scope,
    // top confidence), before any fallback.
    let mut tops: Vec<(bool, bool, bool, f64)> = Vec::new();
    for ex in &test.examples {
        let started = Instant::now();
        let parsed = model.parse(&ex.text);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let gold = base_intent(&ex.intent).to_owned();
        let predicted = parsed
            .get("intent")
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("None")
            .to_owned();
        *per_gold.entry(gold.clone()).or_default() += 1;
        *per_pred.entry(predicted.clone()).or_default() += 1;
        if gold == predicted {
            correct += 1;
            *per_tp.entry(gold.clone()).or_default() += 1;
        } else {
            let c = confusions
                .entry((gold.clone(), predicted.clone()))
                .or_insert_with(|| (0, ex.text.clone()));
            c.0 += 1;
        }
        if let Some(o) = out_of_scope {
            let top = parsed
                .get("intent_ranking")
                .and_then(Value::as_array)
                .and_then(|r| {
                    r.iter()
                        .find(|i| i.get("name").and_then(Value::as_str) != Some(NLU_FALLBACK))
                })
                .map(|i| {
                    (
                        i.get("name").and_then(Value::as_str).unwrap_or_default(),
                        i.get("confidence").and_then(Value::as_f64).unwrap_or(0.0),
                    )
                });
            if let Some((name, conf)) = top {
                tops.push((name == gold, name == o, gold == o, conf));
            }
            if gold == o {
                oos += 1;
                if predicted == o || predicted == NLU_FALLBACK {
                    oos_ok += 1;
                }
            } else {
                ins += 1;
                if predicted == gold {
                    ins_ok += 1;
                }
            }
        }
        if let (base, Some(key)) = split_intent_response_key(&ex.intent) {
            if !model.selectors.is_empty() {
                let predicted =
                    predicted_response_key(&parsed, base).unwrap_or_else(|| "None".into());
                *rs_gold.entry(key.to_owned()).or_default() += 1;
                *rs_pred.entry(predicted.clone()).or_default() += 1;
                if predicted == key {
                    *rs_tp.entry(predicted).or_default() += 1;
                }
            }
        }
        let predicted_entities = parsed
            .get("entities")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (extractor, types) in &extractor_types {
            let gold_keys: BTreeSet<String> = ex
                .entities
                .iter()
                .filter(|e| types.contains(&e.entity))
                .map(|e| entity_key(&e.to_json()))
                .collect();
            let pred_keys: BTreeSet<String> = predicted_entities
                .iter()
                .filter(|e| e.get("extractor").and_then(Value::as_str) == Some(extractor))
                .map(entity_key)
                .collect();
            let c = ent.entry(extractor.clone()).or_default();
            c.0 += gold_keys.intersection(&pred_keys).count();
            c.1 += pred_keys.len();
            c.2 += gold_keys.len();
        }
    }
    let n = test.examples.len();
    let intents: BTreeMap<String, Scores> = per_gold
        .keys()
        .chain(per_pred.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|i| {
            (
                i.clone(),
                Scores::from_counts(
                    per_tp.get(i).copied().unwrap_or(0),
                    per_pred.get(i).copied().unwrap_or(0),
                    per_gold.get(i).copied().unwrap_or(0),
                ),
            )
        })
        .collect();
    let gold_intents: Vec<&Scores> = per_gold.keys().filter_map(|k| intents.get(k)).collect();
    let macro_f1 = if gold_intents.is_empty() {
        0.0
    } else {
        gold_intents.iter().map(|s| s.f1).sum::<f64>() / gold_intents.len() as f64
    };
    let mut confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((gold, predicted), (count, example))| Confusion {
            gold,
            predicted,
            count,
            example,
        })
        .collect();
    confusions.sort_by(|a, b| b.count.cmp(&a.count).then(a.gold.cmp(&b.gold)));
    confusions.truncate(50);
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Report {
        examples: n,
        accuracy: ratio(correct, n),
        intents,
        macro_f1,
        confusions,
        entities: ent
            .into_iter()
            .map(|(k, (tp, p, g))| (k, Scores::from_counts(tp, p, g)))
            .collect(),
        out_of_scope: out_of_scope.map(|o| OutOfScope {
            intent: o.to_owned(),
            in_scope_accuracy: ratio(ins_ok, ins),
            recall: ratio(oos_ok, oos),
            thresholds: (0..20)
                .map(|step| {
                    let t = step as f64 * 0.05;
                    let ok = tops.iter().filter(|x| !x.2 && x.0 && x.3 >= t).count();
                    let found = tops.iter().filter(|x| x.2 && (x.1 || x.3 < t)).count();
                    ThresholdPoint {
                        threshold: t,
                        in_scope_accuracy: ratio(ok, ins),
                        recall: ratio(found, oos),
                    }
                })
                .collect(),
            in_scope: ins,
            out_of_scope: oos,
        }),
        response_selection: (!rs_gold.is_empty()).then(|| {
            let examples: usize = rs_gold.values().sum();
            let keys = rs_gold
                .keys()
                .chain(rs_pred.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|k| {
                    let get = |m: &BTreeMap<String, usize>| m.get(k).copied().unwrap_or(0);
                    (
                        k.clone(),
                        Scores::from_counts(get(&rs_tp), get(&rs_pred), get(&rs_gold)),
                    )
                })
                .collect();
            ResponseSelection {
                examples,
                accuracy: ratio(rs_tp.values().sum(), examples),
                keys,
            }
        }),
        parse_ms_p50: pct(0.5),
        parse_ms_p99: pct(0.99),
        training_seconds: model.training_seconds,
        model_bytes: model.memory(),
    }
}

/// A `FallbackClassifier` threshold chosen by cross-validation on the training data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdChoice {
    /// The threshold.
    pub threshold: f64,
    /// Folds.
    pub folds: usize,
    /// In-scope accuracy on the held-out folds with this threshold.
    pub cv_in_scope_accuracy: f64,
    /// Out-of-scope recall on the held-out folds with this threshold.
    pub cv_out_of_scope_recall: f64,
    /// Seconds the cross-validation took.
    pub seconds: f64,
}

/// Picks the `FallbackClassifier` threshold by `folds`-fold cross-validation on `data`
/// (stratified by intent, deterministic): the one that maximises in-scope accuracy plus
/// out-of-scope recall, or, with `min_recall`, the one with the best in-scope accuracy
/// whose out-of-scope recall reaches `min_recall`. Only training data is looked at:
/// the test set stays unseen.
pub fn pick_threshold(
    pipeline: &PipelineConfig,
    data: &NluData,
    folds: usize,
    out_of_scope: &str,
    min_recall: Option<f64>,
) -> Option<ThresholdChoice> {
    let started = Instant::now();
    let folds = folds.max(2);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let fold_of: Vec<usize> = data
        .examples
        .iter()
        .map(|e| {
            let n = seen.entry(base_intent(&e.intent).to_owned()).or_default();
            *n += 1;
            (*n - 1) % folds
        })
        .collect();
    let mut config = pipeline.clone();
    config.fallback = None;
    config.tagger = None;
    // (top confidence, top is right, gold is out of scope, top is out of scope)
    let mut held_out: Vec<(f64, bool, bool, bool)> = Vec::new();
    for k in 0..folds {
        let mut train = data.clone();
        train.examples = data
            .examples
            .iter()
            .zip(&fold_of)
            .filter(|(_, f)| **f != k)
            .map(|(e, _)| e.clone())
            .collect();
        let model = NluModel::train_pipeline(config.clone(), &train)?;
        for (e, _) in data.examples.iter().zip(&fold_of).filter(|(_, f)| **f == k) {
            let tokens = super::tokenizer::tokenize(&e.text);
            let ranking = model.rank_intents(&e.text, &tokens);
            let (top, conf) = ranking.first().cloned().unwrap_or_default();
            let gold = base_intent(&e.intent);
            held_out.push((conf, top == gold, gold == out_of_scope, top == out_of_scope));
        }
    }
    let ins = held_out.iter().filter(|h| !h.2).count().max(1) as f64;
    let oos = held_out.iter().filter(|h| h.2).count().max(1) as f64;
    let mut best: Option<ThresholdChoice> = None;
    for step in 0..100 {
        let t = step as f64 / 100.0;
        let acc = held_out.iter().filter(|h| !h.2 && h.1 && h.0 >= t).count() as f64 / ins;
        let rec = held_out.iter().filter(|h| h.2 && (h.3 || h.0 < t)).count() as f64 / oos;
        let better = match (&best, min_recall) {
            (_, Some(r)) if rec + 1e-9 < r => false,
            (None, _) => true,
            (Some(b), Some(_)) => acc > b.cv_in_scope_accuracy + 1e-9,
            (Some(b), None) => acc + rec > b.cv_in_scope_accuracy + b.cv_out_of_scope_recall + 1e-9,
        };
        if better {
            best = Some(ThresholdChoice {
                threshold: t,
                folds,
                cv_in_scope_accuracy: acc,
                cv_out_of_scope_recall: rec,
                seconds: 0.0,
            });
        }
    }
    best.map(|mut b| {
        b.seconds = started.elapsed().as_secs_f64();
        b
    })
}

/// Appends a precision/recall/F1/support table, one row per name, to `s`; `heading`
/// names the first column.
fn scores_table(s: &mut String, heading: &str, rows: &BTreeMap<String, Scores>) {
    let _ = writeln!(
        s,
        "{:<32} {:>9} {:>9} {:>9} {:>8}",
        heading, "precision", "recall", "f1", "support"
    );
    for (name, sc) in rows {
        let _ = writeln!(
            s,
            "{:<32} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            name, sc.precision, sc.recall, sc.f1, sc.support
        );
    }
}

impl Report {
    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "NLU evaluation on {} examples", self.examples);
        let _ = writeln!(
            s,
            "intent accuracy  {:.2}%   macro F1 {:.3}",
            self.accuracy * 100.0,
            self.macro_f1
        );
        if let Some(o) = &self.out_of_scope {
            let _ = writeln!(
                s,
                "in-scope accuracy {:.2}% ({} examples)   out-of-scope recall ({}) {:.2}% ({} examples)",
                o.in_scope_accuracy * 100.0,
                o.in_scope,
                o.intent,
                o.recall * 100.0,
                o.out_of_scope
            );
            let _ = writeln!(
                s,
                "with a FallbackClassifier threshold of (in-scope accuracy / out-of-scope recall):"
            );
            for chunk in o.thresholds.chunks(5) {
                let line: Vec<String> = chunk
                    .iter()
                    .map(|p| {
                        format!(
                            "{:.2}: {:.2}/{:.1}",
                            p.threshold,
                            p.in_scope_accuracy * 100.0,
                            p.recall * 100.0
                        )
                    })
                    .collect();
                let _ = writeln!(s, "  {}", line.join("   "));
            }
        }
        let _ = writeln!(
            s,
            "training {:.2} s   parse p50 {:.3} ms  p99 {:.3} ms   model ~{:.1} MiB",
            self.training_seconds,
            self.parse_ms_p50,
            self.parse_ms_p99,
            self.model_bytes as f64 / (1024.0 * 1024.0)
        );
        s.push('\n');
        scores_table(&mut s, "intent", &self.intents);
        if let Some(r) = &self.response_selection {
            let _ = writeln!(
                s,
                "\nresponse selection accuracy {:.2}% ({} examples)",
                r.accuracy * 100.0,
                r.examples
            );
            scores_table(&mut s, "response key", &r.keys);
        }
        if !self.entities.is_empty() {
            s.push('\n');
            scores_table(&mut s, "entity extractor", &self.entities);
        }
        if !self.confusions.is_empty() {
            let _ = writeln!(s, "\nconfusions (gold -> predicted, count, example):");
            for c in self.confusions.iter().take(20) {
                let _ = writeln!(
                    s,
                    "  {} -> {}  {}  \"{}\"",
                    c.gold, c.predicted, c.count, c.example
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_data::TrainingData;
    use serde_json::json;

    #[test]
    fn scores_a_small_model() {
        let train = TrainingData::from_yaml(
            "nlu:\n- intent: greet\n  examples: |\n    - hello\n    - hi\n    - hey there\n- intent: bye\n  examples: |\n    - bye\n    - goodbye\n    - see you\n- intent: oos\n  examples: |\n    - what is the weather\n- intent: inform\n  examples: |\n    - my name is [Ada](name)\n    - call me [Alan](name)\n    - i am [Grace](name)\n",
        )
        .unwrap();
        let test = TrainingData::from_yaml(
            "nlu:\n- intent: greet\n  examples: |\n    - hello there\n- intent: bye\n  examples: |\n    - goodbye then\n- intent: oos\n  examples: |\n    - hello weather\n- intent: inform\n  examples: |\n    - my name is [Linus](name)\n",
        )
        .unwrap();
        let config = json!({"pipeline": [{"name": "DIETClassifier"}]});
        let m = NluModel::train(&config, &train.nlu).unwrap();
        let r = evaluate(&m, &test.nlu, Some("oos"));
        assert_eq!(r.examples, 4);
        let o = r.out_of_scope.clone().unwrap();
        assert_eq!((o.in_scope, o.out_of_scope), (3, 1));
        // The threshold curve: at 0 it is the plain prediction; at 0.95 nearly every
        // prediction falls back, so recall is full and accuracy can only drop.
        assert_eq!(o.thresholds.len(), 20);
        assert_eq!(o.thresholds[0].in_scope_accuracy, o.in_scope_accuracy);
        let last = o.thresholds.last().unwrap();
        assert_eq!(last.recall, 1.0);
        assert!(last.in_scope_accuracy <= o.in_scope_accuracy);
        assert!(r.table().contains("0.95: "));
        assert!(r.accuracy >= 0.5, "{}", r.table());
        assert_eq!(r.intents["greet"].support, 1);
        assert!(r.entities.contains_key("DIETClassifier"));
        assert_eq!(r.entities["DIETClassifier"].support, 1);
        assert!(r.table().contains("intent accuracy"));
        let pipeline = crate::nlu::pipeline::from_config(&config).unwrap();
        let c = pick_threshold(&pipeline, &train.nlu, 2, "oos", None).unwrap();
        assert_eq!(c.folds, 2);
        assert!((0.0..1.0).contains(&c.threshold));
        assert!(c.cv_out_of_scope_recall >= 0.0 && c.cv_in_scope_accuracy <= 1.0);
        assert_eq!(
            Scores::from_counts(1, 2, 4),
            Scores {
                precision: 0.5,
                recall: 0.25,
                f1: 1.0 / 3.0,
                support: 4
            }
        );
    }

    #[test]
    fn scores_response_selection() {
        let train = TrainingData::from_yaml(
            "nlu:\n- intent: greet\n  examples: |\n    - hello\n    - hi\n- intent: faq/ask_name\n  examples: |\n    - what is your name\n    - who are you\n- intent: faq/ask_age\n  examples: |\n    - how old are you\n    - what is your age\n",
        )
        .unwrap();
        let test = TrainingData::from_yaml(
            "nlu:\n- intent: faq/ask_name\n  examples: |\n    - your name please\n- intent: faq/ask_age\n  examples: |\n    - how old\n- intent: greet\n  examples: |\n    - hello you\n",
        )
        .unwrap();
        let with = json!({"pipeline": [{"name": "DIETClassifier"}, {"name": "ResponseSelector"}]});
        let m = NluModel::train(&with, &train.nlu).unwrap();
        let r = evaluate(&m, &test.nlu, None);
        let rs = r.response_selection.clone().unwrap();
        assert_eq!(rs.examples, 2);
        assert_eq!(rs.accuracy, 1.0, "{}", r.table());
        assert_eq!(rs.keys["faq/ask_name"].support, 1);
        assert!(r.table().contains("response selection accuracy 100.00%"));
        // The intent is scored by its base intent.
        assert_eq!(r.intents["faq"].support, 2);
        // No selector in the pipeline: no response selection report.
        let without = json!({"pipeline": [{"name": "DIETClassifier"}]});
        let m = NluModel::train(&without, &train.nlu).unwrap();
        assert!(evaluate(&m, &test.nlu, None).response_selection.is_none());
    }
}
