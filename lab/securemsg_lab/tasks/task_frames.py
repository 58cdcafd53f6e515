"""Tasks 2, 4 and 5: bytes on the wire by hand, the key from an ACK, a forged frame."""

from __future__ import annotations

import re

from ..wire import attack
from ..wire.protocol import ack_text as ack_str
from ..wire.protocol import frame, xor
from .common import first_difference, parse_hex_lines, raw_exchange, recv_lines, reference_server
from .result import Fail
from .workspace import TASK5_TARGET, Workspace

TASK2_MESSAGE = b"Meet me at the lab"
TASK2_KEY = b"LAB_KEY"
ACK_PATTERN = re.compile(rb"ACK: Received (\d+) bytes")


def ack_text(length: int) -> bytes:
    return ack_str(length).encode()


def task2_expected() -> list[bytes]:
    return [frame(xor(TASK2_MESSAGE, TASK2_KEY)),
            frame(xor(ack_text(len(TASK2_MESSAGE)), TASK2_KEY))]


def common_mistakes(frames: list[bytes], want: list[bytes]) -> None:
    """The mistakes whose first wrong byte would point the generic hint the wrong way."""
    if frames == want[::-1] or (frames[0] == want[1] and frames[1] != want[1]):
        raise Fail("line 1 holds the ACK frame: the lines are swapped",
                   "line 1: the client's frame (the message); line 2: the server's ACK")
    said = ACK_PATTERN.fullmatch(xor(frames[1][4:], TASK2_KEY))
    if said and frames[1][:4] == len(said.group(0)).to_bytes(4, "big") and (
            int(said.group(1)) != len(TASK2_MESSAGE)):
        raise Fail(f"line 2 (ACK frame) decrypts to {said.group(0).decode()!r}: "
                   "the right form, the wrong N",
                   "N is the length the server received: the client frame's length "
                   "prefix (PROTOCOL.md section 3)")


def compare_frame(what: str, got: bytes, want: bytes, plaintext: bytes) -> None:
    """Fail with a hint aimed at the first part of `got` that is wrong."""
    if got == want:
        return
    if got[:4] != want[:4]:
        raise Fail(f"{what}: the length prefix {got[:4].hex(' ')} is wrong",
                   "4 bytes, big-endian, counting the payload only (PROTOCOL.md section 1)")
    if len(got) != len(want):
        raise Fail(f"{what}: {len(got) - 4} payload bytes after the prefix, "
                   f"but the prefix says {len(want) - 4}",
                   "one payload byte per plaintext byte")
    i = first_difference(got[4:], want[4:])
    raise Fail(f"{what}: payload byte {i} (plaintext {chr(plaintext[i])!r}) is wrong",
               "which key byte encrypts plaintext byte i? The key restarts at its first "
               "byte in every frame and wraps around (PROTOCOL.md section 2)")


def check_task2(ws: Workspace) -> str:
    frames = parse_hex_lines(ws.answer("task2.hex"))
    if len(frames) != 2:
        raise Fail(f"task2.hex holds {len(frames)} frames, expected 2",
                   "line 1: the client's frame; line 2: the server's ACK frame")
    want = task2_expected()
    common_mistakes(frames, want)
    with reference_server(["--key", TASK2_KEY.decode()]) as server:
        raw_exchange(server, frames[0])
        printed = recv_lines(server.output())
    seen = f"a real server (key {TASK2_KEY.decode()}) printed: " + (
        f"[RECV] Plaintext: {printed[0]}" if printed else "no message (it rejected the frame)")
    try:
        compare_frame("line 1 (client frame)", frames[0], want[0], TASK2_MESSAGE)
    except Fail as failure:
        failure.details.append(seen)
        raise
    compare_frame("line 2 (ACK frame)", frames[1], want[1], ack_text(len(TASK2_MESSAGE)))
    return f"both frames are right; {seen}"


def read_key(text: str) -> bytes:
    """The key as text, or as hex after `hex:`: the first line that is not empty, as
    written (only its line ending removed). A blank around the key is a key byte too."""
    line = next((ln.rstrip("\r\n") for ln in text.splitlines() if ln.strip()), "")
    if line.lower().startswith("hex:"):
        try:
            return bytes.fromhex(line[4:])
        except ValueError as exc:
            raise Fail("task4.txt: not hex after 'hex:'", "e.g. hex:4d595f") from exc
    return line.encode()


def check_task4(ws: Workspace) -> str:
    (_, message_frame), (_, ack_frame) = ws.challenge("task4.txt")
    message_len = len(message_frame) - 4
    stream = attack.keystream(ack_frame[4:], ack_text(message_len))
    key = attack.recover_key([stream]).key
    assert key is not None
    got = read_key(ws.answer("task4.txt").read_text(errors="replace"))
    if not got:
        raise Fail("task4.txt is empty", "write the key on the first line")
    if got != key and got.strip() == key:
        raise Fail(f"your key line {got.decode(errors='replace')!r} has a blank before or "
                   "after the key", "a space is a key byte too: write the key alone on "
                   "the first line, nothing before or after it")
    if got == key:
        plain = xor(message_frame[4:], got)
        return f"key recovered; the message reads: {plain[:60].decode(errors='replace')}..."
    decrypted = xor(ack_frame[4:], got)
    if decrypted == ack_text(message_len):
        raise Fail("your key decrypts the ACK, but it is longer than the key",
                   "the key repeats: what is the shortest period of the key stream?")
    good = first_difference(decrypted, ack_text(message_len))
    raise Fail(f"with your key the ACK reads {decrypted.decode(errors='replace')!r}",
               f"the first {good} bytes come out right. What must the ACK say, given the "
               "client frame's length? Plaintext XOR ciphertext gives the key stream")


def check_task5(ws: Workspace) -> str:
    ((_, original),) = ws.challenge("task5.txt")
    key = bytes.fromhex(ws.state()["task5_key"])
    frames = parse_hex_lines(ws.answer("task5.hex"))
    if len(frames) != 1:
        raise Fail(f"task5.hex holds {len(frames)} frames, expected 1",
                   "one line: the whole altered frame, length prefix included")
    forged = frames[0]
    if forged == original:
        raise Fail("that is the captured frame unchanged", "flip the bits that turn 10 into "
                   "99 and ALICE into CAROL: XOR with (known plaintext XOR wanted plaintext)")
    if forged[:4] != original[:4]:
        raise Fail("the length prefix changed", "the forged text has the original's length: "
                   "keep the first 4 bytes as they are")
    if len(forged) != len(original):
        said = int.from_bytes(forged[:4], "big")
        raise Fail(f"task5.hex holds {len(forged)} bytes, but its length prefix says "
                   f"4 + {said} = {4 + said}",
                   "one frame exactly: a byte more would be the start of a next frame "
                   "(check the end of your line), a byte less leaves the frame unfinished")
    with reference_server(["--key", key.decode()]) as server:
        reply = raw_exchange(server, forged)
        printed = recv_lines(server.output())
    shown = printed[0] if printed else "(nothing)"
    if printed != [TASK5_TARGET.decode()]:
        raise Fail(f"the server printed: [RECV] Plaintext: {shown}",
                   "no key needed: ciphertext XOR (known XOR wanted) is the encryption of "
                   "wanted. Bytes where both texts agree stay as they are")
    acked = xor(reply or b"", key) == ack_text(len(TASK5_TARGET))
    return (f"the server printed [RECV] Plaintext: {shown}"
            + (" and ACKed it" if acked else ""))
