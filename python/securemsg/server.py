"""The server: an accept loop and a thread per client, the shape of c/server.c.

``SecureMsgServer.serve_forever`` polls the listening socket and a wake-up pipe,
admits each new connection (evicting when full, PROTOCOL.md 9) and starts a
thread running ``ClientHandler.run``: setup (log it), handle (frames in, ACKs
out, within the deadlines of ``conn``), finish (free the slot, log the end).
A signal or ``stop()`` ends the loop; ``SecureMsgServer.shutdown`` is the one
way out: accept what is queued, let every client finish its frame and close
cleanly, cut what is left at --drain-timeout.

The receive path makes one system call per read: the socket's SO_RCVTIMEO is
the time left to the current deadline, set again only when the deadline
changes, and every read checks the clock against it, so that a peer which
always has bytes still meets its frame deadline. The acceptor and the
shutdown wake a client thread by shutting its socket down.

Protocol work happens in ``session`` and ``framing``, the rules of time and
eviction in ``conn``, socket calls in ``net``; this module moves bytes,
reserves memory and writes log lines.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import ctypes
import errno
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from types import FrameType

from . import conn, net
from .config import HelpRequested, ServerConfig, parse_server_args, program_name, server_usage
from .config import session_factory as make_session_factory
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
MMAP_THRESHOLD = 128 * 1024  # glibc's own default, kept fixed (see return_memory)
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, <malloc.h>
_M_ARENA_MAX = -8
ALLOWANCE = 65536  # bytes of a frame any connection may hold without the budget
EVICTION_WAIT = 2.0  # seconds the acceptor waits for an evicted client's thread to end
ACCEPT_BATCH = 64  # accepts per wake-up of the accept loop
REARM_SLACK_MS = 50  # how late a wait may end past its deadline before re-arming
EXIT_GRACE = 0.9  # seconds past the drain deadline for cut threads to log their end
TRIM_INTERVAL_MS = 1000  # at most one malloc_trim per second
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TIMEOUT_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT)


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


class BudgetCut(SecureMsgError):
    """A frame's deadline passed while the memory budget paused its reads."""

    def __init__(self, held: int, limit: int) -> None:
        super().__init__(f"paused by the memory budget ({held} bytes buffered, limit {limit})")
        self.held = held
        self.limit = limit


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
    if isinstance(exc, BudgetCut):
        return (
            f"Cut {peer}: frame deadline passed while paused by the memory budget "
            f"({exc.held} bytes buffered, limit {exc.limit})"
        )
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


def _expired(deadline: conn.Deadline) -> Exception:
    kind = deadline.kind
    if kind is conn.Wait.FRAME:
        return FrameTimeout(deadline.seconds)
    if kind is conn.Wait.HANDSHAKE:
        return HandshakeTimeout(deadline.seconds)
    if kind is conn.Wait.IDLE:
        return TimedOut(deadline.seconds)
    return ConnectionEnded()  # the drain: close without an error line


