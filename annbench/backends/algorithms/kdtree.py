"""scikit-learn's KD-tree (exact)."""

from ._sklearn_tree import SklearnTree


class KDTree(SklearnTree):
    """``KDTree``: exact search in axis-aligned splits."""

    tree_class_name = "KDTree"
