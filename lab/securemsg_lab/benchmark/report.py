"""The benchmark's tables, as text for the terminal and as Markdown for README.md, all
computed from the results document (work.rows, the targets it carries)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .work import BASE, THIS, Doc, Row, human_size, rows, threshold_of, usable

README_BEGIN = "<!-- securemsg-bench: begin (written by make bench from docs/bench/bench.json) -->"
README_END = "<!-- securemsg-bench: end -->"


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def change(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.0f}%"


def loads(doc: Doc) -> str:
    values = " -> ".join(f"{v:.1f}" for v in doc.get("load_average", []))
    return f"load average (1 min) {values} on {doc.get('cpus', '?')} CPUs"


def labels(doc: Doc) -> dict[str, str]:
    return {b["key"]: b["label"] for b in doc.get("builds", [])} or {THIS: "this tree"}


def target_cell(doc: Doc, row: Row, build: str = THIS) -> str:
    threshold = threshold_of(doc, row)
    if row.scenario.yardstick:
        return "none (yardstick)"
    if threshold is None:
        return "-"
    share = row.shares.get(build)
    verdict = "?" if share is None else "met" if share >= threshold else "NOT met"
    return f">= {threshold:g}x {verdict}"


def figure(value: float | None, row: Row) -> str:
    return f"{num(value)} {row.scenario.unit}"


def scenario_table(doc: Doc) -> list[list[str]]:
    """The rows of the scenario table: one build, or two (--compare) and the change."""
    names = labels(doc)
    builds = [b for b in (BASE, THIS) if b in names]
    header = ["work", "server", "cipher", "refserver"]
    for build in builds:
        header += [names[build] if len(builds) > 1 else "server's figure", "share"]
    if len(builds) > 1:
        header.append("change")
    table = [[*header, f"target ({names[THIS]})" if len(builds) > 1 else "target"]]
    for row in rows(doc):
        line = [row.scenario.title, row.server, row.cipher, figure(row.reference, row)]
        for build in builds:
            line += [figure(row.figures.get(build), row), times(row.shares.get(build))]
        if len(builds) > 1:
            line.append(change(row.change))
        table.append([*line, target_cell(doc, row)])
    return table


def text(table: Sequence[Sequence[str]], left: int = 3) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    out = []
    for n, cells in enumerate(table):
        out.append("  ".join(c.ljust(w) if i < left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in out)


def markdown(table: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(cells) + " |" for cells in table[1:]]
    return "\n".join(lines)


def verdicts(doc: Doc) -> list[str]:
    out = []
    for t in doc.get("targets", []):
        out.append(f"{t['verdict']:<4}  {t['name']}: {times(t['measured'])} "
                   f"(target >= {t['threshold']:g}x)")
    return out


def heading(doc: Doc) -> str:
    config = doc.get("config", {})
    return (f"Best of {config.get('rounds', '?')} rounds of {config.get('seconds_per_run', '?')} s "
            f"per run, every server interleaved with bench/refserver in each round; "
            f"{loads(doc)}; measured {doc.get('measured_at', '?')}")


def sweep_table(doc: Doc) -> list[list[str]]:
    table = [["server", "cipher", "conns", "size", "rt/s", "MB/s", "p50 µs", "p99 µs", "errors"]]
    for r in doc.get("runs", []):
        table.append([r["server"], r["cipher"], str(r["connections"]), human_size(r["size"]),
                      num(r["rt_per_s"]), num(r["mb_per_s"], 1), num(r["p50_us"], 1),
                      num(r["p99_us"], 1), str(r["errors"])])
    return table


def print_all(doc: Doc) -> None:
    if doc.get("runs"):
        print("Sweep (one run each, this tree; context for the charts):")
        print(text(sweep_table(doc), left=2))
        print()
    if doc.get("handshakes"):
        print("Connections per second (connect, handshake, one 64 B message, close; 2 clients):")
        for h in doc["handshakes"]:
            print(f"  {h['server']:<8} {h['cipher']:<6} {num(h['rt_per_s']):>8} /s   "
                  f"p99 {num(h['p99_us'], 1)} µs   errors {h['errors']}")
        print()
    print(heading(doc))
    if doc.get("round_load_average"):
        print("load average (1 min) at the start of each round: " +
              ", ".join(f"{v:.1f}" for v in doc["round_load_average"]))
    print(text(scenario_table(doc)))
    spread = round_spread(doc)
    if spread:
        print(f"(spread of the rounds: each figure's worst round is on average {spread:.0%} "
              "below its best)")
    print()
    print("Targets (this tree; shares of bench/refserver in the same run):")
    for line in verdicts(doc) or ["none"]:
        print(f"  {line}")
    failed = [r for r in [*doc["rounds"], *doc.get("runs", []), *doc.get("handshakes", [])]
              if r.get("errors")]
    if failed:
        print(f"Runs with errors ({len(failed)}; never a figure), the first error of each:")
        for r in failed[:20]:
            print(f"  {r.get('build', THIS)}/{r['server']}/{r['cipher']} {r['connections']} "
                  f"conns x {human_size(r['size'])}: {r['errors']} errors, {r['first_error']}")
    for note in doc.get("skipped", []):
        print(f"skipped: {note}")


def round_spread(doc: Doc) -> float | None:
    """How far the rounds of one figure lie apart: mean of (best - worst) / best."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for r in doc["rounds"]:
        if usable(r):
            key = (r["scenario"], r.get("build"), r["server"], r["cipher"])
            groups.setdefault(key, []).append(float(r["rt_per_s"]))
    gaps = [(max(v) - min(v)) / max(v) for v in groups.values() if len(v) > 1 and max(v) > 0]
    return statistics.mean(gaps) if gaps else None


def readme_section(doc: Doc) -> str:
    """README's benchmark figures, from the committed bench.json (a test keeps them equal)."""
    failed = [t for t in doc.get("targets", []) if t["verdict"] != "PASS"]
    summary = ("Every target is met." if not failed else
               f"{len(failed)} of {len(doc.get('targets', []))} targets are not met: " +
               "; ".join(f"{t['name']} {times(t['measured'])} (target >= {t['threshold']:g}x)"
                         for t in failed) + ".")
    return "\n".join([README_BEGIN, "", heading(doc) + ":", "", markdown(scenario_table(doc)), "",
                      summary, "", README_END])


def replace_section(readme: str, section: str) -> str:
    """README's text with the section between the markers replaced."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README has no benchmark markers")
    return readme[:start] + section + readme[end + len(README_END):]
