"""The case catalogue: one object per case, shared by the runner, pytest and both backends.

Each case has a name, a timeout, the ciphers it applies to, `run(...)` (drive the
programs through a backend, return what happened) and `check(observation)` (compare
with PROTOCOL.md, return passed/failed with reasons).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.backend import Backend, BackendError, Cell, Server
from ..core.process import LaunchError, ProcResult
from ..core.registry import Implementation
from ..wire import protocol
from ..wire.rawsock import FakeServer, NoiseCodec, RawPeer, XorCodec, drain, make_codec, read_frame
from .checks import (
    CHECKS,
    LIFECYCLE,
    WIRE,
    Checker,
    Conn,
    Verdict,
    expected_connection_lines,
    send_line,
)

SETTLE_SECONDS = 5.0


def cipher_options(cipher: str, key_file: str) -> list[str]:
    """Noise refuses the public default key (PROTOCOL.md 8): a 32-byte key file."""
    if cipher == "xor":
        return []
    return ["--cipher", cipher, "--key-file", key_file]


@dataclass
class Ctx:
    """One cell's view of the world: which programs, which cipher, which backend."""

    backend: Backend
    cell: Cell
    client: Implementation
    server: Implementation
    cipher: str
    #: connections made to the server so far (raw peers and client runs)
    connections: int = 0

    def options(self) -> list[str]:
        return cipher_options(self.cipher, self.backend.key_file())

    def key(self) -> bytes:
        if self.cipher == "xor":
            return protocol.DEFAULT_KEY
        return self.backend.key_bytes()

    def start_server(self, extra: list[str] | None = None, *,
                     refuse_after_stop: bool = False) -> Server:
        return self.backend.start_server(self.cell, self.server, [*self.options(), *(extra or [])],
                                         refuse_after_stop=refuse_after_stop)

    def run_client(self, target: tuple[str, int], message: str | None, *,
                   extra: list[str] | None = None, stdin: bytes | None = None,
                   role: str = "client", timeout: float = 20.0) -> ProcResult:
        args = self.client.client_args(target[0], target[1], message,
                                       [*self.options(), *(extra or [])])
        self.connections += 1
        return self.backend.run_client(self.cell, self.client, args, stdin=stdin, role=role,
                                       timeout=timeout)

    def raw_peer(self, server: Server) -> RawPeer:
        self.connections += 1
        return RawPeer(server.raw_host, server.raw_port, timeout=self.cell.remaining(10.0))


@dataclass
class Observation:
    """What a run saw: the processes' results plus case-specific facts for `check`."""

    cipher: str
    server: ProcResult | None = None
    clients: list[ProcResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def client_target(server: Server) -> str:
    return protocol.target(server.client_host, server.client_port)


def wait_disconnects(server: Server, count: int, timeout: float = SETTLE_SECONDS) -> None:
    """Wait for `count` 'Client disconnected' lines, so the next connection's block follows."""
    wait_for_lines(server, b"[INFO] Client disconnected: ", count, timeout)


def wait_for_lines(server: Server, marker: bytes, count: int,
                   timeout: float = SETTLE_SECONDS) -> None:
    """Wait until the server's stdout holds `count` lines containing `marker`."""
    server.wait_lines(marker, count, timeout)


def settle(server: Server, connections: int, timeout: float = SETTLE_SECONDS) -> None:
    """Before stopping a server: wait until at least `connections` connections, and every
    connection it logged, are logged as disconnected. The clients are gone by then, but
    the server's lines may still be on their way (and the harness reads them through a
    pipe or Docker's log stream, later still)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = server.output_so_far()
        gone = out.count(b"[INFO] Client disconnected: ")
        if gone >= max(connections, out.count(b"[INFO] Client connected: ")):
            return
        time.sleep(0.02)


def raw_exchange(peer: RawPeer, ctx: Ctx, messages: list[bytes], *, slow: bool = False,
                 one_write: bool = False, codec: XorCodec | NoiseCodec | None = None,
                 ) -> list[bytes]:
    """Handshake (noise), send messages framed, return the decrypted ACKs. A `codec`
    given stays usable for more messages on this connection."""
    codec = codec or make_codec(ctx.cipher, ctx.key())
    send = peer.send_slowly if slow else peer.send
    codec.handshake(send, peer.recv_frame)
    wire = [b"".join(protocol.frame(p) for p in codec.encode(m)) for m in messages]
    if one_write:
        peer.send(b"".join(wire))
        return [peer.recv_message(codec) for _ in messages]
    acks = []
    for data in wire:
        send(data)
        acks.append(peer.recv_message(codec))
    return acks


def check_acks(checker: Checker, acks: list[bytes], messages: list[bytes]) -> None:
    want = [protocol.ack_text(len(m)).encode() for m in messages]
    checker.expect(acks == want, f"raw peer: ACKs {acks!r}, expected {want!r}", WIRE)


class Case(ABC):
    name: str
    timeout: float = 30.0
    ciphers: tuple[str, ...] = protocol.CIPHERS
    backends: tuple[str, ...] = ("docker", "local")
    description: str = ""
    #: registry features (besides the cipher) the case needs of each program
    client_needs: frozenset[str] = frozenset()
    server_needs: frozenset[str] = frozenset()
    #: False: the cell's server implementation plays no part (the harness plays it)
    uses_server: bool = True
    #: False: the cell's client implementation plays no part (raw peers only)
    uses_client: bool = True

    def missing(self, client: Implementation, server: Implementation, cipher: str) -> list[str]:
        """What the cell's implementations lack for this case (empty: it can run)."""
        wanted = [(client, "client", self.client_needs | {cipher})]
        if self.uses_server:
            wanted.append((server, "server", self.server_needs | {cipher}))
        return [f"{impl.name} {role} lacks {feature!r}" for impl, role, needs in wanted
                for feature in sorted(needs) if not impl.has(feature)]

    def run(self, backend: Backend, client: Implementation, server: Implementation,
            cipher: str, cell: Cell) -> Observation:
        return self.drive(Ctx(backend, cell, client, server, cipher))

    @abstractmethod
    def drive(self, ctx: Ctx) -> Observation:
        """Run the programs for this case."""

    @abstractmethod
    def check(self, obs: Observation) -> Verdict:
        """Compare what happened with the contract."""


class ServerCase(Case):
    """A case around one server: start it, `exercise` it, stop it (also after errors)."""

    server_extra: tuple[str, ...] = ()
    refuse_after_stop: bool = False
    #: connections of the case that leave no connected/disconnected lines (refused ones)
    unlogged_connections: int = 0

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        server = ctx.start_server(list(self.server_extra),
                                  refuse_after_stop=self.refuse_after_stop)
        try:
            self.exercise(ctx, server, obs)
            settle(server, ctx.connections - self.unlogged_connections)
        finally:
            obs.server = server.stop()
        return obs

    @abstractmethod
    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        """Talk to the running server; put results into `obs`."""


# --- client programs against a server --------------------------------------------------

class Messages(ServerCase):
    """One client run that sends `messages` (argv or stdin); both logs checked exactly."""

    def messages(self, ctx: Ctx) -> list[bytes]:
        raise NotImplementedError

    def client_input(self, ctx: Ctx) -> tuple[str | None, bytes | None, list[str]]:
        """(argv message, stdin bytes, extra options)."""
        (message,) = self.messages(ctx)
        return message.decode(), None, []

    client_timeout = 20.0

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        message, stdin, extra = self.client_input(ctx)
        target = (server.client_host, server.client_port)
        obs.clients.append(ctx.run_client(target, message, stdin=stdin, extra=extra,
                                          timeout=self.client_timeout))
        obs.facts.update(messages=self.messages(ctx), target=client_target(server))

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        messages = obs.facts["messages"]
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], messages)
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [Conn(messages)])
        return checker.result()


