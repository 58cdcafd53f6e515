"""The programs the checks run, through the lab core: the implementations registry gives
each program's command line, `securemsg_lab.core.process` starts and stops it.

The reference programs are the registry's entries that handout/bugs/bugs.toml plants a
bug in. A workspace's copies are the same entries with their root moved to the workspace
(NAME-work), written as registry TOML files so the matrix can load them too
(`--implementations`). Servers listen on 127.0.0.1, port 0; every wait is bounded.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..core import process, registry, timeouts
from ..core.paths import REPO

LOOPBACK = "127.0.0.1"
RUN_TIMEOUT = 30.0
#: the planted bugs: which implementation's copy each patch goes into (data, not code)
BUGS_DIR = REPO / "handout" / "bugs"
BUGS_FILE = BUGS_DIR / "bugs.toml"


class ProcessError(Exception):
    """A program did not build, start, or do what the check needed."""


@dataclass(frozen=True)
class Bug:
    """One planted bug of handout/bugs/bugs.toml."""

    letter: str
    implementation: str  # the registry entry whose workspace copy carries it
    patch: Path
    task: int


def bugs(bugs_file: Path | None = None) -> dict[str, Bug]:
    """The planted bugs by letter (A, B), from handout/bugs/bugs.toml."""
    path = BUGS_FILE if bugs_file is None else bugs_file
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    return {letter: Bug(letter, str(entry["implementation"]), path.parent / entry["patch"],
                        int(entry["task"])) for letter, entry in sorted(doc.items())}


def bug_for_task(task: int) -> Bug:
    return next(bug for bug in bugs().values() if bug.task == task)


def lab_names() -> list[str]:
    """The implementations the handout copies into a workspace (the planted bugs' ones),
    in the registry's order: the reference programs the checks run."""
    wanted = {bug.implementation for bug in bugs().values()}
    return [name for name in registry.default().names() if name in wanted]


def tree_of(name: str) -> str:
    """The top folder of an implementation's local programs (c/server: c)."""
    impl = registry.default()[name]
    program = Path(impl.program("server")[-1])
    return program.relative_to(impl.root).parts[0]


def built(name: str, tree: Path = REPO) -> bool:
    """Whether an implementation's local programs exist (a build made them)."""
    impl = implementation(tree, name)
    return all(Path(word).exists() for role in ("server", "client")
               for word in impl.program(role) if "/" in word)


def no_build_name() -> str:
    """A reference implementation that needs no build: what the checks run to look at a
    frame or a recorded exchange (tasks 1, 2, 5, 6)."""
    impls = registry.default()
    return next((name for name in lab_names() if not impls[name].local_build),
                lab_names()[0])


def built_names(tree: Path = REPO) -> list[str]:
    """The lab's implementations whose programs are built in `tree`."""
    return [name for name in lab_names() if built(name, tree)]


def work_name(name: str) -> str:
    return f"{name}-work"


def entry_dir(work: Path) -> Path:
    return work / ".implementations"


def write_entries(work: Path) -> Path:
    """Registry entries for the workspace's programs: the reference entries, renamed,
    with the workspace as their root. The directory holding them."""
    out = entry_dir(work)
    out.mkdir(exist_ok=True)
    for name in lab_names():
        doc = tomllib.loads(Path(registry.default()[name].source).read_text(encoding="utf-8"))
        local = doc.get("local", {})
        lines = [f"name = {json.dumps(work_name(name))}",
                 f"description = {json.dumps('the handout workspace copy of ' + name)}",
                 f"argv = {json.dumps(doc.get('argv', 'options'))}",
                 f"features = {json.dumps(doc.get('features', ['xor']))}",
                 "", "[local]", f"root = {json.dumps(str(work))}"]
        lines += [f"{key} = {json.dumps(local[key])}" for key in ("build", "server", "client")
                  if key in local]
        (out / f"{work_name(name)}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def implementation(tree: Path, lang: str) -> registry.Implementation:
    """The registry entry of `lang` in `tree`: the reference, or a workspace's copy."""
    if tree.resolve() == REPO.resolve():
        return registry.default()[lang]
    return registry.default()[lang].rooted(tree.resolve(), work_name(lang))


def server_argv(tree: Path, lang: str, options: list[str]) -> list[str]:
    impl = implementation(tree, lang)
    return [*impl.program("server"), *impl.server_args(0, ["--bind", LOOPBACK, *options])]


def client_argv(tree: Path, lang: str, port: int, message: str, options: list[str]) -> list[str]:
    impl = implementation(tree, lang)
    return [*impl.program("client"), *impl.client_args(LOOPBACK, port, message, options)]


class TaskServer:
    """A running server, standard error merged into its output in write order."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.port = 0
        try:
            self.proc = process.Process(argv, role="server", merge=True)
        except OSError as exc:
            raise ProcessError(f"cannot start {argv[0]}: {exc.strerror}") from exc

    def output(self) -> str:
        return self.proc.out.snapshot().decode("utf-8", "replace")

    def start(self) -> TaskServer:
        try:
            self.port = self.proc.wait_listening()
        except process.LaunchError as exc:
            raise ProcessError(str(exc)) from exc
        return self

    def stop(self) -> str:
        self.proc.stop()
        return self.output()

    def __enter__(self) -> TaskServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Run:
    """A finished program: exit status (-9: killed at its timeout) and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(argv: list[str], timeout: float = RUN_TIMEOUT, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Run:
    """Run a program to its end; `env` adds variables to the programs' environment."""
    try:
        done = process.run(argv, timeout=timeouts.scaled(timeout), cwd=cwd,
                           env=process.program_env(env))
    except OSError as exc:
        raise ProcessError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    err = done.stderr.decode("utf-8", "replace")
    if done.timed_out:
        err += f"\n(killed after {timeout:g} s)"
    return Run(-9 if done.exit_code is None else done.exit_code,
               done.stdout.decode("utf-8", "replace"), err)


def build(tree: Path, name: str, timeout: float = 300.0) -> None:
    """The implementation's local build (its registry entry's), in `tree`; none: nothing."""
    impl = implementation(tree, name)
    if not impl.local_build:
        return
    result = run(list(impl.local_build), timeout=timeout, cwd=impl.root)
    if result.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-6:])
        raise ProcessError(f"{' '.join(impl.local_build)} in {impl.root} failed:\n{tail}")


def make(directory: Path, *targets: str, timeout: float = 300.0) -> None:
    """Build with make; the last lines of its output on failure."""
    result = run(["make", "-s", "-C", str(directory), *targets], timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-6:])
        raise ProcessError(f"make -C {directory} {' '.join(targets)} failed:\n{tail}")
