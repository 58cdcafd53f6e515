"""compose.yaml, run for real: the lab comes up and shows the seed's output.

Brings the whole lab up once (a unique project name, host ports that Docker
picks, a random key, every resource labelled ``securemsg.test=1``), waits for the four demo
clients to exit, then checks the containers' logs against PROTOCOL.md section 6
and talks to the published ports from the host. Tears everything down in a
finalizer, also after a failure.

Runs twice: under ``docker compose`` (v2, ``scripts/install-compose-v2.sh``) and
under ``docker-compose`` (1.29, Debian 12). Without an engine or either Compose
tool the tests are skipped, or fail when ``REQUIRE_DOCKER=1``. Images missing:
``docker/lab.sh build`` (base images, then the lab images) builds them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from securemsg_lab.wire.protocol import frame, xor
from securemsg_lab.wire.rawsock import read_frame

from .compose_support import COMPOSE_FILE, COMPOSE_TOOLS, ROOT, must, run, unavailable

pytestmark = pytest.mark.docker

TEST_LABEL = "securemsg.test"
UP_TIMEOUT = 180.0  # `compose up -d`: waits for the healthchecks
CLIENTS_TIMEOUT = 120.0  # demo clients exit after `up -d` returned (slow under load)
BUILD_TIMEOUT = 900.0
NOISE_CIPHER_LINE = "[INFO] Cipher: noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)"


@dataclass(frozen=True)
class DemoPair:
    """One demo client service of compose.yaml and the server it talks to."""

    client: str
    server: str
    message: str

    @property
    def size(self) -> int:
        return len(self.message.encode())


PAIRS = (
    DemoPair("client-c-to-c", "server-c", "Hello from C"),
    DemoPair("client-c-to-python", "server-python", "Hello from C"),
    DemoPair("client-python-to-c", "server-c", "Hello from Python"),
    DemoPair("client-python-to-python", "server-python", "Hello from Python"),
)
XOR_SERVERS = {"server-c": "SECUREMSG_C_PORT", "server-python": "SECUREMSG_PYTHON_PORT"}
NOISE_SERVERS = {
    "server-c-noise": "SECUREMSG_C_NOISE_PORT",
    "server-python-noise": "SECUREMSG_PYTHON_NOISE_PORT",
}


@dataclass(frozen=True)
class ContainerLog:
    """What one service's container printed, and how it ended (if it did)."""

    status: str
    exit_code: int
    stdout: list[str]
    stderr: list[str]
    timestamped: list[tuple[datetime, str]]


@dataclass
class Lab:
    """A running compose project of this test module."""

    compose: list[str]
    project: str
    env: dict[str, str]
    up_wall: datetime
    tool: str  # a key of COMPOSE_TOOLS
    logs: dict[str, ContainerLog] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, "-p", self.project, *args], env=self.env, timeout=timeout)

    def container_id(self, service: str) -> str:
        """The service's container, found by the labels Compose (v1 and v2) sets."""
        listed = must(
            run(
                [
                    "docker",
                    "ps",
                    "-a",
                    "-q",
                    "--filter",
                    f"label=com.docker.compose.project={self.project}",
                    "--filter",
                    f"label=com.docker.compose.service={service}",
                ],
                timeout=60,
            )
        ).split()
        assert len(listed) == 1, f"{service}: expected one container, got {listed!r}"
        return listed[0]

    def host_port(self, service: str) -> int:
        """The host port Docker published for the service's port 5000."""
        address = must(run(["docker", "port", self.container_id(service), "5000"], timeout=60))
        return int(address.splitlines()[0].rpartition(":")[2])


def find_compose(tool: str) -> list[str] | None:
    """The Compose command `tool` names, when it answers `version`."""
    command = COMPOSE_TOOLS[tool]
    try:
        if run([*command, "version"], timeout=30).returncode == 0:
            return command
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def write_override(path: Path) -> None:
    """An extra compose file that labels every service and network of the test."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    label = {TEST_LABEL: "1"}
    override = {
        "services": {name: {"labels": label} for name in spec["services"]},
        "networks": {name: {"labels": label} for name in spec.get("networks", {})},
    }
    path.write_text(yaml.safe_dump(override))


def image_exists(image: str) -> bool:
    return run(["docker", "image", "inspect", image], timeout=60).returncode == 0


def ensure_images(env: dict[str, str]) -> None:
    """`docker/lab.sh build` when an image of compose.yaml is missing (the lab's way:
    registry-less base images, passed as build arguments)."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    images = {svc["image"] for svc in spec["services"].values() if "build" in svc}
    if not all(image_exists(image) for image in images):
        must(run([str(ROOT / "docker" / "lab.sh"), "build"], env=env, timeout=BUILD_TIMEOUT))