class SingleMessage(Messages):
    name = "single_message"
    timeout = 20.0
    description = "one message from the command line (the seed's example)"

    def messages(self, ctx: Ctx) -> list[bytes]:
        return [f"Hello from {ctx.client.name}".encode()]


class EmptyMessage(Messages):
    name = "empty_message"
    timeout = 20.0
    description = "--message '' sends an empty frame; the server ACKs 0 bytes (§4)"

    def messages(self, ctx: Ctx) -> list[bytes]:
        return [b""]

    def client_input(self, ctx: Ctx) -> tuple[str | None, bytes | None, list[str]]:
        return None, None, ["--message", ""]


class InteractiveCase(Messages):
    name = "interactive"
    timeout = 20.0
    description = "lines on stdin (LF and CRLF), an empty line ends the session"
    client_needs = frozenset({"interactive"})

    def messages(self, ctx: Ctx) -> list[bytes]:
        return [b"first line", b"second line, CRLF", "third: café".encode(), b"x"]

    def client_input(self, ctx: Ctx) -> tuple[str | None, bytes | None, list[str]]:
        lines = self.messages(ctx)
        stdin = lines[0] + b"\n" + lines[1] + b"\r\n" + lines[2] + b"\n" + lines[3] + b"\n"
        return None, stdin + b"\nnot sent: after the empty line\n", []


class NonAscii(Messages):
    name = "non_ascii"
    timeout = 20.0
    description = "UTF-8 text from the command line prints as itself"

    def messages(self, ctx: Ctx) -> list[bytes]:
        return ["héllo wörld — 日本語 🔐 ñ".encode()]


class ControlChars(Messages):
    name = "control_chars"
    timeout = 20.0
    description = "newline, ESC, tab, CR, backslash, C1 and U+2028 escaped per §6"

    def messages(self, ctx: Ctx) -> list[bytes]:
        return ["line1\nline2 \x1b[31mred\x1b[0m \\x1b\ttab\rcr \u0085 \u2028 \x7f end".encode()]


