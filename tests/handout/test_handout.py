"""Every handout check against the reference solution (PASS) and a wrong answer or the
planted-bug variant (FAIL). Loopback only; every process is the checks' own or ours."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from securemsg_lab.tasks import procs
from securemsg_lab.tasks.cli import run_check
from securemsg_lab.tasks.result import Fail, Result
from securemsg_lab.tasks.workspace import REPO, Workspace, start

from . import handout_solutions as sol
from .handout_pcap import connection_pcap

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace as `make handout-start` makes it: both bugs planted, no answers."""
    work = tmp_path_factory.mktemp("handout") / "work"
    start(work, seed=7)
    return work


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the reference fixes and every reference answer."""
    work = tmp_path_factory.mktemp("handout") / "work"
    start(work, seed=11)
    for bug in ("A-split-write", "B-empty-ack"):
        sol.fix_bug(work, bug)
    return work


@pytest.fixture
def ws(tmp_path: Path, planted: Path) -> Workspace:
    """A fresh answers directory beside the planted workspace's challenges."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("challenge", ".state.json"):
        src = planted / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "answers").mkdir()
    return Workspace(work)


@pytest.fixture(autouse=True)
def no_lab_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task 1 leaves ports 5000/5001 alone unless a test points it at its own server."""
    monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "0")


def check(task: int, ws: Workspace) -> Result:
    result = run_check(task, ws)
    print(result.render())
    return result


def test_start_copies_and_plants(planted: Path) -> None:
    assert "net_write_all(c->fd, out, 4)" in (planted / "c" / "server.c").read_text()
    assert "Message) and event.data" in (planted / "python/securemsg/server.py").read_text()
    assert not (planted / "c" / "build").exists()
    assert sorted(p.name for p in (planted / "challenge").iterdir()) == ["task4.txt",
                                                                          "task5.txt"]


def test_workspace_programs_are_registry_entries(planted: Path) -> None:
    """The checks and the matrix run the workspace's copies, not the reference."""
    c_impl, py_impl = (procs.implementation(planted, lang) for lang in ("c", "python"))
    assert (c_impl.name, py_impl.name) == ("c-work", "python-work")
    assert c_impl.program("server") == [str(planted / "c" / "server")]
    assert str(planted / "python" / "server.py") in py_impl.program("server")
    assert procs.implementation(REPO, "c").program("server") == [str(REPO / "c" / "server")]


def test_start_keeps_an_existing_workspace(planted: Path) -> None:
    marker = planted / "answers" / "keep.txt"
    marker.write_text("mine")
    assert "already exists" in start(planted)[0]
    assert marker.read_text() == "mine"
    marker.unlink()


def test_missing_answer_fails_with_a_hint(ws: Workspace) -> None:
    result = check(2, ws)
    assert not result.passed and "task2.hex" in result.hint


def test_task1_pass(ws: Workspace) -> None:
    sol.task1(ws.answers)
    assert check(1, ws).passed


def test_task1_fail_on_a_made_up_record(ws: Workspace) -> None:
    sol.task1(ws.answers)
    path = ws.answers / "task1.txt"
    path.write_text(path.read_text().replace("Received 22 bytes", "Received 23 bytes"))
    result = check(1, ws)
    assert not result.passed and "23 bytes" in result.why


LAB_LOG = """\
server-c_1        | [INFO] Listening on 0.0.0.0:5000
server-c_1        | [INFO] Client connected: 172.18.0.6:41862
server-c_1        | [RECV] Plaintext: Hello from Python
server-c_1        | [SEND] ACK sent to client
server-c_1        | [RECV] Plaintext: Hello from C
client-c-to-c_1   | [SEND] Encrypted bytes: 12 bytes
client-c-to-c_1   | [RECV] ACK: Received 12 bytes
"""


def test_task1_pass_with_a_lab_log(ws: Workspace) -> None:
    (ws.answers / "task1.txt").write_text(LAB_LOG)
    result = check(1, ws)
    assert result.passed, result.render()


