"""The student's workspace: copies of c/ and python/ with the planted bugs, answers, challenges.

    handout/work/                 (git-ignored; `make handout-start`)
        c/  python/               the programs, with the planted bugs (handout/bugs/) applied
        answers/                  what the student hands in (task1.txt, task2.hex, ...)
        challenge/                the captured frames of tasks 4 and 5 (this workspace's own)
        .handed-out/              the programs as handed out: `make handout-diff` shows the
                                  student's changes, not the planted ones
        .state.json               what the checks need to replay task 5 (a key)

The keys of tasks 4 and 5 are drawn at random for each workspace, so two students'
answers differ. Nothing here is secret from a determined student: the check needs task 5's
key to start a server with it.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import string
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import REPO
from ..wire.protocol import ack_text, frame, xor
from . import procs
from .result import Fail

HANDOUT = REPO / "handout"
DEFAULT_WORK = HANDOUT / "work"
HANDED_OUT = ".handed-out"
#: build outputs and caches never copied into the workspace
IGNORED = shutil.ignore_patterns("build", "server", "client", "*.o", "__pycache__",
                                 "*.egg-info", "*.pyc")

KEY_ALPHABET = string.ascii_uppercase + string.digits
TASK4_TEXT = ("Lab notes: the next session moves to room B-12. Bring the capture from "
              "task 3 and your recovered key. ")
TASK5_MESSAGE = b"PAY 10 EUR TO ALICE"
TASK5_TARGET = b"PAY 99 EUR TO CAROL"


def work_dir(given: str | Path | None = None) -> Path:
    """--work, else $SECUREMSG_HANDOUT_WORK, else handout/work."""
    chosen = given or os.environ.get("SECUREMSG_HANDOUT_WORK")
    return Path(chosen).resolve() if chosen else DEFAULT_WORK


def random_key(rng: random.Random, low: int = 7, high: int = 11) -> bytes:
    """A key that does not repeat itself (its period is its length)."""
    while True:
        key = "".join(rng.choice(KEY_ALPHABET) for _ in range(rng.randint(low, high))).encode()
        if all(key != (key[:p] * len(key))[: len(key)] for p in range(1, len(key))):
            return key


def write_frames(path: Path, title: list[str], frames: list[tuple[str, bytes]]) -> None:
    lines = [f"# {line}" for line in title]
    lines += [f"{direction} {frame.hex(' ')}" for direction, frame in frames]
    path.write_text("\n".join(lines) + "\n")


def read_frames(path: Path) -> list[tuple[str, bytes]]:
    """(direction, frame bytes) per line of a challenge file."""
    frames = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            direction, _, hex_text = line.partition(" ")
            frames.append((direction, bytes.fromhex(hex_text)))
    return frames


def make_challenges(work: Path, rng: random.Random) -> None:
    challenge = work / "challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    key4 = random_key(rng)
    size = rng.randint(100, 140)  # a 3-digit count: the ACK holds 23 key-stream bytes
    message = (TASK4_TEXT * 2)[:size].encode()
    write_frames(challenge / "task4.txt", [
        "Task 4: one exchange captured on the lab network, xor mode, key unknown.",
        "Each line: direction, then the whole frame in hex (length prefix + payload).",
    ], [("client->server", frame(xor(message, key4))),
        ("server->client", frame(xor(ack_text(len(message)).encode(), key4)))])
    key5 = random_key(rng)
    write_frames(challenge / "task5.txt", [
        "Task 5: a client frame captured in flight, xor mode, key unknown (not task 4's).",
        f"Its plaintext is known: {TASK5_MESSAGE.decode()}",
        f"Make the server print instead: {TASK5_TARGET.decode()}",
    ], [("client->server", frame(xor(TASK5_MESSAGE, key5)))])
    (work / ".state.json").write_text(json.dumps({"task5_key": key5.hex()}) + "\n")


def copied_trees() -> list[str]:
    """The folders copied into a workspace: those of the planted bugs' implementations."""
    return [procs.tree_of(name) for name in procs.lab_names()]


