"""A classic pcap of one TCP connection on loopback (raw IPv4 link type), built from bytes:
what tcpdump would have written for an exchange, without needing root for a capture."""

from __future__ import annotations

import struct

LINK_RAW = 101
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def _ipv4_tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
              payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    addr = [bytes(int(x) for x in host.split(".")) for host in (src[0], dst[0])]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, *addr)
    return ip + tcp + payload


def connection_pcap(exchanges: list[tuple[bytes, bytes]], server_port: int,
                    client_port: int = 40000) -> bytes:
    """SYN, SYN-ACK, then each (client bytes, server bytes) as one segment each way."""
    client, server = ("127.0.0.1", client_port), ("127.0.0.1", server_port)
    c_seq, s_seq = 1000, 5000
    packets = [_ipv4_tcp(client, server, c_seq, 0, SYN, b""),
               _ipv4_tcp(server, client, s_seq, c_seq + 1, SYN | ACK, b"")]
    c_seq, s_seq = c_seq + 1, s_seq + 1
    for up, down in exchanges:
        packets.append(_ipv4_tcp(client, server, c_seq, s_seq, PSH | ACK, up))
        c_seq += len(up)
        packets.append(_ipv4_tcp(server, client, s_seq, c_seq, PSH | ACK, down))
        s_seq += len(down)
    packets.append(_ipv4_tcp(client, server, c_seq, s_seq, FIN | ACK, b""))
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINK_RAW)
    for i, packet in enumerate(packets):
        out += struct.pack("<IIII", 1_700_000_000, i * 1000, len(packet), len(packet)) + packet
    return out
