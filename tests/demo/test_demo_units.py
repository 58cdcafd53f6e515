"""Unit tests of the demo's pure parts: pcap parsing, frames, key recovery, bit flips."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from pathlib import Path

import pytest
from securemsg.crypto import xor
from securemsg.framing import encode_frame
from securemsg.session import ack_text
from securemsg_lab.demo import source
from securemsg_lab.wire import attack, pcap, protocol
from securemsg_lab.wire.mitm import FrameTamperer, MitmProxy, Tamper

REPO = Path(__file__).resolve().parents[2]
KEY = b"MY_SECRET_KEY"


# -- building pcaps by hand ---------------------------------------------------------------------


def _tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    header = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    return header + payload


def _ipv4(src: str, dst: str, segment: bytes) -> bytes:
    header = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(segment),
        1,
        0x4000,
        64,
        6,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + segment


def _ipv6(src: str, dst: str, segment: bytes) -> bytes:
    header = struct.pack(
        ">IHBB16s16s",
        6 << 28,
        len(segment),
        6,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + segment


def _ethernet(ip_packet: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack(">H", ethertype) + ip_packet + b"\x00" * 4


def _sll2(ip_packet: bytes) -> bytes:
    return struct.pack(">HHIHBB8s", 0x86DD, 0, 1, 772, 0, 6, b"\x00" * 8) + ip_packet


def _pcap(linktype: int, packets: list[bytes], nanos: bool = False, big: bool = False) -> bytes:
    order = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for i, packet in enumerate(packets):
        out += struct.pack(order + "IIII", 1000 + i, 500, len(packet), len(packet)) + packet
    return out


CLIENT, SERVER = ("10.0.0.2", 40000), ("10.0.0.1", 5000)


def _exchange_v4(split_ack: bool = True) -> list[bytes]:
    """A handshake, a frame split in two segments (one retransmitted), the ACK out of order."""
    message, ack = b"Hello from C", ack_text(12)
    up = encode_frame(xor(message, KEY))
    down = encode_frame(xor(ack, KEY))
    c_isn, s_isn = 0xFFFFFFF0, 1000  # the client's sequence numbers wrap around 2**32

    def c2s(seq: int, flags: int, data: bytes = b"") -> bytes:
        return _ethernet(_ipv4(CLIENT[0], SERVER[0], _tcp(CLIENT[1], SERVER[1], seq, flags, data)))

    def s2c(seq: int, flags: int, data: bytes = b"") -> bytes:
        return _ethernet(_ipv4(SERVER[0], CLIENT[0], _tcp(SERVER[1], CLIENT[1], seq, flags, data)))

    c0, s0 = (c_isn + 1) & 0xFFFFFFFF, s_isn + 1
    packets = [
        c2s(c_isn, pcap.TCP_SYN),
        s2c(s_isn, pcap.TCP_SYN | pcap.TCP_ACK),
        c2s(c0, pcap.TCP_ACK),
        c2s(c0, pcap.TCP_ACK, up[:5]),
        c2s(c0, pcap.TCP_ACK, up[:5]),  # retransmission
        c2s((c0 + 5) & 0xFFFFFFFF, pcap.TCP_ACK, up[5:]),
    ]
    if split_ack:
        packets += [s2c(s0 + 10, pcap.TCP_ACK, down[10:]), s2c(s0, pcap.TCP_ACK, down[:10])]
    else:
        packets.append(s2c(s0, pcap.TCP_ACK, down))
    packets.append(c2s((c0 + len(up)) & 0xFFFFFFFF, pcap.TCP_FIN | pcap.TCP_ACK))
    return packets


def test_pcap_ipv4_ethernet_reassembles_each_direction() -> None:
    data = _pcap(pcap.LINK_ETHERNET, _exchange_v4())
    segments = pcap.parse_segments(data)
    assert len(segments) == 9
    [conn] = pcap.reassemble(segments)
    assert conn.client == CLIENT and conn.server == SERVER
    frames_up, rest_up = protocol.split_frames(conn.to_server)
    frames_down, rest_down = protocol.split_frames(conn.to_client)
    assert rest_up == rest_down == b""
    assert xor(frames_up[0].payload, KEY) == b"Hello from C"
    assert xor(frames_down[0].payload, KEY) == b"ACK: Received 12 bytes"
    assert conn.gaps == 0


@pytest.mark.parametrize(("nanos", "big"), [(False, False), (True, False), (False, True)])
def test_pcap_header_variants(nanos: bool, big: bool) -> None:
    data = _pcap(pcap.LINK_ETHERNET, _exchange_v4(split_ack=False), nanos, big)
    linktype, records = pcap.read_records(data)
    assert linktype == pcap.LINK_ETHERNET
    assert records[0][0] == pytest.approx(1000 + (500e-9 if nanos else 500e-6))


def test_pcap_ipv6_linux_cooked_and_no_syn() -> None:
    client, server = ("::1", 51000), ("::1", 5000)
    frame = encode_frame(xor(b"Hi", KEY))
    packets = [
        _sll2(_ipv6(client[0], server[0], _tcp(client[1], server[1], 77, pcap.TCP_ACK, frame))),
        _sll2(_ipv6(server[0], client[0], _tcp(server[1], client[1], 9, pcap.TCP_ACK, b"x"))),
    ]
    [conn] = pcap.reassemble(pcap.parse_segments(_pcap(pcap.LINK_LINUX_SLL2, packets)), 5000)
    assert conn.server == server and conn.client == client
    assert conn.to_server == frame and conn.to_client == b"x"
    assert pcap.format_endpoint(conn.server) == "[::1]:5000"


def test_pcap_gap_stops_the_stream() -> None:
    packets = [
        _ethernet(_ipv4(*[CLIENT[0], SERVER[0]], _tcp(40000, 5000, 1, pcap.TCP_ACK, b"abc"))),
        _ethernet(_ipv4(*[CLIENT[0], SERVER[0]], _tcp(40000, 5000, 10, pcap.TCP_ACK, b"xyz"))),
    ]
    [conn] = pcap.reassemble(pcap.parse_segments(_pcap(pcap.LINK_ETHERNET, packets)))
    assert conn.to_server == b"abc" and conn.gaps == 1


def test_pcap_rejects_garbage_and_pcapng() -> None:
    with pytest.raises(pcap.PcapError):
        pcap.parse_segments(b"not a pcap at all, really not")
    with pytest.raises(pcap.PcapError, match="pcapng"):
        pcap.parse_segments(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)


def test_pcap_truncated_file_keeps_whole_records() -> None:
    data = _pcap(pcap.LINK_ETHERNET, _exchange_v4())
    assert len(pcap.parse_segments(data[:-10])) == 8


# -- key recovery -------------------------------------------------------------------------------


def test_smallest_period() -> None:
    assert attack.smallest_period(b"abcabcab") == 3
    assert attack.smallest_period(b"aaaa") == 1
    assert attack.smallest_period(b"abcd") == 4
    assert attack.smallest_period(b"") == 0


def _recover(key: bytes, message_len: int) -> attack.KeyRecovery:
    ack = xor(ack_text(message_len), key)
    return attack.attack([attack.AckPair(b"\x00" * message_len, ack)])


def test_key_recovery_default_key_is_found_but_not_certain() -> None:
    result = _recover(KEY, 37)  # a 22-byte ACK: fewer than 2 x 13 bytes
    assert result.key == KEY and result.period == 13
    assert not result.certain and "fewer than 2 x 13" in result.reason


def test_key_recovery_certain_with_a_long_enough_ack() -> None:
    result = _recover(KEY, 100000)  # "ACK: Received 100000 bytes" is 26 bytes
    assert result.key == KEY and result.certain


def test_smallest_message_for() -> None:
    assert attack.smallest_message_for(26) == 100000  # "ACK: Received 100000 bytes"
    assert len(ack_text(100000)) == 26
    assert attack.smallest_message_for(20) == 0
    assert attack.smallest_message_for(22) == 10
    assert attack.smallest_message_for(40) is None


def test_key_recovery_non_default_key() -> None:
    key = b"Tr0ub4dor&3"
    result = _recover(key, 42)
    assert result.key == key and result.certain


def test_key_recovery_periodic_key_gives_the_shortest_equivalent() -> None:
    result = _recover(b"abcabc", 50)
    assert result.key == b"abc"
    assert xor(b"some text", result.key) == xor(b"some text", b"abcabc")


def test_key_longer_than_the_ack_is_partial() -> None:
    key = bytes(range(1, 41))
    result = _recover(key, 12)
    assert result.partial and not result.certain
    assert result.key == key[:22]


def test_key_recovery_merges_acks_and_detects_disagreement() -> None:
    short = xor(ack_text(3), KEY)
    long = xor(ack_text(12345), KEY)
    pairs = [attack.AckPair(b"abc", short), attack.AckPair(b"x" * 12345, long)]
    assert attack.attack(pairs).keystream == (KEY * 2)[:25]
    assert attack.attack(pairs).key == KEY
    bad = [attack.AckPair(b"abc", short), attack.AckPair(b"abcd", b"\x00" * 21)]
    assert attack.attack(bad).key is None


def test_attack_finds_nothing_in_random_frames() -> None:
    noise_ack = bytes(range(200, 239))  # 39 bytes: not an XOR-ed 22-byte ACK
    result = attack.attack([attack.AckPair(b"\x01" * 40, noise_ack)])
    assert result.key is None and "length" in result.reason


def test_cross_check_text() -> None:
    frames = [xor(b"Transfer 500 EUR", KEY)]
    assert attack.looks_like_text(frames, KEY)
    assert not attack.looks_like_text(frames, b"\xa5Z\x13")


# -- bit flipping -------------------------------------------------------------------------------


def test_flip_turns_one_ciphertext_into_another_without_the_key() -> None:
    sent, wanted = b"PAY 10 EUR to Bob", b"PAY 99 EUR to Bob"
    delta = attack.flip_delta(sent, wanted)
    assert delta == bytes(4) + bytes([ord("1") ^ ord("9"), ord("0") ^ ord("9")]) + bytes(11)
    forged = attack.apply_delta(xor(sent, KEY), delta)
    assert xor(forged, KEY) == wanted
    with pytest.raises(ValueError, match="length"):
        attack.flip_delta(b"short", b"longer")
    assert attack.apply_delta(b"ab", b"\x01\x01\x01", offset=1) == b"ac"


def test_frame_tamperer_alters_only_the_chosen_frame_whatever_the_chunking() -> None:
    first = encode_frame(xor(b"PAY 10 EUR to Bob", KEY))
    second = encode_frame(xor(b"PAY 10 EUR to Bob", KEY))
    delta = attack.flip_delta(b"PAY 10 EUR to Bob", b"PAY 99 EUR to Bob")
    tamperer = FrameTamperer(Tamper(delta, 0, 1))
    both = first + second
    out = b"".join(tamperer.feed(both[i : i + 3]) for i in range(0, len(both), 3))
    frames, rest = protocol.split_frames(out)
    assert rest == b""
    assert [xor(f.payload, KEY) for f in frames] == [
        b"PAY 10 EUR to Bob",
        b"PAY 99 EUR to Bob",
    ]


def test_mitm_proxy_relays_and_flips() -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = upstream.accept()
        with conn:
            data = b""
            while not protocol.split_frames(data)[0]:
                data += conn.recv(100)
            received.append(protocol.split_frames(data)[0][0].payload)
            conn.sendall(encode_frame(b"ok"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    delta = attack.flip_delta(b"PAY 10", b"PAY 99")
    lines: list[str] = []
    proxy = MitmProxy(upstream.getsockname(), Tamper(delta), log=lines.append).start()
    try:
        with socket.create_connection(proxy.address, timeout=5) as sock:
            sock.sendall(encode_frame(xor(b"PAY 10", KEY)))
            reply = sock.recv(100)
        proxy.wait_idle(timeout=5)
    finally:
        proxy.close()
        upstream.close()
    assert xor(received[0], KEY) == b"PAY 99"
    assert reply == encode_frame(b"ok")
    assert any("Altered client frame" in line for line in lines)
    assert bytes(proxy.connections[0].to_server)[4:] == xor(b"PAY 10", KEY)


# -- frames of a captured stream ----------------------------------------------------------------


def test_split_frames_keeps_the_tail() -> None:
    data = encode_frame(b"ab") + encode_frame(b"") + b"\x00\x00\x00\x05ab"
    frames, rest = protocol.split_frames(data)
    assert [f.payload for f in frames] == [b"ab", b""] and rest == b"\x00\x00\x00\x05ab"


# -- reading the source -------------------------------------------------------------------------


def test_source_scanners() -> None:
    c_text = (
        "static int helper(int x)\n{\n}\n"
        "int framing_encode(uint8_t *out,\n    size_t cap)\n{\n}\n"
        "uint32_t\nframing_decoder_length(const framing_decoder *d)\n{\n}\n"
        "int framing_proto(void);\n"
    )
    assert source.c_definitions(c_text) == [(4, "framing_encode"), (9, "framing_decoder_length")]
    py_text = (
        "def xor(data: bytes) -> bytes:\n    pass\n\n"
        "class FrameDecoder:\n    def feed(self) -> None:\n        pass\n"
        "    def _private(self) -> None:\n        pass\n\ndef _helper() -> None:\n    pass\n"
    )
    assert source.py_definitions(py_text) == [
        (1, "xor()"),
        (4, "class FrameDecoder"),
        (5, "FrameDecoder.feed()"),
    ]


# -- steps without programs --------------------------------------------------------


class _NoNoiseBackend:
    """Starts nothing: every server start fails as an old build without noise would."""

    name = "fake"

    @property
    def registry(self):  # the demo takes its implementations from the registry
        from securemsg_lab.core import registry

        return registry.default()

    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> None:
        from securemsg_lab.demo.procs import DemoError

        raise DemoError(
            f"{lang} server did not start: [ERROR] Invalid value for --cipher: {cipher}"
        )


def test_secure_step_says_plainly_when_noise_is_unavailable() -> None:
    import io

    from securemsg_lab.demo.steps import Demo, step_secure
    from securemsg_lab.demo.ui import Console

    out = io.StringIO()
    demo = Demo(Console(out, pause=False), _NoNoiseBackend(), "MY_SECRET_KEY", REPO)  # type: ignore[arg-type]
    step_secure(demo)
    text = out.getvalue()
    assert "Secure mode is unavailable here" in text
    assert "Invalid value for --cipher: noise" in text
    assert "No key found" not in text and "tampering detected" not in text


def test_timeline_without_capture_times_alternates() -> None:
    from securemsg_lab.demo.steps import timeline

    up = encode_frame(b"a") + encode_frame(b"bb")
    down = encode_frame(b"A") + encode_frame(b"BB")
    conn = pcap.Connection(CLIENT, SERVER, up, down, 0.0)
    assert timeline(conn) == [(True, b"a"), (False, b"A"), (True, b"bb"), (False, b"BB")]


def test_parse_steps() -> None:
    import argparse

    from securemsg_lab.demo.cli import parse_steps

    assert parse_steps("all") == list(range(1, 9))
    assert parse_steps("6,7") == [6, 7]
    assert parse_steps("1-3,5") == [1, 2, 3, 5]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_steps("0")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_steps("x")