class SizeLimit(Messages):
    name = "size_limit"
    timeout = 60.0
    client_timeout = 45.0  # 1 MiB through `docker exec` stdin on a loaded machine
    description = "a message of exactly --max-frame bytes (1 MiB, through stdin)"
    client_needs = frozenset({"interactive"})  # the message comes through stdin

    def messages(self, ctx: Ctx) -> list[bytes]:
        pattern = b"0123456789abcdefghijklmnopqrstuvwxyz"
        size = protocol.DEFAULT_MAX_FRAME
        return [(pattern * (size // len(pattern) + 1))[:size]]

    def client_input(self, ctx: Ctx) -> tuple[str | None, bytes | None, list[str]]:
        return None, self.messages(ctx)[0] + b"\n", []


class InvalidUtf8(ServerCase):
    name = "invalid_utf8"
    timeout = 25.0
    description = "invalid UTF-8 through a client's stdin and a raw socket, printed as \\xHH"
    client_needs = frozenset({"interactive"})

    CLIENT_LINE = b"\xffA \xe2\x82A \xc2\x9b \xed\xa0\x80 \xf4\x90\x80\x80 caf\xc3\xa9 \x00 end"
    RAW_MESSAGE = b"\xc0\xaf overlong \xe0\x80\xaf \xf8\x88\x80\x80\x80 \x80 \xfe\xff"

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.client_host, server.client_port)
        obs.clients.append(ctx.run_client(target, None, stdin=self.CLIENT_LINE + b"\n"))
        wait_disconnects(server, 1)
        with ctx.raw_peer(server) as peer:
            obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
            obs.facts["acks"] = raw_exchange(peer, ctx, [self.RAW_MESSAGE])
        obs.facts["target"] = client_target(server)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], [self.CLIENT_LINE])
        check_acks(checker, obs.facts["acks"], [self.RAW_MESSAGE])
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [
            Conn([self.CLIENT_LINE]), Conn([self.RAW_MESSAGE], peer=obs.facts["raw_peer"]),
        ])
        return checker.result()


class Concurrent(ServerCase):
    name = "concurrent"
    timeout = 60.0
    description = "many clients at once (Docker 20, local 50); every message and ACK accounted for"

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        count = ctx.backend.concurrent_clients
        target = (server.client_host, server.client_port)
        texts = [f"client {i:02d} of {count} from {ctx.client.name}" for i in range(count)]

        def one(index: int) -> ProcResult:
            return ctx.run_client(target, texts[index], role=f"client-{index:02d}", timeout=40)

        with ThreadPoolExecutor(max_workers=count) as pool:
            obs.clients = list(pool.map(one, range(count)))
        obs.facts.update(messages=[t.encode() for t in texts], target=client_target(server))

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        messages = obs.facts["messages"]
        for proc, message in zip(obs.clients, messages, strict=True):
            checker.client(proc, obs.cipher, obs.facts["target"], [message])
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [Conn([m]) for m in messages], ordered=False)
        return checker.result()


class OverLimit(ServerCase):
    name = "over_limit"
    timeout = 20.0
    description = "a client refuses a message one byte above its --max-frame (exit 1)"
    LIMIT = 64
    unlogged_connections = 1  # connecting before refusing is allowed, not required

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.client_host, server.client_port)
        message = "m" * (self.LIMIT + 1)
        obs.clients.append(ctx.run_client(target, message, extra=["--max-frame", str(self.LIMIT)]))
        obs.facts["target"] = client_target(server)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        proc = obs.clients[0]
        checker.exit_code(proc, 1)
        error = f"[ERROR] Message too large: {self.LIMIT + 1} bytes (limit {self.LIMIT})"
        checker.lines_equal("client", "stderr", proc.err_lines, [error])
        checker.expect(not any(line.startswith(("[SEND]", "[RECV]")) for line in proc.out_lines),
                       f"client sent although over the limit: {proc.out_lines}", WIRE)
        assert obs.server is not None
        # Whether the client connects before refusing is not specified: 0 or 1 connection.
        connected = sum(1 for line in obs.server.out_lines if "Client connected" in line)
        conns = [Conn(handshake=True)] * connected
        checker.expect(connected <= 1, f"server: {connected} connections, expected at most 1")
        checker.server(obs.server, obs.cipher, conns[:1])
        return checker.result()


# --- raw sockets against a server ------------------------------------------------------

class OversizeFrame(ServerCase):
    name = "oversize_frame"
    timeout = 25.0
    description = "a length prefix above the limit: one [ERROR], that connection closed, " \
                  "the server keeps serving"

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        with ctx.raw_peer(server) as peer:
            obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
            if ctx.cipher == "noise":
                raw_exchange(peer, ctx, [])
                length = 65536  # above any Noise transport message (§8)
            else:
                length = protocol.DEFAULT_MAX_FRAME + 1
            obs.facts["length"] = length
            peer.send(struct.pack(">I", length) + b"\x00" * 16)
            obs.facts["closed"] = peer.closed_by_peer(within=ctx.cell.remaining(5.0))
        wait_disconnects(server, 1)
        target = (server.client_host, server.client_port)
        obs.clients.append(ctx.run_client(target, "still serving"))
        obs.facts["target"] = client_target(server)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        checker.expect(obs.facts["closed"], "server did not close the oversize connection in 5 s",
                       WIRE)
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], [b"still serving"])
        peer = obs.facts["raw_peer"]
        peer_re = re.escape(peer) if peer else protocol.PEER
        if obs.cipher == "xor":
            error: Any = re.compile(
                rf"\[ERROR\] Frame too large from {peer_re}: {obs.facts['length']} bytes "
                rf"\(limit {protocol.DEFAULT_MAX_FRAME}\)")
        else:
            error = re.compile(rf"\[ERROR\] .*{peer_re}.*")
        assert obs.server is not None
        checker.server(obs.server, obs.cipher,
                       [Conn(peer=peer, error=error), Conn([b"still serving"])])
        return checker.result()


