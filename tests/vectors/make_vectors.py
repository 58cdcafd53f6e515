#!/usr/bin/env python3
"""Regenerate tests/vectors/*.json from first principles.

The expected values are computed here with the plainest possible code (a
per-byte loop, an explicit escaping table), independent of both
implementations, so the vectors can catch a bug in either of them.
Run: python3 tests/vectors/make_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_KEY = b"MY_SECRET_KEY"

XOR_CASES: list[tuple[str, bytes, bytes]] = [
    ("empty", DEFAULT_KEY, b""),
    ("one byte", DEFAULT_KEY, b"A"),
    ("seed C sample", DEFAULT_KEY, b"Hello from C"),
    ("seed Python sample", DEFAULT_KEY, b"Hello from Python"),
    ("exactly the key length", DEFAULT_KEY, b"0123456789abc"),
    ("longer than the key", DEFAULT_KEY, b"The quick brown fox jumps over the lazy dog"),
    ("ACK text", DEFAULT_KEY, b"ACK: Received 12 bytes"),
    ("non-ASCII UTF-8", DEFAULT_KEY, "héllo wörld — 世界 🔐".encode()),
    ("NUL bytes", DEFAULT_KEY, b"\x00\x00a\x00b\x00"),
    ("bytes equal to the key", DEFAULT_KEY, DEFAULT_KEY + DEFAULT_KEY),
    ("all byte values", DEFAULT_KEY, bytes(range(256))),
    ("non-default key", b"k3y!", b"attack at dawn"),
    ("one-byte key", b"\xff", b"\x00\x01\x02\xfe"),
    ("binary key", bytes(range(1, 20)), b"binary key, text message, 40 bytes long"),
]

# (name, raw bytes, printed form) per PROTOCOL.md section 6, "Escaping".
ESCAPE_CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", ""),
    ("ascii", b"Hi", "Hi"),
    ("utf-8 two-byte", "café".encode(), "café"),
    ("utf-8 four-byte", "🔐".encode(), "🔐"),
    ("newline", b"a\nb", "a\\nb"),
    ("crlf and tab", b"a\r\n\tb", "a\\r\\n\\tb"),
    ("escape sequence", b"\x1b[31m", "\\x1b[31m"),
    ("backslash", b"\\x1b", "\\\\x1b"),
    ("nul", b"\x00", "\\x00"),
    ("del", b"\x7f", "\\x7f"),
    ("lone invalid byte", b"\xffA", "\\xffA"),
    ("truncated sequence", b"\xe2\x82A", "\\xe2\\x82A"),
    ("C1 control CSI", b"\xc2\x9b", "\\xc2\\x9b"),
    ("C1 control NEL", b"\xc2\x85", "\\xc2\\x85"),
    ("line separator", "a\u2028b".encode(), "a\\xe2\\x80\\xa8b"),
    ("paragraph separator", "\u2029".encode(), "\\xe2\\x80\\xa9"),
    ("overlong slash", b"\xc0\xaf", "\\xc0\\xaf"),
    ("overlong three-byte", b"\xe0\x80\xaf", "\\xe0\\x80\\xaf"),
    ("surrogate", b"\xed\xa0\x80", "\\xed\\xa0\\x80"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"),
    ("lone continuation", b"\x80abc", "\\x80abc"),
    ("valid after invalid lead", b"\xe2\xe2\x82\xac", "\\xe2€"),
    ("max code point", b"\xf4\x8f\xbf\xbf", "\U0010ffff"),
    ("non-breaking space stays", "a\u00a0b".encode(), "a\u00a0b"),
    ("bidi override stays", "\u202e".encode(), "\u202e"),
]


def xor(key: bytes, data: bytes) -> bytes:
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data))


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def xor_vectors() -> dict:
    cases = []
    for name, key, plaintext in XOR_CASES:
        ciphertext = xor(key, plaintext)
        cases.append(
            {
                "name": name,
                "key": key.hex(),
                "plaintext": plaintext.hex(),
                "ciphertext": ciphertext.hex(),
                "frame": frame(ciphertext).hex(),
            }
        )
    return {
        "description": "xor cipher and framing (PROTOCOL.md sections 1-2); all values hex",
        "cases": cases,
    }


def escape_vectors() -> dict:
    return {
        "description": (
            "log escaping (PROTOCOL.md section 6); input hex, output the exact printed text"
        ),
        "cases": [
            {"name": name, "input": raw.hex(), "output": printed}
            for name, raw, printed in ESCAPE_CASES
        ],
    }


def main() -> None:
    for filename, table in (("xor.json", xor_vectors()), ("escape.json", escape_vectors())):
        text = json.dumps(table, indent=1, ensure_ascii=True) + "\n"
        (HERE / filename).write_text(text, encoding="ascii")


if __name__ == "__main__":
    main()
