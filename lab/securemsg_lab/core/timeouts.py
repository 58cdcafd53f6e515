"""Every wait of the lab and its tests in one place, scaled by one knob.

The defaults fit a loaded 2-core machine; on a slower one (or under a sanitizer,
valgrind, an emulator) `SECUREMSG_TEST_TIMEOUT_SCALE=3` multiplies them all.
"""

from __future__ import annotations

import os

ENV_VAR = "SECUREMSG_TEST_TIMEOUT_SCALE"


def scale() -> float:
    try:
        value = float(os.environ.get(ENV_VAR, "") or 1.0)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def scaled(seconds: float) -> float:
    """`seconds` times the scale: use it for every wait on a program."""
    return seconds * scale()


#: a server's `Listening on` line (noise: Argon2id of a passphrase comes first)
START = 20.0
#: SIGTERM to exit
STOP = 5.0
#: a program expected to run to its end (a client, a usage error)
RUN = 30.0
