"""securemsg.conn: the deadline and eviction rules, from the case table C tests too
(tests/vectors/conn_cases.tsv; c/tests/test_conn.c reads the same rows)."""

from __future__ import annotations

import pytest
from securemsg import conn

from tests.support.unit_support import VECTORS

KINDS = {
    "none": conn.Wait.NONE,
    "idle": conn.Wait.IDLE,
    "frame": conn.Wait.FRAME,
    "handshake": conn.Wait.HANDSHAKE,
}


def _rows(kind: str) -> list[list[str]]:
    rows = []
    for line in (VECTORS / "conn_cases.tsv").read_text(encoding="ascii").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if fields[0] == kind:
            rows.append(fields[1:])
    assert rows, f"no {kind} rows in conn_cases.tsv"
    return rows


DEADLINES = _rows("deadline")
EVICTIONS = _rows("evict")


@pytest.mark.parametrize("row", DEADLINES, ids=[row[0] for row in DEADLINES])
def test_deadline_case(row: list[str]) -> None:
    assert len(row) == 14
    idle, frame, rate, accepted, quiet, last, start, length, hs, msg = map(int, row[1:11])
    want_kind, want_at, want_seconds = KINDS[row[11]], int(row[12]), int(row[13])
    timing = conn.Timing(accepted, quiet, last, start, length, bool(hs), bool(msg))
    got = conn.next_deadline(conn.Limits(idle, frame, rate), timing)
    assert got.kind is want_kind
    assert got.at == (conn.NEVER if want_at == -1 else want_at)
    assert got.seconds == want_seconds


def _slot(text: str) -> conn.SlotView:
    name, _, rest = text.partition(":")
    if name == "quiet":
        return conn.SlotView(conn.Slot.QUIET, quiet_since=int(rest))
    if name == "unit":
        start, _, received = rest.partition(":")
        return conn.SlotView(conn.Slot.BUSY, frame_start=int(start), frame_bytes=int(received))
    return conn.SlotView(
        {"free": conn.Slot.FREE, "busy": conn.Slot.BUSY, "evicted": conn.Slot.EVICTED}[name]
    )


@pytest.mark.parametrize("row", EVICTIONS, ids=[row[0] for row in EVICTIONS])
def test_eviction_case(row: list[str]) -> None:
    now, min_rate, want_slot = int(row[1]), int(row[2]), int(row[3])
    want_reason, want_value = row[4], int(row[5])
    slots = [_slot(text) for text in row[6:]]
    assert slots
    got = conn.choose_victim(slots, now, min_rate)
    if want_slot == -1:
        assert got is None and want_reason == "none"
        return
    assert got is not None
    assert (got.index, "idle" if got.quiet else "slow", got.value) == (
        want_slot,
        want_reason,
        want_value,
    )


def test_frame_allowance_and_rounding() -> None:
    assert conn.frame_allowance_ms(10, 65536, 0) == 10000
    assert conn.frame_allowance_ms(10, 65536, 1) == 10001  # rounded up
    assert conn.frame_allowance_ms(10, 65536, 1048576) == 26000
    assert conn.frame_allowance_ms(86400, 1, 2**32 - 1) == 86400000 + (2**32 - 1) * 1000
    assert [conn.ceil_seconds(ms) for ms in (0, 1, 10000, 10001)] == [0, 1, 10, 11]


def test_drain_closes_a_quiet_connection_now_and_gives_a_frame_until_the_deadline() -> None:
    idle = conn.next_deadline(conn.Limits(300, 10, 65536), conn.Timing.at(1000))
    assert conn.with_drain(idle, 9000, quiet=True, now=2000) == conn.Deadline(
        conn.Wait.DRAIN, 2000, 0
    )
    frame = conn.Deadline(conn.Wait.FRAME, 12000, 10)
    assert conn.with_drain(frame, 9000, quiet=False, now=2000).at == 9000
    assert conn.with_drain(frame, 20000, quiet=False, now=2000) == frame


@pytest.mark.parametrize(("soft", "want"), [(0, 1), (64, 1), (65, 1), (1024, 960), (10**9, 100000)])
def test_default_max_clients(soft: int, want: int) -> None:
    assert conn.default_max_clients(soft, 100000) == want


def test_quiet_means_nothing_in_progress() -> None:
    t = conn.Timing.at(0)
    assert conn.is_quiet(t)
    for change in ({"frame_start": 5}, {"handshaking": True}, {"in_message": True}):
        assert not conn.is_quiet(conn.Timing(**{**t.__dict__, **change}))
