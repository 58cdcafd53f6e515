"""Benchmark charts: PNGs drawn from a results document (bench.json) and nothing else.

`securemsg-bench --charts DIR` measures, saves DIR/bench.json and draws from it;
`python -m securemsg_lab.benchmark.charts DIR/bench.json [--out DIR]` (`make bench-charts`)
redraws the PNGs from a saved file without measuring. Three charts:

- serverbound.png: each scenario's best figures, every server beside bench/refserver,
  labelled with its share of refserver and marked with its target;
- throughput.png: MB/s by message size, one panel per connection count (the sweep);
- latency.png: p50 and p99 round-trip latency by connection count at 64 B (the sweep).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a lab machine or in CI

import matplotlib.pyplot as plt  # after the backend is chosen
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from . import report
from .work import (
    BASE,
    DOC_VERSION,
    REFERENCE,
    THIS,
    Doc,
    Row,
    Series,
    human_size,
    rows,
    series_of,
    threshold_of,
    usable,
)

RESULTS_NAME = "bench.json"
SERVER_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
REFERENCE_COLOUR = "dimgray"
TARGET_COLOUR = "crimson"
DPI = 110


class ChartError(Exception):
    """A results file that cannot be charted: unreadable, not JSON, or the wrong shape."""


# --- the results file ---------------------------------------------------------------------

NUMBER = (int, float)
RUN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "server": str, "cipher": str, "connections": int, "size": int, "rt_per_s": NUMBER,
    "mb_per_s": NUMBER, "p50_us": NUMBER, "p99_us": NUMBER, "errors": int,
    "round_trips": int,
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


def validate(doc: object, where: str) -> Doc:
    """The document if it has the shape securemsg-bench writes; ChartError otherwise."""
    if not isinstance(doc, dict):
        raise ChartError(f"{where}: expected a JSON object (securemsg-bench --json), "
                         f"got {type(doc).__name__}")
    if doc.get("version") != DOC_VERSION:
        raise ChartError(f"{where}: not a version {DOC_VERSION} results file (securemsg-bench "
                         "--json); measure again")
    rounds = doc.get("rounds")
    if not isinstance(rounds, list) or not rounds:
        raise ChartError(f"{where}: 'rounds' must be a non-empty list of loadgen results")
    _check_entries(where, "rounds", rounds, {**RUN_FIELDS, "scenario": str, "round": int})
    _check_entries(where, "runs", doc.get("runs", []), RUN_FIELDS)
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


# --- styles and labels --------------------------------------------------------------------


def servers_of(doc: Doc) -> list[str]:
    return list(dict.fromkeys(s.server for s in series_of(doc["rounds"]) if not s.reference))


def colour(doc: Doc, server: str) -> str:
    if server == REFERENCE:
        return REFERENCE_COLOUR
    return SERVER_COLOURS[servers_of(doc).index(server) % len(SERVER_COLOURS)] \
        if server in servers_of(doc) else SERVER_COLOURS[-1]


def bar_style(doc: Doc, server: str, cipher: str, build: str = THIS) -> dict[str, Any]:
    """xor a full bar, noise the same colour hatched; an older build's bars paler."""
    alpha = 0.45 if build == BASE else 1.0
    if cipher == "xor":
        return {"color": colour(doc, server), "edgecolor": "black", "linewidth": 0.5,
                "alpha": alpha}
    return {"color": "white", "edgecolor": colour(doc, server), "hatch": "///",
            "linewidth": 1, "alpha": alpha}


def line_style(doc: Doc, server: str, cipher: str) -> dict[str, Any]:
    return {"color": colour(doc, server), "linestyle": "-" if cipher == "xor" else "--",
            "marker": "o" if cipher == "xor" else "s", "markersize": 5}


def steps(top: float, bottom: float = 1.0) -> list[float]:
    """1-2-5 steps from below `bottom` to just above `top`: readable log-axis ticks."""
    out: list[float] = []
    exponent = math.floor(math.log10(max(bottom, 1e-9)))
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0 ** exponent
            if value >= bottom / 2:
                out.append(value)
            if value >= top and len(out) > 1:
                return out
        exponent += 1


