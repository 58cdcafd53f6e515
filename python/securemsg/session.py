"""The cipher-specific message layer, without I/O (PROTOCOL.md sections 2-3, 8).

A ``Session`` is one side of one connection. The program feeds it the bytes
it receives and drains events; to send a message it asks for the wire bytes
and writes them with one call:

    session = factory.new_session(initiator=True)      # client: initiator
    sock.sendall(session.initial_bytes())               # noise client: message 1
    session.feed(sock.recv(65536))
    event = session.next_event()   # NEED_MORE | HandshakeComplete | Message
    wire, payload_bytes = session.encode_message(b"Hello")

- xor: one frame per message; no handshake (``initial_bytes`` is empty and no
  ``HandshakeComplete`` event ever comes).
- noise: a 48-byte handshake frame each way, then every message as chunks of
  one marker byte (0x00 more, 0x01 last) and up to 65518 data bytes, each in
  one Noise transport message in one frame.

Failures raise: ``FrameTooLarge``, ``HandshakeError``, ``DecryptError``,
``MessageTooLarge``; ``check_eof`` raises ``TruncatedFrame`` (or
``DecryptError`` for a message cut between chunks).
"""

from __future__ import annotations

from typing import Any, NoReturn

from .crypto import XorCipher
from .errors import DecryptError, FrameTooLarge, HandshakeError, MessageTooLarge
from .framing import NEED_MORE, BadLength, Frame, FrameDecoder, NeedMore, encode_frame

# Sizes of PROTOCOL.md 8, repeated here so that xor mode never imports noise.py
# (and with it pyca cryptography).
NOISE_PROTOCOL = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
NOISE_HANDSHAKE_LEN = 48  # 32-byte ephemeral key + 16-byte tag
NOISE_MIN_TRANSPORT = 17  # a marker byte + the tag
NOISE_MAX_TRANSPORT = 65535
NOISE_CHUNK_DATA = NOISE_MAX_TRANSPORT - 16 - 1  # 65518 message bytes per chunk
MARKER_MORE = 0x00
MARKER_LAST = 0x01
_MARKER_MORE_BYTE = b"\x00"
_MARKER_LAST_BYTE = b"\x01"


class Message:
    """Event: one whole decrypted message and its payload bytes on the wire."""

    __slots__ = ("data", "wire_bytes")

    def __init__(self, data: bytes, wire_bytes: int) -> None:
        self.data = data
        self.wire_bytes = wire_bytes

    def __repr__(self) -> str:
        return f"Message({self.data!r}, wire_bytes={self.wire_bytes})"


class HandshakeComplete:
    """Event: the handshake finished; send ``reply`` (the server's message 2)."""

    __slots__ = ("reply",)

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def __repr__(self) -> str:
        return f"HandshakeComplete(reply={len(self.reply)} bytes)"


Event = NeedMore | HandshakeComplete | Message


def ack_text(size: int) -> bytes:
    """The ACK for a message of ``size`` bytes: ``ACK: Received N bytes``."""
    return b"ACK: Received %d bytes" % size


class Session:
    """One side of one connection; subclasses implement a cipher."""

    cipher = ""

    def __init__(self, max_message: int, decoder: FrameDecoder) -> None:
        self.max_message = max_message
        self._decoder = decoder

    @property
    def established(self) -> bool:
        """True once messages may be sent (at once for xor)."""
        return True

    def initial_bytes(self) -> bytes:
        """Bytes to send right after connecting (noise client: message 1)."""
        return b""

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._decoder.feed(data)

    def frame_progress(self) -> tuple[int, int, int | None]:
        """``(frames decoded so far, bytes of a partial frame, its length if known)``.

        The server times a frame from its first byte (PROTOCOL.md 4).
        """
        decoder = self._decoder
        return decoder.frames, decoder.buffered, decoder.pending_length()

    @property
    def in_message(self) -> bool:
        """True between the chunks of one noise message."""
        return False

    @property
    def held(self) -> int:
        """Bytes held for the frame (or noise message) in progress: what the
        server counts against its memory budget. Reads no more than attributes,
        so another thread may ask."""
        return self._decoder.buffered

    def next_event(self) -> Event:
        """The next event from the bytes fed so far."""
        raise NotImplementedError

    def encode_message(self, message: bytes) -> tuple[bytes, int]:
        """``(wire bytes, payload bytes)`` that carry ``message``."""
        raise NotImplementedError

    def check_eof(self) -> None:
        """The peer closed: raise if it did so inside a frame or message."""
        raise NotImplementedError


class XorSession(Session):
    """xor: each message is one frame, each payload xored from key[0]."""

    cipher = "xor"

    def __init__(self, cipher: XorCipher, max_message: int) -> None:
        super().__init__(max_message, FrameDecoder(max_message))
        self._cipher = cipher

    def next_event(self) -> Event:
        event = self._decoder.next_event()
        if isinstance(event, Frame):
            return Message(self._cipher.apply(event.payload), len(event.payload))
        if isinstance(event, BadLength):
            raise FrameTooLarge(event.length, event.limit)
        return NEED_MORE

    def encode_message(self, message: bytes) -> tuple[bytes, int]:
        return encode_frame(self._cipher.apply(message)), len(message)

    def check_eof(self) -> None:
        self._decoder.check_eof()


