"""The base every stage stands on: errors, paths, thread pinning, provenance, the records a run produces."""
