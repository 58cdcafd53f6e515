"""The registry path, for real: a `git clone` + `compose build` where a registry answers.

A Distribution 2.8 registry (Debian's ``docker-registry``) serves on 127.0.0.1 (Docker
trusts plain-HTTP registries on 127.0.0.0/8 without configuration). The mmdebstrap-built
plain Debian image (``docker/base-image.sh debian``: minbase bookworm, apt sources of this
host), plus one layer of this run's own, is pushed there as
``127.0.0.1:PORT/debian:bookworm-slim`` and untagged locally, so every build must pull it.
Nothing any builder cached before this run was built on that layer, so every build starts
from zero, without ``--no-cache``: steps that several Dockerfiles share (installing the
build packages) run once per builder instead of once per image. Then:

* compose.yaml's three images are built with ``docker compose`` (v2, BuildKit) and
  ``docker-compose`` (1.29, the classic builder), ``SECUREMSG_BUILD_BASE`` and
  ``SECUREMSG_RUNTIME_BASE`` pointing at the registry: the Dockerfiles' apt-get path runs
  (the pushed image has none of the packages), so a container must reach this host's apt
  mirror. The built images
  run: each language's client gets an ACK from the other language's server;
* ``docker/base-image.sh`` in its default mode finds the registry answering and builds the
  base images from it (its pull branch, docker/base.Dockerfile).

Everything is tagged and named with a per-run id and removed afterwards: the registry
process and its storage, the tags, the images of the builds, the containers and network.
Without an engine, the registry binary or a reachable mirror the tests are skipped, or
fail when ``REQUIRE_DOCKER=1`` (tests/support/needs.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .compose_support import COMPOSE_FILE, COMPOSE_TOOLS, ROOT, must, run, unavailable

# Builds from zero with apt-get, on a machine others share: minutes, not seconds.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

BASE_SCRIPT = ROOT / "docker" / "base-image.sh"
PLAIN_DEBIAN = "securemsg/base-debian:bookworm"  # docker/base-image.sh debian
BUILT = {"server-c": "c", "server-python": "python", "capture": "capture"}
BUILD_TIMEOUT = 1800.0
PYTHON_IMAGE_LIMIT = 100_000_000  # bytes: the Python image's budget (issue 9)
RUN_ID = secrets.token_hex(4)
TEST_LABEL = f"securemsg.test.registry={RUN_ID}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_ids() -> set[str]:
    return set(must(run(["docker", "images", "-aq", "--no-trunc"], timeout=60)).split())


@dataclass
class Registry:
    """A registry process of this test on 127.0.0.1, and the Debian image pushed to it."""

    port: int
    proc: subprocess.Popen[bytes]
    upstream: str = ""  # 127.0.0.1:PORT/debian:bookworm-slim once pushed
    upstream_id: str = ""  # the pushed image's id (the plain Debian image + this run's layer)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False


def start_registry(tmp: Path) -> Registry:
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (make setup installs it)")
        raise AssertionError("unreachable")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (tmp / "config.yml").write_text(yaml.safe_dump(config))
    with (tmp / "registry.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(tmp / "config.yml")], stdout=log, stderr=subprocess.STDOUT
        )
    registry = Registry(port, proc)
    deadline = time.monotonic() + 30
    while not registry.answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_registry(registry)
            pytest.fail(f"docker-registry did not answer: {(tmp / 'registry.log').read_text()}")
        time.sleep(0.2)
    return registry


def stop_registry(registry: Registry) -> None:
    registry.proc.terminate()
    try:
        registry.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.proc.kill()
        registry.proc.wait(timeout=10)


def mirror_reachable() -> bool:
    """Can a container of the plain image run apt-get update (the Dockerfiles' apt path)?"""
    argv = ["docker", "run", "--rm", "--label", TEST_LABEL, PLAIN_DEBIAN, "apt-get", "-q",
            "-o", "Acquire::http::Timeout=20", "update"]
    try:
        return run(argv, timeout=180).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def untag(tag: str) -> None:
    run(["docker", "image", "rm", tag], timeout=120)


def remove_new_images(before: set[str], ancestor: str) -> None:
    """Images the builds left behind (legacy builder stages): new since `before` and built
    on `ancestor`, so never another engineer's. Children first."""
    new = sorted(image_ids() - before)
    if not new:
        return
    parents = {}
    for line in must(run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Parent}}", *new],
                         timeout=120)).splitlines():
        image, _, parent = line.partition(" ")
        parents[image] = parent.strip()

    def descends(image: str) -> bool:
        for _ in range(200):  # bounded walk up the parent chain
            if image == ancestor:
                return True
            image = parents.get(image, "")
            if not image:
                return False
        return False

    ours = [image for image in new if descends(image) and image != ancestor]
    depth = {image: sum(1 for _ in iter_chain(image, parents)) for image in ours}
    for image in sorted(ours, key=depth.__getitem__, reverse=True):
        run(["docker", "image", "rm", image], timeout=120)


