"""The dissector on pcaps written by the test: PROTOCOL.md's bytes, every preference, the
malformed frames. No capture privileges needed; tshark is (see dissector_support)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .dissector_support import (
    NoisePeer,
    SyntheticTcp,
    ack_text,
    by_stream,
    frame,
    run_tshark,
    tshark_columns,
    tshark_path,
    write_pcap,
    xor,
)

pytestmark = pytest.mark.timeout(300)

# PROTOCOL.md section 8.1: the walk-through's handshake messages and first transport frames.
HS1 = bytes.fromhex(
    "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
    "f3d7801e213e281b23eb54402573d0bc")
HS2 = bytes.fromhex(
    "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"
    "99f07b16bbe2fa896c773b58ac894219")
HI = bytes.fromhex("a8ae53ea7b9db530fb70cac7f6bbe6f6be9abc")
HI_ACK = bytes.fromhex(
    "5e69e458ef816b653a803f5f93c59d47f5119d5feac58a9d8411b6b7578ef0a821c84e1bc27d")


@pytest.fixture(scope="module")
def tshark() -> str:
    return tshark_path()


def xor_session(client_port: int, server_port: int, messages: list[bytes]) -> SyntheticTcp:
    conn = SyntheticTcp(client_port, server_port).open()
    for message in messages:
        conn.send(True, frame(xor(message))).send(False, frame(xor(ack_text(len(message)))))
    return conn.close()


def test_worked_example_on_the_default_port(tshark: str, tmp_path: Path) -> None:
    """PROTOCOL.md section 2's frames on port 5000 with no preference set."""
    conn = SyntheticTcp(40000, 5000).open()
    conn.send(True, bytes.fromhex("0000000c053c333f2a6334373b326b06"))
    conn.send(False, bytes.fromhex(
        "000000160c1a1469651137263136 3d203d6d686d73273a262027".replace(" ", "")))
    frames = run_tshark(tshark, write_pcap(tmp_path / "x.pcap", [conn.close()]))
    assert [f.get("plaintext") for f in frames] == ["Hello from C", "ACK: Received 12 bytes"]
    request, ack = frames
    assert (request.direction, ack.direction) == (0, 1)
    assert request.number("length") == 12 and ack.number("length") == 22
    assert request.raw("payload") == bytes.fromhex("053c333f2a6334373b326b06")
    assert ack.number("ack_n") == 12 and ack.number("request_len") == 12
    assert ack.number("request_in") == request.packet
    assert request.experts == [] and ack.experts == []
    two_pass = run_tshark(tshark, tmp_path / "x.pcap", "-2")  # as Wireshark, file loaded
    assert two_pass[0].number("ack_in") == ack.packet


def test_every_lab_port_and_no_other(tshark: str, tmp_path: Path) -> None:
    """The Docker lab's 5000-5003 and the handout's local 5100-5103, by port alone."""
    ports = (5000, 5003, 5004, 5100, 5103, 5104)
    sessions = [xor_session(41000 + i, port, [b"p%d" % port]) for i, port in enumerate(ports)]
    pcap = write_pcap(tmp_path / "ports.pcap", sessions)
    frames = run_tshark(tshark, pcap, "--disable-heuristic", "securemsg_tcp")
    assert sorted({f.get("plaintext") for f in frames if f.direction == 0}) == [
        "p5000", "p5003", "p5100", "p5103"]


def test_x11_ports_need_a_claim(tshark: str, tmp_path: Path) -> None:
    """Wireshark's X11 dissector owns 6000-6063 and wins over the heuristic: a server there
    decodes only with Decode As or the ports preference (wireshark/README.md says so)."""
    pcap = write_pcap(tmp_path / "x11.pcap", [xor_session(41500, 6000, [b"on x11", b""]),
                                              xor_session(41501, 6063, [b"x11 too"])])
    assert run_tshark(tshark, pcap) == []
    rows = tshark_columns(tshark, pcap)
    assert any(protocol == "X11" for _, protocol, _ in rows), rows
    decode_as = run_tshark(tshark, pcap, "-d", "tcp.port==6000,securemsg")
    assert [f.get("plaintext") for f in decode_as] == [
        "on x11", "ACK: Received 6 bytes", "", "ACK: Received 0 bytes"]
    by_pref = run_tshark(tshark, pcap, "-o", "securemsg.ports:6000-6063")
    assert [f.get("plaintext") for f in by_pref if f.direction == 0] == ["on x11", "", "x11 too"]


HTTP_REQUEST = (b" /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\n"
                b"Content-Length: 0\r\n\r\n")
HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("method", [b"GET", b"POST", b"OPTIONS"])
def test_http_is_handed_back(tshark: str, tmp_path: Path, method: bytes) -> None:
    """HTTP on a securemsg port (5002) and on another port: not frames ("GET " would be a
    length of 1195725856); the port dissector hands the stream back to HTTP."""
    request = method + HTTP_REQUEST
    sessions = [SyntheticTcp(41600 + port % 10, port).open().send(True, request)
                .send(False, HTTP_RESPONSE).close() for port in (5002, 39080)]
    pcap = write_pcap(tmp_path / "http.pcap", sessions)
    assert run_tshark(tshark, pcap) == []
    protocols = [protocol for _, protocol, _ in tshark_columns(tshark, pcap)]
    assert protocols.count("HTTP") == 4, protocols
    raised = run_tshark(tshark, pcap, "-o", "securemsg.max_frame:4294967295")
    assert raised == []  # a text protocol's first bytes, whatever the limit


def test_ports_preference_and_decode_as(tshark: str, tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "p.pcap", [xor_session(42000, 7000, [b"seven"]),
                                            xor_session(42001, 7100, [b"seven one"])])
    no_heur = ("--disable-heuristic", "securemsg_tcp")
    assert run_tshark(tshark, pcap, *no_heur) == []
    by_pref = run_tshark(tshark, pcap, *no_heur, "-o", "securemsg.ports:6999-7000,7100")
    assert [f.get("plaintext") for f in by_pref if f.direction == 0] == ["seven", "seven one"]
    decode_as = run_tshark(tshark, pcap, *no_heur, "-d", "tcp.port==7100,securemsg")
    assert [f.get("plaintext") for f in decode_as] == ["seven one", "ACK: Received 9 bytes"]
    assert [f.direction for f in decode_as] == [0, 1]


def test_heuristic_finds_other_ports(tshark: str, tmp_path: Path) -> None:
    """What the demo's servers on port 0 need: no port preference, no Decode As."""
    noise = SyntheticTcp(43001, 39001).open()
    noise.send(True, frame(HS1)).send(False, frame(HS2)).send(True, frame(HI))
    noise.send(False, frame(HI_ACK)).close()
    pcap = write_pcap(tmp_path / "h.pcap", [xor_session(43000, 39000, [b"guess me"]), noise])
    streams = by_stream(run_tshark(tshark, pcap))
    assert [(f.direction, f.get("plaintext")) for f in streams[0]] == [
        (0, "guess me"), (1, "ACK: Received 8 bytes")]
    assert [(f.direction, f.number("noise.msg_type")) for f in streams[1]] == [
        (0, 1), (1, 2), (0, 3), (1, 3)]


def test_noise_walkthrough(tshark: str, tmp_path: Path) -> None:
    conn = SyntheticTcp(44000, 5002).open()
    conn.send(True, frame(HS1)).send(False, frame(HS2))
    conn.send(True, frame(HI)).send(False, frame(HI_ACK)).close()
    hs1, hs2, hi, ack = run_tshark(tshark, write_pcap(tmp_path / "n.pcap", [conn]))
    assert [f.number("mode") for f in (hs1, hs2, hi, ack)] == [2, 2, 2, 2]
    assert (hs1.number("noise.msg_type"), hs2.number("noise.msg_type")) == (1, 2)
    assert hs1.raw("noise.ephemeral") == HS1[:32] and hs1.raw("noise.tag") == HS1[32:]
    assert hs2.raw("noise.ephemeral") == HS2[:32] and hs2.raw("noise.tag") == HS2[32:]
    assert hs1.number("noise.payload_len") == 0
    assert hi.number("noise.msg_type") == 3 and hi.number("noise.nonce") == 0
    assert hi.raw("noise.marker") == HI[:1] and hi.raw("noise.ciphertext") == HI[1:3]
    assert hi.raw("noise.tag") == HI[3:] and hi.number("noise.data_len") == 2
    assert ack.number("noise.data_len") == len(ack_text(2))
    assert all(f.get("plaintext") is None for f in (hs1, hs2, hi, ack))
    assert ack.number("request_in") == hi.packet and ack.number("request_len") == 2
    assert all(f.experts == [] for f in (hs1, hs2, hi, ack))
    two_pass = run_tshark(tshark, tmp_path / "n.pcap", "-2")
    assert two_pass[2].number("ack_in") == ack.packet


def chunk(data_len: int, fill: int = 0xA5) -> bytes:
    """A transport frame of the right size: the dissector never decrypts, so any bytes do."""
    return frame(bytes([fill]) * (1 + data_len + 16))


