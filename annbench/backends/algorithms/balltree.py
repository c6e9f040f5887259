"""scikit-learn's Ball-tree (exact)."""

from ._sklearn_tree import SklearnTree


class BallTree(SklearnTree):
    """``BallTree``: exact search in nested hyperspheres."""

    tree_class_name = "BallTree"
