"""The message layer (session.py) in memory: xor, and Noise per PROTOCOL.md section 8."""

from __future__ import annotations

from pathlib import Path

import pytest
from securemsg.config import parse_client_args, parse_server_args, session_factory
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.errors import (
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    MessageTooLarge,
    TruncatedFrame,
    UsageError,
)
from securemsg.framing import NEED_MORE, encode_frame
from securemsg.session import (
    NOISE_CHUNK_DATA,
    HandshakeComplete,
    Message,
    NoiseSession,
    XorSession,
    ack_text,
)

from tests.support.unit_support import load_vectors

MIB = 1 << 20


def events(session, data: bytes = b"") -> list:
    """Feed ``data`` and drain every event."""
    session.feed(data)
    found = []
    while (event := session.next_event()) is not NEED_MORE:
        found.append(event)
    return found


def only_message(session, data: bytes) -> bytes:
    found = events(session, data)
    assert len(found) == 1 and isinstance(found[0], Message), found
    return found[0].data


# --- xor ----------------------------------------------------------------------


def test_ack_text() -> None:
    assert ack_text(0) == b"ACK: Received 0 bytes"
    assert ack_text(1048576) == b"ACK: Received 1048576 bytes"


@pytest.mark.parametrize("case", load_vectors("xor.json"), ids=lambda case: case["name"])
def test_xor_session_wire_matches_vectors(case: dict) -> None:
    key = bytes.fromhex(case["key"])
    client = XorSession(XorCipher(key), MIB)
    server = XorSession(XorCipher(key), MIB)
    plaintext = bytes.fromhex(case["plaintext"])
    wire, payload_bytes = client.encode_message(plaintext)
    assert wire == bytes.fromhex(case["frame"])
    assert payload_bytes == len(plaintext)
    assert only_message(server, wire) == plaintext


def test_xor_exchange_matches_protocol_example() -> None:
    client = XorSession(XorCipher(DEFAULT_KEY), MIB)
    server = XorSession(XorCipher(DEFAULT_KEY), MIB)
    assert client.initial_bytes() == b"" and client.established
    wire, _ = client.encode_message(b"Hello from C")
    message = only_message(server, wire)
    ack, _ = server.encode_message(ack_text(len(message)))
    assert ack == bytes.fromhex("000000160c1a14696511372631363d203d6d686d73273a262027")
    assert only_message(client, ack) == b"ACK: Received 12 bytes"


def test_xor_frame_too_large() -> None:
    server = XorSession(XorCipher(DEFAULT_KEY), 64)
    with pytest.raises(FrameTooLarge) as info:
        events(server, b"\x00\x00\x00\x41")
    assert (info.value.length, info.value.limit) == (65, 64)


def test_xor_truncated_at_eof() -> None:
    server = XorSession(XorCipher(DEFAULT_KEY), 64)
    assert events(server, b"\x00\x00\x00\x05ab") == []
    with pytest.raises(TruncatedFrame, match="2 of 5 payload bytes"):
        server.check_eof()


def test_xor_pipelined_messages() -> None:
    client = XorSession(XorCipher(DEFAULT_KEY), MIB)
    server = XorSession(XorCipher(DEFAULT_KEY), MIB)
    wire = b"".join(client.encode_message(m)[0] for m in (b"a", b"", b"c"))
    assert [e.data for e in events(server, wire)] == [b"a", b"", b"c"]


# --- noise --------------------------------------------------------------------

PSK = bytes(range(100, 132))


def handshake(
    psk: bytes = PSK, max_message: int = MIB, server_max: int | None = None
) -> tuple[NoiseSession, NoiseSession]:
    client = NoiseSession(psk, True, max_message)
    server = NoiseSession(psk, False, server_max or max_message)
    assert not client.established and not server.established
    (done,) = events(server, client.initial_bytes())
    assert isinstance(done, HandshakeComplete) and len(done.reply) == 4 + 48
    assert events(client, done.reply) == [_Complete()]
    assert client.established and server.established
    assert client.handshake_hash == server.handshake_hash
    return client, server


