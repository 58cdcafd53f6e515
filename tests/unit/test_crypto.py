"""xor cipher (PROTOCOL.md section 2) against tests/vectors/xor.json.

The fast path behind XorCipher is checked against crypto.xor in test_fast_paths.py.
"""

from __future__ import annotations

import pytest
from securemsg.crypto import DEFAULT_KEY, XorCipher, xor

from tests.support.unit_support import load_vectors

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


def test_worked_example_of_the_protocol() -> None:
    assert xor(b"Hello from C", DEFAULT_KEY).hex(" ") == "05 3c 33 3f 2a 63 34 37 3b 32 6b 06"


def test_key_restarts_every_call() -> None:
    cipher = XorCipher(DEFAULT_KEY)
    assert cipher.apply(b"Hi") == cipher.apply(b"Hi") == bytes.fromhex("0530")
    assert xor(b"Hi", DEFAULT_KEY) == bytes.fromhex("0530")


def test_key_wraps_after_its_last_byte() -> None:
    assert xor(b"\x00" * 5, b"ab") == b"ababa"


def test_empty_key_refused() -> None:
    with pytest.raises(ValueError):
        XorCipher(b"")
    with pytest.raises(ValueError):
        xor(b"data", b"")
