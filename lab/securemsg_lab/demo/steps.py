"""The demo's steps: each one narrates, runs the real programs and shows what they print."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..core.registry import Registry
from ..wire import attack, rawclient
from ..wire.mitm import Tamper
from ..wire.pcap import Connection, format_endpoint
from ..wire.protocol import DEFAULT_KEY, HEADER_LEN, escape, looks_like_words, split_frames, xor
from . import source
from .capture import Capture
from .procs import DemoError, LogLine, RunResult
from .stage import Client, ShownServer, Stage, TypedClient
from .ui import Console

NOISE_PASSPHRASE = "correct horse battery staple"  # noqa: S105 - shown on screen
FORGE_FROM = "PAY 10 EUR to Bob"
FORGE_TO = "PAY 99 EUR to Bob"
CAPTURE_MESSAGES = ("Transfer 500 EUR to account DE44 5001", "The vault code is 4-8-15-16")
HEX_SHOWN = 16
SECURITY_NOTE = (
    "XOR with a static key is for educational purposes only and not secure for real-world "
    "use. For actual security, use TLS or proven crypto libraries (AES/GCM, libsodium, etc.)."
)


@dataclass
class Demo:
    """Shared state of one run: where programs run, the key, servers started so far."""

    console: Console
    stage: Stage
    key: str
    repo: Path
    save_pcap: Path | None = None
    servers: dict[tuple[str, str], ShownServer] = field(default_factory=dict)
    capture: Capture | None = None
    brief: bool = False  # after the first step: fold connect/disconnect lines into a count
    #: other registered implementations (--with): they join step 3, both ways with `first`
    extra: tuple[str, ...] = ()

    @property
    def first(self) -> str:
        """The registry's first reference implementation (C): steps 1, 6-8 use its server."""
        return self.stage.registry.reference_names()[0]

    @property
    def second(self) -> str:
        """The last reference implementation (Python): step 2, and step 8's client."""
        return self.stage.registry.reference_names()[-1]

    def title(self, lang: str) -> str:
        return self.stage.title(lang)

    @property
    def key_bytes(self) -> bytes:
        return self.key.encode("utf-8", "surrogateescape")

    @property
    def noise_key(self) -> str:
        return NOISE_PASSPHRASE if self.key_bytes == DEFAULT_KEY else self.key

    def server(self, lang: str, cipher: str = "xor") -> ShownServer:
        """The server of this language and cipher, started on first use."""
        if (lang, cipher) not in self.servers:
            key = self.noise_key if cipher == "noise" else self.key
            server = self.stage.start_server(lang, cipher, key)
            self.console.command(server.display, f"{self.title(lang)} server, started once")
            for entry in server.log.settle(0, quiet=0.2):
                self.console.output(server.label, entry.text)
            self.servers[lang, cipher] = server
        return self.servers[lang, cipher]

    # -- showing output ------------------------------------------------------------------

    def show_lines(self, label: str, lines: list[LogLine] | list[str]) -> None:
        for line in lines:
            self.console.output(label, line if isinstance(line, str) else line.text)

    def type_line(self, label: str, client: TypedClient, text: str) -> None:
        """Send one line to an interactive client, show it as typed, then what it printed."""
        self.console.output(label, self.console.style("dim", f"typed: {text}"))
        self.show_lines(label, client.send(text))

    def show_result(self, label: str, result: RunResult, usage_lines: bool = True) -> None:
        """A finished program's lines (stdout and stderr in the order written), and its exit."""
        lines = result.stdout + result.stderr
        tagged = [line for line in lines if line.startswith("[")]
        shown = lines if usage_lines else tagged
        for line in shown[:-1]:
            self.console.output(label, line)
        hidden = len(lines) - len(shown)
        tail = self.console.style(
            "dim",
            (f"(+ {hidden} lines of usage) " if hidden else "") + f"→ exit {result.returncode}",
        )
        self.console.output(label, f"{shown[-1]}  {tail}" if shown else tail)

    def server_lines(self, server: ShownServer, mark: int, received: int,
                     quiet: float = 0.3) -> None:
        """Wait for `received` messages (and their disconnects), then show the server's lines."""
        try:
            server.log.wait_for(r"^\[RECV\] |^\[ERROR\]", since=mark, count=received)
            server.log.wait_for(r"Client disconnected", since=mark, count=received, timeout=5)
        except DemoError as exc:
            self.console.bad(f"{server.label}: {exc}")
        lines = [entry.text for entry in server.log.settle(mark, quiet=quiet)]
        if not self.brief:
            self.show_lines(server.label, lines)
            return
        comings = [line for line in lines if re.match(r"\[INFO\] Client (dis)?connected", line)]
        self.show_lines(server.label, [line for line in lines if line not in comings])
        if comings:
            note = f"(+ {len(comings)} Client connected/disconnected lines)"
            self.console.output(server.label, self.console.style("dim", note))


