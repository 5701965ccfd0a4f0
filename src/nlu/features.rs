//! Sparse sentence features: what Rasa's `CountVectorsFeaturizer` (word and character
//! n-grams) and `RegexFeaturizer` (regexes, lookup tables) give the intent classifier.
//!
//! palaver weighs counts as TF-IDF (sub-linear term frequency, smoothed IDF) and
//! L2-normalises each block (words, characters, patterns) on its own, so short and long
//! texts and the three kinds of evidence are on one scale for a linear model. The
//! vocabulary is learned from the training examples; n-grams never seen in training
//! are ignored at prediction time, as Rasa does (without its OOV token).

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::tokenizer::Token;
use crate::training_data::nlu::{LookupTable, RegexFeature};

/// A sparse vector: sorted feature indices and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVec {
    /// Feature indices, ascending, unique.
    pub idx: Vec<u32>,
    /// Values, one per index.
    pub val: Vec<f32>,
}

impl SparseVec {
    /// Non-zero entries.
    pub fn len(&self) -> usize {
        self.idx.len()
    }

    /// Whether the vector is all zeros.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// A vector from `(index, value)` pairs in ascending index order (for tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(u32, f32)]) -> SparseVec {
        SparseVec {
            idx: pairs.iter().map(|p| p.0).collect(),
            val: pairs.iter().map(|p| p.1).collect(),
        }
    }
}

/// What the n-gram featurizers extract (Rasa's `CountVectorsFeaturizer` options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NgramConfig {
    /// `word`, `char` or `char_wb`.
    pub analyzer: Analyzer,
    /// Smallest n.
    pub min_ngram: usize,
    /// Largest n.
    pub max_ngram: usize,
    /// Lower-case before counting (Rasa's default: true).
    pub lowercase: bool,
    /// Scale of the block's unit vector (palaver's `palaver_weight`, default 1).
    #[serde(default = "one")]
    pub weight: f32,
}

fn one() -> f32 {
    1.0
}

/// Rasa's `analyzer` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Analyzer {
    /// Word n-grams of the tokens.
    Word,
    /// Character n-grams of the whole text.
    Char,
    /// Character n-grams within each word, padded with spaces.
    CharWb,
}

/// Settings of the sentence featurizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturizerConfig {
    /// The n-gram blocks, one per `CountVectorsFeaturizer`.
    pub ngrams: Vec<NgramConfig>,
    /// Regex and lookup-table features (`RegexFeaturizer`).
    pub patterns: bool,
    /// Features seen in fewer training examples are dropped.
    pub min_df: usize,
}

impl Default for FeaturizerConfig {
    fn default() -> Self {
        FeaturizerConfig {
            ngrams: vec![
                NgramConfig {
                    analyzer: Analyzer::Word,
                    min_ngram: 1,
                    max_ngram: 2,
                    lowercase: true,
                    weight: 1.0,
                },
                NgramConfig {
                    analyzer: Analyzer::CharWb,
                    min_ngram: 2,
                    max_ngram: 5,
                    lowercase: true,
                    weight: 1.0,
                },
            ],
            patterns: true,
            min_df: 1,
        }
    }
}

/// A compiled regex or lookup table.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The regex or lookup name.
    pub name: String,
    /// The compiled pattern.
    pub regex: Regex,
    /// Whether it came from a lookup table.
    pub lookup: bool,
}

/// Compiles the regexes (as written, case-sensitive, like Rasa) and lookup tables (as
/// case-insensitive alternatives of whole words). Invalid regexes are reported and left
/// out.
pub fn compile_patterns(
    regexes: &[RegexFeature],
    lookups: &[LookupTable],
    warnings: &mut Vec<String>,
) -> Vec<Pattern> {
    let mut out = Vec::new();
    for r in regexes {
        match Regex::new(&r.pattern) {
            Ok(regex) => out.push(Pattern {
                name: r.name.clone(),
                regex,
                lookup: false,
            }),
            Err(e) => warnings.push(format!(
                "regex '{}' ({}) is not a valid pattern and is ignored: {e}",
                r.name, r.pattern
            )),
        }
    }
    for l in lookups {
        let mut elements: Vec<&str> = l
            .elements
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .collect();
        if elements.is_empty() {
            continue;
        }
        // Longest first, so that "new york city" wins over "new york".
        elements.sort_by_key(|e| std::cmp::Reverse(e.chars().count()));
        let alternatives: Vec<String> = elements.iter().map(|e| regex::escape(e)).collect();
        let pattern = format!(r"(?:^|\b|\W)({})(?:\b|\W|$)", alternatives.join("|"));
        match RegexBuilder::new(&pattern)
            .case_insensitive(true)
            .size_limit(1 << 26)
            .build()
        {
            Ok(regex) => out.push(Pattern {
                name: l.name.clone(),
                regex,
                lookup: true,
            }),
            Err(e) => warnings.push(format!(
                "lookup table '{}' could not be compiled and is ignored: {e}",
                l.name
            )),
        }
    }
    out
}

