"""The frame decoder (PROTOCOL.md 1) under arbitrary bytes and arbitrary read sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from securemsg.errors import TruncatedFrame
from securemsg.framing import (
    HEADER_LEN,
    NEED_MORE,
    BadLength,
    Frame,
    FrameDecoder,
    TooLarge,
    TooSmall,
    encode_frame,
)

from .fuzz_support import mutated, seeds

MAX_FRAME = 4096


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in pieces of the given sizes (cycled), as recv() might return it."""
    pieces, offset, i = [], 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        pieces.append(data[offset : offset + size])
        offset += size
        i += 1
    return pieces


def decode(pieces: list[bytes], max_frame: int = MAX_FRAME, min_frame: int = 0) -> list[object]:
    """Every event the decoder gives for ``pieces``, draining after each one."""
    decoder = FrameDecoder(max_frame, min_frame)
    events: list[object] = []
    for piece in pieces:
        decoder.feed(piece)
        while (event := decoder.next_event()) is not NEED_MORE:
            events.append(event)
            if isinstance(event, BadLength):
                return events
    return events


def reference(data: bytes, max_frame: int = MAX_FRAME, min_frame: int = 0) -> list[object]:
    """PROTOCOL.md 1 read literally: length, then that many bytes, until a bad length."""
    events: list[object] = []
    offset = 0
    while len(data) - offset >= HEADER_LEN:
        length = int.from_bytes(data[offset : offset + HEADER_LEN], "big")
        if length > max_frame:
            return [*events, TooLarge(length, max_frame)]
        if length < min_frame:
            return [*events, TooSmall(length, min_frame)]
        if len(data) - offset - HEADER_LEN < length:
            break
        events.append(Frame(data[offset + HEADER_LEN : offset + HEADER_LEN + length]))
        offset += HEADER_LEN + length
    return events


read_sizes = st.lists(st.integers(1, 700), max_size=8)


@given(st.one_of(mutated(seeds()), st.binary(max_size=6000)), read_sizes)
def test_any_bytes_any_reads_decode_as_the_reference(data: bytes, sizes: list[int]) -> None:
    assert decode(cut(data, sizes)) == reference(data)


@pytest.mark.parametrize("seed", seeds(), ids=lambda seed: f"{len(seed)}B")
def test_corpus_seeds_decode_as_the_reference(seed: bytes) -> None:
    for sizes in ([1], [3], [len(seed) or 1]):
        assert decode(cut(seed, sizes), 1 << 20) == reference(seed, 1 << 20)


@given(st.lists(st.binary(max_size=3000), max_size=6), read_sizes)
def test_frames_round_trip_whatever_the_reads(payloads: list[bytes], sizes: list[int]) -> None:
    wire = b"".join(encode_frame(payload) for payload in payloads)
    assert decode(cut(wire, sizes)) == [Frame(payload) for payload in payloads]


@given(st.binary(max_size=3000), read_sizes, st.integers(0, 64))
def test_min_frame_is_enforced_like_the_reference(
    data: bytes, sizes: list[int], min_frame: int
) -> None:
    assert decode(cut(data, sizes), min_frame=min_frame) == reference(data, min_frame=min_frame)


@given(st.binary(max_size=3000), read_sizes)
def test_eof_is_clean_exactly_when_nothing_is_left(data: bytes, sizes: list[int]) -> None:
    decoder = FrameDecoder(MAX_FRAME)
    failed = False
    for piece in cut(data, sizes):
        decoder.feed(piece)
        while (event := decoder.next_event()) is not NEED_MORE:
            if isinstance(event, BadLength):
                failed = True
                break
        if failed:
            break
    left = decoder.buffered
    if failed or left == 0:
        decoder.check_eof()
        return
    with pytest.raises(TruncatedFrame):
        decoder.check_eof()
    length = decoder.pending_length()
    if left >= HEADER_LEN:
        assert length == int.from_bytes(data[len(data) - left : len(data) - left + 4], "big")
    else:
        assert length is None


@given(st.lists(st.binary(min_size=1, max_size=200000), min_size=1, max_size=3))
def test_no_buffer_is_kept_once_every_frame_is_out(payloads: list[bytes]) -> None:
    decoder = FrameDecoder(1 << 20)
    for payload in payloads:
        for piece in cut(encode_frame(payload), [65536]):
            decoder.feed(piece)
        assert decoder.next_event() == Frame(payload)
        assert decoder.next_event() is NEED_MORE
        assert decoder.buffered == 0 and decoder._data == b""
