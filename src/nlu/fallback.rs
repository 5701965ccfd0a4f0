//! Rasa's `FallbackClassifier`: the intent becomes `nlu_fallback` when the classifier
//! is not confident enough (`threshold`) or cannot tell its two best intents apart
//! (`ambiguity_threshold`). The fallback's confidence is the threshold, and it is put in
//! front of the intent ranking, as Rasa does.

use serde::{Deserialize, Serialize};

/// The fallback intent's name.
pub const NLU_FALLBACK: &str = "nlu_fallback";

/// `FallbackClassifier` settings (Rasa's defaults: 0.3 and 0.1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FallbackConfig {
    /// Below this confidence the intent is `nlu_fallback`.
    pub threshold: f64,
    /// If the best two intents are closer than this, the intent is `nlu_fallback`.
    pub ambiguity_threshold: f64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            threshold: 0.3,
            ambiguity_threshold: 0.1,
        }
    }
}

impl FallbackConfig {
    /// Whether a ranking (confidences, best first) should fall back.
    pub fn should_fallback(&self, ranking: &[f64]) -> bool {
        let Some(&first) = ranking.first() else {
            return false;
        };
        if first < self.threshold {
            return true;
        }
        match ranking.get(1) {
            Some(&second) => first - second < self.ambiguity_threshold,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_ambiguity() {
        let f = FallbackConfig::default();
        assert!(f.should_fallback(&[0.25, 0.2]));
        assert!(f.should_fallback(&[0.45, 0.4]));
        assert!(!f.should_fallback(&[0.6, 0.3]));
        assert!(!f.should_fallback(&[0.31]));
        assert!(!f.should_fallback(&[]));
    }
}
