"""The Docker backend: containers of the lab images on a network of the demo's own.

Every container and the network carry the labels `securemsg.test=1` and
`securemsg.demo=<run id>`; the cleanup removes whatever carries this run's label.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from demolib.backends import (
    IMAGES,
    START_TIMEOUT,
    Backend,
    Mitm,
    Program,
    Server,
    Wrapped,
    server_label,
    wait_listening,
)
from demolib.capture import Capture, TcpdumpCapture, relayed_connection, tcpdump_command
from demolib.mitm import Tamper, relay_command
from demolib.procs import DemoError, Janitor, LineLog, run

LAB_PORT = 5000
MITM_PORT = 6000
BASE_IMAGE = "securemsg/base:bookworm"


@dataclass
class Relay:
    """The demo's relay (`demolib.mitm`) running in a container in front of a server."""

    name: str
    target: tuple[str, int]
    display: list[str]
    proc: subprocess.Popen[bytes]
    log: LineLog


class DockerBackend(Backend):
    """Containers of the lab images on a network of the demo's own."""

    name = "docker"
    description = "containers of the lab images"
    prefixes: ClassVar[dict[str, str]] = {"c": "/", "py": "/app/"}
    run_timeout = 60.0

    def __init__(self, repo: Path, janitor: Janitor, key: str) -> None:
        super().__init__(repo, janitor, key)
        self.run_id = secrets.token_hex(3)
        self.network = f"smdemo-{self.run_id}"
        self.labels = ["--label", "securemsg.test=1", "--label", f"securemsg.demo={self.run_id}"]
        self.description = (
            f"containers of the lab images on network {self.network}; commands are shown "
            "without the demo's --name, --label and -p options"
        )
        self._count = 0
        self._lock = threading.Lock()

    @staticmethod
    def engine_answers() -> bool:
        if not shutil.which("docker"):
            return False
        try:
            result = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)
        except DemoError:
            return False
        return result.returncode == 0

    def images_missing(self) -> list[str]:
        return [
            image
            for image in IMAGES.values()
            if self.run(["docker", "image", "inspect", image], timeout=20).returncode != 0
        ]

    def prepare(self) -> None:
        missing = self.images_missing()
        if missing:
            self.build_images(missing)
        self.janitor.add("docker sweep", self.sweep)  # runs last: after every process
        create = ["docker", "network", "create", *self.labels, self.network]
        self.run(create, timeout=30).check("docker network create")

    def build_images(self, missing: list[str]) -> None:
        lab = self.repo / "docker" / "lab.sh"
        if not lab.exists():
            raise DemoError(f"images missing ({', '.join(missing)}) and no docker/lab.sh")
        print(
            f"Building the lab images ({', '.join(missing)} missing): docker/lab.sh build",
            file=sys.stderr,
            flush=True,
        )
        result = self.run([str(lab), "build"], timeout=1800)
        if result.returncode != 0 or self.images_missing():
            raise DemoError("docker/lab.sh build failed: " + " | ".join(result.stderr[-3:]))

    def sweep(self) -> None:
        """Remove every container and the network carrying this run's label."""
        label = f"label=securemsg.demo={self.run_id}"
        ids = self.run(["docker", "ps", "-aq", "--filter", label], timeout=30).stdout
        if ids:
            self.run(["docker", "rm", "-f", *ids], timeout=60)
        nets = self.run(["docker", "network", "ls", "-q", "--filter", label], timeout=30).stdout
        if nets:
            self.run(["docker", "network", "rm", *nets], timeout=60)

    def _owned(self, what: str) -> tuple[str, list[str]]:
        """A new container's unique name, and the options that give it the name and labels."""
        with self._lock:
            self._count += 1
            name = f"{self.network}-{what}-{self._count}"
        return name, ["--name", name, *self.labels]

    def wrap(self, program: Program) -> Wrapped:
        """`docker run --rm` of the language's image on the demo's network. Shown without
        the name and labels, and without the network when the program never connects."""
        _name, owned = self._owned(program.role)
        options = ["--rm", *(["-i"] if program.interactive else [])]
        network = ["--network", self.network]
        image, command = IMAGES[program.lang], program.argv
        argv = ["docker", "run", *options, *owned, *network, image, *command]
        shown = [*options, *(network if program.connects else [])]
        return argv, ["docker", "run", *shown, image, *command]

    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> Server:
        alias = server_label(lang, cipher)
        name, owned = self._owned(alias)
        command = self.server_command(lang, str(LAB_PORT), key, cipher)
        shown = ["-d", "--network", self.network, "--network-alias", alias]
        # A terminal merges stdout and stderr into one stream, in the order written
        # (docker logs cannot order two pipes); NO_COLOR keeps the tags plain.
        hidden = ["-t", "-e", "NO_COLOR=1", *owned, "-p", f"127.0.0.1::{LAB_PORT}"]
        argv = ["docker", "run", *shown, *hidden, IMAGES[lang], *command]
        self.run(argv, timeout=60).check(f"docker run {IMAGES[lang]}")
        logs = self.spawn(["docker", "logs", "-f", name], "docker logs")
        published = self.run(["docker", "port", name, f"{LAB_PORT}/tcp"], timeout=20).stdout
        host_port = int(published[0].rsplit(":", 1)[1]) if published else LAB_PORT
        display = ["docker", "run", *shown, IMAGES[lang], *command]
        addresses = ((alias, LAB_PORT), ("127.0.0.1", host_port))
        server = Server(lang, cipher, *addresses, LineLog(logs), display, name)
        return wait_listening(server, f"container {alias}")

    def refused_target(self, server: Server) -> tuple[str, int]:
        return (server.target[0], 1)  # the server's container listens on 5000 only

    def tcpdump_capture(self, server: Server) -> Capture | None:
        """tcpdump of the base image in the server container's network namespace."""
        assert server.container is not None
        name, owned = self._owned("tcpdump")
        command = tcpdump_command("eth0", LAB_PORT)
        joined = f"container:{server.container}"
        argv = ["docker", "run", "--rm", *owned, "--network", joined, BASE_IMAGE, *command]
        shown = f"container:{server.target[0]}"
        display = ["docker", "run", "--rm", "--network", shown, BASE_IMAGE, *command]
        stopper = ["docker", "kill", "--signal", "INT", name]
        return TcpdumpCapture(argv, display, server.target, LAB_PORT, self.janitor, stopper)

    def relay_capture(self, server: Server) -> Capture:
        return DockerRelayCapture(self, server)

    def start_relay(self, server: Server, tamper: Tamper, record: bool) -> Relay:
        """Run `demolib.mitm` in a container of the Python image, in front of `server`."""
        alias = "relay" if record else "mitm"
        name, owned = self._owned(alias)
        flags = ["--once", *(["--record"] if record else [])]
        module = relay_command(("0.0.0.0", MITM_PORT), server.target, tamper, *flags)
        # demolib is copied to /tmp; the project's package it imports is the image's, in /app.
        network = ["--network", self.network, "--network-alias", alias]
        create = ["docker", "create", *owned, *network, "-e", "PYTHONPATH=/tmp:/app"]
        self.run([*create, IMAGES["py"], *module], timeout=60).check("docker create (mitm)")
        package = str(Path(__file__).resolve().parent)
        copy = ["docker", "cp", package, f"{name}:/tmp/demolib"]
        self.run(copy, timeout=60).check("docker cp (mitm)")
        proc = self.spawn(["docker", "start", "-a", name], f"docker {alias}", merge=False)
        log = LineLog(proc)
        log.wait_for(r"^\[MITM\] Listening", timeout=START_TIMEOUT)
        display = ["docker", "run", "--network", self.network, IMAGES["py"], *module]
        return Relay(name, (alias, MITM_PORT), display, proc, log)

    def stop_relay(self, relay: Relay) -> list[str]:
        """Wait for the relay's one connection to end; return its lines; free its alias."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            relay.proc.wait(timeout=15)
        lines = [entry.text for entry in relay.log.settle(0, quiet=0.1)]
        self.run(["docker", "rm", "-f", relay.name], timeout=30)
        return lines

    def mitm(self, server: Server, tamper: Tamper) -> Mitm:
        relay = self.start_relay(server, tamper, record=False)
        mitm = Mitm(relay.target, relay.display)

        def finish() -> None:
            mitm.lines[:] = self.stop_relay(relay)

        mitm.finish = finish
        return mitm


class DockerRelayCapture(Capture):
    """Fallback when tcpdump cannot run in a container: the relay, recording, in one."""

    def __init__(self, backend: DockerBackend, server: Server) -> None:
        self.backend, self.server = backend, server
        self.method = "relay"
        self.connections = []

    def start(self) -> None:
        self.relay = self.backend.start_relay(self.server, Tamper(), record=True)
        self.target, self.display = self.relay.target, self.relay.display

    def stop(self) -> None:
        for line in self.backend.stop_relay(self.relay):
            if line.startswith("{"):
                record = json.loads(line)
                up, down = bytes.fromhex(record["to_server"]), bytes.fromhex(record["to_client"])
                self.connections.append(
                    relayed_connection(record["peer"], self.server.target, up, down)
                )
