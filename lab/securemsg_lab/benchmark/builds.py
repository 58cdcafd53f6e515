"""The builds a benchmark compares and their servers, all through the lab's launcher.

A `Build` is a tree and its registry entries: this checkout, or (--compare REV)
another revision checked out in a temporary git worktree and built there with its own
Makefile and build commands, its Python server run from that tree. `bench/refserver`
and `bench/loadgen` always come from this checkout: one yardstick, one load client.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core import loadgen, process, registry, timeouts
from ..core.paths import REPO
from ..core.registry import Implementation
from .work import BASE, REFERENCE, THIS

REFSERVER = REPO / "bench" / "refserver"
BUILD_TIMEOUT = 600.0


class BenchError(Exception):
    """Base class of the benchmark's failures."""


@dataclass(frozen=True)
class Build:
    key: str  # THIS or BASE
    label: str  # what the tables call it: "this tree (HEAD abc1234 + changes)", "7f1f3e6"
    root: Path
    implementations: dict[str, Implementation]

    def describe(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label}


def git(*args: str, cwd: Path = REPO) -> str:
    done = process.run(["git", *args], role="git", cwd=cwd, timeout=timeouts.scaled(120))
    if done.exit_code != 0:
        raise BenchError(f"git {' '.join(args)}: {' | '.join(done.err_lines[-3:])}")
    return done.stdout.decode().strip()


def this_build(names: list[str]) -> Build:
    reg = registry.default()
    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no") != ""
        label = f"this tree ({head}{' + changes' if changed else ''})"
    except (BenchError, OSError):
        label = "this tree"
    return Build(THIS, label, REPO, {name: reg[name] for name in names})


@contextlib.contextmanager
def base_build(rev: str, names: list[str]) -> Iterator[Build]:
    """REV checked out in a temporary worktree (removed on the way out), its own
    registry entries (implementations/*.toml of REV) for the servers asked for."""
    commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="securemsg-compare-") as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        try:
            entries = {}
            for path in sorted((tree / "implementations").glob("*.toml")):
                entry = registry.from_toml(path)
                if entry.name in names:
                    entries[entry.name] = entry
            if not entries:
                raise BenchError(f"{rev}: none of {', '.join(names)} in its implementations/")
            yield Build(BASE, rev, tree, entries)
        finally:
            with contextlib.suppress(BenchError, OSError):
                git("worktree", "remove", "--force", str(tree))


def make(build: Build) -> None:
    """Each implementation's local build (registry `local.build`) in its tree; in this
    checkout also bench/ (loadgen, refserver)."""
    commands = [(list(impl.local_build), impl.root) for impl in build.implementations.values()
                if impl.local_build]
    if build.key == THIS:
        commands.insert(0, (["make", "-s", "-C", str(REPO / "bench"), "loadgen", "refserver"],
                            REPO))
    for argv, where in commands:
        done = process.run(argv, role="build", cwd=where, timeout=timeouts.scaled(BUILD_TIMEOUT))
        if done.exit_code != 0:
            raise BenchError(f"{' '.join(argv)} in {where} failed: "
                             f"{' | '.join(done.err_lines[-5:])}")


def require_tools() -> None:
    for tool in (loadgen.PROGRAM, REFSERVER):
        if not tool.exists():
            raise BenchError(f"bench/{tool.name} is not built (make -C bench)")


def present(impl: Implementation) -> bool:
    """Whether the server program is there (built, installed)."""
    return all(Path(word).exists() for word in impl.program("server")
               if Path(word).is_absolute())


# --- servers -------------------------------------------------------------------------------


@dataclass
class BenchServer:
    """One running server: its port, and its log file (truncated after every run)."""

    key: tuple[str, str, str]  # (build, server, cipher)
    port: int
    process: process.Process
    log: Path

    def truncate_log(self) -> None:
        """The servers log every message (1 MiB ones too): drop what a run wrote."""
        os.truncate(self.log, 0)

    def alive(self) -> bool:
        return self.process.alive()


def server_argv(impl: Implementation | None, cipher: str, key_file: Path) -> list[str]:
    """A server on 127.0.0.1, port 0; None: the yardstick."""
    if impl is None:
        return [str(REFSERVER), "0"]
    options = ["--bind", "127.0.0.1"]
    if impl.has("max-clients"):
        options += ["--max-clients", "256"]
    if cipher == "noise":
        options += ["--cipher", "noise", "--key-file", str(key_file)]
    return [*impl.program("server"), *impl.server_args(0, options)]


def start(stack: contextlib.ExitStack, build: Build, server: str, cipher: str, key_file: Path,
          workdir: Path, prefix: tuple[str, ...] = ()) -> BenchServer:
    """Start a server (stopped when `stack` closes) and wait for its Listening line."""
    impl = None if server == REFERENCE else build.implementations[server]
    name = f"{build.key}-{server}-{cipher}{'-pinned' if prefix else ''}"
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    # Log files appended (truncation then leaves no hole), not pipes: reading gigabytes
    # of log lines here would compete with the server for the CPU.
    proc = process.Process([*prefix, *server_argv(impl, cipher, key_file)], role=name,
                           cwd=build.root, log_files=(out, err))
    stack.callback(proc.stop)
    try:
        port = proc.wait_listening()
    except process.LaunchError as exc:
        detail = " | ".join(err.read_text(errors="replace").splitlines()[-3:])
        raise BenchError(f"{name}: {exc}{': ' + detail if detail else ''}") from exc
    return BenchServer((build.key, server, cipher), port, proc, out)
