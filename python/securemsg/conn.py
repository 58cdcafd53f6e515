"""The server's per-connection clocks and its eviction choice (PROTOCOL.md 4, 9).

Pure rules, no sockets or threads (as c/conn.c), so that they can be tested
from a table of cases without waiting out real time. Times are monotonic
milliseconds (``now_ms``). A connection waits for its next bytes until the
earliest of:

- idle: between frames, ``quiet_since + --idle-timeout``;
- frame: a frame begun, ``frame_start + --frame-timeout + length / --min-rate``;
- handshake: noise, until it completes, ``accepted + --frame-timeout``.

When the server is full it evicts the connection quiet longest if quiet for
a second or more; else the connection inside a frame with the lowest
progress rate below ``--min-rate``; else the one quiet longest; if none
qualifies, the newcomer is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

NEVER = 2**63 - 1  # as CONN_NEVER: a deadline that never comes
FD_RESERVE = 64  # descriptors kept for the listener, stdio, key file, pipes


class Wait(Enum):
    """What a deadline ends, and so which line is logged when it passes."""

    NONE = "none"  # wait forever
    IDLE = "idle"  # "Idle timeout for PEER after N s"
    FRAME = "frame"  # "Frame timeout for PEER after N s"
    HANDSHAKE = "handshake"  # "Handshake timeout for PEER after N s"
    DRAIN = "drain"  # shutdown: close cleanly, no error line


@dataclass(frozen=True)
class Limits:
    idle_timeout: int  # seconds, 0 = none
    frame_timeout: int  # seconds, 0 = none
    min_rate: int  # bytes per second, >= 1


@dataclass
class Timing:
    """One connection's clocks (milliseconds)."""

    accepted: int
    quiet_since: int  # end of the last frame (or accept)
    last_bytes: int  # the last read that brought bytes
    frame_start: int = -1  # the read that brought the partial frame's first byte; -1 none
    frame_len: int = 0  # its length prefix, 0 until all 4 bytes are in
    handshaking: bool = False  # noise handshake not complete
    in_message: bool = False  # noise: between the chunks of one message

    @classmethod
    def at(cls, now: int, handshaking: bool = False) -> Timing:
        """A connection accepted at ``now``."""
        return cls(now, now, now, handshaking=handshaking)


@dataclass(frozen=True)
class Deadline:
    kind: Wait
    at: int  # NEVER for Wait.NONE
    seconds: int  # N of the log line


def frame_allowance_ms(frame_timeout: int, min_rate: int, length: int) -> int:
    """Milliseconds a frame of ``length`` payload bytes may take, rounded up."""
    rate = max(min_rate, 1)
    return frame_timeout * 1000 + -(-length * 1000 // rate)


def ceil_seconds(ms: int) -> int:
    return -(-ms // 1000)


def is_quiet(t: Timing) -> bool:
    """Nothing in progress: the connection may be evicted as idle."""
    return t.frame_start < 0 and not t.handshaking and not t.in_message


def _frame_or_idle(limits: Limits, t: Timing) -> Deadline:
    if t.frame_start >= 0 and limits.frame_timeout > 0:
        ms = frame_allowance_ms(limits.frame_timeout, limits.min_rate, t.frame_len)
        return Deadline(Wait.FRAME, t.frame_start + ms, ceil_seconds(ms))
    if limits.idle_timeout == 0:
        return Deadline(Wait.NONE, NEVER, 0)
    # Mid-message or mid-handshake with no frame deadline: each wait for
    # bytes may last the idle timeout.
    since = t.quiet_since if is_quiet(t) else t.last_bytes
    return Deadline(Wait.IDLE, since + limits.idle_timeout * 1000, limits.idle_timeout)


def next_deadline(limits: Limits, t: Timing) -> Deadline:
    """The deadline that applies now; the handshake wins a tie."""
    d = _frame_or_idle(limits, t)
    if t.handshaking and limits.frame_timeout > 0:
        end = t.accepted + limits.frame_timeout * 1000
        if end <= d.at:
            return Deadline(Wait.HANDSHAKE, end, limits.frame_timeout)
    return d


def with_drain(d: Deadline, drain_at: int, quiet: bool, now: int) -> Deadline:
    """The deadline while the server shuts down: between frames close now, in a
    frame finish it by the drain deadline (whichever comes first)."""
    end = now if quiet else drain_at
    if end < d.at:
        return Deadline(Wait.DRAIN, end, 0)
    return d


class Slot(Enum):
    FREE = "free"
    BUSY = "busy"  # a frame, message or handshake in progress
    QUIET = "quiet"  # between frames
    EVICTED = "evicted"  # chosen; ends without an error line


@dataclass
class SlotView:
    """What the eviction choice sees of one connection."""

    state: Slot
    quiet_since: int = 0
    frame_start: int = -1  # first byte of the frame (or message, or handshake) in progress
    frame_bytes: int = 0  # bytes of it received so far


def progress_rate(frame_bytes: int, frame_start: int, now: int) -> int:
    """R = floor(bytes / max(seconds since the first byte, 1)), in bytes per second."""
    elapsed = max(now - frame_start, 1000)
    return frame_bytes * 1000 // elapsed


@dataclass(frozen=True)
class Victim:
    index: int
    quiet: bool  # True: evicted as idle ("idle N s"); False: as slow ("R bytes/s")
    value: int  # seconds idle, or R


def choose_victim(slots: list[SlotView], now: int, min_rate: int) -> Victim | None:
    """Whom to evict for a newcomer when full, or None (refuse it). In this order:

    1. the QUIET slot quiet longest, if quiet for 1 second or more;
    2. else the BUSY slot inside a unit with the lowest rate R below ``min_rate``;
    3. else the QUIET slot quiet longest (most often one just accepted).

    The lowest index wins a tie.
    """
    quiet: int | None = None
    for i, s in enumerate(slots):
        if s.state is Slot.QUIET and (quiet is None or s.quiet_since < slots[quiet].quiet_since):
            quiet = i
    quiet_ms = 0 if quiet is None else max(0, now - slots[quiet].quiet_since)
    if quiet is not None and quiet_ms >= 1000:
        return Victim(quiet, True, quiet_ms // 1000)
    slow: int | None = None
    slow_rate = min_rate
    for i, s in enumerate(slots):
        if s.state is not Slot.BUSY or s.frame_start < 0:
            continue
        rate = progress_rate(s.frame_bytes, s.frame_start, now)
        if rate < slow_rate:
            slow, slow_rate = i, rate
    if slow is not None:
        return Victim(slow, False, slow_rate)
    return None if quiet is None else Victim(quiet, True, 0)


def default_max_clients(soft_limit: int, maximum: int) -> int:
    """The --max-clients default for an open-file soft limit: the limit less
    a reserve of descriptors, within 1..maximum."""
    if soft_limit <= FD_RESERVE:
        return 1
    return min(soft_limit - FD_RESERVE, maximum)


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000
