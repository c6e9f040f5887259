"""Distances, exact ground truth and the quality and speed metrics of a run: pure numpy."""