def _hex(data: bytes, limit: int = HEX_SHOWN) -> str:
    shown = " ".join(f"{b:02x}" for b in data[:limit])
    return shown + (f" … (+{len(data) - limit})" if len(data) > limit else "")


def _quote(data: bytes) -> str:
    return f'"{escape(data)}"'


# -- steps 1-3: many clients ----------------------------------------------------------------


def clients_at_once(demo: Demo, server_lang: str, jobs: list[tuple[str, str]]) -> None:
    """Run several clients at the same time against one server; show both sides."""
    server = demo.server(server_lang)
    mark = server.log.mark()
    clients = [Client(lang, server.target, message) for lang, message in jobs]
    for client in clients:
        demo.console.command(demo.stage.client_display(client))
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        results = list(pool.map(demo.stage.run_client, clients))
    demo.server_lines(server, mark, len(jobs))
    for number, ((lang, _message), result) in enumerate(zip(jobs, results, strict=True), 1):
        demo.show_result(f"{demo.title(lang)} client {number}", result)
    acks = sum(
        1
        for r in results
        if r.returncode == 0 and any(s.startswith("[RECV] ACK") for s in r.stdout)
    )
    plain = sum(1 for e in server.log.since(mark) if e.text.startswith("[RECV] Plaintext: "))
    summary = f"{demo.title(server_lang)} server decrypted {plain}/{len(jobs)} messages; "
    summary += f"{acks}/{len(jobs)} clients got their ACK"
    (demo.console.ok if plain == acks == len(jobs) else demo.console.bad)(summary)


def step_first(demo: Demo) -> None:
    lang = demo.first
    messages = (f"Hello from {demo.title(lang)}", "Meet me at the library at 6",
                "café ☕ costs 2 €")
    clients_at_once(demo, lang, [(lang, message) for message in messages])


def step_second(demo: Demo) -> None:
    lang = demo.second
    messages = (f"Hello from {demo.title(lang)}", "Lecture moved to room 101", "naïve façade")
    clients_at_once(demo, lang, [(lang, message) for message in messages])


def step_cross(demo: Demo) -> None:
    first, second = demo.first, demo.second
    one, two = demo.title(first), demo.title(second)
    demo.console.note(f"{one} clients → {two} server")
    clients_at_once(demo, second, [(first, f"{one} speaks to {two}"),
                                   (first, "same frames, same key")])
    demo.console.note(f"{two} clients → {one} server")
    clients_at_once(demo, first, [(second, f"{two} speaks to {one}"),
                                  (second, "one protocol, two languages")])
    for lang in demo.extra:
        other = demo.title(lang)
        demo.console.note(f"{other} clients → {one} server, {one} clients → {other} server")
        clients_at_once(demo, first, [(lang, f"{other} speaks to {one}")])
        clients_at_once(demo, lang, [(first, f"{one} speaks to {other}")])


# -- step 4: modularity ----------------------------------------------------------------------

MODULES = (
    ("cipher", "crypto", ("xor", "apply", "cipher")),
    ("framing", "framing", ("encode", "feed", "next_event", "decoder")),
    ("sockets", "net", ("read_full", "write_all", "recv", "send", "connect", "listen")),
)
SHOWN_PER_MODULE = 4


def _pick(definitions: list[tuple[int, str]], keywords: tuple[str, ...]) -> list[str]:
    ranked = sorted(
        definitions,
        key=lambda d: next((i for i, k in enumerate(keywords) if k in d[1].lower()), len(keywords)),
    )
    chosen = sorted(ranked[:SHOWN_PER_MODULE])
    lines = [
        f"{number:>4}  {name if name.endswith(')') or ' ' in name else name + '()'}"
        for number, name in chosen
    ]
    if len(definitions) > SHOWN_PER_MODULE:
        lines.append(f"      (+{len(definitions) - SHOWN_PER_MODULE} more)")
    return lines


