"""Stored results → frames: Pareto fronts, operating points, per-query quality, difficulty, significance."""