class RawExchangeCase(ServerCase):
    """Frames from a raw socket, written in a way the client programs never write them;
    every one must still get its ACK, in order, and its RECV line."""

    uses_client = False

    MESSAGES: tuple[bytes, ...] = ()
    SLOW = False  # one byte per TCP segment
    ONE_WRITE = False  # every frame in a single write

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        with ctx.raw_peer(server) as peer:
            obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
            obs.facts["acks"] = raw_exchange(peer, ctx, list(self.MESSAGES),
                                             slow=self.SLOW, one_write=self.ONE_WRITE)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        check_acks(checker, obs.facts["acks"], list(self.MESSAGES))
        assert obs.server is not None
        checker.server(obs.server, obs.cipher,
                       [Conn(list(self.MESSAGES), peer=obs.facts["raw_peer"])])
        return checker.result()


class ByteAtATime(RawExchangeCase):
    name = "byte_at_a_time"
    timeout = 25.0
    description = "a frame written one byte per TCP segment"
    MESSAGES = (b"written one byte at a time", "ünïcödé ✓".encode())
    SLOW = True


class TwoFramesOneWrite(RawExchangeCase):
    name = "two_frames_one_write"
    timeout = 20.0
    description = "two frames in one write: two RECV lines and two ACKs in order"
    MESSAGES = (b"first of two", b"second of two", b"")
    ONE_WRITE = True


class TruncatedFrame(ServerCase):
    name = "truncated_frame"
    timeout = 25.0
    description = "a connection closed inside the length prefix, another inside the payload"

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        peers = []
        for index, data in enumerate((b"\x00\x00", struct.pack(">I", 40) + b"abc")):
            with ctx.raw_peer(server) as peer:
                peers.append(peer.local_address if server.raw_peer_exact else None)
                if ctx.cipher == "noise":
                    raw_exchange(peer, ctx, [])
                peer.send(data)
            wait_disconnects(server, index + 1)
        obs.facts["raw_peers"] = peers
        target = (server.client_host, server.client_port)
        obs.clients.append(ctx.run_client(target, "after the truncated ones"))
        obs.facts["target"] = client_target(server)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        message = b"after the truncated ones"
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], [message])
        conns = []
        for peer, detail in zip(obs.facts["raw_peers"],
                                ("2 of 4 length bytes", "3 of 40 payload bytes"), strict=True):
            peer_re = re.escape(peer) if peer else protocol.PEER
            error = re.compile(rf"\[ERROR\] Truncated frame from {peer_re}: "
                               rf"connection closed after {detail}")
            conns.append(Conn(peer=peer, error=error))
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [*conns, Conn([message])])
        return checker.result()


# --- failures of the client ------------------------------------------------------------

class StoppedServer(ServerCase):
    name = "stopped_server"
    timeout = 30.0
    description = "a client against a server that was shut down: Cannot connect, exit 1"
    refuse_after_stop = True

    def drive(self, ctx: Ctx) -> Observation:
        obs = super().drive(ctx)
        assert obs.server is not None
        obs.clients.append(ctx.run_client(obs.facts["stopped"], "anyone there?", role="client-2"))
        return obs

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.client_host, server.client_port)
        obs.clients.append(ctx.run_client(target, "before the stop"))
        wait_disconnects(server, 1)
        obs.facts.update(target=client_target(server), stopped=server.stopped_target())

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], [b"before the stop"])
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [Conn([b"before the stop"])])
        stopped = protocol.target(*obs.facts["stopped"])
        error = re.compile(rf"\[ERROR\] Cannot connect to {re.escape(stopped)}: .+")
        checker.client(obs.clients[1], obs.cipher, stopped, [], exit_code=1, error=error,
                       handshake=False)
        return checker.result()


class ConnectionRefused(Case):
    name = "connection_refused"
    timeout = 15.0
    description = "nothing listens: '[ERROR] Cannot connect to HOST:PORT: Connection refused'"
    uses_server = False

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        target = ctx.backend.refused_target(ctx.cell, ctx.client)
        obs.clients.append(ctx.run_client(target, "nobody home"))
        obs.facts["target"] = protocol.target(*target)
        return obs

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        target = obs.facts["target"]
        checker.client(obs.clients[0], obs.cipher, target, [], exit_code=1, handshake=False,
                       error=f"[ERROR] Cannot connect to {target}: Connection refused")
        return checker.result()