def send_segments(conn: SyntheticTcp, data: bytes, size: int = 32768) -> None:
    """Client data in segments of `size` bytes (an IPv4 packet holds at most 65535)."""
    for start in range(0, len(data), size):
        conn.send(True, data[start:start + size])


def test_noise_acks_tied_to_messages_by_order(tshark: str, tmp_path: Path) -> None:
    """A 70000-byte message in two chunks, two messages in one segment, an empty one, and an
    ACK whose size cannot say its request's length."""
    conn = SyntheticTcp(44100, 5003).open()
    conn.send(True, frame(HS1)).send(False, frame(HS2))
    send_segments(conn, chunk(65518) + chunk(70000 - 65518))
    conn.send(False, chunk(25))
    conn.send(True, chunk(3) + chunk(0)).send(False, chunk(21) + chunk(21))
    send_segments(conn, chunk(65518))  # a message of exactly one full chunk
    conn.send(False, chunk(25))
    conn.send(True, chunk(12)).send(False, chunk(30)).close()
    frames = run_tshark(tshark, write_pcap(tmp_path / "t.pcap", [conn]), "-2")
    up = [f for f in frames if f.direction == 0][1:]
    down = [f for f in frames if f.direction == 1][1:]
    assert [f.number("request_len") for f in down] == [70000, 3, 0, 65518, 12]
    assert [f.number("request_in") for f in down] == [up[i].packet for i in (0, 2, 3, 4, 5)]
    assert [f.number("ack_in") for f in up] == [down[i].packet for i in (0, 0, 1, 2, 3, 4)]
    assert all(f.experts == [] for f in down[:4])
    assert any("'ACK: Received 12 bytes'" in e for e in down[4].experts), down[4].experts


def test_noise_wrong_key_handshake_flagged(tshark: str, tmp_path: Path) -> None:
    """A client with the wrong PSK: the server cannot authenticate message 1 and closes."""
    wrong = SyntheticTcp(44200, 5002).open()
    wrong.send(True, NoisePeer(b"\x07" * 32).message1()).close(by_client=False)
    pcap = write_pcap(tmp_path / "w.pcap", [wrong])
    hs1, closed = run_tshark(tshark, pcap)
    assert hs1.number("noise.msg_type") == 1 and hs1.experts == []
    assert closed.direction == 1 and closed.number("noise.hs1_in") == hs1.packet
    assert any("handshake incomplete: the server closed" in e for e in closed.experts)
    info = {number: text for number, _, text in tshark_columns(tshark, pcap)}
    assert "handshake incomplete, the server closed" in info[closed.packet]
    # the same handshake with message 2: nothing flagged
    ok = SyntheticTcp(44201, 5002).open()
    ok.send(True, frame(HS1)).send(False, frame(HS2)).close(by_client=False)
    frames = run_tshark(tshark, write_pcap(tmp_path / "ok.pcap", [ok]))
    assert [f.number("noise.msg_type") for f in frames] == [1, 2]


def test_split_and_coalesced_frames(tshark: str, tmp_path: Path) -> None:
    conn = SyntheticTcp(45000, 5001).open()
    first, second, third = frame(xor(b"split in three")), frame(xor(b"two")), frame(xor(b"in one"))
    conn.send(True, first[:2]).send(True, first[2:9]).send(True, first[9:])
    conn.send(False, frame(xor(ack_text(14))))
    conn.send(True, second + third)
    conn.send(False, frame(xor(ack_text(3))) + frame(xor(ack_text(6)))[:5])
    conn.send(False, frame(xor(ack_text(6)))[5:]).close()
    frames = run_tshark(tshark, write_pcap(tmp_path / "s.pcap", [conn]))
    assert [f.get("plaintext") for f in frames] == [
        "split in three", "ACK: Received 14 bytes", "two", "in one",
        "ACK: Received 3 bytes", "ACK: Received 6 bytes"]
    assert frames[0].segments == 3
    assert frames[2].packet == frames[3].packet
    assert [f.number("ack_n") for f in frames if f.direction == 1] == [14, 3, 6]
    assert all(f.experts == [] for f in frames)


