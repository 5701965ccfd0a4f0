//! A feed-forward intent classifier: one hidden layer of rectified units between the
//! sparse sentence features and the intents, trained with Adam on minibatches and
//! dropout.
//!
//! It stands beside the linear classifier (see [`super::intent`]) inside
//! `DIETClassifier`, whose own text encoder is a small neural network: the hidden
//! layer learns combinations of n-grams that a linear model cannot weigh, and its
//! confidences fall off more sharply away from the training data, which is what makes
//! out-of-scope texts recognisable. The two models' probabilities are averaged (see
//! [`super::model::NluModel::rank_intents`]).
//!
//! The layers have no biases: a text with no known feature gets equal confidences for
//! every intent (and so falls back), as with the linear model. Training is
//! deterministic for a seed.

use multiversion::multiversion;
use serde::{Deserialize, Serialize};

use super::features::SparseVec;
use super::intent::softmax;
use super::rng::Rng;

/// Training settings (`palaver_hidden_*` options of `DIETClassifier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Units in the hidden layer.
    pub hidden: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Adam's step size at the start (it decays linearly over the epochs).
    pub learning_rate: f32,
    /// Share of hidden units dropped at each training step.
    pub dropout: f32,
    /// Weight of this model's probabilities against the linear model's (0..=1).
    pub weight: f32,
    /// Initialisation and shuffling seed.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: 256,
            epochs: 8,
            learning_rate: 0.002,
            dropout: 0.3,
            weight: 0.5,
            seed: 42,
        }
    }
}

/// Examples per training step.
const BATCH: usize = 32;
/// Fewest training steps (minibatches) a training makes, so a bot with a few dozen
/// examples is learned as firmly as a big one.
const MIN_STEPS: usize = 600;
/// Most passes a small data set gets.
const MAX_EPOCHS: usize = 300;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// A trained feed-forward classifier.
#[derive(Debug, Clone, Default)]
pub struct MlpClassifier {
    /// Class names, in index order (the same order as the linear classifier's).
    pub classes: Vec<String>,
    /// Number of input features.
    pub dim: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Input weights, feature-major: `w1[f * hidden + j]`.
    pub w1: Vec<f32>,
    /// Output weights, unit-major: `w2[j * classes + c]`.
    pub w2: Vec<f32>,
}

/// Adam's moment estimates of one parameter block, the second moment kept per row
/// (row-wise Adam: one square root per row instead of per weight, which keeps the
/// sparse input layer's updates cheap).
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    width: usize,
}

impl Moments {
    fn new(rows: usize, width: usize, momentum: bool) -> Moments {
        Moments {
            m: if momentum {
                vec![0.0; rows * width]
            } else {
                Vec::new()
            },
            v: vec![0.0; rows],
            width,
        }
    }

    /// One Adam step on row `row` of `params` with its gradient `grad`.
    #[inline(always)]
    fn step(&mut self, params: &mut [f32], row: usize, grad: &[f32], lr: f32, c1: f32, c2: f32) {
        let w = self.width;
        let m = self.m.get_mut(row * w..(row + 1) * w).unwrap_or_default();
        let p = &mut params[row * w..(row + 1) * w];
        let g2 = sum_of_squares(grad) / w as f32;
        let v = &mut self.v[row];
        *v = BETA2 * *v + (1.0 - BETA2) * g2;
        if m.is_empty() {
            // No first moment (RMSprop): the plain gradient, scaled per row.
            let rate = lr / ((*v / c2).sqrt() + EPS);
            for (pi, &g) in p.iter_mut().zip(grad) {
                *pi -= rate * g;
            }
            return;
        }
        let rate = lr / c1 / ((*v / c2).sqrt() + EPS);
        for ((mi, pi), &g) in m.iter_mut().zip(p.iter_mut()).zip(grad) {
            *mi = BETA1 * *mi + (1.0 - BETA1) * g;
            *pi -= rate * *mi;
        }
    }
}

/// The sum of squares, in eight independent lanes so that it vectorises (a plain
/// float sum is a chain of dependent additions).
#[inline(always)]
fn sum_of_squares(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * v;
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()
}

/// A uniform number with mean 0 and variance 1 (in -sqrt(3)..sqrt(3)).
fn unit(rng: &mut Rng) -> f32 {
    let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    (2.0 * u - 1.0) * 1.732_050_8
}