class WrongKey(ServerCase):
    name = "wrong_key"
    timeout = 25.0
    description = "client and server keys differ: xor gives a malformed ACK (exit 1), " \
                  "noise a failed handshake on both ends"
    CLIENT_KEY = "not-the-server-key"
    MESSAGE = b"Hello with the wrong key"

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.client_host, server.client_port)
        # Replace the cipher options: same cipher, a different key (a passphrase for noise).
        args = ctx.client.client_args(target[0], target[1], self.MESSAGE.decode(),
                                      self.client_options(ctx.cipher))
        ctx.connections += 1
        obs.clients.append(ctx.backend.run_client(ctx.cell, ctx.client, args, timeout=20))
        wait_disconnects(server, 1)
        obs.facts["target"] = client_target(server)

    def client_options(self, cipher: str) -> list[str]:
        options = ["--key", self.CLIENT_KEY]
        return options if cipher == "xor" else ["--cipher", "noise", *options]

    def check(self, obs: Observation) -> Verdict:
        return self._check_xor(obs) if obs.cipher == "xor" else self._check_noise(obs)

    def _check_xor(self, obs: Observation) -> Verdict:
        checker = Checker()
        client_key = self.CLIENT_KEY.encode()
        seen = protocol.xor(protocol.xor(self.MESSAGE, client_key), protocol.DEFAULT_KEY)
        ack = protocol.ack_text(len(self.MESSAGE)).encode()
        garbled = protocol.xor(protocol.xor(ack, protocol.DEFAULT_KEY), client_key)
        target = obs.facts["target"]
        proc = obs.clients[0]
        checker.exit_code(proc, 1)
        checker.lines_equal("client", "stderr", proc.err_lines,
                            [f"[ERROR] Malformed ACK from {target}: {protocol.escape(garbled)}"])
        checker.lines_equal("client", "stdout", proc.out_lines[:1],
                            [send_line(self.MESSAGE, "xor")])
        assert obs.server is not None
        checker.server(obs.server, "xor", [Conn([seen])])
        return checker.result()

    def _check_noise(self, obs: Observation) -> Verdict:
        checker = Checker()
        target = re.escape(obs.facts["target"])
        proc = obs.clients[0]
        checker.exit_code(proc, 1)
        checker.lines_equal("client", "stderr", proc.err_lines, [re.compile(
            rf"\[ERROR\] (Handshake failed with {target}: .+"
            rf"|Connection to {target} closed before the ACK)")])
        checker.lines_equal("client", "stdout", proc.out_lines,
                            [protocol.cipher_line("noise")])
        assert obs.server is not None
        error = re.compile(rf"\[ERROR\] Handshake failed with {protocol.PEER}: .+")
        checker.server(obs.server, "noise", [Conn(handshake=False, error=error)])
        return checker.result()


@dataclass
class BadCall:
    role: str  # "client" or "server"
    args: list[str]
    problem: str | None  # the exact [ERROR] line, or None when §7 leaves the text open


class BadArguments(Case):
    name = "bad_arguments"
    timeout = 30.0
    description = "usage errors: exit 2, one [ERROR] line naming the problem, the usage text"

    def calls(self, ctx: Ctx) -> list[BadCall]:
        if ctx.cipher == "noise":  # §8: the public default key is refused
            return [BadCall("server", ctx.server.server_args(5000, ["--cipher", "noise"]), None),
                    BadCall("client", ctx.client.client_args("127.0.0.1", 5000, "hi",
                                                             ["--cipher", "noise"]), None)]
        client = ctx.client
        server = ctx.server
        return [
            BadCall("client", client.client_args("127.0.0.1", 5000, "hi", ["--frob"]),
                    "[ERROR] Unknown option: --frob"),
            BadCall("client", self._bad_port_client(client), "[ERROR] Invalid port: abc"),
            BadCall("client", client.client_args("127.0.0.1", 5000, "hi", ["--max-frame", "12x"]),
                    "[ERROR] Invalid value for --max-frame: 12x"),
            BadCall("client", client.client_args("127.0.0.1", 5000, "hi", ["--key", ""]),
                    "[ERROR] Empty key"),
            BadCall("server", server.server_args(5000, ["--frob"]),
                    "[ERROR] Unknown option: --frob"),
            BadCall("server", self._bad_port_server(server, "abc"), "[ERROR] Invalid port: abc"),
            BadCall("server", self._bad_port_server(server, "70000"),
                    "[ERROR] Invalid port: 70000"),
        ]

    @staticmethod
    def _bad_port_client(impl: Implementation) -> list[str]:
        if impl.argv == "positional":
            return ["127.0.0.1", "abc", "hi"]
        return ["--host", "127.0.0.1", "--port", "abc", "--message", "hi"]

    @staticmethod
    def _bad_port_server(impl: Implementation, port: str) -> list[str]:
        return [port] if impl.argv == "positional" else ["--port", port]

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        calls = self.calls(ctx)

        def one(index: int) -> ProcResult:
            call = calls[index]
            role = f"{call.role}-{index}"
            if call.role == "client":
                return ctx.backend.run_client(ctx.cell, ctx.client, call.args, role=role,
                                              timeout=20)
            proc = ctx.backend.run_server_program(ctx.cell, ctx.server, call.args, timeout=20)
            proc.role = role
            return proc

        with ThreadPoolExecutor(max_workers=len(calls)) as pool:  # independent runs
            obs.clients = list(pool.map(one, range(len(calls))))
        obs.facts["calls"] = calls
        return obs

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        for proc, call in zip(obs.clients, obs.facts["calls"], strict=True):
            checker.usage_error(proc, call.problem)
        return checker.result()


