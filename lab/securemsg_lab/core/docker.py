"""The Docker backend: an implementation's image, on a network of the run's own, through
the Docker SDK (one client, no `docker` CLI).

Servers are containers of their own (own PID and mount namespaces, own log, SIGTERM
through the engine) that join the network namespace of a long-lived holder container
of their implementation and listen on port 0: clients reach them as HOLDER:PORT, and a
stopped server's address refuses connections, as on a host. Clients run as `docker
exec` in another holder: an exec costs a fifth of a container start on a loaded 2-core
machine, and a matrix runs some 400 clients.

Images come from the registry: an entry's `compose_service` takes image name, build and
hardening from compose.yaml (the built-in entries); otherwise its `image`, built from its
`build` context when given. Images are built when missing or older than the sources,
never pulled. Everything created carries the labels `securemsg.test=1` and
`securemsg.run=<run id>` and is removed when the backend closes (atexit too).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
import urllib3.exceptions
import yaml

import docker

from . import timeouts
from .backend import (
    NOISE_KEY_LENGTH,
    RELAY_MODULE,
    TCPDUMP_OPTIONS,
    Backend,
    BackendError,
    BackendUnavailable,
    Cell,
    Interactive,
    Server,
    Tool,
)
from .paths import COMPOSE_FILE, REPO
from .process import LaunchError, Output, ProcResult, listening_port
from .registry import Implementation

KEY_PATH = "/run/securemsg.psk"
RELAY_PORT = 6000
#: what the capture service of compose.yaml says about privileges (NET_RAW and no more)
CAPTURE_OPTIONS = ("init", "read_only", "cap_drop", "cap_add", "security_opt")
PACKAGE = Path(__file__).resolve().parents[1]  # securemsg_lab, copied into the relay
NAMED_PORT = 5000  # a server on an endpoint of its own listens where the lab's do
#: compose.yaml's x-common, for images that do not come from compose.yaml
HARDENING: dict[str, Any] = {"init": True, "read_only": True, "cap_drop": ["ALL"],
                             "security_opt": ["no-new-privileges:true"]}
API_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException,
              urllib3.exceptions.HTTPError)
#: what goes into the built-in images: a newer file means a stale image
SOURCE_GLOBS = ("c/*.c", "c/*.h", "c/Makefile", "python/**/*.py", "docker/*.Dockerfile",
                "docker/healthcheck.c")


@dataclass
class Image:
    """Where an implementation's image comes from, and how its containers run."""

    tag: str
    context: Path | None = None
    dockerfile: str = "Dockerfile"
    hardening: dict[str, Any] = field(default_factory=lambda: dict(HARDENING))
    from_compose: bool = False


def compose_service(name: str, compose: Path = COMPOSE_FILE) -> dict[str, Any]:
    """One service of compose.yaml, as written (anchors resolved)."""
    try:
        return yaml.safe_load(compose.read_text())["services"][name]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise BackendUnavailable(f"{compose}: no service {name}: {error}") from error


def resolve_image(impl: Implementation, compose: Path = COMPOSE_FILE) -> Image:
    if not impl.compose_service:
        if not impl.image:
            raise BackendUnavailable(f"{impl.name}: no Docker image in its registry entry")
        return Image(impl.image, impl.build_context, impl.dockerfile or "Dockerfile")
    service = compose_service(impl.compose_service, compose)
    build = service.get("build") or {}
    build = {"context": build} if isinstance(build, str) else build
    return Image(service["image"], (compose.parent / build.get("context", ".")).resolve(),
                 build.get("dockerfile", "Dockerfile"),
                 {key: service[key] for key in HARDENING if key in service}, from_compose=True)


def newest_source(root: Path = REPO) -> float:
    times = [path.stat().st_mtime for pattern in SOURCE_GLOBS for path in root.glob(pattern)
             if "__pycache__" not in path.parts]
    return max(times, default=0.0)


