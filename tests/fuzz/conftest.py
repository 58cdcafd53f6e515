"""Property-based fuzzing of the Python frame decoder, session layer and Noise parser.

Bounded by default (what `make test` runs); SECUREMSG_FUZZ=long raises the example
count for a longer run (`make fuzz-long`-style: see README, "Stress and fuzz").
Seeds: tests/fuzz/corpus/* and, when present, the C fuzzers' c/fuzz/corpus/*/*.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "short", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("long" if os.environ.get("SECUREMSG_FUZZ") == "long" else "short")
