//! The trained entity extractor: an averaged perceptron that tags tokens with BILOU
//! labels (`B`egin, `I`nside, `L`ast, `U`nit, `O`utside), learned from the
//! `[text](entity)` / `[text]{"entity": .., "role": .., "group": ..}` annotations.
//!
//! It stands where Rasa's `DIETClassifier` (entity part) or `CRFEntityExtractor` stand,
//! and is named after whichever the pipeline lists. Token features are those of Rasa's
//! `LexicalSyntacticFeaturizer` (word, prefix, suffix, shape, neighbours) plus regex and
//! lookup-table matches and the previous tag. A label is the entity with its role and
//! group, so roles and groups are learned with the entity. Decoding is greedy, left to
//! right, restricted to valid BILOU sequences; the confidence of a label is the softmax
//! of its score among the allowed labels, and an entity's is the mean over its tokens.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::features::{pattern_matches, Pattern};
use super::rng::Rng;
use super::tokenizer::Token;
use crate::training_data::NluEntity;

/// What an entity label is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityLabel {
    /// Entity type.
    pub entity: String,
    /// Role, if any.
    pub role: Option<String>,
    /// Group, if any.
    pub group: Option<String>,
}

/// Position of a token in an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pos {
    B,
    I,
    L,
    U,
}

/// A trained tagger.
#[derive(Debug, Clone, Default)]
pub struct EntityTagger {
    /// Entity labels (without position); tag `0` is `O`, then four per label.
    pub labels: Vec<EntityLabel>,
    /// Feature string → index.
    pub vocab: HashMap<String, u32>,
    /// Averaged weights, `w[f * tags + t]`.
    pub w: Vec<f32>,
    /// The name reported as `extractor`.
    pub extractor: String,
}

fn tag_of(label: usize, pos: Pos) -> usize {
    1 + label * 4
        + match pos {
            Pos::B => 0,
            Pos::I => 1,
            Pos::L => 2,
            Pos::U => 3,
        }
}

fn split_tag(tag: usize) -> Option<(usize, Pos)> {
    if tag == 0 {
        return None;
    }
    let l = (tag - 1) / 4;
    let pos = match (tag - 1) % 4 {
        0 => Pos::B,
        1 => Pos::I,
        2 => Pos::L,
        _ => Pos::U,
    };
    Some((l, pos))
}

/// Whether `tag` may follow `prev` in a BILOU sequence.
fn allowed(prev: usize, tag: usize) -> bool {
    let open = match split_tag(prev) {
        Some((l, Pos::B | Pos::I)) => Some(l),
        _ => None,
    };
    match (open, split_tag(tag)) {
        (Some(l), Some((m, Pos::I | Pos::L))) => l == m,
        (Some(_), _) => false,
        (None, Some((_, Pos::I | Pos::L))) => false,
        (None, _) => true,
    }
}

fn shape(w: &str) -> String {
    let mut s = String::new();
    for c in w.chars() {
        let k = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_ascii_digit() {
            'd'
        } else {
            c
        };
        if !s.ends_with(k) || s.chars().rev().take_while(|&x| x == k).count() < 2 {
            s.push(k);
        }
    }
    s
}

