"""The server: an accept loop and a thread per client, the shape of c/server.c.

``SecureMsgServer.serve_forever`` polls the listening socket and a wake-up pipe,
admits each new connection (evicting the longest-idle client when full) and
starts a thread running ``ClientHandler.run``: setup (log it), handle (frames
in, ACKs out, within the deadlines of PROTOCOL.md 4), finish (free the slot,
log the end). A signal or ``stop()`` ends the loop; ``SecureMsgServer.shutdown`` is
the one way out: close the listener, let every client finish its frame and
close cleanly, cut what is left after --drain-timeout.

Protocol work happens in ``session`` and ``framing``, socket calls in ``net``;
this module only moves bytes, keeps time and writes log lines.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import heapq
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from types import FrameType

from . import net
from .config import SERVER_USAGE, HelpRequested, ServerConfig, parse_server_args
from .errors import (
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    KeyFileError,
    ListenError,
    MessageTooLarge,
    RecvError,
    ResolveError,
    SecureMsgError,
    SendError,
    TimedOut,
    TruncatedFrame,
    UsageError,
)
from .framing import NEED_MORE
from .log import Logger, escape_text
from .session import HandshakeComplete, Message, Session, SessionFactory, ack_text

THREAD_STACK = 256 * 1024  # a client thread needs little; 1,000 idle peers stay cheap
MMAP_THRESHOLD = 128 * 1024  # glibc's own default, kept fixed (see unmap_large_buffers)
_M_MMAP_THRESHOLD = -3  # mallopt parameter number, <malloc.h>
EVICTION_WAIT = 2.0  # seconds the acceptor waits for an evicted client's thread to end
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FrameTimeout(SecureMsgError):
    """A frame did not complete within --frame-timeout + length / --min-rate."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"frame timeout after {seconds} s")
        self.seconds = seconds