class NoiseSession(Session):
    """Noise_NNpsk0_25519_ChaChaPoly_SHA256: handshake, then chunked messages."""

    cipher = "noise"

    def __init__(
        self,
        psk: bytes,
        initiator: bool,
        max_message: int,
        ephemeral: bytes | None = None,
    ) -> None:
        from . import noise  # cryptography is needed in noise mode only

        super().__init__(max_message, FrameDecoder(NOISE_HANDSHAKE_LEN, NOISE_HANDSHAKE_LEN))
        self._initiator = initiator
        self._handshake: Any = noise.HandshakeState(
            noise.PROTOCOL_NAME, initiator, noise.PROLOGUE, psk=psk, ephemeral=ephemeral
        )
        self._send: Any = None
        self._recv: Any = None
        self._parts: list[bytes] = []
        self._size = 0
        self._wire = 0

    @property
    def established(self) -> bool:
        return self._send is not None

    @property
    def in_message(self) -> bool:
        return bool(self._parts)

    @property
    def held(self) -> int:
        return self._decoder.buffered + self._size  # as C: the message data of earlier chunks

    @property
    def handshake_hash(self) -> bytes:
        return bytes(self._handshake.handshake_hash)

    def initial_bytes(self) -> bytes:
        if not self._initiator:
            return b""
        return encode_frame(self._handshake.write_message(b""))

    def next_event(self) -> Event:
        while True:
            event = self._decoder.next_event()
            if isinstance(event, BadLength):
                self._bad_length(event)  # raises
            if not isinstance(event, Frame):
                return NEED_MORE
            if self._send is None:
                return self._handshake_step(event.payload)
            message = self._chunk(event.payload)
            if message is not None:
                return message

    def _bad_length(self, event: BadLength) -> NoReturn:
        length = event.length
        if self._send is None:
            raise HandshakeError(
                f"expected a {NOISE_HANDSHAKE_LEN}-byte handshake message, got {length} bytes"
                + (" (is the peer in xor mode?)" if length != NOISE_HANDSHAKE_LEN else "")
            )
        if length > NOISE_MAX_TRANSPORT:
            raise FrameTooLarge(length, NOISE_MAX_TRANSPORT)
        raise DecryptError(
            f"frame of {length} bytes is not a transport message "
            f"({NOISE_MIN_TRANSPORT}..{NOISE_MAX_TRANSPORT} bytes)"
        )

    def _handshake_step(self, payload: bytes) -> HandshakeComplete:
        handshake = self._handshake
        if handshake.read_message(payload):
            raise HandshakeError("unexpected handshake payload")
        reply = b""
        if not self._initiator:
            reply = encode_frame(handshake.write_message(b""))
        self._send, self._recv = handshake.split()
        self._decoder.min_frame = NOISE_MIN_TRANSPORT
        self._decoder.max_frame = NOISE_MAX_TRANSPORT
        return HandshakeComplete(reply)

    def _chunk(self, payload: bytes) -> Message | None:
        plaintext = self._recv.decrypt_with_ad(b"", payload)
        marker = plaintext[0]
        if marker > MARKER_LAST:
            raise DecryptError(f"bad chunk marker 0x{marker:02x}")
        self._size += len(plaintext) - 1
        self._wire += len(payload)
        if self._size > self.max_message:
            raise MessageTooLarge(self.max_message, self._size)
        self._parts.append(plaintext[1:])
        if marker == MARKER_MORE:
            return None
        message = Message(b"".join(self._parts), self._wire)
        self._parts.clear()
        self._size = self._wire = 0
        return message

    def encode_message(self, message: bytes) -> tuple[bytes, int]:
        if self._send is None:
            raise HandshakeError("handshake not complete")
        if len(message) <= NOISE_CHUNK_DATA:  # the usual case: a single chunk
            ciphertext = self._send.encrypt_with_ad(b"", _MARKER_LAST_BYTE + message)
            return encode_frame(ciphertext), len(ciphertext)
        frames = []
        payload_bytes = 0
        step = NOISE_CHUNK_DATA
        last = (len(message) - 1) // step * step  # offset of the last chunk
        for offset in range(0, last + 1, step):
            marker = _MARKER_LAST_BYTE if offset == last else _MARKER_MORE_BYTE
            ciphertext = self._send.encrypt_with_ad(b"", marker + message[offset : offset + step])
            payload_bytes += len(ciphertext)
            frames.append(encode_frame(ciphertext))
        return b"".join(frames), payload_bytes

    def check_eof(self) -> None:
        self._decoder.check_eof()
        if self._parts:
            raise DecryptError("connection closed in the middle of a message")


class SessionFactory:
    """Makes a session per connection; derives the noise PSK once, at start-up."""

    def __init__(self, cipher: str, key: bytes, max_message: int, psk: bytes | None = None) -> None:
        self.cipher = cipher
        self.max_message = max_message
        self._xor = XorCipher(key) if cipher == "xor" else None
        self._psk = psk

    @classmethod
    def create(
        cls, cipher: str, key: bytes, max_message: int, psk: bytes | None = None
    ) -> SessionFactory:
        """In noise mode without a raw ``psk``, derive it from ``key`` with Argon2id (~0.1 s)."""
        if cipher == "noise" and psk is None:
            from .noise import psk_from_passphrase

            psk = psk_from_passphrase(key)
        return cls(cipher, key, max_message, psk)

    @property
    def description(self) -> str:
        """What ``[INFO] Cipher: ...`` prints."""
        if self.cipher == "noise":
            return f"noise ({NOISE_PROTOCOL})"
        return "xor"

    def new_session(self, initiator: bool) -> Session:
        if self._xor is not None:
            return XorSession(self._xor, self.max_message)
        assert self._psk is not None
        return NoiseSession(self._psk, initiator, self.max_message)
