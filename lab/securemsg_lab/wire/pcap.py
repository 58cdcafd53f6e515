"""A small pcap reader: link layer -> IPv4/IPv6 -> TCP, then stream reassembly per direction.

Enough for what tcpdump writes (classic pcap, micro- or nanosecond timestamps, either byte
order) on Ethernet, loopback, "any" (Linux cooked v1/v2), raw IP and BSD null links. Pure
functions over bytes; no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW = 101
LINK_LINUX_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8)

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44


class PcapError(ValueError):
    """The bytes are not a pcap file this reader understands."""


Endpoint = tuple[str, int]


def format_endpoint(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Segment:
    """One TCP segment as captured."""

    time: float
    src: Endpoint
    dst: Endpoint
    seq: int
    flags: int
    payload: bytes


def _read_header(data: bytes) -> tuple[str, float, int]:
    if len(data) < 24:
        raise PcapError("shorter than a pcap header")
    magic = data[:4]
    table = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic == b"\x0a\x0d\x0d\x0a":
        raise PcapError("pcapng is not supported: capture with tcpdump -w (classic pcap)")
    if magic not in table:
        raise PcapError(f"not a pcap file (magic {magic.hex()})")
    order, unit = table[magic]
    (linktype,) = struct.unpack_from(order + "I", data, 20)
    return order, unit, linktype & 0x0FFFFFFF


def read_records(data: bytes) -> tuple[int, list[tuple[float, bytes]]]:
    """Return the link type and every (timestamp, packet bytes) record."""
    order, unit, linktype = _read_header(data)
    records: list[tuple[float, bytes]] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _origlen = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        if pos + caplen > len(data):
            break  # a capture cut short mid-record: keep what is whole
        records.append((sec + frac * unit, data[pos : pos + caplen]))
        pos += caplen
    return linktype, records


def _network_layer(linktype: int, packet: bytes) -> tuple[int, bytes] | None:
    """Strip the link header; return (ethertype, IP packet) or None."""
    if linktype == LINK_ETHERNET:
        pos, (ethertype,) = 14, struct.unpack_from(">H", packet, 12)
        while ethertype in ETHERTYPE_VLAN and len(packet) >= pos + 4:
            (ethertype,) = struct.unpack_from(">H", packet, pos + 2)
            pos += 4
        return ethertype, packet[pos:]
    if linktype == LINK_LINUX_SLL:
        return struct.unpack_from(">H", packet, 14)[0], packet[16:]
    if linktype == LINK_LINUX_SLL2:
        return struct.unpack_from(">H", packet, 0)[0], packet[20:]
    if linktype == LINK_NULL:
        family = packet[0] or packet[3]  # host byte order: either end holds the value
        return (ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6), packet[4:]
    if linktype in (LINK_RAW, LINK_IPV4, LINK_IPV6, 12, 14):
        version = packet[0] >> 4 if packet else 0
        return (ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6), packet
    raise PcapError(f"unsupported link type {linktype}")


def _ipv4(packet: bytes) -> tuple[str, str, bytes] | None:
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    (total_len,) = struct.unpack_from(">H", packet, 2)
    (frag,) = struct.unpack_from(">H", packet, 6)
    if packet[9] != IPPROTO_TCP or frag & 0x3FFF:  # not TCP, or a fragment
        return None
    src = str(ipaddress.IPv4Address(packet[12:16]))
    dst = str(ipaddress.IPv4Address(packet[16:20]))
    return src, dst, packet[header_len:total_len]  # total_len drops Ethernet padding


def _ipv6(packet: bytes) -> tuple[str, str, bytes] | None:
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    (payload_len,) = struct.unpack_from(">H", packet, 4)
    next_header, pos = packet[6], 40
    body_end = 40 + payload_len
    while next_header in IPV6_EXTENSION_HEADERS and pos + 2 <= len(packet):
        next_header, pos = packet[pos], pos + (packet[pos + 1] + 1) * 8
    if next_header != IPPROTO_TCP:
        return None  # includes fragments: not needed for loopback-sized frames
    src = str(ipaddress.IPv6Address(packet[8:24]))
    dst = str(ipaddress.IPv6Address(packet[24:40]))
    return src, dst, packet[pos:body_end]


def parse_segments(data: bytes) -> list[Segment]:
    """Every TCP segment of a pcap file, in capture order."""
    linktype, records = read_records(data)
    segments: list[Segment] = []
    for time, packet in records:
        try:
            layer = _network_layer(linktype, packet)
            if layer is None:
                continue
            ethertype, ip_packet = layer
            parsed = _ipv4(ip_packet) if ethertype == ETHERTYPE_IPV4 else None
            if ethertype == ETHERTYPE_IPV6:
                parsed = _ipv6(ip_packet)
            if parsed is None or len(parsed[2]) < 20:
                continue
            src, dst, tcp = parsed
            sport, dport, seq = struct.unpack_from(">HHI", tcp, 0)
            offset = (tcp[12] >> 4) * 4
            segments.append(
                Segment(time, (src, sport), (dst, dport), seq, tcp[13], bytes(tcp[offset:]))
            )
        except (struct.error, IndexError):
            continue  # a record truncated by the snap length: skip it
    return segments


@dataclass
class _Direction:
    isn: int | None = None
    pieces: list[tuple[int, float, bytes]] = field(default_factory=list)


@dataclass
class StreamChunk:
    """A contiguous run of a direction's stream, with the time its first copy was seen."""

    offset: int
    time: float
    data: bytes


