"""Where the lab finds the repository: the C tree, compose.yaml, bench/ (an editable
install of this checkout; SECUREMSG_REPO names another checkout)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(os.environ.get("SECUREMSG_REPO") or Path(__file__).resolve().parents[3])
COMPOSE_FILE = REPO / "compose.yaml"
