"""The attacker's side: key recovery from a known-plaintext ACK, and bit flipping.

Everything here works on captured bytes only. Pure functions, unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import ack_payload, looks_like_words, xor


def keystream(ciphertext: bytes, known_plaintext: bytes) -> bytes:
    """ciphertext XOR plaintext = the key bytes that encrypted it (as far as both reach)."""
    n = min(len(ciphertext), len(known_plaintext))
    return bytes(c ^ p for c, p in zip(ciphertext[:n], known_plaintext[:n], strict=True))


def has_period(data: bytes, period: int) -> bool:
    return all(data[i] == data[i + period] for i in range(len(data) - period))


def smallest_period(data: bytes) -> int:
    """The shortest p such that data[i] == data[i + p] wherever both exist (len(data) if none)."""
    for period in range(1, len(data)):
        if has_period(data, period):
            return period
    return len(data)


def merge_keystreams(streams: list[bytes]) -> bytes | None:
    """Every frame restarts at key[0]: the streams must agree; return the longest, or None."""
    longest = max(streams, key=len, default=b"")
    for stream in streams:
        if longest[: len(stream)] != stream:
            return None
    return longest


@dataclass
class KeyRecovery:
    """What the keystream tells about the key, with how sure we can be."""

    keystream: bytes
    period: int
    key: bytes | None  # None: no repeating key found
    certain: bool
    alternatives: list[int] = field(default_factory=list)
    reason: str = ""

    @property
    def partial(self) -> bool:
        """The keystream never repeated: only its first len(keystream) bytes are known."""
        return self.key is not None and self.period == len(self.keystream)


def recover_key(streams: list[bytes]) -> KeyRecovery:
    """Find the key from keystreams that each start at key[0].

    The key length is the keystream's period. Seeing it repeat once is not proof: with L
    bytes of keystream, a period p is certain (Fine and Wilf) only when L >= 2p; below that,
    a longer key whose first L bytes happen to look periodic would produce the same bytes.
    """
    merged = merge_keystreams(streams)
    if merged is None:
        return KeyRecovery(b"", 0, None, False, reason="the frames disagree on the key stream")
    if not merged:
        return KeyRecovery(b"", 0, None, False, reason="no known plaintext in the capture")
    length = len(merged)
    period = smallest_period(merged)
    if period == length:
        reason = f"no repetition in {length} bytes of key stream"
        return KeyRecovery(merged, period, merged, False, reason=reason)
    alternatives = [p for p in range(period + 1, length) if has_period(merged, p)]
    certain = length >= 2 * period
    if certain:
        reason = f"{length} bytes of key stream >= 2 x {period}: the period is certain"
    else:
        reason = (
            f"only {length} bytes of key stream, fewer than 2 x {period} = {2 * period}: "
            f"a key of length {period} fits, but so would any key of {length}+ bytes "
            "that starts like this one"
        )
    return KeyRecovery(merged, period, merged[:period], certain, alternatives, reason)


MAX_MESSAGE = 1 << 30  # the largest --max-frame (PROTOCOL.md section 5)


def smallest_message_for(keystream_len: int) -> int | None:
    """The smallest message whose ACK reveals `keystream_len` key bytes (None: no ACK can)."""
    digits = max(1, keystream_len - len(ack_payload(0)) + 1)
    smallest = 10 ** (digits - 1) if digits > 1 else 0
    return smallest if smallest <= MAX_MESSAGE else None


@dataclass
class AckPair:
    """A client frame and the server frame that answered it."""

    message: bytes
    ack: bytes

    @property
    def expected_ack(self) -> bytes:
        return ack_payload(len(self.message))

    @property
    def lengths_match(self) -> bool:
        return len(self.ack) == len(self.expected_ack)


def pair_frames(to_server: list[bytes], to_client: list[bytes]) -> list[AckPair]:
    """Frame i from the server answers frame i from the client (PROTOCOL.md section 3)."""
    return [AckPair(m, a) for m, a in zip(to_server, to_client, strict=False)]


def attack(pairs: list[AckPair]) -> KeyRecovery:
    """Known-plaintext attack: each ACK is "ACK: Received N bytes" XOR key, N = len(message)."""
    usable = [p for p in pairs if p.lengths_match]
    if usable:
        return recover_key([keystream(p.ack, p.expected_ack) for p in usable])
    if not pairs:
        return KeyRecovery(b"", 0, None, False, reason="no request/answer pair in the capture")
    # Not one answer has an XOR-ed ACK's length. Still try: with a repeating key, every
    # answer would start with the same key stream.
    streams = [keystream(p.ack, p.expected_ack) for p in pairs]
    merged = merge_keystreams(streams)
    why = "no server frame has the length of an XOR-ed ACK"
    if merged is None or len(streams) < 2:
        why += ", and the answers do not even start with a common key stream"
    return KeyRecovery(merged or b"", 0, None, False, reason=why)


def looks_like_text(frames: list[bytes], key: bytes, threshold: float = 0.75) -> bool:
    """Cross-check a candidate key: do the other frames decrypt to readable text?

    Readable: no control bytes, and mostly letters, digits and spaces (XOR of two
    letters lands in punctuation or control codes, so a wrong key rarely passes).
    """
    return all(looks_like_words(xor(frame, key), threshold) for frame in frames)


def flip_delta(known: bytes, wanted: bytes) -> bytes:
    """The XOR mask that turns the encryption of `known` into the encryption of `wanted`.

    (P xor K) xor (P xor P') = P' xor K: no key needed, only a guess of the plaintext.
    """
    if len(known) != len(wanted):
        raise ValueError("the forged text must have the length of the original")
    return bytes(a ^ b for a, b in zip(known, wanted, strict=True))


def apply_delta(payload: bytes, delta: bytes, offset: int = 0) -> bytes:
    """XOR `delta` into `payload` at `offset` (bytes past the payload's end are ignored)."""
    out = bytearray(payload)
    for i, d in enumerate(delta):
        if offset + i < len(out):
            out[offset + i] ^= d
    return bytes(out)
