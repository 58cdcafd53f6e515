"""The implementations registry: one entry per implementation of PROTOCOL.md.

An entry says what an implementation is called, where its programs are (on this
machine and in its Docker image), how its command lines are spelt and which
features it has. The matrix, the demo and the bench take every implementation from
here, so a new one joins all three with one entry (docs/implementations.md):

- a TOML file in the repository's `implementations/` directory, or in a file or
  directory named by `SECUREMSG_IMPLEMENTATIONS` (os.pathsep-separated);
- or a Python entry point in the group `securemsg_lab.implementations` whose object is
  an `Implementation` (or a callable returning a list of them).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .paths import REPO

ENV_VAR = "SECUREMSG_IMPLEMENTATIONS"
ENTRY_POINT_GROUP = "securemsg_lab.implementations"
BUILTIN_DIR = REPO / "implementations"
ARGV_STYLES = ("positional", "options")
#: what an entry may claim; a matrix case needing a feature an entry lacks is
#: reported "unsupported" for that entry, not failed
FEATURES = {
    "xor": "the seed's XOR cipher (--cipher xor, the default)",
    "noise": "secure mode, --cipher noise with --key-file or a --key passphrase",
    "interactive": "client: no MESSAGE argument reads one message per line of stdin",
    "ipv6": "server --bind ::1, client to an IPv6 literal",
    "max-clients": "server --max-clients N refuses the (N+1)th client",
    "idle-timeout": "--idle-timeout SECONDS on both programs",
}


class RegistryError(Exception):
    """An implementation entry is malformed, or names an unknown implementation."""


@dataclass(frozen=True)
class Implementation:
    """One implementation: its programs, their command-line spelling, its features."""

    name: str
    argv: str = "options"
    features: frozenset[str] = frozenset({"xor"})
    description: str = ""
    #: how people read its name ("C server", "Python client"); the name when not given
    title: str = ""
    #: one of the project's own implementations: the demo shows them, the bench and the
    #: handout's checks use them by default, the contract tests compare them
    reference: bool = False
    #: local programs: argv prefixes (absolute paths) and a build command run in `root`
    local_server: tuple[str, ...] = ()
    local_client: tuple[str, ...] = ()
    local_build: tuple[str, ...] = ()
    root: Path = REPO
    #: Docker: the image (or the compose.yaml service that names and builds it) and the
    #: program prefixes inside it
    image: str = ""
    compose_service: str = ""
    build_context: Path | None = None
    dockerfile: str = ""
    docker_server: tuple[str, ...] = ()
    docker_client: tuple[str, ...] = ()
    source: str = "built in"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.argv not in ARGV_STYLES:
            raise RegistryError(f"{self.source}: argv must be one of {ARGV_STYLES}")
        unknown = sorted(self.features - FEATURES.keys())
        if unknown:
            raise RegistryError(f"{self.source}: unknown features {unknown} "
                                f"(known: {sorted(FEATURES)})")

    def has(self, feature: str) -> bool:
        return feature in self.features

    @property
    def display(self) -> str:
        return self.title or self.name

    def rooted(self, root: Path, name: str) -> Implementation:
        """This entry under another name, its local programs and build in `root` (a copy
        of its tree), without a file of its own."""
        def move(words: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(str(root / Path(word).relative_to(self.root))
                         if Path(word).is_relative_to(self.root) and word != sys.executable
                         else word for word in words)
        return replace(self, name=name, root=root, local_server=move(self.local_server),
                       local_client=move(self.local_client), source=f"{self.source} in {root}")

    def server_args(self, port: int, options: Iterable[str] = ()) -> list[str]:
        """PROTOCOL.md section 5, in this implementation's spelling (prefix not included)."""
        if self.argv == "positional":
            return [*options, str(port)]
        return ["--port", str(port), *options]

    def client_args(self, host: str, port: int | str, message: str | None,
                    options: Iterable[str] = ()) -> list[str]:
        if self.argv == "positional":
            return [*options, host, str(port), *([] if message is None else [message])]
        argv = ["--host", host, "--port", str(port)]
        if message is not None:
            argv += ["--message", message]
        return [*argv, *options]

    def program(self, role: str, where: str = "local") -> list[str]:
        """The argv prefix of the `server` or `client` program, `local` or in `docker`."""
        prefix = {("server", "local"): self.local_server, ("client", "local"): self.local_client,
                  ("server", "docker"): self.docker_server,
                  ("client", "docker"): self.docker_client}[(role, where)]
        if not prefix:
            raise RegistryError(f"implementation {self.name!r} has no {where} {role} program")
        return list(prefix)


