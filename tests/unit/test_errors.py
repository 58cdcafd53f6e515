"""Every [ERROR] text of PROTOCOL.md 7 that a per-connection failure produces."""

from __future__ import annotations

import pytest
from securemsg import client, server
from securemsg.errors import (
    ConnectError,
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    MalformedAck,
    MessageTooLarge,
    OversizeMessage,
    PeerClosed,
    RecvError,
    ResolveError,
    SecureMsgError,
    SendError,
    TimedOut,
    TruncatedFrame,
)

PEER = "127.0.0.1:54321"
TARGET = "[::1]:5000"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (FrameTooLarge(65, 64), f"Frame too large from {PEER}: 65 bytes (limit 64)"),
        (
            TruncatedFrame("length", 2, 4),
            f"Truncated frame from {PEER}: connection closed after 2 of 4 length bytes",
        ),
        (
            TruncatedFrame("payload", 3, 10),
            f"Truncated frame from {PEER}: connection closed after 3 of 10 payload bytes",
        ),
        (TimedOut(300), f"Idle timeout for {PEER} after 300 s"),
        (
            RecvError("Connection reset by peer"),
            f"Receive from {PEER} failed: Connection reset by peer",
        ),
        (SendError("Broken pipe"), f"Send to {PEER} failed: Broken pipe"),
        (HandshakeError("bad tag"), f"Handshake failed with {PEER}: bad tag"),
        (
            DecryptError("authentication failed"),
            f"Decryption failed from {PEER}: authentication failed",
        ),
        (MessageTooLarge(100), f"Message too large from {PEER}: more than 100 bytes"),
    ],
)
def test_server_lines(exc: SecureMsgError, text: str) -> None:
    assert server.describe_error(exc, PEER) == text


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            ResolveError("Name or service not known"),
            "Cannot resolve ::1: Name or service not known",
        ),
        (ConnectError("Connection refused"), f"Cannot connect to {TARGET}: Connection refused"),
        (PeerClosed(), f"Connection to {TARGET} closed before the ACK"),
        (MalformedAck(b"ACK\n"), f"Malformed ACK from {TARGET}: ACK\\n"),
        (TimedOut(30), f"Timed out after 30 s waiting for {TARGET}"),
        (SendError("Broken pipe"), f"Send to {TARGET} failed: Broken pipe"),
        (
            RecvError("Connection reset by peer"),
            f"Receive from {TARGET} failed: Connection reset by peer",
        ),
        (OversizeMessage(65, 64), "Message too large: 65 bytes (limit 64)"),
        (FrameTooLarge(70, 64), f"ACK frame too large from {TARGET}: 70 bytes (limit 64)"),
        (HandshakeError("x"), f"Handshake failed with {TARGET}: x"),
        (DecryptError("y"), f"Decryption failed from {TARGET}: y"),
        (MessageTooLarge(64), f"Message too large from {TARGET}: more than 64 bytes"),
    ],
)
def test_client_lines(exc: SecureMsgError, text: str) -> None:
    assert client.describe_error(exc, "::1", TARGET) == text


def test_hierarchy() -> None:
    for cls in (FrameTooLarge, TruncatedFrame, HandshakeError, DecryptError, MessageTooLarge):
        assert issubclass(cls, SecureMsgError)
    assert issubclass(HandshakeError, Exception) and not issubclass(HandshakeError, OSError)
