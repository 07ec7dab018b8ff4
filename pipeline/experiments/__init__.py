"""The entry points' work: train, study, grid, tune, evaluate and their workers."""
