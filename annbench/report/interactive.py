"""Interactive charts for the HTML report: Plotly, offline, every user string escaped.

A chart is a ``<div>`` and a JSON spec (:func:`chart_spec`) in a ``<script type="application/json">``
block; :data:`CHART_JS` (a fixed local script, no user content) draws it with Plotly and adds its
controls: x and y metric, x and y scale, and "all runs" (faint points behind the Pareto lines).
Each algorithm is one Pareto trace plus one hidden all-runs trace in the same legend group, so a
legend click hides or shows both. Hover text shows the run: algorithm, build and query parameters,
recall, QPS (and its slowest pass), p50/p99 latency, build time and index size.

Plotly's JavaScript bundle ships inside the ``plotly`` wheel (:func:`plotly_js`); the report copies
it once beside its pages or inlines it, so no page fetches anything from the network. Names,
parameters and messages are HTML-escaped before they reach Plotly (which renders a little HTML in
labels), and the JSON is escaped so that ``</script>`` can never close its block.
"""

from __future__ import annotations

import html
import json
from itertools import count
from typing import Any

import numpy as np
import pandas as pd

from annbench.analyse.frames import higher_is_better, pareto_frame
from annbench.core.results import Status
from annbench.report.plotting import (
    LABELS,
    MARKERS,
    QUALITY,
    dashes,
    error_bars,
    nines,
    nines_floor,
    nines_ticks,
    params_label,
    styles,
    tick_text,
)
from annbench.report.summaries import curve_label

#: File name of Plotly's bundle beside the report's pages.
PLOTLY_FILE = "plotly.min.js"
#: File name of :data:`CHART_JS` beside the report's pages.
CHART_FILE = "charts.js"
#: Metrics offered on the y axis (cost or speed), in this order, where the runs have them.
Y_METRICS = ("qps", "build_s", "index_bytes", "p50_ms", "p99_ms", "build_peak_rss_bytes", "qps_median")
#: matplotlib marker → Plotly symbol, so a curve has the same marker in both.
SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down",
           "P": "cross", "X": "x", "*": "star", "<": "triangle-left", ">": "triangle-right"}
#: matplotlib line style → Plotly dash.
DASH = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}

assert set(SYMBOLS) == set(MARKERS), "every marker of plotting.MARKERS needs a Plotly symbol"


def plotly_js() -> str:
    """Plotly's JavaScript bundle, from the installed ``plotly`` package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_text(text: str) -> str:
    """``text`` as Plotly shows it literally: ``&``, ``<`` and ``>`` as entities (Plotly reads a
    little HTML in labels and decodes exactly these; quotes need nothing)."""
    return html.escape(text, quote=False)


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def _number(value: Any, unit: str = "") -> str:
    from annbench.report.tables import cell

    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{cell(float(value))}{unit}"


def _bytes(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if np.isnan(v) or v < 0:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if v < 1000 or unit == "GB":
            return f"{v:.4g} {unit}" if unit != "B" else f"{v:.0f} B"
        v /= 1000
    return "-"


def hover_text(run: pd.Series) -> str:
    """The hover label of one run: every user string escaped, Plotly's ``<br>`` between lines."""
    def get(name: str) -> Any:
        return run[name] if name in run else None

    esc = plotly_text
    build, query = params_label(get("build_params") or "{}", "{}"), params_label("{}", get("query_params") or "{}")
    lines = [f"<b>{esc(curve_label(str(run['algorithm']), bool(run.get('batch', False))))}</b>",
             f"build: {esc(build)}", f"query: {esc(query)}",
             f"recall: {_number(get('recall'))}"]
    if get("knn_accuracy") is not None and not pd.isna(get("knn_accuracy")):
        lines.append(f"kNN accuracy: {_number(get('knn_accuracy'))}")
    qps = f"QPS: {_number(get('qps'))}"
    low, high = get("qps_ci95_low"), get("qps_ci95_high")
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):  # the process interval
        p = get("processes")
        over = f" over {int(p)} processes" if p is not None and not pd.isna(p) else " over processes"
        qps += f" (95 % interval {_number(low)} – {_number(high)}{over})"
    elif get("qps_slowest") is not None and not pd.isna(get("qps_slowest")):
        qps += f" (slowest pass {_number(get('qps_slowest'))})"
    lines += [qps, f"latency p50 {_number(get('p50_ms'), ' ms')}, p99 {_number(get('p99_ms'), ' ms')}",
              f"build time {_number(get('build_s'), ' s')}, index {_bytes(get('index_bytes'))}"]
    return "<br>".join(lines)