def exec_frames(raw: Any) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream (no tty): 8-byte header (stream, size), then data.

    Read through the HTTP response's buffered reader: docker-py's exec_start reads
    the raw socket past that buffer and now and then loses a program's first lines
    (docker/docker-py#3332), so its `demux=True` cannot be used here."""
    while len(header := raw.read(8)) == 8:
        yield header[0], raw.read(int.from_bytes(header[4:8], "big"))


def package_archive() -> bytes:
    """A tar of the securemsg_lab package's modules (what the relay imports)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(PACKAGE.rglob("*.py")):
            tar.add(path, arcname=str(Path(PACKAGE.name) / path.relative_to(PACKAGE)))
    return buffer.getvalue()


class DockerTool(Tool):
    """tcpdump or the relay in a container of the run, its output attached byte for byte;
    removed once it has exited (an alias is then free again)."""

    def __init__(self, container: Any, output: Output, errors: Output,
                 display: list[str]) -> None:
        self.container, self.output, self.errors, self.display = (
            container, output, errors, display)

    def interrupt(self) -> None:
        with contextlib.suppress(*API_ERRORS):
            self.container.kill(signal="SIGINT")

    def wait(self, timeout: float) -> None:
        with contextlib.suppress(*API_ERRORS):
            self.container.wait(timeout=timeout)
        self.output.wait_closed(timeouts.scaled(timeouts.STOP))
        with contextlib.suppress(*API_ERRORS):
            self.container.remove(force=True)


class DockerServer(Server):
    """A server container in a holder's network namespace, its stdout followed."""

    def __init__(self, backend: DockerBackend, cell: Cell, impl: Implementation,
                 container: Any, argv: list[str], holder: Any,
                 follow_errors: bool = False) -> None:
        self.backend, self.cell, self.impl = backend, cell, impl
        self.container, self.argv, self.holder = container, argv, holder
        self.started = time.monotonic()
        self.result: ProcResult | None = None
        # One streaming connection instead of polling the logs: the cases wait for
        # lines, and polling loads the daemon under a parallel run. stderr is read at
        # the end, unless asked for as it comes (the demo shows [ERROR] lines live).
        self.output = self._follow(container, "out")
        self.errors = self._follow(container, "err") if follow_errors else Output("err")
        if not follow_errors:
            self.errors.close()

    @staticmethod
    def _follow(container: Any, stream: str) -> Output:
        output = Output(stream)
        logs = container.logs(stdout=stream == "out", stderr=stream == "err", stream=True,
                              follow=True)
        output.pump(lambda: next(logs, b""), f"logs-{stream}-{container.name}")
        return output

    def wait_listening(self, timeout: float, alias: str | None = None) -> None:
        try:
            port = listening_port(self.output, f"{self.impl.name} server container", timeout)
        except LaunchError as error:
            self.stop()
            raise BackendError(str(error)) from error
        endpoint = self.holder or self.container  # whose network namespace it listens in
        self.client_host, self.client_port = alias or endpoint.name, port
        self.raw_host, self.raw_port = self.backend.address_of(endpoint), port

    def stop(self) -> ProcResult:
        if self.result is not None:
            return self.result
        exit_code: int | None = None
        timed_out = False
        self.terminate()
        try:
            exit_code = self.container.wait(timeout=self.cell.remaining(10.0))["StatusCode"]
        except API_ERRORS:
            timed_out = True
        # The log stream ends with the container: its copy saves reading stdout twice.
        ended = self.output.wait_closed(2.0)
        try:
            if timed_out:
                self.container.kill()
            stdout = self.output.snapshot() if ended else self.container.logs(stderr=False)
            stderr = self.container.logs(stdout=False, stderr=True)
        except API_ERRORS as error:
            stdout, stderr = self.output.snapshot(), f"[lab] cannot read logs: {error}\n".encode()
        self.result = self.cell.record(ProcResult(
            role="server", argv=self.argv, exit_code=exit_code, stdout=stdout, stderr=stderr,
            duration=time.monotonic() - self.started, timed_out=timed_out))
        return self.result

    def stopped_target(self) -> tuple[str, int]:
        return self.client_host, self.client_port

    def _send_sigterm(self) -> None:
        with contextlib.suppress(*API_ERRORS):  # already exited: status and logs tell why
            self.container.kill(signal="SIGTERM")


class Exec:
    """A program run with `docker exec` in a holder: stdin written, streams demultiplexed."""

    def __init__(self, backend: DockerBackend, holder: Any, argv: list[str], *,
                 stdin: bool, merge: bool = False) -> None:
        api = backend.client.api
        self.api, self.argv = api, argv
        self.out = Output("out")
        self.err = self.out if merge else Output("err")
        self.id = api.exec_create(holder.id, argv, stdin=stdin,
                                  environment={"NO_COLOR": "1"})["Id"]
        # Without "Upgrade" the engine answers 200 and hands over the connection: the
        # response is then read to its end like any body, through its buffer.
        self.response = api._post_json(api._url("/exec/{0}/start", self.id),
                                       data={"Detach": False, "Tty": False}, stream=True)
        api._raise_for_status(self.response)
        self.sock: socket.socket = api._get_raw_response_socket(self.response)._sock
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._demux, daemon=True, name="exec")
        self._reader.start()

    def _demux(self) -> None:
        try:
            for stream, data in exec_frames(self.response.raw):
                (self.err if stream == 2 else self.out).feed(data)
        except (*API_ERRORS, OSError, ValueError):
            pass  # closed under us (a timeout): what came so far is the output
        finally:
            self.out.close()
            self.err.close()

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def finish(self, timeout: float) -> tuple[int | None, bool]:
        """Wait for the end of the streams; (exit code, timed out)."""
        self._reader.join(timeout)
        timed_out = self._reader.is_alive()
        with contextlib.suppress(OSError):
            self.response.close()
        if timed_out:
            return None, True
        for _ in range(50):  # the stream ends a moment before the exit is recorded
            info = self.api.exec_inspect(self.id)
            if not info["Running"]:
                return info["ExitCode"], False
            time.sleep(0.02)
        return None, False


