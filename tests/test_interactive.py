"""The interactive charts' data on hand-made runs: Pareto fronts, nines values, hover text and the
escaping that keeps user strings inert (the browser side is in test_reports.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from annbench.analyse.frames import pareto_frame
from annbench.report.interactive import chart_html, chart_spec, hover_text, spec_json
from annbench.report.plotting import nines, nines_floor

EVIL = '</script><script>alert("x")</script>&amp;'


def _runs() -> pd.DataFrame:
    return pd.DataFrame({
        "algorithm": ["a", "a", "a", EVIL, "b"], "batch": [False, False, False, False, True],
        "status": ["ok", "ok", "ok", "ok", "ok"], "recall": [0.5, 0.9, 0.8, 1.0, 0.99],
        "qps": [1000.0, 500.0, 400.0, 50.0, 80.0], "qps_slowest": [900.0, 450.0, 400.0, 40.0, 80.0],
        "build_s": [1.0, 2.0, 0.5, 3.0, 1.0], "index_bytes": [100, 200, -1, 300, 50],
        "p50_ms": 0.1, "p99_ms": 0.4,
        "build_params": ['{"M":8}', '{"M":8}', '{"M":4}', '{"x":"<b>"}', "{}"],
        "query_params": ['{"ef":10}', '{"ef":40}', '{"ef":40}', '{"q":"it\'s"}', "{}"],
    })


def test_spec_fronts_are_the_pareto_fronts_and_nines_values() -> None:
    frame = _runs()
    spec = chart_spec(frame)
    assert spec["xs"] == ["recall"] and spec["ys"][:3] == ["qps", "build_s", "index_bytes"]
    names = [c["name"] for c in spec["curves"]]
    assert names == sorted(names) and "a" in names and "b (batch)" in names
    for key, front in spec["fronts"].items():
        x, y = key.split("|")
        usable = frame[frame[y] >= 0] if y == "index_bytes" else frame  # -1: cannot serialise
        expected = pareto_frame(usable, x, y)
        got = {c: [frame.iloc[i][x] for i in rows] for c, rows in front.items()}
        assert sorted(got["a"]) == sorted(expected[expected["algorithm"] == "a"][x]), key
    assert spec["fronts"]["recall|qps"]["a"] == [0, 1]  # (0.8, 400) is dominated by (0.9, 500)
    floor = nines_floor(frame["recall"])
    assert spec["runs"]["recall@nines"] == pytest.approx(list(nines(frame["recall"].to_numpy(), floor)))
    assert spec["runs"]["index_bytes"][2] is None  # -1 is no size, not a tiny one
    assert spec["runs"]["qps_minus"][0] == pytest.approx(100.0)


def test_user_strings_cannot_leave_their_place() -> None:
    spec = chart_spec(_runs())
    text = spec_json(spec)
    assert "<" not in text and ">" not in text and "&" not in text.replace("\\u0026", "")
    assert json.loads(text) == spec  # the escapes are plain JSON
    raw = spec_json({"name": EVIL})
    assert "</script" not in raw and json.loads(raw) == {"name": EVIL}
    evil_curve = [c for c in spec["curves"] if "alert" in c["name"]][0]
    assert evil_curve["name"] == '&lt;/script&gt;&lt;script&gt;alert("x")&lt;/script&gt;&amp;amp;'
    hover = hover_text(_runs().iloc[3])
    assert "build: x=&lt;b&gt;" in hover and "query: q=it's" in hover and "<b>&lt;/script" in hover
    page = chart_html("c-1", "d", "recall", "qps", title=EVIL, static_href="x.svg")
    assert "<script" not in page and "</script" not in page
    assert np.isfinite([v for v in spec["runs"]["recall"] if v is not None]).all()


def test_a_run_measured_in_processes_shows_its_process_interval() -> None:
    runs = _runs().assign(qps_ci95_low=[950.0, np.nan, np.nan, np.nan, np.nan],
                          qps_ci95_high=[1100.0, np.nan, np.nan, np.nan, np.nan], processes=[3, 1, 1, 1, 1])
    hover = hover_text(runs.iloc[0])
    assert "QPS: 1000 (95 % interval 950 – 1100 over 3 processes)" in hover and "slowest" not in hover
    assert "(slowest pass 450)" in hover_text(runs.iloc[1])  # one process: the spread of its passes
    spec = chart_spec(runs)
    assert (spec["runs"]["qps_minus"][0], spec["runs"]["qps_plus"][0]) == (50.0, 100.0)
