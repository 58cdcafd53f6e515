"""The Docker backend: servers and clients as containers on a network of the run's own.

Each server is a container of its own (its log is the cell's server log, SIGTERM stops
it). Clients run with `docker exec` in one long-lived container per language on the
same network: starting a container costs ~0.5 s on a 2-core machine, an exec ~0.1 s,
and a matrix runs some 400 client programs.

compose.yaml is the single source of truth: it names each language's image, how to
build it, how its programs are invoked and the containers' hardening options. Images
are built when missing (never pulled). Everything created carries the labels
`securemsg.test=1` and `securemsg.run=<run id>` and is removed when the run ends,
also after a failure or Ctrl-C (atexit).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
import yaml

import docker

from . import protocol
from .backend import Backend, BackendError, BackendUnavailable, Cell, ProcResult, Server
from .programs import NOISE_KEY_LENGTH, server_args

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
SERVER_PORT = 5000  # every server listens on 5000 inside its own network namespace
KEY_PATH = "/run/securemsg.psk"
HARDENING = ("init", "read_only", "cap_drop", "security_opt")
API_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


@dataclass
class LanguageImage:
    """What compose.yaml says about one language."""

    lang: str
    image: str
    context: Path
    dockerfile: str
    server_prefix: list[str]
    client_prefix: list[str]
    hardening: dict[str, Any]


def _program_prefix(command: list[str], program: str) -> list[str]:
    """`["python3", "/app/server.py", "--port", "5000"]` -> `["python3", "/app/server.py"]`."""
    for index, word in enumerate(command):
        if Path(word).name.startswith(program):
            return command[: index + 1]
    raise BackendUnavailable(f"compose.yaml: no {program} program in {command}")


def _service(services: dict[str, Any], lang: str, role: str) -> dict[str, Any]:
    for name, service in services.items():
        labels = service.get("labels") or {}
        if (labels.get("securemsg.role") == role and labels.get("securemsg.language") == lang
                and labels.get("securemsg.cipher", "xor") == "xor"):
            return service
        if role == "server" and name == f"server-{lang}":
            return service
    raise BackendUnavailable(f"compose.yaml: no {role} service for {lang}")


def read_compose(path: Path = COMPOSE_FILE) -> dict[str, LanguageImage]:
    try:
        services = yaml.safe_load(path.read_text())["services"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise BackendUnavailable(f"cannot read {path}: {error}") from error
    images: dict[str, LanguageImage] = {}
    for lang in ("c", "python"):
        server = _service(services, lang, "server")
        client = _service(services, lang, "client")
        build = server.get("build") or {}
        if isinstance(build, str):
            build = {"context": build}
        images[lang] = LanguageImage(
            lang=lang, image=server["image"],
            context=(path.parent / build.get("context", ".")).resolve(),
            dockerfile=build.get("dockerfile", "Dockerfile"),
            server_prefix=_program_prefix(list(server["command"]), "server"),
            client_prefix=_program_prefix(list(client["command"]), "client"),
            hardening={key: server[key] for key in HARDENING if key in server},
        )
    return images


SOURCE_GLOBS = ("c/*.c", "c/*.h", "c/Makefile", "python/**/*.py", "docker/*.Dockerfile",
                "docker/healthcheck.c")


def newest_source(root: Path) -> float:
    """The newest modification time of what goes into the images."""
    times = [path.stat().st_mtime for pattern in SOURCE_GLOBS for path in root.glob(pattern)
             if "__pycache__" not in path.parts]
    return max(times, default=0.0)


class DockerServer(Server):
    def __init__(self, backend: DockerBackend, cell: Cell, lang: str, container: Any,
                 argv: list[str], netns_of: Any = None) -> None:
        self._init_state(backend, cell, lang, container, argv, netns_of)
        # Follow stdout on one streaming connection instead of polling the logs: the
        # cases wait for log lines, and polling loads the daemon under a parallel run.
        threading.Thread(target=self._follow, name=f"logs-{container.name}", daemon=True).start()

    def _init_state(self, backend: DockerBackend, cell: Cell, lang: str, container: Any,
                    argv: list[str], netns_of: Any) -> None:
        self.backend = backend
        #: the container whose network namespace this server shares (None: its own)
        self.netns_of = netns_of
        self.cell = cell
        self.lang = lang
        self.container = container
        self.argv = argv
        self.started = time.monotonic()
        self.result: ProcResult | None = None
        self._out = bytearray()  # stdout so far, as followed
        self._changed = threading.Condition()
        self._following = True

    def _follow(self) -> None:
        try:
            for chunk in self.container.logs(stdout=True, stderr=False, stream=True,
                                             follow=True):
                with self._changed:
                    self._out += chunk
                    self._changed.notify_all()
        except API_ERRORS:
            pass  # the final logs are read again in stop()
        finally:
            with self._changed:
                self._following = False
                self._changed.notify_all()

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = protocol.LISTENING.search(self._out.decode("utf-8", "replace"))
                left = deadline - time.monotonic()
                if found or left <= 0 or not self._following:
                    break
                self._changed.wait(min(left, 0.5))
        if found:
            self._find_addresses(int(found["port"]))
            return
        self.stop()
        raise BackendError(f"{self.lang} server container printed no 'Listening on' line")

    def _find_addresses(self, port: int) -> None:
        holder = self.netns_of or self.container
        known = holder.attrs.get("NetworkSettings", {}).get("Networks", {})
        if not known.get(self.backend.network_name, {}).get("IPAddress"):
            holder.reload()  # a holder's address, once known, does not change
        settings = holder.attrs["NetworkSettings"]
        self.ip = settings["Networks"][self.backend.network_name]["IPAddress"]
        self.client_host, self.client_port = holder.name, port
        published = (settings.get("Ports") or {}).get(f"{SERVER_PORT}/tcp")
        if published and self.netns_of is None:  # Docker Desktop: no route to containers
            self.raw_host, self.raw_port = "127.0.0.1", int(published[0]["HostPort"])
            self.raw_peer_exact = False
        else:
            self.raw_host, self.raw_port = self.ip, port

    def output_so_far(self) -> bytes:
        with self._changed:
            return bytes(self._out)

    def stop(self) -> ProcResult:
        if self.result is not None:
            return self.result
        timed_out = False
        exit_code: int | None = None
        with contextlib.suppress(*API_ERRORS):  # already exited: status and logs tell why
            self.container.kill(signal="SIGTERM")
        try:
            exit_code = self.container.wait(timeout=self.cell.remaining(10.0))["StatusCode"]
        except API_ERRORS:
            timed_out = True
        self.result = self.cell.record(self.backend.collect(
            self.container, "server", self.argv, exit_code, self.started, timed_out,
            stdout=self._followed_stdout()))
        return self.result

    def _followed_stdout(self) -> bytes | None:
        """The log stream's copy of stdout once the stream has ended with the container
        (saves reading a 1 MiB log twice); None if it has not ended."""
        deadline = time.monotonic() + 2.0
        with self._changed:
            while self._following and time.monotonic() < deadline:
                self._changed.wait(0.1)
            return None if self._following else bytes(self._out)

    def stopped_target(self) -> tuple[str, int]:
        """Where the server was: in a holder's namespace the address outlives the server
        (connect refused). A server with its own endpoint takes its name with it, and its
        address may already belong to another cell's container."""
        return self.client_host, self.client_port


