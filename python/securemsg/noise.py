"""Noise Protocol Framework (revision 34) state machine for securemsg's secure mode.

Only what PROTOCOL.md section 8 needs: the patterns NN and NNpsk0 with the cipher
suite 25519 / ChaChaPoly / SHA256. The primitives come from pyca `cryptography`
(X25519, ChaCha20-Poly1305, SHA-256, HMAC) and, for the passphrase PSK, PyNaCl's
Argon2id (libsodium, the same code as the C side). Only the state machine is ours:
CipherState, SymmetricState and HandshakeState, named and ordered as in the
specification's section 5 so the two can be read side by side. c/noise.c mirrors it.

Uses only APIs present in cryptography 38 (Debian 12's python3-cryptography).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import DecryptError, HandshakeError, SecureMsgError

PROTOCOL_NAME = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE = b"securemsg-noise-v1"
MAX_MESSAGE = 65535  # any Noise message, handshake or transport (spec section 3)
TAG_LEN = 16
MAX_PLAINTEXT = MAX_MESSAGE - TAG_LEN  # 65519
DH_LEN = 32
HASH_LEN = 32
KEY_LEN = 32
PSK_LEN = 32
HANDSHAKE_MESSAGE_LEN = DH_LEN + TAG_LEN  # our two messages: e (+ ee), empty payload

# Spec section 5.1: nonce 2^64-1 is reserved, so the last usable nonce is 2^64-2.
MAX_NONCE = 2**64 - 1

PSK_SALT = b"securemsg-noise1"
PSK_OPSLIMIT = 2
PSK_MEMLIMIT = 67108864  # bytes (64 MiB)

# Message patterns (spec section 7): tokens per message, initiator sends first.
_PATTERNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "NN": (("e",), ("e", "ee")),
    "NNpsk0": (("psk", "e"), ("e", "ee")),
}
_SUITE = "_25519_ChaChaPoly_SHA256"


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf(chaining_key: bytes, input_key_material: bytes, num_outputs: int) -> list[bytes]:
    """Noise's HKDF (spec section 4.3): HMAC-SHA256 chained, 2 or 3 outputs."""
    temp_key = _hmac(chaining_key, input_key_material)
    outputs: list[bytes] = []
    previous = b""
    for counter in range(1, num_outputs + 1):
        previous = _hmac(temp_key, previous + bytes([counter]))
        outputs.append(previous)
    return outputs


def _nonce(n: int) -> bytes:
    # ChaChaPoly (spec section 12.3): 32 bits of zeros, then the counter little-endian.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


#: PROTOCOL.md 8: the one reason given for any handshake that does not authenticate
AUTH_FAILED = "authentication failed (wrong key, tampered message or other cipher)"


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # a low-order point gives an all-zero secret: refused,
        # in the words c/noise.c uses for every handshake that fails to authenticate
        raise HandshakeError(AUTH_FAILED) from exc