def step_modules(demo: Demo) -> None:
    width = 38
    head = f"  {'':8} {'C  (c/)':<{width}} {'Python  (python/securemsg/)':<{width}}"
    demo.console.line(demo.console.style("dim", head))
    for heading, module, keywords in MODULES:
        c_file = demo.repo / "c" / f"{module}.c"
        py_file = demo.repo / "python" / "securemsg" / f"{module}.py"
        c_defs = source.c_definitions(c_file.read_text()) if c_file.exists() else []
        py_defs = source.py_definitions(py_file.read_text()) if py_file.exists() else []
        left = [f"{module}.c" + ("" if c_file.exists() else " (not found)")]
        right = [f"{module}.py" + ("" if py_file.exists() else " (not found)")]
        left += _pick(c_defs, keywords)
        right += _pick(py_defs, keywords)
        demo.console.line()
        for row in range(max(len(left), len(right))):
            cell_l = left[row] if row < len(left) else ""
            cell_r = right[row] if row < len(right) else ""
            name = demo.console.style("key", f"{heading:8}") if row == 0 else " " * 8
            if row == 0:
                cell_l = demo.console.style("command", f"{cell_l:<{width}}")
                cell_r = demo.console.style("command", cell_r)
            else:
                cell_l = f"{cell_l[: width - 1]:<{width}}"
            demo.console.line(f"  {name} {cell_l} {cell_r}")
    demo.console.line()
    demo.console.note(
        "each row is one module with the same job in both languages; framing is pure "
        "(bytes in, frames out) and sockets live only in net"
    )


# -- step 5: errors ----------------------------------------------------------------------------


def _sub(demo: Demo, text: str) -> None:
    demo.console.line(demo.console.style("key", f"▸ {text}"))


def step_errors(demo: Demo) -> None:
    _sub(demo, "invalid arguments → one [ERROR] line, the usage text, exit 2")
    first, second = demo.stage.impl(demo.first), demo.stage.impl(demo.second)
    bad_args = (
        (first.name, "client", first.client_args("127.0.0.1", "not-a-port", "hi")),
        (second.name, "server", second.server_args(99999)),
    )
    with ThreadPoolExecutor(max_workers=len(bad_args)) as pool:
        runs = list(pool.map(lambda job: demo.stage.run_program(*job), bad_args))
    for (lang, role, _args), (display, result) in zip(bad_args, runs, strict=True):
        demo.console.command(display)
        demo.show_result(f"{demo.title(lang)} {role}", result, usage_lines=False)

    _sub(demo, "connection refused → one [ERROR] line, exit 1")
    refused = demo.stage.refused_target(demo.server(demo.first))
    clients = [Client(lang, refused, "anyone there?") for lang in (demo.first, demo.second)]
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        results = list(pool.map(demo.stage.run_client, clients))
    for client, result in zip(clients, results, strict=True):
        demo.console.command(demo.stage.client_display(client))
        demo.show_result(f"{demo.title(client.lang)} client", result)

    _sub(demo, "short reads: a raw client writes its frame one byte at a time")
    for lang in (demo.first, demo.second):
        server = demo.server(lang)
        message = f"sent byte by byte to {demo.title(lang)}".encode()
        mark = server.log.mark()
        outcome = rawclient.send_byte_by_byte(server.host_addr, message, demo.key_bytes)
        demo.console.note(
            f"raw client → {demo.title(lang)} server: {outcome.writes} writes of 1 byte, "
            f"reply decrypts to {_quote(outcome.reply)}"
        )
        demo.server_lines(server, mark, 1, quiet=0.1)

    _sub(demo, "an oversize frame is refused; the other clients carry on")
    for lang in (demo.first, demo.second):
        server = demo.server(lang)
        client = demo.stage.open_client(Client(lang, server.target))
        demo.console.command(client.display, "stays connected")
        demo.type_line(f"{demo.title(lang)} client", client, "before the attack")
        mark = server.log.mark()
        outcome = rawclient.send_oversize_prefix(server.host_addr, 0x7FFFFFFF)
        demo.console.note(
            "raw client sends a length prefix of 2147483647 bytes (2 GiB) and nothing else; "
            + ("the server closed the connection" if outcome.closed else "no close seen")
        )
        server.log.wait_for(r"Frame too large", since=mark, timeout=5)
        demo.show_lines(server.label, server.log.settle(mark, quiet=0.2))
        demo.type_line(f"{demo.title(lang)} client", client, "still here after the attack")
        code = client.close()
        demo.console.output(f"{demo.title(lang)} client", demo.console.style("dim", f"exit {code}"))


# -- step 6: the wire ---------------------------------------------------------------------------


