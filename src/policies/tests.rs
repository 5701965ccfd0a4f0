//! Unit tests of the policies on small hand-written bots.

use super::*;

#[test]
fn empty_ensemble_listens() {
    let domain = Domain::default();
    let e = PolicyEnsemble::train(
        &serde_json::json!({"policies": [{"name": "TEDPolicy"}]}),
        &domain,
        &TrainingData::default(),
    )
    .unwrap();
    let t = DialogueStateTracker::new("x", std::sync::Arc::new(Vec::new()));
    let p = e.predict(&t, &domain);
    assert_eq!(
        (p.action.as_str(), p.policy, p.confidence),
        ("action_listen", None, 0.0)
    );
    assert_eq!(e.warnings.len(), 1);
}