def apply_bugs(work: Path, bugs_file: Path | None = None) -> list[procs.Bug]:
    """Apply every planted-bug patch to the copies; the bugs."""
    applied = []
    for bug in procs.bugs(bugs_file).values():
        result = procs.run(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
                            "-d", str(work), "-i", str(bug.patch)], timeout=30)
        if result.returncode != 0:
            raise Fail(f"{bug.patch.name} does not apply to this checkout's sources",
                       "the sources changed since the patch was made: regenerate it "
                       "(see handout/INSTRUCTOR.md, 'Maintaining the planted bugs')",
                       result.output.strip().splitlines()[-4:])
        applied.append(bug)
    return applied


def start(work: Path, force: bool = False, seed: int | None = None,
          bugs_file: Path | None = None) -> list[str]:
    """Create the workspace; the lines to print. It names the planted bugs by letter
    only: finding them from their symptoms is the task."""
    trees = copied_trees()
    if any((work / tree).exists() for tree in trees) and not force:
        return [f"{work} already exists (your fixes are kept). "
                "Start over with: make handout-start FORCE=1"]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for tree in trees:
        shutil.copytree(REPO / tree, work / tree, ignore=IGNORED)
    try:
        planted = apply_bugs(work, bugs_file)
    except Fail:
        shutil.rmtree(work)  # half-patched: a rerun must not take it for a student's work
        raise
    for tree in trees:  # the baseline of `make handout-diff`
        shutil.copytree(work / tree, work / HANDED_OUT / tree)
    (work / "answers").mkdir()
    # A fixed seed (instructors, tests) gives the same challenges; else the OS's randomness.
    rng = secrets.SystemRandom() if seed is None else random.Random(seed)  # noqa: S311
    make_challenges(work, rng)
    copies = " and ".join(str(work / tree) for tree in trees)
    named = ", ".join(f"{bug.letter} (task {bug.task})" for bug in planted)
    return [f"workspace ready: {work}",
            f"  {copies}: the programs, with planted bugs {named}",
            f"  {work / 'answers'}: put your answers here",
            f"  {work / 'challenge'}: the captures of tasks 4 and 5"]


def changes(work: Path) -> tuple[int, str]:
    """`diff -ru` of the workspace's programs against the copies as handed out: the
    student's changes only (exit status 0: none, 1: some, 2: trouble) and the diff."""
    base = work / HANDED_OUT
    if not base.is_dir():
        return 2, (f"{base} is missing: this workspace was made before `make handout-diff` "
                   "existed; compare with the reference only after the tasks")
    lines = []
    status = 0
    for tree in copied_trees():
        result = procs.run(["diff", "-ru", "-x", "build", "-x", "*.o", "-x", "__pycache__",
                            "-x", "server", "-x", "client", f"{HANDED_OUT}/{tree}", tree],
                           cwd=work, timeout=60)
        status = max(status, result.returncode)
        lines.append(result.output)
    return status, "".join(lines)


@dataclass
class Workspace:
    root: Path

    @property
    def answers(self) -> Path:
        return self.root / "answers"

    def answer(self, name: str) -> Path:
        path = self.answers / name
        if not self.answers.is_dir():
            raise Fail(f"no workspace {self.root}", "create it first: make handout-start")
        if not path.exists():
            raise Fail(f"no answer file {path}",
                       f"write your answer into {path} (HANDOUT.md says what goes in it)")
        return path

    def challenge(self, name: str) -> list[tuple[str, bytes]]:
        path = self.root / "challenge" / name
        if not path.exists():
            raise Fail(f"no challenge file {path}", "create the workspace: make handout-start")
        return read_frames(path)

    def state(self) -> dict[str, str]:
        path = self.root / ".state.json"
        if not path.exists():
            raise Fail(f"no {path}", "create the workspace: make handout-start")
        return json.loads(path.read_text())

    def require_tree(self, tree: str) -> Path:
        path = self.root / tree
        if not path.is_dir():
            raise Fail(f"no workspace copy {path}", "create the workspace: make handout-start")
        return path
