"""Secure mode against an independent Noise implementation (PROTOCOL.md section 8).

The `noiseprotocol` package from PyPI plays the peer, with real random ephemerals:
- as a client against both our servers (c/server, python/server.py), started on
  127.0.0.1 with --port 0, --cipher noise and a 32-byte key file;
- as a server (a thread in this test, on 127.0.0.1 port 0) for both our clients.

Nothing here imports securemsg: framing, chunking and the ACK text are written again
from PROTOCOL.md, so that a shared misreading cannot hide. Checks: exit codes, the exact
log lines of sections 6 and 8, chunking (messages above 65518 bytes), and that tampering,
replay, a wrong key and the NN pattern are refused with one [ERROR] line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from noise.connection import NoiseConnection
from noise.exceptions import NoiseHandshakeError, NoiseInvalidMessage
from securemsg_lab.core import registry
from securemsg_lab.core.process import Output, Process, ProcResult
from securemsg_lab.core.process import run as run_program
from securemsg_lab.core.timeouts import scaled
from securemsg_lab.wire.protocol import frame
from securemsg_lab.wire.rawsock import read_frame as recv_frame

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
LANGS = tuple(registry.default().reference_names())
TIMEOUT = scaled(30.0)  # seconds for any single wait

PROTOCOL = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE = b"securemsg-noise-v1"
HANDSHAKE_LEN = 48
CHUNK_DATA = 65518  # 65535 - 16 (tag) - 1 (marker)
MORE, LAST = 0x00, 0x01
CIPHER_LINE = f"[INFO] Cipher: noise ({PROTOCOL})"
LISTENING = re.compile(r"^\[INFO\] Listening on (?P<addr>.+):(?P<port>\d+)$")

PeerError = (OSError, InvalidTag, NoiseHandshakeError, NoiseInvalidMessage)


# ---------------------------------------------------------------- wire (section 1, 8)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(frame(payload))


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer closes (EOF or reset) within TIMEOUT, sending nothing more."""
    sock.settimeout(TIMEOUT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def split_message(data: bytes, size: int = CHUNK_DATA) -> list[bytes]:
    """Chunk plaintexts: marker byte + up to `size` bytes; an empty message is one chunk."""
    pieces = [data[start : start + size] for start in range(0, len(data), size)] or [b""]
    return [bytes([LAST if i == len(pieces) - 1 else MORE]) + p for i, p in enumerate(pieces)]


def ack(length: int) -> bytes:
    return f"ACK: Received {length} bytes".encode()


def wire_bytes(length: int) -> int:
    """Transport payload bytes of one message: each chunk adds a marker and a tag."""
    return length + len(split_message(bytes(length))) * 17


class Peer:
    """The independent Noise endpoint on one connected socket."""

    def __init__(self, sock: socket.socket, psk: bytes, initiator: bool, name: str = PROTOCOL):
        self.sock = sock
        self.noise = NoiseConnection.from_name(name.encode())
        if "psk" in name:
            self.noise.set_psks(psk=psk)
        self.noise.set_prologue(PROLOGUE)
        if initiator:
            self.noise.set_as_initiator()
        else:
            self.noise.set_as_responder()
        self.noise.start_handshake()
        self.initiator = initiator

    def handshake(self, tamper_reply: bool = False) -> None:
        if self.initiator:
            send_frame(self.sock, bytes(self.noise.write_message(b"")))
            reply = recv_frame(self.sock)
            assert len(reply) == HANDSHAKE_LEN, f"message 2 is {len(reply)} bytes"
            assert self.noise.read_message(reply) == b""
        else:
            first = recv_frame(self.sock)
            assert len(first) == HANDSHAKE_LEN, f"message 1 is {len(first)} bytes"
            assert self.noise.read_message(first) == b""
            reply = bytes(self.noise.write_message(b""))
            send_frame(self.sock, flip(reply, 40) if tamper_reply else reply)
        assert self.noise.handshake_finished

    def transport_frames(self, data: bytes, size: int = CHUNK_DATA) -> list[bytes]:
        return [self.noise.encrypt(chunk) for chunk in split_message(data, size)]

    def send_message(self, data: bytes, size: int = CHUNK_DATA) -> int:
        frames = self.transport_frames(data, size)
        for payload in frames:
            send_frame(self.sock, payload)
        return len(frames)

    def recv_message(self) -> tuple[bytes, int]:
        """(message, number of chunks); checks every frame length and marker."""
        data = bytearray()
        chunks = 0
        while True:
            payload = recv_frame(self.sock)
            assert 17 <= len(payload) <= 65535, f"transport frame of {len(payload)} bytes"
            plaintext = self.noise.decrypt(payload)
            chunks += 1
            assert plaintext[0] in (MORE, LAST), f"marker {plaintext[0]:#04x}"
            data += plaintext[1:]
            if plaintext[0] == LAST:
                return bytes(data), chunks


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x04
    return bytes(out)


# ---------------------------------------------------------------- our programs


def program(lang: str, role: str) -> list[str]:
    return registry.default()[lang].program(role)


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


class Lines:
    """One stream of a launched program, as lines these tests wait for."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def wait_for(self, pattern: str | re.Pattern[str], what: str) -> str:
        found = self.output.wait_for(pattern, timeout=TIMEOUT)
        if not found:
            pytest.fail(f"no line {what!r} in {self.snapshot()!r}")
        return found[0].string

    def snapshot(self) -> list[str]:
        return [line.text for line in self.output.since(0)]


@dataclass
class ServerProcess:
    lang: str
    process: Process
    port: int = 0

    def __post_init__(self) -> None:
        self.out, self.err = Lines(self.process.out), Lines(self.process.err)

    def peer_lines(self, peer: str) -> list[str]:
        """This connection's stdout lines, from `Client connected` to `Client disconnected`."""
        end = self.out.wait_for(exactly(f"[INFO] Client disconnected: {peer}"), peer)
        lines = self.out.snapshot()
        start = lines.index(f"[INFO] Client connected: {peer}")
        return lines[start : lines.index(end) + 1]

    def stop(self) -> int | None:
        return self.process.stop(timeout=TIMEOUT).exit_code


@pytest.fixture(scope="session")
def built() -> None:
    build = run_program(["make", "-C", str(ROOT / "c")], timeout=scaled(600))
    assert build.exit_code == 0, build.stderr.decode(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def psk() -> bytes:
    return os.urandom(32)


@pytest.fixture(scope="session")
def key_file(psk: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("noise-interop") / "lab.psk"
    path.write_bytes(psk)
    path.chmod(0o600)
    return path


def noise_options(key_file: Path) -> list[str]:
    return ["--cipher", "noise", "--key-file", str(key_file)]


@contextlib.contextmanager
def running_server(lang: str, key_options: list[str]) -> Iterator[ServerProcess]:
    """One of our servers on 127.0.0.1, port 0; stopped with SIGTERM, which must exit 0."""
    impl = registry.default()[lang]  # each language's seed spelling of the port
    argv = impl.server_args(0, ["--bind", LOOPBACK, "--cipher", "noise", *key_options])
    running = ServerProcess(lang, Process([*impl.program("server"), *argv], role="server"))
    try:
        listening = running.out.wait_for(LISTENING, "[INFO] Listening on")
        running.port = int(LISTENING.match(listening)["port"])  # type: ignore[index]
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.err.snapshot()
    lines = running.out.snapshot()
    assert lines[:2] == [listening, CIPHER_LINE]
    assert lines[-1] == "[INFO] Shutting down"


@pytest.fixture(params=LANGS)
def server(request: pytest.FixtureRequest, built: None, key_file: Path) -> Iterator[ServerProcess]:
    with running_server(request.param, ["--key-file", str(key_file)]) as running:
        yield running


def connect(port: int) -> tuple[socket.socket, str]:
    sock = socket.create_connection((LOOPBACK, port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, local_port = sock.getsockname()[:2]
    return sock, f"{host}:{local_port}"


def recv_lines(message: bytes) -> list[str]:
    """Server lines for one message whose bytes need no escaping beyond these cases."""
    return [f"[RECV] Plaintext: {escape_simple(message)}", "[SEND] ACK sent to client"]


def escape_simple(message: bytes) -> str:
    text = message.decode("utf-8")
    for raw, printed in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(raw, printed)
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", text)


def text_of(length: int) -> bytes:
    return (b"0123456789abcdefghijklmnopqrstuvwxyz" * (length // 36 + 1))[:length]


# ---------------------------------------------------------------- independent client


def test_server_single_message(server: ServerProcess, psk: bytes) -> None:
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        assert client.send_message(b"Hello from noiseprotocol") == 1
        assert client.recv_message() == (ack(24), 1)
    assert server.peer_lines(peer) == [
        f"[INFO] Client connected: {peer}",
        f"[INFO] Handshake complete: {peer}",
        *recv_lines(b"Hello from noiseprotocol"),
        f"[INFO] Client disconnected: {peer}",
    ]
    assert server.err.snapshot() == []


def test_server_several_messages_on_one_connection(server: ServerProcess, psk: bytes) -> None:
    messages = [b"first", b"", "café\tcrème\r\n".encode(), b"\x1b[31mred", b"back\\slash"]
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        for message in messages:
            client.send_message(message)
            assert client.recv_message()[0] == ack(len(message))
    expected = [line for message in messages for line in recv_lines(message)]
    assert server.peer_lines(peer)[2:-1] == expected
    assert expected[2] == "[RECV] Plaintext: "
    assert expected[4] == "[RECV] Plaintext: café\\tcrème\\r\\n"
    assert expected[6] == "[RECV] Plaintext: \\x1b[31mred"


@pytest.mark.parametrize("length", [65518, 65519, 65520, 200_000])
def test_server_reassembles_chunks(server: ServerProcess, psk: bytes, length: int) -> None:
    message = text_of(length)
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        chunks = client.send_message(message)
        assert chunks == (1 if length <= CHUNK_DATA else -(-length // CHUNK_DATA))
        assert client.recv_message()[0] == ack(length)
    assert server.peer_lines(peer)[2:-1] == recv_lines(message)


def test_server_accepts_small_chunks(server: ServerProcess, psk: bytes) -> None:
    """Chunk sizes are the sender's choice: 1000 chunks of 7 bytes are one message."""
    message = text_of(7000)
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        assert client.send_message(message, size=7) == 1000
        assert client.recv_message()[0] == ack(7000)
    assert server.peer_lines(peer)[2:-1] == recv_lines(message)


def assert_refused(
    server: ServerProcess, peer: str, error_prefix: str, handshaken: bool, received: int = 0
) -> None:
    """One [ERROR] line with a reason, the connection's lines, and no message let through."""
    line = server.err.wait_for("^" + re.escape(error_prefix), error_prefix)
    assert len(line) > len(error_prefix), "the error line names no reason"
    assert [e for e in server.err.snapshot() if peer in e] == [line]
    lines = server.peer_lines(peer)
    assert lines[0] == f"[INFO] Client connected: {peer}"
    assert (f"[INFO] Handshake complete: {peer}" in lines) == handshaken
    assert sum(line.startswith("[RECV]") for line in lines) == received


def exchange(port: int, psk: bytes, message: bytes) -> str:
    """One handshake and one message from the independent client; its PEER."""
    sock, peer = connect(port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        client.send_message(message)
        assert client.recv_message()[0] == ack(len(message))
    return peer


def still_serves(server: ServerProcess, psk: bytes) -> None:
    peer = exchange(server.port, psk, b"still here")
    assert server.peer_lines(peer)[2:-1] == recv_lines(b"still here")


def test_server_refuses_wrong_psk(server: ServerProcess, psk: bytes) -> None:
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, bytes(b ^ 1 for b in psk), initiator=True)
        send_frame(sock, bytes(client.noise.write_message(b"")))
        assert closed_by_peer(sock)
    assert_refused(server, peer, f"[ERROR] Handshake failed with {peer}: ", handshaken=False)
    still_serves(server, psk)


def test_server_refuses_plain_nn(server: ServerProcess, psk: bytes) -> None:
    """Noise_NN without the PSK: a 32-byte message 1, which is no NNpsk0 message."""
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True, name="Noise_NN_25519_ChaChaPoly_SHA256")
        send_frame(sock, bytes(client.noise.write_message(b"")))
        assert closed_by_peer(sock)
    assert_refused(server, peer, f"[ERROR] Handshake failed with {peer}: ", handshaken=False)
    still_serves(server, psk)


@pytest.mark.parametrize("index", [0, 31, 32, 47])
def test_server_refuses_tampered_message_1(server: ServerProcess, psk: bytes, index: int) -> None:
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        send_frame(sock, flip(bytes(client.noise.write_message(b"")), index))
        assert closed_by_peer(sock)
    assert_refused(server, peer, f"[ERROR] Handshake failed with {peer}: ", handshaken=False)


@pytest.mark.parametrize("attack", ["flip", "replay", "reorder", "bad marker"])
def test_server_refuses_tampered_transport(server: ServerProcess, psk: bytes, attack: str) -> None:
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        if attack == "flip":
            send_frame(sock, flip(client.transport_frames(b"pay 10 euros")[0], 5))
        elif attack == "replay":
            (frame,) = client.transport_frames(b"pay 10 euros")
            send_frame(sock, frame)
            assert client.recv_message()[0] == ack(12)
            send_frame(sock, frame)
        elif attack == "reorder":
            first, second = client.transport_frames(b"ab", size=1)
            send_frame(sock, second)
            send_frame(sock, first)
        else:
            send_frame(sock, client.noise.encrypt(b"\x02marker two"))
        assert closed_by_peer(sock)
    prefix = f"[ERROR] Decryption failed from {peer}: "
    assert_refused(server, peer, prefix, handshaken=True, received=int(attack == "replay"))
    still_serves(server, psk)


def test_server_refuses_a_message_above_max_frame(server: ServerProcess, psk: bytes) -> None:
    """The default --max-frame (1 MiB) bounds the reassembled message, not one chunk."""
    limit = 1048576
    sock, peer = connect(server.port)
    with sock:
        client = Peer(sock, psk, initiator=True)
        client.handshake()
        with contextlib.suppress(OSError):  # the server may hang up before the last chunk
            client.send_message(text_of(limit + 1))
        assert closed_by_peer(sock)
    line = f"[ERROR] Message too large from {peer}: more than {limit} bytes"
    server.err.wait_for(exactly(line), line)
    assert_refused(server, peer, f"[ERROR] Message too large from {peer}: ", handshaken=True)
    still_serves(server, psk)


@pytest.mark.parametrize("lang", LANGS)
def test_server_takes_a_32_byte_key_file_byte_for_byte(
    built: None, lang: str, tmp_path: Path
) -> None:
    """Exactly 32 bytes are the PSK as they are, even when they end in CR LF (section 8)."""
    psk = os.urandom(30) + b"\r\n"
    path = tmp_path / "crlf.psk"
    path.write_bytes(psk)
    with running_server(lang, ["--key-file", str(path)]) as server:
        still_serves(server, psk)


def argon2id_case(name: str) -> tuple[str, bytes]:
    """(passphrase, PSK) from the known answers that two Argon2id implementations agree on."""
    data = json.loads((ROOT / "tests" / "vectors" / "argon2id.json").read_text(encoding="utf-8"))
    (case,) = [case for case in data["cases"] if case["name"] == name]
    return bytes.fromhex(case["passphrase"]).decode("utf-8"), bytes.fromhex(case["psk"])


@pytest.mark.parametrize("lang", LANGS)
def test_server_derives_the_psk_from_a_passphrase(built: None, lang: str) -> None:
    passphrase, psk = argon2id_case("ascii")
    with running_server(lang, ["--key", passphrase]) as server:
        peer = exchange(server.port, psk, b"derived")
        assert server.peer_lines(peer)[1:-1] == [
            f"[INFO] Handshake complete: {peer}",
            *recv_lines(b"derived"),
        ]
    assert not any(passphrase in line for line in server.out.snapshot() + server.err.snapshot())


# ---------------------------------------------------------------- independent server


@dataclass
class IndependentServer:
    """One noiseprotocol responder on 127.0.0.1, serving `connections` clients in turn."""

    psk: bytes
    behaviour: str = "normal"  # normal | split ack | flip msg2 | flip ack
    connections: int = 1
    received: list[tuple[bytes, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for _ in range(self.connections):
                conn, _ = self.listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    self._handle(conn)
        except (*PeerError, AssertionError) as exc:  # reported by the test, not the thread
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.listener.close()

    def _handle(self, conn: socket.socket) -> None:
        peer = Peer(conn, self.psk, initiator=False)
        peer.handshake(tamper_reply=self.behaviour == "flip msg2")
        while True:
            try:
                message, chunks = peer.recv_message()
            except ConnectionError:
                return  # the client is done
            self.received.append((message, chunks))
            reply = ack(len(message))
            if self.behaviour == "split ack":
                peer.send_message(reply, size=4)
            elif self.behaviour == "flip ack":
                send_frame(conn, flip(peer.transport_frames(reply)[0], 3))
            else:
                peer.send_message(reply)

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


def run_client(
    lang: str, port: int, key_file: Path, message: bytes | None, stdin: bytes | None = None
) -> ProcResult:
    options = noise_options(key_file)
    text = None if message is None else message.decode()
    args = registry.default()[lang].client_args(LOOPBACK, port, text, options)
    return run_program([*program(lang, "client"), *args], stdin=stdin or b"",
                       timeout=TIMEOUT * 2)


def out_lines(run: ProcResult) -> list[str]:
    return run.stdout.decode("utf-8", "replace").splitlines()


def err_lines(run: ProcResult) -> list[str]:
    return run.stderr.decode("utf-8", "replace").splitlines()


def client_lines(port: int, messages: list[bytes]) -> list[str]:
    expected = [CIPHER_LINE, f"[INFO] Handshake complete: {LOOPBACK}:{port}"]
    for message in messages:
        expected += [
            f"[SEND] Encrypted bytes: {wire_bytes(len(message))} bytes",
            f"[RECV] ACK: Received {len(message)} bytes",
        ]
    return expected


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("behaviour", ["normal", "split ack"])
def test_client_single_message(
    built: None, psk: bytes, key_file: Path, lang: str, behaviour: str
) -> None:
    peer = IndependentServer(psk, behaviour)
    run = run_client(lang, peer.port, key_file, b"Hello from our client")
    peer.join()
    assert (run.exit_code, err_lines(run)) == (0, [])
    assert out_lines(run) == client_lines(peer.port, [b"Hello from our client"])
    assert peer.received == [(b"Hello from our client", 1)]
    assert peer.errors == []


@pytest.mark.parametrize("lang", LANGS)
def test_client_chunks_a_long_message(built: None, psk: bytes, key_file: Path, lang: str) -> None:
    message = text_of(CHUNK_DATA + 4482)  # 70000 bytes: two chunks
    peer = IndependentServer(psk)
    run = run_client(lang, peer.port, key_file, message)
    peer.join()
    assert (run.exit_code, err_lines(run)) == (0, [])
    assert out_lines(run) == client_lines(peer.port, [message])
    assert f"[SEND] Encrypted bytes: {70000 + 2 * 17} bytes" in out_lines(run)
    assert peer.received == [(message, 2)]


@pytest.mark.parametrize("lang", LANGS)
def test_client_interactive(built: None, psk: bytes, key_file: Path, lang: str) -> None:
    lines = [b"one", "dos \u00e9".encode(), text_of(CHUNK_DATA)]
    peer = IndependentServer(psk)
    run = run_client(lang, peer.port, key_file, None, stdin=b"\n".join(lines) + b"\r\n\n")
    peer.join()
    assert (run.exit_code, err_lines(run)) == (0, [])
    assert out_lines(run) == client_lines(peer.port, lines)
    assert peer.received == [(line, 1) for line in lines]


def assert_client_failed(run: ProcResult, *prefixes: str) -> None:
    errors = err_lines(run)
    assert run.exit_code == 1, (run.exit_code, errors)
    assert len(errors) == 1, errors
    assert errors[0].startswith(prefixes), errors
    assert not any(line.startswith("[RECV]") for line in out_lines(run))


@pytest.mark.parametrize("lang", LANGS)
def test_client_derives_the_psk_from_a_passphrase(built: None, lang: str) -> None:
    passphrase, psk = argon2id_case("utf-8")
    peer = IndependentServer(psk)
    run = run_program([*program(lang, "client"), "--cipher", "noise", "--key", passphrase,
                       "--host", LOOPBACK, "--port", str(peer.port), "--message", "derived"],
                      timeout=TIMEOUT * 2)
    peer.join()
    assert (run.exit_code, err_lines(run)) == (0, [])
    assert out_lines(run) == client_lines(peer.port, [b"derived"])
    assert peer.received == [(b"derived", 1)]


@pytest.mark.parametrize("lang", LANGS)
def test_client_detects_tampered_message_2(
    built: None, psk: bytes, key_file: Path, lang: str
) -> None:
    peer = IndependentServer(psk, "flip msg2")
    run = run_client(lang, peer.port, key_file, b"secret")
    peer.join()
    assert_client_failed(run, f"[ERROR] Handshake failed with {LOOPBACK}:{peer.port}: ")
    assert f"[INFO] Handshake complete: {LOOPBACK}:{peer.port}" not in out_lines(run)
    assert peer.received == []


@pytest.mark.parametrize("lang", LANGS)
def test_client_detects_tampered_ack(built: None, psk: bytes, key_file: Path, lang: str) -> None:
    peer = IndependentServer(psk, "flip ack")
    run = run_client(lang, peer.port, key_file, b"secret")
    peer.join()
    assert_client_failed(run, f"[ERROR] Decryption failed from {LOOPBACK}:{peer.port}: ")
    assert peer.received == [(b"secret", 1)]


@pytest.mark.parametrize("lang", LANGS)
def test_client_with_wrong_psk(built: None, psk: bytes, key_file: Path, lang: str) -> None:
    peer = IndependentServer(bytes(b ^ 0x80 for b in psk))
    run = run_client(lang, peer.port, key_file, b"secret")
    peer.join()
    # The independent server cannot open message 1 and hangs up; what the client sees
    # is a connection closed during the handshake.
    target = f"{LOOPBACK}:{peer.port}"
    assert_client_failed(
        run,
        f"[ERROR] Handshake failed with {target}: ",
        f"[ERROR] Connection to {target} closed before the ACK",
    )
    assert len(peer.errors) == 1
