"""scikit-learn's KD-tree (exact)."""

from ._sklearn_tree import SklearnTree


class KDTree(SklearnTree):
    tree_class_name = "KDTree"
