"""Parts of the instructor demo (`scripts/demo.py`).

The pure parts (frames of a captured stream, pcap parsing, the attack, the bit-flip math)
have no I/O and are unit-tested in `tests/demo/`; the backends and steps drive the real
programs. The cipher, the framing and the escaping rule are the project's own
(`python/securemsg`), put on the import path here, so the demo shows students the real code.
"""

import sys
from pathlib import Path

# In the Docker relay container demolib sits in /tmp and the package comes from /app.
PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "python"
if PACKAGE_ROOT.is_dir() and str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))