def iter_chain(image: str, parents: dict[str, str]) -> Iterator[str]:
    for _ in range(200):
        if not image:
            return
        yield image
        image = parents.get(image, "")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which("docker") is None or run(["docker", "info"], timeout=30).returncode != 0:
        unavailable("no Docker engine answers (docker info)")
    tmp = tmp_path_factory.mktemp("registry")
    must(run([str(BASE_SCRIPT), "debian"], timeout=BUILD_TIMEOUT))
    if not mirror_reachable():
        unavailable("a container cannot reach this host's apt mirror (apt-get update failed)")
    reg = start_registry(tmp)
    before = image_ids()
    reg.upstream = f"127.0.0.1:{reg.port}/debian:bookworm-slim"
    try:
        reg.upstream_id = this_runs_debian(tmp, reg.upstream)
        must(run(["docker", "push", reg.upstream], timeout=600))
        untag(reg.upstream)  # the builds must pull it
        yield reg
    finally:
        untag(reg.upstream)
        if reg.upstream_id:
            remove_new_images(before, reg.upstream_id)
            run(["docker", "image", "rm", reg.upstream_id], timeout=120)
        stop_registry(reg)


def this_runs_debian(tmp: Path, tag: str) -> str:
    """PLAIN_DEBIAN plus a layer that only this run has, tagged `tag`; its image id."""
    context = tmp / "base"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {PLAIN_DEBIAN}\nRUN echo {RUN_ID} > /etc/securemsg-test-run\n")
    must(run(["docker", "build", "-q", "--label", TEST_LABEL, "-t", tag, str(context)],
             timeout=300))
    return must(run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], timeout=60)).strip()


def tagged(kind: str, project: str) -> str:
    return f"{project}/{kind}:latest"


def write_override(path: Path, project: str) -> None:
    """compose.yaml's built services under this run's own tags."""
    services = {name: {"image": tagged(kind, project)} for name, kind in BUILT.items()}
    path.write_text(yaml.safe_dump({"services": services}))


@contextlib.contextmanager
def lab_network(project: str) -> Iterator[str]:
    network = f"{project}-net"
    must(run(["docker", "network", "create", "--label", TEST_LABEL, network], timeout=60))
    try:
        yield network
    finally:
        ids = run(["docker", "ps", "-aq", "--filter", f"label={TEST_LABEL}"], timeout=60)
        if ids.stdout.split():
            run(["docker", "rm", "-f", *ids.stdout.split()], timeout=120)
        run(["docker", "network", "rm", network], timeout=60)


def exchange(network: str, project: str, server: list[str], client: list[str]) -> str:
    """Start `server` (image + argv) on the network, run `client` against it; its output."""
    name = f"{project}-server-{secrets.token_hex(2)}"
    key = ["-e", f"SECUREMSG_KEY=key-{RUN_ID}"]
    common = ["--label", TEST_LABEL, "--network", network, "--read-only", "--cap-drop", "ALL"]
    must(run(["docker", "run", "-d", "--name", name, *common, *key, *server], timeout=60))
    deadline = time.monotonic() + 60
    while "Listening on" not in run(["docker", "logs", name], timeout=30).stdout:
        assert time.monotonic() < deadline, run(["docker", "logs", name], timeout=30)
        time.sleep(0.25)
    argv = [part.replace("{server}", name) for part in client]
    return must(run(["docker", "run", "--rm", *common, *key, *argv], timeout=60))


