"""The fast paths against the reference code (issue 11, item 4).

``log.escape`` and ``crypto.xor`` are the readable reference; the programs run
``log_fast.escape_bytes`` and ``crypto_fast.xor`` (through ``Logger`` and
``XorCipher``). Both must agree on the shared vectors, on hypothesis' random
bytes, and on random sequences of the fragments where UTF-8 decoding is
decided (leads, continuations, controls, separators).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securemsg import crypto, crypto_fast, log, log_fast

from tests.support.unit_support import load_vectors

ESCAPE_CASES = load_vectors("escape.json")
XOR_CASES = load_vectors("xor.json")

FRAGMENTS = [
    b"a", b"\\", b"\n", b"\r", b"\t", b"\x00", b"\x1b", b"\x7f", b"\x80", b"\x85", b"\x8f",
    b"\x90", b"\x9f", b"\xa0", b"\xa8", b"\xa9", b"\xbf", b"\xc0", b"\xc1", b"\xc2", b"\xc3",
    b"\xe0", b"\xe2", b"\xed", b"\xef", b"\xf0", b"\xf4", b"\xf5", b"\xff",
    "\u00e9".encode(), "\u20ac".encode(), "\u2028".encode(), "\u2029".encode(),
    "\x85".encode(), "\U0001f510".encode(), "\U0010ffff".encode(),
]
fragment_strings = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join)
keys = st.binary(min_size=1, max_size=40)

SLOW = settings(max_examples=300, deadline=None)


def fast_escape(data: bytes) -> str:
    return log_fast.escape_bytes(data).decode("utf-8")


@pytest.mark.parametrize("case", ESCAPE_CASES, ids=[case["name"] for case in ESCAPE_CASES])
def test_escape_fast_path_matches_vector(case: dict) -> None:
    assert fast_escape(bytes.fromhex(case["input"])) == case["output"]


@SLOW
@given(st.binary(max_size=200))
def test_escape_fast_path_agrees_on_random_bytes(data: bytes) -> None:
    assert fast_escape(data) == log.escape(data)


@SLOW
@given(fragment_strings)
def test_escape_fast_path_agrees_on_utf8_fragments(data: bytes) -> None:
    assert fast_escape(data) == log.escape(data)


@SLOW
@given(st.text(max_size=80))
def test_escape_fast_path_agrees_on_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")  # lone surrogates too: never well-formed
    assert fast_escape(data) == log.escape(data)


@pytest.mark.parametrize(
    "data",
    [
        b"plain ascii " * 1000,
        (b"line\n" * 3000) + b"\\",
        "h\u00e9llo w\u00f6rld \u2014 \u4e16\u754c \U0001f510 ".encode() * 300,
        "text with one bad byte \u00e9 ".encode() * 300 + b"\xff",
        "sparse c1 \u0085 and \u2028 ".encode() * 300,
        bytes(random.Random(7).randrange(256) for _ in range(20_000)),
    ],
    ids=["ascii", "newlines", "utf8", "one-invalid", "wide-controls", "binary"],
)
def test_escape_fast_path_agrees_on_long_inputs(data: bytes) -> None:
    assert fast_escape(data) == log.escape(data)


def test_plain_text_comes_back_unchanged() -> None:
    data = "caf\u00e9 ".encode() * 100
    assert log_fast.escape_bytes(data) == data


@pytest.mark.parametrize("case", XOR_CASES, ids=[case["name"] for case in XOR_CASES])
def test_xor_fast_path_matches_vector(case: dict) -> None:
    key = bytes.fromhex(case["key"])
    plaintext = bytes.fromhex(case["plaintext"])
    assert crypto_fast.xor(plaintext, key).hex() == case["ciphertext"]


@SLOW
@given(st.binary(max_size=500), keys)
def test_xor_fast_path_agrees_on_random_bytes(data: bytes, key: bytes) -> None:
    expected = crypto.xor(data, key)
    assert crypto_fast.xor(data, key) == expected
    assert crypto.XorCipher(key).apply(data) == expected


@pytest.mark.parametrize("size", [0, 1, 12, 13, 14, 4095, 4096, 4097, 70_000])
def test_xor_fast_path_keeps_every_byte(size: int) -> None:
    """Integers drop leading zero bytes: the output must keep the full length."""
    key = b"k3y!"
    data = (key * (size // 4 + 1))[:size]  # xors to all zeros
    assert crypto_fast.xor(data, key) == bytes(size) == crypto.xor(data, key)


def test_key_stream_serves_shorter_and_longer_frames_after_a_long_one() -> None:
    """The cached stream of the largest size seen, masked for shorter frames."""
    key = b"MY_SECRET_KEY"
    stream = crypto_fast.KeyStream(key)
    for size in [70_000, 0, 1, 13, 64, 69_999, 70_000, 200_001, 5]:
        data = bytes((i * 7) % 256 for i in range(size))
        assert stream.apply(data) == crypto.xor(data, key), size


def test_empty_key_refused_by_the_fast_path() -> None:
    with pytest.raises(ValueError):
        crypto_fast.xor(b"data", b"")
    with pytest.raises(ValueError):
        crypto_fast.KeyStream(b"")