def test_ack_mismatch_and_wrong_key(tshark: str, tmp_path: Path) -> None:
    conn = SyntheticTcp(46000, 5000).open()
    conn.send(True, frame(xor(b"four"))).send(False, frame(xor(ack_text(5)))).close()
    pcap = write_pcap(tmp_path / "m.pcap", [conn])
    _, ack = run_tshark(tshark, pcap)
    assert ack.number("ack_n") == 5 and ack.number("request_len") == 4
    assert any("ACK says 5 bytes" in e for e in ack.experts), ack.experts
    other_key = run_tshark(tshark, pcap, "-o", "securemsg.xor_key:OTHER")
    assert other_key[1].get("ack_n") is None
    assert any("not an ACK" in e for e in other_key[1].experts), other_key[1].experts
    as_hex = run_tshark(tshark, pcap, "-o", "securemsg.xor_key:hex:" + b"MY_SECRET_KEY".hex())
    assert as_hex[0].get("plaintext") == "four"


@pytest.mark.parametrize(("preference", "problem"), [
    ("hex:zz", "even number of hex digits"), ("hex:4d5", "even number of hex digits"),
    ("", "is empty")])
def test_bad_key_preference_is_an_error(tshark: str, tmp_path: Path, preference: str,
                                        problem: str) -> None:
    conn = SyntheticTcp(46100, 5000).open()
    conn.send(True, frame(xor(b"four"))).send(False, frame(xor(ack_text(4)))).close()
    frames = run_tshark(tshark, write_pcap(tmp_path / "k.pcap", [conn]),
                        "-o", f"securemsg.xor_key:{preference}")
    assert len(frames) == 2
    for f in frames:
        assert f.get("plaintext") is None and f.get("ack_n") is None
        assert any(problem in e for e in f.experts), f.experts


def test_info_column_escapes_what_is_not_utf8(tshark: str, tmp_path: Path) -> None:
    """A wrong key decrypts to any bytes (f5 80 90 is not UTF-8): the Info column shows
    U+FFFD and escapes, as the Plaintext field does, and stays valid UTF-8."""
    plain = b"\xf5\x80\x90 ok\x7f\n\xc3\xa9" + b"x" * 60
    conn = SyntheticTcp(46200, 5000).open().send(True, frame(xor(plain))).close()
    pcap = write_pcap(tmp_path / "u.pcap", [conn])
    (request,) = run_tshark(tshark, pcap)
    assert request.get("plaintext", ).startswith("\ufffd")
    info = {number: text for number, _, text in tshark_columns(tshark, pcap)}
    assert info[request.packet] == ('C→S Len=70 "\ufffd\ufffd\ufffd ok\\177\\né'
                                    + "x" * 31 + '…"')


def test_oversize_frame(tshark: str, tmp_path: Path) -> None:
    conn = SyntheticTcp(47000, 5000).open()
    conn.send(True, (1048577).to_bytes(4, "big") + b"junk").send(True, b"more junk").close()
    pcap = write_pcap(tmp_path / "o.pcap", [conn])
    header, after = run_tshark(tshark, pcap)
    assert header.number("length") == 1048577
    assert any("above the maximum frame 1048576" in e for e in header.experts), header.experts
    assert any("oversize frame" in e for e in after.experts), after.experts
    # Within a raised limit it is a frame whose body never came: reassembly waits for it.
    assert run_tshark(tshark, pcap, "-o", "securemsg.max_frame:2000000") == []


def test_malformed_noise_lengths(tshark: str, tmp_path: Path) -> None:
    conn = SyntheticTcp(48000, 5002).open()
    conn.send(True, frame(b"\x01" * 40)).send(False, frame(HS2)).send(True, frame(b"\x02" * 16))
    conn.send(True, (70000).to_bytes(4, "big")).close()
    hs1, hs2, short, huge = run_tshark(tshark, write_pcap(tmp_path / "b.pcap", [conn]),
                                       "-o", "securemsg.mode:noise")
    assert any("48 expected" in e for e in hs1.experts), hs1.experts
    assert hs2.experts == [] and hs2.number("noise.msg_type") == 2
    assert any("17..65535" in e for e in short.experts), short.experts
    assert any("above the maximum frame 65535" in e for e in huge.experts), huge.experts


def test_mode_preference_overrides_the_guess(tshark: str, tmp_path: Path) -> None:
    """A 48-byte xor message is text: auto reads it as xor; mode noise as a handshake."""
    text = b"exactly forty-eight bytes of text, for this test"
    assert len(text) == 48
    pcap = write_pcap(tmp_path / "g.pcap", [xor_session(49000, 5000, [text])])
    auto = run_tshark(tshark, pcap)
    assert auto[0].get("plaintext") == text.decode() and auto[0].number("mode") == 1
    forced = run_tshark(tshark, pcap, "-o", "securemsg.mode:noise")
    assert forced[0].number("noise.msg_type") == 1 and forced[0].get("plaintext") is None
