"""Where the lab finds the checkout whose programs it runs (c/, python/, implementations/,
compose.yaml, bench/, handout/).

The lab runs from a checkout of the securemsg repository, never from an installed copy of
the programs: SECUREMSG_REPO names one; else the checkout this package lives in (the
editable install of `make setup`); else the current directory or one above it.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKERS = ("PROTOCOL.md", "implementations", "compose.yaml")
NOT_A_CHECKOUT = (
    "[ERROR] the securemsg lab runs from a checkout of the securemsg repository: "
    "run it inside one (git clone, then make setup) or set SECUREMSG_REPO to one"
)


def is_checkout(path: Path) -> bool:
    return all((path / marker).exists() for marker in MARKERS)


def find_checkout() -> Path | None:
    if os.environ.get("SECUREMSG_REPO"):
        return Path(os.environ["SECUREMSG_REPO"]).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (Path(__file__).resolve().parents[3], cwd, *cwd.parents):
        if is_checkout(candidate):
            return candidate
    return None


CHECKOUT = find_checkout()
REPO = CHECKOUT or Path.cwd()
COMPOSE_FILE = REPO / "compose.yaml"


def outside_checkout() -> str | None:
    """The one line a lab tool prints (then exits 2) when there is no checkout to run."""
    return None if CHECKOUT is not None and is_checkout(CHECKOUT) else NOT_A_CHECKOUT