class ExecServer(DockerServer):
    """A server run with `docker exec` in the holder whose network namespace it uses.

    A container per server costs the engine a root-filesystem mount, a runc start and
    a removal; an exec a fifth of that, which makes the matrix about 40 % faster (47.6
    against 67.5 s for 200 cells on a loaded 2-core machine). The engine has no API to
    signal an exec'd process, so SIGTERM goes to its host PID (exec_inspect), checked
    against its command line: possible only where the engine's processes are this
    machine's (see exec_servers_possible).
    """

    def __init__(self, backend: DockerBackend, cell: Cell, impl: Implementation,
                 holder: Any, argv: list[str]) -> None:
        self.backend, self.cell, self.impl = backend, cell, impl
        self.container = self.holder = holder
        self.argv = argv
        self.started = time.monotonic()
        self.result = None
        self.execution = Exec(backend, holder, argv, stdin=False)
        self.output, self.errors = self.execution.out, self.execution.err
        self._pid = 0

    def pid(self) -> int:
        """The server's host PID, checked against its command line (never a reused PID)."""
        if not self._pid:
            pid = 0
            for _ in range(100):  # the engine records the PID a moment after the start
                pid = int(self.execution.api.exec_inspect(self.execution.id).get("Pid") or 0)
                if pid > 0:
                    break
                time.sleep(0.02)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                cmdline = []
            if pid <= 0 or self.argv[0].encode() not in cmdline[:2]:
                raise BackendError(f"exec'd {self.impl.name} server: PID {pid} not visible "
                                   "here (SECUREMSG_MATRIX_SERVERS=container for a remote "
                                   "engine)")
            self._pid = pid
        return self._pid

    def send_signal(self, signum: int) -> None:
        if not self.output.closed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid(), signum)

    def _send_sigterm(self) -> None:
        self.send_signal(signal.SIGTERM)

    def stop(self) -> ProcResult:
        if self.result is not None:
            return self.result
        self.terminate()
        code, timed_out = self.execution.finish(self.cell.remaining(10.0))
        if timed_out:
            with contextlib.suppress(BackendError):
                self.send_signal(signal.SIGKILL)
        self.result = self.cell.record(ProcResult(
            role="server", argv=self.argv, exit_code=code, stdout=self.output.snapshot(),
            stderr=self.execution.err.snapshot(), duration=time.monotonic() - self.started,
            timed_out=timed_out))
        return self.result


