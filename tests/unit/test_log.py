"""Escaping and log lines (PROTOCOL.md section 6).

The fast path of escaping is checked against log.escape in test_fast_paths.py.
"""

from __future__ import annotations

import io
import threading

import pytest
from securemsg.log import Logger, colour_enabled, escape, escape_text

from tests.support.unit_support import load_vectors

CASES = load_vectors("escape.json")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_escape_matches_vector(case: dict) -> None:
    assert escape(bytes.fromhex(case["input"])) == case["output"]


def test_escaped_text_is_one_printable_line() -> None:
    text = escape(bytes(range(256)) * 4)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert text.encode("utf-8")  # no lone surrogates left


def test_escape_text_of_an_undecodable_argument() -> None:
    # Python decodes argv with surrogateescape; the original bytes are escaped.
    assert escape_text("caf\udce9\n") == "caf\\xe9\\n"


class RecordingStream(io.BytesIO):
    """Counts write calls, to check that a line leaves in one write."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.tty = tty

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)

    def isatty(self) -> bool:
        return self.tty


def make_logger(colour: bool | None = False) -> tuple[Logger, RecordingStream, RecordingStream]:
    out, err = RecordingStream(), RecordingStream()
    return Logger(out, err, colour=colour), out, err


def test_tags_go_to_the_right_stream() -> None:
    logger, out, err = make_logger()
    logger.info("Listening on 0.0.0.0:5000")
    logger.recv("ACK: Received 12 bytes")
    logger.send("ACK sent to client")
    logger.error("Missing port")
    assert out.getvalue() == (
        b"[INFO] Listening on 0.0.0.0:5000\n"
        b"[RECV] ACK: Received 12 bytes\n"
        b"[SEND] ACK sent to client\n"
    )
    assert err.getvalue() == b"[ERROR] Missing port\n"


def test_one_write_per_line() -> None:
    logger, out, _ = make_logger()
    logger.recv_plaintext(b"a\nb" * 1000)
    assert out.writes == [b"[RECV] Plaintext: " + b"a\\nb" * 1000 + b"\n"]


def test_answered_is_two_lines_in_one_write() -> None:
    logger, out, _ = make_logger()
    logger.answered(b"x\ty")
    assert out.writes == [b"[RECV] Plaintext: x\\ty\n[SEND] ACK sent to client\n"]


def test_plaintext_line_escapes_like_the_reference() -> None:
    message = b"a\\b\n\xc2\x85\xe2\x80\xa8caf\xc3\xa9\xff\x1b[31m"
    logger, out, _ = make_logger()
    logger.recv_plaintext(message)
    assert out.getvalue() == b"[RECV] Plaintext: " + escape(message).encode() + b"\n"


def test_plaintext_line_is_escaped_utf8() -> None:
    logger, out, _ = make_logger()
    logger.recv_plaintext("caf\u00e9\x1b".encode())
    assert out.getvalue() == "[RECV] Plaintext: caf\u00e9\\x1b\n".encode()


def test_colour_only_colours_the_tag() -> None:
    logger, out, err = make_logger(colour=True)
    logger.info("x")
    logger.recv("x")
    logger.send("x")
    logger.error("x")
    assert out.getvalue() == (
        b"\x1b[36m[INFO]\x1b[0m x\n\x1b[32m[RECV]\x1b[0m x\n\x1b[33m[SEND]\x1b[0m x\n"
    )
    assert err.getvalue() == b"\x1b[31m[ERROR]\x1b[0m x\n"
    logger.answered(b"m")
    assert out.getvalue().endswith(
        b"\x1b[32m[RECV]\x1b[0m Plaintext: m\n\x1b[33m[SEND]\x1b[0m ACK sent to client\n"
    )


@pytest.mark.parametrize(
    ("tty", "no_color", "expected"),
    [
        (True, None, True),
        (True, "", True),
        (True, "1", False),
        (False, None, False),
        (False, "", False),
    ],
)
def test_colour_rules(
    monkeypatch: pytest.MonkeyPatch, tty: bool, no_color: str | None, expected: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stream = RecordingStream(tty=tty)
    assert colour_enabled(stream) is expected
    logger = Logger(stream, RecordingStream(tty=tty))
    logger.info("x")
    assert stream.getvalue().startswith(b"\x1b[36m") is expected


def test_colour_decided_per_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = RecordingStream(tty=False), RecordingStream(tty=True)
    logger = Logger(out, err)
    logger.info("x")
    logger.error("x")
    assert out.getvalue() == b"[INFO] x\n"
    assert err.getvalue() == b"\x1b[31m[ERROR]\x1b[0m x\n"


def test_concurrent_lines_never_interleave() -> None:
    logger, out, _ = make_logger()

    def worker(n: int) -> None:
        for _ in range(200):
            logger.recv_plaintext(bytes([65 + n]) * 3000)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().split(b"\n")[:-1]
    assert len(lines) == 1600
    for line in lines:
        body = line.removeprefix(b"[RECV] Plaintext: ")
        assert len(body) == 3000 and len(set(body)) == 1


def test_broken_stream_does_not_raise() -> None:
    out = RecordingStream()
    logger = Logger(out, RecordingStream(), colour=False)
    out.close()
    logger.info("still fine")


def test_real_file_gets_whole_lines(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "out.log"  # type: ignore[operator]
    with open(path, "wb") as raw:  # noqa: PTH123
        logger = Logger(raw, raw, colour=False)
        logger.info("one")
        logger.recv_plaintext(b"x" * 200_000)
    assert path.read_bytes() == b"[INFO] one\n[RECV] Plaintext: " + b"x" * 200_000 + b"\n"


# --- the server's writer thread -------------------------------------------------------


def test_writer_thread_keeps_order_across_streams_and_flushes_on_stop() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    logger = Logger(out, err, colour=False)
    logger.start_writer()
    for n in range(500):
        logger.info(f"line {n}")
        if n % 100 == 0:
            logger.error(f"error {n}")
    logger.answered(b"x" * 100_000)  # a long line among the short ones
    logger.info("last")
    logger.stop_writer()
    lines = out.getvalue().decode().splitlines()
    assert lines[:500] == [f"[INFO] line {n}" for n in range(500)]
    assert lines[500:] == ["[RECV] Plaintext: " + "x" * 100_000, "[SEND] ACK sent to client",
                           "[INFO] last"]
    errors = err.getvalue().decode().splitlines()
    assert errors == [f"[ERROR] error {n}" for n in range(0, 500, 100)]
    assert logger.unwritten() == 0
    logger.info("written at once again")
    assert out.getvalue().endswith(b"[INFO] written at once again\n")


def test_a_blocked_stream_is_given_up_at_the_deadline_and_counted() -> None:
    """Shutdown with stdout a pipe nobody reads: lines left are counted, one line says so."""
    import os
    import time

    read_end, write_end = os.pipe()
    err = io.BytesIO()
    with os.fdopen(write_end, "wb") as out:
        logger = Logger(out, err, colour=False)
        logger.start_writer()
        until = time.monotonic() + 0.3
        logger.write_until(until)  # the shutdown: from now on nothing blocks past `until`
        line = "y" * 5000  # long lines: each written on its own
        for _ in range(200):  # 1 MB: more than a pipe holds
            logger.info(line)
        left = logger.flush(until)
        assert time.monotonic() < until + 0.5
        assert 0 < left < 200
        logger.error_if_writable(f"Log output blocked: {left} lines not written")
        assert err.getvalue() == f"[ERROR] Log output blocked: {left} lines not written\n".encode()
        os.set_blocking(read_end, False)
        written = os.read(read_end, 1 << 20)
        # Every line is either out whole or counted (the batch in flight counts whole).
        assert written.count(b"\n") + left >= 200
    os.close(read_end)
