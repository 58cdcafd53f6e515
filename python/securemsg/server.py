"""The server: a thread per client, in the style of CPython's socketserver.

``SecureMsgServer`` owns the listening socket, the client limit and shutdown;
``ClientHandler`` serves one connection (setup: log it; handle: frames in,
ACKs out; finish: log the end). Protocol work happens in ``session`` and
``framing``; this module only moves bytes and writes log lines.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import socketserver
import sys
import threading
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
from .session import HandshakeComplete, Message, SessionFactory, ack_text

# Connections the kernel queues while the acceptor is busy (c/server.c uses the
# same); socketserver's default of 5 resets clients that connect all at once.
LISTEN_BACKLOG = 128


def describe_error(exc: SecureMsgError, peer: str) -> str:
    """The text after ``[ERROR] `` for a per-connection failure (PROTOCOL.md 7)."""
    if isinstance(exc, FrameTooLarge):
        return f"Frame too large from {peer}: {exc.length} bytes (limit {exc.limit})"
    if isinstance(exc, TruncatedFrame):
        return f"Truncated frame from {peer}: {exc}"
    if isinstance(exc, TimedOut):
        return f"Idle timeout for {peer} after {exc.seconds} s"
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


class ClientHandler(socketserver.BaseRequestHandler):
    """Serves one client: every frame it sends gets exactly one ACK frame."""

    server: SecureMsgServer
    request: socket.socket

    def setup(self) -> None:
        self.peer = net.format_peer(self.client_address)
        try:
            net.set_nodelay(self.request)
            net.set_io_timeout(self.request, self.server.config.idle_timeout)
        except OSError:
            pass  # the peer is already gone: the first recv reports it
        self.server.console.info(f"Client connected: {self.peer}")

    def handle(self) -> None:
        try:
            self._serve()
        except SecureMsgError as exc:
            if not self.server.stopping:  # shutdown cuts connections on purpose
                self.server.console.error(describe_error(exc, self.peer))

    def finish(self) -> None:
        # The slot first (as c/server.c): whoever reconnects on seeing this line
        # must not be refused for a connection that is already over.
        self.server.release_slot(self.request)
        self.server.console.info(f"Client disconnected: {self.peer}")

    def _serve(self) -> None:
        # Locals, not attribute lookups, on the per-message path.
        sock = self.request
        idle = self.server.config.idle_timeout
        console = self.server.console
        session = self.server.factory.new_session(initiator=False)
        feed, next_event, encode = session.feed, session.next_event, session.encode_message
        recv_some, send_all = net.recv_some, net.send_all
        while True:
            data = recv_some(sock, idle)
            if not data:
                session.check_eof()
                return
            feed(data)
            while True:
                event = next_event()
                if event is NEED_MORE:
                    break
                if type(event) is Message:
                    # The ACK first: logging (a 1 MiB line, a slow stdout) stays off
                    # the round trip. RECV is written even when the send fails.
                    wire, _ = encode(ack_text(len(event.data)))
                    try:
                        send_all(sock, wire, idle)
                    except SecureMsgError:
                        console.recv_plaintext(event.data)
                        raise
                    console.answered(event.data)
                elif type(event) is HandshakeComplete:
                    send_all(sock, event.reply, idle)
                    console.info(f"Handshake complete: {self.peer}")


class SecureMsgServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Listens, enforces --max-clients, and shuts every connection down on stop."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, config: ServerConfig, console: Logger, factory: SessionFactory) -> None:
        self.config = config
        self.console = console
        self.factory = factory
        self.stopping = False
        self._clients: set[socket.socket] = set()
        self._client_threads: set[threading.Thread] = set()  # started, not yet ended
        self._clients_lock = threading.Lock()
        super().__init__((config.bind, config.port), ClientHandler)

    def server_bind(self) -> None:
        # TCPServer made an AF_INET socket; ours follows getaddrinfo (IPv6, names).
        self.socket.close()
        self.socket = net.listen(self.config.bind, self.config.port, self.request_queue_size)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """``net.listen`` already listens."""

    @property
    def listening_on(self) -> str:
        return net.format_address(self.server_address[0], self.server_address[1])

    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        with self._clients_lock:
            accepted = len(self._clients) < self.config.max_clients and not self.stopping
            if accepted:
                self._clients.add(request)
        if not accepted:
            peer = net.format_peer(client_address)
            self.console.error(
                f"Client refused: {peer}: too many clients (limit {self.config.max_clients})"
            )
            self.shutdown_request(request)
            return
        self._start_thread(request, client_address)

    def _start_thread(self, request: socket.socket, client_address: tuple) -> None:
        """ThreadingMixIn.process_request, but a thread that cannot start refuses the
        client with one line (the mixin would keep it and fail to join it at stop)."""
        thread = threading.Thread(
            target=self._client_thread, args=(request, client_address), name="client"
        )
        with self._clients_lock:
            self._client_threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": pthread_create said EAGAIN
            with self._clients_lock:
                self._client_threads.discard(thread)
            peer = net.format_peer(client_address)
            self.console.error(f"Client refused: {peer}: {os.strerror(errno.EAGAIN)}")
            self.shutdown_request(request)

    def _client_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._clients_lock:
                self._client_threads.discard(threading.current_thread())

    def release_slot(self, request: socket.socket) -> None:
        """This connection no longer counts against --max-clients."""
        with self._clients_lock:
            self._clients.discard(request)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        self.release_slot(request)
        net.close_quietly(request)

    def server_close(self) -> None:
        """Close the listener and wait for every client thread."""
        super().server_close()
        with self._clients_lock:
            threads = list(self._client_threads)
        for thread in threads:
            thread.join()

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        """A bug, not a protocol error: one line instead of a traceback."""
        exc = sys.exc_info()[1]
        peer = net.format_peer(client_address)
        self.console.error(f"Internal error with {peer}: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop accepting, cut every client connection, wait for the threads."""
        self.shutdown()
        with self._clients_lock:
            self.stopping = True
            clients = list(self._clients)
        for sock in clients:
            net.wake(sock)
        self.server_close()


