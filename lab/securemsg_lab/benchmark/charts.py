"""Benchmark charts: PNGs drawn from the results JSON of securemsg-bench.

`securemsg-bench --charts DIR` measures, saves DIR/bench.json and draws from it;
`python -m securemsg_lab.benchmark.charts DIR/bench.json [--out DIR]` (`make bench-charts`)
redraws the PNGs from a saved file without measuring anything. Three charts:

- roundtrips.png: round trips/s at 64 B by server x cipher x connections, and the
  1-connection runs beside bench/refserver (the yardstick), the bare loopback
  exchange and the seed's split-write stall;
- throughput.png: MB/s by message size (log-log), one panel per connection count;
- latency.png: round-trip latency percentiles at 64 B, 1 connection (the split-write
  stall beside ours), and p50/p99 by connection count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a lab machine or in CI

import matplotlib.pyplot as plt  # after the backend is chosen
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .bench import human_size

RESULTS_NAME = "bench.json"
PERCENTILES = (("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9"))
PERCENTILE_COLOURS = ("#9ecae1", "#4292c6", "#08519c", "#08306b")
SERVER_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
STALL_COLOUR = "tab:red"
REFERENCE_COLOUR = "dimgray"
DPI = 110

Series = tuple[str, str]  # (server, cipher)
Doc = dict[str, Any]


class ChartError(Exception):
    """A results file that cannot be charted: unreadable, not JSON, or the wrong shape."""


# --- the results file ---------------------------------------------------------------------

NUMBER = (int, float)
RUN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "server": str, "cipher": str, "connections": int, "size": int, "rt_per_s": NUMBER,
    "mb_per_s": NUMBER, "p50_us": NUMBER, "p99_us": NUMBER, "errors": int,
}
SPLIT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "server": str, "split_writes": bool, "rt_per_s": NUMBER, "p50_us": NUMBER,
    "p99_us": NUMBER, "errors": int,
}
#: section -> how many levels of objects lead to the lists of rt/s figures
NESTED_FIGURES = {
    "paired_64b_rt_per_s": 3, "refserver_rt_per_s": 2, "loopback_reference_rt_per_s": 1,
}


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and kind is not bool:  # JSON true is no count
        return False
    return isinstance(value, kind)


def _check_entries(where: str, section: str, entries: object,
                   fields: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(entries, list):
        raise ChartError(f"{where}: '{section}' must be a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ChartError(f"{where}: {section}[{index}] must be an object")
        for name, kind in fields.items():
            if not _is(entry.get(name), kind):
                raise ChartError(f"{where}: {section}[{index}] has no valid '{name}' "
                                 f"(got {entry.get(name)!r})")


def _check_nested(where: str, section: str, value: object, depth: int) -> None:
    if depth == 0:
        if not isinstance(value, list) or not all(_is(v, NUMBER) for v in value):
            raise ChartError(f"{where}: '{section}' must end in lists of numbers")
        return
    if not isinstance(value, dict):
        raise ChartError(f"{where}: '{section}' must be an object")
    for inner in value.values():
        _check_nested(where, section, inner, depth - 1)


def validate(doc: object, where: str) -> Doc:
    """The document if it has the shape securemsg-bench writes; ChartError otherwise."""
    if not isinstance(doc, dict):
        raise ChartError(f"{where}: expected a JSON object (securemsg-bench --json), "
                         f"got {type(doc).__name__}")
    runs = doc.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ChartError(f"{where}: 'runs' must be a non-empty list of loadgen results")
    _check_entries(where, "runs", runs, RUN_FIELDS)
    _check_entries(where, "split_writes", doc.get("split_writes", []), SPLIT_FIELDS)
    for section, depth in NESTED_FIGURES.items():
        _check_nested(where, section, doc.get(section, {}), depth)
    loads = doc.get("load_average", [])
    if not isinstance(loads, list) or not all(_is(v, NUMBER) for v in loads):
        raise ChartError(f"{where}: 'load_average' must be a list of numbers")
    return doc


def load_results(path: Path) -> Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChartError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ChartError(f"{path}: not a text file ({exc.reason})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChartError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                         ) from exc
    return validate(doc, str(path))


# --- reading the figures ------------------------------------------------------------------


def good_runs(doc: Doc) -> list[dict[str, Any]]:
    return [r for r in doc["runs"] if r["errors"] == 0 and r.get("mode", "roundtrip") ==
            "roundtrip"]


def series_of(doc: Doc) -> list[Series]:
    return list(dict.fromkeys((r["server"], r["cipher"]) for r in doc["runs"]))


def run_at(doc: Doc, series: Series, conns: int, size: int) -> dict[str, Any] | None:
    for run in good_runs(doc):
        if (run["server"], run["cipher"], run["connections"], run["size"]) == (
                *series, conns, size):
            return run
    return None


def small_size(doc: Doc) -> int:
    sizes = {r["size"] for r in doc["runs"]}
    return 64 if 64 in sizes else min(sizes)


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def colour(doc: Doc, server: str) -> str:
    servers = list(dict.fromkeys(s for s, _ in series_of(doc)))
    return SERVER_COLOURS[servers.index(server) % len(SERVER_COLOURS)]


def bar_style(doc: Doc, series: Series) -> dict[str, Any]:
    """xor a full bar, noise the same colour hatched: the pair reads in grey too."""
    server, cipher = series
    if cipher == "xor":
        return {"color": colour(doc, server), "edgecolor": "black", "linewidth": 0.5}
    return {"color": "white", "edgecolor": colour(doc, server), "hatch": "///", "linewidth": 1}


def line_style(doc: Doc, series: Series) -> dict[str, Any]:
    server, cipher = series
    return {"color": colour(doc, server), "linestyle": "-" if cipher == "xor" else "--",
            "marker": "o" if cipher == "xor" else "s"}


def short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def plain_number(value: float, _position: object = None) -> str:
    """Tick labels a student reads at a glance: 1,000 and 0.1, not 10^3 and 10^-1."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def duration(value_us: float, _position: object = None) -> str:
    if value_us >= 1_000_000:
        return f"{value_us / 1_000_000:.3g} s"
    if value_us >= 1000:
        return f"{value_us / 1000:.3g} ms"
    return f"{value_us:.3g} µs"