def unused_port() -> tuple[socket.socket, int]:
    """A bound socket that never listens: connecting to its port is refused."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    return holder, holder.getsockname()[1]


def test_task1_talks_to_the_lab_when_it_is_up(ws: Workspace,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sol.task1(ws.answers)
    holder, closed = unused_port()
    with holder, procs.Server(procs.server_argv(REPO, "python", [])) as lab:
        monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "1")
        monkeypatch.setenv("SECUREMSG_C_PORT", str(lab.port))
        monkeypatch.setenv("SECUREMSG_PYTHON_PORT", str(closed))
        result = check(1, ws)
    assert result.passed
    assert f"C server on 127.0.0.1:{lab.port} answered" in result.why
    assert f"nothing listens on 127.0.0.1:{closed}" in result.why


def test_task1_fail_when_another_program_has_the_lab_port(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    sol.task1(ws.answers)
    holder, closed = unused_port()
    with holder, socket.create_server(("127.0.0.1", 0)) as other:  # accepts, never answers
        monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "1")
        monkeypatch.setenv("SECUREMSG_C_PORT", str(other.getsockname()[1]))
        monkeypatch.setenv("SECUREMSG_PYTHON_PORT", str(closed))
        result = check(1, ws)
    assert not result.passed and "does not answer like the lab" in result.why


def test_task2_pass(ws: Workspace) -> None:
    sol.task2(ws.answers)
    result = check(2, ws)
    assert result.passed and "Meet me at the lab" in result.why


def test_task2_fail_when_the_key_does_not_restart(ws: Workspace) -> None:
    message, key = b"Meet me at the lab", b"LAB_KEY"
    stream = (key * 10)[3:]  # the key position carried over from a previous frame
    wrong = sol.frame(bytes(m ^ k for m, k in zip(message, stream, strict=False)))
    right_ack = sol.frame(sol.xor(sol.ack(len(message)), key))
    (ws.answers / "task2.hex").write_text(f"{wrong.hex()}\n{right_ack.hex()}\n")
    result = check(2, ws)
    assert not result.passed and "payload byte 0" in result.why
    assert any("a real server" in line for line in result.details)


def test_task2_fail_on_little_endian_length(ws: Workspace) -> None:
    sol.task2(ws.answers)
    path = ws.answers / "task2.hex"
    path.write_text(path.read_text().replace("00 00 00 12", "12 00 00 00", 1))
    result = check(2, ws)
    assert not result.passed and "length prefix" in result.why


def xor_pcap(message: bytes, key: bytes = sol.DEFAULT_KEY) -> bytes:
    up = sol.frame(sol.xor(message, key))
    return connection_pcap([(up, sol.frame(sol.xor(sol.ack(len(message)), key)))], 6000)


def test_task3_pass(ws: Workspace) -> None:
    sol.task3(ws.answers, xor_pcap(b"Hello, Wireshark"), "Hello, Wireshark")
    result = check(3, ws)
    assert result.passed, result.render()


def test_task3_fail_on_a_message_not_in_the_capture(ws: Workspace) -> None:
    sol.task3(ws.answers, xor_pcap(b"Hello, Wireshark"), "Hello, Ethereal")
    assert not check(3, ws).passed


def test_task3_fail_without_an_exchange(ws: Workspace) -> None:
    other_key = xor_pcap(b"Hello, Wireshark", b"NOT_THE_KEY")
    sol.task3(ws.answers, other_key, "Hello, Wireshark")
    result = check(3, ws)
    assert not result.passed and "no securemsg xor exchange" in result.why


def test_task3_fail_on_a_file_that_is_not_pcap(ws: Workspace) -> None:
    sol.task3(ws.answers, b"not a capture at all, just text", "Hello")
    assert not check(3, ws).passed


def test_task4_pass(ws: Workspace) -> None:
    sol.task4(ws.root)
    result = check(4, ws)
    assert result.passed and "room B-12" in result.why


def test_task4_fail_on_a_repeated_key(ws: Workspace) -> None:
    key = sol.recovered_key(ws.root)
    (ws.answers / "task4.txt").write_text((key * 2).decode())
    result = check(4, ws)
    assert not result.passed and "longer than the key" in result.why


def test_task4_fail_on_the_seed_key(ws: Workspace) -> None:
    (ws.answers / "task4.txt").write_text("MY_SECRET_KEY\n")
    assert not check(4, ws).passed


def test_task5_pass(ws: Workspace) -> None:
    sol.task5(ws.root)
    result = check(5, ws)
    assert result.passed and "PAY 99 EUR TO CAROL" in result.why


def test_task5_fail_on_half_a_flip(ws: Workspace) -> None:
    forged = bytearray(sol.forged_frame(ws.root))
    forged[-1] ^= 0x01  # the last letter of CAROL left wrong
    (ws.answers / "task5.hex").write_text(bytes(forged).hex())
    result = check(5, ws)
    assert not result.passed and "PAY 99 EUR TO CAROM" in result.why


def test_task6_pass(ws: Workspace, tmp_path: Path) -> None:
    sol.task6(ws.answers, tmp_path)
    result = check(6, ws)
    assert result.passed and "live:" in result.why


def test_task6_fail_on_a_tampered_handshake(ws: Workspace, tmp_path: Path) -> None:
    (ws.answers / "task6.txt").write_text(sol.noise_tamper_transcript(tmp_path, frame_index=0))
    result = check(6, ws)
    assert not result.passed and "handshake" in result.hint


def test_task6_fail_on_an_xor_server(ws: Workspace) -> None:
    sol.task1(ws.answers)
    (ws.answers / "task1.txt").rename(ws.answers / "task6.txt")
    assert not check(6, ws).passed


def test_task7_fails_with_the_planted_bug(planted: Path) -> None:
    result = check(7, Workspace(planted))
    assert not result.passed and "much slower" in result.why


def test_task7_passes_with_the_fix(fixed: Path) -> None:
    result = check(7, Workspace(fixed))
    assert result.passed, result.render()


def test_task8_fails_with_the_planted_bug(planted: Path) -> None:
    result = check(8, Workspace(planted))
    assert not result.passed and "got no ACK" in result.why


def test_task8_passes_with_the_fix(fixed: Path) -> None:
    result = check(8, Workspace(fixed))
    assert result.passed, result.render()


def test_cli_exit_status(ws: Workspace) -> None:
    sol.task2(ws.answers)
    argv = [sys.executable, "-m", "securemsg_lab.tasks", "--work", str(ws.root), "check"]
    ok = subprocess.run([*argv, "2"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0 and "Task 2 (read a frame by hand): PASS" in ok.stdout
    bad = subprocess.run([*argv, "4"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 1 and "FAIL" in bad.stdout and "hint:" in bad.stdout


def test_start_refuses_a_stale_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bugs = tmp_path / "bugs"
    bugs.mkdir()
    (bugs / "Z-stale.patch").write_text(
        "--- a/c/server.c\n+++ b/c/server.c\n@@ -1,2 +1,2 @@\n-no such line\n+planted\n"
        " nor this one\n")
    monkeypatch.setattr("securemsg_lab.tasks.workspace.BUGS", bugs)
    work = tmp_path / "work"
    with pytest.raises(Fail, match=r"Z-stale\.patch does not apply"):
        start(work)
    assert not work.exists()  # a rerun starts clean