def parse_timestamped(text: str) -> list[tuple[datetime, str]]:
    """`docker logs --timestamps` lines: RFC 3339 with nanoseconds, a space, the line."""
    lines = []
    for raw in text.splitlines():
        stamp, _, line = raw.partition(" ")
        day, _, clock = stamp.rstrip("Z").partition("T")
        whole, _, fraction = clock.partition(".")
        iso = f"{day}T{whole}.{(fraction or '0')[:6].ljust(6, '0')}+00:00"
        lines.append((datetime.fromisoformat(iso), line))
    return lines


def collect_log(lab: Lab, service: str) -> ContainerLog:
    container = lab.container_id(service)
    state = must(
        run(
            ["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container],
            timeout=60,
        )
    ).split()
    plain = run(["docker", "logs", container], timeout=60)
    stamped = run(["docker", "logs", "--timestamps", container], timeout=60)
    return ContainerLog(
        status=state[0],
        exit_code=int(state[1]),
        stdout=plain.stdout.splitlines(),
        stderr=plain.stderr.splitlines(),
        timestamped=parse_timestamped(stamped.stdout),
    )


def wait_for_exit(lab: Lab, services: list[str], timeout: float) -> None:
    containers = {lab.container_id(service): service for service in services}
    deadline = time.monotonic() + timeout
    while True:
        states = must(
            run(["docker", "inspect", "-f", "{{.State.Status}}", *containers], timeout=60)
        ).split()
        pending = [
            s for s, state in zip(containers.values(), states, strict=True) if state != "exited"
        ]
        if not pending:
            return
        assert time.monotonic() < deadline, f"still running after {timeout:.0f} s: {pending}"
        time.sleep(0.25)


def remove_project(lab: Lab) -> None:
    """`compose down`, then anything of the project that survived it."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        lab.run("--profile", "capture", "down", "--remove-orphans", "--timeout", "5", timeout=120)
    selector = f"label=com.docker.compose.project={lab.project}"
    for kind in ("container", "network"):
        listed = run(
            ["docker", kind, "ls", "-aq" if kind == "container" else "-q", "--filter", selector],
            timeout=60,
        ).stdout.split()
        if listed:
            rm = ["docker", kind, "rm"] + (["-f"] if kind == "container" else [])
            run(rm + listed, timeout=120)


@pytest.fixture(scope="module", params=list(COMPOSE_TOOLS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("docker") is None or run(["docker", "info"], timeout=30).returncode != 0:
        unavailable("no Docker engine answers (docker info)")
    compose = find_compose(request.param)
    if compose is None:
        unavailable(
            f"{' '.join(COMPOSE_TOOLS[request.param])} is not installed "
            "(make setup installs both: scripts/install-compose-v2.sh)"
        )
        raise AssertionError("unreachable")
    override = tmp_path_factory.mktemp("compose") / "test-labels.yaml"
    write_override(override)
    project = f"securemsgtest{secrets.token_hex(4)}"
    env = dict(os.environ)
    # Host port 0: Docker picks free ports itself (no race with other tests).
    env.update({name: "0" for name in [*XOR_SERVERS.values(), *NOISE_SERVERS.values()]})
    env.update(
        {
            "COMPOSE_PROJECT_NAME": project,
            "SECUREMSG_PUBLISH_ADDR": "127.0.0.1",
            "SECUREMSG_KEY": f"test-key-{secrets.token_hex(8)}",
            "SECUREMSG_NOISE_KEY": f"test-passphrase-{secrets.token_hex(8)}",
        }
    )
    full = [
        *compose,
        "--project-directory",
        str(ROOT),
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(override),
    ]
    ensure_images(env)

    lab = Lab(
        compose=full,
        project=project,
        env=env,
        up_wall=datetime.now().astimezone(),
        tool=request.param,
    )
    try:
        must(lab.run("up", "-d", "--no-build", timeout=UP_TIMEOUT))
        wait_for_exit(lab, [p.client for p in PAIRS], CLIENTS_TIMEOUT)
        services = [p.client for p in PAIRS] + [*XOR_SERVERS, *NOISE_SERVERS]
        lab.logs = {s: collect_log(lab, s) for s in services}
        yield lab
    finally:
        remove_project(lab)


def first_ack_seconds(lab: Lab) -> float:
    stamps = [
        stamp
        for p in PAIRS
        for stamp, line in lab.logs[p.client].timestamped
        if line.startswith("[RECV] ACK: ")
    ]
    assert stamps, "no client printed an ACK"
    return (min(stamps) - lab.up_wall).total_seconds()


def test_demo_clients_exit_0_with_the_seed_output(lab: Lab) -> None:
    for pair in PAIRS:
        log = lab.logs[pair.client]
        assert (log.status, log.exit_code) == ("exited", 0), (pair.client, log)
        assert log.stdout == [
            f"[SEND] Encrypted bytes: {pair.size} bytes",
            f"[RECV] ACK: Received {pair.size} bytes",
        ], (pair.client, log)
        assert log.stderr == [], (pair.client, log.stderr)
    seconds = first_ack_seconds(lab)
    print(f"\n{lab.tool}: up -> first ACK: {seconds:.2f} s", file=sys.stderr)
    assert seconds < UP_TIMEOUT


@pytest.mark.parametrize("server", list(XOR_SERVERS))
def test_xor_server_logs_show_every_pair(lab: Lab, server: str) -> None:
    log = lab.logs[server]
    assert log.status == "running", (server, log)
    assert log.stdout[0] == "[INFO] Listening on 0.0.0.0:5000", log.stdout
    assert log.stdout[1].startswith("[INFO] Client connected: "), log.stdout  # as the seed
    assert log.stderr == [], (server, log.stderr)
    sent = sorted(p.message for p in PAIRS if p.server == server)
    received = sorted(
        line.removeprefix("[RECV] Plaintext: ")
        for line in log.stdout
        if line.startswith("[RECV] Plaintext: ")
    )
    assert received == sent, (server, log.stdout)
    acks = [line for line in log.stdout if line == "[SEND] ACK sent to client"]
    connected = [line for line in log.stdout if line.startswith("[INFO] Client connected: ")]
    gone = [line for line in log.stdout if line.startswith("[INFO] Client disconnected: ")]
    # The healthcheck never connects: exactly the demo clients appear.
    assert len(acks) == len(connected) == len(gone) == len(sent), log.stdout


@pytest.mark.parametrize("server", list(XOR_SERVERS))
def test_published_xor_port_uses_the_configured_key(lab: Lab, server: str) -> None:
    key = lab.env["SECUREMSG_KEY"].encode()
    message = f"host to {server}".encode()
    port = lab.host_port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(xor(message, key)))
        ack = xor(read_frame(sock), key)
    assert ack == f"ACK: Received {len(message)} bytes".encode()


@pytest.mark.parametrize("server", list(NOISE_SERVERS))
def test_noise_server_is_healthy_and_answers_a_host_client(lab: Lab, server: str) -> None:
    log = lab.logs[server]
    assert log.status == "running", (server, log)
    assert NOISE_CIPHER_LINE in log.stdout, log.stdout
    env = dict(lab.env, SECUREMSG_KEY=lab.env["SECUREMSG_NOISE_KEY"], NO_COLOR="1")
    port = lab.host_port(server)
    result = run(
        [
            sys.executable,
            str(ROOT / "python" / "client.py"),
            "--cipher",
            "noise",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--message",
            "secure hello",
        ],
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result
    assert "[RECV] ACK: Received 12 bytes" in result.stdout.splitlines(), result.stdout
    health = must(
        run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", lab.container_id(server)],
            timeout=60,
        )
    ).strip()
    assert health == "healthy"


def test_capture_profile_sees_the_frames(lab: Lab) -> None:
    """`--profile capture`: tcpdump in server-c's namespace prints our frame."""
    must(lab.run("--profile", "capture", "up", "-d", "--no-build", "capture", timeout=UP_TIMEOUT))
    container = lab.container_id("capture")
    deadline = time.monotonic() + 120  # generous: CI machines may be busy
    while "listening on eth0" not in run(["docker", "logs", container], timeout=60).stderr:
        assert time.monotonic() < deadline, "tcpdump did not start"
        time.sleep(0.25)
    key = lab.env["SECUREMSG_KEY"].encode()
    message = b"seen on the wire"
    with socket.create_connection(("127.0.0.1", lab.host_port("server-c")), timeout=10) as sock:
        sock.sendall(frame(xor(message, key)))
        read_frame(sock)
    # The frame is one TCP segment: 4 length bytes + the payload.
    wanted = f"length {4 + len(message)}"
    captured: list[str] = []
    while not any(".5000: Flags [P" in line and wanted in line for line in captured):
        assert time.monotonic() < deadline, f"no packet line with {wanted!r}: {captured}"
        time.sleep(0.25)
        captured = run(["docker", "logs", container], timeout=60).stdout.splitlines()
