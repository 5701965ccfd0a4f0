//! The intent classifier: multinomial logistic regression on the sparse sentence
//! features, trained by stochastic gradient descent with L2 regularisation.
//!
//! It stands where Rasa's `DIETClassifier` (or `LogisticRegressionClassifier`) stands.
//! Its softmax outputs are the intent confidences: a linear model's probabilities are
//! well calibrated, unlike DIET's similarity scores, so `FallbackClassifier` thresholds
//! mean what they say. Training shuffles with a seed and is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::SparseVec;
use super::rng::Rng;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Passes over the data (Rasa's `epochs`).
    pub epochs: usize,
    /// L2 strength per example.
    pub l2: f32,
    /// Initial learning rate.
    pub learning_rate: f32,
    /// Shuffling seed (Rasa's `random_seed`).
    pub seed: u64,
    /// Weigh classes inversely to their size, so small intents are not drowned out.
    pub balanced: bool,
    /// Extra weight of some classes' examples (e.g. an out-of-scope intent).
    #[serde(default)]
    pub class_weights: BTreeMap<String, f32>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            epochs: 10,
            l2: 1e-6,
            learning_rate: 1.0,
            seed: 42,
            balanced: true,
            class_weights: BTreeMap::new(),
        }
    }
}

/// Fewest SGD steps a training makes (see [`LinearClassifier::train`]).
const MIN_UPDATES: usize = 20_000;
/// Most passes a small data set gets.
const MAX_EPOCHS: usize = 300;

/// The weight of each class's examples in training: inversely proportional to the
/// class's size when `balanced`, times its `class_weights` entry.
pub fn class_weights(classes: &[String], ys: &[usize], cfg: &ClassifierConfig) -> Vec<f32> {
    let k = classes.len();
    let mut counts = vec![0usize; k];
    for &y in ys {
        if let Some(c) = counts.get_mut(y) {
            *c += 1;
        }
    }
    let n = ys.len() as f32;
    counts
        .iter()
        .zip(classes)
        .map(|(&c, name)| {
            let extra = cfg.class_weights.get(name).copied().unwrap_or(1.0);
            extra
                * if cfg.balanced && c > 0 {
                    n / (k as f32 * c as f32)
                } else {
                    1.0
                }
        })
        .collect()
}

/// A trained classifier.
#[derive(Debug, Clone, Default)]
pub struct LinearClassifier {
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// Number of input features.
    pub dim: usize,
    /// Weights, feature-major: `w[f * classes + c]`.
    pub w: Vec<f32>,
    /// Biases per class. Training leaves them at zero: a text with no known feature
    /// gets equal confidences for every intent (and so falls back), not the
    /// largest intent.
    pub b: Vec<f32>,
}

/// Turns scores into probabilities in place (shared with [`super::mlp`]).
pub(super) fn softmax(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in z.iter_mut() {
            *v /= sum;
        }
    }
}

/// Class probabilities as `(class, probability)` pairs, most probable first, ties
/// in class order (shared with [`super::model::NluModel`]'s averaged ranking).
pub(super) fn ranked(p: Vec<f32>) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = p.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