def _set_recv_timeout(sock: socket.socket, ms: int) -> None:
    """SO_RCVTIMEO of ``ms`` milliseconds (0: none)."""
    ms = max(ms, 1) if ms else 0
    timeval = struct.pack("@ll", ms // 1000, ms % 1000 * 1000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


class MemoryBudget:
    """--max-buffered: bytes of frames beyond each connection's allowance.

    Reservations are granted in the order asked; a connection that cannot get
    its chunk waits (and so stops reading: TCP's window stops its peer). The
    first waiter and the last one leaving each log one line.
    """

    def __init__(self, limit: int, console: Logger) -> None:
        self.limit = limit
        self.used = 0
        self._console = console
        self._lock = threading.Lock()
        self._waiters: collections.deque[list] = collections.deque()  # [size, event, granted]

    def reserve(self, size: int, until_ms: int, cancelled: threading.Event) -> bool:
        """Reserve ``size`` bytes, waiting until ``until_ms`` at most; False if not granted."""
        with self._lock:
            if not self._waiters and self.used + size <= self.limit:
                self.used += size
                return True
            waiter = [size, cancelled, False]
            self._waiters.append(waiter)
            first = len(self._waiters) == 1
        if first:
            self._console.info(
                f"Memory budget full (limit {self.limit} bytes): pausing reads of large frames"
            )
        while not waiter[2] and not cancelled.is_set():
            left = until_ms - conn.now_ms()
            if left <= 0:
                break
            cancelled.wait(min(left, 3600_000) / 1000)
        with self._lock:
            if waiter[2]:
                return True
            self._waiters.remove(waiter)
            last = not self._waiters
        if last:
            self._console.info("Memory budget available again: resuming reads")
        return False

    def release(self, size: int) -> None:
        if not size:
            return
        with self._lock:
            self.used -= size
            if not self._waiters:
                return
            while self._waiters and self.used + self._waiters[0][0] <= self.limit:
                waiter = self._waiters.popleft()
                self.used += waiter[0]
                waiter[2] = True
                waiter[1].set()
            last = not self._waiters
        if last:
            self._console.info("Memory budget available again: resuming reads")


class HangupWatcher:
    """Notices when the peer of a paused connection closes.

    A connection paused by the budget reads nothing, so it would not see its
    peer's EOF until its deadline; one thread waits for EPOLLRDHUP on every
    paused socket and wakes its wait, so that threads end with their peers.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._started = False

    def watch(self, sock: socket.socket, event: threading.Event) -> None:
        fd = sock.fileno()
        with self._lock:
            self._events[fd] = event
            if not self._started:
                self._started = True
                _thread.start_new_thread(self._run, ())
        self._epoll.register(fd, select.EPOLLRDHUP | select.EPOLLONESHOT)

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        with self._lock:
            self._events.pop(fd, None)
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)

    def _run(self) -> None:
        while True:
            for fd, _ in self._epoll.poll():
                with self._lock:
                    event = self._events.get(fd)
                if event is not None:
                    event.set()


class ClientHandler:
    """Serves one client: every frame it sends gets exactly one ACK frame.

    ``busy`` (a frame, a message or the handshake in progress) and ``ending``
    (why the server ends it: "evicted", "closing", "cut") change under
    ``lock``, so that "quiet, so evicted (or closed for the drain)" and
    "bytes arrived, so busy" exclude each other.
    """

    def __init__(self, server: SecureMsgServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.config = server.config
        self.sock = sock
        self.peer = peer
        self.lock = threading.Lock()
        self.busy = True  # until setup has logged the connection
        self.ending: str | None = None
        self.done = threading.Event()  # set after the disconnect line
        self.wakeup = threading.Event()  # ends a wait for the memory budget
        self.logging_end = False  # the disconnect line is being written
        self._served_queued = False  # shutdown: what was received then is being served
        now = conn.now_ms()
        self.t = conn.Timing.at(now)
        self.progress_start = now  # first byte of the frame/message/handshake in progress
        self.session: Session
        self._deadline = conn.Deadline(conn.Wait.NONE, conn.NEVER, 0)
        self._check_at = conn.NEVER  # the deadline every read checks (frame, handshake)
        self._armed_idle = False  # SO_RCVTIMEO is the idle timeout (a relative wait)
        self._armed_ms = 0  # SO_RCVTIMEO otherwise (each recv may wait this long)
        self._frames_seen = 0
        self._reserved = 0  # bytes held against the memory budget

    # --- the three steps -----------------------------------------------------

    def run(self) -> None:
        """The thread's body."""
        try:
            self.setup()
            self.handle()
        except ConnectionEnded:
            pass
        except SecureMsgError as exc:
            if self.ending is None:
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
        self.t.handshaking = not self.session.established
        self.server.console.info(f"Client connected: {self.peer}")
        self._rearm(conn.now_ms())
        self._become_quiet_or_busy(self.t.handshaking)

    def handle(self) -> None:
        sock = self.sock
        recv = sock.recv
        now_ms = conn.now_ms
        process = self._process
        size = net.RECV_SIZE
        while True:
            if self._reserved or self.session.held > ALLOWANCE - net.RECV_SIZE:
                size = self._reserve_next_read()
            try:
                data = recv(size)
            except OSError as exc:
                if exc.errno in _TIMEOUT_ERRNOS:
                    self._timed_out()
                    continue
                if self.ending is not None:
                    raise ConnectionEnded() from exc
                raise RecvError(net.strerror(exc)) from exc
            now = now_ms()
            with self.lock:
                ending = self.ending
                self.busy = True
            if ending is not None:
                if ending == "closing" and data:
                    continue  # sent before the peer saw our FIN: read on to its EOF
                raise ConnectionEnded()
            if not data:
                self.session.check_eof()
                return
            self.t.last_bytes = now
            if now >= self._check_at:  # every read: a peer that always has bytes too
                raise _expired(self._deadline)
            process(data, now)

    def finish(self) -> None:
        # The slot first (as c/server.c): whoever reconnects on seeing the
        # disconnect line must not be refused for a connection that is over.
        self.server.release(self)
        self.server.budget.release(self._reserved)
        self._reserved = 0
        net.close_quietly(self.sock)
        self.logging_end = True
        self.server.console.info(f"Client disconnected: {self.peer}")
        self.done.set()

    # --- deadlines -------------------------------------------------------------

    def _rearm(self, now: int) -> None:
        """The deadline changed: make SO_RCVTIMEO end the next wait there."""
        d = conn.next_deadline(self.server.limits, self.t)
        if self.ending == "closing":
            d = conn.with_drain(d, self.server.drain_deadline_ms, False, now)
        self._deadline = d
        idle = d.kind is conn.Wait.IDLE
        self._check_at = conn.NEVER if idle or d.kind is conn.Wait.NONE else d.at
        if idle:  # "no bytes for N s": each wait lasts the idle timeout
            if not self._armed_idle:
                _set_recv_timeout(self.sock, self.config.idle_timeout * 1000)
                self._armed_idle = True
            return
        self._armed_idle = False
        self._armed_ms = 0 if d.at == conn.NEVER else max(d.at - now, 1)
        _set_recv_timeout(self.sock, self._armed_ms)

    def _timed_out(self) -> None:
        """SO_RCVTIMEO ran out: raise if the deadline has passed, else wait on."""
        now = conn.now_ms()
        if self._deadline.kind is not conn.Wait.IDLE and now < self._deadline.at:
            self._rearm(now)
            return
        if self.ending is not None:
            raise ConnectionEnded()
        raise _expired(self._deadline)

    # --- the memory budget -----------------------------------------------------

    def _reserve_next_read(self) -> int:
        """Reserve from the budget what the frame needs beyond the allowance (noise,
        whose messages announce no length: the next read's worth), waiting (not
        reading) until it is granted. Returns the read size."""
        held = self.session.held
        target = held + net.RECV_SIZE
        frame_end = 4 + self.t.frame_len if self.t.frame_len else 0
        if held < frame_end and not self.t.in_message:
            # The whole rest of the frame at once: many half-received frames must
            # not share the budget out with none able to finish (PROTOCOL.md 4).
            target = frame_end
        need = target - ALLOWANCE - self._reserved
        if need <= 0:
            return net.RECV_SIZE
        deadline = self._deadline
        until = deadline.at
        if deadline.kind is conn.Wait.IDLE:
            until = conn.now_ms() + self.config.idle_timeout * 1000
        while True:
            # A grant sets this event too: left set, the next wait would end at once
            # and read as "the peer left" (a false cut of a peer still sending).
            self.wakeup.clear()
            self.server.hangups.watch(self.sock, self.wakeup)
            try:
                granted = self.server.budget.reserve(need, until, self.wakeup)
            finally:
                self.server.hangups.unwatch(self.sock)
            if granted:
                self._reserved += need
                return net.RECV_SIZE
            if self.ending is not None:
                raise ConnectionEnded()
            if conn.now_ms() >= until:
                raise BudgetCut(held, self.server.budget.limit)
            self._peer_left_while_paused()  # raises, unless the frame can still complete

    def _peer_left_while_paused(self) -> None:
        """The peer closed while we were not reading: end now if what it sent
        cannot complete the frame (the usual truncated-frame line)."""
        queued = net.bytes_queued(self.sock)
        _frames, buffered, length = self.session.frame_progress()
        if length is not None and buffered + queued >= 4 + length:
            return  # a whole frame, then FIN (a half-close): it will be answered
        if length is None:
            self.session.check_eof()
            raise DecryptError("connection closed in the middle of a message")
        raise TruncatedFrame("payload", buffered - 4 + queued, length)

    def _release_budget(self) -> None:
        if self._reserved and self.session.held <= ALLOWANCE:
            self.server.budget.release(self._reserved)
            self._reserved = 0

    # --- frames in, ACKs out ---------------------------------------------------

    def _process(self, data: bytes, now: int) -> None:
        session = self.session
        session.feed(data)
        while (event := session.next_event()) is not NEED_MORE:
            if isinstance(event, Message):
                self._answer(event)
            elif isinstance(event, HandshakeComplete):
                net.send_all(self.sock, event.reply, self.config.idle_timeout)
                self.server.console.info(f"Handshake complete: {self.peer}")
        if self._reserved:
            self._release_budget()
        frames, buffered, length = session.frame_progress()
        t = self.t
        if not buffered and not session.in_message and session.established:
            # The usual case: the read held whole frames. Quiet again.
            t.quiet_since = conn.now_ms()
            if t.frame_start >= 0 or t.handshaking or t.in_message:
                t.frame_start = -1
                t.in_message = t.handshaking = False
                self._rearm(t.quiet_since)
            self._frames_seen = frames
            self._become_quiet_or_busy(False)
            return
        self._track_progress(frames, buffered, length or 0, now)

    def _track_progress(self, frames: int, buffered: int, length: int, now: int) -> None:
        """A frame, message or handshake continues past this read."""
        session = self.session
        t = self.t
        changed = False
        if not buffered:
            if t.frame_start >= 0:
                t.frame_start, t.frame_len, changed = -1, 0, True
        elif t.frame_start < 0 or frames != self._frames_seen:
            t.frame_start, t.frame_len, changed = now, length, True
            if not session.in_message and session.established:
                self.progress_start = now  # a new frame, not the next chunk of a message
        elif length != t.frame_len:
            t.frame_len, changed = length, True
        self._frames_seen = frames
        handshaking = not session.established
        in_message = session.in_message
        if handshaking != t.handshaking or in_message != t.in_message:
            t.handshaking, t.in_message, changed = handshaking, in_message, True
        if changed:
            self._rearm(now)
        elif now + self._armed_ms > self._check_at + REARM_SLACK_MS:
            # SO_RCVTIMEO counts from each recv: a wait begun now would end past
            # the deadline by more than the slack (a peer trickling its frame).
            self._rearm(now)
        self._become_quiet_or_busy(not conn.is_quiet(t))

    def _become_quiet_or_busy(self, busy: bool) -> None:
        """Publish the state; a quiet connection closes if the server is shutting down."""
        with self.lock:
            self.busy = busy
            if busy or self.ending is not None or not self.server.closing:
                return
            if not self._served_queued and net.bytes_queued(self.sock):
                self._served_queued = True  # received by the time shutdown began: served
                return
            self.ending = "closing"
        self.close_for_drain()

    def close_for_drain(self) -> None:
        """Shutdown, between frames: FIN, then read and discard until the peer's EOF
        (closing with unread bytes would send a reset), until the drain deadline."""
        net.shutdown_write(self.sock)
        self._rearm(conn.now_ms())

    def _answer(self, message: Message) -> None:
        # The ACK first: logging (a 1 MiB line, a slow stdout) stays off the
        # round trip. Every RECV line has its ACK line or an error line.
        wire, _ = self.session.encode_message(ack_text(len(message.data)))
        try:
            net.send_all(self.sock, wire, self.config.idle_timeout)
        except SecureMsgError as exc:
            console = self.server.console
            console.recv_plaintext(message.data)
            if self.ending == "cut":
                drain = self.config.drain_timeout
                console.error(f"Send to {self.peer} failed: drain timeout passed ({drain} s)")
            else:
                console.error(describe_error(exc, self.peer))
            raise ConnectionEnded() from exc
        self.server.console.answered(message.data)

    # --- called by the acceptor and the shutdown --------------------------------

    def view(self) -> conn.SlotView:
        """What the eviction choice sees (read from another thread)."""
        if self.ending is not None:
            return conn.SlotView(conn.Slot.EVICTED)
        if not self.busy:
            return conn.SlotView(conn.Slot.QUIET, self.t.quiet_since)
        session = getattr(self, "session", None)
        held = session.held if session is not None else 0
        start = self.progress_start if held or self.t.handshaking else -1
        return conn.SlotView(conn.Slot.BUSY, self.t.quiet_since, start, held)

    def claim(self, why: str, quiet_only: bool) -> bool:
        """Mark the connection as ended by the server (unless it already is, or it
        became busy and ``quiet_only``); the caller then wakes it."""
        with self.lock:
            if self.ending is not None or (quiet_only and self.busy):
                return False
            self.ending = why
            return True

    def claim_quiet_for_drain(self) -> bool:
        """Shutdown: True (the caller sends our FIN) if quiet with nothing received
        unread; otherwise the thread finishes what came in and closes by itself."""
        with self.lock:
            if self.ending is not None or self.busy or net.bytes_queued(self.sock):
                return False  # its thread serves what came in, then closes by itself
            self.ending = "closing"
            return True

    def wake(self) -> None:
        """End any wait: recv returns, a budget wait ends."""
        net.wake(self.sock)
        self.wakeup.set()


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
        self.limits = conn.Limits(config.idle_timeout, config.frame_timeout, config.min_rate)
        self.budget = MemoryBudget(config.max_buffered, console)
        self.hangups = HangupWatcher()
        self.listener = net.listen(config.bind, config.port, socket.SOMAXCONN)
        self.listener.setblocking(False)  # a peer gone between poll and accept cannot block us
        self.server_address = self.listener.getsockname()
        # wake: signals and stop() end the accept loop. Never closed: a signal
        # may still arrive while the interpreter exits.
        self.wake_fd, self._wake_write = wake or make_pipe()
        self.closing = False
        self.drain_deadline_ms = conn.NEVER
        self._clients: dict[ClientHandler, None] = {}  # in admission order (the slot order)
        self._running: set[ClientHandler] = set()  # threads that have not logged their end
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._last_trim = 0
        console.start_writer()  # client threads never wait on each other to log

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
                    self._begin_shutdown()
                    self.console.info("Shutting down")  # before the clients' disconnect lines
                    return reasons
                for _ in range(ACCEPT_BATCH):
                    if not self._accept_one():
                        break
        finally:
            self.shutdown()

    def stop(self) -> None:
        """End ``serve_forever`` (from any thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _accept_one(self) -> bool:
        """Accept and start one connection; False when none is waiting."""
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return False
        except OSError as exc:
            self.console.error(f"Cannot accept a connection: {net.strerror(exc)}")
            time.sleep(0.1)  # e.g. EMFILE: do not spin
            return False
        handler = ClientHandler(self, sock, net.format_peer(address))
        if not self._admit(handler):
            limit = self.config.max_clients
            self.console.error(f"Client refused: {handler.peer}: too many clients (limit {limit})")
            net.close_quietly(sock)
            return True
        with self._lock:
            self._running.add(handler)
        try:
            self._start_thread(handler)
        except RuntimeError:  # "can't start new thread": pthread_create said EAGAIN
            with self._lock:
                self._running.discard(handler)
            self.release(handler)
            self.console.error(f"Client refused: {handler.peer}: {os.strerror(errno.EAGAIN)}")
            net.close_quietly(sock)
        return True

    def _start_thread(self, handler: ClientHandler) -> None:
        # Not threading.Thread: its start() waits until the new thread runs,
        # which under load costs the acceptor a GIL hand-over per client.
        _thread.start_new_thread(self._client_thread, (handler,))

    def _client_thread(self, handler: ClientHandler) -> None:
        try:
            handler.run()
        finally:
            with self._lock:
                self._running.discard(handler)
                self._ended.notify_all()

    def _admit(self, handler: ClientHandler) -> bool:
        """Take a slot for ``handler``, evicting (PROTOCOL.md 9) if full."""
        for _ in range(3):  # a victim that changed state meanwhile: choose again
            with self._lock:
                if len(self._clients) < self.config.max_clients:
                    self._clients[handler] = None
                    return True
                clients = list(self._clients)
            now = conn.now_ms()
            victim = conn.choose_victim([c.view() for c in clients], now, self.config.min_rate)
            if victim is None:
                return False
            chosen = clients[victim.index]
            if chosen.claim("evicted", quiet_only=victim.quiet):
                self._log_eviction(chosen, victim)
                chosen.wake()  # its thread ends quietly, its disconnect line before ours
                if not chosen.done.wait(EVICTION_WAIT):
                    self.release(chosen)  # slow to end: the newcomer has its slot anyway
        return False

    def _log_eviction(self, chosen: ClientHandler, victim: conn.Victim) -> None:
        limit = self.config.max_clients
        what = f"idle {victim.value} s" if victim.quiet else f"{victim.value} bytes/s in a frame"
        self.console.info(f"Evicted {chosen.peer}: {what}, server full (limit {limit})")

    def release(self, handler: ClientHandler) -> None:
        """This connection no longer counts against --max-clients."""
        with self._lock:
            self._clients.pop(handler, None)
            idle = not self._clients
        now = conn.now_ms()
        if idle or now - self._last_trim >= TRIM_INTERVAL_MS:
            self._last_trim = now
            return_memory()

    # --- the one way out -------------------------------------------------------

    def _begin_shutdown(self) -> None:
        """The drain's clock starts; no log write may hold the exit past it."""
        with self._lock:
            if self.closing:
                return
            self.closing = True
            self.drain_deadline_ms = conn.now_ms() + self.config.drain_timeout * 1000
        self.console.write_until(self.drain_deadline_ms / 1000 + EXIT_GRACE)

    def shutdown(self) -> None:
        """Serve what is queued, let clients finish their frame and close, cut the rest."""
        self._begin_shutdown()
        # Connections still in the backlog are accepted and closed cleanly:
        # closing the listener with them queued would reset them.
        while self._accept_one():
            pass
        self.listener.close()
        with self._lock:
            clients = list(self._running)
        for client in clients:
            if client.claim_quiet_for_drain():
                net.shutdown_write(client.sock)  # FIN; its thread reads on to the EOF
        deadline = self.drain_deadline_ms / 1000
        if not self._wait_threads(deadline):
            with self._lock:
                clients = list(self._running)
            for client in clients:  # cut whatever is left, quietly
                with client.lock:
                    client.ending = "cut"
                client.wake()
            self._wait_threads(deadline + EXIT_GRACE)
        with self._lock:  # threads still running: their end lines will not come
            ends = sum(not client.logging_end for client in self._running)
        lines = self.console.flush(deadline + EXIT_GRACE) + ends
        if lines:
            self.console.error_if_writable(f"Log output blocked: {lines} lines not written")
        else:
            self.console.stop_writer()

    def _wait_threads(self, until: float) -> bool:
        """Wait until every client thread has logged its end, or ``until`` (monotonic s)."""
        with self._lock:
            while self._running:
                left = until - time.monotonic()
                if left <= 0:
                    return False
                self._ended.wait(left)
        return True


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
    that signal. By now only the main thread is left, or client threads cut
    at the drain deadline: blocking them in the main thread is what can be done.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


_libc = None


def _c_library() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(None)
    return _libc


def unmap_large_buffers() -> None:
    """Give memory of large frames back to the system once they are freed (glibc).

    glibc serves blocks above its mmap threshold with mmap, returned on free, but
    raises the threshold after each large free: later 1 MiB frames then come from
    heaps it rarely shrinks (issue 10.4). Fixing the threshold keeps every buffer
    above 128 KiB in a mapping of its own; two arenas (the GIL serialises the
    allocations anyway) keep the pieces of smaller reads where a trim finds them.
    Best effort: other C libraries are left alone.
    """
    libc = _c_library()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            libc.mallopt(_M_ARENA_MAX, 2)


def return_memory() -> None:
    """Hand freed heap pages back to the system (glibc malloc_trim), as C's
    server does through its mmap threshold: RSS falls once peers leave."""
    libc = _c_library()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.malloc_trim(0)


def run(config: ServerConfig, console: Logger) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    unmap_large_buffers()
    wake = make_pipe()
    install_signal_handlers(wake[1])  # before Argon2id, which takes a moment
    threading.stack_size(THREAD_STACK)
    try:
        factory = make_session_factory(config)
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
    usage = server_usage(program_name(sys.argv[0]))
    try:
        config = parse_server_args(sys.argv[1:] if argv is None else argv)
    except HelpRequested:
        console.raw_out(usage)
        return 0
    except UsageError as exc:
        console.error(str(exc))
        console.raw_err(usage)
        return 2
    except KeyFileError as exc:
        console.error(str(exc))
        return 1
    return run(config, console)
