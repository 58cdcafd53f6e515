"""The server in process: log lines and per-connection errors (PROTOCOL.md 6-7)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.framing import encode_frame
from securemsg.session import HandshakeComplete, NoiseSession
from securemsg_lab.wire.rawsock import read_frame, recv_exact

from tests.support.unit_support import (
    connect,
    running_server,
    wait_closed,
)

XOR = XorCipher(DEFAULT_KEY)

pytestmark = [pytest.mark.usefixtures("no_key_env"), pytest.mark.timeout(60)]


def send_message(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(encode_frame(XOR.apply(message)))
    return XOR.apply(read_frame(sock))


def peer_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def test_one_message_gives_the_documented_lines() -> None:
    with running_server() as (server, capture):
        port = server.server_address[1]
        with connect(port) as sock:
            peer = peer_of(sock)
            assert send_message(sock, b"Hello from C") == b"ACK: Received 12 bytes"
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        assert capture.lines() == [
            f"[INFO] Client connected: {peer}",
            "[RECV] Plaintext: Hello from C",
            "[SEND] ACK sent to client",
            f"[INFO] Client disconnected: {peer}",
        ]
        assert capture.errors() == []


def test_frame_written_one_byte_at_a_time() -> None:
    with running_server() as (server, capture), connect(server.server_address[1]) as sock:
        for byte in encode_frame(XOR.apply(b"slow")):
            sock.sendall(bytes([byte]))
            time.sleep(0.001)
        assert XOR.apply(read_frame(sock)) == b"ACK: Received 4 bytes"
        capture.wait_line("[RECV] Plaintext: slow")


def test_two_frames_in_one_write_and_an_empty_one() -> None:
    with running_server() as (server, capture), connect(server.server_address[1]) as sock:
        sock.sendall(encode_frame(XOR.apply(b"one")) + encode_frame(b""))
        assert XOR.apply(read_frame(sock)) == b"ACK: Received 3 bytes"
        assert XOR.apply(read_frame(sock)) == b"ACK: Received 0 bytes"
        capture.wait_line("[RECV] Plaintext: ")


def test_message_bytes_are_escaped() -> None:
    with running_server() as (server, capture), connect(server.server_address[1]) as sock:
        send_message(sock, b"a\nb\x1b[31m\xff\\")
        capture.wait_line("[RECV] Plaintext: a\\nb\\x1b[31m\\xff\\\\")


def test_oversize_prefix_closes_that_connection_only() -> None:
    with running_server("--max-frame", "64") as (server, capture):
        port = server.server_address[1]
        with connect(port) as good, connect(port) as bad:
            peer = peer_of(bad)
            bad.sendall(b"\x00\x00\x00\x41")  # 65, and no body follows
            assert wait_closed(bad)
            capture.wait_line(f"[INFO] Client disconnected: {peer}")
            assert capture.errors() == [f"[ERROR] Frame too large from {peer}: 65 bytes (limit 64)"]
            assert send_message(good, b"x" * 64) == b"ACK: Received 64 bytes"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00", "connection closed after 2 of 4 length bytes"),
        (b"\x00\x00\x00\x0aabc", "connection closed after 3 of 10 payload bytes"),
    ],
)
def test_truncated_frame_then_disconnect(data: bytes, reason: str) -> None:
    with running_server() as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(data)
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        assert capture.errors() == [f"[ERROR] Truncated frame from {peer}: {reason}"]


def test_max_clients_refuses_the_next_one_when_none_is_idle_or_slow() -> None:
    # --min-rate 1: two bytes in (at most) a second is not below it, so not evictable.
    with running_server("--max-clients", "1", "--min-rate", "1") as (server, capture):
        port = server.server_address[1]
        with connect(port) as first:
            send_message(first, b"first")
            first.sendall(b"\x00\x00")  # a frame in progress: not evictable
            capture.wait_for(lambda: all(client.busy for client in server._clients))
            with connect(port) as second:
                peer = peer_of(second)
                assert wait_closed(second)
            capture.wait_line(f"[ERROR] Client refused: {peer}: too many clients (limit 1)")
            first.sendall(encode_frame(XOR.apply(b"still served"))[2:])
            assert XOR.apply(read_frame(first)) == b"ACK: Received 12 bytes"
        assert not any(peer in line for line in capture.lines())
        # The slot is free again once the first client left.
        capture.wait_for(lambda: any("disconnected" in line for line in capture.lines()))
        with connect(port) as third:
            assert send_message(third, b"") == b"ACK: Received 0 bytes"


def test_a_staller_inside_a_frame_is_evicted_when_none_is_idle() -> None:
    """Reconnecting stallers must not keep the server full (PROTOCOL.md 9)."""
    with running_server("--max-clients", "1") as (server, capture):
        port = server.server_address[1]
        with connect(port) as staller:
            staller_peer = peer_of(staller)
            staller.sendall(b"\x00\x00")  # 2 bytes of a header: far below --min-rate
            capture.wait_for(lambda: [c.view().frame_bytes for c in server._clients] == [2])
            with connect(port) as real:
                assert send_message(real, b"served") == b"ACK: Received 6 bytes"
            assert wait_closed(staller)
        capture.wait_line(f"[INFO] Client disconnected: {staller_peer}")
        assert (
            f"[INFO] Evicted {staller_peer}: 2 bytes/s in a frame, server full (limit 1)"
            in capture.lines()
        )
        assert capture.errors() == []


def test_slot_is_free_when_the_disconnect_line_appears() -> None:
    """Who reconnects on seeing the line must not be refused (--max-clients 1)."""
    with running_server("--max-clients", "1") as (server, capture):
        seen: list[int] = []
        real_info = server.console.info

        def info(text: str) -> None:
            if text.startswith("Client disconnected: "):
                seen.append(len(server._clients))
            real_info(text)

        server.console.info = info  # type: ignore[method-assign]
        with connect(server.server_address[1]) as sock:
            send_message(sock, b"one")
        capture.wait_for(lambda: bool(seen))
        assert seen == [0]


def test_ack_leaves_before_the_log_lines() -> None:
    """A stalled log (stdout a full pipe) must not hold the ACK back."""
    with running_server() as (server, capture):
        release = threading.Event()
        real_answered = server.console.answered

        def stalled_answered(data: bytes) -> None:
            release.wait(10)
            real_answered(data)

        server.console.answered = stalled_answered  # type: ignore[method-assign]
        try:
            with connect(server.server_address[1]) as sock:
                sock.settimeout(5)
                assert send_message(sock, b"fast") == b"ACK: Received 4 bytes"
                assert "[RECV] Plaintext: fast" not in capture.lines()
        finally:
            release.set()
        capture.wait_line("[SEND] ACK sent to client")
        assert capture.lines()[-3:-1] == ["[RECV] Plaintext: fast", "[SEND] ACK sent to client"]


def test_a_thread_that_cannot_start_refuses_that_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from securemsg.server import SecureMsgServer

    real_start = SecureMsgServer._start_thread
    failures = [1]  # the first client thread fails, as with RLIMIT_NPROC reached

    def start(self: SecureMsgServer, handler: object) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("can't start new thread")
        real_start(self, handler)  # type: ignore[arg-type]

    with running_server() as (server, capture):
        monkeypatch.setattr(SecureMsgServer, "_start_thread", start)
        port = server.server_address[1]
        with connect(port) as refused:
            peer = peer_of(refused)
            assert wait_closed(refused)
        capture.wait_line(f"[ERROR] Client refused: {peer}: Resource temporarily unavailable")
        with connect(port) as served:
            assert send_message(served, b"next") == b"ACK: Received 4 bytes"
            assert len(server._clients) == 1  # the refused client holds no slot
    # stop() joined every started thread and no other: no error, no traceback
    assert capture.errors() == [f"[ERROR] Client refused: {peer}: Resource temporarily unavailable"]


def test_idle_timeout() -> None:
    with running_server("--idle-timeout", "1") as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            assert wait_closed(sock)
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        assert capture.errors() == [f"[ERROR] Idle timeout for {peer} after 1 s"]


def test_stop_cuts_a_client_still_in_its_frame_at_the_drain_deadline_quietly() -> None:
    with running_server("--drain-timeout", "1") as (server, capture):
        sock = connect(server.server_address[1])
        peer = peer_of(sock)
        send_message(sock, b"hi")
        sock.sendall(b"\x00\x00")  # in the middle of a frame when the server stops
    # running_server stopped the server: every thread has ended.
    assert capture.lines()[-1] == f"[INFO] Client disconnected: {peer}"
    assert capture.errors() == []
    assert wait_closed(sock)
    sock.close()


def test_many_concurrent_clients() -> None:
    failures: list[BaseException] = []

    def client(port: int, n: int) -> None:
        try:
            with connect(port) as sock:
                for i in range(5):
                    message = f"client {n} message {i}".encode()
                    assert send_message(sock, message) == b"ACK: Received %d bytes" % len(message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    with running_server() as (server, capture):
        port = server.server_address[1]
        threads = [threading.Thread(target=client, args=(port, n)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        capture.wait_for(lambda: sum("disconnected" in line for line in capture.lines()) == 30)
        lines = capture.lines()
        assert sum(line.startswith("[RECV] Plaintext: client ") for line in lines) == 150
        assert lines.count("[SEND] ACK sent to client") == 150


def test_listen_backlog_reaches_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    from securemsg import net, server
    from securemsg.config import parse_server_args, session_factory
    from securemsg.log import Logger

    from tests.support.unit_support import Capture

    backlogs: list[int] = []
    real_listen = net.listen

    def recording_listen(host: str, port: int, backlog: int = 0) -> socket.socket:
        backlogs.append(backlog)
        return real_listen(host, port, backlog)

    monkeypatch.setattr(server.net, "listen", recording_listen)
    config = parse_server_args(["--port", "0", "--bind", "127.0.0.1"])
    capture = Capture()
    instance = server.SecureMsgServer(
        config, Logger(capture.out, capture.err, colour=False), session_factory(config)
    )
    instance.shutdown()
    assert backlogs == [socket.SOMAXCONN]


def test_64_clients_connecting_while_the_acceptor_is_busy_are_all_served() -> None:
    """The kernel queues them all (backlog SOMAXCONN); with a backlog of 5 most would wait."""
    from securemsg.config import parse_server_args, session_factory
    from securemsg.log import Logger
    from securemsg.server import SecureMsgServer

    from tests.support.unit_support import Capture

    config = parse_server_args(["--port", "0", "--bind", "127.0.0.1"])
    capture = Capture()
    logger = Logger(capture.out, capture.err, colour=False)
    server = SecureMsgServer(config, logger, session_factory(config))
    port = server.server_address[1]
    clients: list[socket.socket] = []
    thread = threading.Thread(target=server.serve_forever)
    try:
        # Nobody accepts yet: each connect completes only if the backlog has room.
        for _ in range(64):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
        thread.start()
        for n, sock in enumerate(clients):
            sock.settimeout(10)
            assert send_message(sock, b"%d" % n) == b"ACK: Received %d bytes" % len(b"%d" % n)
        assert capture.errors() == []
    finally:
        for sock in clients:
            sock.close()
        if thread.is_alive():
            server.stop()
            thread.join(10)
        else:  # serve_forever never ran, so never shut down
            server.shutdown()


# --- noise ----------------------------------------------------------------------

PSK = bytes(range(32))


def noise_server(tmp_path):
    key_file = tmp_path / "lab.psk"
    key_file.write_bytes(PSK)
    return running_server("--cipher", "noise", "--key-file", str(key_file))


def test_noise_conversation(tmp_path) -> None:
    with noise_server(tmp_path) as (server, capture), connect(server.server_address[1]) as sock:
        peer = peer_of(sock)
        session = NoiseSession(PSK, True, 1 << 20)
        sock.sendall(session.initial_bytes())
        session.feed(recv_exact(sock, 52))
        assert isinstance(session.next_event(), HandshakeComplete)
        wire, _ = session.encode_message(b"secret " * 20000)
        sock.sendall(wire)
        while (event := session.next_event()).__class__.__name__ != "Message":
            session.feed(sock.recv(65536))
        assert event.data == b"ACK: Received 140000 bytes"
        capture.wait_line("[SEND] ACK sent to client")
        assert capture.lines()[:2] == [
            f"[INFO] Client connected: {peer}",
            f"[INFO] Handshake complete: {peer}",
        ]


def test_noise_server_refuses_an_xor_client(tmp_path) -> None:
    with noise_server(tmp_path) as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(encode_frame(XOR.apply(b"Hello from C")))
            assert wait_closed(sock)
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        assert capture.errors() == [
            f"[ERROR] Handshake failed with {peer}: expected a 48-byte handshake message, "
            "got 12 bytes (is the peer in xor mode?)"
        ]


def test_noise_wrong_key(tmp_path) -> None:
    with noise_server(tmp_path) as (server, capture):
        with connect(server.server_address[1]) as sock:
            peer = peer_of(sock)
            sock.sendall(NoiseSession(bytes(32), True, 1 << 20).initial_bytes())
            assert wait_closed(sock)
        capture.wait_line(f"[INFO] Client disconnected: {peer}")
        (line,) = capture.errors()
        assert line.startswith(f"[ERROR] Handshake failed with {peer}: ")