impl MlpClassifier {
    /// Trains on `xs` with labels `ys` (indices into `classes`), each example weighted
    /// by `class_weight[ys[i]]`. `progress` hears of each finished epoch (done, of).
    pub fn train(
        classes: Vec<String>,
        dim: usize,
        xs: &[SparseVec],
        ys: &[usize],
        class_weight: &[f32],
        cfg: &MlpConfig,
        progress: &dyn Fn(usize, usize),
    ) -> MlpClassifier {
        let k = classes.len();
        let h = cfg.hidden.max(1);
        let mut rng = Rng::new(cfg.seed);
        let mut m = MlpClassifier {
            classes,
            dim,
            hidden: h,
            w1: (0..dim * h).map(|_| 0.01 * unit(&mut rng)).collect(),
            w2: Vec::new(),
        };
        let scale2 = 0.1 * (2.0 / h as f32).sqrt();
        m.w2 = (0..h * k).map(|_| scale2 * unit(&mut rng)).collect();
        if k < 2 || xs.is_empty() {
            return m;
        }
        fit(&mut m, xs, ys, class_weight, cfg, progress, &mut rng);
        m
    }

    /// Class probabilities of a feature vector, in class order.
    pub fn predict_proba(&self, x: &SparseVec) -> Vec<f32> {
        let (h, k) = (self.hidden, self.classes.len());
        let mut pre = vec![0.0f32; h];
        for (&f, &v) in x.idx.iter().zip(&x.val) {
            let f = f as usize;
            if f >= self.dim {
                continue;
            }
            for (p, w) in pre.iter_mut().zip(&self.w1[f * h..(f + 1) * h]) {
                *p += v * w;
            }
        }
        let mut z = vec![0.0f32; k];
        for (j, &a) in pre.iter().enumerate() {
            if a > 0.0 {
                for (zc, wc) in z.iter_mut().zip(&self.w2[j * k..(j + 1) * k]) {
                    *zc += a * wc;
                }
            }
        }
        if !z.is_empty() {
            softmax(&mut z);
        }
        z
    }

    /// Approximate heap size in bytes.
    pub fn memory(&self) -> usize {
        (self.w1.len() + self.w2.len()) * 4
            + self.classes.iter().map(|c| c.len() + 24).sum::<usize>()
    }
}

