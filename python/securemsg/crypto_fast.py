"""Fast path of ``crypto.xor``: the same result, for large frames.

Read ``crypto.xor`` for the rule. Here the key is repeated to the length of
the data and both are read as one big integer each, so that CPython xors
whole machine words: hundreds of MB/s instead of a few. (Integers drop
leading zero bytes; ``to_bytes`` with the length puts them back.)

Turning the repeated key into an integer costs as much as the xor itself, so
``KeyStream`` keeps it: one integer for the largest size seen, in little-endian
order so that the stream of a shorter frame is its low bytes (one mask).
"""

from __future__ import annotations


def xor(data: bytes, key: bytes) -> bytes:
    """``crypto.xor(data, key)``, computed on integers."""
    if not key:
        raise ValueError("empty xor key")
    size = len(data)
    stream = (key * (size // len(key) + 1))[:size]
    mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
    return mixed.to_bytes(size, "little")


class KeyStream:
    """``xor`` with one key, keeping the key stream between frames.

    Safe to share between threads: the cached integer is immutable and
    replaced whole.
    """

    __slots__ = ("_key", "_size", "_stream")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("empty xor key")
        self._key = bytes(key)
        self._size = 0
        self._stream = 0

    def _for(self, size: int) -> int:
        stream, have = self._stream, self._size
        if size > have:
            have = max(size, 2 * have, 4096)
            repeated = self._key * (have // len(self._key) + 1)
            stream = int.from_bytes(repeated[:have], "little")
            self._stream, self._size = stream, have
        if size == have:
            return stream
        return stream & ((1 << (8 * size)) - 1)

    def apply(self, data: bytes) -> bytes:
        size = len(data)
        return (int.from_bytes(data, "little") ^ self._for(size)).to_bytes(size, "little")
