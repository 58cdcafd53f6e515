"""securemsg-bench: the command line (bench/README.md)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path

from ..core import paths, process, registry
from ..core.loadgen import LoadgenError
from ..report import html
from . import report
from .builds import BenchError, base_build, make, present, require_tools, this_build
from .measure import Plan, measure
from .work import Doc, TargetSpec, evaluate, parse_targets

DESCRIPTION = """Benchmark every registered server against bench/refserver, on work where the
server is the bottleneck (one CPU; 16 connections; 1 MiB messages) and on the loopback
yardstick, interleaved in one run; each figure a share of refserver's. --compare REV runs
REV's servers too, in the same rounds, and prints both builds' shares and the change."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = registry.default().names()
    parser = argparse.ArgumentParser(prog="securemsg-bench", description=DESCRIPTION)
    parser.add_argument("--compare", metavar="REV",
                        help="also build REV (in a temporary git worktree) and run its servers "
                             "in the same rounds; no sweep, no charts")
    parser.add_argument("--rounds", type=int, help="rounds, the best of which counts "
                        "(1..20, default 3)")
    parser.add_argument("--seconds", type=float,
                        help="seconds per load run (0.1..30, default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="by default 2 rounds of 0.5 s, and a sweep of 1 and 16 connections "
                             "x 64 B and 1 MiB")
    parser.add_argument("--no-sweep", action="store_true",
                        help="only the scenarios (no sweep, no handshakes)")
    parser.add_argument("--servers", default=",".join(names),
                        help=f"implementations, comma list (default: {','.join(names)})")
    parser.add_argument("--ciphers", default="xor,noise", help="comma list: xor,noise")
    parser.add_argument("--json", type=Path, metavar="FILE", help="save the results as JSON")
    parser.add_argument("--charts", type=Path, metavar="DIR",
                        help="save DIR/bench.json and draw its PNG charts there")
    parser.add_argument("--readme", type=Path, metavar="FILE",
                        help="rewrite the benchmark figures of FILE (README.md) from the results")
    parser.add_argument("--no-build", action="store_true", help="do not build this tree first")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is not met (default: figures only)")
    ns = parser.parse_args(argv)
    ns.servers = [s for s in ns.servers.split(",") if s]
    unknown = [s for s in ns.servers if s not in names]
    if unknown:
        parser.error(f"unknown implementation {', '.join(unknown)} (known: {', '.join(names)})")
    ns.ciphers = tuple(c for c in ns.ciphers.split(",") if c)
    if not ns.ciphers or set(ns.ciphers) - {"xor", "noise"}:
        parser.error("--ciphers: xor, noise or both")
    ns.rounds = ns.rounds or (2 if ns.quick else 3)
    ns.seconds = ns.seconds or (0.5 if ns.quick else 1.0)
    if not 1 <= ns.rounds <= 20 or not 0.1 <= ns.seconds <= 30:
        parser.error("--rounds within 1..20, --seconds within 0.1..30")
    if ns.compare and (ns.charts or ns.readme):
        parser.error("--compare draws no charts and writes no README")
    return ns


def plan_of(ns: argparse.Namespace) -> Plan:
    sweep = not ns.no_sweep and not ns.compare
    plan = Plan(ciphers=ns.ciphers, rounds=ns.rounds, seconds=ns.seconds, sweep=sweep,
                handshakes=sweep)
    if ns.quick:
        return replace(plan, sweep_connections=(1, 16), sweep_sizes=(64, 1 << 20))
    return plan


def target_specs(servers: list[str]) -> list[TargetSpec]:
    specs = []
    for name in servers:
        table = registry.default()[name].extra.get("bench", {}).get("targets", {})
        try:
            specs += parse_targets(name, table)
        except ValueError as exc:
            raise BenchError(f"{registry.default()[name].source}: {exc}") from exc
    return specs


def run(ns: argparse.Namespace) -> Doc:
    specs = target_specs(ns.servers)
    this = this_build(ns.servers)
    missing = [n for n, impl in this.implementations.items() if not present(impl)]
    if not ns.no_build:
        make(this)
    require_tools()
    with contextlib.ExitStack() as stack:
        builds = [this]
        if ns.compare:
            base = stack.enter_context(base_build(ns.compare, ns.servers))
            print(f"building {ns.compare} in a temporary worktree ...", file=sys.stderr)
            make(base)
            builds.insert(0, base)
        elif ns.no_build and missing:
            raise BenchError(f"not built: {', '.join(missing)} (run without --no-build)")
        doc = measure(builds, plan_of(ns))
    doc["targets"] = evaluate(doc["rounds"], specs, ns.ciphers)
    return doc


def write_outputs(doc: Doc, ns: argparse.Namespace) -> None:
    text = json.dumps(doc, indent=1) + "\n"
    if ns.json:
        ns.json.write_text(text)
    if ns.charts:
        from . import charts  # matplotlib only when charts are asked for

        ns.charts.mkdir(parents=True, exist_ok=True)
        path = ns.charts / charts.RESULTS_NAME
        path.write_text(text)
        try:
            written = list(charts.render_file(path))
        except charts.ChartError as exc:  # e.g. every run failed: nothing to draw
            raise BenchError(f"charts: {exc}") from exc
        for chart in written:
            print(f"chart: {chart}")
        print(f"report: {write_page(doc, ns.charts / 'index.html', written)}")
    if ns.readme:
        ns.readme.write_text(report.replace_section(ns.readme.read_text(),
                                                    report.readme_section(doc)))
        print(f"updated the benchmark figures of {ns.readme}")


def write_page(doc: Doc, path: Path, charts: list[Path]) -> Path:
    """The tables and charts as one offline HTML page (securemsg_lab.report)."""
    scenarios, sweep = report.scenario_table(doc), report.sweep_table(doc)
    body = [f"<p>{html.esc(report.heading(doc))}</p>", html.table(scenarios[0], scenarios[1:]),
            "<h2>targets</h2>", html.table(["verdict"], ([v] for v in report.verdicts(doc)))]
    if len(sweep) > 1:
        body += ["<h2>sweep</h2>", html.table(sweep[0], sweep[1:])]
    body += [html.figure(chart) for chart in charts if chart.suffix == ".png"]
    return html.write(path, "securemsg benchmark", html.run_metadata(), "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    if problem := paths.outside_checkout():
        print(problem, file=sys.stderr)
        return 2
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    process.interrupt_on(signal.SIGTERM)  # as Ctrl-C: the servers are stopped on the way out
    try:
        doc = run(ns)
        print()
        report.print_all(doc)
        write_outputs(doc, ns)
    except (BenchError, LoadgenError, ValueError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the servers were stopped on the way out
        print("[ERROR] Interrupted", file=sys.stderr)
        return 130
    failed = any(t["verdict"] == "FAIL" for t in doc["targets"])
    return 1 if failed and ns.strict else 0
