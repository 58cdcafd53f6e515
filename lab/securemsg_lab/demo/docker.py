"""The Docker demo backend: the lab images on a network of the demo's own (the Docker SDK).

Servers are containers under readable network aliases (`c-server:5000`); clients run as
`docker exec` in a long-lived container of their image, shown to the class as the
equivalent `docker run`. tcpdump runs in a server's network namespace, the relay
(`securemsg_lab.wire.mitm`) in a container of the Python image. Everything carries the
labels `securemsg.test=1` and `securemsg.demo=<run id>` and is removed on exit.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

from ..core.backend import BackendUnavailable
from ..core.docker import API_ERRORS, NAMED_PORT, compose_service
from ..core.docker import DockerBackend as DockerLab
from ..core.process import Output
from ..core.registry import Implementation
from ..wire.mitm import Tamper, relay_command
from .backends import Backend, Mitm, Server, server_label
from .capture import Capture, relayed_connection, tcpdump_command
from .procs import DemoError, Janitor, LineLog

MITM_PORT = 6000
#: what the capture service of compose.yaml says about privileges (NET_RAW and no more)
CAPTURE_OPTIONS = ("init", "read_only", "cap_drop", "cap_add", "security_opt")
PACKAGE = Path(__file__).resolve().parents[1]  # securemsg_lab, copied into the relay


def _python_implementation(registry: Any) -> str:
    """The relay is Python (securemsg_lab.wire.mitm): it runs in the image of a reference
    implementation whose server is a python3 program there."""
    for impl in registry.references():
        if impl.docker_server[:1] in (("python3",), ("python",)):
            return impl.name
    raise DemoError("no reference implementation runs on python3 in its image (the relay)")


class DockerBackend(Backend):
    """Containers of the lab images on a network of the demo's own."""

    name = "docker"
    run_timeout = 60.0

    def __init__(self, janitor: Janitor, key: str) -> None:
        try:
            lab = DockerLab(label="securemsg.demo", prefix="smdemo")
        except API_ERRORS as exc:
            raise DemoError(f"Docker: {exc}") from exc
        super().__init__(lab, janitor, key)
        self.docker: DockerLab = lab
        self.network = lab.network_name
        self.description = (
            f"containers of the lab images on network {self.network}; clients run as "
            "docker exec in a container of their image, shown as the docker run they equal"
        )

    def alias(self, lang: str, cipher: str) -> str | None:
        return server_label(lang, cipher)

    def image(self, impl: Implementation) -> str:
        return self.docker.images[impl.name].tag

    def shown(self, impl: Implementation, role: str, args: list[str], *,
              interactive: bool = False, connects: bool = True,
              alias: str | None = None) -> list[str]:
        command = [*impl.program(role, "docker"), *args]
        if alias is not None:
            options = ["-d", "--network", self.network, "--network-alias", alias]
        else:
            options = ["--rm", *(["-i"] if interactive else [])]
            options += ["--network", self.network] if connects else []
        return ["docker", "run", *options, self.image(impl), *command]

    def refused_target(self, server: Server) -> tuple[str, int]:
        return (server.target[0], 1)  # the server's container listens on 5000 only

    def follow(self, container: Any, stdout: bool, stderr: bool, name: str) -> Output:
        output = Output("out" if stdout else "err")
        logs = container.logs(stdout=stdout, stderr=stderr, stream=True, follow=True)
        output.pump(lambda: next(logs, b""), name)
        return output

    def tcpdump_capture(self, server: Server) -> Capture | None:
        """tcpdump of compose.yaml's `capture` service in the server container's network
        namespace; None when that image is not there."""
        try:
            service = compose_service("capture")
            self.docker.client.images.get(service["image"])
        except (*API_ERRORS, BackendUnavailable, KeyError):
            return None
        return DockerTcpdumpCapture(self, server, service)

    def relay_capture(self, server: Server) -> Capture:
        return DockerRelayCapture(self, server)

    def start_relay(self, server: Server, tamper: Tamper, record: bool) -> Relay:
        """Run `securemsg_lab.wire.mitm` in a container of the Python image, before `server`."""
        alias = "relay" if record else "mitm"
        flags = ["--once", *(["--record"] if record else [])]
        command = relay_command(("0.0.0.0", MITM_PORT), server.target, tamper, *flags)
        endpoint = self.docker.client.api.create_endpoint_config(aliases=[alias])
        python = self.impl(_python_implementation(self.registry))
        try:
            container = self.docker.create(
                self.cell, alias, self.image(python), command,
                environment={"PYTHONPATH": "/tmp:/app"}, cap_drop=["ALL"],  # noqa: S108
                networking_config={self.network: endpoint})
            # The lab package beside the image's own securemsg (in /app).
            container.put_archive("/tmp", package_archive())  # noqa: S108 - in the container
            container.start()
        except API_ERRORS as exc:
            raise DemoError(f"the relay container did not start: {exc}") from exc
        log = LineLog(self.follow(container, True, True, f"{alias}-logs"))
        log.wait_for(r"^\[MITM\] Listening", timeout=20)
        display = ["docker", "run", "--network", self.network, self.image(python), *command]
        return Relay(container, (alias, MITM_PORT), display, log)

    def stop_relay(self, relay: Relay) -> list[str]:
        """Wait for the relay's one connection to end; return its lines; free its alias."""
        with contextlib.suppress(*API_ERRORS):
            relay.container.wait(timeout=15)
        lines = [entry.text for entry in relay.log.settle(0, quiet=0.1)]
        with contextlib.suppress(*API_ERRORS):
            relay.container.remove(force=True)
        return lines

    def mitm(self, server: Server, tamper: Tamper) -> Mitm:
        relay = self.start_relay(server, tamper, record=False)
        mitm = Mitm(relay.target, relay.display)

        def finish() -> None:
            mitm.lines[:] = self.stop_relay(relay)

        mitm.finish = finish
        return mitm