class HandshakeTimeout(SecureMsgError):
    """The noise handshake did not complete within --frame-timeout of accept."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"handshake timeout after {seconds} s")
        self.seconds = seconds


class ConnectionEnded(Exception):
    """The server ended this connection on purpose (eviction, drain): no error line."""


def describe_error(exc: SecureMsgError, peer: str) -> str:
    """The text after ``[ERROR] `` for a per-connection failure (PROTOCOL.md 7)."""
    if isinstance(exc, FrameTooLarge):
        return f"Frame too large from {peer}: {exc.length} bytes (limit {exc.limit})"
    if isinstance(exc, TruncatedFrame):
        return f"Truncated frame from {peer}: {exc}"
    if isinstance(exc, TimedOut):
        return f"Idle timeout for {peer} after {exc.seconds} s"
    if isinstance(exc, FrameTimeout):
        return f"Frame timeout for {peer} after {exc.seconds} s"
    if isinstance(exc, HandshakeTimeout):
        return f"Handshake timeout for {peer} after {exc.seconds} s"
    if isinstance(exc, RecvError):
        return f"Receive from {peer} failed: {exc.strerror}"
    if isinstance(exc, SendError):
        return f"Send to {peer} failed: {exc.strerror}"
    if isinstance(exc, HandshakeError):
        return f"Handshake failed with {peer}: {exc}"
    if isinstance(exc, DecryptError):
        return f"Decryption failed from {peer}: {exc}"
    if isinstance(exc, MessageTooLarge):
        return f"Message too large from {peer}: more than {exc.limit} bytes"
    return f"Connection with {peer} failed: {exc}"


class ClientHandler:
    """Serves one client: every frame it sends gets exactly one ACK frame.

    ``busy`` (a frame, a message or the handshake in progress) and
    ``quiet_since`` tell the acceptor whom it may evict; ``lock`` makes
    "not busy, so evicted" and "bytes arrived, so busy" exclusive.
    """

    def __init__(self, server: SecureMsgServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.config = server.config
        self.sock = sock
        self.peer = peer
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.busy = True  # until setup has logged the connection
        self.evicted = False
        self.cut = False  # closed by the server after the drain deadline
        self.done = threading.Event()  # set after the disconnect line
        self.accepted_at = time.monotonic()
        self.quiet_since = self.accepted_at  # end of the last frame (idle time)
        self._last_bytes = self.accepted_at
        self._frame_start: float | None = None
        self._frames_seen = 0
        self._closing = False  # the server is shutting down and we know it
        self.session: Session
        self._poller = select.poll()

    # --- the three steps -----------------------------------------------------

    def run(self) -> None:
        """The thread's body."""
        try:
            self.setup()
            self.handle()
        except ConnectionEnded:
            pass
        except SecureMsgError as exc:
            if not (self.evicted or self.cut):
                self.server.console.error(describe_error(exc, self.peer))
        except Exception as exc:  # noqa: BLE001 - a bug: one line, not a traceback
            name = type(exc).__name__
            self.server.console.error(f"Internal error with {self.peer}: {name}: {exc}")
        finally:
            self.finish()

    def setup(self) -> None:
        try:
            net.set_nodelay(self.sock)
            net.set_send_timeout(self.sock, self.config.idle_timeout)
        except OSError:
            pass  # the peer is already gone: the first recv reports it
        self.session = self.server.factory.new_session(initiator=False)
        self._poller.register(self.sock, select.POLLIN)
        self._poller.register(self.server.closing_fd, select.POLLIN)
        self.server.console.info(f"Client connected: {self.peer}")
        self.busy = not self.session.established  # noise: the handshake is in progress

    def handle(self) -> None:
        while True:
            data = self._receive()
            if not data:
                self.session.check_eof()
                return
            self._process(data)

    def finish(self) -> None:
        # The slot first (as c/server.c): whoever reconnects on seeing the
        # disconnect line must not be refused for a connection that is over.
        self.server.release(self)
        net.close_quietly(self.sock)
        self.server.console.info(f"Client disconnected: {self.peer}")
        self.done.set()

    # --- receiving, within the deadlines --------------------------------------

    def _receive(self) -> bytes:
        """The next bytes from the peer (``b""``: it closed).

        Raises a timeout, or ``ConnectionEnded`` when the server ends the
        connection (eviction, or shutdown once no frame is in progress).
        """
        while True:
            timeout, on_expiry = self._wait_limit()
            ready = self._poller.poll(None if timeout is None else math.ceil(timeout * 1000))
            if any(fd == self.server.closing_fd for fd, _ in ready):
                self._closing = True  # shutdown began: finish the frame, then close
                self._poller.unregister(self.server.closing_fd)
                continue
            if ready:
                return self._read()
            if on_expiry is not None:
                raise on_expiry
            self._close_gracefully()

    def _wait_limit(self) -> tuple[float | None, SecureMsgError | None]:
        """How long the next wait may last, and what to raise when it runs out.

        ``None`` to raise means: close without an error line (shutdown).
        """
        now = time.monotonic()
        limit, error = self._protocol_deadline()
        if self._closing:  # between frames: close now; in one: finish it, within the drain
            drain_end = self.server.drain_deadline if self.busy else now
            if limit is None or drain_end < limit:
                limit, error = drain_end, None
        if limit is None:
            return None, None
        return max(0.0, limit - now), error

    def _protocol_deadline(self) -> tuple[float | None, SecureMsgError]:
        """When the current wait must end: the earlier of the handshake deadline
        (noise, until it completes) and the frame's or the idle deadline."""
        limit, error = self._frame_or_idle_deadline()
        frame_timeout = self.config.frame_timeout
        if not self.session.established and frame_timeout:
            handshake_end = self.accepted_at + frame_timeout
            if limit is None or handshake_end <= limit:
                return handshake_end, HandshakeTimeout(frame_timeout)
        return limit, error

    def _frame_or_idle_deadline(self) -> tuple[float | None, SecureMsgError]:
        frame_timeout = self.config.frame_timeout
        idle = self.config.idle_timeout
        if self._frame_start is not None and frame_timeout:
            length = self.session.frame_progress()[2] or 0
            allowed = frame_timeout + length / self.config.min_rate
            return self._frame_start + allowed, FrameTimeout(math.ceil(allowed))
        if not idle:
            return None, TimedOut(idle)
        if self.busy:  # no frame deadline: each read may wait the idle timeout
            return self._last_bytes + idle, TimedOut(idle)
        return self.quiet_since + idle, TimedOut(idle)

    def _read(self) -> bytes:
        data = net.recv_some(self.sock, self.config.idle_timeout)
        with self.lock:
            if self.evicted:
                raise ConnectionEnded()
            self.busy = True
        self._last_bytes = time.monotonic()
        return data

    def _close_gracefully(self) -> None:
        """Shutdown, between frames: FIN, then read and discard until the peer's EOF.

        Closing with unread bytes would send a reset; a client that sent its
        next message before seeing our FIN gets EOF instead of an ACK.
        """
        net.shutdown_write(self.sock)
        while (remaining := self.server.drain_deadline - time.monotonic()) > 0:
            if not self._poller.poll(math.ceil(remaining * 1000)):
                continue
            try:
                if not self.sock.recv(net.RECV_SIZE):
                    break
            except OSError:
                break
        raise ConnectionEnded()

    # --- frames in, ACKs out ---------------------------------------------------

    def _process(self, data: bytes) -> None:
        self.session.feed(data)
        while (event := self.session.next_event()) is not NEED_MORE:
            if isinstance(event, Message):
                self._answer(event)
            elif isinstance(event, HandshakeComplete):
                net.send_all(self.sock, event.reply, self.config.idle_timeout)
                self.server.console.info(f"Handshake complete: {self.peer}")
        self._track_frame()

    def _answer(self, message: Message) -> None:
        # The ACK first: logging (a 1 MiB line, a slow stdout) stays off the
        # round trip. RECV is written even when the send fails.
        wire, _ = self.session.encode_message(ack_text(len(message.data)))
        try:
            net.send_all(self.sock, wire, self.config.idle_timeout)
        except SecureMsgError:
            self.server.console.recv_plaintext(message.data)
            raise
        self.server.console.answered(message.data)

    def _track_frame(self) -> None:
        """After the bytes are used up: note when the partial frame began, if any."""
        frames, buffered, _length = self.session.frame_progress()
        if not buffered:
            self._frame_start = None
        elif self._frame_start is None or frames != self._frames_seen:
            self._frame_start = self._last_bytes  # its first bytes came in this read
        self._frames_seen = frames
        if not buffered and not self.session.in_message:
            self.quiet_since = time.monotonic()
        self.busy = bool(buffered) or self.session.in_message or not self.session.established

    # --- called by the acceptor ------------------------------------------------

    def claim_for_eviction(self) -> bool:
        """True (and the connection is ours to end) unless a frame is in progress."""
        with self.lock:
            if self.busy or self.evicted:
                return False
            self.evicted = True
            return True


