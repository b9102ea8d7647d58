"""The learned router: training set, gated retraining of versioned models, their evaluation."""
