"""Escaping is one function in both languages (PROTOCOL.md section 6).

c/tests/escape_tool.c is compiled here (under ASan and UBSan when the compiler
has them) with c/log.c and c/log_fast.c; hypothesis then feeds the same bytes
to it and to the Python reference ``log.escape``: the C reference, the C fast
path and the Python reference must print the same text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securemsg import log
from securemsg_lab.core import timeouts
from securemsg_lab.core.paths import REPO as ROOT
from securemsg_lab.core.process import run

SOURCES = [ROOT / "c" / "tests" / "escape_tool.c", ROOT / "c" / "log.c", ROOT / "c" / "log_fast.c"]
FLAGS = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-O1", "-g"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
FRAGMENTS = [
    b"a", b"\\", b"\n", b"\t", b"\x00", b"\x1b", b"\x7f", b"\x80", b"\x9f", b"\xa0", b"\xbf",
    b"\xc0", b"\xc2", b"\xe0", b"\xe2", b"\xed", b"\xf0", b"\xf4", b"\xff",
    "\u00e9".encode(), "\u2028".encode(), "\x85".encode(), "\U0001f510".encode(),
]


@pytest.fixture(scope="module")
def escape_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler (cc) to build c/tests/escape_tool.c")
    out = tmp_path_factory.mktemp("escape") / "escape_tool"
    base = [compiler, *FLAGS, "-I", str(ROOT / "c"), "-o", str(out), *map(str, SOURCES),
            "-pthread"]
    built = run([*base[:1], *SANITIZE, *base[1:]], role="cc", timeout=timeouts.scaled(120))
    if built.exit_code != 0:  # a compiler without the sanitizer runtimes
        built = run(base, role="cc", timeout=timeouts.scaled(120))
        assert built.exit_code == 0, built.stderr.decode(errors="replace")[-3000:]
    return out


def escaped_by_c(tool: Path, inputs: list[bytes]) -> list[tuple[str, str]]:
    text = "".join(data.hex() + "\n" for data in inputs)
    done = run([str(tool)], role="escape_tool", stdin=text.encode(),
               timeout=timeouts.scaled(30))
    assert done.exit_code == 0, done.stderr.decode(errors="replace")[-3000:]
    lines = done.stdout.decode("utf-8").split("\n")[:-1]
    return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


inputs = st.lists(st.binary(max_size=80) | st.lists(st.sampled_from(FRAGMENTS), max_size=30)
                  .map(b"".join), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(inputs)
def test_c_and_python_escape_alike(escape_tool: Path, batch: list[bytes]) -> None:
    for data, (c_reference, c_fast) in zip(batch, escaped_by_c(escape_tool, batch), strict=True):
        expected = log.escape(data)
        assert (c_reference, c_fast) == (expected, expected), data


def test_every_byte_pair(escape_tool: Path) -> None:
    """All 65536 two-byte inputs, and each after a lead byte (three bytes)."""
    batch = [bytes((a, b)) for a in range(256) for b in range(256)]
    batch += [bytes((lead, a, b)) for lead in (0xE0, 0xE2, 0xED, 0xF0, 0xF4)
              for a in range(0x80, 0xC0) for b in range(256)]
    for data, (c_reference, c_fast) in zip(batch, escaped_by_c(escape_tool, batch), strict=True):
        expected = log.escape(data)
        assert (c_reference, c_fast) == (expected, expected), data
