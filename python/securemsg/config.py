"""Command-line options of both programs, in one place (PROTOCOL.md section 5).

``parse_server_args`` and ``parse_client_args`` return a frozen config or
raise ``UsageError`` (exit 2), ``HelpRequested`` (print the usage, exit 0) or
``KeyFileError`` (exit 1). Nothing here prints or exits: ``main`` does.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from . import conn
from .crypto import DEFAULT_KEY
from .errors import KeyFileError, SecureMsgError, UsageError
from .log import escape_text
from .session import SessionFactory

CIPHERS = ("xor", "noise")
KEY_ENV = "SECUREMSG_KEY"
PSK_LEN = 32  # a noise key file of exactly this many bytes is the PSK itself

MAX_FRAME_DEFAULT = 1048576
MAX_FRAME_RANGE = (64, 1073741824)
IDLE_RANGE = (0, 86400)
MAX_CLIENTS_RANGE = (1, 100000)
SERVER_IDLE_DEFAULT = 300
CLIENT_IDLE_DEFAULT = 30
FRAME_TIMEOUT_DEFAULT = 10
MIN_RATE_DEFAULT = 65536
MIN_RATE_RANGE = (1, 1073741824)
DRAIN_TIMEOUT_DEFAULT = 5
MAX_BUFFERED_DEFAULT = 268435456  # 256 MiB
MAX_BUFFERED_RANGE = (1048576, 1099511627776)

_DECIMAL = re.compile(r"[0-9]+")

_SERVER_USAGE = """\
Usage: {prog} [OPTIONS] PORT
       {prog} [OPTIONS] --port PORT

A multi-client securemsg server: prints each message and acknowledges it.

Options:
  --port PORT             port to listen on, 0..65535 (0 picks a free port)
  --bind ADDR             address to listen on (default 0.0.0.0)
  --key KEY               shared key (default: $SECUREMSG_KEY, else MY_SECRET_KEY)
  --key-file PATH         read the key from a file, one trailing newline removed
                          (noise: a file of exactly 32 bytes is the raw PSK)
  --max-frame BYTES       largest payload/message, 64..1073741824 (default 1048576)
  --idle-timeout SECONDS  disconnect a client idle between frames, 0..86400,
                          0 = never (default 300)
  --frame-timeout SECONDS time for one frame and for the handshake, 0..86400,
                          0 = none (default 10)
  --min-rate BYTES        bytes per second a frame must sustain beyond that,
                          1..1073741824 (default 65536)
  --drain-timeout SECONDS longest wait for clients on shutdown, 0..86400
                          (default 5)
  --max-clients N         concurrent clients, 1..100000 (default: the open-file
                          limit - 64)
  --max-buffered BYTES    memory for large frames, all clients together,
                          1048576..1099511627776 (default 268435456)
  --cipher xor|noise      wire cipher (default xor)
  -h, --help              show this text and exit
"""

_CLIENT_USAGE = """\
Usage: {prog} [OPTIONS] HOST PORT [MESSAGE]
       {prog} [OPTIONS] --host HOST --port PORT [--message MESSAGE]

Sends MESSAGE, or each line of standard input, and checks every ACK.

Options:
  --host HOST             server host name, IPv4 or IPv6 address
  --port PORT             server port, 1..65535
  --message MESSAGE       send one message (without: interactive mode)
  --key KEY               shared key (default: $SECUREMSG_KEY, else MY_SECRET_KEY)
  --key-file PATH         read the key from a file, one trailing newline removed
                          (noise: a file of exactly 32 bytes is the raw PSK)
  --max-frame BYTES       largest message sent or ACK accepted, 64..1073741824
                          (default 1048576)
  --idle-timeout SECONDS  wait to connect and for each ACK, 0..86400, 0 = forever
                          (default 30)
  --cipher xor|noise      wire cipher (default xor)
  -h, --help              show this text and exit
"""


def program_name(argv0: str) -> str:
    """The command as typed, without its directory (as C's basename of argv[0]):
    ``server.py`` for ``python3 python/server.py``, ``securemsg-server`` installed."""
    return Path(argv0).name or argv0


def server_usage(prog: str = "server.py") -> str:
    """The server's usage text naming ``prog`` (PROTOCOL.md 5, the same as C's)."""
    return _SERVER_USAGE.replace("{prog}", prog)


def client_usage(prog: str = "client.py") -> str:
    """The client's usage text naming ``prog``."""
    return _CLIENT_USAGE.replace("{prog}", prog)


SERVER_USAGE = server_usage()
CLIENT_USAGE = client_usage()


class HelpRequested(SecureMsgError):
    """``-h``/``--help``: print the usage text on stdout and exit 0."""