def run_capture(
    demo: Demo,
    server: ShownServer,
    messages: tuple[str, ...],
    lang: str | None = None,
    key: str | None = None,
    cipher: str = "xor",
) -> Capture:
    lang = lang or demo.second
    capture = demo.stage.capture(server)
    with capture:
        if getattr(capture, "note", ""):
            demo.console.note(capture.note)
        demo.console.command(capture.display, f"capture ({capture.method})")
        client = demo.stage.open_client(Client(lang, capture.target, key=key, cipher=cipher))
        demo.console.command(client.display, "one client, " + f"{len(messages)} messages")
        for message in messages:
            demo.type_line(f"{demo.title(lang)} client", client, message)
        client.close()
    if demo.save_pcap and capture.pcap_bytes:
        path = demo.save_pcap  # step 6's; step 8's beside it, so that neither overwrites
        if cipher != "xor":
            path = path.with_name(f"{path.stem}-{cipher}{path.suffix}")
        path.write_bytes(capture.pcap_bytes)
        demo.console.note(f"pcap saved to {path} (open it in Wireshark)")
    elif demo.save_pcap:
        demo.console.note("no pcap saved: the relay records frames, not packets "
                          "(--capture tcpdump writes one)")
    return capture


def main_connection(capture: Capture) -> Connection:
    """The capture's connection that carried frames (the client's)."""
    live = [c for c in capture.connections if c.to_server]
    if not live:
        raise DemoError("the capture holds no client data")
    return max(live, key=lambda c: len(c.to_server))


def timeline(connection: Connection) -> list[tuple[bool, bytes]]:
    """Frames of both directions in the order they crossed the wire: (to_server, payload).

    With capture times (tcpdump) the order is the time the frame's last byte was seen;
    a relay's recording has none, and request/answer alternate.
    """
    timed = bool(connection.times_to_server)
    events: list[tuple[float, int, bool, bytes]] = []
    for to_server, stream in ((True, connection.to_server), (False, connection.to_client)):
        frames, _rest = split_frames(stream)
        for index, frame in enumerate(frames):
            last_byte = frame.offset + HEADER_LEN + len(frame.payload) - 1
            when = connection.time_at(to_server, last_byte) if timed else 0.0
            events.append((when, index * 2 + (0 if to_server else 1), to_server, frame.payload))
    events.sort(key=lambda event: (event[0], event[1]))
    return [(to_server, payload) for _when, _order, to_server, payload in events]


def show_frames(demo: Demo, connection: Connection, key: bytes | None, key_name: str) -> None:
    """Each frame: direction, length, ciphertext hex, and what XOR with `key` makes of it."""
    client, server = format_endpoint(connection.client), format_endpoint(connection.server)
    demo.console.line(demo.console.style("dim", f"  connection: client {client}, server {server}"))
    for number, (to_server, payload) in enumerate(timeline(connection), 1):
        who = "client → server" if to_server else "server → client"
        demo.console.line(f"  #{number} {demo.console.style('key', who)}  {len(payload)} bytes")
        demo.console.line(f"      hex   {_hex(payload)}")
        if key is None:
            continue
        plain = xor(payload, key)
        shown = _quote(plain) if looks_like_words(plain, 0.5) else f"(not text: {_hex(plain, 8)})"
        demo.console.line(f"      {key_name:5} {shown}")


def step_wire(demo: Demo) -> None:
    server = demo.server(demo.first)
    capture = run_capture(demo, server, CAPTURE_MESSAGES)
    demo.capture = capture
    connection = main_connection(capture)
    source_text = (
        f"pcap of {len(capture.pcap_bytes)} bytes, {capture.segments} TCP segments"
        if capture.method == "tcpdump"
        else "bytes recorded by the relay"
    )
    demo.console.note(
        f"{source_text}; reassembled per direction: "
        f"{len(connection.to_server)} bytes up, {len(connection.to_client)} down"
    )
    show_frames(demo, connection, demo.key_bytes, "text")


# -- step 7: the attack --------------------------------------------------------------------------


def frames_of(connection: Connection) -> tuple[list[bytes], list[bytes]]:
    up, _ = split_frames(connection.to_server)
    down, _ = split_frames(connection.to_client)
    return [f.payload for f in up], [f.payload for f in down]