class MaxClients(ServerCase):
    name = "max_clients"
    timeout = 25.0
    description = "--max-clients 1: while the one connection is inside a frame at no less " \
                  "than --min-rate a second client is refused at once (one [ERROR] on each " \
                  "side); once it is quiet, the next client evicts it (section 9)"
    server_needs = frozenset({"max-clients"})
    # --min-rate 1: the held frame (all but its last byte in) stays above the rate for
    # its length in seconds, so it may not be evicted as a slow frame (section 9, rule 2).
    server_extra = ("--max-clients", "1", "--min-rate", "1")
    unlogged_connections = 1  # the refused one
    HELD = (b"holding the only slot", b"a frame in two parts")

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.client_host, server.client_port)
        with ctx.raw_peer(server) as peer:
            obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
            codec = make_codec(ctx.cipher, ctx.key())
            acks = raw_exchange(peer, ctx, [self.HELD[0]], codec=codec)  # its reader waits
            wire = b"".join(protocol.frame(p) for p in codec.encode(self.HELD[1]))
            peer.send(wire[:-1])  # a frame begun, fast enough: not evictable
            time.sleep(0.2)  # for the server's reader to take those bytes in
            obs.clients.append(ctx.run_client(target, "refused?", role="client-refused"))
            peer.send(wire[-1:])
            obs.facts["acks"] = [*acks, peer.recv_message(codec)]
            wait_for_lines(server, b"[SEND] ACK sent to client", 2)
            # Quiet now: the next client takes its slot.
            obs.clients.append(ctx.run_client(target, "my turn now", role="client-served"))
            obs.facts["evicted"] = peer.closed_by_peer(within=ctx.cell.remaining(5.0))
        obs.facts["target"] = client_target(server)

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        check_acks(checker, obs.facts["acks"], list(self.HELD))
        checker.expect(obs.facts["evicted"], "the quiet connection was not closed when "
                                             "another client came (eviction, section 9)", WIRE)
        target = re.escape(obs.facts["target"])
        refused, served = obs.clients
        checker.exit_code(refused, 1)
        checker.lines_equal(refused.role, "stderr", refused.err_lines, [re.compile(
            rf"\[ERROR\] (Connection to {target} closed before the ACK"
            rf"|(Send to|Receive from) {target} failed: .+|Handshake failed with {target}: .+)")])
        stdout: list[Any] = [protocol.cipher_line("noise")] if obs.cipher == "noise" else []
        sent = [send_line(b"refused?", obs.cipher)]
        checker.expect(refused.out_lines in (stdout, stdout + sent),
                       f"{refused.role} stdout: {refused.out_lines}, expected {stdout} "
                       f"(+ the SEND line)")
        checker.client(served, obs.cipher, obs.facts["target"], [b"my turn now"])
        assert obs.server is not None
        refused_line = re.compile(rf"\[ERROR\] Client refused: {protocol.PEER}: "
                                  rf"too many clients \(limit 1\)")
        peer = obs.facts["raw_peer"]
        evicted = re.compile(rf"\[INFO\] Evicted {re.escape(peer) if peer else protocol.PEER}: "
                             rf"idle \d+ s, server full \(limit 1\)")
        checker.server(obs.server, obs.cipher, [
            Conn(list(self.HELD), peer=peer, evicted=evicted), Conn([b"my turn now"]),
        ], extra_errors=(refused_line,))
        return checker.result()


class IdleTimeout(ServerCase):
    name = "idle_timeout"
    timeout = 25.0
    description = "--idle-timeout 1: a silent connection is closed with one [ERROR] line"
    server_needs = frozenset({"idle-timeout"})
    server_extra = ("--idle-timeout", "1")
    uses_client = False

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        started = time.monotonic()
        with ctx.raw_peer(server) as peer:
            obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
            obs.facts["closed"] = peer.closed_by_peer(within=ctx.cell.remaining(6.0))
        obs.facts["after"] = time.monotonic() - started
        wait_disconnects(server, 1)
        # The raw peer, not a client program, shows the server still serves: a program
        # starting up on a loaded machine may itself stay silent for a second.
        with ctx.raw_peer(server) as peer:
            obs.facts["second_peer"] = peer.local_address if server.raw_peer_exact else None
            obs.facts["acks"] = raw_exchange(peer, ctx, [b"quick enough"])

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        checker.expect(obs.facts["closed"], "server kept a silent connection for 6 s "
                                            "with --idle-timeout 1", WIRE)
        checker.expect(obs.facts["after"] >= 0.9,
                       f"silent connection closed after {obs.facts['after']:.2f} s, before 1 s",
                       WIRE)
        check_acks(checker, obs.facts["acks"], [b"quick enough"])
        peer = obs.facts["raw_peer"]
        peer_re = re.escape(peer) if peer else protocol.PEER
        error = re.compile(rf"\[ERROR\] Idle timeout for {peer_re} after 1 s")
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [
            Conn(peer=peer, handshake=False, error=error),
            Conn([b"quick enough"], peer=obs.facts["second_peer"]),
        ])
        return checker.result()