def _column(frame: pd.DataFrame, metric: str) -> np.ndarray:
    values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(float) if metric in frame \
        else np.full(len(frame), np.nan)
    if metric in ("index_bytes", "build_peak_rss_bytes"):
        values = np.where(values >= 0, values, np.nan)  # -1: the library cannot serialise its index
    return values


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def chart_spec(frame: pd.DataFrame) -> dict[str, Any]:
    """The data the charts of one part of a page share, JSON-ready: per run its metrics (quality
    metrics also on the nines scale) and hover text; per curve its colour, marker, dash and runs;
    per metric pair the Pareto-optimal runs of each curve (:func:`annbench.analyse.frames.pareto_frame`).
    ``frame``: one dataset, one k (the caller filters)."""
    ok = frame[frame["status"] == Status.OK] if "status" in frame else frame
    ok = ok.reset_index(drop=True)
    xs = [m for m in QUALITY if m in ok and np.isfinite(_column(ok, m)).any()]
    ys = [m for m in Y_METRICS if m in ok and np.isfinite(_column(ok, m)).any()]
    runs: dict[str, Any] = {m: _plain(_column(ok, m)) for m in (*xs, *ys)}
    ticks = {}
    for m in xs:
        values = _column(ok, m)
        floor = nines_floor(values[np.isfinite(values)])
        runs[f"{m}@nines"] = _plain(np.where(np.isfinite(values), nines(values, floor), np.nan))
        tv = nines_ticks(floor)
        ticks[m] = {"vals": [float(v) for v in nines(np.array(tv), floor)], "text": [tick_text(v) for v in tv]}
    if "qps" in ok:  # error bars as the static figures draw them: the process interval, else the passes
        bars = error_bars(ok.assign(qps=_column(ok, "qps")), "qps")
        zeros = np.zeros(len(ok))
        runs["qps_minus"] = _plain(zeros if bars is None else bars[0])
        runs["qps_plus"] = _plain(zeros if bars is None else bars[1])
    runs["hover"] = [hover_text(r) for _, r in ok.iterrows()]
    keys = [curve_label(str(a), bool(b)) for a, b in zip(ok["algorithm"], ok["batch"])]
    palette = styles(ok["algorithm"].astype(str))
    lines = dashes(palette) if palette else {}
    curves = []
    for label in sorted(set(keys)):
        first = keys.index(label)
        algorithm, batch = str(ok["algorithm"][first]), bool(ok["batch"][first])
        colour, marker = palette[algorithm]
        curves.append({"name": plotly_text(label), "color": _hex(colour), "symbol": SYMBOLS[marker],
                       "dash": "dash" if batch else DASH[lines[algorithm]],
                       "runs": [i for i, k in enumerate(keys) if k == label]})
    fronts: dict[str, dict[str, list[int]]] = {}
    ok = ok.assign(_row=np.arange(len(ok)), _curve=keys)
    for mx in xs:
        for my in ys:
            usable = ok[np.isfinite(_column(ok, mx)) & np.isfinite(_column(ok, my))]
            front = pareto_frame(usable, mx, my) if len(usable) else usable
            fronts[f"{mx}|{my}"] = {plotly_text(c): [int(i) for i in part["_row"]]
                                    for c, part in front.groupby("_curve", sort=True)}
    metrics = {m: {"label": LABELS.get(m, m), "higher": higher_is_better(m),
                   "scales": ["nines", "linear"] if m in xs else ["log", "linear"]} for m in (*xs, *ys)}
    return {"xs": xs, "ys": ys, "metrics": metrics, "ticks": ticks, "runs": runs, "curves": curves,
            "fronts": fronts}


