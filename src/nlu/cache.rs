//! The trained model on disk, so that an unchanged bot starts without retraining.
//!
//! The file name holds a hash of everything training depends on: the mapped pipeline,
//! every NLU example with its annotations, the synonyms, regexes and lookup tables, and
//! palaver's model format version. Changed data or config means another file, so a
//! stale model is never loaded. The learned parts (vocabulary, weights) are stored in a
//! small binary format; the cheap parts (patterns, regex extractor, synonyms) are
//! rebuilt from the data. A file that cannot be read is ignored and the model retrained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::features::{max_idf, Featurizer};
use super::intent::LinearClassifier;
use super::mlp::MlpClassifier;
use super::pipeline::PipelineConfig;
use super::tagger::{EntityLabel, EntityTagger};
use crate::training_data::NluData;

const MAGIC: &[u8] = b"PALAVER-NLU-4\n";

/// The cache key of a pipeline trained on `data`.
pub fn key(config: &PipelineConfig, data: &NluData) -> String {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(serde_json::to_vec(config).unwrap_or_default());
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for e in &data.examples {
        field(&e.intent);
        field(&e.text);
        for x in &e.entities {
            field(&format!(
                "{}|{}|{}|{}|{:?}|{:?}",
                x.start, x.end, x.entity, x.value, x.role, x.group
            ));
        }
        field("\u{1}");
    }
    for (k, v) in &data.synonyms {
        field(k);
        field(v);
    }
    for r in &data.regexes {
        field(&r.name);
        field(&r.pattern);
    }
    for l in &data.lookups {
        field(&l.name);
        for e in &l.elements {
            field(e);
        }
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the model of `key` is cached for the project in `dir` (`.palaver/` inside the
/// project, like Rasa's `.rasa/cache`; `PALAVER_NLU_CACHE` overrides the folder).
pub fn path(dir: &Path, key: &str) -> PathBuf {
    let base = std::env::var_os("PALAVER_NLU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join(".palaver").join("nlu"));
    base.join(format!("nlu-{key}.bin"))
}

/// The learned parts of a model.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    /// The featurizer.
    pub featurizer: Featurizer,
    /// The classifier.
    pub classifier: Option<LinearClassifier>,
    /// The feed-forward classifier.
    pub mlp: Option<MlpClassifier>,
    /// The tagger.
    pub tagger: Option<EntityTagger>,
    /// The response selectors' classifiers, one per `ResponseSelector` of the pipeline
    /// (`None`: the selector had nothing to learn).
    pub selectors: Vec<Option<LinearClassifier>>,
    /// Training time of the original training, seconds.
    pub training_seconds: f64,
}

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt(&mut self, s: &Option<String>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn classifier(&mut self, c: &LinearClassifier) {
        self.u64(c.classes.len() as u64);
        for name in &c.classes {
            self.str(name);
        }
        self.u64(c.dim as u64);
        self.f32s(&c.w);
        self.f32s(&c.b);
    }
    fn vocab(&mut self, v: &HashMap<String, u32>) {
        let mut items: Vec<(&String, &u32)> = v.iter().collect();
        items.sort_by_key(|i| *i.1);
        self.u64(items.len() as u64);
        for (k, i) in items {
            self.str(k);
            self.u64(*i as u64);
        }
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // A length can never exceed what is left: protects against corrupt files.
        (n <= self.0.len()).then_some(n)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => Some(Some(self.str()?)),
        }
    }
    fn f32s(&mut self) -> Option<Vec<f32>> {
        let n = self.u64()? as usize;
        let bytes = self.take(n.checked_mul(4)?)?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
    fn classifier(&mut self) -> Option<LinearClassifier> {
        let k = self.len()?;
        let classes = (0..k).map(|_| self.str()).collect::<Option<Vec<_>>>()?;
        let dim = self.u64()? as usize;
        let w = self.f32s()?;
        let b = self.f32s()?;
        if w.len() != dim.checked_mul(k)? || b.len() != k {
            return None;
        }
        Some(LinearClassifier { classes, dim, w, b })
    }
    fn vocab(&mut self) -> Option<HashMap<String, u32>> {
        let n = self.len()?;
        let mut m = HashMap::with_capacity(n);
        for _ in 0..n {
            let k = self.str()?;
            let i = u32::try_from(self.u64()?).ok()?;
            // Every index must point into the weights: a corrupt file is refused here
            // rather than indexing out of bounds later.
            if i as usize >= n || m.insert(k, i).is_some() {
                return None;
            }
        }
        Some(m)
    }
}

/// The bytes of the learned parts.
pub fn encode(l: &Learned) -> Vec<u8> {
    let mut w = W::default();
    w.0.extend_from_slice(MAGIC);
    w.0.extend_from_slice(&l.training_seconds.to_le_bytes());
    w.vocab(&l.featurizer.vocab);
    w.f32s(&l.featurizer.idf);
    w.u64(l.featurizer.block.len() as u64);
    w.0.extend_from_slice(&l.featurizer.block);
    match &l.classifier {
        Some(c) => {
            w.0.push(1);
            w.classifier(c);
        }
        None => w.0.push(0),
    }
    match &l.mlp {
        Some(m) => {
            w.0.push(1);
            w.u64(m.hidden as u64);
            w.f32s(&m.w1);
            w.f32s(&m.w2);
        }
        None => w.0.push(0),
    }
    match &l.tagger {
        Some(t) => {
            w.0.push(1);
            w.str(&t.extractor);
            w.u64(t.labels.len() as u64);
            for x in &t.labels {
                w.str(&x.entity);
                w.opt(&x.role);
                w.opt(&x.group);
            }
            w.vocab(&t.vocab);
            w.f32s(&t.w);
        }
        None => w.0.push(0),
    }
    w.u64(l.selectors.len() as u64);
    for s in &l.selectors {
        match s {
            Some(c) => {
                w.0.push(1);
                w.classifier(c);
            }
            None => w.0.push(0),
        }
    }
    w.0
}

/// The learned parts from bytes; `None` if they are not a valid model file. The
/// featurizer's config is taken from `config`.
pub fn decode(bytes: &[u8], config: &PipelineConfig) -> Option<Learned> {
    let mut r = R(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let training_seconds = f64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let vocab = r.vocab()?;
    let idf = r.f32s()?;
    let n = r.len()?;
    let block = r.take(n)?.to_vec();
    if idf.len() != vocab.len() || block.len() != vocab.len() {
        return None;
    }
    let featurizer = Featurizer {
        config: config.featurizer.clone(),
        vocab,
        oov_idf: max_idf(&idf),
        idf,
        block,
    };
    let classifier = match r.u8()? {
        0 => None,
        _ => Some(r.classifier()?),
    };
    let mlp = match (r.u8()?, &classifier) {
        (0, _) => None,
        (_, None) => return None,
        (_, Some(c)) => {
            let hidden = r.u64()? as usize;
            let w1 = r.f32s()?;
            let w2 = r.f32s()?;
            if w1.len() != c.dim.checked_mul(hidden)?
                || w2.len() != hidden.checked_mul(c.classes.len())?
            {
                return None;
            }
            Some(MlpClassifier {
                classes: c.classes.clone(),
                dim: c.dim,
                hidden,
                w1,
                w2,
            })
        }
    };
    let tagger = match r.u8()? {
        0 => None,
        _ => {
            let extractor = r.str()?;
            let n = r.len()?;
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                labels.push(EntityLabel {
                    entity: r.str()?,
                    role: r.opt()?,
                    group: r.opt()?,
                });
            }
            let vocab = r.vocab()?;
            let w = r.f32s()?;
            if w.len() != vocab.len().checked_mul(1 + 4 * labels.len())? {
                return None;
            }
            Some(EntityTagger {
                labels,
                vocab,
                w,
                extractor,
            })
        }
    };
    let n = r.u64()? as usize;
    if n != config.selectors.len() {
        return None;
    }
    let mut selectors = Vec::with_capacity(n);
    for _ in 0..n {
        selectors.push(match r.u8()? {
            0 => None,
            _ => Some(r.classifier()?),
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Learned {
        featurizer,
        classifier,
        mlp,
        tagger,
        selectors,
        training_seconds,
    })
}

/// Reads a cached model; `None` when there is none or it is unreadable.
pub fn load(file: &Path, config: &PipelineConfig) -> Option<Learned> {
    let bytes = std::fs::read(file).ok()?;
    let learned = decode(&bytes, config);
    if learned.is_none() {
        tracing::warn!(file = %file.display(), "the cached NLU model is unreadable; retraining");
    }
    learned
}

/// Writes a model to the cache (atomically: a temp file renamed). Failures are logged;
/// the server runs on with the model in memory.
pub fn store(file: &Path, learned: &Learned) {
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, encode(learned))?;
        std::fs::rename(&tmp, file)
    })();
    if let Err(e) = result {
        tracing::warn!(file = %file.display(), "could not cache the NLU model: {e}");
        return;
    }
    // In the project's own folder, older models (of earlier data or configs) are
    // removed, so edits do not pile up files; a shared PALAVER_NLU_CACHE folder may hold
    // other projects' models and is left alone.
    if std::env::var_os("PALAVER_NLU_CACHE").is_none() {
        remove_others(file);
    }
}

fn remove_others(file: &Path) {
    let (Some(dir), Some(keep)) = (file.parent(), file.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if name != keep && n.starts_with("nlu-") && n.ends_with(".bin") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
