"""Studies that retrain the model: leave-region-out, the sparsity study, site cross-validation."""
