#!/usr/bin/env python3
"""securemsg instructor demo: `python3 scripts/demo.py [--backend docker|local] [--no-pause]`.

The seed's Demo Guide as one command, a look at the wire, the attack on XOR, and secure
mode. See `python3 scripts/demo.py --help`; the parts live in `scripts/demolib/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demolib.cli import main

if __name__ == "__main__":
    sys.exit(main())