def _words(table: dict[str, Any], key: str, source: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise RegistryError(f"{source}: {key} must be a list of strings")
    return tuple(value)


def _local_program(words: tuple[str, ...], root: Path) -> tuple[str, ...]:
    """`{python}` is the interpreter running the lab; a relative path (a word with a
    slash) is relative to the entry's `root`."""
    out = []
    for word in words:
        word = word.replace("{python}", sys.executable)
        if "/" in word and not Path(word).is_absolute():
            word = str(root / word)
        out.append(word)
    return tuple(out)


#: the keys from_toml reads; any other table (e.g. [bench]) is kept in `extra` for the
#: lab tool it belongs to
_PARSED = frozenset({"name", "title", "reference", "argv", "features", "description", "local",
                     "docker"})


def from_toml(path: Path) -> Implementation:
    """One entry from a TOML file (format: docs/implementations.md)."""
    source = str(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise RegistryError(f"{source}: {error}") from error
    local, docker = doc.get("local", {}), doc.get("docker", {})
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        raise RegistryError(f"{source}: name missing")
    root = (path.parent / local.get("root", ".")).resolve()
    build = docker.get("build", {})
    return Implementation(
        name=doc["name"], argv=doc.get("argv", "options"),
        features=frozenset(_words(doc, "features", source) or ("xor",)),
        description=doc.get("description", ""), title=doc.get("title", ""),
        reference=doc.get("reference", False) is True,
        local_server=_local_program(_words(local, "server", source), root),
        local_client=_local_program(_words(local, "client", source), root),
        local_build=_words(local, "build", source), root=root,
        image=docker.get("image", ""), compose_service=docker.get("compose_service", ""),
        build_context=(path.parent / build["context"]).resolve() if "context" in build else None,
        dockerfile=build.get("dockerfile", ""),
        docker_server=_words(docker, "server", source),
        docker_client=_words(docker, "client", source), source=source,
        extra={key: value for key, value in doc.items() if key not in _PARSED},
    )


def _toml_files(spec: str) -> list[Path]:
    files: list[Path] = []
    for part in filter(None, spec.split(os.pathsep)):
        path = Path(part)
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    return files


def _from_entry_points() -> list[Implementation]:
    found: list[Implementation] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        value = point.load()
        items = value() if callable(value) and not isinstance(value, Implementation) else value
        items = [items] if isinstance(items, Implementation) else list(items)
        if not all(isinstance(item, Implementation) for item in items):
            raise RegistryError(f"entry point {point.name}: not an Implementation")
        found += items
    return found


class Registry:
    """The implementations by name, in the order they were registered."""

    def __init__(self, implementations: Iterable[Implementation] = ()) -> None:
        self._by_name: dict[str, Implementation] = {}
        for implementation in implementations:
            self.add(implementation)

    def add(self, implementation: Implementation) -> None:
        if implementation.name in self._by_name:
            first = self._by_name[implementation.name].source
            raise RegistryError(f"implementation {implementation.name!r} registered twice: "
                                f"{first} and {implementation.source}")
        self._by_name[implementation.name] = implementation

    def __getitem__(self, name: str) -> Implementation:
        try:
            return self._by_name[name]
        except KeyError:
            raise RegistryError(f"unknown implementation {name!r} "
                                f"(known: {', '.join(self.names())})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):  # noqa: ANN204 - an iterator of Implementation
        return iter(self._by_name.values())

    def names(self) -> list[str]:
        return list(self._by_name)

    def references(self) -> list[Implementation]:
        """The project's own implementations (`reference = true`), in registry order."""
        return [impl for impl in self if impl.reference]

    def reference_names(self) -> list[str]:
        return [impl.name for impl in self.references()]


def load(extra: str | None = None) -> Registry:
    """The built-in entries, those of $SECUREMSG_IMPLEMENTATIONS (or `extra`), then
    those of installed entry points."""
    files = _toml_files(str(BUILTIN_DIR))
    files += _toml_files(os.environ.get(ENV_VAR, "") if extra is None else extra)
    return Registry([*(from_toml(path) for path in files), *_from_entry_points()])


_DEFAULT: Registry | None = None


def default() -> Registry:
    """The registry of this process, loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load()
    return _DEFAULT