def footer(doc: Doc) -> str:
    loads = " → ".join(f"{v:.1f}" for v in doc.get("load_average", []))
    config = doc.get("config", {})
    parts = [f"securemsg-bench {doc.get('measured_at', '')}".strip(), "loopback"]
    if loads:
        parts.append(f"load average (1 min) {loads} on {doc.get('cpus', '?')} CPUs, "
                     "server and load client sharing them")
    if isinstance(config.get("seconds_per_run"), NUMBER):
        parts.append(f"{config['seconds_per_run']:g} s per run")
    return "; ".join(parts) + ". Data: bench.json beside this chart."


def finish(fig: Figure, doc: Doc) -> Figure:
    fig.text(0.01, 0.012, footer(doc), fontsize=7.5, color="dimgray")
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return fig


# --- the charts ---------------------------------------------------------------------------


def draw_roundtrips_by_connections(ax: Axes, doc: Doc) -> None:
    size = small_size(doc)
    series = series_of(doc)
    conns = sorted({r["connections"] for r in doc["runs"]})
    width = 0.8 / max(1, len(series))
    for i, one in enumerate(series):
        xs, ys = [], []
        for j, n in enumerate(conns):
            run = run_at(doc, one, n, size)
            if run is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(run["rt_per_s"])
        bars = ax.bar(xs, ys, width, label=f"{one[0]} {one[1]}", **bar_style(doc, one))
        ax.bar_label(bars, labels=[short(y) for y in ys], fontsize=7, padding=1)
    ax.set_xticks(range(len(conns)), [str(n) for n in conns])
    ax.set_xlabel("concurrent connections (one load-client thread each)")
    ax.set_ylabel("round trips / s (every ACK checked)")
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.set_title(f"Round trips per second, {human_size(size)} messages")
    ax.legend(fontsize=8, title="server cipher", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def yardstick_rows(doc: Doc) -> list[tuple[str, float, dict[str, Any]]]:
    """(label, rt/s, bar style) of the 64 B, 1-connection comparison, top to bottom."""
    rows: list[tuple[str, float, dict[str, Any]]] = []
    floor = median_or_none(doc.get("loopback_reference_rt_per_s", {}).get("any", []))
    if floor is not None:
        rows.append(("bare loopback, no server\n(bench/rttfloor)", floor,
                     {"color": "white", "edgecolor": REFERENCE_COLOUR, "hatch": "..."}))
    pooled = [v for vs in doc.get("refserver_rt_per_s", {}).get("any", {}).values() for v in vs]
    if pooled:
        rows.append(("yardstick: bench/refserver\n(minimal C, thread per conn)",
                     statistics.median(pooled), {"color": REFERENCE_COLOUR}))
    paired = doc.get("paired_64b_rt_per_s", {}).get("any", {})
    for server, cipher in series_of(doc):
        if cipher != "xor":
            continue
        value = median_or_none(paired.get(server, {}).get("xor", []))
        if value is None and (run := run_at(doc, (server, "xor"), 1, small_size(doc))):
            value = run["rt_per_s"]
        if value is not None:
            rows.append((f"{server} xor (ours: one write\nper frame, TCP_NODELAY)", value,
                         bar_style(doc, (server, "xor"))))
    rows += [(f"{sw['server']} xor, client with the seed's\nsplit writes, no NODELAY",
              sw["rt_per_s"], {"color": STALL_COLOUR}) for sw in stalled_runs(doc)]
    return rows


def stalled_runs(doc: Doc) -> list[dict[str, Any]]:
    """loadgen --split-writes runs: the seed's bug, length and body in two writes."""
    return [sw for sw in doc.get("split_writes", []) if sw["split_writes"] and sw["errors"] == 0]


def draw_yardstick(ax: Axes, doc: Doc) -> None:
    rows = yardstick_rows(doc)
    if not rows:
        ax.set_axis_off()
        return
    labels = [label for label, _, _ in rows]
    yardstick = next((v for label, v, _ in rows if "refserver" in label), None)
    for y, (label, value, style) in enumerate(rows):
        ax.barh(y, value, 0.7, **{"edgecolor": "black", "linewidth": 0.5, **style})
        text = f"{value:,.0f}"
        if yardstick and "refserver" not in label:
            share = value / yardstick
            text += (f"  ({share:.2g}x refserver)" if share >= 0.01
                     else f"  (1/{1 / share:,.0f} of refserver)")
        ax.text(value * 1.08, y, text, va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=min(v for _, v, _ in rows) / 3, right=max(v for _, v, _ in rows) * 15)
    ax.set_xlabel("round trips / s (log scale)")
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.set_title(f"{human_size(small_size(doc))}, 1 connection: yardstick and the "
                 "split-write stall\n(medians of the alternated runs where measured)", fontsize=11)
    ax.grid(axis="x", alpha=0.3, which="both")


def chart_roundtrips(doc: Doc) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.6),
                                      gridspec_kw={"width_ratios": [1.35, 1]})
    draw_roundtrips_by_connections(left, doc)
    draw_yardstick(right, doc)
    return finish(fig, doc)


