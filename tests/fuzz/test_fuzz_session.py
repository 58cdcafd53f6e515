"""The session layer and the Noise message parser (PROTOCOL.md 2, 3, 8) under fuzzing.

Whatever the bytes: a session yields messages or raises one of the protocol errors
the server turns into a documented [ERROR] line, never any other exception; tampered
ciphertext never decrypts to a different message.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from securemsg import noise
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.errors import HandshakeError, ProtocolError
from securemsg.framing import NEED_MORE, encode_frame
from securemsg.session import (
    HandshakeComplete,
    Message,
    NoiseSession,
    Session,
    XorSession,
)

from .fuzz_support import mutated, seeds
from .test_fuzz_framing import cut, read_sizes, reference

PSK = bytes(range(32))  # the key of the noise seeds in tests/fuzz/corpus
MAX_MESSAGE = 200000
XOR = XorCipher(DEFAULT_KEY)


def drain(session: Session, pieces: list[bytes]) -> list[object]:
    """Events for ``pieces``; a protocol error ends the list (as it ends a connection)."""
    events: list[object] = []
    try:
        for piece in pieces:
            session.feed(piece)
            while (event := session.next_event()) is not NEED_MORE:
                events.append(event)
    except ProtocolError as exc:
        events.append(exc)
    return events


def handshaken() -> tuple[NoiseSession, NoiseSession]:
    client = NoiseSession(PSK, True, MAX_MESSAGE)
    server = NoiseSession(PSK, False, MAX_MESSAGE)
    server.feed(client.initial_bytes())
    reply = server.next_event()
    assert isinstance(reply, HandshakeComplete)
    client.feed(reply.reply)
    assert isinstance(client.next_event(), HandshakeComplete)
    return client, server


# --- xor ---------------------------------------------------------------------------


@given(st.one_of(mutated(seeds()), st.binary(max_size=5000)), read_sizes)
def test_xor_session_decrypts_what_the_framing_reference_frames(
    data: bytes, sizes: list[int]
) -> None:
    events = drain(XorSession(XOR, 4096), cut(data, sizes))
    frames = reference(data, 4096)
    messages = [event.data for event in events if isinstance(event, Message)]
    assert messages == [XOR.apply(frame.payload) for frame in frames if hasattr(frame, "payload")]
    assert all(isinstance(event, Message | ProtocolError) for event in events)


@given(st.lists(st.binary(max_size=5000), max_size=5), read_sizes)
def test_xor_messages_round_trip(messages: list[bytes], sizes: list[int]) -> None:
    sender = XorSession(XOR, 1 << 20)
    wire = b"".join(sender.encode_message(message)[0] for message in messages)
    events = drain(XorSession(XOR, 1 << 20), cut(wire, sizes))
    assert [event.data for event in events] == messages  # type: ignore[attr-defined]


# --- noise -------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=150000), min_size=1, max_size=3), read_sizes)
def test_noise_messages_round_trip_in_any_reads(messages: list[bytes], sizes: list[int]) -> None:
    client, server = handshaken()
    wire = b"".join(client.encode_message(message)[0] for message in messages)
    events = drain(server, cut(wire, [size * 97 for size in sizes]))
    assert [event.data for event in events] == messages  # type: ignore[attr-defined]
    assert not server.in_message and server.frame_progress()[1] == 0


@given(st.one_of(mutated(seeds()), st.binary(max_size=3000)), read_sizes)
def test_noise_responder_on_any_bytes_raises_only_protocol_errors(
    data: bytes, sizes: list[int]
) -> None:
    events = drain(NoiseSession(PSK, False, MAX_MESSAGE), cut(data, sizes))
    assert all(isinstance(event, HandshakeComplete | Message | ProtocolError) for event in events)


@given(st.binary(max_size=3000), read_sizes)
def test_noise_transport_on_any_bytes_raises_only_protocol_errors(
    data: bytes, sizes: list[int]
) -> None:
    _client, server = handshaken()
    events = drain(server, cut(data, sizes))
    assert all(isinstance(event, ProtocolError) for event in events)  # no forgery decrypts


@given(st.binary(min_size=1, max_size=70000), st.data())
def test_tampered_ciphertext_never_yields_another_message(
    message: bytes, data: st.DataObject
) -> None:
    client, server = handshaken()
    wire = bytearray(client.encode_message(message)[0])
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] ^= data.draw(st.integers(1, 255))
    events = drain(server, [bytes(wire)])
    assert not any(isinstance(event, Message) for event in events)


# --- the Noise message parser --------------------------------------------------------


@given(st.one_of(st.binary(max_size=200), st.binary(min_size=48, max_size=48)))
def test_handshake_message_parser_rejects_garbage_with_handshake_error(message: bytes) -> None:
    responder = noise.HandshakeState(noise.PROTOCOL_NAME, False, noise.PROLOGUE, psk=PSK)
    try:
        responder.read_message(message)
    except HandshakeError:
        return
    raise AssertionError("a random handshake message was accepted")


@given(st.integers(0, 47), st.integers(1, 255))
def test_any_flipped_bit_of_a_real_message_1_is_rejected(position: int, flip: int) -> None:
    initiator = noise.HandshakeState(noise.PROTOCOL_NAME, True, noise.PROLOGUE, psk=PSK)
    message = bytearray(initiator.write_message(b""))
    message[position] ^= flip
    responder = noise.HandshakeState(noise.PROTOCOL_NAME, False, noise.PROLOGUE, psk=PSK)
    try:
        responder.read_message(bytes(message))
    except HandshakeError:
        return
    raise AssertionError(f"message 1 with byte {position} changed was accepted")


def test_the_committed_noise_seed_is_a_valid_message_1() -> None:
    seed = next(s for s in seeds() if len(s) == 52 and any(s[4:]))
    server = NoiseSession(PSK, False, MAX_MESSAGE)
    server.feed(seed)
    assert isinstance(server.next_event(), HandshakeComplete)
    assert encode_frame(seed[4:]) == seed
