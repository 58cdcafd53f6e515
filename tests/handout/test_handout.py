"""Every handout check against the reference solution (PASS) and a wrong answer or the
planted-bug variant (FAIL). Loopback only; every process is the checks' own or ours."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from securemsg_lab.tasks import classcheck, procs, task_bugs
from securemsg_lab.tasks.cli import run_check
from securemsg_lab.tasks.result import Fail, Result
from securemsg_lab.tasks.workspace import REPO, Workspace, changes, start

from . import handout_solutions as sol
from .handout_pcap import connection_pcap

pytestmark = pytest.mark.timeout(300)

BUG_A, BUG_B = procs.bugs()["A"], procs.bugs()["B"]


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
    for letter in ("A", "B"):
        sol.fix_bug(work, letter)
    return work


@pytest.fixture(scope="module")
def nodelay_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bug A "fixed" by turning TCP_NODELAY back on: the two writes kept."""
    work = tmp_path_factory.mktemp("handout") / "work"
    start(work, seed=13)
    sol.half_fix_nodelay(work)
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


def planted_in(work: Path, bug: procs.Bug) -> bool:
    """The bug's patch is applied: it reverses cleanly."""
    result = procs.run(["patch", "-p1", "-R", "--dry-run", "--batch", "-d", str(work),
                        "-i", str(bug.patch)])
    return result.returncode == 0


def test_start_copies_and_plants(planted: Path) -> None:
    assert planted_in(planted, BUG_A) and planted_in(planted, BUG_B)
    assert not (planted / procs.tree_of(BUG_A.implementation) / "build").exists()
    assert sorted(p.name for p in (planted / "challenge").iterdir()) == ["task4.txt",
                                                                          "task5.txt"]


def test_start_names_the_bugs_by_letter_only(tmp_path: Path) -> None:
    """No spoiler: the start message and the patch names say A and B, nothing more."""
    said = "\n".join(start(tmp_path / "work", seed=3))
    assert "planted bugs A (task 7), B (task 8)" in said
    for word in ("split", "empty", "write", "ack", "nagle", "nodelay"):
        assert word not in said.lower()
    assert sorted(bug.patch.name for bug in procs.bugs().values()) == ["A.patch", "B.patch"]


def test_handout_diff_shows_the_students_changes_only(tmp_path: Path) -> None:
    work = tmp_path / "work"
    start(work, seed=5)
    assert changes(work) == (0, "")
    sol.fix_bug(work, "A")
    status, diff = changes(work)

    def changed(text: str, sign: str) -> list[str]:
        return sorted(line[1:] for line in text.splitlines()
                      if line.startswith(sign) and not line.startswith(sign * 3))

    patch = BUG_A.patch.read_text()
    assert status == 1  # the student's fix alone: the patch reversed, nothing planted shown
    assert changed(diff, "+") == changed(patch, "-") and changed(patch, "-")
    assert changed(diff, "-") == changed(patch, "+")


def test_workspace_programs_are_registry_entries(planted: Path) -> None:
    """The checks and the matrix run the workspace's copies, not the reference."""
    for name in procs.lab_names():
        copy, reference = procs.implementation(planted, name), procs.implementation(REPO, name)
        assert copy.name == f"{name}-work"
        tree = procs.tree_of(name)
        assert str(planted / tree) in " ".join(copy.program("server"))
        assert str(REPO / tree) in " ".join(reference.program("server"))


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
    with holder, procs.TaskServer(procs.server_argv(REPO, procs.no_build_name(), [])) as lab:
        monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "1")
        monkeypatch.setenv("SECUREMSG_C_PORT", str(lab.port))
        monkeypatch.setenv("SECUREMSG_PYTHON_PORT", str(closed))
        result = check(1, ws)
    assert result.passed
    assert f"C server on 127.0.0.1:{lab.port} answered" in result.why
    assert f"nothing listens on 127.0.0.1:{closed}" in result.why


