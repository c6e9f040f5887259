"""Datasets as text: the catalogue of registered and local datasets, and one dataset file described."""

from __future__ import annotations

from pathlib import Path


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


def catalogue(data_dir: Path) -> str:
    """One line per registered dataset (then every other dataset file in the data folder):
    size, dimension, distance, whether it is here, and how it would be obtained."""
    from annbench.datasets.registry import local_datasets, registry

    local = local_datasets(data_dir)
    lines = [f"{'name':<32} {'train':>9} {'test':>6} {'dim':>4} {'distance':<9} {'size':>9} {'local':<5} how"]
    for spec in registry().values():
        path = local.pop(spec.name, None)
        size = path.stat().st_size if path else (spec.n_train + spec.n_test) * spec.dimension * 4
        lines.append(f"{spec.name:<32} {spec.n_train:>9} {spec.n_test:>6} {spec.dimension:>4} {spec.distance:<9} "
                     f"{('' if path else '~') + _size(size):>9} {'yes' if path else 'no':<5} {spec.how()}")
    for name, path in local.items():
        lines.append(f"{name:<32} {'':>9} {'':>6} {'':>4} {'':<9} {_size(path.stat().st_size):>9} {'yes':<5} "
                     f"local file (see: dataset.py describe {name})")
    return "\n".join(lines)


def describe(path: Path, name: str | None = None, how: str | None = None, difficulty: bool = False) -> str:
    """A short description of a dataset file: shape, distance, labels, keys, checksum, origin; with
    ``difficulty`` also the quartiles of each query-difficulty measure (computed once, then read
    from the sidecar file)."""
    import numpy as np

    from annbench.datasets.format import load_dataset

    ds = load_dataset(path, name=name)
    labels = "none"
    if ds.train_labels is not None:
        labels = f"{len(np.unique(ds.train_labels))} classes (train_labels" + \
                 (", test_labels)" if ds.test_labels is not None else ")")
    keys = "none" if ds.keys is None else f"{len(ds.keys)} (e.g. {', '.join(map(str, ds.keys[:3]))})"
    rows = [("dataset", ds.name), ("file", f"{ds.path} ({_size(ds.path.stat().st_size)})"),
            ("train", f"{len(ds.train)} x {ds.dimension}"), ("test", f"{len(ds.test)} x {ds.dimension}"),
            ("point type", _points(ds)), ("memory", f"{_size(ds.memory_bytes)} (train and test, as loaded)"),
            ("distance", ds.distance), ("ground truth", f"top-{ds.ground_truth_k}"), ("labels", labels),
            ("keys", keys), *_filters(ds), ("checksum", ds.checksum),
            ("obtained", how or str(ds.attrs.get("obtained", "unknown (no provenance attrs)"))),
            ("source", str(ds.attrs.get("source", "unknown")))]
    text = "\n".join(f"{k:<13} {v}" for k, v in rows)
    return text + ("\n" + difficulty_quartiles(ds) if difficulty else "")


def _filters(ds) -> list[tuple[str, str]]:  # a Dataset
    """A filtered dataset's attributes and its queries' selectivity quartiles (none for others)."""
    import numpy as np

    f = ds.filters
    if f is None:
        return []
    per_point = f.train_tags.getnnz(axis=1).mean()
    values = "; a value per point" if f.train_values is not None else ""
    q = np.percentile(f.selectivity, [0, 25, 50, 75, 100]) * 100
    zero = int(np.count_nonzero(f.selectivity == 0))
    return [("filters", f"{', '.join(f.kinds)} ({f.n_tags} tags, {per_point:.1f} a point{values})"),
            ("selectivity", "min/25%/median/75%/max " + " / ".join(f"{v:.3g} %" for v in q)
             + (f"; {zero} queries match no point" if zero else ""))]


def _points(ds) -> str:  # a Dataset
    """The point type in words: what a row is and how it is held."""
    if ds.point_type == "bit":
        return f"bit ({ds.dimension} bits a row, packed in {ds.train.shape[1]} bytes)"
    if ds.point_type == "set":
        return f"set (item ids in [0, {ds.dimension}), {ds.train.sizes.mean():.1f} a set on average; CSR)"
    return ds.point_type


def difficulty_quartiles(ds) -> str:  # a Dataset
    """The quartiles of every difficulty measure of ``ds``'s queries, as text lines."""
    from annbench.analyse.difficulty import load_or_compute, sidecar_path

    if ds.distance == "ip":
        return (f"{'difficulty':<13} not defined for {ds.distance}: inner products are not distances, "
                f"so their ratios (RC, expansion, LID) mean nothing")
    if ds.distance not in ("euclidean", "angular"):
        return f"{'difficulty':<13} not computed for {ds.distance} (only for euclidean and angular)"
    difficulty = load_or_compute(ds)
    table = difficulty.quartiles()
    head = (f"{'difficulty':<13} per query, {difficulty.n_queries} queries (computed in {difficulty.seconds:.2f} s; "
            f"{sidecar_path(ds.path).name})")
    cols = ["min", "q25", "median", "q75", "max"]
    lines = [head, f"  {'measure':<13}" + "".join(f"{c:>10}" for c in cols) + f"{'not finite':>12}"]
    for _, r in table.iterrows():
        lines.append(f"  {r['measure']:<13}" + "".join(f"{r[c]:>10.4g}" for c in cols) + f"{int(r['not finite']):>12}")
    return "\n".join(lines)