/// Match spans (code points) of a pattern in `text`.
pub fn pattern_matches(p: &Pattern, text: &str) -> Vec<(usize, usize)> {
    let to_cp = |byte: usize| text[..byte].chars().count();
    let mut out = Vec::new();
    if p.lookup {
        for c in p.regex.captures_iter(text) {
            if let Some(m) = c.get(1) {
                out.push((to_cp(m.start()), to_cp(m.end())));
            }
        }
    } else {
        for m in p.regex.find_iter(text) {
            if m.end() > m.start() {
                out.push((to_cp(m.start()), to_cp(m.end())));
            }
        }
    }
    out
}

/// The raw feature strings of one block with their counts.
fn block_terms(cfg: &NgramConfig, text: &str, tokens: &[Token], out: &mut HashMap<String, f32>) {
    let words: Vec<String> = tokens
        .iter()
        .map(|t| {
            if cfg.lowercase {
                t.lower()
            } else {
                t.text.clone()
            }
        })
        .collect();
    let lo = cfg.min_ngram.max(1);
    let hi = cfg.max_ngram.max(lo);
    match cfg.analyzer {
        Analyzer::Word => {
            for n in lo..=hi {
                for w in words.windows(n) {
                    *out.entry(format!("w{n}:{}", w.join(" "))).or_default() += 1.0;
                }
            }
        }
        Analyzer::CharWb => {
            for w in &words {
                let padded: Vec<char> = std::iter::once(' ')
                    .chain(w.chars())
                    .chain(std::iter::once(' '))
                    .collect();
                char_ngrams(&padded, lo, hi, 'b', out);
            }
        }
        Analyzer::Char => {
            let t = if cfg.lowercase {
                text.to_lowercase()
            } else {
                text.to_owned()
            };
            let chars: Vec<char> = t
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .collect();
            char_ngrams(&chars, lo, hi, 'c', out);
        }
    }
}

fn char_ngrams(chars: &[char], lo: usize, hi: usize, tag: char, out: &mut HashMap<String, f32>) {
    for n in lo..=hi {
        if chars.len() < n {
            break;
        }
        for w in chars.windows(n) {
            let mut s = String::with_capacity(n + 3);
            s.push(tag);
            s.push(':');
            s.extend(w.iter());
            *out.entry(s).or_default() += 1.0;
        }
    }
}

/// The largest IDF (at least 1).
pub fn max_idf(idf: &[f32]) -> f32 {
    idf.iter().copied().fold(1.0, f32::max)
}

/// A fitted sentence featurizer: vocabulary and IDF weights.
#[derive(Debug, Clone, Default)]
pub struct Featurizer {
    /// Its settings.
    pub config: FeaturizerConfig,
    /// Feature string → index.
    pub vocab: HashMap<String, u32>,
    /// IDF per index.
    pub idf: Vec<f32>,
    /// Block of each index (0.. n-gram blocks, then patterns).
    pub block: Vec<u8>,
    /// The IDF an unseen feature gets: that of the rarest seen one.
    pub oov_idf: f32,
}

impl Featurizer {
    /// Raw per-block terms of one text.
    fn terms(
        &self,
        text: &str,
        tokens: &[Token],
        patterns: &[Pattern],
    ) -> Vec<HashMap<String, f32>> {
        let mut blocks = Vec::with_capacity(self.config.ngrams.len() + 1);
        for cfg in &self.config.ngrams {
            let mut m = HashMap::new();
            block_terms(cfg, text, tokens, &mut m);
            blocks.push(m);
        }
        let mut m = HashMap::new();
        if self.config.patterns {
            for p in patterns {
                if !pattern_matches(p, text).is_empty() {
                    let kind = if p.lookup { "l" } else { "r" };
                    m.insert(format!("{kind}:{}", p.name), 1.0);
                }
            }
        }
        blocks.push(m);
        blocks
    }

