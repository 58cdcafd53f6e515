"""The demo end to end: run `securemsg-demo --no-pause` and check what it printed.

Local backend always; the Docker backend too (marked `docker`: skipped without an
engine, a failure with REQUIRE_DOCKER=1, tests/support/needs.py).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from securemsg_lab.core.process import PIPE, Process
from securemsg_lab.core.process import run as run_program
from securemsg_lab.core.timeouts import scaled

REPO = Path(__file__).resolve().parents[2]
DEMO = ["-m", "securemsg_lab.demo"]  # = the securemsg-demo console script
DEFAULT_KEY = "MY_SECRET_KEY"


@dataclass
class DemoRun:
    returncode: int | None
    output: str
    seconds: float

    def step(self, number: int) -> str:
        """The output of one step, from its heading to the next one."""
        match = re.search(
            rf"Step {number}/8 .*?(?=Step {number + 1}/8|## Security note|\Z)", self.output, re.S
        )
        assert match, f"step {number} heading missing"
        return match.group(0)


def run_demo(*args: str, timeout: float = 240) -> DemoRun:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("SECUREMSG_KEY", None)
    done = run_program([sys.executable, *DEMO, "--no-pause", *args], timeout=scaled(timeout),
                       env=env, cwd=REPO)
    assert not done.timed_out, f"the demo did not finish in {timeout} s"
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    return DemoRun(done.exit_code, output, done.duration)


def recovered_key_hex(text: str) -> str:
    match = re.search(r"Recovered key \((\d+) bytes\): .*?hex ([0-9a-f]+)", text)
    assert match, "no recovered key printed"
    return match.group(2)


def check_full_run(run: DemoRun, key: str) -> None:
    """What every complete run must show, whatever the backend."""
    out = run.output
    assert run.returncode == 0, out[-3000:]
    assert "could not finish" not in out, out
    for number in range(1, 9):
        assert f"Step {number}/8" in out

    one = run.step(1)
    for message in ("Hello from C", "Meet me at the library at 6", "café ☕ costs 2 €"):
        assert f"[RECV] Plaintext: {message}" in one
    for length in (12, 27, 21):
        assert f"[RECV] ACK: Received {length} bytes" in one
    assert "C server decrypted 3/3 messages; 3/3 clients got their ACK" in one

    two = run.step(2)
    for message in ("Hello from Python", "Lecture moved to room 101", "naïve façade"):
        assert f"[RECV] Plaintext: {message}" in two
    assert "Python server decrypted 3/3 messages; 3/3 clients got their ACK" in two

    three = run.step(3)
    assert "[RECV] Plaintext: C speaks to Python" in three
    assert "[RECV] Plaintext: Python speaks to C" in three
    assert three.count("decrypted 2/2 messages; 2/2 clients got their ACK") == 2

    four = run.step(4)
    for name in ("crypto.c", "crypto.py", "framing.c", "framing.py", "crypto_xor_apply()"):
        assert name in four
    assert re.search(r"\d+\s+framing_\w+\(\)", four)

    five = run.step(5)
    assert "[ERROR] Invalid port: not-a-port" in five and "exit 2" in five
    assert re.search(r"\[ERROR\] Cannot connect to \S+: Connection refused", five)
    assert "exit 1" in five
    assert "[RECV] Plaintext: sent byte by byte to C" in five
    assert "[RECV] Plaintext: sent byte by byte to Python" in five
    assert five.count("[ERROR] Frame too large from") == 2
    assert five.count("[RECV] ACK: Received 27 bytes") >= 2  # the other client carried on

    six = run.step(6)
    assert '"Transfer 500 EUR to account DE44 5001"' in six
    assert '"ACK: Received 37 bytes"' in six
    assert re.search(r"#1 client → server\s+37 bytes", six)

    seven = run.step(7)
    assert recovered_key_hex(seven) == key.encode().hex()
    assert "the recovered key equals the key the programs were started with" in seven
    sent = re.search(r"Client sent:\s+(.*)", seven)
    received = re.search(r"Server received:\s+(.*)", seven)
    assert sent and received
    assert sent.group(1).strip() == "PAY 10 EUR to Bob"
    assert received.group(1).strip() == "PAY 99 EUR to Bob" != sent.group(1).strip()
    assert "[RECV] Plaintext: PAY 99 EUR to Bob" in seven

    eight = run.step(8)
    assert "Secure mode is unavailable" not in eight, eight
    assert "[INFO] Cipher: noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)" in eight
    assert "No key found" in eight and "Recovered key" not in eight
    assert "[ERROR] Decryption failed from" in eight
    assert "tampering detected" in eight
    assert "Server received: (nothing)" in eight

    assert "XOR with a static key is for educational purposes only" in out
    assert "--cipher noise" in out.split("## Security note")[-1]


def listening_ports(out: str) -> list[int]:
    return [int(p) for p in re.findall(r"\[INFO\] Listening on 127\.0\.0\.1:(\d+)", out)]


def assert_closed(ports: list[int]) -> None:
    for port in ports:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


@pytest.mark.timeout(300)
def test_demo_local_backend() -> None:
    run = run_demo("--backend", "local")
    check_full_run(run, DEFAULT_KEY)
    assert "Backend: local" in run.output
    ports = listening_ports(run.output)
    assert len(ports) >= 3
    assert_closed(ports)  # every server was stopped


@pytest.mark.timeout(300)
@pytest.mark.parametrize("capture", ["auto", "relay"])
def test_demo_local_non_default_key(capture: str) -> None:
    key = "Tr0ub4dor&3"
    run = run_demo("--backend", "local", "--key", key, "--step", "6,7", "--capture", capture)
    assert run.returncode == 0, run.output[-3000:]
    if capture == "relay":
        assert "capture (relay)" in run.step(6)
    seven = run.step(7)
    assert recovered_key_hex(seven) == key.encode().hex()
    assert "certain:" in seven and "not certain" not in seven  # 22-byte ACK >= 2 x 11
    assert "Server received: PAY 99 EUR to Bob" in seven


#: runs "$@" with SIGINT ignored, as a background job of a script or `nohup` does
IGNORING_SIGINT = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start", ["default", "sigint-ignored"])
def test_demo_ctrl_c_cleans_up(start: str) -> None:
    """SIGINT at a pause: exit 130, every server stopped; also when the demo was started
    with SIGINT ignored (it installs its own handler)."""
    env = {**os.environ, "NO_COLOR": "1"}
    wrapper = IGNORING_SIGINT if start == "sigint-ignored" else []
    demo = Process([*wrapper, sys.executable, *DEMO, "--backend", "local", "--step", "1,2"],
                   stdin=PIPE, merge=True, env=env, cwd=REPO)
    demo.write(b"\n")  # run step 1, then stop at step 2's pause
    # step 2's prompt (the second one): the demo sits in input() there
    assert demo.out.wait_count(b"[Enter to run] ", 2, timeout=scaled(60)), demo.out.snapshot()
    result = demo.stop(signal.SIGINT, timeout=scaled(60))
    out = result.stdout.decode("utf-8", "replace")
    assert result.exit_code == 130, out
    assert "interrupted: cleaning up" in out
    ports = listening_ports(out)
    assert ports, out
    assert_closed(ports)


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_demo_docker_backend() -> None:
    run = run_demo("--backend", "docker", timeout=840)
    check_full_run(run, DEFAULT_KEY)
    assert "Backend: docker" in run.output
    assert "capture (tcpdump)" in run.step(6)
    network = re.search(r"network (smdemo-[0-9a-f]+)", run.output)
    assert network, "the docker network is not named in the output"
    label = "label=securemsg.demo=" + network.group(1).removeprefix("smdemo-")
    for kind, listing in (("containers", ["ps", "-aq"]), ("networks", ["network", "ls", "-q"])):
        left = subprocess.run(
            ["docker", *listing, "--filter", label],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        assert not left, f"{kind} left behind: {left}"


@pytest.mark.parametrize(
    ("args", "returncode", "stream", "text"),
    [(["--step", "9"], 2, "stderr", "no step 9"), (["--help"], 0, "stdout", "--no-pause")],
)
def test_step_selection_and_usage(args: list[str], returncode: int, stream: str, text: str) -> None:
    done = run_program([sys.executable, *DEMO, *args], timeout=scaled(30))
    assert done.exit_code == returncode and text in getattr(done, stream).decode()
