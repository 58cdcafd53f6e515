"""xor cipher (PROTOCOL.md section 2) against tests/vectors/xor.json."""

from __future__ import annotations

import pytest
from securemsg.crypto import DEFAULT_KEY, XorCipher, xor
from unit_support import load_vectors

CASES = load_vectors("xor.json")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_xor_function_matches_vector(case: dict) -> None:
    key = bytes.fromhex(case["key"])
    plaintext = bytes.fromhex(case["plaintext"])
    ciphertext = bytes.fromhex(case["ciphertext"])
    assert xor(plaintext, key) == ciphertext
    assert xor(ciphertext, key) == plaintext


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_cipher_matches_vector(case: dict) -> None:
    cipher = XorCipher(bytes.fromhex(case["key"]))
    plaintext = bytes.fromhex(case["plaintext"])
    ciphertext = bytes.fromhex(case["ciphertext"])
    assert cipher.apply(plaintext) == ciphertext
    assert cipher.apply(ciphertext) == plaintext


def _reference(data: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[i % len(key)] for i, byte in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 12, 13, 14, 4095, 4096, 4097, 70_000, 1 << 20])
def test_cipher_every_size_path(size: int) -> None:
    """Small frames slice a stream; large ones use the cached key integer."""
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    cipher = XorCipher(DEFAULT_KEY)
    expected = _reference(data, DEFAULT_KEY)
    assert cipher.apply(data) == expected
    assert cipher.apply(data) == expected  # second time from the cache
    assert len(cipher.apply(data)) == size


def test_cache_follows_size_changes() -> None:
    cipher = XorCipher(b"k3y!")
    for size in (5000, 9000, 5000, 100, 9000):
        data = b"\xaa" * size
        assert cipher.apply(data) == _reference(data, b"k3y!")


def test_leading_zero_bytes_survive() -> None:
    """Integers drop leading zeros; the output must keep the full length."""
    assert XorCipher(b"A").apply(b"A" * 5000) == b"\x00" * 5000
    assert xor(b"AB", b"AB") == b"\x00\x00"


def test_key_restarts_every_call() -> None:
    cipher = XorCipher(DEFAULT_KEY)
    assert cipher.apply(b"Hi") == cipher.apply(b"Hi") == bytes.fromhex("0530")


def test_empty_key_refused() -> None:
    with pytest.raises(ValueError):
        XorCipher(b"")
    with pytest.raises(ValueError):
        xor(b"data", b"")
