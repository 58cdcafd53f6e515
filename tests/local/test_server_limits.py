"""The server's defences (PROTOCOL.md 4) as a running server applies them: frame and
handshake deadlines, eviction, drain. Which deadline applies when is a rule of
securemsg.conn, tested without waiting from the shared table (tests/unit/test_conn.py)."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import threading
import time

import pytest
from securemsg.config import parse_server_args, session_factory
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.framing import FrameDecoder, encode_frame
from securemsg.log import Logger
from securemsg.server import SecureMsgServer
from securemsg_lab.wire.rawsock import read_frame

from tests.support.unit_support import Capture, connect, running_server, wait_closed

XOR = XorCipher(DEFAULT_KEY)

pytestmark = [pytest.mark.usefixtures("no_key_env"), pytest.mark.timeout(60)]


def peer_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def send_message(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(encode_frame(XOR.apply(message)))
    return XOR.apply(read_frame(sock))


def ended_lines(capture: Capture, peer: str, error: str) -> None:
    """The connection ended with ``error`` on stderr and its disconnect line."""
    capture.wait_line(f"[INFO] Client disconnected: {peer}")
    assert capture.errors() == [error]


# --- deadlines ---------------------------------------------------------------------


def test_a_header_that_never_completes_meets_the_frame_timeout() -> None:
    with running_server("--frame-timeout", "1") as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(b"\x00\x00")
            assert wait_closed(sock)
        ended_lines(capture, peer, f"[ERROR] Frame timeout for {peer} after 1 s")


def test_trickled_bytes_do_not_restart_the_frame_deadline() -> None:
    """The slowloris of the issue: a byte now and then kept a slot for ever."""
    with running_server("--frame-timeout", "1", "--idle-timeout", "1") as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(b"\x00\x00\x00\x64")  # 100 payload bytes announced
            for _ in range(10):  # 3 s of trickling, well past both timeouts
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
                time.sleep(0.3)
            assert wait_closed(sock)
        # 1 s + 100 B / 65536 B/s, rounded up
        ended_lines(capture, peer, f"[ERROR] Frame timeout for {peer} after 2 s")


def test_a_silence_after_a_late_byte_still_ends_at_the_frame_deadline() -> None:
    """SO_RCVTIMEO counts from each recv: a wait begun late in the frame must be
    shortened to the deadline, not last a whole frame timeout again."""
    with running_server("--frame-timeout", "2") as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            started = time.monotonic()
            sock.sendall(b"\x00\x00\x00\x10x")  # 16 bytes announced: 2 s + 1 ms
            time.sleep(1.5)  # the traffic pattern: one more byte late in the frame
            sock.sendall(b"y")
            assert wait_closed(sock)
            elapsed = time.monotonic() - started
        ended_lines(capture, peer, f"[ERROR] Frame timeout for {peer} after 3 s")
        assert elapsed < 3.0  # 2 s; a fresh 2 s wait from the late byte would end at 3.5 s


def test_frame_timeout_reports_the_deadline_that_ran_out() -> None:
    options = ("--frame-timeout", "1", "--min-rate", "100", "--max-frame", "1000")
    with running_server(*options) as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(b"\x00\x00\x00\x96")  # 150 bytes: 2.5 s, rounded up
            assert wait_closed(sock)
        ended_lines(capture, peer, f"[ERROR] Frame timeout for {peer} after 3 s")


def test_frame_timeout_zero_keeps_the_per_read_idle_timeout() -> None:
    with running_server("--frame-timeout", "0", "--idle-timeout", "1") as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(b"\x00")
            assert wait_closed(sock)
        ended_lines(capture, peer, f"[ERROR] Idle timeout for {peer} after 1 s")


def test_half_a_handshake_meets_the_handshake_timeout(tmp_path) -> None:
    key_file = tmp_path / "lab.psk"
    key_file.write_bytes(bytes(range(32)))
    options = ("--cipher", "noise", "--key-file", str(key_file), "--frame-timeout", "1")
    with running_server(*options) as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(b"\x00\x00\x00\x30" + bytes(20))  # 20 of the 48 bytes
            assert wait_closed(sock)
        ended_lines(capture, peer, f"[ERROR] Handshake timeout for {peer} after 1 s")


# --- capacity ----------------------------------------------------------------------


def test_the_longest_idle_client_is_evicted_when_full() -> None:
    with running_server("--max-clients", "2") as (server, capture):
        port = server.server_address[1]
        with connect(port) as oldest, connect(port) as newer:
            old_peer, new_peer = peer_of(oldest), peer_of(newer)
            capture.wait_line(f"[INFO] Client connected: {new_peer}")
            time.sleep(0.05)
            assert send_message(oldest, b"recent") == b"ACK: Received 6 bytes"
            capture.wait_line("[SEND] ACK sent to client")
            with connect(port) as third:  # newer has been quiet longest now
                assert send_message(third, b"in") == b"ACK: Received 2 bytes"
                assert wait_closed(newer)
                capture.wait_line(f"[INFO] Client connected: {peer_of(third)}")
                lines = capture.lines()
                evicted = lines.index(f"[INFO] Evicted {new_peer}: idle 0 s, server full (limit 2)")
                assert lines[evicted + 1] == f"[INFO] Client disconnected: {new_peer}"
                assert lines[evicted + 2] == f"[INFO] Client connected: {peer_of(third)}"
                assert send_message(oldest, b"still here") == b"ACK: Received 10 bytes"
        assert old_peer != new_peer
        assert capture.errors() == []


def test_a_client_inside_a_frame_at_the_minimum_rate_is_not_evicted() -> None:
    # --min-rate 1: five bytes in (at most) a second keep the frame above it, so the
    # idle client goes, though quiet for less than a second (PROTOCOL.md 9, rule 3)
    with running_server("--max-clients", "2", "--min-rate", "1") as (server, capture):
        port = server.server_address[1]
        with connect(port) as mid_frame, connect(port) as idle:
            idle_peer = peer_of(idle)
            frame = encode_frame(XOR.apply(b"half"))
            capture.wait_line(f"[INFO] Client connected: {idle_peer}")
            time.sleep(0.05)
            mid_frame.sendall(frame[:5])  # mid_frame is the older, but busy
            capture.wait_for(lambda: max(c.view().frame_bytes for c in server._clients) == 5)
            with connect(port) as third:
                assert send_message(third, b"x") == b"ACK: Received 1 bytes"
                assert wait_closed(idle)
            mid_frame.sendall(frame[5:])
            assert XOR.apply(read_frame(mid_frame)) == b"ACK: Received 4 bytes"
        assert any(line.startswith(f"[INFO] Evicted {idle_peer}: ") for line in capture.lines())


@pytest.mark.parametrize(
    ("soft", "expected"),
    [(1024, 960), (20000, 19936), (10, 1), (10**7, 100000), (resource.RLIM_INFINITY, 100000)],
)
def test_default_max_clients_follows_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, expected: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, soft))
    assert parse_server_args(["5000"]).max_clients == expected


# --- shutdown ----------------------------------------------------------------------


class Served:
    """A server in a thread that the test stops itself (running_server stops at exit)."""

    def __init__(self, *options: str) -> None:
        config = parse_server_args(["--port", "0", "--bind", "127.0.0.1", *options])
        self.capture = Capture()
        console = Logger(self.capture.out, self.capture.err, colour=False)
        self.server = SecureMsgServer(config, console, session_factory(config))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def stop(self) -> None:
        self.server.stop()
        self.capture.wait_line("[INFO] Shutting down")

    def wait_ended(self) -> None:
        self.thread.join(20)
        assert not self.thread.is_alive()


def test_shutdown_finishes_the_frame_in_progress_then_closes_cleanly() -> None:
    served = Served("--drain-timeout", "10")
    sock = connect(served.port)
    try:
        frame = encode_frame(XOR.apply(b"in flight"))
        sock.sendall(frame[:7])
        served.capture.wait_for(
            lambda: [c.view().frame_bytes for c in served.server._clients] == [7]
        )
        served.stop()
        sock.sendall(frame[7:])
        assert XOR.apply(read_frame(sock)) == b"ACK: Received 9 bytes"
        assert sock.recv(100) == b""  # a FIN, not a reset
        try:  # the server reads and discards until our EOF: a late frame gets no reset
            sock.sendall(encode_frame(XOR.apply(b"too late")))
        finally:
            sock.shutdown(socket.SHUT_WR)
        served.wait_ended()
    finally:
        sock.close()
    lines = served.capture.lines()
    assert "[RECV] Plaintext: in flight" in lines and "[RECV] Plaintext: too late" not in lines
    assert lines[-1].startswith("[INFO] Client disconnected: ")
    assert served.capture.errors() == []


def test_shutdown_closes_an_idle_client_at_once_and_ends_on_its_eof() -> None:
    served = Served("--drain-timeout", "30")
    with connect(served.port) as sock:
        peer = peer_of(sock)
        assert send_message(sock, b"hello") == b"ACK: Received 5 bytes"
        served.capture.wait_line("[SEND] ACK sent to client")
        served.stop()
        assert sock.recv(100) == b""
    served.wait_ended()  # long before the 30 s drain: our close was its EOF
    assert served.capture.lines()[-2:] == [
        "[INFO] Shutting down",
        f"[INFO] Client disconnected: {peer}",
    ]


def test_drain_timeout_zero_closes_at_once() -> None:
    served = Served("--drain-timeout", "0")
    with connect(served.port) as sock:
        sock.sendall(b"\x00\x00")
        served.capture.wait_for(lambda: any(c.busy for c in served.server._clients))
        served.stop()
        served.wait_ended()
        assert wait_closed(sock)
    assert served.capture.errors() == []


def test_connections_still_in_the_backlog_are_accepted_and_closed_cleanly() -> None:
    """Closing the listener with them queued would reset them (PROTOCOL.md 9); a frame
    they sent before the signal is answered."""
    config = parse_server_args(["--port", "0", "--bind", "127.0.0.1"])
    capture = Capture()
    server = SecureMsgServer(config, Logger(capture.out, capture.err, colour=False),
                             session_factory(config))
    queued = [connect(server.server_address[1]) for _ in range(5)]  # never accepted yet
    try:
        queued[0].sendall(encode_frame(XOR.apply(b"sent before the signal")))
        server.shutdown()
        assert XOR.apply(read_frame(queued[0])) == b"ACK: Received 22 bytes"
        for sock in queued:
            assert sock.recv(100) == b""  # FIN, not a reset
    finally:
        for sock in queued:
            sock.close()
    lines = capture.lines()
    assert sum(line.startswith("[INFO] Client connected: ") for line in lines) == 5
    assert sum(line.startswith("[INFO] Client disconnected: ") for line in lines) == 5
    assert capture.errors() == []


# --- the memory budget (--max-buffered) ------------------------------------------------

MIB = 1 << 20
BUDGET_FULL = (
    "[INFO] Memory budget full (limit 1048576 bytes): pausing reads of large frames"
)
BUDGET_BACK = "[INFO] Memory budget available again: resuming reads"


def most_held(server: SecureMsgServer) -> int:
    return max((client.view().frame_bytes for client in list(server._clients)), default=0)


def test_a_frame_waits_for_the_budget_then_is_served_when_another_ends() -> None:
    options = ("--max-buffered", str(MIB), "--max-frame", str(2 * MIB))
    with running_server(*options) as (server, capture):
        port = server.server_address[1]
        with connect(port) as first, connect(port) as second, connect(port) as small:
            one = encode_frame(XOR.apply(b"a" * MIB))
            first.sendall(one[:-1])  # all but the last byte: ~1 MiB held
            capture.wait_for(lambda: most_held(server) == len(one) - 1)
            second.sendall(encode_frame(XOR.apply(b"b" * MIB)))  # cannot fit: paused
            capture.wait_line(BUDGET_FULL)
            assert send_message(small, b"still served") == b"ACK: Received 12 bytes"
            first.sendall(one[-1:])  # the first frame ends: its reservation returns
            assert XOR.apply(read_frame(first)) == b"ACK: Received 1048576 bytes"
            assert XOR.apply(read_frame(second)) == b"ACK: Received 1048576 bytes"
            capture.wait_line(BUDGET_BACK)
            capture.wait_for(lambda: server.budget.used == 0)  # returned after the ACKs
        assert capture.errors() == []


def test_a_frame_paused_past_its_deadline_is_cut() -> None:
    options = ("--max-buffered", str(MIB), "--max-frame", str(4 * MIB),
               "--frame-timeout", "1", "--min-rate", "1073741824")
    with running_server(*options) as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            frame = encode_frame(bytes(2 * MIB))  # more than the budget can ever hold
            with contextlib.suppress(OSError):  # the server stops reading, then cuts us
                sock.sendall(frame)
            assert wait_closed(sock)
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        [line] = capture.errors()
        found = re.fullmatch(
            rf"\[ERROR\] Cut {re.escape(peer)}: frame deadline passed while paused by "
            r"the memory budget \((\d+) bytes buffered, limit 1048576\)",
            line,
        )
        assert found, line
        # xor reserves the whole rest of a frame: 2 MiB never fit, it paused within
        # its allowance
        assert 0 < int(found.group(1)) <= 65536 + 4
        assert capture.lines().count(BUDGET_FULL) == capture.lines().count(BUDGET_BACK) == 1
        assert server.budget.used == 0


# --- buffers -----------------------------------------------------------------------


def test_the_decoder_keeps_no_buffer_after_a_large_frame() -> None:
    decoder = FrameDecoder(1 << 20)
    frame = encode_frame(bytes(300000))
    for offset in range(0, len(frame), 65536):
        decoder.feed(frame[offset : offset + 65536])
    assert decoder.next_event().payload == bytes(300000)
    assert decoder.buffered == 0 and decoder._data == b""
