"""Dataset files (ann-benchmarks' HDF5 layout), built-in generators and the registry.

Named ``annbench.datasets`` so it never shadows Hugging Face's top-level ``datasets``.
"""