class Relay:
    """The demo's relay running in a container in front of a server."""

    def __init__(self, container: Any, target: tuple[str, int], display: list[str],
                 log: LineLog) -> None:
        self.container, self.target, self.display, self.log = container, target, display, log


def package_archive() -> bytes:
    """A tar of the securemsg_lab package's modules (what the relay imports)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(PACKAGE.rglob("*.py")):
            tar.add(path, arcname=str(Path(PACKAGE.name) / path.relative_to(PACKAGE)))
    return buffer.getvalue()


class DockerTcpdumpCapture(Capture):
    """tcpdump in the server container's network namespace, pcap on its stdout, stopped
    with SIGINT (it flushes on the way out)."""

    def __init__(self, backend: DockerBackend, server: Server, service: dict[str, Any]) -> None:
        self.backend, self.server = backend, server
        self.method = "tcpdump"
        self.connections = []
        self.target = server.target
        self.command = tcpdump_command("eth0", NAMED_PORT)
        self.image = service["image"]
        self.options = {key: service[key] for key in CAPTURE_OPTIONS if key in service}
        self.display = ["docker", "run", "--rm", "--network", f"container:{server.target[0]}",
                        self.image, *self.command]

    def start(self) -> None:
        backend, server = self.backend, self.server
        container = getattr(server.core, "container", None)
        try:
            self.container = backend.docker.create(
                backend.cell, "tcpdump", self.image, self.command, **self.options,
                network_mode=f"container:{container.id}")
            self.pcap, stderr = backend.docker.attach(self.container)  # pcap: binary
            self.container.start()
        except (*API_ERRORS, AttributeError) as exc:
            raise DemoError(f"tcpdump did not start: {exc}") from exc
        errors = LineLog(stderr)
        try:
            errors.wait_for(r"listening on", timeout=15)
        except DemoError as exc:
            detail = "; ".join(line.text for line in errors.since(0)) or "no output"
            raise DemoError(f"tcpdump did not start: {detail}") from exc

    def stop(self) -> None:
        time.sleep(0.3)  # the last ACKs and FINs
        with contextlib.suppress(*API_ERRORS):
            self.container.kill(signal="SIGINT")
            self.container.wait(timeout=15)
        self.pcap.wait_closed(5)
        self.pcap_bytes = self.pcap.snapshot()
        self._parse(NAMED_PORT)


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