/// Per-token features that do not depend on the previous tag.
fn token_features(text: &str, tokens: &[Token], patterns: &[Pattern]) -> Vec<Vec<String>> {
    let lower: Vec<String> = tokens.iter().map(Token::lower).collect();
    let word = |i: isize| -> &str {
        if i < 0 {
            "<s>"
        } else {
            lower.get(i as usize).map(String::as_str).unwrap_or("</s>")
        }
    };
    let mut in_pattern: Vec<Vec<String>> = vec![Vec::new(); tokens.len()];
    for p in patterns {
        for (s, e) in pattern_matches(p, text) {
            for (i, t) in tokens.iter().enumerate() {
                if t.start < e && t.end > s {
                    let pos = if t.start <= s { "b" } else { "i" };
                    in_pattern[i].push(format!("pat={}:{pos}", p.name));
                }
            }
        }
    }
    let suffix = |w: &str, n: usize| -> String {
        let c: Vec<char> = w.chars().collect();
        c[c.len().saturating_sub(n)..].iter().collect()
    };
    let prefix = |w: &str, n: usize| -> String { w.chars().take(n).collect() };
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let i = i as isize;
            let w = word(i);
            let mut f = vec![
                "bias".to_owned(),
                format!("w={w}"),
                format!("p2={}", prefix(w, 2)),
                format!("p3={}", prefix(w, 3)),
                format!("s2={}", suffix(w, 2)),
                format!("s3={}", suffix(w, 3)),
                format!("shape={}", shape(&t.text)),
                format!("w-1={}", word(i - 1)),
                format!("w+1={}", word(i + 1)),
                format!("w-2={}", word(i - 2)),
                format!("w+2={}", word(i + 2)),
                format!("s3-1={}", suffix(word(i - 1), 3)),
                format!("s3+1={}", suffix(word(i + 1), 3)),
                format!("w-1,w={},{w}", word(i - 1)),
                format!("w,w+1={w},{}", word(i + 1)),
                format!("w-2,w-1={},{}", word(i - 2), word(i - 1)),
                format!("w+1,w+2={},{}", word(i + 1), word(i + 2)),
            ];
            if t.text.chars().next().is_some_and(char::is_uppercase) {
                f.push("title".into());
            }
            if t.text.chars().all(|c| c.is_ascii_digit()) {
                f.push("digits".into());
            }
            if i == 0 {
                f.push("first".into());
            }
            f.append(&mut in_pattern[i as usize]);
            f
        })
        .collect()
}

/// The BILOU tags of annotated entities over `tokens`.
fn gold_tags(tokens: &[Token], entities: &[NluEntity], labels: &[EntityLabel]) -> Vec<usize> {
    let mut tags = vec![0; tokens.len()];
    for e in entities {
        let label = EntityLabel {
            entity: e.entity.clone(),
            role: e.role.clone(),
            group: e.group.clone(),
        };
        let Some(l) = labels.iter().position(|x| *x == label) else {
            continue;
        };
        let covered: Vec<usize> = (0..tokens.len())
            .filter(|&i| tokens[i].start < e.end && tokens[i].end > e.start)
            .collect();
        if covered.iter().any(|&i| tags[i] != 0) {
            continue;
        }
        match covered.as_slice() {
            [] => {}
            [one] => tags[*one] = tag_of(l, Pos::U),
            [first, .., last] => {
                for &i in &covered {
                    tags[i] = tag_of(l, Pos::I);
                }
                tags[*first] = tag_of(l, Pos::B);
                tags[*last] = tag_of(l, Pos::L);
            }
        }
    }
    tags
}

/// One annotated sentence for training.
pub struct TaggedExample<'a> {
    /// The text.
    pub text: &'a str,
    /// Its tokens.
    pub tokens: Vec<Token>,
    /// Its annotations.
    pub entities: &'a [NluEntity],
}

impl EntityTagger {
    fn tags(&self) -> usize {
        1 + 4 * self.labels.len()
    }