class Passphrase(Case):
    name = "passphrase"
    timeout = 30.0
    description = "both sides --key PASSPHRASE (noise: the Argon2id-derived PSK must agree)"
    PASSPHRASE = "correct horse battery staple ✓"  # noqa: S105 - a public test value
    MESSAGE = b"keyed by a passphrase"

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        options = ["--key", self.PASSPHRASE]
        if ctx.cipher != "xor":
            options = ["--cipher", ctx.cipher, *options]
        server = ctx.backend.start_server(ctx.cell, ctx.server, options)
        try:
            target = (server.client_host, server.client_port)
            args = ctx.client.client_args(*target, self.MESSAGE.decode(), options)
            obs.clients.append(ctx.backend.run_client(ctx.cell, ctx.client, args))
            obs.facts["target"] = client_target(server)
            settle(server, 1)
        finally:
            obs.server = server.stop()
        return obs

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        checker.client(obs.clients[0], obs.cipher, obs.facts["target"], [self.MESSAGE])
        assert obs.server is not None
        checker.server(obs.server, obs.cipher, [Conn([self.MESSAGE])])
        return checker.result()


class HostName(Messages):
    name = "host_name"
    timeout = 20.0
    description = "the client given a host name (local: localhost; Docker: container name)"

    def messages(self, ctx: Ctx) -> list[bytes]:
        return [b"found by name"]

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = (server.name_host, server.client_port)
        obs.clients.append(ctx.run_client(target, "found by name"))
        obs.facts.update(messages=self.messages(ctx), target=protocol.target(*target))


class Ipv6(Messages):
    name = "ipv6"
    timeout = 20.0
    backends = ("local",)  # Docker networks here have no IPv6
    description = "server --bind ::1, client to ::1: [::1]:PORT in every line"
    client_needs = server_needs = frozenset({"ipv6"})
    server_extra = ("--bind", "::1")

    def messages(self, ctx: Ctx) -> list[bytes]:
        return [b"over IPv6"]

    def exercise(self, ctx: Ctx, server: Server, obs: Observation) -> None:
        target = ("::1", server.client_port)
        obs.clients.append(ctx.run_client(target, "over IPv6"))
        obs.facts.update(messages=self.messages(ctx), target=protocol.target(*target))

    def check(self, obs: Observation) -> Verdict:
        result = super().check(obs)
        assert obs.server is not None
        checker = Checker()
        head = obs.server.out_lines[:1]
        checker.expect(bool(head) and head[0].startswith("[INFO] Listening on [::1]:"),
                       f"server: first line {head}, expected '[INFO] Listening on [::1]:PORT'",
                       LIFECYCLE)
        peers = [line for line in obs.server.out_lines if "Client connected" in line]
        checker.expect(all("[::1]:" in line for line in peers),
                       f"server: IPv6 peers not as [::1]:PORT: {peers}")
        for check, reasons in result.checks.items():
            for reason in reasons:
                checker.fail(reason, check)
        return checker.result()


class ShutdownWithClient(Case):
    name = "shutdown_with_client"
    timeout = 25.0
    description = "SIGTERM while a client is connected: 'Shutting down', that connection " \
                  "closed (FIN, then the peer's close), exit 0 (§5, §9)"
    MESSAGE = b"still connected"
    uses_client = False

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        server = ctx.start_server()
        try:
            with ctx.raw_peer(server) as peer:
                obs.facts["raw_peer"] = peer.local_address if server.raw_peer_exact else None
                obs.facts["acks"] = raw_exchange(peer, ctx, [self.MESSAGE])
                # Servers may send the ACK before they log RECV/SEND: let them finish.
                wait_for_lines(server, b"[SEND] ACK sent to client", 1)
                # Section 9: the quiet connection gets a FIN at once, then the server
                # waits (within --drain-timeout) for this end to close.
                server.terminate()
                obs.facts["closed"] = peer.closed_by_peer(within=ctx.cell.remaining(3.0))
        finally:
            obs.server = server.stop()
        return obs

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        check_acks(checker, obs.facts["acks"], [self.MESSAGE])
        checker.expect(obs.facts["closed"], "the client's connection stayed open after the "
                                            "server exited", LIFECYCLE)
        assert obs.server is not None
        proc = obs.server
        checker.exit_code(proc, 0)
        out = proc.out_lines
        # The order of this connection's 'Client disconnected' and 'Shutting down' is
        # not specified: compare the set of lines, then the rest in order.
        peer = obs.facts["raw_peer"]
        tail = out[-2:]
        checker.expect(bool(out) and "[INFO] Shutting down" in tail
                       and any(line.startswith("[INFO] Client disconnected: ") for line in tail),
                       f"server: last lines {tail}, expected 'Client disconnected' and "
                       "'Shutting down' (in either order)", LIFECYCLE)
        body = [line for line in out if line != "[INFO] Shutting down"]
        conn = Conn([self.MESSAGE], peer=peer)
        expected = [*protocol.server_head(obs.cipher),
                    *expected_connection_lines(conn, obs.cipher)]
        checker.lines_equal("server", "stdout", body, expected)
        checker.lines_equal("server", "stderr", proc.err_lines, [])
        return checker.result()


# --- a client against a fake server (the harness) --------------------------------------

