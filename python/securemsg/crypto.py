"""The xor "cipher" of PROTOCOL.md section 2 (a teaching foil, not encryption).

``payload[i] = plaintext[i] ^ key[i % len(key)]``, the key restarting at
``key[0]`` for every frame. A per-byte Python loop manages a few MB/s; turning
both operands into one big integer each lets CPython xor whole machine words,
hundreds of MB/s.
"""

from __future__ import annotations

DEFAULT_KEY = b"MY_SECRET_KEY"


def xor(data: bytes, key: bytes) -> bytes:
    """Return ``data`` xored with ``key`` repeated from its first byte."""
    if not key:
        raise ValueError("empty xor key")
    size = len(data)
    stream = (key * (size // len(key) + 1))[:size]
    return _xor_equal_length(data, stream)


def _xor_equal_length(data: bytes, stream: bytes) -> bytes:
    size = len(data)
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return mixed.to_bytes(size, "big")


class XorCipher:
    """xor with one key, keeping key material around between frames.

    Turning the repeated key into an integer costs as much as the xor itself,
    so the integer of the last large size is kept (benchmarks and file-like
    traffic repeat sizes); small frames slice a prepared key stream. Safe to
    share between threads: cached values are immutable and replaced whole.
    """

    __slots__ = ("_key", "_large", "_stream")

    LARGE = 4096  # frames from this size on use the cached key integer

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("empty xor key")
        self._key = bytes(key)
        self._stream = self._key * (self.LARGE // len(self._key) + 1)
        self._large: tuple[int, int] = (-1, 0)  # (size, key stream as integer)

    def apply(self, data: bytes) -> bytes:
        """Encrypt or decrypt ``data`` (the same operation)."""
        size = len(data)
        if size < self.LARGE:
            stream = int.from_bytes(self._stream[:size], "big")
        else:
            cached_size, stream = self._large
            if cached_size != size:
                repeated = self._key * (size // len(self._key) + 1)
                stream = int.from_bytes(repeated[:size], "big")
                self._large = (size, stream)
        return (int.from_bytes(data, "big") ^ stream).to_bytes(size, "big")
