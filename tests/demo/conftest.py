"""Make `scripts/demolib` and the project's package (`python/securemsg`) importable."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for path in (REPO / "scripts", REPO / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
