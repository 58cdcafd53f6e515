"""securemsg-grade: grade a submission, or a class of them.

    securemsg-grade PATH [--config FILE] [--out DIR]     # results.json (Gradescope), index.html
    securemsg-grade --class DIR [--out DIR]              # each folder of DIR, in parallel:
                                                         # summary.csv, index.html, one per student
Always writes results.json within the configured time limit. Locally each submission is
graded in a network namespace of its own (unshare -rn) where the system allows one:
loopback only; its programs run under CPU, memory and output limits (jail.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import registry as registry_module
from ..core.backend import open_backend
from ..core.process import run as run_program
from ..matrix.cells import results_cells
from ..report import html
from . import grader

ISOLATED = "SECUREMSG_GRADE_ISOLATED"  # set inside the namespace: do not enter another


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="securemsg-grade", description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, nargs="?", help="the submission's folder")
    parser.add_argument("--class", dest="class_dir", type=Path, metavar="DIR",
                        help="grade every folder of DIR (a class) and summarise")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"weights and visibility (default: {grader.DEFAULT_CONFIG.name})")
    parser.add_argument("--out", type=Path, default=None, help="default: results/grade/NAME")
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="cells (or students) "
                        "at once; default: the config's, else one per CPU core")
    parser.add_argument("--no-isolation", action="store_true",
                        help="local: run without a network namespace of its own")
    args = parser.parse_args(argv)
    if (args.path is None) == (args.class_dir is None):
        parser.error("give a submission PATH or --class DIR")
    return args


def isolate(argv: list[str]) -> None:
    """Re-run this command in a new user and network namespace with only loopback up,
    when the system allows one; otherwise go on and say so."""
    if os.environ.get(ISOLATED) or not shutil.which("unshare") or not shutil.which("ip"):
        return
    probe = run_program(["unshare", "-rn", "ip", "link", "set", "lo", "up"], timeout=10)
    if probe.exit_code != 0:
        print("[grade] no network namespace here: the submission is not kept off the network",
              file=sys.stderr)
        return
    os.environ[ISOLATED] = "1"
    command = [sys.executable, "-m", "securemsg_lab.grade", *argv]
    os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"',  # noqa: S606
                          "sh", *command])


def grade_one(args: argparse.Namespace) -> int:
    started = time.monotonic()
    config = grader.load_config(args.config)
    deadline = started + config.time_limit - 10  # room to write the results
    out = args.out or Path("results") / "grade" / args.path.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    registry = registry_module.load()
    fatal, note = "", f"Graded against {', '.join(registry.reference_names())}."
    try:
        submission = grader.load_submission(args.path, config)
    except grader.SubmissionError as error:
        fatal, submission = f"Not graded: {error}", None
    if submission is None:  # no entry: the tests all the same, each a zero with the reason
        submission = registry_module.Implementation(grader.SUBMISSION, features=frozenset(
            registry_module.FEATURES))
    registry.add(submission)
    items = grader.plan(config, registry, submission, args.backend)
    specs = list(dict.fromkeys(spec for specs in items.values() for spec in specs))
    if os.environ.get(ISOLATED):
        note += " Network: loopback only (a namespace of its own)."
    outcomes = {}
    backend = None if fatal else open_backend(args.backend)
    try:
        if backend is not None:
            jobs = args.jobs or config.jobs or os.cpu_count() or 2
            outcomes, broke = grader.run(backend, registry, specs, out / "cells", jobs, deadline)
            fatal = f"The submission did not build or start: {broke}" if broke else ""
        tests = grader.score(config, items, outcomes, fatal)
        result = grader.results_json(tests, time.monotonic() - started,
                                     f"{fatal}\n{note}".strip())
        (out / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
        write_page(out, result, [outcomes[s] for s in specs] if outcomes else [], args.backend)
    finally:  # after the results: stopping what runs past the time limit takes a while
        if backend is not None:
            backend.close()
    print(f"{result['score']:.1f} / {result['max_score']:.1f}  {out / 'results.json'}  "
          f"{out / 'index.html'}")
    return 0


def write_page(out: Path, result: dict, outcomes: list, backend: str) -> Path:
    rows = [(t["name"], f"{t['score']:g} / {t['max_score']:g}", t["status"], t["visibility"])
            for t in result["tests"]]
    body = (f"<p>{html.esc(result['output'])}</p>"
            + html.table(["test", "score", "status", "visibility"], rows))
    if outcomes:
        body += "<h2>cells</h2>" + html.matrix_body(results_cells(outcomes, backend), out)
    title = f"securemsg grade: {result['score']:g} / {result['max_score']:g}"
    return html.write(out / "index.html", title, html.run_metadata(), body)


def grade_class(args: argparse.Namespace) -> int:
    """Every folder of the class, `jobs` at once, each in a process of its own; then
    summary.csv and index.html over them."""
    out = args.out or Path("results") / "grade-class"
    folders = sorted(p for p in args.class_dir.iterdir() if p.is_dir())
    timeout = grader.load_config(args.config).time_limit + 60
    extra = [*(["--config", str(args.config)] if args.config else []), "--backend", args.backend,
             "-j", "2", *(["--no-isolation"] if args.no_isolation else [])]

    def one(folder: Path) -> dict:
        target = out / folder.name
        done = run_program([sys.executable, "-m", "securemsg_lab.grade", str(folder), "--out",
                            str(target), *extra], role=folder.name, timeout=timeout)
        path = target / "results.json"
        if not path.exists():
            return {"name": folder.name, "score": 0, "max_score": 0, "tests": [],
                    "output": f"the grader failed (exit {done.exit_code})"}
        return {"name": folder.name, **json.loads(path.read_text())}

    with ThreadPoolExecutor(max_workers=args.jobs or os.cpu_count() or 2) as pool:
        results = list(pool.map(one, folders))
    write_summary(out, results)
    print(f"{len(results)} submissions: {out / 'summary.csv'}, {out / 'index.html'}")
    return 0


def write_summary(out: Path, results: list[dict]) -> None:
    names = list(dict.fromkeys(t["name"] for r in results for t in r["tests"]))
    with (out / "summary.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["submission", "score", "max_score", *names])
        for r in results:
            scores = {t["name"]: t["score"] for t in r["tests"]}
            writer.writerow([r["name"], r["score"], r["max_score"],
                             *(scores.get(name, "") for name in names)])
    rows = "".join(
        f'<tr><td><a href="{html.esc(r["name"])}/index.html">{html.esc(r["name"])}</a></td>'
        f'<td>{r["score"]:g} / {r["max_score"]:g}</td>'
        f'<td>{html.esc(r["output"].splitlines()[0] if r["output"] else "")}</td></tr>'
        for r in results)
    body = (f"<p>{len(results)} submissions; per test: "
            f'<a href="summary.csv">summary.csv</a></p><table><tr><th>submission</th>'
            f"<th>score</th><th>note</th></tr>{rows}</table>")
    html.write(out / "index.html", "securemsg grade: class summary", html.run_metadata(), body)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.class_dir is not None:
        return grade_class(args)
    if args.backend == "local" and not args.no_isolation:
        isolate(argv)
    code = grade_one(args)
    sys.stdout.flush()
    os._exit(code)  # cells past the time limit may still be running: do not wait for them
