"""The demo's attacker tools (key recovery, bit flipping, pcap reading, the relay).

They belong to the demo; this is the one place that knows where they live, so the
checks and the handout's commands keep working when the demo moves into the lab core.
"""

from __future__ import annotations

import sys

from ..paths import REPO

try:
    from ..demo import attack, mitm, pcap, wire  # type: ignore[attr-defined]
except ImportError:
    _SCRIPTS = str(REPO / "scripts")
    if _SCRIPTS not in sys.path:  # scripts/demolib is not an installed package
        sys.path.append(_SCRIPTS)
    from demolib import attack, mitm, pcap, wire  # type: ignore[no-redef]

__all__ = ["attack", "mitm", "pcap", "wire"]
