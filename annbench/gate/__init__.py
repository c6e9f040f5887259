"""The CI regression gate: measure a suite, compare with a baseline, report verdicts."""