@pytest.mark.parametrize("tool", list(COMPOSE_TOOLS))
def test_compose_builds_the_lab_from_the_registry(
    registry: Registry, tool: str, tmp_path: Path
) -> None:
    command = COMPOSE_TOOLS[tool]
    if run([*command, "version"], timeout=30).returncode != 0:
        unavailable(f"{' '.join(command)} is not installed (make setup installs it)")
    project = f"securemsgtest{RUN_ID}{tool[-2:]}"
    override = tmp_path / "tags.yaml"
    write_override(override, project)
    env = dict(os.environ, COMPOSE_PROJECT_NAME=project,
               SECUREMSG_BUILD_BASE=registry.upstream, SECUREMSG_RUNTIME_BASE=registry.upstream)
    compose = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
               "-f", str(override), "--profile", "capture"]
    images = [tagged(kind, project) for kind in BUILT.values()]
    untag(registry.upstream)  # an earlier build may have pulled it: pull it again
    try:
        must(run([*compose, "build", *BUILT], env=env, timeout=BUILD_TIMEOUT))
        sizes = dict(zip(BUILT.values(), (int(size) for size in must(run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", *images], timeout=60)).split()),
            strict=True))
        assert sizes["python"] <= PYTHON_IMAGE_LIMIT, sizes
        c_image, py_image, capture_image = images
        with lab_network(project) as network:
            py_to_c = exchange(network, project, [c_image, "/server", "5000"],
                               [py_image, "python3", "/app/client.py", "--host", "{server}",
                                "--port", "5000", "--message", "registry build"])
            c_to_py = exchange(network, project,
                               [py_image, "python3", "/app/server.py", "--port", "5000"],
                               [c_image, "/client", "{server}", "5000", "registry build"])
        for output in (py_to_c, c_to_py):
            assert "[RECV] ACK: Received 14 bytes" in output.splitlines(), output
        version = run(["docker", "run", "--rm", "--label", TEST_LABEL, capture_image,
                       "tcpdump", "--version"], timeout=60)
        assert version.returncode == 0 and "tcpdump version" in version.stdout, version
    finally:
        for image in images:
            untag(image)


def test_base_image_script_pulls_from_the_registry(registry: Registry) -> None:
    """Default mode (--from auto): the upstream is not here, the registry answers the
    pull, so the bases are built FROM it with apt-get (docker/base.Dockerfile)."""
    name = f"securemsgtest{RUN_ID}/base"
    env = dict(os.environ, SECUREMSG_BASE_NAME=name, SECUREMSG_UPSTREAM=registry.upstream,
               SECUREMSG_PULL_TIMEOUT="30")
    env.pop("SECUREMSG_BASE_FROM", None)
    tags = [f"{name}-build:bookworm", f"{name}-runtime:bookworm"]
    untag(registry.upstream)  # not here: the script has to pull it
    try:
        result = run([str(BASE_SCRIPT), "build", "runtime"], env=env, timeout=BUILD_TIMEOUT)
        must(result)
        assert f"building {tags[0]} from {registry.upstream}" in result.stderr, result.stderr
        assert "mmdebstrap" not in result.stderr, result.stderr
        for tag in tags:
            labels = must(run(["docker", "image", "inspect", "-f",
                               "{{index .Config.Labels \"securemsg.component\"}}", tag],
                              timeout=60)).strip()
            assert labels == f"base-{tag.rsplit('-', 1)[1].split(':')[0]}", (tag, labels)
        again = run([str(BASE_SCRIPT), "build", "runtime"], env=env, timeout=60)
        assert again.returncode == 0 and "nothing to do" in again.stderr, again
    finally:
        for tag in tags:
            untag(tag)
