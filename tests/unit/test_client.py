"""The client in process against real and fake servers (PROTOCOL.md 3, 5, 7)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from securemsg import client
from securemsg.config import parse_client_args
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.framing import encode_frame
from securemsg.log import Logger
from securemsg_lab.wire.rawsock import read_frame

from tests.support.unit_support import Capture, running_server

XOR = XorCipher(DEFAULT_KEY)

pytestmark = [pytest.mark.usefixtures("no_key_env"), pytest.mark.timeout(60)]


def run_client(*argv: str, stdin: bytes = b"") -> tuple[int, Capture]:
    capture = Capture()
    console = Logger(capture.out, capture.err, colour=False)
    status = client.run(parse_client_args(list(argv)), console, stdin=io.BytesIO(stdin))
    return status, capture


@contextmanager
def fake_server(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """Accept one connection on 127.0.0.1 and run ``behaviour`` on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            behaviour(conn)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield port
    finally:
        thread.join(10)
        listener.close()


def test_one_shot() -> None:
    with running_server() as (server, _):
        status, capture = run_client("127.0.0.1", str(server.server_address[1]), "Hello from C")
    assert status == 0
    assert capture.lines() == ["[SEND] Encrypted bytes: 12 bytes", "[RECV] ACK: Received 12 bytes"]
    assert capture.errors() == []


def test_interactive_lines_until_an_empty_one() -> None:
    with running_server() as (server, server_capture):
        port = str(server.server_address[1])
        status, capture = run_client("127.0.0.1", port, stdin=b"one\r\ntwo words\n\nnot sent\n")
        server_capture.wait_line("[RECV] Plaintext: two words")
        assert "[RECV] Plaintext: not sent" not in server_capture.lines()
    assert status == 0
    assert capture.lines() == [
        "[SEND] Encrypted bytes: 3 bytes",
        "[RECV] ACK: Received 3 bytes",
        "[SEND] Encrypted bytes: 9 bytes",
        "[RECV] ACK: Received 9 bytes",
    ]


def test_interactive_end_of_input_without_newline() -> None:
    with running_server() as (server, _):
        status, capture = run_client("127.0.0.1", str(server.server_address[1]), stdin=b"last")
    assert status == 0 and capture.lines()[-1] == "[RECV] ACK: Received 4 bytes"


def test_connection_refused() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    status, capture = run_client("127.0.0.1", str(port), "x")
    assert status == 1
    assert capture.errors() == [f"[ERROR] Cannot connect to 127.0.0.1:{port}: Connection refused"]


def test_message_too_large_is_not_sent() -> None:
    status, capture = run_client("127.0.0.1", "9", "--max-frame", "64", "x" * 65)
    assert status == 1
    assert capture.errors() == ["[ERROR] Message too large: 65 bytes (limit 64)"]


def answer_with(ack: bytes) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(ack)

    return behaviour


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (b"ACK: Received 3 bytes", "ACK: Received 3 bytes"),  # wrong count
        (b"ACK: Received 2 bytes ", "ACK: Received 2 bytes "),
        (b"ACK: Received 02 bytes", "ACK: Received 02 bytes"),
        (b"nope\n\x1b", "nope\\n\\x1b"),
        (b"", ""),
    ],
)
def test_malformed_ack(reply: bytes, shown: str) -> None:
    with fake_server(answer_with(encode_frame(XOR.apply(reply)))) as port:
        status, capture = run_client("127.0.0.1", str(port), "Hi")
    assert status == 1
    assert capture.errors() == [f"[ERROR] Malformed ACK from 127.0.0.1:{port}: {shown}"]


def test_closed_before_the_ack() -> None:
    with fake_server(lambda conn: read_frame(conn)) as port:
        status, capture = run_client("127.0.0.1", str(port), "Hi")
    assert status == 1
    assert capture.errors() == [f"[ERROR] Connection to 127.0.0.1:{port} closed before the ACK"]


def test_closed_in_the_middle_of_the_ack() -> None:
    with fake_server(answer_with(b"\x00\x00\x00\x15ACK")) as port:
        status, capture = run_client("127.0.0.1", str(port), "Hi")
    assert status == 1
    assert capture.errors() == [f"[ERROR] Connection to 127.0.0.1:{port} closed before the ACK"]


def test_ack_frame_too_large() -> None:
    with fake_server(answer_with(b"\x00\x10\x00\x01")) as port:
        status, capture = run_client("127.0.0.1", str(port), "Hi")
    assert status == 1
    assert capture.errors() == [
        f"[ERROR] ACK frame too large from 127.0.0.1:{port}: 1048577 bytes (limit 1048576)"
    ]


def test_timeout_waiting_for_the_ack() -> None:
    gate = threading.Event()
    with fake_server(lambda conn: gate.wait(10)) as port:
        status, capture = run_client("127.0.0.1", str(port), "--idle-timeout", "1", "Hi")
        gate.set()
    assert status == 1
    assert capture.errors() == [f"[ERROR] Timed out after 1 s waiting for 127.0.0.1:{port}"]


def test_ipv6_target_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no ::1")
    port = listener.getsockname()[1]
    listener.close()
    status, capture = run_client("::1", str(port), "x")
    assert status == 1
    assert capture.errors() == [f"[ERROR] Cannot connect to [::1]:{port}: Connection refused"]


# --- noise --------------------------------------------------------------------


def write_psk(tmp_path: Path) -> str:
    path = tmp_path / "lab.psk"
    path.write_bytes(bytes(range(32)))
    return str(path)


def test_noise_one_shot(tmp_path: Path) -> None:
    key = write_psk(tmp_path)
    with running_server("--cipher", "noise", "--key-file", key) as (server, _):
        port = server.server_address[1]
        status, capture = run_client(
            "127.0.0.1", str(port), "--cipher", "noise", "--key-file", key, "Hi"
        )
    assert status == 0
    assert capture.lines() == [
        "[INFO] Cipher: noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)",
        f"[INFO] Handshake complete: 127.0.0.1:{port}",
        "[SEND] Encrypted bytes: 19 bytes",
        "[RECV] ACK: Received 2 bytes",
    ]


def test_noise_client_against_an_xor_server(tmp_path: Path) -> None:
    with running_server() as (server, _):
        port = server.server_address[1]
        status, capture = run_client(
            "127.0.0.1", str(port), "--cipher", "noise", "--key-file", write_psk(tmp_path), "Hi"
        )
    assert status == 1
    assert capture.errors() == [
        f"[ERROR] Handshake failed with 127.0.0.1:{port}: expected a 48-byte handshake "
        "message, got 22 bytes (is the peer in xor mode?)"
    ]


def test_noise_wrong_key(tmp_path: Path) -> None:
    with running_server("--cipher", "noise", "--key-file", write_psk(tmp_path)) as (server, _):
        port = server.server_address[1]
        status, capture = run_client(
            "127.0.0.1", str(port), "--cipher", "noise", "--key", "not the key", "Hi"
        )
    assert status == 1
    assert capture.errors() == [
        f"[ERROR] Handshake failed with 127.0.0.1:{port}: connection closed by the server"
    ]
