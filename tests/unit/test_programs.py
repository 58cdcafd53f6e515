"""The entry points as processes: exit codes, usage text, signals (PROTOCOL.md 5)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from unit_support import PYTHON_DIR, connect

SERVER = str(PYTHON_DIR / "server.py")
CLIENT = str(PYTHON_DIR / "client.py")

pytestmark = pytest.mark.timeout(60)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SECUREMSG_KEY", None)
    env["NO_COLOR"] = "1"
    return env


def run(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        capture_output=True,
        timeout=30,
        env=environment(),
        cwd="/",  # the entry points work from anywhere
        check=False,
    )


class ServerProcess:
    """``server.py --port 0`` in the background; learns its port from the log."""

    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--bind", "127.0.0.1", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        assert self.process.stdout is not None
        head = 2 if "noise" in options else 1  # secure mode adds the Cipher line
        self.first_lines = [self.process.stdout.readline().decode() for _ in range(head)]
        self.port = int(self.first_lines[0].rsplit(":", 1)[1])

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, out.decode(), err.decode()


def test_usage_error_exit_2_with_usage_text() -> None:
    for program in (SERVER, CLIENT):
        result = run(program, "--frob")
        assert result.returncode == 2
        lines = result.stderr.decode().splitlines()
        assert lines[0] == "[ERROR] Unknown option: --frob"
        assert lines[1].startswith("usage: ")
        assert result.stdout == b""


def test_missing_port() -> None:
    result = run(SERVER)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[0] == "[ERROR] Missing port"


def test_help_exit_0_on_stdout() -> None:
    for program in (SERVER, CLIENT):
        result = run(program, "--help")
        assert result.returncode == 0
        assert result.stdout.decode().startswith("usage: ")
        assert "--max-frame" in result.stdout.decode()
        assert result.stderr == b""


def test_unreadable_key_file_exit_1() -> None:
    result = run(SERVER, "0", "--key-file", "/nonexistent/key")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "[ERROR] Cannot read key file /nonexistent/key: No such file or directory\n"
    )


def test_default_key_refused_in_noise_mode_exit_2() -> None:
    result = run(CLIENT, "127.0.0.1", "1", "--cipher", "noise", "hi")
    assert result.returncode == 2
    assert "default key" in result.stderr.decode().splitlines()[0]


def test_cannot_listen_exit_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run(SERVER, "--bind", "127.0.0.1", str(port))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"[ERROR] Cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


@pytest.mark.parametrize(
    ("bind", "shown"),
    [(b"a\nb", "a\\nb"), (b"\x1b[31mX", "\\x1b[31mX"), (b"\xff", "\\xff")],
    ids=["newline", "escape", "invalid-utf8"],
)
def test_unusable_bind_address_is_one_escaped_line(bind: bytes, shown: str) -> None:
    result = subprocess.run(
        [sys.executable, SERVER, "--bind", bind, "0"],  # type: ignore[list-item]
        capture_output=True, timeout=30, env=environment(), check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"[ERROR] Cannot listen on {shown}:0: "), lines


def test_conversation_then_sigterm() -> None:
    server = ServerProcess()
    try:
        assert server.first_lines == [f"[INFO] Listening on 127.0.0.1:{server.port}\n"]
        one_shot = run(CLIENT, "--host", "127.0.0.1", "--port", str(server.port), "--message", "Hi")
        assert (one_shot.returncode, one_shot.stderr) == (0, b"")
        assert one_shot.stdout == b"[SEND] Encrypted bytes: 2 bytes\n[RECV] ACK: Received 2 bytes\n"
        interactive = run(CLIENT, "127.0.0.1", str(server.port), stdin=b"a\nb\n")
        assert interactive.returncode == 0
        assert interactive.stdout.count(b"[RECV] ACK: Received 1 bytes\n") == 2
    finally:
        status, out, err = server.stop()
    assert status == 0
    assert out.splitlines()[-1] == "[INFO] Shutting down"
    assert out.count("[INFO] Client connected: ") == out.count("[INFO] Client disconnected: ") == 2
    assert err == ""


def test_sigint_with_a_connected_client() -> None:
    server = ServerProcess()
    sock = connect(server.port)
    time.sleep(0.2)  # let the server log the connection
    status, out, err = server.stop(signal.SIGINT)
    sock.close()
    assert status == 0
    lines = out.splitlines()
    assert lines[-2] == "[INFO] Shutting down"
    assert lines[-1].startswith("[INFO] Client disconnected: 127.0.0.1:")
    assert err == ""


def test_noise_between_processes() -> None:
    server = ServerProcess("--cipher", "noise", "--key", "correct horse battery staple")
    try:
        assert server.first_lines[1] == (
            "[INFO] Cipher: noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)\n"
        )
        result = run(
            CLIENT,
            "127.0.0.1",
            str(server.port),
            "Hi",
            "--cipher",
            "noise",
            "--key",
            "correct horse battery staple",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().splitlines()[-2:] == [
            "[SEND] Encrypted bytes: 19 bytes",
            "[RECV] ACK: Received 2 bytes",
        ]
    finally:
        status, out, _ = server.stop()
    assert status == 0
    assert "[INFO] Handshake complete: 127.0.0.1:" in out
    assert "correct horse" not in out


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM)],
    ids=["term-term", "int-term"],
)
def test_second_signal_during_shutdown_still_exits_0(signals: tuple[int, int]) -> None:
    """`timeout` sends SIGTERM twice; the second used to deadlock the first's handler."""
    deadline = time.monotonic() + 40  # bounded: 20 rounds, or fewer on a slow machine
    rounds = 0
    while rounds < 20 and time.monotonic() < deadline:
        server = ServerProcess()
        sock = connect(server.port) if rounds % 2 else None  # with and without a client
        for signum in signals:
            os.kill(server.process.pid, signum)
        try:
            out, err = server.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.communicate()
            raise AssertionError(f"round {rounds}: no exit within 5 s after {signals}") from None
        finally:
            if sock is not None:
                sock.close()
        assert server.process.returncode == 0, (rounds, out, err)
        assert "[INFO] Shutting down\n" in out.decode(), (rounds, out)
        assert err == b"", (rounds, err)
        rounds += 1
    assert rounds >= 5