class _Complete:
    """Equal to a HandshakeComplete with nothing to send."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HandshakeComplete) and other.reply == b""


def frames_of(wire: bytes) -> list[bytes]:
    """Split wire bytes into whole frames (prefix included)."""
    frames = []
    while wire:
        end = 4 + int.from_bytes(wire[:4], "big")
        frames.append(wire[:end])
        wire = wire[end:]
    return frames


def test_noise_round_trip() -> None:
    client, server = handshake()
    wire, payload_bytes = client.encode_message(b"Hello")
    assert payload_bytes == 1 + 5 + 16 and len(wire) == 4 + payload_bytes
    assert only_message(server, wire) == b"Hello"
    ack, _ = server.encode_message(ack_text(5))
    assert only_message(client, ack) == b"ACK: Received 5 bytes"


def test_noise_empty_message_is_one_chunk() -> None:
    client, server = handshake()
    wire, payload_bytes = client.encode_message(b"")
    assert payload_bytes == 17
    assert only_message(server, wire) == b""


@pytest.mark.parametrize(
    ("size", "frame_sizes"),
    [
        (NOISE_CHUNK_DATA, [65535]),  # 65518: the largest single chunk
        (NOISE_CHUNK_DATA + 1, [65535, 17 + 1]),  # 65519
        (NOISE_CHUNK_DATA + 2, [65535, 17 + 2]),  # 65520
        (3 * NOISE_CHUNK_DATA, [65535] * 3),
    ],
)
def test_noise_chunk_boundary(size: int, frame_sizes: list[int]) -> None:
    client, server = handshake()
    message = bytes(range(256)) * (size // 256 + 1)
    message = message[:size]
    wire, payload_bytes = client.encode_message(message)
    assert [len(frame) - 4 for frame in frames_of(wire)] == frame_sizes
    assert payload_bytes == sum(frame_sizes)
    assert only_message(server, wire) == message


def test_noise_largest_message_in_pieces() -> None:
    client, server = handshake()
    message = b"m" * MIB
    wire, _ = client.encode_message(message)
    server.feed(wire[:70_000])
    assert server.next_event() is NEED_MORE
    assert only_message(server, wire[70_000:]) == message


def test_noise_message_above_the_limit_after_reassembly() -> None:
    client, server = handshake(max_message=MIB, server_max=100_000)
    wire, _ = client.encode_message(b"x" * 100_001)
    with pytest.raises(MessageTooLarge) as info:
        events(server, wire)
    assert info.value.limit == 100_000
    assert str(info.value) == "more than 100000 bytes"


def test_noise_message_exactly_at_the_limit() -> None:
    client, server = handshake(max_message=MIB, server_max=100_000)
    wire, _ = client.encode_message(b"x" * 100_000)
    assert only_message(server, wire) == b"x" * 100_000


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("index", [4, 20, 35, 36, 51])  # key bytes and tag bytes
def test_noise_flipped_bit_in_message_1(index: int) -> None:
    client = NoiseSession(PSK, True, MIB)
    server = NoiseSession(PSK, False, MIB)
    with pytest.raises(HandshakeError):
        events(server, flip(client.initial_bytes(), index))


@pytest.mark.parametrize("index", [4, 30, 40, 51])
def test_noise_flipped_bit_in_message_2(index: int) -> None:
    client = NoiseSession(PSK, True, MIB)
    server = NoiseSession(PSK, False, MIB)
    (done,) = events(server, client.initial_bytes())
    with pytest.raises(HandshakeError):
        events(client, flip(done.reply, index))


@pytest.mark.parametrize("index", [4, 5, 10, -1])
def test_noise_flipped_bit_in_transport_frame(index: int) -> None:
    client, server = handshake()
    wire, _ = client.encode_message(b"attack at dawn")
    with pytest.raises(DecryptError, match="authentication failed"):
        events(server, flip(wire, index % len(wire)))


def test_noise_shortened_transport_message() -> None:
    client, server = handshake()
    wire, _ = client.encode_message(b"attack at dawn")
    with pytest.raises(DecryptError):  # one byte cut off: the tag no longer verifies
        events(server, encode_frame(wire[4:-1]))


def test_noise_replayed_frame() -> None:
    client, server = handshake()
    wire, _ = client.encode_message(b"pay 10")
    assert only_message(server, wire) == b"pay 10"
    with pytest.raises(DecryptError):
        events(server, wire)


def test_noise_reordered_frames() -> None:
    client, server = handshake()
    first, _ = client.encode_message(b"first")
    second, _ = client.encode_message(b"second")
    with pytest.raises(DecryptError):
        events(server, second + first)


def test_noise_dropped_frame() -> None:
    client, server = handshake()
    client.encode_message(b"lost")
    wire, _ = client.encode_message(b"next")
    with pytest.raises(DecryptError):
        events(server, wire)


def test_noise_reordered_chunks_of_one_message() -> None:
    client, server = handshake()
    wire, _ = client.encode_message(b"c" * (NOISE_CHUNK_DATA + 10))
    one, two = frames_of(wire)
    with pytest.raises(DecryptError):
        events(server, two + one)


def test_noise_transport_length_16_refused_before_the_body() -> None:
    _, server = handshake()
    with pytest.raises(DecryptError, match="16 bytes"):
        events(server, b"\x00\x00\x00\x10")


def test_noise_transport_length_65536_refused_before_the_body() -> None:
    _, server = handshake()
    with pytest.raises(FrameTooLarge) as info:
        events(server, b"\x00\x01\x00\x00")
    assert (info.value.length, info.value.limit) == (65536, 65535)


@pytest.mark.parametrize("length", [0, 12, 47, 49, 65535])
def test_noise_handshake_length_other_than_48_refused(length: int) -> None:
    server = NoiseSession(PSK, False, MIB)
    with pytest.raises(HandshakeError, match="48-byte"):
        events(server, length.to_bytes(4, "big"))


def test_noise_wrong_key() -> None:
    client = NoiseSession(PSK, True, MIB)
    server = NoiseSession(bytes(32), False, MIB)
    with pytest.raises(HandshakeError, match="wrong key"):
        events(server, client.initial_bytes())


def test_noise_bad_chunk_marker() -> None:
    client, server = handshake()
    forged = client._send.encrypt_with_ad(b"", b"\x02data")
    with pytest.raises(DecryptError, match="marker 0x02"):
        events(server, encode_frame(forged))


def test_noise_eof_between_chunks() -> None:
    client, server = handshake()
    wire, _ = client.encode_message(b"c" * (NOISE_CHUNK_DATA + 10))
    assert events(server, frames_of(wire)[0]) == []
    with pytest.raises(DecryptError, match="middle of a message"):
        server.check_eof()


def test_noise_server_meets_an_xor_client() -> None:
    xor_client = XorSession(XorCipher(b"some key"), MIB)
    wire, _ = xor_client.encode_message(b"Hello from C")
    server = NoiseSession(PSK, False, MIB)
    with pytest.raises(HandshakeError, match="xor mode"):
        events(server, wire)


def test_noise_client_meets_an_xor_server() -> None:
    client = NoiseSession(PSK, True, MIB)
    xor_server = XorSession(XorCipher(b"some key"), MIB)
    message = only_message(xor_server, client.initial_bytes())  # garbage to the xor server
    ack, _ = xor_server.encode_message(ack_text(len(message)))
    with pytest.raises(HandshakeError, match="got 22 bytes"):
        events(client, ack)


def test_noise_cannot_send_before_the_handshake() -> None:
    with pytest.raises(HandshakeError):
        NoiseSession(PSK, True, MIB).encode_message(b"too early")


# --- PROTOCOL.md 8.1, the walk-through ------------------------------------------


def hex_block(text: str) -> bytes:
    return bytes.fromhex(" ".join(text.split()))


WALK_PSK = hex_block(
    "61 4c 77 a0 09 8f aa aa 82 3a 60 f4 82 2a f9 19"
    " 74 84 c7 30 82 19 e3 f1 46 b1 6a 1c 6f 17 59 8d"
)
WALK_MSG1 = hex_block(
    "00 00 00 30 8f 40 c5 ad b6 8f 25 62 4a e5 b2 14 ea 76 7a 6e c9 4d 82 9d 3d 7b 5e 1a"
    " d1 ba 6f 3e 21 38 28 5f f3 d7 80 1e 21 3e 28 1b 23 eb 54 40 25 73 d0 bc"
)
WALK_MSG2 = hex_block(
    "00 00 00 30 35 80 72 d6 36 58 80 d1 ae ea 32 9a df 91 21 38 38 51 ed 21 a2 8e 3b 75"
    " e9 65 d0 d2 cd 16 62 54 99 f0 7b 16 bb e2 fa 89 6c 77 3b 58 ac 89 42 19"
)
WALK_HASH = hex_block(
    "bb 9b 89 5b e1 89 c2 ee e2 a5 22 19 80 c3 b3 83"
    " c3 0d dd be 32 14 d1 6b 14 bd 5b 5d d5 e6 84 f8"
)
WALK_HI = hex_block("00 00 00 13 a8 ae 53 ea 7b 9d b5 30 fb 70 ca c7 f6 bb e6 f6 be 9a bc")
WALK_ACK = hex_block(
    "00 00 00 26 5e 69 e4 58 ef 81 6b 65 3a 80 3f 5f 93 c5 9d 47 f5 11 9d 5f ea c5 8a 9d"
    " 84 11 b6 b7 57 8e f0 a8 21 c8 4e 1b c2 7d"
)


def test_walkthrough_byte_for_byte() -> None:
    client = NoiseSession(WALK_PSK, True, MIB, ephemeral=bytes(range(32)))
    server = NoiseSession(WALK_PSK, False, MIB, ephemeral=bytes(range(32, 64)))
    assert client.initial_bytes() == WALK_MSG1
    (done,) = events(server, WALK_MSG1)
    assert done.reply == WALK_MSG2
    events(client, WALK_MSG2)
    assert client.handshake_hash == server.handshake_hash == WALK_HASH
    wire, payload_bytes = client.encode_message(b"Hi")
    assert (wire, payload_bytes) == (WALK_HI, 19)
    assert only_message(server, wire) == b"Hi"
    ack, _ = server.encode_message(ack_text(2))
    assert ack == WALK_ACK
    assert only_message(client, ack) == b"ACK: Received 2 bytes"


# --- the factory and the key --------------------------------------------------


@pytest.mark.usefixtures("no_key_env")
def test_factory_uses_a_32_byte_key_file_as_the_psk(tmp_path: Path) -> None:
    key_file = tmp_path / "lab.psk"
    key_file.write_bytes(PSK)
    config = parse_server_args(["0", "--cipher", "noise", "--key-file", str(key_file)])
    factory = session_factory(config)
    assert factory.description == "noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)"
    client = NoiseSession(PSK, True, MIB)
    server = factory.new_session(initiator=False)
    (done,) = events(server, client.initial_bytes())
    assert isinstance(done, HandshakeComplete)


@pytest.mark.usefixtures("no_key_env")
def test_factory_derives_the_psk_from_a_passphrase_once() -> None:
    config = parse_client_args(
        ["h", "1", "--cipher", "noise", "--key", "correct horse battery staple"]
    )
    factory = session_factory(config)
    client = factory.new_session(initiator=True)
    server = NoiseSession(WALK_PSK, False, MIB)  # 8.1: Argon2id of that passphrase
    (done,) = events(server, client.initial_bytes())
    assert isinstance(done, HandshakeComplete)


@pytest.mark.usefixtures("no_key_env")
def test_xor_factory() -> None:
    factory = session_factory(parse_server_args(["0"]))
    assert factory.description == "xor"
    assert isinstance(factory.new_session(initiator=False), XorSession)


@pytest.mark.usefixtures("no_key_env")
def test_default_key_refused_in_noise_mode() -> None:
    with pytest.raises(UsageError, match="default key"):
        parse_server_args(["0", "--cipher", "noise"])


def test_session_sizes_agree_with_the_noise_module() -> None:
    from securemsg import noise, session

    assert session.NOISE_PROTOCOL == noise.PROTOCOL_NAME
    assert session.NOISE_HANDSHAKE_LEN == noise.HANDSHAKE_MESSAGE_LEN
    assert session.NOISE_MAX_TRANSPORT == noise.MAX_MESSAGE
    assert session.NOISE_CHUNK_DATA == noise.MAX_MESSAGE - noise.TAG_LEN - 1 == 65518
    assert session.NOISE_MIN_TRANSPORT == noise.TAG_LEN + 1
