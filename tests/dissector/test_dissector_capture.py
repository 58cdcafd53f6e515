"""The dissector on real sessions: every client x server pair in xor and noise mode, captured
on loopback with tcpdump, decoded by tshark with wireshark/securemsg.lua.

Servers: c/server (built with `make -C c`) and python/server.py, on 127.0.0.1 port 0. Clients:
c/client and python/client.py, interactive (several messages, one of 70000 bytes: more than
one TCP segment, and two Noise chunks) and single-message (an empty message); raw peers of
the test send a frame split across segments and two frames in one segment. Capturing needs
root (or capture capabilities); CI runs as root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from securemsg_lab.core import process, registry, timeouts
from securemsg_lab.wire.rawsock import read_frame as recv_frame

from .dissector_support import (
    Frame,
    HarnessError,
    LoopbackCapture,
    NoisePeer,
    ack_text,
    build,
    by_stream,
    capture_program,
    client_argv,
    connect,
    frame,
    run_client,
    run_tshark,
    send_in_pieces,
    started_server,
    tshark_path,
    tshark_version,
    wait_closed,
    xor,
)

pytestmark = pytest.mark.timeout(600)

LANGS = tuple(registry.default().reference_names())
CIPHERS = ("xor", "noise")
BIG = 70000  # above a loopback segment (64 KiB) and a Noise chunk (65518 bytes of data)
NOISE_CHUNK_DATA = 65518


@dataclass
class Session:
    """One connection the test made, and what its frames must decode to."""

    name: str
    cipher: str
    server: str
    port: int
    messages: list[bytes]
    split: bool = False        # the first client frame crossed several segments
    coalesced: bool = False    # two client frames shared one segment
    oversize: int = 0          # the length of an oversize header sent instead
    wrong_key: bool = False    # a noise client with another PSK: the server closes
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Captured:
    sessions: list[Session]
    pcap: Path
    tshark: str
    ports: list[int]


def program_sessions(cipher: str, server: str, port: int, client: str, key: Path | None
                     ) -> list[Session]:
    name = f"{client}-to-{server}-{cipher}"
    messages = [f"{client} to {server} over {cipher}".encode(), "café ☕ ünïcode".encode(),
                b"x" * BIG]
    stdin = b"".join(m + b"\n" for m in messages)
    run_client(client_argv(client, cipher, key, port, None), stdin)
    run_client(client_argv(client, cipher, key, port, ""), None)
    return [Session(name, cipher, server, port, messages),
            Session(name + "-empty", cipher, server, port, [b""])]


def raw_xor_sessions(server: str, port: int) -> list[Session]:
    split = b"one frame, four segments"
    with connect(port) as sock:
        send_in_pieces(sock, frame(xor(split)), [4, 10, 17])
        assert xor(recv_frame(sock)) == ack_text(len(split))
    with connect(port) as sock:
        sock.sendall(frame(xor(b"two frames")) + frame(xor(b"in one segment")))
        assert [xor(recv_frame(sock)) for _ in range(2)] == [ack_text(10), ack_text(14)]
    with connect(port) as sock:
        sock.sendall((1048577).to_bytes(4, "big") + b"never read")
        wait_closed(sock)
    return [
        Session(f"raw-split-to-{server}", "xor", server, port, [split], split=True),
        Session(f"raw-coalesced-to-{server}", "xor", server, port,
                [b"two frames", b"in one segment"], coalesced=True),
        Session(f"raw-oversize-to-{server}", "xor", server, port, [], oversize=1048577),
    ]


def raw_noise_session(server: str, port: int, psk: bytes) -> Session:
    """Handshake message 1 split in two, two messages in one segment, one split in three."""
    peer = NoisePeer(psk)
    messages = [b"noise one", b"noise two", b"noise, split"]
    with connect(port) as sock:
        send_in_pieces(sock, peer.message1(), [20])
        peer.read_message2(recv_frame(sock))
        sock.sendall(peer.chunk(messages[0]) + peer.chunk(messages[1]))
        acks = [peer.read_ack(recv_frame(sock)) for _ in range(2)]
        send_in_pieces(sock, peer.chunk(messages[2]), [3, 9])
        acks.append(peer.read_ack(recv_frame(sock)))
    assert acks == [ack_text(len(m)) for m in messages]
    return Session(f"raw-noise-to-{server}", "noise", server, port, messages, split=True,
                   coalesced=True)


def wrong_key_session(server: str, port: int, wrong_key: Path) -> Session:
    """A Python client whose PSK differs: the server closes after handshake message 1."""
    argv = client_argv("python", "noise", wrong_key, port, "never sent")
    proc = process.run(argv, role="client", timeout=timeouts.scaled(60))
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.exit_code != 1 or "Handshake failed" not in output:
        raise HarnessError(f"a wrong-key client to {server}: exit {proc.exit_code}, {output!r}")
    return Session(f"wrong-key-to-{server}", "noise", server, port, [], wrong_key=True)


def run_sessions(ports: dict[tuple[str, str], int], key: Path) -> list[Session]:
    sessions: list[Session] = []
    for (server, cipher), port in ports.items():
        key_file = key if cipher == "noise" else None
        for client in LANGS:
            sessions += program_sessions(cipher, server, port, client, key_file)
        if cipher == "xor":
            sessions += raw_xor_sessions(server, port)
        else:
            sessions.append(raw_noise_session(server, port, key.read_bytes()))
            wrong = key.with_name("wrong.psk")
            wrong.write_bytes(bytes(b ^ 0xFF for b in key.read_bytes()))
            sessions.append(wrong_key_session(server, port, wrong))
    return sessions


def assign_streams(sessions: list[Session], frames: list[Frame]) -> None:
    """Connections to one server port came one after another: tcp.stream order is ours."""
    streams = by_stream(frames)
    for port in {s.port for s in sessions}:
        ours = [s for s in sessions if s.port == port]
        seen = [streams[i] for i in sorted(streams) if port in (
            streams[i][0].src_port, streams[i][0].dst_port)]
        assert len(seen) == len(ours), (port, [s.name for s in ours], len(seen))
        for session, stream_frames in zip(ours, seen, strict=True):
            session.frames = stream_frames


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    tshark, program = tshark_path(), capture_program()
    for lang in LANGS:
        build(lang)
    work = tmp_path_factory.mktemp("dissector")
    key = work / "lab.psk"
    key.write_bytes(os.urandom(32))
    pcap = work / "sessions.pcap"
    with (started_server("c", "xor", None) as c_xor,
          started_server("python", "xor", None) as py_xor,
          started_server("c", "noise", key) as c_noise,
          started_server("python", "noise", key) as py_noise):
        ports = {("c", "xor"): c_xor, ("python", "xor"): py_xor,
                 ("c", "noise"): c_noise, ("python", "noise"): py_noise}
        capture = LoopbackCapture(program, list(ports.values()), pcap)
        try:
            capture.start()
            sessions = run_sessions(ports, key)
        finally:
            capture.stop()
    port_list = list(ports.values())
    option = "securemsg.ports:" + ",".join(str(p) for p in port_list)
    print(f"{tshark_version(tshark)}; capture {pcap} ({pcap.stat().st_size} bytes)")
    assign_streams(sessions, run_tshark(tshark, pcap, "-o", option))
    return Captured(sessions, pcap, tshark, port_list)


def session_ids(cipher: str) -> list[str]:
    names = []
    for server in LANGS:
        for client in LANGS:
            names += [f"{client}-to-{server}-{cipher}", f"{client}-to-{server}-{cipher}-empty"]
        names += ([f"raw-split-to-{server}", f"raw-coalesced-to-{server}"] if cipher == "xor"
                  else [f"raw-noise-to-{server}"])
    return names


def find(captured: Captured, name: str) -> Session:
    matches = [s for s in captured.sessions if s.name == name]
    assert len(matches) == 1, name
    return matches[0]


def check_directions(session: Session) -> tuple[list[Frame], list[Frame]]:
    for f in session.frames:
        to_server = f.dst_port == session.port
        assert f.direction == (0 if to_server else 1), (session.name, f)
    up = [f for f in session.frames if f.direction == 0]
    down = [f for f in session.frames if f.direction == 1]
    return up, down


def check_layout(session: Session, up: list[Frame]) -> None:
    if session.split:
        assert up[0].segments >= 2, f"{session.name}: first frame not split ({up[0].segments})"
    if session.coalesced:
        packets = [f.packet for f in up]
        assert len(set(packets)) < len(packets), f"{session.name}: no shared segment"


@pytest.mark.parametrize("name", session_ids("xor"))
def test_xor_session_decoded(captured: Captured, name: str) -> None:
    session = find(captured, name)
    up, down = check_directions(session)
    assert [f.get("plaintext") for f in up] == [m.decode() for m in session.messages]
    assert [f.number("length") for f in up] == [len(m) for m in session.messages]
    assert [f.number("ack_n") for f in down] == [len(m) for m in session.messages]
    assert [f.number("request_len") for f in down] == [len(m) for m in session.messages]
    assert [f.get("plaintext") for f in down] == [ack_text(len(m)).decode()
                                                  for m in session.messages]
    assert all(f.number("mode") == 1 and f.experts == [] for f in session.frames)
    check_layout(session, up)


@pytest.mark.parametrize("name", session_ids("noise"))
def test_noise_session_labelled(captured: Captured, name: str) -> None:
    session = find(captured, name)
    up, down = check_directions(session)
    for hello, msg_type in ((up[0], 1), (down[0], 2)):
        assert hello.number("noise.msg_type") == msg_type and hello.number("length") == 48
        assert len(hello.raw("noise.ephemeral") or b"") == 32
        assert len(hello.raw("noise.tag") or b"") == 16
        assert hello.number("noise.payload_len") == 0
    for chunks in (up[1:], down[1:]):
        assert [f.number("noise.msg_type") for f in chunks] == [3] * len(chunks)
        assert [f.number("noise.nonce") for f in chunks] == list(range(len(chunks)))
        assert all(len(f.raw("noise.tag") or b"") == 16 for f in chunks)
        assert all(len(f.raw("noise.marker") or b"") == 1 for f in chunks)
    sent = [len(m) for m in session.messages]
    expected_chunks = sum(max(1, -(-n // NOISE_CHUNK_DATA)) for n in sent)
    assert len(up) - 1 == expected_chunks
    assert sum(f.number("noise.data_len") or 0 for f in up[1:]) == sum(sent)
    assert [f.number("noise.data_len") for f in down[1:]] == [len(ack_text(n)) for n in sent]
    # each ACK tied to its message by order: the request's length, its first chunk
    assert [f.number("request_len") for f in down[1:]] == sent
    up_packets = {f.packet for f in up[1:]}
    assert all(f.number("request_in") in up_packets for f in down[1:])
    assert all(f.get("plaintext") is None for f in session.frames)
    assert all(f.number("mode") == 2 and f.experts == [] for f in session.frames)
    check_layout(session, up)


@pytest.mark.parametrize("server", LANGS)
def test_oversize_frame_flagged(captured: Captured, server: str) -> None:
    session = find(captured, f"raw-oversize-to-{server}")
    up, down = check_directions(session)
    assert [f.number("length") for f in up] == [session.oversize]
    assert any("above the maximum frame" in e for e in up[0].experts), up[0].experts
    assert down == []  # the server closed without an answer


@pytest.mark.parametrize("server", LANGS)
def test_wrong_key_handshake_flagged(captured: Captured, server: str) -> None:
    """Only message 1, then the server's close: flagged as an incomplete handshake."""
    session = find(captured, f"wrong-key-to-{server}")
    up, down = check_directions(session)
    assert [f.number("noise.msg_type") for f in up] == [1] and up[0].experts == []
    assert len(down) == 1 and down[0].number("noise.hs1_in") == up[0].packet
    assert any("handshake incomplete: the server closed" in e for e in down[0].experts), (
        down[0].experts)