    /// Trains on annotated sentences (`epochs` passes, shuffled with `seed`). Returns
    /// `None` when no example has an entity.
    pub fn train(
        examples: &[TaggedExample<'_>],
        patterns: &[Pattern],
        epochs: usize,
        seed: u64,
        extractor: &str,
    ) -> Option<EntityTagger> {
        let mut labels: Vec<EntityLabel> = examples
            .iter()
            .flat_map(|x| x.entities.iter())
            .map(|e| EntityLabel {
                entity: e.entity.clone(),
                role: e.role.clone(),
                group: e.group.clone(),
            })
            .collect();
        labels.sort();
        labels.dedup();
        if labels.is_empty() {
            return None;
        }
        let mut m = EntityTagger {
            labels,
            extractor: extractor.to_owned(),
            ..EntityTagger::default()
        };
        let n_tags = m.tags();
        let feats: Vec<Vec<Vec<String>>> = examples
            .iter()
            .map(|x| token_features(x.text, &x.tokens, patterns))
            .collect();
        let golds: Vec<Vec<usize>> = examples
            .iter()
            .map(|x| gold_tags(&x.tokens, x.entities, &m.labels))
            .collect();
        // Vocabulary in sorted order: indices do not depend on hash order.
        let mut names: Vec<String> = feats.iter().flatten().flatten().cloned().collect();
        for t in 0..n_tags {
            names.push(format!("prev={t}"));
        }
        names.sort();
        names.dedup();
        m.vocab = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, i as u32))
            .collect();
        let dim = m.vocab.len();
        let mut w = vec![0.0f32; dim * n_tags];
        let mut u = vec![0.0f32; dim * n_tags];
        let mut c = 1.0f32;
        let ids: Vec<Vec<Vec<u32>>> = feats
            .iter()
            .map(|s| s.iter().map(|f| m.ids(f)).collect())
            .collect();
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = Rng::new(seed);
        for _ in 0..epochs.max(1) {
            rng.shuffle(&mut order);
            for &s in &order {
                let mut prev = 0;
                for (i, f) in ids[s].iter().enumerate() {
                    let pf = m.vocab.get(&format!("prev={prev}")).copied();
                    let scores = score(&w, n_tags, f, pf);
                    let guess = best_allowed(&scores, prev);
                    let gold = golds[s][i];
                    if guess != gold {
                        for &fi in f.iter().chain(pf.iter()) {
                            let base = fi as usize * n_tags;
                            w[base + gold] += 1.0;
                            u[base + gold] += c;
                            w[base + guess] -= 1.0;
                            u[base + guess] -= c;
                        }
                    }
                    // Follow the gold path so later tokens learn from correct context.
                    prev = gold;
                    c += 1.0;
                }
            }
        }
        m.w = w.iter().zip(&u).map(|(w, u)| w - u / c).collect();
        Some(m)
    }

    fn ids(&self, feats: &[String]) -> Vec<u32> {
        feats
            .iter()
            .filter_map(|f| self.vocab.get(f).copied())
            .collect()
    }

    /// The entities in a tokenised text, in Rasa's JSON shape.
    pub fn extract(&self, text: &str, tokens: &[Token], patterns: &[Pattern]) -> Vec<Value> {
        let n_tags = self.tags();
        let feats = token_features(text, tokens, patterns);
        let mut tags = Vec::with_capacity(tokens.len());
        let mut confs = Vec::with_capacity(tokens.len());
        let mut prev = 0;
        for f in &feats {
            let ids = self.ids(f);
            let pf = self.vocab.get(&format!("prev={prev}")).copied();
            let scores = score(&self.w, n_tags, &ids, pf);
            let tag = best_allowed(&scores, prev);
            // Softmax over the allowed tags.
            let allowed_scores: Vec<f32> = (0..n_tags)
                .filter(|&t| allowed(prev, t))
                .map(|t| scores[t])
                .collect();
            let max = allowed_scores
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = allowed_scores.iter().map(|s| (s - max).exp()).sum();
            confs.push(((scores[tag] - max).exp() / sum) as f64);
            tags.push(tag);
            prev = tag;
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < tags.len() {
            let Some((l, pos)) = split_tag(tags[i]) else {
                i += 1;
                continue;
            };
            let mut j = i;
            if pos == Pos::B {
                while j + 1 < tags.len()
                    && matches!(split_tag(tags[j + 1]), Some((m, Pos::I | Pos::L)) if m == l)
                {
                    j += 1;
                    if split_tag(tags[j]).is_some_and(|(_, p)| p == Pos::L) {
                        break;
                    }
                }
            }
            let conf = confs[i..=j].iter().sum::<f64>() / (j - i + 1) as f64;
            out.push(self.entity_json(text, &tokens[i], &tokens[j], &self.labels[l], conf));
            i = j + 1;
        }
        out
    }

    fn entity_json(
        &self,
        text: &str,
        first: &Token,
        last: &Token,
        label: &EntityLabel,
        conf: f64,
    ) -> Value {
        let value: String = text
            .chars()
            .skip(first.start)
            .take(last.end - first.start)
            .collect();
        let mut e = Map::new();
        e.insert("entity".into(), json!(label.entity));
        e.insert("start".into(), json!(first.start));
        e.insert("end".into(), json!(last.end));
        e.insert("confidence_entity".into(), json!(conf));
        if let Some(r) = &label.role {
            e.insert("role".into(), json!(r));
            e.insert("confidence_role".into(), json!(conf));
        }
        if let Some(g) = &label.group {
            e.insert("group".into(), json!(g));
            e.insert("confidence_group".into(), json!(conf));
        }
        e.insert("value".into(), json!(value));
        e.insert("extractor".into(), json!(self.extractor));
        Value::Object(e)
    }

    /// Approximate heap size in bytes.
    pub fn memory(&self) -> usize {
        self.w.len() * 4 + self.vocab.keys().map(|k| k.capacity() + 40).sum::<usize>()
    }
}