def spec_json(spec: dict[str, Any]) -> str:
    """``spec`` as JSON safe inside a ``<script>`` block: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    text = json.dumps(spec, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def spec_block(spec_id: str, spec: dict[str, Any]) -> str:
    """The JSON block the charts with ``data-spec=spec_id`` read."""
    return f'<script type="application/json" id="{html.escape(spec_id)}">{spec_json(spec)}</script>'


def chart_html(chart_id: str, spec_id: str, x: str, y: str, title: str, all_runs: bool = False,
               static_href: str | None = None) -> str:
    """A chart's container: initially ``y`` against ``x`` (all runs shown with ``all_runs``),
    drawn from the spec block ``spec_id``; with a link to the static figure when given."""
    link = (f'<figcaption>Static figure: <a href="{html.escape(static_href)}">'
            f'{html.escape(static_href.rsplit("/", 1)[-1])}</a></figcaption>' if static_href else "")
    attrs = " ".join(f'data-{k}="{html.escape(str(v), quote=True)}"' for k, v in
                     (("spec", spec_id), ("x", x), ("y", y), ("all", "1" if all_runs else ""),
                      ("title", plotly_text(title))))
    return (f'<figure class="chart" id="{html.escape(chart_id)}" {attrs}>'
            f'<div class="controls"></div><div class="plot"></div>{link}</figure>')


def chart_ids(prefix: str):  # an iterator of str
    """``prefix-1``, ``prefix-2``, … for the charts of one page."""
    return (f"{prefix}-{i}" for i in count(1))


CHART_JS = r"""// annbench report charts: draws every <figure class="chart"> from its JSON spec with Plotly.
"use strict";
(function () {
  function scalesOf(spec, m) { return spec.metrics[m].scales; }
  function values(spec, m, scale) { return spec.runs[scale === "nines" ? m + "@nines" : m]; }
  function pick(arr, idx) { return idx.map(function (i) { return arr[i]; }); }

  function traces(spec, state, hidden) {
    var out = [], front = spec.fronts[state.x + "|" + state.y] || {};
    var xv = values(spec, state.x, state.xScale), yv = values(spec, state.y, state.yScale);
    spec.curves.forEach(function (c) {
      var idx = front[c.name] || [];
      var vis = hidden[c.name] ? "legendonly" : true;
      var line = {type: "scatter", mode: "lines+markers", name: c.name, legendgroup: c.name,
        x: pick(xv, idx), y: pick(yv, idx), text: pick(spec.runs.hover, idx), hovertemplate: "%{text}<extra></extra>",
        line: {color: c.color, dash: c.dash, width: 1.6}, visible: vis,
        marker: {color: c.color, symbol: c.symbol, size: 7, line: {color: "white", width: 0.5}},
        meta: {role: "pareto", runs: idx}};
      if (state.y === "qps" && spec.runs.qps_minus) {
        line.error_y = {type: "data", symmetric: false, array: pick(spec.runs.qps_plus, idx),
          arrayminus: pick(spec.runs.qps_minus, idx), color: c.color, thickness: 1, width: 3};
      }
      out.push(line);
      out.push({type: "scatter", mode: "markers", name: c.name, legendgroup: c.name, showlegend: false,
        x: pick(xv, c.runs), y: pick(yv, c.runs), text: pick(spec.runs.hover, c.runs),
        hovertemplate: "%{text}<extra></extra>", opacity: 0.35,
        marker: {color: c.color, symbol: c.symbol, size: 6}, meta: {role: "all", runs: c.runs},
        visible: state.all ? vis : false});
    });
    return out;
  }

  function axis(spec, m, scale) {
    var a = {title: {text: spec.metrics[m].label + (scale === "nines" ? " (log scale of 1 \u2212 " +
      spec.metrics[m].label + ")" : "")}, type: scale === "log" ? "log" : "linear", zeroline: false,
      gridcolor: "#e6e6e6", automargin: true};
    if (scale === "nines" && spec.ticks[m]) {
      a.tickmode = "array"; a.tickvals = spec.ticks[m].vals; a.ticktext = spec.ticks[m].text;
    }
    return a;
  }

  function layout(spec, state) {
    return {title: {text: state.title, font: {size: 13}, x: 0.01, xanchor: "left"},
      xaxis: axis(spec, state.x, state.xScale),
      yaxis: axis(spec, state.y, state.yScale), hovermode: "closest", margin: {t: 40, r: 10, b: 50, l: 60},
      legend: {x: 1.02, y: 1, xanchor: "left", font: {size: 11}, tracegroupgap: 1}, plot_bgcolor: "white",
      height: 500,
      font: {family: "system-ui, sans-serif"}};
  }

  function select(label, options, current, names, onChange) {
    var wrap = document.createElement("label"), s = document.createElement("select");
    wrap.textContent = label + " ";
    options.forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = o; opt.textContent = names ? names[o] : o; opt.selected = o === current; s.appendChild(opt);
    });
    s.addEventListener("change", function () { onChange(s.value); });
    wrap.appendChild(s);
    return wrap;
  }

  var specs = {};
  function draw(fig) {
    var id = fig.dataset.spec;
    if (!specs[id]) { specs[id] = JSON.parse(document.getElementById(id).textContent); }
    var spec = specs[id];
    var plot = fig.querySelector(".plot"), controls = fig.querySelector(".controls");
    var x = spec.xs.indexOf(fig.dataset.x) >= 0 ? fig.dataset.x : spec.xs[0];
    var y = spec.ys.indexOf(fig.dataset.y) >= 0 ? fig.dataset.y : spec.ys[0];
    var state = {x: x, y: y, xScale: scalesOf(spec, x)[0], yScale: scalesOf(spec, y)[0], all: !!fig.dataset.all,
      title: fig.dataset.title};
    var labels = {};
    Object.keys(spec.metrics).forEach(function (m) { labels[m] = spec.metrics[m].label; });
    function hiddenNow() {
      var h = {};
      (plot.data || []).forEach(function (t) { if (t.visible === "legendonly") { h[t.name] = true; } });
      return h;
    }
    function render() { Plotly.react(plot, traces(spec, state, hiddenNow()), layout(spec, state),
      {displaylogo: false, responsive: true}); }
    function rebuild() {
      controls.textContent = "";
      controls.appendChild(select("x", spec.xs, state.x, labels, function (v) {
        state.x = v; state.xScale = scalesOf(spec, v)[0]; rebuild(); render(); }));
      controls.appendChild(select("scale", scalesOf(spec, state.x), state.xScale, null, function (v) {
        state.xScale = v; render(); }));
      controls.appendChild(select("y", spec.ys, state.y, labels, function (v) {
        state.y = v; state.yScale = scalesOf(spec, v)[0]; rebuild(); render(); }));
      controls.appendChild(select("scale", scalesOf(spec, state.y), state.yScale, null, function (v) {
        state.yScale = v; render(); }));
      var all = document.createElement("label"), box = document.createElement("input");
      box.type = "checkbox"; box.checked = state.all;
      box.addEventListener("change", function () { state.all = box.checked; render(); });
      all.appendChild(box); all.appendChild(document.createTextNode(" all runs"));
      controls.appendChild(all);
    }
    rebuild();
    render();
  }

  document.querySelectorAll("figure.chart").forEach(draw);
})();
"""
