"""The student's workspace: copies of c/ and python/ with the planted bugs, answers, challenges.

    handout/work/                 (git-ignored; `make handout-start`)
        c/  python/               the programs, with handout/bugs/*.patch applied
        answers/                  what the student hands in (task1.txt, task2.hex, ...)
        challenge/                the captured frames of tasks 4 and 5 (this workspace's own)
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

from securemsg.crypto import xor
from securemsg.framing import encode_frame
from securemsg.session import ack_text

from ..core.paths import REPO
from . import procs
from .result import Fail

HANDOUT = REPO / "handout"
BUGS = HANDOUT / "bugs"
DEFAULT_WORK = HANDOUT / "work"
COPIED = ("c", "python")
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
    ], [("client->server", encode_frame(xor(message, key4))),
        ("server->client", encode_frame(xor(ack_text(len(message)), key4)))])
    key5 = random_key(rng)
    write_frames(challenge / "task5.txt", [
        "Task 5: a client frame captured in flight, xor mode, key unknown (not task 4's).",
        f"Its plaintext is known: {TASK5_MESSAGE.decode()}",
        f"Make the server print instead: {TASK5_TARGET.decode()}",
    ], [("client->server", encode_frame(xor(TASK5_MESSAGE, key5)))])
    (work / ".state.json").write_text(json.dumps({"task5_key": key5.hex()}) + "\n")


def apply_bugs(work: Path) -> list[str]:
    """Apply every planted-bug patch to the copies; their names."""
    names = []
    for patch in sorted(BUGS.glob("*.patch")):
        result = procs.run(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
                            "-d", str(work), "-i", str(patch)], timeout=30)
        if result.returncode != 0:
            raise Fail(f"{patch.name} does not apply to this checkout's sources",
                       "the sources changed since the patch was made: regenerate it "
                       "(see handout/INSTRUCTOR.md, 'Maintaining the planted bugs')",
                       result.output.strip().splitlines()[-4:])
        names.append(patch.stem)
    return names


def start(work: Path, force: bool = False, seed: int | None = None) -> list[str]:
    """Create the workspace; the lines to print."""
    if (work / "c").exists() and not force:
        return [f"{work} already exists (your fixes are kept). "
                "Start over with: make handout-start FORCE=1"]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for tree in COPIED:
        shutil.copytree(REPO / tree, work / tree, ignore=IGNORED)
    try:
        bugs = apply_bugs(work)
    except Fail:
        shutil.rmtree(work)  # half-patched: a rerun must not take it for a student's work
        raise
    (work / "answers").mkdir()
    # A fixed seed (instructors, tests) gives the same challenges; else the OS's randomness.
    rng = secrets.SystemRandom() if seed is None else random.Random(seed)  # noqa: S311
    make_challenges(work, rng)
    return [f"workspace ready: {work}",
            f"  {work / 'c'} and {work / 'python'}: the programs, with planted bugs "
            f"({', '.join(bugs)})",
            f"  {work / 'answers'}: put your answers here",
            f"  {work / 'challenge'}: the captures of tasks 4 and 5"]


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
