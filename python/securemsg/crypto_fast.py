"""Fast path of ``crypto.xor``: the same result, for large frames.

Read ``crypto.xor`` for the rule. Here the key is repeated to the length of
the data and both are read as one big integer each, so that CPython xors
whole machine words: hundreds of MB/s instead of a few. (Integers drop
leading zero bytes; ``to_bytes`` with the length puts them back.)
"""

from __future__ import annotations


def xor(data: bytes, key: bytes) -> bytes:
    """``crypto.xor(data, key)``, computed on integers."""
    if not key:
        raise ValueError("empty xor key")
    size = len(data)
    stream = (key * (size // len(key) + 1))[:size]
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return mixed.to_bytes(size, "big")
