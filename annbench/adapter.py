"""The import path adapter files used before the layout by stage: ``from annbench.adapter import Adapter``
keeps working; the adapter base lives in :mod:`annbench.backends.adapter`."""

from annbench.backends.adapter import Adapter

__all__ = ["Adapter"]
