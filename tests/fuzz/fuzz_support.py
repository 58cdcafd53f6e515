"""Seeds for the fuzz tests: committed corpus files plus the C fuzzers' corpus."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SEED_DIRS = (ROOT / "tests" / "fuzz" / "corpus", ROOT / "c" / "fuzz" / "corpus",
             ROOT / "examples" / "corpus")
MAX_SEED = 1 << 16  # larger files are cut: a seed is a start, not a load test


def seeds(*names: str) -> list[bytes]:
    """Every seed file under the seed directories (``names``: sub-directories to prefer)."""
    found: list[bytes] = []
    for directory in SEED_DIRS:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if path.is_file() and (not names or path.parent.name in names
                                   or path.parent == directory):
                found.append(path.read_bytes()[:MAX_SEED])
    return found


def mutated(seed_list: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a few bytes replaced, then cut or extended: what a mutating fuzzer tries."""
    if not seed_list:
        return st.binary(max_size=2000)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seed_list)))
        for _ in range(draw(st.integers(0, 4))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        keep = draw(st.integers(0, len(data)))
        return bytes(data[:keep]) + draw(st.binary(max_size=64))

    return st.one_of(build(), st.binary(max_size=2000))