class FakeServerCase(Case):
    """The harness plays the server and misbehaves; only the client program runs. The
    server language of the cell plays no part (the case runs once per cell all the same)."""

    timeout = 20.0
    uses_server = False
    MESSAGE = "anyone there?"
    client_extra: tuple[str, ...] = ()

    def behaviour(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def drive(self, ctx: Ctx) -> Observation:
        obs = Observation(ctx.cipher)
        host = ctx.backend.harness_address()
        with FakeServer(host, self.behaviour, timeout=ctx.cell.remaining(12.0)) as fake:
            obs.clients.append(ctx.run_client((host, fake.port), self.MESSAGE,
                                              extra=list(self.client_extra), timeout=15))
        obs.facts.update(target=protocol.target(host, fake.port), fake_error=fake.error)
        return obs

    def expected_error(self, obs: Observation) -> Any:
        raise NotImplementedError

    def check(self, obs: Observation) -> Verdict:
        checker = Checker()
        proc = obs.clients[0]
        checker.exit_code(proc, 1)
        checker.lines_equal(proc.role, "stderr", proc.err_lines, [self.expected_error(obs)])
        if obs.cipher == "noise":  # stuck in the handshake: nothing sent yet
            want: list[Any] = [protocol.cipher_line("noise")]
        else:
            want = [send_line(self.MESSAGE.encode(), "xor")]
        checker.lines_equal(proc.role, "stdout", proc.out_lines, want)
        return checker.result()


class ClientTimeout(FakeServerCase):
    name = "client_timeout"
    description = "a server that never answers: '[ERROR] Timed out after 1 s waiting for " \
                  "TARGET' with --idle-timeout 1"
    client_needs = frozenset({"idle-timeout"})
    client_extra = ("--idle-timeout", "1")

    def behaviour(self, conn: socket.socket) -> None:
        drain(conn)

    def expected_error(self, obs: Observation) -> Any:
        return f"[ERROR] Timed out after 1 s waiting for {obs.facts['target']}"


class ClosedBeforeAck(FakeServerCase):
    name = "closed_before_ack"
    description = "a server that reads the first frame and closes: exit 1, one [ERROR]"

    def behaviour(self, conn: socket.socket) -> None:
        read_frame(conn)

    def expected_error(self, obs: Observation) -> Any:
        target = obs.facts["target"]
        if obs.cipher == "xor":
            return f"[ERROR] Connection to {target} closed before the ACK"
        target = re.escape(target)
        return re.compile(rf"\[ERROR\] (Handshake failed with {target}: .+"
                          rf"|Connection to {target} closed before the ACK)")


class MalformedAck(FakeServerCase):
    name = "malformed_ack"
    ciphers = ("xor",)  # a noise server that lies needs the key: see wrong_key
    description = "an ACK with the wrong count and an escape sequence: " \
                  "'[ERROR] Malformed ACK from TARGET: <escaped text>'"
    ACK = b"ACK: Received 999 bytes \x1b[31m\n"

    def behaviour(self, conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(protocol.frame(protocol.xor(self.ACK, protocol.DEFAULT_KEY)))
        drain(conn)

    def expected_error(self, obs: Observation) -> Any:
        return f"[ERROR] Malformed ACK from {obs.facts['target']}: {protocol.escape(self.ACK)}"


class AckTooLarge(FakeServerCase):
    name = "ack_too_large"
    ciphers = ("xor",)
    description = "an ACK frame above the client's --max-frame: refused before it is read"
    client_extra = ("--max-frame", "64")

    def behaviour(self, conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(struct.pack(">I", 65) + b"\x00" * 8)
        drain(conn)

    def expected_error(self, obs: Observation) -> Any:
        return f"[ERROR] ACK frame too large from {obs.facts['target']}: 65 bytes (limit 64)"


CASES: list[Case] = [
    SingleMessage(), EmptyMessage(), InteractiveCase(), Concurrent(), NonAscii(), ControlChars(),
    SizeLimit(), OverLimit(), OversizeFrame(), ByteAtATime(), TwoFramesOneWrite(),
    TruncatedFrame(), InvalidUtf8(), StoppedServer(), ConnectionRefused(), WrongKey(),
    BadArguments(), MaxClients(), IdleTimeout(), Passphrase(), HostName(), Ipv6(),
    ShutdownWithClient(), ClientTimeout(), ClosedBeforeAck(), MalformedAck(), AckTooLarge(),
]
CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}


def run_case(case: Case, backend: Backend, client: Implementation, server: Implementation,
             cipher: str, cell: Cell) -> tuple[Observation | None, Verdict]:
    """Run and check one cell; a backend failure or exception becomes a failed result."""
    try:
        obs = case.run(backend, client, server, cipher, cell)
    except (BackendError, LaunchError, OSError, TimeoutError) as error:
        return None, broken(f"run aborted: {type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001 - any crash in a cell is that cell's failure
        return None, broken(f"run crashed: {type(error).__name__}: {error}")
    try:
        return obs, case.check(obs)
    except Exception as error:  # noqa: BLE001 - a check that cannot read the logs fails
        return obs, broken(f"check crashed: {type(error).__name__}: {error}")


def broken(reason: str) -> Verdict:
    """A run that could not be checked: an error, every check failed with its reason."""
    return Verdict(False, [reason], {check: [reason] for check in CHECKS}, error=True)