def key_attack(demo: Demo, connection: Connection) -> attack.KeyRecovery:
    """From the captured frames alone: the ACK's plaintext is predictable."""
    up, down = frames_of(connection)
    pairs = attack.pair_frames(up, down)
    for index, pair in enumerate(pairs, 1):
        fits = "" if pair.lengths_match else "  ✗ not the length of that ACK"
        demo.console.line(
            f"  ACK {index}: {len(pair.ack)} bytes, answers a {len(pair.message)}-byte frame "
            f"→ plaintext must be {_quote(pair.expected_ack)}{fits}"
        )
    result = attack.attack(pairs)
    if result.keystream:
        demo.console.line(f"  key stream = ciphertext XOR plaintext = {_hex(result.keystream, 26)}")
        demo.console.line(f"               as text: {_quote(result.keystream)}")
    if result.key is None:
        demo.console.ok(f"No key found: {result.reason}")
        return result
    if result.partial:
        demo.console.note(
            f"The key stream never repeats ({result.reason}): the key is at least "
            f"{len(result.keystream)} bytes long; only its start is known"
        )
    else:
        demo.console.line(f"  period: the key stream repeats every {result.period} bytes")
        (demo.console.ok if result.certain else demo.console.note)(
            ("certain: " if result.certain else "not certain: ") + result.reason
        )
        if not result.certain:
            needed = attack.smallest_message_for(2 * result.period)
            demo.console.note(
                f"an ACK for a message of {needed}+ bytes would settle it"
                if needed is not None
                else f"no ACK is long enough ({2 * result.period} bytes) to settle it"
            )
    if not result.certain and not result.partial:
        readable = attack.looks_like_text(up, result.key or b"")
        (demo.console.ok if readable else demo.console.bad)(
            "cross-check: with this key every client frame decrypts to readable text"
            if readable
            else "cross-check failed: some frames do not decrypt to text"
        )
    key = result.key or b""
    demo.console.line(
        demo.console.style(
            "bad",
            f"Recovered the key's first {len(key)} bytes: "
            if result.partial
            else f"Recovered key ({len(key)} bytes): ",
        )
        + demo.console.style("key", _quote(key))
        + f"  hex {key.hex()}"
    )
    return result


def step_attack(demo: Demo) -> None:
    if demo.capture is None:
        demo.console.note("no capture yet: capturing one exchange first")
        demo.capture = run_capture(demo, demo.server(demo.first), CAPTURE_MESSAGES)
    connection = main_connection(demo.capture)
    result = key_attack(demo, connection)
    if result.key:
        demo.console.note("every captured frame, decrypted with the recovered key:")
        known = len(result.key)
        for number, (to_server, payload) in enumerate(timeline(connection), 1):
            who = "client → server" if to_server else "server → client"
            if result.partial:  # only the first `known` key bytes: decrypt that far
                text = _quote(xor(payload[:known], result.key))
                text += f" + {len(payload) - known} bytes unknown" if len(payload) > known else ""
            else:
                text = _quote(xor(payload, result.key))
            demo.console.line(f"  #{number} {who}  {text}")
        verdict = result.key == demo.key_bytes
        (demo.console.ok if verdict else demo.console.note)(
            "the recovered key equals the key the programs were started with"
            if verdict
            else "the recovered key differs from the configured key: "
            + (
                "it is longer than any ACK, so only its start is known"
                if result.partial
                else "an equivalent shorter key"
                if demo.key_bytes.startswith(result.key)
                else "the attack guessed wrong"
            )
        )
    _sub(demo, "tampering: a man in the middle flips bits without the key")
    tamper_demo(demo, demo.server(demo.first), demo.key, "xor")


def tamper_demo(demo: Demo, server: ShownServer, key: str,
                cipher: str) -> tuple[RunResult, list[str]]:
    sent, forged = FORGE_FROM.encode(), FORGE_TO.encode()
    delta = attack.flip_delta(sent, forged)
    # In noise mode the first client frame is the handshake, and each transport frame's
    # plaintext starts with a one-byte chunk marker: aim the same flip at the message bytes.
    tamper = Tamper(
        delta, offset=1 if cipher == "noise" else 0, frame_index=1 if cipher == "noise" else 0
    )
    demo.console.line(
        f"  guessed {_quote(sent)}, wanted {_quote(forged)}: mask = P XOR P' = {_hex(delta, 24)}"
    )
    mitm = demo.stage.mitm(server, tamper)
    demo.console.command(mitm.display, "the attacker's relay")
    mark = server.log.mark()
    client = Client(demo.first, mitm.target, FORGE_FROM, key, cipher)
    demo.console.command(demo.stage.client_display(client))
    result = demo.stage.run_client(client)
    demo.show_lines("mitm", [line for line in mitm.wait() if "Listening" not in line])
    demo.server_lines(server, mark, 1)
    demo.show_result("C client", result)
    received = [
        e.text.removeprefix("[RECV] Plaintext: ")
        for e in server.log.since(mark)
        if e.text.startswith("[RECV] Plaintext: ")
    ]
    errors = [e.text for e in server.log.since(mark) if e.text.startswith("[ERROR]")]
    demo.console.line(f"  Client sent:     {FORGE_FROM}")
    demo.console.line(f"  Server received: {received[0] if received else '(nothing)'}")
    if received and received[0] != FORGE_FROM:
        demo.console.bad(
            "the server printed an altered message and nobody noticed "
            f"(client exit {result.returncode})"
        )
    elif errors:
        demo.console.ok(
            "tampering detected: the server refused the frame and closed the connection"
        )
    return result, received


