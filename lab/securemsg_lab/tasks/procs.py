"""The programs the checks run, through the lab core: the implementations registry gives
each program's command line, `securemsg_lab.core.process` starts and stops it.

The reference programs are the registry's `c` and `python` entries. A workspace's
copies are the same entries with their root moved to the workspace (`c-work`,
`python-work`), written as registry TOML files so the matrix can load them too
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
LANGS = ("c", "python")
RUN_TIMEOUT = 30.0


class ProcessError(Exception):
    """A program did not build, start, or do what the check needed."""


def entry_dir(work: Path) -> Path:
    return work / ".implementations"


def write_entries(work: Path) -> Path:
    """Registry entries for the workspace's programs: the reference entries, renamed,
    with the workspace as their root. The directory holding them."""
    out = entry_dir(work)
    out.mkdir(exist_ok=True)
    for lang in LANGS:
        doc = tomllib.loads(Path(registry.default()[lang].source).read_text(encoding="utf-8"))
        local = doc.get("local", {})
        lines = [f"name = {json.dumps(lang + '-work')}",
                 f"description = {json.dumps('the handout workspace copy of ' + lang)}",
                 f"argv = {json.dumps(doc.get('argv', 'options'))}",
                 f"features = {json.dumps(doc.get('features', ['xor']))}",
                 "", "[local]", f"root = {json.dumps(str(work))}"]
        lines += [f"{key} = {json.dumps(local[key])}" for key in ("build", "server", "client")
                  if key in local]
        (out / f"{lang}-work.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def implementation(tree: Path, lang: str) -> registry.Implementation:
    """The registry entry of `lang` in `tree`: the reference, or a workspace's copy."""
    if tree.resolve() == REPO.resolve():
        return registry.default()[lang]
    return registry.from_toml(write_entries(tree) / f"{lang}-work.toml")


def server_argv(tree: Path, lang: str, options: list[str]) -> list[str]:
    impl = implementation(tree, lang)
    return [*impl.program("server"), *impl.server_args(0, ["--bind", LOOPBACK, *options])]


def client_argv(tree: Path, lang: str, port: int, message: str, options: list[str]) -> list[str]:
    impl = implementation(tree, lang)
    return [*impl.program("client"), *impl.client_args(LOOPBACK, port, message, options)]


class Server:
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

    def start(self) -> Server:
        try:
            self.port = self.proc.wait_listening()
        except process.LaunchError as exc:
            raise ProcessError(str(exc)) from exc
        return self

    def stop(self) -> str:
        self.proc.stop()
        return self.output()

    def __enter__(self) -> Server:
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


def make(directory: Path, *targets: str, timeout: float = 300.0) -> None:
    """Build with make; the last lines of its output on failure."""
    result = run(["make", "-s", "-C", str(directory), *targets], timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-6:])
        raise ProcessError(f"make -C {directory} {' '.join(targets)} failed:\n{tail}")
