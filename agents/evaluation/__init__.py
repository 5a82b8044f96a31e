"""Honest evaluation: sealed test window, walk-forward folds, statistics and the rules engine."""
