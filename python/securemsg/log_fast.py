"""Fast path of ``log.escape``: the same text, for messages up to 1 MiB.

Read ``log.escape`` for the rule. Here it runs as a few C-level passes
instead of a Python loop per byte:

- Valid UTF-8 without C1 controls or U+2028/U+2029 (all ASCII text, most
  other text): only ASCII bytes can need escaping, and an ASCII byte in valid
  UTF-8 is always a character of its own, so one ``bytes.replace`` per special
  byte present does it (backslash first: the other escapes add backslashes).
- Anything else: Python's UTF-8 decoder accepts exactly RFC 3629 and, with
  "surrogateescape", turns each byte it rejects into U+DC80..U+DCFF, resuming
  at the next byte as rule 4 does; one ``str.translate`` then writes every
  character to escape, and every such byte, as its escape.
"""

from __future__ import annotations

import re

_NAMED = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]


def _escaped(code: int) -> str:
    """How ``log.escape`` prints the character ``code`` when it must escape it."""
    if code in _NAMED:
        return _NAMED[code]
    return "".join(f"\\x{byte:02x}" for byte in chr(code).encode())


# Backslash first, then the other ASCII specials: (raw byte, its escape).
_ASCII_SPECIALS = [
    (bytes((code,)), _escaped(code).encode()) for code in [0x5C, *range(0x20), 0x7F]
]
_NOT_ASCII_SPECIAL = bytes(set(range(256)) - {raw[0] for raw, _ in _ASCII_SPECIALS})
_WIDE_CONTROL = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
_TRANSLATE = {code: _escaped(code) for code in [0x5C, *_CONTROLS]}
_TRANSLATE.update({0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)})


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _escape_ascii_specials(data: bytes) -> bytes:
    specials = data.translate(None, _NOT_ASCII_SPECIAL)
    if not specials:
        return data  # the common case: nothing to escape
    for raw, escaped in _ASCII_SPECIALS:
        if raw in specials:
            data = data.replace(raw, escaped)
    return data


def escape_bytes(data: bytes) -> bytes:
    """``log.escape(data)`` encoded as UTF-8."""
    if data.isascii() or (_is_utf8(data) and _WIDE_CONTROL.search(data) is None):
        return _escape_ascii_specials(data)
    text = data.decode("utf-8", "surrogateescape")
    return text.translate(_TRANSLATE).encode("utf-8")
