"""`securemsg-tasks class DIR ...` (`make class-check CLASS=...`): every task's check over
N workspaces, one line per workspace, each workspace's full report beside its answers.

A DIR is a workspace (it holds answers/) or a folder of them, searched two levels deep
(/srv/lab/alice/work). Workspaces are checked one after another: tasks 7 and 8 build and
benchmark, and a benchmark wants the machine to itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .result import Result
from .workspace import Workspace

REPORT = "check-report.txt"
SEARCH_DEPTH = 2


def find_workspaces(roots: list[Path]) -> list[Path]:
    """Every workspace under the given folders, sorted, each once."""
    found: set[Path] = set()
    for root in roots:
        level = [root.resolve()]
        for _ in range(SEARCH_DEPTH + 1):
            found.update(path for path in level if (path / "answers").is_dir())
            level = [child for path in level if not (path / "answers").is_dir()
                     for child in sorted(path.iterdir()) if child.is_dir()]
    return sorted(found)


def check_class(roots: list[Path], tasks: list[int],
                run_check: Callable[[int, Workspace], Result]) -> int:
    """Check every workspace; print the table; exit status 1 if any check failed."""
    works = find_workspaces(roots)
    if not works:
        print(f"no workspace (a folder with answers/) under {', '.join(map(str, roots))}")
        return 1
    width = max(len(str(work)) for work in works)
    print(f"{'workspace':<{width}}  " + " ".join(f"{task:>4}" for task in tasks) + "  passed")
    passed_by_task = dict.fromkeys(tasks, 0)
    for work in works:
        results = [run_check(task, Workspace(work)) for task in tasks]
        (work / REPORT).write_text("\n".join(r.render() for r in results) + "\n",
                                   encoding="utf-8")
        for result in results:
            passed_by_task[result.task] += result.passed
        marks = " ".join(f"{'PASS' if r.passed else 'FAIL':>4}" for r in results)
        count = sum(r.passed for r in results)
        print(f"{work!s:<{width}}  {marks}  {count}/{len(tasks)}", flush=True)
    print(f"{'passed':<{width}}  " + " ".join(f"{passed_by_task[t]:>4}" for t in tasks)
          + f"  of {len(works)} workspaces; reports: WORKSPACE/{REPORT}")
    return 0 if all(passed_by_task[t] == len(works) for t in tasks) else 1
