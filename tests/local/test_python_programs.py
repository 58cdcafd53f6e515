"""The Python entry points as processes: exit codes, usage text, signals (PROTOCOL.md 5).

Process-level (they spawn python/server.py and python/client.py), hence in tests/local;
started and stopped with the lab's launcher (securemsg_lab.core.process).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from securemsg_lab.core.process import Process, ProcResult
from securemsg_lab.core.process import run as run_program
from securemsg_lab.core.timeouts import scaled

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"
SERVER = str(PYTHON_DIR / "server.py")
CLIENT = str(PYTHON_DIR / "client.py")

pytestmark = pytest.mark.timeout(120)


class Completed:
    """A finished run, in the subprocess.CompletedProcess spelling these tests use."""

    def __init__(self, result: ProcResult) -> None:
        assert not result.timed_out, result
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def run(*argv: str | bytes, stdin: bytes = b"") -> Completed:
    # cwd "/": the entry points work from anywhere
    return Completed(run_program([sys.executable, *argv], stdin=stdin,  # type: ignore[list-item]
                                 timeout=scaled(30), cwd="/"))


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ServerProcess:
    """``server.py --port 0`` in the background; learns its port from the log."""

    def __init__(self, *options: str) -> None:
        self.process = Process([sys.executable, SERVER, "--port", "0", "--bind", "127.0.0.1",
                                *options], role="server")
        self.port = self.process.wait_listening()
        head = 2 if "noise" in options else 1  # secure mode adds the Cipher line
        self.process.out.wait_for(".", count=head, timeout=scaled(10))
        self.first_lines = [line.text + "\n" for line in self.process.out.since(0)[:head]]

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int | None, str, str]:
        result = self.process.stop(signum, timeout=scaled(20))
        return result.exit_code, result.stdout.decode(), result.stderr.decode()


def test_usage_error_exit_2_with_usage_text() -> None:
    for program in (SERVER, CLIENT):
        result = run(program, "--frob")
        assert result.returncode == 2
        lines = result.stderr.decode().splitlines()
        assert lines[0] == "[ERROR] Unknown option: --frob"
        assert lines[1].lower().startswith("usage: ")  # exact text: tests/contract
        assert result.stdout == b""


def test_missing_port() -> None:
    result = run(SERVER)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[0] == "[ERROR] Missing port"


def test_help_exit_0_on_stdout() -> None:
    for program in (SERVER, CLIENT):
        result = run(program, "--help")
        assert result.returncode == 0
        assert result.stdout.decode().lower().startswith("usage: ")
        assert "--max-frame" in result.stdout.decode()
        assert result.stderr == b""


@pytest.mark.parametrize("name", ["server", "client"])
def test_usage_names_the_command_typed(name: str, tmp_path: Path) -> None:
    """As C's basename of argv[0]: `server.py` run as such, an installed
    `securemsg-server` (or any name it is started under) as that."""
    assert run(str(PYTHON_DIR / f"{name}.py"), "--help").stdout.startswith(
        f"Usage: {name}.py [OPTIONS] ".encode()
    )
    renamed = tmp_path / f"securemsg-{name}"
    renamed.write_text((PYTHON_DIR / f"{name}.py").read_text(encoding="utf-8"), encoding="utf-8")
    result = Completed(run_program([sys.executable, str(renamed), "--frob"], timeout=scaled(30),
                                   cwd="/", env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)}))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[1].startswith(f"Usage: securemsg-{name} [OPTIONS] ")


def test_stock_interpreter_runs_the_seed_command() -> None:
    """`python3 python/server.py` with the system's own interpreter, no venv."""
    stock = Path("/usr/bin/python3")
    if not stock.exists():
        pytest.skip("no /usr/bin/python3 on this system")
    result = Completed(run_program([str(stock), SERVER, "--help"], timeout=scaled(30), cwd="/"))
    assert result.returncode == 0
    assert result.stdout.startswith(b"Usage: server.py [OPTIONS] PORT\n")


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
    result = run(SERVER, "--bind", bind, "0")
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
    assert server.process.out.wait_for(r"^\[INFO\] Client connected: ", timeout=scaled(10))
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
    deadline = time.monotonic() + scaled(40)  # bounded: 20 rounds, fewer on a slow machine
    rounds = 0
    while rounds < 20 and time.monotonic() < deadline:
        server = ServerProcess()
        sock = connect(server.port) if rounds % 2 else None  # with and without a client
        for signum in signals:
            os.kill(server.process.pid, signum)
        if sock is not None:  # the client leaves, as on the server's FIN (section 9)
            sock.close()
        result = server.process.wait(timeout=scaled(5))
        out, err = result.stdout, result.stderr
        assert not result.timed_out, f"round {rounds}: no exit within 5 s after {signals}"
        assert result.exit_code == 0, (rounds, out, err)
        assert "[INFO] Shutting down\n" in out.decode(), (rounds, out)
        assert err == b"", (rounds, err)
        rounds += 1
    assert rounds >= 5


def test_xor_mode_does_not_import_cryptography() -> None:
    """The seed's mode runs on a bare interpreter: no cryptography, no PyNaCl loaded."""
    code = (
        "import sys; import securemsg.server, securemsg.client;"
        "from securemsg.session import SessionFactory;"
        "SessionFactory('xor', b'k', 64).new_session(True);"
        "print(any(m.split('.')[0] in ('cryptography', 'nacl') for m in sys.modules))"
    )
    result = run_program([sys.executable, "-c", code], timeout=scaled(30), cwd=PYTHON_DIR)
    assert (result.exit_code, result.stdout.strip()) == (0, b"False"), result.stderr