@dataclass(frozen=True)
class KeyConfig:
    """The shared key and where it came from (never logged)."""

    key: bytes
    source: str  # "--key", "--key-file", "SECUREMSG_KEY" or "default"
    psk: bytes | None = None  # a --key-file of exactly 32 bytes (noise uses it as is)

    def __repr__(self) -> str:  # keep keys out of tracebacks and debug output
        return f"KeyConfig(source={self.source!r})"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``server.py`` was told, checked."""

    port: int
    bind: str
    key: KeyConfig
    max_frame: int
    idle_timeout: int
    max_clients: int
    cipher: str
    frame_timeout: int = FRAME_TIMEOUT_DEFAULT
    min_rate: int = MIN_RATE_DEFAULT
    drain_timeout: int = DRAIN_TIMEOUT_DEFAULT
    max_buffered: int = MAX_BUFFERED_DEFAULT


@dataclass(frozen=True)
class ClientConfig:
    """Everything ``client.py`` was told, checked."""

    host: str
    port: int
    message: bytes | None  # None: interactive
    key: KeyConfig
    max_frame: int
    idle_timeout: int
    cipher: str


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        match = re.fullmatch(r"argument (\S+?)(?:/\S+)?: expected one argument", message)
        if match:
            raise UsageError(f"Missing value for {match.group(1)}")
        match = re.fullmatch(r"argument (-h|--help): ignored explicit argument .*", message)
        if match:  # --help=VALUE, -h=VALUE, -hx: as in C, options that take no value
            raise UsageError(f"Unknown option: {match.group(1)}")
        raise UsageError(message[:1].upper() + message[1:])


def _parser(server: bool) -> _Parser:
    prog = "server.py" if server else "client.py"
    parser = _Parser(add_help=False, allow_abbrev=False, prog=prog)
    # Two actions, so that an error names the spelling typed (-h=1 or --help=1).
    parser.add_argument("-h", action="store_true", dest="help")
    parser.add_argument("--help", action="store_true", dest="help")
    if not server:
        parser.add_argument("--host")
    parser.add_argument("--port")
    if server:
        parser.add_argument("--bind")
    else:
        parser.add_argument("--message")
    parser.add_argument("--key")
    parser.add_argument("--key-file")
    parser.add_argument("--max-frame")
    parser.add_argument("--idle-timeout")
    if server:
        parser.add_argument("--frame-timeout")
        parser.add_argument("--min-rate")
        parser.add_argument("--drain-timeout")
        parser.add_argument("--max-clients")
        parser.add_argument("--max-buffered")
    parser.add_argument("--cipher")
    parser.add_argument("positional", nargs="*")
    return parser


def _parse(argv: list[str], server: bool) -> argparse.Namespace:
    args, extra = _parser(server).parse_known_intermixed_args(argv)
    if args.help:
        raise HelpRequested()
    for word in extra:
        if word.startswith("-") and word != "-":
            raise UsageError(f"Unknown option: {escape_text(word.split('=', 1)[0])}")
        raise UsageError(f"Unexpected argument: {escape_text(word)}")
    return args


def _integer(text: str, name: str, low: int, high: int) -> int:
    if not _DECIMAL.fullmatch(text) or not low <= int(text) <= high:
        raise UsageError(f"Invalid value for {name}: {escape_text(text)}")
    return int(text)


def _port(text: str, low: int) -> int:
    if not _DECIMAL.fullmatch(text) or not low <= int(text) <= 65535:
        raise UsageError(f"Invalid port: {escape_text(text)}")
    return int(text)


def _merge(option: str | None, positional: list[str], name: str) -> str | None:
    """One value given either as an option or as the next positional argument."""
    if positional:
        value = positional.pop(0)
        if option is not None:
            raise UsageError(f"{name.capitalize()} given twice (positional and --{name})")
        return value
    return option


def _strip_newline(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def load_key(key: str | None, key_file: str | None) -> KeyConfig:
    """Apply the key precedence: --key, --key-file, SECUREMSG_KEY, default."""
    if key is not None and key_file is not None:
        raise UsageError("Give either --key or --key-file, not both")
    if key is not None:
        result = KeyConfig(os.fsencode(key), "--key")
    elif key_file is not None:
        try:
            with open(key_file, "rb") as handle:  # noqa: PTH123 - a plain read is clearest
                raw = handle.read()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise KeyFileError(escape_text(key_file), reason) from exc
        psk = raw if len(raw) == PSK_LEN else None
        result = KeyConfig(_strip_newline(raw), "--key-file", psk)
    elif KEY_ENV in os.environ:
        result = KeyConfig(os.environb[KEY_ENV.encode()], KEY_ENV)
    else:
        result = KeyConfig(DEFAULT_KEY, "default")
    if not result.key and result.psk is None:
        where = "" if result.source == "--key" else f" from {result.source}"
        raise UsageError(f"Empty key{where}")
    return result


def _check_cipher(cipher: str | None) -> str:
    if cipher is None:
        return "xor"
    if cipher not in CIPHERS:
        raise UsageError(f"Invalid value for --cipher: {escape_text(cipher)}")
    return cipher


def _check_secure_key(cipher: str, key: KeyConfig) -> None:
    if cipher == "noise" and key.psk is None and key.key == DEFAULT_KEY:
        raise UsageError(
            "Secure mode refuses the default key MY_SECRET_KEY: it is public. "
            "Set --key, --key-file or SECUREMSG_KEY"
        )


def default_max_clients() -> int:
    """The open-file soft limit less a reserve, within MAX_CLIENTS_RANGE.

    The server raises the soft limit to the hard one before parsing, so this
    is as many clients as the process can hold descriptors for.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CLIENTS_RANGE[1]
    return conn.default_max_clients(soft, MAX_CLIENTS_RANGE[1])