class SecureMsgServer:
    """Listens, admits or evicts or refuses, and shuts every connection down."""

    def __init__(
        self,
        config: ServerConfig,
        console: Logger,
        factory: SessionFactory,
        wake: tuple[int, int] | None = None,
    ) -> None:
        self.config = config
        self.console = console
        self.factory = factory
        self.listener = net.listen(config.bind, config.port, socket.SOMAXCONN)
        self.listener.setblocking(False)  # a peer gone between poll and accept cannot block us
        self.server_address = self.listener.getsockname()
        # wake: signals and stop() end the accept loop. closing: readable once
        # shutdown began; every client thread polls it. Neither is ever closed:
        # a signal may still arrive while the interpreter exits.
        self.wake_fd, self._wake_write = wake or make_pipe()
        self.closing_fd, self._closing_write = make_pipe()
        self.drain_deadline = math.inf
        self._clients: set[ClientHandler] = set()
        self._lock = threading.Lock()

    @property
    def listening_on(self) -> str:
        return net.format_address(self.server_address[0], self.server_address[1])

    # --- the accept loop -------------------------------------------------------

    def serve_forever(self) -> bytes:
        """Accept until a signal or ``stop()``, then shut down; return the wake-up bytes.

        Raises ``OSError`` (after shutting down) when polling itself fails.
        """
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.wake_fd, select.POLLIN)
        try:
            while True:
                ready = [fd for fd, _ in poller.poll()]
                if self.wake_fd in ready:
                    reasons = _read_pipe(self.wake_fd)
                    self.console.info("Shutting down")  # before the clients' disconnect lines
                    return reasons
                self._accept_one()
        finally:
            self.shutdown()

    def stop(self) -> None:
        """End ``serve_forever`` (from any thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _accept_one(self) -> None:
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        except OSError as exc:
            self.console.error(f"Cannot accept a connection: {net.strerror(exc)}")
            time.sleep(0.1)  # e.g. EMFILE: do not spin
            return
        handler = ClientHandler(self, sock, net.format_peer(address))
        if not self._admit(handler):
            limit = self.config.max_clients
            self.console.error(f"Client refused: {handler.peer}: too many clients (limit {limit})")
            net.close_quietly(sock)
            return
        handler.thread = threading.Thread(target=handler.run, name="client", daemon=True)
        try:
            handler.thread.start()
        except RuntimeError:  # "can't start new thread": pthread_create said EAGAIN
            self.release(handler)
            self.console.error(f"Client refused: {handler.peer}: {os.strerror(errno.EAGAIN)}")
            net.close_quietly(sock)

    def _admit(self, handler: ClientHandler) -> bool:
        """Take a slot for ``handler``, evicting the longest-idle client if full."""
        if self._take_slot(handler):
            return True
        victim = self._evict_one()
        if victim is None:
            return False
        victim.done.wait(EVICTION_WAIT)
        return self._take_slot(handler)

    def _take_slot(self, handler: ClientHandler) -> bool:
        with self._lock:
            if len(self._clients) >= self.config.max_clients:
                return False
            self._clients.add(handler)
            return True

    def _evict_one(self) -> ClientHandler | None:
        """End the client idle longest among those with no frame or handshake going on."""
        with self._lock:
            idle = [client for client in self._clients if not client.busy]
        for victim in heapq.nsmallest(8, idle, key=lambda client: client.quiet_since):
            if victim.claim_for_eviction():
                seconds = int(time.monotonic() - victim.quiet_since)
                self.console.info(
                    f"Evicted {victim.peer}: idle {seconds} s, "
                    f"server full (limit {self.config.max_clients})"
                )
                net.wake(victim.sock)  # its poll returns; its thread ends quietly
                return victim
        return None

    def release(self, handler: ClientHandler) -> None:
        """This connection no longer counts against --max-clients."""
        with self._lock:
            self._clients.discard(handler)

    # --- the one way out -------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting; let clients finish their frame and close; cut the rest."""
        self.listener.close()
        with self._lock:
            self.drain_deadline = time.monotonic() + self.config.drain_timeout
            clients = list(self._clients)
        os.write(self._closing_write, b"\0")  # never read: every client's poll sees it
        for client in clients:
            _join(client, self.drain_deadline - time.monotonic())
        for client in clients:  # e.g. a send blocked on a peer that reads nothing
            if client.thread is not None and client.thread.is_alive():
                client.cut = True
                net.wake(client.sock)
        for client in clients:
            _join(client, None)