    /// Learns the vocabulary and IDF from training texts and returns their vectors.
    pub fn fit(
        config: FeaturizerConfig,
        texts: &[(&str, Vec<Token>)],
        patterns: &[Pattern],
    ) -> (Featurizer, Vec<SparseVec>) {
        let mut f = Featurizer {
            config,
            ..Featurizer::default()
        };
        let all: Vec<Vec<HashMap<String, f32>>> = texts
            .iter()
            .map(|(t, toks)| f.terms(t, toks, patterns))
            .collect();
        let mut df: HashMap<(u8, &str), usize> = HashMap::new();
        for blocks in &all {
            for (b, m) in blocks.iter().enumerate() {
                for k in m.keys() {
                    *df.entry((b as u8, k.as_str())).or_default() += 1;
                }
            }
        }
        let mut keys: Vec<((u8, &str), usize)> = df
            .into_iter()
            .filter(|(_, n)| *n >= f.config.min_df.max(1))
            .collect();
        // Sorted so that indices do not depend on hash order: training is deterministic.
        keys.sort();
        let n = texts.len() as f32;
        for (i, ((b, k), d)) in keys.into_iter().enumerate() {
            f.vocab.insert(k.to_owned(), i as u32);
            f.idf.push(((1.0 + n) / (1.0 + d as f32)).ln() + 1.0);
            f.block.push(b);
        }
        f.oov_idf = max_idf(&f.idf);
        let vectors = all.iter().map(|blocks| f.weigh(blocks)).collect();
        (f, vectors)
    }

    fn weigh(&self, blocks: &[HashMap<String, f32>]) -> SparseVec {
        let oov_idf = self.oov_idf;
        let mut entries: Vec<(u32, f32)> = Vec::new();
        for (b, m) in blocks.iter().enumerate() {
            let scale = self.config.ngrams.get(b).map_or(1.0, |c| c.weight);
            let first = entries.len();
            let mut unknown = 0.0f32;
            for (k, c) in m {
                match self.vocab.get(k) {
                    Some(&i) => entries.push((i, (1.0 + c.ln()) * self.idf[i as usize])),
                    None => unknown += ((1.0 + c.ln()) * oov_idf).powi(2),
                }
            }
            // In index order, so that the norm does not depend on hash order.
            entries[first..].sort_by_key(|e| e.0);
            // Unknown n-grams count in the norm: a text made mostly of words never seen
            // in training gets a short vector, so the classifier is unsure about it
            // instead of trusting the one n-gram it happens to know.
            let norm: f32 =
                (entries[first..].iter().map(|(_, v)| v * v).sum::<f32>() + unknown).sqrt();
            if norm > 0.0 {
                for e in &mut entries[first..] {
                    e.1 *= scale / norm;
                }
            }
        }
        entries.sort_by_key(|e| e.0);
        SparseVec {
            idx: entries.iter().map(|e| e.0).collect(),
            val: entries.iter().map(|e| e.1).collect(),
        }
    }

    /// The feature vector of a text.
    pub fn transform(&self, text: &str, tokens: &[Token], patterns: &[Pattern]) -> SparseVec {
        self.weigh(&self.terms(text, tokens, patterns))
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.idf.len()
    }

    /// Approximate heap size in bytes.
    pub fn memory(&self) -> usize {
        self.vocab.keys().map(|k| k.capacity() + 40).sum::<usize>() + self.idf.len() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer::tokenize;
    use super::*;

    #[test]
    fn vocabulary_and_weights() {
        let texts = ["hello there", "hello world", "goodbye world"];
        let data: Vec<(&str, Vec<Token>)> = texts.iter().map(|t| (*t, tokenize(t))).collect();
        let (f, xs) = Featurizer::fit(FeaturizerConfig::default(), &data, &[]);
        assert!(f.vocab.contains_key("w1:hello") && f.vocab.contains_key("w2:hello there"));
        assert!(f.vocab.contains_key("b: hel"));
        // Each block is unit length: two blocks (words, chars) -> squared norm 2.
        let sq: f32 = xs[0].val.iter().map(|v| v * v).sum();
        assert!((sq - 2.0).abs() < 1e-4, "{sq}");
        let x = f.transform("HELLO unseen", &tokenize("HELLO unseen"), &[]);
        assert!(x.idx.contains(&f.vocab["w1:hello"]));
        assert!(x.idx.windows(2).all(|w| w[0] < w[1]));
        // Deterministic: the same data gives the same indices.
        let (g, _) = Featurizer::fit(FeaturizerConfig::default(), &data, &[]);
        assert_eq!(f.vocab, g.vocab);
    }

    #[test]
    fn patterns_and_lookups() {
        let mut w = Vec::new();
        let p = compile_patterns(
            &[
                RegexFeature {
                    name: "zip".into(),
                    pattern: r"\d{5}".into(),
                },
                RegexFeature {
                    name: "bad".into(),
                    pattern: "(".into(),
                },
            ],
            &[LookupTable {
                name: "city".into(),
                elements: vec!["New York".into(), "Köln".into()],
            }],
            &mut w,
        );
        assert_eq!((p.len(), w.len()), (2, 1));
        assert_eq!(pattern_matches(&p[0], "zip 12345"), [(4, 9)]);
        assert_eq!(pattern_matches(&p[1], "fly to new york now"), [(7, 15)]);
        assert_eq!(pattern_matches(&p[1], "über köln"), [(5, 9)]);
        assert!(pattern_matches(&p[1], "newyorker").is_empty());
    }
}
