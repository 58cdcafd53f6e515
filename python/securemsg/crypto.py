"""The xor "cipher" of PROTOCOL.md section 2 (a teaching foil, not encryption).

``payload[i] = plaintext[i] ^ key[i % len(key)]``, the key restarting at
``key[0]`` for every frame. The same function encrypts and decrypts.

``xor`` below is the reference: the rule, byte by byte. The programs encrypt
through ``XorCipher``, which runs the same rule with ``crypto_fast.KeyStream``: a
byte loop in Python manages a few MB/s, too slow for 1 MiB messages.
tests/unit/test_fast_paths.py checks the two agree.
"""

from __future__ import annotations

from . import crypto_fast

DEFAULT_KEY = b"MY_SECRET_KEY"


def xor(data: bytes, key: bytes) -> bytes:
    """Return ``data`` xored with ``key`` repeated from its first byte."""
    if not key:
        raise ValueError("empty xor key")
    n = len(key)
    return bytes(data[i] ^ key[i % n] for i in range(len(data)))


class XorCipher:
    """xor with one key: what the programs use for every frame.

    The one place that picks the fast path (``crypto_fast.KeyStream``) for the programs.
    """

    __slots__ = ("_stream",)

    def __init__(self, key: bytes) -> None:
        self._stream = crypto_fast.KeyStream(key)

    def apply(self, data: bytes) -> bytes:
        """Encrypt or decrypt ``data`` (the same operation)."""
        return self._stream.apply(data)