/// The training loop of [`MlpClassifier::train`], compiled also for AVX2 and FMA and
/// picked at run time where the processor has them: the loops are the same code, the
/// compiler vectorises them wider.
#[multiversion(targets("x86_64+avx2+fma"))]
fn fit(
    m: &mut MlpClassifier,
    xs: &[SparseVec],
    ys: &[usize],
    class_weight: &[f32],
    cfg: &MlpConfig,
    progress: &dyn Fn(usize, usize),
    rng: &mut Rng,
) {
    let (dim, h, k) = (m.dim, m.hidden, m.classes.len());
    let mut adam1 = Moments::new(dim, h, false);
    let mut adam2 = Moments::new(h, k, true);
    // Rows of w1 touched by the current batch: slot per feature, gradients packed.
    let mut slot = vec![u32::MAX; dim];
    let mut touched: Vec<u32> = Vec::new();
    let mut g1: Vec<f32> = Vec::new();
    let mut g2 = vec![0.0f32; h * k];
    let mut pre = vec![0.0f32; h];
    let mut act = vec![0.0f32; h];
    let mut z = vec![0.0f32; k];
    let mut dh = vec![0.0f32; h];
    let mut active: Vec<(usize, f32)> = Vec::with_capacity(k);
    let keep = 1.0 - cfg.dropout.clamp(0.0, 0.95);
    let batches = xs.len().div_ceil(BATCH);
    let epochs = cfg
        .epochs
        .max(MIN_STEPS / batches.max(1))
        .clamp(1, MAX_EPOCHS);
    let mut order: Vec<usize> = (0..xs.len()).collect();
    let mut t = 0i32;
    for epoch in 0..epochs {
        rng.shuffle(&mut order);
        let lr = cfg.learning_rate * (1.0 - epoch as f32 / epochs as f32);
        for batch in order.chunks(BATCH) {
            let inv = 1.0 / batch.len() as f32;
            g2.iter_mut().for_each(|g| *g = 0.0);
            for &i in batch {
                let x = &xs[i];
                let y = ys[i];
                // Forward: hidden pre-activations, dropout, output.
                pre.iter_mut().for_each(|p| *p = 0.0);
                for (&f, &v) in x.idx.iter().zip(&x.val) {
                    let f = f as usize;
                    if f >= dim {
                        continue;
                    }
                    for (p, w) in pre.iter_mut().zip(&m.w1[f * h..(f + 1) * h]) {
                        *p += v * w;
                    }
                }
                for j in 0..h {
                    let dropped = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 >= keep;
                    act[j] = if pre[j] > 0.0 && !dropped {
                        pre[j] / keep
                    } else {
                        0.0
                    };
                }
                z.iter_mut().for_each(|v| *v = 0.0);
                for (j, &a) in act.iter().enumerate() {
                    if a != 0.0 {
                        for (zc, wc) in z.iter_mut().zip(&m.w2[j * k..(j + 1) * k]) {
                            *zc += a * wc;
                        }
                    }
                }
                softmax(&mut z);
                // Backward: output gradient, then into the hidden layer.
                let wy = class_weight.get(y).copied().unwrap_or(1.0) * inv;
                // Only classes with a gradient worth the work: once trained, most
                // probabilities are ~0 and their updates would change nothing.
                active.clear();
                for (c, &p) in z.iter().enumerate() {
                    let g = (p - if c == y { 1.0 } else { 0.0 }) * wy;
                    if g.abs() > 1e-6 {
                        active.push((c, g));
                    }
                }
                for j in 0..h {
                    let a = act[j];
                    if a == 0.0 {
                        dh[j] = 0.0;
                        continue;
                    }
                    let row = &m.w2[j * k..(j + 1) * k];
                    let grow = &mut g2[j * k..(j + 1) * k];
                    let mut s = 0.0;
                    for &(c, g) in &active {
                        s += g * row[c];
                        grow[c] += a * g;
                    }
                    dh[j] = s / keep;
                }
                for (&f, &v) in x.idx.iter().zip(&x.val) {
                    let f = f as usize;
                    if f >= dim {
                        continue;
                    }
                    let s = if slot[f] == u32::MAX {
                        slot[f] = touched.len() as u32;
                        touched.push(f as u32);
                        g1.extend(std::iter::repeat_n(0.0, h));
                        touched.len() - 1
                    } else {
                        slot[f] as usize
                    };
                    for (g, d) in g1[s * h..(s + 1) * h].iter_mut().zip(&dh) {
                        *g += v * d;
                    }
                }
            }
            // Adam, lazily on the touched input rows.
            t += 1;
            let c1 = 1.0 - BETA1.powi(t);
            let c2 = 1.0 - BETA2.powi(t);
            for (s, &f) in touched.iter().enumerate() {
                let f = f as usize;
                adam1.step(&mut m.w1, f, &g1[s * h..(s + 1) * h], lr, c1, c2);
                slot[f] = u32::MAX;
            }
            for j in 0..h {
                adam2.step(&mut m.w2, j, &g2[j * k..(j + 1) * k], lr, c1, c2);
            }
            touched.clear();
            g1.clear();
        }
        progress(epoch + 1, epochs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOR of two features: no linear model separates it, one hidden layer does.
    #[test]
    fn learns_a_class_a_linear_model_cannot() {
        let xs = vec![
            SparseVec::from_pairs(&[(0, 1.0), (2, 1.0)]),
            SparseVec::from_pairs(&[(1, 1.0), (3, 1.0)]),
            SparseVec::from_pairs(&[(0, 1.0), (3, 1.0)]),
            SparseVec::from_pairs(&[(1, 1.0), (2, 1.0)]),
        ];
        let ys = vec![0, 0, 1, 1];
        let cfg = MlpConfig {
            hidden: 16,
            dropout: 0.0,
            learning_rate: 0.02,
            ..MlpConfig::default()
        };
        let train = |cfg: &MlpConfig| {
            let classes = vec!["a".into(), "b".into()];
            MlpClassifier::train(classes, 4, &xs, &ys, &[1.0, 1.0], cfg, &|_, _| {})
        };
        let m = train(&cfg);
        for (x, &y) in xs.iter().zip(&ys) {
            let p = m.predict_proba(x);
            assert!(p[y] > 0.8, "{p:?} for class {y}");
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // No known feature: every class equally likely.
        let p = m.predict_proba(&SparseVec::from_pairs(&[(9, 1.0)]));
        assert!((p[0] - 0.5).abs() < 1e-6, "{p:?}");
        // The same seed gives the same weights; another seed others.
        let again = train(&cfg);
        assert_eq!(m.w1, again.w1);
        assert_eq!(m.w2, again.w2);
        let other = train(&MlpConfig { seed: 7, ..cfg });
        assert_ne!(m.w1, other.w1);
    }
}
