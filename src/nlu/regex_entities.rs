//! Rasa's `RegexEntityExtractor`: entities from the regexes and lookup tables whose
//! name is an entity annotated in the training data. Matching is case-insensitive
//! unless `case_sensitive`; lookup elements match as whole words when
//! `use_word_boundaries` (both Rasa's defaults). Entities carry no confidence.

use std::collections::BTreeSet;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::training_data::NluData;

/// `RegexEntityExtractor` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegexExtractorConfig {
    /// Match case.
    pub case_sensitive: bool,
    /// Use lookup tables.
    pub use_lookup_tables: bool,
    /// Use regexes.
    pub use_regexes: bool,
    /// Lookup elements match whole words only.
    pub use_word_boundaries: bool,
}

impl Default for RegexExtractorConfig {
    fn default() -> Self {
        RegexExtractorConfig {
            case_sensitive: false,
            use_lookup_tables: true,
            use_regexes: true,
            use_word_boundaries: true,
        }
    }
}

/// A trained extractor: one compiled pattern per entity regex or lookup table.
#[derive(Debug, Clone, Default)]
pub struct RegexEntityExtractor {
    patterns: Vec<(String, Regex)>,
}

impl RegexEntityExtractor {
    /// Compiles the patterns named after annotated entities. Invalid ones are reported.
    pub fn train(
        data: &NluData,
        cfg: &RegexExtractorConfig,
        warnings: &mut Vec<String>,
    ) -> RegexEntityExtractor {
        let entities: BTreeSet<&str> = data
            .examples
            .iter()
            .flat_map(|e| e.entities.iter().map(|x| x.entity.as_str()))
            .collect();
        let mut sources: Vec<(String, String)> = Vec::new();
        if cfg.use_regexes {
            for r in &data.regexes {
                if entities.contains(r.name.as_str()) {
                    sources.push((r.name.clone(), r.pattern.clone()));
                }
            }
        }
        if cfg.use_lookup_tables {
            for l in &data.lookups {
                if !entities.contains(l.name.as_str()) || l.elements.is_empty() {
                    continue;
                }
                let alts: Vec<String> = l
                    .elements
                    .iter()
                    .map(|e| {
                        let e = regex::escape(e.trim());
                        if cfg.use_word_boundaries {
                            format!(r"\b{e}\b")
                        } else {
                            e
                        }
                    })
                    .collect();
                sources.push((l.name.clone(), format!("({})", alts.join("|"))));
            }
        }
        let mut patterns = Vec::new();
        for (name, src) in sources {
            match RegexBuilder::new(&src)
                .case_insensitive(!cfg.case_sensitive)
                .size_limit(1 << 26)
                .build()
            {
                Ok(re) => patterns.push((name, re)),
                Err(e) => warnings.push(format!(
                    "RegexEntityExtractor: the pattern for '{name}' is invalid and is ignored: {e}"
                )),
            }
        }
        RegexEntityExtractor { patterns }
    }

    /// The entity types it extracts.
    pub fn entity_types(&self) -> BTreeSet<String> {
        self.patterns.iter().map(|p| p.0.clone()).collect()
    }

    /// Whether there is anything to extract.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The entities found in `text`, in Rasa's key order.
    pub fn extract(&self, text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for (name, re) in &self.patterns {
            for m in re.find_iter(text) {
                if m.start() == m.end() {
                    continue;
                }
                let start = text[..m.start()].chars().count();
                let end = start + m.as_str().chars().count();
                let mut e = Map::new();
                e.insert("entity".into(), json!(name));
                e.insert("start".into(), json!(start));
                e.insert("end".into(), json!(end));
                e.insert("value".into(), json!(m.as_str()));
                e.insert("extractor".into(), json!("RegexEntityExtractor"));
                out.push(Value::Object(e));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_data::TrainingData;

    #[test]
    fn regexes_and_lookups_of_annotated_entities() {
        let d = TrainingData::from_yaml(
            "nlu:\n- intent: inform\n  examples: |\n    - zip [12345](zipcode) in [Paris](city)\n- regex: zipcode\n  examples: |\n    - \\d{5}\n- regex: unused\n  examples: |\n    - \\w+\n- lookup: city\n  examples: |\n    - Paris\n    - New York\n",
        )
        .unwrap();
        let mut w = Vec::new();
        let x = RegexEntityExtractor::train(&d.nlu, &RegexExtractorConfig::default(), &mut w);
        let ents = x.extract("from new york, zip 54321, not parisian");
        assert_eq!(
            ents,
            vec![
                json!({"entity": "zipcode", "start": 19, "end": 24, "value": "54321", "extractor": "RegexEntityExtractor"}),
                json!({"entity": "city", "start": 5, "end": 13, "value": "new york", "extractor": "RegexEntityExtractor"}),
            ]
        );
        assert!(w.is_empty());
    }
}