class ExecServer(DockerServer):
    """A server run with `docker exec` inside a long-lived holder container.

    A container per server costs the daemon a root-filesystem mount (fuse-overlayfs
    here), a runc start, a shim and a removal; an exec costs a runc exec, about a fifth
    of that on a loaded 2-core machine. The server's stdout and stderr are the exec's
    streams (the same bytes a container log holds); SIGTERM goes to its process from
    the host (the daemon's process, seen in /proc, not a remote or Desktop engine).
    """

    def __init__(self, backend: DockerBackend, cell: Cell, lang: str, holder: Any,
                 argv: list[str]) -> None:
        self._init_state(backend, cell, lang, holder, argv, holder)
        self._err = bytearray()
        api = backend.client.api
        self.exec_id = api.exec_create(holder.id, argv, environment={"NO_COLOR": "1"})["Id"]
        self._handle, self._raw, early = backend._exec_start(self.exec_id)
        self._pid = 0
        threading.Thread(target=self._follow_exec, args=(early,), daemon=True,
                         name=f"exec-{cell.slug}").start()

    def _follow_exec(self, early: bytes) -> None:
        buffer = bytearray(early)
        try:
            self._raw.settimeout(None)
            while True:
                while len(buffer) >= 8:
                    stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
                    if len(buffer) < 8 + size:
                        break
                    with self._changed:
                        (self._err if stream == 2 else self._out).extend(buffer[8:8 + size])
                        self._changed.notify_all()
                    del buffer[: 8 + size]
                chunk = self._raw.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        except OSError:
            pass
        finally:
            with self._changed:
                self._following = False
                self._changed.notify_all()

    def pid(self) -> int:
        """The server's host PID, checked against its command line (never a reused PID)."""
        if not self._pid:
            pid = 0
            for _ in range(100):  # the daemon records the PID a moment after the start
                pid = int(self.backend.client.api.exec_inspect(self.exec_id).get("Pid") or 0)
                if pid > 0:
                    break
                time.sleep(0.02)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                cmdline = []
            if pid <= 0 or self.argv[0].encode() not in cmdline[:1] + cmdline[1:2]:
                raise BackendError(f"exec'd {self.lang} server: PID {pid} not visible here "
                                   "(SECUREMSG_MATRIX_SERVERS=container for a remote engine)")
            self._pid = pid
        return self._pid

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self._following:
                os.kill(self.pid(), signum)

    def stop(self) -> ProcResult:
        if self.result is not None:
            return self.result
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cell.remaining(10.0)
        with self._changed:
            while self._following and time.monotonic() < deadline:
                self._changed.wait(max(0.01, min(0.5, deadline - time.monotonic())))
            timed_out = self._following
        if timed_out:
            self.signal(signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._handle.close()
            self._raw.close()
        exit_code = None if timed_out else self.backend._exit_code(self.exec_id)
        with self._changed:
            out, err = bytes(self._out), bytes(self._err)
        self.result = self.cell.record(ProcResult(
            role="server", argv=self.argv, exit_code=exit_code, stdout=out, stderr=err,
            duration=time.monotonic() - self.started, timed_out=timed_out))
        return self.result


def exec_servers_possible() -> bool:
    """Whether servers may run as `docker exec`s signalled from here (ExecServer).

    That needs the engine's processes on this machine (a Linux host, a local socket:
    not a remote engine, not Docker Desktop's VM) and the right to signal them (root;
    a rootless engine's user owns its containers' user namespace). Otherwise, or with
    SECUREMSG_MATRIX_SERVERS=container, each server gets a container of its own.
    """
    if os.environ.get("SECUREMSG_MATRIX_SERVERS", "exec") == "container":
        return False
    if sys.platform != "linux" or not os.environ.get("DOCKER_HOST", "unix://").startswith("unix://"):
        return False
    rootless = os.environ.get("DOCKER_HOST", "").startswith(f"unix:///run/user/{os.getuid()}/")
    return os.geteuid() == 0 or rootless


class DockerBackend(Backend):
    name = "docker"
    concurrent_clients = 20

    def __init__(self, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.shared_netns = os.environ.get("SECUREMSG_MATRIX_NETNS", "shared") != "own"
        self.run_id = secrets.token_hex(4)
        self.labels = {"securemsg.test": "1", "securemsg.run": self.run_id}
        self.network_name = f"securemsg-test-{self.run_id}"
        self.images = read_compose()
        try:
            self.client = docker.from_env(timeout=120, max_pool_size=64)
            self.client.ping()
        except API_ERRORS as error:
            raise BackendUnavailable(f"no Docker engine answers: {error}") from error
        self._lock = threading.Lock()
        self._prepared: set[str] = set()
        self._help: dict[tuple[str, str], str] = {}
        self._cells: dict[str, list[Any]] = {}
        self._hosts: dict[tuple[str, str], Any] = {}
        self._host_locks: dict[tuple[str, str], threading.Lock] = {}
        self._exec_servers: dict[str, list[ExecServer]] = {}
        self.exec_servers = exec_servers_possible()
        self._reaper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reaper")
        self._host_ports: dict[tuple[str, str], int] = {}
        self._closed = False
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

    # --- images ------------------------------------------------------------------------------

    def prepare(self, langs: list[str]) -> None:
        with self._lock:
            for lang in sorted(set(langs) - self._prepared):
                self._ensure_image(self.images[lang])
                self._prepared.add(lang)
        # Every holder up front and in parallel: a holder started lazily by the first cell
        # that needs it made that cell (and, before, every cell) wait for its start.
        purposes = ["clients", "stopped"] + (["servers"] if self.shared_netns else [])
        wanted = [(lang, purpose) for lang in langs for purpose in purposes]
        with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            for future in [pool.submit(self._host, *key) for key in wanted]:
                future.result()

    def _ensure_image(self, spec: LanguageImage) -> None:
        """Build when missing, when asked to, or when a source file is newer than the image
        (a stale image would test old code); the layer cache makes a no-op build quick."""
        reason = "--rebuild" if self.rebuild else None
        try:
            image = self.client.images.get(spec.image)
            created = datetime.datetime.fromisoformat(
                image.attrs["Created"][:26].rstrip("Z") + "+00:00").timestamp()
            if reason is None and newest_source(ROOT) > created:
                reason = "sources newer than the image"
        except docker.errors.ImageNotFound:
            reason = "missing"
        if reason is None:
            return
        base_script = ROOT / "docker" / "base-image.sh"
        if base_script.exists():  # builds the base only when it is missing
            subprocess.run([str(base_script)], check=True, timeout=900)
        print(f"[harness] building {spec.image} ({reason}) from {spec.dockerfile}",
              file=sys.stderr)
        try:
            self.client.images.build(path=str(spec.context), dockerfile=spec.dockerfile,
                                     tag=spec.image, pull=False, rm=True, forcerm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as error:
            raise BackendUnavailable(f"building {spec.image} failed: {error}") from error

    def _host(self, lang: str, purpose: str = "clients") -> Any:
        """A long-lived container of the language's image: `clients` are exec'd in one,
        stopped-case servers share the network namespace of a `netns` one (never the
        clients' host: removing a container that joined a namespace breaks Docker's
        DNS inside it). An idle server on loopback keeps it running (the C image is
        FROM scratch: no sleep, no shell)."""
        key = (lang, purpose)
        host = self._hosts.get(key)  # the common case: no lock, no waiting on other starts
        if host is not None:
            return host
        with self._lock:
            lock = self._host_locks.setdefault(key, threading.Lock())
        with lock:  # one start per holder; other holders start at the same time
            if key not in self._hosts:
                self._start_host(lang, purpose)
            return self._hosts[key]

    def _start_host(self, lang: str, purpose: str) -> None:
        spec = self.images[lang]
        argv = [*spec.server_prefix,
                *server_args(lang, 0, ["--bind", "127.0.0.1", "--idle-timeout", "0"])]
        cell = Cell(f"{purpose}-{lang}", timeout=60)
        container = self._create(cell, purpose, lang, argv, detach=True)
        container.start()
        host = DockerServer(self, cell, lang, container, argv)
        host.wait_listening(30)
        found = protocol.LISTENING.search(host.output_so_far().decode(errors="replace"))
        with self._lock:
            self._hosts[(lang, purpose)] = container
            self._host_ports[(lang, purpose)] = int(found["port"]) if found else 0

    def supports_cipher(self, lang: str, cipher: str) -> bool:
        if cipher == "xor":
            return True
        return all("--cipher" in self._help_text(lang, role) for role in ("server", "client"))

    def _help_text(self, lang: str, role: str) -> str:
        with self._lock:
            if (lang, role) in self._help:
                return self._help[(lang, role)]
        spec = self.images[lang]
        prefix = spec.server_prefix if role == "server" else spec.client_prefix
        result = self._exec(Cell(f"help-{lang}-{role}", timeout=30), lang, "help",
                            [*prefix, "--help"], None, 20)
        text = (result.stdout + result.stderr).decode(errors="replace")
        with self._lock:
            self._help[(lang, role)] = text
        return text

    def key_file(self) -> str:
        return KEY_PATH

    def key_bytes(self) -> bytes:
        return self._key.read_bytes()

    # --- containers ----------------------------------------------------------------------

    def _create(self, cell: Cell, role: str, lang: str, argv: list[str], **extra: Any) -> Any:
        if self._closed:
            raise BackendError("the Docker backend is closed (run interrupted)")
        spec = self.images[lang]
        # A DNS label holds at most 63 characters: longer names do not resolve.
        name = f"sm-{self.run_id}-{cell.slug}"[:46] + f"-{role[:8]}-{secrets.token_hex(2)}"
        options: dict[str, Any] = {
            **spec.hardening,
            "name": name,
            "network": self.network_name,
            "labels": {**self.labels, "securemsg.cell": cell.slug, "securemsg.role": role},
            "environment": {"NO_COLOR": "1"},
            "volumes": {str(self._key): {"bind": KEY_PATH, "mode": "ro"}},
            **extra,
        }
        container = self.client.containers.create(spec.image, argv, **options)
        with self._lock:
            self._cells.setdefault(cell.cell_id, []).append(container)
        return container

    def collect(self, container: Any, role: str, argv: list[str], exit_code: int | None,
                started: float, timed_out: bool, stdout: bytes | None = None) -> ProcResult:
        """Logs of a finished (or hung) container (it is removed later, off the clock)."""
        try:
            if timed_out:
                container.kill()
            if stdout is None:
                stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
        except API_ERRORS as error:
            stdout, stderr = b"", f"[harness] cannot read logs: {error}\n".encode()
        return ProcResult(role=role, argv=argv, exit_code=exit_code, stdout=stdout,
                          stderr=stderr, duration=time.monotonic() - started,
                          timed_out=timed_out)

    def start_server(self, cell: Cell, lang: str, options: list[str], *,
                     refuse_after_stop: bool = False) -> Server:
        """A server container of its own (its own PID and mount namespaces, its own log,
        stopped by SIGTERM through Docker).

        By default it joins the network namespace of a long-lived per-language holder
        container and listens on port 0: clients address it as HOLDER-NAME:PORT. That
        costs half of a container with a network endpoint of its own (Docker's resolver
        and key set-up run per endpoint), and a stopped server's address still exists and
        refuses connections, as on a host. `stopped` cells get a holder of their own, so
        that no other cell's server can take the stopped one's port.
        SECUREMSG_MATRIX_NETNS=own: every server on its own endpoint, named, port 5000.
        """
        purpose = "stopped" if refuse_after_stop else "servers"
        netns_of = self._host(lang, purpose) if self.shared_netns or refuse_after_stop else None
        port = 0 if netns_of is not None else SERVER_PORT
        argv = [*self.images[lang].server_prefix, *server_args(lang, port, options)]
        if self.exec_servers and netns_of is not None:
            return self._start_exec_server(cell, lang, netns_of, argv)
        extra: dict[str, Any] = {}
        if netns_of is not None:
            extra["network_mode"] = f"container:{netns_of.id}"
            extra["network"] = None
        elif sys.platform != "linux":
            extra["ports"] = {f"{SERVER_PORT}/tcp": ("127.0.0.1", None)}
        try:
            container = self._create(cell, "server", lang, argv, **extra)
            container.start()
        except API_ERRORS as error:
            raise BackendError(f"cannot start the {lang} server: {error}") from error
        server = DockerServer(self, cell, lang, container, argv, netns_of)
        server.wait_listening(cell.remaining(20.0))
        return server

    def _start_exec_server(self, cell: Cell, lang: str, holder: Any,
                           argv: list[str]) -> Server:
        try:
            server = ExecServer(self, cell, lang, holder, argv)
        except API_ERRORS as error:
            raise BackendError(f"cannot exec the {lang} server: {error}") from error
        with self._lock:
            self._exec_servers.setdefault(cell.cell_id, []).append(server)
        server.wait_listening(cell.remaining(20.0))
        server.pid()  # fails the cell now, not at stop(), if its process cannot be signalled
        return server

    def _exec(self, cell: Cell, lang: str, role: str, argv: list[str], stdin: bytes | None,
              timeout: float) -> ProcResult:
        """Run a program in the language's host container and collect its streams."""
        started = time.monotonic()
        api = self.client.api
        try:
            exec_id = api.exec_create(self._host(lang).id, argv, stdin=stdin is not None,
                                      environment={"NO_COLOR": "1"})["Id"]
            handle, raw, early = self._exec_start(exec_id)
        except API_ERRORS as error:
            raise BackendError(f"cannot exec the {lang} {role}: {error}") from error
        streams = {1: bytearray(), 2: bytearray()}
        timed_out = False
        deadline = time.monotonic() + cell.remaining(timeout)
        writer = None
        try:
            raw.settimeout(cell.remaining(timeout))
            if stdin is not None:  # write while reading: output never waits for input
                writer = threading.Thread(target=_feed, args=(raw, stdin), daemon=True)
                writer.start()
            _demux(raw, early, streams, deadline)
        except (TimeoutError, OSError):
            timed_out = True
        finally:
            if writer is not None:
                writer.join(max(0.1, deadline - time.monotonic()))
            handle.close()
            raw.close()
        exit_code = None if timed_out else self._exit_code(exec_id)
        return cell.record(ProcResult(
            role=role, argv=argv, exit_code=exit_code, stdout=bytes(streams[1]),
            stderr=bytes(streams[2]), duration=time.monotonic() - started, timed_out=timed_out))

    def _exec_start(self, exec_id: str) -> tuple[Any, socket.socket, bytes]:
        """Start an exec attached; return (what to close, socket, output already read).

        On a Unix socket the upgrade is done here, reading the response headers up to
        their end and keeping what follows them: docker-py's `socket=True` reads the
        headers through a buffer it then drops, and with it, now and then, a program's
        first lines. Other transports (TCP, SSH) fall back to docker-py."""
        api = self.client.api
        path = getattr(api.get_adapter(api.base_url), "socket_path", None)
        if path is None:
            attached = api.exec_start(exec_id, socket=True)
            return attached, getattr(attached, "_sock", attached), b""
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        request = (f"POST /v{api._version}/exec/{exec_id}/start HTTP/1.1\r\n"
                   "Host: docker\r\nContent-Type: application/json\r\n"
                   "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            raw.settimeout(30)
            raw.connect(path)
            raw.sendall(request)
            head, rest = _read_http_head(raw)
        except OSError as error:
            raw.close()
            raise BackendError(f"exec start failed: {error}") from error
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status and b" 200 " not in status:
            raw.close()
            raise BackendError(f"exec start refused: {status.decode(errors='replace')}")
        return raw, raw, rest

    def _exit_code(self, exec_id: str) -> int | None:
        for _ in range(50):  # the stream ends a moment before the exit is recorded
            info = self.client.api.exec_inspect(exec_id)
            if not info["Running"]:
                return info["ExitCode"]
            time.sleep(0.02)
        return None

    def run_client(self, cell: Cell, lang: str, args: list[str], *, stdin: bytes | None = None,
                   timeout: float = 20.0, role: str = "client") -> ProcResult:
        argv = [*self.images[lang].client_prefix, *args]
        return self._exec(cell, lang, role, argv, stdin, timeout)

    def run_server_program(self, cell: Cell, lang: str, args: list[str],
                           timeout: float = 10.0) -> ProcResult:
        argv = [*self.images[lang].server_prefix, *args]
        return self._exec(cell, lang, "server", argv, None, timeout)

    def refused_target(self, cell: Cell, lang: str) -> tuple[str, int]:
        """The client host's own loopback, beside its idle server's port."""
        busy = self._host_ports.get((lang, "clients"))
        return "127.0.0.1", SERVER_PORT if busy != SERVER_PORT else SERVER_PORT + 1

    def harness_address(self) -> str:
        """The run network's gateway: the host's own address on that bridge."""
        self.network.reload()
        return self.network.attrs["IPAM"]["Config"][0]["Gateway"]

    # --- cleanup -------------------------------------------------------------------------

    def finish_cell(self, cell: Cell) -> None:
        """Remove the cell's containers in the background (off the cell's critical path)."""
        with self._lock:
            containers = self._cells.pop(cell.cell_id, [])
            exec_servers = self._exec_servers.pop(cell.cell_id, [])
        for server in exec_servers:  # a hung cell's server; stop() has ended the others
            with contextlib.suppress(BackendError, *API_ERRORS):
                server.signal(signal.SIGKILL)
        with self._lock:
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
            self._hosts.clear()
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
                    all=True, filters={"label": f"securemsg.run={self.run_id}"}):
                with contextlib.suppress(*API_ERRORS):
                    container.remove(force=True)


def _feed(raw: socket.socket, data: bytes) -> None:
    """Standard input of an exec'd program, then end of input (half-close)."""
    with contextlib.suppress(OSError):
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)


def _read_http_head(raw: socket.socket) -> tuple[bytes, bytes]:
    """The HTTP response head, and the bytes that followed it in the same reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = raw.recv(4096)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _demux(raw: socket.socket, early: bytes, streams: dict[int, bytearray],
           deadline: float) -> None:
    """Docker's attach stream without a tty: 8-byte headers (stream, size), then data."""
    buffer = bytearray(early)
    while True:
        while len(buffer) >= 8:
            stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
            if len(buffer) < 8 + size:
                break
            streams.setdefault(stream, bytearray()).extend(buffer[8 : 8 + size])
            del buffer[: 8 + size]
        raw.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = raw.recv(65536)
        if not chunk:
            return
        buffer += chunk
