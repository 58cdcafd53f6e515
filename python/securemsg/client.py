"""The client: send one message (or each line of stdin) and check every ACK."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import BinaryIO

from . import net
from .config import (
    ClientConfig,
    HelpRequested,
    client_usage,
    parse_client_args,
    program_name,
    session_factory,
)
from .errors import (
    ConnectError,
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    KeyFileError,
    MalformedAck,
    MessageTooLarge,
    OversizeMessage,
    PeerClosed,
    RecvError,
    ResolveError,
    SecureMsgError,
    SendError,
    TimedOut,
    UsageError,
)
from .framing import NEED_MORE
from .log import Logger, escape, escape_text
from .session import HandshakeComplete, Message, Session, SessionFactory, ack_text


def describe_error(exc: SecureMsgError, host: str, target: str) -> str:
    """The text after ``[ERROR] `` for a client failure (PROTOCOL.md 7)."""
    if isinstance(exc, ResolveError):
        return f"Cannot resolve {host}: {exc.strerror}"
    if isinstance(exc, ConnectError):
        return f"Cannot connect to {target}: {exc.strerror}"
    if isinstance(exc, PeerClosed):
        return f"Connection to {target} closed before the ACK"
    if isinstance(exc, MalformedAck):
        return f"Malformed ACK from {target}: {escape(exc.text)}"
    if isinstance(exc, TimedOut):
        return f"Timed out after {exc.seconds} s waiting for {target}"
    if isinstance(exc, SendError):
        return f"Send to {target} failed: {exc.strerror}"
    if isinstance(exc, RecvError):
        return f"Receive from {target} failed: {exc.strerror}"
    if isinstance(exc, FrameTooLarge):
        return f"ACK frame too large from {target}: {exc.length} bytes (limit {exc.limit})"
    if isinstance(exc, HandshakeError):
        return f"Handshake failed with {target}: {exc}"
    if isinstance(exc, DecryptError):
        return f"Decryption failed from {target}: {exc}"
    if isinstance(exc, MessageTooLarge):
        return f"Message too large from {target}: more than {exc.limit} bytes"
    if isinstance(exc, OversizeMessage):
        return f"Message too large: {exc.size} bytes (limit {exc.limit})"
    return str(exc)


class Client:
    """One connection to the server, used for one or more messages."""

    def __init__(self, config: ClientConfig, console: Logger, factory: SessionFactory) -> None:
        self.config = config
        self.console = console
        self.factory = factory
        self.host = escape_text(config.host)
        self.target = net.format_address(self.host, config.port)
        self._sock: socket.socket | None = None
        self._session: Session | None = None

    def check_size(self, message: bytes) -> None:
        if len(message) > self.config.max_frame:
            raise OversizeMessage(len(message), self.config.max_frame)

    def connect(self) -> None:
        """Connect and, in noise mode, run the handshake."""
        config = self.config
        # Build the handshake first, so the server never waits on our key generation.
        self._session = session = self.factory.new_session(initiator=True)
        first = session.initial_bytes()
        self._sock = net.connect(config.host, config.port, config.idle_timeout)
        if first:
            net.send_all(self._sock, first, config.idle_timeout)
        if not session.established:
            event = self._next_event(handshake=True)
            if type(event) is not HandshakeComplete:
                raise HandshakeError("unexpected message before the handshake")
            self.console.info(f"Handshake complete: {self.target}")

    def send(self, message: bytes) -> None:
        """Send one message, wait for its ACK and check it."""
        assert self._sock is not None and self._session is not None
        self.check_size(message)
        wire, payload_bytes = self._session.encode_message(message)
        net.send_all(self._sock, wire, self.config.idle_timeout)
        self.console.send(f"Encrypted bytes: {payload_bytes} bytes")
        event = self._next_event(handshake=False)
        if type(event) is not Message or event.data != ack_text(len(message)):
            raise MalformedAck(event.data if type(event) is Message else b"")
        self.console.recv(escape(event.data))

    def _next_event(self, handshake: bool) -> HandshakeComplete | Message:
        assert self._sock is not None and self._session is not None
        session = self._session
        while True:
            event = session.next_event()
            if event is not NEED_MORE:
                return event  # type: ignore[return-value]
            data = net.recv_some(self._sock, self.config.idle_timeout)
            if not data:
                if handshake:
                    raise HandshakeError("connection closed by the server")
                raise PeerClosed()
            session.feed(data)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def read_lines(stream: BinaryIO, prompt: bool, console: Logger) -> Iterator[bytes]:
    """Lines of ``stream`` without their ending, until an empty line or EOF."""
    while True:
        if prompt:
            console.raw_err("> ")
        line = stream.readline()
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        if not line:
            return
        yield line


def _isatty(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run(config: ClientConfig, console: Logger, stdin: BinaryIO | None = None) -> int:
    """Run the client; return the exit status."""
    try:
        factory = session_factory(config)
    except SecureMsgError as exc:
        console.error(str(exc))
        return 1
    if factory.cipher == "noise":
        console.info(f"Cipher: {factory.description}")
    client = Client(config, console, factory)
    try:
        if config.message is not None:
            client.check_size(config.message)
        client.connect()
        if config.message is not None:
            client.send(config.message)
        else:
            lines = stdin if stdin is not None else sys.stdin.buffer
            for line in read_lines(lines, _isatty(lines), console):
                client.send(line)
    except SecureMsgError as exc:
        console.error(describe_error(exc, client.host, client.target))
        return 1
    finally:
        client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``client.py [OPTIONS] HOST PORT [MESSAGE]``; returns the exit status."""
    console = Logger()
    usage = client_usage(program_name(sys.argv[0]))
    try:
        config = parse_client_args(sys.argv[1:] if argv is None else argv)
    except HelpRequested:
        console.raw_out(usage)
        return 0
    except UsageError as exc:
        console.error(str(exc))
        console.raw_err(usage)
        return 2
    except KeyFileError as exc:
        console.error(str(exc))
        return 1
    try:
        return run(config, console)
    except KeyboardInterrupt:
        return 130
