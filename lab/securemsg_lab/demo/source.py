"""Find where things are defined, by reading the source files at run time (no line numbers
are written down anywhere, so the demo stays true as the code changes)."""

from __future__ import annotations

import re

# A C function definition in the project's style: starts in column 0, not static, not a
# prototype (those end with ';'), the name directly before '('.
_C_DEFINITION = re.compile(
    r"^(?!static\b|typedef\b|extern\b|return\b)(?:[A-Za-z_][\w \t\*]*?[\s\*])?(\w+)\s*\("
)
_C_KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof"}
_PY_DEF = re.compile(r"^(?P<indent>    )?(?:async\s+)?(?P<kind>def|class)\s+(?P<name>\w+)")


def c_definitions(text: str) -> list[tuple[int, str]]:
    """(line number, function name) of each non-static function defined in a C file."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _C_DEFINITION.match(line)
        if not match or line.rstrip().endswith(";") or match.group(1) in _C_KEYWORDS:
            continue
        found.append((number, match.group(1)))
    return found


def py_definitions(text: str) -> list[tuple[int, str]]:
    """(line number, name) of public functions, classes and their public methods."""
    found: list[tuple[int, str]] = []
    current_class = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _PY_DEF.match(line)
        if not match:
            if line and not line[0].isspace() and not line.startswith(("#", ")", "@")):
                current_class = ""
            continue
        name, kind, nested = match.group("name"), match.group("kind"), bool(match.group("indent"))
        if not nested:
            current_class = name if kind == "class" else ""
            if not name.startswith("_"):
                found.append((number, f"class {name}" if kind == "class" else f"{name}()"))
        elif current_class and kind == "def" and not name.startswith("_"):
            found.append((number, f"{current_class}.{name}()"))
    return found
