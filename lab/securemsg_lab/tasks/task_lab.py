"""Tasks 1 and 6: the programs talk (locally, or the Docker lab); secure mode refuses a
tampered frame."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path

from ..wire import attack, mitm
from ..wire.protocol import ack_text, cipher_line
from . import procs
from .common import recv_lines
from .result import Fail
from .workspace import REPO, TASK5_MESSAGE, TASK5_TARGET, Workspace

SEND_LINE = re.compile(r"\[SEND\] Encrypted bytes: (\d+) bytes")
ACK_LINE = re.compile(r"\[RECV\] ACK: Received (\d+) bytes")
#: the Docker lab's xor servers on the host (compose.yaml), overridable as there
LAB_PORTS = (("C", "SECUREMSG_C_PORT", 5000), ("Python", "SECUREMSG_PYTHON_PORT", 5001))
DECRYPT_FAILED = re.compile(r"\[ERROR\] Decryption failed from \S+: authentication failed")
HANDSHAKE_FAILED = re.compile(r"\[ERROR\] Handshake failed with \S+: authentication failed")


def exchange(server_lang: str, client_lang: str, message: str) -> tuple[procs.Run, str]:
    """One client run against a fresh local server: (client run, server output)."""
    with procs.TaskServer(procs.server_argv(REPO, server_lang, [])) as server:
        client = procs.run(procs.client_argv(REPO, client_lang, server.port, message,
                                             ["--idle-timeout", "5"]), timeout=20)
    return client, server.output()


def recorded(path: Path) -> tuple[str, int]:
    """(message, N) of one exchange in the student's recorded output: a server's
    `[RECV] Plaintext: M` and a client's `[SEND] Encrypted bytes: N` and `[RECV] ACK:
    Received N` with N the length of M (a lab log holds several exchanges)."""
    text = path.read_text(errors="replace")
    messages = recv_lines(text)
    sends, acks = SEND_LINE.findall(text), ACK_LINE.findall(text)
    if not messages:
        raise Fail("task1.txt has no server line '[RECV] Plaintext: ...'",
                   "record the server's output as well as the client's")
    if not sends or not acks:
        raise Fail("task1.txt has no client lines '[SEND] Encrypted bytes' / "
                   "'[RECV] ACK: Received'", "record the client's output too")
    for message in messages:
        size = str(len(message.encode()))
        if "\\" not in message and size in sends and size in acks:
            return message, int(size)
    raise Fail(f"no client lines for the message {messages[0]!r} "
               f"({len(messages[0].encode())} bytes): the client says {acks[0]} bytes",
               "record one exchange: the server's lines and the client's lines of the "
               "same message, in xor mode")


def lab_status() -> list[str]:
    """What answers on the Docker lab's published xor ports. Reported, never a failure:
    the task is the recorded exchange, and a leftover server of the student's (another
    key, another cipher) may hold those ports."""
    if os.environ.get("SECUREMSG_HANDOUT_LAB", "1") == "0":
        return ["Docker lab not probed (SECUREMSG_HANDOUT_LAB=0)"]
    lines = []
    probe = "handout check"
    for name, variable, default in LAB_PORTS:
        port = int(os.environ.get(variable, default))
        try:
            socket.create_connection((procs.LOOPBACK, port), timeout=1).close()
        except OSError:
            lines.append(f"nothing listens on 127.0.0.1:{port} (the lab's {name} server)")
            continue
        client = procs.run(procs.client_argv(REPO, procs.no_build_name(), port, probe,
                                             ["--idle-timeout", "5"]), timeout=20)
        if f"[RECV] {ack_text(len(probe))}" in client.stdout:
            lines.append(f"the Docker lab's {name} server on 127.0.0.1:{port} answered")
        else:
            lines.append(f"note: something on 127.0.0.1:{port} does not answer like the lab's "
                         f"{name} server (a leftover server of yours, another key?); not "
                         "part of this task (SECUREMSG_HANDOUT_LAB=0 skips this look)")
    return lines


def check_task1(ws: Workspace) -> str:
    message, size = recorded(ws.answer("task1.txt"))
    details = lab_status()
    langs = procs.built_names()
    for lang in langs:
        client, server_out = exchange(langs[0], lang, message)
        got = (SEND_LINE.findall(client.stdout), ACK_LINE.findall(client.stdout))
        if client.returncode != 0 or got != ([str(size)], [str(size)]):
            raise Fail(f"the {lang} client, sending {message!r} again, printed something "
                       f"else: {client.output.strip()[-160:]!r}",
                       "record the output of the programs themselves, in xor mode",
                       details)
        if recv_lines(server_out) != [message]:
            raise Fail("a local server printed the message differently",
                       "copy the server's lines as printed", details)
    details.append(f"the same message through local programs ({', '.join(langs)} clients) "
                   "prints the lines you recorded")
    return "\n  ".join(["your recorded exchange matches the programs", *details])


def live_refusal() -> list[str]:
    """Flip bits of a noise message in flight; the server must refuse it."""
    built = procs.built_names()
    lang = next((name for name in built if name != procs.no_build_name()), built[0])
    delta = attack.flip_delta(TASK5_MESSAGE, TASK5_TARGET)
    with tempfile.TemporaryDirectory(prefix="handout-") as tmp:
        psk = Path(tmp) / "lab.psk"
        psk.write_bytes(os.urandom(32))
        options = ["--cipher", "noise", "--key-file", str(psk)]
        with procs.TaskServer(procs.server_argv(REPO, lang, options)) as server:
            # frame 0 is the handshake; in frame 1 the first plaintext byte is the marker
            tamper = mitm.Tamper(delta, offset=1, frame_index=1)
            proxy = mitm.MitmProxy((procs.LOOPBACK, server.port), tamper).start()
            try:
                client = procs.run(procs.client_argv(REPO, procs.no_build_name(),
                                                     proxy.address[1],
                                                     TASK5_MESSAGE.decode(),
                                                     [*options, "--idle-timeout", "5"]),
                                   timeout=20)
                proxy.wait_idle(timeout=10)
            finally:
                proxy.close()
        out = server.output()
    altered = any(conn.altered for conn in proxy.connections)
    refused = DECRYPT_FAILED.search(out)
    if not altered or refused is None or recv_lines(out) or client.returncode != 1:
        raise Fail(f"the {lang} noise server did not refuse a tampered frame as documented",
                   "this is the lab's fault, not yours: tell your instructor",
                   out.strip().splitlines()[-4:])
    return [f"live: the {lang} noise server refused a tampered frame: {refused.group(0)}"]


def check_task6(ws: Workspace) -> str:
    text = ws.answer("task6.txt").read_text(errors="replace")
    if cipher_line("noise") not in text:
        raise Fail("task6.txt is not a secure-mode server's output (no 'Cipher: noise' line)",
                   "start the server with --cipher noise and record its output, standard "
                   "error included (2>&1)")
    if TASK5_TARGET.decode() in text:
        raise Fail("the server printed the forged text?", "did the client talk to an xor "
                   "server? Both ends need --cipher noise")
    if not DECRYPT_FAILED.search(text):
        hint = ("the server saw no altered message: relay the client through the mitm "
                "with your mask, at the message's frame (not the handshake)")
        if HANDSHAKE_FAILED.search(text):
            hint = ("the handshake failed, so no message was ever decrypted. Either the "
                    "client's key is not the server's (both need --key-file "
                    "handout/work/lab.psk, the same file), or the relay altered the "
                    "handshake (frame 0) instead of the message, the first frame after it")
        raise Fail("task6.txt has no '[ERROR] Decryption failed from PEER: authentication "
                   "failed' line", hint)
    details = live_refusal()
    return "\n  ".join(["your server refused the tampered message", *details])
