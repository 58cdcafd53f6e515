"""The exceptions securemsg raises, one small hierarchy.

Library code raises these and never exits; ``server.main`` and ``client.main``
turn them into one ``[ERROR]`` line (PROTOCOL.md section 7) and an exit status.
The line's wording needs context the raiser does not have (PEER or TARGET), so
each exception carries the facts and the programs phrase them.
"""

from __future__ import annotations


class SecureMsgError(Exception):
    """Base class of every error securemsg raises on purpose."""


# --- start-up -------------------------------------------------------------


class UsageError(SecureMsgError):
    """Bad command line (exit 2). The message is the text after ``[ERROR] ``."""


class KeyFileError(SecureMsgError):
    """The key file cannot be read (exit 1)."""

    def __init__(self, path: str, strerror: str) -> None:
        super().__init__(f"Cannot read key file {path}: {strerror}")
        self.path = path
        self.strerror = strerror


# --- sockets ----------------------------------------------------------------


class NetError(SecureMsgError):
    """A socket operation failed; ``strerror`` is the system's text."""

    def __init__(self, strerror: str) -> None:
        super().__init__(strerror)
        self.strerror = strerror


class ResolveError(NetError):
    """getaddrinfo failed; ``strerror`` is gai_strerror's text."""


class ConnectError(NetError):
    """Every address of the target refused or failed."""


class ListenError(NetError):
    """bind() or listen() failed."""


class SendError(NetError):
    """send() failed."""


class RecvError(NetError):
    """recv() failed."""


class TimedOut(SecureMsgError):
    """The peer sent nothing (or accepted nothing) for the configured time."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"timed out after {seconds} s")
        self.seconds = seconds


class PeerClosed(SecureMsgError):
    """The peer closed the connection."""


# --- the protocol -------------------------------------------------------------


class ProtocolError(SecureMsgError):
    """The peer broke the wire protocol."""


class FrameTooLarge(ProtocolError):
    """A length prefix above the limit; the body was never read."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"{length} bytes (limit {limit})")
        self.length = length
        self.limit = limit


class TruncatedFrame(ProtocolError):
    """The connection ended inside a frame: ``have`` of ``need`` bytes of ``part``.

    ``part`` is ``"length"`` (the 4-byte prefix) or ``"payload"``.
    """

    def __init__(self, part: str, have: int, need: int) -> None:
        super().__init__(f"connection closed after {have} of {need} {part} bytes")
        self.part = part
        self.have = have
        self.need = need


class MessageTooLarge(ProtocolError):
    """A message above the limit (noise: after reassembly of its chunks)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit
        self.size = size


class OversizeMessage(SecureMsgError):
    """A message to send is above the local limit; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes (limit {limit})")
        self.size = size
        self.limit = limit


class MalformedAck(ProtocolError):
    """The server's answer is not exactly ``ACK: Received N bytes``."""

    def __init__(self, text: bytes) -> None:
        super().__init__("malformed ACK")
        self.text = text


class HandshakeError(ProtocolError):
    """The Noise handshake failed (wrong key, tampering, wrong cipher, bad length)."""


class DecryptError(ProtocolError):
    """A Noise transport message failed to authenticate or decode."""