def _option(text: str | None, name: str, default: int, valid: tuple[int, int]) -> int:
    if text is None:
        return default
    return _integer(text, name, *valid)


def parse_server_args(argv: list[str]) -> ServerConfig:
    """Parse the server's arguments (without the program name)."""
    args = _parse(argv, server=True)
    positional = list(args.positional)
    port_text = _merge(args.port, positional, "port")
    if positional:
        raise UsageError(f"Unexpected argument: {escape_text(positional[0])}")
    if port_text is None:
        raise UsageError("Missing port")
    port = _port(port_text, 0)
    cipher = _check_cipher(args.cipher)
    max_frame = _option(args.max_frame, "--max-frame", MAX_FRAME_DEFAULT, MAX_FRAME_RANGE)
    idle = _option(args.idle_timeout, "--idle-timeout", SERVER_IDLE_DEFAULT, IDLE_RANGE)
    frame_timeout = _option(
        args.frame_timeout, "--frame-timeout", FRAME_TIMEOUT_DEFAULT, IDLE_RANGE
    )
    min_rate = _option(args.min_rate, "--min-rate", MIN_RATE_DEFAULT, MIN_RATE_RANGE)
    drain = _option(args.drain_timeout, "--drain-timeout", DRAIN_TIMEOUT_DEFAULT, IDLE_RANGE)
    max_clients = _option(
        args.max_clients, "--max-clients", default_max_clients(), MAX_CLIENTS_RANGE
    )
    max_buffered = _option(
        args.max_buffered, "--max-buffered", MAX_BUFFERED_DEFAULT, MAX_BUFFERED_RANGE
    )
    if args.bind == "":
        raise UsageError("Invalid value for --bind: (empty)")
    key = load_key(args.key, args.key_file)
    _check_secure_key(cipher, key)
    return ServerConfig(
        port=port,
        bind=args.bind if args.bind is not None else "0.0.0.0",
        key=key,
        max_frame=max_frame,
        idle_timeout=idle,
        max_clients=max_clients,
        cipher=cipher,
        frame_timeout=frame_timeout,
        min_rate=min_rate,
        drain_timeout=drain,
        max_buffered=max_buffered,
    )


def parse_client_args(argv: list[str]) -> ClientConfig:
    """Parse the client's arguments (without the program name)."""
    args = _parse(argv, server=False)
    positional = list(args.positional)
    host = _merge(args.host, positional, "host")
    port_text = _merge(args.port, positional, "port")
    message = _merge(args.message, positional, "message")
    if positional:
        raise UsageError(f"Unexpected argument: {escape_text(positional[0])}")
    if host is None:
        raise UsageError("Missing host")
    if host == "":
        raise UsageError("Invalid host: (empty)")
    if port_text is None:
        raise UsageError("Missing port")
    port = _port(port_text, 1)
    cipher = _check_cipher(args.cipher)
    max_frame = MAX_FRAME_DEFAULT
    if args.max_frame is not None:
        max_frame = _integer(args.max_frame, "--max-frame", *MAX_FRAME_RANGE)
    idle = CLIENT_IDLE_DEFAULT
    if args.idle_timeout is not None:
        idle = _integer(args.idle_timeout, "--idle-timeout", *IDLE_RANGE)
    key = load_key(args.key, args.key_file)
    _check_secure_key(cipher, key)
    return ClientConfig(
        host=host,
        port=port,
        message=None if message is None else os.fsencode(message),
        key=key,
        max_frame=max_frame,
        idle_timeout=idle,
        cipher=cipher,
    )


def session_factory(config: ServerConfig | ClientConfig) -> SessionFactory:
    """The session factory the options ask for; noise runs Argon2id here (~0.1 s)."""
    return SessionFactory.create(config.cipher, config.key.key, config.max_frame, config.key.psk)
