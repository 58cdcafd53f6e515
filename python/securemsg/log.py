"""Log lines and byte escaping (PROTOCOL.md section 6).

Every event is one line written with one ``write`` and flushed at once, under
a lock, so lines of concurrent clients never interleave and show up at once
when stdout is a pipe (Docker). ``[INFO]``, ``[RECV]`` and ``[SEND]`` go to
stdout, ``[ERROR]`` to stderr. The tag is coloured only on a terminal and only
when ``NO_COLOR`` is unset or empty.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

# --- escaping ---------------------------------------------------------------
#
# A log line may quote a 1 MiB message, so the rule runs in C-level str and
# bytes methods, never in a Python loop over the bytes. Python's UTF-8 decoder
# accepts exactly RFC 3629 (no overlongs, no surrogates, nothing above
# U+10FFFF) and with "surrogateescape" turns each byte it rejects into one
# code point U+DC80..U+DCFF. After that, every character that needs escaping
# is a single code point, and one table lookup per character does the rest:
# the general path. Two shortcuts keep the common cases cheap:
# - plain ASCII text with nothing to escape is returned as is;
# - long text is escaped with a few bytes.replace calls, then regex searches
#   for the rare rest. Replacing bytes before decoding is exact because the
#   bytes to escape below 0x80 never occur inside a multi-byte sequence, and
#   replacing them with ASCII changes how no other byte decodes.


def _hex(raw: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in raw)


def _build_escapes() -> dict[int, str]:
    """Code point -> printed form, for every code point that is not printed as is."""
    escapes = {code: _hex(chr(code).encode()) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
    escapes.update({0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
    escapes.update({code: _hex(chr(code).encode()) for code in (0x2028, 0x2029)})
    escapes.update({0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)})
    return escapes


_ESCAPES = _build_escapes()
_ASCII_ESCAPES = {code: text.encode() for code, text in _ESCAPES.items() if code < 0x80}
_NOT_ASCII_SPECIAL = bytes(byte for byte in range(256) if byte not in _ASCII_ESCAPES)
_WIDE_CONTROL = re.compile("[\x80-\x9f\u2028\u2029]")
_INVALID = re.compile("[\udc80-\udcff]")
_LONG = 4096  # bytes; shorter data always takes the general path
_table: list[int | str] = []


def _translate_table() -> list[int | str]:
    """``_ESCAPES`` as a str.translate table indexed by code point (built once).

    A list is looked up faster than a dict. Code points past its end (none
    from U+DD00 on needs escaping) raise IndexError, which translate takes as
    "print as is".
    """
    if not _table:
        table: list[int | str] = list(range(max(_ESCAPES) + 1))
        for code, text in _ESCAPES.items():
            table[code] = text
        _table[:] = table
    return _table


def _escape_ascii_specials(data: bytes, specials: bytes) -> bytes:
    present = set(specials)
    if 0x5C in present:  # first: the other escapes add backslashes of their own
        data = data.replace(b"\\", b"\\\\")
        present.discard(0x5C)
    for byte in present:
        data = data.replace(bytes((byte,)), _ASCII_ESCAPES[byte])
    return data


def _lookup(match: re.Match[str]) -> str:
    return _ESCAPES[ord(match.group())]


def _escape_long_text(data: bytes, specials: bytes) -> str:
    if specials:
        data = _escape_ascii_specials(data, specials)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # a few bad bytes in text: touch only those
        text = _INVALID.sub(_lookup, data.decode("utf-8", "surrogateescape"))
    if _WIDE_CONTROL.search(text) is not None:
        text = _WIDE_CONTROL.sub(_lookup, text)
    return text


def _looks_binary(data: bytes) -> bool:
    sample = data[:_LONG].decode("utf-8", "surrogateescape")
    return len(_INVALID.findall(sample)) > _LONG // 64


def escape(data: bytes) -> str:
    """Return ``data`` as printable text: the escaping rule of PROTOCOL.md 6."""
    specials = data.translate(None, _NOT_ASCII_SPECIAL)
    if data.isascii():
        if specials:
            data = _escape_ascii_specials(data, specials)
        return data.decode("ascii")
    if len(data) < _LONG or _looks_binary(data):
        return data.decode("utf-8", "surrogateescape").translate(_translate_table())
    return _escape_long_text(data, specials)


def escape_bytes(data: bytes) -> bytes:
    """``escape(data)`` encoded as UTF-8; plain ASCII comes back as is, uncopied."""
    if data.isascii():
        specials = data.translate(None, _NOT_ASCII_SPECIAL)
        return _escape_ascii_specials(data, specials) if specials else data
    return escape(data).encode()


def escape_text(text: str) -> str:
    """Escape a command-line argument (str as Python decoded it from argv)."""
    return escape(os.fsencode(text))


# --- lines --------------------------------------------------------------------

_COLOURS = {"INFO": b"36", "RECV": b"32", "SEND": b"33", "ERROR": b"31"}


def colour_enabled(stream: BinaryIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set to a non-empty value."""
    if os.environ.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def _prefix(tag: str, colour: bool) -> bytes:
    if colour:
        return b"\x1b[" + _COLOURS[tag] + b"m[" + tag.encode() + b"]\x1b[0m "
    return b"[" + tag.encode() + b"] "