def test_task1_passes_beside_another_program_on_the_lab_port(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Something that accepts and never answers on 5000: reported, not a failure."""
    sol.task1(ws.answers)
    holder, closed = unused_port()
    with holder, socket.create_server(("127.0.0.1", 0)) as other:  # accepts, never answers
        monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "1")
        monkeypatch.setenv("SECUREMSG_C_PORT", str(other.getsockname()[1]))
        monkeypatch.setenv("SECUREMSG_PYTHON_PORT", str(closed))
        result = check(1, ws)
    assert result.passed, result.render()
    assert "does not answer like the lab" in result.why


def test_task1_passes_beside_a_leftover_server_with_another_key(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a student's own server with another key left on the lab's port
    turned a right answer into FAIL."""
    sol.task1(ws.answers)
    leftover = procs.server_argv(REPO, procs.no_build_name(), ["--key", "OTHER_KEY"])
    holder, closed = unused_port()
    with holder, procs.TaskServer(leftover) as server:
        monkeypatch.setenv("SECUREMSG_HANDOUT_LAB", "1")
        monkeypatch.setenv("SECUREMSG_C_PORT", str(server.port))
        monkeypatch.setenv("SECUREMSG_PYTHON_PORT", str(closed))
        result = check(1, ws)
    assert result.passed, result.render()
    assert f"something on 127.0.0.1:{server.port} does not answer like the lab" in result.why


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


def test_task2_fail_on_a_wrong_n_in_the_ack(ws: Workspace) -> None:
    """'ACK: Received 19 bytes': the right form and length, the wrong N. The hint is about
    N, not about which key byte encrypts what."""
    message, key = b"Meet me at the lab", b"LAB_KEY"
    lines = [sol.frame(sol.xor(message, key)), sol.frame(sol.xor(sol.ack(19), key))]
    (ws.answers / "task2.hex").write_text("\n".join(f.hex(" ") for f in lines) + "\n")
    result = check(2, ws)
    assert not result.passed and "the wrong N" in result.why, result.render()
    assert "length prefix" in result.hint and "key byte" not in result.hint


def test_task2_fail_on_swapped_lines(ws: Workspace) -> None:
    sol.task2(ws.answers)
    path = ws.answers / "task2.hex"
    path.write_text("\n".join(reversed(path.read_text().splitlines())) + "\n")
    result = check(2, ws)
    assert not result.passed and "swapped" in result.why, result.render()
    assert "counting the payload" not in result.hint


def test_task2_fail_on_little_endian_length(ws: Workspace) -> None:
    sol.task2(ws.answers)
    path = ws.answers / "task2.hex"
    path.write_text(path.read_text().replace("00 00 00 12", "12 00 00 00", 1))
    result = check(2, ws)
    assert not result.passed and "length prefix" in result.why


def xor_pcap(message: bytes, key: bytes = sol.DEFAULT_KEY) -> bytes:
    up = sol.frame(sol.xor(message, key))
    return connection_pcap([(up, sol.frame(sol.xor(sol.ack(len(message)), key)))], 5100)


def test_task3_pass(ws: Workspace) -> None:
    sol.task3(ws.answers, xor_pcap(b"Hello, Wireshark"), "Hello, Wireshark")
    result = check(3, ws)
    assert result.passed, result.render()


def test_task3_pass_with_pcapng(ws: Workspace, tmp_path: Path) -> None:
    """Wireshark saves pcapng by default: the check accepts it (converted with editcap)."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (installed with tshark by make setup) is missing")
    classic = tmp_path / "in.pcap"
    classic.write_bytes(xor_pcap(b"Hello, pcapng"))
    ng = tmp_path / "out.pcapng"
    assert procs.run([editcap, "-F", "pcapng", str(classic), str(ng)]).returncode == 0
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    sol.task3(ws.answers, ng.read_bytes(), "Hello, pcapng")
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


@pytest.mark.parametrize("blank", [" ", "\t", "  "])
def test_task4_fail_on_a_trailing_blank(ws: Workspace, blank: str) -> None:
    (ws.answers / "task4.txt").write_text(sol.recovered_key(ws.root).decode() + blank + "\n")
    result = check(4, ws)
    assert not result.passed and "blank" in result.why, result.render()


def test_task4_fail_on_a_leading_space(ws: Workspace) -> None:
    (ws.answers / "task4.txt").write_text(" " + sol.recovered_key(ws.root).decode() + "\n")
    assert not check(4, ws).passed


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


@pytest.mark.parametrize("extra", [b"\x00", b"\x41", b"\x00\x00\x00\x00"])
def test_task5_fail_on_a_stray_extra_byte(ws: Workspace, extra: bytes) -> None:
    """The right frame and a byte more (or an empty frame's prefix): not one frame."""
    (ws.answers / "task5.hex").write_text((sol.forged_frame(ws.root) + extra).hex(" "))
    result = check(5, ws)
    assert not result.passed and "length prefix says" in result.why, result.render()


def test_task5_fail_on_a_missing_byte(ws: Workspace) -> None:
    (ws.answers / "task5.hex").write_text(sol.forged_frame(ws.root)[:-1].hex(" "))
    assert not check(5, ws).passed


def test_task6_pass(ws: Workspace, tmp_path: Path) -> None:
    sol.task6(ws.answers, tmp_path)
    result = check(6, ws)
    assert result.passed and "live:" in result.why


def test_task6_fail_on_a_tampered_handshake(ws: Workspace, tmp_path: Path) -> None:
    (ws.answers / "task6.txt").write_text(sol.noise_tamper_transcript(tmp_path, frame_index=0))
    result = check(6, ws)
    assert not result.passed and "handshake" in result.hint


def test_task6_fail_on_a_wrong_key_log(ws: Workspace, tmp_path: Path) -> None:
    """A client with another key file: the hint names the key, not only the handshake."""
    (ws.answers / "task6.txt").write_text(sol.wrong_key_transcript(tmp_path))
    result = check(6, ws)
    assert not result.passed and "key" in result.hint and "same file" in result.hint, (
        result.render())


def test_task6_fail_on_an_xor_server(ws: Workspace) -> None:
    sol.task1(ws.answers)
    (ws.answers / "task1.txt").rename(ws.answers / "task6.txt")
    assert not check(6, ws).passed


def test_task7_fails_with_the_planted_bug(planted: Path) -> None:
    result = check(7, Workspace(planted))
    assert not result.passed and "much slower" in result.why
    workspace_copy = str(planted / procs.tree_of(BUG_A.implementation))
    assert workspace_copy in result.hint  # the student's copy, not the reference


def test_task7_fails_with_nodelay_and_two_writes(nodelay_only: Path) -> None:
    """The wrong fix: Nagle off, the prefix and payload still two writes. Fast, so the
    benchmark alone passes it; the count of writes per ACK does not."""
    result = check(7, Workspace(nodelay_only))
    assert not result.passed, result.render()
    assert "writes each ACK frame in 2.00 system calls" in result.why
    assert any("TCP_NODELAY set" in line for line in result.details)
    assert str(nodelay_only / procs.tree_of(BUG_A.implementation)) in result.hint


def test_task7_passes_with_the_fix(fixed: Path) -> None:
    result = check(7, Workspace(fixed))
    assert result.passed, result.render()
    assert "(1.00 per ACK); TCP_NODELAY set" in result.why


def test_task8_fails_with_the_planted_bug(planted: Path) -> None:
    result = check(8, Workspace(planted))
    assert not result.passed and "got no ACK" in result.why


def test_task8_passes_with_the_fix(fixed: Path) -> None:
    result = check(8, Workspace(fixed))
    assert result.passed, result.render()


def test_matrix_failure_prints_the_command_to_rerun(planted: Path) -> None:
    """Task 8's matrix step (its empty-message cells fail on the planted bug): the FAIL
    shows the command, and that command fails the same way when run."""
    with pytest.raises(Fail) as failed:
        task_bugs.matrix(planted, BUG_B.implementation, "empty_message")
    commands = [line for line in failed.value.details if line.startswith("the command: ")]
    assert len(commands) == 1 and "the command above" in failed.value.hint
    rerun = commands[0].removeprefix("the command: ")
    done = subprocess.run(["bash", "-c", rerun], capture_output=True, text=True, timeout=240)
    assert done.returncode != 0 and "cells passed" in done.stdout, done.stdout[-500:]


def test_class_check_over_workspaces(tmp_path: Path, planted: Path) -> None:
    """`make class-check`: N workspaces under one folder, one line each, reports written."""
    for student, answer in (("alice", True), ("bob", False)):
        work = tmp_path / "class" / student / "work"
        shutil.copytree(planted / "challenge", work / "challenge")
        (work / "answers").mkdir(parents=True)
        if answer:
            sol.task2(work / "answers")
    argv = [sys.executable, "-m", "securemsg_lab.tasks", "class", str(tmp_path / "class"),
            "--tasks", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    print(done.stdout)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert any("alice/work" in line and "PASS" in line and "1/1" in line for line in lines)
    assert any("bob/work" in line and "FAIL" in line and "0/1" in line for line in lines)
    report = tmp_path / "class" / "bob" / "work" / classcheck.REPORT
    assert "hint:" in report.read_text()


def test_cli_exit_status(ws: Workspace) -> None:
    sol.task2(ws.answers)
    argv = [sys.executable, "-m", "securemsg_lab.tasks", "--work", str(ws.root), "check"]
    ok = subprocess.run([*argv, "2"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0 and "Task 2 (read a frame by hand): PASS" in ok.stdout
    bad = subprocess.run([*argv, "4"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 1 and "FAIL" in bad.stdout and "hint:" in bad.stdout


def test_start_refuses_a_stale_patch(tmp_path: Path) -> None:
    bugs = tmp_path / "bugs"
    bugs.mkdir()
    tree = procs.tree_of(BUG_A.implementation)
    (bugs / "Z.patch").write_text(
        f"--- a/{tree}/README\n+++ b/{tree}/README\n@@ -1,2 +1,2 @@\n-no such line\n"
        "+planted\n nor this one\n")
    (bugs / "bugs.toml").write_text(
        f'[Z]\nimplementation = "{BUG_A.implementation}"\npatch = "Z.patch"\ntask = 7\n')
    work = tmp_path / "work"
    with pytest.raises(Fail, match=r"Z\.patch does not apply"):
        start(work, bugs_file=bugs / "bugs.toml")
    assert not work.exists()  # a rerun starts clean
