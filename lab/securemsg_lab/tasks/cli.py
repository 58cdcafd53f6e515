"""`python -m securemsg_lab.tasks check [N ...]`, `start`, `mitm`.

    check 3          one task: PASS or FAIL with a hint; exit 0 / 1
    check            every task, then a summary; exit 1 if any failed
    start [--force]  create the workspace (copies with the planted bugs, challenges)
    class DIR ...    every task over many workspaces (a class): one line per workspace
    diff             the student's changes to the workspace's programs
    mitm ...         the demo's man-in-the-middle relay (tasks 5 and 6)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..core import paths
from . import procs
from .classcheck import check_class
from .result import Fail, Result
from .workspace import Workspace, changes, start, work_dir

Check = Callable[[Workspace], str]


def checks() -> dict[int, tuple[str, Check]]:
    from .task_bugs import check_task7, check_task8
    from .task_capture import check_task3
    from .task_frames import check_task2, check_task4, check_task5
    from .task_lab import check_task1, check_task6

    return {
        1: ("run the lab", check_task1),
        2: ("read a frame by hand", check_task2),
        3: ("capture and decode it in Wireshark", check_task3),
        4: ("recover the key from an ACK", check_task4),
        5: ("flip bits in flight", check_task5),
        6: ("watch secure mode refuse it", check_task6),
        7: ("fix planted bug A", check_task7),
        8: ("fix planted bug B", check_task8),
    }


def run_check(task: int, ws: Workspace) -> Result:
    title, check = checks()[task]
    try:
        return Result(task, title, True, check(ws))
    except Fail as failure:
        return Result(task, title, False, failure.why, failure.hint, failure.details)
    except procs.ProcessError as exc:
        return Result(task, title, False, str(exc),
                      "a program did not build or start: the lines above say why")


def task_number(text: str) -> int:
    if not text.isdigit() or int(text) not in checks():
        raise argparse.ArgumentTypeError(f"no task {text!r}: tasks are 1..{len(checks())}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="securemsg-tasks",
                                     description="securemsg lab handout: self-checks")
    parser.add_argument("--work", help="the workspace (default handout/work, or "
                        "$SECUREMSG_HANDOUT_WORK)")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check tasks (default: all)")
    check.add_argument("tasks", nargs="*", type=task_number, metavar="N", help="1..8")
    begin = sub.add_parser("start", help="create the workspace")
    begin.add_argument("--force", action="store_true", help="discard an existing workspace")
    begin.add_argument("--seed", type=int, help="fixed challenges (for instructors, tests)")
    group = sub.add_parser("class", help="check many workspaces: one line each")
    group.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                       help="a workspace, or a folder of them (two levels deep)")
    group.add_argument("--tasks", nargs="+", type=task_number, metavar="N",
                       help="only these tasks (default: all)")
    sub.add_parser("diff", help="your changes to the workspace's programs, as one patch")
    sub.add_parser("mitm", help="the man-in-the-middle relay (mitm --help: its options)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if problem := paths.outside_checkout():
        print(problem, file=sys.stderr)
        return 2
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mitm"]:  # the relay's own options, untouched
        from ..wire import mitm

        return mitm.main(argv[1:])
    args = parse_args(argv)
    work = work_dir(args.work)
    if args.command == "start":
        try:
            lines = start(work, force=args.force, seed=args.seed)
        except Fail as failure:
            print(f"[ERROR] {failure.why}\n  {failure.hint}", *failure.details, sep="\n  ")
            return 1
        print("\n".join(lines))
        return 0
    if args.command == "diff":
        status, text = changes(work)
        print(text, end="" if text.endswith("\n") or not text else "\n")
        return 0 if status < 2 else 1
    if args.command == "class":
        return check_class(args.dirs, args.tasks or sorted(checks()), run_check)
    tasks = args.tasks or sorted(checks())
    results = []
    for task in tasks:
        result = run_check(task, Workspace(work))
        print(result.render(), flush=True)
        results.append(result)
    if len(results) > 1:
        passed = [r.task for r in results if r.passed]
        print(f"\n{len(passed)}/{len(results)} tasks pass"
              + (f": {', '.join(map(str, passed))}" if passed else ""))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
