"""Log lines and byte escaping (PROTOCOL.md section 6).

Every event is one line written with one ``write`` and flushed at once, under
a lock, so lines of concurrent clients never interleave and show up at once
when stdout is a pipe (Docker). ``[INFO]``, ``[RECV]`` and ``[SEND]`` go to
stdout, ``[ERROR]`` to stderr. The tag is coloured only on a terminal and only
when ``NO_COLOR`` is unset or empty.
"""

from __future__ import annotations

import _thread
import collections
import io
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from . import log_fast

# --- escaping (PROTOCOL.md section 6) ---------------------------------------
#
# escape() is the reference: the four rules, a byte at a time. The server's
# [RECV] Plaintext lines quote messages of up to 1 MiB, where a Python loop
# would hold the GIL long enough to stall every other client; they use
# log_fast.escape_bytes, the same function written for speed (chosen once, in
# Logger below; tests/unit/test_fast_paths.py checks the two agree).

_NAMED = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}  # rules 1 and 2

# RFC 3629, rule 3: the lead bytes of well-formed sequences, with the length of
# the sequence and the range of its second byte (any later byte is 80..bf).
_LEADS = [
    (0x00, 0x7F, 1, (0, 0)),
    (0xC2, 0xDF, 2, (0x80, 0xBF)),  # c0 and c1 would only start overlongs
    (0xE0, 0xE0, 3, (0xA0, 0xBF)),  # no overlongs
    (0xE1, 0xEC, 3, (0x80, 0xBF)),
    (0xED, 0xED, 3, (0x80, 0x9F)),  # no surrogates
    (0xEE, 0xEF, 3, (0x80, 0xBF)),
    (0xF0, 0xF0, 4, (0x90, 0xBF)),  # no overlongs
    (0xF1, 0xF3, 4, (0x80, 0xBF)),
    (0xF4, 0xF4, 4, (0x80, 0x8F)),  # nothing above U+10FFFF
]


def _sequence_length(data: bytes, i: int) -> int:
    """The length of the well-formed UTF-8 sequence at ``data[i]``; 0 if none starts there."""
    lead = [entry for entry in _LEADS if entry[0] <= data[i] <= entry[1]]
    if not lead:
        return 0
    _, _, length, (second_low, second_high) = lead[0]
    tail = data[i + 1 : i + length]
    if len(tail) < length - 1:
        return 0
    if length > 1 and not second_low <= tail[0] <= second_high:
        return 0
    if any(not 0x80 <= byte <= 0xBF for byte in tail[1:]):
        return 0
    return length


def _is_control(char: str) -> bool:
    """Whether rule 3 prints this character's bytes escaped."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)


def _hex(byte: int) -> str:
    return f"\\x{byte:02x}"


def escape(data: bytes) -> str:
    """Return ``data`` as printable text: the escaping rule of PROTOCOL.md 6."""
    out = []
    i = 0
    while i < len(data):
        byte = data[i]
        length = _sequence_length(data, i)
        if byte in _NAMED:  # rules 1 and 2
            out.append(_NAMED[byte])
            i += 1
        elif length > 0:  # rule 3: a well-formed sequence
            sequence = data[i : i + length]
            char = sequence.decode("utf-8")
            if _is_control(char):
                out.extend(_hex(part) for part in sequence)
            else:
                out.append(char)
            i += length
        else:  # rule 4: a byte that starts no well-formed sequence
            out.append(_hex(byte))
            i += 1
    return "".join(out)


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


def _fd_of(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # in memory (tests), or closed
        return None


def _writable_by(fd: int, until: float) -> bool:
    """Wait until ``fd`` takes a write without blocking, or ``until`` (monotonic s)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(max(0, math.ceil((until - time.monotonic()) * 1000))))


QUEUE_LIMIT = 64 * 1024 * 1024  # bytes of long lines waiting for a slow stream
QUEUE_LINES = 16384  # short lines (at most PIPE_BUF bytes) waiting for a slow stream
BATCH = 256 * 1024  # bytes of short lines joined into one write