impl LinearClassifier {
    /// Trains on `xs` with labels `ys` (indices into `classes`).
    pub fn train(
        classes: Vec<String>,
        dim: usize,
        xs: &[SparseVec],
        ys: &[usize],
        cfg: &ClassifierConfig,
    ) -> LinearClassifier {
        let k = classes.len();
        let mut m = LinearClassifier {
            classes,
            dim,
            w: vec![0.0; dim * k],
            b: vec![0.0; k],
        };
        if k < 2 || xs.is_empty() {
            return m;
        }
        let weight = class_weights(&m.classes, ys, cfg);
        let mut active: Vec<(usize, f32)> = Vec::with_capacity(k);
        let mut rng = Rng::new(cfg.seed);
        let mut order: Vec<usize> = (0..xs.len()).collect();
        // Weights are stored divided by `scale`: L2 decay is one multiplication per step.
        let mut scale = 1.0f32;
        let mut z = vec![0.0f32; k];
        // Small data sets get more passes: at least ~MIN_UPDATES steps, so that the
        // confidences on a bot with a few dozen examples are as decided as on a big one.
        let epochs = cfg
            .epochs
            .max(MIN_UPDATES / xs.len().max(1))
            .clamp(1, MAX_EPOCHS);
        let total = (epochs * xs.len()) as f32;
        let mut t = 0.0f32;
        for _ in 0..epochs {
            rng.shuffle(&mut order);
            for &i in &order {
                let x = &xs[i];
                let y = ys[i];
                // Linearly decaying learning rate, never quite zero.
                let lr = cfg.learning_rate * (1.0 - 0.9 * t / total);
                t += 1.0;
                m.scores_into(x, scale, &mut z);
                softmax(&mut z);
                let wy = weight[y];
                // Only classes with a gradient worth the work: once trained, most
                // probabilities are ~0 and their updates would change nothing.
                active.clear();
                for (c, p) in z.iter().enumerate() {
                    let g = (p - if c == y { 1.0 } else { 0.0 }) * wy;
                    if g.abs() > 1e-4 {
                        active.push((c, g));
                    }
                }
                scale *= 1.0 - lr * cfg.l2;
                let step = lr / scale;
                for (&f, &v) in x.idx.iter().zip(&x.val) {
                    let row = &mut m.w[f as usize * k..(f as usize + 1) * k];
                    let a = step * v;
                    for &(c, g) in &active {
                        row[c] -= a * g;
                    }
                }
                if scale < 1e-4 {
                    for v in &mut m.w {
                        *v *= scale;
                    }
                    scale = 1.0;
                }
            }
        }
        for v in &mut m.w {
            *v *= scale;
        }
        m
    }

    fn scores_into(&self, x: &SparseVec, scale: f32, z: &mut [f32]) {
        let k = self.classes.len();
        z.copy_from_slice(&self.b);
        for (&f, &v) in x.idx.iter().zip(&x.val) {
            let f = f as usize;
            if f >= self.dim {
                continue;
            }
            let a = v * scale;
            for (zc, wc) in z.iter_mut().zip(&self.w[f * k..(f + 1) * k]) {
                *zc += a * wc;
            }
        }
    }

    /// Class probabilities of a feature vector, in class order.
    pub fn predict_proba(&self, x: &SparseVec) -> Vec<f32> {
        let mut z = vec![0.0; self.classes.len()];
        if z.is_empty() {
            return z;
        }
        self.scores_into(x, 1.0, &mut z);
        softmax(&mut z);
        z
    }

    /// `(class, confidence)` pairs, most confident first.
    pub fn rank(&self, x: &SparseVec) -> Vec<(usize, f32)> {
        ranked(self.predict_proba(x))
    }

    /// Approximate heap size in bytes.
    pub fn memory(&self) -> usize {
        (self.w.len() + self.b.len()) * 4 + self.classes.iter().map(|c| c.len() + 24).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_separable_classes_with_confidences_that_sum_to_one() {
        let xs = vec![
            SparseVec::from_pairs(&[(0, 1.0)]),
            SparseVec::from_pairs(&[(0, 0.8), (2, 0.6)]),
            SparseVec::from_pairs(&[(1, 1.0)]),
            SparseVec::from_pairs(&[(1, 0.8), (2, 0.6)]),
        ];
        let ys = vec![0, 0, 1, 1];
        let cfg = ClassifierConfig::default();
        let m = LinearClassifier::train(vec!["a".into(), "b".into()], 3, &xs, &ys, &cfg);
        let p = m.predict_proba(&SparseVec::from_pairs(&[(0, 1.0)]));
        assert!(p[0] > 0.9, "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(m.rank(&SparseVec::from_pairs(&[(1, 1.0)]))[0].0, 1);
        // Unknown features are ignored; the same seed gives the same weights.
        assert_eq!(
            m.predict_proba(&SparseVec::from_pairs(&[(7, 1.0)])).len(),
            2
        );
        let again = LinearClassifier::train(vec!["a".into(), "b".into()], 3, &xs, &ys, &cfg);
        assert_eq!(m.w, again.w);
    }
}
