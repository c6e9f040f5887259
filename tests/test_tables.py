"""Comparison tables on hand-made result frames with known answers: the pivoted operating points,
ranks across datasets, and their rendering (bold, notes, escaping) in every format."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from annbench.report.summaries import dataset_ranks, operating_pivot, seed_summary
from annbench.report.tables import render_tables, to_html


def _runs(rows: list[tuple[str, str, float, float]], spread: float = 0.01) -> pd.DataFrame:
    """(dataset, algorithm, recall, qps) per run, each measured in 3 processes ``qps·(1 ∓ spread)``, ``qps``
    (so QPS that differ by more than a few ``spread`` differ significantly); parameters n=<row number>."""
    return pd.DataFrame({
        "dataset": [r[0] for r in rows], "algorithm": [r[1] for r in rows], "batch": False, "status": "ok",
        "recall": [r[2] for r in rows], "qps": [r[3] for r in rows],
        "build_params": [f'{{"n":{i}}}' for i in range(len(rows))], "query_params": '{"ef":5}',
        "build_s": 1.0, "index_bytes": 100,
        "qps_processes": [json.dumps([r[3] * (1 - spread), r[3], r[3] * (1 + spread)]) for r in rows],
    })


ONE = _runs([("d", "a", 0.55, 900), ("d", "a", 0.85, 400), ("d", "a", 0.92, 100), ("d", "a", 0.6, 1000),
             ("d", "b", 0.999, 5), ("d", "b", 0.7, 2000), ("d", "c", 0.3, 50_000)])


def test_pivot_one_row_per_algorithm_best_qps_per_level() -> None:
    t = operating_pivot(ONE)
    v = t.values.set_index("algorithm")
    assert list(v.index) == ["a", "b", "c"]
    assert list(v.columns) == ["recall>=0.5", "recall>=0.8", "recall>=0.9", "recall>=0.95", "recall>=0.99"]
    assert v.loc["a"].tolist()[:3] == [1000, 400, 100] and np.isnan(v.loc["a", "recall>=0.95"])
    assert v.loc["b"].tolist() == [2000, 5, 5, 5, 5]
    assert v.loc["c"].isna().all()  # never reaches 0.5: a row of empty cells, nothing made up
    bold = t.bold.set_index(t.values["algorithm"])
    assert bold["recall>=0.5"].tolist() == [False, True, False]  # b's 2000 beats a's 1000
    assert bold["recall>=0.8"].tolist() == [True, False, False]
    assert not bold.loc["c"].any() and not bold["algorithm"].any()
    notes = t.notes.set_index("algorithm")
    assert notes.loc["a", "recall>=0.5"] == "n=3 | ef=5" and notes.loc["b", "recall>=0.99"] == "n=4 | ef=5"
    assert notes.loc["a", "recall>=0.95"] == ""


def test_seed_summary_one_row_per_algorithm_at_its_operating_point() -> None:
    runs = ONE.assign(n_queries=200, **{"1-R@1": [0.5, 0.8, 0.95, 0.6, 1.0, 0.7, 0.2]},
                      build_s=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], index_bytes=[10, 20, 30, 40, 50, 60, 70])
    t = seed_summary(runs, at_recall=0.9)
    v = t.values.set_index("algorithm")
    assert list(v.columns) == ["recall", "search_s", "1-R@1", "index_bytes", "build_s"]
    # a: only its 0.92 run (qps 100) reaches 0.9: the whole query set of 200 in 2 s; b: its 0.999 run
    assert v.loc["a"].tolist() == [0.92, 2.0, 0.95, 30, 3.0]
    assert v.loc["b"].tolist() == [0.999, 40.0, 1.0, 50, 5.0]
    assert v.loc["c"].isna().all()  # never reaches 0.9: empty, nothing made up
    assert t.notes.set_index("algorithm").loc["a", "search_s"] == "n=2 | ef=5"
    assert seed_summary(runs, at_recall=0.5).values.set_index("algorithm").loc["a", "search_s"] == 0.2  # qps 1000


def test_pivot_rendered_in_every_format() -> None:
    t = operating_pivot(ONE)
    md = render_tables([t], "md")
    assert "| **2000** |" in md and "| a | 1000 | **400** | **100** | - | - |" in md
    # the parameter table: each run once, with the cells it is behind; | escaped inside a cell
    assert "| a | recall>=0.5 | n=3 \\| ef=5 |" in md and "| b | recall>=0.8, 0.9, 0.95, 0.99 | n=4 \\| ef=5 |" in md
    assert md.count("| c |") == 1  # c has no cell to explain
    latex = render_tables([t], "latex")
    assert latex.count(r"\begin{tabular}") == 2 and r"\textbf{2000}" in latex and r"\toprule" in latex
    text = render_tables([t], "text")
    assert "2000*" in text and "n=3 | ef=5" in text
    flat = pd.read_csv(io.StringIO(render_tables([t], "csv")))
    assert list(flat.columns[:6]) == ["algorithm", *t.values.columns[1:]] and "recall>=0.5 params" in flat
    assert flat.loc[flat["algorithm"] == "a", "recall>=0.5 params"].item() == "n=3 | ef=5"
    records = json.loads(render_tables([t], "json"))
    assert records[2]["algorithm"] == "c" and records[2]["recall>=0.5"] is None
    page = to_html(t.values, bold=t.bold, titles=t.notes)
    assert '<td class="num" title="n=3 | ef=5">1000</td>' in page and "<strong>2000</strong>" in page


def test_pivot_escapes_hostile_names_and_params() -> None:
    evil = '<script>alert("x")</script>*|_&'
    f = _runs([("d", evil, 0.95, 10)])
    f["query_params"] = '{"q": "</td><b>"}'
    t = operating_pivot(f)
    page = to_html(t.values, bold=t.bold, titles=t.notes)
    assert "<script>" not in page and "</td><b>" not in page and "&lt;script&gt;" in page
    md = render_tables([t], "md")
    assert "\\*\\|" in md  # neither bold nor a cell break
    latex = render_tables([t], "latex")
    assert r"\textless{}script\textgreater{}" in latex and r"\_\&" in latex


def test_ranks_across_datasets_known_answer() -> None:
    f = _runs([("d1", "a", 0.95, 100), ("d1", "b", 0.95, 50), ("d1", "c", 0.95, 25),
               ("d2", "a", 0.95, 10), ("d2", "b", 0.95, 40), ("d2", "c", 0.5, 1000),
               ("d3", "a", 0.99, 30), ("d3", "b", 0.99, 30)])  # c not measured on d3; a, b tie
    t = dataset_ranks(f, levels=(0.9,))
    v = t.values.set_index("algorithm")
    assert v.loc["a", "d1 rank"] == 1 and v.loc["b", "d1 rank"] == 2 and v.loc["c", "d1 rank"] == 3
    assert v.loc["b", "d2 rank"] == 1 and v.loc["a", "d2 rank"] == 2 and np.isnan(v.loc["c", "d2 rank"])
    assert v.loc["a", "d3 rank"] == 1 and v.loc["b", "d3 rank"] == 1  # a tie shares the better rank
    assert v.loc["b", "d1 rel"] == pytest.approx(0.5) and v.loc["a", "d2 rel"] == pytest.approx(0.25)
    assert v.loc["a", "mean rank"] == pytest.approx(4 / 3) and v.loc["b", "mean rank"] == pytest.approx(4 / 3)
    # c: 3 on d1, never reaches 0.9 on d2 (counts as 2 ranked + 1 = 3), absent from d3
    assert v.loc["c", "mean rank"] == pytest.approx(3.0) and v.loc["c", "reached"] == "1/2"
    assert v.loc["a", "reached"] == "3/3"
    assert t.values["algorithm"].tolist() == ["a", "b", "c"]  # sorted by mean rank
    bold = t.bold.set_index(t.values["algorithm"])
    assert bold["mean rank"].tolist() == [True, True, False] and bold.loc["b", "d2 rank"]
    assert not bold.loc["c"].any()


def test_ranks_per_level_and_lower_is_better_speed() -> None:
    f = _runs([("d1", "a", 0.5, 100), ("d1", "b", 0.99, 50), ("d2", "a", 0.99, 10), ("d2", "b", 0.99, 40)])
    t = dataset_ranks(f, levels=(0.5, 0.99))
    at = {r: part.set_index("algorithm") for r, part in t.values.groupby("min_recall")}
    assert at[0.5].loc["a", "d1 rank"] == 1 and at[0.99].loc["b", "d1 rank"] == 1
    assert np.isnan(at[0.99].loc["a", "d1 rank"]) and at[0.99].loc["a", "mean rank"] == pytest.approx(2.0)
    f["p99_ms"] = [1.0, 2.0, 8.0, 4.0]  # smaller is better
    t = dataset_ranks(f, levels=(0.5,), speed="p99_ms")
    v = t.values.set_index("algorithm")
    assert v.loc["a", "d1 rank"] == 1 and v.loc["b", "d2 rank"] == 1 and v.loc["a", "d2 rel"] == pytest.approx(0.5)


def test_pivot_best_not_significantly_faster_than_runner_up_is_a_tie() -> None:
    # a's 1000 and b's 980 are within their processes' noise (±5 %); c's 500 is far below both
    f = _runs([("d", "a", 0.95, 1000), ("d", "b", 0.95, 980), ("d", "c", 0.95, 500)], spread=0.05)
    t = operating_pivot(f, levels=(0.9,))
    assert t.bold.set_index(t.values["algorithm"])["recall>=0.9"].tolist() == [True, True, False]
    assert "tie" in t.caption
    # the same QPS measured with 0.2 % spread: a is significantly faster than b, alone in bold
    t = operating_pivot(_runs([("d", "a", 0.95, 1000), ("d", "b", 0.95, 980), ("d", "c", 0.95, 500)], spread=0.002),
                        levels=(0.9,))
    assert t.bold.set_index(t.values["algorithm"])["recall>=0.9"].tolist() == [True, False, False]
    # a run measured in one process cannot be told apart from the best: it ties, however slow it looks
    f = _runs([("d", "a", 0.95, 1000), ("d", "b", 0.95, 980), ("d", "c", 0.95, 500)], spread=0.002)
    f.loc[f["algorithm"] == "c", "qps_processes"] = json.dumps([500.0])
    t = operating_pivot(f, levels=(0.9,))
    assert t.bold.set_index(t.values["algorithm"])["recall>=0.9"].tolist() == [True, False, True]


def test_ranks_share_a_rank_unless_significantly_faster() -> None:
    f = _runs([("d1", "a", 0.95, 1000), ("d1", "b", 0.95, 980), ("d1", "c", 0.95, 500),
               ("d2", "a", 0.95, 1000), ("d2", "b", 0.95, 500), ("d2", "c", 0.95, 490)], spread=0.05)
    v = dataset_ranks(f, levels=(0.9,)).values.set_index("algorithm")
    # d1: a ≈ b, both faster than c; d2: a faster than b ≈ c (rank = 1 + how many are significantly faster)
    assert v[["d1 rank", "d2 rank"]].loc[["a", "b", "c"]].to_numpy().tolist() == [[1, 1], [1, 2], [3, 2]]
