"""The reference solutions of the handout's tasks, as the tests hand them in.

Written from PROTOCOL.md, not from the checks' code: the frames by the xor rule, the key
as the key stream's shortest period, the forged frame by XOR with (known ^ wanted). Tasks
1 and 6 record the real programs' output; tasks 7 and 8 reverse the planted-bug patches.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from securemsg_lab.tasks import procs
from securemsg_lab.tasks.workspace import REPO, read_frames
from securemsg_lab.wire import mitm

DEFAULT_KEY = b"MY_SECRET_KEY"


def xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data))


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def ack(n: int) -> bytes:
    return f"ACK: Received {n} bytes".encode()


def task1(answers: Path, message: str = "Hello from the handout") -> None:
    argv = procs.server_argv(REPO, procs.no_build_name(), [])
    with procs.TaskServer(argv) as server:
        client = procs.run(procs.client_argv(REPO, procs.no_build_name(), server.port, message, []))
    (answers / "task1.txt").write_text(server.output() + client.output)


def task2(answers: Path) -> None:
    message, key = b"Meet me at the lab", b"LAB_KEY"
    lines = [frame(xor(message, key)).hex(" "), frame(xor(ack(len(message)), key)).hex(" ")]
    (answers / "task2.hex").write_text("\n".join(lines) + "\n")


def task3(answers: Path, pcap_bytes: bytes, message: str) -> None:
    (answers / "task3.pcap").write_bytes(pcap_bytes)
    (answers / "task3.txt").write_text(message + "\n")


def shortest_period(data: bytes) -> int:
    return next(p for p in range(1, len(data) + 1)
                if all(data[i] == data[i + p] for i in range(len(data) - p)))


def recovered_key(work: Path) -> bytes:
    (_, message), (_, ack_frame) = read_frames(work / "challenge" / "task4.txt")
    stream = xor(ack_frame[4:], ack(len(message) - 4))  # xor with the known text
    return stream[: shortest_period(stream)]


def task4(work: Path) -> None:
    (work / "answers" / "task4.txt").write_text(recovered_key(work).decode() + "\n")


def forged_frame(work: Path) -> bytes:
    ((_, original),) = read_frames(work / "challenge" / "task5.txt")
    mask = xor(b"PAY 10 EUR TO ALICE", b"PAY 99 EUR TO CAROL")
    return original[:4] + xor(original[4:], mask)


def task5(work: Path) -> None:
    (work / "answers" / "task5.hex").write_text(forged_frame(work).hex(" ") + "\n")


def noise_tamper_transcript(tmp: Path, frame_index: int = 1) -> str:
    """A noise server's output while the mitm flips bits of one client frame."""
    psk = tmp / "lab.psk"
    psk.write_bytes(os.urandom(32))
    options = ["--cipher", "noise", "--key-file", str(psk)]
    mask = xor(b"PAY 10 EUR TO ALICE", b"PAY 99 EUR TO CAROL")
    with procs.TaskServer(procs.server_argv(REPO, procs.no_build_name(), options)) as server:
        proxy = mitm.MitmProxy((procs.LOOPBACK, server.port),
                               mitm.Tamper(mask, offset=1, frame_index=frame_index)).start()
        try:
            procs.run(procs.client_argv(REPO, procs.no_build_name(), proxy.address[1],
                                        "PAY 10 EUR TO ALICE", [*options, "--idle-timeout", "5"]),
                      timeout=20)
            proxy.wait_idle(timeout=10)
        finally:
            proxy.close()
    return server.output()


def task6(answers: Path, tmp: Path) -> None:
    (answers / "task6.txt").write_text(noise_tamper_transcript(tmp))


def fix_bug(work: Path, letter: str) -> None:
    """The reference fix: the planted-bug patch reversed."""
    result = procs.run(["patch", "-p1", "-R", "--batch", "--no-backup-if-mismatch",
                        "-d", str(work), "-i", str(procs.bugs()[letter].patch)])
    assert result.returncode == 0, result.output


def half_fix_nodelay(work: Path) -> None:
    """A wrong fix of bug A: TCP_NODELAY back on the client's socket, the two writes kept
    (the stall goes, two segments per ACK stay)."""
    server_c = work / procs.tree_of(procs.bugs()["A"].implementation) / "server.c"
    text = server_c.read_text()
    anchor = "    net_set_timeouts(fd, srv->cfg->idle_timeout);"
    assert text.count(anchor) == 1, "the planted bug's context moved: update this helper"
    server_c.write_text(text.replace(anchor, "    net_set_nodelay(fd);\n" + anchor))


def wrong_key_transcript(tmp: Path) -> str:
    """A noise server's output when the client's key file is not the server's."""
    server_key, client_key = tmp / "server.psk", tmp / "client.psk"
    server_key.write_bytes(os.urandom(32))
    client_key.write_bytes(os.urandom(32))
    name = procs.no_build_name()
    with procs.TaskServer(procs.server_argv(REPO, name, ["--cipher", "noise", "--key-file",
                                                      str(server_key)])) as server:
        procs.run(procs.client_argv(REPO, name, server.port, "PAY 10 EUR TO ALICE",
                                    ["--cipher", "noise", "--key-file", str(client_key),
                                     "--idle-timeout", "5"]), timeout=20)
        server.proc.out.wait_for("Client disconnected", timeout=10)
    return server.output()
