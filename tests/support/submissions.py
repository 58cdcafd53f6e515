"""Submissions for the grader's and the report's tests: the reference programs as a
student would hand them in, and copies of the Python programs with one planted bug each.

    python -m tests.support.submissions OUT   # OUT/<name>/ for each, a class to grade

Each submission is a folder with an `implementation.toml` (docs/implementations.md).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FEATURES = '["xor", "noise", "interactive", "ipv6", "max-clients", "idle-timeout"]'

#: planted bugs: (file under python/, text, replacement)
BUGS: dict[str, tuple[str, str, str]] = {
    "no-empty-ack": ("securemsg/server.py", """    def _answer(self, message: Message) -> None:
""", """    def _answer(self, message: Message) -> None:
        if not message.data:  # planted bug: no ACK for an empty frame
            self.server.console.answered(message.data)
            return
"""),
    "little-endian": ("securemsg/framing.py", 'struct.Struct(">I")', 'struct.Struct("<I")'),
    "key-index": ("securemsg/crypto.py", "        return self._stream.apply(data)", """\
        at = globals().get("AT", 0)  # planted bug: the key index runs on across frames
        globals()["AT"] = at + len(data)
        key = self._stream._key
        start = at % len(key)
        return crypto_fast.xor(data, key[start:] + key[:start])"""),
    "hang-after-3": ("securemsg/server.py", "            sock, address = self.listener.accept()\n",
                     """\
            sock, address = self.listener.accept()
            self.accepted = getattr(self, "accepted", 0) + 1
            if self.accepted > 3:  # planted bug: the fourth client hangs the server
                time.sleep(3600)
"""),
    "no-sigterm": ("securemsg/server.py", "SIGNALS = (signal.SIGINT, signal.SIGTERM)",
                   "SIGNALS = (signal.SIGINT,)  # planted bug: SIGTERM kills it, no shutdown"),
    "no-ack-read": ("securemsg/client.py", """        event = self._next_event(handshake=False)
        if type(event) is not Message or event.data != ack_text(len(message)):
            raise MalformedAck(event.data if type(event) is Message else b"")
        self.console.recv(escape(event.data))""",
                    """        # planted bug: the ACK is never read"""),
}


def entry(name: str, local: str, argv: str = "options", features: str = FEATURES) -> str:
    return (f'name = "{name}"\nargv = "{argv}"\nfeatures = {features}\n\n[local]\n{local}')


def reference_c(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "implementation.toml").write_text(entry("ref-c", (
        f'root = "{REPO}"\nbuild = ["make", "-s", "-C", "c"]\n'
        'server = ["c/server"]\nclient = ["c/client"]\n'), argv="positional"))
    return out


def python_copy(out: Path, bug: str | None = None, name: str | None = None,
                features: str = FEATURES) -> Path:
    """The Python programs in `out`, with the planted `bug` (a key of BUGS) if given."""
    shutil.copytree(REPO / "python" / "securemsg", out / "securemsg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for program in ("server.py", "client.py"):
        shutil.copy(REPO / "python" / program, out / program)
    if bug is not None:
        file, old, new = BUGS[bug]
        path = out / file
        text = path.read_text()
        assert text.count(old) == 1, f"{bug}: the text to change is not in {file} once"
        path.write_text(text.replace(old, new))
    (out / "implementation.toml").write_text(entry(name or bug or "ref-python", (
        'server = ["{python}", "./server.py"]\nclient = ["{python}", "./client.py"]\n'),
        features=features))
    return out


def does_not_build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "main.c").write_text("int main(void) { return 0 }\n")  # a missing semicolon
    (out / "implementation.toml").write_text(entry("no-build", (
        'build = ["cc", "-o", "prog", "main.c"]\nserver = ["./prog"]\nclient = ["./prog"]\n'),
        features='["xor"]'))
    return out


def class_of(out: Path) -> list[Path]:
    """The references, each planted bug, one in xor only, one that does not build: ten."""
    folders = [reference_c(out / "ref-c"), python_copy(out / "ref-python"),
               python_copy(out / "xor-only", name="xor-only", features='["xor"]')]
    folders += [python_copy(out / bug, bug) for bug in BUGS]
    return [*folders, does_not_build(out / "no-build")]


if __name__ == "__main__":
    for folder in class_of(Path(sys.argv[1])):
        print(folder)
