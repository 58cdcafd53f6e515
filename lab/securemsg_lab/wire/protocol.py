"""The lab's own reading of PROTOCOL.md: framing, xor, escaping, expected log lines.

Pure functions over bytes (no sockets), written from the specification and not
shared with the programs under test, so that a mistake in one is caught by the other.
The one frame encoder (`frame`), stream decoder (`split_frames`) and `xor` of the lab
and its tests.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

DEFAULT_KEY = b"MY_SECRET_KEY"
DEFAULT_MAX_FRAME = 1048576
NOISE_PROTOCOL = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
NOISE_PROLOGUE = b"securemsg-noise-v1"
NOISE_CHUNK_DATA = 65518  # 65535 - 16 (tag) - 1 (marker)
NOISE_OVERHEAD = 17  # marker byte + Poly1305 tag per transport frame
CIPHERS = ("xor", "noise")
HEADER_LEN = 4


def xor(data: bytes, key: bytes) -> bytes:
    """Section 2: the key restarts at key[0] for every frame."""
    if not data:
        return b""
    repeated = (key * (len(data) // len(key) + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


def frame(payload: bytes) -> bytes:
    """Section 1: 4-byte big-endian length, then the payload."""
    return struct.pack(">I", len(payload)) + payload


@dataclass(frozen=True)
class Frame:
    """One frame of a byte stream: where it starts in the stream, and its payload."""

    offset: int
    payload: bytes


def split_frames(stream: bytes) -> tuple[list[Frame], bytes]:
    """Section 1 read back: the whole frames of one direction's bytes, and the incomplete
    tail (whatever the length: a capture is shown whatever a server's limit)."""
    frames: list[Frame] = []
    offset = 0
    while len(stream) - offset >= HEADER_LEN:
        (length,) = struct.unpack_from(">I", stream, offset)
        end = offset + HEADER_LEN + length
        if end > len(stream):
            break
        frames.append(Frame(offset, stream[offset + HEADER_LEN : end]))
        offset = end
    return frames, stream[offset:]


def looks_like_words(data: bytes, threshold: float = 0.75) -> bool:
    """UTF-8 text without control characters, mostly letters, digits and spaces."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in text):
        return False
    return not text or sum(ch.isalnum() or ch == " " for ch in text) / len(text) >= threshold


def ack_text(length: int) -> str:
    return f"ACK: Received {length} bytes"


def ack_payload(length: int) -> bytes:
    """Section 3: the plaintext of the server's reply to a message of `length` bytes."""
    return ack_text(length).encode()


def noise_wire_bytes(message_length: int) -> int:
    """Transport-frame payload bytes a message of this length takes in noise mode (§8)."""
    chunks = max(1, -(-message_length // NOISE_CHUNK_DATA))
    return message_length + chunks * NOISE_OVERHEAD


def wire_bytes(message_length: int, cipher: str) -> int:
    return message_length if cipher == "xor" else noise_wire_bytes(message_length)


# --- escaping (section 6) -------------------------------------------------------------

_NAMED = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def _utf8_sequence_length(data: bytes, start: int) -> int:
    """Length of the well-formed UTF-8 sequence at data[start], or 0 if there is none."""
    first = data[start]
    if first < 0x80:
        return 1
    if 0xC2 <= first <= 0xDF:
        length, low, high = 2, 0x80, 0xBF
    elif 0xE0 <= first <= 0xEF:
        length = 3
        low = 0xA0 if first == 0xE0 else 0x80
        high = 0x9F if first == 0xED else 0xBF
    elif 0xF0 <= first <= 0xF4:
        length = 4
        low = 0x90 if first == 0xF0 else 0x80
        high = 0x8F if first == 0xF4 else 0xBF
    else:
        return 0
    if start + length > len(data):
        return 0
    if not low <= data[start + 1] <= high:
        return 0
    if any(not 0x80 <= byte <= 0xBF for byte in data[start + 2 : start + length]):
        return 0
    return length


def _printable(char: str) -> bool:
    code = ord(char)
    return not (code <= 0x1F or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029))


def escape(data: bytes) -> str:
    """Section 6 escaping, applied left to right."""
    out: list[str] = []
    index = 0
    while index < len(data):
        byte = data[index]
        if byte in _NAMED:
            out.append(_NAMED[byte])
            index += 1
            continue
        length = _utf8_sequence_length(data, index)
        if length == 0:
            out.append(f"\\x{byte:02x}")
            index += 1
            continue
        sequence = data[index : index + length]
        char = sequence.decode("utf-8")
        out.append(char if _printable(char) else "".join(f"\\x{b:02x}" for b in sequence))
        index += length
    return "".join(out)


#: a log line as a test expects it: the exact text, or a pattern it must match in full
Expected = str | re.Pattern[str]


# --- log lines (sections 6, 7, 8) ------------------------------------------------------

def cipher_line(cipher: str) -> str:
    """Printed at start-up by servers and clients in secure mode only (PROTOCOL.md 8)."""
    assert cipher == "noise", cipher
    return f"[INFO] Cipher: noise ({NOISE_PROTOCOL})"


def server_head(cipher: str) -> list[Expected]:
    """A server's first lines: as the seed's in xor mode, plus the cipher in secure mode."""
    listening: list[Expected] = [re.compile(r"\[INFO\] Listening on " + PEER)]
    return listening + ([cipher_line(cipher)] if cipher == "noise" else [])


def recv_line(message: bytes) -> str:
    return f"[RECV] Plaintext: {escape(message)}"


def target(host: str, port: int) -> str:
    """TARGET / PEER as section 6 writes them (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


PEER = r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}"
SERVER_STDOUT_PATTERNS = (
    re.compile(r"\[INFO\] Listening on " + PEER),
    re.compile(r"\[INFO\] Cipher: noise \(" + NOISE_PROTOCOL + r"\)"),
    re.compile(r"\[INFO\] Client connected: " + PEER),
    re.compile(r"\[INFO\] Handshake complete: " + PEER),
    re.compile(r"\[RECV\] Plaintext: .*"),
    re.compile(r"\[SEND\] ACK sent to client"),
    re.compile(r"\[INFO\] Client disconnected: " + PEER),
    re.compile(r"\[INFO\] Evicted " + PEER + r": idle \d+ s, server full \(limit \d+\)"),
    re.compile(r"\[INFO\] Shutting down"),
)
LISTENING = re.compile(r"^\[INFO\] Listening on (?P<addr>.+):(?P<port>\d+)$", re.MULTILINE)