def test_heuristic_without_port_preference(captured: Captured) -> None:
    """The demo's servers use port 0: the heuristic must find these sessions unaided. (It
    cannot claim a connection by a frame split before its first whole frame: raw-split.)"""
    frames = run_tshark(captured.tshark, captured.pcap, "-o", "securemsg.ports:1")
    streams = by_stream(frames)
    texts = {f.get("plaintext") for s in streams.values() for f in s if f.direction == 0}
    for session in captured.sessions:
        readable = session.cipher == "xor" and not session.split
        for message in session.messages if readable else []:
            if message:
                assert message.decode() in texts, session.name
    handshakes = [s[0] for s in streams.values() if s[0].number("noise.msg_type") == 1]
    noise_sessions = [s for s in captured.sessions if s.cipher == "noise"]
    assert len(handshakes) == len(noise_sessions)


def test_decode_as_one_port(captured: Captured) -> None:
    port = captured.ports[0]
    frames = run_tshark(captured.tshark, captured.pcap, "-o", "securemsg.ports:1",
                        "--disable-heuristic", "securemsg_tcp", "-d",
                        f"tcp.port=={port},securemsg")
    assert frames, "Decode As decoded nothing"
    assert {port} == {f.dst_port if f.direction == 0 else f.src_port for f in frames}
    expected = [s for s in captured.sessions if s.port == port]
    assert len(by_stream(frames)) == len(expected)


def test_sessions_all_captured(captured: Captured) -> None:
    """Guards the catalogue: 8 program pairs x 2 sessions, 2 x 3 raw xor, 2 raw noise,
    2 wrong-key noise clients."""
    assert len(captured.sessions) == 16 + 6 + 2 + 2
    if any(not s.frames for s in captured.sessions):
        raise HarnessError(f"sessions without frames: {[s.name for s in captured.sessions]}")