class ShutdownPipe:
    """The self-pipe of c/server.c: whoever wants the server stopped writes a byte.

    Signals reach it through ``signal.set_wakeup_fd``: the C-level handler,
    in whichever thread the kernel picked, writes the signal's number to the
    pipe, which wakes the main thread's poll(). A Python-level handler would
    not do: it runs only in the main thread, between bytecodes, so a signal
    delivered to a client thread left the main thread asleep in poll(); and
    it may run inside another handler, so it must take no lock (a second
    SIGTERM inside threading.Event.set() deadlocked). The pipe is never
    closed: a signal may still arrive while the interpreter exits.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    ACCEPTOR_ENDED = b"A"  # 65: above every signal number the server handles

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def notify(self, reason: bytes) -> None:
        """Wake the main thread (from any thread)."""
        with contextlib.suppress(OSError):  # pipe full: the main thread is awake anyway
            os.write(self._write_fd, reason)

    def install_signal_handlers(self) -> None:
        """From the main thread: SIGINT and SIGTERM write their number to the pipe."""
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            signal.signal(signum, _ignore_signal)  # the wake-up byte is the whole effect

    def wait(self) -> bytes:
        """Sleep until something was written; return the bytes written so far."""
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        while True:
            poller.poll()
            with contextlib.suppress(BlockingIOError):
                return os.read(self._read_fd, 64)

    def hold_late_signals(self) -> None:
        """Keep further SIGINT/SIGTERM pending until the process exits.

        While the interpreter exits it restores the default actions, so a late
        signal (`timeout` sends SIGTERM twice) would turn exit 0 into death by
        that signal. By now only the main thread is left: blocking them in it
        blocks them for the process.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)

    @classmethod
    def signalled(cls, reasons: bytes) -> bool:
        return any(signum in reasons for signum in cls.SIGNALS)


def _ignore_signal(_signum: int, _frame: FrameType | None) -> None:
    """Replaces the default action (exit, or KeyboardInterrupt); the pipe has the byte."""


def run(config: ServerConfig, console: Logger) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    wakeup = ShutdownPipe()
    wakeup.install_signal_handlers()  # before Argon2id, which takes a moment
    try:
        factory = SessionFactory.from_config(config)
    except SecureMsgError as exc:
        console.error(str(exc))
        return 1
    try:
        server = SecureMsgServer(config, console, factory)
    except (ListenError, ResolveError) as exc:
        where = net.format_address(escape_text(config.bind), config.port)
        console.error(f"Cannot listen on {where}: {exc.strerror}")
        return 1
    console.info(f"Listening on {server.listening_on}")
    if config.cipher == "noise":  # xor mode prints exactly the seed's lines
        console.info(f"Cipher: {factory.description}")

    def serve() -> None:
        try:
            server.serve_forever(poll_interval=0.2)
        except OSError as exc:  # waiting for connections failed: as c/server.c, exit 1
            console.error(f"Cannot wait for connections: {net.strerror(exc)}")
        finally:
            wakeup.notify(ShutdownPipe.ACCEPTOR_ENDED)

    acceptor = threading.Thread(target=serve, name="accept")
    acceptor.start()
    signalled = ShutdownPipe.signalled(wakeup.wait())
    if signalled:
        console.info("Shutting down")  # before the clients' disconnect lines
    server.stop()
    acceptor.join()
    wakeup.hold_late_signals()
    return 0 if signalled else 1


def main(argv: list[str] | None = None) -> int:
    """``server.py [OPTIONS] PORT``; returns the exit status."""
    console = Logger()
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