# -- step 8: secure mode --------------------------------------------------------------------------


def step_secure(demo: Demo) -> None:
    if demo.key_bytes == DEFAULT_KEY:
        demo.console.note(
            f"secure mode refuses the public default key; using the passphrase "
            f"{_quote(demo.noise_key.encode())}"
        )
    try:
        server = demo.server(demo.first, "noise")
    except DemoError as exc:
        demo.console.bad(f"Secure mode is unavailable here: {exc}")
        demo.console.note("nothing to show: this step needs servers that support --cipher noise")
        return
    capture = run_capture(demo, server, CAPTURE_MESSAGES, demo.second, demo.noise_key,
                          "noise")
    connection = main_connection(capture)
    show_frames(demo, connection, demo.key_bytes, "xor")
    _sub(demo, "the same known-plaintext attack")
    key_attack(demo, connection)
    _sub(demo, "the same bit flip")
    tamper_demo(demo, server, demo.noise_key, "noise")


@dataclass(frozen=True)
class Step:
    title: str
    narration: str
    run: Callable[[Demo], None]


STEPS = (
    Step(
        "{first} server, three {first} clients at once",
        "Three clients send different messages at the same time; the server decrypts each.",
        step_first,
    ),
    Step(
        "{second} server, three {second} clients at once",
        "The same with the {second} programs.",
        step_second,
    ),
    Step(
        "Cross-language, both ways",
        "Same frames, same key: {first} and {second} clients and servers mix freely.",
        step_cross,
    ),
    Step(
        "Code modularity",
        "Where the cipher, the framing and the sockets live (read from the source now).",
        step_modules,
    ),
    Step(
        "Error handling",
        "Bad arguments, nobody listening, short reads, and a frame that is far too large.",
        step_errors,
    ),
    Step(
        "On the wire",
        "We record one session (tcpdump, or else the demo's own relay) and print every frame.",
        step_wire,
    ),
    Step(
        "The attack: key recovery and tampering",
        "Only the captured bytes: the ACK's text is predictable, so it gives away the key.",
        step_attack,
    ),
    Step(
        "Secure mode: --cipher noise",
        "The same capture, attack and bit flip against Noise_NNpsk0_25519_ChaChaPoly_SHA256.",
        step_secure,
    ),
)


def reference_titles(registry: Registry) -> dict[str, str]:
    """What {first} and {second} of the steps' titles read: the reference implementations'."""
    references = registry.references()
    return {"first": references[0].display, "second": references[-1].display}


def run_steps(demo: Demo, selected: list[int]) -> float:
    started = time.monotonic()
    for number in selected:
        step = STEPS[number - 1]
        titles = reference_titles(demo.stage.registry)
        demo.console.heading(number, len(STEPS), step.title.format(**titles))
        demo.console.narrate(step.narration.format(**titles))
        demo.console.pause("Enter to run")
        step_started = time.monotonic()
        try:
            step.run(demo)
        except (DemoError, OSError) as exc:  # OSError: a raw socket of the demo's own
            demo.console.bad(f"step {number} could not finish: {exc}")
        demo.console.line(demo.console.style("dim", f"  ({time.monotonic() - step_started:.1f} s)"))
        demo.brief = True  # the full connect/disconnect story has been told once
    return time.monotonic() - started


def closing(demo: Demo) -> None:
    demo.console.line()
    demo.console.title("Security note")
    for line in textwrap.wrap(SECURITY_NOTE, width=78):
        demo.console.line(line)
    demo.console.note(
        "Secure mode: run both sides with --cipher noise and a shared passphrase or "
        "a 32-byte --key-file (PROTOCOL.md section 8)."
    )