def chart_throughput(doc: Doc) -> Figure:
    conns = sorted({r["connections"] for r in doc["runs"]})
    sizes = sorted({r["size"] for r in doc["runs"]})
    fig, axes = plt.subplots(1, len(conns), figsize=(4.6 * len(conns) + 1, 4.8), sharey=True,
                             squeeze=False)
    for ax, n in zip(axes[0], conns, strict=True):
        for one in series_of(doc):
            points = [(s, run["mb_per_s"]) for s in sizes
                      if (run := run_at(doc, one, n, s)) is not None and run["mb_per_s"] > 0]
            if points:
                ax.plot(*zip(*points, strict=True), label=f"{one[0]} {one[1]}",
                        **line_style(doc, one))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [human_size(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(f"{n} connection{'s' if n != 1 else ''}")
        ax.set_xlabel("message size (log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("payload MB/s (10⁶ bytes/s, log scale)")
    axes[0][0].yaxis.set_major_formatter(FuncFormatter(plain_number))
    axes[0][0].legend(fontsize=8, title="server cipher", title_fontsize=8)
    fig.suptitle("Throughput by message size (plaintext client → server, every ACK checked)")
    return finish(fig, doc)


def latency_rows(doc: Doc) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, loadgen result, stalled) of the percentile chart, left to right."""
    size = small_size(doc)
    rows = [(f"{s} {c}", run, False) for s, c in series_of(doc)
            if (run := run_at(doc, (s, c), 1, size)) is not None]
    rows += [(f"{sw['server']} xor,\nclient with the\nseed's split writes", sw, True)
             for sw in stalled_runs(doc)]
    return rows


def draw_percentiles(ax: Axes, doc: Doc) -> None:
    rows = latency_rows(doc)
    shown = [(key, name) for key, name in PERCENTILES
             if any(_is(run.get(key), NUMBER) for _, run, _ in rows)]
    width = 0.8 / max(1, len(shown))
    ax.set_yscale("log")
    for i, (key, name) in enumerate(shown):
        points = [(j - 0.4 + width * (i + 0.5), max(run[key], 0.1))  # log axis: no zero
                  for j, (_, run, _) in enumerate(rows) if _is(run.get(key), NUMBER)]
        ax.bar(*zip(*points, strict=True), width, label=name, color=PERCENTILE_COLOURS[i],
               edgecolor="black", linewidth=0.4)
    for j, (_, run, stalled) in enumerate(rows):
        if stalled:
            ax.axvspan(j - 0.45, j + 0.45, color=STALL_COLOUR, alpha=0.12, linewidth=0,
                       zorder=0)
            top = max(run[k] for k, _ in shown if _is(run.get(k), NUMBER))
            ax.text(j, top * 1.4, f"stall:\np50 {duration(run['p50_us'])}", ha="center",
                    fontsize=8, color=STALL_COLOUR)
            ax.set_ylim(top=max(ax.get_ylim()[1], top * 5))
    ax.set_xticks(range(len(rows)), [label for label, _, _ in rows], fontsize=8)
    ax.set_ylabel("round-trip latency (log scale)")
    ax.yaxis.set_major_formatter(FuncFormatter(duration))
    ax.set_title(f"Latency percentiles, {human_size(small_size(doc))}, 1 connection")
    ax.legend(fontsize=8, title="percentile", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")


def draw_latency_by_connections(ax: Axes, doc: Doc) -> None:
    size = small_size(doc)
    conns = sorted({r["connections"] for r in doc["runs"]})
    for one in series_of(doc):
        for key, name, alpha in (("p50_us", "p50", 1.0), ("p99_us", "p99", 0.45)):
            points = [(j, run[key]) for j, n in enumerate(conns)
                      if (run := run_at(doc, one, n, size)) is not None and run[key] > 0]
            if points:
                ax.plot(*zip(*points, strict=True), alpha=alpha,
                        label=f"{one[0]} {one[1]} {name}", **line_style(doc, one))
    ax.set_xticks(range(len(conns)), [str(n) for n in conns])
    ax.set_yscale("log")
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("round-trip latency (log scale)")
    ax.yaxis.set_major_formatter(FuncFormatter(duration))
    ax.set_title(f"p50 (strong) and p99 (faded) by connections, {human_size(size)}")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")


def chart_latency(doc: Doc) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.4),
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    draw_percentiles(left, doc)
    draw_latency_by_connections(right, doc)
    return finish(fig, doc)


CHARTS: tuple[tuple[str, Callable[[Doc], Figure]], ...] = (
    ("roundtrips.png", chart_roundtrips),
    ("throughput.png", chart_throughput),
    ("latency.png", chart_latency),
)


def render(doc: Doc, out_dir: Path) -> list[Path]:
    """Every chart of a validated results document, as PNG files in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in CHARTS:
        fig = draw(doc)
        try:
            path = out_dir / name
            # no "Software" text chunk: a redraw with another matplotlib is the same file
            fig.savefig(path, dpi=DPI, metadata={"Software": None})
            written.append(path)
        finally:
            plt.close(fig)
    return written


def render_file(results: Path, out_dir: Path | None = None) -> list[Path]:
    return render(load_results(results), out_dir or results.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the benchmark charts from a results "
                                     "JSON (securemsg-bench --json/--charts) without measuring.")
    parser.add_argument("results", type=Path, help=f"results file (e.g. docs/bench/{RESULTS_NAME})")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="directory for the PNGs (default: the results file's)")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        written = render_file(ns.results, ns.out)
    except ChartError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
