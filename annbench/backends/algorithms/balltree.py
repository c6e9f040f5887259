"""scikit-learn's Ball-tree (exact)."""

from ._sklearn_tree import SklearnTree


class BallTree(SklearnTree):
    tree_class_name = "BallTree"