fn score(w: &[f32], n_tags: usize, feats: &[u32], prev: Option<u32>) -> Vec<f32> {
    let mut s = vec![0.0f32; n_tags];
    for &f in feats.iter().chain(prev.iter()) {
        let base = f as usize * n_tags;
        for (t, st) in s.iter_mut().enumerate() {
            *st += w[base + t];
        }
    }
    s
}

fn best_allowed(scores: &[f32], prev: usize) -> usize {
    let mut best = None;
    for (t, &s) in scores.iter().enumerate() {
        if !allowed(prev, t) {
            continue;
        }
        match best {
            Some((_, bs)) if bs >= s => {}
            _ => best = Some((t, s)),
        }
    }
    best.map(|b| b.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer::tokenize;
    use super::*;
    use crate::training_data::nlu::parse_annotated;

    #[test]
    fn bilou_transitions() {
        let b = tag_of(0, Pos::B);
        assert!(allowed(0, b) && allowed(b, tag_of(0, Pos::L)));
        assert!(!allowed(b, 0) && !allowed(b, tag_of(1, Pos::I)));
        assert!(!allowed(0, tag_of(0, Pos::I)));
        assert_eq!(shape("Ada99"), "Xxxdd");
    }

    #[test]
    fn learns_entities_with_roles() {
        let raw = [
            r#"fly from [Berlin]{"entity": "city", "role": "from"} to [Paris]{"entity": "city", "role": "to"}"#,
            r#"a flight from [Rome]{"entity": "city", "role": "from"} to [New York]{"entity": "city", "role": "to"}"#,
            r#"from [Oslo]{"entity": "city", "role": "from"} to [Madrid]{"entity": "city", "role": "to"} please"#,
            r#"i want to go from [London]{"entity": "city", "role": "from"} to [Lisbon]{"entity": "city", "role": "to"}"#,
            "my name is [Ada](name)",
            "call me [Grace](name)",
            "my name is [Alan](name)",
            "hello there",
        ];
        let parsed: Vec<(String, Vec<NluEntity>)> =
            raw.iter().map(|r| parse_annotated(r)).collect();
        let ex: Vec<TaggedExample<'_>> = parsed
            .iter()
            .map(|(t, e)| TaggedExample {
                text: t,
                tokens: tokenize(t),
                entities: e,
            })
            .collect();
        let m = EntityTagger::train(&ex, &[], 10, 1, "DIETClassifier").unwrap();
        let text = "from Rome to Berlin";
        let ents = m.extract(text, &tokenize(text), &[]);
        assert_eq!(ents.len(), 2, "{ents:?}");
        assert_eq!(
            (ents[0]["value"].as_str(), ents[0]["role"].as_str()),
            (Some("Rome"), Some("from"))
        );
        assert_eq!(
            (ents[1]["value"].as_str(), ents[1]["role"].as_str()),
            (Some("Berlin"), Some("to"))
        );
        assert_eq!(ents[1]["start"], 13);
        assert_eq!(ents[1]["extractor"], "DIETClassifier");
        let text = "my name is Linus";
        let ents = m.extract(text, &tokenize(text), &[]);
        assert_eq!(ents[0]["entity"], "name");
        assert_eq!(ents[0]["value"], "Linus");
        let c = ents[0]["confidence_entity"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0);
        assert!(m
            .extract("hello there", &tokenize("hello there"), &[])
            .is_empty());
    }
}
