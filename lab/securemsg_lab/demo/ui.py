"""What the audience sees: headings, one-line narration, commands, program output.

Colour only when standard output is a terminal and NO_COLOR is unset or empty.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
from typing import TextIO

RESET = "\033[0m"
STYLES = {
    "heading": "\033[1;97;44m",
    "narration": "\033[3m",
    "command": "\033[1;34m",
    "label": "\033[2m",
    "ok": "\033[1;32m",
    "bad": "\033[1;31m",
    "note": "\033[33m",
    "key": "\033[1;35m",
    "dim": "\033[2m",
}
TAG_STYLES = {
    "[INFO]": "\033[36m",
    "[RECV]": "\033[32m",
    "[SEND]": "\033[33m",
    "[ERROR]": "\033[31m",
    "[MITM]": "\033[35m",
}
TAG_RE = re.compile(r"^\[(INFO|RECV|SEND|ERROR|MITM)\]")
WIDTH = 78


def colour_wanted(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


class Console:
    """Thread-safe printing in the demo's few visual styles."""

    def __init__(self, stream: TextIO | None = None, pause: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.colour = colour_wanted(self.stream)
        self.pause_enabled = pause
        self._lock = threading.Lock()

    def style(self, name: str, text: str) -> str:
        return f"{STYLES[name]}{text}{RESET}" if self.colour else text

    def line(self, text: str = "") -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def heading(self, number: int, total: int, title: str) -> None:
        text = f"Step {number}/{total} · {title}"
        self.line()
        self.line(
            self.style("heading", f" {text} ".ljust(WIDTH)) if self.colour else f"== {text} =="
        )

    def title(self, text: str) -> None:
        self.line(self.style("heading", f" {text} ".ljust(WIDTH)) if self.colour else f"## {text}")

    def narrate(self, text: str) -> None:
        self.line(self.style("narration", text))

    def command(self, argv: list[str], note: str = "") -> None:
        shown = shlex.join(argv)
        suffix = self.style("dim", f"   # {note}") if note else ""
        self.line(self.style("command", f"$ {shown}") + suffix)

    def output(self, label: str, text: str) -> None:
        """One line of a program's real output, prefixed by who printed it."""
        match = TAG_RE.match(text)
        if match and self.colour:
            tag = match.group(0)
            text = f"{TAG_STYLES[tag]}{tag}{RESET}{text[len(tag) :]}"
        self.line(f"  {self.style('label', f'{label:>15} │')} {text}")

    def ok(self, text: str) -> None:
        self.line(self.style("ok", "✔ ") + text)

    def bad(self, text: str) -> None:
        self.line(self.style("bad", "✘ ") + text)

    def note(self, text: str) -> None:
        self.line(self.style("note", "→ ") + text)

    def pause(self, prompt: str = "press Enter") -> None:
        if not self.pause_enabled:
            return
        with self._lock:
            self.stream.write(self.style("dim", f"  [{prompt}] "))
            self.stream.flush()
        try:
            input()
        except EOFError:
            self.pause_enabled = False  # stdin closed: run the rest unattended
            self.line()