def _writer_of(stream: BinaryIO) -> Callable[[bytes], None]:
    """A function writing one line to ``stream`` with as few calls as possible.

    For a real file (sys.stdout.buffer) write to the unbuffered raw file:
    one system call per line, no copy into the buffer and no separate flush.
    """
    raw = getattr(stream, "raw", None)
    if isinstance(raw, io.FileIO):
        stream.flush()  # anything written before must come first
        write = raw.write

        def write_all(data: bytes) -> None:
            written = write(data) or 0
            if written < len(data):  # a pipe may take a long line in parts
                view = memoryview(data)[written:]
                while view:
                    view = view[write(view) or 0 :]

        return write_all

    def write_flush(data: bytes) -> None:
        stream.write(data)
        stream.flush()

    return write_flush


class Logger:
    """Writes the log lines of one program; safe to share between threads."""

    def __init__(
        self,
        out: BinaryIO | None = None,
        err: BinaryIO | None = None,
        colour: bool | None = None,
    ) -> None:
        self._out = out if out is not None else sys.stdout.buffer
        self._err = err if err is not None else sys.stderr.buffer
        out_colour = colour_enabled(self._out) if colour is None else colour
        err_colour = colour_enabled(self._err) if colour is None else colour
        self._lock = threading.Lock()
        self._write_out = _writer_of(self._out)
        self._write_err = _writer_of(self._err)
        self._info = _prefix("INFO", out_colour)
        self._recv = _prefix("RECV", out_colour)
        self._send = _prefix("SEND", out_colour)
        self._error = _prefix("ERROR", err_colour)
        self._plaintext = self._recv + b"Plaintext: "

    def _write(self, writer: Callable[[bytes], None], data: bytes) -> None:
        with self._lock:
            try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                writer(data)
            except (OSError, ValueError):
                pass  # a closed or broken log stream must not take the server down

    def info(self, text: str) -> None:
        """``[INFO] text`` on stdout."""
        self._write(self._write_out, self._info + text.encode() + b"\n")

    def recv(self, text: str) -> None:
        """``[RECV] text`` on stdout."""
        self._write(self._write_out, self._recv + text.encode() + b"\n")

    def send(self, text: str) -> None:
        """``[SEND] text`` on stdout."""
        self._write(self._write_out, self._send + text.encode() + b"\n")

    def error(self, text: str) -> None:
        """``[ERROR] text`` on stderr."""
        self._write(self._write_err, self._error + text.encode() + b"\n")

    def recv_plaintext(self, message: bytes) -> None:
        """``[RECV] Plaintext: <escaped message>`` (the server's hot path)."""
        self._write(self._write_out, b"".join((self._plaintext, escape_bytes(message), b"\n")))

    def raw_out(self, text: str) -> None:
        """Unformatted text on stdout (the usage text for --help)."""
        self._write(self._write_out, text.encode())

    def raw_err(self, text: str) -> None:
        """Unformatted text on stderr (usage text after an error, the prompt)."""
        self._write(self._write_err, text.encode())
