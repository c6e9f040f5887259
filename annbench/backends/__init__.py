"""The shipped backends, as package data: ``algorithms/`` holds one adapter file per algorithm
(loaded by path, see :mod:`annbench.backends.discovery`), ``configs/`` one YAML grid per algorithm."""
