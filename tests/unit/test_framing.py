"""Sans-io framing (PROTOCOL.md section 1)."""

from __future__ import annotations

import pytest
from securemsg.errors import TruncatedFrame
from securemsg.framing import (
    NEED_MORE,
    Frame,
    FrameDecoder,
    TooLarge,
    TooSmall,
    encode_frame,
)

from tests.support.unit_support import load_vectors

CASES = load_vectors("xor.json")


def drain(decoder: FrameDecoder) -> list:
    events = []
    while (event := decoder.next_event()) is not NEED_MORE:
        events.append(event)
        if not isinstance(event, Frame):
            break
    return events


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_encode_matches_vector(case: dict) -> None:
    assert encode_frame(bytes.fromhex(case["ciphertext"])) == bytes.fromhex(case["frame"])


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_decode_vector_byte_by_byte(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    decoder = FrameDecoder(1 << 20)
    events = []
    for i in range(len(frame)):
        decoder.feed(frame[i : i + 1])
        events += drain(decoder)
        if i < len(frame) - 1:
            assert events == []
    assert events == [Frame(bytes.fromhex(case["ciphertext"]))]
    assert decoder.buffered == 0


def test_zero_length_frame() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(b"\x00\x00\x00\x00")
    assert decoder.next_event() == Frame(b"")
    assert decoder.next_event() is NEED_MORE


def test_two_frames_in_one_feed_and_a_partial_third() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(encode_frame(b"one") + encode_frame(b"two") + b"\x00\x00")
    assert drain(decoder) == [Frame(b"one"), Frame(b"two")]
    assert decoder.buffered == 2
    decoder.feed(b"\x00\x01!")
    assert drain(decoder) == [Frame(b"!")]


def test_too_large_reported_from_the_header_alone() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(b"\x00\x00\x00\x41")  # 65: no body needed to decide
    assert decoder.next_event() == TooLarge(65, 64)
    decoder.feed(b"x" * 1000)  # the body is never buffered
    assert decoder.buffered == 4
    assert decoder.next_event() == TooLarge(65, 64)  # the decoder stays failed


def test_largest_accepted_length() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(encode_frame(b"y" * 64))
    assert decoder.next_event() == Frame(b"y" * 64)


def test_huge_length_prefix() -> None:
    decoder = FrameDecoder(1 << 20)
    decoder.feed(b"\xff\xff\xff\xff")
    assert decoder.next_event() == TooLarge(0xFFFFFFFF, 1 << 20)


def test_minimum_length() -> None:
    decoder = FrameDecoder(100, min_frame=17)
    decoder.feed(encode_frame(b"z" * 16))
    assert decoder.next_event() == TooSmall(16, 17)


def test_limits_may_change_between_frames() -> None:
    decoder = FrameDecoder(48, min_frame=48)
    decoder.feed(encode_frame(b"h" * 48) + encode_frame(b"t" * 17))
    assert decoder.next_event() == Frame(b"h" * 48)
    decoder.min_frame, decoder.max_frame = 17, 65535
    assert decoder.next_event() == Frame(b"t" * 17)


def test_eof_on_a_frame_boundary_is_clean() -> None:
    decoder = FrameDecoder(64)
    decoder.check_eof()
    decoder.feed(encode_frame(b"ok"))
    drain(decoder)
    decoder.check_eof()


def test_eof_inside_the_length() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(b"\x00\x00")
    assert decoder.next_event() is NEED_MORE
    with pytest.raises(TruncatedFrame) as info:
        decoder.check_eof()
    assert (info.value.part, info.value.have, info.value.need) == ("length", 2, 4)
    assert str(info.value) == "connection closed after 2 of 4 length bytes"


def test_eof_inside_the_payload() -> None:
    decoder = FrameDecoder(64)
    decoder.feed(b"\x00\x00\x00\x0aabc")
    assert decoder.next_event() is NEED_MORE
    with pytest.raises(TruncatedFrame) as info:
        decoder.check_eof()
    assert str(info.value) == "connection closed after 3 of 10 payload bytes"


def test_large_frame_in_socket_sized_pieces() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    wire = encode_frame(payload) + encode_frame(b"next")
    decoder = FrameDecoder(1 << 20)
    events = []
    for offset in range(0, len(wire), 65536):
        decoder.feed(wire[offset : offset + 65536])
        events += drain(decoder)
    assert events == [Frame(payload), Frame(b"next")]
