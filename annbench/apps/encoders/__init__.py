"""Classifier networks whose penultimate layer turns a labelled dataset into new features.

Each model module exposes ``train(data, settings, progress) -> TrainedEncoder``;
:mod:`annbench.apps.encode` picks one by name and writes the encoded dataset.
"""