def _join(client: ClientHandler, timeout: float | None) -> None:
    if client.thread is not None and client.thread.ident is not None:
        client.thread.join(None if timeout is None else max(0.0, timeout))


def make_pipe() -> tuple[int, int]:
    """A non-blocking pipe ``(read fd, write fd)``."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    return read_fd, write_fd


def _read_pipe(fd: int) -> bytes:
    with contextlib.suppress(BlockingIOError):
        return os.read(fd, 64)
    return b""


def _ignore_signal(_signum: int, _frame: FrameType | None) -> None:
    """Replaces the default action (exit, or KeyboardInterrupt); the pipe has the byte.

    The C-level handler, in whichever thread the kernel picked, writes the
    signal's number to the wake-up pipe (``signal.set_wakeup_fd``), which
    wakes the accept loop's poll(). A Python-level handler that did the work
    would run only in the main thread, between bytecodes.
    """


def install_signal_handlers(wake_write: int) -> None:
    """From the main thread: SIGINT and SIGTERM write their number to ``wake_write``."""
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    for signum in SIGNALS:
        signal.signal(signum, _ignore_signal)


def hold_late_signals() -> None:
    """Keep further SIGINT/SIGTERM pending until the process exits.

    While the interpreter exits it restores the default actions, so a late
    signal (`timeout` sends SIGTERM twice) would turn exit 0 into death by
    that signal. By now only the main thread is left: blocking them in it
    blocks them for the process.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def unmap_large_buffers() -> None:
    """Give memory of large frames back to the system once they are freed (glibc).

    glibc serves blocks above its mmap threshold with mmap, returned on free, but
    raises the threshold after each large free: later 1 MiB frames then come from
    per-thread heaps that it rarely shrinks, and RSS stayed near 100 MB after
    fuzzing (issue 10.4). Fixing the threshold keeps every frame buffer above
    128 KiB in a mapping of its own. Best effort: other C libraries are left alone.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def run(config: ServerConfig, console: Logger) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    unmap_large_buffers()
    wake = make_pipe()
    install_signal_handlers(wake[1])  # before Argon2id, which takes a moment
    threading.stack_size(THREAD_STACK)
    try:
        factory = SessionFactory.from_config(config)
        server = SecureMsgServer(config, console, factory, wake)
    except (ListenError, ResolveError) as exc:
        where = net.format_address(escape_text(config.bind), config.port)
        console.error(f"Cannot listen on {where}: {exc.strerror}")
        return 1
    except SecureMsgError as exc:
        console.error(str(exc))
        return 1
    console.info(f"Listening on {server.listening_on}")
    if config.cipher == "noise":  # xor mode prints exactly the seed's lines
        console.info(f"Cipher: {factory.description}")
    try:
        reasons = server.serve_forever()
    except OSError as exc:  # waiting for connections failed: as c/server.c, exit 1
        console.error(f"Cannot wait for connections: {net.strerror(exc)}")
        reasons = b""
    hold_late_signals()
    return 0 if any(signum in reasons for signum in SIGNALS) else 1


def main(argv: list[str] | None = None) -> int:
    """``server.py [OPTIONS] PORT``; returns the exit status."""
    console = Logger()
    net.raise_open_file_limit()  # before parsing: the --max-clients default follows it
    try:
        config = parse_server_args(sys.argv[1:] if argv is None else argv)
    except HelpRequested:
        console.raw_out(SERVER_USAGE)
        return 0
    except UsageError as exc:
        console.error(str(exc))
        console.raw_err(SERVER_USAGE)
        return 2
    except KeyFileError as exc:
        console.error(str(exc))
        return 1
    return run(config, console)