class CipherState:
    """A key and a nonce counter (spec section 5.1)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._aead: ChaCha20Poly1305 | None = None
        self._n = 0
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        self._aead = None if key is None else ChaCha20Poly1305(key)
        self._n = 0

    def has_key(self) -> bool:
        return self._aead is not None

    def set_nonce(self, nonce: int) -> None:
        """Spec's SetNonce; tests use it to reach the reserved nonce."""
        if not 0 <= nonce <= MAX_NONCE:
            raise ValueError(f"nonce out of range: {nonce}")
        self._n = nonce

    @property
    def nonce(self) -> int:
        return self._n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return plaintext
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"plaintext too long: {len(plaintext)} bytes (limit {MAX_PLAINTEXT})")
        if self._n >= MAX_NONCE:
            raise SecureMsgError("nonce exhausted: this connection must end")
        ciphertext = self._aead.encrypt(_nonce(self._n), plaintext, ad)
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt; on failure the nonce stays where it was."""
        if self._aead is None:
            return ciphertext
        if not TAG_LEN <= len(ciphertext) <= MAX_MESSAGE:
            raise DecryptError(f"bad length {len(ciphertext)} (a Noise message is 16..65535 bytes)")
        if self._n >= MAX_NONCE:
            raise DecryptError("nonce exhausted")
        try:
            plaintext = self._aead.decrypt(_nonce(self._n), ciphertext, ad)
        except InvalidTag:
            raise DecryptError("authentication failed") from None
        self._n += 1
        return plaintext


class SymmetricState:
    """The chaining key and handshake hash (spec section 5.2)."""

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASH_LEN:
            self.h = protocol_name.ljust(HASH_LEN, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, input_key_material, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        self.ck, temp_h, temp_k = _hkdf(self.ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        temp_k1, temp_k2 = _hkdf(self.ck, b"", 2)
        return CipherState(temp_k1), CipherState(temp_k2)


class HandshakeState:
    """One side of a handshake (spec section 5.3), for NN or NNpsk0.

    `ephemeral` injects the 32-byte ephemeral private key; only test vectors use it.
    Any failure aborts the handshake: every later call raises HandshakeError.
    """

    def __init__(
        self,
        protocol_name: str,
        initiator: bool,
        prologue: bytes,
        psk: bytes | None = None,
        ephemeral: bytes | None = None,
    ) -> None:
        pattern = _pattern_of(protocol_name)
        self._psk_mode = "psk" in pattern[0]
        if self._psk_mode and (psk is None or len(psk) != PSK_LEN):
            raise ValueError(f"{protocol_name} needs a {PSK_LEN}-byte psk")
        if not self._psk_mode and psk is not None:
            raise ValueError(f"{protocol_name} takes no psk")
        if ephemeral is not None and len(ephemeral) != DH_LEN:
            raise ValueError(f"ephemeral key must be {DH_LEN} bytes")
        self._messages = pattern
        self._initiator = initiator
        self._psk = psk
        self._e = None if ephemeral is None else X25519PrivateKey.from_private_bytes(ephemeral)
        self._re: bytes | None = None
        self._index = 0  # next message pattern to process
        self._failed = False
        self._split_done = False
        self._symmetric = SymmetricState(protocol_name.encode("ascii"))
        self._symmetric.mix_hash(prologue)  # NN has no pre-messages

    @property
    def complete(self) -> bool:
        return self._index == len(self._messages)

    @property
    def handshake_hash(self) -> bytes:
        """The channel binding value h; final once `complete` is true."""
        return self._symmetric.h

    def write_message(self, payload: bytes) -> bytes:
        steps = self._next_steps(sending=True)
        with self._abort_on_error():
            message = b"".join(self._write_step(step) for step in steps)
            message += self._symmetric.encrypt_and_hash(payload)
            _check_length(message)
        self._index += 1
        return message

    def read_message(self, message: bytes) -> bytes:
        steps = self._next_steps(sending=False)
        with self._abort_on_error():
            _check_length(message)
            rest = memoryview(message)
            for step in steps:
                rest = self._read_step(step, rest)
            payload = self._decrypt_payload(bytes(rest))
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, recv) for this side. Once only: a second pair would reuse nonces."""
        if not self.complete or self._failed:
            raise HandshakeError("handshake not complete")
        if self._split_done:
            raise HandshakeError("split() already called")
        self._split_done = True
        initiator_to_responder, responder_to_initiator = self._symmetric.split()
        if self._initiator:
            return initiator_to_responder, responder_to_initiator
        return responder_to_initiator, initiator_to_responder

    @contextmanager
    def _abort_on_error(self) -> Iterator[None]:
        """Spec section 5.3: after any error the handshake is dead."""
        try:
            yield
        except BaseException:
            self._failed = True
            raise

    def _decrypt_payload(self, ciphertext: bytes) -> bytes:
        if self._symmetric.cipher.has_key() and len(ciphertext) < TAG_LEN:
            raise HandshakeError("message too short")
        try:
            return self._symmetric.decrypt_and_hash(ciphertext)
        except DecryptError:
            raise HandshakeError(AUTH_FAILED) from None

    # Each step is one token of the message pattern (spec section 7): "e", "ee", "psk".
    def _next_steps(self, sending: bool) -> tuple[str, ...]:
        if self._failed:
            raise HandshakeError("handshake already failed")
        if self.complete:
            raise HandshakeError("handshake already complete")
        initiator_turn = self._index % 2 == 0
        if sending != (initiator_turn == self._initiator):
            raise HandshakeError("out of turn: it is the peer's turn to send")
        return self._messages[self._index]

    def _write_step(self, step: str) -> bytes:
        if step == "e":
            if self._e is None:
                self._e = X25519PrivateKey.generate()
            public = _public_bytes(self._e)
            self._mix_ephemeral(public)
            return public
        self._mix_other(step)
        return b""

    def _read_step(self, step: str, rest: memoryview) -> memoryview:
        if step == "e":
            if len(rest) < DH_LEN:
                raise HandshakeError(f"message too short for an ephemeral key: {len(rest)}")
            self._re = bytes(rest[:DH_LEN])
            self._mix_ephemeral(self._re)
            return rest[DH_LEN:]
        self._mix_other(step)
        return rest

    def _mix_ephemeral(self, public: bytes) -> None:
        self._symmetric.mix_hash(public)
        if self._psk_mode:  # spec section 9.2: e also feeds the key in psk handshakes
            self._symmetric.mix_key(public)

    def _mix_other(self, step: str) -> None:
        if step == "ee":
            if self._e is None or self._re is None:
                raise HandshakeError("ee before both ephemerals are known")
            self._symmetric.mix_key(_dh(self._e, self._re))
        elif step == "psk":
            assert self._psk is not None  # checked in __init__
            self._symmetric.mix_key_and_hash(self._psk)
        else:
            raise HandshakeError(f"unsupported token {step!r}")


def _check_length(message: bytes) -> None:
    if len(message) > MAX_MESSAGE:
        raise HandshakeError(f"message too long: {len(message)} bytes (limit {MAX_MESSAGE})")


def _pattern_of(protocol_name: str) -> tuple[tuple[str, ...], ...]:
    prefix = "Noise_"
    if protocol_name.startswith(prefix) and protocol_name.endswith(_SUITE):
        pattern = _PATTERNS.get(protocol_name[len(prefix) : -len(_SUITE)])
        if pattern is not None:
            return pattern
    raise ValueError(f"unsupported protocol: {protocol_name}")


def psk_from_passphrase(passphrase: bytes) -> bytes:
    """The 32-byte PSK from a passphrase: Argon2id v1.3, parameters of PROTOCOL.md section 8.

    PyNaCl is imported here so that a 32-byte key file needs no PyNaCl.
    """
    import nacl.exceptions
    import nacl.pwhash

    try:
        return nacl.pwhash.argon2id.kdf(
            PSK_LEN, passphrase, PSK_SALT, opslimit=PSK_OPSLIMIT, memlimit=PSK_MEMLIMIT
        )
    except nacl.exceptions.CryptoError as exc:  # e.g. the 64 MiB could not be allocated
        raise SecureMsgError(f"Argon2id failed: {exc}") from exc