def plain_number(value: float, _position: object = None) -> str:
    """Tick labels a student reads at a glance: 1,000 and 0.5, not 10^3."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def duration(value_us: float, _position: object = None) -> str:
    if value_us >= 1_000_000:
        return f"{value_us / 1_000_000:.3g} s"
    if value_us >= 1000:
        return f"{value_us / 1000:.3g} ms"
    return f"{value_us:.3g} µs"


def footer(doc: Doc) -> str:
    config = doc.get("config", {})
    return (f"securemsg-bench {doc.get('measured_at', '')}; loopback; {report.loads(doc)}, "
            f"server and load client sharing them; best of {config.get('rounds', '?')} rounds "
            f"of {config.get('seconds_per_run', '?')} s. Data: bench.json beside this chart.")


def finish(fig: Figure, doc: Doc) -> Figure:
    fig.text(0.01, 0.01, footer(doc), fontsize=7.5, color="dimgray", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# --- server-bound work beside refserver -----------------------------------------------------


def draw_scenario(ax: Axes, doc: Doc, scenario_rows: list[Row]) -> None:
    """One scenario: refserver's bar, then each server's, labelled with its share;
    a red tick at the target (the share of refserver it must reach)."""
    names = report.labels(doc)
    builds = [b for b in (BASE, THIS) if b in names]
    first = scenario_rows[0]
    bars: list[tuple[str, float | None, dict[str, Any], float | None, float | None]] = [
        ("refserver", first.reference, {"color": REFERENCE_COLOUR}, None, None)]
    for row in scenario_rows:
        for build in builds:
            tag = f" ({names[build]})" if len(builds) > 1 else ""
            threshold = threshold_of(doc, row) if build == THIS else None
            bars.append((f"{row.server} {row.cipher}{tag}", row.figures.get(build),
                         bar_style(doc, row.server, row.cipher, build), row.shares.get(build),
                         threshold))
    top = max((v for _, v, _, _, _ in bars if v), default=1.0)
    for y, (_, value, style, share, threshold) in enumerate(bars):
        if value is None:
            ax.text(0, y, "  no figure", va="center", fontsize=8)
            continue
        ax.barh(y, value, 0.7, **{"edgecolor": "black", "linewidth": 0.5, **style})
        end = value
        if threshold is not None and first.reference:
            mark = threshold * first.reference
            ax.plot([mark, mark], [y - 0.42, y + 0.42], color=TARGET_COLOUR, linewidth=2.2)
            top = max(top, mark)
            if -0.03 * top < mark - value < 0.3 * top:  # the label clear of the mark
                end = max(value, mark)
        text = f" {value:,.0f}" + (f"  {share:.2f}x" if share is not None else "")
        ax.text(end, y, text, va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.45)
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.set_xlabel(first.scenario.unit)
    note = "  (no target: the loopback's own ceiling)" if first.scenario.yardstick else ""
    ax.set_title(first.scenario.title.replace(" (loopback yardstick)", "") + note, fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def chart_serverbound(doc: Doc) -> Figure:
    by_scenario: dict[str, list[Row]] = {}
    for row in rows(doc):
        by_scenario.setdefault(row.scenario.key, []).append(row)
    # the server-bound scenarios first, the yardstick last
    ordered = sorted(by_scenario.values(), key=lambda rs: rs[0].scenario.yardstick)
    height = 1.0 + 0.32 * max(len(rs) * len(report.labels(doc)) + 1 for rs in ordered)
    fig, axes = plt.subplots(2, (len(ordered) + 1) // 2, figsize=(14, 2 * height + 1.2),
                             squeeze=False)
    for ax, scenario_rows in zip(axes.flat, ordered, strict=False):
        draw_scenario(ax, doc, scenario_rows)
    for ax in list(axes.flat)[len(ordered):]:
        ax.set_axis_off()
    fig.suptitle("Best figures beside bench/refserver, measured in the same run "
                 "(label: share of refserver; red mark: the target)", fontsize=12)
    return finish(fig, doc)


# --- the sweep ----------------------------------------------------------------------------


def sweep_series(doc: Doc) -> list[Series]:
    return series_of(doc.get("runs", []))


def sweep_run(doc: Doc, series: Series, conns: int, size: int) -> dict[str, Any] | None:
    for run in doc.get("runs", []):
        if (Series.of(run), run["connections"], run["size"]) == (series, conns, size) \
                and usable(run):
            return run
    return None


def series_label(series: Series) -> str:
    return "refserver (xor)" if series.reference else f"{series.server} {series.cipher}"


def no_sweep(doc: Doc, what: str) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{what}: this run had no sweep (securemsg-bench --no-sweep)",
            ha="center", va="center")
    return finish(fig, doc)


def chart_throughput(doc: Doc) -> Figure:
    runs = doc.get("runs", [])
    if not runs:
        return no_sweep(doc, "Throughput by message size")
    conns = sorted({r["connections"] for r in runs}) or [1]
    sizes = sorted({r["size"] for r in runs}) or [64]
    fig, axes = plt.subplots(1, len(conns), figsize=(4.6 * len(conns) + 1, 5), sharey=True,
                             squeeze=False)
    values = [r["mb_per_s"] for r in runs if usable(r) and r["mb_per_s"] > 0] or [1.0]
    ticks = steps(max(values), min(values))
    for ax, n in zip(axes[0], conns, strict=True):
        for one in sweep_series(doc):
            points = [(s, run["mb_per_s"]) for s in sizes
                      if (run := sweep_run(doc, one, n, s)) is not None and run["mb_per_s"] > 0]
            if points:
                ax.plot(*zip(*points, strict=True), label=series_label(one),
                        **line_style(doc, one.server, one.cipher))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [human_size(s) for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
        ax.set_ylim(ticks[0], ticks[-1])
        ax.set_title(f"{n} connection{'s' if n != 1 else ''}")
        ax.set_xlabel("message size (log scale)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("payload MB/s (10⁶ bytes/s, log scale)")
    axes[0][0].legend(fontsize=8, title="server cipher", title_fontsize=8)
    fig.suptitle("Throughput by message size (one run each; every ACK checked)")
    return finish(fig, doc)


def chart_latency(doc: Doc) -> Figure:
    """p50 and p99 in panels of their own: lines of one panel never cross the other's."""
    runs = doc.get("runs", [])
    if not runs:
        return no_sweep(doc, "Latency by connections")
    size = 64 if any(r["size"] == 64 for r in runs) else min((r["size"] for r in runs),
                                                               default=64)
    conns = sorted({r["connections"] for r in runs}) or [1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    values = [r[k] for r in runs for k in ("p50_us", "p99_us")
              if r["size"] == size and usable(r) and r[k] > 0] or [1.0]
    ticks = steps(max(values), min(values))
    for ax, (key, name) in zip(axes, (("p50_us", "p50"), ("p99_us", "p99")), strict=True):
        for one in sweep_series(doc):
            points = [(j, run[key]) for j, n in enumerate(conns)
                      if (run := sweep_run(doc, one, n, size)) is not None and run[key] > 0]
            if points:
                ax.plot(*zip(*points, strict=True), label=series_label(one),
                        **line_style(doc, one.server, one.cipher))
        ax.set_xticks(range(len(conns)), [str(n) for n in conns])
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(duration))
        ax.set_ylim(ticks[0], ticks[-1])
        ax.set_xlabel("concurrent connections")
        ax.set_title(f"{name} round-trip latency, {human_size(size)} messages")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("round-trip latency (log scale)")
    axes[0].legend(fontsize=8, title="server cipher", title_fontsize=8)
    return finish(fig, doc)


CHARTS: tuple[tuple[str, Callable[[Doc], Figure]], ...] = (
    ("serverbound.png", chart_serverbound),
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