def exec_servers_possible() -> bool:
    """Whether servers may run as `docker exec`s signalled from here (ExecServer): the
    engine's processes on this machine (Linux, a local socket: not a remote engine, not
    Docker Desktop's VM) and the right to signal them (root, or a rootless engine of this
    user). Otherwise, or with SECUREMSG_MATRIX_SERVERS=container, each server gets a
    container of its own."""
    if os.environ.get("SECUREMSG_MATRIX_SERVERS", "exec") == "container":
        return False
    host = os.environ.get("DOCKER_HOST", "unix://")
    if sys.platform != "linux" or not host.startswith("unix://"):
        return False
    return os.geteuid() == 0 or host.startswith(f"unix:///run/user/{os.getuid()}/")


class DockerInteractive(Interactive):
    def __init__(self, cell: Cell, execution: Exec) -> None:
        self.cell, self.execution, self.argv = cell, execution, execution.argv
        self.output = execution.out
        self.started = time.monotonic()

    def write(self, data: bytes) -> None:
        self.execution.write(data)

    def close(self, timeout: float) -> ProcResult:
        self.execution.close_stdin()
        code, timed_out = self.execution.finish(timeout)
        return self.cell.record(ProcResult(
            "client", self.argv, code, self.output.snapshot(), b"",
            time.monotonic() - self.started, timed_out))