@dataclass
class Connection:
    """One TCP connection: who opened it and the bytes each way, reassembled."""

    client: Endpoint
    server: Endpoint
    to_server: bytes
    to_client: bytes
    start: float
    gaps: int = 0
    times_to_server: list[StreamChunk] = field(default_factory=list)
    times_to_client: list[StreamChunk] = field(default_factory=list)

    def time_at(self, to_server: bool, offset: int) -> float:
        """When the byte at `offset` of one direction was first captured."""
        chunks = self.times_to_server if to_server else self.times_to_client
        for chunk in chunks:
            if chunk.offset <= offset < chunk.offset + len(chunk.data):
                return chunk.time
        return chunks[-1].time if chunks else self.start


def _assemble(direction: _Direction) -> tuple[bytes, list[StreamChunk], int]:
    """Lay segments out by sequence offset; retransmissions and overlaps keep first bytes."""
    stream = bytearray()
    chunks: list[StreamChunk] = []
    gaps = 0
    for offset, time, data in sorted(direction.pieces, key=lambda piece: (piece[0], piece[1])):
        if offset > len(stream):
            gaps += 1  # a segment the capture missed: stop rather than guess
            break
        new = data[len(stream) - offset :]
        if new:
            chunks.append(StreamChunk(len(stream), time, new))
            stream += new
    return bytes(stream), chunks, gaps


def reassemble(segments: list[Segment], server_port: int | None = None) -> list[Connection]:
    """Group segments into connections and rebuild each direction's byte stream."""
    directions: dict[tuple[Endpoint, Endpoint], _Direction] = {}
    openers: dict[frozenset[Endpoint], tuple[Endpoint, Endpoint]] = {}
    starts: dict[frozenset[Endpoint], float] = {}
    for seg in segments:
        pair = frozenset((seg.src, seg.dst))
        starts.setdefault(pair, seg.time)
        direction = directions.setdefault((seg.src, seg.dst), _Direction())
        if seg.flags & TCP_SYN:
            direction.isn = (seg.seq + 1) & 0xFFFFFFFF
            if not seg.flags & TCP_ACK:
                openers[pair] = (seg.src, seg.dst)
            continue
        if not seg.payload:
            continue
        if direction.isn is None:
            direction.isn = seg.seq  # capture began mid-connection
        offset = (seg.seq - direction.isn) & 0xFFFFFFFF
        if offset >= 1 << 31:
            continue  # before the first byte we anchored on
        direction.pieces.append((offset, seg.time, seg.payload))
    connections: list[Connection] = []
    for pair, start in sorted(starts.items(), key=lambda item: item[1]):
        if pair in openers:
            client, server = openers[pair]
        else:
            # No SYN captured: the known server port, else the lower (non-ephemeral) port.
            ends = sorted(pair, key=lambda end: (end[1] != server_port, end[1]))
            server, client = ends[0], ends[-1]
        up, up_chunks, up_gaps = _assemble(directions.get((client, server), _Direction()))
        down, down_chunks, down_gaps = _assemble(directions.get((server, client), _Direction()))
        connections.append(
            Connection(client, server, up, down, start, up_gaps + down_gaps, up_chunks, down_chunks)
        )
    return connections


def tcp_ports(linktype: int, packet: bytes) -> tuple[int, int] | None:
    """A TCP packet's (source, destination) ports; None for anything else."""
    try:
        layer = _network_layer(linktype, packet)
        if layer is None:
            return None
        ethertype, ip_packet = layer
        parsed = _ipv4(ip_packet) if ethertype == ETHERTYPE_IPV4 else None
        if ethertype == ETHERTYPE_IPV6:
            parsed = _ipv6(ip_packet)
        if parsed is None or len(parsed[2]) < 4:
            return None
        return struct.unpack_from(">HH", parsed[2], 0)
    except (struct.error, IndexError):
        return None


def write(linktype: int, records: list[tuple[float, bytes]]) -> bytes:
    """A classic pcap file (microseconds, little-endian) of these records."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for time, packet in records:
        sec = int(time)
        out.append(struct.pack("<IIII", sec, int((time - sec) * 1e6), len(packet), len(packet)))
        out.append(packet)
    return b"".join(out)
