#!/usr/bin/env python3
"""Entry point: `python3 server.py --help` (see PROTOCOL.md section 5)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from securemsg.server import main  # noqa: E402 - the path must be set first

if __name__ == "__main__":
    sys.exit(main())
