"""A whole sweep as three functions a test or a notebook can call: prepare → run → the outcome
(:mod:`annbench.sweep.steps`; ``annbench.run_sweep(request)`` does all of it)."""
