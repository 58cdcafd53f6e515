"""Socket helpers: resolve, connect, listen, timeouts, whole sends (the edge).

Everything here turns ``OSError`` into the project's exceptions carrying the
system's text, so that the programs can print the lines of PROTOCOL.md 7.
CPython already retries system calls interrupted by signals (PEP 475) and
``sendall`` loops over partial sends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import socket
import struct
import sys
import termios
import time

from .errors import ConnectError, ListenError, RecvError, ResolveError, SendError, TimedOut

RECV_SIZE = 65536
_TIMEOUT_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT)


def strerror(exc: OSError) -> str:
    """The C library's text for the error, as ``strerror(errno)`` gives it."""
    if exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc.strerror or exc)


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address: ``[::1]:5000``."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def format_peer(address: tuple) -> str:
    """A socket address as PEER: ``127.0.0.1:54321`` or ``[::1]:54321``."""
    host, port = address[0], address[1]
    # C's inet_ntop prints no zone index; match it.
    return format_address(host.split("%", 1)[0], port)


def resolve(host: str | None, port: int, passive: bool = False) -> list[tuple]:
    """getaddrinfo for TCP; raise ``ResolveError`` with the resolver's text."""
    flags = socket.AI_PASSIVE if passive else 0
    try:
        return socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, flags)
    except socket.gaierror as exc:
        raise ResolveError(str(exc.strerror or exc)) from exc
    except UnicodeError as exc:  # a host name the IDNA codec rejects
        raise ResolveError("Name or service not known") from exc


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle: each frame already leaves in one send."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_io_timeout(sock: socket.socket, seconds: int) -> None:
    """Limit each recv/send to ``seconds`` (0: wait forever) in the kernel.

    SO_RCVTIMEO/SO_SNDTIMEO keep the socket blocking; Python's own timeout
    would add a poll() call before every recv and send on the hot path.
    """
    sock.settimeout(None)
    timeval = struct.pack("@ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def set_send_timeout(sock: socket.socket, seconds: int) -> None:
    """Limit each send to ``seconds`` (0: forever); receives stay untimed (the server polls)."""
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("@ll", seconds, 0))


def raise_open_file_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (best effort): a client is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect(host: str, port: int, timeout: int) -> socket.socket:
    """Connect to the first address of ``host`` that accepts, within ``timeout`` s.

    Raises ``ResolveError``, ``TimedOut`` (no address answered in time) or
    ``ConnectError`` with the last address's error text.
    """
    deadline = time.monotonic() + timeout if timeout else None
    last_error: OSError | None = None
    for family, type_, proto, _name, address in resolve(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(errno.ETIMEDOUT, "timed out")
                sock.settimeout(remaining)
            sock.connect(address)
            set_nodelay(sock)
            set_io_timeout(sock, timeout)
        except OSError as exc:
            sock.close()
            last_error = exc
            if deadline is not None and time.monotonic() >= deadline:
                break
            continue
        return sock
    if isinstance(last_error, TimeoutError):
        raise TimedOut(timeout)
    if last_error is None:
        raise ConnectError(os.strerror(errno.EADDRNOTAVAIL))
    raise ConnectError(strerror(last_error))


def listen(host: str, port: int, backlog: int = socket.SOMAXCONN) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: the kernel picks one).

    Raises ``ResolveError`` or ``ListenError``.
    """
    last_error: OSError | None = None
    for family, type_, proto, _name, address in resolve(host, port, passive=True):
        sock = socket.socket(family, type_, proto)
        try:
            # Restarting the server must not wait for TIME_WAIT to expire.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    assert last_error is not None  # getaddrinfo never returns an empty list
    raise ListenError(strerror(last_error))


def recv_some(sock: socket.socket, seconds: int) -> bytes:
    """Up to RECV_SIZE bytes; ``b""`` when the peer closed.

    Raises ``TimedOut`` after ``seconds`` without data, ``RecvError`` otherwise.
    """
    try:
        return sock.recv(RECV_SIZE)
    except OSError as exc:
        raise _recv_error(exc, seconds) from exc


def _recv_error(exc: OSError, seconds: int) -> Exception:
    if isinstance(exc, TimeoutError) or exc.errno in _TIMEOUT_ERRNOS:
        return TimedOut(seconds)
    return RecvError(strerror(exc))


def send_all(sock: socket.socket, data: bytes, seconds: int) -> None:
    """Send every byte of ``data``; raise ``TimedOut`` or ``SendError``."""
    try:
        sock.sendall(data)
    except OSError as exc:
        if isinstance(exc, TimeoutError) or exc.errno in _TIMEOUT_ERRNOS:
            raise TimedOut(seconds) from exc
        raise SendError(strerror(exc)) from exc


def bytes_queued(sock: socket.socket) -> int:
    """Bytes received by the kernel and not read yet (FIONREAD)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(raw, sys.byteorder)


def close_quietly(sock: socket.socket) -> None:
    """Shut down and close, ignoring errors (the peer may be gone already)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def shutdown_write(sock: socket.socket) -> None:
    """Send our FIN (the peer reads EOF) while still reading what it sends."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def wake(sock: socket.socket) -> None:
    """Make a thread blocked in recv/send on ``sock`` return (server shutdown)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