class Logger:
    """Writes the log lines of one program; safe to share between threads.

    Each line is written with one write, under a lock (the client, the
    server's start-up lines). ``start_writer`` (the server) adds one writer
    thread: a line still goes out at once when nothing is queued and nobody
    is writing, but a thread that finds the lock taken appends its line to a
    queue and goes on, so thousands of threads never queue on a lock held
    across a system call, and short lines queued together leave in one write
    (each line whole, in order). A stream slower than the lines lets them pile up
    to QUEUE_LINES short lines or QUEUE_LIMIT bytes of long ones; past that,
    writers wait for it.

    ``write_until`` bounds that writing (the server's shutdown): nothing is
    written after it, and ``unwritten`` counts the lines left behind.
    """

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
        self._fds = {self._write_out: _fd_of(self._out), self._write_err: _fd_of(self._err)}
        self._queue: collections.deque[tuple[Callable[[bytes], None], bytes]] | None = None
        self._queued = 0  # bytes of long lines in the queue (changed under _space)
        self._space = threading.Condition(threading.Lock())
        self._wake = threading.Event()  # the writer has lines to write, or must stop
        self._writing = 0  # lines the writer took and has not written
        self._direct = 0  # a line being written at once
        self._waiters = 0  # threads waiting for space in the queue
        self._stopping = False
        self._stopped = threading.Event()
        self._until: float | None = None
        self._info = _prefix("INFO", out_colour)
        self._recv = _prefix("RECV", out_colour)
        self._send = _prefix("SEND", out_colour)
        self._error = _prefix("ERROR", err_colour)
        self._plaintext = self._recv + b"Plaintext: "
        self._ack_sent = b"\n" + self._send + b"ACK sent to client\n"
        self._escape = log_fast.escape_bytes  # the one place the fast path is chosen

    def _write(self, writer: Callable[[bytes], None], data: bytes) -> None:
        queue = self._queue
        if queue is None:
            with self._lock:
                try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                    writer(data)
                except (OSError, ValueError):
                    pass  # a closed or broken log stream must not take the server down
            return
        if not queue and self._until is None and self._lock.acquire(blocking=False):
            try:  # nothing waits and nobody writes: at once, no hand-over to the writer
                self._direct = 1
                writer(data)
            except (OSError, ValueError):
                pass
            finally:
                self._direct = 0
                self._lock.release()
            return
        if len(data) > select.PIPE_BUF or len(queue) > QUEUE_LINES:
            self._wait_for_space(queue, len(data) if len(data) > select.PIPE_BUF else 0)
        queue.append((writer, data))
        if not self._wake.is_set():
            self._wake.set()

    def _wait_for_space(self, queue: collections.deque, size: int) -> None:
        with self._space:
            self._waiters += 1
            while (self._queued > QUEUE_LIMIT or len(queue) > QUEUE_LINES) and self._until is None:
                self._space.wait()
            self._waiters -= 1
            self._queued += size

    # --- the writer thread (server) -----------------------------------------------

    def start_writer(self) -> None:
        """Write every later line from a thread of its own (see the class)."""
        if self._queue is None:
            self._stopping = False
            self._stopped.clear()
            self._queue = collections.deque()
            _thread.start_new_thread(self._run_writer, (self._queue,))

    def stop_writer(self) -> None:
        """Write what is queued, then write each line at once again."""
        if self._queue is not None:
            self._stopping = True
            self._wake.set()
            self._stopped.wait()
            self._queue = None

    def _run_writer(self, queue: collections.deque) -> None:
        while True:
            self._wake.clear()
            if not queue:
                if self._stopping:
                    self._stopped.set()
                    return
                self._wake.wait()
                continue
            with self._lock:  # a line written at once never overtakes one queued
                self._write_batch(queue)

    def _write_batch(self, queue: collections.deque) -> None:
        """The next line, or the short lines in a row for one stream, in one write."""
        self._writing = 1
        writer, data = queue.popleft()
        long_line = len(data) > select.PIPE_BUF
        if not long_line:  # join the short lines that follow, for the same stream
            parts = [data]
            size = len(data)
            while queue and size < BATCH and queue[0][0] is writer:
                if len(queue[0][1]) > select.PIPE_BUF:
                    break
                parts.append(queue.popleft()[1])
                size += len(parts[-1])
            self._writing = len(parts)
            data = b"".join(parts)
        self._put(writer, data)
        self._writing = 0
        if long_line or self._waiters:
            with self._space:
                self._queued -= len(data) if long_line else 0
                if self._waiters:
                    self._space.notify_all()

    def _put(self, writer: Callable[[bytes], None], data: bytes) -> None:
        """Write ``data``; past ``write_until``, stop for good (the process is exiting)."""
        try:
            until = self._until
            fd = self._fds[writer]
            if until is None or fd is None:
                writer(data)
                return
            view = memoryview(data)
            while view:  # pieces of at most PIPE_BUF: a writable pipe takes each at once
                if not _writable_by(fd, until):
                    self._stopped.wait()  # never set: nothing more is written
                view = view[os.write(fd, view[: select.PIPE_BUF]) :]
        except (OSError, ValueError):
            pass  # a closed or broken log stream must not take the server down

    def write_until(self, until: float) -> None:
        """Write nothing after ``until`` (monotonic seconds); writers stop waiting for space."""
        self._until = until
        with self._space:
            self._space.notify_all()

    def flush(self, until: float) -> int:
        """Wait until every queued line is written, or ``until``; return the lines left."""
        queue = self._queue
        while queue is not None and (queue or self._writing or self._direct) and (
            time.monotonic() < until
        ):
            time.sleep(0.01)
        return self.unwritten()

    def unwritten(self) -> int:
        """Lines queued or being written (0 when lines are written at once)."""
        queue = self._queue
        return 0 if queue is None else len(queue) + self._writing + self._direct

    def error_if_writable(self, text: str) -> None:
        """``[ERROR] text``, only if standard error takes it at once (the last line)."""
        data = self._error + text.encode() + b"\n"
        fd = self._fds[self._write_err]
        try:
            if fd is None:
                self._write_err(data)
            elif _writable_by(fd, 0.0):
                os.write(fd, data)
        except (OSError, ValueError):
            pass

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
        self._write(self._write_out, b"".join((self._plaintext, self._escape(message), b"\n")))

    def answered(self, message: bytes) -> None:
        """``recv_plaintext(message)``, then ``[SEND] ACK sent to client``, in one write:
        the server's two lines for one message cost one system call, not two."""
        self._write(self._write_out, b"".join((self._plaintext, self._escape(message),
                                               self._ack_sent)))

    def raw_out(self, text: str) -> None:
        """Unformatted text on stdout (the usage text for --help)."""
        self._write(self._write_out, text.encode())

    def raw_err(self, text: str) -> None:
        """Unformatted text on stderr (usage text after an error, the prompt)."""
        self._write(self._write_err, text.encode())
