"""The demo's attacker tools (key recovery, bit flipping, pcap reading, the relay).

They live in the demo's package; this is the one place that knows where, so the checks
and the handout's commands keep working when the demo moves.
"""

from __future__ import annotations

import sys

from .workspace import REPO

_SCRIPTS = str(REPO / "scripts")
if _SCRIPTS not in sys.path:  # scripts/demolib is not an installed package (yet)
    sys.path.append(_SCRIPTS)

from demolib import attack, mitm, pcap, wire  # noqa: E402

__all__ = ["attack", "mitm", "pcap", "wire"]