class DockerBackend(Backend):
    name = "docker"
    where = "docker"
    concurrent_clients = 20

    def __init__(self, rebuild: bool = False, label: str = "securemsg.run",
                 prefix: str = "securemsg-test") -> None:
        """`label`=<run id> marks everything of this run (the demo: securemsg.demo);
        the run's network is PREFIX-<run id>."""
        self.rebuild = rebuild
        self.run_id = secrets.token_hex(4)
        self.labels = {"securemsg.test": "1", label: self.run_id}
        self.label_filter = f"{label}={self.run_id}"
        self.network_name = f"{prefix}-{self.run_id}"
        self.description = (
            f"containers of the lab images on network {self.network_name}; clients run as "
            "docker exec in a container of their image, shown as the docker run they equal")
        try:
            self.client = docker.from_env(timeout=120, max_pool_size=64)
            self.client.ping()
        except API_ERRORS as error:
            raise BackendUnavailable(f"no Docker engine answers: {error}") from error
        self._lock = threading.Lock()
        self.images: dict[str, Image] = {}
        self._impls: dict[str, Implementation] = {}
        self._cells: dict[str, list[Any]] = {}
        self._holders: dict[tuple[str, str], Any] = {}
        self._holder_ports: dict[tuple[str, str], int] = {}
        self._holder_locks: dict[tuple[str, str], threading.Lock] = {}
        self._addresses: dict[str, str] = {}
        self.exec_servers = exec_servers_possible()
        self._exec_servers: dict[str, list[DockerServer]] = {}
        self._reaper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reaper")
        self._closed = False
        self._lab_built = False
        self._tmp = Path(tempfile.mkdtemp(prefix="securemsg-docker-"))
        self._key = self._tmp / "noise.psk"
        self._key.write_bytes(os.urandom(NOISE_KEY_LENGTH))
        self._key.chmod(0o644)  # read by the containers' non-root user
        try:
            self.network = self.client.networks.create(
                self.network_name, driver="bridge", labels=self.labels, check_duplicate=True)
        except API_ERRORS as error:
            raise BackendUnavailable(f"cannot create network {self.network_name}: {error}") \
                from error
        atexit.register(self.close)

    # --- images and holders ------------------------------------------------------------------

    def prepare(self, impls: list[Implementation]) -> None:
        for impl in impls:
            with self._lock:
                known = impl.name in self.images
            if not known:
                image = resolve_image(impl)
                self._ensure_image(image)
                with self._lock:
                    self.images[impl.name] = image
                    self._impls[impl.name] = impl
        # Every holder up front and in parallel, not lazily by the first cell needing it.
        wanted = [(impl, purpose) for impl in impls for purpose in ("clients", "servers",
                                                                   "stopped")]
        with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            for future in [pool.submit(self._holder, *key) for key in wanted]:
                future.result()

    def _ensure_image(self, image: Image) -> None:
        """Build when missing, when asked to, or (compose images) when a source file is
        newer than the image; the layer cache makes a no-op build quick."""
        reason = "--rebuild" if self.rebuild and image.context else None
        try:
            found = self.client.images.get(image.tag)
            created = datetime.datetime.fromisoformat(
                found.attrs["Created"][:26].rstrip("Z") + "+00:00").timestamp()
            if reason is None and image.from_compose and newest_source() > created:
                reason = "sources newer than the image"
        except docker.errors.ImageNotFound:
            reason = "missing"
        if reason is None:
            return
        if image.context is None:
            raise BackendUnavailable(f"image {image.tag} is missing and its entry has no build")
        print(f"[lab] building {image.tag} ({reason}) from {image.dockerfile}", file=sys.stderr)
        if image.from_compose:
            self._build_lab_images()
            return
        try:
            self.client.images.build(path=str(image.context), dockerfile=image.dockerfile,
                                     tag=image.tag, pull=False, rm=True, forcerm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as error:
            raise BackendUnavailable(f"building {image.tag} failed: {error}") from error

    def _build_lab_images(self) -> None:
        """compose.yaml's images are built the lab's way (base images, build arguments):
        docker/lab.sh build, once per backend; the layer cache makes a no-op build quick."""
        with self._lock:
            if self._lab_built:
                return
            self._lab_built = True
        try:
            subprocess.run([str(REPO / "docker" / "lab.sh"), "build"], check=True,
                           timeout=1800, stdout=sys.stderr)
        except (OSError, subprocess.SubprocessError) as error:
            raise BackendUnavailable(f"docker/lab.sh build failed: {error}") from error

    def _holder(self, impl: Implementation, purpose: str = "clients") -> Any:
        """A long-lived container of `impl`'s image: clients are exec'd in the `clients`
        one, servers share the network namespace of the `servers` one (`stopped` for the
        stopped-server case, so no other server takes a stopped one's port). An idle
        server on loopback keeps it running (the C image has no shell, no sleep)."""
        key = (impl.name, purpose)
        holder = self._holders.get(key)  # the common case: no lock
        if holder is not None:
            return holder
        with self._lock:
            lock = self._holder_locks.setdefault(key, threading.Lock())
        with lock:  # one start per holder; other holders start at the same time
            if key not in self._holders:
                self._start_holder(impl, purpose)
            return self._holders[key]

    def _start_holder(self, impl: Implementation, purpose: str) -> None:
        argv = [*impl.program("server", "docker"), *impl.server_args(0, ["--bind", "127.0.0.1"])]
        cell = Cell(f"{purpose}-{impl.name}", timeout=timeouts.scaled(60))
        container = self._create(cell, purpose, impl, argv)
        container.start()
        output = Output("out")
        logs = container.logs(stdout=True, stderr=False, stream=True, follow=True)
        output.pump(lambda: next(logs, b""), f"holder-{impl.name}-{purpose}")
        try:
            port = listening_port(output, f"{impl.name} holder", timeouts.scaled(30))
        except LaunchError as error:
            raise BackendUnavailable(str(error)) from error
        with self._lock:
            self._holders[(impl.name, purpose)] = container
            self._holder_ports[(impl.name, purpose)] = port

    def address_of(self, container: Any) -> str:
        """A container's address on the run's network (known once, never changes)."""
        with self._lock:
            if container.id in self._addresses:
                return self._addresses[container.id]
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]
        with self._lock:
            self._addresses[container.id] = address
        return address

    def _attach(self, container: Any) -> tuple[Output, Output]:
        """A created container's stdout and stderr byte for byte (the log driver would
        store binary output as text): attach before `start()`, so nothing comes before."""
        api = self.client.api
        response = api._post(api._url("/containers/{0}/attach", container.id),
                             params={"stdout": 1, "stderr": 1, "stream": 1}, stream=True)
        api._raise_for_status(response)
        out, err = Output("out"), Output("err")

        def demux() -> None:
            try:
                for stream, data in exec_frames(response.raw):
                    (err if stream == 2 else out).feed(data)
            except (*API_ERRORS, OSError, ValueError):
                pass
            finally:
                out.close()
                err.close()
                response.close()

        threading.Thread(target=demux, daemon=True, name=f"attach-{container.name}").start()
        return out, err

    def key_file(self) -> str:
        return KEY_PATH

    def key_bytes(self) -> bytes:
        return self._key.read_bytes()

    # --- containers and execs ------------------------------------------------------------------

    def _create(self, cell: Cell, role: str, impl: Implementation, argv: list[str],
                **extra: Any) -> Any:
        """A container of `impl`'s image, hardened, with the run's key file."""
        image = self.images[impl.name]
        return self._container(cell, role, image.tag, argv, **{
            **image.hardening, "environment": {"NO_COLOR": "1"},
            "volumes": {str(self._key): {"bind": KEY_PATH, "mode": "ro"}}, **extra})

    def _container(self, cell: Cell, role: str, image: str, argv: list[str], **options: Any) -> Any:
        """A container on the run's network, named and labelled for the run, removed with
        the cell (`finish_cell`) or the backend (`close`); `options` as containers.create."""
        if self._closed:
            raise BackendError("the Docker backend is closed (run interrupted)")
        # A DNS label holds at most 63 characters: longer names do not resolve.
        name = f"sm-{self.run_id}-{cell.slug}"[:46] + f"-{role[:8]}-{secrets.token_hex(2)}"
        labels = {**self.labels, "securemsg.cell": cell.slug, "securemsg.role": role}
        options = {"name": name, "network": self.network_name, "labels": labels, **options}
        if options.get("network_mode"):
            options.pop("network")
        container = self.client.containers.create(image, argv, **options)
        with self._lock:
            self._cells.setdefault(cell.cell_id, []).append(container)
        return container

    def start_server(self, cell: Cell, impl: Implementation, options: list[str], *,
                     refuse_after_stop: bool = False, alias: str | None = None) -> Server:
        if alias is not None:
            return self._start_named_server(cell, impl, options, alias)
        holder = self._holder(impl, "stopped" if refuse_after_stop else "servers")
        argv = [*impl.program("server", "docker"), *impl.server_args(0, options)]
        try:
            if self.exec_servers:
                server: DockerServer = ExecServer(self, cell, impl, holder, argv)
                with self._lock:
                    self._exec_servers.setdefault(cell.cell_id, []).append(server)
            else:
                container = self._create(cell, "server", impl, argv,
                                         network_mode=f"container:{holder.id}")
                container.start()
                server = DockerServer(self, cell, impl, container, argv, holder)
        except API_ERRORS as error:
            raise BackendError(f"cannot start the {impl.name} server: {error}") from error
        server.wait_listening(cell.remaining(timeouts.START))
        if isinstance(server, ExecServer):
            server.pid()  # fails the cell now, not at stop(), if it cannot be signalled
        return server

    def _start_named_server(self, cell: Cell, impl: Implementation, options: list[str],
                            alias: str) -> Server:
        """A server container on an endpoint of its own, reached as ALIAS:5000 (the demo:
        names a class can read, a network namespace tcpdump can join)."""
        argv = [*impl.program("server", "docker"), *impl.server_args(NAMED_PORT, options)]
        endpoint = self.client.api.create_endpoint_config(aliases=[alias])
        try:
            container = self._create(cell, "server", impl, argv,
                                     networking_config={self.network_name: endpoint})
            container.start()
            server = DockerServer(self, cell, impl, container, argv, None, follow_errors=True)
        except API_ERRORS as error:
            raise BackendError(f"cannot start the {impl.name} server: {error}") from error
        server.wait_listening(cell.remaining(timeouts.START), alias)
        return server

    def _exec(self, cell: Cell, impl: Implementation, role: str, argv: list[str],
              stdin: bytes | None, timeout: float, merge: bool = False) -> ProcResult:
        started = time.monotonic()
        try:
            execution = Exec(self, self._holder(impl), argv, stdin=stdin is not None,
                             merge=merge)
        except API_ERRORS as error:
            raise BackendError(f"cannot exec the {impl.name} {role}: {error}") from error
        if stdin is not None:  # written while the output is read: output never waits
            threading.Thread(target=self._feed, args=(execution, stdin), daemon=True).start()
        code, timed_out = execution.finish(cell.remaining(timeout))
        return cell.record(ProcResult(
            role=role, argv=argv, exit_code=code, stdout=execution.out.snapshot(),
            stderr=b"" if merge else execution.err.snapshot(),
            duration=time.monotonic() - started, timed_out=timed_out))

    @staticmethod
    def _feed(execution: Exec, data: bytes) -> None:
        with contextlib.suppress(OSError):
            execution.write(data)
        execution.close_stdin()

    def run_client(self, cell: Cell, impl: Implementation, args: list[str], *,
                   stdin: bytes | None = None, timeout: float = 20.0,
                   role: str = "client", merge: bool = False) -> ProcResult:
        argv = [*impl.program("client", "docker"), *args]
        return self._exec(cell, impl, role, argv, stdin, timeout, merge)

    def run_server_program(self, cell: Cell, impl: Implementation, args: list[str],
                           timeout: float = 10.0, merge: bool = False) -> ProcResult:
        argv = [*impl.program("server", "docker"), *args]
        return self._exec(cell, impl, "server", argv, None, timeout, merge)

    def open_client(self, cell: Cell, impl: Implementation, args: list[str]) -> Interactive:
        argv = [*impl.program("client", "docker"), *args]
        try:
            return DockerInteractive(cell, Exec(self, self._holder(impl), argv, stdin=True,
                                                merge=True))
        except API_ERRORS as error:
            raise BackendError(f"cannot exec the {impl.name} client: {error}") from error

    def refused_target(self, cell: Cell, impl: Implementation) -> tuple[str, int]:
        """The client holder's own loopback, beside its idle server's port."""
        busy = self._holder_ports.get((impl.name, "clients"))
        return "127.0.0.1", 5000 if busy != 5000 else 5001

    def display(self, impl: Implementation, argv: list[str], *, interactive: bool = False,
                connects: bool = True, alias: str | None = None) -> list[str]:
        """The `docker run` that equals what runs (clients are execs in a holder)."""
        if alias is not None:
            options = ["-d", "--network", self.network_name, "--network-alias", alias]
        else:
            options = ["--rm", *(["-i"] if interactive else [])]
            options += ["--network", self.network_name] if connects else []
        return ["docker", "run", *options, self.images[impl.name].tag, *argv]

    def start_tcpdump(self, cell: Cell, server: Server) -> Tool | None:
        """tcpdump of compose.yaml's `capture` service in the server's network namespace;
        None when that image is not there."""
        try:
            service = compose_service("capture")
            self.client.images.get(service["image"])
        except (*API_ERRORS, BackendUnavailable, KeyError):
            return None
        if not isinstance(server, DockerServer):
            raise BackendError("tcpdump joins a server of this backend only")
        netns = server.holder or server.container
        command = ["tcpdump", "-i", "eth0", *TCPDUMP_OPTIONS, f"tcp port {server.raw_port}"]
        options = {key: service[key] for key in CAPTURE_OPTIONS if key in service}
        try:
            container = self._container(cell, "tcpdump", service["image"], command, **options,
                                    network_mode=f"container:{netns.id}")
            output, errors = self._attach(container)
            container.start()
        except API_ERRORS as error:
            raise BackendError(f"tcpdump did not start: {error}") from error
        display = ["docker", "run", "--rm", "--network", f"container:{server.client_host}",
                   service["image"], *command]
        return DockerTool(container, output, errors, display)

    def start_relay(self, cell: Cell, server: Server, flags: list[str],
                    alias: str = "relay") -> Tool:
        """The relay in a container of a Python image, reached as ALIAS:6000."""
        python = next((impl for impl in self._impls.values()
                       if impl.docker_server[:1] in (("python3",), ("python",))), None)
        if python is None:
            raise BackendError("the relay needs the image of an implementation run by python3")
        image = self.images[python.name].tag
        command = ["python3", "-m", RELAY_MODULE, "--listen", f"0.0.0.0:{RELAY_PORT}",
                   "--upstream", f"{server.client_host}:{server.client_port}", *flags]
        endpoint = self.client.api.create_endpoint_config(aliases=[alias])
        try:
            container = self._container(cell, alias, image, command, cap_drop=["ALL"],
                                    environment={"PYTHONPATH": "/tmp:/app"},  # noqa: S108
                                    networking_config={self.network_name: endpoint})
            container.put_archive("/tmp", package_archive())  # noqa: S108 - in the container
            output, errors = self._attach(container)
            container.start()
        except API_ERRORS as error:
            raise BackendError(f"the relay container did not start: {error}") from error
        tool = DockerTool(container, output, errors,
                          ["docker", "run", "--network", self.network_name, image, *command])
        if not output.wait_for(r"^\[MITM\] Listening", timeout=cell.remaining(20.0)):
            tool.wait(timeouts.scaled(timeouts.STOP))
            raise BackendError(f"the relay did not start: {errors.snapshot()[-300:]!r}")
        tool.target = (alias, RELAY_PORT)
        return tool

    def harness_address(self) -> str:
        """The run network's gateway: this host's own address on that bridge."""
        self.network.reload()
        return self.network.attrs["IPAM"]["Config"][0]["Gateway"]

    # --- cleanup -------------------------------------------------------------------------

    def finish_cell(self, cell: Cell) -> None:
        """Remove the cell's containers in the background (off the cell's critical path)."""
        with self._lock:
            exec_servers = self._exec_servers.pop(cell.cell_id, [])
        for server in exec_servers:  # a hung cell's server; stop() has ended the others
            if isinstance(server, ExecServer):
                with contextlib.suppress(BackendError, *API_ERRORS):
                    server.send_signal(signal.SIGKILL)
        with self._lock:
            containers = self._cells.pop(cell.cell_id, [])
            if self._closed:
                return
            for container in containers:
                self._reaper.submit(self._remove, container)

    @staticmethod
    def _remove(container: Any) -> None:
        with contextlib.suppress(*API_ERRORS):
            container.remove(force=True)

    def close(self) -> None:
        """Remove everything labelled with this run. Cells still in flight (after Ctrl-C
        or a crash) cannot create containers any more; a second sweep catches one that
        was being created during the first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._holders.clear()
        self._reaper.shutdown(wait=True, cancel_futures=True)
        for attempt in range(3):
            self._sweep()
            with contextlib.suppress(*API_ERRORS):
                self.network.remove()
                break
            time.sleep(0.5 * (attempt + 1))
        shutil.rmtree(self._tmp, ignore_errors=True)
        with contextlib.suppress(*API_ERRORS):
            self.client.close()

    def _sweep(self) -> None:
        with contextlib.suppress(*API_ERRORS):
            for container in self.client.containers.list(
                    all=True, filters={"label": self.label_filter}):
                with contextlib.suppress(*API_ERRORS):
                    container.remove(force=True)


def engine_answers() -> bool:
    try:
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means: no usable engine
        return False


def required() -> bool:
    """REQUIRE_DOCKER=1: Docker (and every tool of the full test suite) must be there, so a
    missing one is a failure, never a skip or a fallback. The one place that reads it."""
    return os.environ.get("REQUIRE_DOCKER", "") == "1"
