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
# A log line may quote a 1 MiB message, and escaping holds the GIL: a Python
# loop over the bytes (or a regex callback per match) would let one client
# sending binary frames stall every other one. So the rule runs as a fixed
# number of C-level passes whose cost hardly depends on what the bytes are:
#
# 1. ASCII bytes to escape (backslash, C0 controls, DEL): one bytes.replace per
#    distinct byte present. Every escape is written with _INTRO in place of its
#    backslash until step 4, so that step 3 finds no backslash but its own (a
#    message may contain the text "\udc").
# 2. C1 controls (c2 80..9f) and U+2028/U+2029 (e2 80 a8/a9) are well-formed
#    but print byte by byte: their lead byte is replaced with its escape, which
#    leaves their other bytes invalid, for step 3 to escape.
#    Neither step changes how any other byte decodes: ASCII bytes are never
#    part of a multi-byte sequence, and c2 and e2 always start one.
# 3. Python's UTF-8 decoder accepts exactly RFC 3629 (no overlongs, no
#    surrogates, nothing above U+10FFFF) and, with "surrogateescape", turns each
#    byte it rejects into U+DC80..U+DCFF, resuming at the next byte as the rule
#    does. The encoder's "backslashreplace" writes those as \udcHH, which one
#    replace turns into _INTRO + "xHH". ("backslashreplace" when decoding would
#    write \xHH at once, but it calls its handler per byte: on random bytes it
#    alone takes seven times as long as this whole function.)
# 4. One bytes.translate turns _INTRO into the backslash.
#
# _INTRO and _MARK are C0 controls: step 1 escapes any the message contains
# (_INTRO first, as the other escapes add _INTRO bytes of their own).

_INTRO = b"\x00"  # the backslash of an escape, until step 4
_MARK = b"\x01"  # step 2: a lead byte about to be replaced with its escape


def _ascii_escape(byte: int) -> bytes:
    text = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}.get(byte, f"\\x{byte:02x}")
    return text.encode().replace(b"\\", _INTRO)


def _byte_class(members: bytes) -> bytes:
    """A translate table: 1 for the bytes in ``members``, 0 for the others."""
    return bytes(int(byte in members) for byte in range(256))


_ASCII_SPECIALS = [*range(0x20), 0x7F, 0x5C]  # ascending from _INTRO, 0x00
_ASCII_ESCAPES = {byte: (bytes((byte,)), _ascii_escape(byte)) for byte in _ASCII_SPECIALS}
_NOT_ASCII_SPECIAL = bytes(byte for byte in range(256) if byte not in _ASCII_ESCAPES)
# Well-formed sequences printed byte by byte (step 2): a regex to notice one,
# its lead byte, and translate tables testing each of its bytes (lead first).
_WIDE_CONTROLS = [
    (  # C1 controls, U+0080..U+009F
        re.compile(rb"\xc2[\x80-\x9f]"),
        0xC2,
        [_byte_class(b"\xc2"), _byte_class(bytes(range(0x80, 0xA0)))],
    ),
    (  # line and paragraph separators, U+2028 and U+2029
        re.compile(rb"\xe2\x80[\xa8\xa9]"),
        0xE2,
        [_byte_class(b"\xe2"), _byte_class(b"\x80"), _byte_class(b"\xa8\xa9")],
    ),
]
_ANY_WIDE_CONTROL = re.compile(b"|".join(notice.pattern for notice, _, _ in _WIDE_CONTROLS))
_FINAL = bytes(range(256)).replace(_INTRO, b"\\")


def _escape_ascii_specials(data: bytes, specials: bytes) -> bytes:
    """Step 1; ``specials`` holds (at least once) each special byte of ``data``."""
    if len(specials) <= 64:
        present = sorted(set(specials))  # _INTRO, 0x00, first
    else:  # set() of a long string costs more than a memchr per special
        present = [byte for byte in _ASCII_SPECIALS if byte in specials]
    for byte in present:
        raw, escaped = _ASCII_ESCAPES[byte]
        data = data.replace(raw, escaped)
    return data


def _escape_leads(data: bytes, lead: int, tables: list[bytes]) -> bytes:
    """Step 2: escape the ``lead`` byte of each run of bytes in the ``tables`` classes.

    No pass per possible sequence, no call per match: the data is read as one
    big integer, a base-256 digit per byte. translate turns a class test into
    a 0/1 digit per byte, a shift aligns the test of the byte k places on, AND
    combines the tests, and one XOR turns just the lead bytes into _MARK (the
    mask's digits are 0 or 1: nothing carries into a neighbour).
    """
    mask = -1
    for offset, table in enumerate(tables):
        mask &= int.from_bytes(data.translate(table), "little") >> (8 * offset)
    marked = int.from_bytes(data, "little") ^ mask * (lead ^ _MARK[0])
    return marked.to_bytes(len(data), "little").replace(_MARK, b"%bx%02x" % (_INTRO, lead))


def _escape_invalid(data: bytes) -> bytes:
    """Step 3: each byte the UTF-8 decoder rejects becomes _INTRO + "xHH"."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        return text.encode("utf-8", "backslashreplace").replace(b"\\udc", _INTRO + b"x")
    return data


def escape_bytes(data: bytes) -> bytes:
    """``escape(data)`` encoded as UTF-8; with nothing to escape, ``data`` itself."""
    specials = data.translate(None, _NOT_ASCII_SPECIAL)
    if specials:
        data = _escape_ascii_specials(data, specials)
    if not data.isascii():
        if _ANY_WIDE_CONTROL.search(data) is not None:
            for notice, lead, tables in _WIDE_CONTROLS:
                if notice.search(data) is not None:
                    data = _escape_leads(data, lead, tables)
        data = _escape_invalid(data)
    elif not specials:
        return data  # the common case: plain ASCII text
    if _INTRO in data:
        data = data.translate(_FINAL)
    return data


def escape(data: bytes) -> str:
    """Return ``data`` as printable text: the escaping rule of PROTOCOL.md 6."""
    return escape_bytes(data).decode("utf-8")


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
        self._ack_sent = b"\n" + self._send + b"ACK sent to client\n"

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

    def answered(self, message: bytes) -> None:
        """``recv_plaintext(message)``, then ``[SEND] ACK sent to client``, in one write:
        the server's two lines for one message cost one system call, not two."""
        self._write(self._write_out, b"".join((self._plaintext, escape_bytes(message),
                                               self._ack_sent)))

    def raw_out(self, text: str) -> None:
        """Unformatted text on stdout (the usage text for --help)."""
        self._write(self._write_out, text.encode())

    def raw_err(self, text: str) -> None:
        """Unformatted text on stderr (usage text after an error, the prompt)."""
        self._write(self._write_err, text.encode())
